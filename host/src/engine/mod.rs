//! The provisioning engine: a pool of workers drains the durable job queue
//! (see [`crate::store`]) through the plugins.
//!
//! - Several ready jobs for one target go to the plugin's `provision-batch`
//!   in one call when it claims that capability; one job goes to `provision`.
//! - `unauthorized`: one refresh per server at a time, shared by every
//!   waiting job ([`OAuth::refresh`]), the new tokens (and instance URL)
//!   kept, and the refused jobs retried once.
//! - `reauthorization-required`: the server is marked "needs a new token"
//!   and its jobs wait, uncounted, until an admin obtains one.
//! - `rate-limited`, retryable remote errors, transport failures and
//!   timeouts: exponential backoff with jitter, from seconds to an hour,
//!   for `retry_horizon` (days) from the first failure; then the job is
//!   failed and kept. A target whose calls keep failing is quarantined:
//!   its jobs wait, one probe job at growing intervals checks the remote
//!   system, and the target resumes by itself when a probe succeeds.
//! - `quota-exhausted`, or a target past its API share: the target pauses
//!   (jobs wait, no attempt counted) and probes again an hour later.
//! - everything else (a bad person, a bad setting, a refusal): failed at
//!   once, with the reason on the person's page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use registry_plugin_runtime::latest::provisioning_target::TargetContext;
use registry_plugin_runtime::latest::types::{GrantType, TokenSet};
use registry_plugin_runtime::Plugin;

use crate::domain::{Done, Job, TokenStatus};
use crate::oauth::{FlowError, OAuth};
use crate::store::{Store, StoreError};
use requests::Requests;
use verdicts::{Verdict, call_verdict, done_of, verdict};

mod bulk;
mod outcomes;
mod calls;
mod groups;
mod requests;
mod verdicts;

pub use calls::SPLIT_BUDGET;


/// Why a job whose person's stored record cannot be read fails.
pub(super) const UNREADABLE: &str = "the person's stored record cannot be read; edit and save the person";
/// Why [`Engine::run_once`] did not finish its batch.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The batch's worker failed or panicked; its unfinished jobs were put
    /// back in the queue.
    #[error("provisioning stopped midway ({released} unfinished jobs queued again): {reason}")]
    Worker {
        /// What the worker reported.
        reason: String,
        /// Jobs put back in the queue.
        released: usize,
    },
}

/// How the engine works.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Workers running at once.
    pub workers: usize,
    /// Most jobs one plugin call carries.
    pub batch_max: usize,
    /// First retry delay; doubled per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Attempts before a retryable job is failed for good, whatever the
    /// horizon (for tests; unbounded by default).
    pub max_attempts: u32,
    /// How long after its first failure a job keeps being retried.
    pub retry_horizon: Duration,
    /// How long the provisioning log keeps an attempt.
    pub log_retention: Duration,
    /// Where notifications go (nowhere by default).
    pub notify: crate::notify::NotifyConfig,
    /// How often idle workers look at the queue (changes also wake them).
    pub idle_poll: Duration,
    /// The most jobs one plugin call carries when the plugin asks for
    /// larger batches under a target's settings (`batch-size`, e.g. a bulk
    /// API job's worth).
    pub bulk_batch_max: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8),
            batch_max: 1000,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
            max_attempts: u32::MAX,
            retry_horizon: Duration::from_secs(4 * 24 * 3600),
            log_retention: Duration::from_secs(90 * 24 * 3600),
            notify: crate::notify::NotifyConfig { window: Duration::from_secs(3600), failure_threshold: 10, ..Default::default() },
            idle_poll: Duration::from_secs(1),
            bulk_batch_max: 100_000,
        }
    }
}

/// The engine. Share one per process.
pub struct Engine {
    store: Arc<Store>,
    plugins: Arc<HashMap<String, Plugin>>,
    oauth: OAuth,
    config: EngineConfig,
    wake: Notify,
    /// Wakes the bulk poller when a batch was submitted.
    wake_bulk: Notify,
    /// One bulk-sized batch in memory at a time (see `process_as`).
    bulk_lane: tokio::sync::Semaphore,
    /// Each target's wanted batch size, by when it was last saved.
    batch_sizes: std::sync::Mutex<HashMap<i64, (i64, Option<u32>)>>,
    notifier: Option<Arc<crate::notify::Notifier>>,
    /// Calls in flight per target, with the target's cap when it has one:
    /// a target at its cap is left out of the next claims.
    in_flight: std::sync::Mutex<HashMap<i64, (usize, Option<usize>)>>,
    /// One claim at a time in this process (see `claim`).
    claiming: tokio::sync::Mutex<()>,
    /// The wake-ups shared with other nodes, when sharing a database.
    shared: std::sync::OnceLock<crate::store::postgres::Wakeups>,
}

/// One claimed batch counted against its target's calls in flight, until
/// it is dropped.
struct Flight<'a> {
    engine: &'a Engine,
    target: i64,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = self.engine.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = flights.get_mut(&self.target) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                flights.remove(&self.target);
            }
        }
        drop(flights);
        // A worker that found this target at its cap may claim now.
        self.engine.wake();
    }
}

impl Engine {
    /// An engine over `store`, calling `plugins` with tokens from `oauth`.
    pub fn new(store: Arc<Store>, plugins: Arc<HashMap<String, Plugin>>, oauth: OAuth, config: EngineConfig) -> Arc<Self> {
        let notifier = crate::notify::Notifier::new(config.notify.clone(), store.clone());
        Arc::new(Engine { store, plugins, oauth, config, wake: Notify::new(), wake_bulk: Notify::new(), bulk_lane: tokio::sync::Semaphore::new(1), batch_sizes: Default::default(), notifier, in_flight: Default::default(), claiming: Default::default(), shared: Default::default() })
    }

    /// Tells idle workers there is work (a person changed, a token
    /// arrived), and the other nodes too when sharing a database.
    pub fn wake(&self) {
        self.wake.notify_waiters();
        if let Some(w) = self.shared.get() {
            w.tell(crate::store::postgres::Topic::Jobs);
        }
    }

    /// A server has new tokens: the jobs that waited for them can run,
    /// here and, when sharing a database, on the other nodes (told on the
    /// tokens channel).
    pub fn tokens_arrived(&self) {
        self.wake.notify_waiters();
        if let Some(w) = self.shared.get() {
            w.tell(crate::store::postgres::Topic::Tokens);
        }
    }

    /// Sharing a database with other nodes: their wake-ups wake this
    /// node's workers, and this node's tell them.
    pub fn share_wakeups(self: &Arc<Self>, wakeups: crate::store::postgres::Wakeups) {
        let (jobs, tokens) = (wakeups.woken(crate::store::postgres::Topic::Jobs), wakeups.woken(crate::store::postgres::Topic::Tokens));
        if self.shared.set(wakeups).is_err() {
            return;
        }
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = jobs.notified() => {}
                    _ = tokens.notified() => {}
                }
                let Some(engine) = engine.upgrade() else { return };
                engine.wake.notify_waiters();
                engine.wake_bulk.notify_one();
            }
        });
    }

    /// Asks each target's plugin what a removal does under its settings
    /// (targets saved in the UI have it already; this covers the rest, and
    /// a plugin upgraded since). Only destructive removals are held past a
    /// target's threshold.
    pub async fn refresh_removal_effects(&self) -> Result<(), StoreError> {
        use registry_plugin_runtime::latest::types::RemovalEffect;
        for t in self.store.targets().await? {
            let Some(plugin) = self.plugins.get(&t.plugin) else { continue };
            let effect = plugin.removal_effect(&plugin.settings_with_defaults(&t.settings)).await;
            let destructive = !matches!(effect, Ok(RemovalEffect::Keep | RemovalEffect::Mark));
            let guards = self.store.safeguards(t.id).await?;
            self.store.set_safeguards(t.id, &guards, destructive).await?;
        }
        Ok(())
    }

    /// Puts jobs a previous process left running back in the queue and
    /// starts the workers.
    pub async fn start(self: &Arc<Self>) -> Result<usize, StoreError> {
        let resumed = self.store.reset_running().await?;
        if resumed > 0 {
            tracing::info!(resumed, "resuming jobs left unfinished by the last run");
        }
        for n in 0..self.config.workers {
            let engine = self.clone();
            tokio::spawn(async move { engine.worker(n).await });
        }
        let engine = self.clone();
        tokio::spawn(async move { engine.bulk_poller().await });
        let engine = self.clone();
        tokio::spawn(async move { engine.group_worker().await });
        // The provisioning log keeps `log_retention`; pruned hourly.
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                match engine.store.prune_log(engine.config.log_retention.as_millis() as i64).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "provisioning log lines past the retention were deleted"),
                    Err(e) => tracing::warn!(error = %e, "pruning the provisioning log failed"),
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
        Ok(resumed)
    }

    async fn worker(self: Arc<Self>, n: usize) {
        loop {
            // Register interest before looking, so a wake between the look
            // and the wait is not lost.
            let notified = self.wake.notified();
            match self.run_once().await {
                Ok(0) => {
                    // At least 10 ms: a due job blocked behind another worker's
                    // job is not worth a busy loop.
                    let due = self.store.next_due().await.ok().flatten().map(|t| (t - self.store.now()).max(10) as u64);
                    let wait = due.map_or(self.config.idle_poll, |ms| Duration::from_millis(ms).min(self.config.idle_poll));
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(worker = n, error = %e, "provisioning worker could not use the database");
                    tokio::time::sleep(self.config.idle_poll).await;
                }
            }
        }
    }

    /// Claims one batch of ready jobs and runs it; returns how many jobs
    /// were claimed (0: nothing was ready).
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, EngineError> {
        let sizes = self.batch_sizes().await?;
        let (jobs, _flight) = self.claim(&sizes).await?;
        for (target, _) in self.store.take_new_holds() {
            if self.notifier.is_some() {
                let count = self.store.target_health(target).await?.held_removals;
                self.notify(crate::notify::Event::RemovalsHeld { target: self.store.target(target).await?.name, count });
            }
        }
        let n = jobs.len();
        if n == 0 {
            return Ok(0);
        }
        let claimed = jobs.clone();
        // Its own task, so that even a panic cannot strand the claimed jobs.
        let engine = self.clone();
        let outcome = tokio::spawn(async move { engine.process(jobs).await }).await;
        let failure = match outcome {
            Ok(Ok(())) => return Ok(n),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the worker failed: {e}"),
        };
        let released = self.store.release(&claimed).await?;
        tracing::error!(released, error = %failure, "provisioning stopped midway; the unfinished jobs are queued again");
        Err(EngineError::Worker { reason: failure, released })
    }

    /// Claims a batch from a target that is not at its cap of calls in
    /// flight, and counts it there until the returned guard is dropped.
    /// (The count lives in this process: several processes on one database
    /// each keep their own.)
    async fn claim(&self, sizes: &[(i64, usize)]) -> Result<(Vec<Job>, Option<Flight<'_>>), StoreError> {
        // One claim at a time in this process, so that the count of calls
        // in flight it reads is the one it adds to.
        let _one = self.claiming.lock().await;
        let busy: Vec<i64> = {
            let flights = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            flights.iter().filter(|(_, (n, cap))| cap.is_some_and(|c| *n >= c)).map(|(t, _)| *t).collect()
        };
        let jobs = self.store.claim_for(self.config.batch_max, &busy, sizes).await?;
        let Some(target) = jobs.first().map(|j| j.target_id) else { return Ok((jobs, None)) };
        let cap = self.store.safeguards(target).await?.concurrency.map(|c| c.max(1) as usize);
        let mut flights = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let entry = flights.entry(target).or_insert((0, cap));
        entry.0 += 1;
        entry.1 = cap;
        Ok((jobs, Some(Flight { engine: self, target })))
    }

    async fn tokens(&self, server_id: i64) -> Result<Option<TokenSet>, String> {
        if let Some(t) = self.store.tokens(server_id).await.map_err(|e| e.to_string())? {
            return Ok(Some(t));
        }
        // A grant that needs no browser gets its first token by itself (a
        // server waiting for an admin's fix does not).
        let server = self.store.server(server_id).await.map_err(|e| e.to_string())?;
        if server.grant_type != GrantType::AuthorizationCode && server.token_status == TokenStatus::NotSet {
            return self.oauth.renew(server_id, None).await.map(Some).map_err(|e| e.to_string());
        }
        Ok(None)
    }

    /// Runs a claimed batch: the jobs an admin asked for with their own
    /// provider token apart from the rest (each group with its token).
    async fn process(&self, jobs: Vec<Job>) -> Result<(), StoreError> {
        let mut groups: Vec<(Option<i64>, Vec<Job>)> = Vec::new();
        for job in jobs {
            match groups.iter_mut().find(|(admin, _)| *admin == job.acting_admin) {
                Some((_, group)) => group.push(job),
                None => groups.push((job.acting_admin, vec![job])),
            }
        }
        for (admin, jobs) in groups {
            self.process_as(jobs, admin).await?;
        }
        Ok(())
    }

    async fn process_as(&self, jobs: Vec<Job>, admin: Option<i64>) -> Result<(), StoreError> {
        let target = match self.store.target(jobs[0].target_id).await {
            Ok(t) => t,
            // Deleted meanwhile: its jobs went with it.
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(plugin) = self.plugins.get(&target.plugin) else {
            let m = format!("the plugin '{}' is not loaded; start the host with --plugin for it", target.plugin);
            for j in &jobs {
                self.settle(j, Verdict::Retry(None, m.clone())).await?;
            }
            return Ok(());
        };
        // An admin's own token when they hold one: the provider's audit
        // trail names them. Otherwise (or once theirs is gone) the server's.
        let personal = match admin {
            Some(a) => match self.oauth.personal_tokens(target.server_id, a).await {
                Ok(t) => t.map(|t| (a, t)),
                Err(e) => {
                    tracing::warn!(admin = a, server = target.server_id, error = %e, "an admin's own token cannot be read; the job runs with the server's");
                    None
                }
            },
            None => None,
        };
        let acting = personal.as_ref().map(|(a, _)| *a);
        let found = match personal {
            Some((_, t)) => Ok(Some(t)),
            None => self.tokens(target.server_id).await,
        };
        let mut tokens = match found {
            Ok(Some(t)) => t,
            Ok(None) => {
                let server = self.store.server(target.server_id).await?;
                return self.store.finish_waiting(&jobs, &format!("waiting for a token: use Obtain New Token on the server '{}'", server.name)).await;
            }
            Err(m) => {
                for j in &jobs {
                    self.settle(j, Verdict::Retry(None, format!("no token: {m}"))).await?;
                }
                return Ok(());
            }
        };
        let settings = plugin.settings_with_defaults(&target.settings);
        // A bulk API job's worth of people goes through one call at a time
        // in this process (and its polls): read a page at a time, but its
        // CSV and its results are still tens of MiB in the plugin.
        let _lane = if jobs.len() > self.config.batch_max { Some(self.bulk_lane.acquire().await.expect("never closed")) } else { None };
        let (mut pending, unreadable, mut requests) =
            if jobs.len() > self.config.batch_max { Requests::stored(&self.store, jobs).await? } else { Requests::load(&self.store, jobs).await? };
        for job in &unreadable {
            self.store.finish_failed(job, UNREADABLE).await?;
        }
        let mut refreshed = false;
        while !pending.is_empty() {
            let allow = match self.oauth.allowlist(target.server_id, &self.store.server_config(target.server_id).await?, Some(&tokens)).await {
                Ok(a) => a,
                // Tokens stored before the server's API hosts said otherwise
                // (an upgrade, a plugin that narrowed its own): they are
                // dropped, the server page says why, and the jobs wait for a
                // token as they do for any server without one.
                Err(FlowError::UntrustedInstance(why)) => {
                    self.store.clear_tokens(target.server_id).await?;
                    self.store.set_error(target.server_id, &why, None).await?;
                    return self.store.finish_waiting(&pending, &format!("waiting for a token: {why}")).await;
                }
                Err(e) => {
                    for j in &pending {
                        self.settle(j, Verdict::Fail(e.to_string())).await?;
                    }
                    return Ok(());
                }
            };
            // No call starts that could outlive its claim: on a shared
            // database the leases are renewed first, and a job another node
            // took back meanwhile is left to it.
            let ids: Vec<i64> = pending.iter().map(|j| j.id).collect();
            pending = self.store.hold_leases(std::mem::take(&mut pending)).await?;
            if pending.len() < ids.len() {
                tracing::warn!(lost = ids.len() - pending.len(), "jobs were taken back by another node before their call; they are its to run");
                let at: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
                let positions: Vec<usize> = pending.iter().filter_map(|j| at.get(&j.id).copied()).collect();
                requests = requests.select(&positions);
                if pending.is_empty() {
                    return Ok(());
                }
            }
            let context = TargetContext { settings: settings.clone(), tokens: tokens.clone() };
            let started = std::time::Instant::now();
            let (results, submitted) = self.call(plugin, &context, &pending, &requests, &allow).await;
            let took = Some(started.elapsed().as_millis() as i64);
            let mut done = Vec::new();
            let mut again = Vec::new();
            let mut settled = Vec::new();
            let mut held: Vec<Vec<Job>> = vec![Vec::new(); submitted.len()];
            for (i, (mut job, result)) in std::mem::take(&mut pending).into_iter().zip(results).enumerate() {
                job.duration_ms = took;
                match result {
                    Err(Verdict::Submitted(k)) => held[k].push(job),
                    Err(Verdict::TakenBack) => {}
                    Ok(outcome) => done.push(done_of(job, outcome)),
                    Err(v) if v == Verdict::Refresh && !refreshed => again.push((i, job)),
                    Err(v) => settled.push((job, v)),
                }
            }
            // An admin's own token that needs renewing is theirs to fix: the
            // job fails and says so; the server's token is not touched.
            if acting.is_some() {
                for (_, v) in settled.iter_mut() {
                    if let Verdict::Wait(m) = v {
                        *v = Verdict::Fail(format!("{m} (your own token for this server: generate a new one on Your provider tokens)"));
                    }
                }
            }
            // Work a bulk API took: its jobs stay with it, polled later.
            for (s, jobs) in submitted.iter().zip(&held) {
                let batch = self.store.submit_bulk(target.id, &s.reference, &target.settings, s.poll_after_ms, jobs).await?;
                tracing::info!(target = target.id, batch, people = jobs.len(), "a batch went to the remote system's bulk API; polling it");
                self.wake_bulk.notify_one();
            }
            self.target_health(&target, &done, &settled).await?;
            self.store.finish_done(&done).await?;
            // The plugin says only a new authorization helps: the server shows
            // it, and claim holds its jobs until an admin obtains a token.
            if let Some((_, Verdict::Wait(m))) = settled.iter().find(|(_, v)| matches!(v, Verdict::Wait(_))) {
                self.store.set_error(target.server_id, m, Some(TokenStatus::NeedsReauthorization)).await?;
                let server = self.store.server(target.server_id).await?.name;
                self.notify(crate::notify::Event::NeedsToken { server, reason: m.clone() });
            }
            let failed_now = settled.iter().any(|(_, v)| matches!(v, Verdict::Fail(_)));
            for (job, v) in settled {
                self.settle(&job, v).await?;
            }
            if failed_now && self.notifier.is_some() {
                let (_, failed) = self.store.job_counts(Some(target.id)).await?;
                if failed >= self.config.notify.failure_threshold {
                    self.notify(crate::notify::Event::Failures { target: target.name.clone(), count: failed });
                }
            }
            if again.is_empty() {
                break;
            }
            refreshed = true;
            let fresh = match acting {
                Some(a) => self.oauth.refresh_personal(target.server_id, a, &tokens.access_token).await.map_err(|e| {
                    Verdict::Fail(format!("your own token for this server no longer works ({e}); generate a new one on Your provider tokens, or ask again"))
                }),
                None => self.refresh(target.server_id, &tokens).await,
            };
            match fresh {
                Ok(fresh) => {
                    tokens = fresh;
                    requests = requests.select(&again.iter().map(|(i, _)| *i).collect::<Vec<_>>());
                    pending = again.into_iter().map(|(_, j)| j).collect();
                }
                Err(v) => {
                    if let Verdict::Wait(why) = &v {
                        let server = self.store.server(target.server_id).await?.name;
                        self.notify(crate::notify::Event::NeedsToken { server, reason: why.clone() });
                    }
                    for (_, job) in &again {
                        self.settle(job, v.clone()).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn notify(&self, event: crate::notify::Event) {
        if let Some(n) = &self.notifier {
            n.notify(event);
        }
    }

    /// A fresh token after `stale` was refused: shared with every other job
    /// of the server that hit the same refusal.
    async fn refresh(&self, server_id: i64, stale: &TokenSet) -> Result<TokenSet, Verdict> {
        let server = self.store.server(server_id).await.map_err(|e| Verdict::Retry(None, e.to_string()))?;
        let renewed = self.oauth.renew(server_id, Some(&stale.access_token)).await;
        let needs_admin = renewed.is_err() && self.store.server(server_id).await.map(|s| s.token_status == TokenStatus::NeedsReauthorization).unwrap_or(false);
        renewed.map_err(|e| {
            if needs_admin {
                Verdict::Wait(format!("waiting for a new token on the server '{}': {e}", server.name))
            } else {
                Verdict::Retry(None, format!("the token could not be refreshed: {e}"))
            }
        })
    }
}
