//! `clawkeeper`, the tray daemon: what the person launches and what autostarts. It owns
//! the core ([`Clawkeeper`]: supervisor, store, vault), the tray icon, desktop
//! notifications and the local IPC socket ([`clawkeeper_core::ipc`]). It never links
//! WebKit or GTK: windows live in a separate process (`clawkeeper-window`) that it starts
//! when one is needed and that exits when its last window closes.
//!
//! `clawkeeper [--open chat|status|setup]`: a second launch hands over to the running
//! daemon through the socket and exits 0.

mod notify;
mod tray;
mod windows;

use clawkeeper_core::app::Clawkeeper;
use clawkeeper_core::ipc::{self, Conn, Handler, Reply};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::Problem;
use notify::Notifier;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tray::{Action, TrayView};
use windows::Windows;

/// When the process started (for the "tray ready" figure in BENCHMARKS.md).
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// The windows the window process knows.
pub const WINDOWS: [&str; 3] = ["setup", "status", "chat"];

fn requested_window(argv: &[String]) -> Option<&'static str> {
    let i = argv.iter().position(|a| a == "--open")?;
    let name = argv.get(i + 1)?;
    WINDOWS.into_iter().find(|w| w == name)
}

fn main() {
    let started = std::time::Instant::now();
    STARTED.get_or_init(|| started);
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Clawkeeper could not start: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run()) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "Clawkeeper could not start");
            eprintln!("Clawkeeper could not start: {e}");
            1
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
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

/// The daemon's pid file, for scripts and tests (`<data dir>/clawkeeper.pid`).
fn pid_file(paths: &Paths) -> PathBuf {
    paths.data_dir.join("clawkeeper.pid")
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let argv: Vec<String> = std::env::args().collect();
    let open = requested_window(&argv);
    // Started by a window process, which shows its own window: don't start another one.
    let for_window = argv.iter().any(|a| a == "--for-window");
    let paths = Paths::from_env().map_err(|e| {
        Problem::new(
            "io_error",
            format!("Clawkeeper couldn't find a place for its data: {e}"),
            Some("Check that your home folder exists and is writable."),
        )
    })?;
    let sock = ipc::socket_path(&paths.data_dir);

    // Single instance: hand over to the running daemon.
    if let Ok((client, _)) = ipc::Client::connect(&sock).await {
        if !for_window {
            let name = open.unwrap_or("status");
            client.call("open_window", json!({ "name": name })).await?;
            tracing::info!(window = name, "Clawkeeper is already running: handed over");
        }
        return Ok(());
    }

    let core = Clawkeeper::open(paths.clone(), Policy::default())
        .await
        .inspect_err(|p| notify::show_problem("Clawkeeper couldn't start", p))?;
    let listener = ipc::bind(&sock).await?;
    let _ = std::fs::write(pid_file(&paths), std::process::id().to_string());

    let (actions, mut actions_rx) = mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon {
        core: core.clone(),
        subscribers: Mutex::default(),
        windows: Mutex::new(Windows::new(for_window)),
        actions: actions.clone(),
    });
    tokio::spawn(ipc::serve(listener, sock.clone(), daemon.clone()));
    forward_events(&daemon);
    // Clawkeeper's own Tailscale node, when the person chose it (in the background: it may
    // take a while to reach Tailscale, and chat uses SSH meanwhile).
    {
        let core = core.clone();
        tokio::spawn(async move { core.start_embedded_if_chosen().await });
    }

    let initial = core.status().borrow().state.clone();
    let tray = tray_spawn(&initial, actions.clone()).await;
    let since_start = STARTED
        .get()
        .map(|t| t.elapsed().as_millis())
        .unwrap_or_default();
    tracing::info!(ms_since_start = since_start as u64, "tray ready");
    if let Some(name) = open {
        daemon.open_window(name);
    }
    watch_servers(&core, tray.clone());
    watch_tailnet(&core, tray.clone());
    watch_usage(&core, tray.clone());
    // A key rotation a crash or a reboot interrupted is finished once the assistant is up.
    core.watch_rotations(std::time::Duration::from_secs(600));
    watch_reminders(&daemon);
    watch_status(&core, tray);
    handle_signals(actions.clone());
    first_run_or_start(&daemon);

    while let Some(action) = actions_rx.recv().await {
        match action {
            Action::OpenChat => daemon.open_window("chat"),
            Action::Status => daemon.open_window("status"),
            Action::Start => start_from_tray(&daemon),
            Action::Stop => stop_from_tray(&core),
            Action::CheckServer => check_servers_from_tray(&core),
            Action::OpenPrivateChat => daemon.open_window("chat"),
            Action::OpenTailscale => open_tailscale(&daemon),
            Action::Usage => daemon.open_window("status"),
            // The window process opens `status#keys` at the Keys section.
            Action::RotateKeys => daemon.open_window("status#keys"),
            Action::Resume => resume_from_tray(&daemon),
            Action::Quit => break,
        }
    }
    tracing::info!("quitting: stopping the assistant");
    core.shutdown().await;
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(pid_file(&paths));
    Ok(())
}

/// The tray daemon's state shared with the IPC connections.
struct Daemon {
    core: Clawkeeper,
    /// Connections that asked for the event stream.
    subscribers: Mutex<Vec<Conn>>,
    windows: Mutex<Windows>,
    actions: mpsc::UnboundedSender<Action>,
}

impl Daemon {
    fn open_window(&self, name: &str) {
        if let Ok(mut w) = self.windows.lock() {
            w.open(name);
        }
    }
}

impl Handler for Daemon {
    fn call(&self, conn: &Conn, method: String, params: Value) -> Reply {
        match method.as_str() {
            "subscribe" => {
                if let Ok(mut s) = self.subscribers.lock() {
                    s.push(conn.clone());
                }
                Box::pin(async { Ok(Value::Null) })
            }
            "window_hello" => {
                if let Ok(mut w) = self.windows.lock() {
                    w.hello(conn.clone());
                }
                Box::pin(async { Ok(Value::Null) })
            }
            "open_window" => {
                let name = params
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| WINDOWS.into_iter().find(|w| *w == n));
                let r = match name {
                    Some(n) => {
                        self.open_window(n);
                        Ok(Value::Null)
                    }
                    None => Err(Problem::new(
                        "unknown_window",
                        "There is no such window.",
                        None,
                    )),
                };
                Box::pin(async move { r })
            }
            "quit" => {
                let _ = self.actions.send(Action::Quit);
                Box::pin(async { Ok(Value::Null) })
            }
            _ => {
                let core = self.core.clone();
                Box::pin(async move { ipc::dispatch(&core, &method, params).await })
            }
        }
    }
}

/// Every core event goes to every subscriber (the window process re-emits it to its
/// webviews).
fn forward_events(daemon: &Arc<Daemon>) {
    let mut rx = daemon.core.events();
    let daemon = daemon.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let Ok(v) = serde_json::to_value(&ev) else {
                        continue;
                    };
                    if let Ok(mut subs) = daemon.subscribers.lock() {
                        subs.retain(|c| c.push_event(&v));
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(skipped = n, "event forwarder lagged"),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(target_os = "linux")]
type TrayHandle = Option<ksni::Handle<tray::Tray>>;
#[cfg(not(target_os = "linux"))]
type TrayHandle = Option<()>;

#[cfg(target_os = "linux")]
async fn tray_spawn(
    state: &clawkeeper_core::local::supervisor::InstanceState,
    actions: mpsc::UnboundedSender<Action>,
) -> TrayHandle {
    use ksni::TrayMethods;
    let t = tray::Tray {
        view: TrayView::of(state),
        server: None,
        tailnet: None,
        usage: None,
        actions,
    };
    // No StatusNotifier host yet (a desktop still starting, Xvfb): keep the item
    // registered anyway; it shows up when a host appears.
    match t.assume_sni_available(true).spawn().await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "could not create the tray icon");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
async fn tray_spawn(
    _state: &clawkeeper_core::local::supervisor::InstanceState,
    _actions: mpsc::UnboundedSender<Action>,
) -> TrayHandle {
    tracing::warn!("the tray icon is only implemented on Linux in this build");
    None
}

/// Follow the supervisor's state: rebuild the tray and notify on down / recovered.
fn watch_status(core: &Clawkeeper, tray: TrayHandle) {
    let mut rx = core.status();
    tokio::spawn(async move {
        let mut last: Option<&'static str> = None;
        let mut notifier = Notifier::default();
        loop {
            let state = rx.borrow_and_update().state.clone();
            if last != Some(state.name()) {
                tracing::info!(state = state.name(), "instance state");
                #[cfg(target_os = "linux")]
                if let Some(t) = &tray {
                    let view = TrayView::of(&state);
                    t.update(|tray| tray.view = view).await;
                }
                #[cfg(not(target_os = "linux"))]
                let _ = &tray;
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

/// The server line of the tray menu follows the server events; a safety check run with
/// a failure raises a notification saying what failed and what to do.
fn watch_servers(core: &Clawkeeper, tray: TrayHandle) {
    let core = core.clone();
    let mut rx = core.events();
    tokio::spawn(async move {
        let mut shown: Option<String> = None;
        let mut refresh = true;
        loop {
            if refresh {
                let line = match core.servers().await {
                    Ok(list) => list.first().map(clawkeeper_core::app::server_summary),
                    Err(p) => {
                        tracing::warn!(code = %p.code, "could not list servers for the tray");
                        shown.clone()
                    }
                };
                if line != shown {
                    #[cfg(target_os = "linux")]
                    if let Some(t) = &tray {
                        let l = line.clone();
                        t.update(|tray| tray.server = l).await;
                    }
                    #[cfg(not(target_os = "linux"))]
                    let _ = &tray;
                    shown = line;
                }
            }
            refresh = match rx.recv().await {
                Ok(clawkeeper_core::app::Event::ServerChecks { id, checks, .. }) => {
                    let name = core
                        .servers()
                        .await
                        .ok()
                        .and_then(|l| l.into_iter().find(|s| s.id == id))
                        .map(|s| s.name)
                        .unwrap_or_else(|| "Your server".into());
                    if let Some(n) = notify::server_checks_failed(&name, &checks) {
                        notify::show(n);
                    }
                    true
                }
                Ok(clawkeeper_core::app::Event::Server { .. })
                | Ok(clawkeeper_core::app::Event::ServerRemoved { .. })
                | Ok(clawkeeper_core::app::Event::Assistant(_)) => true,
                Ok(_) => false,
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => break,
            };
        }
    });
}

/// How often the tray looks at this computer's tailnet state (LocalAPI, cheap).
const TAILNET_LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How often it asks the Tailscale API about the server's device (online, key expiry).
const TAILNET_API_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// `CLAWKEEPER_TAILNET_EVERY_SECS` (for tests: both looks that often), else the defaults.
fn tailnet_intervals() -> (std::time::Duration, std::time::Duration) {
    match std::env::var("CLAWKEEPER_TAILNET_EVERY_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
    {
        Some(s) => (
            std::time::Duration::from_secs(s),
            std::time::Duration::from_secs(s),
        ),
        None => (TAILNET_LOOK_EVERY, TAILNET_API_EVERY),
    }
}

/// The tailnet lines of the tray follow this computer's tailnet and the server's device;
/// notifications when the server drops off the tailnet and when its node key is near
/// expiry (decided by `clawkeeper_core::tailnet::watch`; here they are only shown).
fn watch_tailnet(core: &Clawkeeper, tray: TrayHandle) {
    use clawkeeper_core::tailnet::watch;
    let core = core.clone();
    let mut rx = core.events();
    let (look_every, api_every) = tailnet_intervals();
    tokio::spawn(async move {
        let mut shown = None;
        let mut seen = watch::Watch::default();
        let mut last_api: Option<std::time::Instant> = None;
        loop {
            if last_api.is_none_or(|t| t.elapsed() >= api_every) {
                last_api = Some(std::time::Instant::now());
                let node = core.tailnet_refresh_assistant().await;
                let (notices, next) =
                    watch::notices(&seen, node.as_ref(), time::OffsetDateTime::now_utc());
                seen = next;
                for n in notices {
                    notify::show(notify::Notice {
                        summary: n.summary,
                        body: n.body,
                    });
                }
            }
            let lines = core.tailnet_tray().await;
            if lines != shown {
                #[cfg(target_os = "linux")]
                if let Some(t) = &tray {
                    let l = lines.clone();
                    t.update(|tray| tray.tailnet = l).await;
                }
                #[cfg(not(target_os = "linux"))]
                let _ = &tray;
                shown = lines;
            }
            // Look again after a while, or at once when the assistant or its path changed.
            let wait = tokio::time::sleep(look_every);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    ev = rx.recv() => match ev {
                        Ok(clawkeeper_core::app::Event::Assistant(_))
                        | Ok(clawkeeper_core::app::Event::ServerRemoved { .. })
                        | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        }
    });
}

/// "Open Tailscale": the login page tailscaled named, in the browser; without one, the
/// status window (which says what to do).
fn open_tailscale(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    tokio::spawn(async move {
        let url = match daemon.core.tailnet_state().await {
            Some(clawkeeper_core::tailnet::TailnetState::NeedsLogin { login_url: Some(u) })
                if u.starts_with("https://") =>
            {
                Some(u)
            }
            _ => None,
        };
        match url {
            Some(u) => {
                if let Err(e) = std::process::Command::new("xdg-open").arg(&u).spawn() {
                    tracing::warn!(error = %e, "could not open the Tailscale login page");
                    daemon.open_window("status");
                }
            }
            None => daemon.open_window("status"),
        }
    });
}

/// "Check server safety": read every server's checklist now (the result arrives as a
/// `server_checks` event: the tray line and, on a failure, a notification).
fn check_servers_from_tray(core: &Clawkeeper) {
    let core = core.clone();
    tokio::spawn(async move {
        let list = match core.servers().await {
            Ok(l) => l,
            Err(p) => return notify::show_problem("Clawkeeper couldn't check your server", &p),
        };
        for s in list.iter().filter(|s| s.address.is_some()) {
            if let Err(p) = core.server_posture(&s.id, false).await {
                tracing::warn!(code = %p.code, server = %s.id, "server check from the tray failed");
                notify::show_problem(&format!("Clawkeeper couldn't check {}", s.name), &p);
            }
        }
    });
}

/// First run (no provider yet) opens setup; otherwise start the assistant and show
/// nothing but the tray.
fn first_run_or_start(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    tokio::spawn(async move {
        match daemon.core.overview().await {
            Ok(ov) if !ov.provider.configured => daemon.open_window("setup"),
            Ok(_) if daemon.core.spend_paused().await => {
                tracing::info!("paused at the spend cap: not starting the assistant");
            }
            Ok(_) => {
                tracing::info!("provider configured: starting the assistant");
                if let Err(p) = daemon.core.start().await {
                    tracing::warn!(code = %p.code, "start at launch failed");
                    notify::show_problem("Your assistant didn't start", &p);
                }
            }
            Err(p) => {
                tracing::warn!(code = %p.code, "overview at launch failed");
                daemon.open_window("status");
            }
        }
    });
}

fn start_from_tray(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    tokio::spawn(async move {
        if let Err(p) = daemon.core.start().await {
            tracing::warn!(code = %p.code, "start from the tray failed");
            if p.code == "provider_missing" {
                daemon.open_window("setup");
            } else {
                notify::show_problem("Your assistant didn't start", &p);
            }
        }
    });
}

fn resume_from_tray(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    tokio::spawn(async move {
        if let Err(p) = daemon.core.spend_resume().await {
            tracing::warn!(code = %p.code, "resume from the tray failed");
            notify::show_problem("Your assistant didn't resume", &p);
        }
    });
}

/// How often the tray's "Usage updated N min ago" line is rewritten.
const USAGE_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// `CLAWKEEPER_USAGE_EVERY_SECS` (tests), else every 5 minutes.
fn usage_interval() -> std::time::Duration {
    std::env::var("CLAWKEEPER_USAGE_EVERY_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(
            clawkeeper_core::app::SYNC_EVERY,
            std::time::Duration::from_secs,
        )
}

/// Usage: synced in the background (the core decides when); the tray's spend lines follow
/// each sync, and spend alerts become notifications.
fn watch_usage(core: &Clawkeeper, tray: TrayHandle) {
    use clawkeeper_core::app::Event;
    let core = core.clone();
    let mut rx = core.events();
    core.watch_usage(usage_interval());
    tokio::spawn(async move {
        let mut summary = core.usage_summary().await.ok();
        let mut shown = None;
        loop {
            let lines = summary
                .as_ref()
                .filter(|s| s.synced_at.is_some() || s.paused)
                .map(|s| tray::TrayUsage::of(s, time::OffsetDateTime::now_utc()));
            if lines != shown {
                #[cfg(target_os = "linux")]
                if let Some(t) = &tray {
                    let l = lines.clone();
                    t.update(|tray| tray.usage = l).await;
                }
                #[cfg(not(target_os = "linux"))]
                let _ = &tray;
                shown = lines;
            }
            let wait = tokio::time::sleep(USAGE_LINE_EVERY);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    ev = rx.recv() => match ev {
                        Ok(Event::Usage(s)) => {
                            summary = Some(s);
                            break;
                        }
                        Ok(Event::SpendAlert { summary: title, body, .. }) => {
                            notify::show(notify::Notice { summary: title, body });
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        }
    });
}

/// How often the rotation reminders are looked at (and at start).
const REMIND_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Rotation reminders (decided and noted by the core, once per due key): a notification
/// whose click opens the Keys section, as the tray's "Rotate keys…" does.
fn watch_reminders(daemon: &Arc<Daemon>) {
    use clawkeeper_core::app::Event;
    let mut rx = daemon.core.events();
    let actions = daemon.actions.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(Event::RotationReminder(r)) => {
                    let actions = actions.clone();
                    notify::show_opening(
                        notify::Notice {
                            summary: r.summary,
                            body: r.body,
                        },
                        move || {
                            let _ = actions.send(Action::RotateKeys);
                        },
                    );
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    daemon.core.watch_reminders(REMIND_EVERY);
}

fn stop_from_tray(core: &Clawkeeper) {
    let core = core.clone();
    tokio::spawn(async move {
        if let Err(p) = core.stop().await {
            tracing::warn!(code = %p.code, "stop from the tray failed");
            notify::show_problem("Your assistant didn't stop", &p);
        }
    });
}

/// SIGTERM / SIGINT (logout, `kill`, Ctrl-C) quit cleanly too, so no gateway is left behind.
fn handle_signals(actions: mpsc::UnboundedSender<Action>) {
    #[cfg(unix)]
    tokio::spawn(async move {
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
        let _ = actions.send(Action::Quit);
    });
    #[cfg(not(unix))]
    let _ = actions;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_argument() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            requested_window(&argv(&["clawkeeper", "--open", "chat"])),
            Some("chat")
        );
        assert_eq!(
            requested_window(&argv(&["clawkeeper", "--open", "x"])),
            None
        );
        assert_eq!(requested_window(&argv(&["clawkeeper"])), None);
    }
}
