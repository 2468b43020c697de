//! The WIT glue: converts between the generated bindings and the plain
//! modules. No logic lives here.

wit_bindgen::generate!({
    path: "../../wit/0.2.0",
    world: "provisioner",
    generate_all,
});

use exports::registry::provisioning::oauth2_server::{AuthorizationRequest, ConnectionInfo};
use exports::registry::provisioning::plugin_info::{Capabilities, ChoiceOption, PluginMetadata, ServerForm, Setting, SettingKind};
use exports::registry::provisioning::provisioning_target::{BatchAnswer, GroupRequest, PlannedStep, ProvisionOutcome, TargetContext};
use registry::provisioning::batch_input::BatchRequests;
use registry::provisioning::registry_types::{
    FieldError, JwtSigningKey, Oauth2ServerConfig, Person, PersonStatus, PluginError, ProvisionRequest, ProvisioningAction, RemoteError, RemoteRef, RemovalEffect, TokenSet,
};
use registry_guest::person;
use registry_guest::wasi::WasiTransport;

use crate::scim::{self, Service};
use crate::{Outcome, bulk, groups, settings, token, user};

/// The component's export implementation.
pub struct ScimProvisioner;

/// Help for the OAuth2 server form, in SCIM's words.
const SERVER_FORM_HELP: &[(&str, &str)] = &[
    ("server-url", "The SCIM service's base URL, the one before /Users and /Groups, e.g. https://example.com/scim/v2."),
    ("client-secret", "Bearer Token: the token the SCIM service issued for provisioning (its admin console calls it an API token or a SCIM token); to replace it, paste the new one and click Obtain New Token. Client Credentials: the client's secret. Stored encrypted; never shown again."),
    ("grant-type", "Bearer Token: the token pasted above is sent with every request; when the service refuses it, paste a new one. Client Credentials: the service's tokens come from an OAuth2 authorization server; give its Token URL, and the client's ID and secret."),
    ("client-id", "Bearer Token: not used; leave empty. Client Credentials: the client ID the authorization server issued for this registry."),
    ("token-url", "Client Credentials only: the authorization server's token endpoint, e.g. https://auth.example.com/oauth2/token. The client's ID and secret go there in HTTP Basic; the token it answers is sent to the SCIM base URL above."),
];

fn field_error(e: settings::FieldError) -> FieldError {
    FieldError { field: e.field, message: e.message }
}

fn unsupported<T>(what: &str) -> Result<T, PluginError> {
    Err(PluginError::Unsupported(format!("{what}: a SCIM service takes a pasted bearer token or client credentials")))
}

fn token_error(e: token::TokenError) -> PluginError {
    match e {
        token::TokenError::Config(field, message) => PluginError::InvalidConfig(FieldError { field: field.into(), message }),
        token::TokenError::Call(e) => plugin_error(e),
    }
}

fn plugin_error(e: scim::Error) -> PluginError {
    match e {
        scim::Error::Unauthorized(m) => PluginError::Unauthorized(m),
        scim::Error::RateLimited(ms) => PluginError::RateLimited(ms),
        scim::Error::InvalidPerson(field, message) => PluginError::InvalidPerson(FieldError { field, message }),
        scim::Error::Remote { code, message, status, retryable } => PluginError::Remote(RemoteError { code, message, status, retryable }),
        scim::Error::Transport(m) => PluginError::Transport(m),
    }
}

fn outcome_out(o: Outcome) -> ProvisionOutcome {
    ProvisionOutcome { remote: o.remote.map(|(object_type, remote_id)| RemoteRef { object_type, remote_id }), summary: o.summary, removed: o.removed, usage: None }
}

/// The service's base URL and token from a call's context.
fn service<'t>(t: &'t mut WasiTransport, tokens: &TokenSet) -> Result<Service<'t>, PluginError> {
    let base = tokens.instance_url.clone().ok_or_else(|| PluginError::ReauthorizationRequired("the token names no SCIM base URL: click Obtain New Token on the server".into()))?;
    Ok(Service::new(t, &base, &tokens.access_token))
}

fn config(values: &[(String, String)]) -> Result<settings::Config, PluginError> {
    settings::Config::parse(values).map_err(|mut e| PluginError::InvalidConfig(field_error(e.remove(0))))
}

fn action_of(a: ProvisioningAction) -> user::Action {
    match a {
        ProvisioningAction::PersonDeleted => user::Action::Remove,
        ProvisioningAction::PersonExpired => user::Action::Deactivate,
        _ => user::Action::Sync,
    }
}

fn person_in(p: Person) -> person::Person {
    registry_guest::person_from_wit!(p, PersonStatus)
}

impl exports::registry::provisioning::plugin_info::Guest for ScimProvisioner {
    fn info() -> PluginMetadata {
        PluginMetadata {
            name: "scim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Provisions registry people as SCIM 2.0 Users and registry groups as SCIM Groups (RFC 7643/7644) to any service that speaks SCIM, with the bearer token it issued or OAuth2 client credentials: create, replace, deactivate or delete, existing Users and Groups taken over rather than duplicated.".into(),
            settings: settings::SETTINGS
                .iter()
                .map(|s| Setting {
                    name: s.name.into(),
                    label: s.label.into(),
                    kind: if s.text {
                        SettingKind::Text
                    } else if s.choices.is_empty() {
                        SettingKind::Boolean
                    } else {
                        SettingKind::Choice(s.choices.iter().map(|(v, l)| ChoiceOption { value: (*v).into(), label: (*l).into() }).collect())
                    },
                    default_value: (!s.default.is_empty()).then(|| s.default.into()),
                    required: !s.text,
                    help: s.help.into(),
                    shown_when: None,
                })
                .collect(),
            capabilities: Capabilities::CHECK_CONNECTION | Capabilities::PROVISION | Capabilities::PROVISION_BATCH | Capabilities::GROUPS | Capabilities::STATIC_BEARER | Capabilities::CLIENT_CREDENTIALS,
            api_hosts: vec![],
            server_form: ServerForm { server_urls: vec![], help: SERVER_FORM_HELP.iter().map(|(f, h)| (f.to_string(), h.to_string())).collect() },
        }
    }
}

impl exports::registry::provisioning::oauth2_server::Guest for ScimProvisioner {
    fn authorization_url(_: Oauth2ServerConfig, _: AuthorizationRequest) -> Result<String, PluginError> {
        unsupported("authorization-url")
    }
    fn exchange_code(_: Oauth2ServerConfig, _: String, _: String, _: Option<String>) -> Result<TokenSet, PluginError> {
        unsupported("exchange-code")
    }
    fn refresh(_: Oauth2ServerConfig, _: TokenSet) -> Result<TokenSet, PluginError> {
        unsupported("refresh")
    }
    fn client_credentials(config: Oauth2ServerConfig) -> Result<TokenSet, PluginError> {
        let client = token::Client { token_url: config.token_url.as_deref(), client_id: &config.client_id, client_secret: &config.client_secret, scope: config.scope.as_deref() };
        let got = token::client_credentials(&mut WasiTransport, &client).map_err(token_error)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Ok(TokenSet {
            access_token: got.access_token,
            refresh_token: None,
            // The token is for the SCIM service: its calls go to the Server URL.
            instance_url: Some(config.server_url),
            issued_at: Some(now),
            expires_at: got.expires_in.map(|s| now + s * 1000),
            scope: got.scope.or(config.scope),
            token_type: "Bearer".into(),
            extra: vec![],
        })
    }
    fn jwt_bearer(_: Oauth2ServerConfig, _: JwtSigningKey) -> Result<TokenSet, PluginError> {
        unsupported("jwt-bearer")
    }
    fn revoke(_: Oauth2ServerConfig, _: TokenSet) -> Result<(), PluginError> {
        unsupported("revoke")
    }
    fn check_connection(_: Oauth2ServerConfig, tokens: TokenSet) -> Result<ConnectionInfo, PluginError> {
        let mut t = WasiTransport;
        let mut svc = service(&mut t, &tokens)?;
        let spc = svc.call("GET", "/ServiceProviderConfig", None).map_err(plugin_error)?;
        let yes = |k: &str| if spc[k]["supported"].as_bool() == Some(true) { "supported" } else { "not supported" }.to_string();
        let details = vec![("PATCH".to_string(), yes("patch")), ("Bulk".to_string(), yes("bulk")), ("Filter".to_string(), yes("filter")), ("ETags".to_string(), yes("etag"))];
        Ok(ConnectionInfo { user: None, organization: None, api_usage: None, details, advice: vec![] })
    }
}

impl exports::registry::provisioning::provisioning_target::Guest for ScimProvisioner {
    fn validate_settings(values: Vec<(String, String)>) -> Result<(), Vec<FieldError>> {
        settings::Config::parse(&values).map(|_| ()).map_err(|e| e.into_iter().map(field_error).collect())
    }
    fn check_settings(_: TargetContext) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
    fn describe_removal(values: Vec<(String, String)>) -> RemovalEffect {
        match settings::Config::parse(&values) {
            Ok(c) if !c.delete_on_remove => RemovalEffect::Deactivate,
            _ => RemovalEffect::Delete,
        }
    }
    fn batch_size(_: Vec<(String, String)>) -> Option<u32> {
        None
    }
    fn preview(_: TargetContext, _: ProvisionRequest) -> Result<Vec<PlannedStep>, PluginError> {
        Err(PluginError::Unsupported("preview".into()))
    }
    fn provision(context: TargetContext, request: ProvisionRequest) -> Result<ProvisionOutcome, PluginError> {
        let config = config(&context.settings)?;
        let action = action_of(request.action);
        let current = request.current.map(|c| c.remote_id);
        let person = person_in(request.person);
        let mut t = WasiTransport;
        let mut svc = service(&mut t, &context.tokens)?;
        user::provision(&mut svc, &config, &person, action, current.as_deref()).map(outcome_out).map_err(plugin_error)
    }
    fn provision_batch(context: TargetContext, requests: &BatchRequests) -> Result<BatchAnswer, PluginError> {
        let config = config(&context.settings)?;
        let mut items = Vec::new();
        loop {
            let page = requests.read(items.len() as u32, 1_000);
            if page.is_empty() {
                break;
            }
            items.extend(page.into_iter().map(|r| bulk::Item { action: action_of(r.action), current: r.current.map(|c| c.remote_id), person: person_in(r.person) }));
        }
        let mut t = WasiTransport;
        let mut svc = service(&mut t, &context.tokens)?;
        let results = bulk::provision_batch(&mut svc, &config, &items).map_err(plugin_error)?;
        Ok(BatchAnswer::Done(results.into_iter().map(|r| r.map(outcome_out).map_err(plugin_error)).collect()))
    }
    fn poll_batch(_: TargetContext, _: &BatchRequests, _: String) -> Result<BatchAnswer, PluginError> {
        Err(PluginError::Unsupported("poll-batch".into()))
    }
    fn provision_group(context: TargetContext, request: GroupRequest) -> Result<ProvisionOutcome, PluginError> {
        let config = config(&context.settings)?;
        if !config.groups {
            return Ok(outcome_out(Outcome { remote: None, summary: "not provisioned: the target's \"Provision groups\" setting is off".into(), removed: false }));
        }
        use registry::provisioning::registry_types::GroupAction;
        let users = |m: Vec<registry::provisioning::registry_types::GroupMember>| m.into_iter().filter(|m| m.remote.object_type == "User").map(|m| m.remote.remote_id).collect();
        let req = groups::GroupRequest {
            delete: request.action == GroupAction::GroupDeleted,
            id: request.group.id,
            name: request.group.name,
            members: users(request.group.members),
            added: users(request.added),
            removed: users(request.removed),
            current: request.current.map(|c| c.remote_id),
        };
        let mut t = WasiTransport;
        let mut svc = service(&mut t, &context.tokens)?;
        groups::provision_group(&mut svc, &req).map(outcome_out).map_err(plugin_error)
    }
}

// Export symbols carry WIT names (`pkg/iface#func`) that a native linker's
// version script cannot express; the glue is still type-checked natively.
#[cfg(target_arch = "wasm32")]
export!(ScimProvisioner);
