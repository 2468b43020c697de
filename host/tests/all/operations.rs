//! Operating the registry: the dashboard's numbers match the database, the
//! provisioning log filters, pages and exports, "retry failed only", the
//! audit trail records admin actions without secrets, and a server in use
//! cannot be deleted.

use std::time::Duration;

use crate::web::Harness;

async fn until(h: &Harness, what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..300 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened on {}", h.host.public_url);
}

#[tokio::test]
async fn the_dashboard_log_and_audit_trail_tell_what_happened() {
    let h = Harness::start().await;
    let token_csrf = h.login_with_token().await;
    let t = h.demo_target().await;
    for i in 0..3 {
        h.host.store.create_person(crate::common::person(&format!("OP{i}"), "Op", &format!("Person {i}"), &format!("op{i}@example.org"))).await.unwrap();
    }
    // Salesforce's LastName holds 80 characters: this one fails for good.
    h.host.store.create_person(crate::common::person("OPBAD", "Too", &"L".repeat(81), "opbad@example.org")).await.unwrap();
    h.host.engine.wake();
    let store = h.host.store.clone();
    until(&h, "provisioning", || store.sqlite().expect("SQLite").job_counts(Some(t)).unwrap() == (0, 1)).await;

    // Dashboard: the numbers are the database's, and link to what is behind them.
    let (status, page, _) = h.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!(r#"id="provisioned-{t}">3<"#)), "{page}");
    assert!(page.contains(&format!(r#"href="/log?target={t}&outcome=failed" class="num error-text" id="failed-{t}">1<"#)), "{page}");
    assert!(page.contains(r#"id="activity-chart""#) && page.contains("3 provisioned, 1 failed"), "{page}");
    assert!(page.contains("API calls against the limit"), "the usage the plugin reported is charted");

    // The log: filtered, exported, in the API.
    let page = h.get(&format!("/log?target={t}&outcome=failed")).await.1;
    assert!(page.contains("OPBAD") && !page.contains("OP0<"), "{page}");
    let page = h.get(&format!("/log?target={t}&outcome=ok")).await.1;
    assert_eq!(page.matches("created Contact").count(), 3, "{page}");
    let csv = h.http.get(h.url(&format!("/log.csv?target={t}"))).send().await.unwrap().text().await.unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and four attempts: {csv}");
    assert!(csv.starts_with("id,at,person_id,person,target,action,outcome,remote,duration_ms,message"));
    let api_token = h.host.store.create_api_token("ops", None).await.unwrap();
    let api: serde_json::Value = reqwest::Client::new().get(h.url("/api/v1/log?limit=2")).bearer_auth(&api_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(api["entries"].as_array().unwrap().len(), 2);
    let next = api["next_before"].as_i64().unwrap();
    let older: serde_json::Value = reqwest::Client::new().get(h.url(&format!("/api/v1/log?limit=10&before={next}"))).bearer_auth(&api_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(older["entries"].as_array().unwrap().len(), 2, "the cursor continues where the page ended");
    assert!(older["entries"].as_array().unwrap().iter().all(|e| e["id"].as_i64().unwrap() < next));

    // Retry failed only: queued again (and fails again: the name is still too long).
    let (status, _, loc) = h.post(&format!("/targets/{t}/retry-failed"), &[("csrf", &token_csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("/targets/{t}").as_str())));
    until(&h, "the retry", || store.sqlite().expect("SQLite").log(&registry_host::store::LogFilter { person: Some("OPBAD".into()), ..Default::default() }, 10).unwrap().len() == 2).await;

    // A server a target uses cannot be deleted; the page names the target.
    let server = h.host.store.target(t).await.unwrap().server_id;
    let (status, page, _) = h.post(&format!("/servers/{server}/delete"), &[("csrf", &token_csrf)]).await;
    assert_eq!(status, 409);
    assert!(page.contains("is used by the target(s) Salesforce Contacts (demo)"), "{page}");

    // The audit trail lists what was done, by whom, with no secret.
    let (user, _) = h.admin();
    let page = h.get("/audit").await.1;
    for action in ["admin.login", "server.obtain-token", "target.retry-failed"] {
        assert!(page.contains(action), "{action} in {page}");
    }
    assert!(page.contains(&user));
    let (status, _, _) = h
        .post(&format!("/servers/{server}"), &[("csrf", &token_csrf), ("name", "Renamed"), ("plugin", "salesforce"), ("server_url", &h.host.emulator.as_ref().unwrap().login_url()), ("client_id", salesforce_emulator::seed::DEMO_CONSUMER_KEY), ("client_secret", "a-new-secret-value"), ("grant_type", "authorization_code"), ("scope", "api refresh_token")])
        .await;
    assert_eq!(status, 303);
    let json: serde_json::Value = h.http.get(h.url("/audit.json?action=server.update")).send().await.unwrap().json().await.unwrap();
    let entry = &json[0];
    assert_eq!((entry["actor"].as_str(), entry["subject"].as_str()), (Some(user.as_str()), Some("Renamed")));
    assert_eq!(entry["detail"]["before"]["name"], "Salesforce (demo emulator)");
    let all = h.http.get(h.url("/audit.csv")).send().await.unwrap().text().await.unwrap();
    assert!(!all.contains("a-new-secret-value") && !all.contains(salesforce_emulator::seed::DEMO_CONSUMER_SECRET), "no secret in the trail");
}

/// A preview shows what would be sent, field by field, and writes nothing
/// (the emulator's request log proves it); Provision now then does it.
#[tokio::test]
async fn a_preview_writes_nothing_and_provision_now_does_it() {
    let h = Harness::start().await;
    let csrf = h.login_with_token().await;
    let t = h.demo_target().await;
    let emu = h.host.emulator.as_ref().unwrap();
    // Disabled, so the engine does not provision the person first.
    let mut input = {
        let tg = h.host.store.target(t).await.unwrap();
        registry_host::domain::TargetInput { name: tg.name, plugin: tg.plugin, server_id: tg.server_id, settings: tg.settings, enabled: false, scope: tg.scope }
    };
    h.host.store.update_target(t, &input).await.unwrap();
    h.host.store.create_person(crate::common::person("PV1", "Grace", "Hopper", "grace@example.org")).await.unwrap();
    emu.clear_request_log();
    let (status, page, _) = h.get(&format!("/people/PV1/preview/{t}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("sync: the person is active"), "{page}");
    assert!(page.contains("PATCH /services/data/v62.0/sobjects/Contact/Registry_ID__c/PV1"), "{page}");
    assert!(page.contains("<td class=\"mono\">LastName</td><td>Hopper</td>"), "{page}");
    assert!(emu.request_log().iter().all(|r| r.method == "GET" || r.method == "HEAD"), "a preview wrote: {:?}", emu.request_log());
    assert!(emu.live_records("Contact").iter().all(|c| c["Registry_ID__c"] != "PV1"), "nothing was made");

    input.enabled = true;
    h.host.store.update_target(t, &input).await.unwrap();
    let (status, _, loc) = h.post(&format!("/people/PV1/provision/{t}"), &[("csrf", &csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/people/PV1#provisioning")));
    assert!(emu.live_records("Contact").iter().any(|c| c["Registry_ID__c"] == "PV1"), "provisioned now");
    let page = h.get(loc.as_deref().unwrap()).await.1;
    assert!(page.contains("Provisioned now") && page.contains("created Contact"), "{page}");
}

/// Saving a person the target's plugin would refuse (LastName holds 80
/// characters in Salesforce) saves them and says so at once, asked of the
/// plugin, with no Salesforce limit in the host.
#[tokio::test]
async fn saving_a_person_a_target_would_refuse_warns_at_once() {
    let h = Harness::start().await;
    let csrf = h.login_with_token().await;
    let long = "L".repeat(81);
    let (status, _, loc) = h
        .post("/people", &[("csrf", &csrf), ("id", "WARN1"), ("status", "active"), ("given", "Too"), ("family", &long), ("email_0_address", "warn@example.org"), ("affiliation", "staff")])
        .await;
    assert_eq!((status, loc.as_deref()), (303, Some("/people/WARN1")));
    let page = h.get("/people/WARN1").await.1;
    assert!(page.contains("Saved, but: Salesforce Contacts (demo) will refuse this person: Family name:"), "{page}");
    assert!(h.get("/people/WARN1").await.1.contains("id=\"person-name\""), "the person was saved");
}

/// "Use an existing refresh token": a good one is proven by one refresh and
/// kept; a bad one is refused with the provider's words and stores nothing.
#[tokio::test]
async fn a_pasted_refresh_token_is_proven_before_it_is_kept() {
    let h = Harness::start().await;
    let csrf = h.login_with_token().await;
    let server = h.host.store.servers().await.unwrap()[0].id;
    // A refresh token from a round trip done elsewhere: this one, then forgotten here.
    let refresh = h.host.store.tokens(server).await.unwrap().unwrap().refresh_token.unwrap();
    h.host.store.clear_tokens(server).await.unwrap();
    let (status, page, _) = h.post(&format!("/servers/{server}/refresh-token"), &[("csrf", &csrf), ("refresh_token", "5Aep-not-a-real-token")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("The refresh token was refused, and nothing was stored"), "{page}");
    assert!(h.host.store.tokens(server).await.unwrap().is_none());
    let (status, _, loc) = h.post(&format!("/servers/{server}/refresh-token"), &[("csrf", &csrf), ("refresh_token", &refresh)]).await;
    assert_eq!(status, 303);
    let page = h.get(loc.as_deref().unwrap()).await.1;
    assert!(page.contains("Access Token Obtained.") && page.contains(">Set<"), "{page}");
    let tokens = h.host.store.tokens(server).await.unwrap().unwrap();
    assert!(!tokens.access_token.is_empty() && tokens.instance_url.is_some() && tokens.refresh_token.is_some());
    assert!(h.get("/audit").await.1.contains("server.use-refresh-token"));
}
