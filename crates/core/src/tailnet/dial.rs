//! One way for the desktop to reach the person's tailnet, whichever node does it: the
//! system's own Tailscale (its LocalAPI), Clawkeeper's embedded node, or — in tests — a
//! named test double. The rest of the app only dials through [`Tailnet`].

use serde::Serialize;
use std::future::Future;
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer on the tailnet.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

pub type BoxStream = Box<dyn Stream>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where this computer stands on the tailnet, in terms the tray and status can show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TailnetState {
    /// On the tailnet as `node` (this computer's name there).
    Connected { node: String },
    /// The node needs the person to log in (a browser page), or an admin to approve it.
    NeedsLogin {
        #[serde(skip_serializing_if = "Option::is_none")]
        login_url: Option<String>,
    },
    /// Starting up or reconnecting.
    Starting,
    /// Logged in, but switched off.
    Stopped,
    /// No tailnet here (no system Tailscale running, no embedded node set up).
    Unavailable { reason: String },
}

impl TailnetState {
    pub fn is_connected(&self) -> bool {
        matches!(self, TailnetState::Connected { .. })
    }
}

/// A way onto the person's tailnet.
pub trait Tailnet: Send + Sync + 'static {
    /// What to call it in the UI ("Tailscale on this computer", …).
    fn label(&self) -> &'static str;
    /// Where it stands right now.
    fn state(&self) -> BoxFuture<'_, TailnetState>;
    /// A TCP connection over the tailnet to `host:port` (a tailnet address or name).
    fn dial<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<BoxStream>>;
}
