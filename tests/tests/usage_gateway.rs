//! Usage and spend end to end: the real OpenClaw gateway (pinned runtime) with the contract
//! fake model reporting known token counts and OpenRouter-style costs, and the contract
//! fake of OpenRouter's usage and key API. One gateway per test binary: one scenario with
//! named steps.
//!
//! - After chats, the app's totals equal the sums of the gateway's own transcript (read
//!   from its SQLite) per day and per model, and the CLI prints the same.
//! - A second sync asks only for the last days; new chats add exactly their own use.
//! - The spend cap: alerts at the right levels, once per period (also after a restart),
//!   the cap set on the key at OpenRouter via the management API, OpenRouter's count shown
//!   beside the app's, and a pause at the cap with one-click resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, Event, ProviderInput};
use clawkeeper_core::local::supervisor::{InstanceState, Policy};
use clawkeeper_core::paths::Paths;
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::usage::alerts::{Alert, Cap};
use clawkeeper_core::usage::ledger::Filter;
use clawkeeper_core::usage::{By, Day, Period};
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_model::{ContractFakeModel, TokenPrice};
use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
use clawkeeper_tests::openclaw_state::{close, read_transcript_sums, Expected};
use clawkeeper_tests::{env, scan};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::broadcast;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

/// Dollars per token the fake model charges (OpenRouter-style `usage.cost`).
const PRICE: TokenPrice = TokenPrice {
    input: 0.000_003,
    output: 0.000_015,
};

/// The app's ledger by (day, model), and the transcript's.
async fn compare(app: &Clawkeeper, transcript: &Expected) {
    let all = Filter {
        from: Day::parse("2020-01-01").unwrap(),
        to: Day::today().plus(1),
        instance: None,
    };
    let ledger = app.usage_ledger();
    let totals = ledger.totals(&all).await.unwrap();
    eprintln!(
        "app: {} tokens ${:.6}; transcript: {} tokens ${:.6} ({} events)",
        totals.tokens.total,
        totals.cost,
        transcript.totals.total_tokens,
        transcript.totals.total_cost,
        transcript.events
    );
    assert_eq!(totals.tokens.total, transcript.totals.total_tokens);
    assert_eq!(totals.tokens.input, transcript.totals.input);
    assert_eq!(totals.tokens.output, transcript.totals.output);
    assert!(
        close(totals.cost, transcript.totals.total_cost, 1e-9),
        "cost {} vs {}",
        totals.cost,
        transcript.totals.total_cost
    );
    // Per day.
    let by_day = ledger.breakdown(&all, By::Day).await.unwrap();
    assert_eq!(by_day.len(), transcript.by_day.len(), "{by_day:?}");
    for row in &by_day {
        let day = row.day.unwrap().to_string();
        let want = &transcript.by_day[&day];
        assert_eq!(row.tokens.total, want.total_tokens, "{day}");
        assert!(close(row.cost, want.total_cost, 1e-9), "{day}");
    }
    // Per day and model.
    let by_day_model = ledger.breakdown(&all, By::DayModel).await.unwrap();
    let mut want: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for ((day, _provider, model), t) in &transcript.by_day_model {
        let e = want.entry((day.clone(), model.clone())).or_default();
        e.0 += t.total_tokens;
        e.1 += t.total_cost;
    }
    assert_eq!(
        by_day_model.len(),
        want.len(),
        "{by_day_model:?} vs {want:?}"
    );
    for row in &by_day_model {
        let (tokens, cost) = want[&(row.day.unwrap().to_string(), row.key.clone())];
        assert_eq!(row.tokens.total, tokens, "{row:?}");
        assert!(close(row.cost, cost, 1e-9), "{row:?} vs {cost}");
        assert!(row.calls.unwrap() >= 1);
    }
}

/// The next spend alert on the event stream within `wait`, if any.
async fn next_alert(rx: &mut broadcast::Receiver<Event>, wait: Duration) -> Option<Alert> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Event::SpendAlert { alert, .. })) => return Some(alert),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_usage_totals_caps_and_alerts() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache and the test session)"
        );
        return;
    };
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-usage-{}", std::process::id()),
    );
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let openrouter = ContractFakeOpenRouter::start(true).await.unwrap();
    std::env::set_var("CLAWKEEPER_OPENROUTER_SITE", openrouter.origin());

    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let provider_key = format!("sk-or-v1-{}", Secret::random(24).expose());
    openrouter.add_key_with_text(&provider_key, "assistant");
    let fake = ContractFakeModel::start_priced(
        ([127, 0, 0, 1], 0).into(),
        provider_key.clone(),
        vec!["echo-1".into()],
        Some(PRICE),
    )
    .await
    .unwrap();
    let policy = Policy {
        probe_every: Duration::from_secs(5),
        backoff_start: Duration::from_millis(500),
        ..Policy::default()
    };
    let app = Clawkeeper::open(paths.clone(), policy.clone())
        .await
        .unwrap();
    let mut events = app.events();

    step("an OpenRouter provider (the model calls go to the contract fake model)");
    app.save_provider(ProviderInput {
        kind: ProviderKind::Openrouter,
        base_url: Some(fake.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(provider_key.clone()),
    })
    .await
    .unwrap();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let state_dir = app.instance().state_dir();

    step("before any chat: a first sync takes the whole (empty) history");
    let r = app.usage_sync().await.unwrap();
    assert_eq!(r.from.to_string(), "2020-01-01");
    assert_eq!(r.rows, 0);
    let s = app.usage_summary().await.unwrap();
    assert_eq!((s.today, s.month), (0.0, 0.0));
    assert!(s.synced_at.is_some() && s.error.is_none());

    step("four chats, then the app's totals equal the transcript's, per day and model");
    for i in 0..4 {
        let msg = format!("message number {i} about usage and spend");
        let reply = app
            .chat_round_trip(&msg, Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(reply, format!("Echo: {msg}"));
    }
    let r = app.usage_sync().await.unwrap();
    eprintln!("sync: {r:?}");
    assert!(
        r.from < Day::today(),
        "the second sync starts from the last range"
    );
    assert_ne!(
        r.from.to_string(),
        "2020-01-01",
        "not the whole history again"
    );
    let transcript = read_transcript_sums(&state_dir).await.unwrap();
    assert!(
        transcript.totals.total_cost > 0.0,
        "the fake model's costs were counted"
    );
    compare(&app, &transcript).await;
    assert!(
        fake.chat_requests().len() >= 4,
        "every chat reached the model"
    );

    step("at a glance: version, update check (offline npm mirror), memory, disk, conversations");
    let mirror =
        match clawkeeper_tests::npm_mirror::NpmMirror::start_from_env(([127, 0, 0, 1], 0).into())
            .await
        {
            Ok(m) => {
                std::env::set_var("CLAWKEEPER_UPDATE_REGISTRY", m.url());
                Some(m)
            }
            Err(e) => {
                eprintln!("no npm mirror ({e}): the update check is expected to say it couldn't");
                std::env::set_var("CLAWKEEPER_UPDATE_REGISTRY", "http://127.0.0.1:9");
                None
            }
        };
    let d = app.status_detail().await.unwrap();
    eprintln!("{}", serde_json::to_string(&d).unwrap());
    assert_eq!(d.version.as_deref(), Some("2026.9.6"));
    assert_eq!(d.assistant.path, "local");
    assert!(d.up_since.is_some());
    let host = d.host.unwrap();
    assert!(host.memory_total > 0 && host.memory_available <= host.memory_total);
    assert!(host.disk_total > 0 && host.disk_free <= host.disk_total);
    assert!(d.sessions.unwrap() >= 1, "{d:?}");
    assert!(d.gateway_memory.unwrap() > 100 << 20);
    match (&mirror, &d.update) {
        (Some(m), Some(u)) => {
            // The mirror holds the pinned version as the latest: nothing newer.
            let latest = m.packument("openclaw").unwrap()["dist-tags"]["latest"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(u.latest, latest);
            assert_eq!(u.available, latest != "2026.9.6");
        }
        (None, None) => assert!(
            d.notes.iter().any(|n| n.contains("newer OpenClaw")),
            "{d:?}"
        ),
        (m, u) => panic!("update check: mirror {}, {u:?}", m.is_some()),
    }

    step("the CLI prints the same by model, as JSON and CSV");
    let out = std::process::Command::new(env::bin("clawkeeper-cli"))
        .args([
            "usage", "--since", "2d", "--by", "model", "--format", "json",
        ])
        .env("CLAWKEEPER_HOME", &paths.data_dir)
        .env("CLAWKEEPER_RUNTIME_DIR", &paths.runtime_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(rows[0]["key"], "echo-1");
    assert_eq!(
        rows[0]["tokens"]["total"].as_u64().unwrap(),
        transcript.totals.total_tokens
    );
    assert!(close(
        rows[0]["cost"].as_f64().unwrap(),
        transcript.totals.total_cost,
        1e-9
    ));
    assert_eq!(json["daysAre"], "utc");
    let out = std::process::Command::new(env::bin("clawkeeper-cli"))
        .args(["usage", "--since", "30d", "--by", "day", "--format", "csv"])
        .env("CLAWKEEPER_HOME", &paths.data_dir)
        .env("CLAWKEEPER_RUNTIME_DIR", &paths.runtime_dir)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("day,key,label,input_tokens"), "{csv}");
    assert!(
        csv.contains(&transcript.totals.total_tokens.to_string()),
        "{csv}"
    );

    step("a sync with nothing new asks for no day and changes nothing; one more chat adds exactly its use");
    app.usage_sync().await.unwrap();
    let r = app.usage_sync().await.unwrap();
    assert!(r.nothing_new && r.days == 0, "{r:?}");
    compare(&app, &transcript).await;
    app.chat_round_trip("one more", Duration::from_secs(120))
        .await
        .unwrap();
    let r = app.usage_sync().await.unwrap();
    assert!(
        !r.nothing_new && r.days >= 2,
        "the new chat was seen: {r:?}"
    );
    let transcript = read_transcript_sums(&state_dir).await.unwrap();
    compare(&app, &transcript).await;
    let spent = transcript.totals.total_cost;

    step("OpenRouter's count beside the app's: a difference is shown, not hidden");
    // OpenRouter bills the key for what the model reported, plus $1 used elsewhere.
    openrouter
        .record_spend(
            &provider_key,
            spent + 1.0,
            "openrouter/auto",
            openrouter.today(),
        )
        .unwrap();
    app.usage_sync().await.unwrap();
    let view = app.usage_view(30).await.unwrap();
    let p = view.provider.as_ref().expect("OpenRouter's view");
    assert!(p.error.is_none(), "{p:?}");
    assert!(close(p.today.unwrap(), spent + 1.0, 1e-9), "{p:?}");
    assert!(!p.management_key && !p.cap_enforced);
    let today = p.differs.iter().find(|d| d.period == "today").unwrap();
    assert!(close(today.app, spent, 1e-9) && close(today.provider, spent + 1.0, 1e-9));

    step("a cap: 50 % gives one alert, once; 80 % the next; spend is the higher count");
    // The cap is checked against the higher count (OpenRouter's): spent + 1.
    let billed = spent + 1.0;
    let cap = Cap::new(billed / 0.6, Period::Monthly, None, false).unwrap();
    app.spend_cap_set(Some(cap.clone()), 30).await.unwrap();
    let a = next_alert(&mut events, Duration::from_secs(5)).await;
    assert!(
        matches!(a, Some(Alert::Threshold { level: 50, .. })),
        "{a:?}"
    );
    app.spend_cap_set(Some(cap.clone()), 30).await.unwrap();
    app.usage_sync().await.unwrap();
    assert_eq!(
        next_alert(&mut events, Duration::from_secs(2)).await,
        None,
        "once per period"
    );
    let cap = Cap::new(billed / 0.85, Period::Monthly, None, false).unwrap();
    app.spend_cap_set(Some(cap), 30).await.unwrap();
    let a = next_alert(&mut events, Duration::from_secs(5)).await;
    assert!(
        matches!(a, Some(Alert::Threshold { level: 80, .. })),
        "{a:?}"
    );

    step("a management key: the cap is set on the key at OpenRouter (PATCH limit + reset)");
    let wrong = app
        .provider_management_save(Secret::new(provider_key.clone()))
        .await
        .unwrap_err();
    assert_eq!(wrong.code, "openrouter_management_key_needed", "{wrong:?}");
    let mgmt = openrouter.add_management_key();
    let view = app
        .provider_management_save(Secret::new(mgmt.clone()))
        .await
        .unwrap();
    let (limit, reset) = openrouter.limit_of(&provider_key).unwrap();
    assert!(close(limit.unwrap(), billed / 0.85, 1e-9), "{limit:?}");
    assert_eq!(reset.as_deref(), Some("monthly"));
    let p = view.provider.as_ref().unwrap();
    assert!(p.management_key && p.cap_enforced, "{p:?}");
    assert!(p.credits_left.is_some());

    step("pause at the cap: a cap below the spend stops the assistant, resume starts it");
    let cap = Cap::new(billed / 2.0, Period::Monthly, None, true).unwrap();
    app.spend_cap_set(Some(cap), 30).await.unwrap();
    let a = next_alert(&mut events, Duration::from_secs(5)).await;
    assert!(
        matches!(a, Some(Alert::Threshold { level: 100, .. })),
        "{a:?}"
    );
    assert!(app.spend_paused().await);
    let s = app
        .wait_for_state(Duration::from_secs(60), |s| {
            matches!(s, InstanceState::Stopped)
        })
        .await;
    assert!(matches!(s, InstanceState::Stopped), "{s:?}");
    assert!(app.usage_summary().await.unwrap().paused);
    let (limit, _) = openrouter.limit_of(&provider_key).unwrap();
    assert!(close(limit.unwrap(), billed / 2.0, 1e-9));
    app.spend_resume().await.unwrap();
    assert!(!app.spend_paused().await);
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    // Still over the cap this month, but the pause of this period was already had.
    app.usage_sync().await.unwrap();
    assert!(
        !app.spend_paused().await,
        "resumed stays resumed this period"
    );

    step("removing the cap removes it at OpenRouter too");
    app.spend_cap_set(None, 30).await.unwrap();
    assert_eq!(openrouter.limit_of(&provider_key).unwrap(), (None, None));

    step("alerts given survive a restart: the same cap gives no second alert");
    let cap = Cap::new(billed / 0.85, Period::Monthly, None, false).unwrap();
    app.spend_cap_set(Some(cap.clone()), 30).await.unwrap();
    let _ = next_alert(&mut events, Duration::from_secs(2)).await;
    app.stop().await.unwrap();
    app.shutdown().await;
    drop(app);
    let app = Clawkeeper::open(paths.clone(), policy).await.unwrap();
    let mut events = app.events();
    app.spend_cap_set(Some(cap), 30).await.unwrap();
    assert_eq!(next_alert(&mut events, Duration::from_secs(2)).await, None);
    let err = app.usage_sync().await.unwrap_err();
    assert_eq!(err.code, "assistant_not_running");
    let view = app.usage_view(30).await.unwrap();
    assert!(
        close(view.month_totals.cost, spent, 1e-9),
        "the numbers stay"
    );

    step("with the management key, OpenRouter's activity per day is compared with the app's");
    let past = openrouter.today() - time::Duration::days(3);
    openrouter
        .record_spend(&provider_key, 2.5, "openrouter/auto", past)
        .unwrap();
    let p = app.refresh_provider().await.unwrap();
    let day = p
        .differs
        .iter()
        .find(|d| d.period == past.to_string())
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(close(day.provider, 2.5, 1e-9) && day.app == 0.0, "{day:?}");

    step("exports: CSV in the export folder, never over an earlier one");
    let exports = data.path().join("exports");
    std::env::set_var("CLAWKEEPER_EXPORT_DIR", &exports);
    let today = Day::today();
    let a = app
        .usage_save(
            clawkeeper_core::app::Format::Csv,
            today.plus(-29),
            today,
            By::Model,
        )
        .await
        .unwrap();
    let b = app
        .usage_save(
            clawkeeper_core::app::Format::Csv,
            today.plus(-29),
            today,
            By::Model,
        )
        .await
        .unwrap();
    assert_ne!(a, b);
    assert!(std::fs::read_to_string(&a).unwrap().contains("echo-1"));

    step("no key in the data folder, the exports or any process");
    let needles = [provider_key.as_str(), mgmt.as_str()];
    let files = scan::files_containing(data.path(), &needles);
    assert!(files.is_empty(), "secrets found in {files:?}");
    let procs = scan::processes_containing(&needles);
    assert!(procs.is_empty(), "secrets found in {procs:?}");
    app.shutdown().await;
}
