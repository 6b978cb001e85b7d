//! The seeded usage state against the real OpenClaw gateway (pinned runtime from
//! scripts/setup.sh --test, `CLAWKEEPER_TEST_RUNTIME`), with the priced contract fake
//! model: three real chats (one over telegram, one long enough to be stored
//! zstd-compressed), then 20,000 generated transcript events; the gateway's
//! `sessions.usage` and `usage.cost` over the whole range must equal the transcript's sums
//! exactly (tokens) and to 1e-9 (cost), per session, channel, model and UTC day.
//!
//! Runs through scripts/test.sh (private network namespace, loopback only). Outside it the
//! gateway is configured not to call out, except the one clawhub.ai lookup no setting
//! stops (README, Privacy). One gateway at a time, ~1 GB, ~20 s per start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clawkeeper_tests::env;
use clawkeeper_tests::fake_model::{ContractFakeModel, TokenPrice};
use clawkeeper_tests::openclaw_state::{
    generate, read_transcript_sums, utc_day, Expected, GenSpec, Totals,
};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const TOKEN: &str = "tok-openclaw-state-test-0123456789";
const TOL: f64 = 1e-9;

fn step(name: &str) {
    eprintln!("\n=== {name}");
}

struct Runtime {
    node: PathBuf,
    openclaw: PathBuf,
}

fn find_runtime(dir: &Path) -> Runtime {
    let mut node = None;
    let mut openclaw = None;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("node-") {
            node = Some(e.path().join("node_modules/node/bin/node"));
        } else if name.starts_with("openclaw-") {
            openclaw = Some(e.path().join("node_modules/openclaw/openclaw.mjs"));
        }
    }
    Runtime {
        node: node.expect("node-* in the runtime dir"),
        openclaw: openclaw.expect("openclaw-* in the runtime dir"),
    }
}

struct Instance {
    rt: Runtime,
    dir: PathBuf,
    port: u16,
}

impl Instance {
    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.rt.node);
        c.arg(&self.rt.openclaw)
            .env("OPENCLAW_STATE_DIR", self.state())
            .env("OPENCLAW_CONFIG_PATH", self.dir.join("openclaw.json"))
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
            .env("OPENCLAW_GATEWAY_PORT", self.port.to_string())
            .stdin(Stdio::null());
        if let Some(bin) = self.rt.node.parent() {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", bin.display()));
        }
        c
    }

    async fn start_gateway(&self) -> Child {
        let log = std::fs::File::create(self.dir.join("gateway.out")).unwrap();
        let child = self
            .command()
            .args(["gateway", "run", "--bind", "loopback", "--auth", "token"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let started = Instant::now();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "gateway not ready after 180 s, see {}",
                self.dir.join("gateway.out").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("gateway ready after {:.1?}", started.elapsed());
        child
    }

    async fn cli(&self, args: &[&str]) -> Value {
        let out = self.command().args(args).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "openclaw {args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    async fn call(&self, method: &str, params: &Value) -> Value {
        let params = params.to_string();
        self.cli(&[
            "gateway",
            "call",
            method,
            "--params",
            &params,
            "--json",
            "--timeout",
            "120000",
        ])
        .await
    }

    /// Calls until `cacheStatus.status` is "fresh" (the gateway rolls usage up in the
    /// background and answers "refreshing" meanwhile).
    async fn call_fresh(&self, method: &str, params: &Value) -> Value {
        let started = Instant::now();
        loop {
            let v = self.call(method, params).await;
            let status = v.pointer("/cacheStatus/status").and_then(Value::as_str);
            if status == Some("fresh") {
                eprintln!("{method} fresh after {:.1?}", started.elapsed());
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "{method} still {status:?} after 240 s"
            );
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
}

async fn stop(mut child: Child) {
    if let Some(pid) = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .is_err()
    {
        eprintln!("gateway ignored SIGTERM for 60 s: SIGKILL");
        let _ = child.kill().await;
    }
}

async fn compressed_rows(state: &Path) -> i64 {
    use sqlx::Connection;
    let db = clawkeeper_tests::openclaw_state::agent_db_path(state, "main");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transcript_events WHERE event_zstd IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    n
}

fn write_config(dir: &Path, base_url: &str, port: u16) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = json!({
        "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token"}},
        "update": {"checkOnStart": false},
        "discovery": {"mdns": {"mode": "off"}},
        "logging": {"file": dir.join("openclaw.log")},
        "models": {
            "mode": "replace",
            "catalogRefresh": {"enabled": false},
            "providers": {"fake": {
                "baseUrl": base_url, "apiKey": "sk-fake-state-key", "api": "openai-completions",
                "models": [{"id": "echo-1", "name": "echo-1",
                    "cost": {"input": 1.5, "output": 6, "cacheRead": 0.15, "cacheWrite": 1.875},
                    "contextWindow": 128_000, "maxTokens": 4096}],
            }},
        },
        "agents": {"defaults": {"model": {"primary": "fake/echo-1"}}},
    });
    std::fs::write(dir.join("openclaw.json"), config.to_string()).unwrap();
}

fn assert_totals(what: &str, expected: &Totals, gateway: &Value) {
    let got = Totals::from_gateway(gateway);
    if let Some(d) = expected.without_messages().diff(&got, TOL) {
        panic!("{what}: {d}\nexpected {expected:?}\ngateway  {gateway}");
    }
}

fn check_sessions_usage(expected: &Expected, v: &Value) {
    assert_totals("sessions.usage totals", &expected.totals, &v["totals"]);
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len() as u64, expected.sessions, "session count");
    for s in sessions {
        let key = s["key"].as_str().unwrap();
        let e = expected
            .by_session
            .get(key)
            .unwrap_or_else(|| panic!("gateway session {key} not in the transcript sums"));
        assert_totals(&format!("session {key}"), e, &s["usage"]);
        let counts = &s["usage"]["messageCounts"];
        assert_eq!(counts["user"].as_u64(), Some(e.user_messages), "{key} user");
        assert_eq!(
            counts["assistant"].as_u64(),
            Some(e.assistant_messages),
            "{key} assistant"
        );
    }
    let agg = &v["aggregates"];
    let by_channel = agg["byChannel"].as_array().unwrap();
    assert_eq!(by_channel.len(), expected.by_channel.len(), "channels");
    for c in by_channel {
        let ch = c["channel"].as_str().unwrap();
        assert_totals(
            &format!("channel {ch}"),
            &expected.by_channel[ch],
            &c["totals"],
        );
    }
    let by_model = agg["byModel"].as_array().unwrap();
    assert_eq!(by_model.len(), expected.by_model.len(), "models");
    for m in by_model {
        let key = (
            m["provider"].as_str().unwrap().to_owned(),
            m["model"].as_str().unwrap().to_owned(),
        );
        assert_totals(
            &format!("model {key:?}"),
            &expected.by_model[&key],
            &m["totals"],
        );
    }
    let model_daily = agg["modelDaily"].as_array().unwrap();
    assert_eq!(
        model_daily.len(),
        expected.by_day_model.len(),
        "day × model"
    );
    for m in model_daily {
        let key = (
            m["date"].as_str().unwrap().to_owned(),
            m["provider"].as_str().unwrap().to_owned(),
            m["model"].as_str().unwrap().to_owned(),
        );
        let e = &expected.by_day_model[&key];
        assert_eq!(m["tokens"].as_u64(), Some(e.total_tokens), "{key:?} tokens");
        let cost = m["cost"].as_f64().unwrap();
        assert!(
            clawkeeper_tests::openclaw_state::close(cost, e.total_cost, TOL),
            "{key:?} cost {cost} != {}",
            e.total_cost
        );
    }
    let msgs = &agg["messages"];
    assert_eq!(msgs["user"].as_u64(), Some(expected.totals.user_messages));
    assert_eq!(
        msgs["assistant"].as_u64(),
        Some(expected.totals.assistant_messages)
    );
}

fn check_usage_cost(expected: &Expected, v: &Value) {
    assert_totals("usage.cost totals", &expected.totals, &v["totals"]);
    let mut days = 0;
    for d in v["daily"].as_array().unwrap() {
        let date = d["date"].as_str().unwrap();
        match expected.by_day.get(date) {
            Some(e) => {
                days += 1;
                assert_totals(&format!("day {date}"), e, d);
            }
            None => assert_eq!(d["totalTokens"].as_u64(), Some(0), "{date} should be empty"),
        }
    }
    assert_eq!(days, expected.by_day.len(), "days with usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_usage_matches_generated_state() {
    let Some(runtime_dir) = env::test_runtime() else {
        eprintln!("skipped: set CLAWKEEPER_TEST_RUNTIME (run through scripts/test.sh)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let fake = ContractFakeModel::start_priced(
        ([127, 0, 0, 1], 0).into(),
        "sk-fake-state-key".into(),
        vec!["echo-1".into()],
        Some(TokenPrice {
            input: 0.000_002,
            output: 0.000_01,
        }),
    )
    .await
    .unwrap();
    let inst = Instance {
        rt: find_runtime(&runtime_dir),
        dir: tmp.path().to_owned(),
        port: env::free_port(),
    };
    write_config(&inst.dir, &fake.base_url(), inst.port);

    step("real chats through the gateway (they create the agent database)");
    let gw = inst.start_gateway().await;
    // Over 1 KiB of plain text: the gateway stores such events zstd-compressed.
    let long = "please keep this long question in the transcript ".repeat(30);
    for (msg, key, channel) in [
        ("hello usage state", "agent:main:state-a", None),
        (long.as_str(), "agent:main:state-a", None),
        (
            "over telegram",
            "agent:main:telegram:direct:4242",
            Some("telegram"),
        ),
    ] {
        let mut args = vec!["agent", "--message", msg, "--session-key", key, "--json"];
        if let Some(ch) = channel {
            args.extend(["--channel", ch]);
        }
        inst.cli(&args).await;
    }
    assert!(fake.chat_requests().len() >= 3);
    stop(gw).await;
    let compressed = compressed_rows(&inst.state()).await;
    eprintln!("zstd rows after the real chats: {compressed}");
    assert!(
        compressed > 0,
        "expected the long chat to be stored compressed"
    );
    let real = read_transcript_sums(&inst.state()).await.unwrap();
    eprintln!("real chats: {:?}", real.totals);
    assert!(real.totals.assistant_messages >= 3);
    assert_eq!(
        real.totals.unpriced, 0,
        "the fake reports a cost for every call"
    );
    assert!(real.totals.total_cost > 0.0);
    assert!(real.by_channel.contains_key("telegram"));

    step("generate 20,000 events");
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let yesterday = utc_day(now_ms - 86_400_000);
    let spec = GenSpec::new(7, 20_000, &yesterday);
    let generated = generate(&inst.state(), &spec).await.unwrap();
    assert_eq!(generated.events, 20_000);
    let mut expected = real.clone();
    expected.merge(&generated);
    let reread = read_transcript_sums(&inst.state()).await.unwrap();
    assert_eq!(reread.events, expected.events);
    assert!(
        reread.totals.diff(&expected.totals, TOL).is_none(),
        "{reread:?}"
    );
    let expected = reread;

    step("the gateway's usage over the whole range");
    let gw = inst.start_gateway().await;
    let range = json!({
        "startDate": expected.first_day.clone().unwrap(),
        "endDate": utc_day(now_ms),
        "limit": 1000,
    });
    let sessions = inst.call_fresh("sessions.usage", &range).await;
    let cost = inst
        .call_fresh(
            "usage.cost",
            &json!({"startDate": range["startDate"], "endDate": range["endDate"]}),
        )
        .await;
    stop(gw).await;
    check_sessions_usage(&expected, &sessions);
    check_usage_cost(&expected, &cost);
    eprintln!(
        "gateway == transcript: {} sessions, {} tokens, ${:.6}",
        expected.sessions, expected.totals.total_tokens, expected.totals.total_cost
    );
}
