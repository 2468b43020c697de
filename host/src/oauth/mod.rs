//! "Obtain New Token" and the other OAuth2 server actions, driven by the
//! host: state and PKCE verifiers are made and kept here (single use,
//! expiring); the plugin builds URLs and talks to the provider, under an
//! allowlist of the server's host and the instance host its tokens name.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::oauth2_server::{AuthorizationRequest, ConnectionInfo};
use registry_plugin_runtime::latest::types::{GrantType, Oauth2ServerConfig, PluginError, TokenSet};
use registry_plugin_runtime::http::policy::check_instance;
use registry_plugin_runtime::{CallError, HostPattern, HttpAllowlist, Origin, Plugin};
use sha2::{Digest, Sha256};

mod personal;
mod renew;

use crate::domain::TokenStatus;
use crate::store::{KeyRole, SigningKeyInfo};
use registry_plugin_runtime::latest::types::JwtSigningKey;
use crate::secrets::random;
use crate::store::{PendingOrigin, Store, StoreError};

/// How long an "Obtain New Token" may take from click to callback.
pub const PENDING_TTL_MS: i64 = 10 * 60 * 1000;

/// Why an OAuth action failed, in words an admin can act on.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plugin could not run the call (sandbox stop).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The plugin answered with an error.
    #[error("{0}")]
    Plugin(String),
    /// No plugin of that name is loaded.
    #[error("no plugin named '{0}' is loaded")]
    NoPlugin(String),
    /// The callback's state is unknown or used.
    #[error("this sign-in link was already used or is not ours; click Obtain New Token again")]
    UnknownState,
    /// The callback came too late.
    #[error("the sign-in took longer than 10 minutes; click Obtain New Token again")]
    Expired,
    /// The callback comes from another browser session than the one that
    /// clicked Obtain New Token.
    #[error("this sign-in was started in another browser session; click Obtain New Token again here")]
    OtherSession,
    /// The callback's state belongs to another server.
    #[error("the sign-in answer belongs to another server; click Obtain New Token again")]
    WrongServer,
    /// The admin (or provider) refused.
    #[error("{0}")]
    Denied(String),
    /// No tokens are held.
    #[error("no token is held; click Obtain New Token first")]
    NoTokens,
    /// The action does not fit the server's grant type.
    #[error("{0}")]
    WrongGrant(&'static str),
    /// A URL from the configuration or a token response is not acceptable.
    #[error("{0}")]
    BadUrl(String),
    /// The instance URL tokens name is not among the API hosts the plugin
    /// and the server trust.
    #[error("{0}")]
    UntrustedInstance(String),
    /// A JWT bearer server without a signing key.
    #[error("this server has no signing key yet: generate its certificate on the server page and upload it to the provider's app")]
    NoSigningKey,
}

/// Checks a URL a plugin will be allowed to reach: the runtime's origin
/// rule (https, or plain http only to loopback), and plain http at all only
/// when `insecure_loopback` (the operator's opt-in); `what` names it for the
/// admin.
pub fn check_origin(url: &str, what: &str, insecure_loopback: bool) -> Result<Origin, FlowError> {
    let origin = Origin::of_url(url).map_err(|e| FlowError::BadUrl(format!("{what} {url} is not allowed: {e}")))?;
    if origin.scheme == "http" && !insecure_loopback {
        return Err(FlowError::BadUrl(format!(
            "{what} {url} is not allowed: plain http:// to this machine needs the operator's opt-in (--allow-insecure-loopback, or --demo); use https://"
        )));
    }
    Ok(origin)
}

/// The OAuth actions for the registry's servers.
#[derive(Clone)]
pub struct OAuth {
    store: Arc<Store>,
    plugins: Arc<HashMap<String, Plugin>>,
    public_url: String,
    insecure_loopback: bool,
    /// One token request at a time per server (see [`OAuth::renew`]).
    refreshing: Arc<std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
    /// The same, per admin and server, for admins' own tokens.
    refreshing_personal: Arc<std::sync::Mutex<HashMap<(i64, i64), Arc<tokio::sync::Mutex<()>>>>>,
}

/// Where a callback's sign-in was started, once its state checked out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackOrigin {
    /// In a popup window.
    pub popup: bool,
    /// For this admin's own token ("Partner Info"); none: the server's.
    pub admin: Option<i64>,
}

impl OAuth {
    /// `public_url` is where browsers reach this host (for the Redirect
    /// URI); `insecure_loopback` allows plain http to loopback servers (the
    /// operator's opt-in, as the runtime's).
    pub fn new(store: Arc<Store>, plugins: Arc<HashMap<String, Plugin>>, public_url: &str, insecure_loopback: bool) -> Self {
        OAuth {
            store,
            plugins,
            public_url: public_url.trim_end_matches('/').to_string(),
            insecure_loopback,
            refreshing: Default::default(),
            refreshing_personal: Default::default(),
        }
    }

    /// Whether plain http to loopback servers is allowed.
    pub fn insecure_loopback(&self) -> bool {
        self.insecure_loopback
    }

    /// The Redirect URI to register for server `id`.
    pub fn redirect_uri(&self, id: i64) -> String {
        format!("{}/oauth2/callback/{id}", self.public_url)
    }

    async fn plugin(&self, id: i64) -> Result<(&Plugin, Oauth2ServerConfig), FlowError> {
        let server = self.store.server(id).await?;
        let plugin = self.plugins.get(&server.plugin).ok_or_else(|| FlowError::NoPlugin(server.plugin.clone()))?;
        Ok((plugin, self.store.server_config(id).await?))
    }

    /// The server's host, plus the instance host of `tokens`: what a plugin
    /// call for the server may reach.
    /// The tokens' instance is checked again on every call, not only when the
    /// tokens arrived: the server's API hosts, its plugin or the plugin's
    /// declaration may have changed since.
    pub async fn allowlist(&self, id: i64, config: &Oauth2ServerConfig, tokens: Option<&TokenSet>) -> Result<HttpAllowlist, FlowError> {
        let server = check_origin(&config.server_url, "the Server URL", self.insecure_loopback)?;
        let instance = tokens.and_then(|t| t.instance_url.as_deref());
        if let Some(instance) = instance {
            let origin = check_origin(instance, "the instance URL", self.insecure_loopback)?;
            // The Server URL's own origin is allowed anyway.
            if origin != server {
                self.check_instance(id, &origin).await?;
            }
        }
        let list = HttpAllowlist::for_server(&config.server_url, instance).map_err(|e| FlowError::BadUrl(e.to_string()))?;
        // A token endpoint apart from the Server URL is the admin's to name,
        // as the Server URL is: its origin is checked the same way.
        match config.token_url.as_deref() {
            Some(token_url) => {
                check_origin(token_url, "the Token URL", self.insecure_loopback)?;
                list.allow_url(token_url).map_err(|e| FlowError::BadUrl(e.to_string()))
            }
            None => Ok(list),
        }
    }

    /// Tokens from a provider (or from a plugin, which builds the token set
    /// itself) are kept only if their instance URL is one the plugin and the
    /// server trust: it becomes an allowed origin for every later call, with
    /// the bearer token and people's data. Anything else is refused, said on
    /// the server page, and nothing is stored.
    async fn keep(&self, id: i64, tokens: &TokenSet) -> Result<(), FlowError> {
        if let Err(e) = self.trusted(id, tokens).await {
            return Err(self.failed(id, e).await);
        }
        self.store.save_tokens(id, tokens).await?;
        Ok(())
    }

    /// Whether a token set's instance URL is one the plugin and the server
    /// trust (see [`OAuth::keep`]).
    async fn trusted(&self, id: i64, tokens: &TokenSet) -> Result<(), FlowError> {
        if let Some(instance) = tokens.instance_url.as_deref() {
            let origin = check_origin(instance, "the instance URL in the token response", self.insecure_loopback)?;
            let server = self.store.server(id).await?.server_url;
            if check_origin(&server, "the Server URL", self.insecure_loopback).ok().as_ref() != Some(&origin) {
                self.check_instance(id, &origin).await?;
            }
        }
        Ok(())
    }

    /// The instance rule (`registry_plugin_runtime::http::policy::check_instance`)
    /// with the server's plugin's declared API hosts and the server's own.
    async fn check_instance(&self, id: i64, origin: &Origin) -> Result<(), FlowError> {
        let server = self.store.server(id).await?;
        let plugin = self.plugins.get(&server.plugin).ok_or_else(|| FlowError::NoPlugin(server.plugin.clone()))?;
        // A pattern that does not parse is never read as "no pattern": that
        // would loosen the rule.
        let patterns = |list: &[String], whose: &str| -> Result<Vec<HostPattern>, FlowError> {
            list.iter().map(|p| HostPattern::parse(p).map_err(|e| FlowError::UntrustedInstance(format!("{whose} API hosts: {e}")))).collect()
        };
        let plugin_hosts = patterns(&plugin.metadata().api_hosts, "the plugin's")?;
        let server_hosts = patterns(&server.api_hosts, "the OAuth2 server's")?;
        check_instance(origin, &plugin_hosts, &server_hosts).map_err(FlowError::UntrustedInstance)
    }

    async fn failed(&self, id: i64, e: FlowError) -> FlowError {
        let _ = self.store.set_error(id, &e.to_string(), None).await;
        e
    }

    /// Starts "Obtain New Token": returns the URL to send the browser to.
    /// `session` identifies the admin's browser session (an opaque value);
    /// only a callback from the same session may complete the sign-in.
    pub async fn begin(&self, id: i64, prompt: Option<&str>, origin: PendingOrigin<'_>) -> Result<String, FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        if config.grant_type != GrantType::AuthorizationCode {
            return Err(FlowError::WrongGrant("this server's grant needs no browser: Obtain New Token fetches the token directly"));
        }
        let state = random(32);
        let verifier = random(48);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let redirect_uri = self.redirect_uri(id);
        let request = AuthorizationRequest { state: state.clone(), code_challenge: challenge, redirect_uri: redirect_uri.clone(), prompt: prompt.map(str::to_string) };
        let url = plugin.authorization_url(&config, &request).await?.map_err(|e| FlowError::Plugin(explain(&e)))?;
        // The admin's browser goes only to the configured server.
        if check_origin(&url, "the authorization URL", self.insecure_loopback)? != check_origin(&config.server_url, "the Server URL", self.insecure_loopback)? {
            return Err(FlowError::BadUrl(format!("the plugin's authorization URL does not point at the Server URL ({})", config.server_url)));
        }
        self.store.put_pending(&state, id, &verifier, &redirect_uri, origin, PENDING_TTL_MS).await?;
        Ok(url)
    }

    /// Handles the provider's redirect back to `/oauth2/callback/{id}`.
    /// Nothing in it is believed, an `error` included, until its state is
    /// one of ours, for this server, and fresh.
    pub async fn callback(&self, id: i64, params: &HashMap<String, String>, session: &str) -> Result<(), FlowError> {
        self.callback_from(id, params, session).await.1
    }

    /// [`Self::callback`], also saying where the authorization was started
    /// (a popup, an admin's own token; the default when its state is not
    /// ours).
    pub async fn callback_from(&self, id: i64, params: &HashMap<String, String>, session: &str) -> (CallbackOrigin, Result<(), FlowError>) {
        let state = params.get("state").map(String::as_str).unwrap_or("");
        // The state is consumed whatever happens next: it is single use.
        let pending = match self.store.take_pending(state).await {
            Ok(Some(p)) => p,
            Ok(None) => return (CallbackOrigin::default(), Err(FlowError::UnknownState)),
            Err(e) => return (CallbackOrigin::default(), Err(e.into())),
        };
        let origin = CallbackOrigin { popup: pending.popup, admin: pending.admin };
        let result = match pending.admin {
            Some(admin) => self.complete_personal(id, admin, params, session, pending).await,
            None => self.complete(id, params, session, pending).await,
        };
        (origin, result)
    }

    async fn complete(&self, id: i64, params: &HashMap<String, String>, session: &str, pending: crate::store::Pending) -> Result<(), FlowError> {
        match self.exchanged(id, params, session, &pending).await {
            Ok(tokens) => self.keep(id, &tokens).await,
            // What the server page should show as its last error.
            Err(e @ (FlowError::Expired | FlowError::Denied(_) | FlowError::Plugin(_))) => Err(self.failed(id, e).await),
            Err(e) => Err(e),
        }
    }

    /// A callback's tokens, once its state, session and freshness check
    /// out and the code is exchanged.
    async fn exchanged(&self, id: i64, params: &HashMap<String, String>, session: &str, pending: &crate::store::Pending) -> Result<TokenSet, FlowError> {
        if pending.server_id != id {
            return Err(FlowError::WrongServer);
        }
        if pending.session != session {
            return Err(FlowError::OtherSession);
        }
        if pending.expired {
            return Err(FlowError::Expired);
        }
        if let Some(error) = params.get("error") {
            let description: String = params.get("error_description").map(|d| d.chars().take(300).collect()).unwrap_or_default();
            let message = if error == "access_denied" {
                "access was denied at the provider (Deny was clicked); nothing changed".to_string()
            } else {
                let refused = format!("the provider refused the sign-in ({}): {description}", error.chars().take(64).collect::<String>());
                // What to check, in the service's words, as its plugin says.
                let hint = self.plugin(id).await.ok().and_then(|(plugin, _)| {
                    plugin.metadata().server_form.help.iter().find(|(f, _)| f == "authorization-error").map(|(_, h)| h.clone())
                });
                match hint {
                    Some(hint) => format!("{refused}. What to check: {hint}"),
                    None => refused,
                }
            };
            return Err(FlowError::Denied(message));
        }
        let code = params.get("code").filter(|c| !c.is_empty()).ok_or_else(|| FlowError::Denied("the provider sent no code".into()))?;
        let (plugin, config) = self.plugin(id).await?;
        let allow = self.allowlist(id, &config, None).await?;
        plugin
            .exchange_code(&config, code, &pending.redirect_uri, Some(&pending.code_verifier), &allow)
            .await?
            .map_err(|e| FlowError::Plugin(explain(&e)))
    }

    /// "Obtain New Token" for a client-credentials server.
    pub async fn client_credentials(&self, id: i64) -> Result<(), FlowError> {
        let lock = self.server_lock(id);
        let _one_at_a_time = lock.lock().await;
        self.fetch_client_credentials(id).await
    }

    async fn fetch_client_credentials(&self, id: i64) -> Result<(), FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        if config.grant_type != GrantType::ClientCredentials {
            return Err(FlowError::WrongGrant("this server uses the authorization code grant"));
        }
        let allow = self.allowlist(id, &config, None).await?;
        match plugin.client_credentials(&config, &allow).await? {
            Ok(tokens) => self.keep(id, &tokens).await,
            // Refused credentials stay refused until an admin changes them:
            // the server waits for them instead of asking again at every
            // job (which could lock the client out).
            Err(e @ (PluginError::InvalidConfig(_) | PluginError::ReauthorizationRequired(_))) => {
                let _ = self.store.set_error(id, &explain(&e), Some(TokenStatus::NeedsReauthorization)).await;
                Err(FlowError::Plugin(explain(&e)))
            }
            Err(e) => Err(self.failed(id, FlowError::Plugin(explain(&e))).await),
        }
    }

    /// "Obtain New Token" for a static bearer server: the token the admin
    /// pasted (kept sealed where a client secret would be) becomes its
    /// access token. Nothing is asked of the service; Test Connection does.
    pub async fn static_bearer(&self, id: i64) -> Result<TokenSet, FlowError> {
        let lock = self.server_lock(id);
        let _one_at_a_time = lock.lock().await;
        self.take_pasted(id).await
    }

    async fn take_pasted(&self, id: i64) -> Result<TokenSet, FlowError> {
        let config = self.store.server_config(id).await?;
        if config.grant_type != GrantType::StaticBearer {
            return Err(FlowError::WrongGrant("this server's grant does not take a pasted token"));
        }
        if config.client_secret.trim().is_empty() {
            return Err(self.failed(id, FlowError::Denied("no bearer token is saved: paste the service's token into the server's form".into())).await);
        }
        let tokens = pasted_tokens(&config);
        self.keep(id, &tokens).await?;
        Ok(tokens)
    }

    /// "Obtain New Token" for a JWT bearer server: an assertion signed with
    /// the current key. When the provider refuses that key and a next one
    /// exists (its certificate uploaded to the app in place of the old),
    /// the next is tried and, if it works, becomes current: a rotation
    /// never stops provisioning. A refusal an admin must fix (the user,
    /// the certificate, the audience) marks the server as needing them.
    pub async fn jwt_bearer(&self, id: i64) -> Result<TokenSet, FlowError> {
        let lock = self.server_lock(id);
        let _one_at_a_time = lock.lock().await;
        self.sign_in_with_key(id).await
    }

    async fn sign_in_with_key(&self, id: i64) -> Result<TokenSet, FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        if config.grant_type != GrantType::JwtBearer {
            return Err(FlowError::WrongGrant("this server does not use the JWT bearer grant"));
        }
        let Some((current, pem)) = self.store.signing_key_private(id, KeyRole::Current).await? else {
            return Err(self.failed(id, FlowError::NoSigningKey).await);
        };
        let mut result = self.assert_with(plugin, id, &config, &current, pem).await?;
        if let Err(PluginError::InvalidConfig(f)) = &result
            && f.field == "certificate"
            && let Some((next, pem)) = self.store.signing_key_private(id, KeyRole::Next).await?
            && let Ok(tokens) = self.assert_with(plugin, id, &config, &next, pem).await?
        {
            self.store.promote_next_key(id, next.id).await?;
            tracing::info!(server = id, fingerprint = %next.fingerprint, "the provider took the next signing key: it is now the current one");
            result = Ok(tokens);
        }
        match result {
            Ok(tokens) => {
                self.keep(id, &tokens).await?;
                Ok(tokens)
            }
            Err(e @ (PluginError::InvalidConfig(_) | PluginError::ReauthorizationRequired(_))) => {
                let _ = self.store.set_error(id, &explain(&e), Some(TokenStatus::NeedsReauthorization)).await;
                Err(FlowError::Plugin(explain(&e)))
            }
            Err(e) => Err(self.failed(id, FlowError::Plugin(explain(&e))).await),
        }
    }

    async fn assert_with(
        &self,
        plugin: &Plugin,
        id: i64,
        config: &Oauth2ServerConfig,
        key: &SigningKeyInfo,
        private_key_pem: String,
    ) -> Result<Result<TokenSet, PluginError>, FlowError> {
        let subject = self.store.server(id).await?.jwt_subject.unwrap_or_default();
        let key = JwtSigningKey { subject, private_key_pem, certificate_fingerprint: key.fingerprint.clone() };
        let allow = self.allowlist(id, config, None).await?;
        Ok(plugin.jwt_bearer(config, &key, &allow).await?)
    }

    /// Switches a JWT bearer server to its next key, once the provider
    /// takes it: a token is obtained with it first, and only then is it
    /// made current (the old key is forgotten). Until then nothing changes.
    pub async fn switch_key(&self, id: i64) -> Result<(), FlowError> {
        let lock = self.server_lock(id);
        let _one_at_a_time = lock.lock().await;
        let (plugin, config) = self.plugin(id).await?;
        let Some((next, pem)) = self.store.signing_key_private(id, KeyRole::Next).await? else {
            return Err(FlowError::WrongGrant("there is no next certificate to switch to: generate one first"));
        };
        match self.assert_with(plugin, id, &config, &next, pem).await? {
            Ok(tokens) => {
                if !self.store.promote_next_key(id, next.id).await? {
                    return Err(FlowError::WrongGrant("the next certificate was made again meanwhile: download the new one, upload it, and switch again"));
                }
                self.keep(id, &tokens).await
            }
            Err(e) => Err(FlowError::Plugin(format!(
                "the provider does not take the next certificate yet, so the current one stays: {}",
                explain(&e)
            ))),
        }
    }

    /// "Use an existing refresh token": an admin pastes one (from a manual
    /// OAuth round trip), and one refresh at once proves it. On success the
    /// fresh token set is kept (its instance checked as for any token); on
    /// failure nothing is stored and the provider's words come back.
    pub async fn use_refresh_token(&self, id: i64, refresh_token: &str) -> Result<(), FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        if config.grant_type != GrantType::AuthorizationCode {
            return Err(FlowError::WrongGrant("only a server with the authorization code grant has a refresh token"));
        }
        let pasted = TokenSet {
            access_token: String::new(),
            refresh_token: Some(refresh_token.trim().to_string()),
            instance_url: None,
            issued_at: None,
            expires_at: None,
            scope: config.scope.clone(),
            token_type: "Bearer".into(),
            extra: Vec::new(),
        };
        let allow = self.allowlist(id, &config, None).await?;
        match plugin.refresh(&config, &pasted, &allow).await? {
            Ok(mut fresh) => {
                // Without rotation the answer carries no refresh token: the
                // pasted one stays valid.
                if fresh.refresh_token.is_none() {
                    fresh.refresh_token = pasted.refresh_token;
                }
                self.keep(id, &fresh).await
            }
            Err(e) => Err(FlowError::Plugin(explain(&e))),
        }
    }

    /// Revokes at the provider, then forgets the tokens.
    pub async fn revoke(&self, id: i64) -> Result<(), FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        let tokens = self.store.tokens(id).await?.ok_or(FlowError::NoTokens)?;
        let allow = self.allowlist(id, &config, None).await?;
        match plugin.revoke(&config, &tokens, &allow).await? {
            Ok(()) => {
                self.store.clear_tokens(id).await?;
                Ok(())
            }
            Err(e) => Err(self.failed(id, FlowError::Plugin(explain(&e))).await),
        }
    }

    /// The lock that keeps a server's token requests one at a time: a
    /// refresh token may rotate (a second refresh with the same one would
    /// kill it), and a JWT key switch must not race a sign-in.
    fn server_lock(&self, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.refreshing.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default().clone()
    }

    /// "Test Connection": who the token acts as and the API usage. An expired
    /// access token is refreshed once, as provisioning does.
    pub async fn test_connection(&self, id: i64) -> Result<ConnectionInfo, FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        let tokens = self.store.tokens(id).await?.ok_or(FlowError::NoTokens)?;
        let allow = self.allowlist(id, &config, Some(&tokens)).await?;
        match plugin.check_connection(&config, &tokens, &allow).await? {
            Ok(info) => Ok(info),
            Err(PluginError::Unauthorized(_)) => {
                let fresh = self.renew(id, Some(&tokens.access_token)).await?;
                let allow = self.allowlist(id, &config, Some(&fresh)).await?;
                match plugin.check_connection(&config, &fresh, &allow).await? {
                    Ok(info) => Ok(info),
                    Err(e) => Err(self.failed(id, FlowError::Plugin(explain(&e))).await),
                }
            }
            Err(e) => Err(self.failed(id, FlowError::Plugin(explain(&e))).await),
        }
    }
}

/// The token set a pasted bearer token becomes. The service's base URL is
/// the Server URL: the plugin's calls go there, as they go to a token's
/// instance URL elsewhere.
fn pasted_tokens(config: &Oauth2ServerConfig) -> TokenSet {
    TokenSet {
        access_token: config.client_secret.trim().to_string(),
        refresh_token: None,
        instance_url: Some(config.server_url.clone()),
        issued_at: None,
        expires_at: None,
        scope: config.scope.clone(),
        token_type: "Bearer".into(),
        extra: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_be_https_or_loopback() {
        assert!(check_origin("https://na1.salesforce.com", "x", false).is_ok());
        assert!(check_origin("http://127.0.0.1:4000", "x", true).is_ok());
        let local = check_origin("http://127.0.0.1:4000", "The Server URL", false).unwrap_err().to_string();
        assert!(local.contains("needs the operator's opt-in (--allow-insecure-loopback, or --demo)"), "{local}");
        let plain = check_origin("http://na1.salesforce.com", "The Server URL", true).unwrap_err().to_string();
        assert!(plain.starts_with("The Server URL http://na1.salesforce.com is not allowed: plain http:// is only allowed to loopback"), "{plain}");
        assert!(check_origin("ftp://x", "x", true).is_err());
        assert!(check_origin("not a url", "x", true).is_err());
    }
}
