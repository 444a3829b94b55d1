//! The HTTP boot server: iPXE scripts, ignition, `/httpboot` lookups and the image proxy.
//!
//! Every answer comes from the in-memory [`BootIndex`]; the only I/O on a request is the
//! registry stream behind `/images/…`. Unknown machines get a bare 404 and a log line that
//! says why, so nothing about other machines leaks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ipnet::IpNet;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::fetch_log::{FetchLog, FetchMetrics};
use super::image::{ImageResolver, LayerKind};
use super::index::{BootEntry, BootIndex, ConfigKey, Fetch, TicketUse};
use super::layer_cache::{LayerCache, LayerError};
use super::listener::ConnectionMetrics;
use super::script::{self, ScriptInput};
use super::uuid::SystemUuid;
use crate::dhcp::bindings::SourceBindings;

/// A fetch to record on a ServerBootConfiguration (a condition), see [`FetchLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The configuration served.
    pub config: ConfigKey,
    /// What was fetched.
    pub fetch: Fetch,
    /// What the condition's message adds (who fetched, with which ticket), if anything.
    pub detail: Option<String>,
}

/// How the boot server presents itself.
#[derive(Debug, Clone)]
pub struct BootServerConfig {
    /// The URL machines reach this server at (no trailing slash), e.g. `http://10.0.0.1:8082`.
    pub base_url: String,
    /// The URL machines asking over IPv6 reach it at, when it differs from `base_url`
    /// (`http://[fd00::1]:8082`).
    pub ipv6_url: Option<String>,
    /// Peers whose `X-Forwarded-For` header is believed (DHCP helpers, reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Appended to every kernel command line.
    pub extra_kernel_args: String,
    /// The metalprobe binary served at `/metalprobe` for discovery systems to download,
    /// opened once at start and streamed from it (never held in memory).
    pub metalprobe_binary: Option<super::served_file::ServedFile>,
    /// The addresses ferrometal's DHCP server leased, when machines are held to them
    /// (source binding); `None`: any address is accepted.
    pub source_bindings: Option<SourceBindings>,
}

impl BootServerConfig {
    /// The URL a machine asking from `peer` is told, and which of an entry's per-URL
    /// caches holds what was rendered with it (0: `base_url`, 1: `ipv6_url`).
    pub fn url_for(&self, peer: IpAddr) -> (&str, usize) {
        match (&self.ipv6_url, canonical_ip(peer)) {
            (Some(url), IpAddr::V6(_)) => (url, 1),
            _ => (&self.base_url, 0),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    code: u16,
}

/// Requests per endpoint and status code, and the fetch records' progress.
#[derive(Debug, Clone, Default)]
pub struct BootMetrics {
    requests: Family<RequestLabels, Counter>,
    /// The fetch recorder's metrics (give them to [`FetchLog::new`]).
    pub fetches: FetchMetrics,
    /// The listener's connection counts (give them to [`super::listener::serve`]).
    pub connections: ConnectionMetrics,
}

impl BootMetrics {
    /// Registers `ferrometal_boot_requests_total` and the fetch recorder's metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("ferrometal").register(
            "boot_requests",
            "Boot server requests by endpoint and status code",
            self.requests.clone(),
        );
        self.fetches.register(registry);
        self.connections.register(registry);
    }

    /// Counts one answer.
    pub fn count(&self, endpoint: &'static str, code: StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                code: code.as_u16(),
            })
            .inc();
    }
}

/// Shared state of the boot server.
#[derive(Debug)]
pub struct BootServer {
    /// What is served.
    pub index: BootIndex,
    /// Registry access for the image proxy.
    pub resolver: Arc<ImageResolver>,
    /// Layers fetched once, verified, and served from disk.
    pub layers: LayerCache,
    /// URLs, proxies, kernel arguments.
    pub config: BootServerConfig,
    /// Request counters.
    pub metrics: BootMetrics,
    /// Where fetches are recorded until the recorder ([`FetchLog::run`]) writes them.
    pub reports: FetchLog,
}

/// The routes.
pub fn router(server: Arc<BootServer>) -> Router {
    Router::new()
        .route("/ipxe", get(chain))
        .route("/ipxe/", get(chain))
        .route("/ipxe/{uuid}", get(ipxe_script))
        .route("/ignition/{uuid}", get(ignition))
        .route("/httpboot", get(httpboot))
        .route("/uki/{id}", get(uki))
        .route("/images/{file}", get(image))
        .route("/metalprobe", get(metalprobe))
        .with_state(server)
}

fn text(body: impl IntoResponse) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// How long a machine is asked to wait (`Retry-After`) while the index is being filled.
pub const RETRY_AFTER_SECONDS: u64 = 2;

async fn chain(
    State(server): State<Arc<BootServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    server.metrics.count("ipxe", StatusCode::OK);
    text(script::chain(server.config.url_for(peer.ip()).0))
}

impl BootServer {
    /// The entry for a UUID as a machine spelled it; logs why there is none.
    pub fn lookup(&self, endpoint: &'static str, raw: &str) -> Option<Arc<BootEntry>> {
        let Some(uuid) = SystemUuid::parse(raw) else {
            tracing::info!(endpoint, uuid = raw, "not a system UUID");
            return None;
        };
        let entry = self.index.by_uuid(&uuid);
        if entry.is_none() {
            if self.index.sync().synced() {
                tracing::info!(endpoint, %uuid, "no Ready ServerBootConfiguration for this system; answering 404");
            } else {
                tracing::debug!(endpoint, %uuid, "the boot index is still being filled; answering 503");
            }
        }
        entry
    }

    /// What a machine the index does not know is told (counted under `endpoint`): `404`
    /// with `message`, or `503` while the index is still being filled after a start (the
    /// machine's configuration may not be indexed yet, so it is asked to come back; see
    /// [`super::sync`]). Answer it with [`refusal`], which adds `Retry-After` to a `503`.
    pub fn unknown(&self, endpoint: &'static str, message: String) -> (StatusCode, String) {
        let answer = if self.index.sync().synced() {
            (StatusCode::NOT_FOUND, message)
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                String::from("the boot server is starting; retry"),
            )
        };
        self.metrics.count(endpoint, answer.0);
        answer
    }

    /// The `502` for a layer of `image` that could not be had (counted under `endpoint`).
    fn layer_unavailable(
        &self,
        endpoint: &'static str,
        image: &oci_client::Reference,
        digest: &str,
        error: &LayerError,
    ) -> Response {
        match error {
            LayerError::DigestMismatch { .. } => {
                tracing::error!(%image, %error, "refusing a layer that fails its digest check; answering 502");
            }
            _ => {
                tracing::warn!(digest, %image, %error, "cannot fetch layer from the registry; answering 502");
            }
        }
        self.metrics.count(endpoint, StatusCode::BAD_GATEWAY);
        (StatusCode::BAD_GATEWAY, "layer unavailable\n").into_response()
    }

    /// What `entry`'s boot arguments are rendered from, with the URL `base_url`: its script
    /// (`/ipxe/<uuid>`) and its personalised UKI (`/uki/<id>`) say the same things.
    fn script_input<'a>(&'a self, entry: &'a BootEntry, base_url: &'a str) -> ScriptInput<'a> {
        ScriptInput {
            base_url,
            uuid: &entry.uuid,
            layers: &entry.layers,
            ticket: entry.ticket().map(|ticket| ticket.value.as_str()),
            has_ignition: entry.ignition.is_some(),
            extra_kernel_args: &self.config.extra_kernel_args,
        }
    }

    /// [`Self::unknown`], answered.
    fn unknown_response(&self, endpoint: &'static str) -> Response {
        let (status, message) = self.unknown(endpoint, String::from("not found"));
        refusal(status, &message)
    }

    /// The entry of the machine a request from `peer` names (its UUID as spelled), when it
    /// is served and `peer` may ask for it (source binding, below); `endpoint` names the
    /// request in logs and records.
    pub fn machine(
        &self,
        endpoint: &'static str,
        raw: &str,
        peer: IpAddr,
    ) -> Option<Arc<BootEntry>> {
        self.lookup(endpoint, raw)
            .filter(|entry| self.accepts_source(endpoint, entry, peer))
    }

    /// [`Self::machine`] for a machine named by its SMBIOS UUID or by a MAC address of one
    /// of its network interfaces (any common spelling).
    pub fn machine_named(
        &self,
        endpoint: &'static str,
        raw: &str,
        peer: IpAddr,
    ) -> Option<Arc<BootEntry>> {
        let Some(mac) = canonical_mac(raw) else {
            return self.machine(endpoint, raw, peer);
        };
        let entry = self.index.by_identifier([mac.as_str()]);
        if entry.is_none() && self.index.sync().synced() {
            tracing::info!(endpoint, %mac, "no Ready ServerBootConfiguration for a Server with this MAC address; answering 404");
        }
        entry.filter(|entry| self.accepts_source(endpoint, entry, peer))
    }

    /// Whether `peer` may ask for `entry` under source binding: yes without it, or when
    /// ferrometal's DHCP server leased the machine no address (external DHCP, QEMU's user
    /// network); otherwise only from the leased address. A refusal is logged, recorded on
    /// the configuration (`SourceAddressRefused`, once per entry) and counted; the caller
    /// answers it as for an unknown machine.
    fn accepts_source(&self, endpoint: &'static str, entry: &BootEntry, peer: IpAddr) -> bool {
        let Some(bindings) = &self.config.source_bindings else {
            return true;
        };
        let now = crate::dhcp::unix_now();
        // A machine may hold a DHCPv4 and a DHCPv6 lease: any of its addresses will do.
        let leased = bindings.addresses_for(
            &entry.uuid,
            entry.network_identifiers.iter().map(String::as_str),
            now,
        );
        if leased.is_empty() {
            return true;
        }
        let peer = canonical_ip(peer);
        if leased.contains(&peer) {
            return true;
        }
        let leased = leased
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and ");
        let message = format!(
            "a {endpoint} request for this machine came from {peer}, but ferrometal's DHCP server leased {leased} to it; refused"
        );
        tracing::warn!(config = %entry.config, server = %entry.server, "{message}");
        self.report(entry, Fetch::SourceRefused, Some(message));
        false
    }

    /// Records `fetch` (with `detail` for its condition's message) for writing on the
    /// entry's configuration, once per entry (never blocks, never drops it).
    pub fn report(&self, entry: &BootEntry, fetch: Fetch, detail: Option<String>) {
        if entry.first_report(fetch) {
            let step = match fetch {
                Fetch::Script => Some(crate::ui::timeline::SCRIPT_FETCHED),
                Fetch::Ignition => Some(crate::ui::timeline::IGNITION_FETCHED),
                Fetch::BootState => Some(crate::ui::timeline::BOOT_STATE_RECEIVED),
                Fetch::TicketReused | Fetch::SourceRefused => None,
            };
            if let Some(step) = step {
                crate::ui::timeline::DiscoverySteps::global().record(
                    &entry.server,
                    step,
                    k8s_openapi::jiff::Timestamp::now(),
                );
            }
            self.reports.record(FetchReport {
                config: entry.config.clone(),
                fetch,
                detail,
            });
        }
    }
}

async fn ipxe_script(
    State(server): State<Arc<BootServer>>,
    Path(uuid): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(entry) = server.machine("ipxe", &uuid, peer.ip()) else {
        return server.unknown_response("ipxe");
    };
    // Rendered once per entry (a new token or image makes a new entry).
    let (base_url, family) = server.config.url_for(peer.ip());
    let rendered = entry.state.script[family].get_or_init(|| {
        script::per_machine(&server.script_input(&entry, base_url)).map(bytes::Bytes::from)
    });
    let Some(body) = rendered.clone() else {
        tracing::info!(config = %entry.config, "image has no kernel+initramfs or UKI for iPXE; answering 404");
        server.metrics.count("ipxe", StatusCode::NOT_FOUND);
        return not_found();
    };
    server.report(&entry, Fetch::Script, None);
    server.metrics.count("ipxe", StatusCode::OK);
    text(body)
}

/// `message` on one line with `status`; a `503` also carries `Retry-After`.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

/// A MAC address in any common spelling (`aa:bb:…`, `AA-BB-…`, `aabb.ccdd.eeff`,
/// `aabbccddeeff`) as lowercase colon-separated text; `None` for anything else.
pub fn canonical_mac(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if digits.len() != 12 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let digits = digits.to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &digits[2 * i..2 * i + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The image's UKI with this machine's ignition arguments written into its `.cmdline`, for
/// firmware that boots it straight over UEFI HTTP (the DHCP server hands out
/// `/uki/${uuid}.efi`); see [`super::uki`]. Counts as the machine's script fetch. A UKI that
/// cannot carry the arguments (no `.cmdline`, no room) is answered `500` with the reason
/// logged: the image must be rebuilt with room.
async fn uki(
    State(server): State<Arc<BootServer>>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let id = id.strip_suffix(".efi").unwrap_or(&id);
    let Some(entry) = server.machine_named("uki", id, peer.ip()) else {
        return server.unknown_response("uki");
    };
    let Some(layer) = entry.layers.uki.clone() else {
        tracing::info!(config = %entry.config, image = %entry.image, "the image has no UKI layer for UEFI HTTP boot; answering 404");
        server.metrics.count("uki", StatusCode::NOT_FOUND);
        return not_found();
    };
    let (mut file, length) = match server
        .layers
        .open(&server.resolver, &entry.image, &layer.digest)
        .await
    {
        Ok(opened) => opened,
        Err(error) => return server.layer_unavailable("uki", &entry.image, &layer.digest, &error),
    };
    let (base_url, family) = server.config.url_for(peer.ip());
    let patches = match entry.state.uki[family].get() {
        Some(patches) => patches.clone(),
        None => {
            let args = script::uki_arguments(&server.script_input(&entry, base_url));
            match super::uki::personalise(&mut file, length, &args).await {
                Ok(patches) => entry.state.uki[family].get_or_init(|| patches).clone(),
                Err(error) => {
                    tracing::warn!(config = %entry.config, %error, "cannot read the cached UKI layer; answering 502");
                    server.metrics.count("uki", StatusCode::BAD_GATEWAY);
                    return (StatusCode::BAD_GATEWAY, "layer unavailable\n").into_response();
                }
            }
        }
    };
    let patches = match patches {
        Ok(patches) => patches,
        Err(error) => {
            tracing::error!(config = %entry.config, image = %entry.image, %error, "cannot give this machine its ignition arguments in the image's UKI; answering 500");
            server
                .metrics
                .count("uki", StatusCode::INTERNAL_SERVER_ERROR);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the image's UKI cannot carry this machine's boot arguments: {error}\n"),
            )
                .into_response();
        }
    };
    server.report(&entry, Fetch::Script, None);
    server.metrics.count("uki", StatusCode::OK);
    layer_response(
        super::uki::patched_body(file, length, patches),
        layer.kind,
        length,
    )
}

/// A layer's bytes (`length` of them) with its content type.
fn layer_response(body: Body, kind: LayerKind, length: u64) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// `?ticket=` of an ignition fetch.
#[derive(Debug, Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

/// The ignition: only with the fetch ticket the machine's script carries, and only to the
/// address that presented it first (which may fetch again: an answer cut off by a restart
/// is tried again). A use from another address is refused and recorded on the
/// configuration with both addresses (the Server then starts a new attempt with fresh
/// secrets); neither the ticket nor the registry token is ever logged.
async fn ignition(
    State(server): State<Arc<BootServer>>,
    Path(uuid): Path<String>,
    Query(query): Query<TicketQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(entry) = server.machine("ignition", &uuid, peer.ip()) else {
        return server.unknown_response("ignition");
    };
    let Some(ignition) = &entry.ignition else {
        tracing::info!(config = %entry.config, "configuration names no ignition Secret; answering 404");
        server.metrics.count("ignition", StatusCode::NOT_FOUND);
        return not_found();
    };
    let peer = canonical_ip(peer.ip());
    let mut detail = None;
    if let Some(expected) = entry.ticket() {
        let given = query.ticket.as_deref().unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.value.as_bytes()) {
            tracing::warn!(
                config = %entry.config,
                %peer,
                ticket_given = query.ticket.is_some(),
                "ignition fetch without the valid fetch ticket; answering 403"
            );
            server.metrics.count("ignition", StatusCode::FORBIDDEN);
            return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
        }
        let fingerprint = &expected.fingerprint;
        match entry.use_ticket(peer) {
            TicketUse::First => {
                detail = Some(fetched_by(peer, fingerprint));
            }
            TicketUse::Holder => {
                tracing::info!(config = %entry.config, %peer, "the fetch ticket's holder fetches its ignition again");
            }
            TicketUse::Reused(first) => {
                let message = format!(
                    "the fetch ticket (fingerprint {fingerprint}) was used from {first}, then presented again from {peer} and refused; the Server starts a new attempt with fresh secrets"
                );
                tracing::warn!(config = %entry.config, server = %entry.server, "{message}");
                server.report(&entry, Fetch::TicketReused, Some(message));
                server.metrics.count("ignition", StatusCode::FORBIDDEN);
                return (StatusCode::FORBIDDEN, "forbidden: ticket already used\n").into_response();
            }
        }
    }
    server.report(&entry, Fetch::Ignition, detail);
    server.metrics.count("ignition", StatusCode::OK);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ignition.clone(),
    )
        .into_response()
}

/// The `IgnitionDataFetched` message of a ticketed fetch; [`ticket_holder`] reads it back.
pub fn fetched_by(peer: IpAddr, fingerprint: &str) -> String {
    format!("the machine fetched its ignition from {peer} with fetch ticket {fingerprint}")
}

/// Who used the ticket with `fingerprint`, from an `IgnitionDataFetched` message written by
/// [`fetched_by`] (after a restart, so that a used ticket stays used).
pub fn ticket_holder(message: &str, fingerprint: &str) -> Option<IpAddr> {
    let rest = message.strip_prefix("the machine fetched its ignition from ")?;
    let (address, ticket) = rest.split_once(" with fetch ticket ")?;
    (ticket == fingerprint).then(|| address.parse().ok())?
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Compares without an early exit, so timing does not reveal a token's prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `/httpboot` answer (boot-operator's field names, for DHCP helpers that ask it).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpBootAnswer {
    /// The identifiers the client was recognised by.
    #[serde(rename = "ClientIPs")]
    pub client_ips: Vec<String>,
    /// Where the machine fetches its unified kernel image.
    #[serde(rename = "UKIURL")]
    pub uki_url: String,
    /// The machine's system UUID.
    #[serde(rename = "SystemUUID")]
    pub system_uuid: String,
}

/// Who is asking: the `X-Forwarded-For` entries (IPs or MACs) when the peer is a trusted
/// proxy and sent the header, otherwise the peer's own address.
pub fn client_identifiers(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Vec<String> {
    let peer = canonical_ip(peer);
    if trusted.iter().any(|net| net.contains(&peer)) {
        let forwarded: Vec<String> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|item| item.trim().to_ascii_lowercase())
            .filter(|item| !item.is_empty())
            .collect();
        if !forwarded.is_empty() {
            return forwarded;
        }
    }
    vec![peer.to_string()]
}

async fn httpboot(
    State(server): State<Arc<BootServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let identifiers = client_identifiers(peer.ip(), &headers, &server.config.trusted_proxies);
    let entry = server
        .index
        .by_identifier(identifiers.iter().map(String::as_str));
    let Some((entry, uki)) = entry.and_then(|entry| {
        let uki = entry.layers.uki.clone()?;
        Some((entry, uki))
    }) else {
        tracing::info!(
            ?identifiers,
            "no UEFI HTTP boot configuration for this client"
        );
        return server.unknown_response("httpboot");
    };
    server.metrics.count("httpboot", StatusCode::OK);
    axum::Json(HttpBootAnswer {
        client_ips: identifiers,
        uki_url: script::layer_url(server.config.url_for(peer.ip()).0, &uki),
        system_uuid: entry.uuid.to_string(),
    })
    .into_response()
}

/// `sha256-<64 hex>` or the same with `.efi` → `sha256:<hex>`.
fn digest_of_file(file: &str) -> Option<String> {
    let hex = file.strip_prefix("sha256-")?;
    let hex = hex.strip_suffix(".efi").unwrap_or(hex);
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("sha256:{hex}"))
}

async fn image(State(server): State<Arc<BootServer>>, Path(file): Path<String>) -> Response {
    let Some(source) = digest_of_file(&file)
        .and_then(|digest| server.index.blob(&digest).map(|source| (digest, source)))
    else {
        tracing::info!(file, "not a layer of any served image");
        return server.unknown_response("images");
    };
    let (digest, source) = source;
    match server
        .layers
        .open(&server.resolver, &source.image, &digest)
        .await
    {
        Ok((file, length)) => {
            server.metrics.count("images", StatusCode::OK);
            let body =
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
            layer_response(body, source.kind, length)
        }
        Err(error) => server.layer_unavailable("images", &source.image, &digest, &error),
    }
}

/// The metalprobe binary, for discovery systems (the ignition points `metalprobe-url` here).
async fn metalprobe(State(server): State<Arc<BootServer>>) -> Response {
    let Some(binary) = &server.config.metalprobe_binary else {
        tracing::info!(
            "/metalprobe asked for, but no --metalprobe-binary is configured; answering 404"
        );
        server.metrics.count("metalprobe", StatusCode::NOT_FOUND);
        return not_found();
    };
    server.metrics.count("metalprobe", StatusCode::OK);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(binary.len())),
        ],
        binary.body(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_asking_over_ipv6_are_told_the_ipv6_url() {
        let mut config = BootServerConfig {
            base_url: String::from("http://10.0.0.1:8082"),
            ipv6_url: Some(String::from("http://[fd00::1]:8082")),
            trusted_proxies: Vec::new(),
            extra_kernel_args: String::new(),
            metalprobe_binary: None,
            source_bindings: None,
        };
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert_eq!(config.url_for(ip("10.0.0.7")), ("http://10.0.0.1:8082", 0));
        assert_eq!(
            config.url_for(ip("::ffff:10.0.0.7")),
            ("http://10.0.0.1:8082", 0),
            "an IPv4 client seen through a dual-stack socket is an IPv4 client"
        );
        assert_eq!(config.url_for(ip("fd00::7")), ("http://[fd00::1]:8082", 1));
        config.ipv6_url = None;
        assert_eq!(config.url_for(ip("fd00::7")), ("http://10.0.0.1:8082", 0));
    }

    #[test]
    fn macs_are_recognised_in_every_common_spelling() {
        for raw in [
            "52:54:00:AA:00:01",
            "52-54-00-aa-00-01",
            "5254.00aa.0001",
            "525400aa0001",
        ] {
            assert_eq!(
                canonical_mac(raw).as_deref(),
                Some("52:54:00:aa:00:01"),
                "{raw}"
            );
        }
        for raw in [
            "0b5e5e2a-0000-4000-8000-000000000401",
            "52:54:00:aa:00",
            "zz5400aa0001",
        ] {
            assert_eq!(canonical_mac(raw), None, "{raw}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().expect("net")];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("192.168.1.5, AA:BB:CC:DD:EE:FF"),
        );
        assert_eq!(
            client_identifiers("10.0.0.9".parse().expect("ip"), &headers, &trusted),
            ["192.168.1.5", "aa:bb:cc:dd:ee:ff"]
        );
        assert_eq!(
            client_identifiers("172.16.0.1".parse().expect("ip"), &headers, &trusted),
            ["172.16.0.1"],
            "an untrusted peer is identified by its own address"
        );
        assert_eq!(
            client_identifiers(
                "::ffff:10.0.0.9".parse().expect("ip"),
                &HeaderMap::new(),
                &trusted
            ),
            ["10.0.0.9"],
            "a trusted proxy without the header is itself the client"
        );
    }

    #[test]
    fn only_well_formed_layer_file_names_are_digests() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_of_file(&format!("sha256-{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_of_file(&format!("sha256-{hex}.efi")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_of_file(&format!("sha256-{}", "A".repeat(64))), None);
        assert_eq!(digest_of_file("sha256-abc"), None);
        assert_eq!(digest_of_file(&format!("sha512-{hex}")), None);
        assert_eq!(digest_of_file("../../v2/_catalog"), None);
    }

    #[test]
    fn the_ticket_holder_is_read_back_only_for_the_same_ticket() {
        let peer: IpAddr = "10.1.2.3".parse().expect("ip");
        let message = fetched_by(peer, "abc123");
        assert_eq!(ticket_holder(&message, "abc123"), Some(peer));
        assert_eq!(
            ticket_holder(&message, "def456"),
            None,
            "another attempt's ticket"
        );
        assert_eq!(
            ticket_holder("the machine fetched its ignition", "abc123"),
            None
        );
    }

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
