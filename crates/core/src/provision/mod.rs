//! Provisioning: turn a fresh Debian/Ubuntu server into a hardened OpenClaw host, over
//! nothing more than [`Remote`] (run a command, optionally with stdin).
//!
//! The job is an ordered list of idempotent steps ([`steps::STEPS`]); each step checks,
//! applies what is missing and verifies its own result on the server. The runner
//! ([`provision`]) records a job row and one `job_steps` row per step in the store, reports
//! progress, stops between steps when cancelled, and is **resumable by construction**:
//! running it again after a crash, a lost connection or a failed step re-checks every step
//! (quick when already done: the whole job takes seconds on a provisioned host) and
//! continues where the work is missing. Each run is a new job row; the previous one stays
//! as it ended (`failed`, `cancelled`, or `interrupted` when the app died).
//!
//! After the steps, the posture checks ([`posture::check_posture`]) read the server's real
//! state (listening sockets, effective sshd settings, firewall, service, file modes,
//! OpenClaw's own audit); a gateway reachable from outside loopback fails the job.
//!
//! Secrets: the gateway token and the provider key go to the server only as the stdin of
//! `install -m 0600 … /dev/stdin <file>` — never in a command line, an environment file, a
//! script or shell history — and the app compares sha256 hashes to know whether a file on
//! the server already holds the right value. See [`steps::SecretDelivery`] for how the
//! gateway reads them.

pub mod posture;
pub mod sources;
pub mod steps;
pub mod tailnet;

use crate::local::verify::{Check, CheckStatus};
use crate::problem::UserFacing;
use crate::remote::{self, Output, Remote};
use crate::secret::Secret;
use crate::store::{self, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use steps::{HostFacts, ProvisionSpec, StepDef, STEPS};
use tokio_util::sync::CancellationToken;

pub use steps::{FirewallSpec, ModelEndpoint, SecretDelivery};

/// The job kind in the store.
pub const JOB_KIND: &str = "provision";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Clawkeeper can't set up this server: {0}")]
    UnsupportedOs(String),
    #[error("The server's disk is full.")]
    HostDiskFull,
    #[error("A download did not match the checksum Clawkeeper expects: {0}")]
    DownloadChecksumMismatch(String),
    #[error("{step} failed: {detail}")]
    StepFailed { step: &'static str, detail: String },
    #[error("Clawkeeper needs administrator rights on the server, but the account {0} can't use sudo without a password.")]
    SudoRequired(String),
    #[error("Clawkeeper stopped before changing SSH logins: {0}")]
    WouldLockOut(String),
    #[error("After setting up, the assistant was reachable from outside the server: {0}")]
    Exposed(String),
    #[error("Setting up the server was stopped.")]
    Cancelled,
    #[error(transparent)]
    Remote(#[from] remote::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::UnsupportedOs(_) => "unsupported_os",
            Error::HostDiskFull => "host_disk_full",
            Error::DownloadChecksumMismatch(_) => "download_checksum_mismatch",
            Error::StepFailed { .. } => "provision_step_failed",
            Error::SudoRequired(_) => "sudo_required",
            Error::WouldLockOut(_) => "ssh_lockout_refused",
            Error::Exposed(_) => "gateway_exposed",
            Error::Cancelled => "cancelled",
            Error::Remote(e) => e.code(),
            Error::Store(e) => e.code(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::UnsupportedOs(_) => Some("Reinstall the server with Debian 12 or 13, or Ubuntu 22.04 or 24.04 (your hosting company's control panel offers these), then try again."),
            Error::HostDiskFull => Some("Free some space on the server or pick a bigger disk (OpenClaw needs about 2 GB), then press Try again. Nothing is lost: it continues where it stopped."),
            Error::DownloadChecksumMismatch(_) => Some("Nothing was installed from it. Press Try again; if it happens again, the download was tampered with or damaged on the way — tell the Clawkeeper developers."),
            Error::StepFailed { .. } => Some("Press Try again: finished steps are checked, not redone. If it keeps failing, Show details has the server's own words."),
            Error::SudoRequired(_) => Some("Log in as root, or let this account use sudo without a password (a line like `youruser ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/), then try again."),
            Error::WouldLockOut(_) => Some("Nothing about SSH was changed. Add your SSH key to the server (Clawkeeper can do it from Settings), then press Try again."),
            Error::Exposed(_) => Some("Clawkeeper stopped here. Press Try again; if it stays reachable, tell the Clawkeeper developers."),
            Error::Cancelled => Some("Press Continue when you're ready: it picks up where it stopped."),
            Error::Remote(e) => e.hint(),
            Error::Store(e) => e.hint(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The secrets the server needs. Never logged (see [`Secret`]), never put in a command.
#[derive(Debug, Clone)]
pub struct ProvisionSecrets {
    pub gateway_token: Secret,
    /// Required when the spec has a model.
    pub provider_key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Running,
    Done,
    Failed,
}

/// One progress event (what the UI's progress bar shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub job_id: String,
    /// 1-based.
    pub index: usize,
    pub total: usize,
    pub step_id: &'static str,
    pub name: &'static str,
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a finished provisioning run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub job_id: String,
    pub host: HostFacts,
    /// How long each step took (step id, duration).
    pub timings: Vec<(&'static str, Duration)>,
    /// The posture checklist, read from the server after the steps.
    pub checks: Vec<Check>,
}

/// Provision `remote` for `spec`. See the module docs. Safe to call again at any time.
#[tracing::instrument(skip_all, fields(instance = %spec.instance_id))]
pub async fn provision<R: Remote>(
    remote: &R,
    store: &Store,
    spec: &ProvisionSpec,
    secrets: &ProvisionSecrets,
    cancel: CancellationToken,
    on_progress: impl Fn(Progress),
) -> Result<Outcome> {
    let on_progress = &on_progress;
    run_job(
        store,
        JOB_KIND,
        &spec.instance_id,
        STEPS,
        on_progress,
        |job_id| async move {
            run_steps(remote, store, spec, secrets, &cancel, on_progress, &job_id).await
        },
    )
    .await
}

/// A job of `kind` on `instance_id` made of `steps`: its row in the store, `run` with the
/// job's id, and the row finished as the run ended — `succeeded`, or `failed`/`cancelled`
/// with the error, which is also reported as the failed step's progress.
pub(crate) async fn run_job<T, F, Fut>(
    store: &Store,
    kind: &str,
    instance_id: &str,
    steps: &'static [StepDef],
    on_progress: &impl Fn(Progress),
    run: F,
) -> Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = StepResult<T>>,
{
    let total = steps.len();
    let job_id = store
        .create_job(kind, Some(instance_id), total as i64)
        .await?;
    match run(job_id.clone()).await {
        Ok(outcome) => {
            store.finish_job(&job_id, "succeeded", None).await?;
            Ok(outcome)
        }
        Err((index, e)) => {
            let state = if matches!(e, Error::Cancelled) {
                "cancelled"
            } else {
                "failed"
            };
            let message = e.to_string();
            if let Some(step) = index.and_then(|i| steps.get(i)) {
                on_progress(Progress {
                    job_id: job_id.clone(),
                    index: index.unwrap_or(0) + 1,
                    total,
                    step_id: step.id,
                    name: step.name,
                    state: StepState::Failed,
                    detail: Some(message.clone()),
                });
            }
            // Keep the job's real error even if recording it fails.
            if let Err(se) = store
                .finish_job(&job_id, state, Some((e.code(), &message)))
                .await
            {
                tracing::warn!(error = %se, kind, "could not record the job's failure");
            }
            Err(e)
        }
    }
}

pub(crate) type StepResult<T> = std::result::Result<T, (Option<usize>, Error)>;

async fn run_steps<R: Remote>(
    remote: &R,
    store: &Store,
    spec: &ProvisionSpec,
    secrets: &ProvisionSecrets,
    cancel: &CancellationToken,
    on_progress: &impl Fn(Progress),
    job_id: &str,
) -> StepResult<Outcome> {
    if spec.model.is_some() && secrets.provider_key.is_none() {
        return Err((
            None,
            Error::StepFailed {
                step: "Preparing",
                detail: "the model provider's key is missing".into(),
            },
        ));
    }
    let total = STEPS.len();
    let mut host: Option<HostFacts> = None;
    let mut timings = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err((Some(i), Error::Cancelled));
        }
        let progress = |state, detail| Progress {
            job_id: job_id.to_owned(),
            index: i + 1,
            total,
            step_id: step.id,
            name: step.name,
            state,
            detail,
        };
        store
            .job_step(job_id, i as i64 + 1, step.name, i as i64, total as i64)
            .await
            .map_err(|e| (Some(i), e.into()))?;
        on_progress(progress(StepState::Running, None));
        let started = Instant::now();
        tracing::info!(step = step.id, "provisioning step");
        let detail = match &host {
            None => {
                let facts = detect_host(remote, spec, step)
                    .await
                    .map_err(|e| (Some(i), e))?;
                let d = format!("{} ({})", facts.os, facts.virt);
                host = Some(facts);
                Some(d)
            }
            Some(h) if step.id == "secrets" => {
                sync_secrets(remote, spec, secrets, h, step)
                    .await
                    .map_err(|e| (Some(i), e))?;
                None
            }
            Some(h) => {
                let script = steps::script(step.id, spec, h).ok_or((
                    Some(i),
                    Error::StepFailed {
                        step: step.name,
                        detail: format!("no script for step {}", step.id),
                    },
                ))?;
                let out = run_script(remote, h, step, &script)
                    .await
                    .map_err(|e| (Some(i), e))?;
                let facts = steps::parse_facts(&out.stdout_lossy());
                match steps::fact(&facts, "unresolved") {
                    Some(names) => Some(format!(
                        "Could not look up {names}; they are not in the allowlist for now"
                    )),
                    None => steps::fact(&facts, "changed").map(|_| "changed".to_owned()),
                }
            }
        };
        let took = started.elapsed();
        tracing::info!(step = step.id, ?took, "step done");
        timings.push((step.id, took));
        on_progress(progress(StepState::Done, detail));
    }
    let Some(host) = host else {
        return Err((
            None,
            Error::StepFailed {
                step: "Checking the operating system",
                detail: "no steps ran".into(),
            },
        ));
    };
    let checks = posture::check_posture(remote, &host, spec).await;
    if let Some(c) = checks
        .iter()
        .find(|c| c.id == posture::GATEWAY_LOOPBACK && c.status == CheckStatus::Fail)
    {
        return Err((
            None,
            Error::Exposed(c.detail.clone().unwrap_or_else(|| c.label.to_owned())),
        ));
    }
    Ok(Outcome {
        job_id: job_id.to_owned(),
        host,
        timings,
        checks,
    })
}

/// Who we are on the server, whether we need sudo, and the "os" step itself.
pub async fn detect_host<R: Remote>(
    remote: &R,
    spec: &ProvisionSpec,
    step: &StepDef,
) -> Result<HostFacts> {
    let who = remote.run("id -un && id -u", None).await?;
    let text = who.stdout_lossy();
    let mut lines = text.lines();
    let user = lines.next().unwrap_or("").trim().to_owned();
    let uid = lines.next().unwrap_or("").trim().to_owned();
    if !who.success() || user.is_empty() {
        return Err(Error::StepFailed {
            step: step.name,
            detail: format!("could not tell which account we are: {}", who.tail(3)),
        });
    }
    let sudo = uid != "0";
    if sudo {
        let ok = remote.run("sudo -n true", None).await?;
        if !ok.success() {
            return Err(Error::SudoRequired(user));
        }
    }
    let mut host = HostFacts {
        login_user: user,
        sudo,
        arch: sources::Arch::X64,
        os: String::new(),
        virt: String::new(),
    };
    let script = steps::script("os", spec, &host).unwrap_or_default();
    let out = run_script(remote, &host, step, &script).await?;
    let facts = steps::parse_facts(&out.stdout_lossy());
    let arch = steps::fact(&facts, "arch").unwrap_or("");
    host.arch = sources::Arch::from_uname(arch).ok_or_else(|| {
        Error::UnsupportedOs(format!("this server's processor ({arch}) isn't supported."))
    })?;
    host.os = steps::fact(&facts, "os").unwrap_or("").to_owned();
    host.virt = steps::fact(&facts, "virt").unwrap_or("").to_owned();
    Ok(host)
}

pub(crate) async fn run_script<R: Remote>(
    remote: &R,
    host: &HostFacts,
    step: &StepDef,
    script: &str,
) -> Result<Output> {
    let out = remote.run(host.shell(), Some(script.as_bytes())).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(classify_failure(step, &out, host))
    }
}

/// Turn a failed script into the error the person sees.
pub fn classify_failure(step: &StepDef, out: &Output, host: &HostFacts) -> Error {
    let stderr = out.stderr_lossy();
    let all = format!("{stderr}\n{}", out.stdout_lossy());
    // The script's own plain-language line, if it printed one.
    let said = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("clawkeeper: "))
        .map(str::to_owned);
    if all.contains("No space left on device") || all.contains("ENOSPC") {
        return Error::HostDiskFull;
    }
    if host.sudo
        && (stderr.contains("sudo: a password is required")
            || stderr.contains("sudo: a terminal is required"))
    {
        return Error::SudoRequired(host.login_user.clone());
    }
    let said_or_tail = || said.clone().unwrap_or_else(|| out.tail(6));
    match out.code {
        Some(steps::EXIT_UNSUPPORTED) => Error::UnsupportedOs(said_or_tail()),
        Some(steps::EXIT_CHECKSUM) => Error::DownloadChecksumMismatch(said_or_tail()),
        Some(steps::EXIT_DISK_FULL) => Error::HostDiskFull,
        Some(steps::EXIT_LOCKOUT) => Error::WouldLockOut(said_or_tail()),
        _ => {
            // The server's own words, without the line we already have.
            let tail = out
                .tail(7)
                .lines()
                .filter(|l| !l.starts_with("clawkeeper: "))
                .collect::<Vec<_>>()
                .join("\n");
            let detail = match (&said, tail.is_empty()) {
                (Some(s), true) => s.clone(),
                (Some(s), false) => format!("{s}\n{tail}"),
                (None, true) => format!("exit status {:?}", out.code),
                (None, false) => tail,
            };
            Error::StepFailed {
                step: step.name,
                detail,
            }
        }
    }
}

fn sha256_hex(s: &Secret) -> String {
    hex::encode(Sha256::digest(s.expose().as_bytes()))
}

/// The "secrets" step: make the credential files on the server hold exactly our secrets,
/// sending only the ones that differ, each alone on stdin. Per directory (see
/// [`steps::ProvisionSpec::credential_dirs`]): files that don't belong there are removed
/// (a server set up before the gateway token moved to a live file loses its root-only copy
/// here; the "config" and "service" steps then point the gateway at the new one).
async fn sync_secrets<R: Remote>(
    remote: &R,
    spec: &ProvisionSpec,
    secrets: &ProvisionSecrets,
    host: &HostFacts,
    step: &StepDef,
) -> Result<()> {
    for dir in spec.credential_dirs() {
        sync_dir(remote, &dir, spec, secrets, host, step).await?;
    }
    Ok(())
}

async fn sync_dir<R: Remote>(
    remote: &R,
    dir: &steps::CredentialDir,
    spec: &ProvisionSpec,
    secrets: &ProvisionSecrets,
    host: &HostFacts,
    step: &StepDef,
) -> Result<()> {
    let params = steps::secrets_params(dir);
    let prepare = steps::render(steps::SECRETS_PREPARE, &params);
    run_script(remote, host, step, &prepare).await?;
    let check = steps::render(steps::SECRETS_CHECK, &params);
    let wanted: Vec<(&str, &Secret)> = dir
        .names
        .iter()
        .filter_map(|&n| match n {
            steps::GATEWAY_TOKEN => Some((n, &secrets.gateway_token)),
            steps::PROVIDER_KEY => secrets.provider_key.as_ref().map(|k| (n, k)),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let owner = dir.owner;
    let is_right = |states: &[steps::CredentialState], name: &str, secret: &Secret| {
        states.iter().any(|s| {
            s.name == name
                && s.sha256.as_deref() == Some(sha256_hex(secret).as_str())
                && s.mode == "600"
                && s.owner == owner
                && s.links == "1"
        })
    };
    let before = run_script(remote, host, step, &check).await?;
    let states = steps::parse_credentials(&before.stdout_lossy());
    for (name, secret) in &wanted {
        if secret.is_empty() {
            return Err(Error::StepFailed {
                step: step.name,
                detail: format!("the {name} to store is empty"),
            });
        }
        if is_right(&states, name, secret) {
            continue;
        }
        let cmd = steps::write_secret_command(spec, name, host);
        let out = remote.run(&cmd, Some(secret.expose().as_bytes())).await?;
        if !out.success() {
            return Err(classify_failure(step, &out, host));
        }
    }
    let after = run_script(remote, host, step, &check).await?;
    let states = steps::parse_credentials(&after.stdout_lossy());
    for (name, secret) in &wanted {
        if !is_right(&states, name, secret) {
            return Err(Error::StepFailed {
                step: step.name,
                detail: format!("the {name} on the server does not match after writing it"),
            });
        }
    }
    Ok(())
}

/// Let OpenClaw fix what its security audit can fix itself (`openclaw security audit
/// --fix`), then check the posture again.
pub async fn security_audit_fix<R: Remote>(
    remote: &R,
    host: &HostFacts,
    spec: &ProvisionSpec,
) -> Result<Vec<Check>> {
    let script = posture::audit_fix_script();
    let out = remote.run(host.shell(), Some(script.as_bytes())).await?;
    if !out.success() {
        return Err(classify_failure(
            &StepDef {
                id: "audit_fix",
                name: "Fixing what the security audit found",
            },
            &out,
            host,
        ));
    }
    Ok(posture::check_posture(remote, host, spec).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: u32, stderr: &str) -> Output {
        Output {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    fn host(sudo: bool) -> HostFacts {
        HostFacts {
            login_user: "admin".into(),
            sudo,
            arch: sources::Arch::X64,
            os: "debian 12".into(),
            virt: "kvm".into(),
        }
    }

    #[test]
    fn failures_get_stable_codes() {
        let step = STEPS.iter().find(|s| s.id == "node").unwrap();
        let cases = [
            (
                out(10, "clawkeeper: This server runs CentOS 7; …"),
                "unsupported_os",
            ),
            (
                out(11, "clawkeeper: The download of x.tgz did not match"),
                "download_checksum_mismatch",
            ),
            (
                out(
                    1,
                    "tar: node: Cannot write: No space left on device\nclawkeeper: x",
                ),
                "host_disk_full",
            ),
            (out(12, "clawkeeper: full"), "host_disk_full"),
            (out(13, "clawkeeper: no key"), "ssh_lockout_refused"),
            (out(1, "sudo: a password is required"), "sudo_required"),
            (
                out(1, "boom\nclawkeeper: Installing OpenClaw with npm failed."),
                "provision_step_failed",
            ),
        ];
        for (o, code) in cases {
            assert_eq!(
                classify_failure(step, &o, &host(true)).code(),
                code,
                "{o:?}"
            );
        }
        let e = classify_failure(
            step,
            &out(
                1,
                "npm ERR! x\nclawkeeper: Installing OpenClaw with npm failed.",
            ),
            &host(false),
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("Installing Node.js failed: Installing OpenClaw"),
            "{msg}"
        );
        assert!(e.hint().is_some());
        let e = classify_failure(
            step,
            &out(10, "clawkeeper: This server runs Fedora."),
            &host(false),
        );
        assert_eq!(
            e.to_string(),
            "Clawkeeper can't set up this server: This server runs Fedora."
        );
    }
}
