//! A node's plugin calls on a shared database: each call renews its own
//! jobs' leases first, so a node that lost its jobs in the middle of a
//! batch (it stalled past its leases, and another node took them back)
//! makes no further call for them and records nothing for the calls it
//! made meanwhile: the jobs are the other nodes' to run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_host::domain::{Person, Scope, TargetInput};
use registry_host::engine::{Engine, EngineConfig};
use registry_host::oauth::OAuth;
use registry_host::store::Store;
use registry_plugin_runtime::latest::types::GrantType;
use registry_plugin_runtime::{Runtime, RuntimeConfig};
use salesforce_emulator::{Emulator, Seed};

use crate::pg::{connect, database, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_taken_back_in_the_middle_of_a_batch_get_no_further_call() {
    let Some(url) = database().await else { return };
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    let a = Arc::new(Store::from(node(&url, "a", 60_000).await));
    let b = node(&url, "b", 60_000).await;
    // The example plugin has no batch call: a claim of six is six calls,
    // one after another.
    let runtime = Runtime::new(RuntimeConfig { insecure_loopback: true, ..RuntimeConfig::default() }).unwrap();
    let plugin = runtime.load_file(test_guests::example_plugin()).await.unwrap();
    let name = plugin.name().to_string();
    let plugins = Arc::new(HashMap::from([(name.clone(), plugin)]));
    let server = a.create_server(&crate::common::emulator_server(&emu, &name, GrantType::ClientCredentials)).await.unwrap();
    let target = a.create_target(&TargetInput { name: "Contacts".into(), plugin: name, server_id: server, settings: vec![], enabled: true, scope: Scope::default() }).await.unwrap();
    let people: Vec<Person> = (0..6).map(|i| Person::example(&format!("M{i}"), "Mid", &format!("Batch{i}"), &format!("m{i}@example.org"))).collect();
    a.import_people(people, |_| {}).await.unwrap();
    let oauth = OAuth::new(a.clone(), plugins.clone(), "http://127.0.0.1:9", true);
    let engine = Engine::new(a.clone(), plugins, oauth, EngineConfig { workers: 1, batch_max: 6, ..EngineConfig::default() });
    // Each call takes a while, so the batch is still going when node a
    // loses its jobs.
    emu.set_latency(Duration::from_millis(300));
    let upserts = || emu.request_log().into_iter().filter(|r| r.path.contains("/sobjects/")).count();
    let db = connect(&url).await;
    let batch = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_once().await.unwrap() }
    });
    let started = Instant::now();
    while upserts() == 0 {
        if started.elapsed() > Duration::from_secs(30) {
            let paths: Vec<String> = emu.request_log().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect();
            let jobs: Vec<(String, String, Option<String>)> =
                db.query("SELECT person_id, state, last_error FROM jobs ORDER BY id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
            panic!("no call reached the emulator: {paths:?}, jobs {jobs:?}, batch over: {}", batch.is_finished());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Node a's leases ran out (as if it stalled) and another node's rescue
    // took every job back: queued again, no node's. One statement, where
    // the rescuer takes them one by one: a lease node a renews between
    // two of them would make the test's count depend on timing.
    let taken = db
        .execute("UPDATE jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, rescues = rescues + 1 WHERE claimed_by = 'a' AND state = 'running'", &[])
        .await
        .unwrap();
    assert_eq!(taken, 6);
    assert_eq!(batch.await.unwrap(), 6, "node a's batch was six jobs");
    let made = upserts();
    assert!((1..=2).contains(&made), "node a called only until its next lease check: {made} of 6 calls");
    // Nothing recorded by node a: all six are queued again, none failed,
    // none done, for whichever node claims them next.
    assert_eq!(a.job_counts(Some(target)).await.unwrap(), (6, 0));
    let claimed = b.claim_for(10, &[], &[]).await.unwrap();
    assert_eq!(claimed.len(), 6, "the jobs are node b's to run");
}
