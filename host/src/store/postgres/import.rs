//! Imports on PostgreSQL: many people, 500 per transaction, each with
//! the jobs their change means.
//!
//! Every transaction takes its people's locks in id order, as every other
//! transaction that locks several people does, so two imports of the same
//! ids wait on each other in one order and never deadlock. Within that
//! order, a run of consecutive people who are new to the registry and in
//! no group is written set-based (one statement for the people, up to
//! three per target for their states and jobs) instead of a handful of
//! round trips per person: 10,000 new people took 5.5 s person by person.
//! A run one of whose ids another import wrote meanwhile is undone to its
//! savepoint and goes person by person, still in order.

use std::collections::{BTreeSet, HashSet};

use deadpool_postgres::Transaction;

use super::PgStore;
use crate::domain::{Action, ImportStats, Person, ProvState, Status};
use crate::store::jobs::Lite;
use crate::store::{StoreError, now_ms};

/// People written per transaction by an import.
const PEOPLE_PER_TRANSACTION: usize = 500;

/// What one chunk's transaction carries from person to person.
struct Chunk<'a> {
    targets: &'a [Lite],
    now: i64,
    /// Groups joined or left, for members-changed at the end.
    changed: BTreeSet<String>,
    /// Rows imported before this chunk (for messages).
    done: usize,
}

impl PgStore {
    /// Adds or updates many people, 500 per transaction (each person with
    /// their jobs); `progress` gets the count done. A file naming a deleted
    /// person's id changes nothing.
    pub async fn import_people(&self, mut people: Vec<Person>, mut progress: impl FnMut(usize)) -> Result<ImportStats, StoreError> {
        let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
        let deleted: Vec<String> =
            self.client().await?.query("SELECT id FROM people WHERE status = 'deleted' AND id = ANY($1) ORDER BY id", &[&ids]).await?.iter().map(|r| r.get(0)).collect();
        if !deleted.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{} belonged to deleted people and registry ids are never reused; give those rows new ids (nothing was imported)",
                deleted.join(", ")
            )));
        }
        self.resolve_groups(&mut people).await?;
        let mut stats = ImportStats::default();
        let mut done = 0;
        for chunk in people.chunks(PEOPLE_PER_TRANSACTION) {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let targets = Self::lite_targets(&tx).await?;
            let n = chunk.len();
            let mut chunk: Vec<Person> = chunk.to_vec();
            for p in chunk.iter_mut().filter(|p| p.id.is_empty()) {
                p.id = crate::domain::new_id();
            }
            chunk.sort_by(|a, b| a.id.cmp(&b.id));
            // The groups the chunk names, before any person (as a group's
            // own changes take it).
            let mut named: Vec<String> = chunk.iter().flat_map(|p| p.groups.iter().cloned()).collect();
            named.sort();
            named.dedup();
            Self::lock_groups(&tx, &named).await?;
            let ids: Vec<&str> = chunk.iter().map(|p| p.id.as_str()).collect();
            let existing: HashSet<String> = tx.query("SELECT id FROM people WHERE id = ANY($1)", &[&ids]).await?.iter().map(|r| r.get(0)).collect();
            let mut c = Chunk { targets: &targets, now: now_ms(), changed: BTreeSet::new(), done };
            let mut run: Vec<Person> = Vec::new();
            let mut last: Option<String> = None;
            for p in chunk {
                // A repeated id goes the ordinary way: it updates the first.
                let new = p.groups.is_empty() && !existing.contains(&p.id) && last.as_deref() != Some(p.id.as_str());
                last = Some(p.id.clone());
                if new {
                    run.push(p);
                    continue;
                }
                Self::import_run(&tx, &mut c, std::mem::take(&mut run), &mut stats).await?;
                Self::import_one(&tx, &mut c, p, &mut stats).await?;
            }
            Self::import_run(&tx, &mut c, run, &mut stats).await?;
            Self::members_changed(&tx, &c.changed).await?;
            tx.commit().await?;
            done += n;
            progress(done);
        }
        Ok(stats)
    }

    /// A run of new people in no group, consecutive in id order: written
    /// set-based, or, if another import wrote one of them meanwhile, undone
    /// to the savepoint and written person by person.
    async fn import_run(tx: &Transaction<'_>, c: &mut Chunk<'_>, run: Vec<Person>, stats: &mut ImportStats) -> Result<(), StoreError> {
        if run.len() > 1 {
            tx.batch_execute("SAVEPOINT import_run").await?;
            if Self::insert_new_people(tx, c.targets, &run, c.now).await? {
                tx.batch_execute("RELEASE SAVEPOINT import_run").await?;
                stats.added += run.len();
                return Ok(());
            }
            tx.batch_execute("ROLLBACK TO SAVEPOINT import_run").await?;
        }
        for p in run {
            Self::import_one(tx, c, p, stats).await?;
        }
        Ok(())
    }

    /// One person the ordinary way: the stored record locked and compared,
    /// written if changed, and queued by each target's scope.
    async fn import_one(tx: &Transaction<'_>, c: &mut Chunk<'_>, mut p: Person, stats: &mut ImportStats) -> Result<(), StoreError> {
        let mut existing = Self::stored_person(tx, &p.id).await?;
        // Made by another import meanwhile: the row is there now.
        if existing.is_none() && !Self::write_person(tx, &p, c.now, true, &mut c.changed).await? {
            existing = Self::stored_person(tx, &p.id).await?;
        } else if existing.is_none() {
            Self::enqueue_person(tx, c.targets, &p, Action::Added).await?;
            stats.added += 1;
            return Ok(());
        }
        if p.groups.is_empty()
            && let Some(old) = &existing
        {
            p.groups = old.groups.clone();
        }
        match existing {
            None => Err(StoreError::Conflict(format!("{} was written and then removed during the import; import again", p.id))),
            Some(old) if old.status == Status::Deleted => {
                Err(StoreError::Conflict(format!("{} was deleted during the import; only the first {} rows were imported", p.id, c.done)))
            }
            Some(old) if old == p => {
                stats.unchanged += 1;
                Ok(())
            }
            Some(old) => {
                Self::write_person(tx, &p, c.now, false, &mut c.changed).await?;
                Self::enqueue_person(tx, c.targets, &p, Action::for_change(old.status, p.status)).await?;
                stats.updated += 1;
                Ok(())
            }
        }
    }

    /// Writes `run` (new people in no group, distinct ids in id order)
    /// with their states and jobs for every target, as the ordinary way's
    /// `enqueue_for` with `Added` does; false, having written only some of
    /// the people and nothing else, when an id was taken meanwhile.
    async fn insert_new_people(tx: &Transaction<'_>, targets: &[Lite], run: &[Person], now: i64) -> Result<bool, StoreError> {
        let ids: Vec<&str> = run.iter().map(|p| p.id.as_str()).collect();
        let statuses: Vec<&str> = run.iter().map(|p| p.status.as_str()).collect();
        let names: Vec<String> = run.iter().map(|p| p.display_name()).collect();
        let search: Vec<String> = run.iter().map(|p| p.search_text()).collect();
        let data: Vec<String> = run.iter().map(|p| serde_json::to_string(p).expect("plain data")).collect();
        let inserted = tx
            .execute(
                "INSERT INTO people (id, status, sort_name, search, data, created_at, updated_at)
                 SELECT u.id, u.status, u.sort_name, u.search, u.data, $6, $6
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS u(id, status, sort_name, search, data, n)
                 ORDER BY u.n
                 ON CONFLICT (id) DO NOTHING",
                &[&ids, &statuses, &names, &search, &data, &now],
            )
            .await?;
        if inserted as usize != run.len() {
            return Ok(false);
        }
        for t in targets {
            // In scope: a pending state and a job; outside: marked so
            // (a new person has no record there to remove).
            let (inside, outside): (Vec<&Person>, Vec<&Person>) = run.iter().partition(|p| t.scope.includes(p));
            let inside: Vec<&str> = inside.iter().map(|p| p.id.as_str()).collect();
            let outside: Vec<&str> = outside.iter().map(|p| p.id.as_str()).collect();
            for (people, state, message) in [(&inside, ProvState::Pending, None), (&outside, ProvState::NotInScope, Some("outside the target's scope"))] {
                if people.is_empty() {
                    continue;
                }
                tx.execute(
                    "INSERT INTO provisioned (person_id, target_id, state, message, updated_at)
                     SELECT u.id, $2, $3, $4, $5 FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n",
                    &[people, &t.id, &state.as_str(), &message, &now],
                )
                .await?;
            }
            if !inside.is_empty() {
                tx.execute(
                    "INSERT INTO jobs (person_id, target_id, action, created_at)
                     SELECT u.id, $2, $3, $4 FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n",
                    &[&inside, &t.id, &Action::Added.as_str(), &now],
                )
                .await?;
            }
        }
        Ok(true)
    }
}
