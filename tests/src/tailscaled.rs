//! A real tailscaled (the official static 1.96.4 build fetched by `scripts/tailscale-bin.sh`,
//! handed over by `scripts/test.sh` as `CLAWKEEPER_TAILSCALE_BIN`), one per test, in its own
//! temp dir: userspace networking, no logs sent, state, socket and log files in that dir.
//!
//! tailscaled reaches for public log and relay servers when it can, so [`Tailscaled::start`]
//! refuses to run it unless this process is in a network namespace without a default route
//! (scripts/test.sh's private one), and then runs it (and the `tailscale` CLI) in a further
//! network namespace of its own with nothing in it — not even loopback: its lookups of
//! `controlplane.tailscale.com` and the like fail at once instead of reaching the suite's
//! recording DNS stub (which other tests check). The LocalAPI is a unix socket in its dir,
//! so it is reachable from here all the same. Drop stops it (SIGTERM, then SIGKILL) and
//! removes its dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN_ENV: &str = "CLAWKEEPER_TAILSCALE_BIN";

/// The directory with `tailscale` and `tailscaled`, when this run has one.
pub fn bin_dir() -> Option<PathBuf> {
    std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .filter(|d| d.join("tailscaled").is_file() && d.join("tailscale").is_file())
}

/// Whether this network namespace has no default route (IPv4 or IPv6): nothing here can
/// reach the internet. scripts/test.sh's namespace has loopback and, while test hosts run,
/// their veth links, but never a default route.
pub fn no_default_route() -> bool {
    let (Ok(v4), Ok(v6)) = (
        std::fs::read_to_string("/proc/net/route"),
        std::fs::read_to_string("/proc/net/ipv6_route"),
    ) else {
        return false;
    };
    let v4_default = v4.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000")
    });
    let v6_default = v6.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.first().is_some_and(|d| d.bytes().all(|b| b == b'0'))
            && f.get(1) == Some(&"00")
            && f.last() != Some(&"lo")
    });
    !v4_default && !v6_default
}

/// Why the real-tailscaled tests can't run here, if they can't.
pub fn unavailable() -> Option<String> {
    if !crate::env::isolated() {
        return Some("needs scripts/test.sh (private network namespace, D-Bus)".into());
    }
    if bin_dir().is_none() {
        return Some(format!(
            "{BIN_ENV} is not set to a directory with tailscale and tailscaled (scripts/tailscale-bin.sh)"
        ));
    }
    if !no_default_route() {
        return Some(
            "this network namespace has a default route: tailscaled must not run here".into(),
        );
    }
    None
}

pub struct Tailscaled {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Tailscaled {
    /// Start tailscaled and wait until its LocalAPI socket answers a connect.
    pub fn start() -> anyhow::Result<Self> {
        if let Some(why) = unavailable() {
            anyhow::bail!("tailscaled can't run here: {why}");
        }
        let bin = bin_dir().ok_or_else(|| anyhow::anyhow!("no {BIN_ENV}"))?;
        let dir = tempfile::Builder::new().prefix("tailscaled-").tempdir()?;
        let d = dir.path();
        let log = std::fs::File::create(d.join("tailscaled.log"))?;
        let child = isolated(&bin.join("tailscaled"))
            .arg("--tun=userspace-networking")
            .arg("--no-logs-no-support")
            .arg(format!("--statedir={}", d.display()))
            .arg(format!("--socket={}", d.join("tailscaled.sock").display()))
            .arg(format!("--state={}", d.join("state").display()))
            .arg("--port=0")
            // No log uploads; and its log config goes here, not to /var/lib/tailscale.
            .env("TS_NO_LOGS_NO_SUPPORT", "1")
            .env("TS_LOGS_DIR", d)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut me = Self {
            child: Some(child),
            dir,
            bin,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(me.socket()).is_ok() {
                return Ok(me);
            }
            if let Some(c) = me.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    anyhow::bail!("tailscaled exited ({status}): {}", me.log_tail());
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "tailscaled's socket did not come up in 20 s: {}",
                    me.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("tailscaled.sock")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything tailscaled logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tailscaled.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The official CLI against this daemon: `tailscale --socket=<ours> <args>`.
    pub fn cli(&self) -> Command {
        let mut c = isolated(&self.bin.join("tailscale"));
        c.arg(format!("--socket={}", self.socket().display()));
        c.env("TS_NO_LOGS_NO_SUPPORT", "1")
            .env("TS_LOGS_DIR", self.dir());
        c
    }

    /// Stop it: SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `program` in a new, empty network namespace (`unshare --net` execs it: same pid).
fn isolated(program: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.arg("--net").arg("--").arg(program);
    c
}

impl Drop for Tailscaled {
    fn drop(&mut self) {
        self.stop();
        // The TempDir removes the state, socket and log.
    }
}
