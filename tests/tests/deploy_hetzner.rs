//! Deploy end to end with real parts wherever they can run here: the Hetzner contract fake
//! creates the "server" (its address is a real test host: systemd-nspawn, real sshd, its
//! own network namespace; the fake's create puts the app's public key on it as cloud-init
//! would), then real provisioning over russh installs Node and the pinned OpenClaw from
//! the offline npm mirror, the gateway answers a chat through the SSH tunnel (its model is
//! the contract fake model on our side of the host's veth), the host itself is inspected,
//! and delete leaves nothing at the provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::cloud::hetzner::{HetznerClient, RetryPolicy};
use clawkeeper_core::gateway::chat::{parse_chat_event, RunState, MAIN_SESSION};
use clawkeeper_core::local::verify::CheckStatus;
use clawkeeper_core::provision::{
    self, sources::PackageSources, steps::ProvisionSpec, ModelEndpoint, ProvisionSecrets,
};
use clawkeeper_core::server::deploy::{self, DeployProgress, DeployRequest};
use clawkeeper_core::server::ServerLink;
use clawkeeper_core::store::Store;
use clawkeeper_core::vault::{SecretKind, SecretRef, Vault};
use clawkeeper_core::{Secret, UserFacing};
use clawkeeper_tests::env;
use clawkeeper_tests::fake_hetzner::{cloud_init_stand_in, ContractFakeHetzner, FakeHetznerConfig};
use clawkeeper_tests::fake_model::{ContractFakeModel, DEFAULT_MODEL_IDS, REPLY_PREFIX};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn deploy_provision_chat_over_the_tunnel_then_delete() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts, npm mirror)");
        return;
    }
    let started = Instant::now();
    let host = TestHost::boot(HostOptions::default()).await.unwrap();
    let gw_ip = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await.unwrap();
    let provider_key = "sk-planted-provider-key-deploy-5b2e";
    let model = ContractFakeModel::start_on(
        (gw_ip, 0).into(),
        provider_key.into(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await
    .unwrap();
    let fake = ContractFakeHetzner::start(FakeHetznerConfig {
        server_ipv4: host.addr().to_string(),
        on_server_created: Some(cloud_init_stand_in(host.root().to_owned())),
        ..FakeHetznerConfig::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("clawkeeper.db"))
        .await
        .unwrap();
    let vault = Vault::new(&std::env::var("CLAWKEEPER_KEYCHAIN_NAMESPACE").unwrap());
    let id = format!("deploy-{}", std::process::id());
    let client = HetznerClient::with_base_url(
        fake.base_url(),
        Secret::new(fake.token()),
        RetryPolicy::fast(),
    )
    .unwrap();

    // 1. The cloud part: types and prices come from the API, then the server.
    let types = client.server_types().await.unwrap();
    let cheapest = types
        .iter()
        .filter(|t| t.deprecation.is_none() && t.price_in("fsn1").is_some())
        .min_by(|a, b| {
            let p = |t: &&clawkeeper_core::cloud::hetzner::ServerType| {
                t.price_in("fsn1")
                    .unwrap()
                    .price_monthly
                    .gross
                    .parse::<f64>()
                    .unwrap()
            };
            p(a).total_cmp(&p(b))
        })
        .unwrap()
        .name
        .clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let t_deploy = Instant::now();
    let connected = deploy::deploy(
        &store,
        &vault,
        &client,
        &DeployRequest {
            instance_id: id.clone(),
            name: "Deploy test".into(),
            server_type: cheapest,
            location: "fsn1".into(),
        },
        CancellationToken::new(),
        &mut |p: &DeployProgress| log.lock().unwrap().push(p.clone()),
    )
    .await
    .unwrap();
    let deploy_time = t_deploy.elapsed();
    assert_eq!(
        connected.record.host_key.fingerprint,
        host.host_key_fingerprint_sha256().unwrap(),
        "the pinned key is the host's real one"
    );
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|p| matches!(p, DeployProgress::HostKeyPinned { .. })));
    assert_eq!(fake.live("server"), 1);

    // 2. Provisioning, for real, over the russh session.
    let token = Secret::random(32);
    vault
        .store(&SecretRef::new(SecretKind::GatewayToken, &id), &token)
        .await
        .unwrap();
    let mut spec = ProvisionSpec::new(&id);
    spec.sources = PackageSources {
        npm_registry: mirror.url(),
    };
    spec.model = Some(ModelEndpoint {
        base_url: model.base_url(),
        model: DEFAULT_MODEL_IDS[0].into(),
    });
    let secrets = ProvisionSecrets {
        gateway_token: token.clone(),
        provider_key: Some(Secret::new(provider_key)),
    };
    let t_prov = Instant::now();
    let outcome = provision::provision(
        &connected.session,
        &store,
        &spec,
        &secrets,
        CancellationToken::new(),
        |p| eprintln!("[{}/{}] {} {:?}", p.index, p.total, p.name, p.state),
    )
    .await
    .unwrap_or_else(|e| panic!("provisioning failed: {e} [{}] {:?}", e.code(), e.hint()));
    let prov_time = t_prov.elapsed();
    let failed: Vec<_> = outcome
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Pass)
        .map(|c| (c.id, c.detail.clone()))
        .collect();
    assert!(failed.is_empty(), "posture checks failed: {failed:?}");

    // Provisioning waited for the first-boot setup to finish.
    host.inspect_ok("test -s /var/tmp/ck-cloud-init-waited")
        .await
        .expect("provisioning did not wait for cloud-init status --wait");

    // 3. The host itself, read without our code.
    let ss = host.inspect_ok("ss -ltnpH").await.unwrap();
    let gateway_lines: Vec<&str> = ss.lines().filter(|l| l.contains(":18789")).collect();
    assert!(!gateway_lines.is_empty(), "gateway not listening: {ss}");
    for l in &gateway_lines {
        assert!(
            l.contains("127.0.0.1:18789") || l.contains("[::1]:18789"),
            "gateway on a non-loopback address: {l}"
        );
    }
    let sshd = host.inspect_ok("sshd -T").await.unwrap();
    for want in [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin without-password",
    ] {
        assert!(sshd.lines().any(|l| l == want), "sshd -T lacks {want:?}");
    }
    let nft = host.inspect_ok("nft list ruleset").await.unwrap();
    assert!(nft.contains("policy drop"), "{nft}");
    assert!(nft.contains("tcp dport 22"), "{nft}");
    let active = host
        .inspect_ok("systemctl is-active clawkeeper-gateway.service")
        .await
        .unwrap();
    assert_eq!(active.trim(), "active");
    // From outside, the gateway port is closed (firewall + loopback bind).
    assert!(
        tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect((host.addr(), 18789))
        )
        .await
        .map(|r| r.is_err())
        .unwrap_or(true),
        "the gateway port answered from outside the server"
    );

    // 4. Chat through the SSH tunnel, exactly as the desktop does.
    let link = ServerLink::new(store.clone(), vault.clone(), &id);
    let tunnel = link.gateway_tunnel().await.unwrap();
    let gw = link.gateway(&tunnel);
    gw.wait_connected(Duration::from_secs(60)).await.unwrap();
    let mut events = gw.events();
    let run_id = gw.chat_send(MAIN_SESSION, "hello over ssh").await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev.event != "chat" {
                continue;
            }
            if let Some(u) = parse_chat_event(&ev.payload) {
                if u.run_id == run_id && u.state == RunState::Final {
                    return u.text.unwrap_or_default();
                }
                assert_ne!(u.state, RunState::Error, "{u:?}");
            }
        }
    })
    .await
    .expect("no reply within 120 s");
    assert_eq!(reply, format!("{REPLY_PREFIX}hello over ssh"));
    assert!(!model.chat_requests().is_empty());
    gw.shutdown();
    tunnel.close();

    // 5. Planted secrets: nowhere readable on the host but the root-only credential files,
    //    not in any process's arguments, not in the journal. The needles go to the host in
    //    a root-only file, so no command line of ours carries them.
    let needle_token = token.expose().to_owned();
    let needles = host.root().join("root/.ck-needles");
    std::fs::write(&needles, format!("{provider_key}\n{needle_token}\n")).unwrap();
    std::fs::set_permissions(&needles, std::fs::Permissions::from_mode(0o600)).unwrap();
    let scan = host
        .inspect(
            r#"N=/root/.ck-needles
echo "== world-readable files"
find / -xdev -type f -perm -o+r -size -5M -print0 2>/dev/null | xargs -0 grep -laFf "$N" 2>/dev/null
echo "== process arguments"
for f in /proc/[0-9]*/cmdline; do
  grep -qaFf "$N" "$f" 2>/dev/null && echo "$f: $(tr '\0' ' ' < "$f")"
done
echo "== journal"
journalctl --no-pager -q 2>/dev/null | grep -caFf "$N"
true"#,
        )
        .await
        .unwrap();
    std::fs::remove_file(&needles).unwrap();
    let report = String::from_utf8_lossy(&scan.stdout).into_owned();
    assert_eq!(
        report, "== world-readable files\n== process arguments\n== journal\n0\n",
        "planted secrets found on the host:\n{report}"
    );
    let local_hits =
        clawkeeper_tests::scan::files_containing(dir.path(), &[provider_key, &needle_token]);
    assert!(local_hits.is_empty(), "{local_hits:?}");

    // 6. Delete: everything at the provider is gone, and the app forgets the server.
    let removed = deploy::delete(&store, &vault, &client, &id)
        .await
        .unwrap()
        .at_provider;
    assert_eq!(removed.len(), 3, "{removed:?}");
    for kind in ["server", "firewall", "ssh_key"] {
        assert_eq!(fake.live(kind), 0, "{kind} left at the provider");
    }
    assert!(vault
        .read(&SecretRef::new(SecretKind::SshKey, &id))
        .await
        .is_err());

    eprintln!(
        "deploy (fake cloud + SSH + pin + login): {deploy_time:.2?}, of which the fake's simulated waits {:.2?}; provisioning: {prov_time:.1?}; whole test {:.1?}",
        fake.simulated_wait(),
        started.elapsed()
    );
    host.stop().await;
}
