//! Each admin's own token per OAuth2 server ("Partner Info"): sealed like
//! the server's, with who it acts as at the provider and when it was last
//! checked. On-demand provisioning and Test Connection use it, so the
//! provider's audit trail names the admin; automatic provisioning keeps
//! the server's integration token.

use rusqlite::{OptionalExtension, params};

use super::servers::TokenMeta;
use super::{SqliteStore, StoreError, now_ms};
use registry_plugin_runtime::latest::types::TokenSet;

/// An admin's token for one server, as their page shows it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// The server.
    pub server_id: i64,
    /// Who the token acts as at the provider (its user name), once known.
    pub login: Option<String>,
    /// False once the provider refused it for good (a new one is needed).
    pub usable: bool,
    /// The last failure, in plain language.
    pub last_error: Option<String>,
    /// When a check last proved it worked (ms).
    pub checked_at: Option<i64>,
    /// When it was issued (ms).
    pub issued_at: Option<i64>,
}

impl SqliteStore {
    /// Stores an admin's fresh token set for a server (replacing theirs),
    /// and who it acts as when known.
    pub fn save_admin_tokens(&self, admin_id: i64, server_id: i64, t: &TokenSet, login: Option<&str>) -> Result<(), StoreError> {
        let access = self.secrets.seal(&Self::admin_token_aad("access_token", admin_id, server_id), &t.access_token);
        let refresh = t.refresh_token.as_deref().map(|r| self.secrets.seal(&Self::admin_token_aad("refresh_token", admin_id, server_id), r));
        self.db().execute(
            "INSERT INTO admin_tokens (admin_id, server_id, access_token, refresh_token, token_meta, instance_url, login, status, last_error, issued_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'set', NULL, ?8, ?9)
             ON CONFLICT (admin_id, server_id) DO UPDATE SET access_token = excluded.access_token, refresh_token = excluded.refresh_token,
               token_meta = excluded.token_meta, instance_url = excluded.instance_url, login = coalesce(excluded.login, login),
               status = 'set', last_error = NULL, issued_at = excluded.issued_at, updated_at = excluded.updated_at",
            params![admin_id, server_id, access, refresh, TokenMeta::json_of(t), t.instance_url, login, t.issued_at.map(|v| v as i64), now_ms()],
        )?;
        Ok(())
    }

    /// An admin's usable token set for a server, if they hold one.
    pub fn admin_tokens(&self, admin_id: i64, server_id: i64) -> Result<Option<TokenSet>, StoreError> {
        self.admin_token_set(admin_id, server_id, true)
    }

    fn admin_token_set(&self, admin_id: i64, server_id: i64, usable_only: bool) -> Result<Option<TokenSet>, StoreError> {
        let row: Option<(Vec<u8>, Option<Vec<u8>>, String, Option<String>)> = self
            .db()
            .query_row(
                "SELECT access_token, refresh_token, token_meta, instance_url FROM admin_tokens WHERE admin_id = ?1 AND server_id = ?2 AND (status = 'set' OR NOT ?3)",
                params![admin_id, server_id, usable_only],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((access, refresh, meta, instance_url)) = row else { return Ok(None) };
        let access = self.secrets.open(&Self::admin_token_aad("access_token", admin_id, server_id), &access)?;
        let refresh = refresh.map(|r| self.secrets.open(&Self::admin_token_aad("refresh_token", admin_id, server_id), &r)).transpose()?;
        TokenMeta::token_set(&meta, access, refresh, instance_url)
            .map(Some)
            .map_err(|e| StoreError::Unreadable(format!("token details of admin {admin_id} for server {server_id}: {e}")))
    }

    /// Every token an admin holds (usable or not), by server.
    pub fn admin_token_list(&self, admin_id: i64) -> Result<Vec<AdminToken>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT server_id, login, status, last_error, checked_at, issued_at FROM admin_tokens WHERE admin_id = ?1 ORDER BY server_id")?;
        let rows = stmt
            .query_map(params![admin_id], |r| {
                Ok(AdminToken {
                    server_id: r.get(0)?,
                    login: r.get(1)?,
                    usable: r.get::<_, String>(2)? == "set",
                    last_error: r.get(3)?,
                    checked_at: r.get(4)?,
                    issued_at: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records a check's outcome: who the token acts as and that it worked
    /// now, or what failed (and, when `dead`, that a new one is needed).
    pub fn admin_token_checked(&self, admin_id: i64, server_id: i64, outcome: Result<Option<&str>, (&str, bool)>) -> Result<(), StoreError> {
        let conn = self.db();
        match outcome {
            Ok(login) => conn.execute(
                "UPDATE admin_tokens SET login = coalesce(?3, login), checked_at = ?4, last_error = NULL WHERE admin_id = ?1 AND server_id = ?2",
                params![admin_id, server_id, login, now_ms()],
            )?,
            Err((message, dead)) => conn.execute(
                "UPDATE admin_tokens SET last_error = ?3, status = CASE WHEN ?4 THEN 'needs_reauthorization' ELSE status END WHERE admin_id = ?1 AND server_id = ?2",
                params![admin_id, server_id, message, dead],
            )?,
        };
        Ok(())
    }

    /// The token set even when unusable (to revoke it at the provider).
    pub fn admin_tokens_for_revoke(&self, admin_id: i64, server_id: i64) -> Result<Option<TokenSet>, StoreError> {
        self.admin_token_set(admin_id, server_id, false)
    }

    /// Forgets an admin's token for a server (after a revoke).
    pub fn clear_admin_tokens(&self, admin_id: i64, server_id: i64) -> Result<(), StoreError> {
        self.db().execute("DELETE FROM admin_tokens WHERE admin_id = ?1 AND server_id = ?2", params![admin_id, server_id])?;
        Ok(())
    }

    pub(super) fn admin_token_aad(column: &str, admin_id: i64, server_id: i64) -> String {
        format!("admin_tokens.{column}.{admin_id}.{server_id}")
    }
}
