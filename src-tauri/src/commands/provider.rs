//! The model provider and its API key.

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::{Problem, Secret};
use tauri::State;

/// Arguments arrive flat (`{kind, baseUrl, model, apiKey}`). The key goes into a
/// [`Secret`] before anything else happens and is never logged.
#[tauri::command]
#[tracing::instrument(skip_all, fields(kind = %kind))]
pub async fn save_provider(
    core: State<'_, Clawkeeper>,
    kind: String,
    base_url: Option<String>,
    model: Option<String>,
    api_key: String,
) -> Result<(), Problem> {
    let api_key = Secret::new(api_key);
    let kind = ProviderKind::parse(&kind).ok_or_else(|| {
        Problem::new(
            "provider_kind",
            "Choose a model provider.",
            Some("Pick one of the choices."),
        )
    })?;
    core.save_provider(ProviderInput {
        kind,
        base_url,
        model,
        api_key,
    })
    .await
}

/// "Sign in with OpenRouter": the core starts the PKCE flow and a loopback callback; we
/// open the page in the person's browser. The key arrives as a `provider` event.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn start_openrouter_sign_in(core: State<'_, Clawkeeper>) -> Result<(), Problem> {
    let url = core.start_openrouter_sign_in().await?;
    open_in_browser(&url)
}

fn open_in_browser(url: &str) -> Result<(), Problem> {
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
