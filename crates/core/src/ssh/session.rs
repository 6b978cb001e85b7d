//! One SSH connection, with the server's host key checked before anything is sent.

use super::{keys, Error, Result};
use crate::remote::{self, Output, Remote};
use crate::secret::Secret;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

/// How long to wait for TCP + the SSH handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Keepalives find a dead server within about a minute, even during a silent command.
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 4;

/// Where to connect: host (name or address), port, login user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl Target {
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
        }
    }

    /// `host:port`, with IPv6 literals bracketed.
    fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 22 {
            write!(f, "{}@{}", self.user, self.host)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// How to log in.
#[derive(Clone)]
pub enum Auth {
    Key(Arc<PrivateKey>),
    /// A one-time password, used only until the app's own key is installed.
    Password(Secret),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Key(k) => write!(f, "Auth::Key({})", keys::fingerprint(k.public_key())),
            Auth::Password(_) => f.write_str("Auth::Password(<redacted>)"),
        }
    }
}

/// A server's host key, as shown to the person on first contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub key: PublicKey,
    /// `SHA256:…`
    pub fingerprint: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, …
    pub algorithm: String,
}

impl HostKey {
    pub fn new(key: PublicKey) -> Self {
        Self {
            fingerprint: keys::fingerprint(&key),
            algorithm: key.algorithm().to_string(),
            key,
        }
    }

    /// The OpenSSH public key line, for the store.
    pub fn to_openssh(&self) -> Result<String> {
        keys::public_line(&self.key)
    }

    pub fn from_openssh(line: &str) -> Result<Self> {
        PublicKey::from_openssh(line)
            .map(Self::new)
            .map_err(|e| Error::BadKey(format!("stored host key: {e}")))
    }
}

enum Expect {
    /// Record the key and stop: nothing past key exchange happens.
    Scan,
    /// Continue only if the server proves it holds exactly this key.
    Pinned(PublicKey),
}

struct Client {
    expect: Arc<Expect>,
    seen: Arc<StdMutex<Option<PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        // A certificate is judged by the key it certifies; we pin keys, not CAs.
        let key = match server {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        let accept = match self.expect.as_ref() {
            Expect::Scan => false,
            Expect::Pinned(pin) => pin.key_data() == key.key_data(),
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(key);
        }
        Ok(accept)
    }
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        ..Default::default()
    })
}

async fn handshake(target: &Target, expect: Expect) -> (Result<Handle<Client>>, Option<PublicKey>) {
    let seen = Arc::new(StdMutex::new(None));
    let client = Client {
        expect: Arc::new(expect),
        seen: seen.clone(),
    };
    let result = tokio::time::timeout(
        CONNECT_TIMEOUT,
        client::connect(config(), target.addr(), client),
    )
    .await;
    let seen = seen.lock().ok().and_then(|mut s| s.take());
    let handle = match result {
        Err(_) => Err(Error::Timeout {
            target: target.to_string(),
        }),
        Ok(Err(e)) => Err(classify_connect(target, e)),
        Ok(Ok(h)) => Ok(h),
    };
    (handle, seen)
}

fn classify_connect(target: &Target, e: russh::Error) -> Error {
    match e {
        russh::Error::IO(io) => Error::Unreachable {
            target: target.to_string(),
            reason: plain_io(&io),
            refused: io.kind() == std::io::ErrorKind::ConnectionRefused,
        },
        russh::Error::ConnectionTimeout | russh::Error::KeepaliveTimeout => Error::Timeout {
            target: target.to_string(),
        },
        russh::Error::UnknownKey => Error::HostKeyUnconfirmed {
            fingerprint: String::new(),
        },
        other => Error::Protocol {
            target: target.to_string(),
            reason: other.to_string(),
        },
    }
}

fn plain_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "nothing is listening on that port".into(),
        K::HostUnreachable | K::NetworkUnreachable => "there is no route to it from here".into(),
        K::TimedOut => "the connection timed out".into(),
        K::ConnectionReset | K::UnexpectedEof => "the server closed the connection".into(),
        _ => e.to_string(),
    }
}

/// First contact: connect, read the server's host key, and hang up before authenticating.
/// The caller shows the fingerprint; only after the person confirms it is the key pinned.
pub async fn scan_host_key(target: &Target) -> Result<HostKey> {
    let (result, seen) = handshake(target, Expect::Scan).await;
    match (result, seen) {
        (_, Some(key)) => Ok(HostKey::new(key)),
        (Err(e), None) => Err(e),
        (Ok(_), None) => Err(Error::Protocol {
            target: target.to_string(),
            reason: "the server sent no host key".into(),
        }),
    }
}

/// An authenticated SSH connection to a pinned server. Commands run through [`Remote`];
/// tunnels through [`super::Tunnel`]. Cheap to share behind an `Arc`.
pub struct Session {
    handle: Handle<Client>,
    target: Target,
    host_key: HostKey,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .field("host_key", &self.host_key.fingerprint)
            .finish()
    }
}

impl Session {
    /// Connect to `target`, refuse it unless it proves it holds `pinned`, then log in.
    /// A mismatched host key fails before any credential is sent.
    pub async fn connect(target: &Target, pinned: &HostKey, auth: &Auth) -> Result<Self> {
        let (result, seen) = handshake(target, Expect::Pinned(pinned.key.clone())).await;
        let mut handle = match result {
            Ok(h) => h,
            Err(Error::HostKeyUnconfirmed { .. }) => {
                let got = seen
                    .map(|k| keys::fingerprint(&k))
                    .unwrap_or_else(|| "(none)".into());
                tracing::warn!(%target, expected = %pinned.fingerprint, %got, "host key changed; refused");
                return Err(Error::HostKeyChanged {
                    target: target.to_string(),
                    expected: pinned.fingerprint.clone(),
                    got,
                });
            }
            Err(e) => return Err(e),
        };
        let (outcome, method) = match auth {
            Auth::Key(key) => {
                let hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| session_error(target, e))?
                    .flatten();
                let r = handle
                    .authenticate_publickey(
                        target.user.clone(),
                        PrivateKeyWithHashAlg::new(key.clone(), hash),
                    )
                    .await;
                (r, "key")
            }
            Auth::Password(pw) => {
                let r = handle
                    .authenticate_password(target.user.clone(), pw.expose())
                    .await;
                (r, "password")
            }
        };
        match outcome.map_err(|e| session_error(target, e))? {
            AuthResult::Success => Ok(Self {
                handle,
                target: target.clone(),
                host_key: pinned.clone(),
            }),
            AuthResult::Failure { .. } => Err(Error::AuthRejected {
                target: target.to_string(),
                user: target.user.clone(),
                method,
            }),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn host_key(&self) -> &HostKey {
        &self.host_key
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Open a `direct-tcpip` channel to `host:port` as seen from the server.
    pub(super) async fn direct_tcpip(
        &self,
        host: &str,
        port: u16,
        from_port: u16,
    ) -> Result<russh::Channel<client::Msg>> {
        self.handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", u32::from(from_port))
            .await
            .map_err(|e| session_error(&self.target, e))
    }

    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }

    async fn run_inner(&self, command: &str, stdin: Option<&[u8]>) -> remote::Result<Output> {
        let lost = |e: russh::Error| remote::Error::Disconnected(e.to_string());
        let mut channel = self.handle.channel_open_session().await.map_err(lost)?;
        channel.exec(true, command).await.map_err(lost)?;
        if let Some(input) = stdin {
            channel.data(input).await.map_err(lost)?;
        }
        channel.eof().await.map_err(lost)?;
        let (mut stdout, mut stderr, mut code) = (Vec::new(), Vec::new(), None);
        let mut exited = false;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => {
                    code = Some(exit_status);
                    exited = true;
                }
                ChannelMsg::ExitSignal { .. } => exited = true,
                ChannelMsg::Failure => {
                    return Err(remote::Error::Channel(
                        "the server refused to run the command".into(),
                    ))
                }
                _ => {}
            }
        }
        if !exited && self.handle.is_closed() {
            return Err(remote::Error::Disconnected(format!(
                "{} closed the connection while a command was running",
                self.target
            )));
        }
        Ok(Output {
            code,
            stdout,
            stderr,
        })
    }
}

fn session_error(target: &Target, e: russh::Error) -> Error {
    Error::Session {
        target: target.to_string(),
        reason: e.to_string(),
    }
}

impl Remote for Session {
    async fn run(&self, command: &str, stdin: Option<&[u8]>) -> remote::Result<Output> {
        use tracing::Instrument;
        self.run_inner(command, stdin)
            .instrument(tracing::debug_span!("ssh.run", target = %self.target))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_print_like_ssh() {
        assert_eq!(Target::new("h", 22, "root").to_string(), "root@h");
        assert_eq!(Target::new("h", 2222, "me").to_string(), "me@h:2222");
        assert_eq!(Target::new("::1", 22, "r").addr(), "[::1]:22");
        assert_eq!(Target::new("10.0.0.1", 22, "r").addr(), "10.0.0.1:22");
    }

    #[test]
    fn auth_debug_hides_the_password() {
        let a = Auth::Password(Secret::new("hunter2"));
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn refused_port_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = scan_host_key(&Target::new("127.0.0.1", port, "root"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_non_ssh_server_is_named_as_such() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let e = scan_host_key(&Target::new("127.0.0.1", port, "root"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Protocol { .. } | Error::Unreachable { .. }),
            "{e:?}"
        );
    }
}
