//! A local port forwarded over SSH (`direct-tcpip`) to a port on the server's loopback:
//! how the desktop reaches a gateway that listens only on the server's 127.0.0.1.
//!
//! The tunnel listens on 127.0.0.1 only, on a port the OS picks. Each accepted local
//! connection gets its own SSH channel; when the SSH connection dies, new local
//! connections are refused until the owner opens a new tunnel on a new session (the
//! gateway client already reconnects with backoff).

use super::{Error, Result, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

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
    pub async fn open(session: Arc<Session>, remote_host: &str, remote_port: u16) -> Result<Self> {
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
            session,
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

async fn accept_loop(
    listener: TcpListener,
    session: Arc<Session>,
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
        if session.is_closed() {
            tracing::warn!("SSH session closed; tunnel refuses new connections");
            drop(stream);
            continue;
        }
        tokio::spawn(forward(
            stream,
            peer,
            session.clone(),
            remote.clone(),
            cancel.clone(),
        ));
    }
}

async fn forward(
    mut stream: TcpStream,
    peer: SocketAddr,
    session: Arc<Session>,
    remote: (String, u16),
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
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
