//! Groups in the registry: members are people, a target can be scoped to a
//! group's members (joining enters the scope, leaving or the group's
//! deletion leaves it), an import names groups by name, and group jobs are
//! queued in the same transaction as the change, only for targets whose
//! plugin provisions groups and whose scope takes the group.

use registry_host::domain::{Group, GroupAction, ProvState, Scope};
use registry_plugin_runtime::latest::types::GrantType;

use crate::common::person;
use crate::provisioning::Harness;

const UPSERT: &[(&str, &str)] = &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("on_remove", "delete"), ("bulk_threshold", "0")];

fn group(name: &str) -> Group {
    let mut g = Group { id: String::new(), name: name.into(), description: None };
    g.normalize().unwrap();
    g
}

#[tokio::test]
async fn a_group_scoped_target_provisions_the_groups_members_only() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let physics = h.store.create_group(group("Physics faculty"), &[]).await.unwrap();
    let everyone = h.target("Everyone", UPSERT, Scope::default()).await;
    let scoped = h.target("Physics", UPSERT, Scope { groups: vec![physics.id.clone()], ..Scope::default() }).await;
    for (id, given) in [("G1", "Ada"), ("G2", "Grace"), ("G3", "Edsger")] {
        h.store.create_person(person(id, given, "Member", &format!("{}@example.org", given.to_lowercase()))).await.unwrap();
    }
    h.store.set_group_members(&physics.id, &["G1".into(), "G2".into()]).await.unwrap();
    h.drain().await;
    assert_eq!(h.store.group_members(&physics.id).await.unwrap(), ["G1", "G2"]);
    assert_eq!(h.store.person("G1").await.unwrap().groups, [physics.id.clone()], "the membership is in the person's record");
    for id in ["G1", "G2", "G3"] {
        assert_eq!(h.state(id, everyone).await.0, ProvState::Provisioned, "{id}");
    }
    assert_eq!(h.state("G1", scoped).await.0, ProvState::Provisioned);
    assert_eq!(h.state("G3", scoped).await.0, ProvState::NotInScope);
    assert_eq!(h.contacts_with("G3").len(), 1, "one record: the everyone target's");

    // Joining enters the scope; leaving removes the record there.
    h.store.set_group_members(&physics.id, &["G1".into(), "G3".into()]).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("G3", scoped).await.0, ProvState::Provisioned);
    assert_eq!(h.state("G2", scoped).await.0, ProvState::Removed);
    assert_eq!(h.state("G2", everyone).await.0, ProvState::Provisioned, "other targets are untouched");

    // A person edited without naming groups (the people form, an HR feed)
    // keeps them; the store writes what it is given.
    let mut g1 = h.store.person("G1").await.unwrap();
    g1.name.family = Some("Renamed".into());
    h.store.update_person(&g1).await.unwrap();
    assert_eq!(h.store.person("G1").await.unwrap().groups, [physics.id.clone()]);

    // Deleting the group takes its members out of the scoped target.
    h.store.delete_group(&physics.id).await.unwrap();
    h.drain().await;
    assert_eq!(h.state("G1", scoped).await.0, ProvState::Removed);
    assert_eq!(h.state("G3", scoped).await.0, ProvState::Removed);
    assert!(h.store.person("G1").await.unwrap().groups.is_empty());
    assert!(h.store.group(&physics.id).await.is_err(), "gone from the registry");
    let again = h.store.create_group(Group { id: physics.id.clone(), ..group("Physics faculty") }, &[]).await.unwrap_err();
    assert!(again.to_string().contains("never reused"), "{again}");
    assert!(h.store.create_group(group("Physics faculty"), &[]).await.is_ok(), "its name is free again");
}

#[tokio::test]
async fn group_jobs_are_queued_with_the_change_for_targets_that_provision_groups() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let chemistry = h.store.create_group(group("Chemistry"), &[]).await.unwrap();
    let t = h.target("Groups too", UPSERT, Scope::default()).await;
    let other = h.target("People only", UPSERT, Scope::default()).await;
    assert!(h.store.group_jobs().await.unwrap().is_empty(), "no target provisions groups yet");

    // The plugin says it provisions groups: the target gets the existing ones.
    h.store.set_target_provisions_groups(t, true).await.unwrap();
    assert_eq!(h.store.group_jobs().await.unwrap(), [(chemistry.id.clone(), t, GroupAction::Added, "queued".to_string())]);

    // Later changes are covered by the queued job (it reads the group when
    // it runs): one job, still the addition.
    h.store.create_person(person("C1", "Marie", "Curie", "marie@example.org")).await.unwrap();
    h.store.set_group_members(&chemistry.id, &["C1".into()]).await.unwrap();
    h.store.update_group(&Group { description: Some("Labs".into()), ..chemistry.clone() }, None).await.unwrap();
    assert_eq!(h.store.group_jobs().await.unwrap().len(), 1);
    assert!(h.store.group_jobs().await.unwrap().iter().all(|(_, target, _, _)| *target != other));

    // Unknown groups in a person's record are refused, naming them.
    let mut stray = person("C2", "Stray", "Person", "stray@example.org");
    stray.groups = vec!["no-such-group".into()];
    let e = h.store.create_person(stray).await.unwrap_err();
    assert!(e.to_string().contains("group no-such-group"), "{e}");
    assert!(h.store.person("C2").await.is_err(), "nothing was written");

    // A deletion replaces what is queued.
    h.store.delete_group(&chemistry.id).await.unwrap();
    assert_eq!(h.store.group_jobs().await.unwrap(), [(chemistry.id.clone(), t, GroupAction::Deleted, "queued".to_string())]);
}

#[tokio::test]
async fn an_import_names_groups_by_name_and_creates_the_missing_ones() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let existing = h.store.create_group(group("Staff"), &[]).await.unwrap();
    let csv = "id,given,family,emails,affiliation,groups\nI1,Ada,Lovelace,ada@example.org,staff,staff;Analytical Engine\nI2,Grace,Hopper,grace@example.org,faculty,\n";
    let people = registry_host::import::parse_import("people.csv", csv).unwrap();
    h.store.import_people(people, |_| {}).await.unwrap();
    let engine = h.store.group_by_name_or_id("analytical engine").await.unwrap().expect("created by the import");
    let mut want = vec![existing.id.clone(), engine.id.clone()];
    want.sort();
    assert_eq!(h.store.person("I1").await.unwrap().groups, want);
    assert_eq!(h.store.group_members(&existing.id).await.unwrap(), ["I1"]);

    // Imported again without the column: memberships stay.
    let csv = "id,given,family,emails,affiliation\nI1,Ada,Lovelace,ada@example.org,staff\n";
    h.store.import_people(registry_host::import::parse_import("people.csv", csv).unwrap(), |_| {}).await.unwrap();
    assert_eq!(h.store.person("I1").await.unwrap().groups, want);
}

#[tokio::test]
async fn groups_become_public_groups_whose_members_are_the_peoples_users() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let profile = h.emu.records("Profile").into_iter().find(|p| p["Name"] == "Standard User").unwrap()["Id"].as_str().unwrap().to_string();
    let settings = [
        ("object", "User"),
        ("external_id_field", "Registry_ID__c"),
        ("profile_id", profile.as_str()),
        ("username_template", "{identifier:eppn}"),
        ("inactive_action", "remove"),
        ("groups", "public_groups"),
    ];
    let t = h.target("Users", &settings, Scope::default()).await;
    h.store.set_target_provisions_groups(t, true).await.unwrap();
    let team = h.store.create_group(group("Lab team"), &[]).await.unwrap();
    for (id, given) in [("U1", "Ada"), ("U2", "Grace"), ("U3", "Edsger")] {
        h.store.create_person(person(id, given, "User", &format!("{}@example.org", given.to_lowercase()))).await.unwrap();
    }
    h.store.set_group_members(&team.id, &["U1".into(), "U2".into()]).await.unwrap();
    let drain = async || {
        h.drain().await;
        while h.engine.run_group_once().await.unwrap() {}
        h.drain().await;
        while h.engine.run_group_once().await.unwrap() {}
    };
    drain().await;
    let lite = h.store.sqlite().expect("SQLite");
    let user_of = |p: &str| lite.person_states(p).unwrap().into_iter().find(|s| s.target_id == t).and_then(|s| s.remote_id).expect("a User");
    let groups = h.emu.live_records("Group");
    let g = groups.iter().find(|g| g["DeveloperName"] == format!("Registry_{}", team.id)).expect("the Public Group");
    assert_eq!(g["Name"], "Lab team");
    let gid = g["Id"].as_str().unwrap().to_string();
    let members = |h: &Harness| -> Vec<String> {
        let mut m: Vec<String> = h.emu.live_records("GroupMember").into_iter().filter(|m| m["GroupId"] == gid.as_str()).map(|m| m["UserOrGroupId"].as_str().unwrap().to_string()).collect();
        m.sort();
        m
    };
    let mut want = vec![user_of("U1"), user_of("U2")];
    want.sort();
    assert_eq!(members(&h), want);
    let states = h.store.group_states(&team.id).await.unwrap();
    assert_eq!(states, [(t, "provisioned".to_string(), Some(gid.clone()), states[0].3.clone())]);

    // One leaves, one joins, the group is renamed: the Group follows.
    h.store.set_group_members(&team.id, &["U1".into(), "U3".into()]).await.unwrap();
    h.store.update_group(&Group { name: "Lab crew".into(), ..team.clone() }, None).await.unwrap();
    drain().await;
    let mut want = vec![user_of("U1"), user_of("U3")];
    want.sort();
    assert_eq!(members(&h), want);
    assert_eq!(h.emu.live_records("Group").iter().find(|g| g["Id"] == gid.as_str()).unwrap()["Name"], "Lab crew");

    // A member deactivated (expired): out of the Group, though still a
    // member in the registry.
    let mut u1 = h.store.person("U1").await.unwrap();
    u1.status = registry_host::domain::Status::Expired;
    h.store.update_person(&u1).await.unwrap();
    drain().await;
    assert_eq!(members(&h), [user_of("U3")]);

    // Deleted in the registry: the Group goes.
    h.store.delete_group(&team.id).await.unwrap();
    drain().await;
    assert!(h.emu.live_records("Group").iter().all(|g| g["Id"] != gid.as_str()));
    assert_eq!(h.store.group_states(&team.id).await.unwrap()[0].1, "removed");
}

#[tokio::test]
async fn groups_are_managed_in_the_json_api_and_the_admin_pages() {
    use reqwest::Method;
    let h = crate::web::Harness::start().await;
    let csrf = h.login().await;
    let token = h.host.store.create_api_token("tests", None).await.unwrap();
    let token = token.as_str();
    h.host.store.create_person(person("W1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    h.host.store.create_person(person("W2", "Grace", "Hopper", "grace@example.org")).await.unwrap();

    // A member who does not exist: refused, and no group is left behind.
    let (status, body) = h.api(Method::POST, "/api/v1/groups", Some(token), Some(serde_json::json!({"name": "Engines", "members": ["W1", "NOPE"]}))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("person NOPE"), "{body}");
    assert_eq!(h.api(Method::GET, "/api/v1/groups", Some(token), None).await.1["groups"], serde_json::json!([]));
    let (status, body) = h.api(Method::POST, "/api/v1/groups", Some(token), Some(serde_json::json!({"name": "", "colour": "red"}))).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");

    let (status, body) = h.api(Method::POST, "/api/v1/groups", Some(token), Some(serde_json::json!({"name": "Engines", "description": "Analytical", "members": ["W1"]}))).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["members"], serde_json::json!(["W1"]));
    assert_eq!(h.api(Method::POST, "/api/v1/groups", Some(token), Some(serde_json::json!({"name": "engines"}))).await.0, 409, "names are unique, any case");
    // A person updated without `groups` keeps them; with them, they change.
    let w1 = serde_json::json!({"status": "active", "name": {"given": "Ada", "family": "King"}, "emails": [{"address": "ada@example.org"}]});
    assert_eq!(h.api(Method::PUT, "/api/v1/people/W1", Some(token), Some(w1.clone())).await.0, 200);
    assert_eq!(h.host.store.person("W1").await.unwrap().groups, [id.clone()]);

    // The pages: the list, the group, its members saved from the form.
    let (status, page, _) = h.get("/groups").await;
    assert_eq!(status, 200);
    assert!(page.contains("Engines") && page.contains(&format!("/groups/{id}")), "{page}");
    let (status, _, loc) = h.post(&format!("/groups/{id}/members"), &[("csrf", &csrf), ("add", "W2\nW1"), ("remove", "")]).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("/groups/{id}").as_str())));
    let page = h.get(&format!("/groups/{id}")).await.1;
    assert!(page.contains("Members (2)") && page.contains("Hopper, Grace"), "{page}");
    let (status, page, _) = h.post(&format!("/groups/{id}/members"), &[("csrf", &csrf), ("add", "GHOST"), ("remove", "W1")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("no person GHOST"), "{page}");
    assert_eq!(h.host.store.group_members(&id).await.unwrap(), ["W1", "W2"], "nothing changed: W1 is still in");

    // A group of more than a page: 120 members, 50 a page, by name.
    let many: Vec<registry_host::domain::Person> = (0..120).map(|i| person(&format!("M{i:03}"), "Many", &format!("Member {i:03}"), &format!("m{i}@example.org"))).collect();
    h.host.store.import_people(many, |_| {}).await.unwrap();
    let ids: String = (0..120).map(|i| format!("M{i:03}\n")).collect();
    assert_eq!(h.post(&format!("/groups/{id}/members"), &[("csrf", &csrf), ("add", &ids), ("remove", "W1 W2")]).await.0, 303);
    let first = h.get(&format!("/groups/{id}")).await.1;
    assert!(first.contains("Members (120)") && first.contains("page 1 of 3"), "{first}");
    assert_eq!(first.matches("<li><a href=\"/people/").count(), 50);
    assert!(first.contains("Member 000") && !first.contains("Member 050"), "sorted by name, the first 50");
    let last = h.get(&format!("/groups/{id}?page=3")).await.1;
    assert_eq!(last.matches("<li><a href=\"/people/").count(), 20);
    assert!(last.contains("Member 119") && last.contains("id=\"prev\"") && !last.contains("id=\"next\""), "{last}");
    let (status, page, _) = h.post("/groups", &[("csrf", &csrf), ("name", "ENGINES")]).await;
    assert_eq!(status, 409);
    assert!(page.contains("exists already"), "{page}");

    let (status, _, loc) = h.post(&format!("/groups/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/groups")));
    assert_eq!(h.api(Method::GET, &format!("/api/v1/groups/{id}"), Some(token), None).await.0, 404);
    assert!(h.host.store.person("W2").await.unwrap().groups.is_empty());
}

#[tokio::test]
async fn a_failed_group_job_holds_nothing_back_and_a_scope_change_adds_and_removes_groups() {
    let h = Harness::new(GrantType::ClientCredentials).await;
    let a = h.store.create_group(group("Group A"), &[]).await.unwrap();
    let b = h.store.create_group(group("Group B"), &[]).await.unwrap();
    let t = h.target("Scoped", UPSERT, Scope { groups: vec![a.id.clone()], ..Scope::default() }).await;
    h.store.set_target_provisions_groups(t, true).await.unwrap();
    assert_eq!(h.store.group_jobs().await.unwrap(), [(a.id.clone(), t, GroupAction::Added, "queued".to_string())], "only the group in scope");

    // The addition fails for good; a later change still runs.
    let job = h.store.claim_group_job().await.unwrap().unwrap();
    h.store.finish_group_failed(&job, "refused").await.unwrap();
    h.store.update_group(&Group { description: Some("now described".into()), ..a.clone() }, None).await.unwrap();
    let next = h.store.claim_group_job().await.unwrap().expect("not held back by the failed one");
    assert_eq!((next.group_id.as_str(), next.action), (a.id.as_str(), GroupAction::Updated));
    h.store.finish_group_done(&next, Some(("Group".into(), "G-A".into())), false, &[], "made").await.unwrap();

    // The scope moves from A to B: A is removed there, B added.
    let input = registry_host::domain::TargetInput {
        name: "Scoped".into(),
        plugin: "salesforce".into(),
        server_id: h.server,
        settings: UPSERT.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        enabled: true,
        scope: Scope { groups: vec![b.id.clone()], ..Scope::default() },
    };
    h.store.update_target(t, &input).await.unwrap();
    let mut jobs: Vec<(String, GroupAction)> = h.store.group_jobs().await.unwrap().into_iter().filter(|j| j.3 == "queued").map(|j| (j.0, j.2)).collect();
    jobs.sort_by(|x, y| x.0.cmp(&y.0));
    let mut want = vec![(a.id.clone(), GroupAction::Deleted), (b.id.clone(), GroupAction::Added)];
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(jobs, want);
}
