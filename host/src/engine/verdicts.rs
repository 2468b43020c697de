//! What a call's answer means for its job: a plugin error or a failed
//! call becomes a verdict (refresh, wait, retry, pause, fail), and a
//! success the record the store keeps.

use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::provisioning_target::ProvisionOutcome;
use registry_plugin_runtime::latest::types::PluginError;
use registry_plugin_runtime::{CallError, Failure};

use crate::domain::{Done, Job};

/// What to do with a job whose call did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    /// Refresh the token and try once more.
    Refresh,
    /// Wait for an admin to obtain a new token.
    Wait(String),
    /// Try again after a delay (the plugin's, or the backoff's).
    Retry(Option<u64>, String),
    /// The remote system's quota is used up: the target waits, no attempt counted.
    Budget(String),
    /// Give up.
    Fail(String),
    /// Handed to a bulk API with the `k`th submitted batch: polled later.
    Submitted(usize),
    /// Not called: another node took the job back (its lease ran out
    /// first), so it is that node's to run and nothing is recorded here.
    TakenBack,
}

/// A job that succeeded, as the store records it.
pub(super) fn done_of(job: Job, outcome: ProvisionOutcome) -> Done {
    Done {
        job,
        remote: outcome.remote.map(|r| (r.object_type, r.remote_id)),
        summary: outcome.summary,
        removed: outcome.removed,
        usage: outcome.usage.map(|u| (u.used, u.limit)),
    }
}

pub(super) fn verdict(e: &PluginError) -> Verdict {
    match e {
        PluginError::Unauthorized(_) => Verdict::Refresh,
        PluginError::ReauthorizationRequired(_) => Verdict::Wait(format!("waiting for a new token: {}", explain(e))),
        PluginError::RateLimited(ms) => Verdict::Retry(*ms, "the remote system is throttling requests".into()),
        PluginError::QuotaExhausted(_) => Verdict::Budget(explain(e)),
        PluginError::Remote(r) if r.retryable => Verdict::Retry(None, explain(e)),
        PluginError::Transport(_) => Verdict::Retry(None, explain(e)),
        PluginError::InvalidPerson(f) => Verdict::Fail(format!("fix the person's {}: {}", f.field, f.message)),
        PluginError::InvalidConfig(f) => Verdict::Fail(format!("fix the target's setting {}: {}", f.field, f.message)),
        _ => Verdict::Fail(explain(e)),
    }
}

pub(super) fn call_verdict(e: &CallError) -> Verdict {
    match e.failure {
        // Nothing the plugin did: worth another go.
        Failure::Timeout(_) | Failure::Source(_) => Verdict::Retry(None, e.to_string()),
        _ => Verdict::Fail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_plugin_runtime::latest::types::{FieldError, RemoteError};

    #[test]
    fn plugin_errors_decide_refresh_wait_retry_or_fail() {
        assert_eq!(verdict(&PluginError::Unauthorized("x".into())), Verdict::Refresh);
        assert!(matches!(verdict(&PluginError::ReauthorizationRequired("dead".into())), Verdict::Wait(_)));
        assert_eq!(verdict(&PluginError::RateLimited(Some(1500))), Verdict::Retry(Some(1500), "the remote system is throttling requests".into()));
        let remote = |retryable| PluginError::Remote(RemoteError { code: "UNABLE_TO_LOCK_ROW".into(), message: "busy".into(), status: Some(400), retryable });
        assert!(matches!(verdict(&remote(true)), Verdict::Retry(None, _)));
        assert!(matches!(verdict(&remote(false)), Verdict::Fail(_)));
        assert!(matches!(verdict(&PluginError::Transport("refused".into())), Verdict::Retry(None, _)));
        match verdict(&PluginError::InvalidPerson(FieldError { field: "name.family".into(), message: "too long".into() })) {
            Verdict::Fail(m) => assert_eq!(m, "fix the person's name.family: too long"),
            other => panic!("{other:?}"),
        }
    }
}
