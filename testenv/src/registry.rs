//! A real OCI registry (CNCF Distribution, Debian's `docker-registry`) on a free loopback
//! port (or a free port of another of the host's addresses, such as a test node's IP, so
//! Pods reach it), with helpers that push boot images the way an image pipeline would.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{ImageIndexEntry, OciImageIndex, OciImageManifest, Platform};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::net::free_port;
use crate::process::{ManagedProcess, RunDir};
use crate::{Error, Result, progress, tools};

/// A running registry; stopped (and its storage removed) when dropped. It can be stopped
/// and started again on the same address with the same storage ([`OciRegistry::stop`],
/// [`OciRegistry::resume`]), for outages.
pub struct OciRegistry {
    // Field order matters: the process is killed before the run directory is removed.
    process: ManagedProcess,
    host: String,
    client: Client,
    config: std::path::PathBuf,
    running: bool,
    run_dir: RunDir,
}

/// How long a starting registry may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl std::fmt::Debug for OciRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciRegistry")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A pushed image: its reference and manifest digest.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `host:port/repository:tag`.
    pub reference: String,
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// Size of the manifest in bytes.
    pub size: i64,
}

impl OciRegistry {
    /// Starts a registry with filesystem storage in a fresh run directory, on loopback.
    pub async fn start() -> Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST).await
    }

    /// Starts a registry on `address`, one of the host's own (e.g. a test node's IP, where
    /// Pods reach it; never every interface).
    pub async fn start_on(address: std::net::Ipv4Addr) -> Result<Self> {
        let run_dir = RunDir::create("registry")?;
        let port = free_port()?;
        let host = format!("{address}:{port}");
        let config = run_dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                run_dir.path().join("storage").display()
            ),
        )
        .map_err(Error::io(format!("write {}", config.display())))?;
        let started = Instant::now();
        let process = serve(&config, &host, &run_dir).await?;
        progress(format_args!(
            "docker-registry ready in {:.1}s at http://{host}",
            started.elapsed().as_secs_f64()
        ));
        install_crypto_provider();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        Ok(Self {
            process,
            host,
            client,
            config,
            running: true,
            run_dir,
        })
    }

    /// Kills the registry (`SIGKILL`): until [`OciRegistry::resume`], connections to its
    /// address are refused, as when a registry is down. Its storage is kept.
    pub fn stop(&mut self) -> Result<()> {
        self.process.kill()?;
        self.running = false;
        progress(format_args!(
            "docker-registry at http://{} stopped",
            self.host
        ));
        Ok(())
    }

    /// Starts a stopped registry again on the same address with the same storage, and waits
    /// until it answers. Does nothing when it runs.
    pub async fn resume(&mut self) -> Result<()> {
        if self.running {
            return Ok(());
        }
        self.process = serve(&self.config, &self.host, &self.run_dir).await?;
        self.running = true;
        progress(format_args!(
            "docker-registry at http://{} started again",
            self.host
        ));
        Ok(())
    }

    /// Whether the registry runs (it was not stopped, or was resumed since).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// `<address>:<port>`: the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The end of the registry's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Where its storage and log live.
    pub fn run_dir(&self) -> &std::path::Path {
        self.run_dir.path()
    }

    fn reference(&self, repository_tag: &str) -> Result<Reference> {
        format!("{}/{repository_tag}", self.host)
            .parse()
            .map_err(|error: oci_client::ParseError| Error::Registry(error.to_string()))
    }

    /// Pushes an image whose layers are `(media type, bytes)` under `repository:tag`.
    pub async fn push_image(
        &self,
        repository_tag: &str,
        layers: &[(&str, &[u8])],
    ) -> Result<PushedImage> {
        let reference = self.reference(repository_tag)?;
        let layers: Vec<ImageLayer> = layers
            .iter()
            .map(|(media_type, data)| {
                ImageLayer::new(data.to_vec(), (*media_type).to_owned(), None)
            })
            .collect();
        let config = Config::new(
            b"{}".to_vec(),
            String::from("application/vnd.oci.image.config.v1+json"),
            None,
        );
        let manifest = OciImageManifest::build(&layers, &config, None);
        self.client
            .push(
                &reference,
                &layers,
                config,
                &RegistryAuth::Anonymous,
                Some(manifest),
            )
            .await
            .map_err(|error| Error::Registry(error.to_string()))?;
        self.pushed(reference).await
    }

    /// Pushes an image index under `repository:tag` whose entries are `(architecture, image)`.
    pub async fn push_index(
        &self,
        repository_tag: &str,
        entries: &[(&str, &PushedImage)],
    ) -> Result<PushedImage> {
        let reference = self.reference(repository_tag)?;
        let manifests = entries
            .iter()
            .map(|(architecture, image)| {
                let platform: Platform = serde_json::from_value(serde_json::json!({
                    "architecture": architecture,
                    "os": "linux",
                }))
                .map_err(|error| Error::Registry(error.to_string()))?;
                Ok(ImageIndexEntry {
                    media_type: String::from("application/vnd.oci.image.manifest.v1+json"),
                    digest: image.digest.clone(),
                    size: image.size,
                    platform: Some(platform),
                    annotations: None,
                    artifact_type: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(String::from("application/vnd.oci.image.index.v1+json")),
            manifests,
            artifact_type: None,
            annotations: None::<BTreeMap<String, String>>,
        };
        self.client
            .push_manifest_list(&reference, &RegistryAuth::Anonymous, index)
            .await
            .map_err(|error| Error::Registry(error.to_string()))?;
        self.pushed(reference).await
    }

    async fn pushed(&self, reference: Reference) -> Result<PushedImage> {
        let (raw, digest) = self
            .client
            .pull_manifest_raw(
                &reference,
                &RegistryAuth::Anonymous,
                &[
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                ],
            )
            .await
            .map_err(|error| Error::Registry(error.to_string()))?;
        Ok(PushedImage {
            reference: reference.whole(),
            digest,
            size: i64::try_from(raw.len()).unwrap_or(i64::MAX),
        })
    }
}

/// Starts the registry with `config` and waits until it answers at `host`.
async fn serve(config: &std::path::Path, host: &str, run_dir: &RunDir) -> Result<ManagedProcess> {
    let bin = tools::oci_registry().require()?;
    let mut command = Command::new(bin);
    command.arg("serve").arg(config);
    let mut process = ManagedProcess::spawn("docker-registry", command, run_dir)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(Error::HttpClient)?;
    process
        .wait_until_answers(&http, &format!("http://{host}/v2/"), READY_TIMEOUT)
        .await?;
    Ok(process)
}

/// The registry client needs one TLS crypto provider chosen for the process.
fn install_crypto_provider() {
    // Err only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
