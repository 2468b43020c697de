//! The provisioning log on PostgreSQL: attempts filtered and paged by
//! cursor, pruning, "retry failed only", and the dashboard's series.

use super::PgStore;
use crate::domain::ProvState;
use crate::store::{LogEntry, LogFilter, StoreError, now_ms};

impl PgStore {
    /// Attempts, newest first, at most `limit`.
    pub async fn log(&self, f: &LogFilter, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT h.id, h.at, h.person_id, COALESCE(pe.sort_name, h.person_id), h.target_id, COALESCE(t.name, h.target_name), h.action, h.ok, h.message, h.remote, h.duration_ms
                 FROM history h LEFT JOIN people pe ON pe.id = h.person_id LEFT JOIN targets t ON t.id = h.target_id
                 WHERE ($1::bigint IS NULL OR h.target_id = $1) AND ($2::boolean IS NULL OR h.ok = $2) AND ($3::text IS NULL OR h.action = $3)
                   AND ($4::text IS NULL OR h.person_id = $4) AND ($5::bigint IS NULL OR h.at >= $5) AND ($6::bigint IS NULL OR h.id < $6)
                 ORDER BY h.id DESC LIMIT $7",
                &[&f.target, &f.ok, &f.action, &f.person, &f.since, &f.before, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LogEntry {
                id: r.get(0),
                at: r.get(1),
                person_id: r.get(2),
                person: r.get(3),
                target_id: r.get(4),
                target: r.get(5),
                action: r.get(6),
                ok: r.get(7),
                message: r.get(8),
                remote: r.get(9),
                duration_ms: r.get(10),
            })
            .collect())
    }

    /// Deletes attempts older than `retention_ms`; returns how many.
    pub async fn prune_log(&self, retention_ms: i64) -> Result<usize, StoreError> {
        Ok(self.client().await?.execute("DELETE FROM history WHERE at < $1", &[&(now_ms() - retention_ms)]).await? as usize)
    }

    /// Queues a target's failed jobs again, as new; returns how many. Each
    /// pair is locked first, as everywhere that changes a pair's jobs.
    pub async fn retry_failed(&self, target: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let people: Vec<String> = tx
            .query("SELECT person_id FROM jobs WHERE target_id = $1 AND state = 'failed' ORDER BY person_id", &[&target])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for p in &people {
            Self::set_state_in(&tx, p, target, ProvState::Pending, Some("queued again by an admin (retry failed)")).await?;
        }
        let n = tx
            .execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, failing_since = NULL
                 WHERE target_id = $1 AND state = 'failed' AND person_id = ANY($2)",
                &[&target, &people],
            )
            .await?;
        tx.commit().await?;
        Ok(n as usize)
    }

    /// Attempts per hour since `since` (ms): (hour start, succeeded, failed).
    pub async fn activity(&self, since: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT (at / 3600000) * 3600000 AS hour, count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok)
                 FROM history WHERE at >= $1 GROUP BY hour ORDER BY hour",
                &[&since],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// API usage a target saw, the highest per hour since `since` (ms):
    /// (hour start, used, limit).
    pub async fn usage_series(&self, target: i64, since: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT hour * 3600000, used, lim FROM usage_samples WHERE target_id = $1 AND hour * 3600000 >= $2 ORDER BY hour", &[&target, &since])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}
