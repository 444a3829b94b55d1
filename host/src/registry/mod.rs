//! The registry: where metalprobe reports a machine's hardware (metal-operator's API:
//! `POST /register`, `GET /systems/<uuid>`, `DELETE /delete/<uuid>`, `POST /bootstate`).
//!
//! It is served by the boot server (one address for machines to reach). A report is accepted
//! only for a machine the boot server is serving, with that boot's token as a bearer token
//! (`--registry-allow-unauthenticated` also accepts reports without one, for metal-operator's
//! own metalprobe), and is written straight through to the Server's status under its own
//! field manager, with a `ProbeReported` condition: nothing lives only in memory.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, Client};
use metalprobe::report::{
    BlockDevice, Collected, Cpu, LldpInterface, LldpNeighbor as ProbeNeighbor, Memory,
    Registration, Report,
};
use serde::Deserialize;
use serde_json::json;

use crate::api::server::{
    Accelerator, LldpNeighbor, NetworkInterface, Processor, ServerStatus, Storage, StorageDrive,
};
use crate::api::{Server, conditions};
use crate::boot::index::{BootEntry, Fetch};
use crate::boot::server::BootServer;
use crate::controllers::hardware_facts::{PciFunction, device_class, pci_accelerator};

/// Field manager of the registry's writes to Server status.
pub const MANAGER: &str = "ferrometal-registry";
/// Condition on the Server: a probe report arrived (defined in the catalogue).
pub use crate::api::conditions::PROBE_REPORTED;
/// Largest report accepted.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// What the registry needs besides the boot server's index.
pub struct Registry {
    /// The boot server (index of machines being booted, metrics, fetch reports).
    pub boot: Arc<BootServer>,
    /// The API client.
    pub client: Client,
    /// Accept reports without a token (metal-operator's metalprobe).
    pub allow_unauthenticated: bool,
}

/// The registry's routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/register", post(register))
        .route("/systems/{uuid}", get(system))
        .route("/delete/{uuid}", delete(forget))
        .route("/bootstate", post(boot_state))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
        .with_state(registry)
}

/// Why a request was refused, answered with a status and one line.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        crate::boot::server::refusal(self.0, &self.1)
    }
}

impl Registry {
    /// The machine `uuid` names, if it is being booted and the caller holds its token.
    fn authorize(
        &self,
        endpoint: &'static str,
        uuid: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Arc<BootEntry>, Refusal> {
        let Some(entry) = self.boot.machine(endpoint, uuid, peer.ip()) else {
            // 503 + Retry-After while the boot index is being filled after a start.
            let (status, message) = self
                .boot
                .unknown(endpoint, format!("system {uuid} is not being discovered"));
            return Err(Refusal(status, message));
        };
        // A claim's OS holds its own boot token: it must not be able to rewrite the facts
        // discovery verified.
        if entry.provision_attempt.is_some() {
            tracing::warn!(endpoint, server = %entry.server, "registry request refused: the server is booting its claim's OS, not being discovered");
            self.boot.metrics.count(endpoint, StatusCode::FORBIDDEN);
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                format!("system {uuid} is not being discovered"),
            ));
        }
        let given = bearer_token(headers);
        let refusal = match (&entry.token, given) {
            (None, _) => None,
            (Some(_), None) if self.allow_unauthenticated => None,
            (Some(_), None) => Some((StatusCode::UNAUTHORIZED, "a boot token is required")),
            (Some(expected), Some(given)) => {
                (!crate::boot::server::constant_time_eq(given.as_bytes(), expected.as_bytes()))
                    .then_some((StatusCode::FORBIDDEN, "wrong boot token"))
            }
        };
        if let Some((status, message)) = refusal {
            tracing::warn!(endpoint, server = %entry.server, "registry request refused: {message}");
            self.boot.metrics.count(endpoint, status);
            return Err(Refusal(status, message.to_owned()));
        }
        Ok(entry)
    }

    async fn apply(&self, server: &str, status: serde_json::Value) -> Result<(), Refusal> {
        match apply_facts(&self.client, server, status).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("Server {server} was deleted"),
            )),
            Err(error) => Err(unavailable(server, &error)),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is matched without
/// regard to case (RFC 9110 §11.1: `bearer` is `Bearer`); other schemes carry no boot token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A write to the API server failed: the caller should try again.
fn unavailable(server: &str, error: &kube::Error) -> Refusal {
    tracing::warn!(server, %error, "cannot write the probe report to the Server");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        String::from("cannot store the report; try again"),
    )
}

/// Server-side-applies `status` as everything the registry's field manager owns. `false`:
/// the Server no longer exists.
async fn apply_facts(
    client: &Client,
    server: &str,
    status: serde_json::Value,
) -> Result<bool, kube::Error> {
    let servers = Api::<Server>::all(client.clone());
    crate::controllers::status::apply(&servers, server, MANAGER, status)
        .await
        .map(|written| written.is_some())
}

/// Writes hardware facts to a Server's status under the registry's field manager (replacing
/// the previous ones), with a `ProbeReported` condition dated now. The registry calls it for
/// metalprobe's reports; out-of-band discovery for what the BMC reports.
pub async fn write_facts(
    client: &Client,
    server: &str,
    facts: &ServerStatus,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let mut value = serde_json::to_value(facts).unwrap_or_default();
    value["conditions"] = json!([{
        "type": PROBE_REPORTED,
        "status": "True",
        "reason": reason,
        "message": message,
        // The arrival time, so a report from an earlier boot is recognisably old.
        "lastTransitionTime": Time(k8s_openapi::jiff::Timestamp::now()),
    }]);
    // A deleted Server has nothing to record; its deletion ends what it was doing.
    apply_facts(client, server, value).await.map(|_| ())
}

/// A `POST /register` body, read: the machine it names, the Server status its facts become and
/// the `ProbeReported` message.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRegistration {
    /// The machine's SMBIOS system UUID, as the body states it.
    pub system_uuid: String,
    /// The facts as Server status.
    pub status: ServerStatus,
    /// The `ProbeReported` condition's message.
    pub summary: String,
}

/// Reads a `POST /register` body (metalprobe's or metal-operator's probe JSON): everything
/// the registry does with a report before it checks the token and writes it.
pub fn read_registration(body: &[u8]) -> Result<ReadRegistration, serde_json::Error> {
    let registration: Registration = serde_json::from_slice(body)?;
    let status = status_from_report(&registration.data);
    let summary = summary(&registration.data, &status);
    Ok(ReadRegistration {
        system_uuid: registration.system_uuid,
        status,
        summary,
    })
}

async fn register(
    State(registry): State<Arc<Registry>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let read = read_registration(&body).map_err(|error| {
        registry
            .boot
            .metrics
            .count("register", StatusCode::BAD_REQUEST);
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("not a registration: {error}"),
        )
    })?;
    let entry = registry.authorize("register", &read.system_uuid, &headers, peer)?;
    let summary = read.summary;
    write_facts(
        &registry.client,
        &entry.server,
        &read.status,
        conditions::REASON_REPORT_RECEIVED,
        &summary,
    )
    .await
    .map_err(|error| unavailable(&entry.server, &error))?;
    tracing::info!(server = %entry.server, "{summary}");
    registry.boot.metrics.count("register", StatusCode::CREATED);
    Ok((StatusCode::CREATED, "registered\n").into_response())
}

async fn system(
    State(registry): State<Arc<Registry>>,
    Path(uuid): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let entry = registry.authorize("systems", &uuid, &headers, peer)?;
    let server = Api::<Server>::all(registry.client.clone())
        .get_opt(&entry.server)
        .await
        .ok()
        .flatten();
    let status = server.and_then(|server| server.status).unwrap_or_default();
    if !status.conditions.iter().any(|c| c.type_ == PROBE_REPORTED) {
        registry
            .boot
            .metrics
            .count("systems", StatusCode::NOT_FOUND);
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("no report for system {uuid}"),
        ));
    }
    registry.boot.metrics.count("systems", StatusCode::OK);
    Ok(axum::Json(report_from_status(&status)).into_response())
}

async fn forget(
    State(registry): State<Arc<Registry>>,
    Path(uuid): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let entry = registry.authorize("delete", &uuid, &headers, peer)?;
    // Applying nothing under the registry's manager removes every field it wrote.
    registry.apply(&entry.server, json!({})).await?;
    registry.boot.metrics.count("delete", StatusCode::OK);
    Ok((StatusCode::OK, "deleted\n").into_response())
}

/// `POST /bootstate` body (metal-operator's boot state: the discovery system came up).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BootState {
    /// The machine's SMBIOS system UUID.
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    /// Whether the machine has booted.
    #[serde(default)]
    pub booted: bool,
}

/// Reads a `POST /bootstate` body.
pub fn read_boot_state(body: &[u8]) -> Result<BootState, serde_json::Error> {
    serde_json::from_slice(body)
}

async fn boot_state(
    State(registry): State<Arc<Registry>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let state = read_boot_state(&body).map_err(|error| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("not a boot state: {error}"),
        )
    })?;
    let entry = registry.authorize("bootstate", &state.system_uuid, &headers, peer)?;
    if state.booted {
        registry.boot.report(&entry, Fetch::BootState, None);
    }
    registry.boot.metrics.count("bootstate", StatusCode::OK);
    Ok((StatusCode::OK, "ok\n").into_response())
}

/// The `ProbeReported` message: what arrived, and when the machine says it collected it.
/// Freshness is judged by the arrival (the condition's time), never by the machine's clock,
/// which is often unset in a discovery system; a report that states no collection time says so
/// here instead of passing silently.
fn summary(report: &Report, status: &ServerStatus) -> String {
    let collected = match report.collected_at() {
        Collected::At(at) => format!("collected at {at}"),
        Collected::Unstated => String::from(
            "no collection time stated (no, null or zero timestamp); its arrival stands for it",
        ),
        Collected::Unreadable => format!(
            "collection time {:?} is not an RFC 3339 time; its arrival stands for it",
            report.timestamp
        ),
    };
    format!(
        "metalprobe reported {} network interfaces, {} CPUs, {} block devices and {} accelerators; {collected}",
        status.network_interfaces.len(),
        report.cpu.len(),
        report.storage.len(),
        status.accelerators.len()
    )
}

fn non_empty(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// Bytes as a Kubernetes quantity: binary units when exact (`16Gi`), plain bytes otherwise.
pub fn quantity(bytes: u64) -> Quantity {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return Quantity(format!("{}{unit}", bytes / size));
        }
    }
    Quantity(bytes.to_string())
}

/// The bytes a Kubernetes quantity stands for, if it is a whole number of bytes (`16Gi`,
/// `937692504Ki`, `8G`, `1000`); `None` for fractions, exponents and negative values.
pub fn quantity_bytes(quantity: &Quantity) -> Option<u64> {
    let text = quantity.0.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let multiplier: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// The Server status fields a report fills (the registry's part of the status).
pub fn status_from_report(report: &Report) -> ServerStatus {
    let neighbors = |name: &str| -> Vec<LldpNeighbor> {
        report
            .lldp
            .iter()
            .filter(|lldp| lldp.name == name)
            .flat_map(|lldp| &lldp.neighbors)
            .map(|n| LldpNeighbor {
                mac_address: non_empty(&n.chassis_id),
                port_id: non_empty(&n.port_id),
                port_description: non_empty(&n.port_description),
                system_name: non_empty(&n.system_name),
                system_description: non_empty(&n.system_description),
            })
            .collect()
    };
    let system = &report.system_info.system_information;
    ServerStatus {
        manufacturer: non_empty(&system.manufacturer),
        model: non_empty(&system.product_name),
        serial_number: non_empty(&system.serial_number),
        sku: non_empty(&system.sku_number),
        bios_version: non_empty(&report.system_info.bios_information.version),
        network_interfaces: report
            .network_interfaces
            .iter()
            .filter(|nic| !nic.mac_address.is_empty())
            .map(|nic| {
                let mut ips: Vec<String> = nic
                    .ip_addresses
                    .iter()
                    .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
                    .cloned()
                    .collect();
                if ips.is_empty() && nic.ip_address.parse::<std::net::IpAddr>().is_ok() {
                    ips.push(nic.ip_address.clone());
                }
                NetworkInterface {
                    name: nic.name.clone(),
                    ip: ips.first().cloned(),
                    ips,
                    mac_address: nic.mac_address.to_ascii_lowercase(),
                    carrier_status: non_empty(&nic.carrier_status),
                    neighbors: neighbors(&nic.name),
                }
            })
            .collect(),
        processors: report
            .cpu
            .iter()
            .map(|cpu| Processor {
                id: cpu.id.to_string(),
                type_: Some(String::from("CPU")),
                manufacturer: non_empty(&cpu.vendor),
                model: non_empty(&cpu.model),
                total_cores: i32::try_from(cpu.total_cores).ok(),
                total_threads: i32::try_from(cpu.total_hardware_threads).ok(),
                ..Processor::default()
            })
            .collect(),
        total_system_memory: Some(report.memory.iter().map(|m| m.size).sum::<u64>())
            .filter(|total| *total > 0)
            .map(quantity),
        storages: if report.storage.is_empty() {
            Vec::new()
        } else {
            vec![Storage {
                name: String::from("metalprobe"),
                drives: report
                    .storage
                    .iter()
                    .map(|disk| StorageDrive {
                        name: disk.name.clone(),
                        media_type: Some(String::from(if disk.rotational { "HDD" } else { "SSD" })),
                        capacity: Some(quantity(disk.size_bytes)),
                        vendor: non_empty(&disk.vendor),
                        model: non_empty(&disk.model),
                        ..StorageDrive::default()
                    })
                    .collect(),
                ..Storage::default()
            }]
        },
        accelerators: accelerators(report),
        ..ServerStatus::default()
    }
}

/// The report's PCI devices that are accelerators, by the rules and in the form out-of-band
/// discovery uses ([`pci_accelerator`]), named by their PCI address. Only devices with a
/// class code can be told apart: metal-operator's probe sends none, so its reports have no
/// accelerators.
fn accelerators(report: &Report) -> Vec<Accelerator> {
    report
        .pci_devices
        .iter()
        .filter_map(|device| {
            pci_accelerator(&PciFunction {
                name: &device.address,
                device_class: device_class(&device.class),
                vendor: Some(&device.vendor),
                model: Some(&device.product),
                vendor_id: Some(&device.vendor_id),
                device_id: Some(&device.product_id),
            })
        })
        .collect()
}

/// metal-operator's `GET /systems/<uuid>` answer from what the Server's status holds: the
/// network interfaces with LLDP neighbours, the DMI identity, CPUs, memory and disks, and as
/// `timestamp` the arrival of the latest report (`ProbeReported`'s time), which is what
/// metal-operator's controller judges freshness by. Go's `encoding/json` reads it into
/// metal-operator's `registry.Server`.
pub fn report_from_status(status: &ServerStatus) -> Report {
    let mut report = Report::default();
    if let Some(reported) = status.conditions.iter().find(|c| c.type_ == PROBE_REPORTED) {
        report.timestamp = reported.last_transition_time.0.to_string();
    }
    let system = &mut report.system_info.system_information;
    system.manufacturer = status.manufacturer.clone().unwrap_or_default();
    system.product_name = status.model.clone().unwrap_or_default();
    system.serial_number = status.serial_number.clone().unwrap_or_default();
    system.sku_number = status.sku.clone().unwrap_or_default();
    report.system_info.bios_information.version = status.bios_version.clone().unwrap_or_default();
    for nic in &status.network_interfaces {
        report
            .network_interfaces
            .push(metalprobe::report::NetworkInterface {
                name: nic.name.clone(),
                ip_address: nic.ip.clone().unwrap_or_default(),
                ip_addresses: nic.ips.clone(),
                mac_address: nic.mac_address.clone(),
                carrier_status: nic.carrier_status.clone().unwrap_or_default(),
            });
        if !nic.neighbors.is_empty() {
            report.lldp.push(LldpInterface {
                name: nic.name.clone(),
                neighbors: nic
                    .neighbors
                    .iter()
                    .map(|n| ProbeNeighbor {
                        chassis_id: n.mac_address.clone().unwrap_or_default(),
                        port_id: n.port_id.clone().unwrap_or_default(),
                        port_description: n.port_description.clone().unwrap_or_default(),
                        system_name: n.system_name.clone().unwrap_or_default(),
                        system_description: n.system_description.clone().unwrap_or_default(),
                    })
                    .collect(),
            });
        }
    }
    report.cpu = status
        .processors
        .iter()
        .enumerate()
        .map(|(index, cpu)| Cpu {
            id: cpu
                .id
                .parse()
                .unwrap_or_else(|_| u32::try_from(index).unwrap_or(u32::MAX)),
            total_cores: cpu
                .total_cores
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            total_hardware_threads: cpu
                .total_threads
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            vendor: cpu.manufacturer.clone().unwrap_or_default(),
            model: cpu.model.clone().unwrap_or_default(),
            capabilities: Vec::new(),
        })
        .collect();
    // The status keeps only the total; metal-operator's readers sum the devices.
    report.memory = status
        .total_system_memory
        .as_ref()
        .and_then(quantity_bytes)
        .map(|size| vec![Memory { size }])
        .unwrap_or_default();
    report.storage = status
        .storages
        .iter()
        .flat_map(|storage| &storage.drives)
        .map(|drive| BlockDevice {
            name: drive.name.clone(),
            rotational: drive.media_type.as_deref() == Some("HDD"),
            vendor: drive.vendor.clone().unwrap_or_default(),
            model: drive.model.clone().unwrap_or_default(),
            size_bytes: drive
                .capacity
                .as_ref()
                .and_then(quantity_bytes)
                .unwrap_or_default(),
            ..BlockDevice::default()
        })
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use metalprobe::report::PciDevice;

    use super::*;

    fn report() -> Report {
        let mut report = Report {
            network_interfaces: vec![
                metalprobe::report::NetworkInterface {
                    name: String::from("eth0"),
                    ip_address: String::from("10.0.0.5"),
                    ip_addresses: vec![String::from("10.0.0.5"), String::from("not-an-ip")],
                    mac_address: String::from("52:54:00:AA:00:01"),
                    carrier_status: String::from("up"),
                },
                metalprobe::report::NetworkInterface {
                    name: String::from("eth1"),
                    ip_address: String::from("192.0.2.9"),
                    mac_address: String::from("52:54:00:aa:00:02"),
                    ..Default::default()
                },
            ],
            lldp: vec![LldpInterface {
                name: String::from("eth0"),
                neighbors: vec![ProbeNeighbor {
                    chassis_id: String::from("aa:bb:cc:00:00:01"),
                    port_id: String::from("Ethernet1/7"),
                    system_name: String::from("leaf-1"),
                    ..Default::default()
                }],
            }],
            cpu: vec![Cpu {
                id: 0,
                total_cores: 8,
                total_hardware_threads: 16,
                vendor: String::from("GenuineIntel"),
                model: String::from("Xeon"),
                capabilities: Vec::new(),
            }],
            memory: vec![Memory { size: 64 << 30 }],
            storage: vec![BlockDevice {
                name: String::from("nvme0n1"),
                size_bytes: 960_197_124_096,
                ..Default::default()
            }],
            ..Report::default()
        };
        report.system_info.system_information.manufacturer = String::from("Contoso");
        report
    }

    #[test]
    fn a_report_becomes_server_status() {
        let status = status_from_report(&report());
        assert_eq!(status.manufacturer.as_deref(), Some("Contoso"));
        let eth0 = &status.network_interfaces[0];
        assert_eq!(eth0.mac_address, "52:54:00:aa:00:01");
        assert_eq!(eth0.ips, ["10.0.0.5"], "invalid addresses are dropped");
        assert_eq!(eth0.neighbors[0].system_name.as_deref(), Some("leaf-1"));
        assert_eq!(
            status.network_interfaces[1].ips,
            ["192.0.2.9"],
            "the deprecated single address is the fallback"
        );
        assert_eq!(status.processors[0].total_threads, Some(16));
        assert_eq!(
            status.total_system_memory,
            Some(Quantity(String::from("64Gi")))
        );
        assert_eq!(
            status.storages[0].drives[0].capacity,
            Some(Quantity(String::from("937692504Ki")))
        );
    }

    fn pci(address: &str, vendor_id: &str, product_id: &str, class: &str) -> PciDevice {
        PciDevice {
            address: address.to_owned(),
            vendor: metalprobe::collect::vendor_name(vendor_id).to_owned(),
            vendor_id: vendor_id.to_owned(),
            product_id: product_id.to_owned(),
            class: class.to_owned(),
            numa_node_id: -1,
            ..PciDevice::default()
        }
    }

    #[test]
    fn a_reports_accelerators_are_its_pci_devices_of_an_accelerator_class() {
        let report = Report {
            pci_devices: vec![
                pci("0000:03:00.0", "1a03", "2000", "0x030000"),
                pci("0000:18:00.0", "8086", "1572", "0x020000"),
                pci("0000:41:00.0", "10de", "2330", "0x030200"),
                pci("0000:c1:00.0", "1da3", "1020", "0x120000"),
                // As metal-operator's probe sends it: no class code.
                PciDevice {
                    product: String::from("GH100 [H100 SXM5 80GB]"),
                    class: String::new(),
                    ..pci("0000:42:00.0", "10de", "2330", "")
                },
            ],
            ..report()
        };
        let status = status_from_report(&report);
        /// `(name, class, vendor, vendorID, deviceID)`.
        type Seen<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let found: Vec<Seen<'_>> = status
            .accelerators
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.class.as_deref(),
                    a.vendor.as_deref(),
                    a.vendor_id.as_deref(),
                    a.device_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "0000:41:00.0",
                    Some("DisplayController"),
                    Some("NVIDIA Corporation"),
                    Some("0x10de"),
                    Some("0x2330")
                ),
                (
                    "0000:c1:00.0",
                    Some("ProcessingAccelerators"),
                    Some("Habana Labs Ltd."),
                    Some("0x1da3"),
                    Some("0x1020")
                ),
            ],
            "the BMC's VGA, the NIC and a device without a class code are not accelerators"
        );
        assert!(
            summary(&report, &status).contains("and 2 accelerators;"),
            "{}",
            summary(&report, &status)
        );
    }

    #[test]
    fn one_gpu_seen_in_band_and_out_of_band_is_one_accelerator() {
        use crate::plugins::hardware::{Inventory, PcieDevice};
        use crate::plugins::types::{PowerState, System};
        // What a BMC lists for the GPU whose sysfs entry the probe reports.
        let system = System {
            uri: String::from("/redfish/v1/Systems/1"),
            uuid: None,
            manufacturer: None,
            model: None,
            serial: None,
            power: PowerState::Off,
            nics: Vec::new(),
            boot_targets: Vec::new(),
            boot_override: true,
            inventory: Some(Inventory {
                pcie_devices: vec![PcieDevice {
                    id: String::from("/redfish/v1/Systems/1/PCIeDevices/GPU0"),
                    name: Some(String::from("0000:41:00.0")),
                    manufacturer: Some(String::from("NVIDIA Corporation")),
                    device_class: Some(String::from("DisplayController")),
                    vendor_id: Some(String::from("0x10DE")),
                    device_id: Some(String::from("0x2330")),
                    ..PcieDevice::default()
                }],
                ..Inventory::default()
            }),
        };
        let in_band = status_from_report(&Report {
            pci_devices: vec![pci("0000:41:00.0", "10de", "2330", "0x030200")],
            ..Report::default()
        });
        let out_of_band = crate::controllers::hardware_facts::facts(&system);
        assert_eq!(in_band.accelerators.len(), 1);
        assert_eq!(in_band.accelerators, out_of_band.accelerators);
    }

    #[test]
    fn the_status_answers_metal_operators_systems_query() {
        let report = report_from_status(&status_from_report(&report()));
        assert_eq!(report.network_interfaces.len(), 2);
        assert_eq!(report.lldp[0].neighbors[0].port_id, "Ethernet1/7");
        assert_eq!(
            report.system_info.system_information.manufacturer,
            "Contoso"
        );
    }

    /// Registrations exactly as Go's `encoding/json` marshals metal-operator's types,
    /// written by `tests/data/go-registry` (the `registry` integration test regenerates them).
    fn go_registration(case: &str) -> Registration {
        let json = match case {
            "probe" => include_str!("../../tests/data/go-registry/probe.json"),
            "zero" => include_str!("../../tests/data/go-registry/zero.json"),
            "null-time" => include_str!("../../tests/data/go-registry/null-time.json"),
            other => panic!("no Go fixture {other}"),
        };
        serde_json::from_str(json).unwrap_or_else(|error| panic!("{case}: {error}"))
    }

    #[test]
    fn a_report_go_marshalled_with_nil_slices_becomes_server_status() {
        let registration = go_registration("probe");
        assert_eq!(
            registration.system_uuid,
            "2e6f0000-0000-4000-8000-000000000001"
        );
        let status = status_from_report(&registration.data);
        let eno2 = &status.network_interfaces[1];
        assert_eq!(eno2.mac_address, "52:54:00:2e:00:02");
        assert!(eno2.ips.is_empty() && eno2.ip.is_none(), "{eno2:?}");
        assert!(eno2.neighbors.is_empty());
        assert_eq!(status.network_interfaces[0].ips, ["10.0.0.5", "fd00::5"]);
        assert_eq!(
            status.network_interfaces[0].neighbors[0].port_id.as_deref(),
            Some("Ethernet1/7")
        );
        assert_eq!(status.processors[0].total_threads, Some(8));
        assert_eq!(
            status.total_system_memory,
            Some(Quantity(String::from("16Gi")))
        );
        assert_eq!(status.sku.as_deref(), Some("SKU-1"));
        assert!(
            summary(&registration.data, &status).ends_with("collected at 2026-01-02T03:04:05Z")
        );
    }

    #[rstest::rstest]
    #[case::zero_value("zero")]
    #[case::zero_time_written_as_null("null-time")]
    fn a_go_report_without_a_collection_time_says_so(#[case] case: &str) {
        let report = go_registration(case).data;
        assert_eq!(report.collected_at(), Collected::Unstated);
        let message = summary(&report, &status_from_report(&report));
        assert!(message.contains("no collection time stated"), "{message}");
    }

    #[test]
    fn the_systems_answer_carries_the_arrival_cpus_memory_and_disks() {
        let mut status = status_from_report(&report());
        let mut answer = serde_json::to_value(report_from_status(&status)).expect("JSON");
        assert!(
            answer.get("timestamp").is_none(),
            "no report time, no timestamp (Go cannot read \"\"): {answer}"
        );
        status.conditions.push(
            serde_json::from_value(json!({"type": PROBE_REPORTED, "status": "True",
                "reason": "ReportReceived", "message": "",
                "lastTransitionTime": "2026-05-01T10:00:00Z"}))
            .expect("condition"),
        );
        answer = serde_json::to_value(report_from_status(&status)).expect("JSON");
        assert_eq!(answer["timestamp"], "2026-05-01T10:00:00Z");
        assert_eq!(answer["cpu"][0]["totalHardwareThreads"], 16);
        assert_eq!(answer["cpu"][0]["vendor"], "GenuineIntel");
        assert_eq!(answer["memory"][0]["size"], 64u64 << 30);
        assert_eq!(answer["storage"][0]["sizeBytes"], 960_197_124_096u64);
        assert_eq!(answer["storage"][0]["name"], "nvme0n1");
    }

    #[rstest::rstest]
    #[case::canonical("Bearer t0ken", Some("t0ken"))]
    #[case::lower_case("bearer t0ken", Some("t0ken"))]
    #[case::upper_case("BEARER t0ken", Some("t0ken"))]
    #[case::extra_spaces("  Bearer   t0ken ", Some("t0ken"))]
    #[case::tab("bearer\tt0ken", Some("t0ken"))]
    #[case::other_scheme("Basic dXNlcjpwdw==", None)]
    #[case::scheme_alone("Bearer", None)]
    #[case::no_token("Bearer  ", None)]
    #[case::scheme_prefix("Bearerish t0ken", None)]
    fn the_authorization_scheme_is_matched_without_case(
        #[case] header: &str,
        #[case] token: Option<&str>,
    ) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, header.parse().expect("header value"));
        assert_eq!(bearer_token(&headers), token);
    }

    #[test]
    fn quantities_read_back_as_bytes() {
        for bytes in [16u64 << 30, 1536 << 20, 1000, 960_197_124_096] {
            assert_eq!(quantity_bytes(&quantity(bytes)), Some(bytes));
        }
        assert_eq!(
            quantity_bytes(&Quantity(String::from("8G"))),
            Some(8_000_000_000)
        );
        assert_eq!(quantity_bytes(&Quantity(String::from("1.5Gi"))), None);
        assert_eq!(quantity_bytes(&Quantity(String::from("1e9"))), None);
    }

    #[test]
    fn quantities_use_binary_units_when_exact() {
        assert_eq!(quantity(16 << 30).0, "16Gi");
        assert_eq!(quantity(1536 << 20).0, "1536Mi");
        assert_eq!(quantity(1000).0, "1000");
    }
}
