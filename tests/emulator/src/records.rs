//! One org's records and Salesforce's write rules: field validation in
//! Salesforce's order and words, unique and external-id indexes, deletes to
//! the recycle bin, and undo for `allOrNone` rollbacks.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::errors::SfError;
use crate::fields::{Mode, parse_body};
use crate::ids::{self, IdGen};
use crate::schema::{Field, FieldType, ObjectDef, Schema};

/// A stored record.
#[derive(Debug, Clone)]
pub struct Record {
    /// 18-character id.
    pub id: String,
    /// Object API name.
    pub object: &'static str,
    /// Field values by canonical name (unset fields absent).
    pub fields: IndexMap<String, Value>,
    /// In the recycle bin.
    pub deleted: bool,
}

impl Record {
    /// A field's value (`null` when unset).
    pub fn get(&self, name: &str) -> Value {
        self.fields.get(name).cloned().unwrap_or(Value::Null)
    }
}

/// Looks up usernames in other orgs (they are unique across all of Salesforce).
pub type UsernameTaken<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What a write does when it succeeds, so it can be undone.
#[derive(Debug, Clone)]
pub struct Undo {
    id: String,
    before: Option<Record>,
}

/// The outcome of an upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// A record was created.
    Created(String),
    /// The one matching record was updated.
    Updated(String),
}

/// Why an upsert failed.
#[derive(Debug, Clone)]
pub enum UpsertError {
    /// Several records match (HTTP 300): their ids.
    Multiple(Vec<String>),
    /// The field is not an external id (404 NOT_FOUND).
    NoSuchField(String),
    /// A validation error.
    Invalid(SfError),
}

/// Why a single-record lookup failed; the REST layer maps these to statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Not an id at all.
    Malformed,
    /// A well-formed id of another object type.
    WrongType,
    /// No such record.
    NotFound,
    /// In the recycle bin.
    Deleted,
}

/// One org's records.
#[derive(Debug, Default)]
pub struct Store {
    records: IndexMap<String, Record>,
    /// (object, field) → lowercase value → ids, for unique and external-id fields.
    index: HashMap<(&'static str, String), HashMap<String, Vec<String>>>,
    /// Each record as a create or update left it, oldest first: what the
    /// org was sent, in the order it took it (tests check order with it).
    /// Kept only when asked: it holds a copy of every write.
    writes: Option<Vec<Record>>,
}

impl Store {
    /// All records of `object`, deleted ones included, in creation order.
    pub fn all(&self, object: &str) -> impl Iterator<Item = &Record> {
        let object = object.to_string();
        self.records.values().filter(move |r| r.object.eq_ignore_ascii_case(&object))
    }

    /// The record with normalised id `id`, deleted or not.
    pub fn by_id(&self, id: &str) -> Option<&Record> {
        self.records.get(id)
    }

    /// Finds a live record of `object` by a raw id from a URL.
    pub fn find(&self, object: &ObjectDef, raw_id: &str) -> Result<&Record, Lookup> {
        let id = ids::normalize(raw_id).ok_or(Lookup::Malformed)?;
        if !id.starts_with(object.key_prefix) {
            return Err(Lookup::WrongType);
        }
        match self.records.get(&id) {
            None => Err(Lookup::NotFound),
            Some(r) if r.deleted => Err(Lookup::Deleted),
            Some(r) => Ok(r),
        }
    }

    /// Ids of live records of `object` whose indexed `field` equals `value`
    /// (case-insensitively).
    pub fn lookup(&self, object: &'static str, field: &str, value: &str) -> Vec<String> {
        self.index
            .get(&(object, field.to_string()))
            .and_then(|m| m.get(&value.to_lowercase()))
            .cloned()
            .unwrap_or_default()
    }

    /// Each record of `object` as every API create or update left it,
    /// oldest first (undone writes included: the org received them).
    pub fn writes(&self, object: &str) -> impl Iterator<Item = &Record> {
        let object = object.to_string();
        self.writes.iter().flatten().filter(move |r| r.object.eq_ignore_ascii_case(&object))
    }

    /// Starts keeping every write (see [`Store::writes`]).
    pub fn keep_writes(&mut self) {
        self.writes.get_or_insert_with(Vec::new);
    }

    fn wrote(&mut self, record: &Record) {
        if let Some(writes) = &mut self.writes {
            writes.push(record.clone());
        }
    }

    /// Inserts a record as-is (seeding, or system objects).
    pub fn insert(&mut self, schema: &Schema, record: Record) {
        self.put(schema, record);
    }

    fn put(&mut self, schema: &Schema, record: Record) {
        if let Some(old) = self.records.get(&record.id).cloned() {
            self.unindex(schema, &old);
        }
        if !record.deleted {
            self.reindex(schema, &record);
        }
        self.records.insert(record.id.clone(), record);
    }

    fn indexed_fields<'s>(schema: &'s Schema, object: &str) -> impl Iterator<Item = &'s Field> {
        schema
            .object(object)
            .into_iter()
            .flat_map(|o| o.fields.iter())
            .filter(|f| f.unique || f.external_id)
    }

    fn reindex(&mut self, schema: &Schema, r: &Record) {
        for f in Self::indexed_fields(schema, r.object) {
            if let Some(Value::String(v)) = r.fields.get(&f.name) {
                self.index
                    .entry((r.object, f.name.clone()))
                    .or_default()
                    .entry(v.to_lowercase())
                    .or_default()
                    .push(r.id.clone());
            }
        }
    }

    fn unindex(&mut self, schema: &Schema, r: &Record) {
        for f in Self::indexed_fields(schema, r.object) {
            if let Some(Value::String(v)) = r.fields.get(&f.name)
                && let Some(m) = self.index.get_mut(&(r.object, f.name.clone()))
                && let Some(ids) = m.get_mut(&v.to_lowercase())
            {
                ids.retain(|i| i != &r.id);
                if ids.is_empty() {
                    m.remove(&v.to_lowercase());
                }
            }
        }
    }

    /// Reverts writes, newest first.
    pub fn undo(&mut self, schema: &Schema, undos: Vec<Undo>) {
        for u in undos.into_iter().rev() {
            match u.before {
                Some(r) => self.put(schema, r),
                None => {
                    if let Some(r) = self.records.shift_remove(&u.id) {
                        self.unindex(schema, &r);
                    }
                }
            }
        }
    }

    /// Creates a record from a request body.
    pub fn create(&mut self, w: &Writer<'_>, object: &ObjectDef, body: &Map<String, Value>) -> Result<(String, Undo), SfError> {
        if body.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
            return Err(SfError::with_fields(
                "INVALID_FIELD",
                "The Id field should not be specified in the sobject data.",
                vec![],
            ));
        }
        let changes = parse_body(object, body, Mode::Create)?;
        let id = w.ids.next(object.key_prefix);
        let mut fields = IndexMap::new();
        for f in &object.fields {
            if let Some(d) = &f.default {
                fields.insert(f.name.clone(), d.clone());
            }
        }
        for (k, v) in changes {
            set(&mut fields, &k, v);
        }
        self.check(w, object, &fields, None)?;
        fields.insert("Id".into(), Value::String(id.clone()));
        let stamp = Value::String(w.now.clone());
        let actor = Value::String(w.actor.to_string());
        let has = |n: &str| object.field(n).is_some();
        if has("OwnerId") {
            fields.insert("OwnerId".into(), actor.clone());
        }
        if has("IsDeleted") {
            fields.insert("IsDeleted".into(), Value::Bool(false));
        }
        fields.insert("CreatedDate".into(), stamp.clone());
        fields.insert("CreatedById".into(), actor.clone());
        fields.insert("LastModifiedDate".into(), stamp.clone());
        fields.insert("LastModifiedById".into(), actor);
        fields.insert("SystemModstamp".into(), stamp);
        compute_name(object, &mut fields);
        let record = Record { id: id.clone(), object: object.name, fields, deleted: false };
        self.wrote(&record);
        self.put(w.schema, record);
        Ok((id.clone(), Undo { id, before: None }))
    }

    /// Updates the live record `id` (already normalised and found).
    pub fn update(&mut self, w: &Writer<'_>, object: &ObjectDef, id: &str, body: &Map<String, Value>) -> Result<Undo, SfError> {
        let before = self.records.get(id).cloned().ok_or_else(SfError::not_found)?;
        let mut body = body.clone();
        // Clients send the id in the body of collection updates; it names the
        // record and is not a change.
        body.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
        let changes = parse_body(object, &body, Mode::Update)?;
        let mut fields = before.fields.clone();
        for (k, v) in changes {
            set(&mut fields, &k, v);
        }
        self.check(w, object, &fields, Some(id))?;
        fields.insert("LastModifiedDate".into(), Value::String(w.now.clone()));
        fields.insert("LastModifiedById".into(), Value::String(w.actor.to_string()));
        fields.insert("SystemModstamp".into(), Value::String(w.now.clone()));
        compute_name(object, &mut fields);
        let after = Record { fields, ..before.clone() };
        self.wrote(&after);
        self.put(w.schema, after);
        Ok(Undo { id: id.to_string(), before: Some(before) })
    }

    /// Moves the live record `id` to the recycle bin.
    pub fn delete(&mut self, w: &Writer<'_>, id: &str) -> Result<Undo, SfError> {
        let before = self.records.get(id).cloned().ok_or_else(SfError::not_found)?;
        let mut after = before.clone();
        after.deleted = true;
        after.fields.insert("IsDeleted".into(), Value::Bool(true));
        after.fields.insert("SystemModstamp".into(), Value::String(w.now.clone()));
        self.put(w.schema, after);
        Ok(Undo { id: id.to_string(), before: Some(before) })
    }

    /// Upserts by external id `field` = `value`.
    pub fn upsert(
        &mut self,
        w: &Writer<'_>,
        object: &ObjectDef,
        field: &str,
        value: &str,
        body: &Map<String, Value>,
    ) -> Result<(Upserted, Undo), UpsertError> {
        let f = object
            .field(field)
            .filter(|f| f.external_id || f.ty == FieldType::Id)
            .ok_or_else(|| UpsertError::NoSuchField(field.to_string()))?;
        if f.ty == FieldType::Id {
            // Upsert by Id: an existing id updates, otherwise it is an error.
            let found = self.find(object, value).map_err(|_| UpsertError::Invalid(SfError::not_found()))?;
            let id = found.id.clone();
            let undo = self.update(w, object, &id, body).map_err(UpsertError::Invalid)?;
            return Ok((Upserted::Updated(id), undo));
        }
        let mut body = body.clone();
        // The key belongs in the URL; a body value for it must agree.
        let key: Vec<String> = body.keys().filter(|k| k.eq_ignore_ascii_case(&f.name)).cloned().collect();
        for k in key {
            let v = body.remove(&k).unwrap_or(Value::Null);
            if v.as_str() != Some(value) {
                return Err(UpsertError::Invalid(SfError::with_fields(
                    "INVALID_FIELD",
                    format!("{}: the value in the body must match the external id in the URL", f.label),
                    vec![f.name.clone()],
                )));
            }
        }
        let matches = self.lookup(object.name, &f.name, value);
        match matches.len() {
            0 => {
                body.insert(f.name.clone(), Value::String(value.to_string()));
                let (id, undo) = self.create(w, object, &body).map_err(UpsertError::Invalid)?;
                Ok((Upserted::Created(id), undo))
            }
            1 => {
                let id = matches[0].clone();
                let undo = self.update(w, object, &id, &body).map_err(UpsertError::Invalid)?;
                Ok((Upserted::Updated(id), undo))
            }
            _ => Err(UpsertError::Multiple(matches)),
        }
    }

    /// Required fields, lengths, formats, picklists, references and
    /// uniqueness, in that order, for the record as it would be saved.
    fn check(&self, w: &Writer<'_>, object: &ObjectDef, fields: &IndexMap<String, Value>, self_id: Option<&str>) -> Result<(), SfError> {
        let missing: Vec<String> = object
            .fields
            .iter()
            .filter(|f| f.required && f.createable && is_empty(fields.get(&f.name)))
            .map(|f| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(SfError::with_fields(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            ));
        }
        // System fields (ids, stamps, owner) are set by the emulator itself.
        for f in object.fields.iter().filter(|f| f.createable || f.updateable) {
            let Some(Value::String(v)) = fields.get(&f.name) else { continue };
            if f.is_text() && f.length > 0 && v.chars().count() > f.length {
                return Err(SfError::with_fields(
                    "STRING_TOO_LONG",
                    format!("{}: data value too large: {v} (max length={})", f.label, f.length),
                    vec![f.name.clone()],
                ));
            }
            match &f.ty {
                FieldType::Email if !valid_email(v) => {
                    return Err(SfError::with_fields(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {v}", f.label),
                        vec![f.name.clone()],
                    ));
                }
                FieldType::Picklist { values, restricted: true } if !values.contains(&v.as_str()) => {
                    return Err(SfError::with_fields(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!("{}: bad value for restricted picklist field: {v}", f.label),
                        vec![f.name.clone()],
                    ));
                }
                FieldType::Reference(target) => {
                    let target_def = w.schema.object(target).expect("reference targets exist");
                    match ids::normalize(v) {
                        Some(id) if id.starts_with(target_def.key_prefix) => {
                            if self.records.get(&id).is_none_or(|r| r.deleted) {
                                return Err(SfError::with_fields(
                                    "INVALID_CROSS_REFERENCE_KEY",
                                    format!("{}: invalid cross reference id", f.label),
                                    vec![f.name.clone()],
                                ));
                            }
                        }
                        _ => {
                            return Err(SfError::with_fields(
                                "MALFORMED_ID",
                                format!("{}: id value of incorrect type: {v}", f.label),
                                vec![f.name.clone()],
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for f in object.fields.iter().filter(|f| f.unique) {
            let Some(Value::String(v)) = fields.get(&f.name) else { continue };
            let clash = self.lookup(object.name, &f.name, v).into_iter().find(|id| Some(id.as_str()) != self_id);
            let clash = clash.or_else(|| {
                (object.name == "User" && f.name == "Username").then(|| (w.username_taken)(v)).flatten()
            });
            if let Some(other) = clash {
                return Err(duplicate(object, f, &other));
            }
        }
        Ok(())
    }
}

fn duplicate(object: &ObjectDef, f: &Field, other: &str) -> SfError {
    match (object.name, f.name.as_str()) {
        ("User", "Username") => SfError::with_fields(
            "DUPLICATE_USERNAME",
            "Duplicate Username.<br>The username already exists in this or another Salesforce organization. \
             Usernames must be unique across all Salesforce organizations. To resolve, use a different username \
             (it doesn't need to match the user's email address). ",
            vec!["Username".into()],
        ),
        // Message unconfirmed; the code is Salesforce's.
        ("User", "CommunityNickname") => SfError::with_fields(
            "DUPLICATE_COMM_NICKNAME",
            "Duplicate Nickname.<br>Another user has already selected this nickname.<br>Please select another.",
            vec!["CommunityNickname".into()],
        ),
        _ => SfError::with_fields(
            "DUPLICATE_VALUE",
            format!("duplicate value found: {} duplicates value on record with id: {other}", f.name),
            vec![],
        ),
    }
}

/// Context of one write: who, when, ids, schema, cross-org usernames.
pub struct Writer<'a> {
    /// The org's schema.
    pub schema: &'a Schema,
    /// Id source.
    pub ids: &'a IdGen,
    /// The acting user's id (CreatedById, OwnerId).
    pub actor: &'a str,
    /// The timestamp to stamp, in Salesforce's format.
    pub now: String,
    /// Usernames taken in other orgs.
    pub username_taken: UsernameTaken<'a>,
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

fn set(fields: &mut IndexMap<String, Value>, k: &str, v: Value) {
    if v.is_null() {
        fields.shift_remove(k);
    } else {
        fields.insert(k.to_string(), v);
    }
}

fn compute_name(object: &ObjectDef, fields: &mut IndexMap<String, Value>) {
    if object.name != "Contact" && object.name != "User" {
        return;
    }
    let part = |n: &str| fields.get(n).and_then(Value::as_str).map(str::to_string);
    let name: Vec<String> = ["FirstName", "MiddleName", "LastName", "Suffix"].iter().filter_map(|n| part(n)).collect();
    fields.insert("Name".into(), Value::String(name.join(" ")));
}

/// Salesforce's address check: one `@`, a non-empty local part without
/// spaces, and a dotted domain. Kept apart from the host's and the plugin's
/// checks on purpose: the emulator plays Salesforce, whose rule it is.
pub fn valid_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && !v.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> (Schema, IdGen, Store) {
        let custom = crate::seed::CustomFieldSeed {
            object: "Contact".into(),
            name: "Ext__c".into(),
            label: None,
            r#type: "string".into(),
            length: 20,
            external_id: true,
            unique: false,
            required: false,
        };
        (Schema::new(&[custom]).unwrap(), IdGen::default(), Store::default())
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn create_update_delete_and_undo() {
        let (schema, ids, mut store) = fixture();
        let none = |_: &str| None;
        let w = Writer { schema: &schema, ids: &ids, actor: "005000000000000AAA", now: "t".into(), username_taken: &none };
        let c = schema.object("Contact").unwrap();
        let (id, u1) = store.create(&w, c, &body(json!({"lastname": "Lovelace", "FirstName": "Ada"}))).unwrap();
        let r = store.by_id(&id).unwrap();
        assert_eq!(r.get("LastName"), json!("Lovelace"));
        assert_eq!(r.get("Name"), json!("Ada Lovelace"));
        let u2 = store.update(&w, c, &id, &body(json!({"FirstName": null}))).unwrap();
        assert_eq!(store.by_id(&id).unwrap().get("Name"), json!("Lovelace"));
        let u3 = store.delete(&w, &id).unwrap();
        assert_eq!(store.find(c, &id).unwrap_err(), Lookup::Deleted);
        store.undo(&schema, vec![u1, u2, u3]);
        assert!(store.by_id(&id).is_none());
    }

    #[test]
    fn validation_errors_are_salesforce_s() {
        let (schema, ids, mut store) = fixture();
        let none = |_: &str| None;
        let w = Writer { schema: &schema, ids: &ids, actor: "x", now: "t".into(), username_taken: &none };
        let c = schema.object("Contact").unwrap();
        let err = |store: &mut Store, b: Value| store.create(&w, c, &body(b)).unwrap_err();
        assert_eq!(err(&mut store, json!({"FirstName": "A"})).message, "Required fields are missing: [LastName]");
        assert_eq!(err(&mut store, json!({"LastName": ""})).code, "REQUIRED_FIELD_MISSING");
        assert_eq!(err(&mut store, json!({"LastName": "x", "Foo": 1})).message, "No such column 'Foo' on sobject of type Contact");
        assert_eq!(err(&mut store, json!({"LastName": "x", "Name": "y"})).code, "INVALID_FIELD_FOR_INSERT_UPDATE");
        assert_eq!(err(&mut store, json!({"Id": "003", "LastName": "x"})).code, "INVALID_FIELD");
        let long = "x".repeat(81);
        assert_eq!(
            err(&mut store, json!({"LastName": long})).message,
            format!("Last Name: data value too large: {long} (max length=80)")
        );
        assert_eq!(err(&mut store, json!({"LastName": "x", "Email": "nope"})).message, "Email: invalid email address: nope");
        assert_eq!(err(&mut store, json!({"LastName": "x", "AccountId": "bad"})).code, "MALFORMED_ID");
        assert_eq!(err(&mut store, json!({"LastName": "x", "AccountId": crate::ids::make("001", 99)})).code, "INVALID_CROSS_REFERENCE_KEY");
        assert_eq!(err(&mut store, json!({"LastName": {"a": 1}})).code, "JSON_PARSER_ERROR");
    }

    #[test]
    fn upsert_creates_updates_and_reports_several_matches() {
        let (schema, ids, mut store) = fixture();
        let none = |_: &str| None;
        let w = Writer { schema: &schema, ids: &ids, actor: "x", now: "t".into(), username_taken: &none };
        let c = schema.object("Contact").unwrap();
        let (a, _) = store.upsert(&w, c, "ext__c", "K1", &body(json!({"LastName": "A"}))).unwrap();
        let Upserted::Created(id) = a else { panic!("expected a create") };
        let (b, _) = store.upsert(&w, c, "Ext__c", "k1", &body(json!({"LastName": "B"}))).unwrap();
        assert_eq!(b, Upserted::Updated(id.clone()));
        // Ext__c is not unique, so a plain create can make a second match.
        store.create(&w, c, &body(json!({"LastName": "C", "Ext__c": "K1"}))).unwrap();
        assert!(matches!(store.upsert(&w, c, "Ext__c", "K1", &body(json!({}))), Err(UpsertError::Multiple(v)) if v.len() == 2));
        assert!(matches!(store.upsert(&w, c, "LastName", "K1", &body(json!({}))), Err(UpsertError::NoSuchField(_))));
        // A deleted record no longer matches.
        store.delete(&w, &id).unwrap();
        assert_eq!(store.lookup("Contact", "Ext__c", "k1").len(), 1);
    }

    #[test]
    fn email_check() {
        assert!(valid_email("a.b+c@example.co.uk"));
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b..c", "a@@b.c"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
