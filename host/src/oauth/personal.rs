//! Each admin's own token for a server ("Partner Info"): Generate Token
//! (the authorization code flow with `prompt=login`, so the provider asks
//! who signs in instead of reusing a browser session), Revoke Token, and a
//! live Check. A held token is never taken for a working one: only a check
//! says that. On-demand provisioning and Test Connection use an admin's own
//! token when they hold one, so the provider's audit trail names them.

use std::collections::HashMap;

use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::oauth2_server::ConnectionInfo;
use registry_plugin_runtime::latest::types::{GrantType, PluginError, TokenSet};

use super::{FlowError, OAuth};
use crate::store::{Pending, PendingOrigin};

impl OAuth {
    /// Starts Generate Token for `admin`'s own token for server `id`:
    /// returns the URL to send their browser to.
    pub async fn begin_personal(&self, id: i64, admin: i64, session: &str) -> Result<String, FlowError> {
        if self.store.server(id).await?.grant_type != GrantType::AuthorizationCode {
            return Err(FlowError::WrongGrant("only a server with the authorization code grant gives each admin a token of their own"));
        }
        self.begin(id, Some("login"), PendingOrigin { session, popup: false, admin: Some(admin) }).await
    }

    /// The callback of an admin's Generate Token: the tokens are kept for
    /// them alone (their instance checked as for any token), with who they
    /// act as. Nothing is recorded on the server.
    pub(super) async fn complete_personal(&self, id: i64, admin: i64, params: &HashMap<String, String>, session: &str, pending: Pending) -> Result<(), FlowError> {
        let tokens = self.exchanged(id, params, session, &pending).await?;
        self.trusted(id, &tokens).await?;
        self.store.save_admin_tokens(admin, id, &tokens, None).await?;
        // Who the token acts as, at once: the page shows it as their Login.
        if let Ok(info) = self.check_personal(id, admin).await {
            tracing::info!(server = id, admin, login = ?info.user, "an admin generated their own token");
        }
        Ok(())
    }

    /// `admin`'s usable token for server `id`, if they hold one.
    pub async fn personal_tokens(&self, id: i64, admin: i64) -> Result<Option<TokenSet>, FlowError> {
        Ok(self.store.admin_tokens(admin, id).await?)
    }

    /// Check: whether `admin`'s token works right now (a refused access
    /// token is refreshed once), and who it acts as. The outcome is kept
    /// for their page; a dead token is marked as needing a new one.
    pub async fn check_personal(&self, id: i64, admin: i64) -> Result<ConnectionInfo, FlowError> {
        let result = self.check_personal_once(id, admin).await;
        let _ = match &result {
            Ok(info) => self.store.admin_token_checked(admin, id, Ok(info.user.as_deref())).await,
            Err(FlowError::NoTokens) => Ok(()),
            Err(e) => {
                let dead = matches!(e, FlowError::Plugin(m) if m.starts_with("a new token is needed"));
                self.store.admin_token_checked(admin, id, Err((&e.to_string(), dead))).await
            }
        };
        result
    }

    async fn check_personal_once(&self, id: i64, admin: i64) -> Result<ConnectionInfo, FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        let tokens = self.store.admin_tokens(admin, id).await?.ok_or(FlowError::NoTokens)?;
        let allow = self.allowlist(id, &config, Some(&tokens)).await?;
        match plugin.check_connection(&config, &tokens, &allow).await? {
            Ok(info) => Ok(info),
            Err(PluginError::Unauthorized(_)) => {
                let fresh = self.refresh_personal(id, admin, &tokens.access_token).await?;
                let allow = self.allowlist(id, &config, Some(&fresh)).await?;
                plugin.check_connection(&config, &fresh, &allow).await?.map_err(|e| FlowError::Plugin(explain(&e)))
            }
            Err(e) => Err(FlowError::Plugin(explain(&e))),
        }
    }

    /// Refreshes `admin`'s token after `stale` was refused; one refresh at
    /// a time per admin and server (across every node on a shared
    /// database: their row is locked throughout), reusing a newer token.
    pub async fn refresh_personal(&self, id: i64, admin: i64, stale: &str) -> Result<TokenSet, FlowError> {
        let lock = self.refreshing_personal.lock().unwrap_or_else(|p| p.into_inner()).entry((id, admin)).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let (plugin, config) = self.plugin(id).await?;
        let allow = self.allowlist(id, &config, None).await?;
        // New tokens, written nowhere: the caller saves them.
        let refresh = async |held: TokenSet| -> Result<TokenSet, Refused> {
            match plugin.refresh(&config, &held, &allow).await.map_err(FlowError::from)? {
                Ok(mut fresh) => {
                    self.trusted(id, &fresh).await?;
                    // Without rotation the answer carries no refresh token:
                    // the held one stays good, as for a server's token.
                    if fresh.refresh_token.is_none() {
                        fresh.refresh_token = held.refresh_token.clone();
                    }
                    Ok(fresh)
                }
                Err(e) => Err(Refused::Plugin(e)),
            }
        };
        let outcome = match self.store.postgres() {
            Some(pg) => pg.renew_admin_locked(admin, id, stale, super::renew::RENEW_WAIT, refresh).await,
            None => {
                let held = self.store.admin_tokens(admin, id).await?.ok_or(FlowError::NoTokens)?;
                if held.access_token != stale {
                    return Ok(held);
                }
                let fresh = refresh(held).await;
                if let Ok(fresh) = &fresh {
                    self.store.save_admin_tokens(admin, id, fresh, None).await?;
                }
                fresh
            }
        };
        match outcome {
            Ok(fresh) => Ok(fresh),
            Err(Refused::Flow(e)) => Err(e),
            // Recorded once the lock is gone.
            Err(Refused::Plugin(e)) => {
                let dead = matches!(e, PluginError::ReauthorizationRequired(_));
                let _ = self.store.admin_token_checked(admin, id, Err((&explain(&e), dead))).await;
                Err(FlowError::Plugin(explain(&e)))
            }
        }
    }

    /// Revoke Token: revokes `admin`'s token at the provider, then forgets
    /// it. A token the provider no longer knows counts as revoked.
    pub async fn revoke_personal(&self, id: i64, admin: i64) -> Result<(), FlowError> {
        let (plugin, config) = self.plugin(id).await?;
        let tokens = self.store.admin_tokens_for_revoke(admin, id).await?.ok_or(FlowError::NoTokens)?;
        let allow = self.allowlist(id, &config, None).await?;
        plugin.revoke(&config, &tokens, &allow).await?.map_err(|e| FlowError::Plugin(explain(&e)))?;
        self.store.clear_admin_tokens(admin, id).await?;
        Ok(())
    }

    /// Revokes every token `admin` holds (before the admin is deleted);
    /// returns what could not be revoked at the provider, by server id.
    /// Those are forgotten here all the same.
    pub async fn revoke_all_personal(&self, admin: i64) -> Result<Vec<(i64, String)>, FlowError> {
        let mut failed = Vec::new();
        for t in self.store.admin_token_list(admin).await? {
            if let Err(e) = self.revoke_personal(t.server_id, admin).await {
                failed.push((t.server_id, e.to_string()));
                self.store.clear_admin_tokens(admin, t.server_id).await?;
            }
        }
        Ok(failed)
    }
}

/// Why a refresh of an admin's token failed: the flow, or the provider's
/// answer (recorded on their token).
enum Refused {
    Flow(FlowError),
    Plugin(PluginError),
}

impl From<FlowError> for Refused {
    fn from(e: FlowError) -> Self {
        Refused::Flow(e)
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused::Flow(e.into())
    }
}
