//! `clawkeeper-bench`: the benchmark figures in BENCHMARKS.md, printed as numbers and ratios.
//!
//!   clawkeeper-bench chat [N]   chat round trip: the core client vs a raw WebSocket client,
//!                               against the same real gateway (needs scripts/bench.sh's env)
//!   clawkeeper-bench app        the release app: cold start to tray ready, RSS tray-only and
//!                               with the chat window, idle CPU over 60 s
//!
//! Run through `scripts/bench.sh`, which provides the isolated environment (loopback-only
//! network namespace, D-Bus session, unlocked keyring, Xvfb) and the release build.

use anyhow::{anyhow, bail, Context, Result};
use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::Secret;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_model::ContractFakeModel;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("chat") => chat(args.next().and_then(|n| n.parse().ok()).unwrap_or(20)).await,
        Some("app") => app().await,
        _ => bail!("usage: clawkeeper-bench chat [N] | app"),
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.95), v.iter().sum::<f64>() / v.len() as f64)
}

async fn chat(n: usize) -> Result<()> {
    let runtime_dir =
        env::test_runtime().context("CLAWKEEPER_TEST_RUNTIME is not set (run scripts/bench.sh)")?;
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-bench-{}", std::process::id()),
    );
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    let data = tempfile::tempdir()?;
    let key = format!("sk-bench-{}", Secret::random(9).expose());
    let fake = ContractFakeModel::start(key.clone()).await?;
    let app = Clawkeeper::open(
        Paths {
            data_dir: data.path().join("data"),
            runtime_dir,
        },
        Policy::default(),
    )
    .await
    .map_err(|p| anyhow!("{p}"))?;
    app.save_provider(ProviderInput {
        kind: ProviderKind::OpenaiCompatible,
        base_url: Some(fake.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(key),
    })
    .await
    .map_err(|p| anyhow!("{p}"))?;
    let t = Instant::now();
    app.start().await.map_err(|p| anyhow!("{p}"))?;
    app.wait_healthy(Duration::from_secs(180))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    println!(
        "gateway start to hello-ok + checks: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Warm up both paths (the first turn prepares the agent's workspace).
    app.chat_round_trip("warm up", Duration::from_secs(120))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    let token = app
        .instance()
        .vault()
        .read(&app.instance().token_ref())
        .await?;
    let mut raw = RawClient::connect(&app.instance().url(), token.expose()).await?;
    raw.round_trip("warm up raw").await?;

    let (mut core_ms, mut raw_ms) = (Vec::new(), Vec::new());
    for i in 0..n {
        // Interleave, so drift on the machine affects both alike.
        let t = Instant::now();
        let reply = app
            .chat_round_trip(&format!("core {i}"), Duration::from_secs(120))
            .await
            .map_err(|p| anyhow!("{p}"))?;
        core_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            reply == format!("Echo: core {i}"),
            "unexpected reply {reply:?}"
        );
        let t = Instant::now();
        let reply = raw.round_trip(&format!("raw {i}")).await?;
        raw_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            reply == format!("Echo: raw {i}"),
            "unexpected reply {reply:?}"
        );
    }
    let (c50, c95, cmean) = stats(core_ms);
    let (r50, r95, rmean) = stats(raw_ms);
    println!("chat round trip, {n} each, fake model on loopback:");
    println!("  core client     median {c50:8.1} ms   p95 {c95:8.1} ms   mean {cmean:8.1} ms");
    println!("  raw WebSocket   median {r50:8.1} ms   p95 {r95:8.1} ms   mean {rmean:8.1} ms");
    println!(
        "  ratio core/raw  median {:.3}   mean {:.3}",
        c50 / r50,
        cmean / rmean
    );
    app.shutdown().await;
    Ok(())
}

/// The protocol by hand, with nothing but tungstenite: the baseline.
struct RawClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawClient {
    async fn connect(url: &str, token: &str) -> Result<Self> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        loop {
            let v = next_json(&mut ws).await?;
            if v["event"] == "connect.challenge" {
                break;
            }
        }
        let req = json!({"type":"req","id":"c","method":"connect","params":{"minProtocol":4,"maxProtocol":4,
            "client":{"id":"gateway-client","version":"bench","platform":"linux","mode":"backend"},
            "role":"operator","scopes":["operator.read","operator.write"],"caps":[],"auth":{"token":token}}});
        ws.send(Message::Text(req.to_string().into())).await?;
        loop {
            let v = next_json(&mut ws).await?;
            if v["id"] == "c" {
                anyhow::ensure!(v["ok"] == true, "connect refused: {v}");
                return Ok(Self { ws });
            }
        }
    }

    async fn round_trip(&mut self, message: &str) -> Result<String> {
        let key = uuid::Uuid::new_v4().to_string();
        let req = json!({"type":"req","id":key,"method":"chat.send","params":{"sessionKey":"main","message":message,"idempotencyKey":key}});
        self.ws.send(Message::Text(req.to_string().into())).await?;
        loop {
            let v = next_json(&mut self.ws).await?;
            if v["event"] == "chat" && v["payload"]["runId"] == key.as_str() {
                match v["payload"]["state"].as_str() {
                    Some("final") => {
                        return Ok(v["payload"]["message"]["content"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|p| p["text"].as_str()).collect())
                            .unwrap_or_default())
                    }
                    Some("error") => bail!("run failed: {v}"),
                    _ => {}
                }
            }
        }
    }
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<Value> {
    loop {
        match ws.next().await.context("socket closed")?? {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Close(f) => bail!("closed: {f:?}"),
            _ => {}
        }
    }
}

async fn app() -> Result<()> {
    bail!("the app benchmark needs the release app; see scripts/bench.sh")
}
