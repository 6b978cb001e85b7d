//! Support access on a real test host: a one-time key for a helper that works (a shell,
//! no forwarding), shows up in the list, is revoked at once on request, and on its own
//! at the expiry (sshd's expiry-time and the timer that removes it), all audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::audit;
use clawkeeper_core::remote::Remote;
use clawkeeper_core::server::{self, support, FirstLogin};
use clawkeeper_core::ssh::{self, keys, Auth, Session, Target, Tunnel};
use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::UserFacing;
use clawkeeper_tests::env;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread")]
async fn provision_support_key_works_then_is_revoked_or_expires() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts)");
        return;
    }
    let person = keys::generate_ed25519("person").unwrap();
    let host = TestHost::boot(HostOptions::with_key(
        keys::public_line(person.public_key()).unwrap(),
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("c.db")).await.unwrap();
    let vault = Vault::new(&std::env::var("CLAWKEEPER_KEYCHAIN_NAMESPACE").unwrap());
    let id = format!("support-{}", std::process::id());
    let target = Target::new(host.addr().to_string(), 22, "root");
    let pinned = ssh::scan_host_key(&target).await.unwrap();
    let c = server::adopt(
        &store,
        &vault,
        &id,
        "x",
        &target,
        &pinned,
        FirstLogin::Key {
            private: keys::to_openssh(&person).unwrap(),
            passphrase: None,
        },
    )
    .await
    .unwrap();
    let session = c.session;

    // Issue: the helper gets in with the key, for a shell only.
    let issued = support::issue(
        &store,
        &session,
        &id,
        Duration::from_secs(3600),
        "Sam from the forum",
    )
    .await
    .unwrap();
    let helper_key = keys::parse_private(&issued.private_key, None).unwrap();
    let helper = Session::connect(&target, &pinned, &Auth::Key(Arc::new(helper_key.clone())))
        .await
        .unwrap();
    assert_eq!(
        helper
            .run("id -u", None)
            .await
            .unwrap()
            .stdout_lossy()
            .trim(),
        "0"
    );
    let ak = host
        .inspect_ok("cat /root/.ssh/authorized_keys")
        .await
        .unwrap();
    let line = ak
        .lines()
        .find(|l| l.contains(&format!("clawkeeper-support-{}", issued.grant.id)))
        .unwrap();
    assert!(
        line.starts_with("expiry-time=\"") && line.contains(",restrict,pty "),
        "{line}"
    );
    let timer = format!("clawkeeper-support-{}.timer", issued.grant.id);
    assert_eq!(
        host.inspect_ok(&format!("systemctl is-active {timer}"))
            .await
            .unwrap()
            .trim(),
        "active"
    );
    // restrict: no port forwarding for the helper.
    let t = Tunnel::open(Arc::new(helper), "127.0.0.1", 22)
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(t.local_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "forwarding worked for a support key: {:?}", &buf[..n]);
    t.close();

    // Listed, and seen on the server.
    let grants = support::list(&store, Some(&session), &id).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].on_server, Some(true));
    assert_eq!(grants[0].note, "Sam from the forum");
    assert!(grants[0].active(time::OffsetDateTime::now_utc()));

    // Revoke: at once, the helper is out.
    support::revoke(&store, &session, &id, &issued.grant.id)
        .await
        .unwrap();
    let e = Session::connect(&target, &pinned, &Auth::Key(Arc::new(helper_key)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "host_auth_rejected", "{e}");
    let grants = support::list(&store, Some(&session), &id).await.unwrap();
    assert!(grants[0].revoked_at.is_some());
    assert_eq!(grants[0].on_server, Some(false));
    assert!(
        host.inspect(&format!("test -e /etc/systemd/system/{timer}"))
            .await
            .unwrap()
            .status
            .code()
            == Some(1)
    );

    // Expiry: a 5-second window. sshd refuses it afterwards, and the timer removes it.
    let short = support::issue(&store, &session, &id, Duration::from_secs(5), "")
        .await
        .unwrap();
    let short_key = Arc::new(keys::parse_private(&short.private_key, None).unwrap());
    Session::connect(&target, &pinned, &Auth::Key(short_key.clone()))
        .await
        .unwrap()
        .close()
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let e = Session::connect(&target, &pinned, &Auth::Key(short_key))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "host_auth_rejected", "{e}");
    let tag = format!("clawkeeper-support-{}", short.grant.id);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ak = host
            .inspect_ok("cat /root/.ssh/authorized_keys")
            .await
            .unwrap();
        if !ak.contains(&tag) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expiry timer never removed the key:\n{ak}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The person's own keys are untouched.
    let ak = host
        .inspect_ok("cat /root/.ssh/authorized_keys")
        .await
        .unwrap();
    assert!(ak.contains(&keys::public_line(person.public_key()).unwrap()));
    assert!(ak.contains(&format!("clawkeeper-{id}")));

    let actions: Vec<String> = audit::recent(&store, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "support.issued").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "support.revoked").count(),
        1,
        "{actions:?}"
    );

    session.close().await;
    for r in [id.clone(), format!("{id}-imported")] {
        let _ = vault.delete(&SecretRef::new(SecretKind::SshKey, &r)).await;
    }
    host.stop().await;
}
