//! Opening the app's windows from a page ("Open chat", "See status", "Open setup").

use crate::windows::{self, WindowName};
use clawkeeper_core::Problem;
use tauri::AppHandle;

/// Async so window creation never runs on (and blocks) the main thread's command path.
#[tauri::command]
#[tracing::instrument(skip(app))]
pub async fn open_window(app: AppHandle, name: String) -> Result<(), Problem> {
    let name = WindowName::parse(&name)
        .ok_or_else(|| Problem::new("unknown_window", "There is no such window.", None))?;
    windows::open(&app, name)
}
