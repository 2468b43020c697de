//! The group job queue: claimed one at a time, oldest first, never while
//! an earlier job for the same group and target is unfinished; and what a
//! target was last sent of a group (its remote record and members), from
//! which the next job's joiners and leavers are worked out.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError, now_ms, write};
use crate::domain::{Group, GroupAction, GroupJob};

/// A member as a target knows them: (person id, remote type, remote id).
pub type Member = (String, String, String);

/// What a group job's plugin call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupJobInput {
    /// The group (as it was, if deleted since).
    pub group: Group,
    /// Whether it is deleted in the registry.
    pub deleted: bool,
    /// Its members provisioned on the job's target, by person id.
    pub members: Vec<Member>,
    /// The members the target was last sent.
    pub sent: Vec<Member>,
    /// The group's remote record on the target, if it has one.
    pub current: Option<(String, String)>,
}

impl SqliteStore {
    /// Claims the oldest ready group job: queued, its backoff passed, its
    /// target enabled, and nothing earlier still queued or running for the
    /// pair (a failed one waits for an admin, it does not hold the group
    /// back: the next job sends the group as it is then).
    pub fn claim_group_job(&self) -> Result<Option<GroupJob>, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let row: Option<(i64, String, i64, String, u32)> = tx
            .query_row(
                "SELECT j.id, j.group_id, j.target_id, j.action, j.attempts FROM group_jobs j JOIN targets t ON t.id = j.target_id
                 WHERE j.state = 'queued' AND j.not_before <= ?1 AND t.enabled = 1
                   AND NOT EXISTS (SELECT 1 FROM group_jobs e WHERE e.group_id = j.group_id AND e.target_id = j.target_id AND e.id < j.id AND e.state != 'failed')
                 ORDER BY j.id LIMIT 1",
                params![self.now()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((id, group_id, target_id, action, attempts)) = row else { return Ok(None) };
        let action = GroupAction::parse(&action).ok_or_else(|| StoreError::Unreadable(format!("group job action '{action}'")))?;
        tx.execute("UPDATE group_jobs SET state = 'running' WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(Some(GroupJob { id, group_id, target_id, action, attempts, claim: 0 }))
    }

    /// The group, its members on the job's target, and what was sent before.
    pub fn group_job_input(&self, job: &GroupJob) -> Result<GroupJobInput, StoreError> {
        let conn = self.db();
        let (group, deleted) = conn
            .query_row("SELECT id, name, description, deleted FROM groups WHERE id = ?1", params![job.group_id], |r| {
                Ok((Group { id: r.get(0)?, name: r.get(1)?, description: r.get(2)? }, r.get::<_, bool>(3)?))
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("group {}", job.group_id)))?;
        let members = if deleted {
            Vec::new()
        } else {
            let mut stmt = conn.prepare_cached(
                "SELECT m.person_id, v.remote_type, v.remote_id FROM group_members m
                 JOIN provisioned v ON v.person_id = m.person_id AND v.target_id = ?2
                 WHERE m.group_id = ?1 AND v.state = 'provisioned' AND v.remote_type IS NOT NULL AND v.remote_id IS NOT NULL
                 ORDER BY m.person_id",
            )?;
            stmt.query_map(params![job.group_id, job.target_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?
        };
        let row: Option<(String, Option<String>, Option<String>)> = conn
            .query_row("SELECT members, remote_type, remote_id FROM provisioned_groups WHERE group_id = ?1 AND target_id = ?2", params![job.group_id, job.target_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let (sent, current) = match row {
            Some((members, t, id)) => {
                let sent: Vec<Member> = serde_json::from_str(&members).map_err(|e| StoreError::Unreadable(format!("members sent of group {}: {e}", job.group_id)))?;
                (sent, t.zip(id))
            }
            None => (Vec::new(), None),
        };
        Ok(GroupJobInput { group, deleted, members, sent, current })
    }

    /// A group job that succeeded: the target now has `remote` (none once
    /// removed) with `members`.
    pub fn finish_group_done(&self, job: &GroupJob, remote: Option<(String, String)>, removed: bool, members: &[Member], summary: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        if tx.execute("DELETE FROM group_jobs WHERE id = ?1", params![job.id])? == 0 {
            return Ok(());
        }
        let gone = removed || remote.is_none();
        let (t, id) = remote.unzip();
        let members = if gone { "[]".to_string() } else { serde_json::to_string(members).expect("plain data") };
        tx.execute(
            "INSERT INTO provisioned_groups (group_id, target_id, state, remote_type, remote_id, members, message, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (group_id, target_id) DO UPDATE SET state = excluded.state, remote_type = excluded.remote_type, remote_id = excluded.remote_id,
             members = excluded.members, message = excluded.message, updated_at = excluded.updated_at",
            params![job.group_id, job.target_id, if gone { "removed" } else { "provisioned" }, t, id, members, summary, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A group job to try again after `delay_ms`.
    pub fn finish_group_retry(&self, job: &GroupJob, delay_ms: i64, error: &str) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE group_jobs SET state = 'queued', attempts = attempts + 1, not_before = ?2, last_error = ?3 WHERE id = ?1 AND state = 'running'",
            params![job.id, self.now() + delay_ms, error],
        )?;
        Ok(())
    }

    /// A group job that failed for good; the next change of the group
    /// replaces it.
    pub fn finish_group_failed(&self, job: &GroupJob, error: &str) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute("UPDATE group_jobs SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = 'running'", params![job.id, error])?;
        tx.execute(
            "UPDATE provisioned_groups SET state = 'failed', message = ?3, updated_at = ?4 WHERE group_id = ?1 AND target_id = ?2",
            params![job.group_id, job.target_id, error, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// What each target has of a group: (target, state, remote id, message).
    pub fn group_states(&self, group: &str) -> Result<Vec<(i64, String, Option<String>, Option<String>)>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare("SELECT target_id, state, remote_id, message FROM provisioned_groups WHERE group_id = ?1 ORDER BY target_id")?;
        Ok(stmt.query_map(params![group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?)
    }
}
