//! A simulated machine: power, the boot override its BMC stores, and what it does when it
//! starts — boot from disk, or network-boot like firmware: (DHCP,) iPXE script, kernel and
//! initrd, the discovery ignition, and the real metalprobe code against a generated
//! `/sys` + `/proc` tree whose UUID and MACs match what its BMC reports.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use testenv::{FakeMachine, FakeNic, FakePciDevice};
use tokio::task::AbortHandle;

use crate::dhcp::ClientClass;
use crate::firmware::{self, Step};
use crate::lease::FleetDhcp;
use crate::spec::{MANUFACTURER, MachineSpec};

/// What the machine's discovery system does with its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// Runs metalprobe and reports.
    #[default]
    Report,
    /// Hangs before reporting (a probe that never arrives).
    Never,
    /// Reports with a wrong token.
    WrongToken,
}

/// How machines behave, fleet-wide.
#[derive(Debug, Clone, Default)]
pub struct MachineBehaviour {
    /// Firmware start-up time before the network boot begins.
    pub boot_delay: Duration,
    /// How late power changes take effect (real BMCs apply them seconds later).
    pub power_delay: Duration,
    /// What the discovery system does.
    pub probe: Probe,
}

/// Where a machine is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Powered off.
    Off,
    /// On, booted from its disk (no network boot was asked for).
    LocalDisk,
    /// On, firmware starting / asking DHCP.
    Firmware,
    /// Following the iPXE script.
    Ipxe,
    /// The discovery system runs metalprobe.
    Probing,
    /// metalprobe's report was accepted.
    Reported,
    /// Booted an OS whose ignition runs no metalprobe (a claim's OS): it runs.
    Running,
    /// The boot went wrong; the machine waits for the next power action.
    Failed(String),
}

impl Phase {
    /// A short name, for progress tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::LocalDisk => "local-disk",
            Self::Firmware => "firmware",
            Self::Ipxe => "ipxe",
            Self::Probing => "probing",
            Self::Reported => "reported",
            Self::Running => "running",
            Self::Failed(_) => "failed",
        }
    }
}

/// A probe report the registry acknowledged (answered with a success status, which it does
/// only once the report is stored in the Server's status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgedReport {
    /// The machine's start it was made in (1 for the first).
    pub boot: u32,
    /// The report's collection time as metalprobe stated it (RFC 3339).
    pub collected_at: String,
}

/// The boot override as the BMC stores it (Redfish `ComputerSystem.Boot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSettings {
    /// `BootSourceOverrideTarget`.
    pub target: String,
    /// `BootSourceOverrideEnabled`: `Once`, `Continuous` or `Disabled`.
    pub enabled: String,
    /// `BootSourceOverrideMode`: `UEFI` or `Legacy`.
    pub mode: String,
    /// `HttpBootUri`.
    pub http_boot_uri: Option<String>,
}

impl Default for BootSettings {
    fn default() -> Self {
        Self {
            target: String::from("None"),
            enabled: String::from("Disabled"),
            mode: String::from("UEFI"),
            http_boot_uri: None,
        }
    }
}

/// Where a starting machine boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// Its own disk.
    Disk,
    /// PXE: DHCP, then iPXE.
    Pxe,
    /// UEFI HTTP boot from this URI (or the one DHCP names).
    Http(Option<String>),
}

impl BootSettings {
    /// Where the next start boots from; a `Once` override is used up.
    pub fn take_next(&mut self) -> BootSource {
        if self.enabled == "Disabled" {
            return BootSource::Disk;
        }
        let source = match self.target.as_str() {
            "Pxe" => BootSource::Pxe,
            "UefiHttp" => BootSource::Http(self.http_boot_uri.clone()),
            _ => BootSource::Disk,
        };
        if self.enabled == "Once" {
            self.enabled = String::from("Disabled");
            self.target = String::from("None");
        }
        source
    }
}

/// What every machine of a fleet shares for booting.
#[derive(Debug)]
pub struct BootEnvironment {
    /// HTTP client for the boot server and registry.
    pub http: reqwest::Client,
    /// The boot server's base URL: the chain script is at `<url>/ipxe` when there is no
    /// DHCP to name it.
    pub boot_url: Option<String>,
    /// DHCP client (v4 or v6), when machines ask DHCP for their boot file.
    pub dhcp: Option<FleetDhcp>,
    /// Fleet-wide behaviour.
    pub behaviour: MachineBehaviour,
    /// Where machine trees are written while metalprobe reads them.
    pub work_dir: PathBuf,
    /// Run machines as real QEMU VMs instead of simulating them.
    pub vm: Option<crate::vm::VmOptions>,
    /// `(from, to)`: simulated machines reach URLs naming host `from` at `to` instead — they
    /// share a fleet's boot server URL with VMs, which see the host as `10.0.2.2`.
    pub host_alias: Option<(String, String)>,
}

impl BootEnvironment {
    /// `url` as a simulated machine reaches it.
    fn local_url(&self, url: &str) -> String {
        match &self.host_alias {
            Some((from, to)) => url.replacen(&format!("//{from}:"), &format!("//{to}:"), 1),
            None => url.to_owned(),
        }
    }
}

#[derive(Debug)]
struct State {
    powered: bool,
    boot: BootSettings,
    phase: Phase,
    probe: Probe,
    task: Option<AbortHandle>,
    boots: u32,
    /// Failed script lines the boot scripts went on from (`|| sleep N`) and network boots
    /// the firmware tried again.
    script_retries: u32,
    /// Ignition fetches tried again.
    ignition_retries: u32,
    /// The running QEMU process of a VM machine (dropping it kills it).
    vm: Option<testenv::Program>,
    /// The HTTP client of the current boot, bound to its DHCP lease (`None`: the shared
    /// one, from any local address).
    http: Option<reqwest::Client>,
    /// The address DHCP (v4 or v6) leased its latest network boot.
    leased: Option<std::net::IpAddr>,
    /// Every report the registry acknowledged, oldest first.
    acknowledged: Vec<AcknowledgedReport>,
    /// Every reset type accepted, oldest first.
    resets: Vec<String>,
    /// The ignition of the latest boot into an OS that is not the discovery system.
    ignition: Option<serde_json::Value>,
}

/// Where a script command leaves the firmware.
enum Flow {
    /// On to the next command.
    Next,
    /// A script was chained: its URL and text.
    Chained(String, String),
    /// The loaded kernel was started.
    Booted,
    /// Off to the local disk.
    LocalBoot,
}

/// Network boots the firmware tries before it gives up (see `Machine::firmware_fetch`).
const FIRMWARE_BOOT_TRIES: u32 = 5;

/// The pause between the firmware's network boots.
const FIRMWARE_BOOT_PAUSE: std::time::Duration = std::time::Duration::from_secs(3);

/// Attempts of the ignition fetch, a second apart (as `ferrometal-ignite`'s default).
const IGNITION_ATTEMPTS: u32 = 60;

/// One simulated machine.
#[derive(Debug)]
pub struct Machine {
    spec: MachineSpec,
    env: Arc<BootEnvironment>,
    state: Mutex<State>,
}

/// A Redfish reset type the machine does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reset type {0}")]
pub struct UnknownReset(pub String);

/// The reset types machines accept (`ForceOn` is `On`: a simulated machine has no power
/// button to override).
pub const RESET_TYPES: [&str; 7] = [
    "On",
    "ForceOn",
    "ForceOff",
    "GracefulShutdown",
    "ForceRestart",
    "GracefulRestart",
    "PowerCycle",
];

impl Machine {
    /// A powered-off machine.
    pub fn new(spec: MachineSpec, env: Arc<BootEnvironment>) -> Self {
        let probe = env.behaviour.probe;
        Self {
            spec,
            env,
            state: Mutex::new(State {
                powered: false,
                boot: BootSettings::default(),
                phase: Phase::Off,
                probe,
                task: None,
                boots: 0,
                script_retries: 0,
                ignition_retries: 0,
                vm: None,
                http: None,
                leased: None,
                acknowledged: Vec::new(),
                resets: Vec::new(),
                ignition: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the machine is.
    pub fn spec(&self) -> &MachineSpec {
        &self.spec
    }

    /// Whether it is powered on.
    pub fn powered(&self) -> bool {
        self.state().powered
    }

    /// Where it is in its life.
    pub fn phase(&self) -> Phase {
        self.state().phase.clone()
    }

    /// How often a boot had to try a fetch again because the boot server did not answer
    /// or asked to come back (the firmware's boot file, `chain … || sleep`, the ignition
    /// fetch): zero when every
    /// fetch was answered at once.
    pub fn fetch_retries(&self) -> u32 {
        let state = self.state();
        state.script_retries + state.ignition_retries
    }

    /// The address DHCP (v4 or v6) leased its latest network boot, from which that boot
    /// fetched everything; `None` before one, or without DHCP.
    pub fn leased_address(&self) -> Option<std::net::IpAddr> {
        self.state().leased
    }

    /// How many times it has started.
    pub fn boots(&self) -> u32 {
        self.state().boots
    }

    /// Every probe report the registry acknowledged, oldest first (a report the registry
    /// stored but whose answer never arrived is not among them).
    pub fn acknowledged_reports(&self) -> Vec<AcknowledgedReport> {
        self.state().acknowledged.clone()
    }

    /// The stored boot override.
    pub fn boot_settings(&self) -> BootSettings {
        self.state().boot.clone()
    }

    /// Stores a boot override.
    pub fn set_boot_settings(&self, boot: BootSettings) {
        self.state().boot = boot;
    }

    /// The serial console log of a VM machine (none for simulated ones).
    pub fn console(&self) -> Option<PathBuf> {
        self.env.vm.as_ref().map(|vm| vm.console(self.spec.index))
    }

    /// Changes what its discovery system does from the next boot on.
    pub fn set_probe(&self, probe: Probe) {
        self.state().probe = probe;
    }

    /// Every reset type the machine accepted, oldest first (one its BMC refused is not
    /// among them): what a test reads to see which `ComputerSystem.Reset` the operator
    /// asked for. A machine following an external BMC logs the `On` and `ForceOff` it
    /// mirrors.
    pub fn resets(&self) -> Vec<String> {
        self.state().resets.clone()
    }

    /// The ignition of the latest boot into an OS other than the discovery system (phase
    /// [`Phase::Running`]), as the machine fetched it.
    pub fn running_ignition(&self) -> Option<serde_json::Value> {
        self.state().ignition.clone()
    }

    /// Applies a Redfish reset type, `power_delay` later.
    pub fn reset(self: &Arc<Self>, reset_type: &str) -> Result<(), UnknownReset> {
        if !RESET_TYPES.contains(&reset_type) {
            return Err(UnknownReset(reset_type.to_owned()));
        }
        self.state().resets.push(reset_type.to_owned());
        let delay = self.env.behaviour.power_delay;
        if delay.is_zero() {
            self.apply(reset_type);
        } else {
            let machine = self.clone();
            let reset_type = reset_type.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                machine.apply(&reset_type);
            });
        }
        Ok(())
    }

    fn apply(self: &Arc<Self>, reset_type: &str) {
        let mut state = self.state();
        let start = match reset_type {
            "On" | "ForceOn" => !state.powered,
            "ForceOff" | "GracefulShutdown" => {
                state.powered = false;
                state.phase = Phase::Off;
                false
            }
            _ => true,
        };
        // Power off or a restart ends whatever the machine was doing.
        if start || !state.powered {
            if let Some(task) = state.task.take() {
                task.abort();
            }
            state.vm = None;
        }
        if !start {
            return;
        }
        state.powered = true;
        state.boots += 1;
        let source = state.boot.take_next();
        if let Some(options) = &self.env.vm {
            self.start_vm(&mut state, options, source);
            return;
        }
        if source == BootSource::Disk {
            state.phase = Phase::LocalDisk;
            return;
        }
        state.phase = Phase::Firmware;
        let machine = self.clone();
        let probe = state.probe;
        let task = tokio::spawn(async move {
            let outcome = machine.network_boot(source, probe).await;
            let mut state = machine.state();
            match outcome {
                // A claim's OS keeps running; the discovery system is done once it reported.
                Ok(()) if state.phase == Phase::Running => {}
                Ok(()) => state.phase = Phase::Reported,
                Err(error) => {
                    tracing::warn!(machine = machine.spec.index, uuid = %machine.spec.uuid, %error, "network boot failed");
                    state.phase = Phase::Failed(error);
                }
            }
        });
        state.task = Some(task.abort_handle());
    }

    /// Stops whatever the machine is doing (the fleet is going away).
    pub fn halt(&self) {
        let mut state = self.state();
        if let Some(task) = state.task.take() {
            task.abort();
        }
        state.vm = None;
    }

    /// Starts the machine's VM for `source` and watches for the guest powering itself off.
    fn start_vm(
        self: &Arc<Self>,
        state: &mut State,
        options: &crate::vm::VmOptions,
        source: BootSource,
    ) {
        let base = self
            .env
            .boot_url
            .as_ref()
            .map(|url| url.trim_end_matches('/').to_owned());
        let ipxe = base.as_ref().map(|url| format!("{url}/ipxe"));
        // The boot server's per-machine UKI by SMBIOS UUID (a Server lists no MACs before its
        // first report), as ferrometal's DHCP names it with `/uki/${uuid}.efi`.
        let uki = base
            .as_ref()
            .map(|url| format!("{url}/uki/{}.efi", self.spec.uuid));
        let files = crate::vm::UserBootFiles {
            ipxe: ipxe.as_deref(),
            uefi_http: uki.as_deref(),
        };
        let start = match crate::vm::start_for(options, &source, files) {
            Ok(start) => start,
            Err(reason) => {
                state.powered = false;
                state.phase = Phase::Failed(reason);
                return;
            }
        };
        match crate::vm::start(options, &self.spec, &start, state.probe) {
            Ok(program) => {
                tracing::info!(machine = self.spec.index, uuid = %self.spec.uuid, pid = program.pid(), console = %options.console(self.spec.index).display(), "VM started");
                state.vm = Some(program);
                state.phase = match start {
                    crate::vm::Start::Disk => Phase::LocalDisk,
                    crate::vm::Start::Network { .. } | crate::vm::Start::HttpBoot { .. } => {
                        Phase::Firmware
                    }
                };
            }
            Err(error) => {
                state.powered = false;
                state.phase = Phase::Failed(error);
                return;
            }
        }
        let machine = self.clone();
        let watcher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let mut state = machine.state();
                let exited = match state.vm.as_mut() {
                    Some(vm) => vm.ensure_running().is_err(),
                    None => return,
                };
                if exited {
                    tracing::info!(machine = machine.spec.index, uuid = %machine.spec.uuid, "the VM powered off");
                    state.vm = None;
                    state.powered = false;
                    state.phase = Phase::Off;
                    return;
                }
            }
        });
        state.task = Some(watcher.abort_handle());
    }

    fn set_phase(&self, phase: Phase) {
        self.state().phase = phase;
    }

    /// The HTTP client of this boot: bound to the leased address when DHCP gave one.
    fn http(&self) -> reqwest::Client {
        self.state()
            .http
            .clone()
            .unwrap_or_else(|| self.env.http.clone())
    }

    async fn fetch(&self, url: &str) -> Result<reqwest::Response, String> {
        self.http()
            .get(self.env.local_url(url))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| format!("GET {url}: {error}"))
    }

    /// The ignition fetch, as the discovery system's Ignition (or `ferrometal-ignite`) makes
    /// it: a connection failure or a retryable status (`503` while the boot server starts)
    /// is tried again a second later, up to a minute.
    async fn fetch_ignition(&self, url: &str) -> Result<reqwest::Response, String> {
        let mut attempt = 1;
        loop {
            let result = self.http().get(self.env.local_url(url)).send().await;
            let retry = match &result {
                Ok(response) => metalprobe::post::retryable(response.status().as_u16()),
                Err(_) => true,
            };
            if !retry || attempt >= IGNITION_ATTEMPTS {
                return result
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|error| format!("GET {url}: {error}"));
            }
            self.state().ignition_retries += 1;
            attempt += 1;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// The firmware's own download of its boot file: when it fails, the firmware tries the
    /// network boot again, [`FIRMWARE_BOOT_TRIES`] times in all, [`FIRMWARE_BOOT_PAUSE`]
    /// apart, as server firmware's network-boot retry settings do (before ferrometal's
    /// scripts, which retry on their own, are running).
    async fn firmware_fetch(&self, url: &str) -> Result<String, String> {
        let mut tries = 1;
        loop {
            match self.fetch_text(url).await {
                Ok(text) => return Ok(text),
                Err(error) if tries >= FIRMWARE_BOOT_TRIES => return Err(error),
                Err(error) => {
                    tracing::debug!(%error, "the network boot failed; the firmware tries again");
                    self.state().script_retries += 1;
                    tries += 1;
                    tokio::time::sleep(FIRMWARE_BOOT_PAUSE).await;
                }
            }
        }
    }

    /// Runs one script command (never an `Attempt`).
    async fn run_step(&self, step: Step, kernel_args: &mut Option<String>) -> Result<Flow, String> {
        match step {
            Step::Chain { url, .. } => {
                let text = self.fetch_text(&url).await?;
                Ok(Flow::Chained(url, text))
            }
            Step::Kernel { url, args } => {
                self.download(&url).await?;
                *kernel_args = Some(args);
                Ok(Flow::Next)
            }
            Step::Initrd { url } => {
                self.download(&url).await?;
                Ok(Flow::Next)
            }
            Step::Boot => Ok(Flow::Booted),
            Step::LocalBoot => Ok(Flow::LocalBoot),
            Step::Attempt { .. } => Err(String::from("an attempt inside an attempt")),
        }
    }

    /// Runs the commands of one `a && b && c || …` line until one fails or leaves the
    /// script.
    async fn run_attempt(
        &self,
        steps: Vec<Step>,
        kernel_args: &mut Option<String>,
    ) -> Result<Flow, String> {
        for step in steps {
            match self.run_step(step, kernel_args).await? {
                Flow::Next => {}
                leaving => return Ok(leaving),
            }
        }
        Ok(Flow::Next)
    }

    /// Fetches `url` whole (a kernel, an initramfs) and drops it.
    async fn download(&self, url: &str) -> Result<(), String> {
        self.fetch(url)
            .await?
            .bytes()
            .await
            .map(drop)
            .map_err(|error| format!("GET {url}: {error}"))
    }

    async fn fetch_text(&self, url: &str) -> Result<String, String> {
        self.fetch(url)
            .await?
            .text()
            .await
            .map_err(|error| format!("GET {url}: {error}"))
    }

    async fn network_boot(&self, source: BootSource, probe: Probe) -> Result<(), String> {
        tokio::time::sleep(self.env.behaviour.boot_delay).await;
        let mac = &self.spec.macs[0];
        let (class, given) = match source {
            BootSource::Http(uri) => (ClientClass::HttpBoot, uri),
            _ => (ClientClass::Ipxe, None),
        };
        let mut address = None;
        {
            let mut state = self.state();
            state.http = None;
            state.leased = None;
        }
        let first = match (given, &self.env.dhcp) {
            (Some(uri), _) => uri,
            (None, Some(dhcp)) => {
                let lease = dhcp
                    .lease(mac, class, Some(&self.spec.uuid))
                    .await
                    .map_err(|error| format!("DHCP: {error}"))?;
                // The fake `/proc` holds IPv4 addresses only: a DHCPv6 machine's tree shows
                // its synthetic `10.200.x.y`.
                if let std::net::IpAddr::V4(v4) = lease.address {
                    address = Some(v4);
                }
                // Everything this boot fetches comes from the leased address, as a real
                // machine's requests do (the boot server holds it to that address).
                let client = reqwest::Client::builder()
                    .local_address(lease.address)
                    .timeout(std::time::Duration::from_secs(30))
                    .build()
                    .map_err(|error| format!("HTTP client for {}: {error}", lease.address))?;
                let mut state = self.state();
                state.http = Some(client);
                state.leased = Some(lease.address);
                drop(state);
                lease
                    .boot_file
                    .ok_or_else(|| format!("DHCP gave {} no boot file", lease.address))?
            }
            (None, None) => match &self.env.boot_url {
                Some(url) => format!("{}/ipxe", url.trim_end_matches('/')),
                None => return Err(String::from("no DHCP and no boot server URL")),
            },
        };
        self.set_phase(Phase::Ipxe);
        let vars = HashMap::from([
            (String::from("uuid"), self.spec.uuid.clone()),
            (String::from("mac"), mac.clone()),
        ]);
        let mut url = first;
        let mut text = self.firmware_fetch(&url).await?;
        let mut kernel_args = None;
        'scripts: for _ in 0..8 {
            let steps = firmware::interpret(&text, &vars).map_err(|e| format!("{url}: {e}"))?;
            for step in steps {
                let flow = match step {
                    // `… || sleep N`: a failure does not end the script; it goes on after
                    // the pause.
                    Step::Attempt { steps, pause } => {
                        match self.run_attempt(steps, &mut kernel_args).await {
                            Ok(flow) => flow,
                            Err(error) => {
                                self.state().script_retries += 1;
                                tracing::debug!(%error, ?pause, "a script line failed; the script goes on");
                                tokio::time::sleep(pause).await;
                                Flow::Next
                            }
                        }
                    }
                    step => self.run_step(step, &mut kernel_args).await?,
                };
                match flow {
                    Flow::Next => {}
                    Flow::Chained(chained, fetched) => {
                        (url, text) = (chained, fetched);
                        continue 'scripts;
                    }
                    Flow::Booted => break 'scripts,
                    Flow::LocalBoot => {
                        self.set_phase(Phase::LocalDisk);
                        return Ok(());
                    }
                }
            }
            break;
        }
        let args = kernel_args.ok_or_else(|| format!("{url} loaded no kernel"))?;
        let ignition_url = firmware::kernel_arg(&args, "ignition.config.url")
            .ok_or_else(|| format!("the kernel command line has no ignition URL: {args}"))?;
        let ignition: serde_json::Value = self
            .fetch_ignition(ignition_url)
            .await?
            .json()
            .await
            .map_err(|error| format!("the ignition is not JSON: {error}"))?;
        // Not the discovery system (no unit runs metalprobe): an OS that simply runs.
        if !firmware::runs_metalprobe(&ignition) {
            let mut state = self.state();
            state.ignition = Some(ignition);
            state.phase = Phase::Running;
            return Ok(());
        }
        let instructions =
            firmware::discovery_instructions(&ignition).map_err(|error| error.to_string())?;
        self.set_phase(Phase::Probing);
        if probe == Probe::Never {
            std::future::pending::<()>().await;
        }
        let token = match probe {
            Probe::WrongToken => Some(String::from("not-the-boot-token")),
            _ => instructions.token.clone(),
        };
        let collected_at = self
            .run_metalprobe(&instructions, token.as_deref(), address)
            .await?;
        // No await between the answer and this record: a power-off cannot come between.
        let mut state = self.state();
        let boot = state.boots;
        state
            .acknowledged
            .push(AcknowledgedReport { boot, collected_at });
        Ok(())
    }

    /// Writes this machine's tree, runs metalprobe's collection over it and posts the
    /// report, as the discovery system's metalprobe unit does. Returns the collection time
    /// of the report the registry acknowledged.
    async fn run_metalprobe(
        &self,
        instructions: &firmware::DiscoveryInstructions,
        token: Option<&str>,
        address: Option<std::net::Ipv4Addr>,
    ) -> Result<String, String> {
        let root = self
            .env
            .work_dir
            .join(format!("machine-{}", self.spec.index));
        let address = address.unwrap_or_else(|| {
            let n = self.spec.index as u32;
            std::net::Ipv4Addr::new(10, 200 + (n >> 16) as u8, (n >> 8) as u8, n as u8)
        });
        let tree = self.fake_machine(address);
        let collect_root = root.clone();
        let report = tokio::task::spawn_blocking(move || {
            tree.write(&collect_root)
                .map_err(|error| format!("cannot write the machine tree: {error}"))?;
            let report = metalprobe::collect::collect(&collect_root);
            let _ = std::fs::remove_dir_all(&collect_root);
            Ok::<_, String>(report)
        })
        .await
        .map_err(|error| error.to_string())??;
        let mut report = report;
        report.timestamp = jiff::Timestamp::now().to_string();
        let collected_at = report.timestamp.clone();
        let registration = metalprobe::report::Registration {
            system_uuid: instructions
                .server_uuid
                .clone()
                .unwrap_or_else(|| report.system_info.system_information.uuid.clone()),
            data: report,
        };
        metalprobe::post::register(
            &self.http(),
            &self.env.local_url(&instructions.registry_url),
            token,
            &registration,
            5,
        )
        .await
        .map(|()| collected_at)
        .map_err(|error| error.to_string())
    }

    fn fake_machine(&self, address: std::net::Ipv4Addr) -> FakeMachine {
        let spec = &self.spec;
        FakeMachine {
            uuid: spec.uuid.to_uppercase(),
            manufacturer: MANUFACTURER.to_owned(),
            model: spec.model.clone(),
            serial: spec.serial.clone(),
            nics: spec
                .macs
                .iter()
                .enumerate()
                .map(|(n, mac)| FakeNic {
                    name: format!("eno{}", n + 1),
                    mac: mac.clone(),
                    ipv4: (n == 0).then(|| (address.to_string(), 16)),
                    link_up: n == 0,
                })
                .collect(),
            cpus: spec.cpus,
            memory_kib: spec.memory_mib * 1024,
            disks: spec.disks.clone(),
            // The devices the BMC lists (`crate::inventory`), so both discoveries agree.
            pci_devices: crate::inventory::pcie_devices(spec)
                .into_iter()
                .map(|device| FakePciDevice {
                    address: device.address,
                    vendor: device.vendor_id.to_owned(),
                    device: device.device_id.to_owned(),
                    class: device.class_code.to_owned(),
                    subsystem_vendor: device.subsystem_vendor_id.to_owned(),
                    subsystem_device: device.subsystem_id.to_owned(),
                    numa_node: device.numa_node,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(target: &str, enabled: &str) -> BootSettings {
        BootSettings {
            target: target.to_owned(),
            enabled: enabled.to_owned(),
            http_boot_uri: Some(String::from("http://h/boot.efi")),
            ..BootSettings::default()
        }
    }

    #[test]
    fn a_once_override_is_used_up_by_one_start() {
        let mut settings = boot("Pxe", "Once");
        assert_eq!(settings.take_next(), BootSource::Pxe);
        assert_eq!(settings.take_next(), BootSource::Disk);
        assert_eq!(settings.enabled, "Disabled");
    }

    #[test]
    fn a_continuous_override_stays_and_http_boot_carries_its_uri() {
        let mut settings = boot("UefiHttp", "Continuous");
        for _ in 0..2 {
            assert_eq!(
                settings.take_next(),
                BootSource::Http(Some(String::from("http://h/boot.efi")))
            );
        }
    }

    #[test]
    fn without_an_override_machines_boot_from_disk() {
        assert_eq!(BootSettings::default().take_next(), BootSource::Disk);
        assert_eq!(boot("Hdd", "Once").take_next(), BootSource::Disk);
    }

    fn machine() -> Arc<Machine> {
        machine_with(crate::spec::FleetSpec::default().bmc(0).systems[0].clone())
    }

    fn machine_with(spec: MachineSpec) -> Arc<Machine> {
        Arc::new(Machine::new(
            spec,
            Arc::new(BootEnvironment {
                http: reqwest::Client::new(),
                boot_url: None,
                dhcp: None,
                behaviour: MachineBehaviour::default(),
                work_dir: PathBuf::from("/nonexistent"),
                vm: None,
                host_alias: None,
            }),
        ))
    }

    #[test]
    fn the_machine_tree_holds_the_pci_devices_its_bmc_lists() {
        let spec = crate::spec::FleetSpec {
            oddities: vec![(0, crate::Oddity::Gpu), (0, crate::Oddity::Gpu)],
            ..crate::spec::FleetSpec::default()
        }
        .machine(0);
        let machine = machine_with(spec.clone());
        let root = std::env::temp_dir().join(format!("ferrometal-sim-pci-{}", std::process::id()));
        machine
            .fake_machine(std::net::Ipv4Addr::new(10, 0, 0, 1))
            .write(&root)
            .expect("machine tree");
        let reported = metalprobe::collect::collect(&root).pci_devices;
        let _ = std::fs::remove_dir_all(&root);
        let mut listed: Vec<(String, String, String, String)> =
            crate::inventory::pcie_devices(&spec)
                .into_iter()
                .map(|d| {
                    let id = |text: &str| text.trim_start_matches("0x").to_owned();
                    (
                        d.address,
                        id(d.vendor_id),
                        id(d.device_id),
                        d.class_code.to_owned(),
                    )
                })
                .collect();
        listed.sort();
        let reported: Vec<(String, String, String, String)> = reported
            .into_iter()
            .map(|d| (d.address, d.vendor_id, d.product_id, d.class))
            .collect();
        assert_eq!(reported, listed);
        assert_eq!(
            reported.iter().filter(|d| d.3 == "0x030200").count(),
            2,
            "both GPUs: {reported:?}"
        );
    }

    #[tokio::test]
    async fn accepted_resets_are_logged_in_order_and_unknown_ones_are_not() {
        let machine = machine();
        assert!(machine.resets().is_empty());
        assert_eq!(machine.reset("PowerCycle"), Ok(()));
        assert!(
            machine.powered(),
            "a power cycle of an Off machine starts it"
        );
        assert_eq!(machine.reset("Nmi"), Err(UnknownReset(String::from("Nmi"))));
        assert_eq!(machine.reset("ForceOff"), Ok(()));
        assert_eq!(machine.resets(), ["PowerCycle", "ForceOff"]);
    }

    #[tokio::test]
    async fn force_on_starts_an_off_machine_like_on_and_leaves_a_running_one() {
        let machine = machine();
        assert_eq!(machine.reset("ForceOn"), Ok(()));
        assert!(machine.powered());
        assert_eq!(machine.boots(), 1);
        assert_eq!(machine.reset("ForceOn"), Ok(()));
        assert_eq!(machine.boots(), 1, "already on: no restart");
        assert_eq!(machine.resets(), ["ForceOn", "ForceOn"]);
    }
}
