//! The settings the Salesforce provisioner declares, and their validation.
//!
//! The host renders the target form from [`SETTINGS`] and passes the saved
//! values back on every call; [`Config::parse`] turns them into a typed
//! configuration or a list of errors, each naming its field.

use crate::template::Template;

/// How a setting is entered (mirrors the WIT `setting-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One line of text.
    Text,
    /// Text stored encrypted by the host.
    Secret,
    /// "true" or "false".
    Boolean,
    /// One of the listed `(value, label)` pairs.
    Choice(&'static [(&'static str, &'static str)]),
}

/// One declared setting (mirrors the WIT `setting`).
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// Machine name.
    pub name: &'static str,
    /// Form label.
    pub label: &'static str,
    /// Entry kind.
    pub kind: Kind,
    /// Value used when none is given.
    pub default: Option<&'static str>,
    /// Whether a value is always needed (User-only fields are checked by
    /// [`Config::parse`] when the object is User).
    pub required: bool,
    /// Help shown beside the field.
    pub help: &'static str,
}

/// A setting or attribute that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The setting's name.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_string(), message: message.into() }
    }
}

/// Setting names, so code and tests never spell them twice.
pub mod names {
    pub const OBJECT: &str = "object";
    pub const API_VERSION: &str = "api_version";
    pub const EXTERNAL_ID_FIELD: &str = "external_id_field";
    pub const EMAIL_TYPE: &str = "email_type";
    pub const PROVISION_MIDDLE_NAME: &str = "provision_middle_name";
    pub const ACCOUNT_ID: &str = "account_id";
    pub const INACTIVE_ACTION: &str = "inactive_action";
    pub const FIELD_MAPPINGS: &str = "field_mappings";
    pub const PROFILE_ID: &str = "profile_id";
    pub const USERNAME_TEMPLATE: &str = "username_template";
    pub const FEDERATION_IDENTIFIER_TYPE: &str = "federation_identifier_type";
    pub const TIME_ZONE: &str = "time_zone";
    pub const LOCALE: &str = "locale";
    pub const EMAIL_ENCODING: &str = "email_encoding";
    pub const LANGUAGE: &str = "language";
}
use names::*;

/// The oldest API version Salesforce still serves (v21.0–v30.0 answer 410).
pub const MIN_API_VERSION: u32 = 31;

/// Email encodings Salesforce accepts for `User.EmailEncodingKey`.
const EMAIL_ENCODINGS: &[(&str, &str)] = &[
    ("UTF-8", "Unicode (UTF-8)"),
    ("ISO-8859-1", "General US & Western Europe (ISO-8859-1)"),
    ("Shift_JIS", "Japanese (Shift-JIS)"),
    ("ISO-2022-JP", "Japanese (JIS)"),
    ("EUC-JP", "Japanese (EUC)"),
    ("ks_c_5601-1987", "Korean (ks_c_5601-1987)"),
    ("Big5", "Traditional Chinese (Big5)"),
    ("GB2312", "Simplified Chinese (GB2312)"),
    ("Big5-HKSCS", "Traditional Chinese Hong Kong (Big5-HKSCS)"),
    ("x-SJIS_0213", "Japanese (Shift-JIS_2004)"),
];

/// Salesforce's fully supported user interface languages (`LanguageLocaleKey`).
const LANGUAGES: &[(&str, &str)] = &[
    ("en_US", "English"),
    ("zh_CN", "Chinese (Simplified)"),
    ("zh_TW", "Chinese (Traditional)"),
    ("da", "Danish"),
    ("nl_NL", "Dutch"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("de", "German"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("no", "Norwegian"),
    ("pt_BR", "Portuguese (Brazil)"),
    ("ru", "Russian"),
    ("es", "Spanish"),
    ("es_MX", "Spanish (Mexico)"),
    ("sv", "Swedish"),
    ("th", "Thai"),
];

const OBJECTS: &[(&str, &str)] = &[("Contact", "Contact"), ("User", "User (Salesforce login)")];

const INACTIVE_ACTIONS: &[(&str, &str)] = &[
    ("update", "Update the record and keep it"),
    ("remove", "Remove it (Contact: delete; User: deactivate)"),
];

/// Every setting the plugin declares, in form order.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: OBJECT,
        label: "Salesforce object",
        kind: Kind::Choice(OBJECTS),
        default: Some("Contact"),
        required: true,
        help: "Contact records people in the CRM; User gives them a Salesforce login (users are deactivated, never deleted).",
    },
    SettingSpec {
        name: API_VERSION,
        label: "API version",
        kind: Kind::Text,
        default: Some("62.0"),
        required: true,
        help: "REST API version, e.g. 62.0. Versions 30.0 and older are retired by Salesforce.",
    },
    SettingSpec {
        name: EXTERNAL_ID_FIELD,
        label: "External ID field",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "API name of a custom External ID field (e.g. Registry_ID__c) holding the registry id. When set, records are upserted by it, so a retry never makes a duplicate.",
    },
    SettingSpec {
        name: EMAIL_TYPE,
        label: "Email type",
        kind: Kind::Text,
        default: Some("official"),
        required: false,
        help: "Which of the person's email types to send (the first of that type, else the first email).",
    },
    SettingSpec {
        name: PROVISION_MIDDLE_NAME,
        label: "Provision middle name",
        kind: Kind::Boolean,
        default: Some("false"),
        required: false,
        help: "Send MiddleName. The org must have middle names enabled, or Salesforce rejects the field.",
    },
    SettingSpec {
        name: ACCOUNT_ID,
        label: "Default Account ID",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "Contact only: the 15- or 18-character id (001...) of the Account new Contacts belong to.",
    },
    SettingSpec {
        name: INACTIVE_ACTION,
        label: "When a person expires or is suspended",
        kind: Kind::Choice(INACTIVE_ACTIONS),
        default: Some("update"),
        required: true,
        help: "Keep the record up to date, or remove it (a Contact is deleted, a User is deactivated). Deleted people are always removed.",
    },
    SettingSpec {
        name: FIELD_MAPPINGS,
        label: "Extra field mappings",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "More fields to set, as Field__c={template} separated by ';', e.g. ORCID__c={identifier:orcid}; Registry_Status__c={status}.",
    },
    SettingSpec {
        name: PROFILE_ID,
        label: "Profile ID",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "User only (required): the 15- or 18-character id (00e...) of the Profile new users get.",
    },
    SettingSpec {
        name: USERNAME_TEMPLATE,
        label: "Username template",
        kind: Kind::Text,
        default: Some("{email}"),
        required: false,
        help: "User only: how to build the Username, which must look like an email address and be unique across all Salesforce orgs, e.g. {email} or {identifier:eppn}.",
    },
    SettingSpec {
        name: FEDERATION_IDENTIFIER_TYPE,
        label: "Federation ID identifier type",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "User only: the identifier type (e.g. eppn) copied into FederationIdentifier for single sign-on.",
    },
    SettingSpec {
        name: TIME_ZONE,
        label: "Time zone",
        kind: Kind::Text,
        default: Some("America/Los_Angeles"),
        required: false,
        help: "User only: TimeZoneSidKey for new users, e.g. America/New_York or GMT.",
    },
    SettingSpec {
        name: LOCALE,
        label: "Locale",
        kind: Kind::Text,
        default: Some("en_US"),
        required: false,
        help: "User only: LocaleSidKey for new users, e.g. en_US or de_DE.",
    },
    SettingSpec {
        name: EMAIL_ENCODING,
        label: "Email encoding",
        kind: Kind::Choice(EMAIL_ENCODINGS),
        default: Some("UTF-8"),
        required: false,
        help: "User only: EmailEncodingKey for new users.",
    },
    SettingSpec {
        name: LANGUAGE,
        label: "Language",
        kind: Kind::Choice(LANGUAGES),
        default: Some("en_US"),
        required: false,
        help: "User only: LanguageLocaleKey for new users.",
    },
];

/// Settings that only make sense when the object is User.
const USER_ONLY: &[&str] =
    &[PROFILE_ID, FEDERATION_IDENTIFIER_TYPE];

/// Which Salesforce object people become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A CRM Contact; deleted when the person is.
    Contact,
    /// A login User; deactivated, never deleted.
    User,
}

impl ObjectKind {
    /// The sObject API name.
    pub fn api_name(self) -> &'static str {
        match self {
            ObjectKind::Contact => "Contact",
            ObjectKind::User => "User",
        }
    }
}

/// What happens to an expired or suspended person's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InactiveAction {
    /// Keep the record and keep it up to date.
    Update,
    /// Delete the Contact, or deactivate the User.
    Remove,
}

/// One admin-added mapping: a Salesforce field filled from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    /// The Salesforce field's API name.
    pub field: String,
    /// What to put in it.
    pub template: Template,
}

/// Settings used only in User mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSettings {
    /// Profile for new users.
    pub profile_id: String,
    /// How to build `Username`.
    pub username_template: Template,
    /// Identifier type copied into `FederationIdentifier`.
    pub federation_identifier_type: Option<String>,
    /// `TimeZoneSidKey`.
    pub time_zone: String,
    /// `LocaleSidKey`.
    pub locale: String,
    /// `EmailEncodingKey`.
    pub email_encoding: String,
    /// `LanguageLocaleKey`.
    pub language: String,
}

/// The validated, typed configuration of one provisioning target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Contact or User.
    pub object: ObjectKind,
    /// REST API version without the "v", e.g. "62.0".
    pub api_version: String,
    /// Custom External ID field holding the registry id, if upserting.
    pub external_id_field: Option<String>,
    /// Preferred email type.
    pub email_type: Option<String>,
    /// Whether to send `MiddleName`.
    pub provision_middle_name: bool,
    /// Contact only: default `AccountId`.
    pub account_id: Option<String>,
    /// What expiry and suspension do.
    pub inactive_action: InactiveAction,
    /// Extra admin-defined fields.
    pub field_mappings: Vec<FieldMapping>,
    /// Present exactly when `object` is User.
    pub user: Option<UserSettings>,
}

/// Looks a setting up by name.
pub fn spec(name: &str) -> Option<&'static SettingSpec> {
    SETTINGS.iter().find(|s| s.name == name)
}

impl Config {
    /// Validates `values` (name/value pairs, defaults optional) and builds the
    /// configuration. Every problem is reported, each naming its setting.
    pub fn parse(values: &[(String, String)]) -> Result<Config, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut given: Vec<(&str, &str)> = Vec::new();
        for (name, value) in values {
            if spec(name).is_none() {
                let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
                errors.push(FieldError::new(
                    name,
                    format!("unknown setting; this plugin's settings are: {}", known.join(", ")),
                ));
            } else if given.iter().any(|(n, _)| n == name) {
                errors.push(FieldError::new(name, "given more than once; give each setting once"));
            } else {
                given.push((name, value.trim()));
            }
        }
        // A blank value means "not given", so the default applies.
        let value = |name: &str| -> Option<&str> {
            given
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .filter(|v| !v.is_empty())
                .or_else(|| spec(name).and_then(|s| s.default))
        };
        for s in SETTINGS {
            match (value(s.name), s.kind) {
                (None, _) if s.required => {
                    errors.push(FieldError::new(s.name, format!("{} is required", s.label)))
                }
                (Some(v), Kind::Choice(options)) if !options.iter().any(|(o, _)| *o == v) => {
                    let allowed: Vec<&str> = options.iter().map(|(o, _)| *o).collect();
                    errors.push(FieldError::new(
                        s.name,
                        format!("'{v}' is not one of the choices: {}", allowed.join(", ")),
                    ))
                }
                (Some(v), Kind::Boolean) if v != "true" && v != "false" => {
                    errors.push(FieldError::new(s.name, format!("'{v}' must be true or false")))
                }
                _ => {}
            }
        }

        let object = match value(OBJECT) {
            Some("User") => ObjectKind::User,
            Some("Contact") => ObjectKind::Contact,
            // Already reported above; checking fields against a guessed
            // object would only add misleading errors.
            _ => return Err(errors),
        };
        let mut check = |name: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError::new(name, message));
            }
        };
        let api_version = value(API_VERSION).map(|v| v.trim_start_matches(['v', 'V']).to_string());
        if let Some(v) = &api_version {
            check(API_VERSION, check_api_version(v));
        }
        let external_id_field = value(EXTERNAL_ID_FIELD).map(str::to_string);
        if let Some(f) = &external_id_field {
            check(EXTERNAL_ID_FIELD, check_custom_field_name(f));
        }
        let account_id = value(ACCOUNT_ID).map(str::to_string);
        if let Some(id) = &account_id {
            if object == ObjectKind::User {
                check(ACCOUNT_ID, Err("only used when the object is Contact; clear it for User".into()));
            } else {
                check(ACCOUNT_ID, check_record_id(id, "001", "an Account"));
            }
        }
        let field_mappings = match value(FIELD_MAPPINGS).map(parse_field_mappings) {
            Some(Ok(m)) => m,
            Some(Err(message)) => {
                check(FIELD_MAPPINGS, Err(message));
                Vec::new()
            }
            None => Vec::new(),
        };

        let user = if object == ObjectKind::User {
            let profile_id = value(PROFILE_ID).map(str::to_string);
            match &profile_id {
                Some(id) => check(PROFILE_ID, check_record_id(id, "00e", "a Profile")),
                None => check(PROFILE_ID, Err("Profile ID is required when the object is User".into())),
            }
            let username_template = match value(USERNAME_TEMPLATE).map(Template::parse) {
                Some(Ok(t)) if t.is_constant() => {
                    check(
                        USERNAME_TEMPLATE,
                        Err("must contain a placeholder such as {email}, or every user would get the same Username".into()),
                    );
                    None
                }
                Some(Ok(t)) => Some(t),
                Some(Err(message)) => {
                    check(USERNAME_TEMPLATE, Err(message));
                    None
                }
                None => None,
            };
            let time_zone = value(TIME_ZONE).unwrap_or_default().to_string();
            check(TIME_ZONE, check_time_zone(&time_zone));
            let locale = value(LOCALE).unwrap_or_default().to_string();
            check(LOCALE, check_locale(&locale));
            match (profile_id, username_template) {
                (Some(profile_id), Some(username_template)) => Some(UserSettings {
                    profile_id,
                    username_template,
                    federation_identifier_type: value(FEDERATION_IDENTIFIER_TYPE).map(str::to_string),
                    time_zone,
                    locale,
                    email_encoding: value(EMAIL_ENCODING).unwrap_or_default().to_string(),
                    language: value(LANGUAGE).unwrap_or_default().to_string(),
                }),
                _ => None,
            }
        } else {
            for name in USER_ONLY {
                if given.iter().any(|(n, v)| n == name && !v.is_empty()) {
                    check(name, Err("only used when the object is User; clear it for Contact".into()));
                }
            }
            None
        };

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            object,
            api_version: api_version.unwrap_or_default(),
            external_id_field,
            email_type: value(EMAIL_TYPE).map(str::to_string),
            provision_middle_name: value(PROVISION_MIDDLE_NAME) == Some("true"),
            account_id,
            inactive_action: match value(INACTIVE_ACTION) {
                Some("remove") => InactiveAction::Remove,
                _ => InactiveAction::Update,
            },
            field_mappings,
            user,
        })
    }
}

fn check_api_version(v: &str) -> Result<(), String> {
    let major = v
        .strip_suffix(".0")
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("'{v}' is not an API version; write it like 62.0"))?;
    if major < MIN_API_VERSION {
        return Err(format!(
            "version {v} is retired by Salesforce; use {MIN_API_VERSION}.0 or newer (e.g. 62.0)"
        ));
    }
    Ok(())
}

/// Checks a Salesforce API name (letters, digits, single underscores,
/// starting with a letter), as for fields and objects.
pub fn check_api_name(name: &str) -> Result<(), String> {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let ok = base.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !base.contains("__")
        && !base.ends_with('_')
        && base.len() <= 40;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a Salesforce API name: use letters, digits and single underscores, start with a letter, at most 40 characters (plus __c)"
        ))
    }
}

fn check_custom_field_name(name: &str) -> Result<(), String> {
    check_api_name(name)?;
    if !name.ends_with("__c") {
        return Err(format!(
            "'{name}' is not a custom field; External ID fields are custom fields whose API name ends in __c, e.g. Registry_ID__c"
        ));
    }
    Ok(())
}

/// Checks a 15- or 18-character Salesforce record id with the given key prefix.
fn check_record_id(id: &str, prefix: &str, what: &str) -> Result<(), String> {
    let shape = matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !shape {
        return Err(format!("'{id}' is not a Salesforce id: ids are 15 or 18 letters and digits"));
    }
    if !id.starts_with(prefix) {
        return Err(format!("'{id}' is not the id of {what}: those start with {prefix}"));
    }
    Ok(())
}

fn check_time_zone(tz: &str) -> Result<(), String> {
    let area_city = tz.split_once('/').is_some_and(|(area, rest)| {
        !area.is_empty()
            && area.chars().all(|c| c.is_ascii_alphabetic())
            && !rest.is_empty()
            && rest.split('/').all(|p| {
                !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
            })
    });
    if tz == "GMT" || area_city {
        Ok(())
    } else {
        Err(format!("'{tz}' is not a time zone id; use an Area/City name such as America/New_York, or GMT"))
    }
}

fn check_locale(locale: &str) -> Result<(), String> {
    let mut parts = locale.split('_');
    let lang = parts.next().unwrap_or_default();
    let ok = (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!("'{locale}' is not a locale; use a Salesforce locale such as en_US or de_DE"))
    }
}

/// Parses `Field__c={template}; Other={...}` (';' or newlines between).
fn parse_field_mappings(text: &str) -> Result<Vec<FieldMapping>, String> {
    let mut mappings: Vec<FieldMapping> = Vec::new();
    for entry in text.split([';', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
        let (field, template) = entry
            .split_once('=')
            .ok_or_else(|| format!("'{entry}' is not a mapping; write Field__c={{template}}"))?;
        let field = field.trim();
        check_api_name(field)?;
        // Salesforce API names are case-insensitive.
        if mappings.iter().any(|m| m.field.eq_ignore_ascii_case(field)) {
            return Err(format!("{field} is mapped twice; keep one mapping per field"));
        }
        let template = Template::parse(template.trim()).map_err(|e| format!("{field}: {e}"))?;
        mappings.push(FieldMapping { field: field.to_string(), template });
    }
    Ok(mappings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, Vec<FieldError>> {
        let owned: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::parse(&owned)
    }

    fn fields(result: Result<Config, Vec<FieldError>>) -> Vec<String> {
        result.expect_err("expected errors").into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_give_a_contact_config() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.object, ObjectKind::Contact);
        assert_eq!(config.api_version, "62.0");
        assert_eq!(config.email_type.as_deref(), Some("official"));
        assert!(!config.provision_middle_name);
        assert_eq!(config.inactive_action, InactiveAction::Update);
        assert!(config.user.is_none());
    }

    #[test]
    fn declared_defaults_are_valid_for_their_kinds() {
        for s in SETTINGS {
            if let (Some(d), Kind::Choice(options)) = (s.default, s.kind) {
                assert!(options.iter().any(|(v, _)| *v == d), "{}", s.name);
            }
            if let (Some(d), Kind::Boolean) = (s.default, s.kind) {
                assert!(d == "true" || d == "false", "{}", s.name);
            }
        }
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len(), "setting names are unique");
    }

    #[test]
    fn user_mode_needs_a_profile_and_fills_defaults() {
        assert_eq!(fields(parse(&[("object", "User")])), vec!["profile_id"]);
        let config = parse(&[("object", "User"), ("profile_id", "00e5e000000abcd")]).unwrap();
        let user = config.user.unwrap();
        assert_eq!(user.time_zone, "America/Los_Angeles");
        assert_eq!(user.locale, "en_US");
        assert_eq!(user.email_encoding, "UTF-8");
        assert_eq!(user.language, "en_US");
        assert_eq!(user.username_template, Template::parse("{email}").unwrap());
    }

    #[test]
    fn every_bad_field_is_named() {
        let errs = fields(parse(&[
            ("api_version", "29.0"),
            ("external_id_field", "Registry_ID"),
            ("provision_middle_name", "yes"),
            ("account_id", "003000000000001"),
            ("bogus", "x"),
        ]));
        assert_eq!(
            errs,
            vec!["bogus", "provision_middle_name", "api_version", "external_id_field", "account_id"]
        );
        // An unknown object is reported alone, not with guesses about it.
        assert_eq!(fields(parse(&[("object", "Lead"), ("profile_id", "x")])), vec!["object"]);
    }

    #[test]
    fn api_versions() {
        assert_eq!(parse(&[("api_version", "v64.0")]).unwrap().api_version, "64.0");
        for bad in ["62", "62.1", "abc", ".0", "30.0"] {
            assert_eq!(fields(parse(&[("api_version", bad)])), vec!["api_version"], "{bad}");
        }
    }

    #[test]
    fn user_fields_are_checked_in_user_mode_and_refused_in_contact_mode() {
        let errs = fields(parse(&[
            ("object", "User"),
            ("profile_id", "005000000000001"),
            ("username_template", "fixed@example.org"),
            ("time_zone", "Pacific Time"),
            ("locale", "EN"),
            ("language", "xx"),
            ("account_id", "001000000000001"),
        ]));
        assert_eq!(errs, vec!["language", "account_id", "profile_id", "username_template", "time_zone", "locale"]);
        assert_eq!(fields(parse(&[("profile_id", "00e000000000001")])), vec!["profile_id"]);
    }

    #[test]
    fn field_mappings_parse_and_reject_bad_entries() {
        let config = parse(&[("field_mappings", "ORCID__c={identifier:orcid};\n Status__c = {status}")]).unwrap();
        let names: Vec<&str> = config.field_mappings.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(names, vec!["ORCID__c", "Status__c"]);
        for bad in ["ORCID__c", "Bad Name={id}", "A__c={id};a__C={id}", "X__c={nope}"] {
            assert_eq!(fields(parse(&[("field_mappings", bad)])), vec!["field_mappings"], "{bad}");
        }
    }

    #[test]
    fn blank_values_fall_back_to_defaults() {
        let config = parse(&[("api_version", " "), ("object", "")]).unwrap();
        assert_eq!(config.api_version, "62.0");
        assert_eq!(config.object, ObjectKind::Contact);
    }
}
