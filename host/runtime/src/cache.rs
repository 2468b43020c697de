//! Precompiled components on disk, so a plugin is compiled once per engine
//! configuration and wasm file, not once per process.
//!
//! Entries live at `<dir>/<engine hash>/<wasm sha256>.cwasm`. The engine hash
//! is wasmtime's precompile compatibility hash, so a wasmtime upgrade or a
//! different configuration never loads an incompatible artifact.
//!
//! An artifact is native code, loaded without wasmtime checking it, so it is
//! authenticated: each file carries an HMAC-SHA256, under the cache's key,
//! over the wasm's digest and the artifact. A file that fails (copied under
//! another plugin's digest, edited, written by someone without the key) is
//! never loaded: the component is compiled again, with a warning. A cache
//! directory another user owns, or that others may write to, is not used.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// What an authenticated artifact file starts with, before its MAC.
const MAGIC: &[u8; 8] = b"RHCWASM1";
const MAC_LEN: usize = 32;
use wasmtime::component::Component;

/// Whether a load was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized a precompiled artifact.
    Hit,
    /// Compiled (and stored, when a cache directory is set).
    Miss,
}

/// A directory of precompiled components for one engine, and the key that
/// authenticates them.
#[derive(Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    key: [u8; 32],
}

impl std::fmt::Debug for ComponentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentCache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The hex SHA-256 of a wasm file, which names it in the cache.
pub fn wasm_digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl ComponentCache {
    /// A cache under `dir` whose artifacts are authenticated with `key`,
    /// or no caching for `None`.
    pub fn new(dir: Option<PathBuf>, key: [u8; 32]) -> Self {
        Self { dir, key }
    }

    fn mac(&self, digest: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(digest.as_bytes());
        mac.update(&[0]);
        mac.update(artifact);
        mac
    }

    /// The artifact inside `file` if its MAC checks out for `digest`.
    fn open<'a>(&self, digest: &str, file: &'a [u8]) -> Option<&'a [u8]> {
        let rest = file.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < MAC_LEN {
            return None;
        }
        let (tag, artifact) = rest.split_at(MAC_LEN);
        self.mac(digest, artifact).verify_slice(tag).ok().map(|()| artifact)
    }

    fn seal(&self, digest: &str, artifact: &[u8]) -> Vec<u8> {
        let tag = self.mac(digest, artifact).finalize().into_bytes();
        let mut out = Vec::with_capacity(MAGIC.len() + MAC_LEN + artifact.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&tag);
        out.extend_from_slice(artifact);
        out
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
        if let Err(why) = private_dir(self.dir.as_deref().expect("a path implies a dir")) {
            tracing::warn!(dir = %path.display(), "not using the component cache: {why}");
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Miss));
        }
        // Read, not mmap: a file changed under a mapping would crash the
        // host (SIGBUS); a copy in memory costs well under a millisecond.
        if let Ok(bytes) = std::fs::read(&path) {
            match self.open(digest, &bytes) {
                // SAFETY: the MAC proves the bytes are an artifact this
                // cache's key holder wrote for this very wasm, from
                // wasmtime's own serialization, in a directory keyed by the
                // engine's compatibility hash; wasmtime also checks the header.
                Some(artifact) => match unsafe { Component::deserialize(engine, artifact) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component"),
                },
                None => tracing::warn!(
                    path = %path.display(),
                    "discarding a cached component that is not authenticated for this plugin (copied, changed, or written without the key); compiling it again"
                ),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = store(&path, &self.seal(digest, &component.serialize()?)) {
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

/// Refuses a cache directory that another user owns or that others may
/// write to: whoever can write there chooses the native code we run.
#[cfg(unix)]
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        // Not there yet: `store` creates it, private.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{} belongs to another user (uid {})", dir.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{} is writable by others (mode {:o}); make it 0700", dir.display(), meta.mode() & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_dir(_: &Path) -> Result<(), String> {
    Ok(())
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
