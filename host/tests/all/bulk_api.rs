//! Salesforce's Bulk API 2.0 through the host, the real plugin and the
//! emulator: a large batch goes as one job, the host polls it, and each
//! person's outcome comes from the job's result files (the ones Salesforce
//! refuses fail alone, with its error).

use std::time::{Duration, Instant};

use registry_host::domain::{Person, ProvState, Scope};
use registry_plugin_runtime::latest::types::GrantType;

use crate::provisioning::Harness;

const BULK: &[(&str, &str)] = &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("bulk_threshold", "2000")];
const PEOPLE: usize = 5000;

#[tokio::test]
async fn five_thousand_people_go_as_one_bulk_job_and_the_refused_ones_fail_alone() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    h.emu.set_bulk_processing(Duration::from_millis(300), Duration::ZERO);
    let target = h.target("Bulk", BULK, Scope::default());
    // Every 500th has an address the registry and the plugin take, and
    // Salesforce refuses (a character it does not allow before the @).
    let people: Vec<Person> = (0..PEOPLE)
        .map(|i| {
            let email = if i % 500 == 7 { format!("b(ad){i}@example.org") } else { format!("p{i}@example.org") };
            Person::example(&format!("K{i:05}"), "Bulk", &format!("Person {i}"), &email)
        })
        .collect();
    h.store.import_people(people, |_| {}).unwrap();
    h.emu.clear_request_log();

    h.drain().await;
    let (batches, held) = h.store.bulk_in_flight().unwrap();
    assert_eq!((batches, held), (1, PEOPLE as i64), "one batch, all 5,000 people, with Salesforce");
    let started = Instant::now();
    while h.store.bulk_in_flight().unwrap().0 > 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the job never finished");
        if !h.engine.poll_bulk_once().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let refused: Vec<usize> = (0..PEOPLE).filter(|i| i % 500 == 7).collect();
    for i in 0..PEOPLE {
        let (state, remote, message) = h.state(&format!("K{i:05}"), target);
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
    assert_eq!(h.emu.bulk_jobs().len(), 1, "one Bulk API job");
    let calls: Vec<String> = h.emu.request_log().into_iter().filter(|r| r.api_call).map(|r| format!("{} {}", r.method, r.path)).collect();
    // Create, upload, close; the polls; the three result files.
    assert!(calls.len() <= 12, "{} calls: {calls:#?}", calls.len());
    assert!(calls.iter().all(|c| c.contains("/jobs/ingest")), "{calls:#?}");
    assert_eq!(h.store.job_counts(Some(target)).unwrap(), (0, refused.len() as i64));
}
