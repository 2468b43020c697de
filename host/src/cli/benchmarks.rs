//! The `bench` commands: figures printed for people to read, measured on
//! this machine (see the README's Performance section).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use registry_plugin_runtime::latest::types::GrantType;
use registry_host::oauth::OAuth;
use registry_host::domain::{Person, Scope};
use registry_host::engine::{Engine, EngineConfig};
use registry_host::secrets::SecretBox;
use registry_host::domain::{ServerInput, TargetInput};
use registry_host::store::Store;
use registry_host::store::postgres::{PgConfig, PgStore};
use registry_plugin_runtime::{HostPattern, Origin, Runtime, RuntimeConfig};
use salesforce_emulator::{Emulator, Seed};

/// Prints the runtime's load and call costs for one plugin.
pub async fn plugin(config: RuntimeConfig, path: &Path, iterations: u32) -> anyhow::Result<()> {
    let wasm = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cache_dir = tempfile::tempdir().context("cannot create a scratch cache directory")?;
    let config = RuntimeConfig { cache_dir: Some(cache_dir.path().to_path_buf()), ..config };
    let runtime = Runtime::new(config)?;

    let compile_samples = iterations.min(5);
    let cold = median(compile_samples, || {
        let started = Instant::now();
        registry_plugin_runtime::wasmtime::component::Component::new(runtime.engine(), &wasm).map(|_| started.elapsed())
    })?;
    let first = runtime.load(&path.display().to_string(), &wasm).await?;
    let cached = {
        let mut samples = Vec::new();
        for _ in 0..iterations {
            let plugin = runtime.load(&path.display().to_string(), &wasm).await?;
            samples.push(plugin.load_stats().compile_or_deserialize);
        }
        middle(samples)
    };
    let mut calls = Vec::new();
    for _ in 0..iterations {
        let started = Instant::now();
        first.info().await?;
        calls.push(started.elapsed());
    }
    let call = middle(calls);

    println!("plugin                      {} ({})", first.name(), path.display());
    println!("component size              {:.1} KiB", wasm.len() as f64 / 1024.0);
    println!("cold compile (median of {compile_samples})   {:.2} ms", ms(cold));
    println!("cached load (median of {iterations})  {:.3} ms", ms(cached));
    println!("instantiate + info call     {:.1} µs (median of {iterations})", call.as_secs_f64() * 1e6);
    println!("build profile               {}", if cfg!(debug_assertions) { "debug" } else { "release" });
    Ok(())
}

fn median(
    n: u32,
    mut sample: impl FnMut() -> registry_plugin_runtime::wasmtime::Result<Duration>,
) -> anyhow::Result<Duration> {
    let mut samples = Vec::new();
    for _ in 0..n {
        samples.push(sample().map_err(anyhow::Error::from)?);
    }
    Ok(middle(samples))
}

fn middle(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The emulator's side of the reprovision bench (`bench emulator`, run by
/// the bench as a child process): one JSON line with its URLs, then one
/// JSON report (API calls, Contacts, peak memory) per `report` line read.
pub fn emulator_process(latency: Latency) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let mut seed = Seed::demo(vec![]);
    // Enough daily calls that the limit is not what is measured.
    seed.orgs[0].daily_api_limit = 1_000_000;
    let emu = Arc::new(Emulator::start(seed)?);
    emu.set_latency_model(Duration::from_millis(latency.base_ms), Duration::from_millis(latency.per_record_ms));
    // The calls in flight, sampled every half second, for the report.
    let samples: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
    {
        let (emu, samples) = (Arc::downgrade(&emu), samples.clone());
        std::thread::spawn(move || {
            while let Some(emu) = emu.upgrade() {
                samples.lock().unwrap_or_else(|p| p.into_inner()).push(emu.in_flight().0);
                drop(emu);
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({"login_url": emu.login_url(), "instance_url": emu.instance_url()}))?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "report" {
            // Each report covers the time since the one before.
            let series = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
            let report = serde_json::json!({
                "api_calls": emu.api_usage().0,
                "contacts": emu.live_records("Contact").len(),
                "peak_kib": peak_rss_kib(),
                "most_in_flight": emu.in_flight().1,
                "in_flight": series,
            });
            writeln!(out, "{report}")?;
            out.flush()?;
        }
    }
    Ok(())
}

/// How often the emulator process samples the calls in flight.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The emulator's latency model for a bench run.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Milliseconds for every call.
    pub base_ms: u64,
    /// Milliseconds more for each record of a collections call.
    pub per_record_ms: u64,
}

/// What the emulator process reports.
struct Report {
    api_calls: u64,
    contacts: usize,
    peak_kib: Option<u64>,
    most_in_flight: u64,
    in_flight: Vec<u64>,
}

/// The emulator in its own process, as the bench talks to it.
struct EmulatorProcess {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    login_url: String,
    instance_url: String,
}

impl EmulatorProcess {
    fn start(latency: Latency) -> anyhow::Result<Self> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().context("cannot find this program to start the emulator")?;
        let mut child = Command::new(exe)
            .args(["bench", "emulator", "--latency-ms", &latency.base_ms.to_string(), "--per-record-ms", &latency.per_record_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the emulator process")?;
        let input = child.stdin.take().expect("piped");
        let mut output = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        output.read_line(&mut line).context("the emulator process said nothing")?;
        let urls: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("the emulator process said {line:?}"))?;
        let url = |k: &str| urls[k].as_str().map(str::to_string).with_context(|| format!("no {k} in {line:?}"));
        Ok(Self { login_url: url("login_url")?, instance_url: url("instance_url")?, child, input, output })
    }

    /// What the emulator saw since the last report.
    fn report(&mut self) -> anyhow::Result<Report> {
        use std::io::{BufRead, Write};
        writeln!(self.input, "report")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("the emulator process reported {line:?}"))?;
        Ok(Report {
            api_calls: v["api_calls"].as_u64().unwrap_or(0),
            contacts: v["contacts"].as_u64().unwrap_or(0) as usize,
            peak_kib: v["peak_kib"].as_u64(),
            most_in_flight: v["most_in_flight"].as_u64().unwrap_or(0),
            in_flight: v["in_flight"].as_array().map(|a| a.iter().filter_map(|n| n.as_u64()).collect()).unwrap_or_default(),
        })
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        // End of input stops it; a kill if it does not.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the bench's host keeps its data: SQLite in a scratch directory,
/// or `nodes` hosts sharing a scratch database on a PostgreSQL server.
pub enum BenchStore {
    /// One host on SQLite, as `serve` runs by default.
    Sqlite,
    /// Several nodes in this process, each with its own pool, engine,
    /// heartbeat and wake-ups, as several `serve --database` run.
    Postgres {
        /// The server (the bench makes and drops a database there).
        url: String,
        /// How many nodes.
        nodes: usize,
    },
}

/// A full "Reprovision all" of `n` generated people to the emulator, run in
/// a process of its own, through `path`, with the engine as `serve` runs it.
pub async fn reprovision(config: RuntimeConfig, path: &Path, n: usize, latency: Latency, workers: Option<usize>, bulk: bool, on: BenchStore) -> anyhow::Result<()> {
    anyhow::ensure!(n > 0, "--people must be at least 1");
    anyhow::ensure!(workers != Some(0), "--workers must be at least 1");
    match on {
        BenchStore::Sqlite => {
            let dir = tempfile::tempdir().context("cannot create a scratch data directory")?;
            let store = Store::open(dir.path(), SecretBox::load_or_create(dir.path())?)?;
            reprovision_on(config, path, n, latency, workers, bulk, vec![Arc::new(store)], None).await
        }
        BenchStore::Postgres { url, nodes } => {
            anyhow::ensure!(nodes > 0, "--nodes must be at least 1");
            let db = crate::queue_bench::ScratchDatabase::create(&url, "reprovision").await?;
            let result = async {
                let mut stores = Vec::new();
                let pg_config = PgConfig { pool_size: workers.unwrap_or(EngineConfig::default().workers) + 4, ..PgConfig::default() };
                for node in 0..nodes {
                    stores.push(Arc::new(Store::from(PgStore::connect(&db.url, &format!("bench-{node}"), SecretBox::new(&[7; 32]), pg_config.clone()).await?)));
                }
                reprovision_on(config, path, n, latency, workers, bulk, stores, Some(&db.url)).await
            }
            .await;
            let dropped = db.drop_now().await;
            result?;
            dropped
        }
    }
}

/// [`reprovision`] on `stores`, one engine each (the first also sets up).
#[allow(clippy::too_many_arguments)]
async fn reprovision_on(
    config: RuntimeConfig,
    path: &Path,
    n: usize,
    latency: Latency,
    workers: Option<usize>,
    bulk: bool,
    stores: Vec<Arc<Store>>,
    database: Option<&str>,
) -> anyhow::Result<()> {
    let engine_config = EngineConfig { workers: workers.unwrap_or(EngineConfig::default().workers), ..EngineConfig::default() };
    // The emulator speaks plain http on loopback; the pool fits the workers.
    // One runtime for every node's engine: its pool fits all their workers.
    let config = RuntimeConfig { insecure_loopback: true, pooling: config.pooling.map(|_| RuntimeConfig::pool_for(engine_config.workers * stores.len())), ..config };
    let mut emu = EmulatorProcess::start(latency)?;
    let store = stores[0].clone();
    let runtime = Runtime::new(config)?;
    let plugin = runtime.load_file(path).await?;
    let plugins = Arc::new(HashMap::from([(plugin.name().to_string(), plugin.clone())]));
    let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", true);
    let server_config = registry_plugin_runtime::latest::types::Oauth2ServerConfig {
        server_url: emu.login_url.clone(),
        client_id: salesforce_emulator::seed::DEMO_CONSUMER_KEY.into(),
        client_secret: salesforce_emulator::seed::DEMO_CONSUMER_SECRET.into(),
        grant_type: GrantType::ClientCredentials,
        scope: Some("api refresh_token".into()),
        token_url: None,
    };
    let mut input = ServerInput::for_config("Emulator", plugin.name(), &server_config);
    input.api_hosts = vec![HostPattern::exact(&Origin::of_url(&emu.instance_url)?).to_string()];
    let server = store.create_server(&input).await?;
    // Made and imported a slice at a time, so the bench's own people do not
    // count in the host's peak memory.
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let people: Vec<Person> = chunk.iter().map(|i| Person::example(&format!("P{i:07}"), "Bench", &format!("Person {i}"), &format!("p{i}@example.org"))).collect();
        store.import_people(people, |_| {}).await?;
    }
    let import = started.elapsed();
    let target = store.create_target(&TargetInput {
        name: "Contacts".into(),
        plugin: plugin.name().into(),
        server_id: server,
        // Collections, or Bulk API 2.0 from 2,000 people a batch.
        settings: vec![
            ("object".into(), "Contact".into()),
            ("external_id_field".into(), "Registry_ID__c".into()),
            ("bulk_threshold".into(), if bulk { "2000" } else { "0" }.into()),
        ],
        enabled: true,
        scope: Scope::default(),
    }).await?;
    let workers = engine_config.workers;
    // One engine per node; on PostgreSQL each with its heartbeat and
    // wake-ups, as `serve --database` runs.
    let mut engines = vec![Engine::new(store.clone(), plugins.clone(), oauth, engine_config.clone())];
    for other in &stores[1..] {
        let oauth = OAuth::new(other.clone(), plugins.clone(), "http://127.0.0.1:9", true);
        engines.push(Engine::new(other.clone(), plugins.clone(), oauth, engine_config.clone()));
    }
    let mut upkeep = Vec::new();
    for (engine, node) in engines.iter().zip(&stores) {
        if let (Some(pg), Some(url)) = (node.postgres(), database) {
            engine.share_wakeups(pg.start_wakeups(url).await?);
            upkeep.push(pg.start_upkeep());
        }
    }
    let calls_before = emu.report()?.api_calls;
    let started = Instant::now();
    let run = store.start_run(target).await?;
    let queued = started.elapsed();
    for engine in &engines {
        engine.start().await?;
        engine.wake();
    }
    let run = loop {
        let now = store.run(run.id).await?;
        if now.finished_at.is_some() {
            break now;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(1800), "the run did not finish in 30 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = started.elapsed();
    let report = emu.report()?;
    let (live, emulator_kib) = (report.contacts, report.peak_kib);
    let calls = report.api_calls - calls_before;

    let nodes = stores.len();
    let store_name = if database.is_some() { format!("PostgreSQL, {nodes} node{}", if nodes == 1 { "" } else { "s" }) } else { "SQLite".to_string() };
    println!("people                      {n}");
    println!("store                       {store_name}");
    println!("path                        {}", if bulk { "Bulk API 2.0 (one ingest job per batch)" } else { "collections (composite/sobjects, 200 a call)" });
    if latency.base_ms > 0 || latency.per_record_ms > 0 {
        println!("latency model               {} ms a call + {} ms a record (collections)", latency.base_ms, latency.per_record_ms);
    }
    println!("import (one-off)            {:.2} s", import.as_secs_f64());
    println!("queue run (one transaction) {:.0} ms", queued.as_secs_f64() * 1e3);
    println!("full reprovision            {:.2} s  ({} workers{}, {} failed)", took.as_secs_f64(), workers, if nodes > 1 { " per node" } else { "" }, run.failed);
    println!("people per second           {:.0}", n as f64 / took.as_secs_f64());
    println!("API calls                   {calls}  ({:.1} per 1,000 people)", calls as f64 * 1000.0 / n as f64);
    println!("Contacts in the emulator    {live}");
    println!("calls in flight, at most    {}", report.most_in_flight);
    let shown: Vec<String> = report.in_flight.iter().take(60).map(u64::to_string).collect();
    println!("in flight every {:.1} s       {}{}", SAMPLE_EVERY.as_secs_f64(), shown.join(" "), if report.in_flight.len() > 60 { " …" } else { "" });
    if let Some(kib) = peak_rss_kib() {
        println!("peak memory, host alone     {:.0} MiB", kib as f64 / 1024.0);
    }
    if let Some(kib) = emulator_kib {
        println!("peak memory, emulator       {:.0} MiB (its own process)", kib as f64 / 1024.0);
    }
    println!("build profile               {}", if cfg!(debug_assertions) { "debug" } else { "release" });
    // One line for `bench table`, which runs this in a process per row.
    let row = serde_json::json!({
        "bulk": bulk, "store": store_name, "latency_ms": latency.base_ms, "per_record_ms": latency.per_record_ms, "people": n, "workers": workers,
        "wall_s": took.as_secs_f64(), "queue_ms": queued.as_secs_f64() * 1e3, "api_calls": calls,
        "host_mib": peak_rss_kib().map(|k| k / 1024), "emulator_mib": emulator_kib.map(|k| k / 1024), "failed": run.failed,
    });
    println!("row {row}");
    anyhow::ensure!(run.failed == 0 && live == n, "the run did not provision everyone: {} failed, {live} Contacts", run.failed);
    drop(upkeep);
    for node in &stores {
        if let Some(pg) = node.postgres() {
            pg.stop().await?;
        }
    }
    Ok(())
}

/// The reprovision bench over both paths (collections, Bulk API) with the
/// latency model off and on, each run in a process of its own (so each
/// peak memory is that run's), printed as one Markdown table.
pub fn table(path: &Path, n: usize, latency: Latency, workers: Option<usize>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program to run the bench")?;
    let mut rows = Vec::new();
    for bulk in [false, true] {
        for lat in [Latency { base_ms: 0, per_record_ms: 0 }, latency] {
            let data = tempfile::tempdir()?;
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg("--data-dir").arg(data.path()).args(["bench", "reprovision", "--people", &n.to_string(), "--plugin"]).arg(path);
            cmd.args(["--latency-ms", &lat.base_ms.to_string(), "--per-record-ms", &lat.per_record_ms.to_string()]);
            if let Some(w) = workers {
                cmd.args(["--workers", &w.to_string()]);
            }
            if bulk {
                cmd.arg("--bulk");
            }
            let out = cmd.stderr(std::process::Stdio::null()).output().context("cannot run the bench")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let row = text.lines().find_map(|l| l.strip_prefix("row ")).with_context(|| format!("the bench printed no figures:\n{text}"))?;
            rows.push(serde_json::from_str::<serde_json::Value>(row)?);
            eprintln!("done: {} people, {}, latency {} ms + {} ms a record", n, if bulk { "Bulk API" } else { "collections" }, lat.base_ms, lat.per_record_ms);
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    let date = time::OffsetDateTime::now_utc().date();
    println!("{n} people, {date}, {cores} cores, {} build", if cfg!(debug_assertions) { "debug" } else { "release" });
    println!();
    println!("| path | latency model | workers | wall | people/s | API calls | host peak | emulator peak |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let mib = |k: &str| r[k].as_u64().map_or("?".to_string(), |m| format!("{m} MiB"));
        let wall = r["wall_s"].as_f64().unwrap_or(0.0);
        let latency = match (r["latency_ms"].as_u64(), r["per_record_ms"].as_u64()) {
            (Some(0), Some(0)) => "off".to_string(),
            (Some(b), Some(p)) => format!("{b} ms + {p} ms a record"),
            _ => "?".into(),
        };
        println!(
            "| {} | {latency} | {} | {wall:.2} s | {:.0} | {} | {} | {} |",
            if r["bulk"] == true { "Bulk API 2.0" } else { "collections" },
            r["workers"],
            n as f64 / wall.max(1e-9),
            r["api_calls"],
            mib("host_mib"),
            mib("emulator_mib"),
        );
    }
    println!();
    println!("The sandbox's own cost (instantiate + a call, and sandboxed / native for 10,000 people's plugin work): `cargo bench -p registry-plugin-testbed --bench sandbox`.");
    Ok(())
}

/// The process's peak resident set (Linux's VmHWM).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
