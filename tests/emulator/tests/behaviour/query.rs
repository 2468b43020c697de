//! SOQL queries, paging, and sObject Collections.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn q(t: &Value, soql: &str) -> String {
    let mut u = url::Url::parse(&data_url(t, "query")).unwrap();
    u.query_pairs_mut().append_pair("q", soql);
    u.to_string()
}

async fn collection(http: &reqwest::Client, t: &Value, method: Method, rest: &str, body: Option<Value>) -> (u16, Value) {
    let (s, _, text) = api(http, method, &data_url(t, rest), access(t), body).await;
    (s, json(&text))
}

#[tokio::test]
async fn select_where_order_limit_and_count() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let records: Vec<Value> = ["Lovelace", "Babbage", "Hopper", "lovelace"]
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"attributes": {"type": "Contact"}, "LastName": n, "Email": format!("p{i}@example.org"), "Department": if i % 2 == 0 { "Math" } else { "Navy" }}))
        .collect();
    let (s, _) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"allOrNone": true, "records": records}))).await;
    assert_eq!(s, 200);

    let (s, _, body) = api(&http, Method::GET, &q(&t, "SELECT Id, LastName FROM Contact WHERE LastName = 'LOVELACE' AND Department = 'Math'"), access(&t), None).await;
    assert_eq!(s, 200);
    let v = json(&body);
    assert_eq!(v["totalSize"], 1);
    assert_eq!(v["done"], true);
    let rec = &v["records"][0];
    let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["attributes", "Id", "LastName"]);
    assert_eq!(rec["attributes"]["type"], "Contact");

    let (_, _, body) = api(&http, Method::GET, &q(&t, "SELECT LastName FROM Contact WHERE Email LIKE '%@example.org' ORDER BY LastName DESC LIMIT 3"), access(&t), None).await;
    let names: Vec<Value> = json(&body)["records"].as_array().unwrap().iter().map(|r| r["LastName"].clone()).collect();
    assert_eq!(names.len(), 3);
    assert_eq!(names[2], "Hopper", "{names:?}");

    let (_, _, body) = api(&http, Method::GET, &q(&t, "SELECT COUNT() FROM Contact WHERE Department IN ('Navy') OR LastName = null"), access(&t), None).await;
    assert_eq!(json(&body), json!({"totalSize": 2, "done": true, "records": []}));
}

#[tokio::test]
async fn query_errors_carry_salesforce_s_caret_messages() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let (s, _, body) = api(&http, Method::GET, &q(&t, "SELECT Foo FROM Contact"), access(&t), None).await;
    assert_eq!(s, 400);
    let e = &json(&body)[0];
    assert_eq!(e["errorCode"], "INVALID_FIELD");
    assert!(e["message"].as_str().unwrap().starts_with("\nSELECT Foo FROM Contact\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Contact'."));
    let (_, _, body) = api(&http, Method::GET, &q(&t, "SELECT Id FROM Widget"), access(&t), None).await;
    assert_eq!(json(&body)[0]["errorCode"], "INVALID_TYPE");
    let (_, _, body) = api(&http, Method::GET, &q(&t, "SELECT Id FROM Contact WHERE"), access(&t), None).await;
    assert_eq!(json(&body)[0]["errorCode"], "MALFORMED_QUERY");
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, "query/01gBOGUS-2000"), access(&t), None).await;
    assert_eq!((s, body.as_str()), (400, r#"[{"message":"invalid query locator","errorCode":"INVALID_QUERY_LOCATOR"}]"#));
}

#[tokio::test]
async fn large_results_page_with_next_records_url() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    for chunk in 0..3 {
        let records: Vec<Value> = (0..150).map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("P{chunk}-{i}")})).collect();
        let (s, v) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"allOrNone": false, "records": records}))).await;
        assert_eq!(s, 200);
        assert!(v.as_array().unwrap().iter().all(|r| r["success"] == true));
    }
    let r = http.get(q(&t, "SELECT Id FROM Contact")).bearer_auth(access(&t)).header("Sforce-Query-Options", "batchSize=200").send().await.unwrap();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["totalSize"], 450);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().unwrap().len(), 200);
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["totalSize", "done", "nextRecordsUrl", "records"]);
    let mut next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.starts_with("/services/data/v62.0/query/01g") && next.ends_with("-200"), "{next}");
    let mut seen = 200;
    loop {
        let (s, _, body) = api(&http, Method::GET, &format!("{}{next}", t["instance_url"].as_str().unwrap()), access(&t), None).await;
        assert_eq!(s, 200);
        let page = json(&body);
        seen += page["records"].as_array().unwrap().len();
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        next = page["nextRecordsUrl"].as_str().unwrap().to_string();
    }
    assert_eq!(seen, 450);
}

#[tokio::test]
async fn collections_create_with_and_without_all_or_none() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let recs = json!([
        {"attributes": {"type": "Contact"}, "LastName": "Good"},
        {"attributes": {"type": "Contact"}, "FirstName": "NoLastName"},
        {"attributes": {"type": "Contact"}, "LastName": "AlsoGood"},
    ]);
    let (s, v) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"allOrNone": true, "records": recs}))).await;
    assert_eq!(s, 200);
    let rolled = json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]});
    assert_eq!(v[0], rolled);
    assert_eq!(v[1], json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]}));
    assert_eq!(v[2], rolled);
    assert!(emu.records("Contact").is_empty(), "all or none: nothing stored");

    let (_, v) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"allOrNone": false, "records": recs}))).await;
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[1]["success"], false);
    assert_eq!(v[2]["success"], true);
    assert_eq!(emu.live_records("Contact").len(), 2);

    let too_many: Vec<Value> = (0..201).map(|i| json!({"attributes": {"type": "Contact"}, "LastName": i.to_string()})).collect();
    let (s, v) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"records": too_many}))).await;
    assert_eq!((s, v), (400, json!([{"message": "record limit reached. cannot submit more than 200 records into this call", "errorCode": "EXCEEDED_ID_LIMIT"}])));
}

/// Salesforce reads a whole request before it acts on any record: a value
/// it cannot deserialize refuses the whole collection call, whatever
/// allOrNone says, and nothing is stored.
#[tokio::test]
async fn one_unparseable_value_refuses_the_whole_collection() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let recs = json!([
        {"attributes": {"type": "Contact"}, "LastName": "Good", "DoNotCall": false},
        {"attributes": {"type": "Contact"}, "LastName": "Bad", "DoNotCall": "maybe"},
        {"attributes": {"type": "Contact"}, "LastName": "AlsoGood", "DoNotCall": "TRUE"},
    ]);
    let (s, v) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"allOrNone": false, "records": recs}))).await;
    assert_eq!(s, 400);
    assert_eq!(v[0]["errorCode"], "JSON_PARSER_ERROR");
    assert!(v[0]["message"].as_str().unwrap().starts_with("Cannot deserialize instance of boolean from VALUE_STRING value \"maybe\""), "{v}");
    assert!(emu.records("Contact").is_empty());
    let upsert = json!([{"attributes": {"type": "Contact"}, "Registry_ID__c": "P1", "LastName": "L", "HasOptedOutOfEmail": {"a": 1}}]);
    let (s, v) = collection(&http, &t, Method::PATCH, "composite/sobjects/Contact/Registry_ID__c", Some(json!({"records": upsert}))).await;
    assert_eq!((s, v[0]["errorCode"].as_str()), (400, Some("JSON_PARSER_ERROR")));
    // Without the bad record, the same call goes through.
    let good = json!([recs[0], recs[2]]);
    let (s, v) = collection(&http, &t, Method::POST, "composite/sobjects", Some(json!({"allOrNone": false, "records": good}))).await;
    assert_eq!((s, v[1]["success"].as_bool()), (200, Some(true)));
    assert_eq!(emu.live_records("Contact").iter().map(|r| r["DoNotCall"].clone()).collect::<Vec<_>>(), [json!(false), json!(true)]);
}

#[tokio::test]
async fn collections_update_upsert_retrieve_and_delete() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let (_, v) = collection(
        &http,
        &t,
        Method::PATCH,
        "composite/sobjects/Contact/Registry_ID__c",
        Some(json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Contact"}, "Registry_ID__c": "r1", "LastName": "One"},
            {"attributes": {"type": "Contact"}, "Registry_ID__c": "r2", "LastName": "Two"},
        ]})),
    )
    .await;
    assert_eq!(v[0]["created"], true);
    let id1 = v[0]["id"].as_str().unwrap().to_string();
    let id2 = v[1]["id"].as_str().unwrap().to_string();
    let (_, v) = collection(
        &http,
        &t,
        Method::PATCH,
        "composite/sobjects/Contact/Registry_ID__c",
        Some(json!({"records": [{"attributes": {"type": "Contact"}, "Registry_ID__c": "R1", "Title": "Dr"}]})),
    )
    .await;
    assert_eq!(v, json!([{"id": id1, "success": true, "errors": [], "created": false}]));

    let (_, v) = collection(
        &http,
        &t,
        Method::PATCH,
        "composite/sobjects",
        Some(json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Contact"}, "id": id2, "Department": "Ops"},
            {"attributes": {"type": "Contact"}, "id": "003000000000009AAA", "Department": "Ops"},
        ]})),
    )
    .await;
    assert_eq!(v[0], json!({"id": id2, "success": true, "errors": []}));
    assert_eq!(v[1], json!({"success": false, "errors": [{"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id", "fields": []}]}));
    // A well-formed id of another object is MALFORMED_ID.
    let account = emu.records("Account")[0]["Id"].as_str().unwrap().to_string();
    let (_, v) = collection(&http, &t, Method::PATCH, "composite/sobjects", Some(json!({"records": [{"attributes": {"type": "Contact"}, "id": account, "Department": "x"}]}))).await;
    assert_eq!(v[0]["errors"][0], json!({"statusCode": "MALFORMED_ID", "message": format!("Contact ID: id value of incorrect type: {account}"), "fields": ["Id"]}));

    let (_, v) = collection(&http, &t, Method::POST, "composite/sobjects/Contact", Some(json!({"ids": [id1, id2, "003000000000009AAA"], "fields": ["LastName", "Title"]}))).await;
    assert_eq!(v[0]["LastName"], "One");
    assert_eq!(v[0]["Title"], "Dr");
    assert_eq!(v[2], Value::Null);

    let (s, v) = collection(&http, &t, Method::DELETE, &format!("composite/sobjects?ids={id1},bogus&allOrNone=false"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v[0], json!({"id": id1, "success": true, "errors": []}));
    assert_eq!(v[1], json!({"success": false, "errors": [{"statusCode": "MALFORMED_ID", "message": "malformed id bogus", "fields": []}]}));
    let (_, v) = collection(&http, &t, Method::DELETE, &format!("composite/sobjects?ids={id2},{id1}&allOrNone=true"), None).await;
    assert_eq!(v[0]["errors"][0]["statusCode"], "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(v[0]["id"], id2.as_str());
    assert_eq!(v[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    assert_eq!(emu.live_records("Contact").len(), 1, "the rolled-back delete kept r2");
}
