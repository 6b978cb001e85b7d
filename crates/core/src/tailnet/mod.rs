//! The tailnet path: the person's own Tailscale network, which their server joins so that
//! Clawkeeper reaches the gateway without opening any public port.
//!
//! * [`api`]: a thin client of the Tailscale API v2 — single-use auth keys for the server,
//!   the tailnet's devices (find the server, remove it), and a look at the access policy's
//!   `tagOwners` (the server joins as `tag:clawkeeper`).
//! * [`dial`]: the [`Tailnet`] trait — one way onto the tailnet, whichever node provides it.
//! * [`local_api`]: the system's own Tailscale through its LocalAPI (tailscaled's unix
//!   socket) — status, login, whois, and dialling a peer — as [`SystemTailscale`].
//! * [`embedded`] (feature `embedded-node`): Clawkeeper's own Tailscale node (tailscale-rs)
//!   for a computer without Tailscale, as [`EmbeddedNode`] — experimental.
//! * [`proxy`]: the loopback proxy the chat and the gateway client connect to.
//! * [`path`]: which way chat reaches a server (tailnet or SSH), and why, in plain words.
//! * [`watch`]: the tray's tailnet lines and when to notify (pure functions).
//! * [`server`]: what Clawkeeper knows of a server's node on the tailnet (hostname, device,
//!   address, last seen, key expiry), kept in the store.
//!
//! What is stored where: the API credential (an API access token or an OAuth client secret)
//! lives only in the keychain, at [`credentials_ref`]. OAuth access tokens live in memory
//! until shortly before they expire. Auth keys are never stored: each is minted for one
//! server join, expires within minutes and is handed straight to the server.

pub mod api;
pub mod dial;
#[cfg(all(feature = "embedded-node", unix))]
pub mod embedded;
pub mod local_api;
pub mod path;
pub mod proxy;
pub mod server;
pub mod watch;

pub use api::{
    AccessToken, AuthKey, Credentials, Device, Error, KeyCapabilities, KeyInfo, KeyRequest, Result,
    TailscaleClient,
};

pub use dial::{Tailnet, TailnetState};
#[cfg(all(feature = "embedded-node", unix))]
pub use embedded::{EmbeddedNode, EmbeddedOptions};
pub use local_api::{LocalApi, SystemTailscale};
pub use proxy::TailnetProxy;

use crate::vault::{SecretKind, SecretRef};

/// The tag every server Clawkeeper puts on a tailnet carries: it makes the device owned by
/// the tailnet rather than by a person, so its key does not expire with someone's login.
pub const TAG: &str = "tag:clawkeeper";

/// The account part of the keychain entry (one tailnet per person).
pub const VAULT_ACCOUNT: &str = "tailscale";

/// Where the Tailscale API credential is kept in the keychain.
pub fn credentials_ref() -> SecretRef {
    SecretRef::new(SecretKind::TailscaleApi, VAULT_ACCOUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailnet_credentials_live_in_the_keychain() {
        let r = credentials_ref();
        assert_eq!(r.to_string(), "tailscale-api/tailscale");
        assert_eq!(SecretRef::parse(&r.to_string()).ok(), Some(r));
    }
}
