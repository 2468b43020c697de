//! Admins, their sessions, API tokens and pending sign-ins on PostgreSQL:
//! in the database, so that a login or an OAuth callback that lands on
//! another node works. Only hashes of session and API tokens are stored.

use super::PgStore;
use super::servers::conflict;
use crate::secrets::{random_token, token_hash};
use crate::store::{ApiToken, Pending, PendingOrigin, Session, StoreError, now_ms};

/// The advisory lock the first admin is made under.
const FIRST_ADMIN_LOCK: i64 = 0x6669_7273_7461_646d; // "firstadm"

impl PgStore {
    /// How many admins exist.
    pub async fn admin_count(&self) -> Result<i64, StoreError> {
        Ok(self.client().await?.query_one("SELECT count(*) FROM admins", &[]).await?.get(0))
    }

    /// Adds an admin with an already-hashed password.
    pub async fn create_admin(&self, username: &str, password_hash: &str) -> Result<i64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("INSERT INTO admins (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id", &[&username, &password_hash, &now_ms()])
            .await
            .map_err(|e| conflict(e, || format!("an admin named '{username}' already exists")))?;
        Ok(row.get(0))
    }

    /// Adds the first admin, unless there is one: however many nodes start
    /// together with the same first-admin settings, one admin is made.
    /// Its id, or `None` when an admin existed.
    pub async fn create_first_admin(&self, username: &str, password_hash: &str) -> Result<Option<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_ADMIN_LOCK]).await?;
        let existing: i64 = tx.query_one("SELECT count(*) FROM admins", &[]).await?.get(0);
        if existing > 0 {
            return Ok(None);
        }
        let id: i64 = tx
            .query_one("INSERT INTO admins (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id", &[&username, &password_hash, &now_ms()])
            .await?
            .get(0);
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Every admin: id, username, created (ms), by username.
    pub async fn admins(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let rows = self.client().await?.query("SELECT id, username, created_at FROM admins ORDER BY lower(username), id", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Deletes an admin with their sessions and own provider tokens;
    /// refused for the last admin (two nodes deleting the last two at once
    /// cannot both succeed: the count is taken under a lock).
    pub async fn delete_admin(&self, admin_id: i64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_ADMIN_LOCK]).await?;
        let count: i64 = tx.query_one("SELECT count(*) FROM admins", &[]).await?.get(0);
        if count <= 1 {
            return Err(StoreError::Conflict("the last admin cannot be deleted".into()));
        }
        if tx.execute("DELETE FROM admins WHERE id = $1", &[&admin_id]).await? == 0 {
            return Err(StoreError::NotFound(format!("admin {admin_id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// An admin's id and password hash.
    pub async fn admin(&self, username: &str) -> Result<Option<(i64, String)>, StoreError> {
        let row = self.client().await?.query_opt("SELECT id, password_hash FROM admins WHERE username = $1", &[&username]).await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Records a session (by the hash of its token).
    pub async fn create_session(&self, token_hash: &str, admin_id: i64, csrf_token: &str, ttl_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let client = self.client().await?;
        client.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now]).await?;
        client
            .execute(
                "INSERT INTO sessions (token_hash, admin_id, csrf_token, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&token_hash, &admin_id, &csrf_token, &(now + ttl_ms), &now],
            )
            .await?;
        Ok(())
    }

    /// The live session with this token hash.
    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT s.admin_id, a.username, s.csrf_token FROM sessions s JOIN admins a ON a.id = s.admin_id WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash, &now_ms()],
            )
            .await?;
        Ok(row.map(|r| Session { admin_id: r.get(0), username: r.get(1), csrf_token: r.get(2), token_hash: token_hash.to_string() }))
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.client().await?.execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash]).await?;
        Ok(())
    }

    /// Keeps a message for the session's next page (Post/Redirect/Get).
    pub async fn set_flash(&self, token_hash: &str, flash: &str) -> Result<(), StoreError> {
        self.client().await?.execute("UPDATE sessions SET flash = $2 WHERE token_hash = $1", &[&token_hash, &flash]).await?;
        Ok(())
    }

    /// Takes (and clears) the session's message, if any: once, even when
    /// two nodes serve the session's next pages at once.
    pub async fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE sessions s SET flash = NULL FROM (SELECT token_hash, flash FROM sessions WHERE token_hash = $1 FOR NO KEY UPDATE) old
                 WHERE s.token_hash = old.token_hash RETURNING old.flash",
                &[&token_hash],
            )
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// How many live sessions an admin has.
    pub async fn session_count(&self, admin_id: i64) -> Result<i64, StoreError> {
        Ok(self.client().await?.query_one("SELECT count(*) FROM sessions WHERE admin_id = $1 AND expires_at > $2", &[&admin_id, &now_ms()]).await?.get(0))
    }

    /// Ends every session of an admin but the one with `keep` (a token
    /// hash), if given; returns how many ended.
    pub async fn end_sessions(&self, admin_id: i64, keep: Option<&str>) -> Result<usize, StoreError> {
        Ok(self.client().await?.execute("DELETE FROM sessions WHERE admin_id = $1 AND token_hash IS DISTINCT FROM $2", &[&admin_id, &keep]).await? as usize)
    }

    /// Replaces an admin's password hash and, in the same transaction, ends
    /// their other sessions.
    pub async fn set_password(&self, admin_id: i64, password_hash: &str, keep_session: Option<&str>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("UPDATE admins SET password_hash = $2 WHERE id = $1", &[&admin_id, &password_hash]).await?;
        tx.execute("DELETE FROM sessions WHERE admin_id = $1 AND token_hash IS DISTINCT FROM $2", &[&admin_id, &keep_session]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An admin's password hash, by id.
    pub async fn admin_password_hash(&self, admin_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self.client().await?.query_opt("SELECT password_hash FROM admins WHERE id = $1", &[&admin_id]).await?.map(|r| r.get(0)))
    }

    /// Creates an API token called `name` (shown once, stored only as its
    /// SHA-256), valid until `expires_at` if given.
    pub async fn create_api_token(&self, name: &str, expires_at: Option<i64>) -> Result<String, StoreError> {
        let token = format!("rh_{}", random_token());
        self.client()
            .await?
            .execute("INSERT INTO api_tokens (name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)", &[&name, &token_hash(&token), &now_ms(), &expires_at])
            .await
            .map_err(|e| conflict(e, || format!("an API token named '{name}' already exists; revoke it or pick another name")))?;
        Ok(token)
    }

    /// The name of the API token `token`, if it is neither revoked nor
    /// expired (its last use recorded).
    pub async fn api_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) RETURNING name",
                &[&token_hash(token), &now],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Every API token (never the token itself), newest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = self.client().await?.query("SELECT name, created_at, last_used_at, expires_at, revoked_at FROM api_tokens ORDER BY created_at DESC, id DESC", &[]).await?;
        Ok(rows.iter().map(|r| ApiToken { name: r.get(0), created_at: r.get(1), last_used_at: r.get(2), expires_at: r.get(3), revoked_at: r.get(4) }).collect())
    }

    /// Revokes the API token called `name`; false if there is no live one.
    pub async fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.client().await?.execute("UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL", &[&name, &now_ms()]).await? == 1)
    }

    /// Deletes a revoked API token's row, freeing its name.
    pub async fn forget_api_token(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.client().await?.execute("DELETE FROM api_tokens WHERE name = $1 AND revoked_at IS NOT NULL", &[&name]).await? == 1)
    }

    /// Remembers an authorization in progress (single use, expiring).
    pub async fn put_pending(&self, state: &str, server_id: i64, code_verifier: &str, redirect_uri: &str, origin: PendingOrigin<'_>, ttl_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let client = self.client().await?;
        client.execute("DELETE FROM oauth2_pending WHERE expires_at < $1", &[&(now - 24 * 3600 * 1000)]).await?;
        let sealed = self.secrets.seal(&format!("oauth2_pending.code_verifier.{state}"), code_verifier);
        client
            .execute(
                "INSERT INTO oauth2_pending (state, server_id, code_verifier, redirect_uri, expires_at, session, popup, admin_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&state, &server_id, &sealed, &redirect_uri, &(now + ttl_ms), &origin.session, &origin.popup, &origin.admin],
            )
            .await?;
        Ok(())
    }

    /// Takes (and deletes) the pending authorization for `state`: once,
    /// whichever node the callback lands on.
    pub async fn take_pending(&self, state: &str) -> Result<Option<Pending>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM oauth2_pending WHERE state = $1 RETURNING server_id, code_verifier, redirect_uri, expires_at, session, popup, admin_id",
                &[&state],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let verifier: Vec<u8> = r.get(1);
        let expires_at: i64 = r.get(3);
        Ok(Some(Pending {
            server_id: r.get(0),
            code_verifier: self.secrets.open(&format!("oauth2_pending.code_verifier.{state}"), &verifier)?,
            redirect_uri: r.get(2),
            expired: now_ms() > expires_at,
            session: r.get(4),
            popup: r.get(5),
            admin: r.get(6),
        }))
    }
}
