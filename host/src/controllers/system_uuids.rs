//! Which Servers name each system UUID, kept up to date from the Server watch's own events
//! (no list, no scan per reconcile). Two BMCs that report one system (a chassis seen through
//! two managers, a cloned UUID in firmware, mockups that share one) make several Servers with
//! one `systemUUID`; only the oldest of them is discovered, the others are told why.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::watch_index::WatchIndex;
use crate::api::Server;

/// A Server naming a system UUID. Orders oldest first (creation time, then name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claimant {
    /// When the Server was created.
    pub created: Option<Timestamp>,
    /// The Server's name.
    pub name: String,
    /// Its BMC (`spec.bmcRef.name`), if it has one.
    pub bmc: Option<String>,
}

impl Claimant {
    /// How people read it in a message: `server-a (BMC bmc-1)`.
    pub fn describe(&self) -> String {
        match &self.bmc {
            Some(bmc) => format!("{} (BMC {bmc})", self.name),
            None => self.name.clone(),
        }
    }
}

/// The index, shared by the Server watch (writer) and the Server reconciler (reader).
#[derive(Debug)]
pub struct SystemUuidIndex(WatchIndex<Server, Claimant>);

impl Default for SystemUuidIndex {
    fn default() -> Self {
        Self(WatchIndex::new(|server| {
            server
                .spec
                .system_uuid()
                .map(|uuid| {
                    (
                        uuid.to_ascii_lowercase(),
                        Claimant {
                            created: server.metadata.creation_timestamp.as_ref().map(|t| t.0),
                            name: server.name_any(),
                            bmc: server.spec.bmc_ref.as_ref().map(|r| r.name.clone()),
                        },
                    )
                })
                .into_iter()
                .collect()
        }))
    }
}

impl SystemUuidIndex {
    /// Takes one event of the Server watch into account.
    pub fn apply(&self, event: &Event<Server>) {
        self.0.apply(event);
    }

    /// The Servers naming `uuid` (any case) that are older than `name`, oldest first: when
    /// there are any, `name` is not the one to discover.
    pub fn older_than(&self, uuid: &str, name: &str) -> Vec<Claimant> {
        let claimants = self.0.get(&uuid.to_ascii_lowercase());
        match claimants.iter().position(|claimant| claimant.name == name) {
            Some(this) => claimants[..this].to_vec(),
            // Not seen by the watch yet: every claimant is older.
            None => claimants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, uuid: &str, created: i64, bmc: &str) -> Server {
        let created = Timestamp::from_second(1_800_000_000 + created).expect("time");
        serde_json::from_value(serde_json::json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1",
            "kind": "Server",
            "metadata": {"name": name, "creationTimestamp": created.to_string()},
            "spec": {"systemUUID": uuid, "bmcRef": {"name": bmc}},
        }))
        .expect("server")
    }

    fn names(claimants: &[Claimant]) -> Vec<&str> {
        claimants.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_oldest_server_of_a_uuid_has_no_elders_and_the_others_name_it() {
        let index = SystemUuidIndex::default();
        let uuid = "0000AAAA-0000-0000-0000-000000000001";
        index.apply(&Event::Apply(server("b-system-0", uuid, 20, "b")));
        index.apply(&Event::Apply(server(
            "a-system-0",
            &uuid.to_ascii_lowercase(),
            10,
            "a",
        )));
        index.apply(&Event::Apply(server("c-system-0", uuid, 20, "c")));
        index.apply(&Event::Apply(server(
            "other",
            "0000aaaa-0000-0000-0000-000000000002",
            0,
            "a",
        )));
        assert!(index.older_than(uuid, "a-system-0").is_empty());
        assert_eq!(names(&index.older_than(uuid, "b-system-0")), ["a-system-0"]);
        // Same second: the name decides, so every reconcile agrees.
        assert_eq!(
            names(&index.older_than(uuid, "c-system-0")),
            ["a-system-0", "b-system-0"]
        );
        assert_eq!(
            index.older_than(uuid, "c-system-0")[0].describe(),
            "a-system-0 (BMC a)"
        );
        assert!(
            index
                .older_than("0000aaaa-0000-0000-0000-000000000002", "other")
                .is_empty()
        );

        // The oldest goes: the next one is served.
        index.apply(&Event::Delete(server("a-system-0", uuid, 10, "a")));
        assert!(index.older_than(uuid, "b-system-0").is_empty());
        // A Server whose UUID changes leaves its old UUID.
        index.apply(&Event::Apply(server(
            "b-system-0",
            "0000aaaa-0000-0000-0000-000000000003",
            20,
            "b",
        )));
        assert!(index.older_than(uuid, "c-system-0").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_done() {
        let index = SystemUuidIndex::default();
        let uuid = "0000aaaa-0000-0000-0000-000000000001";
        index.apply(&Event::Apply(server("gone", uuid, 0, "a")));
        index.apply(&Event::Apply(server("kept", uuid, 5, "b")));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(server("kept", uuid, 5, "b")));
        assert_eq!(
            names(&index.older_than(uuid, "kept")),
            ["gone"],
            "the old view holds until the relist is done"
        );
        index.apply(&Event::InitDone);
        assert!(index.older_than(uuid, "kept").is_empty());
        assert_eq!(
            names(&index.older_than(uuid, "unseen")),
            ["kept"],
            "a Server the watch has not delivered yet yields to every known one"
        );
    }
}
