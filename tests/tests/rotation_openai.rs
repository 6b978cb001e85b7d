//! The model provider key rotated with an OpenAI Admin key (project service accounts), end
//! to end: the real OpenClaw gateway (pinned runtime), the real keychain (gnome-keyring in
//! the test session), the **contract fake of OpenAI's Admin API** (projects, service
//! accounts with their keys) and the **contract fake model server**, which serves exactly
//! the keys that are live at the OpenAI fake now — so a deleted service account's key is
//! refused by the model, as at OpenAI. One gateway; named steps.
//!
//! - The client against the contract fake (no gateway): pagination, 401 for a wrong admin
//!   key (no key text in the message), 403 for an ordinary key, 404 for an unknown project
//!   or account, 429 with `Retry-After` honoured, 5xx retried (a create is not).
//! - A wrong admin key changes nothing; a right one makes the provider key one-click.
//! - The first rotation of a key the person made: a new service account, the assistant
//!   switched to it, then it waits for the person to delete the old key, then finishes.
//! - One click: a new service account, the old one deleted, the assistant answers with the
//!   new key, the old one is refused; one service account left in the project.
//! - OpenAI failing (503) on the delete: the rotation waits, both keys work, the assistant
//!   answers; once OpenAI is back it finishes.
//! - Crash injection: the CLI killed at every step boundary (before each step and after its
//!   work but before the journal recorded it); the next run finishes or undoes it. After
//!   each: the keychain's key works, the other is refused, no orphan service account.
//! - The admin key revoked at OpenAI: a clear error, nothing changed.
//! - No key (old, new, admin) on disk, in logs, in a process's arguments or in the journal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::openai::admin::{Error as AdminError, OpenAiAdmin, RetryPolicy};
use clawkeeper_core::paths::Paths;
use clawkeeper_core::problem::UserFacing;
use clawkeeper_core::rotation::journal::{self, Outcome};
use clawkeeper_core::rotation::{staging, Step};
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth};
use clawkeeper_tests::fake_openai::ContractFakeOpenAi;
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::{env, scan};
use std::time::{Duration, Instant};

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::ProviderKey, "local")
}

/// The provider key's row of `rotate --list --json`: (how, note).
fn provider_row(text: &str) -> (String, String) {
    let start = text.find('[').unwrap();
    let rows: serde_json::Value = serde_json::from_str(&text[start..]).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "provider-key")
        .unwrap();
    (
        row["how"].as_str().unwrap().to_owned(),
        row["note"].as_str().unwrap_or("").to_owned(),
    )
}

fn admin_entry() -> SecretRef {
    SecretRef::new(SecretKind::ProviderManagement, "openai")
}

#[tokio::test]
async fn openai_admin_client_against_the_contract_fake() {
    let fake = ContractFakeOpenAi::start().await.unwrap();
    let api = OpenAiAdmin::with_base_url(&fake.api_base(), RetryPolicy::fast()).unwrap();
    let admin = Secret::new(fake.add_admin_key());
    let p1 = fake.add_project("One");
    let p2 = fake.add_project("Two");
    let p3 = fake.add_project("Three");
    let old = fake.add_project("Old");
    fake.archive_project(&old);
    fake.set_page_size(2);

    step("pagination: active projects, every service account, in order");
    let projects = api.projects(&admin).await.unwrap();
    let ids: Vec<&str> = projects.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [p1.as_str(), p2.as_str(), p3.as_str()]);
    let made: Vec<String> = (0..5)
        .map(|i| fake.add_service_account(&p1, &format!("sa {i}")).0)
        .collect();
    let before = fake.requests().len();
    let listed = api.service_accounts(&admin, &p1).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        made
    );
    assert_eq!(listed[0].name, "sa 0");
    let pages = &fake.requests()[before..];
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages[1].query.contains(&format!("after={}", made[1])),
        "{pages:?}"
    );
    assert!(api.service_accounts(&admin, &p2).await.unwrap().is_empty());

    step("create, the key works; delete, it is refused; again: 404");
    let created = api
        .create_service_account(&admin, &p2, "Clawkeeper assistant (rotation 1)")
        .await
        .unwrap();
    assert!(fake.would_allow(created.key.expose()));
    assert!(!format!("{created:?}").contains(created.key.expose()));
    assert_eq!(
        fake.service_accounts(&p2),
        vec![(
            created.account.id.clone(),
            "Clawkeeper assistant (rotation 1)".to_owned()
        )]
    );
    api.delete_service_account(&admin, &p2, &created.account.id)
        .await
        .unwrap();
    assert!(!fake.would_allow(created.key.expose()));
    let e = api
        .delete_service_account(&admin, &p2, &created.account.id)
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::NotFound { .. }), "{e:?}");
    let e = api.service_accounts(&admin, "proj_nope").await.unwrap_err();
    assert!(matches!(e, AdminError::NotFound { .. }), "{e:?}");
    assert_eq!(e.code(), "openai_not_found");
    assert!(e.hint().unwrap().contains("project id"));

    step("a wrong admin key: 401, said plainly, no key text; an ordinary key: 403");
    let wrong = format!("sk-admin-{}", Secret::random(24).expose());
    let e = api.projects(&Secret::new(wrong.clone())).await.unwrap_err();
    assert_eq!(e.code(), "openai_admin_key_refused", "{e:?}");
    assert!(
        e.to_string().starts_with("OpenAI refused the admin key"),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains(&wrong[12..]), "{e:?}");
    let ordinary = fake.add_user_key(&p1);
    let e = api
        .service_accounts(&Secret::new(ordinary), &p1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "openai_admin_key_needed", "{e:?}");

    step("429 with Retry-After is waited for; a longer one is handed back at once");
    fake.fail_next(1, None, 429, Some(1));
    let t = Instant::now();
    api.projects(&admin).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    fake.fail_next(1, None, 429, Some(30));
    let t = Instant::now();
    let e = api.projects(&admin).await.unwrap_err();
    assert!(
        matches!(e, AdminError::RateLimited { retry_after: Some(d) } if d.as_secs() == 30),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // A 429 was refused as a whole: even a create is repeated.
    fake.fail_next(1, Some("POST"), 429, Some(1));
    let c = api
        .create_service_account(&admin, &p3, "after a 429")
        .await
        .unwrap();
    assert_eq!(fake.service_accounts(&p3).len(), 1);
    api.delete_service_account(&admin, &p3, &c.account.id)
        .await
        .unwrap();
    fake.clear_faults();

    step("5xx: a read or delete is retried; a create is not (it could make two)");
    fake.fail_next(2, None, 503, None);
    assert_eq!(api.service_accounts(&admin, &p1).await.unwrap().len(), 5);
    fake.fail_next(3, None, 502, None);
    let e = api.service_accounts(&admin, &p1).await.unwrap_err();
    assert!(
        matches!(e, AdminError::Unavailable { status: 502 }),
        "{e:?}"
    );
    assert!(e.is_transient());
    fake.fail_next(1, Some("DELETE"), 503, None);
    api.delete_service_account(&admin, &p1, &made[0])
        .await
        .unwrap();
    let posts = |f: &ContractFakeOpenAi| f.requests().iter().filter(|r| r.method == "POST").count();
    let n = posts(&fake);
    fake.fail_next(1, Some("POST"), 500, None);
    let e = api
        .create_service_account(&admin, &p3, "not twice")
        .await
        .unwrap_err();
    assert!(
        matches!(e, AdminError::Unavailable { status: 500 }),
        "{e:?}"
    );
    assert_eq!(posts(&fake), n + 1, "a create is sent once");
    assert!(fake.service_accounts(&p3).is_empty());
}

/// The state after a rotation ended (either way): the keychain's key is served, the other
/// one (if different) is refused, no orphan service account (the project holds at most the
/// one whose key is in the keychain), no staging entry, no unfinished row, the config names
/// the entry, the provider record has its fingerprint, and the assistant answers. Returns
/// the key in use.
async fn settled(
    app: &Clawkeeper,
    vault: &Vault,
    fake: &ContractFakeOpenAi,
    project: &str,
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
    let accounts: Vec<String> = fake
        .service_accounts(project)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    match fake.account_of(now.expose()) {
        Some(id) => assert_eq!(accounts, vec![id], "{what}: no orphan service account"),
        None => assert!(accounts.is_empty(), "{what}: orphans {accounts:?}"),
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
async fn openai_key_rotation_end_to_end_and_crash_safe() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache and the test session)"
        );
        return;
    };
    let namespace = format!("clawkeeper-test-rotation-openai-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let openai = ContractFakeOpenAi::start().await.unwrap();
    std::env::set_var("CLAWKEEPER_OPENAI_API", openai.api_base());
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let project = openai.add_project("Assistant");
    let _other = openai.add_project("Something else");
    let first_text = openai.add_user_key(&project);
    let admin = openai.add_admin_key();
    let model = ContractFakeModel::start_with_auth(
        ([127, 0, 0, 1], 0).into(),
        KeyAuth::Check(openai.key_check()),
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
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(model.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(first_text.clone()),
    })
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
    let mut seen = vec![first.clone(), Secret::new(admin.clone())];

    step("without an admin key the OpenAI key is guided; a wrong admin key changes nothing");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    assert_eq!(provider_row(&text).0, "guided");
    let wrong = format!("sk-admin-{}", Secret::random(24).expose());
    seen.push(Secret::new(wrong.clone()));
    let (ok, text) = cli.run_with(&["openai-admin-key", "--project", &project], Some(&wrong));
    assert!(!ok, "{text}");
    assert!(text.contains("OpenAI refused the admin key"), "{text}");
    assert!(
        text.contains("→ ") && text.contains("admin-keys"),
        "a hint: {text}"
    );
    assert!(vault.read(&admin_entry()).await.is_err(), "nothing saved");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    assert_eq!(provider_row(&text).0, "guided", "nothing changed");
    // Two projects: which one must be said.
    let (ok, text) = cli.run_with(&["openai-admin-key"], Some(&admin));
    assert!(
        !ok && text.contains("2 projects") && text.contains(&project),
        "{text}"
    );
    assert!(vault.read(&admin_entry()).await.is_err(), "nothing saved");

    step("the admin key saved: the OpenAI key rotates in one click");
    let (ok, text) = cli.run_with(
        &["openai-admin-key", "--project", &project],
        Some(&format!("  {admin}\n")),
    );
    assert!(ok && text.contains(&project), "{text}");
    assert_eq!(vault.read(&admin_entry()).await.unwrap().expose(), admin);
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let (how, note) = provider_row(&text);
    assert_eq!(how, "one_click");
    assert!(note.contains("this once you delete it yourself"), "{note}");

    step("the first rotation of a key the person made: it waits for them to delete it");
    let (ok, text) = cli.run(&["rotate", "provider-key"]);
    assert!(!ok && text.contains("delete the old key"), "{text}");
    let waiting = journal::unfinished(app.store()).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].step, Step::RevokeOld);
    let new = vault.read(&staging(&entry())).await.unwrap();
    let accounts = openai.service_accounts(&project);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(
        accounts[0].1,
        format!("Clawkeeper assistant (rotation {})", waiting[0].id)
    );
    assert_eq!(openai.account_of(new.expose()), Some(accounts[0].0.clone()));
    assert!(
        openai.would_allow(first.expose()),
        "the old key still works"
    );
    assert_eq!(
        app.chat_round_trip("waiting for you", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: waiting for you"
    );
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok && text.contains("\"waitingForYou\": true"), "{text}");
    // The person deletes their key on platform.openai.com.
    assert!(openai.delete_user_key(first.expose()));
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openai, &project, &first, "first rotation").await;
    assert_eq!(now.expose(), new.expose());
    seen.push(now.clone());
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    assert_eq!(provider_row(&text), ("one_click".to_owned(), String::new()));

    step("one click: a new service account, the old one deleted");
    let before = now.clone();
    let old_account = openai.account_of(before.expose()).unwrap();
    let (ok, text) = cli.run(&["rotate", "provider-key"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&before.fingerprint()) && text.contains("replaced by"),
        "{text}"
    );
    let now = settled(&app, &vault, &openai, &project, &before, "one click").await;
    assert_ne!(now.expose(), before.expose());
    let new_account = openai.account_of(now.expose()).unwrap();
    assert_ne!(new_account, old_account);
    assert!(openai
        .service_accounts(&project)
        .iter()
        .all(|(id, _)| *id != old_account));
    let dead = model.chat_requests().iter().filter(|r| !r.auth_ok).count();
    assert_eq!(
        dead, 0,
        "the assistant never called the model with a dead key"
    );
    seen.push(now.clone());

    step("OpenAI fails (503) on the delete: the rotation waits with both keys working");
    let marker = data.path().join("stopped");
    let before = now.clone();
    cli.kill_at(
        &["rotate", "provider-key"],
        "provider-key:revoke_old",
        &marker,
    );
    openai.fail_next(400, Some("DELETE"), 503, None);
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(!ok && text.contains("still waiting"), "{text}");
    assert!(text.contains("OpenAI didn't delete the old key"), "{text}");
    let waiting = journal::unfinished(app.store()).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].step, Step::RevokeOld);
    let new = vault.read(&staging(&entry())).await.unwrap();
    assert!(
        openai.would_allow(before.expose()),
        "the old key still works"
    );
    assert!(openai.would_allow(new.expose()), "the new key works");
    assert_eq!(openai.service_accounts(&project).len(), 2);
    assert_eq!(
        app.chat_round_trip("while waiting", Duration::from_secs(120))
            .await
            .unwrap(),
        "Echo: while waiting"
    );
    openai.clear_faults();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok, "{text}");
    let now = settled(&app, &vault, &openai, &project, &before, "after the 503s").await;
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
            let held = clawkeeper_core::rotation::driver::candidates(&vault, &entry())
                .await
                .unwrap();
            assert!(
                held.iter().any(|k| openai.would_allow(k.expose())),
                "{stop}: no key in the keychain works while it is stopped"
            );
            seen.extend(held);
            let (ok, text) = cli.run(&["rotate", "--resume"]);
            assert!(ok, "{stop}: {text}");
            let now = settled(&app, &vault, &openai, &project, &before, &stop).await;
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

    step("the admin key revoked at OpenAI: a clear error, nothing changed");
    let before = vault.read(&entry()).await.unwrap();
    let accounts = openai.service_accounts(&project);
    openai.revoke_admin_key(&admin);
    let (ok, text) = cli.run(&["rotate", "provider-key"]);
    assert!(
        !ok && text.contains("OpenAI refused the admin key"),
        "{text}"
    );
    let last = journal::recent(app.store(), 1).await.unwrap();
    assert_eq!(last[0].outcome, Some(Outcome::RolledBack), "{last:?}");
    let now = settled(
        &app,
        &vault,
        &openai,
        &project,
        &before,
        "admin key revoked",
    )
    .await;
    assert_eq!(now.expose(), before.expose());
    assert_eq!(openai.service_accounts(&project), accounts);

    step("no key, old, new or admin, on disk, in logs, in process arguments, the journal or the audit log");
    let needles: Vec<String> = seen.iter().map(|s| s.expose().to_owned()).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let audit_text = scan::assert_nowhere(data.path(), app.store(), &needles).await;
    assert!(
        audit_text.contains("rotation.done") && audit_text.contains("provider.admin_key_saved"),
        "{audit_text}"
    );
    app.stop().await.unwrap();
}
