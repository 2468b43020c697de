//! Notifications reach a real SMTP server (a sink speaking SMTP on a real
//! socket, started here) and a real HTTP receiver that checks the webhook's
//! signature: a target quarantined during an outage is announced once,
//! however many probes fail, and its recovery too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use registry_host::domain::Scope;
use registry_host::engine::EngineConfig;
use registry_host::notify::NotifyConfig;
use registry_plugin_runtime::latest::types::GrantType;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::provisioning::Harness;

/// A minimal SMTP server: accepts every message and keeps its text.
pub(crate) async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mail = Arc::new(Mutex::new(Vec::new()));
    let kept = mail.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink.test ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink.test\r\n",
                        "DATA" => {
                            write.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut text = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                text.push_str(&l);
                                text.push('\n');
                            }
                            kept.lock().unwrap().push(text);
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, mail)
}

/// An HTTP receiver that keeps bodies whose signature is right, and
/// counts the others.
async fn webhook(secret: &'static str) -> (String, Arc<Mutex<Vec<serde_json::Value>>>, Arc<Mutex<usize>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let bad = Arc::new(Mutex::new(0));
    let (g, b) = (got.clone(), bad.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (g, b) = (g.clone(), b.clone());
            async move {
                let sent = headers.get("x-registry-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
                if sent != registry_host::notify::signature(secret, &body) {
                    *b.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                g.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got, bad)
}

#[tokio::test]
async fn a_quarantine_and_the_recovery_are_mailed_and_posted_once_each() {
    let (port, mail) = smtp_sink().await;
    let (url, hooks, bad) = webhook("hook-secret").await;
    let notify = NotifyConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        from: Some("registry@example.org".into()),
        to: vec!["ops@example.org".into()],
        webhook_url: Some(url),
        webhook_secret: Some("hook-secret".into()),
        window: Duration::from_secs(3600),
        failure_threshold: 10,
    };
    notify.check().unwrap();
    let config = EngineConfig { workers: 1, idle_poll: Duration::from_millis(20), notify, ..EngineConfig::default() };
    let h = Harness::with_config(GrantType::ClientCredentials, config).await;
    let t = h.target("Contacts", &[("object", "Contact"), ("external_id_field", "Registry_ID__c")], Scope::default()).await;
    h.emu.outage(120);
    let people: Vec<_> = (0..20).map(|i| crate::common::person(&format!("N{i:03}"), "Note", &format!("Person {i}"), &format!("n{i}@example.org"))).collect();
    h.store.import_people(people, |_| {}).await.unwrap();
    let step = Duration::from_secs(5 * 60);
    for _ in 0..200 {
        if h.engine.run_once().await.unwrap() == 0 {
            h.store.advance_clock(step);
            h.emu.advance_clock(step);
        }
        if h.store.job_counts(Some(t)).await.unwrap() == (0, 0) {
            break;
        }
    }
    assert_eq!(h.store.job_counts(Some(t)).await.unwrap(), (0, 0));
    // Sending happens in the background.
    for _ in 0..100 {
        if mail.lock().unwrap().len() >= 2 && hooks.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mail = mail.lock().unwrap().clone();
    let subjects: Vec<&str> = mail.iter().filter_map(|m| m.lines().find_map(|l| l.strip_prefix("Subject: "))).collect();
    assert_eq!(subjects, ["[registry] Target 'Contacts' is quarantined", "[registry] Target 'Contacts' resumed"], "{mail:?}");
    assert!(mail[0].contains("To: ops@example.org") && mail[0].contains("From: registry@example.org"), "{}", mail[0]);
    let hooks = hooks.lock().unwrap().clone();
    let events: Vec<&str> = hooks.iter().map(|h| h["detail"]["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["quarantined", "resumed"]);
    assert!(hooks[0]["detail"]["reason"].as_str().unwrap().starts_with("quarantined:"), "{:?}", hooks[0]);
    assert_eq!(*bad.lock().unwrap(), 0, "every webhook body was signed");
}
