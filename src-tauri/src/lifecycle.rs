//! What the app does on its own: start-up (first run or start), following the instance's
//! state (tray + notifications), the tray's Start/Stop, and a clean Quit.

use crate::notify::{self, Notifier};
use crate::tray;
use crate::windows::{self, WindowName};
use clawkeeper_core::app::Clawkeeper;
use std::sync::atomic::{AtomicBool, Ordering};
use tauri::{AppHandle, Manager};

/// First run (no provider yet) opens setup; otherwise start the assistant and show
/// nothing but the tray.
pub fn first_run_or_start(app: &AppHandle, core: &Clawkeeper) {
    let (app, core) = (app.clone(), core.clone());
    tauri::async_runtime::spawn(async move {
        match core.overview().await {
            Ok(ov) if !ov.provider.configured => windows::open_or_log(&app, WindowName::Setup),
            Ok(_) => {
                tracing::info!("provider configured: starting the assistant");
                if let Err(p) = core.start().await {
                    tracing::warn!(code = %p.code, "start at launch failed");
                    notify::show_problem("Your assistant didn't start", &p);
                }
            }
            Err(p) => {
                tracing::warn!(code = %p.code, "overview at launch failed");
                windows::open_or_log(&app, WindowName::Status);
            }
        }
    });
}

/// Follow the supervisor's state: rebuild the tray and notify on down / recovered.
pub fn watch_status(app: &AppHandle, core: &Clawkeeper) {
    let app = app.clone();
    let mut rx = core.status();
    tauri::async_runtime::spawn(async move {
        let mut last: Option<&'static str> = None;
        let mut notifier = Notifier::default();
        loop {
            let state = rx.borrow_and_update().state.clone();
            if last != Some(state.name()) {
                tracing::info!(state = state.name(), "instance state");
                tray::update(&app, &state);
                if let Some(n) = notifier.on_state(&state) {
                    notify::show(n);
                }
                last = Some(state.name());
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
}

fn core(app: &AppHandle) -> Option<Clawkeeper> {
    app.try_state::<Clawkeeper>().map(|s| s.inner().clone())
}

pub fn start_from_tray(app: &AppHandle) {
    let Some(core) = core(app) else { return };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(p) = core.start().await {
            tracing::warn!(code = %p.code, "start from the tray failed");
            if p.code == "provider_missing" {
                windows::open_or_log(&app, WindowName::Setup);
            } else {
                notify::show_problem("Your assistant didn't start", &p);
            }
        }
    });
}

pub fn stop_from_tray(app: &AppHandle) {
    let Some(core) = core(app) else { return };
    tauri::async_runtime::spawn(async move {
        if let Err(p) = core.stop().await {
            tracing::warn!(code = %p.code, "stop from the tray failed");
            notify::show_problem("Your assistant didn't stop", &p);
        }
    });
}

static QUITTING: AtomicBool = AtomicBool::new(false);

/// Stop the gateway cleanly, then exit. A second Quit while stopping does nothing.
pub fn quit(app: &AppHandle) {
    if QUITTING.swap(true, Ordering::SeqCst) {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tracing::info!("quitting: stopping the assistant");
        if let Some(core) = core(&app) {
            core.shutdown().await;
        }
        app.exit(0);
    });
}

/// SIGTERM / SIGINT (logout, `kill`, Ctrl-C) quit cleanly too, so no gateway is left behind.
pub fn handle_signals(app: &AppHandle) {
    #[cfg(unix)]
    {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("could not listen for signals");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
            quit(&app);
        });
    }
    #[cfg(not(unix))]
    let _ = app;
}
