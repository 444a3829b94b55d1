//! `ServerClaim`: a request for one Available server, booted with the claimant's OS image and
//! ignition (metal-operator's `ServerClaim`, short name `scl`).
//!
//! The API is metal-operator's, field for field. Binding, the provisioning boot, release and
//! the operation annotations are not served yet (issue #27): a claim is stored and validated,
//! and stays without status.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{LocalObjectReference, Power, field_docs_win};
use super::server::TaintEffect;

/// Desired state of a ServerClaim: which server (by name or by labels), the OS to boot on it
/// and its power.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "metal.ironcore.dev",
    version = "v1alpha1",
    doc = "A claim on one Available server: bound by name (spec.serverRef) or by labels (spec.serverSelector) to a server whose taints it tolerates, which then boots spec.image with the ignition of spec.ignitionSecretRef and is powered as spec.power says.",
    kind = "ServerClaim",
    namespaced,
    status = "ServerClaimStatus",
    shortname = "scl",
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.serverRef.name",
        description = "Bound server"
    ),
    printcolumn(
        name = "Ignition",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name",
        description = "Ignition Secret"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.image",
        description = "OS image"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Bound or Unbound"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(oldSelf.serverRef) || has(self.serverRef)").message("serverRef is required once set"))]
#[x_kube(validation = Rule::new("!has(oldSelf.serverSelector) || has(self.serverSelector)").message("serverSelector is required once set"))]
#[serde(rename_all = "camelCase")]
#[schemars(transform = field_docs_win)]
pub struct ServerClaimSpec {
    /// Power the claimed server should have: `On` or `Off`.
    pub power: Power,
    /// The server to claim, by name (set by the binding when the claim selects by labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("serverRef is immutable"))]
    pub server_ref: Option<LocalObjectReference>,
    /// Claim any Available server whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("serverSelector is immutable"))]
    pub server_selector: Option<LabelSelector>,
    /// Secret in the claim's namespace whose `ignition` key holds the ignition to boot with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
    /// Secret (type `metal.ironcore.dev/user-data`) with user data for a metadata service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_ref: Option<LocalObjectReference>,
    /// OCI reference of the OS image to boot.
    pub image: String,
    /// Taints of the server this claim accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// A label query: every `matchLabels` pair and every `matchExpressions` requirement must hold
/// (Kubernetes' `LabelSelector`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels the server must have, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on the server's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One requirement of a label query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values for `In` and `NotIn`; empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A taint a claim accepts (metal-operator's `Toleration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(transform = field_docs_win)]
pub struct Toleration {
    /// The taint key it matches.
    #[schemars(length(min = 1))]
    pub key: String,
    /// `Equal` (the default: the value must match too) or `Exists` (any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// The taint value it matches, with `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect it matches; empty matches every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

/// How a toleration compares values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TolerationOperator {
    /// Key and value must match.
    Equal,
    /// The key must match; any value.
    Exists,
}

/// Whether a claim holds a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ServerClaimPhase {
    /// The claim holds its server.
    Bound,
    /// The claim holds no server yet.
    Unbound,
}

/// Observed state of a claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = field_docs_win)]
pub struct ServerClaimStatus {
    /// `Bound` once the claim holds its server, `Unbound` before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ServerClaimPhase>,
    /// Conditions: why the claim is not bound, and how the server's boot goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
