//! Provisioning targets (their plugin settings sealed), their "Reprovision
//! all" runs, and how their people stand.

use rusqlite::{Connection, OptionalExtension, params};

use super::jobs::Lite;
use super::{SqliteStore, StoreError, now_ms, parsed, unique, write};
use crate::domain::{Action, Person, ProvState, Run, Scope, Target, TargetInput};

fn map_target(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Target, Vec<u8>, String)> {
    Ok((
        Target {
            id: r.get("id")?,
            name: r.get("name")?,
            plugin: r.get("plugin")?,
            server_id: r.get("server_id")?,
            server_name: r.get("server_name")?,
            settings: vec![],
            enabled: r.get::<_, i64>("enabled")? != 0,
            scope: Scope::default(),
        },
        r.get("settings")?,
        r.get("scope")?,
    ))
}

impl SqliteStore {
    /// Every target's id, plugin and when it was last saved: enough to
    /// know whether something derived from its settings is still current,
    /// without opening them.
    pub fn target_stamps(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached("SELECT id, plugin, updated_at FROM targets")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub(super) fn settings_aad(id: i64) -> String {
        format!("targets.settings.{id}")
    }

    pub(super) fn open_target(&self, (mut t, sealed, scope): (Target, Vec<u8>, String)) -> Result<Target, StoreError> {
        let json = self.secrets.open(&Self::settings_aad(t.id), &sealed)?;
        t.settings = serde_json::from_str(&json).map_err(|e| StoreError::Unreadable(format!("settings of target {}: {e}", t.id)))?;
        t.scope = read_scope(t.id, &scope)?;
        Ok(t)
    }

    /// Adds a target.
    pub fn create_target(&self, input: &TargetInput) -> Result<i64, StoreError> {
        // Named, rather than left to the foreign key's bare failure.
        self.server(input.server_id)?;
        let now = now_ms();
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute(
            "INSERT INTO targets (name, plugin, server_id, settings, enabled, scope, created_at, updated_at) VALUES (?1, ?2, ?3, x'', ?4, ?5, ?6, ?6)",
            params![input.name, input.plugin, input.server_id, input.enabled, serde_json::to_string(&input.scope).expect("plain data"), now],
        )
        .map_err(|e| unique(e, || format!("a target named '{}' already exists", input.name)))?;
        let id = tx.last_insert_rowid();
        let sealed = self.secrets.seal(&Self::settings_aad(id), &serde_json::to_string(&input.settings).expect("plain data"));
        tx.execute("UPDATE targets SET settings = ?1 WHERE id = ?2", params![sealed, id])?;
        tx.commit()?;
        Ok(id)
    }

    /// Saves an edit.
    pub fn update_target(&self, id: i64, input: &TargetInput) -> Result<(), StoreError> {
        let sealed = self.secrets.seal(&Self::settings_aad(id), &serde_json::to_string(&input.settings).expect("plain data"));
        self.server(input.server_id)?;
        let mut conn = self.db();
        let tx = super::write(&mut conn)?;
        let old: Option<String> = tx.query_row("SELECT scope FROM targets WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
        let Some(old) = old else { return Err(StoreError::NotFound(format!("target {id}"))) };
        tx.execute(
            "UPDATE targets SET name = ?1, plugin = ?2, server_id = ?3, settings = ?4, enabled = ?5, scope = ?6, updated_at = ?7 WHERE id = ?8",
            params![input.name, input.plugin, input.server_id, sealed, input.enabled, serde_json::to_string(&input.scope).expect("plain data"), now_ms(), id],
        )
        .map_err(|e| unique(e, || format!("a target named '{}' already exists", input.name)))?;
        // Groups that enter or leave the scope are added or removed there.
        Self::rescope_groups(&tx, id, &read_scope(id, &old)?, &input.scope)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a target, its jobs and its per-person state (the remote
    /// records stay where they are).
    pub fn delete_target(&self, id: i64) -> Result<(), StoreError> {
        let n = self.db().execute("DELETE FROM targets WHERE id = ?1", params![id])?;
        if n == 0 { Err(StoreError::NotFound(format!("target {id}"))) } else { Ok(()) }
    }

    /// Every target, by name.
    pub fn targets(&self) -> Result<Vec<Target>, StoreError> {
        let rows = {
            let conn = self.db();
            let mut stmt = conn.prepare(
                "SELECT t.*, s.name AS server_name FROM targets t JOIN oauth2_servers s ON s.id = t.server_id ORDER BY t.name COLLATE NOCASE",
            )?;
            stmt.query_map([], map_target)?.collect::<Result<Vec<_>, _>>()?
        };
        rows.into_iter().map(|r| self.open_target(r)).collect()
    }

    /// One target.
    pub fn target(&self, id: i64) -> Result<Target, StoreError> {
        let row = self
            .db()
            .query_row("SELECT t.*, s.name AS server_name FROM targets t JOIN oauth2_servers s ON s.id = t.server_id WHERE t.id = ?1", params![id], map_target)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("target {id}")))?;
        self.open_target(row)
    }

    /// "Reprovision all": queues every person in the target's scope (in one
    /// transaction) and returns the run that tracks them.
    pub fn start_run(&self, target_id: i64) -> Result<Run, StoreError> {
        let target = self.target(target_id)?;
        let lite = Lite { id: target.id, scope: target.scope };
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let now = now_ms();
        tx.execute("INSERT INTO runs (target_id, total, started_at) VALUES (?1, 0, ?2)", params![target_id, now])?;
        let run = tx.last_insert_rowid();
        let total = if lite.scope.is_everyone() {
            Self::queue_everyone(&tx, target_id, run, now)?
        } else {
            Self::queue_each(&tx, &lite, run)?
        };
        let finished = if total == 0 { Some(now) } else { None };
        tx.execute("UPDATE runs SET total = ?1, finished_at = ?2 WHERE id = ?3", params![total, finished, run])?;
        tx.commit()?;
        drop(conn);
        self.run(run)
    }

    /// A run's jobs for a scoped target: each person read and checked
    /// against the scope (one in it is queued; one outside with a record
    /// there has it removed).
    fn queue_each(tx: &Connection, target: &Lite, run: i64) -> Result<i64, StoreError> {
        let mut stmt = tx.prepare("SELECT data FROM people WHERE status != 'deleted' ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let mut total = 0i64;
        while let Some(row) = rows.next()? {
            let data: String = row.get(0)?;
            // An unreadable stored person is skipped here; the person's own
            // page and jobs say what is wrong with it.
            let Ok(p) = serde_json::from_str::<Person>(&data) else { continue };
            total += i64::from(Self::enqueue_for(tx, target, &p, Action::Reprovision, Some(run))?);
        }
        Ok(total)
    }

    /// A run's jobs for a target whose scope is everyone, set-based: no
    /// person is read into the program, so queueing 100,000 people is a few
    /// statements. Does what `enqueue_one` does person by person: queued
    /// jobs of earlier runs count as done for those runs, the pair's
    /// queued and failed jobs are replaced, and the state is pending.
    fn queue_everyone(tx: &Connection, target: i64, run: i64, now: i64) -> Result<i64, StoreError> {
        const LIVE: &str = "SELECT id FROM people WHERE status != 'deleted' AND json_valid(data)";
        tx.execute(
            &format!(
                "UPDATE runs SET done = done + s.n,
                     finished_at = CASE WHEN runs.done + runs.failed + s.n >= runs.total AND runs.finished_at IS NULL THEN ?3 ELSE runs.finished_at END
                 FROM (SELECT run_id AS run, COUNT(*) AS n FROM jobs
                       WHERE target_id = ?1 AND state = 'queued' AND run_id IS NOT NULL AND run_id != ?2 AND person_id IN ({LIVE})
                       GROUP BY run_id) AS s
                 WHERE runs.id = s.run"
            ),
            params![target, run, now],
        )?;
        tx.execute(&format!("DELETE FROM jobs WHERE target_id = ?1 AND state IN ('queued', 'failed') AND person_id IN ({LIVE})"), params![target])?;
        let total = tx.execute(
            &format!("INSERT INTO jobs (person_id, target_id, action, run_id, created_at) SELECT id, ?1, ?2, ?3, ?4 FROM ({LIVE} ORDER BY id)"),
            params![target, Action::Reprovision.as_str(), run, now],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO provisioned (person_id, target_id, state, message, updated_at) SELECT id, ?1, ?2, NULL, ?3 FROM ({LIVE}) WHERE true
                 ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, message = excluded.message, updated_at = excluded.updated_at"
            ),
            params![target, ProvState::Pending.as_str(), now],
        )?;
        Ok(total as i64)
    }

    /// One run.
    pub fn run(&self, id: i64) -> Result<Run, StoreError> {
        self.db()
            .query_row("SELECT id, target_id, total, done, failed, started_at, finished_at FROM runs WHERE id = ?1", params![id], map_run)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("run {id}")))
    }

    /// The target's latest run.
    pub fn latest_run(&self, target_id: i64) -> Result<Option<Run>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT id, target_id, total, done, failed, started_at, finished_at FROM runs WHERE target_id = ?1 ORDER BY id DESC LIMIT 1",
                params![target_id],
                map_run,
            )
            .optional()?)
    }

    /// How many people are in each state with a target.
    pub fn target_counts(&self, target_id: i64) -> Result<Vec<(ProvState, i64)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM provisioned WHERE target_id = ?1 GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map(params![target_id], |r| Ok((parsed("provisioning state", r.get(0)?, ProvState::parse)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The target's people that failed for good, newest first.
    pub fn target_failures(&self, target_id: i64, limit: usize) -> Result<Vec<(String, String, String)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT p.person_id, pe.sort_name, COALESCE(p.message, '') FROM provisioned p JOIN people pe ON pe.id = p.person_id
             WHERE p.target_id = ?1 AND p.state = 'failed' ORDER BY p.updated_at DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![target_id, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Why a target's jobs cannot run now, if they cannot (the human side
    /// of `claim`'s conditions): a disabled target, or a server without a
    /// usable token that only an admin can get.
    pub fn held_because(&self, target: &Target) -> Option<String> {
        crate::domain::held_because(target, self.server(target.server_id).ok().as_ref())
    }
}

fn map_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run { id: r.get(0)?, target_id: r.get(1)?, total: r.get(2)?, done: r.get(3)?, failed: r.get(4)?, started_at: r.get(5)?, finished_at: r.get(6)? })
}

/// A target's stored scope.
pub(super) fn read_scope(id: i64, json: &str) -> Result<Scope, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Unreadable(format!("scope of target {id}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Person, Scope};

    /// A store with people in every situation a run meets: a queued job of
    /// an earlier run, a failed job, a running one, a deleted person, an
    /// unreadable one, and people with nothing queued.
    fn store_with_history() -> (tempfile::TempDir, SqliteStore, i64) {
        let (dir, store, target) = crate::store::scratch_with_target();
        for i in 0..40 {
            store.create_person(Person::example(&format!("P{i:02}"), "Given", &format!("Family{i}"), &format!("p{i}@example.org"))).unwrap();
        }
        // An earlier run, partly done: its remaining jobs stay queued.
        let earlier = store.start_run(target).unwrap().id;
        let db = store.db();
        db.execute("DELETE FROM jobs WHERE person_id < 'P10'", []).unwrap();
        db.execute("UPDATE runs SET done = 10 WHERE id = ?1", params![earlier]).unwrap();
        db.execute("UPDATE provisioned SET state = 'provisioned' WHERE person_id < 'P10'", []).unwrap();
        db.execute("UPDATE jobs SET state = 'failed' WHERE person_id IN ('P10', 'P11')", []).unwrap();
        db.execute("UPDATE jobs SET state = 'running' WHERE person_id = 'P12'", []).unwrap();
        db.execute("UPDATE people SET data = 'not json' WHERE id = 'P13'", []).unwrap();
        drop(db);
        store.delete_person("P14").unwrap();
        (dir, store, target)
    }

    type Snapshot = (Vec<(String, String, String, Option<i64>)>, Vec<(String, String, Option<String>)>, Vec<(i64, i64, i64, i64, bool)>);

    fn snapshot(store: &SqliteStore) -> Snapshot {
        let db = store.db();
        let jobs = db
            .prepare("SELECT person_id, action, state, run_id FROM jobs ORDER BY person_id, id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let states = db
            .prepare("SELECT person_id, state, message FROM provisioned ORDER BY person_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let runs = db
            .prepare("SELECT id, total, done, failed, finished_at IS NOT NULL FROM runs ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (jobs, states, runs)
    }

    /// "Reprovision all" for a target whose scope is everyone is queued by
    /// a few set-based statements; the result is what queueing person by
    /// person gives, job for job, state for state, run for run.
    #[test]
    fn set_based_queueing_gives_the_same_jobs_as_person_by_person() {
        let (_a, set_based, target) = store_with_history();
        let (_b, each, _) = store_with_history();
        assert_eq!(snapshot(&set_based), snapshot(&each), "the same start");

        let run = set_based.start_run(target).unwrap();
        let lite = Lite { id: target, scope: Scope::default() };
        let mut conn = each.db();
        let tx = write(&mut conn).unwrap();
        tx.execute("INSERT INTO runs (target_id, total, started_at) VALUES (?1, 0, ?2)", params![target, now_ms()]).unwrap();
        let each_run = tx.last_insert_rowid();
        let total = SqliteStore::queue_each(&tx, &lite, each_run).unwrap();
        tx.execute("UPDATE runs SET total = ?1 WHERE id = ?2", params![total, each_run]).unwrap();
        tx.commit().unwrap();
        drop(conn);

        assert_eq!(run.total, 38, "40 people, less the deleted and the unreadable one");
        let (jobs, states, runs) = snapshot(&set_based);
        assert_eq!((jobs.clone(), states, runs.clone()), snapshot(&each));
        // What that is: the earlier run's 25 queued jobs of live people were
        // superseded and count as done for it (10 + 25 of 40; the failed,
        // running, unreadable and deleted people's are not); the running job
        // stays, with the new job queued behind it.
        assert_eq!(runs[0], (1, 40, 35, 0, false));
        assert_eq!(jobs.iter().filter(|j| j.0 == "P12").map(|j| j.2.as_str()).collect::<Vec<_>>(), ["running", "queued"]);
        assert!(jobs.iter().all(|j| j.0 != "P13" && j.0 != "P14" || j.3 != Some(run.id)));
    }
}
