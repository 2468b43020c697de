//! The JWT bearer grant end to end, through the real plugin and the
//! emulator: the host makes the key and certificate, the admin uploads the
//! certificate to the app, provisioning runs as the named user, and a
//! certificate rotation loses no job.

use registry_host::certificates;
use registry_host::domain::{ProvState, Scope, TokenStatus};
use registry_host::store::{KeyRole, NewSigningKey};
use registry_plugin_runtime::latest::types::GrantType;
use salesforce_emulator::seed::{DEMO_CONSUMER_KEY, DEMO_USERNAME};

use crate::common::person;
use crate::provisioning::Harness;

const UPSERT: &[(&str, &str)] = &[("object", "Contact"), ("external_id_field", "Registry_ID__c"), ("on_remove", "delete")];

/// Makes a key for the server in `role`, as the server page's button does;
/// returns its certificate and fingerprint.
async fn generate(h: &Harness, role: KeyRole) -> (String, String) {
    let g = certificates::generate("Emulator").unwrap();
    let key = NewSigningKey { private_key_pem: &g.private_key_pem, certificate: &g.certificate_pem, fingerprint: &g.fingerprint, not_after: g.not_after_ms };
    h.store.put_signing_key(h.server, role, &key).await.unwrap();
    (g.certificate_pem, g.fingerprint)
}

async fn current_fingerprint(h: &Harness) -> String {
    h.store.signing_keys(h.server).await.unwrap().into_iter().find(|k| k.role == KeyRole::Current).unwrap().fingerprint
}

#[tokio::test]
async fn jwt_bearer_from_the_certificate_to_provisioning_and_a_rotation_loses_no_job() {
    let h = Harness::new(GrantType::JwtBearer).await;
    // The app is an External Client App: only pre-authorized users.
    h.emu.set_permitted_users(DEMO_CONSUMER_KEY, Some(vec![])).unwrap();
    let target = h.target("Contacts", UPSERT, Scope::default()).await;

    // No key yet: said plainly, nothing asked of the provider.
    let no_key = h.oauth.jwt_bearer(h.server).await.unwrap_err().to_string();
    assert!(no_key.contains("no signing key yet"), "{no_key}");

    // The key exists, but its certificate is not at the app yet.
    let (certificate, fingerprint) = generate(&h, KeyRole::Current).await;
    let not_uploaded = h.oauth.jwt_bearer(h.server).await.unwrap_err().to_string();
    assert!(not_uploaded.contains("Certificate (JWT bearer)") && not_uploaded.contains("invalid assertion") && not_uploaded.contains("Use digital signatures"), "{not_uploaded}");
    assert_eq!(h.store.server(h.server).await.unwrap().token_status, TokenStatus::NeedsReauthorization, "jobs wait for the admin");

    // Uploaded, but the user is not pre-authorized: the plugin names the fix.
    h.emu.upload_certificate(DEMO_CONSUMER_KEY, &certificate).unwrap();
    let not_approved = h.oauth.jwt_bearer(h.server).await.unwrap_err().to_string();
    assert!(not_approved.contains("Username (JWT bearer)") && not_approved.contains("user hasn't approved this consumer") && not_approved.contains("permission set"), "{not_approved}");

    // Pre-authorized, the admin clicks Obtain New Token again: provisioning
    // runs as that user, with no refresh token.
    h.emu.pre_authorize(DEMO_CONSUMER_KEY, DEMO_USERNAME).unwrap();
    let obtained = h.oauth.jwt_bearer(h.server).await.unwrap();
    assert_eq!(obtained.refresh_token, None);
    assert_eq!(h.store.server(h.server).await.unwrap().token_status, TokenStatus::Set);
    for i in 0..3 {
        h.store.create_person(person(&format!("P{i}"), "Ada", &format!("Jwt{i}"), &format!("p{i}@example.edu"))).await.unwrap();
    }
    h.drain().await;
    for i in 0..3 {
        assert_eq!(h.state(&format!("P{i}"), target).await.0, ProvState::Provisioned, "P{i}");
    }
    let tokens = h.store.tokens(h.server).await.unwrap().unwrap();
    assert_eq!(tokens.refresh_token, None);
    let writes: Vec<_> = h.emu.request_log().into_iter().filter(|r| r.path.contains("/composite/sobjects") || r.path.contains("/sobjects/Contact")).collect();
    assert!(!writes.is_empty() && writes.iter().all(|r| r.user.as_deref() == Some(DEMO_USERNAME)), "Salesforce's audit trail names the JWT user: {writes:?}");

    // Rotation, the order an admin follows: the next certificate, uploaded
    // to the app (which replaces the old one there), while the old access
    // token lapses. The next job signs with the old key, is refused, and
    // the host switches to the next key by itself: no job fails.
    let (next_certificate, next_fingerprint) = generate(&h, KeyRole::Next).await;
    assert_eq!(current_fingerprint(&h).await, fingerprint, "nothing changes until the switch");
    h.emu.upload_certificate(DEMO_CONSUMER_KEY, &next_certificate).unwrap();
    h.emu.expire_access_tokens();
    for i in 0..3 {
        h.store.update_person(&person(&format!("P{i}"), "Ada", &format!("Rotated{i}"), &format!("p{i}@example.edu"))).await.unwrap();
    }
    h.drain().await;
    for i in 0..3 {
        let (state, _, message) = h.state(&format!("P{i}"), target).await;
        assert_eq!(state, ProvState::Provisioned, "P{i}: {message:?}");
        assert_eq!(h.contacts_with(&format!("P{i}"))[0]["LastName"], format!("Rotated{i}"));
    }
    assert_eq!(h.store.job_counts(Some(target)).await.unwrap().1, 0, "no failed job");
    assert_eq!(current_fingerprint(&h).await, next_fingerprint, "the next key became current");
    assert_eq!(h.store.signing_keys(h.server).await.unwrap().len(), 1, "the old key is forgotten");

    // The explicit switch: refused while the provider does not take the
    // key (nothing changes), done once it does.
    let (third, third_fingerprint) = generate(&h, KeyRole::Next).await;
    let early = h.oauth.switch_key(h.server).await.unwrap_err().to_string();
    assert!(early.contains("does not take the next certificate yet"), "{early}");
    assert_eq!(current_fingerprint(&h).await, next_fingerprint);
    h.emu.upload_certificate(DEMO_CONSUMER_KEY, &third).unwrap();
    h.oauth.switch_key(h.server).await.unwrap();
    assert_eq!(current_fingerprint(&h).await, third_fingerprint);
    assert_eq!(h.store.server(h.server).await.unwrap().token_status, TokenStatus::Set);
}

/// The same through the admin UI: the form offers the grant the plugin
/// claims and asks for the username, the server page shows the certificate
/// to download with its fingerprint and expiry, Obtain New Token signs an
/// assertion, and Switch refuses a next certificate the app does not hold.
#[tokio::test]
async fn the_server_page_makes_the_certificate_and_obtains_a_token_with_it() {
    use crate::web::{Harness as Web, csrf as csrf_of};
    let h = Web::start().await;
    let csrf = h.login().await;
    let emu = h.host.emulator.as_ref().unwrap();
    assert!(h.get("/servers/new").await.1.contains("value=\"jwt_bearer\""), "the Salesforce plugin claims the JWT bearer grant");

    let base = [("csrf", csrf.as_str()), ("name", "JWT"), ("server_url_choice", "custom"), ("server_url", &emu.login_url()), ("client_id", DEMO_CONSUMER_KEY), ("grant_type", "jwt_bearer"), ("api_hosts", "127.0.0.1")];
    let (status, page, _) = h.post("/servers", &base).await;
    assert_eq!(status, 422, "the username is required");
    assert!(page.contains("Enter the username the tokens act as"), "{page}");
    let mut form = base.to_vec();
    form.push(("jwt_subject", DEMO_USERNAME));
    let (status, _, to) = h.post("/servers", &form).await;
    assert_eq!(status, 303, "no client secret is needed");
    let page = h.get(&to.unwrap()).await.1;
    let id = h.host.store.servers().await.unwrap().into_iter().find(|s| s.name == "JWT").unwrap().id;
    let fingerprint = h.host.store.signing_keys(id).await.unwrap()[0].fingerprint.clone();
    assert!(page.contains("Signing certificate") && page.contains(&fingerprint) && page.contains(DEMO_USERNAME), "{page}");

    let r = h.http.get(h.url(&format!("/servers/{id}/certificate/current.pem"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"jwt-"));
    let certificate = r.text().await.unwrap();
    assert!(certificate.starts_with("-----BEGIN CERTIFICATE-----") && !certificate.contains("PRIVATE"), "only the certificate leaves");

    // The admin uploads it and pre-authorizes the user; Obtain New Token.
    emu.upload_certificate(DEMO_CONSUMER_KEY, &certificate).unwrap();
    emu.set_permitted_users(DEMO_CONSUMER_KEY, Some(vec![DEMO_USERNAME.into()])).unwrap();
    let (status, _, to) = h.post(&format!("/servers/{id}/token"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let page = h.get(&to.unwrap()).await.1;
    assert!(page.contains("Access Token Obtained.") && page.contains(">Set<"), "{page}");

    // A next certificate; Switch before the app holds it changes nothing.
    let (status, _, to) = h.post(&format!("/servers/{id}/certificate/next"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let page = h.get(&to.unwrap()).await.1;
    assert!(page.contains("key-next") && page.contains("Switch to the next certificate"), "{page}");
    let (_, page, _) = h.post(&format!("/servers/{id}/certificate/switch"), &[("csrf", &csrf_of(&page))]).await;
    assert!(page.contains("Not switched") && page.contains("does not take the next certificate yet"), "{page}");
    assert_eq!(h.host.store.signing_keys(id).await.unwrap()[0].fingerprint, fingerprint, "the current key stays");
}
