//! A **contract fake** of an OpenAI-compatible model server.
//!
//! [`ContractFakeModel`] follows the documented OpenAI Chat Completions
//! shapes (`GET /v1/models`, `POST /v1/chat/completions` with and without
//! `stream: true`, the `{"error":{...}}` envelope) closely enough for the
//! OpenClaw gateway's `openai-completions` provider to talk to it. It is not
//! a model: every answer is derived deterministically from the request, so
//! tests can assert on what reaches the user.
//!
//! * Reply text: `"Echo: " + <prompt>`, where the prompt is the text of the
//!   last user message with OpenClaw's wrapping removed (see
//!   [`prompt_from_messages`]): the gateway appends a separate user message
//!   holding only a `<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>` block, prefixes
//!   the real text with a `[Wed 2026-11-25 16:07 UTC] ` timestamp and
//!   suffixes it with `\n\nRuntime: ...`. For a plain OpenAI client the
//!   prompt is just the last user message's text.
//! * Usage: `prompt_tokens` = number of whitespace-separated words in the
//!   text of all request messages, `completion_tokens` = words in the reply,
//!   `total_tokens` = the sum.
//! * Cost (optional, off by default): started with a [`TokenPrice`] (see
//!   [`ContractFakeModel::start_priced`]), the usage object also carries an
//!   OpenRouter-style `cost` in dollars, `prompt_tokens * input +
//!   completion_tokens * output`. The OpenClaw gateway takes such a
//!   provider-reported `usage.cost` as the call's billed total.
//! * Auth: every `/v1/...` route requires `Authorization: Bearer <key>`
//!   equal to the expected key, else 401 with OpenAI's `invalid_api_key`
//!   envelope (as the real API does, `/v1/models` included).
//! * Streaming (`stream: true`, which the gateway always sends):
//!   `text/event-stream` with one `chat.completion.chunk` carrying the role,
//!   one chunk per word of the reply, one chunk with `finish_reason: "stop"`,
//!   then, when `stream_options.include_usage` is true, a chunk with empty
//!   `choices` and `usage`, then `data: [DONE]`.
//!
//! * Anthropic (optional, see [`ContractFakeModel::speak_anthropic_models`]): `GET
//!   /v1/models` follows Anthropic's own API instead — the key in `x-api-key` with an
//!   `anthropic-version` header (a bearer token is refused), Anthropic's list shape
//!   (`data[].type = "model"`, `display_name`, `has_more`, `first_id`, `last_id`) and error
//!   envelope (`{"type":"error","error":{"type":"authentication_error",…}}`); chat
//!   completions stay OpenAI-shaped with a bearer token, as Anthropic's OpenAI SDK
//!   compatibility endpoint takes them.
//!
//! Every request is recorded (see [`ContractFakeModel::requests`]). The
//! server runs on a tokio task bound to `127.0.0.1:0` and stops on drop.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Model ids listed by `GET /v1/models` when none are given.
pub const DEFAULT_MODEL_IDS: &[&str] = &["echo-1"];

/// Prefix of every reply.
pub const REPLY_PREFIX: &str = "Echo: ";

/// Dollars per token the fake bills when started with
/// [`ContractFakeModel::start_priced`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenPrice {
    /// Dollars per prompt token.
    pub input: f64,
    /// Dollars per completion token.
    pub output: f64,
}

impl TokenPrice {
    /// The `usage.cost` the fake reports for a call of that size.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        // Token counts of a test are far below 2^53: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        let (p, c) = (prompt_tokens as f64, completion_tokens as f64);
        p * self.input + c * self.output
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// An `Authorization` header was sent.
    pub auth_present: bool,
    /// It was `Bearer <a key the fake accepts>`.
    pub auth_ok: bool,
    /// SHA-256 (hex) of the key it carried (the bearer token, or `x-api-key`): which key
    /// an assistant used, without the fake keeping the key's text.
    pub key_sha256: Option<String>,
    /// `model` of a chat request.
    pub model: Option<String>,
    /// Number of entries in `messages`.
    pub message_count: usize,
    /// Raw text of the last `role: "user"` message (string content, or the
    /// `text` parts of array content joined with `\n`).
    pub last_user_text: Option<String>,
    /// The prompt the reply echoes (see [`prompt_from_messages`]).
    pub prompt: Option<String>,
    /// `stream: true` was asked for.
    pub stream: bool,
    /// `stream_options.include_usage` was true.
    pub include_usage: bool,
    /// Number of entries in `tools`.
    pub tool_count: usize,
    /// The whole JSON body, when it parsed.
    pub body: Option<Value>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Which keys the fake accepts: one, or whatever a check says (e.g. the OpenRouter
/// contract fake's [`crate::fake_openrouter::ContractFakeOpenRouter::key_check`], so that
/// keys minted and deleted there are accepted and refused here).
#[derive(Clone)]
pub enum KeyAuth {
    Fixed(String),
    Check(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl KeyAuth {
    fn accepts(&self, key: &str) -> bool {
        match self {
            KeyAuth::Fixed(k) => k == key,
            KeyAuth::Check(f) => f(key),
        }
    }
}

struct Shared {
    auth: KeyAuth,
    model_ids: Vec<String>,
    requests: Mutex<Vec<RecordedRequest>>,
    counter: AtomicU64,
    price: Option<TokenPrice>,
    /// Tokens and dollars of every usage object sent.
    reported: Mutex<(u64, f64)>,
    /// `GET /v1/models` as Anthropic's own API answers it.
    anthropic: AtomicBool,
}

impl Shared {
    fn record(&self, request: RecordedRequest) {
        if let Ok(mut list) = self.requests.lock() {
            list.push(request);
        }
    }
}

/// Contract fake of an OpenAI-compatible Chat Completions server (see the
/// module docs for the exact behaviour). Stops serving when dropped.
pub struct ContractFakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ContractFakeModel {
    /// Starts the fake on `127.0.0.1:0`, listing [`DEFAULT_MODEL_IDS`].
    /// Must be called inside a tokio runtime.
    pub async fn start(expected_api_key: String) -> io::Result<Self> {
        let ids = DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect();
        Self::start_with_models(expected_api_key, ids).await
    }

    /// Like [`ContractFakeModel::start`] with the given model ids.
    pub async fn start_with_models(
        expected_api_key: String,
        model_ids: Vec<String>,
    ) -> io::Result<Self> {
        Self::start_on(([127, 0, 0, 1], 0).into(), expected_api_key, model_ids).await
    }

    /// Like [`ContractFakeModel::start_with_models`], listening on `bind` — e.g. our side
    /// of a test host's veth, so a gateway on that host can reach it.
    pub async fn start_on(
        bind: SocketAddr,
        expected_api_key: String,
        model_ids: Vec<String>,
    ) -> io::Result<Self> {
        Self::start_priced(bind, expected_api_key, model_ids, None).await
    }

    /// Like [`ContractFakeModel::start_on`]; with `Some(price)` every usage
    /// object also carries `cost` (dollars) as OpenRouter reports it.
    pub async fn start_priced(
        bind: SocketAddr,
        expected_api_key: String,
        model_ids: Vec<String>,
        price: Option<TokenPrice>,
    ) -> io::Result<Self> {
        Self::start_with_auth(bind, KeyAuth::Fixed(expected_api_key), model_ids, price).await
    }

    /// Like [`ContractFakeModel::start_priced`], accepting the keys `auth` accepts.
    pub async fn start_with_auth(
        bind: SocketAddr,
        auth: KeyAuth,
        model_ids: Vec<String>,
        price: Option<TokenPrice>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            auth,
            model_ids,
            requests: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            price,
            reported: Mutex::new((0, 0.0)),
            anthropic: AtomicBool::new(false),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    /// Answer `GET /v1/models` as Anthropic's API does (see the module docs).
    pub fn speak_anthropic_models(&self, on: bool) {
        self.shared.anthropic.store(on, Ordering::SeqCst);
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1` — what goes into a provider's `baseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// All requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }

    /// Total tokens and dollars of the usage the fake reported (a call whose client
    /// didn't ask for usage in its stream got none: it counts nothing here).
    pub fn reported_usage(&self) -> (u64, f64) {
        self.shared.reported.lock().map(|r| *r).unwrap_or_default()
    }

    /// Only the `POST /v1/chat/completions` requests.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    }
}

impl Drop for ContractFakeModel {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task too.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    // A client that goes away mid-request is not our error.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// OpenAI's error envelope.
fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> Response<Body> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn invalid_key() -> Response<Body> {
    error_response(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided",
        "invalid_request_error",
        Some("invalid_api_key"),
    )
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let api_key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let anthropic_version = req.headers().contains_key("anthropic-version");
    let auth_present = auth.is_some();
    let auth_ok = auth
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| shared.auth.accepts(key));
    // A body that fails to arrive is treated as empty.
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();

    let key_sha256 = auth
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(api_key.as_deref())
        .map(sha256_hex);
    let mut record = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        auth_present,
        auth_ok,
        key_sha256,
        model: None,
        message_count: 0,
        last_user_text: None,
        prompt: None,
        stream: false,
        include_usage: false,
        tool_count: 0,
        body: None,
    };

    let route = path.trim_end_matches('/');
    let response = match (&method, route) {
        (&Method::GET, "/v1/models") if shared.anthropic.load(Ordering::SeqCst) => {
            let key_ok = api_key.as_deref().is_some_and(|k| shared.auth.accepts(k));
            record.auth_present = api_key.is_some();
            record.auth_ok = key_ok;
            shared.record(record);
            if !key_ok {
                anthropic_error(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "invalid x-api-key",
                )
            } else if !anthropic_version {
                anthropic_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "anthropic-version: header is required",
                )
            } else {
                anthropic_models_response(&shared)
            }
        }
        (&Method::GET, "/v1/models") => {
            shared.record(record);
            if auth_ok {
                models_response(&shared)
            } else {
                invalid_key()
            }
        }
        (&Method::POST, "/v1/chat/completions") => {
            let parsed: Option<Value> = serde_json::from_slice(&body).ok();
            if let Some(request) = &parsed {
                fill_record(&mut record, request);
            }
            let stream = record.stream;
            let include_usage = record.include_usage;
            let model = record.model.clone().unwrap_or_default();
            let prompt = record.prompt.clone().unwrap_or_default();
            shared.record(record);
            match parsed {
                _ if !auth_ok => invalid_key(),
                None => error_response(
                    StatusCode::BAD_REQUEST,
                    "We could not parse the JSON body of your request.",
                    "invalid_request_error",
                    None,
                ),
                Some(request) => {
                    let n = shared.counter.fetch_add(1, Ordering::Relaxed) + 1;
                    let reply = Reply {
                        id: format!("chatcmpl-fake-{n}"),
                        created: unix_now(),
                        model,
                        text: format!("{REPLY_PREFIX}{prompt}"),
                        prompt_tokens: prompt_words(&request),
                        price: shared.price,
                    };
                    if !stream || include_usage {
                        let usage = reply.usage();
                        if let Ok(mut r) = shared.reported.lock() {
                            r.0 += usage["total_tokens"].as_u64().unwrap_or(0);
                            r.1 += usage["cost"].as_f64().unwrap_or(0.0);
                        }
                    }
                    if stream {
                        reply.streaming(include_usage)
                    } else {
                        reply.complete()
                    }
                }
            }
        }
        _ => {
            shared.record(record);
            error_response(
                StatusCode::NOT_FOUND,
                &format!("Invalid URL ({method} {path})"),
                "invalid_request_error",
                None,
            )
        }
    };
    Ok(response)
}

/// Anthropic's error envelope.
fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// Anthropic's model list (one page).
fn anthropic_models_response(shared: &Shared) -> Response<Body> {
    let data: Vec<Value> = shared
        .model_ids
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2026-01-01T00:00:00Z"}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "data": data,
            "has_more": false,
            "first_id": shared.model_ids.first(),
            "last_id": shared.model_ids.last(),
        }),
    )
}

fn models_response(shared: &Shared) -> Response<Body> {
    let data: Vec<Value> = shared
        .model_ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "clawkeeper-contract-fake"}))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

fn fill_record(record: &mut RecordedRequest, request: &Value) {
    record.model = request
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    record.message_count = messages.len();
    record.last_user_text = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")));
    record.prompt = prompt_from_messages(messages);
    record.stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    record.include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    record.tool_count = request
        .get("tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    record.body = Some(request.clone());
}

/// Text of a message's `content`: a string, or the `text` parts of an array.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

const INTERNAL_BEGIN: &str = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>";
const INTERNAL_END: &str = "<<<END_OPENCLAW_INTERNAL_CONTEXT>>>";

/// Removes every `<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> ... <<<END_...>>>`
/// block (an unterminated block runs to the end).
fn strip_internal_context(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(INTERNAL_BEGIN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + INTERNAL_BEGIN.len()..];
        rest = match after.find(INTERNAL_END) {
            Some(end) => &after[end + INTERNAL_END.len()..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Removes OpenClaw's `[Wed 2026-11-25 16:07 UTC] ` prefix and
/// `\n\nRuntime: ...` suffix from a user turn.
fn strip_openclaw_envelope(text: &str) -> &str {
    let mut text = text.trim();
    if let Some(inner) = text.strip_prefix('[') {
        if let Some(close) = inner.find("] ") {
            let stamp = &inner[..close];
            if close <= 48 && stamp.contains(':') && stamp.chars().any(|c| c.is_ascii_digit()) {
                text = &inner[close + 2..];
            }
        }
    }
    if let Some(cut) = text.find("\n\nRuntime: ") {
        text = &text[..cut];
    }
    text.trim()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prompt the fake answers: the text of the last user message that is
/// not only OpenClaw internal context, with that context and OpenClaw's
/// timestamp/runtime envelope removed. `None` without a user message.
pub fn prompt_from_messages(messages: &[Value]) -> Option<String> {
    let mut saw_user = false;
    for message in messages.iter().rev() {
        if message.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        saw_user = true;
        let cleaned = strip_internal_context(&content_text(message.get("content")));
        let prompt = strip_openclaw_envelope(&cleaned);
        if !prompt.is_empty() {
            return Some(prompt.to_owned());
        }
    }
    saw_user.then(String::new)
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn prompt_words(request: &Value) -> u64 {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |messages| {
            messages
                .iter()
                .map(|m| word_count(&content_text(m.get("content"))))
                .sum()
        })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Reply {
    id: String,
    created: u64,
    model: String,
    text: String,
    prompt_tokens: u64,
    price: Option<TokenPrice>,
}

impl Reply {
    fn usage(&self) -> Value {
        let completion = word_count(&self.text);
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        });
        if let (Some(price), Some(obj)) = (self.price, usage.as_object_mut()) {
            obj.insert(
                "cost".to_owned(),
                json!(price.cost(self.prompt_tokens, completion)),
            );
        }
        usage
    }

    fn complete(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            &json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": null,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": self.usage(),
            }),
        )
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
        })
    }

    /// The SSE events, each already framed as `data: ...\n\n`.
    fn sse_events(&self, include_usage: bool) -> Vec<String> {
        let mut chunks = vec![self.chunk(json!([{
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": null},
            "logprobs": null,
            "finish_reason": null,
        }]))];
        for piece in self.text.split_inclusive(' ') {
            chunks.push(self.chunk(json!([{
                "index": 0,
                "delta": {"content": piece},
                "logprobs": null,
                "finish_reason": null,
            }])));
        }
        chunks.push(self.chunk(json!([{
            "index": 0,
            "delta": {},
            "logprobs": null,
            "finish_reason": "stop",
        }])));
        if include_usage {
            let mut last = self.chunk(json!([]));
            if let Some(obj) = last.as_object_mut() {
                obj.insert("usage".to_owned(), self.usage());
            }
            chunks.push(last);
        }
        let mut events: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        events.push("data: [DONE]\n\n".to_owned());
        events
    }

    fn streaming(&self, include_usage: bool) -> Response<Body> {
        let frames = self
            .sse_events(include_usage)
            .into_iter()
            .map(|e| Ok::<_, Infallible>(Frame::data(Bytes::from(e))));
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-contract-key";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
    }

    fn chat_body(stream: bool) -> Value {
        json!({
            "model": "echo-1",
            "stream": stream,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": [{"type": "text", "text": "hello there world"}]},
            ],
        })
    }

    #[tokio::test]
    async fn priced_usage_carries_openrouter_style_cost() {
        let price = TokenPrice {
            input: 0.25,
            output: 2.0,
        };
        let fake = ContractFakeModel::start_priced(
            ([127, 0, 0, 1], 0).into(),
            KEY.into(),
            vec!["echo-1".into()],
            Some(price),
        )
        .await
        .expect("start");
        for stream in [false, true] {
            let text = client()
                .post(format!("{}/chat/completions", fake.base_url()))
                .bearer_auth(KEY)
                .json(&chat_body(stream))
                .send()
                .await
                .expect("send")
                .text()
                .await
                .expect("body");
            let usage = if stream {
                let chunks: Vec<Value> = text
                    .split("\n\n")
                    .filter_map(|e| e.strip_prefix("data: "))
                    .filter(|d| *d != "[DONE]")
                    .map(|d| serde_json::from_str(d).expect("chunk"))
                    .collect();
                chunks.last().expect("usage chunk")["usage"].clone()
            } else {
                serde_json::from_str::<Value>(&text).expect("json")["usage"].clone()
            };
            // 10 prompt words; the reply "Echo: hello there world" is 4.
            assert_eq!(usage["prompt_tokens"], 10);
            assert_eq!(usage["completion_tokens"], 4);
            assert_eq!(usage["cost"], json!(10.0 * 0.25 + 4.0 * 2.0));
        }
    }

    #[tokio::test]
    async fn wrong_key_gets_openai_401_envelope() {
        let fake = ContractFakeModel::start(KEY.into()).await.expect("start");
        let response = client()
            .post(format!("{}/chat/completions", fake.base_url()))
            .bearer_auth("sk-wrong")
            .json(&chat_body(true))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
        );
        let recorded = fake.requests();
        assert_eq!(recorded.len(), 1);
        assert!(recorded[0].auth_present);
        assert!(!recorded[0].auth_ok);
        assert_eq!(
            recorded[0].key_sha256.as_deref(),
            Some(sha256_hex("sk-wrong").as_str())
        );

        // No header at all is refused the same way.
        let response = client()
            .post(format!("{}/chat/completions", fake.base_url()))
            .json(&chat_body(false))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401);
        assert!(!fake.requests()[1].auth_present);
        assert_eq!(fake.requests()[1].key_sha256, None);
    }

    #[tokio::test]
    async fn streaming_reply_has_deltas_usage_and_done() {
        let fake = ContractFakeModel::start(KEY.into()).await.expect("start");
        let response = client()
            .post(format!("{}/chat/completions", fake.base_url()))
            .bearer_auth(KEY)
            .json(&chat_body(true))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
        let text = response.text().await.expect("text");
        let datas: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").expect("data: prefix"))
            .collect();
        assert_eq!(datas.last(), Some(&"[DONE]"));
        let chunks: Vec<Value> = datas[..datas.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).expect("chunk json"))
            .collect();
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Echo: hello there world");
        // role chunk + 4 word chunks + stop + usage
        assert_eq!(chunks.len(), 7);
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
        let usage = &chunks[6];
        assert_eq!(usage["choices"], json!([]));
        // prompt: 3 + 2 + 2 + 3 words; completion: 4 words
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14})
        );

        let recorded = fake.chat_requests();
        assert_eq!(recorded.len(), 1);
        let r = &recorded[0];
        assert!(r.auth_ok && r.stream && r.include_usage);
        assert_eq!(r.key_sha256.as_deref(), Some(sha256_hex(KEY).as_str()));
        assert_eq!(r.model.as_deref(), Some("echo-1"));
        assert_eq!(r.message_count, 4);
        assert_eq!(r.last_user_text.as_deref(), Some("hello there world"));
        assert_eq!(r.tool_count, 1);
    }

    #[tokio::test]
    async fn non_streaming_models_and_unknown_path() {
        let fake = ContractFakeModel::start(KEY.into()).await.expect("start");
        let body: Value = client()
            .post(format!("{}/chat/completions", fake.base_url()))
            .bearer_auth(KEY)
            .json(&chat_body(false))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Echo: hello there world"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["total_tokens"], 14);

        let models: Value = client()
            .get(format!("{}/models", fake.base_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(models["object"], "list");
        assert_eq!(models["data"][0]["id"], "echo-1");
        assert_eq!(models["data"][0]["object"], "model");

        let response = client()
            .get(format!("{}/nope", fake.base_url()))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404);
        let err: Value = response.json().await.expect("json");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn prompt_ignores_openclaw_wrapping() {
        let messages = vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": "[Wed 2026-11-25 16:07 UTC] this should pass\n\nRuntime: agent=main | session=agent:main:main"}),
            json!({"role": "user", "content": [{"type": "text", "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}]}),
        ];
        assert_eq!(
            prompt_from_messages(&messages).as_deref(),
            Some("this should pass")
        );
        let plain = vec![json!({"role": "user", "content": "[not a stamp] keep me"})];
        assert_eq!(
            prompt_from_messages(&plain).as_deref(),
            Some("[not a stamp] keep me")
        );
        assert_eq!(prompt_from_messages(&[]), None);
    }

    #[tokio::test]
    async fn stops_on_drop() {
        let fake = ContractFakeModel::start(KEY.into()).await.expect("start");
        let addr = fake.addr();
        drop(fake);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
