//! Desktop notifications when the assistant goes down and when it recovers.
//!
//! Sent by the tray daemon (the window process never notifies). notify-rust 4.18 shares
//! zbus 5 with the keychain store and ksni, where 4.19 adds zbus 6.

use clawkeeper_core::local::supervisor::InstanceState;
use clawkeeper_core::Problem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
}

/// Decides, from the stream of instance states, when to tell the person something.
/// Down: degraded after it was working, or an error. Recovered: working again after that.
/// A stop the person asked for is not news.
#[derive(Debug, Default)]
pub struct Notifier {
    was_healthy: bool,
    down: bool,
}

impl Notifier {
    pub fn on_state(&mut self, state: &InstanceState) -> Option<Notice> {
        match state {
            InstanceState::Healthy { .. } => {
                self.was_healthy = true;
                if std::mem::take(&mut self.down) {
                    return Some(Notice {
                        summary: "Your assistant is working again".into(),
                        body: "Clawkeeper restarted it and it answers normally.".into(),
                    });
                }
                None
            }
            InstanceState::Degraded { detail } if self.was_healthy && !self.down => {
                self.down = true;
                Some(Notice {
                    summary: "Your assistant needs attention".into(),
                    body: format!("{detail}. Clawkeeper is taking care of it."),
                })
            }
            InstanceState::Error { problem } if !self.down => {
                self.down = true;
                Some(Notice {
                    summary: "Your assistant stopped".into(),
                    body: problem_text(problem),
                })
            }
            InstanceState::Stopped | InstanceState::NotInstalled => {
                self.was_healthy = false;
                self.down = false;
                None
            }
            _ => None,
        }
    }
}

/// A server's safety checklist with failures: what failed and what to do. None when all passed.
pub fn server_checks_failed(
    name: &str,
    checks: &[clawkeeper_core::app::ServerCheck],
) -> Option<Notice> {
    let failed: Vec<&clawkeeper_core::app::ServerCheck> =
        checks.iter().filter(|c| c.failed()).collect();
    let first = failed.first()?;
    let what = match &first.detail {
        Some(d) => format!("{}: {d}", first.label),
        None => first.label.clone(),
    };
    let more = match failed.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Some(Notice {
        summary: format!("{name} needs attention"),
        body: format!(
            "A safety check failed — {what}{more}. Open Status → Your server and press \"Let OpenClaw fix what it can\", or set the server up again."
        ),
    })
}

fn problem_text(p: &Problem) -> String {
    match &p.hint {
        Some(h) => format!("{} {h}", p.message),
        None => p.message.clone(),
    }
}

/// Show a notification without blocking the caller (D-Bus on Linux).
pub fn show(notice: Notice) {
    std::thread::spawn(move || {
        let result = notify_rust::Notification::new()
            .appname("Clawkeeper")
            .summary(&notice.summary)
            .body(&notice.body)
            .show();
        match result {
            Ok(_) => tracing::info!(summary = %notice.summary, "notification shown"),
            Err(e) => tracing::warn!(error = %e, "could not show a notification"),
        }
    });
}

/// Show a notification that does `on_click` when the person clicks it (its default
/// action; "Open" where the desktop shows actions as buttons). The thread waits for the
/// click or the notification closing.
pub fn show_opening(notice: Notice, on_click: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let result = notify_rust::Notification::new()
            .appname("Clawkeeper")
            .summary(&notice.summary)
            .body(&notice.body)
            .action("default", "Open")
            .show();
        match result {
            Ok(handle) => {
                tracing::info!(summary = %notice.summary, "notification shown");
                handle.wait_for_action(|action| {
                    if action == "default" {
                        tracing::info!(summary = %notice.summary, "notification clicked");
                        on_click();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "could not show a notification"),
        }
    });
}

pub fn show_problem(summary: &str, p: &Problem) {
    show(Notice {
        summary: summary.to_owned(),
        body: problem_text(p),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> InstanceState {
        InstanceState::Healthy {
            version: None,
            since: String::new(),
        }
    }

    #[test]
    fn down_and_recovered_once_each() {
        let mut n = Notifier::default();
        assert_eq!(
            n.on_state(&InstanceState::Starting {
                detail: String::new()
            }),
            None
        );
        assert_eq!(n.on_state(&healthy()), None);
        let down = n.on_state(&InstanceState::Degraded {
            detail: "Stopped unexpectedly".into(),
        });
        assert_eq!(
            down.map(|d| d.summary),
            Some("Your assistant needs attention".into())
        );
        // The restart goes through starting; no second "down".
        assert_eq!(
            n.on_state(&InstanceState::Starting {
                detail: String::new()
            }),
            None
        );
        assert_eq!(
            n.on_state(&InstanceState::Degraded {
                detail: "again".into()
            }),
            None
        );
        let up = n.on_state(&healthy());
        assert_eq!(
            up.map(|u| u.summary),
            Some("Your assistant is working again".into())
        );
        assert_eq!(n.on_state(&healthy()), None);
    }

    #[test]
    fn failed_server_checks_say_what_and_what_to_do() {
        use clawkeeper_core::app::ServerCheck;
        let c = |id: &str, status: &str, detail: Option<&str>| ServerCheck {
            id: id.into(),
            label: format!("Check {id}"),
            status: status.into(),
            detail: detail.map(str::to_owned),
        };
        assert_eq!(
            server_checks_failed("My server", &[c("a", "pass", None)]),
            None
        );
        let n = server_checks_failed(
            "My server",
            &[
                c("a", "pass", None),
                c("b", "fail", Some("port 22 open to all")),
                c("c", "fail", None),
            ],
        )
        .unwrap();
        assert_eq!(n.summary, "My server needs attention");
        assert!(n.body.contains("Check b: port 22 open to all (and 1 more)"));
        assert!(n.body.contains("Let OpenClaw fix what it can"));
    }

    #[test]
    fn errors_notify_and_stops_do_not() {
        let mut n = Notifier::default();
        let p = Problem::new("crash_loop", "It keeps crashing.", Some("Open Status."));
        let e = n.on_state(&InstanceState::Error { problem: p.clone() });
        assert_eq!(
            e.map(|e| e.body),
            Some("It keeps crashing. Open Status.".into())
        );
        assert_eq!(n.on_state(&InstanceState::Error { problem: p }), None);
        assert_eq!(n.on_state(&InstanceState::Stopped), None);
        n.on_state(&healthy());
        assert_eq!(n.on_state(&InstanceState::Stopping), None);
        assert_eq!(n.on_state(&InstanceState::Stopped), None);
        // A degraded start without ever working is not "went down".
        assert_eq!(
            n.on_state(&InstanceState::Degraded { detail: "x".into() }),
            None
        );
    }
}
