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
use super::server_form::{default_hosts, form_fields, help, read_server};
use super::session::{Admin, AdminForm};
use super::{App, FormMap, audit, format_time, see_other};
use crate::domain::{Server, TokenStatus};
use crate::oauth::FlowError;
use crate::store::{KeyRole, NewSigningKey, PendingOrigin, Session, StoreError};
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
        .route("/servers/{id}/certificate/{role}", get(download_certificate))
        .route("/servers/{id}/certificate/next", post(generate_next_key))
        .route("/servers/{id}/certificate/switch", post(switch_key))
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
    jwt: bool,
    jwt_subject: Option<String>,
    token_url: Option<String>,
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
        grant_label: crate::domain::grant_label(s.grant_type),
        authorization_code: s.grant_type == GrantType::AuthorizationCode,
        jwt: s.grant_type == GrantType::JwtBearer,
        jwt_subject: s.jwt_subject.clone(),
        token_url: s.token_url.clone(),
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
    let views: Vec<ServerView> = app.store.servers().await?.iter().map(view).collect();
    Ok(app.render("servers.html", context! { admin => s.username, csrf => s.csrf_token, servers => views, notice => notice }))
}

/// The add form; `?plugin=` picks the plugin whose words and Server URL
/// choices it shows (the plugin field reloads it so when JavaScript is on).
async fn new_server(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Response {
    let values: FormMap = q.get("plugin").filter(|p| app.plugins.contains(p)).map(|p| ("plugin".to_string(), p.clone())).into_iter().collect();
    let fields = form_fields(&app, &values, &HashMap::new(), false);
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

async fn create_server(State(app): State<Arc<App>>, AdminForm { session: s, form: mut f }: AdminForm) -> Result<Response, WebError> {
    let input = match read_server(&app, &mut f, false) {
        Ok(i) => i,
        Err(errors) => return Ok(form_again(&app, &s, None, &f, errors, false)),
    };
    match app.store.create_server(&input).await {
        Ok(id) => {
            audit::record(&app, &s.username, "server.create", &input.name, server_detail(&input)).await;
            ensure_signing_key(&app, id).await?;
            Ok(see_other(&format!("/servers/{id}?notice=created")))
        }
        Err(StoreError::Conflict(m)) => Ok(form_again(&app, &s, None, &f, HashMap::from([("name".to_string(), format!("{m}; choose another name."))]), false)),
        Err(e) => Err(e.into()),
    }
}

async fn edit_server(State(app): State<Arc<App>>, Path(id): Path<i64>, Admin(s): Admin) -> Result<Response, WebError> {
    let server = app.store.server(id).await?;
    let values: FormMap = [
        ("name", server.name.clone()),
        ("description", server.description.clone()),
        ("server_url", server.server_url.clone()),
        ("client_id", server.client_id.clone()),
        ("grant_type", crate::domain::grant_str(server.grant_type).into()),
        ("jwt_subject", server.jwt_subject.clone().unwrap_or_default()),
        ("token_url", server.token_url.clone().unwrap_or_default()),
        ("scope", server.scope.clone().unwrap_or_default()),
        // Hosts that are just the Server URL's defaults are left empty, so
        // that picking another URL (another My Domain) takes its own.
        ("api_hosts", if server.api_hosts == default_hosts(&server.server_url, app.plugin_map.get(&server.plugin).map(|p| p.metadata())) { String::new() } else { server.api_hosts.join(" ") }),
        ("plugin", server.plugin.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let fields = form_fields(&app, &values, &HashMap::new(), server.has_secret);
    Ok(app.render("server_form.html", context! { admin => s.username, csrf => s.csrf_token, fields => fields, id => id, form => context!{ name => server.name } }))
}

async fn update_server(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, form: mut f }: AdminForm) -> Result<Response, WebError> {
    let has_secret = app.store.server(id).await?.has_secret;
    let input = match read_server(&app, &mut f, has_secret) {
        Ok(i) => i,
        Err(errors) => return Ok(form_again(&app, &s, Some(id), &f, errors, has_secret)),
    };
    let before = app.store.server(id).await?;
    match app.store.update_server(id, &input).await {
        Ok(saved) => {
            let detail = serde_json::json!({
                "before": {"name": before.name, "server_url": before.server_url, "client_id": before.client_id, "grant_type": crate::domain::grant_str(before.grant_type), "scope": before.scope, "api_hosts": before.api_hosts, "plugin": before.plugin},
                "after": server_detail(&input),
                "tokens_cleared": saved.tokens_cleared,
            });
            audit::record(&app, &s.username, "server.update", &input.name, detail).await;
            ensure_signing_key(&app, id).await?;
            Ok(see_other(&format!("/servers/{id}?notice={}", if saved.tokens_cleared { "saved_cleared" } else { "saved" })))
        }
        Err(StoreError::Conflict(m)) => Ok(form_again(&app, &s, Some(id), &f, HashMap::from([("name".to_string(), format!("{m}; choose another name."))]), has_secret)),
        Err(e) => Err(e.into()),
    }
}

async fn delete_server(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let server = app.store.server(id).await?;
    let users: Vec<String> = app.store.targets().await?.into_iter().filter(|t| t.server_id == id).map(|t| t.name).collect();
    if !users.is_empty() {
        let message = format!("The server '{}' is used by the target(s) {}; delete them or point them at another server first.", server.name, users.join(", "));
        return server_view_page(&app, &f.session, id, None, Some(message), None).await.map(|mut r| {
            *r.status_mut() = StatusCode::CONFLICT;
            r
        });
    }
    app.store.delete_server(id).await?;
    audit::record(&app, &f.session.username, "server.delete", &server.name, serde_json::json!({"server_url": server.server_url, "plugin": server.plugin})).await;
    Ok(see_other("/servers?notice=deleted"))
}

/// What the audit trail keeps of a server's configuration (the secret
/// only as "given or not").
fn server_detail(input: &crate::domain::ServerInput) -> serde_json::Value {
    serde_json::json!({
        "name": input.name, "server_url": input.server_url, "client_id": input.client_id, "grant_type": crate::domain::grant_str(input.grant_type),
        "jwt_subject": input.jwt_subject, "token_url": input.token_url, "scope": input.scope, "api_hosts": input.api_hosts, "plugin": input.plugin, "client_secret_changed": input.client_secret.is_some(),
    })
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Server added. Register the Redirect URI below with the provider's app, then click Obtain New Token.",
        "saved" => "Changes saved.",
        "saved_cleared" => "Changes saved. The Server URL, Client ID, Client Secret, API hosts or plugin changed, so the stored tokens were cleared: obtain a new token.",
        "obtained" => "Access Token Obtained.",
        "revoked" => "The token was revoked at the provider and forgotten here.",
        "deleted" => "Server deleted.",
        "next_key" => "The next certificate was made. Download it, upload it to the provider's app, then click Switch to it: the current one keeps working until then.",
        "switched" => "Switched: the provider took the new certificate, and the old key was forgotten.",
        _ => return None,
    })
}

async fn server_view_page(app: &App, s: &Session, id: i64, notice: Option<&str>, error: Option<String>, connection: Option<Ctx>) -> Result<Response, WebError> {
    let server = app.store.server(id).await?;
    Ok(app.render(
        "server.html",
        context! {
            admin => s.username.clone(), csrf => s.csrf_token.clone(), s => view(&server),
            plugin_api_hosts => app.plugin_map.get(&server.plugin).map(|p| p.metadata().api_hosts.clone()).unwrap_or_default(),
            redirect_help => help(app.plugin_map.get(&server.plugin).map(|p| p.metadata()), "redirect-uri"),
            redirect_uri => app.oauth.redirect_uri(id), notice => notice, error => error, connection => connection,
            waiting => app.store.jobs_waiting_for(id).await.unwrap_or(0),
            keys => key_views(app, id).await?,
            subject_help => help(app.plugin_map.get(&server.plugin).map(|p| p.metadata()), "subject"),
            certificate_help => help(app.plugin_map.get(&server.plugin).map(|p| p.metadata()), "certificate"),
        },
    ))
}

async fn server_page(State(app): State<Arc<App>>, Path(id): Path<i64>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let notice = q.get("notice").and_then(|n| notice_text(n));
    let error = match (q.get("notice").map(String::as_str), q.get("problem").map(String::as_str)) {
        (Some("failed"), _) => Some(app.store.server(id).await.ok().and_then(|s| s.last_error).unwrap_or_else(|| "The last action failed.".into())),
        (_, Some("state")) => Some(FlowError::UnknownState.to_string()),
        (_, Some("server")) => Some(FlowError::WrongServer.to_string()),
        (_, Some("session")) => Some(FlowError::OtherSession.to_string()),
        _ => None,
    };
    let error = error.or_else(|| q.get("test_error").cloned());
    // Test Connection's result, handed over through the session (PRG).
    let connection = q.get("tested").and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()).map(|v| Ctx::from_serialize(&v));
    server_view_page(&app, &s, id, notice, error, connection).await
}

/// What ties an Obtain New Token to the browser session that started it:
/// the hash of the session's CSRF token (secret, and one per session).
fn session_binding(s: &Session) -> String {
    crate::secrets::token_hash(&s.csrf_token)
}

async fn obtain_token(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    // The page's script sets `popup` when it opened the provider in a window.
    let popup = f.get("popup").is_some_and(|v| v == "1");
    match app.store.server(id).await?.grant_type {
        GrantType::AuthorizationCode => match app.oauth.begin(id, Some("login"), PendingOrigin { session: &session_binding(&s), popup, admin: None }).await {
            // 303 so the browser GETs the provider's page.
            Ok(url) => {
                audit::record(&app, &s.username, "server.obtain-token.start", &app.store.server(id).await?.name, serde_json::json!({})).await;
                Ok(Redirect::to(&url).into_response())
            }
            // In the popup, the error goes to the server page, which shows
            // it as the last error, and the popup closes.
            Err(e) if popup => {
                let _ = app.store.set_error(id, &format!("Could not start: {e}"), None).await;
                Ok(popup_done(&app, &s, id, &format!("/servers/{id}?notice=failed")).await)
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("Could not start: {e}")), None).await,
        },
        GrantType::ClientCredentials => match app.oauth.client_credentials(id).await {
            Ok(()) => {
                audit::record(&app, &s.username, "server.obtain-token", &app.store.server(id).await?.name, serde_json::json!({"grant_type": "client_credentials"})).await;
                app.engine.tokens_arrived();
                Ok(see_other(&format!("/servers/{id}?notice=obtained")))
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("No token: {e}")), None).await,
        },
        GrantType::StaticBearer => match app.oauth.static_bearer(id).await {
            Ok(_) => {
                audit::record(&app, &s.username, "server.obtain-token", &app.store.server(id).await?.name, serde_json::json!({"grant_type": "static_bearer"})).await;
                app.engine.tokens_arrived();
                Ok(see_other(&format!("/servers/{id}?notice=obtained")))
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("No token: {e}")), None).await,
        },
        GrantType::JwtBearer => match app.oauth.jwt_bearer(id).await {
            Ok(_) => {
                audit::record(&app, &s.username, "server.obtain-token", &app.store.server(id).await?.name, serde_json::json!({"grant_type": "jwt_bearer"})).await;
                app.engine.tokens_arrived();
                Ok(see_other(&format!("/servers/{id}?notice=obtained")))
            }
            Err(e) => server_view_page(&app, &s, id, None, Some(format!("No token: {e}")), None).await,
        },
    }
}

async fn use_refresh_token(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let pasted = f.get("refresh_token").map(|t| t.trim().to_string()).unwrap_or_default();
    if pasted.is_empty() {
        return server_view_page(&app, &s, id, None, Some("Paste a refresh token first.".into()), None).await.map(|mut r| {
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        });
    }
    let name = app.store.server(id).await?.name;
    match app.oauth.use_refresh_token(id, &pasted).await {
        Ok(()) => {
            audit::record(&app, &s.username, "server.use-refresh-token", &name, serde_json::json!({})).await;
            app.engine.tokens_arrived();
            Ok(see_other(&format!("/servers/{id}?notice=obtained")))
        }
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("The refresh token was refused, and nothing was stored: {e}")), None).await.map(|mut r| {
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }),
    }
}

async fn revoke_token(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    match app.oauth.revoke(id).await {
        Ok(()) => {
            audit::record(&app, &s.username, "server.revoke-token", &app.store.server(id).await?.name, serde_json::json!({})).await;
            Ok(see_other(&format!("/servers/{id}?notice=revoked")))
        }
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("Revoke failed: {e}")), None).await,
    }
}

async fn test_connection(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let name = app.store.server(id).await?.name;
    // As the admin, with their own token, when they hold one.
    let own = app.store.admin_tokens(s.admin_id, id).await?.is_some();
    let result = if own { app.oauth.check_personal(id, s.admin_id).await } else { app.oauth.test_connection(id).await };
    match result {
        Ok(info) => {
            audit::record(&app, &s.username, "server.test-connection", &name, serde_json::json!({"ok": true, "problems": info.advice.len(), "own_token": own})).await;
            let usage = info.api_usage.as_ref().map(|u| format!("{} of {} daily API requests used", u.used, u.limit));
            let advice: Vec<_> = info.advice.iter().map(|a| serde_json::json!({"problem": a.problem, "fix": a.fix})).collect();
            let view = serde_json::json!({"user": info.user, "organization": info.organization, "usage": usage, "details": info.details, "advice": advice, "own": own});
            Ok(see_other(&format!("/servers/{id}?tested={}", super::query_value(&view.to_string()))))
        }
        Err(e) => {
            audit::record(&app, &s.username, "server.test-connection", &name, serde_json::json!({"ok": false, "error": e.to_string()})).await;
            Ok(see_other(&format!("/servers/{id}?test_error={}", super::query_value(&format!("Test Connection failed: {e}")))))
        }
    }
}

async fn callback(State(app): State<Arc<App>>, Path(id): Path<i64>, Query(q): Query<FormMap>, Admin(s): Admin) -> Response {
    // Only a callback whose state checks out, from the session that started
    // the sign-in, may record anything on the server; the others say what
    // was wrong through a fixed message.
    let (origin, result) = app.oauth.callback_from(id, &q, &session_binding(&s)).await;
    if origin.admin.is_some() {
        // An admin's own token: their page says what happened.
        let name = app.store.server(id).await.map(|sv| sv.name).unwrap_or_default();
        let outcome = match &result {
            Ok(()) => "generated".to_string(),
            Err(e) => format!("failed&test_error={}", super::query_value(&format!("{}: {e}", name_of(&app, id).await))),
        };
        audit::record(&app, &s.username, "admin-token.generate", &name, serde_json::json!({"ok": result.is_ok()})).await;
        return see_other(&format!("/account/provider-tokens?notice={outcome}"));
    }
    let popup = origin.popup;
    let next = match result {
        Ok(()) => {
            let name = app.store.server(id).await.map(|sv| sv.name).unwrap_or_default();
            audit::record(&app, &s.username, "server.obtain-token", &name, serde_json::json!({"grant_type": "authorization_code"})).await;
            app.engine.tokens_arrived();
            format!("/servers/{id}?notice=obtained")
        }
        Err(FlowError::UnknownState) => format!("/servers/{id}?problem=state"),
        Err(FlowError::WrongServer) => format!("/servers/{id}?problem=server"),
        Err(FlowError::OtherSession) => format!("/servers/{id}?problem=session"),
        Err(_) => format!("/servers/{id}?notice=failed"),
    };
    if popup {
        return popup_done(&app, &s, id, &next).await;
    }
    see_other(&next)
}

/// The page the popup window ends on: it tells the server page to update
/// (the outcome waits in the session, as a redirect would have left it),
/// then closes.
async fn popup_done(app: &App, s: &Session, id: i64, next: &str) -> Response {
    let (path, query) = next.split_once('?').unwrap_or((next, ""));
    if !query.is_empty() {
        let _ = app.store.set_flash(&s.token_hash, query).await;
    }
    app.render("oauth_done.html", context! { admin => s.username.clone(), next => path, server => id })
}

/// A JWT bearer server gets its first key as soon as it is saved, so that
/// its page has a certificate to download at once.
async fn ensure_signing_key(app: &App, id: i64) -> Result<(), WebError> {
    let server = app.store.server(id).await?;
    if server.grant_type != GrantType::JwtBearer || !app.store.signing_keys(id).await?.is_empty() {
        return Ok(());
    }
    new_key(app, id, KeyRole::Current).await
}

async fn new_key(app: &App, id: i64, role: KeyRole) -> Result<(), WebError> {
    let label = app.store.server(id).await?.name;
    let generated = tokio::task::spawn_blocking(move || crate::certificates::generate(&label))
        .await
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let key = NewSigningKey {
        private_key_pem: &generated.private_key_pem,
        certificate: &generated.certificate_pem,
        fingerprint: &generated.fingerprint,
        not_after: generated.not_after_ms,
    };
    app.store.put_signing_key(id, role, &key).await?;
    Ok(())
}

/// A server's keys as its page shows them.
async fn key_views(app: &App, id: i64) -> Result<Vec<Ctx>, StoreError> {
    Ok(app
        .store
        .signing_keys(id).await?
        .into_iter()
        .map(|k| {
            let role = if k.role == KeyRole::Current { "current" } else { "next" };
            context! { role => role, fingerprint => k.fingerprint, expires => format_time(k.not_after), created => format_time(k.created_at) }
        })
        .collect())
}

/// `GET /servers/{id}/certificate/{current|next}.pem`: the certificate to
/// upload to the provider's app (public; the private key never leaves).
async fn download_certificate(State(app): State<Arc<App>>, Path((id, file)): Path<(i64, String)>, Admin(_): Admin) -> Result<Response, WebError> {
    let role = match file.as_str() {
        "current.pem" => KeyRole::Current,
        "next.pem" => KeyRole::Next,
        _ => return Err(WebError::new(StatusCode::NOT_FOUND, format!("no certificate named {file}"))),
    };
    let server = app.store.server(id).await?;
    let key = app.store.signing_keys(id).await?.into_iter().find(|k| k.role == role).ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, format!("the server has no {file}")))?;
    let name: String = server.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let disposition = format!("attachment; filename=\"{name}-{}.crt\"", key.fingerprint.get(..11).unwrap_or(&key.fingerprint).replace(':', ""));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-pem-file".to_string()), (axum::http::header::CONTENT_DISPOSITION, disposition)], key.certificate).into_response())
}

async fn generate_next_key(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let server = app.store.server(id).await?;
    if server.grant_type != GrantType::JwtBearer {
        return server_view_page(&app, &s, id, None, Some("Only a JWT Bearer server signs with a key.".into()), None).await;
    }
    // Without a key yet, the first one is made (current).
    let role = if app.store.signing_keys(id).await?.iter().any(|k| k.role == KeyRole::Current) { KeyRole::Next } else { KeyRole::Current };
    new_key(&app, id, role).await?;
    audit::record(&app, &s.username, "server.certificate.generate", &server.name, serde_json::json!({"role": if role == KeyRole::Next { "next" } else { "current" }})).await;
    Ok(see_other(&format!("/servers/{id}?notice=next_key")))
}

async fn switch_key(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let name = app.store.server(id).await?.name;
    match app.oauth.switch_key(id).await {
        Ok(()) => {
            audit::record(&app, &s.username, "server.certificate.switch", &name, serde_json::json!({})).await;
            app.engine.tokens_arrived();
            Ok(see_other(&format!("/servers/{id}?notice=switched")))
        }
        Err(e) => server_view_page(&app, &s, id, None, Some(format!("Not switched: {e}")), None).await,
    }
}

async fn name_of(app: &App, id: i64) -> String {
    app.store.server(id).await.map(|s| s.name).unwrap_or_else(|_| format!("server {id}"))
}
