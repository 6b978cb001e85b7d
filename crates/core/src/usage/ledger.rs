//! The usage ledger in Clawkeeper's own SQLite: per instance and UTC day, the day's totals
//! and its use per model, per channel and by its most recent conversations. A sync
//! replaces whole days in one transaction, so a total is either the old count or the new
//! one, never half of each.

use super::gateway::DayUsage;
use super::period::Day;
use super::{Dollars, Result, Tokens};
use crate::store::{classify, Store};
use serde::Serialize;
use sqlx::Row as _;

/// What to group totals by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Day,
    Model,
    /// The messaging channel (`app` for chat in the app or the gateway's own UI).
    Channel,
    Session,
    /// Day and model (the stacked spend chart).
    DayModel,
}

impl By {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "day" => By::Day,
            "model" => By::Model,
            "channel" => By::Channel,
            "session" => By::Session,
            "day-model" | "day_model" => By::DayModel,
            _ => return None,
        })
    }
}

/// Channel name for chat that came through no messaging channel.
pub const APP_CHANNEL: &str = "app";

/// One line of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The day (by day, by day and model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<Day>,
    /// The model, channel or session (empty by day).
    pub key: String,
    /// A session's name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// By model, only `total` is known per model (the gateway splits input and output per
    /// day, channel and conversation, not per model).
    pub tokens: Tokens,
    pub cost: Dollars,
    /// Model calls (by model only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
}

/// The sum over a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub tokens: Tokens,
    pub cost: Dollars,
}

/// Where an instance's sync stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    pub synced_from: Day,
    pub synced_to: Day,
    pub synced_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The newest `updatedAt` of the gateway's answers in that sync (its clock, ms): an
    /// answer older than this is a cached one from before.
    #[serde(skip)]
    pub gateway_at: Option<i64>,
    /// The gateway's conversations when its usage was last counted in full (see
    /// [`super::sync`]'s probe), and when that was.
    #[serde(skip)]
    pub probe: Option<String>,
    #[serde(skip)]
    pub full_at: Option<String>,
}

/// Which rows: days `from..=to`, one instance or all.
#[derive(Debug, Clone)]
pub struct Filter {
    pub from: Day,
    pub to: Day,
    pub instance: Option<String>,
}

#[derive(Clone)]
pub struct Ledger {
    store: Store,
}

fn u64_of(r: &sqlx::sqlite::SqliteRow, col: &str) -> std::result::Result<u64, sqlx::Error> {
    let v: i64 = r.try_get(col)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn tokens_of(r: &sqlx::sqlite::SqliteRow) -> std::result::Result<Tokens, sqlx::Error> {
    Ok(Tokens {
        input: u64_of(r, "input")?,
        output: u64_of(r, "output")?,
        cache_read: u64_of(r, "cache_read")?,
        cache_write: u64_of(r, "cache_write")?,
        total: u64_of(r, "total_tokens")?,
    })
}

impl Ledger {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Replace everything recorded for `instance` on days `from..=to` with `days` (days
    /// outside the range are ignored), and note the sync. One transaction.
    pub async fn replace(
        &self,
        instance: &str,
        from: Day,
        to: Day,
        days: &[DayUsage],
        at: &str,
        gateway_at: Option<i64>,
    ) -> Result<usize> {
        let (from_s, to_s) = (from.to_string(), to.to_string());
        let mut tx = self.store.pool().begin().await.map_err(classify)?;
        for table in [
            "usage_days",
            "usage_model_days",
            "usage_channel_days",
            "usage_session_days",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE instance_id = ?1 AND day BETWEEN ?2 AND ?3"
            ))
            .bind(instance)
            .bind(&from_s)
            .bind(&to_s)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        let mut rows = 0;
        for d in days.iter().filter(|d| d.day >= from && d.day <= to) {
            let day = d.day.to_string();
            if d.tokens.total == 0 && d.cost == 0.0 && d.models.is_empty() {
                continue;
            }
            sqlx::query(
                "INSERT INTO usage_days (instance_id, day, input, output, cache_read, cache_write, total_tokens, cost)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(instance)
            .bind(&day)
            .bind(i64_of(d.tokens.input))
            .bind(i64_of(d.tokens.output))
            .bind(i64_of(d.tokens.cache_read))
            .bind(i64_of(d.tokens.cache_write))
            .bind(i64_of(d.tokens.total))
            .bind(d.cost)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            rows += 1;
            for m in &d.models {
                // The same model can come under two spellings that normalise the same:
                // add them up rather than fail.
                sqlx::query(
                    "INSERT INTO usage_model_days (instance_id, day, provider, model, tokens, cost, calls)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT DO UPDATE SET tokens = tokens + excluded.tokens, cost = cost + excluded.cost, calls = calls + excluded.calls",
                )
                .bind(instance)
                .bind(&day)
                .bind(&m.provider)
                .bind(&m.model)
                .bind(i64_of(m.tokens))
                .bind(m.cost)
                .bind(i64_of(m.calls))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                rows += 1;
            }
            for c in &d.channels {
                sqlx::query(
                    "INSERT INTO usage_channel_days (instance_id, day, channel, input, output, cache_read, cache_write, total_tokens, cost)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .bind(instance)
                .bind(&day)
                .bind(&c.channel)
                .bind(i64_of(c.tokens.input))
                .bind(i64_of(c.tokens.output))
                .bind(i64_of(c.tokens.cache_read))
                .bind(i64_of(c.tokens.cache_write))
                .bind(i64_of(c.tokens.total))
                .bind(c.cost)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                rows += 1;
            }
            for s in &d.sessions {
                sqlx::query(
                    "INSERT INTO usage_session_days (instance_id, day, session_key, label, channel, input, output, cache_read, cache_write, total_tokens, cost)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .bind(instance)
                .bind(&day)
                .bind(&s.key)
                .bind(&s.label)
                .bind(&s.channel)
                .bind(i64_of(s.tokens.input))
                .bind(i64_of(s.tokens.output))
                .bind(i64_of(s.tokens.cache_read))
                .bind(i64_of(s.tokens.cache_write))
                .bind(i64_of(s.tokens.total))
                .bind(s.cost)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                rows += 1;
            }
        }
        sqlx::query(
            "INSERT INTO usage_syncs (instance_id, synced_from, synced_to, synced_at, attempted_at, error, gateway_at)
             VALUES (?1, ?2, ?3, ?4, ?4, NULL, ?5)
             ON CONFLICT(instance_id) DO UPDATE SET synced_from = ?2, synced_to = ?3, synced_at = ?4, attempted_at = ?4, error = NULL,
                 gateway_at = COALESCE(?5, gateway_at)",
        )
        .bind(instance)
        .bind(&from_s)
        .bind(&to_s)
        .bind(at)
        .bind(gateway_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(rows)
    }

    /// Note what the gateway's conversations looked like when the sync that just succeeded
    /// began (`at`: that sync's time).
    pub async fn note_probe(&self, instance: &str, probe: Option<&str>, at: &str) -> Result<()> {
        sqlx::query("UPDATE usage_syncs SET probe = ?2, full_at = ?3 WHERE instance_id = ?1")
            .bind(instance)
            .bind(probe)
            .bind(at)
            .execute(self.store.pool())
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Note a sync that found nothing new: the numbers are current as of `at`.
    pub async fn note_unchanged(&self, instance: &str, at: &str) -> Result<()> {
        sqlx::query(
            "UPDATE usage_syncs SET synced_at = ?2, attempted_at = ?2, error = NULL WHERE instance_id = ?1",
        )
        .bind(instance)
        .bind(at)
        .execute(self.store.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Note a failed sync (the rows stay as they were).
    pub async fn note_failure(&self, instance: &str, at: &str, error: &str) -> Result<()> {
        sqlx::query("UPDATE usage_syncs SET attempted_at = ?2, error = ?3 WHERE instance_id = ?1")
            .bind(instance)
            .bind(at)
            .bind(error)
            .execute(self.store.pool())
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub async fn sync_state(&self, instance: &str) -> Result<Option<SyncState>> {
        let row = sqlx::query(
            "SELECT synced_from, synced_to, synced_at, attempted_at, error, gateway_at, probe, full_at
             FROM usage_syncs WHERE instance_id = ?1",
        )
        .bind(instance)
        .fetch_optional(self.store.pool())
        .await
        .map_err(classify)?;
        let Some(r) = row else { return Ok(None) };
        let day = |col: &str| -> Result<Day> {
            let s: String = r.try_get(col).map_err(classify)?;
            Day::parse(&s).ok_or_else(|| {
                super::Error::Store(crate::store::Error::BadValue(format!("{col} {s:?}")))
            })
        };
        Ok(Some(SyncState {
            synced_from: day("synced_from")?,
            synced_to: day("synced_to")?,
            synced_at: r.try_get("synced_at").map_err(classify)?,
            attempted_at: r.try_get("attempted_at").map_err(classify)?,
            error: r.try_get("error").map_err(classify)?,
            gateway_at: r.try_get("gateway_at").map_err(classify)?,
            probe: r.try_get("probe").map_err(classify)?,
            full_at: r.try_get("full_at").map_err(classify)?,
        }))
    }

    /// Forget an instance's usage (its server was deleted).
    pub async fn forget(&self, instance: &str) -> Result<()> {
        for table in [
            "usage_days",
            "usage_model_days",
            "usage_channel_days",
            "usage_session_days",
            "usage_syncs",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE instance_id = ?1"))
                .bind(instance)
                .execute(self.store.pool())
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// Tokens and cost over a range.
    pub async fn totals(&self, f: &Filter) -> Result<Totals> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(input),0) AS input, COALESCE(SUM(output),0) AS output,
                    COALESCE(SUM(cache_read),0) AS cache_read, COALESCE(SUM(cache_write),0) AS cache_write,
                    COALESCE(SUM(total_tokens),0) AS total_tokens, COALESCE(SUM(cost),0.0) AS cost
             FROM usage_days WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR instance_id = ?3)",
        )
        .bind(f.from.to_string())
        .bind(f.to.to_string())
        .bind(&f.instance)
        .fetch_one(self.store.pool())
        .await
        .map_err(classify)?;
        Ok(Totals {
            tokens: tokens_of(&r).map_err(classify)?,
            cost: r.try_get("cost").map_err(classify)?,
        })
    }

    /// A breakdown over a range, biggest spend first (by day: oldest first).
    pub async fn breakdown(&self, f: &Filter, by: By) -> Result<Vec<Row>> {
        const SUMS: &str = "SUM(input) AS input, SUM(output) AS output, SUM(cache_read) AS cache_read,
                            SUM(cache_write) AS cache_write, SUM(total_tokens) AS total_tokens, SUM(cost) AS cost";
        const WHERE: &str = "WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR instance_id = ?3)";
        let sql = match by {
            By::Day => format!("SELECT day, '' AS k, NULL AS label, {SUMS} FROM usage_days {WHERE} GROUP BY day ORDER BY day"),
            By::Channel => format!("SELECT NULL AS day, channel AS k, NULL AS label, {SUMS} FROM usage_channel_days {WHERE} GROUP BY k ORDER BY SUM(cost) DESC, k"),
            By::Session => format!("SELECT NULL AS day, session_key AS k, MAX(label) AS label, {SUMS} FROM usage_session_days {WHERE} GROUP BY k ORDER BY SUM(cost) DESC, k"),
            By::Model | By::DayModel => {
                let (day, group, order) = if by == By::Model {
                    ("NULL", "k", "SUM(cost) DESC, k")
                } else {
                    ("day", "day, k", "day, SUM(cost) DESC, k")
                };
                format!(
                    "SELECT {day} AS day, CASE model WHEN '' THEN 'unknown' ELSE model END AS k, NULL AS label,
                            0 AS input, 0 AS output, 0 AS cache_read, 0 AS cache_write, SUM(tokens) AS total_tokens,
                            SUM(cost) AS cost, SUM(calls) AS calls
                     FROM usage_model_days {WHERE} GROUP BY {group} ORDER BY {order}"
                )
            }
        };
        let rows = sqlx::query(&sql)
            .bind(f.from.to_string())
            .bind(f.to.to_string())
            .bind(&f.instance)
            .fetch_all(self.store.pool())
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                let day: Option<String> = r.try_get("day")?;
                let calls = if matches!(by, By::Model | By::DayModel) {
                    Some(u64_of(r, "calls")?)
                } else {
                    None
                };
                Ok(Row {
                    day: day.as_deref().and_then(Day::parse),
                    key: r.try_get("k")?,
                    label: r.try_get("label")?,
                    tokens: tokens_of(r)?,
                    cost: r.try_get("cost")?,
                    calls,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| classify(e).into())
    }

    /// Spend per day over a range, one entry per day with use (for alerts and spikes).
    pub async fn daily_spend(&self, f: &Filter) -> Result<Vec<(Day, Dollars)>> {
        Ok(self
            .breakdown(f, By::Day)
            .await?
            .into_iter()
            .filter_map(|r| r.day.map(|d| (d, r.cost)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::gateway::{ChannelDay, ModelDay, SessionDay};

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    fn tokens(t: u64) -> Tokens {
        Tokens {
            input: t / 2,
            output: t - t / 2,
            cache_read: 0,
            cache_write: 0,
            total: t,
        }
    }

    /// A day with one model `m-<day>`, all of it on `channel`, one conversation.
    fn day(day: &str, t: u64, c: f64, channel: &str) -> DayUsage {
        DayUsage {
            day: d(day),
            tokens: tokens(t),
            cost: c,
            models: vec![ModelDay {
                provider: "p".into(),
                model: format!("m-{}", &day[8..]),
                tokens: t,
                cost: c,
                calls: 1,
            }],
            channels: vec![ChannelDay {
                channel: channel.into(),
                tokens: tokens(t),
                cost: c,
            }],
            sessions: vec![SessionDay {
                key: format!("s-{day}"),
                label: Some(format!("Talk of {day}")),
                channel: None,
                tokens: tokens(t),
                cost: c,
            }],
        }
    }

    fn all(from: &str, to: &str) -> Filter {
        Filter {
            from: d(from),
            to: d(to),
            instance: None,
        }
    }

    #[tokio::test]
    async fn replacing_days_changes_only_those_days() {
        let store = Store::open_memory().await.unwrap();
        let ledger = Ledger::new(store);
        let first = vec![
            day("2026-11-20", 100, 0.1, "app"),
            day("2026-11-25", 10, 0.01, "telegram"),
        ];
        ledger
            .replace(
                "local",
                d("2020-01-01"),
                d("2026-11-25"),
                &first,
                "t1",
                None,
            )
            .await
            .unwrap();
        let t = ledger
            .totals(&all("2026-11-01", "2026-11-30"))
            .await
            .unwrap();
        assert_eq!(t.tokens.total, 110);
        assert!((t.cost - 0.11).abs() < 1e-12);

        // The next sync asks again for the 25th and 26th only: the 20th stays.
        let second = vec![
            day("2026-11-25", 15, 0.015, "telegram"),
            day("2026-11-26", 5, 0.005, "app"),
        ];
        ledger
            .replace(
                "local",
                d("2026-11-25"),
                d("2026-11-26"),
                &second,
                "t2",
                None,
            )
            .await
            .unwrap();
        let by_day = ledger
            .breakdown(&all("2026-11-01", "2026-11-30"), By::Day)
            .await
            .unwrap();
        let days: Vec<_> = by_day
            .iter()
            .map(|r| (r.day.unwrap().to_string(), r.tokens.total))
            .collect();
        assert_eq!(
            days,
            vec![
                ("2026-11-20".into(), 100),
                ("2026-11-25".into(), 15),
                ("2026-11-26".into(), 5)
            ]
        );
        let channels = ledger
            .breakdown(&all("2026-11-01", "2026-11-30"), By::Channel)
            .await
            .unwrap();
        assert_eq!(channels[0].key, "app");
        assert_eq!(channels[0].tokens.total, 105);
        assert_eq!(channels[1].key, "telegram");
        let models = ledger
            .breakdown(&all("2026-11-25", "2026-11-26"), By::Model)
            .await
            .unwrap();
        assert_eq!(models.len(), 2);
        assert_eq!(models[0].key, "m-25", "biggest spend first");
        assert_eq!(models[0].calls, Some(1));
        let sessions = ledger
            .breakdown(&all("2026-11-01", "2026-11-30"), By::Session)
            .await
            .unwrap();
        assert_eq!(sessions.len(), 3);
        assert_eq!(sessions[0].label.as_deref(), Some("Talk of 2026-11-20"));
        let state = ledger.sync_state("local").await.unwrap().unwrap();
        assert_eq!(state.synced_from, d("2026-11-25"));
        assert_eq!(state.synced_at, "t2");

        ledger.note_failure("local", "t3", "boom").await.unwrap();
        let state = ledger.sync_state("local").await.unwrap().unwrap();
        assert_eq!(state.error.as_deref(), Some("boom"));
        assert_eq!(state.synced_at, "t2");

        // Other instances are separate; forgetting one leaves the other.
        ledger
            .replace("srv", d("2026-11-25"), d("2026-11-25"), &first, "t4", None)
            .await
            .unwrap();
        let only_srv = Filter {
            instance: Some("srv".into()),
            ..all("2026-11-01", "2026-11-30")
        };
        assert_eq!(ledger.totals(&only_srv).await.unwrap().tokens.total, 10);
        ledger.forget("srv").await.unwrap();
        assert_eq!(ledger.totals(&only_srv).await.unwrap().tokens.total, 0);
        assert_eq!(
            ledger
                .totals(&all("2026-11-01", "2026-11-30"))
                .await
                .unwrap()
                .tokens
                .total,
            120
        );
    }
}
