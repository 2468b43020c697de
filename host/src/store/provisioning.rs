//! People, provisioning targets and the durable job queue.
//!
//! A change to a person and the jobs it causes commit in one transaction, so
//! a crash can lose neither. Jobs for one person and target run in order: a
//! job is only claimable when no earlier unfinished job exists for the pair.
//! A claimed job is `running` until its result commits; a crash leaves it
//! `running`, and [`Store::reset_running`] puts it back at the next start.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{Store, StoreError, TokenStatus, now_ms};
use crate::bindings::types::GrantType;
use crate::people::{Action, Person, Scope, Status};

/// Where a person stands with one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvState {
    /// A job is queued or running.
    Pending,
    /// The remote record is up to date.
    Provisioned,
    /// The remote record was removed (or deactivated, for Users).
    Removed,
    /// The last job failed for good; the message says why.
    Failed,
    /// The target's scope excludes the person.
    NotInScope,
}

impl ProvState {
    /// The stored name, also the pages' CSS class and element ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvState::Pending => "pending",
            ProvState::Provisioned => "provisioned",
            ProvState::Removed => "removed",
            ProvState::Failed => "failed",
            ProvState::NotInScope => "not_in_scope",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "provisioned" => ProvState::Provisioned,
            "removed" => ProvState::Removed,
            "failed" => ProvState::Failed,
            "not_in_scope" => ProvState::NotInScope,
            _ => ProvState::Pending,
        }
    }
    /// How pages show it.
    pub fn label(self) -> &'static str {
        match self {
            ProvState::Pending => "Pending",
            ProvState::Provisioned => "Provisioned",
            ProvState::Removed => "Removed",
            ProvState::Failed => "Failed",
            ProvState::NotInScope => "Not in scope",
        }
    }
}

/// What an admin enters for a provisioning target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInput {
    /// Unique name.
    pub name: String,
    /// The plugin that provisions.
    pub plugin: String,
    /// The OAuth2 server whose tokens it uses.
    pub server_id: i64,
    /// The plugin's settings, as name/value pairs (stored encrypted).
    pub settings: Vec<(String, String)>,
    /// Whether changes are provisioned.
    pub enabled: bool,
    /// Who is provisioned.
    pub scope: Scope,
}

/// A provisioning target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// OAuth2 server id.
    pub server_id: i64,
    /// The server's name.
    pub server_name: String,
    /// Settings.
    #[serde(skip)]
    pub settings: Vec<(String, String)>,
    /// Enabled.
    pub enabled: bool,
    /// Scope.
    pub scope: Scope,
}

/// A person's state with one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetState {
    /// Target id.
    pub target_id: i64,
    /// Target name.
    pub target: String,
    /// State.
    pub state: ProvState,
    /// Remote object type, e.g. "Contact".
    pub remote_type: Option<String>,
    /// Remote id.
    pub remote_id: Option<String>,
    /// Last summary or error.
    pub message: Option<String>,
    /// When it last changed (ms).
    pub updated_at: i64,
}

/// One line of a person's provisioning history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When (ms).
    pub at: i64,
    /// Target name, if about a target.
    pub target: Option<String>,
    /// The action.
    pub action: String,
    /// Whether it worked.
    pub ok: bool,
    /// What happened.
    pub message: String,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Row id (also the order).
    pub id: i64,
    /// Person.
    pub person_id: String,
    /// Target.
    pub target_id: i64,
    /// Why.
    pub action: Action,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The reprovision run it belongs to.
    pub run_id: Option<i64>,
}

/// A "Reprovision all" run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Row id.
    pub id: i64,
    /// Target.
    pub target_id: i64,
    /// People queued.
    pub total: i64,
    /// Done.
    pub done: i64,
    /// Failed for good.
    pub failed: i64,
    /// Started (ms).
    pub started_at: i64,
    /// Finished (ms).
    pub finished_at: Option<i64>,
}

/// What a bulk import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    /// New people.
    pub added: usize,
    /// Changed people.
    pub updated: usize,
    /// Already as in the file.
    pub unchanged: usize,
}

/// The successful end of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The job.
    pub job: Job,
    /// The remote record now (type, id), if any.
    pub remote: Option<(String, String)>,
    /// The plugin's summary.
    pub summary: String,
    /// Whether the person was taken out of the remote system.
    pub removed: bool,
}

/// Targets as enqueueing needs them.
struct Lite {
    id: i64,
    scope: Scope,
}

const PEOPLE_PER_TRANSACTION: usize = 500;

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

impl Store {
    fn settings_aad(id: i64) -> String {
        format!("targets.settings.{id}")
    }

    fn open_target(&self, (mut t, sealed, scope): (Target, Vec<u8>, String)) -> Result<Target, StoreError> {
        let json = self.secrets.open(&Self::settings_aad(t.id), &sealed)?;
        t.settings = serde_json::from_str(&json).unwrap_or_default();
        t.scope = serde_json::from_str(&scope).unwrap_or_default();
        Ok(t)
    }

    fn target_conflict(e: rusqlite::Error, name: &str) -> StoreError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict(format!("a target named '{name}' already exists, or its OAuth2 server is gone"))
            }
            _ => StoreError::Sql(e),
        }
    }

    /// Adds a target.
    pub fn create_target(&self, input: &TargetInput) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut conn = self.db();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO targets (name, plugin, server_id, settings, enabled, scope, created_at, updated_at) VALUES (?1, ?2, ?3, x'', ?4, ?5, ?6, ?6)",
            params![input.name, input.plugin, input.server_id, input.enabled, serde_json::to_string(&input.scope).expect("plain data"), now],
        )
        .map_err(|e| Self::target_conflict(e, &input.name))?;
        let id = tx.last_insert_rowid();
        let sealed = self.secrets.seal(&Self::settings_aad(id), &serde_json::to_string(&input.settings).expect("plain data"));
        tx.execute("UPDATE targets SET settings = ?1 WHERE id = ?2", params![sealed, id])?;
        tx.commit()?;
        Ok(id)
    }

    /// Saves an edit.
    pub fn update_target(&self, id: i64, input: &TargetInput) -> Result<(), StoreError> {
        let sealed = self.secrets.seal(&Self::settings_aad(id), &serde_json::to_string(&input.settings).expect("plain data"));
        let n = self
            .db()
            .execute(
                "UPDATE targets SET name = ?1, plugin = ?2, server_id = ?3, settings = ?4, enabled = ?5, scope = ?6, updated_at = ?7 WHERE id = ?8",
                params![input.name, input.plugin, input.server_id, sealed, input.enabled, serde_json::to_string(&input.scope).expect("plain data"), now_ms(), id],
            )
            .map_err(|e| Self::target_conflict(e, &input.name))?;
        if n == 0 { Err(StoreError::NotFound(format!("target {id}"))) } else { Ok(()) }
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

    /// Every target, disabled ones too: their jobs queue up and run, in
    /// order, once the target is enabled again (claim skips them meanwhile).
    fn lite_targets(conn: &Connection) -> Result<Vec<Lite>, StoreError> {
        let mut stmt = conn.prepare("SELECT id, scope FROM targets")?;
        let rows = stmt
            .query_map([], |r| Ok(Lite { id: r.get(0)?, scope: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default() }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn set_state(conn: &Connection, person: &str, target: i64, state: ProvState, message: Option<&str>) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO provisioned (person_id, target_id, state, message, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, message = excluded.message, updated_at = excluded.updated_at",
            params![person, target, state.as_str(), message, now_ms()],
        )?;
        Ok(())
    }

    /// Queues one job for `person` and `target`, replacing queued jobs it
    /// supersedes (a job reads the person as they are when it runs).
    fn enqueue_one(conn: &Connection, person: &str, target: i64, action: Action, run: Option<i64>) -> Result<(), StoreError> {
        let mut inherited: Option<i64> = None;
        {
            let mut stmt = conn.prepare_cached("SELECT id, run_id, state FROM jobs WHERE person_id = ?1 AND target_id = ?2 AND state IN ('queued', 'failed')")?;
            let old: Vec<(i64, Option<i64>, String)> = stmt.query_map(params![person, target], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
            for (id, old_run, state) in old {
                // A superseded queued job of a run hands the run over (or
                // counts as done for it), so runs always finish.
                if let Some(r) = old_run
                    && state == "queued"
                {
                    if run.is_none() && inherited.is_none() {
                        inherited = Some(r);
                    } else if run != Some(r) {
                        Self::count_run(conn, r, true)?;
                    }
                }
                conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![id])?;
            }
        }
        conn.execute(
            "INSERT INTO jobs (person_id, target_id, action, run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![person, target, action.as_str(), run.or(inherited), now_ms()],
        )?;
        Self::set_state(conn, person, target, ProvState::Pending, None)
    }

    /// Queues `action` for `p` with one target (as part of `run`, if any):
    /// a person outside the target's scope who has a record there gets it
    /// removed, anyone else outside is marked not in scope. Whether a job
    /// was queued.
    fn enqueue_for(conn: &Connection, target: &Lite, p: &Person, action: Action, run: Option<i64>) -> Result<bool, StoreError> {
        if action == Action::Deleted || target.scope.includes(p) {
            Self::enqueue_one(conn, &p.id, target.id, action, run)?;
            return Ok(true);
        }
        let state: Option<String> = conn
            .prepare_cached("SELECT state FROM provisioned WHERE person_id = ?1 AND target_id = ?2")?
            .query_row(params![p.id, target.id], |r| r.get(0))
            .optional()?;
        if matches!(state.as_deref(), Some("provisioned" | "pending" | "failed")) {
            Self::enqueue_one(conn, &p.id, target.id, Action::Deleted, run)?;
            return Ok(true);
        }
        Self::set_state(conn, &p.id, target.id, ProvState::NotInScope, Some("outside the target's scope"))?;
        Ok(false)
    }

    /// Queues provisioning of `p` for every target (disabled ones hold their
    /// jobs until enabled); returns how many jobs were queued.
    fn enqueue(conn: &Connection, targets: &[Lite], p: &Person, action: Action) -> Result<usize, StoreError> {
        let mut queued = 0;
        for t in targets {
            queued += usize::from(Self::enqueue_for(conn, t, p, action, None)?);
        }
        Ok(queued)
    }

    fn write_person(tx: &Transaction<'_>, p: &Person, now: i64, insert: bool) -> Result<(), StoreError> {
        let data = serde_json::to_string(p).expect("plain data");
        if insert {
            tx.execute(
                "INSERT INTO people (id, status, sort_name, search, data, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![p.id, p.status.as_str(), p.display_name(), p.search_text(), data, now],
            )?;
        } else {
            tx.execute(
                "UPDATE people SET status = ?2, sort_name = ?3, search = ?4, data = ?5, updated_at = ?6 WHERE id = ?1",
                params![p.id, p.status.as_str(), p.display_name(), p.search_text(), data, now],
            )?;
        }
        Ok(())
    }

    fn stored_person(conn: &Connection, id: &str) -> Result<Option<Person>, StoreError> {
        let data: Option<String> = conn.query_row("SELECT data FROM people WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
        Ok(data.and_then(|d| serde_json::from_str(&d).ok()))
    }

    /// Adds a person (already normalized) and queues their provisioning, in
    /// one transaction. An empty id gets a new one.
    pub fn create_person(&self, mut p: Person) -> Result<Person, StoreError> {
        if p.id.is_empty() {
            p.id = crate::people::new_id();
        }
        let mut conn = self.db();
        let tx = conn.transaction()?;
        if let Some(old) = Self::stored_person(&tx, &p.id)? {
            let why = if old.status == Status::Deleted { "belonged to a deleted person; registry ids are never reused" } else { "is taken" };
            return Err(StoreError::Conflict(format!("the id {} {why}", p.id)));
        }
        Self::write_person(&tx, &p, now_ms(), true)?;
        Self::enqueue(&tx, &Self::lite_targets(&tx)?, &p, Action::Added)?;
        tx.commit()?;
        Ok(p)
    }

    /// Saves an edit (already normalized) and queues what it means; nothing
    /// is queued when nothing changed. Returns the action, if any.
    pub fn update_person(&self, p: &Person) -> Result<Option<Action>, StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let old = Self::stored_person(&tx, &p.id)?.filter(|o| o.status != Status::Deleted).ok_or_else(|| StoreError::NotFound(format!("person {}", p.id)))?;
        if old == *p {
            return Ok(None);
        }
        let action = Action::for_change(old.status, p.status);
        Self::write_person(&tx, p, now_ms(), false)?;
        Self::enqueue(&tx, &Self::lite_targets(&tx)?, p, action)?;
        tx.commit()?;
        Ok(Some(action))
    }

    /// Deletes a person: kept as a tombstone (its id is never reused) until
    /// every target has removed them.
    pub fn delete_person(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let mut p = Self::stored_person(&tx, id)?.filter(|o| o.status != Status::Deleted).ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        p.status = Status::Deleted;
        Self::write_person(&tx, &p, now_ms(), false)?;
        // Every target that knows the person removes them, enabled or not
        // in scope included; the others have nothing to do.
        let known: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT target_id FROM provisioned WHERE person_id = ?1 AND state != 'not_in_scope'")?;
            stmt.query_map(params![id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for t in Self::lite_targets(&tx)?.into_iter().filter(|t| known.contains(&t.id)) {
            Self::enqueue_one(&tx, id, t.id, Action::Deleted, None)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds or updates many people, `PEOPLE_PER_TRANSACTION` per transaction
    /// (each person with their jobs); `progress` gets the count done so far.
    pub fn import_people(&self, people: Vec<Person>, mut progress: impl FnMut(usize)) -> Result<ImportStats, StoreError> {
        // Refused before anything is written, so a bad file changes nothing.
        let deleted: Vec<String> = {
            let conn = self.db();
            let mut stmt = conn.prepare("SELECT id FROM people WHERE status = 'deleted'")?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<std::collections::HashSet<_>, _>>()?;
            people.iter().filter(|p| ids.contains(&p.id)).map(|p| p.id.clone()).collect()
        };
        if !deleted.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{} belonged to deleted people and registry ids are never reused; give those rows new ids (nothing was imported)",
                deleted.join(", ")
            )));
        }
        let mut stats = ImportStats::default();
        let mut done = 0;
        for chunk in people.chunks(PEOPLE_PER_TRANSACTION) {
            let mut conn = self.db();
            let tx = conn.transaction()?;
            let targets = Self::lite_targets(&tx)?;
            let now = now_ms();
            for p in chunk {
                let mut p = p.clone();
                if p.id.is_empty() {
                    p.id = crate::people::new_id();
                }
                match Self::stored_person(&tx, &p.id)? {
                    None => {
                        Self::write_person(&tx, &p, now, true)?;
                        Self::enqueue(&tx, &targets, &p, Action::Added)?;
                        stats.added += 1;
                    }
                    Some(old) if old.status == Status::Deleted => {
                        // Deleted while this import ran: the earlier chunks stand, each whole.
                        return Err(StoreError::Conflict(format!("{} was deleted during the import; only the first {done} rows were imported", p.id)));
                    }
                    Some(old) if old == p => stats.unchanged += 1,
                    Some(old) => {
                        Self::write_person(&tx, &p, now, false)?;
                        Self::enqueue(&tx, &targets, &p, Action::for_change(old.status, p.status))?;
                        stats.updated += 1;
                    }
                }
            }
            tx.commit()?;
            done += chunk.len();
            progress(done);
        }
        Ok(stats)
    }

    /// One person (a deleted one too, with status `deleted`).
    pub fn person(&self, id: &str) -> Result<Person, StoreError> {
        Self::stored_person(&self.db(), id)?.ok_or_else(|| StoreError::NotFound(format!("person {id}")))
    }

    /// People not deleted, matching `query` (name, id, email or identifier),
    /// by name; and how many match in all.
    pub fn people(&self, query: &str, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError> {
        let like = format!("%{}%", query.trim().to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let conn = self.db();
        let total: i64 = conn.query_row("SELECT COUNT(*) FROM people WHERE status != 'deleted' AND search LIKE ?1 ESCAPE '\\'", params![like], |r| r.get(0))?;
        let mut stmt = conn.prepare(
            "SELECT data FROM people WHERE status != 'deleted' AND search LIKE ?1 ESCAPE '\\' ORDER BY sort_name COLLATE NOCASE, id LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt
            .query_map(params![like, limit as i64, offset as i64], |r| r.get::<_, String>(0))?
            .filter_map(|d| d.ok().and_then(|d| serde_json::from_str(&d).ok()))
            .collect();
        Ok((rows, total as usize))
    }

    /// A person's state with every target that knows them.
    pub fn person_states(&self, id: &str) -> Result<Vec<TargetState>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT p.target_id, t.name, p.state, p.remote_type, p.remote_id, p.message, p.updated_at
             FROM provisioned p JOIN targets t ON t.id = p.target_id WHERE p.person_id = ?1 ORDER BY t.name COLLATE NOCASE",
        )?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok(TargetState {
                    target_id: r.get(0)?,
                    target: r.get(1)?,
                    state: ProvState::parse(&r.get::<_, String>(2)?),
                    remote_type: r.get(3)?,
                    remote_id: r.get(4)?,
                    message: r.get(5)?,
                    updated_at: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The latest `limit` history lines of a person, newest first.
    pub fn history(&self, id: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT h.at, COALESCE(t.name, h.target_name), h.action, h.ok, h.message FROM history h LEFT JOIN targets t ON t.id = h.target_id
             WHERE h.person_id = ?1 ORDER BY h.id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![id, limit as i64], |r| {
                Ok(HistoryEntry { at: r.get(0)?, target: r.get(1)?, action: r.get(2)?, ok: r.get::<_, i64>(3)? != 0, message: r.get(4)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// "Reprovision": queues the person again for every target; returns how
    /// many jobs were queued (targets whose scope excludes them get none).
    pub fn reprovision_person(&self, id: &str) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let p = Self::stored_person(&tx, id)?.ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        let action = if p.status == Status::Deleted { Action::Deleted } else { Action::Reprovision };
        let queued = Self::enqueue(&tx, &Self::lite_targets(&tx)?, &p, action)?;
        tx.commit()?;
        Ok(queued)
    }

    /// What the plugin needs for each job: the person (`None` if their
    /// stored record cannot be read) and the remote record they have with
    /// the job's target, read under one lock with one query per job.
    pub fn job_inputs(&self, jobs: &[Job]) -> Result<Vec<(Option<Person>, Option<(String, String)>)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached(
            "SELECT p.data, v.remote_type, v.remote_id FROM people p
             LEFT JOIN provisioned v ON v.person_id = p.id AND v.target_id = ?2 WHERE p.id = ?1",
        )?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let row: Option<(String, Option<String>, Option<String>)> =
                stmt.query_row(params![job.person_id, job.target_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
            out.push(match row {
                Some((data, t, id)) => (serde_json::from_str(&data).ok(), t.zip(id)),
                None => (None, None),
            });
        }
        Ok(out)
    }

    /// "Reprovision all": queues every person in the target's scope (in one
    /// transaction) and returns the run that tracks them.
    pub fn start_run(&self, target_id: i64) -> Result<Run, StoreError> {
        let target = self.target(target_id)?;
        let lite = Lite { id: target.id, scope: target.scope };
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let now = now_ms();
        tx.execute("INSERT INTO runs (target_id, total, started_at) VALUES (?1, 0, ?2)", params![target_id, now])?;
        let run = tx.last_insert_rowid();
        let people: Vec<String> = {
            let mut stmt = tx.prepare("SELECT data FROM people WHERE status != 'deleted' ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let mut total = 0i64;
        for data in people {
            let Ok(p) = serde_json::from_str::<Person>(&data) else { continue };
            total += i64::from(Self::enqueue_for(&tx, &lite, &p, Action::Reprovision, Some(run))?);
        }
        let finished = if total == 0 { Some(now) } else { None };
        tx.execute("UPDATE runs SET total = ?1, finished_at = ?2 WHERE id = ?3", params![total, finished, run])?;
        tx.commit()?;
        drop(conn);
        self.run(run)
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
        let rows = stmt.query_map(params![target_id], |r| Ok((ProvState::parse(&r.get::<_, String>(0)?), r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
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

    /// Jobs not yet done: (queued or running, failed) for a target, or all.
    pub fn job_counts(&self, target_id: Option<i64>) -> Result<(i64, i64), StoreError> {
        let conn = self.db();
        let q = |state: &str| -> rusqlite::Result<i64> {
            conn.query_row(
                &format!("SELECT COUNT(*) FROM jobs WHERE {state} AND (?1 IS NULL OR target_id = ?1)"),
                params![target_id],
                |r| r.get(0),
            )
        };
        Ok((q("state IN ('queued', 'running')")?, q("state = 'failed'")?))
    }

    /// Queued jobs of the server's targets, which wait for a usable token.
    pub fn jobs_waiting_for(&self, server_id: i64) -> Result<i64, StoreError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*) FROM jobs j JOIN targets t ON t.id = j.target_id WHERE t.server_id = ?1 AND j.state = 'queued'",
            params![server_id],
            |r| r.get(0),
        )?)
    }

    /// Puts claimed jobs that are still running back in the queue (after
    /// their worker failed), so later jobs of the same people are not blocked.
    pub fn release(&self, jobs: &[i64]) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let mut n = 0;
        for id in jobs {
            n += tx.prepare_cached("UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'running'")?.execute(params![id])?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Puts jobs a crashed or stopped process left running back in the queue.
    pub fn reset_running(&self) -> Result<usize, StoreError> {
        Ok(self.db().execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'", [])?)
    }

    /// Claims up to `max` ready jobs, all for one target, oldest first. A job
    /// is ready when its target is enabled, its server has a token (or can
    /// get one by itself), its backoff has passed, and no earlier job for the
    /// same person and target is unfinished.
    pub fn claim(&self, max: usize) -> Result<Vec<Job>, StoreError> {
        let now = now_ms();
        let mut conn = self.db();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let jobs: Vec<Job> = {
            let mut stmt = tx.prepare_cached(
                "SELECT j.id, j.person_id, j.target_id, j.action, j.attempts, j.run_id FROM jobs j
                 JOIN targets t ON t.id = j.target_id
                 JOIN oauth2_servers s ON s.id = t.server_id
                 WHERE j.state = 'queued' AND j.not_before <= ?1 AND t.enabled = 1
                   AND (s.token_status = 'set' OR (s.grant_type = 'client_credentials' AND s.token_status = 'not_set'))
                   AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.person_id = j.person_id AND e.target_id = j.target_id AND e.id < j.id AND e.state != 'failed')
                 ORDER BY j.id LIMIT ?2",
            )?;
            stmt.query_map(params![now, max as i64], |r| {
                Ok(Job {
                    id: r.get(0)?,
                    person_id: r.get(1)?,
                    target_id: r.get(2)?,
                    action: Action::parse(&r.get::<_, String>(3)?).unwrap_or(Action::Updated),
                    attempts: r.get::<_, i64>(4)? as u32,
                    run_id: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let Some(first) = jobs.first().map(|j| j.target_id) else { return Ok(vec![]) };
        let jobs: Vec<Job> = jobs.into_iter().filter(|j| j.target_id == first).collect();
        {
            let mut mark = tx.prepare_cached("UPDATE jobs SET state = 'running' WHERE id = ?1")?;
            for j in &jobs {
                mark.execute(params![j.id])?;
            }
        }
        tx.commit()?;
        Ok(jobs)
    }

    /// Why a target's jobs cannot run now, if they cannot (the human side
    /// of `claim`'s conditions): a disabled target, or a server without a
    /// usable token that only an admin can get.
    pub fn held_because(&self, target: &Target) -> Option<String> {
        if !target.enabled {
            return Some(format!("the target '{}' is disabled", target.name));
        }
        let server = self.server(target.server_id).ok()?;
        match (server.token_status, server.grant_type) {
            (TokenStatus::NeedsReauthorization, _) => Some(format!("the OAuth2 server '{}' needs a new token (Obtain New Token)", server.name)),
            (TokenStatus::NotSet, GrantType::AuthorizationCode) => Some(format!("the OAuth2 server '{}' has no token yet (Obtain New Token)", server.name)),
            _ => None,
        }
    }

    /// When the next queued job becomes ready, if one waits for its backoff.
    /// Jobs that wait for a token, a disabled target or an earlier job of
    /// the same person do not count: they are freed by a change that wakes
    /// the workers, or by the worker that finishes the earlier job.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.db().query_row(
            "SELECT MIN(j.not_before) FROM jobs j
             JOIN targets t ON t.id = j.target_id
             JOIN oauth2_servers s ON s.id = t.server_id
             WHERE j.state = 'queued' AND t.enabled = 1
               AND (s.token_status = 'set' OR (s.grant_type = 'client_credentials' AND s.token_status = 'not_set'))
               AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.person_id = j.person_id AND e.target_id = j.target_id AND e.id < j.id AND e.state != 'failed')",
            [],
            |r| r.get(0),
        )?)
    }

    fn history_in(conn: &Connection, job: &Job, ok: bool, message: &str) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO history (person_id, target_id, target_name, at, action, ok, message)
             VALUES (?1, ?2, (SELECT name FROM targets WHERE id = ?2), ?3, ?4, ?5, ?6)",
        )?
            .execute(params![job.person_id, job.target_id, now_ms(), job.action.as_str(), ok, message])?;
        Ok(())
    }

    fn count_run(conn: &Connection, run: i64, ok: bool) -> Result<(), StoreError> {
        let column = if ok { "done" } else { "failed" };
        conn.execute(
            &format!(
                "UPDATE runs SET {column} = {column} + 1,
                 finished_at = CASE WHEN done + failed + 1 >= total AND finished_at IS NULL THEN ?2 ELSE finished_at END WHERE id = ?1"
            ),
            params![run, now_ms()],
        )?;
        Ok(())
    }

    /// Records finished jobs: the remote ids, the states, the history lines
    /// and the runs' progress, all in one transaction.
    pub fn finish_done(&self, done: &[Done]) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let now = now_ms();
        for d in done {
            let j = &d.job;
            if tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![j.id])? == 0 {
                // Superseded or its target deleted meanwhile.
                continue;
            }
            let state = if d.remote.is_none() || d.removed { ProvState::Removed } else { ProvState::Provisioned };
            let (t, id) = d.remote.clone().unzip();
            tx.prepare_cached(
                "INSERT INTO provisioned (person_id, target_id, state, remote_type, remote_id, message, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (person_id, target_id) DO UPDATE SET state = excluded.state, remote_type = excluded.remote_type,
                 remote_id = excluded.remote_id, message = excluded.message, updated_at = excluded.updated_at",
            )?
            .execute(params![j.person_id, j.target_id, state.as_str(), t, id, d.summary, now])?;
            Self::history_in(&tx, j, true, &d.summary)?;
            if let Some(run) = j.run_id {
                Self::count_run(&tx, run, true)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A job that will be tried again after `delay_ms`.
    pub fn finish_retry(&self, job: &Job, delay_ms: i64, error: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        // A later change of the same person queued meanwhile sends their
        // current state anyway: it takes this job's place (and its run).
        let later: Option<(i64, Option<i64>)> = tx
            .query_row(
                "SELECT id, run_id FROM jobs WHERE person_id = ?1 AND target_id = ?2 AND id > ?3 AND state = 'queued' ORDER BY id LIMIT 1",
                params![job.person_id, job.target_id, job.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((later_id, later_run)) = later {
            if tx.execute("DELETE FROM jobs WHERE id = ?1 AND state = 'running'", params![job.id])? > 0 {
                Self::history_in(&tx, job, false, &format!("attempt {} failed: {error}; superseded by a later change", job.attempts + 1))?;
                match (job.run_id, later_run) {
                    (Some(r), None) => {
                        tx.execute("UPDATE jobs SET run_id = ?2 WHERE id = ?1", params![later_id, r])?;
                    }
                    (Some(r), Some(l)) if r != l => Self::count_run(&tx, r, true)?,
                    _ => {}
                }
            }
            tx.commit()?;
            return Ok(());
        }
        if tx.execute(
            "UPDATE jobs SET state = 'queued', attempts = attempts + 1, not_before = ?2, last_error = ?3 WHERE id = ?1",
            params![job.id, now_ms() + delay_ms, error],
        )? > 0
        {
            let message = format!("attempt {} failed: {error}; trying again in {:.1} s", job.attempts + 1, delay_ms as f64 / 1000.0);
            Self::set_state(&tx, &job.person_id, job.target_id, ProvState::Pending, Some(&message))?;
            Self::history_in(&tx, job, false, &message)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A job that failed for good: kept (as `failed`) until the person changes
    /// or is reprovisioned.
    pub fn finish_failed(&self, job: &Job, error: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        if tx.execute("UPDATE jobs SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1", params![job.id, error])? > 0 {
            Self::set_state(&tx, &job.person_id, job.target_id, ProvState::Failed, Some(error))?;
            Self::history_in(&tx, job, false, error)?;
            if let Some(run) = job.run_id {
                Self::count_run(&tx, run, false)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Jobs that wait (no attempt counted) until their server has a token.
    pub fn finish_waiting(&self, jobs: &[Job], why: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        for job in jobs {
            if tx.execute("UPDATE jobs SET state = 'queued', last_error = ?2 WHERE id = ?1", params![job.id, why])? > 0 {
                Self::set_state(&tx, &job.person_id, job.target_id, ProvState::Pending, Some(why))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Creates an API token called `name`; returns it (shown once, stored
    /// only as its SHA-256).
    pub fn create_api_token(&self, name: &str) -> Result<String, StoreError> {
        let token = format!("rh_{}", crate::auth::random_token());
        self.db()
            .execute("INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?1, ?2, ?3)", params![name, crate::auth::token_hash(&token), now_ms()])
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    StoreError::Conflict(format!("an API token named '{name}' already exists"))
                }
                _ => StoreError::Sql(e),
            })?;
        Ok(token)
    }

    /// The name of the API token `token`, if it is one.
    pub fn api_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let conn = self.db();
        let hash = crate::auth::token_hash(token);
        let name: Option<String> = conn.query_row("SELECT name FROM api_tokens WHERE token_hash = ?1", params![hash], |r| r.get(0)).optional()?;
        if name.is_some() {
            conn.execute("UPDATE api_tokens SET last_used_at = ?1 WHERE token_hash = ?2", params![now_ms(), hash])?;
        }
        Ok(name)
    }
}

fn map_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run { id: r.get(0)?, target_id: r.get(1)?, total: r.get(2)?, done: r.get(3)?, failed: r.get(4)?, started_at: r.get(5)?, finished_at: r.get(6)? })
}
