//! What Clawkeeper knows of a server's node on the person's tailnet: its hostname there
//! (set when the server joins, see [`remember`]), and what the Tailscale API last said of
//! its device (id, 100.x address, MagicDNS name, last seen, key expiry — see [`refresh`]).
//!
//! Kept in the store's `settings` table as one JSON value per server
//! (`tailnet.node.<instance id>`), like the server's last safety checklist: it is a cache of
//! what the API says, rebuilt by [`refresh`], not a record anything else depends on.

use super::api::{self, Device, TailscaleClient};
use crate::problem::UserFacing;
use crate::store::Store;
use crate::time::now_rfc3339;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Api(#[from] api::Error),
    #[error("Clawkeeper's note about this server's place on your tailnet is damaged: {0}")]
    BadRecord(String),
    #[error("{0:?} is not a name a device can have on a tailnet.")]
    BadHostname(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Store(e) => e.code(),
            Error::Api(e) => e.code(),
            Error::BadRecord(_) => "tailnet_record_damaged",
            Error::BadHostname(_) => "tailnet_bad_hostname",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Api(e) => e.hint(),
            Error::BadRecord(_) => {
                Some("Press \"Check again\": Clawkeeper will read it afresh from Tailscale.")
            }
            Error::BadHostname(_) => Some("This is a bug in Clawkeeper; please report it."),
        }
    }
}

/// A server's node on the tailnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerNode {
    /// The hostname the server joined with (`tailscale up --hostname`).
    pub hostname: String,
    /// The device's id in the Tailscale API (`nodeId`), once found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Its tailnet IPv4 address (100.x.y.z), once found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Its MagicDNS name (`server.tail1234.ts.net`), once found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_seen: Option<OffsetDateTime>,
    /// When its node key expires; `None` when it never does (tagged devices) or unknown.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_expiry: Option<OffsetDateTime>,
    /// Whether Tailscale says it is connected right now (`None`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Whether the last [`refresh`] found the device at all.
    #[serde(default)]
    pub found: bool,
    /// When the API was last asked (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<String>,
}

impl ServerNode {
    pub fn new(hostname: &str) -> Self {
        Self {
            hostname: hostname.to_owned(),
            device_id: None,
            address: None,
            dns_name: None,
            last_seen: None,
            key_expiry: None,
            online: None,
            found: false,
            refreshed_at: None,
        }
    }

    /// Take what the API says of the device.
    pub fn update_from(&mut self, device: Option<&Device>) {
        self.refreshed_at = Some(now_rfc3339());
        let Some(d) = device else {
            self.found = false;
            self.online = Some(false);
            return;
        };
        self.found = true;
        self.device_id = Some(d.api_id().to_owned()).filter(|s| !s.is_empty());
        self.address = d.ipv4().or_else(|| d.ipv6());
        self.dns_name = Some(d.name.trim_end_matches('.').to_owned()).filter(|s| !s.is_empty());
        self.last_seen = d.last_seen;
        self.key_expiry = if d.key_expiry_disabled {
            None
        } else {
            d.expires
        };
        self.online = d.connected_to_control;
    }

    /// The name to show: the MagicDNS name's first label, else the hostname.
    pub fn display_name(&self) -> &str {
        self.dns_name
            .as_deref()
            .and_then(|n| n.split('.').next())
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.hostname)
    }
}

/// The settings key of a server's node record.
fn key(instance_id: &str) -> String {
    format!("tailnet.node.{instance_id}")
}

/// A hostname as tailscale accepts it: letters, digits and `-`, 1 to 63 characters.
fn hostname_ok(h: &str) -> bool {
    (1..=63).contains(&h.len())
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !h.starts_with('-')
}

/// The server `instance_id` joined the tailnet as `hostname` (call right after
/// `tailscale up` succeeded). The device itself is looked up later by [`refresh`]; a record
/// for another hostname is replaced.
pub async fn remember(store: &Store, instance_id: &str, hostname: &str) -> Result<()> {
    if !hostname_ok(hostname) {
        return Err(Error::BadHostname(hostname.to_owned()));
    }
    let node = match get(store, instance_id).await {
        Ok(Some(n)) if n.hostname.eq_ignore_ascii_case(hostname) => n,
        _ => ServerNode::new(hostname),
    };
    record(store, instance_id, &node).await
}

/// Save `node` as what Clawkeeper knows of server `instance_id` on the tailnet.
pub async fn record(store: &Store, instance_id: &str, node: &ServerNode) -> Result<()> {
    let text = serde_json::to_string(node).map_err(|e| Error::BadRecord(e.to_string()))?;
    store.set_setting(&key(instance_id), &text).await?;
    Ok(())
}

/// What Clawkeeper knows of server `instance_id` on the tailnet (`None`: it never joined).
pub async fn get(store: &Store, instance_id: &str) -> Result<Option<ServerNode>> {
    match store.setting(&key(instance_id)).await? {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::BadRecord(e.to_string())),
    }
}

/// Forget server `instance_id`'s node (the device itself is left alone; see
/// [`remove_device`]).
pub async fn forget(store: &Store, instance_id: &str) -> Result<()> {
    store.delete_setting(&key(instance_id)).await?;
    Ok(())
}

/// Ask the Tailscale API for the server's device (by hostname) and update the record.
/// `Ok(None)` when the server never joined the tailnet.
pub async fn refresh(
    store: &Store,
    client: &TailscaleClient,
    instance_id: &str,
) -> Result<Option<ServerNode>> {
    let Some(mut node) = get(store, instance_id).await? else {
        return Ok(None);
    };
    let device = client.find_device(&node.hostname).await?;
    node.update_from(device.as_ref());
    record(store, instance_id, &node).await?;
    Ok(Some(node))
}

/// When a server is deleted: remove its device from the tailnet (when Clawkeeper has the
/// person's Tailscale key) and forget the record. Returns the lines for the "what was
/// removed" list; a failure there is said in the list and never stops the delete.
pub async fn remove_device(
    store: &Store,
    client: Option<&TailscaleClient>,
    instance_id: &str,
) -> Vec<String> {
    let node = match get(store, instance_id).await {
        Ok(Some(n)) => n,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "tailnet record unreadable while deleting a server");
            let _ = forget(store, instance_id).await;
            return vec![
                "Clawkeeper's note about the server's tailnet device was damaged: if the server is still listed on the Machines page of your Tailscale admin console, remove it there".into(),
            ];
        }
    };
    let mut lines = Vec::new();
    match client {
        None => lines.push(format!(
            "On your tailnet: no Tailscale key is saved, so the device {} stays listed — remove it on the Machines page of your Tailscale admin console",
            node.display_name()
        )),
        Some(client) => {
            let id = match &node.device_id {
                Some(id) => Ok(Some(id.clone())),
                None => client
                    .find_device(&node.hostname)
                    .await
                    .map(|d| d.map(|d| d.api_id().to_owned())),
            };
            match id {
                Ok(None) => lines.push(format!(
                    "On your tailnet: the device {} was already gone",
                    node.display_name()
                )),
                Ok(Some(id)) => match client.delete_device(&id).await {
                    Ok(()) => lines.push(format!(
                        "On your tailnet: the device {} removed",
                        node.display_name()
                    )),
                    Err(e) => {
                        tracing::warn!(error = %e, "tailnet device not removed");
                        lines.push(format!(
                            "On your tailnet: the device {} could not be removed ({e}) — remove it on the Machines page of your Tailscale admin console",
                            node.display_name()
                        ));
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "tailnet devices not listed");
                    lines.push(format!(
                        "On your tailnet: the device {} could not be looked up ({e}) — remove it on the Machines page of your Tailscale admin console",
                        node.display_name()
                    ));
                }
            }
        }
    }
    if let Err(e) = forget(store, instance_id).await {
        tracing::warn!(error = %e, "tailnet record not forgotten");
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn device(hostname: &str) -> Device {
        Device {
            id: "123".into(),
            node_id: "nABC123CNTRL".into(),
            name: format!("{hostname}.tail1234.ts.net"),
            hostname: hostname.into(),
            addresses: vec![
                "100.101.102.103".parse().unwrap(),
                "fd7a:115c:a1e0::1".parse().unwrap(),
            ],
            tags: vec!["tag:clawkeeper".into()],
            authorized: true,
            key_expiry_disabled: false,
            expires: Some(time::macros::datetime!(2027-01-01 0:00 UTC)),
            last_seen: Some(time::macros::datetime!(2026-11-25 12:00 UTC)),
            created: None,
            connected_to_control: Some(true),
            os: "linux".into(),
            node_key: String::new(),
        }
    }

    #[tokio::test]
    async fn remember_get_refresh_fields_and_forget() {
        let store = Store::open_memory().await.unwrap();
        assert_eq!(get(&store, "s1").await.unwrap(), None);
        assert!(remember(&store, "s1", "bad name; rm").await.is_err());
        remember(&store, "s1", "clawkeeper-s1").await.unwrap();
        let mut n = get(&store, "s1").await.unwrap().unwrap();
        assert_eq!(n.hostname, "clawkeeper-s1");
        assert_eq!(n.address, None);
        assert!(!n.found);

        n.update_from(Some(&device("clawkeeper-s1")));
        record(&store, "s1", &n).await.unwrap();
        let back = get(&store, "s1").await.unwrap().unwrap();
        assert_eq!(back, n);
        assert_eq!(back.address, Some("100.101.102.103".parse().unwrap()));
        assert_eq!(back.device_id.as_deref(), Some("nABC123CNTRL"));
        assert_eq!(
            back.dns_name.as_deref(),
            Some("clawkeeper-s1.tail1234.ts.net")
        );
        assert_eq!(back.display_name(), "clawkeeper-s1");
        assert_eq!(back.online, Some(true));
        assert!(back.key_expiry.is_some());

        // Joining again under the same name keeps what is known; another name starts afresh.
        remember(&store, "s1", "clawkeeper-s1").await.unwrap();
        assert_eq!(get(&store, "s1").await.unwrap().unwrap(), n);
        remember(&store, "s1", "other").await.unwrap();
        assert_eq!(get(&store, "s1").await.unwrap().unwrap().address, None);

        // Gone from the tailnet: found false, offline.
        let mut gone = n.clone();
        gone.update_from(None);
        assert!(!gone.found);
        assert_eq!(gone.online, Some(false));

        forget(&store, "s1").await.unwrap();
        assert_eq!(get(&store, "s1").await.unwrap(), None);
        // Nothing recorded: deleting the server says nothing about a tailnet.
        assert!(remove_device(&store, None, "s1").await.is_empty());
    }

    #[test]
    fn a_key_that_never_expires_has_no_expiry() {
        let mut d = device("h");
        d.key_expiry_disabled = true;
        let mut n = ServerNode::new("h");
        n.update_from(Some(&d));
        assert_eq!(n.key_expiry, None);
    }

    #[tokio::test]
    async fn without_a_key_the_delete_says_where_to_remove_the_device() {
        let store = Store::open_memory().await.unwrap();
        remember(&store, "s1", "clawkeeper-s1").await.unwrap();
        let lines = remove_device(&store, None, "s1").await;
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("Machines page"), "{lines:?}");
        assert_eq!(get(&store, "s1").await.unwrap(), None);
    }
}
