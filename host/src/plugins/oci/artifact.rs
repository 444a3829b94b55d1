//! Plugins as OCI artifacts in the CNCF wasm layout: one layer of media type
//! [`WASM_LAYER_MEDIA_TYPE`] holding the component, a config of media type
//! [`WASM_CONFIG_MEDIA_TYPE`] describing it, and the plugin's metadata (name, world, ABI, SDK,
//! capabilities) as manifest annotations so `ferrometal plugin inspect <ref>` and registry
//! UIs show them without downloading the layer.
//!
//! On pull the older single-layer types of wasm-to-oci (used by Kubewarden policies and
//! Spin's component layers) are accepted too, when the layer holds a component.

use std::collections::BTreeMap;

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest, Sha256};

use crate::plugins::PluginMetadata;

/// Media type of the wasm config (CNCF wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the component layer (CNCF wasm OCI artifact layout).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Layer media types of earlier wasm artifact formats accepted on pull: wasm-to-oci's (which
/// Kubewarden and Spin use) and the "oci" variant of solo-io's wasm image specification.
pub const LEGACY_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Annotation prefix of the plugin metadata ferrometal writes on the manifest.
const ANNOTATION_PREFIX: &str = "dev.ferrometal.plugin.";
/// The plugin's world (`bmc-driver`, …).
pub const WORLD_ANNOTATION: &str = "dev.ferrometal.plugin.world";
/// The plugin ABI it was built for.
pub const ABI_ANNOTATION: &str = "dev.ferrometal.plugin.abi";
/// The SDK version it was built with.
pub const SDK_ANNOTATION: &str = "dev.ferrometal.plugin.sdk";
/// Capabilities it requests, comma-separated.
pub const CAPABILITIES_ANNOTATION: &str = "dev.ferrometal.plugin.capabilities";
/// Its name (the file name it was pushed from, without `.wasm`).
pub const NAME_ANNOTATION: &str = "dev.ferrometal.plugin.name";
/// OCI's title annotation (the file name), which registry UIs show.
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A plugin artifact ready to push: config and manifest bytes, exactly as they are sent, so
/// the manifest digest is known before the registry answers.
#[derive(Debug, Clone)]
pub struct PluginArtifact {
    /// The config blob.
    pub config: Vec<u8>,
    /// Its descriptor.
    pub config_descriptor: OciDescriptor,
    /// The layer descriptor of the component.
    pub layer_descriptor: OciDescriptor,
    /// The manifest as pushed.
    pub manifest: Vec<u8>,
    /// `sha256:` of [`manifest`](Self::manifest): what a reference pins.
    pub manifest_digest: String,
}

/// The CNCF wasm config: what the component is, for registries and tools.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<&'a str>,
    component: ComponentConfig<'a>,
}

#[derive(Debug, serde::Serialize)]
struct ComponentConfig<'a> {
    exports: &'a [String],
    imports: &'a [String],
    target: String,
}

impl PluginArtifact {
    /// The artifact for `component` named `name`, with its metadata and its component's
    /// `imports` and `exports` (from [`crate::plugins::PluginRuntime::inspect`]).
    pub fn new(
        name: &str,
        component: &[u8],
        metadata: &PluginMetadata,
        imports: &[String],
        exports: &[String],
    ) -> Self {
        let layer_digest = sha256_digest(component);
        let config = serde_json::to_vec(&WasmConfig {
            architecture: "wasm",
            os: "wasip2",
            layer_digests: vec![&layer_digest],
            component: ComponentConfig {
                exports,
                imports,
                target: format!("ferrometal:plugin/{}@{}", metadata.world, metadata.abi),
            },
        })
        .unwrap_or_else(|error| unreachable!("a wasm config always serializes: {error}"));
        let config_descriptor = OciDescriptor {
            media_type: WASM_CONFIG_MEDIA_TYPE.to_owned(),
            digest: sha256_digest(&config),
            size: config.len() as i64,
            ..OciDescriptor::default()
        };
        let layer_descriptor = OciDescriptor {
            media_type: WASM_LAYER_MEDIA_TYPE.to_owned(),
            digest: layer_digest,
            size: component.len() as i64,
            annotations: Some(BTreeMap::from([(
                TITLE_ANNOTATION.to_owned(),
                format!("{name}.wasm"),
            )])),
            ..OciDescriptor::default()
        };
        let annotations = BTreeMap::from([
            (NAME_ANNOTATION.to_owned(), name.to_owned()),
            (WORLD_ANNOTATION.to_owned(), metadata.world.to_string()),
            (ABI_ANNOTATION.to_owned(), metadata.abi.clone()),
            (SDK_ANNOTATION.to_owned(), metadata.sdk.clone()),
            (
                CAPABILITIES_ANNOTATION.to_owned(),
                metadata.capabilities.join(","),
            ),
        ]);
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            config: config_descriptor.clone(),
            layers: vec![layer_descriptor.clone()],
            subject: None,
            artifact_type: None,
            annotations: Some(annotations),
        };
        let manifest = serde_json::to_vec(&manifest)
            .unwrap_or_else(|error| unreachable!("a manifest always serializes: {error}"));
        Self {
            manifest_digest: sha256_digest(&manifest),
            config,
            config_descriptor,
            layer_descriptor,
            manifest,
        }
    }
}

/// Why a manifest is not a plugin artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// Not an image manifest.
    #[error("it is not an OCI image manifest: {0}")]
    NotAManifest(String),
    /// No layer, or several, of a wasm media type.
    #[error(
        "it has {found} layers of a wasm media type ({WASM_LAYER_MEDIA_TYPE} or an older one), not one; its layers: {layers}"
    )]
    ComponentLayer {
        /// How many wasm layers it has.
        found: usize,
        /// Every layer's media type.
        layers: String,
    },
}

/// The parts of a pulled plugin manifest ferrometal uses.
#[derive(Debug, Clone)]
pub struct PluginManifest {
    /// The component layer.
    pub layer: OciDescriptor,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl PluginManifest {
    /// Parses a manifest and finds its single component layer.
    pub fn parse(manifest: &[u8]) -> Result<Self, ArtifactError> {
        let manifest: OciImageManifest = serde_json::from_slice(manifest)
            .map_err(|error| ArtifactError::NotAManifest(error.to_string()))?;
        let wasm: Vec<&OciDescriptor> = manifest
            .layers
            .iter()
            .filter(|layer| {
                layer.media_type == WASM_LAYER_MEDIA_TYPE
                    || LEGACY_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str())
            })
            .collect();
        let [layer] = wasm.as_slice() else {
            return Err(ArtifactError::ComponentLayer {
                found: wasm.len(),
                layers: manifest
                    .layers
                    .iter()
                    .map(|layer| layer.media_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        Ok(Self {
            layer: (*layer).clone(),
            annotations: manifest.annotations.unwrap_or_default(),
        })
    }

    /// The world the manifest's annotations name, if they name one.
    pub fn world(&self) -> Option<&str> {
        self.annotations.get(WORLD_ANNOTATION).map(String::as_str)
    }

    /// The plugin annotations ferrometal writes, without their prefix (for `inspect`).
    pub fn plugin_annotations(&self) -> BTreeMap<String, String> {
        self.annotations
            .iter()
            .filter_map(|(key, value)| {
                key.strip_prefix(ANNOTATION_PREFIX)
                    .map(|short| (short.to_owned(), value.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::World;

    fn metadata() -> PluginMetadata {
        PluginMetadata {
            world: World::BmcDriver,
            abi: String::from("0.2.0"),
            sdk: String::from("0.1.0"),
            capabilities: vec![String::from("credentials/reveal")],
        }
    }

    #[test]
    fn an_artifact_has_the_cncf_wasm_layout_and_its_metadata_as_annotations() {
        let artifact = PluginArtifact::new("redfish", b"\0asm component", &metadata(), &[], &[]);
        let manifest: serde_json::Value = serde_json::from_slice(&artifact.manifest).expect("json");
        assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(manifest["annotations"][WORLD_ANNOTATION], "bmc-driver");
        assert_eq!(
            manifest["annotations"][CAPABILITIES_ANNOTATION],
            "credentials/reveal"
        );
        let config: serde_json::Value = serde_json::from_slice(&artifact.config).expect("json");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["layerDigests"][0], sha256_digest(b"\0asm component"));
        assert_eq!(
            config["component"]["target"],
            "ferrometal:plugin/bmc-driver@0.2.0"
        );
        assert_eq!(artifact.manifest_digest, sha256_digest(&artifact.manifest));

        let parsed = PluginManifest::parse(&artifact.manifest).expect("plugin manifest");
        assert_eq!(parsed.layer.digest, artifact.layer_descriptor.digest);
        assert_eq!(parsed.world(), Some("bmc-driver"));
        assert_eq!(parsed.plugin_annotations()["name"], "redfish");
    }

    #[test]
    fn older_wasm_layer_types_are_accepted_and_other_images_refused() {
        let manifest = |media_types: &[&str]| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "config": {"mediaType": "application/vnd.wasm.config.v1+json", "digest": "sha256:00", "size": 2},
                "layers": media_types.iter().map(|media_type| serde_json::json!({
                    "mediaType": media_type, "digest": "sha256:11", "size": 10
                })).collect::<Vec<_>>(),
            }))
            .expect("json")
        };
        let kubewarden =
            PluginManifest::parse(&manifest(&["application/vnd.wasm.content.layer.v1+wasm"]))
                .expect("wasm-to-oci layer");
        assert_eq!(kubewarden.world(), None);
        let error =
            PluginManifest::parse(&manifest(&["application/vnd.oci.image.layer.v1.tar+gzip"]))
                .expect_err("a container image");
        assert!(error.to_string().contains("0 layers"), "{error}");
        let error =
            PluginManifest::parse(&manifest(&[WASM_LAYER_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE]))
                .expect_err("two components");
        assert!(error.to_string().contains("2 layers"), "{error}");
        assert!(matches!(
            PluginManifest::parse(b"{}"),
            Err(ArtifactError::NotAManifest(_))
        ));
    }
}
