//! The JWT bearer flow: an assertion verified against the app's uploaded
//! certificate, then its audience, expiry and user, each refusal in
//! Salesforce's words; no refresh token.

use base64::Engine as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::*;

const KEY: &str = "3MVG9registryKey";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A key pair and its self-signed certificate, as an admin would upload it.
fn key_and_certificate() -> (RsaPrivateKey, String) {
    let (pem, certificate) = salesforce_emulator::jwt::key_pair("behaviour test").unwrap();
    (RsaPrivateKey::from_pkcs8_pem(&pem).unwrap(), certificate)
}

fn assertion(key: &RsaPrivateKey, claims: Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!("{}.{}", b64(br#"{"alg":"RS256"}"#), b64(claims.to_string().as_bytes()));
    let sig = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn jwt_bearer_verifies_the_certificate_audience_expiry_and_user() {
    let emu = start();
    let http = client();
    let (key, certificate) = key_and_certificate();
    let claims = |aud: &str, sub: &str, exp: i64| json!({"iss": KEY, "sub": sub, "aud": aud, "exp": exp});
    let good = claims(&emu.login_url(), USER, now() + 120);
    let token = |jwt: String| {
        let (emu, http) = (&emu, &http);
        async move { post_token(emu, http, &[("grant_type", GRANT), ("assertion", &jwt)]).await }
    };

    // No certificate uploaded yet: the signature cannot be verified.
    let invalid = json!({"error": "invalid_grant", "error_description": "invalid assertion"});
    assert_eq!(token(assertion(&key, good.clone())).await, (400, invalid.clone()));
    emu.upload_certificate(KEY, &certificate).unwrap();
    assert!(emu.upload_certificate(KEY, "-----BEGIN CERTIFICATE-----\nbad\n-----END CERTIFICATE-----").is_err(), "a broken certificate is refused");

    // The app lets all users self-authorize: a user who never approved it
    // in a browser is refused, and accepted once they have.
    let not_approved = json!({"error": "invalid_grant", "error_description": "user hasn't approved this consumer"});
    assert_eq!(token(assertion(&key, good.clone())).await, (400, not_approved.clone()));
    tokens(&emu, &http).await;
    let (status, body) = token(assertion(&key, good.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none() && body.get("signature").is_none() && body.get("issued_at").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let (status, _, _) = api(&http, reqwest::Method::GET, &data_url(&body, "limits"), access(&body), None).await;
    assert_eq!(status, 200, "the token works for the API");

    // Each refusal as Salesforce words it.
    let (other_key, _) = key_and_certificate();
    let cases = [
        (assertion(&other_key, good.clone()), invalid.clone()),
        (assertion(&key, claims("https://test.salesforce.com", USER, now() + 120)), json!({"error": "invalid_grant", "error_description": "audience is invalid"})),
        (assertion(&key, claims(&emu.login_url(), USER, now() - 1)), json!({"error": "invalid_grant", "error_description": "expired authorization code"})),
        (assertion(&key, claims(&emu.login_url(), "nobody@example.com", now() + 120)), not_approved.clone()),
        (assertion(&key, json!({"iss": "3MVG9unknown", "sub": USER, "aud": emu.login_url(), "exp": now() + 120})), json!({"error": "invalid_client_id", "error_description": "client identifier invalid"})),
        ("not.a.jwt".to_string(), invalid.clone()),
    ];
    for (jwt, expected) in cases {
        assert_eq!(token(jwt).await, (400, expected.clone()), "{expected}");
    }

    // "Admin approved users are pre-authorized": the policy alone decides.
    emu.set_permitted_users(KEY, Some(vec![])).unwrap();
    assert_eq!(token(assertion(&key, good.clone())).await, (400, not_approved));
    emu.pre_authorize(KEY, USER).unwrap();
    assert_eq!(token(assertion(&key, good.clone())).await.0, 200);

    // An upload replaces the certificate: the old key stops working.
    let (new_key, new_certificate) = key_and_certificate();
    emu.upload_certificate(KEY, &new_certificate).unwrap();
    assert_eq!(token(assertion(&key, good.clone())).await, (400, invalid));
    assert_eq!(token(assertion(&new_key, good)).await.0, 200);
}
