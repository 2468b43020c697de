//! A real org, through the real plugin, the emulator and the engine:
//! records that already exist are adopted, removals past the threshold wait
//! for confirmation, "keep" never deletes, an outage of hours ends in
//! quarantine and recovery, and a spent daily API limit makes work wait.

use std::time::Duration;

use registry_host::domain::{Person, ProvState, Scope};
use registry_host::engine::EngineConfig;
use registry_plugin_runtime::latest::types::GrantType;
use serde_json::{Map, Value, json};

use crate::common::person;
use crate::provisioning::Harness;

const MATCH_BY_EMAIL: &[(&str, &str)] = &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("match_by", "email")];

fn contact(last: &str, email: &str) -> Map<String, Value> {
    json!({"LastName": last, "Email": email}).as_object().unwrap().clone()
}

fn people(prefix: &str, n: usize, domain: impl Fn(usize) -> &'static str) -> Vec<Person> {
    (0..n).map(|i| person(&format!("{prefix}{i:05}"), "Some", &format!("Person {i}"), &format!("{}{i}@{}", prefix.to_lowercase(), domain(i)))).collect()
}

/// Realistic retries: seconds to an hour, for days.
fn patient() -> EngineConfig {
    EngineConfig { workers: 1, idle_poll: Duration::from_millis(20), ..EngineConfig::default() }
}

#[tokio::test]
async fn ten_thousand_people_adopt_the_five_thousand_contacts_the_org_holds() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", MATCH_BY_EMAIL, Scope::default()).await;
    let existing: Vec<Map<String, Value>> = (0..5000).map(|i| contact(&format!("Existing {i}"), &format!("a{i}@example.org"))).collect();
    h.emu.insert_records("Contact", existing).unwrap();
    h.store.import_people(people("A", 10_000, |_| "example.org"), |_| {}).await.unwrap();
    let before = h.api_calls();
    h.drain().await;
    let calls = h.api_calls() - before;
    let contacts = h.emu.live_records("Contact");
    let ours: Vec<&Value> = contacts.iter().filter(|c| c["Email"].as_str().is_some_and(|e| e.starts_with('a'))).collect();
    assert_eq!(ours.len(), 10_000, "no duplicates: 5,000 adopted and 5,000 made");
    let mut emails: Vec<&str> = ours.iter().map(|c| c["Email"].as_str().unwrap()).collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), 10_000);
    assert!(ours.iter().all(|c| c["Registry_ID__c"].is_string()), "every record carries the External ID");
    let mut adopted = 0;
    for i in 0..10_000 {
        adopted += usize::from(h.state(&format!("A{i:05}"), t).await.2.is_some_and(|m| m.starts_with("matched existing Contact")));
    }
    assert_eq!(adopted, 5000);
    assert_eq!(h.store.job_counts(Some(t)).await.unwrap(), (0, 0));
    println!("adoption run: 10,000 people, 5,000 Contacts already in the org: {calls} API calls");
    // 100 values a query, 200 records a write: 100 queries and 50 writes, plus splits at batch edges.
    assert!(calls <= 170, "{calls} API calls");
}

#[tokio::test]
async fn an_ambiguous_match_fails_visibly_naming_both_records() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", MATCH_BY_EMAIL, Scope::default()).await;
    let ids = h.emu.insert_records("Contact", vec![contact("Twin", "ada@example.org"), contact("Twin", "ADA@example.org")]).unwrap();
    h.store.create_person(person("T1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    h.drain().await;
    let (state, _, message) = h.state("T1", t).await;
    assert_eq!(state, ProvState::Failed);
    let message = message.unwrap();
    assert!(message.contains(&format!("2 Contacts have Email ada@example.org: {}, {}", ids[0], ids[1])), "{message}");
    assert_eq!(h.emu.live_records("Contact").len(), 2, "nothing was made or picked");
}

#[tokio::test]
async fn removals_past_the_threshold_wait_for_confirmation_and_keep_never_deletes() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let settings = [("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("on_remove", "delete")];
    let t = h.target("Contacts", &settings, Scope::default()).await;
    h.engine.refresh_removal_effects().await.unwrap();
    // 100 at keep.example.org, 600 elsewhere.
    h.store.import_people(people("R", 700, |i| if i < 100 { "keep.example.org" } else { "example.org" }), |_| {}).await.unwrap();
    h.drain().await;
    assert_eq!(h.emu.live_records("Contact").len(), 700);

    // Narrowing the scope would delete 600: held, nothing deleted.
    let mut input = registry_host::domain::TargetInput {
        name: "Contacts".into(),
        plugin: "salesforce".into(),
        server_id: h.server,
        settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        enabled: true,
        scope: Scope::parse("keep.example.org", ""),
    };
    h.store.update_target(t, &input).await.unwrap();
    let run = h.store.start_run(t).await.unwrap();
    assert_eq!(run.total, 700);
    h.drain().await;
    assert_eq!(h.emu.live_records("Contact").len(), 700, "nothing deleted before confirmation");
    let health = h.store.target_health(t).await.unwrap();
    assert_eq!((health.held_removals, health.removal_threshold), (600, 140));
    assert_eq!(h.store.held_removals(t, 1000).await.unwrap().len(), 600);
    // Confirm: removed as the removal setting says (deleted here).
    assert_eq!(h.store.confirm_removals(t).await.unwrap(), 600);
    h.drain().await;
    assert_eq!(h.emu.live_records("Contact").len(), 100);
    assert_eq!(h.state("R00500", t).await.0, ProvState::Removed);
    assert_eq!(h.store.target_health(t).await.unwrap().held_removals, 0);

    // With "keep", removals are not held and nothing is ever deleted.
    input.settings.retain(|(k, _)| k != "on_remove");
    input.scope = Scope::parse("nowhere.example.org", "");
    h.store.update_target(t, &input).await.unwrap();
    h.engine.refresh_removal_effects().await.unwrap();
    h.store.start_run(t).await.unwrap();
    h.drain().await;
    assert_eq!(h.store.target_health(t).await.unwrap().held_removals, 0);
    assert_eq!(h.emu.live_records("Contact").len(), 100, "keep deletes nothing");
    let (state, remote, message) = h.state("R00007", t).await;
    assert_eq!((state, message.as_deref()), (ProvState::Removed, Some(format!("kept Contact {} in Salesforce; no longer managed", remote.clone().unwrap()).as_str())));
}

#[tokio::test]
async fn an_outage_of_three_hours_quarantines_the_target_and_everyone_ends_provisioned() {
    let h = Harness::with_config(GrantType::ClientCredentials, patient()).await;
    let t = h.target("Contacts", &[("object", "Contact"), ("external_id_field", "Registry_ID__c")], Scope::default()).await;
    h.emu.outage(180);
    h.store.import_people(people("O", 300, |_| "example.org"), |_| {}).await.unwrap();
    let mut quarantined = false;
    let step = Duration::from_secs(5 * 60);
    for _ in 0..200 {
        if h.engine.run_once().await.unwrap() == 0 {
            // Nothing ready: time passes (no real sleeping).
            h.store.advance_clock(step);
            h.emu.advance_clock(step);
        }
        let health = h.store.target_health(t).await.unwrap();
        quarantined |= health.pause_level > 0 && health.pause_reason.as_deref().is_some_and(|r| r.starts_with("quarantined"));
        if h.store.job_counts(Some(t)).await.unwrap() == (0, 0) {
            break;
        }
    }
    assert!(quarantined, "the target was quarantined during the outage");
    assert_eq!(h.store.job_counts(Some(t)).await.unwrap(), (0, 0), "nothing failed, nothing left");
    let provisioned = h.store.target_counts(t).await.unwrap().into_iter().find(|(s, _)| *s == ProvState::Provisioned).map(|(_, n)| n);
    assert_eq!(provisioned, Some(300));
    let health = h.store.target_health(t).await.unwrap();
    assert_eq!((health.pause_level, health.failures_in_row), (0, 0), "resumed by itself");
}

#[tokio::test]
async fn a_spent_daily_limit_makes_work_wait_until_the_window_rolls() {
    let h = Harness::with_config(GrantType::ClientCredentials, patient()).await;
    let t = h.target("Contacts", &[("object", "Contact"), ("external_id_field", "Registry_ID__c")], Scope::default()).await;
    h.store.import_people(people("D", 1000, |_| "example.org"), |_| {}).await.unwrap();
    // Three collection calls left today: 600 people.
    h.emu.set_daily_limit(h.emu.api_usage().0 + 3);
    h.drain().await;
    assert_eq!(h.store.job_counts(Some(t)).await.unwrap(), (400, 0), "the rest wait; none failed");
    let health = h.store.target_health(t).await.unwrap();
    assert!(health.pause_reason.as_deref().is_some_and(|r| r.contains("API quota is used up")), "{health:?}");
    let usage = health.usage.unwrap();
    assert_eq!((usage.0, usage.1), (3, 3), "the usage Salesforce reported");
    let waiting = h.state("D00999", t).await;
    assert_eq!(waiting.0, ProvState::Pending);
    assert!(waiting.2.unwrap().starts_with("waiting: the provider's API quota is used up"));
    // A day later the window has rolled over.
    for _ in 0..3 {
        h.store.advance_clock(Duration::from_secs(8 * 3600 + 1));
        h.emu.advance_clock(Duration::from_secs(8 * 3600 + 1));
    }
    h.drain().await;
    assert_eq!(h.store.job_counts(Some(t)).await.unwrap(), (0, 0));
    assert_eq!(h.emu.live_records("Contact").len(), 1000);
}

/// Bad safeguards and settings naming fields the org lacks are refused when
/// the target is saved, by field, and nothing is stored.
#[tokio::test]
async fn the_target_form_refuses_a_bad_threshold_and_a_field_the_org_lacks() {
    let h = crate::web::Harness::start().await;
    let csrf = h.login_with_token().await;
    let id = h.demo_target().await;
    let before = h.host.store.target(id).await.unwrap();
    let server = before.server_id.to_string();
    let form = |threshold: &'static str, field: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", before.name.clone()),
            ("plugin", "salesforce".to_string()),
            ("server_id", server.clone()),
            ("enabled", "on".to_string()),
            ("removal_threshold", threshold.to_string()),
            ("setting.object", "Contact".to_string()),
            ("setting.external_id_field", "Registry_ID__c".to_string()),
            ("setting.match_by", "field".to_string()),
            ("setting.match_field", field.to_string()),
            ("setting.match_template", "{identifier:employee}".to_string()),
        ]
    };
    let h = &h;
    let post = |pairs: Vec<(&'static str, String)>| async move {
        let r = h.http.post(h.url(&format!("/targets/{id}"))).form(&pairs).send().await.unwrap();
        (r.status().as_u16(), crate::web::unescape(r.text().await.unwrap()))
    };
    let (status, page) = post(form("0", "Employee_Number__c")).await;
    assert_eq!(status, 422);
    assert!(page.contains("'0': give a whole number of at least 1"), "{page}");
    // Valid in form, but the org has no such field: asked by describe.
    let (status, page) = post(form("", "Employee_Number__c")).await;
    assert_eq!(status, 422);
    assert!(page.contains("Contact has no field Employee_Number__c in this org"), "{page}");
    assert_eq!(h.host.store.target(id).await.unwrap().settings, before.settings, "nothing was saved");
    // A field the org has: saved.
    let (status, _) = post(form("50", "Department")).await;
    assert_eq!(status, 303);
    assert_eq!(h.host.store.safeguards(id).await.unwrap().removal_threshold, Some(50));
}
