//! A **contract fake** of Tailscale's coordination server ("control plane",
//! `https://controlplane.tailscale.com`), in process, for the REAL tailscaled to log in to.
//!
//! It follows the client's side of the protocol as tailscaled 1.96.4 speaks it (read in
//! tailscale/tailscale: `control/controlclient/direct.go`, `control/controlbase/`,
//! `control/controlhttp/` (client side of the upgrade), `tailcfg/tailcfg.go` for the JSON
//! shapes, `derp/derp_client.go`), written from that description, not copied:
//!
//! * `GET /key?v=<capver>` → `{"legacyPublicKey": "mkey:0…0", "publicKey": "mkey:<hex>"}`,
//!   the server's Noise key (`tailcfg.OverTLSPublicKeyResponse`);
//! * `POST /ts2021` with `Upgrade: tailscale-control-protocol` and the Noise IK initiation
//!   in `X-Tailscale-Handshake` → `101`, the handshake response, then HTTP/2 (h2c) inside
//!   the Noise record layer ([`noise`]: ts2021, big-endian record nonces);
//! * inside it, `POST /machine/register` (`tailcfg.RegisterRequest` → `RegisterResponse`):
//!   a pre-auth key in `Auth.AuthKey` joins a new node, or re-authenticates the node with
//!   the same machine key (a new node key; the old one kept in [`ControlNode::old_node_keys`]);
//!   without a key, a known node key is a refresh and a known `OldNodeKey` a key rotation; an
//!   `Expiry` in the past is a logout. A key that is unknown, revoked, expired or a used
//!   single-use key is refused with control's `"invalid key: unable to validate API key"`
//!   (what the CLI then prints after `backend error: `);
//! * `POST /machine/map` (`MapRequest`): with `Stream: true` a long poll of
//!   `MapResponse`s, each framed as the client expects (4-byte little-endian length, then
//!   the JSON zstd-compressed), a full netmap (self node, peers, DERP map, packet filter,
//!   DNS) at the start and whenever the tailnet changes, a keep-alive every 30 s; the node is
//!   [`ControlNode::online`] while its stream is open. A non-streaming `OmitPeers` request
//!   (an endpoint/hostinfo update) gets an empty 200;
//! * `GET /derp` with `Upgrade: DERP` → a DERP server ([`derp`]) that completes the
//!   handshake and answers pings, so that the node has a home region; it relays nothing.
//!   The DERP map points at this fake's own port: plain HTTP (tailscaled needs
//!   `TS_DEBUG_USE_DERP_HTTP=1`) or, with a TLS listener, TLS (`InsecureForTests`).
//!
//! With a TLS listener ([`ContractFakeTailscaleControl::start_on`] with a [`TlsIdentity`])
//! it can stand in for `controlplane.tailscale.com` itself — the product's own command lines
//! carry no `--login-server`: the name resolved to this fake, `/key` and DERP over TLS on
//! 443 with a test CA the daemon trusts (`SSL_CERT_FILE`), the Noise upgrade on plain 80
//! (tailscaled tries port 80 first for ts2021).
//!
//! What it does not do: interactive (browser) login, node key expiry, ACLs beyond
//! "everything may talk to everything", DNS, relaying (peers never reach each other through
//! it), STUN, Tailscale SSH, Funnel, the `/machine/set-dns`, `id-token` and c2n endpoints
//! (404), and the admin API (that is [`crate::fake_tailscale::ContractFakeTailscale`], whose
//! tailnet it can share: [`ContractFakeTailscaleControl::share_tailnet`] — auth keys minted
//! and revoked through the API, devices listed there with their real node keys). A key that
//! is not pre-authorized gets `MachineAuthorized: false` and nothing more (no approval).
//!
//! Faults: [`ContractFakeTailscaleControl::refuse_next_registrations`] (control answers a
//! register with an error), [`ContractFakeTailscaleControl::drop_map_streams`] (every node
//! loses its long poll, as when control restarts), [`ContractFakeTailscaleControl::set_derp`]
//! (no DERP: the node has no home region).

pub mod derp;
pub mod noise;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fake_tailscale::{NodeLogin, Tailnet};

/// The tailnet's MagicDNS suffix.
pub const DOMAIN: &str = "fake-tailnet.ts.net";
/// Control's answer to a register with an unusable auth key (unknown, revoked, expired or
/// a used single-use key); the CLI prints `backend error: ` and this.
pub const INVALID_KEY: &str = "invalid key: unable to validate API key";
/// Control's answer to a register without an auth key from a node it does not know: the
/// fake has no interactive login.
pub const NEEDS_AUTH_KEY: &str = "this control server fake accepts auth keys only; pass --auth-key";
/// The DERP region the fake serves.
pub const DERP_REGION: u16 = 900;

type Body = BoxBody<Bytes, Infallible>;

/// A certificate chain and key (PEM) for the TLS listener.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

/// A node (device) as control sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlNode {
    pub id: u64,
    /// `n<id>CNTRL`-style stable id (the API's `nodeId`).
    pub stable_id: String,
    /// `mkey:<hex>`: stays with the device across re-authentications.
    pub machine_key: String,
    /// `nodekey:<hex>`: replaced by every re-authentication and key rotation.
    pub node_key: String,
    /// Earlier node keys, oldest first.
    pub old_node_keys: Vec<String>,
    pub hostname: String,
    pub tags: Vec<String>,
    /// The auth key it last authenticated with.
    pub auth_key: String,
    /// How many times an auth key (re-)authenticated it: 1 after the join.
    pub authentications: u32,
    /// Its map long poll is open.
    pub online: bool,
    /// It holds a DERP connection to the fake.
    pub derp_connected: bool,
    /// It logged out (`tailscale logout`) and has not authenticated since.
    pub logged_out: bool,
    pub created: String,
}

/// An auth key the fake accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthKeyInfo {
    pub key: String,
    pub reusable: bool,
    /// Tags a node joining with it gets (empty: the tags it asks for).
    pub tags: Vec<String>,
    pub uses: u32,
    pub revoked: bool,
}

/// One `/machine/register` the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub machine_key: String,
    pub node_key: String,
    /// The auth key it carried, if any.
    pub auth_key: Option<String>,
    /// The node's id, or control's error message.
    pub outcome: Result<u64, String>,
}

#[derive(Default)]
struct Faults {
    refuse_registrations: u32,
    refuse_message: String,
    no_derp: bool,
}

struct State {
    server_private: noise::Key,
    derp_private: [u8; 32],
    /// The DERP node's address and port in the DERP map: this fake's own listener.
    derp_host: String,
    derp_port: u16,
    derp_tls: bool,
    /// The API fake's tailnet, when shared ([`ContractFakeTailscaleControl::share_tailnet`]):
    /// auth keys and devices are its.
    tailnet: Option<Tailnet>,
    auth_keys: Vec<AuthKeyInfo>,
    nodes: Vec<ControlNode>,
    /// Per node: the disco key and the Hostinfo it last sent (for the netmap).
    extra: Vec<(u64, String, Value)>,
    registrations: Vec<Registration>,
    requests: Vec<String>,
    next_id: u64,
    faults: Faults,
    /// Bumped on every change the map streams should pass on.
    generation: tokio::sync::watch::Sender<u64>,
    /// Bumped by `drop_map_streams`: streams of an older epoch end.
    stream_epoch: u64,
    /// Per node id: the number of the newest map stream.
    streams: Vec<(u64, u64)>,
    next_stream: u64,
}

impl State {
    /// Fresh keys, no auth keys or nodes; its DERP server at `derp` (over TLS or not).
    fn new(derp: SocketAddr, derp_tls: bool) -> State {
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let derp_host = if derp.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            derp.ip().to_string()
        };
        State {
            server_private: noise::random_key(),
            derp_private: noise::random_key(),
            derp_host,
            derp_port: derp.port(),
            derp_tls,
            tailnet: None,
            auth_keys: Vec::new(),
            nodes: Vec::new(),
            extra: Vec::new(),
            registrations: Vec::new(),
            requests: Vec::new(),
            next_id: 1,
            faults: Faults::default(),
            generation,
            stream_epoch: 0,
            streams: Vec::new(),
            next_stream: 1,
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    match s.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub struct ContractFakeTailscaleControl {
    http_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    state: Shared,
    stop: CancellationToken,
}

impl Drop for ContractFakeTailscaleControl {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ContractFakeTailscaleControl {
    /// Serves plain HTTP on `bind` (port 0: any free port).
    pub async fn start(bind: SocketAddr) -> std::io::Result<Self> {
        let l = std::net::TcpListener::bind(bind)?;
        Self::start_on(l, None)
    }

    /// Serves on listeners made elsewhere (e.g. bound inside tailscaled's network namespace,
    /// [`crate::tailscaled::Tailscaled::in_netns`]): plain HTTP on `http`, and on `tls` with
    /// `identity` if given (DERP is then served over TLS there). Needs a Tokio runtime.
    pub fn start_on(
        http: std::net::TcpListener,
        tls: Option<(std::net::TcpListener, TlsIdentity)>,
    ) -> std::io::Result<Self> {
        http.set_nonblocking(true)?;
        let http_addr = http.local_addr()?;
        let http = TcpListener::from_std(http)?;
        let stop = CancellationToken::new();
        let tls = match tls {
            Some((l, id)) => {
                l.set_nonblocking(true)?;
                let addr = l.local_addr()?;
                Some((TcpListener::from_std(l)?, addr, tls_acceptor(&id)?))
            }
            None => None,
        };
        let tls_addr = tls.as_ref().map(|(_, a, _)| *a);
        let state: Shared = Arc::new(Mutex::new(State::new(
            tls_addr.unwrap_or(http_addr),
            tls_addr.is_some(),
        )));
        tokio::spawn(accept_loop(http, None, state.clone(), stop.clone()));
        if let Some((l, _, acceptor)) = tls {
            tokio::spawn(accept_loop(l, Some(acceptor), state.clone(), stop.clone()));
        }
        Ok(Self {
            http_addr,
            tls_addr,
            state,
            stop,
        })
    }

    /// `http://<addr>`: what `tailscale up --login-server=` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The server's Noise public key, `mkey:<hex>`.
    pub fn public_key(&self) -> String {
        let s = lock(&self.state);
        format!("mkey:{}", hex::encode(noise::public_of(&s.server_private)))
    }

    /// Makes this control plane and the API fake that `tailnet` belongs to one Tailscale:
    /// from now on a register's auth key is checked and used up by the API's rules (keys
    /// minted through the API, [`crate::fake_tailscale::ContractFakeTailscale::add_auth_key`];
    /// this fake's own [`Self::add_auth_key`] keys no longer count), each node is the API's
    /// device (its `nodeId` is the node's stable id, its `nodeKey` the node's real node
    /// key, `connectedToControl` while its map stream is open), and a device deleted
    /// through the API is forgotten here (its stream ends; it needs a new key to return).
    pub fn share_tailnet(&self, tailnet: Tailnet) {
        let mut changes = tailnet.device_changes();
        lock(&self.state).tailnet = Some(tailnet.clone());
        let (state, stop) = (self.state.clone(), self.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = stop.cancelled() => return,
                }
                let ids = tailnet.device_ids();
                forget_missing(&mut lock(&state), &ids);
            }
        });
    }

    /// Lets `key` join (and re-authenticate) nodes: once, or as often as wanted if
    /// `reusable`. Nodes joining with it get `tags` (if any).
    pub fn add_auth_key(&self, key: &str, reusable: bool, tags: &[&str]) {
        let mut s = lock(&self.state);
        s.auth_keys.retain(|k| k.key != key);
        s.auth_keys.push(AuthKeyInfo {
            key: key.to_string(),
            reusable,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            uses: 0,
            revoked: false,
        });
    }

    /// A new key in Tailscale's shape (`tskey-auth-<id>-<secret>`), added as
    /// [`Self::add_auth_key`] does.
    pub fn mint_auth_key(&self, reusable: bool, tags: &[&str]) -> String {
        let id: [u8; 6] = rand::random();
        let secret: [u8; 16] = rand::random();
        let key = format!("tskey-auth-k{}-{}", hex::encode(id), hex::encode(secret));
        self.add_auth_key(&key, reusable, tags);
        key
    }

    /// Whether a key of that value existed (and is now revoked).
    pub fn revoke_auth_key(&self, key: &str) -> bool {
        let mut s = lock(&self.state);
        match s.auth_keys.iter_mut().find(|k| k.key == key) {
            Some(k) => {
                k.revoked = true;
                true
            }
            None => false,
        }
    }

    pub fn auth_keys(&self) -> Vec<AuthKeyInfo> {
        lock(&self.state).auth_keys.clone()
    }

    pub fn nodes(&self) -> Vec<ControlNode> {
        lock(&self.state).nodes.clone()
    }

    pub fn node(&self, id: u64) -> Option<ControlNode> {
        lock(&self.state).nodes.iter().find(|n| n.id == id).cloned()
    }

    /// Removes a node, as deleting the device in the admin console does: its map stream
    /// ends and it can't come back without an auth key.
    pub fn delete_node(&self, id: u64) -> bool {
        let mut s = lock(&self.state);
        let before = s.nodes.len();
        s.nodes.retain(|n| n.id != id);
        s.extra.retain(|e| e.0 != id);
        let gone = s.nodes.len() != before;
        if gone {
            s.generation.send_modify(|g| *g += 1);
        }
        gone
    }

    /// Every `/machine/register` answered so far, in order.
    pub fn registrations(&self) -> Vec<Registration> {
        lock(&self.state).registrations.clone()
    }

    /// Every request so far (`GET /key`, `POST /machine/map`, …), in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// The next `n` registrations that carry an auth key are answered with `message` as
    /// control's error (the key is not used up).
    pub fn refuse_next_registrations(&self, n: u32, message: &str) {
        let mut s = lock(&self.state);
        s.faults.refuse_registrations = n;
        s.faults.refuse_message = message.to_string();
    }

    /// Ends every open map stream (nodes show offline until they poll again).
    pub fn drop_map_streams(&self) {
        let mut s = lock(&self.state);
        s.stream_epoch += 1;
        s.generation.send_modify(|g| *g += 1);
    }

    /// With `false`, `/derp` answers 404 (no home region for the nodes).
    pub fn set_derp(&self, enabled: bool) {
        lock(&self.state).faults.no_derp = !enabled;
    }

    /// Waits up to `timeout` for a node that `pred` accepts.
    pub async fn wait_for_node(
        &self,
        timeout: Duration,
        pred: impl Fn(&ControlNode) -> bool,
    ) -> Option<ControlNode> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(n) = self.nodes().into_iter().find(|n| pred(n)) {
                return Some(n);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Forgets the nodes whose device the shared tailnet no longer has (`ids`: its `nodeId`s).
fn forget_missing(s: &mut State, ids: &[String]) {
    let gone: Vec<u64> = s
        .nodes
        .iter()
        .filter(|n| !ids.contains(&n.stable_id))
        .map(|n| n.id)
        .collect();
    if gone.is_empty() {
        return;
    }
    s.nodes.retain(|n| !gone.contains(&n.id));
    s.extra.retain(|e| !gone.contains(&e.0));
    s.streams.retain(|e| !gone.contains(&e.0));
    s.generation.send_modify(|g| *g += 1);
}

fn tls_acceptor(id: &TlsIdentity) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let certs = CertificateDer::pem_slice_iter(id.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("TLS certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
        .map_err(|e| bad(format!("TLS key: {e}")))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Shared,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let (state, tls, stop) = (state.clone(), tls.clone(), stop.clone());
        tokio::spawn(async move {
            let svc = {
                let (state, stop) = (state.clone(), stop.clone());
                service_fn(move |req| outer(state.clone(), stop.clone(), req))
            };
            let builder = hyper::server::conn::http1::Builder::new();
            let served = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(t) => {
                        let conn = builder
                            .serve_connection(TokioIo::new(t), svc)
                            .with_upgrades();
                        tokio::select! { r = conn => r, _ = stop.cancelled() => Ok(()) }
                    }
                    Err(e) => {
                        eprintln!("fake control: TLS handshake: {e}");
                        return;
                    }
                },
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades();
                    tokio::select! { r = conn => r, _ = stop.cancelled() => Ok(()) }
                }
            };
            if let Err(e) = served {
                eprintln!("fake control: http/1: {e}");
            }
        });
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(msg.to_string()));
    *r.status_mut() = status;
    r
}

fn json_resp(v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn switching(protocol: &'static str) -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static(protocol),
    );
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    r
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

async fn outer(
    state: Shared,
    stop: CancellationToken,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    lock(&state)
        .requests
        .push(format!("{} {}", req.method(), path));
    Ok(match path.as_str() {
        "/key" => {
            let public = noise::public_of(&lock(&state).server_private);
            json_resp(&json!({
                "legacyPublicKey": format!("mkey:{}", "0".repeat(64)),
                "publicKey": format!("mkey:{}", hex::encode(public)),
            }))
        }
        "/ts2021" => ts2021(state, stop, req),
        "/derp" => {
            if lock(&state).faults.no_derp {
                text(StatusCode::NOT_FOUND, "not found")
            } else {
                derp_upgrade(state, stop, req)
            }
        }
        "/derp/probe" | "/derp/latency-check" => text(StatusCode::OK, ""),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    })
}

fn ts2021(state: Shared, stop: CancellationToken, req: Request<Incoming>) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade != "tailscale-control-protocol" {
        return text(StatusCode::BAD_REQUEST, "unknown next protocol");
    }
    let Some(init) = req
        .headers()
        .get("x-tailscale-handshake")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "missing Tailscale handshake header",
        );
    };
    let server_private = lock(&state).server_private;
    let acc = match noise::accept(&server_private, &init) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake control: ts2021 handshake refused: {e}");
            return text(StatusCode::BAD_REQUEST, "handshake failed");
        }
    };
    let machine_key = format!("mkey:{}", hex::encode(acc.machine_key));
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                eprintln!("fake control: ts2021 upgrade: {e}");
                return;
            }
        };
        let plain = match noise::serve(TokioIo::new(upgraded), acc).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("fake control: ts2021: {e}");
                return;
            }
        };
        let svc = {
            let stop = stop.clone();
            service_fn(move |req| inner(state.clone(), stop.clone(), machine_key.clone(), req))
        };
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(plain), svc);
        tokio::select! {
            r = conn => if let Err(e) = r { eprintln!("fake control: ts2021 http/2: {e}") },
            _ = stop.cancelled() => {}
        }
    });
    switching("tailscale-control-protocol")
}

fn derp_upgrade(state: Shared, stop: CancellationToken, req: Request<Incoming>) -> Response<Body> {
    let derp_private = lock(&state).derp_private;
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let st = state.clone();
        let serve = derp::serve(TokioIo::new(upgraded), derp_private, move |node_key, up| {
            let mut s = lock(&st);
            if let Some(n) = s.nodes.iter_mut().find(|n| n.node_key == node_key) {
                n.derp_connected = up;
            }
        });
        tokio::select! { _ = serve => {}, _ = stop.cancelled() => {} }
    });
    switching("DERP")
}

async fn inner(
    state: Shared,
    stop: CancellationToken,
    machine_key: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(text(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    lock(&state).requests.push(format!("{method} {path}"));
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Ok(text(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}"))),
    };
    Ok(match path.as_str() {
        "/machine/register" => {
            let mut s = lock(&state);
            let (answer, record) = register(&mut s, &machine_key, &v);
            s.registrations.push(record);
            json_resp(&answer)
        }
        "/machine/map" => map(&state, &stop, &machine_key, &v),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    })
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn is_zero_key(k: &str) -> bool {
    k.rsplit(':')
        .next()
        .is_none_or(|h| h.bytes().all(|b| b == b'0'))
}

/// What control answers a register with: (`RegisterResponse`, the record of it).
fn register(s: &mut State, machine_key: &str, req: &Value) -> (Value, Registration) {
    let node_key = str_field(req, "NodeKey");
    let old_node_key = str_field(req, "OldNodeKey");
    let auth_key = req
        .pointer("/Auth/AuthKey")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let hostinfo = req.get("Hostinfo").cloned().unwrap_or(Value::Null);
    let user = json!({"ID": 1, "DisplayName": "Tagged Devices"});
    let login = json!({"ID": 1, "Provider": "", "LoginName": "tagged-devices",
        "DisplayName": "Tagged Devices"});
    let mut record = Registration {
        machine_key: machine_key.to_string(),
        node_key: node_key.clone(),
        auth_key: auth_key.clone(),
        outcome: Err(String::new()),
    };
    let error = |record: &mut Registration, msg: &str| {
        record.outcome = Err(msg.to_string());
        json!({ "Error": msg })
    };
    if is_zero_key(&node_key) {
        return (error(&mut record, "missing node key"), record);
    }

    // Logout: the client sends an expiry in the past (direct.go: time.Unix(123, 0)).
    let expiry = str_field(req, "Expiry");
    if let Ok(t) = OffsetDateTime::parse(&expiry, &Rfc3339) {
        if t < OffsetDateTime::now_utc() && t.year() > 1 {
            let Some(n) = s
                .nodes
                .iter_mut()
                .find(|n| n.machine_key == machine_key && n.node_key == node_key)
            else {
                return (error(&mut record, "node not found"), record);
            };
            n.logged_out = true;
            n.online = false;
            record.outcome = Ok(n.id);
            let stable_id = n.stable_id.clone();
            if let Some(t) = &s.tailnet {
                t.set_online(&stable_id, false);
            }
            s.generation.send_modify(|g| *g += 1);
            return (
                json!({"User": user, "Login": login, "NodeKeyExpired": true}),
                record,
            );
        }
    }

    let ok = json!({"User": user, "Login": login, "MachineAuthorized": true});
    if let Some(key) = auth_key {
        if s.faults.refuse_registrations > 0 {
            s.faults.refuse_registrations -= 1;
            let msg = s.faults.refuse_message.clone();
            return (error(&mut record, &msg), record);
        }
        let requested: Vec<String> = hostinfo
            .get("RequestTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let hostname = hostinfo
            .get("Hostname")
            .and_then(Value::as_str)
            .unwrap_or("node")
            .to_string();
        // The key's tags, and the device in the shared tailnet (its nodeId and number).
        let (tags, device, authorized) = match s.tailnet.clone() {
            Some(tailnet) => {
                let login = NodeLogin {
                    auth_key: &key,
                    machine_key,
                    node_key: &node_key,
                    hostname: &hostname,
                    requested_tags: &requested,
                };
                match tailnet.log_in(&login) {
                    Ok(d) => (d.tags, Some((d.node_id, d.number)), d.authorized),
                    Err(why) => {
                        eprintln!("fake control: the tailnet refused the auth key: {why}");
                        return (error(&mut record, INVALID_KEY), record);
                    }
                }
            }
            None => {
                let Some(k) = s.auth_keys.iter_mut().find(|k| k.key == key) else {
                    return (error(&mut record, INVALID_KEY), record);
                };
                if k.revoked || (!k.reusable && k.uses > 0) {
                    return (error(&mut record, INVALID_KEY), record);
                }
                k.uses += 1;
                let tags = if k.tags.is_empty() {
                    requested
                } else {
                    k.tags.clone()
                };
                (tags, None, true)
            }
        };
        // A node of this machine that the tailnet no longer has as this device is gone.
        if let Some((node_id, _)) = &device {
            let before = s.nodes.len();
            s.nodes
                .retain(|n| n.machine_key != machine_key || n.stable_id == *node_id);
            if s.nodes.len() != before {
                let ids: Vec<u64> = s.nodes.iter().map(|n| n.id).collect();
                s.extra.retain(|e| ids.contains(&e.0));
            }
        }
        // The same machine key is the same device: a re-authentication.
        let id = if let Some(n) = s.nodes.iter_mut().find(|n| n.machine_key == machine_key) {
            if n.node_key != node_key {
                let old = std::mem::replace(&mut n.node_key, node_key.clone());
                n.old_node_keys.push(old);
            }
            n.hostname = hostname;
            n.tags = tags;
            n.auth_key = key;
            n.authentications += 1;
            n.logged_out = false;
            n.id
        } else {
            let (id, stable_id) = match device {
                Some((node_id, number)) => (number, node_id),
                None => {
                    let id = s.next_id;
                    (id, format!("n{id}FakeCNTRL"))
                }
            };
            s.next_id = s.next_id.max(id + 1);
            s.nodes.push(ControlNode {
                id,
                stable_id,
                machine_key: machine_key.to_string(),
                node_key: node_key.clone(),
                old_node_keys: Vec::new(),
                hostname,
                tags,
                auth_key: key,
                authentications: 1,
                online: false,
                derp_connected: false,
                logged_out: false,
                created: now_rfc3339(),
            });
            id
        };
        set_extra(s, id, None, Some(hostinfo));
        record.outcome = Ok(id);
        s.generation.send_modify(|g| *g += 1);
        // A key that isn't pre-authorized: the device waits for an admin's approval.
        let mut answer = ok;
        answer["MachineAuthorized"] = json!(authorized);
        return (answer, record);
    }

    // No auth key: a known node refreshing, or rotating its node key.
    if let Some(n) = s
        .nodes
        .iter()
        .find(|n| n.machine_key == machine_key && n.node_key == node_key && !n.logged_out)
    {
        record.outcome = Ok(n.id);
        return (ok, record);
    }
    if !is_zero_key(&old_node_key) {
        if let Some(n) = s
            .nodes
            .iter_mut()
            .find(|n| n.machine_key == machine_key && n.node_key == old_node_key && !n.logged_out)
        {
            let old = std::mem::replace(&mut n.node_key, node_key.clone());
            n.old_node_keys.push(old);
            record.outcome = Ok(n.id);
            let stable_id = n.stable_id.clone();
            if let Some(t) = &s.tailnet {
                t.set_node_key(&stable_id, &node_key);
            }
            s.generation.send_modify(|g| *g += 1);
            return (ok, record);
        }
    }
    (error(&mut record, NEEDS_AUTH_KEY), record)
}

fn set_extra(s: &mut State, id: u64, disco: Option<String>, hostinfo: Option<Value>) {
    let pos = match s.extra.iter().position(|e| e.0 == id) {
        Some(p) => p,
        None => {
            s.extra.push((id, String::new(), Value::Null));
            s.extra.len() - 1
        }
    };
    if let Some(d) = disco.filter(|d| !d.is_empty()) {
        s.extra[pos].1 = d;
    }
    if let Some(h) = hostinfo.filter(|h| !h.is_null()) {
        s.extra[pos].2 = h;
    }
}

/// One map response as the client reads it: length (4, little-endian), then the JSON
/// zstd-compressed (control/controlclient/direct.go, `sendMapRequest`'s reader).
pub fn frame_map_response(v: &Value) -> Bytes {
    let z = ruzstd::encoding::compress_to_vec(
        v.to_string().as_bytes(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    let mut out = Vec::with_capacity(4 + z.len());
    out.extend_from_slice(&(z.len() as u32).to_le_bytes());
    out.extend_from_slice(&z);
    Bytes::from(out)
}

fn node_json(s: &State, n: &ControlNode) -> Value {
    let v4 = format!("100.64.0.{}/32", n.id);
    let v6 = format!("fd7a:115c:a1e0::{}/128", n.id);
    let (disco, hostinfo) = s
        .extra
        .iter()
        .find(|e| e.0 == n.id)
        .map(|e| (e.1.clone(), e.2.clone()))
        .unwrap_or_default();
    let mut node = json!({
        "ID": n.id,
        "StableID": n.stable_id,
        "Name": format!("{}.{DOMAIN}.", n.hostname),
        "User": 1,
        "Key": n.node_key,
        "Machine": n.machine_key,
        "Addresses": [v4, v6],
        "AllowedIPs": [v4, v6],
        "HomeDERP": DERP_REGION,
        "Hostinfo": hostinfo,
        "Created": n.created,
        "Cap": 133,
        "Tags": n.tags,
        "Online": n.online,
        "MachineAuthorized": true,
        "ComputedName": n.hostname,
        "ComputedNameWithHost": n.hostname,
    });
    if !disco.is_empty() {
        node["DiscoKey"] = json!(disco);
    }
    node
}

fn netmap(s: &State, n: &ControlNode) -> Value {
    let peers: Vec<Value> = s
        .nodes
        .iter()
        .filter(|p| p.id != n.id && !p.logged_out)
        .map(|p| node_json(s, p))
        .collect();
    json!({
        "Node": node_json(s, n),
        "Peers": peers,
        "DERPMap": {
            "Regions": {
                DERP_REGION.to_string(): {
                    "RegionID": DERP_REGION,
                    "RegionCode": "fake",
                    "RegionName": "Fake DERP (loopback)",
                    "Nodes": [{
                        "Name": format!("{DERP_REGION}a"),
                        "RegionID": DERP_REGION,
                        "HostName": s.derp_host,
                        "IPv4": s.derp_host,
                        "IPv6": "none",
                        "STUNPort": -1,
                        "DERPPort": s.derp_port,
                        "InsecureForTests": s.derp_tls,
                    }]
                }
            },
            "omitDefaultRegions": true,
        },
        "DNSConfig": {"Domains": [DOMAIN]},
        "Domain": DOMAIN,
        "CollectServices": false,
        "PacketFilter": [{"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]}],
        "UserProfiles": [{"ID": 1, "LoginName": "tagged-devices", "DisplayName": "Tagged Devices"}],
        "ControlTime": now_rfc3339(),
    })
}

fn map(state: &Shared, stop: &CancellationToken, machine_key: &str, req: &Value) -> Response<Body> {
    let node_key = str_field(req, "NodeKey");
    let stream = req.get("Stream").and_then(Value::as_bool).unwrap_or(false);
    let omit_peers = req
        .get("OmitPeers")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut s = lock(state);
    let Some(idx) = s
        .nodes
        .iter()
        .position(|n| n.machine_key == machine_key && n.node_key == node_key && !n.logged_out)
    else {
        return text(StatusCode::UNAUTHORIZED, "node not found");
    };
    let id = s.nodes[idx].id;
    set_extra(
        &mut s,
        id,
        Some(str_field(req, "DiscoKey")),
        req.get("Hostinfo").cloned(),
    );
    if !stream && omit_peers {
        return Response::new(full(""));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    if !stream {
        let _ = tx.try_send(Ok(Frame::data(frame_map_response(&netmap(
            &s,
            &s.nodes[idx],
        )))));
        drop(tx);
    } else {
        s.nodes[idx].online = true;
        if let Some(t) = &s.tailnet {
            t.set_online(&s.nodes[idx].stable_id, true);
        }
        let my_stream = s.next_stream;
        s.next_stream += 1;
        s.streams.retain(|e| e.0 != id);
        s.streams.push((id, my_stream));
        let my_epoch = s.stream_epoch;
        // The first netmap goes out with the online flag set; the change reaches the peers.
        let _ = tx.try_send(Ok(Frame::data(frame_map_response(&netmap(
            &s,
            &s.nodes[idx],
        )))));
        s.generation.send_modify(|g| *g += 1);
        let mut changes = s.generation.subscribe();
        changes.mark_unchanged();
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            let keep_alive = frame_map_response(&json!({"KeepAlive": true}));
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                let msg = tokio::select! {
                    _ = tick.tick() => keep_alive.clone(),
                    r = changes.changed() => {
                        if r.is_err() {
                            break;
                        }
                        let s = lock(&state);
                        if s.stream_epoch != my_epoch {
                            break;
                        }
                        match s.nodes.iter().find(|n| n.id == id && !n.logged_out) {
                            Some(n) => frame_map_response(&netmap(&s, n)),
                            None => break,
                        }
                    }
                    _ = tx.closed() => break,
                    _ = stop.cancelled() => break,
                };
                if tx.send(Ok(Frame::data(msg))).await.is_err() {
                    break;
                }
            }
            let mut s = lock(&state);
            if s.streams.contains(&(id, my_stream)) {
                s.streams.retain(|e| e.0 != id);
                if let Some(n) = s.nodes.iter_mut().find(|n| n.id == id) {
                    n.online = false;
                    let stable_id = n.stable_id.clone();
                    if let Some(t) = &s.tailnet {
                        t.set_online(&stable_id, false);
                    }
                }
                s.generation.send_modify(|g| *g += 1);
            }
        });
    }
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::new(BodyExt::boxed(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn state() -> State {
        State {
            auth_keys: vec![
                AuthKeyInfo {
                    key: "tskey-auth-once".into(),
                    reusable: false,
                    tags: vec!["tag:clawkeeper".into()],
                    uses: 0,
                    revoked: false,
                },
                AuthKeyInfo {
                    key: "tskey-auth-many".into(),
                    reusable: true,
                    tags: vec![],
                    uses: 0,
                    revoked: false,
                },
            ],
            ..State::new(SocketAddr::from(([127, 0, 0, 1], 80)), false)
        }
    }

    fn nk(b: u8) -> String {
        format!("nodekey:{}", hex::encode([b; 32]))
    }

    fn req(node: u8, old: Option<u8>, key: Option<&str>) -> Value {
        json!({
            "Version": 130,
            "NodeKey": nk(node),
            "OldNodeKey": old.map_or(format!("nodekey:{}", "0".repeat(64)), nk),
            "Auth": {"AuthKey": key.unwrap_or("")},
            "Expiry": "0001-01-01T00:00:00Z",
            "Hostinfo": {"Hostname": "ck-node", "RequestTags": ["tag:asked"]},
        })
    }

    #[test]
    fn a_single_use_key_joins_once_and_reauth_keeps_the_node() {
        let mut s = state();
        let (a, r) = register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-once")));
        assert_eq!(a["MachineAuthorized"], true, "{a}");
        assert_eq!(r.outcome, Ok(1));
        assert_eq!(s.nodes[0].tags, vec!["tag:clawkeeper".to_string()]);
        // Used: refused, from another machine too.
        let (a, r) = register(&mut s, "mkey:bb", &req(2, None, Some("tskey-auth-once")));
        assert_eq!(a["Error"], INVALID_KEY);
        assert_eq!(r.outcome, Err(INVALID_KEY.to_string()));
        assert_eq!(s.nodes.len(), 1);
        // Re-auth of the same machine with another key: same node, new node key.
        let (_, r) = register(&mut s, "mkey:aa", &req(3, Some(1), Some("tskey-auth-many")));
        assert_eq!(r.outcome, Ok(1));
        assert_eq!(s.nodes.len(), 1);
        assert_eq!(s.nodes[0].node_key, nk(3));
        assert_eq!(s.nodes[0].old_node_keys, vec![nk(1)]);
        assert_eq!(s.nodes[0].authentications, 2);
        // A key without tags gives the node the tags it asked for.
        assert_eq!(s.nodes[0].tags, vec!["tag:asked".to_string()]);
        // A reusable key joins a second machine as a second node.
        let (_, r) = register(&mut s, "mkey:cc", &req(4, None, Some("tskey-auth-many")));
        assert_eq!(r.outcome, Ok(2));
        assert_eq!(s.auth_keys[1].uses, 2);
    }

    #[test]
    fn unknown_and_revoked_keys_are_refused_and_unkeyed_unknown_nodes_too() {
        let mut s = state();
        let (a, _) = register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-nope")));
        assert_eq!(a["Error"], INVALID_KEY);
        s.auth_keys[1].revoked = true;
        let (a, _) = register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-many")));
        assert_eq!(a["Error"], INVALID_KEY);
        let (a, _) = register(&mut s, "mkey:aa", &req(1, None, None));
        assert_eq!(a["Error"], NEEDS_AUTH_KEY);
        assert!(s.nodes.is_empty());
        assert_eq!(s.auth_keys[0].uses, 0);
    }

    #[test]
    fn refresh_rotation_and_logout_without_a_key() {
        let mut s = state();
        register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-once")));
        // Refresh: same node key.
        let (a, r) = register(&mut s, "mkey:aa", &req(1, None, None));
        assert_eq!(r.outcome, Ok(1), "{a}");
        // Rotation: new key, old one given.
        let (_, r) = register(&mut s, "mkey:aa", &req(2, Some(1), None));
        assert_eq!(r.outcome, Ok(1));
        assert_eq!(s.nodes[0].node_key, nk(2));
        // The old key from another machine: not this node.
        let (a, _) = register(&mut s, "mkey:bb", &req(5, Some(2), None));
        assert_eq!(a["Error"], NEEDS_AUTH_KEY);
        // Logout.
        let mut out = req(2, None, None);
        out["Expiry"] = json!("1970-01-01T00:02:03Z");
        let (a, _) = register(&mut s, "mkey:aa", &out);
        assert_eq!(a["NodeKeyExpired"], true);
        assert!(s.nodes[0].logged_out);
        let (a, _) = register(&mut s, "mkey:aa", &req(2, None, None));
        assert_eq!(a["Error"], NEEDS_AUTH_KEY);
    }

    #[test]
    fn an_injected_refusal_does_not_use_the_key() {
        let mut s = state();
        s.faults.refuse_registrations = 1;
        s.faults.refuse_message = "control is down".into();
        let (a, _) = register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-once")));
        assert_eq!(a["Error"], "control is down");
        let (_, r) = register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-once")));
        assert_eq!(r.outcome, Ok(1));
    }

    #[test]
    fn a_register_without_a_node_key_is_refused() {
        let mut s = state();
        let mut r = req(1, None, Some("tskey-auth-once"));
        r["NodeKey"] = json!(format!("nodekey:{}", "0".repeat(64)));
        let (a, _) = register(&mut s, "mkey:aa", &r);
        assert!(a["Error"].is_string());
        assert_eq!(s.auth_keys[0].uses, 0);
    }

    #[tokio::test]
    async fn with_a_shared_tailnet_keys_and_devices_are_the_apis() {
        use crate::fake_tailscale::{ContractFakeTailscale, FakeTailscaleConfig};
        let api = ContractFakeTailscale::start(FakeTailscaleConfig::default())
            .await
            .unwrap();
        let tag = "tag:clawkeeper";
        let first = api.add_auth_key(false, &[tag], Duration::from_secs(600));
        let second = api.add_auth_key(false, &[tag], Duration::from_secs(600));
        let expired = api.add_auth_key(true, &[tag], Duration::ZERO);
        let mut s = State {
            tailnet: Some(api.tailnet()),
            ..state()
        };
        // The join: the API's device, with the node's own node key and the key's tag.
        let (a, r) = register(&mut s, "mkey:aa", &req(1, None, Some(first.as_str())));
        assert_eq!(a["MachineAuthorized"], true, "{a}");
        let id = r.outcome.unwrap();
        let devices = api.devices();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0]["nodeId"], s.nodes[0].stable_id.as_str());
        assert_eq!(devices[0]["nodeKey"], nk(1));
        assert_eq!(devices[0]["tags"], json!([tag]));
        assert_eq!(devices[0]["addresses"][0], format!("100.64.0.{id}"));
        assert_eq!(api.minted_keys()[0].used_by, vec!["ck-node".to_string()]);
        // Refused by the API's rules: used single-use, expired, this fake's own keys.
        for key in [first.as_str(), expired.as_str(), "tskey-auth-many"] {
            let (a, _) = register(&mut s, "mkey:bb", &req(2, None, Some(key)));
            assert_eq!(a["Error"], INVALID_KEY, "{key}");
        }
        assert_eq!(api.devices().len(), 1);
        // --force-reauth with the second key: the same device, the new node key.
        let (_, r) = register(&mut s, "mkey:aa", &req(3, Some(1), Some(second.as_str())));
        assert_eq!(r.outcome, Ok(id));
        assert_eq!(api.devices().len(), 1);
        assert_eq!(api.devices()[0]["nodeKey"], nk(3));
        assert_eq!(s.nodes[0].old_node_keys, vec![nk(1)]);
        // A key rotation without an auth key reaches the API too.
        let (_, r) = register(&mut s, "mkey:aa", &req(4, Some(3), None));
        assert_eq!(r.outcome, Ok(id));
        assert_eq!(api.devices()[0]["nodeKey"], nk(4));
        // A revoked key is refused.
        let third = api.add_auth_key(false, &[tag], Duration::from_secs(600));
        assert!(api.revoke_auth_key(&third));
        let (a, _) = register(&mut s, "mkey:aa", &req(5, Some(4), Some(third.as_str())));
        assert_eq!(a["Error"], INVALID_KEY);
        // The device deleted in the API: control forgets the node, which can't refresh.
        let node_id = s.nodes[0].stable_id.clone();
        assert!(api.delete_device(&node_id));
        forget_missing(&mut s, &api.tailnet().device_ids());
        assert!(s.nodes.is_empty());
        let (a, _) = register(&mut s, "mkey:aa", &req(4, None, None));
        assert_eq!(a["Error"], NEEDS_AUTH_KEY);
        // Back with a new key: a new device.
        let fourth = api.add_auth_key(false, &[tag], Duration::from_secs(600));
        let (_, r) = register(&mut s, "mkey:aa", &req(6, Some(4), Some(fourth.as_str())));
        let new_id = r.outcome.unwrap();
        assert_ne!(new_id, id);
        assert_ne!(api.devices()[0]["nodeId"], node_id.as_str());
    }

    #[test]
    fn map_responses_are_length_prefixed_zstd_json() {
        let v = json!({"KeepAlive": true, "pad": "x".repeat(1000)});
        let f = frame_map_response(&v);
        let len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        assert!(len < 200, "compressed: {len}");
        let mut d = ruzstd::decoding::StreamingDecoder::new(&f[4..]).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), v);
    }

    #[test]
    fn the_netmap_lists_other_nodes_as_peers_with_the_derp_map() {
        let mut s = state();
        register(&mut s, "mkey:aa", &req(1, None, Some("tskey-auth-many")));
        register(&mut s, "mkey:bb", &req(2, None, Some("tskey-auth-many")));
        let m = netmap(&s, &s.nodes[0]);
        assert_eq!(m["Node"]["Key"], nk(1));
        assert_eq!(m["Node"]["Addresses"][0], "100.64.0.1/32");
        assert_eq!(m["Peers"].as_array().unwrap().len(), 1);
        assert_eq!(m["Peers"][0]["Key"], nk(2));
        assert_eq!(m["DERPMap"]["Regions"]["900"]["Nodes"][0]["DERPPort"], 80);
    }
}
