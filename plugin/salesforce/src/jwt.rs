//! Salesforce's OAuth 2.0 JWT bearer flow (RFC 7523): the assertion, signed
//! RS256 with the key whose certificate the admin uploaded to the app, and
//! its exchange at `/services/oauth2/token`. There is no refresh token: the
//! host has a new assertion signed when the access token is refused.
//!
//! The signing is the `rsa` crate's PKCS#1 v1.5 with SHA-256 (pure Rust, so
//! it builds for wasm32-wasip2 without a C toolchain).

use base64::Engine as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::json;
use sha2::Sha256;

use crate::error::Error;
use crate::http::{Transport, Url};
use crate::oauth::{self, ServerConfig, Tokens};

/// How long an assertion is good for: Salesforce wants `exp` within three
/// minutes; two leave room for a slow clock on either side.
pub const LIFETIME_SECS: u64 = 120;

/// The grant type Salesforce's token endpoint takes for an assertion.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What the host hands over to sign with (mirrors the WIT `jwt-signing-key`).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningInput {
    /// The Salesforce username the token acts as.
    pub subject: String,
    /// PKCS#8 PEM.
    pub private_key_pem: String,
}

impl std::fmt::Debug for SigningInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, even in a debug print.
        f.debug_struct("SigningInput").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// The assertion's audience: the login URL's origin (`https://login.salesforce.com`,
/// `https://test.salesforce.com` or the My Domain URL), without a path.
pub fn audience(server_url: &str) -> Result<String, Error> {
    let base = oauth::oauth_base(server_url)?;
    Ok(Url::parse(&base).map_err(|e| Error::config("server_url", e))?.origin())
}

/// The signed assertion: `iss` the consumer key, `sub` the username, `aud`
/// the login URL, `exp` [`LIFETIME_SECS`] from `now_secs`.
pub fn assertion(cfg: &ServerConfig, key: &SigningInput, now_secs: u64) -> Result<String, Error> {
    if cfg.client_id.trim().is_empty() {
        return Err(Error::config("client_id", "a Client ID (the External Client App's consumer key) is required: it is the assertion's issuer"));
    }
    if key.subject.trim().is_empty() {
        return Err(Error::config("subject", "the username to act as is required: the Salesforce user the tokens act as"));
    }
    let private = RsaPrivateKey::from_pkcs8_pem(&key.private_key_pem)
        .map_err(|e| Error::config("certificate", format!("the signing key is not an RSA PKCS#8 key ({e}); generate the certificate again")))?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({"alg": "RS256"});
    let claims = json!({
        "iss": cfg.client_id.trim(),
        "sub": key.subject.trim(),
        "aud": audience(&cfg.server_url)?,
        "exp": now_secs + LIFETIME_SECS,
    });
    let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = SigningKey::<Sha256>::new(private).sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64(&signature.to_bytes())))
}

/// Signs an assertion and exchanges it for an access token.
pub fn jwt_bearer(t: &mut dyn Transport, cfg: &ServerConfig, key: &SigningInput, now_ms: u64) -> Result<Tokens, Error> {
    let jwt = assertion(cfg, key, now_ms / 1000)?;
    oauth::exchange_assertion(t, cfg, &jwt, &key.subject, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::{Fake, reply};
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::signature::Verifier;
    use serde_json::{Value, json};

    fn key() -> (RsaPrivateKey, SigningInput) {
        // A small key keeps the unoptimised test quick; the code is the same.
        let mut rng = rand_core::OsRng;
        let private = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        (private, SigningInput { subject: "integration@acme.example".into(), private_key_pem: pem })
    }

    fn cfg(url: &str) -> ServerConfig {
        ServerConfig { server_url: url.into(), client_id: "3MVG9key".into(), client_secret: String::new(), scope: None }
    }

    fn part(jwt: &str, i: usize) -> Value {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(i).unwrap()).unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    #[test]
    fn the_assertion_carries_salesforces_claims_and_verifies_with_the_public_key() {
        let (private, input) = key();
        let jwt = assertion(&cfg("https://acme.my.salesforce.com/services/oauth2"), &input, 1_800_000_000).unwrap();
        assert_eq!(part(&jwt, 0), json!({"alg": "RS256"}));
        assert_eq!(part(&jwt, 1), json!({"iss": "3MVG9key", "sub": "integration@acme.example", "aud": "https://acme.my.salesforce.com", "exp": 1_800_000_120u64}));
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let sig = Signature::try_from(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap().as_slice()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(private.to_public_key());
        verifier.verify(signed.as_bytes(), &sig).unwrap();
        assert!(verifier.verify(format!("{signed}x").as_bytes(), &sig).is_err());
    }

    #[test]
    fn a_missing_username_client_or_broken_key_names_its_field() {
        let (_, input) = key();
        let mut no_sub = input.clone();
        no_sub.subject = " ".into();
        let mut bad_key = input.clone();
        bad_key.private_key_pem = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----".into();
        let mut no_client = cfg("https://login.salesforce.com");
        no_client.client_id.clear();
        for (c, k, field) in [(cfg("https://login.salesforce.com"), no_sub, "subject"), (cfg("https://login.salesforce.com"), bad_key, "certificate"), (no_client, input.clone(), "client_id")] {
            assert!(matches!(assertion(&c, &k, 0), Err(Error::InvalidConfig(f)) if f.field == field), "{field}");
        }
        assert!(!format!("{input:?}").contains("PRIVATE KEY"), "a debug print never shows the key");
    }

    #[test]
    fn the_exchange_posts_the_assertion_and_salesforces_refusals_say_what_to_fix() {
        let (_, input) = key();
        let ok = json!({"access_token": "00D!jwt", "scope": "api", "instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA", "token_type": "Bearer"});
        let mut t = Fake { sent: vec![], replies: vec![reply(200, ok)] };
        let tokens = jwt_bearer(&mut t, &cfg("https://login.salesforce.com"), &input, 1_800_000_000_500).unwrap();
        assert_eq!(tokens.access_token, "00D!jwt");
        assert_eq!(tokens.refresh_token, None);
        assert_eq!(tokens.issued_at, Some(1_800_000_000_500), "Salesforce's JWT answer has no issued_at: the time of asking");
        assert_eq!(t.sent[0].url, "https://login.salesforce.com/services/oauth2/token");
        let body = String::from_utf8(t.sent[0].body.clone()).unwrap();
        assert!(body.starts_with("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"), "{body}");
        assert!(!body.contains("client_secret"), "{body}");

        for (description, field) in [
            ("audience is invalid", "server_url"),
            ("user hasn't approved this consumer", "subject"),
            ("invalid assertion", "certificate"),
        ] {
            let mut t = Fake { sent: vec![], replies: vec![reply(400, json!({"error": "invalid_grant", "error_description": description}))] };
            let e = jwt_bearer(&mut t, &cfg("https://login.salesforce.com"), &input, 0).unwrap_err();
            assert!(matches!(&e, Error::InvalidConfig(f) if f.field == field && f.message.contains(description)), "{description}: {e:?}");
        }
        let mut t = Fake { sent: vec![], replies: vec![reply(400, json!({"error": "invalid_grant", "error_description": "expired authorization code"}))] };
        let e = jwt_bearer(&mut t, &cfg("https://login.salesforce.com"), &input, 0).unwrap_err();
        assert!(matches!(&e, Error::Remote { message, retryable: false, .. } if message.contains("clock")), "{e:?}");
    }
}
