//! Usage and spend: what each assistant used (tokens, money), kept on this computer so the
//! status window, the tray and the CLI can show it at once, and so spend caps and alerts
//! have something to go on.
//!
//! - [`gateway`] reads the gateway's `sessions.usage` answer (strictly: a number that isn't
//!   a finite, non-negative amount rejects the whole answer, never shows as a total).
//! - [`ledger`] keeps it in SQLite per UTC day, session and model.
//! - [`sync`] refreshes it incrementally: only the last days are asked for again.
//! - [`period`] says which days a day, week or month of spend covers (UTC, as the
//!   providers count).

pub mod alerts;
pub mod gateway;
pub mod ledger;
pub mod period;
pub mod sync;

use crate::problem::UserFacing;
use serde::Serialize;

pub use ledger::{By, Ledger, Row, Totals};
pub use period::{Day, Period};
pub use sync::{SyncReport, Syncer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Your assistant's usage couldn't be read: {0}")]
    Gateway(#[from] crate::gateway::Error),
    #[error("Your assistant reported usage Clawkeeper can't trust ({0}), so nothing was changed.")]
    BadData(String),
    #[error("Your assistant is still counting its usage.")]
    StillCounting,
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Gateway(e) => e.code_str(),
            Error::BadData(_) => "usage_bad_data",
            Error::StillCounting => "usage_counting",
            Error::Store(e) => e.code(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Gateway(_) => "The numbers shown are from the last time it answered. Clawkeeper tries again on its own.",
            Error::BadData(_) => "The numbers shown are from the last good answer. If this keeps happening, update OpenClaw.",
            Error::StillCounting => "Clawkeeper asks again in a moment; the numbers shown are from the last count.",
            Error::Store(e) => return e.hint(),
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Token counts. `total` is what the gateway counts as total (it may include reasoning
/// tokens that the other four don't).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total: u64,
}

impl Tokens {
    pub fn add(&mut self, o: &Tokens) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.total += o.total;
    }
}

/// Money in US dollars as reported (f64: OpenClaw and OpenRouter both report fractions of
/// a cent; shown rounded).
pub type Dollars = f64;

/// "$0.42", "$6.10", "$0.004" (small amounts keep their first significant digit, so a
/// day of cheap use doesn't read as free).
pub fn format_dollars(d: Dollars) -> String {
    if d == 0.0 {
        "$0.00".into()
    } else if d.abs() < 0.01 {
        format!("${d:.3}")
    } else {
        format!("${d:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_like_money() {
        assert_eq!(format_dollars(0.0), "$0.00");
        assert_eq!(format_dollars(0.42), "$0.42");
        assert_eq!(format_dollars(6.1), "$6.10");
        assert_eq!(format_dollars(0.0042), "$0.004");
        assert_eq!(format_dollars(1234.5), "$1234.50");
    }
}
