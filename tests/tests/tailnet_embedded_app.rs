//! "Use Clawkeeper's own Tailscale node" through the app's facade, as the status window
//! asks for it: the Tailscale API key saved (contract fake), a single-use tagged key minted
//! for this computer, the real embedded node (tailscale-rs) started with it against a
//! control plane on loopback that refuses connections — the only kind this machine has —
//! so the join ends in the clear "couldn't reach Tailscale" problem within the configured
//! time; the unused key is revoked at the API, the node's folder is 0700 and its identity
//! file 0600, the choice is not remembered, and neither the API token nor the minted key is
//! in any file of the data folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::app::Clawkeeper;
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::tailnet::TAG;
use clawkeeper_core::Secret;
use clawkeeper_tests::fake_tailscale::{
    policy_with_tag, ContractFakeTailscale, FakeTailscaleConfig,
};
use clawkeeper_tests::{env, scan, tailscaled};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn the_app_starts_its_own_node_with_a_minted_key_and_says_when_tailscale_is_unreachable() {
    if !env::isolated() || !tailscaled::no_default_route() {
        eprintln!("skipped: run through scripts/test.sh (keychain; no route out for the node)");
        return;
    }
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-test-embedded-{}", std::process::id()),
    );
    let fake = ContractFakeTailscale::start(FakeTailscaleConfig {
        policy: policy_with_tag(),
        ..FakeTailscaleConfig::default()
    })
    .await
    .unwrap();
    // A control plane that refuses: a port that was free a moment ago.
    let closed = env::free_port();
    std::env::set_var("CLAWKEEPER_TAILSCALE_API", fake.base_url());
    std::env::set_var(
        "CLAWKEEPER_TAILSCALE_SOCKET",
        "/nonexistent/tailscaled.sock",
    );
    std::env::set_var(
        "CLAWKEEPER_TAILSCALE_CONTROL",
        format!("http://127.0.0.1:{closed}"),
    );
    std::env::set_var("CLAWKEEPER_TAILSCALE_START_TIMEOUT", "2");
    let data = tempfile::tempdir().unwrap();
    let paths = Paths {
        data_dir: data.path().join("data"),
        runtime_dir: data.path().join("runtime"),
    };
    let app = Clawkeeper::open(paths.clone(), Policy::default())
        .await
        .unwrap();
    assert!(app.tailnet().is_none(), "no Tailscale on this computer");

    // Without a saved key there is nothing to join with: a clear problem, nothing minted.
    let e = app.tailnet_use_embedded().await.unwrap_err();
    assert_eq!(e.code, "tailscale_key_missing");
    assert!(fake.minted_keys().is_empty());

    let v = app
        .tailnet_key_save(Secret::new(fake.api_token()), None, None)
        .await
        .unwrap();
    assert_eq!(v.tag_owners_ok, Some(true));

    let t = Instant::now();
    let e = app.tailnet_use_embedded().await.unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(
            e.code.as_str(),
            "tailscale_unreachable" | "tailscale_timeout"
        ),
        "{e:?}"
    );
    assert!(e.message.contains("Couldn't reach Tailscale"), "{e:?}");
    assert!(e.hint.is_some());
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");

    let keys = fake.minted_keys();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert!(
        !k.reusable && !k.ephemeral && k.preauthorized && k.tags == [TAG],
        "{k:?}"
    );
    assert!(k.revoked, "the unused key is revoked");
    fake.check_minted_keys().unwrap();

    let dir = paths.tailnet_node_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let file = dir.join(clawkeeper_core::tailnet::embedded::STATE_FILE);
    if file.exists() {
        assert_eq!(mode(&file), 0o600);
    }
    assert!(
        app.tailnet().is_none(),
        "no node in use after a failed start"
    );
    assert_eq!(
        app.store()
            .setting(clawkeeper_core::app::EMBEDDED_SETTING)
            .await
            .unwrap(),
        None
    );
    let hits = scan::files_containing(&paths.data_dir, &[&fake.api_token(), &k.key]);
    assert!(hits.is_empty(), "{hits:?}");
    app.shutdown().await;
}
