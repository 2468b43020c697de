//! The requests of a batch call, kept on the host's side and read by the
//! plugin a page at a time (contract 0.2.0's `batch-input`): a bulk API
//! job's worth of people is never lowered into the plugin's memory at once,
//! and an embedder can load them page by page too ([`RequestSource`]).

use std::future::Future;
use std::pin::Pin;

use wasmtime::component::Resource;

use crate::call::HostState;
use crate::contract::latest::batch_input;
use crate::contract::latest::types::ProvisionRequest;

/// The most requests one `read` answers, whatever the plugin asks for: a
/// page lowered into the plugin's memory stays a few hundred KiB.
pub const MAX_PAGE: usize = 1_000;

/// What a [`RequestSource::read`] returns.
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Vec<ProvisionRequest>>> + Send + 'a>>;

/// Where a batch call's requests come from: a list in memory, or (an
/// embedder's) the database, read as the plugin asks. Reads may come in any
/// order and more than once; each must answer the same.
pub trait RequestSource: Send + 'static {
    /// How many requests the batch has.
    fn len(&self) -> usize;

    /// Whether the batch is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests `start..start + max` (cut at the end). An error stops the
    /// call (the plugin traps): the embedder's to retry.
    fn read(&mut self, start: usize, max: usize) -> ReadFuture<'_>;
}

impl RequestSource for Vec<ProvisionRequest> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn read(&mut self, start: usize, max: usize) -> ReadFuture<'_> {
        let page = self.get(start.min(self.len())..start.saturating_add(max).min(self.len())).unwrap_or_default().to_vec();
        Box::pin(async move { Ok(page) })
    }
}

impl RequestSource for Box<dyn RequestSource> {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn read(&mut self, start: usize, max: usize) -> ReadFuture<'_> {
        (**self).read(start, max)
    }
}

/// A [`RequestSource`] that failed, as the call's error carries it (and
/// [`Failure::Source`](crate::Failure::Source) reports it).
#[derive(Debug)]
pub(crate) struct SourceError(pub(crate) String);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

/// A plugin that read its batch too often, as the call's error carries it
/// (and [`Failure::Limit`](crate::Failure::Limit) reports it).
#[derive(Debug)]
pub(crate) struct ReadLimit(pub(crate) String);

impl std::fmt::Display for ReadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadLimit {}

/// The host's side of a `batch-requests` resource.
pub struct BatchRequests {
    source: Box<dyn RequestSource>,
    /// Reads left in this call: a plugin may read the batch a few times
    /// over, not loop on it (each read may cost the embedder a database
    /// round trip per request).
    reads_left: usize,
}

/// How many times over a call may read its batch.
const READS_OVER: usize = 4;

impl BatchRequests {
    pub(crate) fn new(source: impl RequestSource) -> Self {
        let pages = source.len().div_ceil(MAX_PAGE).max(1);
        Self { source: Box::new(source), reads_left: READS_OVER * pages + 8 }
    }

    /// Every request, for a 0.1.0 plugin (which takes a list).
    pub(crate) async fn read_all(mut self) -> anyhow::Result<Vec<ProvisionRequest>> {
        let len = self.source.len();
        let mut all = Vec::with_capacity(len);
        while all.len() < len {
            let page = self.source.read(all.len(), MAX_PAGE).await?;
            if page.is_empty() {
                anyhow::bail!("the batch's source ended at {} of {len} requests", all.len());
            }
            all.extend(page);
        }
        Ok(all)
    }
}

impl batch_input::Host for HostState {}

impl batch_input::HostBatchRequests for HostState {
    async fn len(&mut self, this: Resource<BatchRequests>) -> wasmtime::Result<u32> {
        let len = self.table.get(&this)?.source.len();
        Ok(u32::try_from(len).unwrap_or(u32::MAX))
    }

    async fn read(&mut self, this: Resource<BatchRequests>, start: u32, max: u32) -> wasmtime::Result<Vec<ProvisionRequest>> {
        let batch = self.table.get_mut(&this)?;
        let len = batch.source.len();
        let start = start as usize;
        if start >= len || max == 0 {
            return Ok(Vec::new());
        }
        let max = (max as usize).min(MAX_PAGE).min(len - start);
        if batch.reads_left == 0 {
            return Err(wasmtime::Error::new(ReadLimit(format!("it read its batch of {len} requests more than {READS_OVER} times over"))));
        }
        batch.reads_left -= 1;
        batch.source.read(start, max).await.map_err(|e| wasmtime::Error::new(SourceError(format!("{e:#}"))))
    }

    async fn drop(&mut self, this: Resource<BatchRequests>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
