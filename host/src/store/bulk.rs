//! Batches a plugin handed to a background bulk API (Salesforce's Bulk API
//! 2.0): the plugin's reference and when to ask again, with the jobs each
//! holds. The jobs stay `running` with their batch, across restarts too, so
//! that polling resumes instead of submitting again.

use rusqlite::{OptionalExtension, params};

use super::jobs::job_of_row;
use super::{SqliteStore, StoreError, now_ms, write};
use crate::domain::Job;

/// A batch due for a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkBatch {
    /// Row id.
    pub id: i64,
    /// The target.
    pub target_id: i64,
    /// The plugin's reference.
    pub reference: String,
    /// The target's settings when the batch was submitted.
    pub settings: Vec<(String, String)>,
    /// Polls so far.
    pub polls: i64,
    /// Polls in a row that failed (a transport error, a refused token).
    pub failures: i64,
}

/// How long a poll may take before another worker may take the batch.
pub const POLL_LEASE_MS: i64 = 5 * 60 * 1000;

impl SqliteStore {
    /// Records that `jobs` (running, of one target) went to a bulk API as
    /// `reference` under `settings`, to poll in `poll_after_ms`.
    pub fn submit_bulk(&self, target_id: i64, reference: &str, settings: &[(String, String)], poll_after_ms: u32, jobs: &[i64]) -> Result<i64, StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let now = self.now();
        tx.execute(
            "INSERT INTO bulk_batches (target_id, reference, settings, poll_at, created_at) VALUES (?1, ?2, x'', ?3, ?4)",
            params![target_id, reference, now + poll_after_ms as i64, now_ms()],
        )?;
        let id = tx.last_insert_rowid();
        let sealed = self.secrets.seal(&Self::bulk_settings_aad(id), &serde_json::to_string(settings).expect("plain data"));
        tx.execute("UPDATE bulk_batches SET settings = ?1 WHERE id = ?2", params![sealed, id])?;
        {
            let mut mark = tx.prepare_cached("UPDATE jobs SET bulk_batch = ?1 WHERE id = ?2 AND state = 'running'")?;
            for j in jobs {
                mark.execute(params![id, j])?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Takes the batch most overdue for a poll, if any, leasing it for
    /// [`POLL_LEASE_MS`] so no other worker polls it meanwhile.
    pub fn take_due_bulk(&self) -> Result<Option<BulkBatch>, StoreError> {
        let now = self.now();
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        let row: Option<(i64, i64, String, i64, i64, Vec<u8>)> = tx
            .query_row(
                "SELECT id, target_id, reference, polls, failures, settings FROM bulk_batches WHERE poll_at <= ?1 ORDER BY poll_at LIMIT 1",
                params![now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((id, target_id, reference, polls, failures, sealed)) = row else { return Ok(None) };
        tx.execute("UPDATE bulk_batches SET poll_at = ?2, polls = polls + 1 WHERE id = ?1", params![id, now + POLL_LEASE_MS])?;
        tx.commit()?;
        let json = self.secrets.open(&Self::bulk_settings_aad(id), &sealed)?;
        let settings = serde_json::from_str(&json).map_err(|e| StoreError::Unreadable(format!("settings of bulk batch {id}: {e}")))?;
        Ok(Some(BulkBatch { id, target_id, reference, settings, polls, failures }))
    }

    /// When the next batch is due, if any.
    pub fn next_bulk_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.db().query_row("SELECT MIN(poll_at) FROM bulk_batches", [], |r| r.get(0))?)
    }

    /// The jobs a batch holds, in the order they were submitted.
    pub fn bulk_jobs(&self, batch: i64) -> Result<Vec<Job>, StoreError> {
        let conn = self.db();
        let mut stmt = conn.prepare_cached(
            "SELECT j.id, j.person_id, j.target_id, j.action, j.attempts, j.run_id, j.failing_since, j.acting_admin FROM jobs j
             WHERE j.bulk_batch = ?1 AND j.state = 'running' ORDER BY j.id",
        )?;
        let rows = stmt.query_map(params![batch], job_of_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Asks again later: the (maybe new) reference, in `after_ms`; `failed`
    /// counts a poll that did not get an answer.
    pub fn reschedule_bulk(&self, batch: i64, reference: &str, after_ms: i64, failed: bool) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE bulk_batches SET reference = ?2, poll_at = ?3, failures = CASE WHEN ?4 THEN failures + 1 ELSE 0 END WHERE id = ?1",
            params![batch, reference, self.now() + after_ms, failed],
        )?;
        Ok(())
    }

    /// Forgets a batch whose jobs are all settled (any still held are
    /// queued again).
    pub fn finish_bulk(&self, batch: i64) -> Result<(), StoreError> {
        let mut conn = self.db();
        let tx = write(&mut conn)?;
        tx.execute("UPDATE jobs SET state = 'queued', bulk_batch = NULL WHERE bulk_batch = ?1 AND state = 'running'", params![batch])?;
        tx.execute("DELETE FROM bulk_batches WHERE id = ?1", params![batch])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn bulk_settings_aad(id: i64) -> String {
        format!("bulk_batches.settings.{id}")
    }

    /// How many batches are with a bulk API now, and their jobs.
    pub fn bulk_in_flight(&self) -> Result<(i64, i64), StoreError> {
        let conn = self.db();
        let batches: i64 = conn.query_row("SELECT COUNT(*) FROM bulk_batches", [], |r| r.get(0))?;
        let jobs: i64 = conn.query_row("SELECT COUNT(*) FROM jobs WHERE bulk_batch IS NOT NULL AND state = 'running'", [], |r| r.get(0))?;
        Ok((batches, jobs))
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Person;

    #[test]
    fn a_submitted_batch_keeps_its_jobs_through_a_restart_and_is_polled_once_at_a_time() {
        let (_dir, store, target) = crate::store::scratch_with_target();
        for i in 0..3 {
            store.create_person(Person::example(&format!("B{i}"), "Ada", "Lovelace", &format!("b{i}@example.org"))).unwrap();
        }
        let jobs = store.claim_except(10, &[]).unwrap();
        assert_eq!(jobs.len(), 3);
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let settings = vec![("object".to_string(), "Contact".to_string())];
        let batch = store.submit_bulk(target, "job:750x:1000", &settings, 60_000, &ids).unwrap();
        assert_eq!(store.bulk_in_flight().unwrap(), (1, 3));
        assert_eq!(store.take_due_bulk().unwrap(), None, "not due yet");

        // A restart: the held jobs are not queued again, and the batch is due at once.
        assert_eq!(store.reset_running().unwrap(), 0);
        assert!(store.claim_except(10, &[]).unwrap().is_empty(), "nothing to submit again");
        let due = store.take_due_bulk().unwrap().unwrap();
        assert_eq!((due.id, due.reference.as_str(), due.polls), (batch, "job:750x:1000", 0));
        assert_eq!(due.settings, settings, "polled under the settings it was submitted with");
        assert_eq!(store.take_due_bulk().unwrap(), None, "leased: one poll at a time");
        assert_eq!(store.bulk_jobs(batch).unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), ids, "in the order submitted");

        store.reschedule_bulk(batch, "job:750x:2000", 0, false).unwrap();
        assert_eq!(store.take_due_bulk().unwrap().unwrap().reference, "job:750x:2000");
        store.finish_bulk(batch).unwrap();
        assert_eq!(store.bulk_in_flight().unwrap(), (0, 0));
        assert_eq!(store.claim_except(10, &[]).unwrap().len(), 3, "unsettled jobs go back to the queue");
    }
}
