//! Incremental sync from a gateway into the [`Ledger`].
//!
//! The first sync asks for the whole history; every later one asks only for the days
//! since the last (from two days before its last day, to tomorrow: a day still being
//! written, and a gateway whose clock runs a little ahead or behind, are counted once and
//! completely). Those days are replaced in one transaction. So a refresh costs what is
//! new, however long the history is.

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

/// Sessions asked for at first; grows ×4 while the answer fills it.
const FIRST_LIMIT: u32 = 1_000;
const MAX_LIMIT: u32 = 256_000;

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
    /// Sessions with use in the range.
    pub sessions: usize,
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

    async fn sync_inner(
        &self,
        source: &dyn Source,
        instance: &str,
        today: Day,
    ) -> Result<SyncReport> {
        let (from, to) = self.next_range(instance, today).await?;
        let mut limit = FIRST_LIMIT;
        let mut waited = 0;
        loop {
            let answer = source
                .sessions_usage(gateway::request(from, to, limit))
                .await?;
            let usage = gateway::parse_sessions_usage(&answer)?;
            if let Counting::Pending { status, .. } = &usage.counting {
                if waited >= self.polls {
                    tracing::info!(%status, waited, "the gateway is still counting its usage");
                    return Err(Error::StillCounting);
                }
                waited += 1;
                tokio::time::sleep(self.poll_every).await;
                continue;
            }
            if gateway::listed(&answer) >= limit as usize {
                // The list may have been cut at the limit: ask for more.
                if limit >= MAX_LIMIT {
                    return Err(Error::BadData(format!(
                        "more than {MAX_LIMIT} conversations in {from}..{to}"
                    )));
                }
                limit = limit.saturating_mul(4).min(MAX_LIMIT);
                continue;
            }
            let rows = self
                .ledger
                .replace(
                    instance,
                    from,
                    to,
                    &usage.sessions,
                    &crate::time::now_rfc3339(),
                )
                .await?;
            return Ok(SyncReport {
                from,
                to,
                sessions: usage.sessions.len(),
                rows,
                waited,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::usage::ledger::Filter;
    use serde_json::json;
    use std::sync::Mutex;

    /// A stand-in gateway: answers each call with the next of `answers` (the last one
    /// repeats) and records the params.
    struct Scripted {
        answers: Mutex<Vec<std::result::Result<Value, crate::gateway::Error>>>,
        calls: Mutex<Vec<Value>>,
    }

    impl Scripted {
        fn new(answers: Vec<std::result::Result<Value, crate::gateway::Error>>) -> Self {
            Self {
                answers: Mutex::new(answers),
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl Source for Scripted {
        fn sessions_usage(
            &self,
            params: Value,
        ) -> Pin<
            Box<dyn Future<Output = std::result::Result<Value, crate::gateway::Error>> + Send + '_>,
        > {
            self.calls.lock().unwrap().push(params);
            let mut a = self.answers.lock().unwrap();
            let next = if a.len() > 1 {
                a.remove(0)
            } else {
                match &a[0] {
                    Ok(v) => Ok(v.clone()),
                    Err(_) => Err(crate::gateway::Error::Closed),
                }
            };
            Box::pin(async move { next })
        }
    }

    fn answer(days: &[(&str, u64, f64)]) -> Value {
        json!({
            "sessions": [{
                "key": "agent:main:main",
                "usage": {
                    "dailyBreakdown": days.iter().map(|(d, t, c)| json!({"date": d, "totalTokens": t, "totalCost": c, "input": t, "output": 0})).collect::<Vec<_>>(),
                    "dailyModelUsage": days.iter().map(|(d, t, c)| json!({"date": d, "provider": "p", "model": "m", "tokens": t, "cost": c, "count": 1})).collect::<Vec<_>>(),
                }
            }]
        })
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

    #[tokio::test]
    async fn first_sync_takes_everything_then_only_the_last_days() {
        let store = Store::open_memory().await.unwrap();
        let s = syncer(store);
        let src = Scripted::new(vec![Ok(answer(&[
            ("2026-10-01", 100, 1.0),
            ("2026-11-26", 10, 0.1),
        ]))]);
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!((r.from, r.to), (d(FIRST_DAY), d("2026-11-27")));
        assert_eq!(src.calls.lock().unwrap()[0]["mode"], "utc");

        // A day later: asks from the 25th (two days before the last range's end) only.
        let src = Scripted::new(vec![Ok(answer(&[
            ("2026-11-26", 12, 0.12),
            ("2026-11-27", 5, 0.05),
        ]))]);
        let r = s.sync(&src, "local", d("2026-11-27")).await.unwrap();
        assert_eq!((r.from, r.to), (d("2026-11-25"), d("2026-11-28")));
        let t = s
            .ledger()
            .totals(&Filter {
                from: d(FIRST_DAY),
                to: d("2026-12-31"),
                instance: None,
            })
            .await
            .unwrap();
        assert_eq!(
            t.tokens.total, 117,
            "Oct 1 kept, Nov 26 replaced, Nov 27 added"
        );
    }

    #[tokio::test]
    async fn still_counting_is_asked_again_then_given_up_without_losing_anything() {
        let store = Store::open_memory().await.unwrap();
        let s = syncer(store);
        let mut counting = answer(&[("2026-11-26", 99, 9.9)]);
        counting["cacheStatus"] = json!({"status": "refreshing", "pendingFiles": 2});
        let src = Scripted::new(vec![
            Ok(counting.clone()),
            Ok(answer(&[("2026-11-26", 10, 0.1)])),
        ]);
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!(r.waited, 1);

        let src = Scripted::new(vec![Ok(counting)]);
        let err = s.sync(&src, "local", d("2026-11-26")).await.unwrap_err();
        assert!(matches!(err, Error::StillCounting));
        assert_eq!(src.calls.lock().unwrap().len(), 4, "1 + 3 polls");
        let all = Filter {
            from: d(FIRST_DAY),
            to: d("2026-12-31"),
            instance: None,
        };
        assert_eq!(s.ledger().totals(&all).await.unwrap().tokens.total, 10);
        let state = s.ledger().sync_state("local").await.unwrap().unwrap();
        assert!(state.error.unwrap().contains("still counting"));
    }

    #[tokio::test]
    async fn garbage_or_a_dead_gateway_keep_the_old_numbers() {
        let store = Store::open_memory().await.unwrap();
        let s = syncer(store);
        let src = Scripted::new(vec![Ok(answer(&[("2026-11-26", 10, 0.1)]))]);
        s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        let all = Filter {
            from: d(FIRST_DAY),
            to: d("2026-12-31"),
            instance: None,
        };
        for bad in [
            Ok(json!({"sessions": "nope"})),
            Ok(answer(&[("2026-11-26", 10, f64::NAN)])),
            Ok(answer(&[("2026-11-26", 10, -1.0)])),
            Err(crate::gateway::Error::Closed),
        ] {
            let src = Scripted::new(vec![bad]);
            assert!(s.sync(&src, "local", d("2026-11-26")).await.is_err());
            let t = s.ledger().totals(&all).await.unwrap();
            assert_eq!(t.tokens.total, 10);
            assert!((t.cost - 0.1).abs() < 1e-12);
        }
    }

    #[tokio::test]
    async fn a_full_list_is_asked_for_again_with_a_bigger_limit() {
        let store = Store::open_memory().await.unwrap();
        let s = syncer(store);
        let many = |n: usize| json!({"sessions": (0..n).map(|i| json!({"key": format!("s{i}"), "usage": {"dailyBreakdown": [{"date": "2026-11-26", "totalTokens": 1, "totalCost": 0.0}]}})).collect::<Vec<_>>()});
        let src = Scripted::new(vec![Ok(many(1000)), Ok(many(1500))]);
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!(r.sessions, 1500);
        let calls = src.calls.lock().unwrap();
        assert_eq!(calls[0]["limit"], 1000);
        assert_eq!(calls[1]["limit"], 4000);
    }
}
