//! The private chat with the assistant. Message text is never logged.

use clawkeeper_core::app::Clawkeeper;
use clawkeeper_core::gateway::chat::HistoryMessage;
use clawkeeper_core::Problem;
use serde::Serialize;
use tauri::State;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: String,
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn chat_send(
    core: State<'_, Clawkeeper>,
    message: String,
) -> Result<RunStarted, Problem> {
    let run_id = core.chat_send(&message).await?;
    Ok(RunStarted { run_id })
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn chat_history(core: State<'_, Clawkeeper>) -> Result<Vec<HistoryMessage>, Problem> {
    core.chat_history().await
}

#[tauri::command]
#[tracing::instrument(skip(core))]
pub async fn chat_abort(core: State<'_, Clawkeeper>, run_id: String) -> Result<(), Problem> {
    core.chat_abort(&run_id).await
}
