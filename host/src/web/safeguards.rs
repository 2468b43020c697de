//! A target's safeguards on its pages: the form's removal threshold and API
//! share, the settings checked against the remote system when saved, and
//! the target page's pause, API usage and held removals with Confirm and
//! Discard.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use serde::Serialize;

use super::error::WebError;
use super::session::AdminForm;
use super::{App, FormMap, see_other};
use crate::domain::format_time;
use crate::store::{HeldRemoval, Safeguards, TargetHealth};
use registry_plugin_runtime::Plugin;
use registry_plugin_runtime::latest::provisioning_target::TargetContext;
use registry_plugin_runtime::latest::types::RemovalEffect;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/targets/{id}/removals/confirm", post(confirm))
        .route("/targets/{id}/removals/discard", post(discard))
}

/// The form's safeguard fields, or their errors by field.
pub(super) fn parse(f: &FormMap) -> Result<Safeguards, HashMap<String, String>> {
    let mut errors = HashMap::new();
    let mut number = |name: &str, range: std::ops::RangeInclusive<i64>, message: &str| -> Option<i64> {
        let v = f.get(name).map(|v| v.trim()).unwrap_or("");
        if v.is_empty() {
            return None;
        }
        match v.parse::<i64>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                errors.insert(name.to_string(), format!("'{v}': {message}"));
                None
            }
        }
    };
    let removal_threshold = number("removal_threshold", 1..=1_000_000, "give a whole number of at least 1, or leave it empty for automatic");
    let api_share = number("api_share", 1..=100, "give a percentage from 1 to 100, or leave it empty for no cap");
    let concurrency = number("concurrency", 1..=256, "give a number of calls from 1 to 256, or leave it empty for as many as the workers");
    if errors.is_empty() { Ok(Safeguards { removal_threshold, api_share, concurrency }) } else { Err(errors) }
}

/// Checks the settings against the remote system with the server's
/// tokens (a server without tokens yet is checked later, by the first
/// provisioning call). Errors by setting name.
pub(super) async fn check_remotely(app: &App, plugin: &Plugin, server_id: i64, settings: &[(String, String)]) -> HashMap<String, String> {
    let Ok(Some(tokens)) = app.store.tokens(server_id).await else { return HashMap::new() };
    let Ok(config) = app.store.server_config(server_id).await else { return HashMap::new() };
    let Ok(allow) = app.oauth.allowlist(server_id, &config, Some(&tokens)).await else { return HashMap::new() };
    let context = TargetContext { settings: plugin.settings_with_defaults(settings), tokens };
    match plugin.check_settings(&context, &allow).await {
        Ok(Ok(())) => HashMap::new(),
        Ok(Err(fields)) => fields.into_iter().map(|e| (e.field, e.message)).collect(),
        Err(e) => HashMap::from([("plugin".to_string(), format!("the plugin could not check the settings against the remote system: {e}"))]),
    }
}

/// Saves the safeguards with what the plugin says a removal does.
pub(super) async fn save(app: &App, target: i64, plugin: &Plugin, settings: &[(String, String)], safeguards: &Safeguards) -> Result<(), WebError> {
    let effect = plugin.removal_effect(&plugin.settings_with_defaults(settings)).await.unwrap_or(RemovalEffect::Delete);
    let destructive = matches!(effect, RemovalEffect::Deactivate | RemovalEffect::Delete);
    app.store.set_safeguards(target, safeguards, destructive).await?;
    let groups = plugin.metadata().capabilities.contains(registry_plugin_runtime::latest::plugin_info::Capabilities::GROUPS);
    app.store.set_target_provisions_groups(target, groups).await?;
    Ok(())
}

/// What the target page shows of its safeguards.
#[derive(Serialize)]
pub(super) struct HealthView {
    health: TargetHealth,
    paused: Option<String>,
    usage: Option<String>,
    held: Vec<HeldRemoval>,
    removal_effect: &'static str,
}

pub(super) async fn view(app: &App, target: i64, safeguards: &Safeguards) -> Result<HealthView, WebError> {
    let health = app.store.target_health(target).await?;
    let now = app.store.now();
    let paused = health.paused_until.filter(|_| health.pause_level > 0).map(|until| {
        let reason = health.pause_reason.clone().unwrap_or_default();
        if until > now { reason } else { format!("{reason} (probing now)") }
    });
    let usage = health.usage.map(|(used, limit, at)| {
        let share = safeguards.api_share.map(|s| format!("; this target may use {s} % ({})", limit * s / 100)).unwrap_or_default();
        format!("{used} of {limit} API calls used in the remote system's period{share}; as of {}", format_time(at))
    });
    let held = app.store.held_removals(target, 50).await?;
    let removal_effect = if health.destructive_removals { "deactivates or deletes records" } else { "keeps records (or marks them)" };
    Ok(HealthView { health, paused, usage, held, removal_effect })
}

async fn confirm(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let n = app.store.confirm_removals(id).await?;
    tracing::info!(admin = %f.session.username, target = id, removals = n, "held removals confirmed");
    super::audit::record(&app, &f.session.username, "target.removals-confirm", &app.store.target(id).await?.name, serde_json::json!({"removals": n})).await;
    app.engine.wake();
    Ok(see_other(&format!("/targets/{id}?notice=confirmed")))
}

async fn discard(State(app): State<Arc<App>>, Path(id): Path<i64>, f: AdminForm) -> Result<Response, WebError> {
    let n = app.store.discard_removals(id, &f.session.username).await?;
    tracing::info!(admin = %f.session.username, target = id, removals = n, "held removals discarded");
    super::audit::record(&app, &f.session.username, "target.removals-discard", &app.store.target(id).await?.name, serde_json::json!({"removals": n})).await;
    Ok(see_other(&format!("/targets/{id}?notice=discarded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_safeguard_fields_are_numbers_in_range_or_empty() {
        let s = parse(&form(&[("removal_threshold", "40"), ("api_share", "80"), ("concurrency", "5")])).unwrap();
        assert_eq!(s, Safeguards { removal_threshold: Some(40), api_share: Some(80), concurrency: Some(5) });
        assert_eq!(parse(&form(&[("concurrency", " ")])).unwrap(), Safeguards::default(), "empty: the defaults");
        let errors = parse(&form(&[("api_share", "101"), ("concurrency", "0")])).unwrap_err();
        assert!(errors["api_share"].starts_with("'101': give a percentage"), "{errors:?}");
        assert!(errors["concurrency"].starts_with("'0': give a number of calls from 1 to 256"), "{errors:?}");
    }
}
