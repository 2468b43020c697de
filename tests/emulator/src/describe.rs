//! Describe documents (`sobjects`, `sobjects/X`, `sobjects/X/describe`) and
//! record rendering (`attributes` first, then fields in schema order).

use serde_json::{Map, Value, json};

use crate::records::Record;
use crate::schema::{FieldType, ObjectDef, Schema};

fn urls(version: &str, o: &ObjectDef) -> Value {
    let base = format!("/services/data/v{version}/sobjects/{}", o.name);
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "rowTemplate": format!("{base}/{{ID}}"),
    })
}

fn summary(version: &str, o: &ObjectDef) -> Map<String, Value> {
    let v = json!({
        "name": o.name,
        "label": o.label,
        "labelPlural": o.label_plural,
        "keyPrefix": o.key_prefix,
        "custom": false,
        "createable": o.createable,
        "updateable": o.updateable,
        "deletable": o.deletable,
        "queryable": true,
        "retrieveable": true,
        "searchable": true,
        "layoutable": true,
        "urls": urls(version, o),
    });
    v.as_object().cloned().expect("object literal")
}

/// `GET sobjects`.
pub fn global(version: &str, schema: &Schema) -> Value {
    json!({
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": schema.objects.iter().map(|o| Value::Object(summary(version, o))).collect::<Vec<_>>(),
    })
}

/// `GET sobjects/X`.
pub fn basic(version: &str, o: &ObjectDef) -> Value {
    json!({ "objectDescribe": Value::Object(summary(version, o)), "recentItems": [] })
}

/// `GET sobjects/X/describe`.
pub fn full(version: &str, o: &ObjectDef) -> Value {
    let mut v = summary(version, o);
    let fields: Vec<Value> = o
        .fields
        .iter()
        .map(|f| {
            let mut d = json!({
                "name": f.name,
                "label": f.label,
                "type": f.ty.describe_name(),
                "length": f.length,
                "nillable": f.nillable(),
                "createable": f.createable,
                "updateable": f.updateable,
                "externalId": f.external_id,
                "unique": f.unique,
                "custom": f.name.ends_with("__c"),
                "defaultedOnCreate": f.default.is_some() || !f.createable,
                "idLookup": f.ty == FieldType::Id || f.external_id || f.name == "Username",
                "referenceTo": match &f.ty { FieldType::Reference(t) => json!([t]), _ => json!([]) },
                "picklistValues": match &f.ty {
                    FieldType::Picklist { values, .. } => values
                        .iter()
                        .map(|p| json!({"active": true, "defaultValue": false, "label": p, "value": p}))
                        .collect::<Vec<_>>(),
                    _ => vec![],
                },
                "restrictedPicklist": matches!(f.ty, FieldType::Picklist { restricted: true, .. }),
            });
            if let Some(def) = &f.default {
                d["defaultValue"] = def.clone();
            }
            d
        })
        .collect();
    v.insert("fields".into(), Value::Array(fields));
    Value::Object(v)
}

/// A record as `GET sobjects/X/{id}` or a query returns it: `attributes`, then
/// the chosen fields (all when `fields` is `None`), unset ones as `null`.
pub fn record(version: &str, o: &ObjectDef, r: &Record, fields: Option<&[String]>) -> Value {
    let mut m = Map::new();
    m.insert(
        "attributes".into(),
        json!({ "type": o.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", o.name, r.id) }),
    );
    match fields {
        Some(list) => {
            for f in list {
                m.insert(f.clone(), r.get(f));
            }
        }
        None => {
            for f in &o.fields {
                m.insert(f.name.clone(), r.get(&f.name));
            }
        }
    }
    Value::Object(m)
}
