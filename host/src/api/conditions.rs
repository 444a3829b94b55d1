//! Condition types and reasons ferrometal reports, in one place (users see them in
//! `kubectl describe`; docs/conditions.md explains each), and the rule for updating a list of
//! conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

// Condition types, by the kind that carries them.

/// Endpoint, BMC, ServerBootConfiguration: the object is doing what it should (Endpoint
/// onboarded, BMC reachable, machine served).
pub const READY: &str = "Ready";
/// Server: how discovery is going.
pub const DISCOVERY: &str = "Discovery";
/// Server: whether the Server's BMC can be called.
pub const BMC_REACHABLE: &str = "BMCReachable";
/// Server (written by the registry): a probe report arrived; its `lastTransitionTime` is the
/// arrival.
pub const PROBE_REPORTED: &str = "ProbeReported";
/// Server (`--inventory-cross-check`): whether the BMC's inventory and the probe's report
/// agree (docs/conditions.md says what is compared).
pub const INVENTORY_CONSISTENT: &str = "InventoryConsistent";
/// ServerBootConfiguration: the image resolved to bootable layers (boot-operator's type).
pub const IMAGE_VALIDATION: &str = "ImageValidation";
/// ServerBootConfiguration: the ignition Secret is usable.
pub const IGNITION_SECRET: &str = "IgnitionSecret";
/// ServerBootConfiguration (written by the boot server): a machine fetched its iPXE script
/// (boot-operator's type).
pub const IPXE_SCRIPT_FETCHED: &str = "IPXEScriptFetched";
/// ServerBootConfiguration (written by the boot server): a machine fetched its ignition
/// (boot-operator's type).
pub const IGNITION_DATA_FETCHED: &str = "IgnitionDataFetched";
/// ServerBootConfiguration (written by the boot server): the discovery system posted
/// `/bootstate` (metal-operator's type).
pub const BOOT_STATE_RECEIVED: &str = "BootStateReceived";
/// ServerBootConfiguration: the fetch ticket was presented a second time (and refused).
pub const FETCH_TICKET_REUSED: &str = "FetchTicketReused";
/// ServerBootConfiguration: a request for the machine came from another address than the
/// one ferrometal's DHCP server leased to it (and was refused).
pub const SOURCE_ADDRESS_REFUSED: &str = "SourceAddressRefused";

/// BMC: how its last credential rotation went (docs/security.md#credential-rotation).
pub const CREDENTIALS_ROTATED: &str = "CredentialsRotated";

/// ServerClaim: whether the claim holds a Server (`spec.serverRef` and the Server's
/// `spec.serverClaimRef` name each other).
pub const BOUND: &str = "Bound";

/// Server: whether the configured server-classifier plugins classified the Server's current
/// facts (docs/plugins.md#writing-a-server-classifier).
pub const CLASSIFIED: &str = "Classified";

// Endpoint `Ready` reasons.

/// Endpoint: its MAC matched the credential database and the BMC was created.
pub const REASON_BMC_CREATED: &str = "BMCCreated";
/// Endpoint: no database entry matches its MAC; nothing was created.
pub const REASON_UNKNOWN_MAC: &str = "UnknownMACAddress";
/// Endpoint: the credential-lookup plugin failed (or none is installed).
pub const REASON_LOOKUP_FAILED: &str = "CredentialLookupFailed";

// BMC `Ready` reasons (the failures are also the Server's `BMCReachable` reasons).

/// BMC: probed successfully. Server `BMCReachable`: the BMC answers.
pub const REASON_CONNECTED: &str = "Connected";
/// BMC: the BMC refused the credentials.
pub const REASON_AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
/// BMC: the BMC could not be reached (connection refused, TLS failure, timeout).
pub const REASON_CONNECTION_FAILED: &str = "ConnectionFailed";
/// BMC: the BMC answered with an error (5xx, HTML instead of JSON, ...).
pub const REASON_INTERNAL_SERVER_ERROR: &str = "InternalServerError";
/// BMC: the driver plugin crashed, ran out of time or memory, or none serves the protocol.
pub const REASON_DRIVER_FAILED: &str = "DriverFailed";
/// BMC: its Endpoint or BMCSecret does not exist (yet).
pub const REASON_REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
/// Endpoint or BMC: a field the schema leaves optional (as metal-operator's does) but the
/// object needs is empty, e.g. an Endpoint without `macAddress` or a BMC without an IP.
pub const REASON_INCOMPLETE: &str = "Incomplete";

// BMC `CredentialsRotated` reasons (and the Server's `BMCReachable` while one runs).

/// BMC: the last rotation was committed; the BMCSecret holds the BMC's own password.
pub const REASON_ROTATED: &str = "Rotated";
/// BMC: a rotation is under way (the message says which phase, or what it waits for).
/// Server `BMCReachable`: its BMC's password is being changed; the BMC is not called.
pub const REASON_CREDENTIALS_ROTATING: &str = "CredentialsRotating";
/// BMC: the last rotation failed and was rolled back (or could not start); the current
/// password still works.
pub const REASON_ROTATION_FAILED: &str = "RotationFailed";
/// BMC: neither the current nor the new password was accepted; a person must look.
pub const REASON_CREDENTIALS_UNCERTAIN: &str = "CredentialsUncertain";
/// BMC: a rotation was asked for, but the BMCSecret may not be rotated.
pub const REASON_NOT_ELIGIBLE: &str = "NotEligible";

// Server `Discovery` reasons.

/// Server: the discovery boot configuration exists; the boot server has not made it Ready.
pub const REASON_WAITING_FOR_BOOT_CONFIGURATION: &str = "WaitingForBootConfiguration";
/// Server: one-time network boot set and power on requested.
pub const REASON_BOOTING: &str = "Booting";
/// Server: booted; metalprobe's (complete) report is awaited.
pub const REASON_WAITING_FOR_REPORT: &str = "WaitingForReport";
/// Server: the BMC refused the boot override or the power on.
pub const REASON_BOOT_FAILED: &str = "BootFailed";
/// Server: no complete report within the timeout; state `Error` until the next attempt.
pub const REASON_DISCOVERY_TIMED_OUT: &str = "DiscoveryTimedOut";
/// Server: the attempt's fetch ticket was used twice (the message names both addresses); a
/// new attempt starts at once with fresh secrets.
pub const REASON_FETCH_TICKET_REUSED: &str = "FetchTicketReused";
/// Server: discovery cannot start, no `--discovery-image` is configured.
pub const REASON_NO_DISCOVERY_IMAGE: &str = "NoDiscoveryImage";
/// Server: discovery cannot start, no ignition-generator plugin is installed.
pub const REASON_NO_IGNITION_GENERATOR: &str = "NoIgnitionGenerator";
/// Server: discovery cannot start, the ignition-generator plugin failed.
pub const REASON_IGNITION_FAILED: &str = "IgnitionFailed";
/// Server: discovery cannot start, no random boot token could be made.
pub const REASON_TOKEN_FAILED: &str = "TokenFailed";
/// Server `Discovery` and ServerBootConfiguration `Ready`: the Server has no (valid) system
/// UUID.
pub const REASON_SYSTEM_UUID_MISSING: &str = "SystemUUIDMissing";
/// Server: out-of-band discovery took the BMC's inventory as the Server's facts.
pub const REASON_DISCOVERED_OUT_OF_BAND: &str = "DiscoveredOutOfBand";
/// Server: out-of-band discovery could not read the system from the BMC.
pub const REASON_INVENTORY_FAILED: &str = "InventoryFailed";
/// Server: the probe reported every NIC the BMC knows; the Server is Available.
pub const REASON_DISCOVERED: &str = "Discovered";
/// Server: Available, but NICs the BMC lists never showed in the probe's report.
pub const REASON_DISCOVERED_WITHOUT_NICS: &str = "DiscoveredWithoutNICs";
/// Server: an older Server names the same system UUID; this one is not booted.
pub const REASON_DUPLICATE_SYSTEM_UUID: &str = "DuplicateSystemUUID";

// Server `BMCReachable` reasons besides the BMC's.

/// Server: the BMC named by `spec.bmcRef` does not exist.
pub const REASON_BMC_NOT_FOUND: &str = "BMCNotFound";

// Server `ProbeReported` reasons.

/// Server: metalprobe's report arrived at the registry.
pub const REASON_REPORT_RECEIVED: &str = "ReportReceived";
/// Server: out-of-band discovery wrote the BMC's inventory as the facts.
pub const REASON_OUT_OF_BAND_INVENTORY: &str = "OutOfBandInventory";

// ServerBootConfiguration reasons.

/// `Ready`: image resolved, ignition usable, Server has a system UUID.
pub const REASON_BOOT_CONFIGURATION_READY: &str = "BootConfigurationReady";
/// `Ready`: the Server named by `serverRef` does not exist.
pub const REASON_SERVER_NOT_FOUND: &str = "ServerNotFound";
/// `ImageValidation`: the image resolved to bootable layers.
pub const REASON_IMAGE_RESOLVED: &str = "ImageResolved";
/// `ImageValidation`: `spec.image` is empty.
pub const REASON_IMAGE_NOT_SET: &str = "ImageNotSet";
/// `ImageValidation`: `spec.image` is not an OCI reference.
pub const REASON_BAD_REFERENCE: &str = "BadReference";
/// `ImageValidation`: the registry is not in `--boot-allowed-registries`.
pub const REASON_REGISTRY_NOT_ALLOWED: &str = "RegistryNotAllowed";
/// `ImageValidation`: the registry could not be reached or answered with an error.
pub const REASON_REGISTRY_UNREACHABLE: &str = "RegistryUnreachable";
/// `ImageValidation`: the registry has no such repository, tag or digest.
pub const REASON_IMAGE_NOT_FOUND: &str = "ImageNotFound";
/// `ImageValidation`: the image index has no manifest for `--boot-architecture`.
pub const REASON_NO_MANIFEST_FOR_ARCHITECTURE: &str = "NoManifestForArchitecture";
/// `ImageValidation`: the image has neither kernel and initramfs nor a UKI.
pub const REASON_MISSING_LAYER: &str = "MissingLayer";
/// `IgnitionSecret`: the Secret holds an ignition (and a boot token).
pub const REASON_IGNITION_FOUND: &str = "IgnitionFound";
/// `IgnitionSecret`: the configuration names no Secret; machines boot without ignition.
pub const REASON_NO_IGNITION: &str = "NoIgnition";
/// `IgnitionSecret`: the named Secret does not exist.
pub const REASON_SECRET_NOT_FOUND: &str = "SecretNotFound";
/// `IgnitionSecret`: the Secret has no non-empty `ignition` key.
pub const REASON_IGNITION_KEY_MISSING: &str = "IgnitionKeyMissing";
/// `IgnitionSecret`: the Secret has no `boot-token` key and unauthenticated ignition is off.
pub const REASON_BOOT_TOKEN_MISSING: &str = "BootTokenMissing";
/// `IPXEScriptFetched`: a machine fetched its iPXE script.
pub const REASON_IPXE_SCRIPT_DELIVERED: &str = "IPXEScriptDelivered";
/// `IgnitionDataFetched`: a machine fetched its ignition with the right token.
pub const REASON_IGNITION_DATA_DELIVERED: &str = "IgnitionDataDelivered";
/// `Ready`: the Server names another configuration in `spec.bootConfigurationRef` (or, for
/// a configuration it does not own, none).
pub const REASON_NOT_THE_SERVERS_BOOT_CONFIGURATION: &str = "NotTheServersBootConfiguration";
/// `BootStateReceived`: the discovery system posted `/bootstate`.
pub const REASON_BOOT_STATE_RECEIVED: &str = "BootStateReceived";
/// `FetchTicketReused`: a second use of the fetch ticket was refused (the message names the
/// first and the second address).
pub const REASON_FETCH_TICKET_REFUSED: &str = "FetchTicketRefused";
/// `SourceAddressRefused`: the message names the address asked from and the leased one.
pub const REASON_NOT_THE_LEASED_ADDRESS: &str = "NotTheLeasedAddress";

// ServerClaim `Bound` reasons.

/// The claim and its Server name each other.
pub const REASON_SERVER_BOUND: &str = "ServerBound";
/// The Server named by `spec.serverRef` cannot be claimed (the message says why).
pub const REASON_SERVER_NOT_CLAIMABLE: &str = "ServerNotClaimable";
/// No Server the selector selects can be claimed (the message counts why not).
pub const REASON_NO_SERVER_AVAILABLE: &str = "NoServerAvailable";
/// `spec.serverSelector` cannot be evaluated (the message quotes why).
pub const REASON_INVALID_SELECTOR: &str = "InvalidSelector";
/// The claim names neither a Server nor a selector.
pub const REASON_NO_SERVER_NAMED: &str = "NoServerNamed";
/// The bound Server was deleted (`spec.serverRef` is immutable: claim anew).
pub const REASON_SERVER_GONE: &str = "ServerGone";
/// More than one Server names the claim (never written by ferrometal; a person's edit).
pub const REASON_BOUND_TWICE: &str = "BoundToSeveralServers";

// Server `Classified` reasons.

/// Every classifier classified the Server's current facts (the message lists what was
/// applied).
pub const REASON_CLASSIFIED: &str = "Classified";
/// A classifier failed; labels, taints and `unclaimable` were left as they were.
pub const REASON_CLASSIFIER_FAILED: &str = "ClassifierFailed";
/// `--hold-until-classified`: unclaimable until discovery gives it facts to classify.
pub const REASON_HELD_UNTIL_CLASSIFIED: &str = "HeldUntilClassified";

// Server `InventoryConsistent` reasons.

/// The BMC's inventory and the probe's report agree in every category both report.
pub const REASON_CONSISTENT: &str = "Consistent";
/// They differ; the message names each difference.
pub const REASON_INVENTORY_DIFFERS: &str = "InventoryDiffers";
/// The BMC's inventory could not be read at the end of the discovery (status `Unknown`).
pub const REASON_BMC_INVENTORY_UNAVAILABLE: &str = "BMCInventoryUnavailable";

// Event reasons that are no condition's.

/// Server Warning Event: Available, but NICs the BMC lists never showed in the probe's
/// report (the condition says `DiscoveredWithoutNICs`).
pub const EVENT_NICS_NOT_REPORTED: &str = "NICsNotReported";

/// One condition type of one kind and every reason ferrometal writes in it.
#[derive(Debug, Clone, Copy)]
pub struct Documented {
    /// The object kind (`Endpoint`, `BMC`, `Server`, `ServerBootConfiguration`).
    pub kind: &'static str,
    /// The condition type.
    pub type_: &'static str,
    /// Every reason the type can carry.
    pub reasons: &'static [&'static str],
}

/// Every condition ferrometal writes, by kind: what docs/conditions.md must explain (a test
/// compares the two).
pub const CATALOGUE: &[Documented] = &[
    Documented {
        kind: "Endpoint",
        type_: READY,
        reasons: &[
            REASON_BMC_CREATED,
            REASON_UNKNOWN_MAC,
            REASON_INCOMPLETE,
            REASON_LOOKUP_FAILED,
        ],
    },
    Documented {
        kind: "BMC",
        type_: READY,
        reasons: &[
            REASON_CONNECTED,
            REASON_AUTHENTICATION_FAILED,
            REASON_CONNECTION_FAILED,
            REASON_INTERNAL_SERVER_ERROR,
            REASON_DRIVER_FAILED,
            REASON_REFERENCE_NOT_FOUND,
            REASON_INCOMPLETE,
        ],
    },
    Documented {
        kind: "BMC",
        type_: CREDENTIALS_ROTATED,
        reasons: &[
            REASON_ROTATED,
            REASON_CREDENTIALS_ROTATING,
            REASON_ROTATION_FAILED,
            REASON_CREDENTIALS_UNCERTAIN,
            REASON_NOT_ELIGIBLE,
        ],
    },
    Documented {
        kind: "Server",
        type_: DISCOVERY,
        reasons: &[
            REASON_WAITING_FOR_BOOT_CONFIGURATION,
            REASON_BOOTING,
            REASON_WAITING_FOR_REPORT,
            REASON_BOOT_FAILED,
            REASON_DISCOVERY_TIMED_OUT,
            REASON_FETCH_TICKET_REUSED,
            REASON_NO_DISCOVERY_IMAGE,
            REASON_NO_IGNITION_GENERATOR,
            REASON_IGNITION_FAILED,
            REASON_TOKEN_FAILED,
            REASON_SYSTEM_UUID_MISSING,
            REASON_DISCOVERED_OUT_OF_BAND,
            REASON_INVENTORY_FAILED,
            REASON_DISCOVERED,
            REASON_DISCOVERED_WITHOUT_NICS,
            REASON_DUPLICATE_SYSTEM_UUID,
        ],
    },
    Documented {
        kind: "Server",
        type_: BMC_REACHABLE,
        reasons: &[
            REASON_CONNECTED,
            REASON_BMC_NOT_FOUND,
            REASON_REFERENCE_NOT_FOUND,
            REASON_INCOMPLETE,
            REASON_DRIVER_FAILED,
            REASON_CONNECTION_FAILED,
            REASON_CREDENTIALS_ROTATING,
        ],
    },
    Documented {
        kind: "Server",
        type_: CLASSIFIED,
        reasons: &[
            REASON_CLASSIFIED,
            REASON_CLASSIFIER_FAILED,
            REASON_HELD_UNTIL_CLASSIFIED,
        ],
    },
    Documented {
        kind: "Server",
        type_: INVENTORY_CONSISTENT,
        reasons: &[
            REASON_CONSISTENT,
            REASON_INVENTORY_DIFFERS,
            REASON_BMC_INVENTORY_UNAVAILABLE,
        ],
    },
    Documented {
        kind: "Server",
        type_: PROBE_REPORTED,
        reasons: &[REASON_REPORT_RECEIVED, REASON_OUT_OF_BAND_INVENTORY],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: READY,
        // Besides its own, `Ready` carries the first failing reason of `ImageValidation`,
        // then `IgnitionSecret`.
        reasons: &[
            REASON_BOOT_CONFIGURATION_READY,
            REASON_SERVER_NOT_FOUND,
            REASON_SYSTEM_UUID_MISSING,
            REASON_NOT_THE_SERVERS_BOOT_CONFIGURATION,
            REASON_IMAGE_NOT_SET,
            REASON_BAD_REFERENCE,
            REASON_REGISTRY_NOT_ALLOWED,
            REASON_REGISTRY_UNREACHABLE,
            REASON_IMAGE_NOT_FOUND,
            REASON_NO_MANIFEST_FOR_ARCHITECTURE,
            REASON_MISSING_LAYER,
            REASON_SECRET_NOT_FOUND,
            REASON_IGNITION_KEY_MISSING,
            REASON_BOOT_TOKEN_MISSING,
        ],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: IMAGE_VALIDATION,
        reasons: &[
            REASON_IMAGE_RESOLVED,
            REASON_IMAGE_NOT_SET,
            REASON_BAD_REFERENCE,
            REASON_REGISTRY_NOT_ALLOWED,
            REASON_REGISTRY_UNREACHABLE,
            REASON_IMAGE_NOT_FOUND,
            REASON_NO_MANIFEST_FOR_ARCHITECTURE,
            REASON_MISSING_LAYER,
        ],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: IGNITION_SECRET,
        reasons: &[
            REASON_IGNITION_FOUND,
            REASON_NO_IGNITION,
            REASON_SECRET_NOT_FOUND,
            REASON_IGNITION_KEY_MISSING,
            REASON_BOOT_TOKEN_MISSING,
        ],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: IPXE_SCRIPT_FETCHED,
        reasons: &[REASON_IPXE_SCRIPT_DELIVERED],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: IGNITION_DATA_FETCHED,
        reasons: &[REASON_IGNITION_DATA_DELIVERED],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: BOOT_STATE_RECEIVED,
        reasons: &[REASON_BOOT_STATE_RECEIVED],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: FETCH_TICKET_REUSED,
        reasons: &[REASON_FETCH_TICKET_REFUSED],
    },
    Documented {
        kind: "ServerBootConfiguration",
        type_: SOURCE_ADDRESS_REFUSED,
        reasons: &[REASON_NOT_THE_LEASED_ADDRESS],
    },
    Documented {
        kind: "ServerClaim",
        type_: BOUND,
        reasons: &[
            REASON_SERVER_BOUND,
            REASON_SERVER_NOT_FOUND,
            REASON_SERVER_NOT_CLAIMABLE,
            REASON_NO_SERVER_AVAILABLE,
            REASON_INVALID_SELECTOR,
            REASON_NO_SERVER_NAMED,
            REASON_SERVER_GONE,
            REASON_BOUND_TWICE,
        ],
    },
];

/// `True`, `False` or `Unknown`.
pub fn status(value: bool) -> String {
    String::from(if value { "True" } else { "False" })
}

/// Sets condition `kind` in `conditions`: the transition time changes only when the status
/// does; reason, message and observed generation are always updated. Returns whether status,
/// reason or message changed (what warrants an Event).
pub fn set(
    conditions: &mut Vec<Condition>,
    kind: &str,
    value: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    set_judged(
        conditions,
        kind,
        Some(value),
        reason,
        message,
        generation,
        now,
    )
}

/// [`set`] for a condition whose truth may not be known: `None` sets it `Unknown`.
pub fn set_judged(
    conditions: &mut Vec<Condition>,
    kind: &str,
    value: Option<bool>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    let status = value.map_or_else(|| String::from("Unknown"), status);
    match conditions.iter_mut().find(|c| c.type_ == kind) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != reason
                || existing.message != message;
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status;
            existing.reason = reason.to_owned();
            existing.message = message.to_owned();
            existing.observed_generation = generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: kind.to_owned(),
                status,
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time: now,
            });
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (kind, type, reason)
    type Row = (String, String, String);

    /// The backticked names in a table cell separated by `, ` or ` / `, or why the cell is
    /// not such a list (prose would hide which reasons it means).
    fn names(cell: &str) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        let mut rest = cell.trim();
        while !rest.is_empty() {
            let inner = rest
                .strip_prefix('`')
                .and_then(|r| r.split_once('`'))
                .filter(|(name, _)| !name.is_empty() && !name.contains(' '));
            let Some((name, after)) = inner else {
                return Err(format!("{cell:?} is not a list of `Name`s"));
            };
            names.push(name.to_owned());
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',').or_else(|| rest.strip_prefix('/')) {
                rest = after.trim_start();
                if rest.is_empty() {
                    return Err(format!("{cell:?} ends with a separator"));
                }
            } else if !rest.is_empty() {
                return Err(format!("{cell:?} is not a list of `Name`s"));
            }
        }
        Ok(names)
    }

    /// Every (kind, type, reason) of the tables in docs/conditions.md: one table per
    /// `## <Kind>` section, columns Type | Status | Reason | ....
    fn documented(markdown: &str) -> Result<BTreeSet<Row>, String> {
        let mut kind = None;
        let mut rows = BTreeSet::new();
        for (number, line) in markdown.lines().enumerate() {
            if let Some(heading) = line.strip_prefix("## ") {
                kind = Some(heading.trim().to_owned());
                continue;
            }
            let Some(row) = line.strip_prefix('|') else {
                continue;
            };
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            if cells.first().is_none_or(|c| !c.starts_with('`')) {
                continue; // header or separator row
            }
            let at = |error: String| format!("docs/conditions.md line {}: {error}", number + 1);
            let kind = kind
                .as_ref()
                .ok_or_else(|| at(String::from("a row before any section")))?;
            let [type_cell, _status, reason_cell, ..] = cells.as_slice() else {
                return Err(at(String::from("fewer than three columns")));
            };
            let types = names(type_cell).map_err(at)?;
            let [type_] = types.as_slice() else {
                return Err(at(format!("{type_cell:?} names more than one type")));
            };
            let reasons = names(reason_cell).map_err(at)?;
            if reasons.is_empty() {
                return Err(at(String::from("a row without a reason")));
            }
            for reason in reasons {
                rows.insert((kind.clone(), type_.clone(), reason));
            }
        }
        Ok(rows)
    }

    fn catalogued() -> BTreeSet<Row> {
        CATALOGUE
            .iter()
            .flat_map(|entry| {
                entry.reasons.iter().map(|reason| {
                    (
                        entry.kind.to_owned(),
                        entry.type_.to_owned(),
                        (*reason).to_owned(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn docs_conditions_md_explains_exactly_the_catalogued_conditions() {
        let docs = documented(include_str!("../../../docs/conditions.md")).expect("parsable");
        let catalogue = catalogued();
        let show = |rows: Vec<&Row>| {
            rows.iter()
                .map(|(kind, type_, reason)| format!("\n  {kind} {type_} {reason}"))
                .collect::<String>()
        };
        let undocumented = show(catalogue.difference(&docs).collect());
        let uncatalogued = show(docs.difference(&catalogue).collect());
        assert!(
            undocumented.is_empty() && uncatalogued.is_empty(),
            "in the catalogue but not in docs/conditions.md:{undocumented}\n\
             in docs/conditions.md but not in the catalogue:{uncatalogued}"
        );
    }

    #[test]
    fn the_catalogue_names_each_kind_and_type_once_and_each_reason_once_per_type() {
        let mut seen = BTreeSet::new();
        for entry in CATALOGUE {
            assert!(
                seen.insert((entry.kind, entry.type_)),
                "{} {} twice",
                entry.kind,
                entry.type_
            );
            let reasons: BTreeSet<_> = entry.reasons.iter().collect();
            assert_eq!(
                reasons.len(),
                entry.reasons.len(),
                "{} {}",
                entry.kind,
                entry.type_
            );
        }
    }

    #[test]
    fn a_reason_cell_is_a_list_of_names_and_nothing_else() {
        assert_eq!(
            names("`A`, `B` / `C`"),
            Ok(vec![
                String::from("A"),
                String::from("B"),
                String::from("C")
            ])
        );
        assert!(names("*the first failing reason below*, or `A`").is_err());
        assert!(names("`A` or `B`").is_err());
        assert!(names("`A`,").is_err());
        assert!(names("").is_ok_and(|names| names.is_empty()));
    }

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("timestamp"))
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        let unknown = (false, REASON_UNKNOWN_MAC, "a");
        let failed = (false, REASON_LOOKUP_FAILED, "b");
        let created = (true, REASON_BMC_CREATED, "c");
        let mut apply = |(value, reason, message): (bool, &str, &str), generation, at| {
            set(
                &mut conditions,
                READY,
                value,
                reason,
                message,
                Some(generation),
                time(at),
            )
        };
        assert!(apply(unknown, 1, 10), "a new condition is news");
        assert!(apply(failed, 2, 20), "a new reason is news");
        assert!(!apply(failed, 3, 25), "a new generation alone is not");
        assert!(apply(created, 3, 30));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].reason, REASON_BMC_CREATED);
        assert_eq!(conditions[0].observed_generation, Some(3));
        assert_eq!(conditions[0].last_transition_time, time(30));
    }

    #[test]
    fn a_new_reason_with_the_same_status_keeps_the_transition_time() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            REASON_UNKNOWN_MAC,
            "a",
            Some(1),
            time(10),
        );
        set(
            &mut conditions,
            READY,
            false,
            REASON_LOOKUP_FAILED,
            "b",
            Some(2),
            time(20),
        );
        assert_eq!(conditions[0].last_transition_time, time(10));
        assert_eq!(conditions[0].observed_generation, Some(2));
    }
}
