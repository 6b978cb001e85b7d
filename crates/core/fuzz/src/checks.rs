//! Invariants of clawkeeper-core's parsers of outside data, checked on arbitrary input.
//!
//! Each `*_violations` function takes raw bytes (what libFuzzer hands a target), runs the
//! parser and returns every invariant that the result breaks; the matching function without
//! the suffix drops the [`KNOWN_OPEN`] ones and is what the fuzz targets call. The same file
//! is compiled into `crates/core/tests/parsers_never_panic.rs`, which runs it over the seed
//! corpus and seeded mutations of it in the normal test suite.
//!
//! Nothing here panics by itself (no unwrap, no indexing): a panic comes from the core.
//! Where an invariant needs the "right answer", it is computed here independently from a
//! `serde_json::Value` (an oracle), not by calling the code under test again.

use clawkeeper_core::gateway::chat::{self, ChatUpdate, HistoryMessage, RunState};
use clawkeeper_core::gateway::frame::{self, Frame, RpcError};
use clawkeeper_core::local::process::parse_proc_net_tcp;
use clawkeeper_core::vault::{self, SecretRef};
use serde_json::{Map, Value};
use std::fmt;
use std::net::IpAddr;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable name of the invariant, e.g. `frame.round_trip` or `chat.error_message_empty`.
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant `{}` broken: {}", self.invariant, self.detail)
    }
}

/// Invariants the core breaks today. Each is an open bug with an `#[ignore]`d repro in
/// `crates/core/tests/parsers_never_panic.rs`; they are still computed (and counted by that
/// test) but do not fail a run. Remove the entry together with the fix.
pub const KNOWN_OPEN: &[&str] = &[];

fn v(out: &mut Vec<Violation>, invariant: &'static str, detail: String) {
    out.push(Violation { invariant, detail });
}

/// `Ok` unless a violation outside [`KNOWN_OPEN`] is in `found`.
pub fn unknown_only(found: Vec<Violation>) -> Result<(), String> {
    let open: Vec<String> = found
        .into_iter()
        .filter(|x| !KNOWN_OPEN.contains(&x.invariant))
        .map(|x| x.to_string())
        .collect();
    if open.is_empty() {
        Ok(())
    } else {
        Err(open.join("\n"))
    }
}

pub fn gateway_frame(data: &[u8]) -> Result<(), String> {
    unknown_only(gateway_frame_violations(data))
}

pub fn chat_event(data: &[u8]) -> Result<(), String> {
    unknown_only(chat_event_violations(data))
}

pub fn proc_net_tcp(data: &[u8]) -> Result<(), String> {
    unknown_only(proc_net_tcp_violations(data))
}

pub fn secret_ref(data: &[u8]) -> Result<(), String> {
    unknown_only(secret_ref_violations(data))
}

// ------------------------------------------------------------------------ gateway frames

/// Bytes → UTF-8 (lossy, as a WebSocket text frame is always UTF-8) → `frame::parse`.
pub fn gateway_frame_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let got = frame::parse(&text, frame::DEFAULT_MAX_FRAME);
    check_frame(&text, &got, &mut out);

    // The size limit is exact: `max_len == len` changes nothing, one byte less is TooLarge.
    let len = text.len();
    if len <= frame::DEFAULT_MAX_FRAME {
        let at_limit = frame::parse(&text, len);
        if at_limit != got {
            v(
                &mut out,
                "frame.max_len_exact",
                format!("max_len = len gave {at_limit:?}, a larger limit {got:?}"),
            );
        }
        if let Some(below) = len.checked_sub(1) {
            match frame::parse(&text, below) {
                Err(frame::Error::TooLarge(n)) if n == len => {}
                other => v(
                    &mut out,
                    "frame.too_large",
                    format!("max_len = len - 1 gave {other:?}"),
                ),
            }
        }
    }
    out
}

/// The invariants of one `frame::parse(text, ..)` result. Public so tests can feed it wrong
/// results and see that it notices.
pub fn check_frame(text: &str, got: &Result<Frame, frame::Error>, out: &mut Vec<Violation>) {
    if let Ok(f) = got {
        // Every frame of the protocol is a JSON object.
        let json_ws: &[char] = &[' ', '\t', '\n', '\r'];
        if !text.trim_start_matches(json_ws).starts_with('{') {
            v(
                out,
                "frame.not_object",
                format!("{text:?} is not a JSON object but parsed as {f:?}"),
            );
        }
        check_frame_round_trip(f, out);
        if let Frame::Response { id, .. } = f {
            if id.is_empty() {
                v(
                    out,
                    "frame.response_id_empty",
                    format!("{text:?} parsed as a response with an empty id"),
                );
            }
        }
    }
    // Compare with the oracle wherever the text is a JSON object. A parse error of the text
    // itself (NotJson) is not compared: `Value` keeps the last of duplicate keys where the
    // frame parser rejects them.
    let comparable = !matches!(
        got,
        Err(frame::Error::NotJson(_) | frame::Error::TooLarge(_))
    );
    if comparable {
        if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) {
            let want = frame_oracle(&obj);
            if &want != got {
                v(
                    out,
                    "frame.oracle",
                    format!("{text:?} parsed as {got:?}, expected {want:?}"),
                );
            }
        }
    }
}

/// What `frame::parse` should return for a JSON object, from the protocol notes
/// (docs/gateway-protocol.md, "Frames").
pub fn frame_oracle(obj: &Map<String, Value>) -> Result<Frame, frame::Error> {
    use frame::Error::{Missing, NoType};
    let kind = match obj.get("type") {
        Some(Value::String(k)) => k.clone(),
        _ => return Err(NoType),
    };
    // The protocol's ids are non-empty strings (or numbers).
    let id = || match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let string = |key: &str| match obj.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match kind.as_str() {
        "res" => {
            let id = id().ok_or(Missing {
                kind: "res",
                field: "id",
            })?;
            let ok = obj.get("ok").and_then(Value::as_bool).ok_or(Missing {
                kind: "res",
                field: "ok",
            })?;
            let result = if ok {
                Ok(obj.get("payload").cloned().unwrap_or(Value::Null))
            } else {
                Err(obj
                    .get("error")
                    .cloned()
                    .and_then(|e| serde_json::from_value::<RpcError>(e).ok())
                    .unwrap_or_else(|| RpcError {
                        code: "UNKNOWN".into(),
                        message: "the gateway reported an error without details".into(),
                        details: None,
                        retryable: None,
                        retry_after_ms: None,
                    }))
            };
            Ok(Frame::Response { id, result })
        }
        "event" => Ok(Frame::Event {
            event: string("event").ok_or(Missing {
                kind: "event",
                field: "event",
            })?,
            payload: obj.get("payload").cloned().unwrap_or(Value::Null),
            seq: obj.get("seq").and_then(Value::as_u64),
        }),
        "req" => {
            let id = id().ok_or(Missing {
                kind: "req",
                field: "id",
            })?;
            let method = string("method").ok_or(Missing {
                kind: "req",
                field: "method",
            })?;
            Ok(Frame::Request { id, method })
        }
        _ => Ok(Frame::Unknown { kind }),
    }
}

/// JSON equality where two floats count as equal within a few ULPs: serde_json without its
/// `float_roundtrip` feature may read back a float it wrote 1 ULP off (found by the fuzzer:
/// 3.5577777777777775e78 → 3.557777777777778e78). Not a bug of the core; irrelevant for
/// the costs and timestamps the gateway sends.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| json_eq(xv, yv)))
        }
        _ => a == b,
    }
}

/// Frame equality with [`json_eq`] for the JSON inside.
pub fn frame_eq(a: &Frame, b: &Frame) -> bool {
    let opt_eq = |x: &Option<Value>, y: &Option<Value>| match (x, y) {
        (Some(x), Some(y)) => json_eq(x, y),
        (x, y) => x.is_none() && y.is_none(),
    };
    match (a, b) {
        (
            Frame::Response { id, result },
            Frame::Response {
                id: id2,
                result: result2,
            },
        ) => {
            id == id2
                && match (result, result2) {
                    (Ok(x), Ok(y)) => json_eq(x, y),
                    (Err(x), Err(y)) => {
                        x.code == y.code
                            && x.message == y.message
                            && x.retryable == y.retryable
                            && x.retry_after_ms == y.retry_after_ms
                            && opt_eq(&x.details, &y.details)
                    }
                    _ => false,
                }
        }
        (
            Frame::Event {
                event,
                payload,
                seq,
            },
            Frame::Event {
                event: e2,
                payload: p2,
                seq: s2,
            },
        ) => event == e2 && seq == s2 && json_eq(payload, p2),
        _ => a == b,
    }
}

fn reparse(out: &mut Vec<Violation>, what: &str, text: &str, want: &Frame) {
    let again = frame::parse(text, frame::DEFAULT_MAX_FRAME);
    if !again.as_ref().is_ok_and(|f| frame_eq(f, want)) {
        v(
            out,
            "frame.round_trip",
            format!("{what}: {text:?} parsed back as {again:?}, not {want:?}"),
        );
    }
}

/// Serializing a parsed frame again (as the gateway would send it) gives the same frame, and
/// a request that echoes its id (what the client sends) parses back to that id.
fn check_frame_round_trip(f: &Frame, out: &mut Vec<Violation>) {
    let mut obj = Map::new();
    match f {
        Frame::Response { id, result } => {
            obj.insert("type".into(), "res".into());
            obj.insert("id".into(), id.as_str().into());
            match result {
                Ok(payload) => {
                    obj.insert("ok".into(), true.into());
                    obj.insert("payload".into(), payload.clone());
                }
                Err(e) => {
                    obj.insert("ok".into(), false.into());
                    match serde_json::to_value(e) {
                        Ok(e) => {
                            obj.insert("error".into(), e);
                        }
                        Err(e) => v(out, "frame.serialize", format!("RpcError: {e}")),
                    }
                }
            }
            let params = result.as_ref().unwrap_or(&Value::Null);
            let req = frame::request(id, "chat.send", params);
            reparse(
                out,
                "request with the response's id",
                &req,
                &Frame::Request {
                    id: id.clone(),
                    method: "chat.send".into(),
                },
            );
        }
        Frame::Event {
            event,
            payload,
            seq,
        } => {
            obj.insert("type".into(), "event".into());
            obj.insert("event".into(), event.as_str().into());
            obj.insert("payload".into(), payload.clone());
            if let Some(seq) = seq {
                obj.insert("seq".into(), (*seq).into());
            }
        }
        Frame::Request { id, method } => {
            let req = frame::request(id, method, &Value::Null);
            reparse(out, "frame::request", &req, f);
            return;
        }
        Frame::Unknown { kind } => {
            if matches!(kind.as_str(), "res" | "event" | "req") {
                v(
                    out,
                    "frame.unknown_kind",
                    format!("known type {kind:?} reported as Unknown"),
                );
            }
            obj.insert("type".into(), kind.as_str().into());
        }
    }
    reparse(
        out,
        "re-serialized frame",
        &Value::Object(obj).to_string(),
        f,
    );
}

// ------------------------------------------------------------------------ chat payloads

/// Bytes → JSON (if they are JSON) → `parse_chat_event` and `parse_history`, on the value and,
/// when it is a whole frame, on its `payload` (so seeds can be frames copied from the docs).
pub fn chat_event_violations(data: &[u8]) -> Vec<Violation> {
    let mut out = Vec::new();
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return out;
    };
    check_chat_payload(&value, &mut out);
    if let Some(payload) = value.get("payload") {
        check_chat_payload(payload, &mut out);
    }
    out
}

fn check_chat_payload(payload: &Value, out: &mut Vec<Violation>) {
    let update = chat::parse_chat_event(payload);
    check_chat_update(payload, update.as_ref(), out);
    let history = chat::parse_history(payload);
    check_history(payload, &history, out);
}

/// Text of a message, computed independently of `chat::message_text`.
fn text_oracle(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for p in parts {
                if p.get("type") == Some(&Value::String("text".into())) {
                    if let Some(Value::String(t)) = p.get("text") {
                        text.push_str(t);
                    }
                }
            }
            Some(text)
        }
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The invariants of one `parse_chat_event(payload)` result.
pub fn check_chat_update(payload: &Value, got: Option<&ChatUpdate>, out: &mut Vec<Violation>) {
    let want_state = match str_at(payload, "state") {
        Some("status") => Some(RunState::Status),
        Some("delta") => Some(RunState::Delta),
        Some("final") => Some(RunState::Final),
        Some("error") => Some(RunState::Error),
        Some("aborted") => Some(RunState::Aborted),
        _ => None,
    };
    let run_id = str_at(payload, "runId");
    let Some(u) = got else {
        if let (Some(state), Some(_)) = (want_state, run_id) {
            v(
                out,
                "chat.dropped",
                format!("a {state:?} event with a runId was ignored: {payload}"),
            );
        }
        return;
    };
    if Some(u.state) != want_state || Some(u.run_id.as_str()) != run_id {
        v(
            out,
            "chat.accepted",
            format!("parsed as {u:?} from {payload}"),
        );
    }
    if u.session_key != str_at(payload, "sessionKey").unwrap_or_default() {
        v(out, "chat.session_key", format!("{u:?} from {payload}"));
    }
    if u.phase.as_deref() != str_at(payload, "phase") {
        v(out, "chat.phase", format!("{u:?} from {payload}"));
    }
    let want_text = payload.get("message").and_then(text_oracle);
    if u.text != want_text {
        v(
            out,
            "chat.text",
            format!("text {:?}, expected {want_text:?} from {payload}", u.text),
        );
    }
    if (u.state == RunState::Error) != u.error.is_some() {
        v(
            out,
            "chat.error_iff_error_state",
            format!("{u:?} from {payload}"),
        );
    }
    if u.state.is_terminal()
        != matches!(
            u.state,
            RunState::Final | RunState::Error | RunState::Aborted
        )
    {
        v(out, "chat.terminal", format!("{:?}", u.state));
    }
    if let Some(p) = &u.error {
        // A run that ended in an error always tells the person something.
        if p.code.is_empty() {
            v(
                out,
                "chat.error_code_empty",
                format!("{p:?} from {payload}"),
            );
        }
        if p.message.trim().is_empty() {
            v(
                out,
                "chat.error_message_empty",
                format!("error {p:?} from {payload}"),
            );
        }
        if p.hint.as_deref().is_none_or(|h| h.trim().is_empty()) {
            v(
                out,
                "chat.error_hint_empty",
                format!("{p:?} from {payload}"),
            );
        }
    }
    if let Err(e) = serde_json::to_string(u) {
        v(out, "chat.serialize", format!("{u:?}: {e}"));
    }
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in Unix milliseconds: the range that
/// RFC 3339 can write.
const RFC3339_MIN_MS: i64 = -62_167_219_200_000;
const RFC3339_MAX_MS: i64 = 253_402_300_799_999;

/// The invariants of one `parse_history(payload)` result.
pub fn check_history(payload: &Value, got: &[HistoryMessage], out: &mut Vec<Violation>) {
    let want: Vec<(&str, String, Option<i64>)> = match payload.get("messages") {
        Some(Value::Array(messages)) => messages
            .iter()
            .filter_map(|m| {
                let role = str_at(m, "role")?;
                if role != "user" && role != "assistant" {
                    return None;
                }
                let ts = m.get("timestamp").and_then(Value::as_i64);
                Some((role, text_oracle(m)?, ts))
            })
            .collect(),
        _ => Vec::new(),
    };
    if got.len() != want.len() {
        v(
            out,
            "history.count",
            format!(
                "{} messages, expected {} from {payload}",
                got.len(),
                want.len()
            ),
        );
        return;
    }
    for (m, (role, text, ts)) in got.iter().zip(&want) {
        if m.role != *role || m.text != *text {
            v(
                out,
                "history.message",
                format!("{m:?}, expected {role} {text:?}"),
            );
        }
        let writable = ts.filter(|ms| (RFC3339_MIN_MS..=RFC3339_MAX_MS).contains(ms));
        match (&m.at, writable) {
            (None, None) => {}
            (Some(at), Some(ms)) => {
                let back =
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .map(|t| t.unix_timestamp_nanos());
                if back != Ok(i128::from(ms) * 1_000_000) {
                    v(
                        out,
                        "history.timestamp",
                        format!("{at:?} does not read back as {ms} ms ({back:?})"),
                    );
                }
            }
            (at, _) => v(
                out,
                "history.timestamp",
                format!("at {at:?} for timestamp {ts:?}"),
            ),
        }
    }
    if let Err(e) = serde_json::to_string(got) {
        v(out, "history.serialize", e.to_string());
    }
}

// ------------------------------------------------------------------------ /proc/net/tcp

/// Bytes → UTF-8 (lossy) → `parse_proc_net_tcp`, as IPv4 and as IPv6.
pub fn proc_net_tcp_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    for v6 in [false, true] {
        let rows = parse_proc_net_tcp(&text, v6);
        check_proc_rows(&text, v6, &rows, &mut out);
    }
    out
}

/// How the kernel writes an address in /proc/net/tcp{,6}: 32-bit words in host (little
/// endian) order, each as 8 hex digits.
pub fn proc_hex(ip: &IpAddr) -> String {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    octets
        .chunks(4)
        .map(|w| {
            let mut word = [0u8; 4];
            word.iter_mut().zip(w).for_each(|(d, s)| *d = *s);
            format!("{:08X}", u32::from_le_bytes(word))
        })
        .collect()
}

/// The invariants of one `parse_proc_net_tcp(text, v6)` result.
pub fn check_proc_rows(
    text: &str,
    v6: bool,
    rows: &[(IpAddr, u16, String)],
    out: &mut Vec<Violation>,
) {
    // Rows come, in order, from LISTEN lines (state 0A, at least 10 columns) after the header;
    // the inode is the 10th column.
    let mut listen_inodes = text.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 10 && cols.get(3) == Some(&"0A") {
            cols.get(9).map(|s| s.to_string())
        } else {
            None
        }
    });
    for row in rows {
        if !listen_inodes.any(|inode| inode == row.2) {
            v(
                out,
                "proc.row_source",
                format!("row {row:?} (v6 = {v6}) matches no LISTEN line in order"),
            );
            return;
        }
    }
    for (ip, port, inode) in rows {
        if ip.is_ipv6() != v6 {
            v(out, "proc.family", format!("{ip} read with v6 = {v6}"));
        }
        if inode.is_empty() || inode.chars().any(char::is_whitespace) {
            v(out, "proc.inode", format!("inode {inode:?}"));
        }
        // Writing the row the way the kernel does and parsing it again gives the same row.
        let line = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: {}:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1\n",
            proc_hex(ip)
        );
        let again = parse_proc_net_tcp(&line, v6);
        let want = [(*ip, *port, inode.clone())];
        if again != want {
            v(
                out,
                "proc.round_trip",
                format!("{line:?} parsed back as {again:?}, not {want:?}"),
            );
        }
    }
}

// ------------------------------------------------------------------------ secret references

/// Bytes → UTF-8 (lossy) → `SecretRef::parse`.
pub fn secret_ref_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    check_secret_ref(&text, &SecretRef::parse(&text), &mut out);
    out
}

/// The invariants of one `SecretRef::parse(text)` result.
pub fn check_secret_ref(text: &str, got: &vault::Result<SecretRef>, out: &mut Vec<Violation>) {
    match got {
        Ok(r) => {
            let shown = r.to_string();
            if shown != text {
                v(
                    out,
                    "secret_ref.display",
                    format!("{text:?} parsed, but displays as {shown:?}"),
                );
            }
            match SecretRef::parse(&shown) {
                Ok(again) if again == *r => {}
                other => v(
                    out,
                    "secret_ref.round_trip",
                    format!("{shown:?} parsed back as {other:?}, not {r:?}"),
                ),
            }
            let i = r.instance.as_bytes();
            let charset = i
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
            if i.is_empty() || i.len() > 64 || !charset {
                v(
                    out,
                    "secret_ref.instance",
                    format!("instance {:?} accepted", r.instance),
                );
            }
        }
        Err(vault::Error::BadRef(s)) if s == text => {}
        Err(e) => v(
            out,
            "secret_ref.error",
            format!("{text:?} rejected with {e:?}, not BadRef of the input"),
        ),
    }
}

// ------------------------------------------------------------------------ Hetzner answers

/// Statuses the Hetzner client sees in practice, errors and successes.
const HETZNER_ERROR_STATUSES: &[u16] = &[
    400, 401, 403, 404, 409, 410, 422, 423, 429, 500, 502, 503, 504,
];

pub fn hetzner_response(data: &[u8]) -> Result<(), String> {
    unknown_only(hetzner_response_violations(data))
}

/// Bytes → every decoder of `cloud::hetzner` (error envelope at each status, each typed
/// answer, each list page) and `parse_rate_limit` on the first three lines.
pub fn hetzner_response_violations(data: &[u8]) -> Vec<Violation> {
    use clawkeeper_core::cloud::hetzner::{self as h, Action, CreatedServer, Server};
    let mut out = Vec::new();
    let json: Option<Value> = serde_json::from_slice(data).ok();
    for &status in HETZNER_ERROR_STATUSES {
        let e = h::decode_error(status, data);
        check_hetzner_error(status, json.as_ref(), &e, &mut out);
    }
    // A body that isn't JSON is never accepted as an answer.
    let decoded = [
        ("server", h::decode::<Server>(data).is_ok()),
        ("action", h::decode::<Action>(data).is_ok()),
        ("created_server", h::decode::<CreatedServer>(data).is_ok()),
    ];
    if json.is_none() {
        for (what, ok) in decoded {
            if ok {
                v(
                    &mut out,
                    "hetzner.accepts_non_json",
                    format!("{what} from {:?}", String::from_utf8_lossy(data)),
                );
            }
        }
    }
    macro_rules! page {
        ($t:ty, $key:literal) => {
            if let Ok((items, _)) = h::decode_page::<$t>(data, $key) {
                let want = json
                    .as_ref()
                    .and_then(|j| j.get($key))
                    .and_then(Value::as_array)
                    .map(Vec::len);
                if want != Some(items.len()) {
                    v(
                        &mut out,
                        "hetzner.page_items",
                        format!("{} {} items, the JSON has {want:?}", items.len(), $key),
                    );
                }
            }
        };
    }
    page!(h::ServerType, "server_types");
    page!(h::Location, "locations");
    page!(h::Server, "servers");
    page!(h::SshKey, "ssh_keys");
    page!(h::Firewall, "firewalls");

    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let (a, b, c) = (lines.next(), lines.next(), lines.next());
    if let Some(rl) = h::parse_rate_limit(a, b, c) {
        let n = |s: Option<&str>| s.and_then(|s| s.trim().parse::<u64>().ok());
        if (n(a), n(b), n(c)) != (Some(rl.limit), Some(rl.remaining), Some(rl.reset)) {
            v(
                &mut out,
                "hetzner.rate_limit",
                format!("{rl:?} from {a:?} {b:?} {c:?}"),
            );
        }
    }
    out
}

/// The provider's message as a person may see it: no control characters, at most 300
/// characters, trimmed (computed here independently of the core).
fn hetzner_clean(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// What a provider error shows the person: a code, a message and a hint, none empty; a
/// message without control characters and at most `max_chars` long (invariant names:
/// `[empty, unsafe]`). The problem, for further checks.
fn check_problem(
    e: &dyn clawkeeper_core::UserFacing,
    status: u16,
    max_chars: usize,
    [empty, unsafe_message]: [&'static str; 2],
    out: &mut Vec<Violation>,
) -> clawkeeper_core::Problem {
    let p = e.problem();
    if p.code.is_empty()
        || p.message.trim().is_empty()
        || p.hint.as_deref().is_none_or(|h| h.trim().is_empty())
    {
        v(out, empty, format!("{p:?} at {status}"));
    }
    if p.message.chars().any(char::is_control) || p.message.chars().count() > max_chars {
        v(out, unsafe_message, format!("{:?} at {status}", p.message));
    }
    p
}

/// The invariants of one `decode_error(status, body)` result.
pub fn check_hetzner_error(
    status: u16,
    json: Option<&Value>,
    e: &clawkeeper_core::cloud::Error,
    out: &mut Vec<Violation>,
) {
    use clawkeeper_core::cloud::Error as E;
    let p = check_problem(
        e,
        status,
        700,
        ["hetzner.problem_empty", "hetzner.message_unsafe"],
        out,
    );
    // Oracle from the envelope's code.
    let envelope = json.and_then(|j| j.get("error")).filter(|e| e.is_object());
    let Some(env) = envelope else {
        if status == 401 && !matches!(e, E::Unauthorized) {
            v(
                out,
                "hetzner.status_fallback",
                format!("401 without envelope gave {e:?}"),
            );
        }
        return;
    };
    let code = env.get("code").and_then(Value::as_str).unwrap_or("");
    let want = match code {
        "unauthorized" => Some("cloud_token_refused"),
        "token_readonly" => Some("cloud_token_read_only"),
        "invalid_input" | "json_error" => Some("cloud_invalid_input"),
        "resource_limit_exceeded" | "server_limit_exceeded" => Some("cloud_limit_reached"),
        "uniqueness_error" => Some("cloud_name_taken"),
        "not_found" => Some("cloud_not_found"),
        "rate_limit_exceeded" => Some("cloud_rate_limited"),
        "conflict" => Some("cloud_conflict"),
        "locked" => Some("cloud_locked"),
        _ => None,
    };
    if let Some(want) = want {
        if p.code != want {
            v(
                out,
                "hetzner.code",
                format!("code {code:?} gave {} ({e:?})", p.code),
            );
        }
    }
    let clean_code = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if let E::Api { code: kept, .. } = e {
        let expected = if clean_code { code } else { "unknown_error" };
        if kept != expected {
            v(
                out,
                "hetzner.code_verbatim",
                format!("{code:?} kept as {kept:?}"),
            );
        }
    }
    if let E::InvalidInput { field, .. } = e {
        let want_field = env
            .pointer("/details/fields/0/name")
            .and_then(Value::as_str)
            .map(hetzner_clean)
            .filter(|f| !f.is_empty() && f != "no details");
        if *field != want_field {
            v(
                out,
                "hetzner.invalid_field",
                format!("{field:?}, expected {want_field:?}"),
            );
        }
    }
}

// ------------------------------------------------------------------------ Tailscale answers

/// Statuses the Tailscale client may see, errors only.
const TAILSCALE_ERROR_STATUSES: &[u16] =
    &[400, 401, 403, 404, 409, 418, 422, 429, 500, 502, 503, 504];

pub fn tailscale_response(data: &[u8]) -> Result<(), String> {
    unknown_only(tailscale_response_violations(data))
}

/// Bytes → every decoder of `tailnet::api`: the error (`{"message"}` at each status, the
/// first line as `Retry-After`), the devices list (and the pick by hostname), the minted
/// key, a key's info, the OAuth token, the policy's `tagOwners`. Secrets never show in
/// `Debug` or in an error.
pub fn tailscale_response_violations(data: &[u8]) -> Vec<Violation> {
    use clawkeeper_core::tailnet::api as t;
    let mut out = Vec::new();
    let json: Option<Value> = serde_json::from_slice(data).ok();
    let text = String::from_utf8_lossy(data);
    let first_line = text.lines().next();
    for &status in TAILSCALE_ERROR_STATUSES {
        let e = t::decode_error(status, first_line, data);
        check_tailscale_error(status, first_line, json.as_ref(), &e, &mut out);
    }

    let devices = t::decode_devices(data);
    if let Ok(d) = &devices {
        check_tailscale_devices(json.as_ref(), d, &mut out);
        if let Some(first) = d.first() {
            let name = first.hostname.clone();
            if let Some(p) = t::pick_device(d.clone(), &name) {
                if !p.is_named(&name) {
                    v(
                        &mut out,
                        "tailscale.pick",
                        format!("{:?} picked for {name:?}", p.hostname),
                    );
                }
            } else if !name.is_empty() {
                v(&mut out, "tailscale.pick", format!("nothing for {name:?}"));
            }
        }
    }
    let key = t::decode_auth_key(data);
    match &key {
        Ok(k) => {
            check_tailscale_secret(
                json.as_ref(),
                "key",
                k.key.expose(),
                &format!("{k:?}"),
                &mut out,
            );
            let want_id = json
                .as_ref()
                .and_then(|j| j.get("id"))
                .and_then(Value::as_str);
            if want_id != Some(k.info.id.as_str()) {
                v(
                    &mut out,
                    "tailscale.key_id",
                    format!("{:?} from {want_id:?}", k.info.id),
                );
            }
        }
        Err(e) => check_not_in_error(json.as_ref(), "key", e, &mut out),
    }
    let info = t::decode_key_info(data);
    if let (Ok(i), Ok(k)) = (&info, &key) {
        if *i != k.info {
            v(
                &mut out,
                "tailscale.key_info",
                format!("{i:?} vs {:?}", k.info),
            );
        }
    }
    let token = t::decode_token(data);
    match &token {
        Ok(tk) => {
            check_tailscale_secret(
                json.as_ref(),
                "access_token",
                tk.token.expose(),
                &format!("{tk:?}"),
                &mut out,
            );
            let secs = tk.expires_in.as_secs();
            if secs == 0 || secs > 24 * 3600 {
                v(&mut out, "tailscale.token_lifetime", format!("{secs} s"));
            }
        }
        Err(e) => check_not_in_error(json.as_ref(), "access_token", e, &mut out),
    }
    let policy = t::decode_policy_owns_tag(data);
    match (&policy, json.as_ref()) {
        (Ok(got), Some(j)) if j.is_object() => {
            if *got != tailscale_owns_tag(j) {
                v(&mut out, "tailscale.policy", format!("{got} for {j}"));
            }
        }
        (Err(_), Some(j)) if j.is_object() => {
            v(
                &mut out,
                "tailscale.policy",
                format!("an object refused: {j}"),
            );
        }
        (Ok(got), _) => v(
            &mut out,
            "tailscale.policy",
            format!("{got} for a non-object"),
        ),
        (Err(_), _) => {}
    }
    // A body that isn't JSON is never accepted as an answer.
    if json.is_none() {
        let accepted = [
            ("devices", devices.is_ok()),
            ("key", key.is_ok()),
            ("key_info", info.is_ok()),
            ("token", token.is_ok()),
        ];
        for (what, ok) in accepted {
            if ok {
                v(
                    &mut out,
                    "tailscale.accepts_non_json",
                    format!("{what} from {:?}", String::from_utf8_lossy(data)),
                );
            }
        }
    }
    out
}

/// The oracle of `policy_owns_tag`: a `tagOwners` object (any case) with a list for
/// `tag:clawkeeper`.
fn tailscale_owns_tag(policy: &Value) -> bool {
    let Some(top) = policy.as_object() else {
        return false;
    };
    top.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("tagOwners") && v.get("tag:clawkeeper").is_some_and(Value::is_array)
    })
}

/// The oracle of "this message is about tags": the words tag, tags, tagowners, tagged, or
/// `tag:` anywhere.
fn tailscale_about_tags(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("tag:")
        || lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "tag" || w == "tags" || w == "tagowners" || w == "tagged")
}

/// A secret read from the JSON member `field`: exactly that string, in Tailscale's
/// alphabet, and not in the `Debug` output unless the rest of the JSON holds it anyway.
fn check_tailscale_secret(
    json: Option<&Value>,
    field: &str,
    got: &str,
    debug: &str,
    out: &mut Vec<Violation>,
) {
    let want = json.and_then(|j| j.get(field)).and_then(Value::as_str);
    if want != Some(got) {
        v(
            out,
            "tailscale.secret_value",
            format!("{field}: not the answer's value"),
        );
    }
    let alphabet = got
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !alphabet || got.len() < 16 || got.len() > 512 {
        v(
            out,
            "tailscale.secret_format",
            format!("{field} of {} bytes accepted", got.len()),
        );
    }
    let mut rest = json.cloned().unwrap_or(Value::Null);
    if let Some(o) = rest.as_object_mut() {
        o.remove(field);
    }
    if debug.contains(got) && !rest.to_string().contains(got) {
        v(
            out,
            "tailscale.secret_in_debug",
            format!("{field} shown by Debug"),
        );
    }
}

/// A refused answer's error never repeats the secret it carried.
fn check_not_in_error(
    json: Option<&Value>,
    field: &str,
    e: &clawkeeper_core::tailnet::Error,
    out: &mut Vec<Violation>,
) {
    let Some(secret) = json.and_then(|j| j.get(field)).and_then(Value::as_str) else {
        return;
    };
    let shown = format!("{e} {e:?}");
    if secret.len() >= 8 && shown.contains(secret) {
        let code = clawkeeper_core::UserFacing::code(e);
        v(
            out,
            "tailscale.secret_in_error",
            format!("{field} in {code}"),
        );
    }
}

/// The devices list: as many as the JSON has, each with an id, its addresses those of the
/// JSON in order.
pub fn check_tailscale_devices(
    json: Option<&Value>,
    got: &[clawkeeper_core::tailnet::Device],
    out: &mut Vec<Violation>,
) {
    let want = json
        .and_then(|j| j.get("devices"))
        .and_then(Value::as_array);
    let Some(want) = want else {
        v(
            out,
            "tailscale.devices",
            "a list from an answer without one".into(),
        );
        return;
    };
    if want.len() != got.len() {
        v(
            out,
            "tailscale.devices",
            format!("{} of {} devices", got.len(), want.len()),
        );
    }
    for (d, w) in got.iter().zip(want) {
        if d.api_id().is_empty() {
            v(out, "tailscale.device_id", format!("{d:?}"));
        }
        let addresses: Vec<IpAddr> = w
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if d.addresses != addresses {
            v(
                out,
                "tailscale.device_addresses",
                format!("{:?}, the JSON has {addresses:?}", d.addresses),
            );
        }
    }
}

/// The invariants of one `decode_error(status, retry_after, body)` result.
pub fn check_tailscale_error(
    status: u16,
    retry_after: Option<&str>,
    json: Option<&Value>,
    e: &clawkeeper_core::tailnet::Error,
    out: &mut Vec<Violation>,
) {
    use clawkeeper_core::tailnet::Error as E;
    let p = check_problem(
        e,
        status,
        500,
        ["tailscale.problem_empty", "tailscale.message_unsafe"],
        out,
    );
    // The provider's message as the person may see it (computed here independently).
    let raw = json
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let cleaned = hetzner_clean(raw);
    let shown = if cleaned.is_empty() {
        "no details".to_owned()
    } else {
        cleaned
    };
    let about_tags = tailscale_about_tags(&shown);
    let want = match status {
        401 => "tailscale_auth",
        400 | 403 if about_tags => "tailscale_tag_not_permitted",
        403 => "tailscale_forbidden",
        400 | 422 => "tailscale_bad_request",
        404 => "tailscale_not_found",
        429 => "tailscale_rate_limited",
        500..=599 => "tailscale_unavailable",
        _ => "tailscale_api_error",
    };
    if p.code != want {
        v(
            out,
            "tailscale.code",
            format!("HTTP {status} {shown:?} gave {}", p.code),
        );
    }
    match e {
        E::RateLimited { retry_after: got } => {
            let want = retry_after
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .map(|s| {
                    std::time::Duration::from_secs(s.parse::<u64>().unwrap_or(u64::MAX))
                        .min(clawkeeper_core::tailnet::api::MAX_RETRY_AFTER)
                });
            if *got != want {
                v(
                    out,
                    "tailscale.retry_after",
                    format!("{got:?} from {retry_after:?}"),
                );
            }
        }
        _ if !p.message.contains(&shown) => v(
            out,
            "tailscale.message_lost",
            format!("{:?} does not say {shown:?}", p.message),
        ),
        _ => {}
    }
}

// ------------------------------------------------------------ Tailscale LocalAPI answers

/// Statuses the LocalAPI client may see, errors only.
const TAILSCALE_LOCAL_ERROR_STATUSES: &[u16] = &[400, 403, 404, 405, 500, 502, 503];

pub fn tailscale_local(data: &[u8]) -> Result<(), String> {
    unknown_only(tailscale_local_violations(data))
}

/// Bytes → every parser of `tailnet::local_api`: the status (and what the tray shows for
/// it, and the peer found by name), the whois answer, the prefs, an error answer at each
/// status, a response head, and a chunked body (decoded as is, and after encoding the input
/// as chunks, which must give it back).
pub fn tailscale_local_violations(data: &[u8]) -> Vec<Violation> {
    use clawkeeper_core::tailnet::local_api as l;
    let mut out = Vec::new();
    let utf8 = std::str::from_utf8(data).is_ok();
    let json: Option<Value> = serde_json::from_slice(data).ok().filter(|_| utf8);
    let object = json.as_ref().filter(|j| j.is_object());

    let status = l::parse_status(data);
    match (&status, object) {
        (Ok(s), Some(j)) => check_local_status(j, s, &mut out),
        (Ok(_), None) => v(&mut out, "tslocal.accepts_non_object", "status".into()),
        (Err(e), Some(j)) if j.get("BackendState").is_some_and(Value::is_string) => v(
            &mut out,
            "tslocal.status_refused",
            format!("{e} for {}", show_json(j)),
        ),
        (Err(_), _) => {}
    }

    let whois = l::parse_whois(data);
    match (&whois, object) {
        (Ok(w), Some(j)) => {
            let node = j.get("Node");
            let name = node.and_then(|n| n.get("Name")).and_then(Value::as_str);
            if w.node.dns_name != name.unwrap_or("") {
                v(
                    &mut out,
                    "tslocal.whois_name",
                    format!("{:?} from {name:?}", w.node.dns_name),
                );
            }
            let addrs = node
                .and_then(|n| n.get("Addresses"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if w.node.tailscale_ips.len() > addrs {
                v(
                    &mut out,
                    "tslocal.whois_addresses",
                    format!("{:?}", w.node.tailscale_ips),
                );
            }
        }
        (Ok(_), None) => v(&mut out, "tslocal.accepts_non_object", "whois".into()),
        (Err(e), Some(j)) if j.get("Node").is_some_and(Value::is_object) => v(
            &mut out,
            "tslocal.whois_refused",
            format!("{e} for {}", show_json(j)),
        ),
        (Err(_), _) => {}
    }

    match (l::parse_notify(data), object) {
        (Ok(n), Some(_)) => {
            if n.error
                .as_deref()
                .is_some_and(|m| m.chars().any(char::is_control))
            {
                v(
                    &mut out,
                    "tslocal.notify_message_unsafe",
                    format!("{:?}", n.error),
                );
            }
            if n.browse_to_url
                .as_deref()
                .is_some_and(|u| !u.starts_with("http"))
            {
                v(
                    &mut out,
                    "tslocal.notify_url",
                    format!("{:?}", n.browse_to_url),
                );
            }
        }
        (Ok(_), None) => v(&mut out, "tslocal.accepts_non_object", "notify".into()),
        (Err(e), Some(_)) => v(&mut out, "tslocal.notify_refused", e.to_string()),
        (Err(_), None) => {}
    }

    if l::parse_prefs(data).is_ok() != object.is_some() {
        v(
            &mut out,
            "tslocal.prefs",
            format!("accepted: {}", object.is_some()),
        );
    }

    for &code in TAILSCALE_LOCAL_ERROR_STATUSES {
        let e = l::decode_error(code, data);
        let p = check_problem(
            &e,
            code,
            500,
            ["tslocal.problem_empty", "tslocal.message_unsafe"],
            &mut out,
        );
        let want = if code == 403 {
            "tailscale_access_denied"
        } else {
            "tailscale_local_error"
        };
        if p.code != want {
            v(
                &mut out,
                "tslocal.code",
                format!("HTTP {code} gave {}", p.code),
            );
        }
    }

    if let Ok(Some((head, used))) = l::parse_head(data) {
        let ends = data.get(..used).is_some_and(|h| h.ends_with(b"\r\n\r\n"));
        if !ends || !(100..=599).contains(&head.status) {
            v(
                &mut out,
                "tslocal.head",
                format!("{head:?} using {used} of {} bytes", data.len()),
            );
        }
    }
    if let Ok(body) = l::decode_chunked(data) {
        if body.len() > data.len() {
            v(
                &mut out,
                "tslocal.chunked_grows",
                format!("{} from {}", body.len(), data.len()),
            );
        }
    }
    // Round trip: the input cut into chunks (sizes from its first byte) decodes to itself.
    let step = 1 + usize::from(data.first().copied().unwrap_or(0) % 13);
    let mut encoded = Vec::new();
    for piece in data.chunks(step) {
        encoded.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        encoded.extend_from_slice(piece);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
    match l::decode_chunked(&encoded) {
        Ok(back) if back == data => {}
        other => v(&mut out, "tslocal.chunked_round_trip", format!("{other:?}")),
    }
    out
}

// ------------------------------------------------------------ `tailscale serve status --json`

pub fn tailscale_serve(data: &[u8]) -> Result<(), String> {
    unknown_only(tailscale_serve_violations(data))
}

/// Bytes → `provision::tailnet::parse_serve_status` and the posture lines built on it: only
/// JSON objects are accepted; "only the gateway is served" holds for a port exactly when the
/// TCP map has that one port, forwarded to 127.0.0.1 on the same port, and nothing else is
/// served; Funnel on anywhere fails its posture line; descriptions are never empty.
pub fn tailscale_serve_violations(data: &[u8]) -> Vec<Violation> {
    use clawkeeper_core::local::verify::CheckStatus;
    use clawkeeper_core::provision::tailnet as t;
    let mut out = Vec::new();
    let utf8 = std::str::from_utf8(data).is_ok();
    let json: Option<Value> = serde_json::from_slice(data).ok().filter(|_| utf8);
    let parsed = t::parse_serve_status(data);
    let Ok(serve) = parsed else {
        if let Some(j) = json
            .as_ref()
            .filter(|j| j.is_object() && j.get("TCP").is_none_or(|m| !m.is_object()))
        {
            v(&mut out, "serve.refused", show_json(j));
        }
        return out;
    };
    let Some(j) = json.as_ref().filter(|j| j.is_object()) else {
        v(&mut out, "serve.accepts_non_object", format!("{serve:?}"));
        return out;
    };
    if serve.describe().is_empty() {
        v(&mut out, "serve.describe_empty", show_json(j));
    }
    for &port in serve.tcp.keys().chain([18789u16].iter()) {
        let only = serve.is_only_forward(port);
        let want = serve.tcp.len() == 1
            && serve.web.is_empty()
            && serve.funnel.is_empty()
            && serve.services.is_empty()
            && j["TCP"][port.to_string()]["TCPForward"].as_str()
                == Some(format!("127.0.0.1:{port}").as_str())
            && j["TCP"][port.to_string()]["HTTPS"].as_bool() != Some(true)
            && j["TCP"][port.to_string()]["HTTP"].as_bool() != Some(true)
            && j["TCP"][port.to_string()]["TerminateTLS"]
                .as_str()
                .is_none_or(str::is_empty);
        if only != want {
            v(
                &mut out,
                "serve.only_forward",
                format!("port {port}: {only} for {}", show_json(j)),
            );
        }
    }
    let funnel_on = j
        .get("AllowFunnel")
        .and_then(Value::as_object)
        .is_some_and(|m| m.values().any(|x| x.as_bool() == Some(true)));
    let status =
        clawkeeper_core::tailnet::local_api::parse_status(br#"{"BackendState":"Running"}"#);
    if let Ok(status) = status {
        let checks = t::tailnet_checks(&status, &serve, 18789);
        let funnel = checks.iter().find(|c| c.id == t::FUNNEL_OFF);
        if funnel.map(|c| c.status == CheckStatus::Pass) != Some(!funnel_on) {
            v(&mut out, "serve.funnel_check", show_json(j));
        }
    }
    out
}

fn show_json(j: &Value) -> String {
    let s = j.to_string();
    s.chars().take(200).collect()
}

/// The invariants of one accepted status, against the oracle `j` (the same body as a
/// `Value`). Public so tests can feed it wrong results and see that it notices.
pub fn check_local_status(
    j: &Value,
    s: &clawkeeper_core::tailnet::local_api::Status,
    out: &mut Vec<Violation>,
) {
    use clawkeeper_core::tailnet::local_api::BackendState as B;
    use clawkeeper_core::tailnet::TailnetState as T;
    let state = j.get("BackendState").and_then(Value::as_str).unwrap_or("");
    let name = match &s.backend_state {
        B::NoState => "NoState",
        B::NeedsLogin => "NeedsLogin",
        B::NeedsMachineAuth => "NeedsMachineAuth",
        B::Stopped => "Stopped",
        B::Starting => "Starting",
        B::Running => "Running",
        B::Other(o) => o.as_str(),
    };
    if name != state {
        v(
            out,
            "tslocal.backend_state",
            format!("{:?} from {state:?}", s.backend_state),
        );
    }
    // The login page: exactly the answer's AuthURL, and only an http(s) URL without spaces.
    if let Some(url) = &s.auth_url {
        let raw = j.get("AuthURL").and_then(Value::as_str);
        let safe = (url.starts_with("https://") || url.starts_with("http://"))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if raw != Some(url.as_str()) || !safe {
            v(out, "tslocal.auth_url", format!("{url:?} from {raw:?}"));
        }
    }
    let peers = j
        .get("Peer")
        .and_then(Value::as_object)
        .map(|m| m.values().filter(|p| p.is_object()).collect::<Vec<_>>())
        .unwrap_or_default();
    if peers.len() != s.peers.len() {
        v(
            out,
            "tslocal.peers",
            format!("{} of {}", s.peers.len(), peers.len()),
        );
    }
    for (got, want) in s.peers.iter().zip(&peers) {
        let host = want.get("HostName").and_then(Value::as_str).unwrap_or("");
        let ips = want
            .get("TailscaleIPs")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if got.hostname != host || got.tailscale_ips.len() > ips {
            v(
                out,
                "tslocal.peer",
                format!("{got:?} from {}", show_json(want)),
            );
        }
    }
    let tray = s.tailnet_state();
    let tray_ok = match (&s.backend_state, &tray) {
        (B::Running, T::Connected { node }) => !node.is_empty(),
        (B::NeedsLogin | B::NeedsMachineAuth, T::NeedsLogin { login_url }) => {
            *login_url == s.auth_url
        }
        (B::Starting | B::NoState, T::Starting) => true,
        (B::Stopped, T::Stopped) => true,
        (B::Other(_), T::Unavailable { reason }) => !reason.chars().any(char::is_control),
        _ => false,
    };
    if !tray_ok {
        v(
            out,
            "tslocal.tray_state",
            format!("{:?} shown as {tray:?}", s.backend_state),
        );
    }
    if let Some(first) = s.peers.first() {
        if !first.hostname.is_empty() {
            match s.find_peer(&first.hostname) {
                Some(p) if p.is_named(&first.hostname) => {}
                other => v(
                    out,
                    "tslocal.find_peer",
                    format!("{other:?} for {:?}", first.hostname),
                ),
            }
        }
    }
}

// ------------------------------------------------------------- provisioning posture
// Parsers of what a provisioned server prints (`clawkeeper_core::provision::posture`).

use clawkeeper_core::provision::posture;

pub fn posture_ss(data: &[u8]) -> Result<(), String> {
    unknown_only(posture_ss_violations(data))
}

pub fn posture_sshd(data: &[u8]) -> Result<(), String> {
    unknown_only(posture_sshd_violations(data))
}

pub fn posture_nft(data: &[u8]) -> Result<(), String> {
    unknown_only(posture_nft_violations(data))
}

pub fn posture_kv_stat(data: &[u8]) -> Result<(), String> {
    unknown_only(posture_kv_stat_violations(data))
}

pub fn posture_audit(data: &[u8]) -> Result<(), String> {
    unknown_only(posture_audit_violations(data))
}

pub fn posture_report(data: &[u8]) -> Result<(), String> {
    unknown_only(posture_report_violations(data))
}

/// `ss -ltnpH`: one listener per LISTEN line at most, its port written in the line, a
/// loopback verdict only for a real loopback address, pids that appear in the line.
pub fn posture_ss_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let listeners = posture::parse_ss(&text);
    let listen_lines = text
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("LISTEN"))
        .count();
    if listeners.len() > listen_lines {
        v(
            &mut out,
            "ss.count",
            format!(
                "{} listeners from {listen_lines} LISTEN lines",
                listeners.len()
            ),
        );
    }
    // Numbers written after `prefix` anywhere in the text (leading zeros allowed).
    let numbers_after = |prefix: &str| -> Vec<u64> {
        text.match_indices(prefix)
            .filter_map(|(i, _)| {
                let digits: String = text[i + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
            .collect()
    };
    let ports = numbers_after(":");
    let pids = numbers_after("pid=");
    for l in &listeners {
        if !ports.contains(&u64::from(l.port)) {
            v(
                &mut out,
                "ss.port_source",
                format!("port {} is not in the input", l.port),
            );
        }
        if l.is_loopback()
            && !l.addr.is_some_and(|a| match a {
                IpAddr::V4(a) => a.is_loopback(),
                IpAddr::V6(a) => {
                    a.is_loopback() || a.to_ipv4_mapped().is_some_and(|m| m.is_loopback())
                }
            })
        {
            v(&mut out, "ss.loopback", format!("{l:?} called loopback"));
        }
        if l.addr.is_some_and(|a| a.is_unspecified()) {
            v(
                &mut out,
                "ss.wildcard",
                format!("{l:?}: a wildcard must be None"),
            );
        }
        for (_, pid) in &l.processes {
            if !pids.contains(&u64::from(*pid)) {
                v(
                    &mut out,
                    "ss.pid_source",
                    format!("pid {pid} is not in the input"),
                );
            }
        }
        if !l.shown().ends_with(&format!(":{}", l.port)) {
            v(&mut out, "ss.shown", l.shown());
        }
    }
    out
}

/// `sshd -T`: lowercase alphanumeric keys that start a line of the input (any case).
pub fn posture_sshd_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let map = posture::parse_sshd_t(&text);
    let mut values = 0;
    for (k, vals) in &map {
        values += vals.len();
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            v(&mut out, "sshd.key", format!("{k:?}"));
        }
        if !lower
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{k} ")))
        {
            v(&mut out, "sshd.key_source", format!("{k:?} starts no line"));
        }
    }
    if values > text.lines().count() {
        v(
            &mut out,
            "sshd.count",
            format!("{values} values from {} lines", text.lines().count()),
        );
    }
    out
}

/// `nft -j`: the same tables, chains and rules an independent walk of the JSON finds.
pub fn posture_nft_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let got = posture::parse_nft_json(&text);
    let oracle = serde_json::from_str::<Value>(text.trim())
        .ok()
        .and_then(|v| v.get("nftables").and_then(Value::as_array).cloned());
    match (&got, &oracle) {
        (Some(_), None) => v(&mut out, "nft.oracle", "parsed what is not nft JSON".into()),
        (None, Some(_)) => v(&mut out, "nft.oracle", "rejected nft JSON".into()),
        (Some(r), Some(items)) => {
            let has = |o: &Value, keys: &[&str]| {
                keys.iter().all(|k| o.get(*k).is_some_and(Value::is_string))
            };
            let tables = items
                .iter()
                .filter_map(|i| i.get("table"))
                .filter(|o| has(o, &["family", "name"]))
                .count();
            let chains = items
                .iter()
                .filter(|i| i.get("table").is_none())
                .filter_map(|i| i.get("chain"))
                .filter(|o| has(o, &["family", "table", "name"]))
                .count();
            let rules = items
                .iter()
                .filter(|i| i.get("table").is_none() && i.get("chain").is_none())
                .filter_map(|i| i.get("rule"))
                .filter(|o| has(o, &["family", "table", "chain"]))
                .count();
            if (r.tables.len(), r.chains.len(), r.rules.len()) != (tables, chains, rules) {
                v(
                    &mut out,
                    "nft.oracle",
                    format!(
                        "got {}/{}/{} tables/chains/rules, expected {tables}/{chains}/{rules}",
                        r.tables.len(),
                        r.chains.len(),
                        r.rules.len()
                    ),
                );
            }
        }
        (None, None) => {}
    }
    out
}

/// `systemctl show` and `stat -c '%a|%U|%G|%h|%F|%n'`.
pub fn posture_kv_stat_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let kv = posture::parse_kv(&text);
    for k in kv.keys() {
        if k.is_empty() || !text.contains(&format!("{k}=")) {
            v(&mut out, "kv.key_source", format!("{k:?}"));
        }
    }
    let stats = posture::parse_stat(&text);
    if stats.len() > text.lines().count() {
        v(
            &mut out,
            "stat.count",
            format!("{} from {} lines", stats.len(), text.lines().count()),
        );
    }
    for s in &stats {
        if s.mode > 0o7777 || s.path.is_empty() {
            v(&mut out, "stat.fields", format!("{s:?}"));
        }
        if !text
            .lines()
            .any(|l| l.ends_with(&s.path) && l.contains(&s.kind))
        {
            v(&mut out, "stat.line_source", format!("{s:?}"));
        }
    }
    out
}

/// `openclaw security audit --json`: the summary of the first JSON value after the first
/// `{`, findings never more than the array holds.
pub fn posture_audit_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let got = posture::parse_audit(&text);
    let oracle = text.find('{').and_then(|i| {
        serde_json::Deserializer::from_str(&text[i..])
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
    });
    let summary = oracle
        .as_ref()
        .and_then(|o| o.get("summary"))
        .and_then(Value::as_object);
    match (&got, summary) {
        (Some(_), None) => v(
            &mut out,
            "audit.oracle",
            "a report without a summary".into(),
        ),
        (None, Some(_)) => v(
            &mut out,
            "audit.oracle",
            "rejected a report with a summary".into(),
        ),
        (Some(a), Some(s)) => {
            let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
            if (a.critical, a.warn, a.info) != (n("critical"), n("warn"), n("info")) {
                v(&mut out, "audit.summary", format!("{a:?}"));
            }
            let max = oracle
                .as_ref()
                .and_then(|o| o.get("findings"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if a.findings.len() > max || a.findings.iter().any(|f| f.id.is_empty() && max == 0) {
                v(
                    &mut out,
                    "audit.findings",
                    format!("{} findings of {max}", a.findings.len()),
                );
            }
        }
        (None, None) => {}
    }
    out
}

/// The whole report: never panics, and a check passes only with evidence (a report with
/// no section at all passes nothing).
pub fn posture_report_violations(data: &[u8]) -> Vec<Violation> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut spec = clawkeeper_core::provision::steps::ProvisionSpec::new("fuzz");
    spec.model = Some(clawkeeper_core::provision::ModelEndpoint {
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "m".into(),
    });
    let checks = posture::evaluate(&text, &spec);
    if !text.lines().any(|l| l.starts_with("@@")) {
        for c in &checks {
            if c.status == clawkeeper_core::local::verify::CheckStatus::Pass {
                v(&mut out, "report.pass_without_evidence", c.id.to_owned());
            }
        }
    }
    if checks
        .iter()
        .any(|c| c.detail.as_deref().is_none_or(str::is_empty))
    {
        v(
            &mut out,
            "report.detail_empty",
            "a check without a detail".into(),
        );
    }
    out
}

// ------------------------------------------------------------ the gateway's `sessions.usage`

pub fn usage_sessions(data: &[u8]) -> Result<(), String> {
    unknown_only(usage_sessions_violations(data))
}

/// Bytes → `usage::gateway::parse_day` for the day the answer names (`startDate`, else
/// 2026-11-26): only a JSON object with `aggregates` and a `sessions` list is accepted; in
/// an accepted answer every amount is finite and non-negative, the day's totals are exactly
/// the JSON's `costDaily` numbers, the models and the channels each add up to the day
/// (tokens exactly, cost to rounding), and the listed conversations to no more than it.
/// The same bytes also go to `parse_probe` (the refresh's `sessions.list` check): accepted
/// only with a list, one time per conversation, running exactly when one is.
pub fn usage_sessions_violations(data: &[u8]) -> Vec<Violation> {
    use clawkeeper_core::usage::gateway::parse_day;
    use clawkeeper_core::usage::Day;
    let mut out = Vec::new();
    let Some(j) = std::str::from_utf8(data)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return out;
    };
    // The same bytes as the refresh's "anything new?" answer (`sessions.list`).
    if let Ok(p) = clawkeeper_core::usage::gateway::parse_probe(&j) {
        let listed = j.get("sessions").and_then(Value::as_array);
        match listed {
            None => v(&mut out, "probe.accepts_without_list", show_json(&j)),
            Some(list) => {
                if p.updated.len() != list.len() {
                    v(&mut out, "probe.times_per_conversation", show_json(&j));
                }
                let any_running = list
                    .iter()
                    .any(|s| s.get("hasActiveRun").and_then(Value::as_bool) == Some(true));
                if p.running != any_running {
                    v(&mut out, "probe.running", show_json(&j));
                }
                if p.running && !p.changed_since(Some(i64::MAX)) {
                    v(&mut out, "probe.running_is_a_change", show_json(&j));
                }
            }
        }
    }
    let day = j
        .get("startDate")
        .and_then(Value::as_str)
        .and_then(Day::parse)
        .or_else(|| Day::parse("2026-11-26"));
    let Some(day) = day else { return out };
    let Ok((_, u)) = parse_day(&j, day) else {
        return out;
    };
    if !j.get("aggregates").is_some_and(Value::is_object)
        || !j.get("sessions").is_some_and(Value::is_array)
    {
        v(&mut out, "usage.accepts_without_parts", show_json(&j));
        return out;
    }
    let money_ok = |c: f64| c.is_finite() && c >= 0.0;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-9;
    let row = &j["aggregates"]["costDaily"][0];
    let (want_total, want_cost, want_input) = if row.is_object() {
        (
            row["totalTokens"].as_f64().unwrap_or(-1.0),
            row["totalCost"].as_f64().unwrap_or(-1.0),
            row.get("input").and_then(Value::as_f64).unwrap_or(0.0),
        )
    } else {
        (0.0, 0.0, 0.0)
    };
    if u.tokens.total as f64 != want_total
        || u.cost != want_cost
        || u.tokens.input as f64 != want_input
    {
        v(
            &mut out,
            "usage.day_totals",
            format!(
                "{} tokens ${} vs {}",
                u.tokens.total,
                u.cost,
                show_json(row)
            ),
        );
    }
    if !money_ok(u.cost) {
        v(&mut out, "usage.cost_not_money", format!("{}", u.cost));
    }
    let models: (u64, f64) = u
        .models
        .iter()
        .fold((0, 0.0), |a, m| (a.0 + m.tokens, a.1 + m.cost));
    if !u.models.is_empty() && (models.0 != u.tokens.total || !close(models.1, u.cost)) {
        v(
            &mut out,
            "usage.models_add_up",
            format!("{models:?} vs {} ${}", u.tokens.total, u.cost),
        );
    }
    let channels: (u64, f64) = u
        .channels
        .iter()
        .fold((0, 0.0), |a, c| (a.0 + c.tokens.total, a.1 + c.cost));
    if (u.tokens.total > 0 || u.cost > 1e-12)
        && (channels.0 != u.tokens.total || !close(channels.1, u.cost))
    {
        v(
            &mut out,
            "usage.channels_add_up",
            format!("{channels:?} vs {} ${}", u.tokens.total, u.cost),
        );
    }
    let sessions: (u64, f64) = u
        .sessions
        .iter()
        .fold((0, 0.0), |a, s| (a.0 + s.tokens.total, a.1 + s.cost));
    if sessions.0 > u.tokens.total || sessions.1 > u.cost * (1.0 + 1e-9) + 1e-9 {
        v(
            &mut out,
            "usage.sessions_within_day",
            format!("{sessions:?} vs {} ${}", u.tokens.total, u.cost),
        );
    }
    let mut keys = std::collections::HashSet::new();
    for s in &u.sessions {
        if !keys.insert(s.key.clone()) {
            v(&mut out, "usage.session_twice", s.key.clone());
        }
    }
    for c in u
        .models
        .iter()
        .map(|m| m.cost)
        .chain(u.channels.iter().map(|c| c.cost))
        .chain(u.sessions.iter().map(|s| s.cost))
    {
        if !money_ok(c) {
            v(&mut out, "usage.part_not_money", format!("{c}"));
        }
    }
    out
}
