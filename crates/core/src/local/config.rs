//! The hardened OpenClaw configuration Clawkeeper writes for an instance on this computer.
//!
//! - bound to loopback, token auth; the token is a SecretRef served by our keychain helper
//!   (`exec` source), so no secret is ever written to disk;
//! - the model provider's key is a SecretRef too, under our own provider entry (never the
//!   standard env names, which make OpenClaw fetch plugins at start);
//! - no calls home: update check, model catalog refresh and mDNS are off;
//! - per-channel-peer DM sessions; DM pairing (OpenClaw's default when no channel sets a
//!   `dmPolicy`, and this config sets none — "DMs use pairing", shared channel policies);
//! - logs inside the instance directory.

use serde_json::{json, Value};
use std::path::Path;

/// Name of our `exec` secrets provider in the gateway config.
pub const SECRETS_PROVIDER: &str = "clawkeeper";
/// Name of the model provider entry in the gateway config.
pub const MODEL_PROVIDER: &str = "clawkeeper";

/// Environment variables the keychain helper needs to reach the user's keychain.
pub const HELPER_ENV: &[&str] = &[
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "HOME",
    "CLAWKEEPER_KEYCHAIN_NAMESPACE",
];

#[derive(Debug, Clone)]
pub struct ModelSettings {
    pub base_url: String,
    pub model: String,
    /// Vault reference of the provider key, e.g. `provider-key/local`.
    pub key_ref: String,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig<'a> {
    pub port: u16,
    pub token_ref: &'a str,
    pub helper: &'a Path,
    pub namespace: &'a str,
    pub log_file: &'a Path,
    pub model: Option<&'a ModelSettings>,
}

fn secret_ref(id: &str) -> Value {
    json!({ "source": "exec", "provider": SECRETS_PROVIDER, "id": id })
}

pub fn render(c: &GatewayConfig<'_>) -> Value {
    let helper_dir = c
        .helper
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut config = hardened_base(
        c.port,
        secret_ref(c.token_ref),
        &c.log_file.display().to_string(),
    );
    config["secrets"] = json!({
        "providers": {
            SECRETS_PROVIDER: {
                "source": "exec",
                "command": c.helper.display().to_string(),
                "args": ["--namespace", c.namespace],
                "passEnv": HELPER_ENV,
                "trustedDirs": [helper_dir],
                "jsonOnly": true,
                "timeoutMs": 10000,
            }
        }
    });
    if let Some(m) = c.model {
        add_model(&mut config, &m.base_url, &m.model, secret_ref(&m.key_ref));
    }
    config
}

/// The hardened part every Clawkeeper-written config shares, wherever the gateway runs
/// (this computer or a server): loopback bind, token auth with `token` (a SecretRef), no
/// calls home (update check, catalog refresh, mDNS), per-channel-peer DM sessions, DM
/// pairing (the default: no channel sets a `dmPolicy`), logs in `log_file`.
pub fn hardened_base(port: u16, token: Value, log_file: &str) -> Value {
    json!({
        "gateway": {
            "mode": "local",
            "bind": "loopback",
            "port": port,
            "auth": { "mode": "token", "token": token },
        },
        "update": { "checkOnStart": false },
        "discovery": { "mdns": { "mode": "off" } },
        "session": { "dmScope": "per-channel-peer" },
        "logging": { "file": log_file },
        "models": { "catalogRefresh": { "enabled": false } },
    })
}

/// Our model provider entry (OpenAI-compatible `base_url`, one `model`), its key given as
/// `api_key` (a SecretRef), made the agents' default model.
///
/// `supportsUsageInStreaming` asks the provider for each call's use
/// (`stream_options.include_usage`), which the usage view and the spend cap count. OpenClaw
/// asks for it on its own only of OpenAI itself and of hosts it deems local (`localhost`,
/// `*.local`, …): of a provider at any other address it would record every call as 0 tokens
/// and $0. OpenAI documents the option; OpenRouter sends the use whether asked or not.
pub fn add_model(config: &mut Value, base_url: &str, model: &str, api_key: Value) {
    config["models"] = json!({
        "catalogRefresh": { "enabled": false },
        "mode": "replace",
        "providers": {
            MODEL_PROVIDER: {
                "baseUrl": base_url,
                "apiKey": api_key,
                "api": "openai-completions",
                "models": [{
                    "id": model,
                    "name": model,
                    "contextWindow": 128000,
                    "maxTokens": 8192,
                    "compat": { "supportsUsageInStreaming": true },
                }],
            }
        }
    });
    config["agents"] =
        json!({ "defaults": { "model": { "primary": format!("{MODEL_PROVIDER}/{model}") } } });
}

/// What of an existing config at `path` is kept when Clawkeeper writes it again: the chat
/// channels (`channels`), which the person sets up (a bot token in it is moved into the
/// keychain by its rotation, [`crate::rotation::bot_token`]).
pub fn kept_from(path: &Path) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    let old: Value = serde_json::from_slice(&text).ok()?;
    old.get("channels").filter(|c| c.is_object()).cloned()
}

/// The `plugins.entries.<id>.enabled` of an existing config at `path` for the chat
/// channels kept (`channels`, from [`kept_from`]): a channel that is an external plugin
/// (Discord, `@openclaw/discord`) loads only when its entry says `enabled: true` — OpenClaw
/// says "external plugin \"discord\" is installed without explicit trust" otherwise. Only
/// that flag is kept (no plugin config, env or hooks), and only for a channel the config
/// has. `None` when there is none.
pub fn kept_plugin_entries(path: &Path, channels: &Value) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    let old: Value = serde_json::from_slice(&text).ok()?;
    let entries = old.pointer("/plugins/entries")?.as_object()?;
    let channels = channels.as_object()?;
    let kept: serde_json::Map<String, Value> = entries
        .iter()
        .filter(|(id, _)| channels.contains_key(id.as_str()))
        .filter_map(|(id, e)| {
            let enabled = e.get("enabled")?.as_bool()?;
            Some((id.clone(), json!({ "enabled": enabled })))
        })
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// Every string value in a config (to check that no secret is in it).
pub fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn hardened_defaults() {
        let helper = PathBuf::from("/data/bin/clawkeeper-keyhelper");
        let log = PathBuf::from("/data/instances/local/logs/openclaw.log");
        let model = ModelSettings {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
            key_ref: "provider-key/local".into(),
        };
        let c = render(&GatewayConfig {
            port: 18789,
            token_ref: "gateway-token/local",
            helper: &helper,
            namespace: "clawkeeper",
            log_file: &log,
            model: Some(&model),
        });
        assert_eq!(c["gateway"]["bind"], "loopback");
        assert_eq!(c["gateway"]["auth"]["mode"], "token");
        assert_eq!(c["gateway"]["auth"]["token"]["source"], "exec");
        assert_eq!(c["update"]["checkOnStart"], false);
        assert_eq!(c["models"]["catalogRefresh"]["enabled"], false);
        assert_eq!(c["discovery"]["mdns"]["mode"], "off");
        assert_eq!(
            c["models"]["providers"]["clawkeeper"]["models"][0]["compat"]
                ["supportsUsageInStreaming"],
            true
        );
        assert_eq!(
            c["models"]["providers"]["clawkeeper"]["apiKey"]["id"],
            "provider-key/local"
        );
        assert_eq!(
            c["agents"]["defaults"]["model"]["primary"],
            "clawkeeper/openrouter/auto"
        );
        assert_eq!(
            c["secrets"]["providers"]["clawkeeper"]["trustedDirs"][0],
            "/data/bin"
        );
    }

    #[test]
    fn keeps_the_chat_channels_only() {
        let dir = std::env::temp_dir().join(format!("ck-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("openclaw.json");
        std::fs::write(
            &path,
            r#"{"gateway":{"port":1},"channels":{"telegram":{"botToken":"1:x"}}}"#,
        )
        .unwrap();
        assert_eq!(
            kept_from(&path),
            Some(json!({"telegram": {"botToken": "1:x"}}))
        );
        std::fs::write(&path, r#"{"gateway":{"port":1}}"#).unwrap();
        assert_eq!(kept_from(&path), None);
        assert_eq!(kept_from(&dir.join("missing.json")), None);

        std::fs::write(
            &path,
            r#"{"channels":{"discord":{"token":"x"}},"plugins":{"load":{"paths":["/x"]},
               "entries":{"discord":{"enabled":true,"env":{"A":"b"},"config":{}},
                          "voice-call":{"enabled":true},"telegram":{"config":{}}}}}"#,
        )
        .unwrap();
        let channels = kept_from(&path).unwrap();
        assert_eq!(
            kept_plugin_entries(&path, &channels),
            Some(json!({"discord": {"enabled": true}})),
            "only the kept channels' enabled flag"
        );
        assert_eq!(
            kept_plugin_entries(&path, &json!({"telegram": {}})),
            None,
            "an entry without the flag"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
