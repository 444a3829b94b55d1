//! `BMCSecret`: a cluster-scoped, Secret-shaped object holding BMC credentials.
//!
//! metal-operator models it like a core Secret (top-level `data`, `stringData`, `immutable`,
//! `type`; no `spec`), which the `CustomResource` derive cannot express, so the resource
//! impl and the CRD are written out here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Serialize};

use super::{GROUP, VERSION};

/// Key of the user name in a BMCSecret.
pub const USERNAME_KEY: &str = "username";
/// Key of the password in a BMCSecret.
pub const PASSWORD_KEY: &str = "password";
/// Most keys a BMCSecret may hold (keeps the immutability rule's cost bounded).
const MAX_KEYS: u32 = 16;
/// Longest value a BMCSecret may hold, in characters.
const MAX_VALUE_LENGTH: u32 = 4096;

/// Credentials for a BMC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BMCSecret {
    /// Always `metal.ironcore.dev/v1alpha1`.
    pub api_version: String,
    /// Always `BMCSecret`.
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// When true, `data` and `stringData` can no longer change (and `immutable` cannot be
    /// unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Base64-encoded values, usually `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, ByteString>>,
    /// Plain-text values, as in a core Secret's `stringData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_data: Option<BTreeMap<String, String>>,
    /// Free-form type, as in a core Secret.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

impl Default for BMCSecret {
    fn default() -> Self {
        Self {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: String::from("BMCSecret"),
            metadata: ObjectMeta::default(),
            immutable: None,
            data: None,
            string_data: None,
            type_: None,
        }
    }
}

impl BMCSecret {
    /// A BMCSecret named `name` holding `username` and `password`.
    pub fn with_credentials(name: &str, username: &str, password: &str) -> Self {
        let data = [
            (
                USERNAME_KEY.to_owned(),
                ByteString(username.as_bytes().to_vec()),
            ),
            (
                PASSWORD_KEY.to_owned(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ];
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(data.into()),
            ..Self::default()
        }
    }

    /// The value of `key`, from `data` or else `stringData` (metal-operator's order).
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|value| value.0.clone())
            .or_else(|| {
                self.string_data
                    .as_ref()
                    .and_then(|data| data.get(key))
                    .map(|value| value.as_bytes().to_vec())
            })
    }

    /// The CRD, written out by hand because the object has no `spec`.
    pub fn crd() -> CustomResourceDefinition {
        let rule = "!(has(oldSelf.immutable) && oldSelf.immutable) || \
            (has(self.immutable) && self.immutable && \
            (has(self.data) ? self.data : {}) == (has(oldSelf.data) ? oldSelf.data : {}) && \
            (has(self.stringData) ? self.stringData : {}) == (has(oldSelf.stringData) ? oldSelf.stringData : {}))";
        let crd = serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": { "name": format!("bmcsecrets.{GROUP}") },
            "spec": {
                "group": GROUP,
                "names": {
                    "kind": "BMCSecret",
                    "listKind": "BMCSecretList",
                    "plural": "bmcsecrets",
                    "singular": "bmcsecret",
                    "shortNames": ["bmcsec"],
                },
                "scope": "Cluster",
                "versions": [{
                    "name": VERSION,
                    "served": true,
                    "storage": true,
                    "additionalPrinterColumns": [
                        { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" },
                    ],
                    "schema": { "openAPIV3Schema": {
                        "description": "Credentials for a BMC, shaped like a core Secret: `data` (base64) or `stringData` (plain text) with the keys `username` and `password`.",
                        "type": "object",
                        "properties": {
                            "apiVersion": { "type": "string", "description": "APIVersion defines the versioned schema of this representation of an object." },
                            "kind": { "type": "string", "description": "Kind is a string value representing the REST resource this object represents." },
                            "metadata": { "type": "object" },
                            "immutable": {
                                "type": "boolean",
                                "description": "When true, data and stringData can no longer change and immutable cannot be unset.",
                            },
                            "data": {
                                "type": "object",
                                "description": "Base64-encoded values, usually `username` and `password`.",
                                "maxProperties": MAX_KEYS,
                                "additionalProperties": { "type": "string", "format": "byte", "maxLength": MAX_VALUE_LENGTH },
                            },
                            "stringData": {
                                "type": "object",
                                "description": "Plain-text values, as in a core Secret's stringData.",
                                "maxProperties": MAX_KEYS,
                                "additionalProperties": { "type": "string", "maxLength": MAX_VALUE_LENGTH },
                            },
                            "type": { "type": "string", "description": "Free-form type, as in a core Secret.", "maxLength": 253 },
                        },
                        "x-kubernetes-validations": [{
                            "rule": rule,
                            "message": "this BMCSecret is immutable: data, stringData and immutable cannot change once immutable is true",
                        }],
                    }},
                    "subresources": { "status": {} },
                }],
            },
        });
        serde_json::from_value(crd).unwrap_or_else(|error| {
            unreachable!("the hand-written BMCSecret CRD matches the CRD type: {error}")
        })
    }
}

impl Resource for BMCSecret {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("BMCSecret")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("bmcsecrets")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_takes_precedence_over_string_data() {
        let mut secret = BMCSecret::with_credentials("bmc", "admin", "from-data");
        secret.string_data = Some([("password".to_owned(), "from-string-data".to_owned())].into());
        assert_eq!(
            secret.value(PASSWORD_KEY).as_deref(),
            Some(&b"from-data"[..])
        );
    }

    #[test]
    fn string_data_is_used_when_data_lacks_the_key() {
        let secret = BMCSecret {
            string_data: Some([("username".to_owned(), "foo".to_owned())].into()),
            ..BMCSecret::default()
        };
        assert_eq!(secret.value(USERNAME_KEY).as_deref(), Some(&b"foo"[..]));
        assert_eq!(secret.value(PASSWORD_KEY), None);
    }

    #[test]
    fn serialised_objects_carry_api_version_and_kind() {
        let json = serde_json::to_value(BMCSecret::with_credentials("x", "u", "p")).expect("json");
        assert_eq!(json["apiVersion"], "metal.ironcore.dev/v1alpha1");
        assert_eq!(json["kind"], "BMCSecret");
        assert_eq!(json["data"]["username"], "dQ==");
    }
}
