//! The instance URL a token set names becomes an allowed origin for every
//! later call, with the bearer token and people's data: it is kept only if
//! the plugin's declared API hosts and the server's own list both allow it.

use std::collections::HashMap;
use std::sync::Arc;

use registry_host::domain::ServerInput;
use registry_host::oauth::{FlowError, OAuth};
use registry_host::secrets::SecretBox;
use registry_host::store::Store;
use registry_plugin_runtime::latest::types::GrantType;
use registry_plugin_runtime::{Plugin, Runtime, RuntimeConfig};
use salesforce_emulator::{Emulator, Seed};

use crate::common;

async fn load(path: &std::path::Path) -> Plugin {
    let runtime = Runtime::new(RuntimeConfig { insecure_loopback: true, ..RuntimeConfig::default() }).unwrap();
    runtime.load_file(path).await.unwrap()
}

fn server(name: &str, plugin: &str, server_url: &str, scope: &str, api_hosts: &[&str]) -> ServerInput {
    ServerInput {
        name: name.into(),
        description: String::new(),
        plugin: plugin.into(),
        server_url: server_url.into(),
        client_id: "client".into(),
        client_secret: Some("secret".into()),
        grant_type: GrantType::ClientCredentials,
        scope: Some(scope.into()),
        api_hosts: api_hosts.iter().map(|h| h.to_string()).collect(),
        jwt_subject: None,
        token_url: None,
    }
}

/// A hostile plugin makes up the token set itself: whatever instance it
/// names outside its declared hosts (`*.salesforce.com`) and the server's is
/// refused, named, and nothing is stored.
#[tokio::test]
async fn a_plugin_made_instance_url_outside_the_api_hosts_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SecretBox::new(&[7; 32])).unwrap());
    let hostile = load(test_guests::hostile_http()).await;
    let name = hostile.name().to_string();
    let oauth = OAuth::new(store.clone(), Arc::new(HashMap::from([(name.clone(), hostile)])), "http://127.0.0.1:9", true);
    let refused = [
        ("https://attacker.invalid", &["*.salesforce.com"][..]),
        ("https://salesforce.com.evil.example", &["*.salesforce.com"][..]),
        ("https://acme.my.salesforce.com.evil.example", &["*.salesforce.com"][..]),
        // The plugin's own declaration vouches for nothing: the server lists none.
        ("https://acme.salesforce.com", &[][..]),
        // The admin listed it, but the plugin does not declare it.
        ("https://attacker.invalid", &["attacker.invalid"][..]),
        // In the plugin's hosts, but the admin narrowed the server's.
        ("https://other.my.salesforce.com", &["acme.my.salesforce.com"][..]),
        // Another loopback port than the one the server names.
        ("http://127.0.0.1:2", &["127.0.0.1:1"][..]),
    ];
    for (i, (url, hosts)) in refused.iter().enumerate() {
        let id = store.create_server(&server(&format!("S{i}"), &name, "https://login.salesforce.com", &format!("instance={url}"), hosts)).await.unwrap();
        let error = oauth.client_credentials(id).await.expect_err(url);
        assert!(matches!(error, FlowError::UntrustedInstance(_)), "{url}: {error}");
        let origin = registry_plugin_runtime::Origin::of_url(url).unwrap().to_string();
        assert!(error.to_string().contains(&origin), "{url}: {error}");
        assert!(store.tokens(id).await.unwrap().is_none(), "{url}: nothing is stored");
        assert!(store.server(id).await.unwrap().last_error.unwrap().contains(&origin), "{url}: the server page says why");
    }
    let id = store.create_server(&server("Good", &name, "https://login.salesforce.com", "instance=https://acme.my.salesforce.com", &["*.my.salesforce.com"])).await.unwrap();
    oauth.client_credentials(id).await.unwrap();
    assert_eq!(store.tokens(id).await.unwrap().unwrap().instance_url.as_deref(), Some("https://acme.my.salesforce.com"));
    // Narrowing the server's list afterwards stops every later call to the
    // stored instance, not only the next token.
    let config = store.server_config(id).await.unwrap();
    let tokens = store.tokens(id).await.unwrap();
    assert!(oauth.allowlist(id, &config, tokens.as_ref()).await.is_ok());
    let mut narrowed = server("Good", &name, "https://login.salesforce.com", "instance=https://acme.my.salesforce.com", &["other.my.salesforce.com"]);
    narrowed.client_secret = None;
    assert!(store.update_server(id, &narrowed).await.unwrap().tokens_cleared);
    let error = oauth.allowlist(id, &config, tokens.as_ref()).await.unwrap_err().to_string();
    assert!(error.contains("https://acme.my.salesforce.com:443 is not one of the OAuth2 server's API hosts"), "{error}");
}

/// The real plugin against the emulator: its instance is on another
/// loopback port than the login host; a server that names another port does
/// not get the token (and Test Connection has nothing to send anywhere).
#[tokio::test]
async fn a_token_response_naming_another_loopback_port_is_refused() {
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SecretBox::new(&[7; 32])).unwrap());
    let oauth = OAuth::new(store.clone(), Arc::new(HashMap::from([("salesforce".to_string(), load(test_guests::salesforce_plugin()).await)])), "http://127.0.0.1:9", true);
    let instance = emu.instance_url();
    let port: u16 = instance.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    let mut elsewhere = common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials);
    elsewhere.api_hosts = vec![format!("127.0.0.1:{}", port.wrapping_add(1))];
    let id = store.create_server(&elsewhere).await.unwrap();
    let error = oauth.client_credentials(id).await.unwrap_err().to_string();
    assert!(error.contains("is not one of the OAuth2 server's API hosts"), "{error}");
    assert!(store.tokens(id).await.unwrap().is_none());
    assert!(matches!(oauth.test_connection(id).await, Err(FlowError::NoTokens)));

    let mut exact = common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials);
    exact.name = "Exact".into();
    exact.api_hosts = vec![format!("127.0.0.1:{port}")];
    let id = store.create_server(&exact).await.unwrap();
    oauth.client_credentials(id).await.unwrap();
    assert!(oauth.test_connection(id).await.is_ok());
}

/// Tokens stored before the rule (or before the plugin narrowed its own
/// hosts) are not trusted by the engine either: it drops them, the server
/// page says why, and the jobs wait for a token instead of failing for good.
#[tokio::test]
async fn the_engine_drops_stored_tokens_whose_instance_is_no_longer_trusted() {
    use registry_host::domain::{ProvState, Scope, TargetInput};
    use registry_host::engine::{Engine, EngineConfig};
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SecretBox::new(&[7; 32])).unwrap());
    let plugins = Arc::new(HashMap::from([("salesforce".to_string(), load(test_guests::salesforce_plugin()).await)]));
    let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", true);
    let mut input = common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials);
    let id = store.create_server(&input).await.unwrap();
    oauth.client_credentials(id).await.unwrap();
    let tokens = store.tokens(id).await.unwrap().unwrap();
    // The same tokens, held as if from before the server had API hosts.
    input.api_hosts.clear();
    input.client_secret = None;
    assert!(store.update_server(id, &input).await.unwrap().tokens_cleared);
    store.save_tokens(id, &tokens).await.unwrap();
    let target = store
        .create_target(&TargetInput { name: "T".into(), plugin: "salesforce".into(), server_id: id, settings: vec![], enabled: true, scope: Scope::default() }).await
        .unwrap();
    store.create_person(common::person("U1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    let engine = Engine::new(store.clone(), plugins, oauth, EngineConfig::default());
    assert_eq!(engine.run_once().await.unwrap(), 1);

    assert!(store.tokens(id).await.unwrap().is_none(), "the untrusted tokens are dropped");
    let server = store.server(id).await.unwrap();
    assert!(server.last_error.as_deref().unwrap_or("").contains("lists no API hosts"), "{:?}", server.last_error);
    let state = store.person_states("U1").await.unwrap().into_iter().find(|s| s.target_id == target).unwrap();
    assert_eq!(state.state, ProvState::Pending, "waiting, not failed");
    assert!(state.message.unwrap_or_default().starts_with("waiting for a token"));
    assert!(emu.live_records("Contact").is_empty(), "nothing went to the instance");
}
