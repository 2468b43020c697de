//! Polling the batches plugins handed to a background bulk API: one task
//! per process takes the batch most overdue (leased, so one poll at a
//! time), asks the plugin with the same requests, and settles the jobs when
//! the answer is in. The batches live in the database, so a restart picks
//! the polling up where it was instead of submitting again. (A crash in the
//! moment between the remote system taking a batch and the host recording
//! it would send those people again: upserts, so nobody twice.)

use std::sync::Arc;
use std::time::Duration;

use registry_plugin_runtime::latest::plugin_info::Capabilities;
use registry_plugin_runtime::latest::provisioning_target::{BatchAnswer, TargetContext};
use registry_plugin_runtime::latest::types::PluginError;

use super::requests::Requests;
use super::{Engine, EngineError, Verdict, call_verdict, done_of, verdict};
use crate::domain::Job;
use crate::store::{BulkBatch, StoreError};

/// Polls in a row without an answer (transport errors, refused tokens)
/// before the batch's jobs are given back to the queue to submit again.
const MAX_FAILED_POLLS: i64 = 12;

impl Engine {
    /// The batch size each target's plugin asks for under its settings
    /// (`batch-size`, e.g. a bulk API job's worth), where that is more than
    /// the engine's: for the claim to grow batches to, atomically. Asked
    /// once per saved settings; on the claim's path only a look at when
    /// each target was saved, and nothing for plugins without a background
    /// bulk API.
    pub(super) async fn batch_sizes(&self) -> Result<Vec<(i64, usize)>, StoreError> {
        let bulk_capable = |name: &str| self.plugins.get(name).is_some_and(|p| p.metadata().capabilities.contains(Capabilities::BACKGROUND_BATCH));
        if !self.plugins.keys().any(|n| bulk_capable(n)) {
            return Ok(Vec::new());
        }
        let mut sizes = Vec::new();
        for (id, plugin, saved) in self.store.target_stamps().await? {
            if !bulk_capable(&plugin) {
                continue;
            }
            let cached = self.batch_sizes.lock().unwrap_or_else(|p| p.into_inner()).get(&id).filter(|(at, _)| *at == saved).map(|(_, s)| *s);
            let size = match cached {
                Some(s) => s,
                None => {
                    let target = self.store.target(id).await?;
                    let s = self.plugins[&plugin].batch_size(&target.settings).await.ok().flatten();
                    self.batch_sizes.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (saved, s));
                    s
                }
            };
            if let Some(s) = size {
                sizes.push((id, (s as usize).min(self.config.bulk_batch_max)));
            }
        }
        Ok(sizes)
    }

    pub(super) async fn bulk_poller(self: Arc<Self>) {
        loop {
            let notified = self.wake_bulk.notified();
            match self.poll_bulk_once().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "polling a bulk batch failed"),
            }
            let due = self.store.next_bulk_due().await.ok().flatten().map(|t| (t - self.store.now()).max(10) as u64);
            let wait = due.map_or(self.config.idle_poll, |ms| Duration::from_millis(ms).min(self.config.idle_poll));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Polls the most overdue batch, if one is due; whether one was.
    pub async fn poll_bulk_once(&self) -> Result<bool, EngineError> {
        let Some((batch, jobs)) = self.store.take_due_bulk().await? else { return Ok(false) };
        if let Err(e) = self.poll(&batch, jobs).await {
            // Whatever went wrong here, the batch is asked again later.
            let _ = self.store.reschedule_bulk(batch.id, &batch.reference, self.backoff(batch.failures as u32).as_millis() as i64, true).await;
            return Err(e.into());
        }
        Ok(true)
    }

    async fn poll(&self, batch: &BulkBatch, jobs: Vec<Job>) -> Result<(), StoreError> {
        let target = match self.store.target(batch.target_id).await {
            Ok(t) => t,
            Err(StoreError::NotFound(_)) => return self.store.finish_bulk(batch.id).await,
            Err(e) => return Err(e),
        };
        if jobs.is_empty() {
            return self.store.finish_bulk(batch.id).await;
        }
        let retry_later = |why: String| async move {
            if batch.failures + 1 >= MAX_FAILED_POLLS {
                tracing::warn!(batch = batch.id, %why, "a bulk batch could not be polled; its jobs are queued again");
                return self.store.finish_bulk(batch.id).await;
            }
            self.store.reschedule_bulk(batch.id, &batch.reference, self.backoff(batch.failures as u32).as_millis() as i64, true).await
        };
        let Some(plugin) = self.plugins.get(&target.plugin) else {
            return retry_later(format!("the plugin '{}' is not loaded", target.plugin)).await;
        };
        let tokens = match self.tokens(target.server_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return retry_later("the server has no token".into()).await,
            Err(m) => return retry_later(m).await,
        };
        let config = self.store.server_config(target.server_id).await?;
        let allow = match self.oauth.allowlist(target.server_id, &config, Some(&tokens)).await {
            Ok(a) => a,
            Err(e) => return retry_later(e.to_string()).await,
        };
        let _lane = if jobs.len() > self.config.batch_max { Some(self.bulk_lane.acquire().await.expect("never closed")) } else { None };
        // Unreadable now: the job is failed; the others are asked about.
        let (_, unreadable, requests) =
            if jobs.len() > self.config.batch_max { Requests::stored(&self.store, jobs.clone()).await? } else { Requests::load(&self.store, jobs.clone()).await? };
        for job in &unreadable {
            self.store.finish_failed(job, super::UNREADABLE).await?;
        }
        if !unreadable.is_empty() {
            return retry_later("a person of the batch could not be read".into()).await;
        }
        // The settings it was submitted under: the results are read with them.
        let context = TargetContext { settings: plugin.settings_with_defaults(&batch.settings), tokens: tokens.clone() };
        match plugin.poll_batch_from(&context, requests.part(0..requests.len()), &batch.reference, &allow).await {
            Ok(Ok(BatchAnswer::Submitted(s))) => self.store.reschedule_bulk(batch.id, &s.reference, s.poll_after_ms as i64, false).await,
            Ok(Ok(BatchAnswer::Done(results))) if results.len() == jobs.len() => {
                let results = results.into_iter().map(|r| r.map_err(|e| verdict(&e))).collect();
                self.settle_bulk(&target, jobs, results).await?;
                self.store.finish_bulk(batch.id).await
            }
            Ok(Ok(BatchAnswer::Done(results))) => {
                let why = format!("the plugin answered {} requests with {} results", jobs.len(), results.len());
                self.settle_bulk(&target, jobs.clone(), jobs.iter().map(|_| Err(Verdict::Fail(why.clone()))).collect()).await?;
                self.store.finish_bulk(batch.id).await
            }
            Ok(Err(PluginError::Unauthorized(_))) => {
                // A new token, then ask again at once.
                match self.refresh(target.server_id, &tokens).await {
                    Ok(_) => self.store.reschedule_bulk(batch.id, &batch.reference, 0, true).await,
                    Err(_) => retry_later("the token could not be refreshed".into()).await,
                }
            }
            Ok(Err(e)) => match verdict(&e) {
                v @ Verdict::Fail(_) => {
                    self.settle_bulk(&target, jobs.clone(), jobs.iter().map(|_| Err(v.clone())).collect()).await?;
                    self.store.finish_bulk(batch.id).await
                }
                _ => retry_later(registry_plugin_runtime::contract::explain(&e)).await,
            },
            Err(e) => match call_verdict(&e) {
                v @ Verdict::Fail(_) => {
                    self.settle_bulk(&target, jobs.clone(), jobs.iter().map(|_| Err(v.clone())).collect()).await?;
                    self.store.finish_bulk(batch.id).await
                }
                _ => retry_later(e.to_string()).await,
            },
        }
    }

    /// Records a finished batch's outcomes as a direct call's would be.
    async fn settle_bulk(&self, target: &crate::domain::Target, jobs: Vec<Job>, results: Vec<Result<registry_plugin_runtime::latest::provisioning_target::ProvisionOutcome, Verdict>>) -> Result<(), StoreError> {
        let mut done = Vec::new();
        let mut settled = Vec::new();
        for (job, result) in jobs.into_iter().zip(results) {
            match result {
                Ok(outcome) => done.push(done_of(job, outcome)),
                Err(v) => settled.push((job, v)),
            }
        }
        self.target_health(target, &done, &settled).await?;
        self.store.finish_done(&done).await?;
        for (job, v) in settled {
            self.settle(&job, v).await?;
        }
        Ok(())
    }
}
