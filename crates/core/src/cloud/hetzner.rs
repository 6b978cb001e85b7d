//! A thin client of the Hetzner Cloud API (<https://docs.hetzner.cloud>).
//!
//! Why not the generated `hcloud` crate: it exposes neither the `RateLimit-*` headers nor a
//! retry policy, its models are the whole OpenAPI closure (hundreds of types for the dozen
//! fields we read), and a creating POST must never be retried blindly — which only code that
//! knows about our journal can decide. So this is `reqwest` plus small serde models that
//! ignore unknown fields, with:
//!
//! * the error envelope decoded by `code` ([`decode_error`]);
//! * `RateLimit-Limit/Remaining/Reset` read on every answer; with nothing left, the next call
//!   waits until `Reset` (capped, cancellable);
//! * retries with capped exponential backoff and jitter for `rate_limit_exceeded`,
//!   `conflict`, `locked` (refused as a whole, so always safe to repeat) and, for requests
//!   that are safe to repeat (GET, DELETE), also `timeout`, 5xx and broken connections. A
//!   creating POST that may have been carried out is *not* repeated here: the caller looks
//!   it up by label first (see [`super::deploy`]);
//! * every list followed through `meta.pagination.next_page`.

use super::error::{clean_code, clean_message, Error, Result};
use crate::http::{self, Method};
use crate::secret::Secret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1";
/// Hetzner's documented limit for `user_data`.
pub const MAX_USER_DATA: usize = 32 * 1024;
/// The largest page the API hands out.
pub const PER_PAGE: u32 = 50;
/// A list longer than this many pages is a misbehaving server, not a real project.
const MAX_PAGES: u32 = 200;

// ------------------------------------------------------------------------------ models

/// A price as Hetzner writes it: decimal strings (never floats, so nothing is rounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Price {
    #[serde(default)]
    pub net: String,
    #[serde(default)]
    pub gross: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationPrice {
    pub location: String,
    #[serde(default)]
    pub price_hourly: Price,
    #[serde(default)]
    pub price_monthly: Price,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Deprecation {
    #[serde(default)]
    pub announced: Option<String>,
    #[serde(default)]
    pub unavailable_after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerType {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub cores: u32,
    /// GB of memory (the API sends a number that may be fractional).
    #[serde(default)]
    pub memory: f64,
    /// GB of disk.
    #[serde(default)]
    pub disk: u64,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub deprecation: Option<Deprecation>,
    #[serde(default)]
    pub prices: Vec<LocationPrice>,
}

impl ServerType {
    /// The price in `location`, if the type is sold there.
    pub fn price_in(&self, location: &str) -> Option<&LocationPrice> {
        self.prices.iter().find(|p| p.location == location)
    }

    /// Announced for removal: not offered to a person choosing a new server.
    pub fn is_deprecated(&self) -> bool {
        self.deprecation.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub network_zone: String,
}

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub fingerprint: String,
    #[serde(default)]
    pub public_key: String,
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRule {
    /// `in` or `out`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, `esp` or `gre`.
    pub protocol: String,
    /// A port or range (`"22"`, `"41641"`, `"1000-2000"`); absent for icmp/esp/gre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default)]
    pub source_ips: Vec<String>,
    #[serde(default)]
    pub destination_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl FirewallRule {
    /// Inbound from anywhere (IPv4 and IPv6).
    pub fn inbound(protocol: &str, port: &str, description: &str) -> Self {
        Self {
            direction: "in".into(),
            protocol: protocol.into(),
            port: Some(port.into()),
            source_ips: vec!["0.0.0.0/0".into(), "::/0".into()],
            destination_ips: Vec::new(),
            description: Some(description.into()),
        }
    }
}

/// The rules a new instance starts with: SSH in, nothing else. Hetzner firewalls allow all
/// outbound traffic when no `out` rule exists, which provisioning needs (packages, npm).
pub fn initial_rules() -> Vec<FirewallRule> {
    vec![FirewallRule::inbound("tcp", "22", "SSH (Clawkeeper)")]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub rules: Vec<FirewallRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ipv4 {
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ipv6 {
    /// A network (`2001:db8::/64`); the server usually answers on `::1` of it.
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PublicNet {
    #[serde(default)]
    pub ipv4: Option<Ipv4>,
    #[serde(default)]
    pub ipv6: Option<Ipv6>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub id: u64,
    pub name: String,
    /// `initializing`, `starting`, `running`, `stopping`, `off`, `deleting`, …
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub public_net: PublicNet,
    #[serde(default)]
    pub labels: Labels,
}

impl Server {
    pub fn ipv4(&self) -> Option<&str> {
        self.public_net
            .ipv4
            .as_ref()
            .map(|a| a.ip.as_str())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Running,
    Success,
    Error,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: u64,
    #[serde(default)]
    pub command: String,
    pub status: ActionStatus,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub error: Option<ActionError>,
}

/// `meta.pagination` of a list answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct Pagination {
    #[serde(default)]
    pub page: u32,
    #[serde(default)]
    pub per_page: u32,
    #[serde(default)]
    pub previous_page: Option<u32>,
    #[serde(default)]
    pub next_page: Option<u32>,
    #[serde(default)]
    pub last_page: Option<u32>,
    #[serde(default)]
    pub total_entries: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

/// What `POST /servers` answers (201).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedServer {
    pub server: Server,
    pub action: Action,
    #[serde(default)]
    pub next_actions: Vec<Action>,
    // `root_password` is null when SSH keys are given; it is deliberately not read.
}

/// What `POST /servers` needs.
#[derive(Debug, Clone, Serialize)]
pub struct CreateServer {
    pub name: String,
    pub server_type: String,
    pub image: String,
    pub location: String,
    /// SSH key ids.
    pub ssh_keys: Vec<u64>,
    pub firewalls: Vec<u64>,
    /// cloud-init user data, plain text; never a secret.
    pub user_data: String,
    pub labels: Labels,
}

// ----------------------------------------------------------------------------- decoding

/// Decode a successful answer body. Never panics; garbage is [`Error::BadResponse`].
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadResponse(format!("{e}")))
}

/// One page of a list: the items under `key` and the pagination.
pub fn decode_page<T: DeserializeOwned>(body: &[u8], key: &str) -> Result<(Vec<T>, Pagination)> {
    let mut v: Value = decode(body)?;
    let items = v
        .get_mut(key)
        .map(Value::take)
        .ok_or_else(|| Error::BadResponse(format!("the answer has no '{key}' list")))?;
    let items: Vec<T> =
        serde_json::from_value(items).map_err(|e| Error::BadResponse(format!("{key}: {e}")))?;
    let meta: Meta = v
        .get_mut("meta")
        .map(Value::take)
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::BadResponse(format!("meta: {e}")))?
        .unwrap_or_default();
    Ok((items, meta.pagination.unwrap_or_default()))
}

/// The error for a non-2xx answer: from the envelope's `code`, else from the status alone.
pub fn decode_error(status: u16, body: &[u8]) -> Error {
    let envelope: Option<Value> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("error").map(Value::take))
        .filter(Value::is_object);
    let Some(e) = envelope else {
        return match status {
            401 => Error::Unauthorized,
            429 => Error::RateLimited {
                message: "too many requests".into(),
            },
            502..=504 => Error::Timeout {
                message: format!("HTTP {status}"),
            },
            500..=599 => Error::Unavailable {
                code: "server_error".into(),
                message: format!("HTTP {status} without details"),
            },
            _ => Error::Api {
                code: "unknown_error".into(),
                status,
                message: format!("HTTP {status} without details"),
            },
        };
    };
    let code = clean_code(e.get("code").and_then(Value::as_str).unwrap_or(""));
    let message = clean_message(e.get("message").and_then(Value::as_str).unwrap_or(""));
    match code.as_str() {
        "unauthorized" => Error::Unauthorized,
        "token_readonly" => Error::ReadOnlyToken,
        "forbidden" | "protected" => Error::Forbidden { message },
        "invalid_input" | "json_error" => Error::InvalidInput {
            field: invalid_field(&e),
            message,
        },
        "resource_limit_exceeded" | "server_limit_exceeded" => Error::LimitReached { message },
        "uniqueness_error" => Error::NameTaken { message },
        "not_found" => Error::NotFound { message },
        "rate_limit_exceeded" | "limit_reached" => Error::RateLimited { message },
        "conflict" => Error::Conflict { message },
        "locked" => Error::Locked { message },
        "timeout" | "bad_gateway" => Error::Timeout { message },
        "maintenance"
        | "unavailable"
        | "service_error"
        | "server_error"
        | "resource_unavailable" => Error::Unavailable { code, message },
        _ => Error::Api {
            code,
            status,
            message,
        },
    }
}

/// The first field named in `details.fields` of an `invalid_input` error.
fn invalid_field(e: &Value) -> Option<String> {
    let name = e
        .pointer("/details/fields/0/name")
        .and_then(Value::as_str)?;
    let name = clean_message(name);
    (name != "no details").then_some(name)
}

/// The rate-limit state from one answer's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds at which the budget is full again.
    pub reset: u64,
}

/// Read `RateLimit-Limit/Remaining/Reset`; `None` unless all three are numbers.
pub fn parse_rate_limit(
    limit: Option<&str>,
    remaining: Option<&str>,
    reset: Option<&str>,
) -> Option<RateLimit> {
    let n = |s: Option<&str>| s.and_then(|s| s.trim().parse::<u64>().ok());
    Some(RateLimit {
        limit: n(limit)?,
        remaining: n(remaining)?,
        reset: n(reset)?,
    })
}

// ----------------------------------------------------------------------------- the client

/// How hard the client tries before giving up. The defaults suit the real API; tests use
/// [`RetryPolicy::fast`].
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Longest wait for the rate-limit budget before trying anyway (Hetzner refills one
    /// request per second, so `Reset` can be an hour away while the next request is fine
    /// a second later).
    pub max_rate_wait: Duration,
    /// Each request's own timeout.
    pub request_timeout: Duration,
    /// Polling of actions and of a booting server: first and longest interval.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// Longest wait for one action or for a server to come up.
    pub wait_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            max_rate_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            poll_min: Duration::from_millis(500),
            poll_max: Duration::from_secs(3),
            wait_timeout: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// Small waits for tests against a local fake.
    pub fn fast() -> Self {
        Self {
            max_attempts: 4,
            backoff_base: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(40),
            max_rate_wait: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(20),
            wait_timeout: Duration::from_secs(10),
        }
    }

    /// Backoff before attempt `attempt + 1` (attempt counts from 1): base·2^(n-1), capped,
    /// with ±50 % jitter so that two clients don't retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        http::backoff(self.backoff_base, self.backoff_cap, attempt)
    }
}

/// Whether repeating a request after an unclear outcome is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, DELETE (a repeated delete finds `not_found`, which callers accept).
    Safe,
    /// A creating POST: repeated only when the answer proves it was refused.
    Unsafe,
}

/// A Hetzner Cloud API client for one project (one token). Cheap to clone.
#[derive(Clone)]
pub struct HetznerClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    policy: RetryPolicy,
    cancel: CancellationToken,
    rate: Arc<Mutex<Option<RateLimit>>>,
}

impl std::fmt::Debug for HetznerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HetznerClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl HetznerClient {
    /// A client of the real API.
    pub fn new(token: Secret) -> Result<Self> {
        Self::with_base_url(DEFAULT_BASE_URL, token, RetryPolicy::default())
    }

    /// A client of the API at `base` (a contract fake's), or of the real one with `None`.
    pub fn at(base: Option<&str>, token: Secret) -> Result<Self> {
        Self::with_base_url(
            base.unwrap_or(DEFAULT_BASE_URL),
            token,
            RetryPolicy::default(),
        )
    }

    /// A client of the API at `base` (e.g. a contract fake's `http://127.0.0.1:…/v1`).
    pub fn with_base_url(base: &str, token: Secret, policy: RetryPolicy) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("clawkeeper/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.request_timeout)
            .build()
            .map_err(|e| Error::Network {
                message: e.to_string(),
                maybe_applied: false,
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            policy,
            cancel: CancellationToken::new(),
            rate: Arc::new(Mutex::new(None)),
        })
    }

    /// The same client, whose waits end early with [`Error::Cancelled`] when `cancel` fires.
    pub fn with_cancel(&self, cancel: CancellationToken) -> Self {
        Self {
            cancel,
            ..self.clone()
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The rate-limit state from the latest answer.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate.lock().ok().and_then(|r| *r)
    }

    /// Sleep, unless cancelled first.
    pub(crate) async fn sleep(&self, d: Duration) -> Result<()> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    pub(crate) fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// With the budget used up, wait until it resets (capped).
    async fn wait_for_budget(&self) -> Result<()> {
        let Some(rl) = self.rate_limit() else {
            return Ok(());
        };
        if rl.remaining > 0 {
            return Ok(());
        }
        self.sleep(until_reset(rl.reset).min(self.policy.max_rate_wait))
            .await
    }

    fn note_rate(&self, headers: &reqwest::header::HeaderMap) {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        if let Some(rl) = parse_rate_limit(
            h("ratelimit-limit"),
            h("ratelimit-remaining"),
            h("ratelimit-reset"),
        ) {
            if let Ok(mut r) = self.rate.lock() {
                *r = Some(rl);
            }
        }
    }

    /// One request with waits and retries; the body of a 2xx answer.
    #[tracing::instrument(level = "debug", skip(self, body), fields(path = %path))]
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idem: Idempotency,
    ) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.check_cancel()?;
            self.wait_for_budget().await?;
            let mut req = method
                .request(&self.http, &url)
                .bearer_auth(self.token.expose())
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let outcome = tokio::select! {
                _ = self.cancel.cancelled() => return Err(Error::Cancelled),
                r = self.send(req) => r,
            };
            let err = match outcome {
                Ok((status, bytes)) if (200..300).contains(&status) => return Ok(bytes),
                Ok((status, bytes)) => decode_error(status, &bytes),
                Err(e) => e,
            };
            let retry = match &err {
                Error::RateLimited { .. } | Error::Conflict { .. } | Error::Locked { .. } => true,
                Error::Network {
                    maybe_applied: false,
                    ..
                } => true,
                e if e.may_have_applied() => idem == Idempotency::Safe,
                _ => false,
            };
            if !retry || attempt >= self.policy.max_attempts {
                tracing::debug!(code = err.api_code(), attempt, "request failed");
                return Err(err);
            }
            let mut wait = self.policy.backoff(attempt);
            if matches!(err, Error::RateLimited { .. }) {
                if let Some(rl) = self.rate_limit() {
                    wait = wait.max(until_reset(rl.reset).min(self.policy.max_rate_wait));
                }
            }
            tracing::debug!(code = err.api_code(), attempt, ?wait, "retrying");
            self.sleep(wait).await?;
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>)> {
        let res = req.send().await.map_err(|e| Error::Network {
            // A connect error means nothing was sent.
            maybe_applied: !e.is_connect(),
            message: e.without_url().to_string(),
        })?;
        self.note_rate(res.headers());
        let status = res.status().as_u16();
        let bytes = res.bytes().await.map_err(|e| Error::Network {
            maybe_applied: true,
            message: e.without_url().to_string(),
        })?;
        Ok((status, bytes.to_vec()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T> {
        let body = self
            .call(Method::Get, path, &[], None, Idempotency::Safe)
            .await?;
        let mut v: Value = decode(&body)?;
        let item = v
            .get_mut(key)
            .map(Value::take)
            .ok_or_else(|| Error::BadResponse(format!("the answer has no '{key}'")))?;
        serde_json::from_value(item).map_err(|e| Error::BadResponse(format!("{key}: {e}")))
    }

    /// Every item of a list, following `meta.pagination.next_page`.
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", PER_PAGE.to_string()));
            let body = self
                .call(Method::Get, path, &q, None, Idempotency::Safe)
                .await?;
            let (items, pagination) = decode_page::<T>(&body, key)?;
            out.extend(items);
            match pagination.next_page {
                Some(next) if next > page => page = next,
                Some(next) => {
                    return Err(Error::BadResponse(format!(
                        "page {page} of {key} points back to page {next}"
                    )))
                }
                None => return Ok(out),
            }
        }
        Err(Error::BadResponse(format!(
            "{key} has more than {MAX_PAGES} pages"
        )))
    }

    async fn delete(&self, path: &str) -> Result<Vec<u8>> {
        self.call(Method::Delete, path, &[], None, Idempotency::Safe)
            .await
    }

    async fn post(&self, path: &str, body: &Value, idem: Idempotency) -> Result<Vec<u8>> {
        self.call(Method::Post, path, &[], Some(body), idem).await
    }

    // ---- catalogue ----

    /// Server types with their prices per location, as sold today.
    pub async fn server_types(&self) -> Result<Vec<ServerType>> {
        self.list("/server_types", "server_types", &[]).await
    }

    pub async fn locations(&self) -> Result<Vec<Location>> {
        self.list("/locations", "locations", &[]).await
    }

    // ---- SSH keys ----

    pub async fn create_ssh_key(
        &self,
        name: &str,
        public_key: &str,
        labels: &Labels,
    ) -> Result<SshKey> {
        let body = json!({"name": name, "public_key": public_key, "labels": labels});
        let bytes = self.post("/ssh_keys", &body, Idempotency::Unsafe).await?;
        take(&bytes, "ssh_key")
    }

    pub async fn ssh_key(&self, id: u64) -> Result<SshKey> {
        self.get(&format!("/ssh_keys/{id}"), "ssh_key").await
    }

    pub async fn ssh_keys(&self, label_selector: &str) -> Result<Vec<SshKey>> {
        self.list(
            "/ssh_keys",
            "ssh_keys",
            &[("label_selector", label_selector.to_owned())],
        )
        .await
    }

    pub async fn delete_ssh_key(&self, id: u64) -> Result<()> {
        self.delete(&format!("/ssh_keys/{id}")).await.map(drop)
    }

    // ---- firewalls ----

    /// Create a firewall; the actions it answers with (applying it to resources) are
    /// returned for waiting.
    pub async fn create_firewall(
        &self,
        name: &str,
        rules: &[FirewallRule],
        labels: &Labels,
    ) -> Result<(Firewall, Vec<Action>)> {
        let body = json!({"name": name, "rules": rules, "labels": labels});
        let bytes = self.post("/firewalls", &body, Idempotency::Unsafe).await?;
        let firewall = take(&bytes, "firewall")?;
        let actions = take::<Option<Vec<Action>>>(&bytes, "actions")
            .ok()
            .flatten()
            .unwrap_or_default();
        Ok((firewall, actions))
    }

    pub async fn firewall(&self, id: u64) -> Result<Firewall> {
        self.get(&format!("/firewalls/{id}"), "firewall").await
    }

    pub async fn firewalls(&self, label_selector: &str) -> Result<Vec<Firewall>> {
        self.list(
            "/firewalls",
            "firewalls",
            &[("label_selector", label_selector.to_owned())],
        )
        .await
    }

    pub async fn delete_firewall(&self, id: u64) -> Result<()> {
        self.delete(&format!("/firewalls/{id}")).await.map(drop)
    }

    /// Replace a firewall's rules (`POST /firewalls/{id}/actions/set_rules`) and wait.
    /// Setting the same rules twice is harmless, so this is safe to repeat.
    pub async fn set_firewall_rules(&self, id: u64, rules: &[FirewallRule]) -> Result<()> {
        let bytes = self
            .post(
                &format!("/firewalls/{id}/actions/set_rules"),
                &json!({ "rules": rules }),
                Idempotency::Safe,
            )
            .await?;
        let actions: Vec<Action> =
            take::<Option<Vec<Action>>>(&bytes, "actions")?.unwrap_or_default();
        for a in actions {
            self.wait_action(a.id).await?;
        }
        Ok(())
    }

    /// Open an inbound UDP port (e.g. the tailnet's WireGuard port) on a firewall, keeping
    /// its other rules. Does nothing if the rule is already there.
    pub async fn add_udp_rule(
        &self,
        firewall_id: u64,
        port: &str,
        description: &str,
    ) -> Result<()> {
        let fw = self.firewall(firewall_id).await?;
        let rule = FirewallRule::inbound("udp", port, description);
        let present = fw.rules.iter().any(|r| {
            r.direction == rule.direction && r.protocol == rule.protocol && r.port == rule.port
        });
        if present {
            return Ok(());
        }
        let mut rules = fw.rules;
        rules.push(rule);
        self.set_firewall_rules(firewall_id, &rules).await
    }

    // ---- servers ----

    /// Create a server. `user_data` over 32 KiB is refused here, before any request.
    pub async fn create_server(&self, req: &CreateServer) -> Result<CreatedServer> {
        check_user_data(&req.user_data)?;
        let body = json!({
            "name": req.name,
            "server_type": req.server_type,
            "image": req.image,
            "location": req.location,
            "ssh_keys": req.ssh_keys,
            "firewalls": req.firewalls.iter().map(|id| json!({"firewall": id})).collect::<Vec<_>>(),
            "user_data": req.user_data,
            "labels": req.labels,
            "start_after_create": true,
            "public_net": {"enable_ipv4": true, "enable_ipv6": true},
        });
        let bytes = self.post("/servers", &body, Idempotency::Unsafe).await?;
        decode(&bytes)
    }

    pub async fn server(&self, id: u64) -> Result<Server> {
        self.get(&format!("/servers/{id}"), "server").await
    }

    pub async fn servers(&self, label_selector: &str) -> Result<Vec<Server>> {
        self.list(
            "/servers",
            "servers",
            &[("label_selector", label_selector.to_owned())],
        )
        .await
    }

    /// Delete a server; the action that does it.
    pub async fn delete_server(&self, id: u64) -> Result<Action> {
        let bytes = self.delete(&format!("/servers/{id}")).await?;
        take(&bytes, "action")
    }

    // ---- actions ----

    pub async fn action(&self, id: u64) -> Result<Action> {
        self.get(&format!("/actions/{id}"), "action").await
    }

    /// Poll an action until it succeeds (`Ok`) or fails ([`Error::ActionFailed`]), with a
    /// growing interval, up to the policy's wait timeout.
    pub async fn wait_action(&self, id: u64) -> Result<Action> {
        self.wait_action_with(id, &mut |_| {}).await
    }

    /// [`Self::wait_action`], telling `on_poll` about each state seen.
    pub async fn wait_action_with(
        &self,
        id: u64,
        on_poll: &mut (dyn FnMut(&Action) + Send),
    ) -> Result<Action> {
        let deadline = tokio::time::Instant::now() + self.policy.wait_timeout;
        let mut interval = self.policy.poll_min;
        loop {
            let a = self.action(id).await?;
            on_poll(&a);
            match a.status {
                ActionStatus::Success => return Ok(a),
                ActionStatus::Error => {
                    let (code, message) = a
                        .error
                        .as_ref()
                        .map(|e| (clean_code(&e.code), clean_message(&e.message)))
                        .unwrap_or_else(|| ("unknown_error".into(), "no details".into()));
                    return Err(Error::ActionFailed {
                        command: clean_message(&a.command),
                        code,
                        message,
                    });
                }
                ActionStatus::Running | ActionStatus::Unknown => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::WaitTimedOut(format!("Hetzner action {id}")));
            }
            self.sleep(interval).await?;
            interval = (interval * 2).min(self.policy.poll_max);
        }
    }
}

/// Refuse `user_data` the API would refuse, before anything is sent.
pub fn check_user_data(user_data: &str) -> Result<()> {
    if user_data.len() > MAX_USER_DATA {
        Err(Error::UserDataTooLarge(user_data.len()))
    } else {
        Ok(())
    }
}

fn take<T: DeserializeOwned>(body: &[u8], key: &str) -> Result<T> {
    let mut v: Value = decode(body)?;
    let item = v.get_mut(key).map(Value::take).unwrap_or(Value::Null);
    serde_json::from_value(item).map_err(|e| Error::BadResponse(format!("{key}: {e}")))
}

fn until_reset(reset: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Duration::from_secs_f64((reset as f64 - now).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::UserFacing;

    fn envelope(code: &str, details: Value) -> Vec<u8> {
        json!({"error": {"code": code, "message": "msg", "details": details}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn cloud_errors_branch_on_the_envelope_code() {
        let cases = [
            (401, "unauthorized", "cloud_token_refused"),
            (403, "token_readonly", "cloud_token_read_only"),
            (403, "forbidden", "cloud_forbidden"),
            (400, "invalid_input", "cloud_invalid_input"),
            (403, "resource_limit_exceeded", "cloud_limit_reached"),
            (403, "server_limit_exceeded", "cloud_limit_reached"),
            (409, "uniqueness_error", "cloud_name_taken"),
            (404, "not_found", "cloud_not_found"),
            (429, "rate_limit_exceeded", "cloud_rate_limited"),
            (409, "conflict", "cloud_conflict"),
            (423, "locked", "cloud_locked"),
            (504, "timeout", "cloud_timeout"),
            (503, "maintenance", "cloud_unavailable"),
            (503, "unavailable", "cloud_unavailable"),
            (418, "brand_new_code", "cloud_api_error"),
        ];
        for (status, code, want) in cases {
            let e = decode_error(status, &envelope(code, json!({})));
            assert_eq!(e.code(), want, "{code}");
            assert!(e.hint().is_some());
        }
        let e = decode_error(418, &envelope("brand_new_code", json!({})));
        assert_eq!(e.api_code(), Some("brand_new_code"));
    }

    #[test]
    fn cloud_invalid_input_names_the_field() {
        let e = decode_error(
            400,
            &envelope(
                "invalid_input",
                json!({"fields": [{"name": "server_type", "messages": ["unknown"]}]}),
            ),
        );
        assert!(matches!(&e, Error::InvalidInput { field: Some(f), .. } if f == "server_type"));
        assert!(e.to_string().contains("server_type"), "{e}");
    }

    #[test]
    fn cloud_garbage_is_an_error_not_a_panic() {
        for body in [&b""[..], b"{", b"<html>", b"{\"error\":5}", b"\xff\xfe"] {
            let e = decode_error(500, body);
            assert!(!e.to_string().is_empty());
            assert!(decode::<Server>(body).is_err());
        }
        assert_eq!(decode_error(401, b"nope").code(), "cloud_token_refused");
        // A control character in the provider's message doesn't reach the person.
        let e = decode_error(
            409,
            br#"{"error":{"code":"conflict","message":"a\nb\u0007"}}"#,
        );
        assert!(!e.to_string().chars().any(char::is_control));
    }

    #[test]
    fn cloud_pages_and_rate_limits_parse() {
        let body = br#"{"locations":[{"id":1,"name":"fsn1","city":"Falkenstein","country":"DE","network_zone":"eu-central","extra":1}],
            "meta":{"pagination":{"page":1,"per_page":1,"previous_page":null,"next_page":2,"last_page":3,"total_entries":3}}}"#;
        let (items, p) = decode_page::<Location>(body, "locations").unwrap();
        assert_eq!(items[0].city, "Falkenstein");
        assert_eq!(p.next_page, Some(2));
        assert_eq!(p.total_entries, Some(3));
        assert_eq!(
            parse_rate_limit(Some("3600"), Some("0"), Some("1731000000")),
            Some(RateLimit {
                limit: 3600,
                remaining: 0,
                reset: 1_731_000_000
            })
        );
        assert_eq!(parse_rate_limit(Some("x"), Some("0"), Some("1")), None);
    }

    #[test]
    fn cloud_retry_only_what_is_safe() {
        let timeout = decode_error(504, &envelope("timeout", json!({})));
        assert!(timeout.may_have_applied());
        let conflict = decode_error(409, &envelope("conflict", json!({})));
        assert!(!conflict.may_have_applied());
        let p = RetryPolicy::default();
        for n in 1..20 {
            assert!(p.backoff(n) <= p.backoff_cap.mul_f64(1.5));
        }
        assert!(check_user_data(&"a".repeat(MAX_USER_DATA)).is_ok());
        assert!(matches!(
            check_user_data(&"a".repeat(MAX_USER_DATA + 1)),
            Err(Error::UserDataTooLarge(32769))
        ));
    }

    #[test]
    fn cloud_client_debug_hides_the_token() {
        let c = HetznerClient::new(Secret::new("hcloud-secret-token")).unwrap();
        assert!(!format!("{c:?}").contains("hcloud-secret-token"));
    }
}
