//! Groups: their rows, their members (the people whose records name them,
//! indexed in `group_members` as each person is written), and the jobs
//! that provision them on targets whose plugin provisions groups. Every
//! change queues its jobs in its own transaction.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, StoreError, now_ms, unique, write};
use crate::domain::{Action, Group, GroupAction, Person, Scope, Status};

/// The live groups an import's people may name, by id or by name in any
/// case.
pub(super) struct GroupIndex(std::collections::HashMap<String, String>);

impl GroupIndex {
    /// From the live groups' (id, name).
    pub(super) fn new(groups: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut index = GroupIndex(std::collections::HashMap::new());
        for (id, name) in groups {
            index.add(&id, &name);
        }
        index
    }

    /// Knows the group `id` called `name` from now on.
    pub(super) fn add(&mut self, id: &str, name: &str) {
        self.0.insert(name.to_lowercase(), id.to_string());
        self.0.insert(id.to_string(), id.to_string());
    }

    /// The id of the group `key` names (its id, or its name in any case).
    pub(super) fn find(&self, key: &str) -> Option<String> {
        self.0.get(key).or_else(|| self.0.get(&key.to_lowercase())).cloned()
    }
}

/// A new group called `name`, named in `person`'s groups by an import:
/// normalized, with a new id.
pub(super) fn group_named(person: &str, name: &str) -> Result<Group, StoreError> {
    let mut group = Group { id: String::new(), name: name.to_string(), description: None };
    group.normalize().map_err(|ps| StoreError::Conflict(format!("person {person}'s group '{name}': {}", ps[0].message)))?;
    group.id = crate::domain::new_id();
    Ok(group)
}

/// A group as the lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub group: Group,
    /// How many people are members.
    pub members: usize,
}

impl SqliteStore {
    /// Adds a group (already normalized; an empty id gets a new one) with
    /// `members` (person ids), and queues it for the targets that provision
    /// groups; all or nothing.
    pub fn create_group(&self, mut g: Group, members: &[String]) -> Result<Group, StoreError> {
        if g.id.is_empty() {
            g.id = crate::domain::new_id();
        }
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let taken: Option<bool> = tx.query_row("SELECT deleted FROM groups WHERE id = ?1", params![g.id], |r| r.get(0)).optional()?;
        if let Some(deleted) = taken {
            let why = if deleted { "belonged to a deleted group; registry ids are never reused" } else { "is taken" };
            return Err(StoreError::Conflict(format!("the group id {} {why}", g.id)));
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO groups (id, name, description, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![g.id, g.name, g.description, now],
        )
        .map_err(|e| unique(e, || format!("a group named '{}' exists already", g.name)))?;
        Self::enqueue_group(&tx, &g.id, GroupAction::Added)?;
        Self::set_members_in(&tx, &g.id, members)?;
        tx.commit()?;
        Ok(g)
    }

    /// Saves a rename or a new description, and `members` when given;
    /// queues `group-updated` when the group changed; all or nothing.
    /// Whether anything changed.
    pub fn update_group(&self, g: &Group, members: Option<&[String]>) -> Result<bool, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let old = Self::live_group(&tx, &g.id)?;
        let mut changed = false;
        if old != *g {
            tx.execute("UPDATE groups SET name = ?2, description = ?3, updated_at = ?4 WHERE id = ?1", params![g.id, g.name, g.description, now_ms()])
                .map_err(|e| unique(e, || format!("a group named '{}' exists already", g.name)))?;
            Self::enqueue_group(&tx, &g.id, GroupAction::Updated)?;
            changed = true;
        }
        if let Some(members) = members {
            changed |= Self::set_members_in(&tx, &g.id, members)?;
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Deletes a group: its members leave it (which may take them out of
    /// group-scoped targets), and the targets that have it remove it. The
    /// row stays, marked deleted, so its id is never reused.
    pub fn delete_group(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        Self::live_group(&tx, id)?;
        for person in Self::member_ids(&tx, id)? {
            let Some(mut p) = Self::stored_person(&tx, &person)? else { continue };
            p.groups.retain(|g| g != id);
            Self::write_person(&tx, &p, now_ms(), false)?;
            Self::enqueue(&tx, &Self::lite_targets(&tx)?, &p, Action::Updated)?;
        }
        tx.execute("UPDATE groups SET deleted = 1, updated_at = ?2 WHERE id = ?1", params![id, now_ms()])?;
        // Only the targets that have (or are about to have) it.
        let known: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT target_id FROM provisioned_groups WHERE group_id = ?1 AND state != 'removed'")?;
            stmt.query_map(params![id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        tx.execute("DELETE FROM group_jobs WHERE group_id = ?1 AND state != 'running'", params![id])?;
        for target in known {
            Self::enqueue_group_one(&tx, id, target, GroupAction::Deleted)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes `members` (person ids) the group's members: those added join,
    /// the others leave, each person's record saved with their jobs.
    pub fn set_group_members(&self, id: &str, members: &[String]) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        Self::live_group(&tx, id)?;
        Self::set_members_in(&tx, id, members)?;
        tx.commit()?;
        Ok(())
    }

    /// [`SqliteStore::set_group_members`] in `tx`; whether anyone joined or left.
    fn set_members_in(tx: &rusqlite::Transaction<'_>, id: &str, members: &[String]) -> Result<bool, StoreError> {
        let now: BTreeSet<&String> = members.iter().collect();
        let before: BTreeSet<String> = Self::member_ids(tx, id)?.into_iter().collect();
        let targets = Self::lite_targets(tx)?;
        let mut changed = false;
        for (person, joins) in membership_changes(&before, &now) {
            let mut p = Self::stored_person(tx, person)?
                .filter(|p| p.status != Status::Deleted)
                .ok_or_else(|| StoreError::NotFound(format!("person {person} (named as a member of group {id})")))?;
            set_membership(&mut p, id, joins);
            Self::write_person(tx, &p, now_ms(), false)?;
            Self::enqueue(tx, &targets, &p, Action::Updated)?;
            changed = true;
        }
        Ok(changed)
    }

    /// Every live group with its member count, by name.
    pub fn groups(&self) -> Result<Vec<GroupSummary>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT g.id, g.name, g.description, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id)
             FROM groups g WHERE g.deleted = 0 ORDER BY g.name COLLATE NOCASE, g.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(GroupSummary { group: Group { id: r.get(0)?, name: r.get(1)?, description: r.get(2)? }, members: r.get::<_, i64>(3)? as usize })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One live group.
    pub fn group(&self, id: &str) -> Result<Group, StoreError> {
        Self::live_group(&self.db(), id)
    }

    /// The group's members' ids, in order.
    pub fn group_members(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.db();
        Self::live_group(&conn, id)?;
        Self::member_ids(&conn, id)
    }

    /// A page of the group's members, by name: (id, display name), and how
    /// many there are in all.
    pub fn group_members_page(&self, id: &str, offset: usize, limit: usize) -> Result<(Vec<(String, String)>, usize), StoreError> {
        let conn = self.db();
        Self::live_group(&conn, id)?;
        let total: i64 = conn.query_row("SELECT COUNT(*) FROM group_members WHERE group_id = ?1", params![id], |r| r.get(0))?;
        let mut stmt = conn.prepare(
            "SELECT p.id, p.sort_name FROM group_members m JOIN people p ON p.id = m.person_id
             WHERE m.group_id = ?1 ORDER BY p.sort_name COLLATE NOCASE, p.id LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt.query_map(params![id, limit as i64, offset as i64], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok((rows, total as usize))
    }

    /// Adds `join` and takes out `leave` (person ids), in one transaction.
    pub fn change_group_members(&self, id: &str, join: &[String], leave: &[String]) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        Self::live_group(&tx, id)?;
        let mut members: BTreeSet<String> = Self::member_ids(&tx, id)?.into_iter().collect();
        members.extend(join.iter().cloned());
        for p in leave {
            members.remove(p);
        }
        Self::set_members_in(&tx, id, &members.into_iter().collect::<Vec<_>>())?;
        tx.commit()?;
        Ok(())
    }

    /// The live group with `name` (any case) or, failing that, `id`.
    pub fn group_by_name_or_id(&self, key: &str) -> Result<Option<Group>, StoreError> {
        let conn = self.db();
        let id: Option<String> = conn
            .query_row("SELECT id FROM groups WHERE deleted = 0 AND (name = ?1 COLLATE NOCASE OR id = ?1) ORDER BY name = ?1 COLLATE NOCASE DESC LIMIT 1", params![key], |r| r.get(0))
            .optional()?;
        id.map(|id| Self::live_group(&conn, &id)).transpose()
    }

    /// Records whether a target's plugin provisions groups; a target that
    /// starts to gets its groups queued.
    pub fn set_target_provisions_groups(&self, target: i64, on: bool) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let was: bool = tx.query_row("SELECT provisions_groups FROM targets WHERE id = ?1", params![target], |r| r.get(0)).optional()?.ok_or_else(|| StoreError::NotFound(format!("target {target}")))?;
        if was == on {
            return Ok(());
        }
        tx.execute("UPDATE targets SET provisions_groups = ?2 WHERE id = ?1", params![target, on])?;
        if on {
            let scope = Self::group_targets(&tx)?.into_iter().find(|(id, _)| *id == target).map(|(_, s)| s).unwrap_or_default();
            let ids: Vec<String> = {
                let mut stmt = tx.prepare("SELECT id FROM groups WHERE deleted = 0")?;
                stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            for g in ids.iter().filter(|g| scope.includes_group(g)) {
                Self::enqueue_group_one(&tx, g, target, GroupAction::Added)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Turns the group names in `people`'s `groups` into ids, creating the
    /// groups no one has yet (an id or a name already taken is used).
    pub(super) fn resolve_groups(&self, people: &mut [Person]) -> Result<(), StoreError> {
        if people.iter().all(|p| p.groups.is_empty()) {
            return Ok(());
        }
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let mut known = {
            let mut stmt = tx.prepare("SELECT id, name FROM groups WHERE deleted = 0")?;
            GroupIndex::new(stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?.collect::<Result<Vec<_>, _>>()?)
        };
        let now = now_ms();
        for p in people.iter_mut() {
            for g in p.groups.iter_mut() {
                let id = match known.find(g) {
                    Some(id) => id,
                    None => {
                        let group = group_named(&p.id, g)?;
                        tx.execute("INSERT INTO groups (id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)", params![group.id, group.name, now])?;
                        Self::enqueue_group(&tx, &group.id, GroupAction::Added)?;
                        known.add(&group.id, &group.name);
                        group.id
                    }
                };
                *g = id;
            }
            p.groups.sort();
            p.groups.dedup();
        }
        tx.commit()?;
        Ok(())
    }

    /// A target's scope changed from `old` to `new`: where it provisions
    /// groups, the groups that entered are added and those that left (and
    /// that it has) are removed.
    pub(super) fn rescope_groups(conn: &Connection, target: i64, old: &Scope, new: &Scope) -> Result<(), StoreError> {
        if old.groups == new.groups || !Self::group_targets(conn)?.iter().any(|(t, _)| *t == target) {
            return Ok(());
        }
        let ids: Vec<String> = {
            let mut stmt = conn.prepare("SELECT id FROM groups WHERE deleted = 0")?;
            stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for g in ids {
            match (old.includes_group(&g), new.includes_group(&g)) {
                (true, false) => {
                    let has: Option<String> = conn
                        .query_row("SELECT state FROM provisioned_groups WHERE group_id = ?1 AND target_id = ?2", params![g, target], |r| r.get(0))
                        .optional()?;
                    if has.is_some_and(|s| s != "removed") {
                        Self::enqueue_group_one(conn, &g, target, GroupAction::Deleted)?;
                    }
                }
                (false, true) => Self::enqueue_group_one(conn, &g, target, GroupAction::Added)?,
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn live_group(conn: &Connection, id: &str) -> Result<Group, StoreError> {
        conn.query_row("SELECT id, name, description FROM groups WHERE id = ?1 AND deleted = 0", params![id], |r| {
            Ok(Group { id: r.get(0)?, name: r.get(1)?, description: r.get(2)? })
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("group {id}")))
    }

    fn member_ids(conn: &Connection, id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT person_id FROM group_members WHERE group_id = ?1 ORDER BY person_id")?;
        Ok(stmt.query_map(params![id], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// The ids of the targets that provision groups.
    pub(super) fn group_target_ids(conn: &Connection) -> Result<Vec<i64>, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT id FROM targets WHERE provisions_groups = 1")?;
        Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// The targets that provision groups, with their scopes.
    fn group_targets(conn: &Connection) -> Result<Vec<(i64, Scope)>, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT id, scope FROM targets WHERE provisions_groups = 1")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(id, scope)| Ok((id, super::targets::read_scope(id, &scope)?))).collect()
    }

    /// Writes `p`'s memberships to the index: every group named must exist.
    /// The groups joined or left get `members-changed` on the targets that
    /// provision them. A deleted person belongs to no group.
    pub(super) fn write_memberships(conn: &Connection, p: &Person) -> Result<(), StoreError> {
        let before: BTreeSet<String> = {
            let mut stmt = conn.prepare_cached("SELECT group_id FROM group_members WHERE person_id = ?1")?;
            stmt.query_map(params![p.id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let after: BTreeSet<String> = if p.status == Status::Deleted { BTreeSet::new() } else { p.groups.iter().cloned().collect() };
        if before == after {
            return Ok(());
        }
        for g in after.difference(&before) {
            let live: Option<bool> = conn.prepare_cached("SELECT deleted FROM groups WHERE id = ?1")?.query_row(params![g], |r| r.get(0)).optional()?;
            if live != Some(false) {
                return Err(StoreError::NotFound(format!("group {g} (named in the groups of person {})", p.id)));
            }
            conn.prepare_cached("INSERT INTO group_members (group_id, person_id) VALUES (?1, ?2)")?.execute(params![g, p.id])?;
        }
        for g in before.difference(&after) {
            conn.prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND person_id = ?2")?.execute(params![g, p.id])?;
        }
        for g in before.symmetric_difference(&after) {
            Self::enqueue_group(conn, g, GroupAction::MembersChanged)?;
        }
        Ok(())
    }

    /// A person's record on `target` is now `remote` (none: removed): the
    /// groups of theirs that the target has hear of it, when that changes
    /// who the target knows as members.
    pub(super) fn member_changed_on(conn: &Connection, person: &str, target: i64, remote: Option<&str>) -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT m.group_id, pg.members, t.scope FROM group_members m
             JOIN provisioned_groups pg ON pg.group_id = m.group_id AND pg.target_id = ?2 AND pg.state != 'removed'
             JOIN targets t ON t.id = ?2 AND t.provisions_groups = 1
             WHERE m.person_id = ?1",
        )?;
        let groups: Vec<(String, String, String)> = stmt.query_map(params![person, target], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        for (group, sent, scope) in groups {
            if !super::targets::read_scope(target, &scope)?.includes_group(&group) {
                continue;
            }
            let sent: Vec<super::Member> = serde_json::from_str(&sent).unwrap_or_default();
            let known = sent.iter().find(|(p, _, _)| p == person).map(|(_, t, id)| format!("{t} {id}"));
            if known.as_deref() != remote {
                Self::enqueue_group_one(conn, &group, target, GroupAction::MembersChanged)?;
            }
        }
        Ok(())
    }

    /// Queues `action` for the group on every target that provisions it.
    pub(super) fn enqueue_group(conn: &Connection, group: &str, action: GroupAction) -> Result<usize, StoreError> {
        let mut queued = 0;
        for (target, scope) in Self::group_targets(conn)? {
            if scope.includes_group(group) {
                Self::enqueue_group_one(conn, group, target, action)?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Queues one group job. A job reads the group as it is when it runs,
    /// so a queued one covers later changes, except that an addition or a
    /// deletion replaces what is queued (and failed) for the pair.
    pub(super) fn enqueue_group_one(conn: &Connection, group: &str, target: i64, action: GroupAction) -> Result<(), StoreError> {
        let queued: Option<String> = conn
            .prepare_cached("SELECT action FROM group_jobs WHERE group_id = ?1 AND target_id = ?2 AND state = 'queued' ORDER BY id DESC LIMIT 1")?
            .query_row(params![group, target], |r| r.get(0))
            .optional()?;
        if action.covered_by(queued.as_deref().and_then(GroupAction::parse)) {
            return Ok(());
        }
        conn.prepare_cached("DELETE FROM group_jobs WHERE group_id = ?1 AND target_id = ?2 AND state IN ('queued', 'failed')")?.execute(params![group, target])?;
        conn.prepare_cached("INSERT INTO group_jobs (group_id, target_id, action, created_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![group, target, action.as_str(), now_ms()])?;
        conn.prepare_cached(
            "INSERT INTO provisioned_groups (group_id, target_id, state, updated_at) VALUES (?1, ?2, 'pending', ?3)
             ON CONFLICT (group_id, target_id) DO UPDATE SET state = 'pending', updated_at = excluded.updated_at",
        )?
        .execute(params![group, target, now_ms()])?;
        Ok(())
    }

    /// The group jobs not yet done, oldest first: (group, target, action, state).
    pub fn group_jobs(&self) -> Result<Vec<(String, i64, GroupAction, String)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT group_id, target_id, action, state FROM group_jobs ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)))?;
        rows.map(|r| {
            let (g, t, a, s) = r?;
            let action = GroupAction::parse(&a).ok_or_else(|| StoreError::Unreadable(format!("group job action '{a}'")))?;
            Ok((g, t, action, s))
        })
        .collect()
    }
}

/// Who joins or leaves a group whose members go from `before` to `now`,
/// in id order (the order every transaction locks people in), each with
/// whether they join. Both backends' member changes go by it.
pub(crate) fn membership_changes<'a>(before: &'a BTreeSet<String>, now: &BTreeSet<&'a String>) -> Vec<(&'a String, bool)> {
    let mut moving: Vec<(&String, bool)> =
        before.iter().filter(|p| !now.contains(p)).map(|p| (p, false)).chain(now.iter().copied().filter(|p| !before.contains(*p)).map(|p| (p, true))).collect();
    moving.sort();
    moving
}

/// `p` joining (or leaving) group `id`; their groups stay sorted.
pub(crate) fn set_membership(p: &mut crate::domain::Person, id: &str, joins: bool) {
    p.groups.retain(|g| g != id);
    if joins {
        p.groups.push(id.to_string());
        p.groups.sort();
    }
}

