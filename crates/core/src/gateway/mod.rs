//! The OpenClaw gateway: protocol frames, the client, and typed methods.

pub mod chat;
pub mod client;
pub mod frame;

pub use client::{
    connect_once, ClientInfo, Connection, Event, Gateway, Hello, LinkState, TokenSource,
};

use crate::problem::UserFacing;
use frame::RpcError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Your assistant isn't answering ({0}).")]
    Unreachable(String),
    #[error("Your assistant refused Clawkeeper's access key ({0}).")]
    Auth(String),
    #[error("Your assistant is still starting.")]
    Starting { retry_after_ms: u64 },
    #[error("Your assistant sent something Clawkeeper didn't understand: {0}")]
    Protocol(String),
    #[error("Your assistant reported an error: {}", .0.message)]
    Rpc(RpcError),
    #[error("Your assistant took too long to answer {0}.")]
    Timeout(&'static str),
    #[error("The connection to your assistant was lost (code {code}).")]
    Disconnected { code: u16, reason: String },
    #[error("The connection to your assistant was closed.")]
    Closed,
}

impl Error {
    /// The gateway turned the connection down (a refused or missing token: an auth error,
    /// an error answer to the handshake, or close 1008), as opposed to not answering.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::Auth(_) | Error::Rpc(_) | Error::Disconnected { code: 1008, .. }
        )
    }

    pub fn code_str(&self) -> &'static str {
        match self {
            Error::Unreachable(_) => "gateway_unreachable",
            Error::Auth(_) => "gateway_auth",
            Error::Starting { .. } => "gateway_starting",
            Error::Protocol(_) => "gateway_protocol",
            Error::Rpc(_) => "gateway_error",
            Error::Timeout(_) => "gateway_timeout",
            Error::Disconnected { .. } | Error::Closed => "gateway_disconnected",
        }
    }
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        self.code_str()
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Auth(_) => {
                "Restart your assistant from the tray; Clawkeeper will give it a fresh key."
            }
            Error::Starting { .. } => "Wait a few seconds; it is getting ready.",
            _ => "Check that your assistant is running (tray → Status), then try again.",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;
