//! The cloud provider's API token (Hetzner), a guided rotation ([`super::guided`]): Hetzner
//! has no API to make or delete tokens, so the person makes the new one in the Console and
//! pastes it. Only the app uses the token (to create and delete servers), so nothing is
//! installed anywhere.
//!
//! - **mint**: the pasted token, checked first: Hetzner accepts it, and it sees the same
//!   project — the servers, SSH keys and firewalls Clawkeeper made with the old token;
//! - **install**: nothing (the keychain's staging entry is where the app reads it from);
//! - **verify new**: Hetzner accepts it;
//! - **revoke old**: the person deletes the old token in the Console; the rotation waits
//!   for that ([`StepError::NeedsYou`]);
//! - **verify old**: Hetzner refuses the old token.

use super::gateway_token::Verdict;
use super::guided::GuidedKey;
use super::{KeyId, StepError, StepResult};
use crate::cloud::hetzner::HetznerClient;
use crate::cloud::{Error as CloudError, LABEL_MANAGED_BY, MANAGED_BY};
use crate::secret::Secret;

/// The Hetzner API token, replaced by one the person made (`given`; `None` when resuming a
/// rotation whose new token is already in the keychain). Rotated by
/// [`Guided`](super::guided::Guided).
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

impl GuidedKey for HetznerToken {
    const KEY: KeyId = KeyId::CloudToken;
    const PROVIDER: &'static str = "Hetzner";
    const NOUN: &'static str = "token";
    const WHERE: &'static str = "in the Hetzner Console (your project → Security → API tokens)";

    fn given(&self) -> Option<&Secret> {
        self.given.as_ref()
    }

    /// Accepted when Hetzner lists the locations for it.
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

    /// The same project: what Clawkeeper made with the old token is there.
    async fn same_account(&self, old: &Secret, new: &Secret) -> StepResult {
        let (was, now) = (self.ours(old).await?, self.ours(new).await?);
        if was != now {
            return Err(StepError::Permanent(
                "the new token belongs to another Hetzner project: make it in the project your assistant's server is in".into(),
            ));
        }
        Ok(())
    }
}
