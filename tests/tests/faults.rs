//! Bad input and broken environments: each gets a clear message and loses nothing.
//! These use the real keychain, SQLite, npm and the supervisor, but no healthy gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::runtime::{Runtime, NODE_VERSION, OPENCLAW_VERSION};
use clawkeeper_core::local::supervisor::{InstanceState, Policy};
use clawkeeper_core::paths::Paths;
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::Secret;
use clawkeeper_tests::env;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn cli(home: &Path) -> Command {
    let mut c = Command::new(env::bin("clawkeeper-cli"));
    c.env("CLAWKEEPER_HOME", home).env("CLAWKEEPER_LOG", "off");
    c
}

fn setup_env(tag: &str) {
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-{tag}-{}", std::process::id()),
    );
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
}

async fn app_with_provider(paths: Paths, policy: Policy) -> Clawkeeper {
    let app = Clawkeeper::open(paths, policy).await.unwrap();
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model: Some("echo-1".into()),
        api_key: Secret::new("sk-faults-planted-1"),
    })
    .await
    .unwrap();
    app
}

#[test]
fn no_keychain_is_a_clear_error_and_no_plain_file() {
    let home = tempfile::tempdir().unwrap();
    let out = cli(home.path())
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .args(["provider", "--kind", "openrouter"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"sk-no-keychain-planted")?;
            c.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("can't reach your keychain"), "{stderr}");
    assert!(
        stderr.contains("never falls back to a plain file"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-no-keychain-planted"));
    let hits = clawkeeper_tests::scan::files_containing(home.path(), &["sk-no-keychain-planted"]);
    assert!(hits.is_empty(), "{hits:?}");
}

#[test]
fn damaged_database_is_kept_and_replaced() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("clawkeeper.db"), vec![0x42u8; 8192]).unwrap();
    let out = cli(home.path()).arg("status").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("settings file was damaged"), "{stdout}");
    let kept: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file must be kept");
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), vec![0x42u8; 8192]);
}

#[tokio::test]
async fn registry_unreachable_says_so_and_leaves_nothing_half_installed() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("npm_config_registry", "http://127.0.0.1:9/");
    let rt = Runtime::new(dir.path());
    let err = rt
        .install(&|_| {}, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        clawkeeper_core::UserFacing::code(&err),
        "registry_unreachable",
        "{err}"
    );
    assert!(!rt.is_installed());
    let partial: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
}

#[tokio::test]
async fn install_can_be_cancelled_cleanly() {
    // A registry that accepts connections and never answers: the install hangs until cancelled.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    std::env::set_var("npm_config_registry", format!("http://127.0.0.1:{port}/"));
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(dir.path());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c2.cancel();
    });
    let started = std::time::Instant::now();
    let err = rt.install(&|_| {}, &cancel).await.unwrap_err();
    assert_eq!(clawkeeper_core::UserFacing::code(&err), "cancelled");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!rt.is_installed());
    assert!(!dir
        .path()
        .join(format!("node-{NODE_VERSION}.partial"))
        .exists());
}

/// A runtime whose "node" exits at once: the supervisor must give up with words, not loop.
fn crashing_runtime(dir: &Path) {
    let node_bin = dir.join(format!("node-{NODE_VERSION}/node_modules/node/bin"));
    let oc = dir.join(format!("openclaw-{OPENCLAW_VERSION}/node_modules/openclaw"));
    std::fs::create_dir_all(&node_bin).unwrap();
    std::fs::create_dir_all(&oc).unwrap();
    std::fs::write(
        node_bin.join("node"),
        "#!/bin/sh\necho 'simulated crash' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        node_bin.join("node"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(oc.join("openclaw.mjs"), "").unwrap();
    std::fs::write(dir.join(format!("node-{NODE_VERSION}/.complete")), "x").unwrap();
    std::fs::write(
        dir.join(format!("openclaw-{OPENCLAW_VERSION}/.complete")),
        "x",
    )
    .unwrap();
}

#[tokio::test]
async fn crash_loop_stops_with_a_clear_error() {
    if !env::isolated() {
        eprintln!("skipped: needs the test session's keyring (scripts/test.sh)");
        return;
    }
    setup_env("crash");
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let dir = tempfile::tempdir().unwrap();
    crashing_runtime(&dir.path().join("runtime"));
    let paths = Paths::under(&dir.path().join("data"));
    let paths = Paths {
        runtime_dir: dir.path().join("runtime"),
        ..paths
    };
    let policy = Policy {
        max_crashes: 3,
        backoff_start: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..Policy::default()
    };
    let app = app_with_provider(paths, policy).await;
    app.start().await.unwrap();
    let err = app.wait_healthy(Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(err.code, "crash_loop", "{err:?}");
    assert!(
        err.message.contains("stopped unexpectedly 3 times"),
        "{err:?}"
    );
    assert!(err.hint.unwrap().contains("Check your model provider"));
    assert_eq!(app.status().borrow().restarts, 2);
}

#[tokio::test]
async fn port_in_use_is_named() {
    if !env::isolated() {
        eprintln!("skipped: needs the test session's keyring (scripts/test.sh)");
        return;
    }
    let Some(runtime_dir) = env::test_runtime() else {
        return;
    };
    setup_env("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::env::set_var("CLAWKEEPER_PORT", port.to_string());
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: dir.path().join("data"),
        runtime_dir,
    };
    let app = app_with_provider(paths, Policy::default()).await;
    app.start().await.unwrap();
    let err = app.wait_healthy(Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(err.code, "port_in_use", "{err:?}");
    assert!(err.message.contains(&port.to_string()));
    assert!(matches!(
        app.status().borrow().state,
        InstanceState::Error { .. }
    ));
}

/// A server's setup cut off by closing the app is still shown after a restart — stopped at
/// its step, with a way to continue — from the job history, not the old process's memory.
#[tokio::test]
async fn an_interrupted_server_setup_is_shown_after_a_restart() {
    use clawkeeper_core::provision;
    use clawkeeper_core::ssh::{hosts, keys, HostKey, Target};
    use clawkeeper_core::store::{DesiredState, InstanceRecord};
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    {
        let app = Clawkeeper::open(paths.clone(), Policy::default())
            .await
            .unwrap();
        let store = app.store();
        store
            .upsert_instance(&InstanceRecord {
                id: "srv".into(),
                name: "My server".into(),
                target: "ssh".into(),
                port: 18789,
                desired_state: DesiredState::Stopped,
                openclaw_version: OPENCLAW_VERSION.into(),
                created_at: String::new(),
            })
            .await
            .unwrap();
        let host_key = keys::generate_ed25519("host").unwrap();
        hosts::pin(
            store,
            "srv",
            &Target::new("203.0.113.7", 22, "root"),
            &HostKey::new(host_key.public_key().clone()),
        )
        .await
        .unwrap();
        let job = store
            .create_job(provision::JOB_KIND, Some("srv"), 13)
            .await
            .unwrap();
        store
            .job_step(&job, 7, "Installing Node.js", 6, 13)
            .await
            .unwrap();
        // The app goes away here, in the middle of the step.
    }
    let app = Clawkeeper::open(paths, Policy::default()).await.unwrap();
    let servers = app.servers().await.unwrap();
    assert_eq!(servers.len(), 1, "{servers:?}");
    let job = servers[0].job.as_ref().expect("the stopped setup is shown");
    assert_eq!(
        (job.kind, job.state, job.step.as_str(), job.index, job.total),
        ("provision", "failed", "Installing Node.js", 6, 13)
    );
    let e = job.error.as_ref().unwrap();
    assert_eq!(e.code, "interrupted");
    assert!(e.message.contains("closed"), "{}", e.message);
    assert!(
        e.hint.as_deref().unwrap_or("").contains("Continue"),
        "{e:?}"
    );
}
