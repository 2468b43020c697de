//! Group jobs: one task per process takes them one at a time (groups are
//! few, and a group's jobs on a target must run in order), asks the
//! target's plugin to provision the group with its members as the target
//! knows them, and records what the target now has.

use std::collections::BTreeSet;
use std::sync::Arc;

use registry_plugin_runtime::latest::plugin_info::Capabilities;
use registry_plugin_runtime::latest::provisioning_target::{GroupRequest, TargetContext};
use registry_plugin_runtime::latest::types::{Group, GroupMember, RemoteRef};

use super::{Engine, EngineError, Verdict, call_verdict, verdict};
use crate::domain::GroupJob;
use crate::store::{BUDGET_WAIT_MS, Member, StoreError};

impl Engine {
    /// Records, for each target, whether its plugin provisions groups (a
    /// plugin upgraded since, targets made by the CLI); a target that starts
    /// to gets its groups queued.
    pub async fn refresh_group_targets(&self) -> Result<(), StoreError> {
        for t in self.store.targets().await? {
            if let Some(plugin) = self.plugins.get(&t.plugin) {
                self.store.set_target_provisions_groups(t.id, plugin.metadata().capabilities.contains(Capabilities::GROUPS)).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn group_worker(self: Arc<Self>) {
        loop {
            let notified = self.wake.notified();
            match self.run_group_once().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "a group job could not use the database"),
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(self.config.idle_poll) => {}
            }
        }
    }

    /// Claims one ready group job and runs it; whether there was one.
    pub async fn run_group_once(&self) -> Result<bool, EngineError> {
        let Some(job) = self.store.claim_group_job().await? else { return Ok(false) };
        if let Err(e) = self.group_job(&job).await {
            // Not left running: the heartbeat would renew its lease for as
            // long as this node lives. Back to the queue, an attempt counted.
            let why = format!("the job stopped on a database error: {e}");
            if let Err(again) = self.store.finish_group_retry(&job, self.backoff(job.attempts).as_millis() as i64, &why).await {
                tracing::error!(error = %again, group = %job.group_id, "a stopped group job could not be queued again; it is when this node restarts");
            }
            return Err(e.into());
        }
        Ok(true)
    }

    async fn group_job(&self, job: &GroupJob) -> Result<(), StoreError> {
        let target = match self.store.target(job.target_id).await {
            Ok(t) => t,
            // Deleted meanwhile: its jobs went with it.
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let later = |why: String| async move { self.store.finish_group_retry(job, self.backoff(job.attempts).as_millis() as i64, &why).await };
        let Some(plugin) = self.plugins.get(&target.plugin) else {
            return later(format!("the plugin '{}' is not loaded; start the host with --plugin for it", target.plugin)).await;
        };
        if !plugin.metadata().capabilities.contains(Capabilities::GROUPS) {
            self.store.set_target_provisions_groups(target.id, false).await?;
            return self.store.finish_group_failed(job, &format!("the plugin '{}' does not provision groups", target.plugin)).await;
        }
        let mut tokens = match self.tokens(target.server_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return later("waiting for a token: use Obtain New Token on the target's server".into()).await,
            Err(m) => return later(format!("no token: {m}")).await,
        };
        let input = self.store.group_job_input(job).await?;
        let member = |(person, object_type, remote_id): &Member| GroupMember { person_id: person.clone(), remote: RemoteRef { object_type: object_type.clone(), remote_id: remote_id.clone() } };
        let now: BTreeSet<&Member> = input.members.iter().collect();
        let before: BTreeSet<&Member> = input.sent.iter().collect();
        let request = GroupRequest {
            action: job.action.to_wit(),
            group: Group {
                id: input.group.id.clone(),
                name: input.group.name.clone(),
                description: input.group.description.clone(),
                members: input.members.iter().map(member).collect(),
            },
            added: now.difference(&before).map(|m| member(m)).collect(),
            removed: before.difference(&now).map(|m| member(m)).collect(),
            current: input.current.clone().map(|(object_type, remote_id)| RemoteRef { object_type, remote_id }),
        };
        let settings = plugin.settings_with_defaults(&target.settings);
        let mut refreshed = false;
        loop {
            let config = self.store.server_config(target.server_id).await?;
            let allow = match self.oauth.allowlist(target.server_id, &config, Some(&tokens)).await {
                Ok(a) => a,
                Err(e) => return later(e.to_string()).await,
            };
            // As for people's jobs: no call starts that could outlive the
            // claim, and a job another node took back is left to it.
            if !self.store.hold_group_lease(job).await? {
                tracing::info!(group = %job.group_id, target = target.id, "a group job was taken back by another node; left to it");
                return Ok(());
            }
            let context = TargetContext { settings: settings.clone(), tokens: tokens.clone() };
            let outcome = match plugin.provision_group(&context, &request, &allow).await {
                Ok(Ok(o)) => {
                    let remote = o.remote.map(|r| (r.object_type, r.remote_id));
                    tracing::info!(group = %job.group_id, target = target.id, action = job.action.as_str(), summary = %o.summary, "group provisioned");
                    return self.store.finish_group_done(job, remote, o.removed, &input.members, &o.summary).await;
                }
                Ok(Err(e)) => verdict(&e),
                Err(e) => call_verdict(&e),
            };
            match outcome {
                Verdict::Refresh if !refreshed => match self.refresh(target.server_id, &tokens).await {
                    Ok(fresh) => {
                        tokens = fresh;
                        refreshed = true;
                    }
                    Err(v) => return self.settle_group(job, v).await,
                },
                v => return self.settle_group(job, v).await,
            }
        }
    }

    async fn settle_group(&self, job: &GroupJob, v: Verdict) -> Result<(), StoreError> {
        match v {
            Verdict::Retry(after, m) => {
                if job.attempts + 1 >= self.config.max_attempts {
                    return self.store.finish_group_failed(job, &format!("gave up after {} attempts: {m}", job.attempts + 1)).await;
                }
                let delay = after.map_or(self.backoff(job.attempts).as_millis() as i64, |ms| ms as i64);
                self.store.finish_group_retry(job, delay, &m).await
            }
            Verdict::Wait(m) => self.store.finish_group_retry(job, self.config.backoff_max.as_millis() as i64, &m).await,
            Verdict::Refresh => self.store.finish_group_retry(job, self.backoff(job.attempts).as_millis() as i64, "the token was refused again after a refresh").await,
            Verdict::Budget(m) => self.store.finish_group_retry(job, BUDGET_WAIT_MS, &m).await,
            Verdict::Fail(m) => self.store.finish_group_failed(job, &m).await,
            Verdict::Submitted(_) => self.store.finish_group_failed(job, "a group call cannot be submitted to a bulk API").await,
            Verdict::TakenBack => Ok(()),
        }
    }
}
