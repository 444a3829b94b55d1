//! Everything a node leaves on the machine outside the files of its run directory, and how
//! it is removed: processes (container shims, containers), mounts (container root file
//! systems, network namespaces, volumes), iptables chains, the Pods' bridge, the `kubepods`
//! cgroups and the kernel settings kubelet, kube-proxy and the bridge plugin change.
//!
//! A node removes what its components made when dropped ([`clean_up_node`]); its network
//! (the bridge, the guard chains, the saved kernel settings) removes the rest when the control
//! plane drops it ([`clean_up_machine`]). A harness killed before that leaves it behind; the
//! next harness run removes it: the run directory reaper kills and unmounts what names the
//! dead run's directory, and the next node network removes the rest.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::tools;

/// Prefixes of the iptables chains a node's components create: kube-proxy's and kubelet's
/// `KUBE-*`, and the harness's own guard chains, which its network creates.
const CHAIN_PREFIXES: [&str; 2] = ["KUBE-", "FERROMETAL-"];
/// The chains of the node's components alone (not its network's guard chains).
const COMPONENT_CHAIN_PREFIXES: [&str; 1] = ["KUBE-"];

/// The harness's chain in the `filter` table's `FORWARD` chain: Pods reach each other and
/// the host, nothing beyond.
pub(crate) const GUARD_CHAIN: &str = "FERROMETAL-NODE";
/// The harness's chain in the `filter` table's `OUTPUT` chain: what the host sends to a
/// Service address kube-proxy has not translated (yet) would follow the default route off
/// the machine, and is dropped instead. (It cannot judge by the output interface: for
/// packets kube-proxy translated, that is still the one routed to before translation.)
pub(crate) const GUARD_OUTPUT_CHAIN: &str = "FERROMETAL-NODE-OUT";

/// The cgroup kubelet puts Pods under (cgroupfs driver), in every hierarchy.
const POD_CGROUP: &str = "kubepods";

/// Kernel settings that kubelet (`vm.overcommit_memory`, `kernel.panic`, …), kube-proxy
/// (`route_localnet`, conntrack limits) or the bridge plugin (`ip_forward`) may change; their
/// values before the first node start are saved and written back at clean-up.
const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/forwarding",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
];

/// Where the kernel settings are saved between a node's start and its clean-up (kept if the
/// harness is killed, so the next clean-up restores the originals, not the node's values).
fn saved_sysctls_path() -> PathBuf {
    tools::cache_dir().join("node-sysctls")
}

/// Saves the current values of [`SYSCTLS`], unless values saved by an earlier node that was
/// never cleaned up are still waiting to be restored.
pub(crate) fn save_sysctls() -> crate::Result<()> {
    let path = saved_sysctls_path();
    if path.exists() {
        return Ok(());
    }
    let mut saved = String::new();
    for name in SYSCTLS {
        if let Ok(value) = fs::read_to_string(Path::new("/proc/sys").join(name)) {
            saved.push_str(&format!("{name} {}\n", value.trim()));
        }
    }
    fs::write(&path, saved).map_err(crate::Error::io(format!("write {}", path.display())))
}

/// Writes the saved kernel settings back where they differ, then forgets them.
fn restore_sysctls(problems: &mut Vec<String>) {
    let path = saved_sysctls_path();
    let Ok(saved) = fs::read_to_string(&path) else {
        return;
    };
    for line in saved.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let file = Path::new("/proc/sys").join(name);
        let current = fs::read_to_string(&file).unwrap_or_default();
        if current.trim() != value
            && let Err(error) = fs::write(&file, value)
        {
            problems.push(format!("cannot restore {name} to {value}: {error}"));
        }
    }
    if let Err(error) = fs::remove_file(&path) {
        problems.push(format!("cannot remove {}: {error}", path.display()));
    }
}

/// Runs `program args…`, returning its standard output when it succeeds.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Process ids of every live process whose command line names a path under `dir` (the
/// node's own components and containerd's shims, whose `-address` is its socket), except
/// this process.
fn processes_naming(dir: &Path) -> Vec<u32> {
    let mut needle = dir.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .windows(needle.len())
                    .any(|window| window == needle.as_slice())
            })
        })
        .collect()
}

fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // It may have exited meanwhile; gone either way.
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Whether `pid` is gone or a zombie.
fn is_dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Kills `pids` with `SIGKILL` and waits up to five seconds until they are gone.
fn kill_and_wait(pids: &[u32], what: &str, problems: &mut Vec<String>) {
    for pid in pids {
        kill(*pid);
    }
    let started = Instant::now();
    while !pids.iter().all(|pid| is_dead(*pid)) {
        if started.elapsed() > Duration::from_secs(5) {
            problems.push(format!("{what} survived SIGKILL: {pids:?}"));
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points of this mount namespace whose fields satisfy `wanted(mount point, type)`.
fn mounts(wanted: impl Fn(&Path, &str) -> bool) -> Vec<PathBuf> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = unescape_mount_path(left.split(' ').nth(4)?);
            let fs_type = right.split(' ').next()?;
            wanted(&point, fs_type).then_some(point)
        })
        .collect()
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 4).filter(|digits| {
            bytes[i] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        if let Some(digits) = escape {
            let value = digits
                .iter()
                .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// Lazily unmounts everything mounted under `dir`, deepest first: container root file
/// systems, sandbox `/dev/shm`, network namespaces, kubelet's volume mounts.
fn unmount_under(dir: &Path, problems: &mut Vec<String>) {
    let mut points = mounts(|point, _| point.starts_with(dir) && point != dir);
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in points {
        let point = point.to_string_lossy();
        if let Err(message) = output("umount", &["--lazy", &point]) {
            problems.push(message);
        }
    }
}

/// Clean-up of one run directory, whoever owned it: kills the processes that name it,
/// unmounts what is mounted under it and forgets its sandboxes' CNI results.
pub(crate) fn clean_up_run_dir(dir: &Path, problems: &mut Vec<String>) {
    let pids = processes_naming(dir);
    kill_and_wait(&pids, "processes of the node", problems);
    unmount_under(dir, problems);
    let sandboxes = dir.join("containerd/root/io.containerd.grpc.v1.cri/sandboxes");
    let socket = dir.join("containerd.sock");
    if let Ok(entries) = fs::read_dir(sandboxes) {
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            // containerd's loopback attachments are cached under the network name
            // `cni-loopback`, shared with any other CRI runtime: only these sandboxes' go.
            let cached = Path::new(CNI_CACHE).join(format!("cni-loopback-{id}-lo"));
            remove_file_if_present(&cached, problems);
            // A shim killed before containerd deleted its task leaves its socket behind.
            remove_file_if_present(&shim_socket(&socket, &id), problems);
        }
    }
}

/// Where containerd 1.6's runc shim for sandbox `id` listens: `/run/containerd/s/` and the
/// SHA-256 of `<containerd socket>/k8s.io/<id>`, whatever containerd's state directory.
fn shim_socket(containerd_socket: &Path, id: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let key = containerd_socket.join("k8s.io").join(id);
    let hash = Sha256::digest(key.as_os_str().as_encoded_bytes());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    Path::new(SHIM_SOCKETS).join(hex)
}

/// The directory containerd 1.6's shims make their sockets in.
const SHIM_SOCKETS: &str = "/run/containerd/s";

fn remove_file_if_present(path: &Path, problems: &mut Vec<String>) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => problems.push(format!("cannot remove {}: {error}", path.display())),
    }
}

/// Removes `dirs` in order where they are empty (others' files keep them).
fn remove_empty_dirs(dirs: &[&str]) {
    for dir in dirs {
        // Not empty or not there: either way nothing of the node's is left in it.
        let _ = fs::remove_dir(dir);
    }
}

/// Cgroup hierarchies' mount points (cgroup v1 controllers and a v2 unified tree alike).
fn cgroup_roots() -> Vec<PathBuf> {
    mounts(|_, fs_type| fs_type == "cgroup" || fs_type == "cgroup2")
}

/// Every directory of the tree at `root`, children before their parents.
fn directories_bottom_up(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                    .map(|entry| entry.path()),
            );
        }
        out.push(dir);
    }
    out.reverse();
    out
}

/// Kills every process in a `kubepods` cgroup (what containers survived their shims) and
/// removes the `kubepods` cgroups from every hierarchy.
fn remove_pod_cgroups(problems: &mut Vec<String>) {
    let trees: Vec<PathBuf> = cgroup_roots()
        .into_iter()
        .map(|root| root.join(POD_CGROUP))
        .filter(|tree| tree.is_dir())
        .collect();
    let mut pids = Vec::new();
    for tree in &trees {
        for dir in directories_bottom_up(tree) {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            pids.extend(
                procs
                    .lines()
                    .filter_map(|pid| pid.trim().parse::<u32>().ok()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    kill_and_wait(&pids, "processes in the kubepods cgroups", problems);
    for tree in &trees {
        for dir in directories_bottom_up(tree) {
            // A cgroup can be removed only once its last task is gone; that takes a moment
            // after SIGKILL.
            let started = Instant::now();
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(error) if error.kind() == ErrorKind::NotFound => break,
                    Err(error) if started.elapsed() > Duration::from_secs(5) => {
                        problems.push(format!("cannot remove cgroup {}: {error}", dir.display()));
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

/// Whether an iptables chain is one of the node's.
fn is_node_chain(chain: &str) -> bool {
    has_prefix(chain, &CHAIN_PREFIXES)
}

fn has_prefix(chain: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| chain.starts_with(prefix))
}

/// An `iptables-restore --noflush` script that deletes every chain named with one of
/// `prefixes` from the rules in `saved` (`iptables-save` output): first the rules of other
/// chains that jump to one, then the chains' rules, then the chains. `None` if there is
/// nothing to delete.
fn chain_removal_script(saved: &str, prefixes: &[&str]) -> Option<String> {
    let is_node_chain = |chain: &str| has_prefix(chain, prefixes);
    let mut script = String::new();
    let mut table = String::new();
    let mut jumps = Vec::new();
    let mut chains = Vec::new();
    let mut flush_table = |table: &str, jumps: &mut Vec<String>, chains: &mut Vec<String>| {
        if !table.is_empty() && (!jumps.is_empty() || !chains.is_empty()) {
            script.push_str(&format!("*{table}\n"));
            for rule in jumps.drain(..) {
                script.push_str(&format!("-D{rule}\n"));
            }
            for chain in chains.iter() {
                script.push_str(&format!("-F {chain}\n"));
            }
            for chain in chains.drain(..) {
                script.push_str(&format!("-X {chain}\n"));
            }
            script.push_str("COMMIT\n");
        }
        jumps.clear();
        chains.clear();
    };
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            flush_table(&table, &mut jumps, &mut chains);
            name.clone_into(&mut table);
        } else if let Some(chain) = line.strip_prefix(':') {
            let chain = chain.split(' ').next().unwrap_or_default();
            if is_node_chain(chain) {
                chains.push(chain.to_owned());
            }
        } else if let Some(rule) = line.strip_prefix("-A") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            let target = rule
                .split_whitespace()
                .skip_while(|word| *word != "-j" && *word != "-g")
                .nth(1)
                .unwrap_or_default();
            if !is_node_chain(chain) && is_node_chain(target) {
                jumps.push(rule.to_owned());
            }
        } else if line == "COMMIT" {
            flush_table(&table, &mut jumps, &mut chains);
            table.clear();
        }
    }
    (!script.is_empty()).then_some(script)
}

/// The node chains still present, as `<iptables>/<table>/<chain>`.
pub(crate) fn node_chains() -> Vec<String> {
    let mut found = Vec::new();
    for program in ["iptables", "ip6tables"] {
        let Ok(saved) = output(&format!("{program}-save"), &[]) else {
            continue;
        };
        let mut table = "";
        for line in saved.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = name;
            } else if let Some(chain) = line.strip_prefix(':') {
                let chain = chain.split(' ').next().unwrap_or_default();
                if is_node_chain(chain) {
                    found.push(format!("{program}/{table}/{chain}"));
                }
            }
        }
    }
    found
}

/// Runs `kube-proxy --cleanup`, then deletes whatever chain named with one of `prefixes` is
/// left (kubelet's, the guard chains, or all of them if kube-proxy is not installed) with
/// `iptables-restore`.
fn remove_chains(prefixes: &[&str], problems: &mut Vec<String>) {
    if !node_chains()
        .iter()
        .any(|chain| has_prefix(chain.rsplit('/').next().unwrap_or_default(), prefixes))
    {
        return;
    }
    if let Ok(kube_proxy) = tools::kube_proxy().require()
        && let Err(message) = output(&kube_proxy.to_string_lossy(), &["--cleanup"])
    {
        problems.push(message);
    }
    for program in ["iptables", "ip6tables"] {
        let Ok(saved) = output(&format!("{program}-save"), &[]) else {
            continue;
        };
        let Some(script) = chain_removal_script(&saved, prefixes) else {
            continue;
        };
        let restore = Command::new(format!("{program}-restore"))
            .args(["--noflush", "--wait"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let result = restore.and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes())?;
            }
            child.wait_with_output()
        });
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "{program}-restore could not delete the node chains ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(error) => problems.push(format!("cannot run {program}-restore: {error}")),
        }
    }
}

/// Whether a network interface named `name` exists.
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Where the CNI library caches each attachment's result (not configurable in containerd
/// 1.6); entries are named `<network>-<container>-<interface>`.
const CNI_CACHE: &str = "/var/lib/cni/results";

/// Clean-up of what a node's components leave outside its run directory, but not its
/// network: the `kubepods` cgroups, kube-proxy's and kubelet's chains, CNI results, kubelet's
/// device-plugin socket. Run with the node lock held (by the node's network): all of them
/// are taken to be the node's.
pub(crate) fn clean_up_node(network: &str, problems: &mut Vec<String>) {
    remove_pod_cgroups(problems);
    remove_chains(&COMPONENT_CHAIN_PREFIXES, problems);
    remove_cni_results(network, problems);
    remove_sockets(problems);
}

/// Clean-up of everything a node and its network leave outside the node's run directory:
/// [`clean_up_node`]'s, the guard chains, the bridge, and the kernel settings are restored.
/// Run with the node lock held: all `kubepods` cgroups and node chains are taken to be the
/// node's.
pub(crate) fn clean_up_machine(bridge: &str, network: &str, problems: &mut Vec<String>) {
    remove_pod_cgroups(problems);
    remove_chains(&CHAIN_PREFIXES, problems);
    if link_exists(bridge) {
        // Only a bridge can be the node's; anything else of that name is not touched.
        let is_bridge = Path::new("/sys/class/net")
            .join(bridge)
            .join("bridge")
            .is_dir();
        if !is_bridge {
            problems.push(format!(
                "{bridge} exists and is not a bridge; choose another NetworkOptions::bridge"
            ));
        } else if let Err(message) = output("ip", &["link", "delete", bridge]) {
            problems.push(message);
        }
    }
    remove_cni_results(network, problems);
    remove_sockets(problems);
    restore_sysctls(problems);
}

/// Removes the CNI result cache entries of `network`.
fn remove_cni_results(network: &str, problems: &mut Vec<String>) {
    if let Ok(entries) = fs::read_dir(CNI_CACHE) {
        let prefix = format!("{network}-");
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_file_if_present(&entry.path(), problems);
            }
        }
    }
}

/// Removes kubelet's device-plugin socket, which ignores `--root-dir`, and the directories
/// kubelet, the CNI library, containerd's shims (which make their sockets in
/// /run/containerd/s whatever its state directory) and `ctr` made, where empty.
fn remove_sockets(problems: &mut Vec<String>) {
    remove_file_if_present(Path::new(DEVICE_PLUGIN_SOCKET), problems);
    remove_empty_dirs(&[
        "/var/lib/kubelet/device-plugins",
        "/var/lib/kubelet",
        CNI_CACHE,
        "/var/lib/cni",
        SHIM_SOCKETS,
        // `ctr` makes a FIFO directory, and a shim started only to delete a task whose
        // shim is gone uses runc's default root.
        "/run/containerd/fifo",
        "/run/containerd/runc/k8s.io",
        "/run/containerd/runc",
        "/run/containerd",
    ]);
}

/// Where kubelet always puts its device-plugin registration socket.
const DEVICE_PLUGIN_SOCKET: &str = "/var/lib/kubelet/device-plugins/kubelet.sock";

/// What a node left on the machine, in words; empty when nothing. For tests that check
/// the clean-up.
pub fn leftovers(bridge: &str) -> Vec<String> {
    let mut found: Vec<String> = node_chains()
        .into_iter()
        .map(|chain| format!("iptables chain {chain}"))
        .collect();
    if link_exists(bridge) {
        found.push(format!("network interface {bridge}"));
    }
    for tree in cgroup_roots()
        .into_iter()
        .map(|root| root.join(POD_CGROUP))
        .filter(|tree| tree.exists())
    {
        found.push(format!("cgroup {}", tree.display()));
    }
    let runs = crate::process::runs_dir();
    for point in mounts(|point, _| point.starts_with(&runs)) {
        found.push(format!("mount {}", point.display()));
    }
    if saved_sysctls_path().exists() {
        found.push(String::from("kernel settings not restored"));
    }
    if fs::symlink_metadata(DEVICE_PLUGIN_SOCKET).is_ok() {
        found.push(format!("kubelet socket {DEVICE_PLUGIN_SOCKET}"));
    }
    if let Ok(entries) = fs::read_dir(SHIM_SOCKETS) {
        found.extend(
            entries
                .flatten()
                .map(|entry| format!("shim socket {}", entry.path().display())),
        );
    }
    if let Ok(entries) = fs::read_dir(CNI_CACHE) {
        found.extend(
            entries
                .flatten()
                .map(|entry| format!("CNI result {}", entry.path().display())),
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = "\
# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
:OTHER - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -j OTHER
-A KUBE-SERVICES -d 10.0.0.10/32 -j KUBE-SVC-X
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:FERROMETAL-NODE - [0:0]
-A FORWARD -j FERROMETAL-NODE
-A FERROMETAL-NODE -i br0 ! -o br0 -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
COMMIT
";

    #[test]
    fn the_removal_script_unhooks_flushes_and_deletes_only_node_chains() {
        let script = chain_removal_script(SAVED, &CHAIN_PREFIXES).expect("script");
        assert_eq!(
            script,
            "*nat\n\
             -D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -F KUBE-SERVICES\n-F KUBE-SVC-X\n-X KUBE-SERVICES\n-X KUBE-SVC-X\nCOMMIT\n\
             *filter\n-D FORWARD -j FERROMETAL-NODE\n-F FERROMETAL-NODE\n-X FERROMETAL-NODE\nCOMMIT\n"
        );
    }

    #[test]
    fn a_node_alone_removes_its_components_chains_and_keeps_the_guard_chains() {
        let script = chain_removal_script(SAVED, &COMPONENT_CHAIN_PREFIXES).expect("script");
        assert!(script.contains("-X KUBE-SERVICES\n"), "{script}");
        assert!(!script.contains("FERROMETAL"), "{script}");
    }

    #[test]
    fn nothing_is_removed_without_node_chains() {
        assert_eq!(
            chain_removal_script("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", &CHAIN_PREFIXES),
            None
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(
            unescape_mount_path("/run/a\\040b"),
            PathBuf::from("/run/a b")
        );
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }
}
