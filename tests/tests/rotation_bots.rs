//! The chat bots' tokens (guided rotations), end to end.
//!
//! Telegram, against the real OpenClaw gateway (pinned runtime, its Telegram channel pointed
//! at the **contract fake of the Telegram Bot API** through `channels.telegram.apiRoot`) and
//! the real keychain (gnome-keyring in the test session). One gateway; named steps:
//! - the person's channel (plain-text token in the settings) survives Clawkeeper writing
//!   the settings at start, and runs (the fake sees its polling);
//! - the keys list shows the token as guided, "in plain text";
//! - a token of another bot, or something that isn't a token, is refused and nothing
//!   changes (settings byte for byte, keychain, journal);
//! - BotFather's `/revoke` (the fake's): the channel goes down; `clawkeeper-cli rotate
//!   telegram-token --new-key-stdin` checks the new token, moves the token into the
//!   keychain (the settings name it, never hold it), the gateway restarts the channel, which
//!   polls with the new token; the old one is refused;
//! - a second rotation from the keychain, then a restart of the assistant: the channel
//!   comes up with the newest token;
//! - no token, old or new, on disk, in logs, in a process's arguments, the journal or the
//!   audit log.
//!
//! Discord, the same way against the real gateway with OpenClaw's Discord plugin
//! (`@openclaw/discord`, installed offline the way a person adds it: `openclaw plugins
//! install`, from the npm cache scripts/discord-plugin.sh filled) and the **contract fake
//! of Discord** (REST and WebSocket gateway on one loopback port; the gateway gets
//! `DISCORD_API_URL` through Clawkeeper's environment): the channel connects (IDENTIFY →
//! READY); listed as guided; another bot's token, a malformed one, one Discord never issued
//! and the one in use are refused and nothing changes; Reset Token at the fake (the old
//! token's session closed 4004, the channel down); the new token is checked, moved into the
//! keychain, the channel restarts and IDENTIFYs with it, runs and is connected, the old one
//! refused; no token on disk, in logs, process arguments, the journal or the audit log.
//! And the token check alone while the assistant isn't running.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::gateway::{self, ClientInfo};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::bot_token::{BotApi, Channel, ChannelState, Identity};
use clawkeeper_core::rotation::journal::{self, Outcome};
use clawkeeper_core::rotation::{staging, KeyId};
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::Secret;
use clawkeeper_tests::discord_plugin;
use clawkeeper_tests::fake_discord::{ContractFakeDiscord, GatewayEvent};
use clawkeeper_tests::fake_model::ContractFakeModel;
use clawkeeper_tests::fake_telegram::ContractFakeTelegram;
use clawkeeper_tests::rotation_cli::RotationCli;
use clawkeeper_tests::{env, scan};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const BOT_ID: i64 = 700_100_200;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

fn tg_entry() -> SecretRef {
    SecretRef::new(SecretKind::TelegramBotToken, "local")
}

/// The settings file with the person's channels in it (before Clawkeeper's first start).
fn write_channels(path: &Path, channels: Value) {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // What else is there (a plugin's `plugins.entries`) is kept.
    let mut cfg: Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    cfg["channels"] = channels;
    std::fs::write(path, cfg.to_string()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn config(app: &Clawkeeper) -> Value {
    serde_json::from_slice(&std::fs::read(app.instance().config_path()).unwrap()).unwrap()
}

/// Until the fake has answered `at_least` more polls (`getUpdates`) made with `token`.
async fn polled_with(fake: &ContractFakeTelegram, token: &str, at_least: usize, what: &str) {
    let start = fake
        .answered_with(token)
        .iter()
        .filter(|m| *m == "getUpdates")
        .count();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = fake
            .answered_with(token)
            .iter()
            .filter(|m| *m == "getUpdates")
            .count();
        if n >= start + at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the channel never polled with the token ({n} polls; calls {:?})",
            fake.calls()
                .iter()
                .map(|c| (c.method.clone(), c.status))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A chat channel as the gateway reports it.
async fn channel_state(app: &Clawkeeper, vault: &Vault, channel: Channel) -> ChannelState {
    let token = vault
        .read(&SecretRef::new(SecretKind::GatewayToken, "local"))
        .await
        .unwrap();
    let mut conn = gateway::connect_once(&app.instance().url(), &token, &ClientInfo::default())
        .await
        .unwrap();
    let status = conn
        .request("channels.status", json!({}), Duration::from_secs(20))
        .await
        .unwrap();
    conn.close().await;
    ChannelState::from_status(&status, channel).unwrap()
}

/// After a finished rotation: the keychain holds `now` (the fake's current token), no
/// staging entry, nothing unfinished, the settings name the entry (no token in them), the
/// channel polls with `now`, the gateway says it runs, and `old` is refused.
async fn settled(
    app: &Clawkeeper,
    vault: &Vault,
    fake: &ContractFakeTelegram,
    now: &str,
    old: &str,
    what: &str,
) {
    assert_eq!(
        vault.read(&tg_entry()).await.unwrap().expose(),
        now,
        "{what}"
    );
    assert!(
        vault.read(&staging(&tg_entry())).await.is_err(),
        "{what}: no staging entry left"
    );
    let ledger = journal::unfinished(app.store()).await.unwrap();
    assert!(ledger.is_empty(), "{what}: unfinished: {ledger:?}");
    let cfg = config(app);
    assert_eq!(
        cfg["channels"]["telegram"]["botToken"],
        json!({"source": "exec", "provider": "clawkeeper", "id": "telegram-bot-token/local"}),
        "{what}"
    );
    let text = std::fs::read_to_string(app.instance().config_path()).unwrap();
    assert!(
        !text.contains(now) && !text.contains(old),
        "{what}: a token in the settings"
    );
    polled_with(fake, now, 2, what).await;
    let state = channel_state(app, vault, Channel::Telegram).await;
    assert!(
        state.running && state.last_error.is_none(),
        "{what}: {state:?}"
    );
    assert!(!fake.accepts(old), "{what}: the old token is refused");
    let api = BotApi::Telegram {
        root: fake.api_root().to_owned(),
    };
    assert_eq!(api.identity(&Secret::new(old)).await, Identity::Refused);
}

/// Whether the tests that start the real gateway can run here (scripts/test.sh's runtime
/// cache and test session); says why not.
fn gateway_tests_can_run() -> bool {
    let ok = env::test_runtime().is_some() && env::isolated();
    if !ok {
        eprintln!(
            "skipped: run through scripts/test.sh (needs the runtime cache and the test session)"
        );
    }
    ok
}

/// Clawkeeper with its model provider (a contract fake) and the person's chat `channels`
/// in the settings, not started yet.
struct Assistant {
    app: Clawkeeper,
    vault: Vault,
    paths: Paths,
    data: tempfile::TempDir,
    _model: ContractFakeModel,
}

async fn assistant(label: &str, channels: Value) -> Assistant {
    let runtime_dir = env::test_runtime().unwrap();
    let namespace = format!("clawkeeper-test-rotation-{label}-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let provider_key = format!("sk-{label}-{}", Secret::random(12).expose());
    let model = ContractFakeModel::start_on(
        ([127, 0, 0, 1], 0).into(),
        provider_key.clone(),
        vec!["echo-1".into()],
    )
    .await
    .unwrap();
    let policy = Policy {
        probe_every: Duration::from_secs(3),
        backoff_start: Duration::from_millis(500),
        ..Policy::default()
    };
    let app = Clawkeeper::open(paths.clone(), policy).await.unwrap();
    write_channels(&app.instance().config_path(), channels);
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(model.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(provider_key),
    })
    .await
    .unwrap();
    Assistant {
        app,
        vault: Vault::new(&namespace),
        paths,
        data,
        _model: model,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_telegram_token_rotation_end_to_end() {
    if !gateway_tests_can_run() {
        return;
    }
    let telegram = ContractFakeTelegram::start().await.unwrap();
    let first = telegram.add_bot(BOT_ID, "ck_assistant_bot");
    let someone_else = telegram.add_bot(700_999_999, "someone_elses_bot");
    let Assistant {
        app,
        vault,
        paths,
        data,
        _model,
    } = assistant(
        "bots",
        json!({"telegram": {
            "enabled": true,
            "botToken": first,
            "apiRoot": telegram.api_root(),
            "dmPolicy": "pairing",
        }}),
    )
    .await;
    let cli = RotationCli { paths: &paths };
    let mut seen = vec![first.clone(), someone_else.clone()];

    step("the person's Telegram chat is kept when Clawkeeper writes the settings, and runs");
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let cfg = config(&app);
    assert_eq!(cfg["channels"]["telegram"]["botToken"], json!(first));
    assert_eq!(
        cfg["gateway"]["bind"], "loopback",
        "still Clawkeeper's settings"
    );
    polled_with(&telegram, &first, 2, "first start").await;
    let started = telegram.answered_with(&first);
    for m in ["getMe", "deleteWebhook", "setMyCommands", "getUpdates"] {
        assert!(
            started.iter().any(|x| x == m),
            "{m} not called: {started:?}"
        );
    }

    step("the keys list shows the bot token as guided, in plain text in the settings");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let list: Value =
        serde_json::from_str(&text[text.find('[').unwrap()..=text.rfind(']').unwrap()]).unwrap();
    let tg = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "telegram-token")
        .unwrap_or_else(|| panic!("no telegram-token in {text}"));
    assert_eq!(tg["how"], "guided", "{tg}");
    assert!(tg["lives"].as_str().unwrap().contains("plain text"), "{tg}");
    assert!(tg["note"].as_str().unwrap().contains("/revoke"), "{tg}");

    step("not a token, or another bot's token: refused, nothing changes");
    let before = std::fs::read(app.instance().config_path()).unwrap();
    for (wrong, says) in [
        (someone_else.as_str(), "another bot (@someone_elses_bot)"),
        (
            "not a token at all",
            "doesn't look like a Telegram bot token",
        ),
        (
            "700100200:AAnever-issued-by-the-fake_xxxxxxxxxxxx",
            "Telegram refused the new token",
        ),
        (first.as_str(), "already in use"),
    ] {
        let (ok, text) = cli.run_with(
            &["rotate", "telegram-token", "--new-key-stdin"],
            Some(wrong),
        );
        assert!(!ok && text.contains(says), "{says}: {text}");
        assert!(text.contains("Nothing was changed"), "{text}");
        assert_eq!(std::fs::read(app.instance().config_path()).unwrap(), before);
        assert!(
            vault.read(&tg_entry()).await.is_err(),
            "nothing in the keychain"
        );
        assert!(journal::recent(app.store(), 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.key != KeyId::TelegramBotToken));
    }
    polled_with(&telegram, &first, 1, "after the refused tokens").await;

    step("BotFather's /revoke: the old token dies at once, the chat is down");
    let second = telegram.revoke(BOT_ID);
    seen.push(second.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while telegram.refused_with(&first).is_empty() {
        assert!(Instant::now() < deadline, "the channel never noticed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Another bot's token is still refused now that the old one is dead (its bot id is in
    // the token itself).
    let (ok, text) = cli.run_with(
        &["rotate", "telegram-token", "--new-key-stdin"],
        Some(&someone_else),
    );
    assert!(!ok && text.contains("another bot"), "{text}");

    step("the new token pasted: checked, moved into the keychain, the channel restarted");
    let log = app.instance().log_dir().join("openclaw.log");
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    let t0 = Instant::now();
    let (ok, text) = cli.run_with(
        &["rotate", "telegram-token", "--new-key-stdin"],
        Some(&format!("  {second}\n")),
    );
    assert!(ok, "{text}");
    eprintln!("rotation took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(text.contains("Rotated the Telegram bot token"), "{text}");
    settled(&app, &vault, &telegram, &second, &first, "first rotation").await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged[mark..].contains("restarting telegram channel"),
        "the gateway restarted the channel"
    );
    let last = journal::recent(app.store(), 1).await.unwrap();
    assert_eq!(last[0].key, KeyId::TelegramBotToken);
    assert_eq!(last[0].outcome, Some(Outcome::Done));
    assert_eq!(
        last[0].new_fingerprint.as_deref(),
        Some(Secret::new(second.clone()).fingerprint().as_str())
    );

    step("a second rotation, from the keychain");
    let third = telegram.revoke(BOT_ID);
    seen.push(third.clone());
    let (ok, text) = cli.run_with(
        &["rotate", "telegram-token", "--new-key-stdin"],
        Some(&third),
    );
    assert!(ok, "{text}");
    settled(&app, &vault, &telegram, &third, &second, "second rotation").await;
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok && text.contains("never hold it"), "{text}");

    step("crash injection: the CLI killed at step boundaries, then resumed");
    let marker = data.path().join("stop-marker");
    let mut old = third.clone();
    for stop in [
        "telegram-token:install:after",
        "telegram-token:verify_new",
        "telegram-token:verify_old:after",
        "telegram-token:commit",
    ] {
        let new = telegram.revoke(BOT_ID);
        seen.push(new.clone());
        cli.kill_at_with(
            &["rotate", "telegram-token", "--new-key-stdin"],
            Some(&new),
            stop,
            &marker,
        );
        let (ok, text) = cli.run(&["rotate", "--resume"]);
        assert!(ok, "{stop}: {text}");
        settled(&app, &vault, &telegram, &new, &old, stop).await;
        old = new;
    }
    // Killed right after the check, before the journal noted it: the pasted token is gone
    // with the process, so the rotation is undone; pasting it again finishes the change.
    let new = telegram.revoke(BOT_ID);
    seen.push(new.clone());
    cli.kill_at_with(
        &["rotate", "telegram-token", "--new-key-stdin"],
        Some(&new),
        "telegram-token:mint:after",
        &marker,
    );
    let (ok, text) = cli.run(&["rotate", "--resume"]);
    assert!(ok && text.contains("paste it again"), "{text}");
    assert_eq!(
        journal::recent(app.store(), 1).await.unwrap()[0].outcome,
        Some(Outcome::RolledBack)
    );
    let (ok, text) = cli.run_with(&["rotate", "telegram-token", "--new-key-stdin"], Some(&new));
    assert!(ok, "{text}");
    settled(&app, &vault, &telegram, &new, &old, "pasted again").await;
    let (third, second) = (new, old);

    step("the assistant restarted: its Telegram chat comes up with the newest token");
    app.stop().await.unwrap();
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    settled(&app, &vault, &telegram, &third, &second, "after a restart").await;
    assert!(
        telegram.refused_with(&second).len() < 50,
        "no endless retries with a dead token"
    );

    step("no token, old or new, on disk, in logs, in process arguments, the journal or the audit log");
    let needles: Vec<&str> = seen.iter().map(String::as_str).collect();
    let audit_text = scan::assert_nowhere(data.path(), app.store(), &needles).await;
    assert!(
        audit_text.contains("rotation.done")
            && audit_text.contains(&Secret::new(third.clone()).fingerprint()),
        "{audit_text}"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_token_is_checked_against_the_contract_fake() {
    if !env::isolated() {
        eprintln!("skipped: run through scripts/test.sh (needs the test session's keychain)");
        return;
    }
    let Some(runtime_dir) = env::test_runtime() else {
        eprintln!("skipped: needs the runtime cache");
        return;
    };
    let namespace = format!("clawkeeper-test-rotation-discord-{}", std::process::id());
    std::env::set_var("CLAWKEEPER_KEYCHAIN_NAMESPACE", &namespace);
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let discord = ContractFakeDiscord::start().await.unwrap();
    std::env::set_var("CLAWKEEPER_DISCORD_API", discord.api_base());
    let first = discord.add_bot("1234567890123456789", "ck_assistant");
    let other = discord.add_bot("9876543210987654321", "someone_else");
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir,
    };
    let app = Clawkeeper::open(paths.clone(), Policy::default())
        .await
        .unwrap();
    write_channels(
        &app.instance().config_path(),
        json!({"discord": {"enabled": true, "token": first}}),
    );
    let vault = Vault::new(&namespace);
    let cli = RotationCli { paths: &paths };

    step("listed as guided, with the Developer Portal's steps");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(
        ok && text.contains("discord-token") && text.contains("Reset Token"),
        "{text}"
    );

    step("the token check (users/@me): same bot or refused");
    let api = BotApi::for_channel(Channel::Discord, None);
    let me = match api.identity(&Secret::new(first.clone())).await {
        Identity::Accepted(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(me.id, "1234567890123456789");
    assert_eq!(
        api.bot_id_in(&Secret::new(first.clone())).as_deref(),
        Some("1234567890123456789"),
        "the bot's id is in its token"
    );
    let second = discord.reset_token("1234567890123456789");
    assert_eq!(
        api.identity(&Secret::new(first.clone())).await,
        Identity::Refused
    );
    let ok_bot = api
        .check_new(&Secret::new(first.clone()), &Secret::new(second.clone()))
        .await
        .unwrap();
    assert_eq!(ok_bot.id, me.id);
    let e = api
        .check_new(&Secret::new(first.clone()), &Secret::new(other.clone()))
        .await
        .unwrap_err();
    assert!(e.message().contains("another bot (@someone_else)"), "{e}");

    step("through the CLI: wrong ones refused; the right one checked, then nothing changes while the assistant is stopped");
    let before = std::fs::read(app.instance().config_path()).unwrap();
    for (token, says) in [
        (other.as_str(), "another bot"),
        ("has spaces in it", "doesn't look like a Discord bot token"),
        (second.as_str(), "isn't running"),
    ] {
        let (ok, text) = cli.run_with(&["rotate", "discord-token", "--new-key-stdin"], Some(token));
        assert!(!ok && text.contains(says), "{says}: {text}");
        assert!(text.contains("Nothing was changed"), "{text}");
        assert_eq!(std::fs::read(app.instance().config_path()).unwrap(), before);
        assert!(vault
            .read(&SecretRef::new(SecretKind::DiscordBotToken, "local"))
            .await
            .is_err());
    }
    assert!(discord.checks_with(&second) >= 2, "the CLI asked Discord");
    let files = scan::files_containing(data.path(), &[second.as_str(), other.as_str()]);
    assert!(files.is_empty(), "tokens in files: {files:?}");
}

const DISCORD_BOT: &str = "1234567890123456789";

fn dc_entry() -> SecretRef {
    SecretRef::new(SecretKind::DiscordBotToken, "local")
}

/// Until `what` holds (checked every 200 ms), or panic with `why()` after `secs`.
async fn until(secs: u64, what: &str, mut ok: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: {}", why());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Until the gateway says the Discord channel runs, connected, without error.
async fn discord_up(app: &Clawkeeper, vault: &Vault, what: &str) -> ChannelState {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = channel_state(app, vault, Channel::Discord).await;
        if state.running && state.connected == Some(true) && state.last_error.is_none() {
            return state;
        }
        assert!(Instant::now() < deadline, "{what}: {state:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_discord_token_rotation_end_to_end() {
    if !gateway_tests_can_run() {
        return;
    }
    let plugin = discord_plugin::cache().unwrap_or_else(|| {
        panic!(
            "no Discord plugin cache (${}): scripts/test.sh fetches it (scripts/discord-plugin.sh)",
            discord_plugin::ENV
        )
    });
    let discord = ContractFakeDiscord::start().await.unwrap();
    // The channel (the gateway's environment) and Clawkeeper's own checks at the fake.
    std::env::set_var("DISCORD_API_URL", discord.api_base());
    std::env::set_var("CLAWKEEPER_DISCORD_API", discord.api_base());
    let first = discord.add_bot(DISCORD_BOT, "ck_assistant");
    let someone_else = discord.add_bot("9876543210987654321", "someone_else");
    let Assistant {
        app,
        vault,
        paths,
        data,
        _model,
    } = assistant("discord", json!({})).await;
    let cli = RotationCli { paths: &paths };
    let mut seen = vec![first.clone(), someone_else.clone()];

    step("the person adds OpenClaw's Discord plugin (openclaw plugins install, offline), then sets up the chat");
    // Plugin first: `plugins install` keeps copies of the config as it was
    // (openclaw.json.bak*), which would hold a token set up before in plain text.
    let scratch = tempfile::tempdir().unwrap();
    let out = discord_plugin::install(app.instance(), &plugin, scratch.path())
        .await
        .unwrap_or_else(|e| panic!("the plugin didn't install: {e}"));
    eprintln!("{}", out.lines().last().unwrap_or(""));
    assert_eq!(
        config(&app)["plugins"]["entries"]["discord"]["enabled"],
        true
    );
    write_channels(
        &app.instance().config_path(),
        json!({"discord": {"enabled": true, "token": first}}),
    );

    step("Clawkeeper keeps the Discord chat and its plugin; the channel connects at the fake");
    app.start().await.unwrap();
    app.wait_healthy(Duration::from_secs(180)).await.unwrap();
    let cfg = config(&app);
    assert_eq!(cfg["channels"]["discord"]["token"], json!(first));
    assert_eq!(
        cfg["plugins"]["entries"]["discord"],
        json!({"enabled": true})
    );
    assert_eq!(
        cfg["gateway"]["bind"], "loopback",
        "still Clawkeeper's settings"
    );
    until(
        120,
        "first start: READY with the first token",
        || discord.ready_with(&first) >= 1,
        || format!("{:?} {:?}", discord.calls(), discord.events()),
    )
    .await;
    discord_up(&app, &vault, "first start").await;
    let calls = discord.calls();
    for path in ["/users/@me", "/gateway/bot", "/oauth2/applications/@me"] {
        assert!(
            calls
                .iter()
                .any(|c| c.path == path && c.token == first && c.status == 200),
            "{path} not called: {calls:?}"
        );
    }
    let events = discord.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, GatewayEvent::Opened { query }
            if query.contains("v=10") && query.contains("encoding=json"))),
        "{events:?}"
    );

    step("the keys list shows the bot token as guided, in plain text in the settings");
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok, "{text}");
    let list: Value =
        serde_json::from_str(&text[text.find('[').unwrap()..=text.rfind(']').unwrap()]).unwrap();
    let dc = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "discord-token")
        .unwrap_or_else(|| panic!("no discord-token in {text}"));
    assert_eq!(dc["how"], "guided", "{dc}");
    assert!(dc["lives"].as_str().unwrap().contains("plain text"), "{dc}");
    assert!(dc["note"].as_str().unwrap().contains("Reset Token"), "{dc}");

    step("not a token, a token Discord never issued, or another bot's: refused, nothing changes");
    let before = std::fs::read(app.instance().config_path()).unwrap();
    let never_issued = format!(
        "{}.AbCdEf.{}",
        first.split('.').next().unwrap(),
        "x".repeat(38)
    );
    for (wrong, says) in [
        (someone_else.as_str(), "another bot (@someone_else)"),
        ("has spaces in it", "doesn't look like a Discord bot token"),
        (never_issued.as_str(), "Discord refused the new token"),
        (first.as_str(), "already in use"),
    ] {
        let (ok, text) = cli.run_with(&["rotate", "discord-token", "--new-key-stdin"], Some(wrong));
        assert!(!ok && text.contains(says), "{says}: {text}");
        assert!(text.contains("Nothing was changed"), "{text}");
        assert_eq!(std::fs::read(app.instance().config_path()).unwrap(), before);
        assert!(
            vault.read(&dc_entry()).await.is_err(),
            "nothing in the keychain"
        );
        assert!(journal::recent(app.store(), 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.key != KeyId::DiscordBotToken));
    }
    assert_eq!(
        discord.ready_with(&someone_else),
        0,
        "the gateway never used it"
    );
    discord_up(&app, &vault, "after the refused tokens").await;

    step("Reset Token at the Developer Portal: the old token dies at once, the bot goes offline");
    let second = discord.reset_token(DISCORD_BOT);
    seen.push(second.clone());
    assert!(!discord.accepts(&first));
    until(
        30,
        "the fake closed the session of the old token",
        || discord.live_sessions_with(&first) == 0,
        || format!("{:?}", discord.events()),
    )
    .await;
    assert!(discord.events().contains(&GatewayEvent::ClosedByFake {
        token: first.clone(),
        code: 4004
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = channel_state(&app, &vault, Channel::Discord).await;
        if state.connected != Some(true) {
            eprintln!("the gateway says: {state:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the channel never noticed: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, text) = cli.run_with(
        &["rotate", "discord-token", "--new-key-stdin"],
        Some(&someone_else),
    );
    assert!(!ok && text.contains("another bot"), "{text}");

    step("the new token pasted: checked, moved into the keychain, the channel restarted");
    let log = app.instance().log_dir().join("openclaw.log");
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    let t0 = Instant::now();
    let (ok, text) = cli.run_with(
        &["rotate", "discord-token", "--new-key-stdin"],
        Some(&format!("  {second}\n")),
    );
    assert!(ok, "{text}");
    eprintln!("rotation took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(text.contains("Rotated the Discord bot token"), "{text}");
    assert!(
        discord.checks_with(&second) >= 2,
        "checked before and after the install"
    );
    assert!(
        discord.ready_with(&second) >= 1,
        "the channel IDENTIFYed with the new token: {:?}",
        discord.events()
    );
    let state = discord_up(&app, &vault, "after the rotation").await;
    assert!(state.running && state.connected == Some(true), "{state:?}");
    assert_eq!(vault.read(&dc_entry()).await.unwrap().expose(), second);
    assert!(
        vault.read(&staging(&dc_entry())).await.is_err(),
        "no staging entry left"
    );
    let ledger = journal::unfinished(app.store()).await.unwrap();
    assert!(ledger.is_empty(), "unfinished: {ledger:?}");
    let cfg = config(&app);
    assert_eq!(
        cfg["channels"]["discord"]["token"],
        json!({"source": "exec", "provider": "clawkeeper", "id": "discord-bot-token/local"})
    );
    assert_eq!(cfg["plugins"]["entries"]["discord"]["enabled"], true);
    let settings = std::fs::read_to_string(app.instance().config_path()).unwrap();
    assert!(
        !settings.contains(&second) && !settings.contains(&first),
        "a token in the settings"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged[mark..].contains("restarting discord channel"),
        "the gateway restarted the channel"
    );
    let api = BotApi::for_channel(Channel::Discord, None);
    assert_eq!(
        api.identity(&Secret::new(first.clone())).await,
        Identity::Refused
    );
    assert!(discord.refused_identify_with(&second) == 0);
    let last = journal::recent(app.store(), 1).await.unwrap();
    assert_eq!(last[0].key, KeyId::DiscordBotToken);
    assert_eq!(last[0].outcome, Some(Outcome::Done));
    assert_eq!(
        last[0].new_fingerprint.as_deref(),
        Some(Secret::new(second.clone()).fingerprint().as_str())
    );
    let (ok, text) = cli.run(&["--json", "rotate", "--list"]);
    assert!(ok && text.contains("never hold it"), "{text}");

    step("no token, old or new, on disk, in logs, in process arguments, the journal or the audit log");
    let needles: Vec<&str> = seen.iter().map(String::as_str).collect();
    let audit_text = scan::assert_nowhere(data.path(), app.store(), &needles).await;
    assert!(
        audit_text.contains("rotation.done")
            && audit_text.contains(&Secret::new(second.clone()).fingerprint()),
        "{audit_text}"
    );
    app.stop().await.unwrap();
}
