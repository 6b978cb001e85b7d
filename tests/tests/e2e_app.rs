//! End to end through the real desktop app: tauri-driver + WebKitWebDriver drive the built
//! window process `clawkeeper-window` (which starts the tray daemon `clawkeeper`) on a
//! virtual display, against a real OpenClaw gateway (pre-installed
//! runtime) and the contract fake model server.
//!
//! First run: the setup window → "Another provider" → the fake's address, model and key →
//! Save and start → the ready view → Status and Chat windows → a message comes back as
//! "Echo: …". Screenshots of each screen go to `docs/screenshots/` (they are the README's).
//!
//! Needs: `DISPLAY` (Xvfb), a D-Bus session with an unlocked keyring, `tauri-driver`
//! (`cargo install tauri-driver --version ^2 --locked`), WebKitWebDriver, the app built
//! (`cargo build -p clawkeeper-window -p clawkeeper-tray-daemon`) and `CLAWKEEPER_TEST_RUNTIME` — all of which
//! `scripts/test.sh` provides. Without a display or driver the test says so and skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use anyhow::{bail, Context, Result};
use clawkeeper_tests::fake_model::{ContractFakeModel, REPLY_PREFIX};
use clawkeeper_tests::webdriver::{
    app_session, displayed, kill, screenshot, switch_to_new_window, tauri_driver, wait_reply,
    wait_until,
};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(180);
const REPLY_TIMEOUT: Duration = Duration::from_secs(90);
const MESSAGE: &str = "Hello from the end-to-end test";

/// The window process, `$CARGO_TARGET_DIR/debug/clawkeeper-window`, else in the `debug`
/// dir this test binary lives in. tauri-driver launches it; it starts the tray daemon
/// (`clawkeeper`, next to it).
fn app_binary() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let p = PathBuf::from(dir).join("debug").join("clawkeeper-window");
        if p.is_file() {
            return Some(p);
        }
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "debug"))
        .map(|d| d.join("clawkeeper-window"))
        .filter(|p| p.is_file())
}

/// `n` distinct free ports (all held open while picking, so they differ from each other;
/// start servers that bind port 0 before calling this, so they can't take one of these).
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; count it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    !alive(pid)
}

/// Processes running `exe` whose environment has `CLAWKEEPER_HOME=<home>`.
fn app_pids(exe: &Path, home: &Path) -> Vec<u32> {
    let want = format!("CLAWKEEPER_HOME={}", home.display());
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_owned());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe)
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
        })
        .collect()
}

/// The tray daemon's pid file.
fn daemon_pid(home: &Path) -> Option<u32> {
    std::fs::read_to_string(home.join("clawkeeper.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn gateway_pid(home: &Path) -> Option<u32> {
    std::fs::read_to_string(home.join("instances/local/gateway.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Everything the test started; `Drop` cleans up even when an assertion fails.
struct Harness {
    driver: Option<Child>,
    app_exe: PathBuf,
    home: PathBuf,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Harness {
    /// SIGTERM the tray daemon (it stops its gateway on the way out, and the window
    /// process follows) and the window process; true if they and the gateway ended by
    /// themselves.
    fn stop_app(&self) -> bool {
        let gateway = gateway_pid(&self.home);
        let mut apps: Vec<u32> = daemon_pid(&self.home)
            .filter(|p| alive(*p))
            .into_iter()
            .collect();
        apps.extend(app_pids(&self.app_exe, &self.home));
        for pid in &apps {
            kill(*pid, "-TERM");
        }
        let mut clean = apps
            .iter()
            .all(|pid| wait_gone(*pid, Duration::from_secs(45)));
        for pid in &apps {
            if alive(*pid) {
                kill(*pid, "-KILL");
            }
        }
        if let Some(g) = gateway {
            if !wait_gone(g, Duration::from_secs(5)) {
                clean = false;
                kill(g, "-TERM");
                if !wait_gone(g, Duration::from_secs(20)) {
                    kill(g, "-KILL");
                }
            }
        }
        clean
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_app();
        if let Some(mut d) = self.driver.take() {
            kill(d.id(), "-TERM"); // tauri-driver stops WebKitWebDriver on SIGTERM
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(&self.log) {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- app / driver log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

async fn wait_displayed(c: &Client, css: &str, timeout: Duration) -> Result<Element> {
    wait_until(&format!("`{css}` to show"), timeout, || displayed(c, css)).await
}

async fn text_of(c: &Client, js: &str) -> Result<String> {
    let v = c.execute(js, vec![]).await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

/// Switch to the window that appeared after `before`, with a title containing `title`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_first_run_setup_then_chat() -> Result<()> {
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!(
            "SKIPPED e2e_first_run_setup_then_chat: no DISPLAY (run it through scripts/test.sh)"
        );
        return Ok(());
    }
    let Some(driver_bin) = tauri_driver() else {
        eprintln!(
            "SKIPPED e2e_first_run_setup_then_chat: tauri-driver not found \
             (cargo install tauri-driver --version ^2 --locked)"
        );
        return Ok(());
    };
    let Some(runtime) = std::env::var_os("CLAWKEEPER_TEST_RUNTIME").filter(|r| !r.is_empty())
    else {
        eprintln!(
            "SKIPPED e2e_first_run_setup_then_chat: CLAWKEEPER_TEST_RUNTIME is not set \
             (scripts/test.sh sets it to the pre-installed runtime)"
        );
        return Ok(());
    };
    let app_exe = app_binary().context(
        "the app binary is missing: build it first with `cargo build -p clawkeeper-window -p clawkeeper-tray-daemon` \
         (scripts/test.sh builds the whole workspace)",
    )?;

    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("clawkeeper-home");
    let log = tmp.path().join("app.log");
    let api_key = format!(
        "sk-e2e-{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let fake = ContractFakeModel::start(api_key.clone()).await?;

    let [port, driver_port, native_port] = free_ports()?;

    // tauri-driver → WebKitWebDriver → the app: the app inherits this environment.
    let log_file = std::fs::File::create(&log)?;
    let driver = Command::new(&driver_bin)
        .args([
            "--port",
            &driver_port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .env("CLAWKEEPER_HOME", &home)
        .env("CLAWKEEPER_RUNTIME_DIR", &runtime)
        .env("CLAWKEEPER_PORT", port.to_string())
        .env(
            "CLAWKEEPER_LOG",
            std::env::var("CLAWKEEPER_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("starting tauri-driver")?;
    let mut h = Harness {
        driver: Some(driver),
        app_exe: app_exe.clone(),
        home: home.clone(),
        log,
        _tmp: tmp,
    };

    let c = app_session(driver_port, &app_exe, &[]).await?;

    let result = drive(&c, &fake, &api_key, &home).await;
    if result.is_err() {
        let _ = screenshot(&c, "failure.png").await;
        // The test returns the error rather than panicking: show the log here.
        if let Ok(log) = std::fs::read_to_string(&h.log) {
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- app / driver log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }

    // Tear down: the app first (SIGTERM → it stops its gateway), then the session.
    let clean = h.stop_app();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
    if let Some(mut d) = h.driver.take() {
        kill(d.id(), "-TERM");
        let _ = tokio::task::spawn_blocking(move || {
            let _ = d.wait();
        })
        .await;
    }
    result?;
    assert!(
        clean,
        "the app did not exit with its gateway on SIGTERM (leftovers were killed)"
    );
    Ok(())
}

async fn drive(c: &Client, fake: &ContractFakeModel, api_key: &str, home: &Path) -> Result<()> {
    // ---------- setup window ----------
    wait_until("the setup window", Duration::from_secs(60), || async {
        Ok(c.title().await?.contains("Set up").then_some(()))
    })
    .await?;
    let first = wait_until("the first setup step", Duration::from_secs(30), || async {
        if displayed(c, "#step-place").await?.is_some() {
            return Ok(Some("place"));
        }
        Ok(displayed(c, "#step-provider").await?.map(|_| "provider"))
    })
    .await?;
    if first == "place" {
        screenshot(c, "setup-place.png").await?;
        c.find(Locator::Css("#place-next")).await?.click().await?;
        wait_displayed(c, "#step-provider", Duration::from_secs(10)).await?;
    }
    screenshot(c, "setup.png").await?;

    c.find(Locator::Css("label[for=provider-kind-custom]"))
        .await?
        .click()
        .await?;
    let base_url = wait_displayed(c, "#base-url", Duration::from_secs(10)).await?;
    base_url.send_keys(&fake.base_url()).await?;
    let model = c.find(Locator::Css("#model")).await?;
    model.clear().await?;
    model.send_keys("echo-1").await?;
    c.find(Locator::Css("#api-key"))
        .await?
        .send_keys(api_key)
        .await?;
    screenshot(c, "setup-key.png").await?;
    c.find(Locator::Css("#save-provider"))
        .await?
        .click()
        .await?;

    // ---------- progress ----------
    wait_until(
        "the progress view (or ready)",
        Duration::from_secs(30),
        || async {
            let err = text_of(
                c,
                "return document.getElementById('provider-error').innerText",
            )
            .await?;
            if !err.trim().is_empty() {
                bail!("saving the provider failed: {err}");
            }
            if displayed(c, "#progress").await?.is_some()
                || displayed(c, "#step-ready").await?.is_some()
            {
                return Ok(Some(()));
            }
            Ok(None)
        },
    )
    .await?;
    if displayed(c, "#progress").await?.is_some() {
        screenshot(c, "progress.png").await?;
    }

    // The key went to the keychain; it must not be anywhere in the page now.
    let source = c.source().await?;
    let dom = text_of(c, "return document.documentElement.outerHTML").await?;
    let values = text_of(
        c,
        "return [...document.querySelectorAll('input,textarea')].map(e => e.value).join('\\n')",
    )
    .await?;
    for (what, text) in [
        ("page source", &source),
        ("DOM", &dom),
        ("input values", &values),
    ] {
        assert!(
            !text.contains(api_key),
            "the API key is still in the setup window's {what} after saving"
        );
    }

    let started = Instant::now();
    wait_until("the ready view", READY_TIMEOUT, || async {
        let err = text_of(
            c,
            "return document.getElementById('progress-error').innerText",
        )
        .await?;
        if !err.trim().is_empty() {
            bail!("setup failed: {err}");
        }
        Ok(displayed(c, "#open-chat").await?.map(|_| ()))
    })
    .await?;
    eprintln!("ready after {:.1} s", started.elapsed().as_secs_f64());
    screenshot(c, "ready.png").await?;
    let status = text_of(c, "return document.getElementById('status-line').innerText").await?;
    assert!(status.contains("Working"), "status line says {status:?}");
    let setup = c.window().await?;

    // ---------- status window ----------
    let before = c.windows().await?;
    c.find(Locator::Css("#open-status")).await?.click().await?;
    switch_to_new_window(c, &before, "Status").await?;
    wait_until(
        "the status page to fill in",
        Duration::from_secs(30),
        || async {
            let t = text_of(c, "return document.getElementById('status-line').innerText").await?;
            let checks = text_of(c, "return document.getElementById('checks').innerText").await?;
            Ok((t.contains("Working") && !checks.trim().is_empty()).then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(c, "status.png").await?;
    let status_dom = text_of(c, "return document.documentElement.outerHTML").await?;
    assert!(
        !status_dom.contains(api_key),
        "the API key appears in the status window"
    );

    // ---------- chat window ----------
    c.switch_to_window(setup).await?;
    let before = c.windows().await?;
    c.find(Locator::Css("#open-chat")).await?.click().await?;
    switch_to_new_window(c, &before, "Chat").await?;
    let input = wait_displayed(c, "#chat-input", Duration::from_secs(30)).await?;
    // Ready = the page's first history load is done: it then focuses the message box
    // (chat.ts `init`). Typing earlier races that load, which replaces the log.
    wait_until(
        "the chat history to load",
        Duration::from_secs(30),
        || async {
            let ready = c
                .execute(
                    "return document.activeElement && document.activeElement.id === 'chat-input' \
                 && !document.getElementById('chat-send').disabled",
                    vec![],
                )
                .await?;
            Ok((ready == json!(true)).then_some(()))
        },
    )
    .await?;
    input.send_keys(MESSAGE).await?;
    c.find(Locator::Css("#chat-send")).await?.click().await?;
    let want = format!("{REPLY_PREFIX}{MESSAGE}");
    let sent = Instant::now();
    wait_reply(c, &want, REPLY_TIMEOUT).await?;
    eprintln!("reply after {:.1} s", sent.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(300)).await;
    screenshot(c, "chat.png").await?;

    let chats = fake.chat_requests();
    assert!(
        chats
            .iter()
            .any(|r| r.auth_ok && r.model.as_deref() == Some("echo-1")),
        "the fake model saw no authorised chat request for echo-1: {chats:?}"
    );
    crash_and_recover(c, home).await?;
    close_windows_keeps_tray(c, home).await
}

/// Lightweight tray mode: a closed window is destroyed and the tray daemon and the
/// assistant keep running. (The last window can't be closed through WebDriver: the driver
/// then ends the session and kills the window process, so the setup window stays open here.)
async fn close_windows_keeps_tray(c: &Client, home: &Path) -> Result<()> {
    let mut left = Vec::new();
    for handle in c.windows().await? {
        c.switch_to_window(handle.clone()).await?;
        if c.title().await?.contains("Set up") {
            left.push(handle);
        } else {
            c.close_window().await?;
        }
    }
    if let Some(setup) = left.first() {
        c.switch_to_window(setup.clone()).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.windows().await?, left, "closed windows are still there");
    let gateway = gateway_pid(home).context("no gateway pid file")?;
    assert!(
        alive(gateway),
        "the assistant stopped when its windows closed"
    );
    let daemon = daemon_pid(home).context("no daemon pid file")?;
    assert!(alive(daemon), "the tray daemon exited when windows closed");

    Ok(())
}

/// Kill the gateway behind the app's back: the app restarts it, the status line goes
/// "Needs attention" → "Working", and a desktop notification says so each way.
async fn crash_and_recover(c: &Client, home: &Path) -> Result<()> {
    let gateway = gateway_pid(home)
        .with_context(|| format!("no gateway pid file under {}", home.display()))?;
    let monitor_log = home.with_file_name("notifications.log");
    let monitor = Command::new("dbus-monitor")
        .args(["--session", "interface='org.freedesktop.Notifications'"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&monitor_log)?)
        .stderr(Stdio::null())
        .spawn()
        .ok();
    if monitor.is_none() {
        eprintln!("dbus-monitor not found: notifications are not checked");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status_line = "return document.getElementById('status-line').innerText";

    kill(gateway, "-KILL");
    wait_until(
        "the status to show the crash",
        Duration::from_secs(30),
        || async {
            let t = text_of(c, status_line).await?;
            Ok((t.contains("Needs attention") || t.contains("Starting")).then_some(()))
        },
    )
    .await?;
    let started = Instant::now();
    wait_until("the assistant to recover", READY_TIMEOUT, || async {
        let t = text_of(c, status_line).await?;
        Ok(t.contains("Working").then_some(()))
    })
    .await?;
    eprintln!("recovered after {:.1} s", started.elapsed().as_secs_f64());
    let new_gateway = gateway_pid(home);
    assert!(
        new_gateway.is_some_and(|p| p != gateway && alive(p)),
        "no new gateway after the crash (old {gateway}, now {new_gateway:?})"
    );

    if let Some(mut m) = monitor {
        let seen = wait_until("both notifications", Duration::from_secs(10), || async {
            let log = std::fs::read_to_string(&monitor_log).unwrap_or_default();
            Ok((log.contains("Your assistant needs attention")
                && log.contains("Your assistant is working again"))
            .then_some(()))
        })
        .await;
        let _ = m.kill();
        let _ = m.wait();
        seen.with_context(|| {
            format!(
                "notifications seen on the bus:\n{}",
                std::fs::read_to_string(&monitor_log).unwrap_or_default()
            )
        })?;
    }
    Ok(())
}
