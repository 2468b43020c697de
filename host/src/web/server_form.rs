//! The OAuth2 server form: its fields, in the words the server's plugin
//! declares (its service's terms, its Server URL choices), and their
//! validation. The host adds no service's words of its own.

use std::collections::HashMap;

use serde::Serialize;

use super::{App, FormMap};
use crate::domain::ServerInput;
use crate::oauth::check_origin;
use registry_plugin_runtime::latest::plugin_info::{Capabilities, PluginMetadata, ServerUrlChoice};
use registry_plugin_runtime::latest::types::GrantType;

/// The value of the Server URL's "Custom" choice.
const CUSTOM: &str = "custom";

/// One field as the template renders it.
#[derive(Serialize)]
pub(super) struct FieldView {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: String,
    required: bool,
    error: Option<String>,
    help: String,
    placeholder: &'static str,
    options: Vec<OptionView>,
    /// The Server URL: the picked choice, and the name typed for it.
    choice: String,
    name_value: String,
}

#[derive(Serialize)]
struct OptionView {
    value: String,
    label: String,
    /// For a Server URL choice with `{name}`: what the name is.
    name_label: String,
}

/// Generic help, for a plugin that gives none (by the WIT field names).
const GENERIC_HELP: &[(&str, &str)] = &[
    ("server-url", "The provider's OAuth2 server: its base URL, https."),
    ("client-id", "The client identifier the provider issued for this registry's app."),
    ("client-secret", "The secret the provider issued with the Client ID. Stored encrypted; never shown again."),
    ("grant-type", "Authorization Code: an admin signs in at the provider and allows access. Client Credentials: the app acts as itself, no browser. JWT Bearer: no browser and no secret; this registry signs with a key whose certificate you upload to the app."),
    ("subject", "JWT Bearer only: the user at the provider the tokens act as."),
    ("scope", "Space separated. Empty: the app's default scopes."),
    ("redirect-uri", "Register this exactly as the app's Redirect URI (callback URL) at the provider."),
];

/// A plugin's help for a server field, else the generic help.
pub(super) fn help(meta: Option<&PluginMetadata>, field: &str) -> String {
    meta.and_then(|m| m.server_form.help.iter().find(|(f, _)| f == field).map(|(_, h)| h.clone()))
        .or_else(|| GENERIC_HELP.iter().find(|(f, _)| *f == field).map(|(_, h)| h.to_string()))
        .unwrap_or_default()
}

/// The plugin a form is for: the one it names, else the first loaded.
pub(super) fn plugin_of<'a>(app: &'a App, values: &FormMap) -> Option<&'a PluginMetadata> {
    let name = values.get("plugin").filter(|p| !p.is_empty()).or(app.plugins.first())?;
    app.plugin_map.get(name).map(|p| p.metadata())
}

pub(super) fn form_fields(app: &App, values: &FormMap, errors: &HashMap<String, String>, has_secret: bool) -> Vec<FieldView> {
    let meta = plugin_of(app, values);
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let field = |name: &'static str, label: &'static str, kind: &'static str, required: bool, help: String| FieldView {
        name,
        label,
        kind,
        value: if kind == "password" { String::new() } else { v(name) },
        required,
        error: errors.get(name).cloned(),
        help,
        placeholder: "",
        options: vec![],
        choice: String::new(),
        name_value: String::new(),
    };
    let mut plugin = field("plugin", "Plugin", "select", true, "The plugin that speaks this server's OAuth; the form below is in its words.".into());
    plugin.options = app.plugins.iter().map(|p| OptionView { value: p.clone(), label: p.clone(), name_label: String::new() }).collect();
    if plugin.value.is_empty() {
        plugin.value = app.plugins.first().cloned().unwrap_or_default();
    }
    let mut url = field("server_url", "Server URL", "server_url", true, help(meta, "server-url"));
    let choices = meta.map(|m| m.server_form.server_urls.as_slice()).unwrap_or_default();
    if !choices.is_empty() {
        url.options = choices
            .iter()
            .map(|c| OptionView { value: c.url.clone(), label: format!("{} ({})", c.label, c.url.replace("{name}", "NAME")), name_label: c.name_label.clone() })
            .chain(std::iter::once(OptionView { value: CUSTOM.into(), label: "Custom URL".into(), name_label: String::new() }))
            .collect();
        url.choice = values.get("server_url_choice").cloned().unwrap_or_else(|| {
            // A saved server (or a first visit): the choice its URL is.
            let (choice, name) = choice_of(&url.value, choices);
            url.name_value = name;
            choice
        });
        if url.name_value.is_empty() {
            url.name_value = v("server_url_name");
        }
        if url.choice != CUSTOM {
            url.value.clear();
        }
    }
    let mut fields = vec![
        plugin,
        field("name", "Name", "text", true, "How this server is listed.".into()),
        field("description", "Description", "textarea", false, String::new()),
        url,
        field("client_id", "Client ID", "text", true, help(meta, "client-id")),
        field("client_secret", "Client Secret", "password", false, help(meta, "client-secret")),
    ];
    if has_secret {
        fields[5].placeholder = "•••••••• (leave empty to keep the saved secret)";
    }
    let mut grant = field("grant_type", "Access Token Grant Type", "select", true, help(meta, "grant-type"));
    grant.options = grants_of(meta)
        .into_iter()
        .map(|g| OptionView { value: crate::domain::grant_str(g).into(), label: crate::domain::grant_label(g).into(), name_label: String::new() })
        .collect();
    if grant.value.is_empty() {
        grant.value = "authorization_code".into();
    }
    fields.push(grant);
    fields.push(field("jwt_subject", "Username (JWT Bearer)", "text", false, help(meta, "subject")));
    if asks_token_url(meta) {
        fields.push(field("token_url", "Token URL", "text", false, help(meta, "token-url")));
    }
    fields.push(field("scope", "Scope", "text", false, help(meta, "scope")));
    fields.push(field("api_hosts", "API hosts", "text", false, "The hosts this server's tokens may name as their instance (an exact host, or *. and a domain), space separated. An instance URL must match these and the plugin's own list; anything else is refused before it is stored. Left empty, the picked Server URL's list (or the plugin's) is taken, shown on the server page to narrow.".into()));
    fields
}

/// Whether the plugin's form has a Token URL apart from the Server URL:
/// only a plugin that gives help for it (`token-url`) asks for one.
fn asks_token_url(meta: Option<&PluginMetadata>) -> bool {
    meta.is_some_and(|m| m.server_form.help.iter().any(|(f, _)| f == "token-url"))
}

/// The grant types a plugin offers: those it claims (JWT bearer and a
/// pasted bearer token only since 0.2.0).
fn grants_of(meta: Option<&PluginMetadata>) -> Vec<GrantType> {
    let claims = |c: Capabilities| meta.is_some_and(|m| m.capabilities.contains(c));
    [
        (Capabilities::AUTHORIZATION_CODE, GrantType::AuthorizationCode),
        (Capabilities::CLIENT_CREDENTIALS, GrantType::ClientCredentials),
        (Capabilities::JWT_BEARER, GrantType::JwtBearer),
        (Capabilities::STATIC_BEARER, GrantType::StaticBearer),
    ]
    .into_iter()
    .filter(|(c, _)| claims(*c))
    .map(|(_, g)| g)
    .collect()
}

/// Which choice a saved URL is, and the name in it: an exact match, else
/// a `{name}` pattern it fits, else Custom. A first visit (no URL) gets the
/// first choice, the plugin's default.
pub(super) fn choice_of(url: &str, choices: &[ServerUrlChoice]) -> (String, String) {
    if url.trim().is_empty() {
        return (choices.first().map_or(CUSTOM.to_string(), |c| c.url.clone()), String::new());
    }
    // Exact matches only: saving the form again must give back the very
    // same URL, or the server's tokens would be cleared for nothing.
    for c in choices {
        match c.url.split_once("{name}") {
            None if c.url == url => return (c.url.clone(), String::new()),
            Some((before, after)) => {
                // Only a name this form would have written (lower case).
                if let Some(name) = url.strip_prefix(before).and_then(|r| r.strip_suffix(after))
                    && valid_name(name)
                    && !name.bytes().any(|b| b.is_ascii_uppercase())
                {
                    return (c.url.clone(), name.to_string());
                }
            }
            None => {}
        }
    }
    (CUSTOM.to_string(), String::new())
}

/// The API hosts a server with this URL gets when its form leaves them
/// empty: its choice's, else the plugin's.
pub(super) fn default_hosts(url: &str, meta: Option<&PluginMetadata>) -> Vec<String> {
    let Some(meta) = meta else { return Vec::new() };
    let choices = &meta.server_form.server_urls;
    let (picked, name) = choice_of(url, choices);
    let from_choice = choices.iter().find(|c| c.url == picked).map(|c| fill_hosts(c, &name)).unwrap_or_default();
    let declared = if from_choice.is_empty() { meta.api_hosts.clone() } else { from_choice };
    declared.iter().filter_map(|h| registry_plugin_runtime::HostPattern::parse(h).ok()).map(|h| h.to_string()).collect()
}

/// A choice's API hosts with the typed name in them; a choice whose URL
/// has no `{name}` has nothing to fill (and a `{name}` in its hosts is
/// left to fail as a pattern).
fn fill_hosts(choice: &ServerUrlChoice, name: &str) -> Vec<String> {
    if choice.url.contains("{name}") { choice.api_hosts.iter().map(|h| h.replace("{name}", name)).collect() } else { choice.api_hosts.clone() }
}

/// A name typed into a Server URL choice: one DNS label (letters, digits,
/// hyphens inside), so it cannot change the URL's host into another.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Sets the form's `server_url` from the picked choice and its name (a form
/// without a choice, or with Custom, keeps the typed URL). The API hosts
/// follow from the URL ([`default_hosts`]).
pub(super) fn resolve_server_url(form: &mut FormMap, meta: Option<&PluginMetadata>) -> Result<(), HashMap<String, String>> {
    let picked = form.get("server_url_choice").map(|c| c.trim().to_string()).unwrap_or_default();
    if picked.is_empty() || picked == CUSTOM {
        return Ok(());
    }
    let choices = meta.map(|m| m.server_form.server_urls.as_slice()).unwrap_or_default();
    let Some(choice) = choices.iter().find(|c| c.url == picked) else {
        return Err(HashMap::from([("server_url".to_string(), "That Server URL is not one this plugin offers; pick one again, or Custom.".to_string())]));
    };
    // Host names are case-insensitive: written in lower case, as
    // `choice_of` recognises them.
    let name = form.get("server_url_name").map(|n| n.trim().to_ascii_lowercase()).unwrap_or_default();
    if choice.url.contains("{name}") && !valid_name(&name) {
        let what = if choice.name_label.is_empty() { "the name" } else { choice.name_label.as_str() };
        let message = if name.is_empty() {
            format!("Enter {what} for {}.", choice.label)
        } else {
            format!("'{name}' is not a valid {what}: letters, digits and hyphens only.")
        };
        return Err(HashMap::from([("server_url".to_string(), message)]));
    }
    form.insert("server_url".into(), choice.url.replace("{name}", &name));
    Ok(())
}

/// The server the form describes: its Server URL from the picked choice,
/// validated, with default API hosts. The form keeps the composed URL, so
/// that a refused form shows what was tried.
pub(super) fn read_server(app: &App, form: &mut FormMap, has_secret: bool) -> Result<ServerInput, HashMap<String, String>> {
    let meta = plugin_of(app, form).cloned();
    resolve_server_url(form, meta.as_ref())?;
    let mut input = validate_server(form, &app.plugins, has_secret, app.oauth.insecure_loopback())?;
    let plugin_meta = app.plugin_map.get(&input.plugin).map(|p| p.metadata());
    if !grants_of(plugin_meta).contains(&input.grant_type) {
        let message = format!("The plugin '{}' does not offer the {} grant; choose another.", input.plugin, crate::domain::grant_label(input.grant_type));
        return Err(HashMap::from([("grant_type".to_string(), message)]));
    }
    if !asks_token_url(plugin_meta) {
        input.token_url = None;
    } else if input.token_url.is_none() && input.grant_type == GrantType::ClientCredentials {
        let message = "Enter the Token URL: client credentials are exchanged for a token there (the authorization server's token endpoint).";
        return Err(HashMap::from([("token_url".to_string(), message.to_string())]));
    }
    // A server saved without API hosts takes its Server URL choice's, else
    // its plugin's declared ones, which the server page then shows for the
    // admin to narrow: the server's own list is what makes an instance URL
    // trusted.
    if input.api_hosts.is_empty() {
        input.api_hosts = default_hosts(&input.server_url, app.plugin_map.get(&input.plugin).map(|p| p.metadata()));
    }
    Ok(input)
}

/// Validates the server form; errors are keyed by field name.
pub fn validate_server(f: &FormMap, plugins: &[String], has_secret: bool, insecure_loopback: bool) -> Result<ServerInput, HashMap<String, String>> {
    let mut errors = HashMap::new();
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let name = get("name");
    if name.is_empty() {
        errors.insert("name".into(), "Enter a name.".into());
    } else if name.chars().count() > 100 {
        errors.insert("name".into(), "Use at most 100 characters.".into());
    }
    let server_url = get("server_url");
    if server_url.is_empty() {
        errors.insert("server_url".into(), "Enter the Server URL, or pick one.".into());
    } else if let Err(e) = check_origin(&server_url, "The Server URL", insecure_loopback) {
        errors.insert("server_url".into(), format!("{e}."));
    } else if server_url.contains(['?', '#']) {
        errors.insert("server_url".into(), "The Server URL takes no query or fragment.".into());
    }
    let token_url = get("token_url");
    if token_url.is_empty() {
        // Not asked for, or left to the plugin.
    } else if let Err(e) = check_origin(&token_url, "The Token URL", insecure_loopback) {
        errors.insert("token_url".into(), format!("{e}."));
    } else if token_url.contains('#') {
        errors.insert("token_url".into(), "The Token URL takes no fragment.".into());
    }
    let client_id = get("client_id");
    let pasted_token = get("grant_type") == "static_bearer";
    if client_id.is_empty() && pasted_token {
        // A pasted token needs no app.
    } else if client_id.is_empty() {
        errors.insert("client_id".into(), "Enter the Client ID the provider issued for this registry's app.".into());
    } else if client_id.len() > 255 || client_id.contains(char::is_whitespace) {
        errors.insert("client_id".into(), "A Client ID has no spaces and at most 255 characters.".into());
    }
    let grant_type = match get("grant_type").as_str() {
        "authorization_code" | "" => GrantType::AuthorizationCode,
        "client_credentials" => GrantType::ClientCredentials,
        "jwt_bearer" => GrantType::JwtBearer,
        "static_bearer" => GrantType::StaticBearer,
        _ => {
            errors.insert("grant_type".into(), "Choose one of the grant types the plugin offers.".into());
            GrantType::AuthorizationCode
        }
    };
    let jwt_subject = get("jwt_subject");
    if grant_type == GrantType::JwtBearer && jwt_subject.is_empty() {
        errors.insert("jwt_subject".into(), "Enter the username the tokens act as: the JWT bearer grant names it in every assertion.".into());
    } else if jwt_subject.chars().count() > 255 || jwt_subject.contains(char::is_whitespace) {
        errors.insert("jwt_subject".into(), "A username has no spaces and at most 255 characters.".into());
    }
    let secret = f.get("client_secret").cloned().filter(|s| !s.is_empty());
    // The JWT bearer grant signs with a key instead of a secret.
    if secret.is_none() && !has_secret && grant_type == GrantType::StaticBearer {
        errors.insert("client_secret".into(), "Paste the bearer token the service issued into Client Secret: it is kept encrypted and sent with every request.".into());
    } else if secret.is_none() && !has_secret && grant_type != GrantType::JwtBearer {
        errors.insert("client_secret".into(), "Enter the Client Secret the provider issued with the Client ID: token requests and the check of each token response's signature need it.".into());
    }
    let mut api_hosts = Vec::new();
    for pattern in get("api_hosts").split([' ', ',', '\n']).filter(|p| !p.trim().is_empty()) {
        match registry_plugin_runtime::HostPattern::parse(pattern) {
            Ok(p) => api_hosts.push(p.to_string()),
            Err(e) => {
                errors.insert("api_hosts".into(), format!("{e}."));
                break;
            }
        }
    }
    let scope = get("scope");
    if !scope.chars().all(|c| c.is_ascii_alphanumeric() || " _:./-".contains(c)) {
        errors.insert("scope".into(), "Scopes are words separated by spaces, e.g. \"api refresh_token\".".into());
    }
    let plugin = get("plugin");
    let plugin = if plugin.is_empty() { plugins.first().cloned().unwrap_or_default() } else { plugin };
    if !plugins.contains(&plugin) {
        errors.insert("plugin".into(), format!("No plugin named '{plugin}' is loaded."));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ServerInput {
        name,
        description: get("description"),
        plugin,
        server_url,
        client_id,
        client_secret: secret,
        grant_type,
        scope: (!scope.is_empty()).then_some(scope),
        api_hosts,
        jwt_subject: (grant_type == GrantType::JwtBearer).then_some(jwt_subject),
        // A pasted token and a browser sign-in go to no token endpoint.
        token_url: (!token_url.is_empty() && matches!(grant_type, GrantType::ClientCredentials | GrantType::JwtBearer)).then_some(token_url),
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_server_form_says_which_field_is_wrong() {
        let plugins = vec!["salesforce".to_string()];
        let errors = validate_server(&form(&[("server_url", "http://login.example.com"), ("grant_type", "client_credentials"), ("scope", "api;drop")]), &plugins, false, true).unwrap_err();
        assert_eq!(errors["name"], "Enter a name.");
        assert!(errors["server_url"].contains("is not allowed: plain http:// is only allowed to loopback"), "{}", errors["server_url"]);
        assert!(errors["client_id"].starts_with("Enter the Client ID"));
        assert!(errors["client_secret"].starts_with("Enter the Client Secret"));
        assert!(errors.contains_key("scope"));
        let hosts = validate_server(&form(&[("api_hosts", "acme.example.com *.com")]), &plugins, false, true).unwrap_err();
        assert!(hosts["api_hosts"].contains("'*.com' would match a whole top-level domain"), "{}", hosts["api_hosts"]);
        let query = validate_server(&form(&[("server_url", "https://login.example.com/?next=x")]), &plugins, false, true).unwrap_err();
        assert!(query["server_url"].contains("no query"));
        let local = validate_server(&form(&[("name", "SF"), ("server_url", "http://127.0.0.1:4000"), ("client_id", "3MVG9")]), &plugins, true, false).unwrap_err();
        assert!(local["server_url"].contains("needs the operator's opt-in"), "{}", local["server_url"]);
        let ok = validate_server(&form(&[("name", "SF"), ("server_url", "http://127.0.0.1:4000/services/oauth2"), ("client_id", "3MVG9"), ("scope", "api refresh_token")]), &plugins, true, true).unwrap();
        assert_eq!((ok.plugin.as_str(), ok.grant_type, ok.client_secret), ("salesforce", GrantType::AuthorizationCode, None), "an edit keeps the saved secret");
        assert_eq!(ok.token_url, None);
        let cc = |token_url: &str| validate_server(&form(&[("name", "S"), ("server_url", "https://scim.example.com/v2"), ("client_id", "app"), ("grant_type", "client_credentials"), ("token_url", token_url)]), &plugins, true, false);
        assert_eq!(cc("https://auth.example.com/oauth2/token").unwrap().token_url.as_deref(), Some("https://auth.example.com/oauth2/token"));
        assert!(cc("http://auth.example.com/token").unwrap_err()["token_url"].contains("The Token URL"), "checked as the Server URL is");
        assert!(cc("https://auth.example.com/token#x").unwrap_err()["token_url"].contains("no fragment"));
        let pasted = validate_server(&form(&[("name", "S"), ("server_url", "https://scim.example.com/v2"), ("grant_type", "static_bearer"), ("token_url", "https://auth.example.com/token")]), &plugins, true, false).unwrap();
        assert_eq!(pasted.token_url, None, "a pasted token goes to no token endpoint");
    }

    fn meta(choices: Vec<ServerUrlChoice>) -> PluginMetadata {
        PluginMetadata {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            settings: vec![],
            capabilities: registry_plugin_runtime::latest::plugin_info::Capabilities::empty(),
            api_hosts: vec!["*.example.com".into()],
            server_form: registry_plugin_runtime::latest::plugin_info::ServerForm { server_urls: choices, help: vec![("client-id".into(), "The app's key.".into())] },
        }
    }

    fn choice(label: &str, url: &str, name_label: &str, hosts: &[&str]) -> ServerUrlChoice {
        ServerUrlChoice { label: label.into(), url: url.into(), name_label: name_label.into(), api_hosts: hosts.iter().map(|h| h.to_string()).collect() }
    }

    /// The plugin's Server URL choices: a picked one sets the URL and the
    /// API hosts (its name filled in, checked to be one DNS label), Custom
    /// keeps the typed URL, and a saved URL is shown as the choice it is.
    #[test]
    fn a_picked_server_url_is_composed_checked_and_recognised() {
        let m = meta(vec![
            choice("Production", "https://login.example.com", "", &[]),
            choice("Tenant", "https://{name}.tenant.example.com", "Tenant name", &["{name}.tenant.example.com"]),
        ]);
        let mut f = form(&[("server_url_choice", "https://login.example.com"), ("server_url", "ignored")]);
        resolve_server_url(&mut f, Some(&m)).unwrap();
        assert_eq!(f["server_url"], "https://login.example.com");

        let mut f = form(&[("server_url_choice", "https://{name}.tenant.example.com"), ("server_url_name", " Acme-EU ")]);
        resolve_server_url(&mut f, Some(&m)).unwrap();
        assert_eq!(f["server_url"], "https://acme-eu.tenant.example.com");
        assert_eq!(default_hosts(&f["server_url"], Some(&m)), vec!["acme-eu.tenant.example.com"], "the hosts follow the URL");

        for (name, says) in [("", "Enter Tenant name for Tenant."), ("evil.com/x", "'evil.com/x' is not a valid Tenant name"), ("-a", "is not a valid")] {
            let mut f = form(&[("server_url_choice", "https://{name}.tenant.example.com"), ("server_url_name", name)]);
            let errors = resolve_server_url(&mut f, Some(&m)).unwrap_err();
            assert!(errors["server_url"].contains(says), "{name}: {}", errors["server_url"]);
        }
        let mut f = form(&[("server_url_choice", "https://other.example.com")]);
        assert!(resolve_server_url(&mut f, Some(&m)).unwrap_err()["server_url"].contains("not one this plugin offers"));
        let mut f = form(&[("server_url_choice", CUSTOM), ("server_url", "https://sso.example.org")]);
        resolve_server_url(&mut f, Some(&m)).unwrap();
        assert_eq!(f["server_url"], "https://sso.example.org");

        let choices = &m.server_form.server_urls;
        assert_eq!(choice_of("", choices), ("https://login.example.com".to_string(), String::new()), "the default first");
        assert_eq!(choice_of("https://login.example.com", choices).0, "https://login.example.com");
        assert_eq!(choice_of("https://login.example.com/", choices).0, CUSTOM, "only the same string, so a save keeps it as it was");
        assert_eq!(choice_of("https://acme.tenant.example.com", choices), ("https://{name}.tenant.example.com".to_string(), "acme".to_string()));
        assert_eq!(choice_of("https://a.b.tenant.example.com", choices).0, CUSTOM, "a name is one label");
        assert_eq!(choice_of("https://Acme.tenant.example.com", choices).0, CUSTOM, "typed so by hand: kept as it is");
        assert_eq!(choice_of("http://127.0.0.1:4000", choices).0, CUSTOM);
        assert_eq!(default_hosts("https://acme.tenant.example.com", Some(&m)), vec!["acme.tenant.example.com"]);
        assert_eq!(default_hosts("https://login.example.com", Some(&m)), vec!["*.example.com"], "a choice without hosts: the plugin's");
        // A {name} in the hosts of a choice whose URL has none is never filled in.
        let odd = meta(vec![choice("Fixed", "https://login.example.com", "", &["{name}"])]);
        assert_eq!(default_hosts("https://login.example.com", Some(&odd)), Vec::<String>::new(), "left to fail as a pattern, so not trusted");
        assert_eq!(help(Some(&m), "client-id"), "The app's key.");
        assert!(help(Some(&m), "scope").starts_with("Space separated"), "generic help for what the plugin leaves out");
    }
}
