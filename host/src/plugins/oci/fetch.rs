//! The operator's way to a plugin in a registry: pull, verify, keep — and only then hand the
//! bytes on to be compiled.
//!
//! For `oci://registry/repo[:tag]@sha256:<manifest>`:
//! 1. the manifest (by tag when there is one, so a moved tag is noticed) must hash to the
//!    pinned digest and be a plugin artifact whose annotated world is the configured one;
//! 2. the cosign signatures of that digest must satisfy the verification policy;
//! 3. the component layer must hash to the digest the manifest names, and its embedded
//!    metadata must name the configured world.
//!
//! What passes is kept in a digest-named directory of the artifact store (manifest,
//! signatures, component). When the registry cannot be reached, the stored copy is checked
//! again — all three steps, against today's policy — and used. Nothing unverified is ever
//! returned, so nothing unverified is ever compiled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_client::Reference;

use super::artifact::{ArtifactError, PluginManifest, sha256_digest};
use super::registry::{PluginRegistry, RegistryError, tagged};
use super::signature::{CosignSignature, signature_tag};
use super::trust::{Untrusted, VerificationPolicy};
use crate::plugins::{PluginMetadata, World};

/// The URL scheme of plugin references in the plugin configuration.
pub const SCHEME: &str = "oci://";

/// A plugin reference: registry, repository, optional tag, and (for the operator) a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReference {
    /// As parsed.
    pub reference: Reference,
    /// As written (for messages).
    pub text: String,
}

impl PluginReference {
    /// Parses `oci://host/repo[:tag][@sha256:…]` (the scheme may be left out).
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let bare = text.trim().strip_prefix(SCHEME).unwrap_or(text.trim());
        let reference =
            crate::oci_reference::parse(bare).map_err(|error| FetchError::BadReference {
                reference: text.to_owned(),
                reason: error.to_string(),
            })?;
        if !bare.starts_with(reference.registry()) {
            return Err(FetchError::BadReference {
                reference: text.to_owned(),
                reason: String::from("name the registry (host or host:port) before the repository"),
            });
        }
        Ok(Self {
            reference,
            text: text.to_owned(),
        })
    }

    /// What the manifest is asked for by: the tag when there is one (so a tag that was moved
    /// away from the pinned digest is noticed), else the digest.
    pub fn by_tag(&self) -> Reference {
        match self.reference.tag() {
            Some(tag) => tagged(&self.reference, tag.to_owned()),
            None => self.reference.clone(),
        }
    }

    /// This reference pinned to manifest `digest` (its tag, if any, kept), e.g. a tag
    /// resolved by the command line before it checks what the operator would.
    pub fn pinned_to(&self, digest: &str) -> Self {
        let reference = match self.reference.tag() {
            Some(tag) => Reference::with_tag_and_digest(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                tag.to_owned(),
                digest.to_owned(),
            ),
            None => self.reference.clone_with_digest(digest.to_owned()),
        };
        Self {
            text: format!("{SCHEME}{}", reference.whole()),
            reference,
        }
    }

    /// The pinned manifest digest, which the operator requires.
    pub fn pinned(&self) -> Result<&str, FetchError> {
        self.reference
            .digest()
            .ok_or_else(|| FetchError::NotPinned {
                reference: self.text.clone(),
            })
    }
}

/// Why a plugin from a registry was refused (nothing of it was compiled).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an OCI reference.
    #[error(
        "{reference:?} is not a plugin reference (oci://registry/repository[:tag]@sha256:…): {reason}"
    )]
    BadReference {
        /// As written.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The operator loads pinned references only.
    #[error("{reference} has no digest: pin it (`@sha256:…`, `ferrometal plugin push` prints it)")]
    NotPinned {
        /// As written.
        reference: String,
    },
    /// Registry I/O failed, and no verified copy is stored.
    #[error("{reference}: {source}{}", if *.cached { "" } else { " (and no verified copy is stored)" })]
    Registry {
        /// As written.
        reference: String,
        /// What failed.
        source: RegistryError,
        /// Whether a stored copy exists (it was refused, see the log) or not.
        cached: bool,
    },
    /// The manifest is not the pinned one.
    #[error(
        "{reference}: the registry's manifest is {actual}, but the configuration pins {expected} (was the tag moved or the manifest changed?)"
    )]
    DigestMismatch {
        /// As written.
        reference: String,
        /// The pin.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// Not a plugin artifact.
    #[error("{reference} is not a plugin artifact: {source}")]
    NotAPlugin {
        /// As written.
        reference: String,
        /// Why.
        source: ArtifactError,
    },
    /// The artifact's world is not the configured one.
    #[error(
        "{reference} is a {found} plugin ({place}), but the configuration loads it as a {expected}"
    )]
    WrongWorld {
        /// As written.
        reference: String,
        /// Configured.
        expected: World,
        /// What the artifact says.
        found: String,
        /// Where it says so.
        place: &'static str,
    },
    /// The signatures do not satisfy the policy.
    #[error("{reference} is not trusted: {source}")]
    Untrusted {
        /// As written.
        reference: String,
        /// Why.
        source: Untrusted,
    },
    /// The component is not the layer the manifest names.
    #[error(
        "{reference}: the component layer hashes to {actual}, but the signed manifest names {expected}: the layer was tampered with"
    )]
    TamperedLayer {
        /// As written.
        reference: String,
        /// From the manifest.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The component's metadata section is unreadable.
    #[error("{reference}: the component's metadata cannot be read: {reason}")]
    Metadata {
        /// As written.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The artifact store cannot be written or read.
    #[error("artifact store {path}: {source}")]
    Store {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl FetchError {
    /// A short label for the refusal metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::BadReference { .. } | Self::NotPinned { .. } => "bad_reference",
            Self::Registry { .. } => "registry",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::NotAPlugin { .. } => "not_a_plugin",
            Self::WrongWorld { .. } => "wrong_world",
            Self::Untrusted {
                source: Untrusted::Unsigned { .. },
                ..
            } => "unsigned",
            Self::Untrusted { .. } => "untrusted_signer",
            Self::TamperedLayer { .. } => "tampered_layer",
            Self::Metadata { .. } => "invalid_metadata",
            Self::Store { .. } => "store",
        }
    }
}

/// A verified plugin component.
#[derive(Debug, Clone)]
pub struct VerifiedPlugin {
    /// The component's bytes, as verified.
    pub component: Vec<u8>,
    /// Where its verified copy is stored.
    pub path: PathBuf,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The signers that count.
    pub signers: Vec<String>,
    /// Whether it came from the store because the registry could not be reached.
    pub from_store: bool,
}

/// Verified artifacts on disk, one directory per manifest digest.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
}

/// An artifact as the store keeps it.
struct StoredArtifact {
    manifest: Vec<u8>,
    signatures: Vec<CosignSignature>,
    component: Vec<u8>,
    /// The component file.
    path: PathBuf,
}

const MANIFEST_FILE: &str = "manifest.json";
const SIGNATURES_FILE: &str = "signatures.json";
const COMPONENT_FILE: &str = "component.wasm";
/// The store's index of components by their own digest.
const LAYERS_DIR: &str = "layers";

impl ArtifactStore {
    /// A store in `dir` (created when first written).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(digest.replacen(':', "-", 1))
    }

    fn store_error(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
        move |source| FetchError::Store {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Keeps a verified artifact (written to a fresh directory, then renamed into place).
    fn save(
        &self,
        digest: &str,
        manifest: &[u8],
        signatures: &[CosignSignature],
        component: &[u8],
    ) -> Result<PathBuf, FetchError> {
        let entry = self.entry(digest);
        std::fs::create_dir_all(&self.dir).map_err(Self::store_error(&self.dir))?;
        let staging = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempdir_in(&self.dir)
            .map_err(Self::store_error(&self.dir))?;

        let files: [(&str, Vec<u8>); 3] = [
            (MANIFEST_FILE, manifest.to_vec()),
            (
                SIGNATURES_FILE,
                serde_json::to_vec(signatures).unwrap_or_default(),
            ),
            (COMPONENT_FILE, component.to_vec()),
        ];
        for (name, bytes) in files {
            let path = staging.path().join(name);
            std::fs::write(&path, bytes).map_err(Self::store_error(&path))?;
        }
        if entry.exists() {
            std::fs::remove_dir_all(&entry).map_err(Self::store_error(&entry))?;
        }
        let staged = staging.keep();
        std::fs::rename(&staged, &entry).map_err(Self::store_error(&entry))?;
        // Indexed by its own digest too, so another artifact with the same component (a
        // re-tag, a new signature) does not download it again.
        let layers = self.dir.join(LAYERS_DIR);
        std::fs::create_dir_all(&layers).map_err(Self::store_error(&layers))?;
        let by_digest = layers.join(sha256_digest(component).replacen(':', "-", 1));
        let _ = std::fs::remove_file(&by_digest);
        std::fs::hard_link(entry.join(COMPONENT_FILE), &by_digest)
            .map_err(Self::store_error(&by_digest))?;
        Ok(entry.join(COMPONENT_FILE))
    }

    /// The stored copy of `digest`, unverified.
    fn load(&self, digest: &str) -> Option<StoredArtifact> {
        let entry = self.entry(digest);
        let manifest = std::fs::read(entry.join(MANIFEST_FILE)).ok()?;
        let signatures: Vec<CosignSignature> =
            serde_json::from_slice(&std::fs::read(entry.join(SIGNATURES_FILE)).ok()?).ok()?;
        let path = entry.join(COMPONENT_FILE);
        let component = std::fs::read(&path).ok()?;
        Some(StoredArtifact {
            manifest,
            signatures,
            component,
            path,
        })
    }

    /// The stored component whose sha256 is `layer_digest`, if any artifact holds it (its
    /// digest is checked again by [`check_component`] before it is used).
    fn component(&self, layer_digest: &str) -> Option<Vec<u8>> {
        let path = self
            .dir
            .join(LAYERS_DIR)
            .join(layer_digest.replacen(':', "-", 1));
        std::fs::read(path).ok()
    }
}

/// Checks manifest bytes against the pin and the configured world (step 1).
pub fn check_manifest(
    reference: &PluginReference,
    pinned: &str,
    world: World,
    manifest: &[u8],
) -> Result<PluginManifest, FetchError> {
    let actual = sha256_digest(manifest);
    if !actual.eq_ignore_ascii_case(pinned) {
        return Err(FetchError::DigestMismatch {
            reference: reference.text.clone(),
            expected: pinned.to_owned(),
            actual,
        });
    }
    let parsed = PluginManifest::parse(manifest).map_err(|source| FetchError::NotAPlugin {
        reference: reference.text.clone(),
        source,
    })?;
    if let Some(found) = parsed.world()
        && found != world.as_str()
    {
        return Err(FetchError::WrongWorld {
            reference: reference.text.clone(),
            expected: world,
            found: found.to_owned(),
            place: "its manifest annotation",
        });
    }
    Ok(parsed)
}

/// Checks the signatures against the policy (step 2); returns the signers that count.
pub fn check_signatures(
    reference: &PluginReference,
    pinned: &str,
    policy: &VerificationPolicy,
    signatures: &[CosignSignature],
) -> Result<Vec<String>, FetchError> {
    let keys = policy.keys();
    let mut valid = BTreeSet::new();
    for signature in signatures {
        match signature.signers(pinned, &keys) {
            Ok(signers) => valid.extend(signers.into_iter().map(|k| k.fingerprint.clone())),
            Err(error) => tracing::warn!(reference = %reference.text, %error, "signature ignored"),
        }
    }
    policy
        .decide(&signature_tag(pinned), signatures.len(), &valid)
        .map_err(|source| FetchError::Untrusted {
            reference: reference.text.clone(),
            source,
        })
}

/// Checks the component against the manifest's layer and the configured world (step 3).
pub fn check_component(
    reference: &PluginReference,
    manifest: &PluginManifest,
    world: World,
    component: &[u8],
) -> Result<(), FetchError> {
    let actual = sha256_digest(component);
    if actual != manifest.layer.digest {
        return Err(FetchError::TamperedLayer {
            reference: reference.text.clone(),
            expected: manifest.layer.digest.clone(),
            actual,
        });
    }
    let metadata =
        PluginMetadata::from_component(component).map_err(|problem| FetchError::Metadata {
            reference: reference.text.clone(),
            reason: problem.to_string(),
        })?;
    if metadata.world != world {
        return Err(FetchError::WrongWorld {
            reference: reference.text.clone(),
            expected: world,
            found: metadata.world.to_string(),
            place: "its embedded metadata",
        });
    }
    Ok(())
}

/// Pulls and verifies plugins, keeping verified copies in the store.
#[derive(Debug)]
pub struct PluginFetcher {
    registry: PluginRegistry,
    store: ArtifactStore,
}

impl PluginFetcher {
    /// A fetcher over `registry` keeping verified artifacts in `store`.
    pub fn new(registry: PluginRegistry, store: ArtifactStore) -> Self {
        Self { registry, store }
    }

    /// The verified component `reference` pins, from the registry or — when the registry
    /// cannot be reached — from the store, checked again.
    pub async fn fetch(
        &self,
        reference: &PluginReference,
        world: World,
        policy: &VerificationPolicy,
    ) -> Result<VerifiedPlugin, FetchError> {
        let pinned = reference.pinned()?.to_owned();
        match self.pull(reference, &pinned, world, policy).await {
            Err(FetchError::Registry {
                source: source @ RegistryError::Unreachable { .. },
                reference: text,
                ..
            }) => {
                let Some(StoredArtifact {
                    manifest,
                    signatures,
                    component,
                    path,
                }) = self.store.load(&pinned)
                else {
                    return Err(FetchError::Registry {
                        reference: text,
                        source,
                        cached: false,
                    });
                };
                tracing::warn!(reference = %reference.text, error = %source, "registry unreachable; checking the stored copy");
                let parsed = check_manifest(reference, &pinned, world, &manifest)?;
                let signers = check_signatures(reference, &pinned, policy, &signatures)?;
                check_component(reference, &parsed, world, &component)?;
                Ok(VerifiedPlugin {
                    component,
                    path,
                    manifest_digest: pinned,
                    signers,
                    from_store: true,
                })
            }
            other => other,
        }
    }

    async fn pull(
        &self,
        reference: &PluginReference,
        pinned: &str,
        world: World,
        policy: &VerificationPolicy,
    ) -> Result<VerifiedPlugin, FetchError> {
        let registry_error = |source| FetchError::Registry {
            reference: reference.text.clone(),
            source,
            cached: false,
        };
        let manifest = self
            .registry
            .manifest(&reference.by_tag())
            .await
            .map_err(registry_error)?;
        let parsed = check_manifest(reference, pinned, world, &manifest)?;
        let signatures = self
            .registry
            .signatures(&reference.reference, pinned)
            .await
            .map_err(registry_error)?;
        let signers = check_signatures(reference, pinned, policy, &signatures)?;
        let component = match self.store.component(&parsed.layer.digest) {
            Some(component) => component,
            None => match self
                .registry
                .component(&reference.reference, &parsed.layer.digest)
                .await
            {
                Ok(component) => component,
                Err(RegistryError::WrongContent { actual, .. }) => {
                    return Err(FetchError::TamperedLayer {
                        reference: reference.text.clone(),
                        expected: parsed.layer.digest.clone(),
                        actual,
                    });
                }
                Err(error) => return Err(registry_error(error)),
            },
        };
        check_component(reference, &parsed, world, &component)?;
        let path = self
            .store
            .save(pinned, &manifest, &signatures, &component)?;
        Ok(VerifiedPlugin {
            component,
            path,
            manifest_digest: pinned.to_owned(),
            signers,
            from_store: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_the_scheme_or_not_and_the_operator_needs_a_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = PluginReference::parse(&format!(
            "oci://127.0.0.1:5000/plugins/redfish:1.0@{digest}"
        ))
        .expect("reference");
        assert_eq!(pinned.reference.registry(), "127.0.0.1:5000");
        assert_eq!(pinned.reference.tag(), Some("1.0"));
        assert_eq!(pinned.pinned().expect("pinned"), digest);
        let tag_only = PluginReference::parse("127.0.0.1:5000/plugins/redfish:1.0").expect("ref");
        let error = tag_only.pinned().expect_err("no digest");
        assert!(
            error.to_string().contains("has no digest: pin it"),
            "{error}"
        );
        let resolved = tag_only.pinned_to(&digest);
        assert_eq!(resolved.pinned().expect("pinned"), digest);
        assert_eq!(resolved.reference.tag(), Some("1.0"));
        assert_eq!(
            resolved.text,
            format!("oci://127.0.0.1:5000/plugins/redfish:1.0@{digest}")
        );
        let error = PluginReference::parse("oci://redfish").expect_err("no registry");
        assert!(error.to_string().contains("name the registry"), "{error}");
    }

    #[test]
    fn a_manifest_must_hash_to_the_pin_and_name_the_configured_world() {
        let artifact = super::super::artifact::PluginArtifact::new(
            "redfish",
            b"component",
            &PluginMetadata {
                world: World::BmcDriver,
                abi: "0.2.0".into(),
                sdk: "0.1.0".into(),
                capabilities: Vec::new(),
            },
            &[],
            &[],
        );
        let reference =
            PluginReference::parse(&format!("oci://r:5000/p@{}", artifact.manifest_digest))
                .expect("reference");
        let pinned = reference.pinned().expect("pinned").to_owned();
        let parsed = check_manifest(&reference, &pinned, World::BmcDriver, &artifact.manifest)
            .expect("the pinned manifest");
        let error = check_manifest(
            &reference,
            &pinned,
            World::CredentialLookup,
            &artifact.manifest,
        )
        .expect_err("wrong world");
        assert_eq!(error.metric_label(), "wrong_world");
        assert!(
            error
                .to_string()
                .contains("is a bmc-driver plugin (its manifest annotation)"),
            "{error}"
        );
        let mut moved = artifact.manifest.clone();
        moved.push(b'\n');
        let error = check_manifest(&reference, &pinned, World::BmcDriver, &moved)
            .expect_err("another manifest");
        assert_eq!(error.metric_label(), "digest_mismatch");
        let error = check_component(&reference, &parsed, World::BmcDriver, b"componenT")
            .expect_err("tampered");
        assert_eq!(error.metric_label(), "tampered_layer");
    }

    #[test]
    fn the_store_keeps_what_was_saved_and_finds_components_by_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::new(&dir.path().join("artifacts"));
        let signature = CosignSignature {
            payload: b"payload".to_vec(),
            signature: vec![1, 2, 3],
            dsse_payload_type: Some(String::from("application/vnd.in-toto+json")),
        };
        let path = store
            .save(
                "sha256:ab",
                b"manifest",
                std::slice::from_ref(&signature),
                b"component",
            )
            .expect("saved");
        assert!(path.ends_with("sha256-ab/component.wasm"));
        let stored = store.load("sha256:ab").expect("stored");
        assert_eq!(stored.manifest, b"manifest");
        assert_eq!(stored.signatures, vec![signature]);
        assert_eq!(stored.component, b"component");
        assert_eq!(
            store.component(&sha256_digest(b"component")),
            Some(b"component".to_vec())
        );
        assert!(store.load("sha256:cd").is_none());
        // Saved again (a re-pull): replaced, still one entry.
        store
            .save("sha256:ab", b"manifest", &[], b"component")
            .expect("saved again");
        assert!(
            store
                .load("sha256:ab")
                .expect("stored")
                .signatures
                .is_empty()
        );
    }
}
