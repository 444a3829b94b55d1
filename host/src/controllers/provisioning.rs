//! The provisioning boot of a claimed Server (pure): the claim's boot configuration (named
//! like the claim, in its namespace) is the one the Server names; while the claim wants the
//! server on, each power-on is one attempt with its own boot token and fetch ticket, served
//! only in that attempt's boot window (docs/claims.md, "The provisioning boot").
//!
//! Progress that must survive a restart lives in the Server's annotations, as discovery's
//! does.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::api::ServerBootConfigurationState;
use crate::api::common::{Power, PowerState};

/// Server annotation: the provisioning attempt (counts up per power-on of the claim's OS).
pub const ATTEMPT_ANNOTATION: &str = "ferrometal.dev/provision-attempt";
/// Server annotation: when the attempt started (its token was made).
pub const STARTED_ANNOTATION: &str = "ferrometal.dev/provision-started";
/// Server annotation: the fingerprint of the attempt's fetch ticket (a hash, useless for
/// fetching), so that only the attempt's own token Secret is served.
pub const TICKET_ANNOTATION: &str = "ferrometal.dev/provision-ticket";
/// Server annotation: the attempt's network boot was requested.
pub const BOOTED_ANNOTATION: &str = "ferrometal.dev/provision-boot-requested";
/// ServerBootConfiguration annotation: the Secret (same namespace) whose `boot-token` key is
/// the token of the configuration's ignition, when the ignition Secret is the claimant's own
/// (which has no token).
pub const BOOT_TOKEN_SECRET_ANNOTATION: &str = "ferrometal.dev/boot-token-secret";

/// Every provisioning annotation, removed together when the Server is released.
pub const ANNOTATIONS: [&str; 4] = [
    ATTEMPT_ANNOTATION,
    STARTED_ANNOTATION,
    TICKET_ANNOTATION,
    BOOTED_ANNOTATION,
];

/// The name of the Secret holding the boot token of claim boot configuration `config`.
pub fn token_secret_name(config: &str) -> String {
    const SUFFIX: &str = "-boot-token";
    if config.len() + SUFFIX.len() <= 253 {
        return format!("{config}{SUFFIX}");
    }
    // Object names are at most 253 characters: keep a prefix and a hash of the whole.
    let hash = super::triggers::fingerprint(config);
    format!("{}-{hash:016x}{SUFFIX}", &config[..200])
}

/// Recorded progress of a boot attempt (provisioning, or discovery: see
/// [`BootAttempt::read`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootAttempt {
    /// The current attempt (0: none yet).
    pub attempt: u32,
    /// When it started.
    pub started: Option<Timestamp>,
    /// Its fetch ticket's fingerprint.
    pub ticket: Option<String>,
    /// Whether its network boot was requested.
    pub boot_requested: bool,
}

impl BootAttempt {
    /// The progress recorded in a Server's annotations.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        Self::read(
            annotations,
            [
                ATTEMPT_ANNOTATION,
                STARTED_ANNOTATION,
                TICKET_ANNOTATION,
                BOOTED_ANNOTATION,
            ],
        )
    }

    /// An attempt recorded under `[attempt, started, ticket, boot requested]` annotation
    /// keys (a discovery's are read the same way): the boot was requested only when the
    /// boot-requested annotation names the current attempt.
    pub fn read(
        annotations: &BTreeMap<String, String>,
        [attempt, started, ticket, booted]: [&str; 4],
    ) -> Self {
        let number = annotations
            .get(attempt)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        Self {
            attempt: number,
            started: annotations.get(started).and_then(|t| t.parse().ok()),
            ticket: annotations.get(ticket).cloned(),
            boot_requested: number > 0
                && annotations.get(booted).map(String::as_str) == Some(number.to_string().as_str()),
        }
    }

    /// The attempt whose boot window is open (started, not ended), if any.
    pub fn open_attempt(&self) -> Option<u32> {
        (self.attempt > 0 && self.started.is_some()).then_some(self.attempt)
    }
}

/// What the provisioning of a Reserved Server depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionView {
    /// The claim's `spec.power`.
    pub claim_power: Power,
    /// Whether the Server's `spec.bootConfigurationRef` names the claim's configuration.
    pub names_configuration: bool,
    /// The claim's boot configuration's state (`None`: it does not exist yet).
    pub configuration: Option<Option<ServerBootConfigurationState>>,
    /// Recorded progress.
    pub progress: BootAttempt,
    /// Whether the boot server serves the current attempt (its window is open here).
    pub window_open: bool,
    /// The power state the BMC reports.
    pub power_state: Option<PowerState>,
}

/// The next provisioning step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionStep {
    /// Name the claim's configuration in `spec.bootConfigurationRef`.
    NameConfiguration,
    /// The claim's configuration does not exist yet, or is not Ready.
    AwaitConfiguration,
    /// Make the attempt's token Secret and record its ticket (the boot window opens once
    /// the boot server has them).
    StartAttempt {
        /// The attempt starting.
        attempt: u32,
    },
    /// The configuration is Ready but the boot server does not serve the attempt yet.
    AwaitWindow,
    /// One-time network boot, then power on.
    RequestBoot,
    /// The claim wants the server off.
    PowerOff,
    /// Nothing to do (keep the power state current).
    Idle,
}

/// Decides the next provisioning step (pure; see the tests).
pub fn plan(view: &ProvisionView) -> ProvisionStep {
    if !view.names_configuration {
        return ProvisionStep::NameConfiguration;
    }
    let on = matches!(
        view.power_state,
        Some(PowerState::On | PowerState::PoweringOn)
    );
    if view.claim_power == Power::Off {
        return if on {
            ProvisionStep::PowerOff
        } else {
            ProvisionStep::Idle
        };
    }
    // The attempt's token Secret belongs to the configuration: made once it exists.
    if view.configuration.is_none() {
        return ProvisionStep::AwaitConfiguration;
    }
    let progress = &view.progress;
    let Some(attempt) = progress.open_attempt() else {
        return ProvisionStep::StartAttempt {
            attempt: progress.attempt + 1,
        };
    };
    if progress.boot_requested {
        // Booted; the machine went off since (the claim was Off for a while, or its OS shut
        // down): the claim wants it on, so it boots again, with fresh secrets.
        return if view.power_state == Some(PowerState::Off) {
            ProvisionStep::StartAttempt {
                attempt: attempt + 1,
            }
        } else {
            ProvisionStep::Idle
        };
    }
    match view.configuration {
        Some(Some(ServerBootConfigurationState::Ready)) if view.window_open => {
            ProvisionStep::RequestBoot
        }
        Some(Some(ServerBootConfigurationState::Ready)) => ProvisionStep::AwaitWindow,
        _ => ProvisionStep::AwaitConfiguration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ProvisionView {
        ProvisionView {
            claim_power: Power::On,
            names_configuration: true,
            configuration: Some(Some(ServerBootConfigurationState::Ready)),
            progress: BootAttempt::default(),
            window_open: false,
            power_state: Some(PowerState::Off),
        }
    }

    fn started(attempt: u32, boot_requested: bool) -> BootAttempt {
        BootAttempt {
            attempt,
            started: Some(Timestamp::from_second(1_800_000_000).expect("time")),
            ticket: Some(String::from("t")),
            boot_requested,
        }
    }

    #[test]
    fn a_claim_that_wants_its_server_on_boots_it_once_per_power_on() {
        let cases = [
            (
                ProvisionView {
                    names_configuration: false,
                    ..view()
                },
                ProvisionStep::NameConfiguration,
            ),
            (view(), ProvisionStep::StartAttempt { attempt: 1 }),
            (
                ProvisionView {
                    configuration: None,
                    progress: started(1, false),
                    ..view()
                },
                ProvisionStep::AwaitConfiguration,
            ),
            (
                ProvisionView {
                    progress: started(1, false),
                    ..view()
                },
                ProvisionStep::AwaitWindow,
            ),
            (
                ProvisionView {
                    progress: started(1, false),
                    window_open: true,
                    ..view()
                },
                ProvisionStep::RequestBoot,
            ),
            (
                ProvisionView {
                    progress: started(1, true),
                    window_open: true,
                    power_state: Some(PowerState::On),
                    ..view()
                },
                ProvisionStep::Idle,
            ),
            // Off since its boot: booted again, as a new attempt with fresh secrets.
            (
                ProvisionView {
                    progress: started(1, true),
                    ..view()
                },
                ProvisionStep::StartAttempt { attempt: 2 },
            ),
            (
                ProvisionView {
                    claim_power: Power::Off,
                    progress: started(1, true),
                    power_state: Some(PowerState::On),
                    ..view()
                },
                ProvisionStep::PowerOff,
            ),
            (
                ProvisionView {
                    claim_power: Power::Off,
                    ..view()
                },
                ProvisionStep::Idle,
            ),
        ];
        for (view, expected) in cases {
            assert_eq!(plan(&view), expected, "{view:?}");
        }
    }

    #[test]
    fn progress_reads_back_what_the_annotations_recorded() {
        let annotations: BTreeMap<String, String> = [
            (ATTEMPT_ANNOTATION, "2"),
            (STARTED_ANNOTATION, "2027-01-15T08:00:00Z"),
            (TICKET_ANNOTATION, "abc"),
            (BOOTED_ANNOTATION, "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let progress = BootAttempt::from_annotations(&annotations);
        assert_eq!(progress.attempt, 2);
        assert_eq!(progress.open_attempt(), Some(2));
        // The boot of attempt 1 was requested, not this one's.
        assert!(!progress.boot_requested);
        assert_eq!(
            BootAttempt::from_annotations(&BTreeMap::new()).open_attempt(),
            None
        );
    }

    #[test]
    fn token_secret_names_stay_valid_object_names() {
        assert_eq!(token_secret_name("web-1"), "web-1-boot-token");
        let long = "a".repeat(253);
        let name = token_secret_name(&long);
        assert!(name.len() <= 253, "{}", name.len());
        assert_ne!(name, token_secret_name(&"a".repeat(252)));
    }
}
