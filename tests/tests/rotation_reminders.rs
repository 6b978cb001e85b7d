//! Rotation reminders ("remind me to change keys every 90 days") with real parts: the real
//! keychain and SQLite, the real tray daemon, its notifications on the session bus (watched
//! with `dbus-monitor`, shown by dunst) and a click on one (`dunstctl action`).
//!
//! Nothing waits for days: the in-process test passes its own clock; the daemon test makes
//! the key old by writing its age (and the last reminder) into the database between runs
//! of the daemon, as if the time had passed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{bail, Context, Result};
use clawkeeper_core::app::{Clawkeeper, Event, ProviderInput, PAUSED_SETTING};
use clawkeeper_core::audit;
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::journal;
use clawkeeper_core::rotation::KeyId;
use clawkeeper_core::store::{ProviderKind, Store};
use clawkeeper_core::Secret;
use clawkeeper_tests::cli::local_ok as cli;
use clawkeeper_tests::env;
use clawkeeper_tests::webdriver::{kill, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const SUMMARY: &str = "Time to change your model provider key";

fn provider(key: &str) -> ProviderInput {
    ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        // Never contacted here.
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model: Some("echo-1".into()),
        api_key: Secret::new(key),
    }
}

async fn provider_set_at(app: &Clawkeeper) -> OffsetDateTime {
    let ages = journal::ages(app.store()).await.unwrap();
    let age = ages.iter().find(|a| a.key == KeyId::ProviderKey).unwrap();
    OffsetDateTime::parse(&age.set_at, &Rfc3339).unwrap()
}

async fn open(dir: &Path) -> Clawkeeper {
    Clawkeeper::open(Paths::under(dir), Policy::default())
        .await
        .unwrap()
}

/// The app's reminders of the keys in the keychain, with the test's clock: due after the
/// period, reminded once (an event and an audit row with the fingerprint, never the key),
/// not again after a restart, again a week later, reset by a new key, none when "never".
#[tokio::test]
async fn reminders_of_the_keys_in_the_keychain() {
    if !env::isolated() {
        eprintln!("SKIPPED: needs scripts/test.sh (keychain)");
        return;
    }
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-remind-{}", std::process::id()),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path()).await;
    app.save_provider(provider("sk-remind-first-key-0001"))
        .await
        .unwrap();
    let set = provider_set_at(&app).await;

    let keys = app.keys_inventory().await.unwrap();
    let k = keys.iter().find(|k| k.key == KeyId::ProviderKey).unwrap();
    assert!(!k.due);
    let due_at = OffsetDateTime::parse(k.due_at.as_deref().unwrap(), &Rfc3339).unwrap();
    assert_eq!(
        due_at,
        set + time::Duration::days(90),
        "90 days unless chosen"
    );
    let r = app
        .key_reminders_at(set + time::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(r.every_days, Some(90));
    assert!(r.due.is_empty());
    assert_eq!(r.next_keys, vec!["Model provider key"]);
    assert!(app
        .remind_rotations(set + time::Duration::days(89))
        .await
        .unwrap()
        .is_none());

    // 91 days on: one reminder, as an event, and an audit row.
    let day91 = set + time::Duration::days(91);
    let mut events = app.events();
    let r = app.remind_rotations(day91).await.unwrap().unwrap();
    assert_eq!(r.summary, SUMMARY);
    assert_eq!(
        r.body,
        "It is 91 days old. Open Keys to see how to change it."
    );
    assert_eq!(r.keys, vec![KeyId::ProviderKey]);
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::RotationReminder(r)) = events.recv().await {
                return r;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev.summary, SUMMARY);
    let due = app.key_reminders_at(day91).await.unwrap();
    assert_eq!(due.due.len(), 1);
    assert_eq!(due.due[0].label, "Model provider key");
    let rows = audit::recent(app.store(), 5).await.unwrap();
    let row = rows
        .iter()
        .find(|a| a.action == "rotation.reminded")
        .unwrap();
    assert!(
        row.detail.contains("provider-key sha256:"),
        "{}",
        row.detail
    );
    assert!(row.detail.contains("91 days old"), "{}", row.detail);
    assert!(
        !row.detail.contains("sk-remind"),
        "never the key: {}",
        row.detail
    );
    // Once.
    assert!(app
        .remind_rotations(day91 + time::Duration::hours(1))
        .await
        .unwrap()
        .is_none());

    // Restarted: still once; a week later, again.
    app.shutdown().await;
    drop(app);
    let app = open(dir.path()).await;
    assert!(app
        .remind_rotations(day91 + time::Duration::days(6))
        .await
        .unwrap()
        .is_none());
    assert!(app
        .remind_rotations(day91 + time::Duration::days(7))
        .await
        .unwrap()
        .is_some());

    // The same key saved again is not a change; a new key starts over.
    app.save_provider(provider("sk-remind-first-key-0001"))
        .await
        .unwrap();
    assert_eq!(provider_set_at(&app).await, set);
    app.save_provider(provider("sk-remind-second-key-0002"))
        .await
        .unwrap();
    let new_set = provider_set_at(&app).await;
    assert!(new_set > set);
    let r = app
        .key_reminders_at(new_set + time::Duration::days(1))
        .await
        .unwrap();
    assert!(r.due.is_empty(), "{r:?}");
    assert!(app
        .remind_rotations(new_set + time::Duration::days(89))
        .await
        .unwrap()
        .is_none());
    // Due again a period after the new key: at once, not a week after the last reminder.
    assert!(app
        .remind_rotations(new_set + time::Duration::days(90))
        .await
        .unwrap()
        .is_some());

    // Never: no reminder, however old; nonsense is refused.
    let r = app.set_key_reminders(None).await.unwrap();
    assert_eq!((r.every_days, r.next_at.as_deref()), (None, None));
    assert!(app
        .remind_rotations(new_set + time::Duration::days(1000))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        app.set_key_reminders(Some(0)).await.unwrap_err().code,
        "remind_input"
    );
    let r = app.set_key_reminders(Some(30)).await.unwrap();
    assert_eq!(r.every_days, Some(30));
    let rows = audit::recent(app.store(), 10).await.unwrap();
    assert!(rows
        .iter()
        .any(|a| a.action == "rotation.remind_set" && a.detail == "every 30 days"));
    app.shutdown().await;
}

/// The tray daemon alone on a data folder; the window it opens is a script that notes
/// what it was asked to open. Stopped on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(home: &Path, namespace: &str, window: &Path, log: PathBuf) -> Result<Self> {
        let bin = env::bin("clawkeeper");
        if !bin.is_file() {
            bail!("build the app first: cargo build -p clawkeeper-tray-daemon");
        }
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .env("CLAWKEEPER_WINDOW_BIN", window)
            .env("CLAWKEEPER_HOME", home)
            .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", namespace)
            .env("CLAWKEEPER_PORT", env::free_port().to_string())
            .env(
                "CLAWKEEPER_TAILSCALE_SOCKET",
                "/nonexistent/tailscaled.sock",
            )
            .env(
                "CLAWKEEPER_LOG",
                "info,clawkeeper_core::app::reminders=debug",
            )
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("starting the tray daemon")?;
        Ok(Self { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the daemon has looked at the reminders (and found nothing, or given one).
    async fn checked(&self) -> Result<()> {
        let r = wait_until(
            "the daemon's reminder check",
            Duration::from_secs(30),
            || async {
                let l = self.log();
                Ok((l.contains("rotation reminders: nothing to remind of")
                    || l.contains("rotation reminder"))
                .then_some(()))
            },
        )
        .await;
        if r.is_err() {
            eprintln!("--- daemon log ---\n{}", self.log());
        }
        r
    }

    fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        kill(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop_now();
        }
    }
}

struct Monitor(Child);
impl Drop for Monitor {
    fn drop(&mut self) {
        kill(self.0.id(), "-TERM");
        let _ = self.0.wait();
    }
}

async fn sql(home: &Path, query: &str, at: OffsetDateTime) -> Result<()> {
    let (store, _) = Store::open(&Paths::under(home).db()).await?;
    sqlx::query(query)
        .bind(at.format(&Rfc3339)?)
        .execute(store.pool())
        .await?;
    store.close().await;
    Ok(())
}

/// The tray daemon reminds once of a key older than the schedule, with a notification on
/// the session bus; a click on it opens the Keys section; a restart doesn't remind again,
/// a week later does; "never" (set with the CLI) stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_reminder_notifies_once_and_opens_keys() -> Result<()> {
    if !env::isolated() || std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!("SKIPPED: needs scripts/test.sh (keychain, session bus, display)");
        return Ok(());
    }
    let namespace = format!("clawkeeper-test-e2e-remind-{}", std::process::id());
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("clawkeeper-home");
    std::fs::create_dir_all(&home)?;
    let port = env::free_port();

    eprintln!("=== the provider key (CLI, on stdin), saved 100 days ago");
    cli(
        &home,
        &namespace,
        port,
        &[
            "provider",
            "--kind",
            "openai-compatible",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "echo-1",
        ],
        Some("sk-remind-e2e-key-0001"),
    )?;
    let now = OffsetDateTime::now_utc();
    sql(
        &home,
        "UPDATE secret_ages SET set_at = ?1 WHERE secret = 'provider-key'",
        now - time::Duration::days(100),
    )
    .await?;
    // Paused at the spend cap: the daemon doesn't try to start an assistant (there is no
    // runtime here), so the reminder is the only notification.
    {
        let (store, _) = Store::open(&Paths::under(&home).db()).await?;
        store.set_setting(PAUSED_SETTING, "2026-01-01").await?;
        store.close().await;
    }
    let list = cli(&home, &namespace, port, &["rotate", "--list"], None)?;
    eprintln!("{list}");
    assert!(list.contains("DUE now"), "{list}");
    assert!(
        list.contains("Reminders to change keys: every 90 days; due now: Model provider key"),
        "{list}"
    );

    // The window process stand-in: notes what it was asked to open.
    let opened = tmp.path().join("opened.txt");
    let window = tmp.path().join("window.sh");
    std::fs::write(
        &window,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", opened.display()),
    )?;
    std::process::Command::new("chmod")
        .args(["+x", &window.to_string_lossy()])
        .status()?;

    let monitor_log = tmp.path().join("notifications.log");
    let _monitor = Monitor(
        Command::new("dbus-monitor")
            .args(["--session", "interface='org.freedesktop.Notifications'"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&monitor_log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting dbus-monitor")?,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notifications = || std::fs::read_to_string(&monitor_log).unwrap_or_default();
    let count = || notifications().matches(SUMMARY).count();

    eprintln!("=== the daemon starts: one reminder");
    let daemon = Daemon::start(&home, &namespace, &window, tmp.path().join("daemon1.log"))?;
    let seen = wait_until(
        "the reminder notification",
        Duration::from_secs(60),
        || async { Ok((count() > 0).then(notifications)) },
    )
    .await;
    if seen.is_err() {
        eprintln!("--- daemon log ---\n{}", daemon.log());
    }
    let seen = seen?;
    assert!(seen.contains("It is 100 days old. Open Keys"), "{seen}");

    eprintln!("=== a click on it opens the Keys section");
    let clicked = wait_until(
        "the Keys section opened",
        Duration::from_secs(30),
        || async {
            // dunst shows it a moment after the call; click until the window is asked for.
            let _ = Command::new("dunstctl")
                .args(["action", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let o = std::fs::read_to_string(&opened).unwrap_or_default();
            Ok(o.contains("status#keys").then_some(o))
        },
    )
    .await;
    if clicked.is_err() {
        eprintln!("--- daemon log ---\n{}", daemon.log());
    }
    let o = clicked?;
    assert_eq!(o.trim(), "--open status#keys", "only the Keys section: {o}");
    assert!(daemon.log().contains("notification clicked"));
    daemon.stop();

    let (store, _) = Store::open(&Paths::under(&home).db()).await?;
    let rows = audit::recent(&store, 20).await?;
    store.close().await;
    let row = rows
        .iter()
        .find(|a| a.action == "rotation.reminded")
        .context("an audit row for the reminder")?;
    assert!(
        row.detail.contains("provider-key sha256:"),
        "{}",
        row.detail
    );
    assert!(
        !row.detail.contains("sk-remind"),
        "never the key: {}",
        row.detail
    );

    eprintln!("=== restarted: not again");
    let daemon = Daemon::start(&home, &namespace, &window, tmp.path().join("daemon2.log"))?;
    daemon.checked().await?;
    assert!(
        daemon.log().contains("nothing to remind of"),
        "{}",
        daemon.log()
    );
    daemon.stop();
    assert_eq!(count(), 1, "{}", notifications());

    eprintln!("=== a week later, still not changed: again");
    sql(
        &home,
        "UPDATE rotation_reminders SET reminded_at = ?1",
        now - time::Duration::days(8),
    )
    .await?;
    let daemon = Daemon::start(&home, &namespace, &window, tmp.path().join("daemon3.log"))?;
    wait_until("the second reminder", Duration::from_secs(60), || async {
        Ok((count() == 2).then_some(()))
    })
    .await?;
    daemon.stop();

    eprintln!("=== never (CLI): not again, however long");
    let out = cli(
        &home,
        &namespace,
        port,
        &["rotate", "--remind", "never"],
        None,
    )?;
    assert_eq!(out.trim(), "Reminders to change keys: never.");
    sql(
        &home,
        "UPDATE rotation_reminders SET reminded_at = ?1",
        now - time::Duration::days(30),
    )
    .await?;
    let daemon = Daemon::start(&home, &namespace, &window, tmp.path().join("daemon4.log"))?;
    daemon.checked().await?;
    assert!(
        daemon.log().contains("nothing to remind of"),
        "{}",
        daemon.log()
    );
    daemon.stop();
    assert_eq!(count(), 2, "{}", notifications());
    let list = cli(&home, &namespace, port, &["rotate", "--list"], None)?;
    assert!(!list.contains("DUE"), "{list}");
    Ok(())
}
