//! The SSH layer against a real OpenSSH server on loopback: host key pinning, commands
//! with stdin/stdout/stderr/exit codes, refused keys, a changed host key, and a
//! `direct-tcpip` tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::remote::Remote;
use clawkeeper_core::ssh::{self, keys, Auth, Session, Target, Tunnel};
use clawkeeper_core::UserFacing;
use clawkeeper_tests::sshd::LoopbackSshd;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn me() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

async fn connected() -> (LoopbackSshd, Session, Target) {
    let key = keys::generate_ed25519("clawkeeper-test").unwrap();
    let sshd = LoopbackSshd::start(&[keys::public_line(key.public_key()).unwrap()]).unwrap();
    let target = Target::new("127.0.0.1", sshd.port(), me());
    let host = ssh::scan_host_key(&target).await.unwrap();
    let session = Session::connect(&target, &host, &Auth::Key(Arc::new(key)))
        .await
        .unwrap();
    (sshd, session, target)
}

#[tokio::test]
async fn first_contact_shows_the_same_fingerprint_as_ssh_keygen() {
    let sshd = LoopbackSshd::start(&[]).unwrap();
    let target = Target::new("127.0.0.1", sshd.port(), "root");
    let host = ssh::scan_host_key(&target).await.unwrap();
    assert_eq!(host.fingerprint, sshd.host_fingerprint().unwrap());
    assert_eq!(host.algorithm, "ssh-ed25519");
    // Scanning stops after key exchange: the server saw no login attempt.
    let log = sshd.log();
    assert!(
        !log.contains("Accepted") && !log.contains("Failed"),
        "{log}"
    );
}

#[tokio::test]
async fn commands_return_output_stderr_and_exit_codes() {
    let (_sshd, session, _) = connected().await;
    let out = session
        .run("echo out; echo err >&2; exit 3", None)
        .await
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout_lossy(), "out\n");
    assert_eq!(out.stderr_lossy(), "err\n");
    let ok = session.run("true", None).await.unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn stdin_carries_data_that_never_appears_in_the_command() {
    let (_sshd, session, _) = connected().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let secret = b"sk-planted-ssh-stdin-4f1c";
    let cmd = format!("umask 077; cat > '{}'", path.display());
    assert!(!cmd.contains("sk-planted"));
    let out = session.run(&cmd, Some(secret)).await.unwrap();
    assert!(out.success(), "{}", out.tail(5));
    assert_eq!(std::fs::read(&path).unwrap(), secret);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A megabyte through stdin and back, intact.
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let out = session.run("sha256sum", Some(&big)).await.unwrap();
    let want = hex_digest(&big);
    assert!(
        out.stdout_lossy().starts_with(&want),
        "{}",
        out.stdout_lossy()
    );
}

fn hex_digest(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_refused() {
    let known = keys::generate_ed25519("known").unwrap();
    let stranger = keys::generate_ed25519("stranger").unwrap();
    let sshd = LoopbackSshd::start(&[keys::public_line(known.public_key()).unwrap()]).unwrap();
    let target = Target::new("127.0.0.1", sshd.port(), me());
    let host = ssh::scan_host_key(&target).await.unwrap();
    let e = Session::connect(&target, &host, &Auth::Key(Arc::new(stranger)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "host_auth_rejected", "{e}");
    assert!(e.hint().is_some());
}

#[tokio::test]
async fn a_changed_host_key_is_refused_before_anything_is_sent() {
    let key = keys::generate_ed25519("clawkeeper-test").unwrap();
    let mut sshd = LoopbackSshd::start(&[keys::public_line(key.public_key()).unwrap()]).unwrap();
    let target = Target::new("127.0.0.1", sshd.port(), me());
    let pinned = ssh::scan_host_key(&target).await.unwrap();
    // The pin works ...
    let s = Session::connect(&target, &pinned, &Auth::Key(Arc::new(key.clone())))
        .await
        .unwrap();
    s.close().await;
    // ... then another server answers on the same address.
    sshd.replace_host_key().unwrap();
    let new_fp = sshd.host_fingerprint().unwrap();
    assert_ne!(new_fp, pinned.fingerprint);
    let e = Session::connect(&target, &pinned, &Auth::Key(Arc::new(key)))
        .await
        .unwrap_err();
    match &e {
        ssh::Error::HostKeyChanged { expected, got, .. } => {
            assert_eq!(expected, &pinned.fingerprint);
            assert_eq!(got, &new_fp);
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert_eq!(e.code(), "host_key_changed");
    // Nothing was sent: the impostor never saw a user name or a key.
    let log = sshd.log();
    assert!(!log.contains("Accepted"), "{log}");
    assert!(!log.contains("Failed"), "{log}");
    assert!(!log.contains(&format!("user {}", me())), "{log}");
}

#[tokio::test]
async fn a_tunnel_reaches_a_loopback_service_on_the_server() {
    let (_sshd, session, _) = connected().await;
    // A TCP echo service on "the server's" loopback (here the same machine).
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let tunnel = Tunnel::open(Arc::new(session), "127.0.0.1", echo_port)
        .await
        .unwrap();
    assert!(tunnel.local_addr().ip().is_loopback());
    // Two connections at once, each gets its own bytes back.
    let mut tasks = Vec::new();
    for n in 0..2u8 {
        let addr = tunnel.local_addr();
        tasks.push(tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let msg: Vec<u8> = std::iter::repeat_n(b'a' + n, 100_000).collect();
            c.write_all(&msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tunnel.close();
}
