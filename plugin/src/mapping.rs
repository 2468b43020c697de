//! A person as Salesforce field values. Salesforce's limits are checked here,
//! before anything is sent: a value that is missing or too long is an
//! `invalid-person` error naming the person's attribute, never cut short.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::person::Person;
use crate::settings::{Config, FieldError};

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
    let street = match (a.street.as_deref(), a.room.as_deref()) {
        (Some(s), Some(r)) => Some(format!("{s}\n{r}")),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => None,
    };
    m.put("MailingStreet", "roles[0].address.street", street.as_deref(), 255)?;
    m.put("MailingCity", "roles[0].address.locality", a.locality.as_deref(), 40)?;
    m.put("MailingState", "roles[0].address.region", a.region.as_deref(), 80)?;
    m.put("MailingPostalCode", "roles[0].address.postal_code", a.postal_code.as_deref(), 20)?;
    m.put("MailingCountry", "roles[0].address.country", a.country.as_deref(), 80)?;
    if let Some(account) = &config.account_id {
        m.0.insert("AccountId".into(), Value::String(account.clone()));
    }
    if let Some(ext) = &config.external_id_field {
        m.put(ext, "id", Some(person.id.as_str()), 255)?;
    }
    for mapping in &config.field_mappings {
        let value = mapping.template.render(person).map_err(|missing| {
            invalid(&missing.field(), format!("the mapping {}={} needs it", mapping.field, mapping.template))
        })?;
        m.0.insert(mapping.field.clone(), Value::String(value));
    }
    Ok(m.0)
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
