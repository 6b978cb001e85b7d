//! Fuzz target `openai_admin`: every parser of `openai::admin` (projects, service accounts,
//! created service account, deleted, the error envelope at each status, `Retry-After`) on
//! the same bytes. Invariants: no panic; bytes that aren't JSON are never accepted; every
//! accepted id is usable in a path without escaping; a created account has non-empty key
//! text that its `Debug` doesn't show; no message shows key text (`sk-` and a long run of
//! key characters); messages are bounded and free of control characters.
//! Self-contained (not in `src/checks.rs`) while the module is new.
#![no_main]

use clawkeeper_core::openai::admin as oa;
use libfuzzer_sys::fuzz_target;

/// No key text: every `sk-` is followed by the redaction marker or by fewer than
/// `KEY_TEXT_MIN` key characters (a masked key).
fn no_key_text(s: &str) -> bool {
    s.match_indices("sk-").all(|(i, _)| {
        let after = &s[i + "sk-".len()..];
        let run = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .count();
        after.starts_with("<redacted>") || run < oa::KEY_TEXT_MIN
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

fn check_id(what: &str, id: &str) {
    if !oa::valid_id(id) {
        panic!("{what}: id {id:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let is_json = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    let mut accepted = Vec::new();

    match oa::parse_projects(data) {
        Ok(p) => {
            accepted.push("projects");
            for x in &p.data {
                check_id("project", &x.id);
                check_message("project.name", &x.name);
            }
            if let Some(l) = &p.last_id {
                check_id("projects.last_id", l);
            }
        }
        Err(e) => check_message("projects error", &e.to_string()),
    }
    match oa::parse_service_accounts(data) {
        Ok(p) => {
            accepted.push("service_accounts");
            for a in &p.data {
                check_id("service account", &a.id);
                check_message("service_account.name", &a.name);
                check_message("service_account.role", &a.role);
            }
            if let Some(l) = &p.last_id {
                check_id("service_accounts.last_id", l);
            }
        }
        Err(e) => check_message("service_accounts error", &e.to_string()),
    }
    match oa::parse_created_service_account(data) {
        Ok(c) => {
            accepted.push("created");
            check_id("created", &c.account.id);
            if c.key.is_empty() || format!("{c:?}").contains(c.key.expose()) {
                panic!("created: empty or shown key");
            }
        }
        Err(e) => check_message("created error", &e.to_string()),
    }
    match oa::parse_deleted(data) {
        Ok(id) => {
            accepted.push("deleted");
            check_id("deleted", &id);
        }
        Err(e) => check_message("deleted error", &e.to_string()),
    }
    if !is_json && !accepted.is_empty() {
        panic!("not JSON, yet accepted by {accepted:?}");
    }

    for status in [400u16, 401, 403, 404, 408, 409, 429, 500, 502, 503, 599, 0, 999] {
        let e = oa::decode_error(status, data, None, "project");
        check_message("decode_error", &e.to_string());
    }
    let text = String::from_utf8_lossy(data);
    check_message("clean_text", &oa::clean_text(&text));
});
