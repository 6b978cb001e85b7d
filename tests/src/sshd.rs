//! A real OpenSSH server (`/usr/sbin/sshd`) on 127.0.0.1, for fast tests of the SSH layer
//! (exec, stdin, exit codes, host key pinning, `direct-tcpip` tunnels) without booting a
//! whole test host. Runs as root (as the suite does), from a private temp directory.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LoopbackSshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl LoopbackSshd {
    /// Start sshd on a free loopback port with a fresh ed25519 host key, accepting
    /// `authorized` public key lines for the current user (root in the suite).
    pub fn start(authorized: &[String]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        keygen(&dir.path().join("host_ed25519"))?;
        let mut me = Self {
            dir,
            port: crate::env::free_port(),
            child: None,
        };
        me.set_authorized(authorized)?;
        me.spawn()?;
        Ok(me)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host_key_pub(&self) -> Result<String> {
        Ok(
            std::fs::read_to_string(self.dir.path().join("host_ed25519.pub"))?
                .trim()
                .to_owned(),
        )
    }

    /// `SHA256:…` of the host key, as `ssh-keygen -l` prints it.
    pub fn host_fingerprint(&self) -> Result<String> {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_ed25519.pub"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(1)
            .map(str::to_owned)
            .context("ssh-keygen -l printed no fingerprint")
    }

    pub fn set_authorized(&mut self, lines: &[String]) -> Result<()> {
        std::fs::write(
            self.dir.path().join("authorized_keys"),
            lines.join("\n") + "\n",
        )?;
        Ok(())
    }

    /// What sshd logged so far (`-E` log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Stop, give the server a NEW host key, and start again on the same port: what a
    /// man in the middle (or a reinstalled server) looks like to a client.
    pub fn replace_host_key(&mut self) -> Result<()> {
        self.stop();
        for f in ["host_ed25519", "host_ed25519.pub"] {
            let _ = std::fs::remove_file(self.dir.path().join(f));
        }
        keygen(&self.dir.path().join("host_ed25519"))?;
        let _ = std::fs::remove_file(self.dir.path().join("sshd.log"));
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let d = self.dir.path();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile none\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nAllowTcpForwarding local\nLogLevel VERBOSE\n\
             MaxStartups 50\n",
            port = self.port,
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config)?;
        std::fs::create_dir_all("/run/sshd")?; // privilege separation directory
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            bail!("/usr/sbin/sshd is missing: run scripts/setup.sh --test (openssh-server)");
        }
        let child = Command::new(sshd)
            .args(["-D", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sshd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("sshd did not listen within 10 s; log:\n{}", self.log())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen(path: &Path) -> Result<()> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f"])
        .arg(path)
        .status()?;
    if !st.success() {
        bail!("ssh-keygen failed");
    }
    Ok(())
}
