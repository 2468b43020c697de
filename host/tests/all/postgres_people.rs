//! People, groups and targets on a real PostgreSQL: what the SQLite store
//! does with each change (its jobs, in the same transaction, by scope and
//! group), done the same way here; and two nodes changing the same people
//! at once lose nothing.


use registry_host::domain::{Action, Group, GroupAction, Person, ProvState, Scope, ServerInput, Status, TargetInput};
use registry_host::store::postgres::PgStore;
use registry_host::store::{PeopleQuery, PeopleSort, StoreError};
use registry_plugin_runtime::latest::types::GrantType;

use crate::common::done;
use crate::pg::{connect, database, node};

async fn server(n: &PgStore) -> i64 {
    let input = ServerInput::example("Org", "p", GrantType::ClientCredentials);
    n.create_server(&input).await.unwrap()
}

fn target(name: &str, server_id: i64, scope: Scope) -> TargetInput {
    TargetInput { name: name.into(), plugin: "p".into(), server_id, settings: vec![("object".into(), "Contact".into())], enabled: true, scope }
}

/// Every change of a person queues its jobs by each target's scope;
/// groups named in an import are made; a group-scoped target takes the
/// group's members only, and joining or leaving moves people in and out;
/// a run queues everyone in scope; the pages' queries answer as on SQLite.
#[tokio::test]
async fn people_groups_and_targets_queue_their_jobs_on_postgres() {
    let Some(url) = database().await else { return };
    let n = node(&url, "n", 60_000).await;
    let s = server(&n).await;
    let everyone = n.create_target(&target("Everyone", s, Scope::default())).await.unwrap();
    let staff_at_example = n.create_target(&target("Example", s, Scope::parse("example.org", ""))).await.unwrap();
    assert!(matches!(n.create_target(&target("Everyone", s, Scope::default())).await, Err(StoreError::Conflict(_))));
    assert_eq!(n.target(staff_at_example).await.unwrap().settings, vec![("object".to_string(), "Contact".to_string())], "settings open again");

    let ada = n.create_person(Person::example("P1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    n.create_person(Person::example("P2", "Grace", "Hopper", "grace@navy.example.com")).await.unwrap();
    assert!(matches!(n.create_person(Person::example("P1", "Ada", "Again", "a@example.org")).await, Err(StoreError::Conflict(_))));
    let db = connect(&url).await;
    let jobs = |sql: &'static str| {
        let db = &db;
        async move { db.query(sql, &[]).await.unwrap().iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, String>(2))).collect::<Vec<_>>() }
    };
    assert_eq!(
        jobs("SELECT person_id, target_id, action FROM jobs ORDER BY person_id, target_id").await,
        vec![("P1".into(), everyone, "added".into()), ("P1".into(), staff_at_example, "added".into()), ("P2".into(), everyone, "added".into())]
    );
    assert_eq!(n.person_states("P2").await.unwrap().iter().find(|t| t.target_id == staff_at_example).unwrap().state, ProvState::NotInScope);

    // Provisioned, then moved out of the domain: removed from that target.
    let claimed = n.claim_for(10, &[], &[]).await.unwrap();
    n.finish_done(&claimed.iter().map(done).collect::<Vec<_>>()).await.unwrap();
    let claimed2 = n.claim_for(10, &[], &[]).await.unwrap();
    n.finish_done(&claimed2.iter().map(done).collect::<Vec<_>>()).await.unwrap();
    let mut moved = ada.clone();
    moved.emails[0].address = "ada@elsewhere.example".into();
    assert_eq!(n.update_person(&moved).await.unwrap(), Some(Action::Updated));
    assert_eq!(n.update_person(&moved).await.unwrap(), None, "nothing changed, nothing queued");
    assert_eq!(
        jobs("SELECT person_id, target_id, action FROM jobs ORDER BY target_id").await,
        vec![("P1".into(), everyone, "updated".into()), ("P1".into(), staff_at_example, "deleted".into())]
    );

    // An import naming a group by name makes it; a group-scoped target.
    let mut p3 = Person::example("P3", "Edsger", "Dijkstra", "edsger@example.org");
    p3.groups = vec!["Research Staff".into()];
    let stats = n.import_people(vec![p3, Person::example("P4", "Barbara", "Liskov", "barbara@example.org")], |_| {}).await.unwrap();
    assert_eq!((stats.added, stats.updated), (2, 0));
    let group = n.group_by_name_or_id("research staff").await.unwrap().expect("made by the import");
    assert_eq!(n.group_members(&group.id).await.unwrap(), vec!["P3"]);
    let members_only = n.create_target(&target("Members", s, Scope { groups: vec![group.id.clone()], ..Scope::default() })).await.unwrap();
    n.set_target_provisions_groups(members_only, true).await.unwrap();
    let run = n.start_run(members_only).await.unwrap();
    assert_eq!(run.total, 1, "only the group's member");
    let run_everyone = n.start_run(everyone).await.unwrap();
    assert_eq!(run_everyone.total, 4);

    // Joining the group brings P4 into the scope (and a members-changed
    // group job); leaving takes P3 out.
    n.change_group_members(&group.id, &["P4".to_string()], &["P3".to_string()]).await.unwrap();
    let member_jobs = jobs("SELECT person_id, target_id, action FROM jobs WHERE target_id IN (SELECT id FROM targets WHERE name = 'Members') ORDER BY person_id").await;
    assert_eq!(member_jobs.iter().map(|(p, _, a)| (p.as_str(), a.as_str())).collect::<Vec<_>>(), vec![("P3", "deleted"), ("P4", "updated")]);
    let group_jobs: Vec<String> = db.query("SELECT action FROM group_jobs ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(group_jobs, vec![GroupAction::Added.as_str()], "a queued addition covers the membership change");
    assert!(n.update_group(&Group { description: Some("Everyone in research".into()), ..group.clone() }, None).await.unwrap());
    assert_eq!(n.groups().await.unwrap()[0].members, 1);

    // Deleting a person queues removals where they are known.
    n.delete_person("P2").await.unwrap();
    assert_eq!(n.person("P2").await.unwrap().status, Status::Deleted);
    assert!(matches!(n.import_people(vec![Person::example("P2", "Grace", "Again", "g@example.org")], |_| {}).await, Err(StoreError::Conflict(m)) if m.contains("never reused")));

    // The People list's queries.
    let (page, total) = n.people_page(&PeopleQuery { text: "ada LOVELACE".into(), ..Default::default() }, 0, 10).await.unwrap();
    assert_eq!((total, page[0].id.as_str()), (1, "P1"));
    let (page, total) = n.people_page(&PeopleQuery { sort: PeopleSort::Name, descending: true, affiliation: Some("STAFF".into()), ..Default::default() }, 0, 2).await.unwrap();
    assert_eq!((total, page.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()), (3, vec!["P1", "P4"]), "Lovelace, Liskov, Dijkstra: deleted people left out");
    let (next, _) = n.people_page(&PeopleQuery { sort: PeopleSort::Name, descending: true, affiliation: Some("STAFF".into()), ..Default::default() }, 2, 2).await.unwrap();
    assert_eq!(next.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec!["P3"], "the second page has the rest");
    let summaries = n.state_summaries(&["P1".to_string()]).await.unwrap();
    assert!(summaries["P1"].iter().any(|(s, _)| *s == ProvState::Pending));
    assert!(!n.history("P1", 10).await.unwrap().is_empty());
    assert!(n.target_counts(everyone).await.unwrap().iter().any(|(s, c)| *s == ProvState::Pending && *c > 0));
    assert_eq!(n.latest_run(everyone).await.unwrap().unwrap().id, run_everyone.id);
}

/// Two nodes import the same 300 people at once, in opposite orders:
/// neither deadlocks nor loses a change, and each person ends with one
/// queued job per target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_importing_the_same_people_at_once_lose_nothing() {
    let Some(url) = database().await else { return };
    let (a, b) = (node(&url, "a", 60_000).await, node(&url, "b", 60_000).await);
    let s = server(&a).await;
    a.create_target(&target("T", s, Scope::default())).await.unwrap();
    let people: Vec<Person> = (0..300).map(|i| Person::example(&format!("P{i:03}"), "Same", &format!("Person {i}"), &format!("p{i}@example.org"))).collect();
    let mut reversed = people.clone();
    reversed.reverse();
    for p in reversed.iter_mut() {
        p.roles[0].title = Some("Changed".into());
    }
    let (x, y) = tokio::join!(a.import_people(people, |_| {}), b.import_people(reversed, |_| {}));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.added + y.added, 300, "each person added once");
    assert_eq!(x.added + x.updated + x.unchanged, 300);
    let db = connect(&url).await;
    let per_pair: i64 = db.query_one("SELECT max(c) FROM (SELECT count(*) AS c FROM jobs GROUP BY person_id, target_id) x", &[]).await.unwrap().get(0);
    assert_eq!(per_pair, 1, "a later change replaced the queued one");
    let people_n: i64 = db.query_one("SELECT count(*) FROM people", &[]).await.unwrap().get(0);
    assert_eq!(people_n, 300);
}

/// Two nodes import overlapping people at once, where the same id is new
/// and groupless in one file (written set-based) and a group member or
/// already there in the other (written person by person): both keep their
/// locks in id order, so neither deadlocks, and nothing is lost. Several
/// rounds, for the interleavings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_mixing_new_people_with_members_and_existing_ones_never_deadlock() {
    let Some(url) = database().await else { return };
    let (a, b) = (node(&url, "a", 60_000).await, node(&url, "b", 60_000).await);
    let s = server(&a).await;
    a.create_target(&target("T", s, Scope::default())).await.unwrap();
    let staff = a.create_group(Group { id: "STAFF".into(), name: "Staff".into(), description: None }, &[]).await.unwrap();
    for round in 0..6 {
        let id = |i: usize| format!("M{round}{i:03}");
        // A few there already, spread through the range.
        for i in (0..400).step_by(37) {
            a.create_person(Person::example(&id(i), "There", "Already", &format!("m{round}x{i}@example.org"))).await.unwrap();
        }
        let plain: Vec<Person> = (0..400).map(|i| Person::example(&id(i), "Plain", &format!("Person {i}"), &format!("m{round}x{i}@example.org"))).collect();
        let mut grouped = plain.clone();
        for (i, p) in grouped.iter_mut().enumerate() {
            p.name.given = "Grouped".into();
            if i % 5 == 0 {
                p.groups = vec![staff.id.clone()];
            }
        }
        grouped.reverse();
        let (x, y) = tokio::join!(a.import_people(plain, |_| {}), b.import_people(grouped, |_| {}));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.added + y.added, 400 - 11, "round {round}: each new person added once ({x:?}, {y:?})");
    }
    let db = connect(&url).await;
    let per_pair: i64 = db.query_one("SELECT max(c) FROM (SELECT count(*) AS c FROM jobs GROUP BY person_id, target_id) x", &[]).await.unwrap().get(0);
    assert_eq!(per_pair, 1, "a later change replaced the queued one");
    let people_n: i64 = db.query_one("SELECT count(*) FROM people WHERE id LIKE 'M%'", &[]).await.unwrap().get(0);
    assert_eq!(people_n, 6 * 400);
    let members: i64 = db.query_one("SELECT count(*) FROM group_members WHERE group_id = 'STAFF'", &[]).await.unwrap().get(0);
    assert_eq!(members, 6 * 80, "every grouped person a member, whichever import came last for the others");
}

/// The safeguards on PostgreSQL: removals past the threshold are held by
/// the claim (reported once) until confirmed; a target failing long enough
/// is quarantined and then gets one probe; usage past the share pauses it;
/// a member provisioned on a group's target tells the group.
#[tokio::test]
async fn safeguards_and_group_members_on_postgres() {
    use registry_host::store::Safeguards;
    let Some(url) = database().await else { return };
    let n = node(&url, "n", 60_000).await;
    let s = server(&n).await;
    let t = n.create_target(&target("T", s, Scope::default())).await.unwrap();
    let db = connect(&url).await;
    for i in 0..30 {
        n.create_person(Person::example(&format!("H{i:02}"), "Held", "Person", &format!("h{i}@example.org"))).await.unwrap();
    }
    let jobs = n.claim_for(100, &[], &[]).await.unwrap();
    n.finish_done(&jobs.iter().map(done).collect::<Vec<_>>()).await.unwrap();
    for i in 0..30 {
        n.delete_person(&format!("H{i:02}")).await.unwrap();
    }
    assert!(n.claim_for(100, &[], &[]).await.unwrap().is_empty(), "30 removals over the automatic threshold of 20");
    assert_eq!(n.target_health(t).await.unwrap().held_removals, 30);
    assert_eq!(n.take_new_holds(), vec![(t, 30)]);
    assert!(n.take_new_holds().is_empty(), "reported once");
    assert_eq!(n.held_removals(t, 5).await.unwrap()[0].remote.as_deref(), Some("Contact RH00"));
    assert_eq!(n.discard_removals(t, "ada").await.unwrap(), 30);
    assert_eq!(n.person_states("H00").await.unwrap()[0].state, ProvState::NotInScope);

    // Quarantine after five failures over fifteen minutes; a probe then.
    for _ in 0..4 {
        assert_eq!(n.target_call_failed(t, "503").await.unwrap(), None);
    }
    db.execute("UPDATE targets SET failing_since = failing_since - 20 * 60000 WHERE id = $1", &[&t]).await.unwrap();
    let (until, reason) = n.target_call_failed(t, "503").await.unwrap().expect("quarantined");
    assert!(reason.contains("quarantined: 5 calls") && until > registry_host::store::now_ms());
    assert!(n.target_succeeded(t).await.unwrap(), "a probe that worked ends it");
    n.set_safeguards(t, &Safeguards { removal_threshold: Some(5), api_share: Some(50), concurrency: None }, true).await.unwrap();
    assert_eq!(n.safeguards(t).await.unwrap().api_share, Some(50));
    assert!(n.record_usage(t, 400, 1000).await.unwrap().is_none());
    assert!(n.record_usage(t, 600, 1000).await.unwrap().unwrap().contains("API budget"));
    assert!(n.target_health(t).await.unwrap().paused_until.is_some());

    // A group on a group-provisioning target: a member provisioned there
    // queues members-changed.
    let g = n.create_group(Group { id: "G1".into(), name: "Team".into(), description: None }, &[]).await.unwrap();
    let gt = n.create_target(&target("Groups", s, Scope::default())).await.unwrap();
    n.set_target_provisions_groups(gt, true).await.unwrap();
    let job = n.claim_group_job().await.unwrap().expect("the group is queued for the new target");
    assert!(n.finish_group_done(&job, Some(("Group".into(), "00G".into())), false, &[], "made").await.unwrap());
    let mut p = Person::example("M1", "Member", "One", "m1@example.org");
    p.groups = vec![g.id.clone()];
    n.create_person(p).await.unwrap();
    // Joining queued members-changed; it runs before the person is
    // provisioned there, so the group is sent without them.
    let joined = n.claim_group_job().await.unwrap().expect("members-changed for the join");
    assert_eq!(joined.action, GroupAction::MembersChanged);
    assert!(n.finish_group_done(&joined, Some(("Group".into(), "00G".into())), false, &[], "no members yet").await.unwrap());
    let jobs = n.claim_for(10, &[t], &[]).await.unwrap();
    assert!(jobs.iter().all(|j| j.target_id == gt) && !jobs.is_empty());
    n.finish_done(&jobs.iter().map(done).collect::<Vec<_>>()).await.unwrap();
    let queued: Vec<String> = db.query("SELECT action FROM group_jobs WHERE state = 'queued' ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(queued, vec![GroupAction::MembersChanged.as_str()], "the group hears of its member once provisioned");
}

/// Two nodes at work on the same people and groups at once: one edits
/// people (joining and leaving a group), starts runs and rewrites the
/// group's members; the other claims and finishes jobs and group jobs on
/// targets that provision groups. No transaction fails (no deadlock, no
/// raw constraint error), and two member lists written at once leave one
/// of them, not a mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn editing_and_provisioning_at_once_on_two_nodes_never_deadlocks() {
    let Some(url) = database().await else { return };
    let (a, b) = (node(&url, "a", 60_000).await, node(&url, "b", 60_000).await);
    let s = server(&a).await;
    let t1 = a.create_target(&target("One", s, Scope::default())).await.unwrap();
    let t2 = a.create_target(&target("Two", s, Scope::default())).await.unwrap();
    for t in [t1, t2] {
        a.set_target_provisions_groups(t, true).await.unwrap();
    }
    let g1 = a.create_group(Group { id: "G1".into(), name: "One".into(), description: None }, &[]).await.unwrap();
    let g2 = a.create_group(Group { id: "G2".into(), name: "Two".into(), description: None }, &[]).await.unwrap();
    let people: Vec<Person> = (0..40)
        .map(|i| {
            let mut p = Person::example(&format!("P{i:02}"), "Busy", &format!("Person {i}"), &format!("p{i}@example.org"));
            p.groups = vec![if i % 2 == 0 { g1.id.clone() } else { g2.id.clone() }];
            p
        })
        .collect();
    a.import_people(people.clone(), |_| {}).await.unwrap();

    let editor = {
        let (a, people, g1) = (a.clone(), people.clone(), g1.clone());
        tokio::spawn(async move {
            for round in 0..6 {
                for p in people.iter().rev().take(10) {
                    let mut p = p.clone();
                    p.groups = if round % 2 == 0 { vec!["G1".into(), "G2".into()] } else { vec![] };
                    p.roles[0].title = Some(format!("Round {round}"));
                    a.update_person(&p).await.unwrap();
                }
                a.start_run(if round % 2 == 0 { t1 } else { t2 }).await.unwrap();
                let members: Vec<String> = people.iter().step_by(3).map(|p| p.id.clone()).collect();
                a.set_group_members(&g1.id, &members).await.unwrap();
            }
        })
    };
    let worker = {
        let b = b.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                let jobs = b.claim_for(25, &[], &[]).await.unwrap();
                b.finish_done(&jobs.iter().map(done).collect::<Vec<_>>()).await.unwrap();
                while let Some(job) = b.claim_group_job().await.unwrap() {
                    b.finish_group_done(&job, Some(("Group".into(), format!("G-{}", job.group_id))), false, &[], "sent").await.unwrap();
                }
            }
        })
    };
    editor.await.expect("no edit failed");
    worker.await.expect("no finish failed");

    // Two member lists at once: the group ends with one of them.
    let first: Vec<String> = vec!["P00".into(), "P01".into()];
    let second: Vec<String> = vec!["P02".into(), "P03".into()];
    let (x, y) = tokio::join!(a.set_group_members(&g2.id, &first), b.set_group_members(&g2.id, &second));
    x.unwrap();
    y.unwrap();
    let members = a.group_members(&g2.id).await.unwrap();
    assert!(members == first || members == second, "{members:?}");
}

/// The rest of what admins do, on PostgreSQL: delete a group (its members
/// leave, the targets that have it remove it), narrow a target's group
/// scope (the group that left is removed there), retry failed jobs,
/// confirm held removals, reprovision a person as an admin, read the log
/// and the usage series, delete a target.
#[tokio::test]
async fn admin_actions_on_postgres() {
    use registry_host::store::{LogFilter, Safeguards};
    let Some(url) = database().await else { return };
    let n = node(&url, "n", 60_000).await;
    let db = connect(&url).await;
    let s = server(&n).await;
    let admin = n.create_admin("ada", "h").await.unwrap();
    let g = n.create_group(Group { id: "G1".into(), name: "Team".into(), description: None }, &[]).await.unwrap();
    let scoped = n.create_target(&target("Scoped", s, Scope { groups: vec![g.id.clone()], ..Scope::default() })).await.unwrap();
    n.set_target_provisions_groups(scoped, true).await.unwrap();
    let job = n.claim_group_job().await.unwrap().unwrap();
    n.finish_group_done(&job, Some(("Group".into(), "00G1".into())), false, &[], "made").await.unwrap();
    let mut p = Person::example("P1", "Ada", "Lovelace", "ada@example.org");
    p.groups = vec![g.id.clone()];
    n.create_person(p).await.unwrap();
    let jobs = n.claim_for(10, &[], &[]).await.unwrap();
    assert!(n.finish_failed(&jobs[0], "boom").await.unwrap());
    assert_eq!(n.retry_failed(scoped).await.unwrap(), 1);
    let again = n.claim_for(10, &[], &[]).await.unwrap();
    n.finish_done(&again.iter().map(done).collect::<Vec<_>>()).await.unwrap();
    assert!(n.log(&LogFilter { ok: Some(false), ..Default::default() }, 10).await.unwrap().iter().any(|e| e.message == "boom"));

    // Scoping the target to another group: the one that left is removed
    // there, the one that entered added.
    let other = n.create_group(Group { id: "G2".into(), name: "Other".into(), description: None }, &[]).await.unwrap();
    n.update_target(scoped, &target("Scoped", s, Scope { groups: vec![other.id.clone()], ..Scope::default() })).await.unwrap();
    let queued: Vec<(String, String)> =
        db.query("SELECT group_id, action FROM group_jobs WHERE state = 'queued' ORDER BY group_id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(queued, vec![("G1".to_string(), GroupAction::Deleted.as_str().to_string()), ("G2".to_string(), GroupAction::Added.as_str().to_string())]);
    n.update_target(scoped, &target("Scoped", s, Scope::default())).await.unwrap();

    // A group's deletion: its member leaves it.
    n.delete_group(&g.id).await.unwrap();
    assert!(n.person("P1").await.unwrap().groups.is_empty());
    assert!(matches!(n.group(&g.id).await, Err(StoreError::NotFound(_))));

    // As an admin; held removals confirmed.
    assert!(n.reprovision_person_as("P1", scoped, Some(admin)).await.unwrap());
    let acting: Option<i64> = db.query_one("SELECT acting_admin FROM jobs WHERE person_id = 'P1' ORDER BY id DESC LIMIT 1", &[]).await.unwrap().get(0);
    assert_eq!(acting, Some(admin));
    assert_eq!(n.reprovision_person("P1").await.unwrap(), 1);
    n.set_safeguards(scoped, &Safeguards { removal_threshold: Some(0), api_share: None, concurrency: None }, true).await.unwrap();
    let pending = n.claim_for(10, &[], &[]).await.unwrap();
    n.finish_done(&pending.iter().map(done).collect::<Vec<_>>()).await.unwrap();
    n.delete_person("P1").await.unwrap();
    assert!(n.claim_for(10, &[], &[]).await.unwrap().is_empty(), "held: over a threshold of 0");
    assert_eq!(n.confirm_removals(scoped).await.unwrap(), 1);
    assert_eq!(n.claim_for(10, &[], &[]).await.unwrap().len(), 1);

    n.record_usage(scoped, 10, 100).await.unwrap();
    assert_eq!(n.usage_series(scoped, 0).await.unwrap().len(), 1);
    assert_eq!(n.prune_log(-60_000).await.unwrap() > 0, true, "everything is older than a minute from now");
    n.delete_target(scoped).await.unwrap();
    assert!(matches!(n.target(scoped).await, Err(StoreError::NotFound(_))));
}
