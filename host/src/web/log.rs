//! The provisioning log: every attempt across people and targets, filtered
//! by target, outcome, action, person and time, paged by cursor, exported
//! as CSV or JSON (also in the JSON API); and "retry failed only".

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;

use super::api::ApiClient;
use super::error::{Api, WebError};
use super::session::{Admin, AdminForm};
use super::{App, FormMap, audit, see_other};
use crate::store::{LogEntry, LogFilter};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/log", get(page))
        .route("/log.csv", get(csv))
        .route("/log.json", get(json))
        .route("/api/v1/log", get(api))
        .route("/targets/{id}/retry-failed", post(retry_failed))
}

const PAGE: usize = 100;
const EXPORT_MAX: usize = 100_000;

/// The filter a query string asks for (unknown values are ignored, not errors:
/// a filter link is never a dead end).
pub(super) fn filter(q: &FormMap, now: i64) -> LogFilter {
    let text = |k: &str| q.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    LogFilter {
        target: text("target").and_then(|t| t.parse().ok()),
        ok: text("outcome").and_then(|o| match o.as_str() {
            "ok" => Some(true),
            "failed" => Some(false),
            _ => None,
        }),
        action: text("action"),
        person: text("person"),
        since: text("hours").and_then(|h| h.parse::<i64>().ok()).filter(|h| *h > 0).map(|h| now - h * 3_600_000),
        before: text("before").and_then(|b| b.parse().ok()),
    }
}

async fn page(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let entries = app.store.log(&filter(&q, crate::store::now_ms()), PAGE).await?;
    let next = (entries.len() == PAGE).then(|| entries.last().map(|e| e.id)).flatten();
    let targets: Vec<(i64, String)> = app.store.targets().await?.into_iter().map(|t| (t.id, t.name)).collect();
    let query: Vec<(String, String)> = q.iter().filter(|(k, v)| *k != "before" && !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(app.render("log.html", context! { admin => s.username, csrf => s.csrf_token, entries => entries, next => next, q => q, query => query, targets => targets, nav => "log" }))
}

async fn rows(app: &App, q: &FormMap) -> Result<Vec<LogEntry>, WebError> {
    Ok(app.store.log(&filter(q, crate::store::now_ms()), EXPORT_MAX).await?)
}

/// The log as CSV.
pub fn to_csv(entries: Vec<LogEntry>) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "at", "person_id", "person", "target", "action", "outcome", "remote", "duration_ms", "message"])?;
    for e in entries {
        w.write_record([
            e.id.to_string(),
            crate::domain::format_time(e.at),
            e.person_id,
            e.person,
            e.target.unwrap_or_default(),
            e.action,
            if e.ok { "ok".into() } else { "failed".into() },
            e.remote.unwrap_or_default(),
            e.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            e.message,
        ])?;
    }
    w.into_inner().map_err(|e| ::csv::Error::from(e.into_error()))
}

async fn csv(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(_): Admin) -> Result<Response, WebError> {
    let body = to_csv(rows(&app, &q).await?).map_err(|e| WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"provisioning-log.csv\"")], body).into_response())
}

async fn json(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(_): Admin) -> Result<Response, WebError> {
    Ok(axum::Json(rows(&app, &q).await?).into_response())
}

/// `GET /api/v1/log`: a page of attempts, newest first, and the cursor of the next.
async fn api(State(app): State<Arc<App>>, Query(q): Query<FormMap>, _: ApiClient) -> Result<Response, WebError> {
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(PAGE).clamp(1, 1000);
    let entries = app.store.log(&filter(&q, crate::store::now_ms()), limit).await.api()?;
    let next = (entries.len() == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(axum::Json(serde_json::json!({"entries": entries, "next_before": next})).into_response())
}

async fn retry_failed(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let target = app.store.target(id).await?;
    let n = app.store.retry_failed(id).await?;
    audit::record(&app, &f.session.username, "target.retry-failed", &target.name, serde_json::json!({"jobs": n})).await;
    app.engine.wake();
    Ok(see_other(&format!("/targets/{id}?notice=retrying")))
}
