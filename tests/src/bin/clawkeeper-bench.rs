//! `clawkeeper-bench`: the benchmark figures in BENCHMARKS.md, printed as numbers and ratios.
//!
//!   clawkeeper-bench chat [N]   chat round trip: the core client vs a raw WebSocket client,
//!                               against the same real gateway (needs scripts/bench.sh's env)
//!   clawkeeper-bench app        the release app: cold start of the tray daemon to tray ready,
//!                               RSS tray-only (the daemon alone) and with the chat window
//!                               (daemon + window process trees), idle CPU over 60 s
//!   clawkeeper-bench deploy [N] [P]
//!                               deploy overhead against the Hetzner contract fake (N rounds
//!                               of deploy + delete on fresh test hosts; 0 skips it), then
//!                               P rounds of provisioning fresh test hosts over russh vs the
//!                               system's `ssh` (the same step scripts), fresh and re-run,
//!                               the three transports interleaved
//!   clawkeeper-bench embedded-rss [S]
//!                               this process's memory (VmRSS, VmHWM) before and while the
//!                               embedded Tailscale node runs, trying for S seconds (30) to
//!                               join through a loopback control plane that never answers,
//!                               and after it gave up; refuses to run with a default route
//!   clawkeeper-bench usage [EVENTS]
//!                               incremental usage refresh over EVENTS (1,000,000) generated
//!                               transcript events in the real gateway's state: the first
//!                               (whole-history) sync, then 5 refreshes (wall, this process's
//!                               CPU, the gateway's CPU), against `openclaw status --usage
//!                               --json` and `openclaw gateway call usage.cost` (2 days) on
//!                               the same running gateway; the Usage section's view latency
//!   clawkeeper-bench rotate [N] "Rotate all" N times (5): this computer's gateway token, the
//!                               OpenRouter key (contract fake, management key) and, with a
//!                               test host image, a server set up with the real OpenClaw and
//!                               no provider of its own (so it shares that key, which the
//!                               rotation installs there too; its SSH key and gateway token):
//!                               wall, app CPU vs waiting, per key and per step; a one-click
//!                               key not rotated fails the run
//!
//! Run through `scripts/bench.sh`, which provides the isolated environment (loopback-only
//! network namespace, D-Bus session, unlocked keyring, Xvfb) and the release build.

use anyhow::{anyhow, bail, ensure, Context, Result};
use clawkeeper_core::app::{Clawkeeper, ProviderInput};
use clawkeeper_core::cloud::deploy::Progress as CloudProgress;
use clawkeeper_core::cloud::hetzner::{HetznerClient, RetryPolicy};
use clawkeeper_core::local::process::process_tree;
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::local::verify::CheckStatus;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::provision::{
    self, sources::PackageSources, steps::ProvisionSpec, ModelEndpoint, ProvisionSecrets,
};
use clawkeeper_core::remote::{self, Output, Remote};
use clawkeeper_core::server::deploy::{self as server_deploy, DeployProgress, DeployRequest};
use clawkeeper_core::ssh::{self, keys, Auth, Session, Target};
use clawkeeper_core::store::{ProviderKind, Store};
use clawkeeper_core::vault::Vault;
use clawkeeper_core::{Secret, UserFacing};
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_hetzner::{BootHook, ContractFakeHetzner, FakeHetznerConfig};
use clawkeeper_tests::fake_model::{ContractFakeModel, DEFAULT_MODEL_IDS};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::ssh_cli_remote::SshCliRemote;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("chat") => chat(args.next().and_then(|n| n.parse().ok()).unwrap_or(20)).await,
        Some("app") => app().await,
        Some("deploy") => {
            let rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(5);
            deploy(
                rounds,
                args.next().and_then(|n| n.parse().ok()).unwrap_or(2),
            )
            .await
        }
        Some("embedded-rss") => {
            embedded_rss(args.next().and_then(|n| n.parse().ok()).unwrap_or(30)).await
        }
        Some("usage") => {
            Box::pin(usage(
                args.next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1_000_000),
            ))
            .await
        }
        Some("rotate") => {
            Box::pin(rotate(args.next().and_then(|n| n.parse().ok()).unwrap_or(5))).await
        }
        _ => bail!(
            "usage: clawkeeper-bench chat [N] | app | deploy [N] [P] | embedded-rss [S] | usage [EVENTS] | rotate [N]"
        ),
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.95), v.iter().sum::<f64>() / v.len() as f64)
}

/// A core in a temp data dir (its own keychain namespace and port), the contract fake model
/// as its OpenAI-compatible provider. The gateway is not started.
async fn local_core(namespace: &str) -> Result<(Clawkeeper, ContractFakeModel, tempfile::TempDir)> {
    let runtime_dir =
        env::test_runtime().context("CLAWKEEPER_TEST_RUNTIME is not set (run scripts/bench.sh)")?;
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("{namespace}-{}", std::process::id()),
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
    Ok((app, fake, data))
}

async fn chat(n: usize) -> Result<()> {
    let (app, _fake, _data) = local_core("clawkeeper-bench").await?;
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
    // The same raw client through the tailnet loopback proxy (over a loopback tailnet test
    // double: what the proxy itself adds, not a real tailnet's WireGuard hops).
    let tailnet = std::sync::Arc::new(clawkeeper_tests::tailnet_double::LoopbackTailnet::default());
    let gw_port = app.instance().port;
    tailnet.route("100.64.0.7", gw_port, gw_port);
    let proxy =
        clawkeeper_core::tailnet::TailnetProxy::start(tailnet.clone(), "100.64.0.7", gw_port)
            .await?;
    let mut proxied =
        RawClient::connect(&format!("ws://{}", proxy.local_addr()), token.expose()).await?;
    proxied.round_trip("warm up proxied").await?;

    let (mut core_ms, mut raw_ms, mut proxied_ms) = (Vec::new(), Vec::new(), Vec::new());
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
        let t = Instant::now();
        let reply = proxied.round_trip(&format!("proxied {i}")).await?;
        proxied_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            reply == format!("Echo: proxied {i}"),
            "unexpected reply {reply:?}"
        );
    }
    anyhow::ensure!(tailnet.dials() == 1, "one connection through the proxy");
    let (c50, c95, cmean) = stats(core_ms);
    let (r50, r95, rmean) = stats(raw_ms);
    let (p50, p95, pmean) = stats(proxied_ms);
    println!("chat round trip, {n} each, fake model on loopback:");
    println!("  core client     median {c50:8.1} ms   p95 {c95:8.1} ms   mean {cmean:8.1} ms");
    println!("  raw WebSocket   median {r50:8.1} ms   p95 {r95:8.1} ms   mean {rmean:8.1} ms");
    println!(
        "  raw via tailnet proxy median {p50:8.1} ms   p95 {p95:8.1} ms   mean {pmean:8.1} ms"
    );
    println!(
        "  ratio core/raw  median {:.3}   mean {:.3}",
        c50 / r50,
        cmean / rmean
    );
    println!(
        "  ratio proxied/raw median {:.3}   mean {:.3}",
        p50 / r50,
        pmean / rmean
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

// ---------------------------------------------------------------------------------------
// Deploy against the Hetzner contract fake, and provisioning of test hosts: russh vs the
// system's OpenSSH client running the same step scripts.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, min, max).
fn median_min_max(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn deploy(rounds: usize, prov_rounds: usize) -> Result<()> {
    ensure!(
        env::isolated(),
        "needs scripts/bench.sh's environment (keychain, test hosts, npm mirror)"
    );
    std::env::var_os(clawkeeper_tests::testhost::IMAGE_ENV)
        .context("CLAWKEEPER_TESTHOST_IMAGE is not set (run scripts/bench.sh deploy)")?;
    clawkeeper_tests::npm_mirror::dir_from_env()?;
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-bench-{}", std::process::id()),
    );
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    println!("load average at start: {}", loadavg());
    if rounds > 0 {
        deploy_overhead(rounds).await?;
    }
    if prov_rounds > 0 {
        provisioning(prov_rounds).await?;
    }
    println!("load average at end: {}", loadavg());
    Ok(())
}

/// What cloud-init does with `ssh_keys`: put them in root's authorized_keys.
fn cloud_init_stand_in(root: PathBuf) -> BootHook {
    BootHook(Arc::new(move |keys: &[String], _user_data: &str| {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join("root/.ssh");
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("authorized_keys"), keys.join("\n") + "\n"))
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)));
        if let Err(e) = written {
            eprintln!("cloud-init stand-in: {e}");
        }
    }))
}

/// One deploy + delete, in ms.
struct DeployRound {
    total: f64,
    waits: f64,
    /// App key (keychain) + store + reconcile (listing the provider's resources).
    prepare: f64,
    /// SSH key, firewall, server, waiting for their actions and the boot.
    cloud: f64,
    /// Until the new server answered with its host key.
    ssh: f64,
    /// Pin + two logins (first with the key cloud-init put there, then the installed one)
    /// + authorized_keys + the store.
    login: f64,
    delete: f64,
    delete_waits: f64,
}

fn first_event(
    events: &[(Instant, DeployProgress)],
    what: &str,
    pred: impl Fn(&DeployProgress) -> bool,
) -> Result<Instant> {
    events
        .iter()
        .find(|(_, p)| pred(p))
        .map(|(t, _)| *t)
        .with_context(|| format!("no {what} progress event"))
}

async fn deploy_round(policy: RetryPolicy, id: &str, vault: &Vault) -> Result<DeployRound> {
    let host = TestHost::boot(HostOptions::default()).await?;
    let fake = ContractFakeHetzner::start(FakeHetznerConfig {
        server_ipv4: host.addr().to_string(),
        on_server_created: Some(cloud_init_stand_in(host.root().to_owned())),
        ..FakeHetznerConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let (store, _) = Store::open(&dir.path().join("clawkeeper.db")).await?;
    let client = HetznerClient::with_base_url(fake.base_url(), Secret::new(fake.token()), policy)?;
    // What the person picked in the UI before pressing Deploy: not part of the deploy.
    let server_type = client
        .server_types()
        .await?
        .into_iter()
        .find(|t| t.deprecation.is_none() && t.price_in("fsn1").is_some())
        .context("no server type in fsn1")?
        .name;

    let mut events: Vec<(Instant, DeployProgress)> = Vec::new();
    let t0 = Instant::now();
    let connected = server_deploy::deploy(
        &store,
        vault,
        &client,
        &DeployRequest {
            instance_id: id.to_owned(),
            name: "Bench".into(),
            server_type,
            location: "fsn1".into(),
        },
        CancellationToken::new(),
        &mut |p: &DeployProgress| events.push((Instant::now(), p.clone())),
    )
    .await
    .map_err(|e| anyhow!("deploy: {e} [{}]", e.code()))?;
    let total = t0.elapsed();
    let waits = fake.simulated_wait();
    ensure!(
        connected.record.host_key.fingerprint == host.host_key_fingerprint_sha256()?,
        "pinned a host key that is not the test host's"
    );
    connected.session.close().await;
    let reconciled = first_event(&events, "reconciled", |p| {
        matches!(p, DeployProgress::Cloud(CloudProgress::Reconciled { .. }))
    })?;
    let ready = first_event(&events, "ready", |p| {
        matches!(p, DeployProgress::Cloud(CloudProgress::Ready { .. }))
    })?;
    let pinned = first_event(&events, "host key pinned", |p| {
        matches!(p, DeployProgress::HostKeyPinned { .. })
    })?;
    let logged_in = first_event(&events, "logged in", |p| {
        matches!(p, DeployProgress::LoggedIn)
    })?;

    let t1 = Instant::now();
    let removed = server_deploy::delete(&store, vault, &client, id)
        .await
        .map_err(|e| anyhow!("delete: {e} [{}]", e.code()))?
        .at_provider;
    let delete = t1.elapsed();
    ensure!(removed.len() == 3, "removed {removed:?}");
    for kind in ["server", "firewall", "ssh_key"] {
        ensure!(fake.live(kind) == 0, "{kind} left at the provider");
    }
    let delete_waits = fake.simulated_wait().saturating_sub(waits);
    host.stop().await;
    Ok(DeployRound {
        total: ms(total),
        waits: ms(waits),
        prepare: ms(reconciled - t0),
        cloud: ms(ready - reconciled),
        ssh: ms(pinned - ready),
        login: ms(logged_in - pinned),
        delete: ms(delete),
        delete_waits: ms(delete_waits),
    })
}

async fn deploy_overhead(rounds: usize) -> Result<()> {
    let vault = Vault::new(&std::env::var("CLAWKEEPER_KEYCHAIN_NAMESPACE")?);
    let cfg = FakeHetznerConfig::default();
    println!(
        "deploy against the Hetzner contract fake ({rounds} rounds per policy, a fresh test host each; \
         fake actions take {} ms, boot {} ms)",
        cfg.action_duration.as_millis(),
        cfg.boot_duration.as_millis()
    );
    for (label, policy) in [
        (
            "app's RetryPolicy::default (polls 0.5 s → 3 s)",
            RetryPolicy::default(),
        ),
        ("RetryPolicy::fast (polls 5 → 20 ms)", RetryPolicy::fast()),
    ] {
        let mut r = Vec::new();
        for i in 0..rounds {
            let id = format!("bench-{}-{}-{i}", std::process::id(), r.len() + 1);
            let round = Box::pin(deploy_round(policy.clone(), &id, &vault)).await?;
            println!(
                "  round {i}: total {:.0} ms, simulated waits {:.0} ms, overhead {:.0} ms \
                 (prepare {:.0}, cloud {:.0} of which waits {:.0}, ssh {:.0}, pin+login {:.0}); \
                 delete {:.0} ms (waits {:.0})",
                round.total,
                round.waits,
                round.total - round.waits,
                round.prepare,
                round.cloud,
                round.waits,
                round.ssh,
                round.login,
                round.delete,
                round.delete_waits
            );
            r.push(round);
        }
        let col = |f: &dyn Fn(&DeployRound) -> f64| {
            let (m, lo, hi) = median_min_max(&r.iter().map(f).collect::<Vec<_>>());
            format!("median {m:7.0} ms  ({lo:.0}–{hi:.0})")
        };
        println!("  {label}:");
        println!("    deploy total                 {}", col(&|d| d.total));
        println!("    fake's simulated waits       {}", col(&|d| d.waits));
        println!(
            "    overhead = total − waits     {}   target ≤ 3000 ms",
            col(&|d| d.total - d.waits)
        );
        println!("      prepare (key, reconcile)   {}", col(&|d| d.prepare));
        println!(
            "      cloud calls + polling − waits {}",
            col(&|d| d.cloud - d.waits)
        );
        println!("      waiting for SSH (scan)     {}", col(&|d| d.ssh));
        println!("      pin + login                {}", col(&|d| d.login));
        println!("    delete total                 {}", col(&|d| d.delete));
        println!(
            "    delete overhead              {}",
            col(&|d| d.delete - d.delete_waits)
        );
    }
    Ok(())
}

/// A [`Remote`] that counts the commands it runs and the time spent in them.
struct Counting<'a, R> {
    inner: &'a R,
    commands: AtomicUsize,
    micros: AtomicUsize,
}

impl<'a, R: Remote> Counting<'a, R> {
    fn new(inner: &'a R) -> Self {
        Self {
            inner,
            commands: AtomicUsize::new(0),
            micros: AtomicUsize::new(0),
        }
    }
}

impl<R: Remote> Remote for Counting<'_, R> {
    async fn run(&self, command: &str, stdin: Option<&[u8]>) -> remote::Result<Output> {
        let t = Instant::now();
        let out = self.inner.run(command, stdin).await;
        self.commands.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(t.elapsed().as_micros() as usize, Ordering::Relaxed);
        out
    }
}

/// One provisioning run.
struct ProvRun {
    total: Duration,
    steps: Vec<(&'static str, Duration)>,
    commands: usize,
    failed_checks: Vec<String>,
}

impl ProvRun {
    fn posture(&self) -> Duration {
        self.total
            .saturating_sub(self.steps.iter().map(|(_, d)| *d).sum())
    }
}

/// A fresh host provisioned, then provisioned again (the idempotent re-check), over
/// `remote`; then the round trip of `true` (20 times).
async fn provision_twice<R: Remote>(
    remote: &R,
    host: &TestHost,
    label: &str,
    ssh_per_minute: Option<u32>,
) -> Result<(ProvRun, ProvRun, f64)> {
    let gw = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw, 0).into()).await?;
    let provider_key = format!("sk-bench-{}", Secret::random(9).expose());
    let model = ContractFakeModel::start_on(
        (gw, 0).into(),
        provider_key.clone(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let (store, _) = Store::open(&dir.path().join("clawkeeper.db")).await?;
    let mut spec = ProvisionSpec::new(&format!("bench-prov-{label}"));
    spec.sources = PackageSources {
        npm_registry: mirror.url(),
    };
    spec.model = Some(ModelEndpoint {
        base_url: model.base_url(),
        model: DEFAULT_MODEL_IDS[0].into(),
    });
    if let Some(n) = ssh_per_minute {
        spec.firewall.ssh_per_minute = n;
        spec.firewall.ssh_burst = n;
    }
    let secrets = ProvisionSecrets {
        gateway_token: Secret::random(32),
        provider_key: Some(Secret::new(provider_key)),
    };
    let mut runs = Vec::new();
    for pass in ["fresh", "re-run"] {
        let counting = Counting::new(remote);
        let t = Instant::now();
        let outcome = Box::pin(provision::provision(
            &counting,
            &store,
            &spec,
            &secrets,
            CancellationToken::new(),
            |_| {},
        ))
        .await
        .map_err(|e| anyhow!("provisioning ({label}, {pass}): {e} [{}]", e.code()))?;
        let total = t.elapsed();
        let run = ProvRun {
            total,
            steps: outcome.timings.clone(),
            commands: counting.commands.load(Ordering::Relaxed),
            failed_checks: outcome
                .checks
                .iter()
                .filter(|c| c.status != CheckStatus::Pass)
                .map(|c| format!("{}: {}", c.id, c.detail.clone().unwrap_or_default()))
                .collect(),
        };
        println!(
            "  {label} {pass}: {:.1} s, {} commands ({:.1} s inside them), posture checks failed: {:?}",
            total.as_secs_f64(),
            run.commands,
            counting.micros.load(Ordering::Relaxed) as f64 / 1e6,
            run.failed_checks
        );
        runs.push(run);
    }
    let mut rtt = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let out = remote.run("true", None).await?;
        ensure!(out.success(), "`true` failed over {label}");
        rtt.push(ms(t.elapsed()));
    }
    let (rtt_median, _, _) = median_min_max(&rtt);
    ensure!(
        mirror.not_found().is_empty(),
        "missing from the mirror: {:?}",
        mirror.not_found()
    );
    let second = runs.pop().context("no re-run")?;
    let first = runs.pop().context("no fresh run")?;
    Ok((first, second, rtt_median))
}

/// Read every file of `dir` once, so no run pays for a cold page cache.
fn warm(dir: &Path) -> Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            bytes += warm(&path)?;
        } else if path.is_file() {
            bytes += std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
        }
    }
    Ok(bytes)
}

fn pick_run(p: &Pair, second: bool) -> &ProvRun {
    if second {
        &p.1
    } else {
        &p.0
    }
}

const TRANSPORTS: [&str; 3] = ["russh", "openssh mux", "ssh/command"];

type Pair = (ProvRun, ProvRun, f64);

/// Provision `host` (fresh, then again) over transport `kind` (an index of [`TRANSPORTS`]),
/// logging in with `key_path`.
async fn run_transport(kind: usize, host: &TestHost, key_path: &Path) -> Result<Pair> {
    let target = format!("root@{}", host.addr());
    match kind {
        // russh: the app's own session (connected before the clock starts).
        0 => {
            let target = Target::new(host.addr().to_string(), 22, "root");
            let host_key = ssh::scan_host_key(&target).await?;
            ensure!(host_key.fingerprint == host.host_key_fingerprint_sha256()?);
            let private =
                keys::parse_private(&Secret::new(std::fs::read_to_string(key_path)?), None)?;
            let session =
                Session::connect(&target, &host_key, &Auth::Key(Arc::new(private))).await?;
            let r = Box::pin(provision_twice(&session, host, "russh", None)).await;
            session.close().await;
            r
        }
        // OpenSSH, one multiplexed connection (ControlMaster), opened before the clock
        // starts, like the russh session.
        1 => {
            let remote = SshCliRemote::new(&target, key_path)?;
            ensure!(remote.run("true", None).await?.success());
            Box::pin(provision_twice(&remote, host, "openssh-mux", None)).await
        }
        // OpenSSH, a new connection per command (a plain script). Its own firewall would
        // drop it after 10 new connections a minute, so this host's limit is 600.
        _ => {
            let remote = SshCliRemote::unmultiplexed(&target, key_path)?;
            Box::pin(provision_twice(
                &remote,
                host,
                "openssh-per-command",
                Some(600),
            ))
            .await
        }
    }
}

async fn provisioning(rounds: usize) -> Result<()> {
    let mirror_dir = clawkeeper_tests::npm_mirror::dir_from_env()?;
    let warmed = warm(&mirror_dir)?;
    let keydir = tempfile::tempdir()?;
    let key_path = keydir.path().join("id_ed25519");
    let keygen = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "clawkeeper-bench",
            "-f",
        ])
        .arg(&key_path)
        .status()?;
    ensure!(keygen.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(keydir.path().join("id_ed25519.pub"))?;
    let opts = HostOptions::with_key(public.trim());
    println!(
        "provisioning fresh test hosts (Node, npm and OpenClaw from the local npm mirror, \
         {:.0} MB, read once beforehand), then again on the provisioned host; {rounds} rounds, \
         the transports in rotating order, one run at a time:",
        warmed as f64 / 1e6
    );
    let mut results: Vec<Vec<Pair>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        let hosts = tokio::try_join!(
            TestHost::boot(opts.clone()),
            TestHost::boot(opts.clone()),
            TestHost::boot(opts.clone())
        )?;
        let mut hosts = [Some(hosts.0), Some(hosts.1), Some(hosts.2)];
        // Let the hosts finish booting (units after sshd) before anything is timed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        for k in 0..TRANSPORTS.len() {
            let kind = (k + round) % TRANSPORTS.len();
            let host = hosts[kind].take().context("host used twice")?;
            println!("  round {round}, load average {}:", loadavg());
            let pair = Box::pin(run_transport(kind, &host, &key_path)).await?;
            host.stop().await;
            results[kind].push(pair);
        }
    }

    let cols = |f: &dyn Fn(&Pair) -> f64| -> [(f64, f64, f64); 3] {
        [0, 1, 2].map(|k| median_min_max(&results[k].iter().map(f).collect::<Vec<_>>()))
    };
    for (pass, second) in [
        ("fresh host", false),
        ("re-run (already provisioned)", true),
    ] {
        println!("  {pass}, median per step in ms over {rounds} rounds:");
        println!(
            "    {:<16}{:>12}{:>14}{:>14}",
            "step", TRANSPORTS[0], TRANSPORTS[1], TRANSPORTS[2]
        );
        let row = |name: &str, f: &dyn Fn(&Pair) -> f64| {
            let c = cols(f);
            println!(
                "    {name:<16}{:>12.0}{:>14.0}{:>14.0}",
                c[0].0, c[1].0, c[2].0
            );
        };
        let ids: Vec<&'static str> = results[0]
            .first()
            .map(|p| {
                pick_run(p, second)
                    .steps
                    .iter()
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for (i, id) in ids.iter().enumerate() {
            row(id, &|p| {
                pick_run(p, second)
                    .steps
                    .get(i)
                    .map(|(_, d)| ms(*d))
                    .unwrap_or(f64::NAN)
            });
        }
        row("posture checks", &|p| ms(pick_run(p, second).posture()));
        row("commands", &|p| pick_run(p, second).commands as f64);
        let total = cols(&|p| pick_run(p, second).total.as_secs_f64());
        for (k, (m, lo, hi)) in total.iter().enumerate() {
            println!(
                "    TOTAL {:<12} median {m:6.1} s  (min {lo:.1}, max {hi:.1})",
                TRANSPORTS[k]
            );
        }
        println!(
            "    ratio russh/openssh, median: {:.3} (multiplexed), {:.3} (ssh per command); \
             min: {:.3}, {:.3}",
            total[0].0 / total[1].0,
            total[0].0 / total[2].0,
            total[0].1 / total[1].1,
            total[0].1 / total[2].1
        );
    }
    let rtt = cols(&|p| p.2);
    println!(
        "  `true` round trip on a provisioned host (median of 20, median over rounds): \
         russh {:.1} ms, openssh mux {:.1} ms, ssh per command {:.1} ms",
        rtt[0].0, rtt[1].0, rtt[2].0
    );
    Ok(())
}

// ------------------------------------------------------------------- embedded-rss

/// This process's memory from `/proc/self/status`, in KiB: `VmRSS` (= `RssAnon`, heap and
/// stacks, + `RssFile`, mapped code and files) and `VmHWM` (the peak of `VmRSS`).
#[derive(Clone, Copy)]
struct OwnMemory {
    rss: u64,
    anon: u64,
    file: u64,
    hwm: u64,
}

fn own_memory() -> OwnMemory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    OwnMemory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
        hwm: field("VmHWM:"),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_memory(what: &str, m: OwnMemory, base: Option<OwnMemory>) {
    let diff = base
        .map(|b| {
            format!(
                "  (+{:.1} MiB: anon +{:.1}, file +{:.1})",
                mib(m.rss.saturating_sub(b.rss)),
                mib(m.anon.saturating_sub(b.anon)),
                mib(m.file.saturating_sub(b.file))
            )
        })
        .unwrap_or_default();
    println!(
        "embedded-rss: {what:<22} VmRSS {:6.1} MiB (anon {:6.1}, file {:5.1})  VmHWM {:6.1} MiB{diff}",
        mib(m.rss),
        mib(m.anon),
        mib(m.file),
        mib(m.hwm)
    );
}

/// Memory added by the embedded Tailscale node. It can't join a tailnet here (no internet,
/// by rule), so what is measured is the node started and idling while it tries to join: a
/// loopback "control plane" accepts its connection and never answers. A joined node (netmap,
/// peers, relay connections, WireGuard sessions) will need more; that can't be measured here.
async fn embedded_rss(seconds: u64) -> Result<()> {
    use clawkeeper_core::tailnet::embedded::{EmbeddedNode, EmbeddedOptions};
    ensure!(
        clawkeeper_tests::tailscaled::no_default_route(),
        "this network namespace has a default route: run through scripts/bench.sh or \
         `unshare --net` (the node must not reach the internet)"
    );
    let seconds = seconds.max(10);
    let control = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = control.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = control.accept().await {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir()?;
    // Settle: the runtime, the listener and the allocator's first arenas.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = own_memory();
    print_memory("before the node", before, None);

    let opts = EmbeddedOptions::new(dir.path().join("tailnet-node"), "clawkeeper-bench")
        .with_control_url(format!("http://127.0.0.1:{port}/"))
        .with_start_timeout(Duration::from_secs(seconds));
    let started = Instant::now();
    let node = tokio::spawn(EmbeddedNode::start(opts));
    let mut last = before;
    let mut t = 5;
    while t < seconds {
        tokio::time::sleep_until((started + Duration::from_secs(t)).into()).await;
        last = own_memory();
        print_memory(&format!("node up, +{t} s"), last, Some(before));
        t += 5;
    }
    let outcome = node.await?;
    ensure!(
        outcome.is_err(),
        "the node joined something: it must not be able to"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = own_memory();
    print_memory("after it gave up", after, Some(before));
    println!(
        "embedded-rss: added by the idling node: {:.1} MiB VmRSS (anon {:.1}, file {:.1}) at the last \
         sample; peak VmHWM {:.1} MiB above the RSS before",
        mib(last.rss.saturating_sub(before.rss)),
        mib(last.anon.saturating_sub(before.anon)),
        mib(last.file.saturating_sub(before.file)),
        mib(after.hwm.saturating_sub(before.rss)),
    );
    Ok(())
}

// ------------------------------------------------------------------------------ usage

/// Seed of the generated history (docs/openclaw-usage.md measured seed 11 the same way).
const USAGE_SEED: u64 = 11;

/// Dollars per token the fake model bills (OpenRouter-style `usage.cost`), as in
/// tests/usage_gateway.rs.
const USAGE_PRICE: clawkeeper_tests::fake_model::TokenPrice =
    clawkeeper_tests::fake_model::TokenPrice {
        input: 0.000_003,
        output: 0.000_015,
    };

/// CPU time (user + sys, all threads, exited ones included) this process has used.
fn own_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Fields of `/proc/<pid>/stat` after the command name (index 0 = state; utime = 11,
/// stime = 12, cutime = 13, cstime = 14, in clock ticks).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1.to_owned();
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ; 100 on Linux).
const TICK: f64 = 0.01;

/// CPU the gateway has used, in seconds: its own (all threads) plus its children's, live
/// (`utime + stime` of every descendant) and reaped (its `cutime + cstime`: a keychain
/// helper it ran, for instance).
fn gateway_cpu(pid: u32) -> f64 {
    let mut ticks = 0;
    for p in process_tree(pid) {
        if let Some(f) = stat_fields(p) {
            ticks += f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
            if p == pid {
                ticks += f.get(13).unwrap_or(&0) + f.get(14).unwrap_or(&0);
            }
        }
    }
    ticks as f64 * TICK
}

fn rss_mb(pid: u32) -> f64 {
    memory(&process_tree(pid)).0 as f64 / 1024.0
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One `openclaw …` run as a child, in the environment the app gives the gateway (what
/// `LocalInstance::openclaw` does), under GNU time (`wait4`: the child's CPU with its
/// waited-for children).
struct CliRun {
    wall: f64,
    user: f64,
    sys: f64,
    max_rss_mb: f64,
    /// The gateway's CPU over the same time (the CLI's request is work there too).
    gateway: f64,
    ok: bool,
    stdout: String,
    stderr: String,
}

impl CliRun {
    fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

async fn openclaw_timed(app: &Clawkeeper, args: &[&str], gateway_pid: u32) -> Result<CliRun> {
    let inst = app.instance();
    let times = tempfile::NamedTempFile::new()?;
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%e %U %S %M", "-o"])
        .arg(times.path())
        .arg(inst.runtime().node())
        .arg(inst.runtime().openclaw_entry())
        .args(args)
        .env_clear()
        .envs(inst.gateway_env())
        .current_dir(inst.dir())
        .stdin(std::process::Stdio::null());
    let g0 = gateway_cpu(gateway_pid);
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let wall = t.elapsed().as_secs_f64();
    let gateway = gateway_cpu(gateway_pid) - g0;
    let text = std::fs::read_to_string(times.path())?;
    let last = text.lines().last().unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    ensure!(f.len() == 4, "GNU time said {text:?}");
    Ok(CliRun {
        wall,
        user: f[1],
        sys: f[2],
        max_rss_mb: f[3] / 1024.0,
        gateway,
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// (p50, p95, max) of millisecond samples.
fn p50_p95_max(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.95), pct(1.0))
}

fn median(v: &[f64]) -> f64 {
    median_min_max(v).0
}

/// One incremental refresh.
struct Refresh {
    wall: f64,
    app: f64,
    gateway: f64,
}

/// Medians of 5 refreshes.
struct Refreshes {
    wall: f64,
    app: f64,
    gateway: f64,
}

/// Five usage refreshes, each after a chat with `after_chat` (the chat itself is not
/// measured), and their medians.
async fn refreshes(
    app: &clawkeeper_core::app::Clawkeeper,
    pid: u32,
    label: &str,
    after_chat: bool,
) -> Refreshes {
    let mut runs = Vec::new();
    for i in 0..5 {
        if after_chat {
            if let Err(e) = app
                .chat_round_trip(&format!("bench chat {i}"), Duration::from_secs(120))
                .await
            {
                println!("  chat {i}: FAILED {e}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let (t, c0, g0) = (Instant::now(), own_cpu(), gateway_cpu(pid));
        let r = Box::pin(app.usage_sync()).await;
        let run = Refresh {
            wall: t.elapsed().as_secs_f64(),
            app: (own_cpu() - c0).as_secs_f64(),
            gateway: gateway_cpu(pid) - g0,
        };
        match r {
            Ok(r) => println!(
                "  refresh {i} ({label}): wall {:7.0} ms, app CPU {:6.1} ms, gateway CPU {:6.0} ms; \
                 {} days ({} .. {}), {} rows, {} waited polls{}",
                run.wall * 1000.0,
                run.app * 1000.0,
                run.gateway * 1000.0,
                r.days,
                r.from,
                r.to,
                r.rows,
                r.waited,
                if r.nothing_new { ", nothing new" } else { "" }
            ),
            Err(p) => println!(
                "  refresh {i} ({label}): FAILED {} ({}) after {:.0} ms, app CPU {:.1} ms, gateway CPU {:.0} ms",
                p.code,
                p.message,
                run.wall * 1000.0,
                run.app * 1000.0,
                run.gateway * 1000.0
            ),
        }
        runs.push(run);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let m = Refreshes {
        wall: median(&runs.iter().map(|r| r.wall).collect::<Vec<_>>()),
        app: median(&runs.iter().map(|r| r.app).collect::<Vec<_>>()),
        gateway: median(&runs.iter().map(|r| r.gateway).collect::<Vec<_>>()),
    };
    println!(
        "refresh ({label}), median of 5: wall {:.0} ms, app CPU {:.1} ms, gateway CPU {:.0} ms, app + gateway {:.0} ms; gateway RSS {:.0} MB",
        m.wall * 1000.0,
        m.app * 1000.0,
        m.gateway * 1000.0,
        (m.app + m.gateway) * 1000.0,
        rss_mb(pid)
    );
    m
}

/// The issue-6 figures: an instance with `events` recorded transcript events (seeded
/// generator), the app's incremental usage refresh against `openclaw status --usage --json`
/// (and, like for like, `openclaw gateway call usage.cost` over 2 days) on the same state,
/// and how fast the Usage section's view comes from the filled ledger.
async fn usage(events: u64) -> Result<()> {
    use clawkeeper_core::local::supervisor::InstanceState;
    use clawkeeper_core::usage::ledger::Filter;
    use clawkeeper_core::usage::Day;
    use clawkeeper_tests::openclaw_state::{self, close, GenSpec};

    let runtime_dir =
        env::test_runtime().context("CLAWKEEPER_TEST_RUNTIME is not set (run scripts/bench.sh)")?;
    ensure!(
        env::isolated(),
        "needs scripts/bench.sh's environment (keyring, D-Bus session)"
    );
    std::env::set_var(
        "CLAWKEEPER_KEYCHAIN_NAMESPACE",
        format!("clawkeeper-bench-usage-{}", std::process::id()),
    );
    std::env::set_var("CLAWKEEPER_KEYHELPER", env::bin("clawkeeper-keyhelper"));
    std::env::set_var("CLAWKEEPER_PORT", env::free_port().to_string());
    println!(
        "usage: {events} generated transcript events; load average at start: {}",
        loadavg()
    );

    // 1. A core with a provider; one chat creates the agent database; stop.
    let data = tempfile::tempdir()?;
    let key = format!("sk-bench-{}", Secret::random(9).expose());
    let fake = ContractFakeModel::start_priced(
        ([127, 0, 0, 1], 0).into(),
        key.clone(),
        vec!["echo-1".into()],
        Some(USAGE_PRICE),
    )
    .await?;
    // No health probe during the measurements (the app's is a WebSocket handshake every
    // 15 s): what is measured is the sync alone. A 1M-event gateway needs ~52 s to start.
    let policy = Policy {
        probe_every: Duration::from_secs(3600),
        ready_timeout: Duration::from_secs(600),
        ..Policy::default()
    };
    let app = Clawkeeper::open(
        Paths {
            data_dir: data.path().join("data"),
            runtime_dir,
        },
        policy,
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
    app.wait_healthy(Duration::from_secs(300))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    println!(
        "empty state: gateway start to healthy {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let reply = app
        .chat_round_trip("hello usage bench", Duration::from_secs(120))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    ensure!(reply == "Echo: hello usage bench", "reply {reply:?}");
    let state_dir = app.instance().state_dir();
    let mut expected = openclaw_state::read_transcript_sums(&state_dir).await?;
    let old_pid = app.status().borrow().pid;
    app.stop().await.map_err(|p| anyhow!("{p}"))?;
    let s = app
        .wait_for_state(Duration::from_secs(60), |s| {
            matches!(s, InstanceState::Stopped)
        })
        .await;
    ensure!(matches!(s, InstanceState::Stopped), "not stopped: {s:?}");
    if let Some(pid) = old_pid {
        ensure!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "gateway {pid} still running"
        );
    }

    // 2. The history: `events` events over 90 days ending today.
    let today = Day::today();
    let mut spec = GenSpec::new(USAGE_SEED, events, &today.to_string());
    // Nothing later than a minute ago: a real history has no events from later today (and
    // the refresh's "anything new?" check looks at what changed since the last count).
    spec.until_ms = Some(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )? - 60_000,
    );
    let (c0, t) = (own_cpu(), Instant::now());
    let generated = openclaw_state::generate(&state_dir, &spec).await?;
    println!(
        "generated {} events in {} sessions ({} .. {}), seed {USAGE_SEED}: {:.1} s wall, {:.1} s CPU",
        generated.events,
        generated.sessions,
        generated.first_day.as_deref().unwrap_or("?"),
        generated.last_day.as_deref().unwrap_or("?"),
        t.elapsed().as_secs_f64(),
        (own_cpu() - c0).as_secs_f64()
    );
    expected.merge(&generated);
    let db = openclaw_state::agent_db_path(&state_dir, &spec.agent_id);
    println!(
        "state: agent database {:.1} MB, state dir {:.1} MB; expected: {} tokens, ${:.6}",
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        dir_size(&state_dir) as f64 / 1e6,
        expected.totals.total_tokens,
        expected.totals.total_cost
    );

    // 3. Start on the big state; the first sync takes the whole history.
    let t = Instant::now();
    app.start().await.map_err(|p| anyhow!("{p}"))?;
    app.wait_healthy(Duration::from_secs(600))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    let pid = app.status().borrow().pid.context("no gateway pid")?;
    println!(
        "gateway start to healthy: {:.1} s; gateway RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        rss_mb(pid)
    );
    let (t, c0, g0) = (Instant::now(), own_cpu(), gateway_cpu(pid));
    let mut attempt = 0;
    let mut last;
    let first = loop {
        attempt += 1;
        let ta = Instant::now();
        last = ta;
        match Box::pin(app.usage_sync()).await {
            Ok(r) => break r,
            Err(p) => {
                println!(
                    "  first sync, attempt {attempt}: {} ({}) after {:.1} s",
                    p.code,
                    p.message,
                    ta.elapsed().as_secs_f64()
                );
                ensure!(
                    attempt < 40 && t.elapsed() < Duration::from_secs(1800),
                    "the first sync did not succeed"
                );
                if p.code != "usage_counting" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    };
    let first_wall = t.elapsed().as_secs_f64();
    println!(
        "first sync (whole history): {first_wall:.1} s wall in {attempt} attempt(s) (the last {:.1} s): \
         {} days asked ({} .. {}), {} rows, {} waited polls in the last attempt; \
         app CPU {:.2} s, gateway CPU {:.1} s; gateway RSS {:.0} MB",
        last.elapsed().as_secs_f64(),
        first.days,
        first.from,
        first.to,
        first.rows,
        first.waited,
        (own_cpu() - c0).as_secs_f64(),
        gateway_cpu(pid) - g0,
        rss_mb(pid)
    );
    let ledger = app.usage_ledger();
    let all = Filter {
        from: Day::parse("2020-01-01").context("day")?,
        to: today.plus(1),
        instance: None,
    };
    let got = ledger.totals(&all).await?;
    let want = &expected.totals;
    let tokens_ok = got.tokens.total == want.total_tokens
        && got.tokens.input == want.input
        && got.tokens.output == want.output
        && got.tokens.cache_read == want.cache_read
        && got.tokens.cache_write == want.cache_write;
    let cost_ok = close(got.cost, want.total_cost, 1e-9);
    println!(
        "ledger vs generator: tokens {} (ledger {} / expected {}; input {}/{}, output {}/{}, \
         cache read {}/{}, cache write {}/{}), cost {} (ledger ${:.9} / expected ${:.9})",
        if tokens_ok { "OK" } else { "MISMATCH" },
        got.tokens.total,
        want.total_tokens,
        got.tokens.input,
        want.input,
        got.tokens.output,
        want.output,
        got.tokens.cache_read,
        want.cache_read,
        got.tokens.cache_write,
        want.cache_write,
        if cost_ok { "OK" } else { "MISMATCH" },
        got.cost,
        want.total_cost
    );
    let by_day = ledger
        .breakdown(&all, clawkeeper_core::usage::By::Day)
        .await?;
    let days_ok = by_day.len() == expected.by_day.len()
        && by_day.iter().all(|r| {
            r.day
                .and_then(|d| expected.by_day.get(&d.to_string()))
                .is_some_and(|w| {
                    w.total_tokens == r.tokens.total && close(w.total_cost, r.cost, 1e-9)
                })
        });
    println!(
        "ledger vs generator per day: {} ({} days in the ledger, {} expected)",
        if days_ok { "OK" } else { "MISMATCH" },
        by_day.len(),
        expected.by_day.len()
    );

    // 4. Incremental refreshes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c0 = own_cpu();
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "idle, 10 s before the refreshes: app CPU {:.1} ms",
        (own_cpu() - c0).as_secs_f64() * 1000.0
    );
    // Two kinds: nothing new since the last refresh (the usual one: the app refreshes on a
    // timer and when the window opens), and right after a chat.
    let quiet = refreshes(&app, pid, "nothing new", false).await;
    let got = ledger.totals(&all).await?;
    println!(
        "ledger after the refreshes with nothing new: {} tokens ${:.6} ({})",
        got.tokens.total,
        got.cost,
        if got.tokens.total == want.total_tokens && close(got.cost, want.total_cost, 1e-9) {
            "unchanged, OK"
        } else {
            "CHANGED"
        }
    );
    let chatty = refreshes(&app, pid, "after a chat", true).await;
    let (r_wall, r_app, r_both) = (quiet.wall, quiet.app, quiet.app + quiet.gateway);

    // 5. `openclaw status --usage --json` on the same running gateway, and the comparable
    //    gateway work: `usage.cost` over 2 days (each range a new result-cache key).
    let mut status = Vec::new();
    for i in 0..3 {
        let r = openclaw_timed(&app, &["status", "--usage", "--json"], pid).await?;
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
        println!(
            "  status --usage --json {i}: {} wall {:.2} s, CPU {:.2} s (user {:.2}, sys {:.2}), max RSS {:.0} MB, \
             gateway CPU meanwhile {:.2} s; {} bytes of JSON, usage.providers {}, sessions.count {}{}",
            if r.ok { "ok" } else { "FAILED" },
            r.wall,
            r.cpu(),
            r.user,
            r.sys,
            r.max_rss_mb,
            r.gateway,
            r.stdout.len(),
            v.pointer("/usage/providers").map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            v.pointer("/sessions/count").map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            if r.ok { String::new() } else { format!("; stderr: {}", r.stderr.trim()) }
        );
        status.push(r);
    }
    let mut cost = Vec::new();
    for i in 0..4 {
        // Three new 2-day ranges, then the last one again (answered from the 30-s cache).
        let end = today.plus(-(i.min(2) * 2));
        let params = json!({
            "startDate": end.plus(-1).to_string(),
            "endDate": end.to_string(),
            "mode": "utc",
        })
        .to_string();
        let r = openclaw_timed(
            &app,
            &[
                "gateway",
                "call",
                "usage.cost",
                "--json",
                "--timeout",
                "120000",
                "--params",
                &params,
            ],
            pid,
        )
        .await?;
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
        println!(
            "  gateway call usage.cost {} .. {}{}: {} wall {:.2} s, CLI CPU {:.2} s, gateway CPU {:.2} s, \
             cacheStatus {}, {} tokens{}",
            end.plus(-1),
            end,
            if i == 3 { " (again)" } else { "" },
            if r.ok { "ok" } else { "FAILED" },
            r.wall,
            r.cpu(),
            r.gateway,
            v.pointer("/cacheStatus/status").map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            v.pointer("/totals/totalTokens").map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            if r.ok { String::new() } else { format!("; stderr: {}", r.stderr.trim()) }
        );
        if i < 3 {
            cost.push(r);
        }
    }
    let s_wall = median(&status.iter().map(|r| r.wall).collect::<Vec<_>>());
    let s_cpu = median(&status.iter().map(CliRun::cpu).collect::<Vec<_>>());
    let s_both = median(
        &status
            .iter()
            .map(|r| r.cpu() + r.gateway)
            .collect::<Vec<_>>(),
    );
    let u_wall = median(&cost.iter().map(|r| r.wall).collect::<Vec<_>>());
    let u_cpu = median(&cost.iter().map(CliRun::cpu).collect::<Vec<_>>());
    let u_both = median(&cost.iter().map(|r| r.cpu() + r.gateway).collect::<Vec<_>>());
    println!(
        "status --usage --json, median of 3: wall {s_wall:.2} s, CPU {s_cpu:.2} s, CLI + gateway CPU {s_both:.2} s"
    );
    println!(
        "gateway call usage.cost (2 days, new key), median of 3: wall {u_wall:.2} s, CLI CPU {u_cpu:.2} s, \
         CLI + gateway CPU {u_both:.2} s"
    );

    // 6. Ratios (medians).
    println!(
        "ratio (status --usage cpu / app cpu per refresh): {:.0}x",
        s_cpu / r_app
    );
    println!(
        "ratio (status --usage cpu / (app + gateway) cpu per refresh): {:.2}x",
        s_cpu / r_both
    );
    println!(
        "ratio ((status --usage + gateway) cpu / (app + gateway) cpu per refresh): {:.2}x",
        s_both / r_both
    );
    println!(
        "ratio (status --usage wall / refresh wall): {:.2}x",
        s_wall / r_wall
    );
    println!(
        "ratio (usage.cost cli cpu / app cpu per refresh): {:.0}x",
        u_cpu / r_app
    );
    println!(
        "ratio ((usage.cost cli + gateway) cpu / (app + gateway) cpu per refresh): {:.2}x",
        u_both / r_both
    );
    println!(
        "ratio (usage.cost wall / refresh wall): {:.2}x",
        u_wall / r_wall
    );

    let c_both = chatty.app + chatty.gateway;
    println!(
        "after a chat: ratio (status --usage cpu / app cpu per refresh): {:.0}x; \
         (status --usage cpu / (app + gateway) cpu): {:.2}x; (status --usage wall / refresh wall): {:.2}x; \
         ((usage.cost cli + gateway) cpu / (app + gateway) cpu): {:.2}x",
        s_cpu / chatty.app,
        s_cpu / c_both,
        s_wall / chatty.wall,
        u_both / c_both
    );

    // 7. The Usage section's data from the filled ledger: the core call, and the daemon's
    //    IPC method (in process, serialised to the text the window receives).
    for days in [30u32, 90] {
        let mut ms_core = Vec::new();
        let mut ms_ipc = Vec::new();
        let mut bytes = 0;
        for _ in 0..100 {
            let t = Instant::now();
            let v = app.usage_view(days).await.map_err(|p| anyhow!("{p}"))?;
            ms_core.push(ms(t.elapsed()));
            ensure!(v.daily.len() <= days as usize + 1, "view of {days} days");
            let t = Instant::now();
            let v = clawkeeper_core::ipc::dispatch(&app, "usage_view", json!({ "days": days }))
                .await
                .map_err(|p| anyhow!("{p}"))?;
            bytes = v.to_string().len();
            ms_ipc.push(ms(t.elapsed()));
        }
        let (a50, a95, amax) = p50_p95_max(&ms_core);
        let (b50, b95, bmax) = p50_p95_max(&ms_ipc);
        println!(
            "usage_view({days}) over the filled ledger, 100 calls: p50 {a50:.2} ms, p95 {a95:.2} ms, max {amax:.2} ms; \
             through ipc::dispatch + JSON ({bytes} bytes): p50 {b50:.2} ms, p95 {b95:.2} ms, max {bmax:.2} ms"
        );
    }

    app.stop().await.map_err(|p| anyhow!("{p}"))?;
    let _ = app
        .wait_for_state(Duration::from_secs(60), |s| {
            matches!(s, InstanceState::Stopped)
        })
        .await;
    app.shutdown().await;
    println!("load average at end: {}", loadavg());
    Ok(())
}

// ----------------------------------------------------------------------------- rotate

/// The server of the rotate bench: its id in the app.
const ROT_SERVER: &str = "bench-server";

/// A test host that takes a one-time root password (the nspawn host: real systemd and
/// sshd), booted before the provider's model server so that one can listen where the
/// host reaches it.
async fn boot_server_for_rotation() -> Result<TestHost> {
    let person = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPReM7GrxNV983Nfnr997sz9WPMZLnryVZfJmBMInnVS me@laptop";
    let mut opts = HostOptions::with_key(person);
    opts.password_login = Some(("root".into(), ROT_SERVER_PASSWORD.into()));
    TestHost::boot(opts).await
}

const ROT_SERVER_PASSWORD: &str = "one-time-Pw-bench-rot-5e1d";

/// Connect `host` with the CLI and a one-time password (its host key confirmed by
/// fingerprint), as `rotation_ssh` does — Clawkeeper's own key is installed and kept in the
/// keychain — then set the assistant up on it as `rotation_server_token` does
/// (`clawkeeper-cli provision`: the real OpenClaw from the offline npm mirror, this
/// computer's provider and key, the gateway token in a live file), and wait until its
/// gateway takes the keychain's token. Returns how long the set-up took.
async fn set_up_server_for_rotation(app: &Clawkeeper, host: &TestHost, cli: &Cli) -> Result<f64> {
    use clawkeeper_core::rotation::gateway_token::Verdict;
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256()?;
    cli.ok(
        &[
            "connect",
            "--host",
            &addr,
            "--id",
            ROT_SERVER,
            "--password-stdin",
            "--fingerprint",
            &fp,
        ],
        Some(ROT_SERVER_PASSWORD),
    )?;
    let t = Instant::now();
    cli.ok(&["provision", "--id", ROT_SERVER], None)?;
    let took = t.elapsed().as_secs_f64();
    let token = app
        .vault()
        .read(&clawkeeper_core::vault::SecretRef::new(
            clawkeeper_core::vault::SecretKind::GatewayToken,
            ROT_SERVER,
        ))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = server_token_verdict(app, &token).await;
        if v == Verdict::Accepted {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the server's gateway still says {v:?} to the keychain's token"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(took)
}

/// What the server's gateway says to `token`, through the app's SSH tunnel.
async fn server_token_verdict(
    app: &Clawkeeper,
    token: &Secret,
) -> clawkeeper_core::rotation::gateway_token::Verdict {
    use clawkeeper_core::rotation::gateway_token::{try_token, Verdict};
    let link = clawkeeper_core::server::ServerLink::new(
        app.store().clone(),
        app.vault().clone(),
        ROT_SERVER,
    );
    let v = match link.gateway_tunnel().await {
        Ok(t) => try_token(&format!("ws://{}", t.local_addr()), token).await,
        Err(e) => Verdict::Unknown(e.to_string()),
    };
    link.reset().await;
    v
}

/// A message to the server's assistant through the CLI (`chat --server`): its answer, or
/// why there was none (at most 120 s).
async fn server_chat(cli: &Cli, message: &str) -> std::result::Result<String, String> {
    let mut cmd =
        tokio::process::Command::from(cli.cmd(&["chat", "--server", ROT_SERVER, message]));
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Err(_) => Err("no answer within 120 s".into()),
        Ok(Err(e)) => Err(format!("clawkeeper-cli didn't run: {e}")),
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(Ok(out)) => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ")),
    }
}

/// `ms` added to `name`'s figures in `v` (kept in the order names first came).
fn add(v: &mut Vec<(String, Vec<f64>)>, name: String, ms: f64) {
    match v.iter_mut().find(|(n, _)| *n == name) {
        Some((_, ms_all)) => ms_all.push(ms),
        None => v.push((name, vec![ms])),
    }
}

/// Issue 7: "Rotate all" against the assistant on this computer (the real gateway; the
/// provider OpenRouter's contract fake with a management key) and, with
/// `CLAWKEEPER_TESTHOST_IMAGE` and `CLAWKEEPER_NPM_MIRROR` set, a server set up with the
/// real OpenClaw, `n` times: wall time, the app's CPU, the time spent waiting on the
/// gateways, the provider and the server (the rest), and each key's and step's share (from
/// the rotation events).
async fn rotate(n: usize) -> Result<()> {
    use clawkeeper_core::app::Event;
    use clawkeeper_tests::fake_model::KeyAuth;
    use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
    ensure!(n > 0, "rotate: at least one run");
    let (app, _plain, data) = local_core("clawkeeper-bench-rotate").await?;
    // A server of the person's, set up with OpenClaw as the app does: booted first, so the
    // model server below listens where both gateways reach it (our side of its veth).
    let server = if std::env::var_os("CLAWKEEPER_TESTHOST_IMAGE").is_some() {
        let host = boot_server_for_rotation().await?;
        let mirror = NpmMirror::start_from_env((host.gateway_addr(), 0).into()).await?;
        Some((host, mirror))
    } else {
        println!("(CLAWKEEPER_TESTHOST_IMAGE not set: no server in this run)");
        None
    };
    let model_ip = server
        .as_ref()
        .map_or(std::net::Ipv4Addr::LOCALHOST, |(h, _)| h.gateway_addr());
    // The provider: OpenRouter's contract fake with a management key (so its key rotates in
    // one click), and a model server that serves exactly the keys the fake account holds.
    let openrouter = ContractFakeOpenRouter::start(true).await?;
    std::env::set_var("CLAWKEEPER_OPENROUTER_SITE", openrouter.origin());
    let key = openrouter.add_key("Clawkeeper");
    openrouter.set_limit(&key, Some(20.0), Some("monthly"));
    let model = ContractFakeModel::start_with_auth(
        (model_ip, 0).into(),
        KeyAuth::Check(openrouter.key_check()),
        vec!["echo-1".into()],
        None,
    )
    .await?;
    app.save_provider(ProviderInput {
        kind: ProviderKind::Openrouter,
        base_url: Some(model.base_url()),
        model: Some("echo-1".into()),
        api_key: Secret::new(key),
    })
    .await
    .map_err(|p| anyhow!("{p}"))?;
    app.provider_management_save(Secret::new(openrouter.add_management_key()))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    app.start().await.map_err(|p| anyhow!("{p}"))?;
    app.wait_healthy(Duration::from_secs(180))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    app.chat_round_trip("warm up", Duration::from_secs(120))
        .await
        .map_err(|p| anyhow!("{p}"))?;
    let cli = server.as_ref().map(|(_, mirror)| Cli {
        home: data.path().join("data"),
        registry: mirror.url(),
    });
    if let (Some((host, mirror)), Some(cli)) = (&server, &cli) {
        let took = Box::pin(set_up_server_for_rotation(&app, host, cli)).await?;
        ensure!(
            mirror.not_found().is_empty(),
            "missing from the npm mirror: {:?}",
            mirror.not_found()
        );
        println!(
            "server set up with OpenClaw (clawkeeper-cli provision) in {took:.1} s; its chat before: {:?}",
            server_chat(cli, "hello before rotating").await
        );
    }
    let one_click = one_click_keys(&app).await?;
    println!(
        "rotate all: {} key(s) rotate in one click here ({}); load average {}",
        one_click.len(),
        one_click
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        loadavg()
    );
    ensure!(!one_click.is_empty(), "no key rotates in one click here");
    // Step times from the rotation events: when each step began (the clock of the journal's
    // started_at / finished_at, which end each key's last step).
    let marks: std::sync::Arc<std::sync::Mutex<Vec<(String, String, SystemTime)>>> =
        Default::default();
    {
        let marks = marks.clone();
        let mut rx = app.events();
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                if let Event::Rotation(r) = ev {
                    if let Ok(mut m) = marks.lock() {
                        m.push((
                            format!("{} {}", r.instance_id, r.key.as_str()),
                            r.step.as_str().to_owned(),
                            SystemTime::now(),
                        ));
                    }
                }
            }
        });
    }
    let me = std::process::id();
    let server_root = server.as_ref().map_or(0, |(h, _)| h.leader_pid());
    let (mut walls, mut cpus, mut locals, mut remotes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Runs where a one-click key was not rotated (or did not change): what went wrong.
    let mut failed: Vec<String> = Vec::new();
    // In the order they first happened: (key, ms per run) and (key step, ms per run).
    let mut per_key: Vec<(String, Vec<f64>)> = Vec::new();
    let mut per_step: Vec<(String, Vec<f64>)> = Vec::new();
    let mut per_began: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..n {
        // A person's clicks are seconds apart; right after a rotation the next one first
        // waits for the gateway to have applied the last config write (gateway_token.rs).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = one_click_keys(&app).await?;
        if let Ok(mut m) = marks.lock() {
            m.clear();
        }
        let (server0, children0) = (tree_cpu(server_root), tree_cpu(me) - own_cpu_ticks());
        let (t, t_sys, c0) = (Instant::now(), SystemTime::now(), own_cpu());
        let results = app.rotate_all().await.map_err(|p| anyhow!("{p}"))?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = (own_cpu() - c0).as_secs_f64();
        let end = SystemTime::now();
        let server_cpu = (tree_cpu(server_root) - server0).max(0.0);
        let local_cpu = (tree_cpu(me) - own_cpu_ticks() - children0 - server_cpu).max(0.0);
        // Every key that was one click must say "rotated" and have a new fingerprint; the
        // others ("needs you": guided or not from here) are not part of the one click.
        let after = one_click_keys(&app).await?;
        let mut wrong = Vec::new();
        for (key, fp) in &before {
            match results
                .iter()
                .find(|r| format!("{} {}", r.instance_id, r.key.as_str()) == *key)
            {
                None => wrong.push(format!("{key}: not in Rotate all's results")),
                Some(r) if r.result != "rotated" => wrong.push(format!(
                    "{key}: {}{}",
                    r.result,
                    r.problem
                        .as_ref()
                        .map(|p| format!(" ({}: {})", p.code, p.message))
                        .unwrap_or_default()
                )),
                Some(_) => match after.iter().find(|(k, _)| k == key) {
                    None => wrong.push(format!("{key}: said rotated, but is no longer one click")),
                    Some((_, now)) if now.is_none() || now == fp => wrong.push(format!(
                        "{key}: said rotated, but its fingerprint is {now:?} (was {fp:?})"
                    )),
                    Some(_) => {}
                },
            }
        }
        if wrong.iter().any(|w| w.starts_with("local ")) {
            // What the gateway said about its config meanwhile.
            let log = std::fs::read_to_string(app.instance().log_dir().join("openclaw.log"))
                .unwrap_or_default();
            for line in log.lines().filter(|l| l.contains("gateway/reload")) {
                println!("  gateway: {}", line.chars().take(300).collect::<String>());
            }
        }
        let m = marks.lock().map(|m| m.clone()).unwrap_or_default();
        // Each key: when its rotation began (from the click: the keys list, the checks
        // before it, the keys before it in its place; keys of different places rotate at
        // the same time), how long it took, and its steps, the last one ending when its
        // rotation finished; what follows the last key's end.
        let since = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
        let mut last_end = t_sys;
        let mut timeline = Vec::new();
        for r in &results {
            let Some(rot) = &r.rotation else { continue };
            let (Some(started), Some(finished)) = (
                journal_time(&rot.started_at),
                rot.finished_at.as_deref().and_then(journal_time),
            ) else {
                continue;
            };
            let key = format!("{} {}", r.instance_id, r.key.as_str());
            let (began, took) = (ms(since(t_sys, started)), ms(since(started, finished)));
            timeline.push(format!("{key} {began:.0}-{:.0}", began + took));
            add(&mut per_began, key.clone(), began);
            let steps: Vec<&(String, String, SystemTime)> =
                m.iter().filter(|(k, _, _)| *k == key).collect();
            for (j, (_, step, at)) in steps.iter().enumerate() {
                let next = steps.get(j + 1).map_or(finished, |(_, _, t)| *t);
                add(&mut per_step, format!("{key} {step}"), ms(since(*at, next)));
            }
            add(&mut per_key, key, took);
            last_end = last_end.max(finished);
        }
        add(
            &mut per_step,
            "after the last key's end".into(),
            ms(since(last_end, end)),
        );
        println!(
            "  run {i} timeline (ms from the click): {}",
            timeline.join(", ")
        );
        println!(
            "  run {i}: wall {:.0} ms, app CPU {:.1} ms, waiting {:.0} ms (meanwhile CPU of this computer's gateway and helpers {:.0} ms, of the server {:.0} ms); {}",
            wall * 1000.0,
            cpu * 1000.0,
            (wall - cpu).max(0.0) * 1000.0,
            local_cpu * 1000.0,
            server_cpu * 1000.0,
            results
                .iter()
                .map(|r| format!("{} {}: {}", r.instance_id, r.key.as_str(), r.result))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !wrong.is_empty() {
            println!("  RUN {i} FAILED: {}", wrong.join("; "));
            failed.push(format!("run {i}: {}", wrong.join("; ")));
        }
        walls.push(wall);
        cpus.push(cpu);
        locals.push(local_cpu);
        remotes.push(server_cpu);
    }
    let (w, c) = (median(&walls), median(&cpus));
    let (_, wmin, wmax) = median_min_max(&walls.iter().map(|s| s * 1000.0).collect::<Vec<_>>());
    println!(
        "rotate all, median of {n}{}: wall {:.0} ms ({wmin:.0}-{wmax:.0}; target <= 10000 ms, {} of {n} runs over), app CPU {:.1} ms ({:.1} % of the wall), waiting on the gateways, the provider and the server {:.0} ms ({:.1} %; meanwhile CPU of this computer's gateway and helpers {:.0} ms, of the server {:.0} ms)",
        if failed.is_empty() {
            ""
        } else {
            " (FAILED RUNS INCLUDED: not every key rotated)"
        },
        w * 1000.0,
        walls.iter().filter(|s| **s > 10.0).count(),
        c * 1000.0,
        100.0 * c / w,
        (w - c) * 1000.0,
        100.0 * (w - c) / w,
        median(&locals) * 1000.0,
        median(&remotes) * 1000.0,
    );
    for (key, ms) in &per_key {
        let began = per_began
            .iter()
            .find(|(k, _)| k == key)
            .map_or(f64::NAN, |(_, b)| median(b));
        println!(
            "  key {key}: began {began:.0} ms after the click, took {:.0} ms (medians of {} run(s))",
            median(ms),
            ms.len()
        );
    }
    for (step, ms) in &per_step {
        println!(
            "  step {step}: median {:.0} ms ({} run(s))",
            median(ms),
            ms.len()
        );
    }
    // Both assistants still answer, with whatever keys they hold now.
    if let Err(p) = app
        .chat_round_trip("hello after rotating", Duration::from_secs(120))
        .await
    {
        println!("this computer's chat after rotate all: FAILED: {p}");
        failed.push(format!("this computer's chat after: {p}"));
    } else {
        println!("this computer's chat after rotate all: answered");
    }
    if let Some(cli) = &cli {
        match server_chat(cli, "hello after rotating").await {
            Ok(a) => println!("the server's chat after rotate all: answered: {a:?}"),
            Err(e) => {
                println!("the server's chat after rotate all: FAILED: {e}");
                failed.push(format!("the server's chat after: {e}"));
            }
        }
    }
    app.stop().await.map_err(|p| anyhow!("{p}"))?;
    if let Some((host, _)) = server {
        host.stop().await;
    }
    if !failed.is_empty() {
        bail!(
            "ROTATE ALL FAILED ({} problem(s)):\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// A journal time (RFC 3339, as the rotation records write them).
fn journal_time(s: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// The keys "Rotate all" changes in one click now ("<instance> <key>"), with their
/// fingerprints.
async fn one_click_keys(app: &Clawkeeper) -> Result<Vec<(String, Option<String>)>> {
    Ok(app
        .keys_inventory()
        .await
        .map_err(|p| anyhow!("{p}"))?
        .into_iter()
        .filter(|k| k.how == clawkeeper_core::app::HowToRotate::OneClick)
        .map(|k| {
            (
                format!("{} {}", k.instance_id, k.key.as_str()),
                k.fingerprint,
            )
        })
        .collect())
}

/// CPU seconds of the processes under `root` (itself included; none when 0): each live
/// one's user + system time, plus what each has reaped (its cutime + cstime), so a process
/// that ended meanwhile still counts once, in its parent's figure.
fn tree_cpu(root: u32) -> f64 {
    if root == 0 {
        return 0.0;
    }
    let mut ticks = 0;
    for p in process_tree(root) {
        if let Some(f) = stat_fields(p) {
            ticks += f.iter().skip(11).take(4).sum::<u64>();
        }
    }
    ticks as f64 * TICK
}

/// This process's own user + system time as `/proc` counts it (seconds, tick-rounded), to
/// take out of [`tree_cpu`] of it.
fn own_cpu_ticks() -> f64 {
    stat_fields(std::process::id())
        .map(|f| f.iter().skip(11).take(2).sum::<u64>())
        .unwrap_or(0) as f64
        * TICK
}
