//! The status window's "Keys" section, end to end: the real desktop app (tauri-driver →
//! `clawkeeper-window` → the tray daemon), opened at the section as the tray's "Rotate
//! keys…" opens it (`--open status#keys`), the real OpenClaw gateway with the contract fake
//! model, the real keychain and SQLite.
//!
//! The person sees the keys (the assistant access token rotates in one click, the model
//! provider key not from here yet), presses Rotate on the token, watches the steps, and
//! reads "Rotated". Then, with the real keychain: the token changed, the gateway accepts
//! the new one and refuses the old one, and the page never held either. "Rotate all"
//! rotates the token again and says the provider key needs the person.
//!
//! Then the provider key, guided (an OpenAI-compatible provider has no key API): "Change…",
//! the person pastes a key they made, Clawkeeper checks it at the provider (the contract
//! fake model, which serves exactly the keys its "account" holds), switches the assistant
//! to it, and says to delete the old one; "Check again" before that changes nothing; once
//! the old key is deleted, "Check again" finishes it.
//!
//! Screenshots: docs/screenshots/keys.png, keys-rotated.png, keys-provider-waiting.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{Context, Result};
use clawkeeper_core::rotation::gateway_token::{try_token, Verdict};
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth};
use clawkeeper_tests::local_window::{
    keys_in_view_and_working, open_change_form, text_of, window_needs, LocalWindow,
};
use clawkeeper_tests::webdriver::{click, js, screenshot, type_into, wait_until};
use fantoccini::Client;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_keys_rotate_the_access_token() -> Result<()> {
    let Some(needs) = window_needs()? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let mut app = LocalWindow::new(tmp.path(), "e2e-keys")?;
    let api_key = format!("sk-e2e-keys-{}", std::process::id());
    // The provider "account": the keys it serves now.
    let live: Live = Arc::new(Mutex::new(HashSet::from([api_key.clone()])));
    let serves = live.clone();
    let fake = ContractFakeModel::start_with_auth(
        ([127, 0, 0, 1], 0).into(),
        KeyAuth::Check(Arc::new(move |k: &str| serves.lock().unwrap().contains(k))),
        vec!["echo-1".into()],
        None,
    )
    .await?;

    eprintln!("=== the provider (CLI, key on stdin)");
    app.cli(
        &[
            "provider",
            "--kind",
            "openai-compatible",
            "--base-url",
            &fake.base_url(),
            "--model",
            "echo-1",
        ],
        Some(&api_key),
    )?;

    // As the tray's "Rotate keys…" asks for it.
    let c = app.open(&needs, &[], &["--open", "status#keys"]).await?;
    let result = drive(&c, &app.namespace, app.port, &api_key, &live).await;
    app.close(c, result, "failure-keys.png").await
}

/// The keys the contract fake model serves (the provider account's live keys).
type Live = Arc<Mutex<HashSet<String>>>;

const TOKEN_LI: &str = "#keys-list li[data-key='gateway-token']";

async fn drive(c: &Client, namespace: &str, port: u16, api_key: &str, live: &Live) -> Result<()> {
    keys_in_view_and_working(c).await?;

    eprintln!("=== the keys: the access token in one click, the provider key guided");
    let token_item = wait_until(
        "the access token's row",
        Duration::from_secs(30),
        || async {
            let t = text_of(c, TOKEN_LI).await?;
            Ok(t.contains("Assistant access token").then_some(t))
        },
    )
    .await?;
    eprintln!("{token_item}");
    assert!(
        token_item.to_lowercase().contains("never rotated"),
        "{token_item}"
    );
    assert!(token_item.contains("Rotates in one click"), "{token_item}");
    assert!(token_item.contains("Your keychain"), "{token_item}");
    let provider_item = text_of(c, "#keys-list li[data-key='provider-key']").await?;
    assert!(
        provider_item.contains("Model provider key")
            && provider_item.contains("Rotated with a few steps at the provider")
            && provider_item.contains("paste it here"),
        "{provider_item}"
    );
    let buttons = js(
        c,
        "return [...document.querySelectorAll('#keys-list button')].map(b => b.id).join(',')",
    )
    .await?;
    assert_eq!(
        buttons, "key-rotate-gateway-token,key-change-provider-key",
        "Rotate for the token, Change… for the provider key"
    );

    let vault = Vault::new(namespace);
    let entry = SecretRef::new(SecretKind::GatewayToken, "local");
    let url = format!("ws://127.0.0.1:{port}");
    let old = vault.read(&entry).await.context("the token before")?;
    assert_eq!(try_token(&url, &old).await, Verdict::Accepted);

    js(
        c,
        "document.getElementById('keys').scrollIntoView(); return ''",
    )
    .await?;
    screenshot(c, "keys.png").await?;

    eprintln!("=== Rotate: the steps show, the buttons wait, then \"Rotated\"");
    // Note every step the progress view marks as current, and whether the buttons waited.
    js(
        c,
        "window.__steps = []; window.__enabledWhileBusy = false; \
         const p = document.getElementById('keys-progress'); \
         new MutationObserver(() => { \
           const a = p.querySelector('[aria-current=step]'); \
           if (a && window.__steps[window.__steps.length - 1] !== a.dataset.step) window.__steps.push(a.dataset.step); \
           if (!p.hidden && [...document.querySelectorAll('#keys button')].some(b => !b.disabled)) window.__enabledWhileBusy = true; \
         }).observe(document.getElementById('keys'), { subtree: true, childList: true, attributes: true }); \
         return ''",
    )
    .await?;
    click(c, "#key-rotate-gateway-token").await?;
    let result = wait_until("the result", Duration::from_secs(120), || async {
        let t = text_of(c, "#keys-result").await?;
        Ok((!t.is_empty()).then_some(t))
    })
    .await?;
    eprintln!("result: {result}");
    assert!(
        result.contains("Assistant access token: Rotated"),
        "{result}"
    );
    let steps = js(c, "return window.__steps.join(',')").await?;
    eprintln!("steps shown: {steps}");
    assert!(
        steps.contains("mint") || steps.contains("install") || steps.contains("verify_new"),
        "the progress view showed the steps: {steps}"
    );
    assert_eq!(
        js(c, "return String(window.__enabledWhileBusy)").await?,
        "false",
        "every button waited while the rotation ran"
    );

    eprintln!("=== the keychain: a new token, accepted; the old one refused");
    let new = vault.read(&entry).await.context("the token after")?;
    assert_ne!(new.expose(), old.expose(), "the token changed");
    assert_eq!(
        try_token(&url, &new).await,
        Verdict::Accepted,
        "new accepted"
    );
    assert_eq!(try_token(&url, &old).await, Verdict::Refused, "old refused");

    eprintln!("=== no secret on the page");
    let html = js(c, "return document.documentElement.outerHTML").await?;
    assert!(!html.contains(old.expose()), "the old token is on the page");
    assert!(!html.contains(new.expose()), "the new token is on the page");
    assert!(!html.contains(api_key), "the provider key is on the page");

    eprintln!("=== the list says so");
    let token_item = wait_until("\"Rotated today\"", Duration::from_secs(30), || async {
        let t = text_of(c, TOKEN_LI).await?;
        Ok(t.contains("Rotated today").then_some(t))
    })
    .await?;
    assert!(
        !token_item.to_lowercase().contains("never rotated"),
        "{token_item}"
    );
    let enabled = js(
        c,
        "return String(!document.getElementById('key-rotate-gateway-token').disabled)",
    )
    .await?;
    assert_eq!(enabled, "true", "Rotate can be pressed again");
    js(
        c,
        "document.getElementById('keys').scrollIntoView(); return ''",
    )
    .await?;
    screenshot(c, "keys-rotated.png").await?;

    eprintln!("=== Rotate all: the token again; the provider key needs the person");
    click(c, "#keys-rotate-all").await?;
    let result = wait_until("Rotate all's results", Duration::from_secs(120), || async {
        let t = text_of(c, "#keys-result").await?;
        Ok(t.contains("Model provider key").then_some(t))
    })
    .await?;
    eprintln!("result: {result}");
    assert!(
        result.contains("Assistant access token: Rotated"),
        "{result}"
    );
    assert!(
        result.contains("Model provider key: Needs you") && result.contains("paste it here"),
        "{result}"
    );
    let third = vault
        .read(&entry)
        .await
        .context("the token after Rotate all")?;
    assert_ne!(third.expose(), new.expose(), "rotated again");
    assert_eq!(try_token(&url, &third).await, Verdict::Accepted);
    assert_eq!(try_token(&url, &new).await, Verdict::Refused);
    let html = js(c, "return document.documentElement.outerHTML").await?;
    for t in [&old, &new, &third] {
        assert!(!html.contains(t.expose()), "a token is on the page");
    }

    guided_provider_key(c, namespace, api_key, live).await
}

/// "Change…" on the provider key: a wrong key changes nothing; the person's new key is
/// checked and put in use, then the rotation waits for them to delete the old one.
async fn guided_provider_key(c: &Client, namespace: &str, old: &str, live: &Live) -> Result<()> {
    let vault = Vault::new(namespace);
    let entry = SecretRef::new(SecretKind::ProviderKey, "local");
    const PROVIDER_LI: &str = "#keys-list li[data-key='provider-key']";

    eprintln!("=== Change…: a key the provider doesn't know changes nothing");
    open_change_form(c, "provider-key").await?;
    type_into(c, "#key-new-secret", "sk-not-a-key-of-this-account").await?;
    click(c, "[data-testid=key-change-submit]").await?;
    let result = wait_until(
        "the wrong key's result",
        Duration::from_secs(60),
        || async {
            let t = text_of(c, "#keys-result").await?;
            Ok(t.contains("Model provider key").then_some(t))
        },
    )
    .await?;
    eprintln!("result: {result}");
    assert!(
        result.contains("Not changed") && result.contains("refused the new key"),
        "{result}"
    );
    assert_eq!(
        vault.read(&entry).await?.expose(),
        old,
        "the key in use is kept"
    );

    eprintln!("=== the person's new key: checked, in use; then it waits for them");
    let made = format!("sk-made-by-hand-{}", std::process::id());
    live.lock().unwrap().insert(made.clone());
    open_change_form(c, "provider-key").await?;
    type_into(c, "#key-new-secret", &made).await?;
    click(c, "[data-testid=key-change-submit]").await?;
    let result = wait_until("the new key's result", Duration::from_secs(180), || async {
        let t = text_of(c, "#keys-result").await?;
        Ok(t.contains("Model provider key").then_some(t))
    })
    .await?;
    eprintln!("result: {result}");
    assert!(
        result.contains("One more step: delete the old key")
            && result.contains("in your model provider's account"),
        "{result}"
    );
    let item = wait_until("the waiting notice", Duration::from_secs(30), || async {
        let t = text_of(c, PROVIDER_LI).await?;
        Ok(t.contains("Check again").then_some(t))
    })
    .await?;
    assert!(item.contains("already uses the new key"), "{item}");
    js(
        c,
        "document.querySelector(\"#keys-list li[data-key='provider-key']\").scrollIntoView({ block: 'center' }); return ''",
    )
    .await?;
    screenshot(c, "keys-provider-waiting.png").await?;

    eprintln!("=== Check again before the old key is deleted: still waiting");
    click(c, "#keys-resume").await?;
    let result = wait_until("Check again's result", Duration::from_secs(60), || async {
        let t = text_of(c, "#keys-result").await?;
        Ok(t.contains("Model provider key").then_some(t))
    })
    .await?;
    assert!(result.contains("One more step"), "{result}");

    eprintln!("=== the person deletes the old key; Check again finishes");
    live.lock().unwrap().remove(old);
    click(c, "#keys-resume").await?;
    let result = wait_until("\"Rotated\"", Duration::from_secs(180), || async {
        let t = text_of(c, "#keys-result").await?;
        Ok(t.contains("Model provider key: Rotated").then_some(t))
    })
    .await?;
    eprintln!("result: {result}");
    assert_eq!(
        vault.read(&entry).await?.expose(),
        made,
        "the keychain holds the new key"
    );
    assert!(
        vault
            .read(&clawkeeper_core::rotation::staging(&entry))
            .await
            .is_err(),
        "no staging entry left"
    );
    let html = js(c, "return document.documentElement.outerHTML").await?;
    assert!(
        !html.contains(old) && !html.contains(&made),
        "a key is on the page"
    );
    Ok(())
}
