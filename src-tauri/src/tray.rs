//! The tray: icon, tooltip and menu are a pure function of the instance state
//! ([`TrayView::of`]); the whole menu is rebuilt on every state change.

use crate::lifecycle;
use crate::windows::{self, WindowName};
use clawkeeper_core::local::supervisor::InstanceState;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Wry};

const TRAY_ID: &str = "clawkeeper";

const ID_STATUS_LINE: &str = "status-line";
const ID_OPEN_CHAT: &str = "open-chat";
const ID_STATUS: &str = "status";
const ID_START: &str = "start";
const ID_STOP: &str = "stop";
const ID_QUIT: &str = "quit";

/// Which icon the tray shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Starting,
    Healthy,
    Degraded,
    Stopped,
    Error,
}

impl Look {
    fn png(self) -> &'static [u8] {
        match self {
            Look::Starting => include_bytes!("../../icons/tray/starting.png"),
            Look::Healthy => include_bytes!("../../icons/tray/healthy.png"),
            Look::Degraded => include_bytes!("../../icons/tray/degraded.png"),
            Look::Stopped => include_bytes!("../../icons/tray/stopped.png"),
            Look::Error => include_bytes!("../../icons/tray/error.png"),
        }
    }
}

/// The Start/Stop item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    Start,
    Stop,
    /// Stopping: nothing to press until it has stopped.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub look: Look,
    /// The state in the UI's words ("Working", "Needs attention", …).
    pub label: &'static str,
    pub toggle: Toggle,
}

impl TrayView {
    pub fn of(state: &InstanceState) -> Self {
        let (look, label, toggle) = match state {
            InstanceState::Starting { .. } => (Look::Starting, "Starting…", Toggle::Stop),
            InstanceState::Healthy { .. } => (Look::Healthy, "Working", Toggle::Stop),
            InstanceState::Degraded { .. } => (Look::Degraded, "Needs attention", Toggle::Stop),
            InstanceState::Stopping => (Look::Starting, "Stopping…", Toggle::Busy),
            InstanceState::Stopped => (Look::Stopped, "Stopped", Toggle::Start),
            InstanceState::NotInstalled => (Look::Stopped, "Not set up yet", Toggle::Start),
            InstanceState::Error { .. } => (Look::Error, "Needs attention", Toggle::Start),
        };
        Self {
            look,
            label,
            toggle,
        }
    }

    pub fn tooltip(&self) -> String {
        format!("Clawkeeper — {}", self.label)
    }
}

fn icon(look: Look) -> tauri::Result<Image<'static>> {
    Image::from_bytes(look.png())
}

fn menu(app: &AppHandle, view: &TrayView) -> tauri::Result<Menu<Wry>> {
    let status_line = MenuItem::with_id(
        app,
        ID_STATUS_LINE,
        format!("Your assistant: {}", view.label),
        false,
        None::<&str>,
    )?;
    let open_chat = MenuItem::with_id(app, ID_OPEN_CHAT, "Open chat", true, None::<&str>)?;
    let status = MenuItem::with_id(app, ID_STATUS, "Status", true, None::<&str>)?;
    let toggle = match view.toggle {
        Toggle::Start => {
            MenuItem::with_id(app, ID_START, "Start your assistant", true, None::<&str>)?
        }
        Toggle::Stop => MenuItem::with_id(app, ID_STOP, "Stop your assistant", true, None::<&str>)?,
        Toggle::Busy => MenuItem::with_id(app, ID_STOP, "Stopping…", false, None::<&str>)?,
    };
    let quit = MenuItem::with_id(app, ID_QUIT, "Quit Clawkeeper", true, None::<&str>)?;
    Menu::with_items(
        app,
        &[
            &status_line,
            &PredefinedMenuItem::separator(app)?,
            &open_chat,
            &status,
            &PredefinedMenuItem::separator(app)?,
            &toggle,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )
}

pub fn create(app: &AppHandle, state: &InstanceState) -> tauri::Result<()> {
    let view = TrayView::of(state);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(view.look)?)
        .tooltip(view.tooltip())
        .title("Clawkeeper")
        .menu(&menu(app, &view)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    Ok(())
}

/// Rebuild icon, tooltip and the whole menu for a new state.
pub fn update(app: &AppHandle, state: &InstanceState) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let view = TrayView::of(state);
    let result = icon(view.look)
        .and_then(|i| tray.set_icon(Some(i)))
        .and_then(|()| tray.set_tooltip(Some(view.tooltip())))
        .and_then(|()| menu(app, &view))
        .and_then(|m| tray.set_menu(Some(m)));
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not update the tray");
    }
}

fn on_menu(app: &AppHandle, id: &str) {
    match id {
        ID_OPEN_CHAT => windows::open_or_log(app, WindowName::Chat),
        ID_STATUS => windows::open_or_log(app, WindowName::Status),
        ID_START => lifecycle::start_from_tray(app),
        ID_STOP => lifecycle::stop_from_tray(app),
        ID_QUIT => lifecycle::quit(app),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawkeeper_core::Problem;

    #[test]
    fn view_follows_state() {
        let healthy = InstanceState::Healthy {
            version: None,
            since: String::new(),
        };
        let v = TrayView::of(&healthy);
        assert_eq!((v.look, v.toggle), (Look::Healthy, Toggle::Stop));
        assert_eq!(v.tooltip(), "Clawkeeper — Working");

        let err = InstanceState::Error {
            problem: Problem::new("port_in_use", "Port busy.", None),
        };
        let v = TrayView::of(&err);
        assert_eq!(
            (v.look, v.label, v.toggle),
            (Look::Error, "Needs attention", Toggle::Start)
        );

        let v = TrayView::of(&InstanceState::Degraded {
            detail: "restarting".into(),
        });
        assert_eq!((v.look, v.toggle), (Look::Degraded, Toggle::Stop));
        assert_eq!(TrayView::of(&InstanceState::Stopped).toggle, Toggle::Start);
        assert_eq!(TrayView::of(&InstanceState::Stopping).toggle, Toggle::Busy);
        assert_eq!(
            TrayView::of(&InstanceState::Starting {
                detail: String::new()
            })
            .tooltip(),
            "Clawkeeper — Starting…"
        );
    }

    #[test]
    fn every_tray_icon_decodes() {
        for look in [
            Look::Starting,
            Look::Healthy,
            Look::Degraded,
            Look::Stopped,
            Look::Error,
        ] {
            let img = icon(look).unwrap();
            assert_eq!((img.width(), img.height()), (32, 32));
        }
    }
}
