//! The tray: icon, tooltip and menu are a pure function of the instance state
//! ([`TrayView::of`]); the whole menu is rebuilt on every state change. On Linux it is a
//! StatusNotifierItem over D-Bus (`ksni`, no GTK): icons are sent as ARGB32 pixmaps.

use clawkeeper_core::local::supervisor::InstanceState;
use clawkeeper_core::tailnet::watch::TrayTailnet;
use tokio::sync::mpsc::UnboundedSender;

/// What a tray menu item asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    OpenChat,
    Status,
    Start,
    Stop,
    /// Read the server's safety checklist now.
    CheckServer,
    /// The chat window, with chat going over the tailnet to the server.
    OpenPrivateChat,
    /// Tailscale on this computer needs the person to log in: open its login page.
    OpenTailscale,
    /// Start the assistant again after it was paused at the spend cap.
    Resume,
    /// The status window's Usage section.
    Usage,
    /// The status window's Keys section ("Rotate keys…").
    RotateKeys,
    Quit,
}
/// Which icon the tray shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Starting,
    Healthy,
    Degraded,
    Stopped,
    Error,
}

impl Look {
    fn png(self) -> &'static [u8] {
        match self {
            Look::Starting => include_bytes!("../../../icons/tray/starting.png"),
            Look::Healthy => include_bytes!("../../../icons/tray/healthy.png"),
            Look::Degraded => include_bytes!("../../../icons/tray/degraded.png"),
            Look::Stopped => include_bytes!("../../../icons/tray/stopped.png"),
            Look::Error => include_bytes!("../../../icons/tray/error.png"),
        }
    }
}

/// The Start/Stop item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    Start,
    Stop,
    /// Stopping: nothing to press until it has stopped.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub look: Look,
    /// The state in the UI's words ("Working", "Needs attention", …).
    pub label: &'static str,
    pub toggle: Toggle,
}

impl TrayView {
    pub fn of(state: &InstanceState) -> Self {
        let (look, label, toggle) = match state {
            InstanceState::Starting { .. } => (Look::Starting, "Starting…", Toggle::Stop),
            InstanceState::Healthy { .. } => (Look::Healthy, "Working", Toggle::Stop),
            InstanceState::Degraded { .. } => (Look::Degraded, "Needs attention", Toggle::Stop),
            InstanceState::Stopping => (Look::Starting, "Stopping…", Toggle::Busy),
            InstanceState::Stopped => (Look::Stopped, "Stopped", Toggle::Start),
            InstanceState::NotInstalled => (Look::Stopped, "Not set up yet", Toggle::Start),
            InstanceState::Error { .. } => (Look::Error, "Needs attention", Toggle::Start),
        };
        Self {
            look,
            label,
            toggle,
        }
    }

    pub fn tooltip(&self) -> String {
        format!("Clawkeeper — {}", self.label)
    }
}

/// The spend lines of the tray (see `clawkeeper_core::app::UsageSummary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayUsage {
    /// "$0.42 today · $6.10 this month".
    pub line: String,
    /// "Updated 3 min ago", or why it couldn't be.
    pub freshness: String,
    /// Paused at the spend cap: offer Resume.
    pub paused: bool,
}

impl TrayUsage {
    /// The lines from a summary, `now` being the current time.
    pub fn of(s: &clawkeeper_core::app::UsageSummary, now: time::OffsetDateTime) -> Self {
        let age = s
            .synced_at
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| (now - t).whole_minutes().max(0));
        let freshness = match (age, &s.error) {
            (None, _) => "Usage not counted yet".to_owned(),
            (Some(m), Some(_)) => format!("Usage from {} — can't update now", ago(m)),
            (Some(m), None) => format!("Usage updated {}", ago(m)),
        };
        Self {
            line: s.line(),
            freshness,
            paused: s.paused,
        }
    }
}

fn ago(minutes: i64) -> String {
    match minutes {
        0 => "just now".into(),
        1 => "1 min ago".into(),
        m if m < 120 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} days ago", m / (24 * 60)),
    }
}

/// A decoded icon: width, height, ARGB32 bytes in network byte order.
pub fn argb32(png_bytes: &[u8]) -> Result<(i32, i32, Vec<u8>), png::DecodingError> {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    let pixels = &buf[..info.buffer_size()];
    let mut out = Vec::with_capacity((info.width * info.height * 4) as usize);
    let push = |out: &mut Vec<u8>, r: u8, g: u8, b: u8, a: u8| out.extend_from_slice(&[a, r, g, b]);
    match info.color_type {
        png::ColorType::Rgba => {
            for p in pixels.chunks_exact(4) {
                push(&mut out, p[0], p[1], p[2], p[3]);
            }
        }
        png::ColorType::Rgb => {
            for p in pixels.chunks_exact(3) {
                push(&mut out, p[0], p[1], p[2], 255);
            }
        }
        png::ColorType::GrayscaleAlpha => {
            for p in pixels.chunks_exact(2) {
                push(&mut out, p[0], p[0], p[0], p[1]);
            }
        }
        _ => {
            for p in pixels {
                push(&mut out, *p, *p, *p, 255);
            }
        }
    }
    Ok((info.width as i32, info.height as i32, out))
}

/// The StatusNotifierItem: the current view and where menu clicks go.
pub struct Tray {
    pub view: TrayView,
    /// The person's server in words ("Server: safe", "Setting up server… 6/13"), if any.
    pub server: Option<String>,
    /// The tailnet lines (see `clawkeeper_core::tailnet::watch::tray`), if any.
    pub tailnet: Option<TrayTailnet>,
    /// Spend today and this month, and how fresh it is, once counted.
    pub usage: Option<TrayUsage>,
    pub actions: UnboundedSender<Action>,
}

impl Tray {
    fn item(&self, label: String, enabled: bool, action: Option<Action>) -> ksni::MenuItem<Self> {
        ksni::menu::StandardItem {
            label,
            enabled,
            activate: Box::new(move |t: &mut Self| {
                if let Some(a) = action {
                    let _ = t.actions.send(a);
                }
            }),
            ..Default::default()
        }
        .into()
    }
}

impl ksni::Tray for Tray {
    fn id(&self) -> String {
        "clawkeeper".into()
    }

    fn title(&self) -> String {
        "Clawkeeper".into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        match argb32(self.view.look.png()) {
            Ok((width, height, data)) => vec![ksni::Icon {
                width,
                height,
                data,
            }],
            Err(e) => {
                tracing::warn!(error = %e, "tray icon did not decode");
                Vec::new()
            }
        }
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        let title = match &self.usage {
            Some(u) if u.paused => format!("Clawkeeper — Paused at your spend cap · {}", u.line),
            Some(u) => format!("{} · {}", self.view.tooltip(), u.line),
            None => self.view.tooltip(),
        };
        ksni::ToolTip {
            title,
            ..Default::default()
        }
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        use ksni::MenuItem::Separator;
        let toggle = match self.view.toggle {
            Toggle::Start => self.item("Start your assistant".into(), true, Some(Action::Start)),
            Toggle::Stop => self.item("Stop your assistant".into(), true, Some(Action::Stop)),
            Toggle::Busy => self.item("Stopping…".into(), false, None),
        };
        let mut items = vec![
            self.item(format!("Your assistant: {}", self.view.label), false, None),
            Separator,
            self.item("Open chat".into(), true, Some(Action::OpenChat)),
            self.item("Status".into(), true, Some(Action::Status)),
            self.item("Rotate keys…".into(), true, Some(Action::RotateKeys)),
            Separator,
            toggle,
        ];
        if let Some(u) = &self.usage {
            items.extend([
                Separator,
                self.item(u.line.clone(), true, Some(Action::Usage)),
                self.item(u.freshness.clone(), false, None),
            ]);
            if u.paused {
                items.push(self.item(
                    "Paused at your spend cap — Resume".into(),
                    true,
                    Some(Action::Resume),
                ));
            }
        }
        if let Some(server) = &self.server {
            let busy = server.contains('…');
            items.extend([
                Separator,
                self.item(server.clone(), false, None),
                self.item(
                    "Check server safety".into(),
                    !busy,
                    Some(Action::CheckServer),
                ),
            ]);
        }
        if let Some(t) = &self.tailnet {
            items.extend([Separator, self.item(t.line.clone(), false, None)]);
            if let Some(name) = &t.server_name {
                items.push(self.item(format!("Server on your tailnet: {name}"), false, None));
            }
            if t.open_tailscale {
                items.push(self.item("Open Tailscale".into(), true, Some(Action::OpenTailscale)));
            }
            if t.server_name.is_some() {
                items.push(self.item(
                    "Open private chat".into(),
                    t.private_chat,
                    Some(Action::OpenPrivateChat),
                ));
            }
        }
        items.extend([
            Separator,
            self.item("Quit Clawkeeper".into(), true, Some(Action::Quit)),
        ]);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawkeeper_core::Problem;

    #[test]
    fn view_follows_state() {
        let healthy = InstanceState::Healthy {
            version: None,
            since: String::new(),
        };
        let v = TrayView::of(&healthy);
        assert_eq!((v.look, v.toggle), (Look::Healthy, Toggle::Stop));
        assert_eq!(v.tooltip(), "Clawkeeper — Working");

        let err = InstanceState::Error {
            problem: Problem::new("port_in_use", "Port busy.", None),
        };
        let v = TrayView::of(&err);
        assert_eq!(
            (v.look, v.label, v.toggle),
            (Look::Error, "Needs attention", Toggle::Start)
        );

        let v = TrayView::of(&InstanceState::Degraded {
            detail: "restarting".into(),
        });
        assert_eq!((v.look, v.toggle), (Look::Degraded, Toggle::Stop));
        assert_eq!(TrayView::of(&InstanceState::Stopped).toggle, Toggle::Start);
        assert_eq!(TrayView::of(&InstanceState::Stopping).toggle, Toggle::Busy);
        assert_eq!(
            TrayView::of(&InstanceState::Starting {
                detail: String::new()
            })
            .tooltip(),
            "Clawkeeper — Starting…"
        );
    }

    #[test]
    fn menu_items_send_their_actions() {
        use ksni::Tray as _;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tray = Tray {
            view: TrayView::of(&InstanceState::Stopped),
            server: None,
            tailnet: None,
            usage: None,
            actions: tx,
        };
        let labels_and_clicks: Vec<(String, bool)> = tray
            .menu()
            .into_iter()
            .filter_map(|m| match m {
                ksni::MenuItem::Standard(i) => Some((i.label, i.enabled)),
                _ => None,
            })
            .collect();
        assert_eq!(
            labels_and_clicks,
            vec![
                ("Your assistant: Stopped".to_owned(), false),
                ("Open chat".to_owned(), true),
                ("Status".to_owned(), true),
                ("Rotate keys…".to_owned(), true),
                ("Start your assistant".to_owned(), true),
                ("Quit Clawkeeper".to_owned(), true),
            ]
        );
        let mut sent = Vec::new();
        for item in tray.menu() {
            if let ksni::MenuItem::Standard(i) = item {
                (i.activate)(&mut tray);
                if let Ok(a) = rx.try_recv() {
                    sent.push(a);
                }
            }
        }
        assert_eq!(
            sent,
            vec![
                Action::OpenChat,
                Action::Status,
                Action::RotateKeys,
                Action::Start,
                Action::Quit
            ]
        );
        assert_eq!(tray.title(), "Clawkeeper");
        assert_eq!(tray.tool_tip().title, "Clawkeeper — Stopped");
        assert_eq!(tray.icon_pixmap().len(), 1);
    }

    #[test]
    fn server_line_and_check_item() {
        use ksni::Tray as _;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tray = Tray {
            view: TrayView::of(&InstanceState::Stopped),
            server: Some("Server: needs attention".into()),
            tailnet: None,
            usage: None,
            actions: tx,
        };
        let items: Vec<(String, bool)> = tray
            .menu()
            .into_iter()
            .filter_map(|m| match m {
                ksni::MenuItem::Standard(i) => Some((i.label, i.enabled)),
                _ => None,
            })
            .collect();
        assert!(items.contains(&("Server: needs attention".to_owned(), false)));
        assert!(items.contains(&("Check server safety".to_owned(), true)));
        for item in tray.menu() {
            if let ksni::MenuItem::Standard(i) = item {
                if i.label == "Check server safety" {
                    (i.activate)(&mut tray);
                }
            }
        }
        assert_eq!(rx.try_recv().ok(), Some(Action::CheckServer));
        // While it is being set up, there is nothing to check yet.
        tray.server = Some("Setting up server… 6/13".into());
        assert!(tray.menu().into_iter().any(|m| matches!(m,
            ksni::MenuItem::Standard(i) if i.label == "Check server safety" && !i.enabled)));
    }

    #[test]
    fn tailnet_lines_and_items() {
        use clawkeeper_core::tailnet::server::ServerNode;
        use clawkeeper_core::tailnet::{watch, TailnetState};
        use ksni::Tray as _;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut node = ServerNode::new("clawkeeper-s1");
        node.address = "100.64.0.7".parse().ok();
        node.online = Some(true);
        let now = time::OffsetDateTime::now_utc();
        let connected = TailnetState::Connected {
            node: "laptop".into(),
        };
        let mut tray = Tray {
            view: TrayView::of(&InstanceState::Stopped),
            server: Some("Server: safe".into()),
            tailnet: watch::tray(Some(&connected), Some(&node), now),
            usage: None,
            actions: tx,
        };
        let labels = |t: &Tray| -> Vec<(String, bool)> {
            t.menu()
                .into_iter()
                .filter_map(|m| match m {
                    ksni::MenuItem::Standard(i) => Some((i.label, i.enabled)),
                    _ => None,
                })
                .collect()
        };
        let items = labels(&tray);
        assert!(items.contains(&("Tailnet: connected as laptop".to_owned(), false)));
        assert!(items.contains(&("Server on your tailnet: clawkeeper-s1".to_owned(), false)));
        assert!(items.contains(&("Open private chat".to_owned(), true)));
        assert!(!items.iter().any(|(l, _)| l == "Open Tailscale"));
        for item in tray.menu() {
            if let ksni::MenuItem::Standard(i) = item {
                if i.label == "Open private chat" {
                    (i.activate)(&mut tray);
                }
            }
        }
        assert_eq!(rx.try_recv().ok(), Some(Action::OpenPrivateChat));

        // Needs login: "Open Tailscale", and no private chat.
        let login = TailnetState::NeedsLogin { login_url: None };
        tray.tailnet = watch::tray(Some(&login), Some(&node), now);
        let items = labels(&tray);
        assert!(items.contains(&("Tailnet: needs login".to_owned(), false)));
        assert!(items.contains(&("Open Tailscale".to_owned(), true)));
        assert!(items.contains(&("Open private chat".to_owned(), false)));

        // Server offline; key expiring.
        node.online = Some(false);
        tray.tailnet = watch::tray(Some(&connected), Some(&node), now);
        assert!(labels(&tray).contains(&("Server offline on your tailnet".to_owned(), false)));
        node.online = Some(true);
        node.key_expiry = Some(now + time::Duration::days(3));
        tray.tailnet = watch::tray(Some(&connected), Some(&node), now);
        assert!(
            labels(&tray).contains(&("Server's tailnet key expires in 3 days".to_owned(), false))
        );

        // No tailnet anywhere: no tailnet lines.
        tray.tailnet = watch::tray(None, None, now);
        assert!(!labels(&tray).iter().any(|(l, _)| l.contains("ailnet")));
    }

    #[test]
    fn every_tray_icon_decodes() {
        for look in [
            Look::Starting,
            Look::Healthy,
            Look::Degraded,
            Look::Stopped,
            Look::Error,
        ] {
            let (w, h, data) = argb32(look.png()).unwrap();
            assert_eq!((w, h, data.len()), (32, 32, 32 * 32 * 4));
        }
    }

    #[test]
    fn spend_lines_tooltip_and_resume() {
        use clawkeeper_core::app::UsageSummary;
        use ksni::Tray as _;
        let now = time::OffsetDateTime::parse(
            "2026-11-26T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let summary = UsageSummary {
            today: 0.42,
            month: 6.1,
            cap_percent: None,
            synced_at: Some("2026-11-26T11:57:00Z".into()),
            error: None,
            paused: false,
        };
        let u = TrayUsage::of(&summary, now);
        assert_eq!(u.line, "$0.42 today · $6.10 this month");
        assert_eq!(u.freshness, "Usage updated 3 min ago");
        let failing = UsageSummary {
            error: Some("Your assistant isn't answering".into()),
            synced_at: Some("2026-11-26T09:00:00Z".into()),
            ..summary.clone()
        };
        assert_eq!(
            TrayUsage::of(&failing, now).freshness,
            "Usage from 3 h ago — can't update now"
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tray = Tray {
            view: TrayView::of(&InstanceState::Healthy {
                version: None,
                since: String::new(),
            }),
            server: None,
            tailnet: None,
            usage: Some(u),
            actions: tx,
        };
        assert_eq!(
            tray.tool_tip().title,
            "Clawkeeper — Working · $0.42 today · $6.10 this month"
        );
        tray.usage = Some(TrayUsage::of(
            &UsageSummary {
                paused: true,
                ..summary
            },
            now,
        ));
        assert!(tray
            .tool_tip()
            .title
            .starts_with("Clawkeeper — Paused at your spend cap"));
        let mut resumed = false;
        for item in tray.menu() {
            if let ksni::MenuItem::Standard(i) = item {
                if i.label.contains("Resume") {
                    assert!(i.enabled);
                    (i.activate)(&mut tray);
                    resumed = true;
                }
            }
        }
        assert!(resumed);
        assert_eq!(rx.try_recv().unwrap(), Action::Resume);
    }
}
