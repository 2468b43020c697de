//! Token renewal after a token was refused, by the server's grant, the
//! same on both backends: the new tokens are obtained ([`OAuth::obtain`])
//! without writing anything, saved by whoever holds the lock, and a
//! failure is recorded once the lock is gone. On SQLite the lock is this
//! process's; when several nodes share one PostgreSQL it is the server's
//! row ([`PgStore::renew_locked`]), held over the call, so a rotating
//! refresh token is spent once across them all.

use std::time::Duration;

use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::types::{GrantType, JwtSigningKey, PluginError, TokenSet};

use super::{FlowError, OAuth};
use crate::domain::TokenStatus;
use crate::store::{KeyRole, StoreError};

/// How long a node waits for another's renewal of the same token.
pub(super) const RENEW_WAIT: Duration = Duration::from_secs(60);

/// Why a renewal under the lock failed: what to record on the server once
/// the lock is gone (the error, and the token status it calls for).
pub(super) enum Failed {
    Flow(FlowError, Option<TokenStatus>),
    Store(StoreError),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Store(e)
    }
}

fn flow(e: FlowError) -> Failed {
    Failed::Flow(e, None)
}

impl OAuth {
    /// A usable token after `stale` (an access token) was refused, by the
    /// server's grant: a refresh, client credentials again, or a new JWT
    /// assertion; with no `stale`, the first token of a grant that needs no
    /// browser. One request at a time per server: whoever waited reuses the
    /// token the one before them got. The new tokens (and instance URL) are
    /// kept.
    pub async fn renew(&self, id: i64, stale: Option<&str>) -> Result<TokenSet, FlowError> {
        let outcome = match self.store.postgres() {
            Some(pg) => pg.renew_locked(id, stale, RENEW_WAIT, |held| async move { self.obtain(id, held, stale).await }).await,
            None => {
                let lock = self.server_lock(id);
                let _one_at_a_time = lock.lock().await;
                let held = self.store.tokens(id).await?;
                // Someone before us got a newer token (or there is one at all).
                if let Some(t) = &held
                    && stale != Some(t.access_token.as_str())
                {
                    return Ok(t.clone());
                }
                match self.obtain(id, held, stale).await {
                    Ok(tokens) => self.store.save_tokens(id, &tokens).await.map(|()| tokens).map_err(Failed::Store),
                    Err(failed) => Err(failed),
                }
            }
        };
        match outcome {
            Ok(tokens) => Ok(tokens),
            Err(Failed::Store(e)) => Err(e.into()),
            Err(Failed::Flow(e, status)) => {
                let _ = self.store.set_error(id, &e.to_string(), status).await;
                Err(e)
            }
        }
    }

    /// New tokens by the server's grant, written nowhere: the caller holds
    /// the lock and saves them.
    async fn obtain(&self, id: i64, held: Option<TokenSet>, stale: Option<&str>) -> Result<TokenSet, Failed> {
        let (plugin, config) = self.plugin(id).await.map_err(flow)?;
        let allow = self.allowlist(id, &config, None).await.map_err(flow)?;
        let dead = |e: &PluginError| matches!(e, PluginError::ReauthorizationRequired(_) | PluginError::InvalidConfig(_));
        let answered = match config.grant_type {
            GrantType::AuthorizationCode => {
                let held = held.ok_or(Failed::Flow(FlowError::NoTokens, None))?;
                plugin.refresh(&config, &held, &allow).await.map_err(|e| flow(e.into()))?.map(|mut fresh| {
                    // Without rotation the answer carries no refresh token.
                    if fresh.refresh_token.is_none() {
                        fresh.refresh_token = held.refresh_token.clone();
                    }
                    fresh
                })
            }
            GrantType::ClientCredentials => plugin.client_credentials(&config, &allow).await.map_err(|e| flow(e.into()))?,
            GrantType::JwtBearer => return self.obtain_with_key(id, &config).await,
            GrantType::StaticBearer => {
                if config.client_secret.trim().is_empty() || stale == Some(config.client_secret.trim()) {
                    let why = "the service refused the pasted bearer token; paste a new one into the server's form and click Obtain New Token";
                    return Err(Failed::Flow(FlowError::Denied(why.into()), Some(TokenStatus::NeedsReauthorization)));
                }
                Ok(super::pasted_tokens(&config))
            }
        };
        match answered {
            Ok(tokens) => {
                self.trusted(id, &tokens).await.map_err(flow)?;
                Ok(tokens)
            }
            Err(e) if dead(&e) => Err(Failed::Flow(FlowError::Plugin(explain(&e)), Some(TokenStatus::NeedsReauthorization))),
            Err(e) => Err(flow(FlowError::Plugin(explain(&e)))),
        }
    }

    /// The JWT bearer grant under the lock: the current key, else the next
    /// one (made current when the provider takes it).
    async fn obtain_with_key(&self, id: i64, config: &registry_plugin_runtime::latest::types::Oauth2ServerConfig) -> Result<TokenSet, Failed> {
        let (plugin, _) = self.plugin(id).await.map_err(flow)?;
        let allow = self.allowlist(id, config, None).await.map_err(flow)?;
        let subject = self.store.server(id).await?.jwt_subject.unwrap_or_default();
        let Some((current, pem)) = self.store.signing_key_private(id, KeyRole::Current).await? else {
            return Err(Failed::Flow(FlowError::NoSigningKey, Some(TokenStatus::NeedsReauthorization)));
        };
        let key = JwtSigningKey { subject: subject.clone(), private_key_pem: pem, certificate_fingerprint: current.fingerprint.clone() };
        let mut result = plugin.jwt_bearer(config, &key, &allow).await.map_err(|e| flow(e.into()))?;
        if let Err(PluginError::InvalidConfig(f)) = &result
            && f.field == "certificate"
            && let Some((next, pem)) = self.store.signing_key_private(id, KeyRole::Next).await?
        {
            let key = JwtSigningKey { subject, private_key_pem: pem, certificate_fingerprint: next.fingerprint.clone() };
            if let Ok(tokens) = plugin.jwt_bearer(config, &key, &allow).await.map_err(|e| flow(e.into()))? {
                self.store.promote_next_key(id, next.id).await?;
                tracing::info!(server = id, fingerprint = %next.fingerprint, "the provider took the next signing key: it is now the current one");
                result = Ok(tokens);
            }
        }
        match result {
            Ok(tokens) => {
                self.trusted(id, &tokens).await.map_err(flow)?;
                Ok(tokens)
            }
            Err(e @ (PluginError::InvalidConfig(_) | PluginError::ReauthorizationRequired(_))) => {
                Err(Failed::Flow(FlowError::Plugin(explain(&e)), Some(TokenStatus::NeedsReauthorization)))
            }
            Err(e) => Err(flow(FlowError::Plugin(explain(&e)))),
        }
    }
}
