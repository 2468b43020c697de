//! People in the registry: the record, its validation (every problem named by
//! its field), the lifecycle actions a change means, scope checks, and the
//! bulk-import formats (CSV and JSON).

use serde::{Deserialize, Serialize};

use crate::bindings::types;

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
        }
        for (field, v) in lengths {
            let len = v.chars().count();
            if len > MAX_VALUE {
                bad(field, format!("at most {MAX_VALUE} characters; this has {len}"));
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
pub fn looks_like_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    !local.is_empty() && !domain.contains('@') && !v.contains(char::is_whitespace) && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

/// What a change to a person means for provisioning (mirrors the WIT
/// `provisioning-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// New in the registry.
    Added,
    /// Changed.
    Updated,
    /// Deleted.
    Deleted,
    /// Became expired.
    Expired,
    /// Entered the grace period.
    EnteredGracePeriod,
    /// Active again after expiry or suspension.
    Unexpired,
    /// An admin asked to push again.
    Reprovision,
}

impl Action {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
            Action::Expired => "expired",
            Action::EnteredGracePeriod => "entered-grace-period",
            Action::Unexpired => "unexpired",
            Action::Reprovision => "reprovision",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Action> {
        [Action::Added, Action::Updated, Action::Deleted, Action::Expired, Action::EnteredGracePeriod, Action::Unexpired, Action::Reprovision]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// The action an edit from `before` to `after` status means.
    pub fn for_change(before: Status, after: Status) -> Action {
        match (before, after) {
            (b, Status::Expired) if b != Status::Expired => Action::Expired,
            (b, Status::GracePeriod) if b != Status::GracePeriod => Action::EnteredGracePeriod,
            (Status::Expired | Status::Suspended, Status::Active) => Action::Unexpired,
            _ => Action::Updated,
        }
    }

    /// The WIT action.
    pub fn to_wit(self) -> types::ProvisioningAction {
        match self {
            Action::Added => types::ProvisioningAction::PersonAdded,
            Action::Updated => types::ProvisioningAction::PersonUpdated,
            Action::Deleted => types::ProvisioningAction::PersonDeleted,
            Action::Expired => types::ProvisioningAction::PersonExpired,
            Action::EnteredGracePeriod => types::ProvisioningAction::PersonEnteredGracePeriod,
            Action::Unexpired => types::ProvisioningAction::PersonUnexpired,
            Action::Reprovision => types::ProvisioningAction::ReprovisionRequested,
        }
    }
}

/// Which people a target provisions. Empty lists mean "everyone".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scope {
    /// Only people with an email in one of these domains (or a subdomain).
    pub email_domains: Vec<String>,
    /// Only people with a role of one of these affiliations.
    pub affiliations: Vec<String>,
}

impl Scope {
    /// Parses comma- or space-separated lists as an admin types them.
    pub fn parse(domains: &str, affiliations: &str) -> Scope {
        let list = |s: &str| -> Vec<String> {
            s.split([',', ' ', '\n', ';']).map(|x| x.trim().trim_start_matches('@').to_ascii_lowercase()).filter(|x| !x.is_empty()).collect()
        };
        Scope { email_domains: list(domains), affiliations: list(affiliations) }
    }

    /// Whether `p` is in scope.
    pub fn includes(&self, p: &Person) -> bool {
        let domain_ok = self.email_domains.is_empty()
            || p.emails.iter().any(|e| {
                let domain = e.address.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
                self.email_domains.iter().any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
            });
        let role_ok = self.affiliations.is_empty() || p.roles.iter().any(|r| self.affiliations.iter().any(|a| r.affiliation.eq_ignore_ascii_case(a)));
        domain_ok && role_ok
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

/// A row of an import file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    /// 1-based line (CSV) or 1-based record number (JSON).
    pub row: usize,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {}: {}: {}", self.row, self.field, self.message)
    }
}

/// The CSV columns, in the order `people export`/the README give them.
pub const CSV_COLUMNS: &[&str] = &[
    "id", "status", "honorific", "given", "middle", "family", "suffix", "emails", "identifiers", "affiliation", "title", "organization",
    "department", "office_phone", "mobile_phone", "street", "room", "locality", "region", "postal_code", "country",
];

/// Reads people from CSV (a header row naming columns from [`CSV_COLUMNS`];
/// `emails` is `type:address;type:address`, `identifiers` is
/// `type:value;...`) or from a JSON array of API person objects. Every
/// problem in the file is reported; nothing is returned unless all rows are good.
pub fn parse_import(name: &str, text: &str) -> Result<Vec<Person>, Vec<ImportProblem>> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let (people, mut problems) = if name.to_ascii_lowercase().ends_with(".json") || trimmed.starts_with('[') {
        parse_json(trimmed)?
    } else {
        parse_csv(trimmed)?
    };
    let mut out = Vec::with_capacity(people.len());
    let mut seen = std::collections::HashSet::new();
    for (row, mut p) in people {
        if let Err(ps) = p.normalize() {
            problems.extend(ps.into_iter().map(|f| ImportProblem { row, field: f.field, message: f.message }));
            continue;
        }
        if !p.id.is_empty() && !seen.insert(p.id.clone()) {
            problems.push(ImportProblem { row, field: "id".into(), message: format!("{} appears more than once in the file", p.id) });
        }
        out.push(p);
    }
    problems.sort_by_key(|p| p.row);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Rows read, and problems found while reading (the rows are still checked).
type Parsed = (Vec<(usize, Person)>, Vec<ImportProblem>);

fn parse_json(text: &str) -> Result<Parsed, Vec<ImportProblem>> {
    let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
        vec![ImportProblem { row: e.line(), field: "(file)".into(), message: format!("not a JSON array of people: {e}") }]
    })?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        match serde_json::from_value::<Person>(v) {
            Ok(p) => out.push((i + 1, p)),
            Err(e) => problems.push(ImportProblem { row: i + 1, field: "(record)".into(), message: e.to_string() }),
        }
    }
    Ok((out, problems))
}

fn parse_csv(text: &str) -> Result<Parsed, Vec<ImportProblem>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| vec![ImportProblem { row: 1, field: "(header)".into(), message: e.to_string() }])?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let unknown: Vec<&String> = header.iter().filter(|h| !CSV_COLUMNS.contains(&h.as_str())).collect();
    if !unknown.is_empty() || !header.iter().any(|h| h == "given") {
        let message = if unknown.is_empty() {
            "the header must have a 'given' column".to_string()
        } else {
            format!("unknown column(s) {}; the columns are: {}", unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "), CSV_COLUMNS.join(", "))
        };
        return Err(vec![ImportProblem { row: 1, field: "(header)".into(), message }]);
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map_or(0, |p| p.line() as usize);
                problems.push(ImportProblem { row, field: "(row)".into(), message: e.to_string() });
                continue;
            }
        };
        let row = record.position().map_or(0, |p| p.line() as usize);
        let get = |c: &str| header.iter().position(|h| h == c).and_then(|i| record.get(i)).map(str::to_string).filter(|v| !v.is_empty());
        let mut p = Person { id: get("id").unwrap_or_default(), ..Default::default() };
        if let Some(s) = get("status") {
            match Status::parse(&s) {
                Some(st) => p.status = st,
                None => problems.push(ImportProblem { row, field: "status".into(), message: format!("'{s}' is not one of active, grace-period, suspended, expired") }),
            }
        }
        p.name = Name { honorific: get("honorific"), given: get("given").unwrap_or_default(), middle: get("middle"), family: get("family"), suffix: get("suffix") };
        for pair in get("emails").unwrap_or_default().split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, address) = pair.split_once(':').unwrap_or(("official", pair));
            p.emails.push(Email { address: address.into(), kind: kind.into(), verified: false });
        }
        for pair in get("identifiers").unwrap_or_default().split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match pair.split_once(':') {
                Some((kind, value)) => p.identifiers.push(Identifier { kind: kind.into(), value: value.into() }),
                None => problems.push(ImportProblem { row, field: "identifiers".into(), message: format!("'{pair}' must be type:value, e.g. eppn:ada@example.org") }),
            }
        }
        if let Some(affiliation) = get("affiliation") {
            let address = Address { street: get("street"), room: get("room"), locality: get("locality"), region: get("region"), postal_code: get("postal_code"), country: get("country") };
            p.roles.push(Role {
                affiliation,
                title: get("title"),
                organization: get("organization"),
                department: get("department"),
                office_phone: get("office_phone"),
                mobile_phone: get("mobile_phone"),
                address: Some(address),
            });
        }
        out.push((row, p));
    }
    Ok((out, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Person {
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
    fn status_changes_become_lifecycle_actions() {
        use Status::*;
        assert_eq!(Action::for_change(Active, Expired), Action::Expired);
        assert_eq!(Action::for_change(Active, GracePeriod), Action::EnteredGracePeriod);
        assert_eq!(Action::for_change(Expired, Active), Action::Unexpired);
        assert_eq!(Action::for_change(Suspended, Active), Action::Unexpired);
        assert_eq!(Action::for_change(Active, Suspended), Action::Updated);
        assert_eq!(Action::for_change(Active, Active), Action::Updated);
    }

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

    #[test]
    fn csv_and_json_imports_parse_or_name_every_bad_row() {
        let csv = "id,given,family,emails,identifiers,affiliation,title\nP1,Ada,Lovelace,official:ada@example.org;personal:ada@home.example,eppn:ada@example.org,staff,Analyst\n,Grace,Hopper,grace@example.org,,faculty,\n";
        let people = parse_import("people.csv", csv).unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].emails[1].kind, "personal");
        assert_eq!(people[0].identifiers[0].value, "ada@example.org");
        assert_eq!(people[1].emails[0].kind, "official");
        assert_eq!(people[1].roles[0].affiliation, "faculty");
        let bad = "given,family,emails,status\nAda,L,not-an-email,active\n,NoGiven,,\nX,Y,,retired\n";
        let problems: Vec<String> = parse_import("p.csv", bad).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("row 2: emails[0].address"), "{problems:?}");
        assert!(problems[1].starts_with("row 3: name.given"), "{problems:?}");
        assert!(problems[2].starts_with("row 4: status"), "{problems:?}");
        assert!(parse_import("p.csv", "given,colour\nA,red\n").unwrap_err()[0].message.contains("unknown column(s) colour"));
        let json = r#"[{"id":"P9","name":{"given":"Lin"},"emails":[{"address":"lin@example.org","type":"official"}]},{"name":{"given":"X"},"nickname":"y"}]"#;
        let problems = parse_import("p.json", json).unwrap_err();
        assert_eq!((problems[0].row, problems[0].message.contains("unknown field `nickname`")), (2, true));
        let dup = r#"[{"id":"P9","name":{"given":"Lin"}},{"id":"P9","name":{"given":"Lin"}}]"#;
        assert!(parse_import("p.json", dup).unwrap_err()[0].message.contains("more than once"));
    }
}
