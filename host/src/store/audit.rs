//! The audit trail: every admin action, who did it, when, on what, and the
//! details with secrets redacted. Append-only: nothing here updates or
//! deletes a row.

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::{SqliteStore, StoreError, now_ms};

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Row id (the cursor for paging).
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// Who: an admin's username, `cli:<user>`, or `api:<token name>`.
    pub actor: String,
    /// What, e.g. `server.create`.
    pub action: String,
    /// On what, e.g. the server's name.
    pub subject: String,
    /// Before/after and other details, secrets redacted.
    pub detail: Value,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only actions starting with this, e.g. `server.`.
    pub action: Option<String>,
    /// Only entries from this time on (ms).
    pub since: Option<i64>,
    /// Only entries older than this id (the next page).
    pub before: Option<i64>,
}

/// Keys whose values never enter the trail.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "token", "password", "key", "verifier", "code"].iter().any(|s| k.contains(s))
}

/// `detail` with every value under a secret-looking key replaced.
pub fn redact(detail: Value) -> Value {
    match detail {
        Value::Object(map) => Value::Object(
            map.into_iter().map(|(k, v)| if secret_key(&k) && !v.is_null() { (k, Value::String("[redacted]".into())) } else { (k, redact(v)) }).collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

impl SqliteStore {
    /// Records an admin action (its details redacted).
    pub fn audit(&self, actor: &str, action: &str, subject: &str, detail: Value) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms(), actor, action, subject, redact(detail).to_string()],
        )?;
        Ok(())
    }

    /// Audit entries, newest first, at most `limit`.
    pub fn audit_entries(&self, f: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, action, subject, detail FROM audit
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action LIKE ?2 || '%') AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(params![f.actor, f.action, f.since, f.before, limit as i64], |r| {
            let detail: String = r.get(5)?;
            Ok(AuditEntry { id: r.get(0)?, at: r.get(1)?, actor: r.get(2)?, action: r.get(3)?, subject: r.get(4)?, detail: serde_json::from_str(&detail).unwrap_or(Value::Null) })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl SqliteStore {
    /// Whether a notification for `key` may go now (none within `window_ms`);
    /// if so, records it as sent.
    pub fn claim_notification(&self, key: &str, window_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = self.db().execute(
            "INSERT INTO notifications_sent (key, at) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE notifications_sent.at <= ?2 - ?3",
            params![key, now, window_ms],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_enter_the_trail() {
        assert_eq!(
            redact(json!({"name": "SF", "client_secret": "s3cret", "after": {"refresh_token": "5Aep", "scope": "api"}, "password": null})),
            json!({"name": "SF", "client_secret": "[redacted]", "after": {"refresh_token": "[redacted]", "scope": "api"}, "password": null})
        );
    }
}
