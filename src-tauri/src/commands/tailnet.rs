//! The person's tailnet (forwarded to the daemon): the Tailscale API key (a secret that
//! becomes a [`Secret`] at once and crosses only the daemon's 0600 socket), the policy
//! check, the server's device. The answers carry no secret: only "saved" and a fingerprint.

use crate::Daemon;
use clawkeeper_core::{Problem, Secret};
use serde_json::{json, Value};
use tauri::State;

/// The "Private network (Tailscale)" section as it stands, without asking Tailscale.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn tailnet_view(
    daemon: State<'_, Daemon>,
    server_id: Option<String>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call("tailnet_view", json!({ "serverId": server_id }))
        .await
}

/// "Check again": the policy check and the server's device, from Tailscale.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn tailnet_check(
    daemon: State<'_, Daemon>,
    server_id: Option<String>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call("tailnet_check", json!({ "serverId": server_id }))
        .await
}

/// An API access token, or an OAuth client secret (with its client id).
#[tauri::command]
#[tracing::instrument(skip(daemon, secret))]
pub async fn tailnet_key_save(
    daemon: State<'_, Daemon>,
    secret: String,
    client_id: Option<String>,
    server_id: Option<String>,
) -> Result<Value, Problem> {
    let secret = Secret::new(secret);
    daemon
        .0
        .call_with_secrets(
            "tailnet_key_save",
            json!({ "clientId": client_id, "serverId": server_id }),
            &[("secret", &secret)],
        )
        .await
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn tailnet_key_forget(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    daemon
        .0
        .call("tailnet_key_forget", json!({}))
        .await
        .map(drop)
}

/// Put the server on the person's tailnet (a background job; progress as server events).
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn server_tailnet_join(daemon: State<'_, Daemon>, id: String) -> Result<(), Problem> {
    daemon
        .0
        .call("server_tailnet_join", json!({ "id": id }))
        .await
        .map(drop)
}

/// For a computer without Tailscale: Clawkeeper's own node (experimental).
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn tailnet_use_embedded(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("tailnet_use_embedded", json!({})).await
}
