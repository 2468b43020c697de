//! The engine: one wasmtime [`Engine`] per host with its linker, the
//! precompiled cache, the HTTP sender and the epoch ticker that enforces
//! deadlines; and loading a component into a [`Plugin`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::cache::{ComponentCache, wasm_digest};
use crate::call::HostState;
use crate::contract::{ContractVersion, v0_1_0, v0_2_0};
use crate::error::LoadError;
use crate::http::sender::Sender;
use crate::plugin::{LoadStats, Plugin, Pre, Sandboxed};
use crate::sanitize::sanitize;

/// How often the engine's epoch advances; the deadline's resolution and how
/// often a busy plugin yields to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits and locations for the runtime.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Linear memory cap per call, in bytes.
    pub memory_limit: usize,
    /// Wall-clock time a call may take, including its HTTP waits.
    pub deadline: Duration,
    /// Where precompiled components are kept; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Outgoing HTTP requests one call may make.
    pub max_http_requests: usize,
    /// Instances kept pre-reserved in a pool (wasmtime's pooling allocator:
    /// instantiation about twice as fast); a call beyond them waits for one
    /// to free, never refused. `None` allocates per call. Size it to the
    /// calls that run at once (see [`RuntimeConfig::pool_for`]).
    pub pooling: Option<u32>,
    /// The key that authenticates precompiled artifacts in `cache_dir` (an
    /// HMAC over each): artifacts written under another key are compiled
    /// again, never loaded. Keep it secret and stable to reuse the cache
    /// across processes; the default is random per process.
    pub cache_key: [u8; 32],
    /// The most the precompiled cache may hold on disk; the least recently
    /// used artifacts are evicted past it.
    pub cache_max_bytes: u64,
    /// Whether plugins may use plain `http://` to loopback addresses on
    /// their allowlist: only for a local emulator (demos, tests), by the
    /// operator's choice. Otherwise every request must be https, so an
    /// allowlisted loopback port cannot reach local sidecars in clear.
    pub insecure_loopback: bool,
    /// Wasmtime's copy-on-write memory images: an instance maps its
    /// component's initial memory instead of copying its data segments
    /// (our components qualify: memories of their own, data at constant
    /// offsets). On by default; off only to measure what it saves (the
    /// sandbox bench prints both).
    pub memory_init_cow: bool,
}

impl std::fmt::Debug for RuntimeConfig {
    // The cache key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("memory_limit", &self.memory_limit)
            .field("deadline", &self.deadline)
            .field("cache_dir", &self.cache_dir)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("max_http_requests", &self.max_http_requests)
            .field("pooling", &self.pooling)
            .field("insecure_loopback", &self.insecure_loopback)
            .field("memory_init_cow", &self.memory_init_cow)
            .finish_non_exhaustive()
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_limit: 64 << 20,
            deadline: Duration::from_secs(10),
            cache_dir: None,
            max_http_requests: 256,
            pooling: None,
            cache_key: random_key(),
            cache_max_bytes: 1 << 30,
            insecure_loopback: false,
            memory_init_cow: true,
        }
    }
}

impl RuntimeConfig {
    /// Pool slots for `workers` concurrent provisioning calls, plus room for
    /// the calls an admin's pages and commands make meanwhile.
    pub fn pool_for(workers: usize) -> u32 {
        u32::try_from(workers).unwrap_or(u32::MAX).saturating_add(UI_CALLS)
    }
}

/// Calls besides the provisioning workers' that the pool makes room for
/// (Test Connection, a preview, a settings check, loading a plugin).
const UI_CALLS: u32 = 8;

/// The host's plugin runtime. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) cache: ComponentCache,
    pub(crate) config: RuntimeConfig,
    pub(crate) sender: Sender,
    /// One permit per pool slot: a call holds one while its instance lives.
    pub(crate) slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true);
        wasm_config.memory_init_cow(config.memory_init_cow);
        let engine = match config.pooling {
            None => Engine::new(&wasm_config)?,
            // Where the kernel can say which pages a call dirtied (Linux's
            // PAGEMAP_SCAN, 6.7 on), a freed slot resets just those pages
            // in place and stays resident: no madvise, no TLB shootdown, no
            // page faults on the next call (instantiate + a trivial call
            // 31 -> 14 µs here). Elsewhere resetting a resident region means
            // copying all of it, which costs more than it saves.
            Some(slots) => match Engine::new(wasm_config.clone().allocation_strategy(pool(slots, true))) {
                Ok(engine) => engine,
                Err(_) => Engine::new(wasm_config.allocation_strategy(pool(slots, false)))?,
            },
        };

        let mut linker = Linker::new(&engine);
        // Rust's std (and most languages' runtimes) import wasi:cli, io,
        // clocks, random and filesystem; they are linked but the context
        // grants nothing: no preopens, no env, no args, no sockets.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        // Every contract version's `log` import; their names differ by version.
        v0_1_0::log::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        v0_2_0::log::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        v0_2_0::batch_input::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;

        spawn_epoch_ticker(&engine);
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache: ComponentCache::new(config.cache_dir.clone(), config.cache_key).with_max_bytes(config.cache_max_bytes),
                slots: config.pooling.map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
                config,
                sender: Sender::new(),
            }),
        })
    }

    /// The wasmtime engine (for benchmarks and tools).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// What the plugins' HTTP requests have cost so far (see
    /// [`HttpStats`](crate::http::sender::HttpStats)).
    pub fn http_stats(&self) -> crate::http::sender::HttpStats {
        self.inner.sender.stats()
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Loads a plugin from a `.wasm` component file.
    pub async fn load_file(&self, path: &Path) -> Result<Plugin, LoadError> {
        let wasm = std::fs::read(path).map_err(|error| LoadError::Read { path: path.to_path_buf(), error })?;
        self.load(&path.display().to_string(), &wasm).await
    }

    /// Loads a plugin from component bytes; `origin` names it in errors
    /// until it has described itself. A component of any version in
    /// [`ContractVersion::ALL`] loads.
    pub async fn load(&self, origin: &str, wasm: &[u8]) -> Result<Plugin, LoadError> {
        let started = Instant::now();
        // Compiling takes a CPU for a while: keep it off the async workers.
        let digest = wasm_digest(wasm);
        let (engine, cache, bytes, key) =
            (self.inner.engine.clone(), self.inner.cache.clone(), wasm.to_vec(), digest.clone());
        let compiled = tokio::task::spawn_blocking(move || cache.load(&engine, &bytes, &key))
            .await
            .map_err(|e| LoadError::Compile { origin: origin.to_string(), message: e.to_string() })?;
        let (component, cache) =
            compiled.map_err(|e| LoadError::Compile { origin: origin.to_string(), message: format!("{e:#}") })?;
        let compiled = started.elapsed();
        let contract = ContractVersion::of(&self.inner.engine, &component)
            .map_err(|message| LoadError::Contract { origin: origin.to_string(), contract: None, message })?;
        let mismatch = |e: wasmtime::Error| LoadError::Contract {
            origin: origin.to_string(),
            contract: Some(contract),
            message: format!("{e:#}"),
        };
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(mismatch)?;
        let pre = match contract {
            ContractVersion::V0_1_0 => Pre::V0_1_0(v0_1_0::ProvisionerPre::new(instance_pre).map_err(mismatch)?),
            ContractVersion::V0_2_0 => Pre::V0_2_0(v0_2_0::ProvisionerPre::new(instance_pre).map_err(mismatch)?),
        };
        let mut sandbox = Sandboxed { runtime: self.clone(), name: Arc::from(sanitize(origin, 256)), pre };
        let metadata =
            sandbox.describe().await.map_err(|call| LoadError::Info { origin: origin.to_string(), call })?;
        if !is_valid_name(&metadata.name) {
            return Err(LoadError::Contract {
                origin: origin.to_string(),
                contract: Some(contract),
                message: format!(
                    "its name {:?} must be 1 to 64 lower-case letters, digits and dashes, starting with a letter or digit",
                    sanitize(&metadata.name, 80)
                ),
            });
        }
        sandbox.name = Arc::from(metadata.name.as_str());
        tracing::info!(plugin = %sandbox.name, origin, %contract, cache = ?cache, ?compiled, "plugin loaded");
        Ok(Plugin::new(sandbox, digest, wasm.len(), LoadStats { cache, compile_or_deserialize: compiled }, metadata))
    }
}

/// Bytes of each linear memory (and of each table) a freed pool slot keeps
/// resident: what a typical call dirties (a Rust plugin's stack and data,
/// about 1.2 MiB), not what a large batch grows to.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
const KEEP_RESIDENT_TABLE: usize = 1 << 20;

/// The pooling allocator for `slots` concurrent calls. The memory cap is the
/// store's limiter's to enforce, with or without a pool, so a plugin that
/// needs more to start gets the same error either way (a pool's own size
/// check would refuse it at load with wasmtime's words); the pool's slots
/// keep wasmtime's default size.
fn pool(slots: u32, resident: bool) -> wasmtime::InstanceAllocationStrategy {
    // A component instantiates a few core modules (the guest and the WASI
    // adapter pieces); the limits leave room for that per slot.
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 4)
        .total_tables(slots * 16)
        .total_stacks(slots);
    if resident {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
    }
    wasmtime::InstanceAllocationStrategy::Pooling(pool)
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS has randomness");
    key
}

/// Plugin names appear in every log line and error; keep them plain.
fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch ticker thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_plain() {
        for good in ["salesforce", "hostile-loop-forever", "x1"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "Salesforce", "-x", "a b", "salesforce\nINFO forged", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
