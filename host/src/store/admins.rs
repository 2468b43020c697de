//! Admins, their sessions, and API tokens: only hashes of session and API
//! tokens are stored.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError, now_ms, unique, write};
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
    /// The SHA-256 of its cookie token (what the database keeps).
    pub token_hash: String,
}

impl SqliteStore {
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

    /// Every admin: id, username, created (ms), by username.
    pub fn admins(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT id, username, created_at FROM admins ORDER BY username COLLATE NOCASE")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes an admin with their sessions and own provider tokens (revoke
    /// those at the provider first); refused for the last admin.
    pub fn delete_admin(&self, admin_id: i64) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM admins", [], |r| r.get(0))?;
        if count <= 1 {
            return Err(StoreError::Conflict("the last admin cannot be deleted".into()));
        }
        if tx.execute("DELETE FROM admins WHERE id = ?1", params![admin_id])? == 0 {
            return Err(StoreError::NotFound(format!("admin {admin_id}")));
        }
        tx.commit()?;
        Ok(())
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
            "INSERT INTO sessions (token_hash, admin_id, csrf_token, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash, admin_id, csrf_token, now + ttl_ms, now],
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
                |r| Ok(Session { admin_id: r.get(0)?, username: r.get(1)?, csrf_token: r.get(2)?, token_hash: token_hash.to_string() }),
            )
            .optional()?)
    }

    /// Ends a session.
    pub fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.db().execute("DELETE FROM sessions WHERE token_hash = ?1", params![token_hash])?;
        Ok(())
    }

    /// Keeps a message for the session's next page (Post/Redirect/Get).
    pub fn set_flash(&self, token_hash: &str, flash: &str) -> Result<(), StoreError> {
        self.db().execute("UPDATE sessions SET flash = ?2 WHERE token_hash = ?1", params![token_hash, flash])?;
        Ok(())
    }

    /// Takes (and clears) the session's message, if any.
    pub fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let conn = self.db();
        let flash: Option<String> = conn.query_row("SELECT flash FROM sessions WHERE token_hash = ?1", params![token_hash], |r| r.get(0)).optional()?.flatten();
        if flash.is_some() {
            conn.execute("UPDATE sessions SET flash = NULL WHERE token_hash = ?1", params![token_hash])?;
        }
        Ok(flash)
    }

    /// How many live sessions an admin has.
    pub fn session_count(&self, admin_id: i64) -> Result<i64, StoreError> {
        Ok(self.db().query_row("SELECT COUNT(*) FROM sessions WHERE admin_id = ?1 AND expires_at > ?2", params![admin_id, now_ms()], |r| r.get(0))?)
    }

    /// Ends every session of an admin but the one with `keep` (a token
    /// hash), if given; returns how many ended.
    pub fn end_sessions(&self, admin_id: i64, keep: Option<&str>) -> Result<usize, StoreError> {
        Ok(self.db().execute("DELETE FROM sessions WHERE admin_id = ?1 AND token_hash IS NOT ?2", params![admin_id, keep])?)
    }

    /// Replaces an admin's password hash and, in the same transaction, ends
    /// their other sessions (a changed password locks out whoever knew the
    /// old one).
    pub fn set_password(&self, admin_id: i64, password_hash: &str, keep_session: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute("UPDATE admins SET password_hash = ?2 WHERE id = ?1", params![admin_id, password_hash])?;
        tx.execute("DELETE FROM sessions WHERE admin_id = ?1 AND token_hash IS NOT ?2", params![admin_id, keep_session])?;
        tx.commit()?;
        Ok(())
    }

    /// An admin's password hash, by id.
    pub fn admin_password_hash(&self, admin_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self.db().query_row("SELECT password_hash FROM admins WHERE id = ?1", params![admin_id], |r| r.get(0)).optional()?)
    }

    /// Creates an API token called `name`, valid until `expires_at` (ms since
    /// the epoch) if given; returns it (shown once, stored only as its
    /// SHA-256).
    pub fn create_api_token(&self, name: &str, expires_at: Option<i64>) -> Result<String, StoreError> {
        let token = format!("rh_{}", random_token());
        self.db()
            .execute(
                "INSERT INTO api_tokens (name, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, token_hash(&token), now_ms(), expires_at],
            )
            .map_err(|e| unique(e, || format!("an API token named '{name}' already exists; revoke it or pick another name")))?;
        Ok(token)
    }

    /// The name of the API token `token`, if it is one that is neither
    /// revoked nor expired.
    pub fn api_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let conn = self.db();
        let hash = token_hash(token);
        let now = now_ms();
        let name: Option<String> = conn
            .query_row(
                "SELECT name FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
                params![hash, now],
                |r| r.get(0),
            )
            .optional()?;
        if name.is_some() {
            conn.execute("UPDATE api_tokens SET last_used_at = ?1 WHERE token_hash = ?2", params![now, hash])?;
        }
        Ok(name)
    }

    /// Every API token (never the token itself), newest first.
    pub fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT name, created_at, last_used_at, expires_at, revoked_at FROM api_tokens ORDER BY created_at DESC, id DESC")?;
        let rows = stmt.query_map([], |r| {
            Ok(ApiToken { name: r.get(0)?, created_at: r.get(1)?, last_used_at: r.get(2)?, expires_at: r.get(3)?, revoked_at: r.get(4)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes the API token called `name`; false if there is no live one.
    pub fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.db().execute("UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL", params![name, now_ms()])? == 1)
    }

    /// Deletes a revoked API token's row, freeing its name; false if there
    /// is no revoked token of that name.
    pub fn forget_api_token(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.db().execute("DELETE FROM api_tokens WHERE name = ?1 AND revoked_at IS NOT NULL", params![name])? == 1)
    }
}

/// An API token as listed: its name and dates, never the token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// What it is for.
    pub name: String,
    /// When it was made (ms since the epoch).
    pub created_at: i64,
    /// When it was last used.
    pub last_used_at: Option<i64>,
    /// When it stops working, if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

impl ApiToken {
    /// `active`, `expired` or `revoked` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}
