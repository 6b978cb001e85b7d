//! The person's own servers (forwarded to the daemon): connect, provision, safety checks,
//! support keys, a new server at Hetzner, delete. Secrets (a key file's text, a one-time
//! password, a cloud token) become [`Secret`]s at once, cross only the daemon's 0600
//! socket inside the request line, and are never logged.

use crate::Daemon;
use clawkeeper_core::{Problem, Secret};
use serde_json::{json, Value};
use tauri::State;

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn servers(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("servers", json!({})).await
}

/// Answers `{fingerprint, algorithm}` for the person to confirm.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn server_scan(
    daemon: State<'_, Daemon>,
    host: String,
    port: u16,
    user: String,
) -> Result<Value, Problem> {
    daemon
        .0
        .call(
            "server_scan",
            json!({ "host": host, "port": port, "user": user }),
        )
        .await
}

/// Arguments arrive flat; exactly one of `key_text` / `password` is expected.
#[tauri::command]
#[allow(clippy::too_many_arguments)] // one per form field, as the UI sends them
#[tracing::instrument(skip(daemon, key_text, passphrase, password))]
pub async fn server_connect(
    daemon: State<'_, Daemon>,
    host: String,
    port: u16,
    user: String,
    name: String,
    confirmed_fingerprint: String,
    key_text: Option<String>,
    passphrase: Option<String>,
    password: Option<String>,
) -> Result<Value, Problem> {
    let key_text = key_text.filter(|s| !s.is_empty()).map(Secret::new);
    let passphrase = passphrase.filter(|s| !s.is_empty()).map(Secret::new);
    let password = password.filter(|s| !s.is_empty()).map(Secret::new);
    let mut secrets: Vec<(&str, &Secret)> = Vec::new();
    if let Some(k) = &key_text {
        secrets.push(("keyText", k));
    }
    if let Some(p) = &passphrase {
        secrets.push(("passphrase", p));
    }
    if let Some(p) = &password {
        secrets.push(("password", p));
    }
    daemon
        .0
        .call_with_secrets(
            "server_connect",
            json!({
                "host": host,
                "port": port,
                "user": user,
                "name": name,
                "confirmedFingerprint": confirmed_fingerprint,
            }),
            &secrets,
        )
        .await
}

/// Starts the job and returns; progress comes as `server` events.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn server_provision(daemon: State<'_, Daemon>, id: String) -> Result<(), Problem> {
    daemon
        .0
        .call("server_provision", json!({ "id": id }))
        .await
        .map(drop)
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn cancel_server_job(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    daemon
        .0
        .call("cancel_server_job", json!({}))
        .await
        .map(drop)
}

#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn server_posture(
    daemon: State<'_, Daemon>,
    id: String,
    fix: bool,
) -> Result<Value, Problem> {
    daemon
        .0
        .call("server_posture", json!({ "id": id, "fix": fix }))
        .await
}

/// Chat with the assistant on server `server_id`, or on this computer (`null`). Answers the
/// new `AssistantView`.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn assistant_use(
    daemon: State<'_, Daemon>,
    server_id: Option<String>,
) -> Result<Value, Problem> {
    daemon
        .0
        .call("assistant_use", json!({ "serverId": server_id }))
        .await
}

/// Answers `{removed: [..]}`: what was deleted, in words.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn server_delete(daemon: State<'_, Daemon>, id: String) -> Result<Value, Problem> {
    daemon.0.call("server_delete", json!({ "id": id })).await
}

/// Answers `{grant, privateKey}`: the private key is shown once by the page and kept
/// nowhere (the answer is not logged).
#[tauri::command]
#[tracing::instrument(skip(daemon, note))]
pub async fn support_issue(
    daemon: State<'_, Daemon>,
    id: String,
    hours: u64,
    note: String,
) -> Result<Value, Problem> {
    daemon
        .0
        .call(
            "support_issue",
            json!({ "id": id, "hours": hours, "note": note }),
        )
        .await
}

#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn support_list(daemon: State<'_, Daemon>, id: String) -> Result<Value, Problem> {
    daemon.0.call("support_list", json!({ "id": id })).await
}

#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn support_revoke(
    daemon: State<'_, Daemon>,
    id: String,
    grant: String,
) -> Result<(), Problem> {
    daemon
        .0
        .call("support_revoke", json!({ "id": id, "grant": grant }))
        .await
        .map(drop)
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn cloud_token_save(daemon: State<'_, Daemon>, token: String) -> Result<(), Problem> {
    let token = Secret::new(token);
    daemon
        .0
        .call_with_secrets("cloud_token_save", json!({}), &[("token", &token)])
        .await
        .map(drop)
}

/// Answers `{locations, serverTypes}` with today's prices from Hetzner's API.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn cloud_options(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("cloud_options", json!({})).await
}

/// Starts the job and answers `{id}`; progress comes as `server` events.
#[tauri::command]
#[tracing::instrument(skip(daemon))]
pub async fn cloud_deploy(
    daemon: State<'_, Daemon>,
    name: String,
    server_type: String,
    location: String,
) -> Result<Value, Problem> {
    daemon
        .0
        .call(
            "cloud_deploy",
            json!({ "name": name, "serverType": server_type, "location": location }),
        )
        .await
}
