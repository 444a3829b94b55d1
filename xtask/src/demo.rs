//! `make demo`: a local control plane with ferrometal's CRDs, kept running until Ctrl-C.
//!
//! The fleet-demo issue (#11) extends this with the OCI registry, the fleet simulator and the
//! operator itself.

use std::fs;

use anyhow::Context;
use testenv::{ControlPlane, tools};

use crate::run::step;
use crate::setup;

/// Runs the demo until interrupted.
pub fn run() -> anyhow::Result<()> {
    setup::kubernetes()?;
    setup::etcd()?;
    let runtime = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
    runtime.block_on(async {
        step("starting the local control plane (kube-apiserver + etcd)");
        let control_plane = ControlPlane::start().await?;
        let demo_dir = tools::workspace_root().join("target").join("demo");
        fs::create_dir_all(&demo_dir).with_context(|| format!("create {}", demo_dir.display()))?;
        let kubeconfig = demo_dir.join("kubeconfig");
        fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
            .with_context(|| format!("write {}", kubeconfig.display()))?;
        let kubectl = tools::kubectl().path;
        let examples = tools::workspace_root().join("examples").join("seed");
        let crds = if control_plane.crds().is_empty() {
            String::from("(none yet)")
        } else {
            control_plane.crds().join(", ")
        };
        println!();
        println!(
            "ferrometal demo control plane is up at {}",
            control_plane.server_url()
        );
        println!("CRDs installed: {crds}");
        println!();
        println!("In another shell:");
        println!("  export KUBECONFIG={}", kubeconfig.display());
        println!("  alias kubectl={}", kubectl.display());
        println!("  kubectl api-resources --api-group=metal.ironcore.dev");
        println!(
            "  kubectl create namespace defauilt   # the seed SBC's namespace, spelled as given"
        );
        println!("  kubectl apply -f {}", examples.display());
        println!("  kubectl get mep,bmcs,servers,sbc -A");
        println!("  kubectl explain server.spec");
        println!();
        println!("Press Ctrl-C to stop and clean up.");
        tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
        step("stopping the control plane");
        drop(control_plane);
        let _ = fs::remove_file(&kubeconfig);
        anyhow::Ok(())
    })
}
