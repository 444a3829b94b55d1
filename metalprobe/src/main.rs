//! `metalprobe --registry-url URL [--server-uuid UUID] [--token-file FILE] [--root DIR]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use metalprobe::report::Registration;

/// Collects this machine's hardware facts and reports them to ferrometal's registry.
#[derive(Debug, Parser)]
#[command(name = "metalprobe", version, about)]
struct Args {
    /// The registry's base URL (the report goes to `<url>/register`).
    #[arg(long)]
    registry_url: String,
    /// The system UUID to report as (default: the DMI product UUID).
    #[arg(long)]
    server_uuid: Option<String>,
    /// File holding the per-boot token (sent as a bearer token).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Root of the tree to read `/sys` and `/proc` from.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Attempts before giving up on an unreachable or failing registry.
    #[arg(long, default_value_t = 10)]
    attempts: u32,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout_seconds: u64,
    /// lldpd's client, asked for LLDP neighbours (`none` skips LLDP; with `--root` other than
    /// `/` it is skipped too, since lldpd describes the real machine).
    #[arg(long, default_value = "lldpctl")]
    lldpctl: String,
    /// Print the report as JSON instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("metalprobe: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut report = metalprobe::collect::collect(&args.root);
    if args.lldpctl != "none" && args.root == std::path::Path::new("/") {
        report.lldp = metalprobe::lldp::collect(&args.lldpctl);
    }
    report.timestamp = jiff::Timestamp::now().to_string();
    let system_uuid = match args.server_uuid {
        Some(uuid) => uuid,
        None if !report.system_info.system_information.uuid.is_empty() => {
            report.system_info.system_information.uuid.clone()
        }
        None => {
            return Err(format!(
                "no --server-uuid given and {} has no product_uuid",
                args.root.join("sys/class/dmi/id").display()
            ));
        }
    };
    let registration = Registration {
        system_uuid,
        data: report,
    };
    if args.dry_run {
        let json = serde_json::to_string_pretty(&registration).map_err(|e| e.to_string())?;
        println!("{json}");
        return Ok(());
    }
    let token = match &args.token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|error| format!("cannot read the token file {}: {error}", file.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_seconds.max(1)))
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
    metalprobe::post::register(
        &client,
        &args.registry_url,
        token.as_deref(),
        &registration,
        args.attempts,
    )
    .await
    .map_err(|error| error.to_string())?;
    eprintln!(
        "metalprobe: reported {} interfaces, {} CPUs, {} block devices, {} PCI devices for system {}",
        registration.data.network_interfaces.len(),
        registration.data.cpu.len(),
        registration.data.storage.len(),
        registration.data.pci_devices.len(),
        registration.system_uuid
    );
    Ok(())
}
