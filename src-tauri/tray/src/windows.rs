//! The window process (`clawkeeper-window`): started when a window is needed, told which
//! window to open through the IPC once it has said hello, gone when its last window closes.

use clawkeeper_core::ipc::Conn;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A window process that was started but has not said hello yet is given this long.
const HELLO_WAIT: Duration = Duration::from_secs(30);

pub struct Windows {
    /// The running window process's connection.
    host: Option<Conn>,
    /// When we started a window process that has not said hello yet.
    starting: Option<Instant>,
    /// Windows to open once it has.
    queued: Vec<String>,
}

/// `CLAWKEEPER_WINDOW_BIN`, else `clawkeeper-window` next to this binary.
fn window_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAWKEEPER_WINDOW_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("clawkeeper-window")))
        .unwrap_or_else(|| PathBuf::from("clawkeeper-window"))
}

impl Windows {
    /// `window_coming`: a window process started us and will say hello.
    pub fn new(window_coming: bool) -> Self {
        Self {
            host: None,
            starting: window_coming.then(Instant::now),
            queued: Vec::new(),
        }
    }

    /// Open `name`: in the running window process, or start one.
    pub fn open(&mut self, name: &str) {
        if let Some(h) = &self.host {
            if h.push_open(name) {
                return;
            }
            self.host = None;
        }
        if !self.queued.iter().any(|q| q == name) {
            self.queued.push(name.to_owned());
        }
        if self.starting.is_some_and(|t| t.elapsed() < HELLO_WAIT) {
            return;
        }
        let bin = window_binary();
        match tokio::process::Command::new(&bin)
            .args(["--open", name])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(mut child) => {
                tracing::info!(window = name, "starting the window process");
                self.starting = Some(Instant::now());
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
            }
            Err(e) => {
                tracing::error!(error = %e, bin = %bin.display(), "could not start the window process");
                self.queued.clear();
            }
        }
    }

    /// A window process connected: it becomes the host; queued windows go to it.
    pub fn hello(&mut self, conn: Conn) {
        self.starting = None;
        for name in self.queued.drain(..) {
            conn.push_open(&name);
        }
        self.host = Some(conn);
    }
}
