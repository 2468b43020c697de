//! Safeguards for real remote systems, per target: removals past a
//! threshold held for an admin's confirmation; pauses (quarantine after
//! failing calls, waiting for the API budget) that end with one probe job;
//! and the API usage the remote system last reported.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{SqliteStore, StoreError, now_ms, write};
use crate::domain::{Job, ProvState, format_time};

/// Calls in a row that must fail before a target is quarantined...
pub const QUARANTINE_AFTER: i64 = 5;
/// ...over at least this long: a burst of errors is retried, an outage
/// is waited out.
pub const QUARANTINE_AFTER_MS: i64 = 15 * 60_000;
/// The first probe comes this long after quarantine; each failed probe
/// doubles the wait, up to [`MAX_PROBE_INTERVAL_MS`].
pub const FIRST_PROBE_INTERVAL_MS: i64 = 60_000;
/// The longest wait between probes.
pub const MAX_PROBE_INTERVAL_MS: i64 = 3_600_000;
/// How long a target waits when its API budget is spent before it probes.
pub const BUDGET_WAIT_MS: i64 = 3_600_000;
/// The window removals are counted in.
pub(super) const REMOVAL_WINDOW_MS: i64 = 24 * 3_600_000;

/// What an admin sets per target, whatever its plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Safeguards {
    /// Removals (deactivations, deletions) within 24 hours above which the
    /// rest wait for confirmation; `None`: a fifth of the people provisioned,
    /// (those with a record) at least 20 and at most 500.
    pub removal_threshold: Option<i64>,
    /// Percent of the remote system's API limit this target may use;
    /// `None`: no cap of its own.
    pub api_share: Option<i64>,
    /// Calls this target may have in flight at once (the remote system's
    /// own limit on concurrent requests); `None`: as many as the workers.
    pub concurrency: Option<i64>,
}

/// Where a target stands: its pause, its failures, its API usage and its
/// held removals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TargetHealth {
    /// No job runs before this time; then one job probes.
    pub paused_until: Option<i64>,
    /// Why it is paused.
    pub pause_reason: Option<String>,
    /// How many probes failed in a row (0: not paused).
    pub pause_level: i64,
    /// Calls that failed in a row.
    pub failures_in_row: i64,
    /// The API usage last reported: used, limit, when (ms).
    pub usage: Option<(i64, i64, i64)>,
    /// Whether a removal deactivates or deletes (the plugin says so).
    pub destructive_removals: bool,
    /// Removals waiting for an admin's confirmation.
    pub held_removals: i64,
    /// The threshold in force now.
    pub removal_threshold: i64,
}

/// A removal waiting for confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRemoval {
    /// The person.
    pub person_id: String,
    /// Their name, as lists show it.
    pub name: String,
    /// The remote record that would be removed.
    pub remote: Option<String>,
}

/// The threshold for a target with `provisioned` people, if the admin set none.
/// When usage `used` of `limit` reaches the target's `share` (percent, if
/// set): until when it waits (from `now`), and why.
pub(super) fn over_budget(used: u64, limit: u64, share: Option<i64>, now: i64) -> Option<(i64, String)> {
    let share = share.filter(|_| limit > 0)?;
    if (used as i128) * 100 < (share as i128) * (limit as i128) {
        return None;
    }
    let until = now + BUDGET_WAIT_MS;
    let reason = format!(
        "API budget: {used} of {limit} calls used in the remote system's period, and this target may use {share} %; work waits, and a probe at {} checks again",
        format_time(until)
    );
    Some((until, reason))
}

pub(super) fn automatic_threshold(provisioned: i64) -> i64 {
    (provisioned / 5).clamp(20, 500)
}

impl SqliteStore {
    /// Saves a target's safeguards and whether its removals are destructive.
    pub fn set_safeguards(&self, target: i64, s: &Safeguards, destructive_removals: bool) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE targets SET removal_threshold = ?2, api_share = ?3, destructive_removals = ?4, concurrency = ?5 WHERE id = ?1",
            params![target, s.removal_threshold, s.api_share, destructive_removals, s.concurrency],
        )?;
        Ok(())
    }

    /// A target's safeguards.
    pub fn safeguards(&self, target: i64) -> Result<Safeguards, StoreError> {
        self.db()
            .query_row("SELECT removal_threshold, api_share, concurrency FROM targets WHERE id = ?1", params![target], |r| {
                Ok(Safeguards { removal_threshold: r.get(0)?, api_share: r.get(1)?, concurrency: r.get(2)? })
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("target {target}")))
    }

    /// Where a target stands.
    pub fn target_health(&self, target: i64) -> Result<TargetHealth, StoreError> {
        let conn = self.db();
        conn.query_row(
            "SELECT paused_until, pause_reason, pause_level, failures_in_row, usage_used, usage_limit, usage_at, destructive_removals,
                    (SELECT COUNT(*) FROM jobs j WHERE j.target_id = t.id AND j.held = 1),
                    removal_threshold, (SELECT COUNT(*) FROM provisioned p WHERE p.target_id = t.id AND p.remote_id IS NOT NULL)
             FROM targets t WHERE id = ?1",
            params![target],
            |r| {
                let usage = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?) {
                    (Some(u), Some(l), Some(at)) => Some((u, l, at)),
                    _ => None,
                };
                let threshold: Option<i64> = r.get(9)?;
                Ok(TargetHealth {
                    paused_until: r.get(0)?,
                    pause_reason: r.get(1)?,
                    pause_level: r.get(2)?,
                    failures_in_row: r.get(3)?,
                    usage,
                    destructive_removals: r.get(7)?,
                    held_removals: r.get(8)?,
                    removal_threshold: threshold.unwrap_or_else(|| automatic_threshold(r.get(10).unwrap_or(0))),
                })
            },
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("target {target}")))
    }

    /// Holds every unconfirmed queued removal of a target whose removals,
    /// with those done in the last 24 hours and those already held, would
    /// pass its threshold. Runs inside `claim`, before anything is chosen,
    /// so none of them is sent first. Returns the targets that held
    /// removals just now, with how many.
    pub(super) fn hold_removals(conn: &Connection) -> Result<Vec<(i64, usize)>, StoreError> {
        let since = now_ms() - REMOVAL_WINDOW_MS;
        let over: Vec<i64> = {
            let mut stmt = conn.prepare_cached(
                "SELECT j.target_id, COUNT(*), t.removal_threshold,
                        (SELECT COUNT(*) FROM provisioned p WHERE p.target_id = j.target_id AND p.remote_id IS NOT NULL),
                        (SELECT COUNT(*) FROM history h WHERE h.target_id = j.target_id AND h.action = 'deleted' AND h.ok = 1 AND h.at > ?1),
                        (SELECT COUNT(*) FROM jobs h WHERE h.target_id = j.target_id AND h.held = 1)
                 FROM jobs j JOIN targets t ON t.id = j.target_id
                 WHERE j.state = 'queued' AND j.action = 'deleted' AND j.held = 0 AND j.confirmed = 0 AND t.destructive_removals = 1
                 GROUP BY j.target_id",
            )?;
            let rows = stmt.query_map(params![since], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?))
            })?;
            rows.filter_map(|row| {
                let (target, queued, threshold, provisioned, recent, held) = match row {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                let threshold = threshold.unwrap_or_else(|| automatic_threshold(provisioned));
                (queued + recent + held > threshold).then_some(Ok(target))
            })
            .collect::<Result<_, _>>()?
        };
        let mut held = Vec::new();
        for target in over {
            let n = conn.execute(
                "UPDATE jobs SET held = 1 WHERE target_id = ?1 AND state = 'queued' AND action = 'deleted' AND held = 0 AND confirmed = 0",
                params![target],
            )?;
            tracing::warn!(target, held = n, "removals past the target's threshold wait for an admin's confirmation");
            held.push((target, n));
        }
        Ok(held)
    }

    /// The targets whose removals `claim` held since the last call, with
    /// how many (for notifications).
    pub fn take_new_holds(&self) -> Vec<(i64, usize)> {
        std::mem::take(&mut *self.new_holds.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The removals a target holds, oldest first.
    pub fn held_removals(&self, target: i64, limit: usize) -> Result<Vec<HeldRemoval>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT j.person_id, COALESCE(pe.sort_name, j.person_id), v.remote_type || ' ' || v.remote_id FROM jobs j
             LEFT JOIN people pe ON pe.id = j.person_id
             LEFT JOIN provisioned v ON v.person_id = j.person_id AND v.target_id = j.target_id
             WHERE j.target_id = ?1 AND j.held = 1 ORDER BY j.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![target, limit as i64], |r| Ok(HeldRemoval { person_id: r.get(0)?, name: r.get(1)?, remote: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Lets a target's held removals run; returns how many.
    pub fn confirm_removals(&self, target: i64) -> Result<usize, StoreError> {
        Ok(self.db().execute("UPDATE jobs SET held = 0, confirmed = 1 WHERE target_id = ?1 AND held = 1", params![target])?)
    }

    /// Drops a target's held removals: the records stay in the remote
    /// system, no longer managed; returns how many.
    pub fn discard_removals(&self, target: i64, admin: &str) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let jobs: Vec<Job> = {
            let mut stmt = tx.prepare("SELECT id, person_id, run_id FROM jobs WHERE target_id = ?1 AND held = 1")?;
            let rows = stmt.query_map(params![target], |r| {
                Ok(Job { id: r.get(0)?, person_id: r.get(1)?, target_id: target, action: crate::domain::Action::Deleted, attempts: 0, run_id: r.get(2)?, failing_since: None, duration_ms: None, acting_admin: None, claim: 0 })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let message = format!("removal discarded by {admin}: the record stays in the remote system, no longer managed");
        for job in &jobs {
            tx.execute("DELETE FROM jobs WHERE id = ?1", params![job.id])?;
            Self::set_state(&tx, &job.person_id, target, ProvState::NotInScope, Some(&message))?;
            Self::history_in(&tx, job, true, &message)?;
            if let Some(run) = job.run_id {
                Self::count_run(&tx, run, true)?;
            }
        }
        tx.commit()?;
        Ok(jobs.len())
    }

    /// A call of the target's succeeded: its failure count is cleared and a
    /// pause ends. Whether it had been paused (it resumes now).
    pub fn target_succeeded(&self, target: i64) -> Result<bool, StoreError> {
        let conn = self.db();
        let level: i64 = conn.query_row("SELECT pause_level FROM targets WHERE id = ?1", params![target], |r| r.get(0)).optional()?.unwrap_or(0);
        conn.execute(
            "UPDATE targets SET failures_in_row = 0, failing_since = NULL, pause_level = 0, paused_until = NULL, pause_reason = NULL WHERE id = ?1",
            params![target],
        )?;
        Ok(level > 0)
    }

    /// A call of the target's failed for a passing reason. After
    /// [`QUARANTINE_AFTER`] in a row over [`QUARANTINE_AFTER_MS`], or when
    /// a probe fails, the target is (again) quarantined; returns when its
    /// next probe is, and the reason shown, if it is.
    pub fn target_call_failed(&self, target: i64, why: &str) -> Result<Option<(i64, String)>, StoreError> {
        let now = self.now();
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let (failures, level, since): (i64, i64, i64) = tx.query_row(
            "UPDATE targets SET failures_in_row = failures_in_row + 1, failing_since = COALESCE(failing_since, ?2) WHERE id = ?1
             RETURNING failures_in_row, pause_level, failing_since",
            params![target, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let Some((level, until, reason)) = quarantine(failures, level, since, now, why) else {
            tx.commit()?;
            return Ok(None);
        };
        tx.execute("UPDATE targets SET pause_level = ?2, paused_until = ?3, pause_reason = ?4 WHERE id = ?1", params![target, level, until, reason])?;
        tx.commit()?;
        Ok(Some((until, reason)))
    }

    /// Pauses a target until `until` (then one job probes), saying why.
    pub fn pause_target(&self, target: i64, until: i64, reason: &str) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE targets SET paused_until = ?2, pause_reason = ?3, pause_level = MAX(pause_level, 1) WHERE id = ?1",
            params![target, until, reason],
        )?;
        Ok(())
    }

    /// Keeps the API usage the remote system reported. If the target's
    /// share is used up, it is paused for [`BUDGET_WAIT_MS`] and the
    /// reason returned.
    pub fn record_usage(&self, target: i64, used: u64, limit: u64) -> Result<Option<String>, StoreError> {
        let now = self.now();
        let share: Option<i64> = {
            let conn = self.db();
            conn.execute("UPDATE targets SET usage_used = ?2, usage_limit = ?3, usage_at = ?4 WHERE id = ?1", params![target, used as i64, limit as i64, now])?;
            conn.execute(
                "INSERT INTO usage_samples (target_id, hour, used, lim) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target_id, hour) DO UPDATE SET used = MAX(used, excluded.used), lim = excluded.lim",
                params![target, now / 3_600_000, used as i64, limit as i64],
            )?;
            conn.query_row("SELECT api_share FROM targets WHERE id = ?1", params![target], |r| r.get(0))?
        };
        let Some((until, reason)) = over_budget(used, limit, share, now) else { return Ok(None) };
        self.pause_target(target, until, &reason)?;
        Ok(Some(reason))
    }
}

/// After a failed call: whether the target is (again) quarantined, given
/// its failures in a row, pause level and first failure's time, and if so
/// its new level, when its next probe is, and the reason shown. The rule
/// both backends apply.
pub(crate) fn quarantine(failures: i64, level: i64, since: i64, now: i64, why: &str) -> Option<(i64, i64, String)> {
    if level == 0 && (failures < QUARANTINE_AFTER || now - since < QUARANTINE_AFTER_MS) {
        return None;
    }
    let level = level + 1;
    let until = now + (FIRST_PROBE_INTERVAL_MS << (level - 1).min(20)).min(MAX_PROBE_INTERVAL_MS);
    let reason = format!("quarantined: {failures} calls in a row failed (last: {why}); the next probe is at {}", format_time(until));
    Some((level, until, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_threshold_is_a_fifth_within_bounds() {
        assert_eq!(automatic_threshold(0), 20);
        assert_eq!(automatic_threshold(700), 140);
        assert_eq!(automatic_threshold(100_000), 500);
    }
}
