//! `clawkeeper-window`, Clawkeeper's window process: the webviews (setup, status, chat)
//! and thin commands that forward to the tray daemon (`clawkeeper`, which owns the core)
//! over the local IPC ([`clawkeeper_core::ipc`]). The daemon starts it when a window is
//! needed; it exits when its last window closes, so WebKit and GTK are never mapped while
//! only the tray runs. Started on its own (as the WebDriver test does), it starts the
//! daemon first if none is running.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod windows;

use clawkeeper_core::ipc::{self, Client, Push};
use clawkeeper_core::paths::Paths;
use clawkeeper_core::Problem;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::mpsc::UnboundedReceiver;
use windows::{Section, WindowName};

/// The one channel every backend event reaches the webviews on (`EVENT_CHANNEL` in `ui/src/api.ts`).
pub const EVENT_CHANNEL: &str = "clawkeeper://event";

/// How long a daemon we started may take to listen.
const DAEMON_START: Duration = Duration::from_secs(60);

/// The connection to the tray daemon, shared by every command.
pub struct Daemon(pub Client);

/// `clawkeeper-window --open chat|status|setup|status#keys`.
fn requested_window(argv: &[String]) -> Option<(WindowName, Option<Section>)> {
    let i = argv.iter().position(|a| a == "--open")?;
    windows::parse_target(argv.get(i + 1)?)
}

fn main() {
    init_tracing();
    if let Err(e) = run() {
        tracing::error!(error = %e, "Clawkeeper's window could not start");
        eprintln!("Clawkeeper's window could not start: {e}");
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
        // First, so a second window process hands over before doing anything else.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            let (name, section) = requested_window(&argv).unwrap_or((WindowName::Status, None));
            tracing::info!(
                window = name.label(),
                "second window process: showing a window"
            );
            windows::open_at_or_log(app, name, section);
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
            commands::server::servers,
            commands::server::server_scan,
            commands::server::server_connect,
            commands::server::server_provision,
            commands::server::cancel_server_job,
            commands::server::server_posture,
            commands::server::server_delete,
            commands::server::support_issue,
            commands::server::support_list,
            commands::server::support_revoke,
            commands::server::cloud_token_save,
            commands::server::cloud_options,
            commands::server::cloud_deploy,
            commands::server::assistant_use,
            commands::tailnet::tailnet_view,
            commands::tailnet::tailnet_check,
            commands::tailnet::tailnet_key_save,
            commands::tailnet::tailnet_key_forget,
            commands::tailnet::server_tailnet_join,
            commands::tailnet::tailnet_use_embedded,
            commands::usage::usage_view,
            commands::usage::usage_sync,
            commands::usage::usage_export,
            commands::usage::spend_cap_set,
            commands::usage::spend_resume,
            commands::usage::provider_management_save,
            commands::usage::provider_management_forget,
            commands::usage::status_detail,
            commands::keys::keys_inventory,
            commands::keys::rotate_key,
            commands::keys::rotate_key_with,
            commands::keys::rotate_key_sign_in,
            commands::keys::rotate_key_sign_in_cancel,
            commands::keys::openai_admin_save,
            commands::keys::rotate_all,
            commands::keys::key_reminders,
            commands::keys::set_key_reminders,
            commands::keys::rotations_resume,
            commands::window::open_window,
        ])
        .setup(|app| {
            setup(app.handle())?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    // The last window closing ends this process (the daemon keeps the tray).
    app.run(|_app, _event| {});
    Ok(())
}

fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAWKEEPER_DAEMON_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("clawkeeper")))
        .unwrap_or_else(|| PathBuf::from("clawkeeper"))
}

/// Connect to the daemon, starting it when none answers.
async fn connect_or_start(sock: &Path) -> Result<(Client, UnboundedReceiver<Push>), Problem> {
    if let Ok(c) = Client::connect(sock).await {
        return Ok(c);
    }
    tracing::info!("no Clawkeeper daemon running: starting it");
    let bin = daemon_binary();
    let mut child = tokio::process::Command::new(&bin)
        .arg("--for-window")
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            tracing::error!(error = %e, bin = %bin.display(), "could not start the daemon");
            Problem::new(
                "daemon_missing",
                "Clawkeeper's background part could not be started.",
                Some("Reinstall Clawkeeper."),
            )
        })?;
    let deadline = Instant::now() + DAEMON_START;
    loop {
        if let Ok(c) = Client::connect(sock).await {
            // Reap it if it ever exits while we run.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Ok(c);
        }
        if let Ok(Some(status)) = child.try_wait() {
            tracing::error!(%status, "the daemon exited at start");
            return Err(Problem::new(
                "daemon_failed",
                "Clawkeeper's background part stopped at start.",
                Some("Start Clawkeeper from the menu to see what is wrong."),
            ));
        }
        if Instant::now() > deadline {
            return Err(Problem::new(
                "daemon_timeout",
                "Clawkeeper's background part did not answer.",
                Some("Start Clawkeeper again."),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn setup(app: &AppHandle) -> Result<(), Box<dyn std::error::Error>> {
    let paths = Paths::from_env()?;
    let sock = ipc::socket_path(&paths.data_dir);
    let (client, pushes) = tauri::async_runtime::block_on(async {
        let (client, pushes) = connect_or_start(&sock).await?;
        client.call("subscribe", Value::Null).await?;
        client.call("window_hello", Value::Null).await?;
        Ok::<_, Problem>((client, pushes))
    })?;
    app.manage(Daemon(client));
    follow_daemon(app, pushes);

    let first = requested_window(&std::env::args().collect::<Vec<_>>());
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (name, section) = match first {
            Some(target) => target,
            None => {
                // Started on its own: setup on a first run, else the status.
                let daemon = app.state::<Daemon>();
                match daemon.0.call("get_overview", json!({})).await {
                    Ok(ov) if ov["provider"]["configured"] == json!(false) => {
                        (WindowName::Setup, None)
                    }
                    _ => (WindowName::Status, None),
                }
            }
        };
        open_on_main(&app, name, section);
    });
    Ok(())
}

/// Open a window from a background task without waiting for it: the window is built on
/// the main thread, and this task goes on forwarding events meanwhile.
fn open_on_main(app: &AppHandle, name: WindowName, section: Option<Section>) {
    let handle = app.clone();
    if let Err(e) = app.run_on_main_thread(move || windows::open_at_or_log(&handle, name, section))
    {
        tracing::warn!(error = %e, "could not open a window");
    }
}

/// Re-emit every daemon event to the webviews on [`EVENT_CHANNEL`] (chat events only to
/// the chat window), open the windows the daemon asks for, and exit when it goes away
/// (Quit).
fn follow_daemon(app: &AppHandle, mut pushes: UnboundedReceiver<Push>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(push) = pushes.recv().await {
            match push {
                Push::Event(ev) => {
                    let sent = if ev.get("type").and_then(Value::as_str) == Some("chat") {
                        app.emit_to(WindowName::Chat.label(), EVENT_CHANNEL, &ev)
                    } else {
                        app.emit(EVENT_CHANNEL, &ev)
                    };
                    if let Err(e) = sent {
                        tracing::debug!(error = %e, "could not forward an event");
                    }
                }
                Push::Open(name) => match windows::parse_target(&name) {
                    Some((n, section)) => open_on_main(&app, n, section),
                    None => tracing::warn!("the daemon asked for an unknown window"),
                },
            }
        }
        tracing::info!("the Clawkeeper daemon has gone: closing the windows");
        app.exit(0);
    });
}
