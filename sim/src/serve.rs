//! Puts a [`Bmc`] on the network: HTTP/1.1, optionally TLS, with the faults that live at
//! the connection level (latency, dropped connections, hung requests).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::bmc::{Bmc, Reply, Request};

/// Largest request body a BMC reads.
const MAX_BODY: usize = 1 << 20;
/// How long a hung request stays unanswered.
const HANG: Duration = Duration::from_secs(60);

/// The error that makes hyper close a connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
struct Dropped;

/// A TLS acceptor for a certificate and key in PEM.
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("certificate: {error}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|error| format!("key: {error}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|error| error.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections for `bmc` until the task is aborted.
pub async fn serve(bmc: Arc<Bmc>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(bmc = bmc.spec().index, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let bmc = bmc.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        connection(bmc, stream).await;
                    }
                }
                None => connection(bmc, stream).await,
            }
        });
    }
}

async fn connection<S>(bmc: Arc<Bmc>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| answer(bmc.clone(), request));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn answer(
    bmc: Arc<Bmc>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let latency = bmc.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(response(413, "text/plain", b"body too large".to_vec())),
    };
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let auth_token = parts
        .headers
        .get("x-auth-token")
        .and_then(|value| value.to_str().ok());
    let if_match = parts
        .headers
        .get(hyper::header::IF_MATCH)
        .and_then(|value| value.to_str().ok());
    let reply = bmc.handle(&Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization,
        auth_token,
        body: &body,
        if_match,
    });
    Ok(match reply {
        Reply::Json(status, value) => response(
            status,
            "application/json",
            serde_json::to_vec(&value).unwrap_or_default(),
        ),
        Reply::Empty(status) => response(status, "text/plain", Vec::new()),
        Reply::Unauthorized => {
            let mut denied = response(
                401,
                "application/json",
                br#"{"error":{"code":"Base.1.8.GeneralError","message":"Unauthorized","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.InsufficientPrivilege"}]}}"#.to_vec(),
            );
            denied.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"ferrometal-sim\""),
            );
            denied
        }
        Reply::Html(status, page) => response(status, "text/html", page.into_bytes()),
        Reply::SessionCreated {
            token,
            location,
            body,
        } => {
            let mut created = response(
                201,
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            );
            for (name, value) in [("x-auth-token", token), ("location", location)] {
                if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                    created.headers_mut().insert(name, value);
                }
            }
            created
        }
        Reply::Created { location, body } => {
            let mut created = response(
                201,
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            );
            if let Ok(value) = hyper::header::HeaderValue::from_str(&location) {
                created.headers_mut().insert(hyper::header::LOCATION, value);
            }
            created
        }
        Reply::Drop => return Err(Dropped),
        Reply::Hang => {
            tokio::time::sleep(HANG).await;
            response(504, "text/plain", b"gateway timeout".to_vec())
        }
    })
}
