//! The instance host's REST API under `/services/data/`: versions,
//! resources, limits, describe, sObject CRUD, upsert by external id, SOQL
//! query with paging, and sObject Collections (`composite/sobjects`).
//!
//! Every authenticated call is counted against the org's daily limit and
//! answered with `Sforce-Limit-Info`; fault switches apply here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::describe;
use crate::errors::{ApiError, SfError};
use crate::ids::{self, prefix};
use crate::oauth::{Params, allows_api, bearer, parse_form};
use crate::records::{Lookup, UpsertError, Upserted, Writer};
use crate::server::Inst;
use crate::soql;
use crate::state::{FailKind, Inner, Org, Shared, format_datetime};

/// Oldest version still served; v21.0–v30.0 are retired (410).
pub const MIN_VERSION: u32 = 31;
/// Newest version (Winter '27).
pub const MAX_VERSION: u32 = 68;
/// Records per sObject Collections call.
pub const COLLECTION_LIMIT: usize = 200;
/// Open query locators kept per org.
pub const MAX_LOCATORS: usize = 64;
/// Longest SOQL statement accepted (Salesforce's limit).
pub const MAX_SOQL_LEN: usize = 100_000;

/// Marks a response as a counted API call, for the request log.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall;

fn release(v: u32) -> String {
    let k = v - MIN_VERSION;
    let season = ["Summer", "Winter", "Spring"][(k % 3) as usize];
    format!("{season} '{}", 14 + (k + 2) / 3)
}

/// `GET /services/data/`: the versions list, oldest first.
pub fn versions() -> Value {
    Value::Array(
        (MIN_VERSION..=MAX_VERSION)
            .map(|v| json!({ "label": release(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0") }))
            .collect(),
    )
}

pub(crate) fn json_resp(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The REST entry point for everything under `/services/data`.
pub async fn api(inst: Arc<Inst>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let shared = inst.ctx.shared.clone();
    let _in_flight = shared.enter();
    shared.delay().await;
    if uri.path().contains("/composite/sobjects") {
        // The latency model's per-record cost: records in the body, or ids
        // in the query for a delete.
        let records = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["records"].as_array().map(Vec::len)).unwrap_or_else(|| {
            uri.query().and_then(|q| parse_form(q.as_bytes()).get("ids").map(|ids| ids.split(',').count())).unwrap_or(0)
        });
        shared.delay_records(records).await;
    }
    let path = uri.path().trim_end_matches('/');
    let rest = path.strip_prefix("/services/data").unwrap_or("");
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default())
        .collect();
    if segments.is_empty() {
        return json_resp(StatusCode::OK, versions());
    }
    let version = match parse_version(&segments[0]) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let q: Params = uri.query().map(|q| parse_form(q.as_bytes())).unwrap_or_default();
    let now = shared.now();
    let mut inner = shared.lock();

    // Authentication: a live session of an org served by this instance.
    let session = bearer(&headers, &q).and_then(|t| inner.session(&t, now).cloned());
    let Some(session) = session.filter(|s| inner.orgs[s.org].instance == inst.idx) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, SfError::invalid_session()).into_response();
    };
    if !allows_api(&session.scopes) {
        // Unconfirmed status; Salesforce's message for tokens without `api`.
        return ApiError::new(StatusCode::FORBIDDEN, SfError::new("INVALID_SESSION_ID", "This session is not valid for use with the REST API")).into_response();
    }
    let org = session.org;
    inner.roll_day(org, now);
    let daily_exceeded = inner.orgs[org].api_usage >= inner.orgs[org].daily_limit;
    let mut resp = if inner.faults.down_until.is_some_and(|until| now < until) {
        // Down: nothing is counted, as nothing reached the org.
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, SfError::new("SERVER_UNAVAILABLE", "Salesforce is temporarily unavailable for maintenance. Please try again later.")).into_response();
    } else if daily_exceeded {
        ApiError::new(StatusCode::FORBIDDEN, SfError::new("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")).into_response()
    } else if inner.faults.throttle_after == Some(0) {
        // A burst limit (too many long-running requests at once), which passes.
        ApiError::new(StatusCode::FORBIDDEN, SfError::new("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")).into_response()
    } else {
        inner.count_call(org, now);
        if let Some(n) = inner.faults.throttle_after.as_mut() {
            *n -= 1;
        }
        let mut r = if inner.faults.fail_next > 0 {
            inner.faults.fail_next -= 1;
            injected_failure(inner.faults.fail_kind.unwrap_or(FailKind::ServerError), &shared)
        } else {
            let call = Call { version: &version, method: &method, segments: &segments[1..], q: &q, headers: &headers, body: &body, actor: &session.user_id, now };
            route(&mut inner, &shared, org, &call)
        };
        r.extensions_mut().insert(ApiCall);
        r
    };
    let o = &inner.orgs[org];
    let info = format!("api-usage={}/{}", o.api_usage, o.daily_limit);
    resp.headers_mut().insert("Sforce-Limit-Info", HeaderValue::from_str(&info).expect("ascii"));
    resp
}

fn injected_failure(kind: FailKind, shared: &Shared) -> Response {
    match kind {
        FailKind::ServerError => {
            let n = shared.now();
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                SfError::new(
                    "UNKNOWN_EXCEPTION",
                    format!("An unexpected error occurred. Please include this ErrorId if you contact support: {}-{} ({})", n % 10_000_000_000, n % 1_000_000, -(n % 2_000_000_000)),
                ),
            )
            .into_response()
        }
        // Status unconfirmed; 400 is what clients report most.
        FailKind::UnableToLockRow => ApiError::bad_request(SfError::with_fields(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records: 003000000000000AAA",
            vec![],
        ))
        .into_response(),
    }
}

fn parse_version(seg: &str) -> Result<String, ApiError> {
    let not_found = || ApiError::not_found(SfError::not_found());
    let v = seg.strip_prefix('v').ok_or_else(not_found)?;
    let (major, minor) = v.split_once('.').ok_or_else(not_found)?;
    let major: u32 = major.parse().map_err(|_| not_found())?;
    if minor != "0" {
        return Err(not_found());
    }
    if (20..MIN_VERSION).contains(&major) {
        // Retired versions answer 410; the body's code is unconfirmed.
        return Err(ApiError::new(StatusCode::GONE, SfError::new("GONE", "The requested API version is retired. Use a newer version.")));
    }
    if !(MIN_VERSION..=MAX_VERSION).contains(&major) {
        return Err(not_found());
    }
    Ok(format!("{major}.0"))
}

/// One REST call, parsed.
pub(crate) struct Call<'a> {
    pub(crate) version: &'a str,
    pub(crate) method: &'a Method,
    pub(crate) segments: &'a [String],
    pub(crate) q: &'a Params,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a Bytes,
    pub(crate) actor: &'a str,
    pub(crate) now: i64,
}

fn not_allowed(method: &Method, allowed: &str) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        SfError::new("METHOD_NOT_ALLOWED", format!("HTTP Method '{method}' not allowed. Allowed are {allowed}")),
    )
    .into_response()
}

fn route(inner: &mut Inner, shared: &Shared, org: usize, c: &Call<'_>) -> Response {
    let seg: Vec<&str> = c.segments.iter().map(String::as_str).collect();
    let get = *c.method == Method::GET || *c.method == Method::HEAD;
    match seg.as_slice() {
        [] if get => json_resp(StatusCode::OK, resources(shared, inner, org, c.version, c.actor)),
        ["limits"] if get => json_resp(StatusCode::OK, limits(&inner.orgs[org])),
        ["sobjects"] if get => json_resp(StatusCode::OK, describe::global(c.version, &inner.orgs[org].schema)),
        ["sobjects", obj, rest @ ..] => sobject(inner, shared, org, c, obj, rest),
        ["query"] | ["queryAll"] if get => query(&mut inner.orgs[org], &shared.ids, c, seg[0] == "queryAll"),
        ["query", locator] | ["queryAll", locator] if get => query_more(&mut inner.orgs[org], c.version, locator),
        ["composite"] if get => json_resp(
            StatusCode::OK,
            json!({
                "tree": format!("/services/data/v{}/composite/tree", c.version),
                "batch": format!("/services/data/v{}/composite/batch", c.version),
                "sobjects": format!("/services/data/v{}/composite/sobjects", c.version),
                "graph": format!("/services/data/v{}/composite/graph", c.version),
            }),
        ),
        ["composite", "sobjects", rest @ ..] => collections(inner, shared, org, c, rest),
        ["jobs", "ingest", rest @ ..] => crate::bulk::ingest(inner, shared, org, c, rest),
        [] | ["limits"] | ["sobjects"] | ["query"] | ["queryAll"] | ["query", _] | ["queryAll", _] | ["composite"] => {
            not_allowed(c.method, "HEAD,GET")
        }
        _ => ApiError::not_found(SfError::not_found()).into_response(),
    }
}

fn resources(shared: &Shared, inner: &Inner, org: usize, version: &str, actor: &str) -> Value {
    let base = format!("/services/data/v{version}");
    let mut m = Map::new();
    for k in ["tooling", "metadata", "chatter", "tabs", "appMenu", "quickActions", "queryAll", "search", "composite", "recent", "limits", "query", "sobjects", "actions", "support"] {
        m.insert(k.into(), json!(format!("{base}/{k}")));
    }
    m.insert("identity".into(), json!(shared.id_url(&inner.orgs[org].id, actor)));
    Value::Object(m)
}

fn limits(o: &Org) -> Value {
    let remaining = o.daily_limit.saturating_sub(o.api_usage);
    json!({
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "DailyApiRequests": {"Max": o.daily_limit, "Remaining": remaining},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
        "HourlyODataCallout": {"Max": 10000, "Remaining": 10000},
        "SingleEmail": {"Max": 15, "Remaining": 15},
    })
}

/// Parses a JSON object body the way Salesforce reports failures.
fn object_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(SfError::new("JSON_PARSER_ERROR", "No content to map due to end-of-input")));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::bad_request(SfError::new(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize instance of sObject from {} value", if other.is_array() { "START_ARRAY" } else { "VALUE" }),
        ))),
        Err(e) => Err(ApiError::bad_request(SfError::new(
            "JSON_PARSER_ERROR",
            format!("{e} at [line:{}, column:{}]", e.line(), e.column()),
        ))),
    }
}

/// Splits the org so its store can be written while other orgs' usernames
/// are consulted.
pub(crate) fn with_writer<R>(inner: &mut Inner, shared: &Shared, org: usize, actor: &str, now: i64, f: impl FnOnce(&mut crate::records::Store, &Writer<'_>) -> R) -> R {
    let (before, rest) = inner.orgs.split_at_mut(org);
    let (this, after) = rest.split_first_mut().expect("org index is valid");
    let others: Vec<&Org> = before.iter().chain(after.iter()).collect();
    let taken = |u: &str| others.iter().find_map(|o| o.store.lookup("User", "Username", u).into_iter().next());
    let w = Writer { schema: &this.schema, ids: &shared.ids, actor, now: format_datetime(now), username_taken: &taken };
    f(&mut this.store, &w)
}

fn created(id: &str) -> Value {
    json!({ "id": id, "success": true, "errors": [] })
}

fn lookup_error(e: Lookup, raw: &str) -> Response {
    match e {
        Lookup::Malformed => ApiError::not_found(SfError::with_fields(
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {raw}"),
            vec![],
        )),
        // Unconfirmed: a well-formed id of another type in the URL is a 404 too.
        Lookup::NotFound | Lookup::WrongType => ApiError::not_found(SfError::not_found()),
        Lookup::Deleted => ApiError::not_found(SfError::entity_deleted()),
    }
    .into_response()
}

fn selected_fields(o: &crate::schema::ObjectDef, q: &Params) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = q.get("fields") else { return Ok(None) };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = o.field(name).ok_or_else(|| {
            ApiError::bad_request(SfError::new("INVALID_FIELD", format!("No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", o.name)))
        })?;
        out.push(f.name.clone());
    }
    Ok(Some(out))
}

fn sobject(inner: &mut Inner, shared: &Shared, org: usize, c: &Call<'_>, obj: &str, rest: &[&str]) -> Response {
    let Some(o) = inner.orgs[org].schema.object(obj).cloned() else {
        return ApiError::not_found(SfError::not_found()).into_response();
    };
    let m = c.method;
    match rest {
        [] => match *m {
            Method::GET | Method::HEAD => json_resp(StatusCode::OK, describe::basic(c.version, &o)),
            Method::POST if o.createable => match object_body(c.body) {
                Err(e) => e.into_response(),
                Ok(body) => match with_writer(inner, shared, org, c.actor, c.now, |s, w| s.create(w, &o, &body)) {
                    Ok((id, _)) => json_resp(StatusCode::CREATED, created(&id)),
                    Err(e) => ApiError::bad_request(e).into_response(),
                },
            },
            _ if o.createable => not_allowed(m, "HEAD,GET,POST"),
            _ => not_allowed(m, "HEAD,GET"),
        },
        ["describe"] if *m == Method::GET || *m == Method::HEAD => json_resp(StatusCode::OK, describe::full(c.version, &o)),
        ["describe"] => not_allowed(m, "HEAD,GET"),
        [raw_id] => {
            let found = inner.orgs[org].store.find(&o, raw_id).map(|r| r.id.clone());
            match *m {
                Method::GET | Method::HEAD => match found {
                    Err(e) => lookup_error(e, raw_id),
                    Ok(id) => match selected_fields(&o, c.q) {
                        Err(e) => e.into_response(),
                        Ok(fields) => {
                            let r = inner.orgs[org].store.by_id(&id).expect("found above");
                            json_resp(StatusCode::OK, describe::record(c.version, &o, r, fields.as_deref()))
                        }
                    },
                },
                Method::PATCH if o.updateable => match (found, object_body(c.body)) {
                    (Err(e), _) => lookup_error(e, raw_id),
                    (_, Err(e)) => e.into_response(),
                    (Ok(id), Ok(body)) => match with_writer(inner, shared, org, c.actor, c.now, |s, w| s.update(w, &o, &id, &body)) {
                        Ok(_) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => ApiError::bad_request(e).into_response(),
                    },
                },
                Method::DELETE if o.deletable => match found {
                    Err(e) => lookup_error(e, raw_id),
                    Ok(id) => match with_writer(inner, shared, org, c.actor, c.now, |s, w| s.delete(w, &id)) {
                        Ok(_) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => ApiError::bad_request(e).into_response(),
                    },
                },
                // Users cannot be deleted (deactivate them); the exact error is unconfirmed.
                _ if o.updateable => not_allowed(m, if o.deletable { "HEAD,GET,PATCH,DELETE" } else { "HEAD,GET,PATCH" }),
                _ => not_allowed(m, "HEAD,GET"),
            }
        }
        [field, value] => upsert_or_get_by_external_id(inner, shared, org, c, &o, field, value),
        _ => ApiError::not_found(SfError::not_found()).into_response(),
    }
}

fn upsert_or_get_by_external_id(inner: &mut Inner, shared: &Shared, org: usize, c: &Call<'_>, o: &crate::schema::ObjectDef, field: &str, value: &str) -> Response {
    let no_field = || {
        ApiError::not_found(SfError::with_fields(
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {field}"),
            vec![],
        ))
        .into_response()
    };
    let multiple = |ids: Vec<String>| {
        let urls: Vec<String> = ids.iter().map(|id| format!("/services/data/v{}/sobjects/{}/{id}", c.version, o.name)).collect();
        json_resp(StatusCode::MULTIPLE_CHOICES, json!(urls))
    };
    match *c.method {
        Method::GET | Method::HEAD => {
            let Some(f) = o.field(field).filter(|f| f.external_id) else { return no_field() };
            let matches = inner.orgs[org].store.lookup(o.name, &f.name, value);
            match matches.len() {
                0 => ApiError::not_found(SfError::not_found()).into_response(),
                1 => {
                    let r = inner.orgs[org].store.by_id(&matches[0]).expect("indexed records exist");
                    json_resp(StatusCode::OK, describe::record(c.version, o, r, None))
                }
                _ => multiple(matches),
            }
        }
        Method::PATCH | Method::POST if o.updateable => {
            let body = match object_body(c.body) {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            match with_writer(inner, shared, org, c.actor, c.now, |s, w| s.upsert(w, o, field, value, &body)) {
                Ok((Upserted::Created(id), _)) => {
                    let mut v = created(&id);
                    if version_at_least(c.version, 46) {
                        v["created"] = json!(true);
                    }
                    json_resp(StatusCode::CREATED, v)
                }
                Ok((Upserted::Updated(id), _)) => {
                    if version_at_least(c.version, 46) {
                        let mut v = created(&id);
                        v["created"] = json!(false);
                        json_resp(StatusCode::OK, v)
                    } else {
                        StatusCode::NO_CONTENT.into_response()
                    }
                }
                Err(UpsertError::NoSuchField(_)) => no_field(),
                Err(UpsertError::Multiple(ids)) => multiple(ids),
                Err(UpsertError::Invalid(e)) if e.code == "NOT_FOUND" => ApiError::not_found(e).into_response(),
                Err(UpsertError::Invalid(e)) => ApiError::bad_request(e).into_response(),
            }
        }
        _ => not_allowed(c.method, "HEAD,GET,PATCH,POST"),
    }
}

fn version_at_least(v: &str, major: u32) -> bool {
    v.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= major)
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("Sforce-Query-Options")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').find_map(|p| p.trim().strip_prefix("batchSize=").and_then(|n| n.trim().parse::<usize>().ok())))
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(2000)
}

fn query(org: &mut Org, id_gen: &ids::IdGen, c: &Call<'_>, all: bool) -> Response {
    let Some(text) = c.q.get("q") else {
        return ApiError::bad_request(SfError::new("MALFORMED_QUERY", "A query string has to be specified")).into_response();
    };
    if text.len() > MAX_SOQL_LEN {
        return ApiError::bad_request(SfError::new("MALFORMED_QUERY", format!("SOQL statements cannot be longer than {MAX_SOQL_LEN} characters"))).into_response();
    }
    let parsed = match soql::parse(text, &org.schema) {
        Ok(p) => p,
        Err(e) => return ApiError::bad_request(e).into_response(),
    };
    let o = org.schema.object(parsed.object).expect("parser resolved it").clone();
    let rows = parsed.run(&org.schema, org.store.all(parsed.object).filter(|r| all || !r.deleted));
    if parsed.count {
        return json_resp(StatusCode::OK, json!({ "totalSize": rows.len(), "done": true, "records": [] }));
    }
    let rendered: Vec<Value> = rows.iter().map(|r| describe::record(c.version, &o, r, Some(&parsed.fields))).collect();
    let total = rendered.len();
    let batch = batch_size(c.headers);
    if total <= batch {
        return json_resp(StatusCode::OK, json!({ "totalSize": total, "done": true, "records": rendered }));
    }
    let locator = id_gen.next(prefix::QUERY_LOCATOR);
    let first: Vec<Value> = rendered[..batch].to_vec();
    // Locators stay readable (a client may retry a page); the oldest go first.
    while org.locators.len() >= MAX_LOCATORS {
        org.locators.shift_remove_index(0);
    }
    org.locators.insert(locator.clone(), (batch, rendered));
    json_resp(StatusCode::OK, page_json(c.version, &locator, total, batch, first))
}

fn page_json(version: &str, locator: &str, total: usize, end: usize, records: Vec<Value>) -> Value {
    let done = end >= total;
    let mut m = Map::new();
    m.insert("totalSize".into(), json!(total));
    m.insert("done".into(), json!(done));
    if !done {
        m.insert("nextRecordsUrl".into(), json!(format!("/services/data/v{version}/query/{locator}-{end}")));
    }
    m.insert("records".into(), Value::Array(records));
    Value::Object(m)
}

fn query_more(org: &mut Org, version: &str, locator: &str) -> Response {
    let invalid = || ApiError::bad_request(SfError::new("INVALID_QUERY_LOCATOR", "invalid query locator")).into_response();
    let Some((id, offset)) = locator.rsplit_once('-') else { return invalid() };
    let Ok(offset) = offset.parse::<usize>() else { return invalid() };
    let Some((batch, rows)) = org.locators.get(id) else { return invalid() };
    if offset >= rows.len() {
        return invalid();
    }
    let total = rows.len();
    // Pages keep the batch size the query began with; the offset in the URL
    // says where the next page starts.
    let end = (offset + batch).min(total);
    let page: Vec<Value> = rows[offset..end].to_vec();
    json_resp(StatusCode::OK, page_json(version, id, total, end, page))
}

/// A collections request body: `{"allOrNone": bool, "records": [...]}`.
fn collection_body(body: &Bytes) -> Result<(bool, Vec<Value>), ApiError> {
    let m = object_body(body)?;
    let all_or_none = m.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let records = match m.get("records") {
        Some(Value::Array(a)) => a.clone(),
        _ => return Err(ApiError::bad_request(SfError::new("JSON_PARSER_ERROR", "records: a list of records is required"))),
    };
    check_count(records.len())?;
    Ok((all_or_none, records))
}

/// Refuses the whole call when a record holds a value Salesforce cannot
/// deserialize (see [`crate::fields::parse_error`]).
fn parseable(body: (bool, Vec<Value>), resolve: &dyn Fn(&Value) -> Result<crate::schema::ObjectDef, SfError>) -> Result<(bool, Vec<Value>), ApiError> {
    let refused = body.1.iter().find_map(|r| crate::fields::parse_error(&resolve(r).ok()?, r.as_object()?));
    match refused {
        Some(e) => Err(ApiError::bad_request(e)),
        None => Ok(body),
    }
}

fn check_count(n: usize) -> Result<(), ApiError> {
    if n > COLLECTION_LIMIT {
        return Err(ApiError::bad_request(SfError::new(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )));
    }
    Ok(())
}

fn record_type(r: &Value) -> Option<&str> {
    r.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str)
}

fn failure(id: Option<&str>, e: &SfError) -> Value {
    let mut v = Map::new();
    if let Some(id) = id {
        v.insert("id".into(), json!(id));
    }
    v.insert("success".into(), json!(false));
    v.insert("errors".into(), json!([e.collection_json()]));
    Value::Object(v)
}

fn rolled_back() -> SfError {
    SfError::with_fields(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        vec![],
    )
}

/// Per-record outcome inside a collections call.
struct Outcome {
    id: Option<String>,
    result: Result<Value, SfError>,
}

fn collections(inner: &mut Inner, shared: &Shared, org: usize, c: &Call<'_>, rest: &[&str]) -> Response {
    let schema = inner.orgs[org].schema.clone();
    let resolve = |r: &Value| -> Result<crate::schema::ObjectDef, SfError> {
        let t = record_type(r).ok_or_else(|| SfError::new("INVALID_TYPE", "Must send a concrete entity type."))?;
        schema.object(t).cloned().ok_or_else(|| SfError::new("INVALID_TYPE", format!("sObject type '{t}' is not supported.")))
    };
    let m = c.method.clone();
    match (rest, m) {
        ([], Method::POST) => {
            let (aon, records) = match collection_body(c.body).and_then(|b| parseable(b, &resolve)) {
                Ok(x) => x,
                Err(e) => return e.into_response(),
            };
            run_collection(inner, shared, org, c, aon, false, records, |store, w, r| {
                let o = resolve(r)?;
                let body = r.as_object().cloned().unwrap_or_default();
                let (id, undo) = store.create(w, &o, &body)?;
                Ok((Some(id.clone()), created(&id), undo))
            })
        }
        ([], Method::PATCH) => {
            let (aon, records) = match collection_body(c.body).and_then(|b| parseable(b, &resolve)) {
                Ok(x) => x,
                Err(e) => return e.into_response(),
            };
            run_collection(inner, shared, org, c, aon, false, records, |store, w, r| {
                let o = resolve(r)?;
                let raw = r.get("id").or_else(|| r.get("Id")).and_then(Value::as_str).ok_or_else(|| {
                    SfError::with_fields("MISSING_ARGUMENT", "Id not specified in an update call", vec![])
                })?;
                let id = match store.find(&o, raw) {
                    Ok(rec) => rec.id.clone(),
                    Err(Lookup::Malformed) => return Err(SfError::with_fields("MALFORMED_ID", format!("malformed id {raw}"), vec![])),
                    Err(Lookup::WrongType) => {
                        return Err(SfError::with_fields("MALFORMED_ID", format!("{} ID: id value of incorrect type: {raw}", o.label), vec!["Id".into()]));
                    }
                    Err(Lookup::Deleted) => return Err(SfError::entity_deleted()),
                    Err(Lookup::NotFound) => {
                        return Err(SfError::with_fields("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![]));
                    }
                };
                let mut body = r.as_object().cloned().unwrap_or_default();
                body.remove("id");
                let undo = store.update(w, &o, &id, &body)?;
                Ok((Some(id.clone()), created(&id), undo))
            })
        }
        ([], Method::DELETE) => {
            let raw = c.q.get("ids").cloned().unwrap_or_default();
            let ids: Vec<Value> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| json!(s)).collect();
            if ids.is_empty() {
                return ApiError::bad_request(SfError::with_fields("REQUIRED_FIELD_MISSING", "At least 1 Id is required.", vec!["ids".into()])).into_response();
            }
            if let Err(e) = check_count(ids.len()) {
                return e.into_response();
            }
            let aon = c.q.get("allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            run_collection(inner, shared, org, c, aon, true, ids, |store, w, v| {
                let raw = v.as_str().unwrap_or_default();
                let Some(id) = ids::normalize(raw) else {
                    return Err(SfError::with_fields("MALFORMED_ID", format!("malformed id {raw}"), vec![]));
                };
                let o = schema.object_for_id(&id).cloned().ok_or_else(|| SfError::with_fields("MALFORMED_ID", format!("malformed id {raw}"), vec![]))?;
                if !o.deletable {
                    return Err(SfError::with_fields("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", vec![]));
                }
                match store.find(&o, &id) {
                    Ok(_) => {}
                    Err(Lookup::Deleted) => return Err(SfError::entity_deleted()),
                    Err(_) => return Err(SfError::with_fields("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![])),
                }
                let undo = store.delete(w, &id)?;
                Ok((Some(id.clone()), created(&id), undo))
            })
        }
        ([obj], Method::GET | Method::POST) => {
            let Some(o) = schema.object(obj).cloned() else {
                return ApiError::not_found(SfError::not_found()).into_response();
            };
            let (ids, fields): (Vec<String>, Option<String>) = if *c.method == Method::GET {
                (c.q.get("ids").map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default(), c.q.get("fields").cloned())
            } else {
                match object_body(c.body) {
                    Err(e) => return e.into_response(),
                    Ok(b) => (
                        b.get("ids").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default(),
                        b.get("fields").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
                    ),
                }
            };
            if let Err(e) = check_count(ids.len()) {
                return e.into_response();
            }
            let mut fq = Params::new();
            if let Some(f) = fields {
                fq.insert("fields".into(), f);
            }
            let fields = match selected_fields(&o, &fq) {
                Ok(Some(f)) => f,
                Ok(None) => return ApiError::bad_request(SfError::new("MISSING_ARGUMENT", "fields: at least one field is required")).into_response(),
                Err(e) => return e.into_response(),
            };
            let store = &inner.orgs[org].store;
            let out: Vec<Value> = ids
                .iter()
                .map(|raw| match store.find(&o, raw) {
                    Ok(r) => describe::record(c.version, &o, r, Some(&fields)),
                    Err(_) => Value::Null,
                })
                .collect();
            json_resp(StatusCode::OK, Value::Array(out))
        }
        ([obj, field], Method::PATCH) => {
            let Some(o) = schema.object(obj).cloned() else {
                return ApiError::not_found(SfError::not_found()).into_response();
            };
            let Some(f) = o.field(field).filter(|f| f.external_id).cloned() else {
                return ApiError::not_found(SfError::with_fields("NOT_FOUND", format!("Provided external ID field does not exist or is not accessible: {field}"), vec![])).into_response();
            };
            let (aon, records) = match collection_body(c.body).and_then(|b| parseable(b, &resolve)) {
                Ok(x) => x,
                Err(e) => return e.into_response(),
            };
            run_collection(inner, shared, org, c, aon, false, records, |store, w, r| {
                let ro = resolve(r)?;
                if ro.name != o.name {
                    return Err(SfError::new("INVALID_TYPE", format!("Record type {} does not match {}", ro.name, o.name)));
                }
                let mut body = r.as_object().cloned().unwrap_or_default();
                let key = body.keys().find(|k| k.eq_ignore_ascii_case(&f.name)).cloned();
                let value = key.as_ref().and_then(|k| body.remove(k)).and_then(|v| v.as_str().map(str::to_string)).filter(|v| !v.is_empty());
                let Some(value) = value else {
                    return Err(SfError::with_fields("MISSING_ARGUMENT", format!("{} not specified", f.name), vec![]));
                };
                match store.upsert(w, &o, &f.name, &value, &body) {
                    Ok((Upserted::Created(id), undo)) => {
                        let mut v = created(&id);
                        v["created"] = json!(true);
                        Ok((Some(id), v, undo))
                    }
                    Ok((Upserted::Updated(id), undo)) => {
                        let mut v = created(&id);
                        v["created"] = json!(false);
                        Ok((Some(id), v, undo))
                    }
                    Err(UpsertError::Multiple(ids)) => Err(SfError::with_fields(
                        "DUPLICATE_EXTERNAL_ID",
                        format!("{}: more than one record found for external id field: [{}]", f.name, ids.join(", ")),
                        vec![f.name.clone()],
                    )),
                    Err(UpsertError::NoSuchField(_)) => Err(SfError::not_found()),
                    Err(UpsertError::Invalid(e)) => Err(e),
                }
            })
        }
        ([], m) => not_allowed(&m, "POST,PATCH,DELETE"),
        ([_], m) => not_allowed(&m, "GET,POST"),
        ([_, _], m) => not_allowed(&m, "PATCH"),
        _ => ApiError::not_found(SfError::not_found()).into_response(),
    }
}

/// Runs one operation per item; with `allOrNone`, any failure undoes them all
/// and the others report `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
#[allow(clippy::too_many_arguments)]
fn run_collection(
    inner: &mut Inner,
    shared: &Shared,
    org: usize,
    c: &Call<'_>,
    all_or_none: bool,
    keep_id_on_rollback: bool,
    items: Vec<Value>,
    op: impl Fn(&mut crate::records::Store, &Writer<'_>, &Value) -> Result<(Option<String>, Value, crate::records::Undo), SfError>,
) -> Response {
    let schema = inner.orgs[org].schema.clone();
    with_writer(inner, shared, org, c.actor, c.now, |store, w| {
        let mut undos = Vec::new();
        let mut outcomes = Vec::new();
        for item in &items {
            match op(store, w, item) {
                Ok((id, v, undo)) => {
                    undos.push(undo);
                    outcomes.push(Outcome { id, result: Ok(v) });
                }
                Err(e) => {
                    let id = if keep_id_on_rollback { item.as_str().and_then(ids::normalize) } else { None };
                    let id = id.filter(|_| e.code != "MALFORMED_ID");
                    outcomes.push(Outcome { id, result: Err(e) });
                }
            }
        }
        let failed = outcomes.iter().any(|o| o.result.is_err());
        if all_or_none && failed {
            store.undo(&schema, undos);
        }
        let results: Vec<Value> = outcomes
            .into_iter()
            .map(|o| match o.result {
                Ok(_) if all_or_none && failed => failure(o.id.as_deref().filter(|_| keep_id_on_rollback), &rolled_back()),
                Ok(v) => v,
                Err(e) => failure(o.id.as_deref(), &e),
            })
            .collect();
        json_resp(StatusCode::OK, Value::Array(results))
    })
}
