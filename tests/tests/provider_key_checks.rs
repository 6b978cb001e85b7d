//! How a guided rotation checks a model provider key the person pasted, before anything is
//! installed — here for Anthropic, whose own API takes the key as `x-api-key` (with an
//! `anthropic-version`), not as the bearer token the OpenAI-compatible check sends. Against
//! the contract fake model speaking Anthropic's `GET /v1/models`; the keys list (real
//! keychain and SQLite) names the Claude Console as the place to make and delete keys, and
//! for OpenAI itself offers to take an Admin key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use clawkeeper_core::app::{Clawkeeper, HowToRotate, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::rotation::gateway_token::Verdict;
use clawkeeper_core::rotation::provider_key::KeyCheck;
use clawkeeper_core::rotation::KeyId;
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::Secret;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_model::{ContractFakeModel, KeyAuth};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_key_is_checked_the_way_anthropic_takes_it() {
    let old = format!("sk-ant-api03-old-{}", Secret::random(12).expose());
    let new = format!("sk-ant-api03-new-{}", Secret::random(12).expose());
    let live = Arc::new(Mutex::new(HashSet::from([old.clone(), new.clone()])));
    let serves = live.clone();
    let fake = ContractFakeModel::start_with_auth(
        ([127, 0, 0, 1], 0).into(),
        KeyAuth::Check(Arc::new(move |k: &str| serves.lock().unwrap().contains(k))),
        vec!["claude-sonnet-4-5".into()],
        None,
    )
    .await
    .unwrap();
    fake.speak_anthropic_models(true);
    let anthropic = KeyCheck::Anthropic {
        base_url: fake.base_url(),
    };
    let openai_style = KeyCheck::Models {
        base_url: fake.base_url(),
    };

    assert_eq!(
        anthropic.verdict(&Secret::new(new.clone())).await,
        Verdict::Accepted
    );
    assert_eq!(
        anthropic
            .verdict(&Secret::new("sk-ant-api03-never-made"))
            .await,
        Verdict::Refused
    );
    // A bearer token is not how Anthropic's own API takes a key: the OpenAI-style check
    // would have called a working key refused.
    assert_eq!(
        openai_style.verdict(&Secret::new(new.clone())).await,
        Verdict::Refused
    );
    // The person deleted the old key in the Console: refused.
    live.lock().unwrap().remove(&old);
    assert_eq!(
        anthropic.verdict(&Secret::new(old.clone())).await,
        Verdict::Refused
    );
    let asked = fake.requests();
    assert!(
        asked.iter().all(|r| r.path == "/v1/models"),
        "only the key check was asked: {asked:?}"
    );

    if !env::isolated() {
        eprintln!("skipped the keys list: needs scripts/test.sh (keychain)");
        return;
    }
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-anthropic-{}", std::process::id()),
    );
    let data = tempfile::tempdir().unwrap();
    let app = Clawkeeper::open(Paths::under(data.path()), Policy::default())
        .await
        .unwrap();
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(fake.base_url()),
        model: Some("claude-sonnet-4-5".into()),
        api_key: Secret::new(new.clone()),
    })
    .await
    .unwrap();
    let keys = app.keys_inventory().await.unwrap();
    let row = keys
        .iter()
        .find(|k| k.key == KeyId::ProviderKey)
        .expect("a provider key row");
    assert_eq!(row.how, HowToRotate::Guided);
    assert!(
        row.note.is_some_and(|n| n.contains("Claude Console")),
        "{row:?}"
    );
    assert!(!row.sign_in, "no OpenRouter sign-in for Anthropic");
    assert!(!row.admin_key, "no OpenAI Admin key for Anthropic");

    // OpenAI itself: an Admin key would make it one click, and the window offers to take one.
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some("https://api.openai.com/v1".into()),
        model: Some("gpt-5-mini".into()),
        api_key: Secret::new(format!("sk-proj-{}", Secret::random(12).expose())),
    })
    .await
    .unwrap();
    let keys = app.keys_inventory().await.unwrap();
    let row = keys
        .iter()
        .find(|k| k.key == KeyId::ProviderKey)
        .expect("a provider key row");
    assert_eq!(row.how, HowToRotate::Guided, "no admin key saved yet");
    assert!(row.admin_key && !row.sign_in, "{row:?}");
    let json = serde_json::to_value(row).unwrap();
    assert_eq!(json["adminKey"], true, "{json}");
}
