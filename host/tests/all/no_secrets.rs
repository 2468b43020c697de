//! The released binary, run as an operator runs it (`serve --demo`, debug
//! logging): after a full Obtain New Token, neither its logs nor the database
//! files hold a secret or token in clear.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::redirect::Policy;
use salesforce_emulator::seed::DEMO_CONSUMER_SECRET;

use crate::common;

fn field<'a>(banner: &'a str, label: &str) -> &'a str {
    banner.lines().find_map(|l| l.trim().strip_prefix(label)).unwrap_or_else(|| panic!("{label} in {banner}")).trim()
}

/// Whether `hay` holds something shaped like a Salesforce token or our secret.
fn leaks(hay: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(hay);
    let mut found = vec![];
    if text.contains(DEMO_CONSUMER_SECRET) {
        found.push("the consumer secret".to_string());
    }
    if text.contains("5Aep861") {
        found.push("a refresh token".into());
    }
    if text.contains("aPrx") {
        found.push("an authorization code".into());
    }
    // Access tokens: the 15-character org id, then '!'.
    let bytes = text.as_bytes();
    for i in 0..bytes.len().saturating_sub(16) {
        if bytes[i..].starts_with(b"00D") && bytes[i + 15] == b'!' && bytes[i..i + 15].iter().all(u8::is_ascii_alphanumeric) {
            found.push("an access token".into());
            break;
        }
    }
    found
}

#[test]
fn the_leak_detector_sees_tokens() {
    assert_eq!(leaks(b"Bearer 00D5g0000000001!AQ0AQabc"), vec!["an access token"]);
    assert_eq!(leaks(b"refresh=5Aep861xyz"), vec!["a refresh token"]);
    assert!(leaks(b"nothing to see").is_empty());
}

#[tokio::test]
async fn logs_and_database_hold_no_secret_in_clear() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .args(["--data-dir", data.path().to_str().unwrap(), "serve", "--demo", "--listen", "127.0.0.1:0", "--plugin", test_guests::salesforce_plugin().to_str().unwrap()])
        .env("REGISTRY_HOST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr while the host runs, or a full pipe would stall it.
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).unwrap();
        buf
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("then:") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the host exited early: {banner}");
        banner.push_str(&line);
    }
    let base = field(&banner, "open:").trim_end_matches('/').to_string();
    let admin = field(&banner, "admin login:").split_whitespace().collect::<Vec<_>>();
    let (user, password) = (admin[0], admin[2]);
    let emulator_login = field(&banner, "emulator:").split_whitespace().nth(1).unwrap().to_string();

    let http = reqwest::Client::builder().redirect(Policy::none()).cookie_store(true).build().unwrap();
    let form = http.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let start = form.find("name=\"csrf\" value=\"").unwrap() + 19;
    let login_csrf = form[start..].split('"').next().unwrap().to_string();
    http.post(format!("{base}/login")).form(&[("csrf", login_csrf.as_str()), ("username", user), ("password", password)]).send().await.unwrap();
    let page = http.get(format!("{base}/servers/1")).send().await.unwrap().text().await.unwrap();
    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = page[start..].split('"').next().unwrap().to_string();
    let r = http.post(format!("{base}/servers/1/token")).form(&[("csrf", &csrf)]).send().await.unwrap();
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    let callback = common::at_salesforce(&authorize, &emulator_login, true).await;
    http.get(&callback).send().await.unwrap();
    let page = http.get(format!("{base}/servers/1")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(">Set<"), "{page}");
    http.post(format!("{base}/servers/1/test")).form(&[("csrf", &csrf)]).send().await.unwrap();
    let tested = http.get(format!("{base}/servers/1")).send().await.unwrap().text().await.unwrap();
    assert!(tested.contains("Connection works"));
    assert!(leaks(page.as_bytes()).is_empty() && leaks(tested.as_bytes()).is_empty());

    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = Vec::new();
    out.read_to_end(&mut logs).unwrap();
    logs.extend(err_reader.join().unwrap());
    assert!(String::from_utf8_lossy(&logs).contains("DEBUG"), "debug logging was on");
    assert_eq!(leaks(&logs), Vec::<String>::new(), "secrets in the logs");
    std::thread::sleep(Duration::from_millis(50));
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap().to_string_lossy().starts_with("registry.sqlite3") {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(leaks(&bytes), Vec::<String>::new(), "secrets in {}", path.display());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0, "{} is private", path.display());
            }
        }
    }
}
