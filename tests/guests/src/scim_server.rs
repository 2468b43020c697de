//! A real third-party SCIM 2.0 server for the tests: `scim2-server` (PyPI,
//! by python-scim), in-memory, with bearer-token auth, installed on first
//! use into a venv under the target dir (pinned by
//! `tests/scim-server/requirements.txt`, with `scim2-tester`, which checks
//! a server's RFC compliance) and started on a free loopback port for each
//! test that needs one.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `scim2-server`; stopped when dropped.
pub struct ScimServer {
    child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The bearer token it takes.
    pub token: String,
}

impl ScimServer {
    /// Starts one that takes `token`.
    pub fn start(token: &str) -> ScimServer {
        let venv = venv();
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(venv.join("bin/scim2-server"))
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", token])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scim2-server");
        let server = ScimServer { child, url: format!("http://127.0.0.1:{port}"), token: token.to_string() };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "scim2-server did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl ScimServer {
    /// Runs `scim2-tester` (tests/scim-server/check.py) against the server:
    /// its output, and whether every check passed or was acceptable.
    pub fn check_compliance(&self) -> (String, bool) {
        let out = Command::new(venv().join("bin/python"))
            .arg(root().join("tests/scim-server/check.py"))
            .args([&self.url, &self.token])
            .output()
            .expect("run scim2-tester");
        (format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)), out.status.success())
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tests/guests is two levels down").to_path_buf()
}

/// The venv with the pinned server and its compliance suite.
fn venv() -> PathBuf {
    let dir = PathBuf::from(env!("GUEST_TARGET_DIR")).join("scim-server").join("venv");
    crate::languages::venv(&dir, &root().join("tests/scim-server/requirements.txt"))
}
