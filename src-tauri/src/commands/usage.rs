//! Usage and spend (forwarded to the daemon): the Usage section, "Update now", exports,
//! the spend cap and resuming after a pause at the cap.

use crate::Daemon;
use clawkeeper_core::{Problem, Secret};
use serde_json::{json, Value};
use tauri::State;

/// The Usage section from what is already counted (fast: no call to the assistant).
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn usage_view(daemon: State<'_, Daemon>, days: Option<u32>) -> Result<Value, Problem> {
    daemon.0.call("usage_view", json!({ "days": days })).await
}

/// "Update now": ask the assistant for what's new, then the section again.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn usage_sync(daemon: State<'_, Daemon>, days: Option<u32>) -> Result<Value, Problem> {
    daemon.0.call("usage_sync", json!({ "days": days })).await
}

/// A breakdown as CSV or JSON: the text, or with `save`, a file in Downloads (its path).
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn usage_export(
    daemon: State<'_, Daemon>,
    format: String,
    by: String,
    from: String,
    to: String,
    save: Option<bool>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call(
            "usage_export",
            json!({ "format": format, "by": by, "from": from, "to": to, "save": save.unwrap_or(false) }),
        )
        .await
}

/// Set the spend cap (`amount: null` removes it).
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn spend_cap_set(
    daemon: State<'_, Daemon>,
    amount: Option<f64>,
    period: Option<String>,
    levels: Option<Vec<u8>>,
    pause_at_cap: bool,
    days: Option<u32>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call(
            "spend_cap_set",
            json!({ "amount": amount, "period": period, "levels": levels, "pauseAtCap": pause_at_cap, "days": days }),
        )
        .await
}

/// Resume after a pause at the spend cap.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn spend_resume(daemon: State<'_, Daemon>, days: Option<u32>) -> Result<Value, Problem> {
    daemon.0.call("spend_resume", json!({ "days": days })).await
}

/// An OpenRouter management key (so the cap is set on the assistant's key at OpenRouter):
/// a [`Secret`] at once, across only the daemon's 0600 socket; the answer has no secret.
#[tauri::command]
#[tracing::instrument(skip(daemon, secret))]
pub async fn provider_management_save(
    daemon: State<'_, Daemon>,
    secret: String,
    days: Option<u32>,
) -> Result<Value, Problem> {
    let secret = Secret::new(secret);
    daemon
        .0
        .call_with_secrets(
            "provider_management_save",
            json!({ "days": days }),
            &[("secret", &secret)],
        )
        .await
}

#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn provider_management_forget(
    daemon: State<'_, Daemon>,
    days: Option<u32>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call("provider_management_forget", json!({ "days": days }))
        .await
}

/// "At a glance": version and updates, uptime, memory and disk, conversations and channels.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn status_detail(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("status_detail", json!({})).await
}
