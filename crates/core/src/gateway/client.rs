//! A client of the OpenClaw gateway's WebSocket protocol.
//!
//! [`connect_once`] does one handshake (`connect.challenge` → `connect` → `hello-ok`) and
//! returns a [`Connection`]; [`Gateway`] owns a background task that keeps a connection up,
//! reconnecting with backoff, re-reading the token on every attempt (so a rotated token is
//! picked up), failing in-flight requests on a drop, and fanning out events.

use super::frame::{self, Frame, RpcError, DEFAULT_MAX_FRAME, PROTOCOL_VERSION};
use super::{Error, Result};
use crate::secret::Secret;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How this client introduces itself in `connect`.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub id: String,
    pub version: String,
    pub platform: String,
    pub mode: String,
    pub scopes: Vec<String>,
}

impl Default for ClientInfo {
    fn default() -> Self {
        Self {
            // A trusted local backend client may connect over loopback with the shared token
            // and no device identity (OpenClaw's handshake docs, "Trusted local backend clients").
            id: "gateway-client".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            platform: std::env::consts::OS.into(),
            mode: "backend".into(),
            scopes: vec!["operator.read".into(), "operator.write".into()],
        }
    }
}

/// What the gateway said in `hello-ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub protocol: u64,
    pub server_version: Option<String>,
    pub methods: Vec<String>,
    pub max_payload: usize,
    pub scopes: Vec<String>,
}

impl Hello {
    fn from_payload(p: &Value) -> Result<Self> {
        if p.get("type").and_then(Value::as_str) != Some("hello-ok") {
            return Err(Error::Protocol(
                "the gateway did not answer connect with hello-ok".into(),
            ));
        }
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            protocol: p.get("protocol").and_then(Value::as_u64).unwrap_or(0),
            server_version: p
                .pointer("/server/version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            methods: strings(p.pointer("/features/methods")),
            max_payload: p
                .pointer("/policy/maxPayload")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_MAX_FRAME),
            scopes: strings(p.pointer("/auth/scopes")),
        })
    }
}

/// An event pushed by the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub payload: Value,
}

/// One authenticated WebSocket connection.
pub struct Connection {
    ws: Ws,
    pub hello: Hello,
    /// Events that arrived during the handshake, in order.
    pending_events: Vec<Event>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

fn classify_connect_error(e: RpcError) -> Error {
    let reason = e.reason().unwrap_or_default().to_owned();
    if e.code == "UNAVAILABLE" {
        return Error::Starting {
            retry_after_ms: e.retry_after_ms.unwrap_or(500),
        };
    }
    let auth_like = e.code.contains("AUTH")
        || reason.contains("AUTH")
        || reason.contains("auth")
        || e.code == "UNAUTHORIZED";
    if auth_like {
        Error::Auth(if reason.is_empty() { e.code } else { reason })
    } else {
        Error::Rpc(e)
    }
}

fn close_reason(
    frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) -> (u16, String) {
    frame
        .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
        .unwrap_or((1005, String::new()))
}

/// Connect and authenticate once.
pub async fn connect_once(url: &str, token: &Secret, client: &ClientInfo) -> Result<Connection> {
    let (mut ws, _) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| Error::Timeout("connecting"))?
            .map_err(|e| Error::Unreachable(e.to_string()))?;

    let handshake = async {
        let mut early = Vec::new();
        // 1. The challenge.
        loop {
            match next_frame(&mut ws, DEFAULT_MAX_FRAME).await? {
                Frame::Event { event, .. } if event == "connect.challenge" => break,
                Frame::Event { event, payload, .. } => early.push(Event { event, payload }),
                _ => {}
            }
        }
        // 2. connect.
        let params = json!({
            "minProtocol": PROTOCOL_VERSION,
            "maxProtocol": PROTOCOL_VERSION,
            "client": { "id": client.id, "version": client.version, "platform": client.platform, "mode": client.mode },
            "role": "operator",
            "scopes": client.scopes,
            "caps": [],
            "auth": { "token": token.expose() },
        });
        ws.send(Message::Text(
            frame::request("connect", "connect", &params).into(),
        ))
        .await
        .map_err(|e| Error::Unreachable(e.to_string()))?;
        // 3. hello-ok.
        loop {
            match next_frame(&mut ws, DEFAULT_MAX_FRAME).await? {
                Frame::Response { id, result } if id == "connect" => {
                    return match result {
                        Ok(payload) => Ok((Hello::from_payload(&payload)?, early)),
                        Err(e) => Err(classify_connect_error(e)),
                    };
                }
                Frame::Event { event, payload, .. } => early.push(Event { event, payload }),
                _ => {}
            }
        }
    };
    let (hello, pending_events) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| Error::Timeout("the handshake"))??;
    Ok(Connection {
        ws,
        hello,
        pending_events,
    })
}

async fn next_frame(ws: &mut Ws, max: usize) -> Result<Frame> {
    loop {
        match ws.next().await {
            None => {
                return Err(Error::Disconnected {
                    code: 1006,
                    reason: String::new(),
                })
            }
            Some(Err(e)) => return Err(Error::Unreachable(e.to_string())),
            Some(Ok(Message::Text(t))) => match frame::parse(t.as_str(), max) {
                Ok(f) => return Ok(f),
                Err(e) => {
                    tracing::debug!(error = %e, "ignoring a malformed frame from the gateway");
                }
            },
            Some(Ok(Message::Close(f))) => {
                let (code, reason) = close_reason(f);
                return Err(match code {
                    1008 | 4001 => Error::Auth(if reason.is_empty() {
                        format!("closed with {code}")
                    } else {
                        reason
                    }),
                    1013 => Error::Starting {
                        retry_after_ms: 1000,
                    },
                    _ => Error::Disconnected { code, reason },
                });
            }
            Some(Ok(_)) => {} // ping/pong/binary: tungstenite answers pings itself
        }
    }
}

impl Connection {
    /// Send one request and wait for its response, queueing events that arrive meanwhile.
    pub async fn request(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value> {
        let id = uuid::Uuid::new_v4().to_string();
        self.ws
            .send(Message::Text(frame::request(&id, method, &params).into()))
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let max = self.hello.max_payload;
        let wait = async {
            loop {
                match next_frame(&mut self.ws, max).await? {
                    Frame::Response { id: rid, result } if rid == id => {
                        return result.map_err(Error::Rpc)
                    }
                    Frame::Event { event, payload, .. } => {
                        self.pending_events.push(Event { event, payload })
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout("a reply"))?
    }

    /// The next event (queued or arriving within `timeout`); responses are dropped.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Event> {
        if !self.pending_events.is_empty() {
            return Ok(self.pending_events.remove(0));
        }
        let max = self.hello.max_payload;
        let wait = async {
            loop {
                if let Frame::Event { event, payload, .. } = next_frame(&mut self.ws, max).await? {
                    return Ok(Event { event, payload });
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout("an event"))?
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending_events)
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

// ---------------------------------------------------------------------------------------
// The long-lived client.

/// Connection state of a [`Gateway`], for the UI and the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    Connecting,
    Connected {
        server_version: Option<String>,
    },
    /// Waiting before the next attempt; `problem` says why the last one failed.
    Retrying {
        problem: String,
        code: &'static str,
    },
    Closed,
}

enum Cmd {
    Request {
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value>>,
    },
}

/// A self-healing connection to one gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    cmd: mpsc::Sender<Cmd>,
    events: broadcast::Sender<Event>,
    state: watch::Receiver<LinkState>,
    request_timeout: Duration,
    stop: Arc<watch::Sender<bool>>,
}

/// Where a [`Gateway`] gets its token each time it connects.
pub type TokenSource = Arc<dyn Fn() -> Result<Secret> + Send + Sync>;

impl Gateway {
    /// Start the background task. It connects at once and keeps reconnecting (250 ms,
    /// doubling to 10 s) until [`Gateway::shutdown`].
    pub fn spawn(url: String, token: TokenSource, client: ClientInfo) -> Self {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(1024);
        let (state_tx, state) = watch::channel(LinkState::Connecting);
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(run(
            url,
            token,
            client,
            cmd_rx,
            events.clone(),
            state_tx,
            stop_rx,
        ));
        Self {
            cmd: cmd_tx,
            events,
            state,
            request_timeout: Duration::from_secs(30),
            stop: Arc::new(stop_tx),
        }
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// Wait until connected (or `timeout`).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut st = self.state.clone();
        let wait = async {
            loop {
                match &*st.borrow_and_update() {
                    LinkState::Connected { .. } => return Ok(()),
                    LinkState::Closed => return Err(Error::Closed),
                    _ => {}
                }
                if st.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(match &*self.state.borrow() {
                LinkState::Retrying { problem, code } if *code == "gateway_auth" => {
                    Error::Auth(problem.clone())
                }
                LinkState::Retrying { problem, .. } => Error::Unreachable(problem.clone()),
                _ => Error::Timeout("the connection"),
            }),
        }
    }

    /// Call a method; waits for a connection first (within the request timeout).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value> {
        self.wait_connected(self.request_timeout).await?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Request {
                method: method.to_owned(),
                params,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        tokio::time::timeout(self.request_timeout, rx)
            .await
            .map_err(|_| Error::Timeout("a reply"))?
            .map_err(|_| Error::Disconnected {
                code: 1006,
                reason: "connection lost".into(),
            })?
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // The last handle going away stops the task.
        if Arc::strong_count(&self.stop) == 1 {
            let _ = self.stop.send(true);
        }
    }
}

async fn run(
    url: String,
    token: TokenSource,
    client: ClientInfo,
    mut cmd_rx: mpsc::Receiver<Cmd>,
    events: broadcast::Sender<Event>,
    state: watch::Sender<LinkState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        if *stop.borrow() {
            break;
        }
        let _ = state.send(LinkState::Connecting);
        let attempt = async {
            let t = token()?;
            connect_once(&url, &t, &client).await
        };
        let outcome = tokio::select! {
            r = attempt => r,
            _ = stop.changed() => break,
        };
        let wait = match outcome {
            Ok(mut conn) => {
                backoff = Duration::from_millis(250);
                let _ = state.send(LinkState::Connected {
                    server_version: conn.hello.server_version.clone(),
                });
                for e in conn.take_events() {
                    let _ = events.send(e);
                }
                let err = serve(conn, &mut cmd_rx, &events, &mut stop).await;
                match err {
                    None => break, // asked to stop
                    Some(e) => {
                        tracing::info!(error = %e, "gateway connection lost; reconnecting");
                        let _ = state.send(LinkState::Retrying {
                            problem: e.to_string(),
                            code: e.code_str(),
                        });
                        Duration::from_millis(100)
                    }
                }
            }
            Err(e) => {
                let wait = match &e {
                    Error::Starting { retry_after_ms } => {
                        Duration::from_millis((*retry_after_ms).clamp(100, 5000))
                    }
                    _ => backoff,
                };
                let _ = state.send(LinkState::Retrying {
                    problem: e.to_string(),
                    code: e.code_str(),
                });
                backoff = (backoff * 2).min(Duration::from_secs(10));
                // Fail requests queued while we could not connect, rather than leave them hanging.
                while let Ok(Cmd::Request { reply, .. }) = cmd_rx.try_recv() {
                    let _ = reply.send(Err(Error::Unreachable(e.to_string())));
                }
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    let _ = state.send(LinkState::Closed);
}

/// Pump one live connection. Returns `None` when asked to stop, or the error that ended it.
async fn serve(
    conn: Connection,
    cmd_rx: &mut mpsc::Receiver<Cmd>,
    events: &broadcast::Sender<Event>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Error> {
    let max = conn.hello.max_payload;
    let (mut sink, mut stream) = conn.ws.split();
    let mut pending: HashMap<String, oneshot::Sender<Result<Value>>> = HashMap::new();
    let fail_all = |pending: &mut HashMap<String, oneshot::Sender<Result<Value>>>, e: &Error| {
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(match e {
                Error::Disconnected { code, reason } => Error::Disconnected {
                    code: *code,
                    reason: reason.clone(),
                },
                other => Error::Unreachable(other.to_string()),
            }));
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: CloseCode::Normal,
                    reason: "client shutting down".into(),
                }))).await;
                fail_all(&mut pending, &Error::Closed);
                return None;
            }
            cmd = cmd_rx.recv() => match cmd {
                None => return None,
                Some(Cmd::Request { method, params, reply }) => {
                    let id = uuid::Uuid::new_v4().to_string();
                    if let Err(e) = sink.send(Message::Text(frame::request(&id, &method, &params).into())).await {
                        let err = Error::Unreachable(e.to_string());
                        let _ = reply.send(Err(Error::Unreachable(e.to_string())));
                        fail_all(&mut pending, &err);
                        return Some(err);
                    }
                    pending.insert(id, reply);
                }
            },
            msg = stream.next() => {
                let err = match msg {
                    None => Error::Disconnected { code: 1006, reason: String::new() },
                    Some(Err(e)) => Error::Unreachable(e.to_string()),
                    Some(Ok(Message::Text(t))) => {
                        match frame::parse(t.as_str(), max) {
                            Ok(Frame::Response { id, result }) => {
                                if let Some(reply) = pending.remove(&id) {
                                    let _ = reply.send(result.map_err(Error::Rpc));
                                }
                            }
                            Ok(Frame::Event { event, payload, .. }) => {
                                let _ = events.send(Event { event, payload });
                            }
                            Ok(_) => {}
                            Err(e) => tracing::debug!(error = %e, "ignoring a malformed frame from the gateway"),
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(f))) => {
                        let (code, reason) = close_reason(f);
                        if code == 4001 || code == 1008 {
                            Error::Auth(reason)
                        } else {
                            Error::Disconnected { code, reason }
                        }
                    }
                    Some(Ok(_)) => continue,
                };
                fail_all(&mut pending, &err);
                return Some(err);
            }
        }
    }
}
