//! A believable fresh Debian 12 VPS for provisioning tests: [`TestHost`].
//!
//! Each host is a `systemd-nspawn --boot` container (real systemd as PID 1,
//! real sshd) on a copy-on-write overlay of a cached debootstrap image, in
//! its own network namespace joined to the test's namespace by a veth pair
//! with a private /30. There is no default route: the host reaches only the
//! test's side of the veth ([`TestHost::gateway_addr`]), where a test can
//! bind in-process servers (the npm mirror of [`crate::npm_mirror`], a fake
//! model server, ...).
//!
//! Inputs (exported by `scripts/test.sh`, which builds them before it enters
//! the offline sandbox):
//! * `CLAWKEEPER_TESTHOST_IMAGE`: the image `.tar.zst` from
//!   `scripts/testhost-image.sh`. It is unpacked once next to itself
//!   (`<image>.rootfs/`, shared read-only lower dir of every host's overlay).
//!
//! Needs root, `systemd-nspawn`, `ip`, `nsenter`, `mount`, `tar`, `zstd`.
//!
//! Concurrency: nextest runs each test in its own process; hosts booted by
//! different processes (or different `scripts/test.sh` runs) never collide,
//! because each claims a numbered slot by holding an exclusive `flock` on
//! `/run/clawkeeper-testhosts/slot-<n>.lock`. The kernel drops the lock when
//! the process dies, so a crashed test never leaks a slot. Slot `n` owns the
//! addresses `10.213.0.0/16 + 4n` (/30: gateway `.1`, host `.2`), the
//! network namespace `ck-th<n>` and the veth `ckth<n>`.
//!
//! Lifecycle: [`TestHost::boot`] → use → [`TestHost::stop`] or drop. Both
//! send nspawn exactly one SIGTERM (a second one would kill the container at
//! once), wait for it (SIGKILL after 20 s), delete the network namespace,
//! unmount the overlay, delete the host's directory and release the slot.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Environment variable naming the image built by `scripts/testhost-image.sh`.
pub const IMAGE_ENV: &str = "CLAWKEEPER_TESTHOST_IMAGE";

/// Where slot locks live (shared by every test process on the machine).
const SLOT_DIR: &str = "/run/clawkeeper-testhosts";
/// Number of /30 slots in 10.213.0.0/16.
const SLOT_COUNT: u32 = 16384;
/// Time allowed for sshd to answer after nspawn starts.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a clean shutdown after the one SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How to prepare a host before it boots.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Public keys (`ssh-ed25519 AAAA… comment` lines) put in
    /// `/root/.ssh/authorized_keys`.
    pub authorized_keys: Vec<String>,
    /// `(user, password)`: set this password (the user is created with a home
    /// and membership of `sudo` unless it exists, e.g. `root`) and allow
    /// password logins in sshd (for "connect with a one-time password").
    pub password_login: Option<(String, String)>,
    /// Replace `/etc/os-release` with this text (for "unsupported OS").
    pub os_release: Option<String>,
    /// Give the host a disk of this many MiB: the overlay's writable layer is
    /// a tmpfs of that size, so every write to the host's file system (in
    /// /opt, /var/lib, /usr, ...) fails with ENOSPC once it is full, and `df /`
    /// inside shows that size.
    pub disk_limit_mb: Option<u32>,
}

impl HostOptions {
    /// Options with one authorized root key.
    pub fn with_key(public_key: impl Into<String>) -> Self {
        HostOptions {
            authorized_keys: vec![public_key.into()],
            ..HostOptions::default()
        }
    }
}

/// A claimed slot: addresses and names no other host uses while it is held.
#[derive(Debug)]
struct Slot {
    index: u32,
    /// Holds the exclusive flock; closing it releases the slot.
    _lock: File,
}

impl Slot {
    fn claim() -> Result<Slot> {
        fs::create_dir_all(SLOT_DIR).with_context(|| format!("creating {SLOT_DIR}"))?;
        // Start at a pseudo-random slot so concurrent processes rarely contend.
        let start = (std::process::id().wrapping_mul(2654435761) ^ nanos()) % SLOT_COUNT;
        for i in 0..SLOT_COUNT {
            let index = (start + i) % SLOT_COUNT;
            let path = Path::new(SLOT_DIR).join(format!("slot-{index}.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Slot { index, _lock: file }),
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(e) => return Err(anyhow!("flock {}: {e}", path.display())),
            }
        }
        bail!("all {SLOT_COUNT} test host slots in {SLOT_DIR} are taken")
    }

    fn base(&self) -> u32 {
        u32::from(Ipv4Addr::new(10, 213, 0, 0)) + 4 * self.index
    }
    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 1)
    }
    fn host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 2)
    }
    fn netns(&self) -> String {
        format!("ck-th{}", self.index)
    }
    fn veth(&self) -> String {
        format!("ckth{}", self.index)
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// The slot's network namespace with the veth pair configured; deleted on drop.
#[derive(Debug)]
struct Netns {
    name: String,
    veth: String,
}

impl Netns {
    fn create(slot: &Slot) -> Result<Netns> {
        let name = slot.netns();
        let veth = slot.veth();
        let peer = format!("ckpe{}", slot.index);
        // Leftovers of a test process that died while holding this slot
        // (we hold the slot's lock now, so they are nobody's).
        let stale = Path::new("/run/netns").join(&name);
        if stale.exists() {
            let _ = Command::new("umount").arg("-l").arg(&stale).output();
            let _ = fs::remove_file(&stale);
        }
        let _ = Command::new("ip").args(["link", "del", &veth]).output();

        let gw = format!("{}/30", slot.gateway());
        let host = format!("{}/30", slot.host());
        run("ip", &["netns", "add", &name])?;
        let netns = Netns { name, veth };
        let ns = netns.name.as_str();
        let v = netns.veth.as_str();
        run(
            "ip",
            &["link", "add", v, "type", "veth", "peer", "name", &peer],
        )?;
        run("ip", &["link", "set", &peer, "netns", ns])?;
        run("ip", &["-n", ns, "link", "set", &peer, "name", "eth0"])?;
        run("ip", &["-n", ns, "addr", "add", &host, "dev", "eth0"])?;
        run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        run("ip", &["addr", "add", &gw, "dev", v])?;
        run("ip", &["link", "set", v, "up"])?;
        Ok(netns)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth and so both ends.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .stderr(Stdio::null())
            .output();
    }
}

/// A host's files: overlay over the shared image, writable layer, nspawn log.
#[derive(Debug)]
struct Overlay {
    dir: PathBuf,
    merged: PathBuf,
    tmpfs: bool,
    mounted: bool,
}

impl Overlay {
    fn create(lower: &Path, disk_limit_mb: Option<u32>) -> Result<Overlay> {
        let dir = tempfile::Builder::new()
            .prefix("ck-testhost-")
            .tempdir()
            .context("creating the host's directory")?
            .keep();
        let mut ov = Overlay {
            merged: dir.join("merged"),
            dir,
            tmpfs: false,
            mounted: false,
        };
        let rw = ov.dir.join("rw");
        fs::create_dir_all(&rw)?;
        if let Some(mb) = disk_limit_mb {
            run(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={mb}m,mode=755"),
                    "ck-testhost-disk",
                    path_str(&rw)?,
                ],
            )?;
            ov.tmpfs = true;
        }
        let (upper, work) = (rw.join("upper"), rw.join("work"));
        fs::create_dir_all(&upper)?;
        fs::create_dir_all(&work)?;
        fs::create_dir_all(&ov.merged)?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        run(
            "mount",
            &[
                "-t",
                "overlay",
                "ck-testhost",
                "-o",
                &opts,
                path_str(&ov.merged)?,
            ],
        )?;
        ov.mounted = true;
        Ok(ov)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nspawn.log")
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let mut clean = true;
        if self.mounted {
            clean &= umount(&self.merged);
        }
        if self.tmpfs {
            clean &= umount(&self.dir.join("rw"));
        }
        // Never delete through a mount that is still there.
        if clean {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "testhost: could not unmount in {}; left it in place",
                self.dir.display()
            );
        }
    }
}

fn umount(path: &Path) -> bool {
    for _ in 0..50 {
        match Command::new("umount").arg(path).output() {
            Ok(o) if o.status.success() => return true,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Command::new("umount")
        .arg("-l")
        .arg(path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A booted test host. See the module documentation.
#[derive(Debug)]
pub struct TestHost {
    opts: HostOptions,
    nspawn: Option<Child>,
    /// PID (in our PID namespace) of the container's init (systemd).
    leader: u32,
    // Drop order matters: overlay (after nspawn is gone), then netns, then slot.
    overlay: Option<Overlay>,
    netns: Option<Netns>,
    slot: Option<Slot>,
}

impl TestHost {
    /// Boot a fresh host and wait until its sshd answers on [`Self::addr`]:22
    /// (≈1–2 s; fails after 30 s with the tail of nspawn's output).
    pub async fn boot(opts: HostOptions) -> Result<TestHost> {
        let slot = Slot::claim()?;
        let netns = Netns::create(&slot).context("setting up the host's network")?;
        Self::boot_in(opts, slot, netns).await
    }

    /// Stop `old` and boot a fresh host (new overlay, so new host keys and a
    /// new machine-id) that answers on the same address, as when a server is
    /// rebuilt or an address is reused: for "host key changed" tests.
    /// `opts` replaces the old host's options when given.
    pub async fn replace_on_same_address(
        mut old: TestHost,
        opts: Option<HostOptions>,
    ) -> Result<TestHost> {
        old.stop_container().await;
        let opts = opts.unwrap_or_else(|| old.opts.clone());
        let slot = old.slot.take().context("old host has no slot")?;
        let netns = old.netns.take().context("old host has no network")?;
        drop(old);
        Self::boot_in(opts, slot, netns).await
    }

    async fn boot_in(opts: HostOptions, slot: Slot, netns: Netns) -> Result<TestHost> {
        let lower = unpacked_image()?;
        let overlay = Overlay::create(&lower, opts.disk_limit_mb)?;
        let mut host = TestHost {
            opts,
            nspawn: None,
            leader: 0,
            overlay: Some(overlay),
            netns: Some(netns),
            slot: Some(slot),
        };
        host.prepare_root()
            .context("preparing the host's root file system")?;
        host.start_container().await?;
        Ok(host)
    }

    /// The host's address (its `eth0`), e.g. `10.213.3.2`.
    pub fn addr(&self) -> Ipv4Addr {
        self.slot().host()
    }

    /// Our side of the veth, e.g. `10.213.3.1`: a server bound here in the
    /// test process is reachable from the host (and from nowhere else).
    pub fn gateway_addr(&self) -> Ipv4Addr {
        self.slot().gateway()
    }

    /// PID (in our PID namespace) of the host's init (systemd): the root of every process
    /// the host runs, for measuring what they use (0 while not booted).
    pub fn leader_pid(&self) -> u32 {
        self.leader
    }

    /// sshd's port on [`Self::addr`].
    pub fn ssh_port(&self) -> u16 {
        22
    }

    /// `addr():ssh_port()`.
    pub fn ssh_addr(&self) -> SocketAddr {
        SocketAddr::from((self.addr(), self.ssh_port()))
    }

    /// The host's root file system as the container sees it (the overlay's
    /// merged dir), for reading files directly.
    pub fn root(&self) -> &Path {
        &self.overlay().merged
    }

    /// The host's ed25519 host key fingerprint as OpenSSH prints it:
    /// `SHA256:<unpadded base64 of sha256(key blob)>`.
    pub fn host_key_fingerprint_sha256(&self) -> Result<String> {
        let path = self.root().join("etc/ssh/ssh_host_ed25519_key.pub");
        let line =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        fingerprint_sha256(&line)
    }

    /// The host's ed25519 public host key line (`ssh-ed25519 AAAA… root@…`),
    /// e.g. for a known_hosts file.
    pub fn host_public_key(&self) -> Result<String> {
        let path = self.root().join("etc/ssh/ssh_host_ed25519_key.pub");
        Ok(fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string())
    }

    /// Run `cmd` with `sh -c` INSIDE the host without SSH (nsenter into the
    /// container's mount, UTS, IPC, network, PID and cgroup namespaces as
    /// root, clean environment), so tests can check the host independently
    /// of the code under test. Returns the output whatever the exit status.
    pub async fn inspect(&self, cmd: &str) -> Result<Output> {
        let leader = self.leader.to_string();
        tokio::process::Command::new("nsenter")
            .args([
                "-t", &leader, "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
            ])
            .args(["--", "env", "-i"])
            .args([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "LANG=C.UTF-8",
                "TERM=dumb",
                "sh",
                "-c",
                cmd,
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("nsenter into the test host for: {cmd}"))
    }

    /// [`Self::inspect`], but fail unless `cmd` exits 0; returns its stdout.
    pub async fn inspect_ok(&self, cmd: &str) -> Result<String> {
        let out = self.inspect(cmd).await?;
        if !out.status.success() {
            bail!(
                "in the test host, `{cmd}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Simulate a reboot: shut the container down (one SIGTERM, as a clean
    /// `systemctl poweroff`) if it still runs — it may have exited on its own
    /// after `systemctl reboot` inside — and boot it again on the same
    /// overlay; returns when sshd answers again (~1 s).
    pub async fn reboot(&mut self) -> Result<()> {
        self.stop_container().await;
        self.start_container().await
    }

    /// Has nspawn exited (e.g. after `systemctl reboot`/`poweroff` inside)?
    /// Returns its exit code then (133 after a reboot request).
    pub fn exited(&mut self) -> Option<i32> {
        match self.nspawn.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.code().unwrap_or(-1)),
            Some(Ok(None)) => None,
            _ => Some(-1),
        }
    }

    /// Stop the host and clean everything up (what drop does, awaited).
    pub async fn stop(mut self) {
        self.stop_container().await;
        // Drop unmounts, deletes the netns and releases the slot.
    }

    /// Last `lines` lines of nspawn's output (the container's console).
    pub fn console_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.overlay().log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn slot(&self) -> &Slot {
        // Only None transiently inside replace_on_same_address.
        self.slot
            .as_ref()
            .unwrap_or_else(|| unreachable!("slot taken"))
    }

    fn overlay(&self) -> &Overlay {
        self.overlay
            .as_ref()
            .unwrap_or_else(|| unreachable!("overlay taken"))
    }

    /// Host keys, authorized keys, password, os-release: before first boot.
    fn prepare_root(&self) -> Result<()> {
        let root = self.root().to_path_buf();
        run("chroot", &[path_str(&root)?, "ssh-keygen", "-A"])?;

        let ssh = root.join("root/.ssh");
        fs::create_dir_all(&ssh)?;
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700))?;
        let mut keys = String::new();
        for k in &self.opts.authorized_keys {
            keys.push_str(k.trim());
            keys.push('\n');
        }
        let ak = ssh.join("authorized_keys");
        fs::write(&ak, keys)?;
        fs::set_permissions(&ak, fs::Permissions::from_mode(0o600))?;

        if let Some((user, password)) = &self.opts.password_login {
            if user.is_empty()
                || !user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                bail!("password_login: bad user name {user:?}");
            }
            let r = path_str(&root)?;
            let exists = Command::new("chroot")
                .args([r, "id", "-u", user])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !exists {
                run(
                    "chroot",
                    &[r, "useradd", "-m", "-s", "/bin/bash", "-G", "sudo", user],
                )?;
            }
            let mut child = Command::new("chroot")
                .args([r, "chpasswd"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("chpasswd")?;
            if let Some(mut stdin) = child.stdin.take() {
                writeln!(stdin, "{user}:{password}")?;
            }
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!("chpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let mut conf = String::from(
                "# clawkeeper test host: password logins allowed\nPasswordAuthentication yes\n",
            );
            if user == "root" {
                conf.push_str("PermitRootLogin yes\n");
            }
            fs::write(
                root.join("etc/ssh/sshd_config.d/50-testhost-password.conf"),
                conf,
            )?;
        }

        if let Some(text) = &self.opts.os_release {
            // /etc/os-release is a symlink to ../usr/lib/os-release on Debian.
            let p = root.join("etc/os-release");
            let _ = fs::remove_file(&p);
            fs::write(&p, text)?;
            let usr = root.join("usr/lib/os-release");
            let _ = fs::remove_file(&usr);
            fs::write(&usr, text)?;
        }
        Ok(())
    }

    async fn start_container(&mut self) -> Result<()> {
        let (merged, log_path) = {
            let ov = self.overlay();
            (ov.merged.clone(), ov.log_path())
        };
        let netns_path = self.netns.as_ref().context("no network namespace")?.path();
        let machine = format!("ck-testhost-{}", self.slot().index);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        writeln!(
            log,
            "---- clawkeeper testhost: systemd-nspawn starting ----"
        )?;
        let child = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&merged)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=read-only",
                "--capability=CAP_NET_ADMIN",
                "--machine",
                &machine,
            ])
            .arg(format!("--network-namespace-path={}", netns_path.display()))
            .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting systemd-nspawn (is systemd-container installed?)")?;
        let pid = child.id();
        self.nspawn = Some(child);

        let deadline = Instant::now() + BOOT_TIMEOUT;
        let addr = self.ssh_addr();
        loop {
            if let Some(code) = self.exited() {
                bail!(
                    "systemd-nspawn exited ({code}) before sshd answered; its output ends:\n{}",
                    self.console_tail(30)
                );
            }
            if self.leader == 0 || !is_child_of(self.leader, pid) {
                self.leader = find_leader(pid).unwrap_or(0);
            }
            if self.leader != 0 && ssh_banner(addr).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail = self.console_tail(30);
                self.stop_container().await;
                bail!(
                    "the test host did not answer SSH on {addr} within {} s; nspawn's output ends:\n{tail}",
                    BOOT_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One SIGTERM to nspawn, wait, SIGKILL after STOP_TIMEOUT.
    async fn stop_container(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            sigterm(child.id());
            let deadline = Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = child.try_wait() {
                if Instant::now() > deadline {
                    eprintln!("testhost: nspawn ignored SIGTERM for {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.leader = 0;
    }

    fn stop_container_blocking(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            sigterm(child.id());
            let deadline = Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = child.try_wait() {
                if Instant::now() > deadline {
                    eprintln!("testhost: nspawn ignored SIGTERM for {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.leader = 0;
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop_container_blocking();
        // Then, in this order: unmount + delete files, delete netns, release slot.
        drop(self.overlay.take());
        drop(self.netns.take());
        drop(self.slot.take());
    }
}

fn sigterm(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// The container's init: the descendant of nspawn that is PID 1 in its own
/// PID namespace (`NSpid:` in /proc/<pid>/status ends with 1).
fn find_leader(nspawn: u32) -> Option<u32> {
    let mut queue = vec![nspawn];
    while let Some(p) = queue.pop() {
        for c in children(p) {
            let status = fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
            let nspid = status.lines().find(|l| l.starts_with("NSpid:"));
            if let Some(l) = nspid {
                let ids: Vec<&str> = l.split_whitespace().skip(1).collect();
                if ids.len() >= 2 && ids.last() == Some(&"1") {
                    return Some(c);
                }
            }
            queue.push(c);
        }
    }
    None
}

fn is_child_of(pid: u32, parent: u32) -> bool {
    children(parent).contains(&pid)
}

fn children(pid: u32) -> Vec<u32> {
    // /proc/<pid>/task/<tid>/children lists the children of each thread.
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Does `addr` answer with an SSH banner?
async fn ssh_banner(addr: SocketAddr) -> bool {
    let probe = tokio::task::spawn_blocking(move || -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 8 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got.starts_with(b"SSH-2.0-")
    });
    probe.await.unwrap_or(false)
}

/// OpenSSH's `SHA256:` fingerprint of a public key line (`type base64 [comment]`).
pub fn fingerprint_sha256(public_key_line: &str) -> Result<String> {
    let b64 = public_key_line
        .split_whitespace()
        .nth(1)
        .context("not an OpenSSH public key line")?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .context("public key is not base64")?;
    let digest = Sha256::digest(&blob);
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// The image from `CLAWKEEPER_TESTHOST_IMAGE`, unpacked once into
/// `<image>.rootfs/` (under a lock; concurrent callers wait for the first).
fn unpacked_image() -> Result<PathBuf> {
    let image = std::env::var_os(IMAGE_ENV).map(PathBuf::from).with_context(|| {
        format!("{IMAGE_ENV} is not set: run the tests with scripts/test.sh (it builds the test host image with scripts/testhost-image.sh)")
    })?;
    if !image.is_file() {
        bail!(
            "{IMAGE_ENV}={} does not exist: run scripts/test.sh",
            image.display()
        );
    }
    let name = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.zst"))
        .with_context(|| format!("{IMAGE_ENV} must name a .tar.zst file"))?
        .to_string();
    let parent = image.parent().unwrap_or(Path::new("/"));
    let rootfs = parent.join(format!("{name}.rootfs"));
    let marker = rootfs.join(".clawkeeper-unpacked");
    if marker.exists() {
        return Ok(rootfs);
    }
    let lock_path = parent.join(format!("{name}.unpack.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| anyhow!("flock {}: {e}", lock_path.display()))?;
    if marker.exists() {
        return Ok(rootfs);
    }
    let tmp = parent.join(format!(".tmp-{name}.rootfs.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let out = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--acls", "-I", "zstd", "-xf"])
        .arg(&image)
        .arg("-C")
        .arg(&tmp)
        .output()
        .context("running tar")?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        bail!(
            "unpacking {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::write(tmp.join(".clawkeeper-unpacked"), b"")?;
    let _ = fs::remove_dir_all(&rootfs); // an incomplete older attempt
    fs::rename(&tmp, &rootfs)?;
    Ok(rootfs)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

/// Run a command; fail with its stderr unless it exits 0.
fn run(prog: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_openssh() {
        // As printed by `ssh-keygen -lf` for this key.
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzv2v+W+zLO8RM9dj2gK+BXaL3wVLRQux9uMepJTyvz test";
        assert_eq!(
            fingerprint_sha256(line).unwrap(),
            "SHA256:icGp8DhBNbXMiBIBrQpUuKQk5Q8DAL6UZewZxLryWew"
        );
        assert!(fingerprint_sha256("garbage").is_err());
    }

    #[test]
    fn slot_addresses() {
        let f = tempfile::tempfile().unwrap();
        let s = Slot { index: 3, _lock: f };
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 213, 0, 13));
        assert_eq!(s.host(), Ipv4Addr::new(10, 213, 0, 14));
        let f = tempfile::tempfile().unwrap();
        let s = Slot {
            index: 16383,
            _lock: f,
        };
        assert_eq!(s.host(), Ipv4Addr::new(10, 213, 255, 254));
    }
}
