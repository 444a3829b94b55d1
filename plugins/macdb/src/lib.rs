//! `macdb`: the credential-lookup plugin that reads metal-operator's MAC-prefix database.
//!
//! The database is YAML in metal-operator's format, passed by the operator as the setting
//! `database` (from a file or ConfigMap). See README.md.

mod database;

use ferrometal_plugin_sdk::credential_lookup::{BmcProfile, CredentialLookup, DefaultCredential};
use ferrometal_plugin_sdk::types::{PluginError, Settings};

pub use database::{Database, Entry, normalise_mac};

/// The setting that holds the database.
pub const DATABASE_SETTING: &str = "database";

struct MacDb;

/// The database from the settings, or why it cannot be used.
fn database(settings: &Settings) -> Result<Database, PluginError> {
    if let Some((key, _)) = settings.iter().find(|(key, _)| key != DATABASE_SETTING) {
        return Err(PluginError::InvalidInput(format!(
            "unknown setting {key:?}; macdb takes only {DATABASE_SETTING:?}"
        )));
    }
    let text = settings
        .iter()
        .find(|(key, _)| key == DATABASE_SETTING)
        .map(|(_, value)| value.as_str())
        .ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "the setting {DATABASE_SETTING:?} (the MAC-prefix database YAML) is missing"
            ))
        })?;
    Database::parse(text).map_err(PluginError::InvalidInput)
}

impl CredentialLookup for MacDb {
    fn validate_settings(settings: &Settings) -> Result<(), PluginError> {
        database(settings).map(|_| ())
    }

    fn lookup(mac: &str, settings: &Settings) -> Result<Option<BmcProfile>, PluginError> {
        let database = database(settings)?;
        let mac = normalise_mac(mac).map_err(PluginError::InvalidInput)?;
        Ok(database.lookup(&mac).map(|entry| BmcProfile {
            manufacturer: entry.manufacturer.clone(),
            protocol: entry.protocol.clone(),
            scheme: entry.protocol_scheme.clone(),
            port: entry.port,
            default_credentials: entry
                .default_credentials
                .iter()
                .map(|credential| DefaultCredential {
                    username: credential.username.clone(),
                    password: credential.password.clone(),
                })
                .collect(),
            console_protocol: entry.console.as_ref().map(|console| console.kind.clone()),
            console_port: entry.console.as_ref().map(|console| console.port),
        }))
    }
}

ferrometal_plugin_sdk::register_credential_lookup!(MacDb);
