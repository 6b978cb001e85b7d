//! The offline stand-in for Tailscale's apt repository, served to test hosts:
//! [`TailscaleAptRepo`].
//!
//! `scripts/tailscale-apt-repo.sh` builds it (exported by `scripts/test.sh` as
//! `CLAWKEEPER_TAILSCALE_APT`): a `tailscale` package made from the official static binaries,
//! in the layout of `https://pkgs.tailscale.com/stable/<os>`, signed with a key made for the
//! tests, whose fingerprint is in `FINGERPRINT`. This server hands out its files as they
//! are (`GET`/`HEAD`, 404 for anything else) and counts what it served, so a test can tell
//! that apt really fetched the package.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Environment variable naming the repository directory.
pub const REPO_ENV: &str = "CLAWKEEPER_TAILSCALE_APT";

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running repository server. Stops when dropped.
pub struct TailscaleAptRepo {
    addr: SocketAddr,
    fingerprint: String,
    served: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

/// The repository directory from `CLAWKEEPER_TAILSCALE_APT`, if this run has one.
pub fn dir_from_env() -> Option<PathBuf> {
    std::env::var_os(REPO_ENV)
        .map(PathBuf::from)
        .filter(|d| d.join("FINGERPRINT").is_file())
}

impl TailscaleAptRepo {
    /// Serve `dir` on `bind` (port 0 picks one), typically a test host's gateway address.
    pub async fn start(bind: SocketAddr, dir: &Path) -> Result<TailscaleAptRepo> {
        let fingerprint = std::fs::read_to_string(dir.join("FINGERPRINT"))
            .with_context(|| format!("{} has no FINGERPRINT", dir.display()))?
            .trim()
            .to_owned();
        if fingerprint.len() != 40 {
            bail!("{}: FINGERPRINT is not a key fingerprint", dir.display());
        }
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the apt repository to {bind}"))?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::new(dir.to_path_buf()),
            Arc::clone(&served),
        ));
        Ok(TailscaleAptRepo {
            addr,
            fingerprint,
            served,
            task,
        })
    }

    /// [`Self::start`] with the directory from `CLAWKEEPER_TAILSCALE_APT`.
    pub async fn start_from_env(bind: SocketAddr) -> Result<TailscaleAptRepo> {
        let dir = dir_from_env().with_context(|| {
            format!("{REPO_ENV} is not set: run the tests with scripts/test.sh (scripts/tailscale-apt-repo.sh)")
        })?;
        Self::start(bind, &dir).await
    }

    /// The repository base, as `TailnetSpec::repo` takes it (`http://<addr>/stable`).
    pub fn url(&self) -> String {
        format!("http://{}/stable", self.addr)
    }

    /// The fingerprint of the key that signed it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Paths answered with 200 so far (oldest first).
    pub fn served(&self) -> Vec<String> {
        self.served.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for TailscaleAptRepo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, dir: Arc<PathBuf>, served: Arc<Mutex<Vec<String>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (dir, served) = (Arc::clone(&dir), Arc::clone(&served));
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        handle(Arc::clone(&dir), Arc::clone(&served), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle<B>(
    dir: Arc<PathBuf>,
    served: Arc<Mutex<Vec<String>>>,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    let head = req.method() == Method::HEAD;
    let path = req.uri().path().to_owned();
    let rel = PathBuf::from(path.trim_start_matches('/'));
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_)));
    let file = (safe && (head || req.method() == Method::GET))
        .then(|| dir.join(&rel))
        .filter(|f| f.is_file());
    let bytes = match file {
        Some(f) => tokio::fs::read(f).await.ok(),
        None => None,
    };
    let Some(bytes) = bytes else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found")).boxed());
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    };
    if let Ok(mut s) = served.lock() {
        s.push(path);
    }
    let len = bytes.len();
    let mut r = if head {
        Response::new(Empty::new().boxed())
    } else {
        Response::new(Full::new(Bytes::from(bytes)).boxed())
    };
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    Ok(r)
}
