//! Types shared by several kinds.

use std::str::FromStr;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Pattern of a MAC address as metal-operator accepts it: six hex byte pairs separated by
/// `:` or `-`.
pub const MAC_ADDRESS_PATTERN: &str = "^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$";

/// Pattern of an RFC 4122 UUID in its textual form (either case).
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A reference to an object by name; the namespace is implied by the referrer (or the object
/// is cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct LocalObjectReference {
    /// Name of the referenced object. Required and non-empty: metal-operator defaults it to
    /// empty (Kubernetes' `LocalObjectReference`), a reference that can never resolve.
    #[x_kube(validation = Rule::new("self != ''").message("name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
}

/// A reference to a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ObjectReference {
    /// Namespace of the referenced object.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Name of the referenced object.
    #[x_kube(validation = Rule::new("self != ''").message("name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
}

/// Protocol spoken with a BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ProtocolName {
    /// DMTF Redfish over HTTP(S).
    Redfish,
    /// Redfish against a local emulator (metal-operator's development protocol).
    RedfishLocal,
    /// Redfish that also posts a fake probe report (metal-operator's development shortcut).
    RedfishWithRegistryPatch,
    /// Redfish with Kubernetes-backed test BMCs (metal-operator v0.1).
    RedfishKube,
    /// IPMI over LAN.
    #[serde(rename = "IPMI")]
    Ipmi,
    /// SSH to the BMC's shell.
    #[serde(rename = "SSH")]
    Ssh,
}

/// Parses the name as it appears in YAML (e.g. `Redfish`, `IPMI`).
impl FromStr for ProtocolName {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        serde_json::from_value(serde_json::Value::from(name)).map_err(|_| ())
    }
}

/// Parses the name as it appears in YAML (e.g. `SSH`).
impl FromStr for ConsoleProtocolName {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        serde_json::from_value(serde_json::Value::from(name)).map_err(|_| ())
    }
}

/// URL scheme used to reach a BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolScheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// How to talk to a BMC: protocol, port and optional scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[schemars(transform = field_docs_win)]
pub struct Protocol {
    /// Protocol name; selects the BMC driver plugin.
    pub name: ProtocolName,
    /// TCP port of the BMC's management service.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// URL scheme; when omitted the operator's default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<ProtocolScheme>,
}

/// Console protocol offered by a BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ConsoleProtocolName {
    /// IPMI serial-over-LAN.
    #[serde(rename = "IPMI")]
    Ipmi,
    /// SSH serial console.
    #[serde(rename = "SSH")]
    Ssh,
    /// Lenovo XCC's SSH console.
    #[serde(rename = "SSHLenovo")]
    SshLenovo,
}

/// Where a BMC offers a serial console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ConsoleProtocol {
    /// Console protocol.
    pub name: ConsoleProtocolName,
    /// TCP port of the console service.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// Desired power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Power {
    /// Powered on.
    On,
    /// Powered off.
    Off,
}

/// Power state reported by a BMC (Redfish `PowerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
    /// Paused (Redfish).
    Paused,
    /// Transitioning to On.
    PoweringOn,
    /// Transitioning to Off.
    PoweringOff,
    /// The BMC did not say.
    Unknown,
}

/// A MAC address plus an IP address: where a BMC is reachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineEndpoint {
    /// MAC address of the BMC's network interface, e.g. `00:1A:2B:3C:4D:5E`. Optional, as in
    /// metal-operator (its own BMC sample gives only `ip`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = mac_rule())]
    #[schemars(length(max = 17))]
    pub mac_address: String,
    /// IPv4 or IPv6 address of the BMC. Optional in the schema as in metal-operator; a BMC
    /// without one cannot be reached and says so in its `Ready` condition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = ip_rule())]
    #[schemars(length(max = 45))]
    pub ip: String,
}

/// Schema transform for a struct with optional enum fields: each field keeps its own doc
/// comment as its description.
///
/// An `Option<Enum>` field's schema is `anyOf: [<the enum's schema>, null]` with the field's
/// doc beside it. kube's `OptionalEnum` rewrite hoists the enum's schema over the field's, and
/// with it the enum type's doc, so `kubectl explain` would show "Desired power state." where
/// the field says it is deprecated. Dropping the inner description first lets the field's doc
/// win; apply with `#[schemars(transform = field_docs_win)]` on the struct.
pub fn field_docs_win(schema: &mut schemars::Schema) {
    let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for property in properties.values_mut() {
        let Some(property) = property.as_object_mut() else {
            continue;
        };
        if !property.contains_key("description") {
            continue;
        }
        for key in ["anyOf", "allOf"] {
            let members = property
                .get_mut(key)
                .and_then(serde_json::Value::as_array_mut);
            for member in members
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_object_mut)
            {
                member.remove("description");
            }
        }
    }
}

/// The CEL rule checking a MAC address, with a message in the user's words.
pub fn mac_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches('{MAC_ADDRESS_PATTERN}')")).message(
        "must be a MAC address of six hex byte pairs separated by ':' or '-', e.g. 00:1A:2B:3C:4D:5E",
    )
}

/// The CEL rule checking an IP address.
pub fn ip_rule() -> kube::core::Rule {
    kube::core::Rule::new("isIP(self)")
        .message("must be an IPv4 or IPv6 address, e.g. 192.168.100.10")
}

/// The CEL rule checking a UUID.
pub fn uuid_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches('{UUID_PATTERN}')"))
        .message("must be a UUID, e.g. 123e4567-e89b-12d3-a456-426614174000")
}
