//! SSH to the person's own server, in pure Rust (`russh`; no `ssh` binary, no agent, no
//! `~/.ssh` files).
//!
//! - [`keys`]: the app's own ed25519 key per server (private half only in the keychain) and
//!   imported keys the person picks.
//! - [`session`]: a connection with the host key checked against a pin. First contact is
//!   a separate step ([`session::scan_host_key`]) whose fingerprint the person confirms
//!   before anything is sent; a changed key is refused before authentication.
//! - [`tunnel`]: a local TCP port forwarded (`direct-tcpip`) to the server's loopback
//!   gateway, so the gateway never listens on a public address.
//! - [`hosts`]: the pinned host record in the store.

pub mod hosts;
pub mod keys;
pub mod session;
pub mod tunnel;

use crate::problem::UserFacing;

pub use session::{scan_host_key, Auth, HostKey, Session, Target};
pub use tunnel::{SessionSource, Tunnel};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Clawkeeper couldn't reach {target}: {reason}")]
    Unreachable {
        target: String,
        reason: String,
        /// The host answered, but nothing listens on the port (e.g. sshd re-executing
        /// itself on a reload): worth another try in a moment, unlike no route.
        refused: bool,
    },
    #[error("{target} didn't answer in time.")]
    Timeout { target: String },
    #[error("{target} is not an SSH server Clawkeeper can talk to: {reason}")]
    Protocol { target: String, reason: String },
    #[error("This server's identity has not been confirmed yet (fingerprint {fingerprint}).")]
    HostKeyUnconfirmed { fingerprint: String },
    #[error(
        "WARNING: the server at {target} is not the one you confirmed before. Its identity changed from {expected} to {got}. Clawkeeper sent nothing to it."
    )]
    HostKeyChanged {
        target: String,
        expected: String,
        got: String,
    },
    #[error("The server at {target} refused the {method} for user \"{user}\".")]
    AuthRejected {
        target: String,
        user: String,
        method: &'static str,
    },
    #[error("That file is not a private SSH key Clawkeeper can use: {0}")]
    BadKey(String),
    #[error("That private key is protected by a passphrase.")]
    KeyNeedsPassphrase,
    #[error("The SSH connection to {target} failed: {reason}")]
    Session { target: String, reason: String },
    #[error("The keychain couldn't be used: {0}")]
    Vault(#[from] crate::vault::Error),
    #[error("Clawkeeper couldn't save the server's details: {0}")]
    Store(#[from] crate::store::Error),
    #[error("Clawkeeper couldn't open a local port for the tunnel: {0}")]
    LocalPort(String),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Unreachable { .. } => "host_unreachable",
            Error::Timeout { .. } => "host_timeout",
            Error::Protocol { .. } => "host_not_ssh",
            Error::HostKeyUnconfirmed { .. } => "host_key_unconfirmed",
            Error::HostKeyChanged { .. } => "host_key_changed",
            Error::AuthRejected { .. } => "host_auth_rejected",
            Error::BadKey(_) => "ssh_key_invalid",
            Error::KeyNeedsPassphrase => "ssh_key_passphrase",
            Error::Session { .. } => "host_disconnected",
            Error::Vault(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::LocalPort(_) => "tunnel_port",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Unreachable { .. } | Error::Timeout { .. } => {
                "Check the address and port, and that the server is switched on. If you just created it, wait a minute and try again."
            }
            Error::Protocol { .. } => "Check the port: it must be the server's SSH port (usually 22).",
            Error::HostKeyUnconfirmed { .. } => {
                "Compare the fingerprint with the one your hosting provider shows for this server, then confirm it."
            }
            Error::HostKeyChanged { .. } => {
                "If you reinstalled the server, remove it in Clawkeeper and connect it again. Otherwise someone may be intercepting the connection: don't continue, and ask your hosting provider."
            }
            Error::AuthRejected { .. } => {
                "Check the user name and the key or password. For a new server, the user is usually \"root\"."
            }
            Error::BadKey(_) => "Pick the private key file (not the .pub one), in OpenSSH or PEM format.",
            Error::KeyNeedsPassphrase => "Enter the key's passphrase and try again.",
            Error::Session { .. } => "Try again. If it keeps happening, check the server's network.",
            Error::Vault(e) => return e.hint(),
            Error::Store(e) => return e.hint(),
            Error::LocalPort(_) => "Close other programs using many network ports, then try again.",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;
