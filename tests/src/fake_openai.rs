//! A contract fake of OpenAI's Admin API (projects and project service accounts), following
//! its documented shapes, for what Clawkeeper uses — with an Admin key (`sk-admin-…`) as
//! bearer:
//!
//! * `GET /v1/organization/projects?limit&after&include_archived` → `{"object":"list",
//!   "data":[{id, object:"organization.project", name, created_at, archived_at, status}],
//!   "first_id","last_id","has_more"}` (archived ones only with `include_archived=true`);
//!   `GET /v1/organization/projects/{project_id}` → one project.
//! * `GET /v1/organization/projects/{project_id}/service_accounts?limit&after` → the same
//!   list envelope of `{object:"organization.project.service_account", id, name, role,
//!   created_at}`, oldest first; `limit` 1–100 (default 20), further capped by
//!   [`ContractFakeOpenAi::set_page_size`]; `after` an id of the list.
//! * `POST /v1/organization/projects/{project_id}/service_accounts {name}` → the account
//!   with `role:"member"` and `api_key:{object:"organization.project.service_account.api_key",
//!   value, name:"Secret Key", created_at, id}` — the key text only in this answer.
//! * `GET`/`DELETE /v1/organization/projects/{project_id}/service_accounts/{id}` → the
//!   account / `{object:"organization.project.service_account.deleted", id, deleted:true}`;
//!   its keys die with it.
//!
//! Errors as `{"error":{"message","type","param","code"}}`: 401 an unknown or revoked key
//! (`invalid_api_key`), 403 a live key that isn't an Admin key, 404 an unknown project or
//! service account, 400 a bad body or cursor, and what a test injects
//! ([`ContractFakeOpenAi::fail_next`], optionally for one method only, with `Retry-After`);
//! an injected failure is answered before anything is done.
//!
//! Besides service account keys, a project holds keys the person made in the dashboard
//! ([`ContractFakeOpenAi::add_user_key`]), deleted only by the person
//! ([`ContractFakeOpenAi::delete_user_key`]). [`ContractFakeOpenAi::key_check`] serves a
//! model endpoint (the contract fake model) exactly the keys that are live now.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
struct Fault {
    /// Only requests of this method (`None`: any).
    method: Option<String>,
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Debug, Clone)]
struct Account {
    id: String,
    name: String,
    created_at: i64,
    keys: Vec<String>,
}

#[derive(Debug, Clone)]
struct Project {
    id: String,
    name: String,
    created_at: i64,
    archived_at: Option<i64>,
    accounts: Vec<Account>,
    user_keys: Vec<String>,
}

struct State {
    admin_keys: Vec<String>,
    projects: Vec<Project>,
    page_size: usize,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    clock: i64,
}

/// One request the fake got (never the key).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub at: Instant,
}

pub struct ContractFakeOpenAi {
    origin: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ContractFakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

fn error(status: u16, message: &str, code: Option<&str>) -> Answer {
    let kind = match status {
        401 | 403 | 404 | 400 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    (
        status,
        Vec::new(),
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            .to_string(),
    )
}

/// The masked form OpenAI shows of a key in its messages (`sk-adm...xyz`).
fn mask(key: &str) -> String {
    let head: String = key.chars().take(6).collect();
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}...{tail}")
}

type Answer = (u16, Vec<(String, String)>, String);

impl State {
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    fn project_mut(&mut self, id: &str) -> Option<&mut Project> {
        self.projects.iter_mut().find(|p| p.id == id)
    }

    fn live(&self, key: &str) -> bool {
        self.projects.iter().any(|p| {
            p.user_keys.iter().any(|k| k == key)
                || p.accounts.iter().any(|a| a.keys.iter().any(|k| k == key))
        })
    }
}

fn project_json(p: &Project) -> Value {
    json!({
        "id": p.id,
        "object": "organization.project",
        "name": p.name,
        "created_at": p.created_at,
        "archived_at": p.archived_at,
        "status": if p.archived_at.is_some() { "archived" } else { "active" },
    })
}

fn account_json(a: &Account) -> Value {
    json!({
        "object": "organization.project.service_account",
        "id": a.id,
        "name": a.name,
        "role": "member",
        "created_at": a.created_at,
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// One page of `items` (ids and JSON) after the cursor, as the list endpoints answer.
fn list_page(items: Vec<(String, Value)>, query: &str, page_size: usize) -> Answer {
    let limit = match query_param(query, "limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return error(400, "limit must be between 1 and 100", None),
        },
    }
    .min(page_size);
    let start = match query_param(query, "after") {
        None => 0,
        Some(after) => match items.iter().position(|(id, _)| *id == after) {
            Some(i) => i + 1,
            None => return error(400, "Invalid 'after' cursor", None),
        },
    };
    let page: Vec<&(String, Value)> = items.iter().skip(start).take(limit).collect();
    let has_more = start + page.len() < items.len();
    (
        200,
        Vec::new(),
        json!({
            "object": "list",
            "data": page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            "first_id": page.first().map(|(id, _)| id.clone()),
            "last_id": page.last().map(|(id, _)| id.clone()),
            "has_more": has_more,
        })
        .to_string(),
    )
}

impl ContractFakeOpenAi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            admin_keys: Vec::new(),
            projects: Vec::new(),
            page_size: 100,
            faults: VecDeque::new(),
            requests: Vec::new(),
            clock: 1_711_471_533,
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

    /// The API root for [`clawkeeper_core::openai::OpenAiAdmin`] (`…/v1`).
    pub fn api_base(&self) -> String {
        format!("{}/v1", self.origin)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut s)
    }

    /// A new active project; its id.
    pub fn add_project(&self, name: &str) -> String {
        self.with(|s| {
            let id = format!("proj_{}", random(24));
            let created_at = s.tick();
            s.projects.push(Project {
                id: id.clone(),
                name: name.to_owned(),
                created_at,
                archived_at: None,
                accounts: Vec::new(),
                user_keys: Vec::new(),
            });
            id
        })
    }

    pub fn archive_project(&self, project: &str) {
        self.with(|s| {
            let at = s.tick();
            if let Some(p) = s.project_mut(project) {
                p.archived_at = Some(at);
            }
        })
    }

    /// A new Admin key of the organization; its text.
    pub fn add_admin_key(&self) -> String {
        self.with(|s| {
            let key = format!("sk-admin-{}", random(64));
            s.admin_keys.push(key.clone());
            key
        })
    }

    /// The owner deletes the Admin key.
    pub fn revoke_admin_key(&self, key: &str) {
        self.with(|s| s.admin_keys.retain(|k| k != key))
    }

    /// A key the person made in the dashboard (owned by them, not a service account).
    pub fn add_user_key(&self, project: &str) -> String {
        self.with(|s| {
            let key = format!("sk-proj-{}", random(64));
            if let Some(p) = s.project_mut(project) {
                p.user_keys.push(key.clone());
            }
            key
        })
    }

    /// The person deletes their key in the dashboard; whether it was there.
    pub fn delete_user_key(&self, key: &str) -> bool {
        self.with(|s| {
            s.projects.iter_mut().any(|p| {
                let before = p.user_keys.len();
                p.user_keys.retain(|k| k != key);
                p.user_keys.len() != before
            })
        })
    }

    /// A service account made elsewhere (the dashboard, another tool); (id, key text).
    pub fn add_service_account(&self, project: &str, name: &str) -> (String, String) {
        self.with(|s| {
            let created_at = s.tick();
            let a = Account {
                id: format!("svc_acct_{}", random(24)),
                name: name.to_owned(),
                created_at,
                keys: vec![format!("sk-svcacct-{}", random(64))],
            };
            let out = (a.id.clone(), a.keys[0].clone());
            if let Some(p) = s.project_mut(project) {
                p.accounts.push(a);
            }
            out
        })
    }

    /// The project's service accounts: (id, name), oldest first.
    pub fn service_accounts(&self, project: &str) -> Vec<(String, String)> {
        self.with(|s| {
            s.project(project)
                .map(|p| {
                    p.accounts
                        .iter()
                        .map(|a| (a.id.clone(), a.name.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The service account whose key `key` is.
    pub fn account_of(&self, key: &str) -> Option<String> {
        self.with(|s| {
            s.projects.iter().find_map(|p| {
                p.accounts
                    .iter()
                    .find(|a| a.keys.iter().any(|k| k == key))
                    .map(|a| a.id.clone())
            })
        })
    }

    /// Whether a model request with `key` would be served now.
    pub fn would_allow(&self, key: &str) -> bool {
        self.with(|s| s.live(key))
    }

    /// [`Self::would_allow`] for the contract fake model ([`crate::fake_model::KeyAuth::Check`]).
    pub fn key_check(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        let state = self.state.clone();
        Arc::new(move |key: &str| {
            let s = match state.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            s.live(key)
        })
    }

    /// At most `n` items per list page, whatever `limit` asks.
    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = n.max(1))
    }

    /// The next `n` Admin API requests (of `method` only, if given) get `status` (with
    /// `Retry-After: retry_after` if given) before anything is done.
    pub fn fail_next(&self, n: usize, method: Option<&str>, status: u16, retry_after: Option<u64>) {
        self.with(|s| {
            for _ in 0..n {
                s.faults.push_back(Fault {
                    method: method.map(str::to_owned),
                    status,
                    retry_after,
                });
            }
        })
    }

    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear())
    }

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
        let answer = route(&mut s, &req);
        s.requests.push(RecordedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            status: answer.0,
            at: Instant::now(),
        });
        answer
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
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
    let Some(rest) = req.path.strip_prefix("/v1/organization/") else {
        return error(404, "Unknown request URL", None);
    };
    // Injected failures first, before anything is done.
    let pos = s
        .faults
        .iter()
        .position(|f| f.method.as_deref().is_none_or(|m| m == req.method));
    if let Some(f) = pos.and_then(|i| s.faults.remove(i)) {
        let mut a = error(f.status, "Injected failure", None);
        if let Some(secs) = f.retry_after {
            a.1.push(("Retry-After".into(), secs.to_string()));
        }
        return a;
    }
    match req.bearer.as_deref() {
        Some(k) if s.admin_keys.iter().any(|a| a == k) => {}
        Some(k) if s.live(k) => {
            return error(
                403,
                "You have insufficient permissions for this operation. This endpoint needs an Admin key.",
                None,
            )
        }
        Some(k) => {
            return error(
                401,
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    mask(k)
                ),
                Some("invalid_api_key"),
            )
        }
        None => {
            return error(
                401,
                "You didn't provide an API key.",
                Some("missing_api_key"),
            )
        }
    }
    let parts: Vec<&str> = rest.split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["projects"]) => {
            let archived = query_param(&req.query, "include_archived").as_deref() == Some("true");
            let items = s
                .projects
                .iter()
                .filter(|p| archived || p.archived_at.is_none())
                .map(|p| (p.id.clone(), project_json(p)))
                .collect();
            list_page(items, &req.query, s.page_size)
        }
        ("GET", ["projects", p]) => match s.project(p) {
            Some(p) => (200, Vec::new(), project_json(p).to_string()),
            None => no_project(p),
        },
        ("GET", ["projects", p, "service_accounts"]) => match s.project(p) {
            Some(p) => {
                let items = p
                    .accounts
                    .iter()
                    .map(|a| (a.id.clone(), account_json(a)))
                    .collect();
                list_page(items, &req.query, s.page_size)
            }
            None => no_project(p),
        },
        ("POST", ["projects", p, "service_accounts"]) => {
            let name = serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
                .filter(|n| !n.trim().is_empty());
            let Some(name) = name else {
                return error(400, "'name' is required", None);
            };
            let created_at = s.tick();
            let Some(project) = s.project_mut(p) else {
                return no_project(p);
            };
            if project.archived_at.is_some() {
                return error(400, "Project is archived", None);
            }
            let key = format!("sk-svcacct-{}", random(64));
            let a = Account {
                id: format!("svc_acct_{}", random(24)),
                name,
                created_at,
                keys: vec![key.clone()],
            };
            let mut body = account_json(&a);
            body["api_key"] = json!({
                "object": "organization.project.service_account.api_key",
                "value": key,
                "name": "Secret Key",
                "created_at": created_at,
                "id": format!("key_{}", random(16)),
            });
            project.accounts.push(a);
            (200, Vec::new(), body.to_string())
        }
        (m @ ("GET" | "DELETE"), ["projects", p, "service_accounts", id]) => {
            let Some(project) = s.project_mut(p) else {
                return no_project(p);
            };
            let Some(i) = project.accounts.iter().position(|a| a.id == *id) else {
                return error(404, &format!("No such service account: {id}"), None);
            };
            if m == "GET" {
                return (
                    200,
                    Vec::new(),
                    account_json(&project.accounts[i]).to_string(),
                );
            }
            project.accounts.remove(i);
            (
                200,
                Vec::new(),
                json!({"object": "organization.project.service_account.deleted", "id": id, "deleted": true})
                    .to_string(),
            )
        }
        _ => error(404, "Unknown request URL", None),
    }
}

fn no_project(id: &str) -> Answer {
    error(404, &format!("No such project: {id}"), None)
}
