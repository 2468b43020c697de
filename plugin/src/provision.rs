//! Provisioning over Salesforce's REST API: what to do for an action, the
//! requests for one person, and the `composite/sobjects` batch path. Plain
//! Rust over a [`Transport`], so all of it is unit-tested natively.
//!
//! The rules, in short:
//! - a deleted person, and an expired or suspended one when the target says
//!   "remove", is removed: a Contact is deleted, a User deactivated;
//! - everyone else is synced: upserted by the External ID field when one is
//!   configured (a lost response or a crash never makes a duplicate), else
//!   updated by the stored id, else created;
//! - a record deleted in Salesforce is created again on update, and counts
//!   as removed on delete.

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::http::{Request as HttpRequest, Response, Transport, encode_component};
use crate::mapping::{contact_fields, user_fields};
use crate::oauth::{Tokens, rest_error};
use crate::person::{Person, Status};
use crate::settings::{Config, InactiveAction, ObjectKind};

/// Records one `composite/sobjects` call may carry.
pub const COLLECTION_LIMIT: usize = 200;

/// Why the host asks (mirrors the WIT `provisioning-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Added to the registry.
    Added,
    /// Changed.
    Updated,
    /// Deleted from the registry.
    Deleted,
    /// Expired.
    Expired,
    /// Entered the grace period.
    GracePeriod,
    /// Active again after expiry.
    Unexpired,
    /// Pushed again on request.
    Reprovision,
}

/// The record a person has in Salesforce (mirrors the WIT `remote-ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// `Contact` or `User`.
    pub object_type: String,
    /// The 18-character Salesforce id.
    pub remote_id: String,
}

/// One person to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Why.
    pub action: Action,
    /// The person now (or as they were, when deleted).
    pub person: Person,
    /// The record made earlier, if any.
    pub current: Option<RemoteRef>,
}

/// What a successful provisioning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The record the person has now; `None` when it is gone.
    pub remote: Option<RemoteRef>,
    /// One line for the person's history.
    pub summary: String,
    /// Whether the person was taken out of Salesforce (a Contact deleted, a
    /// User deactivated and kept).
    pub removed: bool,
}

/// Whether a request keeps the person's record or removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Create or update the record (and reactivate a User).
    Sync,
    /// Delete the Contact, or deactivate the User.
    Remove,
}

/// Decides what a request means for the target.
pub fn intent(config: &Config, req: &Request) -> Intent {
    let inactive = matches!(req.person.status, Status::Expired | Status::Suspended) || req.action == Action::Expired;
    let deleted = req.action == Action::Deleted || req.person.status == Status::Deleted;
    if deleted || (inactive && config.inactive_action == InactiveAction::Remove) { Intent::Remove } else { Intent::Sync }
}

/// The field values a sync sends. A User is (re)activated when the person is
/// active or in the grace period; kept as it is otherwise.
pub fn sync_fields(config: &Config, person: &Person) -> Result<Map<String, Value>, Error> {
    match config.object {
        ObjectKind::Contact => contact_fields(config, person),
        ObjectKind::User => {
            let mut f = user_fields(config, person)?;
            if matches!(person.status, Status::Active | Status::GracePeriod) {
                f.insert("IsActive".into(), Value::Bool(true));
            }
            Ok(f)
        }
    }
}

/// The REST API of one org, as the tokens name it.
struct Api<'t> {
    transport: &'t mut dyn Transport,
    base: String,
    token: String,
    /// Whether any call succeeded; an error after that must not be the
    /// batch's outer error, or the host would redo work already done.
    succeeded: bool,
}

impl<'t> Api<'t> {
    fn new(transport: &'t mut dyn Transport, config: &Config, tokens: &Tokens) -> Result<Self, Error> {
        let instance = tokens
            .instance_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Unauthorized("the token set names no instance URL; obtain a new token".into()))?;
        Ok(Api {
            transport,
            base: format!("{}/services/data/v{}", instance.trim_end_matches('/'), config.api_version),
            token: tokens.access_token.clone(),
            succeeded: false,
        })
    }

    fn send(&mut self, method: &'static str, path: &str, body: Option<&Value>) -> Result<Response, Error> {
        let mut req = HttpRequest::new(method, format!("{}/{path}", self.base)).bearer(&self.token).header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.transport.send(req).map_err(|e| Error::Transport(format!("Salesforce did not answer: {e}")))?;
        self.succeeded |= resp.status < 300;
        Ok(resp)
    }

    /// The id of the record whose `field` is `value`, if there is one.
    fn lookup(&mut self, object: &str, field: &str, value: &str) -> Result<Option<String>, Error> {
        let soql = format!("SELECT Id FROM {object} WHERE {field} = '{}'", soql_escape(value));
        let resp = self.send("GET", &format!("query?q={}", encode_component(&soql)), None)?;
        if resp.status != 200 {
            return Err(rest_error(&resp));
        }
        let v = json_body(&resp)?;
        Ok(v["records"].as_array().and_then(|r| r.first()).and_then(|r| r["Id"].as_str()).map(str::to_string))
    }
}

fn soql_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

fn json_body(resp: &Response) -> Result<Value, Error> {
    serde_json::from_slice(&resp.body).map_err(|e| Error::Remote {
        code: "MALFORMED_RESPONSE".into(),
        message: format!("Salesforce's answer is not JSON: {e}"),
        status: Some(resp.status),
        retryable: false,
    })
}

fn id_of(resp: &Response) -> Result<String, Error> {
    json_body(resp)?["id"].as_str().map(str::to_string).ok_or_else(|| Error::Remote {
        code: "MALFORMED_RESPONSE".into(),
        message: "Salesforce's answer names no record id".into(),
        status: Some(resp.status),
        retryable: false,
    })
}

/// Whether Salesforce says the record does not exist (any more).
fn is_gone(code: &str) -> bool {
    matches!(code, "ENTITY_IS_DELETED" | "NOT_FOUND" | "INVALID_CROSS_REFERENCE_KEY")
}

fn gone(resp: &Response) -> bool {
    resp.status == 404 || matches!(rest_error(resp), Error::Remote { ref code, .. } if is_gone(code))
}

fn reference(object: &str, id: String) -> Option<RemoteRef> {
    Some(RemoteRef { object_type: object.to_string(), remote_id: id })
}

/// Provisions one person.
pub fn provision(t: &mut dyn Transport, config: &Config, tokens: &Tokens, req: &Request) -> Result<Outcome, Error> {
    let mut api = Api::new(t, config, tokens)?;
    match intent(config, req) {
        Intent::Sync => {
            let fields = sync_fields(config, &req.person)?;
            sync(&mut api, config, req, fields)
        }
        Intent::Remove => remove(&mut api, config, req).map(|o| Outcome { removed: true, ..o }),
    }
}

fn sync(api: &mut Api<'_>, config: &Config, req: &Request, mut fields: Map<String, Value>) -> Result<Outcome, Error> {
    let object = config.object.api_name();
    let current = req.current.as_ref().filter(|c| c.object_type == object);
    if let Some(ext) = &config.external_id_field {
        // The key travels in the URL.
        fields.remove(ext);
        let path = format!("sobjects/{object}/{ext}/{}", encode_component(&req.person.id));
        let resp = api.send("PATCH", &path, Some(&Value::Object(fields)))?;
        return match resp.status {
            201 => {
                let id = id_of(&resp)?;
                Ok(Outcome { removed: false, summary: format!("created {object} {id} (upsert by {ext})"), remote: reference(object, id) })
            }
            200 => {
                let id = id_of(&resp)?;
                Ok(Outcome { removed: false, summary: format!("updated {object} {id} (upsert by {ext})"), remote: reference(object, id) })
            }
            // Before v46 an update by upsert answers without a body.
            204 => {
                let id = match current {
                    Some(c) => Some(c.remote_id.clone()),
                    None => api.lookup(object, ext, &req.person.id)?,
                };
                let id = id.ok_or_else(|| Error::Remote { code: "NOT_FOUND".into(), message: format!("the upserted {object} could not be found by {ext}"), status: Some(204), retryable: true })?;
                Ok(Outcome { removed: false, summary: format!("updated {object} {id} (upsert by {ext})"), remote: reference(object, id) })
            }
            300 => Err(Error::Remote {
                code: "MULTIPLE_RECORDS".into(),
                message: format!("several {object} records have {ext} = {}; merge or delete the duplicates in Salesforce", req.person.id),
                status: Some(300),
                retryable: false,
            }),
            _ => Err(rest_error(&resp)),
        };
    }
    if let Some(c) = current {
        let resp = api.send("PATCH", &format!("sobjects/{object}/{}", c.remote_id), Some(&Value::Object(fields.clone())))?;
        if resp.status == 204 || resp.status == 200 {
            return Ok(Outcome { removed: false, summary: format!("updated {object} {}", c.remote_id), remote: Some(c.clone()) });
        }
        if !gone(&resp) {
            return Err(rest_error(&resp));
        }
        let id = create(api, object, fields)?;
        return Ok(Outcome { removed: false, summary: format!("created {object} {id} again ({} was deleted in Salesforce)", c.remote_id), remote: reference(object, id) });
    }
    let id = create(api, object, fields)?;
    Ok(Outcome { removed: false, summary: format!("created {object} {id}"), remote: reference(object, id) })
}

fn create(api: &mut Api<'_>, object: &str, fields: Map<String, Value>) -> Result<String, Error> {
    let resp = api.send("POST", &format!("sobjects/{object}"), Some(&Value::Object(fields)))?;
    if resp.status != 201 {
        return Err(rest_error(&resp));
    }
    id_of(&resp)
}

fn remove(api: &mut Api<'_>, config: &Config, req: &Request) -> Result<Outcome, Error> {
    let (object, id) = match (&req.current, &config.external_id_field) {
        (Some(c), _) => (c.object_type.clone(), Some(c.remote_id.clone())),
        // A record made by a call whose answer was lost is still found.
        (None, Some(ext)) => (config.object.api_name().to_string(), api.lookup(config.object.api_name(), ext, &req.person.id)?),
        (None, None) => (config.object.api_name().to_string(), None),
    };
    let Some(id) = id else {
        return Ok(Outcome { removed: false, remote: None, summary: format!("nothing to remove: the person has no {object}") });
    };
    if object == "User" {
        let resp = api.send("PATCH", &format!("sobjects/User/{id}"), Some(&json!({"IsActive": false})))?;
        return match resp.status {
            200 | 204 => Ok(Outcome { removed: false, summary: format!("deactivated User {id}"), remote: reference("User", id) }),
            _ if gone(&resp) => Ok(Outcome { removed: false, summary: format!("User {id} no longer exists in Salesforce"), remote: None }),
            _ => Err(rest_error(&resp)),
        };
    }
    let resp = api.send("DELETE", &format!("sobjects/{object}/{id}"), None)?;
    match resp.status {
        200 | 204 => Ok(Outcome { removed: false, summary: format!("deleted {object} {id}"), remote: None }),
        _ if gone(&resp) => Ok(Outcome { removed: false, summary: format!("{object} {id} was already deleted in Salesforce"), remote: None }),
        _ => Err(rest_error(&resp)),
    }
}

/// One result per request, in order.
pub type BatchResults = Vec<Result<Outcome, Error>>;

/// What a batch does with one request.
enum Step {
    Upsert(Map<String, Value>),
    Update(String, Map<String, Value>),
    Create(Map<String, Value>),
    Delete(String),
    Deactivate(String),
    /// Needs a lookup first: done one at a time.
    Single,
}

/// Provisions many people with `composite/sobjects` (200 records a call,
/// `allOrNone=false`). An error before any call succeeded is the outer
/// error; after that, it becomes the result of every request not yet done.
pub fn provision_batch(t: &mut dyn Transport, config: &Config, tokens: &Tokens, reqs: &[Request]) -> Result<BatchResults, Error> {
    let mut api = Api::new(t, config, tokens)?;
    let object = config.object.api_name();
    let mut results: Vec<Option<Result<Outcome, Error>>> = vec![None; reqs.len()];
    let mut steps: Vec<(usize, Step)> = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let current = req.current.as_ref();
        match intent(config, req) {
            Intent::Sync => match sync_fields(config, &req.person) {
                Err(e) => results[i] = Some(Err(e)),
                Ok(f) if config.external_id_field.is_some() => steps.push((i, Step::Upsert(f))),
                Ok(f) => match current.filter(|c| c.object_type == object) {
                    Some(c) => steps.push((i, Step::Update(c.remote_id.clone(), f))),
                    None => steps.push((i, Step::Create(f))),
                },
            },
            Intent::Remove => match current {
                Some(c) if c.object_type == "User" => steps.push((i, Step::Deactivate(c.remote_id.clone()))),
                Some(c) => steps.push((i, Step::Delete(c.remote_id.clone()))),
                None => steps.push((i, Step::Single)),
            },
        }
    }

    let outcome = run_steps(&mut api, config, reqs, steps, &mut results);
    if let Err(e) = outcome {
        if !api.succeeded {
            return Err(e);
        }
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some(Err(e.clone()));
        }
    }
    Ok(results
        .into_iter()
        .zip(reqs)
        .map(|(r, req)| {
            let removed = intent(config, req) == Intent::Remove;
            r.expect("every request has a result").map(|o| Outcome { removed, ..o })
        })
        .collect())
}

fn run_steps(api: &mut Api<'_>, config: &Config, reqs: &[Request], steps: Vec<(usize, Step)>, results: &mut [Option<Result<Outcome, Error>>]) -> Result<(), Error> {
    let object = config.object.api_name();
    let (mut upserts, mut updates, mut creates, mut deletes, mut deactivates, mut singles) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, step) in steps {
        match step {
            Step::Upsert(f) => upserts.push((i, f)),
            Step::Update(id, f) => updates.push((i, id, f)),
            Step::Create(f) => creates.push((i, f)),
            Step::Delete(id) => deletes.push((i, id)),
            Step::Deactivate(id) => deactivates.push((i, id)),
            Step::Single => singles.push(i),
        }
    }
    let typed = |mut f: Map<String, Value>| {
        f.insert("attributes".into(), json!({"type": object}));
        Value::Object(f)
    };

    if let Some(ext) = &config.external_id_field {
        for chunk in upserts.chunks(COLLECTION_LIMIT) {
            let records: Vec<Value> = chunk.iter().map(|(_, f)| typed(f.clone())).collect();
            let answers = records_call(api, "PATCH", &format!("composite/sobjects/{object}/{ext}"), &records)?;
            for ((i, _), a) in chunk.iter().zip(answers) {
                results[*i] = Some(a.map(|(id, created)| Outcome {
                    removed: false,
                    summary: format!("{} {object} {id} (upsert by {ext})", if created { "created" } else { "updated" }),
                    remote: reference(object, id),
                }));
            }
        }
    }

    for chunk in updates.chunks(COLLECTION_LIMIT) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|(_, id, f)| {
                let mut f = f.clone();
                f.insert("id".into(), Value::String(id.clone()));
                typed(f)
            })
            .collect();
        let answers = records_call(api, "PATCH", "composite/sobjects", &records)?;
        for ((i, id, f), a) in chunk.iter().zip(answers) {
            match a {
                Err(Error::Remote { code, .. }) if is_gone(&code) => creates.push((*i, f.clone())),
                other => results[*i] = Some(other.map(|_| Outcome { removed: false, summary: format!("updated {object} {id}"), remote: reference(object, id.clone()) })),
            }
        }
    }

    for chunk in creates.chunks(COLLECTION_LIMIT) {
        let records: Vec<Value> = chunk.iter().map(|(_, f)| typed(f.clone())).collect();
        let answers = records_call(api, "POST", "composite/sobjects", &records)?;
        for ((i, _), a) in chunk.iter().zip(answers) {
            let again = reqs[*i].current.as_ref().filter(|c| c.object_type == object);
            results[*i] = Some(a.map(|(id, _)| Outcome {
                removed: false,
                summary: match again {
                    Some(old) => format!("created {object} {id} again ({} was deleted in Salesforce)", old.remote_id),
                    None => format!("created {object} {id}"),
                },
                remote: reference(object, id),
            }));
        }
    }

    for chunk in deletes.chunks(COLLECTION_LIMIT) {
        let ids: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
        let answers = collection(api, "DELETE", &format!("composite/sobjects?ids={}&allOrNone=false", ids.join(",")), &Value::Null, chunk.len())?;
        for ((i, id), a) in chunk.iter().zip(answers) {
            let kind = reqs[*i].current.as_ref().map_or(object, |c| c.object_type.as_str());
            results[*i] = Some(match a {
                Ok(_) => Ok(Outcome { removed: false, summary: format!("deleted {kind} {id}"), remote: None }),
                Err(Error::Remote { code, .. }) if is_gone(&code) => Ok(Outcome { removed: false, summary: format!("{kind} {id} was already deleted in Salesforce"), remote: None }),
                Err(e) => Err(e),
            });
        }
    }

    for chunk in deactivates.chunks(COLLECTION_LIMIT) {
        let records: Vec<Value> = chunk.iter().map(|(_, id)| json!({"attributes": {"type": "User"}, "id": id, "IsActive": false})).collect();
        let answers = records_call(api, "PATCH", "composite/sobjects", &records)?;
        for ((i, id), a) in chunk.iter().zip(answers) {
            results[*i] = Some(match a {
                Ok(_) => Ok(Outcome { removed: false, summary: format!("deactivated User {id}"), remote: reference("User", id.clone()) }),
                Err(Error::Remote { code, .. }) if is_gone(&code) => Ok(Outcome { removed: false, summary: format!("User {id} no longer exists in Salesforce"), remote: None }),
                Err(e) => Err(e),
            });
        }
    }

    for i in singles {
        let outcome = match remove(api, config, &reqs[i]) {
            Err(e @ (Error::Unauthorized(_) | Error::RateLimited(_) | Error::Transport(_))) => return Err(e),
            other => other,
        };
        results[i] = Some(outcome);
    }
    Ok(())
}

/// A collection record's id and whether it was created, or its error.
type RecordResult = Result<(String, bool), Error>;

/// Extra calls one collection may spend on finding the records Salesforce
/// refuses a whole call for: enough to isolate a few bad records among 200
/// (each costs about 2·log2(200) ≈ 16), not so many that an error about no
/// record in particular (a field the org lacks) burns the API budget.
pub const SPLIT_BUDGET: usize = 32;

/// Sends `records` (at most [`COLLECTION_LIMIT`]) in one collection call.
/// When Salesforce refuses the call as a whole for something in the data
/// (HTTP 400, not retryable: e.g. JSON_PARSER_ERROR for one record's
/// value), halves it and sends each half, so that a bad record fails alone
/// and the others go through.
fn records_call(api: &mut Api<'_>, method: &'static str, path: &str, records: &[Value]) -> Result<Vec<RecordResult>, Error> {
    let mut budget = SPLIT_BUDGET;
    in_halves(api, method, path, records, &mut budget)
}

fn in_halves(api: &mut Api<'_>, method: &'static str, path: &str, records: &[Value], budget: &mut usize) -> Result<Vec<RecordResult>, Error> {
    match collection(api, method, path, &json!({"allOrNone": false, "records": records}), records.len()) {
        Err(e) if matches!(e, Error::Remote { status: Some(400), retryable: false, .. }) => {
            if records.len() == 1 || *budget < 2 {
                return Ok(vec![Err(e); records.len()]);
            }
            *budget -= 2;
            let (a, b) = records.split_at(records.len() / 2);
            let mut answers = in_halves(api, method, path, a, budget)?;
            answers.extend(in_halves(api, method, path, b, budget)?);
            Ok(answers)
        }
        other => other,
    }
}

/// One `composite/sobjects` call: per record, the id and whether it was
/// created, or the record's error.
fn collection(api: &mut Api<'_>, method: &'static str, path: &str, body: &Value, expected: usize) -> Result<Vec<RecordResult>, Error> {
    let resp = api.send(method, path, if body.is_null() { None } else { Some(body) })?;
    if resp.status != 200 {
        return Err(rest_error(&resp));
    }
    let v = json_body(&resp)?;
    let items = v.as_array().filter(|a| a.len() == expected).ok_or_else(|| Error::Remote {
        code: "MALFORMED_RESPONSE".into(),
        message: format!("Salesforce answered a collection of {expected} with something else"),
        status: Some(200),
        retryable: false,
    })?;
    Ok(items
        .iter()
        .map(|item| {
            if item["success"].as_bool() == Some(true) {
                let id = item["id"].as_str().unwrap_or_default().to_string();
                Ok((id, item["created"].as_bool().unwrap_or(false)))
            } else {
                Err(record_error(item))
            }
        })
        .collect())
}

/// A collection record's error (`statusCode`, not `errorCode`) as [`Error`].
fn record_error(item: &Value) -> Error {
    let e = item["errors"].as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
    let code = e["statusCode"].as_str().unwrap_or("UNKNOWN_ERROR").to_string();
    let mut message = e["message"].as_str().unwrap_or("").chars().take(500).collect::<String>();
    if let Some(fields) = e["fields"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        message = format!("{message} (fields: {})", names.join(", "));
    }
    match code.as_str() {
        "INVALID_SESSION_ID" => Error::Unauthorized(message),
        "REQUEST_LIMIT_EXCEEDED" => Error::RateLimited(None),
        "UNABLE_TO_LOCK_ROW" => Error::Remote { code, message, status: None, retryable: true },
        _ => Error::Remote { code, message, status: None, retryable: false },
    }
}

#[cfg(test)]
mod tests;
