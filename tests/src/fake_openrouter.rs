//! A contract fake of OpenRouter's OAuth PKCE endpoints, following the documented shapes:
//! `GET /auth?callback_url&code_challenge&code_challenge_method=S256` (here: approves at
//! once and redirects to `callback_url?code=…`, as the real site does after the person
//! clicks Authorize) and `POST /api/v1/auth/keys {code, code_verifier,
//! code_challenge_method}` → `{key, user_id}`; errors as `{"error":{"code","message"}}`.
//! Codes are single-use; the verifier must match the challenge.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    /// code → challenge
    codes: HashMap<String, String>,
    issued: Vec<String>,
    exchanges: u32,
    approve: bool,
}

pub struct ContractFakeOpenRouter {
    origin: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ContractFakeOpenRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn envelope(code: u16, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ContractFakeOpenRouter {
    /// `approve`: whether the simulated person clicks Authorize (else: redirect without a code).
    pub async fn start(approve: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            approve,
            ..State::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = handle(sock, st).await;
                });
            }
        });
        Ok(Self {
            origin,
            state,
            task,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Keys handed out so far.
    pub fn issued(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.issued.clone())
            .unwrap_or_default()
    }

    pub fn exchanges(&self) -> u32 {
        self.state.lock().map(|s| s.exchanges).unwrap_or(0)
    }
}

async fn handle(mut sock: TcpStream, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < pos + 4 + len {
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[pos + 4..].to_vec();
            break (head, body);
        }
    };
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, extra, body) = match (method, path) {
        ("GET", "/auth") => {
            let callback = query_param(query, "callback_url");
            let challenge = query_param(query, "code_challenge");
            let method_ok = query_param(query, "code_challenge_method").as_deref() == Some("S256");
            match (callback, challenge, method_ok) {
                (Some(cb), Some(ch), true) => {
                    let mut s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
                    let location = if s.approve {
                        let code = format!("code-{}", uuid::Uuid::new_v4());
                        s.codes.insert(code.clone(), ch);
                        format!("{cb}?code={code}")
                    } else {
                        format!("{cb}?error=access_denied")
                    };
                    (
                        "302 Found",
                        format!("Location: {location}\r\n"),
                        String::new(),
                    )
                }
                _ => (
                    "400 Bad Request",
                    String::new(),
                    envelope(400, "callback_url and an S256 code_challenge are required"),
                ),
            }
        }
        ("POST", "/api/v1/auth/keys") => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = v.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let verifier = v
                .get("code_verifier")
                .and_then(|c| c.as_str())
                .unwrap_or("");
            let mut s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            s.exchanges += 1;
            match s.codes.remove(code) {
                None => (
                    "403 Forbidden",
                    String::new(),
                    envelope(403, "Invalid code"),
                ),
                Some(ch) => {
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes()));
                    if computed != ch
                        || v.get("code_challenge_method").and_then(|m| m.as_str()) != Some("S256")
                    {
                        (
                            "400 Bad Request",
                            String::new(),
                            envelope(400, "Invalid code_verifier"),
                        )
                    } else {
                        let key = format!("sk-or-v1-{}", uuid::Uuid::new_v4().simple());
                        s.issued.push(key.clone());
                        (
                            "200 OK",
                            String::new(),
                            serde_json::json!({ "key": key, "user_id": "user_contract_fake" })
                                .to_string(),
                        )
                    }
                }
            }
        }
        _ => ("404 Not Found", String::new(), envelope(404, "Not found")),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}
