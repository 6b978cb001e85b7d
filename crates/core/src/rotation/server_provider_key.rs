//! This computer's model provider key on a server that shares it.
//!
//! A server set up from this computer without a provider of its own was given a copy of
//! this computer's key. Its rotation ([`super::provider_key::LocalProviderKey`]) must put
//! the new key in use there too, and see the server's assistant answer with it, before the
//! old key is deleted at the provider — or deleting it would stop the assistant there.
//!
//! On the server the gateway reads the key through a `file` SecretRef: a systemd credential
//! (a root-only source copied for the unit at its start) or a file of the service user
//! ([`crate::provision::steps::SecretDelivery`]). A systemd credential can't change without a
//! restart, so, as for the gateway token ([`super::server_token`]), the new key goes to a
//! file of the service user, tagged with the rotation, and the config is switched to it; the
//! gateway applies that live (its model runtime re-resolves the key), no restart:
//!
//! - **install**: the new key written (on the stdin of `install`) to `provider-key.r<id>` in
//!   [`layout::USER_CREDENTIALS_DIR`], the model's key switched to [`NEXT_PROVIDER`], whose
//!   path is that file;
//! - **verify new**: the config names it and the file holds the new key (put back if a "Set
//!   up again" changed that meanwhile), and a real completion through the server's
//!   assistant answers (through an SSH tunnel, as the app's chat goes);
//! - **verify old** (once the old key is deleted at the provider): the same, and the
//!   completion's answer now proves it is the new key the server uses; if it fails, the
//!   config is written again before the next attempt;
//! - **settle**: the new key copied to the steady file `provider-key` of the service user,
//!   which the steady provider [`PROVIDER_KEY_PROVIDER`] then names; the root-only source of
//!   the systemd credential (if the server has one) gets the new key too, so a restart or
//!   "Set up again" can't bring back the dead one; the tagged file removed;
//! - **discard**: as the settle, with the old key (the steady places may hold the new one
//!   by then: a "Set up again" during the rotation puts the key being verified there).
//!
//! At every moment the config names a file holding a key the provider accepts: a gateway
//! restarted mid-rotation comes up with it.

use super::driver::{candidates, Keys};
use super::local_config::provider_key_at;
use super::provider_key::{CHECK_PROMPT, CHECK_SESSION};
use super::server_token::{live_path, ServerShell, State};
use super::{StepError, StepResult};
use crate::gateway::{self, chat, ClientInfo};
use crate::provision::steps::{layout, PROVIDER_KEY, PROVIDER_KEY_PROVIDER};
use crate::secret::Secret;
use crate::server::ServerLink;
use crate::vault::SecretRef;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The config's provider for the key being rotated in.
pub const NEXT_PROVIDER: &str = "clawkeeper_provider_key_next";

/// How long a check's completion may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// A server whose assistant uses this computer's provider key.
pub struct SharedServer {
    /// The server's id and the name the person gave it (for messages).
    pub instance: String,
    pub name: String,
    shell: ServerShell,
    /// The server assistant's gateway token (the checks chat through it).
    gateway_token: SecretRef,
    keys: Arc<dyn Keys>,
}

/// Where the config's model key is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming<'a> {
    /// The tagged file of a rotation, through [`NEXT_PROVIDER`].
    Tagged(&'a str),
    /// The steady provider, its path the service user's `provider-key`.
    SteadyUserFile,
}

/// The tagged file of rotation `id`.
fn tagged(id: i64) -> String {
    format!("{PROVIDER_KEY}.r{id}")
}

fn no_model() -> StepError {
    StepError::Permanent(
        "the assistant's settings on the server have no model provider key; set the server up again"
            .into(),
    )
}

/// Whether the config reads the model's key through the steady provider's SecretRef (as
/// provisioning writes it, and every step of a rotation keeps it).
fn has_model_key(config: &Value) -> bool {
    config
        .pointer(&provider_key_at())
        .is_some_and(Value::is_object)
        && config
            .pointer(&format!("/secrets/providers/{PROVIDER_KEY_PROVIDER}"))
            .is_some()
}

/// The config with the model's key read as `naming` says.
fn config_naming(config: &Value, naming: Naming) -> StepResult<Value> {
    let mut c = config.clone();
    let key = c
        .pointer_mut(&provider_key_at())
        .filter(|v| v.is_object())
        .ok_or_else(no_model)?;
    let provider = match naming {
        Naming::Tagged(_) => NEXT_PROVIDER,
        Naming::SteadyUserFile => PROVIDER_KEY_PROVIDER,
    };
    *key = json!({ "source": "file", "provider": provider, "id": "value" });
    let providers = c
        .pointer_mut("/secrets/providers")
        .and_then(Value::as_object_mut)
        .ok_or_else(no_model)?;
    if !providers.contains_key(PROVIDER_KEY_PROVIDER) {
        return Err(no_model());
    }
    let file =
        |name: &str| json!({ "source": "file", "path": live_path(name), "mode": "singleValue" });
    match naming {
        Naming::Tagged(name) => {
            providers.insert(NEXT_PROVIDER.into(), file(name));
        }
        Naming::SteadyUserFile => {
            providers.remove(NEXT_PROVIDER);
            providers.insert(PROVIDER_KEY_PROVIDER.into(), file(PROVIDER_KEY));
        }
    }
    Ok(c)
}

/// One completion through the assistant at `url` (a WebSocket address), with whichever of
/// `tokens` it takes. `whose`: "your assistant", "the assistant on <server>".
pub(super) async fn answer(url: &str, tokens: &[Secret], whose: &str) -> StepResult {
    let mut last = String::from("no access token");
    for token in tokens {
        let mut conn = match gateway::connect_once(url, token, &ClientInfo::default()).await {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let answer = chat::ask(&mut conn, CHECK_SESSION, CHECK_PROMPT, ANSWER_WITHIN).await;
        conn.close().await;
        return match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(p)) => Err(StepError::Transient(format!(
                "{whose} couldn't reach the model: {}",
                p.message
            ))),
            Err(e) => Err(StepError::Transient(format!("{whose} didn't answer ({e})"))),
        };
    }
    Err(StepError::Transient(format!(
        "{whose} didn't answer ({last})"
    )))
}

impl SharedServer {
    pub fn new(instance: &str, name: &str, link: ServerLink, keys: Arc<dyn Keys>) -> Self {
        Self {
            instance: instance.to_owned(),
            name: if name.is_empty() {
                instance.to_owned()
            } else {
                name.to_owned()
            },
            shell: ServerShell::new(link),
            gateway_token: SecretRef::new(crate::vault::SecretKind::GatewayToken, instance),
            keys,
        }
    }

    /// `e`, said of this server.
    fn on_it(&self, e: StepError) -> StepError {
        let say = |m: &str| format!("on your server {}: {m}", self.name);
        match e {
            StepError::Transient(m) => StepError::Transient(say(&m)),
            StepError::Permanent(m) => StepError::Permanent(say(&m)),
            StepError::NeedsYou(m) => StepError::NeedsYou(say(&m)),
        }
    }

    async fn state(&self) -> StepResult<State> {
        self.shell.state(PROVIDER_KEY).await
    }

    /// A completion through the server's assistant.
    async fn answer(&self) -> StepResult {
        let tunnel = self.shell.link().gateway_tunnel().await.map_err(|e| {
            StepError::Transient(format!(
                "the assistant on the server can't be reached ({e})"
            ))
        })?;
        let tokens = candidates(self.keys.as_ref(), &self.gateway_token)
            .await
            .map_err(|e| {
                StepError::Transient(format!("the server's access token can't be read ({e})"))
            })?;
        answer(
            &format!("ws://{}", tunnel.local_addr()),
            &tokens,
            "the assistant on the server",
        )
        .await
    }

    /// Put `new` in use on the server (see the module's **install**). Idempotent: nothing
    /// is written that is there already.
    async fn put_in_use(&self, rotation_id: i64, new: &Secret) -> StepResult {
        let state = self.state().await?;
        let file = tagged(rotation_id);
        let want = config_naming(&state.config, Naming::Tagged(&file))?;
        self.shell.put(&state, &file, new).await?;
        self.shell.write_config(&state, &want, false).await
    }

    pub async fn install(&self, rotation_id: i64, new: &Secret) -> StepResult {
        self.put_in_use(rotation_id, new)
            .await
            .map_err(|e| self.on_it(e))
    }

    /// The server's config names the new key's file, which holds it (put there again if
    /// something — a "Set up again" meanwhile — changed that), and its assistant answers.
    pub async fn verify_new(&self, rotation_id: i64, new: &Secret) -> StepResult {
        async {
            self.put_in_use(rotation_id, new).await?;
            self.answer().await
        }
        .await
        .map_err(|e| self.on_it(e))
    }

    /// With the old key dead: the server's assistant answers, so with the new one. If it
    /// doesn't, its config is written again (the gateway then reads the key again) before
    /// the next attempt.
    pub async fn verify_in_use(&self, rotation_id: i64, new: &Secret) -> StepResult {
        async {
            self.put_in_use(rotation_id, new).await?;
            let answered = self.answer().await;
            if answered.is_err() {
                let state = self.state().await?;
                self.shell.write_config(&state, &state.config, true).await?;
            }
            answered
        }
        .await
        .map_err(|e| self.on_it(e))
    }

    /// `key` in the steady places, named by the config, every other file of the key gone.
    async fn settle_on(&self, state: &State, key: &Secret) -> StepResult {
        let want = config_naming(&state.config, Naming::SteadyUserFile)?;
        self.shell.put(state, PROVIDER_KEY, key).await?;
        self.put_source(key).await?;
        self.shell.write_config(state, &want, false).await?;
        self.shell.prune(PROVIDER_KEY, PROVIDER_KEY).await
    }

    /// The new key in the steady places (see the module's **settle**), then a completion.
    pub async fn settle(&self, new: &Secret) -> StepResult {
        async {
            let state = self.state().await?;
            self.settle_on(&state, new).await?;
            self.answer().await
        }
        .await
        .map_err(|e| self.on_it(e))
    }

    /// The root-only source of the systemd credential (when the server has one) holds `key`.
    async fn put_source(&self, key: &Secret) -> StepResult {
        let source = format!("{}/{PROVIDER_KEY}", layout::CREDENTIALS_DIR);
        self.shell.write_secret(&source, "root", key, true).await
    }

    /// Back on the old key (see the module's **discard**). Written, not just named again:
    /// the steady place may hold the new key by now (a "Set up again" during the rotation
    /// puts the key being verified there), which is about to be deleted.
    pub async fn discard(&self, old: &Secret) -> StepResult {
        async {
            let state = self.state().await?;
            match self.settle_on(&state, old).await {
                // No model key in its settings: nothing of ours to undo (the install
                // refuses such a server before it writes anything).
                Err(StepError::Permanent(_)) if !has_model_key(&state.config) => Ok(()),
                done => done,
            }
        }
        .await
        .map_err(|e| self.on_it(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::steps::{gateway_config, ModelEndpoint, ProvisionSpec, SecretDelivery};

    fn provisioned(delivery: SecretDelivery) -> Value {
        let mut spec = ProvisionSpec::new("srv");
        spec.delivery = delivery;
        spec.model = Some(ModelEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
        });
        gateway_config(&spec)
    }

    fn named(config: &Value) -> (String, String) {
        let provider = config
            .pointer(&format!("{}/provider", provider_key_at()))
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let path = config["secrets"]["providers"][&provider]["path"]
            .as_str()
            .unwrap()
            .to_owned();
        (provider, path)
    }

    #[test]
    fn the_key_moves_to_the_tagged_file_then_to_the_service_users_steady_one() {
        let c = provisioned(SecretDelivery::SystemdCredentials);
        assert_eq!(
            named(&c).1,
            "/run/credentials/clawkeeper-gateway.service/provider-key"
        );
        let during = config_naming(&c, Naming::Tagged("provider-key.r4")).unwrap();
        assert_eq!(
            named(&during),
            (
                NEXT_PROVIDER.to_owned(),
                "/etc/clawkeeper/openclaw-credentials/provider-key.r4".to_owned()
            )
        );
        // The gateway token and everything else untouched.
        assert_eq!(during["gateway"], c["gateway"]);
        assert_eq!(
            during["secrets"]["providers"][PROVIDER_KEY_PROVIDER],
            c["secrets"]["providers"][PROVIDER_KEY_PROVIDER]
        );
        assert!(has_model_key(&c) && has_model_key(&during));
        // Settled: the steady provider reads the service user's file; nothing else left.
        let settled = config_naming(&during, Naming::SteadyUserFile).unwrap();
        assert_eq!(
            named(&settled),
            (
                PROVIDER_KEY_PROVIDER.to_owned(),
                "/etc/clawkeeper/openclaw-credentials/provider-key".to_owned()
            )
        );
        assert!(settled["secrets"]["providers"].get(NEXT_PROVIDER).is_none());
        // A server set up with service-user files is settled back to what provisioning wrote.
        let files = provisioned(SecretDelivery::ServiceUserFiles);
        let during = config_naming(&files, Naming::Tagged("provider-key.r5")).unwrap();
        assert_eq!(
            config_naming(&during, Naming::SteadyUserFile).unwrap(),
            files
        );
    }

    #[test]
    fn a_server_without_a_model_key_is_refused_with_what_to_do() {
        let mut spec = ProvisionSpec::new("srv");
        spec.model = None;
        let c = gateway_config(&spec);
        assert!(!has_model_key(&c));
        let e = config_naming(&c, Naming::Tagged("provider-key.r1")).unwrap_err();
        assert!(
            matches!(&e, StepError::Permanent(m) if m.contains("set the server up again")),
            "{e:?}"
        );
    }
}
