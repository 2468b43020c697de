//! OAuth2 servers: what an admin enters, what pages show (never a secret),
//! and whether a usable token is held.

use registry_plugin_runtime::latest::types::{GrantType, Oauth2ServerConfig};
use serde::{Deserialize, Serialize};

/// Whether a usable token is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// No token.
    NotSet,
    /// A usable access token is held.
    Set,
    /// The refresh token died: an admin must obtain a new token.
    NeedsReauthorization,
}

impl TokenStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::NotSet => "not_set",
            TokenStatus::Set => "set",
            TokenStatus::NeedsReauthorization => "needs_reauthorization",
        }
    }
    /// Parses a stored name; `None` for a name this program does not know.
    pub fn parse(s: &str) -> Option<Self> {
        [TokenStatus::NotSet, TokenStatus::Set, TokenStatus::NeedsReauthorization].into_iter().find(|t| t.as_str() == s)
    }
}

/// What an admin enters for an OAuth2 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The plugin that speaks this server's OAuth.
    pub plugin: String,
    /// Server URL.
    pub server_url: String,
    /// Client ID.
    pub client_id: String,
    /// Client secret; `None` keeps the stored one.
    pub client_secret: Option<String>,
    /// Grant type.
    pub grant_type: GrantType,
    /// Scope.
    pub scope: Option<String>,
    /// Host patterns the instance URL in this server's tokens may name, on
    /// top of the plugin's own (see `registry_plugin_runtime::HostPattern`);
    /// empty: the plugin's alone.
    pub api_hosts: Vec<String>,
    /// JWT bearer: who the tokens act as (the assertion's subject).
    pub jwt_subject: Option<String>,
    /// The token endpoint apart from the Server URL, for plugins that ask
    /// for one.
    pub token_url: Option<String>,
}

/// An OAuth2 server as shown (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Plugin name.
    pub plugin: String,
    /// Server URL.
    pub server_url: String,
    /// Client ID.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub has_secret: bool,
    /// Grant type.
    pub grant_type: GrantType,
    /// Scope.
    pub scope: Option<String>,
    /// The admin's API host patterns (empty: the plugin's alone).
    pub api_hosts: Vec<String>,
    /// JWT bearer: who the tokens act as.
    pub jwt_subject: Option<String>,
    /// The token endpoint apart from the Server URL, if any.
    pub token_url: Option<String>,
    /// Token status.
    pub token_status: TokenStatus,
    /// Instance URL from the last token response.
    pub instance_url: Option<String>,
    /// When the held token was issued (ms).
    pub token_issued_at: Option<i64>,
    /// The last OAuth failure, in plain language.
    pub last_error: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

/// What saving a server changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// The row id.
    pub id: i64,
    /// Whether stored tokens were cleared (URL, client id or secret changed).
    pub tokens_cleared: bool,
}


impl ServerInput {
    /// Whether saving this over `before` makes its tokens (and admins' own)
    /// belong to another configuration, so that they are cleared: the
    /// Server URL, Client ID, grant, JWT user, token URL, API hosts,
    /// plugin, or (`secret_changed`) the secret.
    pub fn clears_tokens_of(&self, before: &Server, secret_changed: bool) -> bool {
        before.server_url != self.server_url
            || before.client_id != self.client_id
            || before.grant_type != self.grant_type
            || before.jwt_subject != self.jwt_subject
            || before.token_url != self.token_url
            || before.api_hosts != self.api_hosts
            || before.plugin != self.plugin
            || secret_changed
    }

    /// The input for a server configured as `config` (what plugins get),
    /// listed as `name` and spoken to by `plugin`.
    pub fn for_config(name: &str, plugin: &str, config: &Oauth2ServerConfig) -> Self {
        ServerInput {
            name: name.into(),
            description: String::new(),
            plugin: plugin.into(),
            server_url: config.server_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: Some(config.client_secret.clone()),
            grant_type: config.grant_type,
            scope: config.scope.clone(),
            api_hosts: Vec::new(),
            jwt_subject: None,
            token_url: config.token_url.clone(),
        }
    }

    /// A server at `https://login.example.org` with client `app` and
    /// secret `s3cret`, nothing else set: the tests' and the benches'
    /// usual server (change a field with `..ServerInput::example(…)`).
    pub fn example(name: &str, plugin: &str, grant_type: GrantType) -> Self {
        ServerInput {
            name: name.into(),
            description: String::new(),
            plugin: plugin.into(),
            server_url: "https://login.example.org".into(),
            client_id: "app".into(),
            client_secret: Some("s3cret".into()),
            grant_type,
            scope: None,
            api_hosts: Vec::new(),
            jwt_subject: None,
            token_url: None,
        }
    }
}

/// The stored name of a grant type.
pub fn grant_str(g: GrantType) -> &'static str {
    match g {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::ClientCredentials => "client_credentials",
        GrantType::JwtBearer => "jwt_bearer",
        GrantType::StaticBearer => "static_bearer",
    }
}

/// The grant type's name for admins.
pub fn grant_label(g: GrantType) -> &'static str {
    match g {
        GrantType::AuthorizationCode => "Authorization Code",
        GrantType::ClientCredentials => "Client Credentials",
        GrantType::JwtBearer => "JWT Bearer",
        GrantType::StaticBearer => "Bearer Token (pasted)",
    }
}

/// Parses a stored grant type name; `None` for one this program does not know.
pub fn grant_parse(s: &str) -> Option<GrantType> {
    [GrantType::AuthorizationCode, GrantType::ClientCredentials, GrantType::JwtBearer, GrantType::StaticBearer].into_iter().find(|g| grant_str(*g) == s)
}
