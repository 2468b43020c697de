//! Provisioning work: the action a change means, the queued job, its
//! successful end, and "Reprovision all" runs.

use registry_plugin_runtime::latest::types;
use serde::Serialize;

use super::person::Status;

/// What a change to a person means for provisioning (mirrors the WIT
/// `provisioning-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// New in the registry.
    Added,
    /// Changed.
    Updated,
    /// Deleted.
    Deleted,
    /// Became expired.
    Expired,
    /// Entered the grace period.
    EnteredGracePeriod,
    /// Active again after expiry or suspension.
    Unexpired,
    /// An admin asked to push again.
    Reprovision,
}

impl Action {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
            Action::Expired => "expired",
            Action::EnteredGracePeriod => "entered-grace-period",
            Action::Unexpired => "unexpired",
            Action::Reprovision => "reprovision",
        }
    }

    /// The actions that keep a person's record up to date (what a bulk API
    /// takes in large batches); the others remove it.
    pub const UPSERTS: [Action; 4] = [Action::Added, Action::Updated, Action::Unexpired, Action::Reprovision];

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Action> {
        [Action::Added, Action::Updated, Action::Deleted, Action::Expired, Action::EnteredGracePeriod, Action::Unexpired, Action::Reprovision]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// The action an edit from `before` to `after` status means.
    pub fn for_change(before: Status, after: Status) -> Action {
        match (before, after) {
            (b, Status::Expired) if b != Status::Expired => Action::Expired,
            (b, Status::GracePeriod) if b != Status::GracePeriod => Action::EnteredGracePeriod,
            (Status::Expired | Status::Suspended, Status::Active) => Action::Unexpired,
            _ => Action::Updated,
        }
    }

    /// The WIT action.
    pub fn to_wit(self) -> types::ProvisioningAction {
        match self {
            Action::Added => types::ProvisioningAction::PersonAdded,
            Action::Updated => types::ProvisioningAction::PersonUpdated,
            Action::Deleted => types::ProvisioningAction::PersonDeleted,
            Action::Expired => types::ProvisioningAction::PersonExpired,
            Action::EnteredGracePeriod => types::ProvisioningAction::PersonEnteredGracePeriod,
            Action::Unexpired => types::ProvisioningAction::PersonUnexpired,
            Action::Reprovision => types::ProvisioningAction::ReprovisionRequested,
        }
    }
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
    /// When its first attempt failed (retries stop a horizon after).
    pub failing_since: Option<i64>,
    /// How long this attempt's plugin call took (ms), once made.
    pub duration_ms: Option<i64>,
    /// The admin whose own provider token the job uses ("Provision now"
    /// by an admin who holds one); none: the server's integration token.
    pub acting_admin: Option<i64>,
    /// The claim it was taken with: its node's claims are counted, and a
    /// result is recorded only under the claim that is still current (a
    /// job taken back from a node that stalled is not its to finish).
    /// Always 0 on SQLite, where one process runs the queue.
    pub claim: i64,
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
    /// The remote system's API usage the call saw (used, limit).
    pub usage: Option<(u64, u64)>,
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_changes_become_lifecycle_actions() {
        use Status::*;
        assert_eq!(Action::for_change(Active, Expired), Action::Expired);
        assert_eq!(Action::for_change(Active, GracePeriod), Action::EnteredGracePeriod);
        assert_eq!(Action::for_change(Expired, Active), Action::Unexpired);
        assert_eq!(Action::for_change(Suspended, Active), Action::Unexpired);
        assert_eq!(Action::for_change(Active, Suspended), Action::Updated);
        assert_eq!(Action::for_change(Active, Active), Action::Updated);
    }
}
