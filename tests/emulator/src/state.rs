//! The emulator's whole state behind one lock: orgs and their records,
//! connected apps, login accounts, OAuth codes and tokens, fault switches,
//! and the request log. HTTP handlers in `oauth`, `rest` and `admin` are thin
//! wrappers around the methods here, which the library API also calls.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::errors::OAuthError;
use crate::ids::{self, IdGen, prefix};
use crate::records::{Record, Store};
use crate::schema::Schema;
use crate::seed::{AppSeed, Seed};

/// How long an authorization code can be redeemed.
pub const CODE_LIFETIME_MS: i64 = 15 * 60 * 1000;
/// How long a login/consent transaction stays open.
pub const TRANSACTION_LIFETIME_MS: i64 = 30 * 60 * 1000;
/// Refresh tokens one user may hold for one app; the oldest dies beyond this.
pub const MAX_APPROVALS_PER_USER: usize = 5;
/// Entries kept in the request log.
pub const REQUEST_LOG_CAP: usize = 10_000;

/// One org.
#[derive(Debug)]
pub struct Org {
    /// `00D…` id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Index into the instance list.
    pub instance: usize,
    /// Objects and fields.
    pub schema: Schema,
    /// Records.
    pub store: Store,
    /// `DailyApiRequests.Max`.
    pub daily_limit: u64,
    /// API calls counted today.
    pub api_usage: u64,
    /// The UTC day `api_usage` counts.
    pub usage_day: i64,
    /// Access token lifetime.
    pub session_timeout_ms: i64,
    /// Open query locators, oldest first: id → (batch size, all rendered records).
    pub locators: IndexMap<String, (usize, Vec<Value>)>,
}

/// One connected app.
#[derive(Debug, Clone)]
pub struct App {
    /// Owning org.
    pub org: usize,
    /// Settings from the seed, changed by fault switches.
    pub seed: AppSeed,
}

/// A login account (a seeded User with a password).
#[derive(Debug, Clone)]
pub struct Account {
    /// Org index.
    pub org: usize,
    /// `005…` id.
    pub user_id: String,
    /// Password.
    pub password: String,
}

/// An instance host.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Name, like `na1`.
    pub name: String,
    /// Base URL, like `http://127.0.0.1:40123`.
    pub url: String,
}

/// A live access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// Org index.
    pub org: usize,
    /// User id.
    pub user_id: String,
    /// App index.
    pub app: usize,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Issue time (ms).
    pub issued_at: i64,
    /// Expiry (ms).
    pub expires_at: i64,
    /// The refresh token it came from or with.
    pub refresh: Option<String>,
}

/// State of a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshStatus {
    /// Usable.
    Active,
    /// Replaced by rotation; presenting it kills its family.
    RotatedOut,
    /// Revoked.
    Revoked,
}

/// A refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// Org index.
    pub org: usize,
    /// User id.
    pub user_id: String,
    /// App index.
    pub app: usize,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Rotation family (the first token's value).
    pub family: String,
    /// Status.
    pub status: RefreshStatus,
    /// Issue time (ms).
    pub issued_at: i64,
    /// When its family was approved, in order: approvals in the same
    /// millisecond still have an oldest.
    pub approval: u64,
}

/// An authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    app: usize,
    org: usize,
    user_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    scopes: Vec<String>,
    expires_at: i64,
    used: bool,
}

/// An authorize request waiting for login or consent.
#[derive(Debug, Clone)]
pub struct AuthTx {
    /// App index.
    pub app: usize,
    /// Where to send the browser back.
    pub redirect_uri: String,
    /// The client's `state`.
    pub state: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// PKCE challenge (S256).
    pub challenge: Option<String>,
    /// `prompt` values.
    pub prompt: Vec<String>,
    /// Logged-in user, once known.
    pub user: Option<(usize, String)>,
    /// When it was opened (ms).
    pub created: i64,
}

/// Which calls fail, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// HTTP 500 UNKNOWN_EXCEPTION.
    ServerError,
    /// UNABLE_TO_LOCK_ROW.
    UnableToLockRow,
}

/// Fault switches.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    /// REST calls still allowed before REQUEST_LIMIT_EXCEEDED (`None`: no throttle).
    pub throttle_after: Option<u64>,
    /// REST calls still to fail, and how.
    pub fail_next: u64,
    /// How they fail.
    pub fail_kind: Option<FailKind>,
    /// Added to every request.
    pub latency_ms: u64,
    /// Added to a collections call for each of its records.
    pub latency_per_record_ms: u64,
    /// Until this time (emulator clock, ms) every REST call answers 503,
    /// as in an outage or maintenance window.
    pub down_until: Option<i64>,
}

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// Sequence number.
    pub seq: u64,
    /// `login` or the instance name.
    pub host: String,
    /// Method.
    pub method: String,
    /// Path (without query).
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// Response status.
    pub status: u16,
    /// Whether it counted against the daily API limit.
    pub api_call: bool,
    /// Request body (text, first 64 KiB).
    pub body: String,
    /// The username the bearer token acts as, when it names a live one:
    /// whom Salesforce's audit trail would name.
    pub user: Option<String>,
}

/// The lock-protected part.
#[derive(Debug)]
pub struct Inner {
    /// Orgs.
    pub orgs: Vec<Org>,
    /// Connected apps.
    pub apps: Vec<App>,
    /// Login accounts by lowercase username.
    pub accounts: HashMap<String, Account>,
    /// Instance hosts.
    pub instances: Vec<Instance>,
    /// Access tokens.
    pub access: HashMap<String, AccessToken>,
    /// Refresh tokens.
    pub refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, AuthCode>,
    /// Open authorize transactions.
    pub txs: HashMap<String, AuthTx>,
    /// Browser sessions on the login host: cookie → (org, user).
    pub sessions: HashMap<String, (usize, String)>,
    /// (user id, app) pairs already approved.
    pub approvals: HashSet<(String, usize)>,
    /// Refresh tokens being redeemed right now.
    pub in_flight: HashSet<String>,
    /// Fault switches.
    pub faults: Faults,
    /// Bulk API 2.0 ingest jobs, by id.
    pub bulk_jobs: IndexMap<String, crate::bulk::BulkJob>,
    /// How long Bulk jobs take, and the batches used today.
    pub bulk: crate::bulk::BulkSettings,
    /// Request log.
    pub log: Vec<LoggedRequest>,
    log_seq: u64,
    approval_seq: u64,
}

/// Shared by every listener and the library handle.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    /// Id source.
    pub ids: IdGen,
    /// The login host's base URL.
    pub login_url: String,
    clock_offset_ms: AtomicI64,
    /// REST calls being answered now, and the most at once so far.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts one REST call as in flight while it lives.
pub struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Random URL-safe text of `n` bytes of entropy.
///
/// The host has its own (`host/src/secrets.rs`): the emulator stands in for
/// Salesforce and shares no code with the registry it is tested against.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Standard base64 (with `+`, `/` and `=`) of `n` random bytes: the shape of
/// Salesforce's authorization codes, which must be decoded exactly once.
fn random_std_base64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS has randomness");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Salesforce's datetime format: `2026-11-24T10:00:00.000+0000`.
pub fn format_datetime(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"))
        .expect("every field is in the description")
}

/// base64(HMAC-SHA256(key = client secret, message = id + issued_at)).
pub fn signature(secret: &str, id_url: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(id_url.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// base64url(SHA-256(verifier)), the S256 PKCE challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What a successful token request grants, before it is rendered.
#[derive(Debug, Clone)]
pub struct Grant {
    /// New access token.
    pub access_token: String,
    /// Refresh token to return, if any.
    pub refresh_token: Option<String>,
    /// Org index.
    pub org: usize,
    /// User id.
    pub user_id: String,
    /// App index.
    pub app: usize,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Issue time (ms).
    pub issued_at: i64,
    /// Which grant: client credentials add `api_instance_url`; JWT bearer
    /// answers carry no signature or `issued_at` (no secret is involved).
    pub kind: GrantKind,
}

/// The grant an access token came from, where the answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// Authorization code or refresh token.
    User,
    /// Client credentials.
    ClientCredentials,
    /// JWT bearer.
    Jwt,
}

impl Shared {
    /// Builds the state from a seed; instance URLs are filled in by the server
    /// once the listeners are bound.
    pub fn new(seed: &Seed, login_url: String) -> Result<Self, String> {
        if seed.orgs.is_empty() {
            return Err("invalid seed: at least one org is needed".into());
        }
        let ids = IdGen::default();
        let mut inner = Inner {
            orgs: Vec::new(),
            apps: Vec::new(),
            accounts: HashMap::new(),
            instances: Vec::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            txs: HashMap::new(),
            sessions: HashMap::new(),
            approvals: HashSet::new(),
            in_flight: HashSet::new(),
            faults: Faults::default(),
            bulk_jobs: IndexMap::new(),
            bulk: crate::bulk::BulkSettings { base_ms: 500, per_record_us: 50, ..Default::default() },
            log: Vec::new(),
            log_seq: 0,
            approval_seq: 0,
        };
        let now = now_ms(0);
        let stamp = format_datetime(now);
        let mut consumer_keys = HashSet::new();
        for (oi, o) in seed.orgs.iter().enumerate() {
            let schema = Schema::new(&o.custom_fields).map_err(|e| format!("invalid seed: org {}: {e}", o.name))?;
            let instance = match inner.instances.iter().position(|i| i.name == o.instance) {
                Some(i) => i,
                None => {
                    inner.instances.push(Instance { name: o.instance.clone(), url: String::new() });
                    inner.instances.len() - 1
                }
            };
            let org_id = ids.next(prefix::ORG);
            let mut store = Store::default();
            let mut profile_ids = HashMap::new();
            let sys = |id: &str, object: &'static str, pairs: Vec<(&str, Value)>| {
                let mut fields = IndexMap::new();
                fields.insert("Id".to_string(), Value::String(id.to_string()));
                for (k, v) in pairs {
                    fields.insert(k.to_string(), v);
                }
                for k in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
                    fields.insert(k.to_string(), Value::String(stamp.clone()));
                }
                Record { id: id.to_string(), object, fields, deleted: false }
            };
            for p in &o.profiles {
                let id = ids.next(prefix::PROFILE);
                profile_ids.insert(p.clone(), id.clone());
                store.insert(&schema, sys(&id, "Profile", vec![("Name", json!(p))]));
            }
            for a in &o.accounts {
                let id = ids.next(prefix::ACCOUNT);
                store.insert(&schema, sys(&id, "Account", vec![("Name", json!(a)), ("IsDeleted", json!(false))]));
            }
            for (ui, u) in o.users.iter().enumerate() {
                let key = u.username.to_lowercase();
                if inner.accounts.contains_key(&key) {
                    return Err(format!("invalid seed: username {} appears twice (usernames are unique across all orgs)", u.username));
                }
                let profile = profile_ids
                    .get(&u.profile)
                    .ok_or_else(|| format!("invalid seed: user {}: no profile {} in org {}", u.username, u.profile, o.name))?;
                let id = ids.next(prefix::USER);
                let alias: String = u.username.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
                let mut pairs = vec![
                    ("Username", json!(u.username)),
                    ("LastName", json!(u.last_name)),
                    ("Email", json!(u.email.clone().unwrap_or_else(|| u.username.clone()))),
                    ("Alias", json!(alias)),
                    ("CommunityNickname", json!(format!("{alias}{ui}"))),
                    ("TimeZoneSidKey", json!("America/Los_Angeles")),
                    ("LocaleSidKey", json!("en_US")),
                    ("EmailEncodingKey", json!("UTF-8")),
                    ("LanguageLocaleKey", json!("en_US")),
                    ("ProfileId", json!(profile)),
                    ("IsActive", json!(true)),
                ];
                let mut name = Vec::new();
                if let Some(f) = &u.first_name {
                    pairs.push(("FirstName", json!(f)));
                    name.push(f.clone());
                }
                name.push(u.last_name.clone());
                pairs.push(("Name", json!(name.join(" "))));
                store.insert(&schema, sys(&id, "User", pairs));
                inner.accounts.insert(key, Account { org: oi, user_id: id, password: u.password.clone() });
            }
            let apps: Vec<AppSeed> = o.connected_apps.iter().cloned().chain(o.external_client_apps.iter().cloned().map(AppSeed::from)).collect();
            for a in &apps {
                if !consumer_keys.insert(a.consumer_key.clone()) {
                    return Err(format!("invalid seed: consumer key of app {} is used twice", a.name));
                }
                if let Some(u) = &a.client_credentials_user
                    && inner.accounts.get(&u.to_lowercase()).is_none_or(|acc| acc.org != oi)
                {
                    return Err(format!("invalid seed: app {}: client credentials user {u} is not a user of org {}", a.name, o.name));
                }
                for cb in &a.callback_urls {
                    url::Url::parse(cb).map_err(|e| format!("invalid seed: app {}: callback URL {cb}: {e}", a.name))?;
                }
                for u in a.pre_authorized_users.iter().flatten() {
                    if inner.accounts.get(&u.to_lowercase()).is_none_or(|acc| acc.org != oi) {
                        return Err(format!("invalid seed: app {}: pre-authorized user {u} is not a user of org {}", a.name, o.name));
                    }
                }
                inner.apps.push(App { org: oi, seed: a.clone() });
            }
            inner.orgs.push(Org {
                id: org_id,
                name: o.name.clone(),
                instance,
                schema,
                store,
                daily_limit: o.daily_api_limit,
                api_usage: 0,
                usage_day: now.div_euclid(86_400_000),
                session_timeout_ms: (o.session_timeout_secs as i64).saturating_mul(1000),
                locators: IndexMap::new(),
            });
        }
        Ok(Shared {
            inner: Mutex::new(inner),
            ids,
            login_url,
            clock_offset_ms: AtomicI64::new(0),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        })
    }

    /// Locks the state. A panic in one handler must not wedge the emulator, so
    /// a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The emulator's clock (ms since the epoch), which tests can move forward.
    pub fn now(&self) -> i64 {
        now_ms(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward, so codes and sessions expire without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// The identity URL of a user.
    pub fn id_url(&self, org_id: &str, user_id: &str) -> String {
        format!("{}/id/{org_id}/{user_id}", self.login_url)
    }

    /// Waits for the configured latency.
    pub async fn delay(&self) {
        let ms = self.lock().faults.latency_ms;
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Waits the configured cost of `records` records in one call (the
    /// latency model's per-record part, for collections).
    pub async fn delay_records(&self, records: usize) {
        let ms = self.lock().faults.latency_per_record_ms.saturating_mul(records as u64);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Marks a REST call in flight until the guard is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    /// (REST calls in flight now, the most at once since the last reset).
    pub fn in_flight(&self) -> (usize, usize) {
        (self.in_flight.load(Ordering::Relaxed), self.max_in_flight.load(Ordering::Relaxed))
    }
}

fn now_ms(offset: i64) -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0) + offset
}

impl Inner {
    /// The app with consumer key `client_id`.
    pub fn app_by_key(&self, client_id: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.seed.consumer_key == client_id)
    }

    /// Appends to the request log (bounded).
    pub fn log_request(&mut self, mut entry: LoggedRequest) {
        self.log_seq += 1;
        entry.seq = self.log_seq;
        if self.log.len() >= REQUEST_LOG_CAP {
            self.log.drain(..REQUEST_LOG_CAP / 10);
        }
        self.log.push(entry);
    }

    /// Checks an access token; `None` when unknown, revoked, expired, or its
    /// user was deactivated.
    pub fn session(&self, token: &str, now: i64) -> Option<&AccessToken> {
        self.access.get(token).filter(|t| t.expires_at > now && self.user_active(t.org, &t.user_id))
    }

    /// Whether the user exists and `IsActive` is true.
    pub fn user_active(&self, org: usize, user_id: &str) -> bool {
        self.user(org, user_id).is_some_and(|u| u.get("IsActive") == Value::Bool(true))
    }

    /// The login account whose *current* `Username` is `username` (users can
    /// be renamed through the API).
    pub fn find_login(&self, username: &str) -> Option<Account> {
        let uid = self.orgs.iter().find_map(|o| o.store.lookup("User", "Username", username).into_iter().next())?;
        self.accounts.values().find(|a| a.user_id == uid).cloned()
    }

    /// Resets the org's daily count at UTC midnight.
    pub fn roll_day(&mut self, org: usize, now: i64) {
        let o = &mut self.orgs[org];
        let day = now.div_euclid(86_400_000);
        if day != o.usage_day {
            o.usage_day = day;
            o.api_usage = 0;
        }
    }

    /// Issues a code for an approved transaction.
    pub fn issue_code(&mut self, tx: &AuthTx, org: usize, user_id: &str, now: i64) -> String {
        // Standard base64, so it usually ends in "==" and carries '+' or '/':
        // a client that decodes it twice, or not at all, breaks.
        let code = loop {
            let c = format!("aPrx{}", random_std_base64(64));
            if c.contains('+') && c.contains('/') {
                break c;
            }
        };
        self.codes.insert(
            code.clone(),
            AuthCode {
                app: tx.app,
                org,
                user_id: user_id.to_string(),
                redirect_uri: tx.redirect_uri.clone(),
                challenge: tx.challenge.clone(),
                scopes: tx.scopes.clone(),
                expires_at: now + CODE_LIFETIME_MS,
                used: false,
            },
        );
        code
    }

    /// Drops transactions and codes past their lifetime.
    pub fn sweep(&mut self, now: i64) {
        self.txs.retain(|_, t| now - t.created < TRANSACTION_LIFETIME_MS);
        self.codes.retain(|_, c| now < c.expires_at + CODE_LIFETIME_MS);
    }

    /// Starts an authorize transaction.
    pub fn open_tx(&mut self, tx: AuthTx) -> String {
        let id = random_token(24);
        self.txs.insert(id.clone(), tx);
        id
    }

    /// Client authentication for the token, revoke and introspect endpoints.
    /// `secret_needed` is false only where the app lets PKCE stand in for it.
    pub fn authenticate_client(&self, client_id: Option<&str>, secret: Option<&str>, secret_needed: bool) -> Result<usize, OAuthError> {
        let client_id = client_id.filter(|c| !c.is_empty()).ok_or_else(OAuthError::unknown_client)?;
        let app = self.app_by_key(client_id).ok_or_else(OAuthError::unknown_client)?;
        match secret {
            Some(s) if !s.is_empty() => {
                if s != self.apps[app].seed.consumer_secret {
                    return Err(OAuthError::bad_secret());
                }
            }
            _ if secret_needed => return Err(OAuthError::bad_secret()),
            _ => {}
        }
        Ok(app)
    }

    /// `grant_type=authorization_code`.
    /// `secret_given` says whether a correct client secret came with the
    /// request; it may be omitted only for a PKCE code of an app that does
    /// not require the secret (unconfirmed: Salesforce's exact rule).
    pub fn redeem_code(
        &mut self,
        app: usize,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        secret_given: bool,
        now: i64,
    ) -> Result<Grant, OAuthError> {
        let require_secret = self.apps[app].seed.require_secret;
        let c = self.codes.get_mut(code).filter(|c| c.app == app).ok_or_else(|| OAuthError::new("invalid_grant", "invalid authorization code"))?;
        if !secret_given && (require_secret || c.challenge.is_none()) {
            return Err(OAuthError::bad_secret());
        }
        if c.used || now >= c.expires_at {
            return Err(OAuthError::new("invalid_grant", "expired authorization code"));
        }
        if redirect_uri != Some(c.redirect_uri.as_str()) {
            return Err(OAuthError::new("redirect_uri_mismatch", "redirect_uri must match configuration"));
        }
        if let Some(challenge) = &c.challenge {
            // RFC 7636: 43–128 characters of [A-Za-z0-9-._~].
            let ok = verifier.is_some_and(|v| {
                (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) && pkce_challenge(v) == *challenge
            });
            if !ok {
                return Err(OAuthError::new("invalid_grant", "invalid code verifier"));
            }
        }
        c.used = true;
        let c = c.clone();
        Ok(self.grant(app, c.org, &c.user_id, c.scopes, None, now, GrantKind::User))
    }

    /// `grant_type=refresh_token`, after the caller marked `token` in flight.
    pub fn redeem_refresh(&mut self, app: usize, token: &str, now: i64) -> Result<Grant, OAuthError> {
        let rt = self.refresh.get(token).filter(|r| r.app == app).cloned().ok_or_else(OAuthError::dead_refresh_token)?;
        if !self.user_active(rt.org, &rt.user_id) {
            // Unconfirmed wording.
            return Err(OAuthError::new("invalid_grant", "inactive user"));
        }
        match rt.status {
            RefreshStatus::Active => {}
            RefreshStatus::RotatedOut => {
                // Reuse of a rotated-out token: assume it leaked and kill the family.
                self.revoke_family(&rt.family);
                return Err(OAuthError::dead_refresh_token());
            }
            RefreshStatus::Revoked => return Err(OAuthError::dead_refresh_token()),
        }
        if self.apps[app].seed.rotate_refresh_tokens {
            if let Some(r) = self.refresh.get_mut(token) {
                r.status = RefreshStatus::RotatedOut;
            }
            let next = self.new_refresh_token(&rt, now);
            Ok(self.grant(app, rt.org, &rt.user_id, rt.scopes, Some((next, true)), now, GrantKind::User))
        } else {
            Ok(self.grant(app, rt.org, &rt.user_id, rt.scopes, Some((token.to_string(), false)), now, GrantKind::User))
        }
    }

    /// `grant_type=client_credentials`.
    pub fn client_credentials(&mut self, app: usize, now: i64) -> Result<Grant, OAuthError> {
        let a = &self.apps[app];
        let user = a
            .seed
            .client_credentials_user
            .as_ref()
            .and_then(|u| self.accounts.get(&u.to_lowercase()))
            .cloned()
            .ok_or_else(|| OAuthError::new("invalid_grant", "no client credentials user enabled"))?;
        let scopes: Vec<String> = a.seed.scopes.iter().filter(|s| !is_refresh_scope(s)).cloned().collect();
        Ok(self.grant(app, user.org, &user.user_id, scopes, None, now, GrantKind::ClientCredentials))
    }

    fn new_refresh_token(&mut self, from: &RefreshToken, now: i64) -> String {
        let token = format!("5Aep861{}", random_token(48));
        self.refresh.insert(token.clone(), RefreshToken { status: RefreshStatus::Active, issued_at: now, ..from.clone() });
        token
    }

    /// Creates the access token (and, for a code grant with a refresh scope, a
    /// refresh token). `refresh` is the refresh token the grant came from and
    /// whether to return it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn grant(
        &mut self,
        app: usize,
        org: usize,
        user_id: &str,
        scopes: Vec<String>,
        refresh: Option<(String, bool)>,
        now: i64,
        kind: GrantKind,
    ) -> Grant {
        let org_id = self.orgs[org].id.clone();
        let access_token = format!("{}!{}", &org_id[..15], random_token(72));
        let (refresh_for_access, refresh_out) = match refresh {
            Some((t, give)) => (Some(t.clone()), give.then_some(t)),
            None if kind == GrantKind::User && scopes.iter().any(|s| is_refresh_scope(s)) => {
                let family = format!("5Aep861{}", random_token(48));
                self.approval_seq += 1;
                self.refresh.insert(
                    family.clone(),
                    RefreshToken {
                        org,
                        user_id: user_id.to_string(),
                        app,
                        scopes: scopes.clone(),
                        family: family.clone(),
                        status: RefreshStatus::Active,
                        issued_at: now,
                        approval: self.approval_seq,
                    },
                );
                self.enforce_approval_limit(user_id, app);
                (Some(family.clone()), Some(family))
            }
            None => (None, None),
        };
        self.access.insert(
            access_token.clone(),
            AccessToken {
                org,
                user_id: user_id.to_string(),
                app,
                scopes: scopes.clone(),
                issued_at: now,
                expires_at: now + self.orgs[org].session_timeout_ms,
                refresh: refresh_for_access,
            },
        );
        Grant { access_token, refresh_token: refresh_out, org, user_id: user_id.to_string(), app, scopes, issued_at: now, kind }
    }

    /// Keeps at most five live refresh-token families per user and app.
    fn enforce_approval_limit(&mut self, user_id: &str, app: usize) {
        let mut families: Vec<(u64, String)> = self
            .refresh
            .values()
            .filter(|r| r.user_id == user_id && r.app == app && r.status == RefreshStatus::Active)
            .map(|r| (r.approval, r.family.clone()))
            .collect();
        families.sort();
        families.dedup();
        while families.len() > MAX_APPROVALS_PER_USER {
            let (_, oldest) = families.remove(0);
            self.revoke_family(&oldest);
        }
    }

    /// Whether `user_id` approved `app` in a browser and the approval stands
    /// (a live refresh token).
    pub fn has_approved(&self, user_id: &str, app: usize) -> bool {
        self.refresh.values().any(|r| r.user_id == user_id && r.app == app && r.status == RefreshStatus::Active)
    }

    /// Revokes every refresh token of a rotation family and their access tokens.
    pub fn revoke_family(&mut self, family: &str) {
        let members: Vec<String> = self.refresh.iter().filter(|(_, r)| r.family == family).map(|(k, _)| k.clone()).collect();
        for m in &members {
            if let Some(r) = self.refresh.get_mut(m) {
                r.status = RefreshStatus::Revoked;
            }
        }
        self.access.retain(|_, a| a.refresh.as_ref().is_none_or(|r| !members.contains(r)));
    }

    /// Revokes an access or refresh token; false when it is unknown.
    pub fn revoke(&mut self, token: &str) -> bool {
        if self.access.remove(token).is_some() {
            return true;
        }
        match self.refresh.get(token).map(|r| (r.family.clone(), r.status)) {
            Some((family, RefreshStatus::Active)) => {
                self.revoke_family(&family);
                true
            }
            _ => false,
        }
    }

    /// Renders a grant as Salesforce's token response, fields in its order.
    pub fn token_response(&self, shared: &Shared, g: &Grant) -> Value {
        let org = &self.orgs[g.org];
        let id_url = shared.id_url(&org.id, &g.user_id);
        let issued_at = g.issued_at.to_string();
        let secret = &self.apps[g.app].seed.consumer_secret;
        let instance_url = self.instances[org.instance].url.clone();
        let mut v = serde_json::Map::new();
        v.insert("access_token".into(), json!(g.access_token));
        if let Some(r) = &g.refresh_token {
            v.insert("refresh_token".into(), json!(r));
        }
        if g.kind != GrantKind::Jwt {
            v.insert("signature".into(), json!(signature(secret, &id_url, &issued_at)));
        }
        v.insert("scope".into(), json!(g.scopes.join(" ")));
        v.insert("instance_url".into(), json!(instance_url));
        v.insert("id".into(), json!(id_url));
        v.insert("token_type".into(), json!("Bearer"));
        if g.kind != GrantKind::Jwt {
            v.insert("issued_at".into(), json!(issued_at));
        }
        if g.kind == GrantKind::ClientCredentials {
            v.insert("api_instance_url".into(), json!(instance_url));
        }
        Value::Object(v)
    }

    /// The user record of a session.
    pub fn user(&self, org: usize, user_id: &str) -> Option<&Record> {
        self.orgs[org].store.by_id(user_id)
    }

    /// Counts a REST call against the org's daily limit, resetting at UTC midnight.
    pub fn count_call(&mut self, org: usize, now: i64) {
        self.roll_day(org, now);
        self.orgs[org].api_usage += 1;
    }
}

/// Scopes that grant a refresh token.
pub fn is_refresh_scope(s: &str) -> bool {
    s == "refresh_token" || s == "offline_access"
}

/// Parses a space-separated scope list.
pub fn parse_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in s.split([' ', '+']).filter(|p| !p.is_empty()) {
        if !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    out
}

/// The normalised id of `raw` if it is an id of `prefix`.
pub fn id_of(raw: &str, pfx: &str) -> Option<String> {
    ids::normalize(raw).filter(|id| id.starts_with(pfx))
}

/// Shared handle type.
pub type SharedState = Arc<Shared>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_and_signatures() {
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(format_datetime(1_795_000_000_123), "2026-11-18T11:06:40.123+0000");
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(signature("Jefe", "what do ya want ", "for nothing?"), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        // RFC 7636 appendix B.
        assert_eq!(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn scopes_parse_without_duplicates() {
        assert_eq!(parse_scopes("api  refresh_token api"), vec!["api", "refresh_token"]);
        assert!(parse_scopes("").is_empty());
    }
}
