//! Bulk API 2.0 ingest: job states, one CSV upload, background processing
//! in emulator time, the three result files, the CSV rules and the limits.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

async fn send(http: &reqwest::Client, method: Method, url: &str, token: &str, body: Option<(&str, String)>) -> (u16, String) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some((content_type, b)) = body {
        req = req.header("content-type", content_type).body(b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An emulator whose jobs finish at once, a client, its token, and the
/// jobs URL.
async fn instant_jobs() -> (salesforce_emulator::Emulator, reqwest::Client, String, String) {
    let emu = start();
    emu.set_bulk_processing(Duration::ZERO, Duration::ZERO);
    let http = client();
    let t = tokens(&emu, &http).await;
    (emu, http.clone(), access(&t).to_string(), data_url(&t, "jobs/ingest"))
}

#[tokio::test]
async fn an_upsert_job_runs_through_its_states_and_reports_each_record() {
    let emu = start();
    emu.set_bulk_processing(Duration::from_secs(5), Duration::ZERO);
    let http = client();
    let t = tokens(&emu, &http).await;
    let token = access(&t).to_string();
    let jobs = data_url(&t, "jobs/ingest");
    // One record exists already: the upsert updates it.
    let existing = json(&api(&http, Method::POST, &data_url(&t, "sobjects/Contact"), &token, Some(json!({"LastName": "Old", "Registry_ID__c": "R2"}))).await.2)["id"].as_str().unwrap().to_string();

    let create = json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Registry_ID__c", "contentType": "CSV", "lineEnding": "LF"});
    let (status, body) = send(&http, Method::POST, &jobs, &token, Some(("application/json", create.to_string()))).await;
    assert_eq!(status, 200, "{body}");
    let job: Value = json(&body);
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750"), "{id}");
    assert_eq!((job["state"].as_str(), job["contentUrl"].as_str()), (Some("Open"), Some(format!("services/data/v62.0/jobs/ingest/{id}/batches").as_str())));

    // A header of field names; #N/A sets null; the third row misses LastName.
    let csv = "Registry_ID__c,LastName,Email,Department\nR1,Lovelace,ada@example.org,#N/A\nR2,Byron,,Poetry\nR3,,c@example.org,\n";
    let (status, _) = send(&http, Method::PUT, &format!("{jobs}/{id}/batches"), &token, Some(("text/csv", csv.into()))).await;
    assert_eq!(status, 201);
    let (status, body) = send(&http, Method::PUT, &format!("{jobs}/{id}/batches"), &token, Some(("text/csv", csv.into()))).await;
    assert_eq!(status, 400, "one upload per job: {body}");
    let (status, _) = send(&http, Method::GET, &format!("{jobs}/{id}/successfulResults/"), &token, None).await;
    assert_eq!(status, 400, "no results before JobComplete");

    let close = |state: &str| Some(("application/json", json!({"state": state}).to_string()));
    let (status, body) = send(&http, Method::PATCH, &format!("{jobs}/{id}"), &token, close("UploadComplete")).await;
    assert_eq!((status, json(&body)["state"].as_str()), (200, Some("InProgress")));
    assert_eq!(json(&send(&http, Method::GET, &format!("{jobs}/{id}"), &token, None).await.1)["state"], "InProgress", "it takes its time");
    assert!(emu.live_records("Contact").iter().all(|c| c["Registry_ID__c"] != "R1"), "nothing written yet");
    emu.advance_clock(Duration::from_secs(6));
    let info = json(&send(&http, Method::GET, &format!("{jobs}/{id}"), &token, None).await.1);
    assert_eq!((info["state"].as_str(), info["numberRecordsProcessed"].as_u64(), info["numberRecordsFailed"].as_u64()), (Some("JobComplete"), Some(3), Some(1)));

    let (_, ok) = send(&http, Method::GET, &format!("{jobs}/{id}/successfulResults/"), &token, None).await;
    let lines: Vec<&str> = ok.lines().collect();
    assert_eq!(lines[0], "sf__Id,sf__Created,Registry_ID__c,LastName,Email,Department");
    assert!(lines[1].ends_with(",true,R1,Lovelace,ada@example.org,#N/A") && lines[1].starts_with("003"), "{ok}");
    assert_eq!(lines[2], format!("{existing},false,R2,Byron,,Poetry"));
    let (_, failed) = send(&http, Method::GET, &format!("{jobs}/{id}/failedResults/"), &token, None).await;
    assert!(failed.starts_with("sf__Id,sf__Error,Registry_ID__c") && failed.contains(",REQUIRED_FIELD_MISSING:") && failed.contains(",R3,,c@example.org,"), "{failed}");
    assert_eq!(send(&http, Method::GET, &format!("{jobs}/{id}/unprocessedrecords/"), &token, None).await.1, "Registry_ID__c,LastName,Email,Department\n");
    let r2 = emu.live_records("Contact").into_iter().find(|c| c["Registry_ID__c"] == "R2").unwrap();
    assert_eq!((r2["LastName"].as_str(), r2["Email"].as_str()), (Some("Byron"), None), "an empty cell leaves the field as it was");
    let r1 = emu.live_records("Contact").into_iter().find(|c| c["Registry_ID__c"] == "R1").unwrap();
    assert!(r1["Department"].is_null(), "#N/A is null");
    assert_eq!(emu.bulk_jobs(), vec![(id, "JobComplete".to_string())]);
}

#[tokio::test]
async fn bad_jobs_fail_with_salesforces_words_and_the_limits_hold() {
    let (emu, http, token, jobs) = instant_jobs().await;
    let new_job = |body: Value| {
        let (http, jobs, token) = (&http, &jobs, &token);
        async move { send(http, Method::POST, jobs, token, Some(("application/json", body.to_string()))).await }
    };
    let (status, body) = new_job(json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"})).await;
    assert!(status == 400 && body.contains("not an External ID field"), "{body}");
    let (status, body) = new_job(json!({"object": "Nope", "operation": "insert"})).await;
    assert!(status == 400 && body.contains("Unable to find object: Nope"), "{body}");

    // Declared LF, sent CRLF: the job fails, as Salesforce's does.
    let run = |csv: &'static str| {
        let (http, jobs, token) = (&http, &jobs, &token);
        let new_job = &new_job;
        async move {
            let id = json(&new_job(json!({"object": "Contact", "operation": "insert", "lineEnding": "LF"})).await.1)["id"].as_str().unwrap().to_string();
            send(http, Method::PUT, &format!("{jobs}/{id}/batches"), token, Some(("text/csv", csv.into()))).await;
            let closed = send(http, Method::PATCH, &format!("{jobs}/{id}"), token, Some(("application/json", json!({"state": "UploadComplete"}).to_string()))).await;
            (closed, json(&send(http, Method::GET, &format!("{jobs}/{id}"), token, None).await.1))
        }
    };
    let (_, info) = run("LastName\r\nA\r\n").await;
    assert_eq!(info["state"], "Failed");
    assert!(info["errorMessage"].as_str().unwrap().contains("LineEnding is invalid on user data"), "{info}");
    let (_, info) = run("LastName,Favourite_Colour__c\nA,blue\n").await;
    assert_eq!((info["state"].as_str(), info["errorMessage"].as_str()), (Some("Failed"), Some("InvalidBatch : Field name not found : Favourite_Colour__c")));

    // The daily batches: one per 10,000 records; when they are used up a
    // job cannot be closed.
    emu.set_bulk_daily_batches(2);
    let ((status, body), _) = run("LastName\nA\n").await;
    assert!(status == 400 && body.contains("EXCEEDED_QUOTA"), "{body}");
    // Aborting an open job; a finished one cannot be aborted.
    let id = json(&new_job(json!({"object": "Contact", "operation": "insert"})).await.1)["id"].as_str().unwrap().to_string();
    let abort = Some(("application/json", json!({"state": "Aborted"}).to_string()));
    assert_eq!(json(&send(&http, Method::PATCH, &format!("{jobs}/{id}"), &token, abort.clone()).await.1)["state"], "Aborted");
    assert_eq!(send(&http, Method::PATCH, &format!("{jobs}/{id}"), &token, abort).await.0, 400);
    // Every call counted against the daily API requests.
    assert!(emu.api_usage().0 >= 12, "{:?}", emu.api_usage());
}

#[tokio::test]
async fn an_upload_of_many_megabytes_is_taken() {
    let (_emu, http, token, jobs) = instant_jobs().await;
    let create = json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Registry_ID__c"});
    let id = json(&send(&http, Method::POST, &jobs, &token, Some(("application/json", create.to_string()))).await.1)["id"].as_str().unwrap().to_string();
    // 40,000 rows, some 3 MB: more than a web framework's default body limit.
    let mut csv = String::from("Registry_ID__c,LastName,Description\n");
    for i in 0..40_000 {
        csv.push_str(&format!("M{i},Person {i},{}\n", "x".repeat(60)));
    }
    assert!(csv.len() > 3_000_000);
    assert_eq!(send(&http, Method::PUT, &format!("{jobs}/{id}/batches"), &token, Some(("text/csv", csv))).await.0, 201);
}
