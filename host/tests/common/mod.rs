//! Helpers shared by the host's integration tests: the browser's part of the
//! authorization code flow at the emulator, done with plain form posts.

#![allow(dead_code)]

use std::path::PathBuf;

use registry_host::RuntimeConfig;
use registry_host::serve::{Running, ServeConfig};

/// Opens `authorize`, logs in as the demo user, clicks Allow (or Deny), and
/// returns where the emulator redirects the browser (the client's callback).
pub async fn at_salesforce(authorize: &str, login_url: &str, allow: bool) -> String {
    registry_host::testing::consent_at(authorize, login_url, allow).await.unwrap()
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
