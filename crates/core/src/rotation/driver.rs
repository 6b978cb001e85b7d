//! Runs a rotation's steps in order, writes the journal after each, retries what is worth
//! retrying, rolls back what failed before the old secret was revoked, and resumes what a
//! crash left unfinished. The same for every kind of secret; what a step does is the
//! [`Rotator`]'s.
//!
//! The rules:
//! - A step that fails for good (the new key refused, the provider said no) **before** the
//!   old secret was revoked turns the rotation back: the old secret is put back, the new
//!   one discarded, the old one stays in the keychain. Nothing changed.
//! - A step that fails for now (host or provider not answering) is tried again a few
//!   times, then the rotation is left where it is, with both secrets in the keychain, and
//!   finished by the next [`Driver::resume_all`] (at start-up, or "Try again").
//! - From the revoke on, a rotation only goes forward: the new secret was verified.
//! - The keychain's entry keeps the old secret until the commit; the new one waits in the
//!   staging entry from right after the mint. So whichever the host accepts is in the
//!   keychain at every instant.

use super::journal::{self, Direction, Outcome, Rotation};
use super::{staging, Ctx, KeyId, Rotator, Step, StepError};
use crate::secret::Secret;
use crate::store::Store;
use crate::vault::{self, SecretRef, Vault};
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Why a rotation didn't finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] crate::store::Error),
    #[error("{0}")]
    Keychain(#[from] vault::Error),
    /// It turned back: nothing changed, the old key is still the one in use.
    #[error("The key was not changed: {0}")]
    RolledBack(String),
    /// It is waiting to be finished (both keys are in the keychain; the one in use works).
    #[error("The key change isn't finished yet: {0}")]
    Pending(String),
    /// It waits for the person to do something at the provider (said in the message);
    /// checked again by itself, or with "Check again".
    #[error("{0}")]
    NeedsYou(String),
    #[error("{0} can't be rotated here.")]
    Unsupported(&'static str),
}

impl crate::problem::UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Store(_) => "store_error",
            Error::Keychain(e) => e.code(),
            Error::RolledBack(_) => "rotation_rolled_back",
            Error::Pending(_) => "rotation_pending",
            Error::NeedsYou(_) => "rotation_needs_you",
            Error::Unsupported(_) => "rotation_unsupported",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(_) => None,
            Error::Keychain(e) => e.hint(),
            Error::RolledBack(_) => Some("Your old key still works. Fix what is said above, then rotate again."),
            Error::Pending(_) => Some(
                "Your assistant keeps working meanwhile. Clawkeeper finishes the change by itself when it can; or press Try again.",
            ),
            Error::NeedsYou(_) => Some(
                "Both keys work until then. Clawkeeper checks again by itself every few minutes; or press Check again.",
            ),
            Error::Unsupported(_) => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

type KeyFuture<'a, T> = Pin<Box<dyn Future<Output = vault::Result<T>> + Send + 'a>>;

/// Where the secrets are kept: the OS keychain ([`Vault`]), or a test's stand-in.
pub trait Keys: Send + Sync {
    fn store<'a>(&'a self, r: &'a SecretRef, s: &'a Secret) -> KeyFuture<'a, ()>;
    fn read<'a>(&'a self, r: &'a SecretRef) -> KeyFuture<'a, Secret>;
    fn delete<'a>(&'a self, r: &'a SecretRef) -> KeyFuture<'a, ()>;
}

impl Keys for Vault {
    fn store<'a>(&'a self, r: &'a SecretRef, s: &'a Secret) -> KeyFuture<'a, ()> {
        Box::pin(Vault::store(self, r, s))
    }
    fn read<'a>(&'a self, r: &'a SecretRef) -> KeyFuture<'a, Secret> {
        Box::pin(Vault::read(self, r))
    }
    fn delete<'a>(&'a self, r: &'a SecretRef) -> KeyFuture<'a, ()> {
        Box::pin(Vault::delete(self, r))
    }
}

/// A rotation's progress, for the progress view.
pub type Progress = Arc<dyn Fn(&Rotation) + Send + Sync>;

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts of one step in one run before leaving it for later.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            wait: Duration::from_millis(500),
        }
    }
}

/// For the crash tests: stop for good at a step boundary (before the step; with `after`,
/// after its work but before the journal says so) and say so in a file, so that the test
/// kills the process there. Read from `CLAWKEEPER_TEST_ROTATION_STOP` (`<key>:<step>` or
/// `<key>:<step>:after`) and `CLAWKEEPER_TEST_ROTATION_MARKER` in debug builds only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopAt {
    pub key: KeyId,
    pub step: Step,
    pub after: bool,
    pub marker: PathBuf,
}

impl StopAt {
    pub fn from_env() -> Option<Self> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let spec = std::env::var("CLAWKEEPER_TEST_ROTATION_STOP").ok()?;
        let marker = std::env::var_os("CLAWKEEPER_TEST_ROTATION_MARKER")?;
        let mut parts = spec.split(':');
        let key = KeyId::parse(parts.next()?)?;
        let step = Step::parse(parts.next()?)?;
        let after = parts.next() == Some("after");
        Some(Self {
            key,
            step,
            after,
            marker: PathBuf::from(marker),
        })
    }

    async fn hold(&self, key: KeyId, step: Step, after: bool) {
        if self.key == key && self.step == step && self.after == after {
            let _ = std::fs::write(&self.marker, format!("{}:{}", key.as_str(), step.as_str()));
            tracing::warn!(
                key = key.as_str(),
                step = step.as_str(),
                after,
                "test stop: waiting to be killed"
            );
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    }
}

/// Runs rotations against one store and keychain.
#[derive(Clone)]
pub struct Driver {
    store: Store,
    keys: Arc<dyn Keys>,
    pub retry: Retry,
    pub progress: Option<Progress>,
    pub stop_at: Option<StopAt>,
}

impl Driver {
    pub fn new(store: Store, keys: Arc<dyn Keys>) -> Self {
        Self {
            store,
            keys,
            retry: Retry::default(),
            progress: None,
            stop_at: StopAt::from_env(),
        }
    }

    /// Rotate `rotator`'s secret of `instance` (or finish the rotation of it already
    /// running). Ok: done, the new key in use and in the keychain, the old one refused.
    pub async fn rotate(
        &self,
        rotator: &dyn Rotator,
        instance: &str,
        batch: Option<&str>,
    ) -> Result<Rotation> {
        let key = rotator.key();
        let old_fp = match key.secret_kind() {
            Some(kind) => {
                Some(rotator.fingerprint(&self.keys.read(&SecretRef::new(kind, instance)).await?))
            }
            None => None,
        };
        let rotation = journal::begin(&self.store, instance, key, batch, old_fp.as_deref()).await?;
        if rotation.step == Step::Mint && rotation.attempts == 0 {
            let detail = format!(
                "{} rotation started{}",
                key.as_str(),
                old_fp.map(|f| format!(", old {f}")).unwrap_or_default()
            );
            let _ =
                crate::audit::append(&self.store, Some(instance), "rotation.start", &detail).await;
        }
        self.run(rotator, rotation.id).await
    }

    /// Carry an unfinished rotation on from where its journal says.
    pub async fn run(&self, rotator: &dyn Rotator, id: i64) -> Result<Rotation> {
        loop {
            let r = journal::get(&self.store, id).await?;
            if let Some(outcome) = r.outcome {
                return match outcome {
                    Outcome::Done => Ok(r),
                    Outcome::RolledBack => Err(Error::RolledBack(
                        r.error.unwrap_or_else(|| "it was undone".into()),
                    )),
                };
            }
            if let Some(p) = &self.progress {
                p(&r);
            }
            match r.direction {
                Direction::Forward => self.forward(rotator, &r).await?,
                Direction::Rollback => self.backward(rotator, &r).await?,
            }
        }
    }

    fn refs(&self, r: &Rotation) -> Option<(SecretRef, SecretRef)> {
        r.key.secret_kind().map(|kind| {
            let primary = SecretRef::new(kind, &r.instance_id);
            let next = staging(&primary);
            (primary, next)
        })
    }

    /// The old secret (the keychain's entry), or an empty one for a secret the app doesn't
    /// hold.
    async fn old(&self, r: &Rotation) -> Result<Secret> {
        match self.refs(r) {
            Some((primary, _)) => Ok(self.keys.read(&primary).await?),
            None => Ok(Secret::new(String::new())),
        }
    }

    /// The new secret, from the staging entry (None if it isn't there).
    async fn staged(&self, r: &Rotation) -> Result<Option<Secret>> {
        let Some((_, next)) = self.refs(r) else {
            return Ok(Some(Secret::new(String::new())));
        };
        match self.keys.read(&next).await {
            Ok(s) => Ok(Some(s)),
            Err(vault::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One step forward (or the decision to turn back, or to leave it for later).
    async fn forward(&self, rotator: &dyn Rotator, r: &Rotation) -> Result<()> {
        let step = r.step;
        if let Some(stop) = &self.stop_at {
            stop.hold(r.key, step, false).await;
        }
        let mut detail = r.detail.clone();
        if detail.is_null() {
            detail = json!({});
        }
        // The commit needs no rotator and may find the old secret already replaced.
        if step == Step::Commit {
            return self.commit(rotator, r).await;
        }
        let old = self.old(r).await?;
        let new =
            if step == Step::Mint {
                None
            } else {
                match self.staged(r).await? {
                    Some(s) => Some(s),
                    None if step <= Step::VerifyNew => {
                        // Crashed between the mint and writing the staging entry: nothing
                        // was installed with it. Undo (the rotator discards what it minted).
                        journal::roll_back(
                            &self.store,
                            r.id,
                            "the new key was lost before it was used",
                        )
                        .await?;
                        return Ok(());
                    }
                    None => return Err(Error::Pending(
                        "the new key is missing from your keychain; the old one is still in use"
                            .into(),
                    )),
                }
            };
        let mut ctx = Ctx {
            rotation_id: r.id,
            instance: &r.instance_id,
            old: &old,
            new: new.as_ref(),
            detail: &mut detail,
        };
        let outcome = match step {
            Step::Mint => match rotator.mint(&mut ctx).await {
                Ok(minted) => {
                    let fp = rotator.fingerprint(&minted);
                    if let Some((_, next)) = self.refs(r) {
                        if let Err(e) = self.keys.store(&next, &minted).await {
                            // Not kept: discard what was minted, then say so.
                            let mut ctx = Ctx {
                                rotation_id: r.id,
                                instance: &r.instance_id,
                                old: &old,
                                new: Some(&minted),
                                detail: &mut detail,
                            };
                            let _ = rotator.discard(&mut ctx).await;
                            journal::roll_back(
                                &self.store,
                                r.id,
                                &format!("the new key couldn't be saved: {e}"),
                            )
                            .await?;
                            return Ok(());
                        }
                    }
                    Ok(Some(fp))
                }
                Err(e) => Err(e),
            },
            Step::Install => rotator.install(&mut ctx).await.map(|()| None),
            Step::VerifyNew => rotator.verify_new(&mut ctx).await.map(|()| None),
            Step::RevokeOld => rotator.revoke_old(&mut ctx).await.map(|()| None),
            Step::VerifyOld => rotator.verify_old_refused(&mut ctx).await.map(|()| None),
            Step::Commit => Ok(None),
        };
        match outcome {
            Ok(new_fp) => {
                if let Some(stop) = &self.stop_at {
                    stop.hold(r.key, step, true).await;
                }
                let next = step.next().unwrap_or(Step::Commit);
                journal::advance(&self.store, r.id, next, &detail, new_fp.as_deref()).await?;
                Ok(())
            }
            Err(e) => self.failed(r, step, e, &detail).await,
        }
    }

    async fn failed(
        &self,
        r: &Rotation,
        step: Step,
        e: StepError,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let message = format!("{}: {}", step.label(), e.message());
        tracing::info!(key = r.key.as_str(), step = step.as_str(), %message, "rotation step failed");
        let attempts = journal::failed_attempt(&self.store, r.id, &message, detail).await?;
        let before_revoke = step < Step::RevokeOld;
        match e {
            StepError::NeedsYou(m) => Err(Error::NeedsYou(m)),
            StepError::Permanent(_) if before_revoke => {
                journal::roll_back(&self.store, r.id, &message).await?;
                Ok(())
            }
            _ if attempts >= i64::from(self.retry.attempts) => Err(Error::Pending(message)),
            StepError::Permanent(_) if step == Step::VerifyOld => {
                // Still accepted: revoke again.
                journal::advance(&self.store, r.id, Step::RevokeOld, detail, None).await?;
                Ok(())
            }
            _ => {
                let n = u32::try_from(attempts.clamp(1, 10)).unwrap_or(1);
                tokio::time::sleep(self.retry.wait * 2u32.pow(n - 1)).await;
                Ok(())
            }
        }
    }

    /// Put the new secret in the keychain's entry, let the rotator settle, drop the staging
    /// entry, note it.
    async fn commit(&self, rotator: &dyn Rotator, r: &Rotation) -> Result<()> {
        if let Some((primary, next)) = self.refs(r) {
            match self.staged(r).await? {
                Some(new) => {
                    let in_place = self.keys.read(&primary).await.ok();
                    if in_place.as_ref().map(Secret::fingerprint) != Some(new.fingerprint()) {
                        if let Err(e) = self.keys.store(&primary, &new).await {
                            let message = format!("{}: {e}", Step::Commit.label());
                            journal::failed_attempt(&self.store, r.id, &message, &r.detail).await?;
                            return Err(Error::Pending(message));
                        }
                    }
                    let mut detail = r.detail.clone();
                    let mut ctx = Ctx {
                        rotation_id: r.id,
                        instance: &r.instance_id,
                        old: &new,
                        new: Some(&new),
                        detail: &mut detail,
                    };
                    if let Err(e) = rotator.settle(&mut ctx).await {
                        let message = format!("{}: {}", Step::Commit.label(), e.message());
                        journal::failed_attempt(&self.store, r.id, &message, &detail).await?;
                        return Err(Error::Pending(message));
                    }
                    self.keys.delete(&next).await?;
                }
                None => {
                    // Crashed after the staging entry was deleted: the entry must hold it.
                    let in_place = rotator.fingerprint(&self.keys.read(&primary).await?);
                    if Some(in_place) != r.new_fingerprint {
                        return Err(Error::Pending(
                            "the new key is missing from your keychain".into(),
                        ));
                    }
                }
            }
        }
        journal::note_set(
            &self.store,
            &r.instance_id,
            r.key,
            r.new_fingerprint.as_deref(),
            true,
        )
        .await?;
        let detail = format!(
            "{} rotated: old {} replaced by {}, old refused",
            r.key.as_str(),
            r.old_fingerprint.as_deref().unwrap_or("-"),
            r.new_fingerprint.as_deref().unwrap_or("-")
        );
        let _ =
            crate::audit::append(&self.store, Some(&r.instance_id), "rotation.done", &detail).await;
        if let Some(stop) = &self.stop_at {
            stop.hold(r.key, Step::Commit, true).await;
        }
        journal::finish(&self.store, r.id, Outcome::Done, None).await?;
        Ok(())
    }

    /// Undo: the old secret back in place, the new one discarded (where it was minted and
    /// from the keychain).
    async fn backward(&self, rotator: &dyn Rotator, r: &Rotation) -> Result<()> {
        let old = self.old(r).await?;
        let new = self.staged(r).await?;
        let mut detail = r.detail.clone();
        let mut ctx = Ctx {
            rotation_id: r.id,
            instance: &r.instance_id,
            old: &old,
            new: new.as_ref(),
            detail: &mut detail,
        };
        let mut attempts = 0;
        loop {
            match rotator.discard(&mut ctx).await {
                Ok(()) => break,
                Err(e) => {
                    attempts += 1;
                    let message = format!("Putting the old key back: {}", e.message());
                    if attempts >= self.retry.attempts {
                        // Both keys stay in the keychain until this succeeds.
                        let d = ctx.detail.clone();
                        journal::failed_attempt(&self.store, r.id, &message, &d).await?;
                        return Err(Error::Pending(message));
                    }
                    tokio::time::sleep(self.retry.wait * 2u32.pow(attempts - 1)).await;
                }
            }
        }
        if let Some((_, next)) = self.refs(r) {
            self.keys.delete(&next).await?;
        }
        let detail = format!(
            "{} rotation undone, old {} kept: {}",
            r.key.as_str(),
            r.old_fingerprint.as_deref().unwrap_or("-"),
            r.error.as_deref().unwrap_or("-")
        );
        let _ = crate::audit::append(
            &self.store,
            Some(&r.instance_id),
            "rotation.undone",
            &detail,
        )
        .await;
        journal::finish(&self.store, r.id, Outcome::RolledBack, r.error.as_deref()).await?;
        Ok(())
    }

    /// Every unfinished rotation, carried on (at start-up and "Try again"). `rotator_for`
    /// gives the rotator of a rotation (None: not possible now; left for later).
    pub async fn resume_all<'a, F, Fut>(&self, rotator_for: F) -> Vec<(Rotation, Result<Rotation>)>
    where
        F: Fn(Rotation) -> Fut,
        Fut: Future<Output = Option<Box<dyn Rotator + 'a>>>,
    {
        let mut out = Vec::new();
        let Ok(list) = journal::unfinished(&self.store).await else {
            return out;
        };
        for r in list {
            let result = match rotator_for(r.clone()).await {
                Some(rotator) => self.run(rotator.as_ref(), r.id).await,
                None => Err(Error::Pending(
                    "its instance isn't reachable from here right now".into(),
                )),
            };
            out.push((r, result));
        }
        out
    }
}

/// The secrets to try, in order, for `primary` while a rotation of it may be running: the
/// staging one first once the new secret may be installed (it is what the host takes then),
/// the entry's otherwise; both when both exist.
pub async fn candidates(keys: &dyn Keys, primary: &SecretRef) -> vault::Result<Vec<Secret>> {
    let mut out = Vec::new();
    if let Ok(next) = keys.read(&staging(primary)).await {
        out.push(next);
    }
    match keys.read(primary).await {
        Ok(s) => out.push(s),
        Err(vault::Error::NotFound(_)) if !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::{StepFuture, StepResult};
    use std::collections::{BTreeSet, HashMap};
    use std::sync::Mutex;

    /// An in-memory keychain; `fail_store` refuses writes.
    #[derive(Default)]
    struct MemKeys {
        map: Mutex<HashMap<String, String>>,
        fail_store: Mutex<bool>,
    }

    impl Keys for MemKeys {
        fn store<'a>(&'a self, r: &'a SecretRef, s: &'a Secret) -> KeyFuture<'a, ()> {
            let out = if *self.fail_store.lock().unwrap() {
                Err(vault::Error::Platform("write refused".into()))
            } else {
                self.map
                    .lock()
                    .unwrap()
                    .insert(r.to_string(), s.expose().to_owned());
                Ok(())
            };
            Box::pin(async move { out })
        }
        fn read<'a>(&'a self, r: &'a SecretRef) -> KeyFuture<'a, Secret> {
            let out = self
                .map
                .lock()
                .unwrap()
                .get(&r.to_string())
                .map(|s| Secret::new(s.clone()))
                .ok_or_else(|| vault::Error::NotFound(r.clone()));
            Box::pin(async move { out })
        }
        fn delete<'a>(&'a self, r: &'a SecretRef) -> KeyFuture<'a, ()> {
            self.map.lock().unwrap().remove(&r.to_string());
            Box::pin(async { Ok(()) })
        }
    }

    /// A stand-in host and provider: which secrets the host accepts, which the provider
    /// has issued. `in_place`: installing replaces the old (a token in a config), else adds
    /// (an SSH key). Failures injected per step: Some(true) transient, Some(false) permanent.
    #[derive(Default)]
    struct Host {
        in_place: bool,
        accepts: Mutex<BTreeSet<String>>,
        issued: Mutex<BTreeSet<String>>,
        fail: Mutex<HashMap<&'static str, bool>>,
    }

    impl Host {
        fn check(&self, step: &'static str) -> StepResult {
            if let Some(transient) = self.fail.lock().unwrap().get(step).copied() {
                return Err(if transient {
                    StepError::Transient(format!("{step}: host not answering"))
                } else {
                    StepError::Permanent(format!("{step}: refused"))
                });
            }
            Ok(())
        }
        fn accepts(&self, s: &Secret) -> bool {
            self.accepts.lock().unwrap().contains(s.expose())
        }
    }

    impl Rotator for Host {
        fn key(&self) -> KeyId {
            KeyId::GatewayToken
        }
        fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
            Box::pin(async move {
                self.check("mint")?;
                let s = Secret::random(24);
                self.issued.lock().unwrap().insert(s.expose().to_owned());
                ctx.detail["minted"] = json!(s.fingerprint());
                Ok(s)
            })
        }
        fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
            Box::pin(async move {
                self.check("install")?;
                let new = ctx.new_secret()?.expose().to_owned();
                let mut a = self.accepts.lock().unwrap();
                if self.in_place {
                    a.clear();
                }
                a.insert(new);
                Ok(())
            })
        }
        fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
            Box::pin(async move {
                self.check("verify_new")?;
                if self.accepts(ctx.new_secret()?) {
                    Ok(())
                } else {
                    Err(StepError::Permanent("the new key was refused".into()))
                }
            })
        }
        fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
            Box::pin(async move {
                self.check("revoke_old")?;
                self.accepts.lock().unwrap().remove(ctx.old.expose());
                self.issued.lock().unwrap().remove(ctx.old.expose());
                Ok(())
            })
        }
        fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
            Box::pin(async move {
                self.check("verify_old")?;
                if self.accepts(ctx.old) {
                    Err(StepError::Permanent("the old key still works".into()))
                } else {
                    Ok(())
                }
            })
        }
        fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
            Box::pin(async move {
                self.check("discard")?;
                let mut a = self.accepts.lock().unwrap();
                if let Some(new) = ctx.new {
                    a.remove(new.expose());
                    self.issued.lock().unwrap().remove(new.expose());
                }
                a.insert(ctx.old.expose().to_owned());
                Ok(())
            })
        }
    }

    const OLD: &str = "old-secret-value-0123456789";

    async fn setup(in_place: bool) -> (Store, Arc<MemKeys>, Host, Driver) {
        let store = Store::open_memory().await.unwrap();
        let keys = Arc::new(MemKeys::default());
        keys.map
            .lock()
            .unwrap()
            .insert("gateway-token/local".into(), OLD.into());
        let host = Host {
            in_place,
            ..Host::default()
        };
        host.accepts.lock().unwrap().insert(OLD.into());
        host.issued.lock().unwrap().insert(OLD.into());
        let mut d = Driver::new(store.clone(), keys.clone());
        d.retry = Retry {
            attempts: 3,
            wait: Duration::from_millis(1),
        };
        d.stop_at = None;
        (store, keys, host, d)
    }

    fn primary() -> SecretRef {
        SecretRef::new(vault::SecretKind::GatewayToken, "local")
    }

    /// The invariant: a secret in the keychain (the entry or its staging one) is accepted.
    async fn a_kept_key_works(keys: &MemKeys, host: &Host) -> bool {
        candidates(keys, &primary())
            .await
            .unwrap()
            .iter()
            .any(|s| host.accepts(s))
    }

    /// Done: the entry holds the one key the host accepts, not the old one; no staging.
    async fn assert_done(keys: &MemKeys, host: &Host) {
        let now = keys.read(&primary()).await.unwrap();
        assert_ne!(now.expose(), OLD);
        assert!(host.accepts(&now));
        assert_eq!(host.accepts.lock().unwrap().len(), 1);
        assert!(keys.read(&staging(&primary())).await.is_err());
        assert!(!host.issued.lock().unwrap().contains(OLD), "old revoked");
    }

    /// Rolled back: as before.
    async fn assert_unchanged(keys: &MemKeys, host: &Host) {
        assert_eq!(keys.read(&primary()).await.unwrap().expose(), OLD);
        assert!(keys.read(&staging(&primary())).await.is_err());
        assert_eq!(
            *host.accepts.lock().unwrap(),
            BTreeSet::from([OLD.to_owned()])
        );
        assert_eq!(
            *host.issued.lock().unwrap(),
            BTreeSet::from([OLD.to_owned()]),
            "what was minted was discarded"
        );
    }

    #[tokio::test]
    async fn a_rotation_replaces_the_key_and_notes_it() {
        for in_place in [true, false] {
            let (store, keys, host, d) = setup(in_place).await;
            let r = d.rotate(&host, "local", None).await.unwrap();
            assert_eq!(r.outcome, Some(Outcome::Done));
            assert_done(&keys, &host).await;
            let audit = crate::audit::recent(&store, 10).await.unwrap();
            let text = format!("{audit:?}");
            assert!(text.contains("rotation.done") && text.contains("rotation.start"));
            assert!(!text.contains(OLD), "no secret in the audit log");
            let ages = journal::ages(&store).await.unwrap();
            assert!(ages[0].rotated_at.is_some());
            assert_eq!(ages[0].fingerprint, r.new_fingerprint);
        }
    }

    #[tokio::test]
    async fn refused_before_the_revoke_rolls_back_and_nothing_changes() {
        for step in ["mint", "install", "verify_new"] {
            let (_, keys, host, d) = setup(true).await;
            host.fail.lock().unwrap().insert(step, false);
            let err = d.rotate(&host, "local", None).await.unwrap_err();
            assert!(matches!(err, Error::RolledBack(_)), "{step}: {err}");
            assert!(err.to_string().contains("refused"), "{err}");
            assert_unchanged(&keys, &host).await;
        }
    }

    #[tokio::test]
    async fn a_host_that_doesnt_answer_leaves_it_pending_with_a_working_key_then_finishes() {
        for step in ["install", "verify_new", "revoke_old", "verify_old"] {
            let (store, keys, host, d) = setup(true).await;
            host.fail.lock().unwrap().insert(step, true);
            let err = d.rotate(&host, "local", None).await.unwrap_err();
            assert!(matches!(err, Error::Pending(_)), "{step}: {err}");
            assert!(a_kept_key_works(&keys, &host).await, "{step}");
            // Back: the next start finishes it.
            host.fail.lock().unwrap().clear();
            let results = d
                .resume_all(|_| async { Some(Box::new(&host) as Box<dyn Rotator + '_>) })
                .await;
            assert_eq!(results.len(), 1, "{step}");
            assert!(results[0].1.is_ok(), "{step}: {:?}", results[0].1);
            assert_done(&keys, &host).await;
            assert!(journal::unfinished(&store).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_keychain_that_refuses_the_commit_leaves_the_new_key_in_staging() {
        let (_, keys, host, d) = setup(true).await;
        let r = journal::begin(&d.store, "local", KeyId::GatewayToken, None, None)
            .await
            .unwrap();
        // Every step up to the commit, then a keychain that refuses the commit's write.
        for _ in 0..5 {
            let cur = journal::get(&d.store, r.id).await.unwrap();
            d.forward(&host, &cur).await.unwrap();
        }
        assert_eq!(
            journal::get(&d.store, r.id).await.unwrap().step,
            Step::Commit
        );
        *keys.fail_store.lock().unwrap() = true;
        let err = d.run(&host, r.id).await.unwrap_err();
        assert!(matches!(err, Error::Pending(_)), "{err}");
        assert_eq!(keys.read(&primary()).await.unwrap().expose(), OLD);
        assert!(
            a_kept_key_works(&keys, &host).await,
            "the staging key works"
        );
        *keys.fail_store.lock().unwrap() = false;
        d.run(&host, r.id).await.unwrap();
        assert_done(&keys, &host).await;
    }

    #[tokio::test]
    async fn killed_at_any_step_boundary_it_resumes_to_a_working_state() {
        for in_place in [true, false] {
            for step in Step::ALL {
                for after in [false, true] {
                    let (store, keys, host, mut d) = setup(in_place).await;
                    let marker = tempfile::NamedTempFile::new().unwrap();
                    d.stop_at = Some(StopAt {
                        key: KeyId::GatewayToken,
                        step,
                        after,
                        marker: marker.path().to_owned(),
                    });
                    // "Killed": the run is dropped where it stopped; only the store, the
                    // keychain and the host remain.
                    let cut = tokio::time::timeout(
                        Duration::from_millis(200),
                        d.rotate(&host, "local", None),
                    )
                    .await;
                    assert!(cut.is_err(), "{step:?} after={after}: it stopped there");
                    assert!(
                        a_kept_key_works(&keys, &host).await,
                        "{step:?} after={after}: a key in the keychain works while stopped"
                    );
                    d.stop_at = None;
                    let results = d
                        .resume_all(|_| async { Some(Box::new(&host) as Box<dyn Rotator + '_>) })
                        .await;
                    assert_eq!(results.len(), 1);
                    match &results[0].1 {
                        Ok(_) => assert_done(&keys, &host).await,
                        Err(Error::RolledBack(_)) => assert_unchanged(&keys, &host).await,
                        Err(e) => panic!("{step:?} after={after}: {e}"),
                    }
                    assert!(a_kept_key_works(&keys, &host).await);
                    assert!(journal::unfinished(&store).await.unwrap().is_empty());
                }
            }
        }
    }
}
