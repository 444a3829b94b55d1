//! The profile rules: parsing, checking and matching. Pure logic, unit-tested natively.
//!
//! Rules are read in two steps: serde reads the shape (unknown keys and wrong types are
//! errors with their line), then [`Rules::parse`] checks every value and names the profile
//! and field of the first bad one: `profiles[1] (gpu-large).match.memory.min: …`.

use std::collections::BTreeMap;
use std::fmt;

use ferrometal_plugin_sdk::server_classifier::{Classification, ServerFacts, Taint, TaintEffect};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Checked rules, ready to classify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Tried in order; the first that matches wins.
    pub profiles: Vec<Profile>,
    /// The burn-in rule, when configured.
    pub burn_in: Option<BurnIn>,
}

/// One hardware profile: what it matches and what a matching server gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Unique name, for messages and logs.
    pub name: String,
    /// Every condition must hold; none at all matches every server.
    pub matches: Match,
    /// Labels to set, in key order.
    pub labels: Vec<(String, String)>,
    /// Taints to set.
    pub taints: Vec<Taint>,
    /// A reason to hold matching servers back from claims.
    pub unclaimable: Option<String>,
}

/// The conditions of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Some processor's model matches.
    pub cpu_model: Option<Pattern>,
    /// Total memory in bytes is in range (unknown memory does not match).
    pub memory: Option<Range>,
    /// The number of drives is in range.
    pub disks: Option<Range>,
    /// The number of accelerators (of `accelerator_vendor`, if given) is in range.
    pub accelerators: Option<Range>,
    /// Counted accelerators are this vendor's (name or PCI vendor id); alone it means at
    /// least one.
    pub accelerator_vendor: Option<Pattern>,
}

/// An inclusive range; an exact value has `min == max`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// Lower bound.
    pub min: Option<u64>,
    /// Upper bound.
    pub max: Option<u64>,
}

impl Range {
    fn contains(self, value: u64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// A case-insensitive text pattern: a glob when it has `*` or `?`, else a substring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    fn new(text: &str) -> Self {
        Self(text.to_lowercase())
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        if self.0.contains(['*', '?']) {
            glob(&self.0, &text)
        } else {
            text.contains(&self.0)
        }
    }
}

/// Servers with accelerators are tainted `key` (NoBind) until they carry the label
/// `key=done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnIn {
    /// The taint's key, and the label that ends burn-in.
    pub key: String,
}

/// The label value that ends burn-in.
pub const BURN_IN_DONE: &str = "done";

/// The burn-in key when `burnIn` names none.
pub const DEFAULT_BURN_IN_KEY: &str = "burn-in";

impl Rules {
    /// Parses and checks rules (YAML, or JSON, which is YAML too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawRules = serde_saphyr::from_str(text)
            .map_err(|error| format!("rules: {}", error.without_snippet()))?;
        let mut profiles: Vec<Profile> = Vec::new();
        for (index, raw) in raw.profiles.into_iter().enumerate() {
            let profile = Profile::check(index, raw)?;
            if profiles.iter().any(|other| other.name == profile.name) {
                return Err(format!(
                    "profiles[{index}].name: {:?} is the name of an earlier profile too",
                    profile.name
                ));
            }
            profiles.push(profile);
        }
        let burn_in = match raw.burn_in {
            None => None,
            Some(raw) => {
                let key = raw.key.unwrap_or_else(|| String::from(DEFAULT_BURN_IN_KEY));
                key_problem(&key)
                    .map_or(Ok(()), |why| Err(format!("burnIn.key: {key:?} {why}")))?;
                Some(BurnIn { key })
            }
        };
        Ok(Self { profiles, burn_in })
    }

    /// The first profile `facts` match, if any.
    pub fn profile_for(&self, facts: &ServerFacts) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|profile| profile.matches.holds_for(facts))
    }

    /// The classification of `facts`: the first matching profile's labels, taints and
    /// reason, plus the burn-in taint.
    pub fn classify(&self, facts: &ServerFacts) -> Classification {
        let mut classification = self
            .profile_for(facts)
            .map(|profile| Classification {
                labels: profile.labels.clone(),
                taints: profile.taints.clone(),
                unclaimable: profile.unclaimable.clone(),
            })
            .unwrap_or_default();
        if let Some(burn_in) = &self.burn_in
            && !facts.accelerators.is_empty()
            && facts.label(&burn_in.key) != Some(BURN_IN_DONE)
            && !classification
                .taints
                .iter()
                .any(|taint| taint.key == burn_in.key && taint.effect == TaintEffect::NoBind)
        {
            classification.taints.push(Taint {
                key: burn_in.key.clone(),
                value: None,
                effect: TaintEffect::NoBind,
            });
        }
        classification
    }
}

impl Match {
    fn holds_for(&self, facts: &ServerFacts) -> bool {
        let cpu = self.cpu_model.as_ref().is_none_or(|pattern| {
            facts
                .processors
                .iter()
                .filter_map(|cpu| cpu.model.as_deref())
                .any(|model| pattern.matches(model))
        });
        let memory = self.memory.is_none_or(|range| {
            facts
                .total_memory_bytes
                .is_some_and(|bytes| range.contains(bytes))
        });
        let disks = self
            .disks
            .is_none_or(|range| range.contains(facts.drives.len() as u64));
        let counted = facts
            .accelerators
            .iter()
            .filter(|device| {
                self.accelerator_vendor.as_ref().is_none_or(|vendor| {
                    [&device.vendor, &device.vendor_id]
                        .into_iter()
                        .flatten()
                        .any(|text| vendor.matches(text))
                })
            })
            .count() as u64;
        let accelerators = match (self.accelerators, &self.accelerator_vendor) {
            (Some(range), _) => range.contains(counted),
            (None, Some(_)) => counted > 0,
            (None, None) => true,
        };
        cpu && memory && disks && accelerators
    }
}

impl Profile {
    /// Checks profile `index` as written.
    fn check(index: usize, raw: RawProfile) -> Result<Self, String> {
        let name = raw.name.trim().to_owned();
        if name.is_empty() {
            return Err(format!("profiles[{index}].name: is required"));
        }
        let at = |field: &str, why: String| format!("profiles[{index}] ({name}).{field}: {why}");
        let pattern = |field: &str, text: Option<String>| match text {
            Some(text) if text.trim().is_empty() => Err(at(field, String::from("is empty"))),
            other => Ok(other.as_deref().map(Pattern::new)),
        };
        let range = |field: &str, raw: Option<RawRange>, parse: fn(&str) -> Option<u64>, what| {
            let Some(raw) = raw else { return Ok(None) };
            let bound = |part: &str, text: Option<String>| match text {
                None => Ok(None),
                Some(text) => parse(text.trim()).map(Some).ok_or_else(|| {
                    let field = if raw.exact {
                        field.to_owned()
                    } else {
                        format!("{field}.{part}")
                    };
                    at(&field, format!("{text:?} is not {what}"))
                }),
            };
            let range = Range {
                min: bound("min", raw.min)?,
                max: bound("max", raw.max)?,
            };
            match (range.min, range.max) {
                (None, None) => Err(at(field, String::from("give a value, or min and/or max"))),
                (Some(min), Some(max)) if min > max => {
                    Err(at(field, format!("min ({min}) is above max ({max})")))
                }
                _ => Ok(Some(range)),
            }
        };
        const COUNT: &str = "a whole number";
        const BYTES: &str =
            "a size (a whole number of bytes, or with Ki, Mi, Gi, Ti, Pi, K, M, G, T or P)";
        let matches = Match {
            cpu_model: pattern("match.cpuModel", raw.matches.cpu_model)?,
            memory: range("match.memory", raw.matches.memory, parse_bytes, BYTES)?,
            disks: range("match.disks", raw.matches.disks, parse_count, COUNT)?,
            accelerators: range(
                "match.accelerators",
                raw.matches.accelerators,
                parse_count,
                COUNT,
            )?,
            accelerator_vendor: pattern("match.acceleratorVendor", raw.matches.accelerator_vendor)?,
        };
        for (key, value) in &raw.labels {
            if let Some(why) = key_problem(key) {
                return Err(at("labels", format!("key {key:?} {why}")));
            }
            if let Some(why) = value_problem(value) {
                return Err(at(&format!("labels.{key}"), format!("{value:?} {why}")));
            }
        }
        let mut taints: Vec<Taint> = Vec::new();
        for (number, raw) in raw.taints.into_iter().enumerate() {
            let at = |field: &str, why: String| at(&format!("taints[{number}].{field}"), why);
            if let Some(why) = key_problem(&raw.key) {
                return Err(at("key", format!("{:?} {why}", raw.key)));
            }
            if let Some(value) = &raw.value
                && let Some(why) = value_problem(value)
            {
                return Err(at("value", format!("{value:?} {why}")));
            }
            let effect = match raw.effect.as_deref() {
                None | Some("NoBind") => TaintEffect::NoBind,
                Some("Evict") => TaintEffect::Evict,
                Some(other) => {
                    return Err(at("effect", format!("{other:?} is not NoBind or Evict")));
                }
            };
            if taints
                .iter()
                .any(|taint| taint.key == raw.key && taint.effect == effect)
            {
                return Err(at(
                    "key",
                    format!("{:?} with effect {effect:?} is given twice", raw.key),
                ));
            }
            taints.push(Taint {
                key: raw.key,
                value: raw.value,
                effect,
            });
        }
        let unclaimable = match raw.unclaimable {
            Some(reason) if reason.trim().is_empty() => {
                return Err(at(
                    "unclaimable",
                    String::from("is empty (give a reason, or leave it out)"),
                ));
            }
            Some(reason) if reason.chars().count() > 1024 => {
                return Err(at(
                    "unclaimable",
                    String::from("is longer than 1024 characters"),
                ));
            }
            other => other,
        };
        Ok(Self {
            name,
            matches,
            labels: raw.labels.into_iter().collect(),
            taints,
            unclaimable,
        })
    }
}

/// A whole number.
fn parse_count(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// A size: whole bytes, or a whole number with a Kubernetes quantity suffix (`512Gi`, `64G`).
fn parse_bytes(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let factor: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor)
}

/// Why `key` is not a Kubernetes qualified name a classifier may set (the host refuses those
/// too, but only when classifying; here they are found when the operator starts).
fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = key.split_once('/').unwrap_or(("", key));
    if key.contains('/') {
        let dns_label = |label: &str| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if prefix.len() > 253 || !prefix.split('.').all(dns_label) {
            return Some(format!(
                "has a prefix that is not a DNS subdomain: {prefix:?}"
            ));
        }
        if ["ferrometal.dev", "metal.ironcore.dev"]
            .iter()
            .any(|reserved| prefix == *reserved || prefix.ends_with(&format!(".{reserved}")))
        {
            return Some(format!(
                "uses the prefix {prefix}, which is reserved for the operator"
            ));
        }
    }
    if name.is_empty() {
        return Some(String::from("has an empty name"));
    }
    value_problem(name).map(|why| format!("has a name that {why}"))
}

/// Why `value` is not a Kubernetes label value.
fn value_problem(value: &str) -> Option<String> {
    let alphanumeric = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if value.len() > 63 {
        Some(String::from("is longer than 63 characters"))
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some(String::from(
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ))
    } else if !alphanumeric(value.chars().next()) || !alphanumeric(value.chars().last()) {
        Some(String::from("must start and end with a letter or digit"))
    } else {
        None
    }
}

/// Whether `text` matches the glob `pattern` (`*` any run of characters, `?` one).
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    // Let the `*` swallow one more character and try again.
                    star = Some((star_p, star_t + 1));
                    p = star_p + 1;
                    t = star_t + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The rules as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRules {
    #[serde(default)]
    profiles: Vec<RawProfile>,
    #[serde(default)]
    burn_in: Option<RawBurnIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "match")]
    matches: RawMatch,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    taints: Vec<RawTaint>,
    #[serde(default)]
    unclaimable: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct RawMatch {
    cpu_model: Option<String>,
    memory: Option<RawRange>,
    disks: Option<RawRange>,
    accelerators: Option<RawRange>,
    accelerator_vendor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaint {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBurnIn {
    key: Option<String>,
}

/// `4` (exactly) or `{min: 2, max: 8}` (either bound may be left out), as written: the
/// numbers are checked afterwards, so that errors name the profile and field.
#[derive(Debug, Default)]
struct RawRange {
    min: Option<String>,
    max: Option<String>,
    /// Written as one value.
    exact: bool,
}

impl<'de> Deserialize<'de> for RawRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RangeVisitor;

        impl<'de> Visitor<'de> for RangeVisitor {
            type Value = RawRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or size, or {min, max}")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawRange, E> {
                self.visit_str(&value.to_string())
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawRange, E> {
                self.visit_str(&value.to_string())
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawRange, E> {
                self.visit_str(&value.to_string())
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawRange, E> {
                Ok(RawRange {
                    min: Some(value.to_owned()),
                    max: Some(value.to_owned()),
                    exact: true,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRange, A::Error> {
                let mut range = RawRange::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "min" => range.min = Some(map.next_value()?),
                        "max" => range.max = Some(map.next_value()?),
                        _ => return Err(de::Error::unknown_field(&key, &["min", "max"])),
                    }
                }
                Ok(range)
            }
        }

        deserializer.deserialize_any(RangeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrometal_plugin_sdk::server_classifier::{AcceleratorFacts, DriveFacts, ProcessorFacts};

    const RULES: &str = r#"
profiles:
- name: gpu-large
  match:
    cpuModel: "*EPYC*"
    memory: {min: 512Gi}
    acceleratorVendor: nvidia
  labels:
    hardware.example.com/sku: gpu-large
  taints:
  - {key: hardware.example.com/gpu, value: nvidia}
- name: storage
  match:
    disks: {min: 8}
  labels: {hardware.example.com/sku: storage}
- name: compute-small
  match:
    cpuModel: Xeon
    memory: {max: 128Gi}
    disks: 1
  labels: {hardware.example.com/sku: compute-small}
- name: unknown
  unclaimable: no hardware profile matches this server
burnIn:
  key: hardware.example.com/burn-in
"#;

    const GIB: u64 = 1 << 30;

    fn server(cpu: &str, memory_gib: u64, disks: usize, gpus: &[&str]) -> ServerFacts {
        ServerFacts {
            name: String::from("server-1"),
            processors: vec![ProcessorFacts {
                model: Some(cpu.to_owned()),
                ..ProcessorFacts::default()
            }],
            total_memory_bytes: Some(memory_gib * GIB),
            drives: vec![DriveFacts::default(); disks],
            accelerators: gpus
                .iter()
                .enumerate()
                .map(|(index, vendor)| AcceleratorFacts {
                    name: format!("gpu{index}"),
                    vendor: Some((*vendor).to_owned()),
                    ..AcceleratorFacts::default()
                })
                .collect(),
            ..ServerFacts::default()
        }
    }

    fn rules() -> Rules {
        Rules::parse(RULES).expect("valid rules")
    }

    fn sku(classification: &Classification) -> Option<&str> {
        classification
            .labels
            .iter()
            .find(|(key, _)| key == "hardware.example.com/sku")
            .map(|(_, value)| value.as_str())
    }

    fn taint_keys(classification: &Classification) -> Vec<&str> {
        classification
            .taints
            .iter()
            .map(|taint| taint.key.as_str())
            .collect()
    }

    #[test]
    fn the_first_matching_profile_wins() {
        let rules = rules();
        let gpu = server("AMD EPYC 9654 96-Core", 1024, 8, &["NVIDIA Corporation"]);
        let classification = rules.classify(&gpu);
        assert_eq!(sku(&classification), Some("gpu-large"), "not storage");
        assert_eq!(
            classification.taints[0],
            Taint {
                key: String::from("hardware.example.com/gpu"),
                value: Some(String::from("nvidia")),
                effect: TaintEffect::NoBind,
            }
        );
        assert_eq!(classification.unclaimable, None);
        let storage = server("AMD EPYC 9654 96-Core", 256, 12, &[]);
        assert_eq!(sku(&rules.classify(&storage)), Some("storage"));
        let small = server("Intel(R) Xeon(R) Gold 6338", 64, 1, &[]);
        assert_eq!(sku(&rules.classify(&small)), Some("compute-small"));
    }

    #[test]
    fn a_server_no_profile_fits_falls_through_to_the_catch_all() {
        let rules = rules();
        // Too much memory for compute-small, too few disks for storage, no GPU.
        let odd = server("Intel(R) Xeon(R) Gold 6338", 256, 1, &[]);
        let classification = rules.classify(&odd);
        assert_eq!(sku(&classification), None);
        assert_eq!(
            classification.unclaimable.as_deref(),
            Some("no hardware profile matches this server")
        );
        assert_eq!(
            Rules::parse("profiles: []").expect("valid").classify(&odd),
            Classification::default(),
            "no profiles, no verdict"
        );
    }

    #[test]
    fn unknown_memory_matches_no_memory_condition() {
        let mut facts = server("Intel Xeon", 64, 1, &[]);
        facts.total_memory_bytes = None;
        assert_eq!(
            rules().profile_for(&facts).map(|p| p.name.as_str()),
            Some("unknown")
        );
    }

    #[test]
    fn accelerators_are_counted_by_vendor_name_or_id() {
        let rules = Rules::parse(
            "profiles:\n- name: two-nvidia\n  match: {accelerators: 2, acceleratorVendor: '0x10de'}\n- name: any-gpu\n  match: {accelerators: {min: 1}}\n- name: none\n  match: {accelerators: 0}\n",
        )
        .expect("valid");
        let mut facts = server("x", 1, 0, &["AMD", "AMD"]);
        assert_eq!(
            rules.profile_for(&facts).map(|p| p.name.as_str()),
            Some("any-gpu")
        );
        for device in &mut facts.accelerators {
            device.vendor_id = Some(String::from("0x10DE"));
        }
        assert_eq!(
            rules.profile_for(&facts).map(|p| p.name.as_str()),
            Some("two-nvidia")
        );
        facts.accelerators.clear();
        assert_eq!(
            rules.profile_for(&facts).map(|p| p.name.as_str()),
            Some("none")
        );
    }

    #[test]
    fn servers_with_accelerators_are_tainted_until_burn_in_is_done() {
        let rules = rules();
        let mut gpu = server("Intel Xeon", 2048, 2, &["AMD"]);
        assert_eq!(
            taint_keys(&rules.classify(&gpu)),
            ["hardware.example.com/burn-in"]
        );
        gpu.labels.push((
            String::from("hardware.example.com/burn-in"),
            String::from("running"),
        ));
        assert_eq!(
            taint_keys(&rules.classify(&gpu)).len(),
            1,
            "only `done` ends it"
        );
        gpu.labels[0].1 = String::from("done");
        assert!(rules.classify(&gpu).taints.is_empty());
        let cpu_only = server("Intel Xeon", 2048, 2, &[]);
        assert!(rules.classify(&cpu_only).taints.is_empty());
        let default_key = Rules::parse("burnIn: {}").expect("valid");
        assert_eq!(
            taint_keys(&default_key.classify(&server("x", 1, 0, &["NVIDIA"]))),
            ["burn-in"]
        );
    }

    #[test]
    fn the_burn_in_taint_is_not_added_twice() {
        let rules =
            Rules::parse("profiles:\n- name: gpu\n  taints: [{key: burn-in}]\nburnIn: {}\n")
                .expect("valid");
        assert_eq!(
            taint_keys(&rules.classify(&server("x", 1, 0, &["NVIDIA"]))),
            ["burn-in"]
        );
    }

    #[test]
    fn json_rules_work_too() {
        let rules = Rules::parse(
            r#"{"profiles": [{"name": "big", "match": {"memory": {"min": 1099511627776}}, "labels": {"sku": "big"}}]}"#,
        )
        .expect("valid JSON");
        assert_eq!(
            rules.profiles[0].matches.memory,
            Some(Range {
                min: Some(1 << 40),
                max: None
            })
        );
    }

    #[test]
    fn cpu_models_match_as_globs_or_substrings_ignoring_case() {
        for (pattern, model, matches) in [
            ("xeon", "Intel(R) Xeon(R) Gold 6338", true),
            ("*Gold 63??", "Intel(R) Xeon(R) Gold 6338", true),
            ("*Gold 63?", "Intel(R) Xeon(R) Gold 6338", false),
            ("Intel*Gold*", "Intel(R) Xeon(R) Gold 6338", true),
            ("EPYC", "Intel(R) Xeon(R) Gold 6338", false),
            ("*", "", true),
        ] {
            assert_eq!(
                Pattern::new(pattern).matches(model),
                matches,
                "{pattern} ~ {model}"
            );
        }
    }

    #[test]
    fn sizes_take_kubernetes_suffixes() {
        assert_eq!(parse_bytes("512Gi"), Some(512 << 30));
        assert_eq!(parse_bytes("64G"), Some(64_000_000_000));
        assert_eq!(parse_bytes("1024"), Some(1024));
        for bad in ["", "Gi", "1.5Ti", "12Q", "-1", "99999999999Pi"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_rules_are_refused_naming_the_profile_and_field() {
        for (rules, message) in [
            (
                "profiles:\n- name: a\n  match: {memory: {min: 12Q}}\n",
                "profiles[0] (a).match.memory.min: \"12Q\" is not a size",
            ),
            (
                "profiles:\n- name: a\n- name: b\n  match: {disks: {min: 8, max: 2}}\n",
                "profiles[1] (b).match.disks: min (8) is above max (2)",
            ),
            (
                "profiles:\n- name: a\n  match: {accelerators: some}\n",
                "profiles[0] (a).match.accelerators: \"some\" is not a whole number",
            ),
            (
                "profiles:\n- name: a\n  match: {memory: 1.5Gi}\n",
                "profiles[0] (a).match.memory: \"1.5Gi\" is not a size",
            ),
            (
                "profiles:\n- name: a\n  match: {disks: {}}\n",
                "profiles[0] (a).match.disks: give a value, or min and/or max",
            ),
            (
                "profiles:\n- name: a\n  match: {cpuModel: ''}\n",
                "profiles[0] (a).match.cpuModel: is empty",
            ),
            (
                "profiles:\n- labels: {a: b}\n",
                "profiles[0].name: is required",
            ),
            (
                "profiles:\n- name: a\n- name: a\n",
                "profiles[1].name: \"a\" is the name of an earlier profile too",
            ),
            (
                "profiles:\n- name: a\n  labels: {'sku size': x}\n",
                "profiles[0] (a).labels: key \"sku size\" has a name that may hold only",
            ),
            (
                "profiles:\n- name: a\n  labels: {ferrometal.dev/sku: x}\n",
                "uses the prefix ferrometal.dev, which is reserved for the operator",
            ),
            (
                "profiles:\n- name: a\n  labels: {sku: gpu large}\n",
                "profiles[0] (a).labels.sku: \"gpu large\" may hold only",
            ),
            (
                "profiles:\n- name: a\n  taints: [{key: gpu, effect: NoSchedule}]\n",
                "profiles[0] (a).taints[0].effect: \"NoSchedule\" is not NoBind or Evict",
            ),
            (
                "profiles:\n- name: a\n  taints: [{key: Bad/gpu}]\n",
                "profiles[0] (a).taints[0].key: \"Bad/gpu\" has a prefix that is not a DNS subdomain",
            ),
            (
                "profiles:\n- name: a\n  taints: [{key: gpu}, {key: gpu, effect: NoBind}]\n",
                "profiles[0] (a).taints[1].key: \"gpu\" with effect NoBind is given twice",
            ),
            (
                "profiles:\n- name: a\n  unclaimable: ''\n",
                "profiles[0] (a).unclaimable: is empty",
            ),
            (
                "burnIn: {key: 'burn in'}\n",
                "burnIn.key: \"burn in\" has a name",
            ),
        ] {
            let error = Rules::parse(rules).expect_err(message);
            assert!(error.contains(message), "{rules}\n→ {error}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_shapes_are_refused_with_their_line() {
        for (rules, message) in [
            (
                "profiles:\n- name: a\n  match: {cpumodel: x}\n",
                "unknown field `cpumodel`",
            ),
            (
                "profiles:\n- name: a\n  match: {disks: {least: 2}}\n",
                "unknown field `least`",
            ),
            ("profile: []\n", "unknown field `profile`"),
            ("profiles: {name: a}\n", "rules: "),
        ] {
            let error = Rules::parse(rules).expect_err(message);
            assert!(error.contains(message), "{rules}\n→ {error}");
            assert!(error.contains("line"), "{error}");
        }
    }
}
