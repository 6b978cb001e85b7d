//! What the UI and the CLI show when something goes wrong: a stable code, one sentence
//! of what happened, and one sentence of what to do next. Every module error converts
//! into a [`Problem`]; none of them ever carries a secret.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable, machine-readable (`keychain_locked`, `provider_auth`, `port_in_use`, …).
    pub code: String,
    /// What happened, in plain words.
    pub message: String,
    /// What the person can do next, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(code: &str, message: impl Into<String>, hint: Option<&str>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Implemented by each module's error: the code and hint the person sees.
pub trait UserFacing: std::error::Error {
    fn code(&self) -> &'static str;
    fn hint(&self) -> Option<&'static str> {
        None
    }
    fn problem(&self) -> Problem {
        Problem::new(self.code(), self.to_string(), self.hint())
    }
}
