//! A **contract fake of Discord** (discord.com/developers/docs) as OpenClaw's Discord
//! channel plugin (`@openclaw/discord` 2026.9.6) and Clawkeeper's token check use it, on
//! one loopback port — the plugin takes its WebSocket gateway's origin from its REST base
//! (`DISCORD_API_URL`) and refuses a gateway URL elsewhere, so both live here. What the
//! plugin calls was measured (docs/openclaw-rotation.md, "The chat bots' tokens"):
//!
//! REST (`/api/v10`, `Authorization: Bot <token>`; a token the fake doesn't accept → 401
//! `{"message": "401: Unauthorized", "code": 0}`; any other route → 404
//! `{"message": "404: Not Found", "code": 0}`):
//! - `GET /users/@me` → the bot's user object `{id, username, discriminator, bot: true, …}`;
//! - `GET /gateway/bot` → `{url: "ws://127.0.0.1:<port>", shards: 1, session_start_limit}`;
//! - `GET /oauth2/applications/@me` → the application object `{id, name, flags, …}`;
//! - `GET|PUT /applications/{id}/commands` → the application's commands (a list; `PUT` is
//!   the bulk overwrite), `POST` adds one.
//!
//! Gateway (WebSocket upgrade of `GET /?v=10&encoding=json`; `&compress=zlib-stream` makes
//! every message one zlib stream's sync-flushed chunk, as Discord does):
//! - HELLO (op 10, `heartbeat_interval`) at once;
//! - IDENTIFY (op 2): the token checked against the tokens the fake accepts *now*; accepted
//!   → READY (op 0, `t: READY`, `user`, `session_id`, `resume_gateway_url`, `application`,
//!   `guilds: []`); refused → close 4004 "Authentication failed";
//! - RESUME (op 6) of a live session with an accepted token → RESUMED; else INVALID
//!   SESSION (op 9, `d: false`);
//! - HEARTBEAT (op 1) → HEARTBEAT ACK (op 11); PRESENCE UPDATE (op 3) taken.
//!
//! [`ContractFakeDiscord::reset_token`] does what the Developer Portal's "Reset Token"
//! does: a new token, the old one refused at once (REST 401, IDENTIFY/RESUME 4004), and the
//! gateway sessions opened with it closed (4004). Every REST call and gateway event is
//! recorded for the tests to assert on.
//!
//! Tokens look like Discord's: base64 of the bot's id, a dot, six characters, a dot, 38
//! characters. The bot's application has the bot's id (as Discord's do).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// HELLO's `heartbeat_interval` (Discord's usual value), ms.
pub const HEARTBEAT_INTERVAL_MS: u64 = 41_250;

struct Bot {
    id: String,
    username: String,
    token: String,
    commands: Vec<Value>,
}

/// One REST call as the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    /// Without `/api/v10` and without the query.
    pub path: String,
    /// The token as sent (`Authorization: Bot <token>`), empty if none.
    pub token: String,
    pub status: u16,
}

/// One gateway event as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// A WebSocket opened, with the query it asked for.
    Opened {
        query: String,
    },
    /// IDENTIFY with `token`: READY sent (`accepted`) or closed 4004.
    Identify {
        token: String,
        accepted: bool,
        intents: u64,
    },
    /// RESUME with `token`: RESUMED sent (`accepted`) or INVALID SESSION / 4004.
    Resume {
        token: String,
        accepted: bool,
    },
    Heartbeat,
    /// The fake closed a session with `code` (4004: the token was reset or refused).
    ClosedByFake {
        token: String,
        code: u16,
    },
}

struct Session {
    id: String,
    token: String,
    close: mpsc::UnboundedSender<(u16, &'static str)>,
}

#[derive(Default)]
struct State {
    bots: Vec<Bot>,
    calls: Vec<Call>,
    events: Vec<GatewayEvent>,
    sessions: Vec<Session>,
}

impl State {
    fn bot_by_token(&self, token: &str) -> Option<usize> {
        self.bots
            .iter()
            .position(|b| !token.is_empty() && b.token == token)
    }
}

pub struct ContractFakeDiscord {
    origin: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for ContractFakeDiscord {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = Full<Bytes>;

fn new_token(id: &str) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let tail = b64(&[a.as_bytes().as_slice(), b.as_bytes().as_slice()].concat());
    format!(
        "{}.{}.{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(id.as_bytes()),
        &tail[..6],
        &tail[6..44.min(tail.len())]
    )
}

fn lock(st: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    st.lock().unwrap_or_else(|e| e.into_inner())
}

impl ContractFakeDiscord {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let ws_origin = format!("ws://{addr}");
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let st = Arc::clone(&st);
                        let ws_origin = ws_origin.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |req| {
                                handle(Arc::clone(&st), ws_origin.clone(), req)
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .with_upgrades()
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self {
            origin,
            state,
            task,
        })
    }

    /// `http://127.0.0.1:<port>/api/v10`: Discord's REST base here (the plugin's
    /// `DISCORD_API_URL`, Clawkeeper's `CLAWKEEPER_DISCORD_API`).
    pub fn api_base(&self) -> String {
        format!("{}/api/v10", self.origin)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut lock(&self.state))
    }

    /// A new application with a bot user `id`; returns its token.
    pub fn add_bot(&self, id: &str, username: &str) -> String {
        let token = new_token(id);
        self.with(|s| {
            s.bots.push(Bot {
                id: id.to_owned(),
                username: username.to_owned(),
                token: token.clone(),
                commands: Vec::new(),
            })
        });
        token
    }

    /// The Developer Portal's Reset Token: a new token; the old one refused at once, and
    /// the gateway sessions opened with it closed with 4004.
    pub fn reset_token(&self, id: &str) -> String {
        let token = new_token(id);
        self.with(|s| {
            let Some(bot) = s.bots.iter_mut().find(|b| b.id == id) else {
                return;
            };
            let old = std::mem::replace(&mut bot.token, token.clone());
            let (dead, live): (Vec<Session>, Vec<Session>) =
                s.sessions.drain(..).partition(|x| x.token == old);
            s.sessions = live;
            for x in dead {
                s.events.push(GatewayEvent::ClosedByFake {
                    token: x.token.clone(),
                    code: 4004,
                });
                let _ = x.close.send((4004, "Authentication failed."));
            }
        });
        token
    }

    /// Whether the fake accepts `token` now.
    pub fn accepts(&self, token: &str) -> bool {
        self.with(|s| s.bot_by_token(token).is_some())
    }

    /// Every REST call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    /// Every gateway event so far.
    pub fn events(&self) -> Vec<GatewayEvent> {
        self.with(|s| s.events.clone())
    }

    /// How many `users/@me` calls came with `token`.
    pub fn checks_with(&self, token: &str) -> usize {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.path == "/users/@me" && c.token == token)
                .count()
        })
    }

    /// How many IDENTIFYs with `token` were answered READY.
    pub fn ready_with(&self, token: &str) -> usize {
        self.with(|s| {
            s.events
                .iter()
                .filter(|e| matches!(e, GatewayEvent::Identify { token: t, accepted: true, .. } if t == token))
                .count()
        })
    }

    /// How many IDENTIFYs or RESUMEs with `token` were refused.
    pub fn refused_identify_with(&self, token: &str) -> usize {
        self.with(|s| {
            s.events
                .iter()
                .filter(|e| match e {
                    GatewayEvent::Identify {
                        token: t,
                        accepted: false,
                        ..
                    }
                    | GatewayEvent::Resume {
                        token: t,
                        accepted: false,
                    } => t == token,
                    _ => false,
                })
                .count()
        })
    }

    /// How many gateway sessions are open with `token`.
    pub fn live_sessions_with(&self, token: &str) -> usize {
        self.with(|s| {
            s.sessions
                .iter()
                .filter(|x| x.token == token && !x.close.is_closed())
                .count()
        })
    }

    /// How many heartbeats the fake has ACKed.
    pub fn heartbeats(&self) -> usize {
        self.with(|s| {
            s.events
                .iter()
                .filter(|e| matches!(e, GatewayEvent::Heartbeat))
                .count()
        })
    }
}

fn answer(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn not_found() -> Response<Body> {
    answer(
        StatusCode::NOT_FOUND,
        &json!({"message": "404: Not Found", "code": 0}),
    )
}

fn user_object(bot: &Bot) -> Value {
    json!({
        "id": bot.id,
        "username": bot.username,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": true,
        "flags": 0,
        "mfa_enabled": false,
        "verified": true,
    })
}

fn application_object(bot: &Bot) -> Value {
    json!({
        "id": bot.id,
        "name": bot.username,
        "icon": null,
        "description": "",
        "bot_public": false,
        "bot_require_code_grant": false,
        "verify_key": "0000000000000000000000000000000000000000000000000000000000000000",
        "flags": 0,
        "team": null,
        "bot": user_object(bot),
    })
}

async fn handle(
    st: Arc<Mutex<State>>,
    ws_origin: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let is_upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade && req.uri().path() == "/" {
        return Ok(upgrade(st, ws_origin, req));
    }
    let method = req.method().as_str().to_owned();
    let full_path = req.uri().path().to_owned();
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bot "))
        .unwrap_or("")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Some(path) = full_path.strip_prefix("/api/v10") else {
        return Ok(not_found());
    };
    let mut s = lock(&st);
    let response = route(&mut s, &ws_origin, &method, path, &token, &body);
    s.calls.push(Call {
        method,
        path: path.to_owned(),
        token,
        status: response.status().as_u16(),
    });
    Ok(response)
}

fn route(
    s: &mut State,
    ws_origin: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> Response<Body> {
    let Some(i) = s.bot_by_token(token) else {
        return answer(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "401: Unauthorized", "code": 0}),
        );
    };
    let bot = &mut s.bots[i];
    let commands_path = format!("/applications/{}/commands", bot.id);
    match (method, path) {
        ("GET", "/users/@me") => answer(StatusCode::OK, &user_object(bot)),
        ("GET", "/oauth2/applications/@me") => answer(StatusCode::OK, &application_object(bot)),
        ("GET", "/gateway/bot") => answer(
            StatusCode::OK,
            &json!({
                "url": ws_origin,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1
                }
            }),
        ),
        ("GET", p) if p == commands_path => {
            answer(StatusCode::OK, &Value::from(bot.commands.clone()))
        }
        ("PUT", p) if p == commands_path => {
            let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(body) else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    &json!({"message": "Invalid Form Body", "code": 50035}),
                );
            };
            let app = bot.id.clone();
            bot.commands = list
                .into_iter()
                .enumerate()
                .map(|(n, mut c)| {
                    c["id"] = json!(format!("{}{n:03}", &app[..app.len().min(16)]));
                    c["application_id"] = json!(app);
                    c["version"] = json!("1");
                    c
                })
                .collect();
            answer(StatusCode::OK, &Value::from(bot.commands.clone()))
        }
        ("POST", p) if p == commands_path => {
            let Ok(mut c) = serde_json::from_slice::<Value>(body) else {
                return answer(
                    StatusCode::BAD_REQUEST,
                    &json!({"message": "Invalid Form Body", "code": 50035}),
                );
            };
            c["id"] = json!(format!("{}{:03}", bot.id, bot.commands.len()));
            c["application_id"] = json!(bot.id);
            c["version"] = json!("1");
            bot.commands.push(c.clone());
            answer(StatusCode::CREATED, &c)
        }
        _ => not_found(),
    }
}

/// The WebSocket handshake (RFC 6455), then the session on the upgraded connection.
fn upgrade(st: Arc<Mutex<State>>, ws_origin: String, mut req: Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return answer(
            StatusCode::BAD_REQUEST,
            &json!({"message": "not a WebSocket"}),
        );
    };
    let query = req.uri().query().unwrap_or("").to_owned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        session(st, ws_origin, query, ws).await;
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

/// Discord's `compress=zlib-stream`: one zlib stream per connection, each message a
/// sync-flushed chunk (ending `00 00 ff ff`) in a binary frame.
struct Zlib(flate2::Compress);

impl Zlib {
    fn chunk(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 64);
        let mut input = text.as_bytes();
        loop {
            out.reserve(256);
            let before_in = self.0.total_in();
            let _ = self
                .0
                .compress_vec(input, &mut out, flate2::FlushCompress::Sync);
            let used = usize::try_from(self.0.total_in() - before_in).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            if input.is_empty() && out.ends_with(&[0, 0, 0xff, 0xff]) {
                return out;
            }
        }
    }
}

type Sink<S> = futures_util::stream::SplitSink<WebSocketStream<S>, Message>;

/// The fake's side of one gateway connection.
struct Conn<S> {
    tx: Sink<S>,
    zlib: Option<Zlib>,
}

impl<S> Conn<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    async fn send(&mut self, v: &Value) -> bool {
        let text = v.to_string();
        let msg = match self.zlib.as_mut() {
            Some(z) => Message::Binary(z.chunk(&text).into()),
            None => Message::Text(text.into()),
        };
        self.tx.send(msg).await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            })))
            .await;
    }
}

async fn session<S>(st: Arc<Mutex<State>>, ws_origin: String, query: String, ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    lock(&st).events.push(GatewayEvent::Opened {
        query: query.clone(),
    });
    let zlib = query
        .split('&')
        .any(|kv| kv == "compress=zlib-stream")
        .then(|| Zlib(flate2::Compress::new(flate2::Compression::default(), true)));
    let (tx, mut rx) = ws.split();
    let mut conn = Conn { tx, zlib };
    let (close_tx, mut close_rx) = mpsc::unbounded_channel::<(u16, &'static str)>();
    let mut seq: u64 = 0;
    let mut identified: Option<String> = None;
    let hello =
        json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": null, "t": null});
    if !conn.send(&hello).await {
        return;
    }
    loop {
        let frame = tokio::select! {
            f = rx.next() => f,
            Some((code, reason)) = close_rx.recv() => {
                conn.close(code, reason).await;
                break;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            _ => break,
        };
        let Ok(p) = serde_json::from_str::<Value>(&text) else {
            conn.close(4002, "Error while decoding payload.").await;
            break;
        };
        let sent = match p["op"].as_u64() {
            Some(1) => {
                lock(&st).events.push(GatewayEvent::Heartbeat);
                conn.send(&json!({"op": 11, "d": null, "s": null, "t": null}))
                    .await
            }
            Some(2) => {
                if identified.is_some() {
                    conn.close(4005, "Already authenticated.").await;
                    break;
                }
                let token = p["d"]["token"].as_str().unwrap_or("").to_owned();
                let intents = p["d"]["intents"].as_u64().unwrap_or(0);
                let session_id = uuid::Uuid::new_v4().simple().to_string();
                let ready = {
                    let mut s = lock(&st);
                    let found = s.bot_by_token(&token).map(|i| {
                        let b = &s.bots[i];
                        (user_object(b), b.id.clone())
                    });
                    s.events.push(GatewayEvent::Identify {
                        token: token.clone(),
                        accepted: found.is_some(),
                        intents,
                    });
                    if found.is_some() {
                        s.sessions.push(Session {
                            id: session_id.clone(),
                            token: token.clone(),
                            close: close_tx.clone(),
                        });
                    }
                    found
                };
                let Some((user, app_id)) = ready else {
                    conn.close(4004, "Authentication failed.").await;
                    break;
                };
                identified = Some(token);
                seq += 1;
                conn.send(&json!({"op": 0, "s": seq, "t": "READY", "d": {
                    "v": 10,
                    "user": user,
                    "guilds": [],
                    "private_channels": [],
                    "session_id": session_id,
                    "session_type": "normal",
                    "resume_gateway_url": ws_origin,
                    "shard": [0, 1],
                    "application": {"id": app_id, "flags": 0},
                }}))
                .await
            }
            Some(6) => {
                let token = p["d"]["token"].as_str().unwrap_or("").to_owned();
                let sid = p["d"]["session_id"].as_str().unwrap_or("").to_owned();
                let (valid, known) = {
                    let mut s = lock(&st);
                    let valid = s.bot_by_token(&token).is_some();
                    let known = valid && s.sessions.iter().any(|x| x.id == sid && x.token == token);
                    s.events.push(GatewayEvent::Resume {
                        token: token.clone(),
                        accepted: known,
                    });
                    if known {
                        s.sessions.retain(|x| x.id != sid);
                        s.sessions.push(Session {
                            id: sid,
                            token: token.clone(),
                            close: close_tx.clone(),
                        });
                    }
                    (valid, known)
                };
                if !valid {
                    conn.close(4004, "Authentication failed.").await;
                    break;
                }
                if known {
                    identified = Some(token);
                    seq += 1;
                    conn.send(&json!({"op": 0, "s": seq, "t": "RESUMED", "d": {}}))
                        .await
                } else {
                    conn.send(&json!({"op": 9, "d": false, "s": null, "t": null}))
                        .await
                }
            }
            Some(3 | 4 | 8) => true,
            _ => {
                conn.close(4001, "Unknown opcode.").await;
                break;
            }
        };
        if !sent {
            break;
        }
    }
    drop(close_rx);
    lock(&st).sessions.retain(|x| !x.close.is_closed());
}
