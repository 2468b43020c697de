//! OAuth2 servers on PostgreSQL: their configuration and tokens (sealed,
//! as on SQLite), and the one token renewal at a time across every node.

use std::future::Future;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::PgStore;
use crate::domain::{Saved, Server, ServerInput, TokenStatus, grant_parse, grant_str};
use crate::store::servers::TokenMeta;
use crate::store::{SqliteStore, StoreError, now_ms};
use registry_plugin_runtime::latest::types::{Oauth2ServerConfig, TokenSet};

fn server_of(r: &Row) -> Result<Server, StoreError> {
    let grant: String = r.get("grant_type");
    let status: String = r.get("token_status");
    Ok(Server {
        id: r.get("id"),
        name: r.get("name"),
        description: r.get("description"),
        plugin: r.get("plugin"),
        server_url: r.get("server_url"),
        client_id: r.get("client_id"),
        has_secret: r.get::<_, Option<Vec<u8>>>("client_secret").is_some(),
        grant_type: grant_parse(&grant).ok_or_else(|| StoreError::Unreadable(format!("grant type '{grant}'")))?,
        scope: r.get("scope"),
        api_hosts: r.get::<_, String>("api_hosts").split_whitespace().map(str::to_string).collect(),
        jwt_subject: r.get("jwt_subject"),
        token_url: r.get("token_url"),
        token_status: TokenStatus::parse(&status).ok_or_else(|| StoreError::Unreadable(format!("token status '{status}'")))?,
        instance_url: r.get("instance_url"),
        token_issued_at: r.get("token_issued_at"),
        last_error: r.get("last_error"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

impl PgStore {
    /// Adds a server.
    pub async fn create_server(&self, input: &ServerInput) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO oauth2_servers (name, description, plugin, server_url, client_id, grant_type, scope, api_hosts, created_at, updated_at, jwt_subject, token_url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) RETURNING id",
                &[
                    &input.name,
                    &input.description,
                    &input.plugin,
                    &input.server_url,
                    &input.client_id,
                    &grant_str(input.grant_type),
                    &input.scope,
                    &input.api_hosts.join(" "),
                    &now,
                    &input.jwt_subject,
                    &input.token_url,
                ],
            )
            .await
            .map_err(|e| conflict(e, || format!("a server named '{}' already exists", input.name)))?;
        let id: i64 = row.get(0);
        if let Some(secret) = input.client_secret.as_deref().filter(|s| !s.is_empty()) {
            let sealed = self.secrets.seal(&SqliteStore::aad("client_secret", id), secret);
            tx.execute("UPDATE oauth2_servers SET client_secret = $1 WHERE id = $2", &[&sealed, &id]).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Saves an edit. Changing what the tokens belong to (the Server URL,
    /// Client ID, secret, API hosts, grant, JWT user, token URL, plugin)
    /// clears them and the admins' own tokens, as on SQLite.
    pub async fn update_server(&self, id: i64, input: &ServerInput) -> Result<Saved, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The row locked: a renewal on another node finishes first, and its
        // tokens are then cleared with the rest.
        let before = tx.query_opt("SELECT * FROM oauth2_servers WHERE id = $1 FOR NO KEY UPDATE", &[&id]).await?.ok_or_else(|| StoreError::NotFound(format!("server {id}")))?;
        let old_secret: Option<Vec<u8>> = before.get("client_secret");
        let before = server_of(&before)?;
        // A secret sealed under another key counts as different.
        let old_secret = old_secret.and_then(|s| self.secrets.open(&SqliteStore::aad("client_secret", id), &s).ok());
        let secret_changed = input.client_secret.as_deref().is_some_and(|s| !s.is_empty() && Some(s) != old_secret.as_deref());
        let clear = input.clears_tokens_of(&before, secret_changed);
        tx.execute(
            "UPDATE oauth2_servers SET name = $1, description = $2, plugin = $3, server_url = $4, client_id = $5, grant_type = $6, scope = $7,
             updated_at = $8, api_hosts = $10, jwt_subject = $11, token_url = $12 WHERE id = $9",
            &[
                &input.name,
                &input.description,
                &input.plugin,
                &input.server_url,
                &input.client_id,
                &grant_str(input.grant_type),
                &input.scope,
                &now_ms(),
                &id,
                &input.api_hosts.join(" "),
                &input.jwt_subject,
                &input.token_url,
            ],
        )
        .await
        .map_err(|e| conflict(e, || format!("a server named '{}' already exists", input.name)))?;
        if secret_changed {
            let sealed = self.secrets.seal(&SqliteStore::aad("client_secret", id), input.client_secret.as_deref().unwrap_or_default());
            tx.execute("UPDATE oauth2_servers SET client_secret = $1 WHERE id = $2", &[&sealed, &id]).await?;
        }
        if clear {
            Self::clear_tokens_in(&tx, id).await?;
            tx.execute("DELETE FROM admin_tokens WHERE server_id = $1", &[&id]).await?;
        }
        tx.commit().await?;
        Ok(Saved { id, tokens_cleared: clear && before.token_status != TokenStatus::NotSet })
    }

    /// Deletes a server (and its pending authorizations).
    pub async fn delete_server(&self, id: i64) -> Result<(), StoreError> {
        let n = self.client().await?.execute("DELETE FROM oauth2_servers WHERE id = $1", &[&id]).await?;
        if n == 0 { Err(StoreError::NotFound(format!("server {id}"))) } else { Ok(()) }
    }

    /// Forgets the tokens (after a revoke).
    pub async fn clear_tokens(&self, id: i64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::clear_tokens_in(&tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_tokens_in(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
        // A sign-in begun under the old configuration must not complete.
        tx.execute("DELETE FROM oauth2_pending WHERE server_id = $1", &[&id]).await?;
        tx.execute(
            "UPDATE oauth2_servers SET access_token = NULL, refresh_token = NULL, token_meta = NULL, instance_url = NULL,
             token_status = 'not_set', token_issued_at = NULL, updated_at = $1 WHERE id = $2",
            &[&now_ms(), &id],
        )
        .await?;
        Ok(())
    }

    /// One server.
    pub async fn server(&self, id: i64) -> Result<Server, StoreError> {
        let row = self.client().await?.query_opt("SELECT * FROM oauth2_servers WHERE id = $1", &[&id]).await?;
        server_of(&row.ok_or_else(|| StoreError::NotFound(format!("server {id}")))?)
    }

    /// Every server, by name.
    pub async fn servers(&self) -> Result<Vec<Server>, StoreError> {
        let rows = self.client().await?.query("SELECT * FROM oauth2_servers ORDER BY lower(name), id", &[]).await?;
        rows.iter().map(server_of).collect()
    }

    /// The configuration handed to the plugin (with the secret).
    pub async fn server_config(&self, id: i64) -> Result<Oauth2ServerConfig, StoreError> {
        let row = self.client().await?.query_opt("SELECT * FROM oauth2_servers WHERE id = $1", &[&id]).await?;
        let row = row.ok_or_else(|| StoreError::NotFound(format!("server {id}")))?;
        let s = server_of(&row)?;
        let secret: Option<Vec<u8>> = row.get("client_secret");
        Ok(Oauth2ServerConfig {
            server_url: s.server_url,
            client_id: s.client_id,
            client_secret: secret.map(|s| self.secrets.open(&SqliteStore::aad("client_secret", id), &s)).transpose()?.unwrap_or_default(),
            grant_type: s.grant_type,
            scope: s.scope,
            token_url: s.token_url,
        })
    }

    /// Stores a fresh token set and marks the token "Set".
    pub async fn save_tokens(&self, id: i64, t: &TokenSet) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.save_tokens_in(&tx, id, t).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_tokens_in(&self, tx: &Transaction<'_>, id: i64, t: &TokenSet) -> Result<(), StoreError> {
        let access = self.secrets.seal(&SqliteStore::aad("access_token", id), &t.access_token);
        let refresh = t.refresh_token.as_deref().map(|r| self.secrets.seal(&SqliteStore::aad("refresh_token", id), r));
        let n = tx
            .execute(
                "UPDATE oauth2_servers SET access_token = $1, refresh_token = $2, token_meta = $3, instance_url = $4, token_status = 'set',
                 token_issued_at = $5, last_error = NULL, updated_at = $6 WHERE id = $7",
                &[&access, &refresh, &TokenMeta::json_of(t), &t.instance_url, &t.issued_at.map(|v| v as i64), &now_ms(), &id],
            )
            .await?;
        if n == 0 { Err(StoreError::NotFound(format!("server {id}"))) } else { Ok(()) }
    }

    /// The held token set, if any.
    pub async fn tokens(&self, id: i64) -> Result<Option<TokenSet>, StoreError> {
        self.tokens_in(&self.client().await?, id).await
    }

    async fn tokens_in(&self, db: &impl deadpool_postgres::GenericClient, id: i64) -> Result<Option<TokenSet>, StoreError> {
        let row = db
            .query_opt("SELECT access_token, refresh_token, token_meta, instance_url FROM oauth2_servers WHERE id = $1", &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("server {id}")))?;
        let (access, refresh, meta, instance_url): (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>, Option<String>) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let Some(access) = access else { return Ok(None) };
        let access = self.secrets.open(&SqliteStore::aad("access_token", id), &access)?;
        let refresh = refresh.map(|r| self.secrets.open(&SqliteStore::aad("refresh_token", id), &r)).transpose()?;
        let meta = meta.unwrap_or_else(|| r#"{"issued_at":null,"expires_at":null,"scope":null,"token_type":"Bearer","extra":[]}"#.into());
        TokenMeta::token_set(&meta, access, refresh, instance_url).map(Some).map_err(|e| StoreError::Unreadable(format!("token details of server {id}: {e}")))
    }

    /// Records a failure the admin should see; `status` changes the token
    /// status (e.g. to "needs a new token").
    pub async fn set_error(&self, id: i64, message: &str, status: Option<TokenStatus>) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE oauth2_servers SET last_error = $1, updated_at = $2, token_status = COALESCE($3, token_status) WHERE id = $4",
                &[&message, &now_ms(), &status.map(TokenStatus::as_str), &id],
            )
            .await?;
        Ok(())
    }

    /// The one token renewal at a time across every node. The server's
    /// row is locked (`FOR NO KEY UPDATE`, waiting at most `wait`); if the
    /// held access token is no longer `stale` (another node renewed it
    /// meanwhile, or there is one at all when `stale` is none), that one is
    /// returned. Otherwise `renew` gets the held tokens and its result is
    /// saved before the lock is let go: with refresh-token rotation, two
    /// nodes never spend the same refresh token. A failed `renew` stores
    /// nothing. The transaction stays open over `renew`'s network call, so
    /// the database must not end idle transactions sooner
    /// (`idle_in_transaction_session_timeout` above the plugin deadline):
    /// a rotated refresh token would be spent and its successor lost.
    pub async fn renew_locked<F, Fut, E>(&self, id: i64, stale: Option<&str>, wait: std::time::Duration, renew: F) -> Result<TokenSet, E>
    where
        F: FnOnce(Option<TokenSet>) -> Fut,
        Fut: Future<Output = Result<TokenSet, E>>,
        E: From<StoreError>,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        Self::lock_for_renewal(&tx, "SELECT 1 FROM oauth2_servers WHERE id = $1 FOR NO KEY UPDATE", &[&id], wait, &format!("server {id}'s token")).await?;
        let held = self.tokens_in(&tx, id).await?;
        if let Some(t) = &held
            && stale != Some(t.access_token.as_str())
        {
            return Ok(t.clone());
        }
        let fresh = renew(held).await?;
        self.save_tokens_in(&tx, id, &fresh).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(fresh)
    }

    /// Locks the row `sql` selects for a renewal of `what`, waiting at most
    /// `wait` for another node's renewal of it.
    pub(super) async fn lock_for_renewal(
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        wait: std::time::Duration,
        what: &str,
    ) -> Result<(), StoreError> {
        // SET cannot take a parameter; the value is a number we made.
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", wait.as_millis().max(1))).await?;
        tx.query_opt(sql, params)
            .await
            .map_err(|e| match e.as_db_error().map(|db| db.code()) {
                Some(&SqlState::LOCK_NOT_AVAILABLE) => StoreError::Conflict(format!("another host has been renewing {what} for over {} s; try again shortly", wait.as_secs())),
                _ => StoreError::from(e),
            })?
            .ok_or_else(|| StoreError::NotFound(what.to_string()))?;
        Ok(())
    }

    /// The first node with this database records `secrets`'s fingerprint;
    /// every later one must hold the same key, or it could open nothing the
    /// others sealed.
    pub(super) async fn check_key(&self) -> Result<(), StoreError> {
        let mine = self.secrets.fingerprint();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("INSERT INTO secret_key (fingerprint) VALUES ($1) ON CONFLICT (only_row) DO NOTHING", &[&mine]).await?;
        // Shared: a key rotation (which locks the row for update) either
        // finished before, and the new key is read here, or waits until
        // this node is registered, and sees it live.
        let theirs: String = tx.query_one("SELECT fingerprint FROM secret_key FOR SHARE", &[]).await?.get(0);
        if theirs != mine {
            return Err(StoreError::KeyMismatch { database: theirs, ours: mine });
        }
        if self.config.register {
            self.register_in(&tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A unique violation as [`StoreError::Conflict`] with `message`.
pub(super) fn conflict(e: tokio_postgres::Error, message: impl FnOnce() -> String) -> StoreError {
    if e.as_db_error().is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION) { StoreError::Conflict(message()) } else { StoreError::Postgres(e) }
}
