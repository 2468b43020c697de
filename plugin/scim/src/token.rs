//! OAuth2 client credentials (RFC 6749 §4.4) for SCIM services whose
//! tokens come from an authorization server apart from the SCIM API: the
//! client authenticates with HTTP Basic (§2.3.1) at the token endpoint the
//! admin named, and the token it gets is used at the SCIM base URL.

use base64::Engine as _;
use registry_guest::{Request, Transport, Url, encode_component, form_encode};
use serde_json::Value;

use crate::scim::Error;

/// What the admin configured for the grant.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    /// The authorization server's token endpoint.
    pub token_url: Option<&'a str>,
    /// The client id.
    pub client_id: &'a str,
    /// The client secret.
    pub client_secret: &'a str,
    /// Scopes to ask for, space separated.
    pub scope: Option<&'a str>,
}

/// An access token from the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token.
    pub access_token: String,
    /// Its lifetime in seconds, if the server said.
    pub expires_in: Option<u64>,
    /// The scopes granted, if the server said.
    pub scope: Option<String>,
}

/// Why no token came back, as the host decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// A server form field the admin must fix: the field, and why.
    Config(&'static str, String),
    /// Anything else, as a SCIM call's failure reads (throttled, failed,
    /// unreachable).
    Call(Error),
}

/// Exchanges the client's credentials for an access token.
pub fn client_credentials(t: &mut dyn Transport, client: &Client<'_>) -> Result<Token, TokenError> {
    let Some(token_url) = client.token_url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(TokenError::Config("token-url", "enter the Token URL: the authorization server's token endpoint, where client credentials are exchanged for a token".into()));
    };
    Url::parse(token_url).map_err(|e| TokenError::Config("token-url", format!("the Token URL is not a URL: {e}")))?;
    if client.client_id.trim().is_empty() {
        return Err(TokenError::Config("client-id", "enter the Client ID the authorization server issued for this registry".into()));
    }
    // §2.3.1: each part form-encoded before it goes into Basic.
    let basic = format!("{}:{}", encode_component(client.client_id), encode_component(client.client_secret));
    let basic = base64::engine::general_purpose::STANDARD.encode(basic);
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = client.scope.filter(|s| !s.trim().is_empty()) {
        form.push(("scope", scope));
    }
    let post = |form: &[(&str, &str)], basic: Option<&str>| {
        let mut req = Request::new("POST", token_url).header("Accept", "application/json").header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(b) = basic {
            req = req.header("Authorization", &format!("Basic {b}"));
        }
        req.body = form_encode(form).into_bytes();
        req
    };
    let sent = |t: &mut dyn Transport, req| t.send(req).map_err(|e| TokenError::Call(Error::Transport(format!("the token endpoint did not answer: {e}"))));
    let mut resp = sent(t, post(&form, Some(&basic)))?;
    // Some servers do not decode the form-encoding inside Basic (a secret
    // with `+`, `/` or `=`), or take the client only in the body (RFC 6749
    // allows both): a refused client is tried once that way.
    if matches!(resp.status, 400 | 401) && refused_client(&resp.body) {
        let mut in_body = form.clone();
        in_body.extend([("client_id", client.client_id), ("client_secret", client.client_secret)]);
        resp = sent(t, post(&in_body, None))?;
    }
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let said = |fallback: &str| -> String {
        let error = body["error"].as_str().unwrap_or_default();
        let description = body["error_description"].as_str().unwrap_or_default();
        match (error, description) {
            ("", "") => fallback.to_string(),
            (e, "") => format!("{fallback} ({e})"),
            (e, d) => format!("{fallback} ({e}: {d})"),
        }
    };
    if resp.status == 429 {
        return Err(TokenError::Call(Error::RateLimited(resp.header("Retry-After").and_then(|s| s.trim().parse::<u64>().ok()).map(|s| s * 1000))));
    }
    if resp.status >= 300 {
        // §5.2's codes, each on the field an admin fixes.
        return Err(match body["error"].as_str() {
            Some("invalid_client") => TokenError::Config("client-secret", said("the authorization server refused the Client ID and Client Secret; check both against the client registered there")),
            Some("unauthorized_client") => TokenError::Config("grant-type", said("the authorization server does not let this client use client credentials; allow the grant for the client there")),
            Some("invalid_scope") => TokenError::Config("scope", said("the authorization server refused the Scope; ask only for scopes the client may have")),
            Some("unsupported_grant_type") => TokenError::Config("grant-type", said("the authorization server does not allow client credentials for this client")),
            _ if resp.status == 401 => TokenError::Config("client-secret", said("the authorization server refused the client's credentials (401)")),
            _ if resp.status == 404 => TokenError::Config("token-url", said("the Token URL answered 404: it is not the authorization server's token endpoint")),
            code => TokenError::Call(Error::Remote {
                code: code.map_or_else(|| format!("http-{}", resp.status), str::to_string),
                message: said(&format!("the token endpoint answered {}", resp.status)),
                status: Some(resp.status),
                retryable: resp.status >= 500,
            }),
        });
    }
    let access_token = body["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
        TokenError::Call(Error::Remote {
            code: "malformed-response".into(),
            message: "the token endpoint's answer has no access_token: is the Token URL the token endpoint?".into(),
            status: Some(resp.status),
            retryable: false,
        })
    })?;
    if let Some(kind) = body["token_type"].as_str()
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Call(Error::Remote {
            code: "unsupported-token-type".into(),
            message: format!("the authorization server issued a '{kind}' token; a SCIM service takes bearer tokens"),
            status: Some(resp.status),
            retryable: false,
        }));
    }
    Ok(Token {
        access_token: access_token.to_string(),
        expires_in: body["expires_in"].as_u64().or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok())),
        scope: body["scope"].as_str().map(str::to_string),
    })
}

/// Whether a token endpoint's refusal is of the client's credentials.
fn refused_client(body: &[u8]) -> bool {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    matches!(body["error"].as_str(), Some("invalid_client") | None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_guest::fake::{Fake, reply};
    use serde_json::json;

    fn client(token_url: Option<&str>) -> Client<'_> {
        Client { token_url, client_id: "registry app", client_secret: "s3cr:t", scope: Some("scim.write") }
    }

    #[test]
    fn credentials_go_in_basic_and_the_token_comes_back() {
        let mut t = Fake::new(vec![reply(200, json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "scope": "scim.write"}))]);
        let token = client_credentials(&mut t, &client(Some("https://auth.example.com/oauth2/token"))).unwrap();
        assert_eq!(token, Token { access_token: "at-1".into(), expires_in: Some(3600), scope: Some("scim.write".into()) });
        let sent = &t.sent[0];
        assert_eq!((sent.method, sent.url.as_str()), ("POST", "https://auth.example.com/oauth2/token"));
        assert_eq!(String::from_utf8_lossy(&sent.body), "grant_type=client_credentials&scope=scim.write");
        let auth = sent.headers.iter().find(|(k, _)| k == "Authorization").map(|(_, v)| v.clone()).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(auth.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "registry%20app:s3cr%3At", "each part form-encoded first (RFC 6749 §2.3.1)");
    }

    #[test]
    fn a_client_refused_in_basic_is_tried_in_the_body() {
        let mut t = Fake::new(vec![reply(401, json!({"error": "invalid_client"})), reply(200, json!({"access_token": "at-2", "token_type": "bearer"}))]);
        assert_eq!(client_credentials(&mut t, &client(Some("https://auth.example.com/token"))).unwrap().access_token, "at-2");
        let second = &t.sent[1];
        assert!(second.headers.iter().all(|(k, _)| k != "Authorization"));
        assert_eq!(String::from_utf8_lossy(&second.body), "grant_type=client_credentials&scope=scim.write&client_id=registry%20app&client_secret=s3cr%3At");
        // Other refusals are not sent twice.
        let mut t = Fake::new(vec![reply(400, json!({"error": "invalid_scope"}))]);
        assert!(client_credentials(&mut t, &client(Some("https://auth.example.com/token"))).is_err());
        assert_eq!(t.sent.len(), 1);
    }

    #[test]
    fn refusals_name_the_field_to_fix() {
        assert!(matches!(client_credentials(&mut Fake::new(vec![]), &client(None)), Err(TokenError::Config("token-url", _))));
        let cases = [
            (400, json!({"error": "invalid_client", "error_description": "bad secret"}), "client-secret"),
            (401, json!(null), "client-secret"),
            (400, json!({"error": "invalid_scope"}), "scope"),
            (400, json!({"error": "unsupported_grant_type"}), "grant-type"),
            (400, json!({"error": "unauthorized_client"}), "grant-type"),
            (404, json!(null), "token-url"),
        ];
        for (status, body, field) in cases {
            // A refused client is asked once more with the client in the body.
            let mut t = Fake::new(vec![reply(status, body.clone()), reply(status, body.clone())]);
            match client_credentials(&mut t, &client(Some("https://auth.example.com/token"))) {
                Err(TokenError::Config(f, message)) => {
                    assert_eq!(f, field, "{body}");
                    if let Some(d) = body["error_description"].as_str() {
                        assert!(message.contains(d), "{message}");
                    }
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
        let mut t = Fake::new(vec![reply(503, json!({"error": "temporarily_unavailable"}))]);
        assert!(matches!(client_credentials(&mut t, &client(Some("https://auth.example.com/token"))), Err(TokenError::Call(Error::Remote { retryable: true, .. }))));
        let mut t = Fake::new(vec![reply(200, json!({"token_type": "Bearer"}))]);
        assert!(matches!(client_credentials(&mut t, &client(Some("https://auth.example.com/token"))), Err(TokenError::Call(Error::Remote { ref code, .. })) if code == "malformed-response"));
        let mut t = Fake::new(vec![reply(200, json!({"access_token": "x", "token_type": "mac"}))]);
        assert!(matches!(client_credentials(&mut t, &client(Some("https://auth.example.com/token"))), Err(TokenError::Call(Error::Remote { ref code, .. })) if code == "unsupported-token-type"));
    }
}
