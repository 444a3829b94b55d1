//! Simulated machines behind a BMC that is not the simulator's own, such as sushy-emulator's
//! fake driver: the machine follows its Redfish system's power state and boot override by
//! polling it, and boots like any simulated machine when the system is powered on.
//!
//! Polling sees power transitions only: a restart of a system that stays On (ForceRestart)
//! is not noticed. ferrometal powers an Off system On for discovery, which is seen.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;

use crate::machine::{BootSettings, Machine};

/// How often the system is read.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Where a machine's Redfish system lives and how to read it.
#[derive(Debug, Clone)]
pub struct RedfishSystem {
    /// HTTP client (trusting the BMC's CA when it serves TLS).
    pub http: reqwest::Client,
    /// The BMC's base URL, e.g. `http://127.0.0.1:8000`.
    pub base_url: String,
    /// Basic-auth user name.
    pub username: String,
    /// Basic-auth password.
    pub password: String,
}

/// What the BMC says about the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemView {
    /// `PowerState` is `On` (or `PoweringOn`).
    pub on: bool,
    /// `Boot`, as stored.
    pub boot: BootSettings,
}

/// What the machine does to match its system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// Take the stored boot override and start.
    Start(BootSettings),
    /// Stop.
    Stop,
}

/// The step that brings a machine (`powered`) in line with its system, if any.
pub fn decide(view: &SystemView, powered: bool) -> Option<Follow> {
    match (view.on, powered) {
        (true, false) => Some(Follow::Start(view.boot.clone())),
        (false, true) => Some(Follow::Stop),
        _ => None,
    }
}

/// Reads `PowerState` and `Boot` from a Redfish `ComputerSystem`.
pub fn view(system: &Value) -> SystemView {
    let text = |value: &Value, default: &str| value.as_str().unwrap_or(default).to_owned();
    let boot = &system["Boot"];
    SystemView {
        on: matches!(system["PowerState"].as_str(), Some("On" | "PoweringOn")),
        boot: BootSettings {
            target: text(&boot["BootSourceOverrideTarget"], "None"),
            enabled: text(&boot["BootSourceOverrideEnabled"], "Disabled"),
            mode: text(&boot["BootSourceOverrideMode"], "UEFI"),
            http_boot_uri: boot["HttpBootUri"].as_str().map(str::to_owned),
        },
    }
}

/// A machine following its system; dropping it stops the following (not the machine).
#[derive(Debug)]
pub struct Follower {
    task: AbortHandle,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts following `system` for `machine`: the system is the `ComputerSystem` whose `UUID`
/// is the machine's.
pub fn follow(machine: Arc<Machine>, system: RedfishSystem) -> Follower {
    let task = tokio::spawn(async move {
        let mut url = None;
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if url.is_none() {
                url = find_system(&system, &machine.spec().uuid).await;
            }
            let Some(system_url) = &url else { continue };
            let Some(document) = get(&system, system_url).await else {
                continue;
            };
            match decide(&view(&document), machine.powered()) {
                Some(Follow::Start(boot)) => {
                    machine.set_boot_settings(boot);
                    // "On" is a known reset type.
                    let _ = machine.reset("On");
                }
                Some(Follow::Stop) => {
                    let _ = machine.reset("ForceOff");
                }
                None => {}
            }
        }
    });
    Follower {
        task: task.abort_handle(),
    }
}

async fn get(system: &RedfishSystem, url: &str) -> Option<Value> {
    let response = system
        .http
        .get(url)
        .basic_auth(&system.username, Some(&system.password))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match response {
        Ok(response) => response.json().await.ok(),
        Err(error) => {
            tracing::debug!(%url, %error, "cannot read the followed system");
            None
        }
    }
}

/// The URL of the system with `uuid`, if the BMC lists it.
async fn find_system(system: &RedfishSystem, uuid: &str) -> Option<String> {
    let base = system.base_url.trim_end_matches('/');
    let collection = get(system, &format!("{base}/redfish/v1/Systems")).await?;
    for member in collection["Members"].as_array()? {
        let Some(path) = member["@odata.id"].as_str() else {
            continue;
        };
        let url = format!("{base}{path}");
        if let Some(document) = get(system, &url).await
            && document["UUID"]
                .as_str()
                .is_some_and(|found| found.eq_ignore_ascii_case(uuid))
        {
            return Some(url);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_system_powered_on_starts_its_machine_with_the_stored_override() {
        let view = view(&json!({
            "PowerState": "On",
            "Boot": {
                "BootSourceOverrideTarget": "Pxe",
                "BootSourceOverrideEnabled": "Continuous",
                "BootSourceOverrideMode": "UEFI"
            }
        }));
        let Some(Follow::Start(boot)) = decide(&view, false) else {
            panic!("expected a start, got {:?}", decide(&view, false));
        };
        assert_eq!(
            (boot.target.as_str(), boot.enabled.as_str()),
            ("Pxe", "Continuous")
        );
        assert_eq!(decide(&view, true), None, "already running");
    }

    #[test]
    fn a_system_powered_off_stops_its_machine_and_missing_boot_fields_mean_disk() {
        let view = view(&json!({"PowerState": "Off"}));
        assert_eq!(decide(&view, true), Some(Follow::Stop));
        assert_eq!(decide(&view, false), None);
        assert_eq!(view.boot, BootSettings::default());
    }
}
