//! The provisioning log: every attempt across people and targets (the
//! `history` rows), filtered and paged by cursor so a million rows stay
//! fast; pruned after the retention period; the activity and API usage
//! series the dashboard draws; and "retry failed only".

use rusqlite::params;
use serde::Serialize;

use super::{SqliteStore, StoreError, now_ms, write};
use crate::domain::ProvState;

/// One attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Row id (the cursor).
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// The person.
    pub person_id: String,
    /// Their name as lists show it.
    pub person: String,
    /// The target's id, while it exists.
    pub target_id: Option<i64>,
    /// The target's name (kept after it is deleted).
    pub target: Option<String>,
    /// The job's action.
    pub action: String,
    /// Whether it worked.
    pub ok: bool,
    /// What happened, or the error.
    pub message: String,
    /// The remote record it left, e.g. `Contact 003…`.
    pub remote: Option<String>,
    /// How long the plugin call took (ms).
    pub duration_ms: Option<i64>,
}

/// Which attempts to list.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this target.
    pub target: Option<i64>,
    /// Only successes (`true`) or failures (`false`).
    pub ok: Option<bool>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this person.
    pub person: Option<String>,
    /// From this time on (ms).
    pub since: Option<i64>,
    /// Older than this id (the next page).
    pub before: Option<i64>,
}

impl SqliteStore {
    /// Attempts, newest first, at most `limit`.
    pub fn log(&self, f: &LogFilter, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached(
            "SELECT h.id, h.at, h.person_id, COALESCE(pe.sort_name, h.person_id), h.target_id, COALESCE(t.name, h.target_name), h.action, h.ok, h.message, h.remote, h.duration_ms
             FROM history h LEFT JOIN people pe ON pe.id = h.person_id LEFT JOIN targets t ON t.id = h.target_id
             WHERE (?1 IS NULL OR h.target_id = ?1) AND (?2 IS NULL OR h.ok = ?2) AND (?3 IS NULL OR h.action = ?3)
               AND (?4 IS NULL OR h.person_id = ?4) AND (?5 IS NULL OR h.at >= ?5) AND (?6 IS NULL OR h.id < ?6)
             ORDER BY h.id DESC LIMIT ?7",
        )?;
        let rows = stmt.query_map(params![f.target, f.ok, f.action, f.person, f.since, f.before, limit as i64], |r| {
            Ok(LogEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                person_id: r.get(2)?,
                person: r.get(3)?,
                target_id: r.get(4)?,
                target: r.get(5)?,
                action: r.get(6)?,
                ok: r.get::<_, i64>(7)? != 0,
                message: r.get(8)?,
                remote: r.get(9)?,
                duration_ms: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes attempts older than `retention_ms`; returns how many.
    pub fn prune_log(&self, retention_ms: i64) -> Result<usize, StoreError> {
        Ok(self.db().execute("DELETE FROM history WHERE at < ?1", params![now_ms() - retention_ms])?)
    }

    /// Queues a target's failed jobs again, as new (attempts and retry
    /// horizon start over); returns how many.
    pub fn retry_failed(&self, target: i64) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let people: Vec<String> = {
            let mut stmt = tx.prepare("SELECT person_id FROM jobs WHERE target_id = ?1 AND state = 'failed'")?;
            stmt.query_map(params![target], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, failing_since = NULL WHERE target_id = ?1 AND state = 'failed'",
            params![target],
        )?;
        for p in &people {
            Self::set_state(&tx, p, target, ProvState::Pending, Some("queued again by an admin (retry failed)"))?;
        }
        tx.commit()?;
        Ok(people.len())
    }

    /// Attempts per hour since `since` (ms): (hour start, succeeded, failed).
    pub fn activity(&self, since: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached(
            "SELECT (at / 3600000) * 3600000 AS hour, SUM(ok), SUM(1 - ok) FROM history WHERE at >= ?1 GROUP BY hour ORDER BY hour",
        )?;
        let rows = stmt.query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// API usage a target saw, the highest per hour since `since` (ms):
    /// (hour start, used, limit).
    pub fn usage_series(&self, target: i64, since: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached("SELECT hour * 3600000, used, lim FROM usage_samples WHERE target_id = ?1 AND hour * 3600000 >= ?2 ORDER BY hour")?;
        let rows = stmt.query_map(params![target, since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
