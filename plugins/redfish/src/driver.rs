//! Redfish operations, generic over the transport so they run natively in unit tests.

use std::time::Duration;

use ferrometal_plugin_sdk::bmc_driver::http::{
    HttpError, Method, Request, Response, Transport, check_status, get_json, send_json,
};
use ferrometal_plugin_sdk::bmc_driver::{
    BootOverride, BootTarget, Identity, Nic, NicKind, PowerAction, PowerState, System,
};
use ferrometal_plugin_sdk::types::PluginError;
use serde_json::{Value, json};

use crate::expand::{Collections, Expand, members};
use crate::model::{ComputerSystem, EthernetInterface, Manager, ServiceRoot};
use crate::quirks::{Quirk, needs_firmware, quirks_for};

/// The Redfish service root.
pub const ROOT: &str = "/redfish/v1";

fn power(state: Option<&str>) -> PowerState {
    match state {
        Some("On") => PowerState::On,
        Some("Off") => PowerState::Off,
        Some("PoweringOn") => PowerState::PoweringOn,
        Some("PoweringOff") => PowerState::PoweringOff,
        _ => PowerState::Unknown,
    }
}

/// The path of the service's first manager (the BMC), if it lists any.
fn first_manager(http: &impl Transport, root: &ServiceRoot) -> Result<Option<String>, PluginError> {
    match &root.managers {
        Some(link) => {
            let managers: crate::model::Collection = get_json(http, &link.id)?;
            Ok(managers.members.first().map(|member| member.id.clone()))
        }
        None => Ok(None),
    }
}

/// Identifies the BMC and every system behind it. The manager is the one the first system
/// names in `Links.ManagedBy` (no walk of the Managers collection), else the collection's
/// first. Where the service root advertises `$expand` the Systems collection and each
/// system's EthernetInterfaces come with their members' bodies ([`crate::expand`]): a BMC
/// with one system and two NICs costs 4 requests instead of 7, and each further system one
/// (its NICs) instead of two plus one per NIC.
pub fn probe(http: &impl Transport) -> Result<Identity, PluginError> {
    let root: ServiceRoot = get_json(http, ROOT)?;
    let collections = Collections::new(Expand::advertised(&root.protocol_features));
    let systems_link = root.systems.as_ref().ok_or_else(|| {
        PluginError::Unsupported(String::from(
            "the Redfish service has no Systems collection",
        ))
    })?;
    let members = members(&collections.get(http, &systems_link.id)?)?;
    let mut managed_by = None;
    let mut systems = Vec::with_capacity(members.len());
    for member in members {
        let uri = member.id.clone();
        let resource: Value = member.read(http)?;
        let (system, manager) = read_system(http, &collections, &uri, &resource)?;
        managed_by = managed_by.or(manager);
        systems.push(system);
    }
    let manager_link = match managed_by {
        Some(link) => Some(link),
        None => first_manager(http, &root)?,
    };
    let manager = match manager_link {
        Some(link) => Some(get_json::<Manager>(http, &link)?),
        None => None,
    };
    let manager = manager.as_ref();
    Ok(Identity {
        manufacturer: manager.and_then(|m| m.manufacturer.clone()),
        model: manager.and_then(|m| m.model.clone()),
        serial: manager.and_then(|m| m.serial_number.clone()),
        firmware: manager.and_then(|m| m.firmware_version.clone()),
        manager_uuid: manager.and_then(|m| m.uuid.clone()),
        systems,
    })
}

/// One system, its NICs and its hardware inventory, at `uri` (its `@odata.id`).
/// `collections` is [`Collections::unread`] unless the call has read the service root
/// already (a session login): the root is then read before the first collection, which is
/// why `get-system` pays for it is written there.
pub fn get_system(
    http: &impl Transport,
    collections: &Collections,
    uri: &str,
) -> Result<System, PluginError> {
    let resource: Value = get_json(http, uri)?;
    let (mut system, _) = read_system(http, collections, uri, &resource)?;
    system.inventory = Some(crate::inventory::read(http, collections, &resource)?);
    Ok(system)
}

/// One system (its resource at `uri` read already) and its NICs, without the inventory, and
/// the first manager it names in `Links.ManagedBy`.
fn read_system(
    http: &impl Transport,
    collections: &Collections,
    uri: &str,
    resource: &Value,
) -> Result<(System, Option<String>), PluginError> {
    let system: ComputerSystem = serde_json::from_value(resource.clone())
        .map_err(|error| PluginError::Other(Some(format!("cannot read {uri}: {error}"))))?;
    let nics = match &system.ethernet_interfaces {
        Some(link) => nics(http, collections, &link.id)?,
        None => Vec::new(),
    };
    let managed_by = system.links.managed_by.first().map(|link| link.id.clone());
    let system = System {
        uri: uri.to_owned(),
        uuid: system.uuid.map(|uuid| uuid.to_ascii_lowercase()),
        manufacturer: system.manufacturer,
        model: system.model,
        serial: system.serial_number,
        power: power(system.power_state.as_deref()),
        nics,
        boot_override: system
            .boot
            .as_ref()
            .and_then(|boot| boot.target.as_deref())
            .is_some_and(|target| !target.is_empty()),
        boot_targets: system
            .boot
            .map(|boot| boot.allowed_targets)
            .unwrap_or_default(),
        inventory: None,
    };
    Ok((system, managed_by))
}

/// The NICs of a system; a missing collection (404, e.g. a minimal feature set) is none.
fn nics(
    http: &impl Transport,
    collections: &Collections,
    path: &str,
) -> Result<Vec<Nic>, PluginError> {
    let response = collections.get(http, path)?;
    if response.status == 404 {
        return Ok(Vec::new());
    }
    let mut nics = Vec::new();
    for member in members(&response)? {
        let interface: EthernetInterface = member.read(http)?;
        let kind = nic_kind(&interface);
        if let Some(mac) = interface
            .mac
            .or(interface.permanent_mac)
            .filter(|mac| !mac.is_empty())
        {
            let mac = mac.to_ascii_lowercase();
            // A VLAN interface repeats its parent's MAC: one NIC.
            if nics.iter().any(|nic: &Nic| nic.mac == mac) {
                continue;
            }
            nics.push(Nic {
                mac,
                name: interface.name,
                kind,
                link_up: match interface.link_status.as_deref() {
                    Some("LinkUp") => Some(true),
                    Some("LinkDown" | "NoLink") => Some(false),
                    _ => None,
                },
            });
        }
    }
    Ok(nics)
}

/// What an interface is to in-band discovery: the host's end of a Redfish host interface
/// (linked to it, DMTF's `ToManager`), absent, disabled, or a NIC the system's OS sees.
fn nic_kind(interface: &EthernetInterface) -> NicKind {
    if interface.links.host_interface.is_some() {
        return NicKind::HostInterface;
    }
    match interface.status.state.as_deref() {
        Some("Absent") => NicKind::Absent,
        Some("Disabled") => NicKind::Disabled,
        _ if interface.enabled == Some(false) => NicKind::Disabled,
        _ => NicKind::System,
    }
}

/// A GET with `Accept: application/json`, whatever the status.
pub fn get(http: &impl Transport, path: &str) -> Result<Response, PluginError> {
    Ok(http.send(json_get(path.to_owned()))?)
}

/// A GET of `path` with `query` (`$expand=.($levels=1)` and the like), whatever the status;
/// the transport's own error, so that a caller can tell an answer too large from others.
///
/// The query goes as DSP0266 writes it: `$`, `(`, `)`, `=`, `.` and `*` are legal in a URI
/// query (RFC 3986 `pchar` / `sub-delims`), the host's URL parser (WHATWG, the `url` crate)
/// and hyper pass them unencoded (`host/src/plugins/bmc_http.rs` tests this), and BMCs that
/// implement `$expand` match them literally.
pub fn get_query(http: &impl Transport, path: &str, query: &str) -> Result<Response, HttpError> {
    let separator = if path.contains('?') { '&' } else { '?' };
    http.send(json_get(format!("{path}{separator}{query}")))
}

fn json_get(path: String) -> Request {
    Request {
        method: Method::Get,
        path,
        headers: vec![(String::from("Accept"), String::from("application/json"))],
        body: None,
    }
}

/// The power state of the system at `uri`.
pub fn power_state(http: &impl Transport, uri: &str) -> Result<PowerState, PluginError> {
    let system: ComputerSystem = get_json(http, uri)?;
    Ok(power(system.power_state.as_deref()))
}

fn reset_type(action: PowerAction) -> &'static str {
    match action {
        PowerAction::On => "On",
        PowerAction::ForceOff => "ForceOff",
        PowerAction::GracefulShutdown => "GracefulShutdown",
        PowerAction::ForceRestart => "ForceRestart",
        PowerAction::GracefulRestart => "GracefulRestart",
        PowerAction::PowerCycle => "PowerCycle",
    }
}

/// The state a system settles in after `action`.
pub fn settled_state(action: PowerAction) -> PowerState {
    match action {
        PowerAction::ForceOff | PowerAction::GracefulShutdown => PowerState::Off,
        _ => PowerState::On,
    }
}

/// Issues `action` with `ComputerSystem.Reset`. The request goes straight to the action's
/// standard target (`<system>/Actions/ComputerSystem.Reset`, where DSP0266 places it): one
/// request. Only if the BMC refuses it is the system read, to name a reset type it does not
/// offer or to post again to a target it advertises elsewhere.
pub fn set_power(http: &impl Transport, uri: &str, action: PowerAction) -> Result<(), PluginError> {
    let wanted = reset_type(action);
    let body = json!({ "ResetType": wanted });
    let standard = format!("{uri}/Actions/ComputerSystem.Reset");
    let refused = match send_json(http, Method::Post, &standard, &body) {
        Ok(_) => return Ok(()),
        // Credentials and transport failures are not about the target or the type.
        Err(error @ (PluginError::Unauthorized(_) | PluginError::Unreachable(_))) => {
            return Err(error);
        }
        Err(error) => error,
    };
    let system: ComputerSystem = get_json(http, uri)?;
    let reset = system.actions.reset.ok_or_else(|| {
        PluginError::Unsupported(format!("{uri} offers no #ComputerSystem.Reset action"))
    })?;
    if !reset.allowed.is_empty() && !reset.allowed.iter().any(|allowed| allowed == wanted) {
        return Err(PluginError::Unsupported(format!(
            "{uri} does not offer reset type {wanted} (it offers {})",
            reset.allowed.join(", ")
        )));
    }
    if reset.target == standard {
        return Err(refused);
    }
    send_json(http, Method::Post, &reset.target, &body)?;
    Ok(())
}

/// Time as the power wait sees it: the call's elapsed time and a way to pass some.
pub trait Clock {
    /// Time since the call started.
    fn elapsed(&self) -> Duration;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock, started when the call started.
pub struct CallClock(pub std::time::Instant);

impl Clock for CallClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Polls the power state until it is `wanted` or the call has run for `budget` (counted
/// from the start of the call, so requests made before and during the wait count too),
/// sleeping 0.5 s, 1 s, 2 s… (capped at 4 s) between reads, never past the budget.
/// Returns the last state read.
pub fn wait_for_power(
    http: &impl Transport,
    uri: &str,
    wanted: PowerState,
    budget: Duration,
    clock: &impl Clock,
) -> Result<PowerState, PluginError> {
    let mut pause = Duration::from_millis(500);
    loop {
        let state = power_state(http, uri)?;
        let left = budget.saturating_sub(clock.elapsed());
        if state == wanted || left.is_zero() {
            return Ok(state);
        }
        clock.sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_secs(4));
    }
}

fn target_name(target: BootTarget) -> &'static str {
    match target {
        BootTarget::None => "None",
        BootTarget::Pxe => "Pxe",
        BootTarget::Hdd => "Hdd",
        BootTarget::Cd => "Cd",
        BootTarget::UefiHttp => "UefiHttp",
        BootTarget::BiosSetup => "BiosSetup",
        BootTarget::Other => "None",
    }
}

fn target_from(name: Option<&str>) -> BootTarget {
    match name {
        Some("None") | None => BootTarget::None,
        Some("Pxe") => BootTarget::Pxe,
        Some("Hdd") => BootTarget::Hdd,
        Some("Cd") => BootTarget::Cd,
        Some("UefiHttp") => BootTarget::UefiHttp,
        Some("BiosSetup") => BootTarget::BiosSetup,
        Some(_) => BootTarget::Other,
    }
}

/// The `Boot` patch for `boot` on a system with `current` settings and `quirks`.
///
/// Target `None` clears the override: `BootSourceOverrideEnabled: Disabled` with target
/// `None` (or `Pxe` for BMCs that reject `Disabled` with `None`; the target is ignored once
/// disabled). The mode is only sent when the BMC reports one (BMCs without
/// `BootSourceOverrideMode` reject the whole PATCH, metal-operator #982), it differs, and
/// the vendor tolerates writing it.
pub fn boot_patch(boot: &BootOverride, current: &crate::model::Boot, quirks: &[Quirk]) -> Value {
    if boot.target == BootTarget::None {
        let target = if quirks.contains(&Quirk::ClearWithPxeTarget) {
            "Pxe"
        } else {
            "None"
        };
        return json!({ "Boot": {
            "BootSourceOverrideTarget": target,
            "BootSourceOverrideEnabled": "Disabled",
        }});
    }
    let mut patch = json!({
        "BootSourceOverrideTarget": target_name(boot.target),
        "BootSourceOverrideEnabled": if boot.persistent { "Continuous" } else { "Once" },
    });
    let mode = if boot.uefi { "UEFI" } else { "Legacy" };
    if !quirks.contains(&Quirk::OmitBootMode)
        && current
            .mode
            .as_deref()
            .is_some_and(|current| current != mode)
    {
        patch["BootSourceOverrideMode"] = json!(mode);
    }
    if boot.target == BootTarget::UefiHttp
        && let Some(uri) = &boot.http_boot_uri
        && !quirks.contains(&Quirk::NoHttpBootUri)
    {
        patch["HttpBootUri"] = json!(uri);
    }
    json!({ "Boot": patch })
}

/// What a boot override left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// What the BMC stored, read back.
    pub boot: BootOverride,
    /// The quirks that shaped the PATCH and the read-back.
    pub quirks: Vec<Quirk>,
    /// A `Once` request reads back as `Continuous`.
    pub persisted: Persisted,
}

/// How a one-time request came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// As requested (or a persistent request).
    AsRequested,
    /// `Continuous` for `Once`, as the vendor is known to report (a read-back quirk).
    KnownQuirk,
    /// `Continuous` for `Once` on a BMC not known for it: the override may persist.
    Unexpected,
}

/// The firmware version of the system's manager (`Links.ManagedBy`, else the first
/// manager), for quirks keyed by firmware.
fn manager_firmware(
    http: &impl Transport,
    system: &ComputerSystem,
) -> Result<Option<String>, PluginError> {
    let link = match system.links.managed_by.first() {
        Some(link) => Some(link.id.clone()),
        None => first_manager(http, &get_json(http, ROOT)?)?,
    };
    match link {
        Some(link) => Ok(get_json::<Manager>(http, &link)?.firmware_version),
        None => Ok(None),
    }
}

/// Sets a boot override and returns what the BMC stored (read back, not assumed).
pub fn set_boot_override(
    http: &impl Transport,
    uri: &str,
    boot: &BootOverride,
) -> Result<Stored, PluginError> {
    let system: ComputerSystem = get_json(http, uri)?;
    let current = system.boot.clone().unwrap_or_default();
    let wanted = target_name(boot.target);
    // Clearing is `Enabled: Disabled`, allowed whatever targets the BMC lists.
    if boot.target != BootTarget::None
        && !current.allowed_targets.is_empty()
        && !current.allowed_targets.iter().any(|t| t == wanted)
    {
        return Err(PluginError::Unsupported(format!(
            "{uri} does not offer boot target {wanted} (it offers {})",
            current.allowed_targets.join(", ")
        )));
    }
    let (manufacturer, model) = (system.manufacturer.as_deref(), system.model.as_deref());
    let firmware = if needs_firmware(manufacturer, model) {
        manager_firmware(http, &system)?
    } else {
        None
    };
    let quirks = quirks_for(manufacturer, model, firmware.as_deref());
    let patch = boot_patch(boot, &current, &quirks);
    let response = http.send(Request {
        method: Method::Patch,
        path: uri.to_owned(),
        headers: vec![(
            String::from("Content-Type"),
            String::from("application/json"),
        )],
        body: Some(patch.to_string().into_bytes()),
    })?;
    check_status(&response)?;
    let stored: ComputerSystem = get_json(http, uri)?;
    let stored = stored.boot.unwrap_or_default();
    let disabled = stored.enabled.as_deref() == Some("Disabled");
    let persistent = stored.enabled.as_deref() == Some("Continuous");
    let persisted = if boot.persistent || boot.target == BootTarget::None || !persistent {
        Persisted::AsRequested
    } else if quirks.contains(&Quirk::ContinuousReadBack) {
        Persisted::KnownQuirk
    } else {
        Persisted::Unexpected
    };
    Ok(Stored {
        boot: BootOverride {
            // A disabled override boots normally, whatever target it keeps.
            target: if disabled {
                BootTarget::None
            } else {
                target_from(stored.target.as_deref())
            },
            uefi: stored
                .mode
                .as_deref()
                .map_or(boot.uefi, |mode| mode == "UEFI"),
            persistent,
            http_boot_uri: stored
                .http_boot_uri
                .filter(|uri| !uri.is_empty() && uri != "None"),
        },
        quirks,
        persisted,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::canned::Canned;

    const SYSTEM: &str = r##"{"UUID":"ABCD-1","Manufacturer":"Contoso","PowerState":"Off",
        "Boot":{"BootSourceOverrideTarget":"None","BootSourceOverrideEnabled":"Disabled","BootSourceOverrideMode":"UEFI",
                "BootSourceOverrideTarget@Redfish.AllowableValues":["None","Pxe","Hdd","UefiHttp"]},
        "EthernetInterfaces":{"@odata.id":"/redfish/v1/Systems/1/EthernetInterfaces"},
        "Actions":{"#ComputerSystem.Reset":{"target":"/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                   "ResetType@Redfish.AllowableValues":["On","ForceOff","GracefulShutdown"]}}}"##;

    #[test]
    fn probe_reads_manager_systems_and_nics() {
        let http = Canned::new(&[
            (
                "Get /redfish/v1",
                200,
                r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},"Managers":{"@odata.id":"/redfish/v1/Managers"}}"#,
            ),
            (
                "Get /redfish/v1/Managers",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Managers/bmc"}]}"#,
            ),
            (
                "Get /redfish/v1/Managers/bmc",
                200,
                r#"{"UUID":"m-1","FirmwareVersion":"2.1","Manufacturer":"Contoso"}"#,
            ),
            (
                "Get /redfish/v1/Systems",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}]}"#,
            ),
            ("Get /redfish/v1/Systems/1", 200, SYSTEM),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/EthernetInterfaces/a"}]}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/a",
                200,
                r#"{"MACAddress":"52:54:00:AA:BB:CC","Name":"eth0"}"#,
            ),
        ]);
        let identity = probe(&http).expect("probe");
        assert_eq!(identity.firmware.as_deref(), Some("2.1"));
        assert_eq!(identity.manager_uuid.as_deref(), Some("m-1"));
        assert_eq!(identity.systems[0].uuid.as_deref(), Some("abcd-1"));
        assert_eq!(identity.systems[0].nics[0].mac, "52:54:00:aa:bb:cc");
        assert_eq!(identity.systems[0].power, PowerState::Off);
        assert_eq!(
            identity.systems[0].boot_targets,
            ["None", "Pxe", "Hdd", "UefiHttp"]
        );
    }

    #[test]
    fn one_system_is_read_without_the_rest_of_the_bmc() {
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/2", 200, SYSTEM),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/EthernetInterfaces/a"}]}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/a",
                200,
                r#"{"MACAddress":"52:54:00:AA:BB:CC","Name":"eth0"}"#,
            ),
        ]);
        let system = get_system(
            &http,
            &Collections::new(Expand::Off),
            "/redfish/v1/Systems/2",
        )
        .expect("system");
        assert_eq!(system.uri, "/redfish/v1/Systems/2");
        assert_eq!(system.uuid.as_deref(), Some("abcd-1"));
        assert_eq!(system.nics[0].mac, "52:54:00:aa:bb:cc");
        let paths = http.paths();
        assert_eq!(
            paths,
            [
                "/redfish/v1/Systems/2",
                "/redfish/v1/Systems/1/EthernetInterfaces",
                "/redfish/v1/Systems/1/EthernetInterfaces/a"
            ],
            "the system, its NICs, nothing else"
        );
    }

    #[test]
    fn host_interface_absent_and_disabled_nics_are_told_apart_and_a_bootless_system_is_flagged() {
        // DMTF public-rackmount1's shapes: a VLAN repeating its parent's MAC and the host's
        // end of the BMC host interface (`ToManager`); a DPU-like system without `Boot`.
        let nic = |id: &str| format!("/redfish/v1/Systems/1/EthernetInterfaces/{id}");
        let http = Canned::new(&[
            (
                "Get /redfish/v1",
                200,
                r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"}}"#,
            ),
            (
                "Get /redfish/v1/Systems",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1"},{"@odata.id":"/redfish/v1/Systems/dpu"}]}"#,
            ),
            ("Get /redfish/v1/Systems/1", 200, SYSTEM),
            (
                "Get /redfish/v1/Systems/dpu",
                200,
                r#"{"UUID":"D-1","PowerState":"On","SystemType":"DPU"}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces",
                200,
                &format!(
                    r#"{{"Members":[{{"@odata.id":"{}"}},{{"@odata.id":"{}"}},{{"@odata.id":"{}"}},{{"@odata.id":"{}"}},{{"@odata.id":"{}"}}]}}"#,
                    nic("a"),
                    nic("vlan"),
                    nic("ToManager"),
                    nic("off"),
                    nic("gone")
                ),
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/a",
                200,
                r#"{"MACAddress":"12:44:6A:3B:04:11","Status":{"State":"Enabled"},"InterfaceEnabled":true}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/vlan",
                200,
                r#"{"MACAddress":"12:44:6A:3B:04:11","EthernetInterfaceType":"Virtual"}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/ToManager",
                200,
                r#"{"MACAddress":"AA:BB:CC:DD:EE:FE","InterfaceEnabled":true,
                    "Links":{"HostInterface":{"@odata.id":"/redfish/v1/Managers/BMC/HostInterfaces/1"}}}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/off",
                200,
                r#"{"MACAddress":"AA:BB:CC:DD:EE:01","InterfaceEnabled":false}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces/gone",
                200,
                r#"{"PermanentMACAddress":"AA:BB:CC:DD:EE:02","Status":{"State":"Absent"}}"#,
            ),
        ]);
        let identity = probe(&http).expect("probe");
        let kinds: Vec<(&str, NicKind)> = identity.systems[0]
            .nics
            .iter()
            .map(|nic| (nic.mac.as_str(), nic.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("12:44:6a:3b:04:11", NicKind::System),
                ("aa:bb:cc:dd:ee:fe", NicKind::HostInterface),
                ("aa:bb:cc:dd:ee:01", NicKind::Disabled),
                ("aa:bb:cc:dd:ee:02", NicKind::Absent),
            ]
        );
        assert!(identity.systems[0].boot_override);
        assert!(!identity.systems[1].boot_override, "no Boot object");
        assert!(identity.systems[1].nics.is_empty());
    }

    const EXPAND_NO_LINKS: &str = r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},
        "ProtocolFeaturesSupported":{"ExpandQuery":{"ExpandAll":true,"NoLinks":true,"Levels":true,"MaxLevels":6,"Links":true}}}"#;
    const SYSTEMS: &str = "/redfish/v1/Systems";
    const NICS: &str = "/redfish/v1/Systems/1/EthernetInterfaces";
    const LEVEL_1: &str = "?$expand=.($levels=1)";

    /// SYSTEM, managed by `/redfish/v1/Managers/bmc`.
    fn managed_system() -> String {
        SYSTEM.replacen(
            r#""PowerState":"Off","#,
            r#""@odata.id":"/redfish/v1/Systems/1","PowerState":"Off","Links":{"ManagedBy":[{"@odata.id":"/redfish/v1/Managers/bmc"}]},"#,
            1,
        )
    }

    fn nic(id: &str, mac: &str) -> String {
        format!(r#"{{"@odata.id":"{NICS}/{id}","Id":"{id}","MACAddress":"{mac}"}}"#)
    }

    fn listing(members: &[&str]) -> String {
        format!(r#"{{"Members":[{}]}}"#, members.join(","))
    }

    fn link(path: &str) -> String {
        format!(r#"{{"@odata.id":"{path}"}}"#)
    }

    const MANAGER: (&str, u16, &str) = (
        "Get /redfish/v1/Managers/bmc",
        200,
        r#"{"UUID":"m-1","FirmwareVersion":"2.1"}"#,
    );

    fn macs(identity: &Identity) -> Vec<Vec<String>> {
        identity
            .systems
            .iter()
            .map(|s| s.nics.iter().map(|n| n.mac.clone()).collect())
            .collect()
    }

    #[test]
    fn an_advertised_expand_reads_systems_and_nics_one_request_per_collection() {
        let system = managed_system();
        let second = system
            .replace("/redfish/v1/Systems/1", "/redfish/v1/Systems/2")
            .replace("ABCD-1", "ABCD-2");
        let nics = listing(&[
            &nic("a", "52:54:00:AA:00:01"),
            &nic("b", "52:54:00:AA:00:02"),
        ]);
        let nics_2 = listing(&[&nic("a", "52:54:00:BB:00:01")]).replace("Systems/1/", "Systems/2/");
        let http = Canned::new(&[
            ("Get /redfish/v1", 200, EXPAND_NO_LINKS),
            (
                &format!("Get {SYSTEMS}{LEVEL_1}"),
                200,
                &listing(&[&system, &second]),
            ),
            (&format!("Get {NICS}{LEVEL_1}"), 200, &nics),
            (
                &format!("Get /redfish/v1/Systems/2/EthernetInterfaces{LEVEL_1}"),
                200,
                &nics_2,
            ),
            MANAGER,
        ]);
        let identity = probe(&http).expect("probe");
        assert_eq!(
            http.paths(),
            [
                String::from("/redfish/v1"),
                format!("{SYSTEMS}{LEVEL_1}"),
                format!("{NICS}{LEVEL_1}"),
                format!("/redfish/v1/Systems/2/EthernetInterfaces{LEVEL_1}"),
                String::from("/redfish/v1/Managers/bmc"),
            ],
            "one request per collection, the members inline"
        );
        let uris: Vec<&str> = identity.systems.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["/redfish/v1/Systems/1", "/redfish/v1/Systems/2"]);
        assert_eq!(identity.systems[1].uuid.as_deref(), Some("abcd-2"));
        assert_eq!(
            macs(&identity),
            [
                vec!["52:54:00:aa:00:01", "52:54:00:aa:00:02"],
                vec!["52:54:00:bb:00:01"]
            ]
        );
        assert_eq!(identity.manager_uuid.as_deref(), Some("m-1"));
    }

    #[test]
    fn only_expand_all_advertised_asks_for_star() {
        let root = r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},
            "ProtocolFeaturesSupported":{"ExpandQuery":{"ExpandAll":true,"Levels":true,"MaxLevels":1}}}"#;
        let system = managed_system();
        let http = Canned::new(&[
            ("Get /redfish/v1", 200, root),
            (
                "Get /redfish/v1/Systems?$expand=*($levels=1)",
                200,
                &listing(&[&system]),
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces?$expand=*($levels=1)",
                200,
                &listing(&[&nic("a", "52:54:00:AA:00:01")]),
            ),
            MANAGER,
        ]);
        let identity = probe(&http).expect("probe");
        assert_eq!(macs(&identity), [vec!["52:54:00:aa:00:01"]]);
        assert_eq!(http.sent.borrow().len(), 4);
    }

    /// The answers of a BMC with one system and two NICs that lists every collection as
    /// links, without `$expand` in the paths.
    fn plain_answers(system: &str) -> Vec<(String, u16, String)> {
        vec![
            (
                format!("Get {SYSTEMS}"),
                200,
                listing(&[&link("/redfish/v1/Systems/1")]),
            ),
            (
                String::from("Get /redfish/v1/Systems/1"),
                200,
                system.to_owned(),
            ),
            (
                format!("Get {NICS}"),
                200,
                listing(&[&link(&format!("{NICS}/a")), &link(&format!("{NICS}/b"))]),
            ),
            (format!("Get {NICS}/a"), 200, nic("a", "52:54:00:AA:00:01")),
            (format!("Get {NICS}/b"), 200, nic("b", "52:54:00:AA:00:02")),
        ]
    }

    fn canned(answers: &[(String, u16, String)]) -> Canned {
        let answers: Vec<(&str, u16, &str)> = answers
            .iter()
            .map(|(path, status, body)| (path.as_str(), *status, body.as_str()))
            .collect();
        let mut all = answers;
        all.push(MANAGER);
        Canned::new(&all)
    }

    const PLAIN_PROBE: [&str; 7] = [
        "/redfish/v1",
        "/redfish/v1/Systems",
        "/redfish/v1/Systems/1",
        "/redfish/v1/Systems/1/EthernetInterfaces",
        "/redfish/v1/Systems/1/EthernetInterfaces/a",
        "/redfish/v1/Systems/1/EthernetInterfaces/b",
        "/redfish/v1/Managers/bmc",
    ];

    #[test]
    fn without_an_advertised_expand_the_probe_reads_as_it_always_did() {
        let mut answers = plain_answers(&managed_system());
        answers.push((
            String::from("Get /redfish/v1"),
            200,
            String::from(
                r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},"ProtocolFeaturesSupported":{"ExpandQuery":{"Links":true}}}"#,
            ),
        ));
        let http = canned(&answers);
        let identity = probe(&http).expect("probe");
        assert_eq!(http.paths(), PLAIN_PROBE);
        assert_eq!(
            macs(&identity),
            [vec!["52:54:00:aa:00:01", "52:54:00:aa:00:02"]]
        );
    }

    #[test]
    fn an_expand_the_bmc_ignores_reads_the_members_one_by_one() {
        // A static mockup: the query is ignored and the members come back as links.
        let mut answers = plain_answers(&managed_system());
        for (path, ..) in &mut answers {
            if path == &format!("Get {SYSTEMS}") || path == &format!("Get {NICS}") {
                path.push_str(LEVEL_1);
            }
        }
        answers.push((
            String::from("Get /redfish/v1"),
            200,
            String::from(EXPAND_NO_LINKS),
        ));
        let http = canned(&answers);
        let identity = probe(&http).expect("probe");
        assert_eq!(
            http.paths(),
            [
                String::from("/redfish/v1"),
                format!("{SYSTEMS}{LEVEL_1}"),
                String::from("/redfish/v1/Systems/1"),
                format!("{NICS}{LEVEL_1}"),
                format!("{NICS}/a"),
                format!("{NICS}/b"),
                String::from("/redfish/v1/Managers/bmc"),
            ]
        );
        assert_eq!(
            macs(&identity),
            [vec!["52:54:00:aa:00:01", "52:54:00:aa:00:02"]]
        );
    }

    #[test]
    fn a_refused_expand_falls_back_to_plain_reads_for_the_rest_of_the_call() {
        let mut answers = plain_answers(&managed_system());
        answers.push((
            String::from("Get /redfish/v1"),
            200,
            String::from(EXPAND_NO_LINKS),
        ));
        answers.push((
            format!("Get {SYSTEMS}{LEVEL_1}"),
            400,
            String::from(
                r#"{"error":{"code":"Base.1.8.GeneralError","message":"bad query","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.QueryNotSupported"}]}}"#,
            ),
        ));
        let http = canned(&answers);
        let identity = probe(&http).expect("probe");
        let mut want = vec![String::from("/redfish/v1"), format!("{SYSTEMS}{LEVEL_1}")];
        want.extend(PLAIN_PROBE[1..].iter().map(|p| (*p).to_owned()));
        assert_eq!(http.paths(), want, "the NICs are not asked for expanded");
        assert_eq!(identity.systems.len(), 1);
    }

    #[test]
    fn get_system_reads_the_root_once_and_expands_the_nics_and_the_inventory() {
        let system = managed_system().replacen(
            r#""PowerState":"Off","#,
            r#""PowerState":"Off",
                "Processors":{"@odata.id":"/redfish/v1/Systems/1/Processors"},
                "Memory":{"@odata.id":"/redfish/v1/Systems/1/Memory"},
                "Storage":{"@odata.id":"/redfish/v1/Systems/1/Storage"},
                "PCIeDevices":[{"@odata.id":"/redfish/v1/Systems/1/PCIeDevices/NIC"}],"#,
            1,
        );
        let s = "/redfish/v1/Systems/1";
        let http = Canned::new(&[
            (&format!("Get {s}"), 200, &system),
            ("Get /redfish/v1", 200, EXPAND_NO_LINKS),
            (
                &format!("Get {NICS}{LEVEL_1}"),
                200,
                &listing(&[
                    &nic("a", "52:54:00:AA:00:01"),
                    &nic("b", "52:54:00:AA:00:02"),
                ]),
            ),
            (
                &format!("Get {s}/Processors{LEVEL_1}"),
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/Processors/0","Id":"0","TotalCores":8},
                               {"@odata.id":"/redfish/v1/Systems/1/Processors/1","Id":"1","TotalCores":8}]}"#,
            ),
            (
                &format!("Get {s}/Memory{LEVEL_1}"),
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/Memory/DIMM0","Id":"DIMM0","CapacityMiB":16384},
                               {"@odata.id":"/redfish/v1/Systems/1/Memory/DIMM1","Id":"DIMM1","CapacityMiB":16384}]}"#,
            ),
            (
                &format!("Get {s}/Storage{LEVEL_1}"),
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/Storage/1","Id":"1","Name":"RAID",
                    "Drives":[{"@odata.id":"/redfish/v1/Systems/1/Storage/1/Drives/0"}],
                    "Volumes":{"@odata.id":"/redfish/v1/Systems/1/Storage/1/Volumes"}}]}"#,
            ),
            (
                &format!("Get {s}/Storage/1/Drives/0"),
                200,
                r#"{"Id":"0","CapacityBytes":1000}"#,
            ),
            (
                &format!("Get {s}/Storage/1/Volumes{LEVEL_1}"),
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/Storage/1/Volumes/1","Name":"Boot","RAIDType":"RAID1"}]}"#,
            ),
            (
                &format!("Get {s}/PCIeDevices/NIC"),
                200,
                r#"{"Name":"NIC","PCIeFunctions":{"@odata.id":"/redfish/v1/Systems/1/PCIeDevices/NIC/PCIeFunctions"}}"#,
            ),
            (
                &format!("Get {s}/PCIeDevices/NIC/PCIeFunctions{LEVEL_1}"),
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1/PCIeDevices/NIC/PCIeFunctions/0","DeviceClass":"NetworkController"}]}"#,
            ),
        ]);
        let system = get_system(&http, &Collections::unread(), s).expect("system");
        assert_eq!(
            http.paths(),
            [
                String::from(s),
                String::from("/redfish/v1"),
                format!("{NICS}{LEVEL_1}"),
                format!("{s}/Processors{LEVEL_1}"),
                format!("{s}/Memory{LEVEL_1}"),
                format!("{s}/Storage{LEVEL_1}"),
                format!("{s}/Storage/1/Drives/0"),
                format!("{s}/Storage/1/Volumes{LEVEL_1}"),
                format!("{s}/PCIeDevices/NIC"),
                format!("{s}/PCIeDevices/NIC/PCIeFunctions{LEVEL_1}"),
            ]
        );
        assert_eq!(system.nics.len(), 2);
        let inventory = system.inventory.expect("inventory");
        assert_eq!(inventory.processors.len(), 2);
        assert_eq!(inventory.total_memory_bytes, Some(32 << 30));
        assert_eq!(inventory.storage[0].drives[0].capacity_bytes, Some(1000));
        assert_eq!(
            inventory.storage[0].volumes[0].raid_type.as_deref(),
            Some("RAID1")
        );
        assert_eq!(
            inventory.pcie_devices[0].device_class.as_deref(),
            Some("NetworkController")
        );
    }

    #[test]
    fn get_system_on_a_bmc_without_expand_pays_one_root_read() {
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1", 200, SYSTEM),
            (
                "Get /redfish/v1",
                200,
                r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"}}"#,
            ),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces",
                200,
                &listing(&[&link(&format!("{NICS}/a"))]),
            ),
            (
                &format!("Get {NICS}/a"),
                200,
                &nic("a", "52:54:00:AA:00:01"),
            ),
        ]);
        let system =
            get_system(&http, &Collections::unread(), "/redfish/v1/Systems/1").expect("system");
        assert_eq!(system.nics.len(), 1);
        assert_eq!(
            http.paths(),
            [
                "/redfish/v1/Systems/1",
                "/redfish/v1",
                "/redfish/v1/Systems/1/EthernetInterfaces",
                "/redfish/v1/Systems/1/EthernetInterfaces/a"
            ]
        );
    }

    #[test]
    fn a_missing_nic_collection_is_not_an_error() {
        let http = Canned::new(&[
            (
                "Get /redfish/v1",
                200,
                r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"}}"#,
            ),
            (
                "Get /redfish/v1/Systems",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}]}"#,
            ),
            ("Get /redfish/v1/Systems/1", 200, SYSTEM),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces",
                404,
                r#"{"error":{"code":"Base.1.0.ResourceMissingAtURI","message":"not here"}}"#,
            ),
        ]);
        assert!(probe(&http).expect("probe").systems[0].nics.is_empty());
    }

    #[test]
    fn a_500_carries_the_redfish_message_id() {
        let http = Canned::new(&[(
            "Get /redfish/v1",
            500,
            r#"{"error":{"code":"Base.1.8.InternalError","message":"boom","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.InternalError","Message":"The request failed due to an internal service error."}]}}"#,
        )]);
        match probe(&http).expect_err("500") {
            PluginError::BmcFault {
                http_status,
                message_id,
                ..
            } => {
                assert_eq!(http_status, Some(500));
                assert_eq!(message_id.as_deref(), Some("Base.1.8.InternalError"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn set_power_refuses_reset_types_the_bmc_does_not_offer() {
        let http = Canned::new(&[
            (
                "Post /redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                400,
                r#"{"error":{"code":"Base.1.8.ActionParameterNotSupported","message":"no"}}"#,
            ),
            ("Get /redfish/v1/Systems/1", 200, SYSTEM),
        ]);
        let error = set_power(&http, "/redfish/v1/Systems/1", PowerAction::PowerCycle)
            .expect_err("not offered");
        assert!(matches!(error, PluginError::Unsupported(m) if m.contains("PowerCycle")));
    }

    #[test]
    fn set_power_posts_the_reset_type_to_the_standard_target_in_one_request() {
        let http = Canned::new(&[(
            "Post /redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            204,
            "",
        )]);
        set_power(&http, "/redfish/v1/Systems/1", PowerAction::On).expect("on");
        let sent = http.sent.borrow();
        assert_eq!(sent.len(), 1, "no read before the reset");
        assert_eq!(sent[0].body.as_deref(), Some(&br#"{"ResetType":"On"}"#[..]));
    }

    #[test]
    fn set_power_follows_a_reset_target_advertised_elsewhere() {
        let system = SYSTEM.replace(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            "/redfish/v1/Systems/1/Actions/Oem/Reset",
        );
        let http = Canned::new(&[
            (
                "Post /redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                404,
                "",
            ),
            ("Get /redfish/v1/Systems/1", 200, system.as_str()),
            ("Post /redfish/v1/Systems/1/Actions/Oem/Reset", 204, ""),
        ]);
        set_power(&http, "/redfish/v1/Systems/1", PowerAction::ForceOff).expect("off");
        let paths = http.paths();
        assert_eq!(
            paths.last().map(String::as_str),
            Some("/redfish/v1/Systems/1/Actions/Oem/Reset")
        );
    }

    #[test]
    fn a_refused_reset_at_the_advertised_target_is_the_bmcs_error() {
        let http = Canned::new(&[
            (
                "Post /redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                500,
                r#"{"error":{"code":"Base.1.8.InternalError","message":"busy"}}"#,
            ),
            ("Get /redfish/v1/Systems/1", 200, SYSTEM),
        ]);
        let error =
            set_power(&http, "/redfish/v1/Systems/1", PowerAction::On).expect_err("refused");
        assert!(
            matches!(
                &error,
                PluginError::BmcFault {
                    http_status: Some(500),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(http.sent.borrow().len(), 2, "posted once, read once");
    }

    #[test]
    fn probe_finds_the_manager_through_the_system_without_the_managers_collection() {
        let system = SYSTEM.replacen(
            r#""PowerState":"Off","#,
            r#""PowerState":"Off","Links":{"ManagedBy":[{"@odata.id":"/redfish/v1/Managers/bmc"}]},"#,
            1,
        );
        let http = Canned::new(&[
            (
                "Get /redfish/v1",
                200,
                r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},"Managers":{"@odata.id":"/redfish/v1/Managers"}}"#,
            ),
            (
                "Get /redfish/v1/Managers/bmc",
                200,
                r#"{"UUID":"m-1","FirmwareVersion":"2.1"}"#,
            ),
            (
                "Get /redfish/v1/Systems",
                200,
                r#"{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}]}"#,
            ),
            ("Get /redfish/v1/Systems/1", 200, system.as_str()),
            (
                "Get /redfish/v1/Systems/1/EthernetInterfaces",
                200,
                r#"{"Members":[]}"#,
            ),
        ]);
        let identity = probe(&http).expect("probe");
        assert_eq!(identity.manager_uuid.as_deref(), Some("m-1"));
        let paths = http.paths();
        assert!(
            !paths.iter().any(|path| path == "/redfish/v1/Managers"),
            "{paths:?}"
        );
        assert_eq!(paths.len(), 5, "{paths:?}");
    }

    /// A clock where time passes only by sleeping and by each request (`per_request`).
    struct FakeClock<'a> {
        now: RefCell<Duration>,
        slept: RefCell<Vec<Duration>>,
        http: &'a Canned,
        per_request: Duration,
    }

    impl Clock for FakeClock<'_> {
        fn elapsed(&self) -> Duration {
            *self.now.borrow() + self.per_request * self.http.sent.borrow().len() as u32
        }

        fn sleep(&self, duration: Duration) {
            *self.now.borrow_mut() += duration;
            self.slept.borrow_mut().push(duration);
        }
    }

    #[test]
    fn waiting_for_power_polls_with_backoff_until_the_state_arrives() {
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1", 200, r#"{"PowerState":"Off"}"#),
            ("Get /redfish/v1/Systems/1", 200, r#"{"PowerState":"Off"}"#),
            ("Get /redfish/v1/Systems/1", 200, r#"{"PowerState":"On"}"#),
        ]);
        let clock = FakeClock {
            now: RefCell::new(Duration::ZERO),
            slept: RefCell::new(Vec::new()),
            http: &http,
            per_request: Duration::ZERO,
        };
        let state = wait_for_power(
            &http,
            "/redfish/v1/Systems/1",
            PowerState::On,
            Duration::from_secs(30),
            &clock,
        )
        .expect("wait");
        assert_eq!(state, PowerState::On);
        assert_eq!(
            *clock.slept.borrow(),
            [Duration::from_millis(500), Duration::from_secs(1)]
        );
    }

    #[test]
    fn waiting_for_power_never_runs_past_the_budget_counted_from_the_call_start() {
        let http = Canned::new(&[("Get /redfish/v1/Systems/1", 200, r#"{"PowerState":"Off"}"#)]);
        // Every request takes 3 s of the budget, and 4 s had passed before the wait began.
        let clock = FakeClock {
            now: RefCell::new(Duration::from_secs(4)),
            slept: RefCell::new(Vec::new()),
            http: &http,
            per_request: Duration::from_secs(3),
        };
        let state = wait_for_power(
            &http,
            "/redfish/v1/Systems/1",
            PowerState::On,
            Duration::from_secs(20),
            &clock,
        )
        .expect("wait");
        assert_eq!(state, PowerState::Off, "the last state read is reported");
        assert_eq!(
            clock.elapsed(),
            Duration::from_secs(20) + Duration::from_secs(3)
        );
        let slept: Duration = clock.slept.borrow().iter().sum();
        assert!(slept < Duration::from_secs(16), "{slept:?}");
        assert!(
            clock
                .slept
                .borrow()
                .iter()
                .all(|d| *d <= Duration::from_secs(4)),
            "{:?}",
            clock.slept.borrow()
        );
    }

    #[test]
    fn boot_patches_follow_the_quirks() {
        let uefi = crate::model::Boot {
            mode: Some(String::from("UEFI")),
            ..Default::default()
        };
        let legacy = crate::model::Boot {
            mode: Some(String::from("Legacy")),
            ..Default::default()
        };
        let pxe_once = BootOverride {
            target: BootTarget::Pxe,
            uefi: true,
            persistent: false,
            http_boot_uri: None,
        };
        assert_eq!(
            boot_patch(&pxe_once, &uefi, &[]),
            json!({"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}),
            "the mode is left alone when it already matches"
        );
        assert_eq!(
            boot_patch(&pxe_once, &legacy, &[])["Boot"]["BootSourceOverrideMode"],
            "UEFI"
        );
        assert!(
            boot_patch(&pxe_once, &legacy, &[Quirk::OmitBootMode])["Boot"]
                .get("BootSourceOverrideMode")
                .is_none()
        );
        let none = BootOverride {
            target: BootTarget::None,
            ..pxe_once.clone()
        };
        assert_eq!(
            boot_patch(&none, &legacy, &[]),
            json!({"Boot":{"BootSourceOverrideTarget":"None","BootSourceOverrideEnabled":"Disabled"}}),
            "clearing disables the override and touches nothing else"
        );
        assert_eq!(
            boot_patch(&none, &uefi, &[Quirk::ClearWithPxeTarget]),
            json!({"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Disabled"}}),
            "HPE iLO rejects Disabled with None"
        );
        let no_mode = crate::model::Boot::default();
        assert!(
            boot_patch(&pxe_once, &no_mode, &[])["Boot"]
                .get("BootSourceOverrideMode")
                .is_none(),
            "a BMC that reports no mode never gets one (Supermicro X10, metal-operator #982)"
        );
        let http_boot = BootOverride {
            target: BootTarget::UefiHttp,
            http_boot_uri: Some(String::from("http://boot/uki.efi")),
            ..pxe_once
        };
        assert_eq!(
            boot_patch(&http_boot, &uefi, &[])["Boot"]["HttpBootUri"],
            "http://boot/uki.efi"
        );
        assert!(
            boot_patch(&http_boot, &uefi, &[Quirk::NoHttpBootUri])["Boot"]
                .get("HttpBootUri")
                .is_none()
        );
    }

    /// A one-time PXE override on a BMC that answers `system` and then reads back
    /// `Continuous`.
    fn once_pxe_read_back_as_continuous(system: &str) -> Stored {
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1", 200, system),
            ("Patch /redfish/v1/Systems/1", 204, ""),
            (
                "Get /redfish/v1/Systems/1",
                200,
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Continuous","BootSourceOverrideMode":"UEFI"}}"#,
            ),
        ]);
        set_boot_override(
            &http,
            "/redfish/v1/Systems/1",
            &BootOverride {
                target: BootTarget::Pxe,
                uefi: true,
                persistent: false,
                http_boot_uri: None,
            },
        )
        .expect("override")
    }

    #[test]
    fn the_stored_override_is_read_back_not_assumed() {
        let stored = once_pxe_read_back_as_continuous(SYSTEM);
        assert_eq!(stored.boot.target, BootTarget::Pxe);
        assert!(
            stored.boot.persistent,
            "the BMC stored Continuous, and that is what is reported"
        );
        assert_eq!(stored.persisted, Persisted::Unexpected);
    }

    const HPE_SYSTEM: &str = r##"{"Manufacturer":"HPE","Model":"ProLiant DL380 Gen10",
        "Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"Legacy",
                "BootSourceOverrideTarget@Redfish.AllowableValues":["None","Pxe","Hdd"]},
        "Links":{"ManagedBy":[{"@odata.id":"/redfish/v1/Managers/1"}]}}"##;

    #[test]
    fn hpe_overrides_are_cleared_with_pxe_and_ilo5_never_gets_a_mode() {
        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1", 200, HPE_SYSTEM),
            (
                "Get /redfish/v1/Managers/1",
                200,
                r#"{"FirmwareVersion":"iLO 5 v2.72"}"#,
            ),
            ("Patch /redfish/v1/Systems/1", 200, "{}"),
            (
                "Get /redfish/v1/Systems/1",
                200,
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Disabled"}}"#,
            ),
        ]);
        let clear = BootOverride {
            target: BootTarget::None,
            uefi: true,
            persistent: false,
            http_boot_uri: None,
        };
        let stored = set_boot_override(&http, "/redfish/v1/Systems/1", &clear).expect("clear");
        assert_eq!(
            stored.boot.target,
            BootTarget::None,
            "a disabled override reports no target, whatever target the BMC keeps"
        );
        assert_eq!(
            stored.quirks,
            [
                Quirk::ClearWithPxeTarget,
                Quirk::HpeLoginName,
                Quirk::HpeSmartStorage,
                Quirk::OmitBootMode
            ]
        );
        let sent = http.sent.borrow();
        let patch: Value =
            serde_json::from_slice(sent[2].body.as_deref().expect("body")).expect("JSON");
        assert_eq!(
            patch,
            json!({"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Disabled"}})
        );

        let http = Canned::new(&[
            ("Get /redfish/v1/Systems/1", 200, HPE_SYSTEM),
            (
                "Get /redfish/v1/Managers/1",
                200,
                r#"{"FirmwareVersion":"iLO 5 v2.72"}"#,
            ),
            ("Patch /redfish/v1/Systems/1", 200, "{}"),
        ]);
        let pxe = BootOverride {
            target: BootTarget::Pxe,
            ..clear
        };
        set_boot_override(&http, "/redfish/v1/Systems/1", &pxe).expect("pxe");
        let sent = http.sent.borrow();
        let patch: Value =
            serde_json::from_slice(sent[2].body.as_deref().expect("body")).expect("JSON");
        assert!(
            patch["Boot"].get("BootSourceOverrideMode").is_none(),
            "iLO 5 rejects writing the mode, though Legacy differs from UEFI: {patch}"
        );
    }

    #[test]
    fn a_continuous_read_back_is_a_known_quirk_only_where_the_table_says_so() {
        let stored = once_pxe_read_back_as_continuous(
            r#"{"Manufacturer":"Sushy Emulator","Boot":{"BootSourceOverrideMode":"UEFI"}}"#,
        );
        assert!(stored.boot.persistent);
        assert_eq!(stored.persisted, Persisted::KnownQuirk);
    }

    #[test]
    fn unknown_boot_targets_are_refused_before_patching() {
        let http = Canned::new(&[("Get /redfish/v1/Systems/1", 200, SYSTEM)]);
        let error = set_boot_override(
            &http,
            "/redfish/v1/Systems/1",
            &BootOverride {
                target: BootTarget::Cd,
                uefi: true,
                persistent: false,
                http_boot_uri: None,
            },
        )
        .expect_err("Cd not offered");
        assert!(matches!(error, PluginError::Unsupported(m) if m.contains("Cd")));
        assert_eq!(http.sent.borrow().len(), 1, "nothing was patched");
    }
}
