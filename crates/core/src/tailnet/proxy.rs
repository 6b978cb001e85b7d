//! The loopback proxy: 127.0.0.1:<port> on this computer, each connection dialled over the
//! active [`Tailnet`] to the server's gateway. The chat window and the core's gateway
//! client connect to it exactly as to the local gateway or the SSH tunnel; the tailnet,
//! its keys and the gateway token stay in Rust (the webview never sees a credential).
//!
//! Like [`crate::ssh::Tunnel`], the port stays the same for the proxy's whole life, so a
//! gateway client's reconnect finds the same URL working again once the tailnet is back.

use super::dial::Tailnet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long one dial over the tailnet may take before the local connection is dropped.
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);

pub struct TailnetProxy {
    local: SocketAddr,
    remote: (String, u16),
    cancel: CancellationToken,
}

impl std::fmt::Debug for TailnetProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TailnetProxy({} -> {}:{})",
            self.local, self.remote.0, self.remote.1
        )
    }
}

impl TailnetProxy {
    /// Listen on 127.0.0.1 (a port the OS picks) and forward every connection over
    /// `tailnet` to `host:port` on the tailnet.
    pub async fn start(tailnet: Arc<dyn Tailnet>, host: &str, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let local = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let remote = (host.to_owned(), port);
        tokio::spawn(accept_loop(
            listener,
            tailnet,
            remote.clone(),
            cancel.child_token(),
        ));
        tracing::info!(%local, host = %remote.0, port = remote.1, "tailnet proxy open");
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

    /// The tailnet address the proxy forwards to.
    pub fn remote(&self) -> (&str, u16) {
        (&self.remote.0, self.remote.1)
    }
}

impl Drop for TailnetProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tailnet: Arc<dyn Tailnet>,
    remote: (String, u16),
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(forward(
                    stream,
                    tailnet.clone(),
                    remote.clone(),
                    cancel.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tailnet proxy accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn forward(
    mut local: TcpStream,
    tailnet: Arc<dyn Tailnet>,
    remote: (String, u16),
    cancel: CancellationToken,
) {
    let _ = local.set_nodelay(true);
    let dialled = tokio::time::timeout(DIAL_TIMEOUT, tailnet.dial(&remote.0, remote.1)).await;
    let mut peer = match dialled {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, via = tailnet.label(), "tailnet dial failed");
            return;
        }
        Err(_) => {
            tracing::warn!(via = tailnet.label(), "tailnet dial timed out");
            return;
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        r = tokio::io::copy_bidirectional(&mut local, &mut peer) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tailnet proxy connection ended");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::tailnet::dial::{BoxFuture, BoxStream, TailnetState};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A test double of a tailnet: "dials" tailnet addresses by connecting to a port on
    /// 127.0.0.1, and can be switched off to act as a tailnet that is down.
    struct LoopbackTailnetDouble {
        port: u16,
        up: AtomicBool,
        dials: AtomicUsize,
    }

    impl Tailnet for LoopbackTailnetDouble {
        fn label(&self) -> &'static str {
            "loopback tailnet (test double)"
        }
        fn state(&self) -> BoxFuture<'_, TailnetState> {
            Box::pin(async {
                if self.up.load(Ordering::SeqCst) {
                    TailnetState::Connected {
                        node: "laptop".into(),
                    }
                } else {
                    TailnetState::Stopped
                }
            })
        }
        fn dial<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<BoxStream>> {
            Box::pin(async move {
                self.dials.fetch_add(1, Ordering::SeqCst);
                if !self.up.load(Ordering::SeqCst) {
                    return Err(io::Error::other("tailnet down"));
                }
                assert_eq!((host, port), ("100.101.102.103", 18789));
                let s = TcpStream::connect(("127.0.0.1", self.port)).await?;
                Ok(Box::new(s) as BoxStream)
            })
        }
    }

    use std::io;

    /// An upper-casing echo server standing in for the gateway.
    async fn echo_server() -> u16 {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                        if s.write_all(&up).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn round_trip(addr: SocketAddr, msg: &[u8]) -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(msg).await?;
        let mut out = vec![0u8; msg.len()];
        s.read_exact(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_the_port_survives_the_tailnet_going_down() {
        let tailnet = Arc::new(LoopbackTailnetDouble {
            port: echo_server().await,
            up: AtomicBool::new(true),
            dials: AtomicUsize::new(0),
        });
        let proxy = TailnetProxy::start(tailnet.clone(), "100.101.102.103", 18789)
            .await
            .unwrap();
        let addr = proxy.local_addr();
        assert!(addr.ip().is_loopback());
        assert_eq!(round_trip(addr, b"hello").await.unwrap(), b"HELLO");

        // Down: the local connection is accepted, then closed without a byte.
        tailnet.up.store(false, Ordering::SeqCst);
        let err = round_trip(addr, b"hello").await;
        assert!(err.is_err(), "{err:?}");

        // Back: the same local address works again.
        tailnet.up.store(true, Ordering::SeqCst);
        assert_eq!(round_trip(addr, b"again").await.unwrap(), b"AGAIN");
        assert_eq!(tailnet.dials.load(Ordering::SeqCst), 3);

        // Dropped: nothing listens any more.
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
