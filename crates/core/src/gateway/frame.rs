//! Frames of the OpenClaw gateway protocol (version 4): JSON text frames over WebSocket.
//!
//! - request  `{type:"req", id, method, params}`
//! - response `{type:"res", id, ok, payload | error:{code, message, details?, retryable?, retryAfterMs?}}`
//! - event    `{type:"event", event, payload, seq?}`
//!
//! [`parse`] takes untrusted text from the socket: it never panics, and anything that is not
//! one of these shapes is an [`Error`] or [`Frame::Unknown`], never a wrong value.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PROTOCOL_VERSION: u32 = 4;

/// Largest frame we accept before the handshake has told us the real limit.
pub const DEFAULT_MAX_FRAME: usize = 25 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RpcError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(
        default,
        rename = "retryAfterMs",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_ms: Option<u64>,
}

impl RpcError {
    /// `details.reason` or `details.code`, where the gateway puts the precise cause.
    pub fn reason(&self) -> Option<&str> {
        let d = self.details.as_ref()?;
        d.get("reason")
            .or_else(|| d.get("code"))
            .and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Response {
        id: String,
        result: Result<Value, RpcError>,
    },
    Event {
        event: String,
        payload: Value,
        seq: Option<u64>,
    },
    /// A request from the gateway to us (not used by operator clients; answered with an error).
    Request { id: String, method: String },
    /// A well-formed frame of a type this client does not know (newer gateway): ignored.
    Unknown { kind: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("frame is too large ({0} bytes)")]
    TooLarge(usize),
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    #[error("frame has no valid type")]
    NoType,
    #[error("{kind} frame is missing `{field}`")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<Value>,
    id: Option<Value>,
    ok: Option<Value>,
    payload: Option<Value>,
    error: Option<Value>,
    event: Option<Value>,
    method: Option<Value>,
    seq: Option<Value>,
}

/// A request or response id: a non-empty string (or a number, as text).
fn id_string(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse one text frame from the gateway.
pub fn parse(text: &str, max_len: usize) -> Result<Frame, Error> {
    if text.len() > max_len {
        return Err(Error::TooLarge(text.len()));
    }
    // Only a JSON object is a frame (serde's derive would also take an 8-element array).
    let value: Value = serde_json::from_str(text).map_err(|e| Error::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(Error::NoType);
    }
    let raw: Raw = serde_json::from_value(value).map_err(|e| Error::NotJson(e.to_string()))?;
    let kind = match raw.kind {
        Some(Value::String(k)) => k,
        _ => return Err(Error::NoType),
    };
    match kind.as_str() {
        "res" => {
            let id = id_string(raw.id).ok_or(Error::Missing {
                kind: "res",
                field: "id",
            })?;
            let ok = raw.ok.and_then(|v| v.as_bool()).ok_or(Error::Missing {
                kind: "res",
                field: "ok",
            })?;
            let result = if ok {
                Ok(raw.payload.unwrap_or(Value::Null))
            } else {
                let err = raw
                    .error
                    .and_then(|e| serde_json::from_value::<RpcError>(e).ok())
                    .unwrap_or_else(|| RpcError {
                        code: "UNKNOWN".into(),
                        message: "the gateway reported an error without details".into(),
                        details: None,
                        retryable: None,
                        retry_after_ms: None,
                    });
                Err(err)
            };
            Ok(Frame::Response { id, result })
        }
        "event" => {
            let event = match raw.event {
                Some(Value::String(e)) => e,
                _ => {
                    return Err(Error::Missing {
                        kind: "event",
                        field: "event",
                    })
                }
            };
            Ok(Frame::Event {
                event,
                payload: raw.payload.unwrap_or(Value::Null),
                seq: raw.seq.and_then(|s| s.as_u64()),
            })
        }
        "req" => {
            let id = id_string(raw.id).ok_or(Error::Missing {
                kind: "req",
                field: "id",
            })?;
            let method = match raw.method {
                Some(Value::String(m)) => m,
                _ => {
                    return Err(Error::Missing {
                        kind: "req",
                        field: "method",
                    })
                }
            };
            Ok(Frame::Request { id, method })
        }
        _ => Ok(Frame::Unknown { kind }),
    }
}

/// Serialize a request frame.
pub fn request(id: &str, method: &str, params: &Value) -> String {
    serde_json::json!({ "type": "req", "id": id, "method": method, "params": params }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_three_frame_kinds() -> Result<(), Error> {
        let ev = parse(
            r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}"#,
            1 << 20,
        )?;
        assert_eq!(
            ev,
            Frame::Event {
                event: "connect.challenge".into(),
                payload: json!({"nonce":"n","ts":1}),
                seq: None
            }
        );
        let ok = parse(
            r#"{"type":"res","id":"7","ok":true,"payload":{"type":"hello-ok"}}"#,
            1 << 20,
        )?;
        assert_eq!(
            ok,
            Frame::Response {
                id: "7".into(),
                result: Ok(json!({"type":"hello-ok"}))
            }
        );
        let err = parse(
            r#"{"type":"res","id":8,"ok":false,"error":{"code":"UNAVAILABLE","message":"m","details":{"reason":"startup-sidecars"},"retryAfterMs":500}}"#,
            1 << 20,
        )?;
        match err {
            Frame::Response { id, result: Err(e) } => {
                assert_eq!(id, "8");
                assert_eq!(e.code, "UNAVAILABLE");
                assert_eq!(e.reason(), Some("startup-sidecars"));
                assert_eq!(e.retry_after_ms, Some(500));
            }
            other => return Err(Error::NotJson(format!("{other:?}"))),
        }
        Ok(())
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for junk in [
            r#"["res","1",true,{"a":1},null,null,null,null]"#,
            r#"{"type":"res","id":"","ok":true}"#,
            "",
            "null",
            "[]",
            "{}",
            r#"{"type":1}"#,
            r#"{"type":"res"}"#,
            r#"{"type":"res","id":"1"}"#,
            r#"{"type":"event"}"#,
            "\u{0}",
        ] {
            assert!(parse(junk, 1 << 20).is_err(), "{junk:?} accepted");
        }
        assert_eq!(
            parse(r#"{"type":"hello"}"#, 1 << 20),
            Ok(Frame::Unknown {
                kind: "hello".into()
            })
        );
        assert_eq!(parse(&"x".repeat(11), 10), Err(Error::TooLarge(11)));
    }
}
