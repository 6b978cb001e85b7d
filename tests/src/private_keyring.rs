//! A keychain of the test's own: a real `gnome-keyring-daemon` (Secret Service, unlocked) on
//! a D-Bus session bus of its own, with its files in a temp dir — for tests that break the
//! keychain on purpose (make it refuse writes) without touching the one the other tests of
//! the run share.
//!
//! [`PrivateKeyring::refuse_writes`] bind-mounts the keyring's folder read-only over itself
//! (the test runs as root in `scripts/test.sh`'s own mount namespace): gnome-keyring then
//! answers every write ("Couldn't create item: An error occurred on the device") while reads
//! still work — a keychain whose disk went read-only or full.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct PrivateKeyring {
    dir: tempfile::TempDir,
    bus: Child,
    address: String,
    read_only: bool,
}

impl PrivateKeyring {
    /// Start the bus and the daemon, unlocked with a random password, and prove it takes a
    /// write and gives it back.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let me = Self {
            dir,
            bus,
            address,
            read_only: false,
        };
        // Its own runtime dir too: with the shared one, `--unlock` would find the run's
        // daemon (its control socket) and unlock that instead of starting one.
        let mut daemon = me
            .command("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets"])
            .env("XDG_RUNTIME_DIR", &run)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon");
        let password = clawkeeper_core::Secret::random(18);
        daemon
            .stdin
            .take()
            .unwrap()
            .write_all(password.expose().as_bytes())
            .unwrap();
        assert!(daemon.wait().unwrap().success(), "gnome-keyring-daemon");
        me.probe_write("probe")
            .expect("the private keyring takes a write");
        me
    }

    /// The bus address: set it as `DBUS_SESSION_BUS_ADDRESS` before anything in the test
    /// (or its children: the gateway's key helper, the CLI) talks to the keychain.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn data_home(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder gnome-keyring keeps its collections in.
    pub fn keyrings(&self) -> PathBuf {
        self.data_home().join("keyrings")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("XDG_DATA_HOME", self.data_home())
            .env("HOME", self.dir.path());
        c
    }

    /// Store a throw-away item with `secret-tool` (its own attributes, nothing of the
    /// app's): Ok if the keychain took it.
    pub fn probe_write(&self, value: &str) -> Result<(), String> {
        let mut c = self
            .command("secret-tool")
            .args([
                "store",
                "--label=clawkeeper keyring probe",
                "service",
                "clawkeeper-private-probe",
                "username",
                "probe",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// From now on every write to the keychain fails; reads still work.
    pub fn refuse_writes(&mut self) {
        if self.read_only {
            return;
        }
        let dir = self.keyrings();
        mount(&["--bind", path(&dir), path(&dir)]);
        mount(&["-o", "remount,bind,ro", path(&dir)]);
        self.read_only = true;
        assert!(
            self.probe_write("refused").is_err(),
            "the keychain still takes writes"
        );
    }

    /// Writes work again.
    pub fn accept_writes(&mut self) {
        if !self.read_only {
            return;
        }
        let status = Command::new("umount")
            .arg(self.keyrings())
            .status()
            .unwrap();
        assert!(status.success(), "umount");
        self.read_only = false;
        self.probe_write("back").expect("writes work again");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mount(args: &[&str]) {
    let status = Command::new("mount").args(args).status().unwrap();
    assert!(status.success(), "mount {args:?}");
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        if self.read_only {
            let _ = Command::new("umount").arg(self.keyrings()).status();
        }
        // gnome-keyring-daemon leaves when its bus goes.
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
