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
use crate::mapping::{contact_fields, mark_fields, user_fields};
use crate::oauth::{Tokens, rest_error};
use crate::person::{Person, Status};
use crate::settings::{Config, InactiveAction, ObjectKind, Removal};

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

    /// A request with a body of another type (a Bulk API CSV upload).
    fn send_raw(&mut self, method: &'static str, path: &str, content_type: &str, body: Vec<u8>) -> Result<Response, Error> {
        let mut req = HttpRequest::new(method, format!("{}/{path}", self.base)).bearer(&self.token).header("Content-Type", content_type).header("Accept", "application/json");
        req.body = body;
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
    if let (None, Some(m)) = (current, &config.matching)
        && let Some(value) = matching::match_value(m, &req.person, &fields)
    {
        let holders = matching::look_up(api, config, m, std::slice::from_ref(&value))?;
        match matching::decide(&holders, &value, &req.person.id) {
            matching::Found::Nothing => {}
            matching::Found::Several(ids) => return Err(matching::ambiguous(config, m, &value, &ids)),
            matching::Found::One(id) => {
                let resp = api.send("PATCH", &format!("sobjects/{object}/{id}"), Some(&Value::Object(fields.clone())))?;
                if resp.status == 204 || resp.status == 200 {
                    return Ok(Outcome { removed: false, summary: format!("matched existing {object} {id} by {}", m.label), remote: reference(object, id) });
                }
                if !gone(&resp) {
                    return Err(rest_error(&resp));
                }
            }
        }
    }
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

/// What "keep" does: nothing in Salesforce; the host stops managing the
/// record (and keeps its id, should the person come back).
fn kept(object: &str, current: Option<&RemoteRef>) -> Outcome {
    match current {
        Some(c) => Outcome { removed: false, summary: format!("kept {} {} in Salesforce; no longer managed", c.object_type, c.remote_id), remote: Some(c.clone()) },
        None => Outcome { removed: false, summary: format!("nothing to remove: the person has no {object}"), remote: None },
    }
}

fn remove(api: &mut Api<'_>, config: &Config, req: &Request) -> Result<Outcome, Error> {
    if config.removal == Removal::Keep {
        return Ok(kept(config.object.api_name(), req.current.as_ref()));
    }
    let (object, id) = match (&req.current, &config.external_id_field) {
        (Some(c), _) => (c.object_type.clone(), Some(c.remote_id.clone())),
        // A record made by a call whose answer was lost is still found.
        (None, Some(ext)) => (config.object.api_name().to_string(), api.lookup(config.object.api_name(), ext, &req.person.id)?),
        (None, None) => (config.object.api_name().to_string(), None),
    };
    let Some(id) = id else {
        return Ok(Outcome { removed: false, remote: None, summary: format!("nothing to remove: the person has no {object}") });
    };
    if let Removal::Mark(mappings) = &config.removal {
        let fields = mark_fields(mappings, &req.person)?;
        let resp = api.send("PATCH", &format!("sobjects/{object}/{id}"), Some(&Value::Object(fields.clone())))?;
        return match resp.status {
            200 | 204 => Ok(marked(&object, id, &fields)),
            _ if gone(&resp) => Ok(Outcome { removed: false, summary: format!("{object} {id} was already deleted in Salesforce"), remote: None }),
            _ => Err(rest_error(&resp)),
        };
    }
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

/// The outcome of a "mark" removal.
fn marked(object: &str, id: String, fields: &Map<String, Value>) -> Outcome {
    let set: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    Outcome { removed: false, summary: format!("marked {object} {id} ({}); no longer managed", set.join(", ")), remote: reference(object, id) }
}

mod batch;
pub mod bulk;
pub mod groups;
mod matching;
mod org_check;
mod preview;
pub mod requests;

pub use batch::{BatchResults, SPLIT_BUDGET, provision_batch};
pub use org_check::check_settings;
pub use preview::{Step, preview};
pub use requests::{PAGE, Requests, all, each};

#[cfg(test)]
mod tests;
