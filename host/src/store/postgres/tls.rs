//! TLS to the database.
//!
//! tokio-postgres speaks TLS through a connector it is handed, and its
//! parser refuses the libpq parameters it does not know. This module reads
//! them out of the connection string first: `sslmode` (libpq's values) and
//! `sslrootcert` (a PEM file of the CA certificates to trust, or `system`
//! for the public web roots). The rule is simple and strict:
//!
//! - `require`, `verify-ca` and `verify-full` connect over TLS and always
//!   verify the server's certificate and name (rustls has no other mode):
//!   against `sslrootcert` when given, else the public web roots;
//! - no `sslmode`, `disable`, `allow` and `prefer` connect without TLS (a
//!   Unix socket, or a private network); an unverified TLS connection,
//!   libpq's `prefer`, is never made, and `prefer` is warned about.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;

/// A connection string made ready: tokio-postgres's settings, and the TLS
/// connector when TLS is asked for.
#[derive(Clone)]
pub struct Connection {
    /// What tokio-postgres reads (with `sslmode` set to what is meant).
    pub config: tokio_postgres::Config,
    /// The verifying connector, with `sslmode` `require` and stricter.
    pub tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("hosts", &self.config.get_hosts()).field("tls", &self.tls.is_some()).finish()
    }
}

impl Connection {
    /// Reads a connection string: key=value pairs or a `postgres://` URL.
    pub fn parse(s: &str) -> Result<Connection, StoreError> {
        let (rest, params) = take_tls_params(s)?;
        let mut config: tokio_postgres::Config = rest.parse()?;
        let mode = params.iter().find(|(k, _)| k == "sslmode").map(|(_, v)| v.as_str());
        let root = params.iter().find(|(k, _)| k == "sslrootcert").map(|(_, v)| v.as_str());
        match (mode, root) {
            // A CA given without a mode: verifying against it is what is meant.
            (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => {
                config.ssl_mode(SslMode::Require);
                Ok(Connection { config, tls: Some(connector(root)?) })
            }
            (None | Some("disable" | "allow" | "prefer"), None) => {
                if mode == Some("prefer") {
                    tracing::warn!("sslmode=prefer connects without TLS here (an unverified TLS connection is never made); give sslmode=verify-full to use TLS");
                }
                config.ssl_mode(SslMode::Disable);
                Ok(Connection { config, tls: None })
            }
            (Some(m @ ("disable" | "allow" | "prefer")), Some(_)) => {
                Err(StoreError::Connection(format!("sslrootcert is given but sslmode={m} does not verify the server: give sslmode=verify-full")))
            }
            (Some(other), _) => Err(StoreError::Connection(format!("sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"))),
        }
    }
}

/// A rustls connector trusting the CA certificates in `root` (a PEM file),
/// or the public web roots (`system`, or none given).
fn connector(root: Option<&str>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match root {
        None | Some("system") => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let bad = |why: String| StoreError::Connection(format!("sslrootcert={path}: {why}"));
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(Path::new(path)).map_err(|e| bad(e.to_string()))?.collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("the file holds no PEM certificate (BEGIN CERTIFICATE)".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(format!("a certificate cannot be used as a root: {e}")))?;
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Connection(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `s` without `sslmode` and `sslrootcert`, and their values.
fn take_tls_params(s: &str) -> Result<(String, Vec<(String, String)>), StoreError> {
    if s.contains("://") {
        let mut url = url::Url::parse(s).map_err(|e| StoreError::Connection(format!("not a postgres:// URL: {e}")))?;
        let mut taken = Vec::new();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| {
                if is_tls_param(&k) {
                    taken.push((k.into_owned(), v.into_owned()));
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        return Ok((url.to_string(), taken));
    }
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for (key, value, text) in keywords(s)? {
        if is_tls_param(&key) {
            taken.push((key, value));
        } else {
            kept.push(text);
        }
    }
    Ok((kept.join(" "), taken))
}

fn is_tls_param(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// libpq's key=value form: each (key, value, the pair's own text), with
/// single-quoted values and backslash escapes.
fn keywords(s: &str) -> Result<Vec<(String, String, String)>, StoreError> {
    let bad = |why: &str| StoreError::Connection(format!("the connection string: {why}"));
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= chars.len() {
            return Ok(out);
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_space(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(bad(&format!("`{key}` has no `=` and value")));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad(&format!("the quoted value of `{key}` is not closed"))),
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        out.push((key, value, chars[start..i].iter().collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let (rest, taken) = take_tls_params("host=db.example.org sslmode = verify-full  sslrootcert='/etc/my ca.pem' dbname=registry").unwrap();
        assert_eq!(rest, "host=db.example.org dbname=registry");
        assert_eq!(taken, vec![("sslmode".into(), "verify-full".into()), ("sslrootcert".into(), "/etc/my ca.pem".into())]);
        let (rest, taken) = take_tls_params("postgres://u:p@db.example.org:5433/registry?sslmode=require&application_name=rh").unwrap();
        assert_eq!(rest, "postgres://u:p@db.example.org:5433/registry?application_name=rh");
        assert_eq!(taken, vec![("sslmode".into(), "require".into())]);
        let (rest, _) = take_tls_params("postgres://db.example.org/registry?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://db.example.org/registry");
    }

    #[test]
    fn what_each_sslmode_means() {
        let plain = Connection::parse("host=/tmp user=postgres").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let tls = Connection::parse("host=db.example.org sslmode=verify-full").unwrap();
        assert!(tls.tls.is_some());
        assert_eq!(tls.config.get_ssl_mode(), SslMode::Require);
        let err = Connection::parse("host=db sslmode=sometimes").unwrap_err().to_string();
        assert!(err.contains("sslmode=sometimes"), "{err}");
        let err = Connection::parse("host=db sslmode=verify-full sslrootcert=/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
        let err = Connection::parse("host=db sslmode=prefer sslrootcert=/etc/ca.pem").unwrap_err().to_string();
        assert!(err.contains("sslmode=verify-full"), "{err}");
        let err = Connection::parse("host=db dbname='unclosed").unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
    }
}
