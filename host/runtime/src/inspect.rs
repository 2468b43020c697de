//! A plugin's description for people (a table) and scripts (JSON), as
//! `registry-host plugin inspect` prints it.

use serde::Serialize;

use crate::latest::plugin_info::{Capabilities, PluginMetadata, SettingKind};
use crate::plugin::Plugin;

/// What `inspect` reports, in a serializable shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginSummary {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Description for admins.
    pub description: String,
    /// Implemented capabilities, by WIT flag name.
    pub capabilities: Vec<&'static str>,
    /// Declared settings.
    pub settings: Vec<SettingSummary>,
    /// The hosts its tokens' instance URLs may name (patterns).
    pub api_hosts: Vec<String>,
    /// The Server URLs an admin picks from, as "label: url".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_urls: Vec<String>,
    /// Component size in bytes.
    pub size_bytes: usize,
    /// Component SHA-256, hex.
    pub sha256: String,
    /// The contract version it targets, e.g. `registry:provisioning@0.2.0`
    /// (empty when summarizing metadata alone).
    pub contract: String,
}

/// One declared setting.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SettingSummary {
    /// Machine name.
    pub name: String,
    /// Form label.
    pub label: String,
    /// "text", "secret", "boolean" or "choice".
    pub kind: &'static str,
    /// Allowed values, for choices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Default value.
    pub default: Option<String>,
    /// Whether a value is required.
    pub required: bool,
    /// Help text.
    pub help: String,
}

const CAPABILITY_NAMES: &[(Capabilities, &str)] = &[
    (Capabilities::AUTHORIZATION_CODE, "authorization-code"),
    (Capabilities::REFRESH, "refresh"),
    (Capabilities::CLIENT_CREDENTIALS, "client-credentials"),
    (Capabilities::REVOKE, "revoke"),
    (Capabilities::CHECK_CONNECTION, "check-connection"),
    (Capabilities::PROVISION, "provision"),
    (Capabilities::PROVISION_BATCH, "provision-batch"),
    (Capabilities::JWT_BEARER, "jwt-bearer"),
    (Capabilities::BACKGROUND_BATCH, "background-batch"),
    (Capabilities::GROUPS, "groups"),
    (Capabilities::STATIC_BEARER, "static-bearer"),
];

impl PluginSummary {
    /// Summarizes a loaded plugin.
    pub fn of(plugin: &Plugin) -> Self {
        let mut summary = Self::from_metadata(plugin.metadata());
        summary.size_bytes = plugin.size();
        summary.sha256 = plugin.digest().to_string();
        summary.contract = plugin.contract().to_string();
        summary
    }

    /// Summarizes metadata alone (size and digest left empty). Every text
    /// is the plugin's own, so it is cleaned of control characters (a
    /// plugin must not drive the operator's terminal) and cut.
    pub fn from_metadata(m: &PluginMetadata) -> Self {
        let clean = |t: &str| crate::sanitize::sanitize(t, 2048);
        let m = &PluginMetadata {
            name: clean(&m.name),
            version: clean(&m.version),
            description: clean(&m.description),
            settings: m
                .settings
                .iter()
                .map(|s| crate::latest::plugin_info::Setting {
                    name: clean(&s.name),
                    label: clean(&s.label),
                    kind: match &s.kind {
                        SettingKind::Choice(options) => SettingKind::Choice(
                            options
                                .iter()
                                .map(|o| crate::latest::plugin_info::ChoiceOption { value: clean(&o.value), label: clean(&o.label) })
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    default_value: s.default_value.as_deref().map(clean),
                    required: s.required,
                    help: clean(&s.help),
                    shown_when: s.shown_when.as_ref().map(|w| crate::latest::plugin_info::ShownWhen { setting: clean(&w.setting), values: w.values.iter().map(|v| clean(v)).collect() }),
                })
                .collect(),
            capabilities: m.capabilities,
            api_hosts: m.api_hosts.iter().map(|h| clean(h)).collect(),
            server_form: crate::latest::plugin_info::ServerForm {
                server_urls: m
                    .server_form
                    .server_urls
                    .iter()
                    .map(|c| crate::latest::plugin_info::ServerUrlChoice {
                        label: clean(&c.label),
                        url: clean(&c.url),
                        name_label: clean(&c.name_label),
                        api_hosts: c.api_hosts.iter().map(|h| clean(h)).collect(),
                    })
                    .collect(),
                help: Vec::new(),
            },
        };
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            capabilities: CAPABILITY_NAMES
                .iter()
                .filter(|(flag, _)| m.capabilities.contains(*flag))
                .map(|(_, name)| *name)
                .collect(),
            settings: m
                .settings
                .iter()
                .map(|s| {
                    let (kind, choices) = match &s.kind {
                        SettingKind::Text => ("text", Vec::new()),
                        SettingKind::Secret => ("secret", Vec::new()),
                        SettingKind::Boolean => ("boolean", Vec::new()),
                        SettingKind::Choice(options) => {
                            ("choice", options.iter().map(|o| o.value.clone()).collect())
                        }
                    };
                    SettingSummary {
                        name: s.name.clone(),
                        label: s.label.clone(),
                        kind,
                        choices,
                        default: s.default_value.clone(),
                        required: s.required,
                        help: s.help.clone(),
                    }
                })
                .collect(),
            api_hosts: m.api_hosts.clone(),
            server_urls: m.server_form.server_urls.iter().map(|c| format!("{}: {}", c.label, c.url)).collect(),
            size_bytes: 0,
            sha256: String::new(),
            contract: String::new(),
        }
    }

    /// The human-readable report: a header, then one row per setting.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let capabilities =
            if self.capabilities.is_empty() { "(none yet)".to_string() } else { self.capabilities.join(", ") };
        out.push_str(&format!("Plugin        {} {}\n", self.name, self.version));
        out.push_str(&format!("Description   {}\n", self.description));
        out.push_str(&format!("Capabilities  {capabilities}\n"));
        if !self.api_hosts.is_empty() {
            out.push_str(&format!("API hosts     {}\n", self.api_hosts.join(", ")));
        }
        if !self.server_urls.is_empty() {
            out.push_str(&format!("Server URLs   {}\n", self.server_urls.join(", ")));
        }
        if !self.contract.is_empty() {
            out.push_str(&format!("Contract      {}\n", self.contract));
        }
        if self.size_bytes > 0 {
            out.push_str(&format!(
                "Component     {:.1} KiB, sha256 {}\n",
                self.size_bytes as f64 / 1024.0,
                self.sha256
            ));
        }
        out.push_str(&format!("\nSettings ({})\n", self.settings.len()));
        let rows: Vec<[String; 5]> = self
            .settings
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    s.kind.to_string(),
                    if s.required { "yes" } else { "no" }.to_string(),
                    s.default.clone().unwrap_or_else(|| "-".into()),
                    s.label.clone(),
                ]
            })
            .collect();
        let header = ["NAME", "KIND", "REQUIRED", "DEFAULT", "LABEL"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        for s in &self.settings {
            out.push_str(&format!("\n  {}: {}", s.name, s.help));
            if !s.choices.is_empty() {
                out.push_str(&format!(" Choices: {}.", s.choices.join(", ")));
            }
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latest::plugin_info::{ChoiceOption, Setting};

    #[test]
    fn table_lists_every_setting_with_its_kind_and_default() {
        let metadata = PluginMetadata {
            name: "demo".into(),
            version: "1.2.3".into(),
            description: "A demo.".into(),
            settings: vec![
                Setting {
                    name: "mode".into(),
                    label: "Mode".into(),
                    kind: SettingKind::Choice(vec![
                        ChoiceOption { value: "a".into(), label: "A".into() },
                        ChoiceOption { value: "b".into(), label: "B".into() },
                    ]),
                    default_value: Some("a".into()),
                    required: true,
                    help: "Pick one.".into(),
                    shown_when: None,
                },
                Setting {
                    name: "token".into(),
                    label: "Token".into(),
                    kind: SettingKind::Secret,
                    default_value: None,
                    required: false,
                    help: "Secret.".into(),
                    shown_when: None,
                },
            ],
            capabilities: Capabilities::PROVISION | Capabilities::REFRESH,
            api_hosts: vec!["*.example.com".into()],
            server_form: crate::latest::plugin_info::ServerForm {
                server_urls: vec![crate::latest::plugin_info::ServerUrlChoice {
                    label: "EU".into(),
                    url: "https://{name}.eu.example.com".into(),
                    name_label: "Tenant".into(),
                    api_hosts: vec![],
                }],
                help: vec![],
            },
        };
        let summary = PluginSummary::from_metadata(&metadata);
        assert_eq!(summary.capabilities, vec!["refresh", "provision"]);
        let table = summary.to_table();
        assert!(table.contains("Plugin        demo 1.2.3"), "{table}");
        assert!(table.contains("Server URLs   EU: https://{name}.eu.example.com\n"), "{table}");
        assert!(table.contains("mode   choice  yes       a        Mode"), "{table}");
        assert!(table.contains("token  secret  no        -        Token"), "{table}");
        assert!(table.contains("  mode: Pick one. Choices: a, b."), "{table}");
    }
}
