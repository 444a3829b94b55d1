//! Domain types of plugin calls, independent of the generated bindings.

/// An error a plugin reported for an operation (as opposed to a crash or timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// The request made no sense to the plugin.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Not implemented by the plugin or not offered by the BMC.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The BMC refused the credentials.
    #[error("unauthorized{}", detail(.0))]
    Unauthorized(Option<String>),
    /// The BMC could not be reached.
    #[error("unreachable{}", detail(.0))]
    Unreachable(Option<String>),
    /// The BMC answered with an error.
    #[error("BMC fault{}: {message}{}", http_status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), message_id.as_ref().map(|id| format!(" [{id}]")).unwrap_or_default())]
    BmcFault {
        /// HTTP status, if the fault came over HTTP.
        http_status: Option<u16>,
        /// Redfish message id, if the BMC sent one.
        message_id: Option<String>,
        /// The BMC's message.
        message: String,
    },
    /// Anything else.
    #[error("plugin error{}", detail(.0))]
    Other(Option<String>),
}

fn detail(text: &Option<String>) -> String {
    text.as_ref().map(|t| format!(": {t}")).unwrap_or_default()
}

/// A default credential to try on a BMC. Its `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DefaultCredential {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Serialises with the password redacted (for `ferrometal plugin call` output and logs).
impl serde::Serialize for DefaultCredential {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("DefaultCredential", 2)?;
        state.serialize_field("username", &self.username)?;
        state.serialize_field("password", "<redacted>")?;
        state.end()
    }
}

impl std::fmt::Debug for DefaultCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to talk to a BMC whose MAC matched the credential database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BmcProfile {
    /// Manufacturer (informational).
    pub manufacturer: String,
    /// Protocol name, e.g. `Redfish`.
    pub protocol: String,
    /// `http` or `https`, if the database says.
    pub scheme: Option<String>,
    /// Management port.
    pub port: u16,
    /// Credentials to try, in order.
    pub default_credentials: Vec<DefaultCredential>,
    /// Console protocol, e.g. `SSH`.
    pub console_protocol: Option<String>,
    /// Console port.
    pub console_port: Option<u16>,
}

/// How to verify a BMC's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Trust only these PEM-encoded CA certificates.
    CaBundle(String),
    /// Accept any certificate. Only when an operator asked for it explicitly.
    Insecure,
}

/// The BMC of a driver call: where it is, how to trust it, and the credential to use.
#[derive(Clone, PartialEq, Eq)]
pub struct BmcEndpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS verification for `https`.
    pub tls: TlsPolicy,
    /// User name.
    pub username: String,
    /// Password (never logged; plugins see it only with `credentials/reveal`).
    pub password: String,
    /// Manufacturer, if known.
    pub manufacturer_hint: Option<String>,
    /// Driver settings.
    pub settings: Vec<(String, String)>,
}

impl BmcEndpoint {
    /// `scheme://host:port`, the only origin a plugin's requests may go to.
    pub fn origin(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

impl std::fmt::Debug for BmcEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcEndpoint")
            .field("origin", &self.origin())
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a driver says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverInfo {
    /// Driver name.
    pub name: String,
    /// Driver version.
    pub version: String,
    /// Manufacturers it is specialised for; empty means generic.
    pub manufacturers: Vec<String>,
    /// Optional features.
    pub features: Vec<String>,
}

/// Power state of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
    /// Turning on.
    PoweringOn,
    /// Turning off.
    PoweringOff,
    /// Not known.
    Unknown,
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Cut power.
    ForceOff,
    /// Ask the OS to shut down.
    GracefulShutdown,
    /// Reset at once.
    ForceRestart,
    /// Ask the OS to restart.
    GracefulRestart,
    /// Off, then on.
    PowerCycle,
}

/// Where the next boot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BootTarget {
    /// No override.
    None,
    /// PXE.
    Pxe,
    /// Local disk.
    Hdd,
    /// Optical/virtual media.
    Cd,
    /// UEFI HTTP boot.
    UefiHttp,
    /// Firmware setup.
    BiosSetup,
    /// Something else.
    Other,
}

/// A boot override, requested or as stored by the BMC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootOverride {
    /// Where to boot.
    pub target: BootTarget,
    /// UEFI or legacy.
    pub uefi: bool,
    /// Every boot or the next only.
    pub persistent: bool,
    /// URI for UEFI HTTP boot.
    pub http_boot_uri: Option<String>,
}

/// What a NIC is, as far as in-band discovery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NicKind {
    /// A NIC of the system that its operating system sees: the probe must report it.
    System,
    /// The BMC's host interface (a USB or virtual link between BMC and host).
    HostInterface,
    /// Reported disabled.
    Disabled,
    /// Reported absent.
    Absent,
}

/// A network interface of a system.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    /// MAC address.
    pub mac: String,
    /// Name.
    pub name: Option<String>,
    /// What it is; only [`NicKind::System`] NICs are expected in a probe report.
    pub kind: NicKind,
    /// Whether the port has a link (Redfish `LinkStatus`); `None` when the BMC does not say.
    pub link_up: Option<bool>,
}

/// A computer system behind a BMC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct System {
    /// Its address on the BMC (Redfish `@odata.id`).
    pub uri: String,
    /// SMBIOS UUID.
    pub uuid: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Power state.
    pub power: PowerState,
    /// NICs.
    pub nics: Vec<Nic>,
    /// Boot override targets the system accepts, as the driver names them (Redfish
    /// `BootSourceOverrideTarget@Redfish.AllowableValues`, e.g. `Pxe`, `UefiHttp`); empty
    /// when the BMC does not say.
    pub boot_targets: Vec<String>,
    /// Whether the system takes a boot override at all (Redfish: a `Boot` object with a
    /// `BootSourceOverrideTarget`); a DPU or SmartNIC SoC often does not.
    pub boot_override: bool,
    /// The system's hardware: `get-system` reads it, a probe leaves it out (`None`).
    pub inventory: Option<super::hardware::Inventory>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// BMC manufacturer.
    pub manufacturer: Option<String>,
    /// BMC model.
    pub model: Option<String>,
    /// BMC serial.
    pub serial: Option<String>,
    /// BMC firmware.
    pub firmware: Option<String>,
    /// Manager UUID.
    pub manager_uuid: Option<String>,
    /// Systems behind the BMC.
    pub systems: Vec<System>,
}
