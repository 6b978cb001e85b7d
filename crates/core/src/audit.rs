//! The audit log: every action Clawkeeper takes on an instance, appended to SQLite with a
//! hash chain (each row's hash covers the previous row's hash), so a removed or edited row
//! is detected by [`verify`]. Rows never contain secrets — fingerprints at most.

use crate::store::{Error, Result, Store};
use crate::time::now_rfc3339;
use sha2::{Digest, Sha256};
use sqlx::Row;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub instance_id: Option<String>,
    pub action: String,
    pub detail: String,
    pub hash: String,
}

fn chain_hash(
    prev: &str,
    seq: i64,
    at: &str,
    instance: Option<&str>,
    action: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev,
        &seq.to_string(),
        at,
        instance.unwrap_or(""),
        action,
        detail,
    ] {
        // Length-prefix each field so that no two different rows hash alike.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Append one row. Safe against concurrent writers (other processes included): a lost race
/// on the sequence number is retried on the new tip.
pub async fn append(
    store: &Store,
    instance_id: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<AuditEntry> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tip = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(store.pool())
            .await?;
        let (prev_seq, prev_hash) = match tip {
            Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
            None => (0, GENESIS.to_owned()),
        };
        let seq = prev_seq + 1;
        let at = now_rfc3339();
        let hash = chain_hash(&prev_hash, seq, &at, instance_id, action, detail);
        let res = sqlx::query(
            "INSERT INTO audit (seq, at, instance_id, action, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(seq)
        .bind(&at)
        .bind(instance_id)
        .bind(action)
        .bind(detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(store.pool())
        .await;
        match res {
            Ok(_) => {
                return Ok(AuditEntry {
                    seq,
                    at,
                    instance_id: instance_id.map(str::to_owned),
                    action: action.to_owned(),
                    detail: detail.to_owned(),
                    hash,
                })
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt < 10 => continue,
            Err(e) => return Err(Error::Sql(e)),
        }
    }
}

/// The newest `limit` rows, newest first.
pub async fn recent(store: &Store, limit: i64) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT seq, at, instance_id, action, detail, hash FROM audit ORDER BY seq DESC LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditEntry {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                instance_id: r.try_get("instance_id")?,
                action: r.try_get("action")?,
                detail: r.try_get("detail")?,
                hash: r.try_get("hash")?,
            })
        })
        .collect()
}

/// Walk the whole chain; returns the number of rows, or the first broken sequence number.
pub async fn verify(store: &Store) -> Result<i64> {
    let rows = sqlx::query(
        "SELECT seq, at, instance_id, action, detail, prev_hash, hash FROM audit ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await?;
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    for r in rows {
        let seq: i64 = r.try_get("seq")?;
        let instance: Option<String> = r.try_get("instance_id")?;
        let at: String = r.try_get("at")?;
        let action: String = r.try_get("action")?;
        let detail: String = r.try_get("detail")?;
        let prev_hash: String = r.try_get("prev_hash")?;
        let hash: String = r.try_get("hash")?;
        let recomputed = chain_hash(&prev, seq, &at, instance.as_deref(), &action, &detail);
        if seq != expected_seq || prev_hash != prev || hash != recomputed {
            return Err(Error::AuditTampered(seq));
        }
        prev = hash;
        expected_seq += 1;
    }
    Ok(expected_seq - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_verifies_and_detects_tampering() -> Result<()> {
        let store = Store::open_memory().await?;
        for i in 0..5 {
            append(&store, Some("local"), "start", &format!("attempt {i}")).await?;
        }
        assert_eq!(verify(&store).await?, 5);
        assert_eq!(recent(&store, 2).await?.len(), 2);

        // Updates and deletes are refused by the database itself.
        assert!(sqlx::query("UPDATE audit SET detail = 'x' WHERE seq = 2")
            .execute(store.pool())
            .await
            .is_err());
        assert!(sqlx::query("DELETE FROM audit WHERE seq = 2")
            .execute(store.pool())
            .await
            .is_err());

        // Someone drops the triggers and edits a row: verify finds it.
        sqlx::query("DROP TRIGGER audit_no_update")
            .execute(store.pool())
            .await?;
        sqlx::query("UPDATE audit SET detail = 'forged' WHERE seq = 3")
            .execute(store.pool())
            .await?;
        assert!(matches!(verify(&store).await, Err(Error::AuditTampered(3))));
        Ok(())
    }
}
