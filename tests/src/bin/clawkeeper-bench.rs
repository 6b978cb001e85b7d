//! `clawkeeper-bench`: the benchmark figures in BENCHMARKS.md, printed as numbers and ratios.
//!
//!   clawkeeper-bench chat [N]   chat round trip: the core client vs a raw WebSocket client,
//!                               against the same real gateway (needs scripts/bench.sh's env)
//!   clawkeeper-bench app        the release app: cold start of the tray daemon to tray ready,
//!                               RSS tray-only (the daemon alone) and with the chat window
//!                               (daemon + window process trees), idle CPU over 60 s
//!
//! Run through `scripts/bench.sh`, which provides the isolated environment (loopback-only
//! network namespace, D-Bus session, unlocked keyring, Xvfb) and the release build.

use anyhow::{anyhow, bail, Context, Result};
use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::local::process::process_tree;
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

// ---------------------------------------------------------------------------------------
// The desktop app (release build), measured from outside through /proc.

struct RunningApp {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    home: std::path::PathBuf,
}

impl RunningApp {
    fn spawn(home: &std::path::Path, extra_env: &[(&str, String)]) -> Result<(Self, Instant)> {
        let mut cmd = std::process::Command::new(env::bin("clawkeeper"));
        cmd.env("CLAWKEEPER_HOME", home)
            .env("CLAWKEEPER_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let t = Instant::now();
        let mut child = cmd
            .spawn()
            .context("start the release app (scripts/bench.sh builds it)")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok((
            Self {
                child,
                lines,
                home: home.to_owned(),
            },
            t,
        ))
    }

    fn wait_line(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .context(format!("no {needle:?} in time"))?;
            let line = self.lines.recv_timeout(left)?;
            if line.contains(needle) {
                return Ok(());
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tray daemon's process tree without the gateway it supervises: the daemon, and
    /// while a window is open the window process it started with its WebKit helpers.
    fn own_processes(&self) -> Vec<u32> {
        let gateway: Vec<u32> =
            std::fs::read_to_string(self.home.join("instances/local/gateway.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .map(process_tree)
                .unwrap_or_default();
        process_tree(self.pid())
            .into_iter()
            .filter(|p| !gateway.contains(p))
            .collect()
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (RSS, PSS) in KiB, summed over `pids`.
fn memory(pids: &[u32]) -> (u64, u64) {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    pids.iter().fold((0, 0), |(r, p), pid| {
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        (r + field(&rollup, "Rss:"), p + field(&rollup, "Pss:"))
    })
}

/// CPU ticks (utime + stime) used so far by `pids`.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn names(pids: &[u32]) -> String {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn app() -> Result<()> {
    let runtime_dir =
        env::test_runtime().context("CLAWKEEPER_TEST_RUNTIME is not set (run scripts/bench.sh)")?;
    let ns = format!("clawkeeper-bench-app-{}", std::process::id());

    // 1. Cold start to tray ready (first run: no provider, so no assistant is started).
    let mut cold = Vec::new();
    for _ in 0..5 {
        let home = tempfile::tempdir()?;
        let (app, t) = RunningApp::spawn(
            home.path(),
            &[("CLAWKEEPER_KEYCHAIN_NAMESPACE", ns.clone())],
        )?;
        app.wait_line("tray ready", Duration::from_secs(60))?;
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
        app.stop();
    }
    let (c50, c95, _) = stats(cold.clone());
    println!(
        "cold start to tray ready (5 runs): median {c50:.0} ms, max {c95:.0} ms, all {cold:.0?}"
    );

    // 2. A configured app with a healthy assistant and no window: tray only.
    let home = tempfile::tempdir()?;
    let key = format!("sk-bench-{}", Secret::random(9).expose());
    let fake = ContractFakeModel::start(key.clone()).await?;
    let envs = [
        ("CLAWKEEPER_KEYCHAIN_NAMESPACE", ns.clone()),
        ("CLAWKEEPER_RUNTIME_DIR", runtime_dir.display().to_string()),
        ("CLAWKEEPER_PORT", env::free_port().to_string()),
    ];
    let mut cli = std::process::Command::new(env::bin("clawkeeper-cli"));
    cli.env("CLAWKEEPER_HOME", home.path()).args([
        "provider",
        "--kind",
        "openai-compatible",
        "--base-url",
        &fake.base_url(),
        "--model",
        "echo-1",
    ]);
    for (k, v) in &envs {
        cli.env(k, v);
    }
    let mut child = cli.stdin(std::process::Stdio::piped()).spawn()?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(key.as_bytes())?;
    }
    anyhow::ensure!(child.wait()?.success(), "saving the provider failed");

    let (app, _) = RunningApp::spawn(home.path(), &envs)?;
    app.wait_line("tray ready", Duration::from_secs(60))?;
    app.wait_line("\"healthy\"", Duration::from_secs(180))?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let own = app.own_processes();
    let (rss, pss) = memory(&own);
    println!(
        "tray only, assistant running: RSS {:.1} MB, PSS {:.1} MB ({})",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0,
        names(&own)
    );

    let t0 = cpu_ticks(&own);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let ticks = cpu_ticks(&app.own_processes()).saturating_sub(t0);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "idle CPU over {secs:.0} s, tray only: {ticks} ticks = {:.3} % of one core",
        ticks as f64 / 100.0 / secs * 100.0
    );

    // 3. With the chat window open: a second launch asks the running daemon, which starts
    //    the window process (a child of the daemon, so in `own_processes`).
    let opened = std::process::Command::new(env::bin("clawkeeper"))
        .args(["--open", "chat"])
        .env("CLAWKEEPER_HOME", home.path())
        .env("CLAWKEEPER_KEYCHAIN_NAMESPACE", &ns)
        .status()?;
    anyhow::ensure!(opened.success(), "second launch failed");
    tokio::time::sleep(Duration::from_secs(10)).await;
    anyhow::ensure!(
        names(&app.own_processes()).contains("clawkeeper-wind"),
        "no window process after --open chat"
    );
    let own = app.own_processes();
    let (rss, pss) = memory(&own);
    println!(
        "chat window open: RSS {:.1} MB, PSS {:.1} MB ({})",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0,
        names(&own)
    );
    app.stop();
    Ok(())
}
