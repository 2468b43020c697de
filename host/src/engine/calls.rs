//! One plugin call for a claimed batch: the batch export, halved around
//! whatever fails it as a whole, and the bulk batches it hands over.

use registry_plugin_runtime::Plugin;
use registry_plugin_runtime::latest::plugin_info::Capabilities;
use registry_plugin_runtime::latest::provisioning_target::{BatchAnswer, ProvisionOutcome, SubmittedBatch, TargetContext};

use super::requests::Requests;
use super::{Engine, Job, Verdict, call_verdict, verdict};

/// Extra plugin calls one batch may spend on finding the people it fails
/// for as a whole: a few bad people among a thousand cost about 2·log2(1000)
/// ≈ 20 each.
pub const SPLIT_BUDGET: usize = 48;

impl Engine {
    /// One plugin call for all of `pending`: the batch export when there is
    /// more than one and the plugin has it. One verdict or outcome per job.
    ///
    /// A batch that fails as a whole for good (the plugin trapped, or
    /// refused it with a permanent error) is halved and each half tried, so
    /// that one person whose data sets the failure off fails alone and the
    /// others are provisioned; up to [`SPLIT_BUDGET`] extra calls, so an
    /// error about no person in particular does not multiply the calls.
    ///
    /// `jobs[i]` is the job of `pending`'s `i`th request. The caller has
    /// just renewed their leases; every later call renews its own jobs'
    /// first, so no call starts that could outlive its claim (a job taken
    /// back meanwhile is answered [`Verdict::TakenBack`], not called).
    pub(super) async fn call(
        &self,
        plugin: &Plugin,
        context: &TargetContext,
        jobs: &[Job],
        pending: &Requests,
        allow: &registry_plugin_runtime::HttpAllowlist,
    ) -> (Vec<Result<ProvisionOutcome, Verdict>>, Vec<SubmittedBatch>) {
        let batch = plugin.metadata().capabilities.contains(Capabilities::PROVISION_BATCH);
        let mut fresh = true;
        if !batch || pending.len() == 1 {
            let mut out = Vec::with_capacity(pending.len());
            for i in 0..pending.len() {
                match self.held(jobs, i..i + 1, &mut fresh).await.remove(0) {
                    Ok(()) => out.push(self.call_one(plugin, context, pending, i, allow).await),
                    Err(v) => out.push(Err(v)),
                }
            }
            return (out, Vec::new());
        }
        let mut submitted = Vec::new();
        let mut out: Vec<Option<Result<ProvisionOutcome, Verdict>>> = vec![None; pending.len()];
        let mut budget = SPLIT_BUDGET;
        // Depth first, left half before right.
        let mut parts = vec![0..pending.len()];
        while let Some(part) = parts.pop() {
            let held = self.held(jobs, part.clone(), &mut fresh).await;
            if held.iter().any(Result::is_err) {
                // Rare (the node stalled past its leases, or the database
                // failed): the jobs still held go on one by one, each
                // checked again, except the first, just renewed.
                let mut renewed = false;
                for (i, h) in part.clone().zip(held).rev() {
                    match h {
                        Ok(()) => {
                            parts.push(i..i + 1);
                            renewed = true;
                        }
                        Err(v) => out[i] = Some(Err(v)),
                    }
                }
                fresh = renewed;
                continue;
            }
            let answer = if part.len() == 1 {
                Ok(vec![self.call_one(plugin, context, pending, part.start, allow).await])
            } else {
                // Read by the plugin as it goes: a bulk batch is tens of
                // thousands of people.
                match plugin.provision_batch_from(context, pending.part(part.clone()), allow).await {
                    Ok(Ok(BatchAnswer::Done(results))) if results.len() == part.len() => Ok(results.into_iter().map(|r| r.map_err(|e| verdict(&e))).collect()),
                    Ok(Ok(BatchAnswer::Done(results))) => Err(Verdict::Fail(format!("the plugin answered {} requests with {} results", part.len(), results.len()))),
                    Ok(Ok(BatchAnswer::Submitted(s))) => {
                        submitted.push(s);
                        Ok(vec![Err(Verdict::Submitted(submitted.len() - 1)); part.len()])
                    }
                    Ok(Err(e)) => Err(verdict(&e)),
                    Err(e) => Err(call_verdict(&e)),
                }
            };
            match answer {
                Ok(results) => {
                    for (slot, r) in out[part].iter_mut().zip(results) {
                        *slot = Some(r);
                    }
                }
                Err(Verdict::Fail(why)) if part.len() > 1 && budget >= 2 => {
                    budget -= 2;
                    tracing::info!(people = part.len(), error = %why, "a batch failed as a whole; trying each half");
                    let middle = part.start + part.len() / 2;
                    parts.push(middle..part.end);
                    parts.push(part.start..middle);
                }
                Err(v) => {
                    for slot in &mut out[part] {
                        *slot = Some(Err(v.clone()));
                    }
                }
            }
        }
        (out.into_iter().map(|r| r.expect("every part is answered")).collect(), submitted)
    }

    /// Whether each of `jobs[part]` may be called: `Ok` if this node still
    /// holds it, its lease renewed (on SQLite, always); taken back by
    /// another node, [`Verdict::TakenBack`]. Nothing is asked right after
    /// a renewal (`fresh`). A database that cannot answer makes no call
    /// either: the jobs are tried again later (a retry, guarded by claim),
    /// not left running under a heartbeat that would keep them.
    async fn held(&self, jobs: &[Job], part: std::ops::Range<usize>, fresh: &mut bool) -> Vec<Result<(), Verdict>> {
        if std::mem::replace(fresh, false) {
            return vec![Ok(()); part.len()];
        }
        let asked = jobs[part].to_vec();
        match self.store.hold_leases(asked.clone()).await {
            Ok(kept) => {
                let kept: std::collections::HashSet<i64> = kept.iter().map(|j| j.id).collect();
                asked.iter().map(|j| if kept.contains(&j.id) { Ok(()) } else { Err(Verdict::TakenBack) }).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "could not renew the leases before a call; the call is not made");
                vec![Err(Verdict::Retry(None, format!("the lease could not be renewed before the call: {e}"))); asked.len()]
            }
        }
    }

    /// `provision` for the `i`th of `pending`.
    async fn call_one(&self, plugin: &Plugin, context: &TargetContext, pending: &Requests, i: usize, allow: &registry_plugin_runtime::HttpAllowlist) -> Result<ProvisionOutcome, Verdict> {
        let request = pending.one(i).await.map_err(|e| Verdict::Retry(None, format!("reading the request: {e}")))?;
        match plugin.provision(context, &request, allow).await {
            Ok(r) => r.map_err(|e| verdict(&e)),
            Err(e) => Err(call_verdict(&e)),
        }
    }
}
