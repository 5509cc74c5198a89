//! The HTTP and HTTPS listeners (control plane, network I/O; never on the media path): accepts
//! TCP connections, does the TLS handshake on the HTTPS one, serves the router over HTTP/1.1 or
//! HTTP/2 (ALPN `h2` or the HTTP/2 preface, RFC 9113 §3) with upgrades (WebSocket chat), closes
//! idle connections, and drains every connection on shutdown.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// `[http_timeouts]` in `onair.toml`: when both listeners close connections.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTimeouts {
    /// A connection with no request in flight for this long is closed (HTTP/1.1 keep-alive,
    /// HTTP/2, and a connection that never sends a request); an HTTP/1.1 request whose headers
    /// take longer is refused. Requests being answered never count as idle: LL-HLS blocking
    /// reloads, long responses and WebSocket upgrades are not cut.
    pub idle_secs: u64,
    /// Time allowed for the TLS handshake of an HTTPS connection.
    pub tls_handshake_secs: u64,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            idle_secs: 30,
            tls_handshake_secs: 10,
        }
    }
}

impl HttpTimeouts {
    /// Non-zero, at most an hour.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: u64| (1..=3600).contains(&v);
        if !ok(self.idle_secs) || !ok(self.tls_handshake_secs) {
            return Err("http_timeouts values must be within 1..=3600 seconds".into());
        }
        Ok(())
    }
}

/// Serves `router` on the plain `http` listener and, when given, on the HTTPS listener, until
/// `stop`; then waits for open connections to finish their requests.
pub fn spawn(
    http: TcpListener,
    https: Option<super::tls::HttpsListener>,
    router: Router,
    timeouts: &HttpTimeouts,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let timeouts = timeouts.clone();
    tokio::spawn(async move {
        let connections = TaskTracker::new();
        let tls = match &https {
            Some(h) => Some(
                h.tls
                    .server_config()
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            ),
            None => None,
        };
        let plain = accept_loop(http, None, &router, &timeouts, &stop, &connections);
        let secure = async {
            match (https, tls) {
                (Some(h), Some(config)) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    accept_loop(
                        h.listener,
                        Some(acceptor),
                        &router,
                        &timeouts,
                        &stop,
                        &connections,
                    )
                    .await
                }
                _ => stop.cancelled().await,
            }
        };
        tokio::join!(plain, secure);
        connections.close();
        connections.wait().await;
        Ok(())
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: &Router,
    timeouts: &HttpTimeouts,
    stop: &CancellationToken,
    connections: &TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (router, timeouts, stop, tls) =
            (router.clone(), timeouts.clone(), stop.clone(), tls.clone());
        connections.spawn(async move {
            match tls {
                None => serve_connection(stream, peer, router, &timeouts, stop).await,
                Some(acceptor) => {
                    let handshake = Duration::from_secs(timeouts.tls_handshake_secs);
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(tls_stream, peer, router, &timeouts, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection until the client closes it, it stays idle past the timeout, or the
/// server stops.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    timeouts: &HttpTimeouts,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle = Duration::from_secs(timeouts.idle_secs);
    let activity = Arc::new(Activity::new());
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        let guard = service_activity.begin();
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|never| match never {});
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(idle.min(Duration::from_secs(20))))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(256);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let wait = activity.idle_check_in(idle);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(wait), if !draining => {
                if activity.idle_for() >= idle {
                    tracing::debug!(%peer, "closing an idle HTTP connection");
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Requests in flight on one connection and when it last became idle.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when `in_flight` last dropped to zero.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// How long the connection has been idle (zero while a request is in flight).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(since)
    }

    /// When to look again: when the idle time would run out, or a full period while busy.
    fn idle_check_in(&self, idle: Duration) -> Duration {
        let left = idle.saturating_sub(self.idle_for());
        left.max(Duration::from_millis(50))
    }
}

/// Held from a request's arrival until its response body is finished or dropped.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let now = self.0.epoch.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct Tracked {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_only_without_requests() {
        let a = Arc::new(Activity::new());
        let g = a.begin();
        assert_eq!(a.idle_for(), Duration::ZERO);
        let second = a.begin();
        drop(g);
        assert_eq!(a.idle_for(), Duration::ZERO, "one request still in flight");
        drop(second);
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.idle_for() >= Duration::from_millis(20));
        assert!(a.idle_check_in(Duration::from_secs(1)) <= Duration::from_millis(980));
    }

    #[test]
    fn timeouts_are_bounded() {
        assert!(HttpTimeouts::default().validate().is_ok());
        let zero = HttpTimeouts {
            idle_secs: 0,
            ..HttpTimeouts::default()
        };
        assert!(zero.validate().is_err());
    }
}
