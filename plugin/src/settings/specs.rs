//! The settings the plugin declares, in form order, with their choices.

use super::names::*;
use super::{Kind, SettingSpec};

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

const MATCH_BYS: &[(&str, &str)] = &[
    ("external_id", "External ID only (no search; records are made for new people)"),
    ("email", "Email"),
    ("federation_identifier", "Federation ID (User only)"),
    ("username", "Username (User only)"),
    ("field", "A chosen field, equal to a template"),
];

const ON_REMOVES: &[(&str, &str)] = &[
    ("default", "The object's default: keep a Contact, deactivate a User"),
    ("keep", "Keep the record; stop managing it"),
    ("mark", "Set the mark fields; keep the record"),
    ("deactivate", "Deactivate (User only)"),
    ("delete", "Delete (Contact only)"),
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
        name: MATCH_BY,
        label: "Match existing records by",
        kind: Kind::Choice(MATCH_BYS),
        default: Some("external_id"),
        required: true,
        help: "Before creating a record for someone the target has not provisioned yet, look for one the org already holds: exactly one match is adopted (and given the External ID), several fail the person with their ids, none makes a new record.",
    },
    SettingSpec {
        name: MATCH_FIELD,
        label: "Match field",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "With \"a chosen field\": the field's API name, e.g. Employee_Number__c.",
    },
    SettingSpec {
        name: MATCH_TEMPLATE,
        label: "Match value",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "With \"a chosen field\": the value it must equal, e.g. {identifier:employee}.",
    },
    SettingSpec {
        name: ON_REMOVE,
        label: "When a person is removed",
        kind: Kind::Choice(ON_REMOVES),
        default: Some("default"),
        required: true,
        help: "What deleting a person, or their leaving the target's scope, does in Salesforce. Keeping a record stops managing it and leaves its CRM history alone.",
    },
    SettingSpec {
        name: MARK_FIELDS,
        label: "Mark fields",
        kind: Kind::Text,
        default: None,
        required: false,
        help: "With \"set the mark fields\": Field__c={template} pairs separated by ';', e.g. Registry_Status__c=deleted.",
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
