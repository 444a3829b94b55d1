//! `Endpoint`: a BMC seen on the network (MAC + IP), the start of DHCP-based discovery.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{ip_rule, mac_rule};

/// Desired state of an Endpoint: where the device is.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    doc = "A network device (MAC + IP) that ferrometal may onboard as a BMC. Created by the DHCP server or by anyone; on a MAC-prefix match the Endpoint reconciler creates a BMC and BMCSecret of the same name.",
    kind = "Endpoint",
    status = "EndpointStatus",
    shortname = "mep",
    printcolumn(
        name = "MACAddress",
        type_ = "string",
        json_path = ".spec.macAddress",
        description = "MAC address of the device"
    ),
    printcolumn(
        name = "IP",
        type_ = "string",
        json_path = ".spec.ip",
        description = "IP address of the device"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// MAC address of the device, e.g. `00:1A:2B:3C:4D:5E`. Optional in the schema as in
    /// metal-operator; an Endpoint without one is reported, not onboarded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = mac_rule())]
    #[schemars(length(max = 17))]
    pub mac_address: String,
    /// IPv4 or IPv6 address of the device. Optional in the schema as in metal-operator; an
    /// Endpoint without one is reported, not onboarded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = ip_rule())]
    #[schemars(length(max = 45))]
    pub ip: String,
}

/// Observed state of an Endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// What the Endpoint reconciler concluded, e.g. whether the MAC matched the credential
    /// database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A map keyed by type, so controllers can each server-side-apply their own conditions.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
