//! The operator as the Helm chart deploys it, on the lab's node ([`super::LabOptions::node`]):
//! the image `cargo xtask image` builds, imported into the node's containerd (nothing is
//! pulled), and `charts/ferrometal` installed with values that fit the lab.
//!
//! How the pieces reach each other: the operator's Pod reaches kube-apiserver through the
//! `kubernetes` Service (kube-apiserver listens on the node's IP), and the BMCs and the OCI
//! registry on the node's IP; the simulated machines reach the boot server through the boot
//! Service's NodePort ([`BOOT_NODE_PORT`]) on that IP, which is also the chart's
//! `bootServer.url`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Lab, LabError, io};

/// The boot Service's node port: machines reach the boot server at
/// `http://<node IP>:30082`.
pub const BOOT_NODE_PORT: u16 = 30082;

/// The operator image archive to install: `FERROMETAL_OPERATOR_IMAGE` when set (another
/// build of the image, named as the chart expects), otherwise the one `cargo xtask image`
/// writes, `target/image/ferrometal-<version>.oci.tar`, naming the image
/// `ghcr.io/ferrometal/ferrometal:<chart appVersion>`.
pub fn operator_image_archive() -> PathBuf {
    std::env::var_os("FERROMETAL_OPERATOR_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            testenv::tools::workspace_root()
                .join("target")
                .join("image")
                .join(format!("ferrometal-{}.oci.tar", env!("CARGO_PKG_VERSION")))
        })
}

/// The chart in the repository.
pub fn chart_dir() -> PathBuf {
    testenv::tools::workspace_root().join("charts/ferrometal")
}

/// A `helm` command with its caches outside the user's home, against `kubeconfig` (none:
/// helm's own commands that need no cluster, such as `template` and `lint`).
pub fn helm_command(kubeconfig: Option<&Path>) -> Result<Command, LabError> {
    let mut command = Command::new(testenv::tools::helm().require()?);
    command.env(
        "HELM_CACHE_HOME",
        std::env::temp_dir().join("ferrometal-helm-cache"),
    );
    match kubeconfig {
        Some(kubeconfig) => command.env("KUBECONFIG", kubeconfig),
        None => command.env_remove("KUBECONFIG"),
    };
    Ok(command)
}

/// Runs `command`; its standard output, or an error with its command line and error output.
fn run(command: &mut Command, shown: String) -> Result<String, LabError> {
    let output = command.output().map_err(io(format!("run {shown}")))?;
    if !output.status.success() {
        return Err(LabError::Command {
            command: shown,
            message: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Lab {
    /// The lab's node; an error naming [`super::LabOptions::node`] without one.
    pub fn require_node(&self) -> Result<&testenv::Node, LabError> {
        self.node.as_ref().ok_or_else(|| {
            LabError::Options(String::from(
                "the lab has no node (LabOptions::node) to run the chart's Pods on",
            ))
        })
    }

    /// Imports the operator image archive (default: [`operator_image_archive`]) into the
    /// node's containerd; the images' names.
    pub fn import_operator_image(&self, archive: Option<&Path>) -> Result<Vec<String>, LabError> {
        let node = self.require_node()?;
        let archive = archive.map_or_else(operator_image_archive, Path::to_path_buf);
        if !archive.is_file() {
            return Err(LabError::Options(format!(
                "{} is missing: build the operator image with `cargo xtask image`",
                archive.display()
            )));
        }
        Ok(node.import_image(&archive)?)
    }

    /// Chart values that run the operator in this lab: the imported image (never pulled),
    /// the lab's discovery image and registry, the boot Service as a NodePort on the node's
    /// IP ([`BOOT_NODE_PORT`]) and that address as `bootServer.url`, a MAC database for the
    /// fleet's BMCs, and resync periods short enough for a demo. Merge test-specific values
    /// over them with [`merge_values`].
    pub fn chart_values(&self) -> Value {
        let registry = self.registry.host();
        json!({
            "image": { "pullPolicy": "Never" },
            "logLevel": "info,ferrometal=debug",
            "discovery": {
                "image": self.discovery_image,
                "serverResyncSeconds": 2,
            },
            "bootServer": {
                "url": self.boot_url,
                "allowedRegistries": [registry],
                "insecureRegistries": [registry],
                "service": { "type": "NodePort", "nodePort": BOOT_NODE_PORT },
            },
            "bmc": { "resyncSeconds": 3, "credentialRetrySeconds": 1 },
            "macDatabase": { "content": self.mac_database(self.fleet.port()) },
        })
    }

    /// metal-operator's MAC-prefix database for the fleet's BMCs: Redfish on `port`, a
    /// factory default that fails and then the fleet's credentials.
    pub fn mac_database(&self, port: u16) -> Value {
        let scheme = if self.fleet.ca_pem().is_some() {
            "https"
        } else {
            "http"
        };
        json!({
            "macPrefixes": [{
                "macPrefix": crate::BMC_MAC_PREFIX,
                "manufacturer": crate::spec::MANUFACTURER,
                "protocol": "Redfish",
                "protocolScheme": scheme,
                "port": port,
                "type": "bmc",
                "defaultCredentials": [
                    { "username": "admin", "password": "factory-default" },
                    { "username": self.credentials.0, "password": self.credentials.1 },
                ],
            }],
        })
    }

    /// Runs helm against the lab's control plane; its standard output.
    pub fn helm(&self, args: &[&str]) -> Result<String, LabError> {
        let kubeconfig = self.kubeconfig();
        run(
            helm_command(Some(&kubeconfig))?.args(args),
            format!("helm {}", args.join(" ")),
        )
    }

    /// `helm upgrade --install` of the repository's chart as `release` in `namespace` (which
    /// must exist) with `values` (written to the work directory), followed by `extra` helm
    /// arguments.
    pub fn install_chart(
        &self,
        release: &str,
        namespace: &str,
        values: &Value,
        extra: &[&str],
    ) -> Result<String, LabError> {
        let file = self.work_dir.join(format!("values-{release}.json"));
        std::fs::write(&file, values.to_string())
            .map_err(io(format!("write {}", file.display())))?;
        let chart = chart_dir();
        let mut args = vec![
            "upgrade",
            "--install",
            release,
            chart.to_str().unwrap_or_default(),
            "--namespace",
            namespace,
            "--values",
            file.to_str().unwrap_or_default(),
        ];
        args.extend_from_slice(extra);
        self.helm(&args)
    }

    /// Runs kubectl against the lab's control plane as cluster admin; its standard output.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, LabError> {
        run(
            self.control_plane.kubectl()?.args(args),
            format!("kubectl {}", args.join(" ")),
        )
    }
}

/// `overrides` merged into `base`: objects key by key, anything else replaced.
pub fn merge_values(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge_values(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, overrides) => *base = overrides.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_into_objects_and_replace_the_rest() {
        let mut base = json!({"a": {"b": 1, "c": [1]}, "d": "x"});
        merge_values(
            &mut base,
            &json!({"a": {"c": [2], "e": true}, "d": {"f": 1}}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 1, "c": [2], "e": true}, "d": {"f": 1}})
        );
    }
}
