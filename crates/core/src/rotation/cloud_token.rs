//! The cloud provider's API token (Hetzner), a guided rotation: Hetzner has no API to make
//! or delete tokens, so the person makes the new one in the Console and pastes it. Only
//! the app uses the token (to create and delete servers), so nothing is installed anywhere.
//!
//! - **mint**: the pasted token, checked first: Hetzner accepts it, and it sees the same
//!   project — the servers, SSH keys and firewalls Clawkeeper made with the old token;
//! - **install**: nothing (the keychain's staging entry is where the app reads it from);
//! - **verify new**: Hetzner accepts it;
//! - **revoke old**: the person deletes the old token in the Console; the rotation waits
//!   for that ([`StepError::NeedsYou`]);
//! - **verify old**: Hetzner refuses the old token.

use super::gateway_token::Verdict;
use super::{Ctx, KeyId, Rotator, StepError, StepFuture};
use crate::cloud::hetzner::HetznerClient;
use crate::cloud::{Error as CloudError, LABEL_MANAGED_BY, MANAGED_BY};
use crate::secret::Secret;

/// Where the person deletes a Hetzner token, in words.
const WHERE: &str = "in the Hetzner Console (your project → Security → API tokens)";

/// The Hetzner API token, replaced by one the person made (`given`; `None` when resuming a
/// rotation whose new token is already in the keychain).
pub struct HetznerToken {
    /// The API root (`CLAWKEEPER_HETZNER_API` in tests: the contract fake), else the real one.
    pub api_base: Option<String>,
    pub given: Option<Secret>,
}

impl HetznerToken {
    fn client(&self, token: &Secret) -> Result<HetznerClient, StepError> {
        HetznerClient::at(self.api_base.as_deref(), token.clone())
            .map_err(|e| StepError::Permanent(e.to_string()))
    }

    /// What Hetzner says to `token`.
    async fn verdict(&self, token: &Secret) -> Verdict {
        let client = match self.client(token) {
            Ok(c) => c,
            Err(e) => return Verdict::Unknown(e.message().to_owned()),
        };
        match client.locations().await {
            Ok(_) => Verdict::Accepted,
            Err(CloudError::Unauthorized) => Verdict::Refused,
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    /// The ids of what Clawkeeper made in the project `token` opens (servers, SSH keys,
    /// firewalls), to tell a token of another project.
    async fn ours(&self, token: &Secret) -> Result<Vec<String>, StepError> {
        let client = self.client(token)?;
        let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
        let failed = |e: CloudError| {
            if e.may_have_applied() || matches!(e, CloudError::RateLimited { .. }) {
                StepError::Transient(format!("Hetzner didn't answer ({e})"))
            } else {
                StepError::Permanent(format!("Hetzner's answer about the project: {e}"))
            }
        };
        let (servers, keys, firewalls) = tokio::try_join!(
            client.servers(&selector),
            client.ssh_keys(&selector),
            client.firewalls(&selector)
        )
        .map_err(failed)?;
        let mut ids: Vec<String> = servers
            .iter()
            .map(|s| format!("server {}", s.id))
            .chain(keys.iter().map(|k| format!("ssh key {}", k.id)))
            .chain(firewalls.iter().map(|f| format!("firewall {}", f.id)))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl HetznerToken {
    /// Hetzner refuses the old token (the person deleted it); else wait for them
    /// (`still_works` says what to do).
    async fn old_refused(&self, old: &Secret, still_works: String) -> super::StepResult {
        match self.verdict(old).await {
            Verdict::Refused => Ok(()),
            Verdict::Unknown(e) => Err(unknown(e)),
            Verdict::Accepted => Err(StepError::NeedsYou(still_works)),
        }
    }
}

fn unknown(e: String) -> StepError {
    StepError::Transient(format!("Hetzner didn't answer ({e})"))
}

impl Rotator for HetznerToken {
    fn key(&self) -> KeyId {
        KeyId::CloudToken
    }

    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        Box::pin(async move {
            let Some(new) = &self.given else {
                return Err(StepError::Permanent(
                    "the new token is missing; paste it again".into(),
                ));
            };
            if new.fingerprint() == ctx.old.fingerprint() {
                return Err(StepError::Permanent(
                    "this is the token already in use; make a new one first".into(),
                ));
            }
            match self.verdict(new).await {
                Verdict::Accepted => {}
                Verdict::Refused => {
                    return Err(StepError::Permanent(
                        "Hetzner refused the new token; check that you copied all of it".into(),
                    ))
                }
                Verdict::Unknown(e) => return Err(unknown(e)),
            }
            // The same project: what Clawkeeper made with the old token is there. (An old
            // token already refused can't tell; then the new one is taken as it is.)
            if self.verdict(ctx.old).await == Verdict::Accepted {
                let (was, now) = (self.ours(ctx.old).await?, self.ours(new).await?);
                if was != now {
                    return Err(StepError::Permanent(
                        "the new token belongs to another Hetzner project: make it in the project your assistant's server is in".into(),
                    ));
                }
            }
            Ok(new.clone())
        })
    }

    fn install<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            match self.verdict(ctx.new_secret()?).await {
                Verdict::Accepted => Ok(()),
                Verdict::Refused => {
                    Err(StepError::Permanent("Hetzner refused the new token".into()))
                }
                Verdict::Unknown(e) => Err(unknown(e)),
            }
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(self.old_refused(ctx.old, format!(
            "The new token works. Now delete the old one {WHERE} — Clawkeeper then checks that it no longer works and finishes."
        )))
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(self.old_refused(
            ctx.old,
            format!("The old token still works. Delete it {WHERE}, then Clawkeeper finishes."),
        ))
    }

    fn discard<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // Nothing was installed; the person's token stays in their project (unused).
        Box::pin(async { Ok(()) })
    }
}
