//! The keychain refusing writes in the middle of a key rotation, against the real parts: the
//! real OpenClaw gateway (pinned runtime) and a real gnome-keyring of this test's own
//! ([`PrivateKeyring`]), made to refuse every write by mounting its folder read-only — what a
//! keychain on a full or read-only disk does. Reads keep working.
//!
//! - Refused when the new token is minted (before anything is installed): the rotation
//!   turns back, says why, and the old token is still the one that works.
//! - Refused at the commit (after the new token was installed, verified, and the old one
//!   revoked): the rotation is left waiting; the token the keychain holds (its staging
//!   entry) is the one that works, the app's chat goes on, and once the keychain takes
//!   writes again the next `rotate --resume` finishes it: the keychain's entry holds the new
//!   token, the old one is refused, nothing is left half-done.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::gateway_token::{try_token, Verdict};
use clawkeeper_core::rotation::{journal, staging};
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_model::ContractFakeModel;
use clawkeeper_tests::private_keyring::PrivateKeyring;
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::{env, scan};
use std::time::Duration;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::GatewayToken, "local")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_token_rotation_through_a_keychain_that_refuses_writes() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache, root in its own mount namespace)"
        );
        return;
    };
    // Before anything talks to a keychain: this test's own, so that breaking it on purpose
    // touches no other test. The gateway's key helper and the CLI inherit the address.
    let mut keyring = PrivateKeyring::start();
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", keyring.address());
    let namespace = format!("clawkeeper-test-keychain-fault-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let provider_key = format!("sk-keychain-fault-{}", Secret::random(12).expose());
    let fake = ContractFakeModel::start_on(
        ([127, 0, 0, 1], 0).into(),
        provider_key.clone(),
        vec!["echo-1".into()],
    )
    .await
    .unwrap();
    let policy = Policy {
        probe_every: Duration::from_secs(3),
        backoff_start: Duration::from_millis(500),
        ..Policy::default()
    };
    let app = Clawkeeper::open(paths.clone(), policy).await.unwrap();
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(fake.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(provider_key.clone()),
    })
    .await
    .unwrap();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let vault = Vault::new(&namespace);
    let url = app.instance().url();
    let cli = RotationCli { paths: &paths };
    let first = vault.read(&entry()).await.unwrap();
    assert_eq!(try_token(&url, &first).await, Verdict::Accepted);

    step("the keychain refuses the new token as it is minted: turned back, the old one works");
    keyring.refuse_writes();
    let (ok, text) = cli.run(&["rotate", "gateway-token"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("not changed") && text.contains("keychain refused"),
        "says it turned back, and why: {text}"
    );
    assert!(
        !text.contains("zbus") && !text.contains("org.freedesktop"),
        "in words, not D-Bus names: {text}"
    );
    assert!(text.contains("old key still works"), "{text}");
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), first.expose());
    assert!(vault.read(&staging(&entry())).await.is_err());
    assert!(journal::unfinished(app.store()).await.unwrap().is_empty());
    assert_eq!(try_token(&url, &first).await, Verdict::Accepted);
    assert_eq!(
        app.chat_round_trip("still here", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: still here"
    );

    step("the keychain refuses the commit (new token installed and verified, old one revoked)");
    keyring.accept_writes();
    let marker = data.path().join("stopped");
    cli.kill_at(
        &["rotate", "gateway-token"],
        "gateway-token:commit",
        &marker,
    );
    let new = vault.read(&staging(&entry())).await.unwrap();
    assert_ne!(new.expose(), first.expose());
    keyring.refuse_writes();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("isn't finished yet") && text.contains("keychain"),
        "says it waits, and why: {text}"
    );
    assert!(text.contains("work meanwhile"), "{text}");
    assert_eq!(
        journal::unfinished(app.store()).await.unwrap().len(),
        1,
        "left waiting, not turned back (the old token is already revoked)"
    );
    // The keychain holds the token that works: its staging entry; its entry holds the old
    // one, which the gateway refuses.
    assert_eq!(try_token(&url, &new).await, Verdict::Accepted);
    assert_eq!(try_token(&url, &first).await, Verdict::Refused);
    assert_eq!(
        vault.read(&staging(&entry())).await.unwrap().expose(),
        new.expose()
    );
    let held = clawkeeper_core::rotation::driver::candidates(&vault, &entry())
        .await
        .unwrap();
    assert!(held.iter().any(|t| t.expose() == new.expose()));
    assert_eq!(
        app.chat_round_trip("meanwhile", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: meanwhile",
        "the app's own client finds the token that works"
    );
    step("the assistant restarted meanwhile comes up with the token that works");
    app.stop().await.unwrap();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    assert_eq!(try_token(&url, &new).await, Verdict::Accepted);

    step("the keychain takes writes again: the next resume finishes it");
    keyring.accept_writes();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), new.expose());
    assert!(vault.read(&staging(&entry())).await.is_err());
    assert!(journal::unfinished(app.store()).await.unwrap().is_empty());
    assert_eq!(try_token(&url, &new).await, Verdict::Accepted);
    assert_eq!(try_token(&url, &first).await, Verdict::Refused);
    let config = std::fs::read_to_string(app.instance().config_path()).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["gateway"]["auth"]["token"]["id"],
        "gateway-token/local"
    );
    assert_eq!(
        app.chat_round_trip("done", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: done"
    );

    step("neither token on disk, in the journal or in a process's arguments");
    let needles = [first.expose(), new.expose()];
    let files = scan::files_containing(data.path(), &needles);
    assert!(files.is_empty(), "tokens in files: {files:?}");
    let procs = scan::processes_containing(&needles);
    assert!(procs.is_empty(), "tokens in process arguments: {procs:?}");
    let journal_text = format!("{:?}", journal::recent(app.store(), 20).await.unwrap());
    for n in needles {
        assert!(!journal_text.contains(n), "a token in the journal");
    }
    app.stop().await.unwrap();
}
