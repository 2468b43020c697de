//! Secrets at rest: XChaCha20-Poly1305 (authenticated) with a random 192-bit
//! nonce per value, bound to where the value lives (the associated data), so
//! a ciphertext copied into another column or row does not decrypt.
//!
//! The key comes from `REGISTRY_HOST_SECRET_KEY` (base64 of 32 bytes) or from
//! `<data dir>/secret.key`, created with mode 0600 on first start.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// `n` random bytes from the OS, URL-safe base64 without padding: state
/// values, PKCE verifiers, passwords and tokens.
pub fn random(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A random bearer token (sessions, API tokens).
pub fn random_token() -> String {
    random(32)
}

/// The SHA-256 (hex) under which a bearer token is stored.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Environment variable holding the key (base64 of 32 random bytes).
pub const KEY_ENV: &str = "REGISTRY_HOST_SECRET_KEY";
/// Key file name inside the data directory.
pub const KEY_FILE: &str = "secret.key";
/// The next key, while a rotation is under way.
pub const NEXT_KEY_FILE: &str = "secret.key.next";
/// The database file ([`crate::store::DB_FILE`]): a key is never made anew
/// beside one, whose secrets the lost key sealed.
const DATABASE_FILE: &str = "registry.sqlite3";
const NONCE_LEN: usize = 24;

/// Why the key could not be had, or a value not opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key in the environment or file is not base64 of 32 bytes.
    #[error("{source_name} does not hold a valid key: expected base64 of 32 bytes ({detail}); generate one with `head -c32 /dev/urandom | base64`")]
    BadKey {
        /// Where the key came from.
        source_name: String,
        /// What is wrong.
        detail: String,
    },
    /// The key file could not be read or created.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The key file is readable or writable by others.
    #[error("key file {path} is open to other users (mode {mode:o}); run `chmod 600 {path}` and start again")]
    LooseKeyFile {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The data directory holds a database but its key is gone.
    #[error("{dir} holds a registry database but no {KEY_FILE}: the secrets in it were sealed with that key, and a new one would make every one of them unreadable. Restore {KEY_FILE} from a backup (or set {KEY_ENV}); to start over instead, move the database away")]
    KeyLost {
        /// The data directory.
        dir: String,
    },
    /// A key rotation stopped before it finished.
    #[error("{dir} holds {NEXT_KEY_FILE}: a key rotation stopped before it finished. Run `registry-host secrets rotate` again to finish it (it uses both keys)")]
    RotationUnfinished {
        /// The data directory.
        dir: String,
    },
    /// A shared database's key must be given: a node never makes one.
    #[error("a shared database needs the key every node uses: set {KEY_ENV} (base64 of 32 bytes; `openssl rand -base64 32` makes one for the first node), or put it in {dir}/{KEY_FILE}")]
    NoSharedKey {
        /// The data directory.
        dir: String,
    },
    /// Rotation works on the key file, not on a key from the environment.
    #[error("the key comes from {KEY_ENV}: rotation replaces the data directory's {KEY_FILE}, so it cannot rotate a key it did not store")]
    KeyInEnvironment,
    /// A stored value does not decrypt with this key (wrong key or damaged data).
    #[error("a stored secret ({0}) cannot be decrypted: the secret key changed or the database was altered")]
    Undecryptable(String),
}

/// Seals and opens secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box for a raw 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox { cipher: XChaCha20Poly1305::new(Key::from_slice(key)), key: *key }
    }

    /// The key from the environment, else from `data_dir/secret.key`
    /// (created, mode 0600, when absent).
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(v) = std::env::var(KEY_ENV) {
            return Ok(Self::new(&decode_key(&v, KEY_ENV)?));
        }
        if data_dir.join(NEXT_KEY_FILE).exists() {
            return Err(SecretError::RotationUnfinished { dir: data_dir.display().to_string() });
        }
        let path = data_dir.join(KEY_FILE);
        if let Some(key) = read_key_file(&path)? {
            return Ok(key);
        }
        if data_dir.join(DATABASE_FILE).exists() {
            return Err(SecretError::KeyLost { dir: data_dir.display().to_string() });
        }
        create_key_file(&path)
    }

    /// The key for a shared database: from the environment, else from
    /// `data_dir/secret.key`; never made here, since a key one node made
    /// for itself would lock every other node out (or, on an empty
    /// database, become the database's key unseen).
    pub fn load_shared(data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(v) = std::env::var(KEY_ENV) {
            return Ok(Self::new(&decode_key(&v, KEY_ENV)?));
        }
        read_key_file(&data_dir.join(KEY_FILE))?.ok_or_else(|| SecretError::NoSharedKey { dir: data_dir.display().to_string() })
    }

    /// Starts (or resumes) replacing the key file: the new key is written
    /// to `secret.key.next` first, so a rotation that stops half way can be
    /// run again with both keys at hand.
    pub fn begin_rotation(data_dir: &Path) -> Result<Rotation, SecretError> {
        if std::env::var_os(KEY_ENV).is_some() {
            return Err(SecretError::KeyInEnvironment);
        }
        let path = data_dir.join(KEY_FILE);
        let next = data_dir.join(NEXT_KEY_FILE);
        let old = read_key_file(&path)?.ok_or_else(|| SecretError::Io { path: path.display().to_string(), source: std::io::ErrorKind::NotFound.into() })?;
        let new = match read_key_file(&next)? {
            Some(new) => new,
            None => create_key_file(&next)?,
        };
        Ok(Rotation { old, new, path, next })
    }

    /// The key in `path`, or a new random one written there (mode 0600,
    /// synced) when there is no such file: a shared database's next key,
    /// which its operator hands to every node. Run again after a stop half
    /// way, it gives the same key.
    pub fn key_file(path: &Path) -> Result<Self, SecretError> {
        match read_key_file(path)? {
            Some(key) => Ok(key),
            None => create_key_file(path),
        }
    }

    /// A key for another purpose (`label`), derived from this one, e.g. the
    /// key that authenticates the precompiled component cache: whoever can
    /// read the data dir's secret key could write both anyway.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"registry-host derived key\0");
        h.update(label.as_bytes());
        h.update([0]);
        h.update(self.key);
        h.finalize().into()
    }

    /// Names the key without giving it away (a one-way derivation, hex):
    /// nodes sharing a database compare theirs to the one it recorded.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.derive("key fingerprint")[..16])
    }

    /// Encrypts `plain` for the place named `aad` (e.g. `oauth2_servers.client_secret.7`).
    pub fn seal(&self, aad: &str, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS has randomness");
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: aad.as_bytes() })
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`seal`](Self::seal) made for the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<String, SecretError> {
        let bad = || SecretError::Undecryptable(aad.to_string());
        if sealed.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() }).map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

/// A key rotation under way: the key in use and its successor.
#[derive(Debug)]
pub struct Rotation {
    /// The key the database's secrets are sealed with now.
    pub old: SecretBox,
    /// The key they are to be sealed with.
    pub new: SecretBox,
    path: std::path::PathBuf,
    next: std::path::PathBuf,
}

impl Rotation {
    /// Makes the new key the key file, once every secret is sealed with
    /// it; the old key is gone after this.
    pub fn finish(self) -> Result<(), SecretError> {
        fs::rename(&self.next, &self.path).map_err(|source| SecretError::Io { path: self.path.display().to_string(), source })?;
        if let Some(dir) = self.path.parent() {
            // The rename itself is durable only once the directory is synced.
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// Where [`cache_only_key`] keeps its key, under the data directory.
pub const CACHE_KEY_FILE: &str = "cache/cache.key";

/// The key that authenticates precompiled plugins when no registry lives in
/// `data_dir` (a plugin author's `plugin test`): `data_dir/cache/cache.key`,
/// created (mode 0600) when absent, so that the next run reuses what this
/// one compiled instead of compiling a large component again.
pub fn cache_only_key(data_dir: &Path) -> Result<[u8; 32], SecretError> {
    let path = data_dir.join(CACHE_KEY_FILE);
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    fs::create_dir_all(path.parent().expect("a file in a folder")).map_err(io)?;
    if let Some(key) = read_key_file(&path)? {
        return Ok(key.derive("component-cache"));
    }
    // Written whole under a unique name, then linked into place: a process
    // starting at the same time sees no file or a complete one, never an
    // empty one, and the first link wins.
    let unique = path.with_extension(format!("{}.new", crate::secrets::random(8)));
    let mine = create_key_file(&unique)?;
    let linked = fs::hard_link(&unique, &path);
    let _ = fs::remove_file(&unique);
    let key = match linked {
        Ok(()) => mine,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(&path)?.ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?,
        Err(e) => return Err(io(e)),
    };
    Ok(key.derive("component-cache"))
}

/// The key in `path`, refusing a file open to other users; None if there
/// is no such file.
fn read_key_file(path: &Path) -> Result<Option<SecretBox>, SecretError> {
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SecretError::LooseKeyFile { path: path.display().to_string(), mode: mode & 0o777 });
        }
    }
    Ok(Some(SecretBox::new(&decode_key(&text, &path.display().to_string())?)))
}

/// A new random key, written to `path` (mode 0600, synced).
fn create_key_file(path: &Path) -> Result<SecretBox, SecretError> {
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(base64::engine::general_purpose::STANDARD.encode(key).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(SecretBox::new(&key))
}

fn decode_key(text: &str, source_name: &str) -> Result<[u8; 32], SecretError> {
    let bad = |detail: String| SecretError::BadKey { source_name: source_name.to_string(), detail };
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| bad(e.to_string()))?;
    bytes.try_into().map_err(|b: Vec<u8>| bad(format!("{} bytes", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plugin test` without a registry: one key, kept beside the cache, so
    /// the next run trusts (and uses) what this one compiled; never the
    /// registry's own key file.
    #[test]
    fn a_cache_only_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = cache_only_key(dir.path()).unwrap();
        assert_eq!(cache_only_key(dir.path()).unwrap(), first, "the same key on the next run");
        assert!(!dir.path().join(KEY_FILE).exists(), "no registry key is created for a cache");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(CACHE_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(cache_only_key(other.path()).unwrap(), first, "each data dir its own");
    }

    #[test]
    fn sealed_values_open_only_in_their_place_and_with_their_key() {
        let b = SecretBox::new(&[7; 32]);
        let sealed = b.seal("t.c.1", "s3cret");
        assert!(!String::from_utf8_lossy(&sealed).contains("s3cret"));
        assert_eq!(b.open("t.c.1", &sealed).unwrap(), "s3cret");
        assert!(b.open("t.c.2", &sealed).is_err(), "moved to another row");
        assert!(SecretBox::new(&[8; 32]).open("t.c.1", &sealed).is_err(), "another key");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(b.open("t.c.1", &tampered).is_err());
        assert_ne!(b.seal("t.c.1", "s3cret"), sealed, "fresh nonce each time");
    }

    #[test]
    fn a_lost_key_beside_a_database_is_never_silently_replaced() {
        assert_eq!(DATABASE_FILE, crate::store::DB_FILE);
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretBox::load_or_create(dir.path()).unwrap();
        drop(crate::store::Store::open(dir.path(), secrets).unwrap());
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = SecretBox::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds a registry database but no secret.key") && err.contains("Restore secret.key"), "{err}");
        assert!(!dir.path().join(KEY_FILE).exists(), "no new key was made");
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = a.seal("x", "v");
        let b = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(b.open("x", &sealed).unwrap(), "v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
            let err = SecretBox::load_or_create(dir.path()).unwrap_err().to_string();
            assert!(err.contains("is open to other users (mode 644)") && err.contains("chmod 600"), "{err}");
            fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(dir.path().join(KEY_FILE), "not base64!").unwrap();
        let err = SecretBox::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("secret.key") && err.contains("base64 of 32 bytes"), "{err}");
    }

    #[test]
    fn a_rotation_keeps_both_keys_until_it_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = first.seal("x", "v");
        let rotation = SecretBox::begin_rotation(dir.path()).unwrap();
        assert_eq!(rotation.old.open("x", &sealed).unwrap(), "v");
        drop(rotation);
        // Stopped half way: nothing starts on a guess, and a second run gets the same new key.
        let err = SecretBox::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("secrets rotate") && err.contains("again"), "{err}");
        let rotation = SecretBox::begin_rotation(dir.path()).unwrap();
        let resealed = rotation.new.seal("x", "v");
        rotation.finish().unwrap();
        let now = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(now.open("x", &resealed).unwrap(), "v");
        assert!(now.open("x", &sealed).is_err(), "the old key is gone");
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
    }
}
