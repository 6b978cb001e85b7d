//! The person's own server(s), as the windows and the tray see them: a thin layer over
//! `crate::server` that mirrors what the CLI does (`crates/cli/src/server.rs`), turns long
//! work (provisioning, a cloud deploy) into one background job at a time with progress
//! events ([`Event::Server`]), and remembers the last safety checklist per server
//! ([`Event::ServerChecks`]) so the UI never polls.

use super::{problem, Clawkeeper, Event};
use crate::audit;
use crate::cloud::deploy::Progress as CloudProgress;
use crate::cloud::hetzner::{HetznerClient, Location, ServerType};
use crate::cloud::journal::{Journal, ResourceKind};
use crate::local::verify::{Check, CheckStatus};
use crate::problem::Problem;
use crate::provision::{Progress as ProvisionProgress, StepState};
use crate::secret::Secret;
use crate::server::deploy::{self, DeployProgress, DeployRequest};
use crate::server::{self as srv, ops, support, FirstLogin};
use crate::ssh::{self, hosts, Target};
use crate::time::now_rfc3339;
use crate::vault::{SecretKind, SecretRef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One safety check of a server, as last read from it (owned, so it can be stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCheck {
    pub id: String,
    pub label: String,
    /// `pass` | `fail` | `pending`
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ServerCheck {
    pub fn failed(&self) -> bool {
        self.status == "fail"
    }
}

impl From<&Check> for ServerCheck {
    fn from(c: &Check) -> Self {
        Self {
            id: c.id.to_owned(),
            label: c.label.to_owned(),
            status: match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Fail => "fail",
                CheckStatus::Pending => "pending",
            }
            .to_owned(),
            detail: c.detail.clone(),
        }
    }
}

/// The long work running (or last run) on a server: what the progress bar shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerJob {
    /// `deploy` (creating the server at the provider) | `provision` (setting it up) |
    /// `tailnet` (putting it on the person's tailnet)
    pub kind: &'static str,
    /// `running` | `succeeded` | `failed` | `cancelled`
    pub state: &'static str,
    /// The current step's name, in plain words.
    pub step: String,
    /// 1-based; 0 before the first step.
    pub index: usize,
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

impl ServerJob {
    fn starting(kind: &'static str, total: usize) -> Self {
        Self {
            kind,
            state: "running",
            step: "Starting…".into(),
            index: 0,
            total,
            detail: None,
            error: None,
        }
    }

    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// One adopted (or being created) server.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub id: String,
    pub name: String,
    /// `ssh` (a server the person had) | `cloud` (created at a provider by Clawkeeper)
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_key_fingerprint: Option<String>,
    pub checks: Vec<ServerCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<ServerJob>,
}

/// What the person sees before confirming a server's identity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScannedHost {
    pub fingerprint: String,
    pub algorithm: String,
}

/// How the person logs in the first time (from the connect form).
pub enum Login {
    Key {
        text: Secret,
        passphrase: Option<Secret>,
    },
    Password(Secret),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Login(<redacted>)")
    }
}

/// The support key just issued: its private half is in here once, for the person to copy.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedView {
    pub grant: GrantView,
    pub private_key: String,
}

impl std::fmt::Debug for IssuedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedView({}, <redacted>)", self.grant.grant.id)
    }
}

impl Drop for IssuedView {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    #[serde(flatten)]
    pub grant: support::Grant,
    /// `active` | `expired` | `revoked`
    pub state: &'static str,
}

impl From<support::Grant> for GrantView {
    fn from(g: support::Grant) -> Self {
        let state = if g.revoked_at.is_some() {
            "revoked"
        } else if g.active(time::OffsetDateTime::now_utc()) {
            "active"
        } else {
            "expired"
        };
        Self { grant: g, state }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudOptions {
    pub locations: Vec<Location>,
    /// Types still sold (not deprecated), cheapest first.
    pub server_types: Vec<ServerType>,
}

/// What deleting a server removed, in words.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub removed: Vec<String>,
}

/// The server part of the facade's state.
#[derive(Default)]
pub(super) struct Servers {
    /// The one job that may run (server id, cancel).
    running: std::sync::Mutex<Option<(String, CancellationToken)>>,
    /// The last job per server (running or finished), for `servers()`.
    jobs: std::sync::Mutex<HashMap<String, ServerJob>>,
}

/// The steps of the cloud part of a deploy (before provisioning), in order.
const DEPLOY_STEPS: [&str; 6] = [
    "Creating Clawkeeper's key at Hetzner",
    "Creating the firewall",
    "Creating the server",
    "Waiting for the server to start",
    "Waiting for the server to answer",
    "Logging in with Clawkeeper's key",
];

fn deploy_step(p: &DeployProgress) -> Option<(usize, Option<String>)> {
    let kind_step = |k: &ResourceKind| match k {
        ResourceKind::SshKey => 1,
        ResourceKind::Firewall => 2,
        ResourceKind::Server => 3,
    };
    Some(match p {
        DeployProgress::Cloud(CloudProgress::Intended { kind, .. })
        | DeployProgress::Cloud(CloudProgress::Recorded { kind, .. })
        | DeployProgress::Cloud(CloudProgress::Created { kind, .. })
        | DeployProgress::Cloud(CloudProgress::Reused { kind, .. }) => (kind_step(kind), None),
        DeployProgress::Cloud(CloudProgress::WaitingForBoot { status }) => {
            (4, Some(format!("The server is {status}")))
        }
        DeployProgress::Cloud(CloudProgress::Ready { ipv4, .. }) => {
            (4, Some(format!("Running at {ipv4}")))
        }
        DeployProgress::WaitingForSsh { waited_s, .. } => (5, Some(format!("{waited_s} s so far"))),
        DeployProgress::HostKeyPinned { fingerprint } => {
            (6, Some(format!("Server identity {fingerprint}")))
        }
        DeployProgress::LoggedIn => (6, None),
        _ => return None,
    })
}

/// What the progress bar shows for a provisioning step's progress. A finished step counts
/// as done and names what comes next, so the step shown and "step N of M" always agree.
fn provision_job(p: &ProvisionProgress) -> ServerJob {
    step_job("provision", crate::provision::steps::STEPS, p)
}

/// The job line for progress `p` of a job of `kind` whose steps are `steps`.
pub(super) fn step_job(
    kind: &'static str,
    steps: &[crate::provision::steps::StepDef],
    p: &ProvisionProgress,
) -> ServerJob {
    let (step, index, detail) = match p.state {
        StepState::Done => (
            steps.get(p.index).map_or(FINAL_CHECK, |s| s.name),
            p.index,
            None,
        ),
        StepState::Failed => (p.name, p.index.saturating_sub(1), None),
        _ => (p.name, p.index.saturating_sub(1), p.detail.clone()),
    };
    ServerJob {
        kind,
        state: "running",
        step: step.to_owned(),
        index,
        total: p.total,
        detail,
        error: None,
    }
}

/// After the last step: the checklist is read from the server.
const FINAL_CHECK: &str = "Checking the server's safety";

fn checks_key(id: &str) -> String {
    format!("server.checks.{id}")
}

/// The size and place chosen for a cloud server ([`StoredDeploy`]).
fn deploy_key(id: &str) -> String {
    format!("server.deploy.{id}")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredDeploy {
    server_type: String,
    location: String,
}

fn internal() -> Problem {
    Problem::new("internal", "Internal error.", None)
}

fn cloud_token_ref() -> SecretRef {
    SecretRef::new(SecretKind::CloudToken, "hetzner")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredChecks {
    checked_at: String,
    checks: Vec<ServerCheck>,
}

impl Clawkeeper {
    fn servers_state(&self) -> &Servers {
        &self.inner.servers
    }

    /// A setup that did not finish in an earlier run of the app (stopped, failed, or cut off
    /// when the app was closed), from the job history: after a restart the person still
    /// sees where it stopped, and can continue.
    async fn unfinished_setup(&self, id: &str) -> Option<ServerJob> {
        let rec = self
            .inner
            .store
            .latest_job_for(crate::provision::JOB_KIND, id)
            .await
            .ok()??;
        let state = match rec.state.as_str() {
            "failed" => "failed",
            "cancelled" => "cancelled",
            // `running` only while this process runs it (then it's in memory); succeeded.
            _ => return None,
        };
        let code = rec.error_code.unwrap_or_else(|| "failed".into());
        let hint = match code.as_str() {
            "interrupted" | "cancelled" => "Continue picks up where it stopped.",
            _ => "Try again; finished steps are not redone.",
        };
        Some(ServerJob {
            kind: "provision",
            state,
            step: rec.step.unwrap_or_default(),
            index: usize::try_from(rec.done).unwrap_or(0),
            total: usize::try_from(rec.total).unwrap_or(0),
            detail: None,
            error: Some(Problem::new(
                &code,
                rec.error
                    .unwrap_or_else(|| "Setting up the server did not finish.".into()),
                Some(hint),
            )),
        })
    }

    /// The adopted servers (and cloud servers being created), oldest first.
    pub async fn servers(&self) -> Result<Vec<ServerView>, Problem> {
        let store = &self.inner.store;
        let rows = store.servers().await.map_err(|e| problem(&e))?;
        let jobs = self
            .servers_state()
            .jobs
            .lock()
            .map(|j| j.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for r in rows {
            let id = r.id;
            let kind = r.target;
            let host = hosts::get(store, &id).await.map_err(|e| problem(&e))?;
            let job = match jobs.get(&id) {
                Some(j) => Some(j.clone()),
                None => self.unfinished_setup(&id).await,
            };
            // A cloud instance whose server isn't there yet is listed only while something
            // of it exists (a job, or resources at the provider to delete).
            if host.is_none() && job.is_none() {
                let live = Journal::new(store)
                    .live(&id)
                    .await
                    .map(|l| !l.is_empty())
                    .unwrap_or(false);
                if !live {
                    continue;
                }
            }
            let stored = self.stored_checks(&id).await;
            out.push(ServerView {
                name: r.name,
                kind,
                address: host.as_ref().map(|h| h.target.host.clone()),
                port: host.as_ref().map(|h| h.target.port),
                user: host.as_ref().map(|h| h.target.user.clone()),
                host_fingerprint: host.as_ref().map(|h| h.host_key.fingerprint.clone()),
                host_key_algorithm: host.as_ref().map(|h| h.host_key.algorithm.clone()),
                pinned_at: host.as_ref().map(|h| h.pinned_at.clone()),
                app_key_fingerprint: host.as_ref().and_then(|h| h.app_key_fingerprint.clone()),
                checks: stored
                    .as_ref()
                    .map(|s| s.checks.clone())
                    .unwrap_or_default(),
                checked_at: stored.map(|s| s.checked_at),
                job,
                id,
            });
        }
        Ok(out)
    }

    async fn stored_checks(&self, id: &str) -> Option<StoredChecks> {
        let text = self.inner.store.setting(&checks_key(id)).await.ok()??;
        serde_json::from_str(&text).ok()
    }

    /// Remember and announce a server's checklist.
    async fn record_checks(&self, id: &str, checks: &[Check]) -> Vec<ServerCheck> {
        let checks: Vec<ServerCheck> = checks.iter().map(ServerCheck::from).collect();
        let checked_at = now_rfc3339();
        let stored = StoredChecks {
            checked_at: checked_at.clone(),
            checks: checks.clone(),
        };
        if let Ok(text) = serde_json::to_string(&stored) {
            let _ = self.inner.store.set_setting(&checks_key(id), &text).await;
        }
        let failed = checks.iter().filter(|c| c.failed()).count();
        let _ = audit::append(
            &self.inner.store,
            Some(id),
            "server.checked",
            &format!(
                "{} of {} safety checks passed",
                checks.len() - failed,
                checks.len()
            ),
        )
        .await;
        self.emit(Event::ServerChecks {
            id: id.to_owned(),
            checks: checks.clone(),
            checked_at,
        });
        checks
    }

    /// First contact: the server's identity, for the person to compare and confirm.
    pub async fn server_scan(
        &self,
        host: &str,
        port: u16,
        user: &str,
    ) -> Result<ScannedHost, Problem> {
        let target = target_of(host, port, user)?;
        let key = ssh::scan_host_key(&target).await.map_err(|e| problem(&e))?;
        Ok(ScannedHost {
            fingerprint: key.fingerprint,
            algorithm: key.algorithm,
        })
    }

    /// Connect a server the person has: the identity must still be the one they confirmed;
    /// log in once with their key or a one-time password, install Clawkeeper's own key.
    /// Returns the new server (provisioning is a separate job: [`Self::server_provision`]).
    #[tracing::instrument(skip(self, login), fields(host = %host))]
    pub async fn server_connect(
        &self,
        host: &str,
        port: u16,
        user: &str,
        name: &str,
        confirmed_fingerprint: &str,
        login: Login,
    ) -> Result<ServerView, Problem> {
        let target = target_of(host, port, user)?;
        let seen = ssh::scan_host_key(&target).await.map_err(|e| problem(&e))?;
        if seen.fingerprint != confirmed_fingerprint.trim() {
            return Err(Problem::new(
                "host_key_mismatch",
                format!(
                    "The server now identifies itself as {}, not {} as you confirmed. Nothing was sent to it.",
                    seen.fingerprint,
                    confirmed_fingerprint.trim()
                ),
                Some("Check the address, and compare again with the fingerprint your hosting provider shows."),
            ));
        }
        let id = self.new_server_id(&target).await?;
        let first = match login {
            Login::Key { text, passphrase } => FirstLogin::Key {
                private: text,
                passphrase,
            },
            Login::Password(p) => FirstLogin::Password(p),
        };
        let name = if name.trim().is_empty() {
            "My server"
        } else {
            name.trim()
        };
        let connected = srv::adopt(
            &self.inner.store,
            &self.inner.vault,
            &id,
            name,
            &target,
            &seen,
            first,
        )
        .await
        .map_err(|e| problem(&e))?;
        connected.session.close().await;
        self.server_view(&id).await
    }

    /// The id for a newly connected server: the one already used for this address, else
    /// `server`, `server-2`, …
    async fn new_server_id(&self, target: &Target) -> Result<String, Problem> {
        let store = &self.inner.store;
        for n in 1..1000 {
            let id = if n == 1 {
                "server".to_owned()
            } else {
                format!("server-{n}")
            };
            let existing = store.instance(&id).await.map_err(|e| problem(&e))?;
            let host = hosts::get(store, &id).await.map_err(|e| problem(&e))?;
            match (existing, host) {
                (None, _) => return Ok(id),
                (Some(_), Some(h)) if h.target == *target => return Ok(id),
                (Some(i), None) if i.target == "ssh" => return Ok(id),
                _ => {}
            }
        }
        Err(internal())
    }

    async fn server_view(&self, id: &str) -> Result<ServerView, Problem> {
        self.servers()
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| unknown_server(id))
    }

    pub(super) async fn require_server(
        &self,
        id: &str,
    ) -> Result<crate::store::InstanceRecord, Problem> {
        match self
            .inner
            .store
            .instance(id)
            .await
            .map_err(|e| problem(&e))?
        {
            Some(i) if i.target == "ssh" || i.target == "cloud" => Ok(i),
            _ => Err(unknown_server(id)),
        }
    }

    /// Claim the one job slot for `id`, or say what runs.
    pub(super) fn claim_job(
        &self,
        id: &str,
        kind: &'static str,
        total: usize,
    ) -> Result<CancellationToken, Problem> {
        let mut running = self
            .servers_state()
            .running
            .lock()
            .map_err(|_| internal())?;
        if let Some((other, _)) = running.as_ref() {
            return Err(Problem::new(
                "server_job_running",
                if other == id {
                    "Clawkeeper is already working on this server.".to_owned()
                } else {
                    "Clawkeeper is working on another server right now.".to_owned()
                },
                Some("Wait until it finishes, or press Cancel, then try again."),
            ));
        }
        let cancel = CancellationToken::new();
        *running = Some((id.to_owned(), cancel.clone()));
        drop(running);
        self.set_job(id, ServerJob::starting(kind, total));
        Ok(cancel)
    }

    pub(super) fn release_job(&self) {
        if let Ok(mut r) = self.servers_state().running.lock() {
            *r = None;
        }
    }

    pub(super) fn set_job(&self, id: &str, job: ServerJob) {
        if let Ok(mut j) = self.servers_state().jobs.lock() {
            j.insert(id.to_owned(), job.clone());
        }
        self.emit(Event::Server {
            id: id.to_owned(),
            job,
        });
    }

    /// Stop the running server job safely: between provisioning steps, or before the next
    /// call to the provider (everything created so far is journaled).
    pub fn cancel_server_job(&self) {
        if let Ok(r) = self.servers_state().running.lock() {
            match r.as_ref() {
                Some((id, c)) => {
                    tracing::info!(server = %id, "server job: cancel requested");
                    c.cancel();
                }
                None => tracing::info!("server job: cancel requested, but none is running"),
            }
        }
    }

    /// Whether a server job is running (for the tray).
    pub fn server_job_running(&self) -> bool {
        self.servers_state()
            .running
            .lock()
            .map(|r| r.is_some())
            .unwrap_or(false)
    }

    /// Set up (or re-check and repair) a server, in the background: progress arrives as
    /// [`Event::Server`], the checklist at the end as [`Event::ServerChecks`].
    /// A cloud server whose creation was cancelled or failed before it could be logged in
    /// to continues that instead (Continue after a restart of the window or the app).
    pub async fn server_provision(&self, id: &str) -> Result<(), Problem> {
        let inst = self.require_server(id).await?;
        if inst.target == "cloud"
            && hosts::get(&self.inner.store, id)
                .await
                .map_err(|e| problem(&e))?
                .is_none()
        {
            return self.continue_deploy(id, &inst.name).await;
        }
        let total = crate::provision::steps::STEPS.len();
        let cancel = self.claim_job(id, "provision", total)?;
        let app = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            app.run_provision(&id, cancel).await;
            app.release_job();
        });
        Ok(())
    }

    /// The provisioning part of a job (the slot is held by the caller).
    async fn run_provision(&self, id: &str, cancel: CancellationToken) -> bool {
        let total = crate::provision::steps::STEPS.len();
        let app = self.clone();
        let job_id = id.to_owned();
        let on_progress = move |p: ProvisionProgress| {
            app.set_job(&job_id, provision_job(&p));
        };
        let result = ops::provision_server(
            &self.inner.store,
            &self.inner.vault,
            id,
            cancel,
            on_progress,
        )
        .await;
        let last = self.job_now(id, "provision", total);
        match result {
            Ok(outcome) => {
                self.record_checks(id, &outcome.checks).await;
                // The person set this server up to use it: chat goes there from now on
                // (the status window offers to switch back to this computer).
                if let Err(p) = self.use_assistant(Some(id)).await {
                    tracing::warn!(code = %p.code, "couldn't switch chat to the server");
                }
                self.end_job(id, last, Ok(()));
                true
            }
            Err(e) => {
                self.end_job(id, last, Err(problem(&e)));
                false
            }
        }
    }

    /// Server `id`'s job as it was last reported (a `kind` job of `total` steps that is
    /// only starting, if nothing was reported yet).
    pub(super) fn job_now(&self, id: &str, kind: &'static str, total: usize) -> ServerJob {
        self.servers_state()
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(id).cloned())
            .unwrap_or_else(|| ServerJob::starting(kind, total))
    }

    /// The last word of a server job: done (all `last.total` steps), or stopped with its
    /// problem (`cancelled` when the person cancelled it).
    pub(super) fn end_job(&self, id: &str, last: ServerJob, result: Result<(), Problem>) {
        let job = match result {
            Ok(()) => ServerJob {
                state: "succeeded",
                step: "Done".into(),
                index: last.total,
                detail: None,
                error: None,
                ..last
            },
            Err(p) => ServerJob {
                state: if p.code == "cancelled" {
                    "cancelled"
                } else {
                    "failed"
                },
                error: Some(p),
                ..last
            },
        };
        self.set_job(id, job);
    }

    /// Read the server's safety checklist now (with `fix`, let OpenClaw's own audit repair
    /// what it safely can first). Also announced as [`Event::ServerChecks`].
    pub async fn server_posture(&self, id: &str, fix: bool) -> Result<Vec<ServerCheck>, Problem> {
        self.require_server(id).await?;
        let checks = ops::posture(&self.inner.store, &self.inner.vault, id, fix)
            .await
            .map_err(|e| problem(&e))?;
        Ok(self.record_checks(id, &checks).await)
    }

    /// A one-time helper key for `hours` (1–168). The private key is in the answer once;
    /// Clawkeeper keeps no copy.
    #[tracing::instrument(skip(self, note))]
    pub async fn support_issue(
        &self,
        id: &str,
        hours: u64,
        note: &str,
    ) -> Result<IssuedView, Problem> {
        if !(1..=168).contains(&hours) {
            return Err(Problem::new(
                "support_window",
                "A support window is 1 to 168 hours (a week).",
                Some("Pick a shorter time."),
            ));
        }
        self.require_server(id).await?;
        let s = srv::open_session(&self.inner.store, &self.inner.vault, id)
            .await
            .map_err(|e| problem(&e))?;
        let issued = support::issue(
            &self.inner.store,
            &s,
            id,
            Duration::from_secs(hours * 3600),
            note.trim(),
        )
        .await;
        s.close().await;
        let issued = issued.map_err(|e| problem(&e))?;
        Ok(IssuedView {
            private_key: issued.private_key.expose().to_owned(),
            grant: issued.grant.into(),
        })
    }

    /// The support keys of a server, checked on the server when it answers.
    pub async fn support_list(&self, id: &str) -> Result<Vec<GrantView>, Problem> {
        self.require_server(id).await?;
        let session = srv::open_session(&self.inner.store, &self.inner.vault, id)
            .await
            .ok();
        let grants = support::list(&self.inner.store, session.as_ref(), id).await;
        if let Some(s) = session {
            s.close().await;
        }
        Ok(grants
            .map_err(|e| problem(&e))?
            .into_iter()
            .map(GrantView::from)
            .collect())
    }

    pub async fn support_revoke(&self, id: &str, grant: &str) -> Result<(), Problem> {
        self.require_server(id).await?;
        let s = srv::open_session(&self.inner.store, &self.inner.vault, id)
            .await
            .map_err(|e| problem(&e))?;
        let r = support::revoke(&self.inner.store, &s, id, grant).await;
        s.close().await;
        r.map_err(|e| problem(&e))
    }

    /// Save the Hetzner API token in the keychain.
    pub async fn cloud_token_save(&self, token: Secret) -> Result<(), Problem> {
        let token = Secret::new(token.expose().trim());
        if token.is_empty() {
            return Err(Problem::new(
                "cloud_token_empty",
                "The token is empty.",
                Some("Paste the API token from your Hetzner project (Security → API tokens, Read & Write)."),
            ));
        }
        self.inner
            .vault
            .store(&cloud_token_ref(), &token)
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(
            &self.inner.store,
            None,
            "cloud.token_saved",
            &format!("Hetzner token {}", token.fingerprint()),
        )
        .await;
        // Its age, for the keys list (set now: a token saved again is a new one).
        let _ = crate::rotation::journal::note_set(
            &self.inner.store,
            "hetzner",
            crate::rotation::KeyId::CloudToken,
            Some(&token.fingerprint()),
            false,
        )
        .await;
        Ok(())
    }

    async fn hetzner(&self) -> Result<HetznerClient, Problem> {
        let token = self
            .inner
            .vault
            .read(&cloud_token_ref())
            .await
            .map_err(|e| match e {
                crate::vault::Error::NotFound(_) => Problem::new(
                    "cloud_token_missing",
                    "No Hetzner API token saved yet.",
                    Some("Paste a Read & Write token from your Hetzner project's Security page."),
                ),
                e => problem(&e),
            })?;
        HetznerClient::at(hetzner_api().as_deref(), token).map_err(|e| problem(&e))
    }

    /// Locations and server types with today's prices, from the provider's API.
    pub async fn cloud_options(&self) -> Result<CloudOptions, Problem> {
        let client = self.hetzner().await?;
        let (mut types, locations) =
            tokio::try_join!(client.server_types(), client.locations()).map_err(|e| problem(&e))?;
        types.retain(|t| !t.is_deprecated() && !t.prices.is_empty());
        let cheapest = |t: &ServerType| {
            t.prices
                .iter()
                .filter_map(|p| p.price_monthly.gross.parse::<f64>().ok())
                .fold(f64::INFINITY, f64::min)
        };
        types.sort_by(|a, b| cheapest(a).total_cmp(&cheapest(b)));
        Ok(CloudOptions {
            locations,
            server_types: types,
        })
    }

    /// Create a server at Hetzner, then set it up, in the background (one job: the deploy
    /// steps, then the provisioning steps). Returns the new server's id.
    pub async fn cloud_deploy(
        &self,
        name: &str,
        server_type: &str,
        location: &str,
    ) -> Result<String, Problem> {
        let client = self.hetzner().await?;
        let id = self.new_cloud_id().await?;
        let req = DeployRequest {
            instance_id: id.clone(),
            name: if name.trim().is_empty() {
                "My server".into()
            } else {
                name.trim().to_owned()
            },
            server_type: server_type.to_owned(),
            location: location.to_owned(),
        };
        // Remembered, so Continue can pick the creation up again after a restart.
        let chosen = StoredDeploy {
            server_type: req.server_type.clone(),
            location: req.location.clone(),
        };
        if let Ok(text) = serde_json::to_string(&chosen) {
            self.inner
                .store
                .set_setting(&deploy_key(&id), &text)
                .await
                .map_err(|e| problem(&e))?;
        }
        self.start_deploy(client, req)?;
        Ok(id)
    }

    /// Continue creating the cloud server `id` with what the person chose for it.
    async fn continue_deploy(&self, id: &str, name: &str) -> Result<(), Problem> {
        let chosen: StoredDeploy = self
            .inner
            .store
            .setting(&deploy_key(id))
            .await
            .map_err(|e| problem(&e))?
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                Problem::new(
                    "server_deploy_unknown",
                    "Clawkeeper no longer knows which size and place you chose for this server.",
                    Some("Delete it (nothing is left at Hetzner), then create it again."),
                )
            })?;
        let client = self.hetzner().await?;
        self.start_deploy(
            client,
            DeployRequest {
                instance_id: id.to_owned(),
                name: name.to_owned(),
                server_type: chosen.server_type,
                location: chosen.location,
            },
        )
    }

    fn start_deploy(&self, client: HetznerClient, req: DeployRequest) -> Result<(), Problem> {
        let cancel = self.claim_job(&req.instance_id, "deploy", DEPLOY_STEPS.len())?;
        let app = self.clone();
        tokio::spawn(async move {
            app.run_deploy(&client, &req, cancel).await;
            app.release_job();
        });
        Ok(())
    }

    /// A cloud server being created keeps its id: deploying again continues it.
    async fn new_cloud_id(&self) -> Result<String, Problem> {
        let store = &self.inner.store;
        for n in 1..1000 {
            let id = if n == 1 {
                "cloud".to_owned()
            } else {
                format!("cloud-{n}")
            };
            match store.instance(&id).await.map_err(|e| problem(&e))? {
                None => return Ok(id),
                Some(i) if i.target == "cloud" => {
                    // Unfinished (no server pinned yet): continue it.
                    if hosts::get(store, &id)
                        .await
                        .map_err(|e| problem(&e))?
                        .is_none()
                    {
                        return Ok(id);
                    }
                }
                Some(_) => {}
            }
        }
        Err(internal())
    }

    async fn run_deploy(
        &self,
        client: &HetznerClient,
        req: &DeployRequest,
        cancel: CancellationToken,
    ) {
        let id = req.instance_id.clone();
        let total = DEPLOY_STEPS.len();
        let app = self.clone();
        let job_id = id.clone();
        let mut on_progress = move |p: &DeployProgress| {
            if let Some((index, detail)) = deploy_step(p) {
                app.set_job(
                    &job_id,
                    ServerJob {
                        kind: "deploy",
                        state: "running",
                        step: DEPLOY_STEPS
                            .get(index - 1)
                            .copied()
                            .unwrap_or_default()
                            .to_owned(),
                        index: index - 1,
                        total,
                        detail,
                        error: None,
                    },
                );
            }
        };
        let result = deploy::deploy(
            &self.inner.store,
            &self.inner.vault,
            client,
            req,
            cancel.clone(),
            &mut on_progress,
        )
        .await;
        match result {
            Ok(connected) => {
                connected.session.close().await;
                self.run_provision(&id, cancel).await;
            }
            Err(e) => {
                let last = self.job_now(&id, "deploy", total);
                self.end_job(&id, last, Err(problem(&e)));
            }
        }
    }

    /// Delete a server. Created at Hetzner: everything Clawkeeper made there is deleted
    /// (the server with all its data, its firewall and key). A server the person had:
    /// Clawkeeper forgets it (its pinned identity, its key in the keychain) and takes
    /// back any support keys still active; the server itself is left as it is. Either way,
    /// its device is removed from the person's tailnet when a Tailscale key is saved.
    pub async fn server_delete(&self, id: &str) -> Result<Deleted, Problem> {
        let inst = self.require_server(id).await?;
        if self
            .servers_state()
            .running
            .lock()
            .map(|r| r.as_ref().is_some_and(|(rid, _)| rid == id))
            .unwrap_or(false)
        {
            return Err(Problem::new(
                "server_job_running",
                "Clawkeeper is still working on this server.",
                Some("Press Cancel, wait until it has stopped, then delete it."),
            ));
        }
        let store = &self.inner.store;
        let vault = &self.inner.vault;
        let mut removed = Vec::new();
        if inst.target == "cloud" {
            let client = self.hetzner().await?;
            let gone = deploy::delete(store, vault, &client, id)
                .await
                .map_err(|e| problem(&e))?;
            removed.extend(gone.at_provider.iter().map(|r| format!("At Hetzner: {r}")));
            removed.extend(gone.here);
        } else {
            // On the server (best effort: it may be gone): take back support keys that
            // still work, then Clawkeeper's own key, so no access of ours is left there.
            let grants = support::list(store, None, id).await.unwrap_or_default();
            let now = time::OffsetDateTime::now_utc();
            let active: Vec<_> = grants.iter().filter(|g| g.active(now)).collect();
            match srv::open_session(store, vault, id).await {
                Ok(s) => {
                    for g in active {
                        if support::revoke(store, &s, id, &g.id).await.is_ok() {
                            removed.push(format!("Support key {} revoked on the server", g.id));
                        }
                    }
                    if srv::connect::remove_app_key(&s, id).await.is_ok() {
                        removed
                            .push("On the server: Clawkeeper's key (from authorized_keys)".into());
                    }
                    s.close().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "server unreachable while removing it");
                    removed.push("The server could not be reached: Clawkeeper's key stays in its authorized_keys, but its private half is deleted below, so nobody can use it".into());
                }
            }
            removed.extend(
                srv::connect::forget(store, vault, id)
                    .await
                    .map_err(|e| problem(&e))?,
            );
        }
        // Its device on the tailnet (best effort: a failure is said, never blocks).
        removed.extend(self.tailnet_remove_server(id).await);
        let _ = store.set_setting(&checks_key(id), "").await;
        let _ = store.set_setting(&deploy_key(id), "").await;
        if store
            .setting(super::ASSISTANT_SETTING)
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some(id)
        {
            let _ = self.use_assistant(None).await;
        }
        if let Ok(mut j) = self.servers_state().jobs.lock() {
            j.remove(id);
        }
        let _ = audit::append(store, Some(id), "server.forgotten", &removed.join("; ")).await;
        self.emit(Event::ServerRemoved { id: id.to_owned() });
        Ok(Deleted { removed })
    }
}

fn target_of(host: &str, port: u16, user: &str) -> Result<Target, Problem> {
    let host = host.trim();
    let user = user.trim();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Problem::new(
            "host_address",
            "Type the server's address.",
            Some("Its IP address or name, as your hosting provider shows it (for example 203.0.113.7)."),
        ));
    }
    if user.is_empty() || user.contains(char::is_whitespace) {
        return Err(Problem::new(
            "host_user",
            "Type the user name to log in with.",
            Some("For a new server it is usually \"root\"."),
        ));
    }
    if port == 0 {
        return Err(Problem::new(
            "host_port",
            "That port isn't right.",
            Some("The SSH port is usually 22."),
        ));
    }
    Ok(Target::new(host, port, user))
}

fn unknown_server(id: &str) -> Problem {
    Problem::new(
        "server_unknown",
        format!("Clawkeeper doesn't know a server called {id}."),
        Some("Close this window and open Status again."),
    )
}

/// The tray's words for a server: "safe", "needs attention", or the job's step.
pub fn server_summary(s: &ServerView) -> String {
    match &s.job {
        Some(j) if j.running() => {
            let what = if j.kind == "deploy" {
                "Creating server…"
            } else {
                "Setting up server…"
            };
            // The step being worked on, as the status window shows it ("step N of M").
            format!("{what} {}/{}", (j.index + 1).min(j.total), j.total)
        }
        Some(j) if j.state == "failed" => "Server: needs attention".into(),
        _ if s.checks.iter().any(ServerCheck::failed) => "Server: needs attention".into(),
        _ if s.checks.is_empty() => "Server: not checked yet".into(),
        _ => "Server: safe".into(),
    }
}

/// The Hetzner API's root: `CLAWKEEPER_HETZNER_API` (tests: the contract fake), else the
/// real API (`None`).
pub(super) fn hetzner_api() -> Option<String> {
    std::env::var("CLAWKEEPER_HETZNER_API")
        .ok()
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(checks: Vec<ServerCheck>, job: Option<ServerJob>) -> ServerView {
        ServerView {
            id: "server".into(),
            name: "My server".into(),
            kind: "ssh".into(),
            address: None,
            port: None,
            user: None,
            host_fingerprint: None,
            host_key_algorithm: None,
            pinned_at: None,
            app_key_fingerprint: None,
            checks,
            checked_at: None,
            job,
        }
    }

    fn check(status: &str) -> ServerCheck {
        ServerCheck {
            id: "x".into(),
            label: "X".into(),
            status: status.into(),
            detail: None,
        }
    }

    #[test]
    fn summary_words() {
        assert_eq!(
            server_summary(&view(vec![check("pass")], None)),
            "Server: safe"
        );
        assert_eq!(
            server_summary(&view(vec![check("pass"), check("fail")], None)),
            "Server: needs attention"
        );
        let mut job = ServerJob::starting("provision", 13);
        job.index = 6;
        assert_eq!(
            server_summary(&view(vec![], Some(job.clone()))),
            "Setting up server… 7/13"
        );
        job.index = 13;
        assert_eq!(
            server_summary(&view(vec![], Some(job))),
            "Setting up server… 13/13"
        );
    }

    #[test]
    fn provisioning_progress_names_the_step_it_counts() {
        use crate::provision::steps::STEPS;
        let at = |i: usize, state: StepState| ProvisionProgress {
            job_id: "j".into(),
            index: i,
            total: STEPS.len(),
            step_id: STEPS[i - 1].id,
            name: STEPS[i - 1].name,
            state,
            detail: Some("debian 12".into()),
        };
        // Step 2 running: "step 2 of N", named step 2 (index = steps finished).
        let j = provision_job(&at(2, StepState::Running));
        assert_eq!((j.step.as_str(), j.index), (STEPS[1].name, 1));
        assert_eq!(j.detail.as_deref(), Some("debian 12"));
        // Step 2 done: two finished, and the name is the next one's.
        let j = provision_job(&at(2, StepState::Done));
        assert_eq!((j.step.as_str(), j.index), (STEPS[2].name, 2));
        let last = provision_job(&at(STEPS.len(), StepState::Done));
        assert_eq!((last.step.as_str(), last.index), (FINAL_CHECK, STEPS.len()));
        let failed = provision_job(&at(3, StepState::Failed));
        assert_eq!((failed.step.as_str(), failed.index), (STEPS[2].name, 2));
        assert_eq!(failed.detail, None);
    }

    #[test]
    fn deploy_progress_maps_to_named_steps() {
        let p = DeployProgress::Cloud(CloudProgress::Intended {
            kind: ResourceKind::Server,
            name: "clawkeeper-x".into(),
        });
        assert_eq!(deploy_step(&p), Some((3, None)));
        assert_eq!(deploy_step(&DeployProgress::LoggedIn).map(|s| s.0), Some(6));
        assert_eq!(DEPLOY_STEPS.len(), 6);
    }

    #[test]
    fn targets_are_checked() {
        assert!(target_of("203.0.113.7", 22, "root").is_ok());
        assert_eq!(target_of(" ", 22, "root").unwrap_err().code, "host_address");
        assert_eq!(target_of("h", 22, "").unwrap_err().code, "host_user");
        assert_eq!(target_of("h", 0, "root").unwrap_err().code, "host_port");
    }
}
