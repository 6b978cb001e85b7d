//! The model provider key of the assistant on this computer.
//!
//! The gateway reads the key through a SecretRef in its config (our keychain helper, like
//! the gateway token), and a change of the entry it names is applied live: the gateway
//! re-prepares its model runtime with the newly resolved key. Where the new key comes from:
//!
//! - **OpenRouter with a management key** ([`Mint::OpenRouter`]): a new key with the old
//!   one's spending cap and reset period (`POST /keys`), the old one deleted (`DELETE
//!   /keys/{hash}`) once the new one answered through the assistant. All in one click.
//! - **OpenAI with an Admin key** ([`Mint::OpenAiAdmin`]): a new service account of the
//!   person's project, with its own key; the old key's service account deleted once the
//!   new key answered through the assistant. Which service account holds the key in use is
//!   remembered ([`OPENAI_SERVICE_ACCOUNT`]); a key the person made (the first rotation)
//!   isn't one of ours, so that once the person deletes the old key, as for a given key.
//! - **A key the person made** ([`Mint::Given`]; a provider without a key API, or
//!   OpenRouter without a management key — a new OpenRouter sign-in gives one): it is
//!   checked at the provider before anything is installed; the old key is deleted by the
//!   person at the provider, and the rotation waits for that ([`StepError::NeedsYou`])
//!   and checks it is refused.
//!
//! The key may be shared: a server set up from this computer without a provider of its own
//! has a copy of it. Each such server ([`SharedServer`]) gets the new key in the same steps,
//! and its assistant must answer with it, before the old one is deleted. Each step does its
//! work here and on every server at the same time (each waits for its own gateway).
//!
//! The steps:
//! - **install**: the config names the staging entry (tagged with the rotation); on each
//!   sharing server, the new key in a file the config there is switched to;
//! - **verify new**: the provider accepts the new key, and a real completion through the
//!   assistant answers (here and on each sharing server);
//! - **revoke old**: deleted at OpenRouter, or done by the person;
//! - **verify old**: the provider refuses the old key, and the assistant still answers — so
//!   it is the new key it uses (here and on each sharing server);
//! - **settle**: the config names the entry again; the provider record's fingerprint (and
//!   the key's OpenRouter hash the spend cap uses) follow;
//! - **discard**: the config names the entry; a key minted at OpenRouter is deleted.

use super::driver::{candidates, Keys};
use super::gateway_token::Verdict;
use super::local_config::{provider_key_at, LocalConfig};
use super::server_provider_key::{answer, SharedServer};
use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::openai::{AdminError, OpenAiAdmin};
use crate::openrouter::{ApiError, OpenRouterApi};
use crate::secret::Secret;
use crate::store::Store;
use crate::vault::SecretRef;
use futures_util::future::try_join_all;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The conversation the key checks talk in (not the person's main chat).
pub const CHECK_SESSION: &str = "clawkeeper-key-check";

/// What the checks ask the assistant.
pub(super) const CHECK_PROMPT: &str = "Clawkeeper is checking your model key. Reply with just: OK";

/// How long the gateway may take to say it applied the install's config change.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The setting that remembers the OpenRouter hash of the assistant's key (for its cap).
pub const OPENROUTER_KEY_HASH: &str = "openrouter.key_hash";

/// The setting that remembers which OpenAI service account holds the assistant's key:
/// JSON `{"project", "id", "key"}` (`key`: the key's fingerprint, so that a key changed
/// since by other means isn't taken for it).
pub const OPENAI_SERVICE_ACCOUNT: &str = "openai.service_account";

/// How a key is checked at its provider.
#[derive(Debug, Clone)]
pub enum KeyCheck {
    /// OpenRouter's `GET /key` (any key; its own cap and spend).
    OpenRouter(OpenRouterApi),
    /// An OpenAI-compatible provider's `GET {base}/models` with the key.
    Models { base_url: String },
    /// Anthropic (through its OpenAI-compatible endpoint): its own `GET {base}/models`
    /// takes the key as `x-api-key` with an `anthropic-version`, not as a bearer token.
    Anthropic { base_url: String },
}

/// The `anthropic-version` Clawkeeper speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Whether a provider is Anthropic: its API's host, or its keys' prefix (`sk-ant-`).
pub fn is_anthropic(base_url: &str, key: Option<&Secret>) -> bool {
    let host = reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    host.is_some_and(|h| h == "anthropic.com" || h.ends_with(".anthropic.com"))
        || key.is_some_and(|k| k.expose().starts_with("sk-ant-"))
}

/// What a provider's answer to `GET {base}/models` says of a key.
async fn models_verdict(request: reqwest::RequestBuilder) -> Verdict {
    match request.timeout(Duration::from_secs(20)).send().await {
        Ok(r) if r.status().is_success() => Verdict::Accepted,
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Verdict::Refused,
        Ok(r) => Verdict::Unknown(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Verdict::Unknown(e.without_url().to_string()),
    }
}

fn models_url(base_url: &str) -> String {
    format!("{}/models", base_url.trim_end_matches('/'))
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
                models_verdict(
                    reqwest::Client::new()
                        .get(models_url(base_url))
                        .bearer_auth(key.expose()),
                )
                .await
            }
            KeyCheck::Anthropic { base_url } => {
                models_verdict(
                    reqwest::Client::new()
                        .get(models_url(base_url))
                        .header("x-api-key", key.expose())
                        .header("anthropic-version", ANTHROPIC_VERSION),
                )
                .await
            }
        }
    }

    /// Where the person deletes a key, in words.
    fn where_to_delete(&self) -> &'static str {
        match self {
            KeyCheck::OpenRouter(_) => "at openrouter.ai/settings/keys",
            KeyCheck::Models { .. } => "in your model provider's account",
            KeyCheck::Anthropic { .. } => {
                "in the Claude Console (console.anthropic.com → Settings → API keys)"
            }
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
    /// Made at OpenAI as a new service account of `project_id` with the organization's
    /// Admin key; the old key's service account (when it is one of ours) is deleted there.
    OpenAiAdmin {
        api: OpenAiAdmin,
        admin_key: Secret,
        project_id: String,
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
    /// The servers whose assistant uses this key too: the new key is put in use and
    /// verified on each before the old one is deleted.
    pub servers: Vec<SharedServer>,
}

/// Whether `r` waits for the person to delete the old key at the provider: a guided
/// rotation (a provider key they made — not one made at OpenRouter —, the Hetzner token)
/// that got to the revoke.
pub fn waits_for_person(r: &super::journal::Rotation) -> bool {
    let guided = match r.key {
        KeyId::ProviderKey => {
            r.detail.get("new_hash").is_none() && r.detail.get("old_service_account").is_none()
        }
        KeyId::CloudToken
        | KeyId::TelegramBotToken
        | KeyId::DiscordBotToken
        | KeyId::TailscaleApi => true,
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

fn admin_step_error(e: AdminError, what: &str) -> StepError {
    if e.is_transient() {
        StepError::Transient(format!("{what}: {e}"))
    } else {
        StepError::Permanent(format!("{what}: {e}"))
    }
}

/// The service account that holds `key` in `project`, as remembered (none: not known, or
/// the remembered one held another key).
pub async fn remembered_service_account(
    store: &Store,
    project: &str,
    key: &Secret,
) -> Option<String> {
    let raw = store.setting(OPENAI_SERVICE_ACCOUNT).await.ok().flatten()?;
    let v: Value = serde_json::from_str(&raw).ok()?;
    let same = v.get("project").and_then(Value::as_str) == Some(project)
        && v.get("key").and_then(Value::as_str) == Some(key.fingerprint().as_str());
    same.then(|| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .flatten()
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

    /// OpenAI's Admin API, the admin key and the project, when this rotation made its new
    /// key at OpenAI and the old key's service account is known (so it deletes it), and the
    /// admin key is still here.
    fn openai_revokes(&self, detail: &Value) -> Option<(&OpenAiAdmin, &Secret, &str, String)> {
        match &self.mint {
            Mint::OpenAiAdmin {
                api,
                admin_key,
                project_id,
            } if detail.get("new_service_account").is_some() => detail
                .get("old_service_account")
                .and_then(Value::as_str)
                .map(|old| (api, admin_key, project_id.as_str(), old.to_owned())),
            _ => None,
        }
    }

    /// Delete the service accounts this rotation made at OpenAI (found by their name: a
    /// crash may have come before the id was noted), but `keep`.
    async fn delete_minted_accounts(
        api: &OpenAiAdmin,
        admin_key: &Secret,
        project: &str,
        rotation_id: i64,
        keep: Option<&str>,
    ) -> Result<(), AdminError> {
        let name = minted_name(rotation_id);
        let listed = api.service_accounts(admin_key, project).await?;
        for a in listed
            .iter()
            .filter(|a| a.name == name && Some(a.id.as_str()) != keep)
        {
            match api.delete_service_account(admin_key, project, &a.id).await {
                Ok(()) | Err(AdminError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One completion through the assistant, with whichever gateway token it takes.
    async fn answer(&self) -> StepResult {
        let tokens = candidates(self.keys.as_ref(), &self.gateway_token)
            .await
            .map_err(|e| StepError::Transient(format!("the access token can't be read ({e})")))?;
        answer(&self.gateway_url, &tokens, "your assistant").await
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
    /// come before its hash was noted; disabled ones too: a key refused because it was
    /// disabled is the one an undo must delete).
    async fn delete_minted(
        api: &OpenRouterApi,
        management: &Secret,
        rotation_id: i64,
        keep: Option<&str>,
    ) -> StepResult {
        let name = minted_name(rotation_id);
        let listed = api
            .all_keys_with_disabled(management)
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
                Mint::OpenAiAdmin {
                    api,
                    admin_key,
                    project_id,
                } => {
                    // A crash after a create and before the journal noted it left an
                    // account whose key we can't read: delete it first.
                    Self::delete_minted_accounts(api, admin_key, project_id, ctx.rotation_id, None)
                        .await
                        .map_err(|e| {
                            admin_step_error(e, "OpenAI's service accounts can't be read")
                        })?;
                    let old = match ctx
                        .detail
                        .get("old_service_account")
                        .and_then(Value::as_str)
                    {
                        Some(id) => Some(id.to_owned()),
                        None => {
                            match remembered_service_account(&self.store, project_id, ctx.old).await
                            {
                                // Still there? (Deleted by hand: the old key is then refused
                                // anyway, which the revoke checks.)
                                Some(id) => api
                                    .service_accounts(admin_key, project_id)
                                    .await
                                    .map_err(|e| {
                                        admin_step_error(
                                            e,
                                            "OpenAI's service accounts can't be read",
                                        )
                                    })?
                                    .into_iter()
                                    .any(|a| a.id == id)
                                    .then_some(id),
                                None => None,
                            }
                        }
                    };
                    let created = api
                        .create_service_account(
                            admin_key,
                            project_id,
                            &minted_name(ctx.rotation_id),
                        )
                        .await
                        .map_err(|e| admin_step_error(e, "OpenAI didn't make a new key"))?;
                    ctx.detail["project"] = json!(project_id);
                    ctx.detail["new_service_account"] = json!(created.account.id);
                    if let Some(old) = old {
                        ctx.detail["old_service_account"] = json!(old);
                    }
                    Ok(created.key)
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
        Box::pin(async move {
            let (id, new) = (ctx.rotation_id, ctx.new_secret()?);
            // Here and on every server at once (each waits for its gateway's reload).
            let servers = try_join_all(self.servers.iter().map(|s| s.install(id, new)));
            tokio::try_join!(self.name_and_wait(&name), servers).map(drop)
        })
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
            let id = ctx.rotation_id;
            let servers = try_join_all(self.servers.iter().map(|s| s.verify_new(id, new)));
            tokio::try_join!(self.answer(), servers).map(drop)
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            if let Some((api, admin_key, project, old)) = self.openai_revokes(ctx.detail) {
                return match api.delete_service_account(admin_key, project, &old).await {
                    Ok(()) | Err(AdminError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(admin_step_error(e, "OpenAI didn't delete the old key")),
                };
            }
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
                    let ours = self.managed(ctx.detail).is_some()
                        || self.openai_revokes(ctx.detail).is_some();
                    return Err(if ours {
                        StepError::Permanent("your provider still accepts the old key".into())
                    } else {
                        StepError::NeedsYou(format!(
                            "The old key still works. Delete it {}, then Clawkeeper finishes.",
                            self.check.where_to_delete()
                        ))
                    });
                }
                Verdict::Unknown(e) => {
                    return Err(StepError::Transient(format!(
                        "your provider didn't answer ({e})"
                    )))
                }
            }
            // The old key is dead: an answer now proves the assistant uses the new one.
            let here = async {
                let answered = self.answer().await;
                if answered.is_err() {
                    // Make the gateway read its settings again before the next attempt.
                    self.config.kick()?;
                }
                answered
            };
            let (id, new) = (ctx.rotation_id, ctx.new_secret()?);
            let servers = try_join_all(self.servers.iter().map(|s| s.verify_in_use(id, new)));
            tokio::try_join!(here, servers).map(drop)
        })
    }

    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let steady = self.entry.to_string();
            let servers = try_join_all(self.servers.iter().map(|s| s.discard(ctx.old)));
            tokio::try_join!(self.name_and_wait(&steady), servers)?;
            // By name: a crash may have come between the create and the journal.
            if let Mint::OpenRouter { api, management } = &self.mint {
                let old = ctx.detail.get("old_hash").and_then(Value::as_str);
                Self::delete_minted(api, management, ctx.rotation_id, old).await?;
            }
            if let Mint::OpenAiAdmin {
                api,
                admin_key,
                project_id,
            } = &self.mint
            {
                let old = ctx
                    .detail
                    .get("old_service_account")
                    .and_then(Value::as_str);
                match Self::delete_minted_accounts(api, admin_key, project_id, ctx.rotation_id, old)
                    .await
                {
                    Ok(()) => {}
                    // The admin key is refused and this rotation noted no account of its own
                    // (it failed before making one, or a crash came right after a create):
                    // nothing can be looked up; a leftover would carry this rotation's name.
                    Err(AdminError::AdminKeyRefused { .. } | AdminError::Forbidden { .. })
                        if ctx.detail.get("new_service_account").is_none() =>
                    {
                        tracing::warn!(
                            rotation = ctx.rotation_id,
                            "OpenAI refused the admin key; no service account of this rotation is known"
                        );
                    }
                    Err(e) => {
                        return Err(admin_step_error(
                            e,
                            "the new service account can't be deleted",
                        ))
                    }
                }
            }
            Ok(())
        })
    }

    fn settle<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            // The same key, so nothing to verify; a chat during the reload would fail, so
            // this waits for it (as the gateway token's settle).
            let new = ctx.new_secret()?;
            let steady = self.entry.to_string();
            let servers = try_join_all(self.servers.iter().map(|s| s.settle(new)));
            tokio::try_join!(self.name_and_wait(&steady), servers)?;
            let instances = std::iter::once(ctx.instance)
                .chain(self.servers.iter().map(|s| s.instance.as_str()));
            for instance in instances {
                // A server's record of its own (it shares the key: the same entry).
                if let Ok(Some(mut rec)) = self.store.provider(instance).await {
                    rec.key_fingerprint = new.fingerprint();
                    rec.key_saved_at = crate::time::now_rfc3339();
                    if let Err(e) = self.store.save_provider(&rec).await {
                        return Err(StepError::Transient(format!(
                            "the provider settings can't be saved ({e})"
                        )));
                    }
                }
            }
            let hash = ctx.detail.get("new_hash").and_then(Value::as_str);
            let noted = match hash {
                Some(h) => self.store.set_setting(OPENROUTER_KEY_HASH, h).await,
                None => self.store.delete_setting(OPENROUTER_KEY_HASH).await,
            };
            noted.map_err(|e| StepError::Transient(format!("a setting can't be saved ({e})")))?;
            // Which OpenAI service account holds the new key (none: one the person made).
            let account = match (
                ctx.detail.get("project").and_then(Value::as_str),
                ctx.detail
                    .get("new_service_account")
                    .and_then(Value::as_str),
            ) {
                (Some(project), Some(id)) => Some(json!({
                    "project": project, "id": id, "key": new.fingerprint()
                })),
                _ => None,
            };
            let noted = match account {
                Some(a) => {
                    self.store
                        .set_setting(OPENAI_SERVICE_ACCOUNT, &a.to_string())
                        .await
                }
                None => self.store.delete_setting(OPENAI_SERVICE_ACCOUNT).await,
            };
            noted.map_err(|e| StepError::Transient(format!("a setting can't be saved ({e})")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_is_known_by_its_host_or_its_keys() {
        assert!(is_anthropic("https://api.anthropic.com/v1", None));
        assert!(is_anthropic("https://API.Anthropic.com/v1/", None));
        assert!(!is_anthropic("https://anthropic.com.example.net/v1", None));
        assert!(!is_anthropic("https://openrouter.ai/api/v1", None));
        assert!(is_anthropic(
            "http://127.0.0.1:9/v1",
            Some(&Secret::new("sk-ant-api03-abc"))
        ));
        assert!(!is_anthropic(
            "http://127.0.0.1:9/v1",
            Some(&Secret::new("sk-proj-abc"))
        ));
        assert!(!is_anthropic("not a url", None));
    }
}
