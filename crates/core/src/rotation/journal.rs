//! The rotation journal: one row per rotation (table `rotations`, migration 0007), written
//! after every step, so a rotation interrupted at any point — the app killed, the machine
//! off, the host gone — is found and finished at the next start. No secret is ever written
//! here: fingerprints and the rotators' non-secret notes only.

use super::{KeyId, Step};
use crate::store::{Error, Result, Store};
use crate::time::now_rfc3339;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// Which way a rotation is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Forward,
    /// Undoing: the old secret back in place, the new one discarded.
    Rollback,
}

/// How a rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new secret is in use and in the keychain; the old one is refused.
    Done,
    /// Nothing changed: the old secret is in use and in the keychain.
    RolledBack,
}

/// One rotation as the journal has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    pub id: i64,
    pub batch: Option<String>,
    pub instance_id: String,
    pub key: KeyId,
    /// The next step to run (the last one run, once finished).
    pub step: Step,
    pub direction: Direction,
    pub outcome: Option<Outcome>,
    pub old_fingerprint: Option<String>,
    pub new_fingerprint: Option<String>,
    #[serde(skip)]
    pub detail: Value,
    pub error: Option<String>,
    pub attempts: i64,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

fn bad(what: String) -> Error {
    Error::BadValue(what)
}

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Rotation> {
    let key: String = r.try_get("secret")?;
    let step: String = r.try_get("step")?;
    let direction: String = r.try_get("direction")?;
    let outcome: Option<String> = r.try_get("outcome")?;
    let detail: String = r.try_get("detail")?;
    Ok(Rotation {
        id: r.try_get("id")?,
        batch: r.try_get("batch")?,
        instance_id: r.try_get("instance_id")?,
        key: KeyId::parse(&key).ok_or_else(|| bad(format!("rotation of {key:?}")))?,
        step: Step::parse(&step).ok_or_else(|| bad(format!("rotation step {step:?}")))?,
        direction: match direction.as_str() {
            "forward" => Direction::Forward,
            "rollback" => Direction::Rollback,
            other => return Err(bad(format!("rotation direction {other:?}"))),
        },
        outcome: match outcome.as_deref() {
            None => None,
            Some("done") => Some(Outcome::Done),
            Some("rolled_back") => Some(Outcome::RolledBack),
            Some(other) => return Err(bad(format!("rotation outcome {other:?}"))),
        },
        old_fingerprint: r.try_get("old_fingerprint")?,
        new_fingerprint: r.try_get("new_fingerprint")?,
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        error: r.try_get("error")?,
        attempts: r.try_get("attempts")?,
        started_at: r.try_get("started_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

const COLUMNS: &str = "id, batch, instance_id, secret, step, direction, outcome, old_fingerprint, \
     new_fingerprint, detail, error, attempts, started_at, updated_at, finished_at";

/// Begin a rotation of `key` on `instance`, or the one already running (the same rotation,
/// resumed: a second click while it runs doesn't start another).
pub async fn begin(
    store: &Store,
    instance: &str,
    key: KeyId,
    batch: Option<&str>,
    old_fingerprint: Option<&str>,
) -> Result<Rotation> {
    if let Some(running) = running_of(store, instance, key).await? {
        return Ok(running);
    }
    let now = now_rfc3339();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO rotations (batch, instance_id, secret, step, old_fingerprint, started_at, updated_at)
         VALUES (?1, ?2, ?3, 'mint', ?4, ?5, ?5) RETURNING id",
    )
    .bind(batch)
    .bind(instance)
    .bind(key.as_str())
    .bind(old_fingerprint)
    .bind(&now)
    .fetch_one(store.pool())
    .await?;
    get(store, id).await
}

pub async fn get(store: &Store, id: i64) -> Result<Rotation> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rotations WHERE id = ?1"))
        .bind(id)
        .fetch_one(store.pool())
        .await?;
    from_row(&row)
}

/// The unfinished rotation of `key` on `instance`, if any.
pub async fn running_of(store: &Store, instance: &str, key: KeyId) -> Result<Option<Rotation>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rotations WHERE instance_id = ?1 AND secret = ?2 AND outcome IS NULL"
    ))
    .bind(instance)
    .bind(key.as_str())
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every unfinished rotation, oldest first.
pub async fn unfinished(store: &Store) -> Result<Vec<Rotation>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rotations WHERE outcome IS NULL ORDER BY id"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The last rotations, newest first.
pub async fn recent(store: &Store, limit: i64) -> Result<Vec<Rotation>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rotations ORDER BY id DESC LIMIT ?1"
    ))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The rotations of one "Rotate all" run.
pub async fn of_batch(store: &Store, batch: &str) -> Result<Vec<Rotation>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rotations WHERE batch = ?1 ORDER BY id"
    ))
    .bind(batch)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// A step done: the next one is `next`; the rotator's notes and the new secret's
/// fingerprint as they are now.
pub async fn advance(
    store: &Store,
    id: i64,
    next: Step,
    detail: &Value,
    new_fingerprint: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE rotations SET step = ?2, detail = ?3, new_fingerprint = COALESCE(?4, new_fingerprint),
             attempts = 0, error = NULL, updated_at = ?5 WHERE id = ?1 AND outcome IS NULL",
    )
    .bind(id)
    .bind(next.as_str())
    .bind(detail.to_string())
    .bind(new_fingerprint)
    .bind(now_rfc3339())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A step failed (it stays the next step); returns the failed attempts so far.
pub async fn failed_attempt(store: &Store, id: i64, error: &str, detail: &Value) -> Result<i64> {
    let attempts: i64 = sqlx::query_scalar(
        "UPDATE rotations SET attempts = attempts + 1, error = ?2, detail = ?3, updated_at = ?4
         WHERE id = ?1 RETURNING attempts",
    )
    .bind(id)
    .bind(error)
    .bind(detail.to_string())
    .bind(now_rfc3339())
    .fetch_one(store.pool())
    .await?;
    Ok(attempts)
}

/// Turn back: from now on the rotation undoes itself.
pub async fn roll_back(store: &Store, id: i64, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE rotations SET direction = 'rollback', attempts = 0, error = ?2, updated_at = ?3
         WHERE id = ?1 AND outcome IS NULL",
    )
    .bind(id)
    .bind(error)
    .bind(now_rfc3339())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The rotation ended. `error` is kept for a roll-back (why it didn't happen).
pub async fn finish(store: &Store, id: i64, outcome: Outcome, error: Option<&str>) -> Result<()> {
    let now = now_rfc3339();
    sqlx::query(
        "UPDATE rotations SET outcome = ?2, error = ?3, finished_at = ?4, updated_at = ?4
         WHERE id = ?1 AND outcome IS NULL",
    )
    .bind(id)
    .bind(match outcome {
        Outcome::Done => "done",
        Outcome::RolledBack => "rolled_back",
    })
    .bind(error)
    .bind(&now)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// When a secret was last set, and rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Age {
    pub instance_id: String,
    pub key: KeyId,
    pub set_at: String,
    pub rotated_at: Option<String>,
    pub fingerprint: Option<String>,
}

/// Note that a secret was set: first saved (`rotated = false`) or replaced by a rotation.
pub async fn note_set(
    store: &Store,
    instance: &str,
    key: KeyId,
    fingerprint: Option<&str>,
    rotated: bool,
) -> Result<()> {
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO secret_ages (instance_id, secret, set_at, rotated_at, fingerprint) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(instance_id, secret) DO UPDATE SET set_at = ?3,
             rotated_at = COALESCE(?4, rotated_at), fingerprint = ?5",
    )
    .bind(instance)
    .bind(key.as_str())
    .bind(&now)
    .bind(rotated.then_some(&now))
    .bind(fingerprint)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Note a secret that exists (first seen now, unless already noted).
pub async fn note_known(
    store: &Store,
    instance: &str,
    key: KeyId,
    fingerprint: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO secret_ages (instance_id, secret, set_at, fingerprint) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(instance_id, secret) DO NOTHING",
    )
    .bind(instance)
    .bind(key.as_str())
    .bind(now_rfc3339())
    .bind(fingerprint)
    .execute(store.pool())
    .await?;
    Ok(())
}

pub async fn ages(store: &Store) -> Result<Vec<Age>> {
    let rows = sqlx::query(
        "SELECT instance_id, secret, set_at, rotated_at, fingerprint FROM secret_ages ORDER BY instance_id, secret",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key: String = r.try_get("secret")?;
        let Some(key) = KeyId::parse(&key) else {
            continue;
        };
        out.push(Age {
            instance_id: r.try_get("instance_id")?,
            key,
            set_at: r.try_get("set_at")?,
            rotated_at: r.try_get("rotated_at")?,
            fingerprint: r.try_get("fingerprint")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn one_running_rotation_per_secret_and_its_steps_persist() {
        let store = Store::open_memory().await.unwrap();
        let r = begin(
            &store,
            "local",
            KeyId::GatewayToken,
            None,
            Some("sha256:aa"),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.step, r.direction, r.outcome),
            (Step::Mint, Direction::Forward, None)
        );
        let again = begin(&store, "local", KeyId::GatewayToken, None, None)
            .await
            .unwrap();
        assert_eq!(again.id, r.id, "a second click resumes the same rotation");
        let other = begin(&store, "local", KeyId::ProviderKey, Some("b1"), None)
            .await
            .unwrap();
        assert_ne!(other.id, r.id);

        advance(
            &store,
            r.id,
            Step::Install,
            &json!({"k": 1}),
            Some("sha256:bb"),
        )
        .await
        .unwrap();
        assert_eq!(
            failed_attempt(&store, r.id, "host down", &json!({"k": 2}))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            failed_attempt(&store, r.id, "host down", &json!({"k": 2}))
                .await
                .unwrap(),
            2
        );
        let r2 = get(&store, r.id).await.unwrap();
        assert_eq!(r2.step, Step::Install);
        assert_eq!(r2.detail, json!({"k": 2}));
        assert_eq!(r2.new_fingerprint.as_deref(), Some("sha256:bb"));
        assert_eq!(r2.error.as_deref(), Some("host down"));
        assert_eq!(unfinished(&store).await.unwrap().len(), 2);

        roll_back(&store, r.id, "the new key didn't work")
            .await
            .unwrap();
        finish(
            &store,
            r.id,
            Outcome::RolledBack,
            Some("the new key didn't work"),
        )
        .await
        .unwrap();
        let r3 = get(&store, r.id).await.unwrap();
        assert_eq!(r3.outcome, Some(Outcome::RolledBack));
        assert_eq!(r3.direction, Direction::Rollback);
        assert!(r3.finished_at.is_some());
        // Finished: a new rotation of the same secret may begin.
        let next = begin(&store, "local", KeyId::GatewayToken, None, None)
            .await
            .unwrap();
        assert_ne!(next.id, r.id);
        assert_eq!(of_batch(&store, "b1").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn ages_keep_the_first_set_and_the_last_rotation() {
        let store = Store::open_memory().await.unwrap();
        note_set(
            &store,
            "local",
            KeyId::GatewayToken,
            Some("sha256:aa"),
            false,
        )
        .await
        .unwrap();
        let a = ages(&store).await.unwrap();
        assert_eq!(a.len(), 1);
        assert!(a[0].rotated_at.is_none());
        note_set(
            &store,
            "local",
            KeyId::GatewayToken,
            Some("sha256:bb"),
            true,
        )
        .await
        .unwrap();
        let a = ages(&store).await.unwrap();
        assert!(a[0].rotated_at.is_some());
        assert_eq!(a[0].fingerprint.as_deref(), Some("sha256:bb"));
    }
}
