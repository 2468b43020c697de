//! People: each change and the provisioning jobs it causes commit in one
//! transaction, so a crash can lose neither. A deleted person stays as a
//! tombstone: registry ids are never reused.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{SqliteStore, StoreError, now_ms, parsed, write};
use crate::domain::{Action, HistoryEntry, ImportStats, Person, ProvState, Status, TargetState};

/// How the People list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PeopleSort {
    /// Family, given name.
    #[default]
    Name,
    /// Registry id.
    Id,
    /// Last change.
    Updated,
}

/// What the People list shows.
#[derive(Debug, Clone, Default)]
pub struct PeopleQuery {
    /// Words that must all appear (name, id, email, identifier).
    pub text: String,
    /// Only this status.
    pub status: Option<Status>,
    /// Only people with a role of this affiliation.
    pub affiliation: Option<String>,
    /// The order.
    pub sort: PeopleSort,
    /// Reversed.
    pub descending: bool,
}

/// People written per transaction by an import.
const PEOPLE_PER_TRANSACTION: usize = 500;

impl SqliteStore {
    pub(super) fn write_person(tx: &Transaction<'_>, p: &Person, now: i64, insert: bool) -> Result<(), StoreError> {
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
        Self::write_memberships(tx, p)
    }

    pub(super) fn stored_person(conn: &Connection, id: &str) -> Result<Option<Person>, StoreError> {
        let data: Option<String> = conn.query_row("SELECT data FROM people WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
        data.map(|d| serde_json::from_str(&d).map_err(|e| StoreError::Unreadable(format!("record of person {id}: {e}")))).transpose()
    }

    /// Adds a person (already normalized) and queues their provisioning, in
    /// one transaction. An empty id gets a new one.
    pub fn create_person(&self, mut p: Person) -> Result<Person, StoreError> {
        if p.id.is_empty() {
            p.id = crate::domain::new_id();
        }
        let mut conn = self.db();
        let tx = write(&mut conn)?;
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
        let tx = write(&mut conn)?;
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
        let tx = write(&mut conn)?;
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
    /// Each person's `groups` may name a group by id or by name: names are
    /// resolved, and groups named that do not exist yet are created (in
    /// one transaction, before any person is written).
    pub fn import_people(&self, mut people: Vec<Person>, mut progress: impl FnMut(usize)) -> Result<ImportStats, StoreError> {
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
        self.resolve_groups(&mut people)?;
        let mut stats = ImportStats::default();
        let mut done = 0;
        for chunk in people.chunks(PEOPLE_PER_TRANSACTION) {
            let mut conn = self.db();
            let tx = write(&mut conn)?;
            let targets = Self::lite_targets(&tx)?;
            let now = now_ms();
            for p in chunk {
                let mut p = p.clone();
                if p.id.is_empty() {
                    p.id = crate::domain::new_id();
                }
                let existing = Self::stored_person(&tx, &p.id)?;
                // A row that names no group leaves the person's groups as
                // they are (a file without the column, an HR feed that
                // knows nothing of groups); groups' own pages and API
                // change memberships.
                if p.groups.is_empty()
                    && let Some(old) = &existing
                {
                    p.groups = old.groups.clone();
                }
                match existing {
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

    /// One page of people (deleted ones left out) matching `query`, and
    /// how many match in all.
    pub fn people(&self, query: &str, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError> {
        self.people_page(&PeopleQuery { text: query.to_string(), ..Default::default() }, offset, limit)
    }

    /// One page of people matching `q`, and how many match in all. Every
    /// word of the text must appear (so "ada lovelace" finds the full
    /// name); status and affiliation filter; the sort is by name, id or
    /// last change.
    pub fn people_page(&self, q: &PeopleQuery, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError> {
        let (filter, values, order) = people_sql(q, Dialect::Sqlite);
        let values: Vec<rusqlite::types::Value> = values.into_iter().map(Into::into).collect();
        let conn = self.db();
        let total: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM people WHERE {filter}"), rusqlite::params_from_iter(values.iter()), |r| r.get(0))?;
        let mut page_values = values.clone();
        page_values.push((limit as i64).into());
        page_values.push((offset as i64).into());
        let mut stmt = conn.prepare(&format!("SELECT data FROM people WHERE {filter} ORDER BY {order} LIMIT ?{} OFFSET ?{}", values.len() + 1, values.len() + 2))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(page_values.iter()), |r| r.get::<_, String>(0))?
            .filter_map(|d| d.ok().and_then(|d| serde_json::from_str(&d).ok()))
            .collect();
        Ok((rows, total as usize))
    }

    /// Per person, how many targets have them in each state (one query for
    /// the whole page).
    pub fn state_summaries(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Vec<(ProvState, i64)>>, StoreError> {
        let mut out: std::collections::HashMap<String, Vec<(ProvState, i64)>> = std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let conn = self.db();
        let marks = vec!["?"; ids.len()].join(", ");
        let mut stmt = conn.prepare(&format!("SELECT person_id, state, COUNT(*) FROM provisioned WHERE person_id IN ({marks}) GROUP BY person_id, state ORDER BY person_id, state"))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(ids.iter()), |r| Ok((r.get::<_, String>(0)?, parsed("provisioning state", r.get(1)?, ProvState::parse)?, r.get(2)?)))?;
        for row in rows {
            let (person, state, n) = row?;
            out.entry(person).or_default().push((state, n));
        }
        Ok(out)
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
                    state: parsed("provisioning state", r.get(2)?, ProvState::parse)?,
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

    /// Queues the person for one target now ("Provision now"): their
    /// current state, or their removal if they are deleted or out of its
    /// scope, the job acting as `admin` (with their own provider token,
    /// when they hold one). Whether a job was queued.
    pub fn reprovision_person_as(&self, id: &str, target: i64, admin: Option<i64>) -> Result<bool, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let p = Self::stored_person(&tx, id)?.ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        let lite = Self::lite_targets(&tx)?.into_iter().find(|t| t.id == target).ok_or_else(|| StoreError::NotFound(format!("target {target}")))?;
        let action = if p.status == Status::Deleted { Action::Deleted } else { Action::Reprovision };
        let queued = Self::enqueue_for(&tx, &lite, &p, action, None)?;
        if queued && admin.is_some() {
            tx.execute(
                "UPDATE jobs SET acting_admin = ?3 WHERE id = (SELECT MAX(id) FROM jobs WHERE person_id = ?1 AND target_id = ?2)",
                rusqlite::params![id, target, admin],
            )?;
        }
        tx.commit()?;
        Ok(queued)
    }

    /// "Reprovision": queues the person again for every target; returns how
    /// many jobs were queued (targets whose scope excludes them get none).
    pub fn reprovision_person(&self, id: &str) -> Result<usize, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let p = Self::stored_person(&tx, id)?.ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        let action = if p.status == Status::Deleted { Action::Deleted } else { Action::Reprovision };
        let queued = Self::enqueue(&tx, &Self::lite_targets(&tx)?, &p, action)?;
        tx.commit()?;
        Ok(queued)
    }
}
/// The SQL a [`PeopleQuery`] becomes, in either backend's dialect: the
/// WHERE condition (with numbered placeholders), its values in order, and
/// the ORDER BY. One rule for both: up to eight words, each matched in the
/// search text with LIKE's wildcards escaped; deleted people left out.
pub(crate) fn people_sql(q: &PeopleQuery, dialect: Dialect) -> (String, Vec<String>, &'static str) {
    let sqlite = dialect == Dialect::Sqlite;
    let placeholder = |n: usize| if sqlite { format!("?{n}") } else { format!("${n}") };
    let escape = |w: &str| format!("%{}%", w.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let mut values = Vec::new();
    let mut conditions = vec!["status <> 'deleted'".to_string()];
    for w in q.text.split_whitespace().take(8) {
        values.push(escape(w));
        conditions.push(format!("search LIKE {} ESCAPE '\\'", placeholder(values.len())));
    }
    if let Some(status) = &q.status {
        values.push(status.as_str().to_string());
        conditions.push(format!("status = {}", placeholder(values.len())));
    }
    if let Some(a) = &q.affiliation {
        values.push(a.to_lowercase());
        let p = placeholder(values.len());
        conditions.push(if sqlite {
            format!("EXISTS (SELECT 1 FROM json_each(data, '$.roles') r WHERE lower(json_extract(r.value, '$.affiliation')) = {p})")
        } else {
            format!("EXISTS (SELECT 1 FROM jsonb_array_elements(data::jsonb -> 'roles') r WHERE lower(r ->> 'affiliation') = {p})")
        });
    }
    let order = match (q.sort, q.descending, sqlite) {
        (PeopleSort::Name, false, true) => "sort_name COLLATE NOCASE, id",
        (PeopleSort::Name, true, true) => "sort_name COLLATE NOCASE DESC, id DESC",
        (PeopleSort::Name, false, false) => "lower(sort_name), id",
        (PeopleSort::Name, true, false) => "lower(sort_name) DESC, id DESC",
        (PeopleSort::Id, false, _) => "id",
        (PeopleSort::Id, true, _) => "id DESC",
        (PeopleSort::Updated, false, _) => "updated_at, id",
        (PeopleSort::Updated, true, _) => "updated_at DESC, id DESC",
    };
    (conditions.join(" AND "), values, order)
}

/// Which SQL a query is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite's.
    Sqlite,
    /// PostgreSQL's.
    Postgres,
}

