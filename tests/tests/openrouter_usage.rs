//! OpenRouter's usage and spend-limit API (`clawkeeper_core::openrouter::api`) against the
//! OpenRouter contract fake, over real HTTP on loopback: what a key spent, the account's
//! activity and credit, a cap set at the provider and enforced there, finding our own key
//! among the account's keys, and every failure the person may meet — with a code, a plain
//! message and a hint, and never a key in it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test

use clawkeeper_core::openrouter::api::{Error, LimitReset, OpenRouterApi, RetryPolicy};
use clawkeeper_core::{Secret, UserFacing};
use clawkeeper_tests::fake_openrouter::ContractFakeOpenRouter;
use std::time::Duration;
use time::{Date, Month};

fn date(y: i32, m: u8, d: u8) -> Date {
    Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap()
}

async fn setup() -> (ContractFakeOpenRouter, OpenRouterApi) {
    let fake = ContractFakeOpenRouter::start(true).await.unwrap();
    fake.set_today(date(2026, 11, 26)); // a Thursday
    let api = OpenRouterApi::with_base_url(&fake.api_base(), RetryPolicy::fast()).unwrap();
    (fake, api)
}

/// The error a person sees: a stable code, a plain sentence, a hint; no key, no JSON, no
/// library jargon.
fn assert_plain(e: &Error, code: &str, secrets: &[&str]) {
    let p = e.problem();
    assert_eq!(p.code, code, "{e:?}");
    assert!(p.hint.is_some(), "{code} has no hint");
    for text in [p.message.clone(), format!("{e:?}"), p.to_string()] {
        for s in secrets {
            assert!(!text.contains(s), "a key leaked into {code}: {text}");
            // Not even the key's random part.
            let tail = &s[s.len().saturating_sub(20)..];
            assert!(
                !text.contains(tail),
                "part of a key leaked into {code}: {text}"
            );
        }
        for jargon in [
            "{",
            "reqwest",
            "hyper",
            "serde",
            "error decoding",
            "os error",
        ] {
            assert!(
                !p.message.contains(jargon),
                "{code}: '{jargon}' in {}",
                p.message
            );
        }
    }
    assert!(
        p.message.starts_with("OpenRouter")
            || p.message.starts_with("Clawkeeper")
            || p.message.starts_with("This"),
        "{}",
        p.message
    );
}

#[tokio::test]
async fn key_info_round_trip_with_period_totals() {
    let (fake, api) = setup().await;
    let key = fake.add_key("clawkeeper");
    // Thursday 26 Nov: today; Monday 23: this week; 2 Nov: this month; 31 Oct: before.
    fake.record_spend(&key, 0.25, "openai/gpt-4.1", date(2026, 11, 26))
        .unwrap();
    fake.record_spend(&key, 0.5, "anthropic/claude", date(2026, 11, 23))
        .unwrap();
    fake.record_spend(&key, 1.0, "openai/gpt-4.1", date(2026, 11, 2))
        .unwrap();
    fake.record_spend(&key, 2.0, "openai/gpt-4.1", date(2026, 10, 31))
        .unwrap();

    let info = api.key_info(&Secret::new(key.clone())).await.unwrap();
    assert_eq!(info.label, fake.label_of(&key).unwrap());
    assert!(info.label.starts_with("sk-or-v1-") && info.label.contains("..."));
    assert_eq!(info.usage, 3.75);
    assert_eq!(info.usage_daily, Some(0.25));
    assert_eq!(info.usage_weekly, Some(0.75));
    assert_eq!(info.usage_monthly, Some(1.75));
    assert_eq!(info.limit, None);
    assert_eq!(info.limit_remaining, None);
    assert_eq!(info.limit_reset, None);
    assert!(!info.is_free_tier && !info.is_management_key);

    // The week starts on Monday: on Sunday 29 Nov the week still holds Monday's spend; on
    // Monday 30 Nov it starts over, the month doesn't.
    fake.set_today(date(2026, 11, 29));
    let info = api.key_info(&Secret::new(key.clone())).await.unwrap();
    assert_eq!(
        (info.usage_daily, info.usage_weekly, info.usage_monthly),
        (Some(0.0), Some(0.75), Some(1.75))
    );
    fake.set_today(date(2026, 11, 30));
    let info = api.key_info(&Secret::new(key.clone())).await.unwrap();
    assert_eq!(
        (info.usage_daily, info.usage_weekly, info.usage_monthly),
        (Some(0.0), Some(0.0), Some(1.75))
    );
    fake.set_today(date(2026, 12, 1));
    let info = api.key_info(&Secret::new(key.clone())).await.unwrap();
    assert_eq!(info.usage_monthly, Some(0.0));
    assert_eq!(info.usage, 3.75);

    let reqs = fake.requests();
    assert!(reqs
        .iter()
        .all(|r| r.method == "GET" && r.path == "/api/v1/key"));
    assert!(reqs
        .iter()
        .all(|r| Some(&r.key_hash) == fake.hash_of(&key).as_ref()));
}

#[tokio::test]
async fn activity_and_credits_parsed() {
    let (fake, api) = setup().await;
    let mgmt = Secret::new(fake.add_management_key());
    let a = fake.add_key("a");
    let b = fake.add_key("b");
    let today = fake.today();
    let day = |n: i64| today - time::Duration::days(n);
    fake.record_spend(&a, 0.5, "openai/gpt-4.1", day(1))
        .unwrap();
    fake.record_spend(&b, 0.25, "openai/gpt-4.1", day(1))
        .unwrap();
    fake.record_spend(&a, 1.0, "anthropic/claude-sonnet-4", day(1))
        .unwrap();
    fake.record_spend(&a, 2.0, "openai/gpt-4.1", day(30))
        .unwrap();
    // Today isn't complete yet, and 31 days ago is out of the window.
    fake.record_spend(&a, 4.0, "openai/gpt-4.1", today).unwrap();
    fake.record_spend(&a, 8.0, "openai/gpt-4.1", day(31))
        .unwrap();

    let rows = api.activity(&mgmt, None).await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let total: f64 = rows.iter().map(|r| r.usage).sum();
    assert_eq!(total, 3.75);
    let gpt_yesterday = rows
        .iter()
        .find(|r| r.date == day(1).to_string() && r.model == "openai/gpt-4.1")
        .unwrap();
    assert_eq!(gpt_yesterday.usage, 0.75);
    assert_eq!(gpt_yesterday.requests, 2);
    assert_eq!(gpt_yesterday.provider_name.as_deref(), Some("openai"));
    assert!(gpt_yesterday.model_permaslug.is_some() && gpt_yesterday.endpoint_id.is_some());

    let one_day = api
        .activity(&mgmt, Some(&day(30).to_string()))
        .await
        .unwrap();
    assert_eq!(one_day.len(), 1);
    assert_eq!(one_day[0].usage, 2.0);
    assert_eq!(
        fake.requests().last().unwrap().query,
        format!("date={}", day(30))
    );
    // A day the API doesn't cover is refused by OpenRouter; a malformed one never sent.
    let e = api
        .activity(&mgmt, Some(&today.to_string()))
        .await
        .unwrap_err();
    assert_plain(&e, "openrouter_rejected", &[mgmt.expose()]);
    let sent = fake.requests().len();
    let e = api.activity(&mgmt, Some("26/11/2026")).await.unwrap_err();
    assert_plain(&e, "openrouter_invalid_input", &[mgmt.expose()]);
    assert_eq!(fake.requests().len(), sent);

    fake.set_credits(20.0);
    let c = api.credits(&mgmt).await.unwrap();
    assert_eq!(c.total_credits, 20.0);
    assert_eq!(c.total_usage, 15.75);
    assert_eq!(c.remaining(), 4.25);
}

#[tokio::test]
async fn cap_set_via_patch_is_visible_and_enforced() {
    let (fake, api) = setup().await;
    let mgmt = Secret::new(fake.add_management_key());
    let key_text = fake.add_key("clawkeeper");
    let key = Secret::new(key_text.clone());
    fake.add_key("other");
    let today = fake.today();

    let hash = api.find_key_hash(&mgmt, &key).await.unwrap();
    assert_eq!(Some(&hash), fake.hash_of(&key_text).as_ref());
    let updated = api
        .set_limit(&mgmt, &hash, Some(1.0), Some(LimitReset::Daily))
        .await
        .unwrap();
    assert_eq!(updated.hash, hash);
    assert_eq!(updated.limit, Some(1.0));
    assert_eq!(updated.limit_reset, Some(LimitReset::Daily));
    let patch = fake.requests().last().unwrap().clone();
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.path, format!("/api/v1/keys/{hash}"));
    let body: serde_json::Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"limit": 1.0, "limit_reset": "daily"})
    );
    assert_eq!(
        fake.limit_of(&key_text),
        Some((Some(1.0), Some("daily".into())))
    );

    let info = api.key_info(&key).await.unwrap();
    assert_eq!(info.limit, Some(1.0));
    assert_eq!(info.limit_remaining, Some(1.0));
    assert_eq!(info.limit_reset, Some(LimitReset::Daily));

    // Enforced at the provider: the request that crosses the cap is billed, the next is
    // refused with 402 until the next UTC day.
    fake.record_spend(&key_text, 0.6, "m/a", today).unwrap();
    assert!(fake.would_allow(&key_text));
    fake.record_spend(&key_text, 0.6, "m/a", today).unwrap();
    assert!(!fake.would_allow(&key_text));
    assert_eq!(fake.record_spend(&key_text, 0.1, "m/a", today), Err(402));
    let info = api.key_info(&key).await.unwrap();
    assert!(info.limit_remaining.unwrap() <= 0.0);
    assert_eq!(info.usage_daily, Some(1.2));
    fake.set_today(today + time::Duration::days(1));
    assert!(fake.would_allow(&key_text));
    assert_eq!(api.key_info(&key).await.unwrap().limit_remaining, Some(1.0));

    // Removing the cap sends nulls.
    let updated = api.set_limit(&mgmt, &hash, None, None).await.unwrap();
    assert_eq!((updated.limit, updated.limit_reset), (None, None));
    let body: serde_json::Value =
        serde_json::from_str(&fake.requests().last().unwrap().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"limit": null, "limit_reset": null})
    );

    // Nonsense never leaves the computer.
    let sent = fake.requests().len();
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        let e = api
            .set_limit(&mgmt, &hash, Some(bad), None)
            .await
            .unwrap_err();
        assert_plain(&e, "openrouter_invalid_input", &[mgmt.expose(), &key_text]);
    }
    assert!(api
        .set_limit(&mgmt, "../credits", None, None)
        .await
        .is_err());
    assert_eq!(fake.requests().len(), sent);

    // An unknown hash.
    let e = api
        .set_limit(&mgmt, "0000", Some(1.0), None)
        .await
        .unwrap_err();
    assert_plain(&e, "openrouter_key_not_found", &[mgmt.expose()]);
}

#[tokio::test]
async fn find_key_hash_among_several_keys() {
    let (fake, api) = setup().await;
    let mgmt = Secret::new(fake.add_management_key());
    fake.set_page_size(2); // several pages
    for n in 0..5 {
        fake.add_key(&format!("k{n}"));
    }
    let ours = fake.add_key("clawkeeper");
    for n in 5..9 {
        fake.add_key(&format!("k{n}"));
    }
    let hash = api
        .find_key_hash(&mgmt, &Secret::new(ours.clone()))
        .await
        .unwrap();
    assert_eq!(Some(hash), fake.hash_of(&ours));
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/keys")
        .count();
    assert_eq!(pages, 6, "10 keys in pages of 2, then an empty page");

    let all = api.all_keys(&mgmt).await.unwrap();
    assert_eq!(all.len(), 10);
    let first_page = api.list_keys(&mgmt, 0).await.unwrap();
    assert_eq!(first_page.len(), 2);
    assert_eq!(fake.requests().last().unwrap().query, "offset=0");

    // A twin whose masked label is the same: the label can't tell them apart.
    let twin_text = {
        let mut t = ours.clone();
        let mid = "sk-or-v1-".len() + 10;
        let c = if &t[mid..=mid] == "0" { "1" } else { "0" };
        t.replace_range(mid..=mid, c);
        t
    };
    let twin = fake.add_key_with_text(&twin_text, "twin");
    assert_eq!(fake.label_of(&twin), fake.label_of(&ours));
    let e = api
        .find_key_hash(&mgmt, &Secret::new(ours.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::KeyAmbiguous { count: 2 }), "{e:?}");
    assert_plain(
        &e,
        "openrouter_key_ambiguous",
        &[&ours, &twin, mgmt.expose()],
    );
    // Once the twin is disabled, ours is the only live one with that label.
    fake.set_disabled(&twin, true);
    assert_eq!(
        api.find_key_hash(&mgmt, &Secret::new(ours.clone()))
            .await
            .ok(),
        fake.hash_of(&ours)
    );
    // Listed only when asked for, as a clean-up of keys must (one made and disabled since).
    let twin_hash = fake.hash_of(&twin).unwrap();
    let live = api.all_keys(&mgmt).await.unwrap();
    assert!(!live.iter().any(|k| k.hash == twin_hash));
    assert_eq!(live.len(), 10);
    let with_disabled = api.all_keys_with_disabled(&mgmt).await.unwrap();
    assert!(with_disabled.iter().any(|k| k.hash == twin_hash));
    assert_eq!(with_disabled.len(), 11);
    assert_eq!(
        fake.requests().last().unwrap().query,
        "offset=11&include_disabled=true"
    );

    // If hashes are SHA-256 of the key text, twins don't matter.
    fake.set_sha256_hashes(true);
    let a = fake.add_key("sha-a");
    let mut b_text = a.clone();
    let mid = "sk-or-v1-".len() + 10;
    let c = if &b_text[mid..=mid] == "0" { "1" } else { "0" };
    b_text.replace_range(mid..=mid, c);
    fake.add_key_with_text(&b_text, "sha-b");
    assert_eq!(
        api.find_key_hash(&mgmt, &Secret::new(a.clone())).await.ok(),
        fake.hash_of(&a)
    );

    // Once deleted, the key itself is refused before any list is read.
    let h = fake.hash_of(&ours).unwrap();
    api.delete_key(&mgmt, &h).await.unwrap();
    let e = api
        .find_key_hash(&mgmt, &Secret::new(ours.clone()))
        .await
        .unwrap_err();
    assert_plain(&e, "provider_auth", &[&ours, mgmt.expose()]);
}

#[tokio::test]
async fn find_key_hash_says_when_the_key_is_not_listed() {
    let (fake, api) = setup().await;
    let mgmt = Secret::new(fake.add_management_key());
    let ours = fake.add_key("clawkeeper");
    fake.add_key("other");
    // A key that answers on /key but isn't in the account's key list (here the
    // management key itself, which the list never shows).
    let e = api.find_key_hash(&mgmt, &mgmt).await.unwrap_err();
    assert!(matches!(e, Error::KeyNotListed), "{e:?}");
    assert_plain(&e, "openrouter_key_not_listed", &[mgmt.expose(), &ours]);
}

#[tokio::test]
async fn create_and_delete_a_capped_key() {
    let (fake, api) = setup().await;
    let mgmt = Secret::new(fake.add_management_key());
    let created = api
        .create_key(
            &mgmt,
            "Clawkeeper (laptop)",
            Some(5.0),
            Some(LimitReset::Monthly),
        )
        .await
        .unwrap();
    assert!(created.key.expose().starts_with("sk-or-v1-"));
    assert!(!format!("{created:?}").contains(created.key.expose()));
    assert_eq!(created.info.name, "Clawkeeper (laptop)");
    assert_eq!(created.info.limit, Some(5.0));
    assert_eq!(
        fake.hash_of(created.key.expose()),
        Some(created.info.hash.clone())
    );
    let post = fake.requests().last().unwrap().clone();
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/api/v1/keys")
    );

    let info = api.key_info(&created.key).await.unwrap();
    assert_eq!(info.limit, Some(5.0));
    assert_eq!(info.limit_reset, Some(LimitReset::Monthly));

    api.delete_key(&mgmt, &created.info.hash).await.unwrap();
    let e = api.key_info(&created.key).await.unwrap_err();
    assert_plain(&e, "provider_auth", &[created.key.expose()]);
    let e = api.delete_key(&mgmt, &created.info.hash).await.unwrap_err();
    assert_plain(&e, "openrouter_key_not_found", &[mgmt.expose()]);
    let e = api.create_key(&mgmt, " ", None, None).await.unwrap_err();
    assert_plain(&e, "openrouter_invalid_input", &[mgmt.expose()]);
}

#[tokio::test]
async fn refusals_401_402_403() {
    let (fake, api) = setup().await;
    let mgmt_text = fake.add_management_key();
    let mgmt = Secret::new(mgmt_text.clone());
    let key_text = fake.add_key("clawkeeper");
    let key = Secret::new(key_text.clone());
    let secrets = [mgmt_text.as_str(), key_text.as_str()];
    assert!(api.credits(&mgmt).await.is_ok());

    // 401: a key OpenRouter doesn't know.
    let e = api
        .key_info(&Secret::new("sk-or-v1-deadbeefdeadbeefdeadbeefdeadbeef"))
        .await
        .unwrap_err();
    assert_plain(&e, "provider_auth", &secrets);
    assert!(e.to_string().starts_with("OpenRouter refused the API key"));
    // 401 on a management call names the management key.
    let e = api
        .credits(&Secret::new("sk-or-v1-0123456789abcdef0123456789"))
        .await
        .unwrap_err();
    assert_plain(&e, "provider_auth", &secrets);
    assert!(e.to_string().contains("management key"), "{e}");
    // 401: a disabled key.
    fake.set_disabled(&key_text, true);
    let e = api.key_info(&key).await.unwrap_err();
    assert_plain(&e, "provider_auth", &secrets);
    fake.set_disabled(&key_text, false);

    // 403: an ordinary key where a management key is needed.
    for e in [
        api.credits(&key).await.unwrap_err(),
        api.activity(&key, None).await.unwrap_err(),
        api.list_keys(&key, 0).await.unwrap_err(),
    ] {
        assert_plain(&e, "openrouter_management_key_needed", &secrets);
        assert!(e.problem().hint.unwrap().contains("management key"));
    }

    // 402: out of credit.
    fake.fail_next(1, 402, None);
    let e = api.key_info(&key).await.unwrap_err();
    assert_plain(&e, "provider_billing", &secrets);
    assert!(e.to_string().contains("not enough credit"), "{e}");
    // Not retried.
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/api/v1/key")
            .count(),
        3
    );
}

#[tokio::test]
async fn rate_limit_is_retried_then_succeeds_or_gives_up_clearly() {
    let (fake, api) = setup().await;
    let key_text = fake.add_key("clawkeeper");
    let key = Secret::new(key_text.clone());

    // Two 429s with Retry-After: 1 (waited), then the answer.
    fake.fail_next(2, 429, Some(1));
    let started = std::time::Instant::now();
    let info = api.key_info(&key).await.unwrap();
    assert_eq!(info.usage, 0.0);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "Retry-After was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 3);

    // Without Retry-After: backoff; still 429 after all attempts → a clear error.
    fake.fail_next(10, 429, None);
    let e = api.key_info(&key).await.unwrap_err();
    assert_plain(&e, "provider_rate_limit", &[&key_text]);
    assert!(e
        .problem()
        .hint
        .unwrap()
        .contains("already waited and retried"));
    assert_eq!(
        fake.requests().len(),
        3 + 3,
        "three attempts (RetryPolicy::fast)"
    );

    // A Retry-After longer than we are willing to wait: no retry, the wait is said.
    let fake2 = ContractFakeOpenRouter::start(true).await.unwrap();
    let k2 = fake2.add_key("x");
    let api2 = OpenRouterApi::with_base_url(&fake2.api_base(), RetryPolicy::fast()).unwrap();
    fake2.fail_next(1, 429, Some(3600));
    let e = api2.key_info(&Secret::new(k2.clone())).await.unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3600))
    );
    assert!(e.to_string().contains("3600 s"), "{e}");
    assert_eq!(fake2.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_garbage_and_timeouts() {
    let (fake, api) = setup().await;
    let mgmt_text = fake.add_management_key();
    let mgmt = Secret::new(mgmt_text.clone());
    let key_text = fake.add_key("clawkeeper");
    let key = Secret::new(key_text.clone());
    let secrets = [mgmt_text.as_str(), key_text.as_str()];

    // One 503 on a read: retried, then fine.
    fake.fail_next(1, 503, None);
    assert!(api.credits(&mgmt).await.is_ok());
    assert_eq!(fake.requests().len(), 2);
    // 5xx every time: a clear error after the bounded attempts.
    fake.fail_next(10, 500, None);
    let e = api.credits(&mgmt).await.unwrap_err();
    assert_plain(&e, "openrouter_unavailable", &secrets);
    assert_eq!(fake.requests().len(), 2 + 3);
    fake.clear_faults();
    // A creating POST is not repeated after a 502: it could make two keys.
    let before = fake.requests().len();
    fake.fail_next(10, 502, None);
    let e = api.create_key(&mgmt, "x", None, None).await.unwrap_err();
    assert_plain(&e, "openrouter_unavailable", &secrets);
    assert_eq!(fake.requests().len(), before + 1);
    fake.clear_faults();
    // The PATCH is: setting the same cap twice is harmless.
    let hash = fake.hash_of(&key_text).unwrap();
    let before = fake.requests().len();
    fake.fail_next(1, 502, None);
    api.set_limit(&mgmt, &hash, Some(2.0), None).await.unwrap();
    assert_eq!(fake.requests().len(), before + 2);

    // Garbage: not JSON, the wrong shape, a wrong number; never a panic, never a number.
    for body in [
        "<html>Bad gateway</html>",
        r#"{"data":{"usage":"NaN"}}"#,
        r#"{"data":{"usage":-3}}"#,
        r#"{"data":{"label":"x"}}"#,
        r#"{"data":[1,2]}"#,
        "",
    ] {
        fake.garbage_next(1, body);
        let e = api.key_info(&key).await.unwrap_err();
        assert_plain(&e, "openrouter_bad_response", &secrets);
    }
    fake.garbage_next(
        1,
        r#"{"data":[{"date":"2026-11-25","model":"m","usage":1e308,"requests":-1}]}"#,
    );
    let e = api.activity(&mgmt, None).await.unwrap_err();
    assert_plain(&e, "openrouter_bad_response", &secrets);
    // A server echoing the key back in an error has it masked.
    fake.garbage_next(1, &format!(r#"{{"data":{{"usage":"{key_text}"}}}}"#));
    let e = api.key_info(&key).await.unwrap_err();
    assert_plain(&e, "openrouter_bad_response", &secrets);

    // Timeout: a server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut policy = RetryPolicy::fast();
    policy.request_timeout = Duration::from_millis(300);
    policy.max_attempts = 2;
    let slow = OpenRouterApi::with_base_url(&format!("http://{addr}/api/v1"), policy).unwrap();
    let e = slow.key_info(&key).await.unwrap_err();
    assert_plain(&e, "openrouter_timeout", &secrets);
    hold.abort();

    // Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gone =
        OpenRouterApi::with_base_url(&format!("http://{closed}/api/v1"), RetryPolicy::fast())
            .unwrap();
    let e = gone.key_info(&key).await.unwrap_err();
    assert_plain(&e, "openrouter_unreachable", &secrets);
}

#[tokio::test]
async fn the_signed_in_key_is_a_key_of_the_account() {
    // The key a person gets by "Sign in with OpenRouter" is a key of the fake's account:
    // it has usage, and the management key finds and caps it.
    let (fake, _) = setup().await;
    let api = OpenRouterApi::for_site(fake.origin(), RetryPolicy::fast()).unwrap();
    assert_eq!(api.base_url(), fake.api_base());
    let mgmt = Secret::new(fake.add_management_key());
    let signin = clawkeeper_core::openrouter::SignIn::begin(fake.origin())
        .await
        .unwrap();
    let url = signin.url();
    let browser = tokio::spawn(async move { reqwest::get(&url).await.unwrap().status() });
    let key = signin.finish(Duration::from_secs(10)).await.unwrap();
    assert!(browser.await.unwrap().is_success());
    assert_eq!(fake.issued(), vec![key.expose().to_owned()]);

    let d: Date = fake.today();
    fake.record_spend(key.expose(), 0.125, "openrouter/auto", d)
        .unwrap();
    let info = api.key_info(&key).await.unwrap();
    assert_eq!(info.usage_daily, Some(0.125));
    let hash = api.find_key_hash(&mgmt, &key).await.unwrap();
    api.set_limit(&mgmt, &hash, Some(0.1), Some(LimitReset::Weekly))
        .await
        .unwrap();
    assert!(!fake.would_allow(key.expose()));
}
