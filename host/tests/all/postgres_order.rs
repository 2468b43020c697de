//! Three real `serve` processes started at once on an empty PostgreSQL:
//! the schema is made once and one admin; then, while they run, 200
//! people are each changed five times and every change reaches the org in
//! order.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use registry_host::domain::{Identifier, Person, Scope, TargetInput};
use registry_host::secrets::SecretBox;
use registry_host::store::Store;
use registry_host::store::postgres::{PgConfig, PgStore};
use registry_plugin_runtime::latest::types::GrantType;
use salesforce_emulator::{Emulator, Seed};

use crate::pg::{connect, database};
use crate::postgres_serve::{serve, wait_for};

const PEOPLE: usize = 200;
const ROUNDS: u32 = 5;

/// `id` with sequence number `seq` (an identifier the target maps).
fn numbered(id: &str, seq: u32) -> Person {
    let mut p = Person::example(id, "Order", id, &format!("{}@example.org", id.to_lowercase()));
    p.identifiers.push(Identifier { kind: "seq".into(), value: seq.to_string() });
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_start_together_and_send_each_persons_changes_in_order() {
    let Some(url) = database().await else { return };
    let key = [6u8; 32];
    let key_text = base64::engine::general_purpose::STANDARD.encode(key);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // All three at once, on an empty database.
    let mut nodes: Vec<_> = (0..3).map(|i| serve(&url, &key_text, &format!("order-{i}"), dirs[i].path(), &["--lease-seconds", "6", "--plugin-timeout-ms", "5000", "--workers", "1", "--batch-max", "20"])).collect();
    let db = connect(&url).await;
    // A heartbeat after the one registering the node: its start is done.
    wait_for("three started nodes", Duration::from_secs(120), async || {
        for n in nodes.iter_mut() {
            assert!(n.try_wait().unwrap().is_none(), "a node exited while starting together with the others");
        }
        let live = db.query_one("SELECT count(*) FROM nodes WHERE heartbeat_at > started_at AND heartbeat_at > now() - interval '30 seconds'", &[]).await;
        live.is_ok_and(|r| r.get::<_, i64>(0) == 3)
    })
    .await;
    let migrations: Vec<i64> = db.query("SELECT version FROM schema_migrations ORDER BY version", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(migrations, (1..=migrations.len() as i64).collect::<Vec<_>>(), "each migration once");
    let admins: Vec<String> = db.query("SELECT username FROM admins", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(admins, ["ada"], "one first admin from three nodes");

    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    emu.keep_writes();
    emu.set_latency_model(Duration::from_millis(20), Duration::from_millis(2));
    let store = Store::from(PgStore::connect(&url, "admin", SecretBox::new(&key), PgConfig { register: false, ..PgConfig::default() }).await.unwrap());
    let server = store.create_server(&crate::common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials)).await.unwrap();
    store
        .create_target(&TargetInput {
            name: "Contacts".into(),
            plugin: "salesforce".into(),
            server_id: server,
            settings: vec![
                ("object".into(), "Contact".into()),
                ("external_id_field".into(), "Registry_ID__c".into()),
                ("field_mappings".into(), "Description={identifier:seq}".into()),
            ],
            enabled: true,
            scope: Scope::default(),
        })
        .await
        .unwrap();
    // The nodes obtain the token themselves; then the people arrive and
    // change while the nodes work through them.
    // Each change is told to the nodes, as the admin UI's are; claims of
    // 20 people, one call at a time per node, so every node takes a share
    // of each round and a person's changes move between nodes. Which
    // nodes held jobs is sampled meanwhile.
    let wakeups = store.postgres().unwrap().start_wakeups(&url).await.unwrap();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (url, sampling) = (url.clone(), sampling.clone());
        tokio::spawn(async move {
            let db = connect(&url).await;
            let mut seen = std::collections::BTreeSet::new();
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                for r in db.query("SELECT DISTINCT claimed_by FROM jobs WHERE state = 'running'", &[]).await.unwrap() {
                    seen.insert(r.get::<_, String>(0));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let ids: Vec<String> = (0..PEOPLE).map(|i| format!("Q{i:04}")).collect();
    store.import_people(ids.iter().map(|id| numbered(id, 0)).collect(), |_| {}).await.unwrap();
    wakeups.tell(registry_host::store::postgres::Topic::Jobs);
    for round in 1..=ROUNDS {
        tokio::time::sleep(Duration::from_millis(150)).await;
        for id in &ids {
            store.update_person(&numbered(id, round)).await.unwrap();
        }
        wakeups.tell(registry_host::store::postgres::Topic::Jobs);
    }
    wait_for("every change sent", Duration::from_secs(300), async || {
        store.job_counts(None).await.unwrap() == (0, 0) && emu.live_records("Contact").iter().filter(|r| r["Description"] == "5").count() == PEOPLE
    })
    .await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let workers = sampler.await.unwrap();
    assert!(workers.len() >= 2, "the nodes shared the work: {workers:?}");
    eprintln!("nodes seen holding jobs: {workers:?}");
    for n in nodes.iter_mut() {
        let _ = n.kill();
        let _ = n.wait();
    }

    let mut received: HashMap<String, Vec<u32>> = HashMap::new();
    for w in emu.writes("Contact") {
        let id = w["Registry_ID__c"].as_str().unwrap().to_string();
        let seq = w["Description"].as_str().and_then(|s| s.parse().ok()).expect("every write carries the sequence");
        received.entry(id).or_default().push(seq);
    }
    assert_eq!(received.len(), PEOPLE);
    for (id, seqs) in &received {
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{id} received its changes out of order: {seqs:?}");
        assert_eq!(seqs.last(), Some(&ROUNDS), "{id} ends at the last change");
    }
    let sent: usize = received.values().map(Vec::len).sum();
    eprintln!("{sent} writes for {PEOPLE} people changed {ROUNDS} times each");
    assert!(sent > PEOPLE * 2, "the changes overlapped the nodes' work ({sent} writes)");
}
