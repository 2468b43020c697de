//! Settings checked against the org when an admin saves a target: every
//! field the settings name must exist on the object (one describe call),
//! and the External ID field must be one.

use serde_json::Value;

use super::{Api, json_body};
use crate::http::Transport;
use crate::oauth::{Tokens, rest_error};
use crate::settings::names::{EXTERNAL_ID_FIELD, FIELD_MAPPINGS, MARK_FIELDS, MATCH_FIELD, OBJECT};
use crate::settings::{Config, FieldError, Removal};

/// Every named field that the org's object lacks, each under its setting.
pub fn check_settings(t: &mut dyn Transport, config: &Config, tokens: &Tokens) -> Result<(), Vec<FieldError>> {
    let object = config.object.api_name();
    let unreachable = |message: String| vec![FieldError::new(OBJECT, format!("the settings could not be checked against Salesforce: {message}"))];
    let mut api = Api::new(t, config, tokens).map_err(|e| unreachable(format!("{e:?}")))?;
    let resp = api.send("GET", &format!("sobjects/{object}/describe"), None).map_err(|e| unreachable(format!("{e:?}")))?;
    if resp.status != 200 {
        return Err(unreachable(format!("{:?}", rest_error(&resp))));
    }
    let describe = json_body(&resp).map_err(|e| unreachable(format!("{e:?}")))?;
    let fields: Vec<&Value> = describe["fields"].as_array().map(|f| f.iter().collect()).unwrap_or_default();
    let find = |name: &str| fields.iter().find(|f| f["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
    let mut errors = Vec::new();
    let mut need = |setting: &str, name: &str| {
        if find(name).is_none() {
            errors.push(FieldError::new(setting, format!("{object} has no field {name} in this org; check the API name in Setup → Object Manager → {object} → Fields")));
        }
    };
    if let Some(m) = config.matching.as_ref().filter(|m| m.value.is_some()) {
        need(MATCH_FIELD, &m.field);
    }
    for m in &config.field_mappings {
        need(FIELD_MAPPINGS, &m.field);
    }
    if let Removal::Mark(marks) = &config.removal {
        for m in marks {
            need(MARK_FIELDS, &m.field);
        }
    }
    if let Some(ext) = &config.external_id_field {
        match find(ext) {
            None => need(EXTERNAL_ID_FIELD, ext),
            Some(f) if f["externalId"] != true => {
                errors.push(FieldError::new(EXTERNAL_ID_FIELD, format!("{object}.{ext} is not an External ID field; tick \"External ID\" on it in Setup, or pick another")))
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
