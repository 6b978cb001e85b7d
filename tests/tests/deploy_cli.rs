//! The command line on a connected server, as a script or a support person would use it,
//! with the real binary against a real test host: connect (fingerprint confirmed, the
//! person's key imported), provider, provision — killed with SIGKILL in the middle of
//! several steps and simply run again — posture, and a chat reply through the SSH tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::ssh::keys;
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_model::{ContractFakeModel, DEFAULT_MODEL_IDS, REPLY_PREFIX};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// Start `provision` and SIGKILL it as soon as it reports step `step_name` running.
fn provision_killed_at(cli: &Cli, id: &str, step_name: &str) {
    let mut child = cli
        .cmd(&["provision", "--id", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains('…') && line.ends_with(step_name) {
            std::thread::sleep(Duration::from_millis(700)); // well inside the step
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
    }
    let st = child.wait().unwrap();
    panic!("provision ended ({st}) before step {step_name:?}: {seen:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_cli_connect_provision_through_crashes_then_chat() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts, npm mirror)");
        return;
    }
    let person = keys::generate_ed25519("person@laptop").unwrap();
    let host = TestHost::boot(HostOptions::with_key(
        keys::public_line(person.public_key()).unwrap(),
    ))
    .await
    .unwrap();
    let gw_ip = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await.unwrap();
    let provider_key = "sk-planted-cli-provider-key-77c3";
    let model = ContractFakeModel::start_on(
        (gw_ip, 0).into(),
        provider_key.into(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli {
        home: home.path().to_owned(),
        registry: mirror.url(),
    };
    let key_file = home.path().join("id_person");
    std::fs::write(&key_file, keys::to_openssh(&person).unwrap().expose()).unwrap();
    let id = format!("cli-{}", std::process::id());
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256().unwrap();

    // Without a confirmed fingerprint, nothing happens but showing it.
    let out = cli
        .run(
            &[
                "connect",
                "--host",
                &addr,
                "--id",
                &id,
                "--key-file",
                key_file.to_str().unwrap(),
            ],
            None,
        )
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&fp), "the fingerprint is shown: {err}");
    // A wrong fingerprint is refused.
    let out = cli
        .run(
            &[
                "connect",
                "--host",
                &addr,
                "--id",
                &id,
                "--key-file",
                key_file.to_str().unwrap(),
                "--fingerprint",
                "SHA256:not-it",
            ],
            None,
        )
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nothing was sent"));

    cli.ok(
        &[
            "connect",
            "--host",
            &addr,
            "--id",
            &id,
            "--key-file",
            key_file.to_str().unwrap(),
            "--fingerprint",
            &fp,
        ],
        None,
    )
    .unwrap();
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
    )
    .unwrap();

    // Crash the app in the middle of three steps (downloads, the npm install, the start).
    for step in [
        "Installing Node.js",
        "Installing OpenClaw",
        "Starting the assistant",
    ] {
        provision_killed_at(&cli, &id, step);
    }
    let done = cli.ok(&["provision", "--id", &id], None).unwrap();
    assert!(done.contains("reachable only through Clawkeeper"), "{done}");

    let posture = cli.ok(&["posture", "--id", &id], None).unwrap();
    assert!(!posture.contains('✗'), "{posture}");
    assert!(
        posture.lines().filter(|l| l.contains('✓')).count() >= 6,
        "{posture}"
    );

    let reply = cli
        .ok(
            &["chat", "--server", &id, "hello from the command line"],
            None,
        )
        .unwrap();
    assert_eq!(
        reply.trim(),
        format!("{REPLY_PREFIX}hello from the command line")
    );

    // The person's own key file was only read: the imported copy lives in the keychain.
    let hits = clawkeeper_tests::scan::files_containing(home.path(), &[provider_key]);
    assert!(hits.is_empty(), "{hits:?}");
    host.stop().await;
}
