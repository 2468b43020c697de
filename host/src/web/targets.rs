//! Provisioning target pages: the form rendered from the plugin's declared
//! settings and validated by the plugin, the target's state counts, its
//! failures, and Reprovision all with progress.

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
use super::{App, FormMap, audit, safeguards, see_other};
use registry_plugin_runtime::latest::plugin_info::SettingKind;
use crate::domain::Scope;
use crate::domain::TargetInput;
use crate::store::{Safeguards, Session, StoreError};

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/targets", get(list).post(create))
        .route("/targets/new", get(new))
        .route("/targets/{id}", get(show).post(update))
        .route("/targets/{id}/edit", get(edit))
        .route("/targets/{id}/delete", post(delete))
        .route("/targets/{id}/reprovision", post(reprovision_all))
}

/// Form field names of plugin settings get a prefix, so they never clash
/// with the target's own fields.
const SETTING: &str = "setting.";

#[derive(Serialize)]
struct SettingView {
    name: String,
    label: String,
    kind: &'static str,
    value: String,
    required: bool,
    help: String,
    error: Option<String>,
    options: Vec<(String, String)>,
    placeholder: String,
    /// The form field it depends on, and the values that show it.
    shown_when: Option<(String, String)>,
}

#[derive(Serialize)]
struct TargetRow {
    id: i64,
    name: String,
    plugin: String,
    server: String,
    enabled: bool,
    scope: String,
    provisioned: i64,
    pending: i64,
    failed: i64,
}

async fn list(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let targets = app.store.targets().await?;
    let mut counts_of = HashMap::new();
    for t in &targets {
        counts_of.insert(t.id, app.store.target_counts(t.id).await.unwrap_or_default());
    }
    let rows: Vec<TargetRow> = targets
        .iter()
        .map(|t| {
            let counts = counts_of.remove(&t.id).unwrap_or_default();
            let n = |st: crate::domain::ProvState| counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
            TargetRow {
                id: t.id,
                name: t.name.clone(),
                plugin: t.plugin.clone(),
                server: t.server_name.clone(),
                enabled: t.enabled,
                scope: t.scope.describe(),
                provisioned: n(crate::domain::ProvState::Provisioned),
                pending: n(crate::domain::ProvState::Pending),
                failed: n(crate::domain::ProvState::Failed),
            }
        })
        .collect();
    let notice = q.get("notice").and_then(|n| (n == "deleted").then_some("Target deleted. The records it made stay in the remote system."));
    Ok(app.render("targets.html", context! { admin => s.username, csrf => s.csrf_token, targets => rows, notice => notice }))
}

fn settings_view(app: &App, plugin: &str, values: &HashMap<String, String>, errors: &HashMap<String, String>, editing: bool) -> Vec<SettingView> {
    let Some(p) = app.plugin_map.get(plugin) else { return vec![] };
    p.metadata()
        .settings
        .iter()
        .map(|s| {
            let (kind, options) = match &s.kind {
                SettingKind::Text => ("text", vec![]),
                SettingKind::Secret => ("password", vec![]),
                SettingKind::Boolean => ("checkbox", vec![]),
                SettingKind::Choice(o) => ("select", o.iter().map(|c| (c.value.clone(), c.label.clone())).collect()),
            };
            let given = values.get(&s.name).cloned();
            let value = match (&s.kind, given) {
                (SettingKind::Secret, _) => String::new(),
                (_, Some(v)) => v,
                (_, None) if !editing => s.default_value.clone().unwrap_or_default(),
                (_, None) => String::new(),
            };
            let placeholder = match (&s.kind, values.get(&s.name)) {
                (SettingKind::Secret, Some(v)) if !v.is_empty() => "•••••••• (leave empty to keep)".to_string(),
                _ => s.default_value.clone().map(|d| format!("default: {d}")).unwrap_or_default(),
            };
            SettingView {
                name: format!("{SETTING}{}", s.name),
                label: s.label.clone(),
                kind,
                value,
                required: s.required,
                help: s.help.clone(),
                error: errors.get(&s.name).cloned(),
                options,
                placeholder,
                shown_when: s.shown_when.as_ref().map(|w| (format!("{SETTING}{}", w.setting), w.values.join(" "))),
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn form_page(app: &App, s: &Session, id: Option<i64>, plugin: &str, f: &FormMap, settings: &HashMap<String, String>, errors: &HashMap<String, String>, error: Option<String>) -> Result<Response, WebError> {
    let servers: Vec<(i64, String)> = app.store.servers().await?.into_iter().filter(|x| x.plugin == plugin).map(|x| (x.id, x.name)).collect();
    let mut r = app.render(
        "target_form.html",
        context! {
            admin => s.username.clone(), csrf => s.csrf_token.clone(), id => id, plugin => plugin, plugins => app.plugins.clone(),
            servers => servers, f => f, settings => settings_view(app, plugin, settings, errors, id.is_some()), errors => errors, error => error,
        },
    );
    if !errors.is_empty() || error.is_some() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

async fn new(State(app): State<Arc<App>>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let plugin = q.get("plugin").filter(|p| app.plugin_map.contains_key(*p)).cloned().unwrap_or_else(|| app.plugins.first().cloned().unwrap_or_default());
    let mut f = FormMap::new();
    f.insert("enabled".into(), "on".into());
    form_page(&app, &s, None, &plugin, &f, &HashMap::new(), &HashMap::new(), None).await
}

/// Checks the form and asks the plugin to validate the settings. `old`
/// holds saved settings (secrets left empty are kept).
async fn validate(app: &App, f: &FormMap, old: &[(String, String)]) -> Result<(TargetInput, Safeguards), (String, HashMap<String, String>, HashMap<String, String>)> {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let plugin = get("plugin");
    let mut errors = HashMap::new();
    let name = get("name");
    if name.is_empty() {
        errors.insert("name".to_string(), "Enter a name.".to_string());
    }
    let server_id: i64 = get("server_id").parse().unwrap_or(0);
    match app.store.server(server_id).await {
        Ok(s) if s.plugin == plugin => {}
        _ => {
            errors.insert("server_id".into(), "Choose an OAuth2 server that uses this plugin (add one under OAuth2 Servers first).".into());
        }
    }
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut shown: HashMap<String, String> = HashMap::new();
    if let Some(p) = app.plugin_map.get(&plugin) {
        for s in &p.metadata().settings {
            let key = format!("{SETTING}{}", s.name);
            let mut value = match s.kind {
                SettingKind::Boolean => if f.contains_key(&key) { "true" } else { "false" }.to_string(),
                _ => get(&key),
            };
            if matches!(s.kind, SettingKind::Secret) && value.is_empty() {
                value = old.iter().find(|(n, _)| *n == s.name).map(|(_, v)| v.clone()).unwrap_or_default();
            }
            shown.insert(s.name.clone(), value.clone());
            if !value.is_empty() {
                settings.push((s.name.clone(), value));
            }
        }
        match p.validate_settings(&settings, &registry_plugin_runtime::HttpAllowlist::none()).await {
            Ok(Ok(())) => {}
            Ok(Err(fields)) => {
                for e in fields {
                    errors.insert(e.field, e.message);
                }
            }
            Err(e) => {
                errors.insert("plugin".into(), format!("the plugin could not check the settings: {e}"));
            }
        }
    } else {
        errors.insert("plugin".into(), format!("the plugin '{plugin}' is not loaded"));
    }
    // Groups by name (or id), comma-separated.
    let mut scope_groups = Vec::new();
    for key in get("scope_groups").split(',').map(str::trim).filter(|k| !k.is_empty()) {
        match app.store.group_by_name_or_id(key).await {
            Ok(Some(g)) => scope_groups.push(g.id),
            Ok(None) => {
                errors.insert("scope_groups".into(), format!("No group is called '{key}'; add it under Groups, or check the spelling."));
            }
            Err(e) => {
                errors.insert("scope_groups".into(), e.to_string());
            }
        }
    }
    scope_groups.sort();
    scope_groups.dedup();
    let safeguards = safeguards::parse(f).unwrap_or_else(|e| {
        errors.extend(e);
        Safeguards::default()
    });
    // Only settings that passed the plugin's own check go to the remote system.
    if errors.is_empty()
        && let Some(p) = app.plugin_map.get(&plugin)
    {
        errors.extend(safeguards::check_remotely(app, p, server_id, &settings).await);
    }
    if !errors.is_empty() {
        return Err((plugin, shown, errors));
    }
    let scope = Scope { groups: scope_groups, ..Scope::parse(&get("scope_domains"), &get("scope_affiliations")) };
    let input = TargetInput { name, plugin, server_id, settings, enabled: f.contains_key("enabled"), scope };
    Ok((input, safeguards))
}

async fn create(State(app): State<Arc<App>>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    match validate(&app, &f, &[]).await {
        Err((plugin, shown, errors)) => form_page(&app, &s, None, &plugin, &f, &shown, &errors, None).await,
        Ok((input, guards)) => match app.store.create_target(&input).await {
            Ok(id) => {
                if let Some(p) = app.plugin_map.get(&input.plugin) {
                    safeguards::save(&app, id, p, &input.settings, &guards).await?;
                }
                audit::record(&app, &s.username, "target.create", &input.name, target_detail(&input, &guards)).await;
                Ok(see_other(&format!("/targets/{id}?notice=created")))
            }
            Err(StoreError::Conflict(m)) => form_page(&app, &s, None, &input.plugin, &f, &input.settings.into_iter().collect(), &HashMap::from([("name".to_string(), m)]), None).await,
            Err(e) => Err(e.into()),
        },
    }
}

async fn edit(State(app): State<Arc<App>>, Path(id): Path<i64>, Admin(s): Admin) -> Result<Response, WebError> {
    let t = app.store.target(id).await?;
    let mut f = FormMap::from([
        ("name".to_string(), t.name.clone()),
        ("server_id".to_string(), t.server_id.to_string()),
        ("scope_domains".to_string(), t.scope.email_domains.join(", ")),
        ("scope_affiliations".to_string(), t.scope.affiliations.join(", ")),
        ("scope_groups".to_string(), group_names(&app, &t.scope.groups).await),
    ]);
    if t.enabled {
        f.insert("enabled".into(), "on".into());
    }
    let guards = app.store.safeguards(id).await?;
    f.insert("removal_threshold".into(), guards.removal_threshold.map(|n| n.to_string()).unwrap_or_default());
    f.insert("api_share".into(), guards.api_share.map(|n| n.to_string()).unwrap_or_default());
    f.insert("concurrency".into(), guards.concurrency.map(|n| n.to_string()).unwrap_or_default());
    form_page(&app, &s, Some(id), &t.plugin, &f, &t.settings.iter().cloned().collect(), &HashMap::new(), None).await
}

async fn update(State(app): State<Arc<App>>, Path(id): Path<i64>, AdminForm { session: s, form: f }: AdminForm) -> Result<Response, WebError> {
    let old = app.store.target(id).await?;
    match validate(&app, &f, &old.settings).await {
        Err((plugin, shown, errors)) => form_page(&app, &s, Some(id), &plugin, &f, &shown, &errors, None).await,
        Ok((input, guards)) => match app.store.update_target(id, &input).await {
            Ok(()) => {
                if let Some(p) = app.plugin_map.get(&input.plugin) {
                    safeguards::save(&app, id, p, &input.settings, &guards).await?;
                }
                let old_guards = app.store.safeguards(id).await.unwrap_or_default();
                let before = TargetInput { name: old.name.clone(), plugin: old.plugin.clone(), server_id: old.server_id, settings: old.settings.clone(), enabled: old.enabled, scope: old.scope.clone() };
                let detail = serde_json::json!({"before": target_detail(&before, &old_guards), "after": target_detail(&input, &guards)});
                audit::record(&app, &s.username, "target.update", &input.name, detail).await;
                // Enabling releases the jobs that queued up meanwhile.
                app.engine.wake();
                Ok(see_other(&format!("/targets/{id}?notice=saved")))
            }
            Err(StoreError::Conflict(m)) => form_page(&app, &s, Some(id), &input.plugin, &f, &input.settings.into_iter().collect(), &HashMap::from([("name".to_string(), m)]), None).await,
            Err(e) => Err(e.into()),
        },
    }
}

/// What the audit trail keeps of a target (settings as the plugin took
/// them; secret-looking names are redacted by the trail).
fn target_detail(t: &TargetInput, g: &crate::store::Safeguards) -> serde_json::Value {
    let settings: serde_json::Map<String, serde_json::Value> = t.settings.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::json!({
        "name": t.name, "plugin": t.plugin, "server_id": t.server_id, "enabled": t.enabled, "scope": t.scope.describe(),
        "settings": settings, "removal_threshold": g.removal_threshold, "api_share": g.api_share, "concurrency": g.concurrency,
    })
}

async fn delete(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let t = app.store.target(id).await?;
    app.store.delete_target(id).await?;
    audit::record(&app, &f.session.username, "target.delete", &t.name, serde_json::json!({"plugin": t.plugin})).await;
    Ok(see_other("/targets?notice=deleted"))
}

async fn reprovision_all(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let run = app.store.start_run(id).await?;
    audit::record(&app, &f.session.username, "target.reprovision-all", &app.store.target(id).await?.name, serde_json::json!({"run": run.id, "queued": run.total})).await;
    app.engine.wake();
    Ok(see_other(&format!("/targets/{id}?notice=run")))
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<i64>, Query(q): Query<FormMap>, Admin(s): Admin) -> Result<Response, WebError> {
    let t = app.store.target(id).await?;
    let counts: Vec<(&'static str, &'static str, i64)> = app.store.target_counts(id).await.unwrap_or_default().into_iter().map(|(st, n)| (st.as_str(), st.label(), n)).collect();
    let run = app.store.latest_run(id).await.ok().flatten();
    let running = run.as_ref().is_some_and(|r| r.finished_at.is_none());
    let (queued, failed_jobs) = app.store.job_counts(Some(id)).await.unwrap_or((0, 0));
    let failures = app.store.target_failures(id, 20).await.unwrap_or_default();
    // A disabled target has its own notice.
    let waiting = if t.enabled { app.store.held_because(&t).await.map(|why| format!("Jobs cannot run: {why}. {queued} job(s) wait.")) } else { None };
    let settings: Vec<(String, String)> = match app.plugin_map.get(&t.plugin) {
        Some(p) => p
            .metadata()
            .settings
            .iter()
            .filter_map(|s| {
                let v = t.settings.iter().find(|(n, _)| *n == s.name).map(|(_, v)| v.clone())?;
                Some((s.label.clone(), if matches!(s.kind, SettingKind::Secret) { "••••••••".into() } else { v }))
            })
            .collect(),
        None => t.settings.clone(),
    };
    let notice = q.get("notice").and_then(|n| {
        Some(match n.as_str() {
            "created" => "Target added. New and changed people are provisioned from now on; use Reprovision all for everyone already here.",
            "saved" => "Changes saved.",
            "run" => "Reprovisioning everyone in scope.",
            "confirmed" => "The held removals are confirmed and run now.",
            "retrying" => "The failed jobs are queued again.",
            "discarded" => "The held removals are discarded: those records stay, no longer managed.",
            _ => return None,
        })
    });
    // Only while something moves: jobs waiting for a token or a disabled target do not.
    let refresh = ((running || queued > 0) && waiting.is_none() && t.enabled).then_some(2);
    let guards = app.store.safeguards(id).await?;
    let health = safeguards::view(&app, id, &guards).await?;
    Ok(app.render(
        "target.html",
        context! {
            admin => s.username, csrf => s.csrf_token, t => t, scope => t.scope.describe(), settings => settings, counts => counts,
            run => run, running => running, queued => queued, failed_jobs => failed_jobs, failures => failures, waiting => waiting,
            server_id => t.server_id, notice => notice, refresh => refresh, health => health, guards => guards,
        },
    ))
}

/// The names of `groups` (ids), comma separated; an id that is no group's
/// any more stays as it is.
async fn group_names(app: &App, groups: &[String]) -> String {
    let mut names = Vec::new();
    for g in groups {
        names.push(app.store.group(g).await.map(|g| g.name).unwrap_or_else(|_| g.clone()));
    }
    names.join(", ")
}
