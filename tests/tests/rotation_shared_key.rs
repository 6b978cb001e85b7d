//! Rotation of this computer's model provider key while a server shares it, end to end with
//! real parts: this computer's real OpenClaw gateway (pinned runtime) and a test host
//! (systemd-nspawn, real sshd and systemd) set up through the real `clawkeeper-cli` with the
//! real OpenClaw from the offline npm mirror, **without a provider of its own** — so it was
//! given a copy of this computer's key. The **contract fake of OpenRouter** holds the keys
//! (management key: create, list, delete); the **contract fake model server**, on the test
//! host's link so both gateways reach it, serves exactly the keys that fake would serve now.
//! Every check of the server goes through an SSH tunnel to its loopback, as the app's chat.
//!
//! - The keys list says the key lives on the server too, and it rotates in one click:
//!   `clawkeeper-cli rotate provider-key` puts the new key in use on both assistants (no
//!   restart of either), both answer with it, the old key is deleted at OpenRouter, and on
//!   the server the new key is in its one file and the root-only source, nothing else.
//! - A server that doesn't answer (sshd stopped): the rotation is refused before anything
//!   changes, with what to do.
//! - Crash injection: the CLI killed (SIGKILL) before and after the install, after the
//!   verify and before the commit; meanwhile both assistants answer; `rotate --resume`
//!   finishes or undoes it, and both end on the keychain's key.
//! - The new key refused for good before the revoke (disabled at OpenRouter while the CLI
//!   was killed after the install): `rotate --resume` undoes the rotation and says so; the
//!   keychain and OpenRouter keep the old key, the new one is deleted there; both
//!   assistants' model calls carry the old key again; on the server the config is back on
//!   its steady file with the old key (and the root-only source), no tagged file, and the
//!   discarded key is nowhere (the final scan).
//! - The server's gateway restarted after the old key was deleted (before the commit): it
//!   comes up with the new key.
//! - "Set up again" on the server in the middle of a rotation puts the key being verified
//!   there, and the rotation still finishes.
//! - sshd stopped between the install and the verify: the rotation waits with both keys
//!   working, and finishes once the server answers.
//! - "Rotate all" (`rotate --all`): this computer's access token and the server's SSH key
//!   and access token at once, then the shared provider key; every one rotated, the old
//!   ones refused, and sshd accepted only two logins: the click's one session and the new
//!   SSH key's check.
//! - Planted-secret scan: no key, old or new, in the data folder, the CLI's output, the
//!   journal, the audit log or any process's arguments; on the server no old key anywhere
//!   in its files, the current one only in its two key files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::gateway::{self, chat, ClientInfo};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::gateway_token::{self, Verdict};
use clawkeeper_core::rotation::{driver, journal, staging};
use clawkeeper_core::server::ServerLink;
use clawkeeper_core::ssh::keys;
use clawkeeper_core::store::{ProviderKind, Store};
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth, REPLY_PREFIX};
use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use clawkeeper_tests::{env, scan};
use std::time::{Duration, Instant};

const ID: &str = "office";
const KEY_DIR: &str = "/etc/clawkeeper/openclaw-credentials";
const SOURCE: &str = "/etc/clawkeeper/credentials/provider-key";
const CONFIG: &str = "/var/lib/openclaw/openclaw.json";

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn entry() -> SecretRef {
    SecretRef::new(SecretKind::ProviderKey, "local")
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the server's assistant answers to `text` (a real completion through its gateway,
/// over an SSH tunnel, with whichever of its tokens the keychain holds).
async fn server_says(store: &Store, vault: &Vault, text: &str) -> Result<String, String> {
    let link = ServerLink::new(store.clone(), vault.clone(), ID);
    let tunnel = link.gateway_tunnel().await.map_err(|e| e.to_string())?;
    let token = vault
        .read(&SecretRef::new(SecretKind::GatewayToken, ID))
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = gateway::connect_once(
        &format!("ws://{}", tunnel.local_addr()),
        &token,
        &ClientInfo::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let said = chat::ask(&mut conn, "shared-key-test", text, Duration::from_secs(120)).await;
    conn.close().await;
    link.reset().await;
    match said {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(p)) => Err(p.message),
        Err(e) => Err(e.to_string()),
    }
}

/// Until the server's assistant answers `text` (its gateway may be starting).
async fn server_answers(store: &Store, vault: &Vault, text: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match server_says(store, vault, text).await {
            Ok(s) => {
                assert_eq!(s, format!("{REPLY_PREFIX}{text}"));
                return;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the server's assistant didn't answer {text:?} within {within:?}: {e}"
                );
                eprintln!("  server not answering yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The key files on the server (read inside the host): (path, sha256), and the config's
/// model key reference and the path its provider reads.
async fn server_keys(host: &TestHost) -> (Vec<(String, String)>, String, String) {
    let text = host
        .inspect_ok(&format!(
            "for f in {KEY_DIR}/provider-key* {KEY_DIR}/.provider-key* {SOURCE}; do [ -e \"$f\" ] && sha256sum \"$f\"; done; true"
        ))
        .await
        .unwrap();
    let mut files: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once("  ")?;
            Some((path.to_owned(), sum.to_owned()))
        })
        .collect();
    files.sort();
    let config: serde_json::Value =
        serde_json::from_str(&host.inspect_ok(&format!("cat {CONFIG}")).await.unwrap()).unwrap();
    let key = &config["models"]["providers"]["clawkeeper"]["apiKey"];
    let provider = key["provider"].as_str().unwrap_or_default().to_owned();
    let path = config["secrets"]["providers"][&provider]["path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (files, provider, path)
}

struct World<'a> {
    app: &'a Clawkeeper,
    vault: &'a Vault,
    openrouter: &'a ContractFakeOpenRouter,
    host: &'a TestHost,
}

impl World<'_> {
    /// The account's ordinary (non-management) keys.
    fn api_keys(&self) -> Vec<String> {
        self.openrouter
            .key_list()
            .into_iter()
            .filter(|(_, _, management)| !management)
            .map(|(_, hash, _)| hash)
            .collect()
    }

    /// After a rotation ended (either way): the keychain's key is the only one on the
    /// account, nothing staged or unfinished, both assistants answer, and the server has the
    /// keychain's key in its one file (named by the steady provider) and in the root-only
    /// source, no other key file. Returns the key in use.
    async fn settled(&self, other: &Secret, what: &str) -> Secret {
        let now = self.vault.read(&entry()).await.unwrap();
        assert!(
            self.openrouter.would_allow(now.expose()),
            "{what}: the keychain's key works"
        );
        if other.expose() != now.expose() {
            assert!(
                !self.openrouter.would_allow(other.expose()),
                "{what}: the other key is refused"
            );
        }
        assert_eq!(self.api_keys().len(), 1, "{what}: one key on the account");
        assert!(
            self.vault.read(&staging(&entry())).await.is_err(),
            "{what}: nothing staged"
        );
        let open = journal::unfinished(self.app.store()).await.unwrap();
        assert!(open.is_empty(), "{what}: unfinished: {open:?}");
        self.both_answer(what).await;
        let (files, provider, path) = server_keys(self.host).await;
        let sum = sha256(now.expose());
        assert!(
            files.iter().all(|(_, s)| *s == sum),
            "{what}: a key file on the server doesn't hold the keychain's key: {files:?}"
        );
        assert!(
            files.iter().any(|(p, _)| p == SOURCE),
            "{what}: the root-only source is there: {files:?}"
        );
        assert!(
            files.len() <= 2 && !files.iter().any(|(p, _)| p.contains(".r")),
            "{what}: no tagged or extra key file left: {files:?}"
        );
        assert_eq!(provider, "clawkeeper_provider_key", "{what}");
        assert!(
            files.iter().any(|(p, _)| *p == path) || path.starts_with("/run/credentials/"),
            "{what}: the config reads {path}, which holds the key ({files:?})"
        );
        now
    }

    /// Meanwhile (a rotation stopped anywhere): both assistants answer.
    async fn both_answer(&self, what: &str) {
        assert_eq!(
            self.app
                .chat_round_trip(what, Duration::from_secs(120))
                .await
                .unwrap(),
            format!("{REPLY_PREFIX}{what}")
        );
        server_answers(
            self.app.store(),
            self.vault,
            &format!("server {what}"),
            Duration::from_secs(60),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_key_shared_with_a_server_rotates_on_both() {
    let Some(runtime_dir) = env::test_runtime().filter(|_| env::isolated()) else {
        eprintln!(
            "skipped: needs scripts/test.sh (runtime cache, keychain, test hosts, npm mirror)"
        );
        return;
    };
    let namespace = format!("clawkeeper-test-shared-key-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let person = keys::generate_ed25519("person@laptop").unwrap();
    let host = TestHost::boot(HostOptions::with_key(
        keys::public_line(person.public_key()).unwrap(),
    ))
    .await
    .unwrap();
    let gw_ip = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await.unwrap();
    let openrouter = ContractFakeOpenRouter::start(true).await.unwrap();
    std::env::set_var("CLAWKEEPER_OPENROUTER_SITE", openrouter.origin());
    let first_text = openrouter.add_key("Clawkeeper");
    openrouter.set_limit(&first_text, Some(20.0), Some("monthly"));
    let management = openrouter.add_management_key();
    // On the test host's link: this computer's gateway and the server's both reach it.
    let model = ContractFakeModel::start_with_auth(
        (gw_ip, 0).into(),
        KeyAuth::Check(openrouter.key_check()),
        vec!["echo-1".into()],
        None,
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let policy = Policy {
        probe_every: Duration::from_secs(3),
        backoff_start: Duration::from_millis(500),
        ..Policy::default()
    };
    let app = Clawkeeper::open(paths.clone(), policy).await.unwrap();
    app.save_provider(ProviderInput {
        kind: ProviderKind::Openrouter,
        base_url: Some(model.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(first_text.clone()),
    })
    .await
    .unwrap();
    app.provider_management_save(Secret::new(management.clone()))
        .await
        .unwrap();
    app.start().await.unwrap();
    let vault = Vault::new(&namespace);
    let cli = RotationCli { paths: &paths };
    let setup = Cli {
        home: paths.data_dir.clone(),
        registry: mirror.url(),
    };
    let mut printed = String::new();
    let mut seen = vec![Secret::new(first_text.clone()), Secret::new(management)];

    step("the server: connected, set up without a provider of its own (the real OpenClaw)");
    let key_file = data.path().join("id_person");
    std::fs::write(&key_file, keys::to_openssh(&person).unwrap().expose()).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256().unwrap();
    setup
        .ok(
            &[
                "connect",
                "--host",
                &addr,
                "--id",
                ID,
                "--name",
                "Office server",
                "--key-file",
                key_file.to_str().unwrap(),
                "--fingerprint",
                &fp,
            ],
            None,
        )
        .unwrap();
    let t = Instant::now();
    setup.ok(&["provision", "--id", ID], None).unwrap();
    eprintln!("provisioned in {:.1?}", t.elapsed());
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let world = World {
        app: &app,
        vault: &vault,
        openrouter: &openrouter,
        host: &host,
    };
    let first = world
        .settled(&Secret::new(first_text.clone()), "before")
        .await;
    assert_eq!(first.expose(), first_text);
    let (files, _, path) = server_keys(&host).await;
    assert_eq!(
        files,
        vec![(SOURCE.to_owned(), sha256(&first_text))],
        "set up: the key is a root-only systemd credential"
    );
    assert!(path.starts_with("/run/credentials/"), "{path}");

    step("the keys list: the key lives on the server too, and rotates in one click");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let list: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["instanceId"] == "local" && k["key"] == "provider-key")
        .cloned()
        .unwrap_or_else(|| panic!("no provider-key row: {list}"));
    assert_eq!(row["how"], "one_click", "{row}");
    assert!(
        row["lives"].as_str().unwrap().contains("each server"),
        "{row}"
    );

    step("one click: the new key in use here and on the server, the old one deleted");
    let (ok, text) = cli.run(&["rotate", "provider-key"]);
    printed.push_str(&text);
    assert!(ok, "{text}");
    let now = world.settled(&first, "rotated once").await;
    assert_ne!(now.expose(), first.expose());
    assert_eq!(
        openrouter.hash_of(first.expose()),
        None,
        "the old key deleted"
    );
    assert_eq!(
        openrouter.limit_of(now.expose()),
        Some((Some(20.0), Some("monthly".into()))),
        "the new key has the old one's cap"
    );
    let (_, _, path) = server_keys(&host).await;
    assert_eq!(path, format!("{KEY_DIR}/provider-key"));
    let dead = model.chat_requests().iter().filter(|r| !r.auth_ok).count();
    assert_eq!(dead, 0, "no assistant called the model with a dead key");
    seen.push(now.clone());

    step("a server that doesn't answer: refused before anything changes");
    host.inspect_ok("systemctl stop ssh.service").await.unwrap();
    let (ok, text) = cli.run(&["rotate", "provider-key"]);
    printed.push_str(&text);
    assert!(!ok, "{text}");
    assert!(
        text.contains("Office server") && text.contains("Nothing was changed"),
        "{text}"
    );
    assert_eq!(vault.read(&entry()).await.unwrap().expose(), now.expose());
    assert!(vault.read(&staging(&entry())).await.is_err());
    assert_eq!(world.api_keys().len(), 1, "no key made");
    host.inspect_ok("systemctl start ssh.service")
        .await
        .unwrap();
    server_answers(app.store(), &vault, "sshd back", Duration::from_secs(60)).await;

    step("killed at step boundaries: both assistants answer meanwhile; finished or undone");
    let marker = data.path().join("stopped");
    for stop in [
        "provider-key:install",
        "provider-key:install:after",
        "provider-key:verify_new:after",
        "provider-key:verify_old",
        "provider-key:commit",
    ] {
        let before = vault.read(&entry()).await.unwrap();
        cli.kill_at(&["rotate", "provider-key"], stop, &marker);
        let held = driver::candidates(&vault, &entry()).await.unwrap();
        assert!(
            held.iter().any(|k| openrouter.would_allow(k.expose())),
            "{stop}: no key in the keychain works"
        );
        world.both_answer(&format!("stopped at {stop}")).await;
        let (ok, text) = cli.run(&["rotate", "--resume"]);
        printed.push_str(&text);
        assert!(ok, "{stop}: {text}");
        let now = world.settled(&before, stop).await;
        let rows = journal::recent(app.store(), 1).await.unwrap();
        eprintln!(
            "{stop}: {:?} ({} → {})",
            rows[0].outcome,
            before.fingerprint(),
            now.fingerprint()
        );
        seen.push(now);
    }

    step("the new key refused for good before the revoke: undone here and on the server");
    let before = vault.read(&entry()).await.unwrap();
    cli.kill_at(
        &["rotate", "provider-key"],
        "provider-key:verify_new",
        &marker,
    );
    let new = vault.read(&staging(&entry())).await.unwrap();
    let (files, provider, path) = server_keys(&host).await;
    assert_eq!(
        provider, "clawkeeper_provider_key_next",
        "installed on the server"
    );
    assert!(
        path.starts_with(&format!("{KEY_DIR}/provider-key.r"))
            && files
                .iter()
                .any(|(p, s)| *p == path && *s == sha256(new.expose())),
        "the server reads the new key from its tagged file: {path} {files:?}"
    );
    // Disabled at OpenRouter (by the person, say): the verify asks OpenRouter first.
    openrouter.set_disabled(new.expose(), true);
    let asked = model.chat_requests().len();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    printed.push_str(&text);
    // Nothing is left waiting, so the CLI ends well, and says it undid the rotation and why.
    assert!(ok, "{text}");
    assert!(
        text.contains("Undid the interrupted rotation of the model provider key")
            && text.contains("the old key is kept")
            && text.contains("your provider refused the new key"),
        "{text}"
    );
    let rows = journal::recent(app.store(), 1).await.unwrap();
    assert_eq!(rows[0].outcome, Some(journal::Outcome::RolledBack));
    assert_eq!(
        vault.read(&entry()).await.unwrap().expose(),
        before.expose(),
        "the keychain keeps the old key"
    );
    assert!(openrouter.would_allow(before.expose()), "the old key works");
    assert_eq!(
        openrouter.hash_of(new.expose()),
        None,
        "the new key, disabled, deleted at OpenRouter all the same"
    );
    // One key on the account, nothing staged, both answer, the server on the steady
    // provider with the old key in its file and the root-only source, no tagged file.
    let now = world.settled(&before, "undone").await;
    assert_eq!(now.expose(), before.expose());
    let (_, _, path) = server_keys(&host).await;
    assert_eq!(path, format!("{KEY_DIR}/provider-key"));
    // Which key each assistant's model calls carried since: the old one.
    let calls = model.chat_requests();
    for prompt in ["undone", "server undone"] {
        let keys: Vec<_> = calls[asked..]
            .iter()
            .filter(|r| r.prompt.as_deref() == Some(prompt))
            .map(|r| r.key_sha256.clone())
            .collect();
        assert!(!keys.is_empty(), "no model call for {prompt:?}");
        assert!(
            keys.iter()
                .all(|k| k.as_deref() == Some(sha256(before.expose()).as_str())),
            "{prompt:?}: a model call with another key than the old one"
        );
    }
    seen.push(new);

    step("the server's gateway restarted after the old key was deleted: it comes up with the new key");
    let before = vault.read(&entry()).await.unwrap();
    cli.kill_at(&["rotate", "provider-key"], "provider-key:commit", &marker);
    assert!(
        !openrouter.would_allow(before.expose()),
        "the old key is deleted"
    );
    host.inspect_ok("systemctl restart clawkeeper-gateway.service")
        .await
        .unwrap();
    server_answers(
        app.store(),
        &vault,
        "restarted mid-rotation",
        Duration::from_secs(180),
    )
    .await;
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    printed.push_str(&text);
    assert!(ok, "{text}");
    seen.push(world.settled(&before, "after the restart").await);

    step("\"Set up again\" on the server mid-rotation: it gets the key being verified");
    let before = vault.read(&entry()).await.unwrap();
    cli.kill_at(
        &["rotate", "provider-key"],
        "provider-key:revoke_old",
        &marker,
    );
    let new = vault.read(&staging(&entry())).await.unwrap();
    setup.ok(&["provision", "--id", ID], None).unwrap();
    let (files, _, path) = server_keys(&host).await;
    assert!(
        files
            .iter()
            .any(|(p, s)| p == SOURCE && *s == sha256(new.expose())),
        "set up again with the key being verified: {files:?}"
    );
    assert!(path.starts_with("/run/credentials/"), "{path}");
    server_answers(
        app.store(),
        &vault,
        "set up again",
        Duration::from_secs(180),
    )
    .await;
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    printed.push_str(&text);
    assert!(ok, "{text}");
    let now = world.settled(&before, "after setting up again").await;
    assert_eq!(now.expose(), new.expose());
    seen.push(now);

    step("sshd stopped between install and verify: it waits with both keys, then finishes");
    let before = vault.read(&entry()).await.unwrap();
    cli.kill_at(
        &["rotate", "provider-key"],
        "provider-key:verify_new",
        &marker,
    );
    host.inspect_ok("systemctl stop ssh.service").await.unwrap();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    printed.push_str(&text);
    assert!(!ok && text.contains("still waiting"), "{text}");
    let waiting = vault.read(&staging(&entry())).await.unwrap();
    assert!(openrouter.would_allow(before.expose()), "the old key works");
    assert!(
        openrouter.would_allow(waiting.expose()),
        "the new key works"
    );
    assert_eq!(
        app.chat_round_trip("while waiting", Duration::from_secs(120))
            .await
            .unwrap(),
        format!("{REPLY_PREFIX}while waiting")
    );
    host.inspect_ok("systemctl start ssh.service")
        .await
        .unwrap();
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    printed.push_str(&text);
    assert!(ok, "{text}");
    let now = world.settled(&before, "after sshd came back").await;
    assert_eq!(now.expose(), waiting.expose());
    seen.push(now.clone());

    step("Rotate all: this computer's keys and the server's at once, the shared provider key after; one SSH login for the server besides the SSH key's checks");
    let old = |kind, instance: &'static str| {
        let vault = vault.clone();
        async move { vault.read(&SecretRef::new(kind, instance)).await.unwrap() }
    };
    let before = vault.read(&entry()).await.unwrap();
    let (old_token, old_server_token, old_ssh) = (
        old(SecretKind::GatewayToken, "local").await,
        old(SecretKind::GatewayToken, ID).await,
        old(SecretKind::SshKey, ID).await,
    );
    let since = host.inspect_ok("date +%s").await.unwrap().trim().to_owned();
    let (ok, text) = cli.run(&["--json", "rotate", "--all"]);
    printed.push_str(&text);
    assert!(ok, "{text}");
    // The logins sshd accepted meanwhile: the click's one session, and the new SSH key's
    // check (the old key's was refused). The checks and the other rotations made none.
    let logins = host
        .inspect_ok(&format!(
            "journalctl --since @{since} -o cat | grep -c 'Accepted publickey' || true"
        ))
        .await
        .unwrap();
    assert_eq!(logins.trim(), "2", "SSH logins during Rotate all");
    let results: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let rotated: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "rotated")
        .map(|r| {
            format!(
                "{} {}",
                r["instanceId"].as_str().unwrap(),
                r["key"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rotated,
        [
            "local gateway-token",
            "local provider-key",
            &format!("{ID} ssh-key"),
            &format!("{ID} gateway-token")
        ],
        "every one-click key rotated, in the keys list's order: {text}"
    );
    let now = world.settled(&before, "after Rotate all").await;
    assert_ne!(now.expose(), before.expose());
    for (what, kind, instance, was) in [
        (
            "this computer's access token",
            SecretKind::GatewayToken,
            "local",
            &old_token,
        ),
        (
            "the server's access token",
            SecretKind::GatewayToken,
            ID,
            &old_server_token,
        ),
        ("the server's SSH key", SecretKind::SshKey, ID, &old_ssh),
    ] {
        assert_ne!(
            old(kind, instance).await.expose(),
            was.expose(),
            "{what} changed"
        );
    }
    let url = app.instance().url();
    assert_eq!(
        gateway_token::try_token(&url, &old_token).await,
        Verdict::Refused,
        "this computer's assistant refuses the old token"
    );
    let link = ServerLink::new(app.store().clone(), vault.clone(), ID);
    let tunnel = link.gateway_tunnel().await.unwrap();
    let there = format!("ws://{}", tunnel.local_addr());
    assert_eq!(
        gateway_token::try_token(&there, &old_server_token).await,
        Verdict::Refused,
        "the server's assistant refuses its old token"
    );
    assert_eq!(
        gateway_token::try_token(&there, &old(SecretKind::GatewayToken, ID).await).await,
        Verdict::Accepted,
        "the server's assistant takes the keychain's token"
    );
    drop(tunnel);
    link.reset().await;
    let authorized =
        std::fs::read_to_string(host.root().join("root/.ssh/authorized_keys")).unwrap();
    let blob = |k: &Secret| {
        let line = keys::public_line(keys::parse_private(k, None).unwrap().public_key()).unwrap();
        line.split_whitespace().nth(1).unwrap().to_owned()
    };
    assert!(
        !authorized.contains(&blob(&old_ssh)),
        "the old SSH key is gone from the server"
    );
    assert!(
        authorized.contains(&blob(&old(SecretKind::SshKey, ID).await)),
        "the new SSH key is on the server"
    );
    seen.extend([now.clone(), old_token, old_server_token]);

    step("no key on disk, in output, the journal, the audit log, process arguments; on the server only the current one, in its files");
    let needles: Vec<String> = seen.iter().map(|s| s.expose().to_owned()).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    scan::assert_nowhere(data.path(), app.store(), &needles).await;
    for n in &needles {
        assert!(!printed.contains(n), "a key in the CLI's output");
    }
    let old: Vec<&str> = needles
        .iter()
        .copied()
        .filter(|n| *n != now.expose())
        .collect();
    for dir in ["etc", "var/lib/openclaw", "root", "tmp", "var/tmp", "home"] {
        let found = scan::files_containing(&host.root().join(dir), &old);
        assert!(found.is_empty(), "old keys on the server: {found:?}");
    }
    let mut current: Vec<String> =
        scan::files_containing(&host.root().join("etc"), &[now.expose()])
            .into_iter()
            .chain(scan::files_containing(
                &host.root().join("var/lib/openclaw"),
                &[now.expose()],
            ))
            .map(|p| format!("/{}", p.strip_prefix(host.root()).unwrap().display()))
            .collect();
    current.sort();
    assert_eq!(
        current,
        vec![SOURCE.to_owned(), format!("{KEY_DIR}/provider-key")],
        "the current key only in its two files on the server"
    );
    app.stop().await.unwrap();
}
