//! The status window's "Usage and spend" section, end to end: the real desktop app
//! (tauri-driver → `clawkeeper-window` → the tray daemon), the real OpenClaw gateway with
//! the contract fake model charging OpenRouter-style costs, the real keychain and SQLite,
//! and the tray daemon's notifications watched on the session bus with `dbus-monitor`.
//!
//! The history before today is in the store as earlier syncs would have left it (three
//! models over four weeks, so the charts have something to show); today's use comes from
//! real chats through the gateway, which the daemon syncs on its own (every 3 s here).
//! The person sets a spend cap in the form: the cap line and bar show it, and the tray
//! daemon's notification says 50 % is used. Export CSV saves a file.
//!
//! Screenshots: docs/screenshots/usage.png, usage-charts.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{bail, Context, Result};
use clawkeeper_core::paths::Paths;
use clawkeeper_core::store::Store;
use clawkeeper_core::usage::gateway::{ChannelDay, DayUsage, ModelDay, SessionDay};
use clawkeeper_core::usage::ledger::{Filter, Ledger};
use clawkeeper_core::usage::{Day, Tokens};
use clawkeeper_tests::cli::local_ok as cli;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_model::{ContractFakeModel, TokenPrice};
use clawkeeper_tests::webdriver::{
    app_session, click, js, kill, screenshot, tauri_driver, wait_until,
};
use fantoccini::{Client, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Dollars per token: a chat of ~6,000 prompt tokens costs ~$0.30.
const PRICE: TokenPrice = TokenPrice {
    input: 0.000_05,
    output: 0.000_15,
};

struct Procs {
    driver: Option<Child>,
    monitor: Option<Child>,
    home: PathBuf,
}

impl Drop for Procs {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.home.join("clawkeeper.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            kill(pid, "-TERM");
            let deadline = Instant::now() + Duration::from_secs(45);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for c in [self.driver.take(), self.monitor.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            kill(c.id(), "-TERM");
            std::thread::sleep(Duration::from_millis(300));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tokens(input: u64, output: u64) -> Tokens {
    Tokens {
        input,
        output,
        cache_read: 0,
        cache_write: 0,
        total: input + output,
    }
}

/// Four weeks of earlier use, as syncs before today left it: three models, the app and
/// Telegram, a few conversations; the last sync ended yesterday.
async fn seed_history(home: &Path) -> Result<f64> {
    let (store, _) = Store::open(&Paths::under(home).db()).await?;
    let ledger = Ledger::new(store.clone());
    let today = Day::today();
    let models = [
        ("openrouter", "anthropic/claude-sonnet-4.5", 0.6),
        ("openrouter", "openai/gpt-5-mini", 0.3),
        ("openrouter", "google/gemini-2.5-flash", 0.1),
    ];
    let mut days = Vec::new();
    let mut total = 0.0;
    for back in 1..=27i64 {
        let day = today.plus(-back);
        // A quiet weekend, a busier middle of the week.
        let weekday = day.0.weekday().number_days_from_monday();
        if weekday >= 5 && back % 3 != 0 {
            continue;
        }
        let scale = 1.0 + f64::from(u8::try_from(back % 5).unwrap_or(0)) * 0.35;
        let cost = 0.12 * scale;
        let t = (9_000.0 * scale) as u64;
        total += cost;
        days.push(DayUsage {
            day,
            tokens: tokens(t * 9 / 10, t / 10),
            cost,
            models: models
                .iter()
                .map(|(p, m, share)| ModelDay {
                    provider: (*p).into(),
                    model: (*m).into(),
                    tokens: (t as f64 * share) as u64,
                    cost: cost * share,
                    calls: (10.0 * share * scale) as u64 + 1,
                })
                .collect(),
            channels: vec![
                ChannelDay {
                    channel: "app".into(),
                    tokens: tokens(t * 6 / 10, t / 15),
                    cost: cost * 0.65,
                },
                ChannelDay {
                    channel: "telegram".into(),
                    tokens: tokens(t * 3 / 10, t / 30),
                    cost: cost * 0.35,
                },
            ],
            sessions: vec![SessionDay {
                key: "agent:main:main".into(),
                label: Some("Planning the garden".into()),
                channel: None,
                tokens: tokens(t / 2, t / 20),
                cost: cost * 0.5,
            }],
        });
    }
    // Models' tokens must add up to the day's, as the gateway's do.
    for d in &mut days {
        let sum: u64 = d.models.iter().map(|m| m.tokens).sum();
        d.tokens.input = sum - d.tokens.output.min(sum);
        d.tokens.total = sum;
    }
    ledger
        .replace(
            "local",
            Day::parse("2020-01-01").unwrap(),
            today.plus(-1),
            &days,
            &clawkeeper_core::time::now_rfc3339(),
            None,
        )
        .await?;
    store.close().await;
    Ok(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_usage_section_cap_and_alert() -> Result<()> {
    if !env::isolated() || std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!("SKIPPED: needs scripts/test.sh (keychain, display)");
        return Ok(());
    }
    let Some(driver_bin) = tauri_driver() else {
        eprintln!(
            "SKIPPED: tauri-driver not found (cargo install tauri-driver --version ^2 --locked)"
        );
        return Ok(());
    };
    let Some(runtime) = env::test_runtime() else {
        eprintln!("SKIPPED: CLAWKEEPER_TEST_RUNTIME is not set (scripts/test.sh sets it)");
        return Ok(());
    };
    let app_exe = env::bin("clawkeeper-window");
    if !app_exe.is_file() {
        bail!("build the app first: cargo build -p clawkeeper-window -p clawkeeper-tray-daemon");
    }
    let namespace = format!("clawkeeper-test-e2e-usage-{}", std::process::id());
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("clawkeeper-home");
    let exports = tmp.path().join("exports");
    std::fs::create_dir_all(&home)?;
    let port = env::free_port();
    let api_key = format!("sk-e2e-usage-{}", std::process::id());
    let fake = ContractFakeModel::start_priced(
        ([127, 0, 0, 1], 0).into(),
        api_key.clone(),
        vec!["echo-1".into()],
        Some(PRICE),
    )
    .await?;

    eprintln!("=== the provider (CLI, key on stdin) and four weeks of earlier use");
    cli(
        &home,
        &namespace,
        port,
        &[
            "provider",
            "--kind",
            "openai-compatible",
            "--base-url",
            &fake.base_url(),
            "--model",
            "echo-1",
        ],
        Some(&api_key),
    )?;
    let history = seed_history(&home).await?;

    let monitor_log = tmp.path().join("notifications.log");
    let monitor = Command::new("dbus-monitor")
        .args(["--session", "interface='org.freedesktop.Notifications'"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&monitor_log)?)
        .stderr(Stdio::null())
        .spawn()
        .context("starting dbus-monitor")?;
    let log = tmp.path().join("app.log");
    let log_file = std::fs::File::create(&log)?;
    let (driver_port, native_port) = (env::free_port(), env::free_port());
    let mut driver_cmd = Command::new(&driver_bin);
    driver_cmd
        .args([
            "--port",
            &driver_port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .env("CLAWKEEPER_HOME", &home)
        .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace)
        .env("CLAWKEEPER_RUNTIME_DIR", &runtime)
        .env("CLAWKEEPER_PORT", port.to_string())
        .env("CLAWKEEPER_USAGE_EVERY_SECS", "3")
        .env("CLAWKEEPER_EXPORT_DIR", &exports)
        .env("CLAWKEEPER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let procs = Procs {
        driver: Some(driver_cmd.spawn().context("starting tauri-driver")?),
        monitor: Some(monitor),
        home: home.clone(),
    };
    let c = app_session(driver_port, &app_exe, &["--open", "status"]).await?;
    let result = drive(&c, &home, &namespace, port, &exports, &monitor_log, history).await;
    if result.is_err() {
        let _ = screenshot(&c, "failure-usage.png").await;
        if let Ok(text) = std::fs::read_to_string(&log) {
            eprintln!("--- app / driver log (last lines) ---");
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
    drop(procs);
    result
}

async fn drive(
    c: &Client,
    home: &Path,
    namespace: &str,
    port: u16,
    exports: &Path,
    monitor_log: &Path,
    history: f64,
) -> Result<()> {
    wait_until("the status window", Duration::from_secs(60), || async {
        Ok(c.title().await?.contains("Status").then_some(()))
    })
    .await?;
    eprintln!("=== the earlier use shows before the assistant is even up");
    let headline = "return document.querySelector('[data-testid=usage-headline]')?.innerText ?? ''";
    wait_until("the usage headline", Duration::from_secs(30), || async {
        let t = js(c, headline).await?;
        Ok(t.contains("this month").then_some(t))
    })
    .await?;

    eprintln!("=== the assistant starts on its own (provider configured)");
    wait_until("Working", Duration::from_secs(180), || async {
        let t = js(c, "return document.getElementById('status-line').innerText").await?;
        Ok(t.contains("Working").then_some(()))
    })
    .await?;

    eprintln!("=== at a glance: version, memory, disk, conversations");
    let glance = wait_until("At a glance", Duration::from_secs(60), || async {
        let t = js(c, "return document.getElementById('glance-kv').innerText").await?;
        Ok(
            (t.contains("2026.9.6") && t.contains("free of") && t.contains("Conversations"))
                .then_some(t),
        )
    })
    .await?;
    eprintln!("{glance}");
    let update = js(
        c,
        "return document.getElementById('glance-notes').innerText",
    )
    .await?;
    assert!(
        update.contains("turned off"),
        "the suite turns the update check off: {update}"
    );

    eprintln!("=== two chats through the real gateway (CLI)");
    for msg in ["What should I plant in March?", "And in April?"] {
        let out = cli(home, namespace, port, &["chat", msg], None)?;
        assert!(out.contains("Echo:"), "{out}");
    }

    eprintln!("=== the daemon syncs on its own: today's spend appears");
    let db = Paths::under(home).db();
    let today_cost = wait_until("today's use in the ledger", Duration::from_secs(60), || {
        let db = db.clone();
        async move {
            let (store, _) = Store::open(&db).await?;
            let t = Ledger::new(store.clone())
                .totals(&Filter {
                    from: Day::today(),
                    to: Day::today(),
                    instance: None,
                })
                .await?;
            store.close().await;
            Ok((t.cost > 0.0).then_some(t.cost))
        }
    })
    .await?;
    eprintln!("today: ${today_cost:.4}");
    let want = format!("${today_cost:.2} today");
    let shown = wait_until(
        "today's spend in the headline",
        Duration::from_secs(30),
        || async {
            let t = js(c, headline).await?;
            Ok(t.contains(&want).then_some(t))
        },
    )
    .await?;
    eprintln!("headline: {shown}");

    eprintln!("=== a monthly cap so that this month is at 60 %: the bar, and a notification");
    let month_from = clawkeeper_core::usage::Period::Monthly
        .bounds(Day::today())
        .0;
    let month_spent = {
        let (store, _) = Store::open(&db).await?;
        let t = Ledger::new(store.clone())
            .totals(&Filter {
                from: month_from,
                to: Day::today(),
                instance: None,
            })
            .await?;
        store.close().await;
        t.cost
    };
    assert!(month_spent >= today_cost && month_spent <= today_cost + history + 1e-9);
    let cap = (month_spent / 0.6 * 100.0).ceil() / 100.0;
    click(c, "[data-testid=cap-open]").await?;
    let amount = c.find(Locator::Css("[data-testid=cap-amount]")).await?;
    amount.clear().await?;
    amount.send_keys(&format!("{cap:.2}")).await?;
    click(c, "[data-testid=cap-save]").await?;
    let line = wait_until("the cap line", Duration::from_secs(30), || async {
        let t = js(
            c,
            "return document.querySelector('[data-testid=cap-line]')?.innerText ?? ''",
        )
        .await?;
        Ok(t.contains(&format!("${cap:.2}")).then_some(t))
    })
    .await?;
    eprintln!("cap line: {line}");
    assert!(line.contains("this month"), "{line}");
    wait_until("the 50 % notification", Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(monitor_log).unwrap_or_default();
        Ok(log
            .contains("50% of your spend cap used this month")
            .then_some(()))
    })
    .await?;
    // Once: the next syncs don't say it again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let log = std::fs::read_to_string(monitor_log).unwrap_or_default();
    assert_eq!(
        log.matches("50% of your spend cap used this month").count(),
        1,
        "{log}"
    );

    eprintln!("=== charts drawn, the screenshot");
    let charts = js(
        c,
        "return String(document.querySelectorAll('#usage-section canvas').length)",
    )
    .await?;
    if charts.parse::<u32>().unwrap_or(0) < 2 {
        let html = js(
            c,
            "const q = (x) => document.querySelectorAll(x).length; return JSON.stringify({uplot: q('#usage-section .uplot'), open: q('#usage-section .charts details[open]'), hosts: [...document.querySelectorAll('#usage-section .charts [role=img]')].map(e => e.className + ':' + e.clientWidth + 'x' + e.clientHeight + ':' + e.children.length), res: performance.getEntriesByType('resource').map(r => r.name).filter(n => n.includes('chart')), scripts: [...document.scripts].map(s => s.src)})",
        )
        .await?;
        let err = js(
            c,
            "return document.querySelector('#usage-section .charts')?.dataset.chartsError ?? ''",
        )
        .await?;
        bail!("{charts} charts drawn: {html} / {err}");
    }
    js(
        c,
        "document.getElementById('usage-section').scrollIntoView(); return ''",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(c, "usage.png").await?;
    js(
        c,
        "document.querySelector('#usage-section .usage-charts').scrollIntoView(); return ''",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(c, "usage-charts.png").await?;

    eprintln!("=== Export CSV saves a file");
    click(c, "[data-testid=export-csv]").await?;
    let saved = wait_until("Saved to …", Duration::from_secs(20), || async {
        let t = js(
            c,
            "return document.querySelector('[data-testid=export-saved]')?.innerText ?? ''",
        )
        .await?;
        Ok(t.contains("Saved to").then_some(t))
    })
    .await?;
    let files: Vec<_> = std::fs::read_dir(exports)?.filter_map(|e| e.ok()).collect();
    assert_eq!(files.len(), 1, "{saved}");
    let csv = std::fs::read_to_string(files[0].path())?;
    assert!(csv.starts_with("day,key,label"), "{csv}");
    assert!(csv.lines().count() >= 10, "{csv}");
    Ok(())
}
