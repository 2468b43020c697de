//! PostgreSQL, for several `serve` processes (nodes) on one database: a
//! pooled tokio-postgres connection per call (deadpool-postgres), the
//! schema migrated once however many nodes start together, the nodes and
//! their heartbeats, and the job queue ([`queue`]), whose claims are leased
//! so that a node that dies loses its jobs to the others instead of
//! holding them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::StoreError;
use crate::secrets::SecretBox;

pub mod queue;
mod schema;
mod admins;
mod audit;
mod bulk;
mod credentials;
mod enqueue;
mod groups;
mod import;
mod keys;
mod leases;
mod log;
mod people;
mod safeguards;
mod servers;
mod targets;
pub mod tls;
pub mod wakeups;

pub use leases::{Rescued, Upkeep};
pub use wakeups::{Topic, Wakeups};

/// How the store shares the database with other nodes.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// How long a claim holds without a heartbeat renewing it: well above
    /// a plugin call's deadline, so that a live node never loses a job
    /// it is working on.
    pub lease: Duration,
    /// A claim taken back this often (its node died each time) is failed
    /// instead of tried again: the job may be what kills nodes.
    pub max_rescues: i64,
    /// Connections the pool keeps at most.
    pub pool_size: usize,
    /// Whether this store is a node (a `serve` process, listed and
    /// heartbeating) or a client of the others (a CLI command).
    pub register: bool,
    /// Whether the node first makes sure no other live process uses its id
    /// (`serve`): taking the id releases the id's earlier claims, which
    /// must be a dead process's, never a running one's.
    pub exclusive_id: bool,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig { lease: Duration::from_secs(120), max_rescues: 3, pool_size: 16, register: true, exclusive_id: false }
    }
}

/// The registry's database on PostgreSQL, as one node sees it.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    node: String,
    secrets: SecretBox,
    config: PgConfig,
    tripwire: Arc<AtomicU64>,
    /// Removals this node's claims held, not yet reported.
    new_holds: Arc<std::sync::Mutex<Vec<(i64, usize)>>>,
}

/// A node as `registry-host nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// Its id (stable across its restarts).
    pub id: String,
    /// Its process id.
    pub pid: i64,
    /// When it started (ms since the epoch, the database's clock).
    pub started_at: i64,
    /// Its last heartbeat (ms, the database's clock).
    pub heartbeat_at: i64,
    /// Milliseconds since that heartbeat.
    pub silent_ms: i64,
    /// Jobs it holds now.
    pub claimed: i64,
}

/// A node is live while its heartbeat is at most this old (the CLI's
/// `nodes`, the Nodes page, and "is a host serving?").
pub const LIVE_WITHIN: Duration = Duration::from_secs(60);

impl PgStore {
    /// Connects as node `node`, migrating the schema if this is the first
    /// node of a newer program (once, under an advisory lock), checks that
    /// `secrets` is the key the other nodes seal with (the first node
    /// records it), and registers the node.
    pub async fn connect(url: &str, node: &str, secrets: SecretBox, config: PgConfig) -> Result<PgStore, StoreError> {
        let connection = tls::Connection::parse(url)?;
        let mut pg = connection.config.clone();
        // A connection whose peer vanished (a half-open TCP connection) is
        // noticed in about a minute, not the kernel's default two hours.
        pg.keepalives(true).keepalives_idle(Duration::from_secs(30));
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match connection.tls {
            Some(tls) => Manager::from_config(pg, tls, recycling),
            None => Manager::from_config(pg, NoTls, recycling),
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            // Waiting for a connection (all busy, or the server away) ends
            // in an error, not a hang.
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PgStore { pool, node: node.to_string(), secrets, config, tripwire: Arc::default(), new_holds: Arc::default() };
        store.migrate().await?;
        if store.config.register && store.config.exclusive_id {
            store.wait_for_id().await?;
        }
        // The key checked and the node registered in one transaction.
        store.check_key().await?;
        Ok(store)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The sharing rules this store runs with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        })
    }

    /// Runs the migrations this database lacks; how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Held to commit: a node starting meanwhile waits, then finds the
        // schema done.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::MIGRATION_LOCK]).await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())").await?;
        let current: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0);
        let known = schema::MIGRATIONS.len();
        if current as usize > known {
            return Err(StoreError::TooNew { path: "the PostgreSQL database".into(), found: current as usize, known });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(i as i64 + 1)]).await?;
        }
        tx.commit().await?;
        Ok(known - current as usize)
    }

    /// Marks this node started (again): a restarted node keeps its id.
    async fn register_in(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO nodes (id, pid, heartbeat_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, heartbeat_ms = excluded.heartbeat_ms, started_at = now(), heartbeat_at = now(), stopped_at = NULL",
            &[&self.node, &i64::from(std::process::id()), &(self.heartbeat_every().as_millis() as i64)],
        )
        .await?;
        Ok(())
    }

    /// The heartbeat: the node is alive, and every job it holds gets a new
    /// lease. Returns the jobs it still holds, as (id, claim); a job the
    /// caller works on that is not among them under its claim was taken
    /// back (its lease ran out first) and must not be finished by it.
    pub async fn heartbeat(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("UPDATE nodes SET heartbeat_at = now(), stopped_at = NULL WHERE id = $1", &[&self.node]).await?;
        let rows = tx
            .query(
                "WITH mine AS MATERIALIZED (SELECT id FROM jobs WHERE claimed_by = $1 AND state = 'running' ORDER BY id FOR NO KEY UPDATE)
                 UPDATE jobs j SET lease_until = now() + $2::bigint * interval '1 millisecond'
                 FROM mine WHERE j.id = mine.id RETURNING j.id, j.claim_seq",
                &[&self.node, &self.lease_ms()],
            )
            .await?;
        // Group jobs it runs keep their leases too.
        tx.execute(
            "UPDATE group_jobs SET lease_until = now() + $2::bigint * interval '1 millisecond' WHERE claimed_by = $1 AND state = 'running'",
            &[&self.node, &self.lease_ms()],
        )
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// How often a claim would have run two jobs of one pair at once and
    /// the database refused (a bug if ever more than 0).
    pub fn tripwire_hits(&self) -> u64 {
        self.tripwire.load(Ordering::Relaxed)
    }

    /// The nodes whose heartbeat is at most `fresh` old, with the jobs each
    /// holds, oldest first.
    pub async fn live_nodes(&self, fresh: Duration) -> Result<Vec<Node>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT n.id, n.pid, (extract(epoch FROM n.started_at) * 1000)::bigint, (extract(epoch FROM n.heartbeat_at) * 1000)::bigint,
                        (extract(epoch FROM now() - n.heartbeat_at) * 1000)::bigint,
                        (SELECT count(*) FROM jobs j WHERE j.claimed_by = n.id AND j.state = 'running')
                 FROM nodes n
                 WHERE n.stopped_at IS NULL AND n.heartbeat_at > now() - $1::bigint * interval '1 millisecond'
                 ORDER BY n.started_at, n.id",
                &[&(fresh.as_millis() as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Node { id: r.get(0), pid: r.get(1), started_at: r.get(2), heartbeat_at: r.get(3), silent_ms: r.get(4), claimed: r.get(5) })
            .collect())
    }

    /// A clean stop: the node's claims go back to the queue at once (no
    /// lease to wait out) and it leaves the live list.
    pub async fn stop(&self) -> Result<usize, StoreError> {
        let released = self.reset_node().await?;
        self.client().await?.execute("UPDATE nodes SET stopped_at = now() WHERE id = $1", &[&self.node]).await?;
        Ok(released)
    }

    pub(super) fn lease_ms(&self) -> i64 {
        self.config.lease.as_millis() as i64
    }
}

/// A PostgreSQL error with what the server said (tokio-postgres's own
/// `Display` is only "db error").
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        // The cause too: "error performing TLS handshake" alone does not
        // say that the certificate was refused, nor why.
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}
