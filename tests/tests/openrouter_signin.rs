//! "Sign in with OpenRouter" end to end against the OpenRouter contract fake: the browser
//! (here reqwest, following the redirect like a browser) comes back to our loopback
//! callback, the code is exchanged with the PKCE verifier, and the key lands in the real
//! keychain — never in the database or on disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use clawkeeper_core::app::{Clawkeeper, Event};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
use clawkeeper_tests::{env, scan};
use std::time::Duration;

/// A Clawkeeper on a temp dir, with OpenRouter pointed at a fresh contract fake.
async fn setup(approve: bool) -> (ContractFakeOpenRouter, tempfile::TempDir, Clawkeeper) {
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-oauth-{approve}-{}", std::process::id()),
    );
    let fake = ContractFakeOpenRouter::start(approve).await.unwrap();
    std::env::set_var("CLAWKEEPER_OPENROUTER_SITE", fake.origin());
    let dir = tempfile::tempdir().unwrap();
    let app = Clawkeeper::open(Paths::under(dir.path()), Policy::default())
        .await
        .unwrap();
    (fake, dir, app)
}

/// The first `provider` event: (configured, error).
async fn provider_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
) -> (bool, Option<clawkeeper_core::Problem>) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::Provider { configured, error }) = events.recv().await {
                return (configured, error);
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sign_in_with_openrouter_saves_the_key_in_the_keychain() {
    if !env::isolated() {
        eprintln!("skipped: needs the test session's keyring (scripts/test.sh)");
        return;
    }
    let (fake, dir, app) = setup(true).await;
    let mut events = app.events();

    let url = app.start_openrouter_sign_in().await.unwrap();
    assert!(
        url.contains("code_challenge_method=S256")
            && url.contains("callback_url=http%3A%2F%2F127.0.0.1"),
        "{url}"
    );
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success());
    assert!(page.text().await.unwrap().contains("You're signed in"));

    let configured = provider_event(&mut events).await;
    assert_eq!(configured, (true, None));

    let issued = fake.issued();
    assert_eq!(issued.len(), 1);
    let overview = app.overview().await.unwrap();
    assert_eq!(
        overview.provider.key_fingerprint.as_deref(),
        Some(Secret::new(issued[0].clone()).fingerprint().as_str())
    );
    assert_eq!(overview.provider.model.as_deref(), Some("openrouter/auto"));
    let stored = app
        .instance()
        .vault()
        .read(&app.instance().provider_key_ref())
        .await
        .unwrap();
    assert_eq!(stored.expose(), issued[0]);
    assert!(
        scan::files_containing(dir.path(), &[&issued[0]]).is_empty(),
        "the key must not reach the disk"
    );
    app.instance()
        .vault()
        .delete(&app.instance().provider_key_ref())
        .await
        .unwrap();
}

#[tokio::test]
async fn declined_sign_in_says_so() {
    if !env::isolated() {
        eprintln!("skipped: needs the test session's keyring (scripts/test.sh)");
        return;
    }
    let (fake, _dir, app) = setup(false).await;
    let mut events = app.events();
    let url = app.start_openrouter_sign_in().await.unwrap();
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("not finished"));
    let (configured, error) = provider_event(&mut events).await;
    assert!(!configured);
    assert_eq!(error.unwrap().code, "signin_denied");
    assert_eq!(fake.exchanges(), 0);
    assert!(!app.overview().await.unwrap().provider.configured);
}
