//! The OAuth 2.0 JWT bearer flow (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`)
//! as Salesforce runs it: the assertion is verified against the certificate
//! uploaded to the app, then its audience, expiry and user, each refusal in
//! Salesforce's words. No refresh token is issued.

use base64::Engine as _;
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::Value;
use sha2::Sha256;
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{DecodePem, Encode, EncodePem};

use crate::errors::OAuthError;
use crate::state::{Grant, GrantKind, Inner, is_refresh_scope};

/// The grant type's name on the wire.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How far in the future `exp` may be (Salesforce: "within 3 minutes"),
/// with a little leeway for clocks.
const MAX_LIFETIME_SECS: i64 = 5 * 60;

/// The RSA public key of a PEM certificate, or why not.
pub fn public_key(certificate_pem: &str) -> Result<RsaPublicKey, String> {
    let cert = Certificate::from_pem(certificate_pem.trim().as_bytes()).map_err(|e| format!("not a PEM X.509 certificate: {e}"))?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| format!("its public key cannot be read: {e}"))?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("its public key is not RSA: {e}"))
}

/// A key pair and a self-signed certificate, as an admin would make them
/// for an app's "Use digital signatures" (for tests and test beds; the
/// registry makes its own): the private key as PKCS#8 PEM, and the
/// certificate as PEM.
pub fn key_pair(common_name: &str) -> Result<(String, String), String> {
    use rsa::pkcs8::EncodePrivateKey;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|x| e(&x))?;
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(private.clone());
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_key(private.to_public_key()).map_err(|x| e(&x))?;
    let subject = std::str::FromStr::from_str(&format!("CN={common_name}")).map_err(|x: x509_cert::der::Error| e(&x))?;
    let validity = x509_cert::time::Validity::from_now(std::time::Duration::from_secs(86_400)).map_err(|x| e(&x))?;
    let builder = CertificateBuilder::new(Profile::Root, x509_cert::serial_number::SerialNumber::from(1u32), validity, subject, spki, &signer)
        .map_err(|x| e(&x))?;
    let cert = builder.build::<rsa::pkcs1v15::Signature>().map_err(|x| e(&x))?;
    let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|x| e(&x))?.to_string();
    Ok((pem, cert.to_pem(LineEnding::LF).map_err(|x| e(&x))?))
}

fn invalid_assertion() -> OAuthError {
    OAuthError::new("invalid_grant", "invalid assertion")
}

fn claims_of(assertion: &str) -> Result<(String, Value, Vec<u8>), OAuthError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = assertion.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid_assertion());
    };
    let header: Value = b64.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or_else(invalid_assertion)?;
    if header["alg"] != "RS256" {
        return Err(OAuthError::new("invalid_grant", "invalid assertion: the signing algorithm must be RS256"));
    }
    let claims: Value = b64.decode(payload).ok().and_then(|p| serde_json::from_slice(&p).ok()).ok_or_else(invalid_assertion)?;
    let signature = b64.decode(signature).map_err(|_| invalid_assertion())?;
    let signed = assertion.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or_default();
    Ok((signed, claims, signature))
}

/// Verifies `assertion` and grants an access token for its user. `login_url`
/// is the audience this login host answers to.
pub fn grant(inner: &mut Inner, login_url: &str, assertion: &str, now_ms: i64) -> Result<Grant, OAuthError> {
    let (signed, claims, signature) = claims_of(assertion)?;
    let app = claims["iss"].as_str().and_then(|iss| inner.app_by_key(iss)).ok_or_else(OAuthError::unknown_client)?;
    let key = inner.apps[app].seed.certificate.as_deref().and_then(|pem| public_key(pem).ok()).ok_or_else(invalid_assertion)?;
    let signature = Signature::try_from(signature.as_slice()).map_err(|_| invalid_assertion())?;
    VerifyingKey::<Sha256>::new(key).verify(signed.as_bytes(), &signature).map_err(|_| invalid_assertion())?;
    // This login host is the only audience it answers to (Salesforce's
    // production host would not take a sandbox's, nor the other way).
    if !claims["aud"].as_str().is_some_and(|aud| aud.trim_end_matches('/') == login_url.trim_end_matches('/')) {
        return Err(OAuthError::new("invalid_grant", "audience is invalid"));
    }
    let exp = claims["exp"].as_i64().ok_or_else(invalid_assertion)?;
    let now = now_ms / 1000;
    if exp <= now {
        return Err(OAuthError::new("invalid_grant", "expired authorization code"));
    }
    if exp > now + MAX_LIFETIME_SECS {
        return Err(OAuthError::new("invalid_grant", "invalid assertion: the expiration is too far in the future"));
    }
    let not_approved = || OAuthError::new("invalid_grant", "user hasn't approved this consumer");
    let subject = claims["sub"].as_str().ok_or_else(not_approved)?;
    let account = inner.find_login(subject).filter(|a| a.org == inner.apps[app].org).ok_or_else(not_approved)?;
    if !inner.user_active(account.org, &account.user_id) {
        return Err(OAuthError::new("invalid_grant", "inactive user"));
    }
    let approved = match &inner.apps[app].seed.pre_authorized_users {
        // "Admin approved users are pre-authorized": the policy decides.
        Some(users) => users.iter().any(|u| u.eq_ignore_ascii_case(subject)),
        // "All users may self-authorize": only after the user approved the
        // app once in a browser (a live approval, i.e. refresh token).
        None => inner.has_approved(&account.user_id, app),
    };
    if !approved {
        return Err(not_approved());
    }
    let scopes: Vec<String> = inner.apps[app].seed.scopes.iter().filter(|s| !is_refresh_scope(s)).cloned().collect();
    Ok(inner.grant(app, account.org, &account.user_id, scopes, None, now_ms, GrantKind::Jwt))
}
