//! What an emulator starts with: orgs, their users, profiles, accounts,
//! custom fields and connected apps. Read from a JSON seed file or built in
//! code; [`Seed::demo`] is the org the README's demo uses.

use serde::{Deserialize, Serialize};

/// Everything the emulator knows at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The orgs; the first is the default for the library's shortcuts.
    pub orgs: Vec<OrgSeed>,
}

/// One Salesforce org.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSeed {
    /// The org's name (`Organization.Name`).
    pub name: String,
    /// Instance name, like `na1`; orgs with the same name share an instance host.
    #[serde(default = "default_instance")]
    pub instance: String,
    /// `DailyApiRequests.Max`.
    #[serde(default = "default_daily_limit")]
    pub daily_api_limit: u64,
    /// Session timeout: how long an access token lives (Salesforce's default is 2 hours).
    #[serde(default = "default_session_timeout")]
    pub session_timeout_secs: u64,
    /// Profiles users can be given (`ProfileId`).
    #[serde(default = "default_profiles")]
    pub profiles: Vec<String>,
    /// Users who can log in on the login page.
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Accounts (a Contact's `AccountId`).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Custom fields added to the standard objects.
    #[serde(default)]
    pub custom_fields: Vec<CustomFieldSeed>,
    /// Connected apps created in this org (before Spring '26; existing ones
    /// still work).
    #[serde(default)]
    pub connected_apps: Vec<AppSeed>,
    /// External Client Apps: what new integrations create since Spring '26.
    /// Closed by default: PKCE required, refresh tokens rotated, and only
    /// pre-authorized users may authorize.
    #[serde(default)]
    pub external_client_apps: Vec<ExternalClientAppSeed>,
}

/// An External Client App, with Salesforce's defaults for one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalClientAppSeed {
    /// The app's name, shown on the consent page.
    pub name: String,
    /// Consumer key (`client_id`).
    pub consumer_key: String,
    /// Consumer secret (`client_secret`).
    pub consumer_secret: String,
    /// Callback URLs; a `redirect_uri` must match one exactly.
    #[serde(default)]
    pub callback_urls: Vec<String>,
    /// "Require Proof Key for Code Exchange (PKCE)": on by default.
    #[serde(default = "yes")]
    pub require_pkce: bool,
    /// "Require secret for Web Server Flow" and for the refresh token flow.
    #[serde(default = "yes")]
    pub require_secret: bool,
    /// "Enable Refresh Token Rotation": on by default.
    #[serde(default = "yes")]
    pub rotate_refresh_tokens: bool,
    /// Selected OAuth scopes.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Run-as user of the client credentials flow.
    #[serde(default)]
    pub client_credentials_user: Option<String>,
    /// The users pre-authorized by the app's policies (given a permission
    /// set the app lists); nobody else may authorize it.
    #[serde(default)]
    pub pre_authorized_users: Vec<String>,    /// The certificate uploaded under "Use digital signatures" (PEM), which
    /// JWT bearer assertions are verified with.
    #[serde(default)]
    pub certificate: Option<String>,
}

impl From<ExternalClientAppSeed> for AppSeed {
    fn from(e: ExternalClientAppSeed) -> Self {
        AppSeed {
            name: e.name,
            consumer_key: e.consumer_key,
            consumer_secret: e.consumer_secret,
            callback_urls: e.callback_urls,
            require_pkce: e.require_pkce,
            require_secret: e.require_secret,
            rotate_refresh_tokens: e.rotate_refresh_tokens,
            scopes: e.scopes,
            client_credentials_user: e.client_credentials_user,
            pre_authorized_users: Some(e.pre_authorized_users),
            certificate: e.certificate,
        }
    }
}

/// An org user who can log in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// `Username` (an email-shaped login, unique across all orgs).
    pub username: String,
    /// Login password.
    pub password: String,
    /// `FirstName`.
    #[serde(default)]
    pub first_name: Option<String>,
    /// `LastName`.
    pub last_name: String,
    /// `Email`; the username when absent.
    #[serde(default)]
    pub email: Option<String>,
    /// Profile name, one of the org's profiles.
    #[serde(default = "default_admin_profile")]
    pub profile: String,
}

/// A custom field on a standard object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldSeed {
    /// The object: `Contact`, `User` or `Account`.
    pub object: String,
    /// API name, ending in `__c`.
    pub name: String,
    /// Label used in error messages; the name without `__c` when absent.
    #[serde(default)]
    pub label: Option<String>,
    /// `string`, `email`, `boolean` or `textarea`.
    #[serde(default = "default_field_type")]
    pub r#type: String,
    /// Maximum length for text fields.
    #[serde(default = "default_field_length")]
    pub length: usize,
    /// Whether the field is an External ID (usable for upsert).
    #[serde(default)]
    pub external_id: bool,
    /// Whether values must be unique (case-insensitively).
    #[serde(default)]
    pub unique: bool,
    /// Whether a value is required.
    #[serde(default)]
    pub required: bool,
}

/// A connected app (OAuth client).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    /// The app's name, shown on the consent page.
    pub name: String,
    /// Consumer key (`client_id`).
    pub consumer_key: String,
    /// Consumer secret (`client_secret`).
    pub consumer_secret: String,
    /// Callback URLs; a `redirect_uri` must match one exactly.
    #[serde(default)]
    pub callback_urls: Vec<String>,
    /// Whether the authorization code flow needs a PKCE `code_challenge`.
    #[serde(default)]
    pub require_pkce: bool,
    /// "Require Secret for Web Server Flow" and for the refresh token flow.
    #[serde(default = "yes")]
    pub require_secret: bool,
    /// Refresh-token rotation: each refresh returns a new refresh token.
    #[serde(default)]
    pub rotate_refresh_tokens: bool,
    /// Selected OAuth scopes, e.g. `api`, `refresh_token`, `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Username of the "run as" user that enables the client credentials flow.
    #[serde(default)]
    pub client_credentials_user: Option<String>,
    /// Permitted Users: `None`, all users may self-authorize; a list,
    /// "Admin approved users are pre-authorized" and these are (by a
    /// profile or permission set the app's policies name).
    #[serde(default)]
    pub pre_authorized_users: Option<Vec<String>>,    /// The certificate uploaded under "Use digital signatures" (PEM), which
    /// JWT bearer assertions are verified with; one at a time, as in
    /// Salesforce (an upload replaces it).
    #[serde(default)]
    pub certificate: Option<String>,
}

fn default_instance() -> String {
    "na1".into()
}
fn default_daily_limit() -> u64 {
    15_000
}
fn default_session_timeout() -> u64 {
    2 * 60 * 60
}
fn default_profiles() -> Vec<String> {
    vec!["System Administrator".into(), "Standard User".into(), "Chatter Free User".into()]
}
fn default_admin_profile() -> String {
    "System Administrator".into()
}
fn default_field_type() -> String {
    "string".into()
}
fn default_field_length() -> usize {
    255
}
fn default_scopes() -> Vec<String> {
    vec!["api".into(), "refresh_token".into(), "offline_access".into()]
}
fn yes() -> bool {
    true
}

/// The demo connected app's consumer key.
pub const DEMO_CONSUMER_KEY: &str =
    "3MVG9emulatorDemoKey.registry.provisioner.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij";
/// The demo connected app's consumer secret.
pub const DEMO_CONSUMER_SECRET: &str = "D3M0C0NSUMERSECRET5A1E5F0RCE0FF1INE";
/// The demo user's username.
pub const DEMO_USERNAME: &str = "admin@demo.example.com";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "emulator-demo-1";

impl Seed {
    /// One org ("Demo Org" on `na1`) with an admin user, an account, a
    /// `Registry_ID__c` external-id field on Contact and User, and a
    /// connected app allowing the given callback URLs (PKCE optional,
    /// rotation off, client credentials run as the admin).
    pub fn demo(callback_urls: Vec<String>) -> Self {
        let external_id = |object: &str| CustomFieldSeed {
            object: object.into(),
            name: "Registry_ID__c".into(),
            label: Some("Registry ID".into()),
            r#type: "string".into(),
            length: 255,
            external_id: true,
            unique: true,
            required: false,
        };
        Seed {
            orgs: vec![OrgSeed {
                name: "Demo Org".into(),
                instance: default_instance(),
                daily_api_limit: default_daily_limit(),
                session_timeout_secs: default_session_timeout(),
                profiles: default_profiles(),
                users: vec![UserSeed {
                    username: DEMO_USERNAME.into(),
                    password: DEMO_PASSWORD.into(),
                    first_name: Some("Ada".into()),
                    last_name: "Admin".into(),
                    email: None,
                    profile: default_admin_profile(),
                }],
                accounts: vec!["Registry People".into()],
                custom_fields: vec![external_id("Contact"), external_id("User")],
                connected_apps: vec![AppSeed {
                    name: "Registry Provisioner".into(),
                    consumer_key: DEMO_CONSUMER_KEY.into(),
                    consumer_secret: DEMO_CONSUMER_SECRET.into(),
                    callback_urls,
                    require_pkce: false,
                    require_secret: true,
                    rotate_refresh_tokens: false,
                    scopes: default_scopes(),
                    client_credentials_user: Some(DEMO_USERNAME.into()),
                    pre_authorized_users: None,
                    certificate: None,
                }],
                external_client_apps: vec![],
            }],
        }
    }

    /// Reads a seed from JSON, naming the problem and where it is.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid seed: {e}"))
    }
}
