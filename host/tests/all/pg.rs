//! The test PostgreSQL: the cluster `tests/run` starts (its connection
//! string in `REGISTRY_HOST_TEST_DATABASE_URL`), a fresh database per test.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::{Client, NoTls};

/// A fresh database on the test cluster, or `None` (with a note) when no
/// cluster is configured; with `CI=true` a missing cluster fails instead.
pub async fn database() -> Option<String> {
    let Ok(base) = std::env::var("REGISTRY_HOST_TEST_DATABASE_URL") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but REGISTRY_HOST_TEST_DATABASE_URL is not set: run the tests with tests/run, which starts PostgreSQL"
        );
        eprintln!("skipped: no PostgreSQL (REGISTRY_HOST_TEST_DATABASE_URL is not set; tests/run starts one)");
        return None;
    };
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Unique on a cluster that outlives the run, too (pids repeat).
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("rh_test_{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = connect(&base).await;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
    Some(with_dbname(&base, &name))
}

/// `base` naming database `name` instead (a URL or key=value pairs).
fn with_dbname(base: &str, name: &str) -> String {
    if base.contains("://") {
        let mut url = url::Url::parse(base).expect("a postgres:// URL");
        url.set_path(name);
        url.to_string()
    } else {
        format!("{base} dbname={name}")
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
}


/// A fresh database reached over TLS on loopback: the connection string
/// `tests/run` gives (`sslmode=verify-full` and its CA) naming it; `None`
/// (with a note) where no such cluster is configured, a failure with
/// `CI=true`.
pub async fn tls_database() -> Option<String> {
    let Ok(tls) = std::env::var("REGISTRY_HOST_TEST_DATABASE_TLS") else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but REGISTRY_HOST_TEST_DATABASE_TLS is not set: run the tests with tests/run");
        eprintln!("skipped: no PostgreSQL over TLS (REGISTRY_HOST_TEST_DATABASE_TLS is not set; tests/run starts one)");
        return None;
    };
    let plain = database().await?;
    let name = tokio_postgres::Config::from_str(&plain).expect("the test database's string").get_dbname().expect("a database name").to_string();
    Some(format!("{tls} dbname={name}"))
}

/// A node of the test database `url`, named `id`, whose claims hold for
/// `lease_ms` without a heartbeat (the tests' shared key).
pub async fn node(url: &str, id: &str, lease_ms: u64) -> registry_host::store::postgres::PgStore {
    use registry_host::store::postgres::{PgConfig, PgStore};
    let config = PgConfig { lease: std::time::Duration::from_millis(lease_ms), max_rescues: 3, pool_size: 8, register: true, exclusive_id: false };
    PgStore::connect(url, id, registry_host::secrets::SecretBox::new(&[7; 32]), config).await.expect("connect a node")
}
