//! JWT bearer signing keys: an RSA key pair per OAuth2 server and a
//! self-signed X.509 certificate for the admin to upload to the provider's
//! app. RustCrypto's `rsa` makes the key and signs the certificate that
//! `x509-cert`'s builder assembles: pure Rust, with the same RSA the plugin
//! signs its assertions with.

use std::str::FromStr;
use std::time::Duration;

use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::{Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// RSA key size: what Salesforce and most providers take for JWT bearer.
pub const KEY_BITS: usize = 2048;

/// How long a certificate is valid: two years, a common choice for an
/// integration's signing certificate (rotation is a page away).
pub const VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// A freshly made key pair and certificate.
pub struct Generated {
    /// The private key, PKCS#8 PEM (to be sealed at once).
    pub private_key_pem: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// SHA-256 of the certificate's DER, colon-separated upper-case hex (as
    /// providers' consoles show it).
    pub fingerprint: String,
    /// Expiry, ms since the epoch.
    pub not_after_ms: i64,
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the signing key could not be made: {0}")]
pub struct CertError(String);

fn err(e: impl std::fmt::Display) -> CertError {
    CertError(e.to_string())
}

/// Makes a key pair and a self-signed certificate whose subject names the
/// registry and `label` (e.g. the server's name), valid for [`VALIDITY`].
/// CPU-heavy (a second or so): run it off the async threads.
pub fn generate(label: &str) -> Result<Generated, CertError> {
    let mut rng = rsa::rand_core::OsRng;
    let private = RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(err)?;
    // A subject of plain words: commas and the like would be RDN syntax.
    let cn: String = label.chars().filter(|c| c.is_ascii_alphanumeric() || " -_.".contains(*c)).take(48).collect();
    let subject = Name::from_str(&format!("CN=Identity registry {},O=Identity registry", cn.trim())).map_err(err)?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(err)?;
    serial[0] &= 0x7f; // positive, as RFC 5280 wants
    let serial = SerialNumber::new(&serial).map_err(err)?;
    let validity = Validity::from_now(VALIDITY).map_err(err)?;
    let spki = SubjectPublicKeyInfoOwned::from_key(private.to_public_key()).map_err(err)?;
    let signer = SigningKey::<Sha256>::new(private.clone());
    let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer).map_err(err)?;
    let cert = builder.build::<rsa::pkcs1v15::Signature>().map_err(err)?;
    let der = cert.to_der().map_err(err)?;
    let not_after_ms = cert.tbs_certificate.validity.not_after.to_unix_duration().as_millis() as i64;
    Ok(Generated {
        private_key_pem: private.to_pkcs8_pem(LineEnding::LF).map_err(err)?.to_string(),
        certificate_pem: cert.to_pem(LineEnding::LF).map_err(err)?,
        fingerprint: fingerprint(&der),
        not_after_ms,
    })
}

/// SHA-256 of `der`, as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::signature::{Signer, Verifier};
    use x509_cert::Certificate;
    use x509_cert::der::DecodePem;

    #[test]
    fn the_certificate_carries_the_public_half_of_the_sealed_key() {
        let g = generate("Salesforce, prod").unwrap();
        let cert = Certificate::from_pem(g.certificate_pem.as_bytes()).unwrap();
        assert_eq!(fingerprint(&cert.to_der().unwrap()), g.fingerprint);
        assert_eq!(g.fingerprint.len(), 32 * 3 - 1);
        let subject = cert.tbs_certificate.subject.to_string();
        assert!(subject.contains("Identity registry Salesforce prod"), "{subject}");
        let days = (g.not_after_ms - crate::store::now_ms()) / 86_400_000;
        assert!((729..=731).contains(&days), "{days} days");
        // What the key signs, the certificate's key verifies.
        let private = RsaPrivateKey::from_pkcs8_pem(&g.private_key_pem).unwrap();
        let public = rsa::RsaPublicKey::from_public_key_der(&cert.tbs_certificate.subject_public_key_info.to_der().unwrap()).unwrap();
        let sig: Signature = SigningKey::<Sha256>::new(private).sign(b"assertion");
        VerifyingKey::<Sha256>::new(public).verify(b"assertion", &sig).unwrap();
        assert_ne!(generate("x").unwrap().fingerprint, g.fingerprint, "a new key each time");
    }
}
