//! Bindings for `registry:provisioning@0.1.0` (`wit/0.1.0`), the first
//! release, frozen; and the conversions that let a 0.1.0 component be called
//! with the [latest](super::latest) types: arguments go down to 0.1.0,
//! results come up.

#[allow(missing_docs)] // generated; the WIT's own doc comments carry over
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "provisioner",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use bindings::exports::registry::provisioning::{oauth2_server, plugin_info, provisioning_target};
pub use bindings::registry::provisioning::{log, types};
pub use bindings::{Provisioner, ProvisionerPre};

use super::latest;

/// A conversion between the same shape in two contract versions.
pub(crate) trait Convert<T> {
    /// The value in the other version's types.
    fn convert(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => { $(impl Convert<$t> for $t { fn convert(self) -> $t { self } })* };
}
same!((), String, bool, u16, u64);

impl<A: Convert<B>, B> Convert<Option<B>> for Option<A> {
    fn convert(self) -> Option<B> {
        self.map(Convert::convert)
    }
}

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

impl<A: Convert<B>, B, C: Convert<D>, D> Convert<(B, D)> for (A, C) {
    fn convert(self) -> (B, D) {
        (self.0.convert(), self.1.convert())
    }
}

impl<A: Convert<B>, B, E: Convert<F>, F> Convert<Result<B, F>> for Result<A, E> {
    fn convert(self) -> Result<B, F> {
        self.map(Convert::convert).map_err(Convert::convert)
    }
}

/// A record with the same fields in both versions, converted field by field.
macro_rules! record {
    ($from:ty => $to:ty { $($field:ident),* $(,)? }) => {
        impl Convert<$to> for $from {
            fn convert(self) -> $to {
                type To = $to;
                To { $($field: self.$field.convert()),* }
            }
        }
    };
}

/// An enum with the same cases in both versions.
macro_rules! cases {
    ($from:ty => $to:ty { $($case:ident),* $(,)? }) => {
        impl Convert<$to> for $from {
            fn convert(self) -> $to {
                type From = $from;
                type To = $to;
                match self { $(From::$case => To::$case),* }
            }
        }
    };
}

// Arguments: latest → 0.1.0.
cases!(latest::types::PersonStatus => types::PersonStatus { Active, GracePeriod, Suspended, Expired, Deleted });
cases!(latest::types::ProvisioningAction => types::ProvisioningAction {
    PersonAdded, PersonUpdated, PersonDeleted, PersonExpired, PersonEnteredGracePeriod, PersonUnexpired, ReprovisionRequested,
});
impl Convert<types::GrantType> for latest::types::GrantType {
    fn convert(self) -> types::GrantType {
        match self {
            latest::types::GrantType::AuthorizationCode => types::GrantType::AuthorizationCode,
            latest::types::GrantType::ClientCredentials => types::GrantType::ClientCredentials,
            // Never sent: a 0.1.0 plugin cannot claim the JWT bearer grant,
            // so no server of its uses it; the nearest grant without a
            // browser or a refresh token stands in.
            latest::types::GrantType::JwtBearer | latest::types::GrantType::StaticBearer => types::GrantType::ClientCredentials,
        }
    }
}
record!(latest::types::Name => types::Name { honorific, given, middle, family, suffix });
record!(latest::types::Email => types::Email { address, kind, verified });
record!(latest::types::Identifier => types::Identifier { kind, value });
record!(latest::types::PostalAddress => types::PostalAddress { street, room, locality, region, postal_code, country });
record!(latest::types::Role => types::Role { affiliation, title, organization, department, office_phone, mobile_phone, address });
record!(latest::types::Person => types::Person { id, status, name, emails, identifiers, roles });
record!(latest::types::RemoteRef => types::RemoteRef { object_type, remote_id });
record!(latest::types::TokenSet => types::TokenSet { access_token, refresh_token, instance_url, issued_at, expires_at, scope, token_type, extra });
record!(latest::types::Oauth2ServerConfig => types::Oauth2ServerConfig { server_url, client_id, client_secret, grant_type, scope });
record!(latest::oauth2_server::AuthorizationRequest => oauth2_server::AuthorizationRequest { state, code_challenge, redirect_uri, prompt });
record!(latest::provisioning_target::TargetContext => provisioning_target::TargetContext { settings, tokens });
record!(latest::provisioning_target::ProvisionRequest => provisioning_target::ProvisionRequest { action, person, current });

// Results: 0.1.0 → latest.
record!(types::RemoteRef => latest::types::RemoteRef { object_type, remote_id });
record!(types::TokenSet => latest::types::TokenSet { access_token, refresh_token, instance_url, issued_at, expires_at, scope, token_type, extra });
record!(types::FieldError => latest::types::FieldError { field, message });
record!(types::RemoteError => latest::types::RemoteError { code, message, status, retryable });
record!(oauth2_server::ApiUsage => latest::types::ApiUsage { used, limit });
impl Convert<latest::oauth2_server::ConnectionInfo> for oauth2_server::ConnectionInfo {
    fn convert(self) -> latest::oauth2_server::ConnectionInfo {
        // 0.1.0 cannot give advice.
        latest::oauth2_server::ConnectionInfo { user: self.user, organization: self.organization, api_usage: self.api_usage.convert(), details: self.details, advice: Vec::new() }
    }
}
impl Convert<latest::provisioning_target::ProvisionOutcome> for provisioning_target::ProvisionOutcome {
    fn convert(self) -> latest::provisioning_target::ProvisionOutcome {
        // 0.1.0 reports no API usage.
        latest::provisioning_target::ProvisionOutcome { remote: self.remote.convert(), summary: self.summary, removed: self.removed, usage: None }
    }
}
record!(plugin_info::ChoiceOption => latest::plugin_info::ChoiceOption { value, label });
impl Convert<latest::plugin_info::Setting> for plugin_info::Setting {
    fn convert(self) -> latest::plugin_info::Setting {
        let s = self;
        // 0.1.0 cannot say when a setting applies: always.
        latest::plugin_info::Setting { name: s.name, label: s.label, kind: s.kind.convert(), default_value: s.default_value, required: s.required, help: s.help, shown_when: None }
    }
}
impl Convert<latest::plugin_info::PluginMetadata> for plugin_info::PluginMetadata {
    fn convert(self) -> latest::plugin_info::PluginMetadata {
        latest::plugin_info::PluginMetadata {
            name: self.name,
            version: self.version,
            description: self.description,
            settings: self.settings.convert(),
            capabilities: self.capabilities.convert(),
            // 0.1.0 has no way to declare API hosts: the server's list decides.
            api_hosts: Vec::new(),
            // Nor its form: the admin types the URL, with generic help.
            server_form: latest::plugin_info::ServerForm { server_urls: Vec::new(), help: Vec::new() },
        }
    }
}

impl Convert<latest::types::PluginError> for types::PluginError {
    fn convert(self) -> latest::types::PluginError {
        use latest::types::PluginError as New;
        match self {
            types::PluginError::Unauthorized(m) => New::Unauthorized(m),
            types::PluginError::ReauthorizationRequired(m) => New::ReauthorizationRequired(m),
            types::PluginError::RateLimited(s) => New::RateLimited(s),
            types::PluginError::InvalidConfig(f) => New::InvalidConfig(f.convert()),
            types::PluginError::InvalidPerson(f) => New::InvalidPerson(f.convert()),
            types::PluginError::Remote(r) => New::Remote(r.convert()),
            types::PluginError::Transport(m) => New::Transport(m),
            types::PluginError::Unsupported(m) => New::Unsupported(m),
        }
    }
}

impl Convert<latest::plugin_info::SettingKind> for plugin_info::SettingKind {
    fn convert(self) -> latest::plugin_info::SettingKind {
        use latest::plugin_info::SettingKind as New;
        match self {
            plugin_info::SettingKind::Text => New::Text,
            plugin_info::SettingKind::Secret => New::Secret,
            plugin_info::SettingKind::Boolean => New::Boolean,
            plugin_info::SettingKind::Choice(options) => New::Choice(options.convert()),
        }
    }
}

impl Convert<latest::plugin_info::Capabilities> for plugin_info::Capabilities {
    fn convert(self) -> latest::plugin_info::Capabilities {
        use latest::plugin_info::Capabilities as New;
        use plugin_info::Capabilities as Old;
        [
            (Old::AUTHORIZATION_CODE, New::AUTHORIZATION_CODE),
            (Old::REFRESH, New::REFRESH),
            (Old::CLIENT_CREDENTIALS, New::CLIENT_CREDENTIALS),
            (Old::REVOKE, New::REVOKE),
            (Old::CHECK_CONNECTION, New::CHECK_CONNECTION),
            (Old::PROVISION, New::PROVISION),
            (Old::PROVISION_BATCH, New::PROVISION_BATCH),
        ]
        .into_iter()
        .filter(|(old, _)| self.contains(*old))
        .fold(New::empty(), |all, (_, new)| all | new)
    }
}

cases!(log::Level => latest::log::Level { Trace, Debug, Info, Warn, Error });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_goes_down_unchanged() {
        let person = latest::types::Person {
            id: "R1".into(),
            status: latest::types::PersonStatus::GracePeriod,
            name: latest::types::Name { honorific: Some("Dr.".into()), given: "Ada".into(), middle: None, family: Some("Lovelace".into()), suffix: None },
            emails: vec![latest::types::Email { address: "ada@example.org".into(), kind: "official".into(), verified: true }],
            identifiers: vec![latest::types::Identifier { kind: "eppn".into(), value: "ada@example.org".into() }],
            roles: vec![latest::types::Role {
                affiliation: "staff".into(),
                title: None,
                organization: None,
                department: Some("Engines".into()),
                office_phone: None,
                mobile_phone: None,
                address: Some(latest::types::PostalAddress { street: Some("1 Main St".into()), room: None, locality: None, region: None, postal_code: None, country: Some("US".into()) }),
            }],
        };
        let old: types::Person = person.clone().convert();
        assert_eq!(old.status, types::PersonStatus::GracePeriod);
        assert_eq!(old.name.family.as_deref(), Some("Lovelace"));
        assert_eq!(old.roles[0].address.as_ref().unwrap().country.as_deref(), Some("US"));
        assert_eq!(old.emails[0].address, person.emails[0].address);
    }

    #[test]
    fn capabilities_and_errors_come_up_unchanged() {
        use plugin_info::Capabilities as Old;
        let up: latest::plugin_info::Capabilities = (Old::REFRESH | Old::PROVISION_BATCH).convert();
        assert_eq!(up, latest::plugin_info::Capabilities::REFRESH | latest::plugin_info::Capabilities::PROVISION_BATCH);
        let e: latest::types::PluginError =
            types::PluginError::InvalidPerson(types::FieldError { field: "name.family".into(), message: "required".into() }).convert();
        assert_eq!(e, latest::types::PluginError::InvalidPerson(latest::types::FieldError { field: "name.family".into(), message: "required".into() }));
    }
}
