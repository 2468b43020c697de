//! Bulk API 2.0 ingest, as Salesforce documents it: a job is created
//! (`insert`, `update`, `upsert` on an External ID, or `delete`), gets one
//! CSV upload, is closed (`UploadComplete`), is processed in the background
//! (`InProgress`, for a time the bench or a test sets), and ends
//! `JobComplete` (or `Failed`, or `Aborted`); its per-record outcomes are
//! three CSVs: `successfulResults` (`sf__Id`, `sf__Created`),
//! `failedResults` (`sf__Id`, `sf__Error`) and `unprocessedrecords`, each
//! with the uploaded columns. CSV rules: a header of field names, `#N/A`
//! sets a field to null, an empty value leaves it as it is, the declared
//! line ending must be the data's. Limits: 150 MB a job's data, and the
//! org's daily batches (one per 10,000 records).

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, SfError};
use crate::records::{UpsertError, Upserted};
use crate::rest::{Call, json_resp, with_writer};
use crate::schema::{FieldType, ObjectDef};
use crate::state::{Inner, Shared, format_datetime};

/// The largest CSV upload Salesforce takes for one job.
pub const MAX_UPLOAD_BYTES: usize = 150 * 1024 * 1024;
/// Records that count as one batch against the daily batch limit.
pub const RECORDS_PER_BATCH: usize = 10_000;
/// The org's daily batch allowance (shared with Bulk API 1.0 in Salesforce).
pub const DAILY_BATCHES: u64 = 15_000;
/// The `750` key prefix of a job id.
pub const JOB_PREFIX: &str = "750";

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Created; data may be uploaded.
    Open,
    /// Closed by the client; queued for processing.
    UploadComplete,
    /// Being processed.
    InProgress,
    /// Done; results are ready.
    JobComplete,
    /// Could not be processed (see the error message).
    Failed,
    /// Aborted by the client.
    Aborted,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }
}

/// One ingest job.
#[derive(Debug, Clone)]
pub struct BulkJob {
    /// `750…`.
    pub id: String,
    /// Owning org.
    pub org: usize,
    /// sObject.
    pub object: String,
    /// insert, update, upsert or delete.
    pub operation: String,
    /// For upsert.
    pub external_id_field: Option<String>,
    /// LF or CRLF.
    pub line_ending: String,
    /// Where it is.
    pub state: JobState,
    /// Who created it.
    pub created_by: String,
    /// Created (ms).
    pub created_at: i64,
    /// The uploaded CSV.
    pub data: Option<String>,
    /// When processing ends (emulator clock, ms).
    pub complete_at: Option<i64>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// The three result CSVs, once processed.
    pub results: Option<[String; 3]>,
    /// Records processed and failed.
    pub processed: usize,
    /// Records failed.
    pub failed: usize,
}

/// How long processing takes, and what has been used today.
#[derive(Debug, Clone, Default)]
pub struct BulkSettings {
    /// Per job.
    pub base_ms: u64,
    /// Per record.
    pub per_record_us: u64,
    /// Batches counted today, and the UTC day.
    pub batches_today: (i64, u64),
    /// The daily allowance (`None`: [`DAILY_BATCHES`]).
    pub daily_limit: Option<u64>,
}

fn bad(code: &str, message: impl Into<String>) -> Response {
    ApiError::bad_request(SfError::new(code, message)).into_response()
}

/// `/services/data/vXX.X/jobs/ingest/...`.
pub(crate) fn ingest(inner: &mut Inner, shared: &Shared, org: usize, c: &Call<'_>, rest: &[&str]) -> Response {
    if let [id, ..] = rest {
        advance(inner, shared, id, c.now);
    }
    match (rest, c.method.clone()) {
        ([], Method::POST) => create(inner, shared, org, c),
        ([id], Method::GET) => with_job(inner, org, id, |job| json_resp(StatusCode::OK, info(job, c.version))),
        ([id], Method::PATCH) => close_or_abort(inner, org, id, c),
        ([id, "batches"], Method::PUT) => upload(inner, org, id, c),
        ([id, kind @ ("successfulResults" | "failedResults" | "unprocessedrecords")], Method::GET) => with_job(inner, org, id, |job| {
            let Some(results) = &job.results else {
                return bad("INVALIDJOBSTATE", "Job is not complete; results are available once its state is JobComplete");
            };
            let csv = match *kind {
                "successfulResults" => &results[0],
                "failedResults" => &results[1],
                _ => &results[2],
            };
            let mut r = (StatusCode::OK, csv.clone()).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
            r
        }),
        _ => ApiError::not_found(SfError::not_found()).into_response(),
    }
}

fn with_job(inner: &Inner, org: usize, id: &str, f: impl FnOnce(&BulkJob) -> Response) -> Response {
    match inner.bulk_jobs.get(id).filter(|j| j.org == org) {
        Some(job) => f(job),
        None => ApiError::not_found(SfError::new("NOT_FOUND", "The requested resource does not exist")).into_response(),
    }
}

fn info(job: &BulkJob, version: &str) -> Value {
    let mut v = json!({
        "id": job.id, "operation": job.operation, "object": job.object, "createdById": job.created_by,
        "createdDate": format_datetime(job.created_at), "systemModstamp": format_datetime(job.created_at),
        "state": job.state.as_str(), "concurrencyMode": "Parallel", "contentType": "CSV",
        "apiVersion": version.parse::<f64>().unwrap_or(62.0), "jobType": "V2Ingest", "lineEnding": job.line_ending, "columnDelimiter": "COMMA",
        "numberRecordsProcessed": job.processed, "numberRecordsFailed": job.failed, "retries": 0, "totalProcessingTime": 0,
    });
    if let Some(f) = &job.external_id_field {
        v["externalIdFieldName"] = json!(f);
    }
    if job.state == JobState::Open {
        v["contentUrl"] = json!(format!("services/data/v{version}/jobs/ingest/{}/batches", job.id));
    }
    if let Some(e) = &job.error_message {
        v["errorMessage"] = json!(e);
    }
    v
}

fn create(inner: &mut Inner, shared: &Shared, org: usize, c: &Call<'_>) -> Response {
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(c.body) else {
        return bad("JSON_PARSER_ERROR", "The request body is not a JSON object");
    };
    let s = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(object) = s("object") else { return bad("INVALIDJOB", "InvalidJob : Object is required") };
    let Some(def) = inner.orgs[org].schema.object(&object).cloned() else {
        return bad("INVALIDJOB", format!("InvalidJob : Unable to find object: {object}"));
    };
    let operation = s("operation").unwrap_or_default();
    if !["insert", "update", "upsert", "delete"].contains(&operation.as_str()) {
        return bad("INVALIDJOB", format!("InvalidJob : Invalid operation: {operation}"));
    }
    let external_id_field = s("externalIdFieldName");
    if operation == "upsert" {
        let ok = external_id_field.as_deref().and_then(|f| def.field(f)).is_some_and(|f| f.external_id || f.ty == FieldType::Id);
        if !ok {
            return bad("INVALIDJOB", format!("InvalidJob : External ID was blank or not an External ID field for {object}"));
        }
    }
    if s("contentType").is_some_and(|t| t != "CSV") {
        return bad("INVALIDJOB", "InvalidJob : Only CSV is supported");
    }
    if s("columnDelimiter").is_some_and(|d| d != "COMMA") {
        // Unconfirmed: the emulator reads commas only.
        return bad("INVALIDJOB", "InvalidJob : the emulator supports the COMMA delimiter only");
    }
    let line_ending = s("lineEnding").unwrap_or_else(|| "LF".into());
    if line_ending != "LF" && line_ending != "CRLF" {
        return bad("INVALIDJOB", format!("InvalidJob : Invalid lineEnding: {line_ending}"));
    }
    let id = shared.ids.next(JOB_PREFIX);
    let job = BulkJob {
        id: id.clone(),
        org,
        object: def.name.to_string(),
        operation,
        external_id_field,
        line_ending,
        state: JobState::Open,
        created_by: c.actor.to_string(),
        created_at: c.now,
        data: None,
        complete_at: None,
        error_message: None,
        results: None,
        processed: 0,
        failed: 0,
    };
    let v = info(&job, c.version);
    inner.bulk_jobs.insert(id, job);
    json_resp(StatusCode::OK, v)
}

fn upload(inner: &mut Inner, org: usize, id: &str, c: &Call<'_>) -> Response {
    let Some(job) = inner.bulk_jobs.get_mut(id).filter(|j| j.org == org) else {
        return ApiError::not_found(SfError::new("NOT_FOUND", "The requested resource does not exist")).into_response();
    };
    if job.state != JobState::Open || job.data.is_some() {
        // Bulk API 2.0 takes one upload per job.
        return bad("INVALIDJOBSTATE", "Found multiple uploads for the job, or the job is not Open; a job takes one upload");
    }
    if c.body.len() > MAX_UPLOAD_BYTES {
        return bad("INVALIDBATCH", "InvalidBatch : The uploaded data exceeds the 150 MB limit of a job; split it into several jobs");
    }
    let Ok(text) = String::from_utf8(c.body.to_vec()) else {
        return bad("INVALIDBATCH", "InvalidBatch : The data is not UTF-8");
    };
    job.data = Some(text);
    (StatusCode::CREATED, "").into_response()
}

fn close_or_abort(inner: &mut Inner, org: usize, id: &str, c: &Call<'_>) -> Response {
    let wanted = serde_json::from_slice::<Value>(c.body).ok().and_then(|v| v["state"].as_str().map(str::to_string)).unwrap_or_default();
    let day = c.now.div_euclid(86_400_000);
    let limit = inner.bulk.daily_limit.unwrap_or(DAILY_BATCHES);
    let (base_ms, per_record_us) = (inner.bulk.base_ms, inner.bulk.per_record_us);
    if inner.bulk.batches_today.0 != day {
        inner.bulk.batches_today = (day, 0);
    }
    let used = inner.bulk.batches_today.1;
    let Some(job) = inner.bulk_jobs.get_mut(id).filter(|j| j.org == org) else {
        return ApiError::not_found(SfError::new("NOT_FOUND", "The requested resource does not exist")).into_response();
    };
    match (wanted.as_str(), job.state) {
        ("UploadComplete", JobState::Open) => {
            let records = job.data.as_deref().map(|d| d.lines().count().saturating_sub(1)).unwrap_or(0);
            let batches = records.div_ceil(RECORDS_PER_BATCH).max(1) as u64;
            if used + batches > limit {
                return bad("EXCEEDED_QUOTA", format!("ExceededQuota : the org's {limit} Bulk API batches for 24 hours are used up"));
            }
            inner.bulk.batches_today.1 += batches;
            job.state = JobState::InProgress;
            job.complete_at = Some(c.now + base_ms as i64 + (records as u64 * per_record_us / 1000) as i64);
        }
        ("Aborted", JobState::Open | JobState::UploadComplete | JobState::InProgress) => {
            job.state = JobState::Aborted;
            job.complete_at = None;
        }
        _ => return bad("INVALIDJOBSTATE", format!("InvalidJobState : the job is {}; it cannot become {wanted}", job.state.as_str())),
    }
    json_resp(StatusCode::OK, info(job, c.version))
}

/// Processes a job whose time has come.
fn advance(inner: &mut Inner, shared: &Shared, id: &str, now: i64) {
    let Some(job) = inner.bulk_jobs.get(id).cloned() else { return };
    if job.state != JobState::InProgress || job.complete_at.is_some_and(|t| now < t) {
        return;
    }
    let outcome = run(inner, shared, &job, now);
    if let Some(j) = inner.bulk_jobs.get_mut(id) {
        match outcome {
            Ok((results, processed, failed)) => {
                j.results = Some(results);
                j.processed = processed;
                j.failed = failed;
                j.state = JobState::JobComplete;
            }
            Err(message) => {
                j.error_message = Some(message);
                j.state = JobState::Failed;
            }
        }
        j.data = None;
    }
}

/// A CSV cell: `#N/A` is null, a typed field gets its JSON type.
fn value(def: &ObjectDef, field: &str, raw: &str) -> Value {
    if raw == "#N/A" {
        return Value::Null;
    }
    match def.field(field).map(|f| &f.ty) {
        Some(FieldType::Boolean) => Value::Bool(raw.eq_ignore_ascii_case("true")),
        _ => Value::String(raw.to_string()),
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let _ = w.write_record(fields);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

type Processed = ([String; 3], usize, usize);

fn run(inner: &mut Inner, shared: &Shared, job: &BulkJob, now: i64) -> Result<Processed, String> {
    let data = job.data.clone().unwrap_or_default();
    if job.line_ending == "LF" && data.contains("\r\n") {
        return Err("ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF".into());
    }
    let def = inner.orgs[job.org].schema.object(&job.object).cloned().ok_or("InvalidJob : the object is gone")?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(data.as_bytes());
    let headers: Vec<String> = reader.headers().map_err(|e| format!("InvalidBatch : {e}"))?.iter().map(str::to_string).collect();
    for h in &headers {
        if def.field(h).is_none() && !(job.operation == "delete" && h.eq_ignore_ascii_case("Id")) {
            return Err(format!("InvalidBatch : Field name not found : {h}"));
        }
    }
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.map(|r| r.iter().map(str::to_string).collect())).collect::<Result<_, _>>().map_err(|e| format!("InvalidBatch : {e}"))?;
    let mut ok = csv_line(&[vec!["sf__Id".to_string(), "sf__Created".to_string()], headers.clone()].concat());
    let mut failed = csv_line(&[vec!["sf__Id".to_string(), "sf__Error".to_string()], headers.clone()].concat());
    let unprocessed = csv_line(&headers);
    let mut n_failed = 0;
    let ext = job.external_id_field.clone().unwrap_or_default();
    with_writer(inner, shared, job.org, &job.created_by, now, |store, w| {
        for row in &rows {
            let mut body = Map::new();
            for (h, raw) in headers.iter().zip(row) {
                // Empty: left as it is.
                if !raw.is_empty() {
                    body.insert(h.clone(), value(&def, h, raw));
                }
            }
            let result: Result<(String, bool), crate::errors::SfError> = match job.operation.as_str() {
                "insert" => store.create(w, &def, &body).map(|(id, _)| (id, true)),
                "update" => {
                    let id = body.remove("Id").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    store.update(w, &def, &id, &body).map(|_| (id, false))
                }
                "delete" => {
                    let id = body.get("Id").and_then(Value::as_str).unwrap_or_default().to_string();
                    store.delete(w, &id).map(|_| (id, false))
                }
                _ => {
                    let key = body.keys().find(|k| k.eq_ignore_ascii_case(&ext)).cloned();
                    let value = key.as_ref().and_then(|k| body.remove(k)).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    match store.upsert(w, &def, &ext, &value, &body) {
                        Ok((Upserted::Created(id), _)) => Ok((id, true)),
                        Ok((Upserted::Updated(id), _)) => Ok((id, false)),
                        Err(UpsertError::Invalid(e)) => Err(e),
                        Err(UpsertError::Multiple(ids)) => Err(SfError::new("DUPLICATE_EXTERNAL_ID", format!("{ext}: more than one record found for external id field: {ids:?}"))),
                        Err(UpsertError::NoSuchField(f)) => Err(SfError::new("INVALID_FIELD", format!("no such external id field {f}"))),
                    }
                }
            };
            match result {
                Ok((id, created)) => ok.push_str(&csv_line(&[vec![id, created.to_string()], row.clone()].concat())),
                Err(e) => {
                    n_failed += 1;
                    let fields = e.fields.clone().unwrap_or_default().join(", ");
                    let error = format!("{}:{}:{fields} --", e.code, e.message);
                    failed.push_str(&csv_line(&[vec![String::new(), error], row.clone()].concat()));
                }
            }
        }
    });
    Ok(([ok, failed, unprocessed], rows.len(), n_failed))
}
