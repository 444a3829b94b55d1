//! Plugin runtime benchmarks (`make bench`): per-call overhead of a fresh instance from the
//! cached `InstancePre` against the same logic as a native call, and cold compile against a
//! cached load. Prints a Markdown section for BENCHMARKS.md. Compare the ratios, not the
//! absolute numbers: these machines are noisy.

use std::time::{Duration, Instant};

use ferrometal::plugins::types::{BmcProfile, DefaultCredential};
use ferrometal::plugins::{PluginMetrics, PluginRuntime, RuntimeConfig};

const CALLS: usize = 3000;
const LOADS: usize = 15;

/// The echo plugin's lookup, natively: what the call would cost without a sandbox.
fn native_lookup(mac: &str) -> Option<BmcProfile> {
    let normalised = mac.to_ascii_lowercase().replace('-', ":");
    if !normalised.starts_with("52:54:00") {
        return None;
    }
    let credential = |username: &str, password: &str| DefaultCredential {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    Some(BmcProfile {
        manufacturer: String::from("QEMU"),
        protocol: String::from("Redfish"),
        scheme: Some(String::from("https")),
        port: 8443,
        default_credentials: vec![credential("admin", "admin"), credential("root", "calvin")],
        console_protocol: Some(String::from("SSH")),
        console_port: Some(22),
    })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let path = testenv::components::component("lookup-echo").expect("run `make plugins` first");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    // Per-call overhead.
    let plugins =
        PluginRuntime::new(RuntimeConfig::default(), PluginMetrics::default()).expect("engine");
    let echo = plugins.load_credential_lookup(&path).expect("load");
    let mut sandboxed = Vec::with_capacity(CALLS);
    runtime.block_on(async {
        for i in 0..CALLS + 100 {
            let mac = format!("52:54:00:00:{:02x}:{:02x}", i / 256 % 256, i % 256);
            let started = Instant::now();
            let profile = echo.lookup(&mac, &[]).await.expect("lookup");
            let elapsed = started.elapsed();
            assert!(profile.is_some());
            if i >= 100 {
                sandboxed.push(elapsed);
            }
        }
    });
    let mut native = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let mac = format!("52:54:00:00:{:02x}:{:02x}", i / 256 % 256, i % 256);
        let started = Instant::now();
        let profile = std::hint::black_box(native_lookup(std::hint::black_box(&mac)));
        native.push(started.elapsed());
        assert!(profile.is_some());
    }
    let sandboxed = median(sandboxed);
    let native = median(native);

    // Cold compile vs cached load.
    let mut cold = Vec::with_capacity(LOADS);
    let mut cached = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RuntimeConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..RuntimeConfig::default()
        };
        let plugins = PluginRuntime::new(config, PluginMetrics::default()).expect("engine");
        let started = Instant::now();
        plugins.load_credential_lookup(&path).expect("cold load");
        cold.push(started.elapsed());
        let started = Instant::now();
        plugins.load_credential_lookup(&path).expect("cached load");
        cached.push(started.elapsed());
    }
    let cold = median(cold);
    let cached = median(cached);

    println!("## Plugin runtime\n");
    println!(
        "`cargo bench -p ferrometal --bench plugin_calls` (release build; component `lookup-echo`; instances from the pooling allocator; medians)\n"
    );
    println!("| Measurement | Result |\n|---|---|");
    println!(
        "| credential-lookup call: fresh instance from `InstancePre` + call + drop ({CALLS} calls) | {} |",
        micros(sandboxed)
    );
    println!(
        "| the same lookup as a native Rust call | {} |",
        micros(native)
    );
    println!(
        "| sandbox overhead per call (difference) | {} |",
        micros(sandboxed.saturating_sub(native))
    );
    println!(
        "| cold load: read + check + compile + write cache ({LOADS} runs) | {} |",
        millis(cold)
    );
    println!(
        "| cached load: read + check + deserialize ({LOADS} runs) | {} |",
        millis(cached)
    );
    println!(
        "| cached load speed-up | {:.0}× |",
        cold.as_secs_f64() / cached.as_secs_f64().max(1e-9)
    );
}
