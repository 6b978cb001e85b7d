//! Connecting a server the person already has, against a real test host (systemd-nspawn,
//! real sshd, its own network namespace): first contact shows the host's real fingerprint,
//! a one-time password gets the app's own key installed, wrong credentials and a changed
//! host key are refused with nothing pinned or sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::remote::Remote;
use clawkeeper_core::server::{self, FirstLogin};
use clawkeeper_core::ssh::{self, hosts, keys, Target};
use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::{Secret, UserFacing};
use clawkeeper_tests::env;
use clawkeeper_tests::testhost::{HostOptions, TestHost};

const PASSWORD: &str = "one-time-Pw-7d1e9";

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("clawkeeper.db"))
        .await
        .unwrap();
    (dir, store)
}

fn vault() -> Vault {
    Vault::new(&std::env::var("CLAWKEEPER_KEYCHAIN_NAMESPACE").unwrap_or("clawkeeper-test".into()))
}

fn password_host() -> HostOptions {
    HostOptions {
        password_login: Some(("root".into(), PASSWORD.into())),
        ..HostOptions::default()
    }
}

#[tokio::test]
async fn a_one_time_password_gets_the_apps_own_key_installed() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts)");
        return;
    }
    let host = TestHost::boot(password_host()).await.unwrap();
    let (_d, store) = store().await;
    let vault = vault();
    let id = format!("srv-pw-{}", std::process::id());
    let target = Target::new(host.addr().to_string(), 22, "root");

    // First contact: the fingerprint the person sees is the host's real one.
    let host_key = ssh::scan_host_key(&target).await.unwrap();
    assert_eq!(
        host_key.fingerprint,
        host.host_key_fingerprint_sha256().unwrap()
    );

    let connected = server::adopt(
        &store,
        &vault,
        &id,
        "Test server",
        &target,
        &host_key,
        FirstLogin::Password(Secret::new(PASSWORD)),
    )
    .await
    .unwrap();
    assert!(connected.used_password);
    let whoami = connected.session.run("id -u", None).await.unwrap();
    assert_eq!(whoami.stdout_lossy().trim(), "0");

    // On the host: exactly one line for the app's key, the file private.
    let line = connected.record.app_key_public.clone().unwrap();
    let ak = host
        .inspect_ok("cat /root/.ssh/authorized_keys; stat -c %a /root/.ssh/authorized_keys")
        .await
        .unwrap();
    assert_eq!(ak.lines().filter(|l| *l == line).count(), 1, "{ak}");
    assert!(line.ends_with(&format!(" clawkeeper-{id}")), "{line}");
    assert_eq!(ak.lines().last(), Some("600"), "{ak}");

    // Adopting again changes nothing on the host (same key, one line).
    connected.session.close().await;
    let again = server::adopt(
        &store,
        &vault,
        &id,
        "Test server",
        &target,
        &host_key,
        FirstLogin::Password(Secret::new(PASSWORD)),
    )
    .await
    .unwrap();
    assert_eq!(again.record.app_key_public.as_deref(), Some(line.as_str()));
    let ak = host
        .inspect_ok("cat /root/.ssh/authorized_keys")
        .await
        .unwrap();
    assert_eq!(ak.lines().filter(|l| *l == line).count(), 1, "{ak}");

    // Later sessions: pinned key + the app's key from the keychain.
    let s = server::open_session(&store, &vault, &id).await.unwrap();
    assert!(s.run("true", None).await.unwrap().success());

    // The password was never kept; the app key's private half is only in the keychain.
    let refs = vault.list().await.unwrap();
    assert!(refs.contains(&SecretRef::new(SecretKind::SshKey, &id)));
    assert!(!refs.iter().any(|r| r.kind == SecretKind::SshPassword));
    let private = vault
        .read(&SecretRef::new(SecretKind::SshKey, &id))
        .await
        .unwrap();
    let body: String = private
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let needles = [PASSWORD, &body[..40]];
    let hits = clawkeeper_tests::scan::files_containing(_d.path(), &needles);
    assert!(hits.is_empty(), "secret found on disk: {hits:?}");
    let hits = host
        .inspect(&format!(
            "grep -rlF -e {PASSWORD} /etc /root /var/log /home 2>/dev/null"
        ))
        .await
        .unwrap();
    assert!(
        hits.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&hits.stdout)
    );
    vault
        .delete(&SecretRef::new(SecretKind::SshKey, &id))
        .await
        .unwrap();
    host.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_nothing_is_pinned() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts)");
        return;
    }
    let host = TestHost::boot(password_host()).await.unwrap();
    let (_d, store) = store().await;
    let vault = vault();
    let target = Target::new(host.addr().to_string(), 22, "root");
    let host_key = ssh::scan_host_key(&target).await.unwrap();

    let e = server::adopt(
        &store,
        &vault,
        "srv-wrong-pw",
        "x",
        &target,
        &host_key,
        FirstLogin::Password(Secret::new("not-the-password")),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "host_auth_rejected", "{e}");

    let stranger = keys::generate_ed25519("stranger").unwrap();
    let e = server::adopt(
        &store,
        &vault,
        "srv-wrong-key",
        "x",
        &target,
        &host_key,
        FirstLogin::Key {
            private: keys::to_openssh(&stranger).unwrap(),
            passphrase: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "host_auth_rejected", "{e}");
    assert!(hosts::get(&store, "srv-wrong-pw").await.unwrap().is_none());
    assert!(hosts::get(&store, "srv-wrong-key").await.unwrap().is_none());
    let ak = host
        .inspect("cat /root/.ssh/authorized_keys")
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&ak.stdout).contains("clawkeeper-"));

    // Nothing listening: a clear "unreachable", not a hang.
    let e = ssh::scan_host_key(&Target::new(host.addr().to_string(), 2222, "root"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "host_unreachable", "{e}");
    host.stop().await;
}

#[tokio::test]
async fn another_server_on_the_pinned_address_is_refused_before_login() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts)");
        return;
    }
    let user_key = keys::generate_ed25519("person").unwrap();
    let opts = HostOptions::with_key(keys::public_line(user_key.public_key()).unwrap());
    let host = TestHost::boot(opts.clone()).await.unwrap();
    let (_d, store) = store().await;
    let vault = vault();
    let id = format!("srv-hk-{}", std::process::id());
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
            private: keys::to_openssh(&user_key).unwrap(),
            passphrase: None,
        },
    )
    .await
    .unwrap();
    c.session.close().await;

    // The address now answers with another machine (same authorized keys, new host keys).
    let impostor = TestHost::replace_on_same_address(host, Some(opts))
        .await
        .unwrap();
    assert_ne!(
        impostor.host_key_fingerprint_sha256().unwrap(),
        pinned.fingerprint
    );
    let e = server::open_session(&store, &vault, &id).await.unwrap_err();
    assert_eq!(e.code(), "host_key_changed", "{e}");
    assert!(e.to_string().contains(&pinned.fingerprint), "{e}");
    // The impostor saw no login attempt at all.
    let log = impostor
        .inspect("journalctl --no-pager -q -u ssh.service")
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        !log.contains("Accepted") && !log.contains("Failed"),
        "{log}"
    );
    // The pin is unchanged.
    let rec = hosts::get(&store, &id).await.unwrap().unwrap();
    assert_eq!(rec.host_key.fingerprint, pinned.fingerprint);
    for r in [id.clone(), format!("{id}-imported")] {
        let _ = vault.delete(&SecretRef::new(SecretKind::SshKey, &r)).await;
    }
    impostor.stop().await;
}
