//! The local IPC between the tray daemon (`clawkeeper`, owns [`Clawkeeper`]) and the window
//! process (`clawkeeper-window`, the webviews): newline-delimited JSON over a Unix domain
//! socket in `$XDG_RUNTIME_DIR/clawkeeper/<namespace>.sock` (dir 0700, socket 0600; peers
//! with another uid are refused through `SO_PEERCRED`).
//!
//! - request `{"id":1,"method":"get_overview","params":{…}}`
//! - answer  `{"id":1,"ok":true,"result":…}` or `{"id":1,"ok":false,"error":{code,message,hint}}`
//! - pushed  `{"event":<Event>}` to connections that called `subscribe`, and
//!   `{"open":"chat"}` to the connection that registered as the window host.
//!
//! The API key of `save_provider` crosses this socket only; it is read into a [`Secret`]
//! on both ends and never logged.
//!
//! [`Clawkeeper`]: crate::app::Clawkeeper

use crate::app::{Clawkeeper, Login, ProviderInput};
use crate::store::ProviderKind;
use crate::{Problem, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Longest accepted line (a chat message is the largest request).
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Where the daemon listens for this keychain namespace (so tests and dev builds never
/// reach a real user's daemon).
pub fn socket_path(data_dir: &Path) -> PathBuf {
    let name = format!("{}.sock", crate::vault::default_namespace());
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("clawkeeper").join(name),
        None => data_dir.join("run").join(name),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// What the server pushes without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Event(Value),
    Open(String),
}

fn problem(code: &str, message: &str) -> Problem {
    Problem::new(code, message, None)
}

fn ipc_down() -> Problem {
    Problem::new(
        "ipc_closed",
        "Clawkeeper's background part is not answering.",
        Some("Start Clawkeeper again."),
    )
}

pub type Reply = Pin<Box<dyn Future<Output = Result<Value, Problem>> + Send>>;

/// What serves requests: the daemon's methods, then the core's ([`dispatch`]).
pub trait Handler: Send + Sync + 'static {
    /// `conn` identifies the connection (for `subscribe`/window registration).
    fn call(&self, conn: &Conn, method: String, params: Value) -> Reply;
}

/// One accepted connection, as the handler sees it: it can push frames to the peer.
#[derive(Clone)]
pub struct Conn {
    pub id: u64,
    tx: mpsc::UnboundedSender<String>,
}

impl Conn {
    /// Push an event (already serialized `Event`) to this peer. False when it is gone.
    pub fn push_event(&self, event: &Value) -> bool {
        self.tx.send(json!({ "event": event }).to_string()).is_ok()
    }

    pub fn push_open(&self, window: &str) -> bool {
        self.tx.send(json!({ "open": window }).to_string()).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Bind the socket: a private dir (0700), the socket 0600. A stale socket (nothing
/// answers) is replaced; a live one is an error (`AddrInUse`): another daemon runs.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        crate::paths::create_private_dir(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another Clawkeeper is running",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    crate::paths::set_mode(path, 0o600)?;
    Ok(listener)
}

/// Accept connections until the listener fails; each connection is served on its own task.
/// Peers whose uid is not the socket owner's are closed at once.
pub async fn serve(listener: UnixListener, path: PathBuf, handler: Arc<dyn Handler>) {
    let own_uid = std::fs::metadata(&path).map(|m| m.uid()).ok();
    serve_with_uid(listener, own_uid, handler).await;
}

async fn serve_with_uid(listener: UnixListener, own_uid: Option<u32>, handler: Arc<dyn Handler>) {
    let next = AtomicU64::new(1);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ipc accept failed");
                continue;
            }
        };
        let peer = stream.peer_cred().ok().map(|c| c.uid());
        if own_uid.is_none() || peer != own_uid {
            tracing::warn!(peer_uid = ?peer, "ipc: refused a peer with another uid");
            drop(stream);
            continue;
        }
        let id = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve_conn(stream, id, handler.clone()));
    }
}

async fn serve_conn(stream: UnixStream, id: u64, handler: Arc<dyn Handler>) {
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(write_lines(write, rx));
    let conn = Conn { id, tx };
    let mut lines = BufReader::new(read);
    let mut buf = String::new();
    loop {
        buf.clear();
        match (&mut lines).take(MAX_LINE as u64).read_line(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = buf.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Request>(line);
        let bad_id = parsed.is_err().then(|| {
            serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_u64))
                .unwrap_or(0)
        });
        // The line may hold an API key: clear it before going on, readable or not.
        zeroize::Zeroize::zeroize(&mut buf);
        let req = match (parsed, bad_id) {
            (Ok(r), _) => r,
            (Err(_), id) => {
                let _ = conn.tx.send(answer(
                    id.unwrap_or(0),
                    Err(problem(
                        "ipc_bad_request",
                        "That request could not be read.",
                    )),
                ));
                continue;
            }
        };
        let fut = handler.call(&conn, req.method, req.params);
        let tx = conn.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(answer(req.id, fut.await));
        });
    }
    drop(conn);
    let _ = writer.await;
}

fn answer(id: u64, r: Result<Value, Problem>) -> String {
    let resp = match r {
        Ok(v) => Response {
            id,
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(p) => Response {
            id,
            ok: false,
            result: None,
            error: Some(p),
        },
    };
    serde_json::to_string(&resp).unwrap_or_default()
}

async fn write_lines(mut w: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        let failed = w.write_all(line.as_bytes()).await.is_err();
        // A line may hold an API key.
        zeroize::Zeroize::zeroize(&mut line);
        if failed {
            break;
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveProviderParams {
    kind: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(deserialize_with = "secret_from_str")]
    api_key: Secret,
}

fn secret_from_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

fn opt_secret_from_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.filter(|s| !s.is_empty()).map(Secret::new))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerIdParams {
    id: String,
}

/// `server_connect`: the key file's text (and passphrase) or a one-time password arrive
/// as secrets, written into the request line by [`Client::call_with_secrets`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerConnectParams {
    host: String,
    #[serde(default = "ssh_port")]
    port: u16,
    user: String,
    #[serde(default)]
    name: String,
    confirmed_fingerprint: String,
    #[serde(default, deserialize_with = "opt_secret_from_str")]
    key_text: Option<Secret>,
    #[serde(default, deserialize_with = "opt_secret_from_str")]
    passphrase: Option<Secret>,
    #[serde(default, deserialize_with = "opt_secret_from_str")]
    password: Option<Secret>,
}

fn ssh_port() -> u16 {
    22
}

fn params<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, Problem> {
    serde_json::from_value(v)
        .map_err(|_| problem("ipc_bad_params", "A request had wrong arguments."))
}

fn to_value<T: Serialize>(v: T) -> Result<Value, Problem> {
    serde_json::to_value(v).map_err(|_| problem("ipc_encode", "An answer could not be encoded."))
}

/// The core's methods, named as the UI's commands (`ui/src/api.ts`).
pub async fn dispatch(core: &Clawkeeper, method: &str, p: Value) -> Result<Value, Problem> {
    match method {
        "get_overview" => to_value(core.overview().await?),
        "install_runtime" => to_value(core.install_runtime().await?),
        "cancel_install" => {
            core.cancel_install();
            Ok(Value::Null)
        }
        "start_instance" => to_value(core.start().await?),
        "stop_instance" => to_value(core.stop().await?),
        "save_provider" => {
            let sp: SaveProviderParams = params(p)?;
            let api_key = sp.api_key;
            let kind = ProviderKind::parse(&sp.kind).ok_or_else(|| {
                Problem::new(
                    "provider_kind",
                    "Choose a model provider.",
                    Some("Pick one of the choices."),
                )
            })?;
            to_value(
                core.save_provider(ProviderInput {
                    kind,
                    base_url: sp.base_url,
                    model: sp.model,
                    api_key,
                })
                .await?,
            )
        }
        "start_openrouter_sign_in" => to_value(core.start_openrouter_sign_in().await?),
        "chat_send" => {
            #[derive(Deserialize)]
            struct P {
                message: String,
            }
            let P { message } = params(p)?;
            let run_id = core.chat_send(&message).await?;
            Ok(json!({ "runId": run_id }))
        }
        "chat_history" => to_value(core.chat_history().await?),
        "chat_abort" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                run_id: String,
            }
            let P { run_id } = params(p)?;
            to_value(core.chat_abort(&run_id).await?)
        }
        "assistant_use" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                server_id: Option<String>,
            }
            let P { server_id } = params(p)?;
            to_value(core.use_assistant(server_id.as_deref()).await?)
        }
        "keys_inventory" => to_value(core.keys_inventory().await?),
        "rotate_key" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                key: String,
                /// `local` when absent; else a server's id.
                instance_id: Option<String>,
            }
            let P { key, instance_id } = params(p)?;
            let key = key_id(&key)?;
            let instance = instance_id.as_deref().unwrap_or(crate::local::LOCAL_ID);
            to_value(core.rotate_instance(instance, key).await?)
        }
        "rotate_key_with" => {
            #[derive(Deserialize)]
            struct P {
                key: String,
                #[serde(deserialize_with = "secret_from_str")]
                secret: Secret,
            }
            let P { key, secret } = params(p)?;
            let key = key_id(&key)?;
            to_value(core.rotate_with(key, secret).await?)
        }
        "rotate_key_sign_in_begin" => to_value(core.begin_provider_key_sign_in().await?),
        "rotate_key_sign_in_finish" => to_value(core.finish_provider_key_sign_in().await?),
        "rotate_key_sign_in_cancel" => {
            core.cancel_provider_key_sign_in().await;
            Ok(Value::Null)
        }
        "rotate_all" => to_value(core.rotate_all().await?),
        "key_reminders" => to_value(core.key_reminders().await?),
        "set_key_reminders" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                /// null: never
                every_days: Option<u32>,
            }
            let P { every_days } = params(p)?;
            to_value(core.set_key_reminders(every_days).await?)
        }
        "rotations_resume" => {
            let results: Vec<Value> = core
                .rotations_resume()
                .await
                .into_iter()
                .map(|(r, res)| match res {
                    Ok(done) => serde_json::json!({ "rotation": done }),
                    Err(problem) => serde_json::json!({ "rotation": r, "problem": problem }),
                })
                .collect();
            Ok(Value::Array(results))
        }
        _ => dispatch_usage(core, method, p).await,
    }
}

/// A key's id from a request (`gateway-token`, …).
fn key_id(name: &str) -> Result<crate::rotation::KeyId, Problem> {
    crate::rotation::KeyId::parse(name).ok_or_else(|| {
        Problem::new(
            "rotation_input",
            "Clawkeeper doesn't know that key.",
            Some("Pick one from the keys list."),
        )
    })
}

/// `days` of a request's params (the range the Usage section shows), 30 if absent.
fn days_of(p: &Value) -> u32 {
    p.get("days")
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(30)
}

/// Usage and spend (`crate::app::usage`).
async fn dispatch_usage(core: &Clawkeeper, method: &str, p: Value) -> Result<Value, Problem> {
    use crate::usage::{alerts::Cap, By, Day, Period};
    let bad = |what: &str| {
        Problem::new(
            "usage_input",
            format!("That {what} isn't one Clawkeeper knows."),
            Some("Pick one of the choices."),
        )
    };
    match method {
        "status_detail" => to_value(core.status_detail().await?),
        "usage_view" => {
            #[derive(Deserialize)]
            struct P {
                #[serde(default)]
                days: Option<u32>,
            }
            let P { days } = params(p)?;
            to_value(core.usage_view(days.unwrap_or(30)).await?)
        }
        "usage_sync" => {
            core.usage_sync().await?;
            to_value(core.usage_view(days_of(&p)).await?)
        }
        "usage_export" => {
            #[derive(Deserialize)]
            struct P {
                format: String,
                by: String,
                from: String,
                to: String,
                /// Save it as a file (Downloads) rather than return the text.
                #[serde(default)]
                save: bool,
            }
            let P {
                format,
                by,
                from,
                to,
                save,
            } = params(p)?;
            let format = crate::app::Format::parse(&format).ok_or_else(|| bad("format"))?;
            let by = By::parse(&by).ok_or_else(|| bad("grouping"))?;
            let (Some(from), Some(to)) = (Day::parse(&from), Day::parse(&to)) else {
                return Err(bad("date"));
            };
            if save {
                let path = core.usage_save(format, from, to, by).await?;
                return Ok(json!({ "path": path.display().to_string() }));
            }
            let text = core.usage_export(format, from, to, by).await?;
            Ok(json!({ "text": text }))
        }
        "spend_cap_set" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                /// None: remove the cap.
                amount: Option<f64>,
                #[serde(default)]
                period: Option<String>,
                #[serde(default)]
                levels: Option<Vec<u8>>,
                #[serde(default)]
                pause_at_cap: bool,
                #[serde(default)]
                days: Option<u32>,
            }
            let P {
                amount,
                period,
                levels,
                pause_at_cap,
                days,
            } = params(p)?;
            let days = days.unwrap_or(30);
            let cap = match amount {
                None => None,
                Some(a) => {
                    let period = period
                        .as_deref()
                        .and_then(Period::parse)
                        .unwrap_or(Period::Monthly);
                    Some(Cap::new(a, period, levels, pause_at_cap).map_err(|m| {
                        let hint = if m.contains("levels") {
                            "Use whole percentages from 1 to 100, such as 50, 80 and 100."
                        } else {
                            "Enter an amount in US dollars, such as 20."
                        };
                        Problem::new("spend_cap_invalid", m, Some(hint))
                    })?)
                }
            };
            to_value(core.spend_cap_set(cap, days).await?)
        }
        "spend_resume" => {
            core.spend_resume().await?;
            to_value(core.usage_view(days_of(&p)).await?)
        }
        "provider_management_save" => {
            #[derive(Deserialize)]
            struct P {
                #[serde(deserialize_with = "secret_from_str")]
                secret: Secret,
            }
            let days = days_of(&p);
            let P { secret } = params(p)?;
            core.provider_management_save(secret).await?;
            to_value(core.usage_view(days).await?)
        }
        "openai_admin_save" => {
            #[derive(Deserialize)]
            struct P {
                #[serde(deserialize_with = "secret_from_str")]
                secret: Secret,
                #[serde(default)]
                project: Option<String>,
            }
            let P { secret, project } = params(p)?;
            let project = project.filter(|p| !p.trim().is_empty());
            to_value(core.openai_admin_save(secret, project).await?)
        }
        "provider_management_forget" => {
            core.provider_management_forget().await?;
            to_value(core.usage_view(days_of(&p)).await?)
        }
        _ => dispatch_server(core, method, p).await,
    }
}

/// The person's own servers (`crate::app::server`).
async fn dispatch_server(core: &Clawkeeper, method: &str, p: Value) -> Result<Value, Problem> {
    match method {
        "servers" => to_value(core.servers().await?),
        "server_scan" => {
            #[derive(Deserialize)]
            struct P {
                host: String,
                #[serde(default = "ssh_port")]
                port: u16,
                user: String,
            }
            let P { host, port, user } = params(p)?;
            to_value(core.server_scan(&host, port, &user).await?)
        }
        "server_connect" => {
            let sp: ServerConnectParams = params(p)?;
            let login =
                match (sp.key_text, sp.password) {
                    (Some(text), _) => Login::Key {
                        text,
                        passphrase: sp.passphrase,
                    },
                    (None, Some(pw)) => Login::Password(pw),
                    (None, None) => return Err(Problem::new(
                        "login_missing",
                        "Say how Clawkeeper should log in the first time.",
                        Some("Pick your private key file, or type the server's one-time password."),
                    )),
                };
            to_value(
                core.server_connect(
                    &sp.host,
                    sp.port,
                    &sp.user,
                    &sp.name,
                    &sp.confirmed_fingerprint,
                    login,
                )
                .await?,
            )
        }
        "server_provision" => {
            let ServerIdParams { id } = params(p)?;
            to_value(core.server_provision(&id).await?)
        }
        "server_tailnet_join" => {
            let ServerIdParams { id } = params(p)?;
            to_value(core.server_tailnet_join(&id).await?)
        }
        "cancel_server_job" => {
            core.cancel_server_job();
            Ok(Value::Null)
        }
        "server_posture" => {
            #[derive(Deserialize)]
            struct P {
                id: String,
                #[serde(default)]
                fix: bool,
            }
            let P { id, fix } = params(p)?;
            to_value(core.server_posture(&id, fix).await?)
        }
        "server_delete" => {
            let ServerIdParams { id } = params(p)?;
            to_value(core.server_delete(&id).await?)
        }
        "support_issue" => {
            #[derive(Deserialize)]
            struct P {
                id: String,
                hours: u64,
                #[serde(default)]
                note: String,
            }
            let P { id, hours, note } = params(p)?;
            to_value(core.support_issue(&id, hours, &note).await?)
        }
        "support_list" => {
            let ServerIdParams { id } = params(p)?;
            to_value(core.support_list(&id).await?)
        }
        "support_revoke" => {
            #[derive(Deserialize)]
            struct P {
                id: String,
                grant: String,
            }
            let P { id, grant } = params(p)?;
            to_value(core.support_revoke(&id, &grant).await?)
        }
        "cloud_token_save" => {
            #[derive(Deserialize)]
            struct P {
                #[serde(deserialize_with = "secret_from_str")]
                token: Secret,
            }
            let P { token } = params(p)?;
            to_value(core.cloud_token_save(token).await?)
        }
        "cloud_options" => to_value(core.cloud_options().await?),
        "tailnet_view" | "tailnet_check" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                #[serde(default)]
                server_id: Option<String>,
            }
            let P { server_id } = params(p)?;
            let id = server_id.as_deref();
            to_value(if method == "tailnet_check" {
                core.tailnet_check(id).await
            } else {
                core.tailnet_view(id).await
            })
        }
        "tailnet_key_save" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                #[serde(deserialize_with = "secret_from_str")]
                secret: Secret,
                #[serde(default)]
                client_id: Option<String>,
                #[serde(default)]
                server_id: Option<String>,
            }
            let P {
                secret,
                client_id,
                server_id,
            } = params(p)?;
            to_value(
                core.tailnet_key_save(secret, client_id, server_id.as_deref())
                    .await?,
            )
        }
        "tailnet_key_forget" => to_value(core.tailnet_key_forget().await?),
        #[cfg(all(feature = "embedded-node", unix))]
        "tailnet_use_embedded" => to_value(core.tailnet_use_embedded().await?),
        "cloud_deploy" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                #[serde(default)]
                name: String,
                server_type: String,
                location: String,
            }
            let P {
                name,
                server_type,
                location,
            } = params(p)?;
            let id = core.cloud_deploy(&name, &server_type, &location).await?;
            Ok(json!({ "id": id }))
        }
        _ => Err(problem("ipc_unknown_method", "Unknown request.")),
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// The window process's (and a second launch's) side of the socket.
pub struct Client {
    next: AtomicU64,
    closed: Arc<std::sync::atomic::AtomicBool>,
    pending: Pending,
    tx: mpsc::UnboundedSender<String>,
}

impl Client {
    /// Connect; pushed frames (events, "open a window") arrive on the returned receiver,
    /// which ends when the daemon goes away.
    pub async fn connect(path: &Path) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Push>)> {
        let stream = UnixStream::connect(path).await?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(write_lines(write, rx));
        let pending: Pending = Arc::default();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let reader_pending = pending.clone();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader_closed = closed.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(mut v) = serde_json::from_str::<Value>(&line) else {
                    tracing::debug!("ipc: unreadable frame from the daemon");
                    continue;
                };
                if let Some(ev) = v.get_mut("event") {
                    let _ = push_tx.send(Push::Event(ev.take()));
                } else if let Some(name) = v.get("open").and_then(Value::as_str) {
                    let _ = push_tx.send(Push::Open(name.to_owned()));
                } else if let Ok(resp) = serde_json::from_value::<Response>(v) {
                    let waiter = reader_pending
                        .lock()
                        .ok()
                        .and_then(|mut p| p.remove(&resp.id));
                    if let Some(w) = waiter {
                        let _ = w.send(resp);
                    }
                }
            }
            // Daemon gone: fail whatever waits.
            reader_closed.store(true, Ordering::SeqCst);
            if let Ok(mut p) = reader_pending.lock() {
                p.clear();
            }
        });
        Ok((
            Self {
                next: AtomicU64::new(1),
                closed,
                pending,
                tx,
            },
            push_rx,
        ))
    }

    async fn send_line(&self, id: u64, line: String) -> Result<Value, Problem> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            if self.closed.load(Ordering::SeqCst) {
                return Err(ipc_down());
            }
            p.insert(id, tx);
        }
        self.tx.send(line).map_err(|_| ipc_down())?;
        let resp = rx.await.map_err(|_| ipc_down())?;
        if resp.ok {
            Ok(resp.result.unwrap_or(Value::Null))
        } else {
            Err(resp
                .error
                .unwrap_or_else(|| problem("ipc_error", "The request failed.")))
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Problem> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let line = serde_json::to_string(&json!({"id": id, "method": method, "params": params}))
            .map_err(|_| problem("ipc_encode", "A request could not be encoded."))?;
        self.send_line(id, line).await
    }

    /// `save_provider` with the key written straight into the request line (never into a
    /// `Value` that could be logged).
    pub async fn save_provider(
        &self,
        kind: &str,
        base_url: Option<&str>,
        model: Option<&str>,
        api_key: &Secret,
    ) -> Result<(), Problem> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let head = json!({"kind": kind, "baseUrl": base_url, "model": model}).to_string();
        let key = zeroize::Zeroizing::new(
            serde_json::to_string(api_key.expose())
                .map_err(|_| problem("ipc_encode", "A request could not be encoded."))?,
        );
        // `{"kind":…}` → `{"kind":…,"apiKey":"…"}`
        let line = format!(
            "{{\"id\":{id},\"method\":\"save_provider\",\"params\":{},\"apiKey\":{}}}}}",
            head.trim_end_matches('}'),
            key.as_str()
        );
        self.send_line(id, line).await.map(|_| ())
    }

    /// Call `method` with `params` (an object) plus `secrets` as string fields written
    /// straight into the request line (never into a `Value` that could be logged).
    pub async fn call_with_secrets(
        &self,
        method: &str,
        params: Value,
        secrets: &[(&str, &Secret)],
    ) -> Result<Value, Problem> {
        let encode = || problem("ipc_encode", "A request could not be encoded.");
        if !params.is_object() {
            return Err(encode());
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let head = params.to_string();
        let mut body = zeroize::Zeroizing::new(head.trim_end_matches('}').to_owned());
        let mut first = body.as_str() == "{";
        for (field, secret) in secrets {
            let name = serde_json::to_string(field).map_err(|_| encode())?;
            let value = zeroize::Zeroizing::new(
                serde_json::to_string(secret.expose()).map_err(|_| encode())?,
            );
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(&name);
            body.push(':');
            body.push_str(&value);
        }
        body.push('}');
        let method = serde_json::to_string(method).map_err(|_| encode())?;
        let line = format!(
            "{{\"id\":{id},\"method\":{method},\"params\":{}}}",
            body.as_str()
        );
        self.send_line(id, line).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Echo {
        key_seen: Arc<Mutex<Option<Secret>>>,
    }

    impl Handler for Echo {
        fn call(&self, conn: &Conn, method: String, params: Value) -> Reply {
            let conn = conn.clone();
            let seen = self.key_seen.clone();
            Box::pin(async move {
                match method.as_str() {
                    "echo" => Ok(params),
                    "subscribe" => {
                        conn.push_event(&json!({"kind": "instance", "state": "healthy"}));
                        conn.push_open("chat");
                        Ok(Value::Null)
                    }
                    "save_provider" => {
                        let sp: SaveProviderParams = super::params(params)?;
                        if let Ok(mut s) = seen.lock() {
                            *s = Some(sp.api_key);
                        }
                        Ok(Value::Null)
                    }
                    _ => Err(Problem::new("nope", "No.", Some("Try another."))),
                }
            })
        }
    }

    async fn server(uid: Option<u32>) -> (tempfile::TempDir, PathBuf, Arc<Mutex<Option<Secret>>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("t.sock");
        let listener = bind(&path).await.unwrap();
        let seen = Arc::new(Mutex::new(None));
        let handler = Arc::new(Echo {
            key_seen: seen.clone(),
        });
        let own = std::fs::metadata(&path).unwrap().uid();
        tokio::spawn(serve_with_uid(listener, uid.or(Some(own)), handler));
        (dir, path, seen)
    }

    #[tokio::test]
    async fn round_trip_errors_and_pushes() {
        let (_dir, path, seen) = server(None).await;
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(dmode, 0o700);

        let (c, mut pushes) = Client::connect(&path).await.unwrap();
        assert_eq!(
            c.call("echo", json!({"a": 1})).await.unwrap(),
            json!({"a": 1})
        );
        let err = c.call("other", Value::Null).await.unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.hint.as_deref()),
            ("nope", Some("Try another."))
        );

        c.call("subscribe", Value::Null).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
            .await
            .unwrap();
        assert_eq!(
            first,
            Some(Push::Event(json!({"kind": "instance", "state": "healthy"})))
        );
        let second = pushes.recv().await;
        assert_eq!(second, Some(Push::Open("chat".into())));

        let key = Secret::new("sk-\"quoted\\key");
        c.save_provider("openrouter", None, Some("m"), &key)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().as_ref(), Some(&key));

        // Secrets added to other params, or as the only params.
        let v = c
            .call_with_secrets("echo", json!({"a": 1}), &[("pw", &key), ("k2", &key)])
            .await
            .unwrap();
        assert_eq!(v, json!({"a": 1, "pw": key.expose(), "k2": key.expose()}));
        let v = c
            .call_with_secrets("echo", json!({}), &[("token", &key)])
            .await
            .unwrap();
        assert_eq!(v, json!({"token": key.expose()}));

        // A second daemon cannot bind while this one answers.
        assert_eq!(
            bind(&path).await.unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
    }

    #[tokio::test]
    async fn malformed_lines_get_errors_not_a_crash() {
        let (_dir, path, _) = server(None).await;
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(b"this is not json\n{\"id\":7,\"method\":5}\n[1,2]\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(&mut s).lines();
        for want_id in [0, 7, 0] {
            let l = lines.next_line().await.unwrap().unwrap();
            let r: Response = serde_json::from_str(&l).unwrap();
            assert_eq!((r.id, r.ok), (want_id, false));
            assert_eq!(r.error.unwrap().code, "ipc_bad_request");
        }
        drop(lines);
        // Still serving.
        let (c, _) = Client::connect(&path).await.unwrap();
        assert_eq!(c.call("echo", json!(3)).await.unwrap(), json!(3));
    }

    #[tokio::test]
    async fn peers_with_another_uid_are_refused() {
        let own = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        let (_dir, path, _) = server(Some(own.wrapping_add(1))).await;
        let (c, _) = Client::connect(&path).await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), c.call("echo", json!(1)))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, "ipc_closed");
    }

    #[test]
    fn socket_path_is_namespaced() {
        let p = socket_path(Path::new("/data"));
        assert!(p.to_string_lossy().ends_with(".sock"));
        assert!(p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&crate::vault::default_namespace()));
    }
}
