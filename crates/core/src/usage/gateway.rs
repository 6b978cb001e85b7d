//! Reading the gateway's `sessions.usage` answer (OpenClaw 2026.9; shapes in
//! docs/openclaw-usage.md): per session, `usage.dailyBreakdown` (tokens and cost per day)
//! and `usage.dailyModelUsage` (tokens, cost and calls per day and model), plus
//! `cacheStatus` while the gateway is still counting.
//!
//! Strict on purpose: a count that isn't a whole non-negative number, a cost that isn't a
//! finite non-negative amount, or a day that isn't a calendar day rejects the whole
//! answer. What the app already has stays as it was; a wrong total is never shown as right.

use super::period::Day;
use super::{Dollars, Error, Result, Tokens};
use serde_json::{json, Value};

/// The params of a `sessions.usage` call for UTC days `from..=to`, all agents, at most
/// `limit` sessions.
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
    /// `cacheStatus.status` was `refreshing`, `partial` or `stale`: ask again.
    Pending {
        status: String,
        pending_files: u64,
    },
}

/// One session's usage on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDay {
    pub day: Day,
    pub tokens: Tokens,
    pub cost: Dollars,
}

/// One session's use of one model on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDay {
    pub day: Day,
    /// Empty when the gateway didn't say.
    pub provider: String,
    pub model: String,
    pub tokens: u64,
    pub cost: Dollars,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionUsage {
    pub key: String,
    pub label: Option<String>,
    /// The messaging channel it came from (`telegram`, …); `None` for chat in the app.
    pub channel: Option<String>,
    pub days: Vec<SessionDay>,
    pub models: Vec<ModelDay>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionsUsage {
    pub counting: Counting,
    pub sessions: Vec<SessionUsage>,
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

fn session_day(row: &Value, at: &str) -> Result<SessionDay> {
    let day = day(row, at)?;
    let at = format!("{at} {day}");
    // `totalTokens`/`totalCost` when present (even as null: a NaN the gateway wrote as
    // null must not fall back to the other spelling), else `tokens`/`cost`.
    let total = if row.get("totalTokens").is_some() {
        required_count(row, "totalTokens", &at)?
    } else {
        required_count(row, "tokens", &at)?
    };
    let cost = if row.get("totalCost").is_some() {
        money(row, "totalCost", &at)?
    } else {
        money(row, "cost", &at)?
    };
    Ok(SessionDay {
        day,
        tokens: Tokens {
            input: count(row, "input", &at)?,
            output: count(row, "output", &at)?,
            cache_read: count(row, "cacheRead", &at)?,
            cache_write: count(row, "cacheWrite", &at)?,
            total,
        },
        cost,
    })
}

fn model_day(row: &Value, at: &str) -> Result<ModelDay> {
    let day = day(row, at)?;
    let at = format!("{at} {day}");
    let model = text(row, "model").unwrap_or_default();
    let provider = text(row, "provider").unwrap_or_default();
    Ok(ModelDay {
        day,
        tokens: required_count(row, "tokens", &at)?,
        cost: money(row, "cost", &at)?,
        calls: count(row, "count", &at)?,
        provider,
        model,
    })
}

/// Parse a `sessions.usage` result.
pub fn parse_sessions_usage(v: &Value) -> Result<SessionsUsage> {
    if !v.is_object() {
        return Err(bad("the answer is not an object"));
    }
    let counting = counting(v)?;
    let list = match v.get("sessions") {
        Some(Value::Array(a)) => a,
        _ => return Err(bad("no list of sessions")),
    };
    let mut sessions = Vec::with_capacity(list.len());
    for s in list {
        let key = text(s, "key").ok_or_else(|| bad("a session without a key"))?;
        let usage = match s.get("usage") {
            None | Some(Value::Null) => {
                continue;
            }
            Some(u) if u.is_object() => u,
            Some(_) => return Err(bad(format!("session {key}: usage is not an object"))),
        };
        let days = array(usage, "dailyBreakdown", &key)?
            .iter()
            .map(|r| session_day(r, &key))
            .collect::<Result<Vec<_>>>()?;
        let models = array(usage, "dailyModelUsage", &key)?
            .iter()
            .map(|r| model_day(r, &key))
            .collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        for d in &days {
            if !seen.insert(d.day) {
                return Err(bad(format!("session {key}: day {} twice", d.day)));
            }
        }
        sessions.push(SessionUsage {
            label: text(s, "label"),
            channel: text(s, "channel"),
            key,
            days,
            models,
        });
    }
    let mut keys = std::collections::HashSet::new();
    for s in &sessions {
        if !keys.insert(s.key.as_str()) {
            return Err(bad(format!("session {} listed twice", s.key)));
        }
    }
    Ok(SessionsUsage { counting, sessions })
}

/// How many sessions the answer listed (including those without usage), to tell whether
/// the `limit` cut the list short.
pub fn listed(v: &Value) -> usize {
    v.get("sessions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "updatedAt": 1764115200000u64,
            "startDate": "2026-11-25",
            "endDate": "2026-11-26",
            "sessions": [
                {
                    "key": "agent:main:main",
                    "label": "Main",
                    "channel": null,
                    "usage": {
                        "input": 30, "output": 12, "totalTokens": 42, "totalCost": 0.0042,
                        "dailyBreakdown": [
                            {"date": "2026-11-25", "tokens": 20, "cost": 0.002, "input": 14, "output": 6,
                             "cacheRead": 0, "cacheWrite": 0, "totalTokens": 20, "totalCost": 0.002},
                            {"date": "2026-11-26", "tokens": 22, "cost": 0.0022, "input": 16, "output": 6,
                             "cacheRead": 0, "cacheWrite": 0, "totalTokens": 22, "totalCost": 0.0022}
                        ],
                        "dailyModelUsage": [
                            {"date": "2026-11-25", "provider": "clawkeeper", "model": "echo-1", "tokens": 20, "cost": 0.002, "count": 1},
                            {"date": "2026-11-26", "provider": "clawkeeper", "model": "echo-1", "tokens": 22, "cost": 0.0022, "count": 1}
                        ]
                    }
                },
                {"key": "agent:main:telegram:direct:42", "channel": "telegram", "usage": null}
            ],
            "cacheStatus": {"status": "fresh", "cachedFiles": 1, "pendingFiles": 0, "staleFiles": 0}
        })
    }

    #[test]
    fn reads_days_and_models() {
        let u = parse_sessions_usage(&sample()).unwrap();
        assert_eq!(u.counting, Counting::Done);
        assert_eq!(u.sessions.len(), 1, "the session without usage is skipped");
        let s = &u.sessions[0];
        assert_eq!(s.label.as_deref(), Some("Main"));
        assert_eq!(s.channel, None);
        assert_eq!(s.days[1].tokens.input, 16);
        assert_eq!(s.days[1].tokens.total, 22);
        assert_eq!(s.models[0].model, "echo-1");
        assert_eq!(s.models[0].calls, 1);
        assert_eq!(listed(&sample()), 2);
    }

    #[test]
    fn still_counting_is_told() {
        let mut v = sample();
        v["cacheStatus"] = json!({"status": "refreshing", "pendingFiles": 3});
        assert_eq!(
            parse_sessions_usage(&v).unwrap().counting,
            Counting::Pending {
                status: "refreshing".into(),
                pending_files: 3
            }
        );
        v["cacheStatus"] = json!({"status": "weird"});
        assert!(parse_sessions_usage(&v).is_err());
    }

    #[test]
    fn bad_numbers_reject_the_whole_answer() {
        let cases: Vec<(&str, Value)> = vec![
            ("/sessions/0/usage/dailyBreakdown/0/totalCost", json!(-0.5)),
            ("/sessions/0/usage/dailyBreakdown/0/totalCost", json!("NaN")),
            (
                "/sessions/0/usage/dailyBreakdown/0/totalCost",
                json!(f64::INFINITY),
            ),
            ("/sessions/0/usage/dailyBreakdown/0/input", json!(-1)),
            ("/sessions/0/usage/dailyBreakdown/0/input", json!(1.5)),
            ("/sessions/0/usage/dailyBreakdown/0/input", json!("12")),
            (
                "/sessions/0/usage/dailyBreakdown/0/date",
                json!("2026-02-30"),
            ),
            ("/sessions/0/usage/dailyModelUsage/0/cost", json!(null)),
            ("/sessions/0/usage/dailyModelUsage/0/tokens", json!(true)),
            ("/sessions/0/usage/dailyBreakdown", json!({"a": 1})),
            ("/sessions/0/usage", json!(7)),
            ("/sessions/0/key", json!(null)),
        ];
        for (ptr, value) in cases {
            let mut v = sample();
            *v.pointer_mut(ptr).unwrap() = value.clone();
            let err = parse_sessions_usage(&v).unwrap_err();
            assert!(matches!(err, Error::BadData(_)), "{ptr} = {value}: {err:?}");
        }
        // A day twice in one session, or a session twice, would count twice.
        let mut v = sample();
        v["sessions"][0]["usage"]["dailyBreakdown"][1]["date"] = json!("2026-11-25");
        assert!(parse_sessions_usage(&v).is_err());
        let mut v = sample();
        let first = v["sessions"][0].clone();
        v["sessions"].as_array_mut().unwrap().push(first);
        assert!(parse_sessions_usage(&v).is_err());
        for garbage in [json!(null), json!([]), json!("ok"), json!({"sessions": 3})] {
            assert!(parse_sessions_usage(&garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn missing_optional_counts_are_zero_but_totals_are_required() {
        let mut v = sample();
        let row = &mut v["sessions"][0]["usage"]["dailyBreakdown"][0];
        row.as_object_mut().unwrap().remove("cacheRead");
        assert_eq!(
            parse_sessions_usage(&v).unwrap().sessions[0].days[0]
                .tokens
                .cache_read,
            0
        );
        let row = &mut v["sessions"][0]["usage"]["dailyBreakdown"][0];
        row.as_object_mut().unwrap().remove("totalTokens");
        row.as_object_mut().unwrap().remove("tokens");
        assert!(parse_sessions_usage(&v).is_err());
    }

    #[test]
    fn whole_floats_are_counts() {
        let mut v = sample();
        v["sessions"][0]["usage"]["dailyBreakdown"][0]["input"] = json!(14.0);
        assert_eq!(
            parse_sessions_usage(&v).unwrap().sessions[0].days[0]
                .tokens
                .input,
            14
        );
    }
}
