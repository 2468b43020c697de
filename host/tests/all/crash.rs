//! Crash safety: a real `registry-host serve` process is killed with
//! SIGKILL in the middle of a "Reprovision all" of thousands of people,
//! started again, and every person must end up in Salesforce exactly once.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use registry_plugin_runtime::latest::types::GrantType;
use registry_host::domain::{Person, Scope};
use crate::common;
use crate::common::person as registry_person;
use registry_host::secrets::SecretBox;
use registry_host::domain::{ProvState, TargetInput};
use registry_host::store::Store;
use salesforce_emulator::{Emulator, Seed};

const PEOPLE: usize = 3000;

fn open(dir: &Path) -> Store {
    Store::open(dir, SecretBox::load_or_create(dir).unwrap()).unwrap()
}

fn serve(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--allow-insecure-loopback", "serve", "--listen", "127.0.0.1:0", "--plugin"])
        .arg(test_guests::salesforce_plugin())
        .env_remove("REGISTRY_HOST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("registry-host starts")
}


fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn sigkill_in_the_middle_of_a_reprovision_loses_and_duplicates_nothing() {
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_id = {
        let store = open(dir.path());
        let people: Vec<Person> = (0..PEOPLE).map(|i| registry_person(&format!("C{i:05}"), "Crash", &format!("Test {i}"), &format!("c{i}@example.org"))).collect();
        store.import_people(people, |_| {}).await.unwrap();
        let server = store
            .create_server(&common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials)).await
            .unwrap();
        let target = store
            .create_target(&TargetInput {
                name: "Contacts".into(),
                plugin: "salesforce".into(),
                server_id: server,
                // The collections path (Bulk API: the next test).
                settings: vec![("object".into(), "Contact".into()), ("external_id_field".into(), "Registry_ID__c".into()), ("bulk_threshold".into(), "0".into())],
                enabled: true,
                scope: Scope::default(),
            }).await
            .unwrap();
        let run = store.start_run(target).await.unwrap();
        assert_eq!(run.total, PEOPLE as i64);
        run.id
    };

    // Slow Salesforce down so the kill lands mid-run, then kill.
    emu.set_latency(Duration::from_millis(150));
    let mut first = serve(dir.path());
    wait_for("the first records", Duration::from_secs(120), || crate::common::registry_ids(&emu).len() >= 400);
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let at_kill = crate::common::registry_ids(&emu).len();
    assert!(at_kill < PEOPLE, "the kill came too late to prove anything ({at_kill} done)");
    let store = open(dir.path());
    let run = store.run(run_id).await.unwrap();
    assert!(run.finished_at.is_none());

    // Restart: the unfinished jobs resume.
    emu.set_latency(Duration::from_millis(5));
    let mut second = serve(dir.path());
    wait_for("the run to finish", Duration::from_secs(300), || store.sqlite().expect("SQLite").run(run_id).unwrap().finished_at.is_some());
    second.kill().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(second.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    second.wait().unwrap();
    assert!(stdout.contains("resumed:"), "the restart says it resumed jobs: {stdout}");

    let seen = crate::common::registry_ids(&emu);
    assert_eq!(seen.len(), PEOPLE, "every person is in Salesforce");
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    let run = store.run(run_id).await.unwrap();
    assert_eq!((run.done, run.failed), (PEOPLE as i64, 0));
    let counts = store.target_counts(run.target_id).await.unwrap();
    assert_eq!(counts, [(ProvState::Provisioned, PEOPLE as i64)], "everyone is provisioned");
    assert_eq!(store.job_counts(None).await.unwrap(), (0, 0), "no job is left over");
}

/// The Bulk API path: `serve` is killed while its Bulk API job is
/// `InProgress` at Salesforce; after the restart it polls the same job (no
/// second job is made) and every person is provisioned exactly once.
#[tokio::test]
async fn sigkill_while_a_bulk_job_is_in_progress_resumes_polling_the_same_job() {
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    // Long enough to kill the host while the job is in progress.
    emu.set_bulk_processing(Duration::from_secs(4), Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let run_id = {
        let store = open(dir.path());
        let people: Vec<Person> = (0..PEOPLE).map(|i| registry_person(&format!("B{i:05}"), "Bulk", &format!("Test {i}"), &format!("b{i}@example.org"))).collect();
        store.import_people(people, |_| {}).await.unwrap();
        let server = store.create_server(&common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials)).await.unwrap();
        let target = store
            .create_target(&TargetInput {
                name: "Contacts".into(),
                plugin: "salesforce".into(),
                server_id: server,
                settings: vec![("object".into(), "Contact".into()), ("external_id_field".into(), "Registry_ID__c".into()), ("bulk_threshold".into(), "2000".into())],
                enabled: true,
                scope: Scope::default(),
            }).await
            .unwrap();
        store.start_run(target).await.unwrap().id
    };
    let mut first = serve(dir.path());
    let store = open(dir.path());
    // Killed once the host has recorded the job, while Salesforce works on it.
    wait_for("the Bulk API job", Duration::from_secs(120), || {
        emu.bulk_jobs().iter().any(|(_, state)| state == "InProgress") && store.sqlite().expect("SQLite").bulk_in_flight().unwrap() == (1, PEOPLE as i64)
    });
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert!(crate::common::registry_ids(&emu).is_empty(), "killed before the job finished");
    assert_eq!(store.bulk_in_flight().await.unwrap(), (1, PEOPLE as i64), "the batch and its jobs are kept");

    let mut second = serve(dir.path());
    // Finished: every job settled, and then the batch forgotten.
    wait_for("the run to finish", Duration::from_secs(120), || {
        let lite = store.sqlite().expect("SQLite");
        lite.run(run_id).unwrap().finished_at.is_some() && lite.bulk_in_flight().unwrap() == (0, 0)
    });
    second.kill().unwrap();
    second.wait().unwrap();
    let jobs = emu.bulk_jobs();
    assert_eq!(jobs.len(), 1, "the same job was polled, no second one made: {jobs:?}");
    let seen = crate::common::registry_ids(&emu);
    assert_eq!(seen.len(), PEOPLE);
    assert!(seen.values().all(|n| *n == 1), "no duplicates");
    let run = store.run(run_id).await.unwrap();
    assert_eq!((run.done, run.failed), (PEOPLE as i64, 0));
    assert_eq!(store.bulk_in_flight().await.unwrap(), (0, 0));
    assert_eq!(store.job_counts(None).await.unwrap(), (0, 0));
}
