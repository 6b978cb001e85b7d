//! The local instance: overview, runtime install, start and stop (forwarded to the daemon).

use crate::Daemon;
use clawkeeper_core::Problem;
use serde_json::{json, Value};
use tauri::State;

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn get_overview(daemon: State<'_, Daemon>) -> Result<Value, Problem> {
    daemon.0.call("get_overview", json!({})).await
}

/// Safe to call twice: the core returns at once when an install is under way.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn install_runtime(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    daemon.0.call("install_runtime", json!({})).await.map(drop)
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn cancel_install(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    daemon.0.call("cancel_install", json!({})).await.map(drop)
}

/// Safe to call twice: the supervisor ignores Start while the instance runs.
#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn start_instance(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    daemon.0.call("start_instance", json!({})).await.map(drop)
}

#[tauri::command]
#[tracing::instrument(skip_all)]
pub async fn stop_instance(daemon: State<'_, Daemon>) -> Result<(), Problem> {
    daemon.0.call("stop_instance", json!({})).await.map(drop)
}
