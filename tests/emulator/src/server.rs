//! Listeners and the library handle: one login host, one instance host per
//! instance (more appear when an org migrates), each on its own loopback
//! port, all served by the emulator's own tokio runtime so the handle works
//! from plain `#[test]`s and async code alike.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::runtime::{Handle, Runtime};

use crate::admin::{self, Fault, FaultError};
use crate::errors::{ApiError, SfError};
use crate::seed::Seed;
use crate::state::{FailKind, Instance, LoggedRequest, RefreshStatus, Shared};
use crate::{oauth, rest};

/// Largest request body accepted (a 200-record collection is far smaller).
const MAX_BODY: usize = crate::bulk::MAX_UPLOAD_BYTES + 1024 * 1024;
/// Bytes of each request body kept in the request log.
const LOGGED_BODY: usize = 64 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub struct Ctx {
    /// The state.
    pub shared: Arc<Shared>,
    /// The runtime serving the listeners (new instance hosts are spawned on it).
    pub handle: Handle,
    /// The address listeners bind to.
    pub bind_ip: IpAddr,
}

/// State of one instance host's router.
#[derive(Debug, Clone)]
pub struct Inst {
    /// Shared context.
    pub ctx: Arc<Ctx>,
    /// Which instance this host is.
    pub idx: usize,
}

impl FromRef<Inst> for Arc<Ctx> {
    fn from_ref(i: &Inst) -> Self {
        i.ctx.clone()
    }
}

/// Where and how to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Orgs, users and apps.
    pub seed: Seed,
    /// Address to bind (loopback by default).
    pub bind_ip: IpAddr,
    /// Login host port; 0 lets the OS choose.
    pub login_port: u16,
    /// Port of the first instance host; 0 lets the OS choose.
    pub instance_port: u16,
}

impl Options {
    /// Loopback, OS-chosen ports.
    pub fn new(seed: Seed) -> Self {
        Options { seed, bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), login_port: 0, instance_port: 0 }
    }
}

/// Facts about an org, for tests and banners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgInfo {
    /// `00D…` id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Current instance URL.
    pub instance_url: String,
}

/// Facts about a connected app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// Name.
    pub name: String,
    /// Consumer key.
    pub consumer_key: String,
    /// Consumer secret.
    pub consumer_secret: String,
    /// Callback URLs.
    pub callback_urls: Vec<String>,
}

/// A running emulator. Dropping it stops every listener.
pub struct Emulator {
    ctx: Arc<Ctx>,
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("login_url", &self.ctx.shared.login_url).finish()
    }
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(SocketAddr::new(ip, port))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn url_of(l: &std::net::TcpListener) -> std::io::Result<String> {
    Ok(format!("http://{}", l.local_addr()?))
}

fn serve(handle: &Handle, listener: std::net::TcpListener, router: Router) -> std::io::Result<()> {
    let _guard = handle.enter();
    let listener = tokio::net::TcpListener::from_std(listener)?;
    handle.spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("emulator listener stopped: {e}");
        }
    });
    Ok(())
}

/// Keeps the request body for handlers and logs the exchange.
async fn log_requests(State((shared, host)): State<(Arc<Shared>, String)>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let admin = path.starts_with("/_emulator");
    // Who the call acts as, by its bearer token (before a revoke in it).
    let user = oauth::bearer(&parts.headers, &Default::default()).and_then(|t| {
        let inner = shared.lock();
        let session = inner.access.get(&t)?.clone();
        inner.user(session.org, &session.user_id).and_then(|r| r.get("Username").as_str().map(str::to_string))
    });
    let logged_body = String::from_utf8_lossy(&bytes[..bytes.len().min(LOGGED_BODY)]).into_owned();
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if !admin {
        let api_call = resp.extensions().get::<rest::ApiCall>().is_some();
        shared.lock().log_request(LoggedRequest { seq: 0, host, method, path, query, status: resp.status().as_u16(), api_call, body: logged_body, user });
    }
    resp
}

fn login_router(ctx: Arc<Ctx>) -> Router {
    let log_state = (ctx.shared.clone(), "login".to_string());
    Router::new()
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/authorize/login", post(oauth::login))
        .route("/services/oauth2/authorize/consent", post(oauth::consent))
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke).get(oauth::revoke))
        .route("/services/oauth2/userinfo", get(oauth::userinfo).post(oauth::userinfo))
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route("/id/{org}/{user}", get(oauth::identity_url).post(oauth::identity_url))
        .route("/_emulator", get(admin::get_summary))
        .route("/_emulator/faults", post(admin::post_fault))
        .route("/_emulator/requests", get(admin::get_requests).delete(admin::clear_requests))
        .route("/_emulator/records/{object}", get(admin::get_records))
        .route("/_emulator/apps/{key}/callbacks", post(admin::add_callback))
        .route("/_emulator/apps/{key}/certificate", axum::routing::put(admin::put_certificate))
        .layer(middleware::from_fn_with_state(log_state, log_requests))
        .with_state(ctx)
}

async fn instance_fallback(State(inst): State<Inst>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/services/data" || uri.path().starts_with("/services/data/") {
        rest::api(Arc::new(inst), method, uri, headers, body).await
    } else {
        ApiError::not_found(SfError::not_found()).into_response()
    }
}

fn instance_router(ctx: Arc<Ctx>, idx: usize) -> Router {
    let name = ctx.shared.lock().instances[idx].name.clone();
    let log_state = (ctx.shared.clone(), name);
    Router::new()
        .route("/services/oauth2/userinfo", get(oauth::userinfo).post(oauth::userinfo))
        .fallback(instance_fallback)
        // A Bulk API upload may be 150 MB; axum's own default is 2 MB.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(log_state, log_requests))
        .with_state(Inst { ctx, idx })
}

/// Moves org `org` to a new instance host and returns its URL. The old host
/// keeps serving other orgs but refuses this one's sessions.
pub fn migrate(ctx: &Arc<Ctx>, org: usize) -> std::io::Result<String> {
    let listener = bind(ctx.bind_ip, 0)?;
    let url = url_of(&listener)?;
    let idx = {
        let mut inner = ctx.shared.lock();
        let mut n = inner.instances.len() + 1;
        while inner.instances.iter().any(|i| i.name == format!("na{n}")) {
            n += 1;
        }
        inner.instances.push(Instance { name: format!("na{n}"), url: url.clone() });
        inner.instances.len() - 1
    };
    serve(&ctx.handle, listener, instance_router(ctx.clone(), idx))?;
    ctx.shared.lock().orgs[org].instance = idx;
    Ok(url)
}

impl Emulator {
    /// Starts on loopback with OS-chosen ports.
    pub fn start(seed: Seed) -> anyhow::Result<Self> {
        Self::start_with(Options::new(seed))
    }

    /// Starts with explicit options.
    pub fn start_with(o: Options) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("salesforce-emulator")
            .enable_all()
            .build()
            .context("starting the emulator's runtime")?;
        let login = bind(o.bind_ip, o.login_port).with_context(|| format!("binding the login host to {}:{}", o.bind_ip, o.login_port))?;
        let shared = Arc::new(Shared::new(&o.seed, url_of(&login)?).map_err(anyhow::Error::msg)?);
        let ctx = Arc::new(Ctx { shared: shared.clone(), handle: runtime.handle().clone(), bind_ip: o.bind_ip });
        let count = shared.lock().instances.len();
        let mut listeners = Vec::new();
        for i in 0..count {
            let port = if i == 0 { o.instance_port } else { 0 };
            let l = bind(o.bind_ip, port).with_context(|| format!("binding an instance host to {}:{port}", o.bind_ip))?;
            shared.lock().instances[i].url = url_of(&l)?;
            listeners.push(l);
        }
        serve(runtime.handle(), login, login_router(ctx.clone()))?;
        for (i, l) in listeners.into_iter().enumerate() {
            serve(runtime.handle(), l, instance_router(ctx.clone(), i))?;
        }
        Ok(Emulator { ctx, runtime: Some(runtime) })
    }

    /// The login host, e.g. `http://127.0.0.1:40001` (the "Server URL" to configure).
    pub fn login_url(&self) -> String {
        self.ctx.shared.login_url.clone()
    }

    /// Its OAuth2 token endpoint, which takes the client in HTTP Basic or
    /// in the body: a generic authorization server's too.
    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.login_url())
    }

    /// The first org's current instance URL.
    pub fn instance_url(&self) -> String {
        self.orgs()[0].instance_url.clone()
    }

    /// Every org.
    pub fn orgs(&self) -> Vec<OrgInfo> {
        let inner = self.ctx.shared.lock();
        inner
            .orgs
            .iter()
            .map(|o| OrgInfo { id: o.id.clone(), name: o.name.clone(), instance_url: inner.instances[o.instance].url.clone() })
            .collect()
    }

    /// Every connected app.
    pub fn apps(&self) -> Vec<AppInfo> {
        self.ctx
            .shared
            .lock()
            .apps
            .iter()
            .map(|a| AppInfo {
                name: a.seed.name.clone(),
                consumer_key: a.seed.consumer_key.clone(),
                consumer_secret: a.seed.consumer_secret.clone(),
                callback_urls: a.seed.callback_urls.clone(),
            })
            .collect()
    }

    /// The first connected app.
    pub fn app(&self) -> AppInfo {
        self.apps().into_iter().next().expect("seeds have at least one app when this is used")
    }

    /// Applies a fault switch.
    pub fn fault(&self, fault: Fault) -> Result<Value, FaultError> {
        admin::apply(&self.ctx, fault)
    }

    /// Every access token expires now.
    pub fn expire_access_tokens(&self) {
        self.fault(Fault::ExpireAccessTokens).expect("cannot fail");
    }

    /// Revokes a refresh token (and its access tokens).
    pub fn revoke_refresh_token(&self, token: &str) -> Result<(), FaultError> {
        self.fault(Fault::RevokeRefreshToken { token: Some(token.to_string()) }).map(|_| ())
    }

    /// Turns refresh-token rotation on or off for every app.
    pub fn set_rotation(&self, enabled: bool) {
        self.fault(Fault::Rotation { consumer_key: None, enabled }).expect("seeds have apps");
    }

    /// Moves the first org to a new instance host; returns the new URL.
    pub fn migrate(&self) -> Result<String, FaultError> {
        let moved = self.fault(Fault::Migrate { org: None })?;
        Ok(moved["instance_url"].as_str().expect("migrate reports the URL").to_string())
    }

    /// REQUEST_LIMIT_EXCEEDED after `after` more calls; `None` lifts it.
    pub fn throttle(&self, after: Option<u64>) {
        self.fault(Fault::Throttle { after }).expect("cannot fail");
    }

    /// Fails the next `count` API calls.
    pub fn fail_next(&self, count: u64, kind: FailKind) {
        self.fault(Fault::Fail { count, kind }).expect("cannot fail");
    }

    /// Every REST call answers 503 for `minutes` of emulator time.
    pub fn outage(&self, minutes: u64) {
        self.fault(Fault::Outage { minutes }).expect("cannot fail");
    }

    /// Sets the first org's daily API request limit.
    pub fn set_daily_limit(&self, limit: u64) {
        self.fault(Fault::DailyLimit { org: None, limit }).expect("the seed has an org");
    }

    /// Adds latency to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.set_latency_model(latency, Duration::ZERO);
    }

    /// A latency model: `base` for every request, and `per_record` more for
    /// each record of a `composite/sobjects` call.
    pub fn set_latency_model(&self, base: Duration, per_record: Duration) {
        self.fault(Fault::Latency { ms: base.as_millis() as u64, per_record_ms: per_record.as_millis() as u64 }).expect("cannot fail");
    }

    /// (REST calls being answered now, the most answered at once so far).
    pub fn in_flight(&self) -> (usize, usize) {
        self.ctx.shared.in_flight()
    }

    /// Lifts throttle, failures and latency.
    pub fn clear_faults(&self) {
        self.fault(Fault::Clear).expect("cannot fail");
    }

    /// Moves the emulator's clock forward (codes and sessions expire).
    pub fn advance_clock(&self, by: Duration) {
        self.ctx.shared.advance_clock(by);
    }

    /// The first org's records of `object`, deleted ones with `IsDeleted: true`.
    pub fn records(&self, object: &str) -> Vec<Value> {
        admin::records(&self.ctx.shared, 0, object)
    }

    /// From now on, every org keeps a copy of each record every API create
    /// or update leaves (for [`Emulator::writes`]; off by default, as it
    /// holds a copy of every write).
    pub fn keep_writes(&self) {
        for org in &mut self.ctx.shared.lock().orgs {
            org.store.keep_writes();
        }
    }

    /// The first org's records of `object` as every API create or update
    /// left them since [`Emulator::keep_writes`], oldest first: what the
    /// org was sent, in the order it took it.
    pub fn writes(&self, object: &str) -> Vec<Value> {
        admin::writes(&self.ctx.shared, 0, object)
    }

    /// The first org's live records of `object`.
    pub fn live_records(&self, object: &str) -> Vec<Value> {
        self.records(object).into_iter().filter(|r| r["IsDeleted"] != Value::Bool(true)).collect()
    }

    /// Creates records in the first org as if its users had (no API call
    /// counted), e.g. Contacts an org held before provisioning began.
    pub fn insert_records(&self, object: &str, records: Vec<serde_json::Map<String, Value>>) -> Result<Vec<String>, String> {
        admin::insert(&self.ctx.shared, 0, object, records)
    }

    /// Every logged request (login and instance hosts), oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.ctx.shared.lock().log.clone()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.ctx.shared.lock().log.clear();
    }

    /// The first org's API calls today and its daily limit.
    pub fn api_usage(&self) -> (u64, u64) {
        let inner = self.ctx.shared.lock();
        (inner.orgs[0].api_usage, inner.orgs[0].daily_limit)
    }

    /// The state of a refresh token, if it was ever issued.
    pub fn refresh_token_status(&self, token: &str) -> Option<RefreshStatus> {
        self.ctx.shared.lock().refresh.get(token).map(|r| r.status)
    }

    /// Adds a callback URL to the app with `consumer_key`.
    pub fn add_callback_url(&self, consumer_key: &str, url: &str) -> Result<(), String> {
        admin::add_callback_url(&self.ctx.shared, consumer_key, url)
    }

    /// Pre-authorizes `username` for an app whose policies admit only
    /// admin-approved users (an External Client App's default).
    pub fn pre_authorize(&self, consumer_key: &str, username: &str) -> Result<(), String> {
        admin::pre_authorize(&self.ctx.shared, consumer_key, username)
    }

    /// Sets an app's Permitted Users policy: `None`, all users may
    /// self-authorize; a list of usernames, only admin-approved users (these).
    pub fn set_permitted_users(&self, consumer_key: &str, pre_authorized: Option<Vec<String>>) -> Result<(), String> {
        admin::set_permitted_users(&self.ctx.shared, consumer_key, pre_authorized)
    }

    /// How long a Bulk API job takes once closed, in emulator time: `base`
    /// per job and `per_record` for each record.
    pub fn set_bulk_processing(&self, base: Duration, per_record: Duration) {
        let mut inner = self.ctx.shared.lock();
        inner.bulk.base_ms = base.as_millis() as u64;
        inner.bulk.per_record_us = per_record.as_micros() as u64;
    }

    /// The org's daily Bulk API batch allowance (one batch per 10,000 records).
    pub fn set_bulk_daily_batches(&self, limit: u64) {
        self.ctx.shared.lock().bulk.daily_limit = Some(limit);
    }

    /// The Bulk API jobs made so far: id and state, oldest first.
    pub fn bulk_jobs(&self) -> Vec<(String, String)> {
        self.ctx.shared.lock().bulk_jobs.values().map(|j| (j.id.clone(), format!("{:?}", j.state))).collect()
    }

    /// Adds a user who can log in (a System Administrator of the first
    /// org); returns their id.
    pub fn add_login_user(&self, username: &str, password: &str, last_name: &str) -> Result<String, String> {
        admin::add_login_user(&self.ctx.shared, username, password, last_name)
    }

    /// Uploads a certificate (PEM) to an app's "Use digital signatures",
    /// replacing the one there.
    pub fn upload_certificate(&self, consumer_key: &str, pem: &str) -> Result<(), String> {
        admin::upload_certificate(&self.ctx.shared, consumer_key, pem)
    }

    /// URLs, orgs, apps, usage and faults as JSON (what `GET /_emulator` returns).
    pub fn summary(&self) -> Value {
        admin::summary(&self.ctx.shared)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Safe inside async contexts too, unlike dropping the runtime.
            rt.shutdown_background();
        }
    }
}
