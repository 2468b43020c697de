//! Groups on PostgreSQL: their rows, their members (indexed as each person
//! is written) and the group jobs every change queues in its own
//! transaction, as on SQLite. A (group, target) pair's row in
//! `provisioned_groups` is its lock, as a person's `provisioned` row is.

use std::collections::BTreeSet;

use deadpool_postgres::Transaction;

use super::PgStore;
use super::servers::conflict;
use crate::domain::{Action, Group, GroupAction, GroupJob, Person, Scope, Status};
use crate::store::groups::{GroupIndex, membership_changes, set_membership};
use crate::store::targets::read_scope;
use crate::store::{GroupJobInput, GroupSummary, Member, StoreError, now_ms};

impl PgStore {
    /// Adds a group (an empty id gets a new one) with `members`, and
    /// queues it for the targets that provision groups; all or nothing.
    pub async fn create_group(&self, mut g: Group, members: &[String]) -> Result<Group, StoreError> {
        if g.id.is_empty() {
            g.id = crate::domain::new_id();
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(r) = tx.query_opt("SELECT deleted FROM groups WHERE id = $1", &[&g.id]).await? {
            let why = if r.get(0) { "belonged to a deleted group; registry ids are never reused" } else { "is taken" };
            return Err(StoreError::Conflict(format!("the group id {} {why}", g.id)));
        }
        tx.execute("INSERT INTO groups (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)", &[&g.id, &g.name, &g.description, &now_ms()])
            .await
            .map_err(|e| {
                // The id made by another node meanwhile, or the name taken.
                let id_taken = e.as_db_error().and_then(|d| d.constraint()) == Some("groups_pkey");
                conflict(e, || if id_taken { format!("the group id {} is taken", g.id) } else { format!("a group named '{}' exists already", g.name) })
            })?;
        Self::enqueue_group(&tx, &g.id, GroupAction::Added).await?;
        Self::set_members_in(&tx, &g.id, members).await?;
        tx.commit().await?;
        Ok(g)
    }

    /// Saves a rename or a new description, and `members` when given;
    /// whether anything changed.
    pub async fn update_group(&self, g: &Group, members: Option<&[String]>) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::lock_group(&tx, &g.id).await?;
        let old = Self::live_group(&tx, &g.id).await?;
        let mut changed = false;
        if old != *g {
            tx.execute("UPDATE groups SET name = $2, description = $3, updated_at = $4 WHERE id = $1", &[&g.id, &g.name, &g.description, &now_ms()])
                .await
                .map_err(|e| conflict(e, || format!("a group named '{}' exists already", g.name)))?;
            Self::enqueue_group(&tx, &g.id, GroupAction::Updated).await?;
            changed = true;
        }
        if let Some(members) = members {
            changed |= Self::set_members_in(&tx, &g.id, members).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes a group: its members leave it, the targets that have it
    /// remove it; the row stays, marked deleted.
    pub async fn delete_group(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::lock_group(&tx, id).await?;
        Self::live_group(&tx, id).await?;
        let targets = Self::lite_targets(&tx).await?;
        // The group's own members-changed is moot: it is being deleted.
        let mut changed = BTreeSet::new();
        for person in Self::member_ids(&tx, id).await? {
            let Some(mut p) = Self::stored_person(&tx, &person).await? else { continue };
            p.groups.retain(|g| g != id);
            Self::write_person(&tx, &p, now_ms(), false, &mut changed).await?;
            Self::enqueue_person(&tx, &targets, &p, Action::Updated).await?;
        }
        tx.execute("UPDATE groups SET deleted = TRUE, updated_at = $2 WHERE id = $1", &[&id, &now_ms()]).await?;
        let known: Vec<i64> = tx
            .query("SELECT target_id FROM provisioned_groups WHERE group_id = $1 AND state <> 'removed' ORDER BY target_id", &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute("DELETE FROM group_jobs WHERE group_id = $1 AND state <> 'running'", &[&id]).await?;
        for target in known {
            Self::enqueue_group_one(&tx, id, target, GroupAction::Deleted).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes `members` the group's members, each person saved with jobs.
    pub async fn set_group_members(&self, id: &str, members: &[String]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::lock_group(&tx, id).await?;
        Self::live_group(&tx, id).await?;
        Self::set_members_in(&tx, id, members).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds `join` and takes out `leave`, in one transaction.
    pub async fn change_group_members(&self, id: &str, join: &[String], leave: &[String]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        Self::lock_group(&tx, id).await?;
        Self::live_group(&tx, id).await?;
        let mut members: BTreeSet<String> = Self::member_ids(&tx, id).await?.into_iter().collect();
        members.extend(join.iter().cloned());
        for p in leave {
            members.remove(p);
        }
        Self::set_members_in(&tx, id, &members.into_iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_members_in(tx: &Transaction<'_>, id: &str, members: &[String]) -> Result<bool, StoreError> {
        let now: BTreeSet<&String> = members.iter().collect();
        let before: BTreeSet<String> = Self::member_ids(tx, id).await?.into_iter().collect();
        let targets = Self::lite_targets(tx).await?;
        let mut changed = false;
        let mut groups = BTreeSet::new();
        // In id order, so the people (and their pairs) are locked in the
        // order every other transaction takes them.
        for (person, joins) in membership_changes(&before, &now) {
            let mut p = Self::stored_person(tx, person)
                .await?
                .filter(|p| p.status != Status::Deleted)
                .ok_or_else(|| StoreError::NotFound(format!("person {person} (named as a member of group {id})")))?;
            set_membership(&mut p, id, joins);
            Self::write_person(tx, &p, now_ms(), false, &mut groups).await?;
            Self::enqueue_person(tx, &targets, &p, Action::Updated).await?;
            changed = true;
        }
        Self::members_changed(tx, &groups).await?;
        Ok(changed)
    }

    /// Every live group with its member count, by name.
    pub async fn groups(&self) -> Result<Vec<GroupSummary>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT g.id, g.name, g.description, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id)
                 FROM groups g WHERE NOT g.deleted ORDER BY lower(g.name), g.id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| GroupSummary { group: Group { id: r.get(0), name: r.get(1), description: r.get(2) }, members: r.get::<_, i64>(3) as usize }).collect())
    }

    /// One live group.
    pub async fn group(&self, id: &str) -> Result<Group, StoreError> {
        Self::live_group(&self.client().await?, id).await
    }

    /// The group's members' ids, in order.
    pub async fn group_members(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        Self::live_group(&client, id).await?;
        Self::member_ids(&client, id).await
    }

    /// A page of the group's members by name, and how many there are.
    pub async fn group_members_page(&self, id: &str, offset: usize, limit: usize) -> Result<(Vec<(String, String)>, usize), StoreError> {
        let client = self.client().await?;
        Self::live_group(&client, id).await?;
        let total: i64 = client.query_one("SELECT count(*) FROM group_members WHERE group_id = $1", &[&id]).await?.get(0);
        let rows = client
            .query(
                "SELECT p.id, p.sort_name FROM group_members m JOIN people p ON p.id = m.person_id
                 WHERE m.group_id = $1 ORDER BY lower(p.sort_name), p.id LIMIT $2 OFFSET $3",
                &[&id, &(limit as i64), &(offset as i64)],
            )
            .await?;
        Ok((rows.iter().map(|r| (r.get(0), r.get(1))).collect(), total as usize))
    }

    /// The live group with `name` (any case) or, failing that, `id`.
    pub async fn group_by_name_or_id(&self, key: &str) -> Result<Option<Group>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, name, description FROM groups WHERE NOT deleted AND (lower(name) = lower($1) OR id = $1) ORDER BY lower(name) = lower($1) DESC LIMIT 1",
                &[&key],
            )
            .await?;
        Ok(row.map(|r| Group { id: r.get(0), name: r.get(1), description: r.get(2) }))
    }

    /// Records whether a target's plugin provisions groups; a target that
    /// starts to gets its groups queued.
    pub async fn set_target_provisions_groups(&self, target: i64, on: bool) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let was: bool = tx
            .query_opt("SELECT provisions_groups FROM targets WHERE id = $1 FOR NO KEY UPDATE", &[&target])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("target {target}")))?
            .get(0);
        if was == on {
            return Ok(());
        }
        tx.execute("UPDATE targets SET provisions_groups = $2 WHERE id = $1", &[&target, &on]).await?;
        if on {
            let scope = Self::group_targets(&tx).await?.into_iter().find(|(id, _)| *id == target).map(|(_, s)| s).unwrap_or_default();
            for g in Self::live_group_ids(&tx).await?.iter().filter(|g| scope.includes_group(g)) {
                Self::enqueue_group_one(&tx, g, target, GroupAction::Added).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Turns group names in `people`'s `groups` into ids, creating the
    /// groups no one has yet (two imports naming one new group at once
    /// make it once: its name is unique).
    pub(super) async fn resolve_groups(&self, people: &mut [Person]) -> Result<(), StoreError> {
        if people.iter().all(|p| p.groups.is_empty()) {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut known = GroupIndex::new(tx.query("SELECT id, name FROM groups WHERE NOT deleted", &[]).await?.iter().map(|r| (r.get(0), r.get(1))));
        let now = now_ms();
        for p in people.iter_mut() {
            for g in p.groups.iter_mut() {
                let id = match known.find(g) {
                    Some(id) => id,
                    None => {
                        let group = crate::store::groups::group_named(&p.id, g)?;
                        // A group of that name made by another node meanwhile
                        // is used instead (the name is unique in any case).
                        let made = tx
                            .query_opt(
                                "INSERT INTO groups (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING RETURNING id",
                                &[&group.id, &group.name, &now],
                            )
                            .await?;
                        let id = match made {
                            Some(_) => {
                                Self::enqueue_group(&tx, &group.id, GroupAction::Added).await?;
                                group.id
                            }
                            None => tx
                                .query_opt("SELECT id FROM groups WHERE NOT deleted AND lower(name) = lower($1)", &[&group.name])
                                .await?
                                .map(|r| r.get(0))
                                .ok_or_else(|| StoreError::Conflict(format!("the group '{}' could not be made; import again", group.name)))?,
                        };
                        known.add(&id, &group.name);
                        id
                    }
                };
                *g = id;
            }
            p.groups.sort();
            p.groups.dedup();
        }
        tx.commit().await?;
        Ok(())
    }

    /// A target's scope changed: where it provisions groups, the groups
    /// that entered are added and those that left (and it has) removed.
    pub(super) async fn rescope_groups(tx: &Transaction<'_>, target: i64, old: &Scope, new: &Scope) -> Result<(), StoreError> {
        if old.groups == new.groups || !Self::group_targets(tx).await?.iter().any(|(t, _)| *t == target) {
            return Ok(());
        }
        for g in Self::live_group_ids(tx).await? {
            match (old.includes_group(&g), new.includes_group(&g)) {
                (true, false) => {
                    let has: Option<String> = tx
                        .query_opt("SELECT state FROM provisioned_groups WHERE group_id = $1 AND target_id = $2", &[&g, &target])
                        .await?
                        .map(|r| r.get(0));
                    if has.is_some_and(|s| s != "removed") {
                        Self::enqueue_group_one(tx, &g, target, GroupAction::Deleted).await?;
                    }
                }
                (false, true) => Self::enqueue_group_one(tx, &g, target, GroupAction::Added).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Locks the group's row: two changes of one group's members (or a
    /// deletion) apply one after the other, neither lost. Taken before any
    /// person's row.
    async fn lock_group(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
        tx.execute("SELECT 1 FROM groups WHERE id = $1 FOR NO KEY UPDATE", &[&id]).await?;
        Ok(())
    }

    async fn live_group(db: &impl deadpool_postgres::GenericClient, id: &str) -> Result<Group, StoreError> {
        let row = db.query_opt("SELECT id, name, description FROM groups WHERE id = $1 AND NOT deleted", &[&id]).await?;
        row.map(|r| Group { id: r.get(0), name: r.get(1), description: r.get(2) }).ok_or_else(|| StoreError::NotFound(format!("group {id}")))
    }

    async fn live_group_ids(tx: &Transaction<'_>) -> Result<Vec<String>, StoreError> {
        Ok(tx.query("SELECT id FROM groups WHERE NOT deleted ORDER BY id", &[]).await?.iter().map(|r| r.get(0)).collect())
    }

    async fn member_ids(db: &impl deadpool_postgres::GenericClient, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(db.query("SELECT person_id FROM group_members WHERE group_id = $1 ORDER BY person_id", &[&id]).await?.iter().map(|r| r.get(0)).collect())
    }

    /// The targets that provision groups, with their scopes.
    async fn group_targets(tx: &Transaction<'_>) -> Result<Vec<(i64, Scope)>, StoreError> {
        let rows = tx.query("SELECT id, scope FROM targets WHERE provisions_groups ORDER BY id", &[]).await?;
        rows.iter().map(|r| Ok((r.get(0), read_scope(r.get(0), &r.get::<_, String>(1))?))).collect()
    }

    /// Writes `p`'s memberships to the index (every group named must
    /// exist); the groups joined or left get `members-changed`.
    pub(super) async fn write_memberships(tx: &Transaction<'_>, p: &Person, changed: &mut BTreeSet<String>) -> Result<(), StoreError> {
        let before: BTreeSet<String> = tx.query("SELECT group_id FROM group_members WHERE person_id = $1", &[&p.id]).await?.iter().map(|r| r.get(0)).collect();
        let after: BTreeSet<String> = if p.status == Status::Deleted { BTreeSet::new() } else { p.groups.iter().cloned().collect() };
        if before == after {
            return Ok(());
        }
        for g in after.difference(&before) {
            // FOR SHARE: the group cannot be deleted until this commits.
            let live: Option<bool> = tx.query_opt("SELECT deleted FROM groups WHERE id = $1 FOR SHARE", &[&g]).await?.map(|r| r.get(0));
            if live != Some(false) {
                return Err(StoreError::NotFound(format!("group {g} (named in the groups of person {})", p.id)));
            }
            tx.execute("INSERT INTO group_members (group_id, person_id) VALUES ($1, $2)", &[&g, &p.id]).await?;
        }
        for g in before.difference(&after) {
            tx.execute("DELETE FROM group_members WHERE group_id = $1 AND person_id = $2", &[&g, &p.id]).await?;
        }
        changed.extend(before.symmetric_difference(&after).cloned());
        Ok(())
    }

    /// Queues `members-changed` for `groups`, at the end of the transaction
    /// that changed them, in (group, target) order: their pairs' rows are
    /// the last locks it takes, in one order, so two such transactions
    /// never wait on each other in turn.
    pub(super) async fn members_changed(tx: &Transaction<'_>, groups: &BTreeSet<String>) -> Result<(), StoreError> {
        for g in groups {
            Self::enqueue_group(tx, g, GroupAction::MembersChanged).await?;
        }
        Ok(())
    }

    /// Locks the rows of the groups a person names (`FOR SHARE`, in id
    /// order) before the person's: a group cannot be deleted while someone
    /// joins it, and locks are taken groups first, people next, as a
    /// group's own changes take them.
    pub(super) async fn lock_groups(tx: &Transaction<'_>, ids: &[String]) -> Result<(), StoreError> {
        if !ids.is_empty() {
            tx.execute("SELECT 1 FROM groups WHERE id = ANY($1) ORDER BY id FOR SHARE", &[&ids]).await?;
        }
        Ok(())
    }

    /// The (group, target) pairs whose sent members differ from what each
    /// of `members` (person, target, their record there if provisioned)
    /// now has there: those groups must hear of it. One query for a batch.
    pub(super) async fn members_changed_on(tx: &Transaction<'_>, members: &[(&str, i64, Option<String>)]) -> Result<BTreeSet<(String, i64)>, StoreError> {
        let mut pairs = BTreeSet::new();
        if members.is_empty() {
            return Ok(pairs);
        }
        let people: Vec<&str> = members.iter().map(|m| m.0).collect();
        let targets: Vec<i64> = members.iter().map(|m| m.1).collect();
        let now: std::collections::HashMap<(&str, i64), Option<&str>> = members.iter().map(|(p, t, r)| ((*p, *t), r.as_deref())).collect();
        let rows = tx
            .query(
                "SELECT b.person_id, b.target_id, m.group_id, pg.members, t.scope
                 FROM unnest($1::text[], $2::bigint[]) AS b(person_id, target_id)
                 JOIN group_members m ON m.person_id = b.person_id
                 JOIN provisioned_groups pg ON pg.group_id = m.group_id AND pg.target_id = b.target_id AND pg.state <> 'removed'
                 JOIN targets t ON t.id = b.target_id AND t.provisions_groups",
                &[&people, &targets],
            )
            .await?;
        for r in rows {
            let (person, target, group, sent, scope): (String, i64, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            if !read_scope(target, &scope)?.includes_group(&group) {
                continue;
            }
            let sent: Vec<Member> = serde_json::from_str(&sent).unwrap_or_default();
            let known = sent.iter().find(|(p, _, _)| *p == person).map(|(_, t, id)| format!("{t} {id}"));
            if known.as_deref() != now.get(&(person.as_str(), target)).copied().flatten() {
                pairs.insert((group, target));
            }
        }
        Ok(pairs)
    }

    /// The ids of the targets that provision groups.
    pub(super) async fn group_target_ids(tx: &Transaction<'_>) -> Result<Vec<i64>, StoreError> {
        Ok(tx.query("SELECT id FROM targets WHERE provisions_groups", &[]).await?.iter().map(|r| r.get(0)).collect())
    }

    /// Queues `action` for the group on every target that provisions it.
    pub(super) async fn enqueue_group(tx: &Transaction<'_>, group: &str, action: GroupAction) -> Result<usize, StoreError> {
        let mut queued = 0;
        for (target, scope) in Self::group_targets(tx).await? {
            if scope.includes_group(group) {
                Self::enqueue_group_one(tx, group, target, action).await?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Queues one group job, as on SQLite (a queued job covers later
    /// updates; an addition or deletion replaces what is queued). The
    /// pair's row is written first: its lock orders the pair's jobs.
    pub(super) async fn enqueue_group_one(tx: &Transaction<'_>, group: &str, target: i64, action: GroupAction) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO provisioned_groups (group_id, target_id, state, updated_at) VALUES ($1, $2, 'pending', $3)
             ON CONFLICT (group_id, target_id) DO UPDATE SET updated_at = excluded.updated_at",
            &[&group, &target, &now_ms()],
        )
        .await?;
        let queued: Option<String> = tx
            .query_opt("SELECT action FROM group_jobs WHERE group_id = $1 AND target_id = $2 AND state = 'queued' ORDER BY id DESC LIMIT 1", &[&group, &target])
            .await?
            .map(|r| r.get(0));
        if action.covered_by(queued.as_deref().and_then(GroupAction::parse)) {
            return Ok(());
        }
        tx.execute("DELETE FROM group_jobs WHERE group_id = $1 AND target_id = $2 AND state IN ('queued', 'failed')", &[&group, &target]).await?;
        tx.execute("INSERT INTO group_jobs (group_id, target_id, action, created_at) VALUES ($1, $2, $3, $4)", &[&group, &target, &action.as_str(), &now_ms()]).await?;
        tx.execute("UPDATE provisioned_groups SET state = 'pending' WHERE group_id = $1 AND target_id = $2", &[&group, &target]).await?;
        Ok(())
    }

    /// The group, its members on the job's target, and what was sent before.
    pub async fn group_job_input(&self, job: &GroupJob) -> Result<GroupJobInput, StoreError> {
        let client = self.client().await?;
        let (group, deleted) = client
            .query_opt("SELECT id, name, description, deleted FROM groups WHERE id = $1", &[&job.group_id])
            .await?
            .map(|r| (Group { id: r.get(0), name: r.get(1), description: r.get(2) }, r.get::<_, bool>(3)))
            .ok_or_else(|| StoreError::NotFound(format!("group {}", job.group_id)))?;
        let members: Vec<Member> = if deleted {
            Vec::new()
        } else {
            client
                .query(
                    "SELECT m.person_id, v.remote_type, v.remote_id FROM group_members m
                     JOIN provisioned v ON v.person_id = m.person_id AND v.target_id = $2
                     WHERE m.group_id = $1 AND v.state = 'provisioned' AND v.remote_type IS NOT NULL AND v.remote_id IS NOT NULL
                     ORDER BY m.person_id",
                    &[&job.group_id, &job.target_id],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        };
        let row = client
            .query_opt("SELECT members, remote_type, remote_id FROM provisioned_groups WHERE group_id = $1 AND target_id = $2", &[&job.group_id, &job.target_id])
            .await?;
        let (sent, current) = match row {
            Some(r) => {
                let sent: Vec<Member> =
                    serde_json::from_str(&r.get::<_, String>(0)).map_err(|e| StoreError::Unreadable(format!("members sent of group {}: {e}", job.group_id)))?;
                (sent, r.get::<_, Option<String>>(1).zip(r.get::<_, Option<String>>(2)))
            }
            None => (Vec::new(), None),
        };
        Ok(GroupJobInput { group, deleted, members, sent, current })
    }

    /// The group jobs not yet done, oldest first: (group, target, action, state).
    pub async fn group_jobs(&self) -> Result<Vec<(String, i64, GroupAction, String)>, StoreError> {
        let rows = self.client().await?.query("SELECT group_id, target_id, action, state FROM group_jobs ORDER BY id", &[]).await?;
        rows.iter()
            .map(|r| {
                let a: String = r.get(2);
                let action = GroupAction::parse(&a).ok_or_else(|| StoreError::Unreadable(format!("group job action '{a}'")))?;
                Ok((r.get(0), r.get(1), action, r.get(3)))
            })
            .collect()
    }

    /// What each target has of a group: (target, state, remote id, message).
    pub async fn group_states(&self, group: &str) -> Result<Vec<(i64, String, Option<String>, Option<String>)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT target_id, state, remote_id, message FROM provisioned_groups WHERE group_id = $1 ORDER BY target_id", &[&group])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }
}
