//! A simulated BMC: the Redfish resources the redfish plugin reads and writes (service
//! root, managers, systems with EthernetInterfaces, power via `ComputerSystem.Reset`, the
//! boot override via `PATCH`, an `AccountService` with lockout policy and password rules,
//! see [`crate::accounts`]), Basic auth, Redfish sessions (`SessionService`,
//! `X-Auth-Token`), a vendor [`Profile`] and injected faults. Request handling is plain
//! data in, data out; `serve` puts it on the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use base64::Engine;
use serde_json::{Value, json};

use crate::accounts::{AccountPolicy, Accounts, Login, LoginStats, Refusal};
use crate::faults::{Fault, Faults};
use crate::machine::{Machine, RESET_TYPES};
use crate::spec::{BmcOnlyNicKind, BmcSpec, MANUFACTURER, Rng};

/// Boot override targets the simulated systems accept.
pub const BOOT_TARGETS: [&str; 6] = ["None", "Pxe", "Hdd", "Cd", "UefiHttp", "BiosSetup"];

/// Where the simulated BMCs create sessions.
pub const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// How `BootSourceOverrideMode` behaves on a BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// Reported and writable.
    Writable,
    /// Reported, but a PATCH writing it is refused with 400 (HPE iLO 5:
    /// `iLO.2.30.UnsupportedOperation`, metal-operator #606).
    ReadOnly,
    /// Not reported, and a PATCH naming it is refused with 400 `PropertyUnknown`
    /// (Supermicro X10, metal-operator #982).
    Absent,
}

/// Who a simulated BMC claims to be and which vendor behaviour it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `Manufacturer` of the manager and the systems.
    pub manufacturer: String,
    /// `Model` of the manager.
    pub manager_model: String,
    /// The manager's `FirmwareVersion`; `None` keeps the generated one.
    pub firmware: Option<String>,
    /// Offer a `SessionService` (sessions next to Basic auth).
    pub session_service: bool,
    /// `BootSourceOverrideMode` support.
    pub boot_mode: BootMode,
    /// Refuse a PATCH that sets `BootSourceOverrideEnabled` while the target is (or becomes)
    /// `None`, with 400 `iLO.2.30.UnsupportedOperation` (HPE iLO, metal-operator PR #998).
    pub enabled_needs_target: bool,
    /// Reset types offered (`ResetType@Redfish.AllowableValues`) and accepted.
    pub reset_types: Vec<&'static str>,
    /// The `AccountService`'s lockout policy and password rules.
    pub accounts: AccountPolicy,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            manufacturer: String::from(MANUFACTURER),
            manager_model: String::from("SimBMC"),
            firmware: None,
            session_service: true,
            boot_mode: BootMode::Writable,
            enabled_needs_target: false,
            reset_types: RESET_TYPES.to_vec(),
            accounts: AccountPolicy::default(),
        }
    }
}

impl Profile {
    /// An HPE iLO 5 lookalike: refuses `Enabled` with target `None` and writing the mode;
    /// offers no `PowerCycle`.
    pub fn hpe_ilo5() -> Self {
        Self {
            manufacturer: String::from("HPE"),
            manager_model: String::from("iLO 5"),
            firmware: Some(String::from("iLO 5 v2.72")),
            session_service: true,
            boot_mode: BootMode::ReadOnly,
            enabled_needs_target: true,
            reset_types: vec![
                "On",
                "ForceOff",
                "GracefulShutdown",
                "ForceRestart",
                "GracefulRestart",
            ],
            accounts: AccountPolicy::default(),
        }
    }

    /// A Supermicro X10 lookalike: no `BootSourceOverrideMode` at all.
    pub fn supermicro_x10() -> Self {
        Self {
            manufacturer: String::from("Supermicro"),
            manager_model: String::from("X10DRi"),
            firmware: Some(String::from("03.88")),
            boot_mode: BootMode::Absent,
            ..Self::default()
        }
    }
}

/// An HTTP request, as far as the BMC cares.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, `PATCH`, …
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `X-Auth-Token` header (a Redfish session).
    pub auth_token: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// The `If-Match` header (checked by account PATCHes).
    pub if_match: Option<&'a str>,
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
    /// `201 Created` for a new resource other than a session: a `Location` header and a body.
    Created {
        /// The new resource's path.
        location: String,
        /// The new resource.
        body: Value,
    },
    /// `201 Created` for a new session: `X-Auth-Token` and `Location` headers and a body.
    SessionCreated {
        /// The session's token.
        token: String,
        /// The session's path.
        location: String,
        /// The session resource.
        body: Value,
    },
}

/// One simulated BMC.
#[derive(Debug)]
pub struct Bmc {
    spec: BmcSpec,
    /// Accounts, passwords, failed logins and lockouts.
    accounts: Mutex<Accounts>,
    machines: Vec<Arc<Machine>>,
    faults: Mutex<(Faults, Rng)>,
    address: OnceLock<SocketAddr>,
    requests: AtomicU64,
    profile: Profile,
    /// Open sessions: id → token.
    sessions: Mutex<BTreeMap<u64, String>>,
    sessions_created: AtomicU64,
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

/// The document of a NIC the BMC lists but the machine's OS never sees.
fn bmc_only_nic(base: &str, i: usize, mac: &str, kind: BmcOnlyNicKind) -> Value {
    let mut nic = json!({
        "@odata.id": format!("{base}/EthernetInterfaces/{i}"),
        "Id": i.to_string(),
        "Name": format!("bmc-only{i}"),
        "MACAddress": mac,
        "PermanentMACAddress": mac,
        "InterfaceEnabled": true,
        "Status": {"State": "Enabled", "Health": "OK"},
    });
    match kind {
        BmcOnlyNicKind::HostInterface => {
            nic["Name"] = json!("Host Ethernet Interface");
            nic["Links"] =
                json!({"HostInterface": link("/redfish/v1/Managers/BMC/HostInterfaces/1")});
        }
        BmcOnlyNicKind::Disabled => {
            nic["InterfaceEnabled"] = json!(false);
            nic["Status"]["State"] = json!("Disabled");
        }
        BmcOnlyNicKind::Absent => nic["Status"]["State"] = json!("Absent"),
        BmcOnlyNicKind::Unseen => {}
    }
    nic
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
            accounts: Mutex::new(Accounts::new(
                AccountPolicy::default(),
                &username,
                &password,
            )),
            machines,
            faults: Mutex::new((faults, rng)),
            address: OnceLock::new(),
            requests: AtomicU64::new(0),
            profile: Profile::default(),
            sessions: Mutex::new(BTreeMap::new()),
            sessions_created: AtomicU64::new(0),
        }
    }

    /// The same BMC presenting itself as `profile`.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.accounts_mut().set_policy(profile.accounts.clone());
        self.profile = profile;
        self
    }

    fn accounts_mut(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Failed logins and lockouts so far (Basic auth and session logins alike).
    pub fn login_stats(&self) -> LoginStats {
        self.accounts_mut().stats()
    }

    /// Whether the account `user_name` is locked out now.
    pub fn is_locked(&self, user_name: &str) -> bool {
        self.accounts_mut().is_locked(user_name, Instant::now())
    }

    /// The lockout policy and password rules in force.
    pub fn account_policy(&self) -> AccountPolicy {
        self.accounts_mut().policy().clone()
    }

    /// Who it claims to be.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Sessions logged in and not yet logged out.
    pub fn open_sessions(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Sessions created so far.
    pub fn sessions_created(&self) -> u64 {
        self.sessions_created.load(Ordering::Relaxed)
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

    fn authorized(&self, request: &Request<'_>) -> bool {
        if let Some(token) = request.auth_token {
            return self
                .sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .any(|open| open == token);
        }
        let Some(encoded) = request.authorization.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let decoded = String::from_utf8_lossy(&decoded);
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        self.accounts_mut().login(user, password, Instant::now()) == Login::Accepted
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
        // Logging in needs no credentials but the ones in the body.
        if self.profile.session_service && request.method == "POST" && path == SESSIONS {
            return self.login(request.body);
        }
        if !self.authorized(request) {
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
            ("GET", ["SessionService"]) if self.profile.session_service => Reply::Json(
                200,
                json!({
                    "@odata.id": "/redfish/v1/SessionService",
                    "Id": "SessionService",
                    "ServiceEnabled": true,
                    "SessionTimeout": 1800,
                    "Sessions": link(SESSIONS),
                }),
            ),
            ("GET", ["SessionService", "Sessions"]) if self.profile.session_service => {
                let ids: Vec<u64> = self
                    .sessions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys()
                    .copied()
                    .collect();
                Reply::Json(
                    200,
                    collection(
                        SESSIONS,
                        "Session Collection",
                        ids.into_iter().map(|id| format!("{SESSIONS}/{id}")),
                    ),
                )
            }
            ("DELETE", ["SessionService", "Sessions", id]) if self.profile.session_service => {
                let removed = id.parse::<u64>().ok().and_then(|id| {
                    self.sessions
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&id)
                });
                match removed {
                    Some(_) => Reply::Empty(204),
                    None => error(
                        404,
                        "Base.1.8.ResourceMissingAtURI",
                        &format!("no session {id}"),
                    ),
                }
            }
            (method, ["AccountService", rest @ ..]) => self.account_request(method, rest, request),
            ("GET", ["Systems"]) => Reply::Json(
                200,
                collection(
                    "/redfish/v1/Systems",
                    "Computer System Collection",
                    (1..=self.machines.len()).map(|n| format!("/redfish/v1/Systems/{n}")),
                ),
            ),
            (method, ["Systems", id, rest @ ..]) => match self.system(id) {
                Some((n, machine)) => self.system_request(method, n, machine, rest, request.body),
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
        let mut root = json!({
            "@odata.id": "/redfish/v1",
            "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
            "Id": "RootService",
            "Name": "ferrometal-sim Redfish service",
            "RedfishVersion": "1.11.0",
            "UUID": self.spec.uuid,
            "Systems": link("/redfish/v1/Systems"),
            "Managers": link("/redfish/v1/Managers"),
            "AccountService": link("/redfish/v1/AccountService"),
        });
        if self.profile.session_service {
            root["SessionService"] = link("/redfish/v1/SessionService");
            root["Links"] = json!({ "Sessions": link(SESSIONS) });
        }
        Reply::Json(200, root)
    }

    /// `POST` to the sessions collection: a new session for the right user name and
    /// password, `401` otherwise.
    fn login(&self, body: &[u8]) -> Reply {
        let credentials: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(user), Some(password)) = (
            credentials["UserName"].as_str(),
            credentials["Password"].as_str(),
        ) else {
            return error(
                400,
                "Base.1.8.PropertyMissing",
                "UserName and Password are required",
            );
        };
        if self.accounts_mut().login(user, password, Instant::now()) != Login::Accepted {
            return Reply::Unauthorized;
        }
        let id = self.sessions_created.fetch_add(1, Ordering::Relaxed) + 1;
        let token = {
            let mut guard = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
            format!("{:016x}{:016x}", guard.1.next_u64(), guard.1.next_u64())
        };
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, token.clone());
        let location = format!("{SESSIONS}/{id}");
        Reply::SessionCreated {
            token,
            body: json!({
                "@odata.id": location,
                "Id": id.to_string(),
                "Name": "User Session",
                "UserName": user,
            }),
            location,
        }
    }

    /// `/redfish/v1/AccountService/…`: the service, its accounts, PATCH of an account, POST
    /// of a new one.
    fn account_request(&self, method: &str, rest: &[&str], request: &Request<'_>) -> Reply {
        let refused =
            |refusal: Refusal| error(refusal.status, refusal.message_id, &refusal.message);
        let mut accounts = self.accounts_mut();
        match (method, rest) {
            ("GET", []) => Reply::Json(200, accounts.service_document()),
            ("GET", ["Accounts"]) => Reply::Json(200, accounts.collection_document()),
            ("POST", ["Accounts"]) => match accounts.create(request.body) {
                Ok(location) => Reply::Created {
                    body: accounts
                        .account_document(
                            location.rsplit('/').next().unwrap_or_default(),
                            Instant::now(),
                        )
                        .unwrap_or(Value::Null),
                    location,
                },
                Err(refusal) => refused(refusal),
            },
            ("GET", ["Accounts", id]) => match accounts.account_document(id, Instant::now()) {
                Some(account) => Reply::Json(200, account),
                None => error(
                    404,
                    "Base.1.8.ResourceMissingAtURI",
                    &format!("no account {id}"),
                ),
            },
            ("PATCH", ["Accounts", id]) => match accounts.patch(id, request.if_match, request.body)
            {
                Ok(()) => Reply::Empty(204),
                Err(refusal) => refused(refusal),
            },
            ("GET", _) => error(
                404,
                "Base.1.8.ResourceMissingAtURI",
                &format!("{} does not exist", request.path),
            ),
            _ => error(
                405,
                "Base.1.8.OperationNotAllowed",
                &format!("{method} is not allowed on {}", request.path),
            ),
        }
    }

    fn manager(&self) -> Value {
        json!({
            "@odata.id": "/redfish/v1/Managers/BMC",
            "Id": "BMC",
            "Name": "Simulated BMC",
            "ManagerType": "BMC",
            "UUID": self.spec.uuid,
            "FirmwareVersion": self.profile.firmware.as_deref().unwrap_or(&self.spec.firmware),
            "Manufacturer": self.profile.manufacturer,
            "Model": self.profile.manager_model,
            "SerialNumber": format!("BMC{:08}", self.spec.index),
            "Status": {"State": "Enabled", "Health": "OK"},
        })
    }

    fn system(&self, id: &str) -> Option<(usize, &Arc<Machine>)> {
        let n: usize = id.parse().ok()?;
        Some((n, self.machines.get(n.checked_sub(1)?)?))
    }

    fn system_request(
        &self,
        method: &str,
        n: usize,
        machine: &Arc<Machine>,
        rest: &[&str],
        body: &[u8],
    ) -> Reply {
        let base = format!("/redfish/v1/Systems/{n}");
        let spec = machine.spec();
        match (method, rest) {
            ("GET", []) => Reply::Json(200, self.system_document(&base, machine)),
            ("GET", [section, ..]) if crate::inventory::SECTIONS.contains(section) => {
                match crate::inventory::get(&base, spec, rest) {
                    Some(document) => Reply::Json(200, document),
                    None => error(404, "Base.1.8.ResourceMissingAtURI", "no such resource"),
                }
            }
            ("PATCH", []) => self.patch_boot(machine, body),
            ("GET", ["EthernetInterfaces"]) => Reply::Json(
                200,
                collection(
                    &format!("{base}/EthernetInterfaces"),
                    "Ethernet Interface Collection",
                    (1..=spec.macs.len() + spec.bmc_only_nics.len())
                        .map(|i| format!("{base}/EthernetInterfaces/{i}")),
                ),
            ),
            ("GET", ["EthernetInterfaces", i]) => {
                match i.parse::<usize>().ok().filter(|i| *i > 0) {
                    Some(i) if i <= spec.macs.len() => {
                        let mac = &spec.macs[i - 1];
                        Reply::Json(
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
                        )
                    }
                    Some(i) if i <= spec.macs.len() + spec.bmc_only_nics.len() => {
                        let (mac, kind) = &spec.bmc_only_nics[i - 1 - spec.macs.len()];
                        Reply::Json(200, bmc_only_nic(&base, i, mac, *kind))
                    }
                    _ => error(404, "Base.1.8.ResourceMissingAtURI", "no such interface"),
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
                if !self.profile.reset_types.contains(&reset_type) {
                    return error(
                        400,
                        "Base.1.8.ActionParameterValueNotInList",
                        &format!("reset type {reset_type} is not offered"),
                    );
                }
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

    fn system_document(&self, base: &str, machine: &Machine) -> Value {
        let spec = machine.spec();
        let boot = machine.boot_settings();
        let mut document = json!({
            "@odata.id": base,
            "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
            "Id": base.rsplit('/').next(),
            "Name": format!("sim-{}", spec.index),
            "SystemType": "Physical",
            "UUID": spec.uuid,
            "Manufacturer": self.profile.manufacturer,
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
            "Links": {"ManagedBy": [link("/redfish/v1/Managers/BMC")]},
            "Actions": {"#ComputerSystem.Reset": {
                "target": format!("{base}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": self.profile.reset_types,
            }},
            "Status": {"State": "Enabled", "Health": "OK"},
        });
        if self.profile.boot_mode == BootMode::Absent
            && let Some(boot) = document["Boot"].as_object_mut()
        {
            boot.remove("BootSourceOverrideMode");
        }
        if !spec.boot_override
            && let Some(system) = document.as_object_mut()
        {
            system.remove("Boot");
            system["SystemType"] = json!("DPU");
        }
        crate::inventory::add_links(&mut document, base, spec);
        document
    }

    fn patch_boot(&self, machine: &Machine, body: &[u8]) -> Reply {
        let Ok(patch) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "Base.1.8.MalformedJSON",
                "the request body is not JSON",
            );
        };
        let Some(boot) = patch
            .get("Boot")
            .and_then(Value::as_object)
            .filter(|_| machine.spec().boot_override)
        else {
            return error(
                400,
                "Base.1.8.PropertyUnknown",
                "only Boot can be patched on this system",
            );
        };
        let mut settings = machine.boot_settings();
        if boot.contains_key("BootSourceOverrideMode") {
            match self.profile.boot_mode {
                BootMode::Writable => {}
                BootMode::ReadOnly => {
                    return error(
                        400,
                        "iLO.2.30.UnsupportedOperation",
                        "BootSourceOverrideMode cannot be changed here",
                    );
                }
                BootMode::Absent => {
                    return error(
                        400,
                        "Base.1.8.PropertyUnknown",
                        "Boot/BootSourceOverrideMode is not a known property",
                    );
                }
            }
        }
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
        if self.profile.enabled_needs_target
            && boot.contains_key("BootSourceOverrideEnabled")
            && settings.target == "None"
        {
            return error(
                400,
                "iLO.2.30.UnsupportedOperation",
                "BootSourceOverrideEnabled cannot be set while BootSourceOverrideTarget is None",
            );
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
            auth_token: None,
            body: b"",
            if_match: None,
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
                auth_token: None,
                body: b"",
                if_match: None,
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
        let patch = |body: &str| patch(&bmc, body);
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
                auth_token: None,
                body: format!(r#"{{"ResetType":"{kind}"}}"#).as_bytes(),
                if_match: None,
            })
        };
        assert_eq!(reset("On"), Reply::Empty(204));
        assert!(bmc.machines()[0].powered());
        assert_eq!(bmc.machines()[0].phase(), crate::Phase::LocalDisk);
        assert_eq!(reset("ForceOff"), Reply::Empty(204));
        assert!(!bmc.machines()[0].powered());
        assert!(matches!(reset("Explode"), Reply::Json(400, _)));
    }

    #[tokio::test]
    async fn every_reset_type_the_redfish_driver_sends_is_accepted_and_logged_per_system() {
        let post = |bmc: &Bmc, system: u32, kind: &str| {
            let auth = basic("admin", "pw");
            bmc.handle(&Request {
                method: "POST",
                path: &format!("/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset"),
                authorization: Some(&auth),
                auth_token: None,
                body: format!(r#"{{"ResetType":"{kind}"}}"#).as_bytes(),
                if_match: None,
            })
        };
        let bmc = bmc(Faults::default());
        let sent = [
            "ForceOn",
            "ForceOff",
            "On",
            "GracefulShutdown",
            "PowerCycle",
            "GracefulRestart",
            "ForceRestart",
        ];
        for kind in sent {
            assert_eq!(post(&bmc, 1, kind), Reply::Empty(204), "{kind}");
        }
        assert!(matches!(post(&bmc, 1, "Explode"), Reply::Json(400, _)));
        assert_eq!(bmc.machines()[0].resets(), sent);
        assert!(
            bmc.machines()[1].resets().is_empty(),
            "the log is per system"
        );
        assert!(bmc.machines()[0].powered());

        let ilo = bmc_with(Profile::hpe_ilo5());
        assert!(matches!(post(&ilo, 1, "PowerCycle"), Reply::Json(400, _)));
        assert_eq!(post(&ilo, 1, "ForceRestart"), Reply::Empty(204));
        assert_eq!(
            ilo.machines()[0].resets(),
            ["ForceRestart"],
            "a refused type is not logged"
        );
    }

    fn bmc_with(profile: Profile) -> Bmc {
        bmc(Faults::default()).with_profile(profile)
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

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        auth_token: Option<&'a str>,
        body: &'a str,
    ) -> Request<'a> {
        Request {
            method,
            path,
            authorization: None,
            auth_token,
            body: body.as_bytes(),
            if_match: None,
        }
    }

    #[test]
    fn sessions_log_in_authorize_requests_and_log_out() {
        let bmc = bmc(Faults::default());
        let root = json(bmc.handle(&request("GET", "/redfish/v1", None, "")));
        assert_eq!(root["Links"]["Sessions"]["@odata.id"], SESSIONS);
        assert_eq!(
            bmc.handle(&request(
                "POST",
                SESSIONS,
                None,
                r#"{"UserName":"admin","Password":"nope"}"#
            )),
            Reply::Unauthorized
        );
        let Reply::SessionCreated {
            token, location, ..
        } = bmc.handle(&request(
            "POST",
            SESSIONS,
            None,
            r#"{"UserName":"admin","Password":"pw"}"#,
        ))
        else {
            panic!("no session");
        };
        assert_eq!(bmc.open_sessions(), 1);
        json(bmc.handle(&request("GET", "/redfish/v1/Systems", Some(&token), "")));
        assert_eq!(
            bmc.handle(&request("GET", "/redfish/v1/Systems", Some("forged"), "")),
            Reply::Unauthorized
        );
        assert_eq!(
            bmc.handle(&request("DELETE", &location, Some(&token), "")),
            Reply::Empty(204)
        );
        assert_eq!(bmc.open_sessions(), 0);
        assert_eq!(bmc.sessions_created(), 1);
        assert_eq!(
            bmc.handle(&request("GET", "/redfish/v1/Systems", Some(&token), "")),
            Reply::Unauthorized,
            "a logged-out token is dead"
        );
    }

    #[test]
    fn the_default_profile_looks_like_before_and_offers_sessions() {
        let bmc = bmc(Faults::default());
        let manager = json(get(&bmc, "/redfish/v1/Managers/BMC"));
        assert_eq!(manager["Manufacturer"], MANUFACTURER);
        assert_eq!(manager["FirmwareVersion"], bmc.spec().firmware.as_str());
        let system = json(get(&bmc, "/redfish/v1/Systems/1"));
        assert_eq!(system["Boot"]["BootSourceOverrideMode"], "UEFI");
        assert!(json(get(&bmc, "/redfish/v1/SessionService"))["Sessions"].is_object());
        let plain = bmc.with_profile(Profile {
            session_service: false,
            ..Profile::default()
        });
        assert!(
            json(plain.handle(&request("GET", "/redfish/v1", None, "")))
                .get("SessionService")
                .is_none()
        );
        assert_eq!(
            plain.handle(&request(
                "POST",
                SESSIONS,
                None,
                r#"{"UserName":"admin","Password":"pw"}"#
            )),
            Reply::Unauthorized,
            "without a SessionService the path is just another protected one"
        );
    }

    fn patch(bmc: &Bmc, body: &str) -> Reply {
        let auth = basic("admin", "pw");
        bmc.handle(&Request {
            method: "PATCH",
            path: "/redfish/v1/Systems/1",
            authorization: Some(&auth),
            auth_token: None,
            body: body.as_bytes(),
            if_match: None,
        })
    }

    fn message_id(reply: Reply) -> String {
        match reply {
            Reply::Json(400, body) => body["error"]["@Message.ExtendedInfo"][0]["MessageId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_hpe_profile_refuses_disabled_with_none_and_mode_writes() {
        let bmc = bmc(Faults::default()).with_profile(Profile::hpe_ilo5());
        assert_eq!(
            json(get(&bmc, "/redfish/v1/Managers/BMC"))["FirmwareVersion"],
            "iLO 5 v2.72"
        );
        assert_eq!(
            message_id(patch(
                &bmc,
                r#"{"Boot":{"BootSourceOverrideTarget":"None","BootSourceOverrideEnabled":"Disabled"}}"#
            )),
            "iLO.2.30.UnsupportedOperation"
        );
        assert_eq!(
            message_id(patch(
                &bmc,
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"UEFI"}}"#
            )),
            "iLO.2.30.UnsupportedOperation"
        );
        assert_eq!(
            patch(
                &bmc,
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Disabled"}}"#
            ),
            Reply::Empty(204)
        );
        let system = json(get(&bmc, "/redfish/v1/Systems/1"));
        assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Disabled");
        assert!(
            !system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]
                .as_array()
                .expect("reset types")
                .contains(&json!("PowerCycle"))
        );
    }

    #[test]
    fn a_patched_password_is_what_basic_auth_and_sessions_accept_and_failures_lock_out() {
        use crate::accounts::ACCOUNTS;
        let bmc = bmc(Faults::default()).with_profile(Profile {
            accounts: AccountPolicy {
                lockout_threshold: 2,
                ..AccountPolicy::default()
            },
            ..Profile::default()
        });
        let service = json(get(&bmc, "/redfish/v1/AccountService"));
        assert_eq!(service["AccountLockoutThreshold"], 2);
        assert_eq!(service["Accounts"]["@odata.id"], ACCOUNTS);
        let admin = format!("{ACCOUNTS}/1");
        let auth = basic("admin", "pw");
        let patch = |body: &str| {
            bmc.handle(&Request {
                method: "PATCH",
                path: &admin,
                authorization: Some(&auth),
                auth_token: None,
                body: body.as_bytes(),
                if_match: Some("W/\"1\""),
            })
        };
        assert_eq!(
            message_id(patch(r#"{"Password":"short"}"#)),
            "Base.1.8.PropertyValueFormatError"
        );
        assert_eq!(patch(r#"{"Password":"n3w-Passw0rd"}"#), Reply::Empty(204));
        assert_eq!(get(&bmc, "/redfish/v1/Systems"), Reply::Unauthorized);
        let new = basic("admin", "n3w-Passw0rd");
        let with_new = |authorization: &str| {
            bmc.handle(&Request {
                method: "GET",
                path: "/redfish/v1/Systems",
                authorization: Some(authorization),
                auth_token: None,
                body: b"",
                if_match: None,
            })
        };
        json(with_new(&new));
        assert!(matches!(
            bmc.handle(&request(
                "POST",
                SESSIONS,
                None,
                r#"{"UserName":"admin","Password":"n3w-Passw0rd"}"#
            )),
            Reply::SessionCreated { .. }
        ));
        // The successes above cleared the old password's failure: two more lock the account.
        assert_eq!(with_new(&basic("admin", "nope")), Reply::Unauthorized);
        assert!(!bmc.is_locked("admin"));
        assert_eq!(with_new(&basic("admin", "nope")), Reply::Unauthorized);
        assert!(bmc.is_locked("admin"));
        assert_eq!(
            with_new(&new),
            Reply::Unauthorized,
            "locked: even the right password"
        );
        assert_eq!(
            bmc.login_stats(),
            LoginStats {
                failed_logins: 4,
                lockouts: 1
            }
        );
    }

    #[test]
    fn a_supermicro_x10_profile_has_no_boot_mode_and_refuses_one() {
        let bmc = bmc(Faults::default()).with_profile(Profile::supermicro_x10());
        let system = json(get(&bmc, "/redfish/v1/Systems/1"));
        assert_eq!(system["Manufacturer"], "Supermicro");
        assert!(system["Boot"].get("BootSourceOverrideMode").is_none());
        assert_eq!(
            message_id(patch(
                &bmc,
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideMode":"UEFI"}}"#
            )),
            "Base.1.8.PropertyUnknown"
        );
        assert_eq!(
            patch(
                &bmc,
                r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}"#
            ),
            Reply::Empty(204)
        );
    }
}
