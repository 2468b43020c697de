//! One plugin call for a claimed batch: the batch export, halved around
//! whatever fails it as a whole, and the bulk batches it hands over.

use registry_plugin_runtime::Plugin;
use registry_plugin_runtime::latest::plugin_info::Capabilities;
use registry_plugin_runtime::latest::provisioning_target::{BatchAnswer, ProvisionOutcome, SubmittedBatch, TargetContext};

use super::requests::Requests;
use super::{Engine, Verdict, call_verdict, verdict};

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
    pub(super) async fn call(
        &self,
        plugin: &Plugin,
        context: &TargetContext,
        pending: &Requests,
        allow: &registry_plugin_runtime::HttpAllowlist,
    ) -> (Vec<Result<ProvisionOutcome, Verdict>>, Vec<SubmittedBatch>) {
        let batch = plugin.metadata().capabilities.contains(Capabilities::PROVISION_BATCH);
        if !batch || pending.len() == 1 {
            let mut out = Vec::with_capacity(pending.len());
            for i in 0..pending.len() {
                out.push(self.call_one(plugin, context, pending, i, allow).await);
            }
            return (out, Vec::new());
        }
        let mut submitted = Vec::new();
        let mut out: Vec<Option<Result<ProvisionOutcome, Verdict>>> = vec![None; pending.len()];
        let mut budget = SPLIT_BUDGET;
        // Depth first, left half before right.
        let mut parts = vec![0..pending.len()];
        while let Some(part) = parts.pop() {
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

    /// `provision` for the `i`th of `pending`.
    async fn call_one(&self, plugin: &Plugin, context: &TargetContext, pending: &Requests, i: usize, allow: &registry_plugin_runtime::HttpAllowlist) -> Result<ProvisionOutcome, Verdict> {
        let request = pending.one(i).await.map_err(|e| Verdict::Retry(None, format!("reading the request: {e}")))?;
        match plugin.provision(context, &request, allow).await {
            Ok(r) => r.map_err(|e| verdict(&e)),
            Err(e) => Err(call_verdict(&e)),
        }
    }
}
