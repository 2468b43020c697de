//! The sender behind every plugin request that the allowlist let through:
//! HTTP/1.1 with connections kept alive and reused across calls (a call is
//! one instance, but the registry talks to the same few hosts all day), and
//! one TLS configuration for the process instead of one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, WasiBody};

/// Idle connections kept per host.
const IDLE_PER_HOST: usize = 16;
/// Time to connect (TCP and TLS) before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type Key = (bool, String);

fn idle() -> &'static Mutex<HashMap<Key, Vec<SendRequest<WasiBody>>>> {
    static IDLE: OnceLock<Mutex<HashMap<Key, Vec<SendRequest<WasiBody>>>>> = OnceLock::new();
    IDLE.get_or_init(Default::default)
}

fn tls() -> Arc<rustls::ClientConfig> {
    static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    })
    .clone()
}

/// An idle connection to `key` that can take a request now, if any.
/// Closed ones are dropped; ones still busy with an earlier response's body
/// stay for later.
fn checkout(key: &Key) -> Option<SendRequest<WasiBody>> {
    let mut idle = idle().lock().unwrap_or_else(|e| e.into_inner());
    let list = idle.get_mut(key)?;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    list.retain(|s| !s.is_closed());
    let ready = list.iter_mut().position(|s| matches!(s.poll_ready(&mut cx), Poll::Ready(Ok(()))))?;
    Some(list.swap_remove(ready))
}

fn checkin(key: Key, sender: SendRequest<WasiBody>) {
    let mut idle = idle().lock().unwrap_or_else(|e| e.into_inner());
    let list = idle.entry(key).or_default();
    list.retain(|s| !s.is_closed());
    if list.len() < IDLE_PER_HOST {
        list.push(sender);
    }
}

async fn connect(key: &Key) -> Result<SendRequest<WasiBody>, Error> {
    let (use_tls, authority) = key;
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority.as_str())).await {
        Ok(s) => s.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    tcp.set_nodelay(true).ok();
    let host = authority.rsplit_once(':').map_or(authority.as_str(), |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let (sender, conn) = if *use_tls {
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(tls()).connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        (sender, Box::pin(async move { conn.await }) as std::pin::Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        (sender, Box::pin(async move { conn.await }) as std::pin::Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>)
    };
    // The connection lives on between calls; it ends when either side closes it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `request` on a reused or new connection; the response body streams
/// from it, and the connection goes back to the idle set for the next call.
pub async fn send(mut request: http::Request<WasiBody>) -> Result<http::Response<hyper::body::Incoming>, Error> {
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
    let key: Key = (use_tls, authority);
    let (mut sender, reused) = match checkout(&key) {
        Some(s) => (s, true),
        None => (connect(&key).await?, false),
    };
    let response = match sender.try_send_request(request).await {
        Ok(r) => r,
        Err(mut e) => match e.take_message() {
            // The server closed a kept-alive connection before the request
            // went out: nothing was sent, so send it on a new one.
            Some(request) if reused => {
                sender = connect(&key).await?;
                sender.send_request(request).await?
            }
            _ => return Err(e.into_error().into()),
        },
    };
    checkin(key, sender);
    Ok(response)
}
