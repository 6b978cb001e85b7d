//! Which way chat reaches a server's assistant, as pure functions of what is known: this
//! computer's place on the tailnet and the server's node record. The tailnet when both are
//! there; otherwise the private SSH tunnel, saying why in plain words. The facade
//! (`app::Clawkeeper::gateway`) applies the choice, and falls back to SSH when a dial over
//! the tailnet fails anyway.

use super::dial::TailnetState;
use super::server::ServerNode;

/// The gateway's port on the server, also exposed on the tailnet by the server's
/// `tailscale serve --tcp 18789 tcp://127.0.0.1:18789`.
pub const TAILNET_GATEWAY_PORT: u16 = crate::server::REMOTE_GATEWAY_PORT;

/// How chat reaches the assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The assistant on this computer, over loopback.
    Local,
    /// The server's gateway over the person's tailnet.
    Tailnet,
    /// The server's gateway through a private SSH tunnel.
    Ssh(SshBecause),
}

/// Why chat to a server goes through SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshBecause {
    /// The server is not on a tailnet (or this computer has no Tailscale): the usual way.
    NoTailnet,
    /// Tailscale on this computer is off (stopped, starting, or not running).
    TailnetOff,
    /// Tailscale on this computer needs the person to log in.
    NeedsLogin,
    /// The server is on the tailnet but could not be reached over it just now.
    Unreachable,
}

impl Path {
    /// `local` | `tailnet` | `ssh` (what `AssistantView.path` carries).
    pub fn name(self) -> &'static str {
        match self {
            Path::Local => "local",
            Path::Tailnet => "tailnet",
            Path::Ssh(_) => "ssh",
        }
    }

    /// One sentence for people.
    pub fn note(self) -> &'static str {
        match self {
            Path::Local => "Chat stays on this computer.",
            Path::Tailnet => "Chat goes over your private tailnet.",
            Path::Ssh(SshBecause::NoTailnet) => {
                "Chat goes through a private SSH tunnel to your server."
            }
            Path::Ssh(SshBecause::TailnetOff) => {
                "Your tailnet is off on this computer, so chat goes through a private SSH connection instead."
            }
            Path::Ssh(SshBecause::NeedsLogin) => {
                "Tailscale on this computer needs you to log in, so chat goes through a private SSH connection instead."
            }
            Path::Ssh(SshBecause::Unreachable) => {
                "Your server can't be reached on your tailnet right now, so chat goes through a private SSH connection instead."
            }
        }
    }

    /// Whether this is the SSH fallback from a tailnet that should have been used.
    pub fn is_fallback(self) -> bool {
        matches!(
            self,
            Path::Ssh(SshBecause::TailnetOff | SshBecause::NeedsLogin | SshBecause::Unreachable)
        )
    }
}

/// The way to a server's assistant, before any dial: the tailnet address to dial when the
/// tailnet is the way (`Some`), and the path to show.
pub fn choose(state: Option<&TailnetState>, node: Option<&ServerNode>) -> (Path, Option<String>) {
    let Some(address) = node.and_then(|n| n.address) else {
        return (Path::Ssh(SshBecause::NoTailnet), None);
    };
    match state {
        None | Some(TailnetState::Unavailable { .. }) => (Path::Ssh(SshBecause::TailnetOff), None),
        Some(TailnetState::Stopped | TailnetState::Starting) => {
            (Path::Ssh(SshBecause::TailnetOff), None)
        }
        Some(TailnetState::NeedsLogin { .. }) => (Path::Ssh(SshBecause::NeedsLogin), None),
        Some(TailnetState::Connected { .. }) => (Path::Tailnet, Some(address.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn node(addr: Option<&str>) -> ServerNode {
        let mut n = ServerNode::new("clawkeeper-s1");
        n.address = addr.map(|a| a.parse().unwrap());
        n
    }

    #[test]
    fn the_tailnet_only_when_connected_and_the_server_has_an_address() {
        let on = TailnetState::Connected {
            node: "laptop".into(),
        };
        let with = node(Some("100.64.0.7"));
        assert_eq!(
            choose(Some(&on), Some(&with)),
            (Path::Tailnet, Some("100.64.0.7".into()))
        );
        assert_eq!(
            choose(Some(&on), Some(&node(None))).0,
            Path::Ssh(SshBecause::NoTailnet)
        );
        assert_eq!(choose(Some(&on), None).0, Path::Ssh(SshBecause::NoTailnet));
        assert_eq!(
            choose(Some(&TailnetState::Stopped), Some(&with)).0,
            Path::Ssh(SshBecause::TailnetOff)
        );
        assert_eq!(
            choose(None, Some(&with)).0,
            Path::Ssh(SshBecause::TailnetOff)
        );
        assert_eq!(
            choose(
                Some(&TailnetState::NeedsLogin { login_url: None }),
                Some(&with)
            )
            .0,
            Path::Ssh(SshBecause::NeedsLogin)
        );
    }

    #[test]
    fn names_and_notes() {
        assert_eq!(Path::Tailnet.name(), "tailnet");
        assert_eq!(Path::Local.name(), "local");
        assert_eq!(Path::Ssh(SshBecause::TailnetOff).name(), "ssh");
        assert_eq!(Path::Tailnet.note(), "Chat goes over your private tailnet.");
        assert_eq!(
            Path::Ssh(SshBecause::TailnetOff).note(),
            "Your tailnet is off on this computer, so chat goes through a private SSH connection instead."
        );
        assert!(Path::Ssh(SshBecause::Unreachable).is_fallback());
        assert!(!Path::Ssh(SshBecause::NoTailnet).is_fallback());
    }
}
