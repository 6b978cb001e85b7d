#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The offline npm registry (scripts/npm-mirror.sh + tests/src/npm_mirror.rs)
//! is complete: a real `npm ci` of the tree provisioning pins (its package.json
//! and package-lock.json, as crates/core/src/provision/scripts/openclaw.sh
//! installs them on a server) with the pinned Node and no network but the
//! mirror succeeds, and never asks for anything the mirror lacks. Provisioning tests depend on this; when it fails, the list
//! of 404s says what scripts/npm-mirror.sh must add.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use clawkeeper_core::provision::sources;
use clawkeeper_tests::npm_mirror::NpmMirror;

const OPENCLAW_VERSION: &str = "2026.9.6";
const NODE_VERSION: &str = "24.21.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testhost_npm_mirror_installs_openclaw_offline() {
    let runtime = clawkeeper_tests::env::test_runtime()
        .expect("CLAWKEEPER_TEST_RUNTIME is not set: run scripts/test.sh");
    let node_bin = runtime.join(format!("node-{NODE_VERSION}/node_modules/node/bin"));
    assert!(
        node_bin.join("node").exists(),
        "no node in {}",
        node_bin.display()
    );

    let mirror = NpmMirror::start_from_env(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let npmrc = tmp.path().join("npmrc");
    std::fs::write(
        &npmrc,
        format!(
            "registry={}\nfetch-retries=0\nfetch-timeout=20000\naudit=false\nfund=false\nupdate-notifier=false\n",
            mirror.url()
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let prefix = tmp.path().join("prefix");
    std::fs::create_dir(&prefix).unwrap();
    std::fs::write(prefix.join("package.json"), sources::OPENCLAW_PACKAGE_JSON).unwrap();
    std::fs::write(prefix.join("package-lock.json"), sources::OPENCLAW_LOCK).unwrap();
    let t0 = Instant::now();
    // The system's npm, run by the pinned Node first on PATH (as scripts/setup.sh does).
    let out = tokio::process::Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(&prefix)
        .env("PATH", path)
        .env("npm_config_userconfig", &npmrc)
        .env("npm_config_globalconfig", tmp.path().join("npmrc-global"))
        .env("npm_config_cache", tmp.path().join("cache"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    eprintln!(
        "npm ci from the mirror: {:?}, {} requests served",
        t0.elapsed(),
        mirror.requests_served()
    );
    assert!(
        out.status.success(),
        "npm ci failed; 404s: {:?}\n{}",
        mirror.not_found(),
        String::from_utf8_lossy(&out.stderr)
    );
    // npm also asks for the metadata of optional peer dependencies that the
    // tree does not install (@opentelemetry/api, bufferutil, canvas, ...) and
    // takes a 404 for them; every tarball it wants must be there.
    let missing: Vec<String> = mirror
        .not_found()
        .into_iter()
        .filter(|p| p.contains("/-/") || !p.starts_with("GET /"))
        .collect();
    assert!(missing.is_empty(), "the mirror lacks tarballs: {missing:?}");
    eprintln!("metadata 404s (optional peers): {:?}", mirror.not_found());
    let pj = tmp.path().join("prefix/node_modules/openclaw/package.json");
    let pj: serde_json::Value = serde_json::from_slice(&std::fs::read(pj).unwrap()).unwrap();
    assert_eq!(pj["version"], OPENCLAW_VERSION);
    // The bundled dependency came from inside openclaw's own tarball.
    let bundled = tmp
        .path()
        .join("prefix/node_modules/openclaw/node_modules/chrome-devtools-mcp");
    assert!(
        bundled.exists()
            || tmp
                .path()
                .join("prefix/node_modules/chrome-devtools-mcp")
                .exists(),
        "bundled chrome-devtools-mcp missing"
    );
    let _ = Command::new("rm").arg("-rf").arg(tmp.path()).status();
}
