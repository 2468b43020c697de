use super::*;
use crate::http::Request as HttpRequest;
use crate::http::fake::{Fake, reply};
use crate::person::{Email, Identifier, Name, Role};

fn fake(replies: Vec<Response>) -> Fake {
    Fake::new(replies)
}

fn body(r: &HttpRequest) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn tokens() -> Tokens {
    Tokens {
        access_token: "00Dtoken".into(),
        refresh_token: Some("5Aep".into()),
        instance_url: Some("https://na1.example.my.salesforce.com".into()),
        issued_at: None,
        expires_at: None,
        scope: None,
        token_type: "Bearer".into(),
        extra: vec![],
    }
}

fn config(extra: &[(&str, &str)]) -> Config {
    let values: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::parse(&values).unwrap()
}

fn user_config(extra: &[(&str, &str)]) -> Config {
    let mut v = vec![("object", "User"), ("profile_id", "00e000000000001AAA"), ("federation_identifier_type", "eppn")];
    v.extend_from_slice(extra);
    config(&v)
}

fn person(id: &str) -> Person {
    Person {
        id: id.into(),
        status: Status::Active,
        name: Name { given: "Ada".into(), family: Some("Lovelace".into()), ..Default::default() },
        emails: vec![Email { address: format!("{}@example.org", id.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "")), kind: "official".into(), verified: true }],
        identifiers: vec![Identifier { kind: "eppn".into(), value: format!("{id}@example.org") }],
        roles: vec![Role { affiliation: "staff".into(), title: Some("Analyst".into()), ..Default::default() }],
    }
}

/// An added person `id` with family name `family` ("" for none).
pub(super) fn request(id: &str, family: &str) -> Request {
    let mut p = person(id);
    p.name.family = (!family.is_empty()).then(|| family.to_string());
    req(Action::Added, p, None)
}

fn req(action: Action, p: Person, current: Option<(&str, &str)>) -> Request {
    Request { action, person: p, current: current.map(|(t, id)| RemoteRef { object_type: t.into(), remote_id: id.into() }) }
}

const BASE: &str = "https://na1.example.my.salesforce.com/services/data/v62.0";

#[test]
fn contacts_are_created_updated_and_recreated_when_deleted_in_salesforce() {
    let c = config(&[]);
    let mut t = fake(vec![reply(201, json!({"id": "003A", "success": true, "errors": []}))]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Added, person("P1"), None)).unwrap();
    assert_eq!(out.remote, Some(RemoteRef { object_type: "Contact".into(), remote_id: "003A".into() }));
    assert_eq!((t.sent[0].method, t.sent[0].url.as_str()), ("POST", &*format!("{BASE}/sobjects/Contact")));
    assert!(t.sent[0].headers.contains(&("Authorization".into(), "Bearer 00Dtoken".into())));
    assert_eq!(body(&t.sent[0])["LastName"], "Lovelace");

    let mut t = fake(vec![reply(204, Value::Null)]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Updated, person("P1"), Some(("Contact", "003A")))).unwrap();
    assert_eq!((t.sent[0].method, t.sent[0].url.as_str()), ("PATCH", &*format!("{BASE}/sobjects/Contact/003A")));
    assert_eq!(out.summary, "updated Contact 003A");
    assert!(!out.removed);

    let deleted = reply(404, json!([{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]));
    let mut t = fake(vec![deleted, reply(201, json!({"id": "003B", "success": true, "errors": []}))]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Updated, person("P1"), Some(("Contact", "003A")))).unwrap();
    assert_eq!(t.sent.iter().map(|r| r.method).collect::<Vec<_>>(), ["PATCH", "POST"]);
    assert_eq!(out.remote.unwrap().remote_id, "003B");
    assert!(out.summary.contains("again (003A was deleted in Salesforce)"), "{}", out.summary);
}

#[test]
fn an_external_id_field_makes_every_sync_an_upsert_by_the_registry_id() {
    let c = config(&[("external_id_field", "Registry_ID__c")]);
    let mut t = fake(vec![reply(201, json!({"id": "003A", "success": true, "errors": [], "created": true}))]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Added, person("P 1/x"), None)).unwrap();
    assert_eq!(t.sent[0].url, format!("{BASE}/sobjects/Contact/Registry_ID__c/P%201%2Fx"));
    assert_eq!(t.sent[0].method, "PATCH");
    assert!(body(&t.sent[0]).get("Registry_ID__c").is_none(), "the key travels in the URL only");
    assert!(out.summary.starts_with("created Contact 003A"));
    // The same call again (a retry after a lost answer) updates.
    let mut t = fake(vec![reply(200, json!({"id": "003A", "success": true, "errors": [], "created": false}))]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Added, person("P 1/x"), None)).unwrap();
    assert!(out.summary.starts_with("updated Contact 003A"));
    let mut t = fake(vec![reply(300, json!(["/services/data/v62.0/sobjects/Contact/003A", "/services/data/v62.0/sobjects/Contact/003B"]))]);
    let e = provision(&mut t, &c, &tokens(), &req(Action::Updated, person("P1"), None)).unwrap_err();
    assert!(matches!(e, Error::Remote { ref code, retryable: false, .. } if code == "MULTIPLE_RECORDS"), "{e:?}");
}

#[test]
fn deleting_removes_the_contact_and_a_missing_one_counts_as_removed() {
    let c = config(&[("on_remove", "delete")]);
    let mut t = fake(vec![reply(204, Value::Null)]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Deleted, person("P1"), Some(("Contact", "003A")))).unwrap();
    assert_eq!((t.sent[0].method, t.sent[0].url.as_str()), ("DELETE", &*format!("{BASE}/sobjects/Contact/003A")));
    assert_eq!((out.remote, out.removed), (None, true));
    let mut t = fake(vec![reply(404, json!([{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]))]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Deleted, person("P1"), Some(("Contact", "003A")))).unwrap();
    assert!(out.summary.contains("already deleted") && out.removed);
    let mut t = fake(vec![]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Deleted, person("P1"), None)).unwrap();
    assert!(t.sent.is_empty() && out.summary.starts_with("nothing to remove"));
    // With an external id, a record whose creation answer was lost is found.
    let c = config(&[("external_id_field", "Registry_ID__c"), ("on_remove", "delete")]);
    let mut t = fake(vec![reply(200, json!({"totalSize": 1, "done": true, "records": [{"Id": "003Z"}]})), reply(204, Value::Null)]);
    provision(&mut t, &c, &tokens(), &req(Action::Deleted, person("O'Brien"), None)).unwrap();
    assert!(t.sent[0].url.contains("query?q=SELECT%20Id%20FROM%20Contact%20WHERE%20Registry_ID__c%20%3D%20%27O%5C%27Brien%27"), "{}", t.sent[0].url);
    assert_eq!(t.sent[1].url, format!("{BASE}/sobjects/Contact/003Z"));
}

#[test]
fn expired_people_are_updated_or_removed_as_the_target_says() {
    let mut expired = person("P1");
    expired.status = Status::Expired;
    let r = req(Action::Expired, expired, Some(("Contact", "003A")));
    assert_eq!(intent(&config(&[]), &r), Intent::Sync);
    assert_eq!(intent(&config(&[("inactive_action", "remove")]), &r), Intent::Remove);
    let mut suspended = person("P1");
    suspended.status = Status::Suspended;
    assert_eq!(intent(&config(&[("inactive_action", "remove")]), &req(Action::Updated, suspended, None)), Intent::Remove);
    assert_eq!(intent(&config(&[]), &req(Action::Unexpired, person("P1"), None)), Intent::Sync);
}

#[test]
fn users_get_every_required_field_and_are_deactivated_never_deleted() {
    let c = user_config(&[]);
    let mut t = fake(vec![reply(201, json!({"id": "005A", "success": true, "errors": []}))]);
    provision(&mut t, &c, &tokens(), &req(Action::Added, person("P1"), None)).unwrap();
    let b = body(&t.sent[0]);
    assert_eq!(t.sent[0].url, format!("{BASE}/sobjects/User"));
    for (field, value) in [
        ("Username", json!("p1@example.org")),
        ("Email", json!("p1@example.org")),
        ("LastName", json!("Lovelace")),
        ("Alias", json!("alovelac")),
        ("ProfileId", json!("00e000000000001AAA")),
        ("TimeZoneSidKey", json!("America/Los_Angeles")),
        ("LocaleSidKey", json!("en_US")),
        ("EmailEncodingKey", json!("UTF-8")),
        ("LanguageLocaleKey", json!("en_US")),
        ("FederationIdentifier", json!("P1@example.org")),
        ("IsActive", json!(true)),
    ] {
        assert_eq!(b[field], value, "{field}");
    }
    let nick = b["CommunityNickname"].as_str().unwrap();
    assert!(nick.starts_with("p1.") && nick.len() == 11, "{nick}");

    let mut t = fake(vec![reply(204, Value::Null)]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Deleted, person("P1"), Some(("User", "005A")))).unwrap();
    assert_eq!((t.sent[0].method, t.sent[0].url.as_str()), ("PATCH", &*format!("{BASE}/sobjects/User/005A")));
    assert_eq!(body(&t.sent[0]), json!({"IsActive": false}));
    assert_eq!(out.remote.unwrap().remote_id, "005A", "a deactivated user still exists");
    assert_eq!(out.summary, "deactivated User 005A");
    assert!(out.removed, "deactivated counts as removed though the record stays");

    let mut no_eppn = person("P2");
    no_eppn.identifiers.clear();
    let e = provision(&mut fake(vec![]), &c, &tokens(), &req(Action::Added, no_eppn, None)).unwrap_err();
    assert!(matches!(e, Error::InvalidPerson(ref f) if f.field == "identifiers[eppn]"), "{e:?}");
}

#[test]
fn salesforce_errors_map_to_what_the_host_should_do() {
    let c = config(&[]);
    let run = |r: Response| provision(&mut fake(vec![r]), &c, &tokens(), &req(Action::Updated, person("P1"), Some(("Contact", "003A")))).unwrap_err();
    assert!(matches!(run(reply(401, json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]))), Error::Unauthorized(_)));
    assert!(matches!(run(reply(403, json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}]))), Error::RateLimited(_)));
    // The daily allowance is not throttling: no retry within minutes helps.
    let mut daily = reply(403, json!([{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]));
    daily.headers.push(("sforce-limit-info".into(), "api-usage=15000/15000".into()));
    assert_eq!(run(daily), Error::QuotaExhausted(Some((15000, 15000))));
    assert!(matches!(run(reply(400, json!([{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}]))), Error::Remote { retryable: true, .. }));
    assert!(matches!(run(reply(500, json!([{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred"}]))), Error::Remote { retryable: true, .. }));
    match run(reply(400, json!([{"errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Title is required"}]))) {
        Error::Remote { code, message, retryable: false, .. } => assert_eq!((code.as_str(), message.as_str()), ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Title is required")),
        other => panic!("{other:?}"),
    }
    // Too long: refused before anything is sent.
    let mut p = person("P1");
    p.name.family = Some("L".repeat(81));
    let mut t = fake(vec![]);
    let e = provision(&mut t, &c, &tokens(), &req(Action::Updated, p, None)).unwrap_err();
    assert!(matches!(e, Error::InvalidPerson(ref f) if f.field == "name.family"), "{e:?}");
    assert!(t.sent.is_empty());
    let mut no_instance = tokens();
    no_instance.instance_url = None;
    assert!(matches!(provision(&mut fake(vec![]), &c, &no_instance, &req(Action::Added, person("P1"), None)), Err(Error::Unauthorized(_))));
}

fn ok_records(n: usize, created: bool) -> Value {
    Value::Array((0..n).map(|i| json!({"id": format!("003{i:03}"), "success": true, "errors": [], "created": created})).collect())
}

#[test]
fn batches_upsert_two_hundred_a_call_and_map_each_result_back() {
    let c = config(&[("external_id_field", "Registry_ID__c")]);
    let mut reqs: Vec<Request> = (0..450).map(|i| req(Action::Reprovision, person(&format!("P{i}")), None)).collect();
    reqs[7].person.name.family = None;
    let mut second = ok_records(200, true);
    second[3] = json!({"success": false, "errors": [{"statusCode": "DUPLICATE_VALUE", "message": "duplicate value found", "fields": ["Email"]}]});
    second[4] = json!({"success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access", "fields": []}]});
    let mut t = fake(vec![reply(200, ok_records(200, true)), reply(200, second), reply(200, ok_records(49, false))]);
    let out = provision_batch(&mut t, &c, &tokens(), &reqs).unwrap();
    assert_eq!(t.sent.len(), 3, "449 valid people in three calls");
    assert!(t.sent.iter().all(|r| r.method == "PATCH" && r.url == format!("{BASE}/composite/sobjects/Contact/Registry_ID__c")));
    let first = body(&t.sent[0]);
    assert_eq!(first["allOrNone"], false);
    assert_eq!(first["records"][0]["attributes"]["type"], "Contact");
    assert_eq!(first["records"][0]["Registry_ID__c"], "P0");
    assert!(matches!(&out[7], Err(Error::InvalidPerson(f)) if f.field == "name.family"));
    // P7 was skipped, so request 204 is the second call's record 3.
    assert!(matches!(&out[204], Err(Error::Remote { code, retryable: false, message, .. }) if code == "DUPLICATE_VALUE" && message.contains("fields: Email")));
    assert!(matches!(&out[205], Err(Error::Remote { retryable: true, .. })));
    assert!(out[0].as_ref().unwrap().summary.starts_with("created Contact 003000"));
    assert!(out[449].as_ref().unwrap().summary.starts_with("updated Contact"));
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 447);
}

#[test]
fn batches_update_delete_and_create_again_what_salesforce_lost() {
    let c = config(&[("on_remove", "delete")]);
    let reqs = vec![
        req(Action::Updated, person("P1"), Some(("Contact", "003A"))),
        req(Action::Updated, person("P2"), Some(("Contact", "003B"))),
        req(Action::Added, person("P3"), None),
        req(Action::Deleted, person("P4"), Some(("Contact", "003D"))),
        req(Action::Deleted, person("P5"), Some(("Contact", "003E"))),
    ];
    let update = json!([{"id": "003A", "success": true, "errors": []}, {"success": false, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]}]);
    let create = json!([{"id": "003F", "success": true, "errors": []}, {"id": "003G", "success": true, "errors": []}]);
    let delete = json!([{"id": "003D", "success": true, "errors": []}, {"success": false, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]}]);
    let mut t = fake(vec![reply(200, update), reply(200, create), reply(200, delete)]);
    let out = provision_batch(&mut t, &c, &tokens(), &reqs).unwrap();
    assert_eq!(t.sent.iter().map(|r| r.method).collect::<Vec<_>>(), ["PATCH", "POST", "DELETE"]);
    assert_eq!(t.sent[2].url, format!("{BASE}/composite/sobjects?ids=003D,003E&allOrNone=false"));
    assert_eq!(body(&t.sent[1])["records"].as_array().unwrap().len(), 2, "P2 (gone) is created with P3");
    let ids: Vec<Option<String>> = out.iter().map(|r| r.as_ref().unwrap().remote.as_ref().map(|r| r.remote_id.clone())).collect();
    assert_eq!(ids, [Some("003A".into()), Some("003G".into()), Some("003F".into()), None, None], "creates go P3 then P2");
    let removed: Vec<bool> = out.iter().map(|r| r.as_ref().unwrap().removed).collect();
    assert_eq!(removed, [false, false, false, true, true]);
}

#[test]
fn a_batch_error_is_outer_only_before_anything_was_done() {
    let c = config(&[("external_id_field", "Registry_ID__c")]);
    let reqs: Vec<Request> = (0..300).map(|i| req(Action::Reprovision, person(&format!("P{i}")), None)).collect();
    let expired = || reply(401, json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]));
    assert!(matches!(provision_batch(&mut fake(vec![expired()]), &c, &tokens(), &reqs), Err(Error::Unauthorized(_))));
    let out = provision_batch(&mut fake(vec![reply(200, ok_records(200, true)), expired()]), &c, &tokens(), &reqs).unwrap();
    assert!(out[..200].iter().all(Result::is_ok));
    assert!(out[200..].iter().all(|r| matches!(r, Err(Error::Unauthorized(_)))));
}

/// Refuses, as a whole, any collection call holding the record whose
/// Registry_ID__c is `bad` (or every call, with `bad` empty), the way
/// Salesforce refuses a body it cannot deserialize.
struct Refuses {
    bad: &'static str,
    sent: Vec<usize>,
}

impl Transport for Refuses {
    fn send(&mut self, request: HttpRequest) -> Result<Response, String> {
        let records = body(&request)["records"].as_array().unwrap().clone();
        self.sent.push(records.len());
        if self.bad.is_empty() || records.iter().any(|r| r["Registry_ID__c"] == self.bad) {
            let refusal = json!([{"errorCode": "JSON_PARSER_ERROR", "message": "Cannot deserialize instance of boolean from VALUE_STRING value maybe"}]);
            return Ok(reply(400, refusal));
        }
        Ok(reply(200, ok_records(records.len(), true)))
    }
}

#[test]
fn a_call_refused_for_one_record_is_halved_until_that_record_fails_alone() {
    let c = config(&[("external_id_field", "Registry_ID__c")]);
    let reqs: Vec<Request> = (0..10).map(|i| req(Action::Reprovision, person(&format!("P{i}")), None)).collect();
    let mut t = Refuses { bad: "P3", sent: vec![] };
    let out = provision_batch(&mut t, &c, &tokens(), &reqs).unwrap();
    assert!(matches!(&out[3], Err(Error::Remote { code, status: Some(400), .. }) if code == "JSON_PARSER_ERROR"));
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 9, "everyone else is provisioned");
    assert_eq!(t.sent, [10, 5, 2, 3, 1, 2, 1, 1, 5], "halves, depth first");

    // Refused whatever is sent: not about one record. The search stops at
    // its budget and every record carries the refusal.
    let reqs: Vec<Request> = (0..200).map(|i| req(Action::Reprovision, person(&format!("P{i}")), None)).collect();
    let mut t = Refuses { bad: "", sent: vec![] };
    let out = provision_batch(&mut t, &c, &tokens(), &reqs).unwrap();
    assert_eq!(t.sent.len(), 1 + SPLIT_BUDGET);
    assert!(out.iter().all(|r| matches!(r, Err(Error::Remote { code, .. }) if code == "JSON_PARSER_ERROR")));
}

#[test]
fn removal_keeps_marks_or_deletes_as_the_target_says() {
    let gone = |c: &Config, current| provision(&mut fake(vec![reply(204, Value::Null)]), c, &tokens(), &req(Action::Deleted, person("P1"), current));
    // Keep (the Contact default): nothing is sent, and the record is no longer managed.
    let mut t = fake(vec![]);
    let out = provision(&mut t, &config(&[]), &tokens(), &req(Action::Deleted, person("P1"), Some(("Contact", "003A")))).unwrap();
    assert!(t.sent.is_empty());
    assert_eq!((out.summary.as_str(), out.removed), ("kept Contact 003A in Salesforce; no longer managed", true));
    // Mark: the mark fields are set and the record kept.
    let c = config(&[("on_remove", "mark"), ("mark_fields", "Registry_Status__c=deleted; Left__c={status}")]);
    let mut t = fake(vec![reply(204, Value::Null)]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Deleted, person("P1"), Some(("Contact", "003A")))).unwrap();
    assert_eq!((t.sent[0].method, t.sent[0].url.as_str()), ("PATCH", &*format!("{BASE}/sobjects/Contact/003A")));
    assert_eq!(body(&t.sent[0]), json!({"Registry_Status__c": "deleted", "Left__c": "active"}));
    assert!(out.summary.starts_with("marked Contact 003A (") && out.removed && out.remote.is_some());
    assert!(gone(&config(&[("on_remove", "delete")]), Some(("Contact", "003A"))).unwrap().summary.starts_with("deleted Contact 003A"));
    // In a batch, keep sends nothing and mark goes as one collection call.
    let reqs: Vec<Request> = (0..3).map(|i| req(Action::Deleted, person(&format!("P{i}")), Some(("Contact", "003X")))).collect();
    let mut t = fake(vec![]);
    let out = provision_batch(&mut t, &config(&[]), &tokens(), &reqs).unwrap();
    assert!(t.sent.is_empty() && out.iter().all(|o| o.as_ref().unwrap().summary.starts_with("kept")));
    let mut t = fake(vec![reply(200, ok_records(3, false))]);
    let out = provision_batch(&mut t, &c, &tokens(), &reqs).unwrap();
    assert_eq!((t.sent.len(), t.sent[0].url.as_str()), (1, &*format!("{BASE}/composite/sobjects")));
    assert_eq!(body(&t.sent[0])["records"][0]["Registry_Status__c"], "deleted");
    assert!(out.iter().all(|o| o.as_ref().unwrap().summary.starts_with("marked Contact")));
}

fn records(rs: &[(&str, &str, Option<&str>)]) -> Response {
    let records: Vec<Value> = rs.iter().map(|(id, email, ext)| json!({"Id": id, "Email": email, "Registry_ID__c": ext})).collect();
    reply(200, json!({"totalSize": records.len(), "done": true, "records": records}))
}

#[test]
fn people_without_a_record_adopt_the_one_the_org_holds_by_email() {
    let c = config(&[("external_id_field", "Registry_ID__c"), ("match_by", "email")]);
    // p0 is held once (adopted), p1 twice (ambiguous), p2 by another person's record (no match: upsert), p3 nowhere.
    let reqs: Vec<Request> = (0..4).map(|i| req(Action::Added, person(&format!("P{i}")), None)).collect();
    let found = records(&[("003A", "p0@example.org", None), ("003B", "p1@example.org", None), ("003C", "P1@example.org", Some("P1")), ("003D", "p2@example.org", Some("P9"))]);
    let adopted = json!([{"id": "003A", "success": true, "errors": []}]);
    let mut t = fake(vec![found, reply(200, ok_records(2, true)), reply(200, adopted)]);
    let out = provision_batch(&mut t, &c, &tokens(), &reqs).unwrap();
    assert_eq!(t.sent.len(), 3, "one query, one upsert call, one adoption call");
    let query = &t.sent[0].url;
    assert!(query.contains("SELECT%20Id%2C%20Email%2C%20Registry_ID__c%20FROM%20Contact%20WHERE%20Email%20IN%20%28") && query.contains("%27p3%40example.org%27"), "{query}");
    assert_eq!(body(&t.sent[2])["records"][0]["id"], "003A");
    assert_eq!(body(&t.sent[2])["records"][0]["Registry_ID__c"], "P0", "the adopted record gets the External ID");
    assert_eq!(out[0].as_ref().unwrap().summary, "matched existing Contact 003A by Email");
    match &out[1] {
        Err(Error::Remote { code, message, retryable: false, .. }) => {
            assert_eq!(code, "AMBIGUOUS_MATCH");
            assert!(message.starts_with("2 Contacts have Email p1@example.org: 003B, 003C;"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let upserts = body(&t.sent[1]);
    let upserted: Vec<&str> = upserts["records"].as_array().unwrap().iter().map(|r| r["Registry_ID__c"].as_str().unwrap()).collect();
    assert_eq!(upserted, ["P2", "P3"]);

    // One person alone: the same, with one query.
    let mut t = fake(vec![records(&[("003A", "p0@example.org", None)]), reply(204, Value::Null)]);
    let out = provision(&mut t, &c, &tokens(), &req(Action::Added, person("P0"), None)).unwrap();
    assert_eq!(t.sent[1].url, format!("{BASE}/sobjects/Contact/003A"));
    assert_eq!(out.summary, "matched existing Contact 003A by Email");
    // Someone already provisioned is never searched for.
    let mut t = fake(vec![reply(200, json!({"id": "003A", "success": true, "errors": [], "created": false}))]);
    provision(&mut t, &c, &tokens(), &req(Action::Updated, person("P0"), Some(("Contact", "003A")))).unwrap();
    assert_eq!(t.sent.len(), 1);
    assert!(!t.sent[0].url.contains("query"));
}

#[test]
fn a_record_two_people_would_adopt_is_neithers() {
    let c = config(&[("match_by", "email")]);
    let mut a = person("P1");
    let mut b = person("P2");
    a.emails[0].address = "shared@example.org".into();
    b.emails[0].address = "shared@example.org".into();
    let mut t = fake(vec![records(&[("003S", "shared@example.org", None)])]);
    let out = provision_batch(&mut t, &c, &tokens(), &[req(Action::Added, a, None), req(Action::Added, b, None)]).unwrap();
    assert_eq!(t.sent.len(), 1, "nothing is written");
    for r in out {
        assert!(matches!(r, Err(Error::Remote { code, message, .. }) if code == "AMBIGUOUS_MATCH" && message.contains("003S matches 2 people")));
    }
}

#[test]
fn a_preview_reads_but_never_writes_and_says_what_it_would_send() {
    let c = config(&[("external_id_field", "Registry_ID__c"), ("match_by", "email")]);
    let mut t = fake(vec![records(&[("003A", "p0@example.org", None)])]);
    let steps = preview(&mut t, &c, &tokens(), &req(Action::Added, person("P0"), None)).unwrap();
    assert_eq!(t.sent.len(), 1);
    assert_eq!(t.sent[0].method, "GET", "only the search went out");
    assert!(steps[0].description.starts_with("sync: the person is active"));
    let adopt = steps.last().unwrap();
    assert_eq!(adopt.description, "adopt the existing Contact 003A, matched by Email, and update it");
    assert_eq!(adopt.request.as_deref(), Some("PATCH /services/data/v62.0/sobjects/Contact/003A"));
    assert!(adopt.fields.contains(&("LastName".to_string(), "Lovelace".to_string())) && adopt.fields.contains(&("Registry_ID__c".to_string(), "P0".to_string())));
    // Nothing to match: the upsert it would send.
    let mut t = fake(vec![records(&[])]);
    let steps = preview(&mut t, &c, &tokens(), &req(Action::Added, person("P1"), None)).unwrap();
    assert_eq!(steps.last().unwrap().request.as_deref(), Some("PATCH /services/data/v62.0/sobjects/Contact/Registry_ID__c/P1"));
    // A removal kept: nothing sent, and the preview says so.
    let mut t = fake(vec![]);
    let steps = preview(&mut t, &config(&[]), &tokens(), &req(Action::Deleted, person("P2"), Some(("Contact", "003B")))).unwrap();
    assert!(t.sent.is_empty());
    assert_eq!(steps.last().unwrap().description, "nothing is sent: Contact 003B is kept in Salesforce and no longer managed");
}
