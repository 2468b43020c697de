//! The provisioning engine through the real compiled Salesforce plugin,
//! against the emulator: people go in the store, jobs are drained, and the
//! emulator's records are what the tests look at.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_plugin_runtime::latest::types::GrantType;
use registry_host::oauth::OAuth;
use registry_host::domain::{Person, Scope, Status};
use registry_host::engine::{Engine, EngineConfig};
use registry_host::secrets::SecretBox;
use registry_host::domain::{ProvState, TargetInput, TokenStatus};
use registry_host::store::Store;
use registry_plugin_runtime::{Plugin, Runtime, RuntimeConfig};
use salesforce_emulator::seed::DEMO_CONSUMER_KEY;
use salesforce_emulator::{Emulator, FailKind, Seed};
use serde_json::Value;

pub(crate) struct Harness {
    pub emu: Emulator,
    pub store: Arc<Store>,
    pub oauth: OAuth,
    pub engine: Arc<Engine>,
    pub server: i64,
    _dir: tempfile::TempDir,
}

async fn plugin() -> Plugin {
    let runtime = Runtime::new(RuntimeConfig { insecure_loopback: true, ..RuntimeConfig::default() }).unwrap();
    runtime.load_file(test_guests::salesforce_plugin()).await.unwrap()
}

impl Harness {
    /// A store with one server for the emulator's demo app (client
    /// credentials: the host fetches its own tokens; authorization code:
    /// the demo admin signs in and consents).
    pub async fn new(grant: GrantType) -> Harness {
        let config = EngineConfig {
            workers: 1,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            max_attempts: 5,
            idle_poll: Duration::from_millis(20),
            ..EngineConfig::default()
        };
        Self::with_config(grant, config).await
    }

    /// [`Harness::new`] with the engine configured as given.
    pub async fn with_config(grant: GrantType, config: EngineConfig) -> Harness {
        let emu = Emulator::start(Seed::demo(vec![])).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), SecretBox::load_or_create(dir.path()).unwrap()).unwrap());
        let plugins = Arc::new(HashMap::from([("salesforce".to_string(), plugin().await)]));
        let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", true);
        let mut input = common::emulator_server(&emu, "salesforce", grant);
        if grant == GrantType::JwtBearer {
            input.jwt_subject = Some(salesforce_emulator::seed::DEMO_USERNAME.into());
        }
        let server = store.create_server(&input).await.unwrap();
        emu.add_callback_url(DEMO_CONSUMER_KEY, &oauth.redirect_uri(server)).unwrap();
        let engine = Engine::new(store.clone(), plugins, oauth.clone(), config);
        let h = Harness { emu, store, oauth, engine, server, _dir: dir };
        if grant == GrantType::AuthorizationCode {
            h.obtain_token().await;
        }
        h
    }

    /// Obtain New Token, as the admin's browser does it.
    async fn obtain_token(&self) {
        let authorize = self.oauth.begin(self.server, None, registry_host::store::PendingOrigin { session: "browser-a", popup: false, admin: None }).await.unwrap();
        let callback = common::at_salesforce(&authorize, &self.emu.login_url(), true).await;
        let url = reqwest::Url::parse(&callback).unwrap();
        let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
        self.oauth.callback(self.server, &params, "browser-a").await.unwrap();
    }

    pub async fn target(&self, name: &str, settings: &[(&str, &str)], scope: Scope) -> i64 {
        self.store
            .create_target(&TargetInput {
                name: name.into(),
                plugin: "salesforce".into(),
                server_id: self.server,
                settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                enabled: true,
                scope,
            }).await
            .unwrap()
    }

    /// Runs the engine until no job is queued that could run now (jobs
    /// waiting for a token or for a later retry are left).
    pub async fn drain(&self) {
        let started = Instant::now();
        loop {
            let claimed = self.engine.run_once().await.unwrap();
            if claimed == 0 {
                let due = self.store.next_due().await.unwrap();
                match due {
                    Some(at) if at - self.store.now() < 2_000 => tokio::time::sleep(Duration::from_millis(5)).await,
                    _ => return,
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the queue never drained");
        }
    }

    pub async fn state(&self, person: &str, target: i64) -> (ProvState, Option<String>, Option<String>) {
        let s = self.store.person_states(person).await.unwrap().into_iter().find(|s| s.target_id == target).expect("a state for the target");
        (s.state, s.remote_id, s.message)
    }

    pub fn contacts_with(&self, registry_id: &str) -> Vec<Value> {
        self.emu.live_records("Contact").into_iter().filter(|r| r["Registry_ID__c"] == registry_id).collect()
    }

    pub fn api_calls(&self) -> u64 {
        self.emu.api_usage().0
    }
}

use crate::common::person;

/// Upserts through collections (Bulk API has tests of its own).
const UPSERT: &[(&str, &str)] = &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("on_remove", "delete"), ("bulk_threshold", "0")];

#[tokio::test]
async fn contacts_are_created_updated_expired_and_deleted() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("inactive_action", "remove"), ("on_remove", "delete")], Scope::default()).await;
    let p = h.store.create_person(person("R100", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    assert_eq!(h.state("R100", t).await.0, ProvState::Pending, "queued in the same transaction as the person");
    h.drain().await;

    let records = h.contacts_with("R100");
    assert_eq!(records.len(), 1, "{records:?}");
    let c = &records[0];
    assert_eq!((c["FirstName"].as_str(), c["LastName"].as_str(), c["Email"].as_str()), (Some("Ada"), Some("Lovelace"), Some("ada@example.org")));
    assert_eq!((c["Department"].as_str(), c["Title"].as_str()), (Some("Research"), Some("Analyst")));
    let (state, remote, _) = h.state("R100", t).await;
    assert_eq!(state, ProvState::Provisioned);
    assert_eq!(remote.as_deref(), c["Id"].as_str(), "the Salesforce id is kept per person and target");

    // An edit updates the same record.
    let mut edited = p.clone();
    edited.name.family = Some("King".into());
    assert!(h.store.update_person(&edited).await.unwrap().is_some());
    h.drain().await;
    let records = h.contacts_with("R100");
    assert_eq!(records.len(), 1);
    assert_eq!((records[0]["Id"].as_str(), records[0]["LastName"].as_str()), (remote.as_deref(), Some("King")));

    // Expired with inactive_action=remove: the Contact goes.
    edited.status = Status::Expired;
    h.store.update_person(&edited).await.unwrap();
    h.drain().await;
    assert!(h.contacts_with("R100").is_empty());
    assert_eq!(h.state("R100", t).await.0, ProvState::Removed);

    // Back to active: created again (upserted by the registry id).
    edited.status = Status::Active;
    h.store.update_person(&edited).await.unwrap();
    h.drain().await;
    assert_eq!(h.contacts_with("R100").len(), 1);

    // Deleted: gone, and the history tells the story.
    h.store.delete_person("R100").await.unwrap();
    h.drain().await;
    assert!(h.contacts_with("R100").is_empty());
    assert_eq!(h.state("R100", t).await.0, ProvState::Removed);
    let history = h.store.history("R100", 20).await.unwrap();
    let actions: Vec<&str> = history.iter().rev().filter(|e| e.ok).map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["added", "updated", "expired", "unexpired", "deleted"], "{history:?}");
}

#[tokio::test]
async fn without_an_external_id_the_stored_id_is_used_and_a_lost_record_is_recreated() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", &[("object", "Contact"), ("on_remove", "delete")], Scope::default()).await;
    let mut p = h.store.create_person(person("R200", "Grace", "Hopper", "grace@example.org")).await.unwrap();
    h.drain().await;
    let (_, first, _) = h.state("R200", t).await;
    let first = first.expect("a Salesforce id");

    // Someone deletes the Contact in Salesforce; the next update makes it again.
    let tokens = h.store.tokens(h.server).await.unwrap().unwrap();
    let url = format!("{}/services/data/v62.0/sobjects/Contact/{first}", tokens.instance_url.unwrap());
    let r = reqwest::Client::new().delete(url).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    p.name.given = "Grace B.".into();
    h.store.update_person(&p).await.unwrap();
    h.drain().await;
    let (state, second, _) = h.state("R200", t).await;
    assert_eq!(state, ProvState::Provisioned);
    let second = second.unwrap();
    assert_ne!(second, first);
    let live: Vec<Value> = h.emu.live_records("Contact").into_iter().filter(|r| r["LastName"] == "Hopper").collect();
    assert_eq!(live.len(), 1);
    assert_eq!((live[0]["Id"].as_str(), live[0]["FirstName"].as_str()), (Some(second.as_str()), Some("Grace B.")));

    // Deleting what Salesforce already lost is done, not failed.
    let url = format!("{}/services/data/v62.0/sobjects/Contact/{second}", h.store.tokens(h.server).await.unwrap().unwrap().instance_url.unwrap());
    reqwest::Client::new().delete(url).bearer_auth(&h.store.tokens(h.server).await.unwrap().unwrap().access_token).send().await.unwrap();
    h.store.delete_person("R200").await.unwrap();
    h.drain().await;
    assert_eq!(h.state("R200", t).await.0, ProvState::Removed);
}

#[tokio::test]
async fn upserts_never_duplicate_and_reprovision_all_batches() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", UPSERT, Scope::default()).await;
    let people: Vec<Person> = (0..450).map(|i| person(&format!("B{i:04}"), "Batch", &format!("Person {i}"), &format!("b{i}@example.org"))).collect();
    let stats = h.store.import_people(people, |_| {}).await.unwrap();
    assert_eq!(stats.added, 450);
    let before = h.api_calls();
    h.drain().await;
    let calls = h.api_calls() - before;
    assert_eq!(h.emu.live_records("Contact").iter().filter(|r| r["Registry_ID__c"].is_string()).count(), 450);
    // 450 upserts go as composite/sobjects calls of 200: 3 calls (a token fetch is not an API call).
    assert!(calls <= 4, "{calls} API calls for 450 people");

    // The same people again, twice: still exactly one record each.
    for _ in 0..2 {
        let run = h.store.start_run(t).await.unwrap();
        assert_eq!(run.total, 450);
        h.drain().await;
        let run = h.store.run(run.id).await.unwrap();
        assert_eq!((run.done, run.failed), (450, 0));
        assert!(run.finished_at.is_some());
    }
    let mut seen = HashMap::new();
    for r in h.emu.live_records("Contact") {
        if let Some(id) = r["Registry_ID__c"].as_str() {
            *seen.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 450);
    assert!(seen.values().all(|n| *n == 1));

    // A single person's Reprovision also finds the existing record.
    h.store.reprovision_person("B0007").await.unwrap();
    h.drain().await;
    assert_eq!(h.contacts_with("B0007").len(), 1);
    assert_eq!(h.state("B0007", t).await.0, ProvState::Provisioned);
}

/// One person whose data makes Salesforce refuse a whole collection call
/// (a Do Not Call mapping fed "maybe"): the plugin halves the call until
/// that person fails alone, and the other 999 are provisioned.
#[tokio::test]
async fn one_bad_person_among_a_thousand_fails_alone() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let settings = [("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("field_mappings", "DoNotCall={identifier:do-not-call}")];
    let t = h.target("Contacts", &settings, Scope::default()).await;
    let people: Vec<Person> = (0..1000)
        .map(|i| {
            let mut p = person(&format!("M{i:04}"), "Many", &format!("Person {i}"), &format!("m{i}@example.org"));
            let value = if i == 617 { "maybe" } else { "false" };
            p.identifiers.push(registry_host::domain::Identifier { kind: "do-not-call".into(), value: value.into() });
            p
        })
        .collect();
    h.store.import_people(people, |_| {}).await.unwrap();
    let before = h.api_calls();
    h.drain().await;
    let calls = h.api_calls() - before;
    assert_eq!(h.emu.live_records("Contact").iter().filter(|r| r["Registry_ID__c"].is_string()).count(), 999);
    let (state, _, message) = h.state("M0617", t).await;
    assert_eq!(state, ProvState::Failed);
    let message = message.unwrap();
    assert!(message.contains("JSON_PARSER_ERROR") && message.contains("maybe"), "{message}");
    assert_eq!(h.state("M0616", t).await.0, ProvState::Provisioned);
    assert_eq!(h.store.job_counts(Some(t)).await.unwrap(), (0, 1));
    // Five calls of 200, and the halving of one of them: 2·log2(200) more.
    println!("1,000 people, one refused: {calls} API calls");
    assert!(calls <= 5 + 16, "{calls} API calls");
}

#[tokio::test]
async fn users_are_created_deactivated_and_reactivated() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let profile = h.emu.records("Profile").into_iter().find(|p| p["Name"] == "Standard User").unwrap()["Id"].as_str().unwrap().to_string();
    let t = h.target(
        "Users",
        &[
            ("object", "User"),
            ("external_id_field", "Registry_ID__c"),
            ("profile_id", &profile),
            ("username_template", "{identifier:eppn}"),
            ("federation_identifier_type", "eppn"),
            ("inactive_action", "remove"),
        ],
        Scope::default(),
    ).await;
    let mut p = h.store.create_person(person("R300", "Katherine", "Johnson", "kjohnson@example.org")).await.unwrap();
    h.drain().await;
    let user = |h: &Harness| h.emu.live_records("User").into_iter().find(|u| u["Registry_ID__c"] == "R300").expect("the user");
    let u = user(&h);
    assert_eq!(u["Username"], "kjohnson@example.org");
    assert_eq!(u["FederationIdentifier"], "kjohnson@example.org");
    assert_eq!(u["ProfileId"], profile.as_str());
    assert_eq!(u["IsActive"], true);
    assert!(u["Alias"].as_str().unwrap().len() <= 8);
    assert_eq!(h.state("R300", t).await.1.as_deref(), u["Id"].as_str());

    // Expired: deactivated, not deleted.
    p.status = Status::Expired;
    h.store.update_person(&p).await.unwrap();
    h.drain().await;
    assert_eq!(user(&h)["IsActive"], false);
    assert_eq!(h.state("R300", t).await.0, ProvState::Removed);

    // Active again: reactivated, same user.
    p.status = Status::Active;
    h.store.update_person(&p).await.unwrap();
    h.drain().await;
    let again = user(&h);
    assert_eq!((again["IsActive"].as_bool(), again["Id"].as_str()), (Some(true), u["Id"].as_str()));

    // Deleted: deactivated and kept, as Salesforce never deletes users.
    h.store.delete_person("R300").await.unwrap();
    h.drain().await;
    assert_eq!(user(&h)["IsActive"], false);
    assert_eq!(h.emu.records("User").iter().filter(|u| u["Registry_ID__c"] == "R300").count(), 1);
}

#[tokio::test]
async fn expired_tokens_rotation_and_migration_are_handled_mid_run() {
    let h = Harness::new(GrantType::AuthorizationCode).await;
    let t = h.target("Contacts", UPSERT, Scope::default()).await;
    h.store.create_person(person("T1", "One", "First", "one@example.org")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("T1", t).await.0, ProvState::Provisioned);
    let first = h.store.tokens(h.server).await.unwrap().unwrap();

    // The access token expires: one refresh, the job retried, new tokens kept.
    h.emu.expire_access_tokens();
    for i in 2..6 {
        h.store.create_person(person(&format!("T{i}"), "Many", &format!("Person {i}"), &format!("t{i}@example.org"))).await.unwrap();
    }
    h.drain().await;
    for i in 2..6 {
        assert_eq!(h.state(&format!("T{i}"), t).await.0, ProvState::Provisioned);
    }
    let second = h.store.tokens(h.server).await.unwrap().unwrap();
    assert_ne!(second.access_token, first.access_token);
    let refreshes = h.emu.request_log().iter().filter(|r| r.path == "/services/oauth2/token").count();
    assert_eq!(refreshes, 2, "one code exchange and one shared refresh");

    // Rotation on: the new refresh token replaces the old one.
    h.emu.set_rotation(true);
    h.emu.expire_access_tokens();
    h.store.create_person(person("T6", "Rot", "Ation", "t6@example.org")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("T6", t).await.0, ProvState::Provisioned);
    let third = h.store.tokens(h.server).await.unwrap().unwrap();
    assert_ne!(third.refresh_token, second.refresh_token, "the rotated refresh token is stored");

    // The org moves: the old instance refuses, the refresh names the new one, and it is followed.
    let new_instance = h.emu.migrate().unwrap();
    h.store.create_person(person("T7", "Mig", "Ration", "t7@example.org")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("T7", t).await.0, ProvState::Provisioned);
    assert_eq!(h.store.server(h.server).await.unwrap().instance_url.as_deref(), Some(new_instance.as_str()));
    assert_eq!(h.contacts_with("T7").len(), 1);
}

#[tokio::test]
async fn a_revoked_refresh_token_makes_jobs_wait_for_a_new_token() {
    let h = Harness::new(GrantType::AuthorizationCode).await;
    let t = h.target("Contacts", UPSERT, Scope::default()).await;
    let tokens = h.store.tokens(h.server).await.unwrap().unwrap();
    h.emu.revoke_refresh_token(tokens.refresh_token.as_deref().unwrap()).unwrap();
    h.store.create_person(person("W1", "Wait", "Ing", "w1@example.org")).await.unwrap();
    h.store.create_person(person("W2", "Wait", "Too", "w2@example.org")).await.unwrap();
    h.drain().await;

    let server = h.store.server(h.server).await.unwrap();
    assert_eq!(server.token_status, TokenStatus::NeedsReauthorization);
    assert_eq!(h.store.jobs_waiting_for(h.server).await.unwrap(), 2);
    let (state, _, message) = h.state("W1", t).await;
    assert_eq!(state, ProvState::Pending);
    assert!(message.unwrap().contains("new token"));
    assert!(h.contacts_with("W1").is_empty());

    // Nothing more happens until an admin acts, however often the engine looks.
    h.drain().await;
    assert_eq!(h.store.jobs_waiting_for(h.server).await.unwrap(), 2);

    h.obtain_token().await;
    h.drain().await;
    assert_eq!(h.state("W1", t).await.0, ProvState::Provisioned);
    assert_eq!(h.state("W2", t).await.0, ProvState::Provisioned);
    assert_eq!(h.store.server(h.server).await.unwrap().token_status, TokenStatus::Set);
}

#[tokio::test]
async fn throttling_and_5xx_bursts_are_retried_with_backoff() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", UPSERT, Scope::default()).await;

    h.emu.throttle(Some(0));
    h.store.create_person(person("X1", "Throt", "Tled", "x1@example.org")).await.unwrap();
    assert_eq!(h.engine.run_once().await.unwrap(), 1);
    let (state, _, message) = h.state("X1", t).await;
    assert_eq!(state, ProvState::Pending, "kept for a retry");
    assert!(message.unwrap().contains("throttling"));
    h.emu.throttle(None);
    h.drain().await;
    assert_eq!(h.state("X1", t).await.0, ProvState::Provisioned);

    h.emu.fail_next(3, FailKind::ServerError);
    h.store.create_person(person("X2", "Five", "Hundred", "x2@example.org")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("X2", t).await.0, ProvState::Provisioned);
    let failures = h.store.history("X2", 10).await.unwrap().into_iter().filter(|e| !e.ok).count();
    assert_eq!(failures, 3, "each failed attempt is in the history");

    h.emu.fail_next(2, FailKind::UnableToLockRow);
    h.store.create_person(person("X3", "Locked", "Row", "x3@example.org")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("X3", t).await.0, ProvState::Provisioned);

    // A burst longer than max_attempts: failed and kept, with the reason.
    h.emu.fail_next(100, FailKind::ServerError);
    h.store.create_person(person("X4", "Gives", "Up", "x4@example.org")).await.unwrap();
    h.drain().await;
    let (state, _, message) = h.state("X4", t).await;
    assert_eq!(state, ProvState::Failed);
    assert!(message.unwrap().contains("gave up after 5 attempts"));
    h.emu.clear_faults();
    h.store.reprovision_person("X4").await.unwrap();
    h.drain().await;
    assert_eq!(h.state("X4", t).await.0, ProvState::Provisioned);
}

#[tokio::test]
async fn a_field_too_long_fails_the_person_by_name_and_a_fix_provisions_them() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Contacts", UPSERT, Scope::default()).await;
    let mut p = person("L1", "Long", &"x".repeat(81), "l1@example.org");
    p = h.store.create_person(p).await.unwrap();
    let before = h.api_calls();
    h.drain().await;
    let (state, _, message) = h.state("L1", t).await;
    assert_eq!(state, ProvState::Failed);
    let message = message.unwrap();
    assert!(message.contains("name.family") && message.contains("80"), "{message}");
    assert_eq!(h.api_calls(), before, "nothing was sent");
    assert!(h.contacts_with("L1").is_empty());

    p.name.family = Some("Short".into());
    h.store.update_person(&p).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("L1", t).await.0, ProvState::Provisioned);
}

#[tokio::test]
async fn scope_and_disabled_targets_decide_who_is_provisioned() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let t = h.target("Staff at example.org", UPSERT, Scope::parse("example.org", "staff")).await;
    h.store.create_person(person("S1", "In", "Scope", "in@example.org")).await.unwrap();
    let mut out = h.store.create_person(person("S2", "Out", "Side", "out@elsewhere.test")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("S1", t).await.0, ProvState::Provisioned);
    assert_eq!(h.state("S2", t).await.0, ProvState::NotInScope);
    assert!(h.contacts_with("S2").is_empty());

    // Moving into scope provisions; moving out removes.
    out.emails[0].address = "out@example.org".into();
    h.store.update_person(&out).await.unwrap();
    h.drain().await;
    assert_eq!(h.contacts_with("S2").len(), 1);
    out.emails[0].address = "out@elsewhere.test".into();
    h.store.update_person(&out).await.unwrap();
    h.drain().await;
    assert!(h.contacts_with("S2").is_empty());
    let (state, _, message) = h.state("S2", t).await;
    assert_eq!(state, ProvState::Removed, "left the scope, so the record went");
    assert!(message.unwrap().starts_with("deleted Contact"));

    // A disabled target queues but does not send.
    let mut input = TargetInput {
        name: "Staff at example.org".into(),
        plugin: "salesforce".into(),
        server_id: h.server,
        settings: UPSERT.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        enabled: false,
        scope: Scope::parse("example.org", "staff"),
    };
    h.store.update_target(t, &input).await.unwrap();
    h.store.create_person(person("S3", "Later", "On", "later@example.org")).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("S3", t).await.0, ProvState::Pending);
    assert!(h.contacts_with("S3").is_empty());
    input.enabled = true;
    h.store.update_target(t, &input).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("S3", t).await.0, ProvState::Provisioned);

    // The scope narrows: Reprovision all removes the records now outside it.
    input.scope = Scope::parse("example.org", "faculty");
    h.store.update_target(t, &input).await.unwrap();
    let run = h.store.start_run(t).await.unwrap();
    assert_eq!(run.total, 2, "S1 and S3 have records to remove");
    h.drain().await;
    assert!(h.contacts_with("S1").is_empty() && h.contacts_with("S3").is_empty());
    assert_eq!(h.store.run(run.id).await.unwrap().done, 2);
    // A deleted target keeps its history lines, with its name.
    h.store.delete_target(t).await.unwrap();
    let history = h.store.history("S1", 10).await.unwrap();
    assert!(history.iter().all(|e| e.target.as_deref() == Some("Staff at example.org")), "{history:?}");
}

/// The OAuth `state` is bound to the browser session that clicked Obtain New
/// Token: another session's callback with that state completes nothing.
#[tokio::test]
async fn obtain_new_token_completes_only_in_the_session_that_started_it() {
    let h = Harness::new(GrantType::AuthorizationCode).await;
    h.store.clear_tokens(h.server).await.unwrap();
    let authorize = h.oauth.begin(h.server, None, registry_host::store::PendingOrigin { session: "browser-a", popup: false, admin: None }).await.unwrap();
    let callback = common::at_salesforce(&authorize, &h.emu.login_url(), true).await;
    let params: HashMap<String, String> = reqwest::Url::parse(&callback).unwrap().query_pairs().into_owned().collect();
    let error = h.oauth.callback(h.server, &params, "browser-b").await.unwrap_err();
    assert!(matches!(error, registry_host::oauth::FlowError::OtherSession), "{error}");
    assert!(error.to_string().contains("started in another browser session"));
    assert!(h.store.tokens(h.server).await.unwrap().is_none(), "nothing was stored");
    // The state was single use: the right session cannot replay it either.
    let replay = h.oauth.callback(h.server, &params, "browser-a").await.unwrap_err();
    assert!(matches!(replay, registry_host::oauth::FlowError::UnknownState), "{replay}");
}

/// A target's "calls at once": with six workers and small batches, the
/// target never has more calls in flight than its cap, and everyone is
/// provisioned.
#[tokio::test]
async fn a_target_never_has_more_calls_in_flight_than_its_cap() {
    let config = EngineConfig { workers: 6, batch_max: 50, idle_poll: Duration::from_millis(20), ..EngineConfig::default() };
    let h = Harness::with_config(GrantType::ClientCredentials, config).await;
    let t = h.target("Contacts", UPSERT, Scope::default()).await;
    h.store.set_safeguards(t, &registry_host::store::Safeguards { concurrency: Some(2), ..Default::default() }, true).await.unwrap();
    // Slow enough that six workers would overlap six calls.
    h.emu.set_latency_model(Duration::from_millis(100), Duration::ZERO);
    let people: Vec<Person> = (0..600).map(|i| person(&format!("C{i:04}"), "Capped", &format!("Person {i}"), &format!("c{i}@example.org"))).collect();
    h.store.import_people(people, |_| {}).await.unwrap();
    h.engine.start().await.unwrap();
    h.engine.wake();
    let started = Instant::now();
    while h.store.job_counts(Some(t)).await.unwrap() != (0, 0) {
        assert!(started.elapsed() < Duration::from_secs(60), "the queue never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.emu.live_records("Contact").len(), 600);
    assert_eq!(h.emu.in_flight().1, 2, "at the cap, never over it (12 batches, six workers)");
}
