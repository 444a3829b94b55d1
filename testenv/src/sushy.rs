//! Real Redfish BMCs: sushy-emulator (sushy-tools from PyPI) with its fake driver.
//!
//! Each [`SushyEmulator`] is one BMC process on a free loopback port (or, with
//! [`SushyEmulator::start_in_namespace`], on an address inside a test's network namespace,
//! IPv6 literals included) with its own state directory (sushy keeps fake systems in SQLite and would otherwise share them between
//! instances), optional HTTP Basic auth (bcrypt htpasswd, the only format sushy accepts) and
//! optional TLS with a CA generated for it.
//!
//! Emulator quirks tests must allow for: power changes apply 1–11 s after the request;
//! `BootSourceOverrideEnabled` always reads back `Continuous`; EthernetInterface ids are MACs.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::net::free_port;
use crate::pki::CertificateAuthority;
use crate::process::{ManagedProcess, RunDir};
use crate::{Error, Result, progress, tools};

/// Power state of a fake system at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off (the usual state of a server awaiting discovery).
    #[default]
    Off,
}

/// Boot mode of a fake system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum BootMode {
    /// UEFI firmware (offers `UefiHttp` as a boot override target).
    #[default]
    #[serde(rename = "UEFI")]
    Uefi,
    /// Legacy BIOS.
    Legacy,
}

/// One computer system behind the emulated BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSystem {
    /// SMBIOS UUID; also the Redfish `Id` of the system. Must be a real UUID.
    pub uuid: String,
    /// Human-readable name (`/Systems/<name>` redirects to the UUID URL).
    pub name: String,
    /// Initial power state.
    pub power_state: PowerState,
    /// Boot mode.
    pub boot_mode: BootMode,
    /// MAC addresses of the system's NICs (exposed as EthernetInterfaces).
    pub macs: Vec<String>,
}

/// Which Redfish resources the emulator offers (sushy's `--feature-set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureSet {
    /// Only what is needed for power and boot.
    Minimum,
    /// Minimum plus virtual media.
    Vmedia,
    /// Everything the driver supports.
    #[default]
    Full,
}

impl FeatureSet {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Minimum => "minimum",
            Self::Vmedia => "vmedia",
            Self::Full => "full",
        }
    }
}

/// HTTP Basic credentials the emulator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// How to start an emulator.
#[derive(Debug, Clone, Default)]
pub struct SushyOptions {
    /// Systems behind this BMC; empty means sushy's single default system.
    pub systems: Vec<FakeSystem>,
    /// Credentials to require; `None` leaves the service open.
    pub auth: Option<BasicAuth>,
    /// Serve HTTPS with a certificate from a CA generated for this instance.
    pub tls: bool,
    /// Which resources to offer.
    pub feature_set: FeatureSet,
    /// Where to listen; `None` picks a free port on 127.0.0.1. Keep it on loopback, or on
    /// an address of the namespace given to [`SushyEmulator::start_in_namespace`].
    pub listen: Option<std::net::SocketAddr>,
}

/// A running sushy-emulator; killed on drop.
#[derive(Debug)]
pub struct SushyEmulator {
    // Field order matters: the process is killed before the run directory is removed.
    process: ManagedProcess,
    base_url: String,
    ca_cert_pem: Option<String>,
    auth: Option<BasicAuth>,
    systems: Vec<FakeSystem>,
    run_dir: RunDir,
}

#[derive(Serialize)]
struct SushySystem<'a> {
    uuid: &'a str,
    name: &'a str,
    power_state: PowerState,
    boot_mode: BootMode,
    nics: Vec<SushyNic<'a>>,
}

#[derive(Serialize)]
struct SushyNic<'a> {
    mac: &'a str,
}

impl SushyEmulator {
    /// Starts an emulator and waits until `/redfish/v1/` answers.
    pub async fn start(options: SushyOptions) -> Result<Self> {
        Self::start_in(None, options).await
    }

    /// Starts an emulator inside network namespace `namespace` (`ip netns exec`, so it needs
    /// root), listening on `options.listen`: an address of that namespace (IPv4 or IPv6)
    /// this process can reach, e.g. through a veth pair (not a wildcard: the base URL, the
    /// readiness check and the TLS certificate name it). Waits, from this process's
    /// namespace, until `/redfish/v1/` answers there.
    pub async fn start_in_namespace(namespace: &str, options: SushyOptions) -> Result<Self> {
        Self::start_in(Some(namespace), options).await
    }

    async fn start_in(namespace: Option<&str>, options: SushyOptions) -> Result<Self> {
        const READY_TIMEOUT: Duration = Duration::from_secs(60);
        let started = Instant::now();
        let bin = tools::sushy_emulator().require()?;
        let run_dir = RunDir::create("sushy")?;
        let dir = run_dir.path().to_path_buf();
        let listen = match options.listen {
            Some(address) => address,
            None => SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        };
        let (ip, port) = (listen.ip().to_string(), listen.port());

        let mut config = String::from("import json\n");
        let _ = writeln!(config, "SUSHY_EMULATOR_LISTEN_IP = {}", py_str(&ip));
        let _ = writeln!(config, "SUSHY_EMULATOR_LISTEN_PORT = {port}");
        config.push_str("SUSHY_EMULATOR_FAKE_DRIVER = True\n");
        let _ = writeln!(
            config,
            "SUSHY_EMULATOR_STATE_DIR = {}",
            py_str(&dir.join("state").to_string_lossy())
        );
        if !options.systems.is_empty() {
            let systems: Vec<SushySystem<'_>> = options
                .systems
                .iter()
                .map(|system| SushySystem {
                    uuid: &system.uuid,
                    name: &system.name,
                    power_state: system.power_state,
                    boot_mode: system.boot_mode,
                    nics: system.macs.iter().map(|mac| SushyNic { mac }).collect(),
                })
                .collect();
            let json = serde_json::to_string(&systems).map_err(|error| Error::Serialise {
                what: "sushy fake systems",
                message: error.to_string(),
            })?;
            let _ = writeln!(
                config,
                "SUSHY_EMULATOR_FAKE_SYSTEMS = json.loads({})",
                py_str(&json)
            );
        }
        if let Some(auth) = &options.auth {
            let hash = bcrypt::hash(&auth.password, 4).map_err(|error| Error::Serialise {
                what: "htpasswd entry",
                message: error.to_string(),
            })?;
            let htpasswd = dir.join("htpasswd");
            fs::write(&htpasswd, format!("{}:{hash}\n", auth.username))
                .map_err(Error::io(format!("write {}", htpasswd.display())))?;
            let _ = writeln!(
                config,
                "SUSHY_EMULATOR_AUTH_FILE = {}",
                py_str(&htpasswd.to_string_lossy())
            );
        }
        let ca_cert_pem = if options.tls {
            let ca = CertificateAuthority::new("ferrometal-testenv-bmc-ca")?;
            let leaf = ca.issue_server("sushy-emulator", &[ip.as_str(), "localhost"])?;
            let cert = dir.join("tls.crt");
            let key = dir.join("tls.key");
            fs::write(&cert, &leaf.cert_pem)
                .map_err(Error::io(format!("write {}", cert.display())))?;
            fs::write(&key, &leaf.key_pem)
                .map_err(Error::io(format!("write {}", key.display())))?;
            let _ = writeln!(
                config,
                "SUSHY_EMULATOR_SSL_CERT = {}",
                py_str(&cert.to_string_lossy())
            );
            let _ = writeln!(
                config,
                "SUSHY_EMULATOR_SSL_KEY = {}",
                py_str(&key.to_string_lossy())
            );
            Some(ca.cert_pem())
        } else {
            None
        };
        let config_path = dir.join("emulator.conf");
        fs::write(&config_path, config)
            .map_err(Error::io(format!("write {}", config_path.display())))?;

        let mut command = match namespace {
            Some(namespace) => {
                // `ip netns exec` execs the emulator in place: the pid stays the one killed.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        command
            .arg("--config")
            .arg(&config_path)
            .arg("--feature-set")
            .arg(options.feature_set.as_arg());
        let process = ManagedProcess::spawn("sushy-emulator", command, &run_dir)?;
        let mut emulator = Self {
            process,
            base_url: base_url(options.tls, listen),
            ca_cert_pem,
            auth: options.auth,
            systems: options.systems,
            run_dir,
        };
        emulator.wait_until_ready(READY_TIMEOUT).await?;
        progress(format_args!(
            "sushy-emulator v{} ready in {:.1}s at {} (pid {}, {} systems{}{})",
            tools::SUSHY_TOOLS_VERSION,
            started.elapsed().as_secs_f64(),
            emulator.base_url,
            emulator.process.pid(),
            emulator.systems.len().max(1),
            if emulator.auth.is_some() {
                ", basic auth"
            } else {
                ""
            },
            if emulator.ca_cert_pem.is_some() {
                ", TLS"
            } else {
                ""
            },
        ));
        Ok(emulator)
    }

    /// Starts `count` emulators concurrently, the `i`-th with `options(i)`.
    pub async fn start_many(
        count: usize,
        options: impl Fn(usize) -> SushyOptions,
    ) -> Result<Vec<Self>> {
        let starts = (0..count).map(|i| Self::start(options(i)));
        futures::future::join_all(starts)
            .await
            .into_iter()
            .collect()
    }

    async fn wait_until_ready(&mut self, timeout: Duration) -> Result<()> {
        let http = self.http_client()?;
        let url = format!("{}/redfish/v1/", self.base_url);
        self.process.wait_until_answers(&http, &url, timeout).await
    }

    /// The service's base URL, e.g. `https://127.0.0.1:40123`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The emulator's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The port the emulator listens on.
    pub fn port(&self) -> u16 {
        self.base_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_default()
    }

    /// The CA certificate that signed the emulator's TLS certificate, if TLS is on.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_cert_pem.as_deref()
    }

    /// The credentials the emulator requires, if any.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }

    /// The systems it was started with.
    pub fn systems(&self) -> &[FakeSystem] {
        &self.systems
    }

    /// The directory holding the emulator's config, state and log.
    pub fn run_dir(&self) -> &std::path::Path {
        self.run_dir.path()
    }

    /// The last lines of the emulator's request log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// An HTTP client that trusts this emulator's CA (and nothing else) and follows no
    /// redirects. Credentials are not attached; add them per request.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &self.ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(Error::HttpClient)?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        builder.build().map_err(Error::HttpClient)
    }
}

/// `scheme://address`, an IPv6 address in brackets.
fn base_url(tls: bool, address: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{address}")
}

/// A Python string literal holding `value` exactly (raw triple quotes cannot hold every
/// string; JSON string syntax is valid Python for the characters we write).
fn py_str(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_literals_escape_quotes_and_backslashes() {
        assert_eq!(py_str(r#"a'b"c\d"#), r#""a'b\"c\\d""#);
    }

    #[test]
    fn base_urls_bracket_ipv6_addresses() {
        let v6: SocketAddr = "[fd97:1::100]:8000".parse().expect("address");
        assert_eq!(base_url(false, v6), "http://[fd97:1::100]:8000");
        let v4: SocketAddr = "127.0.0.1:8443".parse().expect("address");
        assert_eq!(base_url(true, v4), "https://127.0.0.1:8443");
    }
}

/// A running `sushy-static`: a read-only Redfish service serving a mockup directory (GET only;
/// POST and PATCH answer 204 and change nothing). Killed on drop.
#[derive(Debug)]
pub struct SushyStatic {
    // Field order matters: the process is killed before the run directory is removed.
    process: ManagedProcess,
    base_url: String,
    _run_dir: RunDir,
}

impl SushyStatic {
    /// Serves `mockup` (a directory of `index.json` files, e.g. a DMTF public mockup) on a
    /// free loopback port over plain HTTP.
    pub async fn start(mockup: &std::path::Path) -> Result<Self> {
        const READY_TIMEOUT: Duration = Duration::from_secs(60);
        let bin = tools::sushy_static().require()?;
        let run_dir = RunDir::create("sushy-static")?;
        let port = free_port()?;
        let mut command = Command::new(bin);
        command
            .arg("--mockup-files")
            .arg(mockup)
            .args(["--interface", "127.0.0.1", "--port"])
            .arg(port.to_string());
        let mut process = ManagedProcess::spawn("sushy-static", command, &run_dir)?;
        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(Error::HttpClient)?;
        let started = Instant::now();
        process
            .wait_until_answers(&http, &format!("{base_url}/redfish/v1/"), READY_TIMEOUT)
            .await?;
        progress(format_args!(
            "sushy-static v{} ready in {:.1}s at {base_url} serving {}",
            tools::SUSHY_TOOLS_VERSION,
            started.elapsed().as_secs_f64(),
            mockup.display()
        ));
        Ok(Self {
            process,
            base_url,
            _run_dir: run_dir,
        })
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
