//! People who look at the fleet view: ServiceAccounts with (or without) the right to read the
//! metal objects, and bearer tokens for them, made with the control plane's own kubectl.

use std::io::Write as _;
use std::process::Stdio;

use crate::{ControlPlane, Error, Result};

/// A bearer token (valid for a day) of ServiceAccount `account` in namespace `default`,
/// created if missing; with `may_list_servers`, bound to a ClusterRole `fleet-viewer` that
/// may get, list and watch the metal objects (what the fleet view asks of its viewers).
pub fn token(
    control_plane: &ControlPlane,
    account: &str,
    may_list_servers: bool,
) -> Result<String> {
    let mut manifest = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {account}, namespace: default}}\n"
    );
    if may_list_servers {
        manifest.push_str(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: fleet-viewer}}\n\
             rules:\n- apiGroups: [metal.ironcore.dev]\n  resources: [servers, bmcs, endpoints, serverbootconfigurations]\n  verbs: [get, list, watch]\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: fleet-viewer-{account}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: fleet-viewer}}\n\
             subjects:\n- {{kind: ServiceAccount, name: {account}, namespace: default}}\n"
        ));
    }
    let mut apply = control_plane.kubectl()?;
    apply
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = apply.spawn().map_err(Error::io("run kubectl apply"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(manifest.as_bytes())
            .map_err(Error::io("write to kubectl apply"))?;
    }
    let applied = child
        .wait_with_output()
        .map_err(Error::io("run kubectl apply"))?;
    if !applied.status.success() {
        return Err(Error::CommandFailed {
            command: format!("kubectl apply (viewer {account})"),
            message: String::from_utf8_lossy(&applied.stderr).trim().to_owned(),
        });
    }
    let token = control_plane
        .kubectl()?
        .args([
            "create",
            "token",
            account,
            "-n",
            "default",
            "--duration=24h",
        ])
        .output()
        .map_err(Error::io("run kubectl create token"))?;
    if !token.status.success() {
        return Err(Error::CommandFailed {
            command: format!("kubectl create token {account}"),
            message: String::from_utf8_lossy(&token.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&token.stdout).trim().to_owned())
}
