//! Provisioning targets: what an admin configures, who is in scope, and
//! where each person stands with a target.

use serde::{Deserialize, Serialize};

use super::person::Person;

/// What an admin enters for a provisioning target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInput {
    /// Unique name.
    pub name: String,
    /// The plugin that provisions.
    pub plugin: String,
    /// The OAuth2 server whose tokens it uses.
    pub server_id: i64,
    /// The plugin's settings, as name/value pairs (stored encrypted).
    pub settings: Vec<(String, String)>,
    /// Whether changes are provisioned.
    pub enabled: bool,
    /// Who is provisioned.
    pub scope: Scope,
}

/// A provisioning target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// OAuth2 server id.
    pub server_id: i64,
    /// The server's name.
    pub server_name: String,
    /// Settings.
    #[serde(skip)]
    pub settings: Vec<(String, String)>,
    /// Enabled.
    pub enabled: bool,
    /// Scope.
    pub scope: Scope,
}

/// A person's state with one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetState {
    /// Target id.
    pub target_id: i64,
    /// Target name.
    pub target: String,
    /// State.
    pub state: ProvState,
    /// Remote object type, e.g. "Contact".
    pub remote_type: Option<String>,
    /// Remote id.
    pub remote_id: Option<String>,
    /// Last summary or error.
    pub message: Option<String>,
    /// When it last changed (ms).
    pub updated_at: i64,
}

/// One line of a person's provisioning history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When (ms).
    pub at: i64,
    /// Target name, if about a target.
    pub target: Option<String>,
    /// The action.
    pub action: String,
    /// Whether it worked.
    pub ok: bool,
    /// What happened.
    pub message: String,
}

/// Which people a target provisions. Empty lists mean "everyone".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scope {
    /// Only people with an email in one of these domains (or a subdomain).
    pub email_domains: Vec<String>,
    /// Only people with a role of one of these affiliations.
    pub affiliations: Vec<String>,
    /// Only members of one of these registry groups (their ids); the
    /// target provisions these groups too, or every group when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Scope {
    /// Parses comma- or space-separated lists as an admin types them.
    pub fn parse(domains: &str, affiliations: &str) -> Scope {
        let list = |s: &str| -> Vec<String> {
            s.split([',', ' ', '\n', ';']).map(|x| x.trim().trim_start_matches('@').to_ascii_lowercase()).filter(|x| !x.is_empty()).collect()
        };
        Scope { email_domains: list(domains), affiliations: list(affiliations), groups: Vec::new() }
    }

    /// Whether `p` is in scope.
    pub fn includes(&self, p: &Person) -> bool {
        let domain_ok = self.email_domains.is_empty()
            || p.emails.iter().any(|e| {
                let domain = e.address.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
                self.email_domains.iter().any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
            });
        let role_ok = self.affiliations.is_empty() || p.roles.iter().any(|r| self.affiliations.iter().any(|a| r.affiliation.eq_ignore_ascii_case(a)));
        let group_ok = self.groups.is_empty() || p.groups.iter().any(|g| self.groups.contains(g));
        domain_ok && role_ok && group_ok
    }

    /// Whether the target provisions the group `id`: a group it is scoped
    /// to, or any group when it is not scoped to groups.
    pub fn includes_group(&self, id: &str) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g == id)
    }

    /// Whether everyone is in scope (no condition at all).
    pub fn is_everyone(&self) -> bool {
        self.email_domains.is_empty() && self.affiliations.is_empty() && self.groups.is_empty()
    }

    /// One line for pages.
    pub fn describe(&self) -> String {
        match (self.email_domains.is_empty(), self.affiliations.is_empty()) {
            (true, true) => "everyone".into(),
            (false, true) => format!("emails in {}", self.email_domains.join(", ")),
            (true, false) => format!("affiliations {}", self.affiliations.join(", ")),
            (false, false) => format!("emails in {} and affiliations {}", self.email_domains.join(", "), self.affiliations.join(", ")),
        }
    }
}

/// Where a person stands with one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvState {
    /// A job is queued or running.
    Pending,
    /// The remote record is up to date.
    Provisioned,
    /// The remote record was removed (or deactivated, for Users).
    Removed,
    /// The last job failed for good; the message says why.
    Failed,
    /// The target's scope excludes the person.
    NotInScope,
}

impl ProvState {
    /// The stored name, also the pages' CSS class and element ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvState::Pending => "pending",
            ProvState::Provisioned => "provisioned",
            ProvState::Removed => "removed",
            ProvState::Failed => "failed",
            ProvState::NotInScope => "not_in_scope",
        }
    }
    /// Parses a stored name; `None` for a name this program does not know.
    pub fn parse(s: &str) -> Option<Self> {
        [ProvState::Pending, ProvState::Provisioned, ProvState::Removed, ProvState::Failed, ProvState::NotInScope].into_iter().find(|p| p.as_str() == s)
    }
    /// How pages show it.
    pub fn label(self) -> &'static str {
        match self {
            ProvState::Pending => "Pending",
            ProvState::Provisioned => "Provisioned",
            ProvState::Removed => "Removed",
            ProvState::Failed => "Failed",
            ProvState::NotInScope => "Not in scope",
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::person::tests::ada;

    #[test]
    fn scopes_match_domains_subdomains_and_affiliations() {
        let mut p = ada();
        p.normalize().unwrap();
        assert!(Scope::default().includes(&p));
        assert!(Scope::parse("example.org", "").includes(&p), "a subdomain is in its domain");
        assert!(!Scope::parse("other.org", "").includes(&p));
        assert!(Scope::parse("@math.example.org", "faculty, staff").includes(&p));
        assert!(!Scope::parse("", "student").includes(&p));
    }
}

/// Why a target's jobs cannot run now, if they cannot (the human side of
/// a claim's conditions): a disabled target, or a server without a usable
/// token that only an admin can get.
/// `server` is the target's (none if it cannot be read).
pub fn held_because(target: &Target, server: Option<&super::Server>) -> Option<String> {
    use registry_plugin_runtime::latest::types::GrantType;
    if !target.enabled {
        return Some(format!("the target '{}' is disabled", target.name));
    }
    let server = server?;
    match (server.token_status, server.grant_type) {
        (super::TokenStatus::NeedsReauthorization, _) => Some(format!("the OAuth2 server '{}' needs a new token (Obtain New Token)", server.name)),
        (super::TokenStatus::NotSet, GrantType::AuthorizationCode) => Some(format!("the OAuth2 server '{}' has no token yet (Obtain New Token)", server.name)),
        _ => None,
    }
}
