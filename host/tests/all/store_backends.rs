//! The store's behaviour, run once on SQLite and once on PostgreSQL
//! through the one `Store` interface the app uses: each test is an async
//! function over a `Store`, and [`each_backend`] runs it on both.
//!
//! What only one backend has (SQLite's file, its migration rebuilds, its
//! test clock; PostgreSQL's claims across nodes) is tested beside that
//! backend.

use std::time::Duration;

use registry_host::domain::{Person, ProvState, Scope, ServerInput, TargetInput, TokenStatus};
use registry_host::secrets::SecretBox;
use registry_host::store::postgres::{PgConfig, PgStore};
use registry_host::store::{AuditFilter, KeyRole, NewSigningKey, PendingOrigin, Store, StoreError};
use registry_plugin_runtime::latest::types::{GrantType, TokenSet};
use serde_json::json;

use crate::common::done;
use crate::pg::database;

const KEY: [u8; 32] = [4; 32];

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL one
/// (skipped, with a note, where no cluster is configured). A failure names
/// the backend.
async fn each_backend<F>(test: F)
where
    F: AsyncFn(Store, Backend),
{
    let dir = tempfile::tempdir().unwrap();
    test(Store::open(dir.path(), SecretBox::new(&KEY)).unwrap(), Backend::Sqlite(dir.path().to_path_buf())).await;
    if let Some(url) = database().await {
        test(postgres(&url, &KEY).await.unwrap(), Backend::Postgres(url)).await;
    }
}

/// Which backend a test runs on, and how to open it again.
#[derive(Clone)]
enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Backend {
    /// The same database opened again under `key`.
    async fn reopen(&self, key: &[u8; 32]) -> Result<Store, StoreError> {
        match self {
            Backend::Sqlite(dir) => Store::open(dir, SecretBox::new(key)),
            Backend::Postgres(url) => postgres(url, key).await,
        }
    }

    /// Runs `sql` (statements both databases take) on the database itself,
    /// past the store, as a history years long would have left it.
    async fn execute(&self, sql: &str) {
        match self {
            Backend::Sqlite(dir) => rusqlite::Connection::open(dir.join(registry_host::store::DB_FILE)).unwrap().execute_batch(sql).unwrap(),
            Backend::Postgres(url) => crate::pg::connect(url).await.batch_execute(sql).await.unwrap(),
        }
    }
}

async fn postgres(url: &str, key: &[u8; 32]) -> Result<Store, StoreError> {
    Ok(Store::from(PgStore::connect(url, "node", SecretBox::new(key), PgConfig { lease: Duration::from_secs(60), ..PgConfig::default() }).await?))
}

fn server_input(name: &str) -> ServerInput {
    ServerInput { scope: Some("api refresh_token".into()), ..ServerInput::example(name, "salesforce", GrantType::ClientCredentials) }
}

fn target_input(name: &str, server_id: i64) -> TargetInput {
    TargetInput { name: name.into(), plugin: "salesforce".into(), server_id, settings: vec![("object".into(), "Contact".into())], enabled: true, scope: Scope::default() }
}

fn tokens() -> TokenSet {
    TokenSet {
        access_token: "00D!access".into(),
        refresh_token: Some("5Aep-refresh".into()),
        instance_url: Some("https://na1.salesforce.com".into()),
        issued_at: Some(1_795_000_000_000),
        expires_at: None,
        scope: Some("api".into()),
        token_type: "Bearer".into(),
        extra: vec![("id".into(), "https://login/id/00D/005".into())],
    }
}

/// A server and a target for everyone.
async fn with_target(store: &Store) -> (i64, i64) {
    let server = store.create_server(&server_input("S")).await.unwrap();
    (server, store.create_target(&target_input("T", server)).await.unwrap())
}

async fn people(store: &Store, prefix: &str, n: usize) {
    for i in 0..n {
        store.create_person(Person::example(&format!("{prefix}{i:02}"), "Ada", "Lovelace", &format!("{}{i}@example.org", prefix.to_lowercase()))).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_round_trip_and_another_key_cannot_open_them() {
    each_backend(async |store, backend| {
        let id = store.create_server(&server_input("SF")).await.unwrap();
        store.save_tokens(id, &tokens()).await.unwrap();
        assert_eq!(store.tokens(id).await.unwrap().unwrap(), tokens());
        assert_eq!(store.server_config(id).await.unwrap().client_secret, "s3cret");
        let s = store.server(id).await.unwrap();
        assert_eq!((s.token_status, s.instance_url.as_deref(), s.has_secret), (TokenStatus::Set, Some("https://na1.salesforce.com"), true));
        drop(store);
        // SQLite opens, and says so on reading; PostgreSQL's nodes refuse
        // to start with another key than the one recorded.
        let other = backend.reopen(&[2; 32]).await;
        match backend {
            Backend::Sqlite(_) => assert!(other.unwrap().tokens(id).await.unwrap_err().to_string().contains("cannot be decrypted")),
            Backend::Postgres(_) => assert!(matches!(other, Err(StoreError::KeyMismatch { .. }))),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_url_id_or_secret_clears_tokens_but_other_edits_do_not() {
    each_backend(async |store, _| {
        let id = store.create_server(&server_input("SF")).await.unwrap();
        store.save_tokens(id, &tokens()).await.unwrap();
        let mut same = server_input("SF renamed");
        same.client_secret = None;
        assert!(!store.update_server(id, &same).await.unwrap().tokens_cleared);
        same.client_secret = Some("s3cret".into());
        assert!(!store.update_server(id, &same).await.unwrap().tokens_cleared, "the same secret again changes nothing");
        assert!(store.tokens(id).await.unwrap().is_some());
        let mut changed = same.clone();
        changed.client_secret = Some("new".into());
        assert!(store.update_server(id, &changed).await.unwrap().tokens_cleared);
        assert!(store.tokens(id).await.unwrap().is_none());
        assert_eq!(store.server(id).await.unwrap().token_status, TokenStatus::NotSet);
        assert_eq!(store.server_config(id).await.unwrap().client_secret, "new");
        store.save_tokens(id, &tokens()).await.unwrap();
        changed.server_url = "https://test.salesforce.com".into();
        assert!(store.update_server(id, &changed).await.unwrap().tokens_cleared);
        assert!(matches!(store.create_server(&server_input("SF renamed")).await, Err(StoreError::Conflict(m)) if m.contains("already exists")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_authorizations_are_single_use_and_expire() {
    each_backend(async |store, _| {
        let id = store.create_server(&server_input("SF")).await.unwrap();
        store.put_pending("st", id, "verifier", "http://h/cb", PendingOrigin { session: "session-a", popup: true, admin: None }, 60_000).await.unwrap();
        let p = store.take_pending("st").await.unwrap().unwrap();
        assert_eq!((p.server_id, p.code_verifier.as_str(), p.expired, p.session.as_str(), p.popup), (id, "verifier", false, "session-a", true));
        assert!(store.take_pending("st").await.unwrap().is_none());
        store.put_pending("old", id, "v", "http://h/cb", PendingOrigin { session: "session-a", popup: false, admin: None }, -1).await.unwrap();
        assert!(store.take_pending("old").await.unwrap().unwrap().expired);
        store.delete_server(id).await.unwrap();
        assert!(matches!(store.server(id).await, Err(StoreError::NotFound(_))));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_taken_name_is_a_conflict() {
    each_backend(async |store, _| {
        let server = store.create_server(&server_input("SF")).await.unwrap();
        store.create_target(&target_input("T", server)).await.unwrap();
        assert!(matches!(store.create_target(&target_input("T", server)).await, Err(StoreError::Conflict(m)) if m == "a target named 'T' already exists"));
        // A missing server is named as missing, not passed off as a taken name.
        assert!(matches!(store.create_target(&target_input("U", server + 99)).await, Err(StoreError::NotFound(m)) if m.contains("server")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_keeps_no_secret_and_pages_newest_first() {
    each_backend(async |store, _| {
        for i in 0..5 {
            store.audit("ada", if i % 2 == 0 { "server.create" } else { "target.update" }, &format!("S{i}"), json!({"client_secret": "x"})).await.unwrap();
        }
        let page = store.audit_entries(&AuditFilter::default(), 2).await.unwrap();
        assert_eq!(page.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(), ["S4", "S3"]);
        let next = store.audit_entries(&AuditFilter { before: Some(page[1].id), ..Default::default() }, 10).await.unwrap();
        assert_eq!(next.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(), ["S2", "S1", "S0"]);
        let servers = store.audit_entries(&AuditFilter { action: Some("server.".into()), ..Default::default() }, 10).await.unwrap();
        assert_eq!(servers.len(), 3);
        assert!(servers.iter().all(|e| e.detail["client_secret"] == "[redacted]"));
    })
    .await;
}

/// A batch grows only with records kept up to date; a removal waits for
/// an ordinary claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_batch_carries_no_removal() {
    each_backend(async |store, _| {
        let (_, target) = with_target(&store).await;
        people(&store, "L", 3).await;
        // L00 is provisioned, then deleted: its removal queues behind L01 and L02.
        let l0 = store.claim(1).await.unwrap();
        store.finish_done(&[done(&l0[0])]).await.unwrap();
        store.delete_person("L00").await.unwrap();
        let sizes = [(target, 10)];
        let first: Vec<String> = store.claim_for(1, &[], &sizes).await.unwrap().into_iter().map(|j| j.person_id).collect();
        assert_eq!(first, vec!["L01", "L02"], "records kept up to date grow the batch past the ordinary size of 1");
        let next: Vec<(String, String)> = store.claim_for(1, &[], &sizes).await.unwrap().into_iter().map(|j| (j.person_id, j.action.as_str().to_string())).collect();
        assert_eq!(next, vec![("L00".to_string(), "deleted".to_string())], "the removal in an ordinary batch");
    })
    .await;
}

/// When every queued job is a removal, a claim holds them all and finds
/// nothing to run: the holds must still be kept (and reported once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_held_when_nothing_else_is_queued_stay_held() {
    each_backend(async |store, _| {
        let (_, target) = with_target(&store).await;
        people(&store, "H", 30).await;
        let jobs = store.claim(100).await.unwrap();
        assert_eq!(jobs.len(), 30);
        store.finish_done(&jobs.iter().map(done).collect::<Vec<_>>()).await.unwrap();
        for i in 0..30 {
            store.delete_person(&format!("H{i:02}")).await.unwrap();
        }
        assert!(store.claim(100).await.unwrap().is_empty(), "30 removals over the automatic threshold of 20: none runs");
        assert_eq!(store.target_health(target).await.unwrap().held_removals, 30);
        assert_eq!(store.take_new_holds(), vec![(target, 30)]);
        assert!(store.take_new_holds().is_empty(), "reported once");
        assert!(store.claim(100).await.unwrap().is_empty());
        assert_eq!(store.confirm_removals(target).await.unwrap(), 30);
        assert_eq!(store.claim(100).await.unwrap().len(), 30, "confirmed, they run");
    })
    .await;
}

/// A target at its cap of calls in flight is left out of a claim; the
/// other targets' jobs are claimed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_target_is_left_out_of_a_claim_and_the_others_go_on() {
    each_backend(async |store, _| {
        let (server, busy) = with_target(&store).await;
        let other = store.create_target(&target_input("Other", server)).await.unwrap();
        people(&store, "B", 30).await;
        let claimed = store.claim_except(100, &[busy]).await.unwrap();
        assert_eq!(claimed.len(), 30, "the other target's 30 jobs");
        assert!(claimed.iter().all(|j| j.target_id == other));
        assert!(store.claim_except(100, &[busy]).await.unwrap().is_empty(), "nothing left but the busy target's");
        let freed = store.claim_except(100, &[]).await.unwrap();
        assert_eq!((freed.len(), freed[0].target_id), (30, busy), "once it is no longer busy, its jobs are claimed");
    })
    .await;
}

/// A submitted bulk batch holds its jobs, is polled one node at a time,
/// keeps the settings it was submitted with, and gives back what it did
/// not settle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_batch_holds_its_jobs_and_is_polled_once_at_a_time() {
    each_backend(async |store, _| {
        let (_, target) = with_target(&store).await;
        people(&store, "K", 3).await;
        let jobs = store.claim(10).await.unwrap();
        assert_eq!(jobs.len(), 3);
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let settings = vec![("object".to_string(), "Contact".to_string())];
        let batch = store.submit_bulk(target, "job:750x:1000", &settings, 0, &jobs).await.unwrap();
        assert_eq!(store.bulk_in_flight().await.unwrap(), (1, 3));
        assert!(store.claim(10).await.unwrap().is_empty(), "held by the batch");
        let (due, held) = store.take_due_bulk().await.unwrap().expect("due at once");
        assert_eq!((due.id, due.reference.as_str(), due.polls), (batch, "job:750x:1000", 0));
        assert_eq!(due.settings, settings, "polled under the settings it was submitted with");
        assert_eq!(held.iter().map(|j| j.id).collect::<Vec<_>>(), ids, "in the order submitted");
        assert!(store.take_due_bulk().await.unwrap().is_none(), "leased: one poll at a time");
        store.reschedule_bulk(batch, "job:750x:2000", 0, false).await.unwrap();
        let (again, held) = store.take_due_bulk().await.unwrap().unwrap();
        assert_eq!(again.reference, "job:750x:2000");
        store.finish_done(&held[..1].iter().map(done).collect::<Vec<_>>()).await.unwrap();
        store.finish_bulk(batch).await.unwrap();
        assert_eq!(store.bulk_in_flight().await.unwrap(), (0, 0));
        assert_eq!(store.claim(10).await.unwrap().len(), 2, "unsettled jobs go back to the queue");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_rotate_and_go_with_their_server() {
    each_backend(async |store, backend| {
        let (server, target) = with_target(&store).await;
        let key = |name: &'static str| NewSigningKey { private_key_pem: name, certificate: "CERT", fingerprint: name, not_after: 1 };
        store.put_signing_key(server, KeyRole::Current, &key("first")).await.unwrap();
        assert_eq!(store.signing_key_private(server, KeyRole::Current).await.unwrap().unwrap().1, "first");
        assert!(!store.promote_next_key(server, 1).await.unwrap(), "nothing to switch to");
        let second = store.put_signing_key(server, KeyRole::Next, &key("second")).await.unwrap();
        let third = store.put_signing_key(server, KeyRole::Next, &key("third")).await.unwrap();
        let roles: Vec<(KeyRole, String)> = store.signing_keys(server).await.unwrap().into_iter().map(|k| (k.role, k.fingerprint)).collect();
        assert_eq!(roles, vec![(KeyRole::Current, "first".to_string()), (KeyRole::Next, "third".to_string())], "a next key generated again replaces the first");
        assert!(!store.promote_next_key(server, second).await.unwrap(), "only the key that was tested");
        assert!(store.promote_next_key(server, third).await.unwrap());
        let (info, pem) = store.signing_key_private(server, KeyRole::Current).await.unwrap().unwrap();
        assert_eq!((info.fingerprint.as_str(), pem.as_str()), ("third", "third"));
        assert_eq!(store.signing_keys(server).await.unwrap().len(), 1, "the old key is forgotten");

        // Re-sealed by a key rotation, still readable under the new key.
        store.reseal(&SecretBox::new(&[9; 32])).await.unwrap();
        drop(store);
        let store = backend.reopen(&[9; 32]).await.unwrap();
        assert_eq!(store.signing_key_private(server, KeyRole::Current).await.unwrap().unwrap().1, "third");
        store.delete_target(target).await.unwrap();
        store.delete_server(server).await.unwrap();
        assert!(store.signing_keys(server).await.unwrap().is_empty(), "deleted with the server");
    })
    .await;
}

/// A key rotation re-seals every secret (the server's, its tokens, a
/// target's settings, a pending sign-in); run twice it changes nothing
/// more; the old key opens nothing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_opens_under_the_new_key_only() {
    each_backend(async |store, backend| {
        let mut input = server_input("S");
        input.client_secret = Some("client secret".into());
        let id = store.create_server(&input).await.unwrap();
        store.save_tokens(id, &tokens()).await.unwrap();
        let mut t = target_input("T", id);
        t.settings = vec![("k".into(), "v".into())];
        let target = store.create_target(&t).await.unwrap();
        store.put_pending("st4te", id, "verifier", "https://r/cb", PendingOrigin { session: "session", popup: false, admin: None }, 60_000).await.unwrap();
        let new = SecretBox::new(&[2; 32]);
        assert_eq!(store.reseal(&new).await.unwrap(), 5);
        assert_eq!(store.reseal(&new).await.unwrap(), 5, "again, as after a stop before the key was replaced");
        drop(store);
        let store = backend.reopen(&[2; 32]).await.unwrap();
        assert_eq!(store.server_config(id).await.unwrap().client_secret, "client secret");
        let held = store.tokens(id).await.unwrap().unwrap();
        assert_eq!((held.access_token.as_str(), held.refresh_token.as_deref()), ("00D!access", Some("5Aep-refresh")));
        assert_eq!(store.target(target).await.unwrap().settings, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(store.take_pending("st4te").await.unwrap().unwrap().code_verifier, "verifier");
        drop(store);
        let stale = backend.reopen(&KEY).await;
        match backend {
            Backend::Sqlite(_) => assert!(stale.unwrap().server_config(id).await.is_err(), "the old key opens nothing"),
            Backend::Postgres(_) => assert!(matches!(stale, Err(StoreError::KeyMismatch { .. })), "the old key is refused"),
        }
    })
    .await;
}

/// An import of more than one transaction's worth of people: the new ones
/// queued by each target's scope (PostgreSQL writes them set-based), a
/// group made from its name, an unchanged person left alone; imported
/// again with changes, only those are queued again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_queues_new_and_changed_people_by_scope() {
    each_backend(async |store, _| {
        let server = store.create_server(&server_input("S")).await.unwrap();
        let everyone = store.create_target(&target_input("Everyone", server)).await.unwrap();
        let mut scoped = target_input("Example", server);
        scoped.scope = Scope::parse("example.org", "");
        let example = store.create_target(&scoped).await.unwrap();
        let person = |i: usize, domain: &str| Person::example(&format!("I{i:03}"), "Imported", &format!("Person {i}"), &format!("i{i}@{domain}"));
        // A third outside example.org; one in a group; one there already.
        let mut people: Vec<Person> = (0..600).map(|i| person(i, if i % 3 == 0 { "elsewhere.example" } else { "example.org" })).collect();
        people[5].groups = vec!["Staff".into()];
        store.create_person(person(999, "example.org")).await.unwrap();
        people.push(person(999, "example.org"));
        let stats = store.import_people(people.clone(), |_| {}).await.unwrap();
        assert_eq!((stats.added, stats.updated, stats.unchanged), (600, 0, 1));
        let states = |id: &'static str| {
            let store = &store;
            async move { store.person_states(id).await.unwrap().into_iter().map(|s| (s.target_id, s.state)).collect::<Vec<_>>() }
        };
        assert_eq!(states("I000").await, vec![(everyone, ProvState::Pending), (example, ProvState::NotInScope)]);
        assert_eq!(states("I001").await, vec![(everyone, ProvState::Pending), (example, ProvState::Pending)]);
        let staff = store.group_by_name_or_id("Staff").await.unwrap().expect("the group is made");
        assert_eq!(store.group_members(&staff.id).await.unwrap(), vec!["I005".to_string()]);
        assert_eq!(store.person("I005").await.unwrap().groups, vec![staff.id.clone()]);
        assert_eq!(store.job_counts(Some(everyone)).await.unwrap(), (601, 0));
        assert_eq!(store.job_counts(Some(example)).await.unwrap(), (401, 0), "two thirds of the 600, and the one there already");

        // Again: one renamed, one moved into example.org, one new.
        people[5].groups = vec![staff.id.clone()];
        people[1].name.given = "Renamed".into();
        people[3].emails[0].address = "i3@example.org".into();
        people.push(person(600, "example.org"));
        let stats = store.import_people(people, |_| {}).await.unwrap();
        assert_eq!((stats.added, stats.updated, stats.unchanged), (1, 2, 599));
        assert_eq!(states("I003").await, vec![(everyone, ProvState::Pending), (example, ProvState::Pending)]);
        assert_eq!(store.job_counts(Some(everyone)).await.unwrap(), (602, 0), "a renamed person's queued job is replaced, not doubled");
        assert_eq!(store.job_counts(Some(example)).await.unwrap(), (403, 0));
    })
    .await;
}

/// The People list's query on both backends, over several pages: every
/// word must match (LIKE's `%` and `_` taken literally), status and
/// affiliation filters, the orders, deleted people left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_people_list_pages_filters_and_sorts_alike() {
    use registry_host::domain::Status;
    use registry_host::store::{PeopleQuery, PeopleSort};
    each_backend(async |store, _| {
        for i in 0..60 {
            let mut p = Person::example(&format!("L{i:02}"), if i < 2 { "Ada%" } else { "Ada" }, &format!("Family{i:02}"), &format!("l{i}@example.org"));
            if i % 4 == 0 {
                p.roles[0].affiliation = "faculty".into();
            }
            if i == 7 {
                p.status = Status::Suspended;
            }
            store.create_person(p).await.unwrap();
        }
        store.delete_person("L59").await.unwrap();
        let page = |q: PeopleQuery, offset: usize| {
            let store = &store;
            async move {
                let (people, total) = store.people_page(&q, offset, 25).await.unwrap();
                (people.into_iter().map(|p| p.id).collect::<Vec<_>>(), total)
            }
        };
        let family = || PeopleQuery { text: "family".into(), ..Default::default() };
        let mut seen = Vec::new();
        for offset in [0, 25, 50] {
            let (ids, total) = page(family(), offset).await;
            assert_eq!(total, 59, "the deleted one left out");
            seen.extend(ids);
        }
        assert_eq!(seen, (0..59).map(|i| format!("L{i:02}")).collect::<Vec<_>>(), "three pages, each person once, by name");
        assert_eq!(page(PeopleQuery { text: "ADA% family0".into(), ..Default::default() }, 0).await, (vec!["L00".to_string(), "L01".to_string()], 2), "every word, % literal");
        assert_eq!(page(PeopleQuery { text: "a_a".into(), ..Default::default() }, 0).await.1, 0, "_ literal");
        assert_eq!(page(PeopleQuery { status: Some(Status::Suspended), ..Default::default() }, 0).await, (vec!["L07".to_string()], 1));
        assert_eq!(page(PeopleQuery { affiliation: Some("Faculty".into()), ..Default::default() }, 0).await.1, 15);
        let (ids, _) = page(PeopleQuery { sort: PeopleSort::Id, descending: true, ..Default::default() }, 0).await;
        assert_eq!(ids[..2], ["L58".to_string(), "L57".to_string()]);
    })
    .await;
}

/// What a queue looks like: jobs (person, action, state, run), states
/// (person, state, message) and runs (id, total, done, failed, finished).
type Queue = (Vec<(String, String, String, Option<i64>)>, Vec<(String, String, Option<String>)>, Vec<(i64, i64, i64, i64, bool)>);

const JOBS: &str = "SELECT person_id, action, state, run_id FROM jobs ORDER BY person_id, id";
const STATES: &str = "SELECT person_id, state, message FROM provisioned ORDER BY person_id";
const RUNS: &str = "SELECT id, total, done, failed, finished_at IS NOT NULL FROM runs ORDER BY id";

/// "Reprovision all" of a target whose scope is everyone is queued by a few
/// set-based statements on each backend. From one history (an earlier run
/// part done; failed, running, unreadable and deleted people), both queue
/// the same jobs, states and run counts: on SQLite those are what queueing
/// person by person gives (the SQLite store's own test shows it), so the
/// PostgreSQL statements are held to the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reprovision_queues_the_same_on_both_backends() {
    let Some(url) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let pg = crate::pg::connect(&url).await;
    let mut queues: Vec<Queue> = Vec::new();
    for on_postgres in [false, true] {
        let store = if on_postgres { postgres(&url, &KEY).await.unwrap() } else { Store::open(dir.path(), SecretBox::new(&KEY)).unwrap() };
        let server = store.create_server(&server_input("Org")).await.unwrap();
        let target = store.create_target(&target_input("Contacts", server)).await.unwrap();
        for i in 0..40 {
            store.create_person(Person::example(&format!("P{i:02}"), "Given", &format!("Family{i}"), &format!("p{i}@example.org"))).await.unwrap();
        }
        let earlier = store.start_run(target).await.unwrap().id;
        let history = format!(
            "DELETE FROM jobs WHERE person_id < 'P10';
             UPDATE runs SET done = 10 WHERE id = {earlier};
             UPDATE provisioned SET state = 'provisioned' WHERE person_id < 'P10';
             UPDATE jobs SET state = 'failed' WHERE person_id IN ('P10', 'P11');
             UPDATE jobs SET state = 'running' WHERE person_id = 'P12';
             UPDATE people SET data = 'not json' WHERE id = 'P13';"
        );
        // A running job on PostgreSQL is a node's, under a lease.
        let history = if on_postgres {
            history.replace("SET state = 'running'", "SET state = 'running', claimed_by = 'node', lease_until = now() + interval '1 hour'")
        } else {
            history
        };
        let backend = if on_postgres { Backend::Postgres(url.clone()) } else { Backend::Sqlite(dir.path().to_path_buf()) };
        backend.execute(&history).await;
        store.delete_person("P14").await.unwrap();
        let run = store.start_run(target).await.unwrap();
        assert_eq!(run.total, 38, "40 people, less the deleted and the unreadable one (PostgreSQL: {on_postgres})");
        queues.push(if on_postgres {
            (
                pg.query(JOBS, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect(),
                pg.query(STATES, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
                pg.query(RUNS, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect(),
            )
        } else {
            let db = rusqlite::Connection::open(dir.path().join(registry_host::store::DB_FILE)).unwrap();
            (
                db.prepare(JOBS).unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().collect::<Result<_, _>>().unwrap(),
                db.prepare(STATES).unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap(),
                db.prepare(RUNS).unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).unwrap().collect::<Result<_, _>>().unwrap(),
            )
        });
    }
    let (jobs, _, runs) = &queues[0];
    // What that is: the earlier run's 25 queued jobs of live people were
    // superseded and count as done for it (10 + 25 of 40); the running
    // job stays, with the new job queued behind it.
    assert_eq!((runs[0].1, runs[0].2, runs[0].3), (40, 35, 0));
    assert_eq!(jobs.iter().filter(|j| j.0 == "P12").map(|j| j.2.as_str()).collect::<Vec<_>>(), ["running", "queued"]);
    assert_eq!(queues[1], queues[0], "PostgreSQL queued what SQLite did");
}

/// Admins page through many attempts: the provisioning log's cursor visits
/// each exactly once, newest first, and the filter (failures only) holds
/// on every page: 250 attempts, 50 failures, pages of 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_cursor_visits_every_attempt_once() {
    each_backend(async |store, backend| {
        store.create_person(Person::example("L1", "Paged", "Person", "l1@example.org")).await.unwrap();
        backend
            .execute(
                "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 249)
                 INSERT INTO history (person_id, target_name, at, action, ok, message)
                 SELECT 'L1', 'T', 1000 + n, 'updated', n % 5 <> 0, 'attempt ' || n FROM g",
            )
            .await;
        let mut filter = registry_host::store::LogFilter { ok: Some(false), ..Default::default() };
        let (mut seen, mut pages) = (Vec::new(), 0);
        loop {
            let page = store.log(&filter, 20).await.unwrap();
            if page.is_empty() {
                break;
            }
            pages += 1;
            assert!(page.iter().all(|e| !e.ok && e.person_id == "L1"), "{page:?}");
            filter.before = page.last().map(|e| e.id);
            seen.extend(page.into_iter().map(|e| e.message));
        }
        let expected: Vec<String> = (0..250).rev().filter(|i| i % 5 == 0).map(|i| format!("attempt {i}")).collect();
        assert_eq!((pages, seen), (3, expected));
    })
    .await;
}
