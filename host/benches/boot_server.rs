//! Boot-server benchmark (`make bench`): requests per second and latency percentiles of
//! `/ipxe/<uuid>` and `/ignition/<uuid>` with 10,000 machines configured, measured by wrk on
//! loopback against the real axum server in this process. Prints a Markdown section for
//! BENCHMARKS.md. wrk and the server share this machine's cores, so compare runs, not
//! machines.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ferrometal::boot::image::{BootLayer, BootLayers, ImageResolver, LayerKind, RegistryConfig};
use ferrometal::boot::index::{BootEntry, BootIndex, ConfigKey, EntryState};
use ferrometal::boot::server::{BootMetrics, BootServer, BootServerConfig};
use ferrometal::boot::uuid::SystemUuid;

const MACHINES: usize = 10_000;
/// The registry token of machine `i`.
fn token(i: usize) -> String {
    format!("token-{i:05}")
}

const IGNITION: &str = r#"{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"metal","sshAuthorizedKeys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkKeyBenchmarkKeyBenchmarkKey bench"]}]},"systemd":{"units":[{"name":"metalprobe.service","enabled":true}]}}"#;
const DURATION: &str = "10s";
const CONNECTIONS: &str = "64";

fn uuid(i: usize) -> SystemUuid {
    SystemUuid::parse(&format!("{:08x}-0000-4000-8000-{:012x}", i, i)).expect("uuid")
}

fn layer(kind: LayerKind, i: usize) -> Option<BootLayer> {
    Some(BootLayer {
        digest: format!("sha256:{:064x}", i),
        size: 1,
        kind,
    })
}

/// One wrk run: requests/s, p50 and p99 (as wrk prints them).
struct WrkResult {
    requests_per_second: String,
    p50: String,
    p99: String,
    non_2xx: String,
}

fn wrk(url: &str, script: &std::path::Path) -> WrkResult {
    let output = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            CONNECTIONS,
            "-d",
            DURATION,
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs (installed by `make bench`)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_else(|| String::from("0"))
    };
    WrkResult {
        requests_per_second: field("Requests/sec:"),
        p50: field("50%"),
        p99: field("99%"),
        non_2xx: field("Non-2xx or 3xx responses:"),
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let index = BootIndex::default();
    let image: oci_client::Reference = "registry.example/discovery:1".parse().expect("reference");
    for i in 0..MACHINES {
        index.insert(BootEntry {
            config: ConfigKey {
                namespace: String::from("bench"),
                name: format!("server-{i}"),
            },
            uuid: uuid(i),
            server: format!("server-{i}"),
            image: image.clone(),
            layers: BootLayers {
                kernel: layer(LayerKind::Kernel, 1),
                initramfs: layer(LayerKind::Initramfs, 2),
                squashfs: None,
                uki: None,
            },
            ignition: Some(bytes::Bytes::from_static(IGNITION.as_bytes())),
            // wrk fetches each ignition many times from one address: the first use takes
            // the ticket, every later one is its holder fetching again (checked the same way).
            token: Some(token(i)),
            network_identifiers: Vec::new(),
            discovery_attempt: Some(1),
            provision_attempt: None,
            // Reported already, so the benchmark measures serving, not the API server.
            state: EntryState {
                script_reported: AtomicBool::new(true),
                ignition_reported: AtomicBool::new(true),
                ..EntryState::default()
            },
        });
    }
    let reports = ferrometal::boot::fetch_log::FetchLog::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = Arc::new(BootServer {
        index,
        resolver: Arc::new(ImageResolver::new(RegistryConfig::default())),
        layers: ferrometal::boot::layer_cache::LayerCache::temporary(1 << 20).expect("cache"),
        config: BootServerConfig {
            base_url: format!("http://{address}"),
            ipv6_url: None,
            trusted_proxies: Vec::new(),
            extra_kernel_args: String::new(),
            metalprobe_binary: None,
            source_bindings: None,
        },
        metrics: BootMetrics::default(),
        reports,
    });
    runtime.spawn(ferrometal::boot::listener::serve(
        listener,
        ferrometal::boot::server::router(server),
        ferrometal::boot::listener::HttpLimits::default(),
        ferrometal::boot::listener::ConnectionMetrics::default(),
    ));

    // wrk picks a random configured machine per request.
    let dir = tempfile::tempdir().expect("temp dir");
    let lua = |path: &str| {
        format!(
            "math.randomseed(7)\nrequest = function()\n  local i = math.random(0, {})\n  return wrk.format(\"GET\", string.format(\"{path}\", i, i, i))\nend\n",
            MACHINES - 1
        )
    };
    let ipxe_script = dir.path().join("ipxe.lua");
    std::fs::write(&ipxe_script, lua("/ipxe/%08x-0000-4000-8000-%012x")).expect("lua");
    let ignition_script = dir.path().join("ignition.lua");
    let tickets: Vec<String> = (0..MACHINES)
        .map(|i| format!("\"{}\"", ferrometal::boot::index::fetch_ticket(&token(i))))
        .collect();
    std::fs::write(
        &ignition_script,
        format!(
            "tickets = {{{}}}\nmath.randomseed(7)\nrequest = function()\n  local i = math.random(0, {})\n  return wrk.format(\"GET\", string.format(\"/ignition/%08x-0000-4000-8000-%012x?ticket=%s\", i, i, tickets[i + 1]))\nend\n",
            tickets.join(","),
            MACHINES - 1
        ),
    )
    .expect("lua");
    let base = format!("http://{address}");
    let ipxe = wrk(&base, &ipxe_script);
    let ignition = wrk(&base, &ignition_script);

    println!("## Boot server\n");
    println!(
        "`cargo bench -p ferrometal --bench boot_server` (release build; {MACHINES} machines configured; wrk -t2 -c{CONNECTIONS} -d{DURATION} on loopback, sharing the cores with the server; each request picks a random machine)\n"
    );
    println!("| Endpoint | Requests/s | p50 | p99 | non-2xx |");
    println!("|---|---|---|---|---|");
    for (name, result) in [
        ("`/ipxe/<uuid>`", ipxe),
        ("`/ignition/<uuid>?ticket=…`", ignition),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            result.requests_per_second, result.p50, result.p99, result.non_2xx
        );
    }
}
