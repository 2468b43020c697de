//! Which outgoing HTTP requests a plugin call may make, and the one set of
//! origin rules for every URL a plugin may be pointed at.
//!
//! The host gives every call an [`HttpAllowlist`] of origins (scheme + host +
//! port): normally the OAuth2 server's host and the instance URL its tokens
//! name ([`HttpAllowlist::for_server`]). [`SandboxHooks`] plugs it into
//! wasi-http; everything else is refused with `HTTP-request-denied` and
//! recorded so the call fails with a clear error. [`Origin::of_url`] is the
//! rule for a URL to be allowed at all: https, or plain `http://` only to
//! loopback, and never credentials in the URL.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::Uri;
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

use super::sender::Sender;
use crate::sanitize::sanitize;

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// "http" or "https".
    pub scheme: String,
    /// Lower-case host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port, explicit or the scheme's default.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute URL, if a plugin may ever be allowed to
    /// reach it: `https://`, or `http://` to a loopback address; no
    /// credentials in the URL.
    pub fn of_url(url: &str) -> Result<Origin, PolicyError> {
        let uri: Uri = url.parse().map_err(|_| PolicyError::NotHttp(url.to_string()))?;
        origin_of(&uri).map_err(|e| match e {
            PolicyError::NotHttp(_) => PolicyError::NotHttp(url.to_string()),
            other => other,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{}://{}:{}", self.scheme, host, self.port)
    }
}

/// A pattern for the hosts a token's instance URL may name: an exact host
/// (`na1.salesforce.com`, `127.0.0.1`), or `*.` and a domain for any name
/// under it, at any depth, but not the domain itself (`*.force.com`). An
/// optional `:port` must then match too; without it any port does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    wildcard: bool,
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses a pattern; `Err` says what is wrong with it.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let t = text.trim().to_ascii_lowercase();
        let (wildcard, rest) = match t.strip_prefix("*.") {
            Some(r) => (true, r.to_string()),
            None => (false, t.clone()),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                (h.to_string(), Some(p.parse::<u16>().map_err(|_| format!("'{text}' has a bad port; write host or host:port"))?))
            }
            _ => (rest, None),
        };
        let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(format!("'{text}' is not a host name or pattern: write e.g. api.example.com or *.example.com"));
        }
        if wildcard && !host.contains('.') {
            return Err(format!("'{text}' would match a whole top-level domain; name at least two labels after '*.'"));
        }
        if wildcard && host.rsplit('.').next().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit())) {
            return Err(format!("'{text}' is a wildcard over IP addresses; name the address itself"));
        }
        Ok(HostPattern { wildcard, host, port })
    }

    /// The pattern naming exactly `origin`'s host and port.
    pub fn exact(origin: &Origin) -> HostPattern {
        HostPattern { wildcard: false, host: origin.host.clone(), port: Some(origin.port) }
    }

    /// Whether `origin`'s host (and port, if the pattern names one) match.
    pub fn matches(&self, origin: &Origin) -> bool {
        let host_ok = if self.wildcard {
            origin.host.strip_suffix(&self.host).is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        } else {
            origin.host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == origin.port)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Whether the instance URL a token set names may be trusted, given the
/// plugin's declared API host patterns and the OAuth2 server's own list.
/// The server's list, which an admin confirmed, is required and must match:
/// a plugin's own declaration alone would let a hostile plugin vouch for the
/// URL it made up. The plugin's list, when it declares one, must match too
/// (a 0.1.0 plugin cannot declare any). A loopback instance (possible only
/// under the operator's plain-http opt-in) is a local emulator no plugin can
/// know of: the server's list alone decides for it. `Err` is a sentence for
/// the admin.
pub fn check_instance(origin: &Origin, plugin: &[HostPattern], server: &[HostPattern]) -> Result<(), String> {
    let list = |p: &[HostPattern]| p.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let plugin = if is_loopback(&origin.host) { &[][..] } else { plugin };
    if server.is_empty() {
        return Err(format!(
            "the instance URL {origin} is not trusted: the OAuth2 server lists no API hosts its tokens may name; add them to the server's API hosts (Edit)"
        ));
    }
    if !plugin.is_empty() && !plugin.iter().any(|p| p.matches(origin)) {
        return Err(format!("the instance URL {origin} is not one of the plugin's API hosts ({}); nothing was stored", list(plugin)));
    }
    if !server.is_empty() && !server.iter().any(|p| p.matches(origin)) {
        return Err(format!("the instance URL {origin} is not one of the OAuth2 server's API hosts ({}); nothing was stored", list(server)));
    }
    Ok(())
}

/// Why a URL cannot be allowed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not an absolute http(s) URL.
    #[error("'{0}' is not an http:// or https:// URL")]
    NotHttp(String),
    /// Plain http to a non-loopback host.
    #[error("plain http:// is only allowed to loopback addresses, not to '{0}'; use https://")]
    PlainHttp(String),
    /// URL carries user:password.
    #[error("'{0}' carries credentials in the URL, which is not allowed")]
    Credentials(String),
    /// Origin not on the list.
    #[error("{origin} is not on this call's allowlist")]
    NotAllowed {
        /// The refused origin.
        origin: String,
    },
    /// Plain http to loopback, which the operator has not allowed.
    #[error("plain http:// to {0} is refused: the operator has not allowed plain http to loopback (--allow-insecure-loopback, or --demo); use https://")]
    InsecureLoopback(String),
    /// The call already made as many requests as one call may.
    #[error("a call may make at most {0} HTTP requests")]
    TooManyRequests(usize),
    /// A write during a call that may only read (a preview).
    #[error("{0} is a write, and this call may only read (GET or HEAD): a preview changes nothing")]
    WriteInReadOnlyCall(String),
}

/// The origins a call may reach. Empty means no HTTP at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpAllowlist {
    origins: Vec<Origin>,
    read_only: bool,
}

impl HttpAllowlist {
    /// An allowlist that refuses everything.
    pub fn none() -> Self {
        Self::default()
    }

    /// What a call for an OAuth2 server may reach: the server's origin and,
    /// when tokens name one, their instance URL's origin.
    pub fn for_server(server_url: &str, instance_url: Option<&str>) -> Result<Self, PolicyError> {
        let list = Self::none().allow_url(server_url)?;
        match instance_url {
            Some(instance) => list.allow_url(instance),
            None => Ok(list),
        }
    }

    /// The same origins, for GET and HEAD only: what a preview may do.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Whether only GET and HEAD may go out.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Adds the origin of `url` (path and query are ignored).
    pub fn allow_url(mut self, url: &str) -> Result<Self, PolicyError> {
        let origin = Origin::of_url(url)?;
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        Ok(self)
    }

    /// Decides whether a request to `uri` may go out.
    pub fn check(&self, uri: &Uri) -> Result<(), PolicyError> {
        let origin = origin_of(uri)?;
        if self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(PolicyError::NotAllowed { origin: origin.to_string() })
        }
    }
}

impl fmt::Display for HttpAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.origins.is_empty() {
            return f.write_str("(nothing)");
        }
        let list: Vec<String> = self.origins.iter().map(Origin::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

fn origin_of(uri: &Uri) -> Result<Origin, PolicyError> {
    let text = uri.to_string();
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return Err(PolicyError::NotHttp(text)),
    };
    let authority = uri.authority().ok_or_else(|| PolicyError::NotHttp(text.clone()))?;
    if authority.as_str().contains('@') {
        return Err(PolicyError::Credentials(text));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if host.is_empty() {
        return Err(PolicyError::NotHttp(text));
    }
    if scheme == "http" && !is_loopback(&host) {
        return Err(PolicyError::PlainHttp(host));
    }
    let port = authority.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    Ok(Origin { scheme: scheme.to_string(), host, port })
}

/// Whether `host` names this machine: `localhost` or a loopback IP literal.
/// Other names are not trusted, whatever DNS says of them.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A request the policy refused during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedRequest {
    /// Method and URL as the plugin asked.
    pub request: String,
    /// Why it was refused.
    pub reason: PolicyError,
}

/// The URL without its query and fragment: a plugin may put a secret there
/// (a code, a token), and the host never logs one.
fn without_query(uri: &Uri) -> String {
    let text = uri.to_string();
    let cut = text.find(['?', '#']).unwrap_or(text.len());
    let mut out = text[..cut].to_string();
    if cut < text.len() {
        out.push_str("?…");
    }
    out
}

/// Longest request description kept for errors and logs.
const MAX_REQUEST_TEXT: usize = 512;

/// The wasi-http hooks of one call: the allowlist, a cap on the number of
/// requests, and the first refusal.
pub struct SandboxHooks {
    plugin: Arc<str>,
    allowlist: HttpAllowlist,
    max_requests: usize,
    sent: usize,
    first_denied: Option<DeniedRequest>,
    sender: Sender,
    insecure_loopback: bool,
}

impl SandboxHooks {
    /// Hooks for one call of `plugin` with `allowlist`, allowing at most
    /// `max_requests` requests, sent through the runtime's `sender`.
    pub(crate) fn new(plugin: Arc<str>, allowlist: HttpAllowlist, max_requests: usize, sender: Sender) -> Self {
        Self { plugin, allowlist, max_requests, sent: 0, first_denied: None, sender, insecure_loopback: false }
    }

    /// Whether plain `http://` to the allowlist's loopback origins may go
    /// out (see [`RuntimeConfig::insecure_loopback`](crate::RuntimeConfig)).
    pub(crate) fn insecure_loopback(mut self, allowed: bool) -> Self {
        self.insecure_loopback = allowed;
        self
    }

    /// The first request refused, if any.
    pub fn first_denied(&self) -> Option<&DeniedRequest> {
        self.first_denied.as_ref()
    }

    #[cfg(test)]
    fn decide(&self, uri: &Uri) -> Result<(), PolicyError> {
        self.decide_method(&http::Method::GET, uri)
    }

    /// Whether `method` to `uri` may go out: on the allowlist, plain http
    /// only by opt-in, within the request budget, and no write in a
    /// read-only call.
    fn decide_method(&self, method: &http::Method, uri: &Uri) -> Result<(), PolicyError> {
        if self.allowlist.is_read_only() && !matches!(*method, http::Method::GET | http::Method::HEAD) {
            return Err(PolicyError::WriteInReadOnlyCall(method.to_string()));
        }
        self.allowlist.check(uri)?;
        if uri.scheme_str() == Some("http") && !self.insecure_loopback {
            return Err(PolicyError::InsecureLoopback(uri.host().unwrap_or_default().to_string()));
        }
        if self.sent >= self.max_requests {
            return Err(PolicyError::TooManyRequests(self.max_requests));
        }
        Ok(())
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for SandboxHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> ResponseFuture {
        if let Err(reason) = self.decide_method(request.method(), request.uri()) {
            // Only the first refusal is logged and kept: a plugin looping on
            // denied requests must not flood the log or host memory.
            if self.first_denied.is_none() {
                let request = sanitize(&format!("{} {}", request.method(), without_query(request.uri())), MAX_REQUEST_TEXT);
                tracing::warn!(
                    plugin = %self.plugin,
                    %request,
                    %reason,
                    allowed = %self.allowlist,
                    "denied an outgoing HTTP request"
                );
                self.first_denied = Some(DeniedRequest { request, reason });
            }
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        self.sent += 1;
        tracing::debug!(plugin = %self.plugin, method = %request.method(), uri = %request.uri(), "outgoing HTTP request");
        // The outgoing body is written by the guest through its own stream;
        // the sender reads it from `request`, so wasi-http's writer future
        // has nothing left to do.
        drop(fut);
        let sender = self.sender.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            let response = sender.send(request, options.unwrap_or_default()).await?;
            // The connection is driven by its own task and outlives the call.
            let io = async { Ok(()) };
            Ok((
                response.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync()),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn allows_exactly_the_listed_origins() {
        let list = HttpAllowlist::none()
            .allow_url("https://login.salesforce.com/services/oauth2")
            .unwrap()
            .allow_url("https://NA1.my.salesforce.com")
            .unwrap();
        assert!(list.check(&uri("https://login.salesforce.com/services/oauth2/token")).is_ok());
        assert!(list.check(&uri("https://login.salesforce.com:443/x")).is_ok());
        assert!(list.check(&uri("https://na1.my.salesforce.com/services/data")).is_ok());
        for denied in [
            "https://evil.example.com/",
            "https://login.salesforce.com:8443/",
            "https://login.salesforce.com.evil.com/",
            "https://sub.login.salesforce.com/",
        ] {
            assert!(matches!(list.check(&uri(denied)), Err(PolicyError::NotAllowed { .. })), "{denied}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert_eq!(
            HttpAllowlist::none().allow_url("http://login.salesforce.com").unwrap_err(),
            PolicyError::PlainHttp("login.salesforce.com".into())
        );
        let list = HttpAllowlist::none()
            .allow_url("http://127.0.0.1:8080")
            .unwrap()
            .allow_url("http://[::1]:9000/x")
            .unwrap()
            .allow_url("http://localhost:7000")
            .unwrap();
        assert!(list.check(&uri("http://127.0.0.1:8080/services")).is_ok());
        assert!(list.check(&uri("http://[::1]:9000/")).is_ok());
        assert!(list.check(&uri("http://localhost:7000/")).is_ok());
        assert!(list.check(&uri("http://127.0.0.1:8081/")).is_err(), "port matters");
        assert!(list.check(&uri("https://127.0.0.1:8080/")).is_err(), "scheme matters");
        assert!(matches!(list.check(&uri("http://example.com/")), Err(PolicyError::PlainHttp(_))));
    }

    #[test]
    fn rejects_non_http_and_credentials() {
        assert!(matches!(HttpAllowlist::none().allow_url("ftp://x"), Err(PolicyError::NotHttp(_))));
        assert!(matches!(HttpAllowlist::none().allow_url("not a url"), Err(PolicyError::NotHttp(_))));
        assert!(matches!(
            HttpAllowlist::none().allow_url("https://u:p@example.com"),
            Err(PolicyError::Credentials(_))
        ));
        assert!(HttpAllowlist::none().check(&uri("https://example.com/")).is_err(), "empty list denies all");
    }

    #[test]
    fn scheme_and_host_case_do_not_matter_but_everything_else_does() {
        let list = HttpAllowlist::none().allow_url("https://Login.Salesforce.com").unwrap();
        assert!(list.check(&uri("HTTPS://LOGIN.SALESFORCE.COM/x")).is_ok());
        assert!(list.check(&uri("https://login.salesforce.com./x")).is_err(), "trailing dot is another name");
        assert!(matches!(list.check(&uri("https://u@login.salesforce.com/")), Err(PolicyError::Credentials(_))));
        assert!(matches!(list.check(&uri("/relative")), Err(PolicyError::NotHttp(_))));
    }

    #[test]
    fn hooks_cap_requests_and_keep_only_the_first_refusal() {
        let list = HttpAllowlist::none().allow_url("http://127.0.0.1:1").unwrap();
        let hooks = SandboxHooks::new(Arc::from("p"), list.clone(), 2, Sender::new());
        assert_eq!(hooks.decide(&uri("http://127.0.0.1:1/")), Err(PolicyError::InsecureLoopback("127.0.0.1".into())), "plain http only by opt-in");
        let mut hooks = SandboxHooks::new(Arc::from("p"), list, 2, Sender::new()).insecure_loopback(true);
        assert!(hooks.decide(&uri("http://127.0.0.1:1/")).is_ok());
        hooks.sent = 2;
        assert_eq!(hooks.decide(&uri("http://127.0.0.1:1/")), Err(PolicyError::TooManyRequests(2)));
        assert!(hooks.first_denied().is_none());
    }

    #[test]
    fn denied_requests_are_described_without_their_query() {
        assert_eq!(without_query(&uri("https://evil.example/steal?code=s3cret#frag")), "https://evil.example/steal?…");
        assert_eq!(without_query(&uri("https://evil.example/path")), "https://evil.example/path");
    }

    #[test]
    fn a_read_only_call_may_read_and_never_write() {
        let list = HttpAllowlist::none().allow_url("https://acme.my.salesforce.com").unwrap().read_only();
        let hooks = SandboxHooks::new(Arc::from("p"), list, 10, Sender::new());
        let target = uri("https://acme.my.salesforce.com/services/data/v62.0/query?q=SELECT+Id+FROM+Contact");
        assert!(hooks.decide_method(&http::Method::GET, &target).is_ok());
        assert!(hooks.decide_method(&http::Method::HEAD, &target).is_ok());
        for write in [http::Method::POST, http::Method::PATCH, http::Method::PUT, http::Method::DELETE] {
            assert_eq!(hooks.decide_method(&write, &target), Err(PolicyError::WriteInReadOnlyCall(write.to_string())));
        }
        assert!(matches!(hooks.decide_method(&http::Method::GET, &uri("https://elsewhere.example/")), Err(PolicyError::NotAllowed { .. })));
    }

    #[test]
    fn a_server_and_its_instance_are_allowed_and_nothing_else() {
        let list = HttpAllowlist::for_server("https://login.salesforce.com", Some("https://na1.my.salesforce.com/")).unwrap();
        assert!(list.check(&uri("https://login.salesforce.com/services/oauth2/token")).is_ok());
        assert!(list.check(&uri("https://na1.my.salesforce.com/services/data")).is_ok());
        assert!(list.check(&uri("https://na2.my.salesforce.com/")).is_err());
        assert!(matches!(
            HttpAllowlist::for_server("https://login.salesforce.com", Some("http://na1.my.salesforce.com")),
            Err(PolicyError::PlainHttp(_))
        ));
        assert_eq!(
            Origin::of_url("https://Login.Salesforce.com/services").unwrap(),
            Origin::of_url("https://login.salesforce.com:443/x").unwrap()
        );
    }

    #[test]
    fn host_patterns_match_names_under_a_domain_and_nothing_that_looks_like_one() {
        let o = |u: &str| Origin::of_url(u).unwrap();
        let my = HostPattern::parse("*.my.salesforce.com").unwrap();
        assert!(my.matches(&o("https://acme.my.salesforce.com")));
        assert!(my.matches(&o("https://acme--dev.sandbox.my.salesforce.com")));
        assert!(my.matches(&o("https://ACME.My.Salesforce.com:8443/x")), "any port without one in the pattern");
        for no in ["https://my.salesforce.com", "https://salesforce.com.evil.example", "https://evilmy.salesforce.com", "https://acme.my.salesforce.com.evil.example", "https://attacker.invalid"] {
            assert!(!my.matches(&o(no)), "{no}");
        }
        let exact = HostPattern::parse("127.0.0.1:4000").unwrap();
        assert!(exact.matches(&o("http://127.0.0.1:4000")));
        assert!(!exact.matches(&o("http://127.0.0.1:4001")), "another port");
        assert!(HostPattern::parse("na1.salesforce.com").unwrap().matches(&o("https://na1.salesforce.com")));
        for bad in ["", "*.com", "*", "a b.com", "https://x.com", "x.com:99999", "*.*.com", "*.0.0.1"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(HostPattern::parse(" *.Force.com ").unwrap().to_string(), "*.force.com");
    }

    #[test]
    fn an_instance_must_match_the_plugins_hosts_and_the_servers() {
        let o = |u: &str| Origin::of_url(u).unwrap();
        let p = |list: &[&str]| list.iter().map(|x| HostPattern::parse(x).unwrap()).collect::<Vec<_>>();
        let salesforce = p(&["*.my.salesforce.com", "*.salesforce.com", "*.force.com"]);
        assert!(check_instance(&o("https://acme.my.salesforce.com"), &salesforce, &salesforce).is_ok());
        for evil in ["https://attacker.invalid", "https://salesforce.com.evil.example", "https://login.salesforce.com.evil.example"] {
            let e = check_instance(&o(evil), &salesforce, &p(&["*.evil.example", "attacker.invalid"])).unwrap_err();
            assert!(e.contains(&o(evil).to_string()) && e.contains("plugin's API hosts"), "{e}");
        }
        // The admin's list narrows the plugin's.
        let narrowed = p(&["acme.my.salesforce.com"]);
        assert!(check_instance(&o("https://acme.my.salesforce.com"), &salesforce, &narrowed).is_ok());
        assert!(check_instance(&o("https://other.my.salesforce.com"), &salesforce, &narrowed).unwrap_err().contains("OAuth2 server's API hosts"));
        // A loopback instance: the server's list alone, port included.
        let emulator = p(&["127.0.0.1:4001"]);
        assert!(check_instance(&o("http://127.0.0.1:4001"), &salesforce, &emulator).is_ok());
        assert!(check_instance(&o("http://127.0.0.1:4002"), &salesforce, &emulator).is_err(), "another loopback port");
        assert!(check_instance(&o("http://127.0.0.1:4001"), &salesforce, &[]).is_err());
        // The plugin's declaration alone vouches for nothing: the server's
        // list is required.
        assert!(check_instance(&o("https://acme.my.salesforce.com"), &salesforce, &[]).unwrap_err().contains("add them to the server's API hosts"));
        assert!(check_instance(&o("https://attacker.invalid"), &p(&["attacker.invalid"]), &[]).is_err(), "a hostile plugin's own list");
        // A 0.1.0 plugin declares none: the server's list decides.
        assert!(check_instance(&o("https://acme.my.salesforce.com"), &[], &p(&["*.my.salesforce.com"])).is_ok());
    }

    #[test]
    fn loopback_detection() {
        for yes in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "0::1"] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["10.0.0.1", "example.com", "localhost.example.com", "0.0.0.0", "app.localhost", "localhost.", "::ffff:127.0.0.1"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
