//! Helpers shared by the host's integration tests: the browser's part of the
//! authorization code flow at the emulator, done with plain form posts; a
//! demo host; the emulator as an OAuth2 server; people.

use std::path::PathBuf;

use registry_host::domain::{Person, ServerInput};
use registry_host::serve::{Running, ServeConfig};
use registry_plugin_runtime::RuntimeConfig;
use registry_plugin_runtime::latest::types::GrantType;
use salesforce_emulator::Emulator;

/// Opens `authorize`, logs in as the demo user, clicks Allow (or Deny), and
/// returns where the emulator redirects the browser (the client's callback).
pub async fn at_salesforce(authorize: &str, login_url: &str, allow: bool) -> String {
    registry_plugin_testbed::consent_at(authorize, login_url, allow).await.unwrap()
}

/// An OAuth2 server, as an admin would enter it, for the emulator's demo
/// connected app and `plugin`.
pub fn emulator_server(emulator: &Emulator, plugin: &str, grant_type: GrantType) -> ServerInput {
    let mut input = ServerInput::for_config("Emulator", plugin, &registry_plugin_testbed::emulator_server(emulator, grant_type));
    // The emulator's instances are on loopback (any port: an org may migrate).
    input.api_hosts = vec!["127.0.0.1".into()];
    input
}

/// An active person with an official, verified `email` (also their eppn)
/// and a staff role in Research.
pub fn person(id: &str, given: &str, family: &str, email: &str) -> Person {
    Person::example(id, given, family, email)
}

/// `serve --demo` in-process on a free port, with a fresh data directory
/// (kept alive by the returned guard).
pub async fn demo_host() -> (Running, tempfile::TempDir) {
    demo_host_with(Default::default()).await
}

/// [`demo_host`] with the web server's limits set.
pub async fn demo_host_with(web: registry_host::web::WebLimits) -> (Running, tempfile::TempDir) {
    demo_host_config(web, fast_engine()).await
}

/// The tests' engine: retries in milliseconds.
pub fn fast_engine() -> registry_host::engine::EngineConfig {
    registry_host::engine::EngineConfig { backoff_base: std::time::Duration::from_millis(50), backoff_max: std::time::Duration::from_millis(500), idle_poll: std::time::Duration::from_millis(100), ..Default::default() }
}

/// [`demo_host`] with the web limits and the engine as given.
pub async fn demo_host_config(web: registry_host::web::WebLimits, engine: registry_host::engine::EngineConfig) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let host = registry_host::serve::start(ServeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        plugins: vec![PathBuf::from(test_guests::salesforce_plugin())],
        runtime: RuntimeConfig::default(),
        demo: true,
        engine,
        web,
        database: None,
    })
    .await
    .unwrap();
    (host, dir)
}

/// Each Registry ID among the emulator's live Contacts, with how many
/// Contacts carry it.
pub fn registry_ids(emu: &Emulator) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for r in emu.live_records("Contact") {
        if let Some(id) = r["Registry_ID__c"].as_str() {
            *seen.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

/// `job` done: its person has Contact `R<id>` there.
pub fn done(job: &registry_host::domain::Job) -> registry_host::domain::Done {
    registry_host::domain::Done { job: job.clone(), remote: Some(("Contact".into(), format!("R{}", job.person_id))), summary: "ok".into(), removed: false, usage: None }
}
