//! What can go wrong when talking to a cloud provider, in words a person can act on.
//!
//! Hetzner answers every failure with `{"error":{"code","message","details"}}` and a matching
//! HTTP status. We branch on `code` (the documented, stable part), not on the status or the
//! message; a code we don't know is kept verbatim so that support can look it up.

use crate::problem::UserFacing;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Hetzner did not accept your API token.")]
    Unauthorized,
    #[error("Your Hetzner API token can only read, so Clawkeeper can't create or remove anything with it.")]
    ReadOnlyToken,
    #[error("Hetzner refused this request: {message}")]
    Forbidden { message: String },
    #[error("Hetzner did not accept {}: {message}", field.as_deref().map(|f| format!("the value for '{f}'")).unwrap_or_else(|| "the request".to_owned()))]
    InvalidInput {
        field: Option<String>,
        message: String,
    },
    #[error("Your Hetzner project's limit is reached: {message}")]
    LimitReached { message: String },
    #[error("Something with the same name already exists in your Hetzner project: {message}")]
    NameTaken { message: String },
    #[error("Hetzner couldn't find it: {message}")]
    NotFound { message: String },
    #[error("Hetzner is receiving too many requests from your project right now.")]
    RateLimited { message: String },
    #[error("Hetzner reported a conflicting change: {message}")]
    Conflict { message: String },
    #[error("Hetzner is still busy with another change to this resource.")]
    Locked { message: String },
    #[error("Hetzner did not answer in time.")]
    Timeout { message: String },
    #[error("Hetzner is temporarily unavailable ({code}): {message}")]
    Unavailable { code: String, message: String },
    #[error("Hetzner reported an error ({code}, HTTP {status}): {message}")]
    Api {
        code: String,
        status: u16,
        message: String,
    },
    #[error("Hetzner can't be reached: {message}")]
    Network {
        message: String,
        /// The request may have reached Hetzner and been carried out (the connection broke
        /// after it was sent).
        maybe_applied: bool,
    },
    #[error("Hetzner sent an answer Clawkeeper can't read: {0}")]
    BadResponse(String),
    #[error("The server's start-up script is {0} bytes; Hetzner accepts at most 32768.")]
    UserDataTooLarge(usize),
    #[error("Hetzner could not finish '{command}': {message} ({code})")]
    ActionFailed {
        command: String,
        code: String,
        message: String,
    },
    #[error("Waiting for {0} took too long.")]
    WaitTimedOut(String),
    #[error("Cancelled.")]
    Cancelled,
    #[error("Not a usable instance name for the cloud: {0:?}")]
    BadInstanceId(String),
    #[error("Clawkeeper couldn't record the cloud resources it creates: {0}")]
    Journal(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Journal(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The provider's own error code, when the error came from its envelope.
    pub fn api_code(&self) -> Option<&str> {
        Some(match self {
            Error::Unauthorized => "unauthorized",
            Error::ReadOnlyToken => "token_readonly",
            Error::Forbidden { .. } => "forbidden",
            Error::InvalidInput { .. } => "invalid_input",
            Error::NameTaken { .. } => "uniqueness_error",
            Error::NotFound { .. } => "not_found",
            Error::RateLimited { .. } => "rate_limit_exceeded",
            Error::Conflict { .. } => "conflict",
            Error::Locked { .. } => "locked",
            Error::Timeout { .. } => "timeout",
            Error::Unavailable { code, .. } | Error::Api { code, .. } => code,
            // Two codes share this variant; the message says which.
            Error::LimitReached { .. } => "resource_limit_exceeded",
            _ => return None,
        })
    }

    /// Whether a request that failed this way may nevertheless have been carried out by the
    /// provider. Only then is a create followed by a look-up by label before it is repeated.
    /// An error envelope with a client-side code (`invalid_input`, `conflict`, `locked`,
    /// `rate_limit_exceeded`, …) means the request was refused as a whole.
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::Unavailable { .. }
                | Error::Network {
                    maybe_applied: true,
                    ..
                }
                | Error::BadResponse(_)
        ) || matches!(self, Error::Api { status, .. } if *status >= 500)
    }

    /// Whether the provider certainly did not carry out the request: it answered with a
    /// refusal, or the request was never sent. Only then may a journal intent be marked
    /// absent.
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::Unauthorized
            | Error::ReadOnlyToken
            | Error::Forbidden { .. }
            | Error::InvalidInput { .. }
            | Error::LimitReached { .. }
            | Error::NotFound { .. }
            | Error::RateLimited { .. }
            | Error::Conflict { .. }
            | Error::Locked { .. }
            | Error::UserDataTooLarge(_)
            | Error::BadInstanceId(_) => true,
            Error::Network { maybe_applied, .. } => !maybe_applied,
            Error::Api { status, .. } => *status < 500,
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "cloud_token_refused",
            Error::ReadOnlyToken => "cloud_token_read_only",
            Error::Forbidden { .. } => "cloud_forbidden",
            Error::InvalidInput { .. } => "cloud_invalid_input",
            Error::LimitReached { .. } => "cloud_limit_reached",
            Error::NameTaken { .. } => "cloud_name_taken",
            Error::NotFound { .. } => "cloud_not_found",
            Error::RateLimited { .. } => "cloud_rate_limited",
            Error::Conflict { .. } => "cloud_conflict",
            Error::Locked { .. } => "cloud_locked",
            Error::Timeout { .. } => "cloud_timeout",
            Error::Unavailable { .. } => "cloud_unavailable",
            Error::Api { .. } => "cloud_api_error",
            Error::Network { .. } => "cloud_unreachable",
            Error::BadResponse(_) => "cloud_bad_response",
            Error::UserDataTooLarge(_) => "cloud_user_data_too_large",
            Error::ActionFailed { .. } => "cloud_action_failed",
            Error::WaitTimedOut(_) => "cloud_wait_timeout",
            Error::Cancelled => "cancelled",
            Error::BadInstanceId(_) => "cloud_bad_instance_id",
            Error::Journal(_) => "store_error",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Unauthorized => "Create a new API token in the Hetzner Console (your project → Security → API tokens) and paste it again.",
            Error::ReadOnlyToken | Error::Forbidden { .. } => "Create a token with \"Read & Write\" permission in the Hetzner Console (Security → API tokens) and paste it again.",
            Error::InvalidInput { .. } => "Check the choices you made (location, server type) and try again. Nothing was created by this step.",
            Error::LimitReached { .. } => "Ask Hetzner to raise your project's limit (Hetzner Console → Limits), or delete a server you no longer need, then try again. Nothing is billed for the failed attempt.",
            Error::NameTaken { .. } => "Rename or delete the existing item in the Hetzner Console, then try again.",
            Error::NotFound { .. } => "It may have been deleted in the Hetzner Console. Try again; Clawkeeper will notice what is gone.",
            Error::RateLimited { .. } => "Wait a minute and try again. Clawkeeper already waited and retried.",
            Error::Conflict { .. } | Error::Locked { .. } | Error::Timeout { .. } => "Try again in a moment. Clawkeeper remembers what it already created, so nothing is made twice.",
            Error::Unavailable { .. } => "Hetzner may be under maintenance; see status.hetzner.com and try again later.",
            Error::Api { .. } => "Try again. If it keeps happening, send this message to Hetzner support.",
            Error::Network { .. } => "Check your internet connection and try again. Clawkeeper remembers what it already created.",
            Error::BadResponse(_) => "Try again later. If it keeps happening, something between you and Hetzner may be altering the connection.",
            Error::UserDataTooLarge(_) => "This is a bug in Clawkeeper; please report it. Nothing was sent to Hetzner.",
            Error::ActionFailed { .. } => "Try again. If it fails again, open the Hetzner Console to see what happened, or delete the instance.",
            Error::WaitTimedOut(_) => "Try again: Clawkeeper picks up where it stopped and won't create a second server.",
            Error::Cancelled => "Start it again whenever you like; it continues where it stopped.",
            Error::BadInstanceId(_) => "This is a bug in Clawkeeper; please report it.",
            Error::Journal(_) => "Free some disk space or restart Clawkeeper, then try again.",
        })
    }
}

/// A provider message made safe to show: no control characters, bounded length, never empty.
pub(crate) fn clean_message(raw: &str) -> String {
    crate::http::tidy(raw)
}

/// A provider error code kept verbatim, but only if it looks like one (`[a-z0-9_]`, short).
pub(crate) fn clean_code(raw: &str) -> String {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        raw.to_owned()
    } else {
        "unknown_error".to_owned()
    }
}
