//! Admins, their sessions, and API tokens: only hashes of session and API
//! tokens are stored.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_ms, unique};
use crate::secrets::{random_token, token_hash};

/// A logged-in admin's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Admin id.
    pub admin_id: i64,
    /// Admin username.
    pub username: String,
    /// The session's CSRF token.
    pub csrf_token: String,
}

impl Store {
    /// How many admins exist.
    pub fn admin_count(&self) -> Result<i64, StoreError> {
        Ok(self.db().query_row("SELECT COUNT(*) FROM admins", [], |r| r.get(0))?)
    }

    /// Adds an admin with an already-hashed password.
    pub fn create_admin(&self, username: &str, password_hash: &str) -> Result<i64, StoreError> {
        let db = self.db();
        db.execute("INSERT INTO admins (username, password_hash, created_at) VALUES (?1, ?2, ?3)", params![username, password_hash, now_ms()])
            .map_err(|e| unique(e, || format!("an admin named '{username}' already exists")))?;
        Ok(db.last_insert_rowid())
    }

    /// An admin's id and password hash.
    pub fn admin(&self, username: &str) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT id, password_hash FROM admins WHERE username = ?1", params![username], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Records a session (by the hash of its token).
    pub fn create_session(&self, token_hash: &str, admin_id: i64, csrf_token: &str, ttl_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let conn = self.db();
        conn.execute("DELETE FROM sessions WHERE expires_at < ?1", params![now])?;
        conn.execute(
            "INSERT INTO sessions (token_hash, admin_id, csrf_token, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, admin_id, csrf_token, now + ttl_ms],
        )?;
        Ok(())
    }

    /// The live session with this token hash.
    pub fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT s.admin_id, a.username, s.csrf_token FROM sessions s JOIN admins a ON a.id = s.admin_id WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![token_hash, now_ms()],
                |r| Ok(Session { admin_id: r.get(0)?, username: r.get(1)?, csrf_token: r.get(2)? }),
            )
            .optional()?)
    }

    /// Ends a session.
    pub fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.db().execute("DELETE FROM sessions WHERE token_hash = ?1", params![token_hash])?;
        Ok(())
    }

    /// Creates an API token called `name`; returns it (shown once, stored
    /// only as its SHA-256).
    pub fn create_api_token(&self, name: &str) -> Result<String, StoreError> {
        let token = format!("rh_{}", random_token());
        self.db()
            .execute("INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?1, ?2, ?3)", params![name, token_hash(&token), now_ms()])
            .map_err(|e| unique(e, || format!("an API token named '{name}' already exists")))?;
        Ok(token)
    }

    /// The name of the API token `token`, if it is one.
    pub fn api_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let conn = self.db();
        let hash = token_hash(token);
        let name: Option<String> = conn.query_row("SELECT name FROM api_tokens WHERE token_hash = ?1", params![hash], |r| r.get(0)).optional()?;
        if name.is_some() {
            conn.execute("UPDATE api_tokens SET last_used_at = ?1 WHERE token_hash = ?2", params![now_ms(), hash])?;
        }
        Ok(name)
    }
}
