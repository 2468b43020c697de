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

/// A full "Reprovision all" of `n` generated people to the in-process
/// emulator through `path`, with the engine as `serve` runs it.
pub async fn reprovision(config: RuntimeConfig, path: &Path, n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(n > 0, "--people must be at least 1");
    // The in-process emulator speaks plain http on loopback.
    let config = RuntimeConfig { insecure_loopback: true, ..config };
    let mut seed = Seed::demo(vec![]);
    // Enough daily calls that the limit is not what is measured.
    seed.orgs[0].daily_api_limit = 1_000_000;
    let emu = Emulator::start(seed)?;
    let dir = tempfile::tempdir().context("cannot create a scratch data directory")?;
    let store = Arc::new(Store::open(dir.path(), SecretBox::load_or_create(dir.path())?)?);
    let runtime = Runtime::new(config)?;
    let plugin = runtime.load_file(path).await?;
    let plugins = Arc::new(HashMap::from([(plugin.name().to_string(), plugin.clone())]));
    let oauth = OAuth::new(store.clone(), plugins.clone(), "http://127.0.0.1:9", true);
    let mut input = ServerInput::for_config("Emulator", plugin.name(), &registry_plugin_testbed::emulator_server(&emu, GrantType::ClientCredentials));
    input.api_hosts = vec![HostPattern::exact(&Origin::of_url(&emu.instance_url())?).to_string()];
    let server = store.create_server(&input)?;
    let people: Vec<Person> = (0..n).map(|i| Person::example(&format!("P{i:07}"), "Bench", &format!("Person {i}"), &format!("p{i}@example.org"))).collect();
    let started = Instant::now();
    store.import_people(people, |_| {})?;
    let import = started.elapsed();
    let target = store.create_target(&TargetInput {
        name: "Contacts".into(),
        plugin: plugin.name().into(),
        server_id: server,
        settings: vec![("object".into(), "Contact".into()), ("external_id_field".into(), "Registry_ID__c".into())],
        enabled: true,
        scope: Scope::default(),
    })?;
    let config = EngineConfig::default();
    let workers = config.workers;
    let engine = Engine::new(store.clone(), plugins, oauth, config);
    let calls_before = emu.api_usage().0;
    let started = Instant::now();
    let run = store.start_run(target)?;
    let queued = started.elapsed();
    engine.start()?;
    engine.wake();
    let run = loop {
        let now = store.run(run.id)?;
        if now.finished_at.is_some() {
            break now;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(1800), "the run did not finish in 30 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = started.elapsed();
    let calls = emu.api_usage().0 - calls_before;
    let live = emu.live_records("Contact").len();

    println!("people                      {n}");
    println!("import (one-off)            {:.2} s", import.as_secs_f64());
    println!("queue run (one transaction) {:.0} ms", queued.as_secs_f64() * 1e3);
    println!("full reprovision            {:.2} s  ({} workers, {} failed)", took.as_secs_f64(), workers, run.failed);
    println!("people per second           {:.0}", n as f64 / took.as_secs_f64());
    println!("API calls                   {calls}  ({:.1} per 1,000 people)", calls as f64 * 1000.0 / n as f64);
    println!("Contacts in the emulator    {live}");
    if let Some(kib) = peak_rss_kib() {
        println!("peak memory (host+emulator) {:.0} MiB", kib as f64 / 1024.0);
    }
    println!("build profile               {}", if cfg!(debug_assertions) { "debug" } else { "release" });
    anyhow::ensure!(run.failed == 0 && live == n, "the run did not provision everyone: {} failed, {live} Contacts", run.failed);
    Ok(())
}

/// The process's peak resident set (Linux's VmHWM).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
