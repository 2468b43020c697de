//! The instance host's REST API: versions, auth, limits, sObject CRUD,
//! validation, Users, upsert and describe.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn versions_retired_and_unknown() {
    let emu = start();
    let http = client();
    let base = format!("{}/services/data", emu.instance_url());
    let list: Value = http.get(format!("{base}/")).send().await.unwrap().json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list[0], json!({"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"}));
    assert!(list.iter().any(|v| v == &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})));
    let r = http.get(format!("{base}/v30.0/limits")).send().await.unwrap();
    assert_eq!(r.status(), 410);
    let r = http.get(format!("{base}/v99.0/limits")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#);
}

#[tokio::test]
async fn no_or_bad_token_is_invalid_session_and_every_call_is_counted() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let (s, limit, body) = api(&http, Method::GET, &data_url(&t, "limits"), "00Dbogus!token", None).await;
    assert_eq!((s, body.as_str()), (401, r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#));
    assert_eq!(limit, None);
    let (s, limit, body) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!(s, 200);
    assert_eq!(limit.as_deref(), Some("api-usage=1/15000"));
    assert_eq!(json(&body)["DailyApiRequests"], json!({"Max": 15000, "Remaining": 14999}));
    // Errors count too, and carry the header.
    let (s, limit, _) = api(&http, Method::GET, &data_url(&t, "sobjects/Contact/003000000000001AAA"), access(&t), None).await;
    assert_eq!(s, 404);
    assert_eq!(limit.as_deref(), Some("api-usage=2/15000"));
    assert_eq!(emu.api_usage(), (2, 15000));
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, ""), access(&t), None).await;
    assert_eq!(s, 200);
    let res = json(&body);
    assert_eq!(res["sobjects"], "/services/data/v62.0/sobjects");
    assert_eq!(res["identity"], t["id"]);
}

#[tokio::test]
async fn contact_create_read_update_delete() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let tok = access(&t);
    let (s, _, body) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), tok, Some(json!({"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.mil"}))).await;
    assert_eq!(s, 201);
    let created = json(&body);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(body, format!(r#"{{"id":"{id}","success":true,"errors":[]}}"#));
    assert!(id.starts_with("003") && id.len() == 18);

    let (s, _, body) = api(&http, Method::GET, &data_url(&t, &format!("sobjects/Contact/{id}")), tok, None).await;
    assert_eq!(s, 200);
    let rec = json(&body);
    assert_eq!(rec["attributes"], json!({"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{id}")}));
    assert_eq!(rec["Name"], "Grace Hopper");
    assert_eq!(rec["MiddleName"], Value::Null);
    assert_eq!(rec["OwnerId"], t["id"].as_str().unwrap().rsplit('/').next().unwrap());
    // The 15-character form names the same record; ?fields= selects.
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, &format!("sobjects/Contact/{}?fields=LastName,email", &id[..15])), tok, None).await;
    assert_eq!(s, 200);
    assert_eq!(json(&body), json!({"attributes": rec["attributes"], "LastName": "Hopper", "Email": "grace@navy.mil"}));

    let (s, _, body) = api(&http, Method::PATCH, &data_url(&t, &format!("sobjects/Contact/{id}")), tok, Some(json!({"Title": "Rear Admiral", "Email": null}))).await;
    assert_eq!((s, body.as_str()), (204, ""));
    let rec = &emu.live_records("Contact")[0];
    assert_eq!(rec["Title"], "Rear Admiral");
    assert!(rec.get("Email").is_none());

    let (s, _, body) = api(&http, Method::DELETE, &data_url(&t, &format!("sobjects/Contact/{id}")), tok, None).await;
    assert_eq!((s, body.as_str()), (204, ""));
    for m in [Method::DELETE, Method::GET, Method::PATCH] {
        let (s, _, body) = api(&http, m, &data_url(&t, &format!("sobjects/Contact/{id}")), tok, Some(json!({"Title": "x"}))).await;
        assert_eq!((s, body.as_str()), (404, r#"[{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED","fields":[]}]"#));
    }
    assert_eq!(emu.records("Contact")[0]["IsDeleted"], true);
    assert!(emu.live_records("Contact").is_empty());
}

#[tokio::test]
async fn lookups_of_missing_and_malformed_ids() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let tok = access(&t);
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, "sobjects/Contact/003000000000001AAA"), tok, None).await;
    assert_eq!((s, body.as_str()), (404, r#"[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]"#));
    let (s, _, body) = api(&http, Method::PATCH, &data_url(&t, "sobjects/Contact/not-an-id"), tok, Some(json!({"LastName": "x"}))).await;
    assert_eq!(
        (s, body.as_str()),
        (404, r#"[{"message":"Provided external ID field does not exist or is not accessible: not-an-id","errorCode":"NOT_FOUND","fields":[]}]"#)
    );
    let (s, _, _) = api(&http, Method::GET, &data_url(&t, "sobjects/Widget__c/x"), tok, None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn field_validation_matches_salesforce() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let tok = access(&t);
    let long = "x".repeat(81);
    let cases = vec![
        (json!({"FirstName": "A"}), r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]"#.to_string()),
        (json!({"LastName": "A", "Foo__c": "x"}), r#"[{"message":"No such column 'Foo__c' on sobject of type Contact","errorCode":"INVALID_FIELD"}]"#.to_string()),
        (json!({"LastName": long}), format!(r#"[{{"message":"Last Name: data value too large: {long} (max length=80)","errorCode":"STRING_TOO_LONG","fields":["LastName"]}}]"#)),
        (json!({"LastName": "A", "Email": "not-an-email"}), r#"[{"message":"Email: invalid email address: not-an-email","errorCode":"INVALID_EMAIL_ADDRESS","fields":["Email"]}]"#.to_string()),
        (json!({"LastName": "A", "AccountId": "001bad"}), r#"[{"message":"Account ID: id value of incorrect type: 001bad","errorCode":"MALFORMED_ID","fields":["AccountId"]}]"#.to_string()),
        (json!({"Id": "003000000000001AAA", "LastName": "A"}), r#"[{"message":"The Id field should not be specified in the sobject data.","errorCode":"INVALID_FIELD","fields":[]}]"#.to_string()),
        (json!({"LastName": "A", "Name": "B"}), r#"[{"message":"Unable to create/update fields: Name. Please check the security settings of this field and verify that it is read/write for your profile or permission set.","errorCode":"INVALID_FIELD_FOR_INSERT_UPDATE","fields":["Name"]}]"#.to_string()),
    ];
    for (body, expected) in cases {
        let (s, _, got) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), tok, Some(body.clone())).await;
        assert_eq!((s, got), (400, expected), "{body}");
    }
    let r = http.post(data_url(&t, "sobjects/Contact")).bearer_auth(tok).header("content-type", "application/json").body("{\"LastName\":").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(&r.text().await.unwrap())[0]["errorCode"], "JSON_PARSER_ERROR");
    // A real account id is accepted; nothing above was stored.
    let account = emu.records("Account")[0]["Id"].as_str().unwrap().to_string();
    let (s, _, _) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), tok, Some(json!({"LastName": "A", "AccountId": account}))).await;
    assert_eq!(s, 201);
    assert_eq!(emu.live_records("Contact").len(), 1);
}

/// A complete User body; the test sets a real `ProfileId`.
fn user_body(username: &str, nickname: &str) -> Value {
    json!({
        "Username": username, "LastName": "Turing", "Email": "alan@example.com", "Alias": "aturing",
        "CommunityNickname": nickname, "TimeZoneSidKey": "Europe/London", "LocaleSidKey": "en_GB",
        "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US",
    })
}

#[tokio::test]
async fn users_are_validated_unique_and_deactivated_not_deleted() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let tok = access(&t);
    let (_, _, q) = api(&http, Method::GET, &data_url(&t, "query?q=SELECT+Id+FROM+Profile+WHERE+Name+%3D+%27Standard+User%27"), tok, None).await;
    let profile = json(&q)["records"][0]["Id"].as_str().unwrap().to_string();
    let body = |username: &str, nick: &str| {
        let mut b = user_body(username, nick);
        b["ProfileId"] = json!(profile);
        b
    };
    let users_url = data_url(&t, "sobjects/User");
    let post = |b: Value| api(&http, Method::POST, &users_url, tok, Some(b));

    let (s, _, _) = post(json!({"LastName": "x"})).await;
    assert_eq!(s, 400);
    let (_, _, missing) = post(json!({"LastName": "x"})).await;
    assert_eq!(
        json(&missing)[0]["message"],
        "Required fields are missing: [Username, Email, Alias, CommunityNickname, TimeZoneSidKey, LocaleSidKey, EmailEncodingKey, LanguageLocaleKey, ProfileId]"
    );
    let mut b = body("alan@example.com", "alan");
    b["Alias"] = json!("alanturing");
    let (s, _, e) = post(b).await;
    assert_eq!((s, json(&e)[0]["errorCode"].clone()), (400, json!("STRING_TOO_LONG")));
    let mut b = body("alan@example.com", "alan");
    b["TimeZoneSidKey"] = json!("Mars/Olympus");
    let (_, _, e) = post(b).await;
    assert_eq!(json(&e)[0], json!({"message": "Time Zone: bad value for restricted picklist field: Mars/Olympus", "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["TimeZoneSidKey"]}));

    let (s, _, created) = post(body("alan@example.com", "alan")).await;
    assert_eq!(s, 201, "{created}");
    let id = json(&created)["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("005"));
    // Usernames are unique across all orgs, nicknames within the org.
    for (username, nick, code) in [
        ("ALAN@example.com", "other", "DUPLICATE_USERNAME"),
        ("taken@other.example.com", "other2", "DUPLICATE_USERNAME"),
        ("new@example.com", "alan", "DUPLICATE_COMM_NICKNAME"),
    ] {
        let (s, _, e) = post(body(username, nick)).await;
        assert_eq!((s, json(&e)[0]["errorCode"].clone()), (400, json!(code)), "{username}");
    }
    let (_, _, e) = post(body("taken@other.example.com", "x")).await;
    assert_eq!(
        json(&e)[0]["message"],
        "Duplicate Username.<br>The username already exists in this or another Salesforce organization. Usernames must be unique across all Salesforce organizations. To resolve, use a different username (it doesn't need to match the user's email address). "
    );

    let (s, _, body) = api(&http, Method::DELETE, &data_url(&t, &format!("sobjects/User/{id}")), tok, None).await;
    assert_eq!((s, body.as_str()), (405, r#"[{"message":"HTTP Method 'DELETE' not allowed. Allowed are HEAD,GET,PATCH","errorCode":"METHOD_NOT_ALLOWED"}]"#));
    let (s, _, _) = api(&http, Method::PATCH, &data_url(&t, &format!("sobjects/User/{id}")), tok, Some(json!({"IsActive": false}))).await;
    assert_eq!(s, 204);
    let user = emu.live_records("User").into_iter().find(|u| u["Id"] == id.as_str()).unwrap();
    assert_eq!(user["IsActive"], false);
    assert_eq!(user["FederationIdentifier"], Value::Null);
}

#[tokio::test]
async fn upsert_by_external_id() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let tok = access(&t);
    let url = |v: &str, ver: &str| format!("{}/services/data/v{ver}/sobjects/Contact/Registry_ID__c/{v}", t["instance_url"].as_str().unwrap());
    let (s, _, body) = api(&http, Method::PATCH, &url("p-1", "62.0"), tok, Some(json!({"LastName": "One"}))).await;
    assert_eq!(s, 201);
    let id = json(&body)["id"].as_str().unwrap().to_string();
    assert_eq!(body, format!(r#"{{"id":"{id}","success":true,"errors":[],"created":true}}"#));
    let (s, _, body) = api(&http, Method::PATCH, &url("P-1", "62.0"), tok, Some(json!({"LastName": "Uno"}))).await;
    assert_eq!((s, body), (200, format!(r#"{{"id":"{id}","success":true,"errors":[],"created":false}}"#)));
    // Before v46 an update answers 204 with no body.
    let (s, _, body) = api(&http, Method::PATCH, &url("p-1", "45.0"), tok, Some(json!({"LastName": "Eins"}))).await;
    assert_eq!((s, body.as_str()), (204, ""));
    assert_eq!(emu.live_records("Contact").len(), 1);
    assert_eq!(emu.live_records("Contact")[0]["LastName"], "Eins");
    // Reading by external id.
    let (s, _, body) = api(&http, Method::GET, &url("p-1", "62.0"), tok, None).await;
    assert_eq!((s, json(&body)["Id"].clone()), (200, json!(id)));

    // Several matches on a non-unique external id: 300 with the record URLs.
    let t2 = &t;
    for _ in 0..2 {
        api(&http, Method::POST, &data_url(t2, "sobjects/Contact"), tok, Some(json!({"LastName": "Dup", "Legacy_Key__c": "L9"}))).await;
    }
    let legacy = format!("{}/services/data/v62.0/sobjects/Contact/Legacy_Key__c/L9", t["instance_url"].as_str().unwrap());
    let (s, _, body) = api(&http, Method::PATCH, &legacy, tok, Some(json!({"LastName": "Which"}))).await;
    assert_eq!(s, 300);
    let urls = json(&body);
    assert_eq!(urls.as_array().unwrap().len(), 2);
    assert!(urls[0].as_str().unwrap().starts_with("/services/data/v62.0/sobjects/Contact/003"));
    let unknown = format!("{}/services/data/v62.0/sobjects/Contact/Nope__c/1", t["instance_url"].as_str().unwrap());
    let (s, _, body) = api(&http, Method::PATCH, &unknown, tok, Some(json!({"LastName": "x"}))).await;
    assert_eq!(
        (s, body.as_str()),
        (404, r#"[{"message":"Provided external ID field does not exist or is not accessible: Nope__c","errorCode":"NOT_FOUND","fields":[]}]"#)
    );
    // Unique external ids cannot be duplicated by a plain create.
    let (s, _, body) = api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), tok, Some(json!({"LastName": "Again", "Registry_ID__c": "P-1"}))).await;
    assert_eq!(s, 400);
    assert_eq!(json(&body)[0]["message"], format!("duplicate value found: Registry_ID__c duplicates value on record with id: {id}"));
}

#[tokio::test]
async fn describe_lists_objects_and_seeded_custom_fields() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let (_, _, body) = api(&http, Method::GET, &data_url(&t, "sobjects"), access(&t), None).await;
    let global = json(&body);
    let names: Vec<&str> = global["sobjects"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Account", "Contact", "User", "Profile", "Group", "GroupMember"]);
    let (_, _, body) = api(&http, Method::GET, &data_url(&t, "sobjects/Contact/describe"), access(&t), None).await;
    let d = json(&body);
    let field = |n: &str| d["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).cloned().unwrap();
    assert_eq!(field("LastName")["length"], 80);
    assert_eq!(field("LastName")["nillable"], false);
    assert_eq!(field("Registry_ID__c")["externalId"], true);
    assert_eq!(field("Registry_ID__c")["unique"], true);
    assert_eq!(field("Name")["createable"], false);
    let (_, _, body) = api(&http, Method::GET, &data_url(&t, "sobjects/User/describe"), access(&t), None).await;
    assert_eq!(json(&body)["deletable"], false);
}
