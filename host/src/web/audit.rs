//! The audit trail's page and exports, and the one call every handler uses
//! to record an admin action (a failure to record is logged, never shown as
//! the action's failure).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use serde_json::Value;

use super::error::WebError;
use super::session::Admin;
use super::{App, FormMap};
use crate::store::{AuditEntry, AuditFilter};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/audit", get(page)).route("/audit.csv", get(csv)).route("/audit.json", get(json))
}

/// Records an admin action.
pub(super) async fn record(app: &App, actor: &str, action: &str, subject: &str, detail: Value) {
    if let Err(e) = app.store.audit(actor, action, subject, detail).await {
        tracing::error!(actor, action, subject, error = %e, "the audit trail could not record an action");
    }
}

const PAGE: usize = 100;
const EXPORT_MAX: usize = 100_000;

fn filter(q: &FormMap, now: i64) -> AuditFilter {
    let text = |k: &str| q.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    AuditFilter {
        actor: text("actor"),
        action: text("action"),
        since: text("days").and_then(|d| d.parse::<i64>().ok()).filter(|d| *d > 0).map(|d| now - d * 86_400_000),
        before: text("before").and_then(|b| b.parse().ok()),
    }
}

async fn page(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let entries = app.store.audit_entries(&filter(&q, crate::store::now_ms()), PAGE).await?;
    let next = (entries.len() == PAGE).then(|| entries.last().map(|e| e.id)).flatten();
    let query: Vec<(String, String)> = q.iter().filter(|(k, v)| *k != "before" && !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(app.render("audit.html", context! { admin => s.username, csrf => s.csrf_token, entries => entries, next => next, q => q, query => query, nav => "audit" }))
}

async fn rows(app: &App, q: &FormMap) -> Result<Vec<AuditEntry>, WebError> {
    Ok(app.store.audit_entries(&filter(q, crate::store::now_ms()), EXPORT_MAX).await?)
}

async fn csv(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(_): Admin) -> Result<Response, WebError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let fail = |e: ::csv::Error| WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    w.write_record(["id", "at", "actor", "action", "subject", "detail"]).map_err(fail)?;
    for e in rows(&app, &q).await? {
        w.write_record([e.id.to_string(), crate::domain::format_time(e.at), e.actor, e.action, e.subject, e.detail.to_string()]).map_err(fail)?;
    }
    let body = w.into_inner().map_err(|e| WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\"")], body).into_response())
}

async fn json(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(_): Admin) -> Result<Response, WebError> {
    Ok(axum::Json(rows(&app, &q).await?).into_response())
}
