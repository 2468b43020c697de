//! Provision on demand: a preview of what the plugin would do for one
//! person and target (the plugin's `preview`, allowed to read but never to
//! write), then "Provision now", which runs it at once and shows the result.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;

use super::error::WebError;
use super::session::{Admin, AdminForm};
use super::{App, audit, see_other};
use crate::domain::{Action, ProvState, Status};
use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::provisioning_target::{ProvisionRequest, TargetContext};
use registry_plugin_runtime::latest::types::RemoteRef;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/people/{id}/preview/{target}", get(preview))
        .route("/people/{id}/provision/{target}", post(provision_now))
}

async fn preview(State(app): State<Arc<App>>, Path((id, target)): Path<(String, i64)>, Admin(s): Admin) -> Result<Response, WebError> {
    let person = app.store.person(&id).await?;
    let t = app.store.target(target).await?;
    let state = app.store.person_states(&id).await?.into_iter().find(|st| st.target_id == target);
    let render = |steps: Vec<minijinja::Value>, problem: Option<String>| {
        app.render(
            "preview.html",
            context! { admin => s.username.clone(), csrf => s.csrf_token.clone(), nav => "people", p => person.clone(), name => person.display_name(), t => t.clone(), steps => steps, problem => problem, state => state.clone() },
        )
    };
    let Some(plugin) = app.plugin_map.get(&t.plugin) else {
        return Ok(render(vec![], Some(format!("the plugin '{}' is not loaded", t.plugin))));
    };
    let Some(tokens) = app.store.tokens(t.server_id).await? else {
        return Ok(render(vec![], Some("the target's OAuth2 server has no token yet: obtain one first".into())));
    };
    let config = app.store.server_config(t.server_id).await?;
    let allow = match app.oauth.allowlist(t.server_id, &config, Some(&tokens)).await {
        Ok(a) => a,
        Err(e) => return Ok(render(vec![], Some(e.to_string()))),
    };
    let out_of_scope = !t.scope.includes(&person);
    let action = if person.status == Status::Deleted || out_of_scope { Action::Deleted } else { Action::Reprovision };
    let current = state.as_ref().and_then(|st| st.remote_type.clone().zip(st.remote_id.clone())).map(|(object_type, remote_id)| RemoteRef { object_type, remote_id });
    let request = ProvisionRequest { action: action.to_wit(), person: person.to_wit(), current };
    let context = TargetContext { settings: plugin.settings_with_defaults(&t.settings), tokens };
    Ok(match plugin.preview(&context, &request, &allow).await {
        Ok(Ok(steps)) => {
            let steps = steps.into_iter().map(|st| context! { description => st.description, request => st.request, fields => st.fields }).collect();
            render(steps, out_of_scope.then(|| "the person is outside the target's scope: provisioning removes them".into()))
        }
        Ok(Err(e)) => render(vec![], Some(explain(&e))),
        Err(e) => render(vec![], Some(e.to_string())),
    })
}

/// What each target's plugin would refuse in `person` (a value too long for
/// it, a missing attribute), asked through its preview: warnings for the
/// admin who just saved them. Targets without a token or plugin are
/// skipped, as is anything but a refusal of the person.
pub(super) async fn target_warnings(app: &App, person: &crate::domain::Person) -> Vec<String> {
    let mut warnings = Vec::new();
    let Ok(targets) = app.store.targets().await else { return warnings };
    for t in targets.into_iter().filter(|t| t.enabled && t.scope.includes(person)) {
        let Some(plugin) = app.plugin_map.get(&t.plugin) else { continue };
        let Ok(Some(tokens)) = app.store.tokens(t.server_id).await else { continue };
        let Ok(config) = app.store.server_config(t.server_id).await else { continue };
        let Ok(allow) = app.oauth.allowlist(t.server_id, &config, Some(&tokens)).await else { continue };
        let request = ProvisionRequest { action: Action::Reprovision.to_wit(), person: person.to_wit(), current: None };
        let context = TargetContext { settings: plugin.settings_with_defaults(&t.settings), tokens };
        if let Ok(Err(registry_plugin_runtime::latest::types::PluginError::InvalidPerson(f))) = plugin.preview(&context, &request, &allow).await {
            warnings.push(format!("{} will refuse this person: {}: {}", t.name, super::people::field_label(&f.field), f.message));
        }
    }
    warnings
}

async fn provision_now(State(app): State<Arc<App>>, Path((id, target)): Path<(String, i64)>, f: AdminForm) -> Result<Response, WebError> {
    let name = app.store.target(target).await?.name;
    let t = app.store.target(target).await?;
    // As the admin, with their own provider token, when they hold one.
    let as_admin = app.store.admin_tokens(f.session.admin_id, t.server_id).await?.is_some();
    let queued = app.store.reprovision_person_as(&id, target, as_admin.then_some(f.session.admin_id)).await?;
    audit::record(&app, &f.session.username, "person.provision-now", &id, serde_json::json!({"target": name, "own_token": as_admin})).await;
    if queued {
        app.engine.wake();
        // Most calls finish in well under a second; the page shows what
        // happened, or that it is still under way.
        for _ in 0..100 {
            let state = app.store.person_states(&id).await?.into_iter().find(|s| s.target_id == target).map(|s| s.state);
            if state != Some(ProvState::Pending) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(see_other(&format!("/people/{id}?notice=provisioned#provisioning")))
}
