//! The Tailscale API credential (an API access token `tskey-api-…`, or an OAuth client
//! `tskey-client-…`), a guided rotation ([`super::guided`]) like the Hetzner token's: the person makes the new
//! one in the Tailscale admin console and pastes it; only the app uses it (to mint auth
//! keys and look up devices), so nothing is installed anywhere.
//!
//! - **mint**: the pasted credential, checked first: Tailscale accepts it, it sees the same
//!   tailnet (the same devices as the old one), and the tailnet's policy lets it hand out
//!   `tag:clawkeeper`;
//! - **install**: nothing (the keychain's staging entry is where the app reads it from);
//! - **verify new**: Tailscale accepts it;
//! - **revoke old**: the person deletes the old one in the admin console; the rotation waits
//!   for that ([`StepError::NeedsYou`]);
//! - **verify old**: Tailscale refuses the old one.
//!
//! API access tokens expire (90 days at most); [`expiry`] says when, from the API, so the
//! app can warn in time. OAuth clients don't expire.

use super::gateway_token::Verdict;
use super::guided::{no_answer, GuidedKey};
use super::{KeyId, StepError, StepResult};
use crate::secret::Secret;
use crate::tailnet::api::{self, Credentials, RetryPolicy, TailscaleClient};
use time::OffsetDateTime;

/// The Tailscale API credential, replaced by one the person made (`given`; `None` when
/// resuming a rotation whose new credential is already in the keychain). Rotated by
/// [`Guided`](super::guided::Guided).
pub struct TailscaleApiKey {
    /// The API root (`CLAWKEEPER_TAILSCALE_API` in tests: the contract fake), else the real
    /// one.
    pub api_base: Option<String>,
    pub given: Option<Secret>,
}

/// A client of the API at `base` (the real one when `None`) with `secret`.
pub fn client_at(base: Option<&str>, secret: &Secret) -> api::Result<TailscaleClient> {
    let creds = Credentials::from_pasted(secret.clone())?;
    match base {
        Some(b) => TailscaleClient::with_base_url(b, creds, RetryPolicy::default()),
        None => TailscaleClient::new(creds),
    }
}

/// When the credential `secret` stops working, as the API says (`GET /tailnet/-/keys/{id}`
/// with the token's own key id): `Ok(None)` for an OAuth client (it doesn't expire) or a
/// token the API states no expiry for.
pub async fn expiry(
    client: &TailscaleClient,
    secret: &Secret,
) -> api::Result<Option<OffsetDateTime>> {
    let creds = Credentials::from_pasted(secret.clone())?;
    let Some(id) = creds.api_token_id() else {
        return Ok(None);
    };
    Ok(client.key_info(id).await?.expires)
}

impl TailscaleApiKey {
    fn client(&self, secret: &Secret) -> Result<TailscaleClient, StepError> {
        client_at(self.api_base.as_deref(), secret).map_err(|e| StepError::Permanent(e.to_string()))
    }

    /// The ids of the tailnet's devices `secret` sees, sorted (to tell another tailnet).
    async fn devices(&self, secret: &Secret) -> Result<Vec<String>, StepError> {
        let mut ids: Vec<String> = self
            .client(secret)?
            .devices()
            .await
            .map_err(no_answer::<Self>)?
            .iter()
            .map(|d| d.api_id().to_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl GuidedKey for TailscaleApiKey {
    const KEY: KeyId = KeyId::TailscaleApi;
    const PROVIDER: &'static str = "Tailscale";
    const NOUN: &'static str = "key";
    const WHERE: &'static str = "in the Tailscale admin console (Settings → Keys for an API access token, Settings → OAuth clients for an OAuth client: Revoke / Delete)";

    fn given(&self) -> Option<&Secret> {
        self.given.as_ref()
    }

    /// An API access token or an OAuth client secret, nothing else.
    fn accept(&self, pasted: &Secret) -> StepResult<Secret> {
        let creds = Credentials::from_pasted(pasted.clone())
            .map_err(|e| StepError::Permanent(e.to_string()))?;
        Ok(creds.secret().clone())
    }

    /// Accepted when Tailscale lists the devices for it.
    async fn verdict(&self, secret: &Secret) -> Verdict {
        let client = match self.client(secret) {
            Ok(c) => c,
            Err(e) => return Verdict::Unknown(e.message().to_owned()),
        };
        match client.devices().await {
            Ok(_) => Verdict::Accepted,
            Err(api::Error::Unauthorized { .. }) => Verdict::Refused,
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    /// The same tailnet: the old key's devices are the new one's.
    async fn same_account(&self, old: &Secret, new: &Secret) -> StepResult {
        let (was, now) = (self.devices(old).await?, self.devices(new).await?);
        if was != now {
            return Err(StepError::Permanent(
                "the new key sees other devices than the old one: make it in the tailnet your server is on".into(),
            ));
        }
        Ok(())
    }

    /// It may hand out the tag the servers carry.
    async fn can_do_the_job(&self, new: &Secret) -> StepResult {
        match self.client(new)?.tag_owners_ok().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StepError::Permanent(format!(
                "your tailnet's policy doesn't name an owner for {}; add the line Clawkeeper shows under Private network, then paste the key again",
                crate::tailnet::TAG
            ))),
            Err(e @ (api::Error::Forbidden { .. } | api::Error::Unauthorized { .. })) => {
                Err(StepError::Permanent(format!(
                    "the new key may not read your tailnet's policy ({e}); give it the policy_file:read scope (an OAuth client) or use an API access token"
                )))
            }
            Err(e) => Err(no_answer::<Self>(e)),
        }
    }
}
