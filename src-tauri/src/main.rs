//! Clawkeeper's desktop face: a tray icon, three windows made on demand, and thin
//! commands over `clawkeeper-core`. Behaviour lives in the core; this crate wires it up.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod lifecycle;
mod notify;
mod tray;
mod windows;

use clawkeeper_core::app::{Clawkeeper, Event};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::Problem;
use tauri::{AppHandle, Emitter, Manager, RunEvent};
use tokio::sync::broadcast::error::RecvError;
use windows::WindowName;

/// The one channel every backend event reaches the webviews on (`EVENT_CHANNEL` in `ui/src/api.ts`).
pub const EVENT_CHANNEL: &str = "clawkeeper://event";

/// When the process started (for the "tray ready" figure in BENCHMARKS.md).
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// `clawkeeper --open chat|status|setup`: open that window (in the running app if there is
/// one). Used by the desktop entry's actions.
fn requested_window(argv: &[String]) -> Option<WindowName> {
    let i = argv.iter().position(|a| a == "--open")?;
    WindowName::parse(argv.get(i + 1)?)
}

fn main() {
    let started = std::time::Instant::now();
    STARTED.get_or_init(|| started);
    init_tracing();
    if let Err(e) = run() {
        tracing::error!(error = %e, "Clawkeeper could not start");
        eprintln!("Clawkeeper could not start: {e}");
        std::process::exit(1);
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CLAWKEEPER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,clawkeeper=info,clawkeeper_core=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let app = tauri::Builder::default()
        // First, so a second launch hands over before doing anything else.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            let name = requested_window(&argv).unwrap_or(WindowName::Status);
            tracing::info!(window = name.label(), "second launch: showing a window");
            windows::open_or_log(app, name);
        }))
        .invoke_handler(tauri::generate_handler![
            commands::instance::get_overview,
            commands::instance::install_runtime,
            commands::instance::cancel_install,
            commands::instance::start_instance,
            commands::instance::stop_instance,
            commands::provider::save_provider,
            commands::provider::start_openrouter_sign_in,
            commands::chat::chat_send,
            commands::chat::chat_history,
            commands::chat::chat_abort,
            commands::window::open_window,
        ])
        .setup(|app| {
            setup(app.handle())?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_app, event| {
        // Lightweight tray mode: closing the last window destroys it but keeps the tray.
        // Only an explicit exit (Quit, a signal) carries an exit code.
        if let RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    Ok(())
}

fn setup(app: &AppHandle) -> Result<(), Box<dyn std::error::Error>> {
    let core = tauri::async_runtime::block_on(async {
        let paths = Paths::from_env().map_err(|e| {
            Problem::new(
                "io_error",
                format!("Clawkeeper couldn't find a place for its data: {e}"),
                Some("Check that your home folder exists and is writable."),
            )
        })?;
        Clawkeeper::open(paths, Policy::default()).await
    })
    .inspect_err(|p| notify::show_problem("Clawkeeper couldn't start", p))?;
    app.manage(core.clone());

    forward_events(app, &core);
    let initial = core.status().borrow().state.clone();
    tray::create(app, &initial)?;
    let since_start = STARTED
        .get()
        .map(|t| t.elapsed().as_millis())
        .unwrap_or_default();
    tracing::info!(ms_since_start = since_start as u64, "tray ready");
    if let Some(name) = requested_window(&std::env::args().collect::<Vec<_>>()) {
        windows::open_or_log(app, name);
    }
    lifecycle::watch_status(app, &core);
    lifecycle::handle_signals(app);
    lifecycle::first_run_or_start(app, &core);
    Ok(())
}

/// Every core event goes to the webviews on [`EVENT_CHANNEL`]; chat events only to the
/// chat window (no other window needs the conversation).
fn forward_events(app: &AppHandle, core: &Clawkeeper) {
    let mut rx = core.events();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let sent = match &ev {
                        Event::Chat(_) => app.emit_to(WindowName::Chat.label(), EVENT_CHANNEL, &ev),
                        _ => app.emit(EVENT_CHANNEL, &ev),
                    };
                    if let Err(e) = sent {
                        tracing::debug!(error = %e, "could not forward an event");
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(skipped = n, "event forwarder lagged"),
                Err(RecvError::Closed) => break,
            }
        }
    });
}
