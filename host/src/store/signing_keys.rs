//! A server's JWT signing keys: the RSA private key (sealed like a
//! secret), its certificate for the admin to upload, and its fingerprint
//! and expiry. A server has a current key and, during a rotation, a next
//! one; switching makes the next current and forgets the old.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError, now_ms, write};

/// Which of a server's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The key assertions are signed with.
    Current,
    /// A key generated for a rotation, not yet switched to.
    Next,
}

impl KeyRole {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyRole::Current => "current",
            KeyRole::Next => "next",
        }
    }
}

/// A signing key as pages show it (never the private key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyInfo {
    /// Row id.
    pub id: i64,
    /// Current or next.
    pub role: KeyRole,
    /// The certificate, PEM.
    pub certificate: String,
    /// SHA-256 of the certificate, colon-separated hex.
    pub fingerprint: String,
    /// When the certificate expires (ms).
    pub not_after: i64,
    /// When the key was made (ms).
    pub created_at: i64,
}

/// A new key to store.
pub struct NewSigningKey<'a> {
    /// PKCS#8 PEM.
    pub private_key_pem: &'a str,
    /// PEM.
    pub certificate: &'a str,
    /// Colon-separated hex SHA-256.
    pub fingerprint: &'a str,
    /// Expiry (ms).
    pub not_after: i64,
}

impl SqliteStore {
    /// Stores a key for `server_id` in `role`, replacing any key already in
    /// that role (a next key generated twice: the first is dropped).
    pub fn put_signing_key(&self, server_id: i64, role: KeyRole, key: &NewSigningKey<'_>) -> Result<i64, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute("DELETE FROM signing_keys WHERE server_id = ?1 AND state = ?2", params![server_id, role.as_str()])?;
        tx.execute(
            "INSERT INTO signing_keys (server_id, state, private_key, certificate, fingerprint, not_after, created_at) VALUES (?1, ?2, x'', ?3, ?4, ?5, ?6)",
            params![server_id, role.as_str(), key.certificate, key.fingerprint, key.not_after, now_ms()],
        )?;
        let id = tx.last_insert_rowid();
        // Sealed under its own row id, so a sealed key cannot be moved to
        // another row and opened there.
        tx.execute("UPDATE signing_keys SET private_key = ?1 WHERE id = ?2", params![self.secrets.seal(&Self::signing_key_aad(id), key.private_key_pem), id])?;
        tx.commit()?;
        Ok(id)
    }

    /// A server's keys, current first.
    pub fn signing_keys(&self, server_id: i64) -> Result<Vec<SigningKeyInfo>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT id, state, certificate, fingerprint, not_after, created_at FROM signing_keys WHERE server_id = ?1 ORDER BY state = 'next', id",
        )?;
        let rows = stmt
            .query_map(params![server_id], |r| {
                let role = if r.get::<_, String>(1)? == "next" { KeyRole::Next } else { KeyRole::Current };
                Ok(SigningKeyInfo { id: r.get(0)?, role, certificate: r.get(2)?, fingerprint: r.get(3)?, not_after: r.get(4)?, created_at: r.get(5)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The private key (PKCS#8 PEM) of a server's key in `role`, if any.
    pub fn signing_key_private(&self, server_id: i64, role: KeyRole) -> Result<Option<(SigningKeyInfo, String)>, StoreError> {
        let Some(info) = self.signing_keys(server_id)?.into_iter().find(|k| k.role == role) else { return Ok(None) };
        let sealed: Option<Vec<u8>> =
            self.db().query_row("SELECT private_key FROM signing_keys WHERE id = ?1", params![info.id], |r| r.get(0)).optional()?;
        let Some(sealed) = sealed else { return Ok(None) };
        let pem = self.secrets.open(&Self::signing_key_aad(info.id), &sealed)?;
        Ok(Some((info, pem)))
    }

    /// Makes the next key `expected` (the one just tested) current,
    /// forgetting the old one; false when the next key is another (made
    /// again meanwhile) or gone (another request switched first).
    pub fn promote_next_key(&self, server_id: i64, expected: i64) -> Result<bool, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let next: Option<i64> =
            tx.query_row("SELECT id FROM signing_keys WHERE server_id = ?1 AND state = 'next'", params![server_id], |r| r.get(0)).optional()?;
        let Some(next) = next.filter(|n| *n == expected) else { return Ok(false) };
        tx.execute("DELETE FROM signing_keys WHERE server_id = ?1 AND state = 'current'", params![server_id])?;
        tx.execute("UPDATE signing_keys SET state = 'current' WHERE id = ?1", params![next])?;
        tx.commit()?;
        Ok(true)
    }

    /// Forgets a server's next key (a rotation given up).
    pub fn drop_next_key(&self, server_id: i64) -> Result<(), StoreError> {
        self.db().execute("DELETE FROM signing_keys WHERE server_id = ?1 AND state = 'next'", params![server_id])?;
        Ok(())
    }

    pub(super) fn signing_key_aad(id: i64) -> String {
        format!("signing_keys.private_key.{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(name: &'a str) -> NewSigningKey<'a> {
        NewSigningKey { private_key_pem: name, certificate: "CERT", fingerprint: name, not_after: 1 }
    }

    /// The rest (rotation, re-sealing, deletion) runs on both backends in
    /// the integration tests.
    #[test]
    fn a_private_key_is_sealed_in_the_file() {
        let (dir, store, _) = crate::store::scratch_with_target();
        let server = store.servers().unwrap()[0].id;
        store.put_signing_key(server, KeyRole::Current, &key("-----BEGIN PRIVATE KEY----- first")).unwrap();
        let raw = std::fs::read(dir.path().join(crate::store::DB_FILE)).unwrap();
        assert!(!raw.windows(5).any(|w| w == b"first"), "the private key is sealed in the file");
        assert_eq!(store.signing_key_private(server, KeyRole::Current).unwrap().unwrap().1, "-----BEGIN PRIVATE KEY----- first");
    }
}
