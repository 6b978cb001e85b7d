//! After every start, Clawkeeper checks the instance itself instead of trusting its config:
//! who can reach it, whether it demands its key, and whether any secret reached a file.

use super::LocalInstance;
use crate::gateway::{self, ClientInfo};
use crate::secret::Secret;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub label: &'static str,
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn new(id: &'static str, label: &'static str, ok: bool, detail: String) -> Self {
        Self {
            id,
            label,
            status: if ok {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            detail: Some(detail),
        }
    }
}

pub const LOOPBACK_ONLY: &str = "loopback_only";
pub const KEY_REQUIRED: &str = "key_required";
pub const NO_PLAIN_SECRETS: &str = "no_plain_secrets";
pub const PRIVATE_FILES: &str = "private_files";

/// The checks, all pending (shown while the instance starts).
pub fn pending() -> Vec<Check> {
    [
        (LOOPBACK_ONLY, "Only this computer can reach your assistant"),
        (KEY_REQUIRED, "It refuses anyone without its key"),
        (NO_PLAIN_SECRETS, "No keys are kept in plain files"),
        (PRIVATE_FILES, "Its files are private to you"),
    ]
    .into_iter()
    .map(|(id, label)| Check {
        id,
        label,
        status: CheckStatus::Pending,
        detail: None,
    })
    .collect()
}

/// Which addresses the gateway (and its workers) listen on. Linux reads /proc; elsewhere
/// the check reports what it could not see rather than pass.
pub fn listening(pid: u32) -> Vec<(std::net::IpAddr, u16)> {
    #[cfg(target_os = "linux")]
    {
        super::process::listening_sockets(&super::process::process_tree(pid))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Vec::new()
    }
}

pub fn loopback_check(sockets: &[(std::net::IpAddr, u16)]) -> Check {
    let exposed: Vec<String> = sockets
        .iter()
        .filter(|(ip, _)| !ip.is_loopback())
        .map(|(ip, p)| format!("{ip}:{p}"))
        .collect();
    let all: Vec<String> = sockets.iter().map(|(ip, p)| format!("{ip}:{p}")).collect();
    if sockets.is_empty() {
        Check::new(
            LOOPBACK_ONLY,
            "Only this computer can reach your assistant",
            false,
            "Could not see which addresses it listens on.".into(),
        )
    } else if exposed.is_empty() {
        Check::new(
            LOOPBACK_ONLY,
            "Only this computer can reach your assistant",
            true,
            format!("Listening only on {}", all.join(", ")),
        )
    } else {
        Check::new(
            LOOPBACK_ONLY,
            "Only this computer can reach your assistant",
            false,
            format!("Also reachable at {}", exposed.join(", ")),
        )
    }
}

/// Connect without a key and with a wrong key: both must be refused.
pub async fn key_check(url: &str) -> Check {
    let client = ClientInfo::default();
    let mut outcomes = Vec::new();
    for (what, token) in [
        ("no key", Secret::new("")),
        ("a wrong key", Secret::random(32)),
    ] {
        let refused = match gateway::connect_once(url, &token, &client).await {
            Ok(conn) => {
                conn.close().await;
                false
            }
            Err(e) => e.is_refusal(),
        };
        outcomes.push((what, refused));
    }
    // The same over HTTP: `POST /tools/invoke` is on by default and needs the token.
    let http = url.replacen("ws://", "http://", 1) + "/tools/invoke";
    let client = reqwest::Client::new();
    for (what, auth) in [
        ("no key over HTTP", None),
        ("a wrong key over HTTP", Some(Secret::random(32))),
    ] {
        let mut req = client
            .post(&http)
            .json(&serde_json::json!({"tool": "sessions_list", "args": {}}));
        if let Some(t) = &auth {
            req = req.bearer_auth(t.expose());
        }
        let refused =
            matches!(req.send().await, Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED);
        outcomes.push((what, refused));
    }
    let ok = outcomes.iter().all(|(_, r)| *r);
    let detail = outcomes
        .iter()
        .map(|(what, r)| format!("{what}: {}", if *r { "refused" } else { "NOT refused" }))
        .collect::<Vec<_>>()
        .join("; ");
    Check::new(
        KEY_REQUIRED,
        "It refuses anyone without its key",
        ok,
        detail,
    )
}

/// Search the instance's files for the secret values themselves.
pub fn plain_secret_check(dir: &Path, secrets: &[&Secret]) -> Check {
    let needles: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .filter(|n| n.len() >= 8)
        .collect();
    let mut hits = Vec::new();
    let mut scanned = 0usize;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file()
                && e.metadata()
                    .map(|m| m.len() <= 64 * 1024 * 1024)
                    .unwrap_or(false)
            {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    scanned += 1;
                    if needles.iter().any(|n| contains(&bytes, n)) {
                        hits.push(
                            e.path()
                                .strip_prefix(dir)
                                .unwrap_or(&e.path())
                                .display()
                                .to_string(),
                        );
                    }
                }
            }
        }
    }
    if hits.is_empty() {
        Check::new(
            NO_PLAIN_SECRETS,
            "No keys are kept in plain files",
            true,
            format!("Searched {scanned} files; keys are only in your keychain"),
        )
    } else {
        Check::new(
            NO_PLAIN_SECRETS,
            "No keys are kept in plain files",
            false,
            format!("A key was found in: {}", hits.join(", ")),
        )
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(unix)]
pub fn private_files_check(instance: &LocalInstance) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let mut bad = Vec::new();
    for (path, want_dir) in [
        (instance.dir(), true),
        (instance.state_dir(), true),
        (instance.config_path(), false),
    ] {
        match std::fs::metadata(&path) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 || m.is_dir() != want_dir {
                    bad.push(format!("{} is {:o}", path.display(), mode));
                }
            }
            Err(e) => bad.push(format!("{}: {e}", path.display())),
        }
    }
    if bad.is_empty() {
        Check::new(
            PRIVATE_FILES,
            "Its files are private to you",
            true,
            "Only your user account can read them".into(),
        )
    } else {
        Check::new(
            PRIVATE_FILES,
            "Its files are private to you",
            false,
            bad.join("; "),
        )
    }
}

#[cfg(not(unix))]
pub fn private_files_check(_instance: &LocalInstance) -> Check {
    Check::new(
        PRIVATE_FILES,
        "Its files are private to you",
        true,
        "Protected by your user profile".into(),
    )
}

/// All checks for a running gateway with process id `pid`.
pub async fn run(instance: &LocalInstance, pid: u32, secrets: &[&Secret]) -> Vec<Check> {
    let loopback = loopback_check(&listening(pid));
    let key = key_check(&instance.url()).await;
    let plain = plain_secret_check(&instance.dir(), secrets);
    let files = private_files_check(instance);
    vec![loopback, key, plain, files]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_check_flags_exposure() {
        let lo = vec![
            ("127.0.0.1".parse().unwrap(), 18789),
            ("::1".parse().unwrap(), 18789),
        ];
        assert_eq!(loopback_check(&lo).status, CheckStatus::Pass);
        let open = vec![("0.0.0.0".parse().unwrap(), 18789)];
        assert_eq!(loopback_check(&open).status, CheckStatus::Fail);
        assert_eq!(loopback_check(&[]).status, CheckStatus::Fail);
    }

    #[test]
    fn finds_planted_secret_in_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secret::new("sk-planted-0123456789");
        std::fs::write(dir.path().join("a.json"), b"{\"ok\":1}").unwrap();
        assert_eq!(
            plain_secret_check(dir.path(), &[&s]).status,
            CheckStatus::Pass
        );
        std::fs::create_dir(dir.path().join("deep")).unwrap();
        std::fs::write(
            dir.path().join("deep/log.txt"),
            b"x sk-planted-0123456789 y",
        )
        .unwrap();
        let c = plain_secret_check(dir.path(), &[&s]);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.unwrap().contains("log.txt"));
    }
}
