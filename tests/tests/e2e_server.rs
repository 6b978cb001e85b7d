//! The status window's "Your server" section, end to end with real parts: a real test host
//! (systemd-nspawn, tests/src/testhost.rs) connected and provisioned through the real CLI
//! binary (fast state set-up, as in deploy_cli.rs), then the real desktop app (tauri-driver
//! → `clawkeeper-window` → the tray daemon) on the same data dir:
//!
//! - "Check again" reads the host's real checklist; stopping the assistant's service on the
//!   host and checking again shows that check failed (and a desktop notification says what
//!   failed and what to do); starting it again and checking again shows it passing.
//! - "Give a helper access" shows the private key once (copyable box), lists the grant as
//!   active, and the key is really in the host's authorized_keys; hiding it takes it out of
//!   the page; Revoke removes it from the host and lists it as revoked. The private key is in
//!   no file of the app's data dir.
//!
//! Screenshots: docs/screenshots/server-checklist.png, support-key.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{bail, Context, Result};
use clawkeeper_core::ssh::keys;
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_model::{
    ContractFakeModel, TokenPrice, DEFAULT_MODEL_IDS, REPLY_PREFIX,
};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use clawkeeper_tests::webdriver::{
    app_session, click, displayed, js, kill, screenshot, switch_to_new_window, tauri_driver,
    wait_reply, wait_until,
};
use fantoccini::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ID: &str = "server";

/// The tray daemon, the window process and tauri-driver go when the test ends, passing or not.
struct Procs {
    driver: Option<Child>,
    home: PathBuf,
    monitor: Option<Child>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.home.join("clawkeeper.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            kill(pid, "-TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
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

/// The checklist as the page shows it: (check id, status) per item.
async fn page_checks(c: &Client) -> Result<Vec<(String, String)>> {
    let v = c
        .execute(
            "return [...document.querySelectorAll('#server-checks li.check')].map(li => [li.dataset.checkId, li.dataset.status])",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(v)?)
}

async fn checked_at(c: &Client) -> Result<String> {
    js(
        c,
        "const e = document.getElementById('server-checks'); return e ? e.dataset.checkedAt : ''",
    )
    .await
}

/// Press "Check again" and wait for a newer checklist than the one shown.
async fn check_again(c: &Client) -> Result<Vec<(String, String)>> {
    let before = checked_at(c).await?;
    click(c, "#server-recheck").await?;
    wait_until("a new checklist", Duration::from_secs(90), || async {
        let err = js(
            c,
            "return [...document.querySelectorAll('#server-section .error-panel')].map(e => e.innerText).join('\\n')",
        )
        .await?;
        if !err.trim().is_empty() {
            bail!("the server section shows an error: {err}");
        }
        let now = checked_at(c).await?;
        Ok((!now.is_empty() && now != before).then_some(()))
    })
    .await?;
    page_checks(c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_server_checklist_and_support_keys() -> Result<()> {
    if !env::isolated() || std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!("SKIPPED: needs scripts/test.sh (test hosts, npm mirror, keychain, display)");
        return Ok(());
    }
    let Some(driver_bin) = tauri_driver() else {
        eprintln!(
            "SKIPPED: tauri-driver not found (cargo install tauri-driver --version ^2 --locked)"
        );
        return Ok(());
    };
    let app_exe = env::bin("clawkeeper-window");
    if !app_exe.is_file() {
        bail!("build the app first: cargo build -p clawkeeper-window -p clawkeeper-tray-daemon");
    }
    let started = Instant::now();

    // ---------- a real host, connected and set up through the CLI ----------
    let person = keys::generate_ed25519("person@laptop")?;
    let host = TestHost::boot(HostOptions::with_key(keys::public_line(
        person.public_key(),
    )?))
    .await?;
    let gw_ip = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await?;
    let provider_key = "sk-e2e-server-provider-key-5d1e";
    // Priced, so that the server's count has dollars to match, not only tokens.
    let model = ContractFakeModel::start_priced(
        (gw_ip, 0).into(),
        provider_key.into(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
        Some(TokenPrice {
            input: 0.000_002,
            output: 0.000_010,
        }),
    )
    .await?;
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("clawkeeper-home");
    let registry = mirror.url();
    let cli = Cli {
        home: home.clone(),
        registry: registry.clone(),
    };
    let key_file = tmp.path().join("id_person");
    std::fs::write(&key_file, keys::to_openssh(&person)?.expose())?;
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256()?;
    cli.ok(
        &[
            "connect",
            "--host",
            &addr,
            "--id",
            ID,
            "--key-file",
            key_file.to_str().unwrap(),
            "--fingerprint",
            &fp,
        ],
        None,
    )?;
    cli.ok(
        &[
            "provider",
            "--kind",
            "openai-compatible",
            "--base-url",
            &model.base_url(),
            "--model",
            DEFAULT_MODEL_IDS[0],
        ],
        Some(provider_key),
    )?;
    cli.ok(&["provision", "--id", ID], None)?;
    eprintln!(
        "host connected and set up after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // ---------- the app on the same data dir, status window ----------
    let monitor_log = tmp.path().join("notifications.log");
    let monitor = Command::new("dbus-monitor")
        .args(["--session", "interface='org.freedesktop.Notifications'"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&monitor_log)?)
        .stderr(Stdio::null())
        .spawn()
        .ok();
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
        .env("CLAWKEEPER_NPM_REGISTRY", &registry)
        .env("CLAWKEEPER_PORT", env::free_port().to_string())
        .env("CLAWKEEPER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    if let Some(rt) = env::test_runtime() {
        driver_cmd.env("CLAWKEEPER_RUNTIME_DIR", rt);
    }
    let procs = Procs {
        driver: Some(driver_cmd.spawn().context("starting tauri-driver")?),
        home: home.clone(),
        monitor,
    };
    let c = app_session(driver_port, &app_exe, &["--open", "status"]).await?;

    let result = drive(&c, &host, &home, &monitor_log, &model).await;
    if result.is_err() {
        let _ = screenshot(&c, "failure-server.png").await;
        if let Ok(text) = std::fs::read_to_string(&log) {
            eprintln!("--- app / driver log (last lines) ---");
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
    let t = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
    drop(procs);
    host.stop().await;
    eprintln!("teardown in {:.0} s", t.elapsed().as_secs_f64());
    eprintln!("done after {:.0} s", started.elapsed().as_secs_f64());
    result
}

async fn drive(
    c: &Client,
    host: &TestHost,
    home: &Path,
    monitor_log: &Path,
    model: &ContractFakeModel,
) -> Result<()> {
    // The status window: find it among the windows the app opened.
    wait_until("the status window", Duration::from_secs(60), || async {
        for w in c.windows().await? {
            c.switch_to_window(w).await?;
            if c.title().await?.contains("Status") {
                return Ok(Some(()));
            }
        }
        Ok(None)
    })
    .await?;
    wait_until("the server section", Duration::from_secs(30), || {
        displayed(c, "#server-recheck")
    })
    .await?;
    let state = js(
        c,
        "return document.querySelector('[data-testid=server-state]').innerText",
    )
    .await?;
    // Set up through the CLI: the app hasn't read the checklist itself yet.
    assert_eq!(state, "Not checked yet");

    // ---------- the real checklist ----------
    let checks = check_again(c).await?;
    assert!(checks.len() >= 6, "too few checks: {checks:?}");
    let failed: Vec<_> = checks.iter().filter(|(_, s)| s != "pass").collect();
    assert!(failed.is_empty(), "checks not passing: {failed:?}");
    let ids: Vec<&str> = checks.iter().map(|(id, _)| id.as_str()).collect();
    for want in [
        "gateway_loopback",
        "gateway_running",
        "ssh_keys_only",
        "firewall",
    ] {
        assert!(ids.contains(&want), "no {want} check in {ids:?}");
    }
    let state = js(
        c,
        "return document.querySelector('[data-testid=server-state]').innerText",
    )
    .await?;
    assert_eq!(state, "Safe");
    c.execute(
        "document.getElementById('server-section').scrollIntoView()",
        vec![],
    )
    .await?;
    screenshot(c, "server-checklist.png").await?;
    let t = Instant::now();

    // Check again really re-reads the host: stop the assistant there, and it shows.
    host.inspect_ok("systemctl stop clawkeeper-gateway.service")
        .await?;
    let checks = check_again(c).await?;
    assert!(
        checks
            .iter()
            .any(|(id, s)| id == "gateway_running" && s == "fail"),
        "stopping the service didn't show: {checks:?}"
    );
    let state = js(
        c,
        "return document.querySelector('[data-testid=server-state]').innerText",
    )
    .await?;
    assert_eq!(state, "Needs attention");
    if std::fs::metadata(monitor_log).is_ok() {
        wait_until("the notification", Duration::from_secs(15), || async {
            let log = std::fs::read_to_string(monitor_log).unwrap_or_default();
            Ok((log.contains("My server needs attention")
                && log.contains("Let OpenClaw fix what it can"))
            .then_some(()))
        })
        .await
        .with_context(|| {
            format!(
                "notifications on the bus:\n{}",
                std::fs::read_to_string(monitor_log).unwrap_or_default()
            )
        })?;
    }
    host.inspect_ok("systemctl start clawkeeper-gateway.service")
        .await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let checks = check_again(c).await?;
        if checks.iter().all(|(_, s)| s == "pass") {
            break;
        }
        if Instant::now() > deadline {
            bail!("the checks did not pass again after starting the service: {checks:?}");
        }
    }

    eprintln!(
        "check again: fail and recover in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    // ---------- support access ----------
    let t = Instant::now();
    click(c, "#support summary").await?;
    let note = wait_until("the note field", Duration::from_secs(10), || {
        displayed(c, "#support-note")
    })
    .await?;
    note.send_keys("Alex from the repair shop").await?;
    click(c, "#support-issue").await?;
    let key = wait_until("the support key", Duration::from_secs(60), || async {
        let err = js(
            c,
            "return [...document.querySelectorAll('#support .error-panel')].map(e => e.innerText).join('\\n')",
        )
        .await?;
        if !err.trim().is_empty() {
            bail!("issuing failed: {err}");
        }
        let v = js(
            c,
            "const e = document.getElementById('support-key'); return e ? e.value : ''",
        )
        .await?;
        Ok(v.contains("BEGIN OPENSSH PRIVATE KEY").then_some(v))
    })
    .await?;
    let grant = wait_until("the grant in the list", Duration::from_secs(30), || async {
        let v = c
            .execute(
                "return [...document.querySelectorAll('#support-list li.grant')].map(li => [li.dataset.grant, li.dataset.state, li.innerText])",
                vec![],
            )
            .await?;
        let rows: Vec<(String, String, String)> = serde_json::from_value(v)?;
        Ok(rows
            .into_iter()
            .find(|(_, st, text)| st == "active" && text.contains("Alex from the repair shop")))
    })
    .await?;
    let grant_id = grant.0;
    // The screenshot goes into the repository: show the box, not a private key.
    js(
        c,
        "const e = document.getElementById('support-key'); e.dataset.real = e.value; e.value = '-----BEGIN OPENSSH PRIVATE KEY-----\\n(blanked in this screenshot)\\n-----END OPENSSH PRIVATE KEY-----'; return ''",
    )
    .await?;
    screenshot(c, "support-key.png").await?;
    js(
        c,
        "const e = document.getElementById('support-key'); e.value = e.dataset.real; delete e.dataset.real; return ''",
    )
    .await?;
    let ak = host.inspect_ok("cat /root/.ssh/authorized_keys").await?;
    assert!(
        ak.contains(&format!("clawkeeper-support-{grant_id}")),
        "the support key is not on the server: {ak}"
    );
    // Shown once: kept nowhere by the app.
    let key_body: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    // A piece from the middle: the start of every OpenSSH key looks the same.
    let piece = &key_body[key_body.len() / 2..key_body.len() / 2 + 40];
    let hits = clawkeeper_tests::scan::files_containing(home, &[piece]);
    assert!(hits.is_empty(), "the helper's key is in files: {hits:?}");
    click(c, "#support-key-hide").await?;
    let dom = js(c, "return document.documentElement.outerHTML").await?;
    assert!(!dom.contains(piece), "the key is still in the page");

    click(c, &format!("button[data-grant='{grant_id}']")).await?;
    wait_until("the grant to show revoked", Duration::from_secs(60), || async {
        let st = js(
            c,
            &format!(
                "const li = document.querySelector(\"#support-list li[data-grant='{grant_id}']\"); return li ? li.dataset.state : ''"
            ),
        )
        .await?;
        Ok((st == "revoked").then_some(()))
    })
    .await?;
    eprintln!(
        "support issue + revoke in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let ak = host.inspect_ok("cat /root/.ssh/authorized_keys").await?;
    assert!(
        !ak.contains(&format!("clawkeeper-support-{grant_id}")),
        "the revoked key is still on the server"
    );
    chat_through_the_tunnel(c, host, home, model).await
}

/// Chat goes to the server's assistant once the person says so: the chat window says where
/// its messages go, and the reply comes from the gateway on the server (through the SSH
/// tunnel; this computer's assistant is not even installed in this test). Then back.
async fn chat_through_the_tunnel(
    c: &Client,
    host: &TestHost,
    home: &Path,
    model: &ContractFakeModel,
) -> Result<()> {
    const MESSAGE: &str = "hello from the window, via the tunnel";
    let t = Instant::now();
    // The server section re-renders on every event: click through the page, not a handle
    // that may be stale by the time it is clicked.
    wait_until(
        "the button to chat with the server",
        Duration::from_secs(30),
        || displayed(c, "#server-chat-use"),
    )
    .await?;
    js(
        c,
        "document.getElementById('server-chat-use').click(); return ''",
    )
    .await
    .context("choosing the server for chat")?;
    wait_until("chat to go to the server", Duration::from_secs(30), || {
        displayed(c, "#server-chat-place")
    })
    .await?;
    wait_until(
        "the page to say where chat goes",
        Duration::from_secs(30),
        || async {
            let hero = js(c, "return document.getElementById('hero-text').innerText").await?;
            Ok(hero
                .contains("Chat goes to your server (My server)")
                .then_some(()))
        },
    )
    .await?;
    let status = c.window().await?;
    let before = c.windows().await?;
    // The page is scrolled down to the server; the sticky header covers the hero's button
    // for a pointer click, so press it through the page.
    js(
        c,
        "document.getElementById('primary-action').click(); return ''",
    )
    .await
    .context("Open chat")?;
    switch_to_new_window(c, &before, "Chat").await?;
    wait_until("the chat to be ready", Duration::from_secs(60), || async {
        let ready = js(
            c,
            "return String(!!document.activeElement && document.activeElement.id === 'chat-input' \
             && !document.getElementById('chat-send').disabled)",
        )
        .await?;
        Ok((ready == "true").then_some(()))
    })
    .await?;
    let line = js(c, "return document.getElementById('status-line').innerText").await?;
    assert!(line.contains("On your server"), "status line: {line}");
    assert!(line.contains("private SSH tunnel"), "status line: {line}");
    c.find(fantoccini::Locator::Css("#chat-input"))
        .await?
        .send_keys(MESSAGE)
        .await
        .context("typing the message")?;
    click(c, "#chat-send").await.context("Send")?;
    let want = format!("{REPLY_PREFIX}{MESSAGE}");
    wait_reply(c, &want, Duration::from_secs(120)).await?;
    screenshot(c, "chat-server.png").await?;
    // The conversation is on the server (this computer's assistant is running as well in
    // this test, with the same model: it must not have been the one that answered).
    let on_server = host
        .inspect_ok(&format!(
            "grep -rlaF '{MESSAGE}' /var/lib/openclaw/ || true"
        ))
        .await?;
    assert!(
        !on_server.trim().is_empty(),
        "the message is not in the server's assistant"
    );
    let here = clawkeeper_tests::scan::files_containing(home, &[MESSAGE]);
    assert!(
        here.is_empty(),
        "this computer's assistant answered: {here:?}"
    );
    eprintln!(
        "chat through the tunnel: reply after {:.0} s",
        t.elapsed().as_secs_f64()
    );

    // "At a glance" and the usage sync go the same way: through the tunnel, to the server.
    c.switch_to_window(status).await?;
    let invoke = |cmd: &str| {
        format!(
            "return window.__TAURI_INTERNALS__.invoke('{cmd}', {{ days: 7 }}).then(v => JSON.stringify(v), e => 'ERR ' + JSON.stringify(e))"
        )
    };
    // The sync goes through the tunnel and counts exactly what the model reported for the
    // server's calls. (The model is not on a host OpenClaw deems local: it asks for usage in
    // the stream only because Clawkeeper's config tells it to.)
    let text = js(c, &invoke("usage_sync")).await?;
    let usage: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("usage_sync over the tunnel: {text}"))?;
    assert!(
        usage["summary"]["syncedAt"].is_string() && usage["summary"].get("error").is_none(),
        "usage over the tunnel: {usage}"
    );
    let (tokens, dollars) = model.reported_usage();
    assert!(
        tokens > 0 && model.chat_requests().iter().all(|r| r.include_usage),
        "the server's assistant asked the model for usage: {:?}",
        model.chat_requests()
    );
    let counted = &usage["rangeTotals"];
    assert_eq!(
        counted["tokens"]["total"].as_u64(),
        Some(tokens),
        "the server's use, counted: {usage}"
    );
    assert!(
        (counted["cost"].as_f64().unwrap_or(-1.0) - dollars).abs() < 1e-9,
        "the server's spend ${dollars}, counted: {usage}"
    );
    let glance = js(c, &invoke("status_detail")).await?;
    let glance: serde_json::Value = serde_json::from_str(&glance)
        .with_context(|| format!("status_detail over the tunnel: {glance}"))?;
    assert_eq!(glance["assistant"]["path"], "ssh", "{glance}");
    assert_eq!(glance["version"], "2026.9.6", "{glance}");
    assert!(
        glance["host"]["memoryTotal"].as_u64().unwrap_or(0) > 0
            && glance["host"]["diskTotal"].as_u64().unwrap_or(0) > 0
            && glance["sessions"].as_u64().unwrap_or(0) >= 1,
        "the server's memory, disk and conversations: {glance}"
    );
    eprintln!("usage and at-a-glance over the tunnel: {glance}");

    // And back to this computer: the chat says so (its assistant isn't set up here).
    js(
        c,
        "document.getElementById('secondary-action').click(); return ''",
    )
    .await
    .context("Chat on this computer instead")?;
    wait_until(
        "chat to go to this computer",
        Duration::from_secs(30),
        || displayed(c, "#server-chat-use"),
    )
    .await?;
    Ok(())
}
