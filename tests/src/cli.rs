//! Running the real `clawkeeper-cli` binary against a data folder and an npm registry (the
//! offline mirror), as a script or support person would — shared by the tests that set a
//! server up through the command line.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Cli {
    /// `CLAWKEEPER_HOME`.
    pub home: PathBuf,
    /// `CLAWKEEPER_NPM_REGISTRY`.
    pub registry: String,
}

impl Cli {
    /// The command with this test's environment; the caller sets stdio.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::env::bin("clawkeeper-cli"));
        c.args(args)
            .env("CLAWKEEPER_HOME", &self.home)
            .env("CLAWKEEPER_NPM_REGISTRY", &self.registry)
            .env("CLAWKEEPER_LOG", "warn");
        c
    }

    /// Run to the end with `stdin` (secrets go here, never in `args`), whatever the outcome.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        run(self.cmd(args), stdin)
    }

    /// Run and require success; returns stdout. The error carries both outputs.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        stdout_of(args, self.run(args, stdin)?)
    }
}

/// Run `cmd` to the end with `stdin`, whatever the outcome.
fn run(mut cmd: Command, stdin: Option<&str>) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting clawkeeper-cli")?;
    let mut input = child.stdin.take().context("clawkeeper-cli's stdin")?;
    if let Some(s) = stdin {
        input.write_all(s.as_bytes())?;
    }
    drop(input);
    Ok(child.wait_with_output()?)
}

/// Stdout of a run that must have succeeded; the error carries both outputs.
fn stdout_of(args: &[&str], out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "clawkeeper-cli {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `clawkeeper-cli` beside the desktop app on this computer (the window tests): its data
/// folder, keychain namespace, gateway port, keychain helper and runtime cache. Run and
/// require success; returns stdout.
pub fn local_ok(
    home: &Path,
    namespace: &str,
    port: u16,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    let mut cmd = Command::new(crate::env::bin("clawkeeper-cli"));
    cmd.args(args)
        .env("CLAWKEEPER_HOME", home)
        .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", namespace)
        .env("CLAWKEEPER_PORT", port.to_string())
        .env(
            "CLAWKEEPER_KEYHELPER",
            crate::env::bin("clawkeeper-keyhelper"),
        );
    if let Some(rt) = crate::env::test_runtime() {
        cmd.env("CLAWKEEPER_RUNTIME_DIR", rt);
    }
    stdout_of(args, run(cmd, stdin)?)
}
