//! Helpers shared by the behaviour tests: an emulator with a test seed, an
//! HTTP client that does not follow redirects, and the browser steps of the
//! authorization code flow done with plain form posts.

use reqwest::redirect::Policy;
use salesforce_emulator::seed::{AppSeed, CustomFieldSeed, OrgSeed, UserSeed};
use salesforce_emulator::{Emulator, Seed};
use serde_json::Value;

pub const CALLBACK: &str = "http://127.0.0.1:9/callback";
pub const USER: &str = "ada@example.com";
pub const PASSWORD: &str = "correct horse";
/// Key of the app that requires PKCE and no secret.
pub const PKCE_KEY: &str = "3MVG9pkceAppKey";

pub fn app(name: &str, key: &str) -> AppSeed {
    AppSeed {
        name: name.into(),
        consumer_key: key.into(),
        consumer_secret: format!("{key}-secret"),
        callback_urls: vec![CALLBACK.into()],
        require_pkce: false,
        require_secret: true,
        rotate_refresh_tokens: false,
        scopes: vec!["api".into(), "refresh_token".into(), "id".into()],
        client_credentials_user: Some(USER.into()),
        pre_authorized_users: None,
        certificate: None,
    }
}

/// Two orgs: "Acme" (users, apps, custom fields) and "Other" (a user whose
/// username clashes must be refused in Acme too).
pub fn seed() -> Seed {
    let field = |object: &str, name: &str, unique: bool| CustomFieldSeed {
        object: object.into(),
        name: name.into(),
        label: None,
        r#type: "string".into(),
        length: 64,
        external_id: true,
        unique,
        required: false,
    };
    let user = |username: &str, password: &str| UserSeed {
        username: username.into(),
        password: password.into(),
        first_name: Some("Ada".into()),
        last_name: "Lovelace".into(),
        email: None,
        profile: "System Administrator".into(),
    };
    let mut pkce = app("PKCE App", PKCE_KEY);
    pkce.require_pkce = true;
    pkce.require_secret = false;
    let mut no_cc = app("No CC", "3MVG9noClientCredentials");
    no_cc.client_credentials_user = None;
    Seed {
        orgs: vec![
            OrgSeed {
                name: "Acme".into(),
                instance: "na1".into(),
                daily_api_limit: 15_000,
                session_timeout_secs: 7200,
                profiles: vec!["System Administrator".into(), "Standard User".into()],
                users: vec![user(USER, PASSWORD)],
                accounts: vec!["Acme Corp".into()],
                custom_fields: vec![
                    field("Contact", "Registry_ID__c", true),
                    field("Contact", "Legacy_Key__c", false),
                    field("User", "Registry_ID__c", true),
                ],
                connected_apps: vec![app("Registry", "3MVG9registryKey"), pkce, no_cc],
                external_client_apps: vec![],
            },
            OrgSeed {
                name: "Other".into(),
                instance: "eu5".into(),
                daily_api_limit: 5,
                session_timeout_secs: 7200,
                profiles: vec!["System Administrator".into()],
                users: vec![user("taken@other.example.com", "pw-other")],
                accounts: vec![],
                custom_fields: vec![],
                connected_apps: vec![],
                external_client_apps: vec![],
            },
        ],
    }
}

pub fn start() -> Emulator {
    Emulator::start(seed()).expect("emulator starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The value of hidden input `tx` in a page.
pub fn tx_of(html: &str) -> String {
    let start = html.find("name=\"tx\" value=\"").expect("page has a tx field") + "name=\"tx\" value=\"".len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Query parameters of a redirect's Location, decoded once.
pub fn location_params(resp: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let loc = resp.headers().get("location").expect("a redirect").to_str().unwrap().to_string();
    let url = url::Url::parse(&loc).unwrap();
    let params = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (loc, params)
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The authorize URL for the Registry app with extra query parameters.
pub fn authorize_url(emu: &Emulator, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&format!("{}/services/oauth2/authorize", emu.login_url())).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("state", "st-123");
    for (k, v) in extra {
        u.query_pairs_mut().append_pair(k, v);
    }
    u.to_string()
}

/// Logs in and clicks Allow; returns the redirect to the callback.
pub async fn approve(emu: &Emulator, http: &reqwest::Client, client_id: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    approve_as(emu, http, client_id, USER, PASSWORD, extra).await
}

/// [`approve`] as another user.
pub async fn approve_as(emu: &Emulator, http: &reqwest::Client, client_id: &str, user: &str, password: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let page = http.get(authorize_url(emu, client_id, extra)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"username\"") && html.contains("id=\"Login\""), "login page: {html}");
    let consent = http
        .post(format!("{}/services/oauth2/authorize/login", emu.login_url()))
        .form(&[("tx", tx_of(&html).as_str()), ("username", user), ("pw", password)])
        .send()
        .await
        .unwrap();
    if consent.status() == 302 {
        // The app was approved before: no consent page.
        return consent;
    }
    let html = consent.text().await.unwrap();
    assert!(html.contains("id=\"oaapprove\""), "consent page: {html}");
    http.post(format!("{}/services/oauth2/authorize/consent", emu.login_url()))
        .form(&[("tx", tx_of(&html).as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap()
}

/// A code for the Registry app.
pub async fn code(emu: &Emulator, http: &reqwest::Client) -> String {
    let resp = approve(emu, http, "3MVG9registryKey", &[]).await;
    assert_eq!(resp.status(), 302);
    let (_, params) = location_params(&resp);
    param(&params, "code").expect("a code").to_string()
}

pub async fn post_token(emu: &Emulator, http: &reqwest::Client, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http.post(format!("{}/services/oauth2/token", emu.login_url())).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Tokens for the Registry app through the full code flow.
pub async fn tokens(emu: &Emulator, http: &reqwest::Client) -> Value {
    let code = code(emu, http).await;
    let (status, body) = post_token(
        emu,
        http,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "3MVG9registryKey"),
            ("client_secret", "3MVG9registryKey-secret"),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A REST call with a bearer token; returns status, Sforce-Limit-Info and body text.
pub async fn api(http: &reqwest::Client, method: reqwest::Method, url: &str, token: &str, body: Option<Value>) -> (u16, Option<String>, String) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let limit = r.headers().get("sforce-limit-info").map(|h| h.to_str().unwrap().to_string());
    (status, limit, r.text().await.unwrap())
}

/// REST base URL for a token response.
pub fn data_url(tokens: &Value, rest: &str) -> String {
    format!("{}/services/data/v62.0/{rest}", tokens["instance_url"].as_str().unwrap())
}

pub fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
