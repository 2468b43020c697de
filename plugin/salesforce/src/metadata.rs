//! What the plugin tells the host about itself.

/// Machine name used in the host's logs and errors.
pub const NAME: &str = "salesforce";

/// One paragraph for admins.
pub const DESCRIPTION: &str = "Provisions registry people to Salesforce as Contacts or Users over the REST API, \
authorized through an External Client App (or an existing Connected App). Users are deactivated rather than deleted; \
with an External ID field, records are upserted so retries never duplicate.";

/// A Server URL an admin picks: label, URL (`{name}` typed by the admin),
/// what `{name}` is, and the API hosts a server made from it allows.
pub struct ServerUrlChoice {
    /// What the admin sees.
    pub label: &'static str,
    /// The login URL.
    pub url: &'static str,
    /// What `{name}` stands for; empty without one.
    pub name_label: &'static str,
    /// Instance hosts its tokens may name; empty: [`API_HOSTS`].
    pub api_hosts: &'static [&'static str],
}

/// Where Salesforce admins sign in: production is the default.
pub const SERVER_URLS: &[ServerUrlChoice] = &[
    ServerUrlChoice { label: "Production", url: "https://login.salesforce.com", name_label: "", api_hosts: &[] },
    ServerUrlChoice {
        label: "Sandbox",
        url: "https://test.salesforce.com",
        name_label: "",
        api_hosts: &["*.sandbox.my.salesforce.com", "*.salesforce.com"],
    },
    ServerUrlChoice {
        label: "My Domain",
        url: "https://{name}.my.salesforce.com",
        name_label: "My Domain name (as in NAME.my.salesforce.com)",
        api_hosts: &["{name}.my.salesforce.com"],
    },
    ServerUrlChoice {
        label: "Sandbox My Domain",
        url: "https://{name}.sandbox.my.salesforce.com",
        name_label: "Sandbox My Domain name (as in NAME--SANDBOX.sandbox.my.salesforce.com)",
        api_hosts: &["{name}.sandbox.my.salesforce.com"],
    },
];

/// Help for the OAuth2 server form, in Salesforce's words (2026: new
/// integrations are External Client Apps; Connected Apps can no longer be
/// created, but existing ones still work).
pub const SERVER_FORM_HELP: &[(&str, &str)] = &[
    ("server-url", "Where your org's users log in: Production (login.salesforce.com), Sandbox (test.salesforce.com), or your org's My Domain. Custom takes any https URL (/services/oauth2 may be added)."),
    ("client-id", "The External Client App's Consumer Key (or an existing Connected App's): in Setup, External Client App Manager, the app, OAuth Settings, Consumer Key and Secret."),
    ("client-secret", "The External Client App's Consumer Secret (or the Connected App's). Stored encrypted; never shown again."),
    ("grant-type", "Authorization Code: an admin signs in at Salesforce and allows access; the app's Permitted Users policy must pre-authorize them (through a permission set). Client Credentials: the app's run-as user, no browser. JWT Bearer: no browser and no secret; upload this server's certificate under the app's \"Use digital signatures\" and pre-authorize the user it acts as."),
    ("subject", "JWT Bearer: the Salesforce username the tokens act as (its audit trail names it). The app's Permitted Users must pre-authorize this user, through a permission set the app's policies list."),
    ("certificate", "JWT Bearer: in Setup, External Client App Manager, the app, OAuth Settings, tick \"Use digital signatures\" and upload this certificate. To rotate, generate the next certificate, upload it there, then switch: the old key keeps working until you do."),
    ("scope", "Space separated; provisioning needs \"api refresh_token\" (refresh_token is offline_access). Empty: the app's selected OAuth scopes."),
    ("redirect-uri", "Paste this as the Callback URL in the External Client App's OAuth Settings (or the Connected App's). It must match exactly."),
    ("authorization-error", "OAUTH_APPROVAL_ERROR_GENERIC or \"user is not admin approved to access this app\": the app's Permitted Users are \"Admin approved users are pre-authorized\" (an External Client App's default) and this Salesforce user is not. In Setup, External Client App Manager, the app, Policies, add a permission set to its list and assign that permission set to the user; then obtain the token again. \"missing required code challenge\": PKCE is required and the request lacked it. redirect_uri_mismatch: the Callback URL differs from the Redirect URI."),
];

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
    /// The JWT bearer grant.
    pub jwt_bearer: bool,
    /// Bulk API 2.0 in the background (`poll-batch`).
    pub background_batch: bool,
    /// Registry groups (as Public Groups).
    pub groups: bool,
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
    jwt_bearer: true,
    background_batch: true,
    groups: true,
};
