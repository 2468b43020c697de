//! The sObjects the emulator serves and their fields: names, labels, types,
//! lengths, and which are required, read-only, unique or external ids. Field
//! names are case-insensitive, as in Salesforce; responses use the canonical
//! spelling.

use crate::ids::prefix;
use crate::seed::CustomFieldSeed;

/// A field's data type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// The record id.
    Id,
    /// Text.
    String,
    /// An email address (format-checked).
    Email,
    /// A phone number (free text).
    Phone,
    /// Multi-line text.
    Textarea,
    /// true / false.
    Boolean,
    /// An id of a record of the named object.
    Reference(&'static str),
    /// A picklist; restricted ones accept only the listed values.
    Picklist {
        /// Accepted values when restricted, suggestions otherwise.
        values: &'static [&'static str],
        /// Whether other values are refused.
        restricted: bool,
    },
    /// A timestamp set by the system.
    DateTime,
}

impl FieldType {
    /// The `type` in describe output.
    pub fn describe_name(&self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Textarea => "textarea",
            FieldType::Boolean => "boolean",
            FieldType::Reference(_) => "reference",
            FieldType::Picklist { .. } => "picklist",
            FieldType::DateTime => "datetime",
        }
    }
}

/// One field of an sObject.
#[derive(Debug, Clone)]
pub struct Field {
    /// API name.
    pub name: String,
    /// Label, used in error messages.
    pub label: String,
    /// Data type.
    pub ty: FieldType,
    /// Maximum length for text types (0 otherwise).
    pub length: usize,
    /// Whether create needs a non-empty value.
    pub required: bool,
    /// Whether create may set it.
    pub createable: bool,
    /// Whether update may set it.
    pub updateable: bool,
    /// Whether it can key an upsert.
    pub external_id: bool,
    /// Whether values must be unique.
    pub unique: bool,
    /// Value given on create when none is sent.
    pub default: Option<serde_json::Value>,
}

impl Field {
    fn new(name: &str, label: &str, ty: FieldType, length: usize) -> Self {
        Field {
            name: name.into(),
            label: label.into(),
            ty,
            length,
            required: false,
            createable: true,
            updateable: true,
            external_id: false,
            unique: false,
            default: None,
        }
    }
    fn text(name: &str, label: &str, length: usize) -> Self {
        Self::new(name, label, FieldType::String, length)
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn default(mut self, v: serde_json::Value) -> Self {
        self.default = Some(v);
        self
    }

    /// Whether the field is text-like (length-limited, compared as text).
    pub fn is_text(&self) -> bool {
        matches!(
            self.ty,
            FieldType::String | FieldType::Email | FieldType::Phone | FieldType::Textarea | FieldType::Picklist { .. }
        )
    }

    /// The value a query shows for a field never set.
    pub fn nillable(&self) -> bool {
        !self.required && self.ty != FieldType::Boolean && self.ty != FieldType::Id
    }
}

/// One sObject type.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API name.
    pub name: &'static str,
    /// Singular label.
    pub label: &'static str,
    /// Plural label.
    pub label_plural: &'static str,
    /// Id prefix.
    pub key_prefix: &'static str,
    /// Whether records can be created through the API.
    pub createable: bool,
    /// Whether records can be updated.
    pub updateable: bool,
    /// Whether records can be deleted (User cannot).
    pub deletable: bool,
    /// Fields, in describe order.
    pub fields: Vec<Field>,
}

impl ObjectDef {
    /// The field called `name`, ignoring case.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// The objects of one org (standard ones plus the org's custom fields).
#[derive(Debug, Clone)]
pub struct Schema {
    /// All objects.
    pub objects: Vec<ObjectDef>,
}

impl Schema {
    /// The standard objects with `custom` fields added.
    pub fn new(custom: &[CustomFieldSeed]) -> Result<Self, String> {
        let mut objects = vec![account(), contact(), user(), profile(), group(), group_member()];
        for c in custom {
            let object = objects
                .iter_mut()
                .find(|o| o.name.eq_ignore_ascii_case(&c.object) && o.createable)
                .ok_or_else(|| format!("custom field {}: no object {} to add it to (use Account, Contact or User)", c.name, c.object))?;
            if !c.name.ends_with("__c") || c.name.len() < 4 {
                return Err(format!("custom field {}: custom field names end in __c", c.name));
            }
            if object.field(&c.name).is_some() {
                return Err(format!("custom field {}: {} already has it", c.name, object.name));
            }
            let ty = match c.r#type.as_str() {
                "string" | "text" => FieldType::String,
                "email" => FieldType::Email,
                "textarea" => FieldType::Textarea,
                "boolean" => FieldType::Boolean,
                other => return Err(format!("custom field {}: unknown type {other} (string, email, textarea or boolean)", c.name)),
            };
            let length = if ty == FieldType::Boolean { 0 } else { c.length };
            let label = c.label.clone().unwrap_or_else(|| c.name.trim_end_matches("__c").replace('_', " "));
            let mut field = Field::new(&c.name, &label, ty, length);
            field.external_id = c.external_id;
            field.unique = c.unique;
            field.required = c.required;
            if field.ty == FieldType::Boolean {
                field.default = Some(serde_json::Value::Bool(false));
            }
            object.fields.push(field);
        }
        Ok(Schema { objects })
    }

    /// The object called `name`, ignoring case.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects.iter().find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The object whose ids start with the prefix of `id`.
    pub fn object_for_id(&self, id: &str) -> Option<&ObjectDef> {
        self.objects.iter().find(|o| id.starts_with(o.key_prefix))
    }
}

fn system_fields(owner: bool, deleted: bool) -> Vec<Field> {
    let mut f = vec![Field::new("Id", "Record ID", FieldType::Id, 18).read_only()];
    if owner {
        f.push(Field::new("OwnerId", "Owner ID", FieldType::Reference("User"), 18).read_only());
    }
    if deleted {
        f.push(Field::new("IsDeleted", "Deleted", FieldType::Boolean, 0).read_only());
    }
    f.push(Field::new("CreatedDate", "Created Date", FieldType::DateTime, 0).read_only());
    f.push(Field::new("CreatedById", "Created By ID", FieldType::Reference("User"), 18).read_only());
    f.push(Field::new("LastModifiedDate", "Last Modified Date", FieldType::DateTime, 0).read_only());
    f.push(Field::new("LastModifiedById", "Last Modified By ID", FieldType::Reference("User"), 18).read_only());
    f.push(Field::new("SystemModstamp", "System Modstamp", FieldType::DateTime, 0).read_only());
    f
}

fn account() -> ObjectDef {
    let mut fields = system_fields(true, true);
    fields.extend([
        Field::text("Name", "Account Name", 255).required(),
        Field::new("Phone", "Account Phone", FieldType::Phone, 40),
        Field::text("Website", "Website", 255),
        Field::text("BillingCity", "Billing City", 40),
        Field::text("BillingCountry", "Billing Country", 80),
    ]);
    ObjectDef {
        name: "Account",
        label: "Account",
        label_plural: "Accounts",
        key_prefix: prefix::ACCOUNT,
        createable: true,
        updateable: true,
        deletable: true,
        fields,
    }
}

const SALUTATIONS: &[&str] = &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx."];

fn contact() -> ObjectDef {
    let mut fields = system_fields(true, true);
    fields.extend([
        Field::new("AccountId", "Account ID", FieldType::Reference("Account"), 18),
        Field::new("Salutation", "Salutation", FieldType::Picklist { values: SALUTATIONS, restricted: false }, 40),
        Field::text("FirstName", "First Name", 40),
        Field::text("MiddleName", "Middle Name", 40),
        Field::text("LastName", "Last Name", 80).required(),
        Field::text("Suffix", "Suffix", 40),
        Field::text("Name", "Full Name", 121).read_only(),
        Field::new("Email", "Email", FieldType::Email, 80),
        Field::text("Title", "Title", 128),
        Field::text("Department", "Department", 80),
        Field::new("Phone", "Business Phone", FieldType::Phone, 40),
        Field::new("MobilePhone", "Mobile Phone", FieldType::Phone, 40),
        Field::new("MailingStreet", "Mailing Street", FieldType::Textarea, 255),
        Field::text("MailingCity", "Mailing City", 40),
        Field::text("MailingState", "Mailing State/Province", 80),
        Field::text("MailingPostalCode", "Mailing Zip/Postal Code", 20),
        Field::text("MailingCountry", "Mailing Country", 80),
        Field::new("Description", "Contact Description", FieldType::Textarea, 32000),
        Field::new("DoNotCall", "Do Not Call", FieldType::Boolean, 0).default(serde_json::Value::Bool(false)),
        Field::new("HasOptedOutOfEmail", "Email Opt Out", FieldType::Boolean, 0).default(serde_json::Value::Bool(false)),
    ]);
    ObjectDef {
        name: "Contact",
        label: "Contact",
        label_plural: "Contacts",
        key_prefix: prefix::CONTACT,
        createable: true,
        updateable: true,
        deletable: true,
        fields,
    }
}

/// Time zones accepted by `User.TimeZoneSidKey` (a subset of Salesforce's list).
pub const TIME_ZONES: &[&str] = &[
    "GMT", "Pacific/Kiritimati", "Pacific/Chatham", "Pacific/Auckland", "Pacific/Enderbury", "Pacific/Fiji",
    "Pacific/Tongatapu", "Asia/Kamchatka", "Pacific/Norfolk", "Australia/Lord_Howe", "Australia/Sydney",
    "Pacific/Guadalcanal", "Australia/Adelaide", "Australia/Darwin", "Asia/Seoul", "Asia/Tokyo",
    "Asia/Hong_Kong", "Asia/Kuala_Lumpur", "Asia/Manila", "Asia/Shanghai", "Asia/Singapore", "Asia/Taipei",
    "Australia/Perth", "Asia/Bangkok", "Asia/Ho_Chi_Minh", "Asia/Jakarta", "Asia/Rangoon", "Asia/Dhaka",
    "Asia/Kathmandu", "Asia/Colombo", "Asia/Kolkata", "Asia/Karachi", "Asia/Tashkent", "Asia/Yekaterinburg",
    "Asia/Kabul", "Asia/Tehran", "Asia/Baku", "Asia/Dubai", "Asia/Tbilisi", "Asia/Yerevan", "Africa/Nairobi",
    "Asia/Baghdad", "Asia/Kuwait", "Asia/Riyadh", "Europe/Istanbul", "Europe/Minsk", "Europe/Moscow",
    "Africa/Cairo", "Africa/Johannesburg", "Asia/Beirut", "Asia/Jerusalem", "Europe/Athens", "Europe/Bucharest",
    "Europe/Helsinki", "Africa/Algiers", "Africa/Casablanca", "Europe/Amsterdam", "Europe/Berlin",
    "Europe/Brussels", "Europe/Paris", "Europe/Prague", "Europe/Rome", "Europe/Stockholm", "Europe/Vienna",
    "Europe/Zurich", "Europe/Madrid", "Europe/Warsaw", "Europe/Dublin", "Europe/Lisbon", "Europe/London",
    "Africa/Lagos", "Atlantic/Azores", "Atlantic/Cape_Verde", "America/Sao_Paulo", "Atlantic/South_Georgia",
    "America/Argentina/Buenos_Aires", "America/Santiago", "America/St_Johns", "America/Halifax",
    "America/Puerto_Rico", "Atlantic/Bermuda", "America/Caracas", "America/Bogota", "America/Indiana/Indianapolis",
    "America/Lima", "America/New_York", "America/Panama", "America/Chicago", "America/El_Salvador",
    "America/Mexico_City", "America/Denver", "America/Phoenix", "America/Los_Angeles", "America/Tijuana",
    "America/Anchorage", "Pacific/Honolulu", "Pacific/Niue", "Pacific/Pago_Pago",
];

/// Locales accepted by `User.LocaleSidKey` (a subset of Salesforce's list).
pub const LOCALES: &[&str] = &[
    "en_US", "en_GB", "en_AU", "en_CA", "en_IE", "en_IN", "en_NZ", "en_ZA", "de_DE", "de_AT", "de_CH", "fr_FR",
    "fr_BE", "fr_CA", "fr_CH", "es_ES", "es_MX", "es_AR", "it_IT", "it_CH", "nl_NL", "nl_BE", "pt_BR", "pt_PT",
    "sv_SE", "da_DK", "fi_FI", "no_NO", "pl_PL", "cs_CZ", "hu_HU", "ro_RO", "ru_RU", "tr_TR", "el_GR", "ja_JP",
    "ko_KR", "zh_CN", "zh_TW", "th_TH", "he_IL", "ar_AE", "hi_IN",
];

/// `User.EmailEncodingKey` values.
pub const EMAIL_ENCODINGS: &[&str] = &[
    "UTF-8", "ISO-8859-1", "Shift_JIS", "ISO-2022-JP", "EUC-JP", "ks_c_5601-1987", "Big5", "GB2312", "Big5-HKSCS",
    "x-SJIS_0213",
];

/// `User.LanguageLocaleKey` values (the fully supported languages).
pub const LANGUAGES: &[&str] = &[
    "en_US", "zh_CN", "zh_TW", "da", "nl_NL", "fi", "fr", "de", "it", "ja", "ko", "no", "pt_BR", "ru", "es", "es_MX",
    "sv", "th",
];

fn restricted(name: &str, label: &str, values: &'static [&'static str]) -> Field {
    Field::new(name, label, FieldType::Picklist { values, restricted: true }, 40).required()
}

fn user() -> ObjectDef {
    let mut fields = system_fields(false, false);
    fields.extend([
        Field::new("Username", "Username", FieldType::Email, 80).required().unique(),
        Field::text("FirstName", "First Name", 40),
        Field::text("MiddleName", "Middle Name", 40),
        Field::text("LastName", "Last Name", 80).required(),
        Field::text("Suffix", "Suffix", 40),
        Field::text("Name", "Full Name", 121).read_only(),
        Field::new("Email", "Email", FieldType::Email, 128).required(),
        Field::text("Alias", "Alias", 8).required(),
        Field::text("CommunityNickname", "Nickname", 40).required().unique(),
        restricted("TimeZoneSidKey", "Time Zone", TIME_ZONES),
        restricted("LocaleSidKey", "Locale", LOCALES),
        restricted("EmailEncodingKey", "Email Encoding", EMAIL_ENCODINGS),
        restricted("LanguageLocaleKey", "Language", LANGUAGES),
        Field::new("ProfileId", "Profile ID", FieldType::Reference("Profile"), 18).required(),
        Field::new("IsActive", "Active", FieldType::Boolean, 0).default(serde_json::Value::Bool(true)),
        Field::text("FederationIdentifier", "SAML Federation ID", 512),
        Field::text("Title", "Title", 80),
        Field::text("Department", "Department", 80),
        Field::text("CompanyName", "Company Name", 80),
        Field::new("Phone", "Phone", FieldType::Phone, 40),
        Field::new("MobilePhone", "Mobile", FieldType::Phone, 40),
        Field::new("Street", "Street", FieldType::Textarea, 255),
        Field::text("City", "City", 40),
        Field::text("State", "State/Province", 80),
        Field::text("PostalCode", "Zip/Postal Code", 20),
        Field::text("Country", "Country", 80),
    ]);
    ObjectDef {
        name: "User",
        label: "User",
        label_plural: "Users",
        key_prefix: prefix::USER,
        createable: true,
        updateable: true,
        deletable: false,
        fields,
    }
}

/// Public groups (`Type` Regular); their members are `GroupMember` rows.
fn group() -> ObjectDef {
    let mut fields = system_fields(true, false);
    fields.extend([
        Field::text("Name", "Name", 40).required(),
        Field::text("DeveloperName", "Developer Name", 80).unique(),
        Field::new("Type", "Type", FieldType::Picklist { values: &["Regular", "Queue"], restricted: true }, 40).default(serde_json::Value::String("Regular".into())),
        Field::new("DoesIncludeBosses", "Grant Access Using Hierarchies", FieldType::Boolean, 0).default(serde_json::Value::Bool(true)),
    ]);
    ObjectDef { name: "Group", label: "Group", label_plural: "Groups", key_prefix: prefix::GROUP, createable: true, updateable: true, deletable: true, fields }
}

/// A group's member: a user (or, in Salesforce, another group; users here).
/// Made and deleted, never updated.
fn group_member() -> ObjectDef {
    let mut fields = system_fields(false, false);
    fields.extend([
        Field::new("GroupId", "Group ID", FieldType::Reference("Group"), 18).required(),
        Field::new("UserOrGroupId", "User/Group ID", FieldType::Reference("User"), 18).required(),
    ]);
    ObjectDef { name: "GroupMember", label: "Group Member", label_plural: "Group Members", key_prefix: prefix::GROUP_MEMBER, createable: true, updateable: false, deletable: true, fields }
}

fn profile() -> ObjectDef {
    let mut fields = system_fields(false, false);
    fields.push(Field::text("Name", "Name", 255).read_only());
    ObjectDef {
        name: "Profile",
        label: "Profile",
        label_plural: "Profiles",
        key_prefix: prefix::PROFILE,
        createable: false,
        updateable: false,
        deletable: false,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_ignoring_case_and_custom_fields_are_added() {
        let custom = CustomFieldSeed {
            object: "contact".into(),
            name: "Registry_ID__c".into(),
            label: None,
            r#type: "string".into(),
            length: 64,
            external_id: true,
            unique: true,
            required: false,
        };
        let s = Schema::new(&[custom]).unwrap();
        let c = s.object("CONTACT").unwrap();
        assert_eq!(c.field("lastname").unwrap().name, "LastName");
        let f = c.field("registry_id__C").unwrap();
        assert!(f.external_id && f.unique);
        assert_eq!(f.label, "Registry ID");
        assert_eq!(s.object_for_id("005xx").unwrap().name, "User");
    }

    #[test]
    fn bad_custom_fields_are_refused_with_the_reason() {
        let mut c = CustomFieldSeed {
            object: "Lead".into(),
            name: "X__c".into(),
            label: None,
            r#type: "string".into(),
            length: 10,
            external_id: false,
            unique: false,
            required: false,
        };
        assert!(Schema::new(&[c.clone()]).unwrap_err().contains("no object Lead"));
        c.object = "Contact".into();
        c.name = "Plain".into();
        assert!(Schema::new(&[c.clone()]).unwrap_err().contains("end in __c"));
        c.name = "X__c".into();
        c.r#type = "currency".into();
        assert!(Schema::new(&[c]).unwrap_err().contains("unknown type"));
    }
}
