//! The audit trail and the notification ledger on PostgreSQL.

use serde_json::Value;

use super::PgStore;
use crate::store::{AuditEntry, AuditFilter, StoreError, now_ms, redact};

impl PgStore {
    /// Records an admin action (secrets in `detail` redacted first).
    pub async fn audit(&self, actor: &str, action: &str, subject: &str, detail: Value) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("INSERT INTO audit (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)", &[&now_ms(), &actor, &action, &subject, &redact(detail).to_string()])
            .await?;
        Ok(())
    }

    /// The trail, newest first, filtered (the action by prefix, any case,
    /// as SQLite's LIKE), at most `limit` entries.
    pub async fn audit_entries(&self, f: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, at, actor, action, subject, detail FROM audit
                 WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action ILIKE $2 || '%')
                   AND ($3::bigint IS NULL OR at >= $3) AND ($4::bigint IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5",
                &[&f.actor, &f.action, &f.since, &f.before, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: serde_json::from_str(&r.get::<_, String>(5)).unwrap_or(Value::Null),
            })
            .collect())
    }

    /// Whether this node may send the notification `key` now: once per
    /// `window_ms` across every node.
    pub async fn claim_notification(&self, key: &str, window_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO notifications_sent (key, at) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE notifications_sent.at <= $2 - $3",
                &[&key, &now, &window_ms],
            )
            .await?;
        Ok(n == 1)
    }
}
