//! Support access done right: a one-time SSH key for a helper, valid for a few hours.
//!
//! - The app makes a fresh ed25519 key; its private half is handed to the person once (to
//!   pass to the helper) and never stored.
//! - On the server the key goes into the login user's `authorized_keys` with
//!   `expiry-time="…Z"` (sshd itself refuses it afterwards) and `restrict,pty` (a shell,
//!   but no forwarding, no agent, no X11), tagged `clawkeeper-support-<id>`.
//! - A persistent systemd timer on the server removes the line at the expiry (also after
//!   a reboot); revoking removes the line and the timer at once.
//! - Every grant, revocation and expiry is in the audit log; grants are listed with their
//!   state as seen on the server.

use crate::audit;
use crate::remote::{shell_quote, Remote};
use crate::secret::Secret;
use crate::ssh::{self, keys, Session};
use crate::store::Store;
use crate::time::now_rfc3339;
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The longest support window the app offers.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// A new grant, with the private key to hand over (shown once).
pub struct Issued {
    pub grant: Grant,
    pub private_key: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub id: String,
    pub fingerprint: String,
    pub note: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    /// Whether the key is still in `authorized_keys` on the server (when checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_server: Option<bool>,
}

impl Grant {
    pub fn active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none()
            && OffsetDateTime::parse(&self.expires_at, &Rfc3339).is_ok_and(|t| t > now)
    }
}

fn tag(id: &str) -> String {
    format!("clawkeeper-support-{id}")
}

fn channel_err(s: &Session, e: crate::remote::Error) -> ssh::Error {
    ssh::Error::Session {
        target: s.target().to_string(),
        reason: e.to_string(),
    }
}

/// `sudo -n` unless we log in as root.
fn as_root(session: &Session, cmd: &str) -> String {
    if session.target().user == "root" {
        format!("bash -c {}", shell_quote(cmd))
    } else {
        format!("sudo -n bash -c {}", shell_quote(cmd))
    }
}

/// Issue a support key valid for `window` on the server behind `session` (logged in as the
/// account the helper will use).
pub async fn issue(
    store: &Store,
    session: &Session,
    instance_id: &str,
    window: Duration,
    note: &str,
) -> ssh::Result<Issued> {
    let window = window.min(MAX_WINDOW).max(Duration::from_secs(1));
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let key = keys::generate_ed25519(&tag(&id))?;
    let line = keys::public_line(key.public_key())?;
    let fingerprint = keys::fingerprint(key.public_key());
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let expires = now + window;
    let [y, mo, d, h, mi, se] = utc_parts(expires);
    // sshd's expiry-time (UTC with the Z) and systemd's OnCalendar for the same second.
    let stamp = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{se:02}Z");
    let calendar = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{se:02} UTC");
    let expires_at = expires.format(&Rfc3339).unwrap_or_default();
    let entry = format!("expiry-time=\"{stamp}\",restrict,pty {line}");

    // Journal first: a grant the server may hold is always listed (and revocable).
    sqlx::query(
        "INSERT INTO support_grants (id, instance_id, fingerprint, note, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(instance_id)
    .bind(&fingerprint)
    .bind(note)
    .bind(now_rfc3339())
    .bind(&expires_at)
    .execute(store.pool())
    .await
    .map_err(crate::store::Error::from)?;

    let home_ak = r#""$HOME/.ssh/authorized_keys""#;
    let add = format!(
        "set -eu; umask 077; mkdir -p \"$HOME/.ssh\"; printf '%s\\n' {entry} >> {home_ak}; grep -qF -- {tag} {home_ak}",
        entry = shell_quote(&entry),
        tag = shell_quote(&tag(&id)),
    );
    let out = session
        .run(&add, None)
        .await
        .map_err(|e| channel_err(session, e))?;
    if !out.success() {
        return Err(ssh::Error::Session {
            target: session.target().to_string(),
            reason: format!("couldn't add the support key: {}", out.tail(3)),
        });
    }
    // The timer that removes it at the expiry, even after a reboot.
    let home = session
        .run("printf %s \"$HOME\"", None)
        .await
        .map_err(|e| channel_err(session, e))?
        .stdout_lossy();
    let unit = format!("clawkeeper-support-{id}");
    let ak = format!("{home}/.ssh/authorized_keys");
    let units = format!(
        "set -eu
install -d -m 0755 /usr/local/sbin
cat > /usr/local/sbin/clawkeeper-support-expire <<'SCRIPT'
{EXPIRE_SCRIPT}SCRIPT
chmod 0755 /usr/local/sbin/clawkeeper-support-expire
cat > /etc/systemd/system/{unit}.service <<'UNIT'
[Unit]
Description=Remove Clawkeeper support key {id}
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/clawkeeper-support-expire {id} {ak}
UNIT
cat > /etc/systemd/system/{unit}.timer <<'UNIT'
[Unit]
Description=Expiry of Clawkeeper support key {id}
[Timer]
OnCalendar={calendar}
AccuracySec=1s
Persistent=true
[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now {unit}.timer",
    );
    let out = session
        .run(&as_root(session, &units), None)
        .await
        .map_err(|e| channel_err(session, e))?;
    if !out.success() {
        // sshd still enforces expiry-time; say so, but don't leave a key without a timer
        // silently: take it back out.
        let _ = session.run(&removal_command(&home, &id), None).await;
        let _ = ak;
        return Err(ssh::Error::Session {
            target: session.target().to_string(),
            reason: format!("couldn't set up the expiry timer: {}", out.tail(3)),
        });
    }
    let _ = audit::append(
        store,
        Some(instance_id),
        "support.issued",
        &format!(
            "Support key {fingerprint} issued until {expires_at}{}",
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        ),
    )
    .await;
    Ok(Issued {
        grant: Grant {
            id,
            fingerprint,
            note: note.to_owned(),
            created_at: now_rfc3339(),
            expires_at,
            revoked_at: None,
            on_server: Some(true),
        },
        private_key: keys::to_openssh(&key)?,
    })
}

fn utc_parts(t: OffsetDateTime) -> [u32; 6] {
    let t = t.to_offset(time::UtcOffset::UTC);
    [
        u32::try_from(t.year()).unwrap_or(0),
        u32::from(u8::from(t.month())),
        u32::from(t.day()),
        u32::from(t.hour()),
        u32::from(t.minute()),
        u32::from(t.second()),
    ]
}

/// Installed on the server: `clawkeeper-support-expire <id> <authorized_keys>` removes the
/// grant's line (the timer's job at the expiry).
const EXPIRE_SCRIPT: &str = r#"#!/bin/sh
# Installed by Clawkeeper: remove a support key's line from an authorized_keys file.
set -eu
id=$1 f=$2
case $id in *[!0-9a-f]*|'') echo "bad id" >&2; exit 2;; esac
[ -f "$f" ] || exit 0
t=$(mktemp "$f.XXXXXX")
grep -vF -- "clawkeeper-support-$id" "$f" > "$t" || true
chmod 600 "$t"
chown --reference="$f" "$t"
mv "$t" "$f"
logger -t clawkeeper "support key $id expired and was removed"
"#;

/// Shell that deletes the grant's line from `<home>/.ssh/authorized_keys` atomically.
fn removal_command(home: &str, id: &str) -> String {
    let ak = format!("{home}/.ssh/authorized_keys");
    format!(
        "f={f}; [ -f \"$f\" ] || exit 0; t=$(mktemp \"$f.XXXXXX\"); grep -vF -- {tag} \"$f\" > \"$t\" || true; chmod 600 \"$t\"; chown --reference=\"$f\" \"$t\"; mv \"$t\" \"$f\"",
        f = shell_quote(&ak),
        tag = shell_quote(&tag(id)),
    )
}

/// Revoke a grant now: the key leaves `authorized_keys`, the timer goes.
pub async fn revoke(
    store: &Store,
    session: &Session,
    instance_id: &str,
    id: &str,
) -> ssh::Result<()> {
    let home = session
        .run("printf %s \"$HOME\"", None)
        .await
        .map_err(|e| channel_err(session, e))?
        .stdout_lossy();
    let unit = format!("clawkeeper-support-{id}");
    let cmd = format!(
        "set -eu; {remove}; systemctl disable --now {unit}.timer 2>/dev/null || true; rm -f /etc/systemd/system/{unit}.timer /etc/systemd/system/{unit}.service; systemctl daemon-reload",
        remove = removal_command(&home, id),
    );
    let out = session
        .run(&as_root(session, &cmd), None)
        .await
        .map_err(|e| channel_err(session, e))?;
    if !out.success() {
        return Err(ssh::Error::Session {
            target: session.target().to_string(),
            reason: format!("couldn't remove the support key: {}", out.tail(3)),
        });
    }
    sqlx::query("UPDATE support_grants SET revoked_at = ? WHERE id = ? AND instance_id = ? AND revoked_at IS NULL")
        .bind(now_rfc3339())
        .bind(id)
        .bind(instance_id)
        .execute(store.pool())
        .await
        .map_err(crate::store::Error::from)?;
    let _ = audit::append(
        store,
        Some(instance_id),
        "support.revoked",
        &format!("Support key {id} revoked"),
    )
    .await;
    Ok(())
}

/// The grants of `instance_id`, newest first; with a session, each is checked on the server.
pub async fn list(
    store: &Store,
    session: Option<&Session>,
    instance_id: &str,
) -> ssh::Result<Vec<Grant>> {
    let rows = sqlx::query(
        "SELECT id, fingerprint, note, created_at, expires_at, revoked_at FROM support_grants WHERE instance_id = ? ORDER BY created_at DESC",
    )
    .bind(instance_id)
    .fetch_all(store.pool())
    .await
    .map_err(crate::store::Error::from)?;
    let on_server = match session {
        Some(s) => Some(
            s.run(
                "cat \"$HOME/.ssh/authorized_keys\" 2>/dev/null || true",
                None,
            )
            .await
            .map_err(|e| channel_err(s, e))?
            .stdout_lossy(),
        ),
        None => None,
    };
    Ok(rows
        .iter()
        .map(|r| {
            let id: String = r.get("id");
            Grant {
                on_server: on_server.as_ref().map(|ak| ak.contains(&tag(&id))),
                id,
                fingerprint: r.get("fingerprint"),
                note: r.get("note"),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
                revoked_at: r.get("revoked_at"),
            }
        })
        .collect())
}
