//! How plugin failures are reported. A [`CallError`] always names the plugin,
//! the export called and the reason, so an admin reading a log line or a
//! provisioning history knows what happened without a debugger.

use std::path::PathBuf;
use std::time::Duration;

use crate::http::policy::DeniedRequest;

/// A call into a plugin that did not complete. The plugin's own typed errors
/// (the WIT `plugin-error`) are not this: they are a completed call's result.
#[derive(Debug, thiserror::Error)]
#[error("plugin '{plugin}' failed in {export}: {failure}")]
pub struct CallError {
    /// The plugin's name.
    pub plugin: String,
    /// The WIT export called, e.g. `provisioning-target.provision`.
    pub export: &'static str,
    /// What went wrong.
    pub failure: Failure,
}

/// Why a call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Ran past the wall-clock deadline and was stopped.
    #[error("it ran past its {0:?} deadline and was stopped")]
    Timeout(Duration),
    /// Needs more memory to start than the cap allows (its declared initial
    /// memory), so it was never run.
    #[error("it needs {requested} bytes of memory to start, beyond its limit of {limit} bytes, so it was not run")]
    InitialMemory {
        /// The cap in bytes.
        limit: usize,
        /// What its memories declare.
        requested: usize,
    },
    /// Tried to grow memory past the cap.
    #[error("it tried to grow its memory to {requested} bytes in all, beyond its limit of {limit} bytes, and was stopped")]
    MemoryLimit {
        /// The cap in bytes.
        limit: usize,
        /// What it asked for.
        requested: usize,
    },
    /// Went past another sandbox limit (tables, resources, data handed to
    /// the host); the text says which.
    #[error("{0}, and was stopped")]
    Limit(String),
    /// Made an HTTP request its allowlist does not permit.
    #[error("it made a forbidden HTTP request ({request}: {reason})", request = .0.request, reason = .0.reason)]
    HttpDenied(DeniedRequest),
    /// Panicked: a Rust panic, in the plugin or in a language runtime
    /// (componentize-py reports an uncaught Python exception as one).
    #[error("it panicked: {message}{stderr}")]
    Panic {
        /// The panic message and where it happened.
        message: String,
        /// What the guest wrote to stderr before the panic report (e.g. a
        /// Python traceback).
        stderr: StderrTail,
    },
    /// Any other trap: an uncaught JavaScript exception, a result of the
    /// wrong shape, an `unreachable`.
    #[error("it crashed: {reason}{stderr}")]
    Trap {
        /// wasmtime's reason, without the wasm backtrace.
        reason: String,
        /// The end of what the guest wrote to stderr (e.g. the exception and
        /// its stack).
        stderr: StderrTail,
    },
    /// Could not be instantiated for the call.
    #[error("it could not be instantiated: {0}")]
    Instantiate(String),
}

/// The end of what a plugin wrote to stderr before it trapped, bounded and
/// with control characters escaped; shown after the failure, one `|` line
/// per line written, so that an author sees their language's own error
/// (a traceback, an exception with its stack) and no line can pass for a
/// host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StderrTail(Option<String>);

impl StderrTail {
    /// Longest tail kept, in bytes: the end of a traceback is what names
    /// the error.
    pub const MAX_BYTES: usize = 2048;

    /// The last [`Self::MAX_BYTES`] of `stderr`, cut at a line start; none
    /// when nothing but whitespace was written.
    pub fn of(stderr: &str) -> Self {
        let text = stderr.trim_end();
        if text.trim().is_empty() {
            return Self(None);
        }
        let mut start = text.len().saturating_sub(Self::MAX_BYTES);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let mut tail = &text[start..];
        if start > 0 && let Some(newline) = tail.find('\n') {
            tail = &tail[newline + 1..];
        }
        let lines: Vec<String> = tail
            .trim_start_matches('\n')
            .lines()
            .map(|line| crate::sanitize::sanitize(line.trim_end(), Self::MAX_BYTES))
            .collect();
        Self(Some(lines.join("\n")))
    }

    /// The kept text, lines joined by `\n`.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Display for StderrTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(text) = &self.0 {
            f.write_str("; its stderr ended with:")?;
            for line in text.lines() {
                write!(f, "\n  | {line}")?;
            }
        }
        Ok(())
    }
}

/// A plugin that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in this error's text, and not also given as a
        /// source, so a report shows it once).
        error: std::io::Error,
    },
    /// Not a valid component for this host.
    #[error("{origin} is not a valid WebAssembly component: {message}")]
    Compile {
        /// File name or label.
        origin: String,
        /// wasmtime's explanation.
        message: String,
    },
    /// Targets no contract version this host knows, imports something the
    /// host does not provide, or lacks an export.
    #[error("{origin} does not fit the {} contract: {message}", contract.map_or_else(|| crate::contract::PACKAGE.to_string(), |c| c.to_string()))]
    Contract {
        /// File name or label.
        origin: String,
        /// The version it claims, when it names one this host knows.
        contract: Option<crate::ContractVersion>,
        /// What does not match.
        message: String,
    },
    /// Its `plugin-info.info` call failed.
    #[error("{origin} could not describe itself: {call}")]
    Info {
        /// File name or label.
        origin: String,
        /// The failed call (its text is in this error's: it is not also
        /// given as a source, so a report shows it once).
        call: CallError,
    },
}
