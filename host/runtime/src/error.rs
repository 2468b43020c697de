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
    /// The embedder could not give the plugin what it asked for (a page of
    /// a batch's requests): no fault of the plugin's; worth trying again.
    #[error("the host could not read the batch's requests for it: {0}")]
    Source(String),
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

    /// The last lines of `stderr` that fit in [`Self::MAX_BYTES`] once
    /// escaped, with what looks like a credential (`Bearer …`, a value
    /// after `token`, `secret` or `password`) blanked, since this text is
    /// stored with the failure; none when nothing but whitespace was written.
    pub fn of(stderr: &str) -> Self {
        let text = stderr.trim_end();
        if text.trim().is_empty() {
            return Self(None);
        }
        let mut kept: Vec<String> = Vec::new();
        let mut size = 0;
        for line in text.lines().rev() {
            let line = crate::sanitize::sanitize(&redact(line.trim_end()), Self::MAX_BYTES);
            if size + line.len() + 1 > Self::MAX_BYTES {
                if kept.is_empty() {
                    // One very long last line: its end, on a char boundary.
                    let mut start = line.len() - Self::MAX_BYTES;
                    while !line.is_char_boundary(start) {
                        start += 1;
                    }
                    kept.push(line[start..].to_string());
                }
                break;
            }
            size += line.len() + 1;
            kept.push(line);
        }
        kept.reverse();
        while kept.first().is_some_and(|l| l.trim().is_empty()) {
            kept.remove(0);
        }
        Self(Some(kept.join("\n")))
    }

    /// The kept text, lines joined by `\n`.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// Blanks what looks like a credential in a line a plugin wrote: the word
/// after `Bearer`, and the value after a key naming a token, secret or
/// password (`access_token=…`, `"client_secret": "…"`).
fn redact(line: &str) -> String {
    const KEYS: [&str; 4] = ["token", "secret", "password", "authorization"];
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let lower = rest.to_ascii_lowercase();
        // The nearest place a credential's value starts, if any.
        let bearer = lower.find("bearer ").map(|i| i + "bearer ".len());
        let keyed = KEYS
            .iter()
            .filter_map(|k| lower.find(k).map(|i| i + k.len()))
            .filter_map(|end| {
                // The key's word (`access_token`, `client_secret`), then a
                // `:` or `=` (quotes and spaces around it), then the value.
                let after = &rest[end..];
                let word = after.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
                let sep = word.trim_start_matches(['"', '\'']).trim_start();
                if !sep.starts_with([':', '=']) {
                    return None;
                }
                let mut value = sep[1..].trim_start_matches([' ', '"', '\'']);
                if value.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")) {
                    value = &value[7..];
                }
                Some(rest.len() - value.len())
            })
            .min();
        let Some(start) = [bearer, keyed].into_iter().flatten().min() else {
            out.push_str(rest);
            break;
        };
        let value_len = rest[start..].find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '&' | ';' | '}' | ')')).unwrap_or(rest.len() - start);
        out.push_str(&rest[..start]);
        if value_len > 0 {
            out.push_str("[redacted]");
        }
        rest = &rest[start + value_len..];
        if value_len == 0 {
            // Nothing to blank here: move past this spot.
            let step = rest.chars().next().map_or(0, char::len_utf8);
            out.push_str(&rest[..step]);
            rest = &rest[step..];
        }
    }
    out
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
