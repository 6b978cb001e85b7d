//! Rotation of Clawkeeper's SSH key for a server, end to end: a real test host (systemd-
//! nspawn, real sshd), the real `clawkeeper-cli` and the real keychain (gnome-keyring in
//! the test session). One host for the binary; one scenario with named steps.
//!
//! - `clawkeeper-cli rotate ssh-key --instance srv`: the keychain's key changed and logs
//!   in, the old one is refused by sshd, `authorized_keys` holds exactly one line of
//!   Clawkeeper's (the new one) beside the person's own, no staging entry, the journal row
//!   done, the server's record names the new key, the audit log has fingerprints only.
//! - Crash injection: the CLI is killed (SIGKILL) at every step boundary (before the step,
//!   and after its work but before the journal recorded it); `rotate --resume` finishes
//!   it. Meanwhile a key the keychain holds logs in; afterwards the same end state.
//! - sshd stopped between install and verify: the rotation waits with both keys in the
//!   keychain (and both lines on the server), and finishes once sshd is back.
//! - The new key lets the app in but runs no command (a `command="false"` option put on its
//!   line): the rotation is undone, the new line removed over the old key, the old kept.
//! - Planted-secret scan: no private key, old or new, in the data folder (SQLite and its
//!   WAL included), the CLI's output at debug level, the audit log, the journal, or any
//!   process's arguments or environment; nor anywhere on the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::remote::Remote;
use clawkeeper_core::rotation::{driver, journal, staging};
use clawkeeper_core::ssh::{self, hosts, keys, Auth, Session};
use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use clawkeeper_tests::{env, scan};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ID: &str = "srv";
const PASSWORD: &str = "one-time-Pw-rot-4a1c";
/// The person's own key line, which no rotation may touch.
const PERSON: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPReM7GrxNV983Nfnr997sz9WPMZLnryVZfJmBMInnVS me@laptop";

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::SshKey, ID)
}

fn ssh_fp(key: &Secret) -> String {
    keys::fingerprint(keys::parse_private(key, None).unwrap().public_key())
}

fn public_line(key: &Secret) -> String {
    keys::public_line(keys::parse_private(key, None).unwrap().public_key()).unwrap()
}

/// What to look for of a private key: its whole text, and a line of it that holds only
/// private bytes (the 4th base64 line of an OpenSSH ed25519 key: its secret half; the
/// first lines are the format's header and the public key, the same in any copy of it).
fn needles(key: &Secret) -> Vec<String> {
    let body: Vec<&str> = key
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(body.len() >= 5, "an OpenSSH ed25519 key");
    vec![key.expose().to_owned(), body[3].to_owned()]
}

struct Run<'a> {
    cli: &'a Cli,
    /// Everything the CLI printed (scanned for keys at the end).
    printed: std::sync::Mutex<String>,
}

impl Run<'_> {
    fn run(&self, args: &[&str], log: &str) -> (bool, String) {
        let out = self
            .cli
            .cmd(args)
            .env("CLAWKEEPER_LOG", log)
            .env_remove("CLAWKEEPER_TEST_ROTATION_STOP")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ clawkeeper-cli {}\n{text}", args.join(" "));
        self.printed.lock().unwrap().push_str(&text);
        (out.status.success(), text)
    }

    /// Start a rotation told to stop at `stop`; returns once it says it stopped there.
    fn stopped_at(&self, stop: &str, marker: &Path) -> Child {
        let _ = std::fs::remove_file(marker);
        let mut child = self
            .cli
            .cmd(&["rotate", "ssh-key", "--instance", ID])
            .env("CLAWKEEPER_TEST_ROTATION_STOP", stop)
            .env("CLAWKEEPER_TEST_ROTATION_MARKER", marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while !marker.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{stop}: the CLI ended ({status}) before it stopped there");
            }
            assert!(Instant::now() < deadline, "{stop}: never got there");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Log in to the server with `key`, as the app does (pinned host key).
async fn login(store: &Store, key: &Secret) -> ssh::Result<Session> {
    let rec = hosts::get(store, ID).await.unwrap().unwrap();
    let k = keys::parse_private(key, None).unwrap();
    Session::connect(&rec.target, &rec.host_key, &Auth::Key(Arc::new(k))).await
}

/// Clawkeeper's lines in root's `authorized_keys` (read inside the host, not over SSH),
/// after checking the person's own line is still there.
async fn app_lines(host: &TestHost) -> Vec<String> {
    let text = host
        .inspect_ok("cat /root/.ssh/authorized_keys")
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l == PERSON),
        "the person's own key is kept: {text}"
    );
    text.lines()
        .filter(|l| l.ends_with(&format!(" clawkeeper-{ID}")))
        .map(str::to_owned)
        .collect()
}

/// The state after a rotation ended (either way): the keychain's key logs in and runs a
/// command; the other one (if different) is refused; the server lists exactly the
/// keychain's key; no staging entry; nothing unfinished; the server's record names it.
async fn settled(
    store: &Store,
    vault: &Vault,
    host: &TestHost,
    other: &Secret,
    what: &str,
) -> Secret {
    let now = vault.read(&entry()).await.unwrap();
    let s = login(store, &now)
        .await
        .unwrap_or_else(|e| panic!("{what}: the keychain's key logs in: {e}"));
    assert!(s.run("true", None).await.unwrap().success(), "{what}");
    s.close().await;
    if other.expose() != now.expose() {
        match login(store, other).await {
            Err(ssh::Error::AuthRejected { .. }) => {}
            Err(e) => panic!("{what}: the other key: {e}"),
            Ok(_) => panic!("{what}: the other key still logs in"),
        }
    }
    assert_eq!(app_lines(host).await, vec![public_line(&now)], "{what}");
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "{what}: no staging entry left"
    );
    let ledger = journal::unfinished(store).await.unwrap();
    assert!(ledger.is_empty(), "{what}: unfinished: {ledger:?}");
    let rec = hosts::get(store, ID).await.unwrap().unwrap();
    assert_eq!(
        rec.app_key_fingerprint.as_deref(),
        Some(ssh_fp(&now).as_str()),
        "{what}: the server's record"
    );
    assert_eq!(
        rec.app_key_public.as_deref(),
        Some(public_line(&now).as_str())
    );
    now
}

/// A key the keychain holds logs in (the invariant while a rotation is stopped anywhere),
/// and so does the app's own way in (`open_session`).
async fn a_kept_key_logs_in(store: &Store, vault: &Vault, what: &str) {
    let held = driver::candidates(vault, &entry()).await.unwrap();
    let mut works = false;
    for k in &held {
        if let Ok(s) = login(store, k).await {
            s.close().await;
            works = true;
        }
    }
    assert!(works, "{what}: no key in the keychain logs in");
    let s = clawkeeper_core::server::open_session(store, vault, ID)
        .await
        .unwrap_or_else(|e| panic!("{what}: the app can't log in: {e}"));
    assert!(s.run("true", None).await.unwrap().success());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_key_rotation_end_to_end_and_crash_safe() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts)");
        return;
    }
    let namespace = format!("clawkeeper-test-rotssh-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    let mut opts = HostOptions::with_key(PERSON);
    opts.password_login = Some(("root".into(), PASSWORD.into()));
    let host = TestHost::boot(opts).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("data");
    let cli = Cli {
        home: home.clone(),
        // Nothing here installs packages.
        registry: "http://127.0.0.1:9/".into(),
    };
    let run = Run {
        cli: &cli,
        printed: Default::default(),
    };
    let vault = Vault::new(&namespace);

    step("connect the server (one-time password): Clawkeeper's key is installed");
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256().unwrap();
    cli.ok(
        &[
            "connect",
            "--host",
            &addr,
            "--id",
            ID,
            "--password-stdin",
            "--fingerprint",
            &fp,
        ],
        Some(PASSWORD),
    )
    .unwrap();
    let (store, _) = Store::open(&home.join("clawkeeper.db")).await.unwrap();
    let first = vault.read(&entry()).await.unwrap();
    assert_eq!(app_lines(&host).await, vec![public_line(&first)]);
    let mut seen = vec![first.clone()];

    step("the keys list offers the server's SSH key in one click");
    let (ok, text) = run.run(&["--json", "rotate", "--list"], "warn");
    assert!(ok, "{text}");
    let list: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["instanceId"] == ID && k["key"] == "ssh-key")
        .cloned()
        .unwrap_or_else(|| panic!("no ssh-key row for {ID}: {list}"));
    assert_eq!(row["how"], "one_click", "{row}");
    assert_eq!(row["fingerprint"], ssh_fp(&first), "{row}");
    assert!(row["setAt"].is_string(), "{row}");

    step("rotate it with the CLI (debug logging on: its output is scanned for keys)");
    let t = Instant::now();
    let (ok, text) = run.run(&["rotate", "ssh-key", "--instance", ID], "debug");
    let wall = t.elapsed();
    assert!(ok, "{text}");
    eprintln!(
        "one SSH key rotation, CLI wall time: {:.2} s",
        wall.as_secs_f64()
    );
    let now = settled(&store, &vault, &host, &first, "one rotation").await;
    assert_ne!(now.expose(), first.expose());
    assert!(
        text.contains(&ssh_fp(&now)) && text.contains(&ssh_fp(&first)),
        "the CLI names both fingerprints: {text}"
    );
    let done = journal::recent(&store, 1).await.unwrap();
    assert_eq!(done[0].outcome, Some(journal::Outcome::Done), "{done:?}");
    assert_eq!(
        done[0].new_fingerprint.as_deref(),
        Some(ssh_fp(&now).as_str())
    );
    seen.push(now.clone());

    step("the keys list and the audit log name the new key by its fingerprint");
    let (ok, text) = run.run(&["--json", "rotate", "--list"], "warn");
    assert!(ok, "{text}");
    let list: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["instanceId"] == ID && k["key"] == "ssh-key")
        .cloned()
        .unwrap();
    assert_eq!(row["fingerprint"], ssh_fp(&now), "{row}");
    assert!(row["rotatedAt"].is_string(), "{row}");
    let audit = clawkeeper_core::audit::recent(&store, 50).await.unwrap();
    let rotated = audit
        .iter()
        .find(|a| a.action == "rotation.done")
        .unwrap_or_else(|| panic!("no rotation.done: {audit:?}"));
    assert_eq!(rotated.instance_id.as_deref(), Some(ID));
    assert!(
        rotated.detail.contains(&ssh_fp(&now)) && rotated.detail.contains(&ssh_fp(&first)),
        "{rotated:?}"
    );

    step(
        "killed at every step boundary (before the step, and after its work): finished by --resume",
    );
    let marker = tmp.path().join("stopped");
    let mut scanned_while_stopped = false;
    for s in clawkeeper_core::rotation::Step::ALL {
        for after in [false, true] {
            let stop = format!(
                "ssh-key:{}{}",
                s.as_str(),
                if after { ":after" } else { "" }
            );
            let before = vault.read(&entry()).await.unwrap();
            let child = run.stopped_at(&stop, &marker);
            a_kept_key_logs_in(&store, &vault, &stop).await;
            if !scanned_while_stopped && stop == "ssh-key:revoke_old" {
                // Both keys in memory in the stopped CLI: not in any process's argv/env.
                scanned_while_stopped = true;
                let mut n = needles(&before);
                if let Ok(next) = vault.read(&staging(&entry())).await {
                    n.extend(needles(&next));
                }
                let n: Vec<&str> = n.iter().map(String::as_str).collect();
                let procs = scan::processes_containing(&n);
                assert!(procs.is_empty(), "keys in process arguments: {procs:?}");
            }
            // Remember the new key too (for the scan), if it was minted.
            if let Ok(next) = vault.read(&staging(&entry())).await {
                seen.push(next);
            }
            kill(child);
            a_kept_key_logs_in(&store, &vault, &format!("{stop}, killed")).await;
            let (ok, text) = run.run(&["rotate", "--resume"], "info");
            assert!(ok, "{stop}: {text}");
            let now = settled(&store, &vault, &host, &before, &stop).await;
            let last = journal::recent(&store, 1).await.unwrap();
            eprintln!(
                "{stop}: {:?} ({} → {})",
                last[0].outcome,
                ssh_fp(&before),
                ssh_fp(&now)
            );
            seen.push(now);
        }
    }
    assert!(scanned_while_stopped);

    step("sshd stopped between install and verify: waits with both keys, then finishes");
    let before = vault.read(&entry()).await.unwrap();
    kill(run.stopped_at("ssh-key:verify_new", &marker));
    let next = vault.read(&staging(&entry())).await.unwrap();
    seen.push(next.clone());
    host.inspect_ok("systemctl stop ssh.service").await.unwrap();
    let (ok, text) = run.run(&["rotate", "--resume"], "info");
    assert!(!ok, "it can't finish while the server is down: {text}");
    assert!(text.contains("still waiting"), "{text}");
    let waiting = journal::unfinished(&store).await.unwrap();
    assert_eq!(waiting.len(), 1, "still waiting: {waiting:?}");
    assert!(waiting[0].error.is_some(), "{waiting:?}");
    assert_eq!(
        vault.read(&entry()).await.unwrap().expose(),
        before.expose(),
        "the old key stays in the keychain"
    );
    assert_eq!(
        app_lines(&host).await,
        vec![public_line(&before), public_line(&next)],
        "both keys on the server meanwhile"
    );
    let (ok, text) = run.run(&["rotate", "ssh-key", "--instance", ID], "info");
    assert!(
        !ok,
        "a new rotation is refused while the server is down: {text}"
    );
    host.inspect_ok("systemctl start ssh.service")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(host.ssh_addr())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "sshd didn't come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, text) = run.run(&["rotate", "--resume"], "info");
    assert!(ok, "{text}");
    let now = settled(&store, &vault, &host, &before, "after sshd came back").await;
    assert_eq!(
        now.expose(),
        next.expose(),
        "the new key was kept and committed"
    );

    step("the new key can't run a command (refused before the revoke): undone, old key kept");
    let before = now;
    kill(run.stopped_at("ssh-key:verify_new", &marker));
    let next = vault.read(&staging(&entry())).await.unwrap();
    seen.push(next.clone());
    let line = public_line(&next);
    let blob = line.split_whitespace().nth(1).unwrap();
    // An option on the new line: sshd lets the key in but runs `false` whatever is asked.
    host.inspect_ok(&format!(
        "sed -i 's|^ssh-ed25519 {blob}|command=\"false\" ssh-ed25519 {blob}|' /root/.ssh/authorized_keys"
    ))
    .await
    .unwrap();
    assert_eq!(app_lines(&host).await.len(), 2);
    let (ok, text) = run.run(&["rotate", "--resume"], "info");
    assert!(ok, "{text}");
    assert!(text.contains("Undid"), "{text}");
    let now = settled(&store, &vault, &host, &next, "undone").await;
    assert_eq!(now.expose(), before.expose(), "the old key stays");
    let last = journal::recent(&store, 1).await.unwrap();
    assert_eq!(
        last[0].outcome,
        Some(journal::Outcome::RolledBack),
        "{last:?}"
    );
    let audit = clawkeeper_core::audit::recent(&store, 5).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "rotation.undone"),
        "{audit:?}"
    );

    step("no private key, old or new, on disk, in output, audit, journal or processes");
    let mut all: Vec<String> = Vec::new();
    for k in &seen {
        all.extend(needles(k));
    }
    all.sort();
    all.dedup();
    let n: Vec<&str> = all.iter().map(String::as_str).collect();
    let files = scan::files_containing(tmp.path(), &n);
    assert!(files.is_empty(), "keys in files: {files:?}");
    let procs = scan::processes_containing(&n);
    assert!(procs.is_empty(), "keys in process arguments: {procs:?}");
    let printed = run.printed.lock().unwrap().clone();
    assert!(printed.contains("rotation"), "debug output was captured");
    let audit = format!(
        "{:?}",
        clawkeeper_core::audit::recent(&store, 1000).await.unwrap()
    );
    let journal_text = format!("{:?}", journal::recent(&store, 1000).await.unwrap());
    for needle in &n {
        assert!(
            !printed.contains(needle),
            "a private key in the CLI's output"
        );
        assert!(!audit.contains(needle), "a private key in the audit log");
        assert!(
            !journal_text.contains(needle),
            "a private key in the journal"
        );
    }
    // On the server: only public lines were ever sent.
    let body_lines: Vec<String> = seen.iter().map(|k| needles(k)[1].clone()).collect();
    let pattern = body_lines
        .iter()
        .map(|l| format!("-e '{l}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let hits = host
        .inspect(&format!(
            "grep -rlF {pattern} /etc /root /var/log /tmp /home 2>/dev/null"
        ))
        .await
        .unwrap();
    assert!(
        hits.stdout.is_empty(),
        "keys on the server: {}",
        String::from_utf8_lossy(&hits.stdout)
    );
    for k in [&entry(), &staging(&entry())] {
        let _ = vault.delete(k).await;
    }
    host.stop().await;
}
