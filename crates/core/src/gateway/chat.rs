//! Typed chat over the gateway: `chat.send`, `chat.history`, `chat.abort` and the `chat`
//! events of a run (see docs/gateway-protocol.md for the observed shapes).

use super::{Connection, Error, Gateway, Result};
use crate::problem::Problem;
use serde::Serialize;
use serde_json::{json, Value};

/// The main session of the default agent (`"main"` and `"agent:main:main"` are the same).
pub const MAIN_SESSION: &str = "main";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Progress only (`phase`: preparing_workspace, starting_model, …).
    Status,
    Delta,
    Final,
    Error,
    Aborted,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(self, RunState::Final | RunState::Error | RunState::Aborted)
    }
}

/// One `chat` event, reduced to what a chat window needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatUpdate {
    pub run_id: String,
    pub session_key: String,
    pub state: RunState,
    /// The whole assistant text so far (delta) or the final text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

impl ChatUpdate {
    /// How the run ended, once it did: its final text, or why not (the run's error in
    /// words, or that it was stopped). `None` while it runs.
    pub fn outcome(self) -> Option<std::result::Result<String, Problem>> {
        match self.state {
            RunState::Final => Some(Ok(self.text.unwrap_or_default())),
            RunState::Error => Some(Err(self.error.unwrap_or_else(|| {
                Problem::new("run_failed", "The assistant could not answer.", None)
            }))),
            RunState::Aborted => Some(Err(Problem::new("aborted", "The reply was stopped.", None))),
            RunState::Status | RunState::Delta => None,
        }
    }
}

/// Text of a message whose `content` is a string or an array of `{type:"text", text}` parts.
pub fn message_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Some(text)
        }
        _ => None,
    }
}

/// Parse the payload of a `chat` event. Unknown states give `None` (ignored).
pub fn parse_chat_event(payload: &Value) -> Option<ChatUpdate> {
    let run_id = payload.get("runId")?.as_str()?.to_owned();
    let session_key = payload
        .get("sessionKey")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let state = match payload.get("state")?.as_str()? {
        "status" => RunState::Status,
        "delta" => RunState::Delta,
        "final" => RunState::Final,
        "error" => RunState::Error,
        "aborted" => RunState::Aborted,
        _ => return None,
    };
    let text = payload.get("message").and_then(message_text);
    let phase = payload
        .get("phase")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let error = (state == RunState::Error).then(|| provider_problem(payload));
    Some(ChatUpdate {
        run_id,
        session_key,
        state,
        text,
        phase,
        error,
    })
}

/// Turn a run's error into words for the person, classifying provider failures.
fn provider_problem(payload: &Value) -> Problem {
    let reason = payload
        .pointer("/errorDetail/failoverReason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = payload
        .pointer("/errorDetail/providerRuntimeFailureKind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = payload
        .get("errorMessage")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if reason == "auth" || kind.starts_with("auth") || raw.contains("HTTP 401") {
        Problem::new(
            "provider_auth",
            "Your model provider refused the API key.",
            Some("Check the key under Settings (Change key), then send your message again."),
        )
    } else if reason == "billing" || raw.contains("HTTP 402") {
        Problem::new(
            "provider_billing",
            "Your model provider says the account is out of credit.",
            Some("Add credit at your provider, then send your message again."),
        )
    } else if reason == "rate_limit" || raw.contains("HTTP 429") {
        Problem::new(
            "provider_rate_limit",
            "Your model provider is limiting requests right now.",
            Some("Wait a minute, then try again."),
        )
    } else {
        // The gateway's own message is plain words already; keep its first real line.
        let first = raw
            .lines()
            .map(|l| {
                l.trim()
                    .trim_start_matches('⚠')
                    .trim_start_matches('\u{fe0f}')
                    .trim()
            })
            .find(|l| !l.is_empty())
            .unwrap_or("The assistant could not answer.")
            .to_owned();
        Problem::new(
            "run_failed",
            first,
            Some("Try again. If it keeps failing, open Status for details."),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryMessage {
    pub role: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Parse a `chat.history` response into display messages (user and assistant only).
pub fn parse_history(payload: &Value) -> Vec<HistoryMessage> {
    let Some(messages) = payload.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    messages
        .iter()
        .filter_map(|m| {
            let role = m.get("role")?.as_str()?;
            if role != "user" && role != "assistant" {
                return None;
            }
            let text = message_text(m)?;
            let at = m
                .get("timestamp")
                .and_then(Value::as_i64)
                .and_then(rfc3339_ms);
            Some(HistoryMessage {
                role: role.to_owned(),
                text,
                at,
            })
        })
        .collect()
}

/// Send `message` on `session_key` over one connection and wait for the run's end: the
/// final text, or the run's error in words (the provider refused the key, …). A run that
/// doesn't end within `timeout` is [`Error::Timeout`].
pub async fn ask(
    conn: &mut Connection,
    session_key: &str,
    message: &str,
    timeout: std::time::Duration,
) -> Result<std::result::Result<String, Problem>> {
    let key = uuid::Uuid::new_v4().to_string();
    let res = conn
        .request(
            "chat.send",
            json!({ "sessionKey": session_key, "message": message, "idempotencyKey": key }),
            timeout,
        )
        .await?;
    let run_id = res
        .get("runId")
        .and_then(Value::as_str)
        .map_or(key, str::to_owned);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = conn.next_event(left).await?;
        if ev.event != "chat" {
            continue;
        }
        let Some(u) = parse_chat_event(&ev.payload) else {
            continue;
        };
        if u.run_id != run_id {
            continue;
        }
        if let Some(outcome) = u.outcome() {
            return Ok(outcome);
        }
    }
}

impl Gateway {
    /// Send a message; returns the run id (replies arrive as `chat` events).
    pub async fn chat_send(&self, session_key: &str, message: &str) -> Result<String> {
        let key = uuid::Uuid::new_v4().to_string();
        let res = self
            .request(
                "chat.send",
                json!({ "sessionKey": session_key, "message": message, "idempotencyKey": key }),
            )
            .await?;
        Ok(res
            .get("runId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(key))
    }

    pub async fn chat_history(&self, session_key: &str, limit: u32) -> Result<Vec<HistoryMessage>> {
        let res = self
            .request(
                "chat.history",
                json!({ "sessionKey": session_key, "limit": limit }),
            )
            .await?;
        if res.get("messages").is_none() {
            return Err(Error::Protocol("chat.history had no messages".into()));
        }
        Ok(parse_history(&res))
    }

    pub async fn chat_abort(&self, session_key: &str, run_id: &str) -> Result<()> {
        self.request(
            "chat.abort",
            json!({ "sessionKey": session_key, "runId": run_id }),
        )
        .await?;
        Ok(())
    }

    /// `health`: true when the gateway says ok.
    pub async fn health(&self) -> Result<bool> {
        let res = self.request("health", json!({})).await?;
        Ok(res.get("ok").and_then(Value::as_bool).unwrap_or(false))
    }

    pub async fn status(&self) -> Result<Value> {
        self.request("status", json!({})).await
    }

    pub async fn sessions_usage(&self) -> Result<Value> {
        self.request("sessions.usage", json!({})).await
    }

    pub async fn usage_cost(&self) -> Result<Value> {
        self.request("usage.cost", json!({})).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_has_an_outcome_only_once_it_ended() {
        let update = |state: &str, extra: Value| {
            let mut p = json!({ "runId": "r", "sessionKey": "main", "state": state });
            if let (Some(o), Value::Object(e)) = (p.as_object_mut(), extra) {
                o.extend(e);
            }
            parse_chat_event(&p).unwrap()
        };
        assert!(update("delta", json!({})).outcome().is_none());
        assert!(update("status", json!({ "phase": "starting_model" }))
            .outcome()
            .is_none());
        let final_text = json!({ "message": { "role": "assistant", "content": "Echo: hi" } });
        assert_eq!(
            update("final", final_text).outcome().unwrap().unwrap(),
            "Echo: hi"
        );
        let refused = json!({ "errorMessage": "HTTP 401: Incorrect API key provided" });
        assert_eq!(
            update("error", refused)
                .outcome()
                .unwrap()
                .unwrap_err()
                .code,
            "provider_auth"
        );
        assert_eq!(
            update("aborted", json!({}))
                .outcome()
                .unwrap()
                .unwrap_err()
                .code,
            "aborted"
        );
    }

    #[test]
    fn delta_final_and_auth_error() {
        let d = parse_chat_event(
            &json!({"runId":"r","sessionKey":"agent:main:main","state":"delta","deltaText":" b",
            "message":{"role":"assistant","content":[{"type":"text","text":"a b"}]}}),
        )
        .unwrap();
        assert_eq!((d.state, d.text.as_deref()), (RunState::Delta, Some("a b")));
        let f = parse_chat_event(&json!({"runId":"r","state":"final","message":{"content":[{"type":"text","text":"Echo: "},{"type":"text","text":"hi"}]}})).unwrap();
        assert_eq!(f.text.as_deref(), Some("Echo: hi"));
        let e = parse_chat_event(&json!({"runId":"r","state":"error","errorMessage":"Authentication failed (provider returned HTTP 401).",
            "errorDetail":{"failoverReason":"auth","providerRuntimeFailureKind":"auth_invalid_token"}})).unwrap();
        assert_eq!(e.error.unwrap().code, "provider_auth");
        assert!(parse_chat_event(&json!({"runId":"r","state":"weird"})).is_none());
        assert!(parse_chat_event(&json!({"state":"final"})).is_none());
    }

    #[test]
    fn history_keeps_user_and_assistant_text() {
        let h = parse_history(&json!({"messages":[
            {"role":"user","content":"hello","timestamp":1795622940848i64},
            {"role":"assistant","content":[{"type":"text","text":"Echo: hello"}]},
            {"role":"tool","content":"x"}]}));
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].text, "hello");
        assert!(h[0].at.as_deref().unwrap().starts_with("2026-11-25T"));
        assert_eq!(h[1].role, "assistant");
    }
}
