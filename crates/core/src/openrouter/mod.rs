//! "Sign in with OpenRouter": the OAuth PKCE flow to a loopback callback, which gives the
//! person an API key in one click, with no copy and paste (OpenRouter's documented flow:
//! `/auth?callback_url&code_challenge&code_challenge_method=S256`, then
//! `POST /api/v1/auth/keys {code, code_verifier, code_challenge_method}` → `{key}`).
//!
//! [`api`]: what a key has spent and the cap on it, from OpenRouter's own usage and
//! key-management endpoints.

pub mod api;

pub use api::{
    ActivityRow, ApiKey, CreatedKey, Credits, Error as ApiError, KeyInfo, KeyRole, LimitReset,
    OpenRouterApi, RetryPolicy,
};

use crate::problem::UserFacing;
use crate::secret::Secret;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const SITE: &str = "https://openrouter.ai";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Clawkeeper couldn't open a local sign-in page: {0}")]
    Listen(std::io::Error),
    #[error("Sign-in with OpenRouter wasn't finished in time.")]
    Timeout,
    #[error("OpenRouter sign-in was cancelled or refused.")]
    Denied,
    #[error("OpenRouter didn't give out a key ({0}).")]
    Exchange(String),
    #[error("OpenRouter can't be reached: {0}")]
    Unreachable(String),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Listen(_) => "signin_local",
            Error::Timeout => "signin_timeout",
            Error::Denied => "signin_denied",
            Error::Exchange(_) => "signin_exchange",
            Error::Unreachable(_) => "signin_unreachable",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Unreachable(_) => "Check your internet connection, or paste a key instead.",
            _ => "Try again, or paste a key instead.",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `base64url(sha256(verifier))`, no padding (RFC 7636 S256).
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// One sign-in in progress: a loopback listener waiting for the browser to come back.
pub struct SignIn {
    listener: TcpListener,
    verifier: Secret,
    site: String,
    callback: String,
}

impl SignIn {
    /// Listen on a free loopback port. `site` is OpenRouter's origin (a contract fake in tests).
    pub async fn begin(site: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::Listen)?;
        let port = listener.local_addr().map_err(Error::Listen)?.port();
        Ok(Self {
            listener,
            verifier: Secret::random(32),
            site: site.trim_end_matches('/').to_owned(),
            callback: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    /// The page to open in the person's browser.
    pub fn url(&self) -> String {
        format!(
            "{}/auth?callback_url={}&code_challenge={}&code_challenge_method=S256",
            self.site,
            urlencode(&self.callback),
            challenge(self.verifier.expose())
        )
    }

    /// Wait for the browser to return with `?code=…`, then exchange it for a key.
    pub async fn finish(self, timeout: Duration) -> Result<Secret> {
        let code = tokio::time::timeout(timeout, wait_for_code(&self.listener))
            .await
            .map_err(|_| Error::Timeout)??;
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/keys", self.site))
            .json(&serde_json::json!({
                "code": code.expose(),
                "code_verifier": self.verifier.expose(),
                "code_challenge_method": "S256",
            }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.without_url().to_string()))?;
        let status = res.status();
        let body: serde_json::Value = res
            .json()
            .await
            .map_err(|e| Error::Exchange(e.without_url().to_string()))?;
        if !status.is_success() {
            let msg = body
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .unwrap_or("no details");
            return Err(Error::Exchange(format!("HTTP {}: {msg}", status.as_u16())));
        }
        body.get("key")
            .and_then(|k| k.as_str())
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .ok_or_else(|| Error::Exchange("the answer had no key".into()))
    }
}

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Clawkeeper</title><body style=\"font:16px system-ui;margin:3em\"><h1>You're signed in</h1><p>Clawkeeper has your OpenRouter key and saved it in your keychain. You can close this tab.</p>";
const DENIED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Clawkeeper</title><body style=\"font:16px system-ui;margin:3em\"><h1>Sign-in was not finished</h1><p>Go back to Clawkeeper to try again or paste a key instead.</p>";

async fn wait_for_code(listener: &TcpListener) -> Result<Secret> {
    loop {
        let (mut sock, _) = listener.accept().await.map_err(Error::Listen)?;
        let mut buf = vec![0u8; 8192];
        let n = match tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => continue,
        };
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        let Some(query) = target
            .strip_prefix("/callback?")
            .or_else(|| target.strip_prefix("/callback/?"))
        else {
            let _ = sock
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let code = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("code="))
            .map(urldecode);
        let page = if code.is_some() {
            DONE_PAGE
        } else {
            DENIED_PAGE
        };
        let _ = sock
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len()).as_bytes())
            .await;
        return match code {
            Some(c) if !c.is_empty() => Ok(Secret::new(c)),
            _ => Err(Error::Denied),
        };
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
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
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn url_codec() {
        assert_eq!(
            urlencode("http://127.0.0.1:5/callback"),
            "http%3A%2F%2F127.0.0.1%3A5%2Fcallback"
        );
        assert_eq!(urldecode("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }
}
