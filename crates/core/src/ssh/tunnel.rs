//! A local port forwarded over SSH (`direct-tcpip`) to a port on the server's loopback:
//! how the desktop reaches a gateway that listens only on the server's 127.0.0.1.
//!
//! The tunnel listens on 127.0.0.1 only, on a port the OS picks, and keeps that port for
//! its whole life. Each accepted local connection gets its own SSH channel on the session
//! its [`SessionSource`] hands out — a reconnecting source (see
//! `crate::server::ServerLink`) makes the tunnel survive a dropped SSH connection, so the
//! gateway client's own reconnect finds the same local URL working again.

use super::{Error, Result, Session};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Where a tunnel gets a live session for each new connection.
pub trait SessionSource: Send + Sync + 'static {
    fn session(&self) -> impl Future<Output = Result<Arc<Session>>> + Send;
}

/// A fixed session: once it closes, new connections are refused.
impl SessionSource for Arc<Session> {
    async fn session(&self) -> Result<Arc<Session>> {
        if self.is_closed() {
            return Err(Error::Session {
                target: self.target().to_string(),
                reason: "the SSH connection was closed".into(),
            });
        }
        Ok(self.clone())
    }
}

pub struct Tunnel {
    local: SocketAddr,
    remote: (String, u16),
    cancel: CancellationToken,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tunnel({} -> {}:{})",
            self.local, self.remote.0, self.remote.1
        )
    }
}

impl Tunnel {
    /// Listen on 127.0.0.1:0 and forward every connection to `remote_host:remote_port`
    /// as seen from the server (normally `127.0.0.1:18789`).
    pub async fn open<S: SessionSource>(
        source: S,
        remote_host: &str,
        remote_port: u16,
    ) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::LocalPort(e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::LocalPort(e.to_string()))?;
        let cancel = CancellationToken::new();
        let remote = (remote_host.to_owned(), remote_port);
        tokio::spawn(accept_loop(
            listener,
            Arc::new(source),
            remote.clone(),
            cancel.child_token(),
        ));
        tracing::info!(%local, host = %remote.0, port = remote.1, "SSH tunnel open");
        Ok(Self {
            local,
            remote,
            cancel,
        })
    }

    /// The local address to connect to (always on 127.0.0.1).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn close(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop<S: SessionSource>(
    listener: TcpListener,
    source: Arc<S>,
    remote: (String, u16),
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "tunnel accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(forward(
            stream,
            peer,
            source.clone(),
            remote.clone(),
            cancel.clone(),
        ));
    }
}

async fn forward<S: SessionSource>(
    mut stream: TcpStream,
    peer: SocketAddr,
    source: Arc<S>,
    remote: (String, u16),
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let session = match source.session().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SSH session for the tunnel; connection refused");
            return;
        }
    };
    let channel = match session.direct_tcpip(&remote.0, remote.1, peer.port()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "tunnel channel refused");
            return;
        }
    };
    let mut channel = channel.into_stream();
    tokio::select! {
        _ = cancel.cancelled() => {}
        r = tokio::io::copy_bidirectional(&mut stream, &mut channel) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tunnel connection ended");
            }
        }
    }
}
