//! Key rotation of the model provider key, end to end: the real OpenClaw gateway (pinned
//! runtime), the real keychain (gnome-keyring in the test session), the **contract fake of
//! OpenRouter** (keys API: list, create, delete, `GET /key`) and the **contract fake model
//! server**, which serves exactly the keys the OpenRouter fake would serve now — so a key
//! deleted there is refused by the model, as at OpenRouter. One gateway; named steps.
//!
//! - With a management key: `clawkeeper-cli rotate provider-key` makes a new key with the
//!   old one's cap, switches the assistant to it, deletes the old one; the assistant
//!   answers with the new key, the old one is refused, no key is left over on the account.
//! - OpenRouter failing (503) on the delete: the rotation waits, both keys work, the
//!   assistant answers; once OpenRouter is back it finishes.
//! - Crash injection: the CLI killed at every step boundary (before each step and after
//!   its work but before the journal recorded it); the next run finishes or undoes it. After
//!   each: the keychain's key works, the other is refused, no stray key on the account.
//! - The assistant restarted between the old key's delete and the commit comes up with the
//!   new key (its config names the key being verified).
//! - Without a management key (guided): a key the person made is checked first (a wrong
//!   one changes nothing), the assistant is switched to it, the rotation waits for the
//!   person to delete the old one, then checks it is refused and finishes.
//! - No key, old or new, on disk, in logs, in a process's arguments or in the journal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::journal::{self, Outcome};
use clawkeeper_core::rotation::{staging, Step};
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth};
use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::{env, scan};
use std::time::Duration;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::ProviderKey, "local")
}

/// The account's ordinary (non-management) keys.
fn api_keys(fake: &ContractFakeOpenRouter) -> Vec<(String, String)> {
    fake.key_list()
        .into_iter()
        .filter(|(_, _, management)| !management)
        .map(|(name, hash, _)| (name, hash))
        .collect()
}

/// The state after a rotation ended (either way): the keychain's key is served, the other
/// one (if different) is refused, it is the account's only ordinary key, no staging entry,
/// no unfinished row, the config names the entry, the provider record has its fingerprint,
/// and the assistant answers. Returns the key in use.
async fn settled(
    app: &Clawkeeper,
    vault: &Vault,
    fake: &ContractFakeOpenRouter,
    other: &Secret,
    what: &str,
) -> Secret {
    let now = vault.read(&entry()).await.unwrap();
    assert!(
        fake.would_allow(now.expose()),
        "{what}: the keychain's key works"
    );
    if other.expose() != now.expose() {
        assert!(
            !fake.would_allow(other.expose()),
            "{what}: the other one is refused"
        );
    }
    let keys = api_keys(fake);
    assert_eq!(keys.len(), 1, "{what}: one key on the account: {keys:?}");
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "{what}: no staging entry left"
    );
    let ledger = journal::unfinished(app.store()).await.unwrap();
    assert!(ledger.is_empty(), "{what}: unfinished: {ledger:?}");
    let config = std::fs::read_to_string(app.instance().config_path()).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["models"]["providers"]["clawkeeper"]["apiKey"]["id"], "provider-key/local",
        "{what}"
    );
    let rec = app.store().provider("local").await.unwrap().unwrap();
    assert_eq!(rec.key_fingerprint, now.fingerprint(), "{what}");
    let said = app
        .chat_round_trip(what, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(said, format!("Echo: {what}"));
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_key_rotation_end_to_end_and_crash_safe() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache and the test session)"
        );
        return;
    };
    let namespace = format!("clawkeeper-test-rotation-provider-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let openrouter = ContractFakeOpenRouter::start(true).await.unwrap();
    std::env::set_var("CLAWKEEPER_OPENROUTER_SITE", openrouter.origin());
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let first_text = openrouter.add_key("Clawkeeper");
    openrouter.set_limit(&first_text, Some(20.0), Some("monthly"));
    let management = openrouter.add_management_key();
    let model = ContractFakeModel::start_with_auth(
        ([127, 0, 0, 1], 0).into(),
        KeyAuth::Check(openrouter.key_check()),
        vec!["echo-1".into()],
        None,
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
        kind: ProviderKind::Openrouter,
        base_url: Some(model.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(first_text.clone()),
    })
    .await
    .unwrap();
    app.provider_management_save(Secret::new(management.clone()))
        .await
        .unwrap();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let vault = Vault::new(&namespace);
    let cli = RotationCli { paths: &paths };
    let first = vault.read(&entry()).await.unwrap();
    assert_eq!(
        app.chat_round_trip("before", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: before"
    );
    let mut seen = vec![first.clone(), Secret::new(management.clone())];

    step("with a management key, the provider key rotates in one click");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("\"provider-key\"") && text.contains("one_click"),
        "{text}"
    );
    let (ok, text) = cli.run(&["rotate", "provider-key"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openrouter, &first, "one rotation").await;
    assert_ne!(now.expose(), first.expose());
    assert!(
        text.contains(&now.fingerprint()) && text.contains(&first.fingerprint()),
        "{text}"
    );
    assert_eq!(
        openrouter.hash_of(first.expose()),
        None,
        "the old key deleted"
    );
    assert_eq!(
        openrouter.limit_of(now.expose()),
        Some((Some(20.0), Some("monthly".into()))),
        "the new key has the old one's cap"
    );
    assert_eq!(
        app.store()
            .setting("openrouter.key_hash")
            .await
            .unwrap()
            .as_deref(),
        openrouter.hash_of(now.expose()).as_deref(),
        "the spend cap follows the new key"
    );
    let checks = model.chat_requests().iter().filter(|r| !r.auth_ok).count();
    assert_eq!(
        checks, 0,
        "the assistant never called the model with a dead key"
    );
    seen.push(now.clone());

    step("OpenRouter fails (503) on the delete: the rotation waits with both keys working");
    let marker = data.path().join("stopped");
    let before = now.clone();
    cli.kill_at(
        &["rotate", "provider-key"],
        "provider-key:revoke_old",
        &marker,
    );
    openrouter.fail_next(400, 503, None);
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(!ok && text.contains("still waiting"), "{text}");
    let waiting = journal::unfinished(app.store()).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].step, Step::RevokeOld);
    let new = vault.read(&staging(&entry())).await.unwrap();
    assert!(
        openrouter.would_allow(before.expose()),
        "the old key still works"
    );
    assert!(openrouter.would_allow(new.expose()), "the new key works");
    openrouter.clear_faults();
    assert_eq!(
        app.chat_round_trip("while waiting", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: while waiting"
    );
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openrouter, &before, "after the 503s").await;
    assert_eq!(now.expose(), new.expose());
    seen.push(now);

    step("killed at every step boundary (before the step, and after its work): finished or undone by the next run");
    for s in Step::ALL {
        for after in [false, true] {
            let stop = format!(
                "provider-key:{}{}",
                s.as_str(),
                if after { ":after" } else { "" }
            );
            let before = vault.read(&entry()).await.unwrap();
            cli.kill_at(&["rotate", "provider-key"], &stop, &marker);
            // Meanwhile, a key the keychain holds is served.
            let held = clawkeeper_core::rotation::driver::candidates(&vault, &entry())
                .await
                .unwrap();
            assert!(
                held.iter().any(|k| openrouter.would_allow(k.expose())),
                "{stop}: no key in the keychain works while it is stopped"
            );
            let (ok, text) = cli.run(&["rotate", "--resume"]);
            assert!(ok, "{stop}: {text}");
            let now = settled(&app, &vault, &openrouter, &before, &stop).await;
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

    step("the assistant restarted after the old key was deleted, before the commit: it comes up with the new key");
    let before = vault.read(&entry()).await.unwrap();
    cli.kill_at(&["rotate", "provider-key"], "provider-key:commit", &marker);
    assert!(
        !openrouter.would_allow(before.expose()),
        "the old key is deleted"
    );
    app.stop().await.unwrap();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    assert_eq!(
        app.chat_round_trip("restarted mid-rotation", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: restarted mid-rotation"
    );
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openrouter, &before, "after the restart").await;
    seen.push(now);

    step("without a management key the rotation is guided: a wrong key changes nothing");
    app.provider_management_forget().await.unwrap();
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok && text.contains("guided"), "{text}");
    let before = vault.read(&entry()).await.unwrap();
    let wrong = format!("sk-or-v1-{}", Secret::random(24).expose());
    let (ok, text) = cli.run_with(&["rotate", "provider-key", "--new-key-stdin"], Some(&wrong));
    assert!(!ok && text.contains("refused the new key"), "{text}");
    let last = journal::recent(app.store(), 1).await.unwrap();
    assert_eq!(last[0].outcome, Some(Outcome::RolledBack));
    let now = settled(&app, &vault, &openrouter, &before, "after a wrong key").await;
    assert_eq!(now.expose(), before.expose());
    let (ok, text) = cli.run_with(
        &["rotate", "provider-key", "--new-key-stdin"],
        Some(before.expose()),
    );
    assert!(!ok && text.contains("already in use"), "{text}");

    step("the person's new key: checked, installed, then it waits for them to delete the old one");
    let made = openrouter.add_key("made by hand");
    seen.push(Secret::new(made.clone()));
    let (ok, text) = cli.run_with(
        &["rotate", "provider-key", "--new-key-stdin"],
        Some(&format!("  {made}\n")),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("delete the old key at openrouter.ai/settings/keys"),
        "{text}"
    );
    let waiting = journal::unfinished(app.store()).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].step, Step::RevokeOld);
    assert_eq!(
        app.chat_round_trip("waiting for you", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: waiting for you"
    );
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(!ok && text.contains("delete the old key"), "{text}");
    // The person deletes the old key on openrouter.ai.
    let old_hash = openrouter.hash_of(before.expose()).unwrap();
    let deleted = reqwest::Client::new()
        .delete(format!("{}/keys/{old_hash}", openrouter.api_base()))
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openrouter, &before, "guided").await;
    assert_eq!(now.expose(), made);
    assert_eq!(
        app.store().setting("openrouter.key_hash").await.unwrap(),
        None,
        "no stale hash for the spend cap"
    );

    step("\"Get a new key from OpenRouter\": the key comes from signing in, then it waits for the old one's deletion");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok && text.contains("\"signIn\": true"), "{text}");
    let before = vault.read(&entry()).await.unwrap();
    let mut child =
        tokio::process::Command::from(cli.command(&["rotate", "provider-key", "--sign-in"]))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("the CLI prints the page to open");
        if line.starts_with("http") {
            break line;
        }
    };
    assert!(url.starts_with(openrouter.origin()), "{url}");
    // The person's browser: OpenRouter's page, Authorize, back to Clawkeeper's loopback page.
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    eprintln!("$ clawkeeper-cli rotate provider-key --sign-in\n{text}");
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("delete the old key"), "{text}");
    let issued = openrouter.issued().last().cloned().unwrap();
    seen.push(Secret::new(issued.clone()));
    assert_eq!(
        vault.read(&staging(&entry())).await.unwrap().expose(),
        issued,
        "the key OpenRouter gave out is the one being switched to"
    );
    assert_eq!(
        app.chat_round_trip("signed in", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: signed in"
    );
    let old_hash = openrouter.hash_of(before.expose()).unwrap();
    let deleted = reqwest::Client::new()
        .delete(format!("{}/keys/{old_hash}", openrouter.api_base()))
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openrouter, &before, "signed in").await;
    assert_eq!(now.expose(), issued);

    step("Cancel of \"Get a new key from OpenRouter\", before its wait and during it: cancelled, key unchanged");
    let before = vault.read(&entry()).await.unwrap();
    let issued_before = openrouter.issued().len();
    app.begin_provider_key_sign_in().await.unwrap();
    app.cancel_provider_key_sign_in().await;
    let err = app.finish_provider_key_sign_in().await.unwrap_err();
    assert_eq!(err.code, "rotation_sign_in_cancelled", "{err:?}");
    let url = app.begin_provider_key_sign_in().await.unwrap();
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { app.finish_provider_key_sign_in().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the finish waits for the browser");
    app.cancel_provider_key_sign_in().await;
    let err = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, "rotation_sign_in_cancelled", "{err:?}");
    assert!(err.message.contains("unchanged"), "{err:?}");
    // The browser coming back late finds no listener: no key is given out.
    let late = reqwest::get(&url).await;
    assert!(
        late.map(|r| !r.status().is_success()).unwrap_or(true),
        "a cancelled sign-in must not take the browser's return"
    );
    assert_eq!(openrouter.issued().len(), issued_before, "no key made");
    assert_eq!(
        vault.read(&entry()).await.unwrap().expose(),
        before.expose()
    );
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "nothing staged"
    );
    let err = app.finish_provider_key_sign_in().await.unwrap_err();
    assert_eq!(err.code, "rotation_sign_in_missing", "{err:?}");

    step("a server set up with this computer's provider key that can't be reached: the rotation is refused and changes nothing");
    let before = vault.read(&entry()).await.unwrap();
    app.store()
        .upsert_instance(&clawkeeper_core::store::InstanceRecord {
            id: "shared-srv".into(),
            name: "Office server".into(),
            target: "ssh".into(),
            port: 22,
            desired_state: clawkeeper_core::store::DesiredState::Running,
            openclaw_version: "2026.9.6".into(),
            created_at: "2026-11-26T00:00:00Z".into(),
        })
        .await
        .unwrap();
    let server_token = SecretRef::new(SecretKind::GatewayToken, "shared-srv");
    vault
        .store(
            &server_token,
            &Secret::new("server-token-for-the-shared-key-check"),
        )
        .await
        .unwrap();
    // A good new key the person made: without the server it would be taken (as above).
    let made = openrouter.add_key("made by hand, server sharing");
    seen.push(Secret::new(made.clone()));
    let (ok, text) = cli.run_with(&["rotate", "provider-key", "--new-key-stdin"], Some(&made));
    eprintln!("$ clawkeeper-cli rotate provider-key --new-key-stdin\n{text}");
    assert!(!ok, "{text}");
    let last = journal::recent(app.store(), 1).await.unwrap();
    assert_ne!(last[0].outcome, None, "no rotation left running: {last:?}");
    assert!(
        text.contains("Office server") && text.contains("Nothing was changed"),
        "{text}"
    );
    assert_eq!(
        vault.read(&entry()).await.unwrap().expose(),
        before.expose()
    );
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "nothing staged"
    );
    // Without the server's assistant (its token gone) the key rotates again.
    vault.delete(&server_token).await.unwrap();

    step(
        "no key, old or new, on disk, in logs, in process arguments, the journal or the audit log",
    );
    let needles: Vec<String> = seen.iter().map(|s| s.expose().to_owned()).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let audit_text = scan::assert_nowhere(data.path(), app.store(), &needles).await;
    assert!(
        audit_text.contains("rotation.done") && audit_text.contains(&now.fingerprint()),
        "{audit_text}"
    );
    app.stop().await.unwrap();
}
