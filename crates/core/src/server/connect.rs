//! Connecting a server the person already has.
//!
//! 1. [`crate::ssh::scan_host_key`] — the UI shows the fingerprint; the person confirms.
//! 2. [`adopt`] — log in once with the person's key or a one-time password, install the
//!    app's own ed25519 key (private half only in the keychain), prove it works by logging
//!    in again with it, then pin the host key and remember the server. Password login is
//!    switched off by the provisioning step that hardens sshd, which runs first.
//! 3. [`open_session`] — every later connection: the pinned key and the app's key.

use crate::audit;
use crate::remote::{shell_quote, Remote};
use crate::secret::Secret;
use crate::ssh::{self, hosts, keys, Auth, HostKey, Session, Target};
use crate::store::{DesiredState, InstanceRecord, Store};
use crate::vault::{SecretKind, SecretRef, Vault};
use std::sync::Arc;

/// How the person logs in the first time.
pub enum FirstLogin {
    /// A private key file's contents (and its passphrase, if it has one). Kept in the
    /// keychain as `ssh-key/<instance>-imported`, as a way back in if the app's key is lost.
    Key {
        private: Secret,
        passphrase: Option<Secret>,
    },
    /// A one-time password: used once, never stored.
    Password(Secret),
    /// The app's own key is already on the server (a cloud server created with it).
    AppKey,
}

impl std::fmt::Debug for FirstLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FirstLogin::Key { .. } => "FirstLogin::Key(<redacted>)",
            FirstLogin::Password(_) => "FirstLogin::Password(<redacted>)",
            FirstLogin::AppKey => "FirstLogin::AppKey",
        })
    }
}

enum LoginKind {
    Key,
    Password,
    AppKey,
}

#[derive(Debug)]
pub struct Connected {
    /// A session logged in with the app's own key.
    pub session: Session,
    pub record: hosts::HostRecord,
    /// Whether the first login used a password (so password login is still on until
    /// sshd is hardened).
    pub used_password: bool,
}

/// Adopt the server at `target` as instance `instance_id`, trusting `confirmed` (the host
/// key whose fingerprint the person confirmed). Safe to repeat: the app's key is added
/// to `authorized_keys` once, and an existing key is reused.
pub async fn adopt(
    store: &Store,
    vault: &Vault,
    instance_id: &str,
    name: &str,
    target: &Target,
    confirmed: &HostKey,
    login: FirstLogin,
) -> ssh::Result<Connected> {
    let (auth, used_password) = match &login {
        FirstLogin::Key {
            private,
            passphrase,
        } => {
            let key = keys::parse_private(private, passphrase.as_ref())?;
            (Auth::Key(Arc::new(key)), false)
        }
        FirstLogin::Password(pw) => (Auth::Password(pw.clone()), true),
        FirstLogin::AppKey => (
            Auth::Key(Arc::new(keys::app_key(vault, instance_id).await?.0)),
            false,
        ),
    };
    let first = Session::connect(target, confirmed, &auth).await?;

    let login_kind = match &login {
        FirstLogin::Key { .. } => LoginKind::Key,
        FirstLogin::Password(_) => LoginKind::Password,
        FirstLogin::AppKey => LoginKind::AppKey,
    };
    // The person's own key goes to the keychain (unencrypted there: the keychain is the
    // protection), as a way back in. A password is never kept.
    if let (FirstLogin::Key { .. }, Auth::Key(k)) = (&login, &auth) {
        let r = SecretRef::new(SecretKind::SshKey, &format!("{instance_id}-imported"));
        vault.store(&r, &keys::to_openssh(k)?).await?;
    }
    drop(login);

    let (app_key, created) = keys::app_key(vault, instance_id).await?;
    let line = keys::public_line(app_key.public_key())?;
    let app_fp = keys::fingerprint(app_key.public_key());
    install_authorized_key(&first, &line, &keys::app_key_comment(instance_id), target).await?;
    first.close().await;

    // Prove the app's key works before relying on it.
    let session = Session::connect(target, confirmed, &Auth::Key(Arc::new(app_key))).await?;
    let probe = session
        .run("true", None)
        .await
        .map_err(|e| ssh::Error::Session {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
    if !probe.success() {
        return Err(ssh::Error::Session {
            target: target.to_string(),
            reason: "the server would not run a command with Clawkeeper's key".into(),
        });
    }

    if store.instance(instance_id).await?.is_none() {
        store
            .upsert_instance(&InstanceRecord {
                id: instance_id.to_owned(),
                name: name.to_owned(),
                target: "ssh".into(),
                port: crate::local::DEFAULT_PORT,
                desired_state: DesiredState::Stopped,
                openclaw_version: crate::local::runtime::OPENCLAW_VERSION.into(),
                created_at: String::new(),
            })
            .await?;
    }
    hosts::pin(store, instance_id, target, confirmed).await?;
    let fp = confirmed.fingerprint.clone();
    hosts::set_app_key(store, instance_id, &line, &app_fp).await?;
    let _ = audit::append(
        store,
        Some(instance_id),
        "server.connected",
        &format!(
            "Connected {target} (host key {fp}); installed Clawkeeper's key {app_fp}{}; first login by {}",
            if created { " (new)" } else { "" },
            match login_kind {
                LoginKind::Password => "one-time password",
                LoginKind::Key => "your key",
                LoginKind::AppKey => "Clawkeeper's key (set up when the server was created)",
            }
        ),
    )
    .await;
    let record = hosts::get(store, instance_id)
        .await?
        .ok_or_else(|| ssh::Error::Session {
            target: target.to_string(),
            reason: "the server record was not saved".into(),
        })?;
    Ok(Connected {
        session,
        record,
        used_password,
    })
}

/// Add `line` to the login user's `authorized_keys` (replacing any older line with the
/// same comment), with OpenSSH's required modes. The public key is not a secret.
async fn install_authorized_key(
    session: &Session,
    line: &str,
    comment: &str,
    target: &Target,
) -> ssh::Result<()> {
    let script = format!(
        r#"set -eu
umask 077
mkdir -p "$HOME/.ssh"
f="$HOME/.ssh/authorized_keys"
touch "$f"
tmp="$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")"
grep -v -F -- {comment_tag} "$f" > "$tmp" || true
printf '%s\n' {line} >> "$tmp"
chmod 600 "$tmp"
mv "$tmp" "$f"
grep -qxF -- {line} "$f"
"#,
        comment_tag = shell_quote(&format!(" {comment}")),
        line = shell_quote(line),
    );
    let out = session
        .run("sh -s", Some(script.as_bytes()))
        .await
        .map_err(|e| ssh::Error::Session {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
    if !out.success() {
        return Err(ssh::Error::Session {
            target: target.to_string(),
            reason: format!(
                "couldn't add Clawkeeper's key to authorized_keys: {}",
                out.tail(3)
            ),
        });
    }
    Ok(())
}

/// Remove the app's own key line (comment `clawkeeper-<instance>`) from the login user's
/// `authorized_keys` — when the person removes the server from Clawkeeper.
pub async fn remove_app_key(session: &Session, instance_id: &str) -> ssh::Result<()> {
    let tag = shell_quote(&format!(" {}", keys::app_key_comment(instance_id)));
    let script = format!(
        r#"set -eu
f="$HOME/.ssh/authorized_keys"
[ -f "$f" ] || exit 0
tmp="$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")"
grep -v -F -- {tag} "$f" > "$tmp" || true
chmod 600 "$tmp"
mv "$tmp" "$f"
"#
    );
    let out = session
        .run("sh -s", Some(script.as_bytes()))
        .await
        .map_err(|e| ssh::Error::Session {
            target: session.target().to_string(),
            reason: e.to_string(),
        })?;
    if !out.success() {
        return Err(ssh::Error::Session {
            target: session.target().to_string(),
            reason: format!("couldn't remove Clawkeeper's key: {}", out.tail(3)),
        });
    }
    Ok(())
}

/// Forget a server on this computer: its pinned identity, Clawkeeper's key for it (and the
/// copy of the person's key), its assistant's password and provider key in the keychain,
/// and its record. Returns what was removed, in plain words. What is on the server or at
/// the provider is the caller's to remove first ([`remove_app_key`],
/// [`super::deploy::delete`]).
pub async fn forget(store: &Store, vault: &Vault, instance_id: &str) -> ssh::Result<Vec<String>> {
    let mut removed = Vec::new();
    if hosts::get(store, instance_id).await?.is_some() {
        hosts::forget(store, instance_id).await?;
        removed.push("The server's pinned identity".to_owned());
    }
    // What is in the keychain now: deleting a missing entry succeeds, so the list says
    // only what was really there.
    let present = vault.list().await?;
    let imported = format!("{instance_id}-imported");
    let rotating = crate::rotation::staging(&SecretRef::new(SecretKind::SshKey, instance_id));
    for (kind, key, what) in [
        (SecretKind::SshKey, instance_id, "Clawkeeper's key for it"),
        (
            SecretKind::SshKey,
            rotating.instance.as_str(),
            "The new key of an unfinished key change",
        ),
        (
            SecretKind::SshKey,
            imported.as_str(),
            "The copy of your key for it",
        ),
        (
            SecretKind::GatewayToken,
            instance_id,
            "Its assistant's password",
        ),
        (
            SecretKind::ProviderKey,
            instance_id,
            "Its model provider key",
        ),
    ] {
        let r = SecretRef::new(kind, key);
        if !present.contains(&r) {
            continue;
        }
        match vault.delete(&r).await {
            Ok(()) | Err(crate::vault::Error::NotFound(_)) => {
                removed.push(format!("From your keychain: {what}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A key change of it that didn't finish has nothing left to finish.
    for r in crate::rotation::journal::unfinished(store).await? {
        if r.instance_id == instance_id {
            let _ = crate::rotation::journal::finish(
                store,
                r.id,
                crate::rotation::journal::Outcome::RolledBack,
                Some("the server was removed from Clawkeeper"),
            )
            .await;
        }
    }
    sqlx::query("DELETE FROM instances WHERE id = ?")
        .bind(instance_id)
        .execute(store.pool())
        .await
        .map_err(crate::store::Error::from)?;
    Ok(removed)
}

/// A session to an adopted server: its pinned host key and the app's key from the keychain.
/// While a rotation of that key runs, the keychain holds two (the new one in the staging
/// entry): the new one is tried first, then the old one — the server accepts at least one
/// of them at every moment.
pub async fn open_session(store: &Store, vault: &Vault, instance_id: &str) -> ssh::Result<Session> {
    let rec = hosts::get(store, instance_id)
        .await?
        .ok_or_else(|| ssh::Error::Session {
            target: instance_id.to_owned(),
            reason: "this server hasn't been connected yet".into(),
        })?;
    let entry = SecretRef::new(SecretKind::SshKey, instance_id);
    let candidates = crate::rotation::driver::candidates(vault, &entry).await?;
    let mut last = None;
    for text in &candidates {
        let auth = Auth::Key(Arc::new(keys::parse_private(text, None)?));
        match connect_retrying(&rec.target, &rec.host_key, &auth).await {
            Err(e @ ssh::Error::AuthRejected { .. }) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or(ssh::Error::Vault(crate::vault::Error::NotFound(entry))))
}

/// Connect; sshd closes its listening socket for a moment while it re-executes on a reload
/// (as provisioning's "sshd" step does): a refused connection is tried again briefly.
async fn connect_retrying(target: &Target, pinned: &HostKey, auth: &Auth) -> ssh::Result<Session> {
    let deadline = tokio::time::Instant::now() + REFUSED_RETRY_FOR;
    loop {
        match Session::connect(target, pinned, auth).await {
            Err(ssh::Error::Unreachable { refused: true, .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// How long [`open_session`] keeps trying a server that refuses connections.
const REFUSED_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(5);
