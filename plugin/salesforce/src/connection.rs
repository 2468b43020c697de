//! Test Connection: who the tokens act as (userinfo), the org's daily API
//! usage (limits) and API versions, and what the admin should fix, each
//! with the exact setting to change. Plain Rust over a [`Transport`].

use serde_json::Value;

use crate::error::Error;
use crate::http::{Request, Transport};
use crate::oauth::{ROTATION, ServerConfig, Tokens, oauth_base, rest_error, send, short};

/// API version used for the connection check's `limits` call, and the
/// lowest the plugin's default settings need.
pub const CHECK_API_VERSION: &str = "62.0";

/// Below this share of the daily API requests left, the check warns.
const LOW_API_SHARE: f64 = 0.10;

/// Who the tokens act as and the API usage (mirrors WIT `connection-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Username.
    pub user: Option<String>,
    /// Org id.
    pub organization: Option<String>,
    /// (used, limit) of daily API requests.
    pub api_usage: Option<(u64, u64)>,
    /// Label/value pairs.
    pub details: Vec<(String, String)>,
    /// Problems and their fixes.
    pub advice: Vec<Advice>,
}

/// One problem and the setting that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// What is wrong, and what it causes.
    pub problem: String,
    /// What to change, and where.
    pub fix: String,
}

fn advice(problem: impl Into<String>, fix: impl Into<String>) -> Advice {
    Advice { problem: problem.into(), fix: fix.into() }
}

/// Checks the tokens: userinfo, then the instance's limits and API
/// versions; `refreshable` says the server uses the authorization code
/// grant (which needs a refresh token to keep working).
pub fn check_connection(t: &mut dyn Transport, cfg: &ServerConfig, tokens: &Tokens, refreshable: bool) -> Result<ConnectionInfo, Error> {
    let base = oauth_base(&cfg.server_url)?;
    let resp = send(t, Request::new("GET", format!("{base}/userinfo")).bearer(&tokens.access_token).header("Accept", "application/json"))?;
    if resp.status == 401 || resp.status == 403 {
        return Err(Error::Unauthorized(format!("userinfo refused the access token: {}", short(&resp.text()))));
    }
    if resp.status != 200 {
        return Err(Error::Remote { code: "userinfo_failed".into(), message: short(&resp.text()), status: Some(resp.status), retryable: resp.status >= 500 });
    }
    let info: Value = serde_json::from_slice(&resp.body).map_err(|e| Error::Transport(format!("userinfo: not JSON: {e}")))?;
    let s = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
    let mut details = Vec::new();
    for (label, key) in [("Name", "name"), ("Email", "email"), ("User ID", "user_id"), ("Organization ID", "organization_id")] {
        if let Some(v) = s(key) {
            details.push((label.to_string(), v));
        }
    }
    let mut usage = None;
    let mut latest_version = None;
    if let Some(instance) = tokens.instance_url.as_deref() {
        let instance = instance.trim_end_matches('/');
        details.push(("Instance URL".into(), instance.to_string()));
        let get = |path: String| Request::new("GET", format!("{instance}{path}")).bearer(&tokens.access_token).header("Accept", "application/json");
        // The versions first: an org older than the version the plugin uses
        // would answer `limits` there with 404, and the check would end in
        // an error instead of saying which version to set.
        let resp = send(t, get("/services/data/".into()))?;
        if resp.status == 200
            && let Ok(Value::Array(versions)) = serde_json::from_slice::<Value>(&resp.body)
        {
            latest_version = versions.iter().filter_map(|v| v["version"].as_str().and_then(|s| s.parse::<f64>().ok())).reduce(f64::max);
        }
        let needed: f64 = CHECK_API_VERSION.parse().unwrap_or(0.0);
        let version = match latest_version {
            Some(latest) if latest < needed => format!("{latest:.1}"),
            _ => CHECK_API_VERSION.to_string(),
        };
        let resp = send(t, get(format!("/services/data/v{version}/limits")))?;
        match resp.status {
            200 => {
                let v: Value = serde_json::from_slice(&resp.body).map_err(|e| Error::Transport(format!("limits: not JSON: {e}")))?;
                let d = &v["DailyApiRequests"];
                if let (Some(max), Some(remaining)) = (d["Max"].as_u64(), d["Remaining"].as_u64()) {
                    usage = Some((max.saturating_sub(remaining), max));
                }
            }
            401 => return Err(Error::Unauthorized("the instance refused the access token".into())),
            _ => return Err(rest_error(&resp)),
        }
    }
    if let Some(latest) = latest_version {
        details.push(("Latest API version".into(), format!("v{latest:.1}")));
    }
    let rotation = tokens.extra.iter().find(|(k, _)| k == ROTATION).map(|(_, v)| v.as_str());
    if refreshable {
        details.push((
            "Refresh token rotation".into(),
            match rotation {
                Some("on") => "on: each refresh returns a new refresh token (kept each time)".into(),
                Some(_) => "off".into(),
                None => "not seen yet: shown after the first refresh".into(),
            },
        ));
    }
    let advice = advise(tokens, usage, latest_version, refreshable);
    Ok(ConnectionInfo { user: s("preferred_username"), organization: s("organization_id"), api_usage: usage, details, advice })
}

/// What the admin should fix, from what the check saw.
fn advise(tokens: &Tokens, usage: Option<(u64, u64)>, latest_version: Option<f64>, refreshable: bool) -> Vec<Advice> {
    let mut out = Vec::new();
    let scopes: Vec<&str> = tokens.scope.as_deref().unwrap_or("").split_whitespace().collect();
    let has = |s: &str| scopes.contains(&s) || scopes.contains(&"full");
    if tokens.scope.is_some() && !has("api") {
        out.push(advice(
            "The token lacks the api scope, so Salesforce refuses every provisioning call.",
            "In the External Client App's OAuth Settings (or the Connected App's), add \"Manage user data via APIs (api)\" to the selected OAuth scopes; put \"api refresh_token\" in this server's Scope; then Obtain New Token.",
        ));
    }
    if refreshable && tokens.refresh_token.as_deref().is_none_or(str::is_empty) {
        out.push(advice(
            "The token came without a refresh token, so provisioning stops when the session ends (2 hours by default) and waits for an admin.",
            "Add \"Perform requests at any time (refresh_token, offline_access)\" to the app's selected OAuth scopes and \"refresh_token\" to this server's Scope; in the app's Policies, set the Refresh Token Policy to \"Refresh token is valid until revoked\"; then Obtain New Token.",
        ));
    }
    if let Some((used, limit)) = usage
        && limit > 0
        && ((limit.saturating_sub(used)) as f64) < (limit as f64) * LOW_API_SHARE
    {
        out.push(advice(
            format!("Only {} of the org's {limit} daily API requests are left; provisioning pauses when none are.", limit.saturating_sub(used)),
            "Wait for the rolling 24 hours to free calls, lower the share this registry may use (the target's API budget), or raise the org's limit (more licences or an API add-on; Setup, Company Information shows API Requests, Last 24 Hours).",
        ));
    }
    let needed: f64 = CHECK_API_VERSION.parse().unwrap_or(0.0);
    if let Some(latest) = latest_version
        && latest < needed
    {
        out.push(advice(
            format!("The org serves REST API versions up to v{latest:.1}, older than the v{CHECK_API_VERSION} this plugin uses by default."),
            format!("Set each target's API version setting to {latest:.1} or lower."),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;
    use crate::http::fake::{Fake, reply};
    use serde_json::json;

    fn cfg() -> ServerConfig {
        ServerConfig { server_url: "https://login.salesforce.com".into(), client_id: "3MVG9key".into(), client_secret: "s3cret".into(), scope: Some("api refresh_token".into()) }
    }

    fn org(remaining: u64, latest: &str) -> Vec<Response> {
        vec![
            reply(200, json!({"preferred_username": "ada@example.com", "organization_id": "00D1", "name": "Ada", "user_id": "0051"})),
            reply(200, json!([{"version": "31.0"}, {"version": latest}])),
            reply(200, json!({"DailyApiRequests": {"Max": 15000, "Remaining": remaining}})),
        ]
    }

    #[test]
    fn a_healthy_connection_reads_userinfo_limits_and_versions_and_advises_nothing() {
        let tokens = Tokens {
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            instance_url: Some("https://na1.salesforce.com".into()),
            scope: Some("refresh_token api".into()),
            extra: vec![(ROTATION.into(), "on".into())],
            ..Default::default()
        };
        let mut t = Fake { sent: vec![], replies: org(14990, "66.0") };
        let info = check_connection(&mut t, &cfg(), &tokens, true).unwrap();
        assert_eq!(info.user.as_deref(), Some("ada@example.com"));
        assert_eq!(info.api_usage, Some((10, 15000)));
        assert_eq!(t.sent[1].url, "https://na1.salesforce.com/services/data/");
        assert_eq!(t.sent[2].url, "https://na1.salesforce.com/services/data/v62.0/limits");
        assert!(info.details.contains(&("Latest API version".into(), "v66.0".into())), "{:?}", info.details);
        assert!(info.details.iter().any(|(k, v)| k == "Refresh token rotation" && v.starts_with("on")));
        assert_eq!(info.advice, vec![]);
        let mut t = Fake { sent: vec![], replies: vec![Response { status: 403, headers: vec![], body: b"Bad_OAuth_Token".to_vec() }] };
        assert!(matches!(check_connection(&mut t, &cfg(), &tokens, true), Err(Error::Unauthorized(_))));
    }

    /// Each problem names the exact setting that fixes it.
    #[test]
    fn each_problem_comes_with_its_fix() {
        let tokens = Tokens { access_token: "at".into(), instance_url: Some("https://na1.salesforce.com".into()), scope: Some("id web".into()), ..Default::default() };
        let mut t = Fake { sent: vec![], replies: org(900, "58.0") };
        let info = check_connection(&mut t, &cfg(), &tokens, true).unwrap();
        assert_eq!(t.sent[2].url, "https://na1.salesforce.com/services/data/v58.0/limits", "an older org is asked at its own version");
        let problems: Vec<&str> = info.advice.iter().map(|a| a.problem.as_str()).collect();
        assert_eq!(info.advice.len(), 4, "{problems:?}");
        assert!(info.advice[0].problem.contains("lacks the api scope") && info.advice[0].fix.contains("Manage user data via APIs (api)"));
        assert!(info.advice[1].problem.contains("without a refresh token") && info.advice[1].fix.contains("refresh_token, offline_access"));
        assert!(info.advice[2].problem.starts_with("Only 900 of the org's 15000 daily API requests are left"));
        assert!(info.advice[3].fix.contains("API version setting to 58.0"));
        assert!(info.details.iter().any(|(k, v)| k == "Refresh token rotation" && v.starts_with("not seen yet")));

        // Client credentials need no refresh token; "full" covers api.
        let tokens = Tokens { scope: Some("full".into()), ..tokens };
        let mut t = Fake { sent: vec![], replies: org(14000, "66.0") };
        let info = check_connection(&mut t, &cfg(), &tokens, false).unwrap();
        assert_eq!(info.advice, vec![]);
        assert!(!info.details.iter().any(|(k, _)| k == "Refresh token rotation"));
    }
}
