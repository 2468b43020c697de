//! Several real `registry-host serve` processes on one PostgreSQL: they
//! start beside another node's claims and leave them alone, share the
//! work of a "Reprovision all", one is killed with SIGKILL while it holds
//! jobs, and the others finish: every person ends up in the emulator
//! exactly once, sent twice only if the killed node held them, the run done
//! with nothing failed. And an expired token is renewed once across them.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use registry_host::domain::{Person, Scope, TargetInput};
use registry_host::secrets::SecretBox;
use registry_host::store::Store;
use registry_host::store::postgres::{PgConfig, PgStore};
use registry_plugin_runtime::latest::types::GrantType;
use salesforce_emulator::{Emulator, Seed};

use crate::pg::database;

const PEOPLE: usize = 3000;

/// A `serve` node on database `url`, sharing `key`, with `extra` options
/// (a short lease, for one).
pub fn serve(url: &str, key: &str, node: &str, dir: &std::path::Path, extra: &[&str]) -> Child {
    serve_command(url, key, node, dir, extra).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("registry-host starts")
}

/// The command [`serve`] runs.
fn serve_command(url: &str, key: &str, node: &str, dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-host"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(["--allow-insecure-loopback", "--database", url, "serve", "--listen", "127.0.0.1:0", "--node-id", node, "--plugin"])
        .arg(test_guests::salesforce_plugin())
        .args(extra)
        .env("REGISTRY_HOST_SECRET_KEY", key)
        .env("REGISTRY_HOST_ADMIN_USER", "ada")
        .env("REGISTRY_HOST_ADMIN_PASSWORD", "correct horse battery staple")
        .env_remove("REGISTRY_HOST_LOG");
    command
}

/// A Contacts target on `server` and `n` people with ids `{prefix}00000`…
/// Collection calls, not one Bulk API job: a run is shared out in claims
/// of up to 1,000 people.
async fn contacts_with_people(store: &Store, server: i64, prefix: &str, n: usize) -> i64 {
    let target = store.create_target(&contacts(server, true)).await.unwrap();
    let people: Vec<Person> = (0..n).map(|i| Person::example(&format!("{prefix}{i:05}"), "Node", &format!("Person {i}"), &format!("{}{i}@example.org", prefix.to_lowercase()))).collect();
    store.import_people(people, |_| {}).await.unwrap();
    target
}

fn contacts(server_id: i64, enabled: bool) -> TargetInput {
    TargetInput {
        name: "Contacts".into(),
        plugin: "salesforce".into(),
        server_id,
        settings: vec![("object".into(), "Contact".into()), ("external_id_field".into(), "Registry_ID__c".into()), ("bulk_threshold".into(), "0".into())],
        enabled,
        scope: Scope::default(),
    }
}

/// The target switched on or off: off, no node claims its jobs, so the
/// tests start every node before any work is there to take (a node slow
/// to start would otherwise find the others holding everything).
async fn set_enabled(store: &Store, target: i64, server: i64, on: bool) {
    store.update_target(target, &contacts(server, on)).await.unwrap();
}

/// Nodes named `prefix…` that have started: registered, and a heartbeat
/// since (sent once their start is done).
async fn started(pg: &PgStore, prefix: &str) -> usize {
    pg.live_nodes(Duration::from_secs(30)).await.unwrap().iter().filter(|n| n.id.starts_with(prefix) && n.heartbeat_at > n.started_at).count()
}

/// Waits until `done`, failing the test after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_serve_processes_share_a_run_and_survive_one_killed() {
    let Some(url) = database().await else { return };
    let emu = Emulator::start(Seed::demo(vec![])).unwrap();
    emu.keep_writes();
    // Latency as a real org's (a call of 200 records takes a second; a
    // claim of 1,000 is five calls, well within the 10 s deadline), so
    // the run lasts long enough to kill a node in it.
    emu.set_latency_model(Duration::from_millis(50), Duration::from_millis(5));
    let key = [5u8; 32];
    let key_text = base64::engine::general_purpose::STANDARD.encode(key);
    // An admin's setup, through the store the nodes share.
    let store = Store::from(PgStore::connect(&url, "setup", SecretBox::new(&key), PgConfig { register: false, ..PgConfig::default() }).await.unwrap());
    let server = store.create_server(&crate::common::emulator_server(&emu, "salesforce", GrantType::ClientCredentials)).await.unwrap();
    let target = contacts_with_people(&store, server, "N", PEOPLE).await;
    let run = store.start_run(target).await.unwrap();
    // A node already at work when the three start: starting, each releases
    // only its own earlier claims, never this one's.
    let holder = Store::from(PgStore::connect(&url, "holder", SecretBox::new(&key), PgConfig { lease: Duration::from_secs(120), ..PgConfig::default() }).await.unwrap());
    let held_before = holder.claim(50).await.unwrap();
    assert_eq!(held_before.len(), 50);
    let db = crate::pg::connect(&url).await;
    let holders_claims = async || -> Vec<(i64, Option<String>, i64, String)> {
        db.query("SELECT id, claimed_by, claim_seq, state FROM jobs WHERE id = ANY($1) ORDER BY id", &[&held_before.iter().map(|j| j.id).collect::<Vec<_>>()])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    let claims_before = holders_claims().await;
    set_enabled(&store, target, server, false).await;

    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Child> = (0..3).map(|i| serve(&url, &key_text, &format!("node-{i}"), dirs[i].path(), &["--workers", "1", "--lease-seconds", "12", "--plugin-timeout-ms", "10000"])).collect();
    let pg = store.postgres().unwrap();
    wait_for("three started nodes", Duration::from_secs(120), async || started(pg, "node-").await == 3).await;
    assert_eq!(holders_claims().await, claims_before, "three nodes started and left another node's claims alone");
    assert_eq!(holder.release(&held_before).await.unwrap(), 50, "and the holder still had them to give back");
    set_enabled(&store, target, server, true).await;
    let serving = async || pg.live_nodes(Duration::from_secs(30)).await.unwrap().into_iter().filter(|n| n.id.starts_with("node-")).collect::<Vec<_>>();
    // Each node at work (one call at a time each, so the run is shared).
    wait_for("three nodes, each holding jobs", Duration::from_secs(120), async || {
        let live = serving().await;
        live.len() == 3 && live.iter().all(|n| n.claimed > 0)
    })
    .await;
    // SIGKILL the node holding the most jobs, once part of its claim has
    // reached the org (a claim of 1,000 is five calls): what it sent is
    // not recorded, and is sent again by the others.
    let live = serving().await;
    let victim = live.iter().max_by_key(|n| n.claimed).unwrap().id.clone();
    let held = live.iter().find(|n| n.id == victim).unwrap().claimed;
    wait_for("the victim's first call answered", Duration::from_secs(60), async || {
        let its: std::collections::HashSet<String> =
            db.query("SELECT person_id FROM jobs WHERE claimed_by = $1 AND state = 'running'", &[&victim]).await.unwrap().iter().map(|r| r.get(0)).collect();
        emu.writes("Contact").iter().any(|w| w["Registry_ID__c"].as_str().is_some_and(|id| its.contains(id)))
    })
    .await;
    let index: usize = victim.trim_start_matches("node-").parse().unwrap();
    nodes[index].kill().expect("SIGKILL");
    nodes[index].wait().unwrap();
    assert!(held > 0, "the killed node held jobs");
    // Whose leases it died with: nothing changes them until they expire.
    let leased: std::collections::HashSet<String> = db
        .query("SELECT person_id FROM jobs WHERE claimed_by = $1 AND state = 'running'", &[&victim])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!leased.is_empty(), "the killed node died holding leases");

    wait_for("the run to finish", Duration::from_secs(300), async || store.run(run.id).await.unwrap().finished_at.is_some()).await;
    let done = store.run(run.id).await.unwrap();
    for n in nodes.iter_mut() {
        let _ = n.kill();
        let _ = n.wait();
    }
    assert_eq!((done.total, done.done, done.failed), (PEOPLE as i64, PEOPLE as i64, 0));
    let ids = crate::common::registry_ids(&emu);
    assert_eq!(ids.len(), PEOPLE, "every person is in Salesforce");
    assert!(ids.values().all(|n| *n == 1), "nobody twice: {:?}", ids.iter().filter(|(_, n)| **n > 1).take(5).collect::<Vec<_>>());
    // Sent twice only when the killed node held the person's lease: its
    // calls may have reached the org before it died, unrecorded.
    let mut sent: HashMap<String, usize> = HashMap::new();
    for w in emu.writes("Contact") {
        *sent.entry(w["Registry_ID__c"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    assert_eq!(sent.len(), PEOPLE);
    let twice: Vec<&String> = sent.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    let strays: Vec<&&String> = twice.iter().filter(|id| !leased.contains(id.as_str())).collect();
    assert!(strays.is_empty(), "sent twice without the killed node holding them: {strays:?}");
    assert!(!twice.is_empty(), "what the killed node had sent was sent again");
    eprintln!("killed node held {} leases; {} people were sent twice", leased.len(), twice.len());
    assert_eq!(store.job_counts(Some(target)).await.unwrap(), (0, 0));
}

/// Refresh-token rotation on, the access token expired in the middle of
/// a run that three `serve` processes share: every node finds its calls
/// refused, and the org sees one `refresh_token` grant (a second use of
/// the old refresh token would have revoked the family); the run ends
/// complete and the server stays Set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_serve_processes_renew_an_expired_token_once_mid_run() {
    use registry_host::domain::{ServerInput, TokenStatus};
    use registry_plugin_testbed::TestBed;
    use salesforce_emulator::RefreshStatus;
    const RUN: usize = 3000;
    let Some(url) = database().await else { return };
    let bed = TestBed::start(test_guests::salesforce_plugin()).await.unwrap();
    let emu = &bed.emulator;
    emu.set_rotation(true);
    emu.set_latency_model(Duration::from_millis(50), Duration::from_millis(5));
    let first = bed.authorize().await.unwrap();
    let key = [8u8; 32];
    let store = Store::from(PgStore::connect(&url, "setup", SecretBox::new(&key), PgConfig { register: false, ..PgConfig::default() }).await.unwrap());
    let mut input = ServerInput::for_config("Org", "salesforce", &bed.server(GrantType::AuthorizationCode));
    input.api_hosts = vec!["127.0.0.1".into()];
    let server = store.create_server(&input).await.unwrap();
    store.save_tokens(server, &first).await.unwrap();
    let target = contacts_with_people(&store, server, "R", RUN).await;
    set_enabled(&store, target, server, false).await;
    let key_text = base64::engine::general_purpose::STANDARD.encode(key);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // One claim of 1,000 at a time per node (five calls each): all three
    // are mid-claim when the token expires.
    let options = ["--workers", "1", "--lease-seconds", "12", "--plugin-timeout-ms", "10000"];
    let mut nodes: Vec<Child> = (0..3).map(|i| serve(&url, &key_text, &format!("renew-{i}"), dirs[i].path(), &options)).collect();
    let pg = store.postgres().unwrap();
    wait_for("three started nodes", Duration::from_secs(120), async || started(pg, "renew-").await == 3).await;
    let run = store.start_run(target).await.unwrap();
    set_enabled(&store, target, server, true).await;
    wait_for("every node at work", Duration::from_secs(120), async || {
        pg.live_nodes(Duration::from_secs(30)).await.unwrap().iter().all(|n| n.claimed > 0) && !emu.live_records("Contact").is_empty()
    })
    .await;
    emu.clear_request_log();
    emu.expire_access_tokens();
    wait_for("the run to finish", Duration::from_secs(300), async || store.run(run.id).await.unwrap().finished_at.is_some()).await;
    for n in nodes.iter_mut() {
        let _ = n.kill();
        let _ = n.wait();
    }
    let done = store.run(run.id).await.unwrap();
    assert_eq!((done.total, done.done, done.failed), (RUN as i64, RUN as i64, 0));
    assert_eq!(crate::common::registry_ids(emu).len(), RUN);
    let grants = emu.request_log().iter().filter(|r| r.path == "/services/oauth2/token").count();
    assert_eq!(grants, 1, "one refresh_token grant for three nodes");
    let now = store.tokens(server).await.unwrap().expect("tokens are held");
    assert_ne!(now.access_token, first.access_token, "renewed");
    assert_eq!(emu.refresh_token_status(now.refresh_token.as_deref().unwrap()), Some(RefreshStatus::Active), "the family lives");
    assert_eq!(store.server(server).await.unwrap().token_status, TokenStatus::Set);
}

/// One `--node-id` given to two processes: the second refuses to start,
/// saying why, and the first keeps its claims. Once the first dies
/// (SIGKILL: no clean stop), a process restarted under its id waits out
/// its silence and takes the id over.
#[tokio::test]
async fn a_live_nodes_id_is_refused_and_a_dead_ones_is_taken_over() {
    let Some(url) = database().await else { return };
    let key_text = base64::engine::general_purpose::STANDARD.encode([6u8; 32]);
    let setup = PgStore::connect(&url, "setup", SecretBox::new(&[6u8; 32]), PgConfig { register: false, ..PgConfig::default() }).await.unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let short = ["--lease-seconds", "3", "--plugin-timeout-ms", "2000"];
    let mut first = serve(&url, &key_text, "twin", dirs[0].path(), &short);
    wait_for("the first node", Duration::from_secs(120), async || started(&setup, "twin").await == 1).await;
    let pid_of = async || setup.live_nodes(Duration::from_secs(30)).await.unwrap().into_iter().find(|n| n.id == "twin").map(|n| n.pid);
    assert_eq!(pid_of().await, Some(i64::from(first.id())));

    let mut second = serve_command(&url, &key_text, "twin", dirs[1].path(), &short).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let refused = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if refused.elapsed() > Duration::from_secs(60) {
            second.kill().unwrap();
            first.kill().unwrap();
            panic!("a second process under a live node's id kept running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "refused: {stderr}");
    assert!(stderr.contains(&format!("another process (pid {}) is serving as node 'twin'", first.id())) && stderr.contains("--node-id"), "{stderr}");
    assert_eq!(pid_of().await, Some(i64::from(first.id())), "the id is still the first's");

    first.kill().unwrap();
    first.wait().unwrap();
    let mut third = serve(&url, &key_text, "twin", dirs[2].path(), &short);
    let third_pid = i64::from(third.id());
    wait_for("the restarted node under the dead one's id", Duration::from_secs(60), async || pid_of().await == Some(third_pid)).await;
    assert!(third.try_wait().unwrap().is_none(), "it serves");
    third.kill().unwrap();
    third.wait().unwrap();
}
