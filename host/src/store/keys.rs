//! Key rotation: every sealed value (client secrets, tokens, PKCE
//! verifiers, target settings, JWT signing keys, admins' own tokens) re-sealed under a new key in one
//! transaction, so the database is never half under one key and half under
//! the other.

use rusqlite::params;

use super::{SqliteStore, StoreError, write};
use crate::secrets::SecretBox;

/// The sealed columns: table, key column, sealed column, and how the
/// associated data of a row is named.
pub(super) const SEALED: &[(&str, &str, &str)] = &[
    ("oauth2_servers", "id", "client_secret"),
    ("oauth2_servers", "id", "access_token"),
    ("oauth2_servers", "id", "refresh_token"),
    ("targets", "id", "settings"),
    ("oauth2_pending", "state", "code_verifier"),
    ("signing_keys", "id", "private_key"),
    ("bulk_batches", "id", "settings"),
    ("admin_tokens", "admin_id || '.' || server_id", "access_token"),
    ("admin_tokens", "admin_id || '.' || server_id", "refresh_token"),
];

pub(super) fn aad(table: &str, column: &str, key: &str) -> String {
    match (table, column) {
        ("oauth2_servers", _) => SqliteStore::aad(column, key.parse().unwrap_or_default()),
        ("targets", _) => SqliteStore::settings_aad(key.parse().unwrap_or_default()),
        ("signing_keys", _) => SqliteStore::signing_key_aad(key.parse().unwrap_or_default()),
        ("bulk_batches", _) => SqliteStore::bulk_settings_aad(key.parse().unwrap_or_default()),
        ("admin_tokens", _) => {
            let (admin, server) = key.split_once('.').unwrap_or_default();
            SqliteStore::admin_token_aad(column, admin.parse().unwrap_or_default(), server.parse().unwrap_or_default())
        }
        _ => format!("oauth2_pending.code_verifier.{key}"),
    }
}

impl SqliteStore {
    /// Re-seals every secret under `new` in one transaction; returns how
    /// many values were re-sealed. A value already sealed under `new` (a
    /// rotation that stopped between this commit and the key file's
    /// replacement, run again) is re-sealed too; one that opens under
    /// neither key stops the rotation and changes nothing.
    pub fn reseal(&self, new: &SecretBox) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let mut count = 0;
        for (table, key_column, column) in SEALED {
            let rows: Vec<(String, Vec<u8>)> = {
                let mut stmt = tx.prepare(&format!("SELECT CAST({key_column} AS TEXT), {column} FROM {table} WHERE {column} IS NOT NULL AND length({column}) > 0"))?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
            };
            for (key, sealed) in rows {
                let aad = aad(table, column, &key);
                let plain = self.secrets.open(&aad, &sealed).or_else(|_| new.open(&aad, &sealed))?;
                tx.execute(&format!("UPDATE {table} SET {column} = ?1 WHERE {key_column} = ?2"), params![new.seal(&aad, &plain), key])?;
                count += 1;
            }
        }
        tx.commit()?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Scope, ServerInput, TargetInput};
    use registry_plugin_runtime::latest::types::{GrantType, TokenSet};

    #[test]
    fn every_secret_opens_under_the_new_key_only_and_a_stranger_value_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let old = SecretBox::new(&[1; 32]);
        let new = SecretBox::new(&[2; 32]);
        let store = SqliteStore::open(dir.path(), old.clone()).unwrap();
        let input = ServerInput { client_secret: Some("client secret".into()), ..ServerInput::example("S", "p", GrantType::AuthorizationCode) };
        let id = store.create_server(&input).unwrap();
        let tokens = TokenSet {
            access_token: "access".into(),
            refresh_token: Some("refresh".into()),
            token_type: "Bearer".into(),
            expires_at: None,
            issued_at: Some(1),
            scope: None,
            instance_url: None,
            extra: vec![],
        };
        store.save_tokens(id, &tokens).unwrap();
        let target = TargetInput { name: "T".into(), plugin: "p".into(), server_id: id, settings: vec![("k".into(), "v".into())], enabled: true, scope: Scope::default() };
        let target = store.create_target(&target).unwrap();
        store.put_pending("st4te", id, "verifier", "https://r/cb", crate::store::PendingOrigin { session: "session", popup: false, admin: None }, 60_000).unwrap();

        assert_eq!(store.reseal(&new).unwrap(), 5);
        // Run again (as after a stop before the key file was replaced): fine.
        assert_eq!(store.reseal(&new).unwrap(), 5);
        drop(store);
        let store = SqliteStore::open(dir.path(), new.clone()).unwrap();
        assert_eq!(store.server_config(id).unwrap().client_secret, "client secret");
        let t = store.tokens(id).unwrap().unwrap();
        assert_eq!((t.access_token.as_str(), t.refresh_token.as_deref()), ("access", Some("refresh")));
        assert_eq!(store.target(target).unwrap().settings, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(store.take_pending("st4te").unwrap().unwrap().code_verifier, "verifier");
        drop(store);
        let stale = SqliteStore::open(dir.path(), old).unwrap();
        assert!(stale.server_config(id).is_err(), "the old key opens nothing");

        // A value neither key opens: the rotation stops and nothing changes.
        let third = SecretBox::new(&[3; 32]);
        let before: Vec<u8> = stale.db().query_row("SELECT access_token FROM oauth2_servers", [], |r| r.get(0)).unwrap();
        let stranger = SqliteStore::open(dir.path(), third.clone()).unwrap();
        stranger.db().execute("UPDATE oauth2_servers SET client_secret = ?1", params![third.seal("elsewhere", "x")]).unwrap();
        assert!(matches!(stranger.reseal(&SecretBox::new(&[4; 32])), Err(StoreError::Secret(_))));
        let after: Vec<u8> = stale.db().query_row("SELECT access_token FROM oauth2_servers", [], |r| r.get(0)).unwrap();
        assert_eq!(before, after);
    }
}
