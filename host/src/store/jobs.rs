//! The durable job queue. Jobs for one person and target run in order: a
//! job is only claimable when no earlier unfinished job exists for the
//! pair. A claimed job is `running` until its result commits; a crash leaves
//! it `running`, and [`SqliteStore::reset_running`] puts it back at the next start.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, StoreError, now_ms, parsed, write};
use crate::domain::{Action, Done, Job, Person, ProvState, Scope};

/// Targets as enqueueing needs them.
pub(super) struct Lite {
    pub(super) id: i64,
    pub(super) scope: Scope,
}

impl SqliteStore {
    /// Every target, disabled ones too: their jobs queue up and run, in
    /// order, once the target is enabled again (claim skips them meanwhile).
    pub(super) fn lite_targets(conn: &Connection) -> Result<Vec<Lite>, StoreError> {
        let mut stmt = conn.prepare("SELECT id, scope FROM targets")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(id, scope)| Ok(Lite { id, scope: super::targets::read_scope(id, &scope)? })).collect()
    }

    pub(super) fn set_state(conn: &Connection, person: &str, target: i64, state: ProvState, message: Option<&str>) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO provisioned (person_id, target_id, state, message, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, message = excluded.message, updated_at = excluded.updated_at",
            params![person, target, state.as_str(), message, now_ms()],
        )?;
        Ok(())
    }

    /// Queues one job for `person` and `target`, replacing queued jobs it
    /// supersedes (a job reads the person as they are when it runs).
    pub(super) fn enqueue_one(conn: &Connection, person: &str, target: i64, action: Action, run: Option<i64>) -> Result<(), StoreError> {
        let mut inherited: Option<i64> = None;
        {
            let mut stmt = conn.prepare_cached("SELECT id, run_id, state FROM jobs WHERE person_id = ?1 AND target_id = ?2 AND state IN ('queued', 'failed')")?;
            let old: Vec<(i64, Option<i64>, String)> = stmt.query_map(params![person, target], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
            for (id, old_run, state) in old {
                // A superseded queued job of a run hands the run over (or
                // counts as done for it), so runs always finish.
                if let Some(r) = old_run
                    && state == "queued"
                {
                    if run.is_none() && inherited.is_none() {
                        inherited = Some(r);
                    } else if run != Some(r) {
                        Self::count_run(conn, r, true)?;
                    }
                }
                conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![id])?;
            }
        }
        conn.execute(
            "INSERT INTO jobs (person_id, target_id, action, run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![person, target, action.as_str(), run.or(inherited), now_ms()],
        )?;
        Self::set_state(conn, person, target, ProvState::Pending, None)
    }

    /// Queues `action` for `p` with one target (as part of `run`, if any):
    /// a person outside the target's scope who has a record there gets it
    /// removed, anyone else outside is marked not in scope. Whether a job
    /// was queued.
    pub(super) fn enqueue_for(conn: &Connection, target: &Lite, p: &Person, action: Action, run: Option<i64>) -> Result<bool, StoreError> {
        if action == Action::Deleted || target.scope.includes(p) {
            Self::enqueue_one(conn, &p.id, target.id, action, run)?;
            return Ok(true);
        }
        let state: Option<String> = conn
            .prepare_cached("SELECT state FROM provisioned WHERE person_id = ?1 AND target_id = ?2")?
            .query_row(params![p.id, target.id], |r| r.get(0))
            .optional()?;
        if matches!(state.as_deref(), Some("provisioned" | "pending" | "failed")) {
            Self::enqueue_one(conn, &p.id, target.id, Action::Deleted, run)?;
            return Ok(true);
        }
        Self::set_state(conn, &p.id, target.id, ProvState::NotInScope, Some("outside the target's scope"))?;
        Ok(false)
    }

    /// Queues provisioning of `p` for every target (disabled ones hold their
    /// jobs until enabled); returns how many jobs were queued.
    pub(super) fn enqueue(conn: &Connection, targets: &[Lite], p: &Person, action: Action) -> Result<usize, StoreError> {
        let mut queued = 0;
        for t in targets {
            queued += usize::from(Self::enqueue_for(conn, t, p, action, None)?);
        }
        Ok(queued)
    }

    /// What the plugin needs for each job: the person (`None` if their
    /// stored record cannot be read) and the remote record they have with
    /// the job's target, read under one lock with one query per job.
    pub fn job_inputs(&self, jobs: &[Job]) -> Result<Vec<(Option<Person>, Option<(String, String)>)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached(
            "SELECT p.data, v.remote_type, v.remote_id FROM people p
             LEFT JOIN provisioned v ON v.person_id = p.id AND v.target_id = ?2 WHERE p.id = ?1",
        )?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let row: Option<(String, Option<String>, Option<String>)> =
                stmt.query_row(params![job.person_id, job.target_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
            out.push(match row {
                Some((data, t, id)) => (serde_json::from_str(&data).ok(), t.zip(id)),
                None => (None, None),
            });
        }
        Ok(out)
    }

    /// Jobs not yet done: (queued or running, failed) for a target, or all.
    pub fn job_counts(&self, target_id: Option<i64>) -> Result<(i64, i64), StoreError> {
        let conn = self.db();
        let q = |state: &str| -> rusqlite::Result<i64> {
            conn.query_row(
                &format!("SELECT COUNT(*) FROM jobs WHERE {state} AND (?1 IS NULL OR target_id = ?1)"),
                params![target_id],
                |r| r.get(0),
            )
        };
        Ok((q("state IN ('queued', 'running')")?, q("state = 'failed'")?))
    }

    /// Queued jobs of the server's targets, which wait for a usable token.
    pub fn jobs_waiting_for(&self, server_id: i64) -> Result<i64, StoreError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*) FROM jobs j JOIN targets t ON t.id = j.target_id WHERE t.server_id = ?1 AND j.state = 'queued'",
            params![server_id],
            |r| r.get(0),
        )?)
    }

    /// Puts claimed jobs that are still running back in the queue (after
    /// their worker failed), so later jobs of the same people are not blocked.
    pub fn release(&self, jobs: &[i64]) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let mut n = 0;
        for id in jobs {
            // Jobs a bulk API holds stay with their batch: it is polled.
            n += tx.prepare_cached("UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'running' AND bulk_batch IS NULL")?.execute(params![id])?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Puts jobs a crashed or stopped process left running back in the queue.
    pub fn reset_running(&self) -> Result<usize, StoreError> {
        let conn = self.db();
        // Jobs a bulk API holds stay with their batch: its polling resumes,
        // at once, instead of submitting them again.
        conn.execute("UPDATE bulk_batches SET poll_at = MIN(poll_at, ?1)", params![now_ms()])?;
        conn.execute("UPDATE group_jobs SET state = 'queued' WHERE state = 'running'", [])?;
        Ok(conn.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running' AND bulk_batch IS NULL", [])?)
    }

    /// Claims up to `max` ready jobs, all for one target, oldest first. A job
    /// is ready when its target is enabled, its server has a token (or can
    /// get one by itself), its backoff has passed, and no earlier job for the
    /// same person and target is unfinished.
    ///
    /// Before choosing, removals past a target's threshold are held for an
    /// admin's confirmation (see [`SqliteStore::hold_removals`]); a paused target
    /// (quarantined, or waiting for its API budget) gives nothing until its
    /// pause ends, and then one job: the probe.
    pub fn claim(&self, max: usize) -> Result<Vec<Job>, StoreError> {
        self.claim_except(max, &[])
    }

    /// [`Self::claim`], leaving out the `busy` targets (those at their cap
    /// of calls in flight).
    pub fn claim_except(&self, max: usize, busy: &[i64]) -> Result<Vec<Job>, StoreError> {
        self.claim_for(max, busy, &[])
    }

    /// [`Self::claim_except`], in the same transaction growing the batch to
    /// the size `sizes` gives for the target picked (a plugin that takes
    /// larger batches under that target's settings, e.g. for a bulk API):
    /// only when the batch keeps records up to date ([`Action::UPSERTS`]),
    /// and then with more of those alone (a removal waits for an ordinary
    /// claim); a target probing after a pause gets one job as ever.
    pub fn claim_for(&self, max: usize, busy: &[i64], sizes: &[(i64, usize)]) -> Result<Vec<Job>, StoreError> {
        let busy = serde_json::to_string(busy).expect("ids serialize");
        let now = self.now();
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let held = Self::hold_removals(&tx)?;
        let jobs: Vec<Job> = {
            let mut stmt = tx.prepare_cached(concat!(
                "SELECT j.id, j.person_id, j.target_id, j.action, j.attempts, j.run_id, j.failing_since, j.acting_admin FROM jobs j
                 JOIN targets t ON t.id = j.target_id
                 JOIN oauth2_servers s ON s.id = t.server_id
                 WHERE j.not_before <= ?1 AND (t.paused_until IS NULL OR t.paused_until <= ?1) AND ",
                ready_job_sql!(),
                " AND j.target_id NOT IN (SELECT value FROM json_each(?3))
                 ORDER BY j.id LIMIT ?2"
            ),
            )?;
            stmt.query_map(params![now, max as i64, busy], job_of_row)?
            .collect::<Result<Vec<_>, _>>()?
        };
        if !held.is_empty() {
            self.new_holds.lock().unwrap_or_else(|p| p.into_inner()).extend(held);
        }
        let Some(first) = jobs.first().map(|j| j.target_id) else {
            tx.commit()?;
            return Ok(vec![]);
        };
        let mut jobs: Vec<Job> = jobs.into_iter().filter(|j| j.target_id == first).collect();
        let probing: i64 = tx.query_row("SELECT pause_level FROM targets WHERE id = ?1", params![first], |r| r.get(0))?;
        if probing > 0 {
            jobs.truncate(1);
        } else if let Some(&(_, size)) = sizes.iter().find(|(t, _)| *t == first)
            && size > jobs.len()
            && jobs.iter().all(|j| Action::UPSERTS.contains(&j.action))
        {
            jobs = Self::upserts_ready(&tx, first, now, size)?;
        }
        Self::mark_running(&tx, &jobs)?;
        tx.commit()?;
        Ok(jobs)
    }

    /// Up to `max` ready jobs of `target` that keep records up to date,
    /// oldest first.
    fn upserts_ready(tx: &rusqlite::Transaction<'_>, target: i64, now: i64, max: usize) -> Result<Vec<Job>, StoreError> {
        let actions = serde_json::to_string(&Action::UPSERTS.map(Action::as_str)).expect("names serialize");
        let mut stmt = tx.prepare_cached(
            "SELECT j.id, j.person_id, j.target_id, j.action, j.attempts, j.run_id, j.failing_since, j.acting_admin FROM jobs j
             WHERE j.target_id = ?1 AND j.state = 'queued' AND j.not_before <= ?2 AND j.held = 0
               AND j.action IN (SELECT value FROM json_each(?4))
               AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.person_id = j.person_id AND e.target_id = j.target_id AND e.id < j.id AND e.state != 'failed')
             ORDER BY j.id LIMIT ?3",
        )?;
        let jobs = stmt.query_map(params![target, now, max as i64, actions], job_of_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(jobs)
    }

    fn mark_running(tx: &rusqlite::Transaction<'_>, jobs: &[Job]) -> Result<(), StoreError> {
        // A job taken again is no longer part of any earlier bulk batch.
        let mut mark = tx.prepare_cached("UPDATE jobs SET state = 'running', bulk_batch = NULL WHERE id = ?1")?;
        for j in jobs {
            mark.execute(params![j.id])?;
        }
        Ok(())
    }

    /// When the next queued job becomes ready, if one waits for its backoff
    /// or its target's pause.
    /// Jobs that wait for a token, a disabled target or an earlier job of
    /// the same person do not count: they are freed by a change that wakes
    /// the workers, or by the worker that finishes the earlier job.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.db().query_row(
            concat!(
                "SELECT MIN(MAX(j.not_before, COALESCE(t.paused_until, 0))) FROM jobs j
                 JOIN targets t ON t.id = j.target_id
                 JOIN oauth2_servers s ON s.id = t.server_id
                 WHERE ",
                ready_job_sql!()
            ),
            [],
            |r| r.get(0),
        )?)
    }

    pub(super) fn history_in(conn: &Connection, job: &Job, ok: bool, message: &str) -> Result<(), StoreError> {
        Self::history_with(conn, job, ok, message, None)
    }

    /// A history line (the provisioning log) with the remote record left.
    pub(super) fn history_with(conn: &Connection, job: &Job, ok: bool, message: &str, remote: Option<&str>) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO history (person_id, target_id, target_name, at, action, ok, message, remote, duration_ms)
             VALUES (?1, ?2, (SELECT name FROM targets WHERE id = ?2), ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![job.person_id, job.target_id, now_ms(), job.action.as_str(), ok, message, remote, job.duration_ms])?;
        Ok(())
    }

    pub(super) fn count_run(conn: &Connection, run: i64, ok: bool) -> Result<(), StoreError> {
        let column = if ok { "done" } else { "failed" };
        conn.execute(
            &format!(
                "UPDATE runs SET {column} = {column} + 1,
                 finished_at = CASE WHEN done + failed + 1 >= total AND finished_at IS NULL THEN ?2 ELSE finished_at END WHERE id = ?1"
            ),
            params![run, now_ms()],
        )?;
        Ok(())
    }

    /// Records finished jobs: the remote ids, the states, the history lines
    /// and the runs' progress, all in one transaction.
    pub fn finish_done(&self, done: &[Done]) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let now = now_ms();
        // Looked up once: most targets provision no groups.
        let group_targets = Self::group_target_ids(&tx)?;
        for d in done {
            let j = &d.job;
            if tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![j.id])? == 0 {
                // Superseded or its target deleted meanwhile.
                continue;
            }
            let state = if d.remote.is_none() || d.removed { ProvState::Removed } else { ProvState::Provisioned };
            let (t, id) = d.remote.clone().unzip();
            tx.prepare_cached(
                "INSERT INTO provisioned (person_id, target_id, state, remote_type, remote_id, message, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, remote_type = excluded.remote_type,
                 remote_id = excluded.remote_id, message = excluded.message, updated_at = excluded.updated_at",
            )?
            .execute(params![j.person_id, j.target_id, state.as_str(), t, id, d.summary, now])?;
            let remote = d.remote.as_ref().map(|(t, id)| format!("{t} {id}"));
            Self::history_with(&tx, j, true, &d.summary, remote.as_deref())?;
            if group_targets.contains(&j.target_id) {
                // A deactivated record is no member any more.
                let member = if state == ProvState::Provisioned { remote.as_deref() } else { None };
                Self::member_changed_on(&tx, &j.person_id, j.target_id, member)?;
            }
            if let Some(run) = j.run_id {
                Self::count_run(&tx, run, true)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A job that will be tried again after `delay_ms`.
    pub fn finish_retry(&self, job: &Job, delay_ms: i64, error: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        // A later change of the same person queued meanwhile sends their
        // current state anyway: it takes this job's place (and its run).
        let later: Option<(i64, Option<i64>)> = tx
            .query_row(
                "SELECT id, run_id FROM jobs WHERE person_id = ?1 AND target_id = ?2 AND id > ?3 AND state = 'queued' ORDER BY id LIMIT 1",
                params![job.person_id, job.target_id, job.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((later_id, later_run)) = later {
            if tx.execute("DELETE FROM jobs WHERE id = ?1 AND state = 'running'", params![job.id])? > 0 {
                Self::history_in(&tx, job, false, &format!("attempt {} failed: {error}; superseded by a later change", job.attempts + 1))?;
                match (job.run_id, later_run) {
                    (Some(r), None) => {
                        tx.execute("UPDATE jobs SET run_id = ?2 WHERE id = ?1", params![later_id, r])?;
                    }
                    (Some(r), Some(l)) if r != l => Self::count_run(&tx, r, true)?,
                    _ => {}
                }
            }
            tx.commit()?;
            return Ok(());
        }
        let now = self.now();
        if tx.execute(
            "UPDATE jobs SET state = 'queued', attempts = attempts + 1, not_before = ?2, last_error = ?3, failing_since = COALESCE(failing_since, ?4) WHERE id = ?1",
            params![job.id, now + delay_ms, error, now],
        )? > 0
        {
            let message = format!("attempt {} failed: {error}; next attempt at {}", job.attempts + 1, crate::domain::format_time(now + delay_ms));
            Self::set_state(&tx, &job.person_id, job.target_id, ProvState::Pending, Some(&message))?;
            Self::history_in(&tx, job, false, &message)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A job that failed for good: kept (as `failed`) until the person changes
    /// or is reprovisioned.
    pub fn finish_failed(&self, job: &Job, error: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        if tx.execute("UPDATE jobs SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1", params![job.id, error])? > 0 {
            Self::set_state(&tx, &job.person_id, job.target_id, ProvState::Failed, Some(error))?;
            Self::history_in(&tx, job, false, error)?;
            if let Some(run) = job.run_id {
                Self::count_run(&tx, run, false)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Jobs that wait (no attempt counted) until their server has a token.
    pub fn finish_waiting(&self, jobs: &[Job], why: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        for job in jobs {
            if tx.execute("UPDATE jobs SET state = 'queued', last_error = ?2 WHERE id = ?1", params![job.id, why])? > 0 {
                Self::set_state(&tx, &job.person_id, job.target_id, ProvState::Pending, Some(why))?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// A job from `SELECT j.id, j.person_id, j.target_id, j.action, j.attempts,
/// j.run_id, j.failing_since, j.acting_admin`.
pub(super) fn job_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        person_id: r.get(1)?,
        target_id: r.get(2)?,
        action: parsed("job action", r.get(3)?, Action::parse)?,
        attempts: r.get::<_, i64>(4)? as u32,
        run_id: r.get(5)?,
        failing_since: r.get(6)?,
        duration_ms: None,
        acting_admin: r.get(7)?,
        claim: 0,
    })
}
