//! The app's SSH key for a server.
//!
//! The server accepts any number of keys, so the new one is added beside the old and the
//! old is taken away only once the new one logs in:
//!
//! - **mint**: a new ed25519 key, with the same comment as every app key for the server
//!   (`clawkeeper-<instance>`, so that removing the server later finds it);
//! - **install**: its public line appended to the login user's `authorized_keys` (only if
//!   absent), over the app's session with the server (logged in with the key in the
//!   keychain; the one the whole click shares, see [`ServerLink`]);
//! - **verify new**: a fresh login with the new key runs a command;
//! - **revoke old**: the old key's line removed, found by its public key (not its comment,
//!   which both lines share), over a session logged in with the new key (the verify's, kept
//!   open for it: the server lets only 10 new SSH connections a minute through); never
//!   while the new key's line is missing;
//! - **verify old**: a login with the old key is refused;
//! - **settle** (commit): the server's record names the new public key;
//! - **discard** (undo before the revoke): the new key's line removed, logged in with the
//!   old key.
//!
//! A server that doesn't answer is a transient failure (the rotation waits, both keys in
//! the keychain, the one the server has works); a refused login is a permanent one.
//! Private keys live only in the keychain and in memory: the server is sent public lines
//! only, and errors and logs name keys by fingerprint.

use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::remote::{shell_quote, Remote};
use crate::secret::Secret;
use crate::server::ServerLink;
use crate::ssh::{self, hosts, keys, Auth, Session};
use crate::store::Store;
use russh::keys::PrivateKey;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The app's SSH key for the adopted server `instance`.
pub struct ServerSshKey {
    store: Store,
    instance: String,
    /// The app's session with the server (any of its keys in the keychain).
    link: ServerLink,
    /// The verify's session, logged in with the new key: the revoke runs over it.
    with_new: Mutex<Option<Session>>,
}

/// A key from the keychain (OpenSSH text).
fn parse(s: &Secret) -> StepResult<PrivateKey> {
    keys::parse_private(s, None)
        .map_err(|e| StepError::Permanent(format!("the key in your keychain can't be read ({e})")))
}

/// The base64 part of a public line (`ssh-ed25519 <blob> comment`): what identifies the key
/// in `authorized_keys`, whatever its comment or options.
fn blob(line: &str) -> StepResult<String> {
    line.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| StepError::Permanent("a public key could not be written out".into()))
}

fn public_line(key: &PrivateKey) -> StepResult<String> {
    keys::public_line(key.public_key()).map_err(|e| StepError::Permanent(e.to_string()))
}

/// The reason [`ServerSshKey::login`] gives for a server Clawkeeper no longer knows.
const NOT_CONNECTED: &str = "this server is no longer connected to Clawkeeper";

/// How a failed login or command counts.
fn classify(e: &ssh::Error) -> StepError {
    match e {
        ssh::Error::Session { reason, .. } if reason == NOT_CONNECTED => {
            StepError::Permanent(e.to_string())
        }
        ssh::Error::Unreachable { .. }
        | ssh::Error::Timeout { .. }
        | ssh::Error::Session { .. }
        | ssh::Error::Protocol { .. }
        | ssh::Error::Vault(_)
        | ssh::Error::Store(_) => StepError::Transient(e.to_string()),
        _ => StepError::Permanent(e.to_string()),
    }
}

/// Shell that appends `line` to the login user's `authorized_keys` unless its key is there
/// already; atomic (a copy renamed over it), with OpenSSH's modes.
fn append_script(line: &str, blob: &str) -> String {
    format!(
        r#"set -eu
umask 077
mkdir -p "$HOME/.ssh"
f="$HOME/.ssh/authorized_keys"
touch "$f"
if grep -qF -- {blob} "$f"; then exit 0; fi
tmp="$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")"
awk '{{ print }}' "$f" > "$tmp"
printf '%s\n' {line} >> "$tmp"
chmod 600 "$tmp"
mv "$tmp" "$f"
grep -qF -- {blob} "$f"
"#,
        blob = shell_quote(&format!(" {blob}")),
        line = shell_quote(line),
    )
}

/// Exit status of [`remove_script`] when the key to keep isn't in the file.
const KEEP_MISSING: u32 = 3;

/// Shell that removes every line of `gone`'s key from the login user's `authorized_keys`,
/// but only while `keep`'s key is in it (so the app never locks itself out); atomic.
fn remove_script(gone: &str, keep: &str) -> String {
    format!(
        r#"set -eu
f="$HOME/.ssh/authorized_keys"
[ -f "$f" ] || exit 0
grep -qF -- {gone} "$f" || exit 0
grep -qF -- {keep} "$f" || exit {KEEP_MISSING}
tmp="$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX")"
grep -vF -- {gone} "$f" > "$tmp" || true
chmod 600 "$tmp"
mv "$tmp" "$f"
"#,
        gone = shell_quote(&format!(" {gone}")),
        keep = shell_quote(&format!(" {keep}")),
    )
}

impl ServerSshKey {
    pub fn new(store: Store, instance: &str, link: ServerLink) -> Self {
        Self {
            store,
            instance: instance.to_owned(),
            link,
            with_new: Mutex::new(None),
        }
    }

    /// Log in with `key` (the server's pinned host key checked first).
    async fn login(&self, key: PrivateKey) -> ssh::Result<Session> {
        let rec = hosts::get(&self.store, &self.instance)
            .await?
            .ok_or_else(|| ssh::Error::Session {
                target: self.instance.clone(),
                reason: NOT_CONNECTED.into(),
            })?;
        Session::connect(&rec.target, &rec.host_key, &Auth::Key(Arc::new(key))).await
    }

    /// Run `script` with `sh -s` over `session`; its exit status.
    async fn run(&self, session: &Session, script: &str, what: &str) -> StepResult<Option<u32>> {
        let out = session
            .run("sh -s", Some(script.as_bytes()))
            .await
            .map_err(|e| StepError::Transient(format!("the server stopped answering ({e})")))?;
        if out.success() {
            return Ok(None);
        }
        if out.code == Some(KEEP_MISSING) {
            return Ok(out.code);
        }
        Err(StepError::Transient(format!("{what}: {}", out.tail(3))))
    }

    /// Remove `gone`'s line, logged in with `with` (whose line must stay; `session`: one
    /// logged in with it already).
    async fn remove(
        &self,
        gone: &Secret,
        with: &Secret,
        session: Option<Session>,
        what: &str,
    ) -> StepResult {
        let gone_line = public_line(&parse(gone)?)?;
        let with_key = parse(with)?;
        let keep_line = public_line(&with_key)?;
        let session = match session.filter(|s| !s.is_closed()) {
            Some(s) => s,
            None => self.login(with_key).await.map_err(|e| classify(&e))?,
        };
        let ran = self
            .run(
                &session,
                &remove_script(&blob(&gone_line)?, &blob(&keep_line)?),
                what,
            )
            .await;
        session.close().await;
        match ran? {
            None => Ok(()),
            Some(_) => Err(StepError::Permanent(
                "the key Clawkeeper logged in with isn't in the server's list of allowed keys \
                 (it may be allowed from another file); nothing was removed"
                    .into(),
            )),
        }
    }
}

impl Rotator for ServerSshKey {
    fn key(&self) -> KeyId {
        KeyId::SshKey
    }

    fn fingerprint(&self, secret: &Secret) -> String {
        match keys::parse_private(secret, None) {
            Ok(k) => keys::fingerprint(k.public_key()),
            Err(_) => secret.fingerprint(),
        }
    }

    fn mint<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        Box::pin(async move {
            let key = keys::generate_ed25519(&keys::app_key_comment(&self.instance))
                .map_err(|e| StepError::Permanent(e.to_string()))?;
            keys::to_openssh(&key).map_err(|e| StepError::Permanent(e.to_string()))
        })
    }

    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let line = public_line(&parse(ctx.new_secret()?)?)?;
            let session = self.link.session().await.map_err(|e| match e {
                ssh::Error::AuthRejected { .. } => StepError::Permanent(
                    "the server no longer accepts the key in your keychain".into(),
                ),
                e => classify(&e),
            })?;
            self.run(
                &session,
                &append_script(&line, &blob(&line)?),
                "the new key couldn't be added on the server",
            )
            .await
            .map(drop)
        })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let session = self
                .login(parse(ctx.new_secret()?)?)
                .await
                .map_err(|e| match e {
                    ssh::Error::AuthRejected { .. } => {
                        StepError::Permanent("the server refused the new key".into())
                    }
                    e => classify(&e),
                })?;
            let out = session.run("true", None).await;
            match out {
                Ok(o) if o.success() => {
                    // Kept for the revoke (a crash meanwhile just drops it).
                    if let Some(earlier) = self.with_new.lock().await.replace(session) {
                        earlier.close().await;
                    }
                    Ok(())
                }
                Ok(o) => {
                    session.close().await;
                    let said = o.tail(2);
                    Err(StepError::Permanent(format!(
                        "the server let the new key in but didn't run a command with it ({})",
                        if said.is_empty() {
                            o.code
                                .map_or("no exit status".into(), |c| format!("exit status {c}"))
                        } else {
                            said
                        }
                    )))
                }
                Err(e) => {
                    session.close().await;
                    Err(StepError::Transient(format!(
                        "the server stopped answering ({e})"
                    )))
                }
            }
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            let kept = self.with_new.lock().await.take();
            self.remove(
                ctx.old,
                new,
                kept,
                "the old key couldn't be removed on the server",
            )
            .await
        })
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            match self.login(parse(ctx.old)?).await {
                Err(ssh::Error::AuthRejected { .. }) => Ok(()),
                Ok(session) => {
                    session.close().await;
                    Err(StepError::Permanent(
                        "the server still accepts the old key".into(),
                    ))
                }
                Err(e) => Err(classify(&e)),
            }
        })
    }

    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            // Lost before it was saved: nothing of it can be on the server.
            let Some(new) = ctx.new else { return Ok(()) };
            // The server was removed from Clawkeeper (its key taken off it then): nothing to undo.
            if matches!(hosts::get(&self.store, &self.instance).await, Ok(None)) {
                return Ok(());
            }
            if let Some(s) = self.with_new.lock().await.take() {
                s.close().await;
            }
            self.remove(
                new,
                ctx.old,
                None,
                "the new key couldn't be removed on the server",
            )
            .await
        })
    }

    fn settle<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let key = parse(ctx.new_secret()?)?;
            let line = public_line(&key)?;
            hosts::set_app_key(
                &self.store,
                &self.instance,
                &line,
                &keys::fingerprint(key.public_key()),
            )
            .await
            .map_err(|e| StepError::Transient(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_names_the_key_whatever_the_comment() {
        let k = keys::generate_ed25519("clawkeeper-srv").unwrap();
        let line = public_line(&k).unwrap();
        let b = blob(&line).unwrap();
        assert!(b.starts_with("AAAAC3NzaC1lZDI1NTE5"), "{b}");
        assert_eq!(blob(&format!("ssh-ed25519 {b}")).unwrap(), b);
        assert!(blob("nonsense").is_err());
    }

    #[test]
    fn scripts_carry_public_lines_only() {
        let k = keys::generate_ed25519("clawkeeper-srv").unwrap();
        let private = keys::to_openssh(&k).unwrap();
        let line = public_line(&k).unwrap();
        let b = blob(&line).unwrap();
        let other = blob(&public_line(&keys::generate_ed25519("x").unwrap()).unwrap()).unwrap();
        let body: String = private
            .expose()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for s in [append_script(&line, &b), remove_script(&b, &other)] {
            assert!(!s.contains(&body[..40]), "{s}");
            assert!(s.contains(&b), "{s}");
        }
    }

    #[tokio::test]
    async fn ssh_keys_are_named_by_their_public_fingerprint() {
        let k = keys::generate_ed25519("clawkeeper-srv").unwrap();
        let store = Store::open_memory().await.unwrap();
        let vault = crate::vault::Vault::new("clawkeeper-test");
        let r = ServerSshKey::new(store.clone(), "srv", ServerLink::new(store, vault, "srv"));
        let text = keys::to_openssh(&k).unwrap();
        assert_eq!(r.fingerprint(&text), keys::fingerprint(k.public_key()));
        assert!(r.fingerprint(&text).starts_with("SHA256:"));
    }

    /// The scripts themselves, run by `sh` on a temporary HOME.
    #[test]
    fn append_is_idempotent_and_remove_keeps_the_key_in_use() {
        let home = tempfile::tempdir().unwrap();
        let run = |script: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .arg("-s")
                .env("HOME", home.path())
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            child.wait().unwrap().code()
        };
        let ak = home.path().join(".ssh/authorized_keys");
        std::fs::create_dir_all(ak.parent().unwrap()).unwrap();
        // The person's own line, without a final newline.
        std::fs::write(&ak, "ssh-ed25519 AAAAmine me@laptop").unwrap();
        let old = public_line(&keys::generate_ed25519("clawkeeper-s").unwrap()).unwrap();
        let new = public_line(&keys::generate_ed25519("clawkeeper-s").unwrap()).unwrap();
        let (bo, bn) = (blob(&old).unwrap(), blob(&new).unwrap());
        assert_eq!(run(&append_script(&old, &bo)), Some(0));
        assert_eq!(run(&append_script(&new, &bn)), Some(0));
        assert_eq!(run(&append_script(&new, &bn)), Some(0));
        let text = std::fs::read_to_string(&ak).unwrap();
        assert_eq!(
            text,
            format!("ssh-ed25519 AAAAmine me@laptop\n{old}\n{new}\n")
        );
        // Removing the old while the new is there; again is a no-op.
        assert_eq!(run(&remove_script(&bo, &bn)), Some(0));
        assert_eq!(run(&remove_script(&bo, &bn)), Some(0));
        let text = std::fs::read_to_string(&ak).unwrap();
        assert_eq!(text, format!("ssh-ed25519 AAAAmine me@laptop\n{new}\n"));
        // Never the last key of ours: the one to keep must be there.
        assert_eq!(
            run(&remove_script(&bn, &bo)),
            Some(i32::try_from(KEEP_MISSING).unwrap())
        );
        assert!(std::fs::read_to_string(&ak).unwrap().contains(&new));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&ak).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
