//! Key rotation from the app: which secrets there are and how old, one-click rotation,
//! and finishing what a crash left unfinished (see [`crate::rotation`]).

use super::{Clawkeeper, Event};
use crate::local::LOCAL_ID;
use crate::problem::{Problem, UserFacing};
use crate::rotation::bot_token::{self, BotApi, Channel, LocalBotToken, TokenAt};
use crate::rotation::cloud_token::HetznerToken;
use crate::rotation::driver::{Driver, Progress};
use crate::rotation::gateway_token::LocalGatewayToken;
use crate::rotation::guided::Guided;
use crate::rotation::journal::{self, Rotation};
use crate::rotation::local_config::LocalConfig;
use crate::rotation::provider_key::{
    is_anthropic, waits_for_person, KeyCheck, LocalProviderKey, Mint,
};
use crate::rotation::remind;
use crate::rotation::server_provider_key::SharedServer;
use crate::rotation::server_token::ServerGatewayToken;
use crate::rotation::ssh_key::ServerSshKey;
use crate::rotation::tailscale_api::TailscaleApiKey;
use crate::rotation::tailscale_node::TailnetNode;
use crate::rotation::{KeyId, Rotator};
use crate::secret::Secret;
use crate::store::ProviderKind;
use crate::vault::{SecretKind, SecretRef};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The keychain entry (and journal) name of the Hetzner account's token.
const HETZNER_ACCOUNT: &str = "hetzner";

/// The SSH links to servers of one click ("Rotate", "Rotate all", a resume): one
/// connection per server for all of it, closed at its end. Each key's rotation on a server
/// used to log in afresh, several times, and a server set up by Clawkeeper lets 10 new SSH
/// connections a minute through (its firewall's brute-force limit): "Rotate all" went over
/// it and waited seconds for dropped connections to be tried again. The logins a rotation
/// must make (with the new SSH key, with the old one to see it refused) still are new
/// connections. After the server's SSH key changed, its session (logged in with the old
/// key before) serves the rest of the click; the next click logs in with the new key.
#[derive(Default)]
struct Links(tokio::sync::Mutex<HashMap<String, crate::server::ServerLink>>);

impl Links {
    async fn get(&self, app: &Clawkeeper, instance: &str) -> crate::server::ServerLink {
        self.0
            .lock()
            .await
            .entry(instance.to_owned())
            .or_insert_with(|| {
                crate::server::ServerLink::new(
                    app.inner.store.clone(),
                    app.inner.vault.clone(),
                    instance,
                )
            })
            .clone()
    }

    /// The end of the click: every session closed.
    async fn close(&self) {
        let links: Vec<_> = self.0.lock().await.drain().map(|(_, l)| l).collect();
        for link in links {
            link.reset().await;
        }
    }
}

/// How a secret can be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HowToRotate {
    /// "Rotate" does all of it.
    OneClick,
    /// Steps the person takes at the provider, then Clawkeeper verifies.
    Guided,
    /// Not from here yet (said why in `note`).
    NotYet,
}

/// One secret of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub instance_id: String,
    pub key: KeyId,
    pub label: &'static str,
    /// Where it lives, in words ("Your keychain, and your assistant's settings name it").
    pub lives: &'static str,
    /// When it was last set (first saved or rotated), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub how: HowToRotate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// A rotation of it is unfinished (resumed by itself; "Try again" resumes it now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Rotation>,
    /// That rotation waits for the person to delete the old key at the provider ("Check
    /// again" once they did).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub waiting_for_you: bool,
    /// When it is due for a change, by the reminder schedule (RFC 3339; none: never, or
    /// its age is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Due for a change now.
    pub due: bool,
    /// A new key can come from signing in at the provider ("Get a new key from OpenRouter":
    /// its OAuth sign-in, no management key needed) instead of being pasted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sign_in: bool,
    /// An admin key would make it one click (OpenAI: the person can give an Admin key).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin_key: bool,
    /// When it stops working by itself (RFC 3339): a Tailscale API access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl Clawkeeper {
    fn rotation_driver(&self) -> Driver {
        let mut d = Driver::new(self.inner.store.clone(), Arc::new(self.inner.vault.clone()));
        let events = self.inner.events.clone();
        let progress: Progress = Arc::new(move |r: &Rotation| {
            let _ = events.send(Event::Rotation(r.clone()));
        });
        d.progress = Some(progress);
        d
    }

    /// This computer's assistant's config file and log, as rotations change them.
    fn local_config(&self) -> LocalConfig {
        LocalConfig {
            config_path: self.inner.instance.config_path(),
            log_file: self.inner.instance.log_dir().join("openclaw.log"),
        }
    }

    /// The rotator of `key` on `instance`, if it can be rotated from here. `given`: a new
    /// key the person made (for a secret without a key API).
    async fn rotator(
        &self,
        instance: &str,
        key: KeyId,
        given: Option<Secret>,
        links: &Links,
    ) -> Option<Box<dyn Rotator>> {
        match (instance, key) {
            (LOCAL_ID, KeyId::GatewayToken) => Some(Box::new(LocalGatewayToken {
                config: self.local_config(),
                url: self.inner.instance.url(),
                entry: self.inner.instance.token_ref(),
            })),
            (LOCAL_ID, KeyId::ProviderKey) => {
                let (check, mint) = self.provider_rotation(given).await?;
                let mut servers = Vec::new();
                for (id, name) in self.servers_sharing_provider_key().await.ok()? {
                    servers.push(SharedServer::new(
                        &id,
                        &name,
                        links.get(self, &id).await,
                        Arc::new(self.inner.vault.clone()),
                    ));
                }
                Some(Box::new(LocalProviderKey {
                    config: self.local_config(),
                    gateway_url: self.inner.instance.url(),
                    gateway_token: self.inner.instance.token_ref(),
                    keys: Arc::new(self.inner.vault.clone()),
                    entry: self.inner.instance.provider_key_ref(),
                    check,
                    mint,
                    store: self.inner.store.clone(),
                    servers,
                }))
            }
            (LOCAL_ID, KeyId::TelegramBotToken | KeyId::DiscordBotToken) => {
                let channel = Channel::of(key)?;
                let found = bot_token::detect(&self.local_config(), channel);
                let api_root = found.and_then(|f| f.api_root);
                Some(Box::new(LocalBotToken {
                    channel,
                    config: self.local_config(),
                    api: BotApi::for_channel(channel, api_root.as_deref()),
                    gateway_url: self.inner.instance.url(),
                    gateway_token: self.inner.instance.token_ref(),
                    keys: Arc::new(self.inner.vault.clone()),
                    entry: channel.entry(LOCAL_ID),
                    given,
                }))
            }
            (HETZNER_ACCOUNT, KeyId::CloudToken) => Some(Box::new(Guided(HetznerToken {
                api_base: super::server::hetzner_api(),
                given,
            }))),
            (crate::tailnet::VAULT_ACCOUNT, KeyId::TailscaleApi) => {
                Some(Box::new(Guided(TailscaleApiKey {
                    api_base: std::env::var(super::tailnet::API_ENV)
                        .ok()
                        .map(|b| b.trim().to_owned())
                        .filter(|b| !b.is_empty()),
                    given,
                })))
            }
            (LOCAL_ID, _) => None,
            (server, KeyId::SshKey) => Some(Box::new(ServerSshKey::new(
                self.inner.store.clone(),
                server,
                links.get(self, server).await,
            ))),
            (server, KeyId::GatewayToken) => Some(Box::new(ServerGatewayToken::new(
                links.get(self, server).await,
            ))),
            (server, KeyId::TailscaleNode) => {
                let node = crate::tailnet::server::get(&self.inner.store, server)
                    .await
                    .ok()
                    .flatten()?;
                let api = self.tailscale_client().await.ok()?;
                let mut spec = crate::server::ops::tailnet_spec(server);
                spec.hostname = node.hostname;
                Some(Box::new(TailnetNode {
                    store: self.inner.store.clone(),
                    vault: self.inner.vault.clone(),
                    instance: server.to_owned(),
                    api,
                    spec,
                    restart_wait: std::time::Duration::from_secs(10),
                }))
            }
            _ => None,
        }
    }

    /// How this computer's model provider key is checked, and where a new one comes from:
    /// OpenRouter with a management key makes it; otherwise it is `given` by the person.
    async fn provider_rotation(&self, given: Option<Secret>) -> Option<(KeyCheck, Mint)> {
        let rec = self.inner.store.provider(LOCAL_ID).await.ok().flatten()?;
        match rec.kind {
            ProviderKind::Openrouter => {
                let api = super::usage::openrouter_api().ok()?;
                let mint = match (given, self.management_key().await) {
                    (Some(k), _) => Mint::Given(Some(k)),
                    (None, Some(management)) => Mint::OpenRouter {
                        api: api.clone(),
                        management,
                    },
                    (None, None) => Mint::Given(None),
                };
                Some((KeyCheck::OpenRouter(api), mint))
            }
            ProviderKind::OpenaiCompatible => {
                let key = self
                    .inner
                    .vault
                    .read(&self.inner.instance.provider_key_ref())
                    .await
                    .ok();
                let check = if is_anthropic(&rec.base_url, key.as_ref()) {
                    KeyCheck::Anthropic {
                        base_url: rec.base_url,
                    }
                } else {
                    KeyCheck::Models {
                        base_url: rec.base_url,
                    }
                };
                // With an OpenAI admin key: a new project service account.
                let mint = match (given, self.openai_admin().await) {
                    (Some(k), _) => Mint::Given(Some(k)),
                    (None, Some((api, admin_key, project_id))) => Mint::OpenAiAdmin {
                        api,
                        admin_key,
                        project_id,
                    },
                    (None, None) => Mint::Given(None),
                };
                Some((check, mint))
            }
        }
    }

    /// Rotate `key` of this computer's assistant (or finish its unfinished rotation).
    pub async fn rotate(&self, key: KeyId) -> Result<Rotation, Problem> {
        self.rotate_instance(LOCAL_ID, key).await
    }

    /// Replace this computer's model provider key with `new_key`, one the person made at
    /// the provider (checked there first). The rotation then waits for them to delete the
    /// old one there ([`crate::rotation::driver::Error::NeedsYou`]).
    pub async fn rotate_provider_key_with(&self, new_key: Secret) -> Result<Rotation, Problem> {
        self.rotate_with(KeyId::ProviderKey, new_key).await
    }

    /// A guided rotation: replace `key` (the model provider key, the Hetzner token) with
    /// `new_key`, one the person made at the provider (checked there first); the rotation
    /// then waits for them to delete the old one there.
    pub async fn rotate_with(&self, key: KeyId, new_key: Secret) -> Result<Rotation, Problem> {
        let new_key = Secret::new(new_key.expose().trim());
        if new_key.expose().is_empty() {
            return Err(Problem::new(
                "rotation_key_empty",
                "The new key is empty.",
                Some("Paste the key from your provider's website."),
            ));
        }
        if let Some(channel) = Channel::of(key) {
            return self.rotate_bot_token(channel, new_key).await;
        }
        let instance = match key {
            KeyId::ProviderKey => LOCAL_ID,
            KeyId::CloudToken => HETZNER_ACCOUNT,
            KeyId::TailscaleApi => crate::tailnet::VAULT_ACCOUNT,
            _ => {
                return Err(Problem::new(
                    "rotation_input",
                    format!("{} is made by Clawkeeper, not pasted.", key.label()),
                    Some("Use Rotate instead."),
                ))
            }
        };
        let links = Links::default();
        let r = self
            .rotate_in(instance, key, None, Some(new_key), &links)
            .await;
        links.close().await;
        r
    }

    /// Rotate `key` of `instance` (this computer's assistant, `local`, or a server's id).
    pub async fn rotate_instance(&self, instance: &str, key: KeyId) -> Result<Rotation, Problem> {
        if key == KeyId::CloudToken {
            return Err(Problem::new(
                "rotation_guided",
                "Clawkeeper can't make a Hetzner token: make a new one in the Hetzner Console (your project → Security → API tokens), then paste it.",
                Some("In the Keys section press Change…, or run clawkeeper-cli rotate cloud-token --new-key-stdin."),
            ));
        }
        if let Some(channel) = Channel::of(key) {
            return Err(Problem::new(
                "rotation_guided",
                format!("Clawkeeper can't make a {}: {}", key.label(), channel.steps()),
                Some("In the Keys section press Change…, or run clawkeeper-cli rotate telegram-token (or discord-token) --new-key-stdin."),
            ));
        }
        if key == KeyId::TailscaleApi {
            return Err(Problem::new(
                "rotation_guided",
                "Clawkeeper can't make a Tailscale API key: make a new one in the Tailscale admin console (Settings → Keys, or Settings → OAuth clients), then paste it.",
                Some("In the Keys section press Change…, or run clawkeeper-cli rotate tailscale-api --new-key-stdin."),
            ));
        }
        let links = Links::default();
        let r = self.rotate_in(instance, key, None, None, &links).await;
        links.close().await;
        r
    }

    /// A chat channel's bot token replaced by `new_key`, one the person made (Telegram's
    /// BotFather, Discord's Developer Portal), which cancelled the old one. The new token is
    /// checked first — accepted by the service and the same bot's — and only then is
    /// anything changed: a token in plain text in the assistant's settings (or in a token
    /// file) is moved into the keychain, and the rotation puts the new one in use.
    async fn rotate_bot_token(
        &self,
        channel: Channel,
        new_key: Secret,
    ) -> Result<Rotation, Problem> {
        let key = channel.key();
        let config = self.local_config();
        let Some(found) = bot_token::detect(&config, channel) else {
            return Err(Problem::new(
                "rotation_unsupported",
                format!(
                    "Your assistant has no {} chat set up.",
                    key.label().trim_end_matches(" bot token")
                ),
                Some("Nothing was changed."),
            ));
        };
        let entry = channel.entry(LOCAL_ID);
        let unfinished = matches!(
            journal::running_of(&self.inner.store, LOCAL_ID, key).await,
            Ok(Some(_))
        );
        if !unfinished {
            // The token in use: in the keychain, or still in the settings (or a file).
            let outside =
                match &found.at {
                    TokenAt::Elsewhere(why) => return Err(Problem::new(
                        "rotation_unsupported",
                        format!("The {} can't be changed from here: {why}.", key.label()),
                        Some(
                            "Change it by hand in your assistant's settings. Nothing was changed.",
                        ),
                    )),
                    TokenAt::Plain | TokenAt::File(_) => {
                        bot_token::token_outside_keychain(&config, channel, &found.at)
                    }
                    TokenAt::Keychain(_) => None,
                };
            let old = match &outside {
                Some(t) => t.clone(),
                None => self
                    .inner
                    .vault
                    .read(&entry)
                    .await
                    .map_err(|e| e.problem())?,
            };
            // Checked before anything changes: a wrong token leaves all as it was.
            let api = BotApi::for_channel(channel, found.api_root.as_deref());
            if let Err(e) = api.check_new(&old, &new_key).await {
                let (code, hint) = match e {
                    crate::rotation::StepError::Transient(_) => (
                        "rotation_unreachable",
                        "Nothing was changed. Check this computer's internet connection, then paste the token again.",
                    ),
                    _ => ("rotation_key_refused", "Nothing was changed. Paste the token again."),
                };
                return Err(Problem::new(
                    code,
                    format!("The new {} wasn't taken: {}.", key.label(), e.message()),
                    Some(hint),
                ));
            }
            if !self.local_running() {
                return Err(Problem::new(
                    "assistant_not_running",
                    "Your assistant isn't running, so the new token can't be put in use.",
                    Some("Start it, then paste the token again. Nothing was changed."),
                ));
            }
            // Moved into the keychain: the rotation replaces it from there.
            if let Some(t) = outside {
                let same = matches!(self.inner.vault.read(&entry).await, Ok(k) if k.expose() == t.expose());
                if !same {
                    self.inner
                        .vault
                        .store(&entry, &t)
                        .await
                        .map_err(|e| e.problem())?;
                }
            }
        }
        // This computer only: no server link is opened.
        self.rotate_in(LOCAL_ID, key, None, Some(new_key), &Links::default())
            .await
            .map_err(|mut p| {
                if p.code == "rotation_rolled_back" {
                    p.hint = Some(format!(
                        "Your assistant is back on the old token, which {} most likely cancelled already: paste the new token again.",
                        match channel {
                            Channel::Telegram => "BotFather",
                            Channel::Discord => "Discord",
                        }
                    ));
                }
                p
            })
    }

    async fn rotate_in(
        &self,
        instance: &str,
        key: KeyId,
        batch: Option<&str>,
        given: Option<Secret>,
        links: &Links,
    ) -> Result<Rotation, Problem> {
        let Some(rotator) = self.rotator(instance, key, given, links).await else {
            return Err(Problem::new(
                "rotation_unsupported",
                format!("{} can't be rotated in one click yet.", key.label()),
                Some("See the keys list for how to change it by hand."),
            ));
        };
        // Where the new key is checked must answer: this computer's assistant, or the
        // server (the Hetzner token is checked at Hetzner only).
        match instance {
            LOCAL_ID if !self.local_running() => {
                return Err(Problem::new(
                    "assistant_not_running",
                    "Your assistant isn't running, so the new key can't be checked.",
                    Some("Start it, then rotate again. Your keys are unchanged."),
                ))
            }
            LOCAL_ID | HETZNER_ACCOUNT | crate::tailnet::VAULT_ACCOUNT => {}
            server => self.server_reachable(server, links).await?,
        }
        if instance == LOCAL_ID && key == KeyId::ProviderKey {
            self.sharing_servers_reachable(links).await?;
        }
        let r = self
            .rotation_driver()
            .rotate(rotator.as_ref(), instance, batch)
            .await
            .map_err(|e| e.problem())?;
        tracing::info!(key = key.as_str(), instance, "rotated");
        self.after_rotation(&r).await;
        Ok(r)
    }

    /// The servers set up from this computer with its provider key (without a provider of
    /// their own, or with the same keychain entry) and with OpenClaw on them (they have an
    /// assistant token): id and name. The key's rotation changes it there too.
    pub(crate) async fn servers_sharing_provider_key(
        &self,
    ) -> Result<Vec<(String, String)>, Problem> {
        let store = &self.inner.store;
        let local = store.provider(LOCAL_ID).await.map_err(|e| e.problem())?;
        let mut sharing = Vec::new();
        for server in store.servers().await.map_err(|e| e.problem())? {
            let (id, name) = (server.id, server.name);
            if self
                .inner
                .vault
                .read(&SecretRef::new(SecretKind::GatewayToken, &id))
                .await
                .is_err()
            {
                continue;
            }
            let own = store.provider(&id).await.map_err(|e| e.problem())?;
            let shares = match (&own, &local) {
                (None, _) => true,
                (Some(own), Some(local)) => own.key_ref == local.key_ref,
                (Some(_), None) => false,
            };
            if shares {
                sharing.push((id, name));
            }
        }
        Ok(sharing)
    }

    /// A new rotation of this computer's provider key changes it on every server that
    /// shares it, so each must answer now (an unfinished rotation is let through: it
    /// waits for a server that doesn't).
    async fn sharing_servers_reachable(&self, links: &Links) -> Result<(), Problem> {
        if journal::running_of(&self.inner.store, LOCAL_ID, KeyId::ProviderKey)
            .await
            .map_err(|e| e.problem())?
            .is_some()
        {
            return Ok(());
        }
        for (id, name) in self.servers_sharing_provider_key().await? {
            if let Err(p) = self.server_reachable(&id, links).await {
                let name = if name.is_empty() { id } else { name };
                return Err(Problem::new(
                    &p.code,
                    format!(
                        "Your server {name} uses this model provider key too, so the new key must be put in use there before the old one is deleted, and it can't be reached now. Nothing was changed."
                    ),
                    Some("Your key keeps working. Rotate again once the server answers (or remove it from Clawkeeper if it is gone)."),
                ));
            }
        }
        Ok(())
    }

    /// After a server's SSH key changed: the chat's SSH connection to it (logged in with the
    /// old key) is closed, so the next one logs in with the new key; the gateway client
    /// reconnects through the same tunnel by itself.
    async fn after_rotation(&self, r: &Rotation) {
        if r.key != KeyId::SshKey || r.outcome != Some(journal::Outcome::Done) {
            return;
        }
        let link = self
            .inner
            .chat
            .lock()
            .await
            .as_ref()
            .filter(|c| c.server.as_deref() == Some(r.instance_id.as_str()))
            .and_then(|c| c.link.clone());
        if let Some(link) = link {
            link.reset().await;
        }
    }

    /// A server's key is changed only while the server answers (and lets the app in): the
    /// new key must be checked on it before the old one goes.
    async fn server_reachable(&self, instance: &str, links: &Links) -> Result<(), Problem> {
        let store = &self.inner.store;
        match crate::ssh::hosts::get(store, instance).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Problem::new(
                    "server_unknown",
                    format!("No server called {instance:?} is connected to Clawkeeper."),
                    Some("Pick one from the keys list."),
                ))
            }
            Err(e) => return Err(e.problem()),
        }
        // The session stays open for the rotation that follows (see [`Links`]).
        match links.get(self, instance).await.session().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let p = e.problem();
                Err(Problem::new(
                    &p.code,
                    format!("The server's key can't be changed now: {}", p.message),
                    Some("Nothing was changed now; the key in use keeps working. Rotate again once the server answers."),
                ))
            }
        }
    }

    /// This computer's gateway is up (run by this process or another: the tray daemon,
    /// `clawkeeper-cli start --foreground`).
    fn local_running(&self) -> bool {
        self.inner.instance.port_in_use()
    }

    /// Carry on every unfinished rotation that can be carried on now. Returns what
    /// happened to each (finished, undone, or still waiting, and why).
    pub async fn rotations_resume(&self) -> Vec<(Rotation, Result<Rotation, Problem>)> {
        let local_up = self.local_running();
        let links = Links::default();
        let links = &links;
        let rotator_for = |r: Rotation| async move {
            if r.instance_id == LOCAL_ID && !local_up {
                return None;
            }
            self.rotator(&r.instance_id, r.key, None, links).await
        };
        let mut out = Vec::new();
        for (r, res) in self.rotation_driver().resume_all(rotator_for).await {
            if let Ok(done) = &res {
                self.after_rotation(done).await;
            }
            out.push((r, res.map_err(|e| e.problem())));
        }
        links.close().await;
        out
    }

    /// Every secret the instances depend on: where it lives, how old, how it rotates.
    pub async fn keys_inventory(&self) -> Result<Vec<KeyInfo>, Problem> {
        let store = &self.inner.store;
        let ages = journal::ages(store).await.map_err(|e| e.problem())?;
        let sign_in = self.provider_sign_in_possible().await;
        let running = journal::unfinished(store).await.map_err(|e| e.problem())?;
        let mut out = Vec::new();
        // `known`: when it was set and its fingerprint, from elsewhere than a rotation (a
        // server's record), for a key never rotated.
        let mut push = |instance: &str,
                        key: KeyId,
                        lives: &'static str,
                        how,
                        note,
                        known: Option<(String, Option<String>)>| {
            let age = ages
                .iter()
                .find(|a| a.instance_id == instance && a.key == key);
            let (known_at, known_fp) = known.unzip();
            let running = running
                .iter()
                .find(|r| r.instance_id == instance && r.key == key)
                .cloned();
            out.push(KeyInfo {
                instance_id: instance.to_owned(),
                key,
                label: key.label(),
                lives,
                set_at: age.map(|a| a.set_at.clone()).or(known_at),
                rotated_at: age.and_then(|a| a.rotated_at.clone()),
                fingerprint: age
                    .and_then(|a| a.fingerprint.clone())
                    .or(known_fp.flatten()),
                how,
                note,
                waiting_for_you: running.as_ref().is_some_and(waits_for_person),
                running,
                due_at: None,
                due: false,
                sign_in: false,
                admin_key: false,
                expires_at: None,
            });
        };
        let vault = &self.inner.vault;
        let has = |r: SecretRef| async move { vault.read(&r).await.is_ok() };
        if has(self.inner.instance.token_ref()).await {
            push(
                LOCAL_ID,
                KeyId::GatewayToken,
                "Your keychain; your assistant's settings name it, never hold it",
                HowToRotate::OneClick,
                None,
                None,
            );
        }
        if has(self.inner.instance.provider_key_ref()).await {
            let openai_first = match self.openai_admin().await {
                Some((_, _, project)) => !self.openai_key_is_ours(&project).await,
                None => false,
            };
            let rotation = self.provider_rotation(None).await;
            let (how, note) = if matches!(
                rotation,
                Some((_, Mint::OpenRouter { .. } | Mint::OpenAiAdmin { .. }))
            ) {
                let note = openai_first.then_some(
                    "Clawkeeper makes the new key with your OpenAI admin key. The key in use now was made by you, so this once you delete it yourself at platform.openai.com/api-keys when asked; after that, each change is one click.",
                );
                (HowToRotate::OneClick, note)
            } else if matches!(rotation, Some((KeyCheck::Anthropic { .. }, _))) {
                (
                    HowToRotate::Guided,
                    Some("Make a new key in the Claude Console (console.anthropic.com → Settings → API keys) and paste it here. Clawkeeper checks it, switches your assistant to it, then asks you to delete the old one."),
                )
            } else if sign_in {
                (
                    HowToRotate::Guided,
                    Some("Get a new key by signing in with OpenRouter, or make one in your OpenRouter account and paste it. Clawkeeper checks it, switches your assistant to it, then asks you to delete the old one."),
                )
            } else {
                (
                    HowToRotate::Guided,
                    Some("Make a new key in your provider's account and paste it here. Clawkeeper checks it, switches your assistant to it, then asks you to delete the old one."),
                )
            };
            let shared = !self.servers_sharing_provider_key().await?.is_empty();
            push(
                LOCAL_ID,
                KeyId::ProviderKey,
                if shared {
                    "Your keychain, your model provider's account, and a private file on each server set up with it (changed there too)"
                } else {
                    "Your keychain, and your model provider's account"
                },
                how,
                note,
                None,
            );
        }
        if has(SecretRef::new(SecretKind::CloudToken, HETZNER_ACCOUNT)).await {
            push(
                HETZNER_ACCOUNT,
                KeyId::CloudToken,
                "Your keychain; Clawkeeper uses it to create and delete your servers at Hetzner",
                HowToRotate::Guided,
                Some("Make a new token in the Hetzner Console (your project → Security → API tokens, Read & Write) and paste it here. Clawkeeper checks it, then asks you to delete the old one."),
                None,
            );
        }
        // The assistant's chat channels: their bot tokens, guided.
        let config = self.local_config();
        for channel in [Channel::Telegram, Channel::Discord] {
            let Some(found) = bot_token::detect(&config, channel) else {
                continue;
            };
            let (lives, how, note) = match found.at {
                TokenAt::Keychain(_) => (
                    "Your keychain; your assistant's settings name it, never hold it",
                    HowToRotate::Guided,
                    channel.steps(),
                ),
                TokenAt::Plain => (
                    "Your assistant's settings, in plain text: changing it moves it into your keychain",
                    HowToRotate::Guided,
                    channel.steps(),
                ),
                TokenAt::File(_) => (
                    "A file your assistant's settings name: changing it moves it into your keychain",
                    HowToRotate::Guided,
                    channel.steps(),
                ),
                TokenAt::Elsewhere(why) => (
                    why,
                    HowToRotate::NotYet,
                    "Clawkeeper changes a bot token kept in your keychain or in your assistant's settings; this one is elsewhere. Change it by hand.",
                ),
            };
            push(LOCAL_ID, channel.key(), lives, how, Some(note), None);
        }
        let tailscale = has(crate::tailnet::credentials_ref()).await;
        let tailscale_expiry = if tailscale {
            self.tailscale_access_expiry(false).await
        } else {
            None
        };
        if let Some(e) = &tailscale_expiry {
            push(
                crate::tailnet::VAULT_ACCOUNT,
                KeyId::TailscaleApi,
                "Your keychain; Clawkeeper uses it to put your servers on your tailnet and to look them up",
                HowToRotate::Guided,
                Some(if e.oauth {
                    "An OAuth client doesn't expire. To change it, make a new one in the Tailscale admin console (Settings → OAuth clients) and paste it here. Clawkeeper checks it, then asks you to delete the old one."
                } else {
                    "API access tokens expire (90 days at most). Make a new one in the Tailscale admin console (Settings → Keys) and paste it here. Clawkeeper checks it, then asks you to delete the old one."
                }),
                None,
            );
        }
        // The servers: Clawkeeper's login key, the assistant's token and the tailnet login
        // rotate in one click.
        for id in store
            .servers()
            .await
            .map_err(|e| e.problem())?
            .into_iter()
            .map(|s| s.id)
        {
            let Ok(Some(host)) = crate::ssh::hosts::get(store, &id).await else {
                continue;
            };
            if has(SecretRef::new(SecretKind::SshKey, &id)).await {
                push(
                    &id,
                    KeyId::SshKey,
                    "Your keychain; the server's list of allowed keys has only its public half",
                    HowToRotate::OneClick,
                    None,
                    Some((host.pinned_at.clone(), host.app_key_fingerprint.clone())),
                );
            }
            if has(SecretRef::new(SecretKind::GatewayToken, &id)).await {
                push(
                    &id,
                    KeyId::GatewayToken,
                    "Your keychain, and a private file on the server",
                    HowToRotate::OneClick,
                    None,
                    None,
                );
            }
            if matches!(crate::tailnet::server::get(store, &id).await, Ok(Some(_))) {
                let (how, note) = if tailscale {
                    (HowToRotate::OneClick, Some("Clawkeeper logs the server in to your tailnet again with a fresh single-use key; its device gets a new node key."))
                } else {
                    (HowToRotate::NotYet, Some("Save your Tailscale API key (Private network) to renew it in one click."))
                };
                push(
                    &id,
                    KeyId::TailscaleNode,
                    "On the server only; your tailnet lists its device",
                    how,
                    note,
                    None,
                );
            }
        }
        if let Some(e) = tailscale_expiry {
            for k in out.iter_mut().filter(|k| k.key == KeyId::TailscaleApi) {
                k.expires_at = e.expires.map(remind::format_time);
            }
        }
        let keys: Vec<(String, KeyId)> =
            out.iter().map(|k| (k.instance_id.clone(), k.key)).collect();
        let due = remind::status(store, &keys, time::OffsetDateTime::now_utc())
            .await
            .map_err(|e| e.problem())?;
        for (k, d) in out.iter_mut().zip(due) {
            k.due_at = d.due_at.map(remind::format_time);
            k.due = d.due;
        }
        if self.openai_admin_possible().await {
            for k in out.iter_mut() {
                k.admin_key |= k.instance_id == LOCAL_ID
                    && k.key == KeyId::ProviderKey
                    && k.how == HowToRotate::Guided;
            }
        }
        if sign_in {
            for k in out.iter_mut() {
                k.sign_in |= k.instance_id == LOCAL_ID
                    && k.key == KeyId::ProviderKey
                    && k.how == HowToRotate::Guided;
            }
        }
        Ok(out)
    }

    /// Whether this computer's provider is OpenAI itself (whose Admin key makes keys).
    async fn openai_admin_possible(&self) -> bool {
        let Ok(Some(rec)) = self.inner.store.provider(LOCAL_ID).await else {
            return false;
        };
        rec.kind == ProviderKind::OpenaiCompatible && super::openai::is_openai_itself(&rec.base_url)
    }

    /// Whether this computer's provider is OpenRouter, whose sign-in gives a new key.
    async fn provider_sign_in_possible(&self) -> bool {
        matches!(
            self.inner.store.provider(LOCAL_ID).await,
            Ok(Some(rec)) if rec.kind == ProviderKind::Openrouter
        )
    }

    /// "Get a new key from OpenRouter" (the model provider key's rotation without a
    /// management key), first half: listen for the browser's return and give the page to
    /// open there. The person signs in and approves; [`Self::finish_provider_key_sign_in`]
    /// then rotates to the key OpenRouter gives out. A sign-in begun before and not finished
    /// is dropped.
    pub async fn begin_provider_key_sign_in(&self) -> Result<String, Problem> {
        if !self.provider_sign_in_possible().await {
            return Err(Problem::new(
                "rotation_sign_in_unavailable",
                "Only an OpenRouter key can come from signing in.",
                Some("Make a new key at your provider and paste it with Change…."),
            ));
        }
        let signin = crate::openrouter::SignIn::begin(&super::openrouter_site())
            .await
            .map_err(|e| e.problem())?;
        let url = signin.url();
        let mut pending = self.inner.key_sign_in.lock().await;
        if let Some(old) = pending.replace(KeySignIn::new(signin)) {
            old.cancel.cancel();
        }
        Ok(url)
    }

    /// Second half: wait (up to 10 minutes) for the browser to come back with OpenRouter's
    /// approval, then rotate to the new key as if it had been pasted: checked at OpenRouter,
    /// switched to, verified with a real completion; then the rotation waits for the person
    /// to delete the old key (only a management key could). The new key never leaves this
    /// process. A Cancel before or during the wait ends it with "cancelled".
    pub async fn finish_provider_key_sign_in(&self) -> Result<Rotation, Problem> {
        let (signin, cancel, id) = {
            let mut pending = self.inner.key_sign_in.lock().await;
            match pending.as_mut() {
                Some(p) if p.cancel.is_cancelled() => {
                    *pending = None;
                    return Err(sign_in_cancelled());
                }
                Some(p) => match p.signin.take() {
                    Some(signin) => (signin, p.cancel.clone(), p.id),
                    // Another finish is already waiting for this sign-in.
                    None => return Err(sign_in_missing()),
                },
                None => return Err(sign_in_missing()),
            }
        };
        // Cancellable from the window while it waits (the lock is not held meanwhile).
        let key = tokio::select! {
            () = cancel.cancelled() => Err(sign_in_cancelled()),
            key = signin.finish(std::time::Duration::from_secs(600)) => key.map_err(|e| e.problem()),
        };
        {
            // Over: forget it, unless a new sign-in has taken its place meanwhile.
            let mut pending = self.inner.key_sign_in.lock().await;
            if pending.as_ref().is_some_and(|p| p.id == id) {
                *pending = None;
            }
        }
        self.rotate_with(KeyId::ProviderKey, key?).await
    }

    /// "Cancel" while the sign-in waits for the browser, or before its wait has begun: the
    /// browser's return is no longer listened for, and the finish says "cancelled".
    pub async fn cancel_provider_key_sign_in(&self) {
        if let Some(p) = self.inner.key_sign_in.lock().await.as_mut() {
            p.cancel.cancel();
            p.signin = None;
        }
    }
}

/// "Get a new key from OpenRouter": a sign-in begun and not over. Its listener for the
/// browser's return is taken out by the finish that waits on it, or dropped by a Cancel.
pub(super) struct KeySignIn {
    /// Tells this sign-in from one begun after it.
    id: u64,
    signin: Option<crate::openrouter::SignIn>,
    cancel: tokio_util::sync::CancellationToken,
}

impl KeySignIn {
    fn new(signin: crate::openrouter::SignIn) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            signin: Some(signin),
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }
}

fn sign_in_missing() -> Problem {
    Problem::new(
        "rotation_sign_in_missing",
        "No sign-in with OpenRouter is waiting.",
        Some("Press \"Get a new key from OpenRouter\" again."),
    )
}

fn sign_in_cancelled() -> Problem {
    Problem::new(
        "rotation_sign_in_cancelled",
        "Signing in with OpenRouter was cancelled. Your key is unchanged.",
        None,
    )
}

/// One key's result in "Rotate all".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateResult {
    pub instance_id: String,
    pub key: KeyId,
    pub label: &'static str,
    /// `rotated` | `unchanged` (undone; the old key works) | `pending` (finishing later;
    /// a key the app holds works) | `needs_you` (guided or not possible from here)
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

impl Clawkeeper {
    /// "Rotate all": every key that rotates in one click, in one batch; the others listed as
    /// needing the person. A failure of one doesn't stop the others.
    ///
    /// Keys of different places rotate at the same time: this computer's, and each
    /// server's, in turn within each place (they change the same settings, and the
    /// gateway applies one change at a time). A key that lives in several places (this
    /// computer's model provider key, shared with servers) rotates once they are done.
    /// Results come in the keys list's order.
    pub async fn rotate_all(&self) -> Result<Vec<RotateResult>, Problem> {
        let batch = format!("batch-{}", crate::secret::Secret::random(6).fingerprint());
        let links = Links::default();
        let keys = self.keys_inventory().await?;
        let mut out: Vec<Option<RotateResult>> = vec![None; keys.len()];
        // Per place, the positions of its one-click keys, in order; then those that
        // come after every place.
        let mut lanes: Vec<(&str, Vec<usize>)> = Vec::new();
        let mut last = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if k.how != HowToRotate::OneClick {
                out[i] = Some(RotateResult {
                    instance_id: k.instance_id.clone(),
                    key: k.key,
                    label: k.label,
                    result: "needs_you",
                    rotation: None,
                    problem: k.note.map(|n| Problem::new("rotation_guided", n, None)),
                });
            } else if k.instance_id == LOCAL_ID && k.key == KeyId::ProviderKey {
                last.push(i);
            } else if let Some((_, lane)) =
                lanes.iter_mut().find(|(place, _)| *place == k.instance_id)
            {
                lane.push(i);
            } else {
                lanes.push((&k.instance_id, vec![i]));
            }
        }
        let one = |i: usize| {
            let (k, batch, links) = (&keys[i], &batch, &links);
            async move {
                let r = self
                    .rotate_in(&k.instance_id, k.key, Some(batch), None, links)
                    .await;
                let (result, rotation, problem) = match r {
                    Ok(r) => ("rotated", Some(r), None),
                    Err(p) if p.code == "rotation_pending" => ("pending", None, Some(p)),
                    Err(p) if p.code == "rotation_needs_you" => ("needs_you", None, Some(p)),
                    Err(p) => ("unchanged", None, Some(p)),
                };
                (
                    i,
                    RotateResult {
                        instance_id: k.instance_id.clone(),
                        key: k.key,
                        label: k.label,
                        result,
                        rotation,
                        problem,
                    },
                )
            }
        };
        let lane = |positions: Vec<usize>| async move {
            let mut done = Vec::new();
            for i in positions {
                done.push(one(i).await);
            }
            done
        };
        let at_once = futures_util::future::join_all(lanes.into_iter().map(|(_, l)| lane(l)));
        for (i, r) in at_once.await.into_iter().flatten() {
            out[i] = Some(r);
        }
        for (i, r) in lane(last).await {
            out[i] = Some(r);
        }
        links.close().await;
        Ok(out.into_iter().flatten().collect())
    }
}

impl Clawkeeper {
    /// The tray daemon's: finish unfinished rotations by themselves — when the assistant
    /// becomes healthy (it is how a rotation interrupted by a crash or a reboot ends), and
    /// every `every` while one is still waiting.
    pub fn watch_rotations(&self, every: std::time::Duration) {
        use tokio::sync::broadcast::error::RecvError;
        let app = self.clone();
        let mut rx = self.events();
        tokio::spawn(async move {
            loop {
                let waiting = journal::unfinished(&app.inner.store)
                    .await
                    .map(|l| !l.is_empty())
                    .unwrap_or(false);
                if waiting {
                    for (r, result) in app.rotations_resume().await {
                        if let Err(p) = result {
                            tracing::info!(key = r.key.as_str(), code = %p.code, "rotation still waiting");
                        }
                    }
                }
                let sleep = tokio::time::sleep(every);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        ev = rx.recv() => match ev {
                            Ok(Event::Instance { state: "healthy", .. }) => break,
                            Ok(_) | Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Closed) => return,
                        }
                    }
                }
            }
        });
    }
}
