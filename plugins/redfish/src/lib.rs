//! `redfish`: the bundled BMC driver for DMTF Redfish services. See README.md.

mod accounts;
#[cfg(test)]
mod canned;
mod driver;
mod expand;
mod hpe_storage;
mod inventory;
mod inventory_model;
mod model;
mod quirks;
mod session;

use std::time::Duration;

use ferrometal_plugin_sdk::bmc_driver::http::{Auth, BmcHttp, get_json};
use ferrometal_plugin_sdk::bmc_driver::{
    AccountChange, AccountPassword, AccountPolicy, BmcDriver, BootOverride, DriverInfo, Identity,
    Level, PowerAction, PowerState, System, Target, log,
};
use ferrometal_plugin_sdk::types::{PluginError, Settings};

use crate::expand::{Collections, Expand};

/// Longest `power-wait-seconds` accepted. The host stops a driver call after its deadline
/// (60 s by default, `bmc_driver::DEFAULT_LIMITS`); the wait counts from the start of the
/// call and ends at least 15 s before that deadline, leaving time for the last power read and
/// the session logout.
const MAX_POWER_WAIT: u64 = 45;

struct Redfish;

/// How the driver authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    /// HTTP Basic on every request (the host adds it; the password never enters the plugin).
    Basic,
    /// A Redfish session per call (needs the password, hence `credentials/reveal`).
    Session,
}

/// The driver's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    auth: AuthMode,
    power_wait: Duration,
}

impl Options {
    fn from_settings(settings: &Settings) -> Result<Self, PluginError> {
        let mut options = Self {
            auth: AuthMode::Basic,
            power_wait: Duration::ZERO,
        };
        for (key, value) in settings {
            match (key.as_str(), value.as_str()) {
                ("auth", "basic") => options.auth = AuthMode::Basic,
                ("auth", "session") => options.auth = AuthMode::Session,
                ("auth", other) => {
                    return Err(PluginError::InvalidInput(format!(
                        "auth must be basic or session, not {other:?}"
                    )));
                }
                ("power-wait-seconds", seconds) => {
                    let seconds: u64 = seconds.parse().ok().filter(|s| *s <= MAX_POWER_WAIT).ok_or_else(|| {
                        PluginError::InvalidInput(format!(
                            "power-wait-seconds must be a whole number from 0 to {MAX_POWER_WAIT}, not {seconds:?}"
                        ))
                    })?;
                    options.power_wait = Duration::from_secs(seconds);
                }
                (other, _) => {
                    return Err(PluginError::InvalidInput(format!(
                        "unknown setting {other:?}; the redfish driver takes auth and power-wait-seconds"
                    )));
                }
            }
        }
        Ok(options)
    }
}

/// Runs `operation` with the call's authentication: Basic, or a session that is always
/// logged out afterwards. The operation also gets how the call reads collections: as the
/// service root read for the login advertises, or (Basic) to be learnt when needed.
fn with_http<T>(
    target: &Target<'_>,
    operation: impl FnOnce(&BmcHttp<'_>, &Collections) -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    let options = Options::from_settings(target.settings)?;
    match options.auth {
        AuthMode::Basic => operation(&target.http(), &Collections::unread()),
        AuthMode::Session => {
            let anonymous = target.http().with_auth(Auth::None);
            let root: model::ServiceRoot = get_json(&anonymous, driver::ROOT)?;
            let collections = Collections::new(Expand::advertised(&root.protocol_features));
            let sessions = root
                .links
                .sessions
                .map(|link| link.id)
                .or_else(|| {
                    root.session_service
                        .map(|link| format!("{}/Sessions", link.id))
                })
                .ok_or_else(|| {
                    PluginError::Unsupported(String::from(
                        "auth=session, but the BMC has no SessionService; use auth=basic",
                    ))
                })?;
            let session = session::login(
                &anonymous,
                &sessions,
                &target.username(),
                &target.reveal_password(),
            )?;
            let http = target.http_with_token(session.token.clone());
            let result = operation(&http, &collections);
            session::logout(&http, &session);
            result
        }
    }
}

impl BmcDriver for Redfish {
    fn info() -> DriverInfo {
        DriverInfo {
            name: String::from("redfish"),
            version: String::from(env!("CARGO_PKG_VERSION")),
            manufacturers: Vec::new(),
            features: vec![
                String::from("sessions"),
                String::from("uefi-http-boot"),
                String::from("accounts"),
            ],
        }
    }

    fn validate_settings(settings: &Settings) -> Result<(), PluginError> {
        Options::from_settings(settings).map(|_| ())
    }

    fn probe(target: &Target<'_>) -> Result<Identity, PluginError> {
        with_http(target, |http, _| driver::probe(http))
    }

    fn system(target: &Target<'_>, system_uri: &str) -> Result<System, PluginError> {
        with_http(target, |http, collections| {
            driver::get_system(http, collections, system_uri)
        })
    }

    fn power_state(target: &Target<'_>, system_uri: &str) -> Result<PowerState, PluginError> {
        with_http(target, |http, _| driver::power_state(http, system_uri))
    }

    fn set_power(
        target: &Target<'_>,
        system_uri: &str,
        action: PowerAction,
    ) -> Result<(), PluginError> {
        let clock = driver::CallClock(std::time::Instant::now());
        let wait = Options::from_settings(target.settings)?.power_wait;
        with_http(target, |http, _| {
            driver::set_power(http, system_uri, action)?;
            if wait.is_zero() {
                return Ok(());
            }
            let wanted = driver::settled_state(action);
            let state = driver::wait_for_power(http, system_uri, wanted, wait, &clock)?;
            if state == wanted {
                Ok(())
            } else {
                Err(PluginError::Other(Some(format!(
                    "the BMC accepted the reset but {system_uri} is still {state:?} after {}s",
                    wait.as_secs()
                ))))
            }
        })
    }

    fn set_boot_override(
        target: &Target<'_>,
        system_uri: &str,
        boot: &BootOverride,
    ) -> Result<BootOverride, PluginError> {
        let stored = with_http(target, |http, _| {
            driver::set_boot_override(http, system_uri, boot)
        })?;
        let fields = [
            (String::from("system"), system_uri.to_owned()),
            (String::from("quirks"), format!("{:?}", stored.quirks)),
        ];
        match stored.persisted {
            driver::Persisted::AsRequested => {}
            driver::Persisted::KnownQuirk => log(
                Level::Debug,
                "one-time boot override reads back Continuous, as this BMC is known to report",
                &fields,
            ),
            driver::Persisted::Unexpected => log(
                Level::Warn,
                "one-time boot override reads back Continuous: the BMC may keep it for every boot",
                &fields,
            ),
        }
        Ok(stored.boot)
    }

    fn account_policy(target: &Target<'_>) -> Result<AccountPolicy, PluginError> {
        with_http(target, |http, _| accounts::account_policy(http))
    }

    fn set_account_password(
        target: &Target<'_>,
        account: &AccountPassword<'_>,
    ) -> Result<AccountChange, PluginError> {
        let user = account.username();
        let password = account.reveal_password();
        let change = with_http(target, |http, _| {
            accounts::set_password(http, &user, &password, account.create_with_role)
        })
        .map_err(|error| accounts::redact(error, &password))?;
        log(
            Level::Info,
            if change.created {
                "created the BMC account"
            } else {
                "set the BMC account's password"
            },
            &[
                (String::from("account"), user),
                (String::from("uri"), change.uri.clone()),
            ],
        );
        Ok(change)
    }
}

ferrometal_plugin_sdk::register_bmc_driver!(Redfish, capabilities = ["credentials/reveal"]);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_default_to_basic_auth_and_no_waiting() {
        let options = Options::from_settings(&[]).expect("defaults");
        assert_eq!(
            options,
            Options {
                auth: AuthMode::Basic,
                power_wait: Duration::ZERO
            }
        );
        let options = Options::from_settings(&settings(&[
            ("auth", "session"),
            ("power-wait-seconds", "20"),
        ]))
        .expect("valid");
        assert_eq!(options.auth, AuthMode::Session);
        assert_eq!(options.power_wait, Duration::from_secs(20));
    }

    #[test]
    fn bad_settings_are_named() {
        for (pairs, expected) in [
            (vec![("auth", "digest")], "auth must be basic or session"),
            (vec![("power-wait-seconds", "999")], "power-wait-seconds"),
            (vec![("colour", "blue")], "unknown setting \"colour\""),
        ] {
            let error = Options::from_settings(&settings(&pairs)).expect_err(expected);
            assert!(
                matches!(&error, PluginError::InvalidInput(m) if m.contains(expected)),
                "{error:?}"
            );
        }
    }
}
