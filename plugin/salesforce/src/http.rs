//! HTTP as the plugin's logic sees it: the shared guest crate's values and
//! transports, and what Salesforce adds to every answer (its API usage).

pub use registry_guest::*;

/// What Salesforce says on every REST answer.
pub trait SalesforceResponse {
    /// The org's API usage from `Sforce-Limit-Info: api-usage=USED/LIMIT`.
    fn api_usage(&self) -> Option<(u64, u64)>;
}

impl SalesforceResponse for Response {
    fn api_usage(&self) -> Option<(u64, u64)> {
        let info = self.header("Sforce-Limit-Info")?;
        let usage = info.split(',').find_map(|part| part.trim().strip_prefix("api-usage="))?;
        let (used, limit) = usage.split_once('/')?;
        Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
    }
}
