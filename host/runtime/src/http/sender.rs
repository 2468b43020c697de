//! The sender behind every plugin request that the allowlist let through:
//! HTTP/1.1 with connections kept alive and reused across calls (a call is
//! one instance, but the registry talks to the same few hosts all day), and
//! one TLS configuration per runtime instead of one per request. The timeouts
//! a plugin sets in `request-options` are honoured, each capped by the
//! call's own deadline.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::Scheme;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Idle connections kept per host.
const IDLE_PER_HOST: usize = 16;
/// Time to connect (TCP and TLS) when the plugin sets no connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type Key = (bool, String);

/// Kept-alive connections and the TLS configuration; owned by a
/// [`Runtime`](crate::Runtime), shared by its calls. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    idle: Arc<Mutex<HashMap<Key, Vec<SendRequest<WasiBody>>>>>,
    tls: Arc<rustls::ClientConfig>,
    stats: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    waiting_ns: AtomicU64,
}

/// What plugins' requests have cost so far: how many went out, and the
/// time between each leaving and its response's head arriving (the remote
/// system's work and the network), summed. A call's time less this is the
/// sandbox's and the plugin's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests sent.
    pub requests: u64,
    /// Time spent waiting for responses, over all requests.
    pub waiting: Duration,
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender {
    /// A sender with no connections yet, trusting the webpki roots.
    pub fn new() -> Self {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self { idle: Arc::default(), tls: Arc::new(tls), stats: Arc::default() }
    }

    /// The requests sent so far and the time spent waiting on them.
    pub fn stats(&self) -> HttpStats {
        HttpStats {
            requests: self.stats.requests.load(Ordering::Relaxed),
            waiting: Duration::from_nanos(self.stats.waiting_ns.load(Ordering::Relaxed)),
        }
    }

    /// Idle connections held now, over all hosts.
    pub fn idle_connections(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).values().map(Vec::len).sum()
    }

    /// An idle connection to `key` that can take a request now, if any.
    /// Closed ones are dropped; ones still busy with an earlier response's
    /// body stay for later.
    fn checkout(&self, key: &Key) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        list.retain(|s| !s.is_closed());
        let ready = list.iter_mut().position(|s| matches!(s.poll_ready(&mut cx), Poll::Ready(Ok(()))))?;
        Some(list.swap_remove(ready))
    }

    fn checkin(&self, key: Key, sender: SendRequest<WasiBody>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < IDLE_PER_HOST {
            list.push(sender);
        }
    }

    async fn connect(&self, key: &Key, timeout: Duration) -> Result<SendRequest<WasiBody>, Error> {
        let (use_tls, authority) = key;
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(authority.as_str())).await {
            Ok(s) => s.map_err(Error::Connect)?,
            Err(_) => return Err(Error::ConnectionTimeout),
        };
        tcp.set_nodelay(true).ok();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        type Conn = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;
        let (sender, conn): (_, Conn) = if *use_tls {
            let name =
                rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?;
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            let stream = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            (sender, Box::pin(conn))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
            (sender, Box::pin(conn))
        };
        // The connection lives on between calls; it ends when either side closes it.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `request` on a reused or new connection under the plugin's
    /// `options`; the response body streams from it, and the connection goes
    /// back to the idle set for the next call.
    pub async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<http::Response<TimedBody>, Error> {
        let uri = request.uri();
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
        let authority = match authority.port() {
            Some(_) => authority.to_string(),
            None => format!("{authority}:{}", if use_tls { 443 } else { 80 }),
        };
        // On the wire the request line carries only the path.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
        let connect_timeout = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
        let key: Key = (use_tls, authority);
        let started = Instant::now();
        let (mut sender, reused) = match self.checkout(&key) {
            Some(s) => (s, true),
            None => (self.connect(&key, connect_timeout).await?, false),
        };
        let first_byte = async {
            match sender.try_send_request(request).await {
                Ok(r) => Ok(r),
                Err(mut e) => match e.take_message() {
                    // The server closed a kept-alive connection before the
                    // request went out: nothing was sent, so send it on a new one.
                    Some(request) if reused => {
                        sender = self.connect(&key, connect_timeout).await?;
                        Ok(sender.send_request(request).await?)
                    }
                    _ => Err(Error::from(e.into_error())),
                },
            }
        };
        let response = match options.first_byte_timeout {
            Some(limit) => tokio::time::timeout(limit, first_byte).await.map_err(|_| Error::ConnectionReadTimeout)??,
            None => first_byte.await?,
        };
        self.checkin(key, sender);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.waiting_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let between = options.between_bytes_timeout.map(|d| {
            // Tokio panics on a zero interval.
            let mut interval = tokio::time::interval(d.max(Duration::from_nanos(1)));
            interval.reset();
            interval
        });
        Ok(response.map(|incoming| TimedBody { incoming, between }))
    }
}

/// A response body that fails with `connection-read-timeout` when the plugin
/// asked for a `between-bytes-timeout` and no frame came in that long.
pub struct TimedBody {
    incoming: hyper::body::Incoming,
    between: Option<tokio::time::Interval>,
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = self.between.as_mut() {
                    t.reset();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.between.as_mut() {
                Some(t) => {
                    ready!(t.poll_tick(cx));
                    Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                }
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
