//! The Hetzner Cloud client, journal and deploy against the contract fake: pagination,
//! prices from the API, every error code, rate limits, retries, the `user_data` limit, the
//! full create, crashes at every step, and a delete that leaves nothing billed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use clawkeeper_core::cloud::hetzner::{CreateServer, HetznerClient, RetryPolicy, MAX_USER_DATA};
use clawkeeper_core::cloud::{
    self, create_server, delete_instance, reconcile, Error, Journal, Progress, ResourceKind,
    ResourceState, ServerSpec,
};
use clawkeeper_core::store::Store;
use clawkeeper_core::{Secret, UserFacing};
use clawkeeper_tests::fake_hetzner::{ContractFakeHetzner, FakeHetznerConfig, Fault};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PUBKEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIContractFakeKeyForClawkeeperTests clawkeeper";
const INSTANCE: &str = "5f0c1d2e-aaaa-bbbb-cccc-0123456789ab";

async fn fake_with(cfg: FakeHetznerConfig) -> ContractFakeHetzner {
    ContractFakeHetzner::start(cfg).await.unwrap()
}

async fn fake() -> ContractFakeHetzner {
    fake_with(FakeHetznerConfig::default()).await
}

fn client_with(f: &ContractFakeHetzner, policy: RetryPolicy) -> HetznerClient {
    HetznerClient::with_base_url(f.base_url(), Secret::new(f.token()), policy).unwrap()
}

fn client(f: &ContractFakeHetzner) -> HetznerClient {
    client_with(f, RetryPolicy::fast())
}

async fn journal() -> (Store, Journal) {
    let store = Store::open_memory().await.unwrap();
    let j = Journal::new(&store);
    (store, j)
}

fn spec() -> ServerSpec {
    ServerSpec::new(INSTANCE, "cx23", "fsn1", PUBKEY)
}

fn count(f: &ContractFakeHetzner, method: &str, path: &str) -> usize {
    f.requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

async fn deploy(c: &HetznerClient, j: &Journal) -> cloud::Result<cloud::ServerCreated> {
    create_server(c, j, &spec(), CancellationToken::new(), &mut |_| {}).await
}

/// Exactly one of each at the fake, ever; the journal knows each by its id.
async fn assert_one_of_each(f: &ContractFakeHetzner, j: &Journal) {
    for kind in ["server", "firewall", "ssh_key"] {
        assert_eq!(
            f.created(kind),
            1,
            "{kind} created at the fake: {:?}",
            f.ledger()
        );
        assert_eq!(f.live(kind), 1, "{kind} live at the fake");
    }
    let live = j.live(INSTANCE).await.unwrap();
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live
        .iter()
        .all(|r| r.state == ResourceState::Created && r.provider_id.is_some()));
    for entry in f.ledger() {
        assert!(
            live.iter().any(|r| r.provider_id == Some(entry.id)),
            "untracked {entry:?}"
        );
        assert_eq!(
            entry.labels.get("clawkeeper-instance").map(String::as_str),
            Some(INSTANCE)
        );
        assert_eq!(
            entry.labels.get("managed-by").map(String::as_str),
            Some("clawkeeper")
        );
    }
}

#[tokio::test]
async fn lists_follow_pagination_across_pages() {
    let f = fake_with(FakeHetznerConfig {
        max_per_page: 2,
        ..FakeHetznerConfig::default()
    })
    .await;
    let c = client(&f);
    let locations = c.locations().await.unwrap();
    assert_eq!(locations.len(), 6);
    assert_eq!(locations[5].name, "sin");
    assert_eq!(locations[0].city, "Falkenstein");
    let pages: Vec<String> = f.requests().iter().map(|r| r.query.clone()).collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("page=3"), "{pages:?}");
    assert!(pages.iter().all(|q| q.contains("per_page=50")));
    let types = c.server_types().await.unwrap();
    assert_eq!(types.len(), 5);
}

#[tokio::test]
async fn server_types_and_prices_come_from_the_api() {
    let f = fake().await;
    let types = client(&f).server_types().await.unwrap();
    let cx23 = types.iter().find(|t| t.name == "cx23").unwrap();
    assert_eq!((cx23.cores, cx23.memory, cx23.disk), (2, 4.0, 40));
    assert_eq!(cx23.architecture, "x86");
    let p = cx23.price_in("fsn1").unwrap();
    assert_eq!(p.price_monthly.gross, "3.5000000000");
    assert_eq!(p.price_hourly.net, "0.0060000000");
    assert!(cx23.price_in("sin").is_none());
    let old = types.iter().find(|t| t.name == "cx11").unwrap();
    assert!(old.is_deprecated());
    assert!(!cx23.is_deprecated());
}

#[tokio::test]
async fn each_error_code_becomes_a_clear_problem() {
    let f = fake().await;
    let once = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::fast()
    };
    let c = client_with(&f, once);
    let cases = [
        ("invalid_input", "cloud_invalid_input"),
        ("server_limit_exceeded", "cloud_limit_reached"),
        ("resource_limit_exceeded", "cloud_limit_reached"),
        ("rate_limit_exceeded", "cloud_rate_limited"),
        ("conflict", "cloud_conflict"),
        ("locked", "cloud_locked"),
        ("timeout", "cloud_timeout"),
        ("forbidden", "cloud_forbidden"),
        ("token_readonly", "cloud_token_read_only"),
        ("uniqueness_error", "cloud_name_taken"),
        ("not_found", "cloud_not_found"),
        ("maintenance", "cloud_unavailable"),
        ("some_future_code", "cloud_api_error"),
    ];
    for (code, want) in cases {
        f.fail_next("GET", "/locations", 1, Fault::Code(code));
        let e = c.locations().await.unwrap_err();
        assert_eq!(e.code(), want, "{code}: {e}");
        let p = e.problem();
        assert!(!p.message.is_empty() && p.hint.is_some(), "{code}: {p:?}");
    }
    // The field of an invalid_input error is named.
    f.fail_next("GET", "/locations", 1, Fault::Code("invalid_input"));
    let e = c.locations().await.unwrap_err();
    assert!(e.to_string().contains("server_type"), "{e}");
    // The limit message says what to do.
    f.fail_next("GET", "/locations", 1, Fault::Code("server_limit_exceeded"));
    let hint = c.locations().await.unwrap_err().problem().hint.unwrap();
    assert!(
        hint.contains("limit") && hint.contains("delete a server"),
        "{hint}"
    );
    // Unknown codes are kept verbatim.
    f.fail_next("GET", "/locations", 1, Fault::Code("some_future_code"));
    assert_eq!(
        c.locations().await.unwrap_err().api_code(),
        Some("some_future_code")
    );
    // Garbage and a dropped connection: clear errors, no panic.
    f.fail_next("GET", "/locations", 1, Fault::Garbage);
    assert_eq!(
        c.locations().await.unwrap_err().code(),
        "cloud_bad_response"
    );
    f.fail_next("GET", "/locations", 1, Fault::Drop);
    assert_eq!(c.locations().await.unwrap_err().code(), "cloud_unreachable");
    // A wrong token.
    let wrong =
        HetznerClient::with_base_url(f.base_url(), Secret::new("wrong"), RetryPolicy::fast())
            .unwrap();
    let e = wrong.locations().await.unwrap_err();
    assert_eq!(e.code(), "cloud_token_refused");
    assert!(!format!("{wrong:?}{e:?}").contains(&f.token()));
    // And the client still works afterwards.
    assert_eq!(c.locations().await.unwrap().len(), 6);
}

#[tokio::test]
async fn rate_limit_waits_for_the_budget_then_succeeds() {
    let f = fake().await;
    f.set_refill_every(Duration::from_millis(100));
    let c = client(&f);

    // Exhausted: the fake answers 429; the client waits (capped) and retries.
    f.set_rate_remaining(0);
    let t = Instant::now();
    assert_eq!(c.locations().await.unwrap().len(), 6);
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    assert!(f.requests().len() >= 2);

    // One left: the answer says Remaining 0, so the next call waits *before* sending and
    // never sees a 429.
    f.set_rate_remaining(1);
    let before = f.requests().len();
    c.locations().await.unwrap();
    assert_eq!(c.rate_limit().unwrap().remaining, 0);
    let t = Instant::now();
    c.locations().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(f.requests().len() - before, 2, "no request was refused");
}

#[tokio::test]
async fn rate_limit_wait_is_cancellable() {
    let f = fake().await;
    f.set_refill_every(Duration::from_secs(10));
    f.set_rate_remaining(0);
    let cancel = CancellationToken::new();
    let policy = RetryPolicy {
        max_rate_wait: Duration::from_secs(30),
        backoff_cap: Duration::from_secs(30),
        backoff_base: Duration::from_secs(5),
        ..RetryPolicy::fast()
    };
    let c = client_with(&f, policy).with_cancel(cancel.clone());
    let t = Instant::now();
    let stop = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let e = c.locations().await.unwrap_err();
    stop.await.unwrap();
    assert_eq!(e.code(), "cancelled");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn conflict_locked_and_rate_limit_are_retried_even_for_a_create() {
    let f = fake().await;
    let c = client(&f);
    f.fail_next("POST", "/ssh_keys", 1, Fault::Code("conflict"));
    f.fail_next("POST", "/ssh_keys", 1, Fault::Code("locked"));
    f.fail_next("POST", "/ssh_keys", 1, Fault::Code("rate_limit_exceeded"));
    let key = c
        .create_ssh_key("k", PUBKEY, &cloud::labels(INSTANCE))
        .await
        .unwrap();
    assert_eq!(key.name, "k");
    assert_eq!(count(&f, "POST", "/ssh_keys"), 4);
    assert_eq!(f.created("ssh_key"), 1);
}

#[tokio::test]
async fn a_create_whose_outcome_is_unknown_is_not_repeated_by_the_client() {
    let f = fake().await;
    let c = client(&f);
    f.fail_next("POST", "/ssh_keys", 1, Fault::Code("timeout"));
    let e = c
        .create_ssh_key("k", PUBKEY, &cloud::labels(INSTANCE))
        .await
        .unwrap_err();
    assert!(e.may_have_applied());
    assert_eq!(count(&f, "POST", "/ssh_keys"), 1);
    // A GET with the same failure is repeated.
    f.fail_next("GET", "/locations", 2, Fault::Code("timeout"));
    c.locations().await.unwrap();
    assert_eq!(count(&f, "GET", "/locations"), 3);
}

#[tokio::test]
async fn user_data_over_32_kib_is_refused_before_any_call() {
    let f = fake().await;
    let c = client(&f);
    let big = "#cloud-config\n".to_owned() + &"#".repeat(MAX_USER_DATA);
    let e = c
        .create_server(&CreateServer {
            name: "x".into(),
            server_type: "cx23".into(),
            image: "debian-12".into(),
            location: "fsn1".into(),
            ssh_keys: vec![],
            firewalls: vec![],
            user_data: big.clone(),
            labels: cloud::labels(INSTANCE),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), "cloud_user_data_too_large");
    // The whole deploy stops before creating the key or firewall.
    let (_s, j) = journal().await;
    let mut s = spec();
    s.user_data = big.clone();
    let e = create_server(&c, &j, &s, CancellationToken::new(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), "cloud_user_data_too_large");
    assert!(f.requests().is_empty(), "{:?}", f.requests());
    assert!(j.resources(INSTANCE).await.unwrap().is_empty());

    // The fake enforces the documented limit too.
    let res = reqwest::Client::new()
        .post(format!("{}/servers", f.base_url()))
        .bearer_auth(f.token())
        .json(&serde_json::json!({"name": "x", "server_type": "cx23", "image": "debian-12", "user_data": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.headers().contains_key("ratelimit-remaining"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_input");
    assert_eq!(body["error"]["details"]["fields"][0]["name"], "user_data");
    assert_eq!(f.created("server"), 0);
}

#[tokio::test]
async fn create_server_end_to_end_gives_the_test_hosts_address() {
    let f = fake_with(FakeHetznerConfig {
        server_ipv4: "10.231.7.2".into(),
        ..FakeHetznerConfig::default()
    })
    .await;
    let c = client(&f);
    let (_s, j) = journal().await;
    let mut events = Vec::new();
    let created = create_server(&c, &j, &spec(), CancellationToken::new(), &mut |p| {
        events.push(p.clone())
    })
    .await
    .unwrap();
    assert_eq!(created.ipv4, "10.231.7.2");
    assert_eq!(created.name, format!("clawkeeper-{INSTANCE}"));
    assert!(created
        .ipv6
        .as_deref()
        .unwrap_or("")
        .starts_with("2001:db8:"));
    assert!(
        matches!(events.last(), Some(Progress::Ready { .. })),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Progress::WaitingForAction { .. })));
    assert_one_of_each(&f, &j).await;
    // The server got the key and the firewall, and a root password was not handed out.
    let server = c.server(created.id).await.unwrap();
    assert_eq!(server.status, "running");
    assert!(f.simulated_wait() >= Duration::from_millis(50));

    // Running it again changes nothing.
    let again = deploy(&c, &j).await.unwrap();
    assert_eq!(again, created);
    assert_one_of_each(&f, &j).await;
}

#[tokio::test]
async fn a_crash_at_any_step_then_a_rerun_makes_exactly_one_of_each() {
    // How many steps a clean run has.
    let steps = {
        let f = fake().await;
        let (_s, j) = journal().await;
        let mut n = 0;
        create_server(
            &client(&f),
            &j,
            &spec(),
            CancellationToken::new(),
            &mut |_| n += 1,
        )
        .await
        .unwrap();
        n
    };
    eprintln!("a clean run has {steps} steps");
    assert!(steps >= 10, "{steps}");
    for stop_at in 1..=steps {
        let f = fake().await;
        let c = client(&f);
        let (_s, j) = journal().await;
        let cancel = CancellationToken::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let (seen2, cancel2) = (Arc::clone(&seen), cancel.clone());
        let first = create_server(&c, &j, &spec(), cancel, &mut move |_| {
            if seen2.fetch_add(1, Ordering::SeqCst) + 1 == stop_at {
                cancel2.cancel();
            }
        })
        .await;
        match first {
            Err(Error::Cancelled) => {}
            Ok(_) => assert!(stop_at >= steps - 1, "step {stop_at} of {steps} finished"),
            Err(e) => panic!("step {stop_at}: {e}"),
        }
        let done = deploy(&c, &j)
            .await
            .unwrap_or_else(|e| panic!("resume after step {stop_at}: {e}"));
        assert_eq!(done.ipv4, "127.0.0.1");
        assert_one_of_each(&f, &j).await;
        let removed = delete_instance(&c, &j, INSTANCE).await.unwrap();
        assert_eq!(removed.len(), 3, "after step {stop_at}: {removed:?}");
        for kind in ["server", "firewall", "ssh_key"] {
            assert_eq!(f.live(kind), 0, "{kind} left after step {stop_at}");
        }
    }
}

#[tokio::test]
async fn dropping_the_deploy_mid_wait_then_rerunning_makes_one_server() {
    let f = fake_with(FakeHetznerConfig {
        action_duration: Duration::from_millis(400),
        ..FakeHetznerConfig::default()
    })
    .await;
    let c = client(&f);
    let (_s, j) = journal().await;
    let dropped = tokio::time::timeout(Duration::from_millis(150), deploy(&c, &j)).await;
    assert!(dropped.is_err(), "the deploy should still be waiting");
    assert_eq!(f.created("server"), 1);
    deploy(&c, &j).await.unwrap();
    assert_one_of_each(&f, &j).await;
}

#[tokio::test]
async fn a_lost_answer_to_a_create_is_found_by_label_not_created_twice() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    f.fail_next("POST", "/ssh_keys", 1, Fault::DropAfterApply);
    f.fail_next("POST", "/firewalls", 1, Fault::Code("timeout"));
    f.fail_next("POST", "/servers", 1, Fault::DropAfterApply);
    deploy(&c, &j).await.unwrap();
    assert_one_of_each(&f, &j).await;
    // The firewall's timeout was a refusal in disguise: looked up, not found, created once.
    assert_eq!(count(&f, "POST", "/firewalls"), 2);
    assert_eq!(count(&f, "POST", "/servers"), 1);
    let rows = j.resources(INSTANCE).await.unwrap();
    assert!(rows
        .iter()
        .any(|r| r.kind == ResourceKind::Firewall && r.state == ResourceState::Absent));
}

#[tokio::test]
async fn delete_removes_server_firewall_and_key_and_says_so() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    let created = deploy(&c, &j).await.unwrap();
    // The firewall can't go while the server holds it (documented `resource_in_use`).
    let e = c.delete_firewall(created.firewall_id).await.unwrap_err();
    assert_eq!(e.api_code(), Some("resource_in_use"));

    let removed = delete_instance(&c, &j, INSTANCE).await.unwrap();
    let lines: Vec<String> = removed.iter().map(ToString::to_string).collect();
    let name = format!("clawkeeper-{INSTANCE}");
    assert_eq!(
        lines,
        [
            format!("Server {name} (id {}) deleted", created.id),
            format!("Firewall {name} (id {}) deleted", created.firewall_id),
            format!("SSH key {name} (id {}) deleted", created.ssh_key_id),
        ]
    );
    for kind in ["server", "firewall", "ssh_key"] {
        assert_eq!(f.live(kind), 0, "{kind}");
    }
    assert!(j.live(INSTANCE).await.unwrap().is_empty());
    // Again: nothing left to do.
    assert!(delete_instance(&c, &j, INSTANCE).await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_tolerates_resources_already_gone() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    let created = deploy(&c, &j).await.unwrap();
    // Somebody deleted the key in the console; the next list doesn't show it, and a
    // delete that finds it gone is fine too.
    c.delete_ssh_key(created.ssh_key_id).await.unwrap();
    let removed = delete_instance(&c, &j, INSTANCE).await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(f.live("server"), 0);
    assert!(j.live(INSTANCE).await.unwrap().is_empty());
}

#[tokio::test]
async fn server_limit_leaves_nothing_billed_and_a_retry_reuses_key_and_firewall() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    f.set_server_limit(0);
    let e = deploy(&c, &j).await.unwrap_err();
    assert_eq!(e.code(), "cloud_limit_reached");
    assert!(e.to_string().contains("limit"), "{e}");
    assert_eq!(f.created("server"), 0);
    // The free key and firewall stay, journaled; the server intent is absent.
    let rows = j.resources(INSTANCE).await.unwrap();
    let server_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == ResourceKind::Server)
        .collect();
    assert_eq!(server_rows.len(), 1);
    assert_eq!(server_rows[0].state, ResourceState::Absent);

    // The injected code of the same meaning behaves the same.
    f.set_server_limit(10);
    f.fail_next("POST", "/servers", 1, Fault::Code("server_limit_exceeded"));
    assert_eq!(
        deploy(&c, &j).await.unwrap_err().code(),
        "cloud_limit_reached"
    );

    // After the limit is raised: reused, not recreated.
    deploy(&c, &j).await.unwrap();
    assert_one_of_each(&f, &j).await;
}

#[tokio::test]
async fn a_failed_deploy_is_cleaned_up_by_delete() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    f.set_server_limit(0);
    deploy(&c, &j).await.unwrap_err();
    let removed = delete_instance(&c, &j, INSTANCE).await.unwrap();
    let kinds: Vec<ResourceKind> = removed.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ResourceKind::Firewall, ResourceKind::SshKey]);
    assert_eq!(f.live("firewall") + f.live("ssh_key"), 0);
}

#[tokio::test]
async fn invalid_input_names_the_field_and_creates_no_server() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    let mut s = spec();
    s.server_type = "cx99".into();
    let e = create_server(&c, &j, &s, CancellationToken::new(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), "cloud_invalid_input");
    assert!(e.to_string().contains("server_type"), "{e}");
    assert_eq!(f.created("server"), 0);
    assert!(j
        .live(INSTANCE)
        .await
        .unwrap()
        .iter()
        .all(|r| r.kind != ResourceKind::Server));
}

#[tokio::test]
async fn retried_rate_limit_and_conflict_during_deploy_still_make_one_server() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    f.fail_next("POST", "/servers", 1, Fault::Code("rate_limit_exceeded"));
    f.fail_next("POST", "/servers", 1, Fault::Code("conflict"));
    f.fail_next("GET", "/actions/*", 1, Fault::Code("locked"));
    deploy(&c, &j).await.unwrap();
    assert_one_of_each(&f, &j).await;
    assert_eq!(count(&f, "POST", "/servers"), 3);
}

#[tokio::test]
async fn reconcile_reports_and_adopts_labelled_resources_the_journal_does_not_know() {
    let f = fake().await;
    let c = client(&f);
    let (_s, j) = journal().await;
    c.create_ssh_key("stray", PUBKEY, &cloud::labels(INSTANCE))
        .await
        .unwrap();
    let rec = reconcile(&c, &j, INSTANCE).await.unwrap();
    assert_eq!(rec.unknown.len(), 1);
    assert_eq!(rec.unknown[0].name, "stray");
    // Deleting the instance removes it too.
    let removed = delete_instance(&c, &j, INSTANCE).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(f.live("ssh_key"), 0);
}

#[tokio::test]
async fn firewall_gets_a_udp_rule_later_once() {
    let f = fake().await;
    let c = client(&f);
    let (fw, _) = c
        .create_firewall(
            "fw",
            &cloud::hetzner::initial_rules(),
            &cloud::labels(INSTANCE),
        )
        .await
        .unwrap();
    assert_eq!(fw.rules.len(), 1);
    assert_eq!(fw.rules[0].port.as_deref(), Some("22"));
    assert_eq!(fw.rules[0].source_ips, ["0.0.0.0/0", "::/0"]);
    c.add_udp_rule(fw.id, "41641", "tailnet").await.unwrap();
    c.add_udp_rule(fw.id, "41641", "tailnet").await.unwrap();
    let fw = c.firewall(fw.id).await.unwrap();
    assert_eq!(fw.rules.len(), 2);
    assert_eq!(fw.rules[1].protocol, "udp");
    assert_eq!(
        count(
            &f,
            "POST",
            &format!("/firewalls/{}/actions/set_rules", fw.id)
        ),
        1
    );
}
