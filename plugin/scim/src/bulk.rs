//! Many people at once: through `/Bulk` when the service's
//! `ServiceProviderConfig` advertises it, in requests of at most its
//! `maxOperations` and `maxPayloadSize`; otherwise one request per person.
//! People who must be looked for first (no User yet, matching on) go one by
//! one either way.

use serde_json::{Value, json};

use crate::Outcome;
use crate::scim::{Error, Service};
use crate::settings::Config;
use crate::user::{self, Action, Person};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// One person of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The person.
    pub person: Person,
    /// Why.
    pub action: Action,
    /// Their User, if they have one.
    pub current: Option<String>,
}

/// What one bulk operation is for: the item, and what its success means.
struct Op {
    item: usize,
    body: Value,
    summary: &'static str,
    removed: bool,
}

/// Provisions `items`: one result per item, in order.
pub fn provision_batch(svc: &mut Service<'_>, config: &Config, items: &[Item]) -> Result<Vec<Result<Outcome, Error>>, Error> {
    let spc = svc.call("GET", "/ServiceProviderConfig", None)?;
    let bulk = &spc["bulk"];
    let one_by_one = |svc: &mut Service<'_>, it: &Item| user::provision(svc, config, &it.person, it.action, it.current.as_deref());
    if bulk["supported"].as_bool() != Some(true) {
        return Ok(items.iter().map(|it| one_by_one(svc, it)).collect());
    }
    let max_ops = bulk["maxOperations"].as_u64().filter(|n| *n > 0).unwrap_or(100) as usize;
    let max_bytes = bulk["maxPayloadSize"].as_u64().filter(|n| *n > 0).unwrap_or(1 << 20) as usize;
    let mut results: Vec<Option<Result<Outcome, Error>>> = vec![None; items.len()];
    let mut ops = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let lookup = it.current.is_none() && (config.match_existing || it.action == Action::Remove);
        if lookup {
            results[i] = Some(one_by_one(svc, it));
            continue;
        }
        let active = it.action == Action::Sync && user::is_active(&it.person);
        let op = match (&it.current, it.action == Action::Remove && config.delete_on_remove) {
            (Some(id), true) => Op { item: i, body: json!({"method": "DELETE", "path": format!("/Users/{id}")}), summary: "deleted", removed: true },
            (current, false) => match user::to_user(config, &it.person, active) {
                Ok(data) => match current {
                    Some(id) => Op { item: i, body: json!({"method": "PUT", "path": format!("/Users/{id}"), "data": data}), summary: "replaced", removed: !active },
                    None => Op { item: i, body: json!({"method": "POST", "path": "/Users", "bulkId": format!("p{i}"), "data": data}), summary: "created", removed: !active },
                },
                Err(m) => {
                    results[i] = Some(Err(Error::InvalidPerson("name.given".into(), m)));
                    continue;
                }
            },
            (None, true) => {
                results[i] = Some(Ok(Outcome { remote: None, summary: "no SCIM User to delete".into(), removed: true }));
                continue;
            }
        };
        ops.push(op);
    }
    // Requests of at most max_ops operations and (with room for the
    // envelope) max_bytes.
    let mut chunks: Vec<Vec<Op>> = Vec::new();
    let mut size = 0;
    for op in ops {
        let bytes = serde_json::to_vec(&op.body).map(|b| b.len()).unwrap_or(0) + 1;
        if chunks.last().is_none_or(|c| c.len() >= max_ops || size + bytes > max_bytes - 512) {
            chunks.push(Vec::new());
            size = 0;
        }
        size += bytes;
        chunks.last_mut().expect("just pushed").push(op);
    }
    for chunk in chunks {
        let operations: Vec<&Value> = chunk.iter().map(|o| &o.body).collect();
        let answer = svc.call("POST", "/Bulk", Some(&json!({"schemas": [BULK_REQUEST], "Operations": operations})))?;
        let answered = answer["Operations"].as_array().cloned().unwrap_or_default();
        for (k, op) in chunk.iter().enumerate() {
            let it = &items[op.item];
            let got = answered.get(k);
            let status: u16 = got.and_then(|g| g["status"].as_str().and_then(|s| s.parse().ok()).or(g["status"].as_u64().map(|s| s as u16))).unwrap_or(0);
            results[op.item] = Some(match status {
                200..=299 => {
                    let id = match &it.current {
                        Some(id) => id.clone(),
                        None => got.and_then(|g| g["location"].as_str()).and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_string(),
                    };
                    let inactive = if op.removed && op.summary != "deleted" { " (inactive)" } else { "" };
                    let remote = (op.summary != "deleted").then(|| ("User".to_string(), id.clone()));
                    Ok(Outcome { remote, summary: format!("{} User {id}{inactive} (SCIM bulk)", op.summary), removed: op.removed })
                }
                // Gone from the service: made again, one by one.
                404 if op.summary == "replaced" => one_by_one(svc, &Item { current: None, ..it.clone() }),
                404 => Ok(Outcome { remote: None, summary: "the User was already deleted in the service".into(), removed: true }),
                0 => Err(Error::Remote { code: "bulk".into(), message: "the service's bulk answer has no status for this operation".into(), status: None, retryable: true }),
                s => {
                    let r = &got.expect("a status came from it")["response"];
                    let code = r["scimType"].as_str().map_or_else(|| format!("http-{s}"), str::to_string);
                    let message = r["detail"].as_str().unwrap_or("refused in a bulk request").to_string();
                    Err(if s == 401 { Error::Unauthorized(message) } else { Error::Remote { code, message, status: Some(s), retryable: s >= 500 } })
                }
            });
        }
    }
    Ok(results.into_iter().map(|r| r.expect("every item is answered")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::tests::ada;
    use registry_guest::fake::{Fake, reply};

    fn item(i: usize, current: Option<&str>) -> Item {
        let email = registry_guest::person::Email { address: format!("p{i}@example.org"), kind: "official".into(), verified: true };
        Item { person: Person { id: format!("R{i}"), emails: vec![email], ..ada() }, action: Action::Sync, current: current.map(str::to_string) }
    }

    #[test]
    fn a_batch_goes_in_bulk_requests_within_the_services_limits() {
        let config = Config { match_existing: false, ..Config::parse(&[]).unwrap() };
        let items: Vec<Item> = (0..5).map(|i| item(i, if i == 4 { Some("u-4") } else { None })).collect();
        let spc = reply(200, json!({"bulk": {"supported": true, "maxOperations": 2, "maxPayloadSize": 1048576}}));
        let created = |a: &str, b: &str| reply(200, json!({"Operations": [{"status": "201", "location": format!("https://s/v2/Users/{a}")}, {"status": "201", "location": format!("https://s/v2/Users/{b}")}]}));
        let last = reply(200, json!({"Operations": [{"status": "409", "response": {"scimType": "uniqueness", "detail": "taken"}}]}));
        let mut t = Fake::new(vec![spc, created("a", "b"), created("c", "d"), last]);
        let results = provision_batch(&mut Service::new(&mut t, "https://s/v2", "t"), &config, &items).unwrap();
        assert_eq!(t.sent.len(), 4, "the configuration and three bulk requests of at most 2");
        assert_eq!(results[0].as_ref().unwrap().remote, Some(("User".into(), "a".into())));
        assert_eq!(results[3].as_ref().unwrap().summary, "created User d (SCIM bulk)");
        assert!(matches!(&results[4], Err(Error::Remote { code, .. }) if code == "uniqueness"));
        let body: Value = serde_json::from_slice(&t.sent[3].body).unwrap();
        assert_eq!(body["Operations"][0]["method"], "PUT");

        // Without bulk: one request per person.
        let mut t = Fake::new(vec![reply(200, json!({"bulk": {"supported": false}})), reply(201, json!({"id": "x"}))]);
        let results = provision_batch(&mut Service::new(&mut t, "https://s/v2", "t"), &config, &items[..1]).unwrap();
        assert_eq!(results[0].as_ref().unwrap().summary, "created User x");
    }
}
