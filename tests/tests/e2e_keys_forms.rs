//! The Keys section's two forms for the model provider key, end to end with the real window
//! (tauri-driver → `clawkeeper-window` → the tray daemon, opened as the tray's "Rotate
//! keys…" opens it), the real OpenClaw gateway, the real keychain and SQLite:
//!
//! - **"Get a new key from OpenRouter"** (an OpenRouter key without a management key), with
//!   the **contract fake of OpenRouter** (PKCE sign-in, keys) and the contract fake model
//!   serving exactly the keys live there. The app opens the sign-in page with `xdg-open`:
//!   here a stand-in on PATH that notes the address, and the test is the person's browser
//!   (the fake approves at once and sends it back to the app's loopback page). Cancel while
//!   it waits: said calmly, nothing changed, the page no longer listened for. Then for real:
//!   "Finish signing in in your browser", the browser comes back, the assistant is switched
//!   to the key OpenRouter gave out, "One more step: delete the old key"; once the person
//!   deleted it there, "Check again" finishes; the assistant answers with the new key.
//! - **The OpenAI Admin key** ("Make changing it one click"), with the **contract fake of
//!   OpenAI's Admin API** and the contract fake model standing in for api.openai.com/v1
//!   (`CLAWKEEPER_OPENAI_MODEL_API`). A wrong admin key: a clear refusal in view, the field
//!   emptied, nothing kept. The right one: kept in the keychain, the key's row says it
//!   rotates in one click. "Rotate": a new service account (this once the person deletes
//!   the key they made, then "Check again"); "Rotate" again: one click, the old service
//!   account deleted at OpenAI, the assistant answers with the new key.
//!
//! No key ever on the page. Screenshots: docs/screenshots/keys-signin-waiting.png,
//! keys-openai-admin.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{Context, Result};
use clawkeeper_core::rotation::staging;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth};
use clawkeeper_tests::fake_openai::ContractFakeOpenAi;
use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
use clawkeeper_tests::local_window::{
    keys_in_view_and_working, open_change_form, text_of, window_needs, LocalWindow,
};
use clawkeeper_tests::webdriver::{click, displayed, js, screenshot, type_into, wait_until};
use fantoccini::Client;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROVIDER_LI: &str = "#keys-list li[data-key='provider-key']";

fn provider_entry() -> SecretRef {
    SecretRef::new(SecretKind::ProviderKey, "local")
}

/// A stand-in `xdg-open` in `dir/bin` that notes each address it is given in `dir/opened`
/// (one a line) instead of opening a browser; returns PATH with it first, and the notes.
fn stand_in_browser(dir: &Path) -> Result<(OsString, PathBuf)> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let notes = dir.join("opened");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
            notes.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let mut path = vec![bin];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Ok((std::env::join_paths(path)?, notes))
}

/// The `n`th address the app asked the browser to open (1-based), once it has.
async fn opened(notes: &Path, n: usize) -> Result<String> {
    wait_until(
        &format!("the app to open page {n} in the browser"),
        Duration::from_secs(60),
        || async {
            let text = std::fs::read_to_string(notes).unwrap_or_default();
            Ok(text.lines().nth(n - 1).map(str::to_owned))
        },
    )
    .await
}

/// The text of `css` once it says `needle` (`what` names it in a timeout's message).
async fn text_saying(
    c: &Client,
    what: &str,
    css: &str,
    needle: &str,
    timeout: Duration,
) -> Result<String> {
    wait_until(what, timeout, || async {
        let t = text_of(c, css).await?;
        Ok(t.contains(needle).then_some(t))
    })
    .await
}

/// The provider key's result once there is one (it says the key's name).
async fn provider_result(c: &Client, what: &str, timeout: Duration) -> Result<String> {
    let result = text_saying(c, what, "#keys-result", "Model provider key", timeout).await?;
    eprintln!("result: {result}");
    Ok(result)
}

/// Clear the last result, press `css`, and wait for the provider key's new result.
async fn press_for_result(c: &Client, css: &str, timeout: Duration) -> Result<String> {
    js(
        c,
        "document.getElementById('keys-result').replaceChildren(); return ''",
    )
    .await?;
    click(c, css).await?;
    provider_result(c, "the provider key's result", timeout).await
}

/// The contract fake model (model `echo-1`) taking the keys `auth` lets through.
async fn model_taking(auth: KeyAuth) -> Result<ContractFakeModel> {
    Ok(ContractFakeModel::start_with_auth(
        ([127, 0, 0, 1], 0).into(),
        auth,
        vec!["echo-1".into()],
        None,
    )
    .await?)
}

/// The assistant's provider: `kind` at `model`, with `key` (CLI, key on stdin).
fn provider_is(app: &LocalWindow, kind: &str, model: &ContractFakeModel, key: &str) -> Result<()> {
    app.cli(
        &[
            "provider",
            "--kind",
            kind,
            "--base-url",
            &model.base_url(),
            "--model",
            "echo-1",
        ],
        Some(key),
    )?;
    Ok(())
}

/// The assistant answers through the real gateway (`clawkeeper-cli chat`).
fn answers(app: &LocalWindow, msg: &str) -> Result<()> {
    let out = app.cli(&["chat", msg], None)?;
    assert_eq!(out.trim(), format!("Echo: {msg}"), "the assistant's answer");
    Ok(())
}

/// No key text anywhere on the page.
async fn no_key_on_page(c: &Client, keys: &[&str]) -> Result<()> {
    let html = js(c, "return document.documentElement.outerHTML").await?;
    for k in keys {
        assert!(!html.contains(k), "a key is on the page");
    }
    Ok(())
}

async fn center(c: &Client, css: &str) -> Result<()> {
    js(
        c,
        &format!(
            "document.querySelector(\"{css}\").scrollIntoView({{ block: 'center' }}); return ''"
        ),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_keys_openrouter_sign_in() -> Result<()> {
    let Some(needs) = window_needs()? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let mut app = LocalWindow::new(tmp.path(), "e2e-keys-signin")?;
    let openrouter = ContractFakeOpenRouter::start(true).await?;
    // The CLI below (it checks the key at OpenRouter) and the app.
    std::env::set_var("CLAWKEEPER_OPENROUTER_SITE", openrouter.origin());
    let first = openrouter.add_key("Clawkeeper");
    // Only the person's own use of openrouter.ai (deleting the old key); Clawkeeper never has it.
    let management = openrouter.add_management_key();
    let model = model_taking(KeyAuth::Check(openrouter.key_check())).await?;
    let (path, notes) = stand_in_browser(tmp.path())?;

    eprintln!("=== the provider: OpenRouter, no management key (CLI, key on stdin)");
    provider_is(&app, "openrouter", &model, &first)?;
    let env: [(&str, OsString); 2] = [
        ("CLAWKEEPER_OPENROUTER_SITE", openrouter.origin().into()),
        ("PATH", path),
    ];
    let c = app.open(&needs, &env, &["--open", "status#keys"]).await?;
    let result = sign_in(&c, &app, &openrouter, &management, &first, &notes).await;
    app.close(c, result, "failure-keys-signin.png").await
}

async fn sign_in(
    c: &Client,
    app: &LocalWindow,
    openrouter: &ContractFakeOpenRouter,
    management: &str,
    first: &str,
    notes: &Path,
) -> Result<()> {
    let vault = Vault::new(&app.namespace);
    keys_in_view_and_working(c).await?;
    let item = text_of(c, PROVIDER_LI).await?;
    assert!(
        item.contains("Model provider key") && item.contains("Rotated with a few steps"),
        "{item}"
    );

    eprintln!("=== Change…: the form offers a key from signing in with OpenRouter");
    let offer = open_change_form(c, "provider-key").await?;
    assert!(
        offer.contains("Get a new key from OpenRouter") && offer.contains("Authorize"),
        "{offer}"
    );

    eprintln!("=== the sign-in waits for the browser; Cancel: nothing changed");
    click(c, "[data-testid=key-sign-in]").await?;
    let wait = text_saying(
        c,
        "\"Finish signing in\"",
        "[data-testid=key-sign-in-wait]",
        "Cancel",
        Duration::from_secs(30),
    )
    .await?;
    assert!(wait.contains("in your browser"), "{wait}");
    let stale = opened(notes, 1).await?;
    eprintln!("the app opened: {stale}");
    assert!(
        stale.starts_with(&format!("{}/auth?", openrouter.origin()))
            && stale.contains("callback_url=")
            && stale.contains("code_challenge="),
        "the app opened OpenRouter's sign-in page: {stale}"
    );
    // A person takes a moment to decide.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let result = press_for_result(
        c,
        "[data-testid=key-sign-in-cancel]",
        Duration::from_secs(30),
    )
    .await?;
    assert!(
        result.contains("Cancelled") && result.contains("nothing changed"),
        "{result}"
    );
    let tone = js(
        c,
        "return document.querySelector('#keys-result [data-key=provider-key]').dataset.result",
    )
    .await?;
    assert_eq!(tone, "info", "a Cancel is said calmly, not as a failure");
    assert!(
        displayed(c, "#keys [role=alert]").await?.is_none(),
        "no error shown"
    );
    assert_eq!(vault.read(&provider_entry()).await?.expose(), first);
    assert!(vault.read(&staging(&provider_entry())).await.is_err());
    // The page opened before Cancel no longer leads anywhere: OpenRouter's approval of it
    // reaches no one, and no key is made.
    let _ = reqwest::get(&stale).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(openrouter.issued().is_empty(), "no key made after Cancel");
    assert_eq!(vault.read(&provider_entry()).await?.expose(), first);
    let item = text_of(c, PROVIDER_LI).await?;
    assert!(!item.contains("Check again"), "nothing unfinished: {item}");

    eprintln!("=== again, and the person approves in the browser");
    open_change_form(c, "provider-key").await?;
    click(c, "[data-testid=key-sign-in]").await?;
    displayed(c, "[data-testid=key-sign-in-wait]")
        .await?
        .context("the wait notice")?;
    center(c, "[data-testid=key-sign-in-wait]").await?;
    screenshot(c, "keys-signin-waiting.png").await?;
    let url = opened(notes, 2).await?;
    assert_ne!(url, stale, "a new sign-in, a new page");
    // The person's browser: OpenRouter's page, Authorize, back to Clawkeeper's loopback page.
    let page = reqwest::get(&url).await?;
    assert!(page.status().is_success(), "{}", page.status());
    let result = provider_result(c, "the sign-in's result", Duration::from_secs(180)).await?;
    assert!(
        result.contains("One more step: delete the old key"),
        "{result}"
    );
    let issued = openrouter.issued();
    assert_eq!(issued.len(), 1, "one key made by the sign-in");
    let new = issued[0].clone();
    assert_eq!(
        vault.read(&staging(&provider_entry())).await?.expose(),
        new,
        "the key OpenRouter gave out is the one switched to"
    );
    let item = text_saying(
        c,
        "the waiting notice",
        PROVIDER_LI,
        "Check again",
        Duration::from_secs(30),
    )
    .await?;
    assert!(item.contains("already uses the new key"), "{item}");
    answers(app, "signed in, waiting for you")?;

    eprintln!("=== the person deletes the old key at openrouter.ai; Check again finishes");
    let old_hash = openrouter
        .hash_of(first)
        .context("the old key at OpenRouter")?;
    let deleted = reqwest::Client::new()
        .delete(format!("{}/keys/{old_hash}", openrouter.api_base()))
        .bearer_auth(management)
        .send()
        .await?;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let result = press_for_result(c, "#keys-resume", Duration::from_secs(180)).await?;
    assert!(result.contains("Model provider key: Rotated"), "{result}");
    assert_eq!(
        vault.read(&provider_entry()).await?.expose(),
        new,
        "the keychain holds the new key"
    );
    assert!(
        vault.read(&staging(&provider_entry())).await.is_err(),
        "no staging entry left"
    );
    assert!(!openrouter.would_allow(first), "the old key is refused");
    answers(app, "hello with the new key")?;
    let item = text_saying(
        c,
        "\"Rotated today\"",
        PROVIDER_LI,
        "Rotated today",
        Duration::from_secs(30),
    )
    .await?;
    assert!(!item.contains("Check again"), "{item}");
    no_key_on_page(c, &[first, &new, management]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_keys_openai_admin() -> Result<()> {
    let Some(needs) = window_needs()? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let mut app = LocalWindow::new(tmp.path(), "e2e-keys-openai")?;
    let openai = ContractFakeOpenAi::start().await?;
    let project = openai.add_project("Assistant");
    let _other = openai.add_project("Something else");
    let first = openai.add_user_key(&project);
    let admin = openai.add_admin_key();
    let model = model_taking(KeyAuth::Check(openai.key_check())).await?;
    // The model fake stands in for https://api.openai.com/v1, the Admin API fake for OpenAI's.
    let env: [(&str, OsString); 2] = [
        ("CLAWKEEPER_OPENAI_API", openai.api_base().into()),
        ("CLAWKEEPER_OPENAI_MODEL_API", model.base_url().into()),
    ];
    for (k, v) in &env {
        std::env::set_var(k, v);
    }

    eprintln!("=== the provider: OpenAI, a key the person made (CLI, key on stdin)");
    provider_is(&app, "openai-compatible", &model, &first)?;
    let c = app.open(&needs, &env, &["--open", "status#keys"]).await?;
    let result = admin_key(&c, &app, &openai, &project, &first, &admin).await;
    app.close(c, result, "failure-keys-openai.png").await
}

async fn admin_key(
    c: &Client,
    app: &LocalWindow,
    openai: &ContractFakeOpenAi,
    project: &str,
    first: &str,
    admin: &str,
) -> Result<()> {
    let vault = Vault::new(&app.namespace);
    let admin_entry = SecretRef::new(SecretKind::ProviderManagement, "openai");
    let how = |c: &Client| {
        let c = c.clone();
        async move {
            js(
                &c,
                &format!("return document.querySelector(\"{PROVIDER_LI}\").dataset.how"),
            )
            .await
        }
    };
    keys_in_view_and_working(c).await?;
    let item = text_of(c, PROVIDER_LI).await?;
    assert!(item.contains("Rotated with a few steps"), "{item}");
    assert_eq!(how(c).await?, "guided");

    eprintln!("=== \"Make changing it one click\": the admin key's form");
    assert!(
        item.contains("Make changing it one click: give Clawkeeper an OpenAI Admin key"),
        "{item}"
    );
    click(c, "[data-testid=openai-admin] summary").await?;
    let wrong = format!("sk-admin-wrong-{}", std::process::id());
    type_into(c, "#openai-admin-key", &wrong).await?;
    type_into(c, "#openai-admin-project", project).await?;
    center(c, "[data-testid=openai-admin]").await?;
    screenshot(c, "keys-openai-admin.png").await?;

    eprintln!("=== a wrong admin key: refused, in view; the field emptied; nothing kept");
    click(c, "[data-testid=openai-admin-save]").await?;
    assert_eq!(
        js(
            c,
            "return document.getElementById('openai-admin-key')?.value ?? 'gone'"
        )
        .await?,
        "",
        "the field is emptied as it is sent"
    );
    let refusal = wait_until("the refusal, in view", Duration::from_secs(60), || async {
        Ok(
            match displayed(c, "[data-testid=openai-admin] [role=alert]").await? {
                Some(e) => Some(e.text().await?),
                None => None,
            },
        )
    })
    .await?;
    eprintln!("refusal: {refusal}");
    assert!(
        refusal.contains("OpenAI refused the admin key"),
        "{refusal}"
    );
    assert!(!refusal.contains(&wrong), "{refusal}");
    assert!(
        vault.read(&admin_entry).await.is_err(),
        "nothing kept in the keychain"
    );
    assert_eq!(how(c).await?, "guided", "nothing changed");
    assert_eq!(
        js(
            c,
            "return document.getElementById('openai-admin-key').value"
        )
        .await?,
        "",
        "the admin key is not put back"
    );
    assert_eq!(
        js(
            c,
            "return document.getElementById('openai-admin-project').value"
        )
        .await?,
        project,
        "the project is kept for the next try"
    );

    eprintln!("=== the right admin key: checked at OpenAI, kept in the keychain, one click");
    type_into(c, "#openai-admin-key", admin).await?;
    click(c, "[data-testid=openai-admin-save]").await?;
    let saved = wait_until("\"saved\"", Duration::from_secs(60), || async {
        let t = text_of(c, "[data-testid=openai-admin-saved]").await?;
        Ok((!t.is_empty()).then_some(t))
    })
    .await?;
    eprintln!("{saved}");
    assert!(
        saved.contains("saved in your keychain") && saved.contains(project),
        "{saved}"
    );
    assert_eq!(vault.read(&admin_entry).await?.expose(), admin);
    assert_eq!(how(c).await?, "one_click");
    let item = text_of(c, PROVIDER_LI).await?;
    assert!(item.contains("Rotates in one click"), "{item}");
    assert!(
        displayed(c, "#openai-admin-key").await?.is_none(),
        "the form is gone once it is one click"
    );
    no_key_on_page(c, &[admin, &wrong, first]).await?;

    eprintln!("=== Rotate: a new service account; this once, the person deletes their own key");
    let result = press_for_result(c, "#key-rotate-provider-key", Duration::from_secs(180)).await?;
    assert!(
        result.contains("One more step: delete the old key"),
        "{result}"
    );
    let made = vault.read(&staging(&provider_entry())).await?;
    let accounts = openai.service_accounts(project);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(
        openai.account_of(made.expose()).as_deref(),
        Some(accounts[0].0.as_str())
    );
    answers(app, "waiting for you")?;
    assert!(
        openai.delete_user_key(first),
        "the person deletes their key"
    );
    let result = press_for_result(c, "#keys-resume", Duration::from_secs(180)).await?;
    assert!(result.contains("Model provider key: Rotated"), "{result}");
    assert_eq!(vault.read(&provider_entry()).await?.expose(), made.expose());

    eprintln!("=== Rotate again: one click, the old service account deleted at OpenAI");
    let old_account = accounts[0].0.clone();
    let result = press_for_result(c, "#key-rotate-provider-key", Duration::from_secs(180)).await?;
    assert!(result.contains("Model provider key: Rotated"), "{result}");
    let now = vault.read(&provider_entry()).await?;
    assert_ne!(now.expose(), made.expose(), "a new key");
    let new_account = openai
        .account_of(now.expose())
        .context("the new key's service account")?;
    assert_ne!(new_account, old_account);
    let ids: Vec<String> = openai
        .service_accounts(project)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec![new_account], "the old service account deleted");
    assert!(!openai.would_allow(made.expose()), "the old key is refused");
    assert!(vault.read(&staging(&provider_entry())).await.is_err());
    answers(app, "hello after one click")?;
    no_key_on_page(c, &[admin, first, made.expose(), now.expose()]).await
}
