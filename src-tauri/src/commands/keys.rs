//! Keys and their rotation (forwarded to the daemon): the Keys section's list, "Rotate",
//! "Rotate all" and "Try again" for a rotation left unfinished. Progress arrives as
//! `rotation` events; no secret crosses here, only labels, dates and fingerprints.

use crate::Daemon;
use clawkeeper_core::{Problem, Secret};
use serde_json::{json, Value};
use tauri::State;

/// Every key the assistant depends on: where it lives, how old, how it rotates.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn keys_inventory(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("keys_inventory", json!({})).await
}

/// "Rotate": replace one key (`gateway-token`, …) of this computer's assistant or of a
/// server (`instance_id`) with a new one.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn rotate_key(
    daemon: State<'_, Daemon>,
    key: String,
    instance_id: Option<String>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call(
            "rotate_key",
            json!({ "key": key, "instanceId": instance_id }),
        )
        .await
}

/// A guided rotation: `key` (the model provider key, the Hetzner token) replaced by one the
/// person made at the provider — a [`Secret`] at once, across only the daemon's 0600
/// socket; the answer has no secret.
#[tauri::command]
#[tracing::instrument(skip(daemon, secret))]
pub async fn rotate_key_with(
    daemon: State<'_, Daemon>,
    key: String,
    secret: String,
) -> Result<Value, Problem> {
    let secret = Secret::new(secret);
    daemon
        .0
        .call_with_secrets(
            "rotate_key_with",
            json!({ "key": key }),
            &[("secret", &secret)],
        )
        .await
}

/// "Get a new key from OpenRouter": the daemon listens for the browser's return, the sign-in
/// page opens in the person's browser, and the daemon rotates to the key OpenRouter gives
/// (it never crosses here). Waits up to 10 minutes, or until "Cancel".
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn rotate_key_sign_in(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    let url = daemon.0.call("rotate_key_sign_in_begin", json!({})).await?;
    let url = url
        .as_str()
        .ok_or_else(|| Problem::new("ipc_error", "Clawkeeper couldn't start the sign-in.", None))?;
    if let Err(p) = super::provider::open_in_browser(url) {
        let _ = daemon.0.call("rotate_key_sign_in_cancel", json!({})).await;
        return Err(p);
    }
    daemon.0.call("rotate_key_sign_in_finish", json!({})).await
}

/// An OpenAI Admin key (and the project of the assistant's key, if the organization has
/// several), so the OpenAI key rotates in one click: a [`Secret`] at once, across only the
/// daemon's 0600 socket; checked at OpenAI before it is kept; the answer has no secret.
#[tauri::command]
#[tracing::instrument(skip(daemon, secret))]
pub async fn openai_admin_save(
    daemon: State<'_, Daemon>,
    secret: String,
    project: Option<String>,
) -> Result<Value, Problem> {
    let secret = Secret::new(secret);
    daemon
        .0
        .call_with_secrets(
            "openai_admin_save",
            json!({ "project": project }),
            &[("secret", &secret)],
        )
        .await
}

/// "Cancel" while that sign-in waits for the browser; the key is unchanged.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn rotate_key_sign_in_cancel(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("rotate_key_sign_in_cancel", json!({})).await
}

/// "Rotate all": every key that rotates in one click; the others listed as needing you.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn rotate_all(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("rotate_all", json!({})).await
}

/// "Try again": finish the rotations a crash or an unreachable assistant left unfinished.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn rotations_resume(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("rotations_resume", json!({})).await
}

/// The reminder schedule ("remind me to change keys every 90 days"), the keys due now and
/// when the next reminder is.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn key_reminders(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("key_reminders", json!({})).await
}

/// Set the reminder schedule: every `every_days` days, or never (`null`).
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn set_key_reminders(
    daemon: State<'_, Daemon>,
    every_days: Option<u32>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call("set_key_reminders", json!({ "everyDays": every_days }))
        .await
}
