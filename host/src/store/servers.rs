//! OAuth2 servers: their configuration (the client secret sealed), the
//! tokens they hold (sealed), and pending "Obtain New Token" sign-ins.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{SqliteStore, StoreError, now_ms, parsed, unique, write};
use crate::domain::{Saved, Server, ServerInput, TokenStatus, grant_parse, grant_str};
use registry_plugin_runtime::latest::types::{Oauth2ServerConfig, TokenSet};

/// A pending "Obtain New Token".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The server.
    pub server_id: i64,
    /// PKCE verifier.
    pub code_verifier: String,
    /// The redirect URI sent.
    pub redirect_uri: String,
    /// Whether it expired before use.
    pub expired: bool,
    /// The browser session that started it.
    pub session: String,
    /// Started in a popup window (so the callback answers with a page that
    /// closes it).
    pub popup: bool,
    /// For an admin's own token ("Partner Info"), whose; none: the
    /// server's integration token.
    pub admin: Option<i64>,
}

/// Where an authorization in progress was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingOrigin<'a> {
    /// The browser session (an opaque binding).
    pub session: &'a str,
    /// In a popup window.
    pub popup: bool,
    /// For this admin's own token; none: the server's.
    pub admin: Option<i64>,
}

/// Token fields that are not secret, kept as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TokenMeta {
    issued_at: Option<u64>,
    expires_at: Option<u64>,
    scope: Option<String>,
    token_type: String,
    extra: Vec<(String, String)>,
}

impl TokenMeta {
    /// The non-secret part of `t`, as JSON.
    pub(super) fn json_of(t: &TokenSet) -> String {
        let meta = TokenMeta { issued_at: t.issued_at, expires_at: t.expires_at, scope: t.scope.clone(), token_type: t.token_type.clone(), extra: t.extra.clone() };
        serde_json::to_string(&meta).expect("plain data")
    }

    /// A token set from its opened secrets and stored details.
    pub(super) fn token_set(json: &str, access_token: String, refresh_token: Option<String>, instance_url: Option<String>) -> Result<TokenSet, String> {
        let m: TokenMeta = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(TokenSet { access_token, refresh_token, instance_url, issued_at: m.issued_at, expires_at: m.expires_at, scope: m.scope, token_type: m.token_type, extra: m.extra })
    }
}

impl SqliteStore {
    /// Adds a server.
    pub fn create_server(&self, input: &ServerInput) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute(
            "INSERT INTO oauth2_servers (name, description, plugin, server_url, client_id, grant_type, scope, api_hosts, created_at, updated_at, jwt_subject, token_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?8, ?8, ?10, ?11)",
            params![input.name, input.description, input.plugin, input.server_url, input.client_id, grant_str(input.grant_type), input.scope, now, input.api_hosts.join(" "), input.jwt_subject, input.token_url],
        )
        .map_err(|e| unique(e, || format!("a server named '{}' already exists", input.name)))?;
        let id = tx.last_insert_rowid();
        if let Some(secret) = input.client_secret.as_deref().filter(|s| !s.is_empty()) {
            tx.execute("UPDATE oauth2_servers SET client_secret = ?1 WHERE id = ?2", params![self.secrets.seal(&Self::aad("client_secret", id), secret), id])?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Saves an edit. Changing the Server URL, Client ID, Client Secret, API
    /// hosts, grant type, JWT user or token URL clears the stored tokens, since they
    /// belong to the old configuration (and the next token response is
    /// checked anew).
    pub fn update_server(&self, id: i64, input: &ServerInput) -> Result<Saved, StoreError> {
        let before = self.server(id)?;
        // A secret sealed under another key counts as different: typing it
        // again is how an admin recovers from a changed key.
        let old_secret = self.client_secret(id).ok().flatten();
        let secret_changed = input.client_secret.as_deref().is_some_and(|s| !s.is_empty() && Some(s) != old_secret.as_deref());
        let clear = input.clears_tokens_of(&before, secret_changed);
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute(
            "UPDATE oauth2_servers SET name = ?1, description = ?2, plugin = ?3, server_url = ?4, client_id = ?5, grant_type = ?6, scope = ?7, updated_at = ?8, api_hosts = ?10, jwt_subject = ?11, token_url = ?12 WHERE id = ?9",
            params![input.name, input.description, input.plugin, input.server_url, input.client_id, grant_str(input.grant_type), input.scope, now_ms(), id, input.api_hosts.join(" "), input.jwt_subject, input.token_url],
        )
        .map_err(|e| unique(e, || format!("a server named '{}' already exists", input.name)))?;
        if secret_changed {
            let sealed = self.secrets.seal(&Self::aad("client_secret", id), input.client_secret.as_deref().unwrap_or_default());
            tx.execute("UPDATE oauth2_servers SET client_secret = ?1 WHERE id = ?2", params![sealed, id])?;
        }
        let had_tokens = before.token_status != TokenStatus::NotSet;
        if clear {
            Self::clear_tokens_in(&tx, id)?;
            // Admins' own tokens belong to the old configuration too.
            tx.execute("DELETE FROM admin_tokens WHERE server_id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(Saved { id, tokens_cleared: clear && had_tokens })
    }

    /// Deletes a server (and its pending authorizations).
    pub fn delete_server(&self, id: i64) -> Result<(), StoreError> {
        let n = self.db().execute("DELETE FROM oauth2_servers WHERE id = ?1", params![id])?;
        if n == 0 { Err(StoreError::NotFound(format!("server {id}"))) } else { Ok(()) }
    }

    pub(super) fn row_to_server(r: &rusqlite::Row<'_>) -> rusqlite::Result<Server> {
        Ok(Server {
            id: r.get("id")?,
            name: r.get("name")?,
            description: r.get("description")?,
            plugin: r.get("plugin")?,
            server_url: r.get("server_url")?,
            client_id: r.get("client_id")?,
            has_secret: r.get::<_, Option<Vec<u8>>>("client_secret")?.is_some(),
            grant_type: parsed("grant type", r.get("grant_type")?, grant_parse)?,
            scope: r.get("scope")?,
            api_hosts: r.get::<_, String>("api_hosts")?.split_whitespace().map(str::to_string).collect(),
            jwt_subject: r.get("jwt_subject")?,
            token_url: r.get("token_url")?,
            token_status: parsed("token status", r.get("token_status")?, TokenStatus::parse)?,
            instance_url: r.get("instance_url")?,
            token_issued_at: r.get("token_issued_at")?,
            last_error: r.get("last_error")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }

    /// Every server, by name.
    pub fn servers(&self) -> Result<Vec<Server>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT * FROM oauth2_servers ORDER BY name COLLATE NOCASE")?;
        let rows = stmt.query_map([], Self::row_to_server)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One server.
    pub fn server(&self, id: i64) -> Result<Server, StoreError> {
        self.db()
            .query_row("SELECT * FROM oauth2_servers WHERE id = ?1", params![id], Self::row_to_server)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("server {id}")))
    }

    pub(super) fn client_secret(&self, id: i64) -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .db()
            .query_row("SELECT client_secret FROM oauth2_servers WHERE id = ?1", params![id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("server {id}")))?;
        sealed.map(|s| self.secrets.open(&Self::aad("client_secret", id), &s)).transpose().map_err(Into::into)
    }

    /// The configuration handed to the plugin (with the secret).
    pub fn server_config(&self, id: i64) -> Result<Oauth2ServerConfig, StoreError> {
        let s = self.server(id)?;
        Ok(Oauth2ServerConfig {
            server_url: s.server_url,
            client_id: s.client_id,
            client_secret: self.client_secret(id)?.unwrap_or_default(),
            grant_type: s.grant_type,
            scope: s.scope,
            token_url: s.token_url,
        })
    }

    /// Stores a fresh token set and marks the token "Set".
    pub fn save_tokens(&self, id: i64, t: &TokenSet) -> Result<(), StoreError> {
        let meta = TokenMeta { issued_at: t.issued_at, expires_at: t.expires_at, scope: t.scope.clone(), token_type: t.token_type.clone(), extra: t.extra.clone() };
        let access = self.secrets.seal(&Self::aad("access_token", id), &t.access_token);
        let refresh = t.refresh_token.as_deref().map(|r| self.secrets.seal(&Self::aad("refresh_token", id), r));
        let n = self.db().execute(
            "UPDATE oauth2_servers SET access_token = ?1, refresh_token = ?2, token_meta = ?3, instance_url = ?4, token_status = 'set',
             token_issued_at = ?5, last_error = NULL, updated_at = ?6 WHERE id = ?7",
            params![access, refresh, serde_json::to_string(&meta).expect("plain data"), t.instance_url, t.issued_at.map(|v| v as i64), now_ms(), id],
        )?;
        if n == 0 { Err(StoreError::NotFound(format!("server {id}"))) } else { Ok(()) }
    }

    /// The held token set, if any.
    pub fn tokens(&self, id: i64) -> Result<Option<TokenSet>, StoreError> {
        let row: Option<(Option<Vec<u8>>, Option<Vec<u8>>, Option<String>, Option<String>)> = self
            .db()
            .query_row("SELECT access_token, refresh_token, token_meta, instance_url FROM oauth2_servers WHERE id = ?1", params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let (Some(access), refresh, meta, instance_url) = row.ok_or_else(|| StoreError::NotFound(format!("server {id}")))? else {
            return Ok(None);
        };
        let meta: TokenMeta = match meta {
            Some(m) => serde_json::from_str(&m).map_err(|e| StoreError::Unreadable(format!("token details of server {id}: {e}")))?,
            None => TokenMeta { issued_at: None, expires_at: None, scope: None, token_type: "Bearer".into(), extra: vec![] },
        };
        Ok(Some(TokenSet {
            access_token: self.secrets.open(&Self::aad("access_token", id), &access)?,
            refresh_token: refresh.map(|r| self.secrets.open(&Self::aad("refresh_token", id), &r)).transpose()?,
            instance_url,
            issued_at: meta.issued_at,
            expires_at: meta.expires_at,
            scope: meta.scope,
            token_type: meta.token_type,
            extra: meta.extra,
        }))
    }

    pub(super) fn clear_tokens_in(conn: &Connection, id: i64) -> Result<(), StoreError> {
        // A sign-in begun under the old configuration must not complete.
        conn.execute("DELETE FROM oauth2_pending WHERE server_id = ?1", params![id])?;
        conn.execute(
            "UPDATE oauth2_servers SET access_token = NULL, refresh_token = NULL, token_meta = NULL, instance_url = NULL,
             token_status = 'not_set', token_issued_at = NULL, updated_at = ?1 WHERE id = ?2",
            params![now_ms(), id],
        )?;
        Ok(())
    }

    /// Forgets the tokens (after a revoke).
    pub fn clear_tokens(&self, id: i64) -> Result<(), StoreError> {
        Self::clear_tokens_in(&self.db(), id)
    }

    /// Records a failure the admin should see; `status` changes the token
    /// status (e.g. to "needs a new token").
    pub fn set_error(&self, id: i64, message: &str, status: Option<TokenStatus>) -> Result<(), StoreError> {
        let conn = self.db();
        conn.execute("UPDATE oauth2_servers SET last_error = ?1, updated_at = ?2 WHERE id = ?3", params![message, now_ms(), id])?;
        if let Some(s) = status {
            conn.execute("UPDATE oauth2_servers SET token_status = ?1 WHERE id = ?2", params![s.as_str(), id])?;
        }
        Ok(())
    }

    /// Remembers an authorization in progress (single use, expiring).
    pub fn put_pending(&self, state: &str, server_id: i64, code_verifier: &str, redirect_uri: &str, origin: PendingOrigin<'_>, ttl_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let conn = self.db();
        conn.execute("DELETE FROM oauth2_pending WHERE expires_at < ?1", params![now - 24 * 3600 * 1000])?;
        conn.execute(
            "INSERT INTO oauth2_pending (state, server_id, code_verifier, redirect_uri, expires_at, session, popup, admin_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![state, server_id, self.secrets.seal(&format!("oauth2_pending.code_verifier.{state}"), code_verifier), redirect_uri, now + ttl_ms, origin.session, origin.popup, origin.admin],
        )?;
        Ok(())
    }

    /// Takes (and deletes) the pending authorization for `state`.
    pub fn take_pending(&self, state: &str) -> Result<Option<Pending>, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let row: Option<(i64, Vec<u8>, String, i64, String, bool, Option<i64>)> = tx
            .query_row("SELECT server_id, code_verifier, redirect_uri, expires_at, session, popup, admin_id FROM oauth2_pending WHERE state = ?1", params![state], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .optional()?;
        tx.execute("DELETE FROM oauth2_pending WHERE state = ?1", params![state])?;
        tx.commit()?;
        let Some((server_id, verifier, redirect_uri, expires_at, session, popup, admin)) = row else { return Ok(None) };
        Ok(Some(Pending {
            server_id,
            code_verifier: self.secrets.open(&format!("oauth2_pending.code_verifier.{state}"), &verifier)?,
            redirect_uri,
            expired: now_ms() > expires_at,
            session,
            popup,
            admin,
        }))
    }

    pub(super) fn aad(column: &str, id: i64) -> String {
        format!("oauth2_servers.{column}.{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretBox;
    use crate::store::DB_FILE;
    use registry_plugin_runtime::latest::types::GrantType;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SecretBox::new(&[1; 32])).unwrap();
        (dir, store)
    }

    fn input(name: &str) -> ServerInput {
        ServerInput { scope: Some("api refresh_token".into()), ..ServerInput::example(name, "salesforce", GrantType::AuthorizationCode) }
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: "00D!access".into(),
            refresh_token: Some("5Aep-refresh".into()),
            instance_url: Some("https://na1.salesforce.com".into()),
            issued_at: Some(1_795_000_000_000),
            expires_at: None,
            scope: Some("api".into()),
            token_type: "Bearer".into(),
            extra: vec![("id".into(), "https://login/id/00D/005".into())],
        }
    }


    #[test]
    fn secrets_are_encrypted_in_the_file_and_round_trip() {
        let (dir, store) = open();
        let id = store.create_server(&input("SF")).unwrap();
        store.save_tokens(id, &tokens()).unwrap();
        assert_eq!(store.tokens(id).unwrap().unwrap(), tokens());
        assert_eq!(store.server_config(id).unwrap().client_secret, "s3cret");
        let s = store.server(id).unwrap();
        assert_eq!((s.token_status, s.instance_url.as_deref(), s.has_secret), (TokenStatus::Set, Some("https://na1.salesforce.com"), true));
        store.db().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        for secret in ["s3cret", "00D!access", "5Aep-refresh"] {
            assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the file in clear");
        }
        // Another key cannot read them, and says so.
        drop(store);
        let other = SqliteStore::open(dir.path(), SecretBox::new(&[2; 32])).unwrap();
        assert!(other.tokens(id).unwrap_err().to_string().contains("cannot be decrypted"));
    }

    #[test]
    fn a_stored_value_this_program_does_not_know_is_an_error_not_a_default() {
        let (_dir, store) = open();
        let mut input = input("SF");
        input.grant_type = GrantType::ClientCredentials;
        let id = store.create_server(&input).unwrap();
        // The schema's CHECKs keep these out; a file edited by another tool
        // (or damaged) may still hold them.
        store.db().pragma_update(None, "ignore_check_constraints", true).unwrap();
        store.db().execute("UPDATE oauth2_servers SET grant_type = 'device_code' WHERE id = ?1", [id]).unwrap();
        let err = store.server(id).unwrap_err().to_string();
        assert!(err.contains("unknown grant type 'device_code'"), "{err}");
        store.db().execute("UPDATE oauth2_servers SET grant_type = 'client_credentials', token_status = 'half_set' WHERE id = ?1", [id]).unwrap();
        let err = store.servers().unwrap_err().to_string();
        assert!(err.contains("unknown token status 'half_set'"), "{err}");
    }
}
