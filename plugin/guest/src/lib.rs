//! What the registry's plugins share, as plain Rust their logic (and its
//! native tests) use: at the root, what they send and get back over HTTP
//! (plain request and response values, the [`Transport`] the logic sends
//! them through, [`wasi::WasiTransport`], wasi:http and the only way out of
//! the sandbox, in the component, and [`fake::Fake`] in native tests);
//! [`person::Person`], a registry person (the WIT `person` without the
//! bindings); and [`template::Template`], values such as `{email}` or
//! `{identifier:eppn}@example.org` an admin maps attributes with.

pub mod person;
pub mod template;
pub mod wasi;

/// An HTTP request the plugin wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: &'static str, url: impl Into<String>) -> Self {
        Request { method, url: url.into(), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets a form-encoded body.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.body = form_encode(pairs).into_bytes();
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    /// Sets a JSON body.
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        // serde's writer, not `Display`: the formatter machinery costs a
        // batch of 200 records a good part of its serialising time.
        self.body = serde_json::to_vec(value).expect("a JSON value always serialises");
        self.header("Content-Type", "application/json")
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header name/value pairs (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends requests. Errors are transport failures (no usable response).
pub trait Transport {
    /// Sends one request and waits for the whole response.
    fn send(&mut self, request: Request) -> Result<Response, String>;
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A parsed absolute URL: just what the plugin needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Host (lower-case) and optional port, as in the URL.
    pub authority: String,
    /// Host only.
    pub host: String,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses `scheme://authority[/path][?query]`, refusing userinfo and fragments.
    pub fn parse(raw: &str) -> Result<Url, String> {
        let raw = raw.trim();
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| format!("'{raw}' is not an absolute URL (expected https://host/...)"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("'{raw}' must use https"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || path.contains('#') || authority.contains(char::is_whitespace) {
            return Err(format!("'{raw}' is not a plain server URL (no user name, fragment or spaces)"));
        }
        let authority = authority.to_ascii_lowercase();
        let host = if let Some(stripped) = authority.strip_prefix('[') {
            format!("[{}", stripped.split(']').next().unwrap_or(""))
                + "]"
        } else {
            authority.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map(|(h, _)| h.to_string()).unwrap_or_else(|| authority.clone())
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
        Ok(Url { scheme, authority, host, path_and_query: path })
    }

    /// Whether the host is loopback: `localhost`, an IPv4 literal in
    /// 127.0.0.0/8, or `[::1]`. Names are never trusted by their look
    /// (`127.evil.example`, `app.localhost`), whatever DNS says of them.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.as_str();
        host == "localhost"
            || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
            || host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse::<std::net::Ipv6Addr>().ok()).is_some_and(|ip| ip.is_loopback())
    }

    /// `scheme://authority`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(form_encode(&[("code", "aPrx+/=="), ("redirect_uri", "http://h:1/cb?x=1")]), "code=aPrx%2B%2F%3D%3D&redirect_uri=http%3A%2F%2Fh%3A1%2Fcb%3Fx%3D1");
        assert_eq!(encode_component("a b~"), "a%20b~");
    }

    #[test]
    fn urls_parse_into_origin_and_path() {
        let u = Url::parse("https://Login.Salesforce.com/services/oauth2").unwrap();
        assert_eq!((u.origin().as_str(), u.host.as_str(), u.path_and_query.as_str()), ("https://login.salesforce.com", "login.salesforce.com", "/services/oauth2"));
        let u = Url::parse("http://127.0.0.1:4000").unwrap();
        assert_eq!((u.authority.as_str(), u.host.as_str(), u.path_and_query.as_str()), ("127.0.0.1:4000", "127.0.0.1", "/"));
        assert!(u.is_loopback());
        for yes in ["http://localhost:1", "http://127.1.2.3", "http://[::1]:8080", "http://[0::1]/x"] {
            assert!(Url::parse(yes).unwrap().is_loopback(), "{yes}");
        }
        for no in ["http://127.evil.example", "http://app.localhost", "http://localhost.example.com", "http://127.0.0.1.nip.io", "http://10.0.0.1", "http://[::ffff:127.0.0.1]"] {
            assert!(!Url::parse(no).unwrap().is_loopback(), "{no}");
        }
        assert_eq!(Url::parse("http://[::1]:80/x").unwrap().host, "[::1]");
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("https://user@x.com").is_err());
        assert!(Url::parse("login.salesforce.com").is_err());
    }
}

/// A scripted transport for native tests: answers each request with the
/// next reply (a refused connection when none is left) and keeps what was
/// sent.
pub mod fake {
    use super::{Request, Response, Transport};

    /// The transport.
    pub struct Fake {
        /// What the code under test sent, in order.
        pub sent: Vec<Request>,
        /// What is answered next.
        pub replies: Vec<Response>,
    }

    impl Fake {
        /// Answers with `replies`, in order.
        pub fn new(replies: Vec<Response>) -> Self {
            Fake { sent: vec![], replies }
        }
    }

    impl Transport for Fake {
        fn send(&mut self, request: Request) -> Result<Response, String> {
            self.sent.push(request);
            if self.replies.is_empty() { Err("connection refused".into()) } else { Ok(self.replies.remove(0)) }
        }
    }

    /// A JSON answer (no body for `null`).
    pub fn reply(status: u16, body: serde_json::Value) -> Response {
        let body = if body.is_null() { vec![] } else { body.to_string().into_bytes() };
        Response { status, headers: vec![], body }
    }
}
