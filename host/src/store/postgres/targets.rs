//! Targets on PostgreSQL (their settings sealed as on SQLite), their
//! "Reprovision all" runs, and how their people stand.

use tokio_postgres::Row;

use super::PgStore;
use super::servers::conflict;
use crate::domain::{Action, Person, ProvState, Run, Target, TargetInput};
use crate::store::jobs::Lite;
use crate::store::targets::read_scope;
use crate::store::{SqliteStore, StoreError, now_ms};

const TARGET_COLUMNS: &str = "t.id, t.name, t.plugin, t.server_id, s.name, t.enabled, t.settings, t.scope";

fn run_of(r: &Row) -> Run {
    Run { id: r.get(0), target_id: r.get(1), total: r.get(2), done: r.get(3), failed: r.get(4), started_at: r.get(5), finished_at: r.get(6) }
}

impl PgStore {
    fn open_target(&self, r: &Row) -> Result<Target, StoreError> {
        let id: i64 = r.get(0);
        let json = self.secrets.open(&SqliteStore::settings_aad(id), &r.get::<_, Vec<u8>>(6))?;
        Ok(Target {
            id,
            name: r.get(1),
            plugin: r.get(2),
            server_id: r.get(3),
            server_name: r.get(4),
            settings: serde_json::from_str(&json).map_err(|e| StoreError::Unreadable(format!("settings of target {id}: {e}")))?,
            enabled: r.get(5),
            scope: read_scope(id, &r.get::<_, String>(7))?,
        })
    }

    /// Every target's id, plugin and when it was last saved.
    pub async fn target_stamps(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        Ok(self.client().await?.query("SELECT id, plugin, updated_at FROM targets ORDER BY id", &[]).await?.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Adds a target.
    pub async fn create_target(&self, input: &TargetInput) -> Result<i64, StoreError> {
        self.server(input.server_id).await?;
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO targets (name, plugin, server_id, settings, enabled, scope, created_at, updated_at) VALUES ($1, $2, $3, '\\x', $4, $5, $6, $6) RETURNING id",
                &[&input.name, &input.plugin, &input.server_id, &input.enabled, &serde_json::to_string(&input.scope).expect("plain data"), &now],
            )
            .await
            .map_err(|e| conflict(e, || format!("a target named '{}' already exists", input.name)))?
            .get(0);
        let sealed = self.secrets.seal(&SqliteStore::settings_aad(id), &serde_json::to_string(&input.settings).expect("plain data"));
        tx.execute("UPDATE targets SET settings = $1 WHERE id = $2", &[&sealed, &id]).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Saves an edit; groups entering or leaving its scope are queued.
    pub async fn update_target(&self, id: i64, input: &TargetInput) -> Result<(), StoreError> {
        let sealed = self.secrets.seal(&SqliteStore::settings_aad(id), &serde_json::to_string(&input.settings).expect("plain data"));
        self.server(input.server_id).await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let old: String =
            tx.query_opt("SELECT scope FROM targets WHERE id = $1 FOR NO KEY UPDATE", &[&id]).await?.ok_or_else(|| StoreError::NotFound(format!("target {id}")))?.get(0);
        tx.execute(
            "UPDATE targets SET name = $1, plugin = $2, server_id = $3, settings = $4, enabled = $5, scope = $6, updated_at = $7 WHERE id = $8",
            &[&input.name, &input.plugin, &input.server_id, &sealed, &input.enabled, &serde_json::to_string(&input.scope).expect("plain data"), &now_ms(), &id],
        )
        .await
        .map_err(|e| conflict(e, || format!("a target named '{}' already exists", input.name)))?;
        Self::rescope_groups(&tx, id, &read_scope(id, &old)?, &input.scope).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a target, its jobs and its per-person state.
    pub async fn delete_target(&self, id: i64) -> Result<(), StoreError> {
        let n = self.client().await?.execute("DELETE FROM targets WHERE id = $1", &[&id]).await?;
        if n == 0 { Err(StoreError::NotFound(format!("target {id}"))) } else { Ok(()) }
    }

    /// Every target, by name.
    pub async fn targets(&self) -> Result<Vec<Target>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(&format!("SELECT {TARGET_COLUMNS} FROM targets t JOIN oauth2_servers s ON s.id = t.server_id ORDER BY lower(t.name), t.id"), &[])
            .await?;
        rows.iter().map(|r| self.open_target(r)).collect()
    }

    /// One target.
    pub async fn target(&self, id: i64) -> Result<Target, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("SELECT {TARGET_COLUMNS} FROM targets t JOIN oauth2_servers s ON s.id = t.server_id WHERE t.id = $1"), &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {id}")))?;
        self.open_target(&row)
    }

    /// "Reprovision all": queues every person in the target's scope in one
    /// transaction and returns the run that tracks them.
    pub async fn start_run(&self, target_id: i64) -> Result<Run, StoreError> {
        let target = self.target(target_id).await?;
        let lite = Lite { id: target.id, scope: target.scope };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let run: i64 = tx.query_one("INSERT INTO runs (target_id, total, started_at) VALUES ($1, 0, $2) RETURNING id", &[&target_id, &now]).await?.get(0);
        let total = if lite.scope.is_everyone() {
            // Set-based, as on SQLite: no person read into the program. The
            // pairs' rows are written (locked) first, in id order, and the
            // people so locked are the ones the later statements touch: one
            // made meanwhile queues their own job.
            let ids: Vec<String> = tx
                .query(
                    "INSERT INTO provisioned (person_id, target_id, state, message, updated_at)
                     SELECT id, $1, 'pending', NULL, $2 FROM people WHERE status <> 'deleted' AND registry_json_valid(data) ORDER BY id
                     ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, message = excluded.message, updated_at = excluded.updated_at
                     RETURNING person_id",
                    &[&target_id, &now],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "UPDATE runs SET done = runs.done + s.n,
                     finished_at = CASE WHEN runs.done + runs.failed + s.n >= runs.total AND runs.finished_at IS NULL THEN $3 ELSE runs.finished_at END
                 FROM (SELECT run_id AS run, count(*) AS n FROM jobs
                       WHERE target_id = $1 AND state = 'queued' AND run_id IS NOT NULL AND run_id <> $2 AND person_id = ANY($4)
                       GROUP BY run_id) AS s
                 WHERE runs.id = s.run",
                &[&target_id, &run, &now, &ids],
            )
            .await?;
            tx.execute("DELETE FROM jobs WHERE target_id = $1 AND state IN ('queued', 'failed') AND person_id = ANY($2)", &[&target_id, &ids]).await?;
            tx.execute(
                "INSERT INTO jobs (person_id, target_id, action, run_id, created_at) SELECT id, $1, $2, $3, $4 FROM unnest($5::text[]) AS id ORDER BY id",
                &[&target_id, &Action::Reprovision.as_str(), &run, &now, &ids],
            )
            .await? as i64
        } else {
            // Each person read under their row's lock: one changed meanwhile
            // is queued as they are after that change.
            let rows = tx.query("SELECT data FROM people WHERE status <> 'deleted' ORDER BY id FOR NO KEY UPDATE", &[]).await?;
            let mut total = 0i64;
            for r in rows {
                // An unreadable stored person is skipped; their page says why.
                let Ok(p) = serde_json::from_str::<Person>(&r.get::<_, String>(0)) else { continue };
                total += i64::from(Self::enqueue_for(&tx, &lite, &p, Action::Reprovision, Some(run)).await?);
            }
            total
        };
        let finished = if total == 0 { Some(now) } else { None };
        tx.execute("UPDATE runs SET total = $1, finished_at = $2 WHERE id = $3", &[&total, &finished, &run]).await?;
        tx.commit().await?;
        self.run(run).await
    }

    /// One run.
    pub async fn run(&self, id: i64) -> Result<Run, StoreError> {
        let row = self.client().await?.query_opt("SELECT id, target_id, total, done, failed, started_at, finished_at FROM runs WHERE id = $1", &[&id]).await?;
        row.as_ref().map(run_of).ok_or_else(|| StoreError::NotFound(format!("run {id}")))
    }

    /// The target's latest run.
    pub async fn latest_run(&self, target_id: i64) -> Result<Option<Run>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT id, target_id, total, done, failed, started_at, finished_at FROM runs WHERE target_id = $1 ORDER BY id DESC LIMIT 1", &[&target_id])
            .await?;
        Ok(row.as_ref().map(run_of))
    }

    /// How many people are in each state with a target.
    pub async fn target_counts(&self, target_id: i64) -> Result<Vec<(ProvState, i64)>, StoreError> {
        let rows = self.client().await?.query("SELECT state, count(*) FROM provisioned WHERE target_id = $1 GROUP BY state ORDER BY state", &[&target_id]).await?;
        rows.iter()
            .map(|r| {
                let s: String = r.get(0);
                Ok((ProvState::parse(&s).ok_or_else(|| StoreError::Unreadable(format!("provisioning state '{s}'")))?, r.get(1)))
            })
            .collect()
    }

    /// The target's people that failed for good, newest first.
    pub async fn target_failures(&self, target_id: i64, limit: usize) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT p.person_id, pe.sort_name, COALESCE(p.message, '') FROM provisioned p JOIN people pe ON pe.id = p.person_id
                 WHERE p.target_id = $1 AND p.state = 'failed' ORDER BY p.updated_at DESC LIMIT $2",
                &[&target_id, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Why a target's jobs cannot run now, if they cannot.
    pub async fn held_because(&self, target: &Target) -> Option<String> {
        crate::domain::held_because(target, self.server(target.server_id).await.ok().as_ref())
    }
}
