//! What provisioning would do, step by step, without writing: the decision
//! and why, the search for an existing record (a read, which does go out),
//! and each write with its method, path and fields.

use serde_json::{Map, Value};

use super::{Api, Intent, Request, intent, matching, sync_fields};
use crate::error::Error;
use crate::http::{Transport, encode_component};
use crate::mapping::mark_fields;
use crate::oauth::Tokens;
use crate::person::Status;
use crate::settings::{Config, Removal};

/// One planned step (mirrors the WIT `planned-step`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What and why.
    pub description: String,
    /// Method and path, if it sends a request.
    pub request: Option<String>,
    /// Field names and values.
    pub fields: Vec<(String, String)>,
}

fn step(description: impl Into<String>, request: Option<String>, fields: &Map<String, Value>) -> Step {
    let fields = fields.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect();
    Step { description: description.into(), request, fields }
}

fn decision(description: impl Into<String>) -> Step {
    Step { description: description.into(), request: None, fields: vec![] }
}

/// The steps `provision` would take for `req`. Only reads reach Salesforce.
pub fn preview(t: &mut dyn Transport, config: &Config, tokens: &Tokens, req: &Request) -> Result<Vec<Step>, Error> {
    let mut api = Api::new(t, config, tokens)?;
    let base = format!("/services/data/v{}", config.api_version);
    let object = config.object.api_name();
    let current = req.current.as_ref().filter(|c| c.object_type == object);
    let mut steps = Vec::new();
    match intent(config, req) {
        Intent::Sync => {
            let mut fields = sync_fields(config, &req.person)?;
            let why = match req.person.status {
                Status::Active | Status::GracePeriod => "the person is active: their record is kept up to date",
                _ => "the person is inactive and the target keeps inactive people's records up to date",
            };
            steps.push(decision(format!("sync: {why}")));
            if let (None, Some(m)) = (current, &config.matching)
                && let Some(value) = matching::match_value(m, &req.person, &fields)
            {
                let holders = matching::look_up(&mut api, config, m, std::slice::from_ref(&value))?;
                steps.push(decision(format!("searched Salesforce for a {object} whose {} is {value} (a read)", m.label)));
                match matching::decide(&holders, &value, &req.person.id) {
                    matching::Found::One(id) => {
                        steps.push(step(format!("adopt the existing {object} {id}, matched by {}, and update it", m.label), Some(format!("PATCH {base}/sobjects/{object}/{id}")), &fields));
                        return Ok(steps);
                    }
                    matching::Found::Several(ids) => {
                        steps.push(decision(format!("nothing: {} {object}s match ({}); the person would fail until only one does", ids.len(), ids.join(", "))));
                        return Ok(steps);
                    }
                    matching::Found::Nothing => steps.push(decision(format!("no {object} has that {}: a new one is made", m.label))),
                }
            }
            if let Some(ext) = &config.external_id_field {
                fields.remove(ext);
                let what = match current {
                    Some(c) => format!("update {object} {} (upsert by {ext} = {})", c.remote_id, req.person.id),
                    None => format!("create the {object}, or update the one whose {ext} is {} (upsert)", req.person.id),
                };
                steps.push(step(what, Some(format!("PATCH {base}/sobjects/{object}/{ext}/{}", encode_component(&req.person.id))), &fields));
            } else if let Some(c) = current {
                steps.push(step(format!("update {object} {}", c.remote_id), Some(format!("PATCH {base}/sobjects/{object}/{}", c.remote_id)), &fields));
            } else {
                steps.push(step(format!("create a {object}"), Some(format!("POST {base}/sobjects/{object}")), &fields));
            }
        }
        Intent::Remove => {
            let effect = match &config.removal {
                Removal::Keep => "keep",
                Removal::Mark(_) => "mark",
                Removal::Deactivate => "deactivate",
                Removal::Delete => "delete",
            };
            steps.push(decision(format!("remove: the person is deleted, out of scope or inactive, and the target's removal setting is '{effect}'")));
            let Some(c) = req.current.as_ref() else {
                steps.push(decision(format!("nothing: the person has no {object} this target manages")));
                return Ok(steps);
            };
            match &config.removal {
                Removal::Keep => steps.push(decision(format!("nothing is sent: {} {} is kept in Salesforce and no longer managed", c.object_type, c.remote_id))),
                Removal::Mark(mappings) => {
                    let fields = mark_fields(mappings, &req.person)?;
                    steps.push(step(format!("mark {} {} and stop managing it", c.object_type, c.remote_id), Some(format!("PATCH {base}/sobjects/{}/{}", c.object_type, c.remote_id)), &fields));
                }
                _ if c.object_type == "User" => {
                    let fields: Map<String, Value> = [("IsActive".to_string(), Value::Bool(false))].into_iter().collect();
                    steps.push(step(format!("deactivate User {}", c.remote_id), Some(format!("PATCH {base}/sobjects/User/{}", c.remote_id)), &fields));
                }
                _ => steps.push(step(format!("delete {} {}", c.object_type, c.remote_id), Some(format!("DELETE {base}/sobjects/{}/{}", c.object_type, c.remote_id)), &Map::new())),
            }
        }
    }
    Ok(steps)
}
