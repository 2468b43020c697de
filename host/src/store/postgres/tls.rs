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
        // As libpq: the last value of a repeated key counts.
        let mode = params.iter().rev().find(|(k, _)| k == "sslmode").map(|(_, v)| v.as_str());
        let root = params.iter().rev().find(|(k, _)| k == "sslrootcert").map(|(_, v)| v.as_str());
        match (mode, root) {
            // A CA given without a mode: verifying against it is what is meant.
            (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => {
                if config.get_hosts().iter().any(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_))) {
                    return Err(StoreError::Connection("TLS is for a server reached by host name: a Unix socket (a host that is a directory) takes no sslmode".into()));
                }
                if config.get_ssl_negotiation() == tokio_postgres::config::SslNegotiation::Direct {
                    return Err(StoreError::Connection("sslnegotiation=direct is not supported: leave it out (TLS is negotiated the usual way)".into()));
                }
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

/// One connection outside any pool (a tool's, e.g. the bench's own),
/// with TLS as the string asks; its driver runs on the runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let c = Connection::parse(url)?;
    let client = match c.tls {
        Some(tls) => {
            let (client, driver) = c.config.connect(tls).await?;
            tokio::spawn(driver);
            client
        }
        None => {
            let (client, driver) = c.config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(driver);
            client
        }
    };
    Ok(client)
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

/// `s` without `sslmode` and `sslrootcert`, and their values; `s`
/// itself, byte for byte, when it has neither.
fn take_tls_params(s: &str) -> Result<(String, Vec<(String, String)>), StoreError> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        // Only the query's own text is touched (a URL library would
        // re-encode the rest, and refuses tokio-postgres's host lists).
        let (head, fragment) = match s.split_once('#') {
            Some((h, f)) => (h, Some(f)),
            None => (s, None),
        };
        let Some((base, query)) = head.split_once('?') else { return Ok((s.to_string(), Vec::new())) };
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |t: &str| percent_encoding::percent_decode_str(t).decode_utf8_lossy().into_owned();
            if is_tls_param(&decode(k)) {
                taken.push((decode(k), decode(v)));
            } else {
                kept.push(pair);
            }
        }
        if taken.is_empty() {
            return Ok((s.to_string(), taken));
        }
        let mut rest = base.to_string();
        if !kept.is_empty() {
            rest = format!("{rest}?{}", kept.join("&"));
        }
        if let Some(f) = fragment {
            rest = format!("{rest}#{f}");
        }
        return Ok((rest, taken));
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
    if taken.is_empty() {
        return Ok((s.to_string(), taken));
    }
    Ok((kept.join(" "), taken))
}

fn is_tls_param(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// libpq's key=value form: each (key, value, the pair's own text), with
/// single-quoted values and backslash escapes.
fn keywords(s: &str) -> Result<Vec<(String, String, String)>, StoreError> {
    let bad = |why: &str| StoreError::Connection(why.to_string());
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
            // The position, not the text: it may be part of a password.
            return Err(bad(&format!("a word at character {} has no `=` and value (quote a value that holds spaces: key='a b')", start + 1)));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad(&format!("the quoted value starting at character {} is not closed", start + 1))),
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
        // Untouched when there is nothing to take: encoding and host lists.
        for url in ["postgres://h1:5432,h2:5433/db?options=-c%20search_path%3Dx", "host=/tmp user=postgres"] {
            assert_eq!(take_tls_params(url).unwrap(), (url.to_string(), vec![]));
        }
        let (rest, taken) = take_tls_params("postgresql://h1,h2/db?options=-c%20x&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!((rest.as_str(), taken), ("postgresql://h1,h2/db?options=-c%20x", vec![("sslrootcert".to_string(), "/etc/ca.pem".to_string())]));
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
        // The last of a repeated key counts, as in libpq.
        assert!(Connection::parse("host=db sslmode=disable sslmode=verify-full").unwrap().tls.is_some());
        assert!(Connection::parse("host=db sslmode=verify-full sslmode=disable").unwrap().tls.is_none());
        // An error never repeats the string's words (a password's, say).
        let err = Connection::parse("host=db password=pa ss").unwrap_err().to_string();
        assert!(!err.contains("ss"), "{err}");
        assert!(err.contains("character 21"), "{err}");
        let err = Connection::parse("host=/run/postgresql sslmode=verify-full").unwrap_err().to_string();
        assert!(err.contains("Unix socket"), "{err}");
    }
}
