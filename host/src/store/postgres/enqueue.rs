//! Queueing on PostgreSQL: a change's jobs by each target's scope, each
//! pair's state row written first (its lock, which orders the pair's jobs
//! by commit), the history and run counters every finish writes, and the
//! queue's reads (a batch's inputs, counts, when work is next due).

use deadpool_postgres::Transaction;

use super::PgStore;
use crate::domain::{Action, Job, Person, ProvState};
use crate::store::jobs::Lite;
use crate::store::targets::read_scope;
use crate::store::{StoreError, now_ms};

impl PgStore {
    /// Queues `action` for `person` with `target` (as part of `run`, if
    /// any), replacing the pair's queued jobs it supersedes; in one
    /// transaction.
    pub async fn enqueue(&self, person: &str, target: i64, action: Action, run: Option<i64>) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id = Self::enqueue_in(&tx, person, target, action, run).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`PgStore::enqueue`] inside the caller's transaction: the pair stays
    /// locked until it commits. The new job's id.
    pub(super) async fn enqueue_in(tx: &Transaction<'_>, person: &str, target: i64, action: Action, run: Option<i64>) -> Result<i64, StoreError> {
        // The pair's lock first: a concurrent enqueue of the same pair
        // waits here, and so draws its id after this one commits.
        Self::set_state_in(tx, person, target, ProvState::Pending, None).await?;
        // One statement: a job another node claimed meanwhile is running,
        // not queued, and stays.
        let old = tx
            .query("DELETE FROM jobs WHERE person_id = $1 AND target_id = $2 AND state IN ('queued', 'failed') RETURNING run_id, state", &[&person, &target])
            .await?;
        let mut inherited = None;
        for r in &old {
            let (old_run, state): (Option<i64>, String) = (r.get(0), r.get(1));
            // A superseded queued job of a run hands the run over (or
            // counts as done for it), so runs always finish.
            if let Some(r) = old_run
                && state == "queued"
            {
                if run.is_none() && inherited.is_none() {
                    inherited = Some(r);
                } else if run != Some(r) {
                    Self::count_run_in(tx, r, true).await?;
                }
            }
        }
        let row = tx
            .query_one(
                "INSERT INTO jobs (person_id, target_id, action, run_id, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&person, &target, &action.as_str(), &run.or(inherited), &now_ms()],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Every target (disabled ones too: their jobs wait until enabled),
    /// with its scope.
    pub(super) async fn lite_targets(tx: &Transaction<'_>) -> Result<Vec<Lite>, StoreError> {
        let rows = tx.query("SELECT id, scope FROM targets ORDER BY id", &[]).await?;
        rows.iter().map(|r| Ok(Lite { id: r.get(0), scope: read_scope(r.get(0), &r.get::<_, String>(1))? })).collect()
    }

    /// Queues `action` for `p` with one target (as part of `run`): one
    /// outside the target's scope with a record there gets it removed,
    /// anyone else outside is marked not in scope. Whether a job was queued.
    pub(super) async fn enqueue_for(tx: &Transaction<'_>, target: &Lite, p: &Person, action: Action, run: Option<i64>) -> Result<bool, StoreError> {
        if action == Action::Deleted || target.scope.includes(p) {
            Self::enqueue_in(tx, &p.id, target.id, action, run).await?;
            return Ok(true);
        }
        // The pair's row locked before it is read.
        let state: Option<String> = tx
            .query_opt("SELECT state FROM provisioned WHERE person_id = $1 AND target_id = $2 FOR NO KEY UPDATE", &[&p.id, &target.id])
            .await?
            .map(|r| r.get(0));
        if matches!(state.as_deref(), Some("provisioned" | "pending" | "failed")) {
            Self::enqueue_in(tx, &p.id, target.id, Action::Deleted, run).await?;
            return Ok(true);
        }
        Self::set_state_in(tx, &p.id, target.id, ProvState::NotInScope, Some("outside the target's scope")).await?;
        Ok(false)
    }

    /// Queues `action` for `p` with every target; how many jobs.
    pub(super) async fn enqueue_person(tx: &Transaction<'_>, targets: &[Lite], p: &Person, action: Action) -> Result<usize, StoreError> {
        let mut queued = 0;
        for t in targets {
            queued += usize::from(Self::enqueue_for(tx, t, p, action, None).await?);
        }
        Ok(queued)
    }

    /// What the plugin needs for each job: the person (`None` if their
    /// stored record cannot be read) and their remote record with the
    /// job's target; one query for the batch.
    pub async fn job_inputs(&self, jobs: &[Job]) -> Result<Vec<(Option<Person>, Option<(String, String)>)>, StoreError> {
        let people: Vec<&str> = jobs.iter().map(|j| j.person_id.as_str()).collect();
        let targets: Vec<i64> = jobs.iter().map(|j| j.target_id).collect();
        let rows = self
            .client()
            .await?
            .query(
                "SELECT b.n, p.data, v.remote_type, v.remote_id
                 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS b(person_id, target_id, n)
                 LEFT JOIN people p ON p.id = b.person_id
                 LEFT JOIN provisioned v ON v.person_id = b.person_id AND v.target_id = b.target_id
                 ORDER BY b.n",
                &[&people, &targets],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let data: Option<String> = r.get(1);
                let remote: Option<(String, String)> = r.get::<_, Option<String>>(2).zip(r.get::<_, Option<String>>(3));
                match data {
                    Some(d) => (serde_json::from_str(&d).ok(), remote),
                    None => (None, None),
                }
            })
            .collect())
    }

    /// Jobs not yet done: (queued or running, failed) for a target, or all.
    pub async fn job_counts(&self, target_id: Option<i64>) -> Result<(i64, i64), StoreError> {
        let r = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FILTER (WHERE state IN ('queued', 'running')), count(*) FILTER (WHERE state = 'failed')
                 FROM jobs WHERE $1::bigint IS NULL OR target_id = $1",
                &[&target_id],
            )
            .await?;
        Ok((r.get(0), r.get(1)))
    }

    /// Queued jobs of the server's targets, which wait for a usable token.
    pub async fn jobs_waiting_for(&self, server_id: i64) -> Result<i64, StoreError> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT count(*) FROM jobs j JOIN targets t ON t.id = j.target_id WHERE t.server_id = $1 AND j.state = 'queued'", &[&server_id])
            .await?
            .get(0))
    }

    /// When the next queued job becomes ready, if one waits for its backoff
    /// or its target's pause (see the SQLite store's `next_due`).
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .client()
            .await?
            .query_one(
                concat!(
                    "SELECT MIN(GREATEST(j.not_before, COALESCE(t.paused_until, 0))) FROM jobs j
                     JOIN targets t ON t.id = j.target_id
                     JOIN oauth2_servers s ON s.id = t.server_id
                     WHERE ",
                    ready_job_sql!()
                ),
                &[],
            )
            .await?
            .get(0))
    }

    pub(super) async fn set_state_in(tx: &Transaction<'_>, person: &str, target: i64, state: ProvState, message: Option<&str>) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO provisioned (person_id, target_id, state, message, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, message = excluded.message, updated_at = excluded.updated_at",
            &[&person, &target, &state.as_str(), &message, &now_ms()],
        )
        .await?;
        Ok(())
    }

    /// Locks the pair's state row: what every transaction that changes a
    /// pair's jobs takes first. False when there is none: the person or
    /// the target was deleted (their jobs with them), so there is nothing
    /// to finish.
    pub(super) async fn lock_pair(tx: &Transaction<'_>, person: &str, target: i64) -> Result<bool, StoreError> {
        Ok(tx.execute("SELECT 1 FROM provisioned WHERE person_id = $1 AND target_id = $2 FOR NO KEY UPDATE", &[&person, &target]).await? > 0)
    }

    pub(super) async fn count_run_in(tx: &Transaction<'_>, run: i64, ok: bool) -> Result<(), StoreError> {
        let column = if ok { "done" } else { "failed" };
        tx.execute(
            &format!(
                "UPDATE runs SET {column} = {column} + 1,
                 finished_at = CASE WHEN done + failed + 1 >= total AND finished_at IS NULL THEN $2 ELSE finished_at END WHERE id = $1"
            ),
            &[&run, &now_ms()],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn history_in(tx: &Transaction<'_>, job: &Job, ok: bool, message: &str, remote: Option<&str>) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO history (person_id, target_id, target_name, at, action, ok, message, remote, duration_ms)
             VALUES ($1, $2, (SELECT name FROM targets WHERE id = $2), $3, $4, $5, $6, $7, $8)",
            &[&job.person_id, &job.target_id, &now_ms(), &job.action.as_str(), &ok, &message, &remote, &job.duration_ms],
        )
        .await?;
        Ok(())
    }
}
