//! When the Tailscale API access token expires (Tailscale makes them last 90 days at most),
//! as the keys list shows it and the reminders warn of it: asked of the API
//! (`GET /tailnet/-/keys/{the token's key id}`), kept in the store's settings with the
//! token's fingerprint (so a new token is asked about afresh), and warned of once
//! [`WARN_DAYS`] before — again a week later while the same token is still in use. OAuth
//! clients don't expire: no warning.

use super::tailnet::client_for;
use super::Clawkeeper;
use crate::rotation::tailscale_api;
use crate::tailnet::{credentials_ref, Credentials};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Warn this many days before the token expires.
pub const WARN_DAYS: i64 = 14;
/// The cache entry (settings) and the note of the last warning.
const CACHE: &str = "tailnet.api_expiry";
const WARNED: &str = "tailnet.api_expiry_warned";
/// How old the cached expiry may be for the keys list (the reminders always ask afresh).
const FRESH_FOR: time::Duration = time::Duration::hours(12);
/// How long the keys list waits for the API.
const ASK_TIMEOUT: Duration = Duration::from_secs(4);

/// What is known of the saved credential's expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessExpiry {
    /// The saved credential's fingerprint (never the credential).
    pub fingerprint: String,
    /// An OAuth client: it doesn't expire.
    pub oauth: bool,
    /// When the token stops working (`None`: never, or not known yet).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// When the API last answered (`None`: not yet, e.g. it didn't answer).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    /// When it was last asked, answered or not (so that a Keys list opened while the API
    /// doesn't answer doesn't wait for it each time).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub asked_at: Option<OffsetDateTime>,
}

/// The long date a person reads: "6 December 2026".
pub fn long_date(t: OffsetDateTime) -> String {
    format!("{} {} {}", t.day(), t.month(), t.year())
}

/// The warning's title and text, if `expires` is within [`WARN_DAYS`] of `now`.
pub fn warning(expires: OffsetDateTime, now: OffsetDateTime) -> Option<(String, String)> {
    if expires - now > time::Duration::days(WARN_DAYS) {
        return None;
    }
    let date = long_date(expires);
    Some(if expires <= now {
        (
            "Your Tailscale access for Clawkeeper has expired".to_owned(),
            format!("Your Tailscale access for Clawkeeper expired on {date} — make a new one and paste it in Keys."),
        )
    } else {
        (
            "Your Tailscale access for Clawkeeper expires soon".to_owned(),
            format!("Your Tailscale access for Clawkeeper expires on {date} — make a new one and paste it in Keys."),
        )
    })
}

impl Clawkeeper {
    /// The saved Tailscale credential's expiry (`None`: none saved). From the cache when it
    /// is about this credential and fresh (unless `ask`), else from the API; when the API
    /// doesn't answer, what the cache knew of this credential.
    pub async fn tailscale_access_expiry(&self, ask: bool) -> Option<AccessExpiry> {
        let secret = self.inner.vault.read(&credentials_ref()).await.ok()?;
        let creds = Credentials::from_pasted(secret.clone()).ok()?;
        let fingerprint = creds.secret().fingerprint();
        let store = &self.inner.store;
        let cached: Option<AccessExpiry> = store
            .setting(CACHE)
            .await
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
            .filter(|c: &AccessExpiry| c.fingerprint == fingerprint);
        if creds.is_oauth() {
            return Some(AccessExpiry {
                fingerprint,
                oauth: true,
                expires: None,
                checked_at: None,
                asked_at: None,
            });
        }
        let now = OffsetDateTime::now_utc();
        if let Some(c) = &cached {
            let last = c.asked_at.or(c.checked_at);
            if !ask && last.is_some_and(|t| now - t < FRESH_FOR) {
                return cached;
            }
        }
        let save = |e: &AccessExpiry| {
            let text = serde_json::to_string(e).ok();
            async move {
                if let Some(text) = text {
                    let _ = store.set_setting(CACHE, &text).await;
                }
            }
        };
        let asked = async {
            let client = client_for(creds).ok()?;
            tokio::time::timeout(ASK_TIMEOUT, tailscale_api::expiry(&client, &secret))
                .await
                .ok()
        }
        .await;
        match asked {
            Some(Ok(expires)) => {
                let e = AccessExpiry {
                    fingerprint,
                    oauth: false,
                    expires,
                    checked_at: Some(now),
                    asked_at: Some(now),
                };
                save(&e).await;
                Some(e)
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::info!(error = %e, "could not ask Tailscale when its access token expires");
                }
                let mut e = cached.unwrap_or(AccessExpiry {
                    fingerprint,
                    oauth: false,
                    expires: None,
                    checked_at: None,
                    asked_at: None,
                });
                e.asked_at = Some(now);
                save(&e).await;
                Some(e)
            }
        }
    }

    /// The expiry warning to give at `now`, if one is due: the token expires within
    /// [`WARN_DAYS`] and this token wasn't warned of yet, or not for
    /// [`crate::rotation::remind::AGAIN_AFTER_DAYS`]. Noted as given (across restarts).
    pub(super) async fn tailscale_expiry_warning(
        &self,
        now: OffsetDateTime,
    ) -> Option<(String, String)> {
        let e = self.tailscale_access_expiry(true).await?;
        let words = warning(e.expires?, now)?;
        let store = &self.inner.store;
        let last = store.setting(WARNED).await.ok().flatten().and_then(|t| {
            let (fp, at) = t.split_once(' ')?;
            (fp == e.fingerprint)
                .then(|| OffsetDateTime::parse(at, &Rfc3339).ok())
                .flatten()
        });
        let again = time::Duration::days(crate::rotation::remind::AGAIN_AFTER_DAYS);
        if last.is_some_and(|t| now - t < again) {
            return None;
        }
        let at = crate::rotation::remind::format_time(now);
        let _ = store
            .set_setting(WARNED, &format!("{} {at}", e.fingerprint))
            .await;
        let _ = crate::audit::append(
            store,
            None,
            "tailnet.key_expiry_warned",
            &format!(
                "Tailscale API access token {} expires {}",
                e.fingerprint,
                e.expires
                    .map(crate::rotation::remind::format_time)
                    .unwrap_or_default()
            ),
        )
        .await;
        Some(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_comes_two_weeks_before() {
        let now = time::macros::datetime!(2026-11-26 12:00 UTC);
        assert_eq!(warning(now + time::Duration::days(15), now), None);
        let (title, body) = warning(now + time::Duration::days(10), now).unwrap();
        assert_eq!(title, "Your Tailscale access for Clawkeeper expires soon");
        assert_eq!(
            body,
            "Your Tailscale access for Clawkeeper expires on 6 December 2026 — make a new one and paste it in Keys."
        );
        let (title, _) = warning(now - time::Duration::days(1), now).unwrap();
        assert!(title.contains("has expired"));
    }
}
