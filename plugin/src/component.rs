//! The WIT glue: converts between the generated bindings and the plain
//! modules. No logic lives here.

wit_bindgen::generate!({
    path: "../wit",
    world: "provisioner",
    generate_all,
});

use crate::{metadata, settings};
use exports::registry::provisioning::oauth2_server::{AuthorizationRequest, ConnectionInfo};
use exports::registry::provisioning::plugin_info::{
    Capabilities, ChoiceOption, PluginMetadata, Setting, SettingKind,
};
use exports::registry::provisioning::provisioning_target::{
    ProvisionOutcome, ProvisionRequest, TargetContext,
};
use registry::provisioning::log;
use registry::provisioning::types::{FieldError, Oauth2ServerConfig, PluginError, TokenSet};

/// The component's export implementation.
pub struct SalesforceProvisioner;

fn not_yet(call: &str) -> PluginError {
    PluginError::Unsupported(format!(
        "{call} is not implemented yet in the {} plugin {}",
        metadata::NAME,
        metadata::VERSION
    ))
}

fn field_error(e: settings::FieldError) -> FieldError {
    FieldError { field: e.field, message: e.message }
}

impl exports::registry::provisioning::plugin_info::Guest for SalesforceProvisioner {
    fn info() -> PluginMetadata {
        let c = metadata::CAPABILITIES;
        let mut capabilities = Capabilities::empty();
        for (on, flag) in [
            (c.authorization_code, Capabilities::AUTHORIZATION_CODE),
            (c.refresh, Capabilities::REFRESH),
            (c.client_credentials, Capabilities::CLIENT_CREDENTIALS),
            (c.revoke, Capabilities::REVOKE),
            (c.check_connection, Capabilities::CHECK_CONNECTION),
            (c.provision, Capabilities::PROVISION),
            (c.provision_batch, Capabilities::PROVISION_BATCH),
        ] {
            capabilities.set(flag, on);
        }
        PluginMetadata {
            name: metadata::NAME.into(),
            version: metadata::VERSION.into(),
            description: metadata::DESCRIPTION.into(),
            settings: settings::SETTINGS
                .iter()
                .map(|s| Setting {
                    name: s.name.into(),
                    label: s.label.into(),
                    kind: match s.kind {
                        settings::Kind::Text => SettingKind::Text,
                        settings::Kind::Secret => SettingKind::Secret,
                        settings::Kind::Boolean => SettingKind::Boolean,
                        settings::Kind::Choice(options) => SettingKind::Choice(
                            options
                                .iter()
                                .map(|(value, label)| ChoiceOption {
                                    value: (*value).into(),
                                    label: (*label).into(),
                                })
                                .collect(),
                        ),
                    },
                    default_value: s.default.map(Into::into),
                    required: s.required,
                    help: s.help.into(),
                })
                .collect(),
            capabilities,
        }
    }
}

impl exports::registry::provisioning::oauth2_server::Guest for SalesforceProvisioner {
    fn authorization_url(_: Oauth2ServerConfig, _: AuthorizationRequest) -> Result<String, PluginError> {
        Err(not_yet("authorization-url"))
    }
    fn exchange_code(
        _: Oauth2ServerConfig,
        _: String,
        _: String,
        _: Option<String>,
    ) -> Result<TokenSet, PluginError> {
        Err(not_yet("exchange-code"))
    }
    fn refresh(_: Oauth2ServerConfig, _: TokenSet) -> Result<TokenSet, PluginError> {
        Err(not_yet("refresh"))
    }
    fn client_credentials(_: Oauth2ServerConfig) -> Result<TokenSet, PluginError> {
        Err(not_yet("client-credentials"))
    }
    fn revoke(_: Oauth2ServerConfig, _: TokenSet) -> Result<(), PluginError> {
        Err(not_yet("revoke"))
    }
    fn check_connection(_: Oauth2ServerConfig, _: TokenSet) -> Result<ConnectionInfo, PluginError> {
        Err(not_yet("check-connection"))
    }
}

impl exports::registry::provisioning::provisioning_target::Guest for SalesforceProvisioner {
    fn validate_settings(values: Vec<(String, String)>) -> Result<(), Vec<FieldError>> {
        settings::Config::parse(&values).map(|_| ()).map_err(|errors| {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            log::log(log::Level::Debug, &format!("rejected settings: {}", fields.join(", ")));
            errors.into_iter().map(field_error).collect()
        })
    }
    fn provision(_: TargetContext, _: ProvisionRequest) -> Result<ProvisionOutcome, PluginError> {
        Err(not_yet("provision"))
    }
    fn provision_batch(
        _: TargetContext,
        _: Vec<ProvisionRequest>,
    ) -> Result<Vec<Result<ProvisionOutcome, PluginError>>, PluginError> {
        Err(not_yet("provision-batch"))
    }
}

// Export symbols carry WIT names (`pkg/iface#func`) that a native linker's
// version script cannot express; the glue is still type-checked natively.
#[cfg(target_arch = "wasm32")]
export!(SalesforceProvisioner);
