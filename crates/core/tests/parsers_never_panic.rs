//! The fuzz targets' logic without libFuzzer, so that CI exercises it on every run.
//!
//! Every file of the seed corpus (`crates/core/fuzz/corpus/<target>/`) and a few thousand
//! seeded pseudo-random mutations of them go through the same entry points and invariants as
//! the fuzz targets: `crates/core/fuzz/src/checks.rs`, included below. Deterministic (a fixed
//! seed per target) and fast. Longer, coverage-guided runs: `scripts/fuzz.sh [seconds]`.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use checks::Violation;
use clawkeeper_core::gateway::chat::{self, ChatUpdate, HistoryMessage, RunState};
use clawkeeper_core::gateway::frame::{self, Frame};
use clawkeeper_core::local::process::parse_proc_net_tcp;
use clawkeeper_core::provision::posture;
use clawkeeper_core::vault::{SecretKind, SecretRef};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Mutated inputs per target, on top of the corpus itself.
const MUTATIONS: usize = 3000;

/// xorshift64: small, deterministic, good enough to pick mutations.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<T: Clone>(&mut self, items: &[T], fallback: T) -> T {
        items
            .get(self.below(items.len()))
            .cloned()
            .unwrap_or(fallback)
    }
}

/// Pieces that matter to these parsers, inserted at random places.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "\\",
    "\\n",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "1e400",
    "18446744073709551616",
    "\"\"",
    "\"res\"",
    "\"event\"",
    "\"req\"",
    "\"type\"",
    "\"id\"",
    "\"ok\"",
    "\"payload\"",
    "\"error\"",
    "\"seq\"",
    "\"runId\"",
    "\"state\"",
    "\"errorMessage\"",
    "\"messages\"",
    "\"content\"",
    "\"timestamp\"",
    "\n",
    "\r\n",
    " ",
    "\t",
    "\u{0}",
    "é",
    "⚠️ ",
    "\u{FEFF}",
    "\u{FFFD}",
    "0A",
    "01",
    "FFFFFFFF",
    "+",
    "/",
    "-",
    "_",
    "gateway-token",
    "provider-key",
    "..",
];

/// Keys and values that matter to these parsers, for mutations of the JSON tree.
const KEYS: &[&str] = &[
    "type",
    "id",
    "ok",
    "payload",
    "error",
    "event",
    "method",
    "seq",
    "runId",
    "sessionKey",
    "state",
    "message",
    "content",
    "text",
    "phase",
    "errorMessage",
    "errorDetail",
    "failoverReason",
    "messages",
    "role",
    "timestamp",
    "code",
    "details",
    "retryAfterMs",
];

fn interesting_value(rng: &mut XorShift) -> Value {
    let strings = [
        "",
        " ",
        "\n",
        "\nsecond line",
        "⚠️ ",
        "⚠️ \nTo view logs",
        "res",
        "event",
        "req",
        "status",
        "delta",
        "final",
        "error",
        "aborted",
        "text",
        "user",
        "assistant",
        "tool",
        "auth",
        "billing",
        "rate_limit",
        "HTTP 401",
        "UNAVAILABLE",
        "r1",
    ];
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.pick(
            &[
                0i64,
                -1,
                i64::MIN,
                i64::MAX,
                -62_167_219_200_001,
                253_402_300_800_000,
                1_795_622_948_228
            ],
            0
        )),
        3 => json!(u64::MAX),
        4 => json!(1.5),
        5 => json!([]),
        6 => json!({}),
        7 => json!([{"type": "text", "text": rng.pick(&strings, "")}]),
        _ => json!(rng.pick(&strings, "")),
    }
}

/// Change one node of a JSON tree: replace it, or remove/add a member, or recurse.
fn mutate_json(v: &mut Value, rng: &mut XorShift) {
    let children = match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    let r = rng.below(8);
    if r == 0 {
        *v = interesting_value(rng);
        return;
    }
    match v {
        Value::Object(o) => match r {
            1 if children > 0 => {
                if let Some(k) = o.keys().nth(rng.below(children)).cloned() {
                    o.remove(&k);
                }
            }
            1 | 2 => {
                let k = rng.pick(KEYS, "type");
                o.insert(k.to_owned(), interesting_value(rng));
            }
            _ => match o.values_mut().nth(rng.below(children)) {
                Some(child) => mutate_json(child, rng),
                None => *v = interesting_value(rng),
            },
        },
        Value::Array(a) => match r {
            1 if children > 0 => {
                a.remove(rng.below(children));
            }
            1 | 2 => a.push(interesting_value(rng)),
            _ => match a.get_mut(rng.below(children)) {
                Some(child) => mutate_json(child, rng),
                None => *v = interesting_value(rng),
            },
        },
        _ => *v = interesting_value(rng),
    }
}

/// Byte-level mutations, as libFuzzer does them (flip, replace, insert, delete, copy, splice).
fn mutate_bytes(data: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut XorShift) {
    let len = data.len();
    let pos = rng.below(len + 1);
    match rng.below(6) {
        0 => {
            if let Some(b) = data.get_mut(pos) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => {
            let bytes = [
                0u8, b'\n', b' ', b'"', b'\\', b'{', b'}', b'/', b'0', 0x7f, 0xc3, 0xff,
            ];
            let new = rng.pick(&bytes, 0);
            if let Some(b) = data.get_mut(pos) {
                *b = new;
            }
        }
        2 => {
            let token = rng.pick(TOKENS, "");
            data.splice(pos..pos, token.bytes());
        }
        3 => {
            let end = (pos + 1 + rng.below(16)).min(len);
            if pos < end {
                data.drain(pos..end);
            }
        }
        4 => {
            let end = (pos + 1 + rng.below(32)).min(len);
            let copy: Vec<u8> = data.get(pos..end).map(<[u8]>::to_vec).unwrap_or_default();
            let at = rng.below(len + 1);
            data.splice(at..at, copy);
        }
        _ => {
            let other = rng.pick(seeds, Vec::new());
            let from = rng.below(other.len() + 1);
            data.truncate(pos);
            data.extend_from_slice(other.get(from..).unwrap_or_default());
        }
    }
}

fn corpus(target: &str) -> std::io::Result<Vec<Vec<u8>>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.sort();
    paths.iter().map(std::fs::read).collect()
}

fn show(input: &[u8]) -> String {
    let s = format!("{:?}", String::from_utf8_lossy(input));
    match s.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

struct Target {
    name: &'static str,
    seed: u64,
    /// Mutate the JSON tree as well as the bytes.
    json: bool,
    /// What the fuzz target runs: `Err` for a violation outside `checks::KNOWN_OPEN`.
    fuzz_target: fn(&[u8]) -> Result<(), String>,
    /// Every violation, the known open ones included (counted, reported).
    violations: fn(&[u8]) -> Vec<Violation>,
    /// Whether the parser accepted the input (so that mutations are seen to reach past the
    /// first rejection, not only the error paths).
    accepted: fn(&[u8]) -> bool,
}

fn exercise(t: &Target) -> Result<(), String> {
    let seeds = corpus(t.name).map_err(|e| format!("reading the {} corpus: {e}", t.name))?;
    assert!(seeds.len() >= 3, "{}: the seed corpus is too small", t.name);
    let mut rng = XorShift(t.seed);
    let mut inputs = seeds.clone();
    for _ in 0..MUTATIONS {
        let mut m = rng.pick(&seeds, Vec::new());
        for _ in 0..1 + rng.below(3) {
            let tree = if t.json && rng.below(2) == 0 {
                serde_json::from_slice::<Value>(&m).ok()
            } else {
                None
            };
            match tree {
                Some(mut v) => {
                    mutate_json(&mut v, &mut rng);
                    m = v.to_string().into_bytes();
                }
                None => mutate_bytes(&mut m, &seeds, &mut rng),
            }
        }
        inputs.push(m);
    }

    let mut failures = Vec::new();
    let mut known: BTreeMap<&str, usize> = BTreeMap::new();
    let mut accepted = 0;
    for input in &inputs {
        let checked = std::panic::catch_unwind(|| {
            (
                (t.fuzz_target)(input),
                (t.violations)(input),
                (t.accepted)(input),
            )
        });
        match checked {
            Err(_) => failures.push(format!("the parser panicked\n  input: {}", show(input))),
            Ok((verdict, violations, ok)) => {
                accepted += usize::from(ok);
                if let Err(e) = verdict {
                    failures.push(format!("{e}\n  input: {}", show(input)));
                }
                for x in violations {
                    if checks::KNOWN_OPEN.contains(&x.invariant) {
                        *known.entry(x.invariant).or_default() += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "{}: {} inputs, {accepted} accepted by the parser, known open issues hit: {known:?}",
        t.name,
        inputs.len()
    );
    assert!(
        failures.is_empty(),
        "{}: {} violation(s) over {} inputs; the first:\n{}",
        t.name,
        failures.len(),
        inputs.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The mutations must not all be noise that the parser rejects at once.
    assert!(
        accepted * 20 >= inputs.len(),
        "{}: only {accepted} of {} inputs were accepted; the mutations are too blunt",
        t.name,
        inputs.len()
    );
    Ok(())
}

#[test]
fn gateway_frame_invariants_hold() -> Result<(), String> {
    exercise(&Target {
        name: "gateway_frame",
        seed: 0x9E37_79B9_7F4A_7C15,
        json: true,
        fuzz_target: checks::gateway_frame,
        violations: checks::gateway_frame_violations,
        accepted: |d| frame::parse(&String::from_utf8_lossy(d), frame::DEFAULT_MAX_FRAME).is_ok(),
    })
}

#[test]
fn chat_event_invariants_hold() -> Result<(), String> {
    exercise(&Target {
        name: "chat_event",
        seed: 0xD1B5_4A32_D192_ED03,
        json: true,
        fuzz_target: checks::chat_event,
        violations: checks::chat_event_violations,
        accepted: |d| {
            serde_json::from_slice::<Value>(d).is_ok_and(|v| {
                let p = v.get("payload").unwrap_or(&v);
                chat::parse_chat_event(p).is_some() || !chat::parse_history(p).is_empty()
            })
        },
    })
}

#[test]
fn proc_net_tcp_invariants_hold() -> Result<(), String> {
    exercise(&Target {
        name: "proc_net_tcp",
        seed: 0x2545_F491_4F6C_DD1D,
        json: false,
        fuzz_target: checks::proc_net_tcp,
        violations: checks::proc_net_tcp_violations,
        accepted: |d| {
            let text = String::from_utf8_lossy(d);
            !parse_proc_net_tcp(&text, false).is_empty()
                || !parse_proc_net_tcp(&text, true).is_empty()
        },
    })
}

#[test]
fn secret_ref_invariants_hold() -> Result<(), String> {
    exercise(&Target {
        name: "secret_ref",
        seed: 0xA076_1D64_78BD_642F,
        json: false,
        fuzz_target: checks::secret_ref,
        violations: checks::secret_ref_violations,
        accepted: |d| SecretRef::parse(&String::from_utf8_lossy(d)).is_ok(),
    })
}

// ------------------------------------------------------------------ the checks can fail

fn broken(found: &[Violation]) -> Vec<&'static str> {
    found.iter().map(|v| v.invariant).collect()
}

#[test]
fn frame_checks_catch_wrong_results() {
    let text = r#"{"type":"res","id":"7","ok":true,"payload":1}"#;
    let mut out = Vec::new();
    let wrong_id = Frame::Response {
        id: "8".into(),
        result: Ok(json!(1)),
    };
    checks::check_frame(text, &Ok(wrong_id), &mut out);
    assert!(broken(&out).contains(&"frame.oracle"), "{out:?}");

    out.clear();
    let from_array = Frame::Request {
        id: "1".into(),
        method: "m".into(),
    };
    checks::check_frame(r#"["req","1","m"]"#, &Ok(from_array), &mut out);
    assert!(broken(&out).contains(&"frame.not_object"), "{out:?}");

    out.clear();
    let rejected = Err(frame::Error::NoType);
    checks::check_frame(r#"{"type":"event","event":"tick"}"#, &rejected, &mut out);
    assert!(broken(&out).contains(&"frame.oracle"), "{out:?}");

    // Floats may come back 1 ULP off (serde_json), anything more is a difference.
    assert!(checks::json_eq(
        &json!(3.5577777777777775e78),
        &json!(3.557777777777778e78)
    ));
    assert!(!checks::json_eq(&json!(1.0), &json!(1.0000001)));
    assert!(!checks::json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    assert!(!checks::json_eq(&json!(1), &json!(1.0)));

    out.clear();
    let unknown_res = Frame::Unknown { kind: "res".into() };
    checks::check_frame(r#"{"type":"res"}"#, &Ok(unknown_res), &mut out);
    assert!(broken(&out).contains(&"frame.unknown_kind"), "{out:?}");
}

#[test]
fn chat_checks_catch_wrong_results() {
    let payload = json!({"runId":"r","state":"error","errorMessage":"boom"});
    let mut out = Vec::new();
    let silent_error = ChatUpdate {
        run_id: "r".into(),
        session_key: String::new(),
        state: RunState::Error,
        text: None,
        phase: None,
        error: Some(clawkeeper_core::Problem::new(
            "run_failed",
            "",
            Some("Try again."),
        )),
    };
    checks::check_chat_update(&payload, Some(&silent_error), &mut out);
    assert_eq!(broken(&out), ["chat.error_message_empty"]);

    out.clear();
    checks::check_chat_update(&payload, None, &mut out);
    assert_eq!(broken(&out), ["chat.dropped"]);

    out.clear();
    let history = json!({"messages":[{"role":"user","content":"hi","timestamp":0}]});
    let wrong_time = HistoryMessage {
        role: "user".into(),
        text: "hi".into(),
        at: Some("1970-01-01T00:00:01Z".into()),
    };
    checks::check_history(&history, &[wrong_time], &mut out);
    assert_eq!(broken(&out), ["history.timestamp"]);

    out.clear();
    checks::check_history(&history, &[], &mut out);
    assert_eq!(broken(&out), ["history.count"]);
}

#[test]
fn proc_and_secret_ref_checks_catch_wrong_results() {
    let text = "header\n   0: 0100007F:0016 00000000:0000 0A 0 0 0 0 0 77 1\n";
    let mut out = Vec::new();
    let invented = [("127.0.0.1".parse().unwrap(), 22, "78".to_owned())];
    checks::check_proc_rows(text, false, &invented, &mut out);
    assert_eq!(broken(&out), ["proc.row_source"]);

    out.clear();
    let wrong_family = [("::1".parse().unwrap(), 22, "77".to_owned())];
    checks::check_proc_rows(text, false, &wrong_family, &mut out);
    assert!(broken(&out).contains(&"proc.family"), "{out:?}");

    out.clear();
    let too_long = SecretRef::new(SecretKind::ProviderKey, &"a".repeat(65));
    let shown = too_long.to_string();
    checks::check_secret_ref(&shown, &Ok(too_long), &mut out);
    assert!(broken(&out).contains(&"secret_ref.instance"), "{out:?}");

    // And the real parsers pass the same checks on the same inputs.
    assert!(checks::proc_net_tcp_violations(text.as_bytes()).is_empty());
    assert!(checks::secret_ref_violations(shown.as_bytes()).is_empty());
}

// ------------------------------------------------------------------ open bugs (repros)
// Regressions of bugs the fuzzers found (now fixed in the core).

/// `chat.error_message_empty`: a run error whose `errorMessage` has nothing on its first line
/// once "⚠️ " is cut gives a Problem with an empty message: the chat window shows a blank
/// error. Fix in `gateway::chat::provider_problem`: take the first line that is not empty
/// after trimming "⚠️ " and whitespace, else "The assistant could not answer.".
#[test]
fn repro_run_error_with_a_blank_first_line_still_says_something() {
    for raw in [
        "⚠️ ",
        "⚠️ \nTo view logs, run `openclaw logs --follow` in a terminal.",
        "\nAuthentication failed.",
        "   ",
    ] {
        let u = chat::parse_chat_event(&json!({"runId":"r","state":"error","errorMessage":raw}))
            .unwrap();
        let p = u.error.unwrap();
        assert!(!p.message.trim().is_empty(), "{raw:?} gave {p:?}");
    }
}

/// `frame.response_id_empty`: `{"type":"res","id":"","ok":true}` parses as a response with an
/// empty id. Harmless today (requests carry UUIDs, so it matches no pending request and is
/// dropped), but it is not a frame the client can use. Fix in `gateway::frame::parse`: treat
/// an empty id as missing (`id_string(raw.id).filter(|id| !id.is_empty())`), for `res` and `req`.
#[test]
fn repro_a_response_with_an_empty_id_is_rejected() {
    let got = frame::parse(r#"{"type":"res","id":"","ok":true}"#, 1 << 20);
    assert!(got.is_err(), "{got:?}");
}

/// `frame.not_object`: `Raw` derives `Deserialize`, which also accepts a JSON array with one
/// element per field, so `["res","1",true,{"a":1},null,null,null,null]` parses as a response,
/// against `parse`'s promise that anything not of the protocol's shapes is an error. Fix in
/// `gateway::frame::parse`: deserialize into `serde_json::Map<String, Value>` and take the
/// fields from it (or reject text whose first non-blank byte is not `{`).
#[test]
fn repro_a_json_array_is_not_a_frame() {
    let got = frame::parse(r#"["res","1",true,{"a":1},null,null,null,null]"#, 1 << 20);
    assert!(got.is_err(), "{got:?}");
}

// ------------------------------------------------------------------ Hetzner answers

#[test]
fn hetzner_response_invariants_hold() -> Result<(), String> {
    use clawkeeper_core::cloud::hetzner as h;
    exercise(&Target {
        name: "hetzner_response",
        seed: 0x3C6E_F372_FE94_F82B,
        json: true,
        fuzz_target: checks::hetzner_response,
        violations: checks::hetzner_response_violations,
        accepted: |d| {
            serde_json::from_slice::<Value>(d).is_ok_and(|v| {
                v.pointer("/error/code").is_some_and(Value::is_string)
                    || h::decode::<h::CreatedServer>(d).is_ok()
                    || h::decode::<h::Action>(d).is_ok()
                    || v.get("action").is_some()
                    || h::decode_page::<h::Location>(d, "locations").is_ok()
                    || h::decode_page::<h::ServerType>(d, "server_types").is_ok()
            }) || h::parse_rate_limit(
                String::from_utf8_lossy(d).lines().next(),
                String::from_utf8_lossy(d).lines().nth(1),
                String::from_utf8_lossy(d).lines().nth(2),
            )
            .is_some()
        },
    })
}

#[test]
fn hetzner_checks_catch_wrong_results() {
    use clawkeeper_core::cloud::Error;
    let body = json!({"error": {"code": "invalid_input", "message": "m",
        "details": {"fields": [{"name": "location"}]}}});
    let mut out = Vec::new();
    let wrong_field = Error::InvalidInput {
        field: Some("name".into()),
        message: "m".into(),
    };
    checks::check_hetzner_error(400, Some(&body), &wrong_field, &mut out);
    assert_eq!(broken(&out), ["hetzner.invalid_field"]);

    out.clear();
    let wrong_code = Error::Conflict {
        message: "m".into(),
    };
    checks::check_hetzner_error(400, Some(&body), &wrong_code, &mut out);
    assert_eq!(broken(&out), ["hetzner.code"]);

    out.clear();
    let unsafe_message = Error::Forbidden {
        message: "a\u{7}b".into(),
    };
    checks::check_hetzner_error(403, None, &unsafe_message, &mut out);
    assert_eq!(broken(&out), ["hetzner.message_unsafe"]);

    // And the real decoder passes on the same input.
    assert!(checks::hetzner_response_violations(body.to_string().as_bytes()).is_empty());
}

// ------------------------------------------------------------------ Tailscale answers

#[test]
fn tailscale_response_invariants_hold() -> Result<(), String> {
    use clawkeeper_core::tailnet::api as t;
    exercise(&Target {
        name: "tailscale_response",
        seed: 0x510E_527F_ADE6_82D1,
        json: true,
        fuzz_target: checks::tailscale_response,
        violations: checks::tailscale_response_violations,
        accepted: |d| {
            t::decode_devices(d).is_ok()
                || t::decode_key_info(d).is_ok()
                || t::decode_token(d).is_ok()
                || t::decode_policy_owns_tag(d).is_ok_and(|owned| owned)
                || serde_json::from_slice::<Value>(d)
                    .is_ok_and(|v| v.get("message").is_some_and(Value::is_string))
                || String::from_utf8_lossy(d)
                    .lines()
                    .next()
                    .and_then(t::parse_retry_after)
                    .is_some()
        },
    })
}

#[test]
fn tailscale_checks_catch_wrong_results() {
    use clawkeeper_core::tailnet::{api as t, Device, Error};
    let body = json!({"message": "requested tags [tag:clawkeeper] are invalid or not permitted"});
    let mut out = Vec::new();
    let wrong_code = Error::BadRequest {
        message: "requested tags [tag:clawkeeper] are invalid or not permitted".into(),
    };
    checks::check_tailscale_error(400, None, Some(&body), &wrong_code, &mut out);
    assert_eq!(broken(&out), ["tailscale.code"]);

    out.clear();
    let lost = Error::TagNotPermitted {
        message: "something else".into(),
    };
    checks::check_tailscale_error(400, None, Some(&body), &lost, &mut out);
    assert_eq!(broken(&out), ["tailscale.message_lost"]);

    out.clear();
    let wrong_wait = Error::RateLimited { retry_after: None };
    checks::check_tailscale_error(429, Some("5"), None, &wrong_wait, &mut out);
    assert_eq!(broken(&out), ["tailscale.retry_after"]);

    out.clear();
    let unsafe_message = Error::Forbidden {
        message: "a\u{7}b".into(),
    };
    checks::check_tailscale_error(403, None, None, &unsafe_message, &mut out);
    assert!(
        broken(&out).contains(&"tailscale.message_unsafe"),
        "{out:?}"
    );

    out.clear();
    let devices = json!({"devices": [{"id": "1", "addresses": ["100.64.0.1"]}]});
    let wrong_addresses = [Device {
        id: "1".into(),
        ..Device::default()
    }];
    checks::check_tailscale_devices(Some(&devices), &wrong_addresses, &mut out);
    assert_eq!(broken(&out), ["tailscale.device_addresses"]);

    // And the real decoders pass on the same inputs.
    assert!(checks::tailscale_response_violations(body.to_string().as_bytes()).is_empty());
    assert!(checks::tailscale_response_violations(devices.to_string().as_bytes()).is_empty());
    assert_eq!(
        t::decode_error(400, None, body.to_string().as_bytes()).to_string(),
        "Tailscale won't let your server use the tag tag:clawkeeper: requested tags [tag:clawkeeper] are invalid or not permitted"
    );
}

// ------------------------------------------------------------ Tailscale LocalAPI answers

#[test]
fn tailscale_local_invariants_hold() -> Result<(), String> {
    use clawkeeper_core::tailnet::local_api as l;
    exercise(&Target {
        name: "tailscale_local",
        seed: 0x1F83_D9AB_FB41_BD6B,
        json: true,
        fuzz_target: checks::tailscale_local,
        violations: checks::tailscale_local_violations,
        accepted: |d| {
            l::parse_status(d).is_ok()
                || l::parse_whois(d).is_ok()
                || l::parse_head(d).is_ok_and(|h| h.is_some())
        },
    })
}

#[test]
fn tailscale_serve_invariants_hold() -> Result<(), String> {
    use clawkeeper_core::provision::tailnet as t;
    exercise(&Target {
        name: "tailscale_serve",
        seed: 0x5E4E_7A11_0B5E_2B01,
        json: true,
        fuzz_target: checks::tailscale_serve,
        violations: checks::tailscale_serve_violations,
        accepted: |d| t::parse_serve_status(d).is_ok(),
    })
}

#[test]
fn usage_sessions_invariants_hold() -> Result<(), String> {
    use clawkeeper_core::usage::{gateway::parse_day, Day};
    exercise(&Target {
        name: "usage_sessions",
        seed: 0x0A5E_5510_4C05_7D11,
        json: true,
        fuzz_target: checks::usage_sessions,
        violations: checks::usage_sessions_violations,
        accepted: |d| {
            serde_json::from_slice::<Value>(d).ok().is_some_and(|j| {
                let day = j
                    .get("startDate")
                    .and_then(Value::as_str)
                    .and_then(Day::parse)
                    .or_else(|| Day::parse("2026-11-26"));
                day.is_some_and(|day| parse_day(&j, day).is_ok())
            })
        },
    })
}

#[test]
fn tailscale_local_checks_catch_wrong_results() {
    use clawkeeper_core::tailnet::local_api::{parse_status, BackendState};
    let body = json!({"BackendState": "NeedsLogin", "AuthURL": "https://login.tailscale.com/a/x",
        "Peer": {"k": {"HostName": "clawkeeper", "TailscaleIPs": ["100.64.0.2"]}}});
    let good = parse_status(body.to_string().as_bytes()).unwrap();
    let mut out = Vec::new();
    checks::check_local_status(&body, &good, &mut out);
    assert!(out.is_empty(), "{out:?}");

    let mut wrong = good.clone();
    wrong.backend_state = BackendState::Running;
    checks::check_local_status(&body, &wrong, &mut out);
    assert_eq!(broken(&out), ["tslocal.backend_state"]);

    out.clear();
    let mut wrong = good.clone();
    wrong.auth_url = Some("javascript:alert(1)".into());
    checks::check_local_status(&body, &wrong, &mut out);
    assert!(broken(&out).contains(&"tslocal.auth_url"), "{out:?}");

    out.clear();
    let mut wrong = good;
    wrong.peers.clear();
    checks::check_local_status(&body, &wrong, &mut out);
    assert_eq!(broken(&out), ["tslocal.peers"]);
}

// ------------------------------------------------------------- provisioning posture
// The posture parsers (`clawkeeper_core::provision::posture`), over the seed corpora
// captured from a provisioned Debian 12 test host plus hand-made bad cases.

fn posture_target(
    name: &'static str,
    seed: u64,
    json: bool,
    fuzz_target: fn(&[u8]) -> Result<(), String>,
    violations: fn(&[u8]) -> Vec<Violation>,
    accepted: fn(&[u8]) -> bool,
) -> Result<(), String> {
    exercise(&Target {
        name,
        seed,
        json,
        fuzz_target,
        violations,
        accepted,
    })
}

#[test]
fn posture_ss_invariants_hold() -> Result<(), String> {
    posture_target(
        "posture_ss",
        0x6A09_E667_F3BC_C908,
        false,
        checks::posture_ss,
        checks::posture_ss_violations,
        |d| !posture::parse_ss(&String::from_utf8_lossy(d)).is_empty(),
    )
}

#[test]
fn posture_sshd_invariants_hold() -> Result<(), String> {
    posture_target(
        "posture_sshd",
        0xBB67_AE85_84CA_A73B,
        false,
        checks::posture_sshd,
        checks::posture_sshd_violations,
        |d| !posture::parse_sshd_t(&String::from_utf8_lossy(d)).is_empty(),
    )
}

#[test]
fn posture_nft_invariants_hold() -> Result<(), String> {
    posture_target(
        "posture_nft",
        0x3C6E_F372_FE94_F82B,
        true,
        checks::posture_nft,
        checks::posture_nft_violations,
        |d| posture::parse_nft_json(&String::from_utf8_lossy(d)).is_some(),
    )
}

#[test]
fn posture_kv_stat_invariants_hold() -> Result<(), String> {
    posture_target(
        "posture_kv_stat",
        0xA54F_F53A_5F1D_36F1,
        false,
        checks::posture_kv_stat,
        checks::posture_kv_stat_violations,
        |d| {
            let t = String::from_utf8_lossy(d);
            !posture::parse_kv(&t).is_empty() || !posture::parse_stat(&t).is_empty()
        },
    )
}

#[test]
fn posture_audit_invariants_hold() -> Result<(), String> {
    posture_target(
        "posture_audit",
        0x510E_527F_ADE6_82D1,
        true,
        checks::posture_audit,
        checks::posture_audit_violations,
        |d| posture::parse_audit(&String::from_utf8_lossy(d)).is_some(),
    )
}

#[test]
fn posture_report_invariants_hold() -> Result<(), String> {
    posture_target(
        "posture_report",
        0x9B05_688C_2B3E_6C1F,
        false,
        checks::posture_report,
        checks::posture_report_violations,
        |d| {
            String::from_utf8_lossy(d)
                .lines()
                .any(|l| l.starts_with("@@"))
        },
    )
}

#[test]
fn posture_checks_catch_wrong_results() {
    // The oracles disagree with a parser that invents or drops things.
    assert!(checks::posture_ss_violations(b"LISTEN 0 1 127.0.0.1:1 0.0.0.0:*\n").is_empty());
    assert!(checks::posture_nft_violations(
        b"{\"nftables\":[{\"table\":{\"family\":\"inet\",\"name\":\"t\"}}]}"
    )
    .is_empty());
    let no_evidence = checks::posture_report_violations(b"");
    assert!(no_evidence.is_empty(), "{no_evidence:?}");
}
