//! The leader's write fence: the leader's controllers write through a Kubernetes client
//! whose requests other than reads pass only while this replica's lease is confirmed
//! unexpired.
//!
//! Losing the lease is noticed by the election only at its next renewal. A leader that was
//! frozen (SIGSTOP, a paused VM, a stalled node) for longer than the lease wakes up with
//! reconciles and requeues due at once, and without a fence they would write before the
//! election learns that a standby leads now. The fence opens until a margin before the
//! expiry of the renewal it last saw in the Lease, by this process's own clock (the clock
//! the holder writes `renewTime` with); a frozen process therefore finds it closed when it
//! wakes, and so does a leader whose renewals hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Errors of the fenced client's inner stack, as kube's client boxes them.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A write refused because the lease is not confirmed.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused {method} {path}: this replica's leader lease is not confirmed (expired at {until_ms} ms since the epoch, or never confirmed); it may have lost the lease"
)]
pub struct FenceClosed {
    /// The request's method.
    pub method: http::Method,
    /// The request's path (no query: nothing secret travels in our paths, but keep it short).
    pub path: String,
    /// Until when the fence was open (milliseconds since the Unix epoch; 0: never).
    pub until_ms: u64,
}

/// Whether writes may pass. Cheap to clone; every clone sees the same state.
#[derive(Debug, Clone)]
pub struct WriteFence {
    /// `u64::MAX`: always open (no election).
    open_until_ms: Arc<AtomicU64>,
}

impl WriteFence {
    /// A fence that never closes: this process leads without an election.
    pub fn always_open() -> Self {
        Self {
            open_until_ms: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// A fence closed until the election confirms a lease.
    pub fn closed() -> Self {
        Self {
            open_until_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether a write may pass now.
    pub fn is_open(&self) -> bool {
        millis(SystemTime::now()) < self.open_until_ms.load(Ordering::Acquire)
    }

    /// Opens the fence until `until` (a moment before the confirmed lease expires).
    pub fn open_until(&self, until: SystemTime) {
        self.open_until_ms.store(millis(until), Ordering::Release);
    }

    /// Closes the fence (the lease is someone else's, or could not be read).
    pub fn close(&self) {
        self.open_until_ms.store(0, Ordering::Release);
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// A Kubernetes client whose requests other than reads are fenced by `fence`: kube's own
/// stack (base URI, authentication, extra headers, retries of 429/503/504, rustls), with
/// each request body checking the fence when the HTTP connection polls it, i.e. as the
/// request is written. A check when the request is made would let a request made just
/// before a freeze go out after it.
pub fn fenced_client(
    config: kube::Config,
    fence: &WriteFence,
) -> Result<kube::Client, kube::Error> {
    use kube::client::ConfigExt;
    // The timeouts kube's own clients have (connect 30 s, read and write 295 s by default):
    // a request the API server never answers ends instead of holding its worker forever.
    let mut connector = hyper_timeout::TimeoutConnector::new(config.rustls_https_connector()?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http: hyper_util::client::legacy::Client<_, FencedBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let fence = fence.clone();
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| {
            tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry())
        }))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_request(move |request: http::Request<kube::client::Body>| {
            let checked = (request.method() != http::Method::GET).then(|| Check {
                fence: fence.clone(),
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
            });
            request.map(|body| FencedBody {
                inner: body,
                check: checked,
            })
        })
        .map_err(|error: hyper_util::client::legacy::Error| -> BoxError { Box::new(error) })
        .service(http);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}

/// What a fenced request body checks before its first byte goes out.
#[derive(Debug)]
struct Check {
    fence: WriteFence,
    method: http::Method,
    path: String,
}

/// A request body that fails, instead of yielding its first frame, while the fence is closed:
/// the API server then never receives a whole request.
#[derive(Debug)]
pub struct FencedBody {
    inner: kube::client::Body,
    /// `None`: a read, or checked already.
    check: Option<Check>,
}

impl http_body::Body for FencedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Some(check) = self.check.take()
            && !check.fence.is_open()
        {
            let closed = FenceClosed {
                method: check.method,
                path: check.path,
                until_ms: check.fence.open_until_ms.load(Ordering::Acquire),
            };
            tracing::warn!(%closed, "write fenced off");
            return Poll::Ready(Some(Err(Box::new(closed))));
        }
        std::pin::Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        // Polled at least once, so that an empty body is checked too.
        self.check.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use super::*;

    fn body(fence: &WriteFence, method: http::Method) -> FencedBody {
        FencedBody {
            inner: kube::client::Body::from(b"{}".to_vec()),
            check: (method != http::Method::GET).then(|| Check {
                fence: fence.clone(),
                method,
                path: String::from("/apis/metal.ironcore.dev/v1alpha1/servers/s-1/status"),
            }),
        }
    }

    /// What the connection gets when it polls the body for its first frame.
    fn first_frame(mut body: FencedBody) -> Result<bytes::Bytes, String> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => Ok(frame.into_data().expect("data")),
            Poll::Ready(Some(Err(error))) => Err(error.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reads_always_pass_and_writes_only_while_the_lease_is_confirmed() {
        let fence = WriteFence::closed();
        assert!(first_frame(body(&fence, http::Method::GET)).is_ok());
        let closed = body(&fence, http::Method::PATCH);
        assert!(!closed.is_end_stream(), "an unchecked body is polled");
        let refused = first_frame(closed).expect_err("closed");
        assert!(
            refused
                .starts_with("refused PATCH /apis/metal.ironcore.dev/v1alpha1/servers/s-1/status"),
            "{refused}"
        );
        fence.open_until(SystemTime::now() + Duration::from_secs(60));
        for method in [
            http::Method::POST,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            assert_eq!(first_frame(body(&fence, method)).as_deref(), Ok(&b"{}"[..]));
        }
        // A process frozen past its lease wakes with the fence's time gone by.
        fence.open_until(SystemTime::now() - Duration::from_millis(1));
        assert!(first_frame(body(&fence, http::Method::PUT)).is_err());
        fence.open_until(SystemTime::now() + Duration::from_secs(60));
        fence.close();
        assert!(!fence.is_open(), "closed when the lease is someone else's");
        assert!(WriteFence::always_open().is_open());
    }
}
