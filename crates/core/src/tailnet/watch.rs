//! What the tray shows about the tailnet, and when to notify — pure functions of this
//! computer's [`TailnetState`] and the server's [`ServerNode`], so the tray only renders
//! and sends what these return.

use super::dial::TailnetState;
use super::server::ServerNode;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// Notify about a node key that expires within this long.
pub const KEY_EXPIRY_WARNING: Duration = Duration::days(14);
/// At most one key-expiry notification per this long.
pub const KEY_EXPIRY_REPEAT: Duration = Duration::days(1);

/// The tray's tailnet lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrayTailnet {
    /// The state line ("Tailnet: connected as laptop", …).
    pub line: String,
    /// The server's name on the tailnet, when it has joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Offer "Open Tailscale" (it needs the person to log in).
    pub open_tailscale: bool,
    /// Offer "Open private chat" (the server is reachable over the tailnet).
    pub private_chat: bool,
    /// Something needs the person's attention.
    pub attention: bool,
}

/// Whole days until `at`, rounded up (0 when it has passed).
fn days_until(at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let secs = (at - now).whole_seconds();
    if secs <= 0 {
        0
    } else {
        (secs + 86_399) / 86_400
    }
}

fn days(n: i64) -> String {
    match n {
        0 => "today".into(),
        1 => "in 1 day".into(),
        n => format!("in {n} days"),
    }
}

/// The key expiry worth warning about: within [`KEY_EXPIRY_WARNING`] of `now`.
pub fn expiring_soon(node: &ServerNode, now: OffsetDateTime) -> Option<i64> {
    let at = node.key_expiry?;
    (at - now <= KEY_EXPIRY_WARNING).then(|| days_until(at, now))
}

/// The tray's tailnet lines; `None` when there is nothing to say (no tailnet here and no
/// server on one).
pub fn tray(
    state: Option<&TailnetState>,
    node: Option<&ServerNode>,
    now: OffsetDateTime,
) -> Option<TrayTailnet> {
    if state.is_none() && node.is_none() {
        return None;
    }
    let server_name = node.map(|n| n.display_name().to_owned());
    let connected = state.is_some_and(TailnetState::is_connected);
    let mut out = TrayTailnet {
        line: String::new(),
        server_name,
        open_tailscale: false,
        private_chat: false,
        attention: false,
    };
    match state {
        Some(TailnetState::NeedsLogin { .. }) => {
            out.line = "Tailnet: needs login".into();
            out.open_tailscale = true;
            out.attention = node.is_some();
            return Some(out);
        }
        Some(TailnetState::Connected { node: me }) => {
            out.line = format!("Tailnet: connected as {me}");
        }
        Some(TailnetState::Starting) => out.line = "Tailnet: starting…".into(),
        Some(TailnetState::Stopped) | Some(TailnetState::Unavailable { .. }) | None => {
            out.line = "Tailnet: off on this computer".into();
        }
    }
    if let Some(n) = node {
        if n.online == Some(false) {
            out.line = "Server offline on your tailnet".into();
            out.attention = true;
        } else if let Some(d) = expiring_soon(n, now) {
            out.line = format!("Server's tailnet key expires {}", days(d));
            out.attention = true;
        }
        out.private_chat = connected && n.address.is_some() && n.online != Some(false);
    }
    Some(out)
}

/// A desktop notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
}

/// What the watcher remembers between looks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// The server's online state at the last look (`None`: unknown).
    pub online: Option<bool>,
    /// When the last key-expiry notification went out.
    pub expiry_notified: Option<OffsetDateTime>,
}

/// The notifications for a new look at the server's node: it went from online to offline
/// on the tailnet; its node key expires within 14 days (at most once a day). Returns them
/// with what to remember for the next look.
pub fn notices(
    prev: &Watch,
    node: Option<&ServerNode>,
    now: OffsetDateTime,
) -> (Vec<Notice>, Watch) {
    let Some(n) = node else {
        return (Vec::new(), Watch::default());
    };
    let name = n.display_name();
    let mut out = Vec::new();
    let mut next = Watch {
        online: n.online.or(prev.online),
        expiry_notified: prev.expiry_notified,
    };
    if prev.online == Some(true) && n.online == Some(false) {
        out.push(Notice {
            summary: "Your server left your tailnet".into(),
            body: format!(
                "{name} is offline on your tailnet. Chat goes through a private SSH connection meanwhile. If it doesn't come back, restart the server from Clawkeeper's status window."
            ),
        });
    }
    if let Some(d) = expiring_soon(n, now) {
        let due = prev
            .expiry_notified
            .is_none_or(|at| now - at >= KEY_EXPIRY_REPEAT);
        if due {
            out.push(Notice {
                summary: "Your server's tailnet key expires soon".into(),
                body: format!(
                    "{name}'s key on your tailnet expires {}. Open the Machines page of your Tailscale admin console and choose \"Disable key expiry\" for it, or it will drop off your tailnet.",
                    days(d)
                ),
            });
            next.expiry_notified = Some(now);
        }
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    fn node(online: Option<bool>, expiry: Option<OffsetDateTime>) -> ServerNode {
        let mut n = ServerNode::new("clawkeeper-s1");
        n.address = Some("100.64.0.7".parse().unwrap());
        n.dns_name = Some("clawkeeper-s1.tail1234.ts.net".into());
        n.online = online;
        n.key_expiry = expiry;
        n
    }

    fn connected() -> TailnetState {
        TailnetState::Connected {
            node: "laptop".into(),
        }
    }

    #[test]
    fn tray_lines_for_each_state() {
        assert_eq!(tray(None, None, NOW), None);

        let t = tray(Some(&connected()), Some(&node(Some(true), None)), NOW).unwrap();
        assert_eq!(t.line, "Tailnet: connected as laptop");
        assert_eq!(t.server_name.as_deref(), Some("clawkeeper-s1"));
        assert!(t.private_chat && !t.open_tailscale && !t.attention);

        let t = tray(
            Some(&TailnetState::NeedsLogin { login_url: None }),
            Some(&node(Some(true), None)),
            NOW,
        )
        .unwrap();
        assert_eq!(t.line, "Tailnet: needs login");
        assert!(t.open_tailscale && !t.private_chat && t.attention);

        let t = tray(Some(&connected()), Some(&node(Some(false), None)), NOW).unwrap();
        assert_eq!(t.line, "Server offline on your tailnet");
        assert!(!t.private_chat && t.attention);

        let soon = NOW + Duration::days(5) + Duration::hours(3);
        let t = tray(Some(&connected()), Some(&node(Some(true), Some(soon))), NOW).unwrap();
        assert_eq!(t.line, "Server's tailnet key expires in 6 days");
        assert!(t.private_chat && t.attention);

        let later = NOW + Duration::days(40);
        let t = tray(
            Some(&connected()),
            Some(&node(Some(true), Some(later))),
            NOW,
        )
        .unwrap();
        assert_eq!(t.line, "Tailnet: connected as laptop");

        let t = tray(Some(&TailnetState::Stopped), Some(&node(None, None)), NOW).unwrap();
        assert_eq!(t.line, "Tailnet: off on this computer");
        assert!(!t.private_chat);

        // A tailnet here but no server on it: the state line only.
        let t = tray(Some(&connected()), None, NOW).unwrap();
        assert_eq!(t.server_name, None);
        assert!(!t.private_chat);
    }

    #[test]
    fn offline_is_told_once_on_the_transition() {
        let w0 = Watch::default();
        // Unknown → offline: nothing (it may never have been online here).
        let (n, w) = notices(&w0, Some(&node(Some(false), None)), NOW);
        assert!(n.is_empty());
        let (n, w) = notices(&w, Some(&node(Some(true), None)), NOW);
        assert!(n.is_empty());
        let (n, w) = notices(&w, Some(&node(Some(false), None)), NOW);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].summary, "Your server left your tailnet");
        assert!(n[0].body.contains("clawkeeper-s1"));
        // Still offline: not again.
        let (n, w) = notices(&w, Some(&node(Some(false), None)), NOW);
        assert!(n.is_empty());
        // An unknown look keeps the last known state.
        let (n, w) = notices(&w, Some(&node(None, None)), NOW);
        assert!(n.is_empty());
        assert_eq!(w.online, Some(false));
    }

    #[test]
    fn key_expiry_is_told_at_most_once_a_day() {
        let exp = NOW + Duration::days(10);
        let (n, w) = notices(&Watch::default(), Some(&node(Some(true), Some(exp))), NOW);
        assert_eq!(n.len(), 1);
        assert!(n[0].body.contains("in 10 days"), "{}", n[0].body);
        let (n, w) = notices(
            &w,
            Some(&node(Some(true), Some(exp))),
            NOW + Duration::hours(23),
        );
        assert!(n.is_empty());
        let (n, _) = notices(
            &w,
            Some(&node(Some(true), Some(exp))),
            NOW + Duration::hours(24),
        );
        assert_eq!(n.len(), 1);
        // Far off or never: nothing.
        let (n, _) = notices(
            &Watch::default(),
            Some(&node(Some(true), Some(NOW + Duration::days(15)))),
            NOW,
        );
        assert!(n.is_empty());
        let (n, _) = notices(&Watch::default(), Some(&node(Some(true), None)), NOW);
        assert!(n.is_empty());
    }
}
