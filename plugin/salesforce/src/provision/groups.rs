//! Registry groups as Salesforce Public Groups (a target of Users whose
//! "Registry groups" setting says so): each group a `Group` whose
//! DeveloperName is `Registry_` and the group's id, its members
//! `GroupMember` rows pointing at their Users. Joiners are added and
//! leavers removed by the host's diff, so nothing is read first; a group
//! made (again) gets every member.

use serde_json::json;

use super::*;

/// Why a group is provisioned (mirrors the WIT `group-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// New.
    Added,
    /// Renamed.
    Updated,
    /// Deleted.
    Deleted,
    /// Members joined or left.
    MembersChanged,
    /// Sent again.
    Reprovision,
}

/// A member, as the target knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The person's registry id.
    pub person_id: String,
    /// Their record on the target.
    pub remote: RemoteRef,
}

/// One group to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRequest {
    /// Why.
    pub action: GroupAction,
    /// The registry's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its members with records on the target.
    pub members: Vec<Member>,
    /// Joined since last time.
    pub added: Vec<Member>,
    /// Left since last time.
    pub removed: Vec<Member>,
    /// The Group made earlier, if any.
    pub current: Option<RemoteRef>,
}

/// Group names Salesforce takes (`Name` is 40 characters).
const NAME_MAX: usize = 40;

/// The DeveloperName for a registry group: letters, digits and single
/// underscores, starting with a letter, at most 80 characters.
pub fn developer_name(id: &str) -> String {
    let mut s = String::from("Registry_");
    for c in id.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && s.ends_with('_')) {
            s.push(c);
        }
    }
    let mut s: String = s.chars().take(80).collect();
    while s.ends_with('_') {
        s.pop();
    }
    s
}

/// Provisions one group under `config`: nothing unless groups become
/// Public Groups.
pub fn provision_group(t: &mut dyn Transport, config: &Config, tokens: &Tokens, req: &GroupRequest) -> Result<Outcome, Error> {
    if !config.public_groups {
        return Ok(Outcome { remote: None, summary: "not provisioned: the target's \"Registry groups\" setting leaves groups out".into(), removed: false });
    }
    let mut api = Api::new(t, config, tokens)?;
    if req.action == GroupAction::Deleted {
        let Some(current) = &req.current else {
            return Ok(Outcome { remote: None, summary: "nothing to delete: the group was never made in Salesforce".into(), removed: true });
        };
        let resp = api.send("DELETE", &format!("sobjects/Group/{}", current.remote_id), None)?;
        if resp.status >= 300 && !gone(&resp) {
            return Err(rest_error(&resp));
        }
        return Ok(Outcome { remote: None, summary: format!("deleted Group {}", current.remote_id), removed: true });
    }
    let name: String = req.name.chars().take(NAME_MAX).collect();
    let developer = developer_name(&req.id);
    // The Group: renamed where it is, found by its DeveloperName (made
    // earlier, its reference lost), or made.
    let mut made = false;
    let existing = match &req.current {
        Some(c) => {
            let resp = api.send("PATCH", &format!("sobjects/Group/{}", c.remote_id), Some(&json!({"Name": name})))?;
            if resp.status < 300 {
                Some(c.remote_id.clone())
            } else if gone(&resp) {
                None
            } else {
                return Err(rest_error(&resp));
            }
        }
        None => None,
    };
    let id = match existing {
        Some(id) => id,
        None => match api.lookup("Group", "DeveloperName", &developer)? {
            Some(id) => {
                let resp = api.send("PATCH", &format!("sobjects/Group/{id}"), Some(&json!({"Name": name})))?;
                if resp.status >= 300 {
                    return Err(rest_error(&resp));
                }
                made = true;
                id
            }
            None => {
                let resp = api.send("POST", "sobjects/Group", Some(&json!({"Name": name, "DeveloperName": developer, "Type": "Regular"})))?;
                if resp.status >= 300 {
                    return Err(rest_error(&resp));
                }
                made = true;
                id_of(&resp)?
            }
        },
    };
    // Only Users can be members; a group made now gets everyone.
    let users = |m: &[Member]| -> Vec<String> { m.iter().filter(|m| m.remote.object_type == "User").map(|m| m.remote.remote_id.clone()).collect() };
    let (joining, leaving) = if made || req.action == GroupAction::Reprovision { (users(&req.members), Vec::new()) } else { (users(&req.added), users(&req.removed)) };
    let mut problems = Vec::new();
    for chunk in joining.chunks(COLLECTION_LIMIT) {
        let records: Vec<Value> = chunk.iter().map(|u| json!({"attributes": {"type": "GroupMember"}, "GroupId": id, "UserOrGroupId": u})).collect();
        let resp = api.send("POST", "composite/sobjects", Some(&json!({"allOrNone": false, "records": records})))?;
        if resp.status != 200 {
            return Err(rest_error(&resp));
        }
        for item in json_body(&resp)?.as_array().cloned().unwrap_or_default() {
            if item["success"].as_bool() != Some(true) {
                let e = &item["errors"][0];
                // Already a member (made again, or sent twice): fine.
                if e["statusCode"].as_str() != Some("DUPLICATE_VALUE") {
                    problems.push(format!("{}: {}", e["statusCode"].as_str().unwrap_or("ERROR"), e["message"].as_str().unwrap_or("")));
                }
            }
        }
    }
    let mut removed = 0;
    for chunk in leaving.chunks(COLLECTION_LIMIT) {
        let list = chunk.iter().map(|u| format!("'{}'", soql_escape(u))).collect::<Vec<_>>().join(",");
        let soql = format!("SELECT Id FROM GroupMember WHERE GroupId = '{}' AND UserOrGroupId IN ({list})", soql_escape(&id));
        let resp = api.send("GET", &format!("query?q={}", encode_component(&soql)), None)?;
        if resp.status != 200 {
            return Err(rest_error(&resp));
        }
        let ids: Vec<String> = json_body(&resp)?["records"].as_array().into_iter().flatten().filter_map(|r| r["Id"].as_str().map(str::to_string)).collect();
        if ids.is_empty() {
            continue;
        }
        let resp = api.send("DELETE", &format!("composite/sobjects?ids={}&allOrNone=false", ids.join(",")), None)?;
        if resp.status != 200 {
            return Err(rest_error(&resp));
        }
        removed += ids.len();
    }
    if !problems.is_empty() {
        return Err(Error::Remote { code: "GROUP_MEMBERS".into(), message: format!("Group {id}: {}", problems.join("; ")), status: None, retryable: false });
    }
    let verb = if made { "made" } else { "updated" };
    Ok(Outcome { remote: reference("Group", id.clone()), summary: format!("{verb} Group {id} ({developer}): {} members added, {removed} removed", joining.len()), removed: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::{Fake, reply};

    fn config(groups: &str) -> Config {
        let values: Vec<(String, String)> = [("object", "User"), ("profile_id", "00e000000000001"), ("groups", groups)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&values).unwrap()
    }

    fn member(p: &str, user: &str) -> Member {
        Member { person_id: p.into(), remote: RemoteRef { object_type: "User".into(), remote_id: user.into() } }
    }

    fn tokens() -> Tokens {
        Tokens { access_token: "00D!x".into(), instance_url: Some("https://acme.my.salesforce.com".into()), ..Default::default() }
    }

    #[test]
    fn developer_names_are_what_salesforce_takes() {
        assert_eq!(developer_name("physics-faculty"), "Registry_physics_faculty");
        assert_eq!(developer_name("a--b_"), "Registry_a_b");
        assert!(developer_name(&"x".repeat(100)).len() <= 80);
    }

    #[test]
    fn a_new_group_is_made_with_every_member_and_later_only_the_changes_are_sent() {
        let req = GroupRequest {
            action: GroupAction::Added,
            id: "physics".into(),
            name: "Physics faculty".into(),
            members: vec![member("P1", "005A"), member("P2", "005B")],
            added: vec![member("P1", "005A"), member("P2", "005B")],
            removed: vec![],
            current: None,
        };
        let ok = |n: usize| reply(200, Value::Array((0..n).map(|i| json!({"success": true, "id": format!("011{i}")})).collect()));
        let mut t = Fake { sent: vec![], replies: vec![reply(200, json!({"records": []})), reply(201, json!({"id": "00GX"})), ok(2)] };
        let o = provision_group(&mut t, &config("public_groups"), &tokens(), &req).unwrap();
        assert_eq!(o.remote.unwrap().remote_id, "00GX");
        assert!(o.summary.starts_with("made Group 00GX (Registry_physics): 2 members added"), "{}", o.summary);
        assert_eq!(t.sent[1].url, "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Group");
        let body: Value = serde_json::from_slice(&t.sent[2].body).unwrap();
        assert_eq!(body["records"][1]["UserOrGroupId"], "005B");

        // Later: one joins, one leaves; the group is renamed in place.
        let later = GroupRequest {
            action: GroupAction::MembersChanged,
            members: vec![member("P1", "005A"), member("P3", "005C")],
            added: vec![member("P3", "005C")],
            removed: vec![member("P2", "005B")],
            current: Some(RemoteRef { object_type: "Group".into(), remote_id: "00GX".into() }),
            ..req.clone()
        };
        let mut t = Fake { sent: vec![], replies: vec![reply(204, Value::Null), ok(1), reply(200, json!({"records": [{"Id": "011B"}]})), ok(1)] };
        let o = provision_group(&mut t, &config("public_groups"), &tokens(), &later).unwrap();
        assert_eq!(o.summary, "updated Group 00GX (Registry_physics): 1 members added, 1 removed");
        assert_eq!(t.sent[0].method, "PATCH");
        assert!(t.sent[2].url.contains("GroupMember"), "{}", t.sent[2].url);
        assert_eq!(t.sent[3].url, "https://acme.my.salesforce.com/services/data/v62.0/composite/sobjects?ids=011B&allOrNone=false");

        // Deleted: the Group goes.
        let mut t = Fake { sent: vec![], replies: vec![reply(204, Value::Null)] };
        let o = provision_group(&mut t, &config("public_groups"), &tokens(), &GroupRequest { action: GroupAction::Deleted, ..later }).unwrap();
        assert!(o.removed && o.remote.is_none());

        // Groups left out: nothing is sent.
        let mut t = Fake { sent: vec![], replies: vec![] };
        let o = provision_group(&mut t, &config("none"), &tokens(), &req).unwrap();
        assert!(o.remote.is_none() && t.sent.is_empty(), "{}", o.summary);
    }

    #[test]
    fn public_groups_need_users() {
        let values: Vec<(String, String)> = [("object", "Contact"), ("groups", "public_groups")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let errors = Config::parse(&values).unwrap_err();
        assert_eq!(errors[0].field, "groups");
    }
}
