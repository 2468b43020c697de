//! What the plugin tells the host about itself.

/// Machine name used in the host's logs and errors.
pub const NAME: &str = "salesforce";

/// One paragraph for admins.
pub const DESCRIPTION: &str = "Provisions registry people to Salesforce as Contacts or Users over the REST API, \
authorized through an OAuth2 connected app. Users are deactivated rather than deleted; \
with an External ID field, records are upserted so retries never duplicate.";

/// The hosts Salesforce names as instance URLs in token responses: My Domain
/// hosts (`NAME.my.salesforce.com`, sandboxes under
/// `.sandbox.my.salesforce.com`), classic instances (`na1.salesforce.com`)
/// and Experience Cloud / Visualforce hosts under `force.com`.
pub const API_HOSTS: &[&str] = &["*.my.salesforce.com", "*.sandbox.my.salesforce.com", "*.salesforce.com", "*.force.com"];

/// The plugin's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which calls are really implemented (mirrors the WIT `capabilities` flags).
/// Later work turns these on as the calls are built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Authorization URL and code exchange.
    pub authorization_code: bool,
    /// Refresh.
    pub refresh: bool,
    /// Client-credentials grant.
    pub client_credentials: bool,
    /// Revoke.
    pub revoke: bool,
    /// Connection check.
    pub check_connection: bool,
    /// Single provisioning.
    pub provision: bool,
    /// Bulk provisioning.
    pub provision_batch: bool,
}

/// What this build implements.
pub const CAPABILITIES: Capabilities = Capabilities {
    authorization_code: true,
    refresh: true,
    client_credentials: true,
    revoke: true,
    check_connection: true,
    provision: true,
    provision_batch: true,
};
