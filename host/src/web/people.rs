//! People pages: the list (search, paging), add, edit, delete, and a
//! person's provisioning status per target, history and Reprovision.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;
use serde::Serialize;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, FormMap, see_other};
use crate::domain::{Address, Email, FieldProblem, Identifier, Name, Person, Role, Status};
use crate::domain::ProvState;
use crate::store::{PeopleQuery, PeopleSort, Session, StoreError};

/// People shown per page.
const PAGE: usize = 50;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/people", get(list).post(create))
        .route("/people/new", get(new))
        .route("/people/{id}", get(show).post(update))
        .route("/people/{id}/edit", get(edit))
        .route("/people/{id}/delete", post(delete))
        .route("/people/{id}/reprovision", post(reprovision))
}

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    email: String,
    status: &'static str,
    affiliation: String,
    /// (state, "2 provisioned") per state the person has with targets.
    provisioning: Vec<(&'static str, String)>,
}

async fn list(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let text = q.get("q").cloned().unwrap_or_default();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1).min(1_000_000);
    let sort = match q.get("sort").map(String::as_str) {
        Some("id") => PeopleSort::Id,
        Some("updated") => PeopleSort::Updated,
        _ => PeopleSort::Name,
    };
    let query = PeopleQuery {
        text: text.clone(),
        status: q.get("status").and_then(|v| Status::parse(v)),
        affiliation: q.get("affiliation").map(|a| a.trim().to_string()).filter(|a| !a.is_empty()),
        sort,
        descending: q.get("dir").is_some_and(|d| d == "desc"),
    };
    let (people, total) = app.store.people_page(&query, (page - 1) * PAGE, PAGE).await?;
    let ids: Vec<String> = people.iter().map(|p| p.id.clone()).collect();
    let states = app.store.state_summaries(&ids).await?;
    let rows: Vec<Row> = people
        .iter()
        .map(|p| Row {
            id: p.id.clone(),
            name: p.display_name(),
            email: p.emails.first().map(|e| e.address.clone()).unwrap_or_default(),
            status: p.status.as_str(),
            affiliation: p.roles.first().map(|r| r.affiliation.clone()).unwrap_or_default(),
            provisioning: states.get(&p.id).map(|s| s.iter().map(|(st, n)| (st.as_str(), format!("{n} {}", st.label().to_lowercase()))).collect()).unwrap_or_default(),
        })
        .collect();
    let pages = total.div_ceil(PAGE).max(1);
    // The filters as a query string, for the pager and the sort links.
    let keep: Vec<(String, String)> = ["q", "status", "affiliation", "sort", "dir"].iter().filter_map(|k| q.get(*k).filter(|v| !v.is_empty()).map(|v| (k.to_string(), v.clone()))).collect();
    Ok(app.render(
        "people.html",
        context! {
            admin => s.username, csrf => s.csrf_token, nav => "people", people => rows, total => total, q => text, page => page, pages => pages,
            status => q.get("status").cloned().unwrap_or_default(), affiliation => q.get("affiliation").cloned().unwrap_or_default(),
            sort => q.get("sort").cloned().unwrap_or_else(|| "name".into()), dir => q.get("dir").cloned().unwrap_or_default(), keep => keep,
            statuses => Status::SETTABLE.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        },
    ))
}

/// One form row for an email or identifier.
#[derive(Serialize, Default)]
struct Pair {
    a: String,
    b: String,
    verified: bool,
}

/// One role as form values.
fn role_values(role: &Role) -> HashMap<&'static str, String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let addr = role.address.clone().unwrap_or_default();
    HashMap::from([
        ("affiliation", role.affiliation.clone()),
        ("title", o(&role.title)),
        ("organization", o(&role.organization)),
        ("department", o(&role.department)),
        ("office_phone", o(&role.office_phone)),
        ("mobile_phone", o(&role.mobile_phone)),
        ("street", o(&addr.street)),
        ("room", o(&addr.room)),
        ("locality", o(&addr.locality)),
        ("region", o(&addr.region)),
        ("postal_code", o(&addr.postal_code)),
        ("country", o(&addr.country)),
    ])
}

/// The roles as form rows (one empty row when there are none).
fn roles_view(p: &Person) -> Vec<HashMap<&'static str, String>> {
    let mut rows: Vec<_> = p.roles.iter().map(role_values).collect();
    if rows.is_empty() {
        rows.push(role_values(&Role::default()));
    }
    rows
}

fn form_view(p: &Person) -> (HashMap<&'static str, String>, Vec<Pair>, Vec<Pair>) {
    let n = &p.name;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let values = HashMap::from([
        ("id", p.id.clone()),
        ("status", p.status.as_str().to_string()),
        ("honorific", o(&n.honorific)),
        ("given", n.given.clone()),
        ("middle", o(&n.middle)),
        ("family", o(&n.family)),
        ("suffix", o(&n.suffix)),
    ]);
    let mut emails: Vec<Pair> = p.emails.iter().map(|e| Pair { a: e.kind.clone(), b: e.address.clone(), verified: e.verified }).collect();
    emails.push(Pair { a: "official".into(), ..Default::default() });
    let mut ids: Vec<Pair> = p.identifiers.iter().map(|i| Pair { a: i.kind.clone(), b: i.value.clone(), verified: false }).collect();
    ids.push(Pair::default());
    (values, emails, ids)
}

/// Builds a person from the form; `base` keeps what the form does not show
/// (roles after the first).
fn from_form(f: &FormMap, base: &Person) -> Person {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let opt = |k: &str| Some(get(k)).filter(|v| !v.is_empty());
    let mut p = base.clone();
    if base.id.is_empty() {
        p.id = get("id");
    }
    p.status = Status::parse(&get("status")).unwrap_or_default();
    p.name = Name { honorific: opt("honorific"), given: get("given"), middle: opt("middle"), family: opt("family"), suffix: opt("suffix") };
    p.emails = (0..50)
        .filter_map(|i| {
            let address = get(&format!("email_{i}_address"));
            (!address.is_empty()).then(|| Email { address, kind: get(&format!("email_{i}_type")), verified: f.contains_key(&format!("email_{i}_verified")) })
        })
        .collect();
    p.identifiers = (0..50)
        .filter_map(|i| {
            let value = get(&format!("ident_{i}_value"));
            let kind = get(&format!("ident_{i}_type"));
            (!value.is_empty() || !kind.is_empty()).then_some(Identifier { kind, value })
        })
        .collect();
    if f.keys().any(|k| k.starts_with("role_")) {
        // The form's role rows are the person's roles: a row removed (or
        // cleared) is a role dropped.
        p.roles = (0..50)
            .filter_map(|i| {
                let g = |name: &str| get(&format!("role_{i}_{name}"));
                let o = |name: &str| Some(g(name)).filter(|v| !v.is_empty());
                let address = Address { street: o("street"), room: o("room"), locality: o("locality"), region: o("region"), postal_code: o("postal_code"), country: o("country") };
                let role = Role {
                    affiliation: g("affiliation"),
                    title: o("title"),
                    organization: o("organization"),
                    department: o("department"),
                    office_phone: o("office_phone"),
                    mobile_phone: o("mobile_phone"),
                    address: (address != Address::default()).then_some(address),
                };
                (role != Role::default()).then_some(role)
            })
            .collect();
        return p;
    }
    let address = Address { street: opt("street"), room: opt("room"), locality: opt("locality"), region: opt("region"), postal_code: opt("postal_code"), country: opt("country") };
    let role = Role {
        affiliation: get("affiliation"),
        title: opt("title"),
        organization: opt("organization"),
        department: opt("department"),
        office_phone: opt("office_phone"),
        mobile_phone: opt("mobile_phone"),
        address: Some(address),
    };
    let filled = role != Role { address: role.address.clone(), ..Role::default() } || role.address.as_ref().is_some_and(|a| *a != Address::default());
    match (p.roles.is_empty(), filled) {
        (true, true) => p.roles.push(role),
        (false, _) => p.roles[0] = role,
        (true, false) => {}
    }
    p
}

/// The form field a problem's attribute path belongs to.
fn form_key(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("name.") {
        return rest.to_string();
    }
    if let Some(rest) = field.strip_prefix("roles[")
        && let Some((i, attr)) = rest.split_once("].")
    {
        return format!("role_{i}_{}", attr.rsplit('.').next().unwrap_or(attr));
    }
    for (prefix, key) in [("emails[", "email"), ("identifiers[", "ident")] {
        if let Some(rest) = field.strip_prefix(prefix)
            && let Some((i, attr)) = rest.split_once("].")
        {
            return format!("{key}_{i}_{}", if attr == "type" { "type" } else if key == "email" { "address" } else { "value" });
        }
    }
    field.to_string()
}

/// A field's name as the form shows it: "Email 1", "Family name".
pub(super) fn field_label(field: &str) -> String {
    let number = |rest: &str| rest.split(']').next().and_then(|i| i.parse::<usize>().ok()).map_or(String::new(), |i| format!(" {}", i + 1));
    let attr = field.rsplit('.').next().unwrap_or(field);
    let pretty = |a: &str| {
        let mut t = a.replace('_', " ");
        if let Some(first) = t.get(0..1) {
            t.replace_range(0..1, &first.to_uppercase());
        }
        t
    };
    match field {
        "id" => "Registry ID".into(),
        "status" => "Status".into(),
        "emails" => "Emails".into(),
        "identifiers" => "Identifiers".into(),
        "roles" => "Roles".into(),
        f if f.starts_with("name.") => format!("{} name", pretty(attr)).replace("Given name", "Given name").replace("Honorific name", "Honorific").replace("Suffix name", "Suffix"),
        f if f.starts_with("emails[") => match attr {
            "type" => format!("Email{} type", number(&f[7..])),
            _ => format!("Email{}", number(&f[7..])),
        },
        f if f.starts_with("identifiers[") => format!("Identifier{} {}", number(&f[12..]), attr),
        f if f.starts_with("roles[") => format!("Role{}: {}", number(&f[6..]), pretty(attr).to_lowercase()),
        other => pretty(other),
    }
}

fn form_page(app: &App, s: &Session, editing: Option<&str>, p: &Person, problems: &[FieldProblem], error: Option<String>) -> Response {
    let (values, emails, ids) = form_view(p);
    let roles = roles_view(p);
    let problems: Vec<minijinja::Value> = problems.iter().map(|f| context! { label => field_label(&f.field), anchor => form_key(&f.field), message => f.message.clone(), field => f.field.clone() }).collect();
    let errors: HashMap<String, String> = problems.iter().map(|f| (form_key(&f.get_attr("field").map(|v| v.to_string()).unwrap_or_default()), f.get_attr("message").map(|v| v.to_string()).unwrap_or_default())).collect();
    let statuses: Vec<&str> = Status::SETTABLE.iter().map(|s| s.as_str()).collect();
    let mut r = app.render(
        "person_form.html",
        context! {
            admin => s.username.clone(), csrf => s.csrf_token.clone(), editing => editing, v => values, emails => emails, ids => ids, roles => roles,
            errors => errors, problems => problems, statuses => statuses, error => error,
        },
    );
    if !problems.is_empty() || error.is_some() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    r
}

async fn new(State(app): State<Arc<App>>, Admin(s): Admin) -> Response {
    form_page(&app, &s, None, &Person::default(), &[], None)
}

/// `&warn=…` when a target's plugin would refuse the person as saved.
async fn warn_param(app: &App, p: &Person) -> String {
    let warnings = super::on_demand::target_warnings(app, p).await;
    if warnings.is_empty() {
        return String::new();
    }
    format!("&warn={}", super::query_value(&warnings.join(" ")))
}

async fn create(State(app): State<Arc<App>>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let mut p = from_form(&f, &Person::default());
    if let Err(problems) = p.normalize() {
        return Ok(form_page(&app, &s, None, &p, &problems, None));
    }
    match app.store.create_person(p.clone()).await {
        Ok(saved) => {
            app.engine.wake();
            Ok(see_other(&format!("/people/{}?notice=created{}", saved.id, warn_param(&app, &saved).await)))
        }
        Err(StoreError::Conflict(m)) => Ok(form_page(&app, &s, None, &p, &[FieldProblem { field: "id".into(), message: m }], None)),
        Err(e) => Err(e.into()),
    }
}

async fn edit(State(app): State<Arc<App>>, Path(id): Path<String>, Admin(s): Admin) -> Result<Response, WebError> {
    let p = app.store.person(&id).await?;
    if p.status == Status::Deleted {
        return Ok(see_other(&format!("/people/{id}")));
    }
    Ok(form_page(&app, &s, Some(&id), &p, &[], None))
}

async fn update(State(app): State<Arc<App>>, Path(id): Path<String>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let base = app.store.person(&id).await?;
    let mut p = from_form(&f, &base);
    if let Err(problems) = p.normalize() {
        return Ok(form_page(&app, &s, Some(&id), &p, &problems, None));
    }
    let changed = app.store.update_person(&p).await?;
    app.engine.wake();
    Ok(see_other(&format!("/people/{id}?notice={}{}", if changed.is_some() { "saved" } else { "unchanged" }, warn_param(&app, &p).await)))
}

async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>, _: AdminForm) -> Result<Response, WebError> {
    app.store.delete_person(&id).await?;
    app.engine.wake();
    // The tombstone page shows the removal from each target as it happens.
    Ok(see_other(&format!("/people/{id}?notice=deleted")))
}

async fn reprovision(State(app): State<Arc<App>>, Path(id): Path<String>, _: AdminForm) -> Result<Response, WebError> {
    app.store.reprovision_person(&id).await?;
    app.engine.wake();
    Ok(see_other(&format!("/people/{id}?notice=reprovision")))
}

#[derive(Serialize)]
struct StateView {
    target_id: i64,
    target: String,
    state: ProvState,
    label: &'static str,
    remote: Option<String>,
    message: Option<String>,
    updated: String,
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let p = app.store.person(&id).await?;
    let (states, history) = (app.store.person_states(&id).await?, app.store.history(&id, 30).await?);
    let pending = states.iter().any(|t| t.state == ProvState::Pending);
    // Why pending jobs wait, per target (only looked up when something is pending).
    let held: HashMap<i64, String> = if pending {
        let mut held = HashMap::new();
        for t in app.store.targets().await.unwrap_or_default() {
            if let Some(why) = app.store.held_because(&t).await {
                held.insert(t.id, why);
            }
        }
        held
    } else {
        HashMap::new()
    };
    let states: Vec<StateView> = states
        .into_iter()
        .map(|t| StateView {
            message: match (t.state, held.get(&t.target_id)) {
                (ProvState::Pending, Some(why)) => Some(format!("waiting: {why}")),
                _ => t.message,
            },
            target_id: t.target_id,
            target: t.target,
            label: t.state.label(),
            state: t.state,
            remote: t.remote_type.zip(t.remote_id).map(|(ty, id)| format!("{ty} {id}")),
            updated: super::format_time(t.updated_at),
        })
        .collect();
    let notice = q.get("notice").and_then(|n| {
        Some(match n.as_str() {
            "created" => "Person added; provisioning is queued.",
            "saved" => "Changes saved; provisioning is queued.",
            "unchanged" => "Nothing changed.",
            "reprovision" => "Reprovisioning is queued for every target.",
            "provisioned" => "Provisioned now: the result is below, in Provisioning and History.",
            "deleted" => "Person deleted; each target removes them as its removal setting says.",
            _ => return None,
        })
    });
    Ok(app.render(
        "person.html",
        context! {
            admin => s.username, csrf => s.csrf_token, p => p, status => p.status.as_str(), deleted => p.status == Status::Deleted,
            states => states, history => history, notice => notice, refresh => pending.then_some(2), warn => q.get("warn").cloned(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_summaries_use_the_forms_words() {
        assert_eq!(field_label("emails[0].address"), "Email 1");
        assert_eq!(field_label("emails[2].type"), "Email 3 type");
        assert_eq!(field_label("identifiers[1].value"), "Identifier 2 value");
        assert_eq!(field_label("name.family"), "Family name");
        assert_eq!(field_label("name.given"), "Given name");
        assert_eq!(field_label("roles[0].address.street"), "Role 1: street");
        assert_eq!(field_label("id"), "Registry ID");
    }

    #[test]
    fn problems_land_on_their_form_fields() {
        assert_eq!(form_key("name.given"), "given");
        assert_eq!(form_key("emails[1].address"), "email_1_address");
        assert_eq!(form_key("identifiers[0].type"), "ident_0_type");
        assert_eq!(form_key("identifiers[2].value"), "ident_2_value");
        assert_eq!(form_key("roles[0].address.postal_code"), "role_0_postal_code");
        assert_eq!(form_key("roles[1].title"), "role_1_title");
    }

    #[test]
    fn role_rows_are_the_roles() {
        let base = Person { id: "P1".into(), roles: vec![Role { affiliation: "staff".into(), ..Default::default() }, Role { affiliation: "member".into(), ..Default::default() }], ..Default::default() };
        let f: FormMap = [("given", "Ada"), ("role_0_affiliation", "faculty"), ("role_0_street", "1 Main St"), ("role_3_affiliation", "alum"), ("role_1_affiliation", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = from_form(&f, &base);
        let affiliations: Vec<&str> = p.roles.iter().map(|r| r.affiliation.as_str()).collect();
        assert_eq!(affiliations, ["faculty", "alum"], "a cleared row drops its role");
        assert_eq!(p.roles[0].address.as_ref().unwrap().street.as_deref(), Some("1 Main St"));
        assert_eq!(roles_view(&p).len(), 2);
        assert_eq!(roles_view(&Person::default()).len(), 1, "one empty row to fill");
    }

    #[test]
    fn the_form_keeps_what_it_does_not_show() {
        let base = Person {
            id: "P1".into(),
            roles: vec![Role { affiliation: "staff".into(), ..Default::default() }, Role { affiliation: "member".into(), ..Default::default() }],
            ..Default::default()
        };
        let f: FormMap = [("given", "Ada"), ("email_0_address", "ada@example.org"), ("email_0_type", "official"), ("email_0_verified", "on"), ("affiliation", "faculty"), ("id", "ignored")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = from_form(&f, &base);
        assert_eq!(p.id, "P1", "an edit keeps the id");
        assert_eq!(p.roles.len(), 2);
        assert_eq!((p.roles[0].affiliation.as_str(), p.roles[1].affiliation.as_str()), ("faculty", "member"));
        assert!(p.emails[0].verified);
    }
}
