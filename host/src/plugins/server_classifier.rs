//! Server-classifier plugins: turn a server's facts into labels, taints and an unclaimable
//! verdict.
//!
//! A classifier is a function of the facts and its settings (the world has no network). Its
//! answer is checked here before anyone applies it (`check_classification`): keys and values
//! must be what Kubernetes accepts as labels, within [`MAX_LABELS`], [`MAX_TAINTS`] and
//! [`MAX_REASON_CHARS`], and no key may sit under one of the operator's own prefixes
//! ([`RESERVED_PREFIXES`]). Anything else is the plugin's error, naming the offending item.

use std::path::Path;
use std::time::Duration;

use wasmtime::component::HasSelf;

use super::bindings::credential_lookup::ferrometal::plugin::log;
use super::bindings::server_classifier::ServerClassifierPre;
use super::bindings::server_classifier::exports::ferrometal::plugin::classifier as wit;
use super::error::{CallError, LoadError};
use super::host::HostState;
use super::metadata::World;
use super::runtime::{Limits, PluginComponent, PluginHandle, PluginRuntime, plugin_handle_methods};
use super::types::GuestError;
use crate::api::server::TaintEffect;

/// Default limits of a classification: a pure function of small inputs, like ignition
/// generation.
pub const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 64 << 20,
    deadline: Duration::from_secs(2),
};

/// The most labels one classification may set.
pub const MAX_LABELS: usize = 64;

/// The most taints one classification may set.
pub const MAX_TAINTS: usize = 32;

/// The longest `unclaimable` reason, in characters (it becomes a condition message).
pub const MAX_REASON_CHARS: usize = 1024;

/// Label and taint key prefixes a classifier may not use: the operator's own annotations,
/// labels and taints live there (`metal.ironcore.dev/…` is metal-operator's), and a
/// classifier must not be able to forge them. Subdomains (`x.ferrometal.dev/…`) are refused
/// too.
pub const RESERVED_PREFIXES: &[&str] = &["ferrometal.dev", "metal.ironcore.dev"];

/// What the operator knows about a server, as a classifier gets it. Unknown facts are `None`
/// or empty. Read from JSON (camelCase, labels as an object) by `ferrometal plugin call …
/// classify --facts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassifierInput {
    /// The Server object's name.
    pub name: String,
    /// SMBIOS system UUID.
    #[serde(default)]
    pub system_uuid: Option<String>,
    /// System manufacturer.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// System model.
    #[serde(default)]
    pub model: Option<String>,
    /// System serial number.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// System SKU.
    #[serde(default)]
    pub sku: Option<String>,
    /// BIOS version.
    #[serde(default)]
    pub bios_version: Option<String>,
    /// CPU sockets.
    #[serde(default)]
    pub processors: Vec<ProcessorFacts>,
    /// Installed memory in bytes.
    #[serde(default)]
    pub total_memory_bytes: Option<u64>,
    /// Physical drives.
    #[serde(default)]
    pub drives: Vec<DriveFacts>,
    /// PCIe accelerators (GPUs, FPGAs, DPUs, …).
    #[serde(default)]
    pub accelerators: Vec<AcceleratorFacts>,
    /// Network interfaces.
    #[serde(default)]
    pub nics: Vec<NicFacts>,
    /// The Server's labels, except those the classifiers set (so a verdict does not feed on
    /// itself).
    #[serde(default, with = "pairs_as_map")]
    pub labels: Vec<(String, String)>,
    /// The BMC managing the server, if any.
    #[serde(default)]
    pub bmc: Option<BmcFacts>,
}

/// One CPU socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProcessorFacts {
    /// Model name, e.g. `AMD EPYC 9654 96-Core Processor`.
    pub model: Option<String>,
    /// Architecture, e.g. `x86_64`.
    pub architecture: Option<String>,
    /// Physical cores.
    pub cores: Option<u32>,
    /// Hardware threads.
    pub threads: Option<u32>,
}

/// One physical drive.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DriveFacts {
    /// Device or Redfish name.
    pub name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Media type, e.g. `SSD`, `HDD`.
    pub media_type: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
}

/// A PCIe accelerator.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceleratorFacts {
    /// Name (PCI address or Redfish id).
    pub name: String,
    /// PCI class name.
    #[serde(default)]
    pub class: Option<String>,
    /// Vendor name.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Model name.
    #[serde(default)]
    pub model: Option<String>,
    /// PCI vendor id, hex (`0x10de`).
    #[serde(default)]
    pub vendor_id: Option<String>,
    /// PCI device id, hex.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// A network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NicFacts {
    /// Interface name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Whether the link is up, if known.
    #[serde(default)]
    pub link_up: Option<bool>,
}

/// The BMC managing a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BmcFacts {
    /// The BMC object's name.
    pub name: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default)]
    pub firmware_version: Option<String>,
}

/// A classifier's checked verdict on one server. Printed as JSON by `ferrometal plugin call
/// … classify` (labels as an object, in the plugin's order).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// Labels to set.
    #[serde(with = "pairs_as_map")]
    pub labels: Vec<(String, String)>,
    /// Taints to set.
    pub taints: Vec<ClassifierTaint>,
    /// Why the server must not be claimed; `None` = claimable as far as this classifier is
    /// concerned.
    pub unclaimable: Option<String>,
}

/// A taint a classifier sets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassifierTaint {
    /// A Kubernetes qualified name.
    pub key: String,
    /// A label value, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What it does to claims that do not tolerate it.
    pub effect: TaintEffect,
}

/// A loaded server classifier. Cheap to clone.
#[derive(Clone)]
pub struct ServerClassifierPlugin {
    handle: PluginHandle<ServerClassifierPre<HostState>>,
}

plugin_handle_methods!(ServerClassifierPlugin);

impl PluginRuntime {
    /// Loads a server classifier from `path`.
    pub fn load_server_classifier(&self, path: &Path) -> Result<ServerClassifierPlugin, LoadError> {
        self.load_server_classifier_granted(&PluginComponent::read(path)?, &[])
    }

    /// [`load_server_classifier`](Self::load_server_classifier) with `grants` given to this
    /// plugin beyond the ones the runtime gives every plugin (the world has no capabilities
    /// to request, so a plugin that asks for one is refused as unknown).
    pub fn load_server_classifier_granted(
        &self,
        component: &PluginComponent,
        grants: &[String],
    ) -> Result<ServerClassifierPlugin, LoadError> {
        let handle = self.link(
            component,
            World::ServerClassifier,
            grants,
            DEFAULT_LIMITS,
            |linker, _| log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state),
            ServerClassifierPre::new,
        )?;
        Ok(ServerClassifierPlugin { handle })
    }
}

impl ServerClassifierPlugin {
    /// Asks the classifier whether `settings` are acceptable.
    #[tracing::instrument(skip(self, settings), fields(plugin = %self.handle.identity.name))]
    pub async fn validate_settings(&self, settings: &[(String, String)]) -> Result<(), CallError> {
        let settings = settings.to_vec();
        self.handle
            .call("validate-settings", None, async |plugin, store| {
                let classifier = plugin.ferrometal_plugin_classifier();
                classifier.call_validate_settings(store, &settings).await
            })
            .await
    }

    /// Classifies the server `input` describes with the operator's `settings`. The answer is
    /// checked (`check_classification`) before it is returned; an invalid one is the
    /// plugin's error naming the offending label, taint or reason.
    #[tracing::instrument(skip(self, input, settings), fields(plugin = %self.handle.identity.name, server = %input.name))]
    pub async fn classify(
        &self,
        input: &ClassifierInput,
        settings: &[(String, String)],
    ) -> Result<Classification, CallError> {
        let facts = wit::ServerFacts::from(input);
        let settings = settings.to_vec();
        self.handle
            .call("classify", None, async |plugin, store| {
                let classifier = plugin.ferrometal_plugin_classifier();
                let result = classifier.call_classify(store, &facts, &settings).await?;
                Ok(result.map_err(GuestError::from).and_then(|answer| {
                    let classification = Classification::from(answer);
                    check_classification(&classification).map(|()| classification)
                }))
            })
            .await
    }
}

impl From<&ClassifierInput> for wit::ServerFacts {
    fn from(input: &ClassifierInput) -> Self {
        Self {
            name: input.name.clone(),
            system_uuid: input.system_uuid.clone(),
            manufacturer: input.manufacturer.clone(),
            model: input.model.clone(),
            serial_number: input.serial_number.clone(),
            sku: input.sku.clone(),
            bios_version: input.bios_version.clone(),
            processors: input
                .processors
                .iter()
                .map(|cpu| wit::ProcessorFacts {
                    model: cpu.model.clone(),
                    architecture: cpu.architecture.clone(),
                    cores: cpu.cores,
                    threads: cpu.threads,
                })
                .collect(),
            total_memory_bytes: input.total_memory_bytes,
            drives: input
                .drives
                .iter()
                .map(|drive| wit::DriveFacts {
                    name: drive.name.clone(),
                    model: drive.model.clone(),
                    media_type: drive.media_type.clone(),
                    capacity_bytes: drive.capacity_bytes,
                })
                .collect(),
            accelerators: input
                .accelerators
                .iter()
                .map(|device| wit::AcceleratorFacts {
                    name: device.name.clone(),
                    class: device.class.clone(),
                    vendor: device.vendor.clone(),
                    model: device.model.clone(),
                    vendor_id: device.vendor_id.clone(),
                    device_id: device.device_id.clone(),
                })
                .collect(),
            nics: input
                .nics
                .iter()
                .map(|nic| wit::NicFacts {
                    name: nic.name.clone(),
                    mac: nic.mac.clone(),
                    link_up: nic.link_up,
                })
                .collect(),
            labels: input.labels.clone(),
            bmc: input.bmc.as_ref().map(|bmc| wit::BmcFacts {
                name: bmc.name.clone(),
                manufacturer: bmc.manufacturer.clone(),
                model: bmc.model.clone(),
                firmware_version: bmc.firmware_version.clone(),
            }),
        }
    }
}

impl From<wit::Classification> for Classification {
    fn from(answer: wit::Classification) -> Self {
        Self {
            labels: answer.labels,
            taints: answer
                .taints
                .into_iter()
                .map(|taint| ClassifierTaint {
                    key: taint.key,
                    value: taint.value,
                    effect: match taint.effect {
                        wit::TaintEffect::NoBind => TaintEffect::NoBind,
                        wit::TaintEffect::Evict => TaintEffect::Evict,
                    },
                })
                .collect(),
            unclaimable: answer.unclaimable,
        }
    }
}

/// Checks a classifier's answer: every label a valid Kubernetes label outside
/// [`RESERVED_PREFIXES`] and set once, every taint key a valid qualified name there too with
/// a label value, each (key, effect) once, within [`MAX_LABELS`] and [`MAX_TAINTS`], and a
/// non-empty reason of at most [`MAX_REASON_CHARS`]. The error is the plugin's, naming the
/// first offending item.
fn check_classification(classification: &Classification) -> Result<(), GuestError> {
    let invalid =
        |why: String| GuestError::Other(Some(format!("returned an invalid classification: {why}")));
    if classification.labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "{} labels, at most {MAX_LABELS} are allowed",
            classification.labels.len()
        )));
    }
    for (index, (key, value)) in classification.labels.iter().enumerate() {
        check_key(key).map_err(|why| invalid(format!("label key {key:?} {why}")))?;
        check_label_value(value)
            .map_err(|why| invalid(format!("label {key:?}: value {value:?} {why}")))?;
        if classification.labels[..index].iter().any(|(k, _)| k == key) {
            return Err(invalid(format!("label {key:?} is given twice")));
        }
    }
    if classification.taints.len() > MAX_TAINTS {
        return Err(invalid(format!(
            "{} taints, at most {MAX_TAINTS} are allowed",
            classification.taints.len()
        )));
    }
    for (index, taint) in classification.taints.iter().enumerate() {
        let key = &taint.key;
        check_key(key).map_err(|why| invalid(format!("taint key {key:?} {why}")))?;
        if let Some(value) = &taint.value {
            check_label_value(value)
                .map_err(|why| invalid(format!("taint {key:?}: value {value:?} {why}")))?;
        }
        if classification.taints[..index]
            .iter()
            .any(|other| other.key == *key && other.effect == taint.effect)
        {
            return Err(invalid(format!(
                "taint {key:?} with effect {:?} is given twice",
                taint.effect
            )));
        }
    }
    if let Some(reason) = &classification.unclaimable {
        if reason.trim().is_empty() {
            return Err(invalid(String::from(
                "the unclaimable reason is empty (give a reason, or none to leave the server claimable)",
            )));
        }
        let chars = reason.chars().count();
        if chars > MAX_REASON_CHARS {
            return Err(invalid(format!(
                "the unclaimable reason has {chars} characters, at most {MAX_REASON_CHARS} are allowed"
            )));
        }
    }
    Ok(())
}

/// Why `key` is not a Kubernetes qualified name (`[prefix/]name`, the prefix a DNS subdomain)
/// a classifier may use, or `Ok`. The text continues "label key \"…\" …".
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|why| format!("has an invalid prefix: {why}"))?;
        if let Some(reserved) = RESERVED_PREFIXES
            .iter()
            .find(|reserved| prefix == **reserved || prefix.ends_with(&format!(".{reserved}")))
        {
            return Err(format!(
                "uses the prefix {reserved}, which is reserved for the operator"
            ));
        }
    }
    if name.is_empty() {
        return Err(String::from("has an empty name"));
    }
    check_label_value(name).map_err(|why| format!("has an invalid name: it {why}"))
}

/// Why `value` is not a Kubernetes label value (also the rule for a qualified name's name
/// part, which must not be empty): at most 63 characters, alphanumerics with `-`, `_` and `.`
/// between them. The text continues "value \"…\" …".
fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err(format!("has {} characters, at most 63", value.len()));
    }
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !value.chars().all(inner) {
        return Err(String::from(
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    let ends = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if !ends(value.chars().next()) || !ends(value.chars().last()) {
        return Err(String::from("must start and end with a letter or digit"));
    }
    Ok(())
}

/// Why `prefix` is not a DNS-1123 subdomain: at most 253 characters, dot-separated labels of
/// lower-case letters, digits and `-`, each starting and ending with a letter or digit.
fn check_dns_subdomain(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err(String::from("it is empty"));
    }
    if prefix.len() > 253 {
        return Err(format!("it has {} characters, at most 253", prefix.len()));
    }
    for label in prefix.split('.') {
        let valid = !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "{prefix:?} is not a DNS subdomain (lower-case letters, digits, '-' and '.')"
            ));
        }
    }
    Ok(())
}

/// `Vec<(String, String)>` as a JSON object, in order (labels in `--facts` files and in
/// `plugin call` output).
mod pairs_as_map {
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        pairs: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(pairs.iter().map(|(key, value)| (key, value)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        struct Pairs;

        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, String)>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of string keys and string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(pairs)
            }
        }

        deserializer.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    fn taint(key: &str, value: Option<&str>, effect: TaintEffect) -> ClassifierTaint {
        ClassifierTaint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect,
        }
    }

    fn with_labels(labels: &[(&str, &str)]) -> Classification {
        Classification {
            labels: labels.iter().map(|(k, v)| pair(k, v)).collect(),
            ..Classification::default()
        }
    }

    fn message(classification: &Classification) -> String {
        check_classification(classification)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_well_formed_classification_passes() {
        let classification = Classification {
            labels: vec![
                pair("hardware.example.com/sku", "gpu-large"),
                pair("tier", "A_1.b"),
                pair("example.com/empty", ""),
            ],
            taints: vec![
                taint("example.com/burn-in", None, TaintEffect::NoBind),
                taint("example.com/burn-in", None, TaintEffect::Evict),
                taint("gpu", Some("nvidia"), TaintEffect::NoBind),
            ],
            unclaimable: Some(String::from("no hardware profile matches")),
        };
        assert_eq!(check_classification(&classification), Ok(()));
        assert_eq!(check_classification(&Classification::default()), Ok(()));
    }

    #[test]
    fn invalid_labels_are_named_with_the_reason() {
        for (key, value, why) in [
            (
                "has space",
                "x",
                "label key \"has space\" has an invalid name",
            ),
            ("", "x", "label key \"\" has an empty name"),
            ("example.com/", "x", "has an empty name"),
            ("/sku", "x", "has an invalid prefix: it is empty"),
            ("Example.com/sku", "x", "is not a DNS subdomain"),
            ("a/b/c", "x", "has an invalid name"),
            ("-sku", "x", "must start and end with a letter or digit"),
            (
                "sku",
                "gpu large",
                "label \"sku\": value \"gpu large\" may hold only",
            ),
            ("sku", "gpu-", "must start and end"),
            ("sku", &"v".repeat(64), "has 64 characters, at most 63"),
        ] {
            let error = message(&with_labels(&[(key, value)]));
            assert!(error.starts_with("plugin error: returned an invalid classification: "));
            assert!(error.contains(why), "{key:?}={value:?}: {error}");
        }
        let long_name = format!("example.com/{}", "n".repeat(64));
        assert!(message(&with_labels(&[(&long_name, "x")])).contains("at most 63"));
        let long_prefix = format!("{}/sku", "p".repeat(254));
        assert!(message(&with_labels(&[(&long_prefix, "x")])).contains("at most 253"));
    }

    #[test]
    fn the_operators_own_prefixes_are_refused_for_labels_and_taints() {
        for key in [
            "ferrometal.dev/sku",
            "metal.ironcore.dev/serverclaim",
            "classes.ferrometal.dev/sku",
        ] {
            let error = message(&with_labels(&[(key, "x")]));
            assert!(error.contains("reserved for the operator"), "{error}");
            let error = message(&Classification {
                taints: vec![taint(key, None, TaintEffect::NoBind)],
                ..Classification::default()
            });
            assert!(
                error.contains(&format!("taint key {key:?} uses the prefix")),
                "{error}"
            );
        }
        assert_eq!(
            check_classification(&with_labels(&[("notferrometal.dev/sku", "x")])),
            Ok(()),
            "only the domains themselves and their subdomains"
        );
    }

    #[test]
    fn repeated_labels_and_taints_are_refused() {
        let error = message(&with_labels(&[("sku", "a"), ("sku", "a")]));
        assert!(error.contains("label \"sku\" is given twice"), "{error}");
        let error = message(&Classification {
            taints: vec![
                taint("gpu", None, TaintEffect::NoBind),
                taint("gpu", Some("x"), TaintEffect::NoBind),
            ],
            ..Classification::default()
        });
        assert!(
            error.contains("taint \"gpu\" with effect NoBind is given twice"),
            "{error}"
        );
    }

    #[test]
    fn invalid_taints_are_named_with_the_reason() {
        let error = message(&Classification {
            taints: vec![taint("burn in", None, TaintEffect::NoBind)],
            ..Classification::default()
        });
        assert!(error.contains("taint key \"burn in\""), "{error}");
        let error = message(&Classification {
            taints: vec![taint("burn-in", Some("not done"), TaintEffect::NoBind)],
            ..Classification::default()
        });
        assert!(
            error.contains("taint \"burn-in\": value \"not done\""),
            "{error}"
        );
    }

    #[test]
    fn too_many_labels_or_taints_are_refused() {
        let labels: Vec<(String, String)> = (0..=MAX_LABELS)
            .map(|i| pair(&format!("l{i}"), "x"))
            .collect();
        let error = message(&Classification {
            labels,
            ..Classification::default()
        });
        assert!(error.contains("65 labels, at most 64"), "{error}");
        let taints = (0..=MAX_TAINTS)
            .map(|i| taint(&format!("t{i}"), None, TaintEffect::NoBind))
            .collect();
        let error = message(&Classification {
            taints,
            ..Classification::default()
        });
        assert!(error.contains("33 taints, at most 32"), "{error}");
    }

    #[test]
    fn the_unclaimable_reason_must_be_present_and_short() {
        let reason = |text: String| Classification {
            unclaimable: Some(text),
            ..Classification::default()
        };
        assert!(message(&reason(String::from(" "))).contains("reason is empty"));
        let error = message(&reason("é".repeat(MAX_REASON_CHARS + 1)));
        assert!(error.contains("1025 characters, at most 1024"), "{error}");
        assert_eq!(
            check_classification(&reason("é".repeat(MAX_REASON_CHARS))),
            Ok(()),
            "counted in characters, not bytes"
        );
    }

    #[test]
    fn facts_read_from_json_with_labels_as_an_object_in_order() {
        let input: ClassifierInput = serde_json::from_str(
            r#"{"name": "server-1", "totalMemoryBytes": 1024,
                "processors": [{"model": "EPYC", "cores": 96}],
                "accelerators": [{"name": "gpu0", "vendorId": "0x10de"}],
                "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01", "linkUp": true}],
                "labels": {"zone": "b", "rack": "r1"},
                "bmc": {"name": "bmc-1", "firmwareVersion": "1.2"}}"#,
        )
        .expect("valid facts");
        assert_eq!(input.labels, [pair("zone", "b"), pair("rack", "r1")]);
        assert_eq!(input.processors[0].cores, Some(96));
        assert_eq!(input.accelerators[0].vendor_id.as_deref(), Some("0x10de"));
        assert_eq!(input.nics[0].link_up, Some(true));
        assert_eq!(
            input
                .bmc
                .as_ref()
                .and_then(|b| b.firmware_version.as_deref()),
            Some("1.2")
        );
        let error = serde_json::from_str::<ClassifierInput>(r#"{"name": "s", "memory": 1}"#)
            .expect_err("unknown field");
        assert!(
            error.to_string().contains("unknown field `memory`"),
            "{error}"
        );
        let error =
            serde_json::from_str::<ClassifierInput>(r#"{"labels": {}}"#).expect_err("no name");
        assert!(
            error.to_string().contains("missing field `name`"),
            "{error}"
        );
    }

    #[test]
    fn a_classification_prints_labels_as_an_object_in_order() {
        let classification = Classification {
            labels: vec![pair("z", "1"), pair("a", "2")],
            taints: vec![taint("gpu", None, TaintEffect::NoBind)],
            unclaimable: None,
        };
        assert_eq!(
            serde_json::to_string(&classification).expect("JSON"),
            r#"{"labels":{"z":"1","a":"2"},"taints":[{"key":"gpu","effect":"NoBind"}],"unclaimable":null}"#
        );
    }
}
