//! Checks of single setting values: API names and versions, record ids,
//! time zones, locales, and the `Field__c={template}` mapping lists.

use super::{FieldMapping, MIN_API_VERSION};
use crate::template::Template;

pub(super) fn check_api_version(v: &str) -> Result<(), String> {
    let major = v
        .strip_suffix(".0")
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("'{v}' is not an API version; write it like 62.0"))?;
    if major < MIN_API_VERSION {
        return Err(format!(
            "version {v} is retired by Salesforce; use {MIN_API_VERSION}.0 or newer (e.g. 62.0)"
        ));
    }
    Ok(())
}

/// Checks a Salesforce API name (letters, digits, single underscores,
/// starting with a letter), as for fields and objects.
pub fn check_api_name(name: &str) -> Result<(), String> {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let ok = base.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !base.contains("__")
        && !base.ends_with('_')
        && base.len() <= 40;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a Salesforce API name: use letters, digits and single underscores, start with a letter, at most 40 characters (plus __c)"
        ))
    }
}

pub(super) fn check_custom_field_name(name: &str) -> Result<(), String> {
    check_api_name(name)?;
    if !name.ends_with("__c") {
        return Err(format!(
            "'{name}' is not a custom field; External ID fields are custom fields whose API name ends in __c, e.g. Registry_ID__c"
        ));
    }
    Ok(())
}

/// Checks a 15- or 18-character Salesforce record id with the given key prefix.
pub(super) fn check_record_id(id: &str, prefix: &str, what: &str) -> Result<(), String> {
    let shape = matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !shape {
        return Err(format!("'{id}' is not a Salesforce id: ids are 15 or 18 letters and digits"));
    }
    if !id.starts_with(prefix) {
        return Err(format!("'{id}' is not the id of {what}: those start with {prefix}"));
    }
    Ok(())
}

pub(super) fn check_time_zone(tz: &str) -> Result<(), String> {
    let area_city = tz.split_once('/').is_some_and(|(area, rest)| {
        !area.is_empty()
            && area.chars().all(|c| c.is_ascii_alphabetic())
            && !rest.is_empty()
            && rest.split('/').all(|p| {
                !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
            })
    });
    if tz == "GMT" || area_city {
        Ok(())
    } else {
        Err(format!("'{tz}' is not a time zone id; use an Area/City name such as America/New_York, or GMT"))
    }
}

pub(super) fn check_locale(locale: &str) -> Result<(), String> {
    let mut parts = locale.split('_');
    let lang = parts.next().unwrap_or_default();
    let ok = (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!("'{locale}' is not a locale; use a Salesforce locale such as en_US or de_DE"))
    }
}

/// Parses `Field__c={template}; Other={...}` (';' or newlines between).
pub(super) fn parse_field_mappings(text: &str) -> Result<Vec<FieldMapping>, String> {
    let mut mappings: Vec<FieldMapping> = Vec::new();
    for entry in text.split([';', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
        let (field, template) = entry
            .split_once('=')
            .ok_or_else(|| format!("'{entry}' is not a mapping; write Field__c={{template}}"))?;
        let field = field.trim();
        check_api_name(field)?;
        // Salesforce API names are case-insensitive.
        if mappings.iter().any(|m| m.field.eq_ignore_ascii_case(field)) {
            return Err(format!("{field} is mapped twice; keep one mapping per field"));
        }
        let template = Template::parse(template.trim()).map_err(|e| format!("{field}: {e}"))?;
        mappings.push(FieldMapping { field: field.to_string(), template });
    }
    Ok(mappings)
}
