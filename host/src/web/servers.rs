//! OAuth2 server pages: the list, add, edit, delete, a server's page with
//! Obtain New Token, Revoke Token and Test Connection, and the OAuth2
//! callback.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Value as Ctx, context};
use serde::Serialize;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, FormMap, audit, format_time, see_other};
use crate::domain::{Server, ServerInput, TokenStatus};
use crate::oauth::{FlowError, check_origin};
use crate::store::{Session, StoreError};
use registry_plugin_runtime::latest::types::GrantType;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/servers", get(servers).post(create_server))
        .route("/servers/new", get(new_server))
        .route("/servers/{id}", get(server_page).post(update_server))
        .route("/servers/{id}/edit", get(edit_server))
        .route("/servers/{id}/delete", post(delete_server))
        .route("/servers/{id}/token", post(obtain_token))
        .route("/servers/{id}/revoke", post(revoke_token))
        .route("/servers/{id}/refresh-token", post(use_refresh_token))
        .route("/servers/{id}/test", post(test_connection))
        .route("/oauth2/callback/{id}", get(callback))
}

/// A server as the templates show it.
#[derive(Serialize)]
struct ServerView {
    id: i64,
    name: String,
    description: String,
    server_url: String,
    client_id: String,
    has_secret: bool,
    grant_label: &'static str,
    authorization_code: bool,
    scope: Option<String>,
    api_hosts: Vec<String>,
    status_label: &'static str,
    status_class: &'static str,
    has_token: bool,
    instance_url: Option<String>,
    issued: Option<String>,
    last_error: Option<String>,
}

fn view(s: &Server) -> ServerView {
    let (status_label, status_class) = match s.token_status {
        TokenStatus::Set => ("Set", "set"),
        TokenStatus::NotSet => ("Not Set", "not-set"),
        TokenStatus::NeedsReauthorization => ("Needs a new token", "needs"),
    };
    ServerView {
        id: s.id,
        name: s.name.clone(),
        description: s.description.clone(),
        server_url: s.server_url.clone(),
        client_id: s.client_id.clone(),
        has_secret: s.has_secret,
        grant_label: match s.grant_type {
            GrantType::AuthorizationCode => "Authorization Code",
            GrantType::ClientCredentials => "Client Credentials",
        },
        authorization_code: s.grant_type == GrantType::AuthorizationCode,
        scope: s.scope.clone(),
        api_hosts: s.api_hosts.clone(),
        status_label,
        status_class,
        has_token: s.token_status != TokenStatus::NotSet,
        instance_url: s.instance_url.clone(),
        issued: s.token_issued_at.map(format_time),
        last_error: s.last_error.clone(),
    }
}

async fn servers(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let notice = q.get("notice").and_then(|n| notice_text(n));
    let views: Vec<ServerView> = app.store.servers()?.iter().map(view).collect();
    Ok(app.render("servers.html", context! { admin => s.username, csrf => s.csrf_token, servers => views, notice => notice }))
}

#[derive(Serialize)]
struct FieldView {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: String,
    required: bool,
    error: Option<String>,
    help: &'static str,
    placeholder: &'static str,
    options: Vec<OptionView>,
}

#[derive(Serialize)]
struct OptionView {
    value: String,
    label: String,
}

fn form_fields(app: &App, values: &FormMap, errors: &HashMap<String, String>, has_secret: bool) -> Vec<FieldView> {
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let e = |k: &str| errors.get(k).cloned();
    let field = |name: &'static str, label: &'static str, kind: &'static str, required: bool, help: &'static str| FieldView {
        name,
        label,
        kind,
        value: if kind == "password" { String::new() } else { v(name) },
        required,
        error: e(name),
        help,
        placeholder: "",
        options: vec![],
    };
    let mut fields = vec![
        field("name", "Name", "text", true, "How this server is listed, e.g. \"Salesforce production\"."),
        field("description", "Description", "textarea", false, ""),
        field("server_url", "Server URL", "text", true, "The Salesforce login host: https://login.salesforce.com, https://test.salesforce.com for sandboxes, or your My Domain (https://NAME.my.salesforce.com); /services/oauth2 may be added."),
        field("client_id", "Client ID", "text", true, "The connected app's consumer key."),
        field("client_secret", "Client Secret", "password", false, "The connected app's consumer secret. Stored encrypted; never shown again."),
    ];
    if has_secret {
        fields[4].placeholder = "•••••••• (leave empty to keep the saved secret)";
    }
    let mut grant = field("grant_type", "Access Token Grant Type", "select", true, "Authorization Code: an admin signs in at Salesforce and allows access. Client Credentials: the app's run-as user, no browser.");
    grant.options = vec![
        OptionView { value: "authorization_code".into(), label: "Authorization Code".into() },
        OptionView { value: "client_credentials".into(), label: "Client Credentials".into() },
    ];
    if grant.value.is_empty() {
        grant.value = "authorization_code".into();
    }
    fields.push(grant);
    fields.push(field("scope", "Scope", "text", false, "Space separated, e.g. \"api refresh_token\". Empty: the connected app's default."));
    fields.push(field("api_hosts", "API hosts", "text", false, "The hosts this server's tokens may name as their instance, e.g. \"acme.my.salesforce.com\" or \"*.my.salesforce.com\", space separated. An instance URL must match these and the plugin's own list; anything else is refused before it is stored. Left empty, the plugin's declared list is taken, shown on the server page to narrow."));
    let mut plugin = field("plugin", "Plugin", "select", true, "The plugin that speaks this server's OAuth.");
    plugin.options = app.plugins.iter().map(|p| OptionView { value: p.clone(), label: p.clone() }).collect();
    if plugin.value.is_empty() {
        plugin.value = app.plugins.first().cloned().unwrap_or_default();
    }
    fields.push(plugin);
    fields
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
        errors.insert("server_url".into(), "Enter the Server URL, e.g. https://login.salesforce.com.".into());
    } else if let Err(e) = check_origin(&server_url, "The Server URL", insecure_loopback) {
        errors.insert("server_url".into(), format!("{e}."));
    } else if server_url.contains(['?', '#']) {
        errors.insert("server_url".into(), "The Server URL takes no query or fragment.".into());
    } else {
        let path = server_url.split("://").nth(1).and_then(|r| r.find('/').map(|i| &r[i..])).unwrap_or("").trim_end_matches('/');
        if !path.is_empty() && path != "/services/oauth2" {
            errors.insert("server_url".into(), "Give the login host only (e.g. https://login.salesforce.com), optionally ending in /services/oauth2.".into());
        }
    }
    let client_id = get("client_id");
    if client_id.is_empty() {
        errors.insert("client_id".into(), "Enter the Client ID (the connected app's consumer key).".into());
    } else if client_id.len() > 255 || client_id.contains(char::is_whitespace) {
        errors.insert("client_id".into(), "A Client ID has no spaces and at most 255 characters.".into());
    }
    let grant_type = match get("grant_type").as_str() {
        "authorization_code" | "" => GrantType::AuthorizationCode,
        "client_credentials" => GrantType::ClientCredentials,
        _ => {
            errors.insert("grant_type".into(), "Choose Authorization Code or Client Credentials.".into());
            GrantType::AuthorizationCode
        }
    };
    let secret = f.get("client_secret").cloned().filter(|s| !s.is_empty());
    if secret.is_none() && !has_secret {
        errors.insert("client_secret".into(), "Enter the Client Secret (the connected app's consumer secret): token requests and the check of each token response's signature need it.".into());
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
    })
}

async fn new_server(State(app): State<Arc<App>>, Admin(s): Admin) -> Response {
    let fields = form_fields(&app, &FormMap::new(), &HashMap::new(), false);
    app.render("server_form.html", context! { admin => s.username, csrf => s.csrf_token, fields => fields, form => context!{ name => "" } })
}

fn form_again(app: &App, s: &Session, id: Option<i64>, f: &FormMap, errors: HashMap<String, String>, has_secret: bool) -> Response {
    let fields = form_fields(app, f, &errors, has_secret);
    let mut r = app.render(
        "server_form.html",
        context! { admin => s.username.clone(), csrf => s.csrf_token.clone(), fields => fields, id => id, errors => true, form => context!{ name => f.get("name").cloned().unwrap_or_default() } },
    );
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

async fn create_server(State(app): State<Arc<App>>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let input = match validate_server(&f, &app.plugins, false, app.oauth.insecure_loopback()) {
        Ok(i) => with_plugin_hosts(&app, i),
        Err(errors) => return Ok(form_again(&app, &s, None, &f, errors, false)),
    };
    match app.store.create_server(&input) {
        Ok(id) => {
            audit::record(&app, &s.username, "server.create", &input.name, server_detail(&input));
            Ok(see_other(&format!("/servers/{id}?notice=created")))
        }
        Err(StoreError::Conflict(m)) => Ok(form_again(&app, &s, None, &f, HashMap::from([("name".to_string(), format!("{m}; choose another name."))]), false)),
        Err(e) => Err(e.into()),
    }
}

async fn edit_server(State(app): State<Arc<App>>, Path(id): Path<i64>, Admin(s): Admin) -> Result<Response, WebError> {
    let server = app.store.server(id)?;
    let values: FormMap = [
        ("name", server.name.clone()),
        ("description", server.description.clone()),
        ("server_url", server.server_url.clone()),
        ("client_id", server.client_id.clone()),
        ("grant_type", if server.grant_type == GrantType::ClientCredentials { "client_credentials".into() } else { "authorization_code".into() }),
        ("scope", server.scope.clone().unwrap_or_default()),
        ("api_hosts", server.api_hosts.join(" ")),
        ("plugin", server.plugin.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let fields = form_fields(&app, &values, &HashMap::new(), server.has_secret);
    Ok(app.render("server_form.html", context! { admin => s.username, csrf => s.csrf_token, fields => fields, id => id, form => context!{ name => server.name } }))
}

async fn update_server(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let has_secret = app.store.server(id)?.has_secret;
    let input = match validate_server(&f, &app.plugins, has_secret, app.oauth.insecure_loopback()) {
        Ok(i) => with_plugin_hosts(&app, i),
        Err(errors) => return Ok(form_again(&app, &s, Some(id), &f, errors, has_secret)),
    };
    let before = app.store.server(id)?;
    match app.store.update_server(id, &input) {
        Ok(saved) => {
            let detail = serde_json::json!({
                "before": {"name": before.name, "server_url": before.server_url, "client_id": before.client_id, "grant_type": crate::domain::grant_str(before.grant_type), "scope": before.scope, "api_hosts": before.api_hosts, "plugin": before.plugin},
                "after": server_detail(&input),
                "tokens_cleared": saved.tokens_cleared,
            });
            audit::record(&app, &s.username, "server.update", &input.name, detail);
            Ok(see_other(&format!("/servers/{id}?notice={}", if saved.tokens_cleared { "saved_cleared" } else { "saved" })))
        }
        Err(StoreError::Conflict(m)) => Ok(form_again(&app, &s, Some(id), &f, HashMap::from([("name".to_string(), format!("{m}; choose another name."))]), has_secret)),
        Err(e) => Err(e.into()),
    }
}

async fn delete_server(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let server = app.store.server(id)?;
    let users: Vec<String> = app.store.targets()?.into_iter().filter(|t| t.server_id == id).map(|t| t.name).collect();
    if !users.is_empty() {
        let message = format!("The server '{}' is used by the target(s) {}; delete them or point them at another server first.", server.name, users.join(", "));
        return server_view_page(&app, &f.session, id, None, Some(message), None).map(|mut r| {
            *r.status_mut() = StatusCode::CONFLICT;
            r
        });
    }
    app.store.delete_server(id)?;
    audit::record(&app, &f.session.username, "server.delete", &server.name, serde_json::json!({"server_url": server.server_url, "plugin": server.plugin}));
    Ok(see_other("/servers?notice=deleted"))
}

/// What the audit trail keeps of a server's configuration (the secret
/// only as "given or not").
fn server_detail(input: &crate::domain::ServerInput) -> serde_json::Value {
    serde_json::json!({
        "name": input.name, "server_url": input.server_url, "client_id": input.client_id, "grant_type": crate::domain::grant_str(input.grant_type),
        "scope": input.scope, "api_hosts": input.api_hosts, "plugin": input.plugin, "client_secret_changed": input.client_secret.is_some(),
    })
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Server added. Copy the Redirect URI into the connected app, then click Obtain New Token.",
        "saved" => "Changes saved.",
        "saved_cleared" => "Changes saved. The Server URL, Client ID, Client Secret, API hosts or plugin changed, so the stored tokens were cleared: obtain a new token.",
        "obtained" => "Access Token Obtained.",
        "revoked" => "The token was revoked at the provider and forgotten here.",
        "deleted" => "Server deleted.",
        _ => return None,
    })
}

/// A server saved without API hosts takes its plugin's declared ones, which
/// the server page then shows for the admin to narrow: the server's own list
/// is what makes an instance URL trusted.
fn with_plugin_hosts(app: &App, mut input: ServerInput) -> ServerInput {
    if input.api_hosts.is_empty()
        && let Some(plugin) = app.plugin_map.get(&input.plugin)
    {
        input.api_hosts = plugin.metadata().api_hosts.iter().filter_map(|h| registry_plugin_runtime::HostPattern::parse(h).ok()).map(|h| h.to_string()).collect();
    }
    input
}

fn server_view_page(app: &App, s: &Session, id: i64, notice: Option<&str>, error: Option<String>, connection: Option<Ctx>) -> Result<Response, WebError> {
    let server = app.store.server(id)?;
    Ok(app.render(
        "server.html",
        context! {
            admin => s.username.clone(), csrf => s.csrf_token.clone(), s => view(&server),
            plugin_api_hosts => app.plugin_map.get(&server.plugin).map(|p| p.metadata().api_hosts.clone()).unwrap_or_default(),
            redirect_uri => app.oauth.redirect_uri(id), notice => notice, error => error, connection => connection,
            waiting => app.store.jobs_waiting_for(id).unwrap_or(0),
        },
    ))
}

async fn server_page(State(app): State<Arc<App>>, Path(id): Path<i64>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let notice = q.get("notice").and_then(|n| notice_text(n));
    let error = match (q.get("notice").map(String::as_str), q.get("problem").map(String::as_str)) {
        (Some("failed"), _) => Some(app.store.server(id).ok().and_then(|s| s.last_error).unwrap_or_else(|| "The last action failed.".into())),
        (_, Some("state")) => Some(FlowError::UnknownState.to_string()),
        (_, Some("server")) => Some(FlowError::WrongServer.to_string()),
        (_, Some("session")) => Some(FlowError::OtherSession.to_string()),
        _ => None,
    };
    let error = error.or_else(|| q.get("test_error").cloned());
    // Test Connection's result, handed over through the session (PRG).
    let connection = q.get("tested").and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()).map(|v| Ctx::from_serialize(&v));
    server_view_page(&app, &s, id, notice, error, connection)
}

/// What ties an Obtain New Token to the browser session that started it:
/// the hash of the session's CSRF token (secret, and one per session).
fn session_binding(s: &Session) -> String {
    crate::secrets::token_hash(&s.csrf_token)
}

async fn obtain_token(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    match app.store.server(id)?.grant_type {
        GrantType::AuthorizationCode => match app.oauth.begin(id, Some("login"), &session_binding(&s)).await {
            // 303 so the browser GETs the provider's page.
            Ok(url) => {
                audit::record(&app, &s.username, "server.obtain-token.start", &app.store.server(id)?.name, serde_json::json!({}));
                Ok(Redirect::to(&url).into_response())
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("Could not start: {e}")), None),
        },
        GrantType::ClientCredentials => match app.oauth.client_credentials(id).await {
            Ok(()) => {
                audit::record(&app, &s.username, "server.obtain-token", &app.store.server(id)?.name, serde_json::json!({"grant_type": "client_credentials"}));
                app.engine.wake();
                Ok(see_other(&format!("/servers/{id}?notice=obtained")))
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("No token: {e}")), None),
        },
    }
}

async fn use_refresh_token(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let pasted = f.get("refresh_token").map(|t| t.trim().to_string()).unwrap_or_default();
    if pasted.is_empty() {
        return server_view_page(&app, &s, id, None, Some("Paste a refresh token first.".into()), None).map(|mut r| {
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        });
    }
    let name = app.store.server(id)?.name;
    match app.oauth.use_refresh_token(id, &pasted).await {
        Ok(()) => {
            audit::record(&app, &s.username, "server.use-refresh-token", &name, serde_json::json!({}));
            app.engine.wake();
            Ok(see_other(&format!("/servers/{id}?notice=obtained")))
        }
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("The refresh token was refused, and nothing was stored: {e}")), None).map(|mut r| {
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }),
    }
}

async fn revoke_token(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    match app.oauth.revoke(id).await {
        Ok(()) => {
            audit::record(&app, &s.username, "server.revoke-token", &app.store.server(id)?.name, serde_json::json!({}));
            Ok(see_other(&format!("/servers/{id}?notice=revoked")))
        }
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("Revoke failed: {e}")), None),
    }
}

async fn test_connection(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let name = app.store.server(id)?.name;
    match app.oauth.test_connection(id).await {
        Ok(info) => {
            audit::record(&app, &s.username, "server.test-connection", &name, serde_json::json!({"ok": true}));
            let usage = info.api_usage.as_ref().map(|u| format!("{} of {} daily API requests used", u.used, u.limit));
            let view = serde_json::json!({"user": info.user, "organization": info.organization, "usage": usage, "details": info.details});
            Ok(see_other(&format!("/servers/{id}?tested={}", super::query_value(&view.to_string()))))
        }
        Err(e) => {
            audit::record(&app, &s.username, "server.test-connection", &name, serde_json::json!({"ok": false, "error": e.to_string()}));
            Ok(see_other(&format!("/servers/{id}?test_error={}", super::query_value(&format!("Test Connection failed: {e}")))))
        }
    }
}

async fn callback(State(app): State<Arc<App>>, Path(id): Path<i64>, Query(q): Query<FormMap>, Admin(s): Admin) -> Response {
    // Only a callback whose state checks out, from the session that started
    // the sign-in, may record anything on the server; the others say what
    // was wrong through a fixed message.
    match app.oauth.callback(id, &q, &session_binding(&s)).await {
        Ok(()) => {
            let name = app.store.server(id).map(|sv| sv.name).unwrap_or_default();
            audit::record(&app, &s.username, "server.obtain-token", &name, serde_json::json!({"grant_type": "authorization_code"}));
            app.engine.wake();
            see_other(&format!("/servers/{id}?notice=obtained"))
        }
        Err(FlowError::UnknownState) => see_other(&format!("/servers/{id}?problem=state")),
        Err(FlowError::WrongServer) => see_other(&format!("/servers/{id}?problem=server")),
        Err(FlowError::OtherSession) => see_other(&format!("/servers/{id}?problem=session")),
        Err(_) => see_other(&format!("/servers/{id}?notice=failed")),
    }
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
        let errors = validate_server(&form(&[("server_url", "http://login.salesforce.com"), ("grant_type", "client_credentials"), ("scope", "api;drop")]), &plugins, false, true).unwrap_err();
        assert_eq!(errors["name"], "Enter a name.");
        assert!(errors["server_url"].contains("is not allowed: plain http:// is only allowed to loopback"), "{}", errors["server_url"]);
        assert!(errors["client_id"].contains("consumer key"));
        assert!(errors["client_secret"].starts_with("Enter the Client Secret"));
        assert!(errors.contains_key("scope"));
        let hosts = validate_server(&form(&[("api_hosts", "acme.my.salesforce.com *.com")]), &plugins, false, true).unwrap_err();
        assert!(hosts["api_hosts"].contains("'*.com' would match a whole top-level domain"), "{}", hosts["api_hosts"]);
        let path = validate_server(&form(&[("server_url", "https://login.salesforce.com/home")]), &plugins, false, true).unwrap_err();
        assert!(path["server_url"].contains("login host only"));
        let local = validate_server(&form(&[("name", "SF"), ("server_url", "http://127.0.0.1:4000"), ("client_id", "3MVG9")]), &plugins, true, false).unwrap_err();
        assert!(local["server_url"].contains("needs the operator's opt-in"), "{}", local["server_url"]);
        let ok = validate_server(&form(&[("name", "SF"), ("server_url", "http://127.0.0.1:4000/services/oauth2"), ("client_id", "3MVG9"), ("scope", "api refresh_token")]), &plugins, true, true).unwrap();
        assert_eq!((ok.plugin.as_str(), ok.grant_type, ok.client_secret), ("salesforce", GrantType::AuthorizationCode, None), "an edit keeps the saved secret");
    }
}
