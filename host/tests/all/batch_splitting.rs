//! A batch that a plugin fails as a whole because of one person: the engine
//! halves it until that person fails alone, whatever the plugin.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use registry_host::domain::{ProvState, Scope, ServerInput, TargetInput};
use registry_host::engine::{Engine, EngineConfig};
use registry_host::oauth::OAuth;
use registry_host::secrets::SecretBox;
use registry_host::store::Store;
use registry_plugin_runtime::latest::types::{GrantType, TokenSet};
use registry_plugin_runtime::{Runtime, RuntimeConfig};

#[tokio::test]
async fn a_plugin_that_traps_on_one_person_fails_only_that_person() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), SecretBox::new(&[5; 32])).unwrap());
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime.load_file(test_guests::hostile_poison()).await.unwrap();
    let name = plugin.name().to_string();
    let plugins = Arc::new(HashMap::from([(name.clone(), plugin)]));
    let server = store
        .create_server(&ServerInput::example("Records", &name, GrantType::AuthorizationCode)).await
        .unwrap();
    let tokens = TokenSet {
        access_token: "a".into(),
        refresh_token: None,
        instance_url: None,
        issued_at: None,
        expires_at: None,
        scope: None,
        token_type: "Bearer".into(),
        extra: vec![],
    };
    store.save_tokens(server, &tokens).await.unwrap();
    let target = store.create_target(&TargetInput { name: "T".into(), plugin: name, server_id: server, settings: vec![], enabled: true, scope: Scope::default() }).await.unwrap();
    let people = (0..1000).map(|i| {
        let given = if i == 333 { "Poison" } else { "Fine" };
        crate::common::person(&format!("Q{i:04}"), given, "Person", &format!("q{i}@example.org"))
    });
    store.import_people(people.collect(), |_| {}).await.unwrap();

    let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", false);
    let config = EngineConfig { workers: 1, batch_max: 1000, max_attempts: 1, backoff_base: Duration::from_millis(1), ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), plugins, oauth, config);
    assert_eq!(engine.run_once().await.unwrap(), 1000, "one batch of a thousand");
    assert_eq!(engine.run_once().await.unwrap(), 0);

    let lite = store.sqlite().expect("the tests' store is SQLite");
    let state = |id: &str| lite.person_states(id).unwrap().into_iter().find(|s| s.target_id == target).unwrap();
    let poisoned = state("Q0333");
    assert_eq!(poisoned.state, ProvState::Failed);
    let why = poisoned.message.unwrap();
    assert!(why.contains("cannot handle person Q0333"), "{why}");
    for id in ["Q0000", "Q0332", "Q0334", "Q0999"] {
        let s = state(id);
        assert_eq!((s.state, s.remote_id.as_deref()), (ProvState::Provisioned, Some(format!("R-{id}").as_str())), "{id}");
    }
    assert_eq!(store.job_counts(Some(target)).await.unwrap(), (0, 1));
}
