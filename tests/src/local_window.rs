//! The desktop app on this computer for the Keys window tests (`e2e_keys*`): a data folder,
//! keychain namespace and gateway port of its own; `clawkeeper-cli` beside it (to set the
//! provider up first); tauri-driver started with the app's environment (plus what a test
//! adds: a contract fake's address, a PATH with a stand-in browser) and a session on
//! `clawkeeper-window`. Dropped: the tray daemon and the driver are stopped.

use crate::env;
use crate::webdriver::{
    app_session, displayed, js, kill, screenshot, stale, tauri_driver, wait_until,
};
use anyhow::{bail, Context, Result};
use fantoccini::Client;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a window test needs from the environment.
pub struct Needs {
    driver_bin: PathBuf,
    runtime: PathBuf,
    app_exe: PathBuf,
}

/// The needs of a window test, or `None` (said why) outside scripts/test.sh's environment
/// (keychain, display, runtime cache) or without tauri-driver. The app not built is an error.
pub fn window_needs() -> Result<Option<Needs>> {
    if !env::isolated() || std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        eprintln!("SKIPPED: needs scripts/test.sh (keychain, display)");
        return Ok(None);
    }
    let Some(driver_bin) = tauri_driver() else {
        eprintln!(
            "SKIPPED: tauri-driver not found (cargo install tauri-driver --version ^2 --locked)"
        );
        return Ok(None);
    };
    let Some(runtime) = env::test_runtime() else {
        eprintln!("SKIPPED: CLAWKEEPER_TEST_RUNTIME is not set (scripts/test.sh sets it)");
        return Ok(None);
    };
    let app_exe = env::bin("clawkeeper-window");
    if !app_exe.is_file() {
        bail!("build the app first: cargo build -p clawkeeper-window -p clawkeeper-tray-daemon");
    }
    Ok(Some(Needs {
        driver_bin,
        runtime,
        app_exe,
    }))
}

pub struct LocalWindow {
    pub home: PathBuf,
    pub namespace: String,
    pub port: u16,
    log: PathBuf,
    driver: Option<Child>,
}

impl LocalWindow {
    /// A fresh data folder under `dir`, the keychain namespace `clawkeeper-test-<name>-<pid>`
    /// and a free gateway port; nothing started yet.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        let home = dir.join("clawkeeper-home");
        std::fs::create_dir_all(&home)?;
        Ok(Self {
            home,
            namespace: format!("clawkeeper-test-{name}-{}", std::process::id()),
            port: env::free_port(),
            log: dir.join("app.log"),
            driver: None,
        })
    }

    /// `clawkeeper-cli args` for this app (secrets on `stdin`); must succeed; its stdout.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        crate::cli::local_ok(&self.home, &self.namespace, self.port, args, stdin)
    }

    /// Start tauri-driver with the app's environment and `env`, and open the app with
    /// `args` (`--open status#keys`: as the tray's "Rotate keys…" opens it).
    pub async fn open(
        &mut self,
        needs: &Needs,
        env: &[(&str, OsString)],
        args: &[&str],
    ) -> Result<Client> {
        let log_file = std::fs::File::create(&self.log)?;
        let (driver_port, native_port) = (env::free_port(), env::free_port());
        let mut cmd = Command::new(&needs.driver_bin);
        cmd.args([
            "--port",
            &driver_port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .env("CLAWKEEPER_HOME", &self.home)
        .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", &self.namespace)
        .env("CLAWKEEPER_RUNTIME_DIR", &needs.runtime)
        .env("CLAWKEEPER_PORT", self.port.to_string())
        .env("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"))
        .env("CLAWKEEPER_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
        self.driver = Some(cmd.spawn().context("starting tauri-driver")?);
        app_session(driver_port, &needs.app_exe, args).await
    }

    /// End the session. If the test failed: a screenshot (`docs/screenshots/<failure_shot>`)
    /// and the app's and driver's last log lines first.
    pub async fn close<T>(self, c: Client, result: Result<T>, failure_shot: &str) -> Result<T> {
        if result.is_err() {
            let _ = screenshot(&c, failure_shot).await;
            if let Ok(text) = std::fs::read_to_string(&self.log) {
                eprintln!("--- app / driver log (last lines) ---");
                let tail: Vec<&str> = text.lines().rev().take(80).collect();
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
        drop(self);
        result
    }
}

impl Drop for LocalWindow {
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
        if let Some(mut c) = self.driver.take() {
            kill(c.id(), "-TERM");
            std::thread::sleep(Duration::from_millis(300));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The text of the first element matching `css` ("" if none).
pub async fn text_of(c: &Client, css: &str) -> Result<String> {
    js(
        c,
        &format!("return document.querySelector(\"{css}\")?.innerText ?? ''"),
    )
    .await
}

/// Open the Keys section's "Change…" form of `key` (e.g. `provider-key`) and give its text.
/// The button toggles the form, and the list re-renders when the app tells it something: a
/// click that landed on a node replaced just after (reported as gone, though the page took
/// it) must not be repeated blindly, or it closes the form again. So the button is pressed
/// only while it says the form is closed, until the form is there.
pub async fn open_change_form(c: &Client, key: &str) -> Result<String> {
    let button = format!("document.getElementById('key-change-{key}')");
    wait_until(
        &format!("the Change… form of {key}"),
        Duration::from_secs(30),
        || async {
            let form = text_of(c, "[data-testid=key-change-form]").await?;
            if !form.trim().is_empty() {
                return Ok(Some(form));
            }
            let closed = js(
                c,
                &format!("const b = {button}; return b && !b.disabled && b.getAttribute('aria-expanded') !== 'true' ? 'closed' : ''"),
            )
            .await?;
            if closed == "closed" {
                if let Some(b) = displayed(c, &format!("#key-change-{key}")).await? {
                    match b.click().await {
                        Ok(()) => {}
                        Err(e) if stale(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(None)
        },
    )
    .await
}

/// The status window opened at the Keys section (`--open status#keys`): the section is in
/// view, and the assistant (its provider set up before) has started on its own.
pub async fn keys_in_view_and_working(c: &Client) -> Result<()> {
    wait_until("the status window", Duration::from_secs(60), || async {
        Ok(c.title().await?.contains("Status").then_some(()))
    })
    .await?;

    eprintln!("=== opened at the Keys section: it is in view");
    wait_until(
        "the Keys section in view",
        Duration::from_secs(30),
        || async {
            let top = js(
                c,
                "const r = document.getElementById('keys').getBoundingClientRect(); \
             return String(r.top >= -1 && r.top < window.innerHeight / 2)",
            )
            .await?;
            Ok((top == "true").then_some(()))
        },
    )
    .await?;

    eprintln!("=== the assistant starts on its own (provider configured)");
    wait_until("Working", Duration::from_secs(180), || async {
        let t = js(c, "return document.getElementById('status-line').innerText").await?;
        Ok(t.contains("Working").then_some(()))
    })
    .await?;
    Ok(())
}
