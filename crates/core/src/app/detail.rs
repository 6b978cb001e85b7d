//! The status window's "At a glance": the assistant's version (and whether a newer OpenClaw
//! is out), how long it has been up, the memory and disk of the computer or server it runs
//! on, the way the app reaches it, and its conversations and channels (from the gateway's
//! own `status`).

use super::{problem, AssistantView, Clawkeeper};
use crate::local::supervisor::InstanceState;
use crate::problem::Problem;
use crate::remote::Remote;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The setting that caches the newest OpenClaw version seen at the registry:
/// `<version> <RFC 3339 when checked>`.
const LATEST_SETTING: &str = "openclaw.latest";
/// The registry is asked at most this often.
const LATEST_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Memory and disk of the machine the assistant runs on, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostFacts {
    pub memory_total: u64,
    pub memory_available: u64,
    pub disk_total: u64,
    pub disk_free: u64,
}

/// Whether a newer OpenClaw is out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateView {
    pub latest: String,
    pub available: bool,
    pub checked_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetail {
    pub assistant: AssistantView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateView>,
    /// Since when it has been working (this computer's assistant), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFacts>,
    /// The gateway's own memory (resident), bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_memory: Option<u64>,
    /// Conversations the gateway keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Messaging channels set up (Telegram, …).
    pub channels: Vec<String>,
    /// What couldn't be read, in words (the rest is still shown).
    pub notes: Vec<String>,
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let mut parts = line[name.len()..].split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            Some(_) => None,
        }
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (available <= total).then_some((total, available))
}

/// Size and free space of `df -P -B1 <dir>` (the one data line), in bytes.
pub fn parse_df(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .skip_while(|l| !l.starts_with("Filesystem"))
        .nth(1)?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    // Filesystem 1-blocks Used Available Capacity Mounted-on
    let total: u64 = cols.get(1)?.parse().ok()?;
    let free: u64 = cols.get(3)?.parse().ok()?;
    (free <= total).then_some((total, free))
}

/// `a` is an older OpenClaw version than `b` (versions are `YYYY.M.D`, maybe `-suffix`).
pub fn older(a: &str, b: &str) -> bool {
    let nums = |v: &str| -> Option<Vec<u64>> {
        v.split(['-', '+'])
            .next()?
            .split('.')
            .map(|p| p.parse().ok())
            .collect()
    };
    match (nums(a), nums(b)) {
        (Some(x), Some(y)) => x < y,
        _ => false,
    }
}

/// This computer's memory and the disk that holds `dir` (without blocking the runtime).
async fn local_host(dir: &std::path::Path) -> Option<HostFacts> {
    let (memory_total, memory_available) =
        parse_meminfo(&tokio::fs::read_to_string("/proc/meminfo").await.ok()?)?;
    let out = tokio::process::Command::new("df")
        .args(["-P", "-B1"])
        .arg(dir)
        .output()
        .await
        .ok()?;
    let (disk_total, disk_free) = parse_df(&String::from_utf8_lossy(&out.stdout))?;
    Some(HostFacts {
        memory_total,
        memory_available,
        disk_total,
        disk_free,
    })
}

impl Clawkeeper {
    /// "At a glance" for the assistant chat goes to. Each part that can't be read is left
    /// out and said in `notes`.
    pub async fn status_detail(&self) -> Result<StatusDetail, Problem> {
        let assistant = self.assistant().await;
        let mut notes = Vec::new();
        let server = self.assistant_server().await;
        let status = self.inner.supervisor.status().borrow().clone();
        let up_since = match (&server, &status.state) {
            (None, InstanceState::Healthy { since, .. }) => Some(since.clone()),
            _ => None,
        };
        let running = server.is_some()
            || matches!(
                status.state,
                InstanceState::Healthy { .. } | InstanceState::Degraded { .. }
            );
        let gw_status = if running {
            match self.gateway().await {
                Ok(gw) => match tokio::time::timeout(
                    Duration::from_secs(15),
                    gw.request("status", json!({})),
                )
                .await
                {
                    Ok(Ok(v)) => Some(v),
                    Ok(Err(e)) => {
                        notes.push(format!("The assistant's own status couldn't be read: {e}"));
                        None
                    }
                    Err(_) => {
                        notes.push("The assistant didn't say how it is in time.".into());
                        None
                    }
                },
                Err(p) => {
                    notes.push(p.message);
                    None
                }
            }
        } else {
            None
        };
        let version = gw_status
            .as_ref()
            .and_then(|s| s.get("runtimeVersion"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                server
                    .is_none()
                    .then(|| crate::local::runtime::OPENCLAW_VERSION.to_owned())
            });
        let sessions = gw_status
            .as_ref()
            .and_then(|s| s.pointer("/sessions/count"))
            .and_then(Value::as_u64);
        let gateway_memory = gw_status
            .as_ref()
            .and_then(|s| s.pointer("/processMemory/rssBytes"))
            .and_then(Value::as_u64);
        let channels = gw_status
            .as_ref()
            .and_then(|s| s.get("channelSummary"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|c| match c {
                        Value::String(s) => Some(s.clone()),
                        other => other
                            .get("label")
                            .or_else(|| other.get("channel"))
                            .or_else(|| other.get("id"))
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let host = match &server {
            None => local_host(&self.inner.paths.data_dir).await,
            Some(id) => self.server_host(id).await,
        };
        if host.is_none() {
            notes.push("The memory and disk of the machine couldn't be read.".into());
        }
        let update = match &version {
            Some(v) => match self.latest_openclaw().await {
                Ok((latest, checked_at)) => Some(UpdateView {
                    available: older(v, &latest),
                    latest,
                    checked_at,
                }),
                Err(why) => {
                    notes.push(why);
                    None
                }
            },
            None => None,
        };
        Ok(StatusDetail {
            assistant,
            version,
            update,
            up_since,
            host,
            gateway_memory,
            sessions,
            channels,
            notes,
        })
    }

    /// The server's memory and root disk, over its SSH session.
    async fn server_host(&self, id: &str) -> Option<HostFacts> {
        let link =
            crate::server::ServerLink::new(self.inner.store.clone(), self.inner.vault.clone(), id);
        let session = link.session().await.ok()?;
        let out = session
            .run("cat /proc/meminfo; echo; df -P -B1 /", None)
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (memory_total, memory_available) = parse_meminfo(&text)?;
        let (disk_total, disk_free) = parse_df(&text)?;
        Some(HostFacts {
            memory_total,
            memory_available,
            disk_total,
            disk_free,
        })
    }

    /// The newest OpenClaw at the npm registry, asked at most once a day; the answer is kept
    /// in the store. The registry: `CLAWKEEPER_UPDATE_REGISTRY` (`off`: never ask; the test
    /// suite sets that), else `CLAWKEEPER_NPM_REGISTRY` (where OpenClaw is installed from),
    /// else the public one.
    async fn latest_openclaw(&self) -> Result<(String, String), String> {
        let registry = match std::env::var("CLAWKEEPER_UPDATE_REGISTRY") {
            Ok(r) if r == "off" => {
                return Err("Checking for a newer OpenClaw is turned off.".into())
            }
            Ok(r) if !r.is_empty() => r,
            _ => std::env::var("CLAWKEEPER_NPM_REGISTRY")
                .ok()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "https://registry.npmjs.org".into()),
        };
        let store = &self.inner.store;
        if let Ok(Some(cached)) = store.setting(LATEST_SETTING).await {
            if let Some((v, at)) = cached.split_once(' ') {
                let fresh =
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .is_ok_and(|t| {
                            (time::OffsetDateTime::now_utc() - t).unsigned_abs() < LATEST_EVERY
                        });
                if fresh {
                    return Ok((v.to_owned(), at.to_owned()));
                }
            }
        }
        let url = format!("{}/openclaw", registry.trim_end_matches('/'));
        let cant = |e: String| format!("Clawkeeper couldn't check for a newer OpenClaw ({e}).");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| cant(e.to_string()))?;
        let v: Value = client
            .get(&url)
            .header("Accept", "application/vnd.npm.install-v1+json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| cant(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| cant(e.without_url().to_string()))?;
        let latest = v
            .pointer("/dist-tags/latest")
            .and_then(Value::as_str)
            .filter(|s| {
                s.len() < 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
            })
            .ok_or_else(|| cant("the registry's answer has no latest version".into()))?
            .to_owned();
        let now = crate::time::now_rfc3339();
        let _ = store
            .set_setting(LATEST_SETTING, &format!("{latest} {now}"))
            .await
            .map_err(|e| problem(&e));
        Ok((latest, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_df() {
        let mem = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   12288000 kB\n";
        assert_eq!(
            parse_meminfo(mem),
            Some((24_576_000 * 1024, 12_288_000 * 1024))
        );
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 5 kB\nMemAvailable: 9 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n"), None);
        let df = "Filesystem     1-blocks        Used   Available Capacity Mounted on\n/dev/vda   270553174016 78400000000 18000000000      81% /\n";
        assert_eq!(parse_df(df), Some((270_553_174_016, 18_000_000_000)));
        assert_eq!(parse_df("Filesystem 1-blocks\n"), None);
        assert_eq!(parse_df(""), None);
    }

    #[test]
    fn versions_compare_as_dates() {
        assert!(older("2026.9.6", "2026.10.1"));
        assert!(older("2026.9.6", "2026.9.10"));
        assert!(!older("2026.9.6", "2026.9.6"));
        assert!(!older("2026.10.1", "2026.9.6"));
        assert!(older("2026.9.6-beta.1", "2026.9.7"));
        assert!(!older("2026.9.6", "garbage"));
    }
}
