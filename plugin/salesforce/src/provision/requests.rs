//! A batch's requests as the plugin reads them: a page at a time from the
//! host (contract 0.2.0's `batch-requests`), so a Bulk API job's worth of
//! people never sits in the plugin's memory at once; or a `Vec`, natively
//! and in tests.

use super::Request;

/// Requests read per page: a few hundred KiB of people.
pub const PAGE: usize = 1_000;

/// A batch's requests, read by position.
pub trait Requests {
    /// How many there are.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests `start..start + max`, cut at the end.
    fn page(&self, start: usize, max: usize) -> Vec<Request>;

}

/// Every request of `reqs`, each with its position, a page at a time.
pub fn each<E>(reqs: &dyn Requests, f: &mut dyn FnMut(usize, Request) -> Result<(), E>) -> Result<(), E> {
    let mut start = 0;
    while start < reqs.len() {
        let page = reqs.page(start, PAGE);
        if page.is_empty() {
            break;
        }
        let n = page.len();
        for (i, r) in page.into_iter().enumerate() {
            f(start + i, r)?;
        }
        start += n;
    }
    Ok(())
}

/// All of `reqs` at once, for the paths that need them together.
pub fn all(reqs: &dyn Requests) -> Vec<Request> {
    let mut all = Vec::with_capacity(reqs.len());
    let _ = each::<()>(reqs, &mut |_, r| {
        all.push(r);
        Ok(())
    });
    all
}

impl Requests for Vec<Request> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn page(&self, start: usize, max: usize) -> Vec<Request> {
        let start = start.min(self.len());
        self[start..start.saturating_add(max).min(self.len())].to_vec()
    }
}
