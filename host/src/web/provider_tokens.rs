//! The admin's own provider tokens ("Partner Info"): every OAuth2 server,
//! with the admin's Login there, Generate Token (a fresh sign-in,
//! `prompt=login`), Revoke Token, and a live Check. Holding a token is
//! never shown as its working: only a Check says that, with its time.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, FormMap, audit, format_time, query_value, see_other};
use crate::oauth::FlowError;
use registry_plugin_runtime::latest::types::GrantType;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/account/provider-tokens", get(page))
        .route("/account/provider-tokens/{server}/generate", post(generate))
        .route("/account/provider-tokens/{server}/revoke", post(revoke))
        .route("/account/provider-tokens/{server}/check", post(check))
}

const NOTICES: &[(&str, &str)] = &[
    ("generated", "Your token was generated. Check shows whether it works and who it acts as."),
    ("revoked", "Your token was revoked at the provider and forgotten here."),
    ("failed", "That did not work; nothing was stored."),
];

async fn page(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let notice = q.get("notice").and_then(|n| NOTICES.iter().find(|(k, _)| k == n)).map(|(_, t)| *t);
    let checked: Option<serde_json::Value> = q.get("tested").and_then(|t| serde_json::from_str(t).ok());
    let mine = app.store.admin_token_list(s.admin_id).await?;
    let servers: Vec<_> = app
        .store
        .servers().await?
        .into_iter()
        .map(|server| {
            let token = mine.iter().find(|t| t.server_id == server.id);
            let check = checked.as_ref().filter(|c| c["server"] == server.id).cloned();
            context! {
                id => server.id, name => server.name, plugin => server.plugin,
                personal => server.grant_type == GrantType::AuthorizationCode,
                grant => crate::domain::grant_label(server.grant_type),
                held => token.is_some(),
                usable => token.is_some_and(|t| t.usable),
                login => token.and_then(|t| t.login.clone()),
                issued => token.and_then(|t| t.issued_at).map(format_time),
                checked_at => token.and_then(|t| t.checked_at).map(format_time),
                last_error => token.and_then(|t| t.last_error.clone()),
                check => check.map(|c| minijinja::Value::from_serialize(&c)),
            }
        })
        .collect();
    Ok(app.render(
        "provider_tokens.html",
        context! { admin => s.username, csrf => s.csrf_token, nav => "account", servers => servers, notice => notice, error => q.get("test_error") },
    ))
}

async fn generate(State(app): State<Arc<App>>, Path(server): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let binding = crate::secrets::token_hash(&s.csrf_token);
    match app.oauth.begin_personal(server, s.admin_id, &binding).await {
        // 303 so the browser GETs the provider's sign-in.
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => Ok(failed(&app, server, &e).await),
    }
}

async fn failed(app: &App, server: i64, e: &FlowError) -> Response {
    let name = app.store.server(server).await.map(|s| s.name).unwrap_or_default();
    see_other(&format!("/account/provider-tokens?notice=failed&test_error={}", query_value(&format!("{name}: {e}"))))
}

async fn revoke(State(app): State<Arc<App>>, Path(server): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let name = app.store.server(server).await?.name;
    match app.oauth.revoke_personal(server, s.admin_id).await {
        Ok(()) => {
            audit::record(&app, &s.username, "admin-token.revoke", &name, serde_json::json!({})).await;
            Ok(see_other("/account/provider-tokens?notice=revoked"))
        }
        Err(e) => Ok(failed(&app, server, &e).await),
    }
}

async fn check(State(app): State<Arc<App>>, Path(server): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let result = app.oauth.check_personal(server, s.admin_id).await;
    let now = format_time(crate::store::now_ms());
    let view = match &result {
        Ok(info) => serde_json::json!({"server": server, "ok": true, "login": info.user, "at": now}),
        Err(e) => serde_json::json!({"server": server, "ok": false, "error": e.to_string(), "at": now}),
    };
    audit::record(&app, &s.username, "admin-token.check", &app.store.server(server).await?.name, serde_json::json!({"ok": result.is_ok()})).await;
    Ok(see_other(&format!("/account/provider-tokens?tested={}", query_value(&view.to_string()))))
}
