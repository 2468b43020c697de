//! Notifications: mail over SMTP and/or a signed webhook when a target is
//! quarantined or resumes, a server needs a new token, removals wait for
//! confirmation, an API budget is reached, or failures pile up. Each
//! condition is sent at most once per window (the last sending time is
//! kept in the database, so a restart does not send it again).

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use sha2::Sha256;

use crate::store::Store;

/// Where notifications go.
#[derive(Clone, Default)]
pub struct NotifyConfig {
    /// SMTP server as a URL (lettre's): `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (TLS), or `smtp://host:25`
    /// (no TLS: a relay on this machine only).
    pub smtp_url: Option<String>,
    /// The sender address.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// A URL that gets each notification as a signed JSON POST.
    pub webhook_url: Option<String>,
    /// The key of the webhook's `X-Registry-Signature: sha256=<HMAC>`.
    pub webhook_secret: Option<String>,
    /// One notification per condition per this long.
    pub window: Duration,
    /// Failed jobs on one target that make a notification.
    pub failure_threshold: i64,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig").field("smtp", &self.smtp_url.is_some()).field("to", &self.to).field("webhook", &self.webhook_url.is_some()).finish()
    }
}

impl NotifyConfig {
    /// Whether anything is configured.
    pub fn enabled(&self) -> bool {
        (self.smtp_url.is_some() && !self.to.is_empty()) || self.webhook_url.is_some()
    }

    /// Checks the configuration at start, so a typo is a clear error rather
    /// than a mail that never comes.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.smtp_url {
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?;
            anyhow::ensure!(!self.to.is_empty(), "--smtp-url is set but no --notify-to address: say who gets the mail");
            let from = self.from.as_deref().unwrap_or("registry@localhost");
            from.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("--notify-from '{from}': {e}"))?;
            for to in &self.to {
                to.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("--notify-to '{to}': {e}"))?;
            }
        }
        if let Some(url) = &self.webhook_url {
            anyhow::ensure!(url.starts_with("https://") || url.starts_with("http://"), "--webhook-url '{url}' is not an http(s) URL");
        }
        Ok(())
    }
}

/// Something an operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A target's calls keep failing: it is quarantined.
    Quarantined { target: String, reason: String },
    /// A quarantined or paused target works again.
    Resumed { target: String },
    /// A server's token is gone; an admin must obtain a new one.
    NeedsToken { server: String, reason: String },
    /// Removals wait for confirmation.
    RemovalsHeld { target: String, count: i64 },
    /// The API budget is spent; work waits.
    BudgetReached { target: String, reason: String },
    /// Failed jobs have piled up on a target.
    Failures { target: String, count: i64 },
}

impl Event {
    /// The condition, for debouncing.
    pub fn key(&self) -> String {
        match self {
            Event::Quarantined { target, .. } => format!("quarantined:{target}"),
            Event::Resumed { target } => format!("resumed:{target}"),
            Event::NeedsToken { server, .. } => format!("needs-token:{server}"),
            Event::RemovalsHeld { target, .. } => format!("removals-held:{target}"),
            Event::BudgetReached { target, .. } => format!("budget:{target}"),
            Event::Failures { target, .. } => format!("failures:{target}"),
        }
    }

    /// A one-line subject.
    pub fn subject(&self) -> String {
        match self {
            Event::Quarantined { target, .. } => format!("Target '{target}' is quarantined"),
            Event::Resumed { target } => format!("Target '{target}' resumed"),
            Event::NeedsToken { server, .. } => format!("OAuth2 server '{server}' needs a new token"),
            Event::RemovalsHeld { target, count } => format!("{count} removals wait for confirmation on '{target}'"),
            Event::BudgetReached { target, .. } => format!("Target '{target}' reached its API budget"),
            Event::Failures { target, count } => format!("{count} failed jobs on '{target}'"),
        }
    }

    /// What happened and what to do.
    pub fn text(&self) -> String {
        match self {
            Event::Quarantined { reason, .. } => format!("{reason}\n\nIts jobs wait; a probe checks the remote system at growing intervals and the target resumes by itself when it works. Nothing is lost."),
            Event::Resumed { .. } => "A probe call succeeded: the target's waiting jobs run again.".into(),
            Event::NeedsToken { reason, .. } => format!("{reason}\n\nOpen the server in the admin UI and click Obtain New Token; its jobs wait until then."),
            Event::RemovalsHeld { .. } => "More records than the target's threshold would be deactivated or deleted. Open the target to confirm or discard them; nothing was removed.".into(),
            Event::BudgetReached { reason, .. } => format!("{reason}\n\nWork waits and resumes when calls free up."),
            Event::Failures { .. } => "Open the provisioning log (filtered to failures) to see the reasons.".into(),
        }
    }
}

/// Sends notifications, debounced.
pub struct Notifier {
    config: NotifyConfig,
    store: Arc<Store>,
}

impl Notifier {
    /// A notifier, or `None` when nothing is configured.
    pub fn new(config: NotifyConfig, store: Arc<Store>) -> Option<Arc<Self>> {
        config.enabled().then(|| Arc::new(Notifier { config, store }))
    }

    /// Sends `event` in the background unless its condition was sent
    /// within the window.
    pub fn notify(self: &Arc<Self>, event: Event) {
        let me = self.clone();
        tokio::spawn(async move {
            let window = me.config.window.as_millis() as i64;
            match me.store.claim_notification(&event.key(), window).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not check the notification window");
                    return;
                }
            }
            if let Err(e) = me.send(&event).await {
                tracing::warn!(event = %event.subject(), error = %format!("{e:#}"), "a notification could not be sent");
            }
        });
    }

    /// Sends now (mail and webhook, whichever are configured).
    pub async fn send(&self, event: &Event) -> anyhow::Result<()> {
        if let Some(url) = &self.config.smtp_url {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.timeout(Some(Duration::from_secs(20))).build();
            let from: Mailbox = self.config.from.as_deref().unwrap_or("registry@localhost").parse()?;
            let mut message = Message::builder().from(from).subject(format!("[registry] {}", event.subject()));
            for to in &self.config.to {
                message = message.to(to.parse()?);
            }
            transport.send(message.body(event.text())?).await?;
        }
        if let Some(url) = &self.config.webhook_url {
            let body = serde_json::to_vec(&serde_json::json!({"subject": event.subject(), "text": event.text(), "detail": event, "at": crate::store::now_ms()}))?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
                .https_or_http()
                .enable_http1()
                .build();
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
            let mut request = hyper::Request::post(url).header("content-type", "application/json");
            if let Some(secret) = &self.config.webhook_secret {
                request = request.header("x-registry-signature", signature(secret, &body));
            }
            let request = request.body(http_body_util::Full::new(bytes_of(body)))?;
            let response = tokio::time::timeout(Duration::from_secs(20), client.request(request)).await.map_err(|_| anyhow::anyhow!("the webhook did not answer within 20 s"))??;
            anyhow::ensure!(response.status().is_success(), "the webhook answered {}", response.status());
        }
        Ok(())
    }
}

fn bytes_of(body: Vec<u8>) -> hyper::body::Bytes {
    hyper::body::Bytes::from(body)
}

/// `sha256=<hex HMAC-SHA256 of the body>`, as the webhook receiver checks it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
