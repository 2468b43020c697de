//! The login host's OAuth 2.0 endpoints under `/services/oauth2/`:
//! `authorize` (login form, consent page, redirects), `token`
//! (authorization_code, refresh_token, client_credentials), `revoke`,
//! `userinfo`, `introspect`, and the identity URL `/id/{org}/{user}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::errors::OAuthError;
use crate::pages;
use crate::server::Ctx;
use crate::state::{AuthTx, Inner, Shared, parse_scopes};

/// Form or query parameters; the first value of each name wins.
pub type Params = HashMap<String, String>;

/// Parses `application/x-www-form-urlencoded` text, decoding exactly once.
pub fn parse_form(body: &[u8]) -> Params {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

const LOGIN_FAILED: &str =
    "Please check your username and password. If you still can't log in, contact your Salesforce administrator.";
const SESSION_COOKIE: &str = "sid";

fn error_page(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Html(pages::error(code, description))).into_response()
}

/// Sends the browser back to the client with `params` added to `redirect_uri`.
fn back_to_client(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            // Salesforce answers 302 Found.
            (StatusCode::FOUND, [(header::LOCATION, u.as_str().to_string())]).into_response()
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "redirect_uri must match configuration"),
    }
}

fn with_state<'a>(params: &mut Vec<(&'a str, &'a str)>, state: &'a Option<String>) {
    if let Some(s) = state {
        params.push(("state", s));
    }
}

fn session_user(inner: &Inner, headers: &HeaderMap) -> Option<(usize, String)> {
    let cookies = headers.get_all(header::COOKIE);
    for c in cookies {
        for part in c.to_str().unwrap_or("").split(';') {
            if let Some((k, v)) = part.trim().split_once('=')
                && k == SESSION_COOKIE
                && let Some(u) = inner.sessions.get(v)
            {
                return Some(u.clone());
            }
        }
    }
    None
}

/// `GET /services/oauth2/authorize`.
pub async fn authorize(State(ctx): State<Arc<Ctx>>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    ctx.shared.delay().await;
    let shared = &ctx.shared;
    let now = shared.now();
    let mut inner = shared.lock();
    inner.sweep(now);
    let Some(app) = q.get("client_id").and_then(|c| inner.app_by_key(c)) else {
        return error_page(StatusCode::BAD_REQUEST, "invalid_client_id", "client identifier invalid");
    };
    let seed = inner.apps[app].seed.clone();
    // An unknown redirect URI is never redirected to: it may be an attacker's.
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| seed.callback_urls.iter().any(|c| c == *r)).cloned() else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "redirect_uri must match configuration");
    };
    let state = q.get("state").cloned();
    let fail = |code: &str, description: &str| {
        let mut p = vec![("error", code), ("error_description", description)];
        with_state(&mut p, &state);
        back_to_client(&redirect_uri, &p)
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "response type not supported");
    }
    let challenge = q.get("code_challenge").filter(|c| !c.is_empty()).cloned();
    if challenge.is_none() && seed.require_pkce {
        return fail("invalid_request", "missing required code challenge");
    }
    if let Some(m) = q.get("code_challenge_method")
        && m != "S256"
    {
        return fail("invalid_request", "unsupported code challenge method");
    }
    let scopes = match q.get("scope") {
        Some(s) if !s.trim().is_empty() => {
            let asked = parse_scopes(s);
            if asked.iter().any(|a| !seed.scopes.contains(a)) {
                return fail("invalid_scope", "the requested scope is not allowed");
            }
            asked
        }
        _ => seed.scopes.clone(),
    };
    let prompt: Vec<String> = q.get("prompt").map(|p| parse_scopes(p)).unwrap_or_default();
    let user = session_user(&inner, &headers).filter(|_| !prompt.iter().any(|p| p == "login"));
    let mut tx = AuthTx { app, redirect_uri: redirect_uri.clone(), state: state.clone(), scopes, challenge, prompt: prompt.clone(), user: user.clone(), created: now };
    if prompt.iter().any(|p| p == "none") {
        let Some((org, user_id)) = user else {
            return fail("login_required", "user is not logged in");
        };
        match admin_approval(&inner, &tx, org, &user_id) {
            Some(false) => return not_admin_approved(&tx),
            Some(true) => {}
            None if !inner.approvals.contains(&(user_id.clone(), app)) => return fail("consent_required", "user has not approved this app"),
            None => {}
        }
        tx.user = Some((org, user_id.clone()));
        let code = inner.issue_code(&tx, org, &user_id, now);
        return approved(&tx, &code);
    }
    let tx_id = inner.open_tx(tx);
    match user {
        Some((org, user_id)) => after_login(&mut inner, &tx_id, org, &user_id, now),
        None => Html(pages::login(&tx_id, &seed.name, None, "")).into_response(),
    }
}

fn approved(tx: &AuthTx, code: &str) -> Response {
    let mut p = vec![("code", code)];
    with_state(&mut p, &tx.state);
    back_to_client(&tx.redirect_uri, &p)
}

/// Logged in: skip consent when the app is already approved, unless
/// `prompt=consent` asks for it again.
fn after_login(inner: &mut Inner, tx_id: &str, org: usize, user_id: &str, now: i64) -> Response {
    let tx = inner.txs.get(tx_id).cloned().expect("caller opened it");
    // "Admin approved users are pre-authorized" (an External Client App's
    // default): the pre-authorized go straight through, with no consent
    // page; anyone else is turned away before it, as Salesforce does.
    match admin_approval(inner, &tx, org, user_id) {
        Some(true) => {
            inner.txs.remove(tx_id);
            let code = inner.issue_code(&tx, org, user_id, now);
            return approved(&tx, &code);
        }
        Some(false) => {
            inner.txs.remove(tx_id);
            return not_admin_approved(&tx);
        }
        None => {}
    }
    if inner.approvals.contains(&(user_id.to_string(), tx.app)) && !tx.prompt.iter().any(|p| p == "consent") {
        inner.txs.remove(tx_id);
        let code = inner.issue_code(&tx, org, user_id, now);
        return approved(&tx, &code);
    }
    let username = inner.user(org, user_id).and_then(|r| r.get("Username").as_str().map(str::to_string)).unwrap_or_default();
    Html(pages::consent(tx_id, &inner.apps[tx.app].seed.name, &username, &tx.scopes)).into_response()
}

/// Under "Admin approved users are pre-authorized", whether this user is;
/// `None` when all users may self-authorize.
fn admin_approval(inner: &Inner, tx: &AuthTx, org: usize, user_id: &str) -> Option<bool> {
    let allowed = inner.apps[tx.app].seed.pre_authorized_users.as_ref()?;
    let username = inner.user(org, user_id).and_then(|r| r.get("Username").as_str().map(str::to_string)).unwrap_or_default();
    Some(allowed.iter().any(|u| u.eq_ignore_ascii_case(&username)))
}

/// What Salesforce answers a user the app's policies do not pre-authorize.
fn not_admin_approved(tx: &AuthTx) -> Response {
    let mut p = vec![("error", "OAUTH_APPROVAL_ERROR_GENERIC"), ("error_description", "user is not admin approved to access this app")];
    with_state(&mut p, &tx.state);
    back_to_client(&tx.redirect_uri, &p)
}

/// The authorize transaction a login or consent form names.
fn open_transaction(inner: &Inner, f: &Params) -> Result<(String, AuthTx), Response> {
    let tx_id = f.get("tx").cloned().unwrap_or_default();
    match inner.txs.get(&tx_id) {
        Some(tx) => Ok((tx_id, tx.clone())),
        None => Err(error_page(StatusCode::BAD_REQUEST, "invalid_request", "Your login attempt has timed out. Please try again.")),
    }
}

/// `POST /services/oauth2/authorize/login`: the login form.
pub async fn login(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    ctx.shared.delay().await;
    let f = parse_form(&body);
    let now = ctx.shared.now();
    let mut inner = ctx.shared.lock();
    let (tx_id, tx) = match open_transaction(&inner, &f) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let username = f.get("username").cloned().unwrap_or_default();
    let account = inner
        .find_login(&username)
        .filter(|a| Some(&a.password) == f.get("pw"))
        .filter(|a| inner.user_active(a.org, &a.user_id));
    let Some(account) = account else {
        return Html(pages::login(&tx_id, &inner.apps[tx.app].seed.name, Some(LOGIN_FAILED), &username)).into_response();
    };
    let sid = crate::state::random_token(24);
    inner.sessions.insert(sid.clone(), (account.org, account.user_id.clone()));
    if let Some(t) = inner.txs.get_mut(&tx_id) {
        t.user = Some((account.org, account.user_id.clone()));
    }
    let mut resp = after_login(&mut inner, &tx_id, account.org, &account.user_id, now);
    let cookie = format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax");
    resp.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ascii"));
    resp
}

/// `POST /services/oauth2/authorize/consent`: Allow or Deny.
pub async fn consent(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    ctx.shared.delay().await;
    let f = parse_form(&body);
    let now = ctx.shared.now();
    let mut inner = ctx.shared.lock();
    let (tx_id, tx) = match open_transaction(&inner, &f) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let Some((org, user_id)) = tx.user.clone() else {
        return error_page(StatusCode::BAD_REQUEST, "invalid_request", "Log in before approving access.");
    };
    inner.txs.remove(&tx_id);
    if f.get("decision").map(String::as_str) != Some("allow") {
        let mut p = vec![("error", "access_denied"), ("error_description", "end-user denied authorization")];
        with_state(&mut p, &tx.state);
        return back_to_client(&tx.redirect_uri, &p);
    }
    inner.approvals.insert((user_id.clone(), tx.app));
    let code = inner.issue_code(&tx, org, &user_id, now);
    approved(&tx, &code)
}

/// Client credentials from HTTP Basic (form-encoded, then base64) or the body.
fn client_credentials(headers: &HeaderMap, f: &Params) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
        && let Ok(text) = String::from_utf8(raw)
        && let Some((id, secret)) = text.split_once(':')
    {
        let decode = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        return (decode(id), decode(secret));
    }
    (f.get("client_id").cloned(), f.get("client_secret").cloned())
}

/// `POST /services/oauth2/token`.
pub async fn token(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = parse_form(&body);
    let shared = &ctx.shared;
    let grant_type = f.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type != "refresh_token" {
        shared.delay().await;
    }
    let (client_id, secret) = client_credentials(&headers, &f);
    let result = match grant_type {
        "" => Err(OAuthError::new("invalid_request", "grant type is missing")),
        "authorization_code" => {
            let now = shared.now();
            let mut inner = shared.lock();
            let verifier = f.get("code_verifier").map(String::as_str);
            // A wrong secret fails here; a missing one is judged against the code.
            let secret_given = secret.as_deref().is_some_and(|s| !s.is_empty());
            inner
                .authenticate_client(client_id.as_deref(), secret.as_deref(), false)
                .and_then(|app| {
                    let code = f.get("code").map(String::as_str).unwrap_or("");
                    inner.redeem_code(app, code, f.get("redirect_uri").map(String::as_str), verifier, secret_given, now)
                })
                .map(|g| inner.token_response(shared, &g))
        }
        "refresh_token" => refresh(shared, client_id.as_deref(), secret.as_deref(), f.get("refresh_token").cloned()).await,
        "client_credentials" => {
            let now = shared.now();
            let mut inner = shared.lock();
            inner
                .authenticate_client(client_id.as_deref(), secret.as_deref(), true)
                .and_then(|app| inner.client_credentials(app, now))
                .map(|g| inner.token_response(shared, &g))
        }
        crate::jwt::GRANT_TYPE => {
            let now = shared.now();
            let mut inner = shared.lock();
            let assertion = f.get("assertion").map(String::as_str).unwrap_or("");
            crate::jwt::grant(&mut inner, &shared.login_url, assertion, now).map(|g| inner.token_response(shared, &g))
        }
        _ => Err(OAuthError::new("unsupported_grant_type", "grant type not supported")),
    };
    match result {
        Ok(v) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-cache,must-revalidate,max-age=0,no-store,private")], axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn inner_requires_secret(inner: &Inner, client_id: Option<&str>) -> bool {
    client_id.and_then(|c| inner.app_by_key(c)).is_some_and(|a| inner.apps[a].seed.require_secret)
}

/// One refresh per refresh token at a time: a second concurrent request gets
/// Salesforce's "token request is already being processed".
async fn refresh(shared: &Arc<Shared>, client_id: Option<&str>, secret: Option<&str>, token: Option<String>) -> Result<Value, OAuthError> {
    let token = token.filter(|t| !t.is_empty()).ok_or_else(OAuthError::dead_refresh_token)?;
    {
        let mut inner = shared.lock();
        let needs_secret = inner_requires_secret(&inner, client_id);
        inner.authenticate_client(client_id, secret, needs_secret)?;
        if !inner.in_flight.insert(token.clone()) {
            return Err(OAuthError::new("invalid_grant", "token request is already being processed"));
        }
    }
    // Unmarks the token even if the client goes away during the delay and
    // this future is dropped.
    struct InFlight<'a>(&'a Shared, &'a str);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.lock().in_flight.remove(self.1);
        }
    }
    let guard = InFlight(shared, &token);
    shared.delay().await;
    drop(guard);
    let now = shared.now();
    let mut inner = shared.lock();
    let app = inner.authenticate_client(client_id, secret, false)?;
    let g = inner.redeem_refresh(app, &token, now)?;
    Ok(inner.token_response(shared, &g))
}

/// `POST` (or `GET`) `/services/oauth2/revoke` with `token`.
pub async fn revoke(State(ctx): State<Arc<Ctx>>, Query(q): Query<Params>, body: Bytes) -> Response {
    ctx.shared.delay().await;
    let f = parse_form(&body);
    let token = f.get("token").or_else(|| q.get("token")).filter(|t| !t.is_empty());
    let Some(token) = token else {
        return OAuthError::new("unsupported_token_type", "this token type is not supported").into_response();
    };
    if ctx.shared.lock().revoke(token) {
        StatusCode::OK.into_response()
    } else {
        OAuthError::new("invalid_token", "invalid token").into_response()
    }
}

/// The bearer token of a request: `Authorization: Bearer|OAuth`, or the
/// `oauth_token` / `access_token` query parameter.
pub fn bearer(headers: &HeaderMap, q: &Params) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")).then(|| token.trim().to_string())
        })
        .or_else(|| q.get("oauth_token").or_else(|| q.get("access_token")).cloned())
        .filter(|t| !t.is_empty())
}

fn bad_token() -> Response {
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")], "Bad_OAuth_Token").into_response()
}

/// The identity document of a user; `userinfo` uses OpenID Connect names.
fn identity(shared: &Shared, inner: &Inner, org: usize, user_id: &str, oidc: bool) -> Option<Value> {
    let o = &inner.orgs[org];
    let u = inner.user(org, user_id)?;
    let instance = &inner.instances[o.instance].url;
    let id_url = shared.id_url(&o.id, user_id);
    let s = |k: &str| u.get(k);
    let urls = json!({
        "enterprise": format!("{instance}/services/Soap/c/{{version}}/{}", &o.id[..15]),
        "metadata": format!("{instance}/services/Soap/m/{{version}}/{}", &o.id[..15]),
        "partner": format!("{instance}/services/Soap/u/{{version}}/{}", &o.id[..15]),
        "rest": format!("{instance}/services/data/v{{version}}/"),
        "sobjects": format!("{instance}/services/data/v{{version}}/sobjects/"),
        "search": format!("{instance}/services/data/v{{version}}/search/"),
        "query": format!("{instance}/services/data/v{{version}}/query/"),
        "recent": format!("{instance}/services/data/v{{version}}/recent/"),
        "tooling_rest": format!("{instance}/services/data/v{{version}}/tooling/"),
        "profile": format!("{instance}/{user_id}"),
        "users": format!("{instance}/services/data/v{{version}}/chatter/users"),
        "custom_domain": instance,
    });
    let name = s("Name");
    let active = s("IsActive");
    Some(if oidc {
        json!({
            "sub": id_url,
            "user_id": user_id,
            "organization_id": o.id,
            "preferred_username": s("Username"),
            "nickname": s("CommunityNickname"),
            "name": name,
            "email": s("Email"),
            "email_verified": true,
            "given_name": s("FirstName"),
            "family_name": s("LastName"),
            "zoneinfo": s("TimeZoneSidKey"),
            "profile": format!("{instance}/{user_id}"),
            "is_app_installed": true,
            "urls": urls,
            "active": active,
            "user_type": "STANDARD",
            "language": s("LanguageLocaleKey"),
            "locale": s("LocaleSidKey"),
            "updated_at": s("LastModifiedDate"),
        })
    } else {
        json!({
            "id": id_url,
            "asserted_user": true,
            "user_id": user_id,
            "organization_id": o.id,
            "username": s("Username"),
            "nick_name": s("CommunityNickname"),
            "display_name": name,
            "email": s("Email"),
            "email_verified": true,
            "first_name": s("FirstName"),
            "last_name": s("LastName"),
            "timezone": s("TimeZoneSidKey"),
            "active": active,
            "user_type": "STANDARD",
            "language": s("LanguageLocaleKey"),
            "locale": s("LocaleSidKey"),
            "urls": urls,
            "is_app_installed": true,
            "last_modified_date": s("LastModifiedDate"),
        })
    })
}

/// `GET /services/oauth2/userinfo` (also served on instance hosts).
pub async fn userinfo(State(ctx): State<Arc<Ctx>>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    let shared = &ctx.shared;
    shared.delay().await;
    let now = shared.now();
    let inner = shared.lock();
    // Unconfirmed: which scopes userinfo needs; any live session is accepted.
    let Some(t) = bearer(&headers, &q).and_then(|t| inner.session(&t, now).cloned()) else {
        return bad_token();
    };
    match identity(shared, &inner, t.org, &t.user_id, true) {
        Some(v) => axum::Json(v).into_response(),
        None => bad_token(),
    }
}

/// `GET /id/{orgId}/{userId}`: the identity URL.
pub async fn identity_url(State(ctx): State<Arc<Ctx>>, Path((org_id, user_id)): Path<(String, String)>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    ctx.shared.delay().await;
    let shared = &ctx.shared;
    let now = shared.now();
    let inner = shared.lock();
    let Some(t) = bearer(&headers, &q).and_then(|t| inner.session(&t, now).cloned()) else {
        return bad_token();
    };
    let same_org = crate::ids::normalize(&org_id).is_some_and(|o| o == inner.orgs[t.org].id);
    let user = crate::state::id_of(&user_id, crate::ids::prefix::USER);
    match (same_org, user) {
        (true, Some(u)) => match identity(shared, &inner, t.org, &u, false) {
            Some(v) => axum::Json(v).into_response(),
            None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        },
        _ => bad_token(),
    }
}

/// `POST /services/oauth2/introspect`.
pub async fn introspect(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Bytes) -> Response {
    ctx.shared.delay().await;
    let f = parse_form(&body);
    let (client_id, secret) = client_credentials(&headers, &f);
    let shared = &ctx.shared;
    let now = shared.now();
    let inner = shared.lock();
    if let Err(e) = inner.authenticate_client(client_id.as_deref(), secret.as_deref(), true) {
        return e.into_response();
    }
    let token = f.get("token").map(String::as_str).unwrap_or("");
    let describe = |org: usize, user_id: &str, app: usize, scopes: &[String], kind: &str, iat: i64, exp: Option<i64>| {
        let o = &inner.orgs[org];
        let mut v = json!({
            "active": true,
            "scope": scopes.join(" "),
            "client_id": inner.apps[app].seed.consumer_key,
            "username": inner.user(org, user_id).map(|u| u.get("Username")).unwrap_or(Value::Null),
            "sub": shared.id_url(&o.id, user_id),
            "token_type": kind,
        });
        if let Some(exp) = exp {
            v["exp"] = json!(exp / 1000);
        }
        v["iat"] = json!(iat / 1000);
        v["nbf"] = json!(iat / 1000);
        v
    };
    let v = if let Some(a) = inner.session(token, now) {
        describe(a.org, &a.user_id, a.app, &a.scopes, "access_token", a.issued_at, Some(a.expires_at))
    } else if let Some(r) = inner.refresh.get(token).filter(|r| r.status == crate::state::RefreshStatus::Active) {
        describe(r.org, &r.user_id, r.app, &r.scopes, "refresh_token", r.issued_at, None)
    } else {
        json!({ "active": false })
    };
    axum::Json(v).into_response()
}

/// Whether a scope list allows the REST API.
pub fn allows_api(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == "api" || s == "full")
}
