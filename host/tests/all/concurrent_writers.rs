//! Two processes writing one database at once, as the CLI beside `serve`
//! does: an import while a "Reprovision all" queues and the engine claims.
//! Every write transaction takes the write lock at BEGIN, so none fails
//! with SQLITE_BUSY_SNAPSHOT when the other commits between its read and
//! its write.

use std::sync::Arc;

use registry_host::domain::{Person, Scope, ServerInput, TargetInput};
use registry_host::secrets::SecretBox;
use registry_host::store::Store;
use registry_plugin_runtime::latest::types::GrantType;

#[tokio::test]
async fn an_import_during_a_reprovision_loses_nothing_and_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretBox::new(&[9; 32]);
    let serve = Arc::new(Store::open(dir.path(), key.clone()).unwrap());
    let cli = Store::open(dir.path(), key).unwrap();
    let server = serve
        .create_server(&ServerInput::example("S", "salesforce", GrantType::AuthorizationCode))
        .await.unwrap();
    let target = serve
        .create_target(&TargetInput { name: "T".into(), plugin: "salesforce".into(), server_id: server, settings: vec![], enabled: true, scope: Scope::default() })
        .await.unwrap();
    let first: Vec<Person> = (0..1500).map(|i| Person::example(&format!("P{i:05}"), "Ada", &format!("Lovelace{i}"), &format!("p{i}@example.org"))).collect();
    cli.import_people(first, |_| {}).await.unwrap();

    // `serve`: reprovisions again and again, claiming and releasing jobs
    // as the engine would, while the CLI imports new and changed people.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reprovisioning = {
        let (serve, stop) = (serve.clone(), stop.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || runs < 3 {
                // The SQLite store itself, as a thread of its own uses it.
                let serve = serve.sqlite().expect("SQLite");
                serve.start_run(target).map_err(|e| format!("reprovision {runs}: {e}"))?;
                let claimed = serve.claim(50).map_err(|e| format!("claim: {e}"))?;
                serve.release(&claimed.iter().map(|j| j.id).collect::<Vec<_>>()).map_err(|e| format!("release: {e}"))?;
                runs += 1;
                // The engine's own pace between batches.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(runs)
        })
    };
    let changed: Vec<Person> = (0..4000).map(|i| Person::example(&format!("P{i:05}"), "Grace", &format!("Hopper{i}"), &format!("p{i}@example.org"))).collect();
    let stats = cli.import_people(changed, |_| {}).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = reprovisioning.join().unwrap();
    let stats = stats.expect("the import failed beside a reprovision");
    let runs = runs.expect("a reprovision failed beside an import");
    assert_eq!((stats.added, stats.updated), (2500, 1500));
    assert!(runs >= 3);
    // Nothing lost: every person is there, changed, with a job queued.
    let (people, total) = serve.people("", 0, 5000).await.unwrap();
    assert_eq!(total, 4000);
    assert!(people.iter().all(|p| p.name.given == "Grace"));
    let (queued, failed) = serve.job_counts(Some(target)).await.unwrap();
    assert!(queued >= 4000 && failed == 0, "queued {queued}, failed {failed}");
}
