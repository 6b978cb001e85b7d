//! Adding a server through the desktop app's forms, end to end with real parts: the real
//! app (tauri-driver → `clawkeeper-window` → the tray daemon) on a fresh data dir, clicked
//! the way a person would, against two real test hosts (systemd-nspawn,
//! tests/src/testhost.rs) and the Hetzner contract fake (tests/src/fake_hetzner.rs), whose
//! "create server" hands back the first host's address.
//!
//! - First run: the setup window offers "A new server" (no "Coming soon" any more); after
//!   the model key (the contract fake model on the host's side of its veth) it opens the
//!   status window at the Hetzner form by itself.
//! - Hetzner: the API token is pasted once (then gone from the page), sizes and today's
//!   prices come from the fake, "Create the server" shows the named steps with N of M.
//!   Cancel while the server is created at Hetzner pauses there and Continue carries on
//!   (nothing made twice); Cancel during "Installing OpenClaw" says it stops after the
//!   step, the job pauses and offers Continue, Continue finishes, and the checklist read
//!   from the host all passes.
//! - Delete: the question lists what goes, "Delete for good" lists what went (server,
//!   firewall, key at Hetzner), the fake's ledger has nothing left, and the section offers
//!   adding a server again.
//! - A server the person has: address → "Check the server" shows the host's real
//!   fingerprint; a wrong one-time password is refused in plain words with nothing saved;
//!   the person's key file (picked in the file input) connects it, setting up starts, and
//!   Cancel pauses it after the first step; "Remove this server…" takes Clawkeeper's key
//!   off the host again.
//! - The setup window's "Open the server form", with the status window open, takes it to
//!   the Hetzner form again.
//!
//! Screenshots: docs/screenshots/setup-server.png, server-cloud-prices.png,
//! server-deploy-progress.png, server-deploy-paused.png, server-deleted.png,
//! server-connect-fingerprint.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{bail, Context, Result};
use clawkeeper_core::provision::steps::STEPS;
use clawkeeper_core::ssh::{hosts, keys};
use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, Vault};
use clawkeeper_tests::env;
use clawkeeper_tests::fake_hetzner::{
    cloud_init_stand_in, install_busy_cloud_init, ContractFakeHetzner, FakeHetznerConfig,
};
use clawkeeper_tests::fake_model::{ContractFakeModel, DEFAULT_MODEL_IDS};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use clawkeeper_tests::webdriver::{
    app_session, click, displayed, js, kill, screenshot, tauri_driver, wait_until,
};
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The second host's root password, for "log in once with a password".
const PASSWORD: &str = "one-time-Pw-e2e-add-41c7";

/// The tray daemon, the window process and tauri-driver go when the test ends, passing or not.
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

async fn type_into(c: &Client, css: &str, text: &str) -> Result<()> {
    let el = wait_until(&format!("`{css}`"), Duration::from_secs(20), || {
        displayed(c, css)
    })
    .await?;
    el.clear().await?;
    el.send_keys(text).await?;
    Ok(())
}

/// The text of the first element matching `css`, or "" when there is none.
async fn text(c: &Client, css: &str) -> Result<String> {
    js(
        c,
        &format!("const e = document.querySelector({css:?}); return e ? e.innerText : ''"),
    )
    .await
}

/// Fail with what the page says if the server section shows an error.
async fn no_error(c: &Client, within: &str) -> Result<()> {
    let err = js(
        c,
        &format!("return [...document.querySelectorAll('{within} .error-panel')].map(e => e.innerText).join('\\n')"),
    )
    .await?;
    if !err.trim().is_empty() {
        bail!("the page shows an error: {err}");
    }
    Ok(())
}

/// The server job box as the page shows it: (data-state, title, step, "Step N of M" or
/// "N of M steps done").
async fn job(c: &Client) -> Result<Option<(String, String, String, String)>> {
    let v = c
        .execute(
            "const j = document.getElementById('server-job'); if (!j) return null; \
             const s = document.getElementById('server-step'); \
             const m = j.querySelector('.progress-meta span'); \
             return [j.dataset.state, j.querySelector('h3').innerText, s ? s.innerText : '', m ? m.innerText : '']",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(v)?)
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

/// Records every job box the page renders (state | title | step | N of M | the server's
/// state line), so steps that pass quicker than a poll are still seen.
const WATCH_STEPS: &str = r#"
if (!window.__ckSteps) {
  window.__ckSteps = [];
  const look = () => {
    const j = document.getElementById('server-job');
    if (!j) return;
    const s = document.getElementById('server-step');
    const m = j.querySelector('.progress-meta span');
    const st = document.querySelector('[data-testid=server-state]');
    const line = [j.dataset.state, j.querySelector('h3').innerText, s ? s.innerText : '', m ? m.innerText : '', st ? st.innerText : ''].join(' | ');
    if (window.__ckSteps[window.__ckSteps.length - 1] !== line) window.__ckSteps.push(line);
  };
  new MutationObserver(look).observe(document.getElementById('server-body'), { childList: true, subtree: true, characterData: true });
}
return true;
"#;

/// The steps of creating a server at Hetzner, as the status window names them.
const DEPLOY_STEPS: [&str; 6] = [
    "Creating Clawkeeper's key at Hetzner",
    "Creating the firewall",
    "Creating the server",
    "Waiting for the server to start",
    "Waiting for the server to answer",
    "Logging in with Clawkeeper's key",
];

/// Every running job box the page showed names the step its "Step N of M" counts, and the
/// server's state line says the same N/M.
fn steps_agree(lines: &str) -> Result<()> {
    let provision: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
    for line in lines.lines() {
        let f: Vec<&str> = line.split(" | ").collect();
        let [state, title, step, meta, label] = f[..] else {
            bail!("odd line {line:?}");
        };
        if state != "running" {
            continue;
        }
        let (n, m) = meta
            .strip_prefix("Step ")
            .and_then(|r| r.split_once(" of "))
            .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?)))
            .with_context(|| format!("no step count in {line:?}"))?;
        let name = step.split(" — ").next().unwrap_or_default();
        let (names, words): (&[&str], &str) = if title.starts_with("Creating") {
            (&DEPLOY_STEPS, "Creating the server…")
        } else {
            (&provision, "Setting up…")
        };
        assert_eq!(m, names.len(), "{line}");
        let want = match names.iter().position(|s| *s == name) {
            Some(i) => i + 1,
            None if name == "Starting…" => 1,
            None if name == "Checking the server's safety" => names.len(),
            None => bail!("unknown step {name:?} in {line:?}"),
        };
        assert_eq!(n, want, "the step and its number disagree: {line}");
        assert_eq!(label, format!("{words} {n}/{m}"), "{line}");
    }
    Ok(())
}

async fn scroll_to_servers(c: &Client) -> Result<()> {
    c.execute(
        "document.getElementById('server-section').scrollIntoView()",
        vec![],
    )
    .await?;
    Ok(())
}

/// Nothing of any server in the keychain namespace (the model key and the cloud token may
/// be there).
async fn no_server_secrets(vault: &Vault) -> Result<()> {
    let refs = vault.list().await?;
    let left: Vec<String> = refs
        .iter()
        .filter(|r| matches!(r.kind, SecretKind::SshKey | SecretKind::SshPassword))
        .map(ToString::to_string)
        .collect();
    if !left.is_empty() {
        bail!("server secrets left in the keychain: {left:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_server_add_through_the_forms() -> Result<()> {
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

    // ---------- two hosts, the fakes, a fresh data dir ----------
    let person = keys::generate_ed25519("person@laptop")?;
    let (cloud_host, own_host) = tokio::try_join!(
        TestHost::boot(HostOptions::default()),
        TestHost::boot(HostOptions {
            password_login: Some(("root".into(), PASSWORD.into())),
            ..HostOptions::with_key(keys::public_line(person.public_key())?)
        }),
    )?;
    // Setting up the person's server waits for its first boot in step 1: long enough to
    // press Cancel there (its network has no npm mirror, so it never gets further).
    install_busy_cloud_init(own_host.root(), 8)?;
    let gw_ip = cloud_host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await?;
    let provider_key = "sk-e2e-server-add-provider-key-9a3f";
    let model = ContractFakeModel::start_on(
        (gw_ip, 0).into(),
        provider_key.into(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await?;
    let fake = ContractFakeHetzner::start(FakeHetznerConfig {
        server_ipv4: cloud_host.addr().to_string(),
        on_server_created: Some(cloud_init_stand_in(cloud_host.root().to_owned())),
        // Slow enough that each cloud step is on screen for a moment.
        action_duration: Duration::from_millis(1200),
        boot_duration: Duration::from_millis(1200),
        ..FakeHetznerConfig::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("clawkeeper-home");
    let key_file = tmp.path().join("id_ed25519");
    std::fs::write(&key_file, keys::to_openssh(&person)?.expose())?;
    // This test's own keychain entries, so the app's fixed ids ("cloud", "server") and the
    // one cloud token meet no other test's.
    let namespace = format!("clawkeeper-test-e2e-add-{}", std::process::id());
    let vault = Vault::new(&namespace);

    // ---------- the app: first run, no runtime, so setup asks where it lives ----------
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
        .env("CLAWKEEPER_NPM_REGISTRY", mirror.url())
        .env("CLAWKEEPER_HETZNER_API", fake.base_url())
        .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace)
        .env("CLAWKEEPER_PORT", env::free_port().to_string())
        .env("CLAWKEEPER_LOG", "info")
        .env_remove("CLAWKEEPER_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let procs = Procs {
        driver: Some(driver_cmd.spawn().context("starting tauri-driver")?),
        home: home.clone(),
    };
    let c = app_session(driver_port, &app_exe, &[]).await?;

    let world = World {
        cloud_host: &cloud_host,
        own_host: &own_host,
        fake: &fake,
        model: &model,
        provider_key,
        home: &home,
        key_file: &key_file,
        vault: &vault,
    };
    let result = drive(&c, &world).await;
    if result.is_err() {
        let _ = screenshot(&c, "failure-server-add.png").await;
        if let Ok(steps) = js(&c, "return (window.__ckSteps || []).join('\\n')").await {
            eprintln!("--- job boxes the page showed ---\n{steps}");
        }
        if let Ok(text) = std::fs::read_to_string(&log) {
            eprintln!("--- app / driver log: warnings, errors, cancels ---");
            for l in text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("cancel"))
            {
                eprintln!("{l}");
            }
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
    for r in vault.list().await.unwrap_or_default() {
        let _ = vault.delete(&r).await;
    }
    tokio::join!(cloud_host.stop(), own_host.stop());
    eprintln!("teardown in {:.0} s", t.elapsed().as_secs_f64());
    eprintln!("done after {:.0} s", started.elapsed().as_secs_f64());
    result
}

struct World<'a> {
    cloud_host: &'a TestHost,
    own_host: &'a TestHost,
    fake: &'a ContractFakeHetzner,
    model: &'a ContractFakeModel,
    provider_key: &'a str,
    home: &'a Path,
    key_file: &'a Path,
    vault: &'a Vault,
}

async fn drive(c: &Client, w: &World<'_>) -> Result<()> {
    let t = Instant::now();
    let setup = first_run_choosing_a_new_server(c, w).await?;
    eprintln!("setup → status window: {:.0} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    hetzner_create_cancel_continue(c, w).await?;
    eprintln!(
        "Hetzner: token, prices, create, cancel, continue, checklist: {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    delete_the_cloud_server(c, w).await?;
    eprintln!("delete: {:.0} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    connect_a_server_i_have(c, w).await?;
    eprintln!(
        "connect: fingerprint, wrong password, key file, cancel, remove: {:.0} s",
        t.elapsed().as_secs_f64()
    );
    setup_button_reopens_the_form(c, setup).await?;
    Ok(())
}

/// The setup window's "Open the server form", with the status window already open, takes
/// that window to the Hetzner form again (the token is saved now: straight to the prices).
async fn setup_button_reopens_the_form(c: &Client, setup: WindowHandle) -> Result<()> {
    let status = c.window().await?;
    c.switch_to_window(setup).await?;
    click(c, "#open-server-form").await?;
    c.switch_to_window(status).await?;
    wait_until(
        "the Hetzner form again",
        Duration::from_secs(30),
        || async {
            no_error(c, "#server-section").await?;
            Ok(displayed(c, "#cloud-types").await?.map(|_| ()))
        },
    )
    .await?;
    assert!(displayed(c, "#cloud-token").await?.is_none());
    Ok(())
}

/// Setup window: "A new server" → the model key → the status window at the Hetzner form.
async fn first_run_choosing_a_new_server(c: &Client, w: &World<'_>) -> Result<WindowHandle> {
    wait_until("the setup window", Duration::from_secs(60), || async {
        Ok(c.title().await?.contains("Set up").then_some(()))
    })
    .await?;
    wait_until("the place step", Duration::from_secs(30), || {
        displayed(c, "#step-place")
    })
    .await?;
    let soon = js(
        c,
        "return String(document.querySelectorAll('#place-cloud-soon, #place-ssh-soon, #step-place .choice.is-disabled, input[name=place]:disabled').length)",
    )
    .await?;
    assert_eq!(soon, "0", "server choices are still 'Coming soon'");
    click(c, "label[for=place-cloud]").await?;
    click(c, "#place-next").await?;
    wait_until("the provider step", Duration::from_secs(10), || {
        displayed(c, "#step-provider")
    })
    .await?;
    assert_eq!(
        text(c, "#provider-step-label").await?.to_lowercase(),
        "step 2 of 3"
    );
    click(c, "label[for=provider-kind-custom]").await?;
    type_into(c, "#base-url", &w.model.base_url()).await?;
    type_into(c, "#model", DEFAULT_MODEL_IDS[0]).await?;
    type_into(c, "#api-key", w.provider_key).await?;
    let setup = c.window().await?;
    let before = c.windows().await?;
    click(c, "#save-provider").await?;
    wait_until("the server step", Duration::from_secs(30), || async {
        let err = text(c, "#provider-error").await?;
        if !err.trim().is_empty() {
            bail!("saving the provider failed: {err}");
        }
        Ok(displayed(c, "#step-server").await?.map(|_| ()))
    })
    .await?;
    screenshot(c, "setup-server.png").await?;
    let dom = js(c, "return document.documentElement.outerHTML").await?;
    assert!(
        !dom.contains(w.provider_key),
        "the API key is still in the page"
    );
    // Nothing is installed on this computer for a server.
    assert!(
        displayed(c, "#progress").await?.is_none(),
        "setup started installing on this computer"
    );

    // The status window opens by itself, at the Hetzner form.
    let status = wait_until("the status window", Duration::from_secs(60), || async {
        for h in c.windows().await? {
            if h != setup && !before.contains(&h) {
                return Ok(Some(h));
            }
        }
        Ok(None)
    })
    .await?;
    c.switch_to_window(status).await?;
    wait_until(
        "the status window's title",
        Duration::from_secs(30),
        || async { Ok(c.title().await?.contains("Status").then_some(())) },
    )
    .await?;
    Ok(setup)
}

/// Token → sizes and prices → create → Cancel during "Installing OpenClaw" → paused →
/// Continue → all checks pass.
async fn hetzner_create_cancel_continue(c: &Client, w: &World<'_>) -> Result<()> {
    let token = w.fake.token();
    let field = wait_until("the token field", Duration::from_secs(30), || async {
        no_error(c, "#server-section").await?;
        displayed(c, "#cloud-token").await
    })
    .await?;
    assert_eq!(
        js(c, "return document.getElementById('cloud-token').type").await?,
        "password",
        "the token field shows what is typed"
    );
    field.send_keys(&token).await?;
    click(c, "#cloud-token-save").await?;
    wait_until("sizes and prices", Duration::from_secs(30), || async {
        no_error(c, "#server-section").await?;
        displayed(c, "#cloud-types").await
    })
    .await?;
    let values = js(
        c,
        "return [...document.querySelectorAll('input,textarea')].map(e => e.value).join('\\n')",
    )
    .await?;
    let dom = js(c, "return document.documentElement.outerHTML").await?;
    assert!(
        !values.contains(&token) && !dom.contains(&token),
        "the token is still in the page"
    );
    assert!(displayed(c, "#cloud-token").await?.is_none());
    // The fake's catalogue: CX23 at 3.50 a month is the cheapest still sold; CX11 is
    // deprecated and not offered.
    let types = text(c, "#cloud-types").await?;
    assert!(
        types.contains("CX23") && types.contains("3.50"),
        "the fake's price is not shown: {types}"
    );
    assert!(
        !types.contains("CX11"),
        "a deprecated type is offered: {types}"
    );
    assert_eq!(
        js(
            c,
            "return document.querySelector('input[name=cloud-type]:checked').value"
        )
        .await?,
        "cx23"
    );
    scroll_to_servers(c).await?;
    screenshot(c, "server-cloud-prices.png").await?;

    js(c, WATCH_STEPS).await?;
    click(c, "#cloud-create").await?;

    // Cancel while the server is being created at Hetzner: it pauses there, and Continue
    // carries on creating it (the window keeps nothing: the app remembers the choice).
    // "Creating the server" is one request: under load the window may go straight from
    // the step before it to "Waiting for the server to start" (seen in CI), which is still
    // the server being created (its create action runs 1.2 s, then it boots 1.2 s).
    wait_until(
        "the step \"Creating the server\" or \"Waiting for the server to start\"",
        Duration::from_secs(60),
        || async {
            no_error(c, "#server-section").await?;
            Ok(job(c)
                .await?
                .filter(|j| {
                    j.0 == "running"
                        && (j.2.starts_with("Creating the server")
                            || j.2.starts_with("Waiting for the server to start"))
                })
                .map(|_| ()))
        },
    )
    .await?;
    click(c, "#server-cancel").await?;
    let paused = wait_until("creating to pause", Duration::from_secs(60), || async {
        match job(c).await? {
            Some(j) if j.0 == "cancelled" => Ok(Some(j)),
            Some(j) if j.0 == "failed" => bail!("creating failed instead of pausing: {j:?}"),
            _ => Ok(None),
        }
    })
    .await?;
    assert_eq!(
        paused.1, "Creating your server at Hetzner: paused",
        "{paused:?}"
    );
    assert_eq!(w.fake.live("server"), 1);
    click(c, "#server-retry").await?;

    // Named steps with N of M, first at Hetzner, then on the server; Cancel in a long one.
    wait_until(
        "the step \"Installing OpenClaw\"",
        Duration::from_secs(240),
        || async {
            no_error(c, "#server-section").await?;
            let Some((state, _, step, _)) = job(c).await? else {
                return Ok(None);
            };
            if state != "running" {
                bail!("the job is {state} before Installing OpenClaw");
            }
            Ok(step.starts_with("Installing OpenClaw").then_some(()))
        },
    )
    .await?;
    scroll_to_servers(c).await?;
    screenshot(c, "server-deploy-progress.png").await?;
    // After the first pause and Continue, Cancel is a plain Cancel again.
    assert_eq!(
        js(
            c,
            "const b = document.getElementById('server-cancel'); return String(b.disabled) + ' ' + b.innerText",
        )
        .await?,
        "false Cancel"
    );
    click(c, "#server-cancel").await?;
    wait_until(
        "Cancel to say it stops after the step",
        Duration::from_secs(10),
        || async {
            no_error(c, "#server-job").await?;
            let asked = js(
                c,
                "const b = document.getElementById('server-cancel'); return b ? String(b.disabled) + ' ' + b.innerText : ''",
            )
            .await?;
            let st = job(c).await?.map(|j| j.0).unwrap_or_default();
            Ok((asked == "true Stopping after this step…" || st == "cancelled").then_some(()))
        },
    )
    .await?;
    let paused = wait_until("the job to pause", Duration::from_secs(180), || async {
        no_error(c, "#server-section").await?;
        match job(c).await? {
            Some(j) if j.0 == "cancelled" => Ok(Some(j)),
            Some(j) if j.0 == "failed" => bail!("the job failed instead of pausing: {j:?}"),
            _ => Ok(None),
        }
    })
    .await?;
    assert!(paused.1.ends_with("paused"), "{paused:?}");
    assert_eq!(text(c, "#server-retry").await?, "Continue");
    assert_eq!(text(c, "[data-testid=server-state]").await?, "Setup paused");
    // It stopped right after the step it was in.
    assert_eq!(paused.3, "8 of 13 steps done", "{paused:?}");
    scroll_to_servers(c).await?;
    screenshot(c, "server-deploy-paused.png").await?;

    click(c, "#server-retry").await?;
    wait_until(
        "the server to be set up",
        Duration::from_secs(300),
        || async {
            no_error(c, "#server-section").await?;
            if let Some(j) = job(c).await? {
                if j.0 == "failed" || j.0 == "cancelled" {
                    bail!("setting up did not finish: {j:?}");
                }
                return Ok(None);
            }
            let state = text(c, "[data-testid=server-state]").await?;
            Ok((state == "Safe").then_some(()))
        },
    )
    .await?;
    let checks = page_checks(c).await?;
    assert!(checks.len() >= 6, "too few checks: {checks:?}");
    let failed: Vec<_> = checks.iter().filter(|(_, s)| s != "pass").collect();
    assert!(failed.is_empty(), "checks not passing: {failed:?}");

    // What the page showed on the way: the cloud steps, then the setup steps, with N of M.
    let steps = js(c, "return window.__ckSteps.join('\\n')").await?;
    eprintln!("--- job boxes the page showed ---\n{steps}");
    // (A step that is one quick request, like "Creating the server", may not get a frame
    // of its own under load; the cloud part's N of 6 must show, whichever steps did.)
    assert!(
        steps
            .lines()
            .any(|l| l.contains("Creating your server at Hetzner | ") && l.contains(" of 6")),
        "the page never showed a cloud step with its N of 6"
    );
    for want in [
        "Waiting for the server to start",
        "Setting up your server | Checking the operating system | Step 1 of 13",
        "Installing OpenClaw | Step 8 of 13",
        "Checking the server's safety | Step 13 of 13",
        "cancelled | Creating your server at Hetzner: paused |  | ",
        "cancelled | Setting up your server: paused |  | 8 of 13 steps done | Setup paused",
    ] {
        assert!(steps.contains(want), "the page never showed {want:?}");
    }
    steps_agree(&steps)?;
    let active = w
        .cloud_host
        .inspect_ok("systemctl is-active clawkeeper-gateway.service")
        .await?;
    assert_eq!(active.trim(), "active");
    Ok(())
}

/// "Delete this server…" → what goes → "Delete for good" → what went; nothing left at
/// the provider.
async fn delete_the_cloud_server(c: &Client, w: &World<'_>) -> Result<()> {
    click(c, "#server-details summary").await?;
    click(c, "#server-delete").await?;
    wait_until("the delete question", Duration::from_secs(10), || {
        displayed(c, "#delete-what")
    })
    .await?;
    let listed = text(c, "#delete-what").await?;
    assert!(
        listed.contains("At Hetzner") && listed.contains("firewall") && listed.contains("key"),
        "{listed}"
    );
    click(c, "#server-delete-confirm").await?;
    let removed = wait_until("the list of what was removed", Duration::from_secs(120), || async {
        no_error(c, "#server-section").await?;
        if displayed(c, "#server-removed").await?.is_none() {
            return Ok(None);
        }
        let v = c
            .execute(
                "return [...document.querySelectorAll('#server-removed li')].map(li => li.innerText)",
                vec![],
            )
            .await?;
        Ok(Some(serde_json::from_value::<Vec<String>>(v)?))
    })
    .await?;
    for want in [
        "At Hetzner: Server",
        "At Hetzner: Firewall",
        "At Hetzner: SSH key",
    ] {
        assert!(
            removed.iter().any(|r| r.starts_with(want)),
            "{want:?} not in {removed:?}"
        );
    }
    // Only what was there, once each: a cloud server has no copy of a key of the person's.
    let mut expected = vec![
        "The server's pinned identity",
        "From your keychain: Clawkeeper's key for it",
        "From your keychain: Its assistant's password",
    ];
    expected.sort_unstable();
    let mut local: Vec<&str> = removed
        .iter()
        .map(String::as_str)
        .filter(|r| !r.starts_with("At Hetzner: "))
        .collect();
    local.sort_unstable();
    assert_eq!(local, expected, "{removed:?}");
    assert_eq!(removed.len(), 6, "{removed:?}");
    for kind in ["server", "firewall", "ssh_key"] {
        assert_eq!(w.fake.live(kind), 0, "{kind} left at Hetzner");
        // Continue went on with what the first try made: nothing was made twice.
        assert_eq!(w.fake.created(kind), 1, "{kind} created more than once");
    }
    wait_until("the add buttons", Duration::from_secs(10), || async {
        Ok((displayed(c, "#server-add-connect").await?.is_some()
            && displayed(c, "#server-add-cloud").await?.is_some())
        .then_some(()))
    })
    .await?;
    assert!(displayed(c, ".server[data-server-id]").await?.is_none());
    no_server_secrets(w.vault).await?;
    scroll_to_servers(c).await?;
    screenshot(c, "server-deleted.png").await?;
    Ok(())
}

/// Address → fingerprint → a wrong password (refused, nothing saved) → the key file →
/// added and being set up → Cancel → paused → removed again.
async fn connect_a_server_i_have(c: &Client, w: &World<'_>) -> Result<()> {
    let host = w.own_host;
    click(c, "#server-add-connect").await?;
    type_into(c, "#connect-host", &host.addr().to_string()).await?;
    type_into(c, "#connect-name", "Office server").await?;
    click(c, "#connect-scan").await?;
    wait_until("the fingerprint", Duration::from_secs(30), || async {
        no_error(c, "#server-section").await?;
        displayed(c, "#connect-fingerprint").await
    })
    .await?;
    let shown = text(c, "#connect-fingerprint code").await?;
    assert_eq!(shown, host.host_key_fingerprint_sha256()?);
    scroll_to_servers(c).await?;
    screenshot(c, "server-connect-fingerprint.png").await?;

    // A wrong password: refused, said plainly, nothing kept.
    type_into(c, "#connect-password", "not-the-password").await?;
    click(c, "#connect-confirm").await?;
    let (code, message) = wait_until("the refusal", Duration::from_secs(60), || async {
        let v = c
            .execute(
                "const e = document.querySelector('#connect-error .error-panel'); return e ? [e.dataset.code, e.querySelector('.error-message').innerText] : null",
                vec![],
            )
            .await?;
        Ok(serde_json::from_value::<Option<(String, String)>>(v)?)
    })
    .await?;
    assert_eq!(code, "host_auth_rejected", "{message}");
    assert!(
        message.contains("refused the password"),
        "not a clear message: {message}"
    );
    assert_eq!(
        js(
            c,
            "return document.getElementById('connect-password').value"
        )
        .await?,
        ""
    );
    let fix = text(c, "#connect-error .error-panel button").await?;
    assert_eq!(fix, "Type the password again");
    let store_path = w.home.join("clawkeeper.db");
    let (store, _) = Store::open(&store_path).await?;
    assert!(
        store.instance("server").await?.is_none(),
        "a server was saved"
    );
    assert!(hosts::get(&store, "server").await?.is_none());
    no_server_secrets(w.vault).await?;
    let ak = host.inspect_ok("cat /root/.ssh/authorized_keys").await?;
    assert!(
        !ak.contains("clawkeeper"),
        "a key was put on the host: {ak}"
    );

    // The person's key file, picked in the file input.
    let input = c.find(Locator::Css("#connect-keyfile")).await?;
    input.send_keys(&w.key_file.to_string_lossy()).await?;
    let picked = js(
        c,
        "return String(document.getElementById('connect-keyfile').files.length)",
    )
    .await?;
    assert_eq!(picked, "1", "the key file was not picked");
    js(c, WATCH_STEPS).await?;
    click(c, "#connect-confirm").await?;
    wait_until("setting up to start", Duration::from_secs(60), || async {
        no_error(c, "#server-section").await?;
        Ok(job(c)
            .await?
            .filter(|j| j.0 == "running" && j.2.starts_with("Checking the operating system"))
            .map(|_| ()))
    })
    .await?;
    let added = text(c, ".server[data-server-id=server] .server-head").await?;
    assert!(
        added.contains("Office server") && added.contains(&host.addr().to_string()),
        "{added}"
    );
    let ak = host.inspect_ok("cat /root/.ssh/authorized_keys").await?;
    assert!(
        ak.contains(" clawkeeper-server"),
        "Clawkeeper's key is not on the host: {ak}"
    );
    click(c, "#server-cancel").await?;
    let paused = wait_until("the setup to pause", Duration::from_secs(60), || async {
        match job(c).await? {
            Some(j) if j.0 == "cancelled" => Ok(Some(j)),
            Some(j) if j.0 == "failed" => bail!("setting up failed instead of pausing: {j:?}"),
            _ => Ok(None),
        }
    })
    .await?;
    assert_eq!(paused.3, "1 of 13 steps done", "{paused:?}");
    assert_eq!(text(c, "#server-retry").await?, "Continue");

    // Remove it: Clawkeeper's key comes off the host again.
    click(c, "#server-details summary").await?;
    click(c, "#server-delete").await?;
    click(c, "#server-delete-confirm").await?;
    let removed = wait_until(
        "the list of what was removed",
        Duration::from_secs(60),
        || async {
            no_error(c, "#server-section").await?;
            if displayed(c, "#server-removed").await?.is_none() {
                return Ok(None);
            }
            Ok(Some(text(c, "#server-removed").await?))
        },
    )
    .await?;
    for want in [
        "On the server: Clawkeeper's key (from authorized_keys)",
        "The server's pinned identity",
        "From your keychain: Clawkeeper's key for it",
        "From your keychain: The copy of your key for it",
    ] {
        assert!(removed.contains(want), "{want:?} not in {removed}");
    }
    let ak = host.inspect_ok("cat /root/.ssh/authorized_keys").await?;
    assert!(
        !ak.contains("clawkeeper"),
        "Clawkeeper's key is still on the host: {ak}"
    );
    no_server_secrets(w.vault).await?;
    store.close().await;
    Ok(())
}
