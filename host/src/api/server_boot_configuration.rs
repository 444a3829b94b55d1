//! `ServerBootConfiguration`: what a server should boot next (image + ignition).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{LocalObjectReference, field_docs_win};

/// Desired state of a ServerBootConfiguration: what to boot and with which ignition.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    doc = "The boot a server should make next: an OS image from an OCI registry and an ignition Secret. The boot server resolves the image and sets status.state to Ready (or Error with a condition naming the cause).",
    kind = "ServerBootConfiguration",
    namespaced,
    status = "ServerBootConfigurationStatus",
    shortname = "sbc",
    printcolumn(
        name = "ServerRef",
        type_ = "string",
        json_path = ".spec.serverRef.name",
        description = "Server to boot"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.image",
        description = "OS image"
    ),
    printcolumn(
        name = "IgnitionRef",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name",
        description = "Ignition Secret"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Boot configuration state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServerBootConfigurationSpec {
    /// The Server to boot (cluster-scoped).
    pub server_ref: LocalObjectReference,
    /// OCI reference of the OS image, e.g. `ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Secret in the same namespace whose `ignition` key holds the ignition to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
}

/// Whether a boot configuration can be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ServerBootConfigurationState {
    /// Not resolved yet.
    Pending,
    /// Image resolved and ignition present: the server may boot.
    Ready,
    /// Something is missing; the conditions say what.
    Error,
}

/// Observed state of a boot configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = field_docs_win)]
pub struct ServerBootConfigurationStatus {
    /// `Pending` until the boot server has looked at it, then `Ready` (the server may boot)
    /// or `Error` (the conditions say what is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerBootConfigurationState>,
    /// Conditions: image resolved, ignition present, iPXE script and ignition fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A map keyed by type, so controllers can each server-side-apply their own conditions.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
