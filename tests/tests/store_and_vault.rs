//! The store and the vault against the real things: SQLite files killed mid-write, and the
//! real Secret Service (gnome-keyring in the test session).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::{audit, Secret};
use clawkeeper_tests::env;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn store_kill9_mid_write_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("clawkeeper.db");
    let mut child = Command::new(env::bin("store-writer"))
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("store-writer is built by cargo build --workspace");
    let stdout = child.stdout.take().unwrap();
    let mut committed = Vec::new();
    for line in BufReader::new(stdout).lines() {
        committed.push(line.unwrap().parse::<i64>().unwrap());
        if committed.len() == 300 {
            break;
        }
    }
    // SIGKILL while it keeps writing.
    child.kill().unwrap();
    child.wait().unwrap();

    let (store, recovered) = Store::open(&db).await.unwrap();
    assert!(
        recovered.is_none(),
        "a killed writer must not damage the database"
    );
    let rows = audit::verify(&store)
        .await
        .expect("hash chain intact after SIGKILL");
    let last = *committed.last().unwrap();
    assert!(
        rows >= last,
        "committed up to {last} but only {rows} rows survived"
    );
}

#[tokio::test]
async fn vault_round_trip_in_the_real_keychain() {
    if !env::isolated() {
        eprintln!("skipped: needs the test session's keyring (scripts/test.sh)");
        return;
    }
    let vault = Vault::new(&format!("clawkeeper-test-vault-{}", std::process::id()));
    let r = SecretRef::new(SecretKind::ProviderKey, "vaulttest");
    let secret = Secret::new("sk-vault-planted-7f3a9c");
    vault.store(&r, &secret).await.unwrap();
    assert_eq!(vault.read(&r).await.unwrap(), secret);
    assert_eq!(vault.list().await.unwrap(), vec![r.clone()]);

    // Visible to the desktop's own tools, under our namespace.
    let out = Command::new("secret-tool")
        .args([
            "lookup",
            "service",
            vault.namespace(),
            "username",
            "provider-key/vaulttest",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sk-vault-planted-7f3a9c"
    );

    // Replace, then delete; a second delete is fine.
    vault.store(&r, &Secret::new("sk-second")).await.unwrap();
    assert_eq!(vault.read(&r).await.unwrap().expose(), "sk-second");
    vault.delete(&r).await.unwrap();
    vault.delete(&r).await.unwrap();
    assert!(matches!(
        vault.read(&r).await,
        Err(clawkeeper_core::vault::Error::NotFound(_))
    ));
    assert!(vault.list().await.unwrap().is_empty());
}

#[test]
fn keyhelper_answers_the_exec_protocol() {
    if !env::isolated() {
        eprintln!("skipped: needs the test session's keyring (scripts/test.sh)");
        return;
    }
    let ns = format!("clawkeeper-test-helper-{}", std::process::id());
    let vault = Vault::new(&ns);
    let r = SecretRef::new(SecretKind::GatewayToken, "helper");
    vault
        .store_blocking(&r, &Secret::new("tok-planted-5521"))
        .unwrap();
    let mut child = Command::new(env::bin("clawkeeper-keyhelper"))
        .args(["--namespace", &ns])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"protocolVersion":1,"provider":"clawkeeper","ids":["gateway-token/helper","provider-key/missing","../etc/passwd"]}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["protocolVersion"], 1);
    assert_eq!(v["values"]["gateway-token/helper"], "tok-planted-5521");
    assert_eq!(v["errors"]["provider-key/missing"]["code"], "NOT_FOUND");
    assert_eq!(v["errors"]["../etc/passwd"]["code"], "NOT_FOUND");
    vault.delete_blocking(&r).unwrap();
}
