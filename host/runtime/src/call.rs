//! One call: a fresh [`Store`] whose [`HostState`] carries the WASI context
//! (granting nothing), the HTTP hooks with the call's allowlist, the memory
//! limiter and the captured output; the deadline; and the classification of
//! whatever stopped the call into a [`Failure`].

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::contract::v0_1_0::Convert;
use crate::contract::{latest, v0_1_0};
use crate::engine::RuntimeConfig;
use crate::error::{CallError, Failure, StderrTail};
use crate::http::policy::{HttpAllowlist, SandboxHooks};
use crate::limits::{CappedOutput, MemoryLimiter};
use crate::plugin::{Instance, Pre, Sandboxed};
use crate::sanitize::sanitize;

/// How much of a plugin's stdout/stderr a call keeps (for panic messages and
/// the log); the rest is dropped.
const OUTPUT_CAPTURE_BYTES: usize = 16 * 1024;

/// Longest log line a plugin may write; the rest is cut.
const MAX_LOG_LINE: usize = 4 * 1024;

/// Log lines one call may write; later ones are dropped (and counted).
const MAX_LOG_LINES: usize = 200;

/// Resource handles (requests, bodies, streams, ...) a call may hold at
/// once. A real plugin holds a few dozen; with [`MAX_HEADER_BYTES`] this
/// bounds header memory to 16 MiB a call.
pub(crate) const MAX_RESOURCES: usize = 1024;

/// Bytes of headers (names and values) one `fields` resource may hold.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Bytes the host copies out of the guest for one call's results (or one
/// call from the guest to the host): strings and lists may alias one
/// region of guest memory, so without a bound a 64 MiB guest could make
/// the host allocate far more.
pub(crate) const MAX_TRANSFER_BYTES: usize = 16 << 20;

/// State of one call's store.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
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

impl HostState {
    fn log(&mut self, level: latest::log::Level, message: &str) {
        use latest::log::Level;
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let message = sanitize(message, MAX_LOG_LINE);
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl latest::log::Host for HostState {
    async fn log(&mut self, level: latest::log::Level, message: String) {
        HostState::log(self, level, &message);
    }
}

impl v0_1_0::log::Host for HostState {
    async fn log(&mut self, level: v0_1_0::log::Level, message: String) {
        HostState::log(self, level.convert(), &message);
    }
}

impl Sandboxed {
    /// Runs `f` against a fresh instance in a fresh store, under the memory
    /// cap, the deadline and `allowlist`. Every way the call can fail comes
    /// back as a [`CallError`] naming the plugin and `export`.
    pub(crate) async fn call<R>(
        &self,
        export: &'static str,
        allowlist: &HttpAllowlist,
        f: impl AsyncFnOnce(&Instance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let inner = &self.runtime.inner;
        let config = &inner.config;
        // With a pool, wait for a free slot rather than fail to instantiate;
        // the deadline starts once the call has one.
        let _slot = match &inner.slots {
            Some(slots) => Some(slots.clone().acquire_owned().await.expect("the semaphore is never closed")),
            None => None,
        };
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
        let hooks = SandboxHooks::new(self.name.clone(), allowlist.clone(), config.max_http_requests, inner.sender.clone())
            .insecure_loopback(config.insecure_loopback);
        let mut store = Store::new(
            &inner.engine,
            HostState {
                plugin: self.name.clone(),
                wasi,
                http,
                table,
                hooks,
                limiter: MemoryLimiter::new(config.memory_limit),
                stdout,
                stderr,
                log_lines: 0,
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(MAX_TRANSFER_BYTES);
        let deadline = Instant::now() + config.deadline;
        store.set_epoch_deadline(1);
        // Yield to the executor every tick so a busy plugin never starves
        // other tasks; stop it once the deadline has passed.
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });

        let run = async {
            let instance = match &self.pre {
                Pre::V0_1_0(pre) => Instance::V0_1_0(pre.instantiate_async(&mut store).await.map_err(Stage::Instantiate)?),
                Pre::V0_2_0(pre) => Instance::V0_2_0(pre.instantiate_async(&mut store).await.map_err(Stage::Instantiate)?),
            };
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
    if let Some(e) = error.downcast_ref::<crate::batch::SourceError>() {
        return Failure::Source(e.0.clone());
    }
    if let Some(e) = error.downcast_ref::<crate::batch::ReadLimit>() {
        return Failure::Limit(e.0.clone());
    }
    if let Some(denied) = state.hooks.first_denied() {
        return Failure::HttpDenied(denied.clone());
    }
    if let Some(requested) = state.limiter.refused() {
        if state.limiter.refused_initial() {
            return Failure::InitialMemory { limit: config.memory_limit, requested };
        }
        return Failure::MemoryLimit { limit: config.memory_limit, requested };
    }
    if let Some(requested) = state.limiter.tables_refused() {
        return Failure::Limit(format!("it tried to grow its tables to {requested} elements in all, beyond the limit of {}", crate::limits::MAX_TABLE_ELEMENTS));
    }
    // Limits wasmtime enforces itself, known by their messages.
    let text = format!("{error:#}");
    if text.contains("resource table has no free keys") {
        return Failure::Limit(format!("it held more than {MAX_RESOURCES} resources (requests, headers, streams) at once"));
    }
    if text.contains("total size of fields exceeds limit") {
        return Failure::Limit(format!("it put more than {} KiB of headers in one header map", MAX_HEADER_BYTES >> 10));
    }
    if text.contains("fuel allocated for hostcalls has been exhausted") {
        return Failure::Limit(format!("it handed the host more than {} MiB of data in one go", MAX_TRANSFER_BYTES >> 20));
    }
    if instantiating {
        return Failure::Instantiate(format!("{error:#}"));
    }
    match panic_message(stderr) {
        Some((message, before)) => Failure::Panic { message, stderr: StderrTail::of(before) },
        None => Failure::Trap { reason: trap_summary(&error), stderr: StderrTail::of(stderr) },
    }
}

/// Pulls the message out of Rust's panic report ("thread '..' panicked at
/// file:line:col:\nmessage"), with what was written before the report
/// (a language runtime's traceback, when the panic is its way to trap).
fn panic_message(stderr: &str) -> Option<(String, &str)> {
    let at = stderr.rfind("panicked at ")?;
    let before = stderr[..at].rfind('\n').map_or("", |line_start| &stderr[..line_start]);
    let report = &stderr[at + "panicked at ".len()..];
    let (location, rest) = report.split_once('\n').unwrap_or((report, ""));
    let message = rest.lines().next().unwrap_or("").trim();
    let location = location.trim_end_matches(':');
    let text = if message.is_empty() { location.to_string() } else { format!("{message} (at {location})") };
    Some((sanitize(&text, 1024), before))
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
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:58:9:\nhostile fixture panicked on purpose\nnote: run with `RUST_BACKTRACE=1`\n";
        let (message, before) = panic_message(stderr).unwrap();
        assert_eq!(message, "hostile fixture panicked on purpose (at src/lib.rs:58:9)");
        assert_eq!(StderrTail::of(before), StderrTail::default(), "nothing came before the report");
        assert_eq!(panic_message("just some output"), None);
    }

    /// componentize-py traps on an uncaught exception by panicking in its
    /// runtime, after printing the traceback: the traceback is the news.
    #[test]
    fn a_language_runtime_panic_keeps_what_came_before_it() {
        let stderr = "Traceback (most recent call last):\n  File \"app.py\", line 3, in validate_settings\nKeyError: 'send_email'\n\nthread '<unnamed>' panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1`\n";
        let (message, before) = panic_message(stderr).unwrap();
        assert_eq!(message, "Python function threw an unexpected exception (at runtime/src/lib.rs:1293:29)");
        let shown = Failure::Panic { message, stderr: StderrTail::of(before) }.to_string();
        assert_eq!(
            shown,
            "it panicked: Python function threw an unexpected exception (at runtime/src/lib.rs:1293:29); its stderr ended with:\n  | Traceback (most recent call last):\n  |   File \"app.py\", line 3, in validate_settings\n  | KeyError: 'send_email'"
        );
    }

    #[test]
    fn a_stderr_tail_is_bounded_cut_at_a_line_and_cannot_forge_lines() {
        let long: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let tail = StderrTail::of(&long);
        let text = tail.text().unwrap();
        assert!(text.len() <= StderrTail::MAX_BYTES, "{}", text.len());
        assert!(text.starts_with("line ") && text.ends_with("line 499"), "{text}");
        let hostile = StderrTail::of("Error: boom\r2026-12-01 INFO forged\u{1b}[31m");
        assert_eq!(hostile.to_string(), "; its stderr ended with:\n  | Error: boom\\r2026-12-01 INFO forged\\u{1b}[31m");
        assert_eq!(StderrTail::of("  \n\n"), StderrTail::default());
        // Escaping counts against the bound: control characters grow six-fold.
        let controls = "\u{1}".repeat(1000);
        assert!(StderrTail::of(&controls).text().unwrap().len() <= StderrTail::MAX_BYTES);
    }

    /// The tail is stored with the failure: what looks like a credential is
    /// blanked, the rest kept.
    #[test]
    fn a_stderr_tail_blanks_credentials() {
        let stderr = "POST /token with Authorization: Bearer 00Dx!AQ4.secretvalue failed\n{\"access_token\": \"00D5g!abc\", \"instance_url\": \"https://x\"}\nclient_secret=s3cr3t&client_id=3MVG9 password: hunter2\nKeyError: 'region'";
        let text = StderrTail::of(stderr).text().unwrap().to_string();
        assert_eq!(StderrTail::of("ünïcödé token: ✓✓✓ bearer").text(), Some("ünïcödé token: [redacted] bearer"), "any text, no panic");
        for secret in ["secretvalue", "00D5g!abc", "s3cr3t", "hunter2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("Bearer [redacted] failed") && text.contains("https://x") && text.contains("client_id=3MVG9") && text.ends_with("KeyError: 'region'"), "{text}");
    }
}
