//! The private chat with the assistant (forwarded to the daemon). Message text is never logged.

use crate::Daemon;
use clawkeeper_core::Problem;
use serde_json::{json, Value};
use tauri::State;

/// Answers `{runId}`.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn chat_send(daemon: State<'_, Daemon>, message: String) -> Result<Value, Problem> {
    daemon
        .0
        .call("chat_send", json!({ "message": message }))
        .await
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn chat_history(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("chat_history", json!({})).await
}

#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn chat_abort(daemon: State<'_, Daemon>, run_id: String) -> Result<(), Problem> {
    daemon
        .0
        .call("chat_abort", json!({ "runId": run_id }))
        .await
        .map(drop)
}
