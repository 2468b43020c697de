//! Bulk batches and group jobs on PostgreSQL: the two other kinds of work
//! nodes share. A due batch is taken by one node (`SKIP LOCKED`, its poll
//! leased on the database's clock), which adopts the batch's jobs under a
//! new claim, so that its results are its to record even when another node
//! submitted the batch (and died). Group jobs are claimed and finished like
//! person jobs: one statement, a lease, and finishes guarded by the claim.

use deadpool_postgres::Transaction;

use super::PgStore;
use crate::domain::{GroupAction, GroupJob, Job};
use crate::store::{BulkBatch, POLL_LEASE_MS, SqliteStore, StoreError, now_ms};

/// The database's clock in milliseconds, in SQL.
const DB_NOW_MS: &str = "(extract(epoch FROM now()) * 1000)::bigint";

impl PgStore {
    /// Records a batch a plugin submitted for `target_id` (its settings
    /// sealed), holding this node's running `jobs` (under their claims).
    pub async fn submit_bulk(&self, target_id: i64, reference: &str, settings: &[(String, String)], poll_after_ms: u32, jobs: &[Job]) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                &format!("INSERT INTO bulk_batches (target_id, reference, settings, poll_at, created_at) VALUES ($1, $2, '\\x', {DB_NOW_MS} + $3, $4) RETURNING id"),
                &[&target_id, &reference, &i64::from(poll_after_ms), &now_ms()],
            )
            .await?
            .get(0);
        let sealed = self.secrets.seal(&SqliteStore::bulk_settings_aad(id), &serde_json::to_string(settings).expect("plain data"));
        tx.execute("UPDATE bulk_batches SET settings = $1 WHERE id = $2", &[&sealed, &id]).await?;
        let (ids, claims): (Vec<i64>, Vec<i64>) = jobs.iter().map(|j| (j.id, j.claim)).unzip();
        tx.execute(
            "WITH mine AS MATERIALIZED (
               SELECT j.id FROM jobs j JOIN unnest($2::bigint[], $3::bigint[]) AS c(id, seq) ON j.id = c.id AND j.claim_seq = c.seq
               WHERE j.claimed_by = $4 AND j.state = 'running' ORDER BY j.id FOR NO KEY UPDATE OF j
             )
             UPDATE jobs j SET bulk_batch = $1 FROM mine WHERE j.id = mine.id",
            &[&id, &ids, &claims, &self.node],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The batch most overdue for a poll, if any, taken by this node: its
    /// next poll is pushed [`POLL_LEASE_MS`] ahead (no other node polls it
    /// meanwhile) and its jobs are this node's now, under new claims.
    pub async fn take_due_bulk(&self) -> Result<Option<(BulkBatch, Vec<Job>)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE bulk_batches b SET poll_at = {DB_NOW_MS} + $1, polls = b.polls + 1
                     FROM (SELECT id FROM bulk_batches WHERE poll_at <= {DB_NOW_MS} ORDER BY poll_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED) due
                     WHERE b.id = due.id RETURNING b.id, b.target_id, b.reference, b.polls - 1, b.failures, b.settings"
                ),
                // Never shorter than a job's lease, which the node's
                // settings keep above a plugin call's deadline.
                &[&POLL_LEASE_MS.max(self.lease_ms())],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let id: i64 = r.get(0);
        let json = self.secrets.open(&SqliteStore::bulk_settings_aad(id), &r.get::<_, Vec<u8>>(5))?;
        let settings = serde_json::from_str(&json).map_err(|e| StoreError::Unreadable(format!("settings of bulk batch {id}: {e}")))?;
        let jobs = self.adopt_bulk_jobs(&tx, id).await?;
        tx.commit().await?;
        Ok(Some((BulkBatch { id, target_id: r.get(1), reference: r.get(2), settings, polls: r.get(3), failures: r.get(4) }, jobs)))
    }

    async fn adopt_bulk_jobs(&self, tx: &Transaction<'_>, batch: i64) -> Result<Vec<Job>, StoreError> {
        let rows = tx
            .query(
                "WITH theirs AS MATERIALIZED (SELECT id FROM jobs WHERE bulk_batch = $1 AND state = 'running' ORDER BY id FOR NO KEY UPDATE)
                 UPDATE jobs j SET claimed_by = $2, claim_seq = j.claim_seq + 1, lease_until = now() + $3::bigint * interval '1 millisecond'
                 FROM theirs WHERE j.id = theirs.id
                 RETURNING j.id, j.person_id, j.target_id, j.action, j.attempts, j.run_id, j.failing_since, j.acting_admin, j.claim_seq",
                &[&batch, &self.node, &self.lease_ms()],
            )
            .await?;
        let mut jobs = rows.iter().map(super::queue::job_of).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// When the next batch is due (ms, the database's clock), if any.
    pub async fn next_bulk_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.client().await?.query_one("SELECT MIN(poll_at) FROM bulk_batches", &[]).await?.get(0))
    }

    /// Asks again after `after_ms` (a poll that found the batch still
    /// working, or failed: `failed` counts it).
    pub async fn reschedule_bulk(&self, batch: i64, reference: &str, after_ms: i64, failed: bool) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                &format!(
                    "UPDATE bulk_batches SET reference = $2, poll_at = {DB_NOW_MS} + $3, failures = CASE WHEN $4 THEN failures + 1 ELSE 0 END
                     WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE bulk_batch = $1 AND state = 'running' AND claimed_by IS DISTINCT FROM $5)"
                ),
                &[&batch, &reference, &after_ms, &failed, &self.node],
            )
            .await?;
        Ok(())
    }

    /// Forgets a settled batch; jobs it still holds (no outcome recorded)
    /// go back to the queue. A node whose poll outlived its lease, the
    /// batch adopted by another meanwhile, changes nothing: the batch and
    /// its jobs are the other node's.
    pub async fn finish_bulk(&self, batch: i64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The batch's row before its jobs, as a poll takes them.
        tx.execute("SELECT 1 FROM bulk_batches WHERE id = $1 FOR UPDATE", &[&batch]).await?;
        tx.execute(
            "WITH mine AS MATERIALIZED (SELECT id FROM jobs WHERE bulk_batch = $1 AND state = 'running' AND claimed_by = $2 ORDER BY id FOR NO KEY UPDATE)
             UPDATE jobs j SET state = 'queued', bulk_batch = NULL, claimed_by = NULL, lease_until = NULL FROM mine WHERE j.id = mine.id",
            &[&batch, &self.node],
        )
        .await?;
        tx.execute("DELETE FROM bulk_batches WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE bulk_batch = $1 AND state = 'running')", &[&batch])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// (batches in flight, jobs they hold).
    pub async fn bulk_in_flight(&self) -> Result<(i64, i64), StoreError> {
        let r = self
            .client()
            .await?
            .query_one("SELECT (SELECT count(*) FROM bulk_batches), (SELECT count(*) FROM jobs WHERE bulk_batch IS NOT NULL AND state = 'running')", &[])
            .await?;
        Ok((r.get(0), r.get(1)))
    }

    /// Claims the oldest ready group job: queued, its backoff passed, its
    /// target enabled, nothing earlier unfinished for the pair; leased like
    /// person jobs.
    pub async fn claim_group_job(&self) -> Result<Option<GroupJob>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "WITH ready AS (
                   SELECT j.id FROM group_jobs j JOIN targets t ON t.id = j.target_id
                   WHERE j.state = 'queued' AND j.not_before <= $1 AND t.enabled
                     AND NOT EXISTS (SELECT 1 FROM group_jobs e WHERE e.group_id = j.group_id AND e.target_id = j.target_id AND e.id < j.id AND e.state <> 'failed')
                   ORDER BY j.id LIMIT 1 FOR NO KEY UPDATE OF j SKIP LOCKED
                 )
                 UPDATE group_jobs j SET state = 'running', claimed_by = $2, claim_seq = j.claim_seq + 1, lease_until = now() + $3::bigint * interval '1 millisecond'
                 FROM ready WHERE j.id = ready.id
                 RETURNING j.id, j.group_id, j.target_id, j.action, j.attempts, j.claim_seq",
                &[&now_ms(), &self.node, &self.lease_ms()],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let action: String = r.get(3);
        Ok(Some(GroupJob {
            id: r.get(0),
            group_id: r.get(1),
            target_id: r.get(2),
            action: GroupAction::parse(&action).ok_or_else(|| StoreError::Unreadable(format!("group job action '{action}'")))?,
            attempts: r.get::<_, i64>(4) as u32,
            claim: r.get(5),
        }))
    }

    /// Before a group job's plugin call: its lease renewed to a full lease
    /// from now, as [`PgStore::hold_leases`] does for people's jobs; whether
    /// this node still holds it under its claim (if not, another node took
    /// it back and runs it).
    pub async fn hold_group_lease(&self, job: &GroupJob) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE group_jobs SET lease_until = GREATEST(lease_until, now() + $4::bigint * interval '1 millisecond')
                 WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'",
                &[&job.id, &self.node, &job.claim, &self.lease_ms()],
            )
            .await?;
        Ok(n > 0)
    }

    /// A group job that succeeded: the target now has `remote` (none once
    /// removed) with `members`. Nothing, if this node no longer holds it.
    pub async fn finish_group_done(&self, job: &GroupJob, remote: Option<(String, String)>, removed: bool, members: &[crate::store::Member], summary: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute("DELETE FROM group_jobs WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'", &[&job.id, &self.node, &job.claim])
            .await?;
        if n == 0 {
            return Ok(false);
        }
        let gone = removed || remote.is_none();
        let (t, id) = remote.unzip();
        let members = if gone { "[]".to_string() } else { serde_json::to_string(members).expect("plain data") };
        tx.execute(
            "INSERT INTO provisioned_groups (group_id, target_id, state, remote_type, remote_id, members, message, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (group_id, target_id) DO UPDATE SET state = excluded.state, remote_type = excluded.remote_type, remote_id = excluded.remote_id,
             members = excluded.members, message = excluded.message, updated_at = excluded.updated_at",
            &[&job.group_id, &job.target_id, &if gone { "removed" } else { "provisioned" }, &t, &id, &members, &summary, &now_ms()],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A group job to try again after `delay_ms`; whether this node held it.
    pub async fn finish_group_retry(&self, job: &GroupJob, delay_ms: i64, error: &str) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE group_jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, attempts = attempts + 1, not_before = $4, last_error = $5
                 WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'",
                &[&job.id, &self.node, &job.claim, &(now_ms() + delay_ms), &error],
            )
            .await?;
        Ok(n > 0)
    }

    /// A group job that failed for good; whether this node held it.
    pub async fn finish_group_failed(&self, job: &GroupJob, error: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE group_jobs SET state = 'failed', claimed_by = NULL, lease_until = NULL, attempts = attempts + 1, last_error = $4
                 WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'",
                &[&job.id, &self.node, &job.claim, &error],
            )
            .await?;
        if n > 0 {
            tx.execute(
                "UPDATE provisioned_groups SET state = 'failed', message = $3, updated_at = $4 WHERE group_id = $1 AND target_id = $2",
                &[&job.group_id, &job.target_id, &error, &now_ms()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Takes back group jobs whose lease ran out (their node died): queued
    /// again. How many.
    pub async fn rescue_expired_group_jobs(&self) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "WITH taken AS (
                   UPDATE group_jobs SET claimed_by = NULL, lease_until = NULL, rescues = rescues + 1,
                     state = CASE WHEN rescues + 1 >= $1 THEN 'failed' ELSE 'queued' END,
                     last_error = CASE WHEN rescues + 1 >= $1
                       THEN 'taken back ' || (rescues + 1) || ' times from nodes that stopped renewing their claims (last ' || claimed_by || '): failed, so that it stops taking nodes down; change the group to try again'
                       ELSE last_error END
                   WHERE state = 'running' AND lease_until < now()
                   RETURNING group_id, target_id, state, last_error
                 ), failed AS (
                   UPDATE provisioned_groups p SET state = 'failed', message = t.last_error, updated_at = $2
                   FROM taken t WHERE t.state = 'failed' AND p.group_id = t.group_id AND p.target_id = t.target_id
                   RETURNING 1
                 )
                 SELECT count(*) FROM taken",
                &[&self.config.max_rescues, &now_ms()],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
