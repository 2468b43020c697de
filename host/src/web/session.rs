//! The admin's session: the cookies, the login and logout pages, and the
//! extractors handlers take instead of checking the session themselves:
//! [`Admin`] for pages, [`AdminForm`] for POSTed forms (with the CSRF check).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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

fn current(app: &App, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers, COOKIE)?;
    auth::session(&app.store, &token).ok().flatten()
}

/// A signed-in admin; without a live session the request goes to `/login`.
pub(super) struct Admin(pub Session);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Redirect> {
        current(app, &parts.headers).map(Admin).ok_or_else(|| Redirect::to("/login"))
    }
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
        let session = current(app, req.headers());
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

async fn login_page(State(app): State<Arc<App>>, admin: Result<Admin, Redirect>) -> Response {
    if admin.is_ok() {
        return see_other("/servers");
    }
    login_form(&app, "", None, StatusCode::OK)
}

async fn login_submit(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<FormMap>) -> Result<Response, WebError> {
    let username = f.get("username").cloned().unwrap_or_default();
    let given = f.get("csrf").map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected.len() != given.len() || expected.bytes().zip(given.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return Ok(login_form(&app, &username, Some("The login form expired; please try again."), StatusCode::FORBIDDEN));
    }
    let password = f.get("password").cloned().unwrap_or_default();
    let store = app.store.clone();
    let (u, p) = (username.clone(), password);
    let Ok(_permit) = app.password_checks.acquire().await else {
        return Err(WebError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    };
    let result = tokio::task::spawn_blocking(move || auth::login(&store, &u, &p)).await;
    match result.map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?? {
        Some(token) => {
            let mut cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}", auth::SESSION_TTL_MS / 1000);
            if app.secure_cookies {
                cookie.push_str("; Secure");
            }
            let mut r = see_other("/servers");
            r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii"));
            Ok(r)
        }
        None => Ok(login_form(&app, &username, Some("Wrong username or password."), StatusCode::UNAUTHORIZED)),
    }
}

/// Ends the session when the form is genuine; clears the cookie either way.
async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, form: Result<AdminForm, FormRefused>) -> Response {
    match form {
        Err(FormRefused::Form(r)) => return r.into_response(),
        Ok(_) => {
            if let Some(token) = cookie(&headers, COOKIE) {
                let _ = auth::logout(&app.store, &token);
            }
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
