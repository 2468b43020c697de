//! A well-known third-party client, jsforce 3 (Node.js), used as its users
//! use it against the emulator: only the login URL points here. The script
//! asserts each step; this test checks it ran clean and cross-checks the
//! emulator's state. `npm ci` installs the pinned jsforce on first run.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/jsforce")
}

fn ensure_installed() {
    let dir = client_dir();
    if dir.join("node_modules/jsforce/package.json").exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("npm (Node.js) is needed for the jsforce check; install nodejs and npm");
    assert!(out.status.success(), "npm ci failed in {}:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn jsforce_works_against_the_emulator_unchanged() {
    ensure_installed();
    let emu = start();
    let app = emu.app();
    let org = &emu.orgs()[0];
    let out = Command::new("node")
        .arg("check.js")
        .args([&emu.login_url(), &app.consumer_key, &app.consumer_secret, CALLBACK, USER, PASSWORD, &org.id])
        .current_dir(client_dir())
        // jsforce honours proxy variables with no NO_PROXY support; loopback must go direct.
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "jsforce check failed:\n{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let facts: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script prints its facts");
    assert_eq!(facts["instanceUrl"], org.instance_url.as_str());
    assert_eq!(facts["refreshes"], 1);
    assert_eq!(facts["queried"], 2100);

    let log = emu.request_log();
    let count = |method: &str, path: &str| log.iter().filter(|r| r.method == method && r.path == path).count();
    assert_eq!(count("POST", "/services/data/v62.0/composite/sobjects"), 11, "jsforce batches through sObject Collections");
    let pages = log.iter().filter(|r| r.method == "GET" && r.path.starts_with("/services/data/v62.0/query/01g")).count();
    assert_eq!(pages, 1, "autoFetch followed nextRecordsUrl once for 2,100 records");
    assert!(log.iter().any(|r| r.path == "/services/oauth2/token" && r.body.contains("grant_type=refresh_token")));
    assert!(log.iter().any(|r| r.path == "/services/oauth2/revoke" && r.status == 200));
    assert_eq!(emu.live_records("Contact").len(), 2101);
}
