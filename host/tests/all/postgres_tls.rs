//! A node reaching PostgreSQL over TLS: the server's certificate is
//! verified against the CA the connection string names (`sslrootcert`),
//! the pool and the wake-up connection both use it, and a certificate
//! the node cannot verify is refused with the reason.

use std::time::Duration;

use registry_host::secrets::SecretBox;
use registry_host::store::postgres::{PgConfig, PgStore};

use crate::pg::{connect, tls_database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_connects_over_verified_tls_and_refuses_a_certificate_it_cannot_verify() {
    let Some(url) = tls_database().await else { return };
    let node = PgStore::connect(&url, "tls", SecretBox::new(&[3; 32]), PgConfig { lease: Duration::from_secs(60), ..PgConfig::default() }).await.expect("a node over TLS");
    let _wakeups = node.start_wakeups(&url).await.expect("the wake-up connection over TLS");
    let dbname = url.rsplit("dbname=").next().unwrap().to_string();
    // Seen from the server (over its Unix socket): this database's
    // connections, the pool's and the listener's, are all TLS.
    let admin = connect(&std::env::var("REGISTRY_HOST_TEST_DATABASE_URL").unwrap()).await;
    let rows = admin
        .query("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND a.backend_type = 'client backend'", &[&dbname])
        .await
        .unwrap();
    let tls: Vec<bool> = rows.iter().map(|r| r.get(0)).collect();
    assert!(tls.len() >= 2 && tls.iter().all(|t| *t), "every connection of the node is TLS: {tls:?}");
    assert_eq!(node.live_nodes(Duration::from_secs(30)).await.unwrap().len(), 1, "and it works");

    // The public web roots do not know the test CA: refused, and why.
    let system = url.replace(&format!("sslrootcert={}", root(&url)), "sslrootcert=system");
    let Err(err) = PgStore::connect(&system, "untrusting", SecretBox::new(&[3; 32]), PgConfig::default()).await else { panic!("a certificate from an unknown CA was taken") };
    let err = err.to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

fn root(url: &str) -> String {
    url.split_whitespace().find_map(|kv| kv.strip_prefix("sslrootcert=")).expect("the CA file").to_string()
}
