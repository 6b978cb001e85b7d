//! Rotation reminders: the person's schedule ("remind me to change keys every 90 days", or
//! never), which keys are due for a change, and the reminder itself — given once per due
//! key, again after [`AGAIN_AFTER_DAYS`] while it is still not changed, and never again once
//! it changed. What was reminded is kept in SQLite (`rotation_reminders`, migration 0008),
//! so a restart doesn't remind twice. The clock is the caller's (`now`): the tray daemon
//! passes the real one, tests any they like.
//!
//! A key's age is its `secret_ages.set_at` ([`super::journal::ages`]): when it was first
//! saved, or last replaced (by a rotation, or by saving a new one).

use super::journal::{self, Age};
use super::KeyId;
use crate::store::{Result, Store};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The setting that holds the schedule: a number of days, or `never`.
pub const SETTING: &str = "rotation.remind_days";
/// The schedule when the person didn't choose: what security guides commonly suggest for
/// keys, and rare enough not to nag.
pub const DEFAULT_EVERY_DAYS: u32 = 90;
/// What the Keys section offers (the CLI takes any number of days up to [`MAX_EVERY_DAYS`]).
pub const CHOICES: [u32; 3] = [30, 90, 180];
pub const MAX_EVERY_DAYS: u32 = 3650;
/// A key still not changed after a reminder is reminded of again after this many days.
pub const AGAIN_AFTER_DAYS: i64 = 7;
/// A reminder also names the keys that fall due within this many hours of it (keys saved
/// the same day fall due together: one notification, not one an hour apart).
pub const TOGETHER_HOURS: i64 = 24;

/// `never` / `off` → no reminders; `1`…`3650` → every that many days. None: not a schedule.
pub fn parse_every(s: &str) -> Option<Option<u32>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("never") || s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let n: u32 = s.trim_end_matches('d').parse().ok()?;
    (1..=MAX_EVERY_DAYS).contains(&n).then_some(Some(n))
}

/// The schedule: every so many days, or None (never).
pub async fn every(store: &Store) -> Result<Option<u32>> {
    Ok(match store.setting(SETTING).await? {
        None => Some(DEFAULT_EVERY_DAYS),
        Some(s) => parse_every(&s).unwrap_or(Some(DEFAULT_EVERY_DAYS)),
    })
}

pub async fn set_every(store: &Store, every: Option<u32>) -> Result<()> {
    let value = match every {
        Some(n) => n.clamp(1, MAX_EVERY_DAYS).to_string(),
        None => "never".to_owned(),
    };
    store.set_setting(SETTING, &value).await
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// One key as the reminders see it at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDue {
    pub instance_id: String,
    pub key: KeyId,
    /// When it was last set (first saved or replaced), if known.
    pub set_at: Option<OffsetDateTime>,
    /// When it is due for a change (None: no schedule, or its age is unknown).
    pub due_at: Option<OffsetDateTime>,
    /// Due now.
    pub due: bool,
    /// When it will be (or would have been) reminded of next; None: never.
    pub next_reminder: Option<OffsetDateTime>,
    /// When it was last reminded of, this version of it.
    pub reminded_at: Option<OffsetDateTime>,
}

impl KeyDue {
    /// Whole days since it was last set.
    pub fn days_old(&self, now: OffsetDateTime) -> Option<i64> {
        self.set_at.map(|t| (now - t).whole_days().max(0))
    }
}

struct Reminded {
    instance_id: String,
    secret: String,
    set_at: String,
    reminded_at: String,
}

async fn reminded(store: &Store) -> Result<Vec<Reminded>> {
    let rows =
        sqlx::query("SELECT instance_id, secret, set_at, reminded_at FROM rotation_reminders")
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Reminded {
                instance_id: r.try_get("instance_id")?,
                secret: r.try_get("secret")?,
                set_at: r.try_get("set_at")?,
                reminded_at: r.try_get("reminded_at")?,
            })
        })
        .collect()
}

/// Where each of `keys` (instance, key) stands at `now` with the schedule `every`.
pub fn due_of(
    keys: &[(String, KeyId)],
    every: Option<u32>,
    ages: &[Age],
    reminded_rows: &[(String, KeyId, String, String)],
    now: OffsetDateTime,
) -> Vec<KeyDue> {
    keys.iter()
        .map(|(instance, key)| {
            let age = ages
                .iter()
                .find(|a| &a.instance_id == instance && a.key == *key);
            let set_at = age.and_then(|a| parse_time(&a.set_at));
            let due_at = every.zip(set_at).map(|(n, t)| t + Duration::days(n.into()));
            let due = due_at.is_some_and(|d| d <= now);
            // A reminder counts only for the version of the key it was about.
            let reminded_at = age.and_then(|a| {
                reminded_rows
                    .iter()
                    .find(|(i, k, s, _)| i == instance && k == key && *s == a.set_at)
                    .and_then(|(_, _, _, at)| parse_time(at))
            });
            let next_reminder = match (due_at, reminded_at) {
                (None, _) => None,
                (Some(d), _) if !due => Some(d),
                (Some(d), Some(r)) => Some((r + Duration::days(AGAIN_AFTER_DAYS)).max(d)),
                (Some(_), None) => Some(now),
            };
            KeyDue {
                instance_id: instance.clone(),
                key: *key,
                set_at,
                due_at,
                due,
                next_reminder,
                reminded_at,
            }
        })
        .collect()
}

/// Where each of `keys` stands at `now` (the schedule and ages from the store).
pub async fn status(
    store: &Store,
    keys: &[(String, KeyId)],
    now: OffsetDateTime,
) -> Result<Vec<KeyDue>> {
    let every = every(store).await?;
    let ages = journal::ages(store).await?;
    let rows: Vec<(String, KeyId, String, String)> = reminded(store)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some((
                r.instance_id,
                KeyId::parse(&r.secret)?,
                r.set_at,
                r.reminded_at,
            ))
        })
        .collect();
    Ok(due_of(keys, every, &ages, &rows, now))
}

/// The reminder to give now, if one is: every due key of `keys`, when at least one of them
/// was not reminded of yet (this version of it) or not for [`AGAIN_AFTER_DAYS`]. The keys
/// in it are noted as reminded at `now`, so the same reminder is not given again (across
/// restarts). Empty: nothing to say now.
pub async fn take(
    store: &Store,
    keys: &[(String, KeyId)],
    now: OffsetDateTime,
) -> Result<Vec<KeyDue>> {
    let all = status(store, keys, now).await?;
    if !all
        .iter()
        .any(|k| k.due && k.next_reminder.is_some_and(|t| t <= now))
    {
        return Ok(Vec::new());
    }
    let soon = now + Duration::hours(TOGETHER_HOURS);
    let due: Vec<KeyDue> = all
        .into_iter()
        .filter(|k| k.due_at.is_some_and(|d| d <= soon))
        .collect();
    let ages = journal::ages(store).await?;
    let at = format_time(now);
    for k in &due {
        let Some(age) = ages
            .iter()
            .find(|a| a.instance_id == k.instance_id && a.key == k.key)
        else {
            continue;
        };
        sqlx::query(
            "INSERT INTO rotation_reminders (instance_id, secret, set_at, reminded_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(instance_id, secret) DO UPDATE SET set_at = ?3, reminded_at = ?4",
        )
        .bind(&k.instance_id)
        .bind(k.key.as_str())
        .bind(&age.set_at)
        .bind(&at)
        .execute(store.pool())
        .await?;
    }
    Ok(due)
}

/// "92 days old", "over a year old".
pub fn age_words(days: i64) -> String {
    match days {
        0 => "less than a day old".into(),
        1 => "1 day old".into(),
        d if d < 365 => format!("{d} days old"),
        d if d < 730 => "over a year old".into(),
        d => format!("{} years old", d / 365),
    }
}

/// The notification's title and text for the due keys: (label, days old, rotates in one
/// click). None when there are none.
pub fn words(due: &[(&str, Option<i64>, bool)]) -> Option<(String, String)> {
    let first = due.first()?;
    let one_click = due.iter().all(|(_, _, c)| *c);
    let how = if one_click {
        "Open Keys to change it in one click; your assistant keeps working."
    } else {
        "Open Keys to see how to change it."
    };
    if due.len() == 1 {
        let (label, days, _) = first;
        let age = days.map(age_words).unwrap_or_else(|| "due".into());
        return Some((
            format!("Time to change your {}", lower_first(label)),
            format!("It is {age}. {how}"),
        ));
    }
    let list: Vec<String> = due
        .iter()
        .map(|(label, days, _)| match days {
            Some(d) => format!("{} ({})", lower_first(label), age_words(*d)),
            None => lower_first(label),
        })
        .collect();
    let how = if one_click {
        "Open Keys to change them; your assistant keeps working."
    } else {
        "Open Keys to change them."
    };
    Some((
        format!("Time to change {} keys", due.len()),
        format!("{}. {how}", upper_first(&list.join(", "))),
    ))
}

fn lower_first(s: &str) -> String {
    // Labels start with a capital ("Assistant access token"); keep acronyms ("SSH") as they are.
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::journal::note_set;

    fn keys() -> Vec<(String, KeyId)> {
        vec![
            ("local".into(), KeyId::GatewayToken),
            ("local".into(), KeyId::ProviderKey),
        ]
    }

    fn days(n: i64) -> Duration {
        Duration::days(n)
    }

    /// A store whose gateway token was set now (its real clock), and that instant.
    async fn store_with_token() -> (Store, OffsetDateTime) {
        let store = Store::open_memory().await.unwrap();
        note_set(
            &store,
            "local",
            KeyId::GatewayToken,
            Some("sha256:aa"),
            false,
        )
        .await
        .unwrap();
        let set = parse_time(&journal::ages(&store).await.unwrap()[0].set_at).unwrap();
        (store, set)
    }

    #[test]
    fn schedules_parse() {
        assert_eq!(parse_every("never"), Some(None));
        assert_eq!(parse_every(" Off "), Some(None));
        assert_eq!(parse_every("90"), Some(Some(90)));
        assert_eq!(parse_every("30d"), Some(Some(30)));
        assert_eq!(parse_every("0"), None);
        assert_eq!(parse_every("99999"), None);
        assert_eq!(parse_every("soon"), None);
    }

    #[tokio::test]
    async fn ninety_days_unless_chosen() {
        let store = Store::open_memory().await.unwrap();
        assert_eq!(every(&store).await.unwrap(), Some(90));
        set_every(&store, Some(30)).await.unwrap();
        assert_eq!(every(&store).await.unwrap(), Some(30));
        set_every(&store, None).await.unwrap();
        assert_eq!(every(&store).await.unwrap(), None);
        store.set_setting(SETTING, "garbage").await.unwrap();
        assert_eq!(every(&store).await.unwrap(), Some(90));
    }

    #[tokio::test]
    async fn due_after_the_period_from_the_keys_age() {
        let (store, set) = store_with_token().await;
        let s = status(&store, &keys(), set + days(89)).await.unwrap();
        let token = &s[0];
        assert_eq!(token.due_at, Some(set + days(90)));
        assert!(!token.due);
        assert_eq!(token.next_reminder, Some(set + days(90)));
        assert_eq!(token.days_old(set + days(89)), Some(89));
        // The provider key has no known age: never due.
        assert_eq!((s[1].due_at, s[1].due), (None, false));
        let s = status(&store, &keys(), set + days(90)).await.unwrap();
        assert!(s[0].due);
        // Nothing to remind of before it is due.
        assert!(take(&store, &keys(), set + days(89))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn reminds_once_then_again_after_a_week_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let (store, _) = Store::open(&db).await.unwrap();
        note_set(
            &store,
            "local",
            KeyId::GatewayToken,
            Some("sha256:aa"),
            false,
        )
        .await
        .unwrap();
        let set = parse_time(&journal::ages(&store).await.unwrap()[0].set_at).unwrap();
        let day91 = set + days(91);
        let r = take(&store, &keys(), day91).await.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key, KeyId::GatewayToken);
        assert!(take(&store, &keys(), day91 + Duration::hours(1))
            .await
            .unwrap()
            .is_empty());
        drop(store);

        // Restarted: still reminded.
        let (store, _) = Store::open(&db).await.unwrap();
        assert!(take(&store, &keys(), day91 + days(6))
            .await
            .unwrap()
            .is_empty());
        let s = status(&store, &keys(), day91 + days(6)).await.unwrap();
        assert_eq!(s[0].next_reminder, Some(day91 + days(7)));
        assert_eq!(s[0].reminded_at, Some(day91));
        // Still not changed a week later: once more.
        assert_eq!(
            take(&store, &keys(), day91 + days(7)).await.unwrap().len(),
            1
        );
        assert!(take(&store, &keys(), day91 + days(8))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn never_reminds_when_never() {
        let (store, set) = store_with_token().await;
        set_every(&store, None).await.unwrap();
        assert!(take(&store, &keys(), set + days(1000))
            .await
            .unwrap()
            .is_empty());
        let s = status(&store, &keys(), set + days(1000)).await.unwrap();
        assert_eq!(
            (s[0].due, s[0].due_at, s[0].next_reminder),
            (false, None, None)
        );
        // A shorter schedule makes it due sooner.
        set_every(&store, Some(30)).await.unwrap();
        assert_eq!(
            take(&store, &keys(), set + days(31)).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn a_changed_key_starts_over() {
        let (store, set) = store_with_token().await;
        assert_eq!(
            take(&store, &keys(), set + days(91)).await.unwrap().len(),
            1
        );
        // Rotated (its set_at moves on to the real now, which the test clock treats as
        // the day it was rotated).
        note_set(
            &store,
            "local",
            KeyId::GatewayToken,
            Some("sha256:bb"),
            true,
        )
        .await
        .unwrap();
        let rotated = parse_time(&journal::ages(&store).await.unwrap()[0].set_at).unwrap();
        let s = status(&store, &keys(), rotated + days(1)).await.unwrap();
        assert!(!s[0].due);
        assert_eq!(
            s[0].reminded_at, None,
            "the old reminder was about the old key"
        );
        assert_eq!(s[0].next_reminder, Some(rotated + days(90)));
        assert!(take(&store, &keys(), rotated + days(89))
            .await
            .unwrap()
            .is_empty());
        // Due again one period after the rotation: reminded at once (not a week later).
        assert_eq!(
            take(&store, &keys(), rotated + days(90))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_newly_due_key_brings_the_others_along_once() {
        let (store, set) = store_with_token().await;
        assert_eq!(
            take(&store, &keys(), set + days(91)).await.unwrap().len(),
            1
        );
        note_set(
            &store,
            "local",
            KeyId::ProviderKey,
            Some("sha256:cc"),
            false,
        )
        .await
        .unwrap();
        let provider_set = parse_time(
            &journal::ages(&store)
                .await
                .unwrap()
                .iter()
                .find(|a| a.key == KeyId::ProviderKey)
                .unwrap()
                .set_at,
        )
        .unwrap();
        // The provider key becomes due 90 days after it was saved: one reminder naming
        // both (the token is still due), then quiet.
        let at = provider_set + days(90);
        let r = take(&store, &keys(), at).await.unwrap();
        assert_eq!(r.len(), 2);
        assert!(take(&store, &keys(), at + days(1))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn keys_falling_due_the_same_day_are_reminded_of_together() {
        let (store, set) = store_with_token().await;
        note_set(
            &store,
            "local",
            KeyId::ProviderKey,
            Some("sha256:cc"),
            false,
        )
        .await
        .unwrap();
        // The token fell due a moment before the provider key: one reminder with both.
        let r = take(&store, &keys(), set + days(90)).await.unwrap();
        assert_eq!(r.len(), 2, "{r:?}");
        // Not a second one when the provider key's own due time comes an instant later.
        assert!(take(&store, &keys(), set + days(90) + Duration::hours(1))
            .await
            .unwrap()
            .is_empty());
    }

    #[test]
    fn words_say_which_keys_and_how_old() {
        assert_eq!(words(&[]), None);
        let (t, b) = words(&[("Assistant access token", Some(92), true)]).unwrap();
        assert_eq!(t, "Time to change your assistant access token");
        assert_eq!(
            b,
            "It is 92 days old. Open Keys to change it in one click; your assistant keeps working."
        );
        let (t, b) = words(&[
            ("Assistant access token", Some(92), true),
            ("Model provider key", Some(400), false),
        ])
        .unwrap();
        assert_eq!(t, "Time to change 2 keys");
        assert_eq!(
            b,
            "Assistant access token (92 days old), model provider key (over a year old). Open Keys to change them."
        );
    }
}
