//! People on PostgreSQL: each change and the jobs it causes commit in one
//! transaction, as on SQLite; a deleted person stays as a tombstone.

use std::collections::{BTreeSet, HashMap, HashSet};

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::domain::{Action, HistoryEntry, Person, ProvState, Status, TargetState};
use crate::store::{PeopleQuery, StoreError, now_ms};

fn state_of(s: &str) -> Result<ProvState, StoreError> {
    ProvState::parse(s).ok_or_else(|| StoreError::Unreadable(format!("provisioning state '{s}'")))
}

impl PgStore {
    /// Writes `p` (a new row when `insert`); false when a new row's id was
    /// taken meanwhile by another node's transaction (nothing written).
    /// The groups joined or left go into `changed`, for the transaction to
    /// queue at its end ([`PgStore::members_changed`]).
    pub(super) async fn write_person(tx: &Transaction<'_>, p: &Person, now: i64, insert: bool, changed: &mut BTreeSet<String>) -> Result<bool, StoreError> {
        let data = serde_json::to_string(p).expect("plain data");
        let sql = if insert {
            "INSERT INTO people (id, status, sort_name, search, data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING"
        } else {
            "UPDATE people SET status = $2, sort_name = $3, search = $4, data = $5, updated_at = $6 WHERE id = $1"
        };
        if tx.execute(sql, &[&p.id, &p.status.as_str(), &p.display_name(), &p.search_text(), &data, &now]).await? == 0 {
            return Ok(false);
        }
        Self::write_memberships(tx, p, changed).await?;
        Ok(true)
    }

    /// The stored person, the row locked: a change of one person waits for
    /// another's to commit, neither lost.
    pub(super) async fn stored_person(tx: &Transaction<'_>, id: &str) -> Result<Option<Person>, StoreError> {
        let row = tx.query_opt("SELECT data FROM people WHERE id = $1 FOR NO KEY UPDATE", &[&id]).await?;
        row.map(|r| serde_json::from_str(&r.get::<_, String>(0)).map_err(|e| StoreError::Unreadable(format!("record of person {id}: {e}")))).transpose()
    }

    /// Adds a person and queues their provisioning, in one transaction.
    pub async fn create_person(&self, mut p: Person) -> Result<Person, StoreError> {
        if p.id.is_empty() {
            p.id = crate::domain::new_id();
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::lock_groups(&tx, &p.groups).await?;
        if let Some(old) = Self::stored_person(&tx, &p.id).await? {
            let why = if old.status == Status::Deleted { "belonged to a deleted person; registry ids are never reused" } else { "is taken" };
            return Err(StoreError::Conflict(format!("the id {} {why}", p.id)));
        }
        let mut changed = BTreeSet::new();
        if !Self::write_person(&tx, &p, now_ms(), true, &mut changed).await? {
            return Err(StoreError::Conflict(format!("the id {} is taken", p.id)));
        }
        Self::enqueue_person(&tx, &Self::lite_targets(&tx).await?, &p, Action::Added).await?;
        Self::members_changed(&tx, &changed).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Saves an edit and queues what it means; the action, if any.
    pub async fn update_person(&self, p: &Person) -> Result<Option<Action>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::lock_groups(&tx, &p.groups).await?;
        let old = Self::stored_person(&tx, &p.id).await?.filter(|o| o.status != Status::Deleted).ok_or_else(|| StoreError::NotFound(format!("person {}", p.id)))?;
        if old == *p {
            return Ok(None);
        }
        let action = Action::for_change(old.status, p.status);
        let mut changed = BTreeSet::new();
        Self::write_person(&tx, p, now_ms(), false, &mut changed).await?;
        Self::enqueue_person(&tx, &Self::lite_targets(&tx).await?, p, action).await?;
        Self::members_changed(&tx, &changed).await?;
        tx.commit().await?;
        Ok(Some(action))
    }

    /// Deletes a person: a tombstone until every target removed them.
    pub async fn delete_person(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut p = Self::stored_person(&tx, id).await?.filter(|o| o.status != Status::Deleted).ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        p.status = Status::Deleted;
        let mut changed = BTreeSet::new();
        Self::write_person(&tx, &p, now_ms(), false, &mut changed).await?;
        let known: HashSet<i64> =
            tx.query("SELECT target_id FROM provisioned WHERE person_id = $1 AND state <> 'not_in_scope'", &[&id]).await?.iter().map(|r| r.get(0)).collect();
        for t in Self::lite_targets(&tx).await?.into_iter().filter(|t| known.contains(&t.id)) {
            Self::enqueue_in(&tx, id, t.id, Action::Deleted, None).await?;
        }
        Self::members_changed(&tx, &changed).await?;
        tx.commit().await?;
        Ok(())
    }
    /// One person (a deleted one too).
    pub async fn person(&self, id: &str) -> Result<Person, StoreError> {
        let row = self.client().await?.query_opt("SELECT data FROM people WHERE id = $1", &[&id]).await?;
        let row = row.ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        serde_json::from_str(&row.get::<_, String>(0)).map_err(|e| StoreError::Unreadable(format!("record of person {id}: {e}")))
    }

    /// One page of people (deleted ones left out) matching `query`.
    pub async fn people(&self, query: &str, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError> {
        self.people_page(&PeopleQuery { text: query.to_string(), ..Default::default() }, offset, limit).await
    }

    /// One page of people matching `q`, and how many match in all.
    pub async fn people_page(&self, q: &PeopleQuery, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError> {
        let (filter, values, order) = crate::store::people::people_sql(q, crate::store::people::Dialect::Postgres);
        let client = self.client().await?;
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let total: i64 = client.query_one(&format!("SELECT count(*) FROM people WHERE {filter}"), &params).await?.get(0);
        let (limit, offset) = (limit as i64, offset as i64);
        let mut page = params.clone();
        page.push(&limit);
        page.push(&offset);
        let rows = client
            .query(&format!("SELECT data FROM people WHERE {filter} ORDER BY {order} LIMIT ${} OFFSET ${}", params.len() + 1, params.len() + 2), &page)
            .await?;
        let people = rows.iter().filter_map(|r| serde_json::from_str(&r.get::<_, String>(0)).ok()).collect();
        Ok((people, total as usize))
    }

    /// Per person, how many targets have them in each state.
    pub async fn state_summaries(&self, ids: &[String]) -> Result<HashMap<String, Vec<(ProvState, i64)>>, StoreError> {
        let mut out: HashMap<String, Vec<(ProvState, i64)>> = HashMap::new();
        let rows = self
            .client()
            .await?
            .query("SELECT person_id, state, count(*) FROM provisioned WHERE person_id = ANY($1) GROUP BY person_id, state ORDER BY person_id, state", &[&ids])
            .await?;
        for r in rows {
            out.entry(r.get(0)).or_default().push((state_of(&r.get::<_, String>(1))?, r.get(2)));
        }
        Ok(out)
    }

    /// A person's state with every target that knows them.
    pub async fn person_states(&self, id: &str) -> Result<Vec<TargetState>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT p.target_id, t.name, p.state, p.remote_type, p.remote_id, p.message, p.updated_at
                 FROM provisioned p JOIN targets t ON t.id = p.target_id WHERE p.person_id = $1 ORDER BY lower(t.name), t.id",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TargetState {
                    target_id: r.get(0),
                    target: r.get(1),
                    state: state_of(&r.get::<_, String>(2))?,
                    remote_type: r.get(3),
                    remote_id: r.get(4),
                    message: r.get(5),
                    updated_at: r.get(6),
                })
            })
            .collect()
    }

    /// The latest `limit` history lines of a person, newest first.
    pub async fn history(&self, id: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT h.at, COALESCE(t.name, h.target_name), h.action, h.ok, h.message FROM history h LEFT JOIN targets t ON t.id = h.target_id
                 WHERE h.person_id = $1 ORDER BY h.id DESC LIMIT $2",
                &[&id, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| HistoryEntry { at: r.get(0), target: r.get(1), action: r.get(2), ok: r.get(3), message: r.get(4) }).collect())
    }

    /// Queues the person for one target now, the job acting as `admin`
    /// when given. Whether a job was queued.
    pub async fn reprovision_person_as(&self, id: &str, target: i64, admin: Option<i64>) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let p = Self::stored_person(&tx, id).await?.ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        let lite = Self::lite_targets(&tx).await?.into_iter().find(|t| t.id == target).ok_or_else(|| StoreError::NotFound(format!("target {target}")))?;
        let action = if p.status == Status::Deleted { Action::Deleted } else { Action::Reprovision };
        let queued = Self::enqueue_for(&tx, &lite, &p, action, None).await?;
        if queued && admin.is_some() {
            tx.execute("UPDATE jobs SET acting_admin = $3 WHERE id = (SELECT MAX(id) FROM jobs WHERE person_id = $1 AND target_id = $2)", &[&id, &target, &admin]).await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Queues the person again for every target; how many jobs.
    pub async fn reprovision_person(&self, id: &str) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let p = Self::stored_person(&tx, id).await?.ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        let action = if p.status == Status::Deleted { Action::Deleted } else { Action::Reprovision };
        let queued = Self::enqueue_person(&tx, &Self::lite_targets(&tx).await?, &p, action).await?;
        tx.commit().await?;
        Ok(queued)
    }
}
