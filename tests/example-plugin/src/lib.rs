//! A minimal, complete provisioning plugin: it gets tokens with the OAuth2
//! client credentials grant and keeps one Salesforce Contact per person,
//! upserted by the external-id field `Registry_ID__c`. Everything else the
//! contract offers is answered with `unsupported`, and the capabilities say
//! so, so hosts hide it and `registry-host plugin test` skips it.
//!
//! Read with docs/writing-a-plugin.md.

// The contract's latest version; `generate_all` also makes the wasi:http
// bindings.
#[cfg(not(feature = "contract-0-1-0"))]
wit_bindgen::generate!({ path: "../../wit/0.2.0", world: "provisioner", generate_all });

#[cfg(feature = "contract-0-1-0")] // The registry's test that hosts still load plugins built for 0.1.0.
wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "provisioner", generate_all });

use exports::registry::provisioning::oauth2_server::{AuthorizationRequest, ConnectionInfo};
use exports::registry::provisioning::plugin_info::{Capabilities, PluginMetadata, Setting, SettingKind};
use exports::registry::provisioning::provisioning_target::{ProvisionOutcome, ProvisionRequest, TargetContext};
use types::{FieldError, Oauth2ServerConfig, PluginError, ProvisioningAction, RemoteError, RemoteRef, TokenSet};
use serde_json::{Value, json};

// The data types' interface: `registry-types` since 0.2.0, `types` before.
#[cfg(not(feature = "contract-0-1-0"))]
use registry::provisioning::registry_types as types;
#[cfg(feature = "contract-0-1-0")]
use registry::provisioning::types;

struct Example;

const API: &str = "/services/data/v62.0";

impl exports::registry::provisioning::plugin_info::Guest for Example {
    fn info() -> PluginMetadata {
        PluginMetadata {
            name: "example-contacts".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Keeps a Salesforce Contact per person, upserted by Registry_ID__c.".into(),
            settings: vec![Setting {
                name: "send_email".into(),
                label: "Send email addresses".into(),
                kind: SettingKind::Boolean,
                default_value: Some("true".into()),
                required: false,
                help: "Copy the person's first email address into the Contact's Email.".into(),
                #[cfg(not(feature = "contract-0-1-0"))]
                shown_when: None,
            }],
            capabilities: Capabilities::CLIENT_CREDENTIALS | Capabilities::PROVISION,
            // Where Salesforce's tokens may send us (0.2.0 and later).
            #[cfg(not(feature = "contract-0-1-0"))]
            api_hosts: vec!["*.my.salesforce.com".into(), "*.salesforce.com".into(), "*.force.com".into()],
            // Server URLs to pick from, and the server form's help in the
            // service's words (0.2.0 and later).
            #[cfg(not(feature = "contract-0-1-0"))]
            server_form: exports::registry::provisioning::plugin_info::ServerForm {
                server_urls: vec![exports::registry::provisioning::plugin_info::ServerUrlChoice {
                    label: "Production".into(),
                    url: "https://login.salesforce.com".into(),
                    name_label: String::new(),
                    api_hosts: Vec::new(),
                }],
                help: vec![("client-id".into(), "The External Client App's Consumer Key.".into())],
            },
        }
    }
}

impl exports::registry::provisioning::oauth2_server::Guest for Example {
    fn authorization_url(_: Oauth2ServerConfig, _: AuthorizationRequest) -> Result<String, PluginError> {
        Err(PluginError::Unsupported("only the client credentials grant".into()))
    }
    fn exchange_code(_: Oauth2ServerConfig, _: String, _: String, _: Option<String>) -> Result<TokenSet, PluginError> {
        Err(PluginError::Unsupported("only the client credentials grant".into()))
    }
    fn refresh(_: Oauth2ServerConfig, _: TokenSet) -> Result<TokenSet, PluginError> {
        Err(PluginError::Unsupported("client credentials tokens are fetched again, not refreshed".into()))
    }
    fn client_credentials(config: Oauth2ServerConfig) -> Result<TokenSet, PluginError> {
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            encode(&config.client_id),
            encode(&config.client_secret)
        );
        let url = format!("{}/services/oauth2/token", config.server_url.trim_end_matches('/'));
        let (status, body) = http::send("POST", &url, &[("content-type", "application/x-www-form-urlencoded")], form.as_bytes())?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| PluginError::Transport(format!("the token answer is not JSON: {e}")))?;
        if status != 200 {
            // OAuth errors are the configuration's fault: name the field to fix.
            let field = if v["error"] == "invalid_client" { "client_secret" } else { "client_id" };
            let message = v["error_description"].as_str().unwrap_or("the token request was refused").to_string();
            return Err(PluginError::InvalidConfig(FieldError { field: field.into(), message }));
        }
        Ok(TokenSet {
            access_token: v["access_token"].as_str().unwrap_or_default().into(),
            refresh_token: None,
            instance_url: v["instance_url"].as_str().map(str::to_string),
            issued_at: v["issued_at"].as_str().and_then(|t| t.parse().ok()),
            expires_at: None,
            scope: v["scope"].as_str().map(str::to_string),
            token_type: v["token_type"].as_str().unwrap_or("Bearer").into(),
            extra: Vec::new(),
        })
    }
    #[cfg(not(feature = "contract-0-1-0"))]
    fn jwt_bearer(_: Oauth2ServerConfig, _: types::JwtSigningKey) -> Result<TokenSet, PluginError> {
        Err(PluginError::Unsupported("jwt-bearer".into()))
    }
    fn revoke(_: Oauth2ServerConfig, _: TokenSet) -> Result<(), PluginError> {
        Err(PluginError::Unsupported("revoke".into()))
    }
    fn check_connection(_: Oauth2ServerConfig, _: TokenSet) -> Result<ConnectionInfo, PluginError> {
        Err(PluginError::Unsupported("check-connection".into()))
    }
}

impl exports::registry::provisioning::provisioning_target::Guest for Example {
    fn validate_settings(settings: Vec<(String, String)>) -> Result<(), Vec<FieldError>> {
        let errors: Vec<FieldError> = settings
            .iter()
            .filter(|(name, value)| name == "send_email" && value != "true" && value != "false")
            .map(|(name, value)| FieldError { field: name.clone(), message: format!("'{value}' is not true or false") })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn provision(context: TargetContext, request: ProvisionRequest) -> Result<ProvisionOutcome, PluginError> {
        let instance = context.tokens.instance_url.clone().ok_or_else(|| PluginError::InvalidConfig(FieldError {
            field: "server_url".into(),
            message: "the token names no instance URL".into(),
        }))?;
        let auth = format!("Bearer {}", context.tokens.access_token);
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let person = &request.person;

        if request.action == ProvisioningAction::PersonDeleted {
            let Some(current) = request.current else {
                return Ok(outcome(None, "nothing to delete".into(), true));
            };
            let url = format!("{instance}{API}/sobjects/Contact/{}", current.remote_id);
            let (status, body) = http::send("DELETE", &url, &headers, b"")?;
            return match status {
                // 404: already gone, which is what was asked.
                204 | 404 => Ok(outcome(None, format!("deleted Contact {}", current.remote_id), true)),
                _ => Err(error(status, &body)),
            };
        }

        // Salesforce requires LastName: say which attribute to fix, never send it empty.
        let family = person.name.family.clone().filter(|f| !f.trim().is_empty()).ok_or_else(|| {
            PluginError::InvalidPerson(FieldError { field: "name.family".into(), message: "a Contact needs a family name".into() })
        })?;
        let send_email = context.settings.iter().any(|(k, v)| k == "send_email" && v == "true");
        let mut fields = json!({ "FirstName": person.name.given, "LastName": family });
        if send_email && let Some(email) = person.emails.first() {
            fields["Email"] = json!(email.address);
        }
        let url = format!("{instance}{API}/sobjects/Contact/Registry_ID__c/{}", encode(&person.id));
        let (status, body) = http::send("PATCH", &url, &headers, fields.to_string().as_bytes())?;
        if status != 200 && status != 201 {
            return Err(error(status, &body));
        }
        let id = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["id"].as_str().map(str::to_string)).unwrap_or_default();
        let verb = if status == 201 { "created" } else { "updated" };
        let summary = format!("{verb} Contact {id}");
        Ok(outcome(Some(RemoteRef { object_type: "Contact".into(), remote_id: id }), summary, false))
    }

    // Since contract 0.2.0: nothing to check remotely, and a removal deletes.
    #[cfg(not(feature = "contract-0-1-0"))]
    fn check_settings(_: TargetContext) -> Result<(), Vec<FieldError>> {
        Ok(())
    }

    #[cfg(not(feature = "contract-0-1-0"))]
    fn preview(_: TargetContext, _: ProvisionRequest) -> Result<Vec<exports::registry::provisioning::provisioning_target::PlannedStep>, PluginError> {
        Err(PluginError::Unsupported("preview".into()))
    }

    #[cfg(not(feature = "contract-0-1-0"))]
    fn describe_removal(_: Vec<(String, String)>) -> types::RemovalEffect {
        types::RemovalEffect::Delete
    }

    #[cfg(not(feature = "contract-0-1-0"))]
    fn provision_batch(_: TargetContext, _: &registry::provisioning::batch_input::BatchRequests) -> Result<exports::registry::provisioning::provisioning_target::BatchAnswer, PluginError> {
        Err(PluginError::Unsupported("provision-batch".into()))
    }

    #[cfg(not(feature = "contract-0-1-0"))]
    fn provision_group(_: TargetContext, _: exports::registry::provisioning::provisioning_target::GroupRequest) -> Result<ProvisionOutcome, PluginError> {
        Err(PluginError::Unsupported("provision-group".into()))
    }

    #[cfg(not(feature = "contract-0-1-0"))]
    fn batch_size(_: Vec<(String, String)>) -> Option<u32> {
        None
    }

    #[cfg(not(feature = "contract-0-1-0"))]
    fn poll_batch(_: TargetContext, _: &registry::provisioning::batch_input::BatchRequests, _: String) -> Result<exports::registry::provisioning::provisioning_target::BatchAnswer, PluginError> {
        Err(PluginError::Unsupported("poll-batch".into()))
    }

    #[cfg(feature = "contract-0-1-0")]
    fn provision_batch(_: TargetContext, _: Vec<ProvisionRequest>) -> Result<Vec<Result<ProvisionOutcome, PluginError>>, PluginError> {
        Err(PluginError::Unsupported("provision-batch".into()))
    }
}

/// An outcome; 0.2.0 adds the API usage seen, which this plugin does not track.
fn outcome(remote: Option<RemoteRef>, summary: String, removed: bool) -> ProvisionOutcome {
    #[cfg(not(feature = "contract-0-1-0"))]
    return ProvisionOutcome { remote, summary, removed, usage: None };
    #[cfg(feature = "contract-0-1-0")]
    return ProvisionOutcome { remote, summary, removed };
}

/// Salesforce's error answer as the variant that tells the host what to do.
fn error(status: u16, body: &[u8]) -> PluginError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v[0]["errorCode"].as_str().unwrap_or("UNKNOWN").to_string();
    let message = v[0]["message"].as_str().unwrap_or("no message").to_string();
    match (status, code.as_str()) {
        (401, _) => PluginError::Unauthorized(message),
        (_, "REQUEST_LIMIT_EXCEEDED") => PluginError::RateLimited(None),
        (_, "UNABLE_TO_LOCK_ROW") => PluginError::Remote(RemoteError { code, message, status: Some(status), retryable: true }),
        _ => PluginError::Remote(RemoteError { retryable: status >= 500, code, message, status: Some(status) }),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP exchange through `wasi:http`, the only way out of the sandbox.
mod http {
    use super::wasi::http::outgoing_handler;
    use super::wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
    use super::wasi::io::streams::StreamError;
    use super::PluginError;

    /// Sends a request; returns the status and body. A request the host's
    /// allowlist refuses comes back as a transport error.
    pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, Vec<u8>), PluginError> {
        let fail = |what: &str| PluginError::Transport(format!("{what} ({method} {url})"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| fail("not an absolute URL"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        let entries: Vec<(String, Vec<u8>)> = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        let request = OutgoingRequest::new(Fields::from_list(&entries).map_err(|_| fail("bad headers"))?);
        let method = match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => Method::Other(other.into()),
        };
        request.set_method(&method).map_err(|_| fail("bad method"))?;
        request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http })).map_err(|_| fail("bad scheme"))?;
        request.set_authority(Some(authority)).map_err(|_| fail("bad host"))?;
        request.set_path_with_query(Some(path)).map_err(|_| fail("bad path"))?;
        let outgoing = request.body().map_err(|_| fail("no request body"))?;
        let future = outgoing_handler::handle(request, None).map_err(|e| PluginError::Transport(format!("{e:?}")))?;
        if !body.is_empty() {
            let stream = outgoing.write().map_err(|_| fail("no body stream"))?;
            for chunk in body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(|_| fail("sending the body failed"))?;
            }
        }
        OutgoingBody::finish(outgoing, None).map_err(|_| fail("finishing the body failed"))?;
        let response = loop {
            match future.get() {
                Some(r) => break r,
                None => future.subscribe().block(),
            }
        };
        let response = response.map_err(|_| fail("no response"))?.map_err(|e| PluginError::Transport(format!("{e:?}")))?;
        let status = response.status();
        let incoming = response.consume().map_err(|_| fail("no response body"))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming.stream().map_err(|_| fail("no response stream"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(_) => return Err(fail("reading the response failed")),
                }
            }
        }
        let _ = IncomingBody::finish(incoming);
        Ok((status, bytes))
    }
}

export!(Example);
