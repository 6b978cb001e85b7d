//! The system's own Tailscale, through its LocalAPI: HTTP/1.1 over tailscaled's unix socket
//! (`/var/run/tailscale/tailscaled.sock` on Linux), the same API the `tailscale` CLI and the
//! official tray use.
//!
//! * [`LocalApi`]: `status`, `prefs`, `whois`, `login_interactive` (then
//!   [`LocalApi::wait_for_login_url`]), [`LocalApi::find_peer`] ("the server's 100.x
//!   address") and [`LocalApi::dial`]: `POST /localapi/v0/dial` upgraded to `ts-dial`, after
//!   which the socket is a plain TCP stream to the peer.
//! * [`SystemTailscale`]: the [`Tailnet`] on top of it ("Tailscale on this computer").
//!
//! The HTTP is written by hand: one request per connection (`Connection: close`), so a
//! response ends at `Content-Length`, at the last chunk, or at EOF. Every request carries
//! `Host: local-tailscaled.sock` and never an `Origin` header: tailscaled refuses any request
//! with an `Origin` (so that no web page can reach it through a browser), which is also why
//! only Rust code — never the webview — talks to it.
//!
//! The parsers ([`parse_status`], [`parse_prefs`], [`parse_whois`], [`parse_head`],
//! [`decode_chunked`]) are tolerant: unknown fields are ignored, a missing, `null` or
//! wrongly typed field is empty, an address or time that doesn't parse is left out. Only
//! what Clawkeeper can't do without is required (the backend state of a status, the node of
//! a whois). They never panic (fuzz target `tailscale_local`).
//!
//! Windows (a named pipe) and the macOS App Store variant (a TCP port with a token) are not
//! handled yet: there [`LocalApi`] reports [`Error::NotRunning`].

use super::dial::{BoxFuture, BoxStream, Tailnet, TailnetState};
use crate::cloud::error::clean_message;
use crate::problem::UserFacing;
use serde_json::Value;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Where tailscaled listens on Linux.
pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";
/// The `Host` tailscaled expects on its socket.
pub const HOST: &str = "local-tailscaled.sock";
/// How long one LocalAPI call may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dial may take until tailscaled has switched protocols.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response head read (tailscaled's are well under 1 KiB).
pub const MAX_HEAD: usize = 64 * 1024;
/// The largest response body read (a status of a large tailnet is a few MiB).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

// ---------------------------------------------------------------------------------- errors

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Tailscale isn't running on this computer ({0}).")]
    NotRunning(String),
    #[error("Tailscale on this computer won't let Clawkeeper in: {0}")]
    AccessDenied(String),
    #[error("Tailscale on this computer is not logged in.")]
    NeedsLogin { login_url: Option<String> },
    #[error("Tailscale on this computer is switched off.")]
    Stopped,
    #[error("Tailscale could not connect to {host} port {port}: {message}")]
    DialFailed {
        host: String,
        port: u16,
        message: String,
    },
    #[error("Tailscale on this computer did not answer in time ({0}).")]
    Timeout(&'static str),
    #[error("Tailscale on this computer sent an answer Clawkeeper can't read: {0}")]
    BadAnswer(String),
    #[error("Tailscale on this computer refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("Clawkeeper won't send this to Tailscale: {0}")]
    InvalidRequest(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::NotRunning(_) => "tailscale_not_running",
            Error::AccessDenied(_) => "tailscale_access_denied",
            Error::NeedsLogin { .. } => "tailscale_needs_login",
            Error::Stopped => "tailscale_stopped",
            Error::DialFailed { .. } => "tailscale_dial_failed",
            Error::Timeout(_) => "tailscale_timeout",
            Error::BadAnswer(_) => "tailscale_bad_answer",
            Error::Refused { .. } => "tailscale_local_error",
            Error::InvalidRequest(_) => "tailscale_invalid_request",
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::NotRunning(_) => "Open Tailscale (or install it from https://tailscale.com/download) and log in, then try again.",
            Error::AccessDenied(_) => "Let Clawkeeper use Tailscale: open a terminal, run  sudo tailscale set --operator=$USER  once, then try again.",
            Error::NeedsLogin { .. } => "Open Tailscale and log in, then try again.",
            Error::Stopped => "Open Tailscale and switch it on (Connect), then try again.",
            Error::DialFailed { .. } => "Check that your server is switched on and shows as connected in Tailscale, then try again.",
            Error::Timeout(_) => "Restart Tailscale on this computer, then try again.",
            Error::BadAnswer(_) => "Update Tailscale on this computer, then try again. If it keeps happening, send this message to Clawkeeper's support.",
            Error::Refused { .. } => "Try again. If it keeps happening, restart Tailscale on this computer.",
            Error::InvalidRequest(_) => "This is a bug in Clawkeeper; please report it. Nothing was changed.",
        })
    }
}

/// The error for a non-2xx answer. tailscaled writes its errors as plain text
/// (`http.Error`) or as `{"error": "…"}`. Never panics.
pub fn decode_error(status: u16, body: &[u8]) -> Error {
    let raw = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let message = clean_message(&raw);
    match status {
        403 => Error::AccessDenied(message),
        _ => Error::Refused { status, message },
    }
}

// --------------------------------------------------------------------------------- models

/// tailscaled's `BackendState` (ipn.State).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendState {
    NoState,
    NeedsLogin,
    NeedsMachineAuth,
    Stopped,
    Starting,
    Running,
    /// Another user of this computer owns the running Tailscale (Windows), or a state that
    /// did not exist when this was written.
    Other(String),
}

impl BackendState {
    pub fn parse(s: &str) -> Self {
        match s {
            "NoState" => BackendState::NoState,
            "NeedsLogin" => BackendState::NeedsLogin,
            "NeedsMachineAuth" => BackendState::NeedsMachineAuth,
            "Stopped" => BackendState::Stopped,
            "Starting" => BackendState::Starting,
            "Running" => BackendState::Running,
            other => BackendState::Other(other.to_owned()),
        }
    }
}

/// A node of the tailnet: this computer (`Self`) or a peer, as `status` or `whois` show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The machine's own hostname (`HostName`; for a whois, `Hostinfo.Hostname`).
    pub hostname: String,
    /// The MagicDNS name, with its trailing dot as Tailscale writes it
    /// (`server.tail1234.ts.net.`).
    pub dns_name: String,
    /// `100.x.y.z` and `fd7a:115c:a1e0:…`, in Tailscale's order.
    pub tailscale_ips: Vec<IpAddr>,
    pub online: bool,
    pub last_seen: Option<OffsetDateTime>,
    /// When the node's key expires; `None` when it never does (tagged nodes) or unknown.
    pub key_expiry: Option<OffsetDateTime>,
    pub tags: Vec<String>,
    pub os: String,
}

impl Node {
    /// The first IPv4 address (the `100.x.y.z` one).
    pub fn ipv4(&self) -> Option<IpAddr> {
        self.tailscale_ips.iter().copied().find(IpAddr::is_ipv4)
    }

    /// Whether this is the machine called `name`: its hostname or the first label of its
    /// MagicDNS name, ignoring case.
    pub fn is_named(&self, name: &str) -> bool {
        let label = self.dns_name.split('.').next().unwrap_or("");
        !name.is_empty()
            && (self.hostname.eq_ignore_ascii_case(name) || label.eq_ignore_ascii_case(name))
    }
}

/// `GET /localapi/v0/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub backend_state: BackendState,
    /// The page where the person logs in, once tailscaled has one (an `http(s)://` URL;
    /// anything else is left out).
    pub auth_url: Option<String>,
    pub self_node: Option<Node>,
    /// Every peer (the `Peer` map's values, in key order).
    pub peers: Vec<Node>,
    pub magic_dns_suffix: String,
    /// The tailnet's name (`CurrentTailnet.Name`), when logged in.
    pub tailnet: Option<String>,
    /// Tailscale's own warnings ("Tailscale is stopped.", …).
    pub health: Vec<String>,
    pub version: String,
}

impl Status {
    /// Where this computer stands, for the tray.
    pub fn tailnet_state(&self) -> TailnetState {
        match &self.backend_state {
            BackendState::Running => {
                let node = self
                    .self_node
                    .as_ref()
                    .map(|n| {
                        if n.hostname.is_empty() {
                            n.dns_name.split('.').next().unwrap_or("").to_owned()
                        } else {
                            n.hostname.clone()
                        }
                    })
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "this computer".to_owned());
                TailnetState::Connected { node }
            }
            BackendState::NeedsLogin | BackendState::NeedsMachineAuth => TailnetState::NeedsLogin {
                login_url: self.auth_url.clone(),
            },
            BackendState::Starting | BackendState::NoState => TailnetState::Starting,
            BackendState::Stopped => TailnetState::Stopped,
            BackendState::Other(s) => TailnetState::Unavailable {
                reason: format!(
                    "Tailscale on this computer is in a state Clawkeeper doesn't know ({})",
                    clean_message(s)
                ),
            },
        }
    }

    /// The peer called `hostname` (see [`Node::is_named`]); of several, the one online, then
    /// the one seen last.
    pub fn find_peer(&self, hostname: &str) -> Option<&Node> {
        self.peers
            .iter()
            .filter(|p| p.is_named(hostname))
            .max_by_key(|p| (p.online, p.last_seen))
    }
}

/// `GET /localapi/v0/prefs`: the settings Clawkeeper looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prefs {
    pub control_url: String,
    pub want_running: bool,
    pub logged_out: bool,
    pub hostname: String,
    pub advertise_tags: Vec<String>,
    pub run_ssh: bool,
    pub shields_up: bool,
    pub corp_dns: bool,
}

/// `GET /localapi/v0/whois?addr=…`: the node behind a tailnet address and its owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WhoIs {
    pub node: Node,
    /// The owner's login (`UserProfile.LoginName`); for a tagged node, `tagged-devices`.
    pub login_name: String,
    pub display_name: String,
}

// -------------------------------------------------------------------------------- parsers

fn json_object(body: &[u8], what: &str) -> Result<serde_json::Map<String, Value>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Error::BadAnswer(format!("the {what} is not UTF-8: {e}")))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Error::BadAnswer(format!("the {what} is not a JSON object"))),
        Err(e) => Err(Error::BadAnswer(format!("the {what}: {e}"))),
    }
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("").to_owned()
}

fn flag(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

fn texts(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An address (`100.64.0.1`) or a single-address prefix as whois writes them
/// (`100.64.0.1/32`).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let addr = match s.split_once('/') {
        Some((a, bits)) if !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()) => a,
        Some(_) => return None,
        None => s,
    };
    addr.parse().ok()
}

fn ips(v: Option<&Value>) -> Vec<IpAddr> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| parse_ip(x.as_str()?)).collect())
        .unwrap_or_default()
}

/// RFC 3339; Go's zero time (year 1) and anything unreadable are `None`.
fn when(v: Option<&Value>) -> Option<OffsetDateTime> {
    let s = v?.as_str()?;
    let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    (t.year() > 1).then_some(t)
}

/// An `http(s)://` URL without spaces or control characters, else `None`.
fn login_url(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?;
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() <= 2048
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| s.to_owned())
}

/// The fields a status peer and a whois node share; the others are named by the caller.
fn node(v: &Value, hostname: String, dns_name: &str, ips_key: &str, os: String) -> Node {
    Node {
        hostname,
        dns_name: text(v.get(dns_name)),
        tailscale_ips: ips(v.get(ips_key)),
        online: flag(v.get("Online")),
        last_seen: when(v.get("LastSeen")),
        key_expiry: when(v.get("KeyExpiry")),
        tags: texts(v.get("Tags")),
        os,
    }
}

fn status_node(v: &Value) -> Node {
    let (hostname, os) = (text(v.get("HostName")), text(v.get("OS")));
    node(v, hostname, "DNSName", "TailscaleIPs", os)
}

/// `GET /localapi/v0/status` (ipnstate.Status). Requires `BackendState`.
pub fn parse_status(body: &[u8]) -> Result<Status> {
    let o = json_object(body, "status")?;
    let backend_state = o
        .get("BackendState")
        .and_then(Value::as_str)
        .map(BackendState::parse)
        .ok_or_else(|| Error::BadAnswer("the status has no BackendState".into()))?;
    let peers = o
        .get("Peer")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter(|p| p.is_object())
                .map(status_node)
                .collect()
        })
        .unwrap_or_default();
    Ok(Status {
        backend_state,
        auth_url: login_url(o.get("AuthURL")),
        self_node: o.get("Self").filter(|s| s.is_object()).map(status_node),
        peers,
        magic_dns_suffix: text(o.get("MagicDNSSuffix")),
        tailnet: o
            .get("CurrentTailnet")
            .and_then(|t| t.get("Name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        health: texts(o.get("Health")),
        version: text(o.get("Version")),
    })
}

/// `GET /localapi/v0/prefs` (ipn.Prefs).
pub fn parse_prefs(body: &[u8]) -> Result<Prefs> {
    let o = json_object(body, "prefs")?;
    Ok(Prefs {
        control_url: text(o.get("ControlURL")),
        want_running: flag(o.get("WantRunning")),
        logged_out: flag(o.get("LoggedOut")),
        hostname: text(o.get("Hostname")),
        advertise_tags: texts(o.get("AdvertiseTags")),
        run_ssh: flag(o.get("RunSSH")),
        shields_up: flag(o.get("ShieldsUp")),
        corp_dns: flag(o.get("CorpDNS")),
    })
}

/// `GET /localapi/v0/whois` (apitype.WhoIsResponse). Requires `Node`.
pub fn parse_whois(body: &[u8]) -> Result<WhoIs> {
    let o = json_object(body, "whois answer")?;
    let n = o
        .get("Node")
        .filter(|n| n.is_object())
        .ok_or_else(|| Error::BadAnswer("the whois answer has no Node".into()))?;
    let hostinfo = n.get("Hostinfo");
    let mut hostname = text(hostinfo.and_then(|h| h.get("Hostname")));
    if hostname.is_empty() {
        hostname = text(n.get("ComputedName"));
    }
    let os = text(hostinfo.and_then(|h| h.get("OS")));
    let node = node(n, hostname, "Name", "Addresses", os);
    let user = o.get("UserProfile");
    Ok(WhoIs {
        node,
        login_name: text(user.and_then(|u| u.get("LoginName"))),
        display_name: text(user.and_then(|u| u.get("DisplayName"))),
    })
}

/// The head of an HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Names in lower case, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// `Content-Length`, if present and a plain number.
    pub fn content_length(&self) -> Result<Option<usize>> {
        match self.header("content-length") {
            None => Ok(None),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::BadAnswer("a Content-Length too large".into())),
            Some(_) => Err(Error::BadAnswer(
                "a Content-Length that is not a number".into(),
            )),
        }
    }
}

/// The response head at the start of `buf`: `Ok(None)` while it is incomplete, else the
/// head and how many bytes it took (the blank line included); what follows is the body or,
/// after `101 Switching Protocols`, the stream.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(Error::BadAnswer("a response head that never ends".into()));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(Error::BadAnswer("a response head that is too long".into()));
    }
    let head = buf.get(..end).unwrap_or_default();
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line)
        .ok_or_else(|| Error::BadAnswer("not an HTTP response".into()))?;
    let mut headers = Vec::new();
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| Error::BadAnswer("a header line without a colon".into()))?;
        let (name, value) = line.split_at(colon);
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| Error::BadAnswer("a header with a bad name".into()))?;
        let value = String::from_utf8_lossy(value.get(1..).unwrap_or_default());
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Some((Head { status, headers }, end + 4)))
}

/// `HTTP/1.x SSS reason` → SSS.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    let status: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    (100..=599).contains(&status).then_some(status)
}

/// A complete chunked body (`Transfer-Encoding: chunked`) → its bytes. Chunk extensions and
/// trailers are ignored; anything malformed or cut short is an error.
pub fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::BadAnswer(format!("a chunked body {what}"));
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("cut short"))?;
        let line = data.get(..eol).unwrap_or_default();
        let size_part = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_part)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("with a bad chunk size"))?;
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| bad("with a bad chunk size"))?;
        data = data.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_BODY.saturating_sub(out.len()) {
            return Err(bad("too large"));
        }
        let chunk = data.get(..size).ok_or_else(|| bad("cut short"))?;
        out.extend_from_slice(chunk);
        data = data
            .get(size..)
            .and_then(|d| d.strip_prefix(b"\r\n"))
            .ok_or_else(|| bad("without the line end after a chunk"))?;
    }
}

/// The body of a complete response (`rest` is everything after the head, read to EOF).
pub fn response_body(head: &Head, rest: &[u8]) -> Result<Vec<u8>> {
    if head.is_chunked() {
        return decode_chunked(rest);
    }
    match head.content_length()? {
        Some(n) => rest
            .get(..n)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::BadAnswer("the answer was cut short".into())),
        None => Ok(rest.to_vec()),
    }
}

// --------------------------------------------------------------------------------- IPN bus

/// Ask for the current state first (`ipn.NotifyInitialState`) and never for private keys
/// (`ipn.NotifyNoPrivateKeys`).
pub const WATCH_MASK: u32 = (1 << 1) | (1 << 4);

/// One message of tailscaled's IPN bus (`ipn.Notify`), reduced to what the app reacts to.
/// Nothing else of it is kept (its prefs and net map are never logged or stored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    /// A new backend state (the bus writes `ipn.State` as a number).
    pub state: Option<BackendState>,
    /// A login page to open.
    pub browse_to_url: Option<String>,
    /// tailscaled's own error message.
    pub error: Option<String>,
    /// The prefs changed (switched on/off, logged out, …).
    pub prefs_changed: bool,
    /// Tailscale's health warnings changed.
    pub health_changed: bool,
}

/// `ipn.State` as the bus numbers it.
fn state_number(n: u64) -> BackendState {
    match n {
        0 => BackendState::NoState,
        1 => BackendState::Other("InUseOtherUser".into()),
        2 => BackendState::NeedsLogin,
        3 => BackendState::NeedsMachineAuth,
        4 => BackendState::Stopped,
        5 => BackendState::Starting,
        6 => BackendState::Running,
        other => BackendState::Other(format!("state {other}")),
    }
}

/// One line of `watch-ipn-bus`. `null` and missing fields are absent; a `State` that is a
/// name instead of a number is read as a name.
pub fn parse_notify(line: &[u8]) -> Result<Notify> {
    let o = json_object(line, "bus message")?;
    let state = match o.get("State") {
        Some(Value::Number(n)) => n.as_u64().map(state_number),
        Some(Value::String(s)) => Some(BackendState::parse(s)),
        _ => None,
    };
    let present = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    Ok(Notify {
        state,
        browse_to_url: login_url(o.get("BrowseToURL")),
        error: o
            .get("ErrMessage")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(clean_message),
        prefs_changed: present("Prefs"),
        health_changed: present("Health"),
    })
}

/// The stream of [`Notify`] messages of one `watch-ipn-bus` request.
pub struct IpnWatch {
    conn: Conn,
    chunked: bool,
    /// Bytes read and not yet decoded (chunk framing).
    raw: Vec<u8>,
    /// Decoded body bytes not yet split into lines.
    body: Vec<u8>,
    done: bool,
}

impl IpnWatch {
    /// The next message; `Ok(None)` when tailscaled ends the stream (it stopped).
    pub async fn next(&mut self) -> Result<Option<Notify>> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return parse_notify(line).map(Some);
            }
            if self.body.len() > MAX_BODY {
                return Err(Error::BadAnswer("a bus message that is too large".into()));
            }
            if self.done {
                return Ok(None);
            }
            if !self.take_chunks()? {
                let n = self
                    .conn
                    .read(&mut chunk)
                    .await
                    .map_err(|e| Error::BadAnswer(format!("the connection broke off: {e}")))?;
                if n == 0 {
                    self.done = true;
                    if !self.chunked {
                        self.body.append(&mut self.raw);
                    }
                    continue;
                }
                self.raw
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                if !self.chunked {
                    self.body.append(&mut self.raw);
                }
            }
        }
    }

    /// Move every complete chunk from `raw` to `body`; false when none was complete.
    fn take_chunks(&mut self) -> Result<bool> {
        if !self.chunked {
            return Ok(false);
        }
        let mut took = false;
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return Ok(took);
            };
            let size_text = std::str::from_utf8(self.raw.get(..eol).unwrap_or_default())
                .map_err(|_| Error::BadAnswer("a chunk size that is not text".into()))?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| Error::BadAnswer("a chunk size that is not a number".into()))?;
            if size > MAX_BODY {
                return Err(Error::BadAnswer("a chunk that is too large".into()));
            }
            let start = eol + 2;
            if size == 0 {
                self.done = true;
                self.raw.clear();
                return Ok(true);
            }
            let end = start + size;
            if self.raw.len() < end + 2 {
                return Ok(took);
            }
            self.body
                .extend_from_slice(self.raw.get(start..end).unwrap_or_default());
            self.raw.drain(..end + 2);
            took = true;
        }
    }
}

// --------------------------------------------------------------------------------- client

/// Read the rest of a response's body from `conn` (`rest`: what came with the head): up to
/// `Content-Length`, to the last chunk, or to EOF. It does not wait for EOF when the framing
/// says where the body ends (tailscaled keeps a connection open after an error answer).
async fn read_body<C: AsyncRead + Unpin>(
    head: &Head,
    mut rest: Vec<u8>,
    conn: &mut C,
) -> Result<Vec<u8>> {
    if head.status == 204 || head.status == 304 {
        return Ok(Vec::new());
    }
    let chunked = head.is_chunked();
    let length = if chunked {
        None
    } else {
        head.content_length()?
    };
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(Error::BadAnswer("an answer that is too large".into()));
    }
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(n) = length {
            if rest.len() >= n {
                rest.truncate(n);
                return Ok(rest);
            }
        }
        if chunked && rest.ends_with(b"\r\n\r\n") {
            if let Ok(body) = decode_chunked(&rest) {
                return Ok(body);
            }
        }
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| Error::BadAnswer(format!("the connection broke off: {e}")))?;
        if n == 0 {
            return response_body(head, &rest);
        }
        rest.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if rest.len() > MAX_BODY + MAX_HEAD {
            return Err(Error::BadAnswer("an answer that is too large".into()));
        }
    }
}

#[cfg(unix)]
type Conn = tokio::net::UnixStream;
#[cfg(not(unix))]
type Conn = tokio::io::DuplexStream;

#[cfg(unix)]
async fn connect_socket(path: &Path) -> io::Result<Conn> {
    tokio::net::UnixStream::connect(path).await
}

#[cfg(not(unix))]
async fn connect_socket(_path: &Path) -> io::Result<Conn> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Clawkeeper can't reach Tailscale's LocalAPI on this system yet",
    ))
}

/// A host name or address fit for the `Dial-Host` header: letters, digits, `.-_:%[]`.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%[]".contains(&b))
}

/// A client of tailscaled's LocalAPI on one socket.
#[derive(Debug, Clone)]
pub struct LocalApi {
    socket: PathBuf,
}

impl Default for LocalApi {
    fn default() -> Self {
        Self::new(DEFAULT_SOCKET)
    }
}

impl LocalApi {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn connect(&self) -> Result<Conn> {
        connect_socket(&self.socket).await.map_err(|e| {
            let shown = format!("{}: {e}", self.socket.display());
            match e.kind() {
                io::ErrorKind::PermissionDenied => Error::AccessDenied(shown),
                _ => Error::NotRunning(shown),
            }
        })
    }

    /// Send one request (no body) and read its head; the connection is handed back with any
    /// bytes already read past the head.
    async fn start(
        &self,
        method: &str,
        path_and_query: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<(Head, Vec<u8>, Conn)> {
        let mut conn = self.connect().await?;
        let mut req = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: clawkeeper/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in extra_headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if method == "POST" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        let lost = |e: io::Error| Error::BadAnswer(format!("the connection broke off: {e}"));
        conn.write_all(req.as_bytes()).await.map_err(lost)?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.map_err(lost)?;
            if n == 0 {
                return Err(Error::BadAnswer(
                    "the connection closed before an answer".into(),
                ));
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some((head, used)) = parse_head(&buf)? {
                let rest = buf.split_off(used);
                return Ok((head, rest, conn));
            }
        }
    }

    /// One complete request → (status, body).
    async fn call(&self, method: &str, path_and_query: &str) -> Result<(u16, Vec<u8>)> {
        let work = async {
            let (head, rest, mut conn) = self
                .start(method, path_and_query, &[("Connection", "close")])
                .await?;
            let body = read_body(&head, rest, &mut conn).await?;
            Ok((head.status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| Error::Timeout("a request to its LocalAPI"))?
    }

    async fn get_ok(&self, method: &str, path_and_query: &str) -> Result<Vec<u8>> {
        let (status, body) = self.call(method, path_and_query).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(decode_error(status, &body))
        }
    }

    /// Follow tailscaled's IPN bus: the current state first, then every change as it
    /// happens (see [`IpnWatch::next`]). The request stays open until either side ends it.
    pub async fn watch(&self) -> Result<IpnWatch> {
        let path = format!("/localapi/v0/watch-ipn-bus?mask={WATCH_MASK}");
        let (head, rest, mut conn) =
            tokio::time::timeout(REQUEST_TIMEOUT, self.start("GET", &path, &[]))
                .await
                .map_err(|_| Error::Timeout("a request to its LocalAPI"))??;
        if !(200..300).contains(&head.status) {
            let body = tokio::time::timeout(REQUEST_TIMEOUT, read_body(&head, rest, &mut conn))
                .await
                .map_err(|_| Error::Timeout("a request to its LocalAPI"))??;
            return Err(decode_error(head.status, &body));
        }
        let chunked = head.is_chunked();
        let (raw, body) = if chunked {
            (rest, Vec::new())
        } else {
            (Vec::new(), rest)
        };
        Ok(IpnWatch {
            conn,
            chunked,
            raw,
            body,
            done: false,
        })
    }

    /// Where this computer stands on the tailnet, with every peer.
    pub async fn status(&self) -> Result<Status> {
        parse_status(&self.get_ok("GET", "/localapi/v0/status").await?)
    }

    pub async fn prefs(&self) -> Result<Prefs> {
        parse_prefs(&self.get_ok("GET", "/localapi/v0/prefs").await?)
    }

    /// Who is behind a tailnet address (`100.x.y.z`, or an address and port). `Ok(None)`
    /// when no node of the tailnet has it.
    pub async fn whois(&self, addr: SocketAddr) -> Result<Option<WhoIs>> {
        let path = format!("/localapi/v0/whois?addr={addr}");
        let (status, body) = self.call("GET", &path).await?;
        match status {
            200..=299 => parse_whois(&body).map(Some),
            404 => Ok(None),
            _ => Err(decode_error(status, &body)),
        }
    }

    /// Ask tailscaled to start an interactive login; the page to open then shows up in
    /// the status (see [`Self::wait_for_login_url`]).
    pub async fn login_interactive(&self) -> Result<()> {
        self.get_ok("POST", "/localapi/v0/login-interactive")
            .await
            .map(drop)
    }

    /// Poll the status until it names a login page (`Some`), says the computer is on the
    /// tailnet already (`None`), or `timeout` passes (`None`).
    pub async fn wait_for_login_url(&self, timeout: Duration) -> Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.status().await?;
            if s.auth_url.is_some() {
                return Ok(s.auth_url);
            }
            if s.backend_state == BackendState::Running || tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The peer called `hostname` in the current status (see [`Status::find_peer`]).
    pub async fn find_peer(&self, hostname: &str) -> Result<Option<Node>> {
        Ok(self.status().await?.find_peer(hostname).cloned())
    }

    /// A TCP connection over the tailnet to `host:port`, through tailscaled. When tailscaled
    /// can't dial, the status says why: not logged in, switched off, or the peer itself.
    pub async fn dial(&self, host: &str, port: u16) -> Result<BoxStream> {
        if !valid_host(host) {
            return Err(Error::InvalidRequest(
                "a host name with characters no host has",
            ));
        }
        let port_text = port.to_string();
        let headers = [
            ("Upgrade", "ts-dial"),
            ("Connection", "upgrade"),
            ("Dial-Host", host),
            ("Dial-Port", port_text.as_str()),
            ("Dial-Network", "tcp"),
        ];
        let attempt = async {
            let (head, rest, mut conn) = self.start("POST", "/localapi/v0/dial", &headers).await?;
            if head.status == 101 {
                return Ok(Ok(Box::new(Upgraded::new(rest, conn)) as BoxStream));
            }
            // The connection stays open after an error answer: read only its body.
            let body = read_body(&head, rest, &mut conn).await?;
            Ok(Err((head.status, body)))
        };
        let outcome = tokio::time::timeout(DIAL_TIMEOUT, attempt)
            .await
            .map_err(|_| Error::Timeout("a connection over the tailnet"))??;
        let (status, body) = match outcome {
            Ok(stream) => return Ok(stream),
            Err(failed) => failed,
        };
        if status != 502 {
            return Err(decode_error(status, &body));
        }
        // tailscaled could not dial: tell "not logged in / switched off" from a peer problem.
        let message = clean_message(
            String::from_utf8_lossy(&body)
                .trim()
                .trim_start_matches("dial failure:")
                .trim(),
        );
        let failed = Error::DialFailed {
            host: host.to_owned(),
            port,
            message,
        };
        Err(
            match self.status().await.map(|s| (s.backend_state, s.auth_url)) {
                Ok((BackendState::NeedsLogin | BackendState::NeedsMachineAuth, login_url)) => {
                    Error::NeedsLogin { login_url }
                }
                Ok((BackendState::Stopped, _)) => Error::Stopped,
                _ => failed,
            },
        )
    }
}

/// The connection after `101 Switching Protocols`: first the bytes that arrived with the
/// response head, then the socket.
struct Upgraded {
    early: Vec<u8>,
    pos: usize,
    io: Conn,
}

impl Upgraded {
    fn new(early: Vec<u8>, io: Conn) -> Self {
        Self { early, pos: 0, io }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(left) = this.early.get(this.pos..).filter(|l| !l.is_empty()) {
            let n = left.len().min(buf.remaining());
            buf.put_slice(left.get(..n).unwrap_or_default());
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

// ------------------------------------------------------------------------------- Tailnet

/// The system's own Tailscale as the way onto the tailnet.
#[derive(Debug, Clone, Default)]
pub struct SystemTailscale {
    api: LocalApi,
}

impl SystemTailscale {
    pub fn new(api: LocalApi) -> Self {
        Self { api }
    }

    pub fn api(&self) -> &LocalApi {
        &self.api
    }
}

/// What the tray shows when the status could not be read.
pub fn state_from_error(e: &Error) -> TailnetState {
    match e {
        Error::NeedsLogin { login_url } => TailnetState::NeedsLogin {
            login_url: login_url.clone(),
        },
        Error::Stopped => TailnetState::Stopped,
        other => TailnetState::Unavailable {
            reason: other.to_string(),
        },
    }
}

impl Tailnet for SystemTailscale {
    fn label(&self) -> &'static str {
        "Tailscale on this computer"
    }

    fn state(&self) -> BoxFuture<'_, TailnetState> {
        Box::pin(async move {
            match self.api.status().await {
                Ok(s) => s.tailnet_state(),
                Err(e) => state_from_error(&e),
            }
        })
    }

    fn dial<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            self.api.dial(host, port).await.map_err(|e| {
                let kind = match e {
                    Error::NotRunning(_) => io::ErrorKind::ConnectionRefused,
                    Error::Timeout(_) => io::ErrorKind::TimedOut,
                    _ => io::ErrorKind::Other,
                };
                io::Error::new(kind, e)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn bus_messages_as_tailscaled_1_96_4_writes_them() {
        let first = br#"{"Version":"1.96.4-t8cf541dfd-g62bc84ce7","SessionID":"a2449ce43db50084","ErrMessage":null,"LoginFinished":null,"State":2,"Prefs":null,"NetMap":null,"Engine":null,"BrowseToURL":null,"DriveShares":null}"#;
        let n = parse_notify(first).unwrap();
        assert_eq!(n.state, Some(BackendState::NeedsLogin));
        assert!(!n.prefs_changed && !n.health_changed && n.error.is_none());
        let prefs = br#"{"Version":"1.96.4","State":null,"Prefs":{"WantRunning":false},"BrowseToURL":null}"#;
        let n = parse_notify(prefs).unwrap();
        assert_eq!(n.state, None);
        assert!(n.prefs_changed);
        let login = br#"{"State":6,"BrowseToURL":"https://login.tailscale.com/a/abc","ErrMessage":"boom\u001b[31m"}"#;
        let n = parse_notify(login).unwrap();
        assert_eq!(n.state, Some(BackendState::Running));
        assert_eq!(
            n.browse_to_url.as_deref(),
            Some("https://login.tailscale.com/a/abc")
        );
        assert!(n.error.is_some_and(|e| !e.contains('\u{1b}')));
        assert_eq!(
            parse_notify(br#"{"State":"Stopped"}"#).unwrap().state,
            Some(BackendState::Stopped)
        );
        assert!(matches!(
            parse_notify(br#"{"State":99}"#).unwrap().state,
            Some(BackendState::Other(_))
        ));
        assert!(parse_notify(b"[]").is_err());
        assert!(parse_notify(b"not json").is_err());
    }

    /// What tailscaled 1.96.4 answered in a private network namespace, never logged in
    /// (trimmed).
    const STATUS_NEEDS_LOGIN: &str = r#"{
	"Version": "1.96.4-t8cf541dfd-g62bc84ce7", "TUN": false, "BackendState": "NeedsLogin",
	"AuthURL": "", "TailscaleIPs": null,
	"Self": {"ID": "", "HostName": "vm", "DNSName": "", "OS": "linux", "TailscaleIPs": null,
		"LastSeen": "0001-01-01T00:00:00Z", "Online": false},
	"Health": ["Tailscale is stopped."], "MagicDNSSuffix": "", "CurrentTailnet": null,
	"Peer": null, "User": null}"#;

    const STATUS_RUNNING: &str = r#"{
	"BackendState": "Running", "AuthURL": "",
	"Self": {"HostName": "laptop", "DNSName": "laptop.tail1234.ts.net.",
		"TailscaleIPs": ["100.101.1.1", "fd7a:115c:a1e0::1"], "Online": true},
	"MagicDNSSuffix": "tail1234.ts.net", "CurrentTailnet": {"Name": "me@example.com"},
	"Peer": {
		"nodekey:aa": {"HostName": "clawkeeper-1", "DNSName": "clawkeeper-1.tail1234.ts.net.",
			"TailscaleIPs": ["100.101.2.2"], "Online": false,
			"LastSeen": "2026-11-20T10:00:00Z", "Tags": ["tag:clawkeeper"]},
		"nodekey:bb": {"HostName": "clawkeeper", "DNSName": "clawkeeper.tail1234.ts.net.",
			"TailscaleIPs": ["fd7a:115c:a1e0::3", "100.101.3.3"], "Online": true,
			"KeyExpiry": "2027-05-01T00:00:00Z", "Tags": ["tag:clawkeeper"]},
		"nodekey:cc": {"HostName": "Clawkeeper", "DNSName": "old.tail1234.ts.net.",
			"TailscaleIPs": ["100.101.4.4"], "Online": false, "LastSeen": "bad time"}
	}}"#;

    #[test]
    fn a_fresh_daemon_needs_login() {
        let s = parse_status(STATUS_NEEDS_LOGIN.as_bytes()).unwrap();
        assert_eq!(s.backend_state, BackendState::NeedsLogin);
        assert_eq!(s.auth_url, None);
        assert!(s.peers.is_empty());
        assert_eq!(s.self_node.as_ref().unwrap().hostname, "vm");
        assert_eq!(s.self_node.as_ref().unwrap().last_seen, None);
        assert_eq!(
            s.tailnet_state(),
            TailnetState::NeedsLogin { login_url: None }
        );
    }

    #[test]
    fn running_maps_to_connected_and_peers_are_found_by_name() {
        let s = parse_status(STATUS_RUNNING.as_bytes()).unwrap();
        assert_eq!(
            s.tailnet_state(),
            TailnetState::Connected {
                node: "laptop".into()
            }
        );
        assert_eq!(s.tailnet.as_deref(), Some("me@example.com"));
        assert_eq!(s.peers.len(), 3);
        let p = s.find_peer("clawkeeper").unwrap();
        assert_eq!(p.ipv4(), Some("100.101.3.3".parse().unwrap()));
        assert!(p.key_expiry.is_some());
        assert_eq!(p.tags, ["tag:clawkeeper"]);
        // By the MagicDNS label too; a bad time is simply unknown.
        assert_eq!(s.find_peer("OLD").unwrap().last_seen, None);
        assert!(s.find_peer("nobody").is_none());
        assert!(s.find_peer("").is_none());
    }

    #[test]
    fn every_backend_state_has_a_tray_state() {
        let state = |b: &str, url: &str| {
            let body = serde_json::json!({"BackendState": b, "AuthURL": url}).to_string();
            parse_status(body.as_bytes()).unwrap().tailnet_state()
        };
        assert_eq!(
            state("NeedsLogin", "https://login.tailscale.com/a/abc"),
            TailnetState::NeedsLogin {
                login_url: Some("https://login.tailscale.com/a/abc".into())
            }
        );
        assert_eq!(
            state("NeedsLogin", "javascript:alert(1)"),
            TailnetState::NeedsLogin { login_url: None }
        );
        assert_eq!(
            state("NeedsMachineAuth", ""),
            TailnetState::NeedsLogin { login_url: None }
        );
        assert_eq!(state("Starting", ""), TailnetState::Starting);
        assert_eq!(state("NoState", ""), TailnetState::Starting);
        assert_eq!(state("Stopped", ""), TailnetState::Stopped);
        assert_eq!(
            state("Running", ""),
            TailnetState::Connected {
                node: "this computer".into()
            }
        );
        assert!(matches!(
            state("InUseOtherUser", ""),
            TailnetState::Unavailable { .. }
        ));
        assert!(parse_status(b"{}").is_err());
        assert!(parse_status(b"[]").is_err());
        assert!(parse_status(b"{\"BackendState\": 1}").is_err());
    }

    #[test]
    fn whois_reads_prefixes_and_the_owner() {
        let body =
            br#"{"Node": {"Name": "clawkeeper.tail1234.ts.net.", "ComputedName": "clawkeeper",
            "Addresses": ["100.101.3.3/32", "fd7a:115c:a1e0::3/128", "junk"],
            "Hostinfo": {"OS": "linux"}, "Tags": ["tag:clawkeeper"]},
            "UserProfile": {"LoginName": "tagged-devices", "DisplayName": "Tagged Devices"}}"#;
        let w = parse_whois(body).unwrap();
        assert_eq!(w.node.hostname, "clawkeeper");
        assert_eq!(w.node.tailscale_ips.len(), 2);
        assert_eq!(w.node.os, "linux");
        assert_eq!(w.login_name, "tagged-devices");
        assert!(parse_whois(b"{\"UserProfile\": {}}").is_err());
        assert_eq!(parse_ip("100.64.0.1/x"), None);
    }

    #[test]
    fn prefs_of_a_fresh_daemon() {
        let p = parse_prefs(
            br#"{"ControlURL": "", "WantRunning": false, "LoggedOut": true,
            "AdvertiseTags": null, "CorpDNS": true}"#,
        )
        .unwrap();
        assert!(p.logged_out && p.corp_dns && !p.want_running);
        assert!(p.advertise_tags.is_empty());
    }

    #[test]
    fn heads_and_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\": 1\r\n1\r\n}\r\n0\r\n\r\n";
        let (head, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Content-Type"), Some("application/json"));
        let body = response_body(&head, &raw[used..]).unwrap();
        assert_eq!(body, b"{\"a\": 1}");
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nX: y\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(decode_chunked(b"5\r\nab").is_err());
        assert!(decode_chunked(b"zz\r\n").is_err());
        let (head, used) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
            .unwrap()
            .unwrap();
        assert_eq!(
            response_body(
                &head,
                &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"[used..]
            )
            .unwrap(),
            b"ok"
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = decode_error(403, b"invalid localapi request\n");
        assert_eq!(e.code(), "tailscale_access_denied");
        let e = decode_error(500, br#"{"error": "boom\u0007"}"#);
        assert_eq!(
            e.problem().message,
            "Tailscale on this computer refused the request (HTTP 500): boom"
        );
        let p = Error::NeedsLogin { login_url: None }.problem();
        assert_eq!(p.code, "tailscale_needs_login");
        assert_eq!(
            p.hint.as_deref(),
            Some("Open Tailscale and log in, then try again.")
        );
        assert!(!valid_host("a\r\nOrigin: x"));
        assert!(
            valid_host("100.64.0.1")
                && valid_host("server.tail1234.ts.net")
                && valid_host("fd7a:115c:a1e0::3")
        );
    }

    /// tailscaled keeps the connection open after an error answer: the body ends where its
    /// framing says, not at EOF (a dial once waited for its timeout here).
    #[tokio::test]
    async fn a_body_ends_at_its_framing_not_at_eof() {
        for raw in [
            &b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 12\r\n\r\ndial failure"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nc\r\ndial failure\r\n0\r\n\r\n",
        ] {
            let (mut client, mut server) = tokio::io::duplex(1024);
            server.write_all(raw).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            let (head, used) = loop {
                let n = client.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                if let Some(h) = parse_head(&got).unwrap() {
                    break h;
                }
            };
            let body = tokio::time::timeout(
                Duration::from_secs(2),
                read_body(&head, got[used..].to_vec(), &mut client),
            )
            .await
            .expect("waited for EOF")
            .unwrap();
            assert_eq!(body, b"dial failure");
            drop(server);
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let api = LocalApi::new(dir.path().join("tailscaled.sock"));
        let e = api.status().await.unwrap_err();
        assert_eq!(e.code(), "tailscale_not_running");
        let t = SystemTailscale::new(api);
        assert!(matches!(t.state().await, TailnetState::Unavailable { .. }));
        let err = t.dial("100.64.0.1", 80).await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// Bytes the peer sends right behind the 101 (in the same read) reach the caller.
    #[cfg(unix)]
    #[tokio::test]
    async fn bytes_after_the_upgrade_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(
                req.contains("Dial-Host: 100.64.0.9\r\n")
                    && !req.to_ascii_lowercase().contains("origin")
            );
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ts-dial\r\nConnection: upgrade\r\n\r\nhello")
                .await
                .unwrap();
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
        });
        let mut stream = LocalApi::new(&path)
            .dial("100.64.0.9", 18789)
            .await
            .unwrap();
        let mut hello = [0u8; 5];
        stream.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
        stream.write_all(b"ping").await.unwrap();
        let mut pong = [0u8; 4];
        stream.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"PING");
    }
}
