//! A contract fake of Discord's REST API (discord.com/developers/docs), **the token check
//! only**: `GET /api/v10/users/@me` with `Authorization: Bot <token>` → the bot's user
//! object `{id, username, discriminator, bot: true, …}`; any other token → 401
//! `{"message": "401: Unauthorized", "code": 0}`; any other path → 404
//! `{"message": "404: Not Found", "code": 0}`.
//!
//! Not covered: Discord's WebSocket gateway (`GET /gateway/bot` then a `wss://` session with
//! HELLO/IDENTIFY/READY/heartbeats), which OpenClaw's Discord channel needs to run; and the
//! channel itself, which is a separate plugin (`@openclaw/discord`) not in the pinned
//! runtime. So Clawkeeper's Discord rotation is tested up to the token check here.
//!
//! Tokens look like Discord's: base64 of the bot's id, a dot, six characters, a dot, 38
//! characters. [`ContractFakeDiscord::reset_token`] does what the Developer Portal's
//! "Reset Token" does: a new token, the old one refused at once.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

struct Bot {
    id: String,
    username: String,
    token: String,
}

#[derive(Default)]
struct State {
    bots: Vec<Bot>,
    /// (token as sent, status) of every `users/@me` call.
    calls: Vec<(String, u16)>,
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

impl ContractFakeDiscord {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let st = Arc::clone(&st);
                        connections.spawn(async move {
                            let service = service_fn(move |req| handle(Arc::clone(&st), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
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

    /// `http://127.0.0.1:<port>/api/v10` (`CLAWKEEPER_DISCORD_API`).
    pub fn api_base(&self) -> String {
        format!("{}/api/v10", self.origin)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// A new application with a bot user `id`; returns its token.
    pub fn add_bot(&self, id: &str, username: &str) -> String {
        let token = new_token(id);
        self.with(|s| {
            s.bots.push(Bot {
                id: id.to_owned(),
                username: username.to_owned(),
                token: token.clone(),
            })
        });
        token
    }

    /// The Developer Portal's Reset Token: a new token, the old one refused at once.
    pub fn reset_token(&self, id: &str) -> String {
        let token = new_token(id);
        self.with(|s| {
            if let Some(b) = s.bots.iter_mut().find(|b| b.id == id) {
                b.token = token.clone();
            }
        });
        token
    }

    /// How many `users/@me` calls came with `token`.
    pub fn checks_with(&self, token: &str) -> usize {
        self.with(|s| s.calls.iter().filter(|(t, _)| t == token).count())
    }
}

fn answer(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let path = req.uri().path().to_owned();
    let get = req.method() == hyper::Method::GET;
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = req.into_body().collect().await;
    if !(get && path == "/api/v10/users/@me") {
        return Ok(answer(
            StatusCode::NOT_FOUND,
            &json!({"message": "404: Not Found", "code": 0}),
        ));
    }
    let token = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bot "))
        .unwrap_or("")
        .to_owned();
    let mut s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
    let found = s
        .bots
        .iter()
        .find(|b| b.token == token)
        .map(|b| (b.id.clone(), b.username.clone()));
    let status = if found.is_some() { 200 } else { 401 };
    s.calls.push((token, status));
    Ok(match found {
        Some((id, username)) => answer(
            StatusCode::OK,
            &json!({
                "id": id,
                "username": username,
                "discriminator": "0",
                "global_name": null,
                "avatar": null,
                "bot": true,
                "flags": 0,
                "mfa_enabled": false,
                "verified": true,
            }),
        ),
        None => answer(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "401: Unauthorized", "code": 0}),
        ),
    })
}
