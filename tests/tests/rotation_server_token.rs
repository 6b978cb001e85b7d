//! Rotation of a server's gateway token, end to end with real parts: a test host (systemd-
//! nspawn, real sshd and systemd) set up through the real `clawkeeper-cli` with the real
//! OpenClaw from the offline npm mirror, the real keychain, and every check of a token
//! made through an SSH tunnel to the server's loopback, as the app's chat goes. One host
//! for the whole scenario (its gateway takes ~20 s to start); named steps:
//!
//! - A server set up the earlier way (token in a systemd credential, read from the copy
//!   made at start): the rotation refuses with what to do ("Set the server up again"),
//!   nothing changed; setting it up again moves the token to a live file without a new
//!   token, and the same token works.
//! - `clawkeeper-cli rotate gateway-token --instance srv`: the keychain's token accepted on
//!   WebSocket and HTTP (`/tools/invoke`), the old refused on both; on the server one token
//!   file (holding the keychain's token) and the config as provisioning writes it.
//! - Crash injection: the CLI killed (SIGKILL) at every step boundary (before the step, and
//!   after its work but before the journal recorded it), then `rotate --resume`: meanwhile
//!   a token the keychain holds works; afterwards the same end state.
//! - The gateway restarted (systemctl) after the install and after the revoke: it comes up
//!   with the token being verified, which the app holds (the chat answers meanwhile).
//! - sshd stopped between install and verify: the rotation waits (both tokens in the
//!   keychain), and finishes once sshd is back.
//! - Planted-secret scan: no token, old or new, in the data folder, the CLI's output at
//!   debug level, the audit log, the journal, or any process's arguments or environment;
//!   on the server no old token anywhere, the current one in its one file only (not in the
//!   unit, the environment or any process's arguments).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::rotation::gateway_token::{try_token, Verdict};
use clawkeeper_core::rotation::{driver, journal, staging, Step};
use clawkeeper_core::server::ServerLink;
use clawkeeper_core::ssh::keys;
use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::fake_model::{ContractFakeModel, DEFAULT_MODEL_IDS, REPLY_PREFIX};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use clawkeeper_tests::{env, scan};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ID: &str = "srv";
const TOKEN_DIR: &str = "/etc/clawkeeper/openclaw-credentials";
const CONFIG: &str = "/var/lib/openclaw/openclaw.json";
const UNIT: &str = "clawkeeper-gateway.service";

fn step(name: &str) {
    eprintln!("\n=== {name} ({})", now_s());
}

fn now_s() -> String {
    format!(
        "{:.1}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            % 10_000.0
    )
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::GatewayToken, ID)
}

struct Run<'a> {
    cli: &'a Cli,
    /// Everything the CLI printed (scanned for tokens at the end).
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
            .cmd(&["rotate", "gateway-token", "--instance", ID])
            .env("CLAWKEEPER_TEST_ROTATION_STOP", stop)
            .env("CLAWKEEPER_TEST_ROTATION_MARKER", marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
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

/// What the server's gateway says to `token`, through a tunnel over SSH (the app's way).
async fn probe(store: &Store, vault: &Vault, token: &Secret) -> Verdict {
    let t = Instant::now();
    let link = ServerLink::new(store.clone(), vault.clone(), ID);
    let tunnel = match link.gateway_tunnel().await {
        Ok(t) => t,
        Err(e) => return Verdict::Unknown(e.to_string()),
    };
    let v = try_token(&format!("ws://{}", tunnel.local_addr()), token).await;
    link.reset().await;
    eprintln!(
        "  probe {}: {v:?} in {:.2?}",
        token.fingerprint(),
        t.elapsed()
    );
    v
}

/// Until `token` gets `want` (the gateway may be starting).
async fn until(store: &Store, vault: &Vault, token: &Secret, want: Verdict, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = probe(store, vault, token).await;
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {v:?}, not {want:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn sha256(s: &Secret) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.expose().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token files on the server (read inside the host, not over SSH): (name, sha256).
async fn token_files(host: &TestHost) -> Vec<(String, String)> {
    let text = host
        .inspect_ok(&format!(
            "cd {TOKEN_DIR} && for f in * .[!.]*; do [ -e \"$f\" ] && sha256sum \"$f\"; done; true"
        ))
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (sum, name) = l.split_once("  ")?;
            Some((name.to_owned(), sum.to_owned()))
        })
        .collect();
    out.sort();
    out
}

async fn server_config(host: &TestHost) -> serde_json::Value {
    serde_json::from_str(&host.inspect_ok(&format!("cat {CONFIG}")).await.unwrap()).unwrap()
}

/// Put `text` in `path` on the server, through the app's SSH (stdin; never an argument).
async fn put_on_server(store: &Store, vault: &Vault, path: &str, text: &str) {
    use clawkeeper_core::remote::Remote;
    let s = clawkeeper_core::server::open_session(store, vault, ID)
        .await
        .unwrap();
    let out = s
        .run(&format!("umask 077; cat > {path}"), Some(text.as_bytes()))
        .await
        .unwrap();
    assert!(out.success());
    s.close().await;
}

/// The state after a rotation ended (either way): the keychain's token accepted on WS and
/// HTTP; `other` (if different) refused on both; on the server exactly one token file, the
/// keychain's, named by the config the way provisioning writes it; no staging entry;
/// nothing unfinished.
async fn settled(
    store: &Store,
    vault: &Vault,
    host: &TestHost,
    other: &Secret,
    what: &str,
) -> Secret {
    let now = vault.read(&entry()).await.unwrap();
    assert_eq!(
        probe(store, vault, &now).await,
        Verdict::Accepted,
        "{what}: the keychain's token"
    );
    if other.expose() != now.expose() {
        assert_eq!(
            probe(store, vault, other).await,
            Verdict::Refused,
            "{what}: the other token"
        );
    }
    assert_eq!(
        token_files(host).await,
        vec![("gateway-token".to_owned(), sha256(&now))],
        "{what}: the token files on the server"
    );
    let c = server_config(host).await;
    assert_eq!(
        c["gateway"]["auth"]["token"],
        serde_json::json!({"source": "file", "provider": "clawkeeper_gateway_token", "id": "value"}),
        "{what}"
    );
    assert_eq!(
        c["secrets"]["providers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["clawkeeper_gateway_token", "clawkeeper_provider_key"],
        "{what}"
    );
    assert!(
        vault.read(&staging(&entry())).await.is_err(),
        "{what}: no staging entry left"
    );
    let ledger = journal::unfinished(store).await.unwrap();
    assert!(ledger.is_empty(), "{what}: unfinished: {ledger:?}");
    now
}

/// A token the keychain holds works on both (the invariant while a rotation is stopped
/// anywhere); returns it.
async fn a_kept_token_works(store: &Store, vault: &Vault, what: &str) -> Secret {
    let held = driver::candidates(vault, &entry()).await.unwrap();
    for t in &held {
        if probe(store, vault, t).await == Verdict::Accepted {
            return t.clone();
        }
    }
    panic!(
        "{what}: no token in the keychain works ({} held)",
        held.len()
    );
}

/// The gateway restarted by systemd, then live again.
async fn restart_gateway(host: &TestHost) -> Duration {
    let t = Instant::now();
    host.inspect_ok(&format!("systemctl restart {UNIT}"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = host
            .inspect("curl -fsS --max-time 3 http://127.0.0.1:18789/health || true")
            .await
            .unwrap();
        if h.status.success() && String::from_utf8_lossy(&h.stdout).contains("\"live\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway didn't come back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_gateway_token_rotation_end_to_end_and_crash_safe() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts, npm mirror)");
        return;
    }
    let started = Instant::now();
    let namespace = format!("clawkeeper-test-rotsrv-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    let person = keys::generate_ed25519("person@laptop").unwrap();
    let host = TestHost::boot(HostOptions::with_key(
        keys::public_line(person.public_key()).unwrap(),
    ))
    .await
    .unwrap();
    let gw_ip = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await.unwrap();
    let provider_key = "sk-planted-srvtok-provider-key-5d1e";
    let model = ContractFakeModel::start_on(
        (gw_ip, 0).into(),
        provider_key.into(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("data");
    let cli = Cli {
        home: home.clone(),
        registry: mirror.url(),
    };
    let run = Run {
        cli: &cli,
        printed: Default::default(),
    };
    let vault = Vault::new(&namespace);
    let key_file = tmp.path().join("id_person");
    std::fs::write(&key_file, keys::to_openssh(&person).unwrap().expose()).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    step("connect, provider, provision (the real OpenClaw from the mirror)");
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256().unwrap();
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
    let t = Instant::now();
    cli.ok(&["provision", "--id", ID], None).unwrap();
    eprintln!("provisioned in {:.1?}", t.elapsed());
    let (store, _) = Store::open(&home.join("clawkeeper.db")).await.unwrap();
    let first = vault.read(&entry()).await.unwrap();
    until(
        &store,
        &vault,
        &first,
        Verdict::Accepted,
        Duration::from_secs(60),
    )
    .await;
    let mut seen = vec![first.clone()];
    // The token is a live file of the service user; no systemd credential, no env token.
    assert_eq!(
        token_files(&host).await,
        vec![("gateway-token".to_owned(), sha256(&first))]
    );
    let modes = host
        .inspect_ok(&format!(
            "stat -c '%a %U %n' {TOKEN_DIR} {TOKEN_DIR}/gateway-token; ls -A /etc/clawkeeper/credentials"
        ))
        .await
        .unwrap();
    assert!(
        modes.contains(&format!("700 openclaw {TOKEN_DIR}\n"))
            && modes.contains(&format!("600 openclaw {TOKEN_DIR}/gateway-token\n"))
            && !modes.contains("\ngateway-token"),
        "{modes}"
    );

    step("a server set up the earlier way (token in a systemd credential): refused, then set up again");
    host.inspect_ok(&format!(
        "set -e
         install -m 0600 -o root -g root {TOKEN_DIR}/gateway-token /etc/clawkeeper/credentials/gateway-token
         u=/etc/systemd/system/{UNIT}
         sed -i -e '/^ReadOnlyPaths=/d' -e 's|^LoadCredential=provider-key|LoadCredential=gateway-token:/etc/clawkeeper/credentials/gateway-token\\nLoadCredential=provider-key|' $u
         sed -i 's|{TOKEN_DIR}/gateway-token|/run/credentials/{UNIT}/gateway-token|' {CONFIG}
         chown openclaw:openclaw {CONFIG}
         chmod 600 {CONFIG}
         rm -rf {TOKEN_DIR}
         systemctl daemon-reload"
    ))
    .await
    .unwrap();
    let took = restart_gateway(&host).await;
    eprintln!("gateway restart (old layout): {took:.1?}");
    until(
        &store,
        &vault,
        &first,
        Verdict::Accepted,
        Duration::from_secs(60),
    )
    .await;
    let (ok, text) = run.run(&["rotate", "gateway-token", "--instance", ID], "info");
    assert!(!ok, "{text}");
    assert!(text.contains("Set the server up again"), "{text}");
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), first.expose());
    assert!(vault.read(&staging(&entry())).await.is_err());
    assert_eq!(
        probe(&store, &vault, &first).await,
        Verdict::Accepted,
        "the token in use still works"
    );
    let last = journal::recent(&store, 1).await.unwrap();
    assert_eq!(
        last[0].outcome,
        Some(journal::Outcome::RolledBack),
        "{last:?}"
    );
    let t = Instant::now();
    cli.ok(&["provision", "--id", ID], None).unwrap();
    eprintln!("set up again (migrated) in {:.1?}", t.elapsed());
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), first.expose());
    until(
        &store,
        &vault,
        &first,
        Verdict::Accepted,
        Duration::from_secs(60),
    )
    .await;
    let unit = host
        .inspect_ok(&format!(
            "cat /etc/systemd/system/{UNIT}; ls -A /etc/clawkeeper/credentials"
        ))
        .await
        .unwrap();
    assert!(!unit.contains("gateway-token"), "{unit}");
    settled(&store, &vault, &host, &first, "migrated").await;

    step("the keys list offers the server's token in one click");
    let (ok, text) = run.run(&["--json", "rotate", "--list"], "warn");
    assert!(ok, "{text}");
    let list: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["instanceId"] == ID && k["key"] == "gateway-token")
        .cloned()
        .unwrap_or_else(|| panic!("no gateway-token row for {ID}: {list}"));
    assert_eq!(row["how"], "one_click", "{row}");

    step("rotate it with the CLI (debug logging on: its output is scanned for tokens)");
    let t = Instant::now();
    let (ok, text) = run.run(&["rotate", "gateway-token", "--instance", ID], "debug");
    let wall = t.elapsed();
    assert!(ok, "{text}");
    eprintln!(
        "one server token rotation, CLI wall time: {:.2} s",
        wall.as_secs_f64()
    );
    let now = settled(&store, &vault, &host, &first, "one rotation").await;
    assert_ne!(now.expose(), first.expose());
    let done = journal::recent(&store, 1).await.unwrap();
    assert_eq!(done[0].outcome, Some(journal::Outcome::Done), "{done:?}");
    let log = host
        .inspect_ok(
            "grep -a -E 'gateway/reload' /var/lib/openclaw/logs/openclaw.log | tail -n 12 | cut -c1-400",
        )
        .await
        .unwrap();
    eprintln!("the gateway's reload lines:\n{log}");
    seen.push(now.clone());

    step(
        "killed at every step boundary (before the step, and after its work): finished by --resume",
    );
    let marker = tmp.path().join("stopped");
    let mut scanned_while_stopped = false;
    for s in Step::ALL {
        for after in [false, true] {
            let stop = format!(
                "gateway-token:{}{}",
                s.as_str(),
                if after { ":after" } else { "" }
            );
            let t = Instant::now();
            let before = vault.read(&entry()).await.unwrap();
            let child = run.stopped_at(&stop, &marker);
            eprintln!("  stopped at {stop} after {:.1?}", t.elapsed());
            if let Ok(next) = vault.read(&staging(&entry())).await {
                seen.push(next);
            }
            if !scanned_while_stopped && stop == "gateway-token:revoke_old" {
                // Both tokens in memory in the stopped CLI: not in any process's argv/env.
                scanned_while_stopped = true;
                let mut n = vec![before.expose().to_owned()];
                if let Ok(next) = vault.read(&staging(&entry())).await {
                    n.push(next.expose().to_owned());
                }
                let n: Vec<&str> = n.iter().map(String::as_str).collect();
                let procs = scan::processes_containing(&n);
                assert!(procs.is_empty(), "tokens in process arguments: {procs:?}");
            }
            kill(child);
            a_kept_token_works(&store, &vault, &format!("{stop}, killed")).await;
            eprintln!("  a kept token works: {:.1?}", t.elapsed());
            let (ok, text) = run.run(&["rotate", "--resume"], "info");
            eprintln!("  resumed: {:.1?}", t.elapsed());
            assert!(ok, "{stop}: {text}");
            let now = settled(&store, &vault, &host, &before, &stop).await;
            let last = journal::recent(&store, 1).await.unwrap();
            eprintln!(
                "{stop}: {:?} ({} → {}) in {:.1?}",
                last[0].outcome,
                before.fingerprint(),
                now.fingerprint(),
                t.elapsed()
            );
            seen.push(now);
        }
    }
    assert!(scanned_while_stopped);

    step("the gateway restarted after the install, and after the revoke: it has the token being verified");
    for at in ["verify_new", "verify_old"] {
        let before = vault.read(&entry()).await.unwrap();
        kill(run.stopped_at(&format!("gateway-token:{at}"), &marker));
        let next = vault.read(&staging(&entry())).await.unwrap();
        seen.push(next.clone());
        let took = restart_gateway(&host).await;
        eprintln!("gateway restart at {at}: {took:.1?}");
        until(
            &store,
            &vault,
            &next,
            Verdict::Accepted,
            Duration::from_secs(60),
        )
        .await;
        let kept = a_kept_token_works(&store, &vault, at).await;
        assert_eq!(kept.expose(), next.expose(), "{at}");
        if at == "verify_old" {
            // The old token's file is gone: only the new one works, and the app's chat
            // (which tries the staging token) still answers.
            assert_eq!(
                probe(&store, &vault, &before).await,
                Verdict::Refused,
                "{at}"
            );
            let reply = cli
                .ok(&["chat", "--server", ID, "hello mid-rotation"], None)
                .unwrap();
            assert_eq!(reply.trim(), format!("{REPLY_PREFIX}hello mid-rotation"));
        }
        let (ok, text) = run.run(&["rotate", "--resume"], "info");
        assert!(ok, "{at}: {text}");
        let now = settled(&store, &vault, &host, &before, at).await;
        assert_eq!(now.expose(), next.expose(), "{at}: the new token was kept");
    }

    step("sshd stopped between install and verify: waits with both tokens, then finishes");
    let before = vault.read(&entry()).await.unwrap();
    kill(run.stopped_at("gateway-token:verify_new", &marker));
    let next = vault.read(&staging(&entry())).await.unwrap();
    seen.push(next.clone());
    host.inspect_ok("systemctl stop ssh.service").await.unwrap();
    let t = Instant::now();
    let (ok, text) = run.run(&["rotate", "--resume"], "info");
    eprintln!(
        "resume with the server unreachable took {:.1?}",
        t.elapsed()
    );
    assert!(
        !ok,
        "it can't finish while the server is unreachable: {text}"
    );
    assert!(text.contains("still waiting"), "{text}");
    let waiting = journal::unfinished(&store).await.unwrap();
    assert_eq!(waiting.len(), 1, "still waiting: {waiting:?}");
    assert_eq!(
        vault.read(&entry()).await.unwrap().expose(),
        before.expose(),
        "the old token stays in the keychain"
    );
    assert!(vault.read(&staging(&entry())).await.is_ok());
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
    assert_eq!(now.expose(), next.expose(), "the new token was committed");

    step("the app's chat uses the keychain's token");
    let reply = cli
        .ok(&["chat", "--server", ID, "hello after rotating"], None)
        .unwrap();
    assert_eq!(reply.trim(), format!("{REPLY_PREFIX}hello after rotating"));

    step("no token, old or new, on disk, in output, audit, journal or processes; on the server only the current one, in its file");
    let current = vault.read(&entry()).await.unwrap();
    let mut all: Vec<String> = seen.iter().map(|s| s.expose().to_owned()).collect();
    all.sort();
    all.dedup();
    eprintln!("{} distinct tokens seen", all.len());
    let n: Vec<&str> = all.iter().map(String::as_str).collect();
    let files = scan::files_containing(tmp.path(), &n);
    assert!(files.is_empty(), "tokens in files: {files:?}");
    let procs = scan::processes_containing(&n);
    assert!(procs.is_empty(), "tokens in process arguments: {procs:?}");
    let printed = run.printed.lock().unwrap().clone();
    assert!(printed.contains("rotat"), "debug output was captured");
    let audit = format!(
        "{:?}",
        clawkeeper_core::audit::recent(&store, 1000).await.unwrap()
    );
    let journal_text = format!("{:?}", journal::recent(&store, 1000).await.unwrap());
    for needle in &n {
        assert!(!printed.contains(needle), "a token in the CLI's output");
        assert!(!audit.contains(needle), "a token in the audit log");
        assert!(!journal_text.contains(needle), "a token in the journal");
    }
    // On the server: the needles in a file outside the searched folders.
    let old: Vec<&str> = n
        .iter()
        .copied()
        .filter(|t| *t != current.expose())
        .collect();
    put_on_server(&store, &vault, "/ck-old-tokens", &(old.join("\n") + "\n")).await;
    put_on_server(
        &store,
        &vault,
        "/ck-current-token",
        &format!("{}\n", current.expose()),
    )
    .await;
    let search = "/etc /var /root /home /tmp /run /opt";
    let old_hits = host
        .inspect(&format!(
            "grep -rlaF -f /ck-old-tokens {search} 2>/dev/null; \
             for p in /proc/[0-9]*; do grep -laF -f /ck-old-tokens $p/cmdline $p/environ 2>/dev/null; done; true"
        ))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&old_hits.stdout).trim(),
        "",
        "old tokens left on the server"
    );
    let current_hits = host
        .inspect(&format!(
            "grep -rlaF -f /ck-current-token {search} 2>/dev/null; \
             for p in /proc/[0-9]*; do grep -laF -f /ck-current-token $p/cmdline $p/environ 2>/dev/null; done; true"
        ))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&current_hits.stdout).trim(),
        format!("{TOKEN_DIR}/gateway-token"),
        "the current token is in its file only"
    );
    let env = host
        .inspect_ok(&format!(
            "systemctl show -p Environment -p EnvironmentFiles {UNIT}; \
             tr '\\0' '\\n' </proc/$(systemctl show -p MainPID --value {UNIT})/environ | cut -d= -f1"
        ))
        .await
        .unwrap();
    assert!(!env.contains("OPENCLAW_GATEWAY_TOKEN"), "{env}");
    host.inspect_ok("rm -f /ck-old-tokens /ck-current-token")
        .await
        .unwrap();
    for k in [&entry(), &staging(&entry())] {
        let _ = vault.delete(k).await;
    }
    eprintln!("whole test: {:.1?}", started.elapsed());
    store.close().await;
    host.stop().await;
}
