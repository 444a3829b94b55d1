//! `make demo`: a local control plane, an emulated Redfish BMC with a few servers, and
//! `ferrometal run` discovering them through both paths (an Endpoint, as DHCP would create,
//! and a BMC applied directly). Runs until Ctrl-C.
//!
//! The first-boot and fleet-demo issues (#9, #11) take the servers on to `Available` and
//! scale the fleet with the simulator.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use testenv::{BasicAuth, ControlPlane, FakeSystem, Program, SushyEmulator, SushyOptions, tools};

use crate::run::{checked, step};
use crate::{plugins, setup};

/// Servers behind the emulated BMC.
const SERVERS: usize = 3;
/// The emulated BMC's password (also in the demo's MAC database).
const BMC_PASSWORD: &str = "demo-password";

/// Runs the demo until interrupted.
pub fn run() -> anyhow::Result<()> {
    setup::all()?;
    plugins::build()?;
    let root = tools::workspace_root();
    step("building ferrometal");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    checked(
        Command::new(cargo)
            .args(["build", "--quiet", "-p", "ferrometal"])
            .current_dir(&root),
    )?;
    let runtime = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
    runtime.block_on(demo(&root))
}

async fn demo(root: &Path) -> anyhow::Result<()> {
    let demo_dir = root.join("target").join("demo");
    if demo_dir.exists() {
        fs::remove_dir_all(&demo_dir).with_context(|| format!("remove {}", demo_dir.display()))?;
    }
    fs::create_dir_all(demo_dir.join("plugins"))
        .with_context(|| format!("create {}", demo_dir.display()))?;

    step("starting the local control plane (kube-apiserver + etcd)");
    let control_plane = ControlPlane::start().await?;
    let kubeconfig = demo_dir.join("kubeconfig");
    fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
        .with_context(|| format!("write {}", kubeconfig.display()))?;

    step(format_args!(
        "starting an emulated Redfish BMC with {SERVERS} servers (sushy-emulator, TLS, Basic auth)"
    ));
    let bmc = SushyEmulator::start(SushyOptions {
        systems: (0..SERVERS)
            .map(|i| FakeSystem {
                uuid: format!("d3e0c0de-0000-4000-8000-0000000000{i:02}"),
                name: format!("demo-server-{i}"),
                power_state: testenv::PowerState::Off,
                boot_mode: Default::default(),
                macs: vec![format!("52:54:00:d0:10:{i:02x}")],
            })
            .collect(),
        auth: Some(BasicAuth {
            username: String::from("admin"),
            password: String::from(BMC_PASSWORD),
        }),
        tls: true,
        ..Default::default()
    })
    .await?;

    // Only the bundled plugins, so each world has one active plugin.
    for name in ["macdb", "redfish"] {
        let component = testenv::components::component(name)?;
        fs::copy(
            &component,
            demo_dir.join("plugins").join(format!("{name}.wasm")),
        )
        .with_context(|| format!("copy {}", component.display()))?;
    }
    let macdb = demo_dir.join("macdb.yaml");
    fs::write(
        &macdb,
        format!(
            "macPrefixes:\n- macPrefix: \"52:54:00:d0\"\n  manufacturer: Sushy\n  protocol: Redfish\n  protocolScheme: https\n  port: {}\n  type: bmc\n  defaultCredentials:\n  - username: admin\n    password: factory-default\n  - username: admin\n    password: {BMC_PASSWORD}\n",
            bmc.port()
        ),
    )
    .with_context(|| format!("write {}", macdb.display()))?;
    let ca = demo_dir.join("bmc-ca.pem");
    fs::write(&ca, bmc.ca_cert_pem().unwrap_or_default())
        .with_context(|| format!("write {}", ca.display()))?;

    step("starting ferrometal run");
    let mut operator = Command::new(root.join("target").join("debug").join("ferrometal"));
    operator
        .arg("run")
        .arg("--plugin-dir")
        .arg(demo_dir.join("plugins"))
        .arg("--mac-db")
        .arg(&macdb)
        .arg("--bmc-ca-file")
        .arg(&ca)
        .args([
            "--grant",
            "credentials/reveal",
            "--credential-retry-seconds",
            "2",
        ])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--boot-bind-address", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env("FERROMETAL_LOG", "info");
    let mut operator = Program::start("ferrometal-run", operator)?;

    step("discovering: an Endpoint (as DHCP would create it) and a BMC applied directly");
    let objects = format!(
        "apiVersion: metal.ironcore.dev/v1alpha1\nkind: Endpoint\nmetadata: {{name: rack1-bmc}}\nspec: {{macAddress: '52:54:00:d0:00:01', ip: 127.0.0.1}}\n\
         ---\napiVersion: metal.ironcore.dev/v1alpha1\nkind: BMCSecret\nmetadata: {{name: rack2-bmc}}\nstringData: {{username: admin, password: {BMC_PASSWORD}}}\n\
         ---\napiVersion: metal.ironcore.dev/v1alpha1\nkind: BMC\nmetadata: {{name: rack2-bmc}}\nspec:\n  access: {{macAddress: '52:54:00:d0:00:02', ip: 127.0.0.1}}\n  bmcSecretRef: {{name: rack2-bmc}}\n  protocol: {{name: Redfish, port: {}, scheme: https}}\n",
        bmc.port()
    );
    kubectl_apply(&control_plane, &objects)?;

    let started = Instant::now();
    let table = loop {
        operator.ensure_running()?;
        let table = kubectl(&control_plane, &["get", "servers", "-o", "wide"])?;
        let servers = table
            .lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .count();
        if servers >= 2 * SERVERS {
            break table;
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "only {servers} of {} Servers appeared in 3 minutes; operator log:\n{}",
                2 * SERVERS,
                operator.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    step(format_args!(
        "{} Servers discovered in {:.0}s",
        2 * SERVERS,
        started.elapsed().as_secs_f64()
    ));
    println!("\n{}", kubectl(&control_plane, &["get", "mep,bmcs"])?);
    println!("{table}");

    let kubectl_path = tools::kubectl().path;
    println!("In another shell:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  alias kubectl={}", kubectl_path.display());
    println!("  kubectl get mep,bmcs,servers");
    println!(
        "  kubectl describe bmc rack1-bmc      # conditions and events; the first default credential was refused"
    );
    println!("  kubectl get bmcsecret rack1-bmc -o yaml");
    println!(
        "  kubectl apply -f {}",
        root.join("examples").join("seed").display()
    );
    println!(
        "Operator log: {}/ferrometal-run.log",
        operator.run_dir().display()
    );
    println!();
    println!("Press Ctrl-C to stop and clean up.");
    tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    step("stopping");
    drop(operator);
    drop(bmc);
    drop(control_plane);
    let _ = fs::remove_file(&kubeconfig);
    Ok(())
}

fn kubectl(control_plane: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let output = control_plane
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

fn kubectl_apply(control_plane: &ControlPlane, yaml: &str) -> anyhow::Result<()> {
    let mut child = control_plane
        .kubectl()?
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run kubectl")?;
    child
        .stdin
        .take()
        .context("kubectl stdin")?
        .write_all(yaml.as_bytes())
        .context("write to kubectl")?;
    let output = child.wait_with_output().context("wait for kubectl")?;
    if !output.status.success() {
        bail!("kubectl apply: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
