//! The server's node on the person's tailnet: logged in again with a fresh single-use auth
//! key, which makes it register a new node key in place of the old one (same device, same
//! addresses, same tag).
//!
//! What is secret here is the node's private key, which never leaves the server; what the
//! app mints is the auth key that lets the node register a new one. So the rotation keeps
//! nothing in the keychain (the driver's staging entry is for secrets the app holds): the
//! auth key's only resting place is a root-only 0600 file in `/run` on the server, from the
//! mint until `tailscale up` reads and deletes it. The "old credential" is the node's
//! previous node key, which Tailscale drops when the new one registers.
//!
//! - **mint**: the server's Tailscale must be logged in (it has a node key; not "needs
//!   login", not switched off) and the API must list its device, whose current node key is
//!   noted; then a single-use, pre-authorized auth key tagged `tag:clawkeeper` is minted
//!   (expiring in minutes) and written over SSH stdin to [`KEY_FILE`];
//! - **install**: `tailscale up --force-reauth --auth-key=file:…` with the join's flags
//!   (see `provision/scripts/tailscale_reauth.sh`); the file is deleted whatever happens;
//! - **verify new**: Tailscale on the server says Running, and the API lists the same device
//!   with a *new* node key, connected;
//! - **revoke old**: the auth key is revoked in the API (used or not); the old node key was
//!   dropped by Tailscale when the new one registered;
//! - **verify old**: no device of the tailnet lists the old node key any more.
//! - **discard** (undo, before the revoke): the auth key revoked in the API (also one an
//!   attempt cut off before the journal noted it left in the file: a key carries its id) and
//!   its file removed; if the re-auth ran and did not go through, tailscaled is restarted, which
//!   drops the login attempt it may still be making in the background and comes back with
//!   its old node key (tailscaled writes the new key to its state only once Tailscale
//!   accepted it), and the server is checked to still hold a node key.
//!
//! Never a lock-out: the app manages the server over SSH (its public address), not over the
//! tailnet, so a re-auth that fails leaves the app's way in untouched; and the node's old
//! key stays registered until the new one is. A failure ends with the error said in words
//! (Tailscale unreachable, key refused, settings changed by hand) and "rotate again".

use super::{Ctx, KeyId, Rotator, StepError, StepFuture, StepResult};
use crate::provision::steps::HostFacts;
use crate::provision::tailnet::{self as ptailnet, TailnetSpec, EXIT_SETTINGS_CHANGED, KEY_FILE};
use crate::remote::Remote;
use crate::secret::Secret;
use crate::ssh::Session;
use crate::store::Store;
use crate::tailnet::api::{self, Device, KeyRequest, TailscaleClient};
use crate::vault::Vault;
use serde_json::{json, Value};
use std::time::Duration;

/// A server's node on the tailnet (`instance`), re-authenticated through `api`.
pub struct TailnetNode {
    pub store: Store,
    pub vault: Vault,
    pub instance: String,
    pub api: TailscaleClient,
    /// The hostname the node joined with, and how long `tailscale up` may take.
    pub spec: TailnetSpec,
    /// How long tailscaled may take to come back after a restart (undo).
    pub restart_wait: Duration,
}

/// tailscaled's state on the server, from `tailscale status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeState {
    pub backend: String,
    /// The node has a node key (it logged in once and didn't log out).
    pub have_node_key: bool,
    /// Its current node key, when tailscaled knows it from Tailscale (`Self.PublicKey`;
    /// all zeros before it reached Tailscale is `None`).
    pub node_key: Option<String>,
}

impl NodeState {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("Tailscale's status on the server is not JSON ({e})"))?;
        let backend = v
            .get("BackendState")
            .and_then(Value::as_str)
            .ok_or("Tailscale's status on the server has no state")?
            .to_owned();
        let node_key = v
            .pointer("/Self/PublicKey")
            .and_then(Value::as_str)
            .filter(|k| k.starts_with("nodekey:") && k.bytes().skip(8).any(|b| b != b'0'))
            .map(str::to_owned);
        Ok(Self {
            backend,
            have_node_key: v.get("HaveNodeKey").and_then(Value::as_bool) == Some(true),
            node_key,
        })
    }

    /// Why this node can't be re-authenticated (None: it can: it is logged in).
    pub fn not_renewable(&self) -> Option<String> {
        match self.backend.as_str() {
            "NeedsLogin" | "NeedsMachineAuth" => Some(
                "the server isn't logged in to your tailnet, so there is no login to renew. Put it on your tailnet again (Private network)".into(),
            ),
            "Stopped" => Some(
                "Tailscale is switched off on the server (tailscale down). Switch it on with tailscale up, then rotate again".into(),
            ),
            _ if !self.have_node_key => Some(
                "the server's Tailscale has no login to renew. Put it on your tailnet again (Private network)".into(),
            ),
            _ => None,
        }
    }
}

fn transient_api(e: api::Error) -> StepError {
    StepError::Transient(format!("{e}"))
}

/// An API error: worth retrying (no answer, 5xx, rate limit) or not (refused).
fn api_error(e: api::Error) -> StepError {
    use crate::problem::UserFacing;
    let retry = e.may_have_applied()
        || matches!(
            e,
            api::Error::RateLimited { .. }
                | api::Error::Network { .. }
                | api::Error::Unavailable { .. }
        );
    if retry {
        return transient_api(e);
    }
    match e.hint() {
        Some(h) => StepError::Permanent(format!("{e} {h}")),
        None => StepError::Permanent(e.to_string()),
    }
}

fn detail_str(d: &Value, k: &str) -> Option<String> {
    d.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl TailnetNode {
    async fn session(&self) -> StepResult<(Session, HostFacts)> {
        let s = crate::server::open_session(&self.store, &self.vault, &self.instance)
            .await
            .map_err(|e| StepError::Transient(format!("the server doesn't answer ({e})")))?;
        let id = s
            .run("id -un && id -u", None)
            .await
            .map_err(|e| StepError::Transient(format!("the server stopped answering ({e})")))?;
        let text = id.stdout_lossy();
        let mut lines = text.lines();
        let user = lines.next().unwrap_or("").trim().to_owned();
        let uid = lines.next().unwrap_or("").trim().to_owned();
        let host = HostFacts {
            login_user: user,
            sudo: uid != "0",
            arch: crate::provision::sources::Arch::X64,
            os: String::new(),
            virt: String::new(),
        };
        Ok((s, host))
    }

    async fn state(&self, s: &Session, host: &HostFacts) -> StepResult<NodeState> {
        let out = s
            .run(&host.as_root("tailscale status --json"), None)
            .await
            .map_err(|e| StepError::Transient(format!("the server stopped answering ({e})")))?;
        // `tailscale status` exits 1 when not running but still prints the JSON.
        NodeState::parse(&out.stdout).map_err(|e| {
            if out.stdout.is_empty() {
                StepError::Transient(format!(
                    "Tailscale on the server didn't answer: {}",
                    out.tail(2)
                ))
            } else {
                StepError::Transient(e)
            }
        })
    }

    /// The server's device in the API: by the id noted at the mint, else by hostname.
    async fn device(&self, detail: &Value) -> StepResult<Option<Device>> {
        let devices = self.api.devices().await.map_err(api_error)?;
        Ok(match detail_str(detail, "device") {
            Some(id) => devices.into_iter().find(|d| d.api_id() == id || d.id == id),
            None => api::pick_device(devices, &self.spec.hostname),
        })
    }

    /// The device's node key differs from the one noted at the mint (the re-auth went
    /// through, now or in an earlier run).
    async fn renewed(&self, detail: &Value) -> StepResult<Option<Device>> {
        let old = detail_str(detail, "old_node_key").unwrap_or_default();
        Ok(self
            .device(detail)
            .await?
            .filter(|d| !d.node_key.is_empty() && d.node_key != old))
    }

    /// The id of an auth key an earlier attempt left in [`KEY_FILE`] (a run cut off after
    /// writing it and before the journal noted its id): a Tailscale key carries its id
    /// (`tskey-auth-<id>-<secret>`), so it can be revoked.
    async fn leftover(&self, s: &Session, host: &HostFacts) -> StepResult<Option<String>> {
        let out = s
            .run(
                &host.as_root(&format!("cat {KEY_FILE} 2>/dev/null || true")),
                None,
            )
            .await
            .map_err(|e| StepError::Transient(format!("the server stopped answering ({e})")))?;
        let mut text = out.stdout;
        let key = Secret::new(String::from_utf8_lossy(&text).trim());
        zeroize::Zeroize::zeroize(&mut text);
        Ok(api::key_id_of(key.expose(), "tskey-auth-").map(str::to_owned))
    }

    async fn revoke_leftover(&self, s: &Session, host: &HostFacts) -> StepResult {
        if let Some(id) = self.leftover(s, host).await? {
            tracing::info!(key_id = %id, "revoking the auth key an earlier attempt left");
            self.api.revoke_key(&id).await.map_err(api_error)?;
        }
        Ok(())
    }

    async fn revoke_auth_key(&self, detail: &Value) -> StepResult {
        if let Some(id) = detail_str(detail, "auth_key") {
            self.api.revoke_key(&id).await.map_err(api_error)?;
        }
        Ok(())
    }

    async fn run_reauth(&self, s: &Session, host: &HostFacts) -> StepResult<Option<(u32, String)>> {
        let script = ptailnet::reauth_script(&self.spec);
        let out = s
            .run(host.shell(), Some(script.as_bytes()))
            .await
            .map_err(|e| StepError::Transient(format!("the server stopped answering ({e})")))?;
        if out.success() {
            return Ok(None);
        }
        let said = out
            .stderr_lossy()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("clawkeeper: "))
            .map(str::to_owned)
            .unwrap_or_else(|| out.tail(3));
        Ok(Some((out.code.unwrap_or(1), said)))
    }
}

impl Rotator for TailnetNode {
    fn key(&self) -> KeyId {
        KeyId::TailscaleNode
    }

    fn mint<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a, Secret> {
        Box::pin(async move {
            let (s, host) = self.session().await?;
            let result = async {
                let state = self.state(&s, &host).await?;
                if let Some(why) = state.not_renewable() {
                    return Err(StepError::Permanent(why));
                }
                let device = self.device(ctx.detail).await?.ok_or_else(|| {
                    StepError::Permanent(format!(
                        "your tailnet doesn't list the server's device ({}); put the server on your tailnet again (Private network)",
                        self.spec.hostname
                    ))
                })?;
                if device.node_key.is_empty() {
                    return Err(StepError::Permanent(
                        "Tailscale's API didn't say the device's node key, so its change couldn't be checked".into(),
                    ));
                }
                ctx.detail["device"] = json!(device.api_id());
                ctx.detail["old_node_key"] = json!(device.node_key);
                self.revoke_leftover(&s, &host).await?;
                let key = self
                    .api
                    .mint_auth_key(&KeyRequest::for_instance(&self.instance))
                    .await
                    .map_err(api_error)?;
                ctx.detail["auth_key"] = json!(key.info.id);
                if let Err(e) = ptailnet::send_key(&s, &host, &ptailnet::STEPS[1], &key.key).await {
                    // Not on the server: nobody can use it; revoke it now.
                    let _ = self.api.revoke_key(&key.info.id).await;
                    return Err(StepError::Transient(format!(
                        "the new key couldn't be put on the server ({e})"
                    )));
                }
                Ok(key.key)
            }
            .await;
            s.close().await;
            result
        })
    }

    fn install<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let (s, host) = self.session().await?;
            ctx.detail["reauth_ran"] = json!(true);
            let ran = self.run_reauth(&s, &host).await;
            s.close().await;
            let Some((code, said)) = ran? else {
                return Ok(());
            };
            // It may have gone through after all (late, or in a run cut off before the
            // journal noted it).
            if self.renewed(ctx.detail).await?.is_some() {
                return Ok(());
            }
            Err(StepError::Permanent(match code {
                14 => "the key for the server was lost before it was used".to_owned(),
                15 => "Tailscale refused the key Clawkeeper made for this server".to_owned(),
                16 => format!(
                    "your tailnet's access controls don't let the server use {}",
                    ptailnet::TAG
                ),
                17 => "the server could not reach Tailscale to log in again. Check that the server is online and may reach Tailscale, then rotate again".to_owned(),
                c if c == EXIT_SETTINGS_CHANGED => "Tailscale's settings on the server were changed by hand, so Clawkeeper can't log it in again with the same settings. Put it on your tailnet again (Private network), then rotate".to_owned(),
                _ => format!("logging the server in again failed: {said}"),
            }))
        })
    }

    fn verify_new<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let (s, host) = self.session().await?;
            let state = self.state(&s, &host).await;
            s.close().await;
            let state = state?;
            if state.backend != "Running" {
                return Err(StepError::Transient(format!(
                    "Tailscale on the server says {}, not Running yet",
                    state.backend
                )));
            }
            let Some(device) = self.renewed(ctx.detail).await? else {
                return Err(StepError::Transient(
                    "Tailscale doesn't list the server's new node key yet".into(),
                ));
            };
            if state
                .node_key
                .as_ref()
                .is_some_and(|k| *k != device.node_key)
            {
                return Err(StepError::Transient(
                    "the server and Tailscale's list name different node keys".into(),
                ));
            }
            if device.connected_to_control == Some(false) {
                return Err(StepError::Transient(
                    "Tailscale doesn't see the server online yet".into(),
                ));
            }
            ctx.detail["new_node_key"] = json!(device.node_key);
            Ok(())
        })
    }

    fn revoke_old<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        // The auth key: single use and used, but revoked anyway. The old node key was
        // dropped by Tailscale when the new one registered (checked next).
        Box::pin(async move { self.revoke_auth_key(ctx.detail).await })
    }

    fn verify_old_refused<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let old = detail_str(ctx.detail, "old_node_key").unwrap_or_default();
            let devices = self.api.devices().await.map_err(api_error)?;
            if !old.is_empty() && devices.iter().any(|d| d.node_key == old) {
                return Err(StepError::Transient(
                    "Tailscale still lists the server's old node key".into(),
                ));
            }
            if let Some(id) = detail_str(ctx.detail, "auth_key") {
                match self.api.key_info(&id).await {
                    Ok(k) if k.revoked.is_none() && !k.invalid => {
                        return Err(StepError::Transient(
                            "the auth key is still valid at Tailscale".into(),
                        ))
                    }
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(api_error(e)),
                }
            }
            // The app's note of the device (key expiry, last seen) follows.
            let _ = crate::tailnet::server::refresh(&self.store, &self.api, &self.instance).await;
            Ok(())
        })
    }

    fn discard<'a>(&'a self, ctx: &'a mut Ctx<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            // First the key, so that nothing can use it any more.
            self.revoke_auth_key(ctx.detail).await?;
            let (s, host) = self.session().await?;
            let result = async {
                self.revoke_leftover(&s, &host).await?;
                let rm = s
                    .run(&host.as_root(&format!("rm -f {KEY_FILE}")), None)
                    .await
                    .map_err(|e| {
                        StepError::Transient(format!("the server stopped answering ({e})"))
                    })?;
                if !rm.success() {
                    return Err(StepError::Transient(format!(
                        "the key file on the server could not be removed: {}",
                        rm.tail(2)
                    )));
                }
                let ran = ctx.detail.get("reauth_ran").and_then(Value::as_bool) == Some(true);
                if !ran {
                    return Ok(());
                }
                if self.renewed(ctx.detail).await?.is_some() {
                    // It went through: the node works with its new key.
                    return Ok(());
                }
                // tailscaled may still be trying to log in with the (now revoked) key: a
                // restart drops that and brings back the node's old, registered key.
                let now = self.state(&s, &host).await?;
                if now.backend != "Running" {
                    let out = s
                        .run(&host.as_root("systemctl restart tailscaled"), None)
                        .await
                        .map_err(|e| {
                            StepError::Transient(format!("the server stopped answering ({e})"))
                        })?;
                    if !out.success() {
                        return Err(StepError::Transient(format!(
                            "Tailscale on the server could not be restarted: {}",
                            out.tail(2)
                        )));
                    }
                }
                let until = tokio::time::Instant::now() + self.restart_wait;
                loop {
                    let st = self.state(&s, &host).await;
                    match st {
                        Ok(st)
                            if st.backend != "NoState" || tokio::time::Instant::now() >= until =>
                        {
                            return match st.not_renewable() {
                                None => Ok(()),
                                Some(_) if st.backend == "Stopped" => Ok(()),
                                Some(why) => Err(StepError::Transient(format!(
                                    "after the failed attempt, {why}"
                                ))),
                            };
                        }
                        Err(e) if tokio::time::Instant::now() >= until => return Err(e),
                        _ => tokio::time::sleep(Duration::from_millis(300)).await,
                    }
                }
            }
            .await;
            s.close().await;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_states_from_tailscale_status() {
        let running = NodeState::parse(
            br#"{"BackendState":"Running","HaveNodeKey":true,"Self":{"PublicKey":"nodekey:ab12"}}"#,
        )
        .unwrap();
        assert_eq!(running.node_key.as_deref(), Some("nodekey:ab12"));
        assert_eq!(running.not_renewable(), None);
        let zero = format!(
            r#"{{"BackendState":"NoState","HaveNodeKey":true,"Self":{{"PublicKey":"nodekey:{}"}}}}"#,
            "0".repeat(64)
        );
        let starting = NodeState::parse(zero.as_bytes()).unwrap();
        assert_eq!(starting.node_key, None);
        assert_eq!(
            starting.not_renewable(),
            None,
            "logged in, control unreachable"
        );
        let out = NodeState::parse(br#"{"BackendState":"NeedsLogin"}"#).unwrap();
        assert!(out.not_renewable().unwrap().contains("isn't logged in"));
        let off = NodeState::parse(br#"{"BackendState":"Stopped","HaveNodeKey":true}"#).unwrap();
        assert!(off.not_renewable().unwrap().contains("switched off"));
        assert!(NodeState::parse(b"Logged out.").is_err());
    }

    #[test]
    fn the_reauth_repeats_the_joins_flags_and_reads_the_key_from_a_file() {
        let mut ts = TailnetSpec::new("My server");
        ts.join_timeout_secs = 7;
        let s = ptailnet::reauth_script(&ts);
        assert!(s.contains("tailscale up --force-reauth --auth-key=\"file:$CK_TS_KEYFILE\""));
        assert!(s.contains("--hostname=\"$CK_TS_HOSTNAME\""));
        assert!(s.contains("--advertise-tags=\"$CK_TS_TAG\" --accept-dns=false"));
        assert!(s.contains("trap 'rm -f \"$CK_TS_KEYFILE\"' EXIT"));
        assert!(s.contains("CK_TS_HOSTNAME='my-server'"));
        assert!(s.contains("CK_TS_TIMEOUT='7'"));
        assert!(!s.contains("tskey-"));
    }
}
