//! The OpenClaw runtime on this computer: a private Node (from the npm registry's `node`
//! package) and a pinned `openclaw`, each installed into its own prefix under the runtime
//! directory. Installs go to a temporary directory that is renamed into place only when
//! complete and verified, so a cancelled or failed install never looks installed, and a
//! retry starts clean.

use crate::problem::UserFacing;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

pub const NODE_VERSION: &str = "24.21.0";
pub const OPENCLAW_VERSION: &str = "2026.9.6";

/// Rough installed sizes, for an honest progress bar (measured on Debian 12, see FACTS.md).
const NODE_BYTES: u64 = 190 * 1024 * 1024;
const OPENCLAW_BYTES: u64 = 650 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Clawkeeper couldn't download the assistant's software: the package registry can't be reached.")]
    RegistryUnreachable,
    #[error("npm, which Clawkeeper uses to download the assistant's software, isn't installed.")]
    NoNpm,
    #[error("The disk is full, so the assistant's software couldn't be installed.")]
    DiskFull,
    #[error("Installing the assistant's software failed ({step}): {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("The installation was cancelled.")]
    Cancelled,
    #[error("The assistant's software isn't installed yet.")]
    NotInstalled,
    #[error("Could not write the runtime directory: {0}")]
    Io(#[from] std::io::Error),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::RegistryUnreachable => "registry_unreachable",
            Error::NoNpm => "npm_missing",
            Error::DiskFull => "disk_full",
            Error::Failed { .. } | Error::Io(_) => "install_failed",
            Error::Cancelled => "cancelled",
            Error::NotInstalled => "not_installed",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::RegistryUnreachable => {
                "Check your internet connection, then press Try again. Nothing was changed."
            }
            Error::NoNpm => {
                "Install Node.js and npm from your system's software center, then try again."
            }
            Error::DiskFull => "Free about 1 GB of disk space, then press Try again.",
            Error::Failed { .. } | Error::Io(_) => {
                "Press Try again. If it fails again, Show details tells what went wrong."
            }
            Error::Cancelled => "Press Install when you're ready.",
            Error::NotInstalled => "Press Install to download it (about 850 MB).",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub step: String,
    /// Bytes on disk so far and the expected total (an estimate: npm does not report it).
    pub done: u64,
    pub total: u64,
    pub eta_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
}

impl Runtime {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn node_prefix(&self) -> PathBuf {
        self.root.join(format!("node-{NODE_VERSION}"))
    }

    fn openclaw_prefix(&self) -> PathBuf {
        self.root.join(format!("openclaw-{OPENCLAW_VERSION}"))
    }

    pub fn node_bin_dir(&self) -> PathBuf {
        self.node_prefix().join("node_modules/node/bin")
    }

    pub fn node(&self) -> PathBuf {
        self.node_bin_dir().join("node")
    }

    /// The package's own entry point (run with our Node; never a PATH lookup).
    pub fn openclaw_entry(&self) -> PathBuf {
        self.openclaw_prefix()
            .join("node_modules/openclaw/openclaw.mjs")
    }

    pub fn version(&self) -> &'static str {
        OPENCLAW_VERSION
    }

    pub fn is_installed(&self) -> bool {
        self.node_prefix().join(".complete").is_file()
            && self.openclaw_prefix().join(".complete").is_file()
            && self.node().is_file()
            && self.openclaw_entry().is_file()
    }

    /// Install what is missing. `progress` is called about twice a second.
    pub async fn install(
        &self,
        progress: &(dyn Fn(Progress) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<()> {
        crate::paths::create_private_dir(&self.root)?;
        let total = NODE_BYTES + OPENCLAW_BYTES;
        let started = Instant::now();
        if !self.node_prefix().join(".complete").is_file() {
            let base = 0;
            self.install_package(
                &self.node_prefix(),
                &format!("node@{NODE_VERSION}"),
                None,
                "Downloading Node.js",
                &|bytes| {
                    progress(make_progress(
                        "Downloading Node.js",
                        base + bytes.min(NODE_BYTES),
                        total,
                        started,
                    ))
                },
                cancel,
            )
            .await?;
        }
        if !self.openclaw_prefix().join(".complete").is_file() {
            let base = NODE_BYTES;
            self.install_package(
                &self.openclaw_prefix(),
                &format!("openclaw@{OPENCLAW_VERSION}"),
                Some(&self.node_bin_dir()),
                "Downloading OpenClaw",
                &|bytes| {
                    progress(make_progress(
                        "Downloading OpenClaw",
                        base + bytes.min(OPENCLAW_BYTES),
                        total,
                        started,
                    ))
                },
                cancel,
            )
            .await?;
        }
        progress(make_progress(
            "Checking the installation",
            total,
            total,
            started,
        ));
        self.complete_lifecycle().await?;
        self.check_version().await?;
        // The download cache is only needed during an install (~275 MB).
        let _ = std::fs::remove_dir_all(self.root.join("npm-cache"));
        Ok(())
    }

    /// OpenClaw ships a `.openclaw-lifecycle-pending` marker that its own postinstall
    /// removes, and refuses to run while it is there. npm 11 may skip install scripts, so
    /// the postinstall is run here explicitly, with our Node, whenever the marker remains.
    async fn complete_lifecycle(&self) -> Result<()> {
        let pkg = self.openclaw_prefix().join("node_modules/openclaw");
        let marker = pkg.join(".openclaw-lifecycle-pending");
        if !marker.exists() {
            return Ok(());
        }
        let out = Command::new(self.node())
            .arg("scripts/postinstall-bundled-plugins.mjs")
            .current_dir(&pkg)
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() || marker.exists() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Failed {
                step: "Finishing the installation",
                detail: stderr
                    .lines()
                    .last()
                    .unwrap_or("postinstall failed")
                    .to_owned(),
            });
        }
        Ok(())
    }

    async fn install_package(
        &self,
        prefix: &Path,
        spec: &str,
        node_bin: Option<&Path>,
        step: &'static str,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<()> {
        let tmp = prefix.with_extension("partial");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let mut cmd = Command::new(npm_program().ok_or(Error::NoNpm)?);
        cmd.arg("install")
            .arg("--prefix")
            .arg(&tmp)
            .arg(spec)
            .args([
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--foreground-scripts",
                "--loglevel=error",
            ])
            .args([
                "--fetch-retries=2",
                "--fetch-retry-mintimeout=2000",
                "--fetch-retry-maxtimeout=10000",
            ])
            .env("npm_config_cache", self.root.join("npm-cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Provider keys in the environment make OpenClaw's install scripts try to fetch plugins.
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str() {
                if k.ends_with("_API_KEY") || k.starts_with("OPENCLAW_") {
                    cmd.env_remove(k);
                }
            }
        }
        if let Some(bin) = node_bin {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![bin.to_owned()];
            paths.extend(std::env::split_paths(&path));
            cmd.env(
                "PATH",
                std::env::join_paths(paths).map_err(|e| Error::Failed {
                    step,
                    detail: e.to_string(),
                })?,
            );
        }
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NoNpm,
            _ => Error::Io(e),
        })?;
        let mut stderr = child.stderr.take();
        let mut stdout = child.stdout.take();
        let collect = tokio::spawn(async move {
            let mut out = String::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_string(&mut out).await;
            }
            let mut o = String::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_string(&mut o).await;
            }
            out.push_str(&o);
            out
        });
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let status = loop {
            tokio::select! {
                s = child.wait() => break s?,
                _ = tick.tick() => on_bytes(dir_size(&tmp)),
                _ = cancel.cancelled() => {
                    kill_group(&mut child).await;
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(Error::Cancelled);
                }
            }
        };
        let output = collect.await.unwrap_or_default();
        if !status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(classify_npm_failure(step, &output));
        }
        std::fs::write(tmp.join(".complete"), spec)?;
        if prefix.exists() {
            std::fs::remove_dir_all(prefix)?;
        }
        std::fs::rename(&tmp, prefix)?;
        Ok(())
    }

    /// Run `openclaw --version` with our Node and check it is the pinned version.
    pub async fn check_version(&self) -> Result<()> {
        if !self.is_installed() {
            return Err(Error::NotInstalled);
        }
        let out = Command::new(self.node())
            .arg(self.openclaw_entry())
            .arg("--version")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .stdin(Stdio::null())
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains(OPENCLAW_VERSION) {
            return Err(Error::Failed {
                step: "Checking the installation",
                detail: format!("openclaw --version printed {:?}", text.trim()),
            });
        }
        Ok(())
    }
}

fn make_progress(step: &str, done: u64, total: u64, started: Instant) -> Progress {
    let elapsed = started.elapsed().as_secs_f64();
    let eta_seconds = (done > 0 && done < total && elapsed > 2.0)
        .then(|| ((total - done) as f64 * elapsed / done as f64) as u64);
    Progress {
        step: step.to_owned(),
        done,
        total,
        eta_seconds,
    }
}

fn npm_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CLAWKEEPER_NPM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(if cfg!(windows) { "npm.cmd" } else { "npm" }))
        .find(|p| p.is_file())
}

fn classify_npm_failure(step: &'static str, output: &str) -> Error {
    let unreachable = [
        "ENOTFOUND",
        "ECONNREFUSED",
        "EAI_AGAIN",
        "ETIMEDOUT",
        "ECONNRESET",
        "ENETUNREACH",
        "network",
    ];
    if output.contains("ENOSPC") {
        Error::DiskFull
    } else if unreachable.iter().any(|m| output.contains(m)) {
        Error::RegistryUnreachable
    } else {
        let tail: String = output
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Error::Failed { step, detail: tail }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

async fn kill_group(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        super::process::signal_group(pid, libc::SIGKILL);
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_failures_are_classified() {
        assert!(matches!(
            classify_npm_failure("x", "npm error code ECONNREFUSED"),
            Error::RegistryUnreachable
        ));
        assert!(matches!(
            classify_npm_failure("x", "npm error code ENOSPC: no space left"),
            Error::DiskFull
        ));
        assert!(matches!(
            classify_npm_failure("x", "npm error 404 Not Found"),
            Error::Failed { .. }
        ));
    }

    #[test]
    fn progress_estimates_time_left() {
        let p = make_progress("s", 0, 100, Instant::now());
        assert_eq!((p.done, p.total, p.eta_seconds), (0, 100, None));
    }
}
