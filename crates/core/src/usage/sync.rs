//! Incremental sync from a gateway into the [`Ledger`].
//!
//! The first sync asks which days of the whole history had use (one call, the day list
//! only), then each of those days. Every later sync asks only for the days since the last:
//! from two days before its last day to tomorrow, so a day still being written, and a
//! gateway whose clock runs a little ahead or behind, are counted once and completely.
//! Each day is one call (see [`gateway`] for why); the days are replaced in one
//! transaction. So a refresh costs what is new, however long the history is.
//!
//! And a refresh when nothing is new costs one cheap call: before the days, the sync asks
//! the gateway which conversations were updated since the last full count began (a
//! `sessions.list` of the last minutes; a run updates its conversation when it starts and
//! when it ends). None, and none running: there is no new use, and no day is asked for.
//! The days are still counted in full at least every [`FULL_EVERY`], whatever the probe
//! says; and a count during which a conversation ran doesn't move the start of the next
//! window. (At 1,000,000 events a day's count costs the gateway ~1 s of CPU; the probe a
//! few ms: BENCHMARKS.md.)

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
use time::format_description::well_known::Rfc3339;

/// Where a first sync starts (any earlier use would be from before OpenClaw existed).
pub const FIRST_DAY: &str = "2020-01-01";

/// Conversations listed per day (the day's most recent ones; the day's totals, models and
/// channels cover all of them whatever this is)…
pub const SESSIONS_PER_DAY: u32 = 20;
/// …plus a number that changes with every call, below this. The gateway keeps each answer
/// for 30 s under a key made of the call's params, and after that hands the old answer out
/// once more while it computes the new one (stale-while-revalidate,
/// `loadUsageResultCached`), still marked "fresh". `limit` only sets how many
/// conversations are listed, so varying it gives a key of its own to every call: the answer
/// is computed now. An old answer that still comes back is recognised by its `updatedAt`.
const LIMIT_SPREAD: u32 = 200;

/// However quiet the probe, the days are counted in full at least this often.
pub const FULL_EVERY: Duration = Duration::from_secs(3600);

type Answer<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<Value, crate::gateway::Error>> + Send + 'a>>;

/// What can answer `sessions.usage` and `sessions.list`: the gateway client, or a test's
/// stand-in.
pub trait Source: Send + Sync {
    fn sessions_usage(&self, params: Value) -> Answer<'_>;
    fn sessions_list(&self, params: Value) -> Answer<'_>;
}

impl Source for Gateway {
    fn sessions_usage(&self, params: Value) -> Answer<'_> {
        Box::pin(self.request("sessions.usage", params))
    }

    fn sessions_list(&self, params: Value) -> Answer<'_> {
        Box::pin(self.request("sessions.list", params))
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
    /// The probe found nothing new since the last count: no day was asked for.
    pub nothing_new: bool,
}

/// Syncs instances' usage into a ledger.
#[derive(Clone)]
pub struct Syncer {
    ledger: Ledger,
    /// See [`LIMIT_SPREAD`]; starts anywhere, so a restarted app doesn't repeat its calls.
    nonce: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// How often, and how long apart, to ask again while the gateway is still counting.
    pub polls: u32,
    pub poll_every: Duration,
}

impl Syncer {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            nonce: std::sync::Arc::new(std::sync::atomic::AtomicU32::new(rand::random())),
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

    /// The params of the next call for `from..=to`, a key of its own each time (see
    /// [`LIMIT_SPREAD`]). A day's call lists `Some(base)` + the rolling number of
    /// conversations. The first sync's day list (`None`) always lists one: every listed
    /// conversation carries its per-day and per-quarter-hour arrays for the whole range
    /// (1–2 MB for a busy one), and with the rolling number added, 1,000,000 events in 200
    /// conversations gave answers of 27–180 MB, over the client's 16 MiB message limit
    /// (`clawkeeper-bench usage`). Its key varies by the first day instead: `from` is
    /// [`FIRST_DAY`], and any day up to LIMIT_SPREAD days later is still before any use.
    fn params(&self, from: Day, to: Day, base: Option<u32>) -> Value {
        let n = self
            .nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % LIMIT_SPREAD;
        match base {
            Some(base) => gateway::request(from, to, base + n),
            None => gateway::request(from.plus(i64::from(n)), to, 1),
        }
    }

    /// Ask until the gateway has finished counting and the answer is newer than `since`
    /// (gateway clock), or give up: [`Error::StillCounting`]. Returns the answer and its
    /// `updatedAt`.
    async fn ask(
        &self,
        source: &dyn Source,
        from: Day,
        to: Day,
        base: Option<u32>,
        since: Option<i64>,
        waited: &mut u32,
    ) -> Result<(Value, Option<i64>)> {
        loop {
            let answer = match source.sessions_usage(self.params(from, to, base)).await {
                Ok(answer) => answer,
                // The gateway couldn't count just now: "Usage database changed during
                // worker operation" when a conversation's database is being created (the
                // first chat). Asking again a moment later gets the count.
                Err(crate::gateway::Error::Rpc(e))
                    if e.code == "UNAVAILABLE" && *waited < self.polls =>
                {
                    tracing::info!(message = %e.message, "the gateway couldn't count its usage yet");
                    *waited += 1;
                    let wait = e
                        .retry_after_ms
                        .map(Duration::from_millis)
                        .unwrap_or(self.poll_every)
                        .clamp(self.poll_every, Duration::from_secs(5));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let updated = answer.get("updatedAt").and_then(Value::as_i64);
            let pending = match answer.get("cacheStatus").and_then(|c| c.get("status")) {
                Some(Value::String(s)) if s != "fresh" => Some(s.clone()),
                _ => None,
            };
            let old = matches!((updated, since), (Some(u), Some(s)) if u < s);
            if pending.is_none() && !old {
                return Ok((answer, updated));
            }
            if *waited >= self.polls {
                tracing::info!(
                    ?pending,
                    old,
                    waited,
                    "the gateway is still counting its usage"
                );
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
        let state = self.ledger.sync_state(instance).await?;
        let started = time::OffsetDateTime::now_utc();
        let started_s = crate::time::now_rfc3339();
        // When the last full count began, if it was recent enough to skip another.
        let full_at = state
            .as_ref()
            .and_then(|s| s.full_at.as_deref())
            .and_then(|at| time::OffsetDateTime::parse(at, &Rfc3339).ok())
            .filter(|at| *at <= started && started - *at < FULL_EVERY);
        // The gateway's clock when that count began (its probe's `ts`).
        let since: Option<i64> = state
            .as_ref()
            .and_then(|s| s.probe.as_deref())
            .and_then(|p| p.parse().ok());
        // Conversations updated in the whole minutes since, and one more; what is listed
        // is then compared with `since` on the gateway's own clock.
        let minutes = full_at.map_or(60, |at| {
            u32::try_from((started - at).whole_minutes())
                .unwrap_or(u32::MAX)
                .saturating_add(2)
        });
        let probe = match source.sessions_list(gateway::probe_request(minutes)).await {
            Ok(v) => gateway::parse_probe(&v)
                .map_err(|e| tracing::debug!(%e, "no probe: counting in full"))
                .ok(),
            Err(e) => {
                tracing::debug!(%e, "no probe: counting in full");
                None
            }
        };
        if let (Some(_), Some(_), Some(_), Some(p)) = (&state, full_at, since, &probe) {
            if !p.changed_since(since) {
                self.ledger.note_unchanged(instance, &started_s).await?;
                return Ok(SyncReport {
                    from,
                    to,
                    days: 0,
                    rows: 0,
                    waited: 0,
                    nothing_new: true,
                });
            }
        }
        let answered_after = state.as_ref().and_then(|s| s.gateway_at);
        let mut newest = answered_after;
        let mut waited = 0;
        let days: Vec<Day> = if state.is_none() {
            // Which days had use at all: the day list only (a small limit keeps it small).
            let (answer, at) = self
                .ask(source, from, to, None, answered_after, &mut waited)
                .await?;
            newest = newest.max(at);
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
            let (answer, at) = self
                .ask(
                    source,
                    *day,
                    *day,
                    Some(SESSIONS_PER_DAY),
                    answered_after,
                    &mut waited,
                )
                .await?;
            newest = newest.max(at);
            let (counting, usage) = gateway::parse_day(&answer, *day)?;
            if counting != Counting::Done {
                return Err(Error::StillCounting);
            }
            got.push(usage);
        }
        let rows = self
            .ledger
            .replace(
                instance,
                from,
                to,
                &got,
                &crate::time::now_rfc3339(),
                newest,
            )
            .await?;
        // The next window starts when this count began: use written meanwhile is in it.
        // Not while a conversation ran (its use was still coming): the window stays open.
        // Without a probe, nothing is known of runs: the window stays where it was.
        if let Some(at) = probe.filter(|p| !p.running).and_then(|p| p.at) {
            self.ledger
                .note_probe(instance, Some(&at.to_string()), &started_s)
                .await?;
        }
        Ok(SyncReport {
            from,
            to,
            days: days.len(),
            rows,
            waited,
            nothing_new: false,
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
        /// `updatedAt` of the answers (none when 0).
        updated_at: Mutex<i64>,
        /// Answer once with this old (updatedAt, tokens, cost) for every day asked.
        old_once: Mutex<Option<(i64, u64, f64)>>,
        /// Fail with UNAVAILABLE this many times first.
        unavailable: Mutex<u32>,
        /// `sessions.list` calls; fail them; say a conversation is running.
        probes: Mutex<u32>,
        no_probe: Mutex<bool>,
        running: Mutex<bool>,
        /// The gateway's clock (`ts` of its conversation lists).
        clock: Mutex<i64>,
        /// The table as the last list saw it, and when it last changed (gateway clock).
        seen_days: Mutex<BTreeMap<String, (u64, f64)>>,
        changed_at: Mutex<i64>,
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
            let at = *self.updated_at.lock().unwrap();
            if at > 0 {
                v["updatedAt"] = json!(at);
            }
            if let Some((old_at, t, c)) = self.old_once.lock().unwrap().take() {
                v = json!({"updatedAt": old_at, "sessions": [], "aggregates": {
                    "costDaily": [{"date": from, "input": t, "output": 0, "totalTokens": t, "totalCost": c}],
                    "modelDaily": [], "byChannel": []}});
            }
            let mut counting = self.counting.lock().unwrap();
            if *counting > 0 {
                *counting -= 1;
                v["cacheStatus"] = json!({"status": "refreshing", "pendingFiles": 1});
            }
            v
        }
    }

    impl Source for Stand {
        /// One conversation whose totals are the table's; `updatedAt` as set. With
        /// `no_probe`, an error (a gateway without the method).
        fn sessions_list(&self, _params: Value) -> Answer<'_> {
            *self.probes.lock().unwrap() += 1;
            if *self.no_probe.lock().unwrap() {
                let e = crate::gateway::frame::RpcError {
                    code: "INVALID_REQUEST".into(),
                    message: "unknown method".into(),
                    details: None,
                    retryable: None,
                    retry_after_ms: None,
                };
                return Box::pin(async move { Err(crate::gateway::Error::Rpc(e)) });
            }
            // The gateway's clock moves on by one each call; one conversation, updated
            // when the test says (`updated_at`).
            let mut clock = self.clock.lock().unwrap();
            *clock += 10;
            // New use in the table since the last list: the conversation was updated in
            // between.
            let days = self.days.lock().unwrap().clone();
            let mut seen = self.seen_days.lock().unwrap();
            if *seen != days {
                *seen = days;
                *self.changed_at.lock().unwrap() = *clock - 5;
            }
            let updated = (*self.updated_at.lock().unwrap()).max(*self.changed_at.lock().unwrap());
            let v = json!({"ts": *clock, "count": 1, "sessions": [{"key": "agent:main:main",
                "updatedAt": updated, "hasActiveRun": *self.running.lock().unwrap()}]});
            Box::pin(async move { Ok(v) })
        }

        fn sessions_usage(&self, params: Value) -> Answer<'_> {
            self.calls.lock().unwrap().push(params.clone());
            let mut unavailable = self.unavailable.lock().unwrap();
            if *unavailable > 0 {
                *unavailable -= 1;
                let e = crate::gateway::frame::RpcError {
                    code: "UNAVAILABLE".into(),
                    message: "Usage database changed during worker operation".into(),
                    details: None,
                    retryable: Some(true),
                    retry_after_ms: None,
                };
                return Box::pin(async move { Err(crate::gateway::Error::Rpc(e)) });
            }
            drop(unavailable);
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
            assert_eq!(calls[0]["limit"], 1, "the day list lists one conversation");
            let start = calls[0]["startDate"].as_str().unwrap();
            assert!(start.starts_with("2020-"), "{start}");
            assert_eq!(calls[0]["endDate"], "2026-11-27");
            let (a, b) = (
                calls[1]["limit"].as_u64().unwrap(),
                calls[2]["limit"].as_u64().unwrap(),
            );
            assert!(
                a >= 20 && b >= 20 && a != b,
                "every call a limit of its own: {a} {b}"
            );
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
    async fn unavailable_is_asked_again_then_given_up_without_losing_anything() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-26", 10, 0.1)]);
        *src.unavailable.lock().unwrap() = 2;
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!(r.waited, 2);
        assert_eq!(
            s.ledger().totals(&everything()).await.unwrap().tokens.total,
            10
        );

        src.days
            .lock()
            .unwrap()
            .insert("2026-11-26".into(), (99, 9.9));
        *src.unavailable.lock().unwrap() = 100;
        let err = s.sync(&src, "local", d("2026-11-26")).await.unwrap_err();
        assert!(err.to_string().contains("Usage database changed"), "{err}");
        assert_eq!(
            s.ledger().totals(&everything()).await.unwrap().tokens.total,
            10
        );
    }

    #[tokio::test]
    async fn nothing_new_asks_for_no_day_until_a_conversation_is_updated() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-25", 10, 0.1)]);
        *src.clock.lock().unwrap() = 5_000;
        *src.updated_at.lock().unwrap() = 4_000;
        let today = d("2026-11-26");
        s.sync(&src, "local", today).await.unwrap();
        let calls = || src.calls.lock().unwrap().len();
        let after_first = calls();

        // Nothing updated since the count began: one probe, no day.
        let r = s.sync(&src, "local", today).await.unwrap();
        assert!(r.nothing_new && r.days == 0, "{r:?}");
        assert_eq!(calls(), after_first);
        assert_eq!(*src.probes.lock().unwrap(), 2);

        // A chat: the conversation is updated after the last count began.
        src.days
            .lock()
            .unwrap()
            .insert("2026-11-26".into(), (7, 0.07));
        *src.updated_at.lock().unwrap() = *src.clock.lock().unwrap() + 1;
        let r = s.sync(&src, "local", today).await.unwrap();
        assert!(!r.nothing_new && r.days == 3, "{r:?}");
        assert_eq!(
            s.ledger().totals(&everything()).await.unwrap().tokens.total,
            17
        );
        assert!(s.sync(&src, "local", today).await.unwrap().nothing_new);

        // A conversation updated while a count ran (after its probe): the next one counts.
        *src.updated_at.lock().unwrap() = *src.clock.lock().unwrap();
        assert!(!s.sync(&src, "local", today).await.unwrap().nothing_new);
        assert!(s.sync(&src, "local", today).await.unwrap().nothing_new);

        // While a conversation runs, every sync counts, and the window stays open.
        *src.running.lock().unwrap() = true;
        assert!(!s.sync(&src, "local", today).await.unwrap().nothing_new);
        *src.running.lock().unwrap() = false;
        *src.updated_at.lock().unwrap() = *src.clock.lock().unwrap() + 1;
        assert!(!s.sync(&src, "local", today).await.unwrap().nothing_new);
        assert!(s.sync(&src, "local", today).await.unwrap().nothing_new);

        // A gateway without the probe: counted in full every time.
        *src.no_probe.lock().unwrap() = true;
        assert!(!s.sync(&src, "local", today).await.unwrap().nothing_new);
        assert!(!s.sync(&src, "local", today).await.unwrap().nothing_new);
        *src.no_probe.lock().unwrap() = false;

        // However quiet: counted in full after FULL_EVERY.
        let state = s.ledger().sync_state("local").await.unwrap().unwrap();
        s.ledger()
            .note_probe("local", state.probe.as_deref(), "2026-01-01T00:00:00Z")
            .await
            .unwrap();
        assert!(!s.sync(&src, "local", today).await.unwrap().nothing_new);
        assert!(s.sync(&src, "local", today).await.unwrap().nothing_new);
        let state = s.ledger().sync_state("local").await.unwrap().unwrap();
        assert!(state.error.is_none());
    }

    #[tokio::test]
    async fn garbage_or_a_dead_gateway_keep_the_old_numbers() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-26", 10, 0.1)]);
        s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        // A run going on: the days are asked for every time.
        *src.running.lock().unwrap() = true;
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
    async fn an_old_cached_answer_is_not_taken_for_a_new_one() {
        let s = syncer(Store::open_memory().await.unwrap());
        let src = Stand::with(&[("2026-11-26", 10, 0.1)]);
        *src.updated_at.lock().unwrap() = 5_000;
        s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        // The gateway hands out its earlier answer (older than the last sync saw) once,
        // then the new one.
        src.days
            .lock()
            .unwrap()
            .insert("2026-11-26".into(), (15, 0.15));
        *src.old_once.lock().unwrap() = Some((4_000, 10, 0.1));
        *src.updated_at.lock().unwrap() = 6_000;
        let r = s.sync(&src, "local", d("2026-11-26")).await.unwrap();
        assert_eq!(r.waited, 1);
        assert_eq!(
            s.ledger().totals(&everything()).await.unwrap().tokens.total,
            15
        );
        let state = s.ledger().sync_state("local").await.unwrap().unwrap();
        assert_eq!(state.gateway_at, Some(6_000));
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
