//! Key rotation: every secret an instance depends on, replaced by a journaled job with the
//! guarantee that at every instant a key the app holds still works.
//!
//! A rotation is a persisted state machine ([`journal`]): mint new → install → verify new
//! → revoke old → verify old refused → commit. What each step does depends on the secret
//! (a [`Rotator`]); the order, the persistence, the retries, the roll-back and the resume
//! after a crash are the [`driver`]'s, the same for all.
//!
//! Where the secrets are meanwhile:
//! - the old one stays in its keychain entry until the commit;
//! - the new one is written to the entry's *staging* entry (`…--next`) right after it is
//!   minted, before anything is installed; the commit copies it into the entry and deletes
//!   the staging one.
//!
//! So from the mint on, the keychain holds both, and whichever of the two the host accepts
//! is in it: before the install the old one, after the new one is verified the new one.
//! [`current`] tells the app's clients which one to use while a rotation runs.
//!
//! Crash safety: every step is idempotent (it checks before it acts), and the journal is
//! written after each step. A rotation found unfinished at start-up is resumed: forward
//! once the new secret has been installed and verified, rolled back (the old one put back,
//! the new one discarded) if it failed before that. The old secret is revoked only after the
//! new one was verified end to end.

pub mod bot_token;
pub mod cloud_token;
pub mod driver;
pub mod gateway_token;
pub mod guided;
pub mod journal;
pub mod local_config;
pub mod provider_key;
pub mod remind;
pub mod server_provider_key;
pub mod server_token;
pub mod ssh_key;
pub mod tailscale_api;
pub mod tailscale_node;

use crate::secret::Secret;
use crate::vault::{SecretKind, SecretRef};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

/// A step of a rotation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Mint,
    Install,
    VerifyNew,
    RevokeOld,
    VerifyOld,
    Commit,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Mint,
        Step::Install,
        Step::VerifyNew,
        Step::RevokeOld,
        Step::VerifyOld,
        Step::Commit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Mint => "mint",
            Step::Install => "install",
            Step::VerifyNew => "verify_new",
            Step::RevokeOld => "revoke_old",
            Step::VerifyOld => "verify_old",
            Step::Commit => "commit",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The next step forward (none after the commit).
    pub fn next(self) -> Option<Step> {
        Step::ALL
            .iter()
            .position(|s| *s == self)
            .and_then(|i| Step::ALL.get(i + 1))
            .copied()
    }

    /// What the progress view says while it runs.
    pub fn label(self) -> &'static str {
        match self {
            Step::Mint => "Making a new key",
            Step::Install => "Putting the new key in place",
            Step::VerifyNew => "Checking that the new key works",
            Step::RevokeOld => "Cancelling the old key",
            Step::VerifyOld => "Checking that the old key no longer works",
            Step::Commit => "Saving the new key in your keychain",
        }
    }
}

/// Which secret of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyId {
    /// The token the app (and nothing else) uses to reach the assistant's gateway.
    GatewayToken,
    /// The model provider's API key the assistant calls the model with.
    ProviderKey,
    /// The app's SSH key for a server.
    SshKey,
    /// The server's node on the person's tailnet (re-authenticated with a fresh auth key).
    TailscaleNode,
    /// The cloud provider's API token (Hetzner) the app creates and deletes servers with.
    CloudToken,
    /// The Telegram bot token of the assistant's Telegram chat (guided: BotFather).
    #[serde(rename = "telegram-token")]
    TelegramBotToken,
    /// The Discord bot token of the assistant's Discord chat (guided: Developer Portal).
    #[serde(rename = "discord-token")]
    DiscordBotToken,
    /// The Tailscale API credential (access token or OAuth client) the app mints auth keys
    /// and looks up devices with.
    TailscaleApi,
}

impl KeyId {
    pub const ALL: [KeyId; 8] = [
        KeyId::GatewayToken,
        KeyId::ProviderKey,
        KeyId::SshKey,
        KeyId::TailscaleNode,
        KeyId::CloudToken,
        KeyId::TelegramBotToken,
        KeyId::DiscordBotToken,
        KeyId::TailscaleApi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyId::GatewayToken => "gateway-token",
            KeyId::ProviderKey => "provider-key",
            KeyId::SshKey => "ssh-key",
            KeyId::TailscaleNode => "tailscale-node",
            KeyId::CloudToken => "cloud-token",
            KeyId::TelegramBotToken => "telegram-token",
            KeyId::DiscordBotToken => "discord-token",
            KeyId::TailscaleApi => "tailscale-api",
        }
    }

    pub fn parse(s: &str) -> Option<KeyId> {
        KeyId::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Its keychain entry's kind (the tailnet node's key lives on the server only).
    pub fn secret_kind(self) -> Option<SecretKind> {
        match self {
            KeyId::GatewayToken => Some(SecretKind::GatewayToken),
            KeyId::ProviderKey => Some(SecretKind::ProviderKey),
            KeyId::SshKey => Some(SecretKind::SshKey),
            KeyId::TailscaleNode => None,
            KeyId::CloudToken => Some(SecretKind::CloudToken),
            KeyId::TelegramBotToken => Some(SecretKind::TelegramBotToken),
            KeyId::DiscordBotToken => Some(SecretKind::DiscordBotToken),
            KeyId::TailscaleApi => Some(SecretKind::TailscaleApi),
        }
    }

    /// As a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            KeyId::GatewayToken => "Assistant access token",
            KeyId::ProviderKey => "Model provider key",
            KeyId::SshKey => "Server login key (SSH)",
            KeyId::TailscaleNode => "Server's tailnet login",
            KeyId::CloudToken => "Hetzner API token",
            KeyId::TelegramBotToken => "Telegram bot token",
            KeyId::DiscordBotToken => "Discord bot token",
            KeyId::TailscaleApi => "Tailscale API access",
        }
    }
}

/// The staging entry of a keychain entry: where a rotation keeps the new secret until it
/// commits.
pub fn staging(r: &SecretRef) -> SecretRef {
    SecretRef::new(r.kind, &format!("{}{STAGING_SUFFIX}", r.instance))
}

/// Appended to the instance part of a staging entry's name.
pub const STAGING_SUFFIX: &str = "--next";

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth trying again (the host or provider didn't answer, a 5xx, a timeout).
    #[error("{0}")]
    Transient(String),
    /// Trying again won't help (the key was refused, the provider said no).
    #[error("{0}")]
    Permanent(String),
    /// The person has to do something first (delete the old key at the provider): the
    /// rotation waits, both keys working, and checks again later.
    #[error("{0}")]
    NeedsYou(String),
}

impl StepError {
    pub fn message(&self) -> &str {
        match self {
            StepError::Transient(m) | StepError::Permanent(m) | StepError::NeedsYou(m) => m,
        }
    }
}

pub type StepResult<T = ()> = std::result::Result<T, StepError>;

/// A step's future.
pub type StepFuture<'a, T = ()> = Pin<Box<dyn Future<Output = StepResult<T>> + Send + 'a>>;

/// What a step knows of the rotation: the secrets (from the keychain) and the rotator's own
/// non-secret notes, kept in the journal across steps and crashes.
pub struct Ctx<'a> {
    pub rotation_id: i64,
    pub instance: &'a str,
    pub old: &'a Secret,
    /// `None` only in [`Rotator::mint`].
    pub new: Option<&'a Secret>,
    pub detail: &'a mut serde_json::Value,
}

impl Ctx<'_> {
    /// The new secret (every step after the mint has it).
    pub fn new_secret(&self) -> StepResult<&Secret> {
        self.new
            .ok_or_else(|| StepError::Permanent("the new key is missing".into()))
    }
}

/// One kind of secret's rotation steps. Each must be idempotent: after a crash it may run
/// again though it had already done its work.
pub trait Rotator: Send + Sync {
    fn key(&self) -> KeyId;

    /// How the journal, the audit log and the keys list name a secret of this kind: never
    /// the secret, only a short digest of it (an SSH key: its public key's fingerprint, as
    /// the server's records and `ssh-keygen -l` show it).
    fn fingerprint(&self, secret: &Secret) -> String {
        secret.fingerprint()
    }

    /// A new secret. May note in `ctx.detail` what it made (e.g. the provider's id of a new
    /// key), so that [`Rotator::discard`] can remove it.
    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret>;

    /// Put the new secret where it is used. For a secret that replaces the old in place
    /// (a token in the host's config), this is also where the old stops working.
    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a>;

    /// The new secret works, end to end.
    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a>;

    /// The old secret is cancelled where it was issued (no-op when the install replaced it).
    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a>;

    /// The old secret is refused. `Transient` while it still works: revoked again, later.
    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a>;

    /// Roll back before the old was revoked: the old put back where the install replaced
    /// it (the new one taken out), and the new one cancelled where it was minted.
    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a>;

    /// At the commit, once the keychain's entry holds the new secret and before its staging
    /// entry is deleted: anything that read the new secret from the staging entry reads it
    /// from the entry again (the local gateway's config names the keychain entry it reads).
    fn settle<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// A rotator borrowed (to resume with one that lives elsewhere).
impl<R: Rotator + ?Sized> Rotator for &R {
    fn key(&self) -> KeyId {
        (**self).key()
    }
    fn fingerprint(&self, secret: &Secret) -> String {
        (**self).fingerprint(secret)
    }
    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        (**self).mint(ctx)
    }
    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        (**self).install(ctx)
    }
    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        (**self).verify_new(ctx)
    }
    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        (**self).revoke_old(ctx)
    }
    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        (**self).verify_old_refused(ctx)
    }
    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        (**self).discard(ctx)
    }
    fn settle<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        (**self).settle(ctx)
    }
}

/// A gateway client's token source while a rotation may run: each connection attempt takes
/// the next of the keychain's candidates — the staging entry's (the new token, once minted)
/// first, then the entry's — so a token the gateway refused is followed by the other one.
/// The gateway holds exactly one of the two at any time.
pub fn token_source(vault: crate::vault::Vault, entry: SecretRef) -> crate::gateway::TokenSource {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let turn = std::sync::Arc::new(AtomicUsize::new(0));
    std::sync::Arc::new(move || {
        let mut list = Vec::with_capacity(2);
        if let Ok(next) = vault.read_blocking(&staging(&entry)) {
            list.push(next);
        }
        match vault.read_blocking(&entry) {
            Ok(s) => list.push(s),
            Err(_) if !list.is_empty() => {}
            Err(e) => return Err(crate::gateway::Error::Auth(e.to_string())),
        }
        let i = turn.fetch_add(1, Ordering::Relaxed) % list.len();
        Ok(list.swap_remove(i))
    })
}

/// The keychain entry a gateway's config should name for `key` (its token, the model
/// provider key) now: the staging entry while a rotation has installed the new secret there
/// and not yet committed it, else the entry. (A gateway restarted mid-rotation then comes
/// up with the secret the rotation is verifying — after the revoke, the only one that
/// works.)
pub async fn live_entry(
    store: &crate::store::Store,
    keys: &dyn driver::Keys,
    instance: &str,
    key: KeyId,
    entry: &SecretRef,
) -> SecretRef {
    let next = staging(entry);
    let installed = matches!(
        journal::running_of(store, instance, key).await,
        Ok(Some(r)) if r.direction == journal::Direction::Forward && r.step > Step::Install
    );
    if installed && keys.read(&next).await.is_ok() {
        next
    } else {
        entry.clone()
    }
}

#[cfg(test)]
mod key_id_tests {
    use super::KeyId;

    #[test]
    fn serialized_as_named() {
        for k in KeyId::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().to_owned())
            );
            assert_eq!(KeyId::parse(k.as_str()), Some(k));
        }
    }
}
