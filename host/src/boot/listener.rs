//! Serves the boot server's routes (and the registry's) over HTTP/1.1 with the limits a
//! shared boot network needs: machines we do not control can open connections and send
//! nothing, or send a body a byte at a time.
//!
//! - **Connections** are capped ([`HttpLimits::max_connections`]); one over the cap is closed
//!   at once (counted) rather than left waiting, so a machine's retry gets the next free slot.
//! - **Headers** must arrive within [`HttpLimits::header_timeout`], which also bounds how long
//!   a kept-alive connection may sit idle before its next request (hyper's header-read timer
//!   runs whenever a connection waits for a request head).
//! - **Bodies** must arrive whole within [`HttpLimits::body_timeout`] (a total deadline, not a
//!   per-read one, so a slow sender cannot stretch it); each route limits the body's size.
//!
//! Responses are not bounded in time: a machine downloading a large layer over a slow link
//! is legitimate, and the connection cap bounds how many can do so at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_service::Service;

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; further ones are closed as they are accepted.
    pub max_connections: usize,
    /// How long a request's head may take to arrive, and how long a kept-alive connection
    /// may wait idle for its next request.
    pub header_timeout: Duration,
    /// How long a request's whole body may take to arrive.
    pub body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Largest request head accepted (start line and headers); boot requests are a few hundred
/// bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Connection counts of a listener.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    open: Gauge,
    closed: Family<OutcomeLabels, Counter>,
}

impl ConnectionMetrics {
    /// Registers `ferrometal_boot_connections_open` and `ferrometal_boot_connections_total`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("ferrometal");
        registry.register(
            "boot_connections_open",
            "Connections the boot server (and registry) is serving now",
            self.open.clone(),
        );
        registry.register(
            "boot_connections",
            "Boot server connections by how they ended: closed (by either side), timed_out \
             (headers or an idle keep-alive too slow), refused (over the connection limit), \
             error",
            self.closed.clone(),
        );
    }

    pub(crate) fn ended(&self, outcome: &'static str) {
        self.closed.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Connections open now.
    pub fn open(&self) -> i64 {
        self.open.get()
    }

    /// Connections that ended with `outcome` (`closed`, `timed_out`, `refused`, `error`).
    pub fn ended_with(&self, outcome: &'static str) -> u64 {
        self.closed.get_or_create(&OutcomeLabels { outcome }).get()
    }
}

/// A listening socket on `address`. The IPv6 wildcard (`[::]:port`) always listens on both
/// families (IPv4 clients appear as IPv4-mapped addresses), whatever the host's
/// `net.ipv6.bindv6only`, so one boot server serves a dual-stack boot network.
pub fn bind(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if address.is_ipv6() && address.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Serves `app` on `listener` within `limits` until the listener fails for good or the task
/// is dropped (which closes every connection). Handlers see the peer address as
/// [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    metrics: ConnectionMetrics,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .keep_alive(true);
    let mut connections = JoinSet::new();
    let mut refused_logged = false;
    loop {
        // Reap finished connections so the set does not grow with the listener's age.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if transient(&error) => {
                // Out of file descriptors or a connection reset before it was accepted:
                // the listener itself is fine.
                tracing::warn!(%error, "cannot accept a boot server connection; pausing");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.ended("refused");
            if !refused_logged {
                tracing::warn!(
                    limit = limits.max_connections,
                    %peer,
                    "boot server connection limit reached; closing new connections until one ends \
                     (counted in ferrometal_boot_connections_total{{outcome=\"refused\"}})"
                );
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let _ = stream.set_nodelay(true);
        let service = RequestService {
            app: app.clone(),
            peer,
            body_timeout: limits.body_timeout,
        };
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let metrics = metrics.clone();
        metrics.open.inc();
        connections.spawn(async move {
            let outcome = match connection.await {
                Ok(()) => "closed",
                Err(error) if error.is_timeout() => "timed_out",
                Err(error) if error.is_incomplete_message() || error.is_canceled() => "closed",
                Err(error) => {
                    tracing::debug!(%peer, %error, "boot server connection ended with an error");
                    "error"
                }
            };
            metrics.ended(outcome);
            metrics.open.dec();
            drop(slot);
        });
    }
}

/// Accept errors that concern one connection or pass with time, not the listener.
fn transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
}

/// One connection's requests: the peer address added, the body under its deadline.
#[derive(Clone)]
struct RequestService {
    app: Router,
    peer: SocketAddr,
    body_timeout: Duration,
}

impl Service<Request<Incoming>> for RequestService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = <Router as Service<Request<Body>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let deadline = self.body_timeout;
        let mut request = request.map(|body| Body::new(DeadlineBody::new(body, deadline)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.app.call(request)
    }
}

/// A request body that fails once its deadline passes before it is complete.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, within: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

/// The body did not arrive within the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use axum::routing::{get, post};

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            )
    }

    async fn start(limits: HttpLimits) -> (SocketAddr, ConnectionMetrics) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let metrics = ConnectionMetrics::default();
        tokio::spawn(serve(listener, app(), limits, metrics.clone()));
        (address, metrics)
    }

    /// Sends `request` on a fresh connection and reads until the server closes it.
    fn exchange(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.write_all(request).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handlers_see_the_peer_and_bodies_arrive_whole() {
        let (address, _) = start(HttpLimits::default()).await;
        let answer = tokio::task::spawn_blocking(move || {
            exchange(
                address,
                b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ) + &exchange(
                address,
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            )
        })
        .await
        .expect("client");
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("127.0.0.1:"), "{answer}");
        assert!(answer.contains("5 bytes"), "{answer}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_connection_and_a_slow_body_are_cut_off() {
        let limits = HttpLimits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let (address, metrics) = start(limits).await;
        let (silent, slow) = tokio::task::spawn_blocking(move || {
            // Nothing sent: the server closes the connection after the header timeout.
            let silent = exchange(address, b"");
            // Headers promise 5 bytes, 1 arrives: the body's deadline passes.
            let slow = exchange(
                address,
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nh",
            );
            (silent, slow)
        })
        .await
        .expect("client");
        assert!(
            silent.is_empty() || silent.starts_with("HTTP/1.1 408"),
            "{silent}"
        );
        assert!(slow.starts_with("HTTP/1.1 400"), "{slow}");
        assert_eq!(metrics.ended_with("timed_out"), 1);
        assert_eq!(metrics.open(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_over_the_limit_are_closed_and_counted() {
        let limits = HttpLimits {
            max_connections: 2,
            ..HttpLimits::default()
        };
        let (address, metrics) = start(limits).await;
        let answers = tokio::task::spawn_blocking(move || {
            let held: Vec<TcpStream> = (0..2)
                .map(|_| TcpStream::connect(address).expect("connect"))
                .collect();
            // Let the server accept the two held connections first.
            std::thread::sleep(Duration::from_millis(300));
            let over = exchange(address, b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
            drop(held);
            std::thread::sleep(Duration::from_millis(300));
            let after = exchange(
                address,
                b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            (over, after)
        })
        .await
        .expect("client");
        assert_eq!(answers.0, "", "closed without an answer");
        assert!(answers.1.starts_with("HTTP/1.1 200 OK"), "{}", answers.1);
        assert_eq!(metrics.ended_with("refused"), 1);
    }
}
