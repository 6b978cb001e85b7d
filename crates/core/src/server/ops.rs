//! What the faces (CLI, tray, windows) do with an adopted server: provision it with the
//! instance's secrets from the keychain, check its posture, open its gateway.

use crate::audit;
use crate::local::verify::{Check, CheckStatus};
use crate::problem::UserFacing;
use crate::provision::{
    self, sources::PackageSources, steps::ProvisionSpec, ModelEndpoint, Outcome, Progress,
    ProvisionSecrets,
};
use crate::secret::Secret;
use crate::ssh;
use crate::store::Store;
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
            Error::NoProvider => "no_provider",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Ssh(e) => e.hint(),
            Error::Provision(e) => e.hint(),
            Error::Vault(e) => e.hint(),
            Error::Store(e) => e.hint(),
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
    let gateway_token = match vault.read(&token_ref).await {
        Ok(t) => t,
        Err(crate::vault::Error::NotFound(_)) => {
            let t = Secret::random(32);
            vault.store(&token_ref, &t).await?;
            t
        }
        Err(e) => return Err(e.into()),
    };
    let provider_key = vault.read(&key_ref).await?;
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
    let checks = provision::posture::check_posture(&session, &host, &spec).await;
    session.close().await;
    Ok(checks)
}
