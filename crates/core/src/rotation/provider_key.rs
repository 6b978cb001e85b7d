//! The model provider key of the assistant on this computer.
//!
//! The gateway reads the key through a SecretRef in its config (our keychain helper, like
//! the gateway token), and a change of the entry it names is applied live: the gateway
//! re-prepares its model runtime with the newly resolved key. Where the new key comes from:
//!
//! - **OpenRouter with a management key** ([`Mint::OpenRouter`]): a new key with the old
//!   one's spending cap and reset period (`POST /keys`), the old one deleted (`DELETE
//!   /keys/{hash}`) once the new one answered through the assistant. All in one click.
//! - **A key the person made** ([`Mint::Given`]; a provider without a key API, or
//!   OpenRouter without a management key — a new OpenRouter sign-in gives one): it is
//!   checked at the provider before anything is installed; the old key is deleted by the
//!   person at the provider, and the rotation waits for that ([`StepError::NeedsYou`])
//!   and checks it is refused.
//!
//! The steps:
//! - **install**: the config names the staging entry (tagged with the rotation);
//! - **verify new**: the provider accepts the new key, and a real completion through the
//!   assistant answers;
//! - **revoke old**: deleted at OpenRouter, or done by the person;
//! - **verify old**: the provider refuses the old key, and the assistant still answers — so
//!   it is the new key it uses;
//! - **settle**: the config names the entry again; the provider record's fingerprint (and
//!   the key's OpenRouter hash the spend cap uses) follow;
//! - **discard**: the config names the entry; a key minted at OpenRouter is deleted.

use super::driver::{candidates, Keys};
use super::gateway_token::Verdict;
use super::local_config::{provider_key_at, LocalConfig};
use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::gateway::{self, chat, ClientInfo};
use crate::openrouter::{ApiError, OpenRouterApi};
use crate::secret::Secret;
use crate::store::Store;
use crate::vault::SecretRef;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The conversation the key checks talk in (not the person's main chat).
pub const CHECK_SESSION: &str = "clawkeeper-key-check";

/// What the checks ask the assistant.
const CHECK_PROMPT: &str = "Clawkeeper is checking your model key. Reply with just: OK";

/// How long a check's completion may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// How long the gateway may take to say it applied the install's config change.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The setting that remembers the OpenRouter hash of the assistant's key (for its cap).
pub const OPENROUTER_KEY_HASH: &str = "openrouter.key_hash";

/// How a key is checked at its provider.
#[derive(Debug, Clone)]
pub enum KeyCheck {
    /// OpenRouter's `GET /key` (any key; its own cap and spend).
    OpenRouter(OpenRouterApi),
    /// An OpenAI-compatible provider's `GET {base}/models` with the key.
    Models { base_url: String },
}

impl KeyCheck {
    /// What the provider says to `key`.
    pub async fn verdict(&self, key: &Secret) -> Verdict {
        match self {
            KeyCheck::OpenRouter(api) => match api.key_info(key).await {
                Ok(_) => Verdict::Accepted,
                Err(ApiError::KeyRefused { .. } | ApiError::NotFound { .. }) => Verdict::Refused,
                Err(e) => Verdict::Unknown(e.to_string()),
            },
            KeyCheck::Models { base_url } => {
                let url = format!("{}/models", base_url.trim_end_matches('/'));
                match reqwest::Client::new()
                    .get(&url)
                    .bearer_auth(key.expose())
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Verdict::Accepted,
                    Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Verdict::Refused,
                    Ok(r) => Verdict::Unknown(format!("HTTP {}", r.status().as_u16())),
                    Err(e) => Verdict::Unknown(e.without_url().to_string()),
                }
            }
        }
    }

    /// Where the person deletes a key, in words.
    fn where_to_delete(&self) -> &'static str {
        match self {
            KeyCheck::OpenRouter(_) => "at openrouter.ai/settings/keys",
            KeyCheck::Models { .. } => "in your model provider's account",
        }
    }
}

/// Where the new key comes from.
pub enum Mint {
    /// Made at OpenRouter with the account's management key (with the old key's cap); the
    /// old one is deleted there.
    OpenRouter {
        api: OpenRouterApi,
        management: Secret,
    },
    /// Made by the person (pasted, or from a new sign-in); they delete the old one.
    /// `None` when resuming a rotation whose new key is already in the keychain.
    Given(Option<Secret>),
}

/// The model provider key of the assistant on this computer.
pub struct LocalProviderKey {
    pub config: LocalConfig,
    /// The assistant's gateway (`ws://…`) and its token's keychain entry (the checks chat
    /// through it).
    pub gateway_url: String,
    pub gateway_token: SecretRef,
    pub keys: Arc<dyn Keys>,
    /// The provider key's keychain entry.
    pub entry: SecretRef,
    pub check: KeyCheck,
    pub mint: Mint,
    pub store: Store,
}

/// Whether `r` waits for the person to delete the old key at the provider: a guided
/// rotation (a provider key they made — not one made at OpenRouter —, the Hetzner token)
/// that got to the revoke.
pub fn waits_for_person(r: &super::journal::Rotation) -> bool {
    let guided = match r.key {
        KeyId::ProviderKey => r.detail.get("new_hash").is_none(),
        KeyId::CloudToken | KeyId::TailscaleApi => true,
        _ => false,
    };
    guided
        && r.direction == super::journal::Direction::Forward
        && matches!(r.step, super::Step::RevokeOld | super::Step::VerifyOld)
}

/// The name a rotation gives the key it makes at OpenRouter (found again by it after a crash).
fn minted_name(rotation_id: i64) -> String {
    format!("Clawkeeper assistant (rotation {rotation_id})")
}

fn api_step_error(e: ApiError, what: &str) -> StepError {
    if e.is_transient() {
        StepError::Transient(format!("{what}: {e}"))
    } else {
        StepError::Permanent(format!("{what}: {e}"))
    }
}

impl LocalProviderKey {
    /// OpenRouter's API and the management key, when this rotation's new key was made at
    /// OpenRouter (its hash noted at the mint) and the management key is still here. A
    /// rotation resumed with a different source (the person pasted the new key; the
    /// management key was forgotten since) leaves the old key to the person.
    fn managed(&self, detail: &Value) -> Option<(&OpenRouterApi, &Secret)> {
        match &self.mint {
            Mint::OpenRouter { api, management } if detail.get("new_hash").is_some() => {
                Some((api, management))
            }
            _ => None,
        }
    }

    /// One completion through the assistant, with whichever gateway token it takes.
    async fn answer(&self) -> StepResult {
        let tokens = candidates(self.keys.as_ref(), &self.gateway_token)
            .await
            .map_err(|e| StepError::Transient(format!("the access token can't be read ({e})")))?;
        let mut last = String::from("no access token");
        for token in &tokens {
            let mut conn =
                match gateway::connect_once(&self.gateway_url, token, &ClientInfo::default()).await
                {
                    Ok(c) => c,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
            let answer = chat::ask(&mut conn, CHECK_SESSION, CHECK_PROMPT, ANSWER_WITHIN).await;
            conn.close().await;
            return match answer {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(p)) => Err(StepError::Transient(format!(
                    "your assistant couldn't reach the model: {}",
                    p.message
                ))),
                Err(e) => Err(StepError::Transient(format!(
                    "your assistant didn't answer ({e})"
                ))),
            };
        }
        Err(StepError::Transient(format!(
            "your assistant didn't answer ({last})"
        )))
    }

    /// Name `entry` in the config and wait until the gateway says it applied it.
    async fn name_and_wait(&self, name: &str) -> StepResult {
        if self.config.named_at(&provider_key_at()).as_deref() == Some(name) {
            return Ok(());
        }
        let mark = self.config.log_mark();
        self.config
            .name_at(&provider_key_at(), name, "model provider key")
            .await?;
        self.config.wait_reloaded(mark, APPLY_WAIT).await;
        Ok(())
    }

    /// Delete what this rotation minted at OpenRouter (found by its name: a crash may have
    /// come before its hash was noted).
    async fn delete_minted(
        api: &OpenRouterApi,
        management: &Secret,
        rotation_id: i64,
        keep: Option<&str>,
    ) -> StepResult {
        let name = minted_name(rotation_id);
        let listed = api
            .all_keys(management)
            .await
            .map_err(|e| api_step_error(e, "OpenRouter's key list can't be read"))?;
        for k in listed
            .iter()
            .filter(|k| k.name == name && Some(k.hash.as_str()) != keep)
        {
            match api.delete_key(management, &k.hash).await {
                Ok(()) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(api_step_error(e, "a new key can't be deleted")),
            }
        }
        Ok(())
    }
}

impl Rotator for LocalProviderKey {
    fn key(&self) -> KeyId {
        KeyId::ProviderKey
    }

    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        Box::pin(async move {
            match &self.mint {
                Mint::Given(None) => Err(StepError::Permanent(
                    "the new key is missing; paste it again".into(),
                )),
                Mint::Given(Some(key)) => {
                    if key.fingerprint() == ctx.old.fingerprint() {
                        return Err(StepError::Permanent(
                            "this is the key already in use; make a new one first".into(),
                        ));
                    }
                    match self.check.verdict(key).await {
                        Verdict::Accepted => Ok(key.clone()),
                        Verdict::Refused => Err(StepError::Permanent(
                            "your provider refused the new key; check that you copied all of it"
                                .into(),
                        )),
                        Verdict::Unknown(e) => Err(StepError::Transient(format!(
                            "your provider didn't answer ({e})"
                        ))),
                    }
                }
                Mint::OpenRouter { api, management } => {
                    // A crash after a create and before the journal noted it left a key we
                    // can't read (OpenRouter shows a key's text once): delete it first.
                    Self::delete_minted(api, management, ctx.rotation_id, None).await?;
                    let old_hash = match ctx.detail.get("old_hash").and_then(Value::as_str) {
                        Some(h) => h.to_owned(),
                        None => api
                            .find_key_hash(management, ctx.old)
                            .await
                            .map_err(|e| api_step_error(e, "the key in use can't be found"))?,
                    };
                    let listed = api
                        .all_keys(management)
                        .await
                        .map_err(|e| api_step_error(e, "OpenRouter's key list can't be read"))?;
                    let old = listed.iter().find(|k| k.hash == old_hash).ok_or_else(|| {
                        StepError::Permanent("the key in use isn't on the account any more".into())
                    })?;
                    let created = api
                        .create_key(
                            management,
                            &minted_name(ctx.rotation_id),
                            old.limit,
                            old.limit_reset,
                        )
                        .await
                        .map_err(|e| api_step_error(e, "OpenRouter didn't make a new key"))?;
                    ctx.detail["old_hash"] = json!(old_hash);
                    ctx.detail["new_hash"] = json!(created.info.hash);
                    Ok(created.key)
                }
            }
        })
    }

    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // Tagged with the rotation, like the gateway token's (a name no earlier config had).
        let name = format!("{}#{}", super::staging(&self.entry), ctx.rotation_id);
        Box::pin(async move { self.name_and_wait(&name).await })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            match self.check.verdict(new).await {
                Verdict::Accepted => {}
                Verdict::Refused => {
                    return Err(StepError::Permanent(
                        "your provider refused the new key".into(),
                    ))
                }
                Verdict::Unknown(e) => {
                    return Err(StepError::Transient(format!(
                        "your provider didn't answer ({e})"
                    )))
                }
            }
            self.answer().await
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let old_hash = ctx.detail.get("old_hash").and_then(Value::as_str);
            match (self.managed(ctx.detail), old_hash) {
                (Some((api, management)), Some(hash)) => {
                    match api.delete_key(management, hash).await {
                        Ok(()) | Err(ApiError::NotFound { .. }) => Ok(()),
                        Err(e) => Err(api_step_error(e, "OpenRouter didn't delete the old key")),
                    }
                }
                _ => match self.check.verdict(ctx.old).await {
                    Verdict::Refused => Ok(()),
                    _ => Err(StepError::NeedsYou(format!(
                        "The new key works. Now delete the old key {} — Clawkeeper then checks that it no longer works and finishes.",
                        self.check.where_to_delete()
                    ))),
                },
            }
        })
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            match self.check.verdict(ctx.old).await {
                Verdict::Refused => {}
                Verdict::Accepted => {
                    return Err(match self.managed(ctx.detail) {
                        Some(_) => {
                            StepError::Permanent("your provider still accepts the old key".into())
                        }
                        None => StepError::NeedsYou(format!(
                            "The old key still works. Delete it {}, then Clawkeeper finishes.",
                            self.check.where_to_delete()
                        )),
                    })
                }
                Verdict::Unknown(e) => {
                    return Err(StepError::Transient(format!(
                        "your provider didn't answer ({e})"
                    )))
                }
            }
            // The old key is dead: an answer now proves the assistant uses the new one.
            let answered = self.answer().await;
            if answered.is_err() {
                // Make the gateway read its settings again before the next attempt.
                self.config.kick()?;
            }
            answered
        })
    }

    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            self.name_and_wait(&self.entry.to_string()).await?;
            // By name: a crash may have come between the create and the journal.
            if let Mint::OpenRouter { api, management } = &self.mint {
                let old = ctx.detail.get("old_hash").and_then(Value::as_str);
                Self::delete_minted(api, management, ctx.rotation_id, old).await?;
            }
            Ok(())
        })
    }

    fn settle<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            // The same key, so nothing to verify; a chat during the reload would fail, so
            // this waits for it (as the gateway token's settle).
            self.name_and_wait(&self.entry.to_string()).await?;
            let new = ctx.new_secret()?;
            if let Ok(Some(mut rec)) = self.store.provider(ctx.instance).await {
                rec.key_fingerprint = new.fingerprint();
                rec.key_saved_at = crate::time::now_rfc3339();
                if let Err(e) = self.store.save_provider(&rec).await {
                    return Err(StepError::Transient(format!(
                        "the provider settings can't be saved ({e})"
                    )));
                }
            }
            let hash = ctx.detail.get("new_hash").and_then(Value::as_str);
            let noted = match hash {
                Some(h) => self.store.set_setting(OPENROUTER_KEY_HASH, h).await,
                None => self.store.delete_setting(OPENROUTER_KEY_HASH).await,
            };
            noted.map_err(|e| StepError::Transient(format!("a setting can't be saved ({e})")))
        })
    }
}
