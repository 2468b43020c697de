//! The login host: authorize (login form, consent, redirects), token grants,
//! revoke, userinfo, the identity URL and introspect.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

const KEY: &str = "3MVG9registryKey";
const SECRET: &str = "3MVG9registryKey-secret";

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn code_flow_returns_exactly_the_documented_token_response() {
    let emu = start();
    let http = client();
    let resp = approve(&emu, &http, KEY, &[("scope", "api refresh_token")]).await;
    assert_eq!(resp.status(), 302);
    let (location, params) = location_params(&resp);
    assert!(location.starts_with(&format!("{CALLBACK}?code=")), "{location}");
    assert_eq!(param(&params, "state"), Some("st-123"));
    // The code is standard base64: it arrives URL-encoded (…%3D%3D, %2B, %2F)
    // and must be decoded exactly once.
    let code = param(&params, "code").unwrap().to_string();
    assert!(code.ends_with('='), "{code}");
    assert!(location.contains("%3D"), "{location}");

    let (status, body) = post_token(
        &emu,
        &http,
        &[("grant_type", "authorization_code"), ("code", &code), ("client_id", KEY), ("client_secret", SECRET), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&body), ["access_token", "refresh_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api refresh_token");
    let org = &emu.orgs()[0];
    assert_eq!(body["instance_url"], org.instance_url.as_str());
    assert_ne!(org.instance_url, emu.login_url(), "login and instance hosts are separate listeners");
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    assert!(issued_at.len() == 13 && issued_at.bytes().all(|b| b.is_ascii_digit()), "epoch ms: {issued_at}");
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{}/id/{}/005", emu.login_url(), org.id)), "{id}");
    assert!(body["access_token"].as_str().unwrap().starts_with(&format!("{}!", &org.id[..15])));
    // signature = base64(HMAC-SHA256(client_secret, id + issued_at))
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{id}{issued_at}").as_bytes());
    assert_eq!(body["signature"], base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));

    // Codes are single-use.
    let (status, again) = post_token(
        &emu,
        &http,
        &[("grant_type", "authorization_code"), ("code", &code), ("client_id", KEY), ("client_secret", SECRET), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_eq!((status, again), (400, json!({"error": "invalid_grant", "error_description": "expired authorization code"})));
}

#[tokio::test]
async fn codes_expire_and_must_be_decoded_exactly_once() {
    let emu = start();
    let http = client();
    let code = code(&emu, &http).await;
    assert!(code.contains('+') && code.contains('/'), "codes carry characters that decoding twice would change: {code}");
    // Decoding twice turns '+' into ' ' (or leaves %-escapes): not the code.
    let mangled = code.replace('+', " ").replace('=', "%3D");
    let form = |c: &str| {
        vec![("grant_type", "authorization_code".to_string()), ("code", c.to_string()), ("client_id", KEY.into()), ("client_secret", SECRET.into()), ("redirect_uri", CALLBACK.into())]
    };
    let r = http.post(format!("{}/services/oauth2/token", emu.login_url())).form(&form(&mangled)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "invalid_grant", "error_description": "invalid authorization code"}));
    emu.advance_clock(Duration::from_secs(16 * 60));
    let r = http.post(format!("{}/services/oauth2/token", emu.login_url())).form(&form(&code)).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "invalid_grant", "error_description": "expired authorization code"}));
}

#[tokio::test]
async fn token_endpoint_errors_are_salesforce_s() {
    let emu = start();
    let http = client();
    let code = code(&emu, &http).await;
    let cases: Vec<(Vec<(&str, &str)>, Value)> = vec![
        (vec![("code", &code)], json!({"error": "invalid_request", "error_description": "grant type is missing"})),
        (vec![("grant_type", "password"), ("username", USER), ("password", PASSWORD)], json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"})),
        (
            vec![("grant_type", "authorization_code"), ("code", &code), ("client_id", "nope"), ("client_secret", SECRET), ("redirect_uri", CALLBACK)],
            json!({"error": "invalid_client_id", "error_description": "client identifier invalid"}),
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", &code), ("client_id", KEY), ("client_secret", "wrong"), ("redirect_uri", CALLBACK)],
            json!({"error": "invalid_client", "error_description": "invalid client credentials"}),
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", &code), ("client_id", KEY), ("client_secret", SECRET), ("redirect_uri", "http://127.0.0.1:9/other")],
            json!({"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match configuration"}),
        ),
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "5Aep861bogus"), ("client_id", KEY), ("client_secret", SECRET)],
            json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}),
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", "3MVG9noClientCredentials"), ("client_secret", "3MVG9noClientCredentials-secret")],
            json!({"error": "invalid_grant", "error_description": "no client credentials user enabled"}),
        ),
    ];
    for (form, expected) in cases {
        let (status, body) = post_token(&emu, &http, &form).await;
        assert_eq!((status, &body), (400, &expected), "{form:?}");
    }
    // None of those used the code up: it still works, with HTTP Basic client auth.
    let r = http
        .post(format!("{}/services/oauth2/token", emu.login_url()))
        .basic_auth(KEY, Some(SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn authorize_refuses_unknown_clients_and_redirects_on_a_page_not_a_redirect() {
    let emu = start();
    let http = client();
    let r = http.get(authorize_url(&emu, "nope", &[])).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("error=invalid_client_id&amp;error_description=client identifier invalid"));

    let mut u = url::Url::parse(&authorize_url(&emu, KEY, &[])).unwrap();
    let pairs: Vec<(String, String)> = u.query_pairs().map(|(k, v)| {
        let v = if k == "redirect_uri" { "https://evil.example.com/cb".to_string() } else { v.into_owned() };
        (k.into_owned(), v)
    }).collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    let r = http.get(u.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "never redirect to an unregistered URI");
    assert!(r.text().await.unwrap().contains("redirect_uri must match configuration"));

    let r = http.get(authorize_url(&emu, KEY, &[("scope", "api full")])).send().await.unwrap();
    let (_, p) = location_params(&r);
    assert_eq!(param(&p, "error"), Some("invalid_scope"));
    assert_eq!(param(&p, "state"), Some("st-123"));
}

#[tokio::test]
async fn wrong_password_shows_salesforce_s_message_and_deny_redirects_with_access_denied() {
    let emu = start();
    let http = client();
    let html = http.get(authorize_url(&emu, KEY, &[])).send().await.unwrap().text().await.unwrap();
    let tx = tx_of(&html);
    let r = http
        .post(format!("{}/services/oauth2/authorize/login", emu.login_url()))
        .form(&[("tx", tx.as_str()), ("username", USER), ("pw", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<div id=\"error\" role=\"alert\">Please check your username and password. If you still can&#39;t log in, contact your Salesforce administrator.</div>"), "{html}");
    let r = http
        .post(format!("{}/services/oauth2/authorize/login", emu.login_url()))
        .form(&[("tx", tx.as_str()), ("username", USER), ("pw", PASSWORD)])
        .send()
        .await
        .unwrap();
    let set_cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let html = r.text().await.unwrap();
    let r = http
        .post(format!("{}/services/oauth2/authorize/consent", emu.login_url()))
        .form(&[("tx", tx_of(&html).as_str()), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    let (_, p) = location_params(&r);
    assert_eq!(param(&p, "error"), Some("access_denied"));
    assert_eq!(param(&p, "error_description"), Some("end-user denied authorization"));
    assert_eq!(param(&p, "state"), Some("st-123"));
    assert_eq!(param(&p, "code"), None);
}

#[tokio::test]
async fn a_session_skips_login_and_an_approved_app_skips_consent_unless_prompted() {
    let emu = start();
    let jar_client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let first = approve(&emu, &jar_client, KEY, &[]).await;
    assert_eq!(first.status(), 302);
    // Logged in and approved: straight back with a code.
    let again = jar_client.get(authorize_url(&emu, KEY, &[])).send().await.unwrap();
    assert_eq!(again.status(), 302);
    assert!(param(&location_params(&again).1, "code").is_some());
    // prompt=login shows the login form again.
    let html = jar_client.get(authorize_url(&emu, KEY, &[("prompt", "login")])).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("id=\"Login\""));
    // prompt=consent shows the consent page again.
    let html = jar_client.get(authorize_url(&emu, KEY, &[("prompt", "consent")])).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("id=\"oaapprove\""));
    // prompt=none without a session: login_required.
    let r = client().get(authorize_url(&emu, KEY, &[("prompt", "none")])).send().await.unwrap();
    assert_eq!(param(&location_params(&r).1, "error"), Some("login_required"));
}

#[tokio::test]
async fn pkce_is_required_and_checked() {
    let emu = start();
    let http = client();
    let r = http.get(authorize_url(&emu, PKCE_KEY, &[])).send().await.unwrap();
    let (_, p) = location_params(&r);
    assert_eq!(param(&p, "error"), Some("invalid_request"));
    assert_eq!(param(&p, "error_description"), Some("missing required code challenge"));

    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
    let r = approve(&emu, &http, PKCE_KEY, &[("code_challenge", &challenge)]).await;
    let code = param(&location_params(&r).1, "code").unwrap().to_string();
    let form = |v: &'static str| vec![("grant_type", "authorization_code"), ("client_id", PKCE_KEY), ("redirect_uri", CALLBACK), ("code_verifier", v)];
    let mut wrong = form("not-the-verifier-not-the-verifier-not-the-verifier");
    wrong.push(("code", &code));
    let (status, body) = post_token(&emu, &http, &wrong).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant", "error_description": "invalid code verifier"})));
    // No secret needed for this public client: PKCE stands in for it.
    let mut right = form(verifier);
    right.push(("code", &code));
    let (status, body) = post_token(&emu, &http, &right).await;
    assert_eq!(status, 200, "{body}");

    // RFC 7636 verifiers may contain '~'.
    let tilde = "abc~def~ghi~jkl~mno~pqr~stu~vwx~yz0~123~456~789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(tilde));
    let r = approve(&emu, &http, PKCE_KEY, &[("code_challenge", &challenge)]).await;
    let code = param(&location_params(&r).1, "code").unwrap().to_string();
    let mut with_tilde = form(tilde);
    with_tilde.push(("code", &code));
    assert_eq!(post_token(&emu, &http, &with_tilde).await.0, 200);
}

#[tokio::test]
async fn refresh_without_rotation_returns_no_refresh_token() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (status, body) =
        post_token(&emu, &http, &[("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", KEY), ("client_secret", SECRET)]).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"]);
    assert_ne!(body["access_token"], t["access_token"]);
    // The old access token still works until it expires; so does the new one.
    for token in [access(&t), body["access_token"].as_str().unwrap()] {
        let (s, _, _) = api(&http, Method::GET, &data_url(&t, "limits"), token, None).await;
        assert_eq!(s, 200);
    }
}

#[tokio::test]
async fn rotation_issues_a_new_refresh_token_and_reuse_kills_the_family() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.set_rotation(true);
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let http = http.clone();
        let emu_login = emu.login_url();
        async move {
            let r = http
                .post(format!("{emu_login}/services/oauth2/token"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", KEY), ("client_secret", SECRET)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = refresh(rt1.clone()).await;
    assert_eq!(status, 200);
    let rt2 = body["refresh_token"].as_str().expect("rotation returns a new refresh token").to_string();
    assert_ne!(rt1, rt2);
    let at2 = body["access_token"].as_str().unwrap().to_string();
    // Reusing the rotated-out token fails and kills the current one too.
    let (status, body) = refresh(rt1).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})));
    let (status, _) = refresh(rt2.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(emu.refresh_token_status(&rt2), Some(salesforce_emulator::RefreshStatus::Revoked));
    let (s, _, body) = api(&http, Method::GET, &data_url(&t, "limits"), &at2, None).await;
    assert_eq!((s, body.as_str()), (401, r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#));
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_are_refused() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    emu.set_latency(Duration::from_millis(300));
    let rt = t["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", KEY), ("client_secret", SECRET)];
    let (a, b) = tokio::join!(post_token(&emu, &http, &form), post_token(&emu, &http, &form));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
    let err = if a.0 == 400 { a.1 } else { b.1 };
    assert_eq!(err, json!({"error": "invalid_grant", "error_description": "token request is already being processed"}));
}

#[tokio::test]
async fn only_five_refresh_tokens_per_user_and_app() {
    let emu = start();
    let http = client();
    let mut all = vec![];
    for _ in 0..6 {
        all.push(tokens(&emu, &http).await);
    }
    let refresh = |t: &Value| {
        let rt = t["refresh_token"].as_str().unwrap().to_string();
        let (emu, http) = (&emu, &http);
        async move { post_token(emu, http, &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", KEY), ("client_secret", SECRET)]).await.0 }
    };
    assert_eq!(refresh(&all[0]).await, 400, "the sixth approval revokes the oldest");
    for t in &all[1..] {
        assert_eq!(refresh(t).await, 200, "the other five still work");
    }
}

#[tokio::test]
async fn client_credentials_has_no_refresh_token_and_names_the_api_instance() {
    let emu = start();
    let http = client();
    let r = http
        .post(format!("{}/services/oauth2/token", emu.login_url()))
        .basic_auth(KEY, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(keys(&body), ["access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at", "api_instance_url"]);
    assert_eq!(body["scope"], "api id");
    let (s, limit, _) = api(&http, Method::GET, &data_url(&body, "limits"), access(&body), None).await;
    assert_eq!(s, 200);
    assert!(limit.is_some());
}

#[tokio::test]
async fn revoke_access_and_refresh_tokens() {
    let emu = start();
    let http = client();
    let revoke = |token: Option<&str>| {
        let mut form = vec![];
        if let Some(t) = token {
            form.push(("token", t.to_string()));
        }
        http.post(format!("{}/services/oauth2/revoke", emu.login_url())).form(&form).send()
    };
    let t = tokens(&emu, &http).await;
    let r = revoke(Some(access(&t))).await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, _, _) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!(s, 401);
    // Revoking the refresh token kills its access tokens and itself.
    let t = tokens(&emu, &http).await;
    assert_eq!(revoke(t["refresh_token"].as_str()).await.unwrap().status(), 200);
    let (s, _, _) = api(&http, Method::GET, &data_url(&t, "limits"), access(&t), None).await;
    assert_eq!(s, 401);
    let r = revoke(Some("nonsense")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "invalid_token", "error_description": "invalid token"}));
    let r = revoke(None).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "unsupported_token_type", "error_description": "this token type is not supported"}));
}

#[tokio::test]
async fn userinfo_identity_url_and_introspect() {
    let emu = start();
    let http = client();
    let t = tokens(&emu, &http).await;
    let id_url = t["id"].as_str().unwrap();
    let org = &emu.orgs()[0];

    let info: Value = http.get(format!("{}/services/oauth2/userinfo", emu.login_url())).bearer_auth(access(&t)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["sub"], id_url);
    assert_eq!(info["organization_id"], org.id.as_str());
    assert_eq!(info["preferred_username"], USER);
    assert_eq!(info["name"], "Ada Lovelace");
    assert!(id_url.ends_with(info["user_id"].as_str().unwrap()));

    let ident: Value = http.get(id_url).bearer_auth(access(&t)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ident["id"], id_url);
    assert_eq!(ident["username"], USER);
    assert_eq!(ident["urls"]["rest"], format!("{}/services/data/v{{version}}/", org.instance_url));
    // The same via ?oauth_token=, as jsforce calls it.
    let r = http.get(format!("{id_url}?format=json&oauth_token={}", access(&t))).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let r = http.get(format!("{}/services/oauth2/userinfo", emu.login_url())).bearer_auth("bad").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "Bad_OAuth_Token");

    let introspect = |token: String| {
        http.post(format!("{}/services/oauth2/introspect", emu.login_url()))
            .form(&[("token", token.as_str()), ("token_type_hint", "access_token"), ("client_id", KEY), ("client_secret", SECRET)])
            .send()
    };
    let v: Value = introspect(access(&t).to_string()).await.unwrap().json().await.unwrap();
    assert_eq!(keys(&v), ["active", "scope", "client_id", "username", "sub", "token_type", "exp", "iat", "nbf"]);
    assert_eq!(v["active"], true);
    assert_eq!(v["username"], USER);
    assert_eq!(v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap(), 7200);
    let v: Value = introspect("nope".into()).await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"active": false}));
    let r = http.post(format!("{}/services/oauth2/introspect", emu.login_url())).form(&[("token", access(&t))]).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

/// An External Client App seeded with nothing but its keys is closed the
/// way Salesforce makes them since Spring '26: PKCE required, only
/// pre-authorized users (who see no consent page; anyone else is turned
/// away with Salesforce's error), and refresh tokens rotated.
#[tokio::test]
async fn an_external_client_app_is_closed_by_default() {
    const ECA: &str = "3MVG9externalClientApp";
    const GRACE: &str = "grace@example.com";
    let mut seed = seed();
    seed.orgs[0].users.push(salesforce_emulator::seed::UserSeed {
        username: GRACE.into(),
        password: PASSWORD.into(),
        first_name: Some("Grace".into()),
        last_name: "Hopper".into(),
        email: None,
        profile: "System Administrator".into(),
    });
    seed.orgs[0].external_client_apps.push(
        serde_json::from_value(json!({"name": "Registry ECA", "consumer_key": ECA, "consumer_secret": "eca-secret", "callback_urls": [CALLBACK], "pre_authorized_users": [GRACE]}))
            .unwrap(),
    );
    let emu = salesforce_emulator::Emulator::start(seed).unwrap();
    let http = client();

    let r = http.get(authorize_url(&emu, ECA, &[])).send().await.unwrap();
    assert_eq!(param(&location_params(&r).1, "error_description"), Some("missing required code challenge"), "PKCE is on");

    let verifier = "eca-verifier-eca-verifier-eca-verifier-eca-verifier";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    // Ada is not pre-authorized: turned away after login, before consent.
    let r = approve_as(&emu, &http, ECA, USER, PASSWORD, &pkce).await;
    assert_eq!(r.status(), 302);
    let (_, p) = location_params(&r);
    assert_eq!(param(&p, "error"), Some("OAUTH_APPROVAL_ERROR_GENERIC"));
    assert_eq!(param(&p, "error_description"), Some("user is not admin approved to access this app"));
    assert_eq!(param(&p, "state"), Some("st-123"));
    assert!(param(&p, "code").is_none());

    // Grace is: no consent page, a code at once.
    let r = approve_as(&emu, &http, ECA, GRACE, PASSWORD, &pkce).await;
    let code = param(&location_params(&r).1, "code").expect("a code for a pre-authorized user").to_string();
    let (status, t) = post_token(
        &emu,
        &http,
        &[("grant_type", "authorization_code"), ("code", &code), ("client_id", ECA), ("client_secret", "eca-secret"), ("redirect_uri", CALLBACK), ("code_verifier", verifier)],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let rt = t["refresh_token"].as_str().unwrap();
    let (status, refreshed) = post_token(&emu, &http, &[("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", ECA), ("client_secret", "eca-secret")]).await;
    assert_eq!(status, 200);
    assert!(refreshed["refresh_token"].as_str().is_some_and(|new| new != rt), "rotation is on: {refreshed}");

    // The admin pre-authorizes Ada (a permission set the app lists): she
    // goes through too.
    emu.pre_authorize(ECA, USER).unwrap();
    let r = approve_as(&emu, &http, ECA, USER, PASSWORD, &pkce).await;
    assert!(param(&location_params(&r).1, "code").is_some());
    assert!(emu.pre_authorize("3MVG9registryKey", USER).unwrap_err().contains("lets all users self-authorize"));
}
