//! Incremental sync from a gateway into the [`Ledger`].
//!
//! The first sync asks which days of the whole history had use (one call, the day list
//! only), then each of those days. Every later sync asks only for the days since the last:
//! from two days before its last day to tomorrow, so a day still being written, and a
//! gateway whose clock runs a little ahead or behind, are counted once and completely.
//! Each day is one call (see [`gateway`] for why); the days are replaced in one
//! transaction. So a refresh costs what is new, however long the history is.

use super::gateway::{self, Counting};
use super::ledger::Ledger;
use super::period::Day;
use super::{Error, Result};
use crate::gateway::Gateway;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Where a first sync starts (any earlier use would be from before OpenClaw existed).
pub const FIRST_DAY: &str = "2020-01-01";

/// Conversations listed per day (the day's most recent ones; the day's totals, models and
/// channels cover all of them whatever this is).
pub const SESSIONS_PER_DAY: u32 = 20;

/// What can answer `sessions.usage`: the gateway client, or a test's stand-in.
pub trait Source: Send + Sync {
    fn sessions_usage(
        &self,
        params: Value,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Value, crate::gateway::Error>> + Send + '_>>;
}

impl Source for Gateway {
    fn sessions_usage(
        &self,
        params: Value,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Value, crate::gateway::Error>> + Send + '_>>
    {
        Box::pin(self.request("sessions.usage", params))
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub from: Day,
    pub to: Day,
    /// Days asked for (one call each).
    pub days: usize,
    /// Rows written.
    pub rows: usize,
    /// Times the gateway said it was still counting before it answered.
    pub waited: u32,
}

/// Syncs instances' usage into a ledger.
#[derive(Clone)]
pub struct Syncer {
    ledger: Ledger,
    /// How often, and how long apart, to ask again while the gateway is still counting.
    pub polls: u32,
    pub poll_every: Duration,
}

impl Syncer {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            polls: 20,
            poll_every: Duration::from_millis(500),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The days the next sync of `instance` will ask for, `today` being today (UTC).
    pub async fn next_range(&self, instance: &str, today: Day) -> Result<(Day, Day)> {
        let from = match self.ledger.sync_state(instance).await? {
            Some(s) => s.synced_to.plus(-2).min(today.plus(-1)),
            None => Day::parse(FIRST_DAY).unwrap_or(today),
        };
        Ok((from, today.plus(1)))
    }

    /// Sync `instance` from `source`. On failure, the ledger keeps what it had and notes
    /// why.
    pub async fn sync(
        &self,
        source: &dyn Source,
        instance: &str,
        today: Day,
    ) -> Result<SyncReport> {
        let result = self.sync_inner(source, instance, today).await;
        if let Err(e) = &result {
            let _ = self
                .ledger
                .note_failure(instance, &crate::time::now_rfc3339(), &e.to_string())
                .await;
        }
        result
    }

    /// Ask until the gateway has finished counting (or give up: [`Error::StillCounting`]).
    async fn ask(&self, source: &dyn Source, params: Value, waited: &mut u32) -> Result<Value> {
        loop {
            let answer = source.sessions_usage(params.clone()).await?;
            let pending = match answer.get("cacheStatus").and_then(|c| c.get("status")) {
                Some(Value::String(s)) if s != "fresh" => Some(s.clone()),
                _ => None,
            };
            let Some(status) = pending else {
                return Ok(answer);
            };
            if *waited >= self.polls {
                tracing::info!(%status, waited, "the gateway is still counting its usage");
                return Err(Error::StillCounting);
            }
            *waited += 1;
            tokio::time::sleep(self.poll_every).await;
        }
    }

    async fn sync_inner(
        &self,
        source: &dyn Source,
        instance: &str,
        today: Day,
    ) -> Result<SyncReport> {
        let (from, to) = self.next_range(instance, today).await?;
        let mut waited = 0;
        let first = self.ledger.sync_state(instance).await?.is_none();
        let days: Vec<Day> = if first {
            // Which days had use at all: the day list only (a limit of 1 keeps it small).
            let answer = self
                .ask(source, gateway::request(from, to, 1), &mut waited)
                .await?;
            let (counting, days) = gateway::parse_active_days(&answer)?;
            if counting != Counting::Done {
                return Err(Error::StillCounting);
            }
            days.into_iter()
                .filter(|d| *d >= from && *d <= to)
                .collect()
        } else {
            (0..=from.days_until(to)).map(|i| from.plus(i)).collect()
        };
        let mut got = Vec::with_capacity(days.len());
        for day in &days {
            let answer = self
                .ask(
                    source,
                    gateway::request(*day, *day, SESSIONS_PER_DAY),
                    &mut waited,
                )
                .await?;
            let (counting, usage) = gateway::parse_day(&answer, *day)?;
            if counting != Counting::Done {
                return Err(Error::StillCounting);
            }
            got.push(usage);
        }
        let rows = self
            .ledger
            .replace(instance, from, to, &got, &crate::time::now_rfc3339())
            .await?;
        Ok(SyncReport {
            from,
            to,
            days: days.len(),
            rows,
            waited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::usage::ledger::Filter;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// A stand-in gateway over a table of (day → tokens, cost): answers range calls with
    /// the day list and day calls with that day, like `sessions.usage`. `counting` answers
    /// "refreshing" that many times first; `garbage` replaces every answer.
    #[derive(Default)]
    struct Stand {
        days: Mutex<BTreeMap<String, (u64, f64)>>,
        counting: Mutex<u32>,
        garbage: Mutex<Option<std::result::Result<Value, ()>>>,
        calls: Mutex<Vec<Value>>,
    }

    impl Stand {
        fn with(days: &[(&str, u64, f64)]) -> Self {
            let s = Self::default();
            for (d, t, c) in days {
                s.days.lock().unwrap().insert((*d).into(), (*t, *c));
            }
            s
        }

        fn answer(&self, params: &Value) -> Value {
            let from = params["startDate"].as_str().unwrap().to_owned();
            let to = params["endDate"].as_str().unwrap().to_owned();
            let days = self.days.lock().unwrap();
            let rows: Vec<Value> = days
                .range(from.clone()..=to.clone())
                .map(|(d, (t, c))| json!({"date": d, "input": t, "output": 0, "totalTokens": t, "totalCost": c}))
                .collect();
            let models: Vec<Value> = days
                .range(from.clone()..=to.clone())
                .map(|(d, (t, c))| json!({"date": d, "provider": "p", "model": "m", "tokens": t, "cost": c, "count": 1}))
                .collect();
            let mut v = json!({"sessions": [], "aggregates": {"costDaily": rows, "modelDaily": models, "byChannel": []}});
            let mut counting = self.counting.lock().unwrap();
            if *counting > 0 {
                *counting -= 1;
                v["cacheStatus"] = json!({"status": "refreshing", "pendingFiles": 1});
            }
            v
        }
    }

    impl Source for Stand {
        fn sessions_usage(
            &self,
            params: Value,
        ) -> Pin<
            Box<dyn Future<Output = std::result::Result<Value, crate::gateway::Error>> + Send + '_>,
        > {
            self.calls.lock().unwrap().push(params.clone());
            let out = match self.garbage.lock().unwrap().clone() {
                Some(Ok(v)) => Ok(v),
                Some(Err(())) => Err(crate::gateway::Error::Closed),
                None => Ok(self.answer(&params)),
            };
            Box::pin(async move { out })
        }
    }

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    fn syncer(store: Store) -> Syncer {
        let mut s = Syncer::new(Ledger::new(store));
        s.poll_every = Duration::from_millis(1);
        s.polls = 3;
        s
    }

    fn everything() -> Filter {
        Filter {
            from: d(FIRST_DAY),
            to: d("2026-12-31"),
            instance: None,
        }
    }

    #[tokio::test]
    async fn first_sync_asks_for_the_days_with_use_then_only_the_last_days() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-10-01", 100, 1.0), ("2026-11-26", 10, 0.1)]);
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!((r.from, r.to, r.days), (d(FIRST_DAY), d("2026-11-27"), 2));
        {
            let calls = src.calls.lock().unwrap();
            assert_eq!(calls.len(), 3, "the day list, then the two days");
            assert_eq!(calls[0]["limit"], 1);
            assert_eq!(calls[1]["startDate"], "2026-10-01");
            assert_eq!(calls[1]["endDate"], "2026-10-01");
            assert_eq!(calls[1]["mode"], "utc");
        }

        // A day later: asks for the 25th to the 28th, one day each.
        src.days
            .lock()
            .unwrap()
            .insert("2026-11-26".into(), (12, 0.12));
        src.days
            .lock()
            .unwrap()
            .insert("2026-11-27".into(), (5, 0.05));
        src.calls.lock().unwrap().clear();
        let r = s.sync(&src, "local", d("2026-11-27")).await.unwrap();
        assert_eq!(
            (r.from, r.to, r.days),
            (d("2026-11-25"), d("2026-11-28"), 4)
        );
        assert_eq!(src.calls.lock().unwrap().len(), 4);
        let t = s.ledger().totals(&everything()).await.unwrap();
        assert_eq!(
            t.tokens.total, 117,
            "Oct 1 kept, Nov 26 replaced, Nov 27 added"
        );
    }

    #[tokio::test]
    async fn still_counting_is_asked_again_then_given_up_without_losing_anything() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-26", 10, 0.1)]);
        *src.counting.lock().unwrap() = 2;
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!(r.waited, 2);

        src.days
            .lock()
            .unwrap()
            .insert("2026-11-26".into(), (99, 9.9));
        *src.counting.lock().unwrap() = 100;
        let err = s.sync(&src, "local", d("2026-11-26")).await.unwrap_err();
        assert!(matches!(err, Error::StillCounting));
        assert_eq!(
            s.ledger().totals(&everything()).await.unwrap().tokens.total,
            10
        );
        let state = s.ledger().sync_state("local").await.unwrap().unwrap();
        assert!(state.error.unwrap().contains("still counting"));
    }

    #[tokio::test]
    async fn garbage_or_a_dead_gateway_keep_the_old_numbers() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-26", 10, 0.1)]);
        s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        let mut bad_cost = src.answer(&json!({"startDate": "2026-11-26", "endDate": "2026-11-26"}));
        bad_cost["aggregates"]["costDaily"][0]["totalCost"] = json!(-1.0);
        for bad in [
            Ok(json!({"sessions": "nope"})),
            Ok(
                json!({"sessions": [], "aggregates": {"costDaily": [{"date": "2026-11-26", "totalTokens": 5, "totalCost": null}]}}),
            ),
            Ok(bad_cost),
            Err(()),
        ] {
            *src.garbage.lock().unwrap() = Some(bad);
            assert!(s.sync(&src, "local", d("2026-11-26")).await.is_err());
            let t = s.ledger().totals(&everything()).await.unwrap();
            assert_eq!(t.tokens.total, 10);
            assert!((t.cost - 0.1).abs() < 1e-12);
        }
    }

    #[tokio::test]
    async fn clock_skew_is_counted_once() {
        // A gateway whose clock runs ahead wrote tomorrow's date on an event: it is
        // counted (the range runs to tomorrow), and once, whatever the next syncs see.
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-26", 10, 0.1), ("2026-11-27", 3, 0.03)]);
        s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        s.sync(&src, "local", d("2026-11-27")).await.unwrap();
        assert_eq!(
            s.ledger().totals(&everything()).await.unwrap().tokens.total,
            13
        );
    }
}
