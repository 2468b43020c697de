//! A person in the registry: the record, its validation (every problem named
//! by its field) and the form plugins get it in.

use registry_plugin_runtime::latest::types;
use serde::{Deserialize, Serialize};

/// Where a person stands (mirrors the WIT `person-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Current.
    #[default]
    Active,
    /// Affiliation ended, access continues for a while.
    GracePeriod,
    /// Paused by an administrator.
    Suspended,
    /// Affiliation over.
    Expired,
    /// Removed from the registry (kept as a tombstone: ids are never reused).
    Deleted,
}

impl Status {
    /// Every status an admin may set (deleting is its own action).
    pub const SETTABLE: [Status; 4] = [Status::Active, Status::GracePeriod, Status::Suspended, Status::Expired];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::GracePeriod => "grace-period",
            Status::Suspended => "suspended",
            Status::Expired => "expired",
            Status::Deleted => "deleted",
        }
    }

    /// Parses a stored or entered status.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Active, Status::GracePeriod, Status::Suspended, Status::Expired, Status::Deleted]
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()) || v.as_str().replace('-', "_").eq_ignore_ascii_case(s.trim()))
    }
}

/// A name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Name {
    /// e.g. "Dr."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific: Option<String>,
    /// Given name (required).
    #[serde(default)]
    pub given: String,
    /// Middle name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// e.g. "Jr."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

/// An email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// The address.
    pub address: String,
    /// Its type, e.g. "official" (the default), "personal", "preferred".
    #[serde(rename = "type", default = "official")]
    pub kind: String,
    /// Whether it was verified.
    #[serde(default)]
    pub verified: bool,
}

fn official() -> String {
    "official".into()
}

/// An identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Its type, e.g. "eppn", "orcid".
    #[serde(rename = "type")]
    pub kind: String,
    /// The value.
    pub value: String,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// Room, suite or mail stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// A role (affiliation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// e.g. "staff", "faculty", "student", "member".
    pub affiliation: String,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Office phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_phone: Option<String>,
    /// Mobile phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// A person as the registry keeps them. The JSON form is the API's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Stable registry id; generated when not given, never reused.
    #[serde(default)]
    pub id: String,
    /// Lifecycle status.
    #[serde(default)]
    pub status: Status,
    /// Name.
    #[serde(default)]
    pub name: Name,
    /// Emails, preferred first.
    #[serde(default)]
    pub emails: Vec<Email>,
    /// Identifiers.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    /// Roles, primary first.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The ids of the registry groups the person is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// One bad field of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// e.g. `name.given`, `emails[1].address`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Longest value the registry keeps in one attribute (targets have their
/// own, usually smaller, limits and say so themselves).
pub const MAX_VALUE: usize = 256;
/// Longest street: a few address lines.
pub const MAX_STREET: usize = 1024;
/// Longest email or identifier type.
pub const MAX_KIND: usize = 64;
/// Most emails one person may have.
pub const MAX_EMAILS: usize = 20;
/// Most identifiers one person may have.
pub const MAX_IDENTIFIERS: usize = 50;
/// Most roles one person may have.
pub const MAX_ROLES: usize = 50;

impl Person {
    /// Trims values, drops empty optional ones, and checks everything,
    /// reporting every problem at once.
    pub fn normalize(&mut self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut bad = |field: String, message: String| problems.push(FieldProblem { field, message });
        fn opt(v: &mut Option<String>) {
            *v = v.take().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        }
        self.id = self.id.trim().to_string();
        if !self.id.is_empty() && !valid_id(&self.id) {
            bad("id".into(), "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit".into());
        }
        if self.status == Status::Deleted {
            bad("status".into(), "delete the person instead of setting the status to deleted".into());
        }
        let n = &mut self.name;
        n.given = n.given.trim().to_string();
        for v in [&mut n.honorific, &mut n.middle, &mut n.family, &mut n.suffix] {
            opt(v);
        }
        if n.given.is_empty() {
            bad("name.given".into(), "a given name is required".into());
        }
        let mut lengths: Vec<(String, String)> = vec![
            ("name.honorific".into(), n.honorific.clone().unwrap_or_default()),
            ("name.given".into(), n.given.clone()),
            ("name.middle".into(), n.middle.clone().unwrap_or_default()),
            ("name.family".into(), n.family.clone().unwrap_or_default()),
            ("name.suffix".into(), n.suffix.clone().unwrap_or_default()),
        ];
        let (mut streets, mut kinds): (Vec<(String, String)>, Vec<(String, String)>) = (Vec::new(), Vec::new());
        for (i, e) in self.emails.iter_mut().enumerate() {
            e.address = e.address.trim().to_string();
            e.kind = e.kind.trim().to_ascii_lowercase();
            if e.kind.is_empty() {
                e.kind = official();
            }
            if !looks_like_email(&e.address) {
                bad(format!("emails[{i}].address"), format!("'{}' is not an email address (name@domain.example)", e.address));
            }
            lengths.push((format!("emails[{i}].address"), e.address.clone()));
            kinds.push((format!("emails[{i}].type"), e.kind.clone()));
        }
        for (i, id) in self.identifiers.iter_mut().enumerate() {
            id.kind = id.kind.trim().to_ascii_lowercase();
            id.value = id.value.trim().to_string();
            if id.kind.is_empty() {
                bad(format!("identifiers[{i}].type"), "give the identifier's type, e.g. eppn or orcid".into());
            }
            if id.value.is_empty() {
                bad(format!("identifiers[{i}].value"), "the identifier has no value".into());
            }
            lengths.push((format!("identifiers[{i}].value"), id.value.clone()));
            kinds.push((format!("identifiers[{i}].type"), id.kind.clone()));
        }
        for (i, r) in self.roles.iter_mut().enumerate() {
            r.affiliation = r.affiliation.trim().to_ascii_lowercase();
            if r.affiliation.is_empty() {
                bad(format!("roles[{i}].affiliation"), "give the role's affiliation, e.g. staff, faculty, student or member".into());
            }
            for v in [&mut r.title, &mut r.organization, &mut r.department, &mut r.office_phone, &mut r.mobile_phone] {
                opt(v);
            }
            if let Some(a) = &mut r.address {
                for v in [&mut a.street, &mut a.room, &mut a.locality, &mut a.region, &mut a.postal_code, &mut a.country] {
                    opt(v);
                }
            }
            if r.address.as_ref().is_some_and(|a| *a == Address::default()) {
                r.address = None;
            }
            for (f, v) in [("title", &r.title), ("organization", &r.organization), ("department", &r.department), ("office_phone", &r.office_phone), ("mobile_phone", &r.mobile_phone)] {
                lengths.push((format!("roles[{i}].{f}"), v.clone().unwrap_or_default()));
            }
            if let Some(a) = &r.address {
                streets.push((format!("roles[{i}].address.street"), a.street.clone().unwrap_or_default()));
                for (f, v) in [("room", &a.room), ("locality", &a.locality), ("region", &a.region), ("postal_code", &a.postal_code), ("country", &a.country)] {
                    lengths.push((format!("roles[{i}].address.{f}"), v.clone().unwrap_or_default()));
                }
            }
        }
        for (values, max) in [(lengths, MAX_VALUE), (streets, MAX_STREET), (kinds, MAX_KIND)] {
            for (field, v) in values {
                let len = v.chars().count();
                if len > max {
                    bad(field, format!("at most {max} characters; this has {len}"));
                }
            }
        }
        for g in &mut self.groups {
            *g = g.trim().to_string();
        }
        self.groups.retain(|g| !g.is_empty());
        self.groups.sort();
        self.groups.dedup();
        // Ids (or, in an import, names); the store checks they exist.
        for (i, g) in self.groups.iter().enumerate() {
            if g.chars().count() > MAX_VALUE || g.chars().any(char::is_control) {
                bad(format!("groups[{i}]"), format!("a group id or name: at most {MAX_VALUE} characters, on one line"));
            }
        }
        for (field, len, max) in [("emails", self.emails.len(), MAX_EMAILS), ("identifiers", self.identifiers.len(), MAX_IDENTIFIERS), ("roles", self.roles.len(), MAX_ROLES), ("groups", self.groups.len(), crate::domain::group::MAX_GROUPS_PER_PERSON)] {
            if len > max {
                bad(field.into(), format!("at most {max}; this person has {len}"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// "Family, Given" for lists and sorting.
    pub fn display_name(&self) -> String {
        match &self.name.family {
            Some(f) => format!("{f}, {}", self.name.given),
            None => self.name.given.clone(),
        }
    }

    /// Lower-case text searched by the people list.
    pub fn search_text(&self) -> String {
        let mut s = format!("{} {} {} {}", self.id, self.name.given, self.name.middle.as_deref().unwrap_or(""), self.name.family.as_deref().unwrap_or(""));
        for e in &self.emails {
            s.push(' ');
            s.push_str(&e.address);
        }
        for i in &self.identifiers {
            s.push(' ');
            s.push_str(&i.value);
        }
        s.to_lowercase()
    }

    /// An active person with an official, verified `email` (also their
    /// eppn) and a staff role (Analyst in Research): what the benchmark
    /// generates, and the tests' usual person.
    pub fn example(id: &str, given: &str, family: &str, email: &str) -> Person {
        Person {
            id: id.into(),
            status: Status::Active,
            name: Name { given: given.into(), family: Some(family.into()), ..Name::default() },
            emails: vec![Email { address: email.into(), kind: "official".into(), verified: true }],
            identifiers: vec![Identifier { kind: "eppn".into(), value: email.into() }],
            roles: vec![Role { affiliation: "staff".into(), department: Some("Research".into()), title: Some("Analyst".into()), ..Role::default() }],
            groups: Vec::new(),
        }
    }

    /// The person as plugins get it.
    pub fn to_wit(&self) -> types::Person {
        types::Person {
            id: self.id.clone(),
            status: match self.status {
                Status::Active => types::PersonStatus::Active,
                Status::GracePeriod => types::PersonStatus::GracePeriod,
                Status::Suspended => types::PersonStatus::Suspended,
                Status::Expired => types::PersonStatus::Expired,
                Status::Deleted => types::PersonStatus::Deleted,
            },
            name: types::Name {
                honorific: self.name.honorific.clone(),
                given: self.name.given.clone(),
                middle: self.name.middle.clone(),
                family: self.name.family.clone(),
                suffix: self.name.suffix.clone(),
            },
            emails: self.emails.iter().map(|e| types::Email { address: e.address.clone(), kind: e.kind.clone(), verified: e.verified }).collect(),
            identifiers: self.identifiers.iter().map(|i| types::Identifier { kind: i.kind.clone(), value: i.value.clone() }).collect(),
            roles: self
                .roles
                .iter()
                .map(|r| types::Role {
                    affiliation: r.affiliation.clone(),
                    title: r.title.clone(),
                    organization: r.organization.clone(),
                    department: r.department.clone(),
                    office_phone: r.office_phone.clone(),
                    mobile_phone: r.mobile_phone.clone(),
                    address: r.address.as_ref().map(|a| types::PostalAddress {
                        street: a.street.clone(),
                        room: a.room.clone(),
                        locality: a.locality.clone(),
                        region: a.region.clone(),
                        postal_code: a.postal_code.clone(),
                        country: a.country.clone(),
                    }),
                })
                .collect(),
        }
    }
}

/// Registry ids: short, plain, safe in URLs and in Salesforce fields.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A new registry id: "R" and 12 random base-32 characters.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ0123456789";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let tail: String = bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    format!("R{tail}")
}

/// `name@domain.tld`, no spaces.
///
/// The Salesforce plugin keeps its own copy (`plugin/salesforce/src/mapping.rs`): it
/// is a separate crate, compiled to a component, that shares nothing with
/// the host but the WIT.
pub fn looks_like_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    !local.is_empty() && !domain.contains('@') && !v.contains(char::is_whitespace) && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

/// What a bulk import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    /// New people.
    pub added: usize,
    /// Changed people.
    pub updated: usize,
    /// Already as in the file.
    pub unchanged: usize,
}


#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A person with untidy input, for the domain tests.
    pub(crate) fn ada() -> Person {
        Person {
            id: "P1".into(),
            name: Name { given: " Ada ".into(), family: Some("Lovelace".into()), middle: Some("  ".into()), ..Default::default() },
            emails: vec![Email { address: "ada@Math.example.org".into(), kind: "".into(), verified: true }],
            roles: vec![Role { affiliation: "Staff".into(), ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn normalizing_trims_and_reports_every_problem_by_field() {
        let mut p = ada();
        p.normalize().unwrap();
        assert_eq!((p.name.given.as_str(), p.name.middle.clone(), p.emails[0].kind.as_str(), p.roles[0].affiliation.as_str()), ("Ada", None, "official", "staff"));
        let mut bad = Person { id: "no spaces please".into(), name: Name { given: "".into(), family: Some("x".repeat(300)), ..Default::default() }, ..ada() };
        bad.emails.push(Email { address: "nope".into(), kind: "personal".into(), verified: false });
        let fields: Vec<String> = bad.normalize().unwrap_err().into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["id", "name.given", "emails[1].address", "name.family"]);
    }

    #[test]
    fn every_field_and_list_is_bounded() {
        let mut huge = ada();
        huge.roles[0].address = Some(Address { street: Some("s".repeat(1_900_000)), locality: Some("l".repeat(300)), ..Default::default() });
        huge.emails = (0..25).map(|i| Email { address: format!("a{i}@example.org"), kind: "k".repeat(65), verified: false }).collect();
        huge.identifiers = (0..51).map(|i| Identifier { kind: "eppn".into(), value: format!("v{i}") }).collect();
        let problems = huge.normalize().unwrap_err();
        let message = |field: &str| problems.iter().find(|p| p.field == field).map(|p| p.message.clone()).unwrap_or_else(|| panic!("{field} in {problems:?}"));
        assert_eq!(message("roles[0].address.street"), "at most 1024 characters; this has 1900000");
        assert_eq!(message("roles[0].address.locality"), "at most 256 characters; this has 300");
        assert_eq!(message("emails[0].type"), "at most 64 characters; this has 65");
        assert_eq!(message("emails"), "at most 20; this person has 25");
        assert_eq!(message("identifiers"), "at most 50; this person has 51");
        let mut fine = ada();
        fine.roles[0].address = Some(Address { street: Some("1 Main St\nBuilding 2".repeat(40)), ..Default::default() });
        fine.normalize().unwrap();
    }
}
