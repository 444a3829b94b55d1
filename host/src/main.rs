//! The ferrometal operator binary.
//!
//! `run` (the operator), `crdgen`, `plugin` and `version`.

mod plugin_author;
mod plugin_cli;
mod plugin_registry_cli;
mod run;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Run the operator: the Endpoint, BMC, Server and ServerBootConfiguration controllers,
    /// the boot server with the probe registry, and (with --dhcp-config) DHCP and TFTP.
    Run(Box<run::RunArgs>),
    /// Write the CRD manifests (crds/*.yaml) and the API reference (docs/api.md).
    Crdgen {
        /// Repository root to write into.
        #[arg(long, env = "FERROMETAL_CRDGEN_ROOT", default_value = ".")]
        root: PathBuf,
    },
    /// Inspect, validate or call a plugin component.
    #[command(subcommand)]
    Plugin(Box<plugin_cli::PluginCommand>),
    /// Print the version and the plugin ABI it runs.
    Version,
}

/// Prints a failure as one readable line (the error and its causes), never with the host
/// backtrace that `RUST_BACKTRACE=1` adds to anyhow's `Debug` output: a plugin's own error or
/// crash is not a bug of this program. Log lines are coloured only on a terminal.
fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERROMETAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,plugin=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match dispatch(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
            runtime.block_on(run::run(*args))
        }
        Command::Plugin(command) => {
            let runtime = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
            runtime.block_on(plugin_cli::run(*command))
        }
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
            println!(
                "ferrometal {} (plugin ABI {})",
                env!("CARGO_PKG_VERSION"),
                ferrometal::plugins::SUPPORTED_ABI
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_run_help_names_what_the_operator_runs_today() {
        let command = Cli::command();
        let run = command.find_subcommand("run").expect("run subcommand");
        let about = run.get_about().expect("run has an about text").to_string();
        assert!(!about.contains("follow"), "no promise of more: {about}");
        for part in [
            "Endpoint",
            "BMC",
            "Server",
            "ServerBootConfiguration",
            "boot server",
            "registry",
            "DHCP",
            "TFTP",
        ] {
            assert!(about.contains(part), "{part} missing from {about:?}");
        }
    }
}
