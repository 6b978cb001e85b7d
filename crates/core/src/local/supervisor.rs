//! The supervisor: runs the local gateway as a child process and keeps the instance's state
//! machine (NotInstalled → Stopped → Starting → Healthy ⇄ Degraded → Stopping → Stopped,
//! or Error). Readiness is a real `hello-ok`, not a log line; a crash restarts with backoff
//! unless it keeps crashing; Stop sends SIGTERM to the gateway itself, then SIGKILL to its
//! process group after a timeout.

use super::config::ModelSettings;
use super::verify::{self, Check, CheckStatus};
use super::{Error, LocalInstance};
use crate::gateway::{self, ClientInfo};
use crate::problem::{Problem, UserFacing};
use crate::secret::Secret;
use crate::store::{DesiredState, Store};
use crate::time::now_rfc3339;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InstanceState {
    NotInstalled,
    Stopped,
    Starting {
        detail: String,
    },
    Healthy {
        version: Option<String>,
        since: String,
    },
    Degraded {
        detail: String,
    },
    Stopping,
    Error {
        problem: Problem,
    },
}

impl InstanceState {
    pub fn name(&self) -> &'static str {
        match self {
            InstanceState::NotInstalled => "not_installed",
            InstanceState::Stopped => "stopped",
            InstanceState::Starting { .. } => "starting",
            InstanceState::Healthy { .. } => "healthy",
            InstanceState::Degraded { .. } => "degraded",
            InstanceState::Stopping => "stopping",
            InstanceState::Error { .. } => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub state: InstanceState,
    pub checks: Vec<Check>,
    pub restarts: u32,
    #[serde(skip)]
    pub pid: Option<u32>,
}

/// How the supervisor behaves; tests shorten the timings.
#[derive(Debug, Clone)]
pub struct Policy {
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub probe_every: Duration,
    pub crash_window: Duration,
    pub max_crashes: u32,
    pub backoff_start: Duration,
    pub backoff_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            ready_timeout: Duration::from_secs(120),
            stop_timeout: Duration::from_secs(15),
            probe_every: Duration::from_secs(15),
            crash_window: Duration::from_secs(120),
            max_crashes: 5,
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

enum Cmd {
    Start(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Supervisor {
    cmd: mpsc::Sender<Cmd>,
    status: watch::Receiver<Status>,
}

impl Supervisor {
    pub fn spawn(instance: LocalInstance, store: Store, policy: Policy) -> Self {
        let initial = if instance.runtime().is_installed() {
            InstanceState::Stopped
        } else {
            InstanceState::NotInstalled
        };
        let (tx, status) = watch::channel(Status {
            state: initial,
            checks: verify::pending(),
            restarts: 0,
            pid: None,
        });
        let (cmd, rx) = mpsc::channel(8);
        tokio::spawn(
            Task {
                instance,
                store,
                policy,
                status: tx,
                cmd: rx,
            }
            .run(),
        );
        Self { cmd, status }
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Ask for a start; returns once the request is taken (watch [`Supervisor::status`]).
    pub async fn start(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Start(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Stop and wait until the gateway has exited.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Wait until the state satisfies `pred` (or `timeout`), returning the last status.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&InstanceState) -> bool,
    ) -> Status {
        let mut rx = self.status.clone();
        let _ = tokio::time::timeout(timeout, async {
            loop {
                if pred(&rx.borrow_and_update().state) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let s = rx.borrow().clone();
        s
    }
}

struct Task {
    instance: LocalInstance,
    store: Store,
    policy: Policy,
    status: watch::Sender<Status>,
    cmd: mpsc::Receiver<Cmd>,
}

enum Exit {
    /// Asked to stop: the reply goes out once stopped.
    Stopped(Option<oneshot::Sender<()>>),
    /// The gateway exited on its own.
    Crashed(Option<i32>),
    /// Could not be started at all.
    Failed(Problem),
}

impl Task {
    fn set_state(&self, state: InstanceState) {
        self.status.send_modify(|s| s.state = state);
    }

    async fn run(mut self) {
        while let Some(cmd) = self.cmd.recv().await {
            match cmd {
                Cmd::Stop(reply) => {
                    let _ = reply.send(());
                }
                Cmd::Start(reply) => {
                    // Leave Stopped before acknowledging, so a waiter never sees a stale state.
                    self.set_state(InstanceState::Starting {
                        detail: "Getting ready".into(),
                    });
                    let _ = reply.send(());
                    self.run_instance().await;
                }
            }
        }
    }

    async fn run_instance(&mut self) {
        let mut crashes: VecDeque<Instant> = VecDeque::new();
        let mut backoff = self.policy.backoff_start;
        let mut doctored = false;
        loop {
            match self.run_once().await {
                Exit::Stopped(reply) => {
                    self.status.send_modify(|s| {
                        s.state = InstanceState::Stopped;
                        s.pid = None;
                    });
                    if let Some(r) = reply {
                        let _ = r.send(());
                    }
                    return;
                }
                Exit::Failed(problem) => {
                    let state = if problem.code == "not_installed" {
                        InstanceState::NotInstalled
                    } else {
                        InstanceState::Error { problem }
                    };
                    self.status.send_modify(|s| {
                        s.state = state;
                        s.pid = None;
                    });
                    return;
                }
                Exit::Crashed(code) => {
                    self.status.send_modify(|s| s.pid = None);
                    if let Ok(Some(rec)) = self.store.instance(&self.instance.id).await {
                        if rec.desired_state == DesiredState::Stopped {
                            // Stopped on purpose by another Clawkeeper process (the CLI).
                            self.set_state(InstanceState::Stopped);
                            return;
                        }
                    }
                    if code == Some(78) && !doctored {
                        // EX_CONFIG: let OpenClaw repair its state once, then retry.
                        doctored = true;
                        self.set_state(InstanceState::Starting {
                            detail: "Repairing settings".into(),
                        });
                        let _ = self
                            .instance
                            .openclaw(&["doctor", "--fix", "--yes", "--non-interactive"])
                            .await;
                        continue;
                    } else if code == Some(78) {
                        let p = Error::Config(
                            "OpenClaw refused the configuration (exit code 78)".into(),
                        )
                        .problem();
                        self.set_state(InstanceState::Error { problem: p });
                        return;
                    }
                    let now = Instant::now();
                    crashes.push_back(now);
                    while crashes
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > self.policy.crash_window)
                    {
                        crashes.pop_front();
                    }
                    let count = u32::try_from(crashes.len()).unwrap_or(u32::MAX);
                    if count >= self.policy.max_crashes {
                        self.set_state(InstanceState::Error {
                            problem: Error::CrashLoop(count).problem(),
                        });
                        return;
                    }
                    self.status.send_modify(|s| {
                        s.restarts += 1;
                        s.state = InstanceState::Degraded {
                            detail: format!(
                                "Stopped unexpectedly; restarting in {} s",
                                backoff.as_secs().max(1)
                            ),
                        };
                    });
                    tracing::warn!(
                        ?code,
                        "gateway exited unexpectedly; restarting after {backoff:?}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        cmd = self.cmd.recv() => match cmd {
                            Some(Cmd::Stop(reply)) => {
                                self.set_state(InstanceState::Stopped);
                                let _ = reply.send(());
                                return;
                            }
                            Some(Cmd::Start(reply)) => { let _ = reply.send(()); }
                            None => return,
                        }
                    }
                    backoff = (backoff * 2).min(self.policy.backoff_max);
                }
            }
        }
    }

    /// A hello with `token`; if refused, with the other token the keychain holds while a
    /// rotation runs (which then becomes `token`).
    async fn connect_any(&self, token: &mut Secret) -> Result<gateway::Connection, gateway::Error> {
        let url = self.instance.url();
        let client = ClientInfo::default();
        let first = gateway::connect_once(&url, token, &client).await;
        let refused = first.as_ref().err().is_some_and(gateway::Error::is_refusal);
        if !refused {
            return first;
        }
        let entry = self.instance.token_ref();
        let others = crate::rotation::driver::candidates(self.instance.vault(), &entry)
            .await
            .unwrap_or_default();
        for other in others {
            if other.expose() == token.expose() {
                continue;
            }
            if let Ok(conn) = gateway::connect_once(&url, &other, &client).await {
                *token = other;
                return Ok(conn);
            }
        }
        first
    }

    async fn prepare(&self) -> Result<(Secret, Option<Secret>), Error> {
        if !self.instance.runtime().is_installed() {
            return Err(super::runtime::Error::NotInstalled.into());
        }
        let token = self.instance.ensure_token().await?;
        let _ = crate::rotation::journal::note_known(
            &self.store,
            &self.instance.id,
            crate::rotation::KeyId::GatewayToken,
            Some(&token.fingerprint()),
        )
        .await;
        let provider = self.store.provider(&self.instance.id).await.ok().flatten();
        let (model, key) = match provider {
            Some(p) => {
                let key = self
                    .instance
                    .vault()
                    .read(&self.instance.provider_key_ref())
                    .await?;
                // Mid-rotation, the key being verified (see `rotation::live_entry`).
                let live = crate::rotation::live_entry(
                    &self.store,
                    self.instance.vault(),
                    &self.instance.id,
                    crate::rotation::KeyId::ProviderKey,
                    &self.instance.provider_key_ref(),
                )
                .await;
                let key_ref = if live == self.instance.provider_key_ref() {
                    p.key_ref
                } else {
                    live.to_string()
                };
                (
                    Some(ModelSettings {
                        base_url: p.base_url,
                        model: p.model,
                        key_ref,
                    }),
                    Some(key),
                )
            }
            None => (None, None),
        };
        let entry = crate::rotation::live_entry(
            &self.store,
            self.instance.vault(),
            &self.instance.id,
            crate::rotation::KeyId::GatewayToken,
            &self.instance.token_ref(),
        )
        .await;
        self.instance.write_config(model.as_ref(), &entry)?;
        stop_orphan(&self.instance).await;
        if self.instance.port_in_use() {
            return Err(Error::PortInUse(self.instance.port));
        }
        Ok((token, key))
    }

    async fn run_once(&mut self) -> Exit {
        self.status.send_modify(|s| {
            s.state = InstanceState::Starting {
                detail: "Getting ready".into(),
            };
            s.checks = verify::pending();
        });
        let (mut token, provider_key) = match self.prepare().await {
            Ok(v) => v,
            Err(e) => return Exit::Failed(e.problem()),
        };
        let mut child = match self
            .instance
            .gateway_command()
            .and_then(|mut c| c.spawn().map_err(Error::Io))
        {
            Ok(c) => c,
            Err(e) => return Exit::Failed(e.problem()),
        };
        let pid = child.id().unwrap_or(0);
        let _ = std::fs::write(self.instance.pid_file(), pid.to_string());
        self.status.send_modify(|s| {
            s.pid = Some(pid);
            s.state = InstanceState::Starting {
                detail: "Starting your assistant".into(),
            };
        });

        // Readiness: a real hello-ok with our token.
        let deadline = Instant::now() + self.policy.ready_timeout;
        let hello = loop {
            match self.connect_any(&mut token).await {
                Ok(conn) => {
                    let h = conn.hello.clone();
                    conn.close().await;
                    break h;
                }
                Err(e) => tracing::debug!(error = %e, "gateway not ready yet"),
            }
            if Instant::now() > deadline {
                self.terminate(&mut child).await;
                return Exit::Failed(
                    Error::StartTimeout(self.policy.ready_timeout.as_secs()).problem(),
                );
            }
            if let Some(exit) = self
                .watch(&mut child, pid, Duration::from_millis(500))
                .await
            {
                return exit;
            }
        };

        // Verify on the host, then report healthy.
        let mut secrets = vec![&token];
        if let Some(k) = provider_key.as_ref() {
            secrets.push(k);
        }
        let checks = verify::run(&self.instance, pid, &secrets).await;
        let exposed = checks.iter().find(|c| {
            c.id == verify::LOOPBACK_ONLY
                && c.status == CheckStatus::Fail
                && c.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("Also reachable"))
        });
        if let Some(c) = exposed {
            let detail = c.detail.clone().unwrap_or_default();
            self.terminate(&mut child).await;
            self.status.send_modify(|s| s.checks = checks.clone());
            return Exit::Failed(Error::Exposed(detail).problem());
        }
        let all_pass = checks.iter().all(|c| c.status == CheckStatus::Pass);
        let since = now_rfc3339();
        let version = hello.server_version.clone();
        self.status.send_modify(|s| {
            s.checks = checks;
            s.state = if all_pass {
                InstanceState::Healthy {
                    version: version.clone(),
                    since: since.clone(),
                }
            } else {
                InstanceState::Degraded {
                    detail: "A safety check did not pass".into(),
                }
            };
        });

        // Watch it: exit, stop, or a failing probe.
        let mut failures = 0u32;
        loop {
            if let Some(exit) = self.watch(&mut child, pid, self.policy.probe_every).await {
                return exit;
            }
            let ok = match self.connect_any(&mut token).await {
                Ok(conn) => {
                    conn.close().await;
                    true
                }
                Err(_) => false,
            };
            failures = if ok { 0 } else { failures + 1 };
            let current = self.status.borrow().state.clone();
            match (&current, ok, failures) {
                (InstanceState::Healthy { .. }, false, 2..) => {
                    self.set_state(InstanceState::Degraded {
                        detail: "Not answering".into(),
                    })
                }
                (InstanceState::Degraded { detail }, true, _) if detail == "Not answering" => self
                    .set_state(InstanceState::Healthy {
                        version: version.clone(),
                        since: since.clone(),
                    }),
                _ => {}
            }
        }
    }

    /// Wait up to `wait` while watching the child and the commands: `Some` when the gateway
    /// exited on its own or a stop was asked for (then it has been stopped), `None` when the
    /// time simply passed.
    async fn watch(&mut self, child: &mut Child, pid: u32, wait: Duration) -> Option<Exit> {
        tokio::select! {
            status = child.wait() => {
                reap_group(pid);
                let _ = std::fs::remove_file(self.instance.pid_file());
                Some(Exit::Crashed(status.ok().and_then(|s| s.code())))
            }
            cmd = self.cmd.recv() => match cmd {
                Some(Cmd::Stop(reply)) => {
                    self.terminate(child).await;
                    Some(Exit::Stopped(Some(reply)))
                }
                Some(Cmd::Start(reply)) => {
                    let _ = reply.send(());
                    None
                }
                None => {
                    self.terminate(child).await;
                    Some(Exit::Stopped(None))
                }
            },
            _ = tokio::time::sleep(wait) => None,
        }
    }

    /// SIGTERM to the gateway itself; SIGKILL to its whole process group after the timeout.
    async fn terminate(&self, child: &mut Child) {
        self.set_state(InstanceState::Stopping);
        stop_child(child, self.policy.stop_timeout).await;
        let _ = std::fs::remove_file(self.instance.pid_file());
    }
}

/// After the gateway died on its own, its workers may still run in its process group (and
/// hold its locks): end them before a restart.
fn reap_group(pid: u32) {
    #[cfg(unix)]
    super::process::signal_group(pid, libc::SIGKILL);
    #[cfg(not(unix))]
    let _ = pid;
}

pub async fn stop_child(child: &mut Child, timeout: Duration) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        super::process::signal(pid, libc::SIGTERM);
        if tokio::time::timeout(timeout, child.wait()).await.is_err() {
            tracing::warn!(pid, "gateway ignored SIGTERM; killing it");
            super::process::signal_group(pid, libc::SIGKILL);
        }
        // Workers left in the group go too.
        super::process::signal_group(pid, libc::SIGKILL);
    }
    let _ = child.kill().await;
    let _ = child.wait().await;
}

/// A gateway left running by a Clawkeeper that crashed: stop it before starting a new one.
pub async fn stop_orphan(instance: &LocalInstance) -> bool {
    let Some(pid) = read_pid(instance) else {
        return false;
    };
    stop_pid(pid, Duration::from_secs(15)).await;
    let _ = std::fs::remove_file(instance.pid_file());
    true
}

/// The pid in the pid file, if that process is alive and is an OpenClaw gateway.
pub fn read_pid(instance: &LocalInstance) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(instance.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    #[cfg(target_os = "linux")]
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if !verify::contains(&cmdline, b"openclaw") {
            return None;
        }
    }
    #[cfg(unix)]
    if !super::process::alive(pid) {
        return None;
    }
    Some(pid)
}

/// Stop a gateway we are not the parent of (the CLI's `stop`, or an orphan).
pub async fn stop_pid(pid: u32, timeout: Duration) {
    #[cfg(unix)]
    {
        super::process::signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while super::process::alive(pid) && !is_zombie(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        super::process::signal_group(pid, libc::SIGKILL);
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
