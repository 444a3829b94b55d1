//! A simulated BMC: the Redfish resources the redfish plugin reads and writes (service
//! root, managers, systems with EthernetInterfaces, power via `ComputerSystem.Reset`, the
//! boot override via `PATCH`, an `AccountService` with lockout policy and password rules,
//! see [`crate::accounts`]), Basic auth, Redfish sessions (`SessionService`,
//! `X-Auth-Token`), the `$expand` query one level deep (see [`Expansion`]), a vendor
//! [`Profile`] and injected faults. Request handling is plain data in, data out; `serve`
//! puts it on the network.

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
    /// Advertise and answer DSP0266 `$expand` (`ExpandAll`, `NoLinks`, `Levels` with
    /// `MaxLevels` 1); without it the root advertises no `ExpandQuery` and the query is
    /// ignored, as on a BMC that predates it.
    pub expand_query: bool,
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
            expand_query: true,
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
            expand_query: true,
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
    /// The query (after `?`, as sent: percent-encoded or not), if any.
    pub query: Option<&'a str>,
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

/// A `$expand` the simulated BMC answers (DSP0266 query parameters), one level deep as its
/// root advertises (`MaxLevels` 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// `.`: hyperlinks outside `Links` (a collection's `Members`, a system's subresources).
    NoLinks,
    /// `*`: every hyperlink, those under `Links` too.
    All,
}

impl Expansion {
    /// The `$expand` of `query` (each parameter percent-decoded), `None` when there is none;
    /// a form this BMC does not take (`~`, levels other than 1, anything unknown) is the
    /// `400` with a Redfish error body to answer.
    pub fn parse(query: &str) -> Result<Option<Self>, Reply> {
        let Some(value) = query.split('&').find_map(|parameter| {
            let parameter = percent_encoding::percent_decode_str(parameter).decode_utf8_lossy();
            parameter.strip_prefix("$expand=").map(str::to_owned)
        }) else {
            return Ok(None);
        };
        let refused = |message_id: &str| {
            error(
                400,
                message_id,
                &format!("$expand={value} is not supported: use . or * with at most $levels=1"),
            )
        };
        let (form, options) = match value.split_once('(') {
            Some((form, options)) => {
                let Some(options) = options.strip_suffix(')') else {
                    return Err(refused("Base.1.8.QueryParameterValueFormatError"));
                };
                (form, Some(options))
            }
            None => (value.as_str(), None),
        };
        match options.map(|options| options.strip_prefix("$levels=").map(str::parse::<u32>)) {
            None | Some(Some(Ok(1))) => {}
            Some(Some(Ok(_))) => return Err(refused("Base.1.8.QueryParameterOutOfRange")),
            Some(_) => return Err(refused("Base.1.8.QueryParameterValueFormatError")),
        }
        match form {
            "." => Ok(Some(Self::NoLinks)),
            "*" => Ok(Some(Self::All)),
            "~" => Err(refused("Base.1.8.QueryNotSupported")),
            _ => Err(refused("Base.1.8.QueryParameterValueFormatError")),
        }
    }
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
        let expansion = match request.query {
            Some(query) if request.method == "GET" && self.profile.expand_query => {
                match Expansion::parse(query) {
                    Ok(expansion) => expansion,
                    Err(refused) => return refused,
                }
            }
            _ => None,
        };
        match (expansion, self.route(request, path)) {
            (Some(expansion), Reply::Json(200, document)) => {
                Reply::Json(200, self.expand(request, document, expansion))
            }
            (_, reply) => reply,
        }
    }

    /// Answers an authorized request, counted and past the faults already (an expanded GET
    /// routes each member here too, and stays one request with one fault roll).
    fn route(&self, request: &Request<'_>, path: &str) -> Reply {
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

    /// `document` with its hyperlinks replaced by the resources they name, one level deep:
    /// top-level properties (a collection's `Members`, a system's subresources) and, for
    /// `*`, those under `Links` too. A link this BMC cannot answer stays a link.
    fn expand(&self, request: &Request<'_>, mut document: Value, expansion: Expansion) -> Value {
        let Some(object) = document.as_object_mut() else {
            return document;
        };
        for (key, value) in object.iter_mut() {
            if key != "Links" {
                self.expand_links(request, value);
            } else if expansion == Expansion::All
                && let Some(links) = value.as_object_mut()
            {
                for link in links.values_mut() {
                    self.expand_links(request, link);
                }
            }
        }
        document
    }

    /// Replaces `value`, a hyperlink or an array of them, by the resources named.
    fn expand_links(&self, request: &Request<'_>, value: &mut Value) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.expand_link(request, item);
                }
            }
            item => self.expand_link(request, item),
        }
    }

    /// Replaces `item` by the resource it names, if it is a bare `{"@odata.id"}` this BMC
    /// answers with a document.
    fn expand_link(&self, request: &Request<'_>, item: &mut Value) {
        let Some(path) = item
            .as_object()
            .filter(|object| object.len() == 1)
            .and_then(|object| object.get("@odata.id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let member = Request {
            method: "GET",
            path: &path,
            query: None,
            body: b"",
            if_match: None,
            ..*request
        };
        if let Reply::Json(200, resource) = self.route(&member, path.trim_end_matches('/')) {
            *item = resource;
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
        if self.profile.expand_query {
            root["ProtocolFeaturesSupported"] = json!({
                "ExpandQuery": {
                    "ExpandAll": true,
                    "NoLinks": true,
                    "Levels": true,
                    "MaxLevels": 1,
                    "Links": false,
                },
                "SelectQuery": false,
                "FilterQuery": false,
                "OnlyMemberQuery": false,
                "ExcerptQuery": false,
            });
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
            query: None,
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
                query: None,
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
                query: None,
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
                query: None,
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
            query: None,
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
            query: None,
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
                query: None,
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
                query: None,
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

    fn get_expanded(bmc: &Bmc, path: &str, query: &str) -> Reply {
        let auth = basic("admin", "pw");
        bmc.handle(&Request {
            method: "GET",
            path,
            query: Some(query),
            authorization: Some(&auth),
            auth_token: None,
            body: b"",
            if_match: None,
        })
    }

    #[test]
    fn the_root_advertises_expand_one_level_deep() {
        let bmc = bmc(Faults::default());
        let root = json(bmc.handle(&request("GET", "/redfish/v1", None, "")));
        assert_eq!(
            root["ProtocolFeaturesSupported"]["ExpandQuery"],
            serde_json::json!({"ExpandAll": true, "NoLinks": true, "Levels": true, "MaxLevels": 1, "Links": false})
        );
    }

    #[rstest::rstest]
    #[case::no_links_with_levels("$expand=.($levels=1)")]
    #[case::all_with_levels("$expand=*($levels=1)")]
    #[case::no_links("$expand=.")]
    #[case::all("$expand=*")]
    #[case::percent_encoded("%24expand=.(%24levels%3D1)")]
    #[case::among_other_parameters("$top=10&$expand=.")]
    fn an_expanded_collection_carries_its_members_bodies_in_one_request(#[case] query: &str) {
        let bmc = bmc(Faults::default());
        for collection in [
            "/redfish/v1/Systems",
            "/redfish/v1/Systems/2/EthernetInterfaces",
            "/redfish/v1/Systems/1/Memory",
        ] {
            let plain = json(get(&bmc, collection));
            let before = bmc.requests();
            let expanded = json(get_expanded(&bmc, collection, query));
            assert_eq!(bmc.requests() - before, 1, "one request: {collection}");
            let links = plain["Members"].as_array().expect("members");
            let members = expanded["Members"].as_array().expect("members");
            assert_eq!(members.len(), links.len(), "{collection}");
            assert!(!members.is_empty(), "{collection}");
            for (link, member) in links.iter().zip(members) {
                let path = link["@odata.id"].as_str().expect("link");
                assert_eq!(member, &json(get(&bmc, path)), "{collection} {query}");
            }
            assert_eq!(expanded["@odata.id"], plain["@odata.id"]);
            assert_eq!(
                expanded["Members@odata.count"],
                plain["Members@odata.count"]
            );
        }
    }

    #[test]
    fn only_a_star_expands_what_is_under_links() {
        let bmc = bmc(Faults::default());
        let no_links = json(get_expanded(&bmc, "/redfish/v1/Systems/1", "$expand=."));
        assert_eq!(
            no_links["Links"]["ManagedBy"][0],
            serde_json::json!({"@odata.id": "/redfish/v1/Managers/BMC"})
        );
        assert_eq!(
            no_links["EthernetInterfaces"]["Name"], "Ethernet Interface Collection",
            "a subresource comes inline, one level: its members stay links"
        );
        assert!(no_links["EthernetInterfaces"]["Members"][0]["MACAddress"].is_null());
        let all = json(get_expanded(&bmc, "/redfish/v1/Systems/1", "$expand=*"));
        assert_eq!(all["Links"]["ManagedBy"][0]["ManagerType"], "BMC");
    }

    #[rstest::rstest]
    #[case::links_only("$expand=~", "Base.1.8.QueryNotSupported")]
    #[case::two_levels("$expand=.($levels=2)", "Base.1.8.QueryParameterOutOfRange")]
    #[case::unknown_form("$expand=all", "Base.1.8.QueryParameterValueFormatError")]
    #[case::unclosed("$expand=.($levels=1", "Base.1.8.QueryParameterValueFormatError")]
    #[case::unknown_option("$expand=.($select=Id)", "Base.1.8.QueryParameterValueFormatError")]
    #[case::empty("$expand=", "Base.1.8.QueryParameterValueFormatError")]
    fn an_expand_form_the_bmc_does_not_take_is_a_400_with_a_redfish_error(
        #[case] query: &str,
        #[case] expected: &str,
    ) {
        let bmc = bmc(Faults::default());
        let before = bmc.requests();
        let reply = get_expanded(&bmc, "/redfish/v1/Systems", query);
        assert_eq!(message_id(reply), expected);
        assert_eq!(bmc.requests() - before, 1);
    }

    #[test]
    fn an_expanded_get_needs_credentials_and_takes_one_fault_roll() {
        let bmc = bmc(Faults {
            server_error_burst: 1,
            ..Faults::default()
        });
        assert!(matches!(
            get_expanded(&bmc, "/redfish/v1/Systems", "$expand=."),
            Reply::Json(500, _)
        ));
        let expanded = json(get_expanded(&bmc, "/redfish/v1/Systems", "$expand=."));
        assert_eq!(expanded["Members"][1]["Id"], "2");
        assert_eq!(bmc.requests(), 2);
        let unauthorized = bmc.handle(&Request {
            query: Some("$expand=."),
            ..request("GET", "/redfish/v1/Systems", None, "")
        });
        assert_eq!(unauthorized, Reply::Unauthorized);
    }

    #[test]
    fn without_the_feature_the_root_is_silent_and_the_query_is_ignored() {
        let bmc = bmc(Faults::default()).with_profile(Profile {
            expand_query: false,
            ..Profile::default()
        });
        let root = json(bmc.handle(&request("GET", "/redfish/v1", None, "")));
        assert!(root.get("ProtocolFeaturesSupported").is_none());
        let systems = json(get_expanded(&bmc, "/redfish/v1/Systems", "$expand=~"));
        assert_eq!(
            systems["Members"][0],
            serde_json::json!({"@odata.id": "/redfish/v1/Systems/1"})
        );
    }
}
