//! OpenAI's Admin API: projects and project service accounts, with an Admin key
//! (`sk-admin-…`, made by an organization owner at platform.openai.com/settings/organization/admin-keys).
//!
//! Shapes from OpenAI's API reference (Administration → Projects, Project service
//! accounts), confirmed through the docs search on 2026-12 (the reference pages and the
//! OpenAPI 2.3.0 schemas `Project`, `ProjectServiceAccount*`):
//!
//! * `GET /organization/projects?limit&after&include_archived` → `{"object":"list",
//!   "data":[{"id":"proj_…","object":"organization.project","name","created_at",
//!   "archived_at"|null,"status":"active"|"archived"}],"first_id","last_id","has_more"}`.
//! * `GET /organization/projects/{project_id}/service_accounts?limit&after` (limit 1–100,
//!   default 20; `after` is the last id of the previous page) → `{"object":"list","data":
//!   [{"object":"organization.project.service_account","id":"svc_acct_…","name","role":
//!   "owner"|"member"|"none","created_at"}],"first_id","last_id","has_more"}` (newer pages
//!   say `first_id`/`last_id` may be null).
//! * `POST /organization/projects/{project_id}/service_accounts` `{name}` →
//!   `{"object":"organization.project.service_account","id","name","role":"member",
//!   "created_at","api_key":{"object":"organization.project.service_account.api_key",
//!   "value":"sk-…","name","created_at","id","expires_at"?}}`: the key's text is in this
//!   answer only. (`api_key` is null when `create_service_account_only` was asked; we
//!   never ask, so a null key is an unreadable answer.)
//! * `DELETE /organization/projects/{project_id}/service_accounts/{service_account_id}` →
//!   `{"object":"organization.project.service_account.deleted","id","deleted":true}`;
//!   the account's keys go with it.
//! * Errors: `{"error":{"message","type","param","code"}}`; 401 a wrong or revoked key,
//!   403 a key that isn't an Admin key (or lacks the permission), 404 an unknown project
//!   or service account, 429 rate limited (with `Retry-After`), 5xx.
//!
//! Not documented, assumed: that `Retry-After` is in seconds (an HTTP date is ignored and
//! the client backs off on its own); that a deleted service account's key is refused at
//! once (the rotation checks it, and deletes again while it isn't).
//!
//! Parsing is in pure functions (`parse_*`, [`decode_error`]), fuzzed
//! (`crates/core/fuzz/fuzz_targets/openai_admin.rs`): no panic on any input, ids usable in
//! a path without escaping, a missing required field is an error, and no message shows key
//! text.

pub use crate::http::RetryPolicy;
use crate::http::{self, ApiError, BearerApi, Failure, Method, Retry};
use crate::problem::UserFacing;
use crate::secret::Secret;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The largest page the list endpoints hand out.
pub const PAGE_SIZE: u32 = 100;
/// A list longer than this many pages is a misbehaving server, not a real organization.
const MAX_PAGES: usize = 100;
/// Largest answer read.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Shortest run of key characters after `sk-` treated as key text (a masked key,
/// `sk-abc...def`, has a few; real keys dozens).
pub const KEY_TEXT_MIN: usize = http::KEY_TEXT_MIN;

// ------------------------------------------------------------------------------ errors

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("OpenAI refused the admin key: {message}")]
    AdminKeyRefused { message: String },
    #[error("OpenAI says this key may not manage the project's service accounts: {message}")]
    Forbidden { message: String },
    #[error("OpenAI doesn't know this {what} (any more): {message}")]
    NotFound { what: &'static str, message: String },
    #[error("OpenAI is receiving too many requests right now{}.", retry_after.map(|d| format!(" (it asks to wait {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("OpenAI is having trouble right now (HTTP {status}).")]
    Unavailable { status: u16 },
    #[error("OpenAI did not answer in time.")]
    Timeout,
    #[error("OpenAI can't be reached: {0}")]
    Unreachable(String),
    #[error("OpenAI sent an answer Clawkeeper can't read: {0}")]
    BadResponse(String),
    #[error("OpenAI refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("Clawkeeper can't send this to OpenAI: {0}")]
    InvalidInput(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether trying the same request again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Unavailable { .. }
                | Error::Timeout
                | Error::Unreachable(_)
        )
    }
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::AdminKeyRefused { .. } => "openai_admin_key_refused",
            Error::Forbidden { .. } => "openai_admin_key_needed",
            Error::NotFound { .. } => "openai_not_found",
            Error::RateLimited { .. } => "provider_rate_limit",
            Error::Unavailable { .. } => "openai_unavailable",
            Error::Timeout => "openai_timeout",
            Error::Unreachable(_) => "openai_unreachable",
            Error::BadResponse(_) => "openai_bad_response",
            Error::Rejected { .. } => "openai_rejected",
            Error::InvalidInput(_) => "openai_invalid_input",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::AdminKeyRefused { .. } => "The admin key may have been deleted. Make a new one at platform.openai.com/settings/organization/admin-keys and give it to Clawkeeper again.",
            Error::Forbidden { .. } => "Use an Admin key (it starts with sk-admin-), made by an organization owner at platform.openai.com/settings/organization/admin-keys; an ordinary API key can't do this.",
            Error::NotFound { .. } => "Check the project id (proj_…) on platform.openai.com/settings/organization/projects and give it again.",
            Error::RateLimited { .. } => "Wait a minute and try again. Clawkeeper already waited and retried.",
            Error::Unavailable { .. } | Error::Timeout => "Try again in a few minutes; status.openai.com shows whether OpenAI has a problem.",
            Error::Unreachable(_) => "Check your internet connection and try again.",
            Error::BadResponse(_) => "Try again later. If it keeps happening, something between you and OpenAI may be altering the connection.",
            Error::Rejected { .. } => "Try again. If it keeps happening, please report it to Clawkeeper.",
            Error::InvalidInput(_) => "Check what you entered and try again.",
        })
    }
}

/// A provider text made safe to show: no key text (`sk-` followed by [`KEY_TEXT_MIN`] or
/// more key characters becomes `sk-<redacted>`; a masked key is kept), no control
/// characters, bounded, never empty.
pub fn clean_text(raw: &str) -> String {
    http::tidy(&http::redact_keys(raw, "sk-"))
}

/// The error for a non-2xx answer (OpenAI's envelope `{"error":{"message",…}}`), by the
/// HTTP status. `what`: what a 404 is about ("project", "service account").
pub fn decode_error(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    what: &'static str,
) -> Error {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(clean_text)
        })
        .unwrap_or_else(|| "no details".to_owned());
    match status {
        401 => Error::AdminKeyRefused { message },
        403 => Error::Forbidden { message },
        404 => Error::NotFound { what, message },
        408 => Error::Timeout,
        429 => Error::RateLimited { retry_after },
        500..=599 => Error::Unavailable { status },
        _ => Error::Rejected { status, message },
    }
}

// ------------------------------------------------------------------------------ models

/// A project of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    /// `active` or `archived`.
    pub archived: bool,
    pub created_at: Option<i64>,
}

/// A project's service account (a bot member with its own API keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: String,
    pub name: String,
    /// `owner`, `member` or `none`.
    pub role: String,
    pub created_at: Option<i64>,
}

/// A service account just made, with its key's text (shown by OpenAI this once).
#[derive(Debug, Clone)]
pub struct CreatedServiceAccount {
    pub account: ServiceAccount,
    pub key: Secret,
    /// The key's id (`key_…`), not its text.
    pub key_id: String,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    pub last_id: Option<String>,
}

// ----------------------------------------------------------------------------- parsing

fn bad(msg: impl Into<String>) -> Error {
    Error::BadResponse(msg.into())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a true/false value",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn root(body: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(bad(format!(
            "the answer is {}, not an object",
            kind(&other)
        ))),
        Err(e) => Err(bad(format!("not JSON ({e})"))),
    }
}

/// An id usable in a path without escaping (`proj_…`, `svc_acct_…`).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn id(m: &Map<String, Value>, field: &str) -> Result<String> {
    match m.get(field) {
        Some(Value::String(s)) if valid_id(s) => Ok(s.clone()),
        Some(Value::String(_)) => Err(bad(format!("'{field}' has unexpected characters"))),
        Some(other) => Err(bad(format!("'{field}' is {}, not text", kind(other)))),
        None => Err(bad(format!("'{field}' is missing"))),
    }
}

fn opt_id(m: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => id(m, field).map(Some),
    }
}

fn text(m: &Map<String, Value>, field: &str) -> Result<String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(String::new()),
        Some(Value::String(s)) => Ok(clean_text(s)),
        Some(other) => Err(bad(format!("'{field}' is {}, not text", kind(other)))),
    }
}

fn time(m: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|t| *t >= 0)
            .map(Some)
            .ok_or_else(|| bad(format!("'{field}' is not a time"))),
        Some(other) => Err(bad(format!("'{field}' is {}, not a number", kind(other)))),
    }
}

fn object_is(m: &Map<String, Value>, want: &str) -> Result<()> {
    match m.get("object") {
        // Tolerated when absent; a different type is a different answer.
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(Value::String(s)) => Err(bad(format!("expected {want}, got '{}'", clean_text(s)))),
        Some(other) => Err(bad(format!("'object' is {}", kind(other)))),
    }
}

fn page<T>(body: &[u8], item: impl Fn(&Value) -> Result<T>) -> Result<Page<T>> {
    let m = root(body)?;
    object_is(&m, "list")?;
    let data = match m.get("data") {
        Some(Value::Array(a)) => a.iter().map(item).collect::<Result<Vec<T>>>()?,
        Some(other) => return Err(bad(format!("'data' is {}, not a list", kind(other)))),
        None => return Err(bad("the answer has no 'data'")),
    };
    let has_more = match m.get("has_more") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(bad(format!("'has_more' is {}", kind(other)))),
    };
    Ok(Page {
        data,
        has_more,
        last_id: opt_id(&m, "last_id")?,
    })
}

fn project(v: &Value) -> Result<Project> {
    let Value::Object(m) = v else {
        return Err(bad(format!("a project is {}", kind(v))));
    };
    object_is(m, "organization.project")?;
    let archived = match m.get("status") {
        Some(Value::String(s)) if s == "active" => false,
        Some(Value::String(s)) if s == "archived" => true,
        Some(Value::String(s)) => {
            return Err(bad(format!("unknown project status '{}'", clean_text(s))))
        }
        // Without a status: archived if it says when.
        None | Some(Value::Null) => !matches!(m.get("archived_at"), None | Some(Value::Null)),
        Some(other) => return Err(bad(format!("'status' is {}", kind(other)))),
    };
    Ok(Project {
        id: id(m, "id")?,
        name: text(m, "name")?,
        archived,
        created_at: time(m, "created_at")?,
    })
}

fn service_account(v: &Value) -> Result<ServiceAccount> {
    let Value::Object(m) = v else {
        return Err(bad(format!("a service account is {}", kind(v))));
    };
    object_is(m, "organization.project.service_account")?;
    Ok(ServiceAccount {
        id: id(m, "id")?,
        name: text(m, "name")?,
        role: text(m, "role")?,
        created_at: time(m, "created_at")?,
    })
}

/// `GET /organization/projects` (one page).
pub fn parse_projects(body: &[u8]) -> Result<Page<Project>> {
    page(body, project)
}

/// `GET /organization/projects/{id}/service_accounts` (one page).
pub fn parse_service_accounts(body: &[u8]) -> Result<Page<ServiceAccount>> {
    page(body, service_account)
}

/// `POST /organization/projects/{id}/service_accounts`: the account and its key's text.
pub fn parse_created_service_account(body: &[u8]) -> Result<CreatedServiceAccount> {
    let v = Value::Object(root(body)?);
    let account = service_account(&v)?;
    let key = match v.get("api_key") {
        Some(Value::Object(k)) => k,
        None | Some(Value::Null) => return Err(bad("the answer has no API key")),
        Some(other) => return Err(bad(format!("'api_key' is {}", kind(other)))),
    };
    object_is(key, "organization.project.service_account.api_key")?;
    let value = match key.get("value") {
        Some(Value::String(s)) if !s.trim().is_empty() => Secret::new(s.trim()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad("the answer has no key text"))
        }
        Some(other) => return Err(bad(format!("the key's 'value' is {}", kind(other)))),
    };
    Ok(CreatedServiceAccount {
        account,
        key: value,
        key_id: opt_id(key, "id")?.unwrap_or_default(),
    })
}

/// `DELETE …/service_accounts/{id}`: `{"object":"….deleted","id","deleted":true}`; the id.
pub fn parse_deleted(body: &[u8]) -> Result<String> {
    let m = root(body)?;
    object_is(&m, "organization.project.service_account.deleted")?;
    match m.get("deleted") {
        Some(Value::Bool(true)) => id(&m, "id"),
        Some(Value::Bool(false)) => Err(bad("OpenAI says the service account was not deleted")),
        Some(other) => Err(bad(format!("'deleted' is {}", kind(other)))),
        None => Err(bad("the answer has no 'deleted'")),
    }
}

fn check_id(s: &str, what: &str) -> Result<()> {
    if valid_id(s) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("that is not a {what} id")))
    }
}

// ------------------------------------------------------------------------------ client

/// A client of OpenAI's Admin API. Holds no key: each call takes the admin key.
#[derive(Clone)]
pub struct OpenAiAdmin {
    api: BearerApi,
}

impl std::fmt::Debug for OpenAiAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiAdmin")
            .field("base", &self.api.base_url())
            .finish_non_exhaustive()
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Timeout => Error::Timeout,
            Failure::Unreachable(message) => Error::Unreachable(clean_text(&message)),
            Failure::TooLarge => bad("the answer is too large"),
        }
    }
}

impl ApiError for Error {
    fn retry(&self) -> Retry {
        match self {
            Error::RateLimited { retry_after } => Retry::RateLimited(*retry_after),
            Error::Unavailable { .. } | Error::Timeout | Error::Unreachable(_) => Retry::Unclear,
            _ => Retry::Never,
        }
    }
}

impl OpenAiAdmin {
    /// `base`: the API root including `/v1` (a contract fake in tests).
    pub fn with_base_url(base: &str, policy: RetryPolicy) -> Result<Self> {
        Ok(Self {
            api: BearerApi::new(base, policy, MAX_BODY)?,
        })
    }

    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    /// One request with bounded retries ([`BearerApi::call`]): 429 always (honouring
    /// `Retry-After` up to the policy's limit), 5xx, timeouts and broken connections only
    /// when repeating is harmless (not a create). `what`: what a 404 is about.
    #[tracing::instrument(level = "debug", skip(self, key, body), fields(path = %path))]
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        key: &Secret,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        self.api
            .call(
                method,
                path,
                query,
                body,
                key,
                |status, bytes, retry_after| decode_error(status, bytes, retry_after, what),
            )
            .await
    }

    /// The organization's active projects (every page).
    pub async fn projects(&self, admin: &Secret) -> Result<Vec<Project>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", PAGE_SIZE.to_string())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let body = self
                .call(
                    Method::Get,
                    "/organization/projects",
                    &query,
                    None,
                    admin,
                    "organization",
                )
                .await?;
            let p = parse_projects(&body)?;
            let last = p
                .last_id
                .clone()
                .or_else(|| p.data.last().map(|x| x.id.clone()));
            out.extend(p.data.into_iter().filter(|x| !x.archived));
            match (p.has_more, last) {
                (true, Some(l)) if after.as_deref() != Some(l.as_str()) => after = Some(l),
                (true, _) => return Err(bad("the project list doesn't move on")),
                (false, _) => return Ok(out),
            }
        }
        Err(bad(format!(
            "the project list has more than {MAX_PAGES} pages"
        )))
    }

    /// The service accounts of `project` (every page).
    pub async fn service_accounts(
        &self,
        admin: &Secret,
        project: &str,
    ) -> Result<Vec<ServiceAccount>> {
        check_id(project, "project")?;
        let path = format!("/organization/projects/{project}/service_accounts");
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", PAGE_SIZE.to_string())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let body = self
                .call(Method::Get, &path, &query, None, admin, "project")
                .await?;
            let p = parse_service_accounts(&body)?;
            let last = p
                .last_id
                .clone()
                .or_else(|| p.data.last().map(|x| x.id.clone()));
            out.extend(p.data);
            match (p.has_more, last) {
                (true, Some(l)) if after.as_deref() != Some(l.as_str()) => after = Some(l),
                (true, _) => return Err(bad("the service account list doesn't move on")),
                (false, _) => return Ok(out),
            }
        }
        Err(bad(format!(
            "the service account list has more than {MAX_PAGES} pages"
        )))
    }

    /// A new service account named `name` in `project`, with a key whose text is in the
    /// answer only. Not repeated after an unclear failure (it could make two): the caller
    /// finds it again by its name.
    pub async fn create_service_account(
        &self,
        admin: &Secret,
        project: &str,
        name: &str,
    ) -> Result<CreatedServiceAccount> {
        check_id(project, "project")?;
        if name.trim().is_empty() || name.len() > 200 {
            return Err(Error::InvalidInput(
                "a service account needs a short name".into(),
            ));
        }
        let body = self
            .call(
                Method::Post,
                &format!("/organization/projects/{project}/service_accounts"),
                &[],
                Some(&json!({ "name": name })),
                admin,
                "project",
            )
            .await?;
        parse_created_service_account(&body)
    }

    /// Delete the service account `id` of `project` (and its keys).
    pub async fn delete_service_account(
        &self,
        admin: &Secret,
        project: &str,
        id: &str,
    ) -> Result<()> {
        check_id(project, "project")?;
        check_id(id, "service account")?;
        let body = self
            .call(
                Method::Delete,
                &format!("/organization/projects/{project}/service_accounts/{id}"),
                &[],
                None,
                admin,
                "service account",
            )
            .await?;
        let deleted = parse_deleted(&body)?;
        if deleted != id {
            return Err(bad("OpenAI deleted a different service account"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = r#"{"object":"organization.project.service_account","id":"svc_acct_abc",
        "name":"Production App","role":"member","created_at":1711471533,
        "api_key":{"object":"organization.project.service_account.api_key",
        "value":"sk-abcdefghijklmnop123","name":"Secret Key","created_at":1711471533,"id":"key_abc"}}"#;

    #[test]
    fn openai_created_service_account_parses_the_documented_example() {
        let c = parse_created_service_account(CREATED.as_bytes()).unwrap();
        assert_eq!(c.account.id, "svc_acct_abc");
        assert_eq!(c.account.name, "Production App");
        assert_eq!(c.account.role, "member");
        assert_eq!(c.account.created_at, Some(1711471533));
        assert_eq!(c.key.expose(), "sk-abcdefghijklmnop123");
        assert_eq!(c.key_id, "key_abc");
        assert!(!format!("{c:?}").contains("abcdefghijklmnop"));
        for body in [
            r#"{"object":"organization.project.service_account","id":"svc_acct_abc","name":"n","api_key":null}"#,
            r#"{"id":"svc_acct_abc","api_key":{"value":""}}"#,
            r#"{"id":"svc_acct_abc","api_key":{"value":7}}"#,
            r#"{"id":"../x","api_key":{"value":"sk-x"}}"#,
            r#"{"api_key":{"value":"sk-x"}}"#,
            r#"{"object":"list","id":"svc_acct_abc","api_key":{"value":"sk-x"}}"#,
            r#"[]"#,
            "<html>",
        ] {
            let e = parse_created_service_account(body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), "openai_bad_response", "{body}");
        }
    }

    #[test]
    fn openai_lists_parse_with_and_without_cursors() {
        let p = parse_service_accounts(
            br#"{"object":"list","data":[{"object":"organization.project.service_account",
            "id":"svc_acct_abc","name":"Service Account","role":"owner","created_at":1711471533}],
            "first_id":"svc_acct_abc","last_id":"svc_acct_xyz","has_more":false}"#,
        )
        .unwrap();
        assert_eq!(p.data.len(), 1);
        assert_eq!(p.data[0].role, "owner");
        assert_eq!(p.last_id.as_deref(), Some("svc_acct_xyz"));
        assert!(!p.has_more);
        let p = parse_service_accounts(
            br#"{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}"#,
        )
        .unwrap();
        assert!(p.data.is_empty() && p.last_id.is_none());
        let p = parse_projects(
            br#"{"object":"list","data":[{"id":"proj_abc","object":"organization.project",
            "name":"Project example","created_at":1711471533,"archived_at":null,"status":"active"},
            {"id":"proj_old","object":"organization.project","name":"Old","created_at":1,
            "archived_at":2,"status":"archived"}],"first_id":"proj_abc","last_id":"proj_old",
            "has_more":true}"#,
        )
        .unwrap();
        assert_eq!(p.data.len(), 2);
        assert!(!p.data[0].archived && p.data[1].archived);
        assert!(p.has_more);
        for body in [
            r#"{"object":"list","data":{}}"#,
            r#"{"object":"list"}"#,
            r#"{"object":"list","data":[{"id":"a b"}]}"#,
            r#"{"object":"list","data":[{"id":"proj_a","status":"gone"}]}"#,
            r#"{"object":"list","data":[],"has_more":"yes"}"#,
            r#"{"object":"list","data":[],"last_id":"x/y"}"#,
            r#"{"object":"list","data":[{"id":"proj_a","created_at":-1}]}"#,
        ] {
            assert!(parse_projects(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn openai_deleted_answer() {
        assert_eq!(
            parse_deleted(
                br#"{"object":"organization.project.service_account.deleted","id":"svc_acct_abc","deleted":true}"#
            )
            .unwrap(),
            "svc_acct_abc"
        );
        assert!(parse_deleted(br#"{"id":"svc_acct_abc","deleted":false}"#).is_err());
        assert!(parse_deleted(br#"{"id":"svc_acct_abc"}"#).is_err());
        assert!(parse_deleted(br#"{"deleted":true}"#).is_err());
    }

    #[test]
    fn openai_errors_follow_the_status_and_hide_keys() {
        let env = |msg: &str| {
            json!({"error":{"message":msg,"type":"invalid_request_error","param":null,"code":null}})
                .to_string()
                .into_bytes()
        };
        let e = decode_error(
            401,
            &env("Incorrect API key provided: sk-admin-0123456789abcdefghij. You can find your API key at …"),
            None,
            "project",
        );
        assert_eq!(e.code(), "openai_admin_key_refused");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("sk-<redacted>"), "{shown}");
        let e = decode_error(403, &env("Missing scopes"), None, "project");
        assert_eq!(e.code(), "openai_admin_key_needed");
        let e = decode_error(404, &env("No such project"), None, "project");
        assert!(e.to_string().contains("this project"), "{e}");
        let e = decode_error(429, b"", Some(Duration::from_secs(3)), "project");
        assert!(e.is_transient() && e.to_string().contains("3 s"));
        let e = decode_error(503, b"<html>", None, "project");
        assert_eq!(e.code(), "openai_unavailable");
        let e = decode_error(400, b"not json", None, "project");
        assert!(e.to_string().contains("no details"));
        // A masked key stays (it tells which key without being one).
        assert_eq!(clean_text("key sk-abc...xyz\n"), "key sk-abc...xyz");
        assert!(check_id("proj_a/../b", "project").is_err());
        assert!(check_id("proj_abc-1", "project").is_ok());
    }
}
