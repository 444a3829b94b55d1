//! OS images in OCI registries: which layers a machine boots, and where to fetch them.
//!
//! An IronCore boot image is an OCI image (or an index of them, one per architecture) whose
//! layers carry media types `application/vnd.ironcore.image.{kernel,initramfs,squashfs,uki}`
//! (Garden Linux's older `application/io.gardenlinux.{kernel,initrd,squashfs}` too). The pure
//! functions here pick the manifest and the layers; [`ImageResolver`] does the registry I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::Stream;
use futures::TryStreamExt;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;

/// Media type of a kernel layer.
pub const MEDIA_TYPE_KERNEL: &str = "application/vnd.ironcore.image.kernel";
/// Media type of an initramfs layer.
pub const MEDIA_TYPE_INITRAMFS: &str = "application/vnd.ironcore.image.initramfs";
/// Media type of a squashfs root filesystem layer.
pub const MEDIA_TYPE_SQUASHFS: &str = "application/vnd.ironcore.image.squashfs";
/// Media type of a unified kernel image (UEFI HTTP boot).
pub const MEDIA_TYPE_UKI: &str = "application/vnd.ironcore.image.uki";

const LEGACY_KERNEL: &str = "application/io.gardenlinux.kernel";
const LEGACY_INITRD: &str = "application/io.gardenlinux.initrd";
const LEGACY_SQUASHFS: &str = "application/io.gardenlinux.squashfs";

/// What a layer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Linux kernel.
    Kernel,
    /// Initial ramdisk.
    Initramfs,
    /// Root filesystem for a live boot.
    Squashfs,
    /// Unified kernel image, booted directly by UEFI HTTP boot.
    Uki,
}

impl LayerKind {
    /// The kind a layer media type stands for, if any.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            MEDIA_TYPE_KERNEL | LEGACY_KERNEL => Some(Self::Kernel),
            MEDIA_TYPE_INITRAMFS | LEGACY_INITRD => Some(Self::Initramfs),
            MEDIA_TYPE_SQUASHFS | LEGACY_SQUASHFS => Some(Self::Squashfs),
            MEDIA_TYPE_UKI => Some(Self::Uki),
            _ => None,
        }
    }

    /// The content type the boot server answers with (UEFI firmware wants `application/efi`).
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Uki => "application/efi",
            _ => "application/octet-stream",
        }
    }
}

/// One layer a machine fetches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BootLayer {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes, as the manifest says.
    pub size: i64,
    /// What it is.
    pub kind: LayerKind,
}

/// The bootable parts of one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BootLayers {
    /// Kernel for iPXE boot.
    pub kernel: Option<BootLayer>,
    /// Initramfs for iPXE boot.
    pub initramfs: Option<BootLayer>,
    /// Optional live root filesystem.
    pub squashfs: Option<BootLayer>,
    /// Unified kernel image for UEFI HTTP boot.
    pub uki: Option<BootLayer>,
}

impl BootLayers {
    /// Whether an iPXE client can boot it (kernel and initramfs present).
    pub fn ipxe_bootable(&self) -> bool {
        self.kernel.is_some() && self.initramfs.is_some()
    }

    /// Every layer present.
    pub fn all(&self) -> impl Iterator<Item = &BootLayer> {
        [&self.kernel, &self.initramfs, &self.squashfs, &self.uki]
            .into_iter()
            .flatten()
    }
}

/// Picks the boot layers of an image manifest by media type (the first of each kind wins).
pub fn select_layers(layers: &[OciDescriptor]) -> BootLayers {
    let mut selected = BootLayers::default();
    for layer in layers {
        let Some(kind) = LayerKind::from_media_type(&layer.media_type) else {
            continue;
        };
        let slot = match kind {
            LayerKind::Kernel => &mut selected.kernel,
            LayerKind::Initramfs => &mut selected.initramfs,
            LayerKind::Squashfs => &mut selected.squashfs,
            LayerKind::Uki => &mut selected.uki,
        };
        if slot.is_none() {
            *slot = Some(BootLayer {
                digest: layer.digest.clone(),
                size: layer.size,
                kind,
            });
        }
    }
    selected
}

/// Picks the manifest for `architecture` (`amd64`, `arm64`, ...) from an image index: the
/// entry whose platform matches, else Garden Linux's `architecture` annotation.
pub fn select_manifest<'a>(
    entries: &'a [ImageIndexEntry],
    architecture: &str,
) -> Option<&'a ImageIndexEntry> {
    entries
        .iter()
        .find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|platform| platform.architecture.to_string() == architecture)
        })
        .or_else(|| {
            entries.iter().find(|entry| {
                entry
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get("architecture"))
                    .is_some_and(|arch| arch == architecture)
            })
        })
}

/// Why an image cannot be booted. Messages are what the SBC's condition says.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The configuration names no image.
    #[error("spec.image is not set: nothing to boot")]
    NotSet,
    /// `spec.image` is not an OCI reference.
    #[error("image {image:?} is not a valid OCI reference: {reason}")]
    BadReference {
        /// The reference as written.
        image: String,
        /// Parser message.
        reason: String,
    },
    /// The registry is not in the allow-list.
    #[error(
        "registry {registry} is not allowed (allowed: {allowed}); start ferrometal with --boot-allowed-registries to add it"
    )]
    RegistryNotAllowed {
        /// The image's registry.
        registry: String,
        /// The allow-list, comma-separated.
        allowed: String,
    },
    /// The registry could not be reached or answered with an error.
    #[error("registry {registry} cannot be reached: {reason}")]
    RegistryUnreachable {
        /// The image's registry.
        registry: String,
        /// Cause.
        reason: String,
    },
    /// The registry has no such image, tag or digest.
    #[error("image {image} was not found in its registry: {reason}")]
    NotFound {
        /// The reference.
        image: String,
        /// Registry message.
        reason: String,
    },
    /// The image index has no manifest for the architecture.
    #[error("image {image} has no manifest for architecture {architecture}")]
    NoManifestForArchitecture {
        /// The reference.
        image: String,
        /// The wanted architecture.
        architecture: String,
    },
    /// Required layers are missing.
    #[error("image {image} has no {missing} layer (media types {expected})")]
    MissingLayer {
        /// The reference.
        image: String,
        /// Which parts are missing, e.g. `kernel and initramfs`.
        missing: String,
        /// The media types looked for.
        expected: String,
    },
}

/// An image resolved to the layers a machine boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference as resolved (registry, repository, tag and/or digest).
    pub reference: Reference,
    /// Digest of the image manifest that was picked.
    pub manifest_digest: String,
    /// The boot layers.
    pub layers: BootLayers,
}

/// Registry access: allow-list, plain-HTTP exceptions, timeouts.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registries (host or host:port) images may come from; empty allows every registry.
    pub allowed: BTreeSet<String>,
    /// Registries spoken to over plain HTTP (lab registries on loopback).
    pub insecure: Vec<String>,
    /// Architecture picked from image indexes.
    pub architecture: String,
    /// Connect and read timeout for registry requests.
    pub timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            allowed: BTreeSet::from([String::from("ghcr.io")]),
            insecure: Vec::new(),
            architecture: String::from("amd64"),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Resolves image references and streams layer blobs.
pub struct ImageResolver {
    client: oci_client::Client,
    config: RegistryConfig,
}

impl std::fmt::Debug for ImageResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageResolver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ImageResolver {
    /// A resolver with `config`.
    pub fn new(config: RegistryConfig) -> Self {
        crate::install_crypto_provider();
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
            connect_timeout: Some(config.timeout),
            read_timeout: Some(config.timeout),
            // Index entries are picked by `select_manifest`, never by the client.
            platform_resolver: None,
            ..ClientConfig::default()
        });
        Self { client, config }
    }

    /// Parses `image` and checks it against the allow-list (no network).
    pub fn parse(&self, image: &str) -> Result<Reference, ImageError> {
        let reference =
            crate::oci_reference::parse(image).map_err(|error| ImageError::BadReference {
                image: image.to_owned(),
                reason: error.to_string(),
            })?;
        let registry = reference.registry();
        if !self.config.allowed.is_empty() && !self.config.allowed.contains(registry) {
            return Err(ImageError::RegistryNotAllowed {
                registry: registry.to_owned(),
                allowed: self
                    .config
                    .allowed
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        Ok(reference)
    }

    /// Resolves `image` to its boot layers: the manifest (through an index by architecture),
    /// then the layers by media type. An image needs a kernel and an initramfs, or a UKI.
    pub async fn resolve(&self, image: &str) -> Result<ResolvedImage, ImageError> {
        let reference = self.parse(image)?;
        let (manifest, digest) = self.pull_manifest(&reference).await?;
        let (manifest, digest) = match manifest {
            OciManifest::Image(manifest) => (manifest, digest),
            OciManifest::ImageIndex(index) => {
                let entry = select_manifest(&index.manifests, &self.config.architecture)
                    .ok_or_else(|| ImageError::NoManifestForArchitecture {
                        image: reference.whole(),
                        architecture: self.config.architecture.clone(),
                    })?;
                let by_digest = reference.clone_with_digest(entry.digest.clone());
                match self.pull_manifest(&by_digest).await? {
                    (OciManifest::Image(manifest), digest) => (manifest, digest),
                    (OciManifest::ImageIndex(_), _) => {
                        return Err(ImageError::NotFound {
                            image: reference.whole(),
                            reason: String::from("an index entry points at another index"),
                        });
                    }
                }
            }
        };
        let layers = checked_layers(&reference, &manifest)?;
        Ok(ResolvedImage {
            reference,
            manifest_digest: digest,
            layers,
        })
    }

    async fn pull_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(OciManifest, String), ImageError> {
        self.client
            .pull_manifest(reference, &RegistryAuth::Anonymous)
            .await
            .map_err(|error| classify(reference, error))
    }

    /// Streams blob `digest` of `reference`'s repository: its length (if the registry said)
    /// and the bytes.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = std::io::Result<bytes::Bytes>> + use<>,
        ),
        ImageError,
    > {
        let stream = self
            .client
            .pull_blob_stream(reference, digest)
            .await
            .map_err(|error| classify(reference, error))?;
        Ok((
            stream.content_length,
            stream.stream.map_err(std::io::Error::other),
        ))
    }
}

fn checked_layers(
    reference: &Reference,
    manifest: &OciImageManifest,
) -> Result<BootLayers, ImageError> {
    let layers = select_layers(&manifest.layers);
    if layers.ipxe_bootable() || layers.uki.is_some() {
        return Ok(layers);
    }
    let missing = match (&layers.kernel, &layers.initramfs) {
        (None, None) => "kernel and initramfs",
        (None, Some(_)) => "kernel",
        _ => "initramfs",
    };
    Err(ImageError::MissingLayer {
        image: reference.whole(),
        missing: missing.to_owned(),
        expected: format!("{MEDIA_TYPE_KERNEL}, {MEDIA_TYPE_INITRAMFS} or {MEDIA_TYPE_UKI}"),
    })
}

/// Sorts a registry failure into "not there" and "cannot ask".
fn classify(reference: &Reference, error: OciDistributionError) -> ImageError {
    match error {
        OciDistributionError::ImageManifestNotFoundError(reason) => ImageError::NotFound {
            image: reference.whole(),
            reason,
        },
        OciDistributionError::RegistryError { envelope, .. } => ImageError::NotFound {
            image: reference.whole(),
            reason: crate::plugins::oci::registry::envelope_messages(&envelope),
        },
        OciDistributionError::ServerError { code: 404, .. } => ImageError::NotFound {
            image: reference.whole(),
            reason: String::from("404 Not Found"),
        },
        other => ImageError::RegistryUnreachable {
            registry: reference.registry().to_owned(),
            reason: crate::controllers::report::first_line(
                &crate::controllers::report::error_chain(&other),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn layer(media_type: &str, digest: &str) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_owned(),
            size: 3,
            ..OciDescriptor::default()
        }
    }

    #[test]
    fn layers_are_picked_by_media_type_ignoring_others() {
        let selected = select_layers(&[
            layer("application/vnd.oci.image.layer.v1.tar", "sha256:00"),
            layer(MEDIA_TYPE_INITRAMFS, "sha256:02"),
            layer(MEDIA_TYPE_KERNEL, "sha256:01"),
            layer(MEDIA_TYPE_KERNEL, "sha256:99"),
            layer(MEDIA_TYPE_UKI, "sha256:04"),
        ]);
        assert_eq!(
            selected.kernel.as_ref().map(|l| l.digest.as_str()),
            Some("sha256:01")
        );
        assert_eq!(
            selected.initramfs.as_ref().map(|l| l.digest.as_str()),
            Some("sha256:02")
        );
        assert_eq!(selected.squashfs, None);
        assert_eq!(selected.uki.as_ref().map(|l| l.kind), Some(LayerKind::Uki));
        assert!(selected.ipxe_bootable());
        assert_eq!(selected.all().count(), 3);
    }

    #[test]
    fn garden_linux_media_types_still_count() {
        let selected = select_layers(&[
            layer(LEGACY_KERNEL, "sha256:01"),
            layer(LEGACY_INITRD, "sha256:02"),
            layer(LEGACY_SQUASHFS, "sha256:03"),
        ]);
        assert!(selected.ipxe_bootable());
        assert!(selected.squashfs.is_some());
    }

    fn entry(digest: &str, platform: Option<&str>, annotation: Option<&str>) -> ImageIndexEntry {
        let json = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": platform.map(|arch| serde_json::json!({"architecture": arch, "os": "linux"})),
            "annotations": annotation.map(|arch| BTreeMap::from([("architecture", arch)])),
        });
        serde_json::from_value(json).expect("index entry")
    }

    #[test]
    fn index_entries_are_picked_by_platform_then_by_annotation() {
        let entries = [
            entry("sha256:arm", Some("arm64"), None),
            entry("sha256:amd", Some("amd64"), None),
        ];
        assert_eq!(
            select_manifest(&entries, "amd64").map(|e| e.digest.as_str()),
            Some("sha256:amd")
        );
        let annotated = [
            entry("sha256:arm", None, Some("arm64")),
            entry("sha256:amd", None, Some("amd64")),
        ];
        assert_eq!(
            select_manifest(&annotated, "arm64").map(|e| e.digest.as_str()),
            Some("sha256:arm")
        );
        assert!(select_manifest(&entries, "riscv64").is_none());
    }

    fn resolver(allowed: &[&str]) -> ImageResolver {
        ImageResolver::new(RegistryConfig {
            allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
            ..RegistryConfig::default()
        })
    }

    #[test]
    fn references_are_checked_against_the_allow_list() {
        let limited = resolver(&["ghcr.io", "127.0.0.1:5000"]);
        assert!(
            limited
                .parse("ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0")
                .is_ok()
        );
        assert!(limited.parse("127.0.0.1:5000/discovery:latest").is_ok());
        let refused = limited
            .parse("quay.io/evil/image:1")
            .expect_err("not allowed");
        assert_eq!(
            refused.to_string(),
            "registry quay.io is not allowed (allowed: 127.0.0.1:5000,ghcr.io); start ferrometal with --boot-allowed-registries to add it"
        );
        assert!(matches!(
            limited.parse("ghcr.io/UPPER/case:tag"),
            Err(ImageError::BadReference { .. })
        ));
        assert!(
            resolver(&[]).parse("quay.io/any/image:1").is_ok(),
            "empty allows all"
        );
    }
}
