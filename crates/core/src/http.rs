//! What the clients of providers' HTTP APIs share: OpenRouter's
//! ([`crate::openrouter::api`]) and OpenAI's Admin API ([`crate::openai::admin`]) through
//! [`BearerApi`]; the Hetzner Cloud client ([`crate::cloud::hetzner`], and the Tailscale one
//! through its policy) for [`Method`], [`backoff`] and [`tidy`].
//!
//! * one request, one answer: its status, its `Retry-After` in seconds
//!   ([`parse_retry_after`]) and its body, read up to a bound ([`send`]);
//! * bounded retries ([`RetryPolicy::wait_before_retry`]): a 429 always (it was refused as
//!   a whole, so even a create may be repeated), waiting what `Retry-After` asks unless that
//!   is longer than the policy waits; a 5xx, a timeout or a broken connection only when
//!   repeating the request is harmless (anything but a create, [`Method::Post`]);
//! * each client keeps its own typed error and wording: it turns a transport [`Failure`]
//!   into its error (cutting key text from the transport's words, [`redact_keys`]), decodes
//!   a refusal itself, and says how its error may be retried ([`ApiError::retry`]).

use crate::problem::UserFacing;
use crate::secret::Secret;
use serde_json::Value;
use std::borrow::Cow;
use std::time::Duration;

/// The longest `Retry-After` taken literally.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Shortest run of key characters after a key's prefix that is treated as key text (a
/// masked key, `sk-abc...xyz`, has a few; real keys dozens).
pub const KEY_TEXT_MIN: usize = 16;
/// Longest provider text passed on (they are one sentence; anything longer is noise).
pub const MAX_TEXT: usize = 300;

// ---------------------------------------------------------------------------- requests

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    /// A request of this method to `url`.
    pub fn request(self, http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        match self {
            Method::Get => http.get(url),
            Method::Post => http.post(url),
            Method::Patch => http.patch(url),
            Method::Delete => http.delete(url),
        }
    }

    /// Whether repeating a request whose outcome is unknown is harmless: anything but a
    /// create (a repeated delete finds nothing to delete; a PATCH sets the same values).
    pub fn repeatable(self) -> bool {
        self != Method::Post
    }
}

/// Why a request got no answer that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer in time.
    Timeout,
    /// No connection, or it broke: the transport's words (without the URL), which may still
    /// need key text cut from them.
    Unreachable(String),
    /// The answer is longer than the client reads.
    TooLarge,
}

impl Failure {
    fn of(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Unreachable(e.without_url().to_string())
        }
    }
}

/// One answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `Retry-After` header, when it is a number of seconds.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Send `req` and read its answer, refusing a body longer than `max_body` bytes.
pub async fn send(req: reqwest::RequestBuilder, max_body: usize) -> Result<Answer, Failure> {
    let mut res = req.send().await.map_err(Failure::of)?;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(Failure::of)? {
        push_bounded(&mut body, &chunk, max_body)?;
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// Append `chunk` to `body`, unless that makes it longer than `max` bytes.
fn push_bounded(body: &mut Vec<u8>, chunk: &[u8], max: usize) -> Result<(), Failure> {
    if body.len().saturating_add(chunk.len()) > max {
        return Err(Failure::TooLarge);
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// `Retry-After` in seconds (what OpenRouter and OpenAI send), at most [`MAX_RETRY_AFTER`];
/// an HTTP date or garbage is `None` (the client then backs off on its own).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

// ----------------------------------------------------------------------------- retries

/// How hard a [`BearerApi`] tries. The defaults suit the real APIs; tests use
/// [`RetryPolicy::fast`].
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A `Retry-After` longer than this is not waited for: the error goes to the caller.
    pub max_retry_after: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// How a failed request may be repeated, as its client's error says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Refused as a whole for too many requests (429): safe to repeat, even a create, after
    /// the wait the server asked for (`Retry-After`), if it asked.
    RateLimited(Option<Duration>),
    /// The outcome is unknown (5xx, timeout, broken connection): repeated only when
    /// repeating the request is harmless.
    Unclear,
    /// Repeating won't help.
    Never,
}

impl RetryPolicy {
    /// Small waits for tests against a local fake.
    pub fn fast() -> Self {
        Self {
            max_attempts: 3,
            backoff_base: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// Backoff before attempt `attempt + 1`: see [`backoff`].
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.backoff_base, self.backoff_cap, attempt)
    }

    /// How long to wait before repeating a request whose attempt `attempt` failed as
    /// `retry` says, or `None` when it is not repeated (whatever the attempts left).
    /// `repeatable`: repeating the request is harmless ([`Method::repeatable`]).
    pub fn wait_before_retry(
        &self,
        retry: Retry,
        attempt: u32,
        repeatable: bool,
    ) -> Option<Duration> {
        match retry {
            Retry::RateLimited(Some(asked)) if asked > self.max_retry_after => None,
            Retry::RateLimited(Some(asked)) => Some(asked),
            Retry::RateLimited(None) => Some(self.backoff(attempt)),
            Retry::Unclear if repeatable => Some(self.backoff(attempt)),
            Retry::Unclear | Retry::Never => None,
        }
    }
}

/// Backoff before attempt `attempt + 1` (attempt counts from 1): base·2^(attempt-1),
/// capped, with ±50 % jitter so that two clients don't retry in step.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    use rand::Rng;
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exp.min(cap).mul_f64(rand::rng().random_range(0.5..1.5))
}

// ------------------------------------------------------------------------------ client

/// What [`BearerApi::call`] needs of a client's own error.
pub trait ApiError: From<Failure> + UserFacing {
    /// How the request that failed this way may be repeated.
    fn retry(&self) -> Retry;
}

/// A JSON API that takes a bearer key with each call, at one base URL (OpenRouter's,
/// OpenAI's Admin API). Holds no key. Cheap to clone.
#[derive(Clone)]
pub struct BearerApi {
    http: reqwest::Client,
    base: String,
    policy: RetryPolicy,
    max_body: usize,
}

impl std::fmt::Debug for BearerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl BearerApi {
    /// `base`: the API root that paths are appended to; answers longer than `max_body`
    /// bytes are refused.
    pub fn new(base: &str, policy: RetryPolicy, max_body: usize) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("Clawkeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Unreachable(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            policy,
            max_body,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One request with bounded retries (see [`RetryPolicy::wait_before_retry`]); the body
    /// of a 2xx answer. `decode` turns any other answer (status, body, `Retry-After`) into
    /// the client's error.
    pub async fn call<E: ApiError>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        key: &Secret,
        decode: impl Fn(u16, &[u8], Option<Duration>) -> E,
    ) -> Result<Vec<u8>, E> {
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = method
                .request(&self.http, &url)
                .bearer_auth(key.expose())
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let err = match send(req, self.max_body).await {
                Ok(a) if a.is_success() => return Ok(a.body),
                Ok(a) => decode(a.status, &a.body, a.retry_after),
                Err(f) => E::from(f),
            };
            let Some(wait) =
                self.policy
                    .wait_before_retry(err.retry(), attempt, method.repeatable())
            else {
                tracing::debug!(code = err.code(), attempt, "not repeated");
                return Err(err);
            };
            if attempt >= self.policy.max_attempts {
                tracing::debug!(code = err.code(), attempt, "giving up");
                return Err(err);
            }
            tracing::debug!(code = err.code(), attempt, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

// -------------------------------------------------------------------------------- text

/// `raw` with key text cut out: `prefix` followed by [`KEY_TEXT_MIN`] or more key
/// characters (`[A-Za-z0-9_-]`) becomes `<prefix><redacted>`; a masked key
/// (`sk-abc...xyz`) is kept, as it tells which key without being one.
pub fn redact_keys<'a>(raw: &'a str, prefix: &str) -> Cow<'a, str> {
    if prefix.is_empty() || !raw.contains(prefix) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::new();
    let mut rest = raw;
    while let Some(pos) = rest.find(prefix) {
        let after = &rest[pos + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        out.push_str(&rest[..pos]);
        if end >= KEY_TEXT_MIN {
            out.push_str(prefix);
            out.push_str("<redacted>");
        } else {
            out.push_str(&rest[pos..pos + prefix.len() + end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A provider's text made fit to show: no control characters, at most [`MAX_TEXT`]
/// characters, trimmed, never empty ("no details").
pub fn tidy(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        "no details".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn http_retry_after_is_seconds_bounded() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999"), Some(MAX_RETRY_AFTER));
        for bad in [
            "",
            "-1",
            "1.5",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for n in 1..40 {
            let b = p.backoff(n);
            assert!(b <= p.backoff_cap.mul_f64(1.5), "{n}: {b:?}");
            assert!(b >= p.backoff_base.mul_f64(0.5), "{n}: {b:?}");
        }
        // The first wait is about the base; the tenth is about the cap.
        assert!(p.backoff(1) < p.backoff_base.mul_f64(1.5));
        assert!(p.backoff(10) >= p.backoff_cap.mul_f64(0.5));
    }

    #[test]
    fn http_retry_policy_repeats_only_what_is_safe() {
        let p = RetryPolicy::default();
        let asked = Duration::from_secs(3);
        // A 429 was refused as a whole: repeated even when the request is a create,
        // after what it asked for…
        assert_eq!(
            p.wait_before_retry(Retry::RateLimited(Some(asked)), 1, false),
            Some(asked)
        );
        // …unless that is longer than the policy waits;
        let long = p.max_retry_after + Duration::from_secs(1);
        assert_eq!(
            p.wait_before_retry(Retry::RateLimited(Some(long)), 1, true),
            None
        );
        // without a Retry-After, after a backoff.
        let w = p
            .wait_before_retry(Retry::RateLimited(None), 1, false)
            .unwrap();
        assert!(w <= p.backoff_base.mul_f64(1.5));
        // An unclear outcome: only when repeating is harmless.
        assert!(p.wait_before_retry(Retry::Unclear, 2, true).is_some());
        assert_eq!(p.wait_before_retry(Retry::Unclear, 2, false), None);
        assert_eq!(p.wait_before_retry(Retry::Never, 1, true), None);
        assert!(!Method::Post.repeatable());
        assert!(
            Method::Get.repeatable() && Method::Patch.repeatable() && Method::Delete.repeatable()
        );
    }

    #[test]
    fn http_body_is_bounded() {
        let mut body = Vec::new();
        assert_eq!(push_bounded(&mut body, b"abcd", 6), Ok(()));
        assert_eq!(push_bounded(&mut body, b"ef", 6), Ok(()));
        assert_eq!(push_bounded(&mut body, b"g", 6), Err(Failure::TooLarge));
        assert_eq!(body, b"abcdef");
    }

    #[test]
    fn http_text_loses_keys_and_control_characters() {
        assert_eq!(
            redact_keys("bad key sk-or-v1-0123456789abcdef, try again", "sk-or-"),
            "bad key sk-or-<redacted>, try again"
        );
        assert_eq!(redact_keys("key sk-abc...xyz", "sk-"), "key sk-abc...xyz");
        assert_eq!(redact_keys("nothing here", "sk-"), "nothing here");
        assert_eq!(tidy(" a\nb\u{7} "), "a b");
        assert_eq!(tidy("\n \t"), "no details");
        assert_eq!(tidy(&"x".repeat(1000)).len(), MAX_TEXT);
    }

    // ---- the request loop, against a server on this computer

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("transport: {0:?}")]
        Transport(Failure),
        #[error("HTTP {0}")]
        Status(u16, Option<Duration>),
    }

    impl From<Failure> for TestError {
        fn from(f: Failure) -> Self {
            TestError::Transport(f)
        }
    }

    impl UserFacing for TestError {
        fn code(&self) -> &'static str {
            "test"
        }
        fn hint(&self) -> Option<&'static str> {
            None
        }
    }

    impl ApiError for TestError {
        fn retry(&self) -> Retry {
            match self {
                TestError::Status(429, asked) => Retry::RateLimited(*asked),
                TestError::Status(500..=599, _) => Retry::Unclear,
                _ => Retry::Never,
            }
        }
    }

    /// A server that gives the `answers` in turn, one a connection; the number of
    /// requests it saw.
    async fn server(answers: Vec<String>) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut seen = 0;
            for a in answers {
                let Ok((mut s, _)) = listener.accept().await else {
                    break;
                };
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                seen += 1;
                let _ = s.write_all(a.as_bytes()).await;
                let _ = s.shutdown().await;
            }
            seen
        });
        (base, task)
    }

    fn answer(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        )
    }

    async fn call(base: &str, method: Method, max_body: usize) -> Result<Vec<u8>, TestError> {
        let api = BearerApi::new(base, RetryPolicy::fast(), max_body).unwrap();
        api.call(
            method,
            "/x",
            &[],
            None,
            &Secret::new("k"),
            |status, _, asked| TestError::Status(status, asked),
        )
        .await
    }

    #[tokio::test]
    async fn http_call_waits_out_a_429_and_reads_a_bounded_body() {
        let (base, seen) = server(vec![
            answer("429 Too Many Requests", "retry-after: 0\r\n", ""),
            answer("200 OK", "", "{\"ok\":true}"),
        ])
        .await;
        // Even a create is repeated after a 429.
        assert_eq!(
            call(&base, Method::Post, 64).await.unwrap(),
            b"{\"ok\":true}"
        );
        assert_eq!(seen.await.unwrap(), 2);

        let (base, _) = server(vec![answer("200 OK", "", &"x".repeat(65))]).await;
        let e = call(&base, Method::Get, 64).await.unwrap_err();
        assert!(
            matches!(e, TestError::Transport(Failure::TooLarge)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn http_call_repeats_a_5xx_only_when_harmless() {
        let unavailable = || answer("503 Service Unavailable", "", "");
        let (base, seen) = server(vec![unavailable(), answer("200 OK", "", "{}")]).await;
        assert_eq!(call(&base, Method::Delete, 64).await.unwrap(), b"{}");
        assert_eq!(seen.await.unwrap(), 2);

        let (base, seen) = server(vec![unavailable(), answer("200 OK", "", "{}")]).await;
        let e = call(&base, Method::Post, 64).await.unwrap_err();
        assert!(matches!(e, TestError::Status(503, None)), "{e:?}");
        // The server waits for a second request that never comes.
        seen.abort();

        // Given up after the policy's attempts; a 429 asking too long a wait is not waited.
        let (base, seen) = server(vec![unavailable(), unavailable(), unavailable()]).await;
        let e = call(&base, Method::Get, 64).await.unwrap_err();
        assert!(matches!(e, TestError::Status(503, None)), "{e:?}");
        assert_eq!(
            seen.await.unwrap(),
            RetryPolicy::fast().max_attempts as usize
        );
        let (base, _) = server(vec![answer(
            "429 Too Many Requests",
            "retry-after: 3600\r\n",
            "",
        )])
        .await;
        let e = call(&base, Method::Get, 64).await.unwrap_err();
        assert!(
            matches!(e, TestError::Status(429, Some(d)) if d.as_secs() == 3600),
            "{e:?}"
        );
    }
}
