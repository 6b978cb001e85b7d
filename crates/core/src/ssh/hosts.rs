//! The pinned server record per instance (table `ssh_hosts`).

use super::{session::HostKey, Result, Target};
use crate::store::Store;
use crate::time::now_rfc3339;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    pub instance_id: String,
    pub target: Target,
    pub host_key: HostKey,
    pub pinned_at: String,
    /// The app's own public key line, once it is installed on the server.
    pub app_key_public: Option<String>,
    pub app_key_fingerprint: Option<String>,
}

/// Pin `host_key` for `instance_id` (replacing any earlier pin: only call this after the
/// person confirmed the fingerprint).
pub async fn pin(
    store: &Store,
    instance_id: &str,
    target: &Target,
    host_key: &HostKey,
) -> Result<()> {
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO ssh_hosts (instance_id, address, port, user, host_key, host_fingerprint, pinned_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(instance_id) DO UPDATE SET address = excluded.address, port = excluded.port,
           user = excluded.user, host_key = excluded.host_key, host_fingerprint = excluded.host_fingerprint,
           pinned_at = excluded.pinned_at, updated_at = excluded.updated_at",
    )
    .bind(instance_id)
    .bind(&target.host)
    .bind(i64::from(target.port))
    .bind(&target.user)
    .bind(host_key.to_openssh()?)
    .bind(&host_key.fingerprint)
    .bind(&now)
    .bind(&now)
    .execute(store.pool())
    .await
    .map_err(crate::store::Error::from)?;
    Ok(())
}

pub async fn set_app_key(
    store: &Store,
    instance_id: &str,
    public_line: &str,
    fingerprint: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE ssh_hosts SET app_key_public = ?, app_key_fingerprint = ?, updated_at = ? WHERE instance_id = ?",
    )
    .bind(public_line)
    .bind(fingerprint)
    .bind(now_rfc3339())
    .bind(instance_id)
    .execute(store.pool())
    .await
    .map_err(crate::store::Error::from)?;
    Ok(())
}

/// Change the login user (e.g. after the app's key was installed for another user).
pub async fn set_user(store: &Store, instance_id: &str, user: &str) -> Result<()> {
    sqlx::query("UPDATE ssh_hosts SET user = ?, updated_at = ? WHERE instance_id = ?")
        .bind(user)
        .bind(now_rfc3339())
        .bind(instance_id)
        .execute(store.pool())
        .await
        .map_err(crate::store::Error::from)?;
    Ok(())
}

pub async fn get(store: &Store, instance_id: &str) -> Result<Option<HostRecord>> {
    let row = sqlx::query(
        "SELECT address, port, user, host_key, pinned_at, app_key_public, app_key_fingerprint
         FROM ssh_hosts WHERE instance_id = ?",
    )
    .bind(instance_id)
    .fetch_optional(store.pool())
    .await
    .map_err(crate::store::Error::from)?;
    let Some(row) = row else { return Ok(None) };
    let port: i64 = row.get("port");
    let port = u16::try_from(port)
        .map_err(|_| crate::store::Error::BadValue(format!("ssh port {port}")))?;
    Ok(Some(HostRecord {
        instance_id: instance_id.to_owned(),
        target: Target::new(
            row.get::<String, _>("address"),
            port,
            row.get::<String, _>("user"),
        ),
        host_key: HostKey::from_openssh(&row.get::<String, _>("host_key"))?,
        pinned_at: row.get("pinned_at"),
        app_key_public: row.get("app_key_public"),
        app_key_fingerprint: row.get("app_key_fingerprint"),
    }))
}

pub async fn forget(store: &Store, instance_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM ssh_hosts WHERE instance_id = ?")
        .bind(instance_id)
        .execute(store.pool())
        .await
        .map_err(crate::store::Error::from)?;
    Ok(())
}
