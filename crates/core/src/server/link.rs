//! A lasting link to an adopted server: one SSH session, reconnected on demand, and one
//! tunnel to the gateway on the server's loopback whose local port never changes.

use crate::gateway::{self, ClientInfo, Gateway};
use crate::ssh::{self, Session, SessionSource, Tunnel};
use crate::store::Store;
use crate::vault::{SecretKind, SecretRef, Vault};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The gateway's port on the server (bound to 127.0.0.1 there).
pub const REMOTE_GATEWAY_PORT: u16 = 18789;

struct Shared {
    store: Store,
    vault: Vault,
    instance_id: String,
    session: Mutex<Option<Arc<Session>>>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct ServerLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerLink({})", self.shared.instance_id)
    }
}

impl ServerLink {
    pub fn new(store: Store, vault: Vault, instance_id: &str) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                vault,
                instance_id: instance_id.to_owned(),
                session: Mutex::new(None),
            }),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.shared.instance_id
    }

    /// A live session, reconnecting (pinned host key, the app's key) when the last one died.
    pub async fn session(&self) -> ssh::Result<Arc<Session>> {
        let mut guard = self.shared.session.lock().await;
        if let Some(s) = guard.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(
            super::open_session(
                &self.shared.store,
                &self.shared.vault,
                &self.shared.instance_id,
            )
            .await?,
        );
        *guard = Some(s.clone());
        Ok(s)
    }

    /// Forget the current session (e.g. after the server rebooted).
    pub async fn reset(&self) {
        if let Some(s) = self.shared.session.lock().await.take() {
            s.close().await;
        }
    }

    /// A tunnel from 127.0.0.1:<random> to the gateway on the server's loopback.
    pub async fn gateway_tunnel(&self) -> ssh::Result<Tunnel> {
        Tunnel::open(self.clone(), "127.0.0.1", REMOTE_GATEWAY_PORT).await
    }

    /// The token for a gateway client of this server: see [`crate::rotation::token_source`].
    pub fn token_source(&self) -> gateway::TokenSource {
        crate::rotation::token_source(self.shared.vault.clone(), self.token_ref())
    }

    pub fn token_ref(&self) -> SecretRef {
        SecretRef::new(SecretKind::GatewayToken, &self.shared.instance_id)
    }

    /// A self-healing gateway client through `tunnel`, with the instance's token read
    /// from the keychain on every (re)connect — the same client the local instance uses;
    /// while a rotation of the token runs, the new one and the old one in turn (see
    /// [`crate::rotation::token_source`]).
    pub fn gateway(&self, tunnel: &Tunnel) -> Gateway {
        let token = self.token_source();
        Gateway::spawn(
            format!("ws://{}", tunnel.local_addr()),
            token,
            ClientInfo::default(),
        )
    }
}

impl SessionSource for ServerLink {
    async fn session(&self) -> ssh::Result<Arc<Session>> {
        ServerLink::session(self).await
    }
}
