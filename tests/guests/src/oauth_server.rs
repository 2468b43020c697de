//! A real OAuth2 authorization server for the tests: `oauth2-mock-server`
//! (npm, by AXA), pinned by `tests/oauth-server/package-lock.json`,
//! installed on first use and started on a free loopback port by
//! `tests/oauth-server/server.js`, which checks the client's credentials
//! and answers a token the tests' SCIM server takes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running authorization server; stopped when dropped.
pub struct OAuthServer {
    child: Child,
    log: PathBuf,
    /// Its token endpoint, e.g. `http://127.0.0.1:40123/token`.
    pub token_url: String,
}

/// One token request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TokenRequest {
    /// The grant asked for.
    pub grant_type: String,
    /// The scope asked for.
    pub scope: Option<String>,
    /// The client id given.
    pub client_id: Option<String>,
    /// How the client authenticated: `basic` or `body`.
    pub auth: String,
    /// Whether the credentials were right.
    pub ok: bool,
}

impl OAuthServer {
    /// Starts one that takes `client_id`/`client_secret` and answers
    /// `token` for the client credentials grant.
    pub fn start(client_id: &str, client_secret: &str, token: &str) -> OAuthServer {
        let dir = root().join("tests/oauth-server");
        crate::languages::npm_ci(&dir);
        let log = std::env::temp_dir().join(format!("oauth-server-{}-{}.log", std::process::id(), unique()));
        std::fs::write(&log, "").expect("create the token request log");
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .args(["--client-id", client_id, "--client-secret", client_secret, "--token", token, "--log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OAuth2 server (Node.js is needed)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first).expect("read the OAuth2 server's port");
        let port = first.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("the OAuth2 server did not start: {first:?}"));
        OAuthServer { child, log, token_url: format!("http://127.0.0.1:{port}/token") }
    }

    /// Every token request so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        std::fs::read_to_string(&self.log)
            .expect("read the token request log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tests/guests is two levels down").to_path_buf()
}
