//! Finishing on a shared database: a job of a deleted target, a batch's
//! records, bulk batches adopted by another node, group jobs, the upkeep
//! that keeps a live node's claims and rescues a dead one's, and the
//! queue bench on both stores.

use std::time::Duration;

use registry_host::domain::{Action, Done};

use crate::common::done;
use crate::pg::{connect, database, node};
use crate::postgres_queue::{count, expire, seed};

/// A job whose target was deleted while it ran (its jobs and states go
/// with it) finishes as nothing to record, not as an error.
#[tokio::test]
async fn finishing_a_job_of_a_deleted_target_records_nothing() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let n = node(&url, "n", 60_000).await;
    let target = seed(&db, 1, 2).await[0];
    n.enqueue("P1", target, Action::Added, None).await.unwrap();
    n.enqueue("P2", target, Action::Added, None).await.unwrap();
    let jobs = n.claim_for(2, &[], &[]).await.unwrap();
    db.execute("DELETE FROM targets WHERE id = $1", &[&target]).await.unwrap();
    assert_eq!(n.finish_done(&jobs.iter().map(done).collect::<Vec<_>>()).await.unwrap(), 0);
    assert!(!n.finish_retry(&jobs[0], 0, "x").await.unwrap());
    assert!(!n.finish_failed(&jobs[1], "x").await.unwrap());
    n.finish_waiting(&jobs, "x").await.unwrap();
}

/// A bulk batch outlives the node that submitted it: another node takes
/// it when due (one node at a time), adopts its jobs under new claims and
/// records their outcomes; the submitter's late results change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_batch_is_polled_by_one_node_which_records_its_jobs() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let (a, b) = (node(&url, "a", 60_000).await, node(&url, "b", 60_000).await);
    let target = seed(&db, 1, 3).await[0];
    for p in ["P1", "P2", "P3"] {
        a.enqueue(p, target, Action::Added, None).await.unwrap();
    }
    let jobs = a.claim_for(10, &[], &[]).await.unwrap();
    let settings = vec![("object".to_string(), "Contact".to_string())];
    let batch = a.submit_bulk(target, "job:1", &settings, 0, &jobs).await.unwrap();
    assert_eq!(a.bulk_in_flight().await.unwrap(), (1, 3));
    // Node a dies; its batch's jobs are not rescued (the batch holds them).
    expire(&db, "a").await;
    assert_eq!(b.rescue_expired().await.unwrap(), Default::default());
    let (x, y) = tokio::join!(a.take_due_bulk(), b.take_due_bulk());
    let taken: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken.len(), 1, "one node polls it");
    let (due, adopted) = &taken[0];
    assert_eq!((due.id, due.reference.as_str(), &due.settings), (batch, "job:1", &settings));
    assert_eq!(adopted.iter().map(|j| (j.id, j.claim)).collect::<Vec<_>>(), jobs.iter().map(|j| (j.id, j.claim + 1)).collect::<Vec<_>>());
    let poller = if count(&db, "SELECT count(*) FROM jobs WHERE claimed_by = 'b'").await == 3 { &b } else { &a };
    assert_eq!(a.finish_done(&jobs.iter().map(done).collect::<Vec<_>>()).await.unwrap(), 0, "the submitter's old claims record nothing");
    assert_eq!(poller.finish_done(&adopted[..2].iter().map(done).collect::<Vec<_>>()).await.unwrap(), 2);
    poller.finish_bulk(batch).await.unwrap();
    assert_eq!(poller.bulk_in_flight().await.unwrap(), (0, 0));
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'queued' AND claimed_by IS NULL").await, 1, "the unsettled job is queued again");
}

/// Group jobs across nodes: one claim per job, in order per group and
/// target, finishes guarded by the claim, a dead node's job taken back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_jobs_are_claimed_once_in_order_and_rescued() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let (a, b) = (node(&url, "a", 60_000).await, node(&url, "b", 60_000).await);
    let target = seed(&db, 1, 0).await[0];
    db.batch_execute(&format!(
        "INSERT INTO groups (id, name, created_at, updated_at) VALUES ('G1', 'One', 0, 0), ('G2', 'Two', 0, 0);
         INSERT INTO group_jobs (group_id, target_id, action, created_at) VALUES ('G1', {target}, 'group_added', 0), ('G1', {target}, 'group_updated', 0), ('G2', {target}, 'group_added', 0);"
    ))
    .await
    .unwrap();
    let (x, y) = tokio::join!(a.claim_group_job(), b.claim_group_job());
    let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
    let mut groups = vec![x.group_id.clone(), y.group_id.clone()];
    groups.sort();
    assert_eq!(groups, ["G1", "G2"], "G1's second job waits for its first");
    assert!(a.claim_group_job().await.unwrap().is_none());
    let (g1, holder) = if x.group_id == "G1" { (x.clone(), &a) } else { (y.clone(), &b) };
    let other = if x.group_id == "G1" { &b } else { &a };
    assert!(!other.finish_group_done(&g1, Some(("Group".into(), "00G1".into())), false, &[], "made").await.unwrap(), "not its claim");
    assert!(!other.hold_group_lease(&g1).await.unwrap(), "not its claim: no call for it");
    // Held: the lease is renewed to a full one before the call.
    db.execute("UPDATE group_jobs SET lease_until = now() + interval '1 second' WHERE id = $1", &[&g1.id]).await.unwrap();
    assert!(holder.hold_group_lease(&g1).await.unwrap());
    let left: f64 = db.query_one("SELECT extract(epoch FROM lease_until - now())::float8 FROM group_jobs WHERE id = $1", &[&g1.id]).await.unwrap().get(0);
    assert!(left > 50.0, "a full lease from now, not the second it had: {left}");
    db.execute("UPDATE group_jobs SET lease_until = now() - interval '1 second' WHERE id = $1", &[&g1.id]).await.unwrap();
    assert_eq!(other.rescue_expired_group_jobs().await.unwrap(), 1);
    assert!(!holder.hold_group_lease(&g1).await.unwrap(), "taken back: the old holder starts no call");
    let again = other.claim_group_job().await.unwrap().unwrap();
    assert_eq!((again.id, again.claim), (g1.id, g1.claim + 1));
    assert!(!holder.hold_group_lease(&g1).await.unwrap(), "claimed again by another: still not the old holder's");
    assert!(!holder.finish_group_retry(&g1, 0, "late").await.unwrap());
    assert!(other.finish_group_done(&again, Some(("Group".into(), "00G1".into())), false, &[], "made").await.unwrap());
    let next = holder.claim_group_job().await.unwrap().unwrap();
    assert_eq!((next.group_id.as_str(), next.action.as_str()), ("G1", "group_updated"));

    // One that keeps outliving its nodes is failed after the third rescue
    // (the group's state with it), as a person's job is.
    db.execute("INSERT INTO provisioned_groups (group_id, target_id, state, updated_at) VALUES ('G1', $1, 'pending', 0) ON CONFLICT DO NOTHING", &[&target]).await.unwrap();
    let mut job = next;
    for rescue in 1..=3 {
        db.execute("UPDATE group_jobs SET lease_until = now() - interval '1 second' WHERE id = $1", &[&job.id]).await.unwrap();
        assert_eq!(other.rescue_expired_group_jobs().await.unwrap(), 1);
        if rescue < 3 {
            job = holder.claim_group_job().await.unwrap().expect("queued again");
        }
    }
    assert!(holder.claim_group_job().await.unwrap().is_none(), "failed, not queued");
    let (state, error): (String, String) = {
        let r = db.query_one("SELECT state, last_error FROM group_jobs WHERE id = $1", &[&job.id]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(state, "failed");
    assert!(error.contains("taken back 3 times"), "{error}");
    let group_state: String = db.query_one("SELECT state FROM provisioned_groups WHERE group_id = 'G1' AND target_id = $1", &[&target]).await.unwrap().get(0);
    assert_eq!(group_state, "failed");
}

/// `bench queue` runs on both stores and records every job: its table
/// has a row for SQLite and for PostgreSQL with 1 and 3 nodes, and it
/// leaves no database of its own behind.
#[tokio::test]
async fn the_queue_bench_runs_on_both_stores() {
    let Some(url) = database().await else { return };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .args(["bench", "queue", "--jobs", "300", "--batch", "40", "--workers", "2", "--database", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for row in ["| SQLite | 1 |", "| PostgreSQL | 1 |", "| PostgreSQL | 3 |"] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    // The failure path too: every job recorded failed (the bench checks
    // the database's count before it drops it).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .args(["bench", "queue", "--failed", "--jobs", "120", "--batch", "40", "--workers", "2", "--database", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("recorded failed") && stdout.contains("| PostgreSQL | 3 |"), "{stdout}");
    let left = count(&connect(&url).await, "SELECT count(*) FROM pg_database WHERE datname LIKE 'registry_bench_%'").await;
    assert_eq!(left, 0, "the bench's databases are dropped");
}

/// A batch recorded done leaves what the pages show: each person's state
/// and remote record, a history line with the target's name and the
/// record, and its run counted and finished.
#[tokio::test]
async fn a_finished_batch_records_states_history_and_its_run() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let n = node(&url, "n", 60_000).await;
    let target = seed(&db, 1, 3).await[0];
    let run: i64 = db.query_one("INSERT INTO runs (target_id, total, started_at) VALUES ($1, 3, 0) RETURNING id", &[&target]).await.unwrap().get(0);
    for p in ["P1", "P2", "P3"] {
        n.enqueue(p, target, Action::Reprovision, Some(run)).await.unwrap();
    }
    let mut jobs = n.claim_for(3, &[], &[]).await.unwrap();
    let mut removed = done(&jobs[2]);
    removed.remote = None;
    jobs.truncate(2);
    let mut batch: Vec<Done> = jobs.iter().map(done).collect();
    batch.push(removed);
    assert_eq!(n.finish_done(&batch).await.unwrap(), 3);
    let states: Vec<(String, String, Option<String>)> =
        db.query("SELECT person_id, state, remote_id FROM provisioned ORDER BY person_id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        states,
        vec![("P1".into(), "provisioned".into(), Some("RP1".into())), ("P2".into(), "provisioned".into(), Some("RP2".into())), ("P3".into(), "removed".into(), None)]
    );
    let lines: Vec<(String, String, bool, Option<String>)> =
        db.query("SELECT person_id, target_name, ok, remote FROM history ORDER BY person_id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(lines[0], ("P1".into(), "T0".into(), true, Some("Contact RP1".into())));
    assert_eq!(lines[2].3, None);
    let (done_n, finished): (i64, Option<i64>) = db.query_one("SELECT done, finished_at FROM runs WHERE id = $1", &[&run]).await.map(|r| (r.get(0), r.get(1))).unwrap();
    assert_eq!(done_n, 3);
    assert!(finished.is_some(), "the run is finished");
}

/// A live node's upkeep keeps its claims past their lease; once it dies
/// (its upkeep stops), another node's upkeep takes the job back after the
/// lease runs out, and the job can be claimed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upkeep_keeps_a_live_nodes_claims_and_rescues_a_dead_ones() {
    let Some(url) = database().await else { return };
    let db = connect(&url).await;
    let (a, b) = (node(&url, "a", 1_500).await, node(&url, "b", 1_500).await);
    let target = seed(&db, 1, 1).await[0];
    a.enqueue("P1", target, Action::Added, None).await.unwrap();
    let (upkeep_a, _upkeep_b) = (a.start_upkeep(), b.start_upkeep());
    let job = a.claim_for(1, &[], &[]).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM jobs WHERE state = 'running' AND claimed_by = 'a'").await, 1, "renewed past its 1.5 s lease");
    assert_eq!(a.hold_leases(std::slice::from_ref(&job)).await.unwrap(), vec![job.id], "still its, under the same claim");
    drop(upkeep_a);
    let mut rescued = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if count(&db, "SELECT count(*) FROM jobs WHERE state = 'queued' AND rescues = 1").await == 1 {
            rescued = true;
            break;
        }
    }
    assert!(rescued, "b's upkeep took the dead node's job back");
    assert_eq!(b.claim_for(1, &[], &[]).await.unwrap()[0].claim, job.claim + 1);
}
