//! The test bed for plugin authors: the Salesforce emulator, a component
//! loaded in the same sandbox the registry uses, typed calls, and what the
//! plugin sent; and the [`conformance`] suite behind `registry-host plugin
//! test`. Add it as a dev-dependency; it works in a plain `#[tokio::test]`:
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! use registry_plugin_testbed::{TestBed, person};
//! let bed = TestBed::start("target/wasm32-wasip2/release/my_plugin.wasm").await?;
//! let tokens = bed.client_credentials().await?;
//! let outcome = bed.provision(&bed.context(&[], &tokens), &bed.added(person("R1", "Ada", "Lovelace"))).await??;
//! assert_eq!(bed.emulator.live_records("Contact").len(), 1);
//! assert!(bed.requests().iter().any(|r| r.method == "POST"));
//! # let _ = outcome; Ok(()) }
//! ```

#![deny(missing_docs)]

use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::oauth2_server::AuthorizationRequest;
use registry_plugin_runtime::latest::provisioning_target::{ProvisionOutcome, ProvisionRequest, TargetContext};
use registry_plugin_runtime::latest::types::{
    self, Email, GrantType, Identifier, Name, Oauth2ServerConfig, PersonStatus, PluginError, ProvisioningAction, RemoteRef, Role,
    TokenSet,
};
use registry_plugin_runtime::{CallError, HttpAllowlist, Plugin, Runtime, RuntimeConfig};
use salesforce_emulator::seed::{DEMO_CONSUMER_KEY, DEMO_CONSUMER_SECRET, DEMO_PASSWORD, DEMO_USERNAME};
use salesforce_emulator::{Emulator, LoggedRequest, Seed};
use serde_json::Value;
use sha2::Digest;

pub mod conformance;

/// The PKCE verifier the test bed's authorization code flow uses; a fixed
/// value is fine against the emulator (43 to 128 URL-safe characters).
const VERIFIER: &str = "registry-plugin-testbed-pkce-verifier-0123456789abcdef";

/// The redirect URI the test bed registers with the emulator's app.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth2/callback/1";

/// An emulator and a plugin, ready for calls.
pub struct TestBed {
    /// The Salesforce emulator (its demo org and connected app).
    pub emulator: Emulator,
    /// The plugin, loaded in the registry's sandbox.
    pub plugin: Plugin,
    deadline: std::time::Duration,
    /// The SCIM service a plugin that takes a pasted token is tested
    /// against, if one was given.
    scim: Option<ScimService>,
}

/// A SCIM 2.0 service for plugins with the `static-bearer` grant: its base
/// URL (the one before `/Users`) and the token it takes. Its records are
/// read back over SCIM.
#[derive(Debug, Clone)]
pub struct ScimService {
    /// The base URL.
    pub url: String,
    /// The bearer token.
    pub token: String,
}

/// The OAuth2 server configuration an admin would enter for the emulator's
/// demo connected app.
pub fn emulator_server(emulator: &Emulator, grant_type: GrantType) -> Oauth2ServerConfig {
    Oauth2ServerConfig {
        server_url: emulator.login_url(),
        client_id: DEMO_CONSUMER_KEY.into(),
        client_secret: DEMO_CONSUMER_SECRET.into(),
        grant_type,
        scope: Some("api refresh_token".into()),
        token_url: None,
    }
}

/// An active person as plugins get it: an official, verified `email`, the
/// same address as their eppn, and a staff role (Analyst in Research).
pub fn person_with_email(id: &str, given: &str, family: &str, email: &str) -> types::Person {
    types::Person {
        id: id.into(),
        status: PersonStatus::Active,
        name: Name { honorific: None, given: given.into(), middle: None, family: Some(family.into()), suffix: None },
        emails: vec![Email { address: email.into(), kind: "official".into(), verified: true }],
        identifiers: vec![Identifier { kind: "eppn".into(), value: email.into() }],
        roles: vec![Role {
            affiliation: "staff".into(),
            title: Some("Analyst".into()),
            organization: None,
            department: Some("Research".into()),
            office_phone: None,
            mobile_phone: None,
            address: None,
        }],
    }
}

/// [`person_with_email`] with email `<given>@example.org`.
pub fn person(id: &str, given: &str, family: &str) -> types::Person {
    person_with_email(id, given, family, &format!("{}@example.org", given.to_lowercase()))
}

impl TestBed {
    /// Starts the emulator and loads the component at `wasm` with the
    /// registry's default sandbox settings.
    pub async fn start(wasm: impl AsRef<Path>) -> anyhow::Result<TestBed> {
        Self::start_with(wasm, RuntimeConfig::default()).await
    }

    /// Like [`TestBed::start`], with other sandbox settings. Plain http to
    /// loopback is allowed whatever `config` says: the emulator is local.
    pub async fn start_with(wasm: impl AsRef<Path>, mut config: RuntimeConfig) -> anyhow::Result<TestBed> {
        config.insecure_loopback = true;
        let emulator = Emulator::start(Seed::demo(vec![REDIRECT_URI.into()])).context("starting the Salesforce emulator")?;
        let deadline = config.deadline;
        let plugin = Runtime::new(config)?.load_file(wasm.as_ref()).await?;
        Ok(TestBed { emulator, plugin, deadline, scim: None })
    }

    /// The bed with a SCIM service for a plugin that takes a pasted token:
    /// the conformance run gets its token from it and reads its records.
    pub fn with_scim(mut self, scim: ScimService) -> TestBed {
        self.scim = Some(scim);
        self
    }

    /// The SCIM service, if the bed has one.
    pub fn scim(&self) -> Option<&ScimService> {
        self.scim.as_ref()
    }

    /// The token set a pasted bearer token becomes (as the registry makes
    /// it: the token, and the service's URL as the instance).
    pub fn static_bearer(&self) -> Option<TokenSet> {
        self.scim.as_ref().map(|s| TokenSet {
            access_token: s.token.clone(),
            refresh_token: None,
            instance_url: Some(s.url.clone()),
            issued_at: None,
            expires_at: None,
            scope: None,
            token_type: "Bearer".into(),
            extra: vec![],
        })
    }

    /// The live records of `object`: the emulator's, or, with a SCIM
    /// service, its resources of that type (`User`, `Group`) read over SCIM,
    /// each as `Id`, `IsActive` and its values by attribute path.
    pub async fn live_records(&self, object: &str) -> anyhow::Result<Vec<Value>> {
        let Some(scim) = &self.scim else { return Ok(self.emulator.live_records(object)) };
        let listed: Value = reqwest::Client::new()
            .get(format!("{}/{object}s?count=1000", scim.url.trim_end_matches('/')))
            .bearer_auth(&scim.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(listed["Resources"].as_array().into_iter().flatten().map(flat_record).collect())
    }

    /// The per-call deadline the plugin runs under.
    pub fn plugin_deadline(&self) -> std::time::Duration {
        self.deadline
    }

    /// The OAuth2 server configuration for the emulator's demo app.
    pub fn server(&self, grant_type: GrantType) -> Oauth2ServerConfig {
        emulator_server(&self.emulator, grant_type)
    }

    /// What the registry would allow a call: the login host, and the
    /// instance named by `tokens`. (The registry first checks that instance
    /// against the plugin's and the server's API hosts; against the local
    /// emulator there is nothing to check it with.)
    pub fn allowlist(&self, tokens: Option<&TokenSet>) -> HttpAllowlist {
        let instance = tokens.and_then(|t| t.instance_url.as_deref());
        HttpAllowlist::for_server(&self.emulator.login_url(), instance).expect("the emulator's URLs are valid")
    }

    /// The whole authorization code flow: the plugin's authorization URL,
    /// the demo user's login and consent at the emulator, the code exchange.
    pub async fn authorize(&self) -> anyhow::Result<TokenSet> {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER));
        let request = AuthorizationRequest { state: "testbed-state".into(), code_challenge: challenge, redirect_uri: REDIRECT_URI.into(), prompt: None };
        let config = self.server(GrantType::AuthorizationCode);
        let url = self.plugin.authorization_url(&config, &request).await?.map_err(plugin_error)?;
        let callback = self.consent(&url).await?;
        let code = query(&callback, "code").with_context(|| format!("the emulator answered without a code: {callback}"))?;
        self.plugin.exchange_code(&config, &code, REDIRECT_URI, Some(VERIFIER), &self.allowlist(None)).await?.map_err(plugin_error)
    }

    /// What the admin's browser does at the emulator: see [`consent_at`].
    pub async fn consent(&self, authorize_url: &str) -> anyhow::Result<String> {
        consent_at(authorize_url, &self.emulator.login_url(), true).await
    }

    /// Tokens through the client credentials grant.
    pub async fn client_credentials(&self) -> anyhow::Result<TokenSet> {
        let mut config = self.server(GrantType::ClientCredentials);
        if self.asks_token_url() {
            // A service whose tokens come from an authorization server
            // apart from it: the emulator's token endpoint stands in for
            // that server, the service's URL (if any) is the Server URL.
            if let Some(scim) = &self.scim {
                config.server_url = scim.url.clone();
            }
            config.token_url = Some(self.emulator.token_url());
        }
        let allow = self.allowlist(None).allow_url(&config.server_url).expect("the SCIM service's URL is valid");
        self.plugin.client_credentials(&config, &allow).await?.map_err(plugin_error)
    }

    /// Whether the plugin's server form asks for a Token URL apart from
    /// the Server URL: its tokens then come from a stand-in authorization
    /// server (the emulator's), not from the service it provisions.
    pub fn asks_token_url(&self) -> bool {
        self.plugin.metadata().server_form.help.iter().any(|(f, _)| f == "token-url")
    }

    /// Tokens through the JWT bearer grant: a fresh key whose certificate
    /// is uploaded to the emulator's app, the demo user pre-authorized (as
    /// an External Client App's policy would), and the plugin signing with
    /// it. `upload` false leaves the app without the certificate.
    pub async fn jwt_bearer(&self, upload: bool) -> anyhow::Result<TokenSet> {
        let (private_key_pem, certificate) = salesforce_emulator::jwt::key_pair("registry plugin test").map_err(anyhow::Error::msg)?;
        if upload {
            self.emulator.upload_certificate(DEMO_CONSUMER_KEY, &certificate).map_err(anyhow::Error::msg)?;
            self.emulator.set_permitted_users(DEMO_CONSUMER_KEY, Some(vec![DEMO_USERNAME.into()])).map_err(anyhow::Error::msg)?;
        }
        let key = types::JwtSigningKey { subject: DEMO_USERNAME.into(), private_key_pem, certificate_fingerprint: String::new() };
        self.plugin.jwt_bearer(&self.server(GrantType::JwtBearer), &key, &self.allowlist(None)).await?.map_err(plugin_error)
    }

    /// A target context with `settings` (the plugin's defaults fill the rest).
    pub fn context(&self, settings: &[(&str, &str)], tokens: &TokenSet) -> TargetContext {
        let values: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TargetContext { settings: self.plugin.settings_with_defaults(&values), tokens: tokens.clone() }
    }

    /// A request to provision a new person.
    pub fn added(&self, person: types::Person) -> ProvisionRequest {
        ProvisionRequest { action: ProvisioningAction::PersonAdded, person, current: None }
    }

    /// A request for `action` on a person whose record is `current`.
    pub fn request(&self, action: ProvisioningAction, person: types::Person, current: Option<RemoteRef>) -> ProvisionRequest {
        ProvisionRequest { action, person, current }
    }

    /// `provisioning-target.provision` with the allowlist the registry would give.
    pub async fn provision(&self, context: &TargetContext, request: &ProvisionRequest) -> Result<Result<ProvisionOutcome, PluginError>, CallError> {
        self.plugin.provision(context, request, &self.allowlist(Some(&context.tokens))).await
    }

    /// Every request the emulator received, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.emulator.request_log()
    }

    /// The live records of `object` in the emulator's org.
    pub fn records(&self, object: &str) -> Vec<Value> {
        self.emulator.live_records(object)
    }
}

/// A SCIM resource as a flat record: `Id`, `IsActive` (its `active`, true
/// when absent), and each string value under its attribute path
/// (`name.familyName`, `emails.0.value`).
fn flat_record(resource: &Value) -> Value {
    fn walk(prefix: &str, v: &Value, out: &mut serde_json::Map<String, Value>) {
        match v {
            Value::Object(o) => o.iter().for_each(|(k, v)| walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(&format!("{prefix}.{i}"), v, out)),
            Value::String(_) => {
                out.insert(prefix.to_string(), v.clone());
            }
            _ => {}
        }
    }
    let mut out = serde_json::Map::new();
    walk("", resource, &mut out);
    out.insert("Id".into(), resource["id"].clone());
    out.insert("IsActive".into(), Value::Bool(resource["active"].as_bool() != Some(false)));
    Value::Object(out)
}

fn plugin_error(e: PluginError) -> anyhow::Error {
    anyhow::anyhow!("the plugin answered with an error: {}", explain(&e))
}

fn hidden_tx(page: &str) -> anyhow::Result<String> {
    let start = page.find("name=\"tx\" value=\"").context("the emulator did not show its login form")? + 17;
    Ok(page[start..].split('"').next().unwrap_or_default().to_string())
}

/// What the admin's browser does at the emulator whose login host is
/// `login_url`: opens `authorize_url`, logs in as the demo user, and clicks
/// Allow (or Deny); returns where the emulator sends the browser back (the
/// client's callback). An app approved before skips the consent page, so
/// there is nothing to deny.
pub async fn consent_at(authorize_url: &str, login_url: &str, allow: bool) -> anyhow::Result<String> {
    consent_as(authorize_url, login_url, DEMO_USERNAME, DEMO_PASSWORD, allow).await
}

/// [`consent_at`], signing in as `username`.
pub async fn consent_as(authorize_url: &str, login_url: &str, username: &str, password: &str, allow: bool) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let page = http.get(authorize_url).send().await?.text().await?;
    let r = http
        .post(format!("{login_url}/services/oauth2/authorize/login"))
        .form(&[("tx", hidden_tx(&page)?.as_str()), ("username", username), ("pw", password)])
        .send()
        .await?;
    let r = if r.status() == 302 {
        anyhow::ensure!(allow, "the app was approved before, so there is no consent page to deny on");
        r
    } else {
        let page = r.text().await?;
        let decision = if allow { "allow" } else { "deny" };
        http.post(format!("{login_url}/services/oauth2/authorize/consent")).form(&[("tx", hidden_tx(&page)?.as_str()), ("decision", decision)]).send().await?
    };
    r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string).context("the emulator did not redirect back")
}

/// A query parameter of `url`.
pub fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
