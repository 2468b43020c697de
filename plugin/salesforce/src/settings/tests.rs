use super::*;

fn parse(pairs: &[(&str, &str)]) -> Result<Config, Vec<FieldError>> {
    let owned: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::parse(&owned)
}

fn fields(result: Result<Config, Vec<FieldError>>) -> Vec<String> {
    result.expect_err("expected errors").into_iter().map(|e| e.field).collect()
}

#[test]
fn defaults_give_a_contact_config() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.object, ObjectKind::Contact);
    assert_eq!(config.api_version, "62.0");
    assert_eq!(config.email_type.as_deref(), Some("official"));
    assert!(!config.provision_middle_name);
    assert_eq!(config.inactive_action, InactiveAction::Update);
    assert!(config.user.is_none());
}

#[test]
fn declared_defaults_are_valid_for_their_kinds() {
    for s in SETTINGS {
        if let (Some(d), Kind::Choice(options)) = (s.default, s.kind) {
            assert!(options.iter().any(|(v, _)| *v == d), "{}", s.name);
        }
        if let (Some(d), Kind::Boolean) = (s.default, s.kind) {
            assert!(d == "true" || d == "false", "{}", s.name);
        }
    }
    let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), SETTINGS.len(), "setting names are unique");
}

#[test]
fn user_mode_needs_a_profile_and_fills_defaults() {
    assert_eq!(fields(parse(&[("object", "User")])), vec!["profile_id"]);
    let config = parse(&[("object", "User"), ("profile_id", "00e5e000000abcd")]).unwrap();
    let user = config.user.unwrap();
    assert_eq!(user.time_zone, "America/Los_Angeles");
    assert_eq!(user.locale, "en_US");
    assert_eq!(user.email_encoding, "UTF-8");
    assert_eq!(user.language, "en_US");
    assert_eq!(user.username_template, Template::parse("{email}").unwrap());
}

#[test]
fn every_bad_field_is_named() {
    let errs = fields(parse(&[
        ("api_version", "29.0"),
        ("external_id_field", "Registry_ID"),
        ("provision_middle_name", "yes"),
        ("account_id", "003000000000001"),
        ("bogus", "x"),
    ]));
    assert_eq!(
        errs,
        vec!["bogus", "provision_middle_name", "api_version", "external_id_field", "account_id"]
    );
    // An unknown object is reported alone, not with guesses about it.
    assert_eq!(fields(parse(&[("object", "Lead"), ("profile_id", "x")])), vec!["object"]);
}

#[test]
fn api_versions() {
    assert_eq!(parse(&[("api_version", "v64.0")]).unwrap().api_version, "64.0");
    for bad in ["62", "62.1", "abc", ".0", "30.0"] {
        assert_eq!(fields(parse(&[("api_version", bad)])), vec!["api_version"], "{bad}");
    }
}

#[test]
fn user_fields_are_checked_in_user_mode_and_refused_in_contact_mode() {
    let errs = fields(parse(&[
        ("object", "User"),
        ("profile_id", "005000000000001"),
        ("username_template", "fixed@example.org"),
        ("time_zone", "Pacific Time"),
        ("locale", "EN"),
        ("language", "xx"),
        ("account_id", "001000000000001"),
    ]));
    assert_eq!(errs, vec!["language", "account_id", "profile_id", "username_template", "time_zone", "locale"]);
    assert_eq!(fields(parse(&[("profile_id", "00e000000000001")])), vec!["profile_id"]);
}

#[test]
fn field_mappings_parse_and_reject_bad_entries() {
    let config = parse(&[("field_mappings", "ORCID__c={identifier:orcid};\n Status__c = {status}")]).unwrap();
    let names: Vec<&str> = config.field_mappings.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(names, vec!["ORCID__c", "Status__c"]);
    for bad in ["ORCID__c", "Bad Name={id}", "A__c={id};a__C={id}", "X__c={nope}"] {
        assert_eq!(fields(parse(&[("field_mappings", bad)])), vec!["field_mappings"], "{bad}");
    }
}

#[test]
fn blank_values_fall_back_to_defaults() {
    let config = parse(&[("api_version", " "), ("object", "")]).unwrap();
    assert_eq!(config.api_version, "62.0");
    assert_eq!(config.object, ObjectKind::Contact);
}

#[test]
fn matching_and_removal_settings_are_checked_per_object() {
    let c = parse(&[]).unwrap();
    assert_eq!((c.matching, c.removal), (None, Removal::Keep), "Contacts: External ID only, kept on removal");
    let u = parse(&[("object", "User"), ("profile_id", "00e5e000000abcd"), ("match_by", "username")]).unwrap();
    assert_eq!((u.matching.unwrap().field.as_str(), u.removal), ("Username", Removal::Deactivate));
    let f = parse(&[("match_by", "field"), ("match_field", "Employee_Number__c"), ("match_template", "{identifier:employee}")]).unwrap();
    assert_eq!(f.matching.unwrap().field, "Employee_Number__c");
    assert_eq!(fields(parse(&[("match_by", "username")])), vec!["match_by"], "Username is a User field");
    assert_eq!(fields(parse(&[("match_by", "field")])), vec!["match_field", "match_template"]);
    assert_eq!(fields(parse(&[("match_by", "field"), ("match_field", "X__c"), ("match_template", "fixed")])), vec!["match_template"]);
    assert_eq!(fields(parse(&[("on_remove", "deactivate")])), vec!["on_remove"]);
    assert_eq!(fields(parse(&[("object", "User"), ("profile_id", "00e5e000000abcd"), ("on_remove", "delete")])), vec!["on_remove"]);
    assert_eq!(fields(parse(&[("on_remove", "mark")])), vec!["mark_fields"]);
    let m = parse(&[("on_remove", "mark"), ("mark_fields", "Registry_Status__c=deleted")]).unwrap();
    assert!(matches!(m.removal, Removal::Mark(ref f) if f[0].field == "Registry_Status__c"));
}

#[test]
fn conditions_name_real_settings_and_their_choices() {
    for s in SETTINGS {
        let Some((other, values)) = s.shown_when else { continue };
        let other = spec(other).unwrap_or_else(|| panic!("{} depends on an unknown setting", s.name));
        let Kind::Choice(options) = other.kind else { panic!("{} depends on {}, which is no choice", s.name, other.name) };
        assert!(values.iter().all(|v| options.iter().any(|(o, _)| o == v)), "{}", s.name);
    }
    assert_eq!(spec(PROFILE_ID).unwrap().shown_when, Some((OBJECT, &["User"][..])));
}
