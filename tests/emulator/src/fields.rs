//! How a request body maps onto a record's fields, as Salesforce reads it:
//! unknown and read-only fields refused, values typed by the field (text
//! from scalars, booleans from "true"/"false"), and the JSON errors that
//! refuse a whole request before any record is written.

use serde_json::{Map, Value};

use crate::errors::SfError;
use crate::schema::{FieldType, ObjectDef};

/// Which rights a field needs: create or update.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A new record's fields.
    Create,
    /// An existing record's fields.
    Update,
}

/// Maps a body onto canonical field names with typed values, refusing unknown
/// and read-only fields the way Salesforce does.
pub(crate) fn parse_body(object: &ObjectDef, body: &Map<String, Value>, mode: Mode) -> Result<Vec<(String, Value)>, SfError> {
    let mut out = Vec::new();
    let mut read_only = Vec::new();
    for (k, v) in body {
        if k == "attributes" {
            continue;
        }
        let Some(f) = object.field(k) else {
            return Err(SfError::new("INVALID_FIELD", format!("No such column '{k}' on sobject of type {}", object.name)));
        };
        let writable = match mode {
            Mode::Create => f.createable,
            Mode::Update => f.updateable,
        };
        if !writable {
            read_only.push(f.name.clone());
            continue;
        }
        let value = match (&f.ty, v) {
            (_, Value::Null) => Value::Null,
            (FieldType::Boolean, Value::Bool(b)) => Value::Bool(*b),
            (FieldType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                Value::Bool(s.eq_ignore_ascii_case("true"))
            }
            (FieldType::Boolean, other) => return Err(json_error("boolean", other)),
            (_, Value::String(s)) if s.is_empty() => Value::Null,
            (_, Value::String(s)) => Value::String(s.clone()),
            // Salesforce's parser turns scalars into text for text fields.
            (_, Value::Number(n)) => Value::String(n.to_string()),
            (_, Value::Bool(b)) => Value::String(b.to_string()),
            (_, other) => return Err(json_error("string", other)),
        };
        out.push((f.name.clone(), value));
    }
    if !read_only.is_empty() {
        return Err(SfError::with_fields(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                read_only.join(", ")
            ),
            read_only,
        ));
    }
    Ok(out)
}

/// The JSON_PARSER_ERROR a value in `body` causes, if any. Salesforce
/// deserializes a whole request before it acts on any record, so in a
/// collection one such value refuses the whole call (HTTP 400), not just
/// its record.
pub fn parse_error(object: &ObjectDef, body: &Map<String, Value>) -> Option<SfError> {
    body.iter().filter(|(k, _)| *k != "attributes").find_map(|(k, v)| match (&object.field(k)?.ty, v) {
        (_, Value::Null) | (FieldType::Boolean, Value::Bool(_)) => None,
        (FieldType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => None,
        (FieldType::Boolean, other) => Some(json_error("boolean", other)),
        (_, other @ (Value::Object(_) | Value::Array(_))) => Some(json_error("string", other)),
        _ => None,
    })
}

fn json_error(ty: &str, got: &Value) -> SfError {
    let token = match got {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::Bool(_) => "VALUE_TRUE",
        Value::Null => "VALUE_NULL",
    };
    SfError::new("JSON_PARSER_ERROR", format!("Cannot deserialize instance of {ty} from {token} value {got} or request may be missing a required field"))
}
