//! Starts real components through the harness and holds them until killed.
//!
//! `testenv-hold [sushy] [control-plane]` prints one line `READY <pid> <pid> …` with the
//! component process ids once everything is up, then sleeps. The control plane is the one
//! tests get from `ControlPlane::start()`: ferrometal's CRDs from `crds/` are installed and
//! `Established` before `READY`, and a `CRDS <name> …` line lists them. The harness's own
//! tests kill this process to prove that no component outlives it; it is also a quick way to
//! get a BMC or an API server to poke at by hand (or to run `ferrometal run` against).

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), testenv::Error> {
    let mut pids = Vec::new();
    let mut emulators = Vec::new();
    let mut control_planes = Vec::new();
    for what in std::env::args().skip(1) {
        match what.as_str() {
            "sushy" => {
                let emulator =
                    testenv::SushyEmulator::start(testenv::SushyOptions::default()).await?;
                pids.push(emulator.pid());
                emulators.push(emulator);
            }
            "control-plane" => {
                let control_plane = testenv::ControlPlane::start().await?;
                println!("KUBECONFIG={}", control_plane.kubeconfig_path().display());
                println!("CRDS {}", control_plane.crds().join(" "));
                pids.extend(control_plane.pids());
                control_planes.push(control_plane);
            }
            other => {
                eprintln!("testenv-hold: unknown component {other:?} (use sushy or control-plane)")
            }
        }
    }
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("READY {}", pids.join(" "));
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
