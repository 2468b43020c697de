//! Salesforce's OAuth 2.0 as a client sees it: the authorization URL, the
//! token requests (code, refresh, client credentials), response parsing with
//! signature verification, and revoke. Plain Rust over a [`Transport`],
//! tested natively. (The connection check is `connection.rs`.)

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::error::Error;
use crate::http::{Request, Response, SalesforceResponse, Transport, Url, encode_component};

/// The token set's `extra` key that says whether the last refresh rotated
/// the refresh token ("on" or "off").
pub const ROTATION: &str = "refresh_token_rotation";

/// An OAuth2 server as the admin configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Login host, optionally with `/services/oauth2`.
    pub server_url: String,
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
    /// Scopes, space separated.
    pub scope: Option<String>,
}

/// A token set (mirrors the WIT `token-set`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Bearer token.
    pub access_token: String,
    /// Refresh token, if any.
    pub refresh_token: Option<String>,
    /// Where REST calls go.
    pub instance_url: Option<String>,
    /// Issue time, ms since the epoch.
    pub issued_at: Option<u64>,
    /// Expiry, ms since the epoch (Salesforce does not say).
    pub expires_at: Option<u64>,
    /// Granted scopes.
    pub scope: Option<String>,
    /// "Bearer".
    pub token_type: String,
    /// Other fields worth keeping (`id`, `api_instance_url`).
    pub extra: Vec<(String, String)>,
}

/// What "Obtain New Token" sends the browser with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Opaque single-use value.
    pub state: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The host's callback URL.
    pub redirect_uri: String,
    /// Optional `prompt`.
    pub prompt: Option<String>,
}

/// Which token request a response answers; errors mean different things.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    Code,
    Refresh,
    ClientCredentials,
    /// The JWT bearer flow: no client secret, so no signature; `now` is
    /// when the token was asked for (the answer has no `issued_at`).
    Jwt { subject: String, now: u64 },
}

/// `https://host[:port]/services/oauth2` for a configured Server URL, which may
/// be a login host, a sandbox or My Domain host, with or without the path.
pub fn oauth_base(server_url: &str) -> Result<String, Error> {
    let field = "server_url";
    let u = Url::parse(server_url).map_err(|e| Error::config(field, e))?;
    if u.scheme != "https" && !u.is_loopback() {
        return Err(Error::config(field, format!("'{server_url}' must use https (plain http is only allowed to this machine)")));
    }
    let path = u.path_and_query.trim_end_matches('/');
    if path.contains('?') {
        return Err(Error::config(field, "the Server URL takes no query string"));
    }
    match path {
        "" | "/services/oauth2" => Ok(format!("{}/services/oauth2", u.origin())),
        _ => Err(Error::config(
            field,
            format!("'{server_url}' should be a Salesforce login host such as https://login.salesforce.com, https://test.salesforce.com or https://NAME.my.salesforce.com, optionally ending in /services/oauth2"),
        )),
    }
}

fn check_client(cfg: &ServerConfig) -> Result<(), Error> {
    if cfg.client_id.trim().is_empty() {
        return Err(Error::config("client_id", "a Client ID (the connected app's consumer key) is required"));
    }
    Ok(())
}

/// The URL to send the admin's browser to.
pub fn authorization_url(cfg: &ServerConfig, req: &AuthRequest) -> Result<String, Error> {
    let base = oauth_base(&cfg.server_url)?;
    check_client(cfg)?;
    Url::parse(&req.redirect_uri).map_err(|e| Error::config("redirect_uri", e))?;
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &cfg.client_id),
        ("redirect_uri", &req.redirect_uri),
        ("state", &req.state),
        ("code_challenge", &req.code_challenge),
        ("code_challenge_method", "S256"),
    ];
    if let Some(s) = cfg.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        params.push(("scope", s));
    }
    if let Some(p) = req.prompt.as_deref().filter(|p| !p.is_empty()) {
        params.push(("prompt", p));
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode_component(v))).collect();
    Ok(format!("{base}/authorize?{}", query.join("&")))
}

fn token_request(cfg: &ServerConfig, extra: &[(&str, &str)]) -> Result<Request, Error> {
    let base = oauth_base(&cfg.server_url)?;
    check_client(cfg)?;
    let mut form: Vec<(&str, &str)> = extra.to_vec();
    form.push(("client_id", &cfg.client_id));
    if !cfg.client_secret.is_empty() {
        form.push(("client_secret", &cfg.client_secret));
    }
    Ok(Request::new("POST", format!("{base}/token")).form(&form).header("Accept", "application/json"))
}

pub(crate) fn send(t: &mut dyn Transport, req: Request) -> Result<Response, Error> {
    let url = req.url.clone();
    t.send(req).map_err(|e| Error::Transport(format!("{url}: {e}")))
}

/// Exchanges an authorization code (decoded once by the host) for tokens.
pub fn exchange_code(t: &mut dyn Transport, cfg: &ServerConfig, code: &str, redirect_uri: &str, verifier: Option<&str>) -> Result<Tokens, Error> {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let resp = send(t, token_request(cfg, &form)?)?;
    parse_token_response(cfg, &resp, None, Grant::Code)
}

/// Refreshes; keeps the old refresh token unless Salesforce rotated it.
pub fn refresh(t: &mut dyn Transport, cfg: &ServerConfig, tokens: &Tokens) -> Result<Tokens, Error> {
    let rt = tokens
        .refresh_token
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::ReauthorizationRequired("no refresh token is stored: obtain a new token".into()))?;
    let resp = send(t, token_request(cfg, &[("grant_type", "refresh_token"), ("refresh_token", rt)])?)?;
    parse_token_response(cfg, &resp, Some(tokens), Grant::Refresh)
}

/// The client credentials grant.
pub fn client_credentials(t: &mut dyn Transport, cfg: &ServerConfig) -> Result<Tokens, Error> {
    if cfg.client_secret.is_empty() {
        return Err(Error::config("client_secret", "the client credentials grant needs the Client Secret"));
    }
    let resp = send(t, token_request(cfg, &[("grant_type", "client_credentials")])?)?;
    parse_token_response(cfg, &resp, None, Grant::ClientCredentials)
}

/// Exchanges a signed JWT assertion (see `jwt.rs`) for an access token.
/// `subject` is the username it names, for the refusals' messages.
pub fn exchange_assertion(t: &mut dyn Transport, cfg: &ServerConfig, assertion: &str, subject: &str, now_ms: u64) -> Result<Tokens, Error> {
    let base = oauth_base(&cfg.server_url)?;
    let form = [("grant_type", crate::jwt::GRANT_TYPE), ("assertion", assertion)];
    let req = Request::new("POST", format!("{base}/token")).form(&form).header("Accept", "application/json");
    let resp = send(t, req)?;
    parse_token_response(cfg, &resp, None, Grant::Jwt { subject: subject.to_string(), now: now_ms })
}

/// Revokes the refresh token (which kills its access tokens) or, without
/// one, the access token. A token Salesforce no longer knows counts as revoked.
pub fn revoke(t: &mut dyn Transport, cfg: &ServerConfig, tokens: &Tokens) -> Result<(), Error> {
    let base = oauth_base(&cfg.server_url)?;
    let token = tokens.refresh_token.as_deref().filter(|r| !r.is_empty()).unwrap_or(&tokens.access_token);
    let resp = send(t, Request::new("POST", format!("{base}/revoke")).form(&[("token", token)]))?;
    match resp.status {
        200..=299 => Ok(()),
        400 if oauth_error(&resp).is_some_and(|(e, _)| e == "invalid_token") => Ok(()),
        _ => Err(token_error(&resp, &Grant::Code)),
    }
}

/// Maps a REST error response (`[{"message","errorCode"}]`) onto [`Error`].
pub fn rest_error(resp: &Response) -> Error {
    let first: Option<(String, String)> = serde_json::from_slice::<Value>(&resp.body).ok().and_then(|v| {
        let e = v.as_array()?.first()?.clone();
        Some((e["errorCode"].as_str()?.to_string(), e["message"].as_str().unwrap_or("").to_string()))
    });
    let (code, message) = first.unwrap_or_else(|| (format!("HTTP_{}", resp.status), short(&resp.text())));
    match (resp.status, code.as_str()) {
        (401, _) | (_, "INVALID_SESSION_ID") => Error::Unauthorized(message),
        // The daily allowance is used up (not a burst): no retry within
        // minutes can succeed.
        (_, "REQUEST_LIMIT_EXCEEDED") if message.contains("TotalRequests") || resp.api_usage().is_some_and(|(used, limit)| used >= limit) => {
            Error::QuotaExhausted(resp.api_usage())
        }
        (_, "REQUEST_LIMIT_EXCEEDED") | (429, _) => Error::RateLimited(None),
        (_, "UNABLE_TO_LOCK_ROW") => Error::Remote { code, message, status: Some(resp.status), retryable: true },
        (s, _) => Error::Remote { code, message, status: Some(s), retryable: s >= 500 },
    }
}

/// At most 500 characters of provider text, trimmed, for messages admins read.
pub(crate) fn short(text: &str) -> String {
    text.trim().chars().take(500).collect()
}

fn oauth_error(resp: &Response) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    Some((v["error"].as_str()?.to_string(), v["error_description"].as_str().unwrap_or("").to_string()))
}

fn token_error(resp: &Response, grant: &Grant) -> Error {
    let Some((error, description)) = oauth_error(resp) else {
        return match resp.status {
            429 => Error::RateLimited(None),
            s => Error::Remote { code: format!("HTTP_{s}"), message: short(&resp.text()), status: Some(s), retryable: s >= 500 },
        };
    };
    if let (Grant::Jwt { subject, .. }, "invalid_grant") = (grant, error.as_str()) {
        return jwt_refusal(subject, &description);
    }
    match error.as_str() {
        "invalid_grant" if *grant == Grant::Refresh => Error::ReauthorizationRequired(format!("Salesforce refused the refresh token ({description}): obtain a new token")),
        "invalid_client_id" => Error::config("client_id", format!("Salesforce does not know this Client ID ({description}); copy the connected app's consumer key")),
        "invalid_client" => Error::config("client_secret", format!("Salesforce refused the client credentials ({description}); check the Client Secret")),
        "redirect_uri_mismatch" => Error::config(
            "redirect_uri",
            format!("the Redirect URI is not a callback URL of the connected app ({description}); add it there exactly as shown"),
        ),
        "unsupported_grant_type" => Error::config("grant_type", format!("the connected app does not allow this grant ({description})")),
        _ => Error::Remote { code: error, message: description, status: Some(resp.status), retryable: resp.status >= 500 },
    }
}

/// What Salesforce's refusals of an assertion mean, and where to fix them.
fn jwt_refusal(subject: &str, description: &str) -> Error {
    let said = format!("Salesforce said \"{description}\"");
    match description {
        "audience is invalid" => Error::config(
            "server_url",
            format!("{said}: the assertion's audience is the login URL, which must be where the org's users log in (Production, Sandbox or its My Domain)"),
        ),
        "user hasn't approved this consumer" => Error::config(
            "subject",
            format!("{said}: {subject} may not use the app. In Setup, External Client App Manager, the app, Policies: set Permitted Users to \"Admin approved users are pre-authorized\" and assign {subject} a permission set the app lists (or check the username)"),
        ),
        "expired authorization code" => Error::Remote {
            code: "invalid_grant".into(),
            message: format!("{said}: the assertion had expired on arrival; check this machine's clock (it must be within a minute of the real time)"),
            status: Some(400),
            retryable: false,
        },
        d if d.starts_with("invalid assertion") => Error::config(
            "certificate",
            format!("{said}: the assertion's signature does not match the app's certificate. Download this server's certificate and upload it under the app's OAuth Settings, \"Use digital signatures\""),
        ),
        // "inactive user" and the like: the user, not the key.
        _ => Error::config("subject", format!("{said}: check the user {subject} in Salesforce (active, allowed to use the app)")),
    }
}

/// Whether `signature` is base64(HMAC-SHA256(secret, id + issued_at)),
/// compared in constant time.
pub fn signature_valid(secret: &str, id: &str, issued_at: &str, signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn parse_token_response(cfg: &ServerConfig, resp: &Response, previous: Option<&Tokens>, grant: Grant) -> Result<Tokens, Error> {
    if resp.status != 200 {
        return Err(token_error(resp, &grant));
    }
    let bad = |what: &str| Error::Remote { code: "malformed_token_response".into(), message: what.to_string(), status: Some(200), retryable: false };
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| bad(&format!("the token response is not JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let access_token = s("access_token").filter(|a| !a.is_empty()).ok_or_else(|| bad("the token response has no access_token"))?;
    let instance_url = s("instance_url").ok_or_else(|| bad("the token response has no instance_url"))?;
    let instance = Url::parse(&instance_url).map_err(|e| bad(&format!("instance_url: {e}")))?;
    if instance.scheme != "https" && !instance.is_loopback() {
        return Err(bad(&format!("instance_url {instance_url} is not https")));
    }
    let id = s("id").ok_or_else(|| bad("the token response has no id"))?;
    let issued_at = match &grant {
        // No client secret signs a JWT bearer answer, and it has no issued_at.
        Grant::Jwt { now, .. } => s("issued_at").unwrap_or_else(|| now.to_string()),
        _ => s("issued_at").ok_or_else(|| bad("the token response has no issued_at"))?,
    };
    let signature = match &grant {
        Grant::Jwt { .. } => None,
        _ => Some(s("signature").ok_or_else(|| bad("the token response has no signature"))?),
    };
    if let Some(signature) = signature
        && !signature_valid(&cfg.client_secret, &id, &issued_at, &signature)
    {
        return Err(Error::Remote {
            code: "invalid_signature".into(),
            message: "the token response's signature does not match the Client Secret: the secret is wrong or the response was altered".into(),
            status: Some(200),
            retryable: false,
        });
    }
    let refresh_token = s("refresh_token").or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let mut extra = vec![("id".to_string(), id)];
    if let Some(api) = s("api_instance_url") {
        extra.push(("api_instance_url".into(), api));
    }
    // Whether the app rotates refresh tokens shows only on a refresh; kept
    // for the connection check to report.
    if previous.is_some() {
        extra.push((ROTATION.into(), if s("refresh_token").is_some() { "on" } else { "off" }.into()));
    }
    Ok(Tokens {
        access_token,
        refresh_token,
        instance_url: Some(instance_url.trim_end_matches('/').to_string()),
        issued_at: Some(issued_at.parse().map_err(|_| bad("issued_at is not a number of milliseconds"))?),
        expires_at: None,
        scope: s("scope"),
        token_type: s("token_type").unwrap_or_else(|| "Bearer".into()),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::{Fake, reply};
    use serde_json::json;

    fn cfg() -> ServerConfig {
        ServerConfig { server_url: "https://login.salesforce.com".into(), client_id: "3MVG9key".into(), client_secret: "s3cret".into(), scope: Some("api refresh_token".into()) }
    }

    fn signed(extra: Value) -> Value {
        let id = "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA";
        let issued_at = "1795000000123";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{id}{issued_at}").as_bytes());
        let mut v = json!({
            "access_token": "00D!at", "signature": base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
            "scope": "api refresh_token", "instance_url": "https://na1.salesforce.com", "id": id,
            "token_type": "Bearer", "issued_at": issued_at,
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    #[test]
    fn server_urls_of_every_shape() {
        for (given, base) in [
            ("https://login.salesforce.com", "https://login.salesforce.com/services/oauth2"),
            ("https://test.salesforce.com/services/oauth2/", "https://test.salesforce.com/services/oauth2"),
            ("https://acme.my.salesforce.com/", "https://acme.my.salesforce.com/services/oauth2"),
            ("http://127.0.0.1:4000", "http://127.0.0.1:4000/services/oauth2"),
        ] {
            assert_eq!(oauth_base(given).unwrap(), base, "{given}");
        }
        for bad in ["http://login.salesforce.com", "https://login.salesforce.com/other", "login.salesforce.com", "https://x.com/services/oauth2?a=b"] {
            assert!(matches!(oauth_base(bad), Err(Error::InvalidConfig(f)) if f.field == "server_url"), "{bad}");
        }
    }

    #[test]
    fn authorization_url_carries_pkce_state_and_scope() {
        let req = AuthRequest { state: "st/1".into(), code_challenge: "ch".into(), redirect_uri: "https://reg.example.org/oauth2/callback/1".into(), prompt: Some("login".into()) };
        let url = authorization_url(&cfg(), &req).unwrap();
        assert_eq!(
            url,
            "https://login.salesforce.com/services/oauth2/authorize?response_type=code&client_id=3MVG9key&redirect_uri=https%3A%2F%2Freg.example.org%2Foauth2%2Fcallback%2F1&state=st%2F1&code_challenge=ch&code_challenge_method=S256&scope=api%20refresh_token&prompt=login"
        );
        let mut c = cfg();
        c.client_id = " ".into();
        assert!(matches!(authorization_url(&c, &req), Err(Error::InvalidConfig(f)) if f.field == "client_id"));
    }

    #[test]
    fn code_exchange_verifies_the_signature_and_keeps_the_id() {
        let mut t = Fake { sent: vec![], replies: vec![reply(200, signed(json!({"refresh_token": "5Aep"})))] };
        let tokens = exchange_code(&mut t, &cfg(), "aPrx+/==", "https://reg/cb", Some("ver")).unwrap();
        assert_eq!(tokens.access_token, "00D!at");
        assert_eq!(tokens.refresh_token.as_deref(), Some("5Aep"));
        assert_eq!(tokens.instance_url.as_deref(), Some("https://na1.salesforce.com"));
        assert_eq!(tokens.issued_at, Some(1_795_000_000_123));
        assert_eq!(tokens.extra[0].0, "id");
        let sent = &t.sent[0];
        assert_eq!(sent.url, "https://login.salesforce.com/services/oauth2/token");
        let body = String::from_utf8(sent.body.clone()).unwrap();
        assert_eq!(body, "grant_type=authorization_code&code=aPrx%2B%2F%3D%3D&redirect_uri=https%3A%2F%2Freg%2Fcb&code_verifier=ver&client_id=3MVG9key&client_secret=s3cret");

        // The signature covers id + issued_at: an altered id, or one signed
        // with another secret, is refused.
        let mut altered = signed(json!({}));
        altered["id"] = json!("https://login.salesforce.com/id/00D/005X");
        let mut other_secret = cfg();
        other_secret.client_secret = "not-the-secret".into();
        for (body, c) in [(altered, cfg()), (signed(json!({})), other_secret)] {
            let mut t = Fake { sent: vec![], replies: vec![reply(200, body)] };
            assert!(matches!(exchange_code(&mut t, &c, "c", "https://reg/cb", None), Err(Error::Remote { code, .. }) if code == "invalid_signature"));
        }
    }

    #[test]
    fn refresh_keeps_or_replaces_the_refresh_token_and_dead_tokens_need_reauthorization() {
        let old = Tokens { access_token: "old".into(), refresh_token: Some("5Aep-old".into()), ..Default::default() };
        let mut t = Fake { sent: vec![], replies: vec![reply(200, signed(json!({}))), reply(200, signed(json!({"refresh_token": "5Aep-new"})))] };
        assert_eq!(refresh(&mut t, &cfg(), &old).unwrap().refresh_token.as_deref(), Some("5Aep-old"));
        assert_eq!(refresh(&mut t, &cfg(), &old).unwrap().refresh_token.as_deref(), Some("5Aep-new"));
        let mut t = Fake { sent: vec![], replies: vec![reply(400, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}))] };
        assert!(matches!(refresh(&mut t, &cfg(), &old), Err(Error::ReauthorizationRequired(m)) if m.contains("expired access/refresh token")));
        let none = Tokens { access_token: "a".into(), ..Default::default() };
        assert!(matches!(refresh(&mut t, &cfg(), &none), Err(Error::ReauthorizationRequired(_))));
    }

    #[test]
    fn token_errors_name_the_field_to_fix() {
        for (error, field) in [("invalid_client", "client_secret"), ("invalid_client_id", "client_id"), ("redirect_uri_mismatch", "redirect_uri")] {
            let mut t = Fake { sent: vec![], replies: vec![reply(400, json!({"error": error, "error_description": "x"}))] };
            assert!(matches!(exchange_code(&mut t, &cfg(), "c", "https://r/cb", None), Err(Error::InvalidConfig(f)) if f.field == field), "{error}");
        }
        let mut t = Fake { sent: vec![], replies: vec![] };
        assert!(matches!(client_credentials(&mut t, &cfg()), Err(Error::Transport(m)) if m.contains("connection refused")));
        let mut t = Fake { sent: vec![], replies: vec![reply(503, json!("down"))] };
        assert!(matches!(client_credentials(&mut t, &cfg()), Err(Error::Remote { retryable: true, .. })));
    }

    #[test]
    fn revoke_prefers_the_refresh_token_and_treats_unknown_tokens_as_revoked() {
        let tokens = Tokens { access_token: "at".into(), refresh_token: Some("rt".into()), ..Default::default() };
        let mut t = Fake { sent: vec![], replies: vec![reply(400, json!({"error": "invalid_token", "error_description": "invalid token"}))] };
        revoke(&mut t, &cfg(), &tokens).unwrap();
        assert_eq!(t.sent[0].body, b"token=rt");
    }

}
