//! The admin web UI: server-rendered HTML (minijinja templates in
//! `host/templates/`), a session cookie (HttpOnly, SameSite=Lax) and a CSRF
//! token on every form (`session`), the OAuth2 server pages (`servers`),
//! people, targets, and the JSON API (`api`). Handlers fail with one error
//! type (`error`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Environment, Value as Ctx};

use crate::engine::Engine;
use crate::oauth::OAuth;
use crate::store::Store;
use registry_plugin_runtime::Plugin;

mod account;
mod admins;
mod api;
mod audit;
mod connections;
mod dashboard;
mod error;
mod groups;
mod log;
mod nodes;
mod on_demand;
mod people;
mod provider_tokens;
mod safeguards;
mod server_form;
mod servers;
mod session;
mod targets;
mod throttle;

pub use connections::{WebLimits, serve};
pub use log::to_csv as log_csv;
pub use server_form::validate_server;

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
    throttle: throttle::LoginThrottle,
    /// `Host` header values requests may carry (see [`App::allow_hosts`]).
    hosts: Vec<String>,
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
            ("oauth_done.html", include_str!("../../templates/oauth_done.html")),
            ("people.html", include_str!("../../templates/people.html")),
            ("groups.html", include_str!("../../templates/groups.html")),
            ("group.html", include_str!("../../templates/group.html")),
            ("person.html", include_str!("../../templates/person.html")),
            ("person_form.html", include_str!("../../templates/person_form.html")),
            ("targets.html", include_str!("../../templates/targets.html")),
            ("target.html", include_str!("../../templates/target.html")),
            ("target_form.html", include_str!("../../templates/target_form.html")),
            ("account.html", include_str!("../../templates/account.html")),
            ("provider_tokens.html", include_str!("../../templates/provider_tokens.html")),
            ("admins.html", include_str!("../../templates/admins.html")),
            ("dashboard.html", include_str!("../../templates/dashboard.html")),
            ("log.html", include_str!("../../templates/log.html")),
            ("audit.html", include_str!("../../templates/audit.html")),
            ("export_links.html", include_str!("../../templates/export_links.html")),
            ("preview.html", include_str!("../../templates/preview.html")),
            ("nodes.html", include_str!("../../templates/nodes.html")),
        ] {
            env.add_template(name, src).expect("templates are valid");
        }
        env.add_filter("time", |ms: i64| format_time(ms));
        // The Nodes link shows only where there are several hosts to list.
        env.add_global("shared_database", store.postgres().is_some());
        App {
            store,
            oauth,
            plugins,
            plugin_map,
            engine,
            secure_cookies,
            templates: env,
            password_checks: tokio::sync::Semaphore::new(2),
            throttle: throttle::LoginThrottle::default(),
            hosts: Vec::new(),
        }
    }

    /// Answers only requests whose `Host` is one of `hosts` (host:port as
    /// browsers send it), so a page on another site cannot reach this one
    /// through a DNS name rebound to its address. Empty: any host.
    pub fn allow_hosts(mut self, hosts: Vec<String>) -> Self {
        self.hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        self
    }

    fn render(&self, name: &str, ctx: Ctx) -> Response {
        match self.templates.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!("rendering {name}: {e:#}");
                error::WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "The page could not be shown; the server log says why.").into_response()
            }
        }
    }
}

/// The router for `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .merge(session::routes())
        .merge(servers::routes())
        .merge(people::routes())
        .merge(groups::routes())
        .merge(targets::routes())
        .merge(api::routes())
        .merge(account::routes())
        .merge(provider_tokens::routes())
        .merge(admins::routes())
        .merge(dashboard::routes())
        .merge(log::routes())
        .merge(audit::routes())
        .merge(on_demand::routes())
        .merge(safeguards::routes())
        .merge(nodes::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), session::flash))
        .layer(axum::middleware::from_fn_with_state(app.clone(), known_host))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// Unknown paths: a page that does not repeat the path.
async fn not_found() -> Response {
    error::WebError::new(StatusCode::NOT_FOUND, "There is no such page.").into_response()
}

async fn known_host(axum::extract::State(app): axum::extract::State<Arc<App>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !app.hosts.is_empty() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if !app.hosts.contains(&host) {
            // 421: this server does not answer for that name.
            return error::WebError::new(StatusCode::MISDIRECTED_REQUEST, "This host does not answer for that name; use its public URL.").into_response();
        }
    }
    next.run(request).await
}

/// What every answer carries: no script but our own file, no framing, no
/// sniffing, no referrer to other sites; and nothing kept in caches but the
/// static files (Back after logout must not show a person's page).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, if is_static { "public, max-age=300" } else { "no-store" }),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../templates/app.js"))
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../templates/app.css"))
}

/// Percent-encodes `v` for a query string ('/' may stay: RFC 3986 allows
/// it in a query).
fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

pub use crate::domain::format_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(format_time(1_795_000_000_123), "2026-11-18 11:06:40 UTC");
    }
}
