//! The JSON API, `/api/v1`, authenticated by API tokens
//! (`Authorization: Bearer rh_...`, made with `registry-host api-token create`).
//! Errors are JSON: `{"error": "...", "fields": [{"field", "message"}]}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::{Api, WebError};
use super::{App, FormMap};
use crate::domain::{FieldProblem, Group, Person};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/people", get(list).post(create))
        .route("/api/v1/people/{id}", get(show).put(update).delete(delete))
        .route("/api/v1/people/{id}/reprovision", post(reprovision))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/{id}/reprovision", post(reprovision_all))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/groups", get(groups).post(create_group))
        .route("/api/v1/groups/{id}", get(show_group).put(update_group).delete(delete_group))
}

fn error(status: StatusCode, message: impl Into<String>) -> WebError {
    WebError::new(status, message).api()
}

/// A caller with a valid API token; others get a JSON 401.
pub(super) struct ApiClient;

impl FromRequestParts<Arc<App>> for ApiClient {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let token = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let unauthorized = |m: &str| {
            let mut r = error(StatusCode::UNAUTHORIZED, m).into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"registry\""));
            r
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(unauthorized("send an API token as 'Authorization: Bearer TOKEN' (create one with `registry-host api-token create NAME`)"));
        };
        match app.store.api_token(token).await.api().map_err(IntoResponse::into_response)? {
            Some(_) => Ok(ApiClient),
            None => Err(unauthorized("the API token is not valid")),
        }
    }
}

/// Parses and normalizes a person from a JSON body.
fn person_body(body: &Bytes) -> Result<Person, WebError> {
    let mut p: Person = serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not a person object: {e}")))?;
    p.normalize().map_err(|problems| error(StatusCode::UNPROCESSABLE_ENTITY, "the person has invalid fields").fields(problems))?;
    Ok(p)
}

async fn with_state(app: &App, p: &Person) -> Value {
    let mut v = serde_json::to_value(p).expect("plain data");
    v["provisioning"] = json!(app.store.person_states(&p.id).await.unwrap_or_default());
    v
}

/// The largest `offset` a search takes: SQLite counts rows in signed 64 bits,
/// and no registry holds more people than this anyway.
const MAX_OFFSET: usize = 1 << 40;

/// A whole-number query parameter from 0 to `max` (`default` when absent);
/// anything else is a 400 naming the parameter, never a wrapped value.
fn number(q: &FormMap, name: &str, default: usize, max: usize) -> Result<usize, WebError> {
    let Some(raw) = q.get(name) else { return Ok(default) };
    raw.parse::<usize>().ok().filter(|n| *n <= max).ok_or_else(|| {
        let message = format!("must be a whole number from 0 to {max}, not '{}'", raw.chars().take(40).collect::<String>());
        error(StatusCode::BAD_REQUEST, format!("{name} {message}")).fields(vec![FieldProblem { field: name.into(), message }])
    })
}

async fn list(State(app): State<Arc<App>>, Query(q): Query<FormMap>, _: ApiClient) -> Result<Response, WebError> {
    let offset = number(&q, "offset", 0, MAX_OFFSET)?;
    let limit = number(&q, "limit", 100, usize::MAX)?.clamp(1, 1000);
    let (people, total) = app.store.people(q.get("q").map(String::as_str).unwrap_or(""), offset, limit).await.api()?;
    Ok(Json(json!({"total": total, "offset": offset, "limit": limit, "people": people})).into_response())
}

async fn create(State(app): State<Arc<App>>, _: ApiClient, body: Bytes) -> Result<Response, WebError> {
    let saved = app.store.create_person(person_body(&body)?).await.api()?;
    app.engine.wake();
    let mut r = (StatusCode::CREATED, Json(with_state(&app, &saved).await)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/people/{}", saved.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient) -> Result<Response, WebError> {
    let p = app.store.person(&id).await.api()?;
    Ok(Json(with_state(&app, &p).await).into_response())
}

async fn update(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient, body: Bytes) -> Result<Response, WebError> {
    let mut p = person_body(&body)?;
    if !p.id.is_empty() && p.id != id {
        let problem = FieldProblem { field: "id".into(), message: format!("leave it out or make it {id}") };
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "the id in the body differs from the URL's").fields(vec![problem]));
    }
    p.id = id;
    // A body without `groups` leaves the person's memberships as they are.
    let named_groups = serde_json::from_slice::<Value>(&body).ok().is_some_and(|v| v.get("groups").is_some());
    if !named_groups {
        p.groups = app.store.person(&p.id).await.api()?.groups;
    }
    app.store.update_person(&p).await.api()?;
    app.engine.wake();
    Ok(Json(with_state(&app, &p).await).into_response())
}

async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient) -> Result<Response, WebError> {
    // A person already deleted is NotFound here too.
    app.store.delete_person(&id).await.api()?;
    app.engine.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reprovision(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient) -> Result<Response, WebError> {
    let n = app.store.reprovision_person(&id).await.api()?;
    app.engine.wake();
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": n}))).into_response())
}

async fn targets(State(app): State<Arc<App>>, _: ApiClient) -> Result<Response, WebError> {
    Ok(Json(json!({"targets": app.store.targets().await.api()?})).into_response())
}

async fn reprovision_all(State(app): State<Arc<App>>, Path(id): Path<i64>, _: ApiClient) -> Result<Response, WebError> {
    let run = app.store.start_run(id).await.api()?;
    app.engine.wake();
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

async fn run(State(app): State<Arc<App>>, Path(id): Path<i64>, _: ApiClient) -> Result<Response, WebError> {
    Ok(Json(app.store.run(id).await.api()?).into_response())
}

/// A group as the API takes it: its fields, and optionally its members'
/// person ids (absent: left as they are).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    members: Option<Vec<String>>,
}

fn group_body(body: &Bytes) -> Result<(Group, Option<Vec<String>>), WebError> {
    let b: GroupBody = serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not a group object: {e}")))?;
    let mut group = Group { id: b.id, name: b.name, description: b.description };
    group.normalize().map_err(|problems| error(StatusCode::UNPROCESSABLE_ENTITY, "the group has invalid fields").fields(problems))?;
    Ok((group, b.members))
}

async fn group_json(app: &App, id: &str) -> Result<Value, WebError> {
    let g = app.store.group(id).await.api()?;
    let members = app.store.group_members(id).await.api()?;
    let mut v = serde_json::to_value(&g).expect("plain data");
    v["members"] = json!(members);
    Ok(v)
}

async fn groups(State(app): State<Arc<App>>, _: ApiClient) -> Result<Response, WebError> {
    let groups: Vec<Value> = app
        .store
        .groups().await
        .api()?
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s.group).expect("plain data");
            v["member_count"] = json!(s.members);
            v
        })
        .collect();
    Ok(Json(json!({"groups": groups})).into_response())
}

async fn create_group(State(app): State<Arc<App>>, _: ApiClient, body: Bytes) -> Result<Response, WebError> {
    let (group, members) = group_body(&body)?;
    let saved = app.store.create_group(group, members.as_deref().unwrap_or_default()).await.api()?;
    app.engine.wake();
    let mut r = (StatusCode::CREATED, Json(group_json(&app, &saved.id).await?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/groups/{}", saved.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn show_group(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient) -> Result<Response, WebError> {
    Ok(Json(group_json(&app, &id).await?).into_response())
}

async fn update_group(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient, body: Bytes) -> Result<Response, WebError> {
    let (mut group, members) = group_body(&body)?;
    if !group.id.is_empty() && group.id != id {
        let problem = FieldProblem { field: "id".into(), message: format!("leave it out or make it {id}") };
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "the id in the body differs from the URL's").fields(vec![problem]));
    }
    group.id = id.clone();
    app.store.update_group(&group, members.as_deref()).await.api()?;
    app.engine.wake();
    Ok(Json(group_json(&app, &id).await?).into_response())
}

async fn delete_group(State(app): State<Arc<App>>, Path(id): Path<String>, _: ApiClient) -> Result<Response, WebError> {
    app.store.delete_group(&id).await.api()?;
    app.engine.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}
