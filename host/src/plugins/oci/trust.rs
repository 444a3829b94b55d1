//! Which signers a plugin from a registry needs: the `verification` part of the plugin
//! configuration, and the decision over the signatures found.
//!
//! ```yaml
//! verification:
//!   allOf:                     # every one of these must have signed
//!     - name: acme-release
//!       keyFile: /etc/ferrometal/trust/acme.pub
//!   anyOf:                     # and at least minimumMatches of these
//!     minimumMatches: 1
//!     signers:
//!       - name: site-security
//!         key: |
//!           -----BEGIN PUBLIC KEY-----
//!           …
//! ```
//!
//! Every signer is counted once, by its key: listing one key twice in a list is a
//! configuration error (Kubewarden's `minimumMatches` counts configuration entries, so one
//! signer listed twice satisfies "two signers"; here it cannot).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::signature::{SignatureError, TrustedKey};

/// The `verification` section, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationConfig {
    /// Signers who must all have signed.
    pub all_of: Vec<SignerConfig>,
    /// Signers of whom at least `minimumMatches` must have signed.
    pub any_of: Option<AnyOfConfig>,
}

/// `anyOf`: a quorum of signers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnyOfConfig {
    /// How many distinct signers of the list must have signed (default 1).
    #[serde(default = "one")]
    pub minimum_matches: usize,
    /// The signers.
    pub signers: Vec<SignerConfig>,
}

fn one() -> usize {
    1
}

/// One signer: a name for messages and a public key, inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignerConfig {
    /// What messages call the signer.
    pub name: String,
    /// The PEM public key (`cosign.pub`).
    #[serde(default)]
    pub key: Option<String>,
    /// A file holding the PEM public key (e.g. a mounted Secret or ConfigMap).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// A verification section that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Neither `allOf` nor `anyOf` names a signer.
    #[error("names no signer: give `allOf` or `anyOf` at least one key")]
    NoSigners,
    /// A signer has no key, or two.
    #[error("signer {0} needs exactly one of `key` and `keyFile`")]
    KeyChoice(String),
    /// A key file cannot be read.
    #[error("cannot read the key of signer {name} from {path}: {source}")]
    KeyFile {
        /// The signer.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key cannot be parsed.
    #[error("the key of signer {name} is unusable: {source}")]
    Key {
        /// The signer.
        name: String,
        /// Why.
        source: SignatureError,
    },
    /// One key listed twice in one list.
    #[error(
        "signers {first} and {second} in `{list}` are the same key; each signer counts once, so list it once"
    )]
    DuplicateKey {
        /// `allOf` or `anyOf`.
        list: &'static str,
        /// The first name.
        first: String,
        /// The second name.
        second: String,
    },
    /// A quorum that no set of signatures can meet, or a zero quorum.
    #[error("anyOf.minimumMatches is {wanted}, but it must be between 1 and its {signers} signers")]
    Quorum {
        /// `minimumMatches`.
        wanted: usize,
        /// How many signers the list has.
        signers: usize,
    },
}

/// A usable policy: the keys, read and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationPolicy {
    all_of: Vec<TrustedKey>,
    any_of: Vec<TrustedKey>,
    minimum_matches: usize,
}

/// Why the signatures found do not satisfy the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// No signature at all.
    #[error("it is not signed (no cosign signature tag {tag})")]
    Unsigned {
        /// The tag that was looked for.
        tag: String,
    },
    /// Signatures exist, but required signers are missing.
    #[error("{}", describe_missing(.missing_all_of, *.any_of_needed, *.any_of_found, *.signatures))]
    MissingSigners {
        /// `allOf` signers without a valid signature.
        missing_all_of: Vec<String>,
        /// `anyOf.minimumMatches` (0 when there is no `anyOf`).
        any_of_needed: usize,
        /// Distinct `anyOf` signers with a valid signature.
        any_of_found: usize,
        /// How many signatures were found in all.
        signatures: usize,
    },
}

fn describe_missing(
    missing_all_of: &[String],
    any_of_needed: usize,
    any_of_found: usize,
    signatures: usize,
) -> String {
    let mut parts = Vec::new();
    if !missing_all_of.is_empty() {
        parts.push(format!(
            "no valid signature by {} (allOf)",
            missing_all_of.join(", ")
        ));
    }
    if any_of_found < any_of_needed {
        parts.push(format!(
            "{any_of_found} of the {any_of_needed} anyOf signers it needs signed it"
        ));
    }
    format!(
        "{} ({signatures} signature(s) found in all)",
        parts.join("; ")
    )
}

impl VerificationConfig {
    /// Reads and parses the keys and checks the policy can be met.
    pub fn resolve(&self) -> Result<VerificationPolicy, TrustError> {
        let all_of = keys_of("allOf", &self.all_of)?;
        let (any_of, minimum_matches) = match &self.any_of {
            Some(any_of) => {
                let keys = keys_of("anyOf", &any_of.signers)?;
                if any_of.minimum_matches == 0 || any_of.minimum_matches > keys.len() {
                    return Err(TrustError::Quorum {
                        wanted: any_of.minimum_matches,
                        signers: keys.len(),
                    });
                }
                (keys, any_of.minimum_matches)
            }
            None => (Vec::new(), 0),
        };
        if all_of.is_empty() && any_of.is_empty() {
            return Err(TrustError::NoSigners);
        }
        Ok(VerificationPolicy {
            all_of,
            any_of,
            minimum_matches,
        })
    }
}

fn keys_of(list: &'static str, signers: &[SignerConfig]) -> Result<Vec<TrustedKey>, TrustError> {
    let mut keys: Vec<TrustedKey> = Vec::new();
    for signer in signers {
        let pem = match (&signer.key, &signer.key_file) {
            (Some(pem), None) => pem.clone(),
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| TrustError::KeyFile {
                    name: signer.name.clone(),
                    path: path.clone(),
                    source,
                })?
            }
            _ => return Err(TrustError::KeyChoice(signer.name.clone())),
        };
        let key = TrustedKey::from_pem(&signer.name, &pem).map_err(|source| TrustError::Key {
            name: signer.name.clone(),
            source,
        })?;
        if let Some(first) = keys.iter().find(|k| k.fingerprint == key.fingerprint) {
            return Err(TrustError::DuplicateKey {
                list,
                first: first.name.clone(),
                second: signer.name.clone(),
            });
        }
        keys.push(key);
    }
    Ok(keys)
}

impl VerificationPolicy {
    /// Every key of the policy (signatures are checked against these).
    pub fn keys(&self) -> Vec<TrustedKey> {
        let mut keys = self.all_of.clone();
        for key in &self.any_of {
            if !keys.iter().any(|k| k.fingerprint == key.fingerprint) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Decides over the signatures found: `signatures` is how many there were, `valid` the
    /// fingerprints of the keys whose signature verified for the artifact's digest. Returns
    /// the names of the signers that count.
    pub fn decide(
        &self,
        tag: &str,
        signatures: usize,
        valid: &BTreeSet<String>,
    ) -> Result<Vec<String>, Untrusted> {
        if signatures == 0 {
            return Err(Untrusted::Unsigned {
                tag: tag.to_owned(),
            });
        }
        let missing_all_of: Vec<String> = self
            .all_of
            .iter()
            .filter(|key| !valid.contains(&key.fingerprint))
            .map(|key| key.name.clone())
            .collect();
        let any_of: Vec<&TrustedKey> = self
            .any_of
            .iter()
            .filter(|key| valid.contains(&key.fingerprint))
            .collect();
        if !missing_all_of.is_empty() || any_of.len() < self.minimum_matches {
            return Err(Untrusted::MissingSigners {
                missing_all_of,
                any_of_needed: self.minimum_matches,
                any_of_found: any_of.len(),
                signatures,
            });
        }
        let mut signers: Vec<String> = self.all_of.iter().map(|key| key.name.clone()).collect();
        signers.extend(any_of.iter().map(|key| key.name.clone()));
        signers.dedup();
        Ok(signers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEthtX6ml3M181FGI/7mX+hONIbsJ9
B2gL46RyyEGux2TlgsnMa7VC4ivvZn11DAtFhkJkTtuwLSysVxWbPPV+QA==
-----END PUBLIC KEY-----
";
    const KEY_B: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQvqH1yQ0mzPsdHYNc3ozVrJAxI2j
A1xYUTQKQpOLMk4tX1YfZ0YbHk2k2BFoH8dbT5xnqB3DmW/1+ZdGZvmWjg==
-----END PUBLIC KEY-----
";

    fn signer(name: &str, key: &str) -> SignerConfig {
        SignerConfig {
            name: name.to_owned(),
            key: Some(key.to_owned()),
            key_file: None,
        }
    }

    fn fingerprint(key: &str) -> String {
        TrustedKey::from_pem("x", key).expect("key").fingerprint
    }

    #[test]
    fn all_of_needs_every_signer() {
        let policy = VerificationConfig {
            all_of: vec![signer("a", KEY_A), signer("b", KEY_B)],
            any_of: None,
        }
        .resolve()
        .expect("policy");
        let only_a = BTreeSet::from([fingerprint(KEY_A)]);
        let error = policy.decide("t", 1, &only_a).expect_err("b missing");
        assert!(
            error
                .to_string()
                .contains("no valid signature by b (allOf)"),
            "{error}"
        );
        let both = BTreeSet::from([fingerprint(KEY_A), fingerprint(KEY_B)]);
        assert_eq!(
            policy.decide("t", 2, &both),
            Ok(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn no_signature_is_unsigned_not_missing_signers() {
        let policy = VerificationConfig {
            all_of: vec![signer("a", KEY_A)],
            any_of: None,
        }
        .resolve()
        .expect("policy");
        assert_eq!(
            policy.decide("sha256-x.sig", 0, &BTreeSet::new()),
            Err(Untrusted::Unsigned {
                tag: "sha256-x.sig".into()
            })
        );
    }

    #[test]
    fn one_key_listed_twice_is_refused_so_a_quorum_means_distinct_signers() {
        let error = VerificationConfig {
            all_of: Vec::new(),
            any_of: Some(AnyOfConfig {
                minimum_matches: 2,
                signers: vec![signer("a", KEY_A), signer("a-again", KEY_A)],
            }),
        }
        .resolve()
        .expect_err("duplicate");
        assert!(
            error
                .to_string()
                .contains("a and a-again in `anyOf` are the same key"),
            "{error}"
        );
    }

    #[test]
    fn any_of_counts_distinct_valid_signers() {
        let policy = VerificationConfig {
            all_of: Vec::new(),
            any_of: Some(AnyOfConfig {
                minimum_matches: 2,
                signers: vec![signer("a", KEY_A), signer("b", KEY_B)],
            }),
        }
        .resolve()
        .expect("policy");
        let error = policy
            .decide("t", 3, &BTreeSet::from([fingerprint(KEY_A)]))
            .expect_err("one of two");
        assert!(
            error.to_string().contains("1 of the 2 anyOf signers"),
            "{error}"
        );
        let both = BTreeSet::from([fingerprint(KEY_A), fingerprint(KEY_B)]);
        assert!(policy.decide("t", 2, &both).is_ok());
    }

    #[test]
    fn unusable_policies_say_why() {
        assert!(matches!(
            VerificationConfig::default().resolve(),
            Err(TrustError::NoSigners)
        ));
        let quorum = VerificationConfig {
            all_of: Vec::new(),
            any_of: Some(AnyOfConfig {
                minimum_matches: 3,
                signers: vec![signer("a", KEY_A)],
            }),
        };
        assert!(matches!(
            quorum.resolve(),
            Err(TrustError::Quorum {
                wanted: 3,
                signers: 1
            })
        ));
        let neither = VerificationConfig {
            all_of: vec![SignerConfig {
                name: "n".into(),
                key: None,
                key_file: None,
            }],
            any_of: None,
        };
        assert!(matches!(neither.resolve(), Err(TrustError::KeyChoice(_))));
        let parsed: VerificationConfig = serde_saphyr::from_str(
            "allOf:\n  - name: a\n    keyFile: /nonexistent/a.pub\nanyOf:\n  signers:\n    - name: b\n      key: x\n",
        )
        .expect("yaml");
        assert_eq!(parsed.any_of.as_ref().map(|a| a.minimum_matches), Some(1));
        assert!(matches!(parsed.resolve(), Err(TrustError::KeyFile { .. })));
    }
}
