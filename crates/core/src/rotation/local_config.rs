//! The config file of the assistant on this computer, as rotations change it: which keychain
//! entry a SecretRef names, written so that the gateway (which watches the file and applies
//! changes live) never drops one, and the gateway's word that it applied it.

use super::{StepError, StepResult};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A config written less than this ago may still be being applied: the gateway waits 300
/// ms for more changes, then reloads, and a change written during a reload can be dropped
/// ("config reload superseded", seen when one rotation's install followed the last one's
/// settle within a second). So a write waits until the file is this old — unless the
/// gateway was seen applying the file as it is ([`APPLIED`]).
const SETTLE_BEFORE_WRITE: Duration = Duration::from_secs(2);

/// The config file the gateway was last seen applying (by [`LocalConfig::wait_reloaded`]),
/// as it was then: a write after it needn't wait. One per process: a rotation's next step
/// (or the next key's rotation in "Rotate all") writes right after the last one's reload.
static APPLIED: std::sync::Mutex<Option<(PathBuf, FileId)>> = std::sync::Mutex::new(None);

/// Which file a path holds now: every write renames a new file over it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    inode: u64,
    modified: std::time::SystemTime,
}

impl FileId {
    fn of(path: &std::path::Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            inode: m.ino(),
            modified: m.modified().ok()?,
        })
    }
}

/// How long to wait for the gateway to say it applied a config change.
pub const RELOAD_WAIT: Duration = Duration::from_secs(4);

/// Where in the config the gateway token's SecretRef is.
pub const GATEWAY_TOKEN_AT: &str = "/gateway/auth/token";

/// Where in the config the model provider key's SecretRef is.
pub fn provider_key_at() -> String {
    format!(
        "/models/providers/{}/apiKey",
        crate::local::config::MODEL_PROVIDER
    )
}

/// The assistant's config file and log (it says there when it applied a config change).
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub config_path: PathBuf,
    pub log_file: PathBuf,
}

impl LocalConfig {
    /// The keychain entry the SecretRef at `pointer` names, if the config has one there.
    pub fn named_at(&self, pointer: &str) -> Option<String> {
        let text = std::fs::read(&self.config_path).ok()?;
        let config: Value = serde_json::from_slice(&text).ok()?;
        config
            .pointer(pointer)?
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Point the SecretRef at `pointer` at the keychain entry `name` (atomically; the
    /// gateway watches the file). Nothing is written when it names it already. `what` says
    /// in words what is missing when the config has no SecretRef there.
    pub async fn name_at(&self, pointer: &str, name: &str, what: &str) -> StepResult {
        let text = std::fs::read(&self.config_path).map_err(|e| {
            StepError::Transient(format!("the assistant's settings can't be read ({e})"))
        })?;
        let mut config: Value = serde_json::from_slice(&text).map_err(|e| {
            StepError::Permanent(format!("the assistant's settings are damaged ({e})"))
        })?;
        let Some(secret_ref) = config.pointer_mut(pointer).filter(|v| v.is_object()) else {
            return Err(StepError::Permanent(format!(
                "the assistant's settings have no {what}"
            )));
        };
        if secret_ref.get("id").and_then(Value::as_str) == Some(name) {
            return Ok(());
        }
        secret_ref["id"] = Value::String(name.to_owned());
        let out =
            serde_json::to_vec_pretty(&config).map_err(|e| StepError::Permanent(e.to_string()))?;
        self.write(&out).await
    }

    /// The value at `pointer` in the config, if the file reads and has one there.
    pub fn value_at(&self, pointer: &str) -> Option<Value> {
        let text = std::fs::read(&self.config_path).ok()?;
        let config: Value = serde_json::from_slice(&text).ok()?;
        config.pointer(pointer).cloned()
    }

    /// Make `field` of the object at `section` a SecretRef naming the keychain entry `name`
    /// (through our keychain helper), whatever it was (a plain-text secret, another
    /// SecretRef, nothing), and remove the `drop` fields there (settings that would take
    /// precedence over it, e.g. a token file). Nothing is written when it is so already.
    /// `what` says in words what is missing when the config has no such section.
    pub async fn put_secret_ref(
        &self,
        section: &str,
        field: &str,
        name: &str,
        drop: &[&str],
        what: &str,
    ) -> StepResult {
        let text = std::fs::read(&self.config_path).map_err(|e| {
            StepError::Transient(format!("the assistant's settings can't be read ({e})"))
        })?;
        let mut config: Value = serde_json::from_slice(&text).map_err(|e| {
            StepError::Permanent(format!("the assistant's settings are damaged ({e})"))
        })?;
        let Some(obj) = config.pointer_mut(section).and_then(Value::as_object_mut) else {
            return Err(StepError::Permanent(format!(
                "the assistant's settings have no {what}"
            )));
        };
        let wanted = serde_json::json!({
            "source": "exec",
            "provider": crate::local::config::SECRETS_PROVIDER,
            "id": name,
        });
        if obj.get(field) == Some(&wanted) && drop.iter().all(|d| !obj.contains_key(*d)) {
            return Ok(());
        }
        obj.insert(field.to_owned(), wanted);
        for d in drop {
            obj.remove(*d);
        }
        let out =
            serde_json::to_vec_pretty(&config).map_err(|e| StepError::Permanent(e.to_string()))?;
        self.write(&out).await
    }

    /// Whether the gateway was seen applying the config file as it is now.
    fn seen_applied(&self) -> bool {
        let now = FileId::of(&self.config_path);
        let applied = APPLIED.lock().map(|a| a.clone()).unwrap_or(None);
        matches!((applied, now), (Some((path, seen)), Some(now)) if path == self.config_path && seen == now)
    }

    /// Write the config once the last write is old enough to have been applied (or was
    /// seen applied).
    async fn write(&self, text: &[u8]) -> StepResult {
        let age = std::fs::metadata(&self.config_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if let Some(age) = age {
            if age < SETTLE_BEFORE_WRITE && !self.seen_applied() {
                tokio::time::sleep(SETTLE_BEFORE_WRITE - age).await;
            }
        }
        crate::paths::write_private(&self.config_path, text).map_err(|e| {
            StepError::Transient(format!("the assistant's settings can't be written ({e})"))
        })
    }

    /// Where the log ends now: [`LocalConfig::wait_reloaded`] looks after it.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log_file).map_or(0, |m| m.len())
    }

    /// Until the gateway's log says, after `mark`, that it applied (or gave up on) a
    /// config change, at most `within`. True when it said so.
    pub async fn wait_reloaded(&self, mark: u64, within: Duration) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut tail = String::new();
            let read = std::fs::File::open(&self.log_file).and_then(|mut f| {
                f.seek(SeekFrom::Start(mark))?;
                f.take(1 << 20).read_to_string(&mut tail)
            });
            if read.is_ok()
                && tail.lines().any(|l| {
                    l.contains("gateway/reload")
                        && (l.contains("reload applied") || l.contains("reload failed"))
                })
            {
                if let (Ok(mut applied), Some(id)) = (APPLIED.lock(), FileId::of(&self.config_path))
                {
                    *applied = Some((self.config_path.clone(), id));
                }
                return true;
            }
        }
        tracing::info!("no word from the gateway on the config change; going on");
        false
    }

    /// Write the config again as it is (the gateway then looks at it again).
    pub fn kick(&self) -> StepResult {
        let text = std::fs::read(&self.config_path).map_err(|e| {
            StepError::Transient(format!("the assistant's settings can't be read ({e})"))
        })?;
        crate::paths::write_private(&self.config_path, &text).map_err(|e| {
            StepError::Transient(format!("the assistant's settings can't be written ({e})"))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_an_entry_only_where_a_secret_ref_is() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LocalConfig {
            config_path: dir.path().join("openclaw.json"),
            log_file: dir.path().join("openclaw.log"),
        };
        std::fs::write(
            &cfg.config_path,
            r#"{"gateway":{"auth":{"token":{"source":"exec","provider":"clawkeeper","id":"gateway-token/local"}}},"models":{"providers":{"clawkeeper":{"baseUrl":"x"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.named_at(GATEWAY_TOKEN_AT).as_deref(),
            Some("gateway-token/local")
        );
        cfg.name_at(GATEWAY_TOKEN_AT, "gateway-token/local--next#3", "token")
            .await
            .unwrap();
        assert_eq!(
            cfg.named_at(GATEWAY_TOKEN_AT).as_deref(),
            Some("gateway-token/local--next#3")
        );
        // No SecretRef for the provider key: refused, the file unchanged.
        let before = std::fs::read(&cfg.config_path).unwrap();
        let e = cfg
            .name_at(
                &provider_key_at(),
                "provider-key/local--next#3",
                "model provider key",
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StepError::Permanent(m) if m.contains("model provider key")));
        assert_eq!(std::fs::read(&cfg.config_path).unwrap(), before);
        assert_eq!(cfg.named_at(&provider_key_at()), None);
    }

    #[tokio::test]
    async fn puts_a_secret_ref_in_place_of_a_plain_secret() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LocalConfig {
            config_path: dir.path().join("openclaw.json"),
            log_file: dir.path().join("openclaw.log"),
        };
        std::fs::write(
            &cfg.config_path,
            r#"{"channels":{"telegram":{"botToken":"123:plain","tokenFile":"/x","dmPolicy":"pairing"}}}"#,
        )
        .unwrap();
        cfg.put_secret_ref(
            "/channels/telegram",
            "botToken",
            "telegram-bot-token/local",
            &["tokenFile"],
            "Telegram chat",
        )
        .await
        .unwrap();
        let text = std::fs::read_to_string(&cfg.config_path).unwrap();
        assert!(
            !text.contains("123:plain") && !text.contains("tokenFile"),
            "{text}"
        );
        assert_eq!(
            cfg.named_at("/channels/telegram/botToken").as_deref(),
            Some("telegram-bot-token/local")
        );
        assert_eq!(
            cfg.value_at("/channels/telegram/dmPolicy"),
            Some(Value::String("pairing".into()))
        );
        // No such section: refused, the file unchanged.
        let before = std::fs::read(&cfg.config_path).unwrap();
        let e = cfg
            .put_secret_ref("/channels/discord", "token", "x/local", &[], "Discord chat")
            .await
            .unwrap_err();
        assert!(matches!(e, StepError::Permanent(m) if m.contains("Discord chat")));
        assert_eq!(std::fs::read(&cfg.config_path).unwrap(), before);
    }
}
