//! The bot tokens of the assistant's chat channels on this computer (Telegram, Discord): a
//! guided rotation. Neither has an API to make a token: the person makes the new one
//! (Telegram: @BotFather's `/revoke`; Discord: Developer Portal → Bot → Reset Token) and
//! pastes it. **Both cancel the old token at once**, so unlike the other guided keys the
//! old one is dead before the rotation starts: the assistant's channel is down from the
//! moment the person makes the new token until it is installed here. The steps text says
//! so, and the rotation keeps that gap short (the token is checked and installed right
//! after the paste; the gateway restarts only that channel, in about a second).
//!
//! How OpenClaw (2026.9.6) takes these tokens (docs/openclaw-rotation.md, measured):
//! `channels.telegram.botToken` / `channels.discord.token` take a SecretRef (so, as the
//! gateway token, our keychain helper serves it); `channels.telegram.tokenFile` beats
//! `botToken`; a change under `channels.telegram` restarts only that channel ("restarting
//! telegram channel", "config hot reload applied"), and `channels.status` tells whether it
//! runs, is connected, and since when.
//!
//! - **mint**: the pasted token, checked first: the chat service accepts it (Telegram
//!   `getMe`, Discord `GET /users/@me`), and it is the *same bot* as the old token's (a
//!   Telegram token starts with its bot's id, a Discord token with its bot's id in base64:
//!   the old token tells its bot even once it is cancelled) — a token of another bot is
//!   refused;
//! - **install**: the config's token becomes a SecretRef naming the staging entry (a
//!   plain-text token in the config, or a token file, is replaced by it: the token moves
//!   into the keychain); the gateway restarts the channel;
//! - **verify new**: the service accepts the new token, and the gateway says the channel
//!   runs, connected, without error, started after the install;
//! - **revoke old**: done by the person already (checked: the service refuses the old
//!   token); else the rotation waits for them ([`StepError::NeedsYou`]);
//! - **verify old**: the service refuses the old token, and the channel still runs;
//! - **settle**: the config names the entry again (the channel restarts once more);
//! - **discard**: the config names the entry (the old token) again.

use super::driver::{candidates, Keys};
use super::local_config::LocalConfig;
use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::gateway::{self, ClientInfo};
use crate::local::config::SECRETS_PROVIDER;
use crate::secret::Secret;
use crate::vault::{SecretKind, SecretRef};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The Telegram Bot API's root (`channels.telegram.apiRoot` overrides it, for the gateway
/// and for these checks alike).
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// Discord's REST API (`CLAWKEEPER_DISCORD_API` overrides it: the contract fake in tests).
pub const DISCORD_API: &str = "https://discord.com/api/v10";

/// How long the gateway may take to say it applied a config change.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// How long the Telegram channel may take to run again after the install.
const RUNNING_WITHIN: Duration = Duration::from_secs(40);

/// No restart of the Telegram channel this long after the install: the config is written
/// again.
const KICK_AFTER: Duration = Duration::from_secs(12);

/// The same for Discord: its plugin's reload retires the old plugin instance first (up to
/// 5 s, "forced retirement after 5000ms"), and on the loaded 2-core test machine the
/// restart came ~60 s after the config change (docs/openclaw-rotation.md).
const DISCORD_RUNNING_WITHIN: Duration = Duration::from_secs(120);
const DISCORD_KICK_AFTER: Duration = Duration::from_secs(75);

/// Which chat channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Telegram,
    Discord,
}

impl Channel {
    pub fn key(self) -> KeyId {
        match self {
            Channel::Telegram => KeyId::TelegramBotToken,
            Channel::Discord => KeyId::DiscordBotToken,
        }
    }

    pub fn of(key: KeyId) -> Option<Channel> {
        match key {
            KeyId::TelegramBotToken => Some(Channel::Telegram),
            KeyId::DiscordBotToken => Some(Channel::Discord),
            _ => None,
        }
    }

    /// OpenClaw's channel id.
    pub fn id(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Discord => "discord",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Channel::Telegram => "Telegram",
            Channel::Discord => "Discord",
        }
    }

    /// How long it may take to run again after its token changed in the config, and after
    /// how long without a restart the config is written again.
    fn restart_waits(self) -> (Duration, Duration) {
        match self {
            Channel::Telegram => (RUNNING_WITHIN, KICK_AFTER),
            Channel::Discord => (DISCORD_RUNNING_WITHIN, DISCORD_KICK_AFTER),
        }
    }

    /// Where its settings are in the config (a JSON pointer).
    pub fn section(self) -> String {
        format!("/channels/{}", self.id())
    }

    /// The config field of its token.
    pub fn token_field(self) -> &'static str {
        match self {
            Channel::Telegram => "botToken",
            Channel::Discord => "token",
        }
    }

    /// Settings that beat the token field (removed when it becomes a SecretRef).
    fn beats_token_field(self) -> &'static [&'static str] {
        match self {
            Channel::Telegram => &["tokenFile"],
            Channel::Discord => &[],
        }
    }

    /// Its keychain entry on `instance`.
    pub fn entry(self, instance: &str) -> SecretRef {
        let kind = match self {
            Channel::Telegram => SecretKind::TelegramBotToken,
            Channel::Discord => SecretKind::DiscordBotToken,
        };
        SecretRef::new(kind, instance)
    }

    /// Where the person makes a new token (and so cancels the old one), in words.
    fn where_to_revoke(self) -> &'static str {
        match self {
            Channel::Telegram => "in Telegram: open @BotFather, send /revoke and pick your bot",
            Channel::Discord => {
                "in the Discord Developer Portal: your application → Bot → Reset Token"
            }
        }
    }

    /// The guided steps, as the keys list shows them.
    pub fn steps(self) -> &'static str {
        match self {
            Channel::Telegram => "In Telegram, open @BotFather, send /revoke, pick your bot, and paste the new token here. BotFather cancels the old token at once: your assistant's Telegram chat is down from then until you paste the new one, so keep this window open and paste it right away. Clawkeeper checks that the token is your bot's, puts it in use, and checks that the chat runs again.",
            Channel::Discord => "In the Discord Developer Portal, open your application → Bot → Reset Token, and paste the new token here. Discord cancels the old token at once: your assistant is offline on Discord from then until you paste the new one, so keep this window open and paste it right away. Clawkeeper checks that the token is your bot's, puts it in use, and checks that the chat runs again.",
        }
    }
}

/// Where the channel's token is now, by the assistant's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAt {
    /// A SecretRef served by our keychain helper: the keychain entry it names (as named:
    /// maybe a staging entry, maybe with a `#<rotation>` tag).
    Keychain(String),
    /// In plain text in the config.
    Plain,
    /// In a file the config names (Telegram's `tokenFile`).
    File(PathBuf),
    /// Somewhere Clawkeeper doesn't manage (said in words): not rotatable from here.
    Elsewhere(&'static str),
}

/// The channel as the assistant's config has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub at: TokenAt,
    /// Telegram's `apiRoot` (a self-hosted Bot API server or proxy), if set.
    pub api_root: Option<String>,
}

/// The channel in the assistant's config, if it has one (and it isn't switched off).
pub fn detect(config: &LocalConfig, channel: Channel) -> Option<Found> {
    let section = config.value_at(&channel.section())?;
    let section = section.as_object()?;
    if section.get("enabled") == Some(&Value::Bool(false)) {
        return None;
    }
    let api_root = section
        .get("apiRoot")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|s| !s.trim().is_empty());
    let accounts = section
        .get("accounts")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.is_empty());
    let file = section
        .get("tokenFile")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty());
    let at = if accounts {
        TokenAt::Elsewhere("several bot accounts are set up")
    } else if let (Channel::Telegram, Some(f)) = (channel, file) {
        TokenAt::File(PathBuf::from(f))
    } else {
        match section.get(channel.token_field()) {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                if s.contains("${") {
                    TokenAt::Elsewhere("the token comes from an environment variable")
                } else {
                    TokenAt::Plain
                }
            }
            Some(Value::Object(r)) => {
                let ours = r.get("source").and_then(Value::as_str) == Some("exec")
                    && r.get("provider").and_then(Value::as_str) == Some(SECRETS_PROVIDER);
                match r.get("id").and_then(Value::as_str) {
                    Some(id) if ours => TokenAt::Keychain(id.to_owned()),
                    _ => TokenAt::Elsewhere(
                        "the token comes from a secret store Clawkeeper doesn't manage",
                    ),
                }
            }
            _ => TokenAt::Elsewhere("the token comes from an environment variable"),
        }
    };
    Some(Found { at, api_root })
}

/// The token where the config has it in plain text or in a file (to move it into the
/// keychain before a rotation). `None` elsewhere.
pub fn token_outside_keychain(
    config: &LocalConfig,
    channel: Channel,
    at: &TokenAt,
) -> Option<Secret> {
    match at {
        TokenAt::Plain => {
            let pointer = format!("{}/{}", channel.section(), channel.token_field());
            match config.value_at(&pointer)? {
                Value::String(s) => Some(Secret::new(s.trim())),
                _ => None,
            }
        }
        TokenAt::File(path) => {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).ok()?);
            let secret = Secret::new(text.trim());
            (!secret.expose().is_empty()).then_some(secret)
        }
        _ => None,
    }
}

/// A bot as its chat service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bot {
    pub id: String,
    pub name: String,
}

/// What the chat service says to a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Accepted(Bot),
    Refused,
    /// No clear answer (not reachable, a 5xx, an answer we can't read).
    Unknown(String),
}

/// A chat service's API, as far as checking a bot token goes.
#[derive(Debug, Clone)]
pub enum BotApi {
    /// `GET {root}/bot<token>/getMe`.
    Telegram { root: String },
    /// `GET {base}/users/@me` with `Authorization: Bot <token>`.
    Discord { base: String },
}

impl BotApi {
    /// The API for `channel`: Telegram at `api_root` (the config's) or the real one;
    /// Discord at `CLAWKEEPER_DISCORD_API` or the real one.
    pub fn for_channel(channel: Channel, api_root: Option<&str>) -> Self {
        match channel {
            Channel::Telegram => BotApi::Telegram {
                root: api_root
                    .unwrap_or(TELEGRAM_API)
                    .trim()
                    .trim_end_matches('/')
                    .to_owned(),
            },
            Channel::Discord => BotApi::Discord {
                base: std::env::var("CLAWKEEPER_DISCORD_API")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| DISCORD_API.to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
            },
        }
    }

    fn channel(&self) -> Channel {
        match self {
            BotApi::Telegram { .. } => Channel::Telegram,
            BotApi::Discord { .. } => Channel::Discord,
        }
    }

    /// Whether `token` looks like a token of this service. (A Telegram token goes into the
    /// URL's path: anything but its own characters is never sent.)
    pub fn well_formed(&self, token: &Secret) -> bool {
        let t = token.expose();
        match self {
            BotApi::Telegram { .. } => t.split_once(':').is_some_and(|(id, rest)| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }),
            BotApi::Discord { .. } => {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            }
        }
    }

    /// The bot a token is for, read from the token itself (Telegram: the part before the
    /// colon; Discord: the first part, base64 of the bot's id) — known even once the token
    /// is cancelled.
    pub fn bot_id_in(&self, token: &Secret) -> Option<String> {
        use base64::Engine;
        let t = token.expose();
        match self {
            BotApi::Telegram { .. } => t
                .split_once(':')
                .map(|(id, _)| id.to_owned())
                .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
            BotApi::Discord { .. } => {
                let first = t.split('.').next()?;
                let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(first.trim_end_matches('='))
                    .or_else(|_| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(first.trim_end_matches('='))
                    })
                    .ok()?;
                String::from_utf8(bytes)
                    .ok()
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            }
        }
    }

    /// What the service says to `token`.
    pub async fn identity(&self, token: &Secret) -> Identity {
        if !self.well_formed(token) {
            return Identity::Refused;
        }
        let client = reqwest::Client::new();
        let request = match self {
            BotApi::Telegram { root } => client.get(format!("{root}/bot{}/getMe", token.expose())),
            BotApi::Discord { base } => client
                .get(format!("{base}/users/@me"))
                .header("Authorization", format!("Bot {}", token.expose())),
        };
        // Telegram's URL holds the token: an error is told without it.
        let response = match request.timeout(Duration::from_secs(20)).send().await {
            Ok(r) => r,
            Err(e) => return Identity::Unknown(e.without_url().to_string()),
        };
        let status = response.status().as_u16();
        if matches!(status, 401 | 403) || (status == 404 && self.channel() == Channel::Telegram) {
            // Telegram answers 404 to a token it has never seen the shape of.
            return Identity::Refused;
        }
        if !response.status().is_success() {
            return Identity::Unknown(format!("HTTP {status}"));
        }
        let body: Value = match response.json().await {
            Ok(v) => v,
            Err(e) => return Identity::Unknown(e.without_url().to_string()),
        };
        let me = match self {
            BotApi::Telegram { .. } if body.get("ok") == Some(&Value::Bool(true)) => {
                body.get("result")
            }
            BotApi::Telegram { .. } => return Identity::Refused,
            BotApi::Discord { .. } => Some(&body),
        };
        let id = me.and_then(|m| m.get("id")).and_then(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        });
        let name = me
            .and_then(|m| m.get("username"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match id {
            Some(id) => Identity::Accepted(Bot { id, name }),
            None => Identity::Unknown("the answer names no bot".into()),
        }
    }

    /// `new` as the replacement of `old`: well formed, accepted by the service, and the
    /// same bot as `old`'s. Nothing is changed anywhere.
    pub async fn check_new(&self, old: &Secret, new: &Secret) -> StepResult<Bot> {
        let service = self.channel().name();
        if new.fingerprint() == old.fingerprint() {
            return Err(StepError::Permanent(
                "this is the token already in use; make a new one first".into(),
            ));
        }
        if !self.well_formed(new) {
            return Err(StepError::Permanent(match self {
                BotApi::Telegram { .. } => "this doesn't look like a Telegram bot token (BotFather gives one like 123456789:AAE…); copy all of it".into(),
                BotApi::Discord { .. } => "this doesn't look like a Discord bot token; copy all of it from the Developer Portal".into(),
            }));
        }
        let bot = match self.identity(new).await {
            Identity::Accepted(bot) => bot,
            Identity::Refused => {
                return Err(StepError::Permanent(format!(
                    "{service} refused the new token; check that you copied all of it (the latest one: an earlier one no longer works)"
                )))
            }
            Identity::Unknown(e) => {
                return Err(StepError::Transient(format!("{service} didn't answer ({e})")))
            }
        };
        // The old token's bot: from the token itself, else (a token of another shape)
        // from the service while it still accepts it.
        let was = match self.bot_id_in(old) {
            Some(id) => Some(id),
            None => match self.identity(old).await {
                Identity::Accepted(b) => Some(b.id),
                _ => None,
            },
        };
        if let Some(was) = was {
            if was != bot.id {
                let name = if bot.name.is_empty() {
                    format!("id {}", bot.id)
                } else {
                    format!("@{}", bot.name)
                };
                return Err(StepError::Permanent(format!(
                    "this token is for another bot ({name}), not your assistant's (id {was}); make the new token for your assistant's bot"
                )));
            }
        } else {
            tracing::warn!(
                channel = service,
                "the old token's bot is unknown; the new one taken as it is"
            );
        }
        Ok(bot)
    }
}

/// The channel as the gateway reports it (`channels.status`, the default account).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelState {
    pub running: bool,
    /// Whether it is connected to the service (absent for channels that don't say).
    pub connected: Option<bool>,
    pub last_error: Option<String>,
    /// When it last started (ms since the epoch).
    pub last_start_ms: Option<i64>,
}

impl ChannelState {
    /// From a `channels.status` answer.
    pub fn from_status(status: &Value, channel: Channel) -> Option<ChannelState> {
        let accounts = status
            .get("channelAccounts")
            .and_then(|a| a.get(channel.id()))
            .and_then(Value::as_array)?;
        let account = accounts
            .iter()
            .find(|a| a.get("accountId").and_then(Value::as_str) == Some("default"))
            .or_else(|| accounts.first())?;
        Some(ChannelState {
            running: account.get("running") == Some(&Value::Bool(true)),
            connected: account.get("connected").and_then(Value::as_bool),
            last_error: account
                .get("lastError")
                .and_then(Value::as_str)
                .map(str::to_owned),
            last_start_ms: account.get("lastStartAt").and_then(Value::as_i64),
        })
    }

    /// Running and connected, without an error, started at `since_ms` or later.
    pub fn up_since(&self, since_ms: i64) -> bool {
        self.running
            && self.connected != Some(false)
            && self.last_error.is_none()
            && self.last_start_ms.is_some_and(|t| t >= since_ms)
    }
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A chat channel's bot token of the assistant on this computer.
pub struct LocalBotToken {
    pub channel: Channel,
    pub config: LocalConfig,
    pub api: BotApi,
    /// The assistant's gateway (`ws://…`) and its token's keychain entry (the channel's
    /// state is asked there).
    pub gateway_url: String,
    pub gateway_token: SecretRef,
    pub keys: std::sync::Arc<dyn Keys>,
    /// The bot token's keychain entry.
    pub entry: SecretRef,
    /// The token the person made (`None` when resuming).
    pub given: Option<Secret>,
}

impl LocalBotToken {
    fn service(&self) -> &'static str {
        self.channel.name()
    }

    /// What the gateway says of the channel now.
    pub async fn state(&self) -> Result<ChannelState, String> {
        let tokens = candidates(self.keys.as_ref(), &self.gateway_token)
            .await
            .map_err(|e| format!("the access token can't be read ({e})"))?;
        let mut last = String::from("no access token");
        for token in &tokens {
            let mut conn =
                match gateway::connect_once(&self.gateway_url, token, &ClientInfo::default()).await
                {
                    Ok(c) => c,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
            let status = conn
                .request("channels.status", json!({}), Duration::from_secs(20))
                .await;
            conn.close().await;
            return match status {
                Ok(v) => ChannelState::from_status(&v, self.channel).ok_or_else(|| {
                    format!("your assistant doesn't list a {} chat", self.service())
                }),
                Err(e) => Err(e.to_string()),
            };
        }
        Err(last)
    }

    /// Until the gateway says the channel runs (connected, no error) since `since_ms`; the
    /// config is written again once if it doesn't restart the channel.
    async fn wait_running(&self, since_ms: i64) -> StepResult {
        let started = Instant::now();
        let (running_within, kick_after) = self.channel.restart_waits();
        let mut kicked = false;
        let mut last = String::new();
        while started.elapsed() < running_within {
            match self.state().await {
                Ok(s) if s.up_since(since_ms) => return Ok(()),
                Ok(s) => {
                    last = match &s.last_error {
                        Some(e) => format!("it reports: {e}"),
                        None if !s.running => "it isn't running".into(),
                        None => "it hasn't connected yet".into(),
                    };
                    let restarted = s.last_start_ms.is_some_and(|t| t >= since_ms);
                    if !restarted && !kicked && started.elapsed() > kick_after {
                        self.config.kick()?;
                        kicked = true;
                    }
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StepError::Transient(format!(
            "your assistant's {} chat didn't start with the new token ({last})",
            self.service()
        )))
    }

    /// Make the config's token a SecretRef naming `name`, and wait until the gateway says
    /// it applied it. Returns when the write was (ms since the epoch), `None` if the config
    /// named it already.
    async fn name_and_wait(&self, name: &str) -> StepResult<Option<i64>> {
        let field = format!("{}/{}", self.channel.section(), self.channel.token_field());
        let named = self.config.named_at(&field);
        let beaten = self.channel.beats_token_field().iter().any(|f| {
            self.config
                .value_at(&format!("{}/{f}", self.channel.section()))
                .is_some()
        });
        if named.as_deref() == Some(name) && !beaten {
            return Ok(None);
        }
        let mark = self.config.log_mark();
        let at = now_ms();
        self.config
            .put_secret_ref(
                &self.channel.section(),
                self.channel.token_field(),
                name,
                self.channel.beats_token_field(),
                &format!("{} chat", self.service()),
            )
            .await?;
        self.config.wait_reloaded(mark, APPLY_WAIT).await;
        Ok(Some(at))
    }

    /// The service refuses `old` (the person cancelled it); else wait for them.
    async fn old_refused(&self, old: &Secret, still_works: String) -> StepResult {
        match self.api.identity(old).await {
            Identity::Refused => Ok(()),
            Identity::Accepted(_) => Err(StepError::NeedsYou(still_works)),
            Identity::Unknown(e) => Err(StepError::Transient(format!(
                "{} didn't answer ({e})",
                self.service()
            ))),
        }
    }
}

impl Rotator for LocalBotToken {
    fn key(&self) -> KeyId {
        self.channel.key()
    }

    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        Box::pin(async move {
            let Some(new) = &self.given else {
                return Err(StepError::Permanent(
                    "the new token is missing; paste it again".into(),
                ));
            };
            let bot = self.api.check_new(ctx.old, new).await?;
            ctx.detail["bot_id"] = json!(bot.id);
            Ok(new.clone())
        })
    }

    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // Tagged with the rotation (a name no earlier config had).
        let name = format!("{}#{}", super::staging(&self.entry), ctx.rotation_id);
        Box::pin(async move {
            if let Some(at) = self.name_and_wait(&name).await? {
                ctx.detail["installed_ms"] = json!(at);
            }
            Ok(())
        })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let new = ctx.new_secret()?;
            match self.api.identity(new).await {
                Identity::Accepted(_) => {}
                Identity::Refused => {
                    return Err(StepError::Permanent(format!(
                        "{} refused the new token",
                        self.service()
                    )))
                }
                Identity::Unknown(e) => {
                    return Err(StepError::Transient(format!(
                        "{} didn't answer ({e})",
                        self.service()
                    )))
                }
            }
            let since = ctx
                .detail
                .get("installed_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            self.wait_running(since).await
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(self.old_refused(
            ctx.old,
            format!(
                "The new token works and your assistant uses it. The old one still works: cancel it {}, then Clawkeeper checks that it no longer works and finishes.",
                self.channel.where_to_revoke()
            ),
        ))
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            self.old_refused(
                ctx.old,
                format!(
                    "The old token still works. Cancel it {}, then Clawkeeper finishes.",
                    self.channel.where_to_revoke()
                ),
            )
            .await?;
            // The old token is dead: the channel running now runs with the new one.
            let since = ctx
                .detail
                .get("installed_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            self.wait_running(since).await
        })
    }

    fn discard<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // Back to the keychain's entry: the old token (which the person has most likely
        // cancelled already — then the chat stays down until a new token is pasted).
        Box::pin(async move {
            self.name_and_wait(&self.entry.to_string()).await?;
            Ok(())
        })
    }

    fn settle<'a>(&'a self, _ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // The same token under the entry's name: the gateway restarts the channel once
        // more; this waits until it runs again.
        Box::pin(async move {
            if let Some(at) = self.name_and_wait(&self.entry.to_string()).await? {
                self.wait_running(at).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, LocalConfig) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LocalConfig {
            config_path: dir.path().join("openclaw.json"),
            log_file: dir.path().join("openclaw.log"),
        };
        std::fs::write(&cfg.config_path, text).unwrap();
        (dir, cfg)
    }

    #[test]
    fn finds_where_a_channel_keeps_its_token() {
        let (_d, cfg) = config(
            r#"{"channels":{"telegram":{"botToken":"123:abc","apiRoot":"http://127.0.0.1:9/"},
                "discord":{"token":{"source":"exec","provider":"clawkeeper","id":"discord-bot-token/local"}}}}"#,
        );
        let tg = detect(&cfg, Channel::Telegram).unwrap();
        assert_eq!(tg.at, TokenAt::Plain);
        assert_eq!(tg.api_root.as_deref(), Some("http://127.0.0.1:9/"));
        assert_eq!(
            token_outside_keychain(&cfg, Channel::Telegram, &tg.at)
                .unwrap()
                .expose(),
            "123:abc"
        );
        assert_eq!(
            detect(&cfg, Channel::Discord).unwrap().at,
            TokenAt::Keychain("discord-bot-token/local".into())
        );

        let (_d, cfg) = config(
            r#"{"channels":{"telegram":{"tokenFile":"/nope","botToken":"1:x"},"discord":{"enabled":false,"token":"x"}}}"#,
        );
        assert_eq!(
            detect(&cfg, Channel::Telegram).unwrap().at,
            TokenAt::File("/nope".into())
        );
        assert_eq!(detect(&cfg, Channel::Discord), None, "switched off");

        let (_d, cfg) = config(
            r#"{"channels":{"telegram":{"dmPolicy":"pairing"},"discord":{"token":{"source":"env","provider":"default","id":"X"}}}}"#,
        );
        assert!(matches!(
            detect(&cfg, Channel::Telegram).unwrap().at,
            TokenAt::Elsewhere(_)
        ));
        assert!(matches!(
            detect(&cfg, Channel::Discord).unwrap().at,
            TokenAt::Elsewhere(_)
        ));
        let (_d, cfg) = config(r#"{"gateway":{}}"#);
        assert_eq!(detect(&cfg, Channel::Telegram), None);
    }

    #[test]
    fn a_token_tells_its_bot() {
        let tg = BotApi::Telegram { root: "x".into() };
        assert_eq!(
            tg.bot_id_in(&Secret::new("123456:AAE-x_y")).as_deref(),
            Some("123456")
        );
        assert!(tg.well_formed(&Secret::new("123456:AAE-x_y")));
        for bad in [
            "123456",
            ":abc",
            "12a:abc",
            "123:ab/../c",
            "123:ab?c",
            "123:",
        ] {
            assert!(!tg.well_formed(&Secret::new(bad)), "{bad}");
        }
        let dc = BotApi::Discord { base: "x".into() };
        // base64("1234567890123456789") without padding, then two more parts.
        let token = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB";
        assert_eq!(
            dc.bot_id_in(&Secret::new(token)).as_deref(),
            Some("1234567890123456789")
        );
        assert!(dc.well_formed(&Secret::new(token)));
        assert!(!dc.well_formed(&Secret::new("a b")));
        assert_eq!(dc.bot_id_in(&Secret::new("not-base64!.x.y")), None);
    }

    #[test]
    fn reads_the_channel_state_from_the_gateway_status() {
        let status = json!({"channelAccounts": {"telegram": [{
            "accountId": "default", "running": true, "connected": true,
            "lastError": null, "lastStartAt": 2000
        }]}});
        let s = ChannelState::from_status(&status, Channel::Telegram).unwrap();
        assert!(s.up_since(1500));
        assert!(!s.up_since(2500), "started before the install");
        assert_eq!(ChannelState::from_status(&status, Channel::Discord), None);
        let failed = json!({"channelAccounts": {"telegram": [{
            "accountId": "default", "running": false, "lastError": "Unauthorized", "lastStartAt": 3000
        }]}});
        let s = ChannelState::from_status(&failed, Channel::Telegram).unwrap();
        assert!(!s.up_since(0));
        assert_eq!(s.last_error.as_deref(), Some("Unauthorized"));
    }
}
