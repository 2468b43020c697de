//! A claimed batch's requests for its plugin call: in memory for the usual
//! batch, or, for a bulk API job's worth, read from the database a page at
//! a time as the plugin asks (contract 0.2.0's `batch-requests`), so the
//! host holds the jobs and a page of people, never tens of thousands of
//! people at once.

use std::ops::Range;
use std::sync::Arc;

use registry_plugin_runtime::batch::ReadFuture;
use registry_plugin_runtime::latest::provisioning_target::ProvisionRequest;
use registry_plugin_runtime::latest::types::RemoteRef;
use registry_plugin_runtime::RequestSource;

use crate::domain::Job;
use crate::store::{Store, StoreError};

/// Jobs whose people are checked readable per round trip when a stored
/// batch is set up.
const CHECK_PAGE: usize = 1_000;

/// A batch's requests, one per job, in the jobs' order.
pub(super) enum Requests {
    /// Built up front.
    Loaded(Vec<ProvisionRequest>),
    /// Read from the store as the plugin asks.
    Stored(Stored),
}

impl Requests {
    /// `jobs`' requests, held in memory; the jobs whose person cannot be
    /// read are left out of both and returned apart, for the caller to fail.
    pub(super) async fn load(store: &Store, jobs: Vec<Job>) -> Result<(Vec<Job>, Vec<Job>, Requests), StoreError> {
        let inputs = store.job_inputs(&jobs).await?;
        let (mut kept, mut unreadable, mut requests) = (Vec::with_capacity(jobs.len()), Vec::new(), Vec::with_capacity(jobs.len()));
        for (job, (person, current)) in jobs.into_iter().zip(inputs) {
            let Some(person) = person else {
                unreadable.push(job);
                continue;
            };
            requests.push(request(&job, &person, current));
            kept.push(job);
        }
        Ok((kept, unreadable, Requests::Loaded(requests)))
    }

    /// `jobs`' requests, read from `store` when the plugin asks. Each person
    /// is checked readable now, a page at a time (those who are not are
    /// returned apart, for the caller to fail), so that a read later fails
    /// only if the store does.
    pub(super) async fn stored(store: &Arc<Store>, jobs: Vec<Job>) -> Result<(Vec<Job>, Vec<Job>, Requests), StoreError> {
        let (mut kept, mut unreadable) = (Vec::with_capacity(jobs.len()), Vec::new());
        for page in jobs.chunks(CHECK_PAGE) {
            for (job, (person, _)) in page.iter().zip(store.job_inputs(page).await?) {
                match person {
                    Some(_) => kept.push(job.clone()),
                    None => unreadable.push(job.clone()),
                }
            }
        }
        let jobs: Arc<[Job]> = kept.clone().into();
        Ok((kept, unreadable, Requests::Stored(Stored { store: store.clone(), range: 0..jobs.len(), jobs })))
    }

    /// How many.
    pub(super) fn len(&self) -> usize {
        match self {
            Requests::Loaded(r) => r.len(),
            Requests::Stored(s) => s.range.len(),
        }
    }

    /// The `i`th request, for a call of one.
    pub(super) async fn one(&self, i: usize) -> Result<ProvisionRequest, String> {
        let mut page = self.part(i..i + 1);
        page.read(0, 1).await.map_err(|e| format!("{e:#}"))?.pop().ok_or_else(|| "the request is gone".to_string())
    }

    /// Requests `range`, as the plugin reads them.
    pub(super) fn part(&self, range: Range<usize>) -> Box<dyn RequestSource> {
        match self {
            Requests::Loaded(r) => Box::new(r[range].to_vec()),
            Requests::Stored(s) => {
                let start = s.range.start + range.start;
                Box::new(Stored { store: s.store.clone(), jobs: s.jobs.clone(), range: start..start + range.len() })
            }
        }
    }

    /// The requests at `positions`, for the same jobs again (after a token
    /// refresh).
    pub(super) fn select(&self, positions: &[usize]) -> Requests {
        match self {
            Requests::Loaded(r) => Requests::Loaded(positions.iter().map(|&i| r[i].clone()).collect()),
            Requests::Stored(s) => {
                let jobs: Arc<[Job]> = positions.iter().map(|&i| s.jobs[s.range.start + i].clone()).collect();
                Requests::Stored(Stored { store: s.store.clone(), range: 0..jobs.len(), jobs })
            }
        }
    }
}

/// Jobs whose requests are read from the store on demand.
pub(super) struct Stored {
    store: Arc<Store>,
    jobs: Arc<[Job]>,
    range: Range<usize>,
}

impl RequestSource for Stored {
    fn len(&self) -> usize {
        self.range.len()
    }

    fn read(&mut self, start: usize, max: usize) -> ReadFuture<'_> {
        let from = (self.range.start + start).min(self.range.end);
        let to = from.saturating_add(max).min(self.range.end);
        let jobs = self.jobs[from..to].to_vec();
        let store = self.store.clone();
        Box::pin(async move {
            let inputs = store.job_inputs(&jobs).await?;
            jobs.iter()
                .zip(inputs)
                .map(|(job, (person, current))| match person {
                    Some(person) => Ok(request(job, &person, current)),
                    None => Err(anyhow::anyhow!("the stored record of person {} cannot be read", job.person_id)),
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
    }
}

fn request(job: &Job, person: &crate::domain::Person, current: Option<(String, String)>) -> ProvisionRequest {
    let current = current.map(|(object_type, remote_id)| RemoteRef { object_type, remote_id });
    ProvisionRequest { action: job.action.to_wit(), person: person.to_wit(), current }
}
