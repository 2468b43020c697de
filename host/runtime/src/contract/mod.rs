//! The `registry:provisioning` contract, one module per released version.
//!
//! Each version's bindings are generated from its frozen folder under `wit/`
//! and never change once released. [`latest`] is the version new plugins
//! target and the one the host speaks; a component of an older version is
//! called through conversions of its types to and from the latest
//! ([`v0_1_0`]), so the rest of the host sees one set of types.

use std::fmt;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::latest::types::PluginError;

pub mod v0_1_0;
pub mod v0_2_0;

/// The contract version the host speaks and new plugins target.
pub use v0_2_0 as latest;

/// The contract package's name, without a version.
pub const PACKAGE: &str = "registry:provisioning";

/// A version of the contract this host can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// `registry:provisioning@0.1.0`, the first release (frozen).
    V0_1_0,
    /// `registry:provisioning@0.2.0`, the latest.
    V0_2_0,
}

impl ContractVersion {
    /// Every version this host loads, oldest first.
    pub const ALL: [ContractVersion; 2] = [ContractVersion::V0_1_0, ContractVersion::V0_2_0];

    /// The latest version.
    pub const LATEST: ContractVersion = ContractVersion::V0_2_0;

    /// The semver, e.g. `0.2.0`.
    pub fn semver(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
            ContractVersion::V0_2_0 => "0.2.0",
        }
    }

    fn parse(semver: &str) -> Option<ContractVersion> {
        Self::ALL.into_iter().find(|v| v.semver() == semver)
    }

    /// Which version `component` exports, by the names of its exported
    /// contract interfaces. `Err` says what it exports instead.
    pub fn of(engine: &Engine, component: &Component) -> Result<ContractVersion, String> {
        let ty = component.component_type();
        let mut found = Vec::new();
        for (name, item) in ty.exports(engine) {
            if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                continue;
            }
            if let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/'))
                && let Some((_, version)) = rest.split_once('@')
            {
                found.push(version.to_string());
            }
        }
        found.sort();
        found.dedup();
        match found.as_slice() {
            [one] => Self::parse(one).ok_or_else(|| {
                format!("it targets {PACKAGE}@{one}, which this host does not know; it loads {}", supported())
            }),
            [] => Err(format!("it exports no {PACKAGE} interface; this host loads {}", supported())),
            many => Err(format!("it exports interfaces of several {PACKAGE} versions ({})", many.join(", "))),
        }
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PACKAGE}@{}", self.semver())
    }
}

fn supported() -> String {
    let list: Vec<String> = ContractVersion::ALL.iter().map(|v| v.semver().to_string()).collect();
    format!("{PACKAGE}@{}", list.join(" and @"))
}

/// Describes a plugin's typed error to an admin, in words they can act on.
pub fn explain(e: &PluginError) -> String {
    match e {
        PluginError::Unauthorized(m) => format!("the access token was refused: {m}"),
        PluginError::ReauthorizationRequired(m) => format!("a new token is needed: {m}"),
        PluginError::RateLimited(_) => "the provider is throttling requests; try again later".into(),
        PluginError::QuotaExhausted(Some(u)) => format!("the provider's API quota is used up ({} of {} calls); work waits until it frees calls", u.used, u.limit),
        PluginError::QuotaExhausted(None) => "the provider's API quota is used up; work waits until it frees calls".into(),
        PluginError::InvalidConfig(f) => format!("{}: {}", field_label(&f.field), f.message),
        PluginError::InvalidPerson(f) => format!("{}: {}", f.field, f.message),
        PluginError::Remote(r) => format!("the provider refused ({}): {}", r.code, r.message),
        PluginError::Transport(m) => format!("the provider could not be reached: {m}"),
        PluginError::Unsupported(m) => format!("not supported by the plugin: {m}"),
    }
}

/// The admin-facing label of an `oauth2-server-config` field, as a plugin's
/// `invalid-config` error names it.
pub fn field_label(field: &str) -> &str {
    // The WIT names fields with hyphens (`client-secret`); plugins written
    // before said `client_secret`: both read the same.
    match field.replace('-', "_").as_str() {
        "server_url" => "Server URL",
        "client_id" => "Client ID",
        "client_secret" => "Client Secret",
        "redirect_uri" => "Redirect URI",
        "grant_type" => "Grant type",
        "scope" => "Scope",
        "subject" => "Username (JWT bearer)",
        "certificate" => "Certificate (JWT bearer)",
        "token_url" => "Token URL",
        _ => field,
    }
}
