//! What the boot server knows: one entry per Ready ServerBootConfiguration, found by system
//! UUID, by network identifier (IP or MAC, for `/httpboot`) and by layer digest (for the
//! image proxy).
//!
//! The index is a cache of API-server state, filled by the BootConfig reconciler (which runs
//! for every ServerBootConfiguration at start-up) and emptied when a configuration goes away,
//! so a restarted operator serves the same answers once it has reconciled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use oci_client::Reference;

use super::image::{BootLayers, LayerKind};
use super::sync::IndexSync;
use super::uuid::SystemUuid;

/// Namespace and name of a ServerBootConfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything needed to answer one machine.
#[derive(Debug)]
pub struct BootEntry {
    /// The configuration it comes from.
    pub config: ConfigKey,
    /// The machine's system UUID.
    pub uuid: SystemUuid,
    /// The Server it is (cluster-scoped name).
    pub server: String,
    /// The image the layers come from.
    pub image: Reference,
    /// The bootable layers.
    pub layers: BootLayers,
    /// The ignition to serve, if the configuration names a Secret.
    pub ignition: Option<bytes::Bytes>,
    /// The registry token: what the machine presents to the registry (it travels only
    /// inside the ignition body). `None`: ignition is served without a ticket, which only
    /// `--boot-allow-unauthenticated-ignition` permits.
    pub token: Option<String>,
    /// IPs and MACs (lowercase) the machine may ask `/httpboot` from.
    pub network_identifiers: Vec<String>,
    /// The discovery attempt whose boot window this entry is (`None`: not a discovery
    /// configuration). The Server powers the machine on only once its attempt is served.
    pub discovery_attempt: Option<u32>,
    /// The provisioning attempt (a claim's boot) whose boot window this entry is (`None`: not
    /// a claim's configuration). Such an entry never posts probe reports.
    pub provision_attempt: Option<u32>,
    /// What happened to this entry since it was made.
    pub state: EntryState,
}

/// What happens to an entry while it is served: its rendered script, which fetches were
/// reported, and who used its fetch ticket.
#[derive(Debug, Default)]
pub struct EntryState {
    /// The iPXE script, rendered at the first `/ipxe/<uuid>` and served from here after
    /// (`None` inside: the image has nothing iPXE can boot); one per boot server URL
    /// ([`super::server::BootServerConfig::url_for`]).
    pub script: [OnceLock<Option<bytes::Bytes>>; 2],
    /// Whether the iPXE-script fetch was already reported on the configuration.
    pub script_reported: AtomicBool,
    /// Whether the ignition fetch was already reported on the configuration.
    pub ignition_reported: AtomicBool,
    /// Whether a second use of the fetch ticket was already reported.
    pub reuse_reported: AtomicBool,
    /// Whether a request from a wrong source address was already reported.
    pub source_refusal_reported: AtomicBool,
    /// The address the fetch ticket was used from (it is single-use).
    pub ticket_holder: Mutex<Option<IpAddr>>,
    /// The fetch ticket, derived once from the registry token.
    pub ticket: OnceLock<Option<Ticket>>,
    /// How its UKI is personalised for UEFI HTTP boot (the patches over the image's UKI
    /// layer), worked out at the first `/uki/<id>`; one per boot server URL.
    pub uki: [OnceLock<Result<Vec<super::uki::Patch>, super::uki::UkiError>>; 2],
}

/// A boot's fetch ticket and the name conditions give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// What the script's ignition URL carries ([`fetch_ticket`]).
    pub value: String,
    /// Its [`ticket_fingerprint`].
    pub fingerprint: String,
}

impl Ticket {
    /// The ticket of registry token `token`.
    pub fn of(token: &str) -> Self {
        let value = fetch_ticket(token);
        let fingerprint = ticket_fingerprint(&value);
        Self { value, fingerprint }
    }
}

/// What a fetch ticket presented to `/ignition/<uuid>` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketUse {
    /// The first use: the ignition is served.
    First,
    /// Another use from the address that used it first (a fetch whose answer was cut off,
    /// by an operator restart for one, and is tried again): served again.
    Holder,
    /// The ticket was used before, from the other address given: refused.
    Reused(IpAddr),
}

/// The fetch ticket of a boot: derived from its registry token by a one-way hash, so that
/// whoever reads the script (where the ticket travels) learns nothing about the token, and
/// so that every replica and every restart derives the same ticket without storing it.
pub fn fetch_ticket(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"ferrometal fetch ticket\0");
    hash.update(token.as_bytes());
    hex::encode(hash.finalize())
}

/// A short name of a ticket for conditions: enough to tell two tickets apart, useless for
/// fetching (a hash of the ticket, not a prefix of it).
pub fn ticket_fingerprint(ticket: &str) -> String {
    let mut fingerprint = hex::encode(Sha256::digest(ticket.as_bytes()));
    fingerprint.truncate(12);
    fingerprint
}

impl BootEntry {
    /// The fetch ticket the script carries (`None` when served without one), derived at
    /// the first ask.
    pub fn ticket(&self) -> Option<&Ticket> {
        self.state
            .ticket
            .get_or_init(|| self.token.as_deref().map(Ticket::of))
            .as_ref()
    }

    /// Whether its fetch ticket has fingerprint `wanted` (any ticket, or none, when `None`):
    /// a discovery attempt is served only from the Secret holding its own token.
    pub fn has_ticket(&self, wanted: Option<&str>) -> bool {
        wanted.is_none_or(|wanted| {
            self.ticket()
                .is_some_and(|ticket| ticket.fingerprint == wanted)
        })
    }

    /// Marks `fetch` as reported; true only the first time (so each is reported once per
    /// entry, and a new token or image makes a new entry).
    pub fn first_report(&self, fetch: Fetch) -> bool {
        let flag = match fetch {
            Fetch::Script => &self.state.script_reported,
            Fetch::Ignition => &self.state.ignition_reported,
            Fetch::TicketReused => &self.state.reuse_reported,
            Fetch::SourceRefused => &self.state.source_refusal_reported,
            // Every boot-state post is news.
            Fetch::BootState => return true,
        };
        !flag.swap(true, Ordering::Relaxed)
    }

    /// Uses the fetch ticket from `peer`: the first use wins; a later one from the same
    /// address is the holder trying again, from any other address it is refused.
    pub fn use_ticket(&self, peer: IpAddr) -> TicketUse {
        let mut holder = self
            .state
            .ticket_holder
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *holder {
            Some(first) if first == peer => TicketUse::Holder,
            Some(first) => TicketUse::Reused(first),
            None => {
                *holder = Some(peer);
                TicketUse::First
            }
        }
    }

    /// Takes note of who used this entry's fetch ticket, from its configuration's
    /// `IgnitionDataFetched` message (after a restart, or written by another replica that
    /// served the fetch). A message naming another ticket (an earlier attempt's) changes
    /// nothing, nor does one when the holder is known.
    pub fn note_fetch_record(&self, message: &str) {
        let Some(ticket) = self.ticket() else {
            return;
        };
        if let Some(holder) = super::server::ticket_holder(message, &ticket.fingerprint) {
            self.state
                .ticket_holder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(holder);
        }
    }

    /// Whether the entry serves the same thing as `other` (then a re-reconcile keeps the
    /// old entry and its state).
    pub fn same_content(&self, other: &BootEntry) -> bool {
        self.config == other.config
            && self.uuid == other.uuid
            && self.server == other.server
            && self.image == other.image
            && self.layers == other.layers
            && self.ignition == other.ignition
            && self.token == other.token
            && self.network_identifiers == other.network_identifiers
            && self.discovery_attempt == other.discovery_attempt
            && self.provision_attempt == other.provision_attempt
    }
}

/// Something a machine fetched, reported on its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fetch {
    /// `/ipxe/<uuid>`.
    Script,
    /// `/ignition/<uuid>`.
    Ignition,
    /// `POST /bootstate`: the discovery system says it booted.
    BootState,
    /// A second use of the fetch ticket, refused.
    TicketReused,
    /// A request from another address than the one ferrometal's DHCP leased, refused.
    SourceRefused,
}

/// Where the proxy fetches a blob from.
#[derive(Debug, Clone)]
pub struct BlobSource {
    /// An image that has the blob (same repository).
    pub image: Reference,
    /// What the blob is (decides the content type).
    pub kind: LayerKind,
}

#[derive(Debug, Default)]
struct Inner {
    by_uuid: HashMap<SystemUuid, Arc<BootEntry>>,
    by_config: HashMap<ConfigKey, SystemUuid>,
    by_identifier: HashMap<String, SystemUuid>,
    /// Digest → source and how many entries use it.
    blobs: HashMap<String, (BlobSource, usize)>,
    /// Configuration → the entry of another configuration for the same system that it
    /// replaced.
    displaced: HashMap<ConfigKey, Arc<BootEntry>>,
}

/// The shared index; cheap to clone. [`BootIndex::default`] is complete as it is (filled by
/// hand); the operator's is [`BootIndex::filled_by_watch`].
#[derive(Debug, Clone, Default)]
pub struct BootIndex {
    inner: Arc<RwLock<Inner>>,
    sync: Arc<IndexSync>,
    /// Told the Server of each discovery attempt the index starts serving.
    windows: Arc<Mutex<Option<mpsc::Sender<String>>>>,
}

/// How many opened boot windows wait for the Server controller before more are dropped
/// (it looks again on its own a few seconds later).
const OPENED_WINDOWS_QUEUE: usize = 1024;

/// What [`BootIndex::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new or changed entry.
    Updated,
    /// The same content was there already.
    Unchanged,
    /// Another configuration already serves this UUID; it was replaced (the newest wins).
    Replaced(ConfigKey),
}

impl BootIndex {
    /// An index the boot-configuration controller fills from its watch: not synced until
    /// the controller has seen every configuration of its first listing.
    pub fn filled_by_watch() -> Self {
        Self {
            inner: Arc::default(),
            sync: Arc::new(IndexSync::awaiting_listing()),
            windows: Arc::default(),
        }
    }

    /// The names of the Servers whose discovery attempt the index starts serving, from now
    /// on (a later call takes the stream over): the Server controller powers a machine on
    /// once its boot window is open, and learns it here without polling.
    pub fn opened_windows(&self) -> mpsc::Receiver<String> {
        let (sender, receiver) = mpsc::channel(OPENED_WINDOWS_QUEUE);
        *self.windows.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// Whether the index serves discovery `attempt` of `config`, with the fetch ticket of
    /// fingerprint `ticket` when one is named.
    pub fn serves_discovery(&self, config: &ConfigKey, attempt: u32, ticket: Option<&str>) -> bool {
        self.serves(config, |entry| {
            entry.discovery_attempt == Some(attempt) && entry.has_ticket(ticket)
        })
    }

    /// Whether the index serves provisioning `attempt` of `config` (a claim's boot), with the
    /// fetch ticket of fingerprint `ticket` when one is named.
    pub fn serves_provisioning(
        &self,
        config: &ConfigKey,
        attempt: u32,
        ticket: Option<&str>,
    ) -> bool {
        self.serves(config, |entry| {
            entry.provision_attempt == Some(attempt) && entry.has_ticket(ticket)
        })
    }

    fn serves(&self, config: &ConfigKey, wanted: impl Fn(&BootEntry) -> bool) -> bool {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_config
            .get(config)
            .and_then(|uuid| inner.by_uuid.get(uuid))
            .is_some_and(|entry| wanted(entry))
    }

    /// Whether the index holds every configuration yet (after a start), and how the
    /// controller reports its progress.
    pub fn sync(&self) -> &IndexSync {
        &self.sync
    }

    /// Adds or replaces the entry of `entry.config`.
    pub fn insert(&self, entry: BootEntry) -> Inserted {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = inner.by_uuid.get(&entry.uuid)
            && existing.same_content(&entry)
        {
            return Inserted::Unchanged;
        }
        inner.remove_config(&entry.config);
        let replaced = inner.by_uuid.get(&entry.uuid).cloned();
        if let Some(other) = &replaced {
            inner.remove_config(&other.config);
            // Served again if this one goes away first (two Servers briefly claiming one
            // system: the younger is dropped as a duplicate and the elder must not be left
            // unserved).
            inner.displaced.insert(entry.config.clone(), other.clone());
        }
        let opened = (entry.discovery_attempt.is_some() || entry.provision_attempt.is_some())
            .then(|| entry.server.clone());
        inner.add(Arc::new(entry));
        drop(inner);
        if let Some(server) = opened
            && let Some(windows) = self
                .windows
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
        {
            // Full (or nobody listening on a standby replica): the Server looks again soon.
            let _ = windows.try_send(server);
        }
        let replaced = replaced.map(|other| other.config.clone());
        match replaced {
            Some(other) => Inserted::Replaced(other),
            None => Inserted::Updated,
        }
    }

    /// Drops the entry of `config`, if any; an entry it replaced is served again.
    pub fn remove(&self, config: &ConfigKey) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drop_config(config);
    }

    /// Drops every entry whose configuration `keep` rejects (after a re-list).
    pub fn retain(&self, keep: impl Fn(&ConfigKey) -> bool) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<ConfigKey> = inner
            .by_config
            .keys()
            .filter(|config| !keep(config))
            .cloned()
            .collect();
        for config in gone {
            inner.drop_config(&config);
        }
    }

    /// The entry for `uuid`, trying the other SMBIOS byte order second.
    pub fn by_uuid(&self, uuid: &SystemUuid) -> Option<Arc<BootEntry>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_uuid
            .get(uuid)
            .or_else(|| inner.by_uuid.get(&uuid.smbios_swapped()))
            .cloned()
    }

    /// The entry of the first identifier (IP or lowercase MAC) that matches one.
    pub fn by_identifier<'a>(
        &self,
        identifiers: impl IntoIterator<Item = &'a str>,
    ) -> Option<Arc<BootEntry>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        identifiers.into_iter().find_map(|identifier| {
            inner
                .by_identifier
                .get(identifier)
                .and_then(|uuid| inner.by_uuid.get(uuid))
                .cloned()
        })
    }

    /// [`BootEntry::note_fetch_record`] on `config`'s entry, if it is served, so that every
    /// replica refuses a ticket another one served from other addresses.
    pub fn note_ticket_use(&self, config: &ConfigKey, message: &str) {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inner
            .by_config
            .get(config)
            .and_then(|uuid| inner.by_uuid.get(uuid))
        {
            entry.note_fetch_record(message);
        }
    }

    /// Where to fetch blob `digest` from, if a served image has it.
    pub fn blob(&self, digest: &str) -> Option<BlobSource> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.blobs.get(digest).map(|(source, _)| source.clone())
    }

    /// How many machines are served.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_uuid
            .len()
    }

    /// Whether no machine is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn add(&mut self, entry: Arc<BootEntry>) {
        for layer in entry.layers.all() {
            self.blobs
                .entry(layer.digest.clone())
                .and_modify(|(_, count)| *count += 1)
                .or_insert_with(|| {
                    (
                        BlobSource {
                            image: entry.image.clone(),
                            kind: layer.kind,
                        },
                        1,
                    )
                });
        }
        for identifier in &entry.network_identifiers {
            self.by_identifier
                .insert(identifier.clone(), entry.uuid.clone());
        }
        self.by_config
            .insert(entry.config.clone(), entry.uuid.clone());
        self.by_uuid.insert(entry.uuid.clone(), entry);
    }

    /// Removes `config` for good: nothing it replaced is kept for it any more, and what it
    /// replaced is served again when its system is free.
    fn drop_config(&mut self, config: &ConfigKey) {
        self.remove_config(config);
        self.displaced.retain(|_, older| older.config != *config);
        if let Some(older) = self.displaced.remove(config)
            && !self.by_uuid.contains_key(&older.uuid)
            && !self.by_config.contains_key(&older.config)
        {
            self.add(older);
        }
    }

    fn remove_config(&mut self, config: &ConfigKey) {
        let Some(uuid) = self.by_config.remove(config) else {
            return;
        };
        let Some(entry) = self.by_uuid.remove(&uuid) else {
            return;
        };
        for identifier in &entry.network_identifiers {
            if self.by_identifier.get(identifier) == Some(&uuid) {
                self.by_identifier.remove(identifier);
            }
        }
        for layer in entry.layers.all() {
            if let Some((_, count)) = self.blobs.get_mut(&layer.digest) {
                *count -= 1;
                if *count == 0 {
                    self.blobs.remove(&layer.digest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::image::BootLayer;
    use super::*;

    fn key(name: &str) -> ConfigKey {
        ConfigKey {
            namespace: String::from("default"),
            name: name.to_owned(),
        }
    }

    fn entry(config: &str, uuid: &str, kernel: &str, token: &str) -> BootEntry {
        BootEntry {
            config: key(config),
            uuid: SystemUuid::parse(uuid).expect("uuid"),
            server: String::from("server"),
            image: "127.0.0.1:5000/discovery:1".parse().expect("reference"),
            layers: BootLayers {
                kernel: Some(BootLayer {
                    digest: format!("sha256:{kernel}"),
                    size: 1,
                    kind: LayerKind::Kernel,
                }),
                ..BootLayers::default()
            },
            ignition: Some(bytes::Bytes::from_static(b"{}")),
            token: Some(token.to_owned()),
            network_identifiers: vec![String::from("10.0.0.7"), String::from("aa:bb:cc:dd:ee:ff")],
            discovery_attempt: None,
            provision_attempt: None,
            state: EntryState::default(),
        }
    }

    const UUID: &str = "00112233-4455-6677-8899-aabbccddeeff";

    #[test]
    fn a_claims_window_is_asked_by_its_provisioning_attempt_only() {
        let index = BootIndex::default();
        let mut opened = index.opened_windows();
        index.insert(BootEntry {
            provision_attempt: Some(2),
            ..entry("a", UUID, "k1", "t2")
        });
        let ticket = Ticket::of("t2").fingerprint;
        assert!(index.serves_provisioning(&key("a"), 2, Some(&ticket)));
        assert!(
            !index.serves_provisioning(&key("a"), 1, Some(&ticket)),
            "an earlier attempt"
        );
        assert!(
            !index.serves_provisioning(&key("a"), 2, Some(&Ticket::of("t1").fingerprint)),
            "another attempt's ticket"
        );
        assert!(
            !index.serves_discovery(&key("a"), 2, None),
            "a claim's boot is no discovery"
        );
        assert_eq!(opened.try_recv().ok().as_deref(), Some("server"), "woken");
    }

    #[test]
    fn an_opened_discovery_window_is_told_once_and_asked_by_attempt() {
        let index = BootIndex::default();
        let mut opened = index.opened_windows();
        let discovery = |attempt, token| BootEntry {
            discovery_attempt: Some(attempt),
            provision_attempt: None,
            ..entry("a", UUID, "k1", token)
        };
        assert!(!index.serves_discovery(&key("a"), 1, None));
        index.insert(entry("a", UUID, "k1", "t"));
        assert!(
            !index.serves_discovery(&key("a"), 1, None),
            "not a discovery entry"
        );
        assert!(opened.try_recv().is_err(), "no window opened");
        index.insert(discovery(1, "t1"));
        assert!(index.serves_discovery(&key("a"), 1, None));
        let ticket = |token: &str| Ticket::of(token).fingerprint;
        assert!(index.serves_discovery(&key("a"), 1, Some(&ticket("t1"))));
        assert!(
            !index.serves_discovery(&key("a"), 1, Some(&ticket("t2"))),
            "another ticket of the same attempt"
        );
        assert!(
            !index.serves_discovery(&key("a"), 2, None),
            "another attempt"
        );
        assert!(
            !index.serves_discovery(&key("b"), 1, None),
            "another configuration"
        );
        assert_eq!(opened.try_recv().ok().as_deref(), Some("server"));
        index.insert(discovery(1, "t1"));
        assert!(opened.try_recv().is_err(), "unchanged: told once");
        index.insert(discovery(2, "t2"));
        assert!(
            index.serves_discovery(&key("a"), 2, Some(&ticket("t2"))),
            "the next attempt"
        );
        assert_eq!(opened.try_recv().ok().as_deref(), Some("server"));
        index.remove(&key("a"));
        assert!(!index.serves_discovery(&key("a"), 2, None), "closed");
    }

    #[test]
    fn an_entry_is_found_by_uuid_either_byte_order_identifier_and_digest() {
        let index = BootIndex::default();
        assert_eq!(index.insert(entry("a", UUID, "k1", "t")), Inserted::Updated);
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        assert!(index.by_uuid(&uuid).is_some());
        assert!(index.by_uuid(&uuid.smbios_swapped()).is_some());
        assert_eq!(
            index
                .by_identifier(["192.0.2.1", "aa:bb:cc:dd:ee:ff"])
                .map(|e| e.config.clone()),
            Some(key("a"))
        );
        assert!(index.blob("sha256:k1").is_some());
        index.remove(&key("a"));
        assert!(index.is_empty());
        assert!(index.by_identifier(["10.0.0.7"]).is_none());
        assert!(
            index.blob("sha256:k1").is_none(),
            "unused blobs are not proxied"
        );
    }

    #[test]
    fn reconciling_the_same_content_keeps_the_reported_flags() {
        let index = BootIndex::default();
        index.insert(entry("a", UUID, "k1", "t"));
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        assert!(
            index
                .by_uuid(&uuid)
                .expect("entry")
                .first_report(Fetch::Script)
        );
        assert_eq!(
            index.insert(entry("a", UUID, "k1", "t")),
            Inserted::Unchanged
        );
        assert!(
            !index
                .by_uuid(&uuid)
                .expect("entry")
                .first_report(Fetch::Script)
        );
        assert_eq!(
            index.insert(entry("a", UUID, "k1", "new-token")),
            Inserted::Updated
        );
        assert!(
            index
                .by_uuid(&uuid)
                .expect("entry")
                .first_report(Fetch::Script),
            "a new boot is reported again"
        );
    }

    #[test]
    fn a_fetch_ticket_is_used_once_and_reveals_nothing_of_the_token() {
        let entry = entry("a", UUID, "k1", "registry-token");
        let ticket = entry.ticket().expect("ticket").value.clone();
        assert_eq!(ticket.len(), 64);
        assert_ne!(ticket, "registry-token");
        assert_eq!(
            ticket,
            fetch_ticket("registry-token"),
            "derived the same everywhere"
        );
        assert_ne!(fetch_ticket("other"), ticket);
        assert!(!ticket.contains(&ticket_fingerprint(&ticket)));
        let machine: IpAddr = "10.0.0.7".parse().expect("ip");
        let bystander: IpAddr = "10.0.0.9".parse().expect("ip");
        assert_eq!(entry.use_ticket(machine), TicketUse::First);
        assert_eq!(entry.use_ticket(bystander), TicketUse::Reused(machine));
        assert_eq!(
            entry.use_ticket(machine),
            TicketUse::Holder,
            "the machine may fetch again (an answer cut off)"
        );
        let restarted = super::tests::entry("a", UUID, "k1", "registry-token");
        restarted.note_fetch_record(&super::super::server::fetched_by(
            machine,
            &ticket_fingerprint(&ticket),
        ));
        assert_eq!(restarted.use_ticket(bystander), TicketUse::Reused(machine));
        // Another replica served the fetch: its record reaches this replica's index.
        let index = BootIndex::default();
        index.insert(super::tests::entry("a", UUID, "k1", "registry-token"));
        let fingerprint = ticket_fingerprint(&fetch_ticket("registry-token"));
        index.note_ticket_use(
            &key("a"),
            &super::super::server::fetched_by(bystander, "0000"),
        );
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        assert_eq!(
            index.by_uuid(&uuid).expect("entry").use_ticket(machine),
            TicketUse::First,
            "an earlier ticket's record changes nothing"
        );
        let index = BootIndex::default();
        index.insert(super::tests::entry("a", UUID, "k1", "registry-token"));
        index.note_ticket_use(
            &key("a"),
            &super::super::server::fetched_by(machine, &fingerprint),
        );
        assert_eq!(
            index.by_uuid(&uuid).expect("entry").use_ticket(bystander),
            TicketUse::Reused(machine)
        );
    }

    #[test]
    fn a_second_configuration_for_one_uuid_replaces_the_first_and_shared_blobs_stay() {
        let index = BootIndex::default();
        index.insert(entry("a", UUID, "k1", "t"));
        index.insert(entry(
            "other",
            "ffffffff-4455-6677-8899-aabbccddeeff",
            "k1",
            "t",
        ));
        assert_eq!(
            index.insert(entry("b", UUID, "k2", "t")),
            Inserted::Replaced(key("a"))
        );
        assert_eq!(index.len(), 2);
        assert!(index.blob("sha256:k1").is_some(), "still used by `other`");
        index.retain(|config| config.name != "other");
        assert!(index.blob("sha256:k1").is_none());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn the_configuration_a_removed_one_replaced_is_served_again() {
        let index = BootIndex::default();
        let uuid = SystemUuid::parse(UUID).expect("uuid");
        index.insert(entry("elder", UUID, "k1", "t1"));
        assert_eq!(
            index.insert(entry("twin", UUID, "k1", "t2")),
            Inserted::Replaced(key("elder"))
        );
        index.remove(&key("twin"));
        let served = index.by_uuid(&uuid).expect("the elder is served again");
        assert_eq!(served.config, key("elder"));
        assert!(index.blob("sha256:k1").is_some());
        // Once the elder is gone for good, nothing comes back for it.
        index.insert(entry("twin", UUID, "k1", "t2"));
        index.remove(&key("elder"));
        index.remove(&key("twin"));
        assert!(index.by_uuid(&uuid).is_none());
        assert!(index.blob("sha256:k1").is_none());
    }
}
