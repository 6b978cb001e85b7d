//! What provisioning and posture checks need from a server: run one command, optionally
//! feeding it bytes on stdin, and read back its exit code and output.
//!
//! The SSH session ([`crate::ssh`]) implements it. Keeping the seam this narrow lets the
//! provisioning steps be read (and tested) as plain shell plus parsers, and keeps secrets
//! out of argv: a secret only ever travels as `stdin`, never inside `command`.

use crate::problem::UserFacing;
use std::future::Future;

/// The result of one remote command.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status; `None` when the command died from a signal or the server sent none.
    pub code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The last `n` lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn tail(&self, n: usize) -> String {
        let text = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            self.stderr_lossy()
        } else {
            self.stdout_lossy()
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

// Output may carry whatever a command printed; keep it out of logs by default.
impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("code", &self.code)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The connection to the server was lost: {0}")]
    Disconnected(String),
    #[error("The server didn't answer in time ({0}).")]
    Timeout(String),
    #[error("The command could not be run on the server: {0}")]
    Channel(String),
    #[error("Stopped as you asked ({0}).")]
    Cancelled(String),
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Disconnected(_) => "host_disconnected",
            Error::Timeout(_) => "host_timeout",
            Error::Channel(_) => "host_command_failed",
            Error::Cancelled(_) => "cancelled",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Disconnected(_) | Error::Timeout(_) => {
                "Check that the server is switched on and reachable, then try again. Nothing was lost: the job picks up where it stopped."
            }
            Error::Channel(_) => "Try again. If it keeps happening, check the server's disk space.",
            Error::Cancelled(_) => "Start it again when you're ready.",
        })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A server Clawkeeper can run commands on. `command` is passed to the login user's shell
/// as-is (the implementation does not quote it); `stdin`, when given, is written and then
/// closed. Put secrets only in `stdin`.
pub trait Remote: Send + Sync {
    fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> impl Future<Output = Result<Output>> + Send;
}

/// Single-quote `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn tail_prefers_stderr() {
        let o = Output {
            code: Some(1),
            stdout: b"out\n".to_vec(),
            stderr: b"a\nb\n\nc\n".to_vec(),
        };
        assert_eq!(o.tail(2), "b\nc");
        let o = Output {
            code: Some(1),
            stdout: b"only out\n".to_vec(),
            stderr: b" \n".to_vec(),
        };
        assert_eq!(o.tail(3), "only out");
    }
}
