//! The model provider and its API key (forwarded to the daemon).

use crate::Daemon;
use clawkeeper_core::{Problem, Secret};
use serde_json::json;
use tauri::State;

/// Arguments arrive flat (`{kind, baseUrl, model, apiKey}`). The key goes into a
/// [`Secret`] before anything else happens, crosses only the daemon's 0600 socket and is
/// never logged.
#[tauri::command]
#[tracing::instrument(skip_all, fields(kind = %kind))]
pub async fn save_provider(
    daemon: State<'_, Daemon>,
    kind: String,
    base_url: Option<String>,
    model: Option<String>,
    api_key: String,
) -> Result<(), Problem> {
    let api_key = Secret::new(api_key);
    daemon
        .0
        .save_provider(&kind, base_url.as_deref(), model.as_deref(), &api_key)
        .await
}

/// "Sign in with OpenRouter": the core starts the PKCE flow and a loopback callback; we
/// open the page in the person's browser. The key arrives as a `provider` event.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn start_openrouter_sign_in(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    let url = daemon.0.call("start_openrouter_sign_in", json!({})).await?;
    let url = url
        .as_str()
        .ok_or_else(|| Problem::new("ipc_error", "Clawkeeper couldn't start the sign-in.", None))?;
    open_in_browser(url)
}

pub(crate) fn open_in_browser(url: &str) -> Result<(), Problem> {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(target_os = "windows") {
        std::process::Command::new("explorer")
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|_| {
            Problem::new(
                "no_browser",
                "Clawkeeper couldn't open your web browser.",
                Some("Paste a key instead."),
            )
        })
}
