//! What a server holds besides its integration token, on PostgreSQL:
//! each admin's own token for it (sealed) and its JWT signing keys (the
//! private key sealed under its row id), as on SQLite.

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::store::servers::TokenMeta;
use crate::store::{AdminToken, KeyRole, NewSigningKey, SigningKeyInfo, SqliteStore, StoreError, now_ms};
use registry_plugin_runtime::latest::types::TokenSet;

impl PgStore {
    /// Stores an admin's fresh token set for a server (replacing theirs),
    /// and who it acts as when known.
    pub async fn save_admin_tokens(&self, admin_id: i64, server_id: i64, t: &TokenSet, login: Option<&str>) -> Result<(), StoreError> {
        self.save_admin_tokens_in(&self.client().await?, admin_id, server_id, t, login).await
    }

    async fn save_admin_tokens_in(&self, db: &impl GenericClient, admin_id: i64, server_id: i64, t: &TokenSet, login: Option<&str>) -> Result<(), StoreError> {
        let access = self.secrets.seal(&SqliteStore::admin_token_aad("access_token", admin_id, server_id), &t.access_token);
        let refresh = t.refresh_token.as_deref().map(|r| self.secrets.seal(&SqliteStore::admin_token_aad("refresh_token", admin_id, server_id), r));
        db.execute(
                "INSERT INTO admin_tokens (admin_id, server_id, access_token, refresh_token, token_meta, instance_url, login, status, last_error, issued_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'set', NULL, $8, $9)
                 ON CONFLICT (admin_id, server_id) DO UPDATE SET access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                   token_meta = excluded.token_meta, instance_url = excluded.instance_url, login = coalesce(excluded.login, admin_tokens.login),
                   status = 'set', last_error = NULL, issued_at = excluded.issued_at, updated_at = excluded.updated_at",
                &[&admin_id, &server_id, &access, &refresh, &TokenMeta::json_of(t), &t.instance_url, &login, &t.issued_at.map(|v| v as i64), &now_ms()],
            )
            .await?;
        Ok(())
    }

    /// An admin's usable token set for a server, if they hold one.
    pub async fn admin_tokens(&self, admin_id: i64, server_id: i64) -> Result<Option<TokenSet>, StoreError> {
        self.admin_token_set(admin_id, server_id, true).await
    }

    /// The token set even when unusable (to revoke it at the provider).
    pub async fn admin_tokens_for_revoke(&self, admin_id: i64, server_id: i64) -> Result<Option<TokenSet>, StoreError> {
        self.admin_token_set(admin_id, server_id, false).await
    }

    async fn admin_token_set(&self, admin_id: i64, server_id: i64, usable_only: bool) -> Result<Option<TokenSet>, StoreError> {
        self.admin_token_set_in(&self.client().await?, admin_id, server_id, usable_only).await
    }

    async fn admin_token_set_in(&self, db: &impl GenericClient, admin_id: i64, server_id: i64, usable_only: bool) -> Result<Option<TokenSet>, StoreError> {
        let row = db
            .query_opt(
                "SELECT access_token, refresh_token, token_meta, instance_url FROM admin_tokens WHERE admin_id = $1 AND server_id = $2 AND (status = 'set' OR NOT $3)",
                &[&admin_id, &server_id, &usable_only],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let (access, refresh, meta, instance_url): (Vec<u8>, Option<Vec<u8>>, String, Option<String>) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let access = self.secrets.open(&SqliteStore::admin_token_aad("access_token", admin_id, server_id), &access)?;
        let refresh = refresh.map(|r| self.secrets.open(&SqliteStore::admin_token_aad("refresh_token", admin_id, server_id), &r)).transpose()?;
        TokenMeta::token_set(&meta, access, refresh, instance_url)
            .map(Some)
            .map_err(|e| StoreError::Unreadable(format!("token details of admin {admin_id} for server {server_id}: {e}")))
    }

    /// Renews `admin`'s own token for server `server_id` once across every
    /// node, as [`PgStore::renew_locked`] does the server's: their row is
    /// locked for the whole renewal, a token newer than `stale` is returned
    /// as it is, and `renew`'s tokens are saved before the lock goes, so a
    /// rotating refresh token is spent once. A failed `renew` stores
    /// nothing (the caller records it once the lock is gone).
    pub async fn renew_admin_locked<F, Fut, E>(&self, admin_id: i64, server_id: i64, stale: &str, wait: std::time::Duration, renew: F) -> Result<TokenSet, E>
    where
        F: FnOnce(TokenSet) -> Fut,
        Fut: Future<Output = Result<TokenSet, E>>,
        E: From<StoreError>,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let what = format!("admin {admin_id}'s token for server {server_id}");
        Self::lock_for_renewal(&tx, "SELECT 1 FROM admin_tokens WHERE admin_id = $1 AND server_id = $2 FOR NO KEY UPDATE", &[&admin_id, &server_id], wait, &what).await?;
        let held = self.admin_token_set_in(&tx, admin_id, server_id, true).await?.ok_or_else(|| StoreError::NotFound(what))?;
        if held.access_token != stale {
            return Ok(held);
        }
        let fresh = renew(held).await?;
        self.save_admin_tokens_in(&tx, admin_id, server_id, &fresh, None).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(fresh)
    }

    /// Every token an admin holds (usable or not), by server.
    pub async fn admin_token_list(&self, admin_id: i64) -> Result<Vec<AdminToken>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT server_id, login, status, last_error, checked_at, issued_at FROM admin_tokens WHERE admin_id = $1 ORDER BY server_id", &[&admin_id])
            .await?;
        Ok(rows
            .iter()
            .map(|r| AdminToken {
                server_id: r.get(0),
                login: r.get(1),
                usable: r.get::<_, String>(2) == "set",
                last_error: r.get(3),
                checked_at: r.get(4),
                issued_at: r.get(5),
            })
            .collect())
    }

    /// Records a check's outcome: who the token acts as and that it worked
    /// now, or what failed (and, when `dead`, that a new one is needed).
    pub async fn admin_token_checked(&self, admin_id: i64, server_id: i64, outcome: Result<Option<&str>, (&str, bool)>) -> Result<(), StoreError> {
        let client = self.client().await?;
        match outcome {
            Ok(login) => {
                client
                    .execute(
                        "UPDATE admin_tokens SET login = coalesce($3, login), checked_at = $4, last_error = NULL WHERE admin_id = $1 AND server_id = $2",
                        &[&admin_id, &server_id, &login, &now_ms()],
                    )
                    .await?
            }
            Err((message, dead)) => {
                client
                    .execute(
                        "UPDATE admin_tokens SET last_error = $3, status = CASE WHEN $4 THEN 'needs_reauthorization' ELSE status END WHERE admin_id = $1 AND server_id = $2",
                        &[&admin_id, &server_id, &message, &dead],
                    )
                    .await?
            }
        };
        Ok(())
    }

    /// Forgets an admin's token for a server (after a revoke).
    pub async fn clear_admin_tokens(&self, admin_id: i64, server_id: i64) -> Result<(), StoreError> {
        self.client().await?.execute("DELETE FROM admin_tokens WHERE admin_id = $1 AND server_id = $2", &[&admin_id, &server_id]).await?;
        Ok(())
    }

    /// Stores a key for `server_id` in `role`, replacing any key already in
    /// that role.
    pub async fn put_signing_key(&self, server_id: i64, role: KeyRole, key: &NewSigningKey<'_>) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM signing_keys WHERE server_id = $1 AND state = $2", &[&server_id, &role.as_str()]).await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO signing_keys (server_id, state, private_key, certificate, fingerprint, not_after, created_at) VALUES ($1, $2, '\\x', $3, $4, $5, $6) RETURNING id",
                &[&server_id, &role.as_str(), &key.certificate, &key.fingerprint, &key.not_after, &now_ms()],
            )
            .await?
            .get(0);
        // Sealed under its own row id, so a sealed key cannot be moved to
        // another row and opened there.
        tx.execute("UPDATE signing_keys SET private_key = $1 WHERE id = $2", &[&self.secrets.seal(&SqliteStore::signing_key_aad(id), key.private_key_pem), &id]).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A server's keys, current first.
    pub async fn signing_keys(&self, server_id: i64) -> Result<Vec<SigningKeyInfo>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT id, state, certificate, fingerprint, not_after, created_at FROM signing_keys WHERE server_id = $1 ORDER BY state = 'next', id", &[&server_id])
            .await?;
        Ok(rows
            .iter()
            .map(|r| SigningKeyInfo {
                id: r.get(0),
                role: if r.get::<_, String>(1) == "next" { KeyRole::Next } else { KeyRole::Current },
                certificate: r.get(2),
                fingerprint: r.get(3),
                not_after: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }

    /// The private key (PKCS#8 PEM) of a server's key in `role`, if any.
    pub async fn signing_key_private(&self, server_id: i64, role: KeyRole) -> Result<Option<(SigningKeyInfo, String)>, StoreError> {
        let Some(info) = self.signing_keys(server_id).await?.into_iter().find(|k| k.role == role) else { return Ok(None) };
        let row = self.client().await?.query_opt("SELECT private_key FROM signing_keys WHERE id = $1", &[&info.id]).await?;
        let Some(r) = row else { return Ok(None) };
        let pem = self.secrets.open(&SqliteStore::signing_key_aad(info.id), &r.get::<_, Vec<u8>>(0))?;
        Ok(Some((info, pem)))
    }

    /// Makes the next key `expected` current, forgetting the old one;
    /// false when the next key is another or gone (two nodes switching at
    /// once: one does).
    pub async fn promote_next_key(&self, server_id: i64, expected: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let next = tx.query_opt("SELECT id FROM signing_keys WHERE server_id = $1 AND state = 'next' FOR NO KEY UPDATE", &[&server_id]).await?;
        let Some(next) = next.map(|r| r.get::<_, i64>(0)).filter(|n| *n == expected) else { return Ok(false) };
        tx.execute("DELETE FROM signing_keys WHERE server_id = $1 AND state = 'current'", &[&server_id]).await?;
        tx.execute("UPDATE signing_keys SET state = 'current' WHERE id = $1", &[&next]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets a server's next key (a rotation given up).
    pub async fn drop_next_key(&self, server_id: i64) -> Result<(), StoreError> {
        self.client().await?.execute("DELETE FROM signing_keys WHERE server_id = $1 AND state = 'next'", &[&server_id]).await?;
        Ok(())
    }
}
