//! The Bulk API 2.0 path for large batches: one ingest job (`upsert` on the
//! External ID field) with the batch as one CSV upload, closed, then left to
//! Salesforce; the host polls (`poll`) until the job is `JobComplete` and
//! the three result files give each person's outcome. Four calls to submit
//! a batch of any size up to 150 MB, a few to poll, three to read.

use serde_json::{Value, json};

use super::*;
use super::batch::BatchResults;

/// The first wait before a poll, and the longest: waits double between.
pub const FIRST_POLL_MS: u32 = 1_000;
/// The longest wait between polls.
pub const MAX_POLL_MS: u32 = 30_000;
/// The most data one job takes (Salesforce: 150 MB; kept under for base64
/// and headers).
pub const MAX_CSV_BYTES: usize = 100 * 1024 * 1024;

/// A batch the plugin handed to Bulk API: the job id, and the wait before
/// the next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// `job:<id>:<next wait ms>`, as the host keeps it.
    pub reference: String,
    /// When to poll, ms from now.
    pub poll_after_ms: u32,
}

/// What a bulk call answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Every request's outcome, in order.
    Done(BatchResults),
    /// Still with Salesforce.
    Submitted(Submitted),
}

/// Whether these settings send large batches through Bulk API: an
/// External ID field to upsert by, and no matching to do first (which needs
/// a query per record).
fn bulk_settings(config: &Config) -> bool {
    config.bulk_threshold.is_some() && config.external_id_field.is_some() && config.matching.is_none()
}

/// Whether a batch of `len` requests may go through Bulk API under these
/// settings; [`plan`] then checks that every request is an upsert.
pub fn large_enough(config: &Config, len: usize) -> bool {
    bulk_settings(config) && config.bulk_threshold.is_some_and(|n| len >= n)
}

/// People per Bulk API job: the host hands batches this large when the
/// settings send large batches through Bulk API. One job's people and its
/// CSV must fit the plugin's memory limit (64 MiB by default) in one call,
/// even with the CSV written a person at a time: 100,000 did not (65.3 MiB,
/// measured), 50,000 do with room to spare.
pub const JOB_RECORDS: u32 = 50_000;

/// The batch size these settings want: a Bulk API job's worth when large
/// batches go through Bulk API, else the host's default.
pub fn batch_size(config: &Config) -> Option<u32> {
    bulk_settings(config).then_some(JOB_RECORDS)
}

/// What a batch's people map to, without holding their fields: the CSV
/// header (the External ID first), each mapped person's External ID value
/// by request index, and the others' mapping errors. Deterministic: `poll`
/// works it out again to read the results.
struct Plan {
    header: Vec<String>,
    keys: Vec<(usize, String)>,
    errors: Vec<(usize, Error)>,
}

/// The batch's plan, read a page at a time; `None` when a request is not an
/// upsert (a removal, say), which Bulk API's one upsert job cannot carry.
fn plan(config: &Config, reqs: &dyn Requests) -> Option<Plan> {
    let ext = config.external_id_field.clone().unwrap_or_default();
    let mut names = std::collections::BTreeSet::new();
    let (mut keys, mut errors) = (Vec::new(), Vec::new());
    // One person's fields at a time: a job's worth of maps at once would
    // not fit a plugin's memory.
    requests::each(reqs, &mut |i, r| {
        if intent(config, &r) != Intent::Sync {
            return Err(());
        }
        match sync_fields(config, &r.person) {
            Ok(f) => {
                keys.push((i, f.get(&ext).and_then(Value::as_str).unwrap_or_default().to_string()));
                names.extend(f.into_iter().map(|(k, _)| k).filter(|k| *k != ext));
            }
            Err(e) => errors.push((i, e)),
        }
        Ok(())
    })
    .ok()?;
    let header = std::iter::once(ext).chain(names).collect();
    Some(Plan { header, keys, errors })
}

fn csv_error(e: impl std::fmt::Display) -> Error {
    Error::Remote { code: "CSV".into(), message: e.to_string(), status: None, retryable: false }
}

/// The CSV upload: the header, then a row per mapped person, read again a
/// page at a time and written at once.
fn to_csv(config: &Config, reqs: &dyn Requests, plan: &Plan) -> Result<Vec<u8>, Error> {
    let cell = |v: Option<&Value>| match v {
        // Left out: left as it is, as a collection upsert leaves it.
        None => String::new(),
        Some(Value::Null) => "#N/A".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(&plan.header).map_err(csv_error)?;
    let mut mapped = plan.keys.iter().map(|(i, _)| *i).peekable();
    requests::each(reqs, &mut |i, r| {
        if mapped.next_if_eq(&i).is_none() {
            return Ok(());
        }
        let f = sync_fields(config, &r.person)?;
        w.write_record(plan.header.iter().map(|h| cell(f.get(h)))).map_err(csv_error)
    })?;
    w.into_inner().map_err(csv_error)
}

fn ok_json(resp: &Response) -> Result<Value, Error> {
    if resp.status >= 300 {
        return Err(rest_error(resp));
    }
    json_body(resp)
}

/// Creates the job, uploads the batch, closes it; `None` (nothing sent)
/// when the batch is not for Bulk API: too small, or not all upserts.
pub fn submit(t: &mut dyn Transport, config: &Config, tokens: &Tokens, reqs: &dyn Requests) -> Result<Option<Submitted>, Error> {
    if !large_enough(config, reqs.len()) {
        return Ok(None);
    }
    let Some(plan) = plan(config, reqs) else { return Ok(None) };
    let mut api = Api::new(t, config, tokens)?;
    let data = to_csv(config, reqs, &plan)?;
    let header = plan.header;
    if data.len() > MAX_CSV_BYTES {
        return Err(Error::Remote { code: "BULK_TOO_LARGE".into(), message: format!("the batch's CSV is {} MB, more than a Bulk API job takes", data.len() / 1_048_576), status: None, retryable: false });
    }
    let object = config.object.api_name();
    let body = json!({"object": object, "operation": "upsert", "externalIdFieldName": header[0], "contentType": "CSV", "lineEnding": "LF"});
    let job = ok_json(&api.send("POST", "jobs/ingest", Some(&body))?)?;
    let id = job["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| Error::Remote { code: "BULK".into(), message: "the new job has no id".into(), status: None, retryable: true })?.to_string();
    let uploaded = (|| {
        let uploaded = api.send_raw("PUT", &format!("jobs/ingest/{id}/batches"), "text/csv", data)?;
        if uploaded.status >= 300 {
            return Err(rest_error(&uploaded));
        }
        ok_json(&api.send("PATCH", &format!("jobs/ingest/{id}"), Some(&json!({"state": "UploadComplete"})))?)
    })();
    if let Err(e) = uploaded {
        // Not left open at Salesforce: aborted (best effort), then the error.
        let _ = api.send("PATCH", &format!("jobs/ingest/{id}"), Some(&json!({"state": "Aborted"})));
        return Err(e);
    }
    Ok(Some(Submitted { reference: format!("job:{id}:{FIRST_POLL_MS}"), poll_after_ms: FIRST_POLL_MS }))
}

/// Asks about a submitted job: still working (`Submitted`, polling later
/// each time), or done with each request's outcome.
pub fn poll(t: &mut dyn Transport, config: &Config, tokens: &Tokens, reqs: &dyn Requests, reference: &str) -> Result<Answer, Error> {
    let mut parts = reference.splitn(3, ':');
    let (Some("job"), Some(id), wait) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Remote { code: "BULK_REFERENCE".into(), message: format!("'{reference}' is not a Bulk API job this plugin submitted"), status: None, retryable: false });
    };
    let wait: u32 = wait.and_then(|w| w.parse().ok()).unwrap_or(FIRST_POLL_MS);
    let mut api = Api::new(t, config, tokens)?;
    let job = ok_json(&api.send("GET", &format!("jobs/ingest/{id}"), None)?)?;
    let object = config.object.api_name();
    match job["state"].as_str().unwrap_or_default() {
        "JobComplete" => {}
        state @ ("Failed" | "Aborted") => {
            let message = format!("Bulk API job {id} ended {state}: {}", job["errorMessage"].as_str().unwrap_or("no reason given"));
            return Ok(Answer::Done((0..reqs.len()).map(|_| Err(Error::Remote { code: format!("BULK_{}", state.to_uppercase()), message: message.clone(), status: None, retryable: state == "Aborted" })).collect()));
        }
        _ => {
            let next = (wait * 2).min(MAX_POLL_MS);
            return Ok(Answer::Submitted(Submitted { reference: format!("job:{id}:{next}"), poll_after_ms: wait }));
        }
    }
    let Some(Plan { header, keys, errors }) = plan(config, reqs) else {
        return Err(Error::Remote { code: "BULK_REQUESTS".into(), message: format!("the requests asked about are not the upserts Bulk API job {id} was given"), status: None, retryable: false });
    };
    let mut results: Vec<Option<Result<Outcome, Error>>> = vec![None; reqs.len()];
    for (i, e) in errors {
        results[i] = Some(Err(e));
    }
    let by_key: std::collections::HashMap<&str, usize> = keys.iter().map(|(i, key)| (key.as_str(), *i)).collect();
    let ext = &header[0];
    // Only the files that can hold someone: the job says how many records
    // it processed and how many failed.
    let processed = job["numberRecordsProcessed"].as_u64();
    let failed = job["numberRecordsFailed"].as_u64();
    let files = [
        ("successfulResults", 0, processed.zip(failed).is_none_or(|(p, f)| p > f)),
        ("failedResults", 1, failed != Some(0)),
        ("unprocessedrecords", 2, processed.is_none_or(|p| p < keys.len() as u64)),
    ];
    for (file, kind, _) in files.into_iter().filter(|(_, _, wanted)| *wanted) {
        let resp = api.send("GET", &format!("jobs/ingest/{id}/{file}/"), None)?;
        if resp.status >= 300 {
            return Err(rest_error(&resp));
        }
        let mut reader = csv::ReaderBuilder::new().from_reader(resp.body.as_slice());
        let cols: Vec<String> = reader.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
        let Some(key_col) = cols.iter().position(|c| c == ext) else { continue };
        for row in reader.records().flatten() {
            let Some(&i) = row.get(key_col).and_then(|k| by_key.get(k)) else { continue };
            results[i] = Some(match kind {
                0 => {
                    let sf_id = row.get(0).unwrap_or_default().to_string();
                    let created = row.get(1) == Some("true");
                    Ok(Outcome { removed: false, summary: format!("{} {object} {sf_id} (Bulk API job {id}, upsert by {ext})", if created { "created" } else { "updated" }), remote: reference_of(object, sf_id) })
                }
                1 => Err(bulk_error(row.get(1).unwrap_or_default())),
                _ => Err(Error::Remote { code: "BULK_UNPROCESSED".into(), message: format!("Salesforce did not process this record in Bulk API job {id}"), status: None, retryable: true }),
            });
        }
    }
    Ok(Answer::Done(
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Remote { code: "BULK_NO_RESULT".into(), message: format!("Bulk API job {id} reported nothing for this person"), status: None, retryable: true })))
            .collect(),
    ))
}

fn reference_of(object: &str, id: String) -> Option<RemoteRef> {
    Some(RemoteRef { object_type: object.to_string(), remote_id: id })
}

/// `sf__Error`: `CODE:message:fields --`.
fn bulk_error(raw: &str) -> Error {
    let raw = raw.trim().trim_end_matches("--").trim();
    let (code, rest) = raw.split_once(':').unwrap_or(("BULK_ERROR", raw));
    let message = rest.rsplit_once(':').map_or(rest, |(m, _)| m).trim().to_string();
    let retryable = code == "UNABLE_TO_LOCK_ROW";
    Error::Remote { code: code.to_string(), message, status: None, retryable }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::{Fake, reply};

    fn config() -> Config {
        let values: Vec<(String, String)> = [("object", "Contact"), ("api_version", "62.0"), ("external_id_field", "Registry_ID__c"), ("bulk_threshold", "200")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&values).unwrap()
    }

    fn text(status: u16, body: &str) -> Response {
        Response { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn people(n: usize) -> Vec<Request> {
        (0..n).map(|i| super::super::tests::request(&format!("R{i}"), if i == 1 { "" } else { "Lovelace" })).collect()
    }

    #[test]
    fn a_large_upsert_batch_is_one_job_of_three_calls_and_its_results_map_back() {
        let reqs = &people(250);
        assert!(large_enough(&config(), reqs.len()));
        assert!(!large_enough(&config(), 199), "below the threshold");
        let tokens = Tokens { access_token: "00D!x".into(), instance_url: Some("https://acme.my.salesforce.com".into()), ..Default::default() };
        let mut t = Fake { sent: vec![], replies: vec![reply(200, json!({"id": "750x", "state": "Open"})), text(201, ""), reply(200, json!({"id": "750x", "state": "UploadComplete"}))] };
        let s = submit(&mut t, &config(), &tokens, reqs).unwrap().expect("submitted");
        assert_eq!(s, Submitted { reference: "job:750x:1000".into(), poll_after_ms: 1000 });
        assert_eq!(t.sent.len(), 3);
        let csv = String::from_utf8(t.sent[1].body.clone()).unwrap();
        assert!(csv.starts_with("Registry_ID__c,"), "{csv}");
        assert_eq!(csv.lines().count(), 1 + 249, "R1 has no last name: not sent");
        assert!(t.sent[1].headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "text/csv"));

        // Still going: poll later, and later each time.
        let mut t = Fake { sent: vec![], replies: vec![reply(200, json!({"state": "InProgress"}))] };
        assert_eq!(poll(&mut t, &config(), &tokens, reqs, "job:750x:1000").unwrap(), Answer::Submitted(Submitted { reference: "job:750x:2000".into(), poll_after_ms: 1000 }));

        let ok = format!("sf__Id,sf__Created,Registry_ID__c,LastName\n003A,true,R0,Lovelace\n003B,false,R2,Lovelace\n");
        let failed = "sf__Id,sf__Error,Registry_ID__c,LastName\n,DUPLICATE_VALUE:duplicate value found: Email:Email --,R3,Lovelace\n";
        let unprocessed = "Registry_ID__c,LastName\nR4,Lovelace\n";
        let mut t = Fake { sent: vec![], replies: vec![reply(200, json!({"state": "JobComplete"})), text(200, &ok), text(200, failed), text(200, unprocessed)] };
        let Answer::Done(results) = poll(&mut t, &config(), &tokens, reqs, "job:750x:8000").unwrap() else { panic!("done") };
        assert_eq!(results.len(), 250);
        assert_eq!(results[0].as_ref().unwrap().remote.as_ref().unwrap().remote_id, "003A");
        assert!(results[0].as_ref().unwrap().summary.starts_with("created Contact 003A (Bulk API job 750x"));
        assert!(results[2].as_ref().unwrap().summary.starts_with("updated"));
        assert!(matches!(&results[1], Err(Error::InvalidPerson(f)) if f.field == "name.family"), "{:?}", results[1]);
        assert!(matches!(&results[3], Err(Error::Remote { code, message, retryable: false, .. }) if code == "DUPLICATE_VALUE" && message == "duplicate value found: Email"), "{:?}", results[3]);
        assert!(matches!(&results[4], Err(Error::Remote { retryable: true, .. })));
        assert!(matches!(&results[5], Err(Error::Remote { code, .. }) if code == "BULK_NO_RESULT"));
        assert_eq!(t.sent[1].url, "https://acme.my.salesforce.com/services/data/v62.0/jobs/ingest/750x/successfulResults/");

        // Everyone processed and nobody failed: only the successes are read.
        let mut t = Fake { sent: vec![], replies: vec![reply(200, json!({"state": "JobComplete", "numberRecordsProcessed": 249, "numberRecordsFailed": 0})), text(200, &ok)] };
        assert!(matches!(poll(&mut t, &config(), &tokens, reqs, "job:750x:1000").unwrap(), Answer::Done(_)));
        assert_eq!(t.sent.len(), 2, "job info and successfulResults alone");

        let mut t = Fake { sent: vec![], replies: vec![reply(200, json!({"state": "Failed", "errorMessage": "InvalidBatch : Field name not found : X"}))] };
        let Answer::Done(results) = poll(&mut t, &config(), &tokens, reqs, "job:750x:1000").unwrap() else { panic!("done") };
        assert!(results.iter().all(|r| matches!(r, Err(Error::Remote { message, .. }) if message.contains("Field name not found"))));
    }

    /// Answers at most 7 requests a page, as a host may answer fewer than
    /// asked, and counts the pages read.
    struct Short(Vec<Request>, std::cell::Cell<usize>);

    impl Requests for Short {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn page(&self, start: usize, max: usize) -> Vec<Request> {
            self.1.set(self.1.get() + 1);
            self.0.page(start, max.min(7))
        }
    }

    #[test]
    fn a_batch_read_a_short_page_at_a_time_uploads_the_same_csv_and_a_removal_keeps_it_out_of_bulk_api() {
        let tokens = Tokens { access_token: "00D!x".into(), instance_url: Some("https://acme.my.salesforce.com".into()), ..Default::default() };
        let replies = || vec![reply(200, json!({"id": "750x", "state": "Open"})), text(201, ""), reply(200, json!({"id": "750x", "state": "UploadComplete"}))];
        let mut whole = Fake { sent: vec![], replies: replies() };
        submit(&mut whole, &config(), &tokens, &people(250)).unwrap().expect("submitted");
        let short = Short(people(250), Default::default());
        let mut paged = Fake { sent: vec![], replies: replies() };
        submit(&mut paged, &config(), &tokens, &short).unwrap().expect("submitted");
        assert_eq!(paged.sent[1].body, whole.sent[1].body, "the same CSV, row for row");
        assert_eq!(short.1.get(), 2 * 250_usize.div_ceil(7), "read twice (plan, rows), never all at once");

        let mut mixed = people(250);
        mixed[100].action = Action::Deleted;
        let mut t = Fake { sent: vec![], replies: vec![] };
        assert_eq!(submit(&mut t, &config(), &tokens, &mixed).unwrap(), None, "a removal is not an upsert: the collections path takes the batch");
        assert!(t.sent.is_empty());
    }
}
