//! A registry person as the plugin's logic sees it (mirrors the WIT
//! `person`), with the lookups the mappings need.

/// Lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Active.
    Active,
    /// In a grace period.
    GracePeriod,
    /// Suspended.
    Suspended,
    /// Expired.
    Expired,
    /// Deleted.
    Deleted,
}

impl Status {
    /// The status as templates show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::GracePeriod => "grace-period",
            Status::Suspended => "suspended",
            Status::Expired => "expired",
            Status::Deleted => "deleted",
        }
    }
}

/// A name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name {
    /// e.g. "Dr."
    pub honorific: Option<String>,
    /// Given name.
    pub given: String,
    /// Middle name.
    pub middle: Option<String>,
    /// Family name.
    pub family: Option<String>,
    /// e.g. "Jr."
    pub suffix: Option<String>,
}

/// An email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The address.
    pub address: String,
    /// Its type, e.g. "official".
    pub kind: String,
    /// Whether it was verified.
    pub verified: bool,
}

/// An identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    /// Its type, e.g. "eppn".
    pub kind: String,
    /// The value.
    pub value: String,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// Street.
    pub street: Option<String>,
    /// Room or office.
    pub room: Option<String>,
    /// City.
    pub locality: Option<String>,
    /// State or region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country.
    pub country: Option<String>,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Role {
    /// e.g. "staff".
    pub affiliation: String,
    /// Job title.
    pub title: Option<String>,
    /// Organization.
    pub organization: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Office phone.
    pub office_phone: Option<String>,
    /// Mobile phone.
    pub mobile_phone: Option<String>,
    /// Postal address.
    pub address: Option<Address>,
}

/// A person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Registry id.
    pub id: String,
    /// Status.
    pub status: Status,
    /// Name.
    pub name: Name,
    /// Emails, in the registry's order.
    pub emails: Vec<Email>,
    /// Identifiers.
    pub identifiers: Vec<Identifier>,
    /// Roles; the first is the primary one.
    pub roles: Vec<Role>,
}

impl Person {
    /// The first email of `kind`, else (or without a kind) the first email,
    /// as COmanage chooses it.
    pub fn email(&self, kind: Option<&str>) -> Option<&str> {
        kind.and_then(|k| self.emails.iter().find(|e| e.kind.eq_ignore_ascii_case(k)))
            .or_else(|| self.emails.first())
            .map(|e| e.address.as_str())
    }

    /// The first identifier of `kind`.
    pub fn identifier(&self, kind: &str) -> Option<&str> {
        self.identifiers.iter().find(|i| i.kind.eq_ignore_ascii_case(kind)).map(|i| i.value.as_str())
    }

    /// The primary role.
    pub fn primary_role(&self) -> Option<&Role> {
        self.roles.first()
    }
}

/// A [`Person`] from the WIT `person` of a plugin's own bindings (each
/// plugin generates its own, so the types differ while the fields do not):
/// `person_from_wit!(p, PersonStatus)`, with the bindings' status enum.
#[macro_export]
macro_rules! person_from_wit {
    ($p:expr, $status:ident) => {{
        use $crate::person as plain;
        let p = $p;
        plain::Person {
            id: p.id,
            status: match p.status {
                $status::Active => plain::Status::Active,
                $status::GracePeriod => plain::Status::GracePeriod,
                $status::Suspended => plain::Status::Suspended,
                $status::Expired => plain::Status::Expired,
                $status::Deleted => plain::Status::Deleted,
            },
            name: plain::Name { honorific: p.name.honorific, given: p.name.given, middle: p.name.middle, family: p.name.family, suffix: p.name.suffix },
            emails: p.emails.into_iter().map(|e| plain::Email { address: e.address, kind: e.kind, verified: e.verified }).collect(),
            identifiers: p.identifiers.into_iter().map(|i| plain::Identifier { kind: i.kind, value: i.value }).collect(),
            roles: p
                .roles
                .into_iter()
                .map(|r| plain::Role {
                    affiliation: r.affiliation,
                    title: r.title,
                    organization: r.organization,
                    department: r.department,
                    office_phone: r.office_phone,
                    mobile_phone: r.mobile_phone,
                    address: r.address.map(|a| plain::Address { street: a.street, room: a.room, locality: a.locality, region: a.region, postal_code: a.postal_code, country: a.country }),
                })
                .collect(),
        }
    }};
}
