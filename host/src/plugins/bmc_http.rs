//! The host side of `bmc-http`: HTTP to the BMC of the current call and nowhere else.
//!
//! The plugin supplies a path; the host fixes the origin, applies the BMC's TLS policy,
//! adds authentication, refuses headers that would subvert any of that, follows no redirects,
//! caps the response at [`MAX_RESPONSE_BYTES`] and derives every timeout from the call's
//! deadline. Requests go straight to the BMC: proxy environment variables (`HTTP_PROXY`,
//! `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, any case) are ignored, so the BMC's credentials and
//! traffic never pass through a proxy the operator's environment happens to name.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};

use super::metrics::PluginMetrics;
use super::runtime::PluginIdentity;
use super::types::{BmcEndpoint, TlsPolicy};

/// Largest response body handed to a plugin.
pub const MAX_RESPONSE_BYTES: u64 = 8 << 20;

/// Headers a plugin may not set: the host owns routing, framing and authentication.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-auth-token",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "proxy-authorization",
];

/// Request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

/// How the host authenticates a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    /// HTTP Basic with the call's credential.
    Basic,
    /// A session token, sent as `X-Auth-Token`.
    Token(String),
}

/// A plugin's request, already decoded from the bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginRequest {
    pub(crate) method: Method,
    pub(crate) path_and_query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) auth: Auth,
}

/// The BMC's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Why there is no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpFailure {
    Denied(String),
    /// The call's deadline passed (every request's timeout is what is left of it).
    Timeout,
    Connect(String),
    Tls(String),
    TooLarge(u64),
    Other(String),
}

/// Everything the host needs to serve `bmc-http` during one driver call.
pub(crate) struct BmcCall {
    pub(crate) endpoint: BmcEndpoint,
    client: reqwest::Client,
    deadline: Instant,
    plugin: PluginIdentity,
    metrics: PluginMetrics,
}

/// What sets one HTTP client apart from another: how it verifies BMC certificates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    /// `http` BMCs: no TLS at all.
    Plain,
    /// Any certificate.
    Insecure,
    /// Certificates chaining to this PEM bundle (empty: none).
    CaBundle(String),
}

/// HTTP clients to BMCs, built once per TLS policy and shared by every driver call: the CA
/// bundle is parsed and the TLS configuration set up once, not per call, and each client
/// keeps a small pool of connections per BMC origin.
#[derive(Debug, Default)]
pub(crate) struct HttpClients {
    clients: std::sync::Mutex<std::collections::HashMap<ClientKey, reqwest::Client>>,
}

impl HttpClients {
    /// The client for `endpoint`'s scheme and TLS policy (cheap to clone: it is shared).
    pub(crate) fn for_endpoint(&self, endpoint: &BmcEndpoint) -> Result<reqwest::Client, String> {
        let key = match (&*endpoint.scheme, &endpoint.tls) {
            ("https", TlsPolicy::Insecure) => ClientKey::Insecure,
            ("https", TlsPolicy::CaBundle(pem)) => ClientKey::CaBundle(pem.clone()),
            _ => ClientKey::Plain,
        };
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client =
            build_client(&key).map_err(|error| format!("{error} (BMC {})", endpoint.origin()))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// How many distinct clients were built.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

fn build_client(key: &ClientKey) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        // BMCs sit on the management network; a proxy configured for the Pod's other traffic
        // must not see their credentials (reqwest reads the proxy variables by default).
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferrometal/", env!("CARGO_PKG_VERSION")))
        // BMCs have few connections to give: keep one idle per BMC, briefly.
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(30));
    builder = match key {
        ClientKey::Plain => builder,
        ClientKey::Insecure => builder.danger_accept_invalid_certs(true),
        ClientKey::CaBundle(pem) => {
            let mut builder = builder.tls_built_in_root_certs(false);
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|error| format!("invalid CA bundle: {error}"))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
            builder
        }
    };
    builder
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))
}

impl BmcCall {
    pub(crate) fn new(
        endpoint: BmcEndpoint,
        clients: &HttpClients,
        deadline: Instant,
        plugin: PluginIdentity,
        metrics: PluginMetrics,
    ) -> Result<Self, String> {
        let client = clients.for_endpoint(&endpoint)?;
        Ok(Self {
            endpoint,
            client,
            deadline,
            plugin,
            metrics,
        })
    }

    fn deny(&self, why: String) -> HttpFailure {
        tracing::warn!(
            plugin = %self.plugin.name,
            bmc = %self.endpoint.origin(),
            reason = %why,
            "denied a plugin's BMC request"
        );
        self.metrics
            .capability_denied(&self.plugin.name, "bmc-http");
        HttpFailure::Denied(why)
    }

    /// The absolute URL for a plugin-supplied path, or a denial if the path would leave the
    /// BMC's origin.
    pub(crate) fn url(&self, path_and_query: &str) -> Result<reqwest::Url, HttpFailure> {
        let origin = self.endpoint.origin();
        let well_formed = path_and_query.starts_with('/')
            && !path_and_query.starts_with("//")
            && !path_and_query.contains('\\')
            && !path_and_query
                .chars()
                .any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(self.deny(format!(
                "{path_and_query:?} is not an absolute path on the BMC"
            )));
        }
        let url = reqwest::Url::parse(&format!("{origin}{path_and_query}")).map_err(|error| {
            self.deny(format!("{path_and_query:?} is not a valid path: {error}"))
        })?;
        let base = reqwest::Url::parse(&origin)
            .map_err(|error| HttpFailure::Other(format!("invalid BMC origin {origin}: {error}")))?;
        if url.origin() != base.origin() || !url.username().is_empty() || url.password().is_some() {
            return Err(self.deny(format!("{path_and_query:?} leaves the BMC origin {origin}")));
        }
        Ok(url)
    }

    /// Sends one request on behalf of the plugin.
    pub(crate) async fn send(&self, request: PluginRequest) -> Result<PluginResponse, HttpFailure> {
        let url = self.url(&request.path_and_query)?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining < Duration::from_millis(1) {
            return Err(HttpFailure::Timeout);
        }
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let method_label = method_label(request.method);
        let mut builder = self.client.request(method, url).timeout(remaining);
        for (name, value) in &request.headers {
            if FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(self.deny(format!("header {name:?} is set by the host")));
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| self.deny(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| self.deny(format!("invalid value for header {name}")))?;
            builder = builder.header(name, value);
        }
        builder = match &request.auth {
            Auth::None => builder,
            Auth::Basic => {
                builder.basic_auth(&self.endpoint.username, Some(&self.endpoint.password))
            }
            Auth::Token(token) => builder.header("X-Auth-Token", token),
        };
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let result = exchange(builder).await;
        self.metrics.bmc_request(
            &self.plugin.name,
            method_label,
            request_outcome(&result),
            started.elapsed().as_secs_f64(),
        );
        result
    }
}

/// The `method` label of a BMC request.
fn method_label(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

/// The `outcome` label of a BMC request: the class of the BMC's status, or why there was no
/// answer (a few values, whatever a BMC sends).
fn request_outcome(result: &Result<PluginResponse, HttpFailure>) -> &'static str {
    match result {
        Ok(response) => match response.status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other_status",
        },
        Err(HttpFailure::Timeout) => "timeout",
        Err(HttpFailure::Connect(_)) => "connect",
        Err(HttpFailure::Tls(_)) => "tls",
        Err(HttpFailure::TooLarge(_)) => "too_large",
        Err(HttpFailure::Denied(_) | HttpFailure::Other(_)) => "error",
    }
}

/// Sends a request and reads the whole answer (at most [`MAX_RESPONSE_BYTES`]).
async fn exchange(builder: reqwest::RequestBuilder) -> Result<PluginResponse, HttpFailure> {
    let mut response = builder.send().await.map_err(failure)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES)
    {
        return Err(HttpFailure::TooLarge(MAX_RESPONSE_BYTES));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failure)? {
        if body.len() as u64 + chunk.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(HttpFailure::TooLarge(MAX_RESPONSE_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(PluginResponse {
        status,
        headers,
        body,
    })
}

fn failure(error: reqwest::Error) -> HttpFailure {
    if error.is_timeout() {
        return HttpFailure::Timeout;
    }
    let chain = crate::controllers::report::error_chain(&error);
    if error.is_connect() {
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            return HttpFailure::Tls(chain);
        }
        return HttpFailure::Connect(chain);
    }
    HttpFailure::Other(chain)
}

/// A driver call to a BMC at `scheme://host:port` (insecure TLS, fixed credentials) with
/// `deadline`, and the metrics it counts into: for the tests of the host side of `bmc-http`.
#[cfg(test)]
pub(crate) fn test_call(
    scheme: &str,
    host: &str,
    port: u16,
    deadline: Instant,
) -> (BmcCall, PluginMetrics) {
    let metrics = PluginMetrics::default();
    let endpoint = BmcEndpoint {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        port,
        tls: TlsPolicy::Insecure,
        username: String::from("admin"),
        password: String::from("secret"),
        manufacturer_hint: None,
        settings: Vec::new(),
    };
    let call = BmcCall::new(
        endpoint,
        &HttpClients::default(),
        deadline,
        test_plugin(),
        metrics.clone(),
    )
    .expect("client");
    (call, metrics)
}

/// The identity of the driver in [`test_call`].
#[cfg(test)]
pub(crate) fn test_plugin() -> PluginIdentity {
    PluginIdentity {
        name: String::from("test-driver"),
        path: "test-driver.wasm".into(),
        digest: "0".repeat(64),
        world: crate::plugins::metadata::World::BmcDriver,
        abi: String::from("0.1.0"),
        sdk: String::from("0.1.0"),
        capabilities: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(scheme: &str, host: &str, port: u16) -> (BmcCall, PluginMetrics) {
        test_call(scheme, host, port, Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn one_client_per_tls_policy_is_built_and_shared() {
        let clients = HttpClients::default();
        let endpoint = |scheme: &str, port: u16, tls: TlsPolicy| BmcEndpoint {
            scheme: scheme.to_owned(),
            host: String::from("127.0.0.1"),
            port,
            tls,
            username: String::new(),
            password: String::new(),
            manufacturer_hint: None,
            settings: Vec::new(),
        };
        for port in [1, 2, 3] {
            clients
                .for_endpoint(&endpoint("http", port, TlsPolicy::Insecure))
                .expect("plain");
            clients
                .for_endpoint(&endpoint("https", port, TlsPolicy::Insecure))
                .expect("insecure");
            clients
                .for_endpoint(&endpoint("https", port, TlsPolicy::CaBundle(String::new())))
                .expect("no CA");
        }
        assert_eq!(clients.len(), 3, "per TLS policy, not per BMC or call");
        let broken = TlsPolicy::CaBundle(String::from(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        ));
        let error = clients
            .for_endpoint(&endpoint("https", 4, broken))
            .expect_err("a broken bundle is refused");
        assert!(
            error.contains("invalid CA bundle") && error.contains("https://127.0.0.1:4"),
            "{error}"
        );
        assert_eq!(clients.len(), 3, "nothing is kept for a broken bundle");
    }

    fn denials(metrics: &PluginMetrics) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text.lines()
            .find(|line| line.starts_with("ferrometal_plugin_capability_denials_total{"))
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn paths_resolve_on_the_bmc_origin_with_their_query() {
        let (call, metrics) = call("https", "10.0.0.5", 8443);
        for (path, expected) in [
            ("/redfish/v1", "https://10.0.0.5:8443/redfish/v1"),
            (
                "/redfish/v1/Systems?$expand=.",
                "https://10.0.0.5:8443/redfish/v1/Systems?$expand=.",
            ),
            // The redfish driver's `$expand` forms pass unencoded (RFC 3986 allows `$`,
            // `(`, `)`, `=`, `.` and `*` in a query).
            (
                "/redfish/v1/Systems?$expand=.($levels=1)",
                "https://10.0.0.5:8443/redfish/v1/Systems?$expand=.($levels=1)",
            ),
            (
                "/redfish/v1/Systems?$expand=*($levels=1)",
                "https://10.0.0.5:8443/redfish/v1/Systems?$expand=*($levels=1)",
            ),
            // Dot segments are normalised but cannot climb above the root.
            (
                "/redfish/../../etc/passwd",
                "https://10.0.0.5:8443/etc/passwd",
            ),
            ("/a/%2e%2e/b", "https://10.0.0.5:8443/b"),
        ] {
            assert_eq!(call.url(path).expect(path).as_str(), expected);
        }
        assert_eq!(denials(&metrics), "", "nothing was denied");
    }

    #[test]
    fn ipv6_bmcs_keep_their_brackets() {
        let (call, _) = call("http", "fd00::5", 80);
        assert_eq!(
            call.url("/redfish/v1").expect("path").as_str(),
            "http://[fd00::5]/redfish/v1"
        );
    }

    #[test]
    fn paths_that_would_leave_the_origin_are_denied_and_counted() {
        let (call, metrics) = call("https", "10.0.0.5", 443);
        let escapes = [
            "http://169.254.169.254/latest/meta-data",
            "https://10.0.0.5:443/redfish/v1",
            "//evil.example/redfish/v1",
            "@evil.example/redfish/v1",
            "redfish/v1",
            "",
            "\\\\evil.example\\x",
            "/\\evil.example",
            "/redfish/v1\r\nHost: evil.example",
            "/redfish v1",
            "/redfish/v1\t",
        ];
        for path in escapes {
            let error = call.url(path).expect_err(path);
            assert!(
                matches!(error, HttpFailure::Denied(_)),
                "{path:?}: {error:?}"
            );
        }
        assert_eq!(
            denials(&metrics),
            format!(
                r#"ferrometal_plugin_capability_denials_total{{plugin="test-driver",capability="bmc-http"}} {}"#,
                escapes.len()
            )
        );
    }

    #[test]
    fn a_denial_names_the_path_and_the_origin() {
        let (call, _) = call("https", "10.0.0.5", 443);
        let Err(HttpFailure::Denied(why)) = call.url("//evil.example/x") else {
            panic!("not denied");
        };
        assert!(why.contains("//evil.example/x"), "{why}");
    }

    fn get(path: &str) -> PluginRequest {
        PluginRequest {
            method: Method::Get,
            path_and_query: path.to_owned(),
            headers: Vec::new(),
            body: None,
            auth: Auth::Basic,
        }
    }

    #[tokio::test]
    async fn requests_are_counted_by_plugin_method_and_outcome_never_by_bmc() {
        use axum::http::StatusCode;
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "{}" }))
            .route(
                "/busy",
                axum::routing::get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let (call, metrics) = call("http", "127.0.0.1", port);
        assert_eq!(call.send(get("/ok")).await.expect("answer").status, 200);
        assert_eq!(call.send(get("/busy")).await.expect("answer").status, 503);
        assert!(matches!(
            call.send(get("//elsewhere/x")).await,
            Err(HttpFailure::Denied(_))
        ));
        server.abort();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("ferrometal_bmc_request"))
            .collect();
        for expected in [
            r#"ferrometal_bmc_requests_total{plugin="test-driver",method="GET",outcome="2xx"} 1"#,
            r#"ferrometal_bmc_requests_total{plugin="test-driver",method="GET",outcome="5xx"} 1"#,
            r#"ferrometal_bmc_request_duration_seconds_count{plugin="test-driver",method="GET"} 2"#,
        ] {
            assert!(lines.contains(&expected), "{expected} in {lines:#?}");
        }
        assert!(
            lines.iter().all(|line| !line.contains("127.0.0.1")),
            "no BMC address in a label; the denied request never reached the BMC"
        );
    }

    #[tokio::test]
    async fn an_expand_query_reaches_the_bmc_as_the_plugin_wrote_it() {
        let app = axum::Router::new().route(
            "/redfish/v1/Systems",
            axum::routing::get(|uri: axum::http::Uri| async move { uri.to_string() }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let (call, _) = call("http", "127.0.0.1", port);
        for query in [
            "$expand=.($levels=1)",
            "$expand=*($levels=1)",
            "$expand=.",
            "$expand=*",
        ] {
            let path = format!("/redfish/v1/Systems?{query}");
            let response = call.send(get(&path)).await.expect("answer");
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(String::from_utf8_lossy(&response.body), path);
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_bmc_that_refuses_the_connection_counts_as_connect() {
        // Nothing listens on the port of a dropped listener.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let (call, metrics) = call("http", "127.0.0.1", port);
        assert!(matches!(
            call.send(get("/redfish/v1")).await,
            Err(HttpFailure::Connect(_))
        ));
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                r#"ferrometal_bmc_requests_total{plugin="test-driver",method="GET",outcome="connect"} 1"#
            ),
            "{text}"
        );
    }
}
