//! The target settings the SCIM plugin declares, and their parsing.

/// One declared setting (mirrors the WIT `setting`).
pub struct SettingSpec {
    /// Machine name.
    pub name: &'static str,
    /// Form label.
    pub label: &'static str,
    /// `(value, label)` choices; empty for a boolean or a text.
    pub choices: &'static [(&'static str, &'static str)],
    /// Free text (else a choice, or a boolean without choices).
    pub text: bool,
    /// Default value.
    pub default: &'static str,
    /// Help beside the field.
    pub help: &'static str,
}

/// Every setting, in form order.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "user_name",
        label: "userName from",
        text: false,
        choices: &[("email", "The official email"), ("eppn", "The eppn identifier"), ("id", "The registry id")],
        default: "email",
        help: "What a SCIM User's userName (its login, unique in the service) is made of.",
    },
    SettingSpec {
        name: "match_existing",
        label: "Match existing users",
        text: false,
        choices: &[],
        default: "true",
        help: "Before creating a User, look for one with the person's externalId (the registry id) or userName, and take it over instead of making a second.",
    },
    SettingSpec {
        name: "on_remove",
        label: "When a person is removed",
        text: false,
        choices: &[("deactivate", "Deactivate (active = false)"), ("delete", "Delete the User")],
        default: "deactivate",
        help: "What deleting a person, or their leaving the target's scope, does to their SCIM User. Expired and suspended people are always deactivated.",
    },
    SettingSpec {
        name: "updates",
        label: "Updates",
        text: false,
        choices: &[("auto", "As the service allows: PATCH (with If-Match where it has ETags)"), ("put", "Replace the whole User (PUT, one request)")],
        default: "auto",
        help: "How a changed person is sent. PATCH replaces only the attributes this plugin manages, so what the service or others set stays; it asks the service's ServiceProviderConfig first, and with ETags reads the User's version, so it costs two or three requests instead of one.",
    },
    SettingSpec {
        name: "attribute_mappings",
        label: "Attribute mappings",
        text: true,
        choices: &[],
        default: "",
        help: "Attributes to set or override, as path={template} separated by ';': e.g. nickName={given}; name.familyName={family}; urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter={identifier:cost}. Templates: {id}, {given}, {middle}, {family}, {email}, {email:TYPE}, {identifier:TYPE}, {status}, {affiliation}. A template with nothing to show takes the attribute out.",
    },
    SettingSpec {
        name: "groups",
        label: "Provision groups",
        text: false,
        choices: &[],
        default: "true",
        help: "Send the registry's groups as SCIM Groups, with their members.",
    },
];

/// Where a User's userName comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserName {
    /// The official (else the first) email.
    Email,
    /// The `eppn` identifier.
    Eppn,
    /// The registry id.
    Id,
}

/// The parsed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// userName's source.
    pub user_name: UserName,
    /// Whether to adopt an existing User before creating one.
    pub match_existing: bool,
    /// Whether a removal deletes the User (else deactivates it).
    pub delete_on_remove: bool,
    /// Whether updates follow the service's features (PATCH, If-Match)
    /// rather than always replacing the User.
    pub auto_updates: bool,
    /// Whether groups are sent.
    pub groups: bool,
    /// (attribute path, template) pairs applied last.
    pub mappings: Vec<(String, registry_guest::template::Template)>,
}

/// A bad setting, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The setting.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Config {
    /// Parses the saved values (defaults filled in), naming every bad one.
    pub fn parse(values: &[(String, String)]) -> Result<Config, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (name, _) in values {
            if !SETTINGS.iter().any(|s| s.name == name) {
                let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
                errors.push(FieldError { field: name.clone(), message: format!("unknown setting; this plugin's settings are: {}", known.join(", ")) });
            }
        }
        let get = |name: &str| -> String {
            let spec = SETTINGS.iter().find(|s| s.name == name).expect("declared");
            values.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| spec.default.to_string())
        };
        let mut choice = |name: &str| -> String {
            let spec = SETTINGS.iter().find(|s| s.name == name).expect("declared");
            let v = get(name);
            let ok = if spec.choices.is_empty() { v == "true" || v == "false" } else { spec.choices.iter().any(|(c, _)| *c == v) };
            if !ok {
                let allowed: Vec<&str> = if spec.choices.is_empty() { vec!["true", "false"] } else { spec.choices.iter().map(|(c, _)| *c).collect() };
                errors.push(FieldError { field: name.into(), message: format!("'{v}' is not one of {}", allowed.join(", ")) });
            }
            v
        };
        let user_name = match choice("user_name").as_str() {
            "eppn" => UserName::Eppn,
            "id" => UserName::Id,
            _ => UserName::Email,
        };
        let match_existing = choice("match_existing") == "true";
        let delete_on_remove = choice("on_remove") == "delete";
        let auto_updates = choice("updates") == "auto";
        let groups = choice("groups") == "true";
        let mut mappings = Vec::new();
        for pair in values.iter().find(|(n, _)| n == "attribute_mappings").map(|(_, v)| v.as_str()).unwrap_or("").split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = pair.split_once('=').ok_or_else(|| format!("'{pair}' must be path={{template}}")).and_then(|(path, t)| {
                let path = path.trim();
                let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || ".:_-".contains(c));
                if !plain(path) || ["id", "externalId", "meta", "schemas"].contains(&path) {
                    return Err(format!("'{path}' is not an attribute this plugin may set"));
                }
                registry_guest::template::Template::parse(t.trim()).map(|t| (path.to_string(), t))
            });
            match parsed {
                Ok(m) => mappings.push(m),
                Err(e) => errors.push(FieldError { field: "attribute_mappings".into(), message: e }),
            }
        }
        if errors.is_empty() { Ok(Config { user_name, match_existing, delete_on_remove, auto_updates, groups, mappings }) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, Vec<FieldError>> {
        Config::parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_bad_values_are_named() {
        assert_eq!(parse(&[]).unwrap(), Config { user_name: UserName::Email, match_existing: true, delete_on_remove: false, auto_updates: true, groups: true, mappings: vec![] });
        let e = parse(&[("attribute_mappings", "title={role}; id={given}")]).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        let errors = parse(&[("user_name", "nickname"), ("groups", "yes"), ("colour", "red")]).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "user_name", "groups"]);
    }
}
