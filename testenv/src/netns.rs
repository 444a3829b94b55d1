//! Network namespaces that tests create for their own hosts (DHCP clients, LLDP neighbours,
//! relays): run `ip`, run programs inside a namespace, and remove the namespace (with the
//! veth pairs in it) when the handle is dropped. Needs root.

use std::process::Command;

/// A network namespace, deleted when dropped.
#[derive(Debug)]
pub struct NetworkNamespace {
    name: String,
}

impl NetworkNamespace {
    /// Creates namespace `name` (panics with `ip`'s message if it cannot).
    pub fn create(name: &str) -> Self {
        Self::try_create(name).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Creates namespace `name`, or says why it cannot (`ip`'s message).
    pub fn try_create(name: &str) -> Result<Self, String> {
        try_ip(&["netns", "add", name])?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        // Best effort: the namespace may be gone already.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `ip ARGS…`; panics with `ip`'s message if it fails (for test set-up).
pub fn ip(args: &[&str]) {
    if let Err(message) = try_ip(args) {
        panic!("{message}");
    }
}

/// Runs `ip ARGS…`; the error names the command and carries `ip`'s message.
pub fn try_ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether this process may create namespaces (runs as root).
pub fn available() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `sysctl -qw setting` in network namespace `namespace` (or this one); panics with its
/// message if it fails (for test set-up).
pub fn sysctl(namespace: Option<&str>, setting: &str) {
    let mut command = match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace, "sysctl"]);
            command
        }
        None => Command::new("sysctl"),
    };
    let output = command
        .args(["-qw", setting])
        .output()
        .expect("sysctl runs");
    assert!(
        output.status.success(),
        "sysctl -w {setting}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
