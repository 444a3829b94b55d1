//! Registry I/O for plugin artifacts: push, manifests, blobs and cosign signatures. Every
//! byte that comes back is checked against the digest it was asked for by the caller
//! ([`super::fetch`]); this module only moves bytes and classifies failures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::TryStreamExt;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;

use super::artifact::{MANIFEST_MEDIA_TYPE, PluginArtifact, sha256_digest};
use super::signature::{
    CosignSignature, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signature_tag,
};

/// Docker's schema-2 manifest type, which cosign may write for signature images.
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of an OCI image index (the referrers tag schema's list).
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// What sigstore bundle media types start with (`…bundle.v0.3+json`).
const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// Largest manifest or signature payload read (they are a few KiB).
const MAX_SMALL_BLOB: u64 = 4 << 20;
/// Largest component read (the operator's plugins are a few MiB).
const MAX_COMPONENT: u64 = 256 << 20;

/// How to reach registries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryOptions {
    /// Registries (`host:port`) spoken to over plain HTTP (lab registries only).
    pub insecure: Vec<String>,
    /// A Docker `config.json` (or a Kubernetes `.dockerconfigjson`) with registry logins.
    pub auth_file: Option<PathBuf>,
}

/// A registry request that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached (or answered with a server error).
    #[error("registry {registry} cannot be reached: {reason}")]
    Unreachable {
        /// `host:port`.
        registry: String,
        /// Cause.
        reason: String,
    },
    /// The registry has no such manifest, tag or blob.
    #[error("{what} was not found: {reason}")]
    NotFound {
        /// What was asked for.
        what: String,
        /// Registry message.
        reason: String,
    },
    /// The registry refused the credentials.
    #[error("registry {registry} refused the login: {reason}")]
    Denied {
        /// `host:port`.
        registry: String,
        /// Cause.
        reason: String,
    },
    /// The login file cannot be used.
    #[error("cannot use the registry login file {path}: {reason}")]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The registry served other bytes than the digest asked for.
    #[error("the registry served {what} with the content of {actual}")]
    WrongContent {
        /// What was asked for.
        what: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A blob is larger than anything a plugin artifact holds.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// What was read.
        what: String,
        /// The limit.
        limit: u64,
    },
}

/// A registry client for plugin artifacts.
pub struct PluginRegistry {
    client: oci_client::Client,
    logins: BTreeMap<String, (String, String)>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("logins", &self.logins.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// A client with `options`.
    pub fn new(options: &RegistryOptions) -> Result<Self, RegistryError> {
        crate::install_crypto_provider();
        let logins = match &options.auth_file {
            Some(path) => read_logins(path)?,
            None => BTreeMap::new(),
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            platform_resolver: None,
            ..ClientConfig::default()
        });
        Ok(Self { client, logins })
    }

    fn auth(&self, reference: &Reference) -> RegistryAuth {
        match self.logins.get(reference.resolve_registry()) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Pushes `artifact` with `component` as `reference` (tag or digest).
    pub async fn push(
        &self,
        reference: &Reference,
        artifact: &PluginArtifact,
        component: &[u8],
    ) -> Result<(), RegistryError> {
        let auth = self.auth(reference);
        self.client
            .auth(reference, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|error| classify(reference, "the registry login", error))?;
        for (bytes, digest) in [
            (
                artifact.config.as_slice(),
                &artifact.config_descriptor.digest,
            ),
            (component, &artifact.layer_descriptor.digest),
        ] {
            self.client
                .push_blob(reference, bytes.to_vec(), digest)
                .await
                .map_err(|error| classify(reference, &format!("blob {digest}"), error))?;
        }
        self.client
            .push_manifest_raw(
                reference,
                artifact.manifest.clone(),
                http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(|error| classify(reference, "the manifest", error))?;
        Ok(())
    }

    /// The manifest `reference` names (its tag if it has one, else its digest), as bytes.
    pub async fn manifest(&self, reference: &Reference) -> Result<Vec<u8>, RegistryError> {
        self.manifest_of_type(
            reference,
            &[MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE],
        )
        .await
    }

    async fn manifest_of_type(
        &self,
        reference: &Reference,
        media_types: &[&str],
    ) -> Result<Vec<u8>, RegistryError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &self.auth(reference), media_types)
            .await
            .map_err(|error| {
                classify(reference, &format!("manifest {}", reference.whole()), error)
            })?;
        Ok(bytes.to_vec())
    }

    /// Blob `digest` of `reference`'s repository, at most `limit` bytes. Not checked here.
    async fn blob(
        &self,
        reference: &Reference,
        digest: &str,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {digest} of {}", reference.repository());
        self.client
            .auth(
                reference,
                &self.auth(reference),
                oci_client::RegistryOperation::Pull,
            )
            .await
            .map_err(|error| classify(reference, "the registry login", error))?;
        let stream = self
            .client
            .pull_blob_stream(reference, digest)
            .await
            .map_err(|error| classify(reference, &what, error))?;
        let mut stream = stream.stream;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.try_next().await.map_err(|error| {
            // The client checks what it streams against the digest asked for.
            match error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
            {
                Some(oci_client::errors::DigestError::VerificationError { actual, .. }) => {
                    RegistryError::WrongContent {
                        what: what.clone(),
                        actual: actual.clone(),
                    }
                }
                _ => RegistryError::Unreachable {
                    registry: reference.registry().to_owned(),
                    reason: format!("reading {what}: {error}"),
                },
            }
        })? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(RegistryError::TooLarge { what, limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// The component layer `digest`.
    pub async fn component(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        self.blob(reference, digest, MAX_COMPONENT).await
    }

    /// The cosign signatures of manifest `digest` in `reference`'s repository: those of the
    /// `.sig` tag and those of sigstore bundles (empty when there are none). A part whose
    /// bytes are not the ones its descriptor names, or that cannot be read as a signature, is
    /// left out with a warning.
    pub async fn signatures(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<Vec<CosignSignature>, RegistryError> {
        let mut signatures = self.simple_signatures(reference, digest).await?;
        signatures.extend(self.bundles(reference, digest).await?);
        Ok(signatures)
    }

    /// The signatures of sigstore bundles whose subject is `digest`, found through the
    /// referrers tag schema (`sha256-<hex>`, an index of referring artifacts), which cosign
    /// writes where a registry has no referrers API.
    async fn bundles(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<Vec<CosignSignature>, RegistryError> {
        let tag = tagged(reference, digest.replacen(':', "-", 1));
        let index = match self.manifest_of_type(&tag, &[INDEX_MEDIA_TYPE]).await {
            Ok(index) => index,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let Ok(index) = serde_json::from_slice::<OciImageIndex>(&index) else {
            tracing::warn!(tag = %tag.whole(), "referrers tag is not an index; ignored");
            return Ok(Vec::new());
        };
        let mut signatures = Vec::new();
        // Not filtered by the entries' `artifactType`: cosign 2.6 lists its bundles there as
        // `application/vnd.oci.empty.v1+json`; the manifests' layers say what they hold.
        for entry in index.manifests {
            let by_digest = Reference::with_digest(
                reference.registry().to_owned(),
                reference.repository().to_owned(),
                entry.digest.clone(),
            );
            let manifest = self.manifest(&by_digest).await?;
            if sha256_digest(&manifest) != entry.digest {
                tracing::warn!(manifest = %entry.digest, "referrer manifest does not match its digest; ignored");
                continue;
            }
            let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(&manifest) else {
                continue;
            };
            if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
                continue;
            }
            for layer in manifest.layers {
                if !layer.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
                    continue;
                }
                let bundle = self.blob(&by_digest, &layer.digest, MAX_SMALL_BLOB).await?;
                if sha256_digest(&bundle) != layer.digest {
                    tracing::warn!(layer = %layer.digest, "bundle does not match its digest; ignored");
                    continue;
                }
                match CosignSignature::from_bundle(&bundle) {
                    Ok(found) => signatures.extend(found),
                    Err(error) => tracing::warn!(%error, "unreadable bundle ignored"),
                }
            }
        }
        Ok(signatures)
    }

    /// The signatures of the `.sig` tag.
    async fn simple_signatures(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<Vec<CosignSignature>, RegistryError> {
        let tag = tagged(reference, signature_tag(digest));
        let manifest = match self.manifest(&tag).await {
            Ok(manifest) => manifest,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let manifest: OciImageManifest = match serde_json::from_slice(&manifest) {
            Ok(manifest) => manifest,
            Err(error) => {
                tracing::warn!(tag = %tag.whole(), %error, "signature image is not a manifest");
                return Ok(Vec::new());
            }
        };
        let mut signatures = Vec::new();
        for layer in manifest.layers {
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
                continue;
            }
            let Some(annotation) = layer
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(SIGNATURE_ANNOTATION))
            else {
                continue;
            };
            let payload = self.blob(&tag, &layer.digest, MAX_SMALL_BLOB).await?;
            if sha256_digest(&payload) != layer.digest {
                tracing::warn!(tag = %tag.whole(), layer = %layer.digest, "signature payload does not match its digest; ignored");
                continue;
            }
            match CosignSignature::new(payload, annotation) {
                Ok(signature) => signatures.push(signature),
                Err(error) => {
                    tracing::warn!(tag = %tag.whole(), %error, "unreadable signature ignored");
                }
            }
        }
        Ok(signatures)
    }
}

/// `tag` in `reference`'s repository.
pub(crate) fn tagged(reference: &Reference, tag: String) -> Reference {
    Reference::with_tag(
        reference.registry().to_owned(),
        reference.repository().to_owned(),
        tag,
    )
}

/// Reads registry logins from a Docker `config.json`: `auths.<registry>.auth` (base64
/// `user:password`) or `username` and `password`.
fn read_logins(path: &Path) -> Result<BTreeMap<String, (String, String)>, RegistryError> {
    let fail = |reason: String| RegistryError::AuthFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
    parse_logins(&text).map_err(fail)
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerLogin>,
}

#[derive(serde::Deserialize)]
struct DockerLogin {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The logins of a Docker `config.json` (messages never include a credential).
fn parse_logins(text: &str) -> Result<BTreeMap<String, (String, String)>, String> {
    let config: DockerConfig = serde_json::from_str(text)
        .map_err(|error| format!("not a Docker config.json (line {})", error.line()))?;
    let mut logins = BTreeMap::new();
    for (registry, login) in config.auths {
        let pair = match (login.auth, login.username, login.password) {
            (Some(auth), _, _) => {
                let decoded = BASE64
                    .decode(auth.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| format!("auths.{registry}.auth is not base64 user:password"))?;
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{registry}.auth is not user:password"))?;
                (user.to_owned(), password.to_owned())
            }
            (None, Some(user), Some(password)) => (user, password),
            _ => {
                return Err(format!(
                    "auths.{registry} has neither auth nor username and password"
                ));
            }
        };
        let host = registry
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        logins.insert(host, pair);
    }
    Ok(logins)
}

/// The messages of a registry's error envelope, joined.
pub(crate) fn envelope_messages(envelope: &oci_client::errors::OciEnvelope) -> String {
    envelope
        .errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

fn classify(reference: &Reference, what: &str, error: OciDistributionError) -> RegistryError {
    let registry = reference.registry().to_owned();
    match error {
        OciDistributionError::ImageManifestNotFoundError(reason) => RegistryError::NotFound {
            what: what.to_owned(),
            reason,
        },
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
            what: what.to_owned(),
            reason: String::from("404 Not Found"),
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::NotFound
                )
            }) =>
        {
            RegistryError::NotFound {
                what: what.to_owned(),
                reason: envelope_messages(&envelope),
            }
        }
        OciDistributionError::AuthenticationFailure(reason)
        | OciDistributionError::UnauthorizedError { url: reason } => {
            RegistryError::Denied { registry, reason }
        }
        other => RegistryError::Unreachable {
            registry,
            reason: crate::controllers::report::first_line(
                &crate::controllers::report::error_chain(&other),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_come_from_a_docker_config_in_either_form() {
        let auth = BASE64.encode("vendor:s3cret");
        let text = format!(
            r#"{{"auths":{{"https://registry.example:5000/":{{"auth":"{auth}"}},"other.example":{{"username":"u","password":"p"}}}}}}"#
        );
        let logins = parse_logins(&text).expect("logins");
        assert_eq!(
            logins["registry.example:5000"],
            ("vendor".to_owned(), "s3cret".to_owned())
        );
        assert_eq!(logins["other.example"], ("u".to_owned(), "p".to_owned()));
    }

    #[test]
    fn a_broken_login_file_says_where_without_showing_credentials() {
        let error =
            parse_logins(r#"{"auths":{"r":{"auth":"not base64 s3cret"}}}"#).expect_err("bad auth");
        assert!(error.contains("auths.r.auth"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let error = parse_logins("{ password: s3cret").expect_err("not json");
        assert!(!error.contains("s3cret"), "{error}");
        assert!(parse_logins(r#"{"auths":{"r":{}}}"#).is_err());
    }
}
