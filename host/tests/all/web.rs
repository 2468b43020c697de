//! The admin UI end to end over HTTP with a cookie-keeping client: login,
//! the server form, and every "Obtain New Token" path against the emulator
//! through the real sandboxed plugin.

use registry_host::serve::{DEMO_SERVER, Running};
use reqwest::redirect::Policy;
use salesforce_emulator::seed::{DEMO_CONSUMER_KEY, DEMO_CONSUMER_SECRET, DEMO_USERNAME};

use crate::common;
use common::at_salesforce;

pub(crate) struct Harness {
    pub host: Running,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(common::demo_host().await)
    }

    pub fn with((host, dir): (Running, tempfile::TempDir)) -> Self {
        let http = reqwest::Client::builder().redirect(Policy::none()).cookie_store(true).build().unwrap();
        Harness { host, _dir: dir, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host.public_url)
    }

    pub async fn get(&self, path: &str) -> (u16, String, Option<String>) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), unescape(r.text().await.unwrap()), loc)
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let r = self.http.post(self.url(path)).form(form).send().await.unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), unescape(r.text().await.unwrap()), loc)
    }

    /// Opens the login form and submits it (with its CSRF token).
    pub async fn submit_login(&self, user: &str, password: &str) -> (u16, String, Option<String>) {
        let form = self.get("/login").await.1;
        self.post("/login", &[("csrf", &csrf(&form)), ("username", user), ("password", password)]).await
    }

    pub fn admin(&self) -> (String, String) {
        let (user, password) = self.host.created_admin.clone().expect("the demo creates an admin");
        (user, password.expect("the demo generates the password"))
    }

    pub async fn login(&self) -> String {
        let (user, password) = self.admin();
        let (status, _, loc) = self.submit_login(&user, &password).await;
        assert_eq!((status, loc.as_deref()), (303, Some("/servers")));
        let (_, page, _) = self.get("/servers").await;
        csrf(&page)
    }

    pub async fn demo_id(&self) -> i64 {
        self.host.store.servers().await.unwrap().into_iter().find(|s| s.name == DEMO_SERVER).unwrap().id
    }

    /// Clicks Obtain New Token and returns the provider URL the browser is sent to.
    async fn obtain(&self, id: i64, csrf: &str) -> String {
        let (status, _, loc) = self.post(&format!("/servers/{id}/token"), &[("csrf", csrf)]).await;
        assert_eq!(status, 303);
        loc.unwrap()
    }
}

/// The page text with the entities minijinja escapes turned back.
pub(crate) fn unescape(page: String) -> String {
    page.replace("&#x2f;", "/").replace("&#x27;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

pub(crate) fn csrf(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[start..].split('"').next().unwrap().to_string()
}

/// Follows a callback in the admin's browser; returns the server page it lands on.
async fn follow_callback(h: &Harness, callback: &str) -> String {
    let r = h.http.get(callback).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    h.get(&to).await.1
}

async fn assert_no_secrets(h: &Harness, page: &str) {
    assert!(!page.contains(DEMO_CONSUMER_SECRET), "the client secret leaked into a page");
    for s in h.host.store.servers().await.unwrap() {
        if let Some(t) = h.host.store.tokens(s.id).await.unwrap() {
            assert!(!page.contains(&t.access_token), "an access token leaked into a page");
            if let Some(r) = t.refresh_token {
                assert!(!page.contains(&r), "a refresh token leaked into a page");
            }
        }
    }
}

#[tokio::test]
async fn login_is_required_and_forms_carry_csrf_tokens() {
    let h = Harness::start().await;
    let (status, _, loc) = h.get("/servers").await;
    assert_eq!((status, loc.as_deref()), (303, Some("/login?next=/servers")));
    let (status, page, _) = h.submit_login("admin", "wrong password").await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong username or password."));
    // The login form itself carries a CSRF token: a cross-site post is refused.
    let (user, password) = h.admin();
    let fresh = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let r = fresh.post(h.url("/login")).form(&[("username", user.as_str()), ("password", password.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let token = h.login().await;
    let (status, page, _) = h.get("/servers").await;
    assert_eq!(status, 200);
    assert!(page.contains(DEMO_SERVER) && page.contains("Not Set"));
    // Every POST without, or with a wrong, CSRF token is refused and changes nothing.
    let id = h.demo_id().await;
    let before = h.host.store.server(id).await.unwrap();
    for action in ["delete", "token", "revoke", "test", ""] {
        let path = if action.is_empty() { format!("/servers/{id}") } else { format!("/servers/{id}/{action}") };
        for form in [vec![("csrf", "forged"), ("name", "Hijacked")], vec![("name", "Hijacked")]] {
            let (status, _, _) = h.post(&path, &form).await;
            assert_eq!(status, 403, "{path} {form:?}");
        }
    }
    let (status, _, _) = h.post("/servers", &[("name", "Sneaky"), ("server_url", "https://login.salesforce.com"), ("client_id", "x"), ("client_secret", "y")]).await;
    assert_eq!(status, 403);
    assert_eq!(h.host.store.server(id).await.unwrap(), before);
    assert_eq!(h.host.store.servers().await.unwrap().len(), 1);
    // Logout ends the session on the server, not just in this browser.
    let session = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let cookie_header = {
        let r = h.http.get(h.url("/servers")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // Recover the session cookie by logging in on a second client.
        drop(r);
        let form = session.get(h.url("/login")).send().await.unwrap();
        let login_cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let page = form.text().await.unwrap();
        let r = session
            .post(h.url("/login"))
            .header("cookie", &login_cookie)
            .form(&[("csrf", csrf(&page).as_str()), ("username", user.as_str()), ("password", password.as_str())])
            .send()
            .await
            .unwrap();
        r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
    };
    let page = session.get(h.url("/servers")).header("cookie", &cookie_header).send().await.unwrap().text().await.unwrap();
    let second_csrf = csrf(&page);
    // A forged logout (no CSRF token) changes nothing: 403, no cookie
    // cleared, the session still opens pages.
    let forged = session.post(h.url("/logout")).header("cookie", &cookie_header).form(&[("csrf", "")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none(), "a forged logout clears no cookie");
    assert_eq!(session.get(h.url("/servers")).header("cookie", &cookie_header).send().await.unwrap().status(), 200);
    // Cross-site, the browser sends no (SameSite=Lax) cookie: nothing is cleared either.
    let cross_site = session.post(h.url("/logout")).form(&[("csrf", "")]).send().await.unwrap();
    assert_eq!(cross_site.status(), 303);
    assert!(cross_site.headers().get("set-cookie").is_none(), "a cookieless logout clears no cookie");
    let out = session.post(h.url("/logout")).header("cookie", &cookie_header).form(&[("csrf", second_csrf.as_str())]).send().await.unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "a real logout clears the cookie");
    let replay = session.get(h.url("/servers")).header("cookie", &cookie_header).send().await.unwrap();
    assert_eq!(replay.status(), 303, "a logged-out session cookie is dead");
    h.post("/logout", &[("csrf", &token)]).await;
    assert_eq!(h.get("/servers").await.0, 303);
}

#[tokio::test]
async fn the_server_form_validates_and_keeps_the_secret_masked() {
    let h = Harness::start().await;
    let csrf = h.login().await;
    let (status, page, _) = h
        .post("/servers", &[("csrf", &csrf), ("name", ""), ("server_url", "http://login.salesforce.com"), ("client_id", ""), ("grant_type", "authorization_code")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"name-error\">Enter a name."));
    assert!(page.contains("id=\"server_url-error\">The Server URL http://login.salesforce.com is not allowed: plain http:// is only allowed to loopback"), "{page}");
    assert!(page.contains("id=\"client_id-error\""));
    let (status, _, loc) = h
        .post("/servers", &[("csrf", &csrf), ("name", "Prod"), ("server_url", "https://login.salesforce.com"), ("client_id", "3MVG9prod"), ("client_secret", "prod-secret"), ("grant_type", "authorization_code"), ("scope", "api refresh_token")])
        .await;
    assert_eq!(status, 303);
    let loc = loc.unwrap();
    let page = h.get(&loc).await.1;
    assert!(page.contains("Server added."));
    assert!(page.contains("••••••••") && !page.contains("prod-secret"));
    let id: i64 = loc.trim_start_matches("/servers/").split('?').next().unwrap().parse().unwrap();
    assert!(page.contains(&format!("value=\"{}/oauth2/callback/{id}\"", h.host.public_url)), "the Redirect URI is shown");
    let edit = h.get(&format!("/servers/{id}/edit")).await.1;
    assert!(!edit.contains("prod-secret") && edit.contains("leave empty to keep the saved secret"));
    // A duplicate name says so on the name field.
    let (status, page, _) = h.post("/servers", &[("csrf", &csrf), ("name", "Prod"), ("server_url", "https://login.salesforce.com"), ("client_id", "x"), ("client_secret", "y")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("already exists"));

    // The Server URL picked from the plugin's choices: My Domain with its
    // name makes the URL and narrows the API hosts to that one domain.
    let form = h.get("/servers/new").await.1;
    assert!(form.contains("<option value=\"https://login.salesforce.com\" data-name-label=\"\" selected>Production (https://login.salesforce.com)</option>"), "{form}");
    assert!(form.contains("External Client App"), "the plugin's words: {form}");
    let my_domain = "https://{name}.my.salesforce.com";
    let (status, page, _) = h
        .post("/servers", &[("csrf", &csrf), ("name", "Acme"), ("server_url_choice", my_domain), ("server_url_name", "acme.evil.com"), ("client_id", "3MVG9acme"), ("client_secret", "s")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("'acme.evil.com' is not a valid My Domain name"), "{page}");
    let (status, _, loc) = h
        .post("/servers", &[("csrf", &csrf), ("name", "Acme"), ("server_url_choice", my_domain), ("server_url_name", "Acme"), ("server_url", ""), ("client_id", "3MVG9acme"), ("client_secret", "s")])
        .await;
    assert_eq!(status, 303);
    let id: i64 = loc.unwrap().trim_start_matches("/servers/").split('?').next().unwrap().parse().unwrap();
    let page = h.get(&format!("/servers/{id}")).await.1;
    assert!(page.contains("https://acme.my.salesforce.com"), "{page}");
    assert!(page.contains(">acme.my.salesforce.com<"), "the API hosts follow the choice: {page}");
    let edit = h.get(&format!("/servers/{id}/edit")).await.1;
    assert!(edit.contains("<option value=\"https://{name}.my.salesforce.com\" data-name-label=\"My Domain name (as in NAME.my.salesforce.com)\" selected>"), "{edit}");
    assert!(edit.contains("id=\"server_url_name\" name=\"server_url_name\" value=\"acme\""), "{edit}");
}

#[tokio::test]
async fn obtain_new_token_end_to_end_then_test_and_revoke() {
    let h = Harness::start().await;
    let csrf = h.login().await;
    let id = h.demo_id().await;
    let emu = h.host.emulator.as_ref().unwrap();
    let authorize = h.obtain(id, &csrf).await;
    assert!(authorize.starts_with(&format!("{}/services/oauth2/authorize?", emu.login_url())));
    assert!(authorize.contains("code_challenge=") && authorize.contains("prompt=login"));
    let callback = at_salesforce(&authorize, &emu.login_url(), true).await;
    assert!(callback.starts_with(&format!("{}/oauth2/callback/{id}?code=", h.host.public_url)));
    let page = follow_callback(&h, &callback).await;
    assert!(page.contains("Access Token Obtained."), "{page}");
    assert!(page.contains("id=\"token-status\" class=\"badge set\">Set<"));
    assert!(page.contains(&format!("id=\"instance-url\">{}<", emu.instance_url())));
    assert!(page.contains("id=\"issued-at\""));
    assert_no_secrets(&h, &page).await;

    // The same callback again: the state was single use.
    let page = follow_callback(&h, &callback).await;
    assert!(page.contains("already used"), "{page}");
    assert!(page.contains(">Set<"), "a replay changes nothing");

    // Post/Redirect/Get: the result is on the server's own page, once; a
    // reload neither repeats the test nor shows it again.
    let (status, _, loc) = h.post(&format!("/servers/{id}/test"), &[("csrf", &csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("/servers/{id}").as_str())));
    let page = h.get(&loc.unwrap()).await.1;
    assert!(page.contains(&format!("id=\"conn-user\">{DEMO_USERNAME}<")), "{page}");
    assert!(page.contains(&format!("id=\"conn-org\">{}<", emu.orgs()[0].id)));
    assert!(page.contains("daily API requests used"));
    assert!(page.contains("<dt>Refresh token rotation</dt><dd>not seen yet"), "{page}");
    assert!(page.contains("<dt>Latest API version</dt><dd>v"), "{page}");
    assert!(!page.contains("conn-advice"), "a healthy connection has nothing to fix: {page}");
    let again = h.get(&format!("/servers/{id}")).await.1;
    assert!(!again.contains("conn-user"), "shown once");

    // An expired access token is refreshed by Test Connection.
    emu.expire_access_tokens();
    let (_, _, loc) = h.post(&format!("/servers/{id}/test"), &[("csrf", &csrf)]).await;
    let page = h.get(&loc.unwrap()).await.1;
    assert!(page.contains("Connection works"), "{page}");
    assert!(page.contains("<dt>Refresh token rotation</dt><dd>off</dd>"), "seen on the refresh: {page}");

    let refresh = h.host.store.tokens(id).await.unwrap().unwrap().refresh_token.unwrap();
    let (status, _, loc) = h.post(&format!("/servers/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let page = h.get(&loc.unwrap()).await.1;
    assert!(page.contains("revoked at the provider") && page.contains(">Not Set<"));
    assert_eq!(emu.refresh_token_status(&refresh), Some(salesforce_emulator::RefreshStatus::Revoked));
    assert!(h.host.store.tokens(id).await.unwrap().is_none());

    // A Scope without refresh_token: the token works, but Test Connection
    // says it will stop, and exactly what to change.
    let server = h.host.store.server(id).await.unwrap();
    let (status, _, _) = h
        .post(&format!("/servers/{id}"), &[("csrf", &csrf), ("name", &server.name), ("server_url", &server.server_url), ("client_id", &server.client_id), ("grant_type", "authorization_code"), ("scope", "api"), ("api_hosts", &server.api_hosts.join(" ")), ("plugin", &server.plugin)])
        .await;
    assert_eq!(status, 303);
    let authorize = h.obtain(id, &csrf).await;
    follow_callback(&h, &at_salesforce(&authorize, &emu.login_url(), true).await).await;
    let (_, _, loc) = h.post(&format!("/servers/{id}/test"), &[("csrf", &csrf)]).await;
    let page = h.get(&loc.unwrap()).await.1;
    assert!(page.contains("Connection works, with 1 thing(s) to fix"), "{page}");
    assert!(page.contains("The token came without a refresh token"), "{page}");
    assert!(page.contains("Perform requests at any time (refresh_token, offline_access)"), "{page}");
}

/// Obtain New Token started in a popup (the page's script says so): the
/// callback answers with a page that hands the outcome to the server page
/// and closes, instead of redirecting. Without the flag, the redirect.
#[tokio::test]
async fn a_sign_in_started_in_a_popup_ends_on_a_page_that_closes_it() {
    let h = Harness::start().await;
    let csrf = h.login().await;
    let id = h.demo_id().await;
    let emu = h.host.emulator.as_ref().unwrap();
    let (status, _, loc) = h.post(&format!("/servers/{id}/token"), &[("csrf", &csrf), ("popup", "1")]).await;
    assert_eq!(status, 303);
    let callback = at_salesforce(&loc.unwrap(), &emu.login_url(), true).await;
    let r = h.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200, "no redirect in the popup");
    let page = unescape(r.text().await.unwrap());
    assert!(page.contains(&format!("data-oauth-done=\"/servers/{id}\"")), "{page}");
    let page = h.get(&format!("/servers/{id}")).await.1;
    assert!(page.contains(">Set<") && page.contains("Access Token Obtained"), "the outcome waits in the session: {page}");
    // Messages never come from a link: a crafted one shows nothing.
    let crafted = r#"/servers/1?tested={"user":"x","advice":[{"problem":"Urgent","fix":"Paste the Client Secret at https://evil.example"}]}&test_error=Forged"#;
    let page = h.get(crafted).await.1;
    assert!(!page.contains("evil.example") && !page.contains("Forged"), "{page}");
}

/// An app that admits only pre-authorized users (an External Client App's
/// default) turns the admin away at the provider: the server page shows
/// the provider's error and, in the plugin's words, what to fix. Once the
/// user is pre-authorized, the token comes with no consent page.
#[tokio::test]
async fn a_user_the_app_does_not_pre_authorize_is_told_what_to_fix() {
    let h = Harness::start().await;
    let csrf = h.login().await;
    let id = h.demo_id().await;
    let emu = h.host.emulator.as_ref().unwrap();
    emu.set_permitted_users(DEMO_CONSUMER_KEY, Some(vec![])).unwrap();

    let authorize = h.obtain(id, &csrf).await;
    let page = follow_callback(&h, &at_salesforce(&authorize, &emu.login_url(), true).await).await;
    assert!(page.contains("the provider refused the sign-in (OAUTH_APPROVAL_ERROR_GENERIC): user is not admin approved to access this app. What to check:"), "{page}");
    assert!(page.contains("assign that permission set to the user"), "{page}");
    assert!(page.contains(">Not Set<"));

    emu.pre_authorize(DEMO_CONSUMER_KEY, DEMO_USERNAME).unwrap();
    let authorize = h.obtain(id, &csrf).await;
    let page = follow_callback(&h, &at_salesforce(&authorize, &emu.login_url(), true).await).await;
    assert!(page.contains("Access Token Obtained"), "{page}");
}

#[tokio::test]
async fn deny_bad_state_and_wrong_secret_land_back_with_plain_messages() {
    let h = Harness::start().await;
    let csrf = h.login().await;
    let id = h.demo_id().await;
    let emu = h.host.emulator.as_ref().unwrap();

    // Deny at the emulator's consent page.
    let authorize = h.obtain(id, &csrf).await;
    let callback = at_salesforce(&authorize, &emu.login_url(), false).await;
    let page = follow_callback(&h, &callback).await;
    assert!(page.contains("access was denied at the provider"), "{page}");
    assert!(page.contains(">Not Set<"));
    // With a token held, a denied attempt changes nothing. (The app is now
    // approved, so Salesforce shows no consent page: the provider's denial
    // redirect is made by hand, with the attempt's real state.)
    let authorize = h.obtain(id, &csrf).await;
    follow_callback(&h, &at_salesforce(&authorize, &emu.login_url(), true).await).await;
    let authorize = h.obtain(id, &csrf).await;
    let state = url::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let denied = format!("{}/oauth2/callback/{id}?error=access_denied&error_description=end-user+denied+authorization&state={state}", h.host.public_url);
    let page = follow_callback(&h, &denied).await;
    assert!(page.contains("access was denied at the provider"), "{page}");
    assert!(page.contains(">Set<"), "a denied attempt keeps the token held");

    let page = follow_callback(&h, &format!("{}/oauth2/callback/{id}?code=abc&state=made-up", h.host.public_url)).await;
    assert!(page.contains("already used or is not ours"), "{page}");
    // An error with a state that is not ours is not believed, nor recorded.
    let before = h.host.store.server(id).await.unwrap().last_error;
    let page = follow_callback(&h, &format!("{}/oauth2/callback/{id}?error=access_denied&error_description=Forged%20text&state=made-up", h.host.public_url)).await;
    assert!(page.contains("already used or is not ours") && !page.contains("Forged text"), "{page}");
    assert_eq!(h.host.store.server(id).await.unwrap().last_error, before);

    // A Redirect URI the app does not list: Salesforce shows its own
    // error page and never comes back (so the host's page says to paste it).
    let (_, _, loc) = h
        .post("/servers", &[("csrf", &csrf), ("name", "Unregistered"), ("server_url", &emu.login_url()), ("client_id", DEMO_CONSUMER_KEY), ("client_secret", DEMO_CONSUMER_SECRET)])
        .await;
    let other: i64 = loc.unwrap().trim_start_matches("/servers/").split('?').next().unwrap().parse().unwrap();
    let authorize = h.obtain(other, &csrf).await;
    let r = reqwest::get(&authorize).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("redirect_uri must match configuration"));
    // The server page says where to paste it, in the plugin's words.
    assert!(h.get(&format!("/servers/{other}")).await.1.contains("Paste this as the Callback URL in the External Client App's OAuth Settings"));

    // A wrong secret: saving clears nothing (no token yet), the exchange fails by name.
    let (status, _, _) = h
        .post(
            &format!("/servers/{id}"),
            &[("csrf", &csrf), ("name", DEMO_SERVER), ("server_url", &emu.login_url()), ("client_id", DEMO_CONSUMER_KEY), ("client_secret", "wrong-secret"), ("grant_type", "authorization_code"), ("scope", "api refresh_token"), ("plugin", "salesforce")],
        )
        .await;
    assert_eq!(status, 303);
    let authorize = h.obtain(id, &csrf).await;
    let callback = at_salesforce(&authorize, &emu.login_url(), true).await;
    let page = follow_callback(&h, &callback).await;
    assert!(page.contains("Client Secret: Salesforce refused the client credentials"), "{page}");
    assert!(page.contains(">Not Set<"));
}

#[tokio::test]
async fn changing_the_secret_clears_tokens_and_client_credentials_get_a_token_directly() {
    let h = Harness::start().await;
    let csrf = h.login().await;
    let id = h.demo_id().await;
    let emu = h.host.emulator.as_ref().unwrap();
    let authorize = h.obtain(id, &csrf).await;
    follow_callback(&h, &at_salesforce(&authorize, &emu.login_url(), true).await).await;
    assert!(h.host.store.tokens(id).await.unwrap().is_some());
    let hosts = h.host.store.server(id).await.unwrap().api_hosts.join(" ");
    let form = |secret: &'static str, grant: &'static str| {
        vec![("csrf", csrf.clone()), ("name", DEMO_SERVER.to_string()), ("server_url", emu.login_url()), ("client_id", DEMO_CONSUMER_KEY.to_string()), ("client_secret", secret.to_string()), ("grant_type", grant.to_string()), ("scope", "api refresh_token".to_string()), ("plugin", "salesforce".to_string()), ("api_hosts", hosts.clone())]
    };
    let f = form("", "authorization_code");
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, loc) = h.post(&format!("/servers/{id}"), &pairs).await;
    assert_eq!(loc.as_deref(), Some(format!("/servers/{id}").as_str()), "an empty secret keeps the saved one and the tokens");
    let f = form("rotated-secret", "authorization_code");
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, loc) = h.post(&format!("/servers/{id}"), &pairs).await;
    let page = h.get(&loc.unwrap()).await.1;
    assert!(page.contains("the stored tokens were cleared"), "{page}");
    assert!(page.contains(">Not Set<"));

    let f = form(DEMO_CONSUMER_SECRET, "client_credentials");
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.post(&format!("/servers/{id}"), &pairs).await;
    let (status, _, loc) = h.post(&format!("/servers/{id}/token"), &[("csrf", &csrf)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("/servers/{id}").as_str())));
    let page = h.get(&format!("/servers/{id}")).await.1;
    assert!(page.contains(">Set<") && !page.contains("redirect-uri"), "client credentials: Set, and no Redirect URI");
    assert!(h.host.store.tokens(id).await.unwrap().unwrap().refresh_token.is_none());
    assert_no_secrets(&h, &page).await;
}

impl Harness {
    /// Signs in and obtains the demo server's token through the UI.
    pub async fn login_with_token(&self) -> String {
        let csrf = self.login().await;
        let emu = self.host.emulator.as_ref().unwrap();
        let authorize = self.obtain(self.demo_id().await, &csrf).await;
        let callback = at_salesforce(&authorize, &emu.login_url(), true).await;
        assert!(follow_callback(self, &callback).await.contains("Access Token Obtained."));
        csrf
    }

    pub async fn demo_target(&self) -> i64 {
        self.host.store.targets().await.unwrap().into_iter().find(|t| t.name == registry_host::serve::DEMO_TARGET).unwrap().id
    }

    pub(crate) async fn api(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Polls a person's API view until its demo-target state is `state`.
    async fn api_until(&self, token: &str, id: &str, state: &str) -> serde_json::Value {
        for _ in 0..200 {
            let (_, v) = self.api(reqwest::Method::GET, &format!("/api/v1/people/{id}"), Some(token), None).await;
            if v["provisioning"][0]["state"] == state {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{id} never became {state}");
    }
}

#[tokio::test]
async fn the_json_api_manages_people_and_provisions_them() {
    let h = Harness::start().await;
    h.login_with_token().await;
    let emu = h.host.emulator.as_ref().unwrap();
    use reqwest::Method;

    let (status, body) = h.api(Method::GET, "/api/v1/people", None, None).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("api-token create"));
    assert_eq!(h.api(Method::GET, "/api/v1/people", Some("rh_wrong"), None).await.0, 401);
    let token = h.host.store.create_api_token("tests", None).await.unwrap();
    let token = token.as_str();

    // Bad input: every bad field named, nothing stored.
    let bad = serde_json::json!({"id": "bad id", "status": "active", "name": {"given": ""}, "emails": [{"address": "nope"}]});
    let (status, body) = h.api(Method::POST, "/api/v1/people", Some(token), Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["id", "name.given", "emails[0].address"], "{body}");
    let (status, body) = h.api(Method::POST, "/api/v1/people", Some(token), Some(serde_json::json!({"nmae": {}}))).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("unknown field `nmae`"), "{body}");
    assert_eq!(h.api(Method::GET, "/api/v1/people", Some(token), None).await.1["total"], 0);

    // Create: provisioned to the demo target with its Salesforce id.
    let ada = serde_json::json!({
        "id": "API1", "status": "active",
        "name": {"given": "Ada", "family": "Lovelace"},
        "emails": [{"address": "ada@example.org", "type": "official", "verified": true}],
        "roles": [{"affiliation": "staff", "department": "Engines"}]
    });
    let (status, body) = h.api(Method::POST, "/api/v1/people", Some(token), Some(ada.clone())).await;
    assert_eq!(status, 201, "{body}");
    let v = h.api_until(token, "API1", "provisioned").await;
    let sf_id = v["provisioning"][0]["remote_id"].as_str().unwrap().to_string();
    let contact = emu.live_records("Contact").into_iter().find(|c| c["Registry_ID__c"] == "API1").unwrap();
    assert_eq!((contact["Id"].as_str(), contact["Department"].as_str()), (Some(sf_id.as_str()), Some("Engines")));
    assert_eq!(h.api(Method::POST, "/api/v1/people", Some(token), Some(ada.clone())).await.0, 409, "ids are unique");

    // Update, search, delete.
    let mut changed = ada.clone();
    changed["name"]["family"] = "King".into();
    assert_eq!(h.api(Method::PUT, "/api/v1/people/API1", Some(token), Some(changed)).await.0, 200);
    for _ in 0..200 {
        if emu.live_records("Contact").iter().any(|c| c["Registry_ID__c"] == "API1" && c["LastName"] == "King") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(emu.live_records("Contact").iter().any(|c| c["Registry_ID__c"] == "API1" && c["LastName"] == "King"));
    let (_, found) = h.api(Method::GET, "/api/v1/people?q=king", Some(token), None).await;
    assert_eq!(found["total"], 1);
    assert_eq!(h.api(Method::GET, "/api/v1/people/NOPE", Some(token), None).await.0, 404);
    // Paging numbers out of range are refused by name, never wrapped.
    for bad in ["offset=18446744073709551615", "offset=-1", "offset=abc", "limit=1e3"] {
        let (status, body) = h.api(Method::GET, &format!("/api/v1/people?{bad}"), Some(token), None).await;
        let name = bad.split('=').next().unwrap();
        assert_eq!((status, body["fields"][0]["field"].as_str()), (400, Some(name)), "{bad}: {body}");
    }
    assert_eq!(h.api(Method::GET, "/api/v1/people?offset=5&limit=5000", Some(token), None).await.1["limit"], 1000);
    assert_eq!(h.api(Method::DELETE, "/api/v1/people/API1", Some(token), None).await.0, 204);
    let removed = h.api_until(token, "API1", "removed").await;
    // The demo target keeps Contacts when people go (the Contact default).
    assert!(removed["provisioning"][0]["message"].as_str().unwrap().ends_with("in Salesforce; no longer managed"), "{removed}");
    assert!(emu.live_records("Contact").iter().any(|c| c["Registry_ID__c"] == "API1"));
    assert_eq!(h.api(Method::DELETE, "/api/v1/people/API1", Some(token), None).await.0, 404);

    // Reprovision all through the API, followed to the end.
    for i in 0..30 {
        let p = serde_json::json!({"id": format!("API-{i}"), "name": {"given": "Bulk", "family": format!("P{i}")}, "emails": [{"address": format!("b{i}@example.org")}]});
        assert_eq!(h.api(Method::POST, "/api/v1/people", Some(token), Some(p)).await.0, 201);
    }
    let target = h.demo_target().await;
    let (status, run) = h.api(Method::POST, &format!("/api/v1/targets/{target}/reprovision"), Some(token), None).await;
    assert_eq!((status, run["total"].as_i64()), (202, Some(30)));
    let mut finished = serde_json::Value::Null;
    for _ in 0..200 {
        finished = h.api(Method::GET, &format!("/api/v1/runs/{}", run["id"]), Some(token), None).await.1;
        if !finished["finished_at"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((finished["done"].as_i64(), finished["failed"].as_i64()), (Some(30), Some(0)), "{finished}");
    assert_eq!(emu.live_records("Contact").iter().filter(|c| c["Registry_ID__c"].as_str().is_some_and(|i| i.starts_with("API-"))).count(), 30);
}

#[tokio::test]
async fn people_and_target_pages_validate_and_show_provisioning() {
    let h = Harness::start().await;
    let csrf = h.login_with_token().await;
    let emu = h.host.emulator.as_ref().unwrap();

    // A bad person form names the fields and keeps what was typed.
    let (status, page, _) = h.post("/people", &[("csrf", &csrf), ("status", "active"), ("given", ""), ("family", "Hopper"), ("email_0_type", "official"), ("email_0_address", "grace-at-example")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"given-error\"") && page.contains("is not an email address"), "{page}");
    assert!(page.contains("value=\"Hopper\""));
    assert_eq!(h.host.store.people("", 0, 10).await.unwrap().1, 0, "nothing saved");

    let (status, _, loc) = h.post("/people", &[("csrf", &csrf), ("id", "UI1"), ("status", "active"), ("given", "Grace"), ("family", "Hopper"), ("email_0_type", "official"), ("email_0_address", "grace@example.org"), ("affiliation", "faculty")]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/people/UI1")));
    let target = h.demo_target().await;
    let mut page = String::new();
    for _ in 0..200 {
        page = h.get("/people/UI1").await.1;
        if page.contains(&format!("id=\"state-{target}\">Provisioned<")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let contact = emu.live_records("Contact").into_iter().find(|c| c["Registry_ID__c"] == "UI1").expect("in Salesforce");
    assert!(page.contains(&format!("id=\"remote-{target}\">Contact {}<", contact["Id"].as_str().unwrap())), "{page}");
    assert!(page.contains("created Contact"), "the history says what happened");

    // The list finds them; paging and search work.
    let (_, list, _) = h.get("/people?q=hopper").await;
    assert!(list.contains("1 person matching") && list.contains("/people/UI1"), "{list}");
    let (_, list, _) = h.get("/people?q=nobody").await;
    assert!(list.contains("0 people matching"));

    // The target form is rendered from the plugin's settings and validated by it.
    let (_, form, _) = h.get("/targets/new").await;
    assert!(form.contains("name=\"setting.object\"") && form.contains("name=\"setting.external_id_field\""), "{form}");
    let server = h.demo_id().await.to_string();
    let (status, page, _) = h
        .post("/targets", &[("csrf", &csrf), ("name", "Users"), ("plugin", "salesforce"), ("server_id", &server), ("enabled", "on"), ("setting.object", "User"), ("setting.api_version", "62.0"), ("setting.inactive_action", "update")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"setting.profile_id-error\""), "the plugin names the missing Profile ID: {page}");
    assert_eq!(h.host.store.targets().await.unwrap().len(), 1, "nothing saved");

    // The target page shows its people and a finished Reprovision all.
    let (status, _, loc) = h.post(&format!("/targets/{target}/reprovision"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let mut page = String::new();
    for _ in 0..200 {
        page = h.get(loc.as_deref().unwrap()).await.1;
        if page.contains("Last reprovision") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(page.contains("1 of 1 done"), "{page}");
    assert!(page.contains("id=\"count-provisioned\">1<"), "{page}");

    // Delete in the UI: kept in Salesforce (the Contact default), no longer managed.
    let (status, _, _) = h.post("/people/UI1/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let mut page = String::new();
    for _ in 0..200 {
        page = h.get("/people/UI1").await.1;
        if page.contains("no longer managed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(page.contains("in Salesforce; no longer managed"), "{page}");
    assert!(emu.live_records("Contact").iter().any(|c| c["Registry_ID__c"] == "UI1"));
}

/// The `href` of the link with `id` on `page`, if it is there.
fn link(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"{id}\""))?;
    let start = page[..at].rfind("href=\"")? + 6;
    Some(page[start..].split('"').next()?.to_string())
}

/// The people ids the list links to, in order.
fn listed(page: &str) -> Vec<String> {
    page.match_indices("<td><a href=\"/people/").map(|(i, m)| page[i + m.len()..].split('"').next().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_people_list_pages_through_more_than_a_page() {
    let h = Harness::start().await;
    h.login().await;
    // 60 Pagers and 5 Zulus: both the whole list and a search for the
    // Pagers span two pages of 50 (sorted by family name, then given).
    for i in 0..60 {
        h.host.store.create_person(common::person(&format!("PG-{i:02}"), &format!("P{i:02}"), "Pager", &format!("p{i:02}@pager.example"))).await.unwrap();
    }
    for i in 0..5 {
        h.host.store.create_person(common::person(&format!("ZU-{i}"), &format!("Z{i}"), "Zulu", &format!("z{i}@zulu.example"))).await.unwrap();
    }
    let pagers = |range: std::ops::Range<usize>| range.map(|i| format!("PG-{i:02}")).collect::<Vec<_>>();
    let zulus: Vec<String> = (0..5).map(|i| format!("ZU-{i}")).collect();

    let (status, first, _) = h.get("/people").await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("id=\"people-count\">65 people") && first.contains("Page 1 of 2"), "{first}");
    assert_eq!(listed(&first), pagers(0..50));
    assert_eq!(link(&first, "prev"), None);
    let next = link(&first, "next").expect("a link to page 2");
    assert_eq!(next, "/people?page=2");
    let (status, second, _) = h.get(&next).await;
    assert_eq!(status, 200, "{second}");
    assert!(second.contains("Page 2 of 2"), "{second}");
    assert_eq!(listed(&second), [pagers(50..60), zulus.clone()].concat());
    assert_eq!((link(&second, "prev").as_deref(), link(&second, "next")), (Some("/people?page=1"), None));

    // A search with more than a page of hits keeps its (encoded) query in the links.
    let (status, first, _) = h.get("/people?q=%40pager.example").await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("60 people matching “@pager.example”") && first.contains("Page 1 of 2"), "{first}");
    assert_eq!(listed(&first), pagers(0..50));
    let next = link(&first, "next").expect("a link to page 2");
    assert_eq!(next, "/people?q=%40pager.example&page=2");
    let (status, second, _) = h.get(&next).await;
    assert_eq!(status, 200, "{second}");
    assert!(second.contains("60 people matching “@pager.example”") && second.contains("Page 2 of 2"), "{second}");
    assert_eq!(listed(&second), pagers(50..60));
    assert_eq!(link(&second, "prev").as_deref(), Some("/people?q=%40pager.example&page=1"));

    // Every word counts, so a full name finds its person; filters and sorts.
    assert_eq!(listed(&h.get("/people?q=P05+Pager").await.1), ["PG-05"]);
    assert_eq!(listed(&h.get("/people?q=pager+p05").await.1), ["PG-05"]);
    assert!(listed(&h.get("/people?affiliation=faculty").await.1).is_empty());
    assert_eq!(listed(&h.get("/people?affiliation=Staff&q=zulu").await.1), zulus);
    h.host.store.update_person(&{
        let mut p = h.host.store.person("ZU-3").await.unwrap();
        p.status = registry_host::domain::Status::Suspended;
        p
    }).await
    .unwrap();
    assert_eq!(listed(&h.get("/people?status=suspended").await.1), ["ZU-3"]);
    let by_id = h.get("/people?sort=id&dir=desc").await.1;
    assert_eq!(listed(&by_id)[0], "ZU-4");
    assert!(by_id.contains(r#"aria-sort="descending""#));
    // The provisioning column: the demo target has no token yet, so pending.
    assert!(by_id.contains(r#"<span class="badge ps-pending">1 pending</span>"#), "{by_id}");
}

/// Every answer carries the security headers; pages are never cached (Back
/// after logout shows nothing), and no page holds inline script, so the CSP
/// can forbid it.
#[tokio::test]
async fn every_page_carries_security_headers_and_no_inline_script() {
    let h = Harness::start().await;
    h.login().await;
    let server = h.demo_id().await;
    let target = h.host.store.targets().await.unwrap()[0].id;
    for path in ["/login", "/servers", &format!("/servers/{server}"), &format!("/servers/{server}/edit"), "/servers/new", "/people", "/people/new", "/targets", &format!("/targets/{target}"), "/targets/new", "/nowhere"] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        let headers = r.headers().clone();
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        let page = r.text().await.unwrap();
        for inline in ["onclick=", "onsubmit=", "onchange=", "<script>", "javascript:"] {
            assert!(!page.contains(inline), "{path} holds inline script ({inline})");
        }
    }
    let js = h.http.get(h.url("/static/app.js")).send().await.unwrap();
    assert_eq!(js.headers()["cache-control"], "public, max-age=300");
    assert!(js.text().await.unwrap().contains("dataset.confirm"), "the confirmations live in the script file");
}
