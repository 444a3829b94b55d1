//! metal-operator's MAC-prefix database: parsing, validation and longest-prefix lookup.
//! Pure logic, unit-tested natively.

use serde::{Deserialize, Deserializer};

/// The whole database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// Entries, in file order.
    #[serde(default)]
    pub mac_prefixes: Vec<Entry>,
}

/// One `macPrefixes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Hex prefix of the MAC; separators allowed. Unquoted numbers (`macPrefix: 23`) are read
    /// as their decimal digits, as metal-operator does.
    #[serde(deserialize_with = "string_or_number")]
    pub mac_prefix: String,
    /// Informational.
    #[serde(default)]
    pub manufacturer: String,
    /// Protocol name, e.g. `Redfish`.
    #[serde(default)]
    pub protocol: String,
    /// `http` or `https`.
    #[serde(default)]
    pub protocol_scheme: Option<String>,
    /// Management port.
    #[serde(default)]
    pub port: u16,
    /// Only `bmc` entries are used.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Credentials to try, in order.
    #[serde(default)]
    pub default_credentials: Vec<Credential>,
    /// Serial console.
    #[serde(default)]
    pub console: Option<Console>,
}

/// A default credential.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Credential {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A serial console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Console {
    /// `SSH`, `IPMI`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Port.
    pub port: u16,
}

fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Number(u64),
    }
    Ok(match Value::deserialize(deserializer)? {
        Value::Text(text) => text,
        Value::Number(number) => number.to_string(),
    })
}

/// `aa:BB-cc.dd…` → `aabbccdd…`: lower case, separators (`:`, `-`, `.`) removed.
fn strip(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A MAC address in the form prefixes are compared against, or why it is not one.
pub fn normalise_mac(mac: &str) -> Result<String, String> {
    let stripped = strip(mac.trim());
    if stripped.len() == 12 && stripped.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(stripped)
    } else {
        Err(format!(
            "{mac:?} is not a MAC address (expected 12 hex digits, separated by ':', '-' or '.' or not at all)"
        ))
    }
}

impl Database {
    /// Parses and checks a database; errors name the entry (from 0) and field.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        // Without the source snippet the error would show: it quotes the lines around the
        // fault, default passwords among them, and this message reaches logs and conditions.
        let mut database: Self = serde_saphyr::from_str(yaml).map_err(|error| {
            format!(
                "the MAC-prefix database is not valid YAML in metal-operator's format: {}",
                error.without_snippet()
            )
        })?;
        for (index, entry) in database.mac_prefixes.iter_mut().enumerate() {
            let at = |field: &str, why: String| format!("macPrefixes[{index}].{field}: {why}");
            let prefix = strip(&entry.mac_prefix);
            if prefix.is_empty()
                || prefix.len() > 12
                || !prefix.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(at(
                    "macPrefix",
                    format!(
                        "{:?} is not a hex MAC prefix of 1 to 12 digits",
                        entry.mac_prefix
                    ),
                ));
            }
            entry.mac_prefix = prefix;
            if entry.kind != "bmc" {
                continue;
            }
            if entry.protocol.trim().is_empty() {
                return Err(at("protocol", String::from("is required for a bmc entry")));
            }
            if entry.port == 0 {
                return Err(at(
                    "port",
                    String::from("is required for a bmc entry (1-65535)"),
                ));
            }
            if let Some(scheme) = &entry.protocol_scheme
                && scheme != "http"
                && scheme != "https"
            {
                return Err(at(
                    "protocolScheme",
                    format!("{scheme:?} is not http or https"),
                ));
            }
            if entry.default_credentials.is_empty() {
                return Err(at(
                    "defaultCredentials",
                    String::from("a bmc entry needs at least one credential"),
                ));
            }
            for (n, credential) in entry.default_credentials.iter().enumerate() {
                if credential.username.is_empty() {
                    return Err(at(
                        &format!("defaultCredentials[{n}].username"),
                        String::from("is empty"),
                    ));
                }
            }
        }
        Ok(database)
    }

    /// The `bmc` entry with the longest prefix of `mac` (normalised); the first in file order
    /// among equally long ones.
    pub fn lookup(&self, mac: &str) -> Option<&Entry> {
        let mut best: Option<&Entry> = None;
        for entry in self.mac_prefixes.iter().filter(|e| e.kind == "bmc") {
            if mac.starts_with(&entry.mac_prefix)
                && best.is_none_or(|b| entry.mac_prefix.len() > b.mac_prefix.len())
            {
                best = Some(entry);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
macPrefixes:
- macPrefix: 23
  manufacturer: Foo
  protocol: RedfishWithRegistryPatch
  port: 8000
  type: bmc
  defaultCredentials:
  - username: foo
    password: bar
  console:
    type: SSH
    port: 22
- macPrefix: "52:54:00"
  manufacturer: QEMU
  protocol: Redfish
  protocolScheme: https
  port: 443
  type: bmc
  defaultCredentials:
  - username: admin
    password: admin
  - username: root
    password: calvin
- macPrefix: "52:54:00:ab"
  manufacturer: QEMU special
  protocol: Redfish
  port: 8443
  type: bmc
  defaultCredentials:
  - username: special
    password: x
- macPrefix: "aa"
  manufacturer: switch
  type: switch
"#;

    #[test]
    fn metal_operators_sample_with_an_unquoted_prefix_parses() {
        let database = Database::parse(SAMPLE).expect("valid");
        assert_eq!(database.mac_prefixes[0].mac_prefix, "23");
        let entry = database.lookup("23118a33cfea").expect("match");
        assert_eq!(entry.protocol, "RedfishWithRegistryPatch");
        assert_eq!(entry.console.as_ref().map(|c| c.port), Some(22));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let database = Database::parse(SAMPLE).expect("valid");
        assert_eq!(database.lookup("525400ab0001").map(|e| e.port), Some(8443));
        assert_eq!(database.lookup("525400cd0001").map(|e| e.port), Some(443));
    }

    #[test]
    fn every_default_credential_is_kept_in_order() {
        let database = Database::parse(SAMPLE).expect("valid");
        let entry = database.lookup("525400000001").expect("match");
        let users: Vec<&str> = entry
            .default_credentials
            .iter()
            .map(|c| c.username.as_str())
            .collect();
        assert_eq!(users, ["admin", "root"]);
    }

    #[test]
    fn non_bmc_entries_and_unknown_macs_do_not_match() {
        let database = Database::parse(SAMPLE).expect("valid");
        assert!(database.lookup("aa0000000001").is_none());
        assert!(database.lookup("001122334455").is_none());
    }

    #[test]
    fn macs_are_normalised_from_every_common_notation() {
        for mac in [
            "52:54:00:AB:CD:EF",
            "52-54-00-ab-cd-ef",
            "5254.00ab.cdef",
            "525400ABCDEF",
        ] {
            assert_eq!(normalise_mac(mac).as_deref(), Ok("525400abcdef"), "{mac}");
        }
        let error = normalise_mac("52:54:00").expect_err("short");
        assert!(error.contains("not a MAC address"), "{error}");
    }

    #[test]
    fn an_invalid_database_names_the_entry_and_field() {
        for (yaml, expected) in [
            (
                "macPrefixes:\n- macPrefix: zz\n  type: bmc\n",
                "macPrefixes[0].macPrefix",
            ),
            (
                "macPrefixes:\n- macPrefix: '23'\n  protocol: Redfish\n  port: 8000\n  type: bmc\n",
                "macPrefixes[0].defaultCredentials: a bmc entry needs at least one credential",
            ),
            (
                "macPrefixes:\n- macPrefix: '23'\n  protocol: Redfish\n  port: 8000\n  type: bmc\n  defaultCredentials: [{username: a, password: b}]\n- macPrefix: '24'\n  protocol: Redfish\n  type: bmc\n  defaultCredentials: [{username: a, password: b}]\n",
                "macPrefixes[1].port",
            ),
            (
                "macPrefixes:\n- macPrefix: '23'\n  protocol: Redfish\n  protocolScheme: ftp\n  port: 1\n  type: bmc\n  defaultCredentials: [{username: a, password: b}]\n",
                "macPrefixes[0].protocolScheme: \"ftp\"",
            ),
            ("macPrefixes: [unclosed", "not valid YAML"),
        ] {
            let error = Database::parse(yaml).expect_err(yaml);
            assert!(error.contains(expected), "{error}");
        }
    }

    /// A database that is not YAML is refused with where the fault is, but without the
    /// parser's snippet of the lines around it, which would show default passwords.
    #[test]
    fn a_yaml_error_names_its_line_but_shows_no_password() {
        let yaml = "macPrefixes:\n- macPrefix: 23\n  type: bmc\n  protocol: Redfish\n  port: 8000\n\
                    \x20 defaultCredentials:\n  - username: foo\n    password: s3cret-default\n\
                    \x20   bogus: [\n";
        let error = Database::parse(yaml).expect_err("unclosed bracket");
        assert!(error.contains("line 9"), "{error}");
        assert!(!error.contains("s3cret-default"), "{error}");
    }
}
