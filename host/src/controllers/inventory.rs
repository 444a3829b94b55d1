//! What each BMC last reported about its systems: the BMC reconciler's probes, and single
//! systems the Server reconciler read (`get-system`) when the BMC was not probed since the
//! operator started. The Server reconciler judges a report and writes the discovery ignition
//! from it without asking the BMC again (a chassis BMC with S systems is read once per probe,
//! not once per system per step).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::plugins::types::{Identity, System};

/// What a BMC reported about its systems.
#[derive(Default)]
struct Reported {
    systems: Vec<Arc<System>>,
    /// Whether `systems` is everything the BMC has (a probe), not only systems read one by one.
    complete: bool,
}

/// What each BMC last reported about its systems, by BMC name: whole probes (the BMC
/// reconciler's) and single systems read by the Server reconciler.
#[derive(Default)]
pub struct BmcInventory {
    bmcs: RwLock<HashMap<String, Reported>>,
}

/// What the inventory knows about one system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// The system as its BMC last reported it.
    System(Arc<System>),
    /// The BMC's last probe did not list the system.
    Absent,
    /// Nothing was read since the operator started.
    Unknown,
}

impl BmcInventory {
    /// Records everything `bmc` reported at a probe.
    pub fn record(&self, bmc: &str, identity: &Identity) {
        let systems = identity.systems.iter().cloned().map(Arc::new).collect();
        self.bmcs.write().expect("inventory lock").insert(
            bmc.to_owned(),
            Reported {
                systems,
                complete: true,
            },
        );
    }

    /// Records one system of `bmc`, read on its own.
    pub fn record_system(&self, bmc: &str, system: Arc<System>) {
        let mut bmcs = self.bmcs.write().expect("inventory lock");
        let reported = bmcs.entry(bmc.to_owned()).or_default();
        match reported.systems.iter_mut().find(|s| s.uri == system.uri) {
            Some(known) => *known = system,
            None => reported.systems.push(system),
        }
    }

    /// Forgets a BMC that is gone.
    pub fn forget(&self, bmc: &str) {
        self.bmcs.write().expect("inventory lock").remove(bmc);
    }

    /// What `bmc` last reported about the system at `system_uri` (else with `system_uuid`,
    /// any case).
    pub fn system(&self, bmc: &str, system_uri: &str, system_uuid: Option<&str>) -> Known {
        let bmcs = self.bmcs.read().expect("inventory lock");
        let Some(reported) = bmcs.get(bmc) else {
            return Known::Unknown;
        };
        let uuid = system_uuid.map(str::to_ascii_lowercase);
        let found = reported.systems.iter().find(|system| {
            system.uri == system_uri
                || (uuid.is_some() && system.uuid.as_ref().map(|u| u.to_ascii_lowercase()) == uuid)
        });
        match found {
            Some(system) => Known::System(system.clone()),
            None if reported.complete => Known::Absent,
            None => Known::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(uri: &str, uuid: &str) -> System {
        System {
            uri: uri.to_owned(),
            uuid: Some(uuid.to_owned()),
            manufacturer: None,
            model: None,
            serial: None,
            power: crate::plugins::types::PowerState::Off,
            nics: Vec::new(),
            boot_targets: Vec::new(),
            boot_override: true,
            inventory: None,
        }
    }

    fn probe() -> Identity {
        Identity {
            manufacturer: None,
            model: None,
            serial: None,
            firmware: None,
            manager_uuid: None,
            systems: vec![
                system("/redfish/v1/Systems/1", "AB-CD"),
                system("/redfish/v1/Systems/2", "ef-01"),
            ],
        }
    }

    fn uri(known: Known) -> Option<String> {
        match known {
            Known::System(system) => Some(system.uri.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_probed_system_is_found_by_uri_or_by_uuid_in_any_case() {
        let inventory = BmcInventory::default();
        assert_eq!(
            inventory.system("bmc", "/redfish/v1/Systems/2", None),
            Known::Unknown
        );
        inventory.record("bmc", &probe());
        assert_eq!(
            uri(inventory.system("bmc", "/redfish/v1/Systems/2", None)).as_deref(),
            Some("/redfish/v1/Systems/2")
        );
        assert_eq!(
            uri(inventory.system("bmc", "", Some("ab-cd"))).as_deref(),
            Some("/redfish/v1/Systems/1")
        );
        assert_eq!(inventory.system("bmc", "/x", Some("00")), Known::Absent);
        inventory.forget("bmc");
        assert_eq!(inventory.system("bmc", "/x", None), Known::Unknown);
    }

    #[test]
    fn a_system_read_alone_says_nothing_about_the_other_systems_of_its_bmc() {
        let inventory = BmcInventory::default();
        let mut read = system("/redfish/v1/Systems/2", "ef-01");
        inventory.record_system("bmc", Arc::new(read.clone()));
        assert!(matches!(
            inventory.system("bmc", "/redfish/v1/Systems/2", None),
            Known::System(_)
        ));
        assert_eq!(
            inventory.system("bmc", "/redfish/v1/Systems/1", None),
            Known::Unknown
        );
        // A later read replaces the earlier one; a probe replaces both.
        read.serial = Some(String::from("S2"));
        inventory.record_system("bmc", Arc::new(read));
        let Known::System(found) = inventory.system("bmc", "/redfish/v1/Systems/2", None) else {
            panic!("system 2 is known");
        };
        assert_eq!(found.serial.as_deref(), Some("S2"));
        inventory.record("bmc", &probe());
        let Known::System(found) = inventory.system("bmc", "/redfish/v1/Systems/2", None) else {
            panic!("system 2 is known");
        };
        assert_eq!(found.serial, None);
        assert_eq!(
            inventory.system("bmc", "/redfish/v1/Systems/3", None),
            Known::Absent
        );
    }
}
