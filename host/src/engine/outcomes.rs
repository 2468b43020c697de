//! What a job's outcome does: another attempt later (with backoff, up to
//! the retry horizon and the attempt cap), a failure, a wait for a token;
//! and what a call says about its target (a probe that worked ends a
//! pause, failures in a row quarantine it, a spent quota pauses it).

use std::time::Duration;

use super::{Done, Engine, Job, Verdict};
use crate::store::StoreError;

impl Engine {
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let base = self.config.backoff_base.as_millis() as f64 * 2f64.powi(attempts.min(30) as i32);
        let capped = base.min(self.config.backoff_max.as_millis() as f64);
        let mut r = [0u8; 2];
        getrandom::fill(&mut r).expect("the OS has randomness");
        let jitter = 0.5 + (u16::from_le_bytes(r) as f64 / u16::MAX as f64) / 2.0;
        Duration::from_millis((capped * jitter) as u64)
    }

    pub(super) async fn settle(&self, job: &Job, v: Verdict) -> Result<(), StoreError> {
        match v {
            Verdict::Fail(m) => self.store.finish_failed(job, &m).await,
            Verdict::Wait(m) => self.store.finish_waiting(std::slice::from_ref(job), &m).await,
            Verdict::Refresh => self.retry(job, None, "the access token was refused again after a refresh".into()).await,
            Verdict::Submitted(_) => self.retry(job, None, "the bulk API's answer was lost".into()).await,
            Verdict::Budget(m) => self.store.finish_waiting(std::slice::from_ref(job), &format!("waiting: {m}")).await,
            Verdict::Retry(delay, m) => self.retry(job, delay, m).await,
            Verdict::TakenBack => Ok(()),
        }
    }

    /// Another attempt later, unless the job has failed long or often enough.
    pub(super) async fn retry(&self, job: &Job, delay: Option<u64>, m: String) -> Result<(), StoreError> {
        let failing_for = Duration::from_millis((self.store.now() - job.failing_since.unwrap_or(self.store.now())).max(0) as u64);
        if failing_for >= self.config.retry_horizon {
            let hours = failing_for.as_secs_f64() / 3600.0;
            return self.store.finish_failed(job, &format!("gave up after {hours:.0} h of failed attempts ({} in all): {m}", job.attempts + 1)).await;
        }
        if job.attempts + 1 >= self.config.max_attempts {
            return self.store.finish_failed(job, &format!("gave up after {} attempts: {m}", job.attempts + 1)).await;
        }
        // The plugin's delay too is bounded: a remote system's "come back
        // in a year" must not park a job out of sight.
        let delay = delay.map_or_else(|| self.backoff(job.attempts), Duration::from_millis).min(self.config.backoff_max);
        self.store.finish_retry(job, delay.as_millis() as i64, &m).await
    }

    /// What a call says about its target: a success ends a pause (the
    /// probe worked) and records the API usage seen; a call that only
    /// failed for a passing reason counts towards quarantine; a spent quota
    /// pauses the target.
    pub(super) async fn target_health(&self, t: &crate::domain::Target, done: &[Done], settled: &[(Job, Verdict)]) -> Result<(), StoreError> {
        use crate::notify::Event;
        let target = t.id;
        if let Some(m) = settled.iter().find_map(|(_, v)| if let Verdict::Budget(m) = v { Some(m) } else { None }) {
            let until = self.store.now() + crate::store::BUDGET_WAIT_MS;
            let reason = format!("{m}; a probe at {} checks again", crate::domain::format_time(until));
            self.store.pause_target(target, until, &reason).await?;
            tracing::warn!(target, "the remote system's API quota is used up; the target waits");
            self.notify(Event::BudgetReached { target: t.name.clone(), reason });
        }
        if !done.is_empty() {
            if self.store.target_succeeded(target).await? {
                tracing::info!(target, "a probe succeeded; the target resumes");
                self.notify(Event::Resumed { target: t.name.clone() });
            }
            if let Some((used, limit)) = done.iter().filter_map(|d| d.usage).max_by_key(|(used, _)| *used)
                && let Some(reason) = self.store.record_usage(target, used, limit).await?
            {
                tracing::warn!(target, %reason, "the target's API share is used up; it waits");
                self.notify(Event::BudgetReached { target: t.name.clone(), reason });
            }
        } else if let Some((_, Verdict::Retry(_, why))) = settled.iter().find(|(_, v)| matches!(v, Verdict::Retry(..)))
            && let Some((until, reason)) = self.store.target_call_failed(target, why).await?
        {
            tracing::warn!(target, next_probe = %crate::domain::format_time(until), "the target is quarantined: its calls keep failing");
            self.notify(Event::Quarantined { target: t.name.clone(), reason });
        }
        Ok(())
    }
}
