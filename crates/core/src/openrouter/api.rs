//! OpenRouter's usage and spend-limit API: what a key has spent, the cap set on it, the
//! account's daily activity and credit, and the key management that sets a cap at the
//! provider (issue 6: the cap is enforced by OpenRouter, not by us).
//!
//! Shapes confirmed from OpenRouter's API reference (openrouter.ai/docs/api/api-reference,
//! its OpenAPI pages and the generated TypeScript/Go/Python SDK model pages), read on
//! 2026-11-26 through the docs search:
//!
//! * `GET /key` (any API key) → `{"data":{label, usage, usage_daily, usage_weekly,
//!   usage_monthly, byok_usage…, limit, limit_remaining, limit_reset, is_free_tier,
//!   is_management_key, is_provisioning_key, include_byok_in_limit, expires_at,
//!   rate_limit (deprecated)}}`; `label` is a masked form of the key such as
//!   `sk-or-v1-au7...890`; `limit`/`limit_remaining`/`limit_reset` may be null.
//! * `GET /activity[?date=YYYY-MM-DD]` (management key) → `{"data":[{date, model,
//!   model_permaslug, endpoint_id, provider_name, usage, byok_usage_inference, requests,
//!   prompt_tokens, completion_tokens, reasoning_tokens}]}`, "grouped by endpoint for the
//!   last 30 (completed) UTC days"; `date` filters to one of those days.
//! * `GET /credits` (management key) → `{"data":{total_credits, total_usage}}`.
//! * `GET /keys[?offset=N][&include_disabled=true]` (management key) → `{"data":[{hash,
//!   name, label, disabled, limit, limit_remaining, limit_reset, include_byok_in_limit,
//!   usage, usage_daily, usage_weekly, usage_monthly, byok_usage…, created_at,
//!   updated_at}]}`, "the most recent 100", paginated with `offset`; disabled keys only
//!   with `include_disabled` ("Whether to include disabled API keys in the response").
//! * `PATCH /keys/{hash}` body `{name?, disabled?, limit (number|null), limit_reset
//!   ("daily"|"weekly"|"monthly"|null), include_byok_in_limit?}` → `{"data":{…key…}}`.
//!   Resets happen at midnight UTC; weeks run Monday to Sunday.
//! * `POST /keys` body `{name, limit?, limit_reset?, include_byok_in_limit?}` → 201
//!   `{"data":{…key…}, "key":"sk-or-v1-…"}`: "the plaintext key is returned only in this
//!   response".
//! * `DELETE /keys/{hash}` → `{"deleted": true}`.
//! * Errors: `{"error":{"code":<int>,"message":"…","metadata"?:{…}}}` with the HTTP status
//!   equal to `code`; 401 invalid/disabled key, 402 out of credits (account or the key's
//!   limit), 403 forbidden, 408 timeout, 429 rate limited, 502/503 upstream; on 429 (and
//!   503) a `Retry-After` header may say how many seconds to wait.
//! * The activity endpoint's `api_key_hash` filter is documented as "SHA-256 hex string,
//!   as returned by the keys API".
//!
//! Assumed, not documented: that a key's `hash` is the SHA-256 of the key text (used only
//! as a first, conclusive check in [`OpenRouterApi::find_key_hash`]; the fallback is the
//! masked label, which is documented); that a `limit_remaining` may go slightly negative
//! when the last request crossed the cap (so it alone may be negative); that a key list
//! page shorter than asked for is not a reason to stop (we stop at an empty page).
//!
//! Parsing is in pure functions (`parse_*`, [`decode_error`]) so that it can be fuzzed:
//! no panic on any input, money always finite and never negative, missing optional
//! fields are `None`, a missing required one is an error — never a made-up zero.

use crate::http::{self, ApiError, BearerApi, Failure, Method, Retry};
pub use crate::http::{parse_retry_after, RetryPolicy};
use crate::problem::UserFacing;
use crate::secret::Secret;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// How many keys `GET /keys` returns at most per page (documented: "the most recent 100").
pub const KEYS_PAGE_SIZE: usize = 100;
/// A key list longer than this many pages is a misbehaving server, not a real account.
const MAX_KEY_PAGES: usize = 100;
/// Largest answer we read (activity for 30 days × many models is well under this).
const MAX_BODY: usize = 8 * 1024 * 1024;

// ------------------------------------------------------------------------------ errors

/// Which key a refusal was about, so that the person knows which one to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The ordinary API key the assistant uses.
    Api,
    /// The management key that reads activity and sets caps.
    Management,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("OpenRouter refused the {} key: {message}", role_name(*.role))]
    KeyRefused { role: KeyRole, message: String },
    #[error("OpenRouter says there is not enough credit left, or this key has reached its spending cap: {message}")]
    OutOfCredits { message: String },
    #[error(
        "This needs an OpenRouter management key, and the key Clawkeeper has is not one: {message}"
    )]
    ManagementKeyNeeded { message: String },
    #[error("OpenRouter doesn't know this key (any more): {message}")]
    NotFound { message: String },
    #[error("OpenRouter is receiving too many requests right now{}.", retry_after.map(|d| format!(" (it asks to wait {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("OpenRouter is having trouble right now (HTTP {status}).")]
    Unavailable { status: u16 },
    #[error("OpenRouter did not answer in time.")]
    Timeout,
    #[error("OpenRouter can't be reached: {0}")]
    Unreachable(String),
    #[error("OpenRouter sent an answer Clawkeeper can't read: {0}")]
    BadResponse(String),
    #[error("OpenRouter refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("Clawkeeper couldn't find its API key among the keys of this OpenRouter account.")]
    KeyNotListed,
    #[error("Clawkeeper can't tell which of {count} keys on this OpenRouter account is the one it uses.")]
    KeyAmbiguous { count: usize },
    #[error("Clawkeeper can't send this to OpenRouter: {0}")]
    InvalidInput(String),
}

fn role_name(role: KeyRole) -> &'static str {
    match role {
        KeyRole::Api => "API",
        KeyRole::Management => "management",
    }
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
            // The same codes the chat uses for the provider's refusals.
            Error::KeyRefused { .. } => "provider_auth",
            Error::OutOfCredits { .. } => "provider_billing",
            Error::RateLimited { .. } => "provider_rate_limit",
            Error::ManagementKeyNeeded { .. } => "openrouter_management_key_needed",
            Error::NotFound { .. } => "openrouter_key_not_found",
            Error::Unavailable { .. } => "openrouter_unavailable",
            Error::Timeout => "openrouter_timeout",
            Error::Unreachable(_) => "openrouter_unreachable",
            Error::BadResponse(_) => "openrouter_bad_response",
            Error::Rejected { .. } => "openrouter_rejected",
            Error::KeyNotListed => "openrouter_key_not_listed",
            Error::KeyAmbiguous { .. } => "openrouter_key_ambiguous",
            Error::InvalidInput(_) => "openrouter_invalid_input",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::KeyRefused { role: KeyRole::Api, .. } => "The key may have been deleted or disabled. Sign in with OpenRouter again, or paste a new key from openrouter.ai/settings/keys.",
            Error::KeyRefused { role: KeyRole::Management, .. } => "Create a management key at openrouter.ai/settings/management-keys and paste it into Clawkeeper again.",
            Error::OutOfCredits { .. } => "Add credit at openrouter.ai/settings/credits, or raise the key's spending cap.",
            Error::ManagementKeyNeeded { .. } => "Create a management key at openrouter.ai/settings/management-keys (an ordinary API key can't do this) and paste it into Clawkeeper.",
            Error::NotFound { .. } => "It may have been deleted on openrouter.ai. Sign in with OpenRouter again to get a new key.",
            Error::RateLimited { .. } => "Wait a minute and try again. Clawkeeper already waited and retried.",
            Error::Unavailable { .. } | Error::Timeout => "Try again in a few minutes; status.openrouter.ai shows whether OpenRouter has a problem.",
            Error::Unreachable(_) => "Check your internet connection and try again.",
            Error::BadResponse(_) => "Try again later. If it keeps happening, something between you and OpenRouter may be altering the connection.",
            Error::Rejected { .. } => "Try again. If it keeps happening, please report it to Clawkeeper.",
            Error::KeyNotListed => "Check that the management key belongs to the same OpenRouter account as the API key.",
            Error::KeyAmbiguous { .. } => "Set the spending cap on openrouter.ai/settings/keys yourself, or let Clawkeeper create a new key of its own.",
            Error::InvalidInput(_) => "Check the amount you entered and try again.",
        })
    }
}

/// Shortest run of key characters after `sk-or-` that is treated as key text. A masked
/// label (`sk-or-v1-au7...890`) has 6; a real key 60 and more.
pub const KEY_TEXT_MIN: usize = http::KEY_TEXT_MIN;

/// A provider text made safe to show: no control characters, bounded, and no key text
/// (`sk-or-` followed by [`KEY_TEXT_MIN`] or more key characters is replaced; a masked
/// label is kept), never empty.
pub fn clean_text(raw: &str) -> String {
    http::tidy(&http::redact_keys(raw, "sk-or-"))
}

/// The error for a non-2xx answer: OpenRouter's envelope `{"error":{"code","message"}}`,
/// branched on the HTTP status (which the docs say equals `error.code`). `role` is the key
/// the request was sent with.
pub fn decode_error(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    role: KeyRole,
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
        401 => Error::KeyRefused { role, message },
        402 => Error::OutOfCredits { message },
        403 if role == KeyRole::Management => Error::ManagementKeyNeeded { message },
        404 => Error::NotFound { message },
        408 => Error::Timeout,
        429 => Error::RateLimited { retry_after },
        500..=599 => Error::Unavailable { status },
        _ => Error::Rejected { status, message },
    }
}

// ------------------------------------------------------------------------------ models

/// When a key's spending limit starts over (midnight UTC; weeks start on Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitReset::Daily => "daily",
            LimitReset::Weekly => "weekly",
            LimitReset::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(LimitReset::Daily),
            "weekly" => Some(LimitReset::Weekly),
            "monthly" => Some(LimitReset::Monthly),
            _ => None,
        }
    }
}

/// `GET /key`: the key's own spend and cap, in US dollars.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    /// A masked form of the key (`sk-or-v1-abc...xyz`), safe to show.
    pub label: String,
    /// All-time spend of this key.
    pub usage: f64,
    /// Spend in the current UTC day / ISO week / month (absent from older answers).
    pub usage_daily: Option<f64>,
    pub usage_weekly: Option<f64>,
    pub usage_monthly: Option<f64>,
    /// Spend through the person's own provider keys (BYOK), all time.
    pub byok_usage: Option<f64>,
    /// The spending cap; `None`: no cap.
    pub limit: Option<f64>,
    /// What is left under the cap in the current reset period. May be slightly negative
    /// when the last request went past the cap.
    pub limit_remaining: Option<f64>,
    /// `None`: the cap never resets.
    pub limit_reset: Option<LimitReset>,
    pub is_free_tier: bool,
    pub include_byok_in_limit: bool,
    pub is_management_key: bool,
    pub expires_at: Option<String>,
}

/// One row of `GET /activity`: one model's use on one completed UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    /// `YYYY-MM-DD` (validated).
    pub date: String,
    pub model: String,
    pub model_permaslug: Option<String>,
    pub endpoint_id: Option<String>,
    pub provider_name: Option<String>,
    /// Dollars of OpenRouter credit spent.
    pub usage: f64,
    /// Dollars spent through the person's own provider keys.
    pub byok_usage_inference: Option<f64>,
    pub requests: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

/// `GET /credits`: dollars bought and used on the whole account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Credits {
    pub total_credits: f64,
    pub total_usage: f64,
}

impl Credits {
    /// What is left (negative when the account is overdrawn).
    pub fn remaining(&self) -> f64 {
        self.total_credits - self.total_usage
    }
}

/// One key as the management endpoints describe it (never its text).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// The key's identifier in `/keys/{hash}`.
    pub hash: String,
    pub name: String,
    /// A masked form of the key, or a display name.
    pub label: String,
    pub disabled: bool,
    pub limit: Option<f64>,
    pub limit_remaining: Option<f64>,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    pub usage: f64,
    pub usage_daily: Option<f64>,
    pub usage_weekly: Option<f64>,
    pub usage_monthly: Option<f64>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A key just created: its text (shown by OpenRouter this once) and its description.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: Secret,
    pub info: ApiKey,
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

fn root(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| bad(format!("not JSON ({e})")))
}

fn data_object(v: &Value) -> Result<&Map<String, Value>> {
    match v.get("data") {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(bad(format!("'data' is {}, not an object", kind(other)))),
        None => Err(bad("the answer has no 'data'")),
    }
}

fn data_array(v: &Value) -> Result<&Vec<Value>> {
    match v.get("data") {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(bad(format!("'data' is {}, not a list", kind(other)))),
        None => Err(bad("the answer has no 'data'")),
    }
}

/// A finite number, or `None` when missing or null. `allow_negative` only for amounts that
/// can legitimately be below zero.
fn number(m: &Map<String, Value>, field: &str, allow_negative: bool) -> Result<Option<f64>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("'{field}' is not a finite number")))?;
            if v < 0.0 && !allow_negative {
                return Err(bad(format!("'{field}' is negative ({v})")));
            }
            Ok(Some(v))
        }
        Some(other) => Err(bad(format!("'{field}' is {}, not a number", kind(other)))),
    }
}

/// Dollars that can't be negative, or `None`.
fn money(m: &Map<String, Value>, field: &str) -> Result<Option<f64>> {
    number(m, field, false)
}

fn required_money(m: &Map<String, Value>, field: &str) -> Result<f64> {
    money(m, field)?.ok_or_else(|| bad(format!("'{field}' is missing")))
}

/// A whole, non-negative count (`125` or `125.0`), or `None`.
fn count(m: &Map<String, Value>, field: &str) -> Result<Option<u64>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                // 2^53: above it a float no longer counts exactly.
                Some(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= 9.0e15 => {
                    Ok(Some(f as u64))
                }
                _ => Err(bad(format!(
                    "'{field}' is not a whole number of at least 0"
                ))),
            }
        }
        Some(other) => Err(bad(format!("'{field}' is {}, not a number", kind(other)))),
    }
}

fn text(m: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(clean_field(s))),
        Some(other) => Err(bad(format!("'{field}' is {}, not text", kind(other)))),
    }
}

/// Like [`clean_text`] but keeping an empty value empty.
fn clean_field(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        clean_text(s)
    }
}

fn required_text(m: &Map<String, Value>, field: &str) -> Result<String> {
    text(m, field)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("'{field}' is missing")))
}

fn flag(m: &Map<String, Value>, field: &str) -> Result<bool> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad(format!("'{field}' is {}, not true/false", kind(other)))),
    }
}

fn reset(m: &Map<String, Value>, field: &str) -> Result<Option<LimitReset>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => LimitReset::parse(s).map(Some).ok_or_else(|| {
            bad(format!(
                "'{field}' is an unknown reset period ({})",
                clean_text(s)
            ))
        }),
        Some(other) => Err(bad(format!("'{field}' is {}, not text", kind(other)))),
    }
}

fn valid_date(s: &str) -> bool {
    let format = ::time::macros::format_description!("[year]-[month]-[day]");
    s.len() == 10 && ::time::Date::parse(s, &format).is_ok()
}

/// A hash usable in `/keys/{hash}` without escaping.
fn valid_hash(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /key`.
pub fn parse_key_info(body: &[u8]) -> Result<KeyInfo> {
    let v = root(body)?;
    let d = data_object(&v)?;
    let usage = required_money(d, "usage")?;
    let limit = money(d, "limit")?;
    Ok(KeyInfo {
        label: text(d, "label")?.unwrap_or_default(),
        usage,
        usage_daily: money(d, "usage_daily")?,
        usage_weekly: money(d, "usage_weekly")?,
        usage_monthly: money(d, "usage_monthly")?,
        byok_usage: money(d, "byok_usage")?,
        limit,
        limit_remaining: number(d, "limit_remaining", true)?,
        limit_reset: reset(d, "limit_reset")?,
        is_free_tier: flag(d, "is_free_tier")?,
        include_byok_in_limit: flag(d, "include_byok_in_limit")?,
        is_management_key: flag(d, "is_management_key")? || flag(d, "is_provisioning_key")?,
        expires_at: text(d, "expires_at")?,
    })
}

fn activity_row(item: &Value) -> Result<ActivityRow> {
    let Value::Object(m) = item else {
        return Err(bad(format!("an activity row is {}", kind(item))));
    };
    let date = required_text(m, "date")?;
    if !valid_date(&date) {
        return Err(bad(format!("'date' is not a YYYY-MM-DD date ({date})")));
    }
    Ok(ActivityRow {
        date,
        model: required_text(m, "model")?,
        model_permaslug: text(m, "model_permaslug")?,
        endpoint_id: text(m, "endpoint_id")?,
        provider_name: text(m, "provider_name")?,
        usage: required_money(m, "usage")?,
        byok_usage_inference: money(m, "byok_usage_inference")?,
        requests: count(m, "requests")?.ok_or_else(|| bad("'requests' is missing"))?,
        prompt_tokens: count(m, "prompt_tokens")?,
        completion_tokens: count(m, "completion_tokens")?,
        reasoning_tokens: count(m, "reasoning_tokens")?,
    })
}

/// `GET /activity`.
pub fn parse_activity(body: &[u8]) -> Result<Vec<ActivityRow>> {
    let v = root(body)?;
    data_array(&v)?.iter().map(activity_row).collect()
}

/// `GET /credits`.
pub fn parse_credits(body: &[u8]) -> Result<Credits> {
    let v = root(body)?;
    let d = data_object(&v)?;
    Ok(Credits {
        total_credits: required_money(d, "total_credits")?,
        total_usage: required_money(d, "total_usage")?,
    })
}

fn api_key(item: &Value) -> Result<ApiKey> {
    let Value::Object(m) = item else {
        return Err(bad(format!("a key is {}", kind(item))));
    };
    let hash = match m.get("hash") {
        Some(Value::String(h)) if valid_hash(h) => h.clone(),
        Some(Value::String(_)) => return Err(bad("a key's 'hash' has unexpected characters")),
        Some(other) => return Err(bad(format!("'hash' is {}, not text", kind(other)))),
        None => return Err(bad("'hash' is missing")),
    };
    Ok(ApiKey {
        hash,
        name: text(m, "name")?.unwrap_or_default(),
        label: text(m, "label")?.unwrap_or_default(),
        disabled: flag(m, "disabled")?,
        limit: money(m, "limit")?,
        limit_remaining: number(m, "limit_remaining", true)?,
        limit_reset: reset(m, "limit_reset")?,
        include_byok_in_limit: flag(m, "include_byok_in_limit")?,
        usage: required_money(m, "usage")?,
        usage_daily: money(m, "usage_daily")?,
        usage_weekly: money(m, "usage_weekly")?,
        usage_monthly: money(m, "usage_monthly")?,
        created_at: text(m, "created_at")?,
        updated_at: text(m, "updated_at")?,
    })
}

/// `GET /keys` (one page).
pub fn parse_key_list(body: &[u8]) -> Result<Vec<ApiKey>> {
    let v = root(body)?;
    data_array(&v)?.iter().map(api_key).collect()
}

/// `GET /keys/{hash}` and `PATCH /keys/{hash}`: `{"data":{…key…}}`.
pub fn parse_key(body: &[u8]) -> Result<ApiKey> {
    let v = root(body)?;
    match v.get("data") {
        Some(d) => api_key(d),
        None => Err(bad("the answer has no 'data'")),
    }
}

/// `POST /keys`: `{"data":{…key…}, "key":"sk-or-v1-…"}`.
pub fn parse_created_key(body: &[u8]) -> Result<CreatedKey> {
    let v = root(body)?;
    let info = match v.get("data") {
        Some(d) => api_key(d)?,
        None => return Err(bad("the answer has no 'data'")),
    };
    let key = match v.get("key") {
        Some(Value::String(k)) if !k.trim().is_empty() => Secret::new(k.trim()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad("the answer has no key text"))
        }
        Some(other) => return Err(bad(format!("'key' is {}, not text", kind(other)))),
    };
    Ok(CreatedKey { key, info })
}

/// `DELETE /keys/{hash}`: `{"deleted": true}`.
pub fn parse_deleted(body: &[u8]) -> Result<()> {
    let v = root(body)?;
    match v.get("deleted") {
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) => Err(bad("OpenRouter says the key was not deleted")),
        Some(other) => Err(bad(format!("'deleted' is {}, not true/false", kind(other)))),
        None => Err(bad("the answer has no 'deleted'")),
    }
}

/// The SHA-256 of a key's text, in lowercase hex.
pub fn key_digest(key: &Secret) -> String {
    hex::encode(Sha256::digest(key.expose().as_bytes()))
}

/// Whether `label` is a masked form of `key`: `<start>...<end>` (or with `…`), where the
/// key starts with `<start>` (which includes more than the `sk-or-v1-` prefix) and ends
/// with `<end>`.
pub fn label_masks_key(label: &str, key: &Secret) -> bool {
    let key = key.expose();
    let (head, tail) = match label.split_once("...").or_else(|| label.split_once('…')) {
        Some(parts) => parts,
        None => return false,
    };
    // The public prefix alone (`sk-or-v1-`) tells nothing about which key it is.
    let prefix = if key.starts_with("sk-or-v1-") {
        "sk-or-v1-".len()
    } else {
        0
    };
    head.len() > prefix && !tail.is_empty() && key.starts_with(head) && key.ends_with(tail)
}

/// Which listed key is `user_key` (described by `info`, its own `GET /key`): a hash equal
/// to the key's SHA-256, else the one enabled key whose label is the same masked form.
pub fn match_key_hash(keys: &[ApiKey], user_key: &Secret, info: &KeyInfo) -> Result<String> {
    let digest = key_digest(user_key);
    if let Some(k) = keys.iter().find(|k| k.hash.eq_ignore_ascii_case(&digest)) {
        return Ok(k.hash.clone());
    }
    if info.label.is_empty() || !label_masks_key(&info.label, user_key) {
        return Err(Error::KeyNotListed);
    }
    let candidates: Vec<&ApiKey> = keys
        .iter()
        .filter(|k| !k.disabled && k.label == info.label)
        .collect();
    match candidates.as_slice() {
        [] => Err(Error::KeyNotListed),
        [one] => Ok(one.hash.clone()),
        many => Err(Error::KeyAmbiguous { count: many.len() }),
    }
}

fn check_limit(limit: Option<f64>) -> Result<()> {
    match limit {
        Some(l) if !l.is_finite() => Err(Error::InvalidInput(
            "the spending cap is not a number".into(),
        )),
        Some(l) if l < 0.0 => Err(Error::InvalidInput(
            "the spending cap can't be below zero".into(),
        )),
        _ => Ok(()),
    }
}

fn check_hash(hash: &str) -> Result<()> {
    if valid_hash(hash) {
        Ok(())
    } else {
        Err(Error::InvalidInput("that is not a key identifier".into()))
    }
}

// ------------------------------------------------------------------------------ client

/// A client of OpenRouter's usage and key-management endpoints. Holds no key: each call
/// takes the one it needs, so the same client serves the API key and the management key.
#[derive(Clone)]
pub struct OpenRouterApi {
    api: BearerApi,
}

impl std::fmt::Debug for OpenRouterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenRouterApi")
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

impl OpenRouterApi {
    /// The real API.
    pub fn new() -> Result<Self> {
        Self::with_base_url(DEFAULT_BASE_URL, RetryPolicy::default())
    }

    /// `base` is the API root including `/api/v1` (a contract fake in tests).
    pub fn with_base_url(base: &str, policy: RetryPolicy) -> Result<Self> {
        Ok(Self {
            api: BearerApi::new(base, policy, MAX_BODY)?,
        })
    }

    /// The API of the OpenRouter site `site` (its origin, as [`super::SignIn::begin`]
    /// takes it: `https://openrouter.ai` or a contract fake's).
    pub fn for_site(site: &str, policy: RetryPolicy) -> Result<Self> {
        Self::with_base_url(&format!("{}/api/v1", site.trim_end_matches('/')), policy)
    }

    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    /// One request with bounded retries ([`BearerApi::call`]), sent with `key`, whose
    /// refusals are about the key of `role`.
    #[tracing::instrument(level = "debug", skip(self, key, body), fields(path = %path))]
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        key: &Secret,
        role: KeyRole,
    ) -> Result<Vec<u8>> {
        self.api
            .call(
                method,
                path,
                query,
                body,
                key,
                |status, bytes, retry_after| decode_error(status, bytes, retry_after, role),
            )
            .await
    }

    /// The key's own spend and cap (`GET /key`, any API key).
    pub async fn key_info(&self, key: &Secret) -> Result<KeyInfo> {
        let body = self
            .call(Method::Get, "/key", &[], None, key, KeyRole::Api)
            .await?;
        parse_key_info(&body)
    }

    /// Per-day, per-model use over the last 30 completed UTC days, or one of them
    /// (`date`: `YYYY-MM-DD`). Management key.
    pub async fn activity(
        &self,
        management: &Secret,
        date: Option<&str>,
    ) -> Result<Vec<ActivityRow>> {
        let mut query = Vec::new();
        if let Some(d) = date {
            if !valid_date(d) {
                return Err(Error::InvalidInput(format!(
                    "'{}' is not a YYYY-MM-DD date",
                    clean_text(d)
                )));
            }
            query.push(("date", d.to_owned()));
        }
        let body = self
            .call(
                Method::Get,
                "/activity",
                &query,
                None,
                management,
                KeyRole::Management,
            )
            .await?;
        parse_activity(&body)
    }

    /// Credit bought and used on the account. Management key.
    pub async fn credits(&self, management: &Secret) -> Result<Credits> {
        let body = self
            .call(
                Method::Get,
                "/credits",
                &[],
                None,
                management,
                KeyRole::Management,
            )
            .await?;
        parse_credits(&body)
    }

    /// One page of the account's keys, skipping `offset` of them. Management key.
    pub async fn list_keys(&self, management: &Secret, offset: usize) -> Result<Vec<ApiKey>> {
        self.key_page(management, offset, false).await
    }

    /// One page of the account's keys, disabled ones too when `include_disabled` (the list
    /// leaves them out by default).
    async fn key_page(
        &self,
        management: &Secret,
        offset: usize,
        include_disabled: bool,
    ) -> Result<Vec<ApiKey>> {
        let mut query = vec![("offset", offset.to_string())];
        if include_disabled {
            query.push(("include_disabled", "true".to_owned()));
        }
        let body = self
            .call(
                Method::Get,
                "/keys",
                &query,
                None,
                management,
                KeyRole::Management,
            )
            .await?;
        parse_key_list(&body)
    }

    /// Every key of the account, page after page until an empty one. Management key.
    pub async fn all_keys(&self, management: &Secret) -> Result<Vec<ApiKey>> {
        self.keys_paged(management, false).await
    }

    /// Every key of the account, disabled ones too: what must find a key to delete it
    /// (one Clawkeeper made may have been disabled since). Management key.
    pub async fn all_keys_with_disabled(&self, management: &Secret) -> Result<Vec<ApiKey>> {
        self.keys_paged(management, true).await
    }

    async fn keys_paged(&self, management: &Secret, include_disabled: bool) -> Result<Vec<ApiKey>> {
        let mut out: Vec<ApiKey> = Vec::new();
        for _ in 0..MAX_KEY_PAGES {
            let page = self
                .key_page(management, out.len(), include_disabled)
                .await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
        Err(bad(format!(
            "the key list has more than {MAX_KEY_PAGES} pages"
        )))
    }

    /// Set (or with `None`, remove) the spending cap of the key `hash` and when it starts
    /// over. Both fields are always sent: `null` clears them. Management key.
    pub async fn set_limit(
        &self,
        management: &Secret,
        hash: &str,
        limit: Option<f64>,
        reset: Option<LimitReset>,
    ) -> Result<ApiKey> {
        check_hash(hash)?;
        check_limit(limit)?;
        let body = json!({ "limit": limit, "limit_reset": reset.map(LimitReset::as_str) });
        let answer = self
            .call(
                Method::Patch,
                &format!("/keys/{hash}"),
                &[],
                Some(&body),
                management,
                KeyRole::Management,
            )
            .await?;
        parse_key(&answer)
    }

    /// A new key named `name` with an optional cap; its text is in the answer, and only
    /// there. Not retried after an unclear failure (it could create two keys). Management
    /// key.
    pub async fn create_key(
        &self,
        management: &Secret,
        name: &str,
        limit: Option<f64>,
        reset: Option<LimitReset>,
    ) -> Result<CreatedKey> {
        if name.trim().is_empty() {
            return Err(Error::InvalidInput("a new key needs a name".into()));
        }
        check_limit(limit)?;
        let mut body = json!({ "name": name });
        if let Some(l) = limit {
            body["limit"] = json!(l);
        }
        if let Some(r) = reset {
            body["limit_reset"] = json!(r.as_str());
        }
        let answer = self
            .call(
                Method::Post,
                "/keys",
                &[],
                Some(&body),
                management,
                KeyRole::Management,
            )
            .await?;
        parse_created_key(&answer)
    }

    /// Delete the key `hash`. Management key.
    pub async fn delete_key(&self, management: &Secret, hash: &str) -> Result<()> {
        check_hash(hash)?;
        let answer = self
            .call(
                Method::Delete,
                &format!("/keys/{hash}"),
                &[],
                None,
                management,
                KeyRole::Management,
            )
            .await?;
        parse_deleted(&answer)
    }

    /// The hash under which the account lists `user_key` (needed to set its cap), or
    /// [`Error::KeyNotListed`] / [`Error::KeyAmbiguous`] when that can't be told for sure.
    /// See [`match_key_hash`].
    pub async fn find_key_hash(&self, management: &Secret, user_key: &Secret) -> Result<String> {
        let info = self.key_info(user_key).await?;
        let keys = self.all_keys(management).await?;
        match_key_hash(&keys, user_key, &info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(e: &Error) -> String {
        format!("{e} {e:?}")
    }

    const KEY_INFO: &str = r#"{"data":{"label":"sk-or-v1-au7...890","limit":100,"usage":25.5,
        "usage_daily":1.5,"usage_weekly":5,"usage_monthly":25.5,"byok_usage":17.38,
        "limit_remaining":74.5,"limit_reset":"monthly","is_free_tier":false,
        "include_byok_in_limit":false,"is_management_key":false,"is_provisioning_key":false,
        "expires_at":null,"rate_limit":{"requests":1000,"interval":"1h"}}}"#;

    #[test]
    fn openrouter_key_info_parses_the_documented_shape() {
        let k = parse_key_info(KEY_INFO.as_bytes()).unwrap();
        assert_eq!(k.label, "sk-or-v1-au7...890");
        assert_eq!(k.usage, 25.5);
        assert_eq!(k.usage_daily, Some(1.5));
        assert_eq!(k.usage_weekly, Some(5.0));
        assert_eq!(k.limit, Some(100.0));
        assert_eq!(k.limit_remaining, Some(74.5));
        assert_eq!(k.limit_reset, Some(LimitReset::Monthly));
        assert!(!k.is_free_tier && !k.is_management_key);
    }

    #[test]
    fn openrouter_key_info_missing_optionals_are_none() {
        // An older answer: no period usage, no limit fields.
        let k = parse_key_info(br#"{"data":{"label":"x","usage":0.1,"limit":null}}"#).unwrap();
        assert_eq!(k.usage_daily, None);
        assert_eq!(k.limit, None);
        assert_eq!(k.limit_remaining, None);
        assert_eq!(k.limit_reset, None);
    }

    #[test]
    fn openrouter_key_info_rejects_bad_numbers() {
        for (body, needle) in [
            (r#"{"data":{"usage":"NaN"}}"#, "'usage' is text"),
            (r#"{"data":{"usage":-1}}"#, "'usage' is negative"),
            (r#"{"data":{"label":"x"}}"#, "'usage' is missing"),
            (r#"{"data":{"usage":1,"limit":-5}}"#, "'limit' is negative"),
            (r#"{"data":{"usage":1,"limit":"100"}}"#, "'limit' is text"),
            (r#"{"data":{"usage":1e999}}"#, "not JSON"),
            (
                r#"{"data":{"usage":1,"is_free_tier":"no"}}"#,
                "'is_free_tier' is text",
            ),
            (
                r#"{"data":{"usage":1,"limit_reset":"yearly"}}"#,
                "unknown reset",
            ),
            (r#"{"data":[]}"#, "'data' is a list"),
            (r#"{"error":{"code":401}}"#, "no 'data'"),
            ("<html>", "not JSON"),
            ("", "not JSON"),
        ] {
            let e = parse_key_info(body.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::BadResponse(_)), "{body}: {e:?}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
            assert_eq!(e.code(), "openrouter_bad_response");
        }
        // A remaining amount a little under zero (the last request crossed the cap) is kept.
        let k = parse_key_info(br#"{"data":{"usage":10.2,"limit":10,"limit_remaining":-0.2}}"#)
            .unwrap();
        assert_eq!(k.limit_remaining, Some(-0.2));
    }

    #[test]
    fn openrouter_activity_parses_and_validates_rows() {
        let rows = parse_activity(
            br#"{"data":[{"date":"2025-08-24","model":"openai/gpt-4.1",
            "model_permaslug":"openai/gpt-4.1-2025-04-14","endpoint_id":"550e8400",
            "provider_name":"OpenAI","usage":0.015,"byok_usage_inference":0.012,"requests":5,
            "prompt_tokens":50,"completion_tokens":125.0,"reasoning_tokens":25}]}"#,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].requests, 5);
        assert_eq!(rows[0].completion_tokens, Some(125));
        assert_eq!(rows[0].provider_name.as_deref(), Some("OpenAI"));
        assert_eq!(parse_activity(br#"{"data":[]}"#).unwrap(), vec![]);
        for body in [
            r#"{"data":[{"date":"2025-02-30","model":"m","usage":1,"requests":1}]}"#,
            r#"{"data":[{"date":"yesterday","model":"m","usage":1,"requests":1}]}"#,
            r#"{"data":[{"date":"2025-08-24","usage":1,"requests":1}]}"#,
            r#"{"data":[{"date":"2025-08-24","model":"m","usage":-0.01,"requests":1}]}"#,
            r#"{"data":[{"date":"2025-08-24","model":"m","usage":1,"requests":-1}]}"#,
            r#"{"data":[{"date":"2025-08-24","model":"m","usage":1,"requests":1.5}]}"#,
            r#"{"data":[{"date":"2025-08-24","model":"m","usage":1}]}"#,
            r#"{"data":[{"date":"2025-08-24","model":"m","usage":"0.1","requests":1}]}"#,
            r#"{"data":[7]}"#,
            r#"{"data":{}}"#,
        ] {
            let e = parse_activity(body.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::BadResponse(_)), "{body}: {e:?}");
        }
    }

    #[test]
    fn openrouter_credits_keys_created_deleted() {
        let c = parse_credits(br#"{"data":{"total_credits":100.5,"total_usage":25.75}}"#).unwrap();
        assert_eq!(c.remaining(), 74.75);
        assert!(parse_credits(br#"{"data":{"total_credits":100.5}}"#).is_err());
        assert!(parse_credits(br#"{"data":{"total_credits":-1,"total_usage":0}}"#).is_err());

        let keys = parse_key_list(
            br#"{"data":[{"hash":"f01d52606dc8","name":"n","label":"sk-or-v1-0e6...c96",
            "disabled":false,"limit":100,"limit_remaining":74.5,"limit_reset":"monthly",
            "include_byok_in_limit":false,"usage":25.5,"usage_daily":25.5,
            "created_at":"2025-08-24T10:30:00Z","updated_at":null}]}"#,
        )
        .unwrap();
        assert_eq!(keys[0].hash, "f01d52606dc8");
        assert_eq!(keys[0].updated_at, None);
        for body in [
            r#"{"data":[{"name":"n","usage":0}]}"#,
            r#"{"data":[{"hash":"../x","usage":0}]}"#,
            r#"{"data":[{"hash":"","usage":0}]}"#,
            r#"{"data":[{"hash":5,"usage":0}]}"#,
            r#"{"data":[{"hash":"abc","usage":0,"disabled":1}]}"#,
        ] {
            assert!(parse_key_list(body.as_bytes()).is_err(), "{body}");
        }

        let created = parse_created_key(
            br#"{"data":{"hash":"abc","name":"n","usage":0},"key":"sk-or-v1-secretsecret"}"#,
        )
        .unwrap();
        assert_eq!(created.key.expose(), "sk-or-v1-secretsecret");
        assert!(!format!("{created:?}").contains("secretsecret"));
        assert!(parse_created_key(br#"{"data":{"hash":"abc","usage":0}}"#).is_err());
        assert!(parse_created_key(br#"{"data":{"hash":"abc","usage":0},"key":""}"#).is_err());

        assert!(parse_deleted(br#"{"deleted":true}"#).is_ok());
        assert!(parse_deleted(br#"{"deleted":false}"#).is_err());
        assert!(parse_deleted(br#"{}"#).is_err());
    }

    #[test]
    fn openrouter_errors_follow_the_status_and_hide_keys() {
        let env = |code: u16, msg: &str| {
            json!({"error":{"code":code,"message":msg}})
                .to_string()
                .into_bytes()
        };
        let e = decode_error(401, &env(401, "User not found."), None, KeyRole::Api);
        assert_eq!(e.code(), "provider_auth");
        assert!(e.to_string().starts_with("OpenRouter refused the API key"));
        let e = decode_error(402, &env(402, "Insufficient credits"), None, KeyRole::Api);
        assert_eq!(e.code(), "provider_billing");
        let e = decode_error(
            403,
            &env(403, "Only management keys"),
            None,
            KeyRole::Management,
        );
        assert_eq!(e.code(), "openrouter_management_key_needed");
        let e = decode_error(429, b"", Some(Duration::from_secs(3)), KeyRole::Api);
        assert_eq!(e.code(), "provider_rate_limit");
        assert!(e.to_string().contains("3 s"));
        let e = decode_error(503, b"<html>", None, KeyRole::Api);
        assert_eq!(e.code(), "openrouter_unavailable");
        let e = decode_error(418, b"not json", None, KeyRole::Api);
        assert!(e.to_string().contains("no details"));
        // A server echoing a key gets it masked.
        let e = decode_error(
            401,
            &env(401, "bad key sk-or-v1-0123456789abcdef, try again"),
            None,
            KeyRole::Api,
        );
        assert!(!err_text(&e).contains("0123456789abcdef"), "{e}");
        assert!(e.to_string().contains("sk-or-<redacted>, try again"));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn openrouter_key_hash_matching() {
        let key = Secret::new(
            "sk-or-v1-abc0000000000000000000000000000000000000000000000000000000000xyz",
        );
        let info = KeyInfo {
            label: "sk-or-v1-abc...xyz".into(),
            ..parse_key_info(br#"{"data":{"usage":0}}"#).unwrap()
        };
        let k = |hash: &str, label: &str, disabled: bool| ApiKey {
            hash: hash.into(),
            label: label.into(),
            disabled,
            ..parse_key(br#"{"data":{"hash":"h","usage":0}}"#).unwrap()
        };
        assert!(label_masks_key("sk-or-v1-abc...xyz", &key));
        assert!(!label_masks_key("sk-or-v1-...xyz", &key));
        assert!(!label_masks_key("Production API Key", &key));
        // By label.
        let keys = vec![
            k("h1", "sk-or-v1-def...xyz", false),
            k("h2", "sk-or-v1-abc...xyz", false),
        ];
        assert_eq!(match_key_hash(&keys, &key, &info).unwrap(), "h2");
        // A disabled twin doesn't count.
        let keys = vec![
            k("h1", "sk-or-v1-abc...xyz", true),
            k("h2", "sk-or-v1-abc...xyz", false),
        ];
        assert_eq!(match_key_hash(&keys, &key, &info).unwrap(), "h2");
        // Two live twins: can't tell.
        let keys = vec![
            k("h1", "sk-or-v1-abc...xyz", false),
            k("h2", "sk-or-v1-abc...xyz", false),
        ];
        assert!(matches!(
            match_key_hash(&keys, &key, &info),
            Err(Error::KeyAmbiguous { count: 2 })
        ));
        // …unless one hash is the key's digest.
        let keys = vec![
            k("h1", "sk-or-v1-abc...xyz", false),
            k(&key_digest(&key), "sk-or-v1-abc...xyz", false),
        ];
        assert_eq!(
            match_key_hash(&keys, &key, &info).unwrap(),
            key_digest(&key)
        );
        // None.
        assert!(matches!(
            match_key_hash(&[], &key, &info),
            Err(Error::KeyNotListed)
        ));
        // A label that isn't a masked form of this key proves nothing.
        let named = KeyInfo {
            label: "Production".into(),
            ..info.clone()
        };
        let keys = vec![k("h1", "Production", false)];
        assert!(matches!(
            match_key_hash(&keys, &key, &named),
            Err(Error::KeyNotListed)
        ));
    }

    #[test]
    fn openrouter_limits_are_checked_before_sending() {
        assert!(check_limit(Some(f64::NAN)).is_err());
        assert!(check_limit(Some(-1.0)).is_err());
        assert!(check_limit(Some(f64::INFINITY)).is_err());
        assert!(check_limit(Some(0.0)).is_ok());
        assert!(check_limit(None).is_ok());
        assert!(check_hash("a/b").is_err());
        assert!(check_hash("f01d52606dc8").is_ok());
    }

    #[test]
    fn openrouter_backoff_is_bounded() {
        let p = RetryPolicy::default();
        for n in 1..40 {
            assert!(p.backoff(n) <= p.backoff_cap.mul_f64(1.5));
        }
    }
}
