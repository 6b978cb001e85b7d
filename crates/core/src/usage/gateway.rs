//! Reading the gateway's `sessions.usage` answer (OpenClaw 2026.9; shapes and the reasons
//! behind this use of it in docs/openclaw-usage.md).
//!
//! The app asks for **one UTC day at a time** with a small `limit`: the answer's
//! `aggregates` cover every conversation of that day whatever the limit (day totals in
//! `costDaily`, per model in `modelDaily`, per channel in `byChannel`), and the `sessions`
//! list gives the day's most recent conversations. Asking for many days and all sessions at
//! once gives answers of tens of megabytes on a busy assistant (each session row carries
//! per-quarter-hour arrays), which no WebSocket frame takes.
//!
//! Strict on purpose: a count that isn't a whole non-negative number, a cost that isn't a
//! finite non-negative amount, a day other than the one asked for, or parts that add up to
//! more than the whole reject the answer. What the app already has stays as it was; a
//! wrong total is never shown as right.

use super::period::Day;
use super::{Dollars, Error, Result, Tokens};
use serde_json::{json, Value};

/// The params of a `sessions.usage` call for UTC days `from..=to`, all agents, listing at
/// most `limit` conversations.
pub fn request(from: Day, to: Day, limit: u32) -> Value {
    json!({
        "startDate": from.to_string(),
        "endDate": to.to_string(),
        "mode": "utc",
        "agentScope": "all",
        "limit": limit,
    })
}

/// Whether the gateway had finished counting when it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counting {
    Done,
    /// `cacheStatus.status` was `refreshing`, `partial` or `stale`: the numbers may be
    /// low; ask again.
    Pending {
        status: String,
        pending_files: u64,
    },
}

/// One model's use on the day.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDay {
    /// Empty when the gateway didn't say.
    pub provider: String,
    pub model: String,
    pub tokens: u64,
    pub cost: Dollars,
    pub calls: u64,
}

/// One channel's use on the day ([`super::ledger::APP_CHANNEL`] for the rest).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelDay {
    pub channel: String,
    pub tokens: Tokens,
    pub cost: Dollars,
}

/// One conversation's use on the day.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDay {
    pub key: String,
    pub label: Option<String>,
    /// The messaging channel it came from (`telegram`, …); `None` for chat in the app.
    pub channel: Option<String>,
    pub tokens: Tokens,
    pub cost: Dollars,
}

/// Everything about one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    pub day: Day,
    pub tokens: Tokens,
    pub cost: Dollars,
    pub models: Vec<ModelDay>,
    /// Every channel with use, and `app` for what came through none.
    pub channels: Vec<ChannelDay>,
    /// The day's most recent conversations (as many as the call's `limit`).
    pub sessions: Vec<SessionDay>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::BadData(what.into())
}

/// A token count: absent or null is 0; otherwise a whole number ≥ 0 (JSON may write it
/// as `12` or `12.0`).
fn count(obj: &Value, field: &str, at: &str) -> Result<u64> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(u);
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => {
                    Ok(f as u64)
                }
                _ => Err(bad(format!("{at}: {field} is {n}"))),
            }
        }
        Some(other) => Err(bad(format!("{at}: {field} is {other}"))),
    }
}

/// A required token count.
fn required_count(obj: &Value, field: &str, at: &str) -> Result<u64> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(bad(format!("{at}: {field} is missing"))),
        Some(_) => count(obj, field, at),
    }
}

/// A required amount of money: finite and ≥ 0.
fn money(obj: &Value, field: &str, at: &str) -> Result<Dollars> {
    match obj.get(field) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(f),
            _ => Err(bad(format!("{at}: {field} is {n}"))),
        },
        None | Some(Value::Null) => Err(bad(format!("{at}: {field} is missing"))),
        Some(other) => Err(bad(format!("{at}: {field} is {other}"))),
    }
}

fn text(obj: &Value, field: &str) -> Option<String> {
    obj.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn day(obj: &Value, at: &str) -> Result<Day> {
    let raw = obj.get("date").and_then(Value::as_str).unwrap_or_default();
    Day::parse(raw).ok_or_else(|| bad(format!("{at}: date {:?}", obj.get("date"))))
}

fn array<'a>(obj: &'a Value, field: &str, at: &str) -> Result<&'a [Value]> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(format!("{at}: {field} is not a list"))),
    }
}

fn counting(v: &Value) -> Result<Counting> {
    let Some(cs) = v.get("cacheStatus").filter(|c| !c.is_null()) else {
        return Ok(Counting::Done);
    };
    let status = cs
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("cacheStatus without a status"))?;
    Ok(match status {
        "fresh" => Counting::Done,
        "refreshing" | "partial" | "stale" => Counting::Pending {
            status: status.to_owned(),
            pending_files: count(cs, "pendingFiles", "cacheStatus")?,
        },
        other => return Err(bad(format!("cacheStatus {other:?}"))),
    })
}

/// The token split of a totals object (`input`, `output`, `cacheRead`, `cacheWrite`,
/// `totalTokens` required) and its `totalCost`.
fn totals(obj: &Value, at: &str) -> Result<(Tokens, Dollars)> {
    Ok((
        Tokens {
            input: count(obj, "input", at)?,
            output: count(obj, "output", at)?,
            cache_read: count(obj, "cacheRead", at)?,
            cache_write: count(obj, "cacheWrite", at)?,
            total: required_count(obj, "totalTokens", at)?,
        },
        money(obj, "totalCost", at)?,
    ))
}

/// Parts may add up to the whole, never to more (cost: allowing for rounding).
fn within(part: (u64, Dollars), whole: (u64, Dollars)) -> bool {
    part.0 <= whole.0 && part.1 <= whole.1 * (1.0 + 1e-9) + 1e-12
}

fn same(a: (u64, Dollars), b: (u64, Dollars)) -> bool {
    a.0 == b.0 && (a.1 - b.1).abs() <= 1e-9 * a.1.abs().max(b.1.abs()) + 1e-12
}

fn aggregates(v: &Value) -> Result<&Value> {
    v.get("aggregates")
        .filter(|a| a.is_object())
        .ok_or_else(|| bad("no aggregates"))
}

/// Parse the answer to [`request`]`(day, day, _)`.
pub fn parse_day(v: &Value, day: Day) -> Result<(Counting, DayUsage)> {
    if !v.is_object() {
        return Err(bad("the answer is not an object"));
    }
    let counting = counting(v)?;
    let agg = aggregates(v)?;
    let at = day.to_string();

    let mut tokens = Tokens::default();
    let mut cost = 0.0;
    let daily = array(agg, "costDaily", "aggregates")?;
    if daily.len() > 1 {
        return Err(bad(format!("{} days in the answer for one", daily.len())));
    }
    if let Some(row) = daily.first() {
        if self::day(row, "costDaily")? != day {
            return Err(bad(format!("costDaily is for another day than {day}")));
        }
        (tokens, cost) = totals(row, &at)?;
    }

    let mut models = Vec::new();
    let (mut m_tokens, mut m_cost) = (0u64, 0.0);
    for row in array(agg, "modelDaily", "aggregates")? {
        if self::day(row, "modelDaily")? != day {
            return Err(bad(format!("modelDaily is for another day than {day}")));
        }
        let m = ModelDay {
            provider: text(row, "provider").unwrap_or_default(),
            model: text(row, "model").unwrap_or_default(),
            tokens: required_count(row, "tokens", &at)?,
            cost: money(row, "cost", &at)?,
            calls: count(row, "count", &at)?,
        };
        m_tokens += m.tokens;
        m_cost += m.cost;
        models.push(m);
    }
    // Use the gateway couldn't tie to a model (no provider or model on the event) is in
    // the day but not in `modelDaily`: it shows as an unknown model, so the parts add up.
    if !within((m_tokens, m_cost), (tokens.total, cost)) {
        return Err(bad(format!(
            "{day}: the models add up to {m_tokens} tokens ${m_cost}, more than the day's {} tokens ${cost}",
            tokens.total
        )));
    }
    if !same((m_tokens, m_cost), (tokens.total, cost)) {
        models.push(ModelDay {
            provider: String::new(),
            model: String::new(),
            tokens: tokens.total - m_tokens,
            cost: (cost - m_cost).max(0.0),
            calls: 0,
        });
    }

    let mut channels = Vec::new();
    let (mut rest_tokens, mut rest_cost) = (tokens, cost);
    for row in array(agg, "byChannel", "aggregates")? {
        let channel = text(row, "channel").ok_or_else(|| bad("a channel without a name"))?;
        let t = row
            .get("totals")
            .filter(|t| t.is_object())
            .ok_or_else(|| bad(format!("channel {channel} without totals")))?;
        let (ct, cc) = totals(t, &format!("{at} {channel}"))?;
        if !within((ct.total, cc), (rest_tokens.total, rest_cost)) {
            return Err(bad(format!(
                "{day}: the channels add up to more than the day"
            )));
        }
        rest_tokens = Tokens {
            input: rest_tokens.input.saturating_sub(ct.input),
            output: rest_tokens.output.saturating_sub(ct.output),
            cache_read: rest_tokens.cache_read.saturating_sub(ct.cache_read),
            cache_write: rest_tokens.cache_write.saturating_sub(ct.cache_write),
            total: rest_tokens.total - ct.total,
        };
        rest_cost = (rest_cost - cc).max(0.0);
        if channels.iter().any(|c: &ChannelDay| c.channel == channel) {
            return Err(bad(format!("channel {channel} twice")));
        }
        channels.push(ChannelDay {
            channel,
            tokens: ct,
            cost: cc,
        });
    }
    if rest_tokens.total > 0 || rest_cost > 1e-12 {
        channels.push(ChannelDay {
            channel: super::ledger::APP_CHANNEL.to_owned(),
            tokens: rest_tokens,
            cost: rest_cost,
        });
    }

    let list = match v.get("sessions") {
        Some(Value::Array(a)) => a,
        _ => return Err(bad("no list of sessions")),
    };
    let mut sessions: Vec<SessionDay> = Vec::new();
    let (mut s_tokens, mut s_cost) = (0u64, 0.0);
    for s in list {
        let key = text(s, "key").ok_or_else(|| bad("a session without a key"))?;
        let usage = match s.get("usage") {
            None | Some(Value::Null) => continue,
            Some(u) if u.is_object() => u,
            Some(_) => return Err(bad(format!("session {key}: usage is not an object"))),
        };
        let mut found = None;
        for row in array(usage, "dailyBreakdown", &key)? {
            let d = self::day(row, &key)?;
            if d != day {
                return Err(bad(format!("session {key}: {d} in the answer for {day}")));
            }
            if found.is_some() {
                return Err(bad(format!("session {key}: {day} twice")));
            }
            found = Some(totals(row, &format!("{key} {day}"))?);
        }
        let Some((t, c)) = found else { continue };
        if sessions.iter().any(|x| x.key == key) {
            return Err(bad(format!("session {key} listed twice")));
        }
        s_tokens += t.total;
        s_cost += c;
        sessions.push(SessionDay {
            label: text(s, "label"),
            channel: text(s, "channel"),
            key,
            tokens: t,
            cost: c,
        });
    }
    if !within((s_tokens, s_cost), (tokens.total, cost)) {
        return Err(bad(format!(
            "{day}: the conversations add up to more than the day"
        )));
    }
    Ok((
        counting,
        DayUsage {
            day,
            tokens,
            cost,
            models,
            channels,
            sessions,
        },
    ))
}

/// The days with use in the answer to a range [`request`] (from `costDaily`), for a first
/// sync to ask only for those.
pub fn parse_active_days(v: &Value) -> Result<(Counting, Vec<Day>)> {
    if !v.is_object() {
        return Err(bad("the answer is not an object"));
    }
    let counting = counting(v)?;
    let mut days = Vec::new();
    for row in array(aggregates(v)?, "costDaily", "aggregates")? {
        let d = day(row, "costDaily")?;
        let (t, c) = totals(row, &d.to_string())?;
        if t.total > 0 || c > 0.0 {
            days.push(d);
        }
    }
    days.sort();
    days.dedup();
    Ok((counting, days))
}

/// Conversations the "anything new?" probe lists at most (it only needs to know whether
/// there are any).
pub const PROBE_SESSIONS: u32 = 20;

/// The params of the probe: `sessions.list` of every kind of conversation updated in the
/// last `minutes` (by the gateway's own clock: a duration, so a server's clock being off
/// doesn't matter).
pub fn probe_request(minutes: u32) -> Value {
    json!({
        "activeMinutes": minutes.max(1),
        "limit": PROBE_SESSIONS,
        "includeGlobal": true,
        "includeUnknown": true,
    })
}

/// What the probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The gateway's clock when it answered (`ts`, ms).
    pub at: Option<i64>,
    /// The listed conversations' `updatedAt` (gateway clock, ms). A run updates its
    /// conversation when it starts and when it ends.
    pub updated: Vec<i64>,
    /// More were updated than listed.
    pub more: bool,
    /// One of them is running just now: its use is still being written.
    pub running: bool,
}

impl Probe {
    /// Anything updated at or after `since` (gateway clock)? Without `since`: anything
    /// listed at all.
    pub fn changed_since(&self, since: Option<i64>) -> bool {
        self.running
            || self.more
            || match since {
                Some(t) => self.updated.iter().any(|u| *u >= t),
                None => !self.updated.is_empty(),
            }
    }
}

/// Read a `sessions.list` answer into a [`Probe`]. An answer without its list, or with a
/// conversation without a key or a time, is refused (the sync then counts in full).
pub fn parse_probe(v: &Value) -> Result<Probe> {
    let Some(Value::Array(sessions)) = v.get("sessions") else {
        return Err(bad("the conversation list has no list of conversations"));
    };
    let mut running = false;
    let mut updated = Vec::with_capacity(sessions.len());
    for s in sessions {
        let key = s
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a conversation without a key"))?;
        let at = s
            .get("updatedAt")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad(format!("conversation {key} has no updatedAt")))?;
        updated.push(at);
        running |= s.get("hasActiveRun").and_then(Value::as_bool) == Some(true);
    }
    let listed = sessions.len() as u64;
    let total = match v.get("totalCount") {
        None | Some(Value::Null) => listed,
        Some(t) => t
            .as_u64()
            .ok_or_else(|| bad("the conversation count is not a count"))?,
    };
    Ok(Probe {
        at: v.get("ts").and_then(Value::as_i64),
        updated,
        more: total > listed,
        running,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    fn totals_json(input: u64, output: u64, cost: f64) -> Value {
        json!({"input": input, "output": output, "cacheRead": 0, "cacheWrite": 0,
               "totalTokens": input + output, "totalCost": cost,
               "inputCost": 0, "outputCost": 0, "missingCostEntries": 0})
    }

    /// An answer for 2026-11-26 in the gateway's shape: two conversations (one on
    /// telegram), two models.
    fn sample() -> Value {
        let mut day = totals_json(300, 30, 0.0033);
        day["date"] = json!("2026-11-26");
        let mut app_row = totals_json(200, 20, 0.0022);
        app_row["date"] = json!("2026-11-26");
        app_row["tokens"] = json!(220);
        app_row["cost"] = json!(0.0022);
        let mut tg_row = totals_json(100, 10, 0.0011);
        tg_row["date"] = json!("2026-11-26");
        json!({
            "updatedAt": 1795663071980u64,
            "startDate": "2026-11-26",
            "endDate": "2026-11-26",
            "sessions": [
                {"key": "agent:main:main", "label": "Main", "usage": {"dailyBreakdown": [app_row],
                 "utcQuarterHourTokenUsage": [{"date": "2026-11-26", "quarterIndex": 13}]}},
                {"key": "agent:main:telegram:direct:42", "channel": "telegram", "usage": {"dailyBreakdown": [tg_row]}},
                {"key": "agent:main:idle", "usage": null}
            ],
            "totals": totals_json(300, 30, 0.0033),
            "aggregates": {
                "sessionCount": 2,
                "costDaily": [day],
                "modelDaily": [
                    {"date": "2026-11-26", "provider": "clawkeeper", "model": "echo-1", "tokens": 220, "cost": 0.0022, "count": 2},
                    {"date": "2026-11-26", "provider": "clawkeeper", "model": "echo-2", "tokens": 110, "cost": 0.0011, "count": 1}
                ],
                "byChannel": [{"channel": "telegram", "totals": totals_json(100, 10, 0.0011)}]
            },
            "cacheStatus": {"status": "fresh", "cachedFiles": 3, "pendingFiles": 0, "staleFiles": 0}
        })
    }

    #[test]
    fn reads_a_day() {
        let (c, u) = parse_day(&sample(), d("2026-11-26")).unwrap();
        assert_eq!(c, Counting::Done);
        assert_eq!(u.tokens.total, 330);
        assert_eq!(u.tokens.input, 300);
        assert_eq!(u.models.len(), 2);
        assert_eq!(u.models[1].calls, 1);
        let names: Vec<_> = u
            .channels
            .iter()
            .map(|c| (c.channel.as_str(), c.tokens.total))
            .collect();
        assert_eq!(
            names,
            vec![("telegram", 110), ("app", 220)],
            "the rest is the app's"
        );
        assert!((u.channels[1].cost - 0.0022).abs() < 1e-12);
        assert_eq!(u.sessions.len(), 2, "the session without usage is left out");
        assert_eq!(u.sessions[0].label.as_deref(), Some("Main"));
        assert_eq!(u.sessions[1].channel.as_deref(), Some("telegram"));
    }

    #[test]
    fn an_empty_day_is_zero() {
        let v = json!({"sessions": [], "aggregates": {"costDaily": [], "modelDaily": [], "byChannel": []}});
        let (_, u) = parse_day(&v, d("2026-11-26")).unwrap();
        assert_eq!((u.tokens.total, u.cost), (0, 0.0));
        assert!(u.channels.is_empty() && u.models.is_empty() && u.sessions.is_empty());
    }

    #[test]
    fn still_counting_is_told() {
        let mut v = sample();
        v["cacheStatus"] = json!({"status": "refreshing", "pendingFiles": 3});
        assert_eq!(
            parse_day(&v, d("2026-11-26")).unwrap().0,
            Counting::Pending {
                status: "refreshing".into(),
                pending_files: 3
            }
        );
        v["cacheStatus"] = json!({"status": "weird"});
        assert!(parse_day(&v, d("2026-11-26")).is_err());
    }

    #[test]
    fn bad_numbers_and_contradictions_reject_the_whole_answer() {
        let cases: Vec<(&str, Value)> = vec![
            ("/aggregates/costDaily/0/totalCost", json!(-0.5)),
            ("/aggregates/costDaily/0/totalCost", json!("NaN")),
            ("/aggregates/costDaily/0/totalCost", json!(null)),
            ("/aggregates/costDaily/0/input", json!(-1)),
            ("/aggregates/costDaily/0/input", json!(1.5)),
            ("/aggregates/costDaily/0/input", json!("12")),
            ("/aggregates/costDaily/0/date", json!("2026-11-25")),
            ("/aggregates/costDaily/0/date", json!("2026-02-30")),
            ("/aggregates/modelDaily/0/cost", json!(null)),
            ("/aggregates/modelDaily/0/tokens", json!(true)),
            // The models add up to more than the day.
            ("/aggregates/modelDaily/0/tokens", json!(221)),
            ("/aggregates/modelDaily/1/cost", json!(0.5)),
            // A channel bigger than the day.
            ("/aggregates/byChannel/0/totals/totalTokens", json!(331)),
            ("/aggregates/byChannel/0/totals", json!(null)),
            ("/aggregates", json!(null)),
            // A conversation bigger than the day, or on another day.
            ("/sessions/0/usage/dailyBreakdown/0/totalTokens", json!(400)),
            (
                "/sessions/0/usage/dailyBreakdown/0/date",
                json!("2026-11-25"),
            ),
            ("/sessions/0/usage/dailyBreakdown", json!({"a": 1})),
            ("/sessions/0/usage", json!(7)),
            ("/sessions/0/key", json!(null)),
            ("/sessions", json!(3)),
        ];
        for (ptr, value) in cases {
            let mut v = sample();
            *v.pointer_mut(ptr).unwrap() = value.clone();
            let err = parse_day(&v, d("2026-11-26")).unwrap_err();
            assert!(matches!(err, Error::BadData(_)), "{ptr} = {value}: {err:?}");
        }
        let mut v = sample();
        let first = v["sessions"][0].clone();
        v["sessions"].as_array_mut().unwrap().push(first);
        assert!(parse_day(&v, d("2026-11-26")).is_err(), "a session twice");
        for garbage in [json!(null), json!([]), json!("ok"), json!({"sessions": []})] {
            assert!(parse_day(&garbage, d("2026-11-26")).is_err(), "{garbage}");
        }
    }

    #[test]
    fn use_without_a_model_is_an_unknown_model() {
        let mut v = sample();
        v["aggregates"]["modelDaily"].as_array_mut().unwrap().pop();
        let (_, u) = parse_day(&v, d("2026-11-26")).unwrap();
        assert_eq!(u.models.len(), 2);
        assert_eq!((u.models[1].model.as_str(), u.models[1].tokens), ("", 110));
        assert!((u.models[1].cost - 0.0011).abs() < 1e-12);
    }

    #[test]
    fn whole_floats_are_counts() {
        let mut v = sample();
        v["aggregates"]["costDaily"][0]["input"] = json!(300.0);
        assert_eq!(parse_day(&v, d("2026-11-26")).unwrap().1.tokens.input, 300);
    }

    #[test]
    fn active_days_from_a_range() {
        let mut a = totals_json(1, 1, 0.1);
        a["date"] = json!("2026-11-02");
        let mut idle = totals_json(0, 0, 0.0);
        idle["date"] = json!("2026-11-03");
        let mut b = totals_json(5, 0, 0.0);
        b["date"] = json!("2026-11-01");
        let v = json!({"sessions": [], "aggregates": {"costDaily": [a, idle, b]}});
        let (_, days) = parse_active_days(&v).unwrap();
        assert_eq!(days, vec![d("2026-11-01"), d("2026-11-02")]);
    }

    #[test]
    fn the_probe_sees_what_was_updated_since_and_a_run() {
        let p = parse_probe(&json!({"ts": 9_000, "count": 0, "totalCount": 0, "sessions": []}))
            .unwrap();
        assert_eq!(p.at, Some(9_000));
        assert!(!p.changed_since(Some(5_000)) && !p.changed_since(None));
        let p = parse_probe(&json!({"totalCount": 2, "sessions": [
            {"key": "agent:main:main", "updatedAt": 4_000, "hasActiveRun": false},
            {"key": "agent:main:telegram:direct:1", "updatedAt": 6_000}]}))
        .unwrap();
        assert!(p.changed_since(Some(5_000)), "updated at 6000");
        assert!(!p.changed_since(Some(6_001)), "both before");
        assert!(p.changed_since(None));
        let running = parse_probe(&json!({"sessions": [
            {"key": "k", "updatedAt": 1, "hasActiveRun": true}]}))
        .unwrap();
        assert!(running.changed_since(Some(5_000)), "a run is going on");
        let more =
            parse_probe(&json!({"totalCount": 50, "sessions": [{"key": "k", "updatedAt": 1}]}))
                .unwrap();
        assert!(more.changed_since(Some(5_000)), "not all listed");
        assert_eq!(probe_request(0)["activeMinutes"], 1);
    }

    #[test]
    fn a_probe_answer_that_isnt_a_list_is_refused() {
        for bad in [
            json!({"count": 1}),
            json!({"sessions": "x"}),
            json!({"sessions": [{"updatedAt": 1}]}),
            json!({"sessions": [{"key": "k"}]}),
            json!({"sessions": [], "totalCount": "many"}),
            json!({"sessions": null}),
            json!({"sessions": [], "totalCount": -1}),
            json!([]),
        ] {
            assert!(parse_probe(&bad).is_err(), "{bad}");
        }
    }
}
