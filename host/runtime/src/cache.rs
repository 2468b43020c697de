//! Precompiled components on disk, so a plugin is compiled once per engine
//! configuration and wasm file, not once per process.
//!
//! Entries live at `<dir>/<engine hash>/<wasm sha256>.cwasm`. The engine hash
//! is wasmtime's precompile compatibility hash, so a wasmtime upgrade or a
//! different configuration never loads an incompatible artifact.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized a precompiled artifact.
    Hit,
    /// Compiled (and stored, when a cache directory is set).
    Miss,
}

/// A directory of precompiled components for one engine.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// The hex SHA-256 of a wasm file, which names it in the cache.
pub fn wasm_digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl ComponentCache {
    /// A cache under `dir`, or no caching for `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// Where the artifact for the wasm with hex SHA-256 `digest` lives, if
    /// caching.
    pub fn entry_path(&self, engine: &Engine, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        // SHA-256 rather than std's DefaultHasher, whose output may change
        // between Rust releases and orphan the cache.
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Some(dir.join(engine_key).join(format!("{digest}.cwasm")))
    }

    /// Loads `wasm` (whose [`wasm_digest`] is `digest`) from the cache or
    /// compiles it (and caches the result). A cache that cannot be read or
    /// written only costs time: the component is compiled and a warning logged.
    pub fn load(&self, engine: &Engine, wasm: &[u8], digest: &str) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.entry_path(engine, digest) else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Miss));
        };
        // Read, not mmap: a file changed under a mapping would crash the
        // host (SIGBUS); a copy in memory costs well under a millisecond.
        if let Ok(bytes) = std::fs::read(&path) {
            // SAFETY: the bytes were written by `store` below from wasmtime's
            // own serialization, in a directory keyed by the engine's
            // compatibility hash; wasmtime also checks their header.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component"),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = store(&path, &component.serialize()?) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache the compiled component");
        }
        Ok((component, CacheOutcome::Miss))
    }
}

/// Feeds `Hash` output into SHA-256.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
}

/// Writes atomically (a unique temp file, then rename) so a concurrent
/// reader or a crash never sees half an artifact. Directories are private to
/// the user: their contents are loaded as native code.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
