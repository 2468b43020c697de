//! The job queue on a real PostgreSQL (the cluster `tests/run` starts),
//! with several stores as several nodes: each race the reference note
//! reproduced with the SQLite-era queries is shown impossible, and a
//! random mix of claims, finishes and enqueues from four nodes never runs
//! two jobs of one pair at once nor out of order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use registry_host::domain::Action;
use registry_host::store::postgres::PgStore;
use tokio_postgres::Client;

use crate::common::done;
use crate::pg::{connect, database, node};

/// A server with a token, `targets` targets on it and `people` people
/// (`P1`...); the targets' ids.
pub async fn seed(db: &Client, targets: usize, people: usize) -> Vec<i64> {
    let server: i64 = db
        .query_one(
            "INSERT INTO oauth2_servers (name, plugin, server_url, client_id, grant_type, token_status, created_at, updated_at)
             VALUES ('S', 'p', 'https://login.example.com', 'c', 'client_credentials', 'set', 0, 0) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut ids = Vec::new();
    for t in 0..targets {
        let id: i64 = db
            .query_one("INSERT INTO targets (name, plugin, server_id, settings, created_at, updated_at) VALUES ($1, 'p', $2, '\\x', 0, 0) RETURNING id", &[&format!("T{t}"), &server])
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    db.execute(
        "INSERT INTO people (id, status, sort_name, search, data, created_at, updated_at)
         SELECT 'P' || g, 'active', 'P' || g, '', '{}', 0, 0 FROM generate_series(1, $1::bigint) g",
        &[&(people as i64)],
    )
    .await
    .unwrap();
    ids
}

pub async fn count(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Race 2: two nodes claiming at once never take one job twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claiming_at_once_never_take_one_job_twice() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let a = node(&url, "a", 60_000).await;
    let b = node(&url, "b", 60_000).await;
    let target = seed(&db, 1, 400).await[0];
    for i in 1..=400 {
        a.enqueue(&format!("P{i}"), target, Action::Added, None).await.unwrap();
    }
    let (mut seen, mut claims) = (HashSet::new(), 0);
    loop {
        let (x, y) = tokio::join!(a.claim_for(7, &[], &[]), b.claim_for(7, &[], &[]));
        let (x, y) = (x.unwrap(), y.unwrap());
        if x.is_empty() && y.is_empty() {
            break;
        }
        for j in x.iter().chain(&y) {
            assert!(seen.insert(j.id), "job {} claimed twice", j.id);
            claims += 1;
        }
    }
    assert_eq!((claims, seen.len()), (400, 400));
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running'").await, 400);
    assert_eq!(count(&db, "SELECT count(DISTINCT claimed_by) FROM jobs").await, 2, "both nodes took some");
}

/// Race 1: a node starting again releases only its own earlier claims;
/// another live node's stay with it.
#[tokio::test]
async fn a_restart_releases_only_the_nodes_own_claims() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let a = node(&url, "a", 60_000).await;
    let b = node(&url, "b", 60_000).await;
    let target = seed(&db, 1, 4).await[0];
    for i in 1..=4 {
        a.enqueue(&format!("P{i}"), target, Action::Added, None).await.unwrap();
    }
    let mine = a.claim_for(2, &[], &[]).await.unwrap();
    let theirs = b.claim_for(2, &[], &[]).await.unwrap();
    assert_eq!((mine.len(), theirs.len()), (2, 2));
    let a_again = node(&url, "a", 60_000).await;
    assert_eq!(a_again.reset_node().await.unwrap(), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running' AND claimed_by = 'b'").await, 2, "b's claims are b's");
    assert_eq!(b.finish_done(&theirs.iter().map(done).collect::<Vec<_>>()).await.unwrap(), 2);
    // a's old claims are gone: its late results change nothing.
    assert_eq!(a.finish_done(&mine.iter().map(done).collect::<Vec<_>>()).await.unwrap(), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'queued'").await, 2);
}

/// Race 3: a change queued for a person whose job another node is running
/// does not delete that job; the new one waits behind it.
#[tokio::test]
async fn a_new_change_never_deletes_a_running_job_and_waits_behind_it() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let a = node(&url, "a", 60_000).await;
    let b = node(&url, "b", 60_000).await;
    let target = seed(&db, 1, 1).await[0];
    a.enqueue("P1", target, Action::Added, None).await.unwrap();
    let running = a.claim_for(1, &[], &[]).await.unwrap();
    assert_eq!(running.len(), 1);
    let later = b.enqueue("P1", target, Action::Updated, None).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running'").await, 1, "the running job stays");
    assert!(b.claim_for(5, &[], &[]).await.unwrap().is_empty(), "the later job waits for the running one");
    assert_eq!(a.finish_done(&[done(&running[0])]).await.unwrap(), 1);
    let next = b.claim_for(5, &[], &[]).await.unwrap();
    assert_eq!(next.iter().map(|j| (j.id, j.action)).collect::<Vec<_>>(), vec![(later, Action::Updated)]);
}

/// Race 4: ids of one pair follow commit order. A transaction queueing a
/// job for a pair holds the pair until it commits; a second one for the
/// same pair waits, then draws the later id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairs_jobs_are_ordered_by_commit() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let a = node(&url, "a", 60_000).await;
    let target = seed(&db, 1, 1).await[0];
    // The first change's transaction, held open.
    let mut first = connect(&url).await;
    let tx = first.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO provisioned (person_id, target_id, state, updated_at) VALUES ('P1', $1, 'pending', 0)
         ON CONFLICT (person_id, target_id) DO UPDATE SET state = 'pending'",
        &[&target],
    )
    .await
    .unwrap();
    let b = a.clone();
    let second = tokio::spawn(async move { b.enqueue("P1", target, Action::Updated, None).await.unwrap() });
    // Until the second change is seen waiting on a lock.
    let mut waited = false;
    for _ in 0..500 {
        if count(&db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").await > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waited && !second.is_finished(), "the second change waits for the pair");
    let first_id: i64 = tx
        .query_one("INSERT INTO jobs (person_id, target_id, action, created_at) VALUES ('P1', $1, 'added', 0) RETURNING id", &[&target])
        .await
        .unwrap()
        .get(0);
    tx.commit().await.unwrap();
    let second_id = second.await.unwrap();
    assert!(first_id < second_id, "{first_id} committed first, so it is earlier than {second_id}");
    // The second replaced the first (a queued job is superseded), in order.
    let claimed = a.claim_for(5, &[], &[]).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![second_id]);
}

/// Race 5: a node whose lease ran out loses the job; its late result
/// changes nothing, and the node that took the job over finishes it.
#[tokio::test]
async fn a_stale_node_changes_nothing_and_its_job_is_rescued() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let slow = node(&url, "slow", 60_000).await;
    let other = node(&url, "other", 60_000).await;
    let target = seed(&db, 1, 1).await[0];
    other.enqueue("P1", target, Action::Added, None).await.unwrap();
    let lost = slow.claim_for(1, &[], &[]).await.unwrap();
    assert_eq!(slow.hold_leases(&lost).await.unwrap(), vec![lost[0].id], "held: its call may start");
    // The slow node's lease runs out (it stalled past it).
    expire(&db, "slow").await;
    let rescued = other.rescue_expired().await.unwrap();
    assert_eq!((rescued.requeued, rescued.dropped, rescued.failed), (1, 0, 0));
    let taken = other.claim_for(1, &[], &[]).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].claim, lost[0].claim + 1);
    assert!(slow.hold_leases(&lost).await.unwrap().is_empty(), "taken back: the slow node starts no call for it");
    assert!(slow.heartbeat().await.unwrap().is_empty(), "the heartbeat tells the slow node it holds nothing");
    assert_eq!(slow.finish_done(&[done(&lost[0])]).await.unwrap(), 0);
    assert!(!slow.finish_retry(&lost[0], 10, "late").await.unwrap());
    assert!(!slow.finish_failed(&lost[0], "late").await.unwrap());
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running' AND claimed_by = 'other'").await, 1);
    assert_eq!(other.finish_done(&[done(&taken[0])]).await.unwrap(), 1);
    let state: String = db.query_one("SELECT state FROM provisioned WHERE person_id = 'P1'", &[]).await.unwrap().get(0);
    assert_eq!(state, "provisioned");
}

/// Ends `node`'s leases now, as if it had stalled past them.
pub async fn expire(db: &Client, node: &str) {
    db.execute("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE claimed_by = $1 AND state = 'running'", &[&node]).await.unwrap();
}

/// A job taken back from a worker and claimed again by the same node
/// belongs to the new claim: the old claim's release and results change
/// nothing, and the heartbeat names the claim it renewed.
#[tokio::test]
async fn a_job_claimed_again_by_the_same_node_is_the_new_claims() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let n = node(&url, "n", 60_000).await;
    let target = seed(&db, 1, 1).await[0];
    n.enqueue("P1", target, Action::Added, None).await.unwrap();
    let old = n.claim_for(1, &[], &[]).await.unwrap();
    expire(&db, "n").await;
    assert_eq!(n.rescue_expired().await.unwrap().requeued, 1);
    let new = n.claim_for(1, &[], &[]).await.unwrap();
    assert_eq!((new[0].id, new[0].claim), (old[0].id, old[0].claim + 1));
    assert_eq!(n.heartbeat().await.unwrap(), vec![(new[0].id, new[0].claim)]);
    assert_eq!(n.release(&old).await.unwrap(), 0, "the stalled worker's release leaves the new claim alone");
    assert_eq!(n.finish_done(&[done(&old[0])]).await.unwrap(), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running'").await, 1);
    assert_eq!(n.release(&new).await.unwrap(), 1);
}

/// A rescued job a later change supersedes is dropped; one taken back
/// too often is failed; a heartbeat keeps a live node's jobs.
#[tokio::test]
async fn rescue_drops_superseded_jobs_fails_repeat_offenders_and_spares_live_nodes() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let dying = node(&url, "dying", 60_000).await;
    let live = node(&url, "live", 60_000).await;
    let rescuer = node(&url, "rescuer", 60_000).await;
    let target = seed(&db, 1, 3).await[0];
    for p in ["P1", "P2", "P3"] {
        rescuer.enqueue(p, target, Action::Added, None).await.unwrap();
    }
    let dead = dying.claim_for(2, &[], &[]).await.unwrap();
    let kept = live.claim_for(1, &[], &[]).await.unwrap();
    assert_eq!((dead.len(), kept.len()), (2, 1));
    // A later change of the first dead job's person.
    rescuer.enqueue(&dead[0].person_id, target, Action::Updated, None).await.unwrap();
    db.execute("UPDATE jobs SET rescues = 2 WHERE id = $1", &[&dead[1].id]).await.unwrap();
    expire(&db, "dying").await;
    assert_eq!(live.heartbeat().await.unwrap(), vec![(kept[0].id, kept[0].claim)]);
    let r = rescuer.rescue_expired().await.unwrap();
    assert_eq!((r.requeued, r.dropped, r.failed), (0, 1, 1));
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running' AND claimed_by = 'live'").await, 1);
    let failed: String = db.query_one("SELECT message FROM provisioned WHERE person_id = $1", &[&dead[1].person_id]).await.unwrap().get(0);
    assert!(failed.contains("taken back 3 times"), "{failed}");
    let next = rescuer.claim_for(5, &[], &[]).await.unwrap();
    assert_eq!(next.iter().map(|j| (j.person_id.as_str(), j.action)).collect::<Vec<_>>(), vec![(dead[0].person_id.as_str(), Action::Updated)]);
}

/// Several nodes started at once on an empty database migrate it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once_and_list_each_other() {
    let Some(url) = database().await else { return };
    let (a, b, c) = tokio::join!(node(&url, "a", 60_000), node(&url, "b", 60_000), node(&url, "c", 60_000));
    let db = connect(&url).await;
    let version = a.schema_version().await.unwrap() as i64;
    assert!(version >= 2);
    assert_eq!(count(&db, "SELECT count(*) FROM schema_migrations").await, version, "each migration once");
    assert_eq!(a.migrate().await.unwrap(), 0, "nothing left to do");
    let target = seed(&db, 1, 2).await[0];
    a.enqueue("P1", target, Action::Added, None).await.unwrap();
    b.claim_for(1, &[], &[]).await.unwrap();
    let mut live = c.live_nodes(Duration::from_secs(30)).await.unwrap();
    live.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(live.iter().map(|n| (n.id.as_str(), n.claimed)).collect::<Vec<_>>(), vec![("a", 0), ("b", 1), ("c", 0)]);
    // A fourth node started mid-run leaves the others' jobs alone.
    let d = node(&url, "d", 60_000).await;
    assert_eq!(d.reset_node().await.unwrap(), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running' AND claimed_by = 'b'").await, 1);
    d.stop().await.unwrap();
    assert_eq!(b.stop().await.unwrap(), 1, "a clean stop gives its claims back");
    let mut live: Vec<String> = c.live_nodes(Duration::from_secs(30)).await.unwrap().into_iter().map(|n| n.id).collect();
    live.sort();
    assert_eq!(live, vec!["a", "c"]);
}

/// Four nodes claim, finish, retry and queue at random over 30 people and
/// two targets. At no point does a pair have two running jobs, and the ids
/// claimed for each pair only ever increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_at_random_keep_each_pair_one_at_a_time_and_in_order() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(node(&url, &format!("n{i}"), 60_000).await);
    }
    let targets = seed(&db, 2, 30).await;
    let watched = nodes.clone();
    let log = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<((String, i64), i64)>::new()));
    let mut tasks = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        let targets = targets.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
            let mut next = move |m: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % m
            };
            for _ in 0..150 {
                match next(3) {
                    0 => {
                        let person = format!("P{}", next(30) + 1);
                        let target = targets[next(2) as usize];
                        n.enqueue(&person, target, [Action::Added, Action::Updated][next(2) as usize], None).await.unwrap();
                    }
                    _ => {
                        let jobs = n.claim_for(1 + next(4) as usize, &[], &[]).await.unwrap();
                        // Logged before any of them finishes: a pair's next
                        // job can only be claimed after that.
                        log.lock().await.extend(jobs.iter().map(|j| ((j.person_id.clone(), j.target_id), j.id)));
                        for j in jobs {
                            match next(4) {
                                0 => assert!(n.finish_retry(&j, 0, "again").await.unwrap()),
                                _ => assert_eq!(n.finish_done(&[done(&j)]).await.unwrap(), 1),
                            }
                        }
                    }
                }
            }
        }));
    }
    // Watches for the whole run, however long it takes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let db = connect(&url).await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut worst, mut looks) = (0i64, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                looks += 1;
                let n: i64 = db
                    .query_one("SELECT COALESCE(MAX(c), 0) FROM (SELECT count(*) AS c FROM jobs WHERE state = 'running' GROUP BY person_id, target_id) x", &[])
                    .await
                    .unwrap()
                    .get(0);
                worst = worst.max(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (worst, looks)
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, looks) = watcher.await.unwrap();
    assert!(looks > 10, "the watcher looked during the run: {looks} times");
    assert!(worst <= 1, "a pair had two running jobs");
    // The unique index would have refused a second running job of a pair;
    // no claim ever tried.
    assert_eq!(watched.iter().map(PgStore::tripwire_hits).sum::<u64>(), 0);
    // In claim order, a pair's ids never go back (a retried job may come
    // again with the same id).
    let log = log.lock().await;
    let mut last: HashMap<&(String, i64), i64> = HashMap::new();
    for (pair, id) in log.iter() {
        if let Some(prev) = last.insert(pair, *id) {
            assert!(*id >= prev, "{pair:?}: job {id} claimed after the later job {prev}");
        }
    }
    assert!(last.len() > 10, "the mix touched many pairs: {}", last.len());
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running'").await, 0, "every claim was finished");
}

/// A pair's claims, as recorded by the nodes in the order they made them,
/// never go back to an earlier job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_of_a_pair_only_move_forward() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let a = node(&url, "a", 60_000).await;
    let b = node(&url, "b", 60_000).await;
    let target = seed(&db, 1, 5).await[0];
    let log = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<(String, i64)>::new()));
    // Two producers change the same five people at once, so that their
    // transactions race for each pair.
    let producers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|n| {
            tokio::spawn(async move {
                for round in 0..40 {
                    for p in 1..=5 {
                        n.enqueue(&format!("P{p}"), target, if round % 2 == 0 { Action::Added } else { Action::Updated }, None).await.unwrap();
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut workers = Vec::new();
    for n in [a.clone(), b.clone()] {
        let log = log.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..300 {
                let jobs = n.claim_for(3, &[], &[]).await.unwrap();
                {
                    let mut log = log.lock().await;
                    for j in &jobs {
                        log.push((j.person_id.clone(), j.id));
                    }
                }
                for j in &jobs {
                    n.finish_done(&[done(j)]).await.unwrap();
                }
                if jobs.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    for w in workers {
        w.await.unwrap();
    }
    let log = log.lock().await;
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (p, id) in log.iter() {
        if let Some(prev) = last.insert(p, *id) {
            assert!(*id > prev, "{p}: job {id} claimed after the later job {prev}");
        }
    }
    assert!(log.len() >= 5);
    assert_eq!(a.tripwire_hits() + b.tripwire_hits(), 0);
}

/// LISTEN/NOTIFY: a burst of changes on one node wakes another node's
/// idle workers at once, with a NOTIFY or two, not one per change; each
/// topic wakes only its own waiters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_wakes_the_other_nodes_with_one_notify() {
    let Some(url) = database().await else { return };
    let (a, b) = (node(&url, "a", 60_000).await, node(&url, "b", 60_000).await);
    let (wa, wb) = (a.start_wakeups(&url).await.unwrap(), b.start_wakeups(&url).await.unwrap());
    let jobs = wa.woken(registry_host::store::postgres::Topic::Jobs);
    let tokens = wa.woken(registry_host::store::postgres::Topic::Tokens);
    let woken = jobs.notified();
    let not_woken = tokens.notified();
    tokio::pin!(woken, not_woken);
    woken.as_mut().enable();
    not_woken.as_mut().enable();
    for _ in 0..200 {
        wb.tell(registry_host::store::postgres::Topic::Jobs);
    }
    tokio::time::timeout(Duration::from_secs(5), woken).await.expect("node a was woken");
    assert!(tokio::time::timeout(Duration::from_millis(300), not_woken).await.is_err(), "the tokens topic stayed quiet");
    let (sent, _) = wb.counts();
    assert!((1..=3).contains(&sent), "200 changes sent {sent} NOTIFYs");
    assert!(wa.counts().1 >= 1);
    // New tokens on node b (what an Obtain New Token tells): node a's
    // waiters for them wake.
    let arrived = tokens.notified();
    tokio::pin!(arrived);
    arrived.as_mut().enable();
    wb.tell(registry_host::store::postgres::Topic::Tokens);
    tokio::time::timeout(Duration::from_secs(5), arrived).await.expect("node a heard of the new tokens");
}
