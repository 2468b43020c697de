//! Key rotation on PostgreSQL: every sealed value re-sealed under the new
//! key, and the database's recorded fingerprint changed to the new key's,
//! in one transaction. Nodes still holding the old key then refuse to
//! start. Stop every node first: one still running would keep sealing new
//! values (a new target's settings, a fresh token) under the old key,
//! which nothing could open afterwards. Then start each with the new key.

use super::PgStore;
use crate::secrets::SecretBox;
use crate::store::StoreError;
use crate::store::keys::{SEALED, aad};

impl PgStore {
    /// Re-seals every secret under `new`; how many values. A value that
    /// opens under neither key stops the rotation and changes nothing.
    pub async fn reseal(&self, new: &SecretBox) -> Result<usize, StoreError> {
        self.reseal_unless_live(new, None).await
    }

    /// [`PgStore::reseal`], refused (changing nothing) while a node has
    /// sent a heartbeat within `fresh`. The recorded key's row is locked
    /// first: a node starting meanwhile checks its key against it after
    /// this commits (and is refused), or registered before (and is seen).
    pub async fn reseal_unless_live(&self, new: &SecretBox, fresh: Option<std::time::Duration>) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT fingerprint FROM secret_key FOR UPDATE", &[]).await?;
        if let Some(fresh) = fresh {
            let live: Vec<String> = tx
                .query(
                    "SELECT id FROM nodes WHERE stopped_at IS NULL AND heartbeat_at > now() - $1::bigint * interval '1 millisecond' ORDER BY id",
                    &[&(fresh.as_millis() as i64)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !live.is_empty() {
                return Err(StoreError::Conflict(format!("nodes are serving on this database ({}): stop every node first (each holds the old key), then rotate", live.join(", "))));
            }
        }
        let mut count = 0;
        for (table, key_column, column) in SEALED {
            let rows = tx
                .query(&format!("SELECT CAST({key_column} AS TEXT), {column} FROM {table} WHERE {column} IS NOT NULL AND length({column}) > 0 FOR NO KEY UPDATE"), &[])
                .await?;
            for r in rows {
                let (key, sealed): (String, Vec<u8>) = (r.get(0), r.get(1));
                let aad = aad(table, column, &key);
                let plain = self.secrets.open(&aad, &sealed).or_else(|_| new.open(&aad, &sealed))?;
                tx.execute(&format!("UPDATE {table} SET {column} = $1 WHERE CAST({key_column} AS TEXT) = $2"), &[&new.seal(&aad, &plain), &key]).await?;
                count += 1;
            }
        }
        tx.execute("UPDATE secret_key SET fingerprint = $1", &[&new.fingerprint()]).await?;
        tx.commit().await?;
        Ok(count)
    }

    /// The schema version this database is at.
    pub async fn schema_version(&self) -> Result<usize, StoreError> {
        Ok(self.client().await?.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get::<_, i64>(0) as usize)
    }
}
