//! The default target, "This computer": a private OpenClaw gateway run and supervised by
//! Clawkeeper, bound to loopback, with its secrets read from the OS keychain.

pub mod config;
pub mod process;
pub mod runtime;
pub mod supervisor;
pub mod verify;

use crate::paths::{create_private_dir, write_private, Paths};
use crate::problem::UserFacing;
use crate::secret::Secret;
use crate::vault::{self, SecretKind, SecretRef, Vault};
use config::{GatewayConfig, ModelSettings};
use runtime::Runtime;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub const DEFAULT_PORT: u16 = 18789;
pub const LOCAL_ID: &str = "local";
pub const HELPER_NAME: &str = "clawkeeper-keyhelper";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Vault(#[from] vault::Error),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    #[error("Clawkeeper's keychain helper ({0}) is missing from its installation.")]
    HelperMissing(String),
    #[error("Port {0} on this computer is already used by another program.")]
    PortInUse(u16),
    #[error("Your assistant's settings were not accepted by OpenClaw: {0}")]
    Config(String),
    #[error("Your assistant stopped unexpectedly {0} times in a row.")]
    CrashLoop(u32),
    #[error("Your assistant didn't become ready within {0} seconds.")]
    StartTimeout(u64),
    #[error("Your assistant was reachable from other computers ({0}), so Clawkeeper stopped it.")]
    Exposed(String),
    #[error("Clawkeeper couldn't write your assistant's files: {0}")]
    Io(#[from] std::io::Error),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Vault(e) => e.code(),
            Error::Runtime(e) => e.code(),
            Error::HelperMissing(_) => "helper_missing",
            Error::PortInUse(_) => "port_in_use",
            Error::Config(_) => "config_invalid",
            Error::CrashLoop(_) => "crash_loop",
            Error::StartTimeout(_) => "start_timeout",
            Error::Exposed(_) => "exposed",
            Error::Io(e) if e.raw_os_error() == Some(28) => "disk_full",
            Error::Io(_) => "io_error",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Vault(e) => e.hint(),
            Error::Runtime(e) => e.hint(),
            Error::HelperMissing(_) => Some("Reinstall Clawkeeper."),
            Error::PortInUse(_) => Some("Close the other program (or another copy of OpenClaw), then press Start."),
            Error::Config(_) => Some("Press Start to try again; Clawkeeper rewrites the settings each time. Show details says what was wrong."),
            Error::CrashLoop(_) => Some("Check your model provider's key under Settings, then press Start. Show details has the assistant's log."),
            Error::StartTimeout(_) => Some("Press Start to try again. A slow or busy computer can need a minute."),
            Error::Exposed(_) => Some("Nothing else was changed. Tell the Clawkeeper developers; this should never happen."),
            Error::Io(e) if e.raw_os_error() == Some(28) => Some("Free some disk space, then press Start."),
            Error::Io(_) => Some("Check that your home folder is writable, then try again."),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One OpenClaw gateway on this computer and everything it needs.
#[derive(Debug, Clone)]
pub struct LocalInstance {
    pub id: String,
    pub port: u16,
    paths: Paths,
    runtime: Runtime,
    vault: Vault,
}

impl LocalInstance {
    pub fn new(paths: &Paths, vault: &Vault, port: u16) -> Self {
        Self {
            id: LOCAL_ID.to_owned(),
            port,
            paths: paths.clone(),
            runtime: Runtime::new(&paths.runtime_dir),
            vault: vault.clone(),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn dir(&self) -> PathBuf {
        self.paths.instance_dir(&self.id)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("openclaw.json")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir().join("logs")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir().join("gateway.pid")
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn token_ref(&self) -> SecretRef {
        SecretRef::new(SecretKind::GatewayToken, &self.id)
    }

    pub fn provider_key_ref(&self) -> SecretRef {
        SecretRef::new(SecretKind::ProviderKey, &self.id)
    }

    /// The gateway token from the keychain, created (256 random bits) on first use.
    pub async fn ensure_token(&self) -> Result<Secret> {
        match self.vault.read(&self.token_ref()).await {
            Ok(t) => Ok(t),
            Err(vault::Error::NotFound(_)) => {
                let token = Secret::random(32);
                self.vault.store(&self.token_ref(), &token).await?;
                Ok(token)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Copy our keychain helper into the private bin directory (owned by us, mode 0700,
    /// not a symlink — what OpenClaw's `exec` source requires).
    pub fn install_helper(&self) -> Result<PathBuf> {
        let source = find_helper().ok_or_else(|| Error::HelperMissing(HELPER_NAME.into()))?;
        let bin = self.paths.bin_dir();
        create_private_dir(&bin)?;
        let dest = bin.join(HELPER_NAME);
        let fresh = match (std::fs::read(&source), std::fs::read(&dest)) {
            (Ok(a), Ok(b)) => a != b,
            _ => true,
        };
        if fresh {
            let tmp = bin.join(format!(".{HELPER_NAME}.tmp"));
            std::fs::copy(&source, &tmp)?;
            crate::paths::set_mode(&tmp, 0o700)?;
            std::fs::rename(&tmp, &dest)?;
        }
        crate::paths::set_mode(&dest, 0o700)?;
        Ok(dest)
    }

    /// Write the hardened config and create the private directories. The chat channels
    /// the config had (`channels`) are kept.
    pub fn write_config(
        &self,
        model: Option<&ModelSettings>,
        token_entry: &SecretRef,
    ) -> Result<()> {
        for d in [self.dir(), self.state_dir(), self.log_dir()] {
            create_private_dir(&d)?;
        }
        let helper = self.install_helper()?;
        let log_file = self.log_dir().join("openclaw.log");
        let token_ref = token_entry.to_string();
        let mut cfg = config::render(&GatewayConfig {
            port: self.port,
            token_ref: &token_ref,
            helper: &helper,
            namespace: self.vault.namespace(),
            log_file: &log_file,
            model,
        });
        // The person's chat channels (Telegram, Discord…) are theirs: kept as they are,
        // with whatever keychain entry a bot token rotation named there last.
        if let Some(channels) = config::kept_from(&self.config_path()) {
            // A channel that is an external plugin (Discord: `@openclaw/discord`, added
            // with `openclaw plugins install`) loads only with its `plugins.entries.<id>
            // .enabled`: kept for those channels, nothing else of `plugins`.
            if let Some(entries) = config::kept_plugin_entries(&self.config_path(), &channels) {
                cfg["plugins"] = serde_json::json!({ "entries": entries });
            }
            cfg["channels"] = channels;
        }
        let text = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
        write_private(&self.config_path(), &text)?;
        Ok(())
    }

    /// The environment the gateway runs with: a short allowlist, never a provider key
    /// under its standard name, never the gateway token.
    pub fn gateway_env(&self) -> Vec<(String, std::ffi::OsString)> {
        self.gateway_env_from(|k| std::env::var_os(k))
    }

    /// [`Self::gateway_env`], with Clawkeeper's own environment read through `var`.
    ///
    /// Passed through when set: `HOME`, the locale, D-Bus and the keychain namespace (the
    /// keychain helper needs them), and `DISCORD_API_URL` — the one setting of OpenClaw's
    /// Discord plugin that exists only as an environment variable (its REST base, and so
    /// its WebSocket gateway's origin; docs/openclaw-rotation.md): a Discord-compatible
    /// endpoint Clawkeeper was started with, which the tests use to point the channel at
    /// their contract fake. Nothing else of the environment reaches the gateway.
    pub fn gateway_env_from(
        &self,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Vec<(String, std::ffi::OsString)> {
        let mut env: Vec<(String, std::ffi::OsString)> = Vec::new();
        for k in [
            "HOME",
            "LANG",
            "LC_ALL",
            "TZ",
            "DBUS_SESSION_BUS_ADDRESS",
            "XDG_RUNTIME_DIR",
            "CLAWKEEPER_KEYCHAIN_NAMESPACE",
            "DISCORD_API_URL",
        ] {
            if let Some(v) = var(k).filter(|v| !v.is_empty()) {
                env.push((k.to_owned(), v));
            }
        }
        let mut path = vec![self.runtime.node_bin_dir()];
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
        if let Ok(p) = std::env::join_paths(path) {
            env.push(("PATH".into(), p));
        }
        for (k, v) in [
            ("OPENCLAW_STATE_DIR", self.state_dir().into_os_string()),
            ("OPENCLAW_CONFIG_PATH", self.config_path().into_os_string()),
            ("OPENCLAW_NO_AUTO_UPDATE", "1".into()),
            ("OPENCLAW_DISABLE_BONJOUR", "1".into()),
            ("OPENCLAW_NO_RESPAWN", "1".into()),
            ("OPENCLAW_EXEC_SHELL_SNAPSHOT", "0".into()),
            ("TMPDIR", self.dir().join("tmp").into_os_string()),
        ] {
            env.push((k.to_owned(), v));
        }
        env
    }

    /// The command that runs the gateway (Node directly: signals reach the gateway itself).
    pub fn gateway_command(&self) -> Result<tokio::process::Command> {
        if !self.runtime.is_installed() {
            return Err(runtime::Error::NotInstalled.into());
        }
        create_private_dir(&self.dir().join("tmp"))?;
        let out = open_log(&self.log_dir().join("gateway-output.log"))?;
        let err = out.try_clone()?;
        let mut cmd = tokio::process::Command::new(self.runtime.node());
        cmd.arg(self.runtime.openclaw_entry())
            .args(["gateway", "run"])
            .env_clear()
            .envs(self.gateway_env())
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        #[cfg(unix)]
        cmd.process_group(0);
        Ok(cmd)
    }

    /// A one-off `openclaw <args>` in this instance's environment (doctor, secrets audit…).
    pub async fn openclaw(&self, args: &[&str]) -> Result<std::process::Output> {
        let out = tokio::process::Command::new(self.runtime.node())
            .arg(self.runtime.openclaw_entry())
            .args(args)
            .env_clear()
            .envs(self.gateway_env())
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        Ok(out)
    }

    /// Is something already listening on our port?
    pub fn port_in_use(&self) -> bool {
        std::net::TcpListener::bind(("127.0.0.1", self.port)).is_err()
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Where our keychain helper binary is: `CLAWKEEPER_KEYHELPER`, or next to the running
/// executable (or one level up, for test binaries in `target/*/deps`).
pub fn find_helper() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CLAWKEEPER_KEYHELPER") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(HELPER_NAME), dir.parent()?.join(HELPER_NAME)]
        .into_iter()
        .find(|p| p.is_file())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    #[test]
    fn the_gateway_gets_an_allowlist_of_the_environment_and_discord_api_url() {
        let paths = Paths {
            data_dir: PathBuf::from("/data"),
            runtime_dir: PathBuf::from("/runtime"),
        };
        let inst = LocalInstance::new(&paths, &Vault::new("ns"), DEFAULT_PORT);
        let outside: HashMap<&str, &str> = [
            ("HOME", "/home/p"),
            ("DISCORD_API_URL", "http://127.0.0.1:4000/api/v10"),
            ("DISCORD_BOT_TOKEN", "MTIz.abc.def"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("OPENCLAW_GATEWAY_TOKEN", "tok"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NODE_OPTIONS", "--require /tmp/x.js"),
            ("LANG", ""),
        ]
        .into_iter()
        .collect();
        let env: HashMap<String, OsString> = inst
            .gateway_env_from(|k| outside.get(k).map(OsString::from))
            .into_iter()
            .collect();
        assert_eq!(
            env.get("DISCORD_API_URL").and_then(|v| v.to_str()),
            Some("http://127.0.0.1:4000/api/v10")
        );
        assert_eq!(env.get("HOME").and_then(|v| v.to_str()), Some("/home/p"));
        for k in [
            "DISCORD_BOT_TOKEN",
            "OPENAI_API_KEY",
            "OPENCLAW_GATEWAY_TOKEN",
            "HTTPS_PROXY",
            "NODE_OPTIONS",
            "LANG",
        ] {
            assert!(!env.contains_key(k), "{k} passed to the gateway");
        }
        let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "DISCORD_API_URL",
                "HOME",
                "OPENCLAW_CONFIG_PATH",
                "OPENCLAW_DISABLE_BONJOUR",
                "OPENCLAW_EXEC_SHELL_SNAPSHOT",
                "OPENCLAW_NO_AUTO_UPDATE",
                "OPENCLAW_NO_RESPAWN",
                "OPENCLAW_STATE_DIR",
                "PATH",
                "TMPDIR"
            ],
            "nothing else"
        );

        let without: HashMap<String, OsString> =
            inst.gateway_env_from(|_| None).into_iter().collect();
        assert!(
            !without.contains_key("DISCORD_API_URL"),
            "unset: not passed"
        );
    }
}
