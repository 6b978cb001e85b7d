//! Rotation reminders from the app: the schedule the Keys section shows and sets, and the
//! check the tray daemon runs (at start and every hour) that turns due keys into one
//! notification (see [`crate::rotation::remind`]).

use super::{Clawkeeper, Event};
use crate::audit;
use crate::problem::{Problem, UserFacing};
use crate::rotation::remind::{self, format_time, KeyDue};
use crate::rotation::KeyId;
use serde::Serialize;
use time::OffsetDateTime;

/// A key due for a change, as the Keys section and the CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DueKey {
    pub instance_id: String,
    pub key: KeyId,
    pub label: &'static str,
    /// RFC 3339
    pub due_at: String,
}

/// The reminder schedule and where the keys stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reminders {
    /// Remind every so many days; None: never.
    pub every_days: Option<u32>,
    /// What the Keys section offers.
    pub choices: Vec<u32>,
    pub default_days: u32,
    /// The keys due for a change now.
    pub due: Vec<DueKey>,
    /// When the next reminder is (RFC 3339; now or earlier: at the next check, within the
    /// hour), None: none coming (never, or no key with a known age).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    /// Which keys the next reminder is about (those due by then or within a day after).
    pub next_keys: Vec<&'static str>,
    /// A key still not changed after a reminder is reminded of again after this many days.
    pub again_after_days: i64,
}

/// A reminder given: what the notification says and which keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reminder {
    pub summary: String,
    pub body: String,
    pub keys: Vec<KeyId>,
}

fn input(message: &str) -> Problem {
    Problem::new(
        "remind_input",
        message,
        Some("Choose never, or a number of days from 1 to 3650 (30, 90 or 180 in the app)."),
    )
}

impl Clawkeeper {
    /// The keys the reminders are about: the inventory's, less those being rotated now.
    async fn reminder_keys(&self) -> Result<Vec<(String, KeyId)>, Problem> {
        Ok(self
            .keys_inventory()
            .await?
            .into_iter()
            .filter(|k| k.running.is_none())
            .map(|k| (k.instance_id, k.key))
            .collect())
    }

    /// The schedule and where the keys stand at `now`.
    pub async fn key_reminders_at(&self, now: OffsetDateTime) -> Result<Reminders, Problem> {
        let store = &self.inner.store;
        let keys = self.reminder_keys().await?;
        let every = remind::every(store).await.map_err(|e| e.problem())?;
        let states = remind::status(store, &keys, now)
            .await
            .map_err(|e| e.problem())?;
        let due = states
            .iter()
            .filter(|k| k.due)
            .filter_map(|k| {
                Some(DueKey {
                    instance_id: k.instance_id.clone(),
                    key: k.key,
                    label: k.key.label(),
                    due_at: format_time(k.due_at?),
                })
            })
            .collect();
        let next = states.iter().filter_map(|k| k.next_reminder).min();
        let next_keys = match next {
            // A reminder names every key due at that time.
            Some(t) => states
                .iter()
                .filter(|k| {
                    k.due_at
                        .is_some_and(|d| d <= t + time::Duration::hours(remind::TOGETHER_HOURS))
                })
                .map(|k| k.key.label())
                .collect(),
            None => Vec::new(),
        };
        Ok(Reminders {
            every_days: every,
            choices: remind::CHOICES.to_vec(),
            default_days: remind::DEFAULT_EVERY_DAYS,
            due,
            next_at: next.map(format_time),
            next_keys,
            again_after_days: remind::AGAIN_AFTER_DAYS,
        })
    }

    pub async fn key_reminders(&self) -> Result<Reminders, Problem> {
        self.key_reminders_at(OffsetDateTime::now_utc()).await
    }

    /// Set the schedule: every so many days (1 to 3650), or None (never).
    pub async fn set_key_reminders(&self, every_days: Option<u32>) -> Result<Reminders, Problem> {
        if every_days.is_some_and(|n| n == 0 || n > remind::MAX_EVERY_DAYS) {
            return Err(input("That isn't a reminder schedule."));
        }
        let store = &self.inner.store;
        remind::set_every(store, every_days)
            .await
            .map_err(|e| e.problem())?;
        let what = every_days
            .map(|n| format!("every {n} days"))
            .unwrap_or_else(|| "never".into());
        let _ = audit::append(store, None, "rotation.remind_set", &what).await;
        self.key_reminders().await
    }

    /// Set the schedule from words (`never`, `90`): the CLI's `rotate --remind`.
    pub async fn set_key_reminders_from(&self, words: &str) -> Result<Reminders, Problem> {
        let every =
            remind::parse_every(words).ok_or_else(|| input("That isn't a reminder schedule."))?;
        self.set_key_reminders(every).await
    }

    /// Give the rotation reminder that is due at `now`, if one is: noted (once per due key,
    /// again a week later while still not changed; across restarts), written to the audit
    /// log (labels and fingerprints, never a key) and sent as an event the tray daemon
    /// shows as a notification.
    pub async fn remind_rotations(&self, now: OffsetDateTime) -> Result<Option<Reminder>, Problem> {
        let store = &self.inner.store;
        let inventory = self.keys_inventory().await?;
        let keys: Vec<(String, KeyId)> = inventory
            .iter()
            .filter(|k| k.running.is_none())
            .map(|k| (k.instance_id.clone(), k.key))
            .collect();
        let due: Vec<KeyDue> = remind::take(store, &keys, now)
            .await
            .map_err(|e| e.problem())?;
        let info = |k: &KeyDue| {
            inventory
                .iter()
                .find(|i| i.instance_id == k.instance_id && i.key == k.key)
        };
        let listed: Vec<(&str, Option<i64>, bool)> = due
            .iter()
            .map(|k| {
                (
                    k.key.label(),
                    k.days_old(now),
                    info(k).is_some_and(|i| i.how == super::HowToRotate::OneClick),
                )
            })
            .collect();
        // The Tailscale API access token expires by itself: warned of two weeks before,
        // first in the notification.
        let expiring = self.tailscale_expiry_warning(now).await;
        let Some((summary, body)) = remind::words(&listed) else {
            if let Some((summary, body)) = expiring {
                let reminder = Reminder {
                    summary,
                    body,
                    keys: vec![KeyId::TailscaleApi],
                };
                tracing::info!("Tailscale access expiry reminder");
                self.emit(Event::RotationReminder(reminder.clone()));
                return Ok(Some(reminder));
            }
            tracing::debug!(
                keys = keys.len(),
                "rotation reminders: nothing to remind of"
            );
            return Ok(None);
        };
        let (summary, body, first) = match expiring {
            Some((s, b)) => (
                s,
                format!("{b} {summary}: {body}"),
                vec![KeyId::TailscaleApi],
            ),
            None => (summary, body, Vec::new()),
        };
        let detail = due
            .iter()
            .map(|k| {
                let fp = info(k)
                    .and_then(|i| i.fingerprint.clone())
                    .unwrap_or_else(|| "-".into());
                format!(
                    "{} {} ({} days old)",
                    k.key.as_str(),
                    fp,
                    k.days_old(now).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        for instance in due
            .iter()
            .map(|k| k.instance_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let _ = audit::append(store, Some(instance), "rotation.reminded", &detail).await;
        }
        let reminder = Reminder {
            summary,
            body,
            keys: first.into_iter().chain(due.iter().map(|k| k.key)).collect(),
        };
        tracing::info!(keys = ?reminder.keys, "rotation reminder");
        self.emit(Event::RotationReminder(reminder.clone()));
        Ok(Some(reminder))
    }

    /// The tray daemon's: give the rotation reminders when they are due — at start, then
    /// every `every` (the clock is read each time, so a computer that slept catches up).
    pub fn watch_reminders(&self, every: std::time::Duration) {
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(p) = app.remind_rotations(OffsetDateTime::now_utc()).await {
                    tracing::warn!(code = %p.code, "could not check the rotation reminders");
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}
