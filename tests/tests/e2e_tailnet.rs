//! The status window's "Private network (Tailscale)" section, end to end: the real desktop
//! app (tauri-driver → `clawkeeper-window` → the tray daemon), the real keychain and SQLite,
//! against `ContractFakeTailscale` (the Tailscale API's contract fake, on loopback; the app
//! is pointed at it with `CLAWKEEPER_TAILSCALE_API`, as tailscale_api.rs points the client).
//!
//! The server is set up in the store before the app starts (a pinned host that is not
//! contacted, and its tailnet hostname, as the server-side join step records it), and its
//! device is on the fake tailnet. The person pastes an API access token: the policy check
//! fails and the exact tagOwners snippet is shown with where to paste it; the fake's policy
//! is fixed and "Check again" passes; the device line shows its 100.x address. The token is
//! in the keychain and nowhere in the page.
//!
//! Screenshot: docs/screenshots/server-tailnet.png.
//!
//! And the tray daemon's notifications (watched with `dbus-monitor`, as e2e_server.rs does)
//! when the server chat goes to has a tailnet node key that expires within 14 days, and
//! when it drops off the tailnet (the daemon told to look every second).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{bail, Context, Result};
use clawkeeper_core::paths::Paths;
use clawkeeper_core::ssh::{hosts, keys, HostKey, Target};
use clawkeeper_core::store::{DesiredState, InstanceRecord, Store};
use clawkeeper_core::tailnet::api::TAG_OWNERS_SNIPPET;
use clawkeeper_core::tailnet::{credentials_ref, server as tserver, TAG};
use clawkeeper_core::vault::Vault;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_tailscale::{
    policy_with_tag, policy_without_tag, ContractFakeTailscale, FakeTailscaleConfig,
};
use clawkeeper_tests::webdriver::{
    app_session, click, displayed, js, kill, screenshot, tauri_driver, wait_until,
};
use fantoccini::{Client, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ID: &str = "server";
const HOSTNAME: &str = "clawkeeper-server";
const ADDR: &str = "100.64.0.7";

/// The tray daemon and tauri-driver go when the test ends, passing or not.
struct Procs {
    driver: Option<Child>,
    home: PathBuf,
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
        if let Some(mut c) = self.driver.take() {
            kill(c.id(), "-TERM");
            std::thread::sleep(Duration::from_millis(300));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The store as the server-side steps leave it: a connected server that joined the
/// tailnet as `HOSTNAME`.
async fn seed_store(home: &Path, chat_goes_there: bool) -> Result<()> {
    let (store, _) = Store::open(&Paths::under(home).db()).await?;
    store
        .upsert_instance(&InstanceRecord {
            id: ID.into(),
            name: "My server".into(),
            target: "ssh".into(),
            port: 18789,
            desired_state: DesiredState::Running,
            openclaw_version: String::new(),
            created_at: String::new(),
        })
        .await?;
    // A host key to pin (the host itself is never contacted here: port 9 refuses).
    let host_key = keys::generate_ed25519("host")?;
    let host = HostKey::from_openssh(&keys::public_line(host_key.public_key())?)?;
    hosts::pin(&store, ID, &Target::new("127.0.0.1", 9, "root"), &host).await?;
    tserver::remember(&store, ID, HOSTNAME).await?;
    if chat_goes_there {
        store.set_setting("assistant.server", ID).await?;
    }
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tailnet_key_policy_check_and_device() -> Result<()> {
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
    let app_exe = env::bin("clawkeeper-window");
    if !app_exe.is_file() {
        bail!("build the app first: cargo build -p clawkeeper-window -p clawkeeper-tray-daemon");
    }
    let namespace = format!("clawkeeper-test-e2e-tailnet-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);

    let fake = ContractFakeTailscale::start(FakeTailscaleConfig {
        policy: policy_without_tag(),
        ..FakeTailscaleConfig::default()
    })
    .await?;
    fake.add_device(HOSTNAME, &[ADDR, "fd7a:115c:a1e0::7"], &[TAG], None, None);
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("clawkeeper-home");
    std::fs::create_dir_all(&home)?;
    seed_store(&home, false).await?;

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
        .env("CLAWKEEPER_TAILSCALE_API", fake.base_url())
        // Never the machine's own Tailscale, if it has one.
        .env(
            "CLAWKEEPER_TAILSCALE_SOCKET",
            "/nonexistent/tailscaled.sock",
        )
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
    };
    let c = app_session(driver_port, &app_exe, &["--open", "status"]).await?;

    let result = drive(&c, &fake).await;
    if result.is_err() {
        let _ = screenshot(&c, "failure-tailnet.png").await;
        if let Ok(text) = std::fs::read_to_string(&log) {
            eprintln!("--- app / driver log (last lines) ---");
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
    drop(procs);
    result?;

    // The token is in the keychain, exactly as pasted.
    let vault = Vault::new(&namespace);
    let stored = vault.read(&credentials_ref()).await?;
    assert_eq!(stored.expose(), fake.api_token());
    let _ = vault.delete(&credentials_ref()).await;
    Ok(())
}

async fn drive(c: &Client, fake: &ContractFakeTailscale) -> Result<()> {
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
    // Unfold "Private network (Tailscale)".
    click(c, "#tailnet > summary").await?;
    let secret = wait_until("the key field", Duration::from_secs(30), || {
        displayed(c, "#tailnet-secret")
    })
    .await?;
    let token = fake.api_token();
    secret.send_keys(&token).await?;
    click(c, "#tailnet-save").await?;

    // The policy lacks the tag: the exact snippet, where to paste it, Check again.
    wait_until("the missing-tag panel", Duration::from_secs(30), || async {
        let err = js(
            c,
            "return [...document.querySelectorAll('#tailnet .error-panel')].map(e => e.innerText).join('\\n')",
        )
        .await?;
        if !err.trim().is_empty() {
            bail!("the tailnet section shows an error: {err}");
        }
        displayed(c, "#tailnet-tag-missing").await
    })
    .await?;
    let snippet = js(c, "return document.getElementById('tailnet-snippet').value").await?;
    assert_eq!(snippet, TAG_OWNERS_SNIPPET);
    let panel = c
        .find(Locator::Css("#tailnet-tag-missing"))
        .await?
        .text()
        .await?;
    assert!(panel.contains("Access controls"), "{panel}");
    assert!(displayed(c, "#tailnet-check").await?.is_some());
    let saved = c
        .find(Locator::Css("#tailnet-key-saved"))
        .await?
        .text()
        .await?;
    assert!(saved.contains("saved in your keychain"), "{saved}");

    // The device as Tailscale lists it.
    let device = c
        .find(Locator::Css("#tailnet-device"))
        .await?
        .text()
        .await?;
    assert!(device.contains(ADDR), "{device}");
    assert!(device.contains(HOSTNAME), "{device}");
    assert!(device.contains("key never expires"), "{device}");

    // The token is nowhere in the page: not in the markup, not in any field.
    let leaked = js(
        c,
        &format!(
            "const t = {token:?}; return String(document.documentElement.outerHTML.includes(t) || [...document.querySelectorAll('input, textarea')].some(e => e.value.includes(t)))"
        ),
    )
    .await?;
    assert_eq!(leaked, "false", "the token is still in the page");
    assert!(displayed(c, "#tailnet-secret").await?.is_none());
    c.execute(
        "document.getElementById('tailnet').scrollIntoView({ block: 'center' })",
        vec![],
    )
    .await?;
    screenshot(c, "server-tailnet.png").await?;

    // Fixed in the admin console (here: the fake's policy): Check again passes.
    fake.set_policy(policy_with_tag());
    click(c, "#tailnet-check").await?;
    wait_until("the passed tag check", Duration::from_secs(30), || {
        displayed(c, "#tailnet-tag-ok")
    })
    .await?;
    assert!(displayed(c, "#tailnet-tag-missing").await?.is_none());
    Ok(())
}

/// The tray daemon alone (no window: the setup window it opens is `/bin/true`) on a data
/// dir where chat goes to the server, with the Tailscale key in the keychain, and
/// `dbus-monitor` watching notifications. Stopped on drop.
struct Daemon {
    child: Child,
    monitor: Child,
    monitor_log: PathBuf,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    async fn start(fake: &ContractFakeTailscale, every_secs: Option<u64>) -> Result<Self> {
        let daemon = env::bin("clawkeeper");
        if !daemon.is_file() {
            bail!(
                "build the app first: cargo build -p clawkeeper-window -p clawkeeper-tray-daemon"
            );
        }
        let namespace = format!("clawkeeper-test-e2e-tndaemon-{}", std::process::id());
        let tmp = tempfile::tempdir()?;
        let home = tmp.path().join("clawkeeper-home");
        std::fs::create_dir_all(&home)?;
        seed_store(&home, true).await?;
        let vault = Vault::new(&namespace);
        vault
            .store(
                &credentials_ref(),
                &clawkeeper_core::Secret::new(fake.api_token()),
            )
            .await?;
        let monitor_log = tmp.path().join("notifications.log");
        let monitor = Command::new("dbus-monitor")
            .args(["--session", "interface='org.freedesktop.Notifications'"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&monitor_log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting dbus-monitor")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = tmp.path().join("daemon.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&daemon);
        // Only the daemon is under test: the setup window it opens (no provider yet) is
        // `true`, which exits at once, so no window process outlives the test.
        cmd.env("CLAWKEEPER_WINDOW_BIN", "/bin/true")
            .env("CLAWKEEPER_HOME", &home)
            .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace)
            .env("CLAWKEEPER_TAILSCALE_API", fake.base_url())
            // Never the machine's own Tailscale, if it has one.
            .env(
                "CLAWKEEPER_TAILSCALE_SOCKET",
                "/nonexistent/tailscaled.sock",
            )
            .env("CLAWKEEPER_PORT", env::free_port().to_string())
            .env("CLAWKEEPER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        if let Some(s) = every_secs {
            cmd.env("CLAWKEEPER_TAILNET_EVERY_SECS", s.to_string());
        }
        let child = cmd.spawn().context("starting the tray daemon")?;
        Ok(Self {
            child,
            monitor,
            monitor_log,
            log,
            _tmp: tmp,
        })
    }

    fn notifications(&self) -> String {
        std::fs::read_to_string(&self.monitor_log).unwrap_or_default()
    }

    /// Wait for a notification containing `text`; on failure print the daemon's log.
    async fn wait_for(&self, text: &str) -> Result<String> {
        let seen = wait_until(
            &format!("a notification saying {text:?}"),
            Duration::from_secs(60),
            || async {
                Ok(self
                    .notifications()
                    .contains(text)
                    .then(|| self.notifications()))
            },
        )
        .await;
        if seen.is_err() {
            eprintln!("{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
        seen
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Our own child: TERM, then reap it (it quits cleanly within seconds).
        kill(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill(self.monitor.id(), "-TERM");
        let _ = self.monitor.wait();
        // (The key stays in this run's throwaway keyring, under a namespace of its own.)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tailnet_key_expiry_is_notified() -> Result<()> {
    if !env::isolated() || std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!("SKIPPED: needs scripts/test.sh (keychain, session bus, display)");
        return Ok(());
    }
    let fake = ContractFakeTailscale::start(FakeTailscaleConfig::default()).await?;
    // An untagged device: its key expires (here in 5 days), unlike a tagged server's.
    let expires =
        time::OffsetDateTime::now_utc() + time::Duration::days(5) - time::Duration::hours(1);
    let expires = expires.format(&time::format_description::well_known::Rfc3339)?;
    fake.add_device(HOSTNAME, &[ADDR], &[], None, Some(&expires));
    let daemon = Daemon::start(&fake, None).await?;
    let text = daemon.wait_for("tailnet key expires soon").await?;
    assert!(text.contains(HOSTNAME), "{text}");
    assert!(text.contains("in 5 days"), "{text}");
    assert!(text.contains("Disable key expiry"), "{text}");
    // Once: the daemon looks again only after minutes, and then at most once a day.
    assert_eq!(
        text.matches("tailnet key expires soon").count(),
        1,
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tailnet_server_leaving_is_notified() -> Result<()> {
    if !env::isolated() || std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!("SKIPPED: needs scripts/test.sh (keychain, session bus, display)");
        return Ok(());
    }
    let fake = ContractFakeTailscale::start(FakeTailscaleConfig::default()).await?;
    // Tagged, connected now, key never expires.
    let node_id = fake.add_device(HOSTNAME, &[ADDR], &[TAG], None, None);
    // The daemon looks every second (instead of every 5 minutes).
    let daemon = Daemon::start(&fake, Some(1)).await?;
    // It has seen the server online: the device was asked for at least twice.
    wait_until(
        "two looks at the devices",
        Duration::from_secs(30),
        || async { Ok((fake.count("GET", "/tailnet/-/devices") >= 2).then_some(())) },
    )
    .await?;
    assert!(!daemon.notifications().contains("left your tailnet"));

    // The server drops off the tailnet (here: removed from it).
    let api = clawkeeper_core::tailnet::TailscaleClient::with_base_url(
        fake.base_url(),
        clawkeeper_core::tailnet::Credentials::from_pasted(clawkeeper_core::Secret::new(
            fake.api_token(),
        ))?,
        clawkeeper_core::tailnet::api::RetryPolicy::fast(),
    )?;
    api.delete_device(&node_id).await?;
    let text = daemon.wait_for("Your server left your tailnet").await?;
    assert!(text.contains("private SSH connection meanwhile"), "{text}");
    // Told once, not at every look.
    let looks = fake.count("GET", "/tailnet/-/devices");
    wait_until("two more looks", Duration::from_secs(30), || async {
        Ok((fake.count("GET", "/tailnet/-/devices") >= looks + 2).then_some(()))
    })
    .await?;
    assert_eq!(
        daemon
            .notifications()
            .matches("Your server left your tailnet")
            .count(),
        1
    );
    Ok(())
}
