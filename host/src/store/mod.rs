//! The registry's database: embedded SQLite in the data directory (WAL,
//! foreign keys, versioned migrations run at open). Secrets (client secrets,
//! tokens, PKCE verifiers) are sealed by [`SecretBox`] and never leave this
//! module unencrypted except to the caller that asked for them.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::bindings::types::{GrantType, Oauth2ServerConfig, TokenSet};
use crate::secrets::{SecretBox, SecretError};

mod provisioning;
pub use provisioning::*;

/// Database file name inside the data directory.
pub const DB_FILE: &str = "registry.sqlite3";

/// Schema versions, applied in order; each runs in its own transaction.
const MIGRATIONS: &[&str] = &[
    // 1: OAuth2 servers, pending authorizations, admins and their sessions.
    "CREATE TABLE oauth2_servers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        plugin TEXT NOT NULL,
        server_url TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_secret BLOB,
        grant_type TEXT NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials')),
        scope TEXT,
        access_token BLOB,
        refresh_token BLOB,
        token_meta TEXT,
        instance_url TEXT,
        token_status TEXT NOT NULL DEFAULT 'not_set' CHECK (token_status IN ('not_set', 'set', 'needs_reauthorization')),
        token_issued_at INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE oauth2_pending (
        state TEXT PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES oauth2_servers(id) ON DELETE CASCADE,
        code_verifier BLOB NOT NULL,
        redirect_uri TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE admins (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 2: people, provisioning targets, the job queue, per-target state,
    // history, reprovision runs and API tokens.
    "CREATE TABLE people (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        sort_name TEXT NOT NULL,
        search TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX people_by_name ON people(sort_name COLLATE NOCASE, id);
    CREATE TABLE targets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        plugin TEXT NOT NULL,
        server_id INTEGER NOT NULL REFERENCES oauth2_servers(id) ON DELETE RESTRICT,
        settings BLOB NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        scope TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        total INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE TABLE provisioned (
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'provisioned', 'removed', 'failed', 'not_in_scope')),
        remote_type TEXT,
        remote_id TEXT,
        message TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (person_id, target_id)
    );
    CREATE INDEX provisioned_by_target ON provisioned(target_id, state);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        action TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before INTEGER NOT NULL DEFAULT 0,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_pair ON jobs(person_id, target_id, id);
    CREATE INDEX jobs_ready ON jobs(state, not_before, id);
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        -- An audit trail: it outlives its target, keeping the target's name.
        target_id INTEGER REFERENCES targets(id) ON DELETE SET NULL,
        target_name TEXT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX history_by_person ON history(person_id, id);
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );",
];

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A secret could not be opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// The database is newer than this program.
    #[error("the database {path} has schema version {found}, newer than this program's {known}; use a newer registry-host")]
    TooNew {
        /// The file.
        path: String,
        /// Its version.
        found: usize,
        /// Ours.
        known: usize,
    },
}

/// Whether a usable token is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// No token.
    NotSet,
    /// A usable access token is held.
    Set,
    /// The refresh token died: an admin must obtain a new token.
    NeedsReauthorization,
}

impl TokenStatus {
    fn as_str(self) -> &'static str {
        match self {
            TokenStatus::NotSet => "not_set",
            TokenStatus::Set => "set",
            TokenStatus::NeedsReauthorization => "needs_reauthorization",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "set" => TokenStatus::Set,
            "needs_reauthorization" => TokenStatus::NeedsReauthorization,
            _ => TokenStatus::NotSet,
        }
    }
}

/// What an admin enters for an OAuth2 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The plugin that speaks this server's OAuth.
    pub plugin: String,
    /// Server URL.
    pub server_url: String,
    /// Client ID.
    pub client_id: String,
    /// Client secret; `None` keeps the stored one.
    pub client_secret: Option<String>,
    /// Grant type.
    pub grant_type: GrantType,
    /// Scope.
    pub scope: Option<String>,
}

/// An OAuth2 server as shown (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Plugin name.
    pub plugin: String,
    /// Server URL.
    pub server_url: String,
    /// Client ID.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub has_secret: bool,
    /// Grant type.
    pub grant_type: GrantType,
    /// Scope.
    pub scope: Option<String>,
    /// Token status.
    pub token_status: TokenStatus,
    /// Instance URL from the last token response.
    pub instance_url: Option<String>,
    /// When the held token was issued (ms).
    pub token_issued_at: Option<i64>,
    /// The last OAuth failure, in plain language.
    pub last_error: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

/// What saving a server changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// The row id.
    pub id: i64,
    /// Whether stored tokens were cleared (URL, client id or secret changed).
    pub tokens_cleared: bool,
}

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
}

/// Token fields that are not secret, kept as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenMeta {
    issued_at: Option<u64>,
    expires_at: Option<u64>,
    scope: Option<String>,
    token_type: String,
    extra: Vec<(String, String)>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn grant_str(g: GrantType) -> &'static str {
    match g {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::ClientCredentials => "client_credentials",
    }
}

fn grant_parse(s: &str) -> GrantType {
    if s == "client_credentials" { GrantType::ClientCredentials } else { GrantType::AuthorizationCode }
}

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    secrets: SecretBox,
    path: PathBuf,
}

impl Store {
    /// Opens (creating) `data_dir/registry.sqlite3` and migrates it.
    pub fn open(data_dir: &Path, secrets: SecretBox) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Dir { path: data_dir.display().to_string(), source })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        // Owner-only, before WAL and SHM files (which copy its mode) exist.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|source| StoreError::Dir { path: path.display().to_string(), source })?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Store { conn: Mutex::new(conn), secrets, path };
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.db();
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew { path: self.path.display().to_string(), found: version, known: MIGRATIONS.len() });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        Ok(self.db().pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize)
    }

    fn aad(column: &str, id: i64) -> String {
        format!("oauth2_servers.{column}.{id}")
    }

    fn conflict(e: rusqlite::Error, name: &str) -> StoreError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict(format!("a server named '{name}' already exists"))
            }
            _ => StoreError::Sql(e),
        }
    }

    /// Adds a server.
    pub fn create_server(&self, input: &ServerInput) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut conn = self.db();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO oauth2_servers (name, description, plugin, server_url, client_id, grant_type, scope, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![input.name, input.description, input.plugin, input.server_url, input.client_id, grant_str(input.grant_type), input.scope, now],
        )
        .map_err(|e| Self::conflict(e, &input.name))?;
        let id = tx.last_insert_rowid();
        if let Some(secret) = input.client_secret.as_deref().filter(|s| !s.is_empty()) {
            tx.execute("UPDATE oauth2_servers SET client_secret = ?1 WHERE id = ?2", params![self.secrets.seal(&Self::aad("client_secret", id), secret), id])?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Saves an edit. Changing the Server URL, Client ID or Client Secret
    /// clears the stored tokens, since they belong to the old configuration.
    pub fn update_server(&self, id: i64, input: &ServerInput) -> Result<Saved, StoreError> {
        let before = self.server(id)?;
        // A secret sealed under another key counts as different: typing it
        // again is how an admin recovers from a changed key.
        let old_secret = self.client_secret(id).ok().flatten();
        let secret_changed = input.client_secret.as_deref().is_some_and(|s| !s.is_empty() && Some(s) != old_secret.as_deref());
        let clear = before.server_url != input.server_url || before.client_id != input.client_id || secret_changed;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE oauth2_servers SET name = ?1, description = ?2, plugin = ?3, server_url = ?4, client_id = ?5, grant_type = ?6, scope = ?7, updated_at = ?8 WHERE id = ?9",
            params![input.name, input.description, input.plugin, input.server_url, input.client_id, grant_str(input.grant_type), input.scope, now_ms(), id],
        )
        .map_err(|e| Self::conflict(e, &input.name))?;
        if secret_changed {
            let sealed = self.secrets.seal(&Self::aad("client_secret", id), input.client_secret.as_deref().unwrap_or_default());
            tx.execute("UPDATE oauth2_servers SET client_secret = ?1 WHERE id = ?2", params![sealed, id])?;
        }
        let had_tokens = before.token_status != TokenStatus::NotSet;
        if clear {
            Self::clear_tokens_in(&tx, id)?;
        }
        tx.commit()?;
        Ok(Saved { id, tokens_cleared: clear && had_tokens })
    }

    /// Deletes a server (and its pending authorizations).
    pub fn delete_server(&self, id: i64) -> Result<(), StoreError> {
        let n = self.db().execute("DELETE FROM oauth2_servers WHERE id = ?1", params![id])?;
        if n == 0 { Err(StoreError::NotFound(format!("server {id}"))) } else { Ok(()) }
    }

    fn row_to_server(r: &rusqlite::Row<'_>) -> rusqlite::Result<Server> {
        Ok(Server {
            id: r.get("id")?,
            name: r.get("name")?,
            description: r.get("description")?,
            plugin: r.get("plugin")?,
            server_url: r.get("server_url")?,
            client_id: r.get("client_id")?,
            has_secret: r.get::<_, Option<Vec<u8>>>("client_secret")?.is_some(),
            grant_type: grant_parse(&r.get::<_, String>("grant_type")?),
            scope: r.get("scope")?,
            token_status: TokenStatus::parse(&r.get::<_, String>("token_status")?),
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

    fn client_secret(&self, id: i64) -> Result<Option<String>, StoreError> {
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
        let meta: TokenMeta = meta.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or(TokenMeta { issued_at: None, expires_at: None, scope: None, token_type: "Bearer".into(), extra: vec![] });
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

    fn clear_tokens_in(conn: &Connection, id: i64) -> Result<(), StoreError> {
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
    pub fn put_pending(&self, state: &str, server_id: i64, code_verifier: &str, redirect_uri: &str, ttl_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let conn = self.db();
        conn.execute("DELETE FROM oauth2_pending WHERE expires_at < ?1", params![now - 24 * 3600 * 1000])?;
        conn.execute(
            "INSERT INTO oauth2_pending (state, server_id, code_verifier, redirect_uri, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![state, server_id, self.secrets.seal(&format!("oauth2_pending.code_verifier.{state}"), code_verifier), redirect_uri, now + ttl_ms],
        )?;
        Ok(())
    }

    /// Takes (and deletes) the pending authorization for `state`.
    pub fn take_pending(&self, state: &str) -> Result<Option<Pending>, StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let row: Option<(i64, Vec<u8>, String, i64)> = tx
            .query_row("SELECT server_id, code_verifier, redirect_uri, expires_at FROM oauth2_pending WHERE state = ?1", params![state], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        tx.execute("DELETE FROM oauth2_pending WHERE state = ?1", params![state])?;
        tx.commit()?;
        let Some((server_id, verifier, redirect_uri, expires_at)) = row else { return Ok(None) };
        Ok(Some(Pending {
            server_id,
            code_verifier: self.secrets.open(&format!("oauth2_pending.code_verifier.{state}"), &verifier)?,
            redirect_uri,
            expired: now_ms() > expires_at,
        }))
    }
}

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
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    StoreError::Conflict(format!("an admin named '{username}' already exists"))
                }
                _ => StoreError::Sql(e),
            })?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SecretBox::new(&[1; 32])).unwrap();
        (dir, store)
    }

    fn input(name: &str) -> ServerInput {
        ServerInput {
            name: name.into(),
            description: "".into(),
            plugin: "salesforce".into(),
            server_url: "https://login.salesforce.com".into(),
            client_id: "3MVG9key".into(),
            client_secret: Some("s3cret".into()),
            grant_type: GrantType::AuthorizationCode,
            scope: Some("api refresh_token".into()),
        }
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
    fn migrations_run_once_and_a_newer_database_is_refused() {
        let (dir, store) = open();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        drop(store);
        let again = Store::open(dir.path(), SecretBox::new(&[1; 32])).unwrap();
        assert_eq!(again.schema_version().unwrap(), MIGRATIONS.len());
        again.db().pragma_update(None, "user_version", 99).unwrap();
        drop(again);
        let err = Store::open(dir.path(), SecretBox::new(&[1; 32])).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
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
        let other = Store::open(dir.path(), SecretBox::new(&[2; 32])).unwrap();
        assert!(other.tokens(id).unwrap_err().to_string().contains("cannot be decrypted"));
    }

    #[test]
    fn changing_url_id_or_secret_clears_tokens_but_other_edits_do_not() {
        let (_dir, store) = open();
        let id = store.create_server(&input("SF")).unwrap();
        store.save_tokens(id, &tokens()).unwrap();
        let mut same = input("SF renamed");
        same.client_secret = None;
        assert!(!store.update_server(id, &same).unwrap().tokens_cleared);
        same.client_secret = Some("s3cret".into());
        assert!(!store.update_server(id, &same).unwrap().tokens_cleared, "the same secret again changes nothing");
        assert!(store.tokens(id).unwrap().is_some());
        let mut changed = same.clone();
        changed.client_secret = Some("new".into());
        assert!(store.update_server(id, &changed).unwrap().tokens_cleared);
        assert!(store.tokens(id).unwrap().is_none());
        assert_eq!(store.server(id).unwrap().token_status, TokenStatus::NotSet);
        assert_eq!(store.server_config(id).unwrap().client_secret, "new");
        store.save_tokens(id, &tokens()).unwrap();
        changed.server_url = "https://test.salesforce.com".into();
        assert!(store.update_server(id, &changed).unwrap().tokens_cleared);
        assert!(matches!(store.create_server(&input("SF renamed")), Err(StoreError::Conflict(m)) if m.contains("already exists")));
    }

    #[test]
    fn pending_authorizations_are_single_use() {
        let (_dir, store) = open();
        let id = store.create_server(&input("SF")).unwrap();
        store.put_pending("st", id, "verifier", "http://h/cb", 60_000).unwrap();
        let p = store.take_pending("st").unwrap().unwrap();
        assert_eq!((p.server_id, p.code_verifier.as_str(), p.expired), (id, "verifier", false));
        assert!(store.take_pending("st").unwrap().is_none());
        store.put_pending("old", id, "v", "http://h/cb", -1).unwrap();
        assert!(store.take_pending("old").unwrap().unwrap().expired);
        store.delete_server(id).unwrap();
        assert!(matches!(store.server(id), Err(StoreError::NotFound(_))));
    }
}
