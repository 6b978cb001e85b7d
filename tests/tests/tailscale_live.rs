//! Opt-in, against a **real** tailnet: skipped unless `CLAWKEEPER_LIVE_TAILSCALE_API` holds
//! a Tailscale API access token (`tskey-api-…`) or OAuth client secret (`tskey-client-…`,
//! scopes `auth_keys`, `devices:core`, `policy_file:read`) of a tailnet whose policy lets
//! it own `tag:clawkeeper`. It talks to api.tailscale.com and Tailscale's control plane, so
//! it cannot run inside `scripts/test.sh` (no route out there); run it by hand:
//!
//! ```text
//! CLAWKEEPER_LIVE_TAILSCALE_API=tskey-api-… \
//! CLAWKEEPER_TAILSCALE_BIN=$(scripts/tailscale-bin.sh) \
//!   cargo test -p clawkeeper-tests --test tailscale_live -- --nocapture
//! ```
//!
//! What it does, as the app does it: checks the policy's tagOwners; mints a single-use,
//! pre-authorized, tagged, short-lived key and reads it back; then (when
//! `CLAWKEEPER_TAILSCALE_BIN` is set) starts the official tailscaled in userspace mode with
//! its state in a temp dir, joins with that key through `--auth-key=file:` (0600), waits
//! for `Running` through the app's LocalAPI client, finds the node as a device through the
//! API (tagged, with a 100.x address), checks the key cannot be used again, dials its own
//! tailnet address through the LocalAPI; then rotates the node's key as
//! `rotation::tailscale_node` does on a server — a second single-use key in a 0600 root
//! file at `/run/clawkeeper/tailscale-authkey` (so: run as root), the app's own re-auth
//! script (`tailscale up --force-reauth --auth-key=file:…` with the join's flags) — and
//! checks the success path no test here can reach: Running again, the same device (same
//! `nodeId` and address) with a *new* node key, connected, no device listing the old node
//! key, the key spent and then revoked; and finally deletes the device and revokes the keys
//! — nothing is left on the tailnet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::tailnet::api::KeyRequest;
use clawkeeper_core::tailnet::local_api::{BackendState, LocalApi, SystemTailscale};
use clawkeeper_core::tailnet::{Credentials, Tailnet, TailscaleClient, TAG};
use clawkeeper_core::Secret;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_ENV: &str = "CLAWKEEPER_LIVE_TAILSCALE_API";

#[tokio::test(flavor = "multi_thread")]
async fn live_tailnet_mint_join_find_and_clean_up() {
    let Some(secret) = std::env::var(API_ENV).ok().filter(|s| !s.trim().is_empty()) else {
        eprintln!("skipped: set {API_ENV} to run against a real tailnet (see this file's docs)");
        return;
    };
    let client =
        TailscaleClient::new(Credentials::from_pasted(Secret::new(secret)).unwrap()).unwrap();
    assert!(
        client.tag_owners_ok().await.unwrap(),
        "the tailnet's policy must let these credentials own {TAG}"
    );
    let hostname = format!("ck-live-{}", std::process::id());
    let key = client
        .mint_auth_key(&KeyRequest::for_instance(&hostname))
        .await
        .unwrap();
    let info = client.key_info(&key.info.id).await.unwrap();
    assert!(info.revoked.is_none() && !info.invalid, "{info:?}");
    let caps = &info.capabilities;
    assert!(
        !caps.reusable && !caps.ephemeral && caps.preauthorized && caps.tags == [TAG],
        "{caps:?}"
    );
    eprintln!("minted key {} (expires {:?})", info.id, info.expires);

    let Some(bin) = std::env::var_os("CLAWKEEPER_TAILSCALE_BIN") else {
        client.revoke_key(&key.info.id).await.unwrap();
        eprintln!("CLAWKEEPER_TAILSCALE_BIN not set: the API part passed; not joining a node");
        return;
    };
    let bin = std::path::PathBuf::from(bin);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock = d.join("tailscaled.sock");
    let mut daemon = Command::new(bin.join("tailscaled"))
        .arg("--tun=userspace-networking")
        .arg(format!("--statedir={}", d.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--state={}", d.join("state").display()))
        .arg("--port=0")
        .env("TS_LOGS_DIR", d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let key_file = d.join("authkey");
    std::fs::write(&key_file, key.key.expose()).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up = Command::new(bin.join("tailscale"))
        .arg(format!("--socket={}", sock.display()))
        .arg("up")
        .arg(format!("--auth-key=file:{}", key_file.display()))
        .arg(format!("--hostname={hostname}"))
        .arg(format!("--advertise-tags={TAG}"))
        // The server's join's flags (provision/scripts/tailscale_join.sh).
        .arg("--accept-dns=false")
        .arg("--timeout=60s")
        .status()
        .unwrap();
    std::fs::remove_file(&key_file).unwrap();
    assert!(up.success(), "tailscale up with the minted key");

    let api = LocalApi::new(&sock);
    let status = api.status().await.unwrap();
    assert_eq!(status.backend_state, BackendState::Running);
    let node = status.self_node.clone().unwrap();
    assert!(node.tags.iter().any(|t| t == TAG), "{node:?}");
    let system = SystemTailscale::new(LocalApi::new(&sock));
    assert!(system.state().await.is_connected());

    let device = client.find_device(&hostname).await.unwrap().unwrap();
    assert!(device.has_tag(TAG), "{device:?}");
    let addr = device.ipv4().unwrap();
    assert_eq!(Some(addr), node.ipv4());
    // Single-use: the key is spent.
    let spent = client.key_info(&key.info.id).await;
    eprintln!("after use: {spent:?}");

    // Our own tailnet address, dialled through the LocalAPI: a listener served by
    // tailscaled's netstack is not needed to see the dial reach the node — a refused
    // connection comes back as an error, not a hang.
    let t = Instant::now();
    let dialled =
        tokio::time::timeout(Duration::from_secs(20), system.dial(&addr.to_string(), 9)).await;
    eprintln!(
        "dial own address: {:?} in {:.1?}",
        dialled.as_ref().map(|r| r.is_ok()),
        t.elapsed()
    );
    if let Ok(Ok(mut s)) = dialled {
        let _ = s.write_all(b"x").await;
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
    }

    // The key rotation of the node (the success path of rotation::tailscale_node).
    let reauth_key = reauth(&client, &bin, &sock, &hostname).await;
    let after = client.find_device(&hostname).await.unwrap().unwrap();
    assert_eq!(after.api_id(), device.api_id(), "the same device");
    assert_eq!(after.ipv4(), device.ipv4(), "the same address");
    assert!(
        !after.node_key.is_empty() && after.node_key != device.node_key,
        "a new node key"
    );
    assert_ne!(after.connected_to_control, Some(false));
    let devices = client.devices().await.unwrap();
    assert!(
        devices.iter().all(|d| d.node_key != device.node_key),
        "no device lists the old node key"
    );
    let status = api.status().await.unwrap();
    assert_eq!(status.backend_state, BackendState::Running);
    eprintln!(
        "re-authenticated: expiry {:?} -> {:?}",
        device.expires, after.expires
    );
    client.revoke_key(&reauth_key).await.unwrap();
    let k = client.key_info(&reauth_key).await.unwrap();
    assert!(k.revoked.is_some() || k.invalid, "{k:?}");

    client.delete_device(device.api_id()).await.unwrap();
    client.revoke_key(&key.info.id).await.unwrap();
    assert!(client.find_device(&hostname).await.unwrap().is_none());
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// Log the node in again as the app does on a server: a fresh single-use key in
/// `/run/clawkeeper/tailscale-authkey` (root, 0600) and the app's re-auth script, with
/// `tailscale` on PATH speaking to this test's tailscaled. The key's id.
async fn reauth(
    client: &TailscaleClient,
    bin: &std::path::Path,
    sock: &std::path::Path,
    hostname: &str,
) -> String {
    use clawkeeper_core::provision::tailnet::{self, TailnetSpec};
    use std::os::unix::fs::PermissionsExt;
    let key = client
        .mint_auth_key(&KeyRequest::for_instance(hostname))
        .await
        .unwrap();
    let file = std::path::Path::new(tailnet::KEY_FILE);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, key.key.expose()).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrap = tempfile::tempdir().unwrap();
    let tailscale = wrap.path().join("tailscale");
    std::fs::write(
        &tailscale,
        format!(
            "#!/bin/sh\nexec {} --socket={} \"$@\"\n",
            bin.join("tailscale").display(),
            sock.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tailscale, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut ts = TailnetSpec::new(hostname);
    ts.join_timeout_secs = 60;
    let mut child = Command::new("bash")
        .arg("-s")
        .env(
            "PATH",
            format!(
                "{}:{}",
                wrap.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tailnet::reauth_script(&ts).as_bytes())
        .unwrap();
    let out = child.wait().unwrap();
    assert!(out.success(), "the re-auth script");
    assert!(!file.exists(), "the key file is gone");
    let spent = client.key_info(&key.info.id).await.unwrap();
    eprintln!(
        "re-auth key after use: invalid={} revoked={:?}",
        spent.invalid, spent.revoked
    );
    key.info.id
}
