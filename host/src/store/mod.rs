//! The registry's database: embedded SQLite in the data directory (WAL,
//! foreign keys, versioned migrations run at open), or PostgreSQL shared by
//! several nodes ([`postgres`]); the app uses either through the async
//! [`Store`]. Secrets (client secrets,
//! tokens, PKCE verifiers) are sealed by [`SecretBox`] and never leave this
//! module unencrypted except to the caller that asked for them.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::secrets::{SecretBox, SecretError};

/// When a queued job `j` of target `t` (server `s`) may run, in SQL both
/// backends speak: its target on, it not held for an admin, a token the
/// engine can use or get by itself, and no earlier unfinished job of its
/// person and target. One rule for every claim and every "when next?".
macro_rules! ready_job_sql {
    () => {
        "j.state = 'queued' AND t.enabled AND NOT j.held
         AND (s.token_status = 'set' OR (s.grant_type IN ('client_credentials', 'jwt_bearer') AND s.token_status = 'not_set'))
         AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.person_id = j.person_id AND e.target_id = j.target_id AND e.id < j.id AND e.state <> 'failed')"
    };
}

mod admin_tokens;
mod admins;
mod audit;
mod bulk;
mod facade;
mod group_jobs;
mod groups;
mod jobs;
mod keys;
mod log;
mod migrations;
mod people;
pub mod postgres;
mod safeguards;
mod servers;
mod signing_keys;
mod targets;

pub use admin_tokens::AdminToken;
pub use facade::Store;
pub use admins::{ApiToken, Session};
pub use audit::{AuditEntry, AuditFilter, redact};
pub use bulk::{BulkBatch, POLL_LEASE_MS};
pub use group_jobs::{GroupJobInput, Member};
pub use groups::GroupSummary;
pub use log::{LogEntry, LogFilter};
pub use people::{PeopleQuery, PeopleSort};
pub use safeguards::{BUDGET_WAIT_MS, HeldRemoval, Safeguards, TargetHealth};
pub use servers::{Pending, PendingOrigin};
pub use signing_keys::{KeyRole, NewSigningKey, SigningKeyInfo};
use migrations::MIGRATIONS;

/// Database file name inside the data directory.
pub const DB_FILE: &str = "registry.sqlite3";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// PostgreSQL refused.
    #[error("database error: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("database connection: {0}")]
    Pool(String),
    /// The PostgreSQL connection string cannot be used as given.
    #[error("database connection string: {0}")]
    Connection(String),
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
    /// A stored value cannot be read back (written by something else, or
    /// damaged); says which.
    #[error("the database holds an unreadable {0}")]
    Unreadable(String),
    /// This node's secret key is not the one the shared database was
    /// sealed with.
    #[error(
        "this host's secret key (fingerprint {ours}) is not the one the database's other hosts use ({database}): every host on one PostgreSQL needs the same key; set REGISTRY_HOST_SECRET_KEY to that key on this host"
    )]
    KeyMismatch {
        /// The fingerprint the database recorded.
        database: String,
        /// This node's.
        ours: String,
    },
    /// Another live process serves under this node's id.
    #[error(
        "another process (pid {pid}) is serving as node '{node}' on this database and its heartbeat goes on; give this one another --node-id (each process needs its own), or stop that one first"
    )]
    NodeIdInUse {
        /// The id.
        node: String,
        /// The other process's id, on its machine.
        pid: i64,
    },
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

/// Begins a write transaction. IMMEDIATE takes the write lock at BEGIN, so
/// a transaction that reads and then writes waits (busy timeout) for
/// another process's writer instead of failing with SQLITE_BUSY_SNAPSHOT
/// when that writer committed between its read and its write: the CLI
/// importing beside `serve` reprovisioning.
fn write(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A write refused by a UNIQUE or PRIMARY KEY constraint becomes
/// [`StoreError::Conflict`] with `message`; any other failure (a foreign key,
/// a CHECK) stays a database error rather than pass for a taken name.
fn unique(e: rusqlite::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            StoreError::Conflict(message())
        }
        _ => StoreError::Sql(e),
    }
}

/// A stored name this program does not know, e.g. a state written by a
/// newer version: an error that names the column and the value, never a
/// silent default.
#[derive(Debug, thiserror::Error)]
#[error("unknown {column} '{value}' in the database")]
struct UnknownValue {
    column: &'static str,
    value: String,
}

/// Parses a stored name with `parse`, or fails with [`UnknownValue`].
fn parsed<T>(column: &'static str, value: String, parse: impl FnOnce(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(&value).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(UnknownValue { column, value }))
    })
}

/// The database.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    secrets: SecretBox,
    path: PathBuf,
    /// Added to the wall clock for queue decisions (backoff, horizon,
    /// pauses): tests move time forward instead of sleeping.
    clock_offset_ms: std::sync::atomic::AtomicI64,
    /// Removals `claim` held, not yet reported (see [`SqliteStore::take_new_holds`]).
    new_holds: Mutex<Vec<(i64, usize)>>,
}

impl SqliteStore {
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
        // Long enough to wait out another process's largest transaction
        // (queueing a "Reprovision all" of 100,000 people takes seconds).
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let store = SqliteStore { conn: Mutex::new(conn), secrets, path, clock_offset_ms: std::sync::atomic::AtomicI64::new(0), new_holds: Mutex::new(Vec::new()) };
        store.migrate()?;
        Ok(store)
    }

    /// The queue's clock (ms since the epoch): the wall clock, moved by
    /// [`SqliteStore::advance_clock`].
    pub fn now(&self) -> i64 {
        now_ms() + self.clock_offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the queue's clock forward (tests of retries measured in hours).
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.clock_offset_ms.fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::Relaxed);
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
        if version == MIGRATIONS.len() {
            return Ok(());
        }
        // SQLite's way to change a table (a rebuild): foreign keys off
        // around the migrations (it cannot change inside a transaction), and
        // each migration's references checked before it commits.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let result = (|| -> Result<(), StoreError> {
            // Only what a migration breaks counts (an old database may hold
            // an orphan of its own).
            let broken_before: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
                let tx = write(&mut conn)?;
                tx.execute_batch(sql)?;
                let broken: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
                if broken > broken_before {
                    return Err(StoreError::Unreadable(format!("migration {} would leave {broken} broken reference(s); nothing was changed", i + 1)));
                }
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
                tx.commit()?;
            }
            Ok(())
        })();
        conn.pragma_update(None, "foreign_keys", "ON")?;
        result
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        Ok(self.db().pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize)
    }
}

/// A store in a scratch directory with one client-credentials server and
/// one enabled target whose scope is everyone (the target's id), for the
/// store's own tests.
#[cfg(test)]
pub(crate) fn scratch_with_target() -> (tempfile::TempDir, SqliteStore, i64) {
    use crate::domain::{Scope, ServerInput, TargetInput};
    use registry_plugin_runtime::latest::types::GrantType;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SecretBox::new(&[4; 32])).unwrap();
    let server = store
        .create_server(&ServerInput { client_secret: Some("s".into()), ..ServerInput::example("S", "p", GrantType::ClientCredentials) })
        .unwrap();
    let target = store.create_target(&TargetInput { name: "T".into(), plugin: "p".into(), server_id: server, settings: vec![], enabled: true, scope: Scope::default() }).unwrap();
    (dir, store, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SecretBox::new(&[1; 32])).unwrap();
        (dir, store)
    }

    #[test]
    fn migrations_run_once_and_a_newer_database_is_refused() {
        let (dir, store) = open();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        drop(store);
        let again = SqliteStore::open(dir.path(), SecretBox::new(&[1; 32])).unwrap();
        assert_eq!(again.schema_version().unwrap(), MIGRATIONS.len());
        again.db().pragma_update(None, "user_version", 99).unwrap();
        drop(again);
        let err = SqliteStore::open(dir.path(), SecretBox::new(&[1; 32])).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    /// The table rebuild of migration 10 (the grant type's CHECK) keeps a
    /// database of the version before it whole: its servers, their sealed
    /// secrets, and the targets and jobs that reference them.
    #[test]
    fn an_older_database_keeps_its_servers_and_references_through_the_rebuild() {
        let (dir, store, target) = scratch_with_target();
        let server = store.servers().unwrap()[0].id;
        store.create_person(crate::domain::Person::example("M1", "Ada", "Lovelace", "ada@example.org")).unwrap();
        drop(store);
        // Back to version 9: the tables of 10 to 13 gone, the old CHECK.
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             DROP TABLE provisioned_groups; DROP TABLE group_jobs; DROP TABLE group_members; DROP TABLE groups;
             ALTER TABLE targets DROP COLUMN provisions_groups;
             DROP INDEX jobs_by_bulk_batch; ALTER TABLE jobs DROP COLUMN bulk_batch; DROP TABLE bulk_batches;
             DROP TABLE signing_keys; DROP TABLE admin_tokens;
             ALTER TABLE oauth2_pending DROP COLUMN admin_id; ALTER TABLE jobs DROP COLUMN acting_admin;
             ALTER TABLE oauth2_servers DROP COLUMN jwt_subject;
             PRAGMA user_version = 9;",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(dir.path(), SecretBox::new(&[4; 32])).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        assert_eq!(store.server_config(server).unwrap().client_secret, "s", "the sealed secret opens where it was");
        assert_eq!(store.job_counts(Some(target)).unwrap().0, 1, "the queued job is there");
        let err = store.delete_server(server).unwrap_err().to_string();
        assert!(err.contains("FOREIGN KEY"), "targets still reference the rebuilt table: {err}");
        let fk: i64 = store.db().query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 0);
    }
}
