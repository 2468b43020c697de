//! A person as Salesforce field values. Salesforce's limits are checked here,
//! before anything is sent: a value that is missing or too long is an
//! `invalid-person` error naming the person's attribute, never cut short.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::person::Person;
use crate::settings::{Config, FieldError};
use crate::template::{Missing, Part, Template};

/// Field values for a Contact (COmanage's whole mapping, plus the external
/// id and the admin's extra mappings). Absent optional values are `null`, so
/// an update clears what the registry no longer has.
pub fn contact_fields(config: &Config, person: &Person) -> Result<Map<String, Value>, Error> {
    let mut m = Fields::default();
    let n = &person.name;
    m.put("Salutation", "name.honorific", n.honorific.as_deref(), 40)?;
    m.put("FirstName", "name.given", Some(n.given.as_str()), 40)?;
    if config.provision_middle_name {
        m.put("MiddleName", "name.middle", n.middle.as_deref(), 40)?;
    }
    m.require("LastName", "name.family", n.family.as_deref(), 80, "Salesforce requires a last name for a Contact; add a family name")?;
    m.put("Suffix", "name.suffix", n.suffix.as_deref(), 40)?;
    let email = person.email(config.email_type.as_deref());
    if let Some(e) = email
        && !looks_like_email(e)
    {
        return Err(invalid("emails", format!("'{e}' is not an email address Salesforce accepts")));
    }
    m.put("Email", "emails", email, 80)?;
    let role = person.primary_role().cloned().unwrap_or_default();
    m.put("Department", "roles[0].department", role.department.as_deref(), 80)?;
    m.put("Title", "roles[0].title", role.title.as_deref(), 128)?;
    m.put("Phone", "roles[0].office_phone", role.office_phone.as_deref(), 40)?;
    m.put("MobilePhone", "roles[0].mobile_phone", role.mobile_phone.as_deref(), 40)?;
    let a = role.address.clone().unwrap_or_default();
    let street = join_street(&a);
    m.put("MailingStreet", "roles[0].address.street", street.as_deref(), 255)?;
    m.put("MailingCity", "roles[0].address.locality", a.locality.as_deref(), 40)?;
    m.put("MailingState", "roles[0].address.region", a.region.as_deref(), 80)?;
    m.put("MailingPostalCode", "roles[0].address.postal_code", a.postal_code.as_deref(), 20)?;
    m.put("MailingCountry", "roles[0].address.country", a.country.as_deref(), 80)?;
    if let Some(account) = &config.account_id {
        m.0.insert("AccountId".into(), Value::String(account.clone()));
    }
    common_tail(&mut m, config, person)?;
    Ok(m.0)
}

/// Field values for a User: everything Salesforce requires to create one
/// (Username from the template, a derived Alias and CommunityNickname, the
/// locale settings and the Profile), the person's name, contact details and
/// primary role, the FederationIdentifier, the external id and the extras.
/// `IsActive` is decided by the caller.
pub fn user_fields(config: &Config, person: &Person) -> Result<Map<String, Value>, Error> {
    let Some(u) = &config.user else {
        return Err(Error::config("object", "User settings are missing; choose the User object and give a Profile ID"));
    };
    let mut m = Fields::default();
    let username_attr = template_attribute(&u.username_template);
    let username = u.username_template.render(person).map_err(|missing| {
        invalid(&missing.field(), format!("the Username template {} needs it", u.username_template))
    })?;
    if !looks_like_email(&username) {
        return Err(invalid(&username_attr, format!("the Username '{username}' built from {} must look like an email address", u.username_template)));
    }
    m.put("Username", &username_attr, Some(&username), 80)?;
    let n = &person.name;
    m.put("FirstName", "name.given", Some(n.given.as_str()), 40)?;
    if config.provision_middle_name {
        m.put("MiddleName", "name.middle", n.middle.as_deref(), 40)?;
    }
    m.require("LastName", "name.family", n.family.as_deref(), 80, "Salesforce requires a last name for a User; add a family name")?;
    m.put("Suffix", "name.suffix", n.suffix.as_deref(), 40)?;
    let email = person.email(config.email_type.as_deref());
    if let Some(e) = email
        && !looks_like_email(e)
    {
        return Err(invalid("emails", format!("'{e}' is not an email address Salesforce accepts")));
    }
    m.require("Email", "emails", email, 128, "Salesforce requires an email address for a User; add one")?;
    let text = |v: &str| Value::String(v.to_string());
    m.0.insert("Alias".into(), text(&alias(person)));
    m.0.insert("CommunityNickname".into(), text(&nickname(&username, &person.id)));
    m.0.insert("ProfileId".into(), text(&u.profile_id));
    m.0.insert("TimeZoneSidKey".into(), text(&u.time_zone));
    m.0.insert("LocaleSidKey".into(), text(&u.locale));
    m.0.insert("EmailEncodingKey".into(), text(&u.email_encoding));
    m.0.insert("LanguageLocaleKey".into(), text(&u.language));
    if let Some(kind) = &u.federation_identifier_type {
        let why = format!("single sign-on needs the person's {kind} identifier in FederationIdentifier; add it");
        m.require("FederationIdentifier", &format!("identifiers[{kind}]"), person.identifier(kind), 512, &why)?;
    }
    let role = person.primary_role().cloned().unwrap_or_default();
    m.put("Title", "roles[0].title", role.title.as_deref(), 80)?;
    m.put("Department", "roles[0].department", role.department.as_deref(), 80)?;
    m.put("CompanyName", "roles[0].organization", role.organization.as_deref(), 80)?;
    m.put("Phone", "roles[0].office_phone", role.office_phone.as_deref(), 40)?;
    m.put("MobilePhone", "roles[0].mobile_phone", role.mobile_phone.as_deref(), 40)?;
    let a = role.address.clone().unwrap_or_default();
    m.put("Street", "roles[0].address.street", join_street(&a).as_deref(), 255)?;
    m.put("City", "roles[0].address.locality", a.locality.as_deref(), 40)?;
    m.put("State", "roles[0].address.region", a.region.as_deref(), 80)?;
    m.put("PostalCode", "roles[0].address.postal_code", a.postal_code.as_deref(), 20)?;
    m.put("Country", "roles[0].address.country", a.country.as_deref(), 80)?;
    common_tail(&mut m, config, person)?;
    Ok(m.0)
}

/// The external id and the admin's extra mappings, shared by both objects.
fn common_tail(m: &mut Fields, config: &Config, person: &Person) -> Result<(), Error> {
    if let Some(ext) = &config.external_id_field {
        m.put(ext, "id", Some(person.id.as_str()), 255)?;
    }
    for mapping in &config.field_mappings {
        let value = mapping.template.render(person).map_err(|missing| {
            invalid(&missing.field(), format!("the mapping {}={} needs it", mapping.field, mapping.template))
        })?;
        m.0.insert(mapping.field.clone(), Value::String(value));
    }
    Ok(())
}

/// The fields a "mark" removal sets, from the admin's `Field__c={template}`
/// list.
pub fn mark_fields(mappings: &[crate::settings::FieldMapping], person: &Person) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for mapping in mappings {
        let value = mapping
            .template
            .render(person)
            .map_err(|missing| invalid(&missing.field(), format!("the mark field {}={} needs it", mapping.field, mapping.template)))?;
        out.insert(mapping.field.clone(), Value::String(value));
    }
    Ok(out)
}

/// Street and room on separate lines, as COmanage sends them.
fn join_street(a: &crate::person::Address) -> Option<String> {
    match (a.street.as_deref(), a.room.as_deref()) {
        (Some(s), Some(r)) => Some(format!("{s}\n{r}")),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => None,
    }
}

/// The person attribute a template's first placeholder reads, for errors
/// about the rendered value.
fn template_attribute(t: &Template) -> String {
    t.parts
        .iter()
        .find_map(|p| match p {
            Part::Placeholder(ph) => Some(Missing(ph.clone()).field()),
            Part::Literal(_) => None,
        })
        .unwrap_or_else(|| "id".into())
}

/// `Alias` (at most 8 characters): the given name's initial and the family
/// name, lower-case ASCII; a hash of the id when the name has no ASCII
/// letters. Aliases need not be unique.
pub fn alias(person: &Person) -> String {
    let keep = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect::<String>();
    let given = keep(&person.name.given);
    let family = keep(person.name.family.as_deref().unwrap_or(""));
    let a: String = given.chars().take(1).chain(family.chars()).take(8).collect();
    if a.is_empty() { format!("u{}", &short_hash(&person.id)[..7]) } else { a }
}

/// `CommunityNickname` (at most 40, unique in the org): the Username's local
/// part and a hash of the registry id, so two people with the same local
/// part in different domains never collide.
pub fn nickname(username: &str, id: &str) -> String {
    let local: String = username.split('@').next().unwrap_or(username).chars().take(31).collect();
    format!("{local}.{}", &short_hash(id)[..8])
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, sf: &str, attr: &str, value: Option<&str>, max: usize) -> Result<(), Error> {
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        if let Some(v) = value {
            let len = v.chars().count();
            if len > max {
                return Err(invalid(attr, format!("Salesforce's {sf} holds at most {max} characters and this value has {len}; shorten it in the registry")));
            }
        }
        self.0.insert(sf.to_string(), value.map_or(Value::Null, |v| Value::String(v.to_string())));
        Ok(())
    }

    fn require(&mut self, sf: &str, attr: &str, value: Option<&str>, max: usize, why: &str) -> Result<(), Error> {
        if value.is_none_or(|v| v.trim().is_empty()) {
            return Err(invalid(attr, why.to_string()));
        }
        self.put(sf, attr, value, max)
    }
}

fn invalid(field: &str, message: String) -> Error {
    Error::InvalidPerson(FieldError::new(field, message))
}

/// The shape Salesforce accepts: one `@`, no spaces, a dotted domain.
///
/// The host has its own check (`host/src/domain/person.rs`), by design: a
/// plugin shares nothing with the host but the WIT, and checks what its own
/// service accepts, whatever the registry let through.
pub fn looks_like_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    !local.is_empty() && !domain.contains('@') && !v.contains(char::is_whitespace) && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::person::{Address, Email, Identifier, Name, Role, Status};
    use serde_json::json;

    fn person() -> Person {
        Person {
            id: "P-1".into(),
            status: Status::Active,
            name: Name { honorific: Some("Dr.".into()), given: "Grace".into(), middle: Some("Brewster".into()), family: Some("Hopper".into()), suffix: None },
            emails: vec![
                Email { address: "grace@home.example".into(), kind: "personal".into(), verified: true },
                Email { address: "grace@navy.example".into(), kind: "official".into(), verified: true },
            ],
            identifiers: vec![Identifier { kind: "eppn".into(), value: "ghopper@navy.example".into() }],
            roles: vec![Role {
                affiliation: "staff".into(),
                title: Some("Rear Admiral".into()),
                department: Some("Computing".into()),
                office_phone: Some("+1 555 0100".into()),
                address: Some(Address { street: Some("1 Navy Way".into()), room: Some("Room 42".into()), locality: Some("Arlington".into()), ..Default::default() }),
                ..Default::default()
            }],
        }
    }

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut values: Vec<(String, String)> = vec![("object".into(), "Contact".into())];
        values.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::parse(&values).unwrap()
    }

    #[test]
    fn contacts_get_comanage_s_mapping_and_the_extras() {
        let c = config(&[("email_type", "official"), ("provision_middle_name", "true"), ("external_id_field", "Registry_ID__c"), ("field_mappings", "ePPN__c={identifier:eppn}")]);
        let f = contact_fields(&c, &person()).unwrap();
        assert_eq!(f["Salutation"], "Dr.");
        assert_eq!(f["FirstName"], "Grace");
        assert_eq!(f["MiddleName"], "Brewster");
        assert_eq!(f["LastName"], "Hopper");
        assert_eq!(f["Email"], "grace@navy.example", "the preferred type wins");
        assert_eq!(f["Title"], "Rear Admiral");
        assert_eq!(f["MailingStreet"], "1 Navy Way\nRoom 42");
        assert_eq!(f["MailingCountry"], Value::Null, "absent values clear the field");
        assert_eq!(f["Registry_ID__c"], "P-1");
        assert_eq!(f["ePPN__c"], "ghopper@navy.example");
        let plain = contact_fields(&config(&[("email_type", "delivery")]), &person()).unwrap();
        assert!(plain.get("MiddleName").is_none(), "middle names only when enabled");
        assert_eq!(plain["Email"], "grace@home.example", "no email of that type: the first email");
        assert_eq!(plain.get("AccountId"), None);
    }

    #[test]
    fn missing_or_too_long_values_name_the_attribute() {
        let mut p = person();
        p.name.family = None;
        assert!(matches!(contact_fields(&config(&[]), &p), Err(Error::InvalidPerson(f)) if f.field == "name.family"));
        let mut p = person();
        p.name.given = "G".repeat(41);
        match contact_fields(&config(&[]), &p) {
            Err(Error::InvalidPerson(f)) => {
                assert_eq!(f.field, "name.given");
                assert!(f.message.contains("FirstName holds at most 40 characters and this value has 41"), "{}", f.message);
            }
            other => panic!("{other:?}"),
        }
        let mut p = person();
        p.emails = vec![Email { address: "not an email".into(), kind: "official".into(), verified: false }];
        assert!(matches!(contact_fields(&config(&[]), &p), Err(Error::InvalidPerson(f)) if f.field == "emails"));
        let c = config(&[("field_mappings", "ORCID__c={identifier:orcid}")]);
        assert!(matches!(contact_fields(&c, &person()), Err(Error::InvalidPerson(f)) if f.field == "identifiers[orcid]"));
        assert_eq!(json!(contact_fields(&config(&[]), &person()).unwrap()["LastName"]), json!("Hopper"));
    }
}
