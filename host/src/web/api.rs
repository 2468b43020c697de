//! The JSON API, `/api/v1`, authenticated by API tokens
//! (`Authorization: Bearer rh_...`, made with `registry-host api-token create`).
//! Errors are JSON: `{"error": "...", "fields": [{"field", "message"}]}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{App, FormMap};
use crate::domain::{FieldProblem, Person};
use crate::store::StoreError;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/people", get(list).post(create))
        .route("/api/v1/people/{id}", get(show).put(update).delete(delete))
        .route("/api/v1/people/{id}/reprovision", post(reprovision))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/{id}/reprovision", post(reprovision_all))
        .route("/api/v1/runs/{id}", get(run))
}

fn error(status: StatusCode, message: impl Into<String>, fields: &[FieldProblem]) -> Response {
    (status, axum::Json(json!({"error": message.into(), "fields": fields}))).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(what) => error(StatusCode::NOT_FOUND, format!("{what} not found"), &[]),
        StoreError::Conflict(m) => error(StatusCode::CONFLICT, m, &[]),
        other => {
            tracing::error!("store: {other}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the database failed; see the server log", &[])
        }
    }
}

/// The token's name, or the 401 to send.
fn authorized(app: &App, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    let unauthorized = |m: &str| {
        let mut r = error(StatusCode::UNAUTHORIZED, m, &[]);
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"registry\""));
        r
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(unauthorized("send an API token as 'Authorization: Bearer TOKEN' (create one with `registry-host api-token create NAME`)"));
    };
    match app.store.api_token(token) {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err(unauthorized("the API token is not valid")),
        Err(e) => Err(store_error(e)),
    }
}

/// Parses and normalizes a person from a JSON body.
fn person_body(body: &Bytes) -> Result<Person, Response> {
    let mut p: Person = serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not a person object: {e}"), &[]))?;
    p.normalize().map_err(|problems| error(StatusCode::UNPROCESSABLE_ENTITY, "the person has invalid fields", &problems))?;
    Ok(p)
}

fn with_state(app: &App, p: &Person) -> Value {
    let mut v = serde_json::to_value(p).expect("plain data");
    v["provisioning"] = json!(app.store.person_states(&p.id).unwrap_or_default());
    v
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<FormMap>) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    let offset = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 1000);
    match app.store.people(q.get("q").map(String::as_str).unwrap_or(""), offset, limit) {
        Ok((people, total)) => axum::Json(json!({"total": total, "offset": offset, "limit": limit, "people": people})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    let p = match person_body(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match app.store.create_person(p) {
        Ok(saved) => {
            app.engine.wake();
            let mut r = (StatusCode::CREATED, axum::Json(with_state(&app, &saved))).into_response();
            if let Ok(v) = header::HeaderValue::from_str(&format!("/api/v1/people/{}", saved.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => store_error(e),
    }
}

async fn show(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    match app.store.person(&id) {
        Ok(p) => axum::Json(with_state(&app, &p)).into_response(),
        Err(e) => store_error(e),
    }
}

async fn update(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    let mut p = match person_body(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.id.is_empty() && p.id != id {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "the id in the body differs from the URL's", &[FieldProblem { field: "id".into(), message: format!("leave it out or make it {id}") }]);
    }
    p.id = id;
    match app.store.update_person(&p) {
        Ok(_) => {
            app.engine.wake();
            axum::Json(with_state(&app, &p)).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn delete(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    // A person already deleted is NotFound here too.
    match app.store.delete_person(&id) {
        Ok(()) => {
            app.engine.wake();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn reprovision(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    match app.store.reprovision_person(&id) {
        Ok(n) => {
            app.engine.wake();
            (StatusCode::ACCEPTED, axum::Json(json!({"queued": n}))).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn targets(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    match app.store.targets() {
        Ok(t) => axum::Json(json!({"targets": t})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn reprovision_all(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    match app.store.start_run(id) {
        Ok(run) => {
            app.engine.wake();
            (StatusCode::ACCEPTED, axum::Json(run)).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn run(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    match app.store.run(id) {
        Ok(run) => axum::Json(run).into_response(),
        Err(e) => store_error(e),
    }
}
