//! The SCIM plugin through the host against a real third-party SCIM
//! server (`scim2-server`, in-memory, bearer token): people become Users
//! and groups Groups, existing Users are taken over, a uniqueness conflict
//! fails the person alone, and a refused token stops the target for an
//! admin. After each step the server's state is read back over SCIM.

use std::collections::HashMap;
use std::sync::Arc;

use registry_host::domain::{Group, ProvState, Scope, ServerInput, Status, TargetInput, TokenStatus};
use registry_host::engine::{Engine, EngineConfig};
use registry_host::oauth::OAuth;
use registry_host::secrets::SecretBox;
use registry_host::store::Store;
use registry_plugin_runtime::latest::types::GrantType;
use registry_plugin_runtime::{Runtime, RuntimeConfig};
use serde_json::{Value, json};
use test_guests::oauth_server::OAuthServer;
use test_guests::scim_server::ScimServer;

use crate::common::person;

struct Scim {
    server: ScimServer,
    store: Arc<Store>,
    oauth: OAuth,
    engine: Arc<Engine>,
    server_id: i64,
    target: i64,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Scim {
    async fn start(settings: &[(&str, &str)]) -> Scim {
        let server = ScimServer::start("scim-secret-token");
        let input = server_input(&server.url, &server.token);
        Scim::on(server, input, settings, None).await
    }

    /// Everything on `server`, its OAuth2 server as `input`, a token
    /// obtained by its grant; the host's data on the PostgreSQL `database`,
    /// or SQLite.
    async fn on(server: ScimServer, input: ServerInput, settings: &[(&str, &str)], database: Option<&str>) -> Scim {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(match database {
            Some(url) => Store::from(registry_host::store::postgres::PgStore::connect(url, "scim", SecretBox::new(&[3; 32]), Default::default()).await.unwrap()),
            None => Store::open(dir.path(), SecretBox::load_or_create(dir.path()).unwrap()).unwrap(),
        });
        let runtime = Runtime::new(RuntimeConfig { insecure_loopback: true, ..RuntimeConfig::default() }).unwrap();
        let plugin = runtime.load_file(test_guests::scim_plugin()).await.unwrap();
        let plugins = Arc::new(HashMap::from([("scim".to_string(), plugin)]));
        let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", true);
        let server_id = store.create_server(&input).await.unwrap();
        match input.grant_type {
            GrantType::StaticBearer => drop(oauth.static_bearer(server_id).await.unwrap()),
            _ => oauth.client_credentials(server_id).await.unwrap(),
        }
        let config = EngineConfig { workers: 1, max_attempts: 3, backoff_base: std::time::Duration::from_millis(5), backoff_max: std::time::Duration::from_millis(20), idle_poll: std::time::Duration::from_millis(20), ..EngineConfig::default() };
        let engine = Engine::new(store.clone(), plugins, oauth.clone(), config);
        let target = store
            .create_target(&TargetInput {
                name: "SCIM service".into(),
                plugin: "scim".into(),
                server_id,
                settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                enabled: true,
                scope: Scope::default(),
            }).await
            .unwrap();
        engine.refresh_group_targets().await.unwrap();
        Scim { server, store, oauth, engine, server_id, target, http: reqwest::Client::new(), _dir: dir }
    }

    async fn drain(&self) {
        for _ in 0..3 {
            while self.engine.run_once().await.unwrap() > 0 {}
            while self.engine.run_group_once().await.unwrap() {}
        }
    }

    /// A SCIM GET, as the test reads the server's state back.
    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.server.url)).bearer_auth(&self.server.token).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn user(&self, external_id: &str) -> Option<Value> {
        let found = self.get(&format!("/Users?filter=externalId%20eq%20%22{external_id}%22")).await;
        found["Resources"].as_array().and_then(|r| r.first()).cloned()
    }

    async fn state(&self, person: &str) -> (ProvState, Option<String>, Option<String>) {
        let s = self.store.person_states(person).await.unwrap().into_iter().find(|s| s.target_id == self.target).expect("a state");
        (s.state, s.remote_id, s.message)
    }
}

/// The OAuth2 server for a SCIM service: its base URL, the pasted token.
fn server_input(url: &str, token: &str) -> ServerInput {
    ServerInput {
        name: "SCIM".into(),
        description: String::new(),
        plugin: "scim".into(),
        server_url: url.into(),
        client_id: String::new(),
        client_secret: Some(token.into()),
        grant_type: GrantType::StaticBearer,
        scope: None,
        api_hosts: vec![],
        jwt_subject: None,
        token_url: None,
    }
}

fn group(name: &str) -> Group {
    let mut g = Group { id: String::new(), name: name.into(), description: None };
    g.normalize().unwrap();
    g
}

#[tokio::test]
async fn people_and_groups_are_provisioned_to_a_real_scim_server() {
    people_and_groups(None).await;
}

/// The same with the host's data on PostgreSQL: groups, their jobs and
/// members-changed through the shared database's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_and_groups_are_provisioned_to_a_real_scim_server_from_postgres() {
    let Some(url) = crate::pg::database().await else { return };
    people_and_groups(Some(&url)).await;
}

async fn people_and_groups(database: Option<&str>) {
    let server = ScimServer::start("scim-secret-token");
    let input = server_input(&server.url, &server.token);
    let settings = [("attribute_mappings", "nickName={given}; urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter={identifier:eppn}")];
    let s = Scim::on(server, input, &settings, database).await;
    // A User that exists already (made by someone else): taken over, not duplicated.
    let r = s.http.post(format!("{}/Users", s.server.url)).bearer_auth(&s.server.token)
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "grace@example.org"}))
        .send().await.unwrap();
    assert_eq!(r.status(), 201);
    let graces: Value = r.json().await.unwrap();

    for (id, given, family) in [("S1", "Ada", "Lovelace"), ("S2", "Grace", "Hopper"), ("S3", "Edsger", "Dijkstra")] {
        s.store.create_person(person(id, given, family, &format!("{}@example.org", given.to_lowercase()))).await.unwrap();
    }
    s.drain().await;
    let ada = s.user("S1").await.expect("Ada's User");
    assert_eq!(ada["userName"], "ada@example.org");
    assert_eq!(ada["name"]["familyName"], "Lovelace");
    assert_eq!(ada["active"], true);
    assert_eq!(ada["nickName"], "Ada", "the target's attribute mappings apply");
    assert_eq!(ada["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["costCenter"], "ada@example.org");
    assert_eq!(s.state("S1").await.1.as_deref(), ada["id"].as_str());
    let grace = s.user("S2").await.expect("Grace's User");
    assert_eq!(grace["id"], graces["id"], "the existing User was taken over");
    assert!(s.state("S2").await.2.unwrap().starts_with("matched existing User"));
    assert_eq!(s.get("/Users").await["totalResults"], 3, "nobody twice");

    // A group with two members: a Group with their Users.
    let lab = s.store.create_group(group("Lab"), &["S1".into(), "S2".into()]).await.unwrap();
    s.drain().await;
    let groups = s.get("/Groups").await;
    let g = groups["Resources"].as_array().unwrap().iter().find(|g| g["displayName"] == "Lab").expect("the Group").clone();
    let gid = g["id"].as_str().unwrap().to_string();
    let members = |g: &Value| -> Vec<String> {
        let mut m: Vec<String> = g["members"].as_array().into_iter().flatten().map(|m| m["value"].as_str().unwrap().to_string()).collect();
        m.sort();
        m
    };
    let mut want = vec![ada["id"].as_str().unwrap().to_string(), grace["id"].as_str().unwrap().to_string()];
    want.sort();
    assert_eq!(members(&g), want);

    // Renamed, one leaves and one joins: a PATCH (the server takes it).
    s.store.update_group(&Group { name: "Lab crew".into(), ..lab.clone() }, Some(&["S1".to_string(), "S3".to_string()])).await.unwrap();
    s.drain().await;
    let g = s.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["displayName"], "Lab crew");
    let edsger = s.user("S3").await.unwrap();
    let mut want = vec![ada["id"].as_str().unwrap().to_string(), edsger["id"].as_str().unwrap().to_string()];
    want.sort();
    assert_eq!(members(&g), want);

    // Updated, expired (deactivated), deleted (deactivated by default).
    let mut p = s.store.person("S1").await.unwrap();
    p.name.family = Some("King".into());
    s.store.update_person(&p).await.unwrap();
    s.drain().await;
    assert_eq!(s.user("S1").await.unwrap()["name"]["familyName"], "King");
    p.status = Status::Expired;
    s.store.update_person(&p).await.unwrap();
    s.drain().await;
    assert_eq!(s.user("S1").await.unwrap()["active"], false);
    assert_eq!(s.state("S1").await.0, ProvState::Removed);
    s.store.delete_person("S3").await.unwrap();
    s.drain().await;
    assert_eq!(s.user("S3").await.unwrap()["active"], false, "deactivated, the default");

    // The group deleted: the Group goes.
    s.store.delete_group(&lab.id).await.unwrap();
    s.drain().await;
    let r = s.http.get(format!("{}/Groups/{gid}", s.server.url)).bearer_auth(&s.server.token).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_uniqueness_conflict_fails_one_person_and_a_refused_token_waits_for_an_admin() {
    let s = Scim::start(&[("match_existing", "false"), ("on_remove", "delete")]).await;
    s.store.create_person(person("U1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    s.drain().await;
    // Same userName, no matching: the server says uniqueness (409).
    s.store.create_person(person("U2", "Ada", "Other", "ada@example.org")).await.unwrap();
    s.store.create_person(person("U3", "Grace", "Hopper", "grace@example.org")).await.unwrap();
    s.drain().await;
    let (state, _, message) = s.state("U2").await;
    assert_eq!(state, ProvState::Failed, "{message:?}");
    assert!(message.unwrap().contains("uniqueness"));
    assert_eq!(s.state("U3").await.0, ProvState::Provisioned, "the others go on");
    assert!(s.state("U3").await.2.unwrap().ends_with("(SCIM bulk)"), "the two new people went in one /Bulk request");

    // Deleted with on_remove = delete: the User goes.
    s.store.delete_person("U1").await.unwrap();
    s.drain().await;
    assert!(s.user("U1").await.is_none());

    // The service stops taking the token: 401, and the server needs an admin.
    s.store.update_server(s.server_id, &server_input(&s.server.url, "a-token-the-server-never-issued")).await.unwrap();
    s.oauth.static_bearer(s.server_id).await.unwrap();
    let mut p = s.store.person("U3").await.unwrap();
    p.name.family = Some("Murray Hopper".into());
    s.store.update_person(&p).await.unwrap();
    s.drain().await;
    let server = s.store.server(s.server_id).await.unwrap();
    assert_eq!(server.token_status, TokenStatus::NeedsReauthorization, "{:?}", server.last_error);
    assert!(server.last_error.unwrap().contains("paste a new one"));
    assert_eq!(s.user("U3").await.unwrap()["name"]["familyName"], "Hopper", "nothing was sent with the bad token");
}

/// The server the tests rely on, checked once by a third party's RFC
/// compliance suite: what the plugin assumes of a SCIM service, this one
/// does.
#[test]
fn scim2_tester_finds_the_test_server_compliant() {
    let server = ScimServer::start("compliance-token");
    let (output, ok) = server.check_compliance();
    assert!(ok, "{output}");
    assert!(output.contains(" checks, 0 found"), "{output}");
}

/// Both plugins loaded side by side in one host: a Salesforce target and a
/// SCIM target provision the same people, each its own way.
#[tokio::test]
async fn both_plugins_provision_the_same_people_side_by_side() {
    use salesforce_emulator::{Emulator, Seed};
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    let scim = ScimServer::start("side-by-side");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SecretBox::load_or_create(dir.path()).unwrap()).unwrap());
    let runtime = Runtime::new(RuntimeConfig { insecure_loopback: true, ..RuntimeConfig::default() }).unwrap();
    let plugins = Arc::new(HashMap::from([
        ("salesforce".to_string(), runtime.load_file(test_guests::salesforce_plugin()).await.unwrap()),
        ("scim".to_string(), runtime.load_file(test_guests::scim_plugin()).await.unwrap()),
    ]));
    let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", true);
    let sf = store.create_server(&crate::common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials)).await.unwrap();
    oauth.client_credentials(sf).await.unwrap();
    let sc = store.create_server(&server_input(&scim.url, &scim.token)).await.unwrap();
    oauth.static_bearer(sc).await.unwrap();
    let target = |name: &str, plugin: &str, server_id: i64, settings: &[(&str, &str)]| {
        let input = TargetInput { name: name.into(), plugin: plugin.into(), server_id, settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), enabled: true, scope: Scope::default() };
        store.sqlite().expect("SQLite").create_target(&input).unwrap()
    };
    let to_sf = target("Salesforce", "salesforce", sf, &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("bulk_threshold", "0")]);
    let to_scim = target("SCIM", "scim", sc, &[]);
    let engine = Engine::new(store.clone(), plugins, oauth, EngineConfig { workers: 1, ..EngineConfig::default() });
    engine.refresh_group_targets().await.unwrap();
    for i in 0..25 {
        store.create_person(person(&format!("B{i:02}"), "Both", &format!("Person {i}"), &format!("both{i}@example.org"))).await.unwrap();
    }
    for _ in 0..3 {
        while engine.run_once().await.unwrap() > 0 {}
        while engine.run_group_once().await.unwrap() {}
    }
    for i in 0..25 {
        let id = format!("B{i:02}");
        let states = store.person_states(&id).await.unwrap();
        for t in [to_sf, to_scim] {
            let s = states.iter().find(|s| s.target_id == t).unwrap();
            assert_eq!(s.state, ProvState::Provisioned, "{id} on target {t}: {:?}", s.message);
        }
    }
    assert_eq!(emu.live_records("Contact").iter().filter(|c| c["Registry_ID__c"].as_str().is_some_and(|r| r.starts_with('B'))).count(), 25);
    let http = reqwest::Client::new();
    let users: Value = http.get(format!("{}/Users?count=100", scim.url)).bearer_auth(&scim.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(users["totalResults"], 25);
}

/// `registry-host plugin test` for a plugin that takes a pasted token: its
/// checks run against a SCIM service (`--scim-url`, `--scim-token`), here
/// scim2-server, and the SCIM plugin passes them.
#[tokio::test]
async fn the_conformance_run_passes_the_scim_plugin_against_a_scim_server() {
    use registry_plugin_testbed::conformance::{self, Status};
    let server = ScimServer::start("conformance-token");
    let bed = registry_plugin_testbed::TestBed::start(test_guests::scim_plugin())
        .await
        .unwrap()
        .with_scim(registry_plugin_testbed::ScimService { url: server.url.clone(), token: server.token.clone() });
    let report = conformance::run(&bed, &[]).await;
    let text = report.to_text();
    assert_eq!(report.failed, 0, "{text}");
    for check in [
        "oauth.client-credentials",
        "oauth.static-bearer",
        "oauth.check-connection",
        "provision.create",
        "provision.repeat",
        "provision.update",
        "provision.delete",
        "provision.group",
        "errors.invalid-person",
        "errors.unauthorized",
        "sandbox.allowlist",
    ] {
        assert!(report.checks.iter().any(|c| c.name == check && c.status == Status::Pass), "{check} did not pass:\n{text}");
    }
    // Without a service, the checks that need a token are skipped, not failed.
    let bare = registry_plugin_testbed::TestBed::start(test_guests::scim_plugin()).await.unwrap();
    let report = conformance::run(&bare, &[]).await;
    assert_eq!(report.failed, 0, "{}", report.to_text());
    assert!(report.checks.iter().any(|c| c.name == "oauth.static-bearer" && c.status == Status::Skip && c.detail.contains("--scim-url")));
}

/// OAuth2 client credentials: the SCIM plugin gets its token from a real
/// authorization server at the Token URL (the client in HTTP Basic), and
/// the SCIM service takes it. Wrong credentials name the field to fix and
/// store nothing.
#[tokio::test]
async fn a_scim_service_behind_an_authorization_server_takes_client_credentials() {
    let token = "issued-by-the-authorization-server";
    let auth = OAuthServer::start("registry-app", "client s3cret", token);
    let scim = ScimServer::start(token);
    let mut input = server_input(&scim.url, "");
    input.grant_type = GrantType::ClientCredentials;
    input.client_id = "registry-app".into();
    input.client_secret = Some("client s3cret".into());
    input.scope = Some("scim.write".into());
    input.token_url = Some(auth.token_url.clone());
    let s = Scim::on(scim, input.clone(), &[], None).await;

    let server = s.store.server(s.server_id).await.unwrap();
    assert_eq!((server.token_status, server.instance_url.as_deref()), (TokenStatus::Set, Some(s.server.url.as_str())), "the token is for the SCIM base URL");
    let asked = auth.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].grant_type.as_str(), asked[0].scope.as_deref(), asked[0].client_id.as_deref(), asked[0].auth.as_str(), asked[0].ok), ("client_credentials", Some("scim.write"), Some("registry-app"), "basic", true));

    s.store.create_person(person("C1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    s.drain().await;
    let (state, remote, message) = s.state("C1").await;
    assert_eq!(state, ProvState::Provisioned, "{message:?}");
    let user = s.user("C1").await.expect("the User is in the SCIM server");
    assert_eq!((user["userName"].as_str(), user["id"].as_str()), (Some("ada@example.org"), remote.as_deref()));

    // A wrong secret (saving it clears the held token): the refusal names
    // the Client Secret, in HTTP Basic and then in the body, and the
    // server waits for an admin instead of asking again at every job.
    input.client_secret = Some("wrong".into());
    s.store.update_server(s.server_id, &input).await.unwrap();
    let refused = s.oauth.client_credentials(s.server_id).await.unwrap_err().to_string();
    assert!(refused.contains("refused the Client ID and Client Secret") && refused.contains("invalid_client"), "{refused}");
    let server = s.store.server(s.server_id).await.unwrap();
    assert_eq!(server.token_status, TokenStatus::NeedsReauthorization);
    assert!(server.last_error.as_deref().is_some_and(|e| e.contains("Client Secret")), "{:?}", server.last_error);
    let asked = auth.requests();
    assert_eq!(asked[1..].iter().map(|r| (r.auth.as_str(), r.ok)).collect::<Vec<_>>(), vec![("basic", false), ("body", false)]);
    s.store.create_person(person("C2", "Grace", "Hopper", "grace@example.org")).await.unwrap();
    s.drain().await;
    assert_eq!(auth.requests().len(), 3, "no job asks the authorization server again");

    // Without a Token URL the plugin says which field is missing.
    input.client_secret = Some("client s3cret".into());
    input.token_url = None;
    s.store.update_server(s.server_id, &input).await.unwrap();
    let missing = s.oauth.client_credentials(s.server_id).await.unwrap_err().to_string();
    assert!(missing.contains("token-url") || missing.contains("Token URL"), "{missing}");
    assert_eq!(auth.requests().len(), 3, "nothing was sent without a Token URL");
}
