//! Fault switches and inspection, shared by the admin HTTP endpoint
//! (`/_emulator/...` on the login host) and the library API.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::oauth::Params;
use crate::server::{self, Ctx};
use crate::state::{FailKind, Inner, LoggedRequest, RefreshStatus, Shared};

/// A fault to switch on (the admin endpoint's JSON body, tagged by `fault`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Every access token expires now (refresh tokens keep working).
    ExpireAccessTokens,
    /// Revoke one refresh token (and its access tokens), or all when `token` is absent.
    RevokeRefreshToken {
        /// The token; every active one when absent.
        #[serde(default)]
        token: Option<String>,
    },
    /// Turn refresh-token rotation on or off for an app (all apps when `consumer_key` is absent).
    Rotation {
        /// The app; all when absent.
        #[serde(default)]
        consumer_key: Option<String>,
        /// On or off.
        enabled: bool,
    },
    /// Move an org (by id or name; the first when absent) to a new instance host.
    Migrate {
        /// Org id or name.
        #[serde(default)]
        org: Option<String>,
    },
    /// REQUEST_LIMIT_EXCEEDED after `after` more API calls; `null` lifts it.
    Throttle {
        /// Calls still allowed.
        after: Option<u64>,
    },
    /// Fail the next `count` API calls.
    Fail {
        /// How many.
        count: u64,
        /// `server_error` (500) or `unable_to_lock_row`.
        kind: FailKind,
    },
    /// Every REST call answers 503 for `minutes` of emulator time
    /// (`advance_clock` ends it).
    Outage {
        /// How long.
        minutes: u64,
    },
    /// Set an org's daily API request limit (by id or name; the first when
    /// absent). Usage is counted per UTC day and rolls over with the clock.
    DailyLimit {
        /// Org id or name.
        #[serde(default)]
        org: Option<String>,
        /// Requests a day.
        limit: u64,
    },
    /// Add latency to every request, and to a collections call per record
    /// (a latency model: e.g. 150 ms + 2 ms a record).
    Latency {
        /// Milliseconds for every request.
        ms: u64,
        /// Milliseconds more for each record of a `composite/sobjects` call.
        #[serde(default)]
        per_record_ms: u64,
    },
    /// Move the emulator's clock forward.
    AdvanceClock {
        /// Seconds.
        secs: u64,
    },
    /// Lift throttle, failures and latency.
    Clear,
}

/// Why a fault could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// No org with that id or name.
    #[error("no org with id or name {0}")]
    NoOrg(String),
    /// No app with that consumer key.
    #[error("no connected app with consumer key {0}")]
    NoApp(String),
    /// The token is not an active refresh token.
    #[error("not an active refresh token")]
    NoToken,
    /// The new listener could not be bound.
    #[error("could not start a new instance host: {0}")]
    Bind(std::io::Error),
}

fn find_org(inner: &Inner, key: Option<&str>) -> Result<usize, FaultError> {
    match key {
        None => Ok(0),
        Some(k) => inner
            .orgs
            .iter()
            .position(|o| o.name == k || crate::ids::normalize(k).is_some_and(|id| id == o.id))
            .ok_or_else(|| FaultError::NoOrg(k.to_string())),
    }
}

/// Applies a fault; returns a JSON description of what changed.
pub fn apply(ctx: &Arc<Ctx>, fault: Fault) -> Result<Value, FaultError> {
    let shared = &ctx.shared;
    let now = shared.now();
    match fault {
        Fault::ExpireAccessTokens => {
            let mut inner = shared.lock();
            let mut n = 0;
            for t in inner.access.values_mut() {
                if t.expires_at > now {
                    t.expires_at = now;
                    n += 1;
                }
            }
            Ok(json!({ "expired": n }))
        }
        Fault::RevokeRefreshToken { token } => {
            let mut inner = shared.lock();
            let families: Vec<String> = match &token {
                Some(t) => vec![inner.refresh.get(t).filter(|r| r.status == RefreshStatus::Active).map(|r| r.family.clone()).ok_or(FaultError::NoToken)?],
                None => inner.refresh.values().filter(|r| r.status == RefreshStatus::Active).map(|r| r.family.clone()).collect(),
            };
            for f in &families {
                inner.revoke_family(f);
            }
            Ok(json!({ "revoked": families.len() }))
        }
        Fault::Rotation { consumer_key, enabled } => {
            let mut inner = shared.lock();
            let mut n = 0;
            for a in inner.apps.iter_mut().filter(|a| consumer_key.as_ref().is_none_or(|k| &a.seed.consumer_key == k)) {
                a.seed.rotate_refresh_tokens = enabled;
                n += 1;
            }
            if n == 0 {
                return Err(FaultError::NoApp(consumer_key.unwrap_or_default()));
            }
            Ok(json!({ "apps": n, "rotation": enabled }))
        }
        Fault::Migrate { org } => {
            let idx = find_org(&shared.lock(), org.as_deref())?;
            let url = server::migrate(ctx, idx).map_err(FaultError::Bind)?;
            Ok(json!({ "instance_url": url }))
        }
        Fault::Throttle { after } => {
            shared.lock().faults.throttle_after = after;
            Ok(json!({ "throttle_after": after }))
        }
        Fault::Fail { count, kind } => {
            let mut inner = shared.lock();
            inner.faults.fail_next = count;
            inner.faults.fail_kind = Some(kind);
            Ok(json!({ "fail_next": count }))
        }
        Fault::Outage { minutes } => {
            let until = shared.now() + (minutes as i64) * 60_000;
            shared.lock().faults.down_until = Some(until);
            Ok(json!({ "down_until": until }))
        }
        Fault::DailyLimit { org, limit } => {
            let mut inner = shared.lock();
            let idx = find_org(&inner, org.as_deref())?;
            inner.orgs[idx].daily_limit = limit;
            Ok(json!({ "daily_limit": limit }))
        }
        Fault::Latency { ms, per_record_ms } => {
            let mut inner = shared.lock();
            inner.faults.latency_ms = ms;
            inner.faults.latency_per_record_ms = per_record_ms;
            Ok(json!({ "latency_ms": ms, "per_record_ms": per_record_ms }))
        }
        Fault::AdvanceClock { secs } => {
            shared.advance_clock(Duration::from_secs(secs));
            Ok(json!({ "advanced_secs": secs }))
        }
        Fault::Clear => {
            shared.lock().faults = Default::default();
            Ok(json!({ "cleared": true }))
        }
    }
}

/// Creates records in an org as its own users would have (no API call
/// counted): an org that already holds data. Returns their ids.
pub fn insert(shared: &Shared, org: usize, object: &str, records: Vec<serde_json::Map<String, Value>>) -> Result<Vec<String>, String> {
    let mut inner = shared.lock();
    let def = inner.orgs[org].schema.object(object).cloned().ok_or_else(|| format!("no object {object}"))?;
    let actor = inner.orgs[org].store.all("User").next().map(|u| u.id.clone()).unwrap_or_default();
    let now = shared.now();
    crate::rest::with_writer(&mut inner, shared, org, &actor, now, |store, w| {
        records.iter().map(|r| store.create(w, &def, r).map(|(id, _)| id).map_err(|e| format!("{}: {}", e.code, e.message))).collect()
    })
}

/// Adds a user who can log in to the first org (a System Administrator),
/// as an admin would in Setup, Users; returns their `005…` id.
pub fn add_login_user(shared: &Shared, username: &str, password: &str, last_name: &str) -> Result<String, String> {
    if shared.lock().find_login(username).is_some() {
        return Err(format!("the username {username} is taken (usernames are unique across all orgs)"));
    }
    let profile = {
        let inner = shared.lock();
        inner.orgs[0].store.all("Profile").find(|p| p.get("Name").as_str() == Some("System Administrator")).map(|p| p.id.clone())
    }
    .ok_or("the org has no System Administrator profile")?;
    let alias: String = username.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    let record = serde_json::json!({
        "Username": username, "LastName": last_name, "Email": username, "Alias": alias, "CommunityNickname": format!("{alias}{}", username.len()),
        "TimeZoneSidKey": "America/Los_Angeles", "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US",
        "ProfileId": profile, "IsActive": true,
    });
    let id = insert(shared, 0, "User", vec![record.as_object().cloned().unwrap_or_default()])?.remove(0);
    shared.lock().accounts.insert(username.to_lowercase(), crate::state::Account { org: 0, user_id: id.clone(), password: password.to_string() });
    Ok(id)
}

/// Records of `object` in an org, deleted ones marked by `IsDeleted`.
pub fn records(shared: &Shared, org: usize, object: &str) -> Vec<Value> {
    let inner = shared.lock();
    let o = &inner.orgs[org];
    let Some(def) = o.schema.object(object) else { return vec![] };
    o.store.all(def.name).map(as_json).collect()
}

/// Each record of `object` as every API create or update left it, oldest
/// first.
pub fn writes(shared: &Shared, org: usize, object: &str) -> Vec<Value> {
    let inner = shared.lock();
    let o = &inner.orgs[org];
    let Some(def) = o.schema.object(object) else { return vec![] };
    o.store.writes(def.name).map(as_json).collect()
}

fn as_json(r: &crate::records::Record) -> Value {
    let mut v = serde_json::Map::new();
    for (k, val) in &r.fields {
        v.insert(k.clone(), val.clone());
    }
    v.insert("IsDeleted".into(), json!(r.deleted));
    Value::Object(v)
}

/// A summary of the emulator: URLs, orgs, apps, usage and faults.
pub fn summary(shared: &Shared) -> Value {
    let inner = shared.lock();
    json!({
        "login_url": shared.login_url,
        "instances": inner.instances.iter().map(|i| json!({"name": i.name, "url": i.url})).collect::<Vec<_>>(),
        "orgs": inner.orgs.iter().map(|o| json!({
            "id": o.id,
            "name": o.name,
            "instance_url": inner.instances[o.instance].url,
            "api_usage": o.api_usage,
            "daily_api_limit": o.daily_limit,
        })).collect::<Vec<_>>(),
        "connected_apps": inner.apps.iter().map(|a| json!({
            "name": a.seed.name,
            "org": inner.orgs[a.org].id,
            "consumer_key": a.seed.consumer_key,
            "consumer_secret": a.seed.consumer_secret,
            "callback_urls": a.seed.callback_urls,
            "require_pkce": a.seed.require_pkce,
            "rotate_refresh_tokens": a.seed.rotate_refresh_tokens,
        })).collect::<Vec<_>>(),
        "faults": inner.faults,
    })
}

fn bad(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `GET /_emulator`.
pub async fn get_summary(State(ctx): State<Arc<Ctx>>) -> Response {
    Json(summary(&ctx.shared)).into_response()
}

/// `POST /_emulator/faults`.
pub async fn post_fault(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("invalid fault: {e}")),
    };
    let ctx2 = ctx.clone();
    // Migration binds a listener; keep blocking work off the async workers.
    match tokio::task::spawn_blocking(move || apply(&ctx2, fault)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e @ FaultError::Bind(_))) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Ok(Err(e)) => bad(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /_emulator/requests`.
pub async fn get_requests(State(ctx): State<Arc<Ctx>>) -> Json<Vec<LoggedRequest>> {
    Json(ctx.shared.lock().log.clone())
}

/// `DELETE /_emulator/requests`.
pub async fn clear_requests(State(ctx): State<Arc<Ctx>>) -> StatusCode {
    ctx.shared.lock().log.clear();
    StatusCode::NO_CONTENT
}

/// `GET /_emulator/records/{object}?org=`.
pub async fn get_records(State(ctx): State<Arc<Ctx>>, Path(object): Path<String>, Query(q): Query<Params>) -> Response {
    let org = match find_org(&ctx.shared.lock(), q.get("org").map(String::as_str)) {
        Ok(o) => o,
        Err(e) => return bad(StatusCode::NOT_FOUND, e.to_string()),
    };
    Json(records(&ctx.shared, org, &object)).into_response()
}

/// `POST /_emulator/apps/{consumer_key}/callbacks` with `{"url": ...}`.
pub async fn add_callback(State(ctx): State<Arc<Ctx>>, Path(key): Path<String>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Body {
        url: String,
    }
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("expected {{\"url\": ...}}: {e}")),
    };
    match add_callback_url(&ctx.shared, &key, &b.url) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

/// Adds a callback URL to an app (hosts learn their port only after binding).
pub fn add_callback_url(shared: &Shared, consumer_key: &str, url: &str) -> Result<(), String> {
    url::Url::parse(url).map_err(|e| format!("callback URL {url}: {e}"))?;
    let mut inner = shared.lock();
    let app = inner.app_by_key(consumer_key).ok_or_else(|| format!("no connected app with consumer key {consumer_key}"))?;
    let cbs = &mut inner.apps[app].seed.callback_urls;
    if !cbs.iter().any(|c| c == url) {
        cbs.push(url.to_string());
    }
    Ok(())
}

/// Pre-authorizes a user for an app whose Permitted Users are "Admin
/// approved users are pre-authorized" (what an admin does by giving them a
/// permission set the app's policies list).
pub fn pre_authorize(shared: &Shared, consumer_key: &str, username: &str) -> Result<(), String> {
    let mut inner = shared.lock();
    let app = inner.app_by_key(consumer_key).ok_or_else(|| format!("no app with consumer key {consumer_key}"))?;
    let org = inner.apps[app].org;
    if inner.find_login(username).is_none_or(|a| a.org != org) {
        return Err(format!("{username} is not a user of the app's org"));
    }
    let users = inner.apps[app].seed.pre_authorized_users.as_mut().ok_or_else(|| format!("the app {consumer_key} lets all users self-authorize"))?;
    if !users.iter().any(|u| u.eq_ignore_ascii_case(username)) {
        users.push(username.to_string());
    }
    Ok(())
}

/// Uploads a certificate under the app's "Use digital signatures" (PEM),
/// replacing the one there, as Salesforce's app settings do.
pub fn upload_certificate(shared: &Shared, consumer_key: &str, pem: &str) -> Result<(), String> {
    crate::jwt::public_key(pem).map_err(|e| format!("the certificate cannot be used: {e}"))?;
    let mut inner = shared.lock();
    let app = inner.app_by_key(consumer_key).ok_or_else(|| format!("no app with consumer key {consumer_key}"))?;
    inner.apps[app].seed.certificate = Some(pem.trim().to_string());
    Ok(())
}

/// `PUT /_emulator/apps/{consumer_key}/certificate` with the PEM as the body.
pub async fn put_certificate(State(ctx): State<Arc<Ctx>>, Path(key): Path<String>, body: Bytes) -> Response {
    match upload_certificate(&ctx.shared, &key, &String::from_utf8_lossy(&body)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

/// Sets an app's Permitted Users: `None`, all users may self-authorize;
/// a list, "Admin approved users are pre-authorized" and these are.
pub fn set_permitted_users(shared: &Shared, consumer_key: &str, pre_authorized: Option<Vec<String>>) -> Result<(), String> {
    let mut inner = shared.lock();
    let app = inner.app_by_key(consumer_key).ok_or_else(|| format!("no app with consumer key {consumer_key}"))?;
    inner.apps[app].seed.pre_authorized_users = pre_authorized;
    Ok(())
}
