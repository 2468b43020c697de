//! `bench queue`: the job queue alone, without plugins. Workers claim
//! batches and record them done (or, with `--failed`, failed, a job at a
//! time as the engine records refused calls) until every job is; jobs per second on
//! SQLite (one process, as `serve` runs today), and on PostgreSQL with 1
//! and 3 nodes sharing one database, each node with its own pool and
//! workers. The PostgreSQL runs use a database of their own, made on the
//! server `--database` names and dropped afterwards (CREATEDB is needed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use registry_host::domain::{Done, Person, Scope, ServerInput, TargetInput};
use registry_host::secrets::SecretBox;
use registry_host::store::SqliteStore;
use registry_host::store::postgres::{PgConfig, PgStore};
use registry_plugin_runtime::latest::types::GrantType;

/// Runs the bench and prints a Markdown table.
pub async fn queue(database: Option<&str>, jobs: usize, batch: usize, workers: usize, failed: bool) -> anyhow::Result<()> {
    let how = if failed { "failed" } else { "done" };
    println!("Queue bench: {jobs} jobs claimed {batch} at a time and recorded {how}, {workers} workers per node\n");
    println!("| store | nodes | seconds | jobs/s |");
    println!("|---|---|---|---|");
    let sqlite = sqlite_run(jobs, batch, workers, failed).await?;
    println!("| SQLite | 1 | {:.2} | {:.0} |", sqlite.as_secs_f64(), jobs as f64 / sqlite.as_secs_f64());
    let Some(url) = database else {
        println!("\n(no --database: PostgreSQL not measured)");
        return Ok(());
    };
    for nodes in [1, 3] {
        let took = postgres_run(url, nodes, jobs, batch, workers, failed).await?;
        println!("| PostgreSQL | {nodes} | {:.2} | {:.0} |", took.as_secs_f64(), jobs as f64 / took.as_secs_f64());
    }
    Ok(())
}

/// What a `--failed` run records: a refusal as a service words one.
const REFUSED: &str = "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]";

fn done(job: registry_host::domain::Job) -> Done {
    Done { remote: Some(("Contact".into(), format!("R{}", job.person_id))), job, summary: "created".into(), removed: false, usage: None }
}

async fn sqlite_run(jobs: usize, batch: usize, workers: usize, failed: bool) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path(), SecretBox::new(&[9; 32]))?);
    let input = ServerInput::example("Bench", "bench", GrantType::ClientCredentials);
    let server = store.create_server(&input)?;
    store.create_target(&TargetInput { name: "Bench".into(), plugin: "bench".into(), server_id: server, settings: vec![], enabled: true, scope: Scope::default() })?;
    let people = (0..jobs).map(|i| Person::example(&format!("P{i:07}"), "Bench", &format!("Person {i}"), &format!("p{i}@example.org"))).collect();
    store.import_people(people, |_| {})?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let store = store.clone();
        tasks.push(tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            loop {
                let claimed = store.claim_for(batch, &[], &[])?;
                if claimed.is_empty() {
                    return Ok(());
                }
                if failed {
                    for job in &claimed {
                        store.finish_failed(job, REFUSED)?;
                    }
                } else {
                    store.finish_done(&claimed.into_iter().map(done).collect::<Vec<_>>())?;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

async fn postgres_run(url: &str, nodes: usize, jobs: usize, batch: usize, workers: usize, failed: bool) -> anyhow::Result<Duration> {
    let db = ScratchDatabase::create(url, &format!("queue_{nodes}")).await?;
    let result = postgres_in(&db.url, nodes, jobs, batch, workers, failed).await;
    // The run's own error, if any, before a failure to clean up.
    let dropped = db.drop_now().await;
    let took = result?;
    dropped?;
    Ok(took)
}

/// A database of the bench's own on the server `--database` names, made
/// for one run and dropped after it (CREATEDB is needed).
pub struct ScratchDatabase {
    admin: tokio_postgres::Client,
    name: String,
    /// Its connection string.
    pub url: String,
}

impl ScratchDatabase {
    /// Makes `registry_bench_<tag>` (dropping a leftover one first).
    pub async fn create(url: &str, tag: &str) -> anyhow::Result<ScratchDatabase> {
        let admin = registry_host::store::postgres::tls::connect(url).await.context("connecting to --database")?;
        let name = format!("registry_bench_{}_{tag}", std::process::id());
        // One statement each: neither may run inside a transaction block.
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.context("dropping an old bench database")?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.context("making the bench's database (CREATEDB is needed)")?;
        let db_url = if url.contains("://") {
            let mut u = url::Url::parse(url)?;
            u.set_path(&name);
            u.to_string()
        } else {
            format!("{url} dbname={name}")
        };
        Ok(ScratchDatabase { admin, name, url: db_url })
    }

    /// Drops it, whoever is still connected.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await.context("dropping the bench's database")?;
        Ok(())
    }
}

async fn postgres_in(url: &str, nodes: usize, jobs: usize, batch: usize, workers: usize, failed: bool) -> anyhow::Result<Duration> {
    let config = PgConfig { pool_size: workers + 2, ..PgConfig::default() };
    let mut stores = Vec::new();
    for n in 0..nodes {
        stores.push(PgStore::connect(url, &format!("bench-{n}"), SecretBox::new(&[9; 32]), config.clone()).await?);
    }
    let db = registry_host::store::postgres::tls::connect(url).await?;
    // Seeded set-based, as a reprovision queues: only claiming and
    // recording are timed.
    db.batch_execute(&format!(
        "INSERT INTO oauth2_servers (name, plugin, server_url, client_id, grant_type, token_status, created_at, updated_at)
           VALUES ('Bench', 'bench', 'https://login.example.com', 'bench', 'client_credentials', 'set', 0, 0);
         INSERT INTO targets (name, plugin, server_id, settings, created_at, updated_at) SELECT 'Bench', 'bench', id, '\\x', 0, 0 FROM oauth2_servers;
         INSERT INTO people (id, status, sort_name, search, data, created_at, updated_at)
           SELECT 'P' || lpad(g::text, 7, '0'), 'active', 'P' || g, '', '{{}}', 0, 0 FROM generate_series(1, {jobs}) g;
         INSERT INTO provisioned (person_id, target_id, state, updated_at) SELECT p.id, t.id, 'pending', 0 FROM people p, targets t;
         INSERT INTO jobs (person_id, target_id, action, created_at) SELECT p.id, t.id, 'added', 0 FROM people p, targets t ORDER BY p.id;
         ANALYZE;"
    ))
    .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..workers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let claimed = store.claim_for(batch, &[], &[]).await?;
                    if claimed.is_empty() {
                        return Ok::<_, anyhow::Error>(());
                    }
                    if failed {
                        for job in &claimed {
                            store.finish_failed(job, REFUSED).await?;
                        }
                    } else {
                        store.finish_done(&claimed.into_iter().map(done).collect::<Vec<_>>()).await?;
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await??;
    }
    let took = started.elapsed();
    let counts = db.query_one("SELECT count(*) FILTER (WHERE state <> 'failed'), count(*) FILTER (WHERE state = 'failed') FROM jobs", &[]).await?;
    let (left, kept): (i64, i64) = (counts.get(0), counts.get(1));
    anyhow::ensure!(left == 0, "{left} jobs were left");
    // A failed job is kept (until its person changes); a done one is gone.
    let expected = if failed { jobs as i64 } else { 0 };
    anyhow::ensure!(kept == expected, "{kept} jobs recorded failed, {expected} expected");
    for s in &stores {
        s.stop().await?;
    }
    Ok(took)
}
