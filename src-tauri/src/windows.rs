//! The three windows, made on demand and destroyed when closed (the tray stays).

use clawkeeper_core::Problem;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowName {
    Setup,
    Status,
    Chat,
}

impl WindowName {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "setup" => Some(Self::Setup),
            "status" => Some(Self::Status),
            "chat" => Some(Self::Chat),
            _ => None,
        }
    }

    /// The window label; capabilities (`capabilities/*.json`) are granted per label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Status => "status",
            Self::Chat => "chat",
        }
    }

    fn page(self) -> &'static str {
        match self {
            Self::Setup => "setup.html",
            Self::Status => "status.html",
            Self::Chat => "chat.html",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Setup => "Set up your assistant — Clawkeeper",
            Self::Status => "Status — Clawkeeper",
            Self::Chat => "Chat — Clawkeeper",
        }
    }

    fn size(self) -> (f64, f64) {
        match self {
            Self::Setup => (720.0, 640.0),
            Self::Status => (760.0, 680.0),
            Self::Chat => (760.0, 720.0),
        }
    }
}

/// A part of a window to open at: the status window's forms for adding a server (the
/// setup window leads there when the person chose a server), its Keys section (the tray's
/// "Rotate keys…"). The page reads it from the URL's fragment (`status.html#server-cloud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    ServerConnect,
    ServerCloud,
    Keys,
}

impl Section {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "server-connect" => Some(Self::ServerConnect),
            "server-cloud" => Some(Self::ServerCloud),
            "keys" => Some(Self::Keys),
            _ => None,
        }
    }

    pub fn fragment(self) -> &'static str {
        match self {
            Self::ServerConnect => "server-connect",
            Self::ServerCloud => "server-cloud",
            Self::Keys => "keys",
        }
    }

    /// The window the section is in.
    pub fn window(self) -> WindowName {
        WindowName::Status
    }
}

/// A window to open, as the daemon and `--open` name it: `status`, or `status#keys` for a
/// section of it. `None` for an unknown window or a section not of that window.
pub fn parse_target(s: &str) -> Option<(WindowName, Option<Section>)> {
    let (name, section) = match s.split_once('#') {
        Some((n, sec)) => (n, Some(sec)),
        None => (s, None),
    };
    let name = WindowName::parse(name)?;
    match section {
        None => Some((name, None)),
        Some(sec) => {
            let sec = Section::parse(sec).filter(|sec| sec.window() == name)?;
            Some((name, Some(sec)))
        }
    }
}

/// Only the app's own pages may load in a window: no navigation to anything remote.
fn is_app_url(url: &tauri::Url) -> bool {
    match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" => url.host_str() == Some("tauri.localhost"),
        _ => false,
    }
}

/// Show the window at `section` (which must be one of that window's), creating it if it
/// is not open.
pub fn open_at(app: &AppHandle, name: WindowName, section: Option<Section>) -> Result<(), Problem> {
    open_inner(app, name, section).map_err(|e| {
        tracing::error!(window = name.label(), error = %e, "could not open a window");
        Problem::new(
            "window_failed",
            "Clawkeeper couldn't open that window.",
            Some("Try again. If it keeps happening, restart Clawkeeper."),
        )
    })
}

/// [`open_at`], a failure only logged (it was, by [`open_at`]).
pub fn open_at_or_log(app: &AppHandle, name: WindowName, section: Option<Section>) {
    let _ = open_at(app, name, section);
}

fn open_inner(app: &AppHandle, name: WindowName, section: Option<Section>) -> tauri::Result<()> {
    let section = section.filter(|s| s.window() == name);
    if let Some(w) = app.get_webview_window(name.label()) {
        if let Some(s) = section {
            // Already open: the page follows its fragment (`hashchange`). A constant script.
            w.eval(format!("window.location.hash = '#{}'", s.fragment()))?;
        }
        w.unminimize()?;
        w.show()?;
        w.set_focus()?;
        return Ok(());
    }
    let (width, height) = name.size();
    let page = match section {
        Some(s) => format!("{}#{}", name.page(), s.fragment()),
        None => name.page().to_owned(),
    };
    WebviewWindowBuilder::new(app, name.label(), WebviewUrl::App(page.into()))
        .title(name.title())
        .inner_size(width, height)
        .min_inner_size(420.0, 420.0)
        .center()
        .focused(true)
        .on_navigation(is_app_url)
        .build()?;
    tracing::debug!(window = name.label(), "window opened");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [WindowName::Setup, WindowName::Status, WindowName::Chat] {
            assert_eq!(WindowName::parse(n.label()), Some(n));
        }
        assert_eq!(WindowName::parse("settings"), None);
        for s in [Section::ServerConnect, Section::ServerCloud, Section::Keys] {
            assert_eq!(Section::parse(s.fragment()), Some(s));
            assert_eq!(s.window(), WindowName::Status);
        }
        assert_eq!(Section::parse("'; alert(1); '"), None);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("chat"), Some((WindowName::Chat, None)));
        assert_eq!(
            parse_target("status#keys"),
            Some((WindowName::Status, Some(Section::Keys)))
        );
        assert_eq!(parse_target("chat#keys"), None);
        assert_eq!(parse_target("status#nope"), None);
        assert_eq!(parse_target("settings"), None);
    }

    #[test]
    fn only_app_pages_load() {
        let ok = |s: &str| is_app_url(&tauri::Url::parse(s).unwrap());
        assert!(ok("tauri://localhost/chat.html"));
        assert!(ok("http://tauri.localhost/status.html"));
        assert!(!ok("https://example.com/"));
        assert!(!ok("http://127.0.0.1:18789/"));
        assert!(!ok("file:///etc/passwd"));
    }
}
