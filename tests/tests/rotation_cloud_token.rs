//! Guided rotation of the Hetzner API token, end to end through `clawkeeper-cli`: the real
//! keychain (gnome-keyring in the test session), real SQLite, and the **contract fake of
//! the Hetzner Cloud API**, whose project holds the tokens the person makes and deletes in
//! the Console (`add_token`, `delete_token`). No gateway: only the app uses this token.
//!
//! - "Rotate" can't make a Hetzner token: it says how to do it by hand.
//! - A token Hetzner refuses changes nothing.
//! - The person's new token: checked, kept; the rotation then waits for them to delete the
//!   old one in the Console ("Check again" before that changes nothing), then finishes
//!   with the old one refused.
//! - Killed at a step boundary while waiting: the next run carries on from the journal.
//! - No token on disk, in logs, in process arguments, the journal or the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::Clawkeeper;
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::journal::{self, Outcome};
use clawkeeper_core::rotation::{staging, Step};
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_hetzner::{ContractFakeHetzner, FakeHetznerConfig};
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::{env, scan};

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::CloudToken, "hetzner")
}

/// Hetzner's answer to `token` on a read: 200 or 401.
async fn accepted(fake: &ContractFakeHetzner, token: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!("{}/locations", fake.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => true,
        401 => false,
        s => panic!("unexpected HTTP {s}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hetzner_token_guided_rotation() {
    if !env::isolated() {
        eprintln!("skipped: run through scripts/test.sh (needs the test session's keychain)");
        return;
    }
    let namespace = format!("clawkeeper-test-rotation-cloud-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    let fake = ContractFakeHetzner::start(FakeHetznerConfig::default())
        .await
        .unwrap();
    std::env::set_var("CLAWKEEPER_HETZNER_API", fake.base_url());
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir: data.path().join("runtime"),
    };
    let app = Clawkeeper::open(paths.clone(), Policy::default())
        .await
        .unwrap();
    let first = fake.token();
    app.cloud_token_save(Secret::new(first.clone()))
        .await
        .unwrap();
    let vault = Vault::new(&namespace);
    let cli = RotationCli { paths: &paths };
    let mut seen = vec![first.clone()];

    step("the keys list: the Hetzner token, guided");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let keys: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let row = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "cloud-token")
        .unwrap()
        .clone();
    assert_eq!(row["how"], "guided", "{row}");
    assert!(row["setAt"].is_string(), "{row}");
    assert!(row["note"].as_str().unwrap().contains("Hetzner Console"));

    step("Rotate can't make a Hetzner token: it says how");
    let (ok, text) = cli.run(&["rotate", "cloud-token"]);
    assert!(!ok && text.contains("--new-key-stdin"), "{text}");

    step("a token Hetzner refuses changes nothing");
    let wrong = format!("not-a-token-{}", Secret::random(8).expose());
    let (ok, text) = cli.run_with(&["rotate", "cloud-token", "--new-key-stdin"], Some(&wrong));
    assert!(
        !ok && text.contains("Hetzner refused the new token"),
        "{text}"
    );
    assert_eq!(
        journal::recent(app.store(), 1).await.unwrap()[0].outcome,
        Some(Outcome::RolledBack)
    );
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), first);
    assert!(vault.read(&staging(&entry())).await.is_err());

    step("the person's new token: checked and kept; it waits for them to delete the old one");
    let new = fake.add_token();
    seen.push(new.clone());
    let (ok, text) = cli.run_with(
        &["rotate", "cloud-token", "--new-key-stdin"],
        Some(&format!("{new}\n")),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("delete the old one in the Hetzner Console"),
        "{text}"
    );
    let waiting = journal::unfinished(app.store()).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].step, Step::RevokeOld);
    assert_eq!(vault.read(&staging(&entry())).await.unwrap().expose(), new);
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok && text.contains("\"waitingForYou\": true"), "{text}");
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(!ok && text.contains("Hetzner Console"), "{text}");

    step("killed while it checks the old token; then the person deletes it; the next run finishes");
    let marker = data.path().join("stopped");
    cli.kill_at(&["rotate", "--resume"], "cloud-token:revoke_old", &marker);
    fake.delete_token(&first);
    assert!(!accepted(&fake, &first).await);
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), new);
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "no staging entry"
    );
    assert!(journal::unfinished(app.store()).await.unwrap().is_empty());
    assert!(accepted(&fake, &new).await, "the keychain's token works");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let keys: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let row = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "cloud-token")
        .unwrap()
        .clone();
    assert!(row["rotatedAt"].is_string(), "{row}");
    assert_eq!(row["fingerprint"], Secret::new(new.clone()).fingerprint());

    step("no token on disk, in process arguments, the journal or the audit log");
    let needles: Vec<&str> = seen.iter().map(String::as_str).collect();
    let audit_text = scan::assert_nowhere(data.path(), app.store(), &needles).await;
    assert!(audit_text.contains("rotation.done"), "{audit_text}");
    app.shutdown().await;
}
