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
//!
//! [`Tailscaled::start_with`] with [`Options::local_network`] gives that namespace a network
//! of its own instead, for a control server fake to be reachable: loopback up, and a
//! port-less bridge with a TEST-NET-1 address (`192.0.2.1/32`, RFC 5737), without which
//! tailscaled counts the network as down and never picks a home DERP region. There is no
//! route out of it. The namespace is held by a `sleep` (so it outlives a daemon restart);
//! [`Tailscaled::in_netns`] runs code there, e.g. to bind the fake's listeners.

use std::io::BufRead;
use std::os::fd::AsFd;
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

/// How to start tailscaled; `Options::default()` is what [`Tailscaled::start`] does.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Loopback and a port-less bridge in its namespace (see the module doc), instead of
    /// nothing at all.
    pub local_network: bool,
    /// More environment for tailscaled (e.g. `TS_DEBUG_USE_DERP_HTTP=1`, `SSL_CERT_FILE`).
    pub env: Vec<(String, String)>,
}

/// The bridge's name and address in a `local_network` namespace.
pub const BRIDGE: &str = "ck-ts0";
pub const BRIDGE_ADDR: &str = "192.0.2.1";

pub struct Tailscaled {
    child: Option<Child>,
    /// The process holding a `local_network` namespace.
    netns_holder: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Tailscaled {
    /// Start tailscaled and wait until its LocalAPI socket answers a connect.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default())
    }

    /// [`Self::start`], with [`Options`].
    pub fn start_with(opts: Options) -> anyhow::Result<Self> {
        if let Some(why) = unavailable() {
            anyhow::bail!("tailscaled can't run here: {why}");
        }
        let bin = bin_dir().ok_or_else(|| anyhow::anyhow!("no {BIN_ENV}"))?;
        let dir = tempfile::Builder::new().prefix("tailscaled-").tempdir()?;
        let netns_holder = if opts.local_network {
            Some(local_network()?)
        } else {
            None
        };
        let holder_pid = netns_holder.as_ref().map(Child::id);
        let d = dir.path();
        let log = std::fs::File::create(d.join("tailscaled.log"))?;
        let mut cmd = in_namespace(holder_pid, &bin.join("tailscaled"));
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let spawned = cmd
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
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if let Some(mut h) = netns_holder {
                    let _ = h.kill();
                    let _ = h.wait();
                }
                return Err(e.into());
            }
        };
        let mut me = Self {
            child: Some(child),
            netns_holder,
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

    /// Runs `f` on a thread inside tailscaled's network namespace (sockets made there stay
    /// in it: a listener bound there is reachable by tailscaled only).
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let pid = self
            .netns_holder
            .as_ref()
            .or(self.child.as_ref())
            .map(Child::id)
            .ok_or_else(|| anyhow::anyhow!("tailscaled is stopped"))?;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )?;
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the thread in tailscaled's namespace panicked"))?
        })
    }

    /// The official CLI against this daemon: `tailscale --socket=<ours> <args>`.
    pub fn cli(&self) -> Command {
        let holder_pid = self.netns_holder.as_ref().map(Child::id);
        let mut c = in_namespace(holder_pid, &self.bin.join("tailscale"));
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

/// `program` in a new, empty network namespace (`unshare --net` execs it: same pid), or in
/// the namespace of process `holder` (`nsenter` execs it too).
fn in_namespace(holder: Option<u32>, program: &Path) -> Command {
    match holder {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net"))
                .arg("--")
                .arg(program);
            c
        }
        None => {
            let mut c = Command::new("unshare");
            c.arg("--net").arg("--").arg(program);
            c
        }
    }
}

/// A process holding a new network namespace with loopback and the bridge, once they are up.
fn local_network() -> anyhow::Result<Child> {
    let script = format!(
        "ip link set lo up && ip link add {BRIDGE} type bridge && \
         ip addr add {BRIDGE_ADDR}/32 dev {BRIDGE} && ip link set {BRIDGE} up && \
         echo ready && exec sleep infinity"
    );
    let mut holder = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = holder.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = holder.kill();
        let status = holder.wait()?;
        anyhow::bail!("could not set up tailscaled's network namespace ({status})");
    }
    Ok(holder)
}

impl Drop for Tailscaled {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut h) = self.netns_holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        // The TempDir removes the state, socket and log.
    }
}
