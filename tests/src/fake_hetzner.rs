//! A **contract fake** of the Hetzner Cloud API (<https://docs.hetzner.cloud>), in process.
//!
//! It follows the documented request and response shapes for what Clawkeeper uses:
//!
//! * `Authorization: Bearer <token>` on every call, else 401 `unauthorized`;
//! * errors as `{"error":{"code","message","details"}}` with the documented HTTP status per
//!   code (`invalid_input` 400 with `details.fields[{name,messages}]`, `uniqueness_error`
//!   409, `resource_limit_exceeded` 403, `rate_limit_exceeded` 429, `locked` 423, …);
//! * `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (Unix seconds when the
//!   budget is full again) on every answer, one request refilled per interval; 429 when it
//!   is used up;
//! * lists with `page`/`per_page` and `meta.pagination {page, per_page, previous_page,
//!   next_page, last_page, total_entries}`, `label_selector` (`k=v`, `k`, comma = and);
//! * `GET /server_types` (with per-location prices as decimal strings, one deprecated type),
//!   `GET /locations`, `POST/GET/DELETE /ssh_keys`, `POST/GET/DELETE /firewalls` (a firewall
//!   still applied to a server can't be deleted: `resource_in_use`),
//!   `POST /firewalls/{id}/actions/set_rules`, `POST/GET/DELETE /servers` (201 `{server,
//!   action, next_actions, root_password}`; `user_data` over 32768 bytes is `invalid_input`;
//!   status `initializing` → `running` once its action is done; the public IPv4 is the one the
//!   test configures, i.e. the test host's), `GET /actions/{id}` (`running` with progress,
//!   then `success`).
//!
//! Faults can be injected ("the next N calls to `POST /servers` fail with `conflict`",
//! garbage bodies, dropped connections — before or after the call took effect). A ledger
//! keeps every resource ever created and deleted, a chosen request can be held after it took
//! effect (the moment a test kills the client), and the fake adds up the simulated time it
//! made clients wait (action and boot durations), so benchmarks can subtract it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Hetzner's documented `user_data` limit.
pub const MAX_USER_DATA: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct FakeHetznerConfig {
    pub token: String,
    /// The public IPv4 every new server gets (the test host's address).
    pub server_ipv4: String,
    /// How long each action runs before `success`.
    pub action_duration: Duration,
    /// Extra time a server stays `starting` after its create action finished.
    pub boot_duration: Duration,
    /// The largest page the fake hands out (the real API: 50). Small values force paging.
    pub max_per_page: u32,
    /// The rate-limit budget (the real API: 3600).
    pub rate_limit: u64,
    /// One request of budget comes back per interval (the real API: 1 s).
    pub refill_every: Duration,
    /// Servers allowed in the project (`resource_limit_exceeded` beyond).
    pub server_limit: usize,
    /// Called when a server is created, with the public keys of its `ssh_keys` and its
    /// `user_data`: what cloud-init does on a real server (a test puts the keys into the
    /// test host that stands in for it).
    pub on_server_created: Option<BootHook>,
}

/// See [`FakeHetznerConfig::on_server_created`].
/// `(public keys, user_data)`.
pub type BootFn = dyn Fn(&[String], &str) + Send + Sync;

#[derive(Clone)]
pub struct BootHook(pub std::sync::Arc<BootFn>);

impl std::fmt::Debug for BootHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootHook")
    }
}

impl Default for FakeHetznerConfig {
    fn default() -> Self {
        Self {
            token: "contract-fake-hetzner-token".into(),
            server_ipv4: "127.0.0.1".into(),
            action_duration: Duration::from_millis(30),
            boot_duration: Duration::from_millis(20),
            max_per_page: 50,
            rate_limit: 3600,
            refill_every: Duration::from_millis(1),
            server_limit: 10,
            on_server_created: None,
        }
    }
}

/// How an injected fault answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The documented envelope with this code and its documented status; not carried out.
    Code(&'static str),
    /// 200 with a body that is not JSON; not carried out.
    Garbage,
    /// The connection is closed without an answer; not carried out.
    Drop,
    /// Carried out, then the connection is closed without an answer (the client can't know
    /// whether it happened).
    DropAfterApply,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Without `/v1`, e.g. `/servers`.
    pub path: String,
    pub query: String,
    pub body_len: usize,
    pub authorized: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerEvent {
    Created,
    Deleted,
}

/// One line of the ledger of resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// `server`, `firewall` or `ssh_key`.
    pub kind: &'static str,
    pub id: u64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub event: LedgerEvent,
}

struct ServerRec {
    json: Value,
    ready_at: Instant,
    delete_at: Option<Instant>,
}

struct ActionRec {
    json: Value,
    started: Instant,
    done_at: Instant,
}

struct FaultRule {
    method: String,
    path: String,
    left: u32,
    fault: Fault,
}

struct State {
    cfg: FakeHetznerConfig,
    /// Tokens of the project made since the start (the person's new ones), beside `cfg.token`.
    extra_tokens: Vec<String>,
    /// `cfg.token` was deleted in the Console.
    first_deleted: bool,
    next_id: u64,
    ssh_keys: BTreeMap<u64, Value>,
    firewalls: BTreeMap<u64, Value>,
    servers: BTreeMap<u64, ServerRec>,
    actions: BTreeMap<u64, ActionRec>,
    faults: Vec<FaultRule>,
    remaining: u64,
    last_refill: Instant,
    requests: Vec<RecordedRequest>,
    ledger: Vec<LedgerEntry>,
    simulated_wait: Duration,
    hold: Hold,
}

/// See [`ContractFakeHetzner::hold_request`].
struct Hold {
    /// 1-based number of the request (over the fake's life) to hold.
    at: Option<usize>,
    /// The held request is waiting for its release.
    waiting: bool,
    /// A permit when the held request has been carried out and is waiting.
    reached: Arc<Semaphore>,
    /// A permit lets the held answer go.
    release: Arc<Semaphore>,
}

pub struct ContractFakeHetzner {
    base_url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for ContractFakeHetzner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = Full<Bytes>;

impl ContractFakeHetzner {
    pub async fn start(cfg: FakeHetznerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            extra_tokens: Vec::new(),
            first_deleted: false,
            remaining: cfg.rate_limit,
            cfg,
            next_id: 100,
            ssh_keys: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            servers: BTreeMap::new(),
            actions: BTreeMap::new(),
            faults: Vec::new(),
            last_refill: Instant::now(),
            requests: Vec::new(),
            ledger: Vec::new(),
            simulated_wait: Duration::ZERO,
            hold: Hold {
                at: None,
                waiting: false,
                reached: Arc::new(Semaphore::new(0)),
                release: Arc::new(Semaphore::new(0)),
            },
        }));
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
            base_url,
            state,
            task,
        })
    }

    /// `http://127.0.0.1:<port>/v1`: what the client takes as its base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn token(&self) -> String {
        self.with(|s| s.cfg.token.clone())
    }

    /// A new API token of the same project, as the person makes one in the Console.
    pub fn add_token(&self) -> String {
        let token = format!(
            "contract-fake-hetzner-token-{}",
            uuid::Uuid::new_v4().simple()
        );
        self.with(|s| s.extra_tokens.push(token.clone()));
        token
    }

    /// The person deletes `token` in the Console: from then on it gets 401.
    pub fn delete_token(&self, token: &str) {
        self.with(|s| {
            if s.cfg.token == token {
                s.first_deleted = true;
            }
            s.extra_tokens.retain(|t| t != token);
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// The next `n` calls to `method path` (path without `/v1`, ids included, e.g.
    /// `/servers` or `/actions/104`; a trailing `*` matches any rest) fail with `fault`.
    pub fn fail_next(&self, method: &str, path: &str, n: u32, fault: Fault) {
        self.with(|s| {
            s.faults.push(FaultRule {
                method: method.to_owned(),
                path: path.to_owned(),
                left: n,
                fault,
            })
        });
    }

    /// Request number `n` (1-based, counted over the fake's life: `requests().len() + k` is
    /// the k-th request from now) is carried out as usual, and then its answer is held until
    /// [`Self::release`]. A test waits for it with [`Self::held`] and kills the client in
    /// that moment: the crash lands exactly between "done at the provider" and "the app
    /// knows".
    pub fn hold_request(&self, n: usize) {
        self.with(|s| s.hold.at = Some(n));
    }

    /// Waits until the request chosen with [`Self::hold_request`] is being held.
    pub async fn held(&self) {
        let reached = self.with(|s| Arc::clone(&s.hold.reached));
        let permit = reached.acquire().await;
        if let Ok(p) = permit {
            p.forget();
        }
    }

    /// Lets a held answer go (to a client that may be gone) and holds nothing more.
    pub fn release(&self) {
        self.with(|s| {
            s.hold.at = None;
            if std::mem::take(&mut s.hold.waiting) {
                s.hold.release.add_permits(1);
            }
        });
    }

    /// Set the rate-limit budget left right now.
    pub fn set_rate_remaining(&self, remaining: u64) {
        self.with(|s| {
            s.remaining = remaining;
            s.last_refill = Instant::now();
        });
    }

    pub fn set_refill_every(&self, every: Duration) {
        self.with(|s| s.cfg.refill_every = every);
    }

    pub fn set_server_limit(&self, limit: usize) {
        self.with(|s| s.cfg.server_limit = limit);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.requests.clone())
    }

    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.with(|s| s.ledger.clone())
    }

    /// Resources of `kind` ever created.
    pub fn created(&self, kind: &str) -> usize {
        self.with(|s| {
            s.ledger
                .iter()
                .filter(|e| e.kind == kind && e.event == LedgerEvent::Created)
                .count()
        })
    }

    /// Resources of `kind` that exist now (a server being deleted still exists).
    pub fn live(&self, kind: &str) -> usize {
        self.with(|s| {
            tick(s, Instant::now());
            match kind {
                "server" => s.servers.len(),
                "firewall" => s.firewalls.len(),
                "ssh_key" => s.ssh_keys.len(),
                _ => 0,
            }
        })
    }

    /// Total simulated waiting the fake imposed (action and boot durations).
    pub fn simulated_wait(&self) -> Duration {
        self.with(|s| s.simulated_wait)
    }
}

/// What cloud-init does with `ssh_keys` on a real server, for a test host standing in for
/// it: put them in root's authorized_keys. And a `cloud-init` command that is still busy for
/// a few seconds (as on a real first boot), so a test sees provisioning wait for
/// `cloud-init status --wait` (it leaves `/var/tmp/ck-cloud-init-waited`).
/// `root` is the test host's root directory. A failure to write it fails the test.
pub fn cloud_init_stand_in(root: std::path::PathBuf) -> BootHook {
    use std::os::unix::fs::PermissionsExt;
    fn write(root: &std::path::Path, keys: &[String]) -> std::io::Result<()> {
        install_busy_cloud_init(root, 3)?;
        let dir = root.join("root/.ssh");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("authorized_keys"), keys.join("\n") + "\n")?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
    }
    // A host that could not be prepared must fail the test here, with the reason.
    #[allow(clippy::panic)]
    BootHook(Arc::new(move |keys: &[String], user_data: &str| {
        assert!(user_data.starts_with("#cloud-config"), "{user_data}");
        if let Err(e) = write(&root, keys) {
            panic!("cloud-init stand-in: writing the test host's root: {e}");
        }
    }))
}

/// A `cloud-init` command in the test host at `root` whose `status --wait` is busy for
/// `busy_s` seconds, as on a real first boot, then leaves `/var/tmp/ck-cloud-init-waited`.
pub fn install_busy_cloud_init(root: &std::path::Path, busy_s: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("usr/local/bin/cloud-init");
    std::fs::write(
        &bin,
        format!("#!/bin/sh\n# Test stand-in for cloud-init's status command.\n[ \"$1 $2\" = \"status --wait\" ] || exit 2\nsleep {busy_s}\ndate +%s > /var/tmp/ck-cloud-init-waited\necho 'status: done'\n"),
    )?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
}

// ------------------------------------------------------------------------------ handling

fn status_for(code: &str) -> StatusCode {
    let n = match code {
        "unauthorized" => 401,
        "forbidden"
        | "token_readonly"
        | "resource_limit_exceeded"
        | "server_limit_exceeded"
        | "protected"
        | "resource_unavailable" => 403,
        "not_found" => 404,
        "invalid_input" | "json_error" | "unsupported_error" => 400,
        "uniqueness_error" | "conflict" => 409,
        "deprecated_api_endpoint" => 410,
        "resource_in_use" => 422,
        "locked" => 423,
        "rate_limit_exceeded" => 429,
        "server_error" => 500,
        "maintenance" | "unavailable" | "service_error" => 503,
        "timeout" => 504,
        _ => 422,
    };
    StatusCode::from_u16(n).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

fn envelope(code: &str, message: &str, details: Value) -> (StatusCode, Value) {
    (
        status_for(code),
        json!({"error": {"code": code, "message": message, "details": details}}),
    )
}

fn invalid(field: &str, message: &str) -> (StatusCode, Value) {
    envelope(
        "invalid_input",
        &format!("invalid input in field '{field}'"),
        json!({"fields": [{"name": field, "messages": [message]}]}),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 3 <= b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `k=v`, `k==v`, `k!=v`, `k`, joined with commas (all must hold).
fn matches_selector(labels: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
        if let Some((k, v)) = term.split_once("!=") {
            get(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k) == Some(v.trim())
        } else {
            get(term).is_some()
        }
    })
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.get("labels")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// One page of `items` under `key`, with the documented `meta.pagination`.
fn page(items: Vec<Value>, key: &str, q: &BTreeMap<String, String>, max_per_page: u32) -> Value {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(25)
        .clamp(1, max_per_page.clamp(1, 50)) as usize;
    let total = items.len();
    let last_page = total.div_ceil(per_page).max(1);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json!({
        key: slice,
        "meta": {"pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
            "next_page": if page < last_page { json!(page + 1) } else { Value::Null },
            "last_page": last_page,
            "total_entries": total,
        }}
    })
}

fn price(hourly: &str, monthly: &str) -> Value {
    json!({"net": hourly, "gross": monthly})
}

fn server_types() -> Vec<Value> {
    // Test data in the documented shape; not Hetzner's real catalogue or prices.
    let locs = ["fsn1", "nbg1", "hel1"];
    let t = |id: u64,
             name: &str,
             cores: u32,
             mem: f64,
             disk: u64,
             arch: &str,
             hourly: &str,
             monthly: &str,
             deprecated: bool| {
        json!({
            "id": id, "name": name, "description": name.to_uppercase(), "cores": cores, "memory": mem,
            "disk": disk, "architecture": arch, "cpu_type": "shared", "storage_type": "local",
            "deprecated": deprecated,
            "deprecation": if deprecated { json!({"announced": "2025-06-01T00:00:00+00:00", "unavailable_after": "2025-09-01T00:00:00+00:00"}) } else { Value::Null },
            "prices": locs.iter().map(|l| json!({
                "location": l,
                "price_hourly": {"net": hourly, "gross": hourly},
                "price_monthly": {"net": monthly, "gross": monthly},
                "included_traffic": 21990232555520u64,
                "price_per_tb_traffic": price("1.0000000000", "1.1900000000"),
            })).collect::<Vec<_>>(),
        })
    };
    vec![
        t(
            1,
            "cx11",
            1,
            2.0,
            20,
            "x86",
            "0.0050000000",
            "3.0000000000",
            true,
        ),
        t(
            2,
            "cx23",
            2,
            4.0,
            40,
            "x86",
            "0.0060000000",
            "3.5000000000",
            false,
        ),
        t(
            3,
            "cax11",
            2,
            4.0,
            40,
            "arm",
            "0.0061000000",
            "3.7900000000",
            false,
        ),
        t(
            4,
            "cpx21",
            3,
            4.0,
            80,
            "x86",
            "0.0120000000",
            "7.5500000000",
            false,
        ),
        t(
            5,
            "ccx13",
            2,
            8.0,
            80,
            "x86",
            "0.0240000000",
            "14.8600000000",
            false,
        ),
    ]
}

fn locations() -> Vec<Value> {
    let l = |id: u64, name: &str, city: &str, country: &str, zone: &str| {
        json!({"id": id, "name": name, "description": format!("{city} DC"), "city": city, "country": country,
               "latitude": 0.0, "longitude": 0.0, "network_zone": zone})
    };
    vec![
        l(1, "fsn1", "Falkenstein", "DE", "eu-central"),
        l(2, "nbg1", "Nuremberg", "DE", "eu-central"),
        l(3, "hel1", "Helsinki", "FI", "eu-central"),
        l(4, "ash", "Ashburn, VA", "US", "us-east"),
        l(5, "hil", "Hillsboro, OR", "US", "us-west"),
        l(6, "sin", "Singapore", "SG", "ap-southeast"),
    ]
}

/// Apply the passage of time: finished deletions take effect.
fn tick(s: &mut State, now: Instant) {
    let gone: Vec<u64> = s
        .servers
        .iter()
        .filter(|(_, r)| r.delete_at.is_some_and(|t| t <= now))
        .map(|(id, _)| *id)
        .collect();
    for id in gone {
        if let Some(rec) = s.servers.remove(&id) {
            for fw in s.firewalls.values_mut() {
                if let Some(Value::Array(applied)) = fw.get_mut("applied_to") {
                    applied.retain(|a| a.pointer("/server/id").and_then(Value::as_u64) != Some(id));
                }
            }
            s.ledger.push(LedgerEntry {
                kind: "server",
                id,
                name: rec.json["name"].as_str().unwrap_or_default().to_owned(),
                labels: labels_of(&rec.json),
                event: LedgerEvent::Deleted,
            });
        }
    }
}

fn new_id(s: &mut State) -> u64 {
    s.next_id += 1;
    s.next_id
}

fn new_action(s: &mut State, command: &str, resources: Value) -> Value {
    let id = new_id(s);
    let now = Instant::now();
    let d = s.cfg.action_duration;
    s.simulated_wait += d;
    let json = json!({"id": id, "command": command, "status": "running", "progress": 0,
        "started": "2026-01-01T00:00:00+00:00", "finished": null, "resources": resources, "error": null});
    s.actions.insert(
        id,
        ActionRec {
            json: json.clone(),
            started: now,
            done_at: now + d,
        },
    );
    json
}

fn action_view(rec: &ActionRec, now: Instant) -> Value {
    let mut v = rec.json.clone();
    if now >= rec.done_at {
        v["status"] = json!("success");
        v["progress"] = json!(100);
        v["finished"] = json!("2026-01-01T00:00:01+00:00");
    } else {
        let total = rec
            .done_at
            .duration_since(rec.started)
            .as_secs_f64()
            .max(1e-9);
        let pct = (now.duration_since(rec.started).as_secs_f64() / total * 100.0) as u64;
        v["progress"] = json!(pct.min(99));
    }
    v
}

fn server_view(rec: &ServerRec, now: Instant) -> Value {
    let mut v = rec.json.clone();
    v["status"] = json!(if rec.delete_at.is_some() {
        "deleting"
    } else if now >= rec.ready_at {
        "running"
    } else {
        "initializing"
    });
    v
}

fn fingerprint(public_key: &str) -> String {
    let d = Sha256::digest(public_key.trim().as_bytes());
    d.iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn valid_labels(body: &Value) -> bool {
    match body.get("labels") {
        None | Some(Value::Null) => true,
        Some(Value::Object(o)) => o
            .values()
            .all(|v| v.as_str().is_some_and(|s| s.len() <= 63)),
        _ => false,
    }
}

fn ok(status: StatusCode, v: Value) -> (StatusCode, Value) {
    (status, v)
}

/// Route one authorized request: status and JSON body (Null for 204).
fn route(
    s: &mut State,
    method: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    body: &Value,
) -> (StatusCode, Value) {
    let now = Instant::now();
    tick(s, now);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let id_at = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
    let selector = q.get("label_selector").cloned().unwrap_or_default();
    let max_pp = s.cfg.max_per_page;
    match (method, parts.as_slice()) {
        ("GET", ["server_types"]) => ok(
            StatusCode::OK,
            page(server_types(), "server_types", q, max_pp),
        ),
        ("GET", ["locations"]) => ok(StatusCode::OK, page(locations(), "locations", q, max_pp)),

        // ---- SSH keys
        ("GET", ["ssh_keys"]) => {
            let items = s
                .ssh_keys
                .values()
                .filter(|k| matches_selector(&k["labels"], &selector))
                .cloned()
                .collect();
            ok(StatusCode::OK, page(items, "ssh_keys", q, max_pp))
        }
        ("POST", ["ssh_keys"]) => {
            let (Some(name), Some(key)) = (str_field(body, "name"), str_field(body, "public_key"))
            else {
                return invalid(
                    if str_field(body, "name").is_none() {
                        "name"
                    } else {
                        "public_key"
                    },
                    "is required",
                );
            };
            if !valid_labels(body) {
                return invalid("labels", "invalid labels");
            }
            if s.ssh_keys.values().any(|k| k["name"] == name) {
                return envelope(
                    "uniqueness_error",
                    "SSH key with the same name already exists",
                    json!({"fields": [{"name": "name"}]}),
                );
            }
            let fp = fingerprint(key);
            if s.ssh_keys.values().any(|k| k["fingerprint"] == fp.as_str()) {
                return envelope(
                    "uniqueness_error",
                    "SSH key with the same fingerprint already exists",
                    json!({"fields": [{"name": "public_key"}]}),
                );
            }
            let id = new_id(s);
            let v = json!({"id": id, "name": name, "fingerprint": fp, "public_key": key,
                "labels": body.get("labels").cloned().unwrap_or(json!({})), "created": "2026-01-01T00:00:00+00:00"});
            s.ledger.push(LedgerEntry {
                kind: "ssh_key",
                id,
                name: name.to_owned(),
                labels: labels_of(&v),
                event: LedgerEvent::Created,
            });
            s.ssh_keys.insert(id, v.clone());
            ok(StatusCode::CREATED, json!({"ssh_key": v}))
        }
        ("GET", ["ssh_keys", _]) => match id_at(1).and_then(|id| s.ssh_keys.get(&id)) {
            Some(k) => ok(StatusCode::OK, json!({"ssh_key": k})),
            None => envelope("not_found", "SSH key not found", json!({})),
        },
        ("DELETE", ["ssh_keys", _]) => {
            match id_at(1).and_then(|id| s.ssh_keys.remove(&id).map(|k| (id, k))) {
                Some((id, k)) => {
                    s.ledger.push(LedgerEntry {
                        kind: "ssh_key",
                        id,
                        name: k["name"].as_str().unwrap_or_default().into(),
                        labels: labels_of(&k),
                        event: LedgerEvent::Deleted,
                    });
                    ok(StatusCode::NO_CONTENT, Value::Null)
                }
                None => envelope("not_found", "SSH key not found", json!({})),
            }
        }

        // ---- firewalls
        ("GET", ["firewalls"]) => {
            let items = s
                .firewalls
                .values()
                .filter(|f| matches_selector(&f["labels"], &selector))
                .cloned()
                .collect();
            ok(StatusCode::OK, page(items, "firewalls", q, max_pp))
        }
        ("POST", ["firewalls"]) => {
            let Some(name) = str_field(body, "name") else {
                return invalid("name", "is required");
            };
            if !valid_labels(body) {
                return invalid("labels", "invalid labels");
            }
            let rules = body.get("rules").cloned().unwrap_or(json!([]));
            if let Err(msg) = check_rules(&rules) {
                return invalid("rules", &msg);
            }
            if s.firewalls.values().any(|f| f["name"] == name) {
                return envelope(
                    "uniqueness_error",
                    "firewall with the same name already exists",
                    json!({"fields": [{"name": "name"}]}),
                );
            }
            let id = new_id(s);
            let v = json!({"id": id, "name": name, "labels": body.get("labels").cloned().unwrap_or(json!({})),
                "rules": rules, "applied_to": [], "created": "2026-01-01T00:00:00+00:00"});
            s.ledger.push(LedgerEntry {
                kind: "firewall",
                id,
                name: name.to_owned(),
                labels: labels_of(&v),
                event: LedgerEvent::Created,
            });
            s.firewalls.insert(id, v.clone());
            ok(StatusCode::CREATED, json!({"firewall": v, "actions": []}))
        }
        ("GET", ["firewalls", _]) => match id_at(1).and_then(|id| s.firewalls.get(&id)) {
            Some(f) => ok(StatusCode::OK, json!({"firewall": f})),
            None => envelope("not_found", "firewall not found", json!({})),
        },
        ("DELETE", ["firewalls", _]) => {
            let Some(id) = id_at(1).filter(|id| s.firewalls.contains_key(id)) else {
                return envelope("not_found", "firewall not found", json!({}));
            };
            let in_use = s.firewalls[&id]["applied_to"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            if in_use {
                return envelope(
                    "resource_in_use",
                    "firewall is still applied to a resource",
                    json!({}),
                );
            }
            if let Some(f) = s.firewalls.remove(&id) {
                s.ledger.push(LedgerEntry {
                    kind: "firewall",
                    id,
                    name: f["name"].as_str().unwrap_or_default().into(),
                    labels: labels_of(&f),
                    event: LedgerEvent::Deleted,
                });
            }
            ok(StatusCode::NO_CONTENT, Value::Null)
        }
        ("POST", ["firewalls", _, "actions", "set_rules"]) => {
            let Some(id) = id_at(1).filter(|id| s.firewalls.contains_key(id)) else {
                return envelope("not_found", "firewall not found", json!({}));
            };
            let rules = body.get("rules").cloned().unwrap_or(json!([]));
            if let Err(msg) = check_rules(&rules) {
                return invalid("rules", &msg);
            }
            if let Some(f) = s.firewalls.get_mut(&id) {
                f["rules"] = rules;
            }
            let a = new_action(
                s,
                "set_firewall_rules",
                json!([{"id": id, "type": "firewall"}]),
            );
            ok(StatusCode::CREATED, json!({"actions": [a]}))
        }

        // ---- servers
        ("GET", ["servers"]) => {
            let items = s
                .servers
                .values()
                .filter(|r| matches_selector(&r.json["labels"], &selector))
                .map(|r| server_view(r, now))
                .collect();
            ok(StatusCode::OK, page(items, "servers", q, max_pp))
        }
        ("POST", ["servers"]) => create_server(s, body, now),
        ("GET", ["servers", _]) => match id_at(1).and_then(|id| s.servers.get(&id)) {
            Some(r) => ok(StatusCode::OK, json!({"server": server_view(r, now)})),
            None => envelope("not_found", "server not found", json!({})),
        },
        ("DELETE", ["servers", _]) => {
            let Some(id) = id_at(1).filter(|id| s.servers.contains_key(id)) else {
                return envelope("not_found", "server not found", json!({}));
            };
            let a = new_action(s, "delete_server", json!([{"id": id, "type": "server"}]));
            let d = s.cfg.action_duration;
            if let Some(r) = s.servers.get_mut(&id) {
                r.delete_at.get_or_insert(now + d);
            }
            ok(StatusCode::OK, json!({"action": a}))
        }

        // ---- actions
        ("GET", ["actions", _]) => match id_at(1).and_then(|id| s.actions.get(&id)) {
            Some(a) => ok(StatusCode::OK, json!({"action": action_view(a, now)})),
            None => envelope("not_found", "action not found", json!({})),
        },
        _ => envelope("not_found", "no such endpoint", json!({})),
    }
}

fn check_rules(rules: &Value) -> Result<(), String> {
    let Some(list) = rules.as_array() else {
        return Err("rules must be a list".into());
    };
    for r in list {
        let dir = r.get("direction").and_then(Value::as_str).unwrap_or("");
        let proto = r.get("protocol").and_then(Value::as_str).unwrap_or("");
        if !matches!(dir, "in" | "out") {
            return Err(format!("direction {dir:?}"));
        }
        if !matches!(proto, "tcp" | "udp" | "icmp" | "esp" | "gre") {
            return Err(format!("protocol {proto:?}"));
        }
        if matches!(proto, "tcp" | "udp") && r.get("port").and_then(Value::as_str).is_none() {
            return Err("port is required for tcp and udp".into());
        }
        let ips = if dir == "in" {
            "source_ips"
        } else {
            "destination_ips"
        };
        if r.get(ips)
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
        {
            return Err(format!("{ips} is required"));
        }
    }
    Ok(())
}

fn create_server(s: &mut State, body: &Value, now: Instant) -> (StatusCode, Value) {
    let Some(name) = str_field(body, "name") else {
        return invalid("name", "is required");
    };
    let Some(server_type) = str_field(body, "server_type") else {
        return invalid("server_type", "is required");
    };
    let Some(image) = str_field(body, "image") else {
        return invalid("image", "is required");
    };
    if let Some(ud) = body.get("user_data").and_then(Value::as_str) {
        if ud.len() > MAX_USER_DATA {
            return invalid("user_data", "user_data must not be longer than 32768 bytes");
        }
    }
    if !server_types().iter().any(|t| t["name"] == server_type) {
        return invalid("server_type", "server type not found");
    }
    let location = str_field(body, "location").unwrap_or("fsn1");
    if !locations().iter().any(|l| l["name"] == location) {
        return invalid("location", "location not found");
    }
    if !valid_labels(body) {
        return invalid("labels", "invalid labels");
    }
    let keys: Vec<u64> = body
        .get("ssh_keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if keys.iter().any(|k| !s.ssh_keys.contains_key(k)) {
        return invalid("ssh_keys", "SSH key not found");
    }
    let firewalls: Vec<u64> = body
        .get("firewalls")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.get("firewall").and_then(Value::as_u64))
                .collect()
        })
        .unwrap_or_default();
    if firewalls.iter().any(|f| !s.firewalls.contains_key(f)) {
        return invalid("firewalls", "firewall not found");
    }
    if s.servers.values().any(|r| r.json["name"] == name) {
        return envelope(
            "uniqueness_error",
            "server name is already used",
            json!({"fields": [{"name": "name"}]}),
        );
    }
    if s.servers.len() >= s.cfg.server_limit {
        return envelope(
            "resource_limit_exceeded",
            "server limit exceeded",
            json!({"limits": [{"name": "project_limits.server"}]}),
        );
    }
    let id = new_id(s);
    for f in &firewalls {
        if let Some(Value::Array(applied)) = s
            .firewalls
            .get_mut(f)
            .and_then(|fw| fw.get_mut("applied_to"))
        {
            applied.push(json!({"type": "server", "server": {"id": id}}));
        }
    }
    let server = json!({
        "id": id, "name": name, "status": "initializing", "created": "2026-01-01T00:00:00+00:00",
        "public_net": {
            "ipv4": {"id": id + 5000, "ip": s.cfg.server_ipv4, "blocked": false, "dns_ptr": format!("static.{id}.example")},
            "ipv6": {"id": id + 6000, "ip": format!("2001:db8:{id:x}::/64"), "blocked": false, "dns_ptr": []},
            "floating_ips": [],
            "firewalls": firewalls.iter().map(|f| json!({"id": f, "status": "applied"})).collect::<Vec<_>>(),
        },
        "server_type": {"name": server_type},
        "datacenter": {"name": format!("{location}-dc1"), "location": {"name": location}},
        "image": {"name": image},
        "labels": body.get("labels").cloned().unwrap_or(json!({})),
    });
    let action = new_action(s, "create_server", json!([{"id": id, "type": "server"}]));
    let start = new_action(s, "start_server", json!([{"id": id, "type": "server"}]));
    if let Some(hook) = &s.cfg.on_server_created {
        let public: Vec<String> = keys
            .iter()
            .filter_map(|k| s.ssh_keys.get(k))
            .filter_map(|k| k["public_key"].as_str().map(str::to_owned))
            .collect();
        let user_data = body.get("user_data").and_then(Value::as_str).unwrap_or("");
        (hook.0)(&public, user_data);
    }
    let boot = s.cfg.boot_duration;
    s.simulated_wait += boot;
    let ready_at = now + s.cfg.action_duration + boot;
    s.ledger.push(LedgerEntry {
        kind: "server",
        id,
        name: name.to_owned(),
        labels: labels_of(&server),
        event: LedgerEvent::Created,
    });
    s.servers.insert(
        id,
        ServerRec {
            json: server.clone(),
            ready_at,
            delete_at: None,
        },
    );
    let mut view = server;
    view["status"] = json!("initializing");
    ok(
        StatusCode::CREATED,
        json!({"server": view, "action": action, "next_actions": [start],
               "root_password": if keys.is_empty() { json!("contract-fake-root-password") } else { Value::Null }}),
    )
}

enum Outcome {
    Answer(StatusCode, Value),
    Garbage,
    Drop,
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().as_str().to_owned();
    let full_path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let path = full_path
        .strip_prefix("/v1")
        .unwrap_or(&full_path)
        .to_owned();

    let (outcome, limit, remaining, reset, hold) = {
        let mut s = st.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let now = Instant::now();
        // Refill the budget.
        let every = s.cfg.refill_every.max(Duration::from_micros(1));
        let refills = (now.duration_since(s.last_refill).as_nanos() / every.as_nanos()) as u64;
        if refills > 0 {
            s.remaining = (s.remaining + refills).min(s.cfg.rate_limit);
            s.last_refill += every * u32::try_from(refills).unwrap_or(u32::MAX);
        }
        let bearer = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
        let authorized = bearer.is_some_and(|t| {
            (t == s.cfg.token && !s.first_deleted) || s.extra_tokens.iter().any(|x| x == t)
        });
        s.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body_len: bytes.len(),
            authorized,
        });
        let outcome = if s.remaining == 0 {
            let (st, v) = envelope(
                "rate_limit_exceeded",
                "limit of 3600 requests per hour reached",
                json!({}),
            );
            Outcome::Answer(st, v)
        } else {
            s.remaining -= 1;
            if !authorized {
                let (st, v) = envelope("unauthorized", "unable to authenticate", json!({}));
                Outcome::Answer(st, v)
            } else {
                let fault = s.faults.iter_mut().find(|f| {
                    f.left > 0
                        && f.method == method
                        && (f.path == path
                            || f.path
                                .strip_suffix('*')
                                .is_some_and(|p| path.starts_with(p)))
                });
                let fault = fault.map(|f| {
                    f.left -= 1;
                    f.fault.clone()
                });
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    match serde_json::from_slice(&bytes) {
                        Ok(v) => v,
                        Err(_) => {
                            let (st, v) =
                                envelope("json_error", "invalid JSON in request", json!({}));
                            return Ok(respond(st, &v, &s));
                        }
                    }
                };
                let q = query_map(&query);
                match fault {
                    Some(Fault::Code(code)) => {
                        let details = if code == "invalid_input" {
                            json!({"fields": [{"name": "server_type", "messages": ["injected"]}]})
                        } else {
                            json!({})
                        };
                        let (st, v) = envelope(code, &format!("injected {code}"), details);
                        Outcome::Answer(st, v)
                    }
                    Some(Fault::Garbage) => Outcome::Garbage,
                    Some(Fault::Drop) => Outcome::Drop,
                    Some(Fault::DropAfterApply) => {
                        let _ = route(&mut s, &method, &path, &q, &body);
                        Outcome::Drop
                    }
                    None => {
                        let (st, v) = route(&mut s, &method, &path, &q, &body);
                        Outcome::Answer(st, v)
                    }
                }
            }
        };
        let limit = s.cfg.rate_limit;
        let missing = limit.saturating_sub(s.remaining);
        let reset = unix_now() + (every.as_secs_f64() * missing as f64).ceil() as u64;
        let hold = (s.hold.at == Some(s.requests.len())).then(|| {
            s.hold.at = None;
            s.hold.waiting = true;
            (Arc::clone(&s.hold.reached), Arc::clone(&s.hold.release))
        });
        (outcome, limit, s.remaining, reset, hold)
    };
    if let Some((reached, release)) = hold {
        reached.add_permits(1);
        let permit = release.acquire().await;
        if let Ok(p) = permit {
            p.forget();
        }
    }
    let mut response = match outcome {
        Outcome::Drop => return Err(std::io::Error::other("connection dropped (injected)")),
        Outcome::Garbage => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<html><body>502 Bad Gateway</body>",
            )));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        Outcome::Answer(status, v) => {
            let body = if v.is_null() {
                Bytes::new()
            } else {
                Bytes::from(v.to_string())
            };
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    };
    add_rate_headers(&mut response, limit, remaining, reset);
    Ok(response)
}

fn add_rate_headers(r: &mut Response<Body>, limit: u64, remaining: u64, reset: u64) {
    for (k, v) in [
        ("ratelimit-limit", limit),
        ("ratelimit-remaining", remaining),
        ("ratelimit-reset", reset),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            r.headers_mut().insert(k, v);
        }
    }
}

fn respond(status: StatusCode, v: &Value, s: &State) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let missing = s.cfg.rate_limit.saturating_sub(s.remaining);
    let reset = unix_now() + (s.cfg.refill_every.as_secs_f64() * missing as f64).ceil() as u64;
    add_rate_headers(&mut r, s.cfg.rate_limit, s.remaining, reset);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_pages() {
        let labels = json!({"clawkeeper-instance": "a1", "managed-by": "clawkeeper"});
        assert!(matches_selector(&labels, "clawkeeper-instance=a1"));
        assert!(matches_selector(
            &labels,
            "clawkeeper-instance==a1,managed-by"
        ));
        assert!(!matches_selector(&labels, "clawkeeper-instance=a2"));
        assert!(matches_selector(&labels, ""));
        let q = query_map("label_selector=clawkeeper-instance%3Da1&page=2&per_page=2");
        assert_eq!(q["label_selector"], "clawkeeper-instance=a1");
        let p = page(locations(), "locations", &q, 50);
        assert_eq!(p["meta"]["pagination"]["next_page"], 3);
        assert_eq!(p["meta"]["pagination"]["previous_page"], 1);
        assert_eq!(p["locations"][0]["name"], "hel1");
    }
}
