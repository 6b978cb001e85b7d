//! OpenClaw's Discord channel plugin (`@openclaw/discord`, not in the pinned runtime),
//! installed into an instance the way a person adds it — `openclaw plugins install
//! npm:@openclaw/discord@<version>` in the instance's environment — but offline: npm reads
//! everything from a copy of the cache `scripts/discord-plugin.sh` filled at set-up time
//! (`CLAWKEEPER_DISCORD_PLUGIN`, the tarball integrity-checked there).
//!
//! OpenClaw runs npm in a managed project under the state dir and records the install
//! (source npm, the package's name and version) in its state database: that record is what
//! lets the Discord channel open its durable ingress queue ("trusted plugin state"). It
//! also writes `plugins.entries.discord.enabled: true` into the config, which the gateway
//! needs to load an external plugin.

use clawkeeper_core::local::runtime::OPENCLAW_VERSION;
use clawkeeper_core::local::LocalInstance;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The environment variable naming the set-up cache.
pub const ENV: &str = "CLAWKEEPER_DISCORD_PLUGIN";

/// The npm package.
pub const PACKAGE: &str = "@openclaw/discord";

/// The set-up cache (`$CLAWKEEPER_DISCORD_PLUGIN`, with its `npm-cache`), if there is one.
pub fn cache() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os(ENV)?);
    (dir.join(".complete").is_file() && dir.join("npm-cache").is_dir()).then_some(dir)
}

/// Install the plugin into `instance` (offline; `scratch` takes a copy of the npm cache,
/// which npm writes to). Returns the installer's output; `Err` with it if it failed.
pub async fn install(
    instance: &LocalInstance,
    cache: &Path,
    scratch: &Path,
) -> Result<String, String> {
    std::fs::create_dir_all(instance.dir().join("tmp")).map_err(|e| e.to_string())?;
    let npm_cache = scratch.join("npm-cache");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(cache.join("npm-cache"))
        .arg(&npm_cache)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !copied.success() {
        return Err(format!("copying {} failed", cache.display()));
    }
    let runtime = instance.runtime();
    let spec = format!("npm:{PACKAGE}@{OPENCLAW_VERSION}");
    let run = tokio::process::Command::new(runtime.node())
        .arg(runtime.openclaw_entry())
        .args(["plugins", "install", &spec, "--force"])
        .env_clear()
        .envs(instance.gateway_env())
        .env("npm_config_cache", &npm_cache)
        .env("npm_config_offline", "true")
        .env("npm_config_update_notifier", "false")
        .current_dir(instance.dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(480), run)
        .await
        .map_err(|_| "openclaw plugins install took over 8 minutes".to_owned())?
        .map_err(|e| format!("openclaw plugins install: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Installed plugin: discord") {
        Ok(text)
    } else {
        Err(text)
    }
}
