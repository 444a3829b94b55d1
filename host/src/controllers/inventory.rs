//! What each BMC last reported about its systems, kept from the BMC reconciler's probes so
//! that the Server reconciler judges a report and writes the discovery ignition without
//! asking the BMC again (a chassis BMC with S systems is read once per probe, not once per
//! system per step).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::plugins::types::{Identity, System};

/// The last successful probe of each BMC, by BMC name.
#[derive(Default)]
pub struct BmcInventory {
    identities: RwLock<HashMap<String, Arc<Identity>>>,
}

impl BmcInventory {
    /// Records what `bmc` reported.
    pub fn record(&self, bmc: &str, identity: Arc<Identity>) {
        self.identities
            .write()
            .expect("inventory lock")
            .insert(bmc.to_owned(), identity);
    }

    /// Forgets a BMC that is gone.
    pub fn forget(&self, bmc: &str) {
        self.identities.write().expect("inventory lock").remove(bmc);
    }

    /// What `bmc` last reported, if it was probed since the operator started.
    pub fn identity(&self, bmc: &str) -> Option<Arc<Identity>> {
        self.identities
            .read()
            .expect("inventory lock")
            .get(bmc)
            .cloned()
    }
}

/// The system among those a BMC reports: by URI, else by UUID (any case).
pub fn find_system<'a>(
    identity: &'a Identity,
    system_uri: &str,
    system_uuid: Option<&str>,
) -> Option<&'a System> {
    let uuid = system_uuid.map(str::to_ascii_lowercase);
    identity.systems.iter().find(|system| {
        system.uri == system_uri
            || (uuid.is_some() && system.uuid.as_ref().map(|u| u.to_ascii_lowercase()) == uuid)
    })
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
        }
    }

    #[test]
    fn a_system_is_found_by_uri_or_by_uuid_in_any_case() {
        let identity = Identity {
            manufacturer: None,
            model: None,
            serial: None,
            firmware: None,
            manager_uuid: None,
            systems: vec![
                system("/redfish/v1/Systems/1", "AB-CD"),
                system("/redfish/v1/Systems/2", "ef-01"),
            ],
        };
        assert_eq!(
            find_system(&identity, "/redfish/v1/Systems/2", None).map(|s| s.uri.as_str()),
            Some("/redfish/v1/Systems/2")
        );
        assert_eq!(
            find_system(&identity, "", Some("ab-cd")).map(|s| s.uri.as_str()),
            Some("/redfish/v1/Systems/1")
        );
        assert!(find_system(&identity, "/x", Some("00")).is_none());
        let inventory = BmcInventory::default();
        assert!(inventory.identity("bmc").is_none());
        inventory.record("bmc", Arc::new(identity));
        assert_eq!(inventory.identity("bmc").map(|i| i.systems.len()), Some(2));
        inventory.forget("bmc");
        assert!(inventory.identity("bmc").is_none());
    }
}
