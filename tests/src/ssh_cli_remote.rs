//! TEST-ONLY: a [`Remote`] over the system's `ssh` client, so provisioning can run against a
//! throwaway test host before the real russh session exists. One multiplexed connection
//! (ControlMaster) serves every command: the provisioned firewall rate-limits new SSH
//! connections per source, as it should. Host keys are not checked (throwaway hosts only).
//! [`SshCliRemote::unmultiplexed`] makes a new connection per command instead (what a naive
//! script does; the benchmark's baseline), so it needs a looser SSH rate limit.

use clawkeeper_core::remote::{self, Output, Remote};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

pub struct SshCliRemote {
    target: String,
    key: PathBuf,
    control_dir: tempfile::TempDir,
    multiplex: bool,
}

impl SshCliRemote {
    /// `target` is `user@address`.
    pub fn new(target: &str, key: &Path) -> std::io::Result<Self> {
        Ok(Self {
            target: target.to_owned(),
            key: key.to_owned(),
            control_dir: tempfile::tempdir()?,
            multiplex: true,
        })
    }

    /// Like [`Self::new`], but every command is a new `ssh` connection (key exchange and
    /// login each time), as in a plain shell script.
    pub fn unmultiplexed(target: &str, key: &Path) -> std::io::Result<Self> {
        let mut remote = Self::new(target, key)?;
        remote.multiplex = false;
        Ok(remote)
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/usr/bin/ssh");
        cmd.arg("-i").arg(&self.key).args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=15",
        ]);
        if self.multiplex {
            cmd.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=120"])
                .arg("-o")
                .arg(format!(
                    "ControlPath={}/cm-%C",
                    self.control_dir.path().display()
                ));
        } else {
            cmd.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"]);
        }
        cmd.arg(&self.target);
        cmd
    }
}

impl Drop for SshCliRemote {
    fn drop(&mut self) {
        if !self.multiplex {
            return;
        }
        // Close the master connection (best effort).
        let _ = std::process::Command::new("/usr/bin/ssh")
            .arg("-o")
            .arg(format!(
                "ControlPath={}/cm-%C",
                self.control_dir.path().display()
            ))
            .args(["-O", "exit"])
            .arg(&self.target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Remote for SshCliRemote {
    async fn run(&self, command: &str, stdin: Option<&[u8]>) -> remote::Result<Output> {
        let mut cmd = self.command();
        cmd.arg("--")
            .arg(command)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| remote::Error::Channel(e.to_string()))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data)
                .await
                .map_err(|e| remote::Error::Channel(e.to_string()))?;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| remote::Error::Channel(e.to_string()))?;
        let code = out.status.code().map(|c| c as u32);
        // ssh itself exits 255 when the connection fails.
        if code == Some(255) && out.stdout.is_empty() {
            return Err(remote::Error::Disconnected(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(Output {
            code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
