//! `profiles`: the bundled server classifier. It sorts servers into hardware profiles by rules
//! the operator gives it as the setting `rules` (YAML or JSON): the first profile whose
//! conditions (CPU model, memory, disk count, accelerators) hold sets its labels, taints and
//! unclaimable reason; servers with accelerators can be tainted until burn-in is done. See
//! README.md for the format.

mod rules;

use ferrometal_plugin_sdk::server_classifier::{Classification, ServerClassifier, ServerFacts};
use ferrometal_plugin_sdk::types::{PluginError, Settings};

pub use rules::{BURN_IN_DONE, BurnIn, DEFAULT_BURN_IN_KEY, Match, Pattern, Profile, Range, Rules};

/// The setting that holds the rules.
pub const RULES_SETTING: &str = "rules";

struct Profiles;

/// The rules from the settings, or why they cannot be used.
fn rules(settings: &Settings) -> Result<Rules, PluginError> {
    if let Some((key, _)) = settings.iter().find(|(key, _)| key != RULES_SETTING) {
        return Err(PluginError::InvalidInput(format!(
            "unknown setting {key:?}; profiles takes only {RULES_SETTING:?}"
        )));
    }
    let text = settings
        .iter()
        .find(|(key, _)| key == RULES_SETTING)
        .map(|(_, value)| value.as_str())
        .ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "the setting {RULES_SETTING:?} (the profile rules, YAML or JSON) is missing"
            ))
        })?;
    Rules::parse(text).map_err(PluginError::InvalidInput)
}

impl ServerClassifier for Profiles {
    fn validate_settings(settings: &Settings) -> Result<(), PluginError> {
        rules(settings).map(|_| ())
    }

    fn classify(facts: &ServerFacts, settings: &Settings) -> Result<Classification, PluginError> {
        let rules = rules(settings)?;
        let profile = rules.profile_for(facts).map_or("none", |p| p.name.as_str());
        ferrometal_plugin_sdk::log::debug!("server {} matches profile {profile}", facts.name);
        Ok(rules.classify(facts))
    }
}

ferrometal_plugin_sdk::register_server_classifier!(Profiles);
