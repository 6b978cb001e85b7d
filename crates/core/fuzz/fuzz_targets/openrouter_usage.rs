//! Fuzz target `openrouter_usage`: every parser of `openrouter::api` (key info, activity,
//! credits, key list, one key, created key, deleted, the error envelope at each status,
//! `Retry-After`) on the same bytes. Invariants: no panic; an accepted answer holds only
//! finite money, never negative (a `limit_remaining` may be below zero, finite); bytes that
//! aren't JSON are never accepted; no message shows key text (`sk-or-` and a long run of
//! key characters); messages are bounded and free of control characters.
//! Self-contained (not in `src/checks.rs`) while the module is new.
#![no_main]

use clawkeeper_core::openrouter::api::{self as or, KeyRole};
use clawkeeper_core::Secret;
use libfuzzer_sys::fuzz_target;

fn money_ok(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

fn opt_money_ok(v: Option<f64>) -> bool {
    v.is_none_or(money_ok)
}

/// No key text: every `sk-or-` is followed by the redaction marker or by fewer than
/// `KEY_TEXT_MIN` key characters (a masked label).
fn no_key_text(s: &str) -> bool {
    s.match_indices("sk-or-").all(|(i, _)| {
        let after = &s[i + "sk-or-".len()..];
        let run = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .count();
        after.starts_with("<redacted>") || run < or::KEY_TEXT_MIN
    })
}

fn check_message(what: &str, s: &str) {
    if !no_key_text(s) {
        panic!("{what}: key text in {s:?}");
    }
    if s.chars().any(char::is_control) {
        panic!("{what}: control character in {s:?}");
    }
    if s.chars().count() > 600 {
        panic!("{what}: {} characters", s.chars().count());
    }
}

fuzz_target!(|data: &[u8]| {
    let is_json = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    let mut accepted = Vec::new();

    match or::parse_key_info(data) {
        Ok(k) => {
            accepted.push("key_info");
            let all = [
                k.usage_daily,
                k.usage_weekly,
                k.usage_monthly,
                k.byok_usage,
                k.limit,
            ];
            if !money_ok(k.usage) || !all.iter().all(|v| opt_money_ok(*v)) {
                panic!("key_info: bad money {k:?}");
            }
            if !k.limit_remaining.is_none_or(f64::is_finite) {
                panic!("key_info: limit_remaining {:?}", k.limit_remaining);
            }
            check_message("key_info.label", &k.label);
        }
        Err(e) => check_message("key_info error", &e.to_string()),
    }
    match or::parse_activity(data) {
        Ok(rows) => {
            accepted.push("activity");
            for r in rows {
                if !money_ok(r.usage) || !opt_money_ok(r.byok_usage_inference) {
                    panic!("activity: bad money {r:?}");
                }
                if r.date.len() != 10 || r.model.is_empty() {
                    panic!("activity: bad row {r:?}");
                }
            }
        }
        Err(e) => check_message("activity error", &e.to_string()),
    }
    match or::parse_credits(data) {
        Ok(c) => {
            accepted.push("credits");
            if !money_ok(c.total_credits) || !money_ok(c.total_usage) {
                panic!("credits: {c:?}");
            }
        }
        Err(e) => check_message("credits error", &e.to_string()),
    }
    let check_key = |k: &or::ApiKey| {
        if k.hash.is_empty()
            || !k
                .hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            panic!("key: hash {:?}", k.hash);
        }
        if !money_ok(k.usage)
            || ![k.limit, k.usage_daily, k.usage_weekly, k.usage_monthly]
                .iter()
                .all(|v| opt_money_ok(*v))
            || !k.limit_remaining.is_none_or(f64::is_finite)
        {
            panic!("key: bad money {k:?}");
        }
    };
    match or::parse_key_list(data) {
        Ok(keys) => {
            accepted.push("key_list");
            keys.iter().for_each(check_key);
        }
        Err(e) => check_message("key_list error", &e.to_string()),
    }
    match or::parse_key(data) {
        Ok(k) => {
            accepted.push("key");
            check_key(&k);
        }
        Err(e) => check_message("key error", &e.to_string()),
    }
    match or::parse_created_key(data) {
        Ok(c) => {
            accepted.push("created_key");
            check_key(&c.info);
            if c.key.is_empty() || format!("{c:?}").contains(c.key.expose()) {
                panic!("created_key: empty or shown key");
            }
        }
        Err(e) => check_message("created_key error", &e.to_string()),
    }
    if or::parse_deleted(data).is_ok() {
        accepted.push("deleted");
    }
    if !is_json && !accepted.is_empty() {
        panic!("not JSON, yet accepted by {accepted:?}");
    }

    for status in [
        400u16, 401, 402, 403, 404, 408, 409, 429, 500, 502, 503, 599, 0, 999,
    ] {
        for role in [KeyRole::Api, KeyRole::Management] {
            let e = or::decode_error(status, data, None, role);
            check_message("decode_error", &e.to_string());
        }
    }
    let text = String::from_utf8_lossy(data);
    check_message("clean_text", &or::clean_text(&text));
    if let Some(first) = text.lines().next() {
        if let Some(d) = or::parse_retry_after(first) {
            if d.as_secs() > 24 * 3600 {
                panic!("retry_after {d:?}");
            }
        }
        // Matching a key against whatever label the bytes hold never panics.
        let key = Secret::new(format!(
            "sk-or-v1-{}",
            first.chars().take(80).collect::<String>()
        ));
        let _ = or::label_masks_key(first, &key);
        if let Ok(keys) = or::parse_key_list(data) {
            if let Ok(info) =
                or::parse_key_info(br#"{"data":{"usage":0,"label":"sk-or-v1-abc...xyz"}}"#)
            {
                let _ = or::match_key_hash(&keys, &key, &info);
            }
        }
    }
});
