//! Putting a provisioned server on the person's own tailnet, so chat reaches it privately.
//!
//! A job of its own (kind [`JOB_KIND`]), run after [`super::provision`] on a server that is
//! already hardened, with the same runner habits: idempotent steps that check, apply and
//! verify, a job row with one row per step, progress, cancel between steps, safe to run
//! again at any point.
//!
//! 1. **install** — Tailscale from its official apt repository (`pkgs.tailscale.com`), whose
//!    signing key must have the fingerprint compiled in here ([`TAILSCALE_REPO_FINGERPRINT`])
//!    before apt is told to trust it (see `scripts/tailscale_install.sh`).
//! 2. **join** — only when the server is not on the tailnet yet: a single-use, pre-authorized
//!    auth key tagged `tag:clawkeeper` is minted for it just then (by the caller, through
//!    [`crate::tailnet::api`]), written to a 0600 root file in `/run` over SSH stdin — never
//!    in a command line — and read by `tailscale up --auth-key=file:…`, which deletes it
//!    whatever happens. The key is dropped (zeroized) here right after.
//! 3. **serve** — the gateway stays on 127.0.0.1; `tailscale serve --tcp <port>
//!    tcp://127.0.0.1:<port>` offers it to the tailnet only. A plain TCP forward rather than
//!    OpenClaw's own `gateway.tailscale.mode: serve` with `allowTailscale`: WireGuard
//!    already authenticates every peer, the person's tailnet policy decides who may open
//!    it, and the gateway keeps its token auth on top instead of trusting tailnet identity
//!    headers (which also would need HTTPS certificates and MagicDNS, which the embedded
//!    node on the desktop does not have). Anything else in the serve settings — web
//!    handlers, other ports, Funnel to the public internet — is reset.
//! 4. **firewall** — the provisioning firewall again, now letting in Tailscale's UDP port
//!    (41641) and nothing else new.
//!
//! Then the posture checks gain three lines ([`tailnet_checks`]): on the tailnet, the
//! serve settings hold only the gateway forward, Funnel is off.

use super::steps::{self, HostFacts, ProvisionSpec, StepDef};
use super::{classify_failure, run_script, Error, Progress, Result, StepState};
use crate::local::verify::{Check, CheckStatus};
use crate::remote::{shell_quote, Remote};
use crate::secret::Secret;
use crate::store::Store;
use crate::tailnet::local_api::{self, BackendState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// The job kind in the store.
pub const JOB_KIND: &str = "tailnet";

/// Tailscale's package repository (the OS id and release are appended by the script).
pub const TAILSCALE_REPO: &str = "https://pkgs.tailscale.com/stable";

/// The primary key fingerprint of "Tailscale Inc. (Package repository signing key)", which
/// signs the repository's `InRelease`. Published by Tailscale with its install instructions.
pub const TAILSCALE_REPO_FINGERPRINT: &str = "2596A99EAAB33821893C0A79458CA832957F5868";

/// tailscaled's default WireGuard port (`PORT` in `/etc/default/tailscaled`).
pub const TAILSCALE_UDP_PORT: u16 = 41641;

/// The tag the server's node carries; the person's tailnet policy must let Clawkeeper's
/// credentials own it (see [`crate::tailnet::api::TAG_OWNERS_SNIPPET`]).
pub const TAG: &str = "tag:clawkeeper";

/// Where the auth key waits for `tailscale up` (root-only, in memory: `/run` is a tmpfs).
pub const KEY_FILE: &str = "/run/clawkeeper/tailscale-authkey";

pub const STEPS: &[StepDef] = &[
    StepDef {
        id: "tailscale_install",
        name: "Installing Tailscale on the server",
    },
    StepDef {
        id: "tailscale_join",
        name: "Joining your tailnet",
    },
    StepDef {
        id: "tailscale_serve",
        name: "Offering the assistant on your tailnet only",
    },
    StepDef {
        id: "tailscale_firewall",
        name: "Letting Tailscale through the firewall",
    },
];

// Exit codes of tailscale_join.sh.
const EXIT_NO_KEY: u32 = 14;
const EXIT_KEY_REFUSED: u32 = 15;
const EXIT_TAG_REFUSED: u32 = 16;
const EXIT_UNREACHABLE: u32 = 17;

const INSTALL: &str = include_str!("scripts/tailscale_install.sh");
const JOIN: &str = include_str!("scripts/tailscale_join.sh");
const SERVE: &str = include_str!("scripts/tailscale_serve.sh");
const REAUTH: &str = include_str!("scripts/tailscale_reauth.sh");

/// Exit code of the re-auth script when the server's Tailscale settings differ from the
/// join's (the other codes are the join's: 14 no key, 15 key refused, 16 tag refused, 17
/// Tailscale unreachable).
pub const EXIT_SETTINGS_CHANGED: u32 = 18;

/// The script that logs the server's node in again with the auth key in [`KEY_FILE`]
/// (`tailscale up --force-reauth`, the join's flags): key rotation of the node.
pub fn reauth_script(ts: &TailnetSpec) -> String {
    steps::render(
        REAUTH,
        &[
            ("CK_TS_HOSTNAME", hostname_for(&ts.hostname)),
            ("CK_TS_TAG", TAG.into()),
            ("CK_TS_KEYFILE", KEY_FILE.into()),
            ("CK_TS_TIMEOUT", ts.join_timeout_secs.max(1).to_string()),
        ],
    )
}

/// Where the server's Tailscale comes from and what it is called on the tailnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailnetSpec {
    /// The repository base (`https://pkgs.tailscale.com/stable`; tests: a local stand-in).
    pub repo: String,
    /// The signing key's fingerprint the repository must show (40 hex digits).
    pub repo_fingerprint: String,
    /// The server's name on the tailnet (letters, digits, dashes).
    pub hostname: String,
    /// How long `tailscale up` may take to reach the tailnet.
    pub join_timeout_secs: u32,
}

impl TailnetSpec {
    pub fn new(hostname: &str) -> Self {
        Self {
            repo: TAILSCALE_REPO.into(),
            repo_fingerprint: TAILSCALE_REPO_FINGERPRINT.into(),
            hostname: hostname_for(hostname),
            join_timeout_secs: 60,
        }
    }
}

/// A valid tailnet hostname from any name: lowercase letters, digits and dashes, at most
/// 63 characters, never empty.
pub fn hostname_for(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_end_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    if trimmed.is_empty() {
        "clawkeeper".into()
    } else {
        trimmed
    }
}

/// What a finished join reports.
#[derive(Debug, Clone)]
pub struct Joined {
    pub job_id: String,
    /// The server's node as its own Tailscale sees it.
    pub node: local_api::Node,
    /// Whether this run logged it in (false: it was on the tailnet already).
    pub joined_now: bool,
    pub checks: Vec<Check>,
}

/// Put the provisioned server behind `remote` on the tailnet. `mint_key` is called only
/// when the server needs to log in, and its key is used once and dropped. `spec` is the
/// server's provisioning spec (its port and firewall); the firewall step runs it with
/// Tailscale's UDP port added.
#[allow(clippy::too_many_arguments)]
pub async fn join<R, F, Fut>(
    remote: &R,
    store: &Store,
    host: &HostFacts,
    spec: &ProvisionSpec,
    ts: &TailnetSpec,
    mint_key: F,
    cancel: CancellationToken,
    on_progress: impl Fn(Progress),
) -> Result<Joined>
where
    R: Remote,
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<Secret, String>>,
{
    let on_progress = &on_progress;
    super::run_job(
        store,
        JOB_KIND,
        &spec.instance_id,
        STEPS,
        on_progress,
        |job_id| async move {
            run(
                remote,
                store,
                host,
                spec,
                ts,
                mint_key,
                &cancel,
                on_progress,
                &job_id,
            )
            .await
            .map_err(|(i, e)| (Some(i), e))
        },
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn run<R, F, Fut>(
    remote: &R,
    store: &Store,
    host: &HostFacts,
    spec: &ProvisionSpec,
    ts: &TailnetSpec,
    mint_key: F,
    cancel: &CancellationToken,
    on_progress: &impl Fn(Progress),
    job_id: &str,
) -> std::result::Result<Joined, (usize, Error)>
where
    R: Remote,
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<Secret, String>>,
{
    let total = STEPS.len();
    let mut mint_key = Some(mint_key);
    let mut joined_now = false;
    let mut firewall_spec = spec.clone();
    firewall_spec.firewall.tailscale_udp = Some(TAILSCALE_UDP_PORT);
    for (i, step) in STEPS.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err((i, Error::Cancelled));
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
            .map_err(|e| (i, e.into()))?;
        on_progress(progress(StepState::Running, None));
        tracing::info!(step = step.id, "tailnet step");
        let detail = match step.id {
            "tailscale_install" => {
                let out = run_script(remote, host, step, &install_script(ts))
                    .await
                    .map_err(|e| (i, e))?;
                let facts = steps::parse_facts(&out.stdout_lossy());
                steps::fact(&facts, "tailscale").map(|v| format!("Tailscale {v}"))
            }
            "tailscale_join" => {
                let status = node_status(remote, host, step).await.map_err(|e| (i, e))?;
                if status.backend_state == BackendState::Running {
                    Some("already on your tailnet".to_owned())
                } else {
                    let Some(mint) = mint_key.take() else {
                        return Err((i, join_error(step, EXIT_NO_KEY, String::new())));
                    };
                    let key = mint().await.map_err(|detail| {
                        (
                            i,
                            Error::StepFailed {
                                step: step.name,
                                detail,
                            },
                        )
                    })?;
                    send_key(remote, host, step, &key)
                        .await
                        .map_err(|e| (i, e))?;
                    drop(key);
                    let out = remote
                        .run(host.shell(), Some(join_script(ts).as_bytes()))
                        .await
                        .map_err(|e| (i, e.into()))?;
                    if !out.success() {
                        let said = out
                            .stderr_lossy()
                            .lines()
                            .rev()
                            .find_map(|l| l.strip_prefix("clawkeeper: "))
                            .map(str::to_owned)
                            .unwrap_or_default();
                        return Err((
                            i,
                            match out.code {
                                Some(c @ EXIT_NO_KEY..=EXIT_UNREACHABLE) => {
                                    join_error(step, c, said)
                                }
                                _ => classify_failure(step, &out, host),
                            },
                        ));
                    }
                    joined_now = true;
                    Some("joined".to_owned())
                }
            }
            "tailscale_serve" => {
                let current = serve_status(remote, host, step).await.map_err(|e| (i, e))?;
                if current.is_only_forward(spec.port) {
                    None
                } else {
                    let reset = !current.is_empty();
                    run_script(remote, host, step, &serve_script(spec.port, reset))
                        .await
                        .map_err(|e| (i, e))?;
                    let after = serve_status(remote, host, step).await.map_err(|e| (i, e))?;
                    if !after.is_only_forward(spec.port) {
                        return Err((
                            i,
                            Error::StepFailed {
                                step: step.name,
                                detail: format!(
                                    "Tailscale's serve settings on the server are not what Clawkeeper set: {}",
                                    after.describe()
                                ),
                            },
                        ));
                    }
                    Some("changed".to_owned())
                }
            }
            _ => {
                let script = steps::script("firewall", &firewall_spec, host).unwrap_or_default();
                run_script(remote, host, step, &script)
                    .await
                    .map_err(|e| (i, e))?;
                None
            }
        };
        on_progress(progress(StepState::Done, detail));
    }
    let status = node_status(remote, host, &STEPS[1])
        .await
        .map_err(|e| (1, e))?;
    let node = status.self_node.clone().unwrap_or_default();
    let serve = serve_status(remote, host, &STEPS[2])
        .await
        .map_err(|e| (2, e))?;
    Ok(Joined {
        job_id: job_id.to_owned(),
        node,
        joined_now,
        checks: tailnet_checks(&status, &serve, spec.port),
    })
}

fn join_error(step: &StepDef, code: u32, said: String) -> Error {
    let detail = match code {
        EXIT_KEY_REFUSED => "Tailscale refused the key Clawkeeper made for this server. Press Try again for a new one.".to_owned(),
        EXIT_TAG_REFUSED => format!("Your tailnet's access controls don't let Clawkeeper's servers use {TAG}. Add the line Clawkeeper shows under Private network to your tailnet's policy, then press Try again."),
        EXIT_UNREACHABLE => "The server could not reach Tailscale. Check that the server is online (and, if you limited its outbound traffic, that Tailscale is allowed), then press Try again.".to_owned(),
        _ if said.is_empty() => "The server is not on your tailnet yet and no key was given to join.".to_owned(),
        _ => said,
    };
    Error::StepFailed {
        step: step.name,
        detail,
    }
}

fn install_script(ts: &TailnetSpec) -> String {
    steps::render(
        INSTALL,
        &[
            ("CK_TS_REPO", ts.repo.trim_end_matches('/').to_owned()),
            ("CK_TS_FPR", ts.repo_fingerprint.to_ascii_uppercase()),
        ],
    )
}

fn join_script(ts: &TailnetSpec) -> String {
    steps::render(
        JOIN,
        &[
            ("CK_TS_HOSTNAME", hostname_for(&ts.hostname)),
            ("CK_TS_TAG", TAG.into()),
            ("CK_TS_KEYFILE", KEY_FILE.into()),
            ("CK_TS_TIMEOUT", ts.join_timeout_secs.max(1).to_string()),
        ],
    )
}

fn serve_script(port: u16, reset: bool) -> String {
    steps::render(
        SERVE,
        &[
            ("CK_PORT", port.to_string()),
            ("CK_TS_RESET", if reset { "1" } else { "0" }.into()),
        ],
    )
}

/// Write the auth key to [`KEY_FILE`]: root only, 0600, from stdin.
pub async fn send_key<R: Remote>(
    remote: &R,
    host: &HostFacts,
    step: &StepDef,
    key: &Secret,
) -> Result<()> {
    let dir = KEY_FILE.rsplit_once('/').map_or("/run", |(d, _)| d);
    let cmd = host.as_root(&format!(
        "sh -c {}",
        shell_quote(&format!(
            "umask 077 && install -d -m 0700 -o root -g root {dir} && install -m 0600 -o root -g root /dev/stdin {KEY_FILE}"
        ))
    ));
    let out = remote.run(&cmd, Some(key.expose().as_bytes())).await?;
    if out.success() {
        Ok(())
    } else {
        Err(classify_failure(step, &out, host))
    }
}

/// `tailscale status --json` on the server (the LocalAPI's status).
pub async fn node_status<R: Remote>(
    remote: &R,
    host: &HostFacts,
    step: &StepDef,
) -> Result<local_api::Status> {
    let out = remote
        .run(&host.as_root("tailscale status --json"), None)
        .await?;
    // `tailscale status` exits 1 when logged out, but still prints the JSON.
    local_api::parse_status(&out.stdout).map_err(|e| Error::StepFailed {
        step: step.name,
        detail: format!("could not read Tailscale's state on the server: {e}"),
    })
}

async fn serve_status<R: Remote>(
    remote: &R,
    host: &HostFacts,
    step: &StepDef,
) -> Result<ServeConfig> {
    let out = remote
        .run(&host.as_root("tailscale serve status --json"), None)
        .await?;
    if !out.success() {
        return Err(classify_failure(step, &out, host));
    }
    parse_serve_status(&out.stdout).map_err(|detail| Error::StepFailed {
        step: step.name,
        detail,
    })
}

/// Tailscale's state and serve settings on the server, as the posture lines need them.
pub async fn read_state<R: Remote>(
    remote: &R,
    host: &HostFacts,
) -> Result<(local_api::Status, ServeConfig)> {
    let status = node_status(remote, host, &STEPS[1]).await?;
    let serve = serve_status(remote, host, &STEPS[2]).await?;
    Ok((status, serve))
}

/// One TCP port of the serve settings (`ipn.TCPPortHandler`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpHandler {
    pub https: bool,
    pub http: bool,
    pub tcp_forward: String,
    pub terminate_tls: String,
}

/// Tailscale's serve settings on a node (`tailscale serve status --json`, `ipn.ServeConfig`),
/// reduced to what decides whether the assistant is offered on the tailnet only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServeConfig {
    pub tcp: BTreeMap<u16, TcpHandler>,
    /// `host:port` keys of web handlers.
    pub web: Vec<String>,
    /// `host:port` keys with Funnel (the public internet) allowed.
    pub funnel: Vec<String>,
    /// Tailscale Services this node serves.
    pub services: Vec<String>,
}

impl ServeConfig {
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty()
            && self.web.is_empty()
            && self.funnel.is_empty()
            && self.services.is_empty()
    }

    /// Exactly one thing served: a plain TCP forward of `port` to the gateway on loopback.
    pub fn is_only_forward(&self, port: u16) -> bool {
        let want = format!("127.0.0.1:{port}");
        self.web.is_empty()
            && self.funnel.is_empty()
            && self.services.is_empty()
            && self.tcp.len() == 1
            && self.tcp.get(&port).is_some_and(|h| {
                h.tcp_forward == want && !h.https && !h.http && h.terminate_tls.is_empty()
            })
    }

    /// A short account of what is served, for a posture line or an error.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "nothing is served".into();
        }
        let mut parts: Vec<String> = self
            .tcp
            .iter()
            .map(|(p, h)| {
                if h.tcp_forward.is_empty() {
                    format!("port {p} (web)")
                } else {
                    format!("port {p} → {}", h.tcp_forward)
                }
            })
            .collect();
        parts.extend(self.web.iter().map(|w| format!("web {w}")));
        parts.extend(self.funnel.iter().map(|f| format!("Funnel {f}")));
        parts.extend(self.services.iter().map(|s| format!("service {s}")));
        parts.join(", ")
    }
}

/// Parse `tailscale serve status --json`. `{}` (nothing served) is valid.
pub fn parse_serve_status(body: &[u8]) -> std::result::Result<ServeConfig, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("Tailscale's serve settings are not valid JSON ({e})"))?;
    let o = v
        .as_object()
        .ok_or("Tailscale's serve settings are not a JSON object")?;
    let keys = |name: &str| -> Vec<String> {
        o.get(name)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut tcp = BTreeMap::new();
    if let Some(m) = o.get("TCP").and_then(Value::as_object) {
        for (k, h) in m {
            let port = k
                .parse::<u16>()
                .ok()
                .filter(|p| p.to_string() == *k)
                .ok_or_else(|| format!("Tailscale serves a port that is not a number ({k:.20})"))?;
            let text = |f: &str| h.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
            let flag = |f: &str| h.get(f).and_then(Value::as_bool).unwrap_or(false);
            tcp.insert(
                port,
                TcpHandler {
                    https: flag("HTTPS"),
                    http: flag("HTTP"),
                    tcp_forward: text("TCPForward"),
                    terminate_tls: text("TerminateTLS"),
                },
            );
        }
    }
    let funnel = o
        .get("AllowFunnel")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(ServeConfig {
        tcp,
        web: keys("Web"),
        funnel,
        services: keys("Services"),
    })
}

pub const ON_TAILNET: &str = "tailnet_joined";
pub const SERVE_ONLY_GATEWAY: &str = "tailnet_serve_only_gateway";
pub const FUNNEL_OFF: &str = "tailnet_funnel_off";

/// The posture lines for a server on the tailnet.
pub fn tailnet_checks(status: &local_api::Status, serve: &ServeConfig, port: u16) -> Vec<Check> {
    let check = |id: &'static str, label: &'static str, ok: bool, detail: String| Check {
        id,
        label,
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail: Some(detail),
    };
    let node = status.self_node.clone().unwrap_or_default();
    let on = status.backend_state == BackendState::Running;
    let tagged = node.tags.iter().any(|t| t == TAG);
    vec![
        check(
            ON_TAILNET,
            "On your tailnet",
            on && tagged,
            if on {
                let addr = node.ipv4().map(|a| a.to_string()).unwrap_or_default();
                let name = node.dns_name.trim_end_matches('.');
                if tagged {
                    format!("{name} {addr}").trim().to_owned()
                } else {
                    format!("{name} is on the tailnet without {TAG}")
                }
            } else {
                format!("Tailscale on the server says {:?}", status.backend_state)
            },
        ),
        check(
            SERVE_ONLY_GATEWAY,
            "Only the assistant is offered on the tailnet",
            serve.is_only_forward(port),
            serve.describe(),
        ),
        check(
            FUNNEL_OFF,
            "Not on the public internet through Tailscale (Funnel off)",
            serve.funnel.is_empty(),
            if serve.funnel.is_empty() {
                "Funnel is off".into()
            } else {
                format!("Funnel is on for {}", serve.funnel.join(", "))
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_valid_tailnet_names() {
        assert_eq!(hostname_for("My Server #1"), "my-server-1");
        assert_eq!(hostname_for("--"), "clawkeeper");
        assert_eq!(hostname_for("ck-3f2a"), "ck-3f2a");
        assert_eq!(hostname_for(&"a".repeat(80)).len(), 63);
        assert_eq!(hostname_for("é-server"), "server");
    }

    #[test]
    fn serve_status_shapes() {
        let empty = parse_serve_status(b"{}").unwrap();
        assert!(empty.is_empty());
        assert!(!empty.is_only_forward(18789));
        let ours =
            parse_serve_status(br#"{"TCP":{"18789":{"TCPForward":"127.0.0.1:18789"}}}"#).unwrap();
        assert!(ours.is_only_forward(18789));
        assert!(!ours.is_only_forward(18790));
        let web = parse_serve_status(
            br#"{"TCP":{"443":{"HTTPS":true}},"Web":{"srv.tail1.ts.net:443":{"Handlers":{"/":{"Proxy":"http://127.0.0.1:18789"}}}},"AllowFunnel":{"srv.tail1.ts.net:443":true}}"#,
        )
        .unwrap();
        assert!(!web.is_only_forward(18789));
        assert_eq!(web.funnel, vec!["srv.tail1.ts.net:443".to_owned()]);
        assert!(web.describe().contains("Funnel"));
        let extra = parse_serve_status(
            br#"{"TCP":{"18789":{"TCPForward":"127.0.0.1:18789"},"22":{"TCPForward":"127.0.0.1:22"}}}"#,
        )
        .unwrap();
        assert!(!extra.is_only_forward(18789));
        let public =
            parse_serve_status(br#"{"TCP":{"18789":{"TCPForward":"0.0.0.0:18789"}}}"#).unwrap();
        assert!(!public.is_only_forward(18789));
        assert!(parse_serve_status(b"[]").is_err());
        assert!(parse_serve_status(br#"{"TCP":{"x":{}}}"#).is_err());
        assert!(parse_serve_status(b"Logged out.").is_err());
    }

    #[test]
    fn the_key_never_travels_in_a_script_or_command() {
        let ts = TailnetSpec::new("My server");
        let s = join_script(&ts);
        assert!(s.contains("--auth-key=\"file:$CK_TS_KEYFILE\""));
        assert!(s.contains("trap 'rm -f \"$CK_TS_KEYFILE\"' EXIT"));
        assert!(s.contains("CK_TS_HOSTNAME='my-server'"));
        let i = install_script(&ts);
        assert!(i.contains(&format!("CK_TS_FPR='{TAILSCALE_REPO_FINGERPRINT}'")));
        assert!(i.contains("signed-by="));
    }

    #[test]
    fn the_firewall_lets_in_only_tailscales_port() {
        let host = HostFacts {
            login_user: "root".into(),
            sudo: false,
            arch: super::super::sources::Arch::X64,
            os: "debian 12".into(),
            virt: "kvm".into(),
        };
        let mut spec = ProvisionSpec::new("i");
        let without = steps::script("firewall", &spec, &host).unwrap();
        assert!(without.contains("CK_TS_UDP=''"));
        spec.firewall.tailscale_udp = Some(TAILSCALE_UDP_PORT);
        let with = steps::script("firewall", &spec, &host).unwrap();
        assert!(with.contains("CK_TS_UDP='41641'"));
    }
}
