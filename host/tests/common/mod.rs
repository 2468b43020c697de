//! Helpers shared by the host's integration tests: the browser's part of the
//! authorization code flow at the emulator, done with plain form posts.

#![allow(dead_code)]

use std::path::PathBuf;

use registry_host::RuntimeConfig;
use registry_host::serve::{Running, ServeConfig};
use reqwest::redirect::Policy;
use salesforce_emulator::seed::{DEMO_PASSWORD, DEMO_USERNAME};

/// The hidden `tx` field of an emulator page.
pub fn tx_of(html: &str) -> String {
    let start = html.find("name=\"tx\" value=\"").expect("an emulator form") + 17;
    html[start..].split('"').next().unwrap().to_string()
}

/// Opens `authorize`, logs in as the demo user, clicks Allow (or Deny), and
/// returns where the emulator redirects the browser (the client's callback).
pub async fn at_salesforce(authorize: &str, login_url: &str, allow: bool) -> String {
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let html = http.get(authorize).send().await.unwrap().text().await.unwrap();
    let r = http
        .post(format!("{login_url}/services/oauth2/authorize/login"))
        .form(&[("tx", tx_of(&html).as_str()), ("username", DEMO_USERNAME), ("pw", DEMO_PASSWORD)])
        .send()
        .await
        .unwrap();
    if r.status() == 302 {
        // Approved before: Salesforce skips the consent page.
        assert!(allow, "the app was approved before, so there is no consent page to deny on");
        return r.headers()["location"].to_str().unwrap().to_string();
    }
    let html = r.text().await.unwrap();
    let decision = if allow { "allow" } else { "deny" };
    let r = http.post(format!("{login_url}/services/oauth2/authorize/consent")).form(&[("tx", tx_of(&html).as_str()), ("decision", decision)]).send().await.unwrap();
    assert_eq!(r.status(), 302, "the emulator sends the browser back");
    r.headers()["location"].to_str().unwrap().to_string()
}

/// `serve --demo` in-process on a free port, with a fresh data directory
/// (kept alive by the returned guard).
pub async fn demo_host() -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let host = registry_host::serve::start(ServeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        plugins: vec![PathBuf::from(test_guests::salesforce_plugin())],
        runtime: RuntimeConfig::default(),
        demo: true,
        engine: registry_host::provisioning::EngineConfig { backoff_base: std::time::Duration::from_millis(50), backoff_max: std::time::Duration::from_millis(500), idle_poll: std::time::Duration::from_millis(100), ..Default::default() },
    })
    .await
    .unwrap();
    (host, dir)
}
