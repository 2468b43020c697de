//! The WIT glue: converts between the generated bindings and the plain
//! modules. No logic lives here.

wit_bindgen::generate!({
    path: "../../wit/0.2.0",
    world: "provisioner",
    generate_all,
});

use crate::wasi_transport::WasiTransport;
use crate::{connection, error, jwt, metadata, oauth, person, provision, settings};
use exports::registry::provisioning::oauth2_server::{AuthorizationRequest, ConnectionAdvice, ConnectionInfo};
use exports::registry::provisioning::plugin_info::{
    Capabilities, ChoiceOption, PluginMetadata, ServerForm, ServerUrlChoice, Setting, SettingKind, ShownWhen,
};
use exports::registry::provisioning::provisioning_target::{
    BatchAnswer, GroupRequest, PlannedStep, ProvisionOutcome, SubmittedBatch, TargetContext,
};
use registry::provisioning::batch_input::BatchRequests;
use registry::provisioning::log;
use registry::provisioning::registry_types::{
    ApiUsage, FieldError, GroupAction, GroupMember, JwtSigningKey, Oauth2ServerConfig, Person, PersonStatus, PluginError, ProvisionRequest, ProvisioningAction, RemoteError, RemoteRef, RemovalEffect,
    TokenSet,
};

/// The component's export implementation.
pub struct SalesforceProvisioner;

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
            (c.jwt_bearer, Capabilities::JWT_BEARER),
            (c.background_batch, Capabilities::BACKGROUND_BATCH),
            (c.groups, Capabilities::GROUPS),
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
                    shown_when: s.shown_when.map(|(setting, values)| ShownWhen { setting: setting.into(), values: values.iter().map(|v| (*v).into()).collect() }),
                })
                .collect(),
            capabilities,
            api_hosts: metadata::API_HOSTS.iter().map(|h| h.to_string()).collect(),
            server_form: ServerForm {
                server_urls: metadata::SERVER_URLS
                    .iter()
                    .map(|c| ServerUrlChoice {
                        label: c.label.into(),
                        url: c.url.into(),
                        name_label: c.name_label.into(),
                        api_hosts: c.api_hosts.iter().map(|h| h.to_string()).collect(),
                    })
                    .collect(),
                help: metadata::SERVER_FORM_HELP.iter().map(|(f, h)| (f.to_string(), h.to_string())).collect(),
            },
        }
    }
}

fn server(c: Oauth2ServerConfig) -> oauth::ServerConfig {
    oauth::ServerConfig { server_url: c.server_url, client_id: c.client_id, client_secret: c.client_secret, scope: c.scope }
}

fn tokens_in(t: TokenSet) -> oauth::Tokens {
    oauth::Tokens {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        instance_url: t.instance_url,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        scope: t.scope,
        token_type: t.token_type,
        extra: t.extra,
    }
}

fn tokens_out(t: oauth::Tokens) -> TokenSet {
    TokenSet {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        instance_url: t.instance_url,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        scope: t.scope,
        token_type: t.token_type,
        extra: t.extra,
    }
}

/// Converts the logic's error to the WIT variant (the host decides on it).
fn plugin_error(e: error::Error) -> PluginError {
    match e {
        error::Error::Unauthorized(m) => PluginError::Unauthorized(m),
        error::Error::ReauthorizationRequired(m) => PluginError::ReauthorizationRequired(m),
        error::Error::RateLimited(ms) => PluginError::RateLimited(ms),
        error::Error::QuotaExhausted(usage) => PluginError::QuotaExhausted(usage.map(|(used, limit)| ApiUsage { used, limit })),
        error::Error::InvalidConfig(f) => PluginError::InvalidConfig(field_error(f)),
        error::Error::InvalidPerson(f) => PluginError::InvalidPerson(field_error(f)),
        error::Error::Remote { code, message, status, retryable } => PluginError::Remote(RemoteError { code, message, status, retryable }),
        error::Error::Transport(m) => PluginError::Transport(m),
    }
}

impl exports::registry::provisioning::oauth2_server::Guest for SalesforceProvisioner {
    fn authorization_url(config: Oauth2ServerConfig, request: AuthorizationRequest) -> Result<String, PluginError> {
        let req = oauth::AuthRequest { state: request.state, code_challenge: request.code_challenge, redirect_uri: request.redirect_uri, prompt: request.prompt };
        oauth::authorization_url(&server(config), &req).map_err(plugin_error)
    }
    fn exchange_code(config: Oauth2ServerConfig, code: String, redirect_uri: String, code_verifier: Option<String>) -> Result<TokenSet, PluginError> {
        oauth::exchange_code(&mut WasiTransport, &server(config), &code, &redirect_uri, code_verifier.as_deref()).map(tokens_out).map_err(plugin_error)
    }
    fn refresh(config: Oauth2ServerConfig, tokens: TokenSet) -> Result<TokenSet, PluginError> {
        oauth::refresh(&mut WasiTransport, &server(config), &tokens_in(tokens)).map(tokens_out).map_err(plugin_error)
    }
    fn client_credentials(config: Oauth2ServerConfig) -> Result<TokenSet, PluginError> {
        oauth::client_credentials(&mut WasiTransport, &server(config)).map(tokens_out).map_err(plugin_error)
    }
    fn jwt_bearer(config: Oauth2ServerConfig, key: JwtSigningKey) -> Result<TokenSet, PluginError> {
        let input = jwt::SigningInput { subject: key.subject, private_key_pem: key.private_key_pem };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        jwt::jwt_bearer(&mut WasiTransport, &server(config), &input, now).map(tokens_out).map_err(plugin_error)
    }
    fn revoke(config: Oauth2ServerConfig, tokens: TokenSet) -> Result<(), PluginError> {
        oauth::revoke(&mut WasiTransport, &server(config), &tokens_in(tokens)).map_err(plugin_error)
    }
    fn check_connection(config: Oauth2ServerConfig, tokens: TokenSet) -> Result<ConnectionInfo, PluginError> {
        let refreshable = config.grant_type == registry::provisioning::registry_types::GrantType::AuthorizationCode;
        let info = connection::check_connection(&mut WasiTransport, &server(config), &tokens_in(tokens), refreshable).map_err(plugin_error)?;
        Ok(ConnectionInfo {
            user: info.user,
            organization: info.organization,
            api_usage: info.api_usage.map(|(used, limit)| ApiUsage { used, limit }),
            details: info.details,
            advice: info.advice.into_iter().map(|a| ConnectionAdvice { problem: a.problem, fix: a.fix }).collect(),
        })
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
    fn check_settings(context: TargetContext) -> Result<(), Vec<FieldError>> {
        let config = settings::Config::parse(&context.settings).map_err(|errors| errors.into_iter().map(field_error).collect::<Vec<_>>())?;
        provision::check_settings(&mut WasiTransport, &config, &tokens_in(context.tokens)).map_err(|errors| errors.into_iter().map(field_error).collect())
    }
    fn describe_removal(values: Vec<(String, String)>) -> RemovalEffect {
        match settings::Config::parse(&values).map(|c| c.removal) {
            Ok(settings::Removal::Keep) => RemovalEffect::Keep,
            Ok(settings::Removal::Mark(_)) => RemovalEffect::Mark,
            Ok(settings::Removal::Deactivate) => RemovalEffect::Deactivate,
            // Unparseable settings: the cautious answer.
            Ok(settings::Removal::Delete) | Err(_) => RemovalEffect::Delete,
        }
    }
    fn provision_group(context: TargetContext, request: GroupRequest) -> Result<ProvisionOutcome, PluginError> {
        use provision::groups::{GroupAction as A, Member};
        let config = target_config(&context.settings)?;
        let member = |m: GroupMember| Member { person_id: m.person_id, remote: provision::RemoteRef { object_type: m.remote.object_type, remote_id: m.remote.remote_id } };
        let request = provision::groups::GroupRequest {
            action: match request.action {
                GroupAction::GroupAdded => A::Added,
                GroupAction::GroupUpdated => A::Updated,
                GroupAction::GroupDeleted => A::Deleted,
                GroupAction::MembersChanged => A::MembersChanged,
                GroupAction::ReprovisionRequested => A::Reprovision,
            },
            id: request.group.id,
            name: request.group.name,
            members: request.group.members.into_iter().map(member).collect(),
            added: request.added.into_iter().map(member).collect(),
            removed: request.removed.into_iter().map(member).collect(),
            current: request.current.map(|c| provision::RemoteRef { object_type: c.object_type, remote_id: c.remote_id }),
        };
        let mut t = Watching::default();
        let result = provision::groups::provision_group(&mut t, &config, &tokens_in(context.tokens), &request);
        result.map(|o| outcome_out(o, t.usage)).map_err(plugin_error)
    }
    fn batch_size(values: Vec<(String, String)>) -> Option<u32> {
        settings::Config::parse(&values).ok().and_then(|c| provision::bulk::batch_size(&c))
    }
    fn preview(context: TargetContext, request: ProvisionRequest) -> Result<Vec<PlannedStep>, PluginError> {
        let config = target_config(&context.settings)?;
        let steps = provision::preview(&mut WasiTransport, &config, &tokens_in(context.tokens), &request_in(request)).map_err(plugin_error)?;
        Ok(steps.into_iter().map(|s| PlannedStep { description: s.description, request: s.request, fields: s.fields }).collect())
    }
    fn provision(context: TargetContext, request: ProvisionRequest) -> Result<ProvisionOutcome, PluginError> {
        let config = target_config(&context.settings)?;
        let request = request_in(request);
        let mut t = Watching::default();
        let result = provision::provision(&mut t, &config, &tokens_in(context.tokens), &request);
        result.map(|o| outcome_out(o, t.usage)).map_err(plugin_error)
    }
    fn provision_batch(context: TargetContext, requests: &BatchRequests) -> Result<BatchAnswer, PluginError> {
        let config = target_config(&context.settings)?;
        let requests = HostRequests(requests);
        let mut t = Watching::default();
        let tokens = tokens_in(context.tokens);
        if let Some(s) = provision::bulk::submit(&mut t, &config, &tokens, &requests).map_err(plugin_error)? {
            return Ok(BatchAnswer::Submitted(SubmittedBatch { reference: s.reference, poll_after_ms: s.poll_after_ms }));
        }
        let requests = provision::all(&requests);
        let results = provision::provision_batch(&mut t, &config, &tokens, &requests).map_err(plugin_error)?;
        Ok(BatchAnswer::Done(results.into_iter().map(|r| r.map(|o| outcome_out(o, t.usage)).map_err(plugin_error)).collect()))
    }
    fn poll_batch(context: TargetContext, requests: &BatchRequests, reference: String) -> Result<BatchAnswer, PluginError> {
        let config = target_config(&context.settings)?;
        let mut t = Watching::default();
        match provision::bulk::poll(&mut t, &config, &tokens_in(context.tokens), &HostRequests(requests), &reference).map_err(plugin_error)? {
            provision::bulk::Answer::Submitted(s) => Ok(BatchAnswer::Submitted(SubmittedBatch { reference: s.reference, poll_after_ms: s.poll_after_ms })),
            provision::bulk::Answer::Done(results) => Ok(BatchAnswer::Done(results.into_iter().map(|r| r.map(|o| outcome_out(o, t.usage)).map_err(plugin_error)).collect())),
        }
    }
}

/// The host's `batch-requests`, read a page at a time.
struct HostRequests<'a>(&'a BatchRequests);

impl provision::Requests for HostRequests<'_> {
    fn len(&self) -> usize {
        self.0.len() as usize
    }

    fn page(&self, start: usize, max: usize) -> Vec<provision::Request> {
        // The host may answer fewer than asked: read on until `max` or the end.
        let mut out = Vec::new();
        while out.len() < max {
            let page = self.0.read((start + out.len()) as u32, (max - out.len()).min(u32::MAX as usize) as u32);
            if page.is_empty() {
                break;
            }
            out.extend(page.into_iter().map(request_in));
        }
        out
    }
}

/// [`WasiTransport`], remembering the last API usage Salesforce reported.
#[derive(Default)]
struct Watching {
    usage: Option<(u64, u64)>,
}

use crate::http::SalesforceResponse;

impl crate::http::Transport for Watching {
    fn send(&mut self, request: crate::http::Request) -> Result<crate::http::Response, String> {
        let response = WasiTransport.send(request)?;
        self.usage = response.api_usage().or(self.usage);
        Ok(response)
    }
}

/// The target's settings, or the first bad one as `invalid-config`.
fn target_config(values: &[(String, String)]) -> Result<settings::Config, PluginError> {
    settings::Config::parse(values).map_err(|mut errors| PluginError::InvalidConfig(field_error(errors.remove(0))))
}

fn request_in(r: ProvisionRequest) -> provision::Request {
    provision::Request {
        action: match r.action {
            ProvisioningAction::PersonAdded => provision::Action::Added,
            ProvisioningAction::PersonUpdated => provision::Action::Updated,
            ProvisioningAction::PersonDeleted => provision::Action::Deleted,
            ProvisioningAction::PersonExpired => provision::Action::Expired,
            ProvisioningAction::PersonEnteredGracePeriod => provision::Action::GracePeriod,
            ProvisioningAction::PersonUnexpired => provision::Action::Unexpired,
            ProvisioningAction::ReprovisionRequested => provision::Action::Reprovision,
        },
        person: person_in(r.person),
        current: r.current.map(|c| provision::RemoteRef { object_type: c.object_type, remote_id: c.remote_id }),
    }
}

fn person_in(p: Person) -> person::Person {
    registry_guest::person_from_wit!(p, PersonStatus)
}

fn outcome_out(o: provision::Outcome, usage: Option<(u64, u64)>) -> ProvisionOutcome {
    ProvisionOutcome {
        remote: o.remote.map(|r| RemoteRef { object_type: r.object_type, remote_id: r.remote_id }),
        summary: o.summary,
        removed: o.removed,
        usage: usage.map(|(used, limit)| ApiUsage { used, limit }),
    }
}

// Export symbols carry WIT names (`pkg/iface#func`) that a native linker's
// version script cannot express; the glue is still type-checked natively.
#[cfg(target_arch = "wasm32")]
export!(SalesforceProvisioner);
