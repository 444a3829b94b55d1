//! The ferrometal operator binary.
//!
//! Only `version` exists yet; `run`, `crdgen` and `plugin` arrive with the API, controller
//! and plugin-platform issues.

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
    /// Print the version.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => {
            println!("ferrometal {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
