//! Salesforce's Bulk API 2.0 through the host, the real plugin and the
//! emulator: a large batch goes as one job, the host polls it, and each
//! person's outcome comes from the job's result files (the ones Salesforce
//! refuses fail alone, with its error).

use std::time::{Duration, Instant};

use registry_host::domain::{Person, ProvState, Scope};
use registry_host::engine::EngineConfig;
use registry_plugin_runtime::latest::types::GrantType;

use crate::provisioning::Harness;

const BULK: &[(&str, &str)] = &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("bulk_threshold", "2000")];
const PEOPLE: usize = 5000;

#[tokio::test]
async fn five_thousand_people_go_as_two_bulk_jobs_and_the_refused_ones_fail_alone() {
    // Jobs of 2,500 people (the plugin asks for 50,000): two jobs at
    // Salesforce at once, each polled and settled on its own.
    let config = EngineConfig { workers: 1, idle_poll: Duration::from_millis(20), bulk_batch_max: 2500, ..EngineConfig::default() };
    let h = Harness::with_config(GrantType::ClientCredentials, config).await;
    h.emu.set_bulk_processing(Duration::from_millis(300), Duration::ZERO);
    let target = h.target("Bulk", BULK, Scope::default()).await;
    // Every 500th has an address the registry and the plugin take, and
    // Salesforce refuses (a character it does not allow before the @).
    let people: Vec<Person> = (0..PEOPLE)
        .map(|i| {
            let email = if i % 500 == 7 { format!("b(ad){i}@example.org") } else { format!("p{i}@example.org") };
            Person::example(&format!("K{i:05}"), "Bulk", &format!("Person {i}"), &email)
        })
        .collect();
    h.store.import_people(people, |_| {}).await.unwrap();
    h.emu.clear_request_log();

    h.drain().await;
    let (batches, held) = h.store.bulk_in_flight().await.unwrap();
    assert_eq!((batches, held), (2, PEOPLE as i64), "two batches, all 5,000 people, with Salesforce");
    let started = Instant::now();
    while h.store.bulk_in_flight().await.unwrap().0 > 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the job never finished");
        if !h.engine.poll_bulk_once().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let refused: Vec<usize> = (0..PEOPLE).filter(|i| i % 500 == 7).collect();
    for i in 0..PEOPLE {
        let (state, remote, message) = h.state(&format!("K{i:05}"), target).await;
        if refused.contains(&i) {
            assert_eq!(state, ProvState::Failed, "K{i:05}");
            let m = message.unwrap_or_default();
            assert!(m.contains("INVALID_EMAIL_ADDRESS") && m.contains("invalid email address"), "Salesforce's error: {m}");
        } else {
            assert_eq!(state, ProvState::Provisioned, "K{i:05}: {message:?}");
            assert!(remote.is_some_and(|r| r.starts_with("003")));
        }
    }
    assert_eq!(h.emu.live_records("Contact").len(), PEOPLE - refused.len());
    assert_eq!(h.emu.bulk_jobs().len(), 2, "two Bulk API jobs");
    let calls: Vec<String> = h.emu.request_log().into_iter().filter(|r| r.api_call).map(|r| format!("{} {}", r.method, r.path)).collect();
    // Per job: create, upload, close; the polls; the result files that can
    // hold someone.
    assert!(calls.len() <= 20, "{} calls: {calls:#?}", calls.len());
    assert!(calls.iter().all(|c| c.contains("/jobs/ingest")), "{calls:#?}");
    assert_eq!(h.store.job_counts(Some(target)).await.unwrap(), (0, refused.len() as i64));
}
