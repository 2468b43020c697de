//! SCIM 2.0 over HTTP (RFC 7644): requests with the bearer token, `filter`
//! searches, the service's configuration, and its error answers as the
//! contract's errors.

use registry_guest::{Request, Response, Transport, encode_component};
use serde_json::Value;

/// The SCIM media type.
pub const MEDIA_TYPE: &str = "application/scim+json";

/// Why a SCIM call failed, as the host decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 401: the token was refused.
    Unauthorized(String),
    /// 429: retry after this many ms, if the service said.
    RateLimited(Option<u64>),
    /// The person cannot be a User as they are: the field, and why.
    InvalidPerson(String, String),
    /// Any other refusal: `scimType` (or the status) and the detail.
    Remote {
        /// `scimType` (`uniqueness`, `invalidValue`, `mutability`...) or
        /// `http-<status>`.
        code: String,
        /// The service's `detail`.
        message: String,
        /// The HTTP status.
        status: Option<u16>,
        /// Whether trying again may help (5xx).
        retryable: bool,
    },
    /// No usable answer.
    Transport(String),
}

/// A SCIM service: its base URL (`.../scim/v2`, no trailing slash) and the
/// token every request carries.
pub struct Service<'t> {
    transport: &'t mut dyn Transport,
    base: String,
    token: String,
}

impl<'t> Service<'t> {
    /// The service at `base` with `token`.
    pub fn new(transport: &'t mut dyn Transport, base: &str, token: &str) -> Self {
        Service { transport, base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    /// Sends `method` to `path` (relative to the base) with a JSON body.
    pub fn send(&mut self, method: &'static str, path: &str, body: Option<&Value>) -> Result<Response, Error> {
        let mut req = Request::new(method, format!("{}{path}", self.base)).bearer(&self.token).header("Accept", MEDIA_TYPE);
        if let Some(b) = body {
            req.body = serde_json::to_vec(b).expect("a JSON value always serialises");
            req = req.header("Content-Type", MEDIA_TYPE);
        }
        self.transport.send(req).map_err(|e| Error::Transport(format!("the SCIM service did not answer: {e}")))
    }

    /// `send`, with any status from 300 on as its [`Error`]; the body as JSON
    /// (null when empty).
    pub fn call(&mut self, method: &'static str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let resp = self.send(method, path, body)?;
        if resp.status >= 300 {
            return Err(error(&resp));
        }
        Ok(if resp.body.is_empty() { Value::Null } else { json(&resp)? })
    }

    /// The first resource of `endpoint` (`/Users`, `/Groups`) whose
    /// `attribute` equals `value` (a `filter=... eq "..."` search).
    pub fn find(&mut self, endpoint: &str, attribute: &str, value: &str) -> Result<Option<Value>, Error> {
        let filter = format!("{attribute} eq \"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        let found = self.call("GET", &format!("{endpoint}?filter={}", encode_component(&filter)), None)?;
        Ok(found["Resources"].as_array().and_then(|r| r.first()).cloned())
    }

    /// Whether the service says it takes PATCH (`ServiceProviderConfig`).
    pub fn supports_patch(&mut self) -> Result<bool, Error> {
        Ok(self.features()?.patch)
    }

    /// What the service's `ServiceProviderConfig` says it supports.
    pub fn features(&mut self) -> Result<Features, Error> {
        let spc = self.call("GET", "/ServiceProviderConfig", None)?;
        let on = |k: &str| spc[k]["supported"].as_bool() == Some(true);
        Ok(Features { patch: on("patch"), etag: on("etag") })
    }

    /// `send` with `If-Match: version` (a resource's `meta.version`), any
    /// status from 300 on as its [`Error`]; 412 says the resource changed.
    pub fn call_if_match(&mut self, method: &'static str, path: &str, body: &Value, version: &str) -> Result<Value, Error> {
        let req = Request::new(method, format!("{}{path}", self.base))
            .bearer(&self.token)
            .header("Accept", MEDIA_TYPE)
            .header("Content-Type", MEDIA_TYPE)
            .header("If-Match", version);
        let req = Request { body: serde_json::to_vec(body).expect("a JSON value always serialises"), ..req };
        let resp = self.transport.send(req).map_err(|e| Error::Transport(format!("the SCIM service did not answer: {e}")))?;
        if resp.status == 412 {
            return Err(Error::Remote {
                code: "precondition-failed".into(),
                message: format!("{path} changed in the service since it was read (its version is no longer {version}); it is sent again on the next attempt"),
                status: Some(412),
                retryable: true,
            });
        }
        if resp.status >= 300 {
            return Err(error(&resp));
        }
        Ok(if resp.body.is_empty() { Value::Null } else { json(&resp)? })
    }
}

/// What a service supports, of what the plugin can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// PATCH (RFC 7644 §3.5.2).
    pub patch: bool,
    /// ETags (`meta.version`, `If-Match`).
    pub etag: bool,
}

fn json(resp: &Response) -> Result<Value, Error> {
    serde_json::from_slice(&resp.body).map_err(|e| Error::Remote { code: "malformed-response".into(), message: format!("the SCIM service's answer is not JSON: {e}"), status: Some(resp.status), retryable: false })
}

/// A SCIM error answer (`urn:ietf:params:scim:api:messages:2.0:Error`) as
/// [`Error`].
pub fn error(resp: &Response) -> Error {
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let detail = body["detail"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&resp.body).chars().take(300).collect());
    match resp.status {
        401 => Error::Unauthorized(if detail.is_empty() { "the SCIM service refused the bearer token".into() } else { detail }),
        429 => Error::RateLimited(resp.header("Retry-After").and_then(|s| s.trim().parse::<u64>().ok()).map(|s| s * 1000)),
        status => Error::Remote {
            code: body["scimType"].as_str().map_or_else(|| format!("http-{status}"), str::to_string),
            message: if detail.is_empty() { format!("the SCIM service answered {status}") } else { detail },
            status: Some(status),
            retryable: status >= 500 || status == 408,
        },
    }
}

/// Whether an error says the resource is gone (deleted in the service).
pub fn is_gone(e: &Error) -> bool {
    matches!(e, Error::Remote { status: Some(404), .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
        Response { status, headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn scim_errors_become_what_the_host_decides_on() {
        let e = error(&resp(409, r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"userName is taken"}"#, &[]));
        assert_eq!(e, Error::Remote { code: "uniqueness".into(), message: "userName is taken".into(), status: Some(409), retryable: false });
        assert!(matches!(error(&resp(401, "", &[])), Error::Unauthorized(_)));
        assert_eq!(error(&resp(429, "", &[("retry-after", "7")])), Error::RateLimited(Some(7000)));
        assert!(matches!(error(&resp(503, "down", &[])), Error::Remote { retryable: true, .. }));
        assert!(matches!(error(&resp(412, r#"{"detail":"version mismatch"}"#, &[])), Error::Remote { ref code, status: Some(412), retryable: false, .. } if code == "http-412"));
        assert!(is_gone(&error(&resp(404, "", &[]))));
    }
}
