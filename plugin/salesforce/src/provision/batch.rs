//! The batch path: `composite/sobjects` calls of up to 200 records, each
//! call halved when Salesforce refuses it as a whole for one record's data.

use serde_json::{Map, Value, json};

use super::*;

/// One result per request, in order.
pub type BatchResults = Vec<Result<Outcome, Error>>;

/// What a batch does with one request.
enum Step {
    Upsert(Map<String, Value>),
    Update(String, Map<String, Value>),
    Create(Map<String, Value>),
    Delete(String),
    Deactivate(String),
    /// Set the mark fields on the record with this id.
    Mark(String, Map<String, Value>),
    /// Update the existing record with this id, found by matching.
    Adopt(String, Map<String, Value>),
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
            Intent::Remove => match (&config.removal, current) {
                (Removal::Keep, c) => results[i] = Some(Ok(kept(object, c))),
                (Removal::Mark(mappings), Some(c)) => match mark_fields(mappings, &req.person) {
                    Ok(f) => steps.push((i, Step::Mark(c.remote_id.clone(), f))),
                    Err(e) => results[i] = Some(Err(e)),
                },
                (_, Some(c)) if c.object_type == "User" => steps.push((i, Step::Deactivate(c.remote_id.clone()))),
                (_, Some(c)) => steps.push((i, Step::Delete(c.remote_id.clone()))),
                (_, None) => steps.push((i, Step::Single)),
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

/// Turns the creates and upserts of people without a stored record into
/// adoptions of the records the org already holds for them (or errors,
/// when several match): a query per 100 people.
fn adopt_matches(api: &mut Api<'_>, config: &Config, reqs: &[Request], steps: Vec<(usize, Step)>, results: &mut [Option<Result<Outcome, Error>>]) -> Result<Vec<(usize, Step)>, Error> {
    let Some(m) = &config.matching else { return Ok(steps) };
    let object = config.object.api_name();
    let value = |i: usize, step: &Step| match step {
        Step::Upsert(f) | Step::Create(f) if reqs[i].current.as_ref().is_none_or(|c| c.object_type != object) => matching::match_value(m, &reqs[i].person, f),
        _ => None,
    };
    let values: Vec<String> = steps.iter().filter_map(|(i, step)| value(*i, step)).collect();
    if values.is_empty() {
        return Ok(steps);
    }
    let holders = matching::look_up(api, config, m, &values)?;
    // A record two people of this batch would adopt is neither's.
    let mut claimed: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let decided: Vec<(usize, Step, Option<String>, matching::Found)> = steps
        .into_iter()
        .map(|(i, step)| {
            let v = value(i, &step);
            let found = v.as_deref().map_or(matching::Found::Nothing, |v| matching::decide(&holders, v, &reqs[i].person.id));
            if let matching::Found::One(id) = &found {
                *claimed.entry(id.clone()).or_default() += 1;
            }
            (i, step, v, found)
        })
        .collect();
    let mut out = Vec::new();
    for (i, step, v, found) in decided {
        match found {
            matching::Found::Nothing => out.push((i, step)),
            matching::Found::Several(ids) => results[i] = Some(Err(matching::ambiguous(config, m, v.as_deref().unwrap_or_default(), &ids))),
            matching::Found::One(id) if claimed[&id] > 1 => {
                let message = format!("{object} {id} matches {} people of the registry by {}; give each their own record", claimed[&id], m.label);
                results[i] = Some(Err(Error::Remote { code: "AMBIGUOUS_MATCH".into(), message, status: None, retryable: false }));
            }
            matching::Found::One(id) => match step {
                Step::Upsert(f) | Step::Create(f) => out.push((i, Step::Adopt(id, f))),
                other => out.push((i, other)),
            },
        }
    }
    Ok(out)
}

fn run_steps(api: &mut Api<'_>, config: &Config, reqs: &[Request], steps: Vec<(usize, Step)>, results: &mut [Option<Result<Outcome, Error>>]) -> Result<(), Error> {
    let object = config.object.api_name();
    let steps = adopt_matches(api, config, reqs, steps, results)?;
    let (mut upserts, mut updates, mut creates, mut deletes, mut deactivates, mut singles) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut marks, mut adopts) = (vec![], vec![]);
    for (i, step) in steps {
        match step {
            Step::Upsert(f) => upserts.push((i, f)),
            Step::Update(id, f) => updates.push((i, id, f)),
            Step::Create(f) => creates.push((i, f)),
            Step::Delete(id) => deletes.push((i, id)),
            Step::Deactivate(id) => deactivates.push((i, id)),
            Step::Mark(id, f) => marks.push((i, id, f)),
            Step::Adopt(id, f) => adopts.push((i, id, f)),
            Step::Single => singles.push(i),
        }
    }
    let typed = |mut f: Map<String, Value>| {
        f.insert("attributes".into(), json!({"type": object}));
        Value::Object(f)
    };

    if let Some(ext) = &config.external_id_field {
        for chunk in upserts.chunks_mut(COLLECTION_LIMIT) {
            // Each record's fields are sent once: taken, not copied.
            let records: Vec<Value> = chunk.iter_mut().map(|(_, f)| typed(std::mem::take(f))).collect();
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

    let label = config.matching.as_ref().map_or("", |m| m.label.as_str());
    for chunk in adopts.chunks(COLLECTION_LIMIT) {
        let records: Vec<Value> = chunk.iter().map(|(_, id, f)| by_id(f, id, object)).collect();
        let answers = records_call(api, "PATCH", "composite/sobjects", &records)?;
        for ((i, id, f), a) in chunk.iter().zip(answers) {
            match a {
                Err(Error::Remote { code, .. }) if is_gone(&code) => creates.push((*i, f.clone())),
                other => {
                    let summary = format!("matched existing {object} {id} by {label}");
                    results[*i] = Some(other.map(|_| Outcome { removed: false, summary, remote: reference(object, id.clone()) }));
                }
            }
        }
    }

    for chunk in marks.chunks(COLLECTION_LIMIT) {
        let records: Vec<Value> = chunk.iter().map(|(i, id, f)| by_id(f, id, reqs[*i].current.as_ref().map_or(object, |c| c.object_type.as_str()))).collect();
        let answers = records_call(api, "PATCH", "composite/sobjects", &records)?;
        for ((i, id, f), a) in chunk.iter().zip(answers) {
            let kind = reqs[*i].current.as_ref().map_or(object, |c| c.object_type.as_str());
            results[*i] = Some(match a {
                Ok(_) => Ok(marked(kind, id.clone(), f)),
                Err(Error::Remote { code, .. }) if is_gone(&code) => Ok(Outcome { removed: false, summary: format!("{kind} {id} was already deleted in Salesforce"), remote: None }),
                Err(e) => Err(e),
            });
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
        let answers = collection(api, "DELETE", &format!("composite/sobjects?ids={}&allOrNone=false", ids.join(",")), None, chunk.len())?;
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

/// A collection record that updates the `object` with `id`.
fn by_id(fields: &Map<String, Value>, id: &str, object: &str) -> Value {
    let mut f = fields.clone();
    f.insert("id".into(), Value::String(id.to_string()));
    f.insert("attributes".into(), json!({"type": object}));
    Value::Object(f)
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
    match collection(api, method, path, Some(records), records.len()) {
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

/// A collection call's body.
#[derive(serde::Serialize)]
struct Records<'a> {
    #[serde(rename = "allOrNone")]
    all_or_none: bool,
    records: &'a [Value],
}

/// One record's answer in a collection call's.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<Value>,
}

/// One `composite/sobjects` call: per record, the id and whether it was
/// created, or the record's error.
fn collection(api: &mut Api<'_>, method: &'static str, path: &str, records: Option<&[Value]>, expected: usize) -> Result<Vec<RecordResult>, Error> {
    let resp = match records {
        // Written straight from the records, not copied into one more value.
        Some(records) => {
            let body = serde_json::to_vec(&Records { all_or_none: false, records }).expect("JSON values always serialise");
            api.send_raw(method, path, "application/json", body)?
        }
        None => api.send(method, path, None)?,
    };
    if resp.status != 200 {
        return Err(rest_error(&resp));
    }
    let malformed = || Error::Remote {
        code: "MALFORMED_RESPONSE".into(),
        message: format!("Salesforce answered a collection of {expected} with something else"),
        status: Some(200),
        retryable: false,
    };
    // Typed: the answers' fields, without a map per record.
    let items: Vec<Answer> = serde_json::from_slice(&resp.body).map_err(|_| malformed())?;
    if items.len() != expected {
        return Err(malformed());
    }
    Ok(items
        .into_iter()
        .map(|item| {
            if item.success {
                Ok((item.id.unwrap_or_default(), item.created.unwrap_or(false)))
            } else {
                Err(record_error(&item.errors))
            }
        })
        .collect())
}

/// A collection record's first error (`statusCode`, not `errorCode`) as
/// [`Error`].
fn record_error(errors: &[Value]) -> Error {
    let e = errors.first().cloned().unwrap_or(Value::Null);
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

