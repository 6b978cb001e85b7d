//! What the faces (CLI, tray, windows) do with an adopted server: provision it with the
//! instance's secrets from the keychain, check its posture, open its gateway.

use crate::audit;
use crate::local::verify::{Check, CheckStatus};
use crate::problem::UserFacing;
use crate::provision::{
    self, sources::PackageSources, steps::ProvisionSpec, tailnet, tailnet::TailnetSpec,
    ModelEndpoint, Outcome, Progress, ProvisionSecrets,
};
use crate::secret::Secret;
use crate::ssh;
use crate::store::Store;
use crate::tailnet::{KeyRequest, TailscaleClient};
use crate::vault::{SecretKind, SecretRef, Vault};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ssh(#[from] ssh::Error),
    #[error(transparent)]
    Provision(#[from] provision::Error),
    #[error(transparent)]
    Vault(#[from] crate::vault::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Tailnet(#[from] crate::tailnet::server::Error),
    #[error("No model provider is set up yet, so the assistant on the server would have nothing to answer with.")]
    NoProvider,
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Ssh(e) => e.code(),
            Error::Provision(e) => e.code(),
            Error::Vault(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::Tailnet(e) => e.code(),
            Error::NoProvider => "no_provider",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Ssh(e) => e.hint(),
            Error::Provision(e) => e.hint(),
            Error::Vault(e) => e.hint(),
            Error::Store(e) => e.hint(),
            Error::Tailnet(e) => e.hint(),
            Error::NoProvider => Some("Set up your model provider first (Settings → Provider, or `clawkeeper-cli provider`), then try again."),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where the server downloads Node and OpenClaw: the public npm registry, unless
/// `CLAWKEEPER_NPM_REGISTRY` points elsewhere (a company mirror; tests: the offline mirror).
pub fn package_sources() -> PackageSources {
    match std::env::var("CLAWKEEPER_NPM_REGISTRY") {
        Ok(r) if !r.trim().is_empty() => PackageSources {
            npm_registry: r.trim().to_owned(),
        },
        _ => PackageSources::default(),
    }
}

/// The spec for `instance_id`: the model provider saved for it, else the one saved for
/// this computer (what the person set up first). Returns the key's reference too.
async fn spec_for(store: &Store, instance_id: &str) -> Result<(ProvisionSpec, SecretRef)> {
    let provider = match store.provider(instance_id).await? {
        Some(p) => p,
        None => store
            .provider(crate::local::LOCAL_ID)
            .await?
            .ok_or(Error::NoProvider)?,
    };
    let key_ref = SecretRef::parse(&provider.key_ref)?;
    let mut spec = ProvisionSpec::new(instance_id);
    spec.model = Some(ModelEndpoint {
        base_url: provider.base_url,
        model: provider.model,
    });
    spec.sources = package_sources();
    // A server on the tailnet keeps Tailscale's port open when it is provisioned again.
    if crate::tailnet::server::get(store, instance_id)
        .await
        .ok()
        .flatten()
        .is_some()
    {
        spec.firewall.tailscale_udp = Some(tailnet::TAILSCALE_UDP_PORT);
    }
    Ok((spec, key_ref))
}

/// Provision (or re-check and repair) the adopted server `instance_id`. The gateway token
/// is created in the keychain on first use; the provider key is read from it. Resumable:
/// run it again after any failure or crash.
pub async fn provision_server(
    store: &Store,
    vault: &Vault,
    instance_id: &str,
    cancel: CancellationToken,
    on_progress: impl Fn(Progress),
) -> Result<Outcome> {
    let (spec, key_ref) = spec_for(store, instance_id).await?;
    let token_ref = SecretRef::new(SecretKind::GatewayToken, instance_id);
    // Mid-rotation, the token being verified (the server's config names its file then):
    // see `rotation::live_entry` and `rotation::server_token`.
    let live = crate::rotation::live_entry(
        store,
        vault,
        instance_id,
        crate::rotation::KeyId::GatewayToken,
        &token_ref,
    )
    .await;
    let gateway_token = match vault.read(&live).await {
        Ok(t) => t,
        Err(crate::vault::Error::NotFound(_)) => {
            let t = Secret::random(32);
            vault.store(&token_ref, &t).await?;
            t
        }
        Err(e) => return Err(e.into()),
    };
    // Mid-rotation of the provider key (this computer's, which the server shares), the
    // key being verified: see `rotation::server_provider_key`.
    let live_key = crate::rotation::live_entry(
        store,
        vault,
        &key_ref.instance,
        crate::rotation::KeyId::ProviderKey,
        &key_ref,
    )
    .await;
    let provider_key = vault.read(&live_key).await?;
    let session = super::open_session(store, vault, instance_id).await?;
    let _ = audit::append(
        store,
        Some(instance_id),
        "server.provision",
        "Setting up the server",
    )
    .await;
    let result = provision::provision(
        &session,
        store,
        &spec,
        &ProvisionSecrets {
            gateway_token,
            provider_key: Some(provider_key),
        },
        cancel,
        on_progress,
    )
    .await;
    session.close().await;
    let outcome = result?;
    let failed = outcome
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    let _ = audit::append(
        store,
        Some(instance_id),
        "server.provisioned",
        &format!(
            "Server set up ({} steps); {} of {} safety checks passed",
            outcome.timings.len(),
            outcome.checks.len() - failed,
            outcome.checks.len()
        ),
    )
    .await;
    Ok(outcome)
}

/// Read the server's posture (sockets, sshd, firewall, service, file modes, OpenClaw's
/// own audit); with `fix`, first let `openclaw security audit --fix` repair what it can.
pub async fn posture(
    store: &Store,
    vault: &Vault,
    instance_id: &str,
    fix: bool,
) -> Result<Vec<Check>> {
    let (spec, _) = spec_for(store, instance_id).await?;
    let session = super::open_session(store, vault, instance_id).await?;
    let host = provision::detect_host(&session, &spec, &provision::steps::STEPS[0]).await?;
    if fix {
        provision::security_audit_fix(&session, &host, &spec).await?;
        let _ = audit::append(
            store,
            Some(instance_id),
            "server.audit_fix",
            "Ran OpenClaw's own safe fixes",
        )
        .await;
    }
    let mut checks = provision::posture::check_posture(&session, &host, &spec).await;
    if spec.firewall.tailscale_udp.is_some() {
        checks.extend(tailnet_posture(&session, &host, spec.port).await);
    }
    session.close().await;
    Ok(checks)
}

/// The tailnet lines of the checklist, read on the server; when they can't be read, one
/// failed line that says why.
async fn tailnet_posture(
    session: &ssh::Session,
    host: &provision::steps::HostFacts,
    port: u16,
) -> Vec<Check> {
    match tailnet::read_state(session, host).await {
        Ok((status, serve)) => tailnet::tailnet_checks(&status, &serve, port),
        Err(e) => vec![Check {
            id: tailnet::ON_TAILNET,
            label: "On your tailnet",
            status: CheckStatus::Fail,
            detail: Some(e.to_string()),
        }],
    }
}

/// Where the server gets Tailscale: its official repository, unless
/// `CLAWKEEPER_TAILSCALE_REPO` (with `CLAWKEEPER_TAILSCALE_REPO_FINGERPRINT`, the key that
/// signs it) points elsewhere (a company mirror; tests: the local stand-in).
/// `CLAWKEEPER_TAILSCALE_JOIN_TIMEOUT` (seconds) changes how long joining may take.
pub fn tailnet_spec(instance_name: &str) -> TailnetSpec {
    let mut ts = TailnetSpec::new(instance_name);
    if let Some(secs) = std::env::var("CLAWKEEPER_TAILSCALE_JOIN_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|s| (1..=3600).contains(s))
    {
        ts.join_timeout_secs = secs;
    }
    if let Ok(repo) = std::env::var("CLAWKEEPER_TAILSCALE_REPO") {
        if !repo.trim().is_empty() {
            ts.repo = repo.trim().to_owned();
            ts.repo_fingerprint = std::env::var("CLAWKEEPER_TAILSCALE_REPO_FINGERPRINT")
                .unwrap_or_default()
                .trim()
                .to_owned();
        }
    }
    ts
}

/// Put the provisioned server `instance_id` on the person's tailnet (see
/// [`provision::tailnet`]): an auth key is minted with `client` only if the server needs to
/// log in, used once, and revoked when the join did not use it. Run it again after any
/// failure.
pub async fn join_tailnet(
    store: &Store,
    vault: &Vault,
    instance_id: &str,
    client: &TailscaleClient,
    cancel: CancellationToken,
    on_progress: impl Fn(Progress),
) -> Result<tailnet::Joined> {
    let (mut spec, _) = spec_for(store, instance_id).await?;
    spec.firewall.tailscale_udp = Some(tailnet::TAILSCALE_UDP_PORT);
    let name = store
        .instance(instance_id)
        .await?
        .map(|i| i.name)
        .unwrap_or_else(|| instance_id.to_owned());
    let ts = tailnet_spec(&name);
    let session = super::open_session(store, vault, instance_id).await?;
    let _ = audit::append(
        store,
        Some(instance_id),
        "server.tailnet_join",
        &format!("Putting the server on your tailnet as {}", ts.hostname),
    )
    .await;
    let minted: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let client = client.with_cancel(cancel.clone());
    let mint = || async {
        let key = client
            .mint_auth_key(&KeyRequest::for_instance(instance_id))
            .await
            .map_err(|e| match e.hint() {
                Some(h) => format!("{e} {h}"),
                None => e.to_string(),
            })?;
        if let Ok(mut m) = minted.lock() {
            *m = Some(key.info.id.clone());
        }
        Ok(key.key)
    };
    let result = async {
        let host = provision::detect_host(&session, &spec, &provision::steps::STEPS[0]).await?;
        tailnet::join(
            &session,
            store,
            &host,
            &spec,
            &ts,
            mint,
            cancel,
            on_progress,
        )
        .await
    }
    .await;
    session.close().await;
    let key_id = minted.lock().ok().and_then(|mut m| m.take());
    match result {
        Ok(joined) => {
            crate::tailnet::server::remember(store, instance_id, &ts.hostname).await?;
            // Device id, address and key expiry from the API (the record is useful without
            // them: the tray refreshes it later).
            if let Err(e) = crate::tailnet::server::refresh(store, &client, instance_id).await {
                tracing::warn!(error = %e, "could not look the server up on the tailnet yet");
            }
            let _ = audit::append(
                store,
                Some(instance_id),
                "server.tailnet_joined",
                &format!(
                    "On your tailnet as {} {}",
                    joined.node.dns_name.trim_end_matches('.'),
                    joined
                        .node
                        .ipv4()
                        .map(|a| a.to_string())
                        .unwrap_or_default()
                ),
            )
            .await;
            Ok(joined)
        }
        Err(e) => {
            // A single-use key the server did not use: revoke it rather than leave it
            // valid for its remaining minutes.
            if let Some(id) = key_id {
                if let Err(re) = client.revoke_key(&id).await {
                    tracing::warn!(error = %re, "could not revoke the unused auth key");
                }
            }
            Err(e.into())
        }
    }
}
