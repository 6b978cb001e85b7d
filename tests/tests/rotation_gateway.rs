//! Key rotation of the gateway token, end to end, against the real OpenClaw gateway (pinned
//! runtime) and the real keychain (gnome-keyring in the test session). One gateway for the
//! binary; one scenario with named steps.
//!
//! - `clawkeeper-cli rotate gateway-token`: the new token works on WebSocket and HTTP, the
//!   old one is refused on both, the keychain holds the new one only, the chat (whose
//!   connection the gateway closed with 4001) carries on, the audit log has fingerprints
//!   and no token, and neither token is on disk, in logs or in any process's arguments.
//! - Crash injection: the CLI is killed (SIGKILL) at every step boundary, before the step
//!   and after its work but before the journal recorded it; a second CLI finishes it. After
//!   each: the keychain's token works, the other one is refused, nothing is half-done.
//! - The assistant stopped between install and verify: the rotation waits with a working
//!   key and finishes once the assistant is back (it comes up with the token being
//!   verified).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::gateway_token::{try_token, Verdict};
use clawkeeper_core::rotation::journal;
use clawkeeper_core::rotation::{staging, Step};
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_model::ContractFakeModel;
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::{env, scan};
use std::time::Duration;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::GatewayToken, "local")
}

/// The state after a rotation ended (either way): the keychain's entry works on WebSocket
/// and HTTP, the other token (if any) is refused, no staging entry, no unfinished row, and
/// the config names the entry. Returns the token in use.
async fn settled(app: &Clawkeeper, vault: &Vault, url: &str, other: &Secret, what: &str) -> Secret {
    let now = vault.read(&entry()).await.unwrap();
    assert_eq!(
        try_token(url, &now).await,
        Verdict::Accepted,
        "{what}: the keychain's token works"
    );
    if other.expose() != now.expose() {
        assert_eq!(
            try_token(url, other).await,
            Verdict::Refused,
            "{what}: the other one is refused"
        );
    }
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "{what}: no staging entry left"
    );
    let ledger = journal::unfinished(app.store()).await.unwrap();
    assert!(ledger.is_empty(), "{what}: unfinished: {ledger:?}");
    let config = std::fs::read_to_string(app.instance().config_path()).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["gateway"]["auth"]["token"]["id"], "gateway-token/local",
        "{what}"
    );
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_token_rotation_end_to_end_and_crash_safe() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache and the test session)"
        );
        return;
    };
    let namespace = format!("clawkeeper-test-rotation-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let provider_key = format!("sk-rotation-{}", Secret::random(12).expose());
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
    assert_eq!(
        app.chat_round_trip("before", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: before"
    );
    let mut seen = vec![first.clone()];

    step("rotate the gateway token with the CLI");
    let (ok, text) = cli.run(&["rotate", "gateway-token"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &url, &first, "one rotation").await;
    assert_ne!(now.expose(), first.expose());
    assert!(
        text.contains(&now.fingerprint()) && text.contains(&first.fingerprint()),
        "{text}"
    );
    seen.push(now.clone());
    step("the chat carries on (its connection was closed with 4001; it reconnects with the new token)");
    assert_eq!(
        app.chat_round_trip("after", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: after"
    );
    step("the keys list shows it rotated; the audit log has fingerprints, never the token");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let keys: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let gt = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "gateway-token")
        .unwrap();
    assert!(gt["rotatedAt"].is_string(), "{gt}");
    assert_eq!(gt["fingerprint"], now.fingerprint());
    assert_eq!(gt["how"], "one_click");
    let audit = format!(
        "{:?}",
        clawkeeper_core::audit::recent(app.store(), 20)
            .await
            .unwrap()
    );
    assert!(
        audit.contains("rotation.done") && audit.contains(&now.fingerprint()),
        "{audit}"
    );

    step("killed at every step boundary (before the step, and after its work): finished by the next run");
    let marker = data.path().join("stopped");
    for s in Step::ALL {
        for after in [false, true] {
            let stop = format!(
                "gateway-token:{}{}",
                s.as_str(),
                if after { ":after" } else { "" }
            );
            let before = vault.read(&entry()).await.unwrap();
            cli.kill_at(&["rotate", "gateway-token"], &stop, &marker);
            // Meanwhile, a token the keychain holds works.
            let held = clawkeeper_core::rotation::driver::candidates(&vault, &entry())
                .await
                .unwrap();
            // (A probe of each token is not one instant: the gateway may switch between two
            // probes while it applies the config. A few rounds, then it must have one.)
            let mut works = false;
            for _ in 0..3 {
                for t in &held {
                    works |= try_token(&url, t).await == Verdict::Accepted;
                }
                if works {
                    break;
                }
            }
            assert!(
                works,
                "{stop}: no token in the keychain works while it is stopped"
            );
            let (ok, text) = cli.run(&["rotate", "--resume"]);
            assert!(ok, "{stop}: {text}");
            let now = settled(&app, &vault, &url, &before, &stop).await;
            let rows = journal::recent(app.store(), 1).await.unwrap();
            eprintln!(
                "{stop}: {:?} ({} → {})",
                rows[0].outcome,
                before.fingerprint(),
                now.fingerprint()
            );
            seen.push(now);
        }
    }
    assert_eq!(
        app.chat_round_trip("after the crashes", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: after the crashes"
    );

    step("the assistant stopped between install and verify: it waits, then finishes");
    let before = vault.read(&entry()).await.unwrap();
    cli.kill_at(
        &["rotate", "gateway-token"],
        "gateway-token:verify_new",
        &marker,
    );
    app.stop().await.unwrap();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(
        !ok || text.contains("isn't reachable") || text.contains("interrupted"),
        "{text}"
    );
    assert_eq!(
        journal::unfinished(app.store()).await.unwrap().len(),
        1,
        "still waiting"
    );
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &url, &before, "after the restart").await;
    seen.push(now);
    assert_eq!(
        app.chat_round_trip("back", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: back"
    );

    step("no token, old or new, on disk, in logs or in a process's arguments");
    let needles: Vec<String> = seen.iter().map(|s| s.expose().to_owned()).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let files = scan::files_containing(data.path(), &needles);
    assert!(files.is_empty(), "tokens in files: {files:?}");
    let procs = scan::processes_containing(&needles);
    assert!(procs.is_empty(), "tokens in process arguments: {procs:?}");
    let journal_text = format!("{:?}", journal::recent(app.store(), 100).await.unwrap());
    for n in &needles {
        assert!(!journal_text.contains(n), "a token in the journal");
    }
    app.stop().await.unwrap();
}
