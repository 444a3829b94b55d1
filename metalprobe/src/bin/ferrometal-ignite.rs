//! `ferrometal-ignite`: the discovery image's stand-in for Ignition. It reads
//! `ignition.config.url` from the kernel command line, fetches the discovery ignition (with
//! retries while the network comes up), writes the files it lists and runs the command of
//! every enabled unit (metalprobe), printing each step to the console. With `--dhcp6 eth0` it
//! first leases an IPv6 address for the interface over DHCPv6 and puts it on the interface
//! (the discovery image's busybox has no DHCPv6 client).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use metalprobe::ignition::{self, FileWrite, Source};
use sha2::{Digest, Sha512};

/// Applies the discovery ignition named on the kernel command line.
#[derive(Debug, Parser)]
#[command(name = "ferrometal-ignite", version, about)]
struct Args {
    /// The kernel command line to read `ignition.config.url` from.
    #[arg(long, default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// Root the files are written under.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Attempts to fetch the ignition, one second apart (connection failures and retryable
    /// statuses such as 503 are tried again).
    #[arg(long, default_value_t = 60)]
    attempts: u32,
    /// Test fault: overwrite the file the command's `--token-file=` names with a wrong token
    /// before running it (the registry must refuse the report).
    #[arg(long)]
    corrupt_token: bool,
    /// Lease an IPv6 address for this interface over DHCPv6 first (a Solicit a second, up
    /// to 30) and add it with `ip -6 addr add <address>/128`; the on-link prefix comes from
    /// router advertisements.
    #[arg(long, value_name = "INTERFACE")]
    dhcp6: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferrometal-ignite: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `url` as it may be printed: without its query, which carries the fetch ticket.
fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => url.to_owned(),
    }
}

async fn get(client: &reqwest::Client, url: &str, attempts: u32) -> Result<Vec<u8>, String> {
    let shown_url = shown(url);
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => {
                return response
                    .bytes()
                    .await
                    .map(|bytes| bytes.to_vec())
                    .map_err(|error| format!("GET {shown_url}: {}", error.without_url()));
            }
            // Asked to come back (503 while the boot server starts) or server trouble.
            Ok(response) if metalprobe::post::retryable(response.status().as_u16()) => {
                last = response.status().to_string();
            }
            // The server answered: retrying will not change its mind.
            Ok(response) => return Err(format!("GET {shown_url}: {}", response.status())),
            Err(error) => last = error.without_url().to_string(),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Err(format!("GET {shown_url}: {last}"))
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

async fn write(client: &reqwest::Client, root: &Path, file: &FileWrite) -> Result<(), String> {
    let contents = match &file.source {
        Source::Inline(bytes) => bytes.clone(),
        Source::Remote(url) => get(client, url, 5).await?,
    };
    if let Some(expected) = &file.sha512 {
        let actual: String = Sha512::digest(&contents)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        if &actual != expected {
            return Err(format!(
                "{}: sha512 {actual} is not the expected {expected}",
                file.path.display()
            ));
        }
    }
    let target = under(root, &file.path);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    std::fs::write(&target, &contents).map_err(|e| format!("write {}: {e}", target.display()))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))
        .map_err(|e| format!("chmod {}: {e}", target.display()))?;
    println!(
        "ferrometal-ignite: wrote {} ({} bytes, mode {:o})",
        file.path.display(),
        contents.len(),
        file.mode
    );
    Ok(())
}

/// Leases an address for `interface` over DHCPv6 and configures it.
async fn configure_ipv6(interface: &str) -> Result<(), String> {
    let name = interface.to_owned();
    let lease = tokio::task::spawn_blocking(move || metalprobe::dhcp6::lease(&name, 30))
        .await
        .map_err(|error| format!("the DHCPv6 client failed: {error}"))?
        .map_err(|error| error.to_string())?;
    let address = format!("{}/128", lease.address);
    let status = tokio::process::Command::new("ip")
        .args(["-6", "addr", "add", &address, "dev", interface])
        .status()
        .await
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if !status.success() {
        return Err(format!(
            "ip -6 addr add {address} dev {interface}: {status}"
        ));
    }
    println!(
        "ferrometal: {interface} has {address} (DHCPv6, valid {} s)",
        lease.valid_seconds
    );
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    if let Some(interface) = &args.dhcp6 {
        configure_ipv6(interface).await?;
    }
    let cmdline = std::fs::read_to_string(&args.cmdline)
        .map_err(|error| format!("cannot read {}: {error}", args.cmdline.display()))?;
    let url = ignition::kernel_arg(&cmdline, "ignition.config.url").ok_or_else(|| {
        format!(
            "{} has no ignition.config.url: {}",
            args.cmdline.display(),
            cmdline.trim()
        )
    })?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
    // The token is in the URL's query: print only the path.
    println!(
        "ferrometal-ignite: fetching the ignition from {}",
        url.split('?').next().unwrap_or_default()
    );
    let document = get(&client, url, args.attempts).await?;
    let document: serde_json::Value = serde_json::from_slice(&document)
        .map_err(|error| format!("the ignition is not JSON: {error}"))?;
    let plan = ignition::plan(&document).map_err(|error| error.to_string())?;
    for file in &plan.files {
        write(&client, &args.root, file).await?;
    }
    for command in &plan.commands {
        if args.corrupt_token
            && let Some(token_file) = command
                .iter()
                .find_map(|arg| arg.strip_prefix("--token-file="))
        {
            let target = under(&args.root, Path::new(token_file));
            std::fs::write(&target, "corrupted-by-test")
                .map_err(|e| format!("write {}: {e}", target.display()))?;
            println!("ferrometal-ignite: corrupted the token in {token_file} (test fault)");
        }
        println!("ferrometal-ignite: running {}", command[0]);
        let status = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .status()
            .await
            .map_err(|error| format!("cannot run {}: {error}", command[0]))?;
        if !status.success() {
            return Err(format!("{} ended with {status}", command[0]));
        }
    }
    println!("ferrometal-ignite: done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_leave_the_fetch_ticket_out() {
        assert_eq!(
            shown("http://[fd00::1]:8082/ignition/u?ticket=s3cret"),
            "http://[fd00::1]:8082/ignition/u?…"
        );
        assert_eq!(
            shown("http://10.0.0.1/metalprobe"),
            "http://10.0.0.1/metalprobe"
        );
    }
}
