//! The plugin runtime: one wasmtime [`Engine`] per host, plugins compiled
//! once (and cached precompiled), pre-instantiated once, and a fresh
//! [`Store`] per call with its own memory cap, deadline and HTTP allowlist.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::registry::provisioning::log;
use crate::bindings::{Provisioner, ProvisionerPre, oauth2_server, plugin_info, provisioning_target, types};
use crate::cache::{CacheOutcome, ComponentCache, wasm_digest};
use crate::error::{CallError, Failure, LoadError};
use crate::http_policy::{HttpAllowlist, SandboxHooks};
use crate::limits::{CappedOutput, MemoryLimiter};
use crate::sanitize::sanitize;

/// How often the engine's epoch advances; the deadline's resolution and how
/// often a busy plugin yields to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a plugin's stdout/stderr a call keeps (for panic messages and
/// the log); the rest is dropped.
const OUTPUT_CAPTURE_BYTES: usize = 16 * 1024;

/// Longest log line a plugin may write; the rest is cut.
const MAX_LOG_LINE: usize = 4 * 1024;

/// Log lines one call may write; later ones are dropped (and counted).
const MAX_LOG_LINES: usize = 200;

/// Resource handles (requests, bodies, streams, ...) a call may hold at once.
const MAX_RESOURCES: usize = 4096;

/// Bytes of headers one `fields` resource may hold.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What `provision-batch` returns: one result per request, or an error for
/// the whole batch.
pub type BatchResult = Result<Vec<Result<provisioning_target::ProvisionOutcome, types::PluginError>>, types::PluginError>;

/// Limits and locations for the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Linear memory cap per call, in bytes.
    pub memory_limit: usize,
    /// Wall-clock time a call may take, including its HTTP waits.
    pub deadline: Duration,
    /// Where precompiled components are kept; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Outgoing HTTP requests one call may make.
    pub max_http_requests: usize,
    /// Calls that may run at once with instances from a pre-reserved pool
    /// (wasmtime's pooling allocator); `None` allocates per call.
    pub pooling: Option<u32>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_limit: 64 << 20,
            deadline: Duration::from_secs(10),
            cache_dir: None,
            max_http_requests: 256,
            pooling: None,
        }
    }
}

/// State of one call's store.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: SandboxHooks,
    limiter: MemoryLimiter,
    stdout: CappedOutput,
    stderr: CappedOutput,
    log_lines: usize,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let message = sanitize(&message, MAX_LOG_LINE);
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// The host's plugin runtime. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    config: RuntimeConfig,
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true);
        if let Some(slots) = config.pooling {
            // A component instantiates a few core modules (the guest and the
            // WASI adapter pieces); the limits leave room for that per slot.
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_component_instances(slots)
                .total_core_instances(slots * 16)
                .total_memories(slots * 4)
                .total_tables(slots * 16)
                .total_stacks(slots)
                .max_memory_size(config.memory_limit.max(1 << 16));
            wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm_config)?;

        let mut linker = Linker::new(&engine);
        // Rust's std (and most languages' runtimes) import wasi:cli, io,
        // clocks, random and filesystem; they are linked but the context
        // grants nothing: no preopens, no env, no args, no sockets.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        log::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)?;

        spawn_epoch_ticker(&engine);
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache: ComponentCache::new(config.cache_dir.clone()),
                config,
            }),
        })
    }

    /// The wasmtime engine (for benchmarks and tools).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Loads a plugin from a `.wasm` component file.
    pub async fn load_file(&self, path: &Path) -> Result<Plugin, LoadError> {
        let wasm = std::fs::read(path)
            .map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        self.load(&path.display().to_string(), &wasm).await
    }

    /// Loads a plugin from component bytes; `origin` names it in errors
    /// until it has described itself.
    pub async fn load(&self, origin: &str, wasm: &[u8]) -> Result<Plugin, LoadError> {
        let started = Instant::now();
        // Compiling takes a CPU for a while: keep it off the async workers.
        let digest = wasm_digest(wasm);
        let (engine, cache, bytes, key) =
            (self.inner.engine.clone(), self.inner.cache.clone(), wasm.to_vec(), digest.clone());
        let compiled = tokio::task::spawn_blocking(move || cache.load(&engine, &bytes, &key))
            .await
            .map_err(|e| LoadError::Compile { origin: origin.to_string(), message: e.to_string() })?;
        let (component, cache) = compiled.map_err(|e| LoadError::Compile {
            origin: origin.to_string(),
            message: format!("{e:#}"),
        })?;
        let compiled = started.elapsed();
        let contract = |e: wasmtime::Error| LoadError::Contract {
            origin: origin.to_string(),
            message: format!("{e:#}"),
        };
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(contract)?;
        let pre = ProvisionerPre::new(instance_pre).map_err(contract)?;
        let mut sandbox = Sandboxed { runtime: self.clone(), name: Arc::from(sanitize(origin, 256)), pre };
        let metadata = describe(&sandbox)
            .await
            .map_err(|source| LoadError::Info { origin: origin.to_string(), source })?;
        if !is_valid_name(&metadata.name) {
            return Err(LoadError::Contract {
                origin: origin.to_string(),
                message: format!(
                    "its name {:?} must be 1 to 64 lower-case letters, digits and dashes, starting with a letter or digit",
                    sanitize(&metadata.name, 80)
                ),
            });
        }
        sandbox.name = Arc::from(metadata.name.as_str());
        tracing::info!(plugin = %sandbox.name, origin, cache = ?cache, ?compiled, "plugin loaded");
        Ok(Plugin {
            sandbox,
            digest,
            size: wasm.len(),
            load: LoadStats { cache, compile_or_deserialize: compiled },
            metadata,
        })
    }
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

/// How a plugin's component was obtained.
#[derive(Debug, Clone, Copy)]
pub struct LoadStats {
    /// From the precompiled cache, or compiled.
    pub cache: CacheOutcome,
    /// Time to compile or deserialize.
    pub compile_or_deserialize: Duration,
}

/// A loaded plugin, ready to call. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    sandbox: Sandboxed,
    digest: String,
    size: usize,
    load: LoadStats,
    metadata: plugin_info::PluginMetadata,
}

/// A pre-instantiated component and what it takes to call it sandboxed;
/// exists before the plugin has described itself.
#[derive(Clone)]
struct Sandboxed {
    runtime: Runtime,
    name: Arc<str>,
    pre: ProvisionerPre<HostState>,
}

/// `plugin-info.info`, needed both to load a plugin and to ask it again.
async fn describe(sandbox: &Sandboxed) -> Result<plugin_info::PluginMetadata, CallError> {
    sandbox
        .call("plugin-info.info", &HttpAllowlist::none(), async |p, s| {
            p.registry_provisioning_plugin_info().call_info(s).await
        })
        .await
}

impl Plugin {
    /// The plugin's name as it describes itself.
    pub fn name(&self) -> &str {
        &self.sandbox.name
    }

    /// What the plugin said about itself when loaded.
    pub fn metadata(&self) -> &plugin_info::PluginMetadata {
        &self.metadata
    }

    /// SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How the component was loaded.
    pub fn load_stats(&self) -> LoadStats {
        self.load
    }

    /// Runs `f` against a fresh instance in a fresh store, under the memory
    /// cap, the deadline and `allowlist`. Every way the call can fail comes
    /// back as a [`CallError`] naming the plugin and `export`.
    pub async fn call<R>(
        &self,
        export: &'static str,
        allowlist: &HttpAllowlist,
        f: impl AsyncFnOnce(&Provisioner, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.sandbox.call(export, allowlist, f).await
    }

    /// Target settings as calls get them: blank values dropped and the
    /// plugin's declared defaults filled in for whatever is missing.
    pub fn settings_with_defaults(&self, values: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = values.iter().filter(|(_, v)| !v.trim().is_empty()).cloned().collect();
        for s in &self.metadata().settings {
            if let Some(d) = &s.default_value
                && !out.iter().any(|(n, _)| *n == s.name)
            {
                out.push((s.name.clone(), d.clone()));
            }
        }
        out
    }

    /// `plugin-info.info`.
    pub async fn info(&self) -> Result<plugin_info::PluginMetadata, CallError> {
        describe(&self.sandbox).await
    }

    /// `provisioning-target.validate-settings`.
    pub async fn validate_settings(
        &self,
        settings: &[(String, String)],
        allowlist: &HttpAllowlist,
    ) -> Result<Result<(), Vec<types::FieldError>>, CallError> {
        let settings = settings.to_vec();
        self.call("provisioning-target.validate-settings", allowlist, async |p, s| {
            p.registry_provisioning_provisioning_target().call_validate_settings(s, &settings).await
        })
        .await
    }

    /// `provisioning-target.provision`.
    pub async fn provision(
        &self,
        context: &provisioning_target::TargetContext,
        request: &provisioning_target::ProvisionRequest,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<provisioning_target::ProvisionOutcome, types::PluginError>, CallError> {
        self.call("provisioning-target.provision", allowlist, async |p, s| {
            p.registry_provisioning_provisioning_target().call_provision(s, context, request).await
        })
        .await
    }

    /// `provisioning-target.provision-batch`.
    pub async fn provision_batch(
        &self,
        context: &provisioning_target::TargetContext,
        requests: &[provisioning_target::ProvisionRequest],
        allowlist: &HttpAllowlist,
    ) -> Result<BatchResult, CallError> {
        self.call("provisioning-target.provision-batch", allowlist, async |p, s| {
            p.registry_provisioning_provisioning_target().call_provision_batch(s, context, requests).await
        })
        .await
    }

    /// `oauth2-server.authorization-url`.
    pub async fn authorization_url(
        &self,
        config: &types::Oauth2ServerConfig,
        request: &oauth2_server::AuthorizationRequest,
    ) -> Result<Result<String, types::PluginError>, CallError> {
        self.call("oauth2-server.authorization-url", &HttpAllowlist::none(), async |p, s| {
            p.registry_provisioning_oauth2_server().call_authorization_url(s, config, request).await
        })
        .await
    }

    /// `oauth2-server.exchange-code`; `allowlist` should name the server's host.
    pub async fn exchange_code(
        &self,
        config: &types::Oauth2ServerConfig,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.call("oauth2-server.exchange-code", allowlist, async |p, s| {
            p.registry_provisioning_oauth2_server().call_exchange_code(s, config, code, redirect_uri, code_verifier).await
        })
        .await
    }

    /// `oauth2-server.refresh`.
    pub async fn refresh(
        &self,
        config: &types::Oauth2ServerConfig,
        tokens: &types::TokenSet,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.call("oauth2-server.refresh", allowlist, async |p, s| {
            p.registry_provisioning_oauth2_server().call_refresh(s, config, tokens).await
        })
        .await
    }

    /// `oauth2-server.client-credentials`.
    pub async fn client_credentials(
        &self,
        config: &types::Oauth2ServerConfig,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.call("oauth2-server.client-credentials", allowlist, async |p, s| {
            p.registry_provisioning_oauth2_server().call_client_credentials(s, config).await
        })
        .await
    }

    /// `oauth2-server.revoke`.
    pub async fn revoke(
        &self,
        config: &types::Oauth2ServerConfig,
        tokens: &types::TokenSet,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<(), types::PluginError>, CallError> {
        self.call("oauth2-server.revoke", allowlist, async |p, s| {
            p.registry_provisioning_oauth2_server().call_revoke(s, config, tokens).await
        })
        .await
    }

    /// `oauth2-server.check-connection`; `allowlist` should name the server's
    /// host and the tokens' instance host.
    pub async fn check_connection(
        &self,
        config: &types::Oauth2ServerConfig,
        tokens: &types::TokenSet,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<oauth2_server::ConnectionInfo, types::PluginError>, CallError> {
        self.call("oauth2-server.check-connection", allowlist, async |p, s| {
            p.registry_provisioning_oauth2_server().call_check_connection(s, config, tokens).await
        })
        .await
    }
}

impl Sandboxed {
    async fn call<R>(
        &self,
        export: &'static str,
        allowlist: &HttpAllowlist,
        f: impl AsyncFnOnce(&Provisioner, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let config = &self.runtime.inner.config;
        let stdout = CappedOutput::new(OUTPUT_CAPTURE_BYTES);
        let stderr = CappedOutput::new(OUTPUT_CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_HEADER_BYTES);
        let mut store = Store::new(
            &self.runtime.inner.engine,
            HostState {
                plugin: self.name.clone(),
                wasi,
                http,
                table,
                hooks: SandboxHooks::new(self.name.clone(), allowlist.clone(), config.max_http_requests),
                limiter: MemoryLimiter::new(config.memory_limit),
                stdout,
                stderr,
                log_lines: 0,
            },
        );
        store.limiter(|s| &mut s.limiter);
        let deadline = Instant::now() + config.deadline;
        store.set_epoch_deadline(1);
        // Yield to the executor every tick so a busy plugin never starves
        // other tasks; stop it once the deadline has passed.
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });

        let pre = &self.pre;
        let run = async {
            let instance = pre.instantiate_async(&mut store).await.map_err(Stage::Instantiate)?;
            f(&instance, &mut store).await.map_err(Stage::Call)
        };
        // The epoch stops wasm code; the timeout also covers time spent
        // waiting on the host (e.g. a slow HTTP response).
        let outcome = tokio::time::timeout(config.deadline, run).await;

        let state = store.data();
        let plugin = &*self.name;
        let output = state.stderr.contents();
        for (stream, text) in [("stdout", state.stdout.contents()), ("stderr", output.clone())] {
            if !text.trim().is_empty() {
                let text = sanitize(text.trim_end(), OUTPUT_CAPTURE_BYTES);
                tracing::info!(plugin, export, stream, output = %text, "plugin wrote output");
            }
        }
        if state.log_lines > MAX_LOG_LINES {
            tracing::warn!(plugin, export, dropped = state.log_lines - MAX_LOG_LINES, "plugin logged too much; lines dropped");
        }
        let failure = match outcome {
            Ok(Ok(value)) => match state.hooks.first_denied() {
                // A refused request is a sandbox violation even if the plugin
                // coped with the error it got.
                Some(denied) => Failure::HttpDenied(denied.clone()),
                None => return Ok(value),
            },
            Err(_elapsed) => Failure::Timeout(config.deadline),
            Ok(Err(stage)) => classify(stage, state, config, &output),
        };
        let error = CallError { plugin: self.name.to_string(), export, failure };
        tracing::warn!(plugin, export, error = %error, "plugin call failed");
        Err(error)
    }
}

/// Where a call failed before classification.
enum Stage {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

fn classify(stage: Stage, state: &HostState, config: &RuntimeConfig, stderr: &str) -> Failure {
    let (error, instantiating) = match stage {
        Stage::Instantiate(e) => (e, true),
        Stage::Call(e) => (e, false),
    };
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Failure::Timeout(config.deadline);
    }
    if let Some(denied) = state.hooks.first_denied() {
        return Failure::HttpDenied(denied.clone());
    }
    if let Some(requested) = state.limiter.refused() {
        return Failure::MemoryLimit { limit: config.memory_limit, requested };
    }
    if instantiating {
        return Failure::Instantiate(format!("{error:#}"));
    }
    match panic_message(stderr) {
        Some(message) => Failure::Panic(message),
        None => Failure::Trap(trap_summary(&error)),
    }
}

/// Pulls the message out of Rust's panic report ("thread '..' panicked at
/// file:line:col:\nmessage").
fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.find("panicked at ")?;
    let report = &stderr[at + "panicked at ".len()..];
    let (location, rest) = report.split_once('\n').unwrap_or((report, ""));
    let message = rest.lines().next().unwrap_or("").trim();
    let location = location.trim_end_matches(':');
    let text = if message.is_empty() { location.to_string() } else { format!("{message} (at {location})") };
    Some(sanitize(&text, 1024))
}

/// The trap's reason without the wasm backtrace.
fn trap_summary(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.to_string(),
    }
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

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:58:9:\nhostile fixture panicked on purpose\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("hostile fixture panicked on purpose (at src/lib.rs:58:9)")
        );
        assert_eq!(panic_message("just some output"), None);
    }
}
