//! A **contract fake** of tailscaled's LocalAPI on a unix socket, for what the real daemon
//! can't show in the tests' private network namespace: a node that is `Running` (that needs
//! a control server) and a `ts-dial` that succeeds.
//!
//! It follows what the real tailscaled 1.96.4 answered there (tests/tests/tailscale_local.rs
//! checks the same points against it): any request with an `Origin` header is `403
//! invalid localapi request` (text/plain); `GET /localapi/v0/status` is an indented
//! ipnstate.Status with `Content-Length`; `POST /localapi/v0/dial` needs `Connection:
//! upgrade`, `Upgrade: ts-dial`, `Dial-Host` and `Dial-Port` (400 `bad ts-dial upgrade` /
//! `missing Dial-Host or Dial-Port header` otherwise), answers `101 Switching Protocols`
//! with `Upgrade: ts-dial` and `Connection: upgrade`, and is then a raw byte stream; a dial
//! it can't make is `502 dial failure: …`. Unknown paths are 404.
//!
//! "Dialling" connects to a TCP port on 127.0.0.1 that the test maps a tailnet address to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// One request the fake received (head only).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    status: String,
    routes: HashMap<(String, u16), u16>,
    seen: Vec<Seen>,
}

pub struct ContractFakeLocalApi {
    dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ContractFakeLocalApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ContractFakeLocalApi {
    /// Listen on a fresh socket, answering `status` with `status_json`.
    pub async fn start(status_json: String) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("fake-localapi-")
            .tempdir()?;
        let listener = UnixListener::bind(dir.path().join("tailscaled.sock"))?;
        let state = Arc::new(Mutex::new(State {
            status: status_json,
            ..State::default()
        }));
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        Ok(Self { dir, state, task })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("tailscaled.sock")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Dials of `host:port` go to 127.0.0.1:`local_port`.
    pub fn route(&self, host: &str, port: u16, local_port: u16) {
        if let Ok(mut s) = self.state.lock() {
            s.routes.insert((host.to_owned(), port), local_port);
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }
}

/// A Running status in the shape tailscaled writes: this computer `laptop`, and peers.
pub fn running_status(peers: &[(&str, &str, bool)]) -> String {
    let peer_map: serde_json::Map<String, serde_json::Value> = peers
        .iter()
        .enumerate()
        .map(|(i, (host, ip, online))| {
            (
                format!("nodekey:{i:064x}"),
                serde_json::json!({
                    "ID": format!("n{i}CNTRL"), "HostName": host,
                    "DNSName": format!("{host}.tail1234.ts.net."), "OS": "linux",
                    "TailscaleIPs": [ip], "Tags": ["tag:clawkeeper"], "Online": online,
                    "LastSeen": "0001-01-01T00:00:00Z", "KeyExpiry": null,
                }),
            )
        })
        .collect();
    let status = serde_json::json!({
        "Version": "1.96.4-t8cf541dfd-g62bc84ce7", "TUN": false, "BackendState": "Running",
        "AuthURL": "", "TailscaleIPs": ["100.101.1.1"],
        "Self": {"ID": "n0CNTRL", "HostName": "laptop", "DNSName": "laptop.tail1234.ts.net.",
            "OS": "linux", "TailscaleIPs": ["100.101.1.1"], "Online": true},
        "Health": [], "MagicDNSSuffix": "tail1234.ts.net",
        "CurrentTailnet": {"Name": "me@example.com", "MagicDNSSuffix": "tail1234.ts.net",
            "MagicDNSEnabled": true},
        "Peer": peer_map, "User": null, "ClientVersion": null,
    });
    serde_json::to_string_pretty(&status).unwrap_or_default()
}

async fn reply(conn: &mut UnixStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
    let _ = conn.shutdown().await;
}

async fn serve(mut conn: UnixStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let seen = Seen {
        method,
        path,
        headers,
    };
    let status_json = match state.lock() {
        Ok(mut s) => {
            s.seen.push(seen.clone());
            s.status.clone()
        }
        Err(_) => return,
    };
    let plain = "text/plain; charset=utf-8";
    if seen.header("origin").is_some() {
        return reply(
            &mut conn,
            "403 Forbidden",
            plain,
            "invalid localapi request\n",
        )
        .await;
    }
    match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/localapi/v0/status") => {
            reply(&mut conn, "200 OK", "application/json", &status_json).await
        }
        ("POST", "/localapi/v0/dial") => {
            let upgrade = seen
                .header("connection")
                .is_some_and(|c| c.contains("upgrade"))
                && seen.header("upgrade") == Some("ts-dial");
            if !upgrade {
                return reply(&mut conn, "400 Bad Request", plain, "bad ts-dial upgrade\n").await;
            }
            let (Some(host), Some(port)) = (seen.header("dial-host"), seen.header("dial-port"))
            else {
                let msg = "missing Dial-Host or Dial-Port header\n";
                return reply(&mut conn, "400 Bad Request", plain, msg).await;
            };
            let target = port.parse::<u16>().ok().and_then(|p| {
                state
                    .lock()
                    .ok()
                    .and_then(|s| s.routes.get(&(host.to_owned(), p)).copied())
            });
            let out = match target {
                Some(local) => TcpStream::connect(("127.0.0.1", local)).await.ok(),
                None => None,
            };
            let Some(mut out) = out else {
                let msg =
                    format!("dial failure: dial tcp {host}:{port}: connect: connection refused\n");
                return reply(&mut conn, "502 Bad Gateway", plain, &msg).await;
            };
            let head = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ts-dial\r\n\r\n";
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // Bytes the client sent right behind its request head go on to the peer.
            let early = buf.get(end + 4..).unwrap_or_default();
            if !early.is_empty() && out.write_all(early).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut conn, &mut out).await;
        }
        _ => reply(&mut conn, "404 Not Found", plain, "404 page not found\n").await,
    }
}
