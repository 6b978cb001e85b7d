//! Spend caps and alerts: the person's cap (an amount per day, week or month), the levels
//! to be told at (50/80/100 % by default), and unusual days (more than 3× the trailing
//! median). Each alert is given once per period — the `spend_alerts` table remembers,
//! across restarts — and crossing several levels at once gives one alert, the highest.

use super::period::{Day, Period};
use super::{format_dollars, Dollars, Result};
use crate::store::{classify, Store};
use serde::{Deserialize, Serialize};

/// The setting that holds the cap (JSON of [`Cap`]).
pub const CAP_SETTING: &str = "spend.cap";

/// Alert levels when the person didn't choose.
pub const DEFAULT_LEVELS: [u8; 3] = [50, 80, 100];

/// A day is unusual when it is above this many times the trailing median…
pub const SPIKE_FACTOR: f64 = 3.0;
/// …of this many days before it…
pub const SPIKE_WINDOW: i64 = 14;
/// …and costs at least this much (a cent against a tenth of a cent is no news).
pub const SPIKE_MIN: Dollars = 0.10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cap {
    /// US dollars per period.
    pub amount: Dollars,
    pub period: Period,
    /// Percent of the cap to be told at, ascending.
    #[serde(default = "default_levels")]
    pub levels: Vec<u8>,
    /// Stop the assistant's model use at the cap (until the person resumes it).
    #[serde(default)]
    pub pause_at_cap: bool,
}

fn default_levels() -> Vec<u8> {
    DEFAULT_LEVELS.to_vec()
}

impl Cap {
    /// A cap as the person entered it, checked: a positive, finite amount, levels between 1
    /// and 100.
    pub fn new(
        amount: Dollars,
        period: Period,
        levels: Option<Vec<u8>>,
        pause_at_cap: bool,
    ) -> std::result::Result<Self, &'static str> {
        if !amount.is_finite() || amount <= 0.0 {
            return Err("The cap must be an amount above zero.");
        }
        if amount > 1_000_000.0 {
            return Err("The cap is too large.");
        }
        let mut levels = levels.unwrap_or_else(default_levels);
        if levels.iter().any(|l| *l == 0 || *l > 100) {
            return Err("Alert levels are percentages from 1 to 100.");
        }
        levels.sort_unstable();
        levels.dedup();
        Ok(Self {
            amount,
            period,
            levels,
            pause_at_cap,
        })
    }

    pub async fn load(store: &Store) -> Result<Option<Self>> {
        Ok(store
            .setting(CAP_SETTING)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok()))
    }

    pub async fn save(&self, store: &Store) -> Result<()> {
        let s = serde_json::to_string(self).map_err(|e| super::Error::BadData(e.to_string()))?;
        store.set_setting(CAP_SETTING, &s).await?;
        Ok(())
    }

    pub async fn clear(store: &Store) -> Result<()> {
        store.delete_setting(CAP_SETTING).await?;
        Ok(())
    }
}

/// Something to tell the person about spend.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Alert {
    /// `level` percent of the cap is used in the period that started `period_start`.
    Threshold {
        level: u8,
        period: Period,
        period_start: Day,
        spent: Dollars,
        cap: Dollars,
    },
    /// `day` cost more than [`SPIKE_FACTOR`]× the median of the days before it.
    Spike {
        day: Day,
        spent: Dollars,
        median: Dollars,
    },
}

impl Alert {
    /// The notification's title and text.
    pub fn words(&self) -> (String, String) {
        match self {
            Alert::Threshold {
                level,
                period,
                spent,
                cap,
                ..
            } if *level >= 100 => (
                format!("Spend cap reached {}", period.this()),
                format!(
                    "Your assistant has used {} of your {} {} cap. Open Status → Usage to raise the cap or resume.",
                    format_dollars(*spent),
                    format_dollars(*cap),
                    period.name()
                ),
            ),
            Alert::Threshold {
                level,
                period,
                spent,
                cap,
                ..
            } => (
                format!("{level}% of your spend cap used {}", period.this()),
                format!(
                    "Your assistant has used {} of your {} {} cap.",
                    format_dollars(*spent),
                    format_dollars(*cap),
                    period.name()
                ),
            ),
            Alert::Spike { spent, median, .. } => (
                "Unusual spending today".into(),
                format!(
                    "Your assistant has used {} today; a usual day is about {}. Open Status → Usage to see which model or channel.",
                    format_dollars(*spent),
                    format_dollars(*median)
                ),
            ),
        }
    }

    fn key(&self) -> (&'static str, Day, u8) {
        match self {
            Alert::Threshold {
                level,
                period_start,
                ..
            } => ("threshold", *period_start, *level),
            Alert::Spike { day, .. } => ("spike", *day, 0),
        }
    }
}

/// The levels of `cap` that `spent` has reached, ascending.
pub fn reached(cap: &Cap, spent: Dollars) -> Vec<u8> {
    cap.levels
        .iter()
        .copied()
        .filter(|l| spent + 1e-9 >= cap.amount * f64::from(*l) / 100.0)
        .collect()
}

/// The median of `values` (0 for none).
fn median(values: &mut [Dollars]) -> Dollars {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Whether `day` is unusual against the [`SPIKE_WINDOW`] days before it. `daily` holds the
/// days with use; days without use count as 0, from the first day with use on (a new
/// assistant needs a week of history before anything counts as unusual).
pub fn spike(daily: &[(Day, Dollars)], day: Day) -> Option<Alert> {
    let spent = daily.iter().find(|(d, _)| *d == day).map(|(_, c)| *c)?;
    let first = daily.iter().map(|(d, _)| *d).min()?;
    let start = day.plus(-SPIKE_WINDOW).max(first);
    if start.days_until(day) < 7 {
        return None;
    }
    let mut window: Vec<Dollars> = (0..start.days_until(day))
        .map(|i| {
            let d = start.plus(i);
            daily.iter().find(|(x, _)| *x == d).map_or(0.0, |(_, c)| *c)
        })
        .collect();
    let median = median(&mut window);
    (spent >= SPIKE_MIN && median > 0.0 && spent > SPIKE_FACTOR * median).then_some(Alert::Spike {
        day,
        spent,
        median,
    })
}

/// The alerts due now: the highest level of the cap reached in the current period, and a
/// spike today. Records them and returns only those not given before (each once per
/// period); lower levels reached at the same time are recorded silently.
pub async fn due(
    store: &Store,
    cap: Option<&Cap>,
    spent_in_period: Dollars,
    daily: &[(Day, Dollars)],
    today: Day,
) -> Result<Vec<Alert>> {
    let mut out = Vec::new();
    if let Some(cap) = cap {
        let (period_start, _) = cap.period.bounds(today);
        let levels = reached(cap, spent_in_period);
        if let Some(top) = levels.last() {
            let mut fresh_top = None;
            for level in &levels {
                let a = Alert::Threshold {
                    level: *level,
                    period: cap.period,
                    period_start,
                    spent: spent_in_period,
                    cap: cap.amount,
                };
                if record(store, &a).await? && level == top {
                    fresh_top = Some(a);
                }
            }
            out.extend(fresh_top);
        }
    }
    if let Some(a) = spike(daily, today) {
        if record(store, &a).await? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Note an alert as given; false when it had been given already.
async fn record(store: &Store, a: &Alert) -> Result<bool> {
    let (kind, day, level) = a.key();
    once(store, kind, day, level).await
}

/// Note that `kind` happened for the period (or day) starting `day` at `level`; false
/// when it had already. What makes each alert (and each pause at the cap) once per period.
pub async fn once(store: &Store, kind: &str, day: Day, level: u8) -> Result<bool> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO spend_alerts (kind, period_start, level, fired_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .bind(kind)
    .bind(day.to_string())
    .bind(i64::from(level))
    .bind(crate::time::now_rfc3339())
    .execute(store.pool())
    .await
    .map_err(classify)?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    fn monthly(amount: Dollars) -> Cap {
        Cap::new(amount, Period::Monthly, None, false).unwrap()
    }

    #[test]
    fn caps_are_checked() {
        assert!(Cap::new(0.0, Period::Daily, None, false).is_err());
        assert!(Cap::new(-5.0, Period::Daily, None, false).is_err());
        assert!(Cap::new(f64::NAN, Period::Daily, None, false).is_err());
        assert!(Cap::new(5.0, Period::Daily, Some(vec![0]), false).is_err());
        assert!(Cap::new(5.0, Period::Daily, Some(vec![120]), false).is_err());
        let c = Cap::new(5.0, Period::Daily, Some(vec![90, 25, 90]), false).unwrap();
        assert_eq!(c.levels, vec![25, 90]);
    }

    #[test]
    fn levels_reached() {
        let c = monthly(10.0);
        assert_eq!(reached(&c, 4.99), Vec::<u8>::new());
        assert_eq!(reached(&c, 5.0), vec![50]);
        assert_eq!(reached(&c, 8.0), vec![50, 80]);
        assert_eq!(reached(&c, 12.0), vec![50, 80, 100]);
    }

    #[test]
    fn spikes_need_history_and_a_real_jump() {
        let mut daily: Vec<(Day, Dollars)> =
            (0..14).map(|i| (d("2026-11-12").plus(i), 1.0)).collect();
        daily.push((d("2026-11-26"), 3.5));
        let a = spike(&daily, d("2026-11-26")).unwrap();
        assert!(matches!(a, Alert::Spike { median, .. } if (median - 1.0).abs() < 1e-12));
        // 3× exactly is not above 3×.
        daily.last_mut().unwrap().1 = 3.0;
        assert!(spike(&daily, d("2026-11-26")).is_none());
        // Only 3 days of history: nothing is unusual yet.
        let short = vec![(d("2026-11-23"), 1.0), (d("2026-11-26"), 50.0)];
        assert!(spike(&short, d("2026-11-26")).is_none());
        // Mostly idle days: the median is 0, so no spike (there is no usual day).
        let idle = vec![(d("2026-11-01"), 1.0), (d("2026-11-26"), 50.0)];
        assert!(spike(&idle, d("2026-11-26")).is_none());
        // Cents are not news.
        let mut cheap: Vec<(Day, Dollars)> =
            (0..14).map(|i| (d("2026-11-12").plus(i), 0.001)).collect();
        cheap.push((d("2026-11-26"), 0.05));
        assert!(spike(&cheap, d("2026-11-26")).is_none());
    }

    #[tokio::test]
    async fn each_alert_once_per_period_and_only_the_highest() {
        let store = Store::open_memory().await.unwrap();
        let cap = monthly(10.0);
        let today = d("2026-11-26");
        assert!(due(&store, Some(&cap), 1.0, &[], today)
            .await
            .unwrap()
            .is_empty());
        let a = due(&store, Some(&cap), 8.5, &[], today).await.unwrap();
        assert_eq!(a.len(), 1);
        assert!(matches!(a[0], Alert::Threshold { level: 80, .. }), "{a:?}");
        assert!(
            due(&store, Some(&cap), 9.0, &[], today)
                .await
                .unwrap()
                .is_empty(),
            "once"
        );
        let a = due(&store, Some(&cap), 10.0, &[], today).await.unwrap();
        assert!(matches!(a[0], Alert::Threshold { level: 100, .. }));
        assert!(a[0].words().0.contains("cap reached"));
        // A new month starts over.
        let a = due(&store, Some(&cap), 6.0, &[], d("2026-12-01"))
            .await
            .unwrap();
        assert!(
            matches!(a[0], Alert::Threshold { level: 50, period_start, .. } if period_start == d("2026-12-01"))
        );
        // No cap: only spikes.
        assert!(due(&store, None, 100.0, &[], today)
            .await
            .unwrap()
            .is_empty());
    }
}
