//! Finding the records an org already holds for people the target has not
//! provisioned yet: one SOQL query per [`VALUES_PER_QUERY`] values, so a
//! batch of 200 people costs two queries, not 200.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Api, json_body, soql_escape};
use crate::error::Error;
use crate::http::encode_component;
use crate::oauth::rest_error;
use crate::person::Person;
use crate::settings::{Config, Matching};

/// Values one query asks for: keeps the URL well under Salesforce's limit.
pub const VALUES_PER_QUERY: usize = 100;

/// What a search found for one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing: make a record.
    Nothing,
    /// Exactly one record: adopt it.
    One(String),
    /// Several: never pick one.
    Several(Vec<String>),
}

/// The value the person has for the match field, if any.
pub fn match_value(m: &Matching, person: &Person, synced: &Map<String, Value>) -> Option<String> {
    let v = match &m.value {
        Some(t) => t.render(person).ok()?,
        None => synced.get(&m.field)?.as_str()?.to_string(),
    };
    let v = v.trim().to_string();
    (!v.is_empty()).then_some(v)
}

/// Records holding each value (lower-cased, as SOQL compares text): their
/// ids and External IDs.
pub type Holders = HashMap<String, Vec<(String, Option<String>)>>;

/// Looks every value up, [`VALUES_PER_QUERY`] a query, following result pages.
pub(super) fn look_up(api: &mut Api<'_>, config: &Config, m: &Matching, values: &[String]) -> Result<Holders, Error> {
    let object = config.object.api_name();
    let ext = config.external_id_field.as_deref();
    let mut unique: Vec<&String> = values.iter().collect();
    unique.sort_by_key(|v| v.to_lowercase());
    unique.dedup_by_key(|v| v.to_lowercase());
    let mut holders = Holders::new();
    for chunk in unique.chunks(VALUES_PER_QUERY) {
        let list: Vec<String> = chunk.iter().map(|v| format!("'{}'", soql_escape(v))).collect();
        let select = match ext {
            Some(e) => format!("Id, {}, {e}", m.field),
            None => format!("Id, {}", m.field),
        };
        let soql = format!("SELECT {select} FROM {object} WHERE {} IN ({})", m.field, list.join(", "));
        let mut path = format!("query?q={}", encode_component(&soql));
        loop {
            let resp = api.send("GET", &path, None)?;
            if resp.status != 200 {
                return Err(rest_error(&resp));
            }
            let page = json_body(&resp)?;
            for r in page["records"].as_array().into_iter().flatten() {
                let (Some(id), Some(value)) = (r["Id"].as_str(), r[m.field.as_str()].as_str()) else { continue };
                let ext_value = ext.and_then(|e| r[e].as_str()).filter(|v| !v.is_empty()).map(str::to_string);
                holders.entry(value.to_lowercase()).or_default().push((id.to_string(), ext_value));
            }
            match page["nextRecordsUrl"].as_str() {
                // `/services/data/vNN.0/query/01g...-2000`, relative to our base.
                Some(next) if page["done"] == false => match next.split_once(&format!("/v{}/", config.api_version)) {
                    Some((_, rest)) => path = rest.to_string(),
                    None => break,
                },
                _ => break,
            }
        }
    }
    Ok(holders)
}

/// What the holders of `value` mean for the person `registry_id`: records
/// already carrying another person's External ID are theirs, not matches.
pub fn decide(holders: &Holders, value: &str, registry_id: &str) -> Found {
    let ids: Vec<String> = holders
        .get(&value.to_lowercase())
        .into_iter()
        .flatten()
        .filter(|(_, ext)| ext.as_deref().is_none_or(|e| e == registry_id))
        .map(|(id, _)| id.clone())
        .collect();
    match ids.len() {
        0 => Found::Nothing,
        1 => Found::One(ids[0].clone()),
        _ => Found::Several(ids),
    }
}

/// The error for several matches, naming them all.
pub fn ambiguous(config: &Config, m: &Matching, value: &str, ids: &[String]) -> Error {
    let object = config.object.api_name();
    Error::Remote {
        code: "AMBIGUOUS_MATCH".into(),
        message: format!(
            "{} {object}s have {} {value}: {}; merge them in Salesforce, or give the right one the External ID, then reprovision",
            ids.len(),
            m.label,
            ids.join(", ")
        ),
        status: None,
        retryable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_another_person_is_no_match_and_several_are_never_picked() {
        let mut holders = Holders::new();
        holders.insert("ada@example.org".into(), vec![("003A".into(), None), ("003B".into(), Some("P9".into()))]);
        holders.insert("two@example.org".into(), vec![("003C".into(), None), ("003D".into(), Some("P2".into()))]);
        assert_eq!(decide(&holders, "Ada@Example.org", "P1"), Found::One("003A".into()), "003B is P9's");
        assert_eq!(decide(&holders, "two@example.org", "P2"), Found::Several(vec!["003C".into(), "003D".into()]));
        assert_eq!(decide(&holders, "nobody@example.org", "P3"), Found::Nothing);
    }
}
