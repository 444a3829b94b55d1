//! `ferrometal plugin push | pull | verify` and `plugin inspect <reference>`: plugins as OCI
//! artifacts, checked exactly as the operator checks them before it compiles one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ferrometal::plugins::oci::artifact::{PluginArtifact, PluginManifest, sha256_digest};
use ferrometal::plugins::oci::fetch::{
    ArtifactStore, PluginFetcher, PluginReference, check_component, check_manifest,
};
use ferrometal::plugins::oci::registry::{PluginRegistry, RegistryOptions};
use ferrometal::plugins::oci::trust::{AnyOfConfig, SignerConfig, VerificationConfig};
use ferrometal::plugins::{PluginMetadata, PluginMetrics, PluginRuntime, RuntimeConfig, World};

/// How to reach the registry.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// A registry (`host:port`) spoken to over plain HTTP (lab registries; repeatable).
    #[arg(
        long = "insecure-registry",
        env = "FERROMETAL_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure: Vec<String>,
    /// A Docker `config.json` with registry logins.
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    registry_auth_file: Option<PathBuf>,
}

impl RegistryArgs {
    fn registry(&self) -> anyhow::Result<PluginRegistry> {
        Ok(PluginRegistry::new(&RegistryOptions {
            insecure: self.insecure.clone(),
            auth_file: self.registry_auth_file.clone(),
        })?)
    }
}

/// `plugin push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The `.wasm` component.
    file: PathBuf,
    /// Where to push it: `registry/repository:tag` (`oci://` may be written before it).
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `plugin pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// `registry/repository[:tag][@sha256:…]`.
    reference: String,
    /// Directory to write the component to (as `<name>-<digest>.wasm`).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `plugin verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// `registry/repository[:tag][@sha256:…]` (a tag is resolved to its digest first).
    reference: String,
    /// A trusted signer's public key (`cosign.pub`; repeatable). Every key must have signed
    /// (allOf) unless `--minimum-matches` asks for a quorum.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Accept the artifact when this many distinct keys of `--key` signed it (anyOf).
    #[arg(long)]
    minimum_matches: Option<usize>,
    /// The world it must implement (default: the one its manifest names).
    #[arg(long)]
    world: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Pushes a component in the CNCF wasm layout and prints the pinned reference.
pub async fn push(args: PushArgs) -> anyhow::Result<()> {
    let component =
        std::fs::read(&args.file).with_context(|| format!("read {}", args.file.display()))?;
    let runtime = PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default())?;
    let inspection = runtime.inspect(&args.file)?;
    let metadata = PluginMetadata::from_component(&component)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", args.file.display()))?;
    let name = ferrometal::plugins::plugin_name(&args.file)
        .context("the file name gives the plugin's name: name it <name>.wasm")?;
    let reference = PluginReference::parse(&args.reference)?;
    if reference.reference.digest().is_some() {
        bail!("push to a tag (registry/repository:tag); the digest is what the push prints");
    }
    let artifact = PluginArtifact::new(
        &name,
        &component,
        &metadata,
        &inspection.imports,
        &inspection.exports,
    );
    args.registry
        .registry()?
        .push(&reference.reference, &artifact, &component)
        .await?;
    println!(
        "pushed {name} ({} {}, {} bytes)\noci://{}@{}",
        metadata.world,
        metadata.abi,
        component.len(),
        reference.reference.whole(),
        artifact.manifest_digest
    );
    Ok(())
}

/// The manifest of `reference` and its digest, checked against the reference's digest.
async fn manifest_of(
    registry: &PluginRegistry,
    reference: &PluginReference,
) -> anyhow::Result<(Vec<u8>, String)> {
    let manifest = registry.manifest(&reference.by_tag()).await?;
    let digest = sha256_digest(&manifest);
    if let Some(pinned) = reference.reference.digest()
        && !pinned.eq_ignore_ascii_case(&digest)
    {
        bail!(
            "{}: the registry's manifest is {digest}, not the pinned {pinned}",
            reference.text
        );
    }
    Ok((manifest, digest))
}

/// The world `text` names.
fn parse_world(text: &str) -> anyhow::Result<World> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        anyhow::anyhow!(
            "{text:?} is not a world (bmc-driver, credential-lookup, ignition-generator, server-classifier)"
        )
    })
}

/// Pulls a component (its digest checked against the manifest) into a directory.
pub async fn pull(args: PullArgs) -> anyhow::Result<()> {
    let registry = args.registry.registry()?;
    let reference = PluginReference::parse(&args.reference)?;
    let (manifest, digest) = manifest_of(&registry, &reference).await?;
    let parsed = PluginManifest::parse(&manifest)?;
    let component = registry
        .component(&reference.reference, &parsed.layer.digest)
        .await?;
    let metadata = PluginMetadata::from_component(&component)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", reference.text))?;
    check_component(&reference, &parsed, metadata.world, &component)?;
    let name = parsed
        .plugin_annotations()
        .get("name")
        .cloned()
        .unwrap_or_else(|| {
            reference
                .reference
                .repository()
                .rsplit('/')
                .next()
                .unwrap_or("plugin")
                .to_owned()
        });
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let file = args.dir.join(format!(
        "{name}-{}.wasm",
        parsed.layer.digest.replacen(':', "-", 1)
    ));
    std::fs::write(&file, &component).with_context(|| format!("write {}", file.display()))?;
    println!(
        "pulled {} ({}, manifest {digest}) to {}\nits signatures are not checked by pull: run `ferrometal plugin verify`",
        reference.text,
        metadata.world,
        file.display()
    );
    Ok(())
}

/// What `plugin inspect <reference>` prints: the manifest's view, without the layer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoteInspection {
    reference: String,
    manifest_digest: String,
    layer_media_type: String,
    layer_digest: String,
    layer_size: i64,
    plugin: std::collections::BTreeMap<String, String>,
    signatures: usize,
}

/// Whether `target` names a file (inspected locally) rather than a registry reference.
pub fn is_local(target: &str) -> bool {
    !target.starts_with(ferrometal::plugins::oci::fetch::SCHEME) && Path::new(target).exists()
}

/// Shows what a registry says about a plugin, without downloading its component.
pub async fn inspect(target: &str, registry: &RegistryArgs) -> anyhow::Result<()> {
    let client = registry.registry()?;
    let reference = PluginReference::parse(target)?;
    let (manifest, digest) = manifest_of(&client, &reference).await?;
    let parsed = PluginManifest::parse(&manifest)?;
    let signatures = client.signatures(&reference.reference, &digest).await?;
    let inspection = RemoteInspection {
        reference: reference.text.clone(),
        manifest_digest: digest,
        layer_media_type: parsed.layer.media_type.clone(),
        layer_digest: parsed.layer.digest.clone(),
        layer_size: parsed.layer.size,
        plugin: parsed.plugin_annotations(),
        signatures: signatures.len(),
    };
    println!("{}", serde_json::to_string_pretty(&inspection)?);
    Ok(())
}

/// Verifies a plugin artifact as the operator does before it compiles one.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let registry = args.registry.registry()?;
    let reference = PluginReference::parse(&args.reference)?;
    let (manifest, digest) = manifest_of(&registry, &reference).await?;
    let world = match &args.world {
        Some(world) => parse_world(world)?,
        None => {
            let parsed = PluginManifest::parse(&manifest)?;
            let world = parsed
                .world()
                .context("its manifest names no world: give --world")?;
            parse_world(world)?
        }
    };
    let pinned = reference.pinned_to(&digest);
    // Fails early with the manifest's own message before anything else is fetched.
    check_manifest(&pinned, &digest, world, &manifest)?;
    let signers = args
        .keys
        .iter()
        .map(|path| SignerConfig {
            name: path.display().to_string(),
            key: None,
            key_file: Some(path.clone()),
        })
        .collect();
    let config = match args.minimum_matches {
        Some(minimum_matches) => VerificationConfig {
            all_of: Vec::new(),
            any_of: Some(AnyOfConfig {
                minimum_matches,
                signers,
            }),
        },
        None => VerificationConfig {
            all_of: signers,
            any_of: None,
        },
    };
    let policy = config.resolve()?;
    let store = tempfile::tempdir().context("create a scratch directory")?;
    let fetcher = PluginFetcher::new(registry, ArtifactStore::new(store.path()));
    let verified = fetcher.fetch(&pinned, world, &policy).await?;
    println!(
        "verified {} ({world}, manifest {digest}): signed by {}",
        reference.text,
        verified.signers.join(", ")
    );
    Ok(())
}
