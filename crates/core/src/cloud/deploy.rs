//! Creating and deleting an instance's cloud resources, safely.
//!
//! **No orphaned bills.** Before each create call a journal row is written (`intended`);
//! after the answer it becomes `created` with the provider's id. Every resource carries the
//! instance's label. So whatever happens in between — a crash, a dropped connection, a
//! cancelled job, a `timeout` whose outcome is unknown — the next run first *reconciles*:
//! it lists the provider's resources by label, gives each intent the id of what the provider
//! really made, and marks intents that never arrived `absent`. Only then does it create what
//! is still missing. A re-run therefore never makes a second server, and a creating POST is
//! only ever repeated after a look-up by label has shown that the first one did not happen
//! (Hetzner also refuses a second resource with the same name: `uniqueness_error`).
//!
//! **When the server can't be created** (`server_limit_exceeded`, `invalid_input`, …) the
//! SSH key and firewall made before it are kept, journaled, and reused by the next attempt
//! (neither costs anything at Hetzner); "Delete instance" removes them.

use super::error::{Error, Result};
use super::hetzner::{initial_rules, Action, CreateServer, HetznerClient, Server};
use super::journal::{Journal, Resource, ResourceKind, ResourceState};
use super::{label_selector, labels, resource_name, validate_instance_id};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;

/// What to create.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub instance_id: String,
    /// A server type name from [`HetznerClient::server_types`].
    pub server_type: String,
    /// A location name from [`HetznerClient::locations`].
    pub location: String,
    pub image: String,
    /// The app's SSH public key for this server (OpenSSH one-line format).
    pub ssh_public_key: String,
    /// cloud-init user data; no secrets (see [`super::cloud_init`]).
    pub user_data: String,
}

impl ServerSpec {
    /// A spec with the default image and Clawkeeper's cloud-init.
    pub fn new(instance_id: &str, server_type: &str, location: &str, ssh_public_key: &str) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            server_type: server_type.to_owned(),
            location: location.to_owned(),
            image: super::DEFAULT_IMAGE.to_owned(),
            ssh_public_key: ssh_public_key.to_owned(),
            user_data: super::cloud_init(instance_id),
        }
    }
}

/// The server, ready for SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerCreated {
    pub id: u64,
    pub name: String,
    pub ipv4: String,
    pub ipv6: Option<String>,
    pub ssh_key_id: u64,
    pub firewall_id: u64,
}

/// Progress of [`create_server`], for the job's UI. After each event the job may be
/// cancelled (and a crash may happen); the next run continues from the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Progress {
    Reconciled {
        adopted: usize,
        absent: usize,
        unknown: usize,
    },
    /// Written to the journal; the create call comes next.
    Intended {
        kind: ResourceKind,
        name: String,
    },
    /// The provider answered with the new resource (not yet in the journal).
    Created {
        kind: ResourceKind,
        name: String,
        id: u64,
    },
    /// The new resource's id is in the journal.
    Recorded {
        kind: ResourceKind,
        id: u64,
    },
    /// Already there from an earlier run.
    Reused {
        kind: ResourceKind,
        name: String,
        id: u64,
    },
    WaitingForAction {
        command: String,
        progress: u32,
    },
    WaitingForBoot {
        status: String,
    },
    Ready {
        id: u64,
        ipv4: String,
    },
}

/// What [`reconcile`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Intents whose create had reached the provider: now `created` with its id.
    pub adopted: Vec<Resource>,
    /// Intents that never reached the provider: now `absent`.
    pub absent: Vec<Resource>,
    /// Journaled as created but gone at the provider (deleted in its console): now `deleted`.
    pub vanished: Vec<Resource>,
    /// Labelled for this instance at the provider but unknown to the journal: now recorded
    /// as `created`, so that deleting the instance removes them.
    pub unknown: Vec<Resource>,
}

/// One thing "Delete instance" removed, readable as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub kind: ResourceKind,
    pub name: String,
    pub provider_id: u64,
    /// It was already gone at the provider.
    pub already_gone: bool,
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, name, id) = (self.kind, &self.name, self.provider_id);
        if self.already_gone {
            write!(f, "{kind} {name} (id {id}) was already gone")
        } else {
            write!(f, "{kind} {name} (id {id}) deleted")
        }
    }
}

/// A resource at the provider, whatever its kind.
struct Found {
    kind: ResourceKind,
    id: u64,
    name: String,
}

async fn labelled(client: &HetznerClient, instance_id: &str) -> Result<Vec<Found>> {
    let sel = label_selector(instance_id);
    let mut out: Vec<Found> = Vec::new();
    for s in client.servers(&sel).await? {
        out.push(Found {
            kind: ResourceKind::Server,
            id: s.id,
            name: s.name,
        });
    }
    for f in client.firewalls(&sel).await? {
        out.push(Found {
            kind: ResourceKind::Firewall,
            id: f.id,
            name: f.name,
        });
    }
    for k in client.ssh_keys(&sel).await? {
        out.push(Found {
            kind: ResourceKind::SshKey,
            id: k.id,
            name: k.name,
        });
    }
    Ok(out)
}

/// Whether a resource still exists (a 404 says no).
async fn exists(client: &HetznerClient, kind: ResourceKind, id: u64) -> Result<bool> {
    let r = match kind {
        ResourceKind::Server => client.server(id).await.map(drop),
        ResourceKind::Firewall => client.firewall(id).await.map(drop),
        ResourceKind::SshKey => client.ssh_key(id).await.map(drop),
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Bring the journal in line with the provider (see the module docs). Safe to run at any
/// time; [`create_server`] and [`delete_instance`] start with it.
pub async fn reconcile(
    client: &HetznerClient,
    journal: &Journal,
    instance_id: &str,
) -> Result<Reconciled> {
    validate_instance_id(instance_id)?;
    let found = labelled(client, instance_id).await?;
    let mut claimed: HashSet<(ResourceKind, u64)> = HashSet::new();
    let mut out = Reconciled::default();
    let live = journal.live(instance_id).await?;
    for r in live.iter().filter(|r| r.state == ResourceState::Created) {
        let Some(id) = r.provider_id else { continue };
        if found.iter().any(|f| f.kind == r.kind && f.id == id) {
            claimed.insert((r.kind, id));
        } else if exists(client, r.kind, id).await? {
            // Still there without our label (edited in the console): still ours to remove.
            claimed.insert((r.kind, id));
        } else {
            journal.mark_deleted(r.row, "gone at the provider").await?;
            out.vanished.push(r.clone());
        }
    }
    for r in live.iter().filter(|r| r.state == ResourceState::Intended) {
        let hit = found
            .iter()
            .find(|f| f.kind == r.kind && f.name == r.name && !claimed.contains(&(f.kind, f.id)));
        match hit {
            Some(f) => {
                journal.mark_created(r.row, f.id).await?;
                claimed.insert((f.kind, f.id));
                out.adopted.push(Resource {
                    provider_id: Some(f.id),
                    state: ResourceState::Created,
                    ..r.clone()
                });
            }
            None => {
                journal
                    .mark_absent(r.row, "never reached the provider")
                    .await?;
                out.absent.push(r.clone());
            }
        }
    }
    for f in found.iter().filter(|f| !claimed.contains(&(f.kind, f.id))) {
        tracing::warn!(
            kind = f.kind.as_str(),
            id = f.id,
            "labelled resource unknown to the journal; recording it"
        );
        out.unknown.push(
            journal
                .record_found(instance_id, f.kind, &f.name, f.id)
                .await?,
        );
    }
    Ok(out)
}

type ProgressFn<'a> = &'a mut (dyn FnMut(&Progress) + Send + Sync);

struct Run<'a> {
    client: HetznerClient,
    journal: &'a Journal,
    spec: &'a ServerSpec,
    progress: ProgressFn<'a>,
}

impl Run<'_> {
    /// Tell the UI, then stop here if the job was cancelled.
    fn emit(&mut self, p: Progress) -> Result<()> {
        (self.progress)(&p);
        self.client.check_cancel()
    }

    async fn create(
        &self,
        kind: ResourceKind,
        name: &str,
        key: u64,
        firewall: u64,
    ) -> Result<(u64, Vec<Action>)> {
        let labels = labels(&self.spec.instance_id);
        match kind {
            ResourceKind::SshKey => {
                let k = self
                    .client
                    .create_ssh_key(name, &self.spec.ssh_public_key, &labels)
                    .await?;
                Ok((k.id, Vec::new()))
            }
            ResourceKind::Firewall => {
                let (f, actions) = self
                    .client
                    .create_firewall(name, &initial_rules(), &labels)
                    .await?;
                Ok((f.id, actions))
            }
            ResourceKind::Server => {
                let created = self
                    .client
                    .create_server(&CreateServer {
                        name: name.to_owned(),
                        server_type: self.spec.server_type.clone(),
                        image: self.spec.image.clone(),
                        location: self.spec.location.clone(),
                        ssh_keys: vec![key],
                        firewalls: vec![firewall],
                        user_data: self.spec.user_data.clone(),
                        labels,
                    })
                    .await?;
                let mut actions = vec![created.action];
                actions.extend(created.next_actions);
                Ok((created.server.id, actions))
            }
        }
    }

    /// Give a leftover intent the id of what the provider has under its name and label, or
    /// mark it absent. `Some(id)` when adopted.
    async fn resolve_intent(&mut self, r: &Resource) -> Result<Option<u64>> {
        let sel = label_selector(&self.spec.instance_id);
        let id = match r.kind {
            ResourceKind::Server => self
                .client
                .servers(&sel)
                .await?
                .into_iter()
                .find(|x| x.name == r.name)
                .map(|x| x.id),
            ResourceKind::Firewall => self
                .client
                .firewalls(&sel)
                .await?
                .into_iter()
                .find(|x| x.name == r.name)
                .map(|x| x.id),
            ResourceKind::SshKey => self
                .client
                .ssh_keys(&sel)
                .await?
                .into_iter()
                .find(|x| x.name == r.name)
                .map(|x| x.id),
        };
        match id {
            Some(id) => {
                self.journal.mark_created(r.row, id).await?;
                self.emit(Progress::Reused {
                    kind: r.kind,
                    name: r.name.clone(),
                    id,
                })?;
                Ok(Some(id))
            }
            None => {
                self.journal
                    .mark_absent(r.row, "never reached the provider")
                    .await?;
                Ok(None)
            }
        }
    }

    /// The id of this instance's `kind`, creating it if it doesn't exist; with the actions
    /// to wait for when it was just created.
    async fn ensure(
        &mut self,
        kind: ResourceKind,
        key: u64,
        firewall: u64,
    ) -> Result<(u64, Vec<Action>)> {
        let instance = self.spec.instance_id.clone();
        let name = resource_name(&instance);
        let mut last: Option<Error> = None;
        for _ in 0..3 {
            let live: Vec<Resource> = self
                .journal
                .live(&instance)
                .await?
                .into_iter()
                .filter(|r| r.kind == kind)
                .collect();
            for r in live.iter().filter(|r| r.state == ResourceState::Created) {
                let Some(id) = r.provider_id else { continue };
                if exists(&self.client, kind, id).await? {
                    self.emit(Progress::Reused {
                        kind,
                        name: r.name.clone(),
                        id,
                    })?;
                    return Ok((id, Vec::new()));
                }
                self.journal
                    .mark_deleted(r.row, "gone at the provider")
                    .await?;
            }
            for r in live.iter().filter(|r| r.state == ResourceState::Intended) {
                if let Some(id) = self.resolve_intent(r).await? {
                    return Ok((id, Vec::new()));
                }
            }
            let intent = self.journal.intend(&instance, kind, &name).await?;
            self.emit(Progress::Intended {
                kind,
                name: name.clone(),
            })?;
            match self.create(kind, &name, key, firewall).await {
                Ok((id, actions)) => {
                    // A crash between these two lines leaves an intent that the next run's
                    // reconcile resolves by label.
                    self.emit(Progress::Created {
                        kind,
                        name: name.clone(),
                        id,
                    })?;
                    self.journal.mark_created(intent.row, id).await?;
                    self.emit(Progress::Recorded { kind, id })?;
                    return Ok((id, actions));
                }
                Err(Error::NameTaken { message }) => {
                    // Ours from an attempt whose answer was lost, or somebody else's.
                    if let Some(id) = self.resolve_intent(&intent).await? {
                        return Ok((id, Vec::new()));
                    }
                    return Err(Error::NameTaken { message });
                }
                Err(e) if e.is_refusal() => {
                    self.journal.mark_absent(intent.row, &e.to_string()).await?;
                    return Err(e);
                }
                // Cancelled while the request was in flight: the intent stays for the next
                // run to resolve.
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                // May have been carried out: the next turn looks it up by label first.
                Err(e) => {
                    tracing::info!(
                        kind = kind.as_str(),
                        code = e.api_code(),
                        "create outcome unknown; looking it up by label"
                    );
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Error::WaitTimedOut(format!("the {kind}"))))
    }

    async fn wait_actions(&mut self, actions: &[Action]) -> Result<()> {
        for a in actions {
            let progress = &mut *self.progress;
            self.client
                .wait_action_with(a.id, &mut |a: &Action| {
                    progress(&Progress::WaitingForAction {
                        command: a.command.clone(),
                        progress: a.progress,
                    })
                })
                .await?;
            self.client.check_cancel()?;
        }
        Ok(())
    }

    async fn wait_running(&mut self, id: u64) -> Result<Server> {
        let policy = self.client.policy().clone();
        let deadline = tokio::time::Instant::now() + policy.wait_timeout;
        let mut interval = policy.poll_min;
        loop {
            let s = self.client.server(id).await?;
            if s.status == "running" && s.ipv4().is_some() {
                return Ok(s);
            }
            self.emit(Progress::WaitingForBoot {
                status: s.status.clone(),
            })?;
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::WaitTimedOut("the server to start".into()));
            }
            self.client.sleep(interval).await?;
            interval = (interval * 2).min(policy.poll_max);
        }
    }
}

/// Create (or finish creating) the instance's server: SSH key, firewall, server, then wait
/// until it runs with a public IPv4 address. Resumable: run it again after a crash or a
/// cancel and it continues without making anything twice. `cancel` stops it at the next
/// step (or wait); `progress` hears about every step.
pub async fn create_server(
    client: &HetznerClient,
    journal: &Journal,
    spec: &ServerSpec,
    cancel: tokio_util::sync::CancellationToken,
    progress: &mut (dyn FnMut(&Progress) + Send + Sync),
) -> Result<ServerCreated> {
    validate_instance_id(&spec.instance_id)?;
    // Refused before anything is created, not after the key and firewall.
    super::hetzner::check_user_data(&spec.user_data)?;
    let mut run = Run {
        client: client.with_cancel(cancel),
        journal,
        spec,
        progress,
    };
    run.client.check_cancel()?;
    let rec = reconcile(&run.client, journal, &spec.instance_id).await?;
    run.emit(Progress::Reconciled {
        adopted: rec.adopted.len(),
        absent: rec.absent.len(),
        unknown: rec.unknown.len(),
    })?;

    let (key, _) = run.ensure(ResourceKind::SshKey, 0, 0).await?;
    let (firewall, actions) = run.ensure(ResourceKind::Firewall, key, 0).await?;
    run.wait_actions(&actions).await?;
    let (id, actions) = run.ensure(ResourceKind::Server, key, firewall).await?;
    run.wait_actions(&actions).await?;
    let server = run.wait_running(id).await?;
    let ipv4 = server.ipv4().unwrap_or_default().to_owned();
    run.emit(Progress::Ready {
        id,
        ipv4: ipv4.clone(),
    })?;
    Ok(ServerCreated {
        id,
        name: server.name.clone(),
        ipv4,
        ipv6: server.public_net.ipv6.map(|a| a.ip),
        ssh_key_id: key,
        firewall_id: firewall,
    })
}

/// Remove everything the instance has at the provider — server (waiting until it is gone),
/// then firewall, then SSH key — and say what was removed. Resources already gone count as
/// removed. Stops at the first real error (the journal keeps what is left, and running it
/// again continues).
pub async fn delete_instance(
    client: &HetznerClient,
    journal: &Journal,
    instance_id: &str,
) -> Result<Vec<Removed>> {
    reconcile(client, journal, instance_id).await?;
    let mut live = journal.live(instance_id).await?;
    let order = |k: ResourceKind| match k {
        ResourceKind::Server => 0,
        ResourceKind::Firewall => 1,
        ResourceKind::SshKey => 2,
    };
    live.sort_by_key(|r| (order(r.kind), r.row));
    let mut removed = Vec::new();
    for r in live {
        let Some(id) = r.provider_id else {
            // Reconcile resolved every intent; nothing without an id can exist.
            continue;
        };
        let outcome = match r.kind {
            ResourceKind::Server => match client.delete_server(id).await {
                Ok(action) => client.wait_action(action.id).await.map(drop),
                Err(e) => Err(e),
            },
            ResourceKind::Firewall => delete_firewall(client, id).await,
            ResourceKind::SshKey => client.delete_ssh_key(id).await,
        };
        let already_gone = match outcome {
            Ok(()) => false,
            Err(e) if e.is_not_found() => true,
            Err(e) => return Err(e),
        };
        journal
            .mark_deleted(
                r.row,
                if already_gone {
                    "already gone"
                } else {
                    "deleted"
                },
            )
            .await?;
        let item = Removed {
            kind: r.kind,
            name: r.name,
            provider_id: id,
            already_gone,
        };
        tracing::info!(%item, "cloud resource removed");
        removed.push(item);
    }
    Ok(removed)
}

/// A firewall is `resource_in_use` while a server being deleted still holds it; that clears
/// within seconds, so wait and try again a few times.
async fn delete_firewall(client: &HetznerClient, id: u64) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.delete_firewall(id).await {
            Err(Error::Api { code, .. }) if code == "resource_in_use" && attempt < 6 => {
                client.sleep(client.policy().backoff(attempt)).await?;
            }
            other => return other,
        }
    }
}
