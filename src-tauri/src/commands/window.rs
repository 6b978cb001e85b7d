//! Opening the app's windows from a page ("Open chat", "See status", "Open setup"), and
//! the status window at its server forms (the setup window, after "A new server" / "A
//! server I already have").

use crate::windows::{self, Section, WindowName};
use clawkeeper_core::Problem;
use tauri::AppHandle;

/// Async so window creation never runs on (and blocks) the main thread's command path.
#[tauri::command]
#[tracing::instrument(skip(app))]
pub async fn open_window(
    app: AppHandle,
    name: String,
    section: Option<String>,
) -> Result<(), Problem> {
    let name = WindowName::parse(&name)
        .ok_or_else(|| Problem::new("unknown_window", "There is no such window.", None))?;
    let section = match section.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            Section::parse(s)
                .filter(|s| s.window() == name)
                .ok_or_else(|| Problem::new("unknown_window", "There is no such window.", None))?,
        ),
    };
    windows::open_at(&app, name, section)
}
