//! `LoopbackTailnet` — a **test double** of a tailnet (not Tailscale): "dials" tailnet
//! addresses by connecting to ports on 127.0.0.1, through a table the test fills, and can be
//! switched off to act as a tailnet that is down. For the proxy, fallback and chat-path
//! tests and benchmarks, which can't reach a real tailnet from here.

use clawkeeper_core::tailnet::dial::{BoxFuture, BoxStream};
use clawkeeper_core::tailnet::{Tailnet, TailnetState};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct LoopbackTailnet {
    /// (tailnet host, port) → port on 127.0.0.1.
    routes: Mutex<HashMap<(String, u16), u16>>,
    down: AtomicBool,
    dials: AtomicUsize,
}

impl LoopbackTailnet {
    /// `host:port` on the tailnet is `127.0.0.1:local_port` here.
    pub fn route(&self, host: &str, port: u16, local_port: u16) {
        if let Ok(mut r) = self.routes.lock() {
            r.insert((host.to_owned(), port), local_port);
        }
    }

    /// Take the tailnet down (dials fail) or bring it back.
    pub fn set_up(&self, up: bool) {
        self.down.store(!up, Ordering::SeqCst);
    }

    /// How many dials were made.
    pub fn dials(&self) -> usize {
        self.dials.load(Ordering::SeqCst)
    }
}

impl Tailnet for LoopbackTailnet {
    fn label(&self) -> &'static str {
        "loopback tailnet (test double)"
    }

    fn state(&self) -> BoxFuture<'_, TailnetState> {
        Box::pin(async {
            if self.down.load(Ordering::SeqCst) {
                TailnetState::Stopped
            } else {
                TailnetState::Connected {
                    node: "this-computer".into(),
                }
            }
        })
    }

    fn dial<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            self.dials.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the tailnet is down (test double)",
                ));
            }
            let local = self
                .routes
                .lock()
                .ok()
                .and_then(|r| r.get(&(host.to_owned(), port)).copied())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("no peer {host}:{port}"))
                })?;
            let s = tokio::net::TcpStream::connect(("127.0.0.1", local)).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}
