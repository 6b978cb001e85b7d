//! Days and spend periods. Every day here is a UTC day — what OpenClaw's `mode: "utc"`,
//! OpenRouter's `usage_daily` and its `limit_reset` all count in — and the UI says so.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Weekday};

/// One UTC calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub Date);

impl Day {
    /// Today in UTC by this computer's clock.
    pub fn today() -> Self {
        Self(OffsetDateTime::now_utc().date())
    }

    /// `YYYY-MM-DD` and nothing else (a real calendar day).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 10 {
            return None;
        }
        Date::parse(s, format_description!("[year]-[month]-[day]"))
            .ok()
            .map(Self)
    }

    pub fn plus(self, days: i64) -> Self {
        Self(self.0.saturating_add(Duration::days(days)))
    }

    /// Days from `self` to `other` (negative if `other` is earlier).
    pub fn days_until(self, other: Day) -> i64 {
        (other.0 - self.0).whole_days()
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Day::parse(&s).ok_or_else(|| serde::de::Error::custom("expected a YYYY-MM-DD date"))
    }
}

/// How long a spend cap runs before it starts again (OpenRouter's `limit_reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Daily,
    /// Monday to Sunday.
    Weekly,
    /// A calendar month.
    Monthly,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" | "day" => Some(Period::Daily),
            "weekly" | "week" => Some(Period::Weekly),
            "monthly" | "month" => Some(Period::Monthly),
            _ => None,
        }
    }

    /// "today", "this week", "this month".
    pub fn this(self) -> &'static str {
        match self {
            Period::Daily => "today",
            Period::Weekly => "this week",
            Period::Monthly => "this month",
        }
    }

    /// The first and last day of the period that contains `day`.
    pub fn bounds(self, day: Day) -> (Day, Day) {
        match self {
            Period::Daily => (day, day),
            Period::Weekly => {
                let back = i64::from(day.0.weekday().number_days_from_monday());
                let start = day.plus(-back);
                (start, start.plus(6))
            }
            Period::Monthly => {
                let start = day.0.replace_day(1).map(Day).unwrap_or(day);
                let next = match start.0.month() {
                    time::Month::December => {
                        Date::from_calendar_date(start.0.year() + 1, time::Month::January, 1)
                    }
                    m => Date::from_calendar_date(start.0.year(), m.next(), 1),
                };
                let end = next.map(|n| Day(n).plus(-1)).unwrap_or(day);
                (start, end)
            }
        }
    }
}

/// Monday of `day`'s week (for the weekly views).
pub fn monday_of(day: Day) -> Day {
    let mut d = day;
    while d.0.weekday() != Weekday::Monday {
        d = d.plus(-1);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    #[test]
    fn days_parse_strictly() {
        assert_eq!(d("2026-11-26").to_string(), "2026-11-26");
        assert!(Day::parse("2026-02-30").is_none());
        assert!(Day::parse("2026-1-02").is_none());
        assert!(Day::parse("2026-11-26T00:00").is_none());
        assert!(Day::parse("").is_none());
        assert_eq!(d("2026-12-31").plus(1), d("2027-01-01"));
        assert_eq!(d("2026-03-01").days_until(d("2026-02-27")), -2);
    }

    #[test]
    fn periods_roll_over_on_utc_boundaries() {
        assert_eq!(
            Period::Daily.bounds(d("2026-11-26")),
            (d("2026-11-26"), d("2026-11-26"))
        );
        // 2026-11-26 is a Thursday.
        assert_eq!(
            Period::Weekly.bounds(d("2026-11-26")),
            (d("2026-11-23"), d("2026-11-29"))
        );
        assert_eq!(
            Period::Weekly.bounds(d("2026-11-23")),
            (d("2026-11-23"), d("2026-11-29"))
        );
        assert_eq!(
            Period::Weekly.bounds(d("2026-11-29")),
            (d("2026-11-23"), d("2026-11-29"))
        );
        assert_eq!(
            Period::Monthly.bounds(d("2026-12-15")),
            (d("2026-12-01"), d("2026-12-31"))
        );
        assert_eq!(
            Period::Monthly.bounds(d("2028-02-29")),
            (d("2028-02-01"), d("2028-02-29"))
        );
        assert_eq!(monday_of(d("2026-11-26")), d("2026-11-23"));
    }
}
