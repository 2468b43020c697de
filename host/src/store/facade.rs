//! The store as the app uses it: one async interface over the two
//! backends, SQLite in the data dir (one process, the default) and
//! PostgreSQL shared by several nodes. Each method is the backend's own
//! (SQL written per backend); where their answers differ in shape (a
//! claim's lease, whether a late finish was still held), this interface
//! gives what the app needs of both.

use std::path::Path;

use serde_json::Value;

use super::postgres::PgStore;
use super::*;
use crate::domain::{Action, Done, Group, GroupAction, GroupJob, HistoryEntry, ImportStats, Job, Person, ProvState, Run, Saved, Server, ServerInput, Target, TargetInput, TargetState, TokenStatus};
use crate::secrets::SecretBox;
use registry_plugin_runtime::latest::types::{Oauth2ServerConfig, TokenSet};

/// The registry's database, on either backend.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(lite) => f.debug_tuple("Store::Sqlite").field(&lite.path()).finish(),
            Backend::Postgres(pg) => f.debug_tuple("Store::Postgres").field(&pg.node()).finish(),
        }
    }
}

impl From<SqliteStore> for Store {
    fn from(s: SqliteStore) -> Self {
        Store { backend: Backend::Sqlite(s) }
    }
}

impl From<PgStore> for Store {
    fn from(p: PgStore) -> Self {
        Store { backend: Backend::Postgres(p) }
    }
}

impl Store {
    /// Opens (creating) the SQLite database in `data_dir` and migrates it.
    pub fn open(data_dir: &Path, secrets: SecretBox) -> Result<Store, StoreError> {
        SqliteStore::open(data_dir, secrets).map(Store::from)
    }

    /// The SQLite store, when that is the backend.
    pub fn sqlite(&self) -> Option<&SqliteStore> {
        match &self.backend {
            Backend::Sqlite(lite) => Some(lite),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when that is the backend.
    pub fn postgres(&self) -> Option<&PgStore> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    /// Milliseconds since the epoch for queue decisions (the SQLite store's
    /// test clock may be moved forward).
    pub fn now(&self) -> i64 {
        match &self.backend {
            Backend::Sqlite(lite) => lite.now(),
            Backend::Postgres(_) => now_ms(),
        }
    }

    /// Moves the SQLite store's queue clock forward (tests); PostgreSQL's
    /// clock is the database's and does not move.
    pub fn advance_clock(&self, by: std::time::Duration) {
        if let Backend::Sqlite(lite) = &self.backend {
            lite.advance_clock(by);
        }
    }

    /// The SQLite database's file, if that is the backend.
    pub fn path(&self) -> Option<&Path> {
        self.sqlite().map(SqliteStore::path)
    }

    /// The removals claims held since last asked, once each.
    pub fn take_new_holds(&self) -> Vec<(i64, usize)> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.take_new_holds(),
            Backend::Postgres(pg) => pg.take_new_holds(),
        }
    }

    /// Why a target's jobs cannot run now, if they cannot.
    pub async fn held_because(&self, target: &Target) -> Option<String> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.held_because(target),
            Backend::Postgres(pg) => pg.held_because(target).await,
        }
    }

    /// Claims up to `max` ready jobs of one target, leaving out `busy`
    /// targets, growing to a bulk size from `sizes` (see the backends).
    pub async fn claim_for(&self, max: usize, busy: &[i64], sizes: &[(i64, usize)]) -> Result<Vec<Job>, StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.claim_for(max, busy, sizes),
            Backend::Postgres(pg) => pg.claim_for(max, busy, sizes).await,
        }
    }

    /// [`Store::claim_for`] with no bulk sizes.
    pub async fn claim_except(&self, max: usize, busy: &[i64]) -> Result<Vec<Job>, StoreError> {
        self.claim_for(max, busy, &[]).await
    }

    /// [`Store::claim_for`] with nothing left out.
    pub async fn claim(&self, max: usize) -> Result<Vec<Job>, StoreError> {
        self.claim_for(max, &[], &[]).await
    }

    /// Before a plugin call for `jobs`: the ones this process still holds
    /// (on PostgreSQL, their leases renewed so the call cannot outlive them;
    /// a job taken back by another node is left to it). On SQLite, all.
    pub async fn hold_leases(&self, jobs: Vec<Job>) -> Result<Vec<Job>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(jobs),
            Backend::Postgres(pg) => {
                let held: std::collections::HashSet<i64> = pg.hold_leases(&jobs).await?.into_iter().collect();
                Ok(jobs.into_iter().filter(|j| held.contains(&j.id)).collect())
            }
        }
    }

    /// [`Store::hold_leases`] for a group job: whether this process still
    /// holds it (on PostgreSQL, its lease renewed). On SQLite, it does.
    pub async fn hold_group_lease(&self, job: &GroupJob) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(pg) => pg.hold_group_lease(job).await,
        }
    }

    /// Puts claimed jobs still running back in the queue.
    pub async fn release(&self, jobs: &[Job]) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.release(&jobs.iter().map(|j| j.id).collect::<Vec<_>>()),
            Backend::Postgres(pg) => Ok(pg.release(jobs).await? as usize),
        }
    }

    /// At start: this process's (node's) earlier claims back in the queue.
    pub async fn reset_running(&self) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.reset_running(),
            Backend::Postgres(pg) => pg.reset_node().await,
        }
    }

    /// Records a batch a plugin submitted to a background bulk API,
    /// holding `jobs`.
    pub async fn submit_bulk(&self, target_id: i64, reference: &str, settings: &[(String, String)], poll_after_ms: u32, jobs: &[Job]) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.submit_bulk(target_id, reference, settings, poll_after_ms, &jobs.iter().map(|j| j.id).collect::<Vec<_>>()),
            Backend::Postgres(pg) => pg.submit_bulk(target_id, reference, settings, poll_after_ms, jobs).await,
        }
    }

    /// The batch most overdue for a poll, taken (leased) with its jobs.
    pub async fn take_due_bulk(&self) -> Result<Option<(BulkBatch, Vec<Job>)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => match lite.take_due_bulk()? {
                Some(batch) => {
                    let jobs = lite.bulk_jobs(batch.id)?;
                    Ok(Some((batch, jobs)))
                }
                None => Ok(None),
            },
            Backend::Postgres(pg) => pg.take_due_bulk().await,
        }
    }

    /// Records finished jobs (those still this process's).
    pub async fn finish_done(&self, done: &[Done]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.finish_done(done),
            Backend::Postgres(pg) => pg.finish_done(done).await.map(drop),
        }
    }

    /// A job to try again after `delay_ms`.
    pub async fn finish_retry(&self, job: &Job, delay_ms: i64, error: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.finish_retry(job, delay_ms, error),
            Backend::Postgres(pg) => pg.finish_retry(job, delay_ms, error).await.map(drop),
        }
    }

    /// A job that failed for good.
    pub async fn finish_failed(&self, job: &Job, error: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.finish_failed(job, error),
            Backend::Postgres(pg) => pg.finish_failed(job, error).await.map(drop),
        }
    }

    /// A group job that succeeded.
    pub async fn finish_group_done(&self, job: &GroupJob, remote: Option<(String, String)>, removed: bool, members: &[Member], summary: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.finish_group_done(job, remote, removed, members, summary),
            Backend::Postgres(pg) => pg.finish_group_done(job, remote, removed, members, summary).await.map(drop),
        }
    }

    /// A group job to try again after `delay_ms`.
    pub async fn finish_group_retry(&self, job: &GroupJob, delay_ms: i64, error: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.finish_group_retry(job, delay_ms, error),
            Backend::Postgres(pg) => pg.finish_group_retry(job, delay_ms, error).await.map(drop),
        }
    }

    /// A group job that failed for good.
    pub async fn finish_group_failed(&self, job: &GroupJob, error: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.finish_group_failed(job, error),
            Backend::Postgres(pg) => pg.finish_group_failed(job, error).await.map(drop),
        }
    }
}

/// Each method, on whichever backend the store has: SQLite's are
/// synchronous (one connection, short statements), PostgreSQL's async.
macro_rules! on_either {
    ($( $(#[$meta:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$meta])*
                pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match &self.backend {
                        Backend::Sqlite(lite) => lite.$name($($arg),*),
                        Backend::Postgres(pg) => pg.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

on_either! {
    /// Stores an admin's fresh token set for a server (replacing theirs),
    /// and who it acts as when known.
    fn save_admin_tokens(&self, admin_id: i64, server_id: i64, t: &TokenSet, login: Option<&str>) -> Result<(), StoreError>;
    /// An admin's usable token set for a server, if they hold one.
    fn admin_tokens(&self, admin_id: i64, server_id: i64) -> Result<Option<TokenSet>, StoreError>;
    /// Every token an admin holds (usable or not), by server.
    fn admin_token_list(&self, admin_id: i64) -> Result<Vec<AdminToken>, StoreError>;
    /// Records a check's outcome: who the token acts as and that it worked
    /// now, or what failed (and, when `dead`, that a new one is needed).
    fn admin_token_checked(&self, admin_id: i64, server_id: i64, outcome: Result<Option<&str>, (&str, bool)>) -> Result<(), StoreError>;
    /// The token set even when unusable (to revoke it at the provider).
    fn admin_tokens_for_revoke(&self, admin_id: i64, server_id: i64) -> Result<Option<TokenSet>, StoreError>;
    /// Forgets an admin's token for a server (after a revoke).
    fn clear_admin_tokens(&self, admin_id: i64, server_id: i64) -> Result<(), StoreError>;
    /// How many admins exist.
    fn admin_count(&self) -> Result<i64, StoreError>;
    /// Adds an admin with an already-hashed password.
    fn create_admin(&self, username: &str, password_hash: &str) -> Result<i64, StoreError>;
    /// Every admin: id, username, created (ms), by username.
    fn admins(&self) -> Result<Vec<(i64, String, i64)>, StoreError>;
    /// Deletes an admin with their sessions and own provider tokens (revoke
    /// those at the provider first); refused for the last admin.
    fn delete_admin(&self, admin_id: i64) -> Result<(), StoreError>;
    /// An admin's id and password hash.
    fn admin(&self, username: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// Records a session (by the hash of its token).
    fn create_session(&self, token_hash: &str, admin_id: i64, csrf_token: &str, ttl_ms: i64) -> Result<(), StoreError>;
    /// The live session with this token hash.
    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;
    /// Ends a session.
    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Keeps a message for the session's next page (Post/Redirect/Get).
    fn set_flash(&self, token_hash: &str, flash: &str) -> Result<(), StoreError>;
    /// Takes (and clears) the session's message, if any.
    fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError>;
    /// How many live sessions an admin has.
    fn session_count(&self, admin_id: i64) -> Result<i64, StoreError>;
    /// Ends every session of an admin but the one with `keep` (a token
    /// hash), if given; returns how many ended.
    fn end_sessions(&self, admin_id: i64, keep: Option<&str>) -> Result<usize, StoreError>;
    /// Replaces an admin's password hash and, in the same transaction, ends
    /// their other sessions (a changed password locks out whoever knew the
    /// old one).
    fn set_password(&self, admin_id: i64, password_hash: &str, keep_session: Option<&str>) -> Result<(), StoreError>;
    /// An admin's password hash, by id.
    fn admin_password_hash(&self, admin_id: i64) -> Result<Option<String>, StoreError>;
    /// Creates an API token called `name`, valid until `expires_at` (ms since
    /// the epoch) if given; returns it (shown once, stored only as its
    /// SHA-256).
    fn create_api_token(&self, name: &str, expires_at: Option<i64>) -> Result<String, StoreError>;
    /// The name of the API token `token`, if it is one that is neither
    /// revoked nor expired.
    fn api_token(&self, token: &str) -> Result<Option<String>, StoreError>;
    /// Every API token (never the token itself), newest first.
    fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes the API token called `name`; false if there is no live one.
    fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError>;
    /// Deletes a revoked API token's row, freeing its name; false if there
    /// is no revoked token of that name.
    fn forget_api_token(&self, name: &str) -> Result<bool, StoreError>;
    /// Records an admin action (its details redacted).
    fn audit(&self, actor: &str, action: &str, subject: &str, detail: Value) -> Result<(), StoreError>;
    /// Audit entries, newest first, at most `limit`.
    fn audit_entries(&self, f: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Whether a notification for `key` may go now (none within `window_ms`);
    /// if so, records it as sent.
    fn claim_notification(&self, key: &str, window_ms: i64) -> Result<bool, StoreError>;
    /// When the next batch is due, if any.
    fn next_bulk_due(&self) -> Result<Option<i64>, StoreError>;
    /// Asks again later: the (maybe new) reference, in `after_ms`; `failed`
    /// counts a poll that did not get an answer.
    fn reschedule_bulk(&self, batch: i64, reference: &str, after_ms: i64, failed: bool) -> Result<(), StoreError>;
    /// Forgets a batch whose jobs are all settled (any still held are
    /// queued again).
    fn finish_bulk(&self, batch: i64) -> Result<(), StoreError>;
    /// How many batches are with a bulk API now, and their jobs.
    fn bulk_in_flight(&self) -> Result<(i64, i64), StoreError>;
    /// Claims the oldest ready group job: queued, its backoff passed, its
    /// target enabled, and nothing earlier still queued or running for the
    /// pair (a failed one waits for an admin, it does not hold the group
    /// back: the next job sends the group as it is then).
    fn claim_group_job(&self) -> Result<Option<GroupJob>, StoreError>;
    /// The group, its members on the job's target, and what was sent before.
    fn group_job_input(&self, job: &GroupJob) -> Result<GroupJobInput, StoreError>;
    /// What each target has of a group: (target, state, remote id, message).
    fn group_states(&self, group: &str) -> Result<Vec<(i64, String, Option<String>, Option<String>)>, StoreError>;
    /// Adds a group (already normalized; an empty id gets a new one) with
    /// `members` (person ids), and queues it for the targets that provision
    /// groups; all or nothing.
    fn create_group(&self, g: Group, members: &[String]) -> Result<Group, StoreError>;
    /// Saves a rename or a new description, and `members` when given;
    /// queues `group-updated` when the group changed; all or nothing.
    /// Whether anything changed.
    fn update_group(&self, g: &Group, members: Option<&[String]>) -> Result<bool, StoreError>;
    /// Deletes a group: its members leave it (which may take them out of
    /// group-scoped targets), and the targets that have it remove it. The
    /// row stays, marked deleted, so its id is never reused.
    fn delete_group(&self, id: &str) -> Result<(), StoreError>;
    /// Makes `members` (person ids) the group's members: those added join,
    /// the others leave, each person's record saved with their jobs.
    fn set_group_members(&self, id: &str, members: &[String]) -> Result<(), StoreError>;
    /// Every live group with its member count, by name.
    fn groups(&self) -> Result<Vec<GroupSummary>, StoreError>;
    /// One live group.
    fn group(&self, id: &str) -> Result<Group, StoreError>;
    /// The group's members' ids, in order.
    fn group_members(&self, id: &str) -> Result<Vec<String>, StoreError>;
    /// A page of the group's members, by name: (id, display name), and how
    /// many there are in all.
    fn group_members_page(&self, id: &str, offset: usize, limit: usize) -> Result<(Vec<(String, String)>, usize), StoreError>;
    /// Adds `join` and takes out `leave` (person ids), in one transaction.
    fn change_group_members(&self, id: &str, join: &[String], leave: &[String]) -> Result<(), StoreError>;
    /// The live group with `name` (any case) or, failing that, `id`.
    fn group_by_name_or_id(&self, key: &str) -> Result<Option<Group>, StoreError>;
    /// Records whether a target's plugin provisions groups; a target that
    /// starts to gets its groups queued.
    fn set_target_provisions_groups(&self, target: i64, on: bool) -> Result<(), StoreError>;
    /// The group jobs not yet done, oldest first: (group, target, action, state).
    fn group_jobs(&self) -> Result<Vec<(String, i64, GroupAction, String)>, StoreError>;
    /// What the plugin needs for each job: the person (`None` if their
    /// stored record cannot be read) and the remote record they have with
    /// the job's target, read under one lock with one query per job.
    fn job_inputs(&self, jobs: &[Job]) -> Result<Vec<(Option<Person>, Option<(String, String)>)>, StoreError>;
    /// Jobs not yet done: (queued or running, failed) for a target, or all.
    fn job_counts(&self, target_id: Option<i64>) -> Result<(i64, i64), StoreError>;
    /// Queued jobs of the server's targets, which wait for a usable token.
    fn jobs_waiting_for(&self, server_id: i64) -> Result<i64, StoreError>;
    /// When the next queued job becomes ready, if one waits for its backoff
    /// or its target's pause.
    /// Jobs that wait for a token, a disabled target or an earlier job of
    /// the same person do not count: they are freed by a change that wakes
    /// the workers, or by the worker that finishes the earlier job.
    fn next_due(&self) -> Result<Option<i64>, StoreError>;
    /// Jobs that wait (no attempt counted) until their server has a token.
    fn finish_waiting(&self, jobs: &[Job], why: &str) -> Result<(), StoreError>;
    /// Re-seals every secret under `new` in one transaction; returns how
    /// many values were re-sealed. A value already sealed under `new` (a
    /// rotation that stopped between this commit and the key file's
    /// replacement, run again) is re-sealed too; one that opens under
    /// neither key stops the rotation and changes nothing.
    fn reseal(&self, new: &SecretBox) -> Result<usize, StoreError>;
    /// Attempts, newest first, at most `limit`.
    fn log(&self, f: &LogFilter, limit: usize) -> Result<Vec<LogEntry>, StoreError>;
    /// Deletes attempts older than `retention_ms`; returns how many.
    fn prune_log(&self, retention_ms: i64) -> Result<usize, StoreError>;
    /// Queues a target's failed jobs again, as new (attempts and retry
    /// horizon start over); returns how many.
    fn retry_failed(&self, target: i64) -> Result<usize, StoreError>;
    /// Attempts per hour since `since` (ms): (hour start, succeeded, failed).
    fn activity(&self, since: i64) -> Result<Vec<(i64, i64, i64)>, StoreError>;
    /// API usage a target saw, the highest per hour since `since` (ms):
    /// (hour start, used, limit).
    fn usage_series(&self, target: i64, since: i64) -> Result<Vec<(i64, i64, i64)>, StoreError>;
    /// The schema version.
    fn schema_version(&self) -> Result<usize, StoreError>;
    /// Adds a person (already normalized) and queues their provisioning, in
    /// one transaction. An empty id gets a new one.
    fn create_person(&self, p: Person) -> Result<Person, StoreError>;
    /// Saves an edit (already normalized) and queues what it means; nothing
    /// is queued when nothing changed. Returns the action, if any.
    fn update_person(&self, p: &Person) -> Result<Option<Action>, StoreError>;
    /// Deletes a person: kept as a tombstone (its id is never reused) until
    /// every target has removed them.
    fn delete_person(&self, id: &str) -> Result<(), StoreError>;
    /// Adds or updates many people, `PEOPLE_PER_TRANSACTION` per transaction
    /// (each person with their jobs); `progress` gets the count done so far.
    /// Each person's `groups` may name a group by id or by name: names are
    /// resolved, and groups named that do not exist yet are created (in
    /// one transaction, before any person is written).
    fn import_people(&self, people: Vec<Person>, progress: impl FnMut(usize)) -> Result<ImportStats, StoreError>;
    /// One person (a deleted one too, with status `deleted`).
    fn person(&self, id: &str) -> Result<Person, StoreError>;
    /// One page of people (deleted ones left out) matching `query`, and
    /// how many match in all.
    fn people(&self, query: &str, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError>;
    /// One page of people matching `q`, and how many match in all. Every
    /// word of the text must appear (so "ada lovelace" finds the full
    /// name); status and affiliation filter; the sort is by name, id or
    /// last change.
    fn people_page(&self, q: &PeopleQuery, offset: usize, limit: usize) -> Result<(Vec<Person>, usize), StoreError>;
    /// Per person, how many targets have them in each state (one query for
    /// the whole page).
    fn state_summaries(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Vec<(ProvState, i64)>>, StoreError>;
    /// A person's state with every target that knows them.
    fn person_states(&self, id: &str) -> Result<Vec<TargetState>, StoreError>;
    /// The latest `limit` history lines of a person, newest first.
    fn history(&self, id: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Queues the person for one target now ("Provision now"): their
    /// current state, or their removal if they are deleted or out of its
    /// scope, the job acting as `admin` (with their own provider token,
    /// when they hold one). Whether a job was queued.
    fn reprovision_person_as(&self, id: &str, target: i64, admin: Option<i64>) -> Result<bool, StoreError>;
    /// "Reprovision": queues the person again for every target; returns how
    /// many jobs were queued (targets whose scope excludes them get none).
    fn reprovision_person(&self, id: &str) -> Result<usize, StoreError>;
    /// Saves a target's safeguards and whether its removals are destructive.
    fn set_safeguards(&self, target: i64, s: &Safeguards, destructive_removals: bool) -> Result<(), StoreError>;
    /// A target's safeguards.
    fn safeguards(&self, target: i64) -> Result<Safeguards, StoreError>;
    /// Where a target stands.
    fn target_health(&self, target: i64) -> Result<TargetHealth, StoreError>;
    /// The removals a target holds, oldest first.
    fn held_removals(&self, target: i64, limit: usize) -> Result<Vec<HeldRemoval>, StoreError>;
    /// Lets a target's held removals run; returns how many.
    fn confirm_removals(&self, target: i64) -> Result<usize, StoreError>;
    /// Drops a target's held removals: the records stay in the remote
    /// system, no longer managed; returns how many.
    fn discard_removals(&self, target: i64, admin: &str) -> Result<usize, StoreError>;
    /// A call of the target's succeeded: its failure count is cleared and a
    /// pause ends. Whether it had been paused (it resumes now).
    fn target_succeeded(&self, target: i64) -> Result<bool, StoreError>;
    /// A call of the target's failed for a passing reason. After
    /// [`QUARANTINE_AFTER`] in a row over [`QUARANTINE_AFTER_MS`], or when
    /// a probe fails, the target is (again) quarantined; returns when its
    /// next probe is, and the reason shown, if it is.
    fn target_call_failed(&self, target: i64, why: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// Pauses a target until `until` (then one job probes), saying why.
    fn pause_target(&self, target: i64, until: i64, reason: &str) -> Result<(), StoreError>;
    /// Keeps the API usage the remote system reported. If the target's
    /// share is used up, it is paused for [`BUDGET_WAIT_MS`] and the
    /// reason returned.
    fn record_usage(&self, target: i64, used: u64, limit: u64) -> Result<Option<String>, StoreError>;
    /// Adds a server.
    fn create_server(&self, input: &ServerInput) -> Result<i64, StoreError>;
    /// Saves an edit. Changing the Server URL, Client ID, Client Secret, API
    /// hosts, grant type, JWT user or token URL clears the stored tokens, since they
    /// belong to the old configuration (and the next token response is
    /// checked anew).
    fn update_server(&self, id: i64, input: &ServerInput) -> Result<Saved, StoreError>;
    /// Deletes a server (and its pending authorizations).
    fn delete_server(&self, id: i64) -> Result<(), StoreError>;
    /// Every server, by name.
    fn servers(&self) -> Result<Vec<Server>, StoreError>;
    /// One server.
    fn server(&self, id: i64) -> Result<Server, StoreError>;
    /// The configuration handed to the plugin (with the secret).
    fn server_config(&self, id: i64) -> Result<Oauth2ServerConfig, StoreError>;
    /// Stores a fresh token set and marks the token "Set".
    fn save_tokens(&self, id: i64, t: &TokenSet) -> Result<(), StoreError>;
    /// The held token set, if any.
    fn tokens(&self, id: i64) -> Result<Option<TokenSet>, StoreError>;
    /// Forgets the tokens (after a revoke).
    fn clear_tokens(&self, id: i64) -> Result<(), StoreError>;
    /// Records a failure the admin should see; `status` changes the token
    /// status (e.g. to "needs a new token").
    fn set_error(&self, id: i64, message: &str, status: Option<TokenStatus>) -> Result<(), StoreError>;
    /// Remembers an authorization in progress (single use, expiring).
    fn put_pending(&self, state: &str, server_id: i64, code_verifier: &str, redirect_uri: &str, origin: PendingOrigin<'_>, ttl_ms: i64) -> Result<(), StoreError>;
    /// Takes (and deletes) the pending authorization for `state`.
    fn take_pending(&self, state: &str) -> Result<Option<Pending>, StoreError>;
    /// Stores a key for `server_id` in `role`, replacing any key already in
    /// that role (a next key generated twice: the first is dropped).
    fn put_signing_key(&self, server_id: i64, role: KeyRole, key: &NewSigningKey<'_>) -> Result<i64, StoreError>;
    /// A server's keys, current first.
    fn signing_keys(&self, server_id: i64) -> Result<Vec<SigningKeyInfo>, StoreError>;
    /// The private key (PKCS#8 PEM) of a server's key in `role`, if any.
    fn signing_key_private(&self, server_id: i64, role: KeyRole) -> Result<Option<(SigningKeyInfo, String)>, StoreError>;
    /// Makes the next key `expected` (the one just tested) current,
    /// forgetting the old one; false when the next key is another (made
    /// again meanwhile) or gone (another request switched first).
    fn promote_next_key(&self, server_id: i64, expected: i64) -> Result<bool, StoreError>;
    /// Forgets a server's next key (a rotation given up).
    fn drop_next_key(&self, server_id: i64) -> Result<(), StoreError>;
    /// Every target's id, plugin and when it was last saved: enough to
    /// know whether something derived from its settings is still current,
    /// without opening them.
    fn target_stamps(&self) -> Result<Vec<(i64, String, i64)>, StoreError>;
    /// Adds a target.
    fn create_target(&self, input: &TargetInput) -> Result<i64, StoreError>;
    /// Saves an edit.
    fn update_target(&self, id: i64, input: &TargetInput) -> Result<(), StoreError>;
    /// Deletes a target, its jobs and its per-person state (the remote
    /// records stay where they are).
    fn delete_target(&self, id: i64) -> Result<(), StoreError>;
    /// Every target, by name.
    fn targets(&self) -> Result<Vec<Target>, StoreError>;
    /// One target.
    fn target(&self, id: i64) -> Result<Target, StoreError>;
    /// "Reprovision all": queues every person in the target's scope (in one
    /// transaction) and returns the run that tracks them.
    fn start_run(&self, target_id: i64) -> Result<Run, StoreError>;
    /// One run.
    fn run(&self, id: i64) -> Result<Run, StoreError>;
    /// The target's latest run.
    fn latest_run(&self, target_id: i64) -> Result<Option<Run>, StoreError>;
    /// How many people are in each state with a target.
    fn target_counts(&self, target_id: i64) -> Result<Vec<(ProvState, i64)>, StoreError>;
    /// The target's people that failed for good, newest first.
    fn target_failures(&self, target_id: i64, limit: usize) -> Result<Vec<(String, String, String)>, StoreError>;
}
