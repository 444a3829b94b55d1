//! A plugin's self-description, read from its custom section before anything is compiled.

use std::fmt;

use serde::Deserialize;

use super::error::MetadataProblem;

/// Name of the custom section the SDK writes.
pub const METADATA_SECTION: &str = "ferrometal:plugin-metadata";

/// The plugin ABI versions this host runs: `0.1.x` (before 1.0 a minor bump is breaking).
pub const SUPPORTED_ABI: AbiRange = AbiRange { major: 0, minor: 1 };

/// A range of compatible ABI versions: every patch release of one `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiRange {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
}

impl fmt::Display for AbiRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            ">={}.{}.0, <{}.{}.0",
            self.major,
            self.minor,
            self.major,
            self.minor + 1
        )
    }
}

/// The world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Talks to BMCs.
    BmcDriver,
    /// Maps MAC addresses to BMC profiles.
    CredentialLookup,
    /// Renders discovery ignitions.
    IgnitionGenerator,
    /// Turns a server's facts into labels, taints and an unclaimable verdict.
    ServerClassifier,
}

impl World {
    /// The world's WIT name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BmcDriver => "bmc-driver",
            Self::CredentialLookup => "credential-lookup",
            Self::IgnitionGenerator => "ignition-generator",
            Self::ServerClassifier => "server-classifier",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PluginMetadata {
    /// The world it implements.
    pub world: World,
    /// The ABI (WIT package) version it was built against, e.g. `0.1.0`.
    pub abi: String,
    /// The plugin-sdk version it was built with.
    pub sdk: String,
    /// Capabilities it asks for, e.g. `credentials/reveal`.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl PluginMetadata {
    /// Finds and parses the metadata section of a component (it sits in the embedded core
    /// module, so nested modules are searched too).
    pub fn from_component(bytes: &[u8]) -> Result<Self, MetadataProblem> {
        let mut found = None;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|error| MetadataProblem::NotWasm(error.to_string()))?;
            if let wasmparser::Payload::CustomSection(section) = payload
                && section.name() == METADATA_SECTION
            {
                found = Some(section.data().to_vec());
                break;
            }
        }
        let data = found.ok_or(MetadataProblem::Missing)?;
        serde_json::from_slice(&data).map_err(|error| MetadataProblem::Malformed(error.to_string()))
    }

    /// Checks the ABI version against what this host supports.
    pub fn check_abi(&self) -> Result<(), MetadataProblem> {
        let unsupported = || MetadataProblem::UnsupportedAbi {
            found: self.abi.clone(),
            supported: SUPPORTED_ABI,
        };
        let mut parts = self.abi.split('.').map(str::parse::<u64>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), Some(Ok(_patch)), None)
                if major == SUPPORTED_ABI.major && minor == SUPPORTED_ABI.minor =>
            {
                Ok(())
            }
            _ => Err(unsupported()),
        }
    }
}

/// The first import of the component (its own, not those of the modules and components
/// nested in it, which only its own imports can satisfy) whose name starts with one of
/// `prefixes`, e.g. `wasi:sockets/tcp@0.2.6` for `wasi:sockets/`. Read without compiling.
pub(crate) fn import_with_prefix(
    bytes: &[u8],
    prefixes: &[&str],
) -> Result<Option<String>, MetadataProblem> {
    Ok(imports_with_prefix(bytes, prefixes)?.into_iter().next())
}

/// Every import of the component that the host never provides
/// ([`FORBIDDEN_IMPORTS`](super::FORBIDDEN_IMPORTS): sockets and name lookups), in order: a
/// component with any of them is refused at load time. Read without compiling, so
/// `ferrometal plugin validate` can name them all before loading stops at the first.
pub fn forbidden_imports(bytes: &[u8]) -> Result<Vec<String>, MetadataProblem> {
    imports_with_prefix(bytes, super::FORBIDDEN_IMPORTS)
}

/// The component's own imports whose names start with one of `prefixes`.
fn imports_with_prefix(bytes: &[u8], prefixes: &[&str]) -> Result<Vec<String>, MetadataProblem> {
    use wasmparser::Payload;
    let not_wasm =
        |error: wasmparser::BinaryReaderError| MetadataProblem::NotWasm(error.to_string());
    let mut depth = 0usize;
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(not_wasm)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 0 => {
                for import in imports {
                    let name = import.map_err(not_wasm)?.name.name;
                    if prefixes.iter().any(|prefix| name.starts_with(prefix)) {
                        found.push(name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(abi: &str) -> PluginMetadata {
        PluginMetadata {
            world: World::CredentialLookup,
            abi: abi.to_owned(),
            sdk: "0.1.0".to_owned(),
            capabilities: Vec::new(),
        }
    }

    #[test]
    fn every_patch_release_of_the_supported_minor_is_accepted() {
        assert!(metadata("0.1.0").check_abi().is_ok());
        assert!(metadata("0.1.7").check_abi().is_ok());
    }

    #[test]
    fn other_minors_majors_and_garbage_are_rejected_naming_the_supported_range() {
        for abi in ["0.2.0", "1.1.0", "0.0.9", "0.1", "0.1.0-rc1", "x"] {
            let message = metadata(abi).check_abi().expect_err(abi).to_string();
            assert!(message.contains(abi), "{message}");
            assert!(message.contains(">=0.1.0, <0.2.0"), "{message}");
        }
    }

    #[test]
    fn a_file_that_is_not_wasm_is_reported_as_such() {
        let error = PluginMetadata::from_component(b"#!/bin/sh\necho hi\n").expect_err("not wasm");
        assert!(matches!(error, MetadataProblem::NotWasm(_)), "{error}");
    }
}
