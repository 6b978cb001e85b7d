//! `clawkeeper-cli rotate …` against a data folder, for the rotation tests: run to the end,
//! or stop at a step boundary and be killed there (SIGKILL) — the crash injection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::paths::Paths;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RotationCli<'a> {
    pub paths: &'a Paths,
}

impl RotationCli<'_> {
    /// The command with this test's data folder and runtime; the test's own environment
    /// (keychain namespace, contract fakes' addresses) is inherited.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::env::bin("clawkeeper-cli"));
        c.args(args)
            .env("CLAWKEEPER_HOME", &self.paths.data_dir)
            .env("CLAWKEEPER_RUNTIME_DIR", &self.paths.runtime_dir)
            .env_remove("CLAWKEEPER_TEST_ROTATION_STOP");
        c
    }

    /// Run to the end; (success, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        self.run_with(args, None)
    }

    /// Run to the end with `stdin` (a secret goes here, never in `args`).
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ clawkeeper-cli {}\n{text}", args.join(" "));
        (out.status.success(), text)
    }

    /// Start `args` (a rotation) told to stop at `stop` (`<key>:<step>[:after]`); once it
    /// says it stopped there, SIGKILL it.
    pub fn kill_at(&self, args: &[&str], stop: &str, marker: &Path) {
        self.kill_at_with(args, None, stop, marker)
    }

    /// [`RotationCli::kill_at`] with `stdin` (a new key for `--new-key-stdin`).
    pub fn kill_at_with(&self, args: &[&str], stdin: Option<&str>, stop: &str, marker: &Path) {
        let _ = std::fs::remove_file(marker);
        let mut child = self
            .command(args)
            .env("CLAWKEEPER_TEST_ROTATION_STOP", stop)
            .env("CLAWKEEPER_TEST_ROTATION_MARKER", marker)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !marker.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{stop}: the CLI ended ({status}) before it stopped there");
            }
            assert!(Instant::now() < deadline, "{stop}: never got there");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
}
