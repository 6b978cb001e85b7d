//! Keys and their rotation (forwarded to the daemon): the Keys section's list, "Rotate",
//! "Rotate all" and "Try again" for a rotation left unfinished. Progress arrives as
//! `rotation` events; no secret crosses here, only labels, dates and fingerprints.

use crate::Daemon;
use clawkeeper_core::Problem;
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
