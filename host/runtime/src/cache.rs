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
    max_bytes: u64,
}

/// One cached artifact, as `plugin cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When it was last loaded or written.
    pub last_used: std::time::SystemTime,
}

/// Every artifact under a cache directory, least recently used first.
pub fn entries(dir: &Path) -> Vec<CacheEntry> {
    let mut out = Vec::new();
    for engine_dir in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(engine_dir.path()).into_iter().flatten().flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "cwasm") {
                continue;
            }
            if let Ok(meta) = file.metadata() {
                out.push(CacheEntry { path, bytes: meta.len(), last_used: meta.modified().unwrap_or(std::time::UNIX_EPOCH) });
            }
        }
    }
    out.sort_by_key(|e| e.last_used);
    out
}

/// Deletes the least recently used artifacts until the directory holds at
/// most `max_bytes` (never `keep`); returns (files removed, bytes freed).
pub fn prune(dir: &Path, max_bytes: u64, keep: Option<&Path>) -> (usize, u64) {
    let all = entries(dir);
    let mut total: u64 = all.iter().map(|e| e.bytes).sum();
    let (mut removed, mut freed) = (0, 0);
    for e in all {
        if total <= max_bytes {
            break;
        }
        if Some(e.path.as_path()) == keep {
            continue;
        }
        if std::fs::remove_file(&e.path).is_ok() {
            total -= e.bytes;
            removed += 1;
            freed += e.bytes;
        }
    }
    (removed, freed)
}

/// Marks an artifact as just used (its modification time), for LRU.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
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
        Self { dir, key, max_bytes: u64::MAX }
    }

    /// The same cache, kept under `max_bytes` by evicting the least
    /// recently used artifacts whenever one is written.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
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
            return Ok((compile(engine, wasm)?, CacheOutcome::Miss));
        };
        if let Err(why) = private_dir(self.dir.as_deref().expect("a path implies a dir")) {
            tracing::warn!(dir = %path.display(), "not using the component cache: {why}");
            return Ok((compile(engine, wasm)?, CacheOutcome::Miss));
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
                    Ok(component) => {
                        touch(&path);
                        return Ok((component, CacheOutcome::Hit));
                    }
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component"),
                },
                None => tracing::warn!(
                    path = %path.display(),
                    "discarding a cached component that is not authenticated for this plugin (copied, changed, or written without the key); compiling it again"
                ),
            }
        }
        let component = compile(engine, wasm)?;
        if let Err(e) = store(&path, &self.seal(digest, &component.serialize()?)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache the compiled component");
        }
        if let Some(dir) = &self.dir {
            let (removed, freed) = prune(dir, self.max_bytes, Some(&path));
            if removed > 0 {
                tracing::info!(removed, freed_bytes = freed, "evicted the least recently used compiled components to stay under the cache's cap");
            }
        }
        Ok((component, CacheOutcome::Miss))
    }
}

/// Compiles for this machine; a compile still running after a second says
/// so (a 14 MB component built from Python or JavaScript takes tens of
/// seconds, once).
fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = done.clone();
    let mib = wasm.len() as f64 / (1 << 20) as f64;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if !watch.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(target: "registry_plugin_runtime::compile", "compiling a plugin ({mib:.1} MB) for this machine; this happens once per plugin version…");
        }
    });
    let component = Component::new(engine, wasm);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    component
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
