//! The signed-in admin's own page: open sessions and "sign out everywhere
//! else", the password change, and the registry's API tokens (create with
//! an optional expiry, list, revoke).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, FormMap, see_other};
use crate::auth::{self, MIN_PASSWORD_LEN, PasswordChangeError, TokenError};
use crate::store::{Session, now_ms};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/account", get(page))
        .route("/account/password", post(change_password))
        .route("/account/sessions/end", post(end_sessions))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/revoke", post(revoke_token))
}

const NOTICES: &[(&str, &str)] = &[
    ("password", "Password changed. Every other session has ended."),
    ("ended", "Every other session has ended."),
    ("revoked", "The API token is revoked."),
];

async fn render(app: &App, s: &Session, notice: Option<&str>, error: Option<&str>, new_token: Option<(&str, &str)>, status: StatusCode) -> Result<Response, WebError> {
    let now = now_ms();
    let tokens: Vec<_> = app
        .store
        .api_tokens().await?
        .into_iter()
        .map(|t| context! { state => t.state(now), name => t.name, created_at => t.created_at, last_used_at => t.last_used_at, expires_at => t.expires_at })
        .collect();
    let mut r = app.render(
        "account.html",
        context! {
            admin => s.username, csrf => s.csrf_token, sessions => app.store.session_count(s.admin_id).await?, tokens => tokens,
            notice => notice, error => error, min_password => MIN_PASSWORD_LEN,
            new_token => new_token.map(|t| t.1), new_token_name => new_token.map(|t| t.0),
        },
    );
    *r.status_mut() = status;
    Ok(r)
}

async fn page(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let notice = q.get("notice").and_then(|n| NOTICES.iter().find(|(k, _)| k == n)).map(|(_, text)| *text);
    render(&app, &s, notice, None, None, StatusCode::OK).await
}

async fn change_password(State(app): State<Arc<App>>, f: AdminForm) -> Result<Response, WebError> {
    let field = |k: &str| f.form.get(k).cloned().unwrap_or_default();
    let (current, new, confirm) = (field("current"), field("new"), field("confirm"));
    // Two argon2 runs, off the async threads (in `auth`).
    match auth::change_password(&app.store, &f.session, &current, &new, &confirm).await {
        Ok(()) => {
            super::audit::record(&app, &f.session.username, "admin.password-change", &f.session.username, serde_json::json!({"other_sessions_ended": true})).await;
            Ok(see_other("/account?notice=password"))
        }
        Err(PasswordChangeError::Store(e)) => Err(e.into()),
        Err(e) => render(&app, &f.session, None, Some(&e.to_string()), None, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn end_sessions(State(app): State<Arc<App>>, f: AdminForm) -> Result<Response, WebError> {
    let n = auth::end_other_sessions(&app.store, &f.session).await?;
    super::audit::record(&app, &f.session.username, "admin.sign-out-everywhere", &f.session.username, serde_json::json!({"sessions_ended": n})).await;
    Ok(see_other("/account?notice=ended"))
}

async fn create_token(State(app): State<Arc<App>>, f: AdminForm) -> Result<Response, WebError> {
    let name = f.form.get("name").map(|n| n.trim().to_string()).unwrap_or_default();
    let days = match f.form.get("expires_in_days").map(|d| d.trim()).filter(|d| !d.is_empty()) {
        None => Ok(None),
        Some(d) => d.parse::<u32>().map(Some).map_err(|_| TokenError::BadExpiry),
    };
    let made = match days {
        Ok(days) => auth::create_api_token(&app.store, &name, days).await,
        Err(e) => Err(e),
    };
    match made {
        // Shown once, on this answer (never cached: no-store), not behind a redirect.
        Ok(token) => {
            super::audit::record(&app, &f.session.username, "api-token.create", &name, serde_json::json!({"expires_in_days": f.form.get("expires_in_days")})).await;
            render(&app, &f.session, Some("API token created. Copy it now: it is not shown again."), None, Some((&name, &token)), StatusCode::OK).await
        }
        Err(TokenError::Store(crate::store::StoreError::Conflict(m))) => render(&app, &f.session, None, Some(&format!("name: {m}")), None, StatusCode::CONFLICT).await,
        Err(TokenError::Store(e)) => Err(e.into()),
        Err(e) => render(&app, &f.session, None, Some(&e.to_string()), None, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn revoke_token(State(app): State<Arc<App>>, f: AdminForm) -> Result<Response, WebError> {
    let name = f.form.get("name").cloned().unwrap_or_default();
    if !app.store.revoke_api_token(&name).await? {
        return Err(WebError::new(StatusCode::NOT_FOUND, "there is no active API token of that name"));
    }
    tracing::info!(admin = %f.session.username, token = %name, "API token revoked");
    super::audit::record(&app, &f.session.username, "api-token.revoke", &name, serde_json::json!({})).await;
    Ok(see_other("/account?notice=revoked"))
}
