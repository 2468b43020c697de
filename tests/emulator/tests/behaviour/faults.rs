//! Fault switches (library API and admin HTTP endpoint), the request log,
//! the daily limit, and the `salesforce-emulator` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use salesforce_emulator::{FailKind, Fault};
use serde_json::{Value, json};

use crate::support::*;

const KEY: &str = "3MVG9registryKey";
const SECRET: &str = "3MVG9registryKey-secret";

async fn refresh(emu: &salesforce_emulator::Emulator, http: &reqwest::Client, t: &Value) -> (u16, Value) {
    post_token(emu, http, &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap()), ("client_id", KEY), ("client_secret", SECRET)]).await
}

#[tokio::test]
async fn expired_access_tokens_are_invalid_sessions_until_refreshed() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.expire_access_tokens();
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!((s, body.as_str()), (401, r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#));
    let (s, fresh) = refresh(&emu, &http, &t).await;
    assert_eq!(s, 200);
    let (s, _, _) = api(&http, Method::GET, &data_url(&t, "limits"), access(&fresh), None).await;
    assert_eq!(s, 200);
    // Sessions also time out on their own (2 hours by default).
    emu.advance_clock(Duration::from_secs(2 * 3600 + 1));
    let (s, _, _) = api(&http, Method::GET, &data_url(&t, "limits"), access(&fresh), None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_a_new_authorization() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.revoke_refresh_token(t["refresh_token"].as_str().unwrap()).unwrap();
    let (s, body) = refresh(&emu, &http, &t).await;
    assert_eq!((s, body), (400, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})));
    assert!(emu.revoke_refresh_token("unknown").is_err());
}

#[tokio::test]
async fn migration_moves_the_org_to_a_new_instance_host() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let old = t["instance_url"].as_str().unwrap().to_string();
    let new = emu.migrate().unwrap();
    assert_ne!(old, new);
    assert_eq!(emu.instance_url(), new);
    // The old host refuses the org's calls, even with a live token.
    let (s, _, _) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!(s, 401);
    // A refresh names the new instance, which accepts the session.
    let (s, fresh) = refresh(&emu, &http, &t).await;
    assert_eq!(s, 200);
    assert_eq!(fresh["instance_url"], new.as_str());
    let (s, _, _) = api(&http, Method::GET, &data_url(&fresh, "limits"), access(&fresh), None).await;
    assert_eq!(s, 200);
    let (s, _, _) = api(&http, Method::GET, &data_url(&fresh, "limits"), access(&t), None).await;
    assert_eq!(s, 200, "the old access token still works on the new host");
}

#[tokio::test]
async fn throttling_and_the_daily_limit() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.throttle(Some(2));
    for _ in 0..2 {
        assert_eq!(api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await.0, 200);
    }
    let (s, limit, body) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    // A burst limit, not the daily one: its message says which.
    assert_eq!((s, body.as_str()), (403, r#"[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#));
    assert_eq!(limit.as_deref(), Some("api-usage=2/15000"));
    emu.throttle(None);
    assert_eq!(api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await.0, 200);

    // The "Other" org's daily limit is 5.
    let r = approve_as(&emu, &http, KEY, "taken@other.example.com", "pw-other", &[]).await;
    let code = param(&location_params(&r).1, "code").unwrap().to_string();
    let (_, other) = post_token(&emu, &http, &[("grant_type", "authorization_code"), ("code", &code), ("client_id", KEY), ("client_secret", SECRET), ("redirect_uri", CALLBACK)]).await;
    assert_ne!(other["instance_url"], t["instance_url"], "Other lives on its own instance");
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(api(&http, Method::GET, &data_url(&other, "limits"), access(&other), None).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 403]);
    // The count starts again at UTC midnight.
    emu.advance_clock(Duration::from_secs(86_400));
    assert_eq!(api(&http, Method::GET, &data_url(&other, "limits"), access(&other), None).await.0, 401, "the token expired meanwhile");
    let (_, fresh) = post_token(&emu, &http, &[("grant_type", "refresh_token"), ("refresh_token", other["refresh_token"].as_str().unwrap()), ("client_id", KEY), ("client_secret", SECRET)]).await;
    let (s, limit, _) = api(&http, Method::GET, &data_url(&fresh, "limits"), access(&fresh), None).await;
    assert_eq!((s, limit.as_deref()), (200, Some("api-usage=1/5")));
}

/// An outage answers 503 to every REST call, counts none, and ends with
/// the clock; a lowered daily limit is the daily limit's answer, with the
/// usage in Sforce-Limit-Info, until the day rolls over.
#[tokio::test]
async fn an_outage_ends_with_the_clock_and_a_spent_daily_limit_rolls_over() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.outage(30);
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!(s, 503);
    assert_eq!(json(&body)[0]["errorCode"], "SERVER_UNAVAILABLE");
    assert_eq!(emu.api_usage().0, 0, "nothing reached the org");
    emu.advance_clock(Duration::from_secs(31 * 60));
    assert_eq!(api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await.0, 200);

    emu.set_daily_limit(2);
    assert_eq!(api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await.0, 200);
    let (s, limit, body) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!((s, body.as_str()), (403, r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#));
    assert_eq!(limit.as_deref(), Some("api-usage=2/2"));
    emu.advance_clock(Duration::from_secs(86_400));
    let (_, fresh) = refresh(&emu, &http, &t).await;
    let (s, limit, _) = api(&http, Method::GET, &data_url(&fresh, "limits"), access(&fresh), None).await;
    assert_eq!((s, limit.as_deref()), (200, Some("api-usage=1/2")));
}

#[tokio::test]
async fn deactivated_or_renamed_users() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let me = t["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    // Renamed through the API: the new username logs in, the old one does not.
    let (s, _, _) = api(&http, Method::PATCH, &data_url(&t, &format!("sobjects/User/{me}")), access(&t), Some(json!({"Username": "ada.new@example.com"}))).await;
    assert_eq!(s, 204);
    let r = approve_as(&emu, &http, KEY, "ada.new@example.com", PASSWORD, &[]).await;
    assert_eq!(r.status(), 302);
    let html = http.get(authorize_url(&emu, KEY, &[])).send().await.unwrap().text().await.unwrap();
    let r = http
        .post(format!("{}/services/oauth2/authorize/login", emu.login_url()))
        .form(&[("tx", tx_of(&html).as_str()), ("username", USER), ("pw", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Please check your username and password."));
    // Deactivated: sessions and refresh tokens stop working.
    let (s, _, _) = api(&http, Method::PATCH, &data_url(&t, &format!("sobjects/User/{me}")), access(&t), Some(json!({"IsActive": false}))).await;
    assert_eq!(s, 204);
    assert_eq!(api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await.0, 401);
    let (s, body) = refresh(&emu, &http, &t).await;
    assert_eq!((s, body), (400, json!({"error": "invalid_grant", "error_description": "inactive user"})));
}

#[tokio::test]
async fn injected_failures_then_recovery() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let body = json!({"LastName": "x"});
    emu.fail_next(2, FailKind::ServerError);
    for _ in 0..2 {
        let (s, _, text) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), access(&t), Some(body.clone())).await;
        assert_eq!(s, 500);
        assert_eq!(json(&text)[0]["errorCode"], "UNKNOWN_EXCEPTION");
        assert!(json(&text)[0]["message"].as_str().unwrap().starts_with("An unexpected error occurred. Please include this ErrorId if you contact support: "));
    }
    emu.fail_next(1, FailKind::UnableToLockRow);
    let (s, _, text) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), access(&t), Some(body.clone())).await;
    assert_eq!((s, json(&text)[0]["errorCode"].clone()), (400, json!("UNABLE_TO_LOCK_ROW")));
    assert!(emu.records("Contact").is_empty(), "failed calls store nothing");
    let (s, _, _) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), access(&t), Some(body)).await;
    assert_eq!(s, 201);
    assert_eq!(emu.api_usage().0, 4, "failed calls are counted");
}

#[tokio::test]
async fn latency_slows_every_request() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.set_latency(Duration::from_millis(400));
    let start = Instant::now();
    api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    let slow = start.elapsed();
    assert!(slow >= Duration::from_millis(400));
    emu.clear_faults();
    let start = Instant::now();
    api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert!(start.elapsed() < slow, "clearing the fault removes the delay");
}

/// The latency model a bench sets: a base for every call, and a cost for
/// each record of a collections call; the emulator counts the calls it is
/// answering at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_latency_model_costs_per_call_and_per_record_and_calls_in_flight_are_counted() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.set_latency_model(Duration::from_millis(100), Duration::from_millis(20));
    let start = Instant::now();
    api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert!(start.elapsed() >= Duration::from_millis(100), "the base");
    let records: Vec<Value> = (0..20).map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("Latency {i}")})).collect();
    let start = Instant::now();
    let (status, _, body) = api(&http, Method::POST, &data_url(&t, "composite/sobjects"), access(&t), Some(json!({"allOrNone": false, "records": records}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(start.elapsed() >= Duration::from_millis(100 + 20 * 20), "the base and 20 ms for each of 20 records: {:?}", start.elapsed());

    let url = data_url(&t, "limits");
    let calls = (0..3).map(|_| api(&http, Method::GET, &url, access(&t), None));
    futures_join3(calls.collect()).await;
    let (now, most) = emu.in_flight();
    assert_eq!(now, 0);
    assert!(most >= 3, "three calls at once were in flight together: {most}");
}

async fn futures_join3<F: std::future::Future>(mut calls: Vec<F>) {
    let (c, b, a) = (calls.pop().unwrap(), calls.pop().unwrap(), calls.pop().unwrap());
    tokio::join!(a, b, c);
}

#[tokio::test]
async fn request_log_and_admin_endpoint() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.clear_request_log();
    api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), access(&t), Some(json!({"LastName": "Logged"}))).await;
    let log = emu.request_log();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].host.as_str(), log[0].method.as_str(), log[0].path.as_str(), log[0].status, log[0].api_call), ("na1", "POST", "/services/data/v62.0/sobjects/Contact", 201, true));
    assert_eq!(log[0].body, r#"{"LastName":"Logged"}"#);

    let admin = format!("{}/_emulator", emu.login_url());
    let r = http.post(format!("{admin}/faults")).json(&json!({"fault": "throttle", "after": 0})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await.0, 403);
    http.post(format!("{admin}/faults")).json(&json!({"fault": "clear"})).send().await.unwrap();
    let r = http.post(format!("{admin}/faults")).json(&json!({"fault": "migrate"})).send().await.unwrap();
    let moved: Value = r.json().await.unwrap();
    assert_eq!(moved["instance_url"], emu.instance_url().as_str());
    let r = http.post(format!("{admin}/faults")).json(&json!({"fault": "explode"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unknown variant `explode`"));
    let r = http.post(format!("{admin}/faults")).json(&json!({"fault": "migrate", "org": "Nope"})).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let records: Value = http.get(format!("{admin}/records/Contact")).send().await.unwrap().json().await.unwrap();
    assert_eq!(records[0]["LastName"], "Logged");
    let log: Value = http.get(format!("{admin}/requests")).send().await.unwrap().json().await.unwrap();
    assert!(log.as_array().unwrap().iter().all(|e| !e["path"].as_str().unwrap().starts_with("/_emulator")), "admin calls are not logged");
    let summary: Value = http.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(summary["login_url"], emu.login_url().as_str());
    assert_eq!(summary["connected_apps"][0]["consumer_key"], KEY);

    let r = http.post(format!("{admin}/apps/{KEY}/callbacks")).json(&json!({"url": "http://127.0.0.1:7/cb"})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(emu.app().callback_urls.contains(&"http://127.0.0.1:7/cb".to_string()));
    assert!(emu.fault(Fault::Rotation { consumer_key: Some("nope".into()), enabled: true }).is_err());
}

#[test]
fn seeds_are_checked() {
    let mut seed = seed();
    seed.orgs[1].users[0].username = USER.into();
    let err = salesforce_emulator::Emulator::start(seed).unwrap_err().to_string();
    assert!(err.contains("appears twice"), "{err}");
    let err = salesforce_emulator::Seed::from_json(r#"{"orgs": [{"name": "x", "bogus": 1}]}"#).unwrap_err();
    assert!(err.contains("unknown field `bogus`"), "{err}");
}

#[test]
fn the_binary_prints_its_urls_and_the_demo_app_and_serves() {
    /// Kills the emulator process even when an assertion fails.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_salesforce-emulator"))
            .args(["--callback-url", "http://127.0.0.1:8080/oauth2/callback"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    while !banner.contains("login user:") {
        banner.push_str(&lines.next().unwrap().unwrap());
        banner.push('\n');
    }
    let field = |name: &str| banner.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_else(|| panic!("{name} in {banner}"));
    let login = field("login URL:");
    let instance = field("instance URL:");
    assert!(login.starts_with("http://127.0.0.1:") && instance.starts_with("http://127.0.0.1:") && login != instance);
    assert_eq!(field("consumer key:"), salesforce_emulator::seed::DEMO_CONSUMER_KEY);
    assert_eq!(field("consumer secret:"), salesforce_emulator::seed::DEMO_CONSUMER_SECRET);
    assert_eq!(field("callback URLs:"), "http://127.0.0.1:8080/oauth2/callback");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(async {
        let r = client()
            .post(format!("{login}/services/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", salesforce_emulator::seed::DEMO_CONSUMER_KEY),
                ("client_secret", salesforce_emulator::seed::DEMO_CONSUMER_SECRET),
            ])
            .send()
            .await
            .unwrap();
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["instance_url"], instance.as_str());
        client().get(format!("{instance}/services/data/v62.0/limits")).bearer_auth(t["access_token"].as_str().unwrap()).send().await.unwrap().status()
    });
    drop(child);
    assert_eq!(status, 200);
}
