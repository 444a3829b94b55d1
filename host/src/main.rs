//! The ferrometal operator binary.
//!
//! `crdgen` and `version` exist so far; `run` and `plugin` arrive with the controller and
//! plugin-platform issues.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Discovers bare-metal servers and drives their first boot.
#[derive(Debug, Parser)]
#[command(name = "ferrometal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the CRD manifests (crds/*.yaml) and the API reference (docs/api.md).
    Crdgen {
        /// Repository root to write into.
        #[arg(long, env = "FERROMETAL_CRDGEN_ROOT", default_value = ".")]
        root: PathBuf,
    },
    /// Print the version.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crdgen { root } => {
            for file in ferrometal::api::generated_files()? {
                let path = root.join(&file.path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("create {}", dir.display()))?;
                }
                std::fs::write(&path, &file.contents)
                    .with_context(|| format!("write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Version => {
            println!("ferrometal {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
