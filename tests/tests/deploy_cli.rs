//! The command line on a connected server, as a script or a support person would use it,
//! with the real binary against a real test host: connect (fingerprint confirmed, the
//! person's key imported), provider, provision — killed with SIGKILL in the middle of
//! several steps and simply run again — posture, and a chat reply through the SSH tunnel.
//! And `deploy` / `delete` at the Hetzner contract fake, killed at every call they make.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawkeeper_core::cloud::journal::Journal;
use clawkeeper_core::provision::{self, steps::STEPS};
use clawkeeper_core::ssh::keys;
use clawkeeper_core::store::Store;
use clawkeeper_tests::cli::Cli;
use clawkeeper_tests::env;
use clawkeeper_tests::fake_hetzner::{
    cloud_init_stand_in, ContractFakeHetzner, FakeHetznerConfig, LedgerEvent,
};
use clawkeeper_tests::fake_model::{ContractFakeModel, DEFAULT_MODEL_IDS, REPLY_PREFIX};
use clawkeeper_tests::npm_mirror::NpmMirror;
use clawkeeper_tests::testhost::{HostOptions, TestHost};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// When, in step `id`, the app is stopped.
enum Stop {
    /// SIGKILL this long after the step began (or at its end, if that comes sooner).
    After(Duration),
    /// SIGKILL while the npm mirror holds the download whose path contains this halfway:
    /// certainly in the middle of the step's work, however fast the machine.
    MidDownload(&'static str),
    /// The person presses Ctrl-C instead (a cancel, which stops after the step).
    CtrlC,
}

fn stop_in(id: &str) -> Stop {
    let ms = match id {
        "os" => 0,
        "user" => return Stop::CtrlC,
        "node" => return Stop::MidDownload("/node-linux-"),
        "openclaw" => return Stop::MidDownload("/openclaw/-/openclaw-"),
        // (Killed the moment the gateway's unit had a process, the next run's start failed
        // once in CI with the gateway exiting 78/CONFIG: to be understood — see the issue.)
        "start" => 5_000,
        "config" => 1_000,
        "verify" => 2_000,
        _ => 300,
    };
    Stop::After(Duration::from_millis(ms))
}

/// Start `provision --json`; when it reports step `k` (0-based) running, stop it as
/// [`stop_in`] says. Returns how it was stopped and whether that was in the middle of the
/// step, with the progress it printed.
async fn provision_interrupted_at(
    cli: &Cli,
    mirror: &NpmMirror,
    id: &str,
    k: usize,
) -> (&'static str, bool, Vec<serde_json::Value>) {
    use futures_util::future::{BoxFuture, FutureExt};
    use tokio::io::AsyncBufReadExt;
    let step = STEPS[k].id;
    let stop = stop_in(step);
    if let Stop::MidDownload(path) = stop {
        mirror.stall_next(path);
    }
    let mut cmd = tokio::process::Command::from(cli.cmd(&["--json", "provision", "--id", id]));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut trigger: Option<BoxFuture<'_, ()>> = None;
    let at = |v: &serde_json::Value, state: &str| {
        v["index"].as_u64() == Some(k as u64 + 1) && v["state"] == state
    };
    let mid_step = loop {
        let armed = async {
            match trigger.as_mut() {
                Some(t) => t.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = armed => break true,
            line = lines.next_line() => {
                let Ok(Some(line)) = line else {
                    panic!("provision ended ({:?}) before step {step}: {seen:#?}", child.wait().await);
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                seen.push(v.clone());
                if at(&v, "running") {
                    trigger = Some(match stop {
                        Stop::After(d) => tokio::time::sleep(d).boxed(),
                        Stop::MidDownload(_) => mirror.stalled().boxed(),
                        Stop::CtrlC => {
                            let pid = child.id().unwrap().to_string();
                            std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
                            let out = child.wait_with_output().await.unwrap();
                            assert!(!out.status.success(), "a cancelled provision reports failure");
                            return ("cancelled", false, seen);
                        }
                    });
                }
                if at(&v, "done") && trigger.is_some() {
                    break false;
                }
            }
        }
    };
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // The abandoned script on the server goes on (and holds the provisioning lock) until
    // its download ends.
    mirror.release();
    ("killed", mid_step, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_cli_connect_provision_through_crashes_then_chat() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts, npm mirror)");
        return;
    }
    let person = keys::generate_ed25519("person@laptop").unwrap();
    let host = TestHost::boot(HostOptions::with_key(
        keys::public_line(person.public_key()).unwrap(),
    ))
    .await
    .unwrap();
    let gw_ip = host.gateway_addr();
    let mirror = NpmMirror::start_from_env((gw_ip, 0).into()).await.unwrap();
    let provider_key = "sk-planted-cli-provider-key-77c3";
    let model = ContractFakeModel::start_on(
        (gw_ip, 0).into(),
        provider_key.into(),
        DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli {
        home: home.path().to_owned(),
        registry: mirror.url(),
    };
    let key_file = home.path().join("id_person");
    std::fs::write(&key_file, keys::to_openssh(&person).unwrap().expose()).unwrap();
    // The person's key is private to them and protected with a passphrase, as it should be.
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let passphrase = "correct horse battery staple 9f2";
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", passphrase, "-f"])
        .arg(&key_file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let id = format!("cli-{}", std::process::id());
    let addr = host.addr().to_string();
    let fp = host.host_key_fingerprint_sha256().unwrap();

    // Without a confirmed fingerprint, nothing happens but showing it.
    let out = cli
        .run(
            &[
                "connect",
                "--host",
                &addr,
                "--id",
                &id,
                "--key-file",
                key_file.to_str().unwrap(),
            ],
            None,
        )
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&fp), "the fingerprint is shown: {err}");
    // A wrong fingerprint is refused.
    let out = cli
        .run(
            &[
                "connect",
                "--host",
                &addr,
                "--id",
                &id,
                "--key-file",
                key_file.to_str().unwrap(),
                "--fingerprint",
                "SHA256:not-it",
            ],
            None,
        )
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nothing was sent"));

    let connect = [
        "connect",
        "--host",
        &addr,
        "--id",
        &id,
        "--key-file",
        key_file.to_str().unwrap(),
        "--fingerprint",
        &fp,
        "--passphrase-stdin",
    ];
    // A wrong passphrase: a clear message, nothing saved, nothing sent.
    let out = cli.run(&connect, Some("not the passphrase\n")).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("passphrase"), "{err}");
    assert!(
        !home.path().join("clawkeeper.db").exists() || {
            let (store, _) = Store::open(&home.path().join("clawkeeper.db"))
                .await
                .unwrap();
            let pinned = clawkeeper_core::ssh::hosts::get(&store, &id).await.unwrap();
            store.close().await;
            pinned.is_none()
        }
    );
    cli.ok(&connect, Some(&format!("{passphrase}\n"))).unwrap();
    cli.ok(
        &[
            "provider",
            "--kind",
            "openai-compatible",
            "--base-url",
            &model.base_url(),
            "--model",
            DEFAULT_MODEL_IDS[0],
        ],
        Some(provider_key),
    )
    .unwrap();

    // The app dies in the middle of every step in turn (one is a Ctrl-C instead): run k
    // resumes run k-1, checks the steps before again, and is stopped in step k. Each stopped
    // run's job row stays unfinished until the next start of the app marks it.
    let db = home.path().join("clawkeeper.db");
    let mut summary = Vec::new();
    for (k, step) in STEPS.iter().enumerate() {
        let t = Instant::now();
        let (how, mid_step, seen) = provision_interrupted_at(&cli, &mirror, &id, k).await;
        for i in 0..k {
            assert!(
                seen.iter()
                    .any(|v| v["index"].as_u64() == Some(i as u64 + 1) && v["state"] == "done"),
                "run {k}: step {i} not checked again: {seen:#?}"
            );
        }
        // Held downloads make these two certain; the others are cut where the time falls.
        if matches!(step.id, "node" | "openclaw") {
            assert!(
                mid_step,
                "run {k}: {} should have been cut in the middle",
                step.id
            );
        }
        let (store, _) = Store::open(&db).await.unwrap();
        let job = store
            .latest_job(provision::JOB_KIND)
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        let want = if how == "killed" {
            "running"
        } else {
            "cancelled"
        };
        assert_eq!(job.state, want, "run {k} ({how} in {})", step.id);
        summary.push(format!(
            "run {k:>2} {how} in {:<9} ({}) after {:.1?}",
            step.id,
            if mid_step { "mid-step" } else { "at its end" },
            t.elapsed()
        ));
    }
    for line in &summary {
        eprintln!("{line}");
    }
    let t = Instant::now();
    let done = cli.ok(&["provision", "--id", &id], None).unwrap();
    eprintln!("the run after the last crash: {:.1?}", t.elapsed());
    assert!(done.contains("reachable only through Clawkeeper"), "{done}");

    // Job rows: every crashed run was marked interrupted when the app started again, the
    // cancelled one says so, and only the last run claims success.
    let (store, _) = Store::open(&db).await.unwrap();
    let jobs = store.jobs(provision::JOB_KIND).await.unwrap();
    store.close().await;
    let states: Vec<(&str, Option<&str>)> = jobs
        .iter()
        .map(|j| (j.state.as_str(), j.error_code.as_deref()))
        .collect();
    assert_eq!(jobs.len(), STEPS.len() + 1, "{states:?}");
    assert_eq!(states.last(), Some(&("succeeded", None)), "{states:?}");
    assert_eq!(
        states.iter().filter(|s| s.0 == "succeeded").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == ("cancelled", Some("cancelled")))
            .count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == ("failed", Some("interrupted")))
            .count(),
        STEPS.len() - 1,
        "{states:?}"
    );

    // On the host: nothing left of the interrupted runs, one gateway.
    let opt = host
        .inspect_ok("ls -A /opt/clawkeeper /var/cache/clawkeeper/downloads")
        .await
        .unwrap();
    assert!(!opt.contains(".partial") && !opt.contains(".part"), "{opt}");
    let procs = host
        .inspect_ok("ps -eo args | grep -E '^(bash -s|.*npm-cli.js ci)' | grep -v grep; true")
        .await
        .unwrap();
    assert_eq!(procs.trim(), "", "provisioning processes still running");

    let posture = cli.ok(&["posture", "--id", &id], None).unwrap();
    assert!(!posture.contains('✗'), "{posture}");
    assert!(
        posture.lines().filter(|l| l.contains('✓')).count() >= 6,
        "{posture}"
    );

    let reply = cli
        .ok(
            &["chat", "--server", &id, "hello from the command line"],
            None,
        )
        .unwrap();
    assert_eq!(
        reply.trim(),
        format!("{REPLY_PREFIX}hello from the command line")
    );

    // The person's own key file was only read: the imported copy lives in the keychain.
    let hits = clawkeeper_tests::scan::files_containing(home.path(), &[provider_key]);
    assert!(hits.is_empty(), "{hits:?}");
    host.stop().await;
}

/// How a `deploy` or `delete` run of the CLI ended.
enum RunEnd {
    /// Killed (SIGKILL) at this point.
    Killed(String),
    /// Ran to its end on its own.
    Exited(std::process::Output),
}

/// Run the CLI with `args` (and `CLAWKEEPER_HETZNER_API` at the fake) and SIGKILL it when
/// the fake holds its `nth` request (`None`: never) or when it reports a progress line
/// containing `kill_on` (JSON on stderr). A killed run never gets the held answer.
async fn run_killed_at(
    cli: &Cli,
    fake: &ContractFakeHetzner,
    args: &[&str],
    nth: Option<usize>,
    kill_on: Option<&str>,
) -> RunEnd {
    use tokio::io::AsyncBufReadExt;
    let base = fake.requests().len();
    if let Some(n) = nth {
        fake.hold_request(base + n);
    }
    let mut cmd = tokio::process::Command::from(cli.cmd(args));
    cmd.env("CLAWKEEPER_HETZNER_API", fake.base_url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = Vec::new();
    let killed = loop {
        tokio::select! {
            _ = fake.held(), if nth.is_some() => {
                let r = fake.requests()[base + nth.unwrap() - 1].clone();
                break Some(format!("{} {}", r.method, r.path));
            }
            line = lines.next_line() => match line {
                Ok(Some(l)) => {
                    let hit = kill_on.is_some_and(|k| l.contains(k));
                    stderr.push(l);
                    if hit {
                        break Some(kill_on.unwrap().to_owned());
                    }
                }
                _ => break None,
            }
        }
    };
    if let Some(what) = killed {
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        fake.release();
        return RunEnd::Killed(what);
    }
    fake.release();
    let mut out = child.wait_with_output().await.unwrap();
    out.stderr = stderr.join("\n").into_bytes();
    RunEnd::Exited(out)
}

/// Everything the fake has that is not deleted is known to the app's journal: by its id,
/// or (killed between the create call and writing its id down) as an intended resource of
/// that name, which the next run looks up by label.
async fn assert_nothing_untracked(home: &std::path::Path, fake: &ContractFakeHetzner, id: &str) {
    let (store, _) = Store::open(&home.join("clawkeeper.db")).await.unwrap();
    let rows = Journal::new(&store).resources(id).await.unwrap();
    let ledger = fake.ledger();
    let mine = |e: &&clawkeeper_tests::fake_hetzner::LedgerEntry| {
        e.event == LedgerEvent::Created
            && e.labels.get("clawkeeper-instance").map(String::as_str) == Some(id)
    };
    for e in ledger.iter().filter(mine) {
        let deleted = ledger
            .iter()
            .any(|d| d.id == e.id && d.event == LedgerEvent::Deleted);
        let tracked = rows.iter().any(|r| {
            r.provider_id == Some(e.id)
                || (r.provider_id.is_none() && r.is_live() && r.name == e.name)
        });
        assert!(
            deleted || tracked,
            "untracked at the provider: {e:?}\njournal: {rows:?}"
        );
    }
    // And nothing without the instance's label (which is how a resume finds things).
    for e in ledger.iter().filter(|e| e.event == LedgerEvent::Created) {
        assert!(
            e.labels.contains_key("clawkeeper-instance"),
            "unlabelled: {e:?}"
        );
    }
    store.close().await;
}

/// Resources of `kind` for instance `id` that exist at the fake now.
fn live_at(fake: &ContractFakeHetzner, kind: &str, id: &str) -> usize {
    let ledger = fake.ledger();
    let mine = |e: &&clawkeeper_tests::fake_hetzner::LedgerEntry| {
        e.kind == kind && e.labels.get("clawkeeper-instance").map(String::as_str) == Some(id)
    };
    let created = ledger
        .iter()
        .filter(mine)
        .filter(|e| e.event == LedgerEvent::Created)
        .count();
    let deleted = ledger
        .iter()
        .filter(mine)
        .filter(|e| e.event == LedgerEvent::Deleted)
        .count();
    created - deleted
}

/// Resources of `kind` for instance `id` ever created at the fake.
fn created_at(fake: &ContractFakeHetzner, kind: &str, id: &str) -> usize {
    fake.ledger()
        .iter()
        .filter(|e| {
            e.kind == kind
                && e.event == LedgerEvent::Created
                && e.labels.get("clawkeeper-instance").map(String::as_str) == Some(id)
        })
        .count()
}

/// The app dies (SIGKILL) at each call a deploy makes to the cloud — the call carried out at
/// the provider, its answer never received — and after each SSH stage, and is simply started
/// again: one server, one firewall, one key, ever; at no moment anything at the provider the
/// journal does not know; the pinned host key is the host's own. `delete`, killed at each of
/// its calls in turn, then leaves nothing billed.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_cli_killed_at_every_cloud_call_then_deleted_through_kills() {
    if !env::isolated() {
        eprintln!("skipped: needs scripts/test.sh (keychain, test hosts)");
        return;
    }
    let host = TestHost::boot(HostOptions::default()).await.unwrap();
    let fp = host.host_key_fingerprint_sha256().unwrap();
    let fake = ContractFakeHetzner::start(FakeHetznerConfig {
        server_ipv4: host.addr().to_string(),
        on_server_created: Some(cloud_init_stand_in(host.root().to_owned())),
        ..FakeHetznerConfig::default()
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli {
        home: home.path().to_owned(),
        // Nothing is installed from npm in this test.
        registry: "http://127.0.0.1:9/".into(),
    };
    cli.ok(&["cloud-token"], Some(&fake.token())).unwrap();
    let deploy_args = |id: &str| -> Vec<String> {
        [
            "--json",
            "deploy",
            "--id",
            id,
            "--server-type",
            "cx23",
            "--location",
            "fsn1",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let delete_args = |id: &str| -> Vec<String> {
        ["--json", "delete", "--id", id, "--yes"]
            .map(str::to_owned)
            .to_vec()
    };

    // A clean run: how many calls a deploy and a delete make.
    let calls = |from: usize| fake.requests().len() - from;
    let before = fake.requests().len();
    let clean = format!("kill-{}-clean", std::process::id());
    let RunEnd::Exited(out) =
        run_killed_at(&cli, &fake, &as_strs(&deploy_args(&clean)), None, None).await
    else {
        unreachable!()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deploy_calls = calls(before);
    let before = fake.requests().len();
    cli_delete_ok(&cli, &fake, &as_strs(&delete_args(&clean))).await;
    let delete_calls = calls(before);
    eprintln!("a clean deploy makes {deploy_calls} calls, a delete {delete_calls}");
    assert!(
        deploy_calls >= 6 && delete_calls >= 3,
        "{:#?}",
        fake.requests()
    );

    // Kill point k of a fresh deploy: its k-th call, or the end of an SSH stage.
    let points = (1..=deploy_calls)
        .map(|k| (Some(k), None))
        .chain([
            (None, Some("\"step\":\"ready\"")),
            (None, Some("\"phase\":\"host_key_pinned\"")),
        ])
        .collect::<Vec<_>>();
    let mut deploy_kills = Vec::new();
    let mut delete_kills = Vec::new();
    for (k, (nth, stage)) in points.into_iter().enumerate() {
        let id = format!("kill-{}-{k}", std::process::id());
        let args = deploy_args(&id);
        let RunEnd::Killed(at) = run_killed_at(&cli, &fake, &as_strs(&args), nth, stage).await
        else {
            panic!("deploy {k} was not interrupted at {nth:?} {stage:?}");
        };
        assert_nothing_untracked(home.path(), &fake, &id).await;
        deploy_kills.push(at);
        // Started again: it finishes, with exactly one of each.
        let RunEnd::Exited(out) = run_killed_at(&cli, &fake, &as_strs(&args), None, None).await
        else {
            unreachable!()
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "resumed deploy {k}: {stderr}");
        let (store, _) = Store::open(&home.path().join("clawkeeper.db"))
            .await
            .unwrap();
        let pinned = clawkeeper_core::ssh::hosts::get(&store, &id)
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        assert_eq!(pinned.host_key.fingerprint, fp, "pinned the host's own key");
        assert!(stderr.contains("\"phase\":\"logged_in\""), "{stderr}");
        for kind in ["server", "firewall", "ssh_key"] {
            assert_eq!(
                created_at(&fake, kind, &id),
                1,
                "{kind} after kill {k}: {:#?}",
                fake.ledger()
            );
            assert_eq!(live_at(&fake, kind, &id), 1, "{kind} after kill {k}");
        }
        assert_nothing_untracked(home.path(), &fake, &id).await;

        // Delete, killed at its call k (cycling through them), then run again.
        let d = 1 + k % delete_calls;
        match run_killed_at(&cli, &fake, &as_strs(&delete_args(&id)), Some(d), None).await {
            RunEnd::Killed(at) => delete_kills.push(at),
            RunEnd::Exited(out) => panic!("delete {k} was not interrupted at call {d}: {out:?}"),
        }
        cli_delete_ok(&cli, &fake, &as_strs(&delete_args(&id))).await;
        for kind in ["server", "firewall", "ssh_key"] {
            assert_eq!(
                live_at(&fake, kind, &id),
                0,
                "{kind} still billed after kill {k}"
            );
        }
    }
    eprintln!("deploys killed at: {deploy_kills:?}");
    eprintln!("deletes killed at: {delete_kills:?}");
    for call in [
        "POST /ssh_keys",
        "POST /firewalls",
        "POST /servers",
        "DELETE /servers/",
    ] {
        assert!(
            deploy_kills
                .iter()
                .chain(&delete_kills)
                .any(|k| k.starts_with(call)),
            "never killed at {call}"
        );
    }
    for kind in ["server", "firewall", "ssh_key"] {
        assert_eq!(
            fake.live(kind),
            0,
            "{kind} still billed: {:#?}",
            fake.ledger()
        );
    }
    host.stop().await;
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn cli_delete_ok(cli: &Cli, fake: &ContractFakeHetzner, args: &[&str]) -> usize {
    match run_killed_at(cli, fake, args, None, None).await {
        RunEnd::Exited(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["removed"].as_array().unwrap().len()
        }
        RunEnd::Killed(_) => unreachable!(),
    }
}
