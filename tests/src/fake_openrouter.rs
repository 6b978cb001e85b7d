//! A contract fake of OpenRouter, following its documented shapes, for the parts
//! Clawkeeper uses:
//!
//! * OAuth PKCE: `GET /auth?callback_url&code_challenge&code_challenge_method=S256` (here:
//!   approves at once and redirects to `callback_url?code=…`, as the real site does after
//!   the person clicks Authorize) and `POST /api/v1/auth/keys {code, code_verifier,
//!   code_challenge_method}` → `{key, user_id}`. Codes are single-use; the verifier must
//!   match the challenge.
//! * Usage: `GET /api/v1/key` (any key) → `{"data":{label, usage, usage_daily,
//!   usage_weekly, usage_monthly, limit, limit_remaining, limit_reset, is_free_tier,
//!   include_byok_in_limit, …}}`.
//! * With a management key: `GET /api/v1/activity[?date=&api_key_hash=]` (rows per UTC day
//!   and model for the last 30 completed days), `GET /api/v1/credits`, `GET
//!   /api/v1/keys[?offset=&include_disabled=]` (most recent first, pages of
//!   [`ContractFakeOpenRouter::set_page_size`], 100 like the real one by default), `GET`,
//!   `PATCH` and `DELETE /api/v1/keys/{hash}`, `POST /api/v1/keys` (201, the key text
//!   only in that answer). An ordinary key there gets 403.
//!
//! Errors come as `{"error":{"code","message"}}` with the same HTTP status: 400, 401
//! (unknown or disabled key), 402 (spending past the cap or the credit), 403, 404, and
//! whatever a test injects ([`ContractFakeOpenRouter::fail_next`] with `Retry-After`,
//! [`ContractFakeOpenRouter::garbage_next`]).
//!
//! Spend is driven by the test ([`ContractFakeOpenRouter::record_spend`]); the period
//! totals follow the fake's clock ([`ContractFakeOpenRouter::set_today`]): UTC day, ISO
//! week (Monday to Sunday, as documented for `limit_reset`), calendar month. What the fake
//! does not know (tokens, BYOK) is reported as zero.
//!
//! A key's `hash` is 64 hex digits like the real ones; by default random (the docs don't
//! say what it is the hash of), or the SHA-256 of the key text after
//! [`ContractFakeOpenRouter::set_sha256_hashes`]. Its `label` is the masked key,
//! `sk-or-v1-abc...xyz`.

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use time::Date;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the fake answered on the usage endpoints (the key used only as its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    /// Hash of the bearer key if the fake knows it; `"unknown"` or `"none"` otherwise.
    pub key_hash: String,
}

/// An answer the fake gives instead of the real one.
#[derive(Debug, Clone)]
enum Fault {
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    Body(String),
}

#[derive(Debug, Clone)]
struct FakeKey {
    text: String,
    hash: String,
    name: String,
    label: String,
    disabled: bool,
    management: bool,
    limit: Option<f64>,
    limit_reset: Option<String>,
    include_byok_in_limit: bool,
    created_at: String,
    updated_at: Option<String>,
    /// Dollars spent per UTC day.
    spend: BTreeMap<Date, f64>,
}

#[derive(Debug, Clone)]
struct ActivityEntry {
    date: Date,
    model: String,
    key_hash: String,
    usage: f64,
    requests: u64,
}

struct State {
    /// code → challenge
    codes: HashMap<String, String>,
    issued: Vec<String>,
    exchanges: u32,
    approve: bool,
    keys: Vec<FakeKey>,
    activity: Vec<ActivityEntry>,
    today: Date,
    total_credits: f64,
    page_size: usize,
    sha256_hashes: bool,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
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
    json!({ "error": { "code": code, "message": message } }).to_string()
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

fn hex_digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sk-or-v1-abc...xyz`, the documented masked form.
fn mask(text: &str) -> String {
    let body = text.strip_prefix("sk-or-v1-").unwrap_or(text);
    let head: String = body.chars().take(3).collect();
    let tail: String = body
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-or-v1-{head}...{tail}")
}

fn parse_date(s: &str) -> Option<Date> {
    let mut it = s.split('-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    if it.next().is_some() || s.len() != 10 {
        return None;
    }
    Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        now.date(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

impl State {
    fn key(&self, text: &str) -> Option<&FakeKey> {
        self.keys.iter().find(|k| k.text == text)
    }

    fn key_mut(&mut self, text: &str) -> Option<&mut FakeKey> {
        self.keys.iter_mut().find(|k| k.text == text)
    }

    fn week_start(d: Date) -> Date {
        let back = i64::from(d.weekday().number_days_from_monday());
        d.checked_sub(time::Duration::days(back)).unwrap_or(d)
    }

    /// (all time, today, this ISO week, this month) for `k` at the fake's today.
    fn periods(&self, k: &FakeKey) -> (f64, f64, f64, f64) {
        let today = self.today;
        let monday = Self::week_start(today);
        let mut t = (0.0, 0.0, 0.0, 0.0);
        for (d, v) in &k.spend {
            t.0 += v;
            if *d == today {
                t.1 += v;
            }
            if *d >= monday && *d <= today {
                t.2 += v;
            }
            if d.year() == today.year() && d.month() == today.month() && *d <= today {
                t.3 += v;
            }
        }
        t
    }

    fn remaining(&self, k: &FakeKey) -> Option<f64> {
        let (all, day, week, month) = self.periods(k);
        let used = match k.limit_reset.as_deref() {
            Some("daily") => day,
            Some("weekly") => week,
            Some("monthly") => month,
            _ => all,
        };
        k.limit.map(|l| l - used)
    }

    fn total_usage(&self) -> f64 {
        self.keys.iter().map(|k| self.periods(k).0).sum()
    }

    /// Why a request with `text` would be refused: (status, message).
    fn refusal(&self, text: &str) -> Option<(u16, &'static str)> {
        let Some(k) = self.key(text) else {
            return Some((401, "User not found."));
        };
        if k.disabled {
            return Some((401, "This API key is disabled."));
        }
        if k.management {
            return Some((403, "Management keys cannot be used for completions."));
        }
        if self.remaining(k).is_some_and(|r| r <= 0.0) {
            return Some((402, "This key's spending limit is reached."));
        }
        if self.total_usage() >= self.total_credits {
            return Some((
                402,
                "Insufficient credits. Add more using https://openrouter.ai/credits",
            ));
        }
        None
    }

    fn key_json(&self, k: &FakeKey) -> Value {
        let (all, day, week, month) = self.periods(k);
        json!({
            "hash": k.hash,
            "name": k.name,
            "label": k.label,
            "disabled": k.disabled,
            "limit": k.limit,
            "limit_remaining": self.remaining(k),
            "limit_reset": k.limit_reset,
            "include_byok_in_limit": k.include_byok_in_limit,
            "usage": all,
            "usage_daily": day,
            "usage_weekly": week,
            "usage_monthly": month,
            "byok_usage": 0.0,
            "byok_usage_daily": 0.0,
            "byok_usage_weekly": 0.0,
            "byok_usage_monthly": 0.0,
            "created_at": k.created_at,
            "updated_at": k.updated_at,
            "creator_user_id": "user_contract_fake",
        })
    }

    fn current_key_json(&self, k: &FakeKey) -> Value {
        let (all, day, week, month) = self.periods(k);
        json!({ "data": {
            "label": k.label,
            "usage": all,
            "usage_daily": day,
            "usage_weekly": week,
            "usage_monthly": month,
            "byok_usage": 0.0,
            "byok_usage_daily": 0.0,
            "byok_usage_weekly": 0.0,
            "byok_usage_monthly": 0.0,
            "limit": k.limit,
            "limit_remaining": self.remaining(k),
            "limit_reset": k.limit_reset,
            "include_byok_in_limit": k.include_byok_in_limit,
            "is_free_tier": false,
            "is_management_key": k.management,
            "is_provisioning_key": k.management,
            "creator_user_id": "user_contract_fake",
            "expires_at": null,
            "rate_limit": { "requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore." },
        }})
    }

    fn new_key(&mut self, text: Option<&str>, name: &str, management: bool) -> String {
        let text = text.map(str::to_owned).unwrap_or_else(|| {
            format!("sk-or-v1-{}", hex_digest(&uuid::Uuid::new_v4().to_string()))
        });
        let hash = if self.sha256_hashes {
            hex_digest(&text)
        } else {
            hex_digest(&format!("random-{}", uuid::Uuid::new_v4()))
        };
        self.keys.push(FakeKey {
            label: mask(&text),
            text: text.clone(),
            hash,
            name: name.to_owned(),
            disabled: false,
            management,
            limit: None,
            limit_reset: None,
            include_byok_in_limit: false,
            created_at: now_rfc3339(),
            updated_at: None,
            spend: BTreeMap::new(),
        });
        text
    }
}

type Answer = (u16, Vec<(String, String)>, String);

fn reply(status: u16, body: Value) -> Answer {
    (status, Vec::new(), body.to_string())
}

fn refuse(status: u16, message: &str) -> Answer {
    (status, Vec::new(), envelope(status, message))
}

impl ContractFakeOpenRouter {
    /// `approve`: whether the simulated person clicks Authorize (else: redirect without a code).
    pub async fn start(approve: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            codes: HashMap::new(),
            issued: Vec::new(),
            exchanges: 0,
            approve,
            keys: Vec::new(),
            activity: Vec::new(),
            today: time::OffsetDateTime::now_utc().date(),
            total_credits: 100.0,
            page_size: 100,
            sha256_hashes: false,
            faults: VecDeque::new(),
            requests: Vec::new(),
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

    /// The API root for [`clawkeeper_core::openrouter::OpenRouterApi`] (`…/api/v1`).
    pub fn api_base(&self) -> String {
        format!("{}/api/v1", self.origin)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut s)
    }

    /// Keys handed out by the sign-in so far.
    pub fn issued(&self) -> Vec<String> {
        self.with(|s| s.issued.clone())
    }

    pub fn exchanges(&self) -> u32 {
        self.with(|s| s.exchanges)
    }

    /// A new ordinary API key named `name`; its text.
    pub fn add_key(&self, name: &str) -> String {
        self.with(|s| s.new_key(None, name, false))
    }

    /// A key with this exact text (to make two keys share a masked label).
    pub fn add_key_with_text(&self, text: &str, name: &str) -> String {
        self.with(|s| s.new_key(Some(text), name, false))
    }

    /// A new management key; its text.
    pub fn add_management_key(&self) -> String {
        self.with(|s| s.new_key(None, "management", true))
    }

    /// Hashes of keys created from now on: SHA-256 of the key text (else random).
    pub fn set_sha256_hashes(&self, on: bool) {
        self.with(|s| s.sha256_hashes = on);
    }

    /// Every key on the account: (name, hash, is a management key), oldest first.
    pub fn key_list(&self) -> Vec<(String, String, bool)> {
        self.with(|s| {
            s.keys
                .iter()
                .map(|k| (k.name.clone(), k.hash.clone(), k.management))
                .collect()
        })
    }

    pub fn hash_of(&self, key: &str) -> Option<String> {
        self.with(|s| s.key(key).map(|k| k.hash.clone()))
    }

    pub fn label_of(&self, key: &str) -> Option<String> {
        self.with(|s| s.key(key).map(|k| k.label.clone()))
    }

    /// (limit, limit_reset) of a key, as the fake holds them.
    pub fn limit_of(&self, key: &str) -> Option<(Option<f64>, Option<String>)> {
        self.with(|s| s.key(key).map(|k| (k.limit, k.limit_reset.clone())))
    }

    /// Set a cap directly, as the person would on openrouter.ai.
    pub fn set_limit(&self, key: &str, limit: Option<f64>, reset: Option<&str>) {
        self.with(|s| {
            if let Some(k) = s.key_mut(key) {
                k.limit = limit;
                k.limit_reset = reset.map(str::to_owned);
            }
        });
    }

    pub fn set_disabled(&self, key: &str, disabled: bool) {
        self.with(|s| {
            if let Some(k) = s.key_mut(key) {
                k.disabled = disabled;
            }
        });
    }

    /// The fake's UTC date, which decides the period totals and the activity window.
    pub fn set_today(&self, today: Date) {
        self.with(|s| s.today = today);
    }

    pub fn today(&self) -> Date {
        self.with(|s| s.today)
    }

    /// Credit bought on the account (default $100).
    pub fn set_credits(&self, dollars: f64) {
        self.with(|s| s.total_credits = dollars);
    }

    /// Keys per page of `GET /keys` (default 100, like the real one).
    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = n.max(1));
    }

    /// Whether a request with `key` would be served now: a known, enabled, ordinary key
    /// with room left under its cap and credit left on the account. Other fakes (a model
    /// endpoint) ask this before answering.
    pub fn would_allow(&self, key: &str) -> bool {
        self.with(|s| s.refusal(key).is_none())
    }

    /// [`Self::would_allow`] as a check another fake can hold (a model endpoint that serves
    /// exactly the keys this account would serve now).
    pub fn key_check(&self) -> std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync> {
        let state = self.state.clone();
        std::sync::Arc::new(move |key: &str| {
            let s = match state.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            s.refusal(key).is_none()
        })
    }

    /// One request of `dollars` with `key` to `model` on UTC `date`, as OpenRouter would
    /// bill it: refused with the status the API would answer (401, 402, 403; 400 for an
    /// amount that isn't a non-negative number) when [`Self::would_allow`] says no. The
    /// request that crosses the cap is still billed (its cost isn't known in advance),
    /// the next one is refused.
    pub fn record_spend(
        &self,
        key: &str,
        dollars: f64,
        model: &str,
        date: Date,
    ) -> Result<(), u16> {
        self.with(|s| {
            if !dollars.is_finite() || dollars < 0.0 {
                return Err(400);
            }
            if let Some((status, _)) = s.refusal(key) {
                return Err(status);
            }
            let hash = match s.key_mut(key) {
                Some(k) => {
                    *k.spend.entry(date).or_insert(0.0) += dollars;
                    k.hash.clone()
                }
                None => return Err(401),
            };
            s.activity.push(ActivityEntry {
                date,
                model: model.to_owned(),
                key_hash: hash,
                usage: dollars,
                requests: 1,
            });
            Ok(())
        })
    }

    /// The next `n` usage requests get `status` (with `Retry-After: retry_after` seconds
    /// if given) and the error envelope instead of their answer.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.with(|s| {
            for _ in 0..n {
                s.faults.push_back(Fault::Status {
                    status,
                    retry_after,
                });
            }
        });
    }

    /// The next `n` usage requests get 200 with `body` instead of their answer.
    pub fn garbage_next(&self, n: usize, body: &str) {
        self.with(|s| {
            for _ in 0..n {
                s.faults.push_back(Fault::Body(body.to_owned()));
            }
        });
    }

    /// Drop the injected answers not yet given.
    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Requests to the usage endpoints so far (not the sign-in ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.requests.clone())
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    bearer: Option<String>,
    body: Vec<u8>,
}

async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_owned())
                })
            };
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < pos + 4 + len {
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let mut parts = head.lines().next().unwrap_or("").split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let bearer = header("authorization")
                .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned()));
            return Ok(Some(Request {
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                bearer,
                body: buf[pos + 4..].to_vec(),
            }));
        }
    }
}

async fn handle(mut sock: TcpStream, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let Some(req) = read_request(&mut sock).await? else {
        return Ok(());
    };
    let (status, headers, body) = {
        let mut s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        route(&mut s, &req)
    };
    let reason = match status {
        200 => "OK",
        201 => "Created",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

fn route(s: &mut State, req: &Request) -> Answer {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/auth") => auth_page(s, &req.query),
        ("POST", "/api/v1/auth/keys") => exchange(s, &req.body),
        (_, p) if p.starts_with("/api/v1/") => usage_api(s, req),
        _ => refuse(404, "Not found"),
    }
}

fn auth_page(s: &mut State, query: &str) -> Answer {
    let callback = query_param(query, "callback_url");
    let challenge = query_param(query, "code_challenge");
    let method_ok = query_param(query, "code_challenge_method").as_deref() == Some("S256");
    match (callback, challenge, method_ok) {
        (Some(cb), Some(ch), true) => {
            let location = if s.approve {
                let code = format!("code-{}", uuid::Uuid::new_v4());
                s.codes.insert(code.clone(), ch);
                format!("{cb}?code={code}")
            } else {
                format!("{cb}?error=access_denied")
            };
            (302, vec![("Location".into(), location)], String::new())
        }
        _ => refuse(400, "callback_url and an S256 code_challenge are required"),
    }
}

fn exchange(s: &mut State, body: &[u8]) -> Answer {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let code = v.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let verifier = v
        .get("code_verifier")
        .and_then(|c| c.as_str())
        .unwrap_or("");
    s.exchanges += 1;
    let Some(ch) = s.codes.remove(code) else {
        return refuse(403, "Invalid code");
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != ch || v.get("code_challenge_method").and_then(|m| m.as_str()) != Some("S256") {
        return refuse(400, "Invalid code_verifier");
    }
    // The key is a real key of the fake's account, usable on the usage endpoints.
    let key = s.new_key(None, "Sign in with OpenRouter", false);
    s.issued.push(key.clone());
    reply(200, json!({ "key": key, "user_id": "user_contract_fake" }))
}

fn usage_api(s: &mut State, req: &Request) -> Answer {
    let key_hash = match req.bearer.as_deref() {
        None => "none".to_owned(),
        Some(t) => s
            .key(t)
            .map(|k| k.hash.clone())
            .unwrap_or_else(|| "unknown".to_owned()),
    };
    s.requests.push(RecordedRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        key_hash,
    });
    if let Some(fault) = s.faults.pop_front() {
        return match fault {
            Fault::Status {
                status,
                retry_after,
            } => (
                status,
                retry_after
                    .map(|r| vec![("Retry-After".to_owned(), r.to_string())])
                    .unwrap_or_default(),
                envelope(status, "Injected by the test"),
            ),
            Fault::Body(b) => (200, Vec::new(), b),
        };
    }
    let Some(bearer) = req.bearer.clone() else {
        return refuse(401, "No auth credentials found");
    };
    let Some(caller) = s.key(&bearer).cloned() else {
        return refuse(401, "User not found.");
    };
    if caller.disabled {
        return refuse(401, "This API key is disabled.");
    }
    let rest = req.path.trim_start_matches("/api/v1");
    if (req.method.as_str(), rest) == ("GET", "/key") {
        return reply(200, s.current_key_json(&caller));
    }
    if !caller.management {
        return refuse(403, "Only management keys can perform this operation.");
    }
    match (req.method.as_str(), rest) {
        ("GET", "/credits") => reply(
            200,
            json!({ "data": { "total_credits": s.total_credits, "total_usage": s.total_usage() } }),
        ),
        ("GET", "/activity") => activity(s, &req.query),
        ("GET", "/keys") => list_keys(s, &req.query),
        ("POST", "/keys") => create_key(s, &req.body),
        (m, p) if p.starts_with("/keys/") => {
            let hash = percent_decode(&p["/keys/".len()..]);
            one_key(s, m, &hash, &req.body)
        }
        _ => refuse(404, "Not found"),
    }
}

fn activity(s: &State, query: &str) -> Answer {
    let today = s.today;
    let first = today.checked_sub(time::Duration::days(30)).unwrap_or(today);
    let only = match query_param(query, "date") {
        None => None,
        Some(d) => match parse_date(&d) {
            Some(d) if d >= first && d < today => Some(d),
            _ => {
                return refuse(
                    400,
                    "date must be a YYYY-MM-DD date within the last 30 completed UTC days",
                )
            }
        },
    };
    let key_filter = query_param(query, "api_key_hash");
    let mut rows: BTreeMap<(Date, String), (f64, u64)> = BTreeMap::new();
    for e in &s.activity {
        if e.date < first || e.date >= today || only.is_some_and(|d| d != e.date) {
            continue;
        }
        if key_filter.as_ref().is_some_and(|h| *h != e.key_hash) {
            continue;
        }
        let r = rows.entry((e.date, e.model.clone())).or_insert((0.0, 0));
        r.0 += e.usage;
        r.1 += e.requests;
    }
    let data: Vec<Value> = rows
        .iter()
        .rev()
        .map(|((date, model), (usage, requests))| {
            let provider = model.split('/').next().unwrap_or("unknown");
            let endpoint = hex_digest(model);
            json!({
                "date": date.to_string(),
                "model": model,
                "model_permaslug": format!("{model}-2025-01-01"),
                "endpoint_id": format!("{}-{}-{}-{}-{}", &endpoint[0..8], &endpoint[8..12], &endpoint[12..16], &endpoint[16..20], &endpoint[20..32]),
                "provider_name": provider,
                "usage": usage,
                "byok_usage_inference": 0.0,
                "requests": requests,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "reasoning_tokens": 0,
            })
        })
        .collect();
    reply(200, json!({ "data": data }))
}

fn list_keys(s: &State, query: &str) -> Answer {
    let offset: usize = match query_param(query, "offset").map(|o| o.parse()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return refuse(400, "offset must be a whole number"),
    };
    let include_disabled = query_param(query, "include_disabled").as_deref() == Some("true");
    let data: Vec<Value> = s
        .keys
        .iter()
        .rev()
        .filter(|k| !k.management && (include_disabled || !k.disabled))
        .skip(offset)
        .take(s.page_size)
        .map(|k| s.key_json(k))
        .collect();
    reply(200, json!({ "data": data }))
}

fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Answer> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(refuse(400, "The body must be a JSON object")),
    }
}

/// Validated `limit` and `limit_reset` from a body: `None` when the field is absent.
#[allow(clippy::type_complexity)]
fn limit_fields(
    m: &serde_json::Map<String, Value>,
) -> Result<(Option<Option<f64>>, Option<Option<String>>), Answer> {
    let limit = match m.get("limit") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_f64() {
            Some(l) if l.is_finite() && l >= 0.0 => Some(Some(l)),
            _ => return Err(refuse(400, "limit must be a number of at least 0 or null")),
        },
    };
    let reset = match m.get("limit_reset") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(r)) if ["daily", "weekly", "monthly"].contains(&r.as_str()) => {
            Some(Some(r.clone()))
        }
        Some(_) => {
            return Err(refuse(
                400,
                "limit_reset must be daily, weekly, monthly or null",
            ))
        }
    };
    Ok((limit, reset))
}

fn create_key(s: &mut State, body: &[u8]) -> Answer {
    let m = match parse_object(body) {
        Ok(m) => m,
        Err(a) => return a,
    };
    let name = match m.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => n.to_owned(),
        _ => return refuse(400, "name is required"),
    };
    let (limit, reset) = match limit_fields(&m) {
        Ok(f) => f,
        Err(a) => return a,
    };
    let text = s.new_key(None, &name, false);
    let Some(k) = s.key_mut(&text) else {
        return refuse(500, "Internal error");
    };
    k.limit = limit.flatten();
    k.limit_reset = reset.flatten();
    k.include_byok_in_limit = m
        .get("include_byok_in_limit")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let k = k.clone();
    reply(201, json!({ "data": s.key_json(&k), "key": text }))
}

fn one_key(s: &mut State, method: &str, hash: &str, body: &[u8]) -> Answer {
    let Some(idx) = s.keys.iter().position(|k| k.hash == hash && !k.management) else {
        return refuse(404, "API key not found");
    };
    match method {
        "GET" => {
            let k = s.keys[idx].clone();
            reply(200, json!({ "data": s.key_json(&k) }))
        }
        "DELETE" => {
            s.keys.remove(idx);
            reply(200, json!({ "deleted": true }))
        }
        "PATCH" => {
            let m = match parse_object(body) {
                Ok(m) => m,
                Err(a) => return a,
            };
            let (limit, reset) = match limit_fields(&m) {
                Ok(f) => f,
                Err(a) => return a,
            };
            let k = &mut s.keys[idx];
            if let Some(l) = limit {
                k.limit = l;
            }
            if let Some(r) = reset {
                k.limit_reset = r;
            }
            if let Some(d) = m.get("disabled").and_then(Value::as_bool) {
                k.disabled = d;
            }
            if let Some(n) = m.get("name").and_then(Value::as_str) {
                k.name = n.to_owned();
            }
            if let Some(b) = m.get("include_byok_in_limit").and_then(Value::as_bool) {
                k.include_byok_in_limit = b;
            }
            k.updated_at = Some(now_rfc3339());
            let k = k.clone();
            reply(200, json!({ "data": s.key_json(&k) }))
        }
        _ => refuse(405, "Method not allowed"),
    }
}
