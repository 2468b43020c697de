//! The job queue on PostgreSQL, correct across nodes.
//!
//! - **Claims** are one statement: ready jobs locked with `FOR NO KEY UPDATE OF j
//!   SKIP LOCKED` in a CTE (job rows only), marked running with the node,
//!   a new claim sequence and a lease from the database's clock.
//! - **Order per (person, target)**: a job is ready only when no earlier
//!   job of its pair is unfinished, and "earlier" is commit order: every
//!   transaction that queues a job for a pair first writes the pair's
//!   state row (`provisioned`), whose lock it holds to commit, so the
//!   pair's ids are drawn in commit order. A partial unique index on
//!   running jobs per pair is the tripwire.
//! - **Finishes** are guarded by node and claim sequence: a node that lost
//!   a job (its lease ran out, the job was rescued and claimed again)
//!   changes nothing with its late result.
//! - **Rescue** (`leases.rs`): any node returns jobs whose lease expired
//!   to the queue, drops one a later change of the same person supersedes,
//!   and fails one taken back too often. Queueing itself is `enqueue.rs`.
//!
//! Locks are taken in one order everywhere: groups' rows (`FOR SHARE`),
//! people's rows, pairs' rows (a batch's in (person, target) order), job
//! rows, runs' counters (in run order), and the groups' pairs last (in
//! (group, target) order); the claim takes job rows only. Row locks are
//! `FOR NO KEY UPDATE`, which does not block the key-share locks foreign
//! key checks take. A statement that changes several job rows locks them
//! first in id order (a `MATERIALIZED` CTE with `ORDER BY j.id FOR ...`):
//! the heartbeat, a batch's finish and its releases touch the same rows,
//! and two statements taking them in different orders would deadlock.
//!
//! A job a bulk batch holds stays with the batch, which a node polls
//! under its own lease (`bulk.rs`): it is neither reset nor rescued here.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::PgStore;
use crate::domain::{Action, Done, Job, ProvState};
use crate::store::{StoreError, now_ms};

pub(super) const JOB_COLUMNS: &str = "j.id, j.person_id, j.target_id, j.action, j.attempts, j.run_id, j.failing_since, j.acting_admin, j.claim_seq";

pub(super) fn job_of(r: &Row) -> Result<Job, StoreError> {
    let action: String = r.get(3);
    Ok(Job {
        id: r.get(0),
        person_id: r.get(1),
        target_id: r.get(2),
        action: Action::parse(&action).ok_or_else(|| StoreError::Unreadable(format!("job action '{action}'")))?,
        attempts: r.get::<_, i64>(4) as u32,
        run_id: r.get(5),
        failing_since: r.get(6),
        duration_ms: None,
        acting_admin: r.get(7),
        claim: r.get(8),
    })
}

impl PgStore {
    /// Claims up to `max` ready jobs, all of one target, oldest first,
    /// leaving out the `busy` targets; a target probing after a pause gets
    /// one. With the target in `sizes`, a batch of record updates alone
    /// grows to that size (a bulk API's batch). Ready: the target enabled
    /// and not paused, its server with a token or able to get one, the
    /// backoff passed, not held, no earlier unfinished job of the pair.
    pub async fn claim_for(&self, max: usize, busy: &[i64], sizes: &[(i64, usize)]) -> Result<Vec<Job>, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Removals past a threshold are held first, in the same transaction:
        // no claim takes one that should wait for an admin.
        let (held, seen) = Self::hold_removals(&tx).await?;
        let (seen_targets, seen_counts): (Vec<i64>, Vec<i64>) = seen.into_iter().unzip();
        let claimed = tx
            .query(
                &format!(
                    "WITH removals AS MATERIALIZED (
                       SELECT target_id, count(*) AS n FROM jobs
                       WHERE state = 'queued' AND action = 'deleted' AND NOT held AND NOT confirmed GROUP BY target_id
                     ), picked AS (
                       SELECT j.id, j.target_id, t.pause_level FROM jobs j
                       JOIN targets t ON t.id = j.target_id
                       JOIN oauth2_servers s ON s.id = t.server_id
                       LEFT JOIN removals r ON r.target_id = j.target_id
                       LEFT JOIN unnest($6::bigint[], $7::bigint[]) AS seen(target, n) ON seen.target = j.target_id
                       WHERE j.not_before <= $1 AND (t.paused_until IS NULL OR t.paused_until <= $1) AND {READY}
                         AND NOT (j.target_id = ANY($3))
                         AND (j.action <> 'deleted' OR j.confirmed OR NOT t.destructive_removals OR COALESCE(r.n, 0) <= COALESCE(seen.n, 0))
                       ORDER BY j.id LIMIT $2
                       FOR NO KEY UPDATE OF j SKIP LOCKED
                     ), first AS (
                       SELECT target_id, pause_level FROM picked ORDER BY id LIMIT 1
                     ), chosen AS (
                       SELECT p.id FROM picked p JOIN first f ON f.target_id = p.target_id
                       ORDER BY p.id LIMIT (SELECT CASE WHEN pause_level > 0 THEN 1 ELSE $2 END FROM first)
                     )
                     UPDATE jobs j SET state = 'running', bulk_batch = NULL, claimed_by = $4, claim_seq = j.claim_seq + 1,
                       lease_until = now() + $5::bigint * interval '1 millisecond'
                     FROM chosen c WHERE j.id = c.id
                     RETURNING {JOB_COLUMNS}",
                    READY = ready_job_sql!()
                ),
                &[&now, &(max as i64), &busy, &self.node, &self.lease_ms(), &seen_targets, &seen_counts],
            )
            .await;
        let mut jobs = match claimed {
            Ok(rows) => rows.iter().map(job_of).collect::<Result<Vec<_>, _>>()?,
            Err(e) if tripped(&e) => {
                // Two running jobs of one pair would have been a bug: the
                // index refused, nothing changed; the next claim tries again.
                self.tripwire.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %super::describe(&e), "a claim would have run two jobs of one person and target at once; refused");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        jobs.sort_by_key(|j| j.id);
        if let Some(first) = jobs.first().map(|j| j.target_id)
            && let Some(&(_, size)) = sizes.iter().find(|(t, _)| *t == first)
            && size > jobs.len()
            && jobs.iter().all(|j| Action::UPSERTS.contains(&j.action))
        {
            let probing: i64 = tx.query_one("SELECT pause_level FROM targets WHERE id = $1", &[&first]).await?.get(0);
            if probing == 0 {
                jobs.extend(self.claim_more_upserts(&tx, first, now, size - jobs.len()).await?);
            }
        }
        tx.commit().await?;
        // Told to the admins only once the holds are committed.
        if !held.is_empty() {
            self.new_holds.lock().unwrap_or_else(|p| p.into_inner()).extend(held);
        }
        Ok(jobs)
    }

    /// More ready record updates of `target`, for a batch growing to a bulk
    /// API's size.
    async fn claim_more_upserts(&self, tx: &Transaction<'_>, target: i64, now: i64, more: usize) -> Result<Vec<Job>, StoreError> {
        let actions: Vec<&str> = Action::UPSERTS.iter().map(|a| a.as_str()).collect();
        let rows = tx
            .query(
                &format!(
                    "WITH more AS (
                       SELECT j.id FROM jobs j
                       WHERE j.target_id = $1 AND j.state = 'queued' AND j.not_before <= $2 AND NOT j.held AND j.action = ANY($4)
                         AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.person_id = j.person_id AND e.target_id = j.target_id AND e.id < j.id AND e.state <> 'failed')
                       ORDER BY j.id LIMIT $3
                       FOR NO KEY UPDATE OF j SKIP LOCKED
                     )
                     UPDATE jobs j SET state = 'running', bulk_batch = NULL, claimed_by = $5, claim_seq = j.claim_seq + 1,
                       lease_until = now() + $6::bigint * interval '1 millisecond'
                     FROM more m WHERE j.id = m.id
                     RETURNING {JOB_COLUMNS}"
                ),
                &[&target, &now, &(more as i64), &actions, &self.node, &self.lease_ms()],
            )
            .await?;
        let mut jobs = rows.iter().map(job_of).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Before a plugin call: `jobs`' leases renewed to a full lease from now
    /// (which the node's settings keep above the plugin deadline), so that
    /// no call starts that could outlive its claim. The ids this node still
    /// holds under their claims; the others were taken back and are another
    /// node's to run.
    pub async fn hold_leases(&self, jobs: &[Job]) -> Result<Vec<i64>, StoreError> {
        let (ids, claims): (Vec<i64>, Vec<i64>) = jobs.iter().map(|j| (j.id, j.claim)).unzip();
        let rows = self
            .client()
            .await?
            .query(
                "WITH mine AS MATERIALIZED (
                   SELECT j.id FROM jobs j JOIN unnest($1::bigint[], $2::bigint[]) AS c(id, seq) ON j.id = c.id AND j.claim_seq = c.seq
                   WHERE j.claimed_by = $3 AND j.state = 'running' ORDER BY j.id FOR NO KEY UPDATE OF j
                 )
                 UPDATE jobs j SET lease_until = GREATEST(j.lease_until, now() + $4::bigint * interval '1 millisecond')
                 FROM mine WHERE j.id = mine.id
                 RETURNING j.id",
                &[&ids, &claims, &self.node, &self.lease_ms()],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Takes `job` out of the queue if this node still holds it under the
    /// claim it was given; whether it did.
    async fn take_finished(&self, tx: &Transaction<'_>, job: &Job) -> Result<bool, StoreError> {
        let n = tx
            .execute("DELETE FROM jobs WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'", &[&job.id, &self.node, &job.claim])
            .await?;
        Ok(n > 0)
    }

    /// Records finished jobs: the remote ids, the states, the history lines
    /// and the runs' progress, in one transaction of a few set-based
    /// statements (a batch of 200 is not 800 round trips). A job this node
    /// no longer holds, or whose person or target is gone, is left alone.
    pub async fn finish_done(&self, done: &[Done]) -> Result<usize, StoreError> {
        if done.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        // Columns of the batch, in (person, target) order: the pairs are
        // locked in that order, as everywhere, so no two transactions wait
        // on each other in turn.
        let mut done: Vec<&Done> = done.iter().collect();
        done.sort_by(|a, b| (&a.job.person_id, a.job.target_id).cmp(&(&b.job.person_id, b.job.target_id)));
        let ids: Vec<i64> = done.iter().map(|d| d.job.id).collect();
        let claims: Vec<i64> = done.iter().map(|d| d.job.claim).collect();
        let people: Vec<&str> = done.iter().map(|d| d.job.person_id.as_str()).collect();
        let targets: Vec<i64> = done.iter().map(|d| d.job.target_id).collect();
        let states: Vec<&str> = done.iter().map(|d| if d.remote.is_none() || d.removed { ProvState::Removed } else { ProvState::Provisioned }.as_str()).collect();
        let types: Vec<Option<&str>> = done.iter().map(|d| d.remote.as_ref().map(|(t, _)| t.as_str())).collect();
        let remote_ids: Vec<Option<&str>> = done.iter().map(|d| d.remote.as_ref().map(|(_, id)| id.as_str())).collect();
        let summaries: Vec<&str> = done.iter().map(|d| d.summary.as_str()).collect();
        let actions: Vec<&str> = done.iter().map(|d| d.job.action.as_str()).collect();
        let durations: Vec<Option<i64>> = done.iter().map(|d| d.job.duration_ms).collect();
        tx.execute(
            "SELECT 1 FROM provisioned p JOIN unnest($1::text[], $2::bigint[]) AS b(person_id, target_id) USING (person_id, target_id)
             ORDER BY p.person_id, p.target_id FOR NO KEY UPDATE OF p",
            &[&people, &targets],
        )
        .await?;
        // Only the jobs still this node's, under their claims.
        let taken: Vec<i64> = tx
            .query(
                "WITH mine AS MATERIALIZED (
                   SELECT j.id FROM jobs j JOIN unnest($1::bigint[], $2::bigint[]) AS c(id, seq) ON j.id = c.id AND j.claim_seq = c.seq
                   WHERE j.claimed_by = $3 AND j.state = 'running' ORDER BY j.id FOR UPDATE OF j
                 )
                 DELETE FROM jobs j USING mine WHERE j.id = mine.id RETURNING j.id",
                &[&ids, &claims, &self.node],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if taken.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        tx.execute(
            "INSERT INTO provisioned (person_id, target_id, state, remote_type, remote_id, message, updated_at)
             SELECT b.person_id, b.target_id, b.state, b.remote_type, b.remote_id, b.message, $9
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) AS b(id, person_id, target_id, state, remote_type, remote_id, message)
             WHERE b.id = ANY($8)
             ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, remote_type = excluded.remote_type,
             remote_id = excluded.remote_id, message = excluded.message, updated_at = excluded.updated_at",
            &[&ids, &people, &targets, &states, &types, &remote_ids, &summaries, &taken, &now],
        )
        .await?;
        tx.execute(
            "INSERT INTO history (person_id, target_id, target_name, at, action, ok, message, remote, duration_ms)
             SELECT b.person_id, b.target_id, t.name, $10, b.action, TRUE, b.message,
                    CASE WHEN b.remote_type IS NULL THEN NULL ELSE b.remote_type || ' ' || b.remote_id END, b.duration_ms
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[]) AS b(id, person_id, target_id, action, remote_type, remote_id, message, duration_ms)
             LEFT JOIN targets t ON t.id = b.target_id
             WHERE b.id = ANY($9) ORDER BY b.id",
            &[&ids, &people, &targets, &actions, &types, &remote_ids, &summaries, &durations, &taken, &now],
        )
        .await?;
        let taken_set: std::collections::HashSet<i64> = taken.iter().copied().collect();
        // A member provisioned on (or removed from) a target that has their
        // groups: those groups hear of it. Looked up once: most targets
        // provision no groups.
        let group_targets = Self::group_target_ids(&tx).await?;
        let members: Vec<(&str, i64, Option<String>)> = done
            .iter()
            .filter(|d| taken_set.contains(&d.job.id) && group_targets.contains(&d.job.target_id))
            .map(|d| {
                let provisioned = !(d.remote.is_none() || d.removed);
                (d.job.person_id.as_str(), d.job.target_id, d.remote.as_ref().filter(|_| provisioned).map(|(t, id)| format!("{t} {id}")))
            })
            .collect();
        let pairs = Self::members_changed_on(&tx, &members).await?;

        // Runs last, in id order.
        let mut runs: Vec<i64> = done.iter().filter(|d| taken_set.contains(&d.job.id)).filter_map(|d| d.job.run_id).collect();
        runs.sort_unstable();
        tx.execute(
            "UPDATE runs SET done = runs.done + c.n,
                 finished_at = CASE WHEN runs.done + runs.failed + c.n >= runs.total AND runs.finished_at IS NULL THEN $2 ELSE runs.finished_at END
             FROM (SELECT run, count(*) AS n FROM unnest($1::bigint[]) AS r(run) GROUP BY run ORDER BY run) c WHERE runs.id = c.run",
            &[&runs, &now],
        )
        .await?;
        // The groups' pairs last, in order (see `members_changed`): pairs,
        // runs, group pairs, as every transaction takes them.
        for (group, target) in &pairs {
            Self::enqueue_group_one(&tx, group, *target, crate::domain::GroupAction::MembersChanged).await?;
        }
        tx.commit().await?;
        Ok(taken.len())
    }

    /// A job to try again after `delay_ms`; a later change of the same
    /// person queued meanwhile takes its place (and its run) instead.
    /// Whether this node still held it.
    pub async fn finish_retry(&self, job: &Job, delay_ms: i64, error: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !Self::lock_pair(&tx, &job.person_id, job.target_id).await? {
            return Ok(false);
        }
        let later = tx
            .query_opt(
                "SELECT id, run_id FROM jobs WHERE person_id = $1 AND target_id = $2 AND id > $3 AND state = 'queued' ORDER BY id LIMIT 1",
                &[&job.person_id, &job.target_id, &job.id],
            )
            .await?;
        let held = if let Some(later) = later {
            let (later_id, later_run): (i64, Option<i64>) = (later.get(0), later.get(1));
            let held = self.take_finished(&tx, job).await?;
            if held {
                Self::history_in(&tx, job, false, &format!("attempt {} failed: {error}; superseded by a later change", job.attempts + 1), None).await?;
                Self::hand_over_run(&tx, job.run_id, later_id, later_run).await?;
            }
            held
        } else {
            let now = now_ms();
            let n = tx
                .execute(
                    "UPDATE jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, attempts = attempts + 1, not_before = $4,
                     last_error = $5, failing_since = COALESCE(failing_since, $6)
                     WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'",
                    &[&job.id, &self.node, &job.claim, &(now + delay_ms), &error, &now],
                )
                .await?;
            if n > 0 {
                let message = format!("attempt {} failed: {error}; next attempt at {}", job.attempts + 1, crate::domain::format_time(now + delay_ms));
                Self::set_state_in(&tx, &job.person_id, job.target_id, ProvState::Pending, Some(&message)).await?;
                Self::history_in(&tx, job, false, &message, None).await?;
            }
            n > 0
        };
        tx.commit().await?;
        Ok(held)
    }

    /// A dropped job's run goes to the later job that replaces it (or the
    /// dropped one counts as done for it).
    pub(super) async fn hand_over_run(tx: &Transaction<'_>, run: Option<i64>, later_id: i64, later_run: Option<i64>) -> Result<(), StoreError> {
        match (run, later_run) {
            (Some(r), None) => {
                tx.execute("UPDATE jobs SET run_id = $2 WHERE id = $1", &[&later_id, &r]).await?;
            }
            (Some(r), Some(l)) if r != l => Self::count_run_in(tx, r, true).await?,
            _ => {}
        }
        Ok(())
    }

    /// A job that failed for good: kept (as `failed`) until the person
    /// changes or is reprovisioned. Whether this node still held it.
    pub async fn finish_failed(&self, job: &Job, error: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !Self::lock_pair(&tx, &job.person_id, job.target_id).await? {
            return Ok(false);
        }
        let n = tx
            .execute(
                "UPDATE jobs SET state = 'failed', claimed_by = NULL, lease_until = NULL, attempts = attempts + 1, last_error = $4
                 WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'",
                &[&job.id, &self.node, &job.claim, &error],
            )
            .await?;
        if n > 0 {
            Self::set_state_in(&tx, &job.person_id, job.target_id, ProvState::Failed, Some(error)).await?;
            Self::history_in(&tx, job, false, error, None).await?;
            if let Some(run) = job.run_id {
                Self::count_run_in(&tx, run, false).await?;
            }
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Jobs that wait (no attempt counted) until their server has a token.
    pub async fn finish_waiting(&self, jobs: &[Job], why: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut jobs: Vec<&Job> = jobs.iter().collect();
        jobs.sort_by(|a, b| (&a.person_id, a.target_id).cmp(&(&b.person_id, b.target_id)));
        for job in jobs {
            if !Self::lock_pair(&tx, &job.person_id, job.target_id).await? {
                continue;
            }
            let n = tx
                .execute(
                    "UPDATE jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, last_error = $4
                     WHERE id = $1 AND claimed_by = $2 AND claim_seq = $3 AND state = 'running'",
                    &[&job.id, &self.node, &job.claim, &why],
                )
                .await?;
            if n > 0 {
                Self::set_state_in(&tx, &job.person_id, job.target_id, ProvState::Pending, Some(why)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

}

/// Whether `e` is the one-running-job-per-pair index refusing a claim.
fn tripped(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("jobs_one_running_per_pair"))
}
