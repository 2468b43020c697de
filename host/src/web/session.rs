//! The admin's session: the cookies, the login and logout pages, and the
//! extractors handlers take instead of checking the session themselves:
//! [`Admin`] for pages, [`AdminForm`] for POSTed forms (with the CSRF check).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;

use super::error::WebError;
use super::{App, FormMap, see_other};
use crate::auth;
use crate::store::Session;

const COOKIE: &str = "registry_session";
/// Pre-session cookie carrying the login form's CSRF token.
const LOGIN_COOKIE: &str = "registry_login";

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/login", get(login_page).post(login_submit)).route("/logout", post(logout))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn current(app: &App, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers, COOKIE)?;
    auth::session(&app.store, &token).await.ok().flatten()
}

/// A signed-in admin; without a live session the request goes to `/login`.
pub(super) struct Admin(pub Session);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Redirect> {
        current(app, &parts.headers).await.map(Admin).ok_or_else(|| {
            // Back to the page asked for after signing in.
            let asked = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            match (parts.method == axum::http::Method::GET).then(|| same_site_path(asked)).flatten() {
                Some(path) if path != "/" => Redirect::to(&format!("/login?next={}", super::query_value(path))),
                _ => Redirect::to("/login"),
            }
        })
    }
}

/// `next` if it is a path on this site (not `//host`, not `/\host`, no
/// control characters, not the login page itself); where a login may send
/// the browser on to.
fn same_site_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && !next.starts_with("/login")
        && next.len() <= 2000;
    ok.then_some(next)
}

/// A POSTed form from a signed-in admin, its CSRF token checked.
pub(super) struct AdminForm {
    pub session: Session,
    pub form: FormMap,
}

/// Why a form was refused.
pub(super) enum FormRefused {
    /// The body is not a form.
    Form(FormRejection),
    /// No live session: go and sign in.
    Login,
    /// The CSRF token is missing or wrong.
    Csrf,
}

impl IntoResponse for FormRefused {
    fn into_response(self) -> Response {
        match self {
            FormRefused::Form(r) => r.into_response(),
            FormRefused::Login => Redirect::to("/login").into_response(),
            FormRefused::Csrf => (StatusCode::FORBIDDEN, "the form expired or came from elsewhere (CSRF check failed); go back, reload and try again").into_response(),
        }
    }
}

impl FromRequest<Arc<App>> for AdminForm {
    type Rejection = FormRefused;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, FormRefused> {
        let session = current(app, req.headers()).await;
        // A body that is not a form is refused as such, before the session.
        let Form(form) = Form::<FormMap>::from_request(req, app).await.map_err(FormRefused::Form)?;
        let session = session.ok_or(FormRefused::Login)?;
        if !auth::csrf_ok(&session, form.get("csrf").map(String::as_str).unwrap_or("")) {
            return Err(FormRefused::Csrf);
        }
        Ok(AdminForm { session, form })
    }
}

/// The login form, with a fresh CSRF token in a short-lived pre-session cookie.
fn login_form(app: &App, username: &str, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_password();
    let mut r = app.render("login.html", context! { username => username, next => next, error => error, csrf => token.clone() });
    *r.status_mut() = status;
    let mut c = format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    if app.secure_cookies {
        c.push_str("; Secure");
    }
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&c).expect("ascii"));
    r
}

async fn login_page(State(app): State<Arc<App>>, Query(q): Query<FormMap>, admin: Result<Admin, Redirect>) -> Response {
    let next = q.get("next").and_then(|n| same_site_path(n)).unwrap_or("");
    if admin.is_ok() {
        return see_other(if next.is_empty() { "/servers" } else { next });
    }
    login_form(&app, "", next, None, StatusCode::OK)
}

/// How long a login waits for a free password check before answering 503:
/// a flood must not queue real logins behind it without bound.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn retry_after(mut r: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

async fn login_submit(State(app): State<Arc<App>>, headers: HeaderMap, extensions: Extensions, Form(f): Form<FormMap>) -> Result<Response, WebError> {
    let username = f.get("username").cloned().unwrap_or_default();
    let next = f.get("next").and_then(|n| same_site_path(n)).unwrap_or("").to_string();
    let given = f.get("csrf").map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected.len() != given.len() || expected.bytes().zip(given.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return Ok(login_form(&app, &username, &next, Some("The login form expired; please try again."), StatusCode::FORBIDDEN));
    }
    let client = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    if let Err(wait) = app.throttle.check(client, &username, Instant::now()) {
        let message = format!("Too many wrong passwords. Try again in {} s.", wait.as_secs().max(1));
        return Ok(retry_after(login_form(&app, &username, &next, Some(&message), StatusCode::TOO_MANY_REQUESTS), wait));
    }
    let password = f.get("password").cloned().unwrap_or_default();
    let permit = match tokio::time::timeout(PASSWORD_CHECK_WAIT, app.password_checks.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(WebError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down")),
        Err(_) => {
            let busy = login_form(&app, &username, &next, Some("Too many logins at once; try again in a moment."), StatusCode::SERVICE_UNAVAILABLE);
            return Ok(retry_after(busy, std::time::Duration::from_secs(1)));
        }
    };
    // argon2 runs off the async threads (in `auth`).
    let result = auth::login(&app.store, &username, &password).await;
    drop(permit);
    match result? {
        Some(token) => {
            app.throttle.succeeded(client, &username);
            super::audit::record(&app, &username, "admin.login", &username, serde_json::json!({"client": client.to_string()})).await;
            let mut cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", auth::SESSION_TTL_MS / 1000);
            if app.secure_cookies {
                cookie.push_str("; Secure");
            }
            let mut r = see_other(if next.is_empty() { "/servers" } else { &next });
            r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii"));
            Ok(r)
        }
        None => {
            app.throttle.failed(client, &username, Instant::now());
            super::audit::record(&app, &username, "admin.login-failed", &username, serde_json::json!({"client": client.to_string()})).await;
            Ok(login_form(&app, &username, &next, Some("Wrong username or password."), StatusCode::UNAUTHORIZED))
        }
    }
}

/// Ends the session when the form is genuine; clears the cookie either way.
async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, form: Result<AdminForm, FormRefused>) -> Response {
    match form {
        Err(FormRefused::Form(r)) => return r.into_response(),
        Ok(f) => {
            if let Some(token) = cookie(&headers, COOKIE) {
                let _ = auth::logout(&app.store, &token).await;
            }
            super::audit::record(&app, &f.session.username, "admin.logout", &f.session.username, serde_json::json!({})).await;
        }
        // A logout without the session's CSRF token changes nothing: neither
        // the session nor this browser's cookie.
        Err(refused @ FormRefused::Csrf) => return refused.into_response(),
        // No live session. A cross-site POST carries no (SameSite=Lax)
        // cookie: clear nothing then, or a forged form could sign us out.
        Err(FormRefused::Login) if cookie(&headers, COOKIE).is_none() => return see_other("/login"),
        Err(FormRefused::Login) => {}
    }
    let mut r = see_other("/login");
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("registry_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"));
    r
}

#[cfg(test)]
mod tests {
    use super::same_site_path;

    #[test]
    fn a_login_only_returns_to_paths_on_this_site() {
        assert_eq!(same_site_path("/people?q=ada"), Some("/people?q=ada"));
        for bad in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "evil", "/login?next=/x", "/a\nb", ""] {
            assert_eq!(same_site_path(bad), None, "{bad}");
        }
    }
}

/// Parameters a redirect hands to the next page; kept in the session
/// instead of the URL, so a reload or a shared link does not repeat them.
const FLASH_PARAMS: &[&str] = &["notice", "problem", "tested", "test_error", "warn"];

/// Post/Redirect/Get without messages in the URL: a redirect's `notice=…`
/// (and the like) goes into the session, and the next GET of that session
/// gets it back as if it were in its query, once.
pub(super) async fn flash(State(app): State<Arc<App>>, mut request: Request, next: axum::middleware::Next) -> Response {
    let session = cookie(request.headers(), COOKIE).map(|t| crate::secrets::token_hash(&t));
    if request.method() == axum::http::Method::GET {
        // These parameters only ever come from the session: in a link they
        // are dropped, so nobody can put a made-up message (or Test
        // Connection "advice") on an admin's page.
        let uri = request.uri();
        let kept: Vec<&str> = uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty() && !is_flash_param(p)).collect();
        let flash = match session.as_ref() {
            Some(hash) => app.store.take_flash(hash).await.ok().flatten(),
            None => None,
        };
        let query: Vec<&str> = kept.into_iter().chain(flash.as_deref()).collect();
        let joined = if query.is_empty() { uri.path().to_string() } else { format!("{}?{}", uri.path(), query.join("&")) };
        if let Ok(u) = joined.parse() {
            *request.uri_mut() = u;
        }
    }
    let mut response = next.run(request).await;
    let Some(hash) = session.filter(|_| response.status().is_redirection()) else { return response };
    let Some(location) = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string) else { return response };
    if !location.starts_with('/') {
        return response;
    }
    let (rest, fragment) = location.split_once('#').map_or((location.as_str(), None), |(a, b)| (a, Some(b)));
    let Some((path, query)) = rest.split_once('?') else { return response };
    let (flashed, kept): (Vec<&str>, Vec<&str>) = query.split('&').partition(|p| is_flash_param(p));
    if flashed.is_empty() || app.store.set_flash(&hash, &flashed.join("&")).await.is_err() {
        return response;
    }
    let mut to = path.to_string();
    if !kept.is_empty() {
        to = format!("{to}?{}", kept.join("&"));
    }
    if let Some(f) = fragment {
        to = format!("{to}#{f}");
    }
    if let Ok(v) = HeaderValue::from_str(&to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn is_flash_param(pair: &str) -> bool {
    FLASH_PARAMS.iter().any(|f| pair.split('=').next() == Some(*f))
}
