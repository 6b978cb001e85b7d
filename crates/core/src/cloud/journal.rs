//! The cloud journal: a row per resource Clawkeeper creates at a provider, written *before*
//! the create call. Together with the labels every resource carries, it is what makes a
//! deploy safe to resume after a crash and a delete complete (see [`super::deploy`]).

use super::error::{Error, Result};
use crate::store::Store;
use crate::time::now_rfc3339;
use serde::Serialize;
use sqlx::{Row, SqlitePool};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    SshKey,
    Firewall,
    Server,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::SshKey => "ssh_key",
            ResourceKind::Firewall => "firewall",
            ResourceKind::Server => "server",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ssh_key" => ResourceKind::SshKey,
            "firewall" => ResourceKind::Firewall,
            "server" => ResourceKind::Server,
            other => return Err(Error::Journal(format!("unknown resource kind {other:?}"))),
        })
    }
}

impl fmt::Display for ResourceKind {
    /// As a person reads it ("SSH key").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::SshKey => "SSH key",
            ResourceKind::Firewall => "Firewall",
            ResourceKind::Server => "Server",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    /// Written before the create call; the outcome is not known yet.
    Intended,
    /// Exists at the provider with `provider_id`.
    Created,
    /// Removed at the provider (by us, or found gone).
    Deleted,
    /// The create call never reached the provider (or was refused): nothing to remove.
    Absent,
}

impl ResourceState {
    fn as_str(self) -> &'static str {
        match self {
            ResourceState::Intended => "intended",
            ResourceState::Created => "created",
            ResourceState::Deleted => "deleted",
            ResourceState::Absent => "absent",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "intended" => ResourceState::Intended,
            "created" => ResourceState::Created,
            "deleted" => ResourceState::Deleted,
            "absent" => ResourceState::Absent,
            other => return Err(Error::Journal(format!("unknown resource state {other:?}"))),
        })
    }
}

/// One journal row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub row: i64,
    pub instance_id: String,
    pub kind: ResourceKind,
    pub name: String,
    /// The `clawkeeper-instance` label value the resource carries.
    pub label: String,
    pub provider_id: Option<u64>,
    pub state: ResourceState,
    pub detail: Option<String>,
}

impl Resource {
    /// Intended or created: may exist at the provider.
    pub fn is_live(&self) -> bool {
        matches!(self.state, ResourceState::Intended | ResourceState::Created)
    }
}

/// The journal, over the store's SQLite pool.
#[derive(Debug, Clone)]
pub struct Journal {
    pool: SqlitePool,
}

fn to_db_id(id: u64) -> Result<i64> {
    i64::try_from(id).map_err(|_| Error::Journal(format!("provider id {id} is out of range")))
}

impl Journal {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
        }
    }

    /// Write down that `kind` named `name` is about to be created for `instance_id`. Must
    /// be called (and have returned) before the create call.
    pub async fn intend(
        &self,
        instance_id: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Resource> {
        let now = now_rfc3339();
        let row = sqlx::query(
            "INSERT INTO cloud_resources (instance_id, kind, name, label, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?1, 'intended', ?4, ?4)",
        )
        .bind(instance_id)
        .bind(kind.as_str())
        .bind(name)
        .bind(&now)
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(Resource {
            row,
            instance_id: instance_id.to_owned(),
            kind,
            name: name.to_owned(),
            label: instance_id.to_owned(),
            provider_id: None,
            state: ResourceState::Intended,
            detail: None,
        })
    }

    pub async fn mark_created(&self, row: i64, provider_id: u64) -> Result<()> {
        self.set(row, ResourceState::Created, Some(provider_id), None)
            .await
    }

    pub async fn mark_deleted(&self, row: i64, detail: &str) -> Result<()> {
        self.set(row, ResourceState::Deleted, None, Some(detail))
            .await
    }

    pub async fn mark_absent(&self, row: i64, detail: &str) -> Result<()> {
        self.set(row, ResourceState::Absent, None, Some(detail))
            .await
    }

    async fn set(
        &self,
        row: i64,
        state: ResourceState,
        provider_id: Option<u64>,
        detail: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE cloud_resources SET state = ?2, provider_id = COALESCE(?3, provider_id),
                 detail = COALESCE(?4, detail), updated_at = ?5 WHERE id = ?1",
        )
        .bind(row)
        .bind(state.as_str())
        .bind(provider_id.map(to_db_id).transpose()?)
        .bind(detail)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record a resource found at the provider with our label that the journal did not know
    /// (so that deleting the instance removes it too).
    pub async fn record_found(
        &self,
        instance_id: &str,
        kind: ResourceKind,
        name: &str,
        provider_id: u64,
    ) -> Result<Resource> {
        let r = self.intend(instance_id, kind, name).await?;
        self.set(
            r.row,
            ResourceState::Created,
            Some(provider_id),
            Some("found at the provider with this instance's label"),
        )
        .await?;
        Ok(Resource {
            provider_id: Some(provider_id),
            state: ResourceState::Created,
            detail: Some("found at the provider with this instance's label".into()),
            ..r
        })
    }

    /// Every row of an instance, oldest first.
    pub async fn resources(&self, instance_id: &str) -> Result<Vec<Resource>> {
        let rows = sqlx::query(
            "SELECT id, instance_id, kind, name, label, provider_id, state, detail
             FROM cloud_resources WHERE instance_id = ?1 ORDER BY id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let state: String = r.try_get("state")?;
                let provider_id: Option<i64> = r.try_get("provider_id")?;
                Ok(Resource {
                    row: r.try_get("id")?,
                    instance_id: r.try_get("instance_id")?,
                    kind: ResourceKind::parse(&kind)?,
                    name: r.try_get("name")?,
                    label: r.try_get("label")?,
                    provider_id: provider_id.and_then(|i| u64::try_from(i).ok()),
                    state: ResourceState::parse(&state)?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Rows that may exist at the provider (intended or created).
    pub async fn live(&self, instance_id: &str) -> Result<Vec<Resource>> {
        Ok(self
            .resources(instance_id)
            .await?
            .into_iter()
            .filter(Resource::is_live)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cloud_journal_records_intent_then_outcome() -> Result<()> {
        let store = Store::open_memory()
            .await
            .map_err(|e| Error::Journal(e.to_string()))?;
        let j = Journal::new(&store);
        let key = j
            .intend("i1", ResourceKind::SshKey, "clawkeeper-i1")
            .await?;
        let fw = j
            .intend("i1", ResourceKind::Firewall, "clawkeeper-i1")
            .await?;
        j.mark_created(key.row, 7).await?;
        j.mark_absent(fw.row, "never sent").await?;
        let all = j.resources("i1").await?;
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].state, all[0].provider_id),
            (ResourceState::Created, Some(7))
        );
        assert_eq!(all[1].state, ResourceState::Absent);
        assert_eq!(j.live("i1").await?.len(), 1);
        j.mark_deleted(key.row, "deleted").await?;
        assert!(j.live("i1").await?.is_empty());
        assert!(j.resources("other").await?.is_empty());
        Ok(())
    }
}
