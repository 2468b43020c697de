//! A loaded plugin and its typed calls. Calls take and return the
//! [latest](crate::latest) contract's types whatever version the component
//! targets; an older component's arguments and results are converted.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use crate::batch::{BatchRequests, RequestSource};
use crate::cache::CacheOutcome;
use crate::contract::v0_1_0::{self, Convert};
use crate::contract::{ContractVersion, latest};
use crate::engine::Runtime;
use crate::error::CallError;
use crate::http::policy::HttpAllowlist;
use crate::sanitize::Tidy;
use latest::{oauth2_server, plugin_info, provisioning_target, types};

/// What `provision-batch` and `poll-batch` return: one result per request
/// or work submitted to poll later, or an error for the whole batch.
pub type BatchResult = Result<provisioning_target::BatchAnswer, types::PluginError>;

/// How a plugin's component was obtained.
#[derive(Debug, Clone, Copy)]
pub struct LoadStats {
    /// From the precompiled cache, or compiled.
    pub cache: CacheOutcome,
    /// Time to compile or deserialize.
    pub compile_or_deserialize: Duration,
}

/// A component pre-instantiated for the contract version it targets.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1_0(v0_1_0::ProvisionerPre<crate::call::HostState>),
    V0_2_0(latest::ProvisionerPre<crate::call::HostState>),
}

/// One call's instance, of the version its component targets.
pub(crate) enum Instance {
    V0_1_0(v0_1_0::Provisioner),
    V0_2_0(latest::Provisioner),
}

/// A pre-instantiated component and what it takes to call it sandboxed;
/// exists before the plugin has described itself.
#[derive(Clone)]
pub(crate) struct Sandboxed {
    pub(crate) runtime: Runtime,
    pub(crate) name: Arc<str>,
    pub(crate) pre: Pre,
}

impl Sandboxed {
    /// `plugin-info.info`, needed both to load a plugin and to ask it again.
    pub(crate) async fn describe(&self) -> Result<plugin_info::PluginMetadata, CallError> {
        self.call("plugin-info.info", &HttpAllowlist::none(), async |i, s| match i {
            Instance::V0_2_0(p) => p.registry_provisioning_plugin_info().call_info(s).await,
            Instance::V0_1_0(p) => Ok(p.registry_provisioning_plugin_info().call_info(s).await?.convert()),
        })
        .await
    }

    fn contract(&self) -> ContractVersion {
        match self.pre {
            Pre::V0_1_0(_) => ContractVersion::V0_1_0,
            Pre::V0_2_0(_) => ContractVersion::V0_2_0,
        }
    }
}

/// Calls an export on whichever version the instance is: the latest
/// directly, an older one with its arguments converted down and its result
/// converted up.
macro_rules! dispatch {
    ($instance:expr, $store:expr, $iface:ident . $func:ident ( $($arg:expr),* )) => {
        match $instance {
            Instance::V0_2_0(p) => p.$iface().$func($store, $($arg),*).await,
            Instance::V0_1_0(p) => Ok(p.$iface().$func($store, $(&$arg.clone().convert()),*).await?.convert()),
        }
    };
}

/// A loaded plugin, ready to call. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    sandbox: Sandboxed,
    digest: String,
    size: usize,
    load: LoadStats,
    metadata: plugin_info::PluginMetadata,
}

impl Plugin {
    pub(crate) fn new(sandbox: Sandboxed, digest: String, size: usize, load: LoadStats, metadata: plugin_info::PluginMetadata) -> Self {
        Self { sandbox, digest, size, load, metadata }
    }

    /// The plugin's name as it describes itself.
    pub fn name(&self) -> &str {
        &self.sandbox.name
    }

    /// The contract version the component targets.
    pub fn contract(&self) -> ContractVersion {
        self.sandbox.contract()
    }

    /// What the plugin said about itself when loaded.
    pub fn metadata(&self) -> &plugin_info::PluginMetadata {
        &self.metadata
    }

    /// SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How the component was loaded.
    pub fn load_stats(&self) -> LoadStats {
        self.load
    }

    /// Target settings as calls get them: blank values dropped and the
    /// plugin's declared defaults filled in for whatever is missing.
    pub fn settings_with_defaults(&self, values: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = values.iter().filter(|(_, v)| !v.trim().is_empty()).cloned().collect();
        for s in &self.metadata().settings {
            if let Some(d) = &s.default_value
                && !out.iter().any(|(n, _)| *n == s.name)
            {
                out.push((s.name.clone(), d.clone()));
            }
        }
        out
    }

    /// `plugin-info.info`.
    pub async fn info(&self) -> Result<plugin_info::PluginMetadata, CallError> {
        self.sandbox.describe().await
    }

    /// `provisioning-target.validate-settings`.
    pub async fn validate_settings(
        &self,
        settings: &[(String, String)],
        allowlist: &HttpAllowlist,
    ) -> Result<Result<(), Vec<types::FieldError>>, CallError> {
        let settings = settings.to_vec();
        self.sandbox
            .call("provisioning-target.validate-settings", allowlist, async |i, s| {
                dispatch!(i, s, registry_provisioning_provisioning_target.call_validate_settings(&settings))
            })
            .await
            .map(Tidy::tidy)
            .map(named_refusal)
    }

    /// `provisioning-target.check-settings`: the settings checked against the
    /// remote system. A 0.1.0 plugin has no such check: `Ok(Ok(()))`.
    pub async fn check_settings(
        &self,
        context: &provisioning_target::TargetContext,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<(), Vec<types::FieldError>>, CallError> {
        self.sandbox
            .call("provisioning-target.check-settings", allowlist, async |i, s| match i {
                Instance::V0_2_0(p) => p.registry_provisioning_provisioning_target().call_check_settings(s, context).await,
                Instance::V0_1_0(_) => Ok(Ok(())),
            })
            .await
            .map(Tidy::tidy)
            .map(named_refusal)
    }

    /// `provisioning-target.describe-removal`. A 0.1.0 plugin cannot say, so
    /// its removals count as deletions (the cautious answer).
    pub async fn removal_effect(&self, settings: &[(String, String)]) -> Result<types::RemovalEffect, CallError> {
        let settings = settings.to_vec();
        self.sandbox
            .call("provisioning-target.describe-removal", &HttpAllowlist::none(), async |i, s| match i {
                Instance::V0_2_0(p) => p.registry_provisioning_provisioning_target().call_describe_removal(s, &settings).await,
                Instance::V0_1_0(_) => Ok(types::RemovalEffect::Delete),
            })
            .await
    }

    /// `provisioning-target.preview`: what `provision` would do. The call
    /// may only read: whatever allowlist is given, writes are denied. A
    /// 0.1.0 plugin has no preview (`unsupported`).
    pub async fn preview(
        &self,
        context: &provisioning_target::TargetContext,
        request: &provisioning_target::ProvisionRequest,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<Vec<provisioning_target::PlannedStep>, types::PluginError>, CallError> {
        let read_only = allowlist.clone().read_only();
        self.sandbox
            .call("provisioning-target.preview", &read_only, async |i, s| match i {
                Instance::V0_2_0(p) => p.registry_provisioning_provisioning_target().call_preview(s, context, request).await,
                Instance::V0_1_0(_) => Ok(Err(types::PluginError::Unsupported("preview is not in contract 0.1.0".into()))),
            })
            .await
            .map(Tidy::tidy)
    }

    /// `provisioning-target.provision`.
    pub async fn provision(
        &self,
        context: &provisioning_target::TargetContext,
        request: &provisioning_target::ProvisionRequest,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<provisioning_target::ProvisionOutcome, types::PluginError>, CallError> {
        self.sandbox
            .call("provisioning-target.provision", allowlist, async |i, s| {
                dispatch!(i, s, registry_provisioning_provisioning_target.call_provision(context, request))
            })
            .await
            .map(Tidy::tidy)
    }

    /// `provisioning-target.provision-group`: one group and its members. A
    /// 0.1.0 plugin has no groups: `unsupported`.
    pub async fn provision_group(
        &self,
        context: &provisioning_target::TargetContext,
        request: &provisioning_target::GroupRequest,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<provisioning_target::ProvisionOutcome, types::PluginError>, CallError> {
        self.sandbox
            .call("provisioning-target.provision-group", allowlist, async |i, s| match i {
                Instance::V0_2_0(p) => p.registry_provisioning_provisioning_target().call_provision_group(s, context, request).await,
                Instance::V0_1_0(_) => Ok(Err(types::PluginError::Unsupported("groups are not in contract 0.1.0".into()))),
            })
            .await
            .map(Tidy::tidy)
    }

    /// `provisioning-target.provision-batch`, with the requests in memory.
    pub async fn provision_batch(
        &self,
        context: &provisioning_target::TargetContext,
        requests: &[provisioning_target::ProvisionRequest],
        allowlist: &HttpAllowlist,
    ) -> Result<BatchResult, CallError> {
        self.provision_batch_from(context, requests.to_vec(), allowlist).await
    }

    /// `provisioning-target.provision-batch`, the plugin reading the
    /// requests from `requests` a page at a time (a 0.1.0 plugin gets them
    /// all at once, as a list).
    pub async fn provision_batch_from(
        &self,
        context: &provisioning_target::TargetContext,
        requests: impl RequestSource,
        allowlist: &HttpAllowlist,
    ) -> Result<BatchResult, CallError> {
        let batch = BatchRequests::new(requests);
        self.sandbox
            .call("provisioning-target.provision-batch", allowlist, async move |i, s| match i {
                Instance::V0_2_0(p) => {
                    let handle = s.data_mut().table.push(batch)?;
                    p.registry_provisioning_provisioning_target().call_provision_batch(s, context, Resource::new_borrow(handle.rep())).await
                }
                Instance::V0_1_0(p) => {
                    let requests: Vec<v0_1_0::provisioning_target::ProvisionRequest> = batch.read_all().await.map_err(|e| wasmtime::Error::new(crate::batch::SourceError(format!("{e:#}"))))?.convert();
                    let context = context.clone().convert();
                    let results: Result<Vec<_>, types::PluginError> =
                        p.registry_provisioning_provisioning_target().call_provision_batch(s, &context, &requests).await?.convert();
                    // 0.1.0 answers at once.
                    Ok(results.map(provisioning_target::BatchAnswer::Done))
                }
            })
            .await
            .map(Tidy::tidy)
    }

    /// `provisioning-target.batch-size`: how many requests a batch call
    /// under `settings` should carry, when the plugin wants more than the
    /// host's usual. A 0.1.0 plugin cannot say: `None`.
    pub async fn batch_size(&self, settings: &[(String, String)]) -> Result<Option<u32>, CallError> {
        let settings = self.settings_with_defaults(settings);
        self.sandbox
            .call("provisioning-target.batch-size", &HttpAllowlist::none(), async |i, s| match i {
                Instance::V0_2_0(p) => p.registry_provisioning_provisioning_target().call_batch_size(s, &settings).await,
                Instance::V0_1_0(_) => Ok(None),
            })
            .await
    }

    /// `provisioning-target.poll-batch`: about work `provision-batch`
    /// submitted, with the same requests in memory.
    pub async fn poll_batch(
        &self,
        context: &provisioning_target::TargetContext,
        requests: &[provisioning_target::ProvisionRequest],
        reference: &str,
        allowlist: &HttpAllowlist,
    ) -> Result<BatchResult, CallError> {
        self.poll_batch_from(context, requests.to_vec(), reference, allowlist).await
    }

    /// `provisioning-target.poll-batch`, the plugin reading the requests
    /// from `requests`. A 0.1.0 plugin never submits, so never gets this
    /// call.
    pub async fn poll_batch_from(
        &self,
        context: &provisioning_target::TargetContext,
        requests: impl RequestSource,
        reference: &str,
        allowlist: &HttpAllowlist,
    ) -> Result<BatchResult, CallError> {
        let batch = BatchRequests::new(requests);
        self.sandbox
            .call("provisioning-target.poll-batch", allowlist, async move |i, s| match i {
                Instance::V0_2_0(p) => {
                    let handle = s.data_mut().table.push(batch)?;
                    p.registry_provisioning_provisioning_target().call_poll_batch(s, context, Resource::new_borrow(handle.rep()), reference).await
                }
                Instance::V0_1_0(_) => Ok(Err(types::PluginError::Unsupported("poll-batch is not in contract 0.1.0".into()))),
            })
            .await
            .map(Tidy::tidy)
    }

    /// `oauth2-server.authorization-url`.
    pub async fn authorization_url(
        &self,
        config: &types::Oauth2ServerConfig,
        request: &oauth2_server::AuthorizationRequest,
    ) -> Result<Result<String, types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.authorization-url", &HttpAllowlist::none(), async |i, s| {
                dispatch!(i, s, registry_provisioning_oauth2_server.call_authorization_url(config, request))
            })
            .await
    }

    /// `oauth2-server.exchange-code`; `allowlist` should name the server's host.
    pub async fn exchange_code(
        &self,
        config: &types::Oauth2ServerConfig,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.exchange-code", allowlist, async |i, s| match i {
                Instance::V0_2_0(p) => {
                    p.registry_provisioning_oauth2_server().call_exchange_code(s, config, code, redirect_uri, code_verifier).await
                }
                Instance::V0_1_0(p) => Ok(p
                    .registry_provisioning_oauth2_server()
                    .call_exchange_code(s, &config.clone().convert(), code, redirect_uri, code_verifier)
                    .await?
                    .convert()),
            })
            .await
            .map(Tidy::tidy)
    }

    /// `oauth2-server.refresh`.
    pub async fn refresh(
        &self,
        config: &types::Oauth2ServerConfig,
        tokens: &types::TokenSet,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.refresh", allowlist, async |i, s| {
                dispatch!(i, s, registry_provisioning_oauth2_server.call_refresh(config, tokens))
            })
            .await
            .map(Tidy::tidy)
    }

    /// `oauth2-server.client-credentials`.
    pub async fn client_credentials(
        &self,
        config: &types::Oauth2ServerConfig,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.client-credentials", allowlist, async |i, s| {
                dispatch!(i, s, registry_provisioning_oauth2_server.call_client_credentials(config))
            })
            .await
            .map(Tidy::tidy)
    }

    /// `oauth2-server.jwt-bearer`. A 0.1.0 plugin has no such call:
    /// `unsupported`.
    pub async fn jwt_bearer(
        &self,
        config: &types::Oauth2ServerConfig,
        key: &types::JwtSigningKey,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<types::TokenSet, types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.jwt-bearer", allowlist, async |i, s| match i {
                Instance::V0_2_0(p) => p.registry_provisioning_oauth2_server().call_jwt_bearer(s, config, key).await,
                Instance::V0_1_0(_) => Ok(Err(types::PluginError::Unsupported("the JWT bearer grant is not in contract 0.1.0".into()))),
            })
            .await
            .map(Tidy::tidy)
    }

    /// `oauth2-server.revoke`.
    pub async fn revoke(
        &self,
        config: &types::Oauth2ServerConfig,
        tokens: &types::TokenSet,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<(), types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.revoke", allowlist, async |i, s| {
                dispatch!(i, s, registry_provisioning_oauth2_server.call_revoke(config, tokens))
            })
            .await
            .map(Tidy::tidy)
    }

    /// `oauth2-server.check-connection`; `allowlist` should name the server's
    /// host and the tokens' instance host.
    pub async fn check_connection(
        &self,
        config: &types::Oauth2ServerConfig,
        tokens: &types::TokenSet,
        allowlist: &HttpAllowlist,
    ) -> Result<Result<oauth2_server::ConnectionInfo, types::PluginError>, CallError> {
        self.sandbox
            .call("oauth2-server.check-connection", allowlist, async |i, s| {
                dispatch!(i, s, registry_provisioning_oauth2_server.call_check_connection(config, tokens))
            })
            .await
            .map(Tidy::tidy)
    }
}

/// A refusal of settings that names nothing (an empty list) is a plugin bug
/// an admin cannot act on; it is shown as one. (componentize-js turns an
/// exception thrown in `validateSettings` into exactly this.)
fn named_refusal(result: Result<(), Vec<types::FieldError>>) -> Result<(), Vec<types::FieldError>> {
    match result {
        // Keyed by the plugin: forms show that key above the settings.
        Err(errors) if errors.is_empty() => Err(vec![types::FieldError {
            field: "plugin".into(),
            message: "the plugin refused the settings without naming a field or a reason (an empty list of errors; in JavaScript, an exception thrown from validateSettings arrives as one)".into(),
        }]),
        other => other,
    }
}
