//! The vault: secrets in the OS keychain (Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows), addressed by reference, never written anywhere else.
//!
//! Every entry lives under one *namespace* (the keychain "service" attribute), so that
//! development builds and test runs never touch a person's real entries. The reference
//! (for example `gateway-token/local`) is the keychain "username" attribute.

use crate::problem::UserFacing;
use crate::secret::Secret;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Clawkeeper can't reach your keychain.")]
    Unavailable(String),
    #[error("Your keychain is locked.")]
    Locked,
    #[error("No secret named {0} is saved in your keychain.")]
    NotFound(SecretRef),
    #[error("Your keychain refused the request: {0}")]
    Platform(String),
    #[error("Not a valid secret name: {0}")]
    BadRef(String),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "keychain_unavailable",
            Error::Locked => "keychain_locked",
            Error::NotFound(_) => "secret_missing",
            Error::Platform(_) => "keychain_error",
            Error::BadRef(_) => "bad_secret_ref",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Unavailable(_) => {
                "Start your desktop's keyring (on Linux: GNOME Keyring or KWallet) and try again. Clawkeeper never falls back to a plain file."
            }
            Error::Locked => "Unlock your keychain (log in again or open your keyring app), then try again.",
            Error::NotFound(_) => "Enter the key again in Settings.",
            Error::Platform(_) | Error::BadRef(_) => "Try again; if it keeps happening, restart your computer's keyring.",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a secret is for. The reference is `<kind>/<instance>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    GatewayToken,
    ProviderKey,
    /// The private half of the app's own SSH key for a server (OpenSSH format).
    SshKey,
    /// A one-time password for a server's first login; deleted once the app's key is in.
    SshPassword,
    /// A cloud provider API token (the instance part names the account, e.g. `hetzner`).
    CloudToken,
    /// The Tailscale API credential: an API access token (`tskey-api-…`) or an OAuth
    /// client secret (`tskey-client-…`); the prefix says which. Auth keys minted with it
    /// are never stored.
    TailscaleApi,
    /// The model provider's management key (OpenRouter: reads activity and credits, sets
    /// the spending cap on the assistant's key). Never given to the assistant.
    ProviderManagement,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::GatewayToken => "gateway-token",
            SecretKind::ProviderKey => "provider-key",
            SecretKind::SshKey => "ssh-key",
            SecretKind::SshPassword => "ssh-password",
            SecretKind::CloudToken => "cloud-token",
            SecretKind::TailscaleApi => "tailscale-api",
            SecretKind::ProviderManagement => "provider-management",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "gateway-token" => Some(SecretKind::GatewayToken),
            "provider-key" => Some(SecretKind::ProviderKey),
            "ssh-key" => Some(SecretKind::SshKey),
            "ssh-password" => Some(SecretKind::SshPassword),
            "cloud-token" => Some(SecretKind::CloudToken),
            "tailscale-api" => Some(SecretKind::TailscaleApi),
            "provider-management" => Some(SecretKind::ProviderManagement),
            _ => None,
        }
    }
}

/// A reference to a secret in the vault, e.g. `gateway-token/local`. Safe to log and store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub kind: SecretKind,
    pub instance: String,
}

impl SecretRef {
    pub fn new(kind: SecretKind, instance: &str) -> Self {
        Self {
            kind,
            instance: instance.to_owned(),
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let (kind, instance) = s
            .split_once('/')
            .ok_or_else(|| Error::BadRef(s.to_owned()))?;
        let kind = SecretKind::parse(kind).ok_or_else(|| Error::BadRef(s.to_owned()))?;
        let valid = !instance.is_empty()
            && instance.len() <= 64
            && instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::BadRef(s.to_owned()));
        }
        Ok(Self::new(kind, instance))
    }
}

impl SecretRef {
    /// A reference as a gateway config names it: the reference, optionally followed by
    /// `#<n>`, a tag that makes the name differ from an earlier one for the same entry (so
    /// that OpenClaw, which applies a config change only when the file differs from what
    /// it last applied, sees each rotation's install as a change). The entry is the same.
    pub fn parse_config_id(s: &str) -> Result<Self> {
        match s.rsplit_once('#') {
            Some((r, tag))
                if !tag.is_empty()
                    && tag.len() <= 12
                    && tag.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Self::parse(r)
            }
            _ => Self::parse(s),
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.instance)
    }
}

/// State of the keychain, checked at start-up and shown to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeychainStatus {
    Ok,
    Locked,
    Unavailable,
}

/// Handle on the OS keychain under one namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Vault {
    namespace: Arc<str>,
}

/// The default namespace: the person's real entries in release builds, a separate one in
/// debug builds; `CLAWKEEPER_KEYCHAIN_NAMESPACE` overrides both (tests set it).
pub fn default_namespace() -> String {
    if let Ok(ns) = std::env::var("CLAWKEEPER_KEYCHAIN_NAMESPACE") {
        if !ns.is_empty() {
            return ns;
        }
    }
    if cfg!(debug_assertions) {
        "clawkeeper-dev".to_owned()
    } else {
        "clawkeeper".to_owned()
    }
}

static STORE_INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();

fn ensure_store() -> Result<()> {
    STORE_INIT
        .get_or_init(|| platform_store().map(keyring_core::set_default_store))
        .clone()
        .map_err(Error::Unavailable)
}

#[cfg(target_os = "linux")]
fn platform_store() -> std::result::Result<Arc<keyring_core::CredentialStore>, String> {
    zbus_secret_service_keyring_store::Store::new()
        .map(|s| s as Arc<keyring_core::CredentialStore>)
        .map_err(|e| e.to_string())
}

#[cfg(target_os = "macos")]
fn platform_store() -> std::result::Result<Arc<keyring_core::CredentialStore>, String> {
    apple_native_keyring_store::keychain::Store::new()
        .map(|s| s as Arc<keyring_core::CredentialStore>)
        .map_err(|e| e.to_string())
}

#[cfg(target_os = "windows")]
fn platform_store() -> std::result::Result<Arc<keyring_core::CredentialStore>, String> {
    windows_native_keyring_store::Store::new()
        .map(|s| s as Arc<keyring_core::CredentialStore>)
        .map_err(|e| e.to_string())
}

fn map_err(e: keyring_core::Error, r: Option<&SecretRef>) -> Error {
    match e {
        keyring_core::Error::NoEntry => match r {
            Some(r) => Error::NotFound(r.clone()),
            None => Error::Platform("no entry".into()),
        },
        keyring_core::Error::NoStorageAccess(_) => Error::Locked,
        keyring_core::Error::NoDefaultStore => Error::Unavailable("no keychain store".into()),
        // Platform messages never contain secret values (they are D-Bus/OS errors).
        other => Error::Platform(platform_words(&other.to_string())),
    }
}

/// The keychain's own words without the layers' prefixes: "Platform failure: zbus error:
/// org.freedesktop.DBus.Error.Failed: Couldn't set item secret" → "Couldn't set item secret".
fn platform_words(message: &str) -> String {
    let mut rest = message.trim();
    while let Some((head, tail)) = rest.split_once(": ") {
        let layer = matches!(head, "Platform failure" | "zbus error")
            || (head.starts_with("org.") && !head.contains(' '));
        if !layer || tail.trim().is_empty() {
            break;
        }
        rest = tail.trim();
    }
    rest.to_owned()
}

impl Vault {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: Arc::from(namespace),
        }
    }

    pub fn open_default() -> Self {
        Self::new(&default_namespace())
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn entry(&self, r: &SecretRef) -> Result<keyring_core::Entry> {
        ensure_store()?;
        keyring_core::Entry::new(&self.namespace, &r.to_string()).map_err(|e| map_err(e, Some(r)))
    }

    /// Blocking: store (or replace) a secret.
    pub fn store_blocking(&self, r: &SecretRef, secret: &Secret) -> Result<()> {
        self.entry(r)?
            .set_password(secret.expose())
            .map_err(|e| map_err(e, Some(r)))
    }

    /// Blocking: read a secret.
    pub fn read_blocking(&self, r: &SecretRef) -> Result<Secret> {
        let mut value = self
            .entry(r)?
            .get_password()
            .map_err(|e| map_err(e, Some(r)))?;
        let secret = Secret::new(value.as_str());
        zeroize::Zeroize::zeroize(&mut value);
        Ok(secret)
    }

    /// Blocking: delete a secret. Deleting a missing secret is not an error.
    pub fn delete_blocking(&self, r: &SecretRef) -> Result<()> {
        match self.entry(r)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e, Some(r))),
        }
    }

    /// Blocking: every reference saved under this namespace.
    pub fn list_blocking(&self) -> Result<Vec<SecretRef>> {
        ensure_store()?;
        let spec = HashMap::from([("service", &*self.namespace)]);
        let entries = keyring_core::Entry::search(&spec).map_err(|e| map_err(e, None))?;
        let mut refs = Vec::new();
        for entry in entries {
            let attrs = entry.get_attributes().map_err(|e| map_err(e, None))?;
            if let Some(r) = attrs.get("username").and_then(|u| SecretRef::parse(u).ok()) {
                refs.push(r);
            }
        }
        refs.sort_by_key(|r| r.to_string());
        refs.dedup();
        Ok(refs)
    }

    /// Blocking: is the keychain there and unlocked? Probes with a read of a marker entry.
    pub fn status_blocking(&self) -> KeychainStatus {
        let probe = SecretRef::new(SecretKind::GatewayToken, "probe");
        match self.read_blocking(&probe) {
            Ok(_) | Err(Error::NotFound(_)) => KeychainStatus::Ok,
            Err(Error::Locked) => KeychainStatus::Locked,
            Err(_) => KeychainStatus::Unavailable,
        }
    }

    pub async fn store(&self, r: &SecretRef, secret: &Secret) -> Result<()> {
        let (v, r, s) = (self.clone(), r.clone(), secret.clone());
        blocking(move || v.store_blocking(&r, &s)).await
    }

    pub async fn read(&self, r: &SecretRef) -> Result<Secret> {
        let (v, r) = (self.clone(), r.clone());
        blocking(move || v.read_blocking(&r)).await
    }

    pub async fn delete(&self, r: &SecretRef) -> Result<()> {
        let (v, r) = (self.clone(), r.clone());
        blocking(move || v.delete_blocking(&r)).await
    }

    pub async fn list(&self) -> Result<Vec<SecretRef>> {
        let v = self.clone();
        blocking(move || v.list_blocking()).await
    }

    pub async fn status(&self) -> KeychainStatus {
        let v = self.clone();
        blocking(move || Ok(v.status_blocking()))
            .await
            .unwrap_or(KeychainStatus::Unavailable)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Platform(format!("keychain task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_messages_keep_the_keychains_own_words() {
        assert_eq!(
            platform_words("Platform failure: zbus error: org.freedesktop.DBus.Error.Failed: Couldn't set item secret"),
            "Couldn't set item secret"
        );
        assert_eq!(
            platform_words("Platform failure: zbus error: org.freedesktop.DBus.Error.Failed: Couldn't create item: An error occurred on the device"),
            "Couldn't create item: An error occurred on the device"
        );
        assert_eq!(
            platform_words("Access denied: locked"),
            "Access denied: locked"
        );
        assert_eq!(platform_words("Platform failure: "), "Platform failure:");
    }

    #[test]
    fn refs_round_trip_and_reject_junk() -> Result<()> {
        let r = SecretRef::parse("gateway-token/local")?;
        assert_eq!(r, SecretRef::new(SecretKind::GatewayToken, "local"));
        assert_eq!(r.to_string(), "gateway-token/local");
        let t = SecretRef::parse("tailscale-api/tailscale")?;
        assert_eq!(t, SecretRef::new(SecretKind::TailscaleApi, "tailscale"));
        assert_eq!(t.to_string(), "tailscale-api/tailscale");
        for bad in [
            "",
            "gateway-token",
            "nope/local",
            "provider-key/",
            "provider-key/a b",
            "provider-key/../x",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad} accepted");
        }
        Ok(())
    }

    #[test]
    fn config_ids_may_carry_a_tag_the_entry_ignores() -> Result<()> {
        let want = SecretRef::new(SecretKind::GatewayToken, "local--next");
        assert_eq!(
            SecretRef::parse_config_id("gateway-token/local--next#42")?,
            want
        );
        assert_eq!(
            SecretRef::parse_config_id("gateway-token/local--next")?,
            want
        );
        for bad in [
            "gateway-token/local#",
            "gateway-token/local#x1",
            "gateway-token/local#1234567890123",
            "gateway-token/lo#cal#1",
            "#1",
        ] {
            assert!(SecretRef::parse_config_id(bad).is_err(), "{bad} accepted");
        }
        Ok(())
    }
}
