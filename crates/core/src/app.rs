//! The facade both faces use: one `Clawkeeper` per process, owning the store, the vault,
//! the local instance's supervisor, the chat connection, and a typed event stream.
//! The person's own servers are in [`server`].

mod detail;
mod openai;
mod reminders;
mod rotation;
mod server;
mod tailnet;
mod tailscale_access;
mod usage;

pub use detail::{HostFacts, StatusDetail, UpdateView};
pub use openai::{OpenAiAdminView, OPENAI_PROJECT};
pub use reminders::{DueKey, Reminder, Reminders};
pub use rotation::{HowToRotate, KeyInfo, RotateResult};
pub use server::{
    server_summary, CloudOptions, Deleted, GrantView, IssuedView, Login, ScannedHost, ServerCheck,
    ServerJob, ServerView,
};
pub use tailnet::{system_tailnet, DeviceView, TailnetView, EMBEDDED_SETTING};
pub use tailscale_access::{long_date, AccessExpiry};
pub use usage::{
    to_csv, CapView, Difference, Format, ProviderUsageView, UsageSummary, UsageView,
    PAUSED_SETTING, SYNC_EVERY,
};

use crate::audit;
use crate::gateway::chat::{self, ChatUpdate, HistoryMessage, RunState, MAIN_SESSION};
use crate::gateway::{self, ClientInfo, Gateway, LinkState};
use crate::local::runtime::{self, Progress};
use crate::local::supervisor::{InstanceState, Policy, Status, Supervisor};
use crate::local::verify::Check;
use crate::local::{LocalInstance, DEFAULT_PORT, LOCAL_ID};
use crate::paths::Paths;
use crate::problem::{Problem, UserFacing};
use crate::secret::Secret;
use crate::store::{DesiredState, InstanceRecord, ProviderKind, ProviderRecord, Store};
use crate::tailnet::path::{Path, SshBecause};
use crate::time::now_rfc3339;
use crate::vault::{KeychainStatus, Vault};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::{broadcast, Mutex};
use tokio_util::sync::CancellationToken;

pub const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";
pub const OPENROUTER_DEFAULT_MODEL: &str = "openrouter/auto";

/// Everything the UI hears about, as one tagged enum (mirrored in `ui/src/api.ts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Instance {
        state: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        problem: Option<Problem>,
    },
    Install {
        state: &'static str,
        #[serde(flatten)]
        progress: Option<Progress>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Problem>,
    },
    Checks {
        checks: Vec<Check>,
    },
    Provider {
        configured: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Problem>,
    },
    Chat(ChatUpdate),
    /// Long work on a server (creating it at the provider, setting it up): the progress bar.
    Server {
        id: String,
        job: ServerJob,
    },
    /// A server's safety checklist was read.
    ServerChecks {
        id: String,
        checks: Vec<ServerCheck>,
        #[serde(rename = "checkedAt")]
        checked_at: String,
    },
    /// A server was deleted or forgotten.
    ServerRemoved {
        id: String,
    },
    /// Chat now goes to another assistant (this computer's, or the server's).
    Assistant(AssistantView),
    /// Usage was brought up to date (or an attempt failed): the tray's spend line.
    Usage(UsageSummary),
    /// Something to tell the person about spend (a level of the cap reached, an unusual
    /// day): the tray daemon shows it as a notification.
    SpendAlert {
        summary: String,
        body: String,
        alert: crate::usage::alerts::Alert,
    },
    /// A key rotation moved on (its journal row: the next step, or how it ended).
    Rotation(crate::rotation::journal::Rotation),
    /// Keys are due for a change (the person's reminder schedule): the tray daemon shows it
    /// as a notification that opens the Keys section.
    RotationReminder(Reminder),
}

/// Which assistant the chat window and the tray talk to, and how the app reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssistantView {
    /// `local` (this computer) | `server` (the person's own server)
    pub place: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// What to call it: "This computer" or the server's name.
    pub name: String,
    /// How the app reaches its gateway: `local` (this computer, over loopback) | `ssh` (a
    /// private SSH tunnel to the server's loopback; nothing listens publicly) | `tailnet`
    /// (over the person's own tailnet).
    pub path: &'static str,
    /// The same in one sentence for people (and why SSH, when the tailnet should be used).
    pub path_note: &'static str,
}

impl AssistantView {
    fn local() -> Self {
        Self {
            place: "local",
            server_id: None,
            name: "This computer".into(),
            path: Path::Local.name(),
            path_note: Path::Local.note(),
        }
    }
}

/// The setting that holds the id of the server chat goes to (absent or empty: this computer).
const ASSISTANT_SETTING: &str = "assistant.server";

/// The chat's connection: to which assistant, the way it goes, and (for a server) the
/// tunnel or tailnet proxy it runs through.
struct ChatLink {
    server: Option<String>,
    path: Path,
    /// The server's tailnet address the proxy dials (tailnet path only).
    address: Option<String>,
    since: std::time::Instant,
    gw: Gateway,
    /// The server's SSH link the tunnel runs over (SSH path only).
    link: Option<crate::server::ServerLink>,
    _tunnel: Option<crate::ssh::Tunnel>,
    _proxy: Option<crate::tailnet::TailnetProxy>,
}

/// After a failed dial over the tailnet, chat stays on SSH this long before the tailnet is
/// tried again.
const TAILNET_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often the app looks whether the way chat goes changed (the tailnet went down or
/// came back), to tell the UI.
const PATH_WATCH_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub restarts: u32,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallView {
    pub state: &'static str,
    #[serde(flatten)]
    pub progress: Option<Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ProviderKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_saved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeychainView {
    pub status: KeychainStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActivityView {
    pub at: String,
    pub action: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub instance: InstanceView,
    pub install: InstallView,
    pub provider: ProviderView,
    pub keychain: KeychainView,
    pub checks: Vec<Check>,
    pub activity: Vec<ActivityView>,
    pub assistant: AssistantView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// What the person entered on the provider screen. The key is dropped (zeroized) as soon
/// as it is in the keychain.
#[derive(Debug, Clone)]
pub struct ProviderInput {
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Secret,
}

struct InstallJob {
    cancel: CancellationToken,
}

struct Inner {
    /// The embedded Tailscale node keeps its identity under the data folder.
    paths: Paths,
    store: Store,
    vault: Vault,
    instance: LocalInstance,
    supervisor: Supervisor,
    events: broadcast::Sender<Event>,
    install: StdMutex<(InstallView, Option<InstallJob>)>,
    chat: Mutex<Option<ChatLink>>,
    notice: Option<String>,
    servers: server::Servers,
    /// The way onto the tailnet from this computer, if any.
    tailnet: StdMutex<Option<Arc<dyn crate::tailnet::Tailnet>>>,
    /// The last [`Event::Assistant`] sent (to send only changes).
    last_view: StdMutex<Option<AssistantView>>,
    /// What the model provider said about spend when last asked.
    provider_usage: StdMutex<Option<ProviderUsageView>>,
    /// "Get a new key from OpenRouter" in the Keys section: the one sign-in begun and not
    /// yet over (see `rotation::begin_provider_key_sign_in`).
    key_sign_in: Mutex<Option<rotation::KeySignIn>>,
}

/// The application core. Cheap to clone.
#[derive(Clone)]
pub struct Clawkeeper {
    inner: Arc<Inner>,
}

fn problem(e: &impl UserFacing) -> Problem {
    e.problem()
}

/// OpenRouter's website, where "Sign in with OpenRouter" goes (a contract fake in tests).
fn openrouter_site() -> String {
    std::env::var("CLAWKEEPER_OPENROUTER_SITE")
        .unwrap_or_else(|_| crate::openrouter::SITE.to_owned())
}

impl Clawkeeper {
    /// Open the data directory, database and keychain and start watching the instance.
    pub async fn open(paths: Paths, policy: Policy) -> Result<Self, Problem> {
        paths.ensure().map_err(|e| {
            Problem::new(
                "io_error",
                format!("Clawkeeper couldn't create its data folder: {e}"),
                Some("Check that your home folder is writable."),
            )
        })?;
        let (store, recovered) = Store::open(&paths.db()).await.map_err(|e| problem(&e))?;
        let notice = recovered.map(|r| {
            format!(
                "Clawkeeper's settings file was damaged, so it started a fresh one. The old file was kept at {}. Your keys are safe in your keychain.",
                r.moved_to.display()
            )
        });
        if let Some(n) = &notice {
            let _ = audit::append(&store, None, "store.recovered", n).await;
        }
        let _ = store.fail_abandoned_jobs().await;
        let port = match store.instance(LOCAL_ID).await.map_err(|e| problem(&e))? {
            Some(rec) => rec.port,
            None => std::env::var("CLAWKEEPER_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(DEFAULT_PORT),
        };
        store
            .upsert_instance(&InstanceRecord {
                id: LOCAL_ID.into(),
                name: "This computer".into(),
                target: "local".into(),
                port,
                desired_state: DesiredState::Stopped,
                openclaw_version: runtime::OPENCLAW_VERSION.into(),
                created_at: String::new(),
            })
            .await
            .map_err(|e| problem(&e))?;
        let vault = Vault::open_default();
        let instance = LocalInstance::new(&paths, &vault, port);
        let supervisor = Supervisor::spawn(instance.clone(), store.clone(), policy);
        let (events, _) = broadcast::channel(1024);
        let install_state = if instance.runtime().is_installed() {
            "ready"
        } else {
            "missing"
        };
        let app = Self {
            inner: Arc::new(Inner {
                paths: paths.clone(),
                store,
                vault,
                instance,
                supervisor,
                events,
                install: StdMutex::new((
                    InstallView {
                        state: install_state,
                        progress: None,
                        error: None,
                    },
                    None,
                )),
                chat: Mutex::new(None),
                notice,
                servers: server::Servers::default(),
                tailnet: StdMutex::new(tailnet::system_tailnet()),
                last_view: StdMutex::new(None),
                provider_usage: StdMutex::new(None),
                key_sign_in: Mutex::new(None),
            }),
        };
        app.forward_status();
        app.watch_path(PATH_WATCH_EVERY);
        app.watch_system_tailnet();
        Ok(app)
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub fn instance(&self) -> &LocalInstance {
        &self.inner.instance
    }

    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn status(&self) -> tokio::sync::watch::Receiver<Status> {
        self.inner.supervisor.status()
    }

    fn emit(&self, e: Event) {
        let _ = self.inner.events.send(e);
    }

    /// Turn supervisor status changes into events (and audit rows for state changes).
    fn forward_status(&self) {
        let app = self.clone();
        let mut rx = self.inner.supervisor.status();
        tokio::spawn(async move {
            // The state at open is not news: only changes are audited and sent.
            let mut last_state = rx.borrow_and_update().state.name().to_owned();
            let mut last_checks = Vec::new();
            loop {
                let s = rx.borrow_and_update().clone();
                let name = s.state.name();
                if name != last_state {
                    let (detail, problem) = state_detail(&s.state);
                    let _ = audit::append(
                        &app.inner.store,
                        Some(LOCAL_ID),
                        &format!("instance.{name}"),
                        detail.as_deref().unwrap_or(""),
                    )
                    .await;
                    app.emit(Event::Instance {
                        state: name,
                        detail,
                        problem,
                    });
                    last_state = name.to_owned();
                }
                if s.checks != last_checks {
                    app.emit(Event::Checks {
                        checks: s.checks.clone(),
                    });
                    last_checks = s.checks.clone();
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    pub async fn keychain_status(&self) -> KeychainStatus {
        self.inner.vault.status().await
    }

    pub async fn overview(&self) -> Result<Overview, Problem> {
        let status = self.inner.supervisor.status().borrow().clone();
        let (detail, state_problem) = state_detail(&status.state);
        let (version, since) = match &status.state {
            InstanceState::Healthy { version, since } => (version.clone(), Some(since.clone())),
            _ => (None, None),
        };
        let provider = self
            .inner
            .store
            .provider(LOCAL_ID)
            .await
            .map_err(|e| problem(&e))?;
        let keychain = self.keychain_status().await;
        let hint = match keychain {
            KeychainStatus::Ok => None,
            KeychainStatus::Locked => crate::vault::Error::Locked.hint().map(str::to_owned),
            KeychainStatus::Unavailable => crate::vault::Error::Unavailable(String::new())
                .hint()
                .map(str::to_owned),
        };
        let activity = audit::recent(&self.inner.store, 12)
            .await
            .map_err(|e| problem(&e))?
            .into_iter()
            .map(|a| ActivityView {
                at: a.at,
                action: describe_action(&a.action),
                detail: a.detail,
            })
            .collect();
        let install = self
            .inner
            .install
            .lock()
            .map(|g| g.0.clone())
            .unwrap_or(InstallView {
                state: "missing",
                progress: None,
                error: None,
            });
        Ok(Overview {
            instance: InstanceView {
                state: status.state.name(),
                detail,
                problem: state_problem,
                version: version.or_else(|| Some(runtime::OPENCLAW_VERSION.to_owned())),
                since,
                restarts: status.restarts,
                port: self.inner.instance.port,
            },
            install,
            provider: match provider {
                Some(p) => ProviderView {
                    configured: true,
                    kind: Some(p.kind),
                    base_url: Some(p.base_url),
                    model: Some(p.model),
                    key_saved_at: Some(p.key_saved_at),
                    key_fingerprint: Some(p.key_fingerprint),
                },
                None => ProviderView {
                    configured: false,
                    kind: None,
                    base_url: None,
                    model: None,
                    key_saved_at: None,
                    key_fingerprint: None,
                },
            },
            keychain: KeychainView {
                status: keychain,
                hint,
            },
            checks: status.checks,
            activity,
            assistant: self.assistant().await,
            notice: self.inner.notice.clone(),
        })
    }

    /// Save the model provider: key to the keychain, settings to the store. Restarts a
    /// running instance so the gateway picks the new key up.
    pub async fn save_provider(&self, input: ProviderInput) -> Result<(), Problem> {
        if input.api_key.expose().trim().is_empty() {
            return Err(Problem::new(
                "provider_key_empty",
                "The API key is empty.",
                Some("Paste the key from your provider's website."),
            ));
        }
        let (base_url, model) = match input.kind {
            ProviderKind::Openrouter => (
                input
                    .base_url
                    .filter(|u| !u.trim().is_empty())
                    .unwrap_or_else(|| OPENROUTER_BASE_URL.into()),
                input
                    .model
                    .filter(|m| !m.trim().is_empty())
                    .unwrap_or_else(|| OPENROUTER_DEFAULT_MODEL.into()),
            ),
            ProviderKind::OpenaiCompatible => {
                let url = input.base_url.unwrap_or_default();
                let url = url.trim().trim_end_matches('/').to_owned();
                if !provider_url_ok(&url) {
                    return Err(Problem::new(
                        "provider_url",
                        "That address doesn't look right.",
                        Some("Use the https:// address from your provider's documentation (for example https://api.openai.com/v1). Plain http:// works only for a model server on this computer or your home network."),
                    ));
                }
                let model = input
                    .model
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        Problem::new(
                            "provider_model",
                            "Choose a model.",
                            Some(
                                "Type the model name from your provider (for example gpt-4o-mini).",
                            ),
                        )
                    })?;
                (url, model)
            }
        };
        let key = Secret::new(input.api_key.expose().trim());
        let key_ref = self.inner.instance.provider_key_ref();
        let before = self
            .inner
            .store
            .provider(LOCAL_ID)
            .await
            .ok()
            .flatten()
            .map(|p| p.key_fingerprint);
        self.inner
            .vault
            .store(&key_ref, &key)
            .await
            .map_err(|e| problem(&e))?;
        let fingerprint = key.fingerprint();
        self.inner
            .store
            .save_provider(&ProviderRecord {
                instance_id: LOCAL_ID.into(),
                kind: input.kind.clone(),
                base_url: base_url.clone(),
                model: model.clone(),
                key_ref: key_ref.to_string(),
                key_fingerprint: fingerprint.clone(),
                key_saved_at: now_rfc3339(),
            })
            .await
            .map_err(|e| problem(&e))?;
        // Its age (the Keys section, the rotation reminders): a different key than before
        // is a change, the same one saved again is not.
        if before.as_deref() != Some(fingerprint.as_str()) {
            let _ = crate::rotation::journal::note_set(
                &self.inner.store,
                LOCAL_ID,
                crate::rotation::KeyId::ProviderKey,
                Some(&fingerprint),
                before.is_some(),
            )
            .await;
        }
        let _ = audit::append(
            &self.inner.store,
            Some(LOCAL_ID),
            "provider.saved",
            &format!("{} {model} key {fingerprint}", input.kind.as_str()),
        )
        .await;
        self.emit(Event::Provider {
            configured: true,
            error: None,
        });
        let running = matches!(
            self.inner.supervisor.status().borrow().state,
            InstanceState::Healthy { .. }
                | InstanceState::Degraded { .. }
                | InstanceState::Starting { .. }
        );
        if running {
            self.inner.supervisor.stop().await;
            self.inner.supervisor.start().await;
        }
        Ok(())
    }

    /// Begin "Sign in with OpenRouter": returns the page to open in the browser. When the
    /// browser comes back, the key is saved like a pasted one and a `provider` event says so.
    pub async fn start_openrouter_sign_in(&self) -> Result<String, Problem> {
        let signin = crate::openrouter::SignIn::begin(&openrouter_site())
            .await
            .map_err(|e| problem(&e))?;
        let url = signin.url();
        let app = self.clone();
        tokio::spawn(async move {
            let outcome = match signin.finish(Duration::from_secs(600)).await {
                Ok(key) => {
                    app.save_provider(ProviderInput {
                        kind: ProviderKind::Openrouter,
                        base_url: None,
                        model: None,
                        api_key: key,
                    })
                    .await
                }
                Err(e) => Err(problem(&e)),
            };
            if let Err(p) = outcome {
                app.emit(Event::Provider {
                    configured: false,
                    error: Some(p),
                });
            }
        });
        Ok(url)
    }

    /// Download and install the runtime (a job: progress events, cancel, retry).
    pub async fn install_runtime(&self) -> Result<(), Problem> {
        let cancel = CancellationToken::new();
        let already_running = {
            let mut g = self
                .inner
                .install
                .lock()
                .map_err(|_| Problem::new("internal", "Internal error.", None))?;
            let running = g.1.is_some();
            if !running {
                g.1 = Some(InstallJob {
                    cancel: cancel.clone(),
                });
                g.0 = InstallView {
                    state: "installing",
                    progress: None,
                    error: None,
                };
            }
            running
        };
        if already_running {
            return self.wait_for_running_install().await;
        }
        self.emit(Event::Install {
            state: "installing",
            progress: None,
            error: None,
        });
        let store = &self.inner.store;
        let job = store
            .create_job("install", Some(LOCAL_ID), 100)
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(
            store,
            Some(LOCAL_ID),
            "runtime.install",
            &format!(
                "openclaw {} with node {}",
                runtime::OPENCLAW_VERSION,
                runtime::NODE_VERSION
            ),
        )
        .await;
        let app = self.clone();
        let seen_steps: StdMutex<HashSet<String>> = StdMutex::new(HashSet::new());
        let (step_tx, mut step_rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let on_progress = move |p: Progress| {
            if let Ok(mut g) = app.inner.install.lock() {
                g.0.progress = Some(p.clone());
            }
            let new_step = seen_steps
                .lock()
                .map(|mut s| s.insert(p.step.clone()))
                .unwrap_or(false);
            if new_step {
                let _ = step_tx.send(p.clone());
            }
            app.emit(Event::Install {
                state: "installing",
                progress: Some(p),
                error: None,
            });
        };
        let steps_store = store.clone();
        let steps_job = job.clone();
        let step_writer = tokio::spawn(async move {
            let mut seq = 0;
            while let Some(p) = step_rx.recv().await {
                seq += 1;
                let pct = i64::try_from(p.done.saturating_mul(100) / p.total.max(1)).unwrap_or(0);
                let _ = steps_store
                    .job_step(&steps_job, seq, &p.step, pct, 100)
                    .await;
            }
        });
        let result = self
            .inner
            .instance
            .runtime()
            .install(&on_progress, &cancel)
            .await;
        drop(on_progress);
        let _ = step_writer.await;
        let outcome = match &result {
            Ok(()) => {
                let _ = store.finish_job(&job, "succeeded", None).await;
                InstallView {
                    state: "ready",
                    progress: None,
                    error: None,
                }
            }
            Err(runtime::Error::Cancelled) => {
                let _ = store.finish_job(&job, "cancelled", None).await;
                InstallView {
                    state: "missing",
                    progress: None,
                    error: Some(problem(&runtime::Error::Cancelled)),
                }
            }
            Err(e) => {
                let p = problem(e);
                let _ = store
                    .finish_job(&job, "failed", Some((&p.code, &p.message)))
                    .await;
                InstallView {
                    state: "missing",
                    progress: None,
                    error: Some(p),
                }
            }
        };
        if let Ok(mut g) = self.inner.install.lock() {
            g.0 = outcome.clone();
            g.1 = None;
        }
        self.emit(Event::Install {
            state: outcome.state,
            progress: None,
            error: outcome.error.clone(),
        });
        match result {
            Ok(()) => {
                let _ = audit::append(
                    store,
                    Some(LOCAL_ID),
                    "runtime.installed",
                    runtime::OPENCLAW_VERSION,
                )
                .await;
                Ok(())
            }
            Err(e) => Err(problem(&e)),
        }
    }

    /// A second caller (a double click, or Start during the first-run install) waits for
    /// the install already under way and shares its outcome.
    async fn wait_for_running_install(&self) -> Result<(), Problem> {
        loop {
            let view = self
                .inner
                .install
                .lock()
                .map(|g| (g.1.is_some(), g.0.clone()))
                .map_err(|_| ());
            match view {
                Ok((true, _)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok((false, v)) => {
                    return match v.error {
                        Some(p) if !self.inner.instance.runtime().is_installed() => Err(p),
                        _ => Ok(()),
                    }
                }
                Err(_) => return Err(Problem::new("internal", "Internal error.", None)),
            }
        }
    }

    pub fn cancel_install(&self) {
        if let Ok(g) = self.inner.install.lock() {
            if let Some(job) = &g.1 {
                job.cancel.cancel();
            }
        }
    }

    /// Start the instance (the kill switch's "on"). Installs the runtime first if needed.
    pub async fn start(&self) -> Result<(), Problem> {
        if self
            .inner
            .store
            .provider(LOCAL_ID)
            .await
            .map_err(|e| problem(&e))?
            .is_none()
        {
            return Err(Problem::new(
                "provider_missing",
                "Your assistant needs a model provider first.",
                Some("Open Setup and add your API key."),
            ));
        }
        if !self.inner.instance.runtime().is_installed() {
            self.install_runtime().await?;
        }
        self.inner
            .store
            .set_desired_state(LOCAL_ID, DesiredState::Running)
            .await
            .map_err(|e| problem(&e))?;
        // Starting it is the person's choice: a pause at the spend cap ends here.
        if let Ok(Some(_)) = self.inner.store.setting(PAUSED_SETTING).await {
            let _ = self.inner.store.delete_setting(PAUSED_SETTING).await;
            let _ = audit::append(
                &self.inner.store,
                Some(LOCAL_ID),
                "spend.resumed",
                "started",
            )
            .await;
        }
        let _ = audit::append(
            &self.inner.store,
            Some(LOCAL_ID),
            "instance.start",
            "requested",
        )
        .await;
        self.inner.supervisor.start().await;
        Ok(())
    }

    /// Stop the instance (the kill switch). Waits until the gateway has exited.
    pub async fn stop(&self) -> Result<(), Problem> {
        self.inner
            .store
            .set_desired_state(LOCAL_ID, DesiredState::Stopped)
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(
            &self.inner.store,
            Some(LOCAL_ID),
            "instance.stop",
            "requested",
        )
        .await;
        {
            let mut chat = self.inner.chat.lock().await;
            if chat.as_ref().is_some_and(|c| c.server.is_none()) {
                if let Some(c) = chat.take() {
                    c.gw.shutdown();
                }
            }
        }
        self.inner.supervisor.stop().await;
        // A gateway started by another Clawkeeper process (the CLI, or a crashed app).
        crate::local::supervisor::stop_orphan(&self.inner.instance).await;
        Ok(())
    }

    /// Wait until the instance's state satisfies `pred` (or `timeout`); returns the last state.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        pred: impl Fn(&InstanceState) -> bool,
    ) -> InstanceState {
        self.inner.supervisor.wait_for(timeout, pred).await.state
    }

    /// Wait until the instance is healthy, or say why not.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), Problem> {
        let s = self
            .inner
            .supervisor
            .wait_for(timeout, |s| {
                matches!(
                    s,
                    InstanceState::Healthy { .. }
                        | InstanceState::Error { .. }
                        | InstanceState::NotInstalled
                        | InstanceState::Stopped
                )
            })
            .await;
        match s.state {
            InstanceState::Healthy { .. } => Ok(()),
            InstanceState::Error { problem } => Err(problem),
            other => Err(Problem::new(
                "not_running",
                format!("Your assistant is {}.", other.name().replace('_', " ")),
                Some("Press Start."),
            )),
        }
    }

    /// The chat connection, created on first use; chat events are forwarded as [`Event::Chat`].
    /// The id of the server chat goes to, if the person uses one (and it still exists).
    async fn assistant_server(&self) -> Option<String> {
        let id = self
            .inner
            .store
            .setting(ASSISTANT_SETTING)
            .await
            .ok()
            .flatten()
            .filter(|id| !id.is_empty())?;
        crate::ssh::hosts::get(&self.inner.store, &id)
            .await
            .ok()
            .flatten()
            .map(|_| id)
    }

    /// Which assistant chat goes to now.
    pub async fn assistant(&self) -> AssistantView {
        let Some(id) = self.assistant_server().await else {
            return AssistantView::local();
        };
        let name = self
            .inner
            .store
            .instance(&id)
            .await
            .ok()
            .flatten()
            .map_or_else(|| "Your server".to_owned(), |i| i.name);
        let (mut path, _) = self.planned_path(&id).await;
        // A tailnet that is up but could not reach the server: chat is on SSH meanwhile.
        // (Not waiting for a connection being made: that one says its way when it's done.)
        if path == Path::Tailnet {
            if let Some(c) = self
                .inner
                .chat
                .try_lock()
                .ok()
                .as_ref()
                .and_then(|g| g.as_ref())
            {
                if c.server.as_deref() == Some(id.as_str())
                    && c.path == Path::Ssh(SshBecause::Unreachable)
                {
                    path = c.path;
                }
            }
        }
        AssistantView {
            place: "server",
            server_id: Some(id),
            name,
            path: path.name(),
            path_note: path.note(),
        }
    }

    /// Chat with the assistant on server `id` (set up and checked), or on this computer
    /// (`None`). The chat's connection is rebuilt on the next message.
    pub async fn use_assistant(&self, server: Option<&str>) -> Result<AssistantView, Problem> {
        if let Some(id) = server {
            let set_up = self
                .inner
                .store
                .latest_job_for(crate::provision::JOB_KIND, id)
                .await
                .map_err(|e| problem(&e))?
                .is_some_and(|j| j.state == "succeeded");
            if !set_up {
                return Err(Problem::new(
                    "server_not_set_up",
                    "The assistant on this server isn't set up yet.",
                    Some("Finish setting up the server first; then chat can use it."),
                ));
            }
        }
        self.inner
            .store
            .set_setting(ASSISTANT_SETTING, server.unwrap_or(""))
            .await
            .map_err(|e| problem(&e))?;
        if let Some(c) = self.inner.chat.lock().await.take() {
            c.gw.shutdown();
        }
        let view = self.assistant().await;
        let _ = audit::append(
            &self.inner.store,
            server.or(Some(LOCAL_ID)),
            "assistant.chosen",
            &format!("Chat goes to: {} ({})", view.name, view.path),
        )
        .await;
        if let Ok(mut last) = self.inner.last_view.lock() {
            *last = Some(view.clone());
        }
        self.emit(Event::Assistant(view.clone()));
        Ok(view)
    }

    /// The chat's gateway client: to this computer's gateway over loopback, or to the
    /// server's over the person's tailnet when it is up and the server is on it, else
    /// through a private SSH tunnel (the same client and protocol either way). When the way
    /// changes, [`Event::Assistant`] says so.
    async fn gateway(&self) -> Result<Gateway, Problem> {
        let server = self.assistant_server().await;
        let planned = match &server {
            Some(id) => Some(self.planned_path(id).await),
            None => None,
        };
        let mut guard = self.inner.chat.lock().await;
        if let Some(c) = guard.as_ref() {
            // Over the tailnet, a client whose last attempt failed is rebuilt: the first dial
            // is tried again, and chat falls back to SSH when it fails.
            let failing = matches!(*c.gw.state().borrow(), LinkState::Retrying { .. });
            let same_way = match (&planned, c.path) {
                (None, _) => true,
                (Some((Path::Tailnet, a)), Path::Tailnet) => *a == c.address && !failing,
                // The tailnet could not reach the server: stay on SSH for a while.
                (Some((Path::Tailnet, _)), Path::Ssh(SshBecause::Unreachable)) => {
                    c.since.elapsed() < TAILNET_RETRY_AFTER
                }
                (Some((Path::Ssh(_), _)), Path::Ssh(_)) => true,
                _ => false,
            };
            if c.server == server
                && same_way
                && !matches!(*c.gw.state().borrow(), LinkState::Closed)
            {
                return Ok(c.gw.clone());
            }
        }
        if let Some(old) = guard.take() {
            old.gw.shutdown();
        }
        let mut proxy = None;
        let mut path = Path::Local;
        let mut via_address = None;
        let mut ssh_link = None;
        let (gw, tunnel) = match &server {
            None => {
                let token = crate::rotation::token_source(
                    self.inner.vault.clone(),
                    self.inner.instance.token_ref(),
                );
                let gw = Gateway::spawn(self.inner.instance.url(), token, ClientInfo::default());
                (gw, None)
            }
            Some(id) => {
                let (planned_path, address) =
                    planned.unwrap_or((Path::Ssh(SshBecause::NoTailnet), None));
                path = planned_path;
                let mut over_tailnet = None;
                if let (Path::Tailnet, Some(address)) = (planned_path, address) {
                    match self.tailnet_gateway(id, &address).await {
                        Ok(ok) => {
                            over_tailnet = Some(ok);
                            via_address = Some(address);
                        }
                        Err(reason) => {
                            tracing::warn!(%reason, "the server is not reachable over the tailnet; using SSH");
                            path = Path::Ssh(SshBecause::Unreachable);
                        }
                    }
                }
                match over_tailnet {
                    Some((gw, p)) => {
                        proxy = Some(p);
                        (gw, None)
                    }
                    None => {
                        let link = crate::server::ServerLink::new(
                            self.inner.store.clone(),
                            self.inner.vault.clone(),
                            id,
                        );
                        let tunnel = link.gateway_tunnel().await.map_err(|e| problem(&e))?;
                        let gw = link.gateway(&tunnel);
                        ssh_link = Some(link);
                        (gw, Some(tunnel))
                    }
                }
            }
        };
        let mut rx = gw.events();
        let app = self.clone();
        tokio::spawn(async move {
            let mut finished: HashSet<String> = HashSet::new();
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.event == "chat" => {
                        let Some(update) = chat::parse_chat_event(&ev.payload) else {
                            continue;
                        };
                        // The gateway may send a second terminal event for a run: keep the first.
                        if finished.contains(&update.run_id) {
                            continue;
                        }
                        if update.state.is_terminal() {
                            finished.insert(update.run_id.clone());
                        }
                        if update.state != RunState::Status {
                            app.emit(Event::Chat(update));
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let view = server.as_ref().map(|id| (id.clone(), path));
        *guard = Some(ChatLink {
            server,
            path,
            address: via_address,
            since: std::time::Instant::now(),
            gw: gw.clone(),
            link: ssh_link,
            _tunnel: tunnel,
            _proxy: proxy,
        });
        drop(guard);
        if let Some((id, path)) = view {
            let name = self
                .inner
                .store
                .instance(&id)
                .await
                .ok()
                .flatten()
                .map_or_else(|| "Your server".to_owned(), |i| i.name);
            self.note_path(AssistantView {
                place: "server",
                server_id: Some(id),
                name,
                path: path.name(),
                path_note: path.note(),
            });
        }
        Ok(gw)
    }

    /// A gateway of this instance run by another Clawkeeper process (e.g. `clawkeeper-cli start`).
    pub fn external_pid(&self) -> Option<u32> {
        match self.inner.supervisor.status().borrow().pid {
            Some(_) => None,
            None => crate::local::supervisor::read_pid(&self.inner.instance),
        }
    }

    /// Connect with the real token and ask `health`: is the gateway answering right now?
    pub async fn probe(&self) -> Result<Option<String>, Problem> {
        let token = self
            .inner
            .vault
            .read(&self.inner.instance.token_ref())
            .await
            .map_err(|e| problem(&e))?;
        let mut conn =
            gateway::connect_once(&self.inner.instance.url(), &token, &ClientInfo::default())
                .await
                .map_err(|e| problem(&e))?;
        let res = conn
            .request("health", serde_json::json!({}), Duration::from_secs(10))
            .await;
        let version = conn.hello.server_version.clone();
        conn.close().await;
        res.map_err(|e| problem(&e))?;
        Ok(version)
    }

    /// Run the host checks against a gateway started by another Clawkeeper process.
    pub async fn verify_external(&self) -> Option<Vec<Check>> {
        let pid = self.external_pid()?;
        let vault = &self.inner.vault;
        let token = vault.read(&self.inner.instance.token_ref()).await.ok()?;
        let key = vault
            .read(&self.inner.instance.provider_key_ref())
            .await
            .ok();
        let mut secrets = vec![&token];
        if let Some(k) = key.as_ref() {
            secrets.push(k);
        }
        Some(crate::local::verify::run(&self.inner.instance, pid, &secrets).await)
    }

    async fn require_running(&self) -> Result<(), Problem> {
        if self.assistant_server().await.is_some() {
            // The server's gateway: reaching it is the check (its errors say what's wrong).
            return Ok(());
        }
        if self.external_pid().is_some() {
            return Ok(());
        }
        match self.inner.supervisor.status().borrow().state {
            InstanceState::Healthy { .. } | InstanceState::Degraded { .. } => Ok(()),
            _ => Err(Problem::new(
                "not_running",
                "Your assistant isn't running.",
                Some("Press Start, wait until it says Working, then send again."),
            )),
        }
    }

    pub async fn chat_send(&self, message: &str) -> Result<String, Problem> {
        if message.trim().is_empty() {
            return Err(Problem::new("empty_message", "The message is empty.", None));
        }
        self.require_running().await?;
        let gw = self.gateway().await?;
        gw.chat_send(MAIN_SESSION, message)
            .await
            .map_err(|e| problem(&e))
    }

    pub async fn chat_history(&self) -> Result<Vec<HistoryMessage>, Problem> {
        self.require_running().await?;
        let gw = self.gateway().await?;
        gw.chat_history(MAIN_SESSION, 200)
            .await
            .map_err(|e| problem(&e))
    }

    pub async fn chat_abort(&self, run_id: &str) -> Result<(), Problem> {
        let gw = self.gateway().await?;
        gw.chat_abort(MAIN_SESSION, run_id)
            .await
            .map_err(|e| problem(&e))
    }

    /// Send a message and wait for the final reply (the CLI's `chat`).
    pub async fn chat_round_trip(
        &self,
        message: &str,
        timeout: Duration,
    ) -> Result<String, Problem> {
        let mut rx = self.events();
        let run_id = self.chat_send(message).await?;
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(Event::Chat(u)) if u.run_id == run_id => {
                        if let Some(outcome) = u.outcome() {
                            return outcome;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Problem::new(
                            "internal",
                            "Clawkeeper is shutting down.",
                            None,
                        ))
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Problem::new(
                "chat_timeout",
                "The assistant took too long to answer.",
                Some("Try again; the first reply after a start can take a while."),
            )
        })?
    }

    /// Stop everything this process runs (on Quit).
    pub async fn shutdown(&self) {
        if let Some(c) = self.inner.chat.lock().await.take() {
            c.gw.shutdown();
        }
        self.inner.supervisor.stop().await;
        self.inner.store.close().await;
    }
}

/// https anywhere; plain http only where the key never crosses the internet: this
/// computer, or a private network address (a model server at home, e.g. Ollama on a LAN).
fn provider_url_ok(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    match (u.scheme(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(d))) => d == "localhost",
        ("http", Some(url::Host::Ipv4(ip))) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local()
        }
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback() || ip.is_unique_local(),
        _ => false,
    }
}

fn state_detail(s: &InstanceState) -> (Option<String>, Option<Problem>) {
    match s {
        InstanceState::Starting { detail } | InstanceState::Degraded { detail } => {
            (Some(detail.clone()), None)
        }
        InstanceState::Error { problem } => (Some(problem.message.clone()), Some(problem.clone())),
        _ => (None, None),
    }
}

fn describe_action(action: &str) -> String {
    match action {
        "instance.start" => "You started your assistant",
        "instance.stop" => "You stopped your assistant",
        "instance.healthy" => "Your assistant is working",
        "instance.starting" => "Your assistant is starting",
        "instance.degraded" => "Your assistant needs attention",
        "instance.stopped" => "Your assistant stopped",
        "instance.stopping" => "Your assistant is stopping",
        "instance.error" => "Your assistant hit a problem",
        "instance.not_installed" => "The assistant's software isn't installed",
        "provider.saved" => "API key saved in your keychain",
        "runtime.install" => "Downloading the assistant's software",
        "runtime.installed" => "The assistant's software was installed",
        "store.recovered" => "Settings file was repaired",
        other => other,
    }
    .to_owned()
}

#[cfg(test)]
mod url_tests {
    use super::provider_url_ok;

    #[test]
    fn plain_http_only_to_this_computer_or_a_private_network() {
        for ok in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:11434/v1",
            "http://localhost:8080/v1",
            "http://[::1]:9/v1",
            "http://192.168.1.20:11434/v1",
            "http://10.0.0.5/v1",
        ] {
            assert!(provider_url_ok(ok), "{ok}");
        }
        for bad in [
            "http://api.openai.com/v1",
            "http://8.8.8.8/v1",
            "ftp://x/v1",
            "not a url",
            "http://localhost.evil.example/v1",
        ] {
            assert!(!provider_url_ok(bad), "{bad}");
        }
    }
}
