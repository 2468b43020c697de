//! People as SCIM Users: the core schema and the enterprise extension
//! mapped from the registry's person, created, replaced, deactivated or
//! deleted, with `externalId` the registry id, and existing Users (by
//! `externalId`, then `userName`) taken over instead of duplicated.

use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::scim::{Error, Service, is_gone};
use crate::settings::{Config, UserName};

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

pub use registry_guest::person::{Person, Status};

/// Why a person is provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sent as they are (added, updated, unexpired, grace period, again).
    Sync,
    /// Expired or suspended: deactivated.
    Deactivate,
    /// Deleted, or out of the target's scope.
    Remove,
}

/// The person's userName under `config`, or why there is none.
pub fn user_name(config: &Config, p: &Person) -> Result<String, String> {
    let value = match config.user_name {
        UserName::Email => p.email(Some("official")).map(str::to_string),
        UserName::Eppn => p.identifier("eppn").map(str::to_string),
        UserName::Id => Some(p.id.clone()),
    };
    value.filter(|v| !v.is_empty()).ok_or_else(|| match config.user_name {
        UserName::Email => "the person has no email for the SCIM userName; add one, or take userName from another setting".into(),
        UserName::Eppn => "the person has no eppn identifier for the SCIM userName; add one, or take userName from another setting".into(),
        UserName::Id => "the person has no id".into(),
    })
}

/// Whether the person's User is active: active, or in the grace period.
pub fn is_active(p: &Person) -> bool {
    matches!(p.status, Status::Active | Status::GracePeriod)
}

/// The SCIM User for `p` (a full resource, for POST and PUT), with the
/// target's attribute mappings applied last.
pub fn to_user(config: &Config, p: &Person, active: bool) -> Result<Value, String> {
    let n = &p.name;
    if n.given.trim().is_empty() && n.family.as_deref().unwrap_or_default().trim().is_empty() {
        return Err("a SCIM User needs a name; give the person a given or a family name".into());
    }
    let mut name = Map::new();
    let given = Some(n.given.clone()).filter(|g| !g.is_empty());
    for (key, v) in [("honorificPrefix", &n.honorific), ("givenName", &given), ("middleName", &n.middle), ("familyName", &n.family), ("honorificSuffix", &n.suffix)] {
        if let Some(v) = v {
            name.insert(key.into(), json!(v));
        }
    }
    let formatted: Vec<&str> = [&given, &n.middle, &n.family].into_iter().flatten().map(String::as_str).collect();
    name.insert("formatted".into(), json!(formatted.join(" ")));
    let emails: Vec<Value> = p
        .emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"value": e.address, "type": if e.kind == "official" { "work" } else { "other" }, "primary": i == 0}))
        .collect();
    let mut user = json!({
        "schemas": [CORE],
        "externalId": p.id,
        "userName": user_name(config, p)?,
        "name": name,
        "displayName": formatted.join(" "),
        "active": active,
    });
    if !emails.is_empty() {
        user["emails"] = json!(emails);
    }
    let mut enterprise = Map::new();
    if let Some(v) = p.identifier("employee") {
        enterprise.insert("employeeNumber".into(), json!(v));
    }
    if let Some(r) = p.primary_role() {
        let phones: Vec<Value> = [(&r.office_phone, "work"), (&r.mobile_phone, "mobile")].into_iter().filter_map(|(v, t)| v.as_ref().map(|v| json!({"value": v, "type": t}))).collect();
        if !phones.is_empty() {
            user["phoneNumbers"] = json!(phones);
        }
        if let Some(t) = &r.title {
            user["title"] = json!(t);
        }
        if let Some(a) = &r.address {
            let mut address = Map::new();
            for (key, v) in [("streetAddress", &a.street), ("locality", &a.locality), ("region", &a.region), ("postalCode", &a.postal_code), ("country", &a.country)] {
                if let Some(v) = v {
                    address.insert(key.into(), json!(v));
                }
            }
            if !address.is_empty() {
                address.insert("type".into(), json!("work"));
                user["addresses"] = json!([address]);
            }
        }
        for (key, v) in [("organization", &r.organization), ("department", &r.department)] {
            if let Some(v) = v {
                enterprise.insert(key.into(), json!(v));
            }
        }
    }
    if !enterprise.is_empty() {
        user[ENTERPRISE] = Value::Object(enterprise);
    }
    for (path, template) in &config.mappings {
        let value = template.render(p).map(Value::String).unwrap_or(Value::Null);
        set_path(&mut user, path, value);
    }
    // Every extension schema the User carries is named.
    let mut schemas = vec![json!(CORE)];
    if let Some(o) = user.as_object() {
        schemas.extend(o.keys().filter(|k| k.starts_with("urn:")).map(|k| json!(k)));
    }
    user["schemas"] = Value::Array(schemas);
    Ok(user)
}

/// Sets `path` in `user`: an attribute (`title`), a sub-attribute
/// (`name.familyName`), or an extension's (`urn:...:User:costCenter`);
/// `null` takes it out.
fn set_path(user: &mut Value, path: &str, value: Value) {
    let (mut node, rest): (&mut Value, &str) = match path.strip_prefix("urn:").and_then(|_| path.rsplit_once(':')) {
        Some((schema, attr)) => (user.as_object_mut().expect("a User is an object").entry(schema.to_string()).or_insert_with(|| json!({})), attr),
        None => (user, path),
    };
    let parts: Vec<&str> = rest.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !node[*part].is_object() {
            node[*part] = json!({});
        }
        node = &mut node[*part];
    }
    let last = parts[parts.len() - 1];
    match (value, node.as_object_mut()) {
        (Value::Null, Some(o)) => {
            o.remove(last);
        }
        (v, Some(o)) => {
            o.insert(last.to_string(), v);
        }
        _ => {}
    }
}

/// Updates User `id` to `user`: a replace (PUT), or, when the settings say
/// `auto` and the service takes them, a PATCH that replaces only what the
/// plugin manages (attributes the service or others set stay), sent with
/// `If-Match` when the service has ETags. What it did, for the summary.
fn update(svc: &mut Service<'_>, config: &Config, id: &str, user: &Value) -> Result<&'static str, Error> {
    let path = format!("/Users/{id}");
    if !config.auto_updates {
        svc.call("PUT", &path, Some(user))?;
        return Ok("replaced");
    }
    let features = svc.features()?;
    let body = if features.patch {
        let mut value = user.clone();
        if let Some(o) = value.as_object_mut() {
            o.remove("schemas");
        }
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": value}]})
    } else {
        user.clone()
    };
    let method = if features.patch { "PATCH" } else { "PUT" };
    if features.etag {
        let current = svc.call("GET", &path, None)?;
        if let Some(version) = current["meta"]["version"].as_str() {
            svc.call_if_match(method, &path, &body, version)?;
            return Ok(if features.patch { "patched" } else { "replaced" });
        }
    }
    svc.call(method, &path, Some(&body))?;
    Ok(if features.patch { "patched" } else { "replaced" })
}

/// Provisions `p` for `action`; `current` is the User made for them
/// earlier, if any.
pub fn provision(svc: &mut Service<'_>, config: &Config, p: &Person, action: Action, current: Option<&str>) -> Result<Outcome, Error> {
    let invalid = |m: String| Error::InvalidPerson(if m.contains("email") { "emails" } else if m.contains("eppn") { "identifiers" } else { "name.given" }.into(), m);
    if action == Action::Remove && config.delete_on_remove {
        let Some(id) = current else {
            return Ok(Outcome { remote: None, summary: "no SCIM User to delete".into(), removed: true });
        };
        return match svc.call("DELETE", &format!("/Users/{id}"), None) {
            Ok(_) => Ok(Outcome { remote: None, summary: format!("deleted User {id}"), removed: true }),
            Err(e) if is_gone(&e) => Ok(Outcome { remote: None, summary: format!("User {id} was already deleted in the service"), removed: true }),
            Err(e) => Err(e),
        };
    }
    let active = action == Action::Sync && is_active(p);
    if action == Action::Remove && current.is_none() {
        return Ok(Outcome { remote: None, summary: "no SCIM User to deactivate".into(), removed: true });
    }
    let user = to_user(config, p, active).map_err(invalid)?;
    let removed = !active;
    let verb = if active { "" } else { " (inactive)" };
    // The User made earlier: updated; gone from the service, made again.
    if let Some(id) = current {
        match update(svc, config, id, &user) {
            Ok(how) => return Ok(Outcome { remote: Some(("User".into(), id.to_string())), summary: format!("{how} User {id}{verb}"), removed }),
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if config.match_existing {
        let found = match svc.find("/Users", "externalId", &p.id)? {
            Some(u) => Some((u, "externalId")),
            None => svc.find("/Users", "userName", user["userName"].as_str().unwrap_or_default())?.map(|u| (u, "userName")),
        };
        if let Some((existing, by)) = found {
            let id = existing["id"].as_str().unwrap_or_default().to_string();
            svc.call("PUT", &format!("/Users/{id}"), Some(&user))?;
            return Ok(Outcome { remote: Some(("User".into(), id.clone())), summary: format!("matched existing User {id} by {by}{verb}"), removed });
        }
    }
    let made = svc.call("POST", "/Users", Some(&user))?;
    let id = made["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| Error::Remote { code: "malformed-response".into(), message: "the new User has no id".into(), status: None, retryable: false })?;
    Ok(Outcome { remote: Some(("User".into(), id.to_string())), summary: format!("created User {id}{verb}"), removed })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use registry_guest::fake::{Fake, reply};

    /// The tests' usual person.
    pub(crate) fn ada() -> Person {
        use registry_guest::person::{Email, Identifier, Name, Role};
        Person {
            id: "R1".into(),
            status: Status::Active,
            name: Name { honorific: Some("Dr.".into()), given: "Ada".into(), middle: None, family: Some("Lovelace".into()), suffix: None },
            emails: vec![Email { address: "ada@example.org".into(), kind: "official".into(), verified: true }],
            identifiers: vec![Identifier { kind: "employee".into(), value: "E42".into() }],
            roles: vec![Role { affiliation: "staff".into(), title: Some("Analyst".into()), department: Some("Engines".into()), mobile_phone: Some("+1 555 0101".into()), ..Role::default() }],
        }
    }

    fn config() -> Config {
        Config::parse(&[]).unwrap()
    }

    #[test]
    fn a_person_maps_to_the_core_user_and_the_enterprise_extension() {
        let u = to_user(&config(), &ada(), true).unwrap();
        assert_eq!(u["userName"], "ada@example.org");
        assert_eq!(u["externalId"], "R1");
        assert_eq!(u["name"]["honorificPrefix"], "Dr.");
        assert_eq!(u["name"]["formatted"], "Ada Lovelace");
        assert_eq!(u["emails"][0], json!({"value": "ada@example.org", "type": "work", "primary": true}));
        assert_eq!(u["phoneNumbers"][0]["type"], "mobile");
        assert_eq!(u[ENTERPRISE]["department"], "Engines");
        assert_eq!(u[ENTERPRISE]["employeeNumber"], "E42");
        let no_mail = Person { emails: vec![], ..ada() };
        assert!(to_user(&config(), &no_mail, true).unwrap_err().contains("no email"));

        // Mappings: set, nest, extend, and take out.
        let mapped = Config::parse(&[("attribute_mappings".to_string(), "nickName={given}; name.familyName={family}-{identifier:employee}; urn:example:ext:2.0:User:costCenter={identifier:employee}; title={identifier:none}".to_string())]).unwrap();
        let u = to_user(&mapped, &ada(), true).unwrap();
        assert_eq!(u["nickName"], "Ada");
        assert_eq!(u["name"]["familyName"], "Lovelace-E42");
        assert_eq!(u["urn:example:ext:2.0:User"]["costCenter"], "E42");
        assert!(u["schemas"].as_array().unwrap().iter().any(|s| s == "urn:example:ext:2.0:User"));
        assert!(u.get("title").is_none(), "a template with nothing to show takes the attribute out");
    }

    #[test]
    fn an_existing_user_is_taken_over_instead_of_duplicated() {
        let found = reply(200, json!({"totalResults": 1, "Resources": [{"id": "u-9", "userName": "ada@example.org"}]}));
        let mut t = Fake::new(vec![reply(200, json!({"totalResults": 0, "Resources": []})), found, reply(200, json!({"id": "u-9"}))]);
        let mut svc = Service::new(&mut t, "https://scim.example/v2/", "tok");
        let o = provision(&mut svc, &config(), &ada(), Action::Sync, None).unwrap();
        assert_eq!(o, Outcome { remote: Some(("User".into(), "u-9".into())), summary: "matched existing User u-9 by userName".into(), removed: false });
        assert!(t.sent[0].url.starts_with("https://scim.example/v2/Users?filter=externalId%20eq%20%22R1%22"), "{}", t.sent[0].url);
        assert_eq!((t.sent[2].method, t.sent[2].url.as_str()), ("PUT", "https://scim.example/v2/Users/u-9"));
        assert!(t.sent[2].headers.iter().any(|(k, v)| k == "Authorization" && v == "Bearer tok"));
    }

    #[test]
    fn an_update_patches_with_if_match_where_the_service_allows_and_a_changed_user_is_said_so() {
        let spc = || reply(200, json!({"patch": {"supported": true}, "etag": {"supported": true}}));
        let mut t = Fake::new(vec![spc(), reply(200, json!({"id": "u-1", "meta": {"version": "W/\"3\""}})), reply(200, json!({"id": "u-1"}))]);
        let o = provision(&mut Service::new(&mut t, "https://s/v2", "t"), &config(), &ada(), Action::Sync, Some("u-1")).unwrap();
        assert_eq!(o.summary, "patched User u-1");
        assert_eq!(t.sent[2].method, "PATCH");
        assert!(t.sent[2].headers.iter().any(|(k, v)| k == "If-Match" && v == "W/\"3\""));
        let body: Value = serde_json::from_slice(&t.sent[2].body).unwrap();
        assert_eq!(body["Operations"][0]["op"], "replace");
        assert_eq!(body["Operations"][0]["value"]["userName"], "ada@example.org");
        let mut t = Fake::new(vec![spc(), reply(200, json!({"id": "u-1", "meta": {"version": "W/\"3\""}})), reply(412, json!({"detail": "mismatch"}))]);
        let e = provision(&mut Service::new(&mut t, "https://s/v2", "t"), &config(), &ada(), Action::Sync, Some("u-1")).unwrap_err();
        assert!(matches!(e, Error::Remote { ref code, retryable: true, .. } if code == "precondition-failed"), "{e:?}");
    }

    #[test]
    fn a_removal_deactivates_or_deletes_by_setting_and_a_user_deleted_in_the_service_is_made_again() {
        let put = Config { auto_updates: false, ..config() };
        let mut t = Fake::new(vec![reply(200, json!({"id": "u-1"}))]);
        let o = provision(&mut Service::new(&mut t, "https://s/v2", "t"), &put, &ada(), Action::Remove, Some("u-1")).unwrap();
        assert!(o.removed && o.summary == "replaced User u-1 (inactive)");
        let body: Value = serde_json::from_slice(&t.sent[0].body).unwrap();
        assert_eq!(body["active"], false);
        let delete = Config { delete_on_remove: true, ..config() };
        let mut t = Fake::new(vec![reply(404, json!({"status": "404", "detail": "no such user"}))]);
        let o = provision(&mut Service::new(&mut t, "https://s/v2", "t"), &delete, &ada(), Action::Remove, Some("u-1")).unwrap();
        assert_eq!(o.remote, None);
        assert!(o.summary.contains("already deleted"), "{}", o.summary);
        let mut t = Fake::new(vec![reply(404, json!({"detail": "gone"})), reply(200, json!({"Resources": []})), reply(200, json!({"Resources": []})), reply(201, json!({"id": "u-2"}))]);
        let o = provision(&mut Service::new(&mut t, "https://s/v2", "t"), &put, &ada(), Action::Sync, Some("u-1")).unwrap();
        assert_eq!(o.summary, "created User u-2");
    }
}
