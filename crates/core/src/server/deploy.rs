//! A new server at a cloud provider (Hetzner), made into an adopted server: the cloud
//! part (`crate::cloud::deploy`, journaled so nothing is ever billed untracked), then
//! waiting for SSH, pinning the new machine's host key, and logging in with the app's
//! key that the provider put on it. Provisioning follows (`crate::provision`).
//!
//! Host key trust: a provider's API does not tell us the new machine's host key, so it is
//! pinned on first contact right after creation, on the address the API just gave us
//! (trust on first use, as `hcloud`/Terraform do). The fingerprint is shown and logged;
//! every later connection is checked against it.

use super::connect::{adopt, Connected, FirstLogin};
use crate::audit;
use crate::cloud::deploy::{self as cloud_deploy, Progress as CloudProgress, Removed, ServerSpec};
use crate::cloud::{self, hetzner::HetznerClient, journal::Journal};
use crate::problem::UserFacing;
use crate::ssh::{self, hosts, keys, Target};
use crate::store::{DesiredState, InstanceRecord, Store};
use crate::vault::Vault;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a new server may take to answer on SSH.
const SSH_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cloud(#[from] cloud::Error),
    #[error(transparent)]
    Ssh(#[from] ssh::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("The new server didn't start answering within {} minutes.", SSH_WAIT.as_secs() / 60)]
    NeverAnswered,
    #[error("Stopped as you asked.")]
    Cancelled,
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Cloud(e) => e.code(),
            Error::Ssh(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::NeverAnswered => "host_never_answered",
            Error::Cancelled => "cancelled",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Cloud(e) => e.hint(),
            Error::Ssh(e) => e.hint(),
            Error::Store(e) => e.hint(),
            Error::NeverAnswered => Some(
                "Look at the server in your provider's console. Deploy again to continue, or delete it from Clawkeeper.",
            ),
            Error::Cancelled => Some("Deploy again to continue where it stopped, or delete it."),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What the person chose.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub instance_id: String,
    pub name: String,
    pub server_type: String,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DeployProgress {
    Cloud(CloudProgress),
    WaitingForSsh { address: String, waited_s: u64 },
    HostKeyPinned { fingerprint: String },
    LoggedIn,
}

/// Create (or resume creating) the server and log in to it. Safe to run again after a
/// crash, a cancel or an error: the journal finds what exists; a pinned host key is kept.
pub async fn deploy(
    store: &Store,
    vault: &Vault,
    client: &HetznerClient,
    req: &DeployRequest,
    cancel: CancellationToken,
    progress: &mut (dyn FnMut(&DeployProgress) + Send + Sync),
) -> Result<Connected> {
    cloud::validate_instance_id(&req.instance_id)?;
    let (app_key, _) = keys::app_key(vault, &req.instance_id).await?;
    let public = keys::public_line(app_key.public_key())?;
    drop(app_key);
    if store.instance(&req.instance_id).await?.is_none() {
        store
            .upsert_instance(&InstanceRecord {
                id: req.instance_id.clone(),
                name: req.name.clone(),
                target: "cloud".into(),
                port: crate::local::DEFAULT_PORT,
                desired_state: DesiredState::Stopped,
                openclaw_version: crate::local::runtime::OPENCLAW_VERSION.into(),
                created_at: String::new(),
            })
            .await?;
    }
    let spec = ServerSpec::new(&req.instance_id, &req.server_type, &req.location, &public);
    let created = cloud_deploy::create_server(
        client,
        &Journal::new(store),
        &spec,
        cancel.clone(),
        &mut |p: &CloudProgress| progress(&DeployProgress::Cloud(p.clone())),
    )
    .await?;

    let target = Target::new(&created.ipv4, 22, "root");
    let pinned = match hosts::get(store, &req.instance_id).await? {
        Some(rec) if rec.target.host == created.ipv4 => rec.host_key,
        _ => {
            let seen = wait_for_ssh(&target, &cancel, progress).await?;
            let _ = audit::append(
                store,
                Some(&req.instance_id),
                "server.host_key_pinned",
                &format!(
                    "New server {} answered with host key {}; pinned on first contact",
                    created.ipv4, seen.fingerprint
                ),
            )
            .await;
            progress(&DeployProgress::HostKeyPinned {
                fingerprint: seen.fingerprint.clone(),
            });
            seen
        }
    };
    let connected = adopt(
        store,
        vault,
        &req.instance_id,
        &req.name,
        &target,
        &pinned,
        FirstLogin::AppKey,
    )
    .await?;
    progress(&DeployProgress::LoggedIn);
    Ok(connected)
}

async fn wait_for_ssh(
    target: &Target,
    cancel: &CancellationToken,
    progress: &mut (dyn FnMut(&DeployProgress) + Send + Sync),
) -> Result<ssh::HostKey> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match ssh::scan_host_key(target).await {
            Ok(k) => return Ok(k),
            Err(e) if start.elapsed() >= SSH_WAIT => {
                tracing::warn!(error = %e, "new server never answered on SSH");
                return Err(Error::NeverAnswered);
            }
            Err(_) => {}
        }
        progress(&DeployProgress::WaitingForSsh {
            address: target.host.clone(),
            waited_s: start.elapsed().as_secs(),
        });
        tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// What [`delete`] removed.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// At the provider (server, firewall, key).
    pub at_provider: Vec<Removed>,
    /// On this computer, in plain words (see [`super::connect::forget`]).
    pub here: Vec<String>,
}

/// Delete everything the instance has at the provider (server, firewall, key), then
/// forget the server on this computer: the pinned host key, its keys in the keychain, its
/// record. Safe to run again after a crash or an error: the journal knows what is left.
pub async fn delete(
    store: &Store,
    vault: &Vault,
    client: &HetznerClient,
    instance_id: &str,
) -> Result<Deleted> {
    let at_provider =
        cloud_deploy::delete_instance(client, &Journal::new(store), instance_id).await?;
    let here = super::connect::forget(store, vault, instance_id).await?;
    let text: Vec<String> = at_provider.iter().map(ToString::to_string).collect();
    let _ = audit::append(
        store,
        Some(instance_id),
        "server.deleted",
        &format!("Deleted at the provider: {}", text.join("; ")),
    )
    .await;
    Ok(Deleted { at_provider, here })
}
