//! The admins: the list, adding one, and deleting one. Deleting an admin
//! revokes their own provider tokens at the provider first, ends their
//! sessions and leaves their on-demand jobs to the integration token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, FormMap, audit, format_time, see_other};
use crate::auth::{self, MIN_PASSWORD_LEN};
use crate::store::{Session, StoreError};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/admins", get(page).post(add)).route("/admins/{id}/delete", post(delete))
}

const NOTICES: &[(&str, &str)] = &[("added", "Admin added."), ("deleted", "Admin deleted; their provider tokens were revoked and their sessions ended.")];

async fn render(app: &App, s: &Session, notice: Option<&str>, error: Option<String>, status: StatusCode) -> Result<Response, WebError> {
    let mut admins = Vec::new();
    for (id, username, created) in app.store.admins().await? {
        let tokens = app.store.admin_token_list(id).await.map(|t| t.len()).unwrap_or(0);
        admins.push(context! { id => id, username => username, created => format_time(created), tokens => tokens, me => id == s.admin_id });
    }
    let mut r = app.render(
        "admins.html",
        context! { admin => s.username.clone(), csrf => s.csrf_token.clone(), nav => "account", admins => admins, notice => notice, error => error, min_password => MIN_PASSWORD_LEN },
    );
    *r.status_mut() = status;
    Ok(r)
}

async fn page(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let notice = q.get("notice").and_then(|n| NOTICES.iter().find(|(k, _)| k == n)).map(|(_, t)| *t);
    render(&app, &s, notice, None, StatusCode::OK).await
}

async fn add(State(app): State<Arc<App>>, f: AdminForm) -> Result<Response, WebError> {
    let username = f.form.get("username").map(|u| u.trim().to_string()).unwrap_or_default();
    let password = f.form.get("password").cloned().unwrap_or_default();
    // argon2 runs off the async threads (in `auth`).
    match auth::create_admin(&app.store, &username, &password).await {
        Ok(_) => {
            audit::record(&app, &f.session.username, "admin.create", &username, serde_json::json!({})).await;
            Ok(see_other("/admins?notice=added"))
        }
        Err(auth::AdminError::Store(StoreError::Conflict(m))) => render(&app, &f.session, None, Some(m), StatusCode::CONFLICT).await,
        Err(auth::AdminError::Store(e)) => Err(e.into()),
        Err(e) => render(&app, &f.session, None, Some(e.to_string()), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn delete(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    if id == f.session.admin_id {
        return render(&app, &f.session, None, Some("You cannot delete yourself; another admin can.".into()), StatusCode::CONFLICT).await;
    }
    let username = app.store.admins().await?.into_iter().find(|a| a.0 == id).map(|a| a.1).ok_or_else(|| WebError::from(StoreError::NotFound(format!("admin {id}"))))?;
    if app.store.admin_count().await? <= 1 {
        return render(&app, &f.session, None, Some("The last admin cannot be deleted.".into()), StatusCode::CONFLICT).await;
    }
    // Their tokens die with them: revoked at the provider, then forgotten.
    let unrevoked = app.oauth.revoke_all_personal(id).await.map_err(|e| WebError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    for (server, why) in &unrevoked {
        tracing::warn!(admin = %username, server, %why, "an admin's token could not be revoked at the provider; it is forgotten here");
    }
    match app.store.delete_admin(id).await {
        Ok(()) => {}
        Err(StoreError::Conflict(m)) => return render(&app, &f.session, None, Some(m), StatusCode::CONFLICT).await,
        Err(e) => return Err(e.into()),
    }
    let detail = serde_json::json!({"tokens_not_revoked_at_provider": unrevoked.iter().map(|(s, w)| serde_json::json!({"server": s, "why": w})).collect::<Vec<_>>()});
    audit::record(&app, &f.session.username, "admin.delete", &username, detail).await;
    Ok(see_other("/admins?notice=deleted"))
}
