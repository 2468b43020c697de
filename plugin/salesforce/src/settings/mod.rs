//! The settings the Salesforce provisioner declares, and their validation.
//!
//! The host renders the target form from [`SETTINGS`] and passes the saved
//! values back on every call; [`Config::parse`] turns them into a typed
//! configuration or a list of errors, each naming its field.

use crate::template::Template;

mod checks;
pub use checks::check_api_name;
use checks::*;

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
    /// Shown only when this other setting has one of these values.
    pub shown_when: Option<(&'static str, &'static [&'static str])>,
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
    pub const BULK_THRESHOLD: &str = "bulk_threshold";
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
    pub const MATCH_BY: &str = "match_by";
    pub const MATCH_FIELD: &str = "match_field";
    pub const MATCH_TEMPLATE: &str = "match_template";
    pub const ON_REMOVE: &str = "on_remove";
    pub const MARK_FIELDS: &str = "mark_fields";
    pub const GROUPS: &str = "groups";
}
use names::*;

/// The oldest API version Salesforce still serves (v21.0–v30.0 answer 410).
pub const MIN_API_VERSION: u32 = 31;

mod specs;
pub use specs::SETTINGS;

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

/// How a person without a stored record is looked for in the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    /// The field compared, e.g. `Email`.
    pub field: String,
    /// The value it must have; `None`: the value the sync sends in `field`.
    pub value: Option<Template>,
    /// How the history names it ("by Email").
    pub label: String,
}

/// What removing a person does to their record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Leave it; stop managing it.
    Keep,
    /// Set these fields; keep it.
    Mark(Vec<FieldMapping>),
    /// Deactivate it (Users).
    Deactivate,
    /// Delete it (Contacts).
    Delete,
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
    /// How existing records are found before one is created (`None`: by
    /// the External ID only).
    pub matching: Option<Matching>,
    /// What removing a person does.
    pub removal: Removal,
    /// From how many people a batch goes through Bulk API 2.0 (`None`:
    /// never).
    pub bulk_threshold: Option<usize>,
    /// Whether the registry's groups become Public Groups (User only).
    pub public_groups: bool,
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

        let matching = match value(MATCH_BY) {
            Some("email") => Some(Matching { field: "Email".into(), value: None, label: "Email".into() }),
            Some(by @ ("federation_identifier" | "username")) => {
                let field = if by == "username" { "Username" } else { "FederationIdentifier" };
                if object != ObjectKind::User {
                    check(MATCH_BY, Err(format!("{field} is a User field; for Contacts match by email, a chosen field or the External ID")));
                } else if by == "federation_identifier" && value(FEDERATION_IDENTIFIER_TYPE).is_none() {
                    check(MATCH_BY, Err("set the Federation ID identifier type, or nothing is sent to match".into()));
                }
                Some(Matching { field: field.into(), value: None, label: field.into() })
            }
            Some("field") => {
                let field = value(MATCH_FIELD).map(str::to_string);
                match &field {
                    Some(f) => check(MATCH_FIELD, check_api_name(f)),
                    None => check(MATCH_FIELD, Err("name the field to match by, e.g. Employee_Number__c".into())),
                }
                let template = match value(MATCH_TEMPLATE).map(Template::parse) {
                    Some(Ok(t)) if t.is_constant() => {
                        check(MATCH_TEMPLATE, Err("must contain a placeholder such as {identifier:employee}, or everyone would match the same records".into()));
                        None
                    }
                    Some(Ok(t)) => Some(t),
                    Some(Err(m)) => {
                        check(MATCH_TEMPLATE, Err(m));
                        None
                    }
                    None => {
                        check(MATCH_TEMPLATE, Err("give the value to match, e.g. {identifier:employee}".into()));
                        None
                    }
                };
                field.zip(template).map(|(f, t)| Matching { label: f.clone(), field: f, value: Some(t) })
            }
            _ => None,
        };
        let mark = match value(MARK_FIELDS).map(parse_field_mappings) {
            Some(Ok(m)) => m,
            Some(Err(message)) => {
                check(MARK_FIELDS, Err(message));
                Vec::new()
            }
            None => Vec::new(),
        };
        let removal = match (value(ON_REMOVE), object) {
            (Some("keep"), _) => Removal::Keep,
            (Some("mark"), _) => {
                if mark.is_empty() && value(MARK_FIELDS).is_none() {
                    check(MARK_FIELDS, Err("give the fields to set, e.g. Registry_Status__c=deleted".into()));
                }
                Removal::Mark(mark)
            }
            (Some("deactivate"), ObjectKind::Contact) => {
                check(ON_REMOVE, Err("Contacts cannot be deactivated; keep, mark or delete them".into()));
                Removal::Keep
            }
            (Some("delete"), ObjectKind::User) => {
                check(ON_REMOVE, Err("Salesforce never deletes Users; deactivate, keep or mark them".into()));
                Removal::Deactivate
            }
            (Some("delete"), _) => Removal::Delete,
            (Some("deactivate"), _) | (_, ObjectKind::User) => Removal::Deactivate,
            _ => Removal::Keep,
        };

        let bulk_threshold = match value(BULK_THRESHOLD).map(|v| v.trim().parse::<usize>()) {
            None | Some(Ok(0)) => None,
            Some(Ok(n)) if n >= 200 => Some(n),
            Some(_) => {
                check(BULK_THRESHOLD, Err("a whole number of people, 200 or more (a smaller batch is one or two collection calls anyway), or 0 for never".into()));
                None
            }
        };

        let public_groups = value(GROUPS) == Some("public_groups");
        if public_groups && object != ObjectKind::User {
            check(GROUPS, Err("Public Groups hold Users, not Contacts: set the object to User, or leave groups out".into()));
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            public_groups,
            matching,
            removal,
            bulk_threshold,
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

#[cfg(test)]
mod tests;
