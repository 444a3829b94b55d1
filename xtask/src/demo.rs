//! `make demo`: a local control plane, an OCI registry with a discovery image, a simulated
//! fleet and `ferrometal run`, onboarding the fleet through both discovery paths (BMCs that
//! announce themselves by DHCP become Endpoints; the others are applied as BMC objects) and
//! showing progress until every Server is Available. With `--vms N` (`make demo VMS=2`) real
//! QEMU VMs boot the Debian discovery image beside the simulated fleet. With `--cluster`
//! (`make demo CLUSTER=1`) the operator runs as a Pod instead: the image `cargo xtask image`
//! builds, installed with the Helm chart onto a real node (containerd, kubelet,
//! kube-scheduler, kube-proxy) in a namespace enforcing the `restricted` Pod Security level,
//! as a cluster would run it. With `--ipv6` (`make demo IPV6=1`) the simulated fleet works
//! over IPv6 in a network namespace of its own: DHCPv6, IPv6 BMC addresses, the boot server
//! at an IPv6 URL. Runs until Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrometal_sim::lab::{Lab, LabOptions};
use ferrometal_sim::{FleetSpec, MachineBehaviour};
use testenv::tools;

use crate::run::{checked, step};
use crate::{image, plugins, setup};

/// Where `--cluster` installs the chart.
const NAMESPACE: &str = "ferrometal-system";
/// The Helm release of `--cluster`.
const RELEASE: &str = "ferrometal";

/// What `make demo` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Servers in the simulated fleet (one per BMC); half of the BMCs announce themselves by
    /// DHCP, the other half are applied as BMC objects.
    #[arg(long, default_value_t = 12, env = "SERVERS")]
    pub servers: usize,
    /// Seed of the fleet's UUIDs, serial numbers and hardware.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated firmware start-up time per boot, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub boot_delay_ms: u64,
    /// Serve the simulated BMCs' Redfish over TLS.
    #[arg(long)]
    pub tls: bool,
    /// Exit once every Server is Available instead of waiting for Ctrl-C.
    #[arg(long)]
    pub exit_when_available: bool,
    /// Real QEMU VMs beside the simulated fleet, behind one more BMC (software emulation;
    /// each takes about half a minute to discover).
    #[arg(long, default_value_t = 0, env = "VMS")]
    pub vms: usize,
    /// Run the operator as a Pod, installed by the Helm chart from the image `cargo xtask
    /// image` builds, on a local node (needs root); every BMC is applied as a BMC object.
    #[arg(long)]
    pub cluster: bool,
    /// Run the simulated fleet over IPv6 (needs root): in a network namespace joined to the
    /// host by a veth pair, BMCs announce themselves and machines boot over DHCPv6, and
    /// everything reaches the boot server, registry and BMCs at IPv6 addresses.
    #[arg(long)]
    pub ipv6: bool,
}

/// The hardware of demo VM `index`: alternately small and larger, so their Servers differ.
fn vm_shape(index: usize) -> ferrometal_sim::vm::VmShape {
    ferrometal_sim::vm::VmShape {
        cpus: 1 + (index % 2) as u32,
        memory_mib: 512 + 256 * (index % 2) as u64,
        disk_bytes: (1 + index as u64 % 3) << 30,
    }
}

/// Runs the demo until interrupted.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.servers == 0 {
        bail!("--servers must be at least 1");
    }
    if args.cluster {
        if args.vms > 0 {
            bail!(
                "--cluster runs without VMs: QEMU's guests reach the boot server on the host's loopback, the Pod's is behind a NodePort"
            );
        }
        if !testenv::netns::available() {
            bail!(
                "--cluster needs root: the node creates a bridge, iptables rules, cgroups and mounts"
            );
        }
    }
    if args.ipv6 {
        if args.cluster || args.vms > 0 {
            bail!("--ipv6 runs the simulated fleet only: no --cluster, no --vms");
        }
        if !testenv::netns::available() {
            bail!("--ipv6 needs root: the fleet gets a network namespace and a veth pair");
        }
    }
    setup::all()?;
    plugins::build()?;
    if args.cluster {
        // The release binaries and plugins in one layer, as target/image/…oci.tar.
        image::run(&image::ImageArgs {
            out: None,
            push: None,
            plain_http: false,
        })?;
    }
    let root = tools::workspace_root();
    if !args.cluster {
        step("building ferrometal and metalprobe");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        checked(
            Command::new(cargo)
                .args(["build", "--quiet", "-p", "ferrometal", "-p", "metalprobe"])
                .current_dir(&root),
        )?;
    }
    let runtime = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
    runtime.block_on(demo(&root, args))
}

async fn demo(root: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let work_dir = root.join("target").join("demo");
    if work_dir.exists() {
        std::fs::remove_dir_all(&work_dir)
            .with_context(|| format!("remove {}", work_dir.display()))?;
    }
    let binaries = root.join("target").join("debug");
    let ui_port = testenv::net::free_port().context("pick a port for the fleet view")?;
    let mut lab = Lab::start(
        LabOptions {
            fleet: FleetSpec {
                seed: args.seed,
                bmcs: args.servers,
                ..FleetSpec::default()
            },
            // In a cluster the DHCP server needs the host's network; the demo keeps the
            // Pod on the Pod network, so every BMC is applied as a BMC object.
            dhcp_bmcs: if args.cluster { 0 } else { args.servers / 2 },
            tls: args.tls,
            apply_bmcs: !args.cluster,
            start_operator: !args.cluster,
            vms: (0..args.vms).map(vm_shape).collect(),
            behaviour: MachineBehaviour {
                boot_delay: Duration::from_millis(args.boot_delay_ms),
                power_delay: Duration::from_millis(500),
                ..MachineBehaviour::default()
            },
            ferrometal: binaries.join("ferrometal"),
            metalprobe: binaries.join("metalprobe"),
            components: root.join("target").join("components"),
            operator_args: vec![
                String::from("--credential-retry-seconds"),
                String::from("2"),
                String::from("--server-resync-seconds"),
                String::from("5"),
                // A known address for the fleet view (/ui), printed below.
                String::from("--metrics-bind-address"),
                format!("127.0.0.1:{ui_port}"),
            ],
            operator_log: String::from("info"),
            work_dir: work_dir.clone(),
            audit_log: false,
            hold_dhcp_bmcs: false,
            node: args.cluster,
            ipv6: args.ipv6,
        },
        |line| step(line),
    )
    .await?;

    if args.cluster {
        install_chart(&lab).await?;
        step(format_args!(
            "onboarding {} servers: every BMC is applied as a BMC object",
            args.servers
        ));
        lab.apply_bmcs(0..args.servers, None).await?;
    } else {
        step(format_args!(
            "onboarding {} servers: {} BMCs announce themselves by {} (→ Endpoints), {} are applied as BMC objects",
            args.servers,
            args.servers / 2,
            if args.ipv6 { "DHCPv6" } else { "DHCP" },
            args.servers - args.servers / 2
        ));
    }
    let total = args.servers + args.vms;
    if args.vms > 0 {
        step(format_args!(
            "and {} real VMs behind BMC vm-bmc-{}: iPXE, the Debian discovery image, metalprobe; consoles in {}",
            args.vms,
            ferrometal_sim::lab::VM_FIRST_BMC,
            lab.work_dir().join("vms").display()
        ));
    }
    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut last_line = String::new();
    loop {
        if let Some(operator) = lab.operator() {
            operator.ensure_running()?;
        }
        let states = lab.server_states().await?;
        let available = states.get("Available").copied().unwrap_or(0);
        let servers: usize = states.values().sum();
        let mut phases = lab.fleet.phases();
        if let Some(vms) = &lab.vm_fleet {
            for (phase, count) in vms.phases() {
                *phases.entry(phase).or_default() += count;
            }
        }
        let line = format!(
            "{:>4.0}s  Servers {servers}/{total}: {}  |  machines: {}",
            started.elapsed().as_secs_f64(),
            join(states.iter().map(|(k, v)| (k.as_str(), *v))),
            join(phases.iter().map(|(k, v)| (*k, *v))),
        );
        if tty {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else if line.split_once("  ").map(|(_, rest)| rest)
            != last_line.split_once("  ").map(|(_, rest)| rest)
        {
            println!("{line}");
        }
        last_line = line;
        if available == total {
            break;
        }
        if started.elapsed()
            > Duration::from_secs(120 + args.servers as u64 / 5 + 60 * args.vms as u64)
        {
            println!();
            let log = if args.cluster {
                lab.kubectl(&[
                    "logs",
                    &format!("deployment/{RELEASE}"),
                    "-n",
                    NAMESPACE,
                    "--tail=40",
                ])?
            } else {
                lab.operator_log_tail(40)
            };
            bail!("only {available} of {total} Servers became Available; operator log:\n{log}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!();
    step(format_args!(
        "all {total} Servers Available in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    if args.servers <= 20 {
        println!(
            "\n{}",
            kubectl(&lab, &["get", "endpoints.metal.ironcore.dev,bmcs"])?
        );
        println!("{}", kubectl(&lab, &["get", "servers"])?);
    }
    // Claims live where the operator watches them: the chart's boot namespace in a cluster.
    let claim_namespace = if args.cluster { NAMESPACE } else { "default" };
    claim_one(
        &lab,
        claim_namespace,
        &format!("sim-bmc-{}-system-0", args.servers - 1),
    )
    .await?;
    if args.exit_when_available {
        return Ok(());
    }

    let kubectl_path = tools::kubectl().path;
    let token = lab
        .fleet_view_token("fleet-viewer", true)
        .context("create the fleet view's demo viewer")?;
    // In a cluster the fleet view is the Pod's, behind the metrics Service (which the host
    // reaches through kube-proxy).
    let ui_address = if args.cluster {
        let ip = lab.kubectl(&[
            "get",
            "service",
            &format!("{RELEASE}-metrics"),
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])?;
        format!("{}:8080", ip.trim())
    } else {
        format!("127.0.0.1:{ui_port}")
    };
    println!("The fleet view (a demo viewer's token in the link; it leaves the address bar):");
    println!("  http://{ui_address}/ui#token={token}\n");
    println!("In another shell:");
    println!("  export KUBECONFIG={}", lab.kubeconfig().display());
    println!("  alias kubectl={}", kubectl_path.display());
    println!("  kubectl get mep,bmcs,servers");
    println!(
        "  kubectl get server sim-bmc-{}-system-0 -o yaml   # what metalprobe reported",
        args.servers - 1
    );
    println!(
        "  kubectl describe bmc sim-bmc-{}      # conditions and events",
        args.servers - 1
    );
    println!("  kubectl get serverbootconfigurations -A");
    println!("  kubectl get serverclaims -A          # the demo's claim (docs/claims.md)");
    if args.vms > 0 {
        println!(
            "  kubectl get server vm-bmc-{}-system-0 -o yaml   # what a real VM reported",
            ferrometal_sim::lab::VM_FIRST_BMC
        );
        println!(
            "VM consoles (every boot appended): {}/vm-*.console.log",
            lab.work_dir().join("vms").display()
        );
    }
    if args.cluster {
        let helm = tools::helm().path;
        let kubeconfig = lab.kubeconfig();
        println!(
            "The operator runs as a Pod (the chart's Deployment, image {}):",
            image::REPOSITORY
        );
        println!(
            "  kubectl --kubeconfig {} -n {NAMESPACE} get pods -o wide",
            kubeconfig.display()
        );
        println!(
            "  kubectl -n {NAMESPACE} logs deployment/{RELEASE} -f     # with KUBECONFIG exported"
        );
        println!("  kubectl -n {NAMESPACE} get deployment,services,lease");
        println!(
            "  {} --kubeconfig {} -n {NAMESPACE} status {RELEASE}",
            helm.display(),
            kubeconfig.display()
        );
    }
    if let Some(operator) = lab.operator() {
        println!(
            "Operator log: {}/ferrometal-run.log",
            operator.run_dir().display()
        );
    }
    println!();
    println!("Press Ctrl-C to stop and clean up.");
    tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    step("stopping");
    drop(lab);
    Ok(())
}

/// Imports the operator image into the node, installs the chart into a namespace that
/// enforces the `restricted` Pod Security level, and waits for the Pod to be Ready.
async fn install_chart(lab: &Lab) -> anyhow::Result<()> {
    let images = lab.import_operator_image(None)?;
    step(format_args!(
        "imported {} into the node's containerd",
        images.join(", ")
    ));
    lab.kubectl(&["create", "namespace", NAMESPACE])?;
    lab.kubectl(&[
        "label",
        "namespace",
        NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
    ])?;
    let mut values = lab.chart_values();
    ferrometal_sim::lab::chart::merge_values(
        &mut values,
        &serde_json::json!({ "logLevel": "info" }),
    );
    step(format_args!(
        "helm install {RELEASE} charts/ferrometal --namespace {NAMESPACE} (boot Service: NodePort {} on the node's IP)",
        ferrometal_sim::lab::BOOT_NODE_PORT
    ));
    lab.install_chart(RELEASE, NAMESPACE, &values, &[])?;
    let started = Instant::now();
    lab.kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{RELEASE}"),
        "-n",
        NAMESPACE,
        "--timeout=120s",
    ])?;
    step(format_args!(
        "the operator's Pod is Ready ({:.1}s):\n{}",
        started.elapsed().as_secs_f64(),
        lab.kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "wide"])?
    ));
    Ok(())
}

/// The demo's claim: one Server, booted with the discovery image and an ignition of the
/// claim's own (for simulated machines the point is the flow), until it is Bound and the
/// machine runs the claim's OS.
async fn claim_one(lab: &Lab, namespace: &str, server: &str) -> anyhow::Result<()> {
    step(format_args!(
        "claiming {server} (ServerClaim {namespace}/demo)"
    ));
    let ignition = serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/motd", "contents": {"source": "data:,claimed%20by%20the%20ferrometal%20demo"}}]},
    });
    let objects = format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: demo-ignition, namespace: {namespace}}}
stringData:
  ignition: '{ignition}'
---
apiVersion: metal.ironcore.dev/v1alpha1
kind: ServerClaim
metadata: {{name: demo, namespace: {namespace}}}
spec:
  power: \"On\"
  image: {image}
  ignitionSecretRef: {{name: demo-ignition}}
  serverRef: {{name: {server}}}
",
        image = lab.discovery_image,
    );
    let file = lab.work_dir().join("demo-claim.yaml");
    std::fs::write(&file, objects).with_context(|| format!("write {}", file.display()))?;
    kubectl(lab, &["apply", "-f", file.to_str().unwrap_or_default()])?;
    let started = Instant::now();
    loop {
        let phase = kubectl(
            lab,
            &[
                "get",
                "serverclaim",
                "demo",
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.phase}",
            ],
        )?;
        let running = lab
            .fleet
            .machines()
            .filter(|machine| machine.phase() == ferrometal_sim::Phase::Running)
            .count();
        if phase.trim() == "Bound" && running == 1 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "the demo claim is {phase:?} and {running} machines run a claimed OS after 120 s:\n{}",
                kubectl(lab, &["describe", "serverclaim", "demo", "-n", namespace])?
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step(format_args!(
        "{server} Bound and booted the claim's OS in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    println!(
        "\n{}",
        kubectl(lab, &["get", "serverclaims", "-n", namespace])?
    );
    println!("{}", kubectl(lab, &["get", "server", server])?);
    Ok(())
}

fn join<'a>(counts: impl Iterator<Item = (&'a str, usize)>) -> String {
    counts
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn kubectl(lab: &Lab, args: &[&str]) -> anyhow::Result<String> {
    let output = lab
        .control_plane
        .kubectl()?
        .args(args)
        .output()
        .context("run kubectl")?;
    if !output.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
