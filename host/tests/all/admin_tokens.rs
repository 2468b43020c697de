//! Each admin's own provider token ("Your provider tokens"), end to end
//! over HTTP: two admins, each signed in at the emulator as their own
//! Salesforce user; Provision now and Test Connection run as the admin who
//! clicks them (the emulator's log names that user), a Check says whether a
//! held token works right now, and revoking a token or deleting an admin
//! revokes it at the provider.

use reqwest::redirect::Policy;
use salesforce_emulator::RefreshStatus;
use salesforce_emulator::seed::DEMO_USERNAME;

use crate::web::{Harness, csrf, unescape};

const GRACE: (&str, &str) = ("grace@demo.example.com", "grace-password-1");
const ALAN: (&str, &str) = ("alan@demo.example.com", "alan-password-22");

/// A second admin's browser: its own cookies.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    async fn login(base: &str, user: &str, password: &str) -> (Browser, String) {
        let b = Browser { http: reqwest::Client::builder().redirect(Policy::none()).cookie_store(true).build().unwrap(), base: base.to_string() };
        let form = b.get("/login").await.1;
        let (status, _, _) = b.post("/login", &[("csrf", &csrf(&form)), ("username", user), ("password", password)]).await;
        assert_eq!(status, 303);
        let csrf = csrf(&b.get("/servers").await.1);
        (b, csrf)
    }
    async fn get(&self, path: &str) -> (u16, String, Option<String>) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), unescape(r.text().await.unwrap()), loc)
    }
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let r = self.http.post(format!("{}{path}", self.base)).form(form).send().await.unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), unescape(r.text().await.unwrap()), loc)
    }
}

/// Generate Token on the admin's page, signing in at the emulator as `who`.
async fn generate(h: &Harness, b: &Browser, csrf: &str, server: i64, who: (&str, &str)) -> String {
    let (status, _, authorize) = b.post(&format!("/account/provider-tokens/{server}/generate"), &[("csrf", csrf)]).await;
    assert_eq!(status, 303);
    let authorize = authorize.unwrap();
    assert!(authorize.contains("prompt=login"), "a fresh sign-in, not the browser's Salesforce session: {authorize}");
    let emu = h.host.emulator.as_ref().unwrap();
    let callback = registry_plugin_testbed::consent_as(&authorize, &emu.login_url(), who.0, who.1, true).await.unwrap();
    let r = b.http.get(&callback).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/account/provider-tokens");
    b.get("/account/provider-tokens").await.1
}

/// Provision now as the admin of `b`; returns the usernames the emulator
/// saw on the writes it made.
async fn provision_now(h: &Harness, b: &Browser, csrf: &str, person: &str) -> Vec<String> {
    let emu = h.host.emulator.as_ref().unwrap();
    emu.clear_request_log();
    let (status, _, _) = b.post(&format!("/people/{person}/provision/{}", h.demo_target().await), &[("csrf", csrf)]).await;
    assert_eq!(status, 303);
    let demo = h.demo_target().await;
    let state = h.host.store.person_states(person).await.unwrap().into_iter().find(|s| s.target_id == demo).unwrap();
    assert_eq!(state.state, registry_host::domain::ProvState::Provisioned, "{:?}", state.message);
    let mut users: Vec<String> = emu.request_log().into_iter().filter(|r| r.path.contains("/sobjects")).filter_map(|r| r.user).collect();
    users.dedup();
    users
}

#[tokio::test]
async fn two_admins_provision_as_themselves_check_their_tokens_and_revoke_them() {
    let h = Harness::start().await;
    let csrf_a = h.login_with_token().await;
    let emu = h.host.emulator.as_ref().unwrap();
    let server = h.demo_id().await;
    emu.add_login_user(GRACE.0, GRACE.1, "Hopper").unwrap();
    emu.add_login_user(ALAN.0, ALAN.1, "Turing").unwrap();
    let a = Browser { http: h.http.clone(), base: h.url("") };

    // A second admin, added on the Admins page.
    let (status, _, _) = a.post("/admins", &[("csrf", &csrf_a), ("username", "bob"), ("password", "bob-password-123")]).await;
    assert_eq!(status, 303);
    let (b, csrf_b) = Browser::login(&h.url(""), "bob", "bob-password-123").await;

    // Every server is listed; one whose tokens act as one identity (client
    // credentials) offers no per-admin token.
    let mut other = crate::common::emulator_server(emu, "salesforce", registry_plugin_runtime::latest::types::GrantType::ClientCredentials);
    other.name = "Run-as user".into();
    h.host.store.create_server(&other).await.unwrap();
    let page = a.get("/account/provider-tokens").await.1;
    assert!(page.contains(registry_host::serve::DEMO_SERVER) && page.contains("Run-as user"), "every server is listed: {page}");
    assert!(page.contains("Client Credentials: this server's tokens act as one identity"), "{page}");
    h.host.store.create_person(registry_host::domain::Person::example("PT1", "Ada", "Lovelace", "ada@example.org")).await.unwrap();
    assert_eq!(provision_now(&h, &a, &csrf_a, "PT1").await, vec![DEMO_USERNAME.to_string()], "no own token: the integration user");

    // Each admin generates their own, signing in as their own Salesforce user.
    let page = generate(&h, &a, &csrf_a, server, GRACE).await;
    assert!(page.contains("Your token was generated") && page.contains(GRACE.0), "the Login is shown: {page}");
    let page = generate(&h, &b, &csrf_b, server, ALAN).await;
    assert!(page.contains(ALAN.0) && !page.contains(GRACE.0), "each admin sees their own");

    // Provision now and Test Connection run as the admin who clicks.
    assert_eq!(provision_now(&h, &a, &csrf_a, "PT1").await, vec![GRACE.0.to_string()]);
    assert_eq!(provision_now(&h, &b, &csrf_b, "PT1").await, vec![ALAN.0.to_string()]);
    let (_, _, to) = b.post(&format!("/servers/{server}/test"), &[("csrf", &csrf_b)]).await;
    let page = b.get(&to.unwrap()).await.1;
    assert!(page.contains("Tested with your own token") && page.contains(ALAN.0), "{page}");
    // Automatic provisioning keeps the integration token.
    emu.clear_request_log();
    let mut edited = h.host.store.person("PT1").await.unwrap();
    edited.name.family = Some("Byron".into());
    h.host.store.update_person(&edited).await.unwrap();
    h.host.engine.wake();
    for _ in 0..100 {
        if emu.request_log().iter().any(|r| r.path.contains("/sobjects")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let users: Vec<_> = emu.request_log().into_iter().filter(|r| r.path.contains("/sobjects")).filter_map(|r| r.user).collect();
    assert!(!users.is_empty() && users.iter().all(|u| u == DEMO_USERNAME), "{users:?}");

    // Without rotation a refresh answers no refresh token: the admin's own
    // is kept, so the token works again after the next expiry too.
    emu.set_rotation(false);
    let bob_id = admin_id(&h, "bob").await;
    let held = h.host.store.admin_tokens(bob_id, server).await.unwrap().unwrap();
    for _ in 0..2 {
        emu.expire_access_tokens();
        let (_, _, to) = b.post(&format!("/account/provider-tokens/{server}/check"), &[("csrf", &csrf_b)]).await;
        let page = b.get(&to.unwrap()).await.1;
        assert!(page.contains(&format!("Works now</strong> as {}", ALAN.0)), "refreshed with the kept refresh token: {page}");
    }
    let kept = h.host.store.admin_tokens(bob_id, server).await.unwrap().unwrap();
    assert_ne!(kept.access_token, held.access_token, "refreshed");
    assert_eq!(kept.refresh_token, held.refresh_token, "the refresh token is kept");
    emu.set_rotation(true);

    // A held token is not a working one: killed at Salesforce, the page
    // still lists it as held, and only Check says it does not work now.
    let grace_tokens = h.host.store.admin_tokens(admin_id(&h, &h.admin().0).await, server).await.unwrap().unwrap();
    emu.revoke_refresh_token(grace_tokens.refresh_token.as_deref().unwrap()).unwrap();
    let page = a.get("/account/provider-tokens").await.1;
    assert!(page.contains("Held") && !page.contains("Works now"), "{page}");
    let (_, _, to) = a.post(&format!("/account/provider-tokens/{server}/check"), &[("csrf", &csrf_a)]).await;
    let page = a.get(&to.unwrap()).await.1;
    assert!(page.contains("Does not work now") && page.contains("Needs a new token"), "{page}");
    let (_, _, to) = b.post(&format!("/account/provider-tokens/{server}/check"), &[("csrf", &csrf_b)]).await;
    let page = b.get(&to.unwrap()).await.1;
    assert!(page.contains(&format!("Works now</strong> as {}", ALAN.0)), "{page}");

    // Revoke Token: revoked at Salesforce and forgotten; Provision now is the
    // integration's again.
    let page = generate(&h, &a, &csrf_a, server, GRACE).await;
    assert!(page.contains(GRACE.0));
    let fresh = h.host.store.admin_tokens(admin_id(&h, &h.admin().0).await, server).await.unwrap().unwrap();
    let (_, _, to) = a.post(&format!("/account/provider-tokens/{server}/revoke"), &[("csrf", &csrf_a)]).await;
    assert!(a.get(&to.unwrap()).await.1.contains("revoked at the provider"));
    assert_eq!(emu.refresh_token_status(fresh.refresh_token.as_deref().unwrap()), Some(RefreshStatus::Revoked));
    assert_eq!(provision_now(&h, &a, &csrf_a, "PT1").await, vec![DEMO_USERNAME.to_string()]);

    // Deleting an admin revokes their tokens at Salesforce first.
    let bob = admin_id(&h, "bob").await;
    let alans = h.host.store.admin_tokens(bob, server).await.unwrap().unwrap();
    let (status, _, _) = a.post(&format!("/admins/{bob}/delete"), &[("csrf", &csrf_a)]).await;
    assert_eq!(status, 303);
    assert_eq!(emu.refresh_token_status(alans.refresh_token.as_deref().unwrap()), Some(RefreshStatus::Revoked));
    assert!(h.host.store.admin_token_list(bob).await.unwrap().is_empty());
    assert_eq!(b.get("/servers").await.0, 303, "their session ended");
    let audit = h.host.store.audit_entries(&Default::default(), 100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "admin.delete" && e.subject == "bob"), "audited");
}

async fn admin_id(h: &Harness, username: &str) -> i64 {
    h.host.store.admins().await.unwrap().into_iter().find(|a| a.1 == username).unwrap().0
}
