//! The gateway token of the assistant on this computer.
//!
//! The gateway reads its token through a SecretRef (`exec`: Clawkeeper's keychain helper)
//! named in its config, and applies a change of that name live: it resolves the new name,
//! switches to its token within about a second, refuses the old one on WebSocket and HTTP
//! from then on, and closes the connections made with it (4001 "gateway auth changed").
//! It accepts exactly one token at a time, and `OPENCLAW_GATEWAY_TOKEN` never overrides a
//! config token (docs/openclaw-rotation.md, measured). So:
//!
//! - **install**: the config names the staging entry, which holds the new token (with a
//!   `#<rotation>` tag, see [`crate::vault::SecretRef::parse_config_id`]);
//! - **verify new**: a WebSocket hello and an HTTP call with it succeed;
//! - **revoke old**: nothing more to do (the gateway has only the new one);
//! - **verify old**: refused on both;
//! - **settle** (at the commit, once the keychain's entry holds the new token): the config
//!   names the entry again — the same value, so nothing is closed;
//! - **discard**: the config names the entry (the old token) again.

use super::local_config::{LocalConfig, GATEWAY_TOKEN_AT, RELOAD_WAIT};
use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::gateway::{self, ClientInfo};
use crate::secret::Secret;
use crate::vault::SecretRef;
use std::time::{Duration, Instant};

/// How long the gateway may take to apply a config change (measured 0.5–2.3 s).
const APPLY_WITHIN: Duration = Duration::from_secs(10);

/// No sign of the new token this long after the install: the config is written again (the
/// same content), which makes the gateway look at it again.
const KICK_AFTER: Duration = Duration::from_secs(3);

/// What the gateway said to a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
    /// No clear answer (not reachable, starting, something else).
    Unknown(String),
}

/// Try `token` on the gateway at `url` (ws://…) over WebSocket (a full hello) and over HTTP
/// (`POST /tools/invoke`, on by default, token required). Accepted only if both accept it;
/// refused only if both refuse it.
pub async fn try_token(url: &str, token: &Secret) -> Verdict {
    // Both at once: the gateway delays each refusal (more for each one in a row), so in
    // turn a refused token took the two delays one after the other.
    let (ws, http) = tokio::join!(try_ws(url, token), try_http(url, token));
    match (ws, http) {
        (Verdict::Accepted, Verdict::Accepted) => Verdict::Accepted,
        (Verdict::Refused, Verdict::Refused) => Verdict::Refused,
        (Verdict::Unknown(e), _) | (_, Verdict::Unknown(e)) => Verdict::Unknown(e),
        (ws, http) => Verdict::Unknown(format!("WebSocket and HTTP disagree ({ws:?} / {http:?})")),
    }
}

/// A full WebSocket hello with `token`.
async fn try_ws(url: &str, token: &Secret) -> Verdict {
    match gateway::connect_once(url, token, &ClientInfo::default()).await {
        Ok(conn) => {
            conn.close().await;
            Verdict::Accepted
        }
        Err(gateway::Error::Auth(_)) => Verdict::Refused,
        Err(gateway::Error::Rpc(e)) if e.code == "INVALID_REQUEST" || e.code.contains("AUTH") => {
            Verdict::Refused
        }
        Err(gateway::Error::Disconnected { code: 1008, .. }) => Verdict::Refused,
        Err(e) => Verdict::Unknown(e.to_string()),
    }
}

/// An HTTP call that needs `token` (`POST /tools/invoke`: the sessions list).
async fn try_http(url: &str, token: &Secret) -> Verdict {
    let http_url = url.replacen("ws://", "http://", 1) + "/tools/invoke";
    match reqwest::Client::new()
        .post(&http_url)
        .bearer_auth(token.expose())
        .json(&serde_json::json!({"tool": "sessions_list", "args": {}}))
        .timeout(Duration::from_secs(15))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Verdict::Accepted,
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => Verdict::Refused,
        Ok(r) => Verdict::Unknown(format!("HTTP {}", r.status().as_u16())),
        // reqwest's error text names the URL, never the header.
        Err(e) => Verdict::Unknown(e.to_string()),
    }
}

/// Ask until `want` (or [`APPLY_WITHIN`] passes).
async fn until(url: &str, token: &Secret, want: Verdict, what: &str) -> StepResult {
    let deadline = Instant::now() + APPLY_WITHIN;
    let mut last;
    loop {
        last = try_token(url, token).await;
        if last == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(match last {
        Verdict::Unknown(e) => StepError::Transient(format!("your assistant didn't answer ({e})")),
        _ => StepError::Permanent(what.to_owned()),
    })
}

/// The gateway token of the assistant on this computer: its config file and address, and
/// the keychain entry the config names.
pub struct LocalGatewayToken {
    pub config: LocalConfig,
    pub url: String,
    pub entry: SecretRef,
}

impl LocalGatewayToken {
    /// Point the config's token at `name` (atomically; the gateway watches the file).
    async fn name_in_config(&self, name: &str) -> StepResult {
        self.config
            .name_at(GATEWAY_TOKEN_AT, name, "access token")
            .await
    }
}

impl Rotator for LocalGatewayToken {
    fn key(&self) -> KeyId {
        KeyId::GatewayToken
    }

    fn mint<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        // 256 random bits, like the first one.
        Box::pin(async { Ok(Secret::random(32)) })
    }

    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // Tagged with the rotation: the gateway applies the file only when it differs from
        // what it last applied, and the last rotation's settle (naming the entry) may not
        // have been applied yet (it waits 300 ms for more changes). A name no earlier
        // config had is a change whatever it last applied.
        let name = format!("{}#{}", super::staging(&self.entry), ctx.rotation_id);
        Box::pin(async move {
            if self.config.named_at(GATEWAY_TOKEN_AT).as_deref() == Some(name.as_str()) {
                return Ok(());
            }
            let mark = self.config.log_mark();
            self.name_in_config(&name).await?;
            // The verify asks once the gateway says it applied it: asking before only
            // costs refused logins (which the gateway slows down).
            self.config.wait_reloaded(mark, RELOAD_WAIT).await;
            Ok(())
        })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            let kick_at = Instant::now() + KICK_AFTER;
            let mut kicked = false;
            let deadline = Instant::now() + APPLY_WITHIN;
            loop {
                let v = try_token(&self.url, new).await;
                if v == Verdict::Accepted {
                    return Ok(());
                }
                if !kicked && Instant::now() > kick_at {
                    kicked = true;
                    tracing::info!("the new token isn't in use yet: writing the settings again");
                    self.config.kick()?;
                }
                if Instant::now() > deadline {
                    return Err(match v {
                        Verdict::Unknown(e) => {
                            StepError::Transient(format!("your assistant didn't answer ({e})"))
                        }
                        _ => {
                            StepError::Permanent("your assistant didn't take the new token".into())
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }

    fn revoke_old<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            until(
                &self.url,
                ctx.old,
                Verdict::Refused,
                "your assistant still accepts the old token",
            )
            .await
        })
    }

    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            self.name_in_config(&self.entry.to_string()).await?;
            // Back on the old token (if the gateway runs; a stopped one reads it at start).
            match try_token(&self.url, ctx.old).await {
                Verdict::Unknown(_) | Verdict::Accepted => Ok(()),
                Verdict::Refused => {
                    until(
                        &self.url,
                        ctx.old,
                        Verdict::Accepted,
                        "your assistant didn't go back to the old token",
                    )
                    .await
                }
            }
        })
    }

    fn settle<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let mark = self.config.log_mark();
            self.name_in_config(&self.entry.to_string()).await?;
            // The same token, so nothing to verify; but a reload re-prepares the gateway's
            // model runtime, and a chat started meanwhile fails ("prepared model runtime
            // plugin generation was superseded"). So the rotation ends once it is done.
            self.config.wait_reloaded(mark, RELOAD_WAIT).await;
            Ok(())
        })
    }
}
