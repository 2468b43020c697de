//! Groups in the admin UI: the list and adding one, a group's page (its
//! name and description, its members, what each target has of it), and
//! deleting it. Every change queues its provisioning in its transaction.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, FormMap, audit, see_other};
use crate::domain::Group;
use crate::store::{Session, StoreError};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/groups", get(list).post(create))
        .route("/groups/{id}", get(show).post(update))
        .route("/groups/{id}/members", post(members))
        .route("/groups/{id}/delete", post(delete))
}

const NOTICES: &[(&str, &str)] = &[
    ("created", "Group added."),
    ("saved", "Group saved; its targets get the change."),
    ("members", "Members saved; people who joined or left are provisioned accordingly."),
    ("deleted", "Group deleted; its targets remove it, and its members left it."),
];

fn notice(q: &FormMap) -> Option<&'static str> {
    q.get("notice").and_then(|n| NOTICES.iter().find(|(k, _)| k == n)).map(|(_, t)| *t)
}

async fn render_list(app: &App, s: &Session, notice: Option<&str>, form: &FormMap, errors: &HashMap<String, String>, status: StatusCode) -> Result<Response, WebError> {
    let groups: Vec<_> = app.store.groups().await?.into_iter().map(|g| context! { id => g.group.id, name => g.group.name, description => g.group.description, members => g.members }).collect();
    let mut r = app.render("groups.html", context! { admin => s.username.clone(), csrf => s.csrf_token.clone(), nav => "groups", groups => groups, notice => notice, f => form, errors => errors });
    *r.status_mut() = status;
    Ok(r)
}

async fn list(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    render_list(&app, &s, notice(&q), &FormMap::new(), &HashMap::new(), StatusCode::OK).await
}

/// The group in a form, normalized, or the problems by field.
fn group_of(f: &FormMap, id: &str) -> Result<Group, HashMap<String, String>> {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut g = Group { id: id.to_string(), name: get("name"), description: Some(get("description")) };
    g.normalize().map_err(|ps| ps.into_iter().map(|p| (p.field, p.message)).collect::<HashMap<_, _>>())?;
    Ok(g)
}

async fn create(State(app): State<Arc<App>>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let g = match group_of(&f, "") {
        Ok(g) => g,
        Err(errors) => return render_list(&app, &s, None, &f, &errors, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    match app.store.create_group(g, &[]).await {
        Ok(g) => {
            audit::record(&app, &s.username, "group.create", &g.name, serde_json::json!({"id": g.id})).await;
            app.engine.wake();
            Ok(see_other(&format!("/groups/{}?notice=created", g.id)))
        }
        Err(StoreError::Conflict(m)) => render_list(&app, &s, None, &f, &HashMap::from([("name".to_string(), m)]), StatusCode::CONFLICT).await,
        Err(e) => Err(e.into()),
    }
}

/// Members shown per page of a group.
const MEMBERS_PAGE: usize = 50;

async fn render_group(app: &App, s: &Session, id: &str, page: usize, notice: Option<&str>, form: Option<&FormMap>, errors: &HashMap<String, String>, status: StatusCode) -> Result<Response, WebError> {
    let g = app.store.group(id).await?;
    let (rows, total) = app.store.group_members_page(id, (page - 1) * MEMBERS_PAGE, MEMBERS_PAGE).await?;
    let members: Vec<_> = rows.into_iter().map(|(id, name)| context! { id => id, name => name }).collect();
    let targets: HashMap<i64, String> = app.store.targets().await?.into_iter().map(|t| (t.id, t.name)).collect();
    let states: Vec<_> = app
        .store
        .group_states(id).await?
        .into_iter()
        .map(|(t, state, remote, message)| context! { target => targets.get(&t).cloned().unwrap_or_else(|| format!("target {t}")), target_id => t, state => state, remote => remote, message => message })
        .collect();
    let f = form.cloned().unwrap_or_else(|| FormMap::from([("name".to_string(), g.name.clone()), ("description".to_string(), g.description.clone().unwrap_or_default())]));
    let pages = total.div_ceil(MEMBERS_PAGE).max(1);
    let mut r = app.render(
        "group.html",
        context! { admin => s.username.clone(), csrf => s.csrf_token.clone(), nav => "groups", group => g, members => members, total => total, page => page, pages => pages, states => states, notice => notice, f => f, errors => errors },
    );
    *r.status_mut() = status;
    Ok(r)
}

fn page_of(q: &FormMap) -> usize {
    q.get("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1).min(1_000_000)
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    render_group(&app, &s, &id, page_of(&q), notice(&q), None, &HashMap::new(), StatusCode::OK).await
}

async fn update(State(app): State<Arc<App>>, Path(id): Path<String>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let g = match group_of(&f, &id) {
        Ok(g) => g,
        Err(errors) => return render_group(&app, &s, &id, 1, None, Some(&f), &errors, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    match app.store.update_group(&g, None).await {
        Ok(changed) => {
            if changed {
                audit::record(&app, &s.username, "group.update", &g.name, serde_json::json!({"id": g.id, "description": g.description})).await;
                app.engine.wake();
            }
            Ok(see_other(&format!("/groups/{id}?notice=saved")))
        }
        Err(StoreError::Conflict(m)) => render_group(&app, &s, &id, 1, None, Some(&f), &HashMap::from([("name".to_string(), m)]), StatusCode::CONFLICT).await,
        Err(e) => Err(e.into()),
    }
}

/// Person ids as an admin pastes them: one a line, or separated by commas
/// or spaces.
fn ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = text.split([',', ' ', '\n', '\r', ';', '\t']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Adds the ids pasted under "Add" and takes out those under "Remove":
/// a group of thousands is changed without listing them all.
async fn members(State(app): State<Arc<App>>, Path(id): Path<String>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let join = ids(f.get("add").map(String::as_str).unwrap_or(""));
    let leave = ids(f.get("remove").map(String::as_str).unwrap_or(""));
    match app.store.change_group_members(&id, &join, &leave).await {
        Ok(()) => {
            audit::record(&app, &s.username, "group.members", &id, serde_json::json!({"added": join.len(), "removed": leave.len()})).await;
            app.engine.wake();
            Ok(see_other(&format!("/groups/{id}?notice=members")))
        }
        // A person that does not exist: the form again, saying which.
        Err(StoreError::NotFound(m)) if m.starts_with("person ") => {
            render_group(&app, &s, &id, 1, None, Some(&f), &HashMap::from([("members".to_string(), format!("no {m}; check the ids"))]), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>, AdminForm { session: s, .. }: AdminForm) -> Result<Response, WebError> {
    let g = app.store.group(&id).await?;
    app.store.delete_group(&id).await?;
    audit::record(&app, &s.username, "group.delete", &g.name, serde_json::json!({"id": id})).await;
    app.engine.wake();
    Ok(see_other("/groups?notice=deleted"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn member_ids_are_read_however_they_are_pasted() {
        assert_eq!(super::ids("P2\nP1, P3;P1\r\n  \tP4"), ["P1", "P2", "P3", "P4"]);
        assert!(super::ids("  \n").is_empty());
    }
}
