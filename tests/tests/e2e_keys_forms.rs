//! The Keys section's two forms for the model provider key, end to end with the real window
//! (tauri-driver → `clawkeeper-window` → the tray daemon, opened as the tray's "Rotate
//! keys…" opens it), the real OpenClaw gateway, the real keychain and SQLite:
//!
//! - **The OpenAI Admin key** ("Make changing it one click"), with the **contract fake of
//!   OpenAI's Admin API** and the contract fake model standing in for api.openai.com/v1
//!   (`CLAWKEEPER_OPENAI_MODEL_API`). A wrong admin key: a clear refusal in view, the field
//!   emptied, nothing kept. The right one: kept in the keychain, the key's row says it
//!   rotates in one click. "Rotate": a new service account (this once the person deletes
//!   the key they made, then "Check again"); "Rotate" again: one click, the old service
//!   account deleted at OpenAI, the assistant answers with the new key.
//!
//! No key ever on the page. Screenshot: docs/screenshots/keys-openai-admin.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{Context, Result};
use clawkeeper_core::rotation::staging;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth};
use clawkeeper_tests::fake_openai::ContractFakeOpenAi;
use clawkeeper_tests::local_window::{
    keys_in_view_and_working, text_of, window_needs, LocalWindow,
};
use clawkeeper_tests::webdriver::{click, displayed, js, screenshot, wait_until};
use fantoccini::Client;
use std::ffi::OsString;
use std::time::Duration;

const PROVIDER_LI: &str = "#keys-list li[data-key='provider-key']";

fn provider_entry() -> SecretRef {
    SecretRef::new(SecretKind::ProviderKey, "local")
}

/// Clear the last result, press `css`, and wait for the provider key's new result (it
/// says the key's name).
async fn press_for_result(c: &Client, css: &str, timeout: Duration) -> Result<String> {
    js(
        c,
        "document.getElementById('keys-result').replaceChildren(); return ''",
    )
    .await?;
    click(c, css).await?;
    let result = wait_until("the provider key's result", timeout, || async {
        let t = text_of(c, "#keys-result").await?;
        Ok(t.contains("Model provider key").then_some(t))
    })
    .await?;
    eprintln!("result: {result}");
    Ok(result)
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
    let model = ContractFakeModel::start_with_auth(
        ([127, 0, 0, 1], 0).into(),
        KeyAuth::Check(openai.key_check()),
        vec!["echo-1".into()],
        None,
    )
    .await?;
    // The model fake stands in for https://api.openai.com/v1, the Admin API fake for OpenAI's.
    let env: [(&str, OsString); 2] = [
        ("CLAWKEEPER_OPENAI_API", openai.api_base().into()),
        ("CLAWKEEPER_OPENAI_MODEL_API", model.base_url().into()),
    ];
    for (k, v) in &env {
        std::env::set_var(k, v);
    }

    eprintln!("=== the provider: OpenAI, a key the person made (CLI, key on stdin)");
    app.cli(
        &[
            "provider",
            "--kind",
            "openai-compatible",
            "--base-url",
            &model.base_url(),
            "--model",
            "echo-1",
        ],
        Some(&first),
    )?;
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
    let field = displayed(c, "#openai-admin-key")
        .await?
        .context("the admin key's field")?;
    let wrong = format!("sk-admin-wrong-{}", std::process::id());
    field.send_keys(&wrong).await?;
    displayed(c, "#openai-admin-project")
        .await?
        .context("the project's field")?
        .send_keys(project)
        .await?;
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
    displayed(c, "#openai-admin-key")
        .await?
        .context("the admin key's field")?
        .send_keys(admin)
        .await?;
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
