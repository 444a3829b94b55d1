//! What `ferrometal plugin inspect` shows: a plugin's self-description and its interface.

use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::error::LoadError;
use super::metadata::PluginMetadata;
use super::runtime::{FORBIDDEN_IMPORTS, PluginRuntime};

/// A plugin as the operator sees it before loading it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// sha256 of the file, hex.
    pub digest: String,
    /// File size in bytes.
    pub size: u64,
    /// The world from the metadata section.
    pub world: String,
    /// The ABI version it was built for.
    pub abi: String,
    /// Whether this host runs that ABI, or why not.
    pub abi_status: String,
    /// The SDK version it was built with.
    pub sdk: String,
    /// Capabilities it requests.
    pub capabilities: Vec<String>,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// Those of its imports the host never provides ([`FORBIDDEN_IMPORTS`]: sockets and name
    /// lookups): a plugin with any of them is refused at load time.
    pub denied_imports: Vec<String>,
    /// Interfaces it exports.
    pub exports: Vec<String>,
}

impl PluginRuntime {
    /// Reads a plugin's metadata and compiles it to list its imports and exports, without
    /// checking that this host can run it (the `abi_status` field says).
    pub fn inspect(&self, path: &Path) -> Result<Inspection, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let metadata =
            PluginMetadata::from_component(&bytes).map_err(|problem| LoadError::Metadata {
                path: path.to_path_buf(),
                problem,
            })?;
        let abi_status = match metadata.check_abi() {
            Ok(()) => String::from("supported"),
            Err(problem) => problem.to_string(),
        };
        let component = Component::new(self.engine(), &bytes)
            .map_err(LoadError::invalid(path, metadata.world))?;
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(self.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        let denied_imports = imports
            .iter()
            .filter(|name| {
                FORBIDDEN_IMPORTS
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
            })
            .cloned()
            .collect();
        let exports = ty
            .exports(self.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        Ok(Inspection {
            digest: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            world: metadata.world.to_string(),
            abi: metadata.abi,
            abi_status,
            sdk: metadata.sdk,
            capabilities: metadata.capabilities,
            imports,
            denied_imports,
            exports,
        })
    }
}
