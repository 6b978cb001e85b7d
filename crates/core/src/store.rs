//! The store: Clawkeeper's own state in SQLite (WAL), with migrations. Instances, the
//! model provider's settings (the key itself stays in the keychain), jobs and their steps,
//! settings, and the hash-chained audit log (see [`crate::audit`]).

use crate::problem::UserFacing;
use crate::time::now_rfc3339;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Clawkeeper couldn't open its settings database at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("Clawkeeper's settings database could not be updated: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("Clawkeeper's settings database could not be upgraded: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("The disk is full, so Clawkeeper couldn't save its settings.")]
    DiskFull,
    #[error("The audit log has been altered at entry {0}.")]
    AuditTampered(i64),
    #[error("Unknown value in the database: {0}")]
    BadValue(String),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Open { .. } => "store_open",
            Error::Sql(_) | Error::Migrate(_) | Error::BadValue(_) => "store_error",
            Error::DiskFull => "disk_full",
            Error::AuditTampered(_) => "audit_tampered",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::DiskFull => "Free some disk space, then try again. Nothing was lost.",
            Error::AuditTampered(_) => "Something outside Clawkeeper changed its activity log. Export it and keep the copy.",
            _ => "Try again. If it keeps happening, restart Clawkeeper.",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn classify(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        // SQLITE_FULL = 13
        if db.code().as_deref() == Some("13") {
            return Error::DiskFull;
        }
    }
    Error::Sql(e)
}

/// What [`Store::open`] did when it found a damaged database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Where the damaged file was moved (kept, never deleted).
    pub moved_to: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: String,
    pub name: String,
    pub target: String,
    pub port: u16,
    pub desired_state: DesiredState,
    pub openclaw_version: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openrouter,
    OpenaiCompatible,
}

impl ProviderKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Openrouter => "openrouter",
            ProviderKind::OpenaiCompatible => "openai_compatible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openrouter" => Some(ProviderKind::Openrouter),
            "openai_compatible" => Some(ProviderKind::OpenaiCompatible),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub instance_id: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
    pub key_ref: String,
    pub key_fingerprint: String,
    pub key_saved_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub step: Option<String>,
    pub done: i64,
    pub total: i64,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub updated_at: String,
}

impl Store {
    /// Open (creating if needed) the database at `path` and run migrations. A file that is
    /// not a readable SQLite database is moved aside (kept for the person) and a fresh one
    /// is created: the caller must tell the person (see [`Recovered`]).
    pub async fn open(path: &Path) -> Result<(Self, Option<Recovered>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::Open {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
        match Self::open_checked(path).await {
            Ok(store) => Ok((store, None)),
            Err(e) if is_corruption(&e) => {
                let moved_to = path.with_extension(format!("damaged-{}", std::process::id()));
                std::fs::rename(path, &moved_to).map_err(|err| Error::Open {
                    path: path.to_owned(),
                    reason: format!("damaged and could not be moved aside: {err}"),
                })?;
                for ext in ["db-wal", "db-shm"] {
                    let _ = std::fs::remove_file(path.with_extension(ext));
                }
                tracing::warn!(
                    ?moved_to,
                    "database was damaged; moved aside and started fresh"
                );
                let store = Self::open_checked(path).await?;
                Ok((store, Some(Recovered { moved_to })))
            }
            Err(e) => Err(e),
        }
    }

    async fn open_checked(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| Error::Open {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&pool)
            .await?;
        if check != "ok" {
            pool.close().await;
            return Err(Error::Open {
                path: path.to_owned(),
                reason: format!("integrity check failed: {check}"),
            });
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        restrict_permissions(path);
        Ok(Self { pool })
    }

    /// An in-memory database (unit tests).
    pub async fn open_memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(Error::Sql)?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- instances ----

    pub async fn upsert_instance(&self, i: &InstanceRecord) -> Result<()> {
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO instances (id, name, target, port, desired_state, openclaw_version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT(id) DO UPDATE SET name = ?2, target = ?3, port = ?4, openclaw_version = ?6, updated_at = ?7",
        )
        .bind(&i.id)
        .bind(&i.name)
        .bind(&i.target)
        .bind(i64::from(i.port))
        .bind(i.desired_state.as_str())
        .bind(&i.openclaw_version)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(instance_record).transpose()
    }

    /// The servers (SSH and cloud instances), oldest first.
    pub async fn servers(&self) -> Result<Vec<InstanceRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE target IN ('ssh', 'cloud') ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(instance_record).collect()
    }

    pub async fn set_desired_state(&self, id: &str, state: DesiredState) -> Result<()> {
        sqlx::query("UPDATE instances SET desired_state = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id)
            .bind(state.as_str())
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    // ---- provider ----

    pub async fn save_provider(&self, p: &ProviderRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO providers (instance_id, kind, base_url, model, key_ref, key_fingerprint, key_saved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(instance_id) DO UPDATE SET kind = ?2, base_url = ?3, model = ?4, key_ref = ?5,
                 key_fingerprint = ?6, key_saved_at = ?7",
        )
        .bind(&p.instance_id)
        .bind(p.kind.as_str())
        .bind(&p.base_url)
        .bind(&p.model)
        .bind(&p.key_ref)
        .bind(&p.key_fingerprint)
        .bind(&p.key_saved_at)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn provider(&self, instance_id: &str) -> Result<Option<ProviderRecord>> {
        let row = sqlx::query(
            "SELECT instance_id, kind, base_url, model, key_ref, key_fingerprint, key_saved_at
             FROM providers WHERE instance_id = ?1",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(ProviderRecord {
                instance_id: r.try_get("instance_id")?,
                kind: ProviderKind::parse(&kind).ok_or(Error::BadValue(kind))?,
                base_url: r.try_get("base_url")?,
                model: r.try_get("model")?,
                key_ref: r.try_get("key_ref")?,
                key_fingerprint: r.try_get("key_fingerprint")?,
                key_saved_at: r.try_get("key_saved_at")?,
            })
        })
        .transpose()
    }

    // ---- settings ----

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Remove a setting (absent is fine).
    pub async fn delete_setting(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE key = ?1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    // ---- jobs ----

    pub async fn create_job(
        &self,
        kind: &str,
        instance_id: Option<&str>,
        total: i64,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO jobs (id, kind, instance_id, state, done, total, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'running', 0, ?4, ?5, ?5)",
        )
        .bind(&id)
        .bind(kind)
        .bind(instance_id)
        .bind(total)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(id)
    }

    /// Record that a job entered step `seq` (`name`), with progress `done`/`total`.
    pub async fn job_step(
        &self,
        job_id: &str,
        seq: i64,
        name: &str,
        done: i64,
        total: i64,
    ) -> Result<()> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE job_steps SET state = 'done' WHERE job_id = ?1 AND state = 'running'")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO job_steps (job_id, seq, name, state, at) VALUES (?1, ?2, ?3, 'running', ?4)
             ON CONFLICT(job_id, seq) DO UPDATE SET state = 'running', at = ?4",
        )
        .bind(job_id)
        .bind(seq)
        .bind(name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET step = ?2, done = ?3, total = ?4, updated_at = ?5 WHERE id = ?1",
        )
        .bind(job_id)
        .bind(name)
        .bind(done)
        .bind(total)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(classify)?;
        Ok(())
    }

    /// Finish a job: `state` is succeeded, failed or cancelled.
    pub async fn finish_job(
        &self,
        job_id: &str,
        state: &str,
        error: Option<(&str, &str)>,
    ) -> Result<()> {
        let step_state = if state == "succeeded" {
            "done"
        } else {
            "failed"
        };
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE job_steps SET state = ?2 WHERE job_id = ?1 AND state = 'running'")
            .bind(job_id)
            .bind(step_state)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE jobs SET state = ?2, error_code = ?3, error = ?4, updated_at = ?5 WHERE id = ?1")
            .bind(job_id)
            .bind(state)
            .bind(error.map(|e| e.0))
            .bind(error.map(|e| e.1))
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(classify)?;
        Ok(())
    }

    /// Jobs left `running` by a process that died: marked failed so they can be retried.
    pub async fn fail_abandoned_jobs(&self) -> Result<u64> {
        let res = sqlx::query(
            "UPDATE jobs SET state = 'failed', error_code = 'interrupted',
                 error = 'Clawkeeper was closed before this finished.', updated_at = ?1
             WHERE state = 'running'",
        )
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(res.rows_affected())
    }

    /// Every job of `kind`, oldest first (the job history).
    pub async fn jobs(&self, kind: &str) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(
            "SELECT id, kind, state, step, done, total, error_code, error, updated_at FROM jobs
             WHERE kind = ?1 ORDER BY created_at, rowid",
        )
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The newest job of `kind` for one instance.
    pub async fn latest_job_for(&self, kind: &str, instance_id: &str) -> Result<Option<JobRecord>> {
        self.newest_job(kind, Some(instance_id)).await
    }

    pub async fn latest_job(&self, kind: &str) -> Result<Option<JobRecord>> {
        self.newest_job(kind, None).await
    }

    /// The newest job of `kind`, of one instance or of any.
    async fn newest_job(&self, kind: &str, instance_id: Option<&str>) -> Result<Option<JobRecord>> {
        let row = sqlx::query(
            "SELECT id, kind, state, step, done, total, error_code, error, updated_at FROM jobs
             WHERE kind = ?1 AND (?2 IS NULL OR instance_id = ?2)
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
        )
        .bind(kind)
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }
}

fn job_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        step: r.try_get("step")?,
        done: r.try_get("done")?,
        total: r.try_get("total")?,
        error_code: r.try_get("error_code")?,
        error: r.try_get("error")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn is_corruption(e: &Error) -> bool {
    match e {
        Error::Sql(sqlx::Error::Database(db)) => {
            // SQLITE_CORRUPT = 11, SQLITE_NOTADB = 26
            matches!(db.code().as_deref(), Some("11") | Some("26"))
        }
        Error::Open { reason, .. } => reason.starts_with("integrity check failed"),
        Error::Migrate(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))) => {
            matches!(db.code().as_deref(), Some("11") | Some("26"))
        }
        _ => false,
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [
        path.to_owned(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

const INSTANCE_COLUMNS: &str =
    "id, name, target, port, desired_state, openclaw_version, created_at";

fn instance_record(r: &sqlx::sqlite::SqliteRow) -> Result<InstanceRecord> {
    let desired: String = r.try_get("desired_state")?;
    let port: i64 = r.try_get("port")?;
    Ok(InstanceRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        target: r.try_get("target")?,
        port: u16::try_from(port).map_err(|_| Error::BadValue(format!("port {port}")))?,
        desired_state: if desired == "running" {
            DesiredState::Running
        } else {
            DesiredState::Stopped
        },
        openclaw_version: r.try_get("openclaw_version")?,
        created_at: r.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> InstanceRecord {
        InstanceRecord {
            id: "local".into(),
            name: "This computer".into(),
            target: "local".into(),
            port: 18789,
            desired_state: DesiredState::Stopped,
            openclaw_version: "2026.9.6".into(),
            created_at: String::new(),
        }
    }

    #[tokio::test]
    async fn instances_and_desired_state() -> Result<()> {
        let store = Store::open_memory().await?;
        store.upsert_instance(&instance()).await?;
        store
            .set_desired_state("local", DesiredState::Running)
            .await?;
        let got = store
            .instance("local")
            .await?
            .ok_or(Error::BadValue("missing".into()))?;
        assert_eq!(got.desired_state, DesiredState::Running);
        assert_eq!(got.port, 18789);
        // Upsert keeps the desired state.
        store.upsert_instance(&instance()).await?;
        let got = store
            .instance("local")
            .await?
            .ok_or(Error::BadValue("missing".into()))?;
        assert_eq!(got.desired_state, DesiredState::Running);
        Ok(())
    }

    #[tokio::test]
    async fn jobs_record_steps_and_abandonment() -> Result<()> {
        let store = Store::open_memory().await?;
        let id = store.create_job("install", Some("local"), 3).await?;
        store.job_step(&id, 1, "Downloading", 1, 3).await?;
        let job = store
            .latest_job("install")
            .await?
            .ok_or(Error::BadValue("missing".into()))?;
        assert_eq!(
            (job.state.as_str(), job.step.as_deref(), job.done),
            ("running", Some("Downloading"), 1)
        );
        assert_eq!(store.fail_abandoned_jobs().await?, 1);
        let job = store
            .latest_job("install")
            .await?
            .ok_or(Error::BadValue("missing".into()))?;
        assert_eq!(job.error_code.as_deref(), Some("interrupted"));
        let second = store.create_job("install", Some("local"), 3).await?;
        store.finish_job(&second, "succeeded", None).await?;
        let all = store.jobs("install").await?;
        assert_eq!(
            all.iter()
                .map(|j| (j.id.as_str(), j.state.as_str()))
                .collect::<Vec<_>>(),
            [(id.as_str(), "failed"), (second.as_str(), "succeeded")]
        );
        assert!(store.jobs("provision").await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn damaged_file_is_kept_and_replaced() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::BadValue(e.to_string()))?;
        let path = dir.path().join("clawkeeper.db");
        std::fs::write(&path, b"this is not a database, just some bytes that are long enough to look like a header of something")
            .map_err(|e| Error::BadValue(e.to_string()))?;
        let (store, recovered) = Store::open(&path).await?;
        let recovered = recovered.ok_or(Error::BadValue("not recovered".into()))?;
        assert!(recovered.moved_to.exists(), "the damaged file must be kept");
        store.set_setting("k", "v").await?;
        assert_eq!(store.setting("k").await?.as_deref(), Some("v"));
        Ok(())
    }
}
