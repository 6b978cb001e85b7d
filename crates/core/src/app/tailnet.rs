//! The person's tailnet, as the windows and the tray see it: the Tailscale API key (kept in
//! the keychain; the webview only ever sees "saved ✓"), the policy check for
//! `tag:clawkeeper`, the server's device, and which way chat goes (tailnet or SSH).
//!
//! The way onto the tailnet from this computer is an `Option<Arc<dyn Tailnet>>`: the
//! system's Tailscale when its LocalAPI socket is there (see [`system_tailnet`]), or
//! whatever [`Clawkeeper::set_tailnet`] was given (a test double in tests).

use super::{problem, AssistantView, Clawkeeper, Event};
use crate::audit;
use crate::problem::Problem;
use crate::secret::Secret;
use crate::tailnet::api::{RetryPolicy, TAG_OWNERS_EXPLANATION, TAG_OWNERS_SNIPPET};
use crate::tailnet::path::{self as tpath, Path, SshBecause, TAILNET_GATEWAY_PORT};
use crate::tailnet::server::{self as tserver, ServerNode};
use crate::tailnet::watch::{self, TrayTailnet};
use crate::tailnet::{
    credentials_ref, local_api, Credentials, SystemTailscale, Tailnet, TailnetProxy, TailnetState,
    TailscaleClient,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How long the first dial over the tailnet may take before chat uses SSH instead.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable that points the app at another Tailscale API (the contract
/// fake in tests).
pub const API_ENV: &str = "CLAWKEEPER_TAILSCALE_API";
/// The environment variable naming tailscaled's LocalAPI socket (default
/// [`local_api::DEFAULT_SOCKET`]).
pub const SOCKET_ENV: &str = "CLAWKEEPER_TAILSCALE_SOCKET";

/// Where the system's Tailscale has its LocalAPI socket.
fn system_socket() -> String {
    std::env::var(SOCKET_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| local_api::DEFAULT_SOCKET.to_owned())
}

/// The system's Tailscale, when its LocalAPI socket is present.
pub fn system_tailnet() -> Option<Arc<dyn Tailnet>> {
    let socket = system_socket();
    let path = std::path::Path::new(&socket);
    path.exists()
        .then(|| Arc::new(SystemTailscale::new(local_api::LocalApi::new(path))) as Arc<dyn Tailnet>)
}

/// The server's device on the tailnet, as the status window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub name: String,
    pub hostname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// RFC 3339
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// RFC 3339; absent: never expires (or unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_expiry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Whether Tailscale lists the device at all (at the last check).
    pub found: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
}

impl From<&ServerNode> for DeviceView {
    fn from(n: &ServerNode) -> Self {
        let fmt = |t: Option<time::OffsetDateTime>| {
            t.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
        };
        Self {
            name: n.display_name().to_owned(),
            hostname: n.hostname.clone(),
            address: n.address.map(|a| a.to_string()),
            dns_name: n.dns_name.clone(),
            last_seen: fmt(n.last_seen),
            key_expiry: fmt(n.key_expiry),
            online: n.online,
            found: n.found,
            checked_at: n.refreshed_at.clone(),
        }
    }
}

/// The "Private network (Tailscale)" section of a server.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailnetView {
    /// A Tailscale API key is saved in the keychain.
    pub key_saved: bool,
    /// `api_token` | `oauth_client`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Whether the tailnet's policy lets servers carry `tag:clawkeeper` (`None`: not
    /// checked, e.g. no key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_owners_ok: Option<bool>,
    /// What to paste into the policy when the check fails, and why.
    pub snippet: &'static str,
    pub explanation: &'static str,
    /// Why the check could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// This computer on the tailnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub this_computer: Option<TailnetState>,
    /// The server's device, once it has joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceView>,
}

fn key_missing() -> Problem {
    Problem::new(
        "tailscale_key_missing",
        "No Tailscale API key saved yet.",
        Some("Create an API access token at https://login.tailscale.com/admin/settings/keys (or an OAuth client) and paste it here."),
    )
}

impl Clawkeeper {
    /// The way onto the tailnet from this computer, if any.
    pub fn tailnet(&self) -> Option<Arc<dyn Tailnet>> {
        self.inner.tailnet.lock().ok().and_then(|t| t.clone())
    }

    /// Use `tailnet` as the way onto the tailnet (`None`: no tailnet on this computer).
    pub fn set_tailnet(&self, tailnet: Option<Arc<dyn Tailnet>>) {
        if let Ok(mut t) = self.inner.tailnet.lock() {
            *t = tailnet;
        }
    }

    /// Where this computer stands on the tailnet (`None`: no tailnet here at all).
    pub async fn tailnet_state(&self) -> Option<TailnetState> {
        let t = self.tailnet()?;
        Some(t.state().await)
    }

    /// A client of the Tailscale API with the key from the keychain.
    pub async fn tailscale_client(&self) -> Result<TailscaleClient, Problem> {
        let secret = self
            .inner
            .vault
            .read(&credentials_ref())
            .await
            .map_err(|e| match e {
                crate::vault::Error::NotFound(_) => key_missing(),
                e => problem(&e),
            })?;
        let creds = Credentials::from_pasted(secret).map_err(|e| problem(&e))?;
        client_for(creds)
    }

    /// Check and save the person's Tailscale API access token or OAuth client (`client_id`,
    /// when given, must be the one the secret names). The key is tried first (the policy
    /// check), and saved in the keychain only if Tailscale accepts it.
    pub async fn tailnet_key_save(
        &self,
        secret: Secret,
        client_id: Option<String>,
        server: Option<&str>,
    ) -> Result<TailnetView, Problem> {
        let creds = Credentials::from_pasted(secret).map_err(|e| problem(&e))?;
        if let (Some(want), Credentials::OAuthClient { client_id: got, .. }) = (
            client_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty()),
            &creds,
        ) {
            if want != got {
                return Err(Problem::new(
                    "tailscale_client_mismatch",
                    "The client ID and the client secret are from different OAuth clients.",
                    Some("Copy both from the same OAuth client on the Tailscale admin console's OAuth clients page."),
                ));
            }
        }
        let client = client_for(creds.clone())?;
        let ok = client.tag_owners_ok().await.map_err(|e| problem(&e))?;
        self.inner
            .vault
            .store(&credentials_ref(), creds.secret())
            .await
            .map_err(|e| problem(&e))?;
        let kind = if creds.is_oauth() {
            "OAuth client"
        } else {
            "API access token"
        };
        let _ = audit::append(
            &self.inner.store,
            None,
            "tailnet.key_saved",
            &format!("Tailscale {kind} {}", creds.secret().fingerprint()),
        )
        .await;
        // Its age, for the keys list (set now: a key saved again is a new one).
        let _ = crate::rotation::journal::note_set(
            &self.inner.store,
            crate::tailnet::VAULT_ACCOUNT,
            crate::rotation::KeyId::TailscaleApi,
            Some(&creds.secret().fingerprint()),
            false,
        )
        .await;
        let mut view = self.tailnet_view_local(server).await;
        view.tag_owners_ok = Some(ok);
        if let Some(id) = server {
            self.refresh_node(&client, id, &mut view).await;
        }
        Ok(view)
    }

    /// Forget the Tailscale API key (the tailnet itself is left alone).
    pub async fn tailnet_key_forget(&self) -> Result<(), Problem> {
        match self.inner.vault.delete(&credentials_ref()).await {
            Ok(()) | Err(crate::vault::Error::NotFound(_)) => {}
            Err(e) => return Err(problem(&e)),
        }
        let _ = audit::append(
            &self.inner.store,
            None,
            "tailnet.key_forgotten",
            "Tailscale API key removed from the keychain",
        )
        .await;
        Ok(())
    }

    /// What is known without asking Tailscale: the key (saved or not), this computer's
    /// state, and the server's device as last seen.
    async fn tailnet_view_local(&self, server: Option<&str>) -> TailnetView {
        let saved = self.inner.vault.read(&credentials_ref()).await.ok();
        let kind = saved
            .as_ref()
            .and_then(|s| Credentials::from_pasted(s.clone()).ok())
            .map(|c| {
                if c.is_oauth() {
                    "oauth_client"
                } else {
                    "api_token"
                }
            });
        let device = match server {
            Some(id) => tserver::get(&self.inner.store, id)
                .await
                .ok()
                .flatten()
                .map(|n| DeviceView::from(&n)),
            None => None,
        };
        TailnetView {
            key_saved: saved.is_some(),
            key_kind: kind,
            key_fingerprint: saved.as_ref().map(Secret::fingerprint),
            tag_owners_ok: None,
            snippet: TAG_OWNERS_SNIPPET,
            explanation: TAG_OWNERS_EXPLANATION,
            error: None,
            this_computer: self.tailnet_state().await,
            device,
        }
    }

    async fn refresh_node(&self, client: &TailscaleClient, id: &str, view: &mut TailnetView) {
        match tserver::refresh(&self.inner.store, client, id).await {
            Ok(node) => view.device = node.as_ref().map(DeviceView::from),
            Err(e) => view.error = view.error.take().or(Some(problem(&e))),
        }
    }

    /// The section as it stands, without asking Tailscale (opening the window).
    pub async fn tailnet_view(&self, server: Option<&str>) -> TailnetView {
        self.tailnet_view_local(server).await
    }

    /// Ask Tailscale now: the policy check, and the server's device ("Check again").
    pub async fn tailnet_check(&self, server: Option<&str>) -> TailnetView {
        let mut view = self.tailnet_view_local(server).await;
        if !view.key_saved {
            return view;
        }
        let client = match self.tailscale_client().await {
            Ok(c) => c,
            Err(p) => {
                view.error = Some(p);
                return view;
            }
        };
        match client.tag_owners_ok().await {
            Ok(ok) => view.tag_owners_ok = Some(ok),
            Err(e) => view.error = Some(problem(&e)),
        }
        if let Some(id) = server {
            self.refresh_node(&client, id, &mut view).await;
            // What was learnt may change the way chat goes.
            self.note_path(self.assistant().await);
        }
        view
    }

    /// The tray's tailnet lines for the server chat goes to (`None`: nothing to show).
    pub async fn tailnet_tray(&self) -> Option<TrayTailnet> {
        let state = self.tailnet_state().await;
        let node = self.assistant_node().await;
        watch::tray(
            state.as_ref(),
            node.as_ref(),
            time::OffsetDateTime::now_utc(),
        )
    }

    /// The node record of the server chat goes to, if any.
    pub async fn assistant_node(&self) -> Option<ServerNode> {
        let id = self.assistant_server().await?;
        tserver::get(&self.inner.store, &id).await.ok().flatten()
    }

    /// Ask Tailscale about the server chat goes to (when a key is saved): its device's
    /// last seen, online state and key expiry. For the tray's periodic look.
    pub async fn tailnet_refresh_assistant(&self) -> Option<ServerNode> {
        let id = self.assistant_server().await?;
        tserver::get(&self.inner.store, &id).await.ok().flatten()?;
        let client = self.tailscale_client().await.ok()?;
        match tserver::refresh(&self.inner.store, &client, &id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "tailnet device not refreshed");
                tserver::get(&self.inner.store, &id).await.ok().flatten()
            }
        }
    }

    /// Server `id` is being deleted: remove its device from the tailnet (when a Tailscale
    /// key is saved) and forget its node. The lines for the "what was removed" list; a
    /// failure is one of them and never stops the delete.
    pub async fn tailnet_remove_server(&self, id: &str) -> Vec<String> {
        let store = &self.inner.store;
        // Nothing recorded: nothing to say (an unreadable record: remove_device says so).
        if matches!(tserver::get(store, id).await, Ok(None)) {
            return Vec::new();
        }
        let client = self.tailscale_client().await.ok();
        tserver::remove_device(store, client.as_ref(), id).await
    }

    /// The way chat would take to server `id` now, before any dial.
    pub(super) async fn planned_path(&self, id: &str) -> (Path, Option<String>) {
        let node = tserver::get(&self.inner.store, id).await.ok().flatten();
        if node.as_ref().and_then(|n| n.address).is_none() {
            return (Path::Ssh(SshBecause::NoTailnet), None);
        }
        let state = self.tailnet_state().await;
        tpath::choose(state.as_ref(), node.as_ref())
    }

    /// A gateway client for server `id` over the tailnet, through a loopback proxy. The
    /// first dial is tried before anything else, so a tailnet that can't reach the server
    /// falls back to SSH at once.
    pub(super) async fn tailnet_gateway(
        &self,
        id: &str,
        address: &str,
    ) -> Result<(crate::gateway::Gateway, TailnetProxy), String> {
        let tailnet = self
            .tailnet()
            .ok_or_else(|| "no tailnet on this computer".to_owned())?;
        match tokio::time::timeout(PROBE_TIMEOUT, tailnet.dial(address, TAILNET_GATEWAY_PORT)).await
        {
            Ok(Ok(stream)) => drop(stream),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the dial over the tailnet timed out".into()),
        }
        let proxy = TailnetProxy::start(tailnet, address, TAILNET_GATEWAY_PORT)
            .await
            .map_err(|e| e.to_string())?;
        let link =
            crate::server::ServerLink::new(self.inner.store.clone(), self.inner.vault.clone(), id);
        let token = link.token_source();
        let gw = crate::gateway::Gateway::spawn(
            format!("ws://{}", proxy.local_addr()),
            token,
            crate::gateway::ClientInfo::default(),
        );
        Ok((gw, proxy))
    }

    /// Tell the UI when the way chat goes changed (or the assistant did).
    pub(super) fn note_path(&self, view: AssistantView) {
        let changed = match self.inner.last_view.lock() {
            Ok(mut last) => {
                let changed = last.as_ref() != Some(&view);
                *last = Some(view.clone());
                changed
            }
            Err(_) => false,
        };
        if changed {
            self.emit(Event::Assistant(view));
        }
    }

    /// Look at the tailnet every `every` and tell the UI when the way chat goes changes
    /// (the tailnet went down or came back). Ends with the app.
    pub(super) fn watch_path(&self, every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                let app = Clawkeeper { inner };
                if app.tailnet().is_some() {
                    let view = app.assistant().await;
                    app.note_path(view);
                }
            }
        });
    }

    /// Follow the system Tailscale's IPN bus (when it runs here): a change of its state
    /// (logged in or out, switched on or off) is passed on at once, instead of at the next
    /// look of [`Self::watch_path`]. Reconnects when tailscaled restarts; ends with the app.
    pub(super) fn watch_system_tailnet(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let socket = system_socket();
                if std::path::Path::new(&socket).exists() {
                    match local_api::LocalApi::new(&socket).watch().await {
                        Ok(mut bus) => loop {
                            match bus.next().await {
                                Ok(Some(n)) if n.state.is_some() || n.prefs_changed => {
                                    let Some(inner) = weak.upgrade() else { return };
                                    let app = Clawkeeper { inner };
                                    if app.tailnet().is_none() {
                                        app.set_tailnet(system_tailnet());
                                    }
                                    let view = app.assistant().await;
                                    app.note_path(view);
                                }
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::debug!(error = %e, "Tailscale's bus ended");
                                    break;
                                }
                            }
                        },
                        Err(e) => tracing::debug!(error = %e, "Tailscale's bus is not there"),
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
}

pub(super) fn client_for(creds: Credentials) -> Result<TailscaleClient, Problem> {
    let client = match std::env::var(API_ENV) {
        Ok(base) if !base.trim().is_empty() => {
            TailscaleClient::with_base_url(base.trim(), creds, RetryPolicy::default())
        }
        _ => TailscaleClient::new(creds),
    };
    client.map_err(|e| problem(&e))
}

impl Clawkeeper {
    /// Put server `id` on the person's tailnet, in the background: Tailscale installed from
    /// its signed repository, the server logged in with a single-use key minted with the
    /// saved Tailscale API key, the assistant offered on the tailnet only, Tailscale's port
    /// in the firewall (see [`crate::provision::tailnet`]). Progress arrives as
    /// [`Event::Server`] (kind `tailnet`), the fresh checklist as [`Event::ServerChecks`].
    pub async fn server_tailnet_join(&self, id: &str) -> Result<(), Problem> {
        self.require_server(id).await?;
        let client = self.tailscale_client().await?;
        let total = crate::provision::tailnet::STEPS.len();
        let cancel = self.claim_job(id, "tailnet", total)?;
        let app = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            app.run_tailnet_join(&id, &client, cancel).await;
            app.release_job();
        });
        Ok(())
    }

    async fn run_tailnet_join(
        &self,
        id: &str,
        client: &TailscaleClient,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        use super::server::step_job;
        use crate::provision::tailnet::STEPS;
        let (app, job_id) = (self.clone(), id.to_owned());
        let on_progress = move |p: crate::provision::Progress| {
            app.set_job(&job_id, step_job("tailnet", STEPS, &p));
        };
        let result = crate::server::ops::join_tailnet(
            &self.inner.store,
            &self.inner.vault,
            id,
            client,
            cancel,
            on_progress,
        )
        .await;
        let last = self.job_now(id, "tailnet", STEPS.len());
        match result {
            Ok(_) => {
                // The whole checklist again, now with the tailnet lines.
                if let Err(p) = self.server_posture(id, false).await {
                    tracing::warn!(code = %p.code, "couldn't read the checklist after joining");
                }
                let view = self.assistant().await;
                self.note_path(view);
                self.end_job(id, last, Ok(()));
            }
            Err(e) => self.end_job(id, last, Err(problem(&e))),
        }
    }
}

/// The setting that says the person chose Clawkeeper's own Tailscale node on this computer.
pub const EMBEDDED_SETTING: &str = "tailnet.embedded";
/// Another control server for the embedded node (tests: a loopback stand-in).
#[cfg(all(feature = "embedded-node", unix))]
pub const CONTROL_ENV: &str = "CLAWKEEPER_TAILSCALE_CONTROL";
/// How long the embedded node may take to reach control, in seconds (default 30).
#[cfg(all(feature = "embedded-node", unix))]
pub const START_TIMEOUT_ENV: &str = "CLAWKEEPER_TAILSCALE_START_TIMEOUT";
/// The embedded node's name on the tailnet.
#[cfg(all(feature = "embedded-node", unix))]
pub const EMBEDDED_HOSTNAME: &str = "clawkeeper-desktop";

#[cfg(all(feature = "embedded-node", unix))]
impl Clawkeeper {
    fn embedded_options(&self) -> crate::tailnet::EmbeddedOptions {
        let mut opts = crate::tailnet::EmbeddedOptions::new(
            self.inner.paths.tailnet_node_dir(),
            EMBEDDED_HOSTNAME,
        );
        if let Ok(url) = std::env::var(CONTROL_ENV) {
            if !url.trim().is_empty() {
                opts = opts.with_control_url(url.trim());
            }
        }
        if let Some(secs) = std::env::var(START_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| (1..=600).contains(s))
        {
            opts = opts.with_start_timeout(Duration::from_secs(secs));
        }
        opts
    }

    /// For a computer without Tailscale: start Clawkeeper's own node (experimental) and use
    /// it for chat to the server. The first time, it joins with a single-use key minted with
    /// the saved Tailscale API key (tagged like the server, so the tailnet's policy treats
    /// them alike); afterwards its identity file (0600) is enough. Remembered: the app
    /// starts it again when it starts ([`Self::start_embedded_if_chosen`]).
    pub async fn tailnet_use_embedded(&self) -> Result<TailnetView, Problem> {
        if system_tailnet().is_some() {
            return Err(Problem::new(
                "tailscale_on_this_computer",
                "Tailscale is already running on this computer, so Clawkeeper uses it.",
                None,
            ));
        }
        let mut opts = self.embedded_options();
        let has_identity = std::fs::metadata(opts.state_file()).is_ok_and(|m| m.len() > 0);
        let mut minted = None;
        if !has_identity {
            let client = self.tailscale_client().await?;
            let mut request = crate::tailnet::KeyRequest::for_instance(EMBEDDED_HOSTNAME);
            request.description = "clawkeeper this computer".into();
            let key = client
                .mint_auth_key(&request)
                .await
                .map_err(|e| problem(&e))?;
            opts = opts.with_auth_key(secrecy::SecretString::from(key.key.expose().to_owned()));
            minted = Some((client, key.info.id));
        }
        let node = match crate::tailnet::EmbeddedNode::start(opts).await {
            Ok(node) => node,
            Err(e) => {
                // The key was not used: revoke it rather than leave it valid for minutes.
                if let Some((client, id)) = minted {
                    if let Err(re) = client.revoke_key(&id).await {
                        tracing::warn!(error = %re, "could not revoke the unused auth key");
                    }
                }
                return Err(problem(&e));
            }
        };
        self.set_tailnet(Some(Arc::new(node)));
        self.inner
            .store
            .set_setting(EMBEDDED_SETTING, "on")
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(
            &self.inner.store,
            None,
            "tailnet.embedded_on",
            "Clawkeeper's own Tailscale node joined your tailnet",
        )
        .await;
        let view = self.assistant().await;
        self.note_path(view);
        Ok(self.tailnet_view(None).await)
    }

    /// At start-up: when the person chose the embedded node and this computer still has no
    /// Tailscale of its own, start it again from its identity file (no key needed). A
    /// failure is logged and leaves chat on SSH; it never stops the app.
    pub async fn start_embedded_if_chosen(&self) {
        let chosen = matches!(
            self.inner.store.setting(EMBEDDED_SETTING).await,
            Ok(Some(v)) if v == "on"
        );
        if !chosen || self.tailnet().is_some() {
            return;
        }
        match crate::tailnet::EmbeddedNode::start(self.embedded_options()).await {
            Ok(node) => self.set_tailnet(Some(Arc::new(node))),
            Err(e) => {
                tracing::warn!(error = %e, "Clawkeeper's own Tailscale node did not start");
            }
        }
    }
}
