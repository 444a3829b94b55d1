//! No component outlives the harness that started it, even when the harness is killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `pid` is gone (or a zombie waiting for a reaper that may never come).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

fn wait_until_dead(pid: u32, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn killing_the_harness_kills_apiserver_etcd_and_emulator() {
    let mut holder = Command::new(env!("CARGO_BIN_EXE_testenv-hold"))
        .args(["control-plane", "sushy"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start testenv-hold");
    let stdout = holder.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("READY"))
        .expect("testenv-hold printed READY");
    let pids: Vec<u32> = ready
        .split_whitespace()
        .skip(1)
        .map(|pid| pid.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 3, "apiserver, etcd and sushy pids in {ready:?}");
    assert!(
        pids.iter().all(|pid| !is_dead(*pid)),
        "components run while the harness lives"
    );

    holder.kill().expect("SIGKILL testenv-hold");
    holder.wait().expect("reap testenv-hold");

    for pid in pids {
        assert!(
            wait_until_dead(pid, Duration::from_secs(10)),
            "component pid {pid} survived its harness"
        );
    }
}

#[test]
fn leftovers_of_a_dead_run_are_reaped_by_the_next_run() {
    // A run directory whose owner is gone and whose recorded child (started without the
    // harness, so nothing killed it) still runs: what a harness killed before it could
    // protect its children would leave behind.
    let mut dead = Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("wait true");
    let dir = testenv::tools::cache_dir()
        .join("run")
        .join(format!("{dead_pid}-leftover-0"));
    std::fs::create_dir_all(&dir).expect("create run dir");
    let mut survivor = Command::new("sh")
        .arg("-c")
        .arg("sleep 600; : \"$0\"")
        .arg(&dir)
        .spawn()
        .expect("spawn survivor");
    std::fs::write(dir.join("pids"), format!("{} survivor\n", survivor.id())).expect("pids");

    // An unrelated process recorded under a pid that does not mention the directory must not
    // be touched.
    let mut bystander = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn bystander");
    let other_dir = testenv::tools::cache_dir()
        .join("run")
        .join(format!("{dead_pid}-leftover-1"));
    std::fs::create_dir_all(&other_dir).expect("create run dir");
    std::fs::write(
        other_dir.join("pids"),
        format!("{} bystander\n", bystander.id()),
    )
    .expect("pids");

    testenv::reap_dead_runs();

    let started = Instant::now();
    let status = loop {
        if let Some(status) = survivor.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.is_some(), "the leftover process was killed");
    assert!(
        !Path::new(&dir).exists(),
        "the stale run directory was removed"
    );
    assert!(
        !other_dir.exists(),
        "the other stale run directory was removed"
    );
    assert!(
        bystander.try_wait().expect("try_wait").is_none(),
        "a process that does not belong to the run is left alone"
    );
    bystander.kill().expect("kill bystander");
    bystander.wait().expect("wait bystander");
}
