//! Registry groups as SCIM Groups: made (or an existing one with the same
//! `externalId` or `displayName` taken over), renamed, deleted, and their
//! members set with PATCH `add`/`remove` of `members` when the service
//! takes PATCH, else by replacing the whole group.

use serde_json::{Value, json};

use crate::Outcome;
use crate::scim::{Error, Service, is_gone};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A group to provision (the WIT `group-request`, members as their SCIM
/// User ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRequest {
    /// Whether the group is deleted (or out of the target's scope).
    pub delete: bool,
    /// The registry's id: the Group's `externalId`.
    pub id: String,
    /// Its name: the Group's `displayName`.
    pub name: String,
    /// Every member's User id.
    pub members: Vec<String>,
    /// Users who joined since the group was last sent.
    pub added: Vec<String>,
    /// Users who left since then.
    pub removed: Vec<String>,
    /// The Group made earlier.
    pub current: Option<String>,
}

fn full(req: &GroupRequest) -> Value {
    let members: Vec<Value> = req.members.iter().map(|m| json!({"value": m})).collect();
    json!({"schemas": [GROUP], "externalId": req.id, "displayName": req.name, "members": members})
}

/// Provisions one group.
pub fn provision_group(svc: &mut Service<'_>, req: &GroupRequest) -> Result<Outcome, Error> {
    if req.delete {
        let Some(id) = &req.current else {
            return Ok(Outcome { remote: None, summary: "no SCIM Group to delete".into(), removed: true });
        };
        return match svc.call("DELETE", &format!("/Groups/{id}"), None) {
            Ok(_) => Ok(Outcome { remote: None, summary: format!("deleted Group {id}"), removed: true }),
            Err(e) if is_gone(&e) => Ok(Outcome { remote: None, summary: format!("Group {id} was already deleted in the service"), removed: true }),
            Err(e) => Err(e),
        };
    }
    let outcome = |id: &str, what: String| Ok(Outcome { remote: Some(("Group".into(), id.to_string())), summary: what, removed: false });
    if let Some(id) = &req.current {
        let result = if svc.supports_patch()? {
            let mut ops = vec![json!({"op": "replace", "path": "displayName", "value": req.name})];
            if !req.added.is_empty() {
                ops.push(json!({"op": "add", "path": "members", "value": req.added.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()}));
            }
            for m in &req.removed {
                ops.push(json!({"op": "remove", "path": format!("members[value eq \"{m}\"]")}));
            }
            svc.call("PATCH", &format!("/Groups/{id}"), Some(&json!({"schemas": [PATCH_OP], "Operations": ops})))
        } else {
            svc.call("PUT", &format!("/Groups/{id}"), Some(&full(req)))
        };
        match result {
            Ok(_) => return outcome(id, format!("updated Group {id}: {} members added, {} removed", req.added.len(), req.removed.len())),
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let existing = match svc.find("/Groups", "externalId", &req.id)? {
        Some(g) => Some(g),
        None => svc.find("/Groups", "displayName", &req.name)?,
    };
    if let Some(g) = existing {
        let id = g["id"].as_str().unwrap_or_default().to_string();
        svc.call("PUT", &format!("/Groups/{id}"), Some(&full(req)))?;
        return outcome(&id, format!("matched existing Group {id}, {} members", req.members.len()));
    }
    let made = svc.call("POST", "/Groups", Some(&full(req)))?;
    let id = made["id"].as_str().unwrap_or_default().to_string();
    outcome(&id, format!("created Group {id}, {} members", req.members.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_guest::fake::{Fake, reply};

    fn req() -> GroupRequest {
        GroupRequest { delete: false, id: "g1".into(), name: "Lab".into(), members: vec!["u1".into(), "u2".into()], added: vec!["u2".into()], removed: vec!["u3".into()], current: Some("G-1".into()) }
    }

    #[test]
    fn members_change_by_patch_when_the_service_takes_it_else_by_a_full_replace() {
        let mut t = Fake::new(vec![reply(200, json!({"patch": {"supported": true}})), reply(204, Value::Null)]);
        let o = provision_group(&mut Service::new(&mut t, "https://s/v2", "t"), &req()).unwrap();
        assert_eq!(o.summary, "updated Group G-1: 1 members added, 1 removed");
        let patch: Value = serde_json::from_slice(&t.sent[1].body).unwrap();
        assert_eq!(patch["Operations"][1], json!({"op": "add", "path": "members", "value": [{"value": "u2"}]}));
        assert_eq!(patch["Operations"][2]["path"], "members[value eq \"u3\"]");
        let mut t = Fake::new(vec![reply(200, json!({"patch": {"supported": false}})), reply(200, json!({"id": "G-1"}))]);
        provision_group(&mut Service::new(&mut t, "https://s/v2", "t"), &req()).unwrap();
        assert_eq!(t.sent[1].method, "PUT");
        let put: Value = serde_json::from_slice(&t.sent[1].body).unwrap();
        assert_eq!(put["members"], json!([{"value": "u1"}, {"value": "u2"}]));
    }

    #[test]
    fn a_new_group_is_made_with_every_member_or_an_existing_one_taken_over() {
        let new = GroupRequest { current: None, ..req() };
        let mut t = Fake::new(vec![reply(200, json!({"Resources": []})), reply(200, json!({"Resources": []})), reply(201, json!({"id": "G-2"}))]);
        let o = provision_group(&mut Service::new(&mut t, "https://s/v2", "t"), &new).unwrap();
        assert_eq!(o.remote, Some(("Group".into(), "G-2".into())));
        let mut t = Fake::new(vec![reply(200, json!({"Resources": []})), reply(200, json!({"Resources": [{"id": "G-7"}]})), reply(200, json!({"id": "G-7"}))]);
        let o = provision_group(&mut Service::new(&mut t, "https://s/v2", "t"), &new).unwrap();
        assert_eq!(o.summary, "matched existing Group G-7, 2 members");
    }
}
