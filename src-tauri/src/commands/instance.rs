//! The local instance: overview, runtime install, start and stop.

use clawkeeper_core::app::{Clawkeeper, Overview};
use clawkeeper_core::Problem;
use tauri::State;

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn get_overview(core: State<'_, Clawkeeper>) -> Result<Overview, Problem> {
    core.overview().await
}

/// Safe to call twice: the core returns at once when an install is under way.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn install_runtime(core: State<'_, Clawkeeper>) -> Result<(), Problem> {
    core.install_runtime().await
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub fn cancel_install(core: State<'_, Clawkeeper>) {
    core.cancel_install();
}

/// Safe to call twice: the supervisor ignores Start while the instance runs.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn start_instance(core: State<'_, Clawkeeper>) -> Result<(), Problem> {
    core.start().await
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn stop_instance(core: State<'_, Clawkeeper>) -> Result<(), Problem> {
    core.stop().await
}
