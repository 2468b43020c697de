//! Safeguards on PostgreSQL, per target, as on SQLite: removals past a
//! threshold held for an admin's confirmation (checked in each claim's
//! transaction, so no node claims a removal another node's claim would
//! have held), pauses that end with one probe, and the API usage the
//! remote system last reported. Pause times are milliseconds of the
//! nodes' clocks, as the SQLite store keeps them.

use deadpool_postgres::Transaction;

use super::PgStore;
use crate::domain::{Action, Job, ProvState};
use crate::store::safeguards::{REMOVAL_WINDOW_MS, automatic_threshold, over_budget};
use crate::store::{HeldRemoval, Safeguards, StoreError, TargetHealth, now_ms};

impl PgStore {
    /// Saves a target's safeguards.
    pub async fn set_safeguards(&self, target: i64, s: &Safeguards, destructive_removals: bool) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE targets SET removal_threshold = $2, api_share = $3, destructive_removals = $4, concurrency = $5 WHERE id = $1",
                &[&target, &s.removal_threshold, &s.api_share, &destructive_removals, &s.concurrency],
            )
            .await?;
        Ok(())
    }

    /// A target's safeguards.
    pub async fn safeguards(&self, target: i64) -> Result<Safeguards, StoreError> {
        let r = self
            .client()
            .await?
            .query_opt("SELECT removal_threshold, api_share, concurrency FROM targets WHERE id = $1", &[&target])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {target}")))?;
        Ok(Safeguards { removal_threshold: r.get(0), api_share: r.get(1), concurrency: r.get(2) })
    }

    /// How a target stands: its pause, failures, usage, held removals.
    pub async fn target_health(&self, target: i64) -> Result<TargetHealth, StoreError> {
        let r = self
            .client()
            .await?
            .query_opt(
                "SELECT paused_until, pause_reason, pause_level, failures_in_row, usage_used, usage_limit, usage_at, destructive_removals,
                        (SELECT count(*) FROM jobs j WHERE j.target_id = t.id AND j.held),
                        removal_threshold, (SELECT count(*) FROM provisioned p WHERE p.target_id = t.id AND p.remote_id IS NOT NULL)
                 FROM targets t WHERE id = $1",
                &[&target],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {target}")))?;
        let usage = match (r.get::<_, Option<i64>>(4), r.get::<_, Option<i64>>(5), r.get::<_, Option<i64>>(6)) {
            (Some(u), Some(l), Some(at)) => Some((u, l, at)),
            _ => None,
        };
        let threshold: Option<i64> = r.get(9);
        Ok(TargetHealth {
            paused_until: r.get(0),
            pause_reason: r.get(1),
            pause_level: r.get(2),
            failures_in_row: r.get(3),
            usage,
            destructive_removals: r.get(7),
            held_removals: r.get(8),
            removal_threshold: threshold.unwrap_or_else(|| automatic_threshold(r.get(10))),
        })
    }

    /// Holds the queued removals of each target past its threshold, in the
    /// caller's (the claim's) transaction. Returns (target, how many) newly
    /// held, and (target, how many queued) for the targets whose removals
    /// it let go: the claim, a statement with a later snapshot, takes a
    /// target's removals only if no more are queued by then (a removal
    /// committed in between is left to the next claim's count).
    pub(super) async fn hold_removals(tx: &Transaction<'_>) -> Result<(Vec<(i64, usize)>, Vec<(i64, i64)>), StoreError> {
        let rows = tx
            .query(
                "SELECT j.target_id, count(*), t.removal_threshold,
                        (SELECT count(*) FROM provisioned p WHERE p.target_id = j.target_id AND p.remote_id IS NOT NULL),
                        (SELECT count(*) FROM history h WHERE h.target_id = j.target_id AND h.action = 'deleted' AND h.ok AND h.at > $1),
                        (SELECT count(*) FROM jobs h WHERE h.target_id = j.target_id AND h.held)
                 FROM jobs j JOIN targets t ON t.id = j.target_id
                 WHERE j.state = 'queued' AND j.action = 'deleted' AND NOT j.held AND NOT j.confirmed AND t.destructive_removals
                 GROUP BY j.target_id, t.removal_threshold ORDER BY j.target_id",
                &[&(now_ms() - REMOVAL_WINDOW_MS)],
            )
            .await?;
        let mut held = Vec::new();
        let mut seen = Vec::new();
        for r in rows {
            let (target, queued, threshold, provisioned, recent, already): (i64, i64, Option<i64>, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            if queued + recent + already <= threshold.unwrap_or_else(|| automatic_threshold(provisioned)) {
                seen.push((target, queued));
                continue;
            }
            // Job rows only, skipping locked ones, as a claim takes them: a
            // removal being queued right now is held by the next claim.
            let n = tx
                .execute(
                    "UPDATE jobs SET held = TRUE WHERE id IN (
                       SELECT id FROM jobs WHERE target_id = $1 AND state = 'queued' AND action = 'deleted' AND NOT held AND NOT confirmed
                       FOR NO KEY UPDATE SKIP LOCKED)",
                    &[&target],
                )
                .await?;
            if n == 0 {
                // Another node's claim held them.
                continue;
            }
            tracing::warn!(target, held = n, "removals past the target's threshold wait for an admin's confirmation");
            held.push((target, n as usize));
        }
        Ok((held, seen))
    }

    /// The removals claims held since last asked, once each (this node's).
    pub fn take_new_holds(&self) -> Vec<(i64, usize)> {
        std::mem::take(&mut *self.new_holds.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A target's held removals, oldest first.
    pub async fn held_removals(&self, target: i64, limit: usize) -> Result<Vec<HeldRemoval>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT j.person_id, COALESCE(pe.sort_name, j.person_id), v.remote_type || ' ' || v.remote_id FROM jobs j
                 LEFT JOIN people pe ON pe.id = j.person_id
                 LEFT JOIN provisioned v ON v.person_id = j.person_id AND v.target_id = j.target_id
                 WHERE j.target_id = $1 AND j.held ORDER BY j.id LIMIT $2",
                &[&target, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| HeldRemoval { person_id: r.get(0), name: r.get(1), remote: r.get(2) }).collect())
    }

    /// Lets a target's held removals run.
    pub async fn confirm_removals(&self, target: i64) -> Result<usize, StoreError> {
        Ok(self.client().await?.execute("UPDATE jobs SET held = FALSE, confirmed = TRUE WHERE target_id = $1 AND held", &[&target]).await? as usize)
    }

    /// Drops a target's held removals: the records stay, unmanaged.
    pub async fn discard_removals(&self, target: i64, admin: &str) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let message = format!("removal discarded by {admin}: the record stays in the remote system, no longer managed");
        let held = tx.query("SELECT id, person_id, run_id FROM jobs WHERE target_id = $1 AND held ORDER BY person_id", &[&target]).await?;
        let (mut runs, mut discarded) = (Vec::new(), 0);
        for r in &held {
            let job = Job { id: r.get(0), person_id: r.get(1), target_id: target, action: Action::Deleted, attempts: 0, run_id: r.get(2), failing_since: None, duration_ms: None, acting_admin: None, claim: 0 };
            // The pair first, as everywhere; a removal confirmed or replaced
            // meanwhile is not discarded.
            if !Self::lock_pair(&tx, &job.person_id, target).await? || tx.execute("DELETE FROM jobs WHERE id = $1 AND held", &[&job.id]).await? == 0 {
                continue;
            }
            Self::set_state_in(&tx, &job.person_id, target, ProvState::NotInScope, Some(&message)).await?;
            Self::history_in(&tx, &job, true, &message, None).await?;
            discarded += 1;
            runs.extend(job.run_id);
        }
        runs.sort_unstable();
        for run in runs {
            Self::count_run_in(&tx, run, true).await?;
        }
        tx.commit().await?;
        Ok(discarded)
    }

    /// A call for the target worked: its failure streak and pause end.
    /// Whether it was paused (a probe that worked).
    // A healthy target's row is neither locked nor written: every node
    // ends every batch here.
    pub async fn target_succeeded(&self, target: i64) -> Result<bool, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE targets t SET failures_in_row = 0, failing_since = NULL, pause_level = 0, paused_until = NULL, pause_reason = NULL
                 FROM (SELECT id, pause_level FROM targets WHERE id = $1
                         AND (failures_in_row > 0 OR failing_since IS NOT NULL OR pause_level > 0 OR paused_until IS NOT NULL OR pause_reason IS NOT NULL)
                       FOR NO KEY UPDATE) old
                 WHERE t.id = old.id RETURNING old.pause_level",
                &[&target],
            )
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, i64>(0) > 0))
    }

    /// A call for the target failed for a reason of the target's: after
    /// enough in a row for long enough, it is quarantined (again, longer).
    pub async fn target_call_failed(&self, target: i64, why: &str) -> Result<Option<(i64, String)>, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let r = tx
            .query_one(
                "UPDATE targets SET failures_in_row = failures_in_row + 1, failing_since = COALESCE(failing_since, $2) WHERE id = $1
                 RETURNING failures_in_row, pause_level, failing_since",
                &[&target, &now],
            )
            .await?;
        let (failures, level, since): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        let Some((level, until, reason)) = crate::store::safeguards::quarantine(failures, level, since, now, why) else {
            tx.commit().await?;
            return Ok(None);
        };
        tx.execute("UPDATE targets SET pause_level = $2, paused_until = $3, pause_reason = $4 WHERE id = $1", &[&target, &level, &until, &reason]).await?;
        tx.commit().await?;
        Ok(Some((until, reason)))
    }

    /// Pauses a target until `until` (ms), saying why.
    pub async fn pause_target(&self, target: i64, until: i64, reason: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("UPDATE targets SET paused_until = $2, pause_reason = $3, pause_level = GREATEST(pause_level, 1) WHERE id = $1", &[&target, &until, &reason])
            .await?;
        Ok(())
    }

    /// Records the API usage the remote system reported; past the
    /// target's share, the target waits (and why is returned).
    pub async fn record_usage(&self, target: i64, used: u64, limit: u64) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        let client = self.client().await?;
        client.execute("UPDATE targets SET usage_used = $2, usage_limit = $3, usage_at = $4 WHERE id = $1", &[&target, &(used as i64), &(limit as i64), &now]).await?;
        client
            .execute(
                "INSERT INTO usage_samples (target_id, hour, used, lim) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (target_id, hour) DO UPDATE SET used = GREATEST(usage_samples.used, excluded.used), lim = excluded.lim",
                &[&target, &(now / 3_600_000), &(used as i64), &(limit as i64)],
            )
            .await?;
        let share: Option<i64> = client.query_one("SELECT api_share FROM targets WHERE id = $1", &[&target]).await?.get(0);
        let Some((until, reason)) = over_budget(used, limit, share, now) else { return Ok(None) };
        self.pause_target(target, until, &reason).await?;
        Ok(Some(reason))
    }
}
