//! The gateway token of the assistant on a server (reached over SSH).
//!
//! On the server the gateway reads its token through a `file` SecretRef: the config's
//! `gateway.auth.token` names a provider whose `path` is a 0600 file of the service user in
//! [`layout::USER_CREDENTIALS_DIR`] (see [`crate::provision::steps::SecretDelivery`]). The
//! gateway resolves it at start and whenever the config changes, and applies a change of
//! the ref live (docs/openclaw-rotation.md): within about a second it takes the new token,
//! refuses the old on WebSocket and HTTP, and closes the sessions made with it (4001).
//! Rewriting the file itself would change nothing until a restart, so the new token goes to
//! a second file and the config is switched to it:
//!
//! - **install**: the new token written (on the stdin of `install`, never in a command) to
//!   `gateway-token.r<rotation>`, then the config's token switched to a second provider,
//!   [`NEXT_PROVIDER`], whose path is that file (tagged with the rotation: a name no earlier
//!   config had is a change whatever the gateway last applied). The config is written once
//!   the last write is 2 s old, and the gateway's "reload applied" line is waited for;
//! - **verify new**: a WebSocket hello and an HTTP call (`/tools/invoke`) with it succeed,
//!   through an SSH tunnel to the server's loopback (as the app's chat goes);
//! - **revoke old**: every other token file removed (the old `gateway-token` among them);
//!   the config names only the new one;
//! - **verify old**: refused on both;
//! - **settle** (at the commit, once the keychain's entry holds the new token): the new
//!   token copied to `gateway-token` and the config back to [`GATEWAY_TOKEN_PROVIDER`]
//!   (the same value, so nothing is closed), the tagged file removed — what provisioning
//!   writes, so setting the server up again later changes nothing;
//! - **discard**: the old token in `gateway-token`, the config back on it, the tagged file
//!   removed.
//!
//! At every moment the config names the file of the token the app is using or verifying:
//! a gateway restarted mid-rotation (systemd, a reboot) comes up with it. The unit never
//! sets `OPENCLAW_GATEWAY_TOKEN` (it couldn't win over the config's token anyway); the
//! install refuses a server where the unit or the running gateway has one, and one set up
//! by an earlier Clawkeeper (token in a systemd credential): both are fixed by setting the
//! server up again.

use super::gateway_token::{try_token, Verdict};
use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::provision::steps::{layout, GATEWAY_TOKEN, GATEWAY_TOKEN_PROVIDER};
use crate::remote::{shell_quote, Output, Remote};
use crate::secret::Secret;
use crate::server::ServerLink;
use crate::ssh;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// The config's provider for the token being rotated in.
pub const NEXT_PROVIDER: &str = "clawkeeper_gateway_token_next";

const SCRIPT: &str = include_str!("server_token.sh");

/// How long the gateway may take to apply a config change (measured 0.5–2.3 s locally;
/// the SSH round trips come on top).
const APPLY_WITHIN: Duration = Duration::from_secs(15);

/// No sign of the new token this long after the install: the config is written again.
const KICK_AFTER: Duration = Duration::from_secs(4);

/// How long the server's script waits for the gateway's "reload applied" line (seconds).
const RELOAD_WAIT_SECS: u32 = 5;

/// What the install says when the server still has the token in a systemd credential.
const OLD_LAYOUT: &str = "this server was set up by an earlier version of Clawkeeper, which \
     gives the assistant its access token in a way that can't change without a restart. Set \
     the server up again (the server's Set up again, or clawkeeper-cli provision --id <server>), \
     then rotate again";

/// The gateway token of the server `instance`.
pub struct ServerGatewayToken {
    shell: ServerShell,
}

/// A server's assistant as the rotations of its secret files see and change it: commands
/// run as root over SSH, and the server's script ([`SCRIPT`]) on the files of one secret.
pub struct ServerShell {
    link: ServerLink,
    /// Whether the login user is root (else commands go through `sudo -n`).
    root: tokio::sync::OnceCell<bool>,
}

/// What the server has: its config, the files of one secret (name → sha256) and whether
/// an `OPENCLAW_GATEWAY_TOKEN` is set for the gateway.
#[derive(Debug)]
pub(super) struct State {
    pub(super) config: Value,
    files: Vec<(String, String)>,
    env_token: Option<String>,
}

impl State {
    fn parse(out: &str) -> StepResult<State> {
        let (_, rest) = out
            .split_once("@@config\n")
            .ok_or_else(|| StepError::Transient("the server's answer was cut short".into()))?;
        let (config, rest) = rest
            .split_once("\n@@files\n")
            .ok_or_else(|| StepError::Transient("the server's answer was cut short".into()))?;
        let (files, env) = rest
            .split_once("@@env\n")
            .ok_or_else(|| StepError::Transient("the server's answer was cut short".into()))?;
        let config: Value = serde_json::from_str(config).map_err(|e| {
            StepError::Permanent(format!(
                "the assistant's settings on the server can't be read ({e}); set the server up again"
            ))
        })?;
        let files = files
            .lines()
            .filter_map(|l| {
                let (sum, name) = l.split_once(' ')?;
                Some((name.trim().to_owned(), sum.to_owned()))
            })
            .collect();
        let env_token = env
            .lines()
            .find_map(|l| l.strip_prefix("env_token="))
            .map(str::to_owned);
        Ok(State {
            config,
            files,
            env_token,
        })
    }

    pub(super) fn sha_of(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_str())
    }

    /// The file the config's token names now (its name in the token directory).
    fn named(&self) -> Option<String> {
        self.named_at("/gateway/auth/token")
    }

    /// The file the SecretRef at `pointer` names now, when it is one of the service
    /// user's files (its name in [`layout::USER_CREDENTIALS_DIR`]).
    pub(super) fn named_at(&self, pointer: &str) -> Option<String> {
        let provider = self
            .config
            .pointer(&format!("{pointer}/provider"))?
            .as_str()?;
        let path = self
            .config
            .pointer(&format!("/secrets/providers/{provider}/path"))?
            .as_str()?;
        path.strip_prefix(&format!("{}/", layout::USER_CREDENTIALS_DIR))
            .filter(|n| !n.contains('/'))
            .map(str::to_owned)
    }

    /// Set up the way a token can be switched live (the token a file of the service user,
    /// no token in the environment).
    fn check_layout(&self) -> StepResult {
        let steady = self
            .config
            .pointer(&format!("/secrets/providers/{GATEWAY_TOKEN_PROVIDER}/path"))
            .and_then(Value::as_str);
        if steady != Some(live_path(GATEWAY_TOKEN).as_str()) {
            return Err(StepError::Permanent(OLD_LAYOUT.into()));
        }
        if let Some(where_) = &self.env_token {
            return Err(StepError::Permanent(format!(
                "the assistant's service on the server has an OPENCLAW_GATEWAY_TOKEN in its \
                 environment ({where_}), which Clawkeeper never sets. Set the server up again \
                 (it rewrites the service), then rotate again"
            )));
        }
        Ok(())
    }
}

pub(super) fn live_path(name: &str) -> String {
    format!("{}/{name}", layout::USER_CREDENTIALS_DIR)
}

fn sha256_hex(s: &Secret) -> String {
    hex::encode(Sha256::digest(s.expose().as_bytes()))
}

/// The tagged file of rotation `id`.
fn tagged(id: i64) -> String {
    format!("{GATEWAY_TOKEN}.r{id}")
}

/// The config with its token read from `file` (in the token directory): through the
/// steady provider for `gateway-token`, else through [`NEXT_PROVIDER`] (which exists only
/// then).
fn config_naming(config: &Value, file: &str) -> StepResult<Value> {
    let mut c = config.clone();
    let token = c
        .pointer_mut("/gateway/auth/token")
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            StepError::Permanent(
                "the assistant's settings on the server have no access token; set the server up again"
                    .into(),
            )
        })?;
    let provider = if file == GATEWAY_TOKEN {
        GATEWAY_TOKEN_PROVIDER
    } else {
        NEXT_PROVIDER
    };
    *token = json!({ "source": "file", "provider": provider, "id": "value" });
    let providers = c
        .pointer_mut("/secrets/providers")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            StepError::Permanent(
                "the assistant's settings on the server have no secret providers; set the server up again"
                    .into(),
            )
        })?;
    if file == GATEWAY_TOKEN {
        providers.remove(NEXT_PROVIDER);
    } else {
        providers.insert(
            NEXT_PROVIDER.into(),
            json!({ "source": "file", "path": live_path(file), "mode": "singleValue" }),
        );
    }
    Ok(c)
}

/// How a failed SSH login or command counts: the server not answering is worth waiting
/// for; a server Clawkeeper no longer knows or that refuses its key is not.
pub(super) fn classify(e: &ssh::Error) -> StepError {
    match e {
        ssh::Error::Unreachable { .. }
        | ssh::Error::Timeout { .. }
        | ssh::Error::Protocol { .. }
        | ssh::Error::Vault(_)
        | ssh::Error::Store(_) => StepError::Transient(format!("the server didn't answer ({e})")),
        ssh::Error::Session { reason, .. } if !reason.contains("hasn't been connected") => {
            StepError::Transient(format!("the server didn't answer ({e})"))
        }
        _ => StepError::Permanent(e.to_string()),
    }
}

impl ServerShell {
    pub fn new(link: ServerLink) -> Self {
        Self {
            link,
            root: tokio::sync::OnceCell::new(),
        }
    }

    pub fn link(&self) -> &ServerLink {
        &self.link
    }

    /// Run `command` (as root: through `sudo -n` when the login user isn't root).
    pub(super) async fn run(&self, command: &str, stdin: Option<&[u8]>) -> StepResult<Output> {
        let session = self.link.session().await.map_err(|e| classify(&e))?;
        let root = self
            .root
            .get_or_try_init(|| async {
                session
                    .run("id -u", None)
                    .await
                    .map(|o| o.stdout_lossy().trim() == "0")
                    .map_err(|e| {
                        StepError::Transient(format!("the server stopped answering ({e})"))
                    })
            })
            .await?;
        let command = if *root {
            command.to_owned()
        } else {
            format!("sudo -n {command}")
        };
        session
            .run(&command, stdin)
            .await
            .map_err(|e| StepError::Transient(format!("the server stopped answering ({e})")))
    }

    /// The server's script with `action` on the files of `prefix`, and `params`.
    pub(super) async fn script(
        &self,
        action: &str,
        prefix: &str,
        params: &[(&str, String)],
    ) -> StepResult<String> {
        let mut p: Vec<(&str, String)> = vec![
            ("CK_ACTION", action.into()),
            ("CK_PREFIX", prefix.into()),
            ("CK_DIR", layout::USER_CREDENTIALS_DIR.into()),
            ("CK_CONFIG_PATH", layout::CONFIG_PATH.into()),
            ("CK_LOG", layout::LOG_FILE.into()),
            ("CK_UNIT", layout::UNIT.into()),
            ("CK_USER", layout::USER.into()),
        ];
        p.extend(params.iter().cloned());
        // Without provisioning's common.sh (whose lock waits for a running set-up for up
        // to 15 minutes): this is quick, and a set-up meanwhile is caught by the checks.
        let text = render_bare(SCRIPT, &p);
        let out = self.run("bash -s", Some(text.as_bytes())).await?;
        if !out.success() {
            return Err(StepError::Transient(format!(
                "the server couldn't {}: {}",
                match action {
                    "state" => "show the assistant's settings",
                    "config" => "change the assistant's settings",
                    _ => "remove the old key",
                },
                out.tail(3)
            )));
        }
        Ok(out.stdout_lossy())
    }

    /// The config and the files of `prefix`.
    pub(super) async fn state(&self, prefix: &str) -> StepResult<State> {
        State::parse(&self.script("state", prefix, &[]).await?)
    }

    /// Write `token` to `name` in the token directory (0600, the service user's; atomic),
    /// unless it holds it already. The token goes on stdin only.
    pub(super) async fn put(&self, state: &State, name: &str, token: &Secret) -> StepResult {
        if state.sha_of(name) == Some(sha256_hex(token).as_str()) {
            return Ok(());
        }
        let path = format!("{}/{name}", layout::USER_CREDENTIALS_DIR);
        self.write_secret(&path, layout::USER, token, false).await
    }

    /// Write `secret` to `path` (0600, `owner`'s; atomic through a temporary file beside
    /// it; `only_if_there`: only if the file exists). The secret goes on stdin only.
    pub(super) async fn write_secret(
        &self,
        path: &str,
        owner: &str,
        secret: &Secret,
        only_if_there: bool,
    ) -> StepResult {
        let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
        let f = shell_quote(path);
        let t = shell_quote(&format!("{dir}/.{name}.tmp"));
        let guard = if only_if_there {
            format!("[ -f {f} ] || exit 0; ")
        } else {
            String::new()
        };
        let cmd =
            format!("{guard}install -m 0600 -o {owner} -g {owner} /dev/stdin {t} && mv -f {t} {f}");
        let out = self
            .run(
                &format!("sh -c {}", shell_quote(&cmd)),
                Some(secret.expose().as_bytes()),
            )
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(StepError::Transient(format!(
                "the new key couldn't be written on the server: {}",
                out.tail(3)
            )))
        }
    }

    /// Write `want` as the config (only if that changes it; `force`: written again
    /// anyway, which makes the gateway look at it again), and wait a moment for the
    /// gateway's word that it applied it.
    pub(super) async fn write_config(
        &self,
        state: &State,
        want: &Value,
        force: bool,
    ) -> StepResult {
        if *want == state.config && !force {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(want)
            .map_err(|e| StepError::Permanent(e.to_string()))?
            + "\n";
        let out = self
            .script(
                "config",
                "-",
                &[
                    (
                        "CK_CONFIG_B64",
                        base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                    ),
                    ("CK_WAIT", RELOAD_WAIT_SECS.to_string()),
                    ("CK_FORCE", if force { "1" } else { "0" }.into()),
                ],
            )
            .await?;
        if !out.contains("applied=1") {
            tracing::info!("no word from the server's gateway on the config change; going on");
        }
        Ok(())
    }

    /// Remove the files of `prefix` but `keep`.
    pub(super) async fn prune(&self, prefix: &str, keep: &str) -> StepResult {
        self.script("prune", prefix, &[("CK_KEEP", keep.to_owned())])
            .await
            .map(drop)
    }
}

impl ServerGatewayToken {
    pub fn new(link: ServerLink) -> Self {
        Self {
            shell: ServerShell::new(link),
        }
    }

    async fn state(&self) -> StepResult<State> {
        self.shell.state(GATEWAY_TOKEN).await
    }

    async fn put(&self, state: &State, name: &str, token: &Secret) -> StepResult {
        self.shell.put(state, name, token).await
    }

    /// Make the config name `file` (written only if that changes it; `force`: written
    /// again anyway, which makes the gateway look at it again).
    async fn name_in_config(&self, state: &State, file: &str, force: bool) -> StepResult {
        let want = config_naming(&state.config, file)?;
        self.shell.write_config(state, &want, force).await
    }

    async fn prune(&self, keep: &str) -> StepResult {
        self.shell.prune(GATEWAY_TOKEN, keep).await
    }

    /// What the server's gateway says to `token`, through a tunnel over SSH.
    async fn try_token(&self, token: &Secret) -> Verdict {
        match self.shell.link.gateway_tunnel().await {
            Ok(tunnel) => try_token(&format!("ws://{}", tunnel.local_addr()), token).await,
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }

    /// Ask until `want` (or [`APPLY_WITHIN`] passes); `kick`: the config is written again
    /// once after [`KICK_AFTER`] without it.
    async fn until(&self, token: &Secret, want: Verdict, what: &str, kick: bool) -> StepResult {
        // A server that doesn't let us in now won't in a moment either: leave it for later
        // at once (the driver retries, then the rotation waits).
        self.shell.link.session().await.map_err(|e| classify(&e))?;
        let started = Instant::now();
        let mut kicked = !kick;
        loop {
            let v = self.try_token(token).await;
            if v == want {
                return Ok(());
            }
            if !kicked && started.elapsed() > KICK_AFTER {
                kicked = true;
                tracing::info!(
                    "the server's gateway didn't switch yet: writing its settings again"
                );
                let state = self.state().await?;
                if let Some(named) = state.named() {
                    self.name_in_config(&state, &named, true).await?;
                }
            }
            if started.elapsed() > APPLY_WITHIN {
                return Err(match v {
                    Verdict::Unknown(e) => StepError::Transient(format!(
                        "the assistant on the server didn't answer ({e})"
                    )),
                    _ => StepError::Permanent(what.to_owned()),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A script with its parameters, inside one `{ … }` group (a script cut short runs
/// nothing), without provisioning's common functions.
fn render_bare(body: &str, params: &[(&str, String)]) -> String {
    let mut s = String::from("{\nset -euo pipefail\n");
    for (k, v) in params {
        s.push_str(k);
        s.push('=');
        s.push_str(&shell_quote(v));
        s.push('\n');
    }
    s.push_str(body);
    s.push_str("\n}\n");
    s
}

impl Rotator for ServerGatewayToken {
    fn key(&self) -> KeyId {
        KeyId::GatewayToken
    }

    fn mint<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        // 256 random bits, like the first one.
        Box::pin(async { Ok(Secret::random(32)) })
    }

    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            let state = self.state().await?;
            state.check_layout()?;
            let file = tagged(ctx.rotation_id);
            self.put(&state, &file, new).await?;
            self.name_in_config(&state, &file, false).await
        })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            self.until(
                new,
                Verdict::Accepted,
                "the assistant on the server didn't take the new token",
                true,
            )
            .await
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            let state = self.state().await?;
            // Only the file the config names stays, and only if it holds the new token.
            let named = state.named().ok_or_else(|| {
                StepError::Transient(
                    "the assistant's settings on the server no longer name a token file".into(),
                )
            })?;
            if state.sha_of(&named) != Some(sha256_hex(new).as_str()) {
                return Err(StepError::Transient(
                    "the assistant's settings on the server changed meanwhile (they name a \
                     file without the new token); nothing was removed"
                        .into(),
                ));
            }
            self.prune(&named).await
        })
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            self.until(
                ctx.old,
                Verdict::Refused,
                "the assistant on the server still accepts the old token",
                false,
            )
            .await
        })
    }

    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let state = self.state().await?;
            if state.check_layout().is_err() {
                // The install refuses such a server before it changes anything.
                return Ok(());
            }
            self.put(&state, GATEWAY_TOKEN, ctx.old).await?;
            self.name_in_config(&state, GATEWAY_TOKEN, false).await?;
            self.prune(GATEWAY_TOKEN).await?;
            // Back on the old token (if the gateway runs; a stopped one reads it at start).
            match self.try_token(ctx.old).await {
                Verdict::Unknown(_) | Verdict::Accepted => Ok(()),
                Verdict::Refused => {
                    self.until(
                        ctx.old,
                        Verdict::Accepted,
                        "the assistant on the server didn't go back to the old token",
                        true,
                    )
                    .await
                }
            }
        })
    }

    fn settle<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            let state = self.state().await?;
            self.put(&state, GATEWAY_TOKEN, new).await?;
            self.name_in_config(&state, GATEWAY_TOKEN, false).await?;
            self.prune(GATEWAY_TOKEN).await?;
            // The same token from the steady file: still accepted (a broken copy would
            // show here, while the staging entry still has it).
            self.until(
                new,
                Verdict::Accepted,
                "the assistant on the server didn't keep the new token",
                true,
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::steps::{gateway_config, ModelEndpoint, ProvisionSpec};

    fn provisioned() -> Value {
        let mut spec = ProvisionSpec::new("srv");
        spec.model = Some(ModelEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
        });
        gateway_config(&spec)
    }

    fn state(config: Value, files: &[(&str, &str)], env: &str) -> State {
        let mut out = format!("noise\n@@config\n{}\n\n@@files\n", config);
        for (n, s) in files {
            out.push_str(&format!("{s} {n}\n"));
        }
        out.push_str("@@env\n");
        out.push_str(env);
        State::parse(&out).unwrap()
    }

    #[test]
    fn the_config_names_the_tagged_file_then_the_steady_one_again() {
        let c = provisioned();
        let s = state(c.clone(), &[("gateway-token", "aa")], "");
        s.check_layout().unwrap();
        assert_eq!(s.named().as_deref(), Some("gateway-token"));
        let during = config_naming(&c, "gateway-token.r7").unwrap();
        let s2 = state(during.clone(), &[], "");
        assert_eq!(s2.named().as_deref(), Some("gateway-token.r7"));
        assert_eq!(
            during["secrets"]["providers"][NEXT_PROVIDER]["path"],
            "/etc/clawkeeper/openclaw-credentials/gateway-token.r7"
        );
        // The provider key's ref and everything else untouched.
        assert_eq!(during["models"], c["models"]);
        // Back: exactly what provisioning writes (so setting up again changes nothing).
        assert_eq!(config_naming(&during, "gateway-token").unwrap(), c);
        assert_eq!(config_naming(&c, "gateway-token").unwrap(), c);
    }

    #[test]
    fn an_old_layout_or_an_env_token_is_refused_with_what_to_do() {
        let mut old = provisioned();
        old["secrets"]["providers"][GATEWAY_TOKEN_PROVIDER]["path"] =
            json!("/run/credentials/clawkeeper-gateway.service/gateway-token");
        let s = state(old, &[], "");
        assert_eq!(s.named(), None);
        let e = s.check_layout().unwrap_err();
        assert!(
            matches!(&e, StepError::Permanent(m) if m.contains("Set the server up again")),
            "{e:?}"
        );
        let s = state(provisioned(), &[], "env_token=unit\n");
        assert!(
            matches!(s.check_layout(), Err(StepError::Permanent(m)) if m.contains("OPENCLAW_GATEWAY_TOKEN"))
        );
    }

    #[test]
    fn a_cut_answer_is_worth_retrying() {
        assert!(matches!(
            State::parse("@@config\n{}"),
            Err(StepError::Transient(_))
        ));
    }

    /// The server's script with `params`, run by bash here; what it printed (it must end
    /// well).
    fn run_script(params: &[(&str, String)]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("bash")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(render_bare(SCRIPT, params).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{params:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The script itself, run by bash on a temporary directory.
    #[test]
    fn the_script_prunes_and_reports_hashes_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cfg = d.join("openclaw.json");
        std::fs::write(&cfg, "{\"a\":1}\n").unwrap();
        std::fs::write(d.join("gateway-token"), "old-secret").unwrap();
        std::fs::write(d.join("gateway-token.r3"), "new-secret").unwrap();
        std::fs::write(d.join(".gateway-token.tmp"), "x").unwrap();
        std::fs::write(d.join("other"), "keep").unwrap();
        let run = |action: &str, extra: &[(&str, String)]| {
            let mut p = vec![
                ("CK_ACTION", action.to_owned()),
                ("CK_PREFIX", GATEWAY_TOKEN.to_owned()),
                ("CK_DIR", d.display().to_string()),
                ("CK_CONFIG_PATH", cfg.display().to_string()),
                ("CK_LOG", d.join("log").display().to_string()),
                ("CK_UNIT", "no-such.service".to_owned()),
                ("CK_USER", "root".to_owned()),
            ];
            p.extend(extra.iter().cloned());
            run_script(&p)
        };
        let out = run("state", &[]);
        assert!(!out.contains("secret"), "{out}");
        let s = State::parse(&out).unwrap();
        assert_eq!(s.config, json!({"a": 1}));
        assert_eq!(
            s.sha_of("gateway-token.r3"),
            Some(sha256_hex(&Secret::new("new-secret")).as_str())
        );
        assert_eq!(s.files.len(), 2, "{:?}", s.files);
        run("prune", &[("CK_KEEP", "gateway-token.r3".into())]);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["gateway-token.r3", "openclaw.json", "other"]);
    }

    /// The config action, against a stand-in for the gateway that logs "reload applied"
    /// for each new config: a write right after one seen applied doesn't wait; one right
    /// after a write by someone else (or not seen applied) waits until that is 2 s old.
    #[test]
    fn a_config_write_waits_only_for_a_change_not_seen_applied() {
        use std::io::Write;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_owned();
        let (cfg, log) = (d.join("openclaw.json"), d.join("log"));
        std::fs::write(&cfg, "{\"v\":0}\n").unwrap();
        std::fs::write(&log, "").unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let gateway = {
            let (cfg, log, stop) = (cfg.clone(), log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::fs::read(&cfg).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    let now = std::fs::read(&cfg).unwrap_or_default();
                    if now != seen {
                        seen = now;
                        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                        writeln!(f, r#"{{"0":"{{\"subsystem\":\"gateway/reload\"}}","1":"config hot reload applied (x)"}}"#).unwrap();
                    }
                }
            })
        };
        let user = String::from_utf8(
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned();
        let write = |v: u32| {
            let p = [
                ("CK_ACTION", "config".to_owned()),
                ("CK_PREFIX", "-".to_owned()),
                ("CK_DIR", d.display().to_string()),
                ("CK_CONFIG_PATH", cfg.display().to_string()),
                ("CK_LOG", log.display().to_string()),
                ("CK_UNIT", "no-such.service".to_owned()),
                ("CK_USER", user.clone()),
                (
                    "CK_CONFIG_B64",
                    base64::engine::general_purpose::STANDARD.encode(format!("{{\"v\":{v}}}\n")),
                ),
                ("CK_WAIT", "5".to_owned()),
            ];
            run_script(&p)
        };
        // Written just now by someone else: waits.
        let out = write(1);
        assert!(
            out.contains("waited=1") && out.contains("applied=1"),
            "{out}"
        );
        // Right after its own write, seen applied: at once.
        let out = write(2);
        assert!(
            out.contains("waited=0") && out.contains("applied=1"),
            "{out}"
        );
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{\"v\":2}\n");
        // Someone else wrote it since: waits again.
        std::fs::write(d.join("x"), "{\"v\":9}\n").unwrap();
        std::fs::rename(d.join("x"), &cfg).unwrap();
        let out = write(3);
        assert!(out.contains("waited=1"), "{out}");
        stop.store(true, Ordering::Relaxed);
        gateway.join().unwrap();
    }
}
