//! The admin web UI: server-rendered HTML (minijinja templates in
//! `host/templates/`), a session cookie (HttpOnly, SameSite=Lax), a CSRF
//! token on every form, and the OAuth2 server pages with Obtain New Token,
//! Revoke Token and Test Connection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value as Ctx, context};
use serde::Serialize;

use crate::auth;
use registry_plugin_runtime::latest::oauth2_server::ConnectionInfo;
use registry_plugin_runtime::latest::types::GrantType;
use crate::oauth::{FlowError, OAuth, check_origin};
use crate::engine::Engine;
use registry_plugin_runtime::Plugin;
use crate::domain::{Server, ServerInput, TokenStatus};
use crate::store::{Session, Store, StoreError};

mod api;
mod people;
mod targets;

const COOKIE: &str = "registry_session";
/// Pre-session cookie carrying the login form's CSRF token.
const LOGIN_COOKIE: &str = "registry_login";
type FormMap = HashMap<String, String>;

/// What the handlers share.
pub struct App {
    /// The database.
    pub store: Arc<Store>,
    /// OAuth actions.
    pub oauth: OAuth,
    /// Names of the loaded plugins (choices for a server's plugin).
    pub plugins: Vec<String>,
    /// The loaded plugins (their settings render the target form).
    pub plugin_map: Arc<HashMap<String, Plugin>>,
    /// The provisioning engine, woken when people or tokens change.
    pub engine: Arc<Engine>,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure_cookies: bool,
    templates: Environment<'static>,
    /// Password checks (argon2: ~19 MiB and tens of ms each) run two at a time.
    password_checks: tokio::sync::Semaphore,
}

impl App {
    /// Builds the app.
    pub fn new(store: Arc<Store>, oauth: OAuth, plugin_map: Arc<HashMap<String, Plugin>>, engine: Arc<Engine>, secure_cookies: bool) -> Self {
        let mut plugins: Vec<String> = plugin_map.keys().cloned().collect();
        plugins.sort();
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("login.html", include_str!("../../templates/login.html")),
            ("servers.html", include_str!("../../templates/servers.html")),
            ("server.html", include_str!("../../templates/server.html")),
            ("server_form.html", include_str!("../../templates/server_form.html")),
            ("people.html", include_str!("../../templates/people.html")),
            ("person.html", include_str!("../../templates/person.html")),
            ("person_form.html", include_str!("../../templates/person_form.html")),
            ("targets.html", include_str!("../../templates/targets.html")),
            ("target.html", include_str!("../../templates/target.html")),
            ("target_form.html", include_str!("../../templates/target_form.html")),
        ] {
            env.add_template(name, src).expect("templates are valid");
        }
        env.add_filter("time", |ms: i64| format_time(ms));
        App { store, oauth, plugins, plugin_map, engine, secure_cookies, templates: env, password_checks: tokio::sync::Semaphore::new(2) }
    }

    fn render(&self, name: &str, ctx: Ctx) -> Response {
        match self.templates.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!("rendering {name}: {e:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
            }
        }
    }
}

/// The router for `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/servers") }))
        .route("/static/app.css", get(css))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/servers", get(servers).post(create_server))
        .route("/servers/new", get(new_server))
        .route("/servers/{id}", get(server_page).post(update_server))
        .route("/servers/{id}/edit", get(edit_server))
        .route("/servers/{id}/delete", post(delete_server))
        .route("/servers/{id}/token", post(obtain_token))
        .route("/servers/{id}/revoke", post(revoke_token))
        .route("/servers/{id}/test", post(test_connection))
        .route("/oauth2/callback/{id}", get(callback))
        .merge(people::routes())
        .merge(targets::routes())
        .merge(api::routes())
        .with_state(app)
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../templates/app.css"))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

fn current(app: &App, headers: &HeaderMap) -> Option<Session> {
    let token = cookie_token(headers)?;
    auth::session(&app.store, &token).ok().flatten()
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(what) => (StatusCode::NOT_FOUND, what).into_response(),
        other => {
            tracing::error!("store: {other}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the database failed; see the server log").into_response()
        }
    }
}

/// A POST needs a session and its CSRF token.
fn guard(app: &App, headers: &HeaderMap, form: &FormMap) -> Result<Session, Response> {
    let s = current(app, headers).ok_or_else(to_login)?;
    if !auth::csrf_ok(&s, form.get("csrf").map(String::as_str).unwrap_or("")) {
        return Err((StatusCode::FORBIDDEN, "the form expired or came from elsewhere (CSRF check failed); go back, reload and try again").into_response());
    }
    Ok(s)
}

/// The login form, with a fresh CSRF token in a short-lived pre-session cookie.
fn login_form(app: &App, username: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_password();
    let mut r = app.render("login.html", context! { username => username, error => error, csrf => token.clone() });
    *r.status_mut() = status;
    let mut c = format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    if app.secure_cookies {
        c.push_str("; Secure");
    }
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("ascii"));
    r
}

async fn login_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if current(&app, &headers).is_some() {
        return see_other("/servers");
    }
    login_form(&app, "", None, StatusCode::OK)
}

async fn login_submit(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<FormMap>) -> Response {
    let username = f.get("username").cloned().unwrap_or_default();
    let given = f.get("csrf").map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected.len() != given.len() || expected.bytes().zip(given.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return login_form(&app, &username, Some("The login form expired; please try again."), StatusCode::FORBIDDEN);
    }
    let password = f.get("password").cloned().unwrap_or_default();
    let store = app.store.clone();
    let (u, p) = (username.clone(), password);
    let Ok(_permit) = app.password_checks.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let result = tokio::task::spawn_blocking(move || auth::login(&store, &u, &p)).await;
    match result {
        Ok(Ok(Some(token))) => {
            let mut cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", auth::SESSION_TTL_MS / 1000);
            if app.secure_cookies {
                cookie.push_str("; Secure");
            }
            let mut r = see_other("/servers");
            r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii"));
            r
        }
        Ok(Ok(None)) => login_form(&app, &username, Some("Wrong username or password."), StatusCode::UNAUTHORIZED),
        Ok(Err(e)) => store_error(e),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<FormMap>) -> Response {
    if guard(&app, &headers, &f).is_ok()
        && let Some(token) = cookie_token(&headers)
    {
        let _ = auth::logout(&app.store, &token);
    }
    let mut r = see_other("/login");
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("registry_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"));
    r
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
        status_label,
        status_class,
        has_token: s.token_status != TokenStatus::NotSet,
        instance_url: s.instance_url.clone(),
        issued: s.token_issued_at.map(format_time),
        last_error: s.last_error.clone(),
    }
}

/// `2026-11-24 16:03:18 UTC`.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

async fn servers(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<FormMap>) -> Response {
    let Some(s) = current(&app, &headers) else { return to_login() };
    let notice = q.get("notice").and_then(|n| notice_text(n));
    match app.store.servers() {
        Ok(list) => {
            let views: Vec<ServerView> = list.iter().map(view).collect();
            app.render("servers.html", context! { admin => s.username, csrf => s.csrf_token, servers => views, notice => notice })
        }
        Err(e) => store_error(e),
    }
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
    let mut plugin = field("plugin", "Plugin", "select", true, "The plugin that speaks this server's OAuth.");
    plugin.options = app.plugins.iter().map(|p| OptionView { value: p.clone(), label: p.clone() }).collect();
    if plugin.value.is_empty() {
        plugin.value = app.plugins.first().cloned().unwrap_or_default();
    }
    fields.push(plugin);
    fields
}

/// Validates the server form; errors are keyed by field name.
pub fn validate_server(f: &FormMap, plugins: &[String], has_secret: bool) -> Result<ServerInput, HashMap<String, String>> {
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
    } else if let Err(e) = check_origin(&server_url, "The Server URL") {
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
    })
}

async fn new_server(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = current(&app, &headers) else { return to_login() };
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

async fn create_server(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<FormMap>) -> Response {
    let s = match guard(&app, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let input = match validate_server(&f, &app.plugins, false) {
        Ok(i) => i,
        Err(errors) => return form_again(&app, &s, None, &f, errors, false),
    };
    match app.store.create_server(&input) {
        Ok(id) => see_other(&format!("/servers/{id}?notice=created")),
        Err(StoreError::Conflict(m)) => form_again(&app, &s, None, &f, HashMap::from([("name".to_string(), format!("{m}; choose another name."))]), false),
        Err(e) => store_error(e),
    }
}

async fn edit_server(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let Some(s) = current(&app, &headers) else { return to_login() };
    let server = match app.store.server(id) {
        Ok(v) => v,
        Err(e) => return store_error(e),
    };
    let values: FormMap = [
        ("name", server.name.clone()),
        ("description", server.description.clone()),
        ("server_url", server.server_url.clone()),
        ("client_id", server.client_id.clone()),
        ("grant_type", if server.grant_type == GrantType::ClientCredentials { "client_credentials".into() } else { "authorization_code".into() }),
        ("scope", server.scope.clone().unwrap_or_default()),
        ("plugin", server.plugin.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let fields = form_fields(&app, &values, &HashMap::new(), server.has_secret);
    app.render("server_form.html", context! { admin => s.username, csrf => s.csrf_token, fields => fields, id => id, form => context!{ name => server.name } })
}

async fn update_server(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<FormMap>) -> Response {
    let s = match guard(&app, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let has_secret = match app.store.server(id) {
        Ok(v) => v.has_secret,
        Err(e) => return store_error(e),
    };
    let input = match validate_server(&f, &app.plugins, has_secret) {
        Ok(i) => i,
        Err(errors) => return form_again(&app, &s, Some(id), &f, errors, has_secret),
    };
    match app.store.update_server(id, &input) {
        Ok(saved) if saved.tokens_cleared => see_other(&format!("/servers/{id}?notice=saved_cleared")),
        Ok(_) => see_other(&format!("/servers/{id}?notice=saved")),
        Err(StoreError::Conflict(m)) => form_again(&app, &s, Some(id), &f, HashMap::from([("name".to_string(), format!("{m}; choose another name."))]), has_secret),
        Err(e) => store_error(e),
    }
}

async fn delete_server(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<FormMap>) -> Response {
    if let Err(r) = guard(&app, &headers, &f) {
        return r;
    }
    match app.store.delete_server(id) {
        Ok(()) => see_other("/servers?notice=deleted"),
        Err(e) => store_error(e),
    }
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Server added. Copy the Redirect URI into the connected app, then click Obtain New Token.",
        "saved" => "Changes saved.",
        "saved_cleared" => "Changes saved. The Server URL, Client ID or Client Secret changed, so the stored tokens were cleared: obtain a new token.",
        "obtained" => "Access Token Obtained.",
        "revoked" => "The token was revoked at the provider and forgotten here.",
        "deleted" => "Server deleted.",
        _ => return None,
    })
}

fn server_view_page(app: &App, s: &Session, id: i64, notice: Option<&str>, error: Option<String>, connection: Option<Ctx>) -> Response {
    let server = match app.store.server(id) {
        Ok(v) => v,
        Err(e) => return store_error(e),
    };
    app.render(
        "server.html",
        context! {
            admin => s.username.clone(), csrf => s.csrf_token.clone(), s => view(&server),
            redirect_uri => app.oauth.redirect_uri(id), notice => notice, error => error, connection => connection,
            waiting => app.store.jobs_waiting_for(id).unwrap_or(0),
        },
    )
}

async fn server_page(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Query(q): Query<FormMap>) -> Response {
    let Some(s) = current(&app, &headers) else { return to_login() };
    let notice = q.get("notice").and_then(|n| notice_text(n));
    let error = match (q.get("notice").map(String::as_str), q.get("problem").map(String::as_str)) {
        (Some("failed"), _) => Some(app.store.server(id).ok().and_then(|s| s.last_error).unwrap_or_else(|| "The last action failed.".into())),
        (_, Some("state")) => Some(FlowError::UnknownState.to_string()),
        (_, Some("server")) => Some(FlowError::WrongServer.to_string()),
        _ => None,
    };
    server_view_page(&app, &s, id, notice, error, None)
}

async fn obtain_token(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<FormMap>) -> Response {
    let s = match guard(&app, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let server = match app.store.server(id) {
        Ok(v) => v,
        Err(e) => return store_error(e),
    };
    match server.grant_type {
        GrantType::AuthorizationCode => match app.oauth.begin(id, Some("login")).await {
            // 303 so the browser GETs the provider's page.
            Ok(url) => Redirect::to(&url).into_response(),
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("Could not start: {e}")), None),
        },
        GrantType::ClientCredentials => match app.oauth.client_credentials(id).await {
            Ok(()) => {
                app.engine.wake();
                see_other(&format!("/servers/{id}?notice=obtained"))
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("No token: {e}")), None),
        },
    }
}

async fn revoke_token(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<FormMap>) -> Response {
    let s = match guard(&app, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.oauth.revoke(id).await {
        Ok(()) => see_other(&format!("/servers/{id}?notice=revoked")),
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("Revoke failed: {e}")), None),
    }
}

fn connection_view(info: &ConnectionInfo) -> Ctx {
    let usage = info.api_usage.as_ref().map(|u| format!("{} of {} daily API requests used", u.used, u.limit));
    context! { user => info.user.clone(), organization => info.organization.clone(), usage => usage, details => info.details.clone() }
}

async fn test_connection(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Form(f): Form<FormMap>) -> Response {
    let s = match guard(&app, &headers, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.oauth.test_connection(id).await {
        Ok(info) => server_view_page(&app, &s, id, None, None, Some(connection_view(&info))),
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("Test Connection failed: {e}")), None),
    }
}

async fn callback(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>, Query(q): Query<FormMap>) -> Response {
    if current(&app, &headers).is_none() {
        return to_login();
    }
    // Only a callback whose state checks out may record anything on the
    // server; the others say what was wrong through a fixed message.
    match app.oauth.callback(id, &q).await {
        Ok(()) => {
            app.engine.wake();
            see_other(&format!("/servers/{id}?notice=obtained"))
        }
        Err(FlowError::UnknownState) => see_other(&format!("/servers/{id}?problem=state")),
        Err(FlowError::WrongServer) => see_other(&format!("/servers/{id}?problem=server")),
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
        let errors = validate_server(&form(&[("server_url", "http://login.salesforce.com"), ("grant_type", "client_credentials"), ("scope", "api;drop")]), &plugins, false).unwrap_err();
        assert_eq!(errors["name"], "Enter a name.");
        assert!(errors["server_url"].contains("is not allowed: plain http:// is only allowed to loopback"), "{}", errors["server_url"]);
        assert!(errors["client_id"].contains("consumer key"));
        assert!(errors["client_secret"].starts_with("Enter the Client Secret"));
        assert!(errors.contains_key("scope"));
        let path = validate_server(&form(&[("server_url", "https://login.salesforce.com/home")]), &plugins, false).unwrap_err();
        assert!(path["server_url"].contains("login host only"));
        let ok = validate_server(&form(&[("name", "SF"), ("server_url", "http://127.0.0.1:4000/services/oauth2"), ("client_id", "3MVG9"), ("scope", "api refresh_token")]), &plugins, true).unwrap();
        assert_eq!((ok.plugin.as_str(), ok.grant_type, ok.client_secret), ("salesforce", GrantType::AuthorizationCode, None), "an edit keeps the saved secret");
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(format_time(1_795_000_000_123), "2026-11-18 11:06:40 UTC");
    }
}
