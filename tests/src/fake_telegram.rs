//! A contract fake of the Telegram Bot API, following its documented shapes
//! (core.telegram.org/bots/api), for what OpenClaw's Telegram channel and Clawkeeper's token
//! check call. Point the gateway at it with `channels.telegram.apiRoot` (the Bot API root;
//! requests go to `{root}/bot<token>/<method>`).
//!
//! * `getMe` → `{"ok":true,"result":{id, is_bot, first_name, username, …}}`;
//! * `getUpdates` (long polling: held for `min(timeout, 1 s)`, then `[]` — nobody writes to
//!   the bot here), `deleteWebhook`, `getWebhookInfo`, `deleteMyCommands`,
//!   `setMyCommands`, `getMyCommands` — what the gateway calls when its channel starts
//!   (seen with openclaw 2026.9.6: getMe, deleteWebhook, deleteMyCommands ×2,
//!   setMyCommands ×2, then getUpdates in a loop);
//! * any other method of a known token → 404 `Not Found` (as Telegram answers an unknown
//!   method);
//! * a token the fake doesn't know (never issued, or revoked) → 401
//!   `{"ok":false,"error_code":401,"description":"Unauthorized"}`.
//!
//! Tokens are `<bot id>:<35 characters>` like BotFather's. [`ContractFakeTelegram::revoke`]
//! does what BotFather's `/revoke` does: a new token for the bot, the old one refused at
//! once. Every call is recorded with the token it came with (in this process's memory only).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One call the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The token in the URL (as sent).
    pub token: String,
    pub method: String,
    /// 200, 401, 404.
    pub status: u16,
}

struct Bot {
    id: i64,
    username: String,
    token: String,
}

#[derive(Default)]
struct State {
    bots: Vec<Bot>,
    calls: Vec<Call>,
}

pub struct ContractFakeTelegram {
    origin: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for ContractFakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = Full<Bytes>;

fn new_token(id: i64) -> String {
    use base64::Engine;
    let mut raw = [0u8; 27];
    raw.iter_mut()
        .zip(
            uuid::Uuid::new_v4()
                .as_bytes()
                .iter()
                .chain(uuid::Uuid::new_v4().as_bytes()),
        )
        .for_each(|(a, b)| *a = *b);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    format!("{id}:AA{}", &text[..33])
}

impl ContractFakeTelegram {
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

    /// `http://127.0.0.1:<port>`: the Bot API root (`channels.telegram.apiRoot`).
    pub fn api_root(&self) -> &str {
        &self.origin
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// A new bot (BotFather's `/newbot`); returns its token.
    pub fn add_bot(&self, id: i64, username: &str) -> String {
        let token = new_token(id);
        self.with(|s| {
            s.bots.push(Bot {
                id,
                username: username.to_owned(),
                token: token.clone(),
            })
        });
        token
    }

    /// BotFather's `/revoke`: the bot gets a new token, the old one is refused from now on.
    pub fn revoke(&self, id: i64) -> String {
        let token = new_token(id);
        self.with(|s| {
            if let Some(b) = s.bots.iter_mut().find(|b| b.id == id) {
                b.token = token.clone();
            }
        });
        token
    }

    /// Whether `token` is a bot's current token.
    pub fn accepts(&self, token: &str) -> bool {
        self.with(|s| s.bots.iter().any(|b| b.token == token))
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    /// The methods called with `token` that the fake answered with 200, in order.
    pub fn answered_with(&self, token: &str) -> Vec<String> {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.token == token && c.status == 200)
                .map(|c| c.method.clone())
                .collect()
        })
    }

    /// The methods called with `token` that the fake refused (401).
    pub fn refused_with(&self, token: &str) -> Vec<String> {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.token == token && c.status == 401)
                .map(|c| c.method.clone())
                .collect()
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
        &json!({"ok": false, "error_code": 404, "description": "Not Found"}),
    )
}

/// A parameter from the JSON body, the form body or the query string.
fn param(body: &[u8], query: &str, name: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(x) = v.get(name) {
            return Some(match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
    }
    let form = std::str::from_utf8(body).unwrap_or("");
    [query, form].into_iter().find_map(|q| {
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    })
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    // /bot<token>/<method>
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (Some(first), Some(method)) = (parts.next(), parts.next()) else {
        return Ok(not_found());
    };
    let Some(token) = first.strip_prefix("bot") else {
        return Ok(not_found());
    };
    let (token, method) = (token.to_owned(), method.to_owned());
    let bot = {
        let s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        s.bots
            .iter()
            .find(|b| b.token == token)
            .map(|b| (b.id, b.username.clone()))
    };
    let record = |status: u16| {
        if let Ok(mut s) = st.lock() {
            s.calls.push(Call {
                token: token.clone(),
                method: method.clone(),
                status,
            });
        }
    };
    let Some((id, username)) = bot else {
        record(401);
        return Ok(answer(
            StatusCode::UNAUTHORIZED,
            &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        ));
    };
    let result = match method.as_str() {
        "getMe" => json!({
            "id": id,
            "is_bot": true,
            "first_name": "Contract fake bot",
            "username": username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        }),
        "getUpdates" => {
            let timeout = param(&body, &query, "timeout")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(timeout.min(1) * 1000)).await;
            json!([])
        }
        "getWebhookInfo" => {
            json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0})
        }
        "getMyCommands" => json!([]),
        "deleteWebhook" | "deleteMyCommands" | "setMyCommands" => json!(true),
        _ => {
            record(404);
            return Ok(not_found());
        }
    };
    record(200);
    Ok(answer(
        StatusCode::OK,
        &json!({"ok": true, "result": result}),
    ))
}
