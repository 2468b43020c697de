//! Leases on PostgreSQL: a node's claims given back (a failed worker, a
//! restart, a clean stop) and the rescue of jobs whose node stopped
//! renewing them: queued again, dropped when a later change of the person
//! supersedes them, failed after a few rescues. Any node rescues; each job
//! is handled by one.

use std::time::Duration;


use super::PgStore;
use super::queue::{JOB_COLUMNS, job_of};
use crate::domain::{Job, ProvState};
use crate::store::StoreError;

/// What a rescue round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Jobs returned to the queue.
    pub requeued: usize,
    /// Jobs dropped: a later change of the same person was queued.
    pub dropped: usize,
    /// Jobs failed: taken back too often.
    pub failed: usize,
}

impl PgStore {
    /// Puts this node's claimed jobs back in the queue (after their worker
    /// failed), so later jobs of the same people are not blocked.
    /// Only under the claims they were given: a job taken back and claimed
    /// again (by this node too) is the new claim's.
    pub async fn release(&self, jobs: &[Job]) -> Result<u64, StoreError> {
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let claims: Vec<i64> = jobs.iter().map(|j| j.claim).collect();
        Ok(self
            .client()
            .await?
            .execute(
                "WITH mine AS MATERIALIZED (
                   SELECT j.id FROM jobs j JOIN unnest($1::bigint[], $3::bigint[]) AS c(id, seq) ON j.id = c.id AND j.claim_seq = c.seq
                   WHERE j.claimed_by = $2 AND j.state = 'running' AND j.bulk_batch IS NULL ORDER BY j.id FOR NO KEY UPDATE OF j
                 )
                 UPDATE jobs j SET state = 'queued', claimed_by = NULL, lease_until = NULL FROM mine WHERE j.id = mine.id",
                &[&ids, &self.node, &claims],
            )
            .await?)
    }

    /// At start (and at a clean stop): this node's claims from before go
    /// back to the queue. Other nodes' claims are theirs; a dead node's
    /// are rescued when their leases run out.
    pub async fn reset_node(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        client
            .execute("UPDATE group_jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1 AND state = 'running'", &[&self.node])
            .await?;
        let n = client
            .execute(
                "WITH mine AS MATERIALIZED (
                   SELECT id FROM jobs WHERE claimed_by = $1 AND state = 'running' AND bulk_batch IS NULL ORDER BY id FOR NO KEY UPDATE
                 )
                 UPDATE jobs j SET state = 'queued', claimed_by = NULL, lease_until = NULL FROM mine WHERE j.id = mine.id",
                &[&self.node],
            )
            .await?;
        Ok(n as usize)
    }

    /// Takes back jobs whose lease ran out (their node died or stalled):
    /// each goes back to the queue, or is dropped when a later change of
    /// the same person is queued, or fails when taken back too often.
    /// Any node may run it; each job is handled by one.
    pub async fn rescue_expired(&self) -> Result<Rescued, StoreError> {
        let expired = self
            .client()
            .await?
            .query(
                "SELECT id, person_id, target_id FROM jobs
                 WHERE state = 'running' AND lease_until < now() AND bulk_batch IS NULL ORDER BY id LIMIT 500",
                &[],
            )
            .await?;
        let mut done = Rescued::default();
        for row in expired {
            let (id, person, target): (i64, String, i64) = (row.get(0), row.get(1), row.get(2));
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if !Self::lock_pair(&tx, &person, target).await? {
                continue;
            }
            // Still expired under the lock: its node may have renewed it,
            // or another rescuer handled it.
            let Some(row) = tx
                .query_opt(
                    &format!("SELECT {JOB_COLUMNS}, j.rescues, j.claimed_by FROM jobs j WHERE j.id = $1 AND j.state = 'running' AND j.lease_until < now() FOR NO KEY UPDATE"),
                    &[&id],
                )
                .await?
            else {
                continue;
            };
            let job = job_of(&row)?;
            let (rescues, node): (i64, Option<String>) = (row.get(9), row.get(10));
            let node = node.unwrap_or_default();
            let later = tx
                .query_opt(
                    "SELECT id, run_id FROM jobs WHERE person_id = $1 AND target_id = $2 AND id > $3 AND state = 'queued' ORDER BY id LIMIT 1",
                    &[&person, &target, &id],
                )
                .await?;
            if let Some(later) = later {
                tx.execute("DELETE FROM jobs WHERE id = $1", &[&id]).await?;
                let message = format!("taken back from node {node}, which stopped renewing its claim; superseded by a later change");
                Self::history_in(&tx, &job, false, &message, None).await?;
                Self::hand_over_run(&tx, job.run_id, later.get(0), later.get(1)).await?;
                done.dropped += 1;
            } else if rescues + 1 >= self.config.max_rescues {
                let message = format!("taken back {} times from nodes that stopped renewing their claims (last {node}): failed, so that it stops taking nodes down; reprovision the person to try again", rescues + 1);
                tx.execute("UPDATE jobs SET state = 'failed', claimed_by = NULL, lease_until = NULL, rescues = rescues + 1, last_error = $2 WHERE id = $1", &[&id, &message])
                    .await?;
                Self::set_state_in(&tx, &person, target, ProvState::Failed, Some(&message)).await?;
                Self::history_in(&tx, &job, false, &message, None).await?;
                if let Some(run) = job.run_id {
                    Self::count_run_in(&tx, run, false).await?;
                }
                done.failed += 1;
            } else {
                let message = format!("taken back from node {node}, which stopped renewing its claim; queued again");
                tx.execute("UPDATE jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, rescues = rescues + 1 WHERE id = $1", &[&id]).await?;
                Self::set_state_in(&tx, &person, target, ProvState::Pending, Some(&message)).await?;
                done.requeued += 1;
            }
            tx.commit().await?;
        }
        if done != Rescued::default() {
            tracing::warn!(requeued = done.requeued, dropped = done.dropped, failed = done.failed, "took back jobs whose node stopped renewing its claims");
        }
        Ok(done)
    }
}

/// A node's upkeep while it runs: the heartbeat, which renews its leases,
/// and rounds of rescue, which take back any node's expired ones. Stops
/// when dropped (as when the node dies: its leases then run out).
pub struct Upkeep {
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The longest time between two heartbeats: a third of
/// [`super::LIVE_WITHIN`], whatever the lease.
pub const HEARTBEAT_AT_MOST: Duration = Duration::from_secs(20);

impl PgStore {
    /// How often this node beats: a third of its lease, at most
    /// [`HEARTBEAT_AT_MOST`].
    pub(super) fn heartbeat_every(&self) -> Duration {
        (self.config.lease / 3).clamp(Duration::from_millis(100), HEARTBEAT_AT_MOST)
    }

    /// Before a `serve` node takes its id. A process still beating under
    /// it (one `--node-id` given to two processes) makes this one refuse:
    /// taking the id would release that process's claims. A process that
    /// died under it (a crash, then a restart) is waited out: after two of
    /// its heartbeat intervals of silence, the id is free.
    pub(super) async fn wait_for_id(&self) -> Result<(), StoreError> {
        let mut seen: Option<i64> = None;
        loop {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT (extract(epoch FROM heartbeat_at) * 1000000)::bigint, (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint,
                            COALESCE(heartbeat_ms, $2), pid
                     FROM nodes WHERE id = $1 AND stopped_at IS NULL",
                    &[&self.node, &(HEARTBEAT_AT_MOST.as_millis() as i64)],
                )
                .await?;
            let Some(r) = row else { return Ok(()) };
            let (beat, silent_ms, every_ms, pid): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            if seen.is_some_and(|s| s != beat) {
                return Err(StoreError::NodeIdInUse { node: self.node.clone(), pid });
            }
            if silent_ms > 2 * every_ms + 1000 {
                return Ok(());
            }
            if seen.is_none() {
                tracing::warn!(node = %self.node, pid, silent_ms, "a process under this node id beat recently; waiting to see whether it still runs");
            }
            seen = Some(beat);
            tokio::time::sleep(Duration::from_millis((every_ms / 4).clamp(50, 1000) as u64)).await;
        }
    }

    /// Starts this node's upkeep: a heartbeat and a rescue round every
    /// third of the lease, so a live node renews each lease twice before it
    /// could run out, and at least every [`HEARTBEAT_AT_MOST`], so a live
    /// node always looks live (`LIVE_WITHIN`) however long its lease. A
    /// failed round is logged and tried again next time.
    pub fn start_upkeep(&self) -> Upkeep {
        let every = self.heartbeat_every();
        // Two loops: a long rescue round (a dead node's hundreds of jobs)
        // must never hold up this node's own heartbeat, or its leases run
        // out too.
        let store = self.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Workers check their own claims before each call
                // (`hold_leases`); the heartbeat keeps every one alive.
                if let Err(e) = store.heartbeat().await {
                    tracing::warn!(error = %e, "the heartbeat failed; the leases hold until it comes through");
                }
            }
        });
        let store = self.clone();
        let rescue = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = store.rescue_expired().await {
                    tracing::warn!(error = %e, "a rescue round failed");
                }
                if let Err(e) = store.rescue_expired_group_jobs().await {
                    tracing::warn!(error = %e, "a rescue round of group jobs failed");
                }
            }
        });
        Upkeep { tasks: [heartbeat, rescue] }
    }
}
