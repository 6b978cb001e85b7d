//! A guided rotation of an account key that only the app uses, for providers with no API
//! to make or delete such keys (the Hetzner API token, the Tailscale API credential): the
//! person makes the new one in the provider's console and pastes it, and deletes the old
//! one there. [`Guided`] runs the steps; a [`GuidedKey`] says how its provider answers.
//!
//! - **mint**: the pasted key, checked first: the provider accepts it, it opens the same
//!   account as the old one ([`GuidedKey::same_account`], while the old still works), and
//!   whatever else the key must allow ([`GuidedKey::can_do_the_job`]);
//! - **install**: nothing (the keychain's staging entry is where the app reads it from);
//! - **verify new**: the provider accepts it;
//! - **revoke old**: the person deletes the old one in the console; the rotation waits for
//!   that ([`StepError::NeedsYou`]);
//! - **verify old**: the provider refuses the old one.

use super::gateway_token::Verdict;
use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::secret::Secret;
use std::future::Future;

/// One kind of guided account key: its provider's answers and the words for it.
pub trait GuidedKey: Send + Sync {
    const KEY: KeyId;
    /// The provider, as messages name it ("Hetzner").
    const PROVIDER: &'static str;
    /// What the person pastes, as messages name it ("token", "key").
    const NOUN: &'static str;
    /// Where the person deletes the old one, in words ("in the Hetzner Console (…)").
    const WHERE: &'static str;

    /// The key the person pasted (`None` when resuming a rotation whose new key is already
    /// in the keychain).
    fn given(&self) -> Option<&Secret>;

    /// The pasted key as it is kept, once its form is checked. By default, as pasted.
    fn accept(&self, pasted: &Secret) -> StepResult<Secret> {
        Ok(pasted.clone())
    }

    /// What the provider says to `secret`.
    fn verdict(&self, secret: &Secret) -> impl Future<Output = Verdict> + Send;

    /// `new` opens the same account as `old` (asked only while `old` still works): else a
    /// [`StepError::Permanent`] that says how to make the right one.
    fn same_account(&self, old: &Secret, new: &Secret) -> impl Future<Output = StepResult> + Send;

    /// Anything else `new` must allow, checked last at mint. By default, nothing.
    fn can_do_the_job(&self, _new: &Secret) -> impl Future<Output = StepResult> + Send {
        async { Ok(()) }
    }
}

/// "The provider didn't answer": worth trying again.
pub fn no_answer<K: GuidedKey>(e: impl std::fmt::Display) -> StepError {
    StepError::Transient(format!("{} didn't answer ({e})", K::PROVIDER))
}

/// The rotation of a [`GuidedKey`].
pub struct Guided<K>(pub K);

impl<K: GuidedKey> Guided<K> {
    /// The provider refuses the old key (the person deleted it); else wait for them
    /// (`still_works` says what to do).
    async fn old_refused(&self, old: &Secret, still_works: String) -> StepResult {
        match self.0.verdict(old).await {
            Verdict::Refused => Ok(()),
            Verdict::Unknown(e) => Err(no_answer::<K>(e)),
            Verdict::Accepted => Err(StepError::NeedsYou(still_works)),
        }
    }
}

impl<K: GuidedKey> Rotator for Guided<K> {
    fn key(&self) -> KeyId {
        K::KEY
    }

    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        Box::pin(async move {
            let (provider, noun) = (K::PROVIDER, K::NOUN);
            let Some(given) = self.0.given() else {
                return Err(StepError::Permanent(format!(
                    "the new {noun} is missing; paste it again"
                )));
            };
            let new = self.0.accept(given)?;
            if new.fingerprint() == ctx.old.fingerprint() {
                return Err(StepError::Permanent(format!(
                    "this is the {noun} already in use; make a new one first"
                )));
            }
            match self.0.verdict(&new).await {
                Verdict::Accepted => {}
                Verdict::Refused => {
                    return Err(StepError::Permanent(format!(
                        "{provider} refused the new {noun}; check that you copied all of it"
                    )))
                }
                Verdict::Unknown(e) => return Err(no_answer::<K>(e)),
            }
            // An old key already refused can't tell; then the new one is taken as it is.
            if self.0.verdict(ctx.old).await == Verdict::Accepted {
                self.0.same_account(ctx.old, &new).await?;
            }
            self.0.can_do_the_job(&new).await?;
            Ok(new)
        })
    }

    fn install<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            match self.0.verdict(ctx.new_secret()?).await {
                Verdict::Accepted => Ok(()),
                Verdict::Refused => Err(StepError::Permanent(format!(
                    "{} refused the new {}",
                    K::PROVIDER,
                    K::NOUN
                ))),
                Verdict::Unknown(e) => Err(no_answer::<K>(e)),
            }
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(self.old_refused(
            ctx.old,
            format!(
                "The new {} works. Now delete the old one {} — Clawkeeper then checks that it no longer works and finishes.",
                K::NOUN,
                K::WHERE
            ),
        ))
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(self.old_refused(
            ctx.old,
            format!(
                "The old {} still works. Delete it {}, then Clawkeeper finishes.",
                K::NOUN,
                K::WHERE
            ),
        ))
    }

    fn discard<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // Nothing was installed; the person's new key stays in their account (unused).
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    /// A provider in memory: the keys it accepts, and which account each opens.
    struct Memory {
        given: Option<Secret>,
        accepted: Mutex<BTreeSet<String>>,
        account: fn(&str) -> &'static str,
    }

    impl GuidedKey for Memory {
        const KEY: KeyId = KeyId::CloudToken;
        const PROVIDER: &'static str = "Acme";
        const NOUN: &'static str = "token";
        const WHERE: &'static str = "on acme.example";

        fn given(&self) -> Option<&Secret> {
            self.given.as_ref()
        }

        async fn verdict(&self, secret: &Secret) -> Verdict {
            if secret.expose() == "down" {
                Verdict::Unknown("HTTP 503".into())
            } else if self.accepted.lock().unwrap().contains(secret.expose()) {
                Verdict::Accepted
            } else {
                Verdict::Refused
            }
        }

        async fn same_account(&self, old: &Secret, new: &Secret) -> StepResult {
            if (self.account)(old.expose()) == (self.account)(new.expose()) {
                Ok(())
            } else {
                Err(StepError::Permanent("another account".into()))
            }
        }
    }

    fn memory(given: Option<&str>, accepted: &[&str]) -> Guided<Memory> {
        Guided(Memory {
            given: given.map(Secret::new),
            accepted: Mutex::new(accepted.iter().map(|s| s.to_string()).collect()),
            account: |k| if k.starts_with("a-") { "a" } else { "b" },
        })
    }

    async fn mint(r: &Guided<Memory>, old: &str) -> StepResult<Secret> {
        let old = Secret::new(old);
        let mut detail = serde_json::Value::Null;
        let mut ctx = Ctx {
            rotation_id: 1,
            instance: "local",
            old: &old,
            new: None,
            detail: &mut detail,
        };
        r.mint(&mut ctx).await
    }

    fn said(r: StepResult<impl std::fmt::Debug>) -> String {
        match r {
            Ok(v) => format!("ok {v:?}"),
            Err(StepError::Permanent(m)) => format!("permanent: {m}"),
            Err(StepError::Transient(m)) => format!("transient: {m}"),
            Err(StepError::NeedsYou(m)) => format!("needs you: {m}"),
        }
    }

    #[tokio::test]
    async fn guided_mint_checks_the_pasted_key_in_the_providers_words() {
        let r = memory(None, &["a-old"]);
        assert_eq!(
            said(mint(&r, "a-old").await),
            "permanent: the new token is missing; paste it again"
        );
        let r = memory(Some("a-old"), &["a-old"]);
        assert_eq!(
            said(mint(&r, "a-old").await),
            "permanent: this is the token already in use; make a new one first"
        );
        let r = memory(Some("a-new"), &["a-old"]);
        assert_eq!(
            said(mint(&r, "a-old").await),
            "permanent: Acme refused the new token; check that you copied all of it"
        );
        let r = memory(Some("down"), &["a-old"]);
        assert_eq!(
            said(mint(&r, "a-old").await),
            "transient: Acme didn't answer (HTTP 503)"
        );
        // Another account, told while the old key still works…
        let r = memory(Some("b-new"), &["a-old", "b-new"]);
        assert_eq!(said(mint(&r, "a-old").await), "permanent: another account");
        // …but not once it is refused (then the new one is taken as it is).
        let r = memory(Some("b-new"), &["b-new"]);
        assert!(mint(&r, "a-old").await.is_ok());
        let r = memory(Some("a-new"), &["a-old", "a-new"]);
        assert_eq!(mint(&r, "a-old").await.unwrap().expose(), "a-new");
    }

    #[tokio::test]
    async fn guided_waits_for_the_person_to_delete_the_old_key() {
        let r = memory(None, &["a-old", "a-new"]);
        let (old, new) = (Secret::new("a-old"), Secret::new("a-new"));
        let mut detail = serde_json::Value::Null;
        let mut ctx = Ctx {
            rotation_id: 1,
            instance: "local",
            old: &old,
            new: Some(&new),
            detail: &mut detail,
        };
        assert!(r.install(&mut ctx).await.is_ok());
        assert!(r.verify_new(&mut ctx).await.is_ok());
        assert_eq!(
            said(r.revoke_old(&mut ctx).await),
            "needs you: The new token works. Now delete the old one on acme.example — Clawkeeper then checks that it no longer works and finishes."
        );
        assert_eq!(
            said(r.verify_old_refused(&mut ctx).await),
            "needs you: The old token still works. Delete it on acme.example, then Clawkeeper finishes."
        );
        r.0.accepted.lock().unwrap().remove("a-old");
        assert!(r.revoke_old(&mut ctx).await.is_ok());
        assert!(r.verify_old_refused(&mut ctx).await.is_ok());
        r.0.accepted.lock().unwrap().remove("a-new");
        assert_eq!(
            said(r.verify_new(&mut ctx).await),
            "permanent: Acme refused the new token"
        );
        assert!(r.discard(&mut ctx).await.is_ok());
        assert_eq!(r.key(), KeyId::CloudToken);
    }
}
