//! The local instance end to end against the real OpenClaw gateway (pinned runtime from
//! scripts/setup.sh --test) and the contract fake model, in the test namespace (loopback
//! only). One gateway per test binary: it takes ~15 s and ~1 GB to start, so this is one
//! scenario with named steps rather than many tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::supervisor::{InstanceState, Policy};
use clawkeeper_core::local::verify::CheckStatus;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::{audit, Secret};
use clawkeeper_tests::fake_model::ContractFakeModel;
use clawkeeper_tests::{dns, env, scan};
use std::time::Duration;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_local_instance_end_to_end() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache and the test session)"
        );
        return;
    };
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-gw-{}", std::process::id()),
    );
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());

    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let provider_key = format!("sk-planted-provider-{}", Secret::random(12).expose());
    let fake = ContractFakeModel::start(provider_key.clone())
        .await
        .unwrap();
    let policy = Policy {
        probe_every: Duration::from_secs(5),
        backoff_start: Duration::from_millis(500),
        ..Policy::default()
    };
    let app = Clawkeeper::open(paths.clone(), policy).await.unwrap();

    step("save the provider key");
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(fake.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(provider_key.clone()),
    })
    .await
    .unwrap();

    step("start and wait for hello-ok");
    let started = std::time::Instant::now();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    eprintln!("healthy after {:?}", started.elapsed());

    step("the host checks all pass");
    let status = app.status().borrow().clone();
    for c in &status.checks {
        eprintln!("  {:?} {} — {:?}", c.status, c.label, c.detail);
    }
    assert!(
        status.checks.iter().all(|c| c.status == CheckStatus::Pass),
        "{:#?}",
        status.checks
    );
    let listening = status
        .checks
        .iter()
        .find(|c| c.id == "loopback_only")
        .unwrap();
    assert!(
        listening.detail.as_deref().unwrap().contains("127.0.0.1"),
        "{listening:?}"
    );

    step("a chat round trip through the core client");
    let reply = app
        .chat_round_trip("hello from the test", Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(reply, "Echo: hello from the test");
    let chats = fake.chat_requests();
    assert!(
        !chats.is_empty() && chats.iter().all(|r| r.auth_ok),
        "the model saw our key on every call"
    );

    step("history has both sides");
    let history = app.chat_history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|m| m.role == "user" && m.text.contains("hello from the test")),
        "{history:?}"
    );
    assert!(
        history
            .iter()
            .any(|m| m.role == "assistant" && m.text == "Echo: hello from the test"),
        "{history:?}"
    );

    step("openclaw secrets audit --check finds no plain text");
    let out = app
        .instance()
        .openclaw(&["secrets", "audit", "--check"])
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "secrets audit: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    step("a crash is restarted");
    let pid = app.status().borrow().pid.unwrap();
    assert!(libc_kill(pid, 9));
    let s = app
        .wait_for_state(Duration::from_secs(30), |s| {
            matches!(
                s,
                InstanceState::Degraded { .. } | InstanceState::Starting { .. }
            )
        })
        .await;
    assert!(
        matches!(
            s,
            InstanceState::Degraded { .. } | InstanceState::Starting { .. }
        ),
        "{s:?}"
    );
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    assert!(app.status().borrow().restarts >= 1);
    assert_ne!(app.status().borrow().pid, Some(pid));

    step("a wrong provider key is explained in words");
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(fake.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new("sk-wrong-key-000000"),
    })
    .await
    .unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let err = app
        .chat_round_trip("are you there", Duration::from_secs(120))
        .await
        .unwrap_err();
    assert_eq!(err.code, "provider_auth", "{err:?}");
    assert!(err.message.contains("refused the API key"), "{err:?}");
    assert!(err.hint.is_some());

    step("stop: the gateway exits and the port is free");
    let token = app
        .instance()
        .vault()
        .read(&app.instance().token_ref())
        .await
        .unwrap();
    let pid = app.status().borrow().pid.unwrap();
    app.stop().await.unwrap();
    assert!(matches!(
        app.status().borrow().state,
        InstanceState::Stopped
    ));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
        "gateway {pid} still running"
    );
    assert!(!app.instance().port_in_use());

    step("planted secrets are nowhere on disk, in logs, argv or environments");
    let needles = [provider_key.as_str(), token.expose(), "sk-wrong-key-000000"];
    let files = scan::files_containing(&paths.data_dir, &needles);
    assert!(files.is_empty(), "secrets found in {files:?}");
    let procs = scan::processes_containing(&needles);
    assert!(procs.is_empty(), "secrets found in {procs:?}");

    step("the audit log is intact");
    assert!(audit::verify(app.store()).await.unwrap() > 5);

    step("nothing called home");
    if let Some(log) = std::env::var_os("CLAWKEEPER_DNS_LOG") {
        let names = dns::recorded(std::path::Path::new(&log));
        eprintln!("looked up: {names:?}");
        let unexpected: Vec<_> = names
            .iter()
            .filter(|n| !env::ALLOWED_LOOKUPS.contains(&n.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "unexpected outbound lookups: {unexpected:?}"
        );
    }
    app.shutdown().await;
}

fn libc_kill(pid: u32, sig: i32) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z"))
        .unwrap_or(true)
}
