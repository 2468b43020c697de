//! The checks of what a plugin declares: its metadata (names, defaults,
//! API hosts, its server form) and its settings validation.

use std::collections::HashSet;

use registry_plugin_runtime::latest::plugin_info::{ServerForm, SettingKind};
use registry_plugin_runtime::HttpAllowlist;
use registry_plugin_runtime::latest::types::FieldError;

use super::{Run, Status};

pub(super) fn plugin_info(run: &mut Run<'_>) {
    let meta = run.bed.plugin.metadata().clone();
    let mut problems = Vec::new();
    if meta.name.trim().is_empty() || meta.name.chars().any(char::is_whitespace) {
        problems.push(format!("the name '{}' must be one non-empty word", meta.name));
    }
    if meta.version.trim().is_empty() {
        problems.push("the version is empty".into());
    }
    let mut seen = HashSet::new();
    for s in &meta.settings {
        if !seen.insert(s.name.as_str()) {
            problems.push(format!("the setting name '{}' is used twice", s.name));
        }
        if s.name.trim().is_empty() || s.label.trim().is_empty() {
            problems.push(format!("setting '{}' needs a name and a label", s.name));
        }
        if matches!(&s.kind, SettingKind::Choice(options) if options.is_empty()) {
            problems.push(format!("setting '{}' offers no choices", s.name));
        }
        let Some(d) = &s.default_value else { continue };
        match &s.kind {
            SettingKind::Boolean if d != "true" && d != "false" => problems.push(format!("setting '{}': the default '{d}' is not \"true\" or \"false\"", s.name)),
            SettingKind::Choice(options) if !options.iter().any(|o| o.value == *d) => {
                problems.push(format!("setting '{}': the default '{d}' is not one of its choices", s.name))
            }
            _ => {}
        }
    }
    for pattern in &meta.api_hosts {
        if let Err(e) = registry_plugin_runtime::HostPattern::parse(pattern) {
            problems.push(format!("api-hosts: {e}"));
        }
    }
    problems.extend(server_form_problems(&meta.server_form));
    for s in &meta.settings {
        let Some(w) = &s.shown_when else { continue };
        match meta.settings.iter().find(|o| o.name == w.setting) {
            None => problems.push(format!("setting '{}' is shown when '{}' has a value, but there is no such setting", s.name, w.setting)),
            Some(o) if w.values.is_empty() => problems.push(format!("setting '{}' is shown for no value of '{}'", s.name, o.name)),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        run.pass(
            "plugin-info",
            format!(
                "{} {}: {} settings, names unique, defaults valid, {} API host pattern(s), {} server URL choice(s)",
                meta.name,
                meta.version,
                meta.settings.len(),
                meta.api_hosts.len(),
                meta.server_form.server_urls.len()
            ),
        );
    } else {
        run.fail("plugin-info", problems.join("; "));
    }
}

/// A value the setting must refuse, if there is an obvious one.
fn bad_value(kind: &SettingKind) -> Option<&'static str> {
    match kind {
        SettingKind::Boolean => Some("maybe"),
        SettingKind::Choice(_) => Some("not-one-of-the-choices"),
        _ => None,
    }
}

pub(super) async fn settings_validation(run: &mut Run<'_>) {
    let allow = HttpAllowlist::none();
    let good = run.settings.clone();
    let Some(result) = run.call("settings.valid-accepted", run.bed.plugin.validate_settings(&good, &allow).await) else { return };
    match result {
        Ok(()) => run.pass("settings.valid-accepted", "the defaults (and --settings) are accepted"),
        Err(errors) => {
            let d = format!("good settings were refused: {}", field_errors(&errors));
            run.fail("settings.valid-accepted", d)
        }
    }

    let meta = run.bed.plugin.metadata().clone();
    let mut tried = 0;
    let mut problems = Vec::new();
    for s in &meta.settings {
        let Some(bad) = bad_value(&s.kind) else { continue };
        tried += 1;
        let mut settings = good.clone();
        settings.retain(|(n, _)| *n != s.name);
        settings.push((s.name.clone(), bad.into()));
        let Some(result) = run.call("settings.bad-refused", run.bed.plugin.validate_settings(&settings, &allow).await) else { return };
        match result {
            Ok(()) => problems.push(format!("'{}' = '{bad}' was accepted", s.name)),
            Err(errors) if !errors.iter().any(|e| e.field == s.name) => {
                problems.push(format!("'{}' = '{bad}' was refused without naming the field ({})", s.name, field_errors(&errors)))
            }
            Err(_) => {}
        }
    }
    for s in meta.settings.iter().filter(|s| s.required && s.default_value.is_none()) {
        tried += 1;
        let settings: Vec<(String, String)> = good.iter().filter(|(n, _)| *n != s.name).cloned().collect();
        let Some(result) = run.call("settings.bad-refused", run.bed.plugin.validate_settings(&settings, &allow).await) else { return };
        if !matches!(&result, Err(errors) if errors.iter().any(|e| e.field == s.name)) {
            problems.push(format!("leaving out the required '{}' was not refused by name", s.name));
        }
    }
    match (tried, problems.is_empty()) {
        (0, _) => run.record("settings.bad-refused", Status::Skip, "no boolean, choice or required setting to get wrong"),
        (_, true) => run.pass("settings.bad-refused", format!("{tried} bad values refused, each naming its field")),
        (_, false) => run.fail("settings.bad-refused", problems.join("; ")),
    }
}

/// What is wrong with a plugin's server form: a Server URL choice a host
/// cannot use (not https, `{name}` twice or without a label, API hosts that
/// are no patterns) or help for a field the form does not have.
fn server_form_problems(form: &ServerForm) -> Vec<String> {
    const FIELDS: [&str; 10] = ["server-url", "client-id", "client-secret", "grant-type", "scope", "redirect-uri", "authorization-error", "subject", "certificate", "token-url"];
    let mut problems = Vec::new();
    for c in &form.server_urls {
        let names = c.url.matches("{name}").count();
        let example = c.url.replace("{name}", "example");
        if c.label.trim().is_empty() {
            problems.push(format!("server URL {}: it needs a label", c.url));
        }
        if !example.starts_with("https://") || example.contains(['?', '#', ' ']) {
            problems.push(format!("server URL {}: it must be an https URL without query or fragment", c.url));
        }
        if names > 1 {
            problems.push(format!("server URL {}: {{name}} may appear once", c.url));
        }
        if (names == 1) == c.name_label.trim().is_empty() {
            problems.push(format!("server URL {}: a name-label is needed exactly when the URL has {{name}}", c.url));
        }
        for pattern in &c.api_hosts {
            if names == 0 && pattern.contains("{name}") {
                problems.push(format!("server URL {}: api-hosts use {{name}}, which only a URL with {{name}} fills", c.url));
            } else if let Err(e) = registry_plugin_runtime::HostPattern::parse(&pattern.replace("{name}", "example")) {
                problems.push(format!("server URL {}: api-hosts: {e}", c.url));
            }
        }
    }
    for (field, _) in &form.help {
        if !FIELDS.contains(&field.as_str()) {
            problems.push(format!("server-form help for '{field}', which is not one of {}", FIELDS.join(", ")));
        }
    }
    problems
}

pub(super) fn field_errors(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_plugin_runtime::latest::plugin_info::ServerUrlChoice;

    fn choice(url: &str, name_label: &str, hosts: &[&str]) -> ServerUrlChoice {
        ServerUrlChoice { label: "X".into(), url: url.into(), name_label: name_label.into(), api_hosts: hosts.iter().map(|h| h.to_string()).collect() }
    }

    #[test]
    fn a_server_form_a_host_cannot_use_is_named() {
        let good = ServerForm {
            server_urls: vec![choice("https://login.example.com", "", &[]), choice("https://{name}.example.com", "Tenant", &["{name}.example.com"])],
            help: vec![("client-id".into(), "The key.".into())],
        };
        assert_eq!(server_form_problems(&good), Vec::<String>::new());
        let bad = ServerForm {
            server_urls: vec![
                choice("http://login.example.com", "", &[]),
                choice("https://{name}.{name}.example.com", "Tenant", &[]),
                choice("https://{name}.example.com", "", &["*.com"]),
                choice("https://fixed.example.com", "", &["{name}.example.com"]),
            ],
            help: vec![("consumer-key".into(), "?".into())],
        };
        let problems = server_form_problems(&bad).join("\n");
        for says in ["must be an https URL", "{name} may appear once", "a name-label is needed", "would match a whole top-level domain", "only a URL with {name} fills", "help for 'consumer-key'"] {
            assert!(problems.contains(says), "{says}: {problems}");
        }
    }
}
