//! Where the test environment's pieces are: built binaries, the runtime cache, free ports.

use std::path::PathBuf;

/// The cargo target profile directory (`…/target/debug`) of the running test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A binary built by `cargo build --workspace` (clawkeeper-cli, clawkeeper-keyhelper, …).
/// `CLAWKEEPER_TEST_BIN_DIR` names another folder to take them from: a target dir shared
/// by several checkouts gets its `target/debug/<bin>` overwritten by whichever built last,
/// so a run can put its own binaries aside first (hard links, `cp -l`: no extra disk;
/// cargo replaces the file rather than writing into it).
pub fn bin(name: &str) -> PathBuf {
    match std::env::var_os("CLAWKEEPER_TEST_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(name),
        _ => target_dir().join(name),
    }
}

/// The pre-installed OpenClaw runtime (scripts/setup.sh --test), if this run has one.
pub fn test_runtime() -> Option<PathBuf> {
    std::env::var_os("CLAWKEEPER_TEST_RUNTIME")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
}

/// Is this the isolated test environment of scripts/test-inner.sh (keyring + bus)?
pub fn isolated() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        && std::env::var_os("CLAWKEEPER_TEST_RUNTIME").is_some()
}

/// A TCP port that is free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Names the gateway may look up on its own, which no setting turns off (README, Privacy).
pub const ALLOWED_LOOKUPS: &[&str] = &["clawhub.ai"];
