//! A simulated BMC: the Redfish resources the redfish plugin reads and writes (service
//! root, managers, systems with EthernetInterfaces, power via `ComputerSystem.Reset`, the
//! boot override via `PATCH`), Basic auth, and injected faults. Request handling is plain
//! data in, data out; `serve` puts it on the network.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine;
use serde_json::{Value, json};

use crate::faults::{Fault, Faults};
use crate::machine::{Machine, RESET_TYPES};
use crate::spec::{BmcSpec, MANUFACTURER, Rng};

/// Boot override targets the simulated systems accept.
pub const BOOT_TARGETS: [&str; 6] = ["None", "Pxe", "Hdd", "Cd", "UefiHttp", "BiosSetup"];

/// An HTTP request, as far as the BMC cares.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, `PATCH`, …
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The BMC's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON document with a status.
    Json(u16, Value),
    /// No content.
    Empty(u16),
    /// `401` asking for Basic credentials.
    Unauthorized,
    /// An HTML page with a status (what some BMCs answer when they are unwell).
    Html(u16, String),
    /// Close the connection without answering.
    Drop,
    /// Do not answer for a minute, then `504`.
    Hang,
}

/// One simulated BMC.
#[derive(Debug)]
pub struct Bmc {
    spec: BmcSpec,
    username: String,
    password: String,
    machines: Vec<Arc<Machine>>,
    faults: Mutex<(Faults, Rng)>,
    address: OnceLock<SocketAddr>,
    requests: AtomicU64,
}

fn error(status: u16, message_id: &str, message: &str) -> Reply {
    Reply::Json(
        status,
        json!({"error": {
            "code": "Base.1.8.GeneralError",
            "message": message,
            "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message}],
        }}),
    )
}

fn link(path: &str) -> Value {
    json!({ "@odata.id": path })
}

fn collection(path: &str, name: &str, members: impl Iterator<Item = String>) -> Value {
    let members: Vec<Value> = members.map(|member| link(&member)).collect();
    json!({
        "@odata.id": path,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

impl Bmc {
    /// A BMC for `spec`'s machines that accepts `username`/`password`.
    pub fn new(
        spec: BmcSpec,
        machines: Vec<Arc<Machine>>,
        username: String,
        password: String,
        faults: Faults,
        seed: u64,
    ) -> Self {
        let rng = Rng::new(seed, (2 << 32) + spec.index as u64);
        Self {
            spec,
            username,
            password,
            machines,
            faults: Mutex::new((faults, rng)),
            address: OnceLock::new(),
            requests: AtomicU64::new(0),
        }
    }

    /// What the BMC is.
    pub fn spec(&self) -> &BmcSpec {
        &self.spec
    }

    /// Its machines.
    pub fn machines(&self) -> &[Arc<Machine>] {
        &self.machines
    }

    /// Where it listens, once it does.
    pub fn address(&self) -> Option<SocketAddr> {
        self.address.get().copied()
    }

    pub(crate) fn set_address(&self, address: SocketAddr) {
        let _ = self.address.set(address);
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner).0 = faults;
    }

    /// The faults in force (a burst counts down).
    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// The latency to add before answering.
    pub fn latency(&self) -> std::time::Duration {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .latency
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        decoded == format!("{}:{}", self.username, self.password).as_bytes()
    }

    /// Answers one request.
    pub fn handle(&self, request: &Request<'_>) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fault = {
            let mut guard = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
            let (faults, rng) = &mut *guard;
            faults.next(rng)
        };
        match fault {
            Fault::None => {}
            Fault::Burst => {
                return error(500, "Base.1.8.InternalError", "injected server error burst");
            }
            Fault::ServerError => {
                return error(
                    503,
                    "Base.1.8.ServiceTemporarilyUnavailable",
                    "injected: the service is busy",
                );
            }
            Fault::Html => {
                return Reply::Html(
                    200,
                    String::from("<html><body>Session expired. Please log in.</body></html>"),
                );
            }
            Fault::Hang => return Reply::Hang,
            Fault::Drop => return Reply::Drop,
        }
        let path = request.path.trim_end_matches('/');
        // The service root answers without credentials, as Redfish requires.
        if path == "/redfish/v1" || path == "/redfish" {
            return self.service_root(request.method);
        }
        if !self.authorized(request.authorization) {
            return Reply::Unauthorized;
        }
        let segments: Vec<&str> = path
            .strip_prefix("/redfish/v1/")
            .unwrap_or_default()
            .split('/')
            .collect();
        match (request.method, segments.as_slice()) {
            ("GET", ["Managers"]) => Reply::Json(
                200,
                collection(
                    "/redfish/v1/Managers",
                    "Manager Collection",
                    std::iter::once(String::from("/redfish/v1/Managers/BMC")),
                ),
            ),
            ("GET", ["Managers", "BMC"]) => Reply::Json(200, self.manager()),
            ("GET", ["Systems"]) => Reply::Json(
                200,
                collection(
                    "/redfish/v1/Systems",
                    "Computer System Collection",
                    (1..=self.machines.len()).map(|n| format!("/redfish/v1/Systems/{n}")),
                ),
            ),
            (method, ["Systems", id, rest @ ..]) => match self.system(id) {
                Some((n, machine)) => Self::system_request(method, n, machine, rest, request.body),
                None => error(
                    404,
                    "Base.1.8.ResourceMissingAtURI",
                    &format!("no system {id}"),
                ),
            },
            ("GET", _) => error(
                404,
                "Base.1.8.ResourceMissingAtURI",
                &format!("{path} does not exist"),
            ),
            (method, _) => error(
                405,
                "Base.1.8.OperationNotAllowed",
                &format!("{method} is not allowed on {path}"),
            ),
        }
    }

    fn service_root(&self, method: &str) -> Reply {
        if method != "GET" {
            return error(405, "Base.1.8.OperationNotAllowed", "read-only");
        }
        Reply::Json(
            200,
            json!({
                "@odata.id": "/redfish/v1",
                "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
                "Id": "RootService",
                "Name": "ferrometal-sim Redfish service",
                "RedfishVersion": "1.11.0",
                "UUID": self.spec.uuid,
                "Systems": link("/redfish/v1/Systems"),
                "Managers": link("/redfish/v1/Managers"),
            }),
        )
    }

    fn manager(&self) -> Value {
        json!({
            "@odata.id": "/redfish/v1/Managers/BMC",
            "Id": "BMC",
            "Name": "Simulated BMC",
            "ManagerType": "BMC",
            "UUID": self.spec.uuid,
            "FirmwareVersion": self.spec.firmware,
            "Manufacturer": MANUFACTURER,
            "Model": "SimBMC",
            "SerialNumber": format!("BMC{:08}", self.spec.index),
            "Status": {"State": "Enabled", "Health": "OK"},
        })
    }

    fn system(&self, id: &str) -> Option<(usize, &Arc<Machine>)> {
        let n: usize = id.parse().ok()?;
        Some((n, self.machines.get(n.checked_sub(1)?)?))
    }

    fn system_request(
        method: &str,
        n: usize,
        machine: &Arc<Machine>,
        rest: &[&str],
        body: &[u8],
    ) -> Reply {
        let base = format!("/redfish/v1/Systems/{n}");
        let spec = machine.spec();
        match (method, rest) {
            ("GET", []) => Reply::Json(200, Self::system_document(&base, machine)),
            ("PATCH", []) => Self::patch_boot(machine, body),
            ("GET", ["EthernetInterfaces"]) => Reply::Json(
                200,
                collection(
                    &format!("{base}/EthernetInterfaces"),
                    "Ethernet Interface Collection",
                    (1..=spec.macs.len()).map(|i| format!("{base}/EthernetInterfaces/{i}")),
                ),
            ),
            ("GET", ["EthernetInterfaces", i]) => {
                match i
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| Some((i, spec.macs.get(i.checked_sub(1)?)?)))
                {
                    Some((i, mac)) => Reply::Json(
                        200,
                        json!({
                            "@odata.id": format!("{base}/EthernetInterfaces/{i}"),
                            "Id": i.to_string(),
                            "Name": format!("eno{i}"),
                            "MACAddress": mac,
                            "PermanentMACAddress": mac,
                            "SpeedMbps": 10000,
                            "LinkStatus": if i == 1 { "LinkUp" } else { "LinkDown" },
                        }),
                    ),
                    None => error(404, "Base.1.8.ResourceMissingAtURI", "no such interface"),
                }
            }
            ("POST", ["Actions", "ComputerSystem.Reset"]) => {
                let reset: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let Some(reset_type) = reset["ResetType"].as_str() else {
                    return error(
                        400,
                        "Base.1.8.PropertyMissing",
                        "the ResetType property is required",
                    );
                };
                match machine.reset(reset_type) {
                    Ok(()) => Reply::Empty(204),
                    Err(unknown) => error(
                        400,
                        "Base.1.8.ActionParameterValueNotInList",
                        &unknown.to_string(),
                    ),
                }
            }
            _ => error(
                405,
                "Base.1.8.OperationNotAllowed",
                &format!("{method} is not allowed here"),
            ),
        }
    }

    fn system_document(base: &str, machine: &Machine) -> Value {
        let spec = machine.spec();
        let boot = machine.boot_settings();
        json!({
            "@odata.id": base,
            "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
            "Id": base.rsplit('/').next(),
            "Name": format!("sim-{}", spec.index),
            "SystemType": "Physical",
            "UUID": spec.uuid,
            "Manufacturer": MANUFACTURER,
            "Model": spec.model,
            "SerialNumber": spec.serial,
            "PowerState": if machine.powered() { "On" } else { "Off" },
            "ProcessorSummary": {"Count": spec.cpus.0, "LogicalProcessorCount": spec.cpus.0 * spec.cpus.1},
            "MemorySummary": {"TotalSystemMemoryGiB": spec.memory_mib as f64 / 1024.0},
            "Boot": {
                "BootSourceOverrideTarget": boot.target,
                "BootSourceOverrideEnabled": boot.enabled,
                "BootSourceOverrideMode": boot.mode,
                "HttpBootUri": boot.http_boot_uri,
                "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
            },
            "EthernetInterfaces": link(&format!("{base}/EthernetInterfaces")),
            "Actions": {"#ComputerSystem.Reset": {
                "target": format!("{base}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
            }},
            "Status": {"State": "Enabled", "Health": "OK"},
        })
    }

    fn patch_boot(machine: &Machine, body: &[u8]) -> Reply {
        let Ok(patch) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "Base.1.8.MalformedJSON",
                "the request body is not JSON",
            );
        };
        let Some(boot) = patch.get("Boot").and_then(Value::as_object) else {
            return error(
                400,
                "Base.1.8.PropertyUnknown",
                "only Boot can be patched on this system",
            );
        };
        let mut settings = machine.boot_settings();
        for (key, value) in boot {
            let text = value.as_str();
            let allowed: &[&str] = match key.as_str() {
                "BootSourceOverrideTarget" => &BOOT_TARGETS,
                "BootSourceOverrideEnabled" => &["Once", "Continuous", "Disabled"],
                "BootSourceOverrideMode" => &["UEFI", "Legacy"],
                "HttpBootUri" => &[],
                _ => {
                    return error(
                        400,
                        "Base.1.8.PropertyUnknown",
                        &format!("Boot/{key} is not a known property"),
                    );
                }
            };
            let Some(text) = text.filter(|t| allowed.is_empty() || allowed.contains(t)) else {
                return error(
                    400,
                    "Base.1.8.PropertyValueNotInList",
                    &format!("{value} is not a valid value of Boot/{key}"),
                );
            };
            let text = text.to_owned();
            match key.as_str() {
                "BootSourceOverrideTarget" => settings.target = text,
                "BootSourceOverrideEnabled" => settings.enabled = text,
                "BootSourceOverrideMode" => settings.mode = text,
                _ => settings.http_boot_uri = Some(text),
            }
        }
        machine.set_boot_settings(settings);
        Reply::Empty(204)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::machine::{BootEnvironment, MachineBehaviour};
    use crate::spec::FleetSpec;

    fn bmc(faults: Faults) -> Bmc {
        let spec = FleetSpec {
            systems_per_bmc: 2,
            ..FleetSpec::default()
        }
        .bmc(0);
        let env = Arc::new(BootEnvironment {
            http: reqwest::Client::new(),
            boot_url: None,
            dhcp: None,
            behaviour: MachineBehaviour::default(),
            work_dir: PathBuf::from("/nonexistent"),
            vm: None,
            host_alias: None,
        });
        let machines = spec
            .systems
            .iter()
            .map(|m| Arc::new(Machine::new(m.clone(), env.clone())))
            .collect();
        Bmc::new(
            spec,
            machines,
            String::from("admin"),
            String::from("pw"),
            faults,
            1,
        )
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn get(bmc: &Bmc, path: &str) -> Reply {
        let auth = basic("admin", "pw");
        bmc.handle(&Request {
            method: "GET",
            path,
            authorization: Some(&auth),
            body: b"",
        })
    }

    fn json(reply: Reply) -> Value {
        match reply {
            Reply::Json(200, value) => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_service_root_is_open_and_the_rest_needs_credentials() {
        let bmc = bmc(Faults::default());
        let wrong = basic("admin", "nope");
        for (path, authorization, unauthorized) in [
            ("/redfish/v1/", None, false),
            ("/redfish/v1/Systems", None, true),
            ("/redfish/v1/Systems", Some(wrong.as_str()), true),
        ] {
            let reply = bmc.handle(&Request {
                method: "GET",
                path,
                authorization,
                body: b"",
            });
            assert_eq!(reply == Reply::Unauthorized, unauthorized, "{path}");
        }
    }

    #[test]
    fn systems_list_their_machines_with_uuid_and_macs() {
        let bmc = bmc(Faults::default());
        let systems = json(get(&bmc, "/redfish/v1/Systems"));
        assert_eq!(systems["Members"].as_array().map(Vec::len), Some(2));
        let system = json(get(&bmc, "/redfish/v1/Systems/2"));
        assert_eq!(system["UUID"], bmc.machines()[1].spec().uuid.as_str());
        assert_eq!(system["PowerState"], "Off");
        let nic = json(get(&bmc, "/redfish/v1/Systems/2/EthernetInterfaces/1"));
        assert_eq!(nic["MACAddress"], bmc.machines()[1].spec().macs[0].as_str());
        assert!(matches!(
            get(&bmc, "/redfish/v1/Systems/3"),
            Reply::Json(404, _)
        ));
    }

    #[test]
    fn boot_overrides_are_stored_and_bad_values_refused() {
        let bmc = bmc(Faults::default());
        let auth = basic("admin", "pw");
        let patch = |body: &str| {
            bmc.handle(&Request {
                method: "PATCH",
                path: "/redfish/v1/Systems/1",
                authorization: Some(&auth),
                body: body.as_bytes(),
            })
        };
        assert_eq!(
            patch(
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}"#
            ),
            Reply::Empty(204)
        );
        let system = json(get(&bmc, "/redfish/v1/Systems/1"));
        assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Pxe");
        assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Once");
        let Reply::Json(400, refused) = patch(r#"{"Boot":{"BootSourceOverrideTarget":"Floppy"}}"#)
        else {
            panic!("Floppy accepted");
        };
        assert_eq!(
            refused["error"]["@Message.ExtendedInfo"][0]["MessageId"],
            "Base.1.8.PropertyValueNotInList"
        );
        assert_eq!(bmc.machines()[0].boot_settings().target, "Pxe");
    }

    #[tokio::test]
    async fn reset_powers_the_machine() {
        let bmc = bmc(Faults::default());
        let auth = basic("admin", "pw");
        let reset = |kind: &str| {
            bmc.handle(&Request {
                method: "POST",
                path: "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                authorization: Some(&auth),
                body: format!(r#"{{"ResetType":"{kind}"}}"#).as_bytes(),
            })
        };
        assert_eq!(reset("On"), Reply::Empty(204));
        assert!(bmc.machines()[0].powered());
        assert_eq!(bmc.machines()[0].phase(), crate::Phase::LocalDisk);
        assert_eq!(reset("ForceOff"), Reply::Empty(204));
        assert!(!bmc.machines()[0].powered());
        assert!(matches!(reset("Explode"), Reply::Json(400, _)));
    }

    #[test]
    fn a_burst_answers_500_with_a_message_id_then_recovers() {
        let bmc = bmc(Faults {
            server_error_burst: 2,
            ..Faults::default()
        });
        for _ in 0..2 {
            let Reply::Json(500, body) = get(&bmc, "/redfish/v1/Systems") else {
                panic!("no 500");
            };
            assert_eq!(
                body["error"]["@Message.ExtendedInfo"][0]["MessageId"],
                "Base.1.8.InternalError"
            );
        }
        json(get(&bmc, "/redfish/v1/Systems"));
        assert_eq!(bmc.requests(), 3);
    }
}
