//! Wake-ups between nodes with LISTEN/NOTIFY: a node that queued jobs or
//! got a token tells the others, whose idle workers start at once instead
//! of at their next poll. Notifies are debounced per process (a burst of
//! changes sends one), since each NOTIFY takes a database-wide lock at
//! commit; and the slow poll stays, since a notification can be missed
//! (a reconnect, or a pooler in transaction mode, where LISTEN does not
//! work).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

use super::PgStore;
use crate::store::StoreError;

/// What a notification wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Jobs were queued (or freed: a target enabled, a pause ended).
    Jobs,
    /// A server got a usable token: jobs waiting for it may run.
    Tokens,
}

impl Topic {
    fn channel(self) -> &'static str {
        match self {
            Topic::Jobs => "registry_jobs",
            Topic::Tokens => "registry_tokens",
        }
    }
}

/// The debounce window: at most one NOTIFY per topic this often.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// A node's side of the wake-ups: what it sends, debounced, and what the
/// others' notifications wake here.
#[derive(Clone, Default)]
pub struct Wakeups {
    jobs: Arc<Notify>,
    tokens: Arc<Notify>,
    to_send_jobs: Arc<Notify>,
    to_send_tokens: Arc<Notify>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl Wakeups {
    /// Woken when another node (or this one) says `topic` changed. A
    /// waiter registers (`Notified::enable`) before it looks for work, so
    /// that a wake-up between its look and its wait is not lost.
    pub fn woken(&self, topic: Topic) -> Arc<Notify> {
        match topic {
            Topic::Jobs => self.jobs.clone(),
            Topic::Tokens => self.tokens.clone(),
        }
    }

    /// Tells the other nodes about `topic`, within the debounce window;
    /// called after the change commits, or they could look too early.
    pub fn tell(&self, topic: Topic) {
        match topic {
            Topic::Jobs => self.to_send_jobs.notify_one(),
            Topic::Tokens => self.to_send_tokens.notify_one(),
        }
    }

    /// NOTIFYs sent and notifications received so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

impl PgStore {
    /// Starts this node's wake-ups: a dedicated connection LISTENs (and
    /// reconnects when it drops, waking everything, since notifications
    /// may have been missed), and each topic's NOTIFYs go out debounced.
    /// They run until the runtime stops.
    pub async fn start_wakeups(&self, url: &str) -> Result<Wakeups, StoreError> {
        let wakeups = Wakeups::default();
        let config = super::tls::Connection::parse(url)?;
        // The first connection is made here, so that a bad URL fails now.
        let first = listen(&config, &wakeups).await?;
        let (config2, w) = (config.clone(), wakeups.clone());
        tokio::spawn(async move {
            let mut connection = Some(first);
            loop {
                if let Some(done) = connection.take() {
                    let _ = done.await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                match listen(&config2, &w).await {
                    Ok(c) => {
                        connection = Some(c);
                        // Listening again: whatever was said while it was
                        // down is unknown, so everyone looks.
                        w.jobs.notify_waiters();
                        w.tokens.notify_waiters();
                    }
                    Err(e) => tracing::warn!(error = %e, "the wake-up connection to PostgreSQL failed; the slow poll carries on meanwhile"),
                }
            }
        });
        for topic in [Topic::Jobs, Topic::Tokens] {
            let (store, w) = (self.clone(), wakeups.clone());
            tokio::spawn(async move {
                let pending = match topic {
                    Topic::Jobs => w.to_send_jobs.clone(),
                    Topic::Tokens => w.to_send_tokens.clone(),
                };
                loop {
                    pending.notified().await;
                    // Whatever else is told meanwhile rides on this one.
                    tokio::time::sleep(DEBOUNCE).await;
                    match store.notify(topic).await {
                        Ok(()) => {
                            w.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "could not tell the other nodes; their slow poll will find the work"),
                    }
                }
            });
        }
        Ok(wakeups)
    }

    /// Tells every listening node about `topic` now, without the debounce:
    /// for a process that is no node, such as a command that queued work.
    pub async fn notify(&self, topic: Topic) -> Result<(), StoreError> {
        self.client().await?.execute("SELECT pg_notify($1, $2)", &[&topic.channel(), &self.node]).await?;
        Ok(())
    }
}

/// A connection LISTENing on every topic, its messages forwarded to
/// `wakeups`; the future that ends when it drops.
async fn listen(connection: &super::tls::Connection, wakeups: &Wakeups) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let mut config = connection.config.clone();
    // A half-open connection (the server gone without a word) is noticed
    // in about a minute, then listened for again.
    config.keepalives(true).keepalives_idle(Duration::from_secs(30));
    match &connection.tls {
        Some(tls) => listen_with(&config, tls.clone(), wakeups).await,
        None => listen_with(&config, NoTls, wakeups).await,
    }
}

async fn listen_with<T>(config: &tokio_postgres::Config, tls: T, wakeups: &Wakeups) -> Result<tokio::task::JoinHandle<()>, StoreError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let w = wakeups.clone();
    let messages = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    w.received.fetch_add(1, Ordering::Relaxed);
                    match n.channel() {
                        "registry_jobs" => w.jobs.notify_waiters(),
                        "registry_tokens" => w.tokens.notify_waiters(),
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the wake-up connection to PostgreSQL dropped");
                    return;
                }
            }
        }
    });
    client.batch_execute("LISTEN registry_jobs; LISTEN registry_tokens").await?;
    // The client lives as long as its connection does.
    Ok(tokio::spawn(async move {
        let _client = client;
        let _ = messages.await;
    }))
}
