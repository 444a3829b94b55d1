//! cosign's key-pair signatures of OCI artifacts, checked without sigstore's services.
//!
//! `cosign sign --key` stores, for an artifact whose manifest digest is `sha256:<hex>`, an
//! OCI image tagged `sha256-<hex>.sig` in the same repository. Each of its layers (media type
//! [`SIMPLE_SIGNING_MEDIA_TYPE`]) is a "simple signing" payload — JSON naming the repository
//! and the manifest digest — and carries the base64 ECDSA signature of that payload in the
//! annotation [`SIGNATURE_ANNOTATION`]. A signature counts when the payload's blob is the one
//! the layer names, the signature verifies with a trusted key, and the payload names the very
//! manifest digest being loaded (so a signature cannot be moved to another artifact).
//!
//! `cosign sign --new-bundle-format` (cosign 3's default) stores a sigstore bundle instead,
//! as an OCI artifact whose `subject` is the signed manifest, listed in the index tagged
//! `sha256-<hex>` (OCI's referrers tag schema): a DSSE envelope around an in-toto statement
//! whose subject is the manifest digest, signed over DSSE's pre-authentication encoding.
//! Both count the same way.
//!
//! Keys are PEM `PUBLIC KEY`s (SubjectPublicKeyInfo) of ECDSA P-256 — what `cosign
//! generate-key-pair` writes — verified with SHA-256 as cosign signs. Transparency-log
//! entries (Rekor bundles) are neither needed nor checked: the trust root is the site's keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// Media type of a cosign simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` cosign writes.
const COSIGN_PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of manifest `digest` (`sha256:<hex>`) under.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Why a public key or a signature cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The key is not a PEM public key ferrometal can verify with.
    #[error("not an ECDSA P-256 public key in PEM (cosign generate-key-pair writes one): {0}")]
    BadKey(String),
    /// The signature annotation is not base64.
    #[error("the signature annotation is not base64")]
    BadEncoding,
    /// The payload is not a simple-signing document.
    #[error("the signed payload is not a cosign simple-signing document: {0}")]
    BadPayload(String),
}

/// A public key signatures are checked with, and the name the configuration gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The configuration's name for the signer (shown in messages).
    pub name: String,
    /// The uncompressed P-256 point.
    point: Vec<u8>,
    /// sha256 of the DER SubjectPublicKeyInfo, hex: the same key written twice is one key.
    pub fingerprint: String,
}

/// DER of the AlgorithmIdentifier for id-ecPublicKey with the prime256v1 curve.
const P256_ALGORITHM: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

impl TrustedKey {
    /// Parses a PEM `PUBLIC KEY` (the contents of cosign's `cosign.pub`).
    pub fn from_pem(name: &str, pem: &str) -> Result<Self, SignatureError> {
        use rustls_pki_types::pem::PemObject as _;
        let spki = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|error| SignatureError::BadKey(error.to_string()))?;
        let der: &[u8] = spki.as_ref();
        let point = p256_point(der).ok_or_else(|| {
            SignatureError::BadKey(String::from(
                "the key is not an ECDSA key on the P-256 curve",
            ))
        })?;
        Ok(Self {
            name: name.to_owned(),
            point: point.to_vec(),
            fingerprint: hex::encode(Sha256::digest(der)),
        })
    }

    /// Whether `signature` (DER ECDSA, as cosign writes it) signs `payload` with this key.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(payload, signature)
        .is_ok()
    }
}

/// The public point of a DER SubjectPublicKeyInfo for a P-256 key:
/// `SEQUENCE { P256_ALGORITHM, BIT STRING (0 unused bits) 04‖X‖Y }`.
fn p256_point(der: &[u8]) -> Option<&[u8]> {
    let body = der_element(der, 0x30)?;
    let rest = body.strip_prefix(P256_ALGORITHM)?;
    let bits = der_element(rest, 0x03)?;
    let point = bits.strip_prefix(&[0])?;
    (point.len() == 65 && point[0] == 4).then_some(point)
}

/// The contents of the single DER element `tag` that `bytes` consists of (short or one- to
/// two-byte long lengths, which is all a P-256 key needs).
fn der_element(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    let (&first, rest) = bytes.split_first()?;
    if first != tag {
        return None;
    }
    let (&length, rest) = rest.split_first()?;
    let (length, rest) = match length {
        0..=0x7f => (usize::from(length), rest),
        0x81 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    (rest.len() == length).then_some(rest)
}

/// One signature: what was signed, the decoded signature, and in which of cosign's formats.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CosignSignature {
    /// The payload, as signed: a simple-signing document, or a DSSE envelope's in-toto
    /// statement.
    pub payload: Vec<u8>,
    /// DER ECDSA signature.
    pub signature: Vec<u8>,
    /// `None` for a simple-signing payload (the `.sig` tag); the DSSE payload type for a
    /// sigstore bundle.
    #[serde(default)]
    pub dsse_payload_type: Option<String>,
}

impl CosignSignature {
    /// A signature from a `.sig` layer's payload blob and its annotation value.
    pub fn new(payload: Vec<u8>, annotation: &str) -> Result<Self, SignatureError> {
        let signature = BASE64
            .decode(annotation.trim())
            .map_err(|_| SignatureError::BadEncoding)?;
        Ok(Self {
            payload,
            signature,
            dsse_payload_type: None,
        })
    }

    /// The signatures of a sigstore bundle (`cosign sign --new-bundle-format`, cosign 3's
    /// default): its DSSE envelope's in-toto statement, once per signature.
    pub fn from_bundle(bundle: &[u8]) -> Result<Vec<Self>, SignatureError> {
        let bundle: Bundle = serde_json::from_slice(bundle).map_err(|error| {
            SignatureError::BadPayload(format!("not a sigstore bundle: {error}"))
        })?;
        let Some(envelope) = bundle.dsse_envelope else {
            return Err(SignatureError::BadPayload(String::from(
                "the bundle has no DSSE envelope (message signatures of blobs are not image signatures)",
            )));
        };
        let payload = BASE64
            .decode(envelope.payload.trim())
            .map_err(|_| SignatureError::BadEncoding)?;
        envelope
            .signatures
            .iter()
            .map(|signature| {
                Ok(Self {
                    payload: payload.clone(),
                    signature: BASE64
                        .decode(signature.sig.trim())
                        .map_err(|_| SignatureError::BadEncoding)?,
                    dsse_payload_type: Some(envelope.payload_type.clone()),
                })
            })
            .collect()
    }

    /// The bytes the signature is over: the payload, or DSSE's pre-authentication encoding
    /// of the envelope's type and payload.
    fn message(&self) -> Vec<u8> {
        match &self.dsse_payload_type {
            None => self.payload.clone(),
            Some(payload_type) => {
                let mut message = format!(
                    "DSSEv1 {} {payload_type} {} ",
                    payload_type.len(),
                    self.payload.len()
                )
                .into_bytes();
                message.extend_from_slice(&self.payload);
                message
            }
        }
    }

    /// The manifest digests the payload vouches for.
    pub fn signed_digests(&self) -> Result<Vec<String>, SignatureError> {
        let bad = |error: serde_json::Error| SignatureError::BadPayload(error.to_string());
        match &self.dsse_payload_type {
            None => {
                let payload: SimpleSigning = serde_json::from_slice(&self.payload).map_err(bad)?;
                if payload.critical.kind != COSIGN_PAYLOAD_TYPE {
                    return Err(SignatureError::BadPayload(format!(
                        "its type is {:?}, not {COSIGN_PAYLOAD_TYPE:?}",
                        payload.critical.kind
                    )));
                }
                Ok(vec![payload.critical.image.docker_manifest_digest])
            }
            Some(payload_type) => {
                if payload_type != IN_TOTO_PAYLOAD_TYPE {
                    return Err(SignatureError::BadPayload(format!(
                        "its DSSE payload type is {payload_type:?}, not {IN_TOTO_PAYLOAD_TYPE:?}"
                    )));
                }
                let statement: Statement = serde_json::from_slice(&self.payload).map_err(bad)?;
                if statement.predicate_type != COSIGN_PREDICATE_TYPE {
                    return Err(SignatureError::BadPayload(format!(
                        "its predicate type is {:?}, not {COSIGN_PREDICATE_TYPE:?}",
                        statement.predicate_type
                    )));
                }
                Ok(statement
                    .subject
                    .iter()
                    .filter_map(|subject| subject.digest.get("sha256"))
                    .map(|hex| format!("sha256:{hex}"))
                    .collect())
            }
        }
    }

    /// The keys among `keys` that signed this payload, when it vouches for `digest`.
    pub fn signers<'k>(
        &self,
        digest: &str,
        keys: &'k [TrustedKey],
    ) -> Result<Vec<&'k TrustedKey>, SignatureError> {
        if !self
            .signed_digests()?
            .iter()
            .any(|signed| signed.eq_ignore_ascii_case(digest))
        {
            return Ok(Vec::new());
        }
        let message = self.message();
        Ok(keys
            .iter()
            .filter(|key| key.verifies(&message, &self.signature))
            .collect())
    }
}

/// The DSSE payload type of in-toto statements.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type of `cosign sign`'s statements.
const COSIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

/// The parts of a sigstore bundle that are checked.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    dsse_envelope: Option<Envelope>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, serde::Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(Debug, serde::Deserialize)]
struct Subject {
    digest: std::collections::BTreeMap<String, String>,
}

/// The parts of a simple-signing payload that are checked.
#[derive(Debug, serde::Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Debug, serde::Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: SignedImage,
}

#[derive(Debug, serde::Deserialize)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 public key (`openssl ecparam -name prime256v1 -genkey`, `openssl ec -pubout`)
    /// and its signature of [`PAYLOAD`] (`openssl dgst -sha256 -sign`, base64), as cosign
    /// makes them.
    const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEthtX6ml3M181FGI/7mX+hONIbsJ9
B2gL46RyyEGux2TlgsnMa7VC4ivvZn11DAtFhkJkTtuwLSysVxWbPPV+QA==
-----END PUBLIC KEY-----
";
    const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/plugins/redfish"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"cosign container image signature"},"optional":null}"#;
    const SIGNATURE: &str = "MEQCIC/KavtzfodRCHBzbp5uVy6yi4SVhNoNEFaA26ZNhXcgAiA5/2jn1ee+FeCwbs0EiM6/4cR0oL9MvWmB2wwsbQeFZw==";
    const OTHER_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQvqH1yQ0mzPsdHYNc3ozVrJAxI2j
A1xYUTQKQpOLMk4tX1YfZ0YbHk2k2BFoH8dbT5xnqB3DmW/1+ZdGZvmWjg==
-----END PUBLIC KEY-----
";

    #[test]
    fn a_signature_counts_for_its_key_and_the_digest_it_names_only() {
        let signer = TrustedKey::from_pem("vendor", PUBLIC_KEY).expect("key");
        let other = TrustedKey::from_pem("other", OTHER_KEY).expect("key");
        let keys = [other, signer];
        let signature = CosignSignature::new(PAYLOAD.to_vec(), SIGNATURE).expect("base64");
        let signers = signature.signers("sha256:aa", &keys).expect("payload");
        assert_eq!(signers.len(), 1);
        assert_eq!(signers[0].name, "vendor");
        assert!(
            signature
                .signers("sha256:bb", &keys)
                .expect("payload")
                .is_empty()
        );
        // Another repository named in an otherwise identical payload: the signature fails.
        let tampered = String::from_utf8(PAYLOAD.to_vec())
            .expect("utf-8")
            .replace("plugins/redfish", "plugins/redfisH");
        let tampered = CosignSignature::new(tampered.into_bytes(), SIGNATURE).expect("base64");
        assert!(
            tampered
                .signers("sha256:aa", &keys)
                .expect("payload")
                .is_empty()
        );
    }

    /// A bundle `cosign sign --new-bundle-format --tlog-upload=false --key` (v2.6.5) stored
    /// for manifest `sha256:95cd…6c6e`, and the public key of the key pair it signed with.
    const BUNDLE: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial":{"publicKey":{"hint":"nYnBk6rGpJ+m/kFPDDHjX/xftsWdi0MenMNVld9HjK4="}}, "dsseEnvelope":{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCAic3ViamVjdCI6W3siZGlnZXN0Ijp7InNoYTI1NiI6Ijk1Y2RiMDc5MWE3MTZjMDhiZjcxYjk5MjI2YmYxMDYzYjViNzlhMDcwMjM0MDhhNWM4NWNiMGYwMTQ3NDZjNmUifX1dLCAicHJlZGljYXRlVHlwZSI6Imh0dHBzOi8vc2lnc3RvcmUuZGV2L2Nvc2lnbi9zaWduL3YxIn0=", "payloadType":"application/vnd.in-toto+json", "signatures":[{"sig":"MEUCIE0ZUxSepJYs1hMDW6KK1wvrsEnItbiHwAB1yHO2Cj7LAiEA7Z4VUvuIaW4KEp6hxDcKbGOa8VPv7mkmem5HRbL74GA="}]}}"#;
    const BUNDLE_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEO2UcUSZ5cu0Zc+wLy9/7ZuY68/VG
Ba7omXHG2jyfjmQYBgGmAQa9eNnUthiSMqJZR5jVwrjlfo0bcqgldc9U0w==
-----END PUBLIC KEY-----
";
    const BUNDLE_DIGEST: &str =
        "sha256:95cdb0791a716c08bf71b99226bf1063b5b79a07023408a5c85cb0f014746c6e";

    #[test]
    fn a_cosign_bundle_verifies_over_dsse_for_the_digest_its_statement_names() {
        let keys = [
            TrustedKey::from_pem("vendor", BUNDLE_KEY).expect("key"),
            TrustedKey::from_pem("other", PUBLIC_KEY).expect("key"),
        ];
        let signatures = CosignSignature::from_bundle(BUNDLE.as_bytes()).expect("bundle");
        assert_eq!(signatures.len(), 1);
        let signers = signatures[0]
            .signers(BUNDLE_DIGEST, &keys)
            .expect("statement");
        assert_eq!(signers.len(), 1);
        assert_eq!(signers[0].name, "vendor");
        assert!(
            signatures[0]
                .signers("sha256:aa", &keys)
                .expect("statement")
                .is_empty()
        );
        // The same signature read as a simple-signing payload (no DSSE encoding) fails.
        let mut plain = signatures[0].clone();
        plain.dsse_payload_type = None;
        assert!(plain.signers(BUNDLE_DIGEST, &keys).is_err());
        let error = CosignSignature::from_bundle(br#"{"messageSignature":{}}"#)
            .expect_err("a blob signature");
        assert!(error.to_string().contains("no DSSE envelope"), "{error}");
    }

    #[test]
    fn the_signature_tag_is_cosigns() {
        assert_eq!(signature_tag("sha256:abc123"), "sha256-abc123.sig");
    }

    #[test]
    fn a_p256_key_parses_and_other_keys_are_refused_with_a_reason() {
        let key = TrustedKey::from_pem("vendor", PUBLIC_KEY).expect("P-256 key");
        assert_eq!(key.fingerprint.len(), 64);
        let error = TrustedKey::from_pem("x", "not a key").expect_err("garbage");
        assert!(error.to_string().contains("P-256"), "{error}");
        // An Ed25519 key: a valid SPKI, not a curve ferrometal verifies.
        let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA2LVmOAe1yPdcOVTQvHc4+vHVdRUcG3cKQ2D6IwiV18c=\n-----END PUBLIC KEY-----\n";
        let error = TrustedKey::from_pem("x", ed25519).expect_err("ed25519");
        assert!(error.to_string().contains("P-256 curve"), "{error}");
    }

    #[test]
    fn der_lengths_must_match_exactly() {
        assert_eq!(der_element(&[0x30, 0x01, 0xaa], 0x30), Some(&[0xaa][..]));
        assert_eq!(der_element(&[0x30, 0x02, 0xaa], 0x30), None);
        assert_eq!(der_element(&[0x31, 0x01, 0xaa], 0x30), None);
        assert_eq!(
            der_element(&[0x30, 0x81, 0x01, 0xaa], 0x30),
            Some(&[0xaa][..])
        );
        assert_eq!(der_element(&[], 0x30), None);
    }

    #[test]
    fn a_payload_vouches_for_one_digest_of_cosigns_type() {
        let payload = br#"{"critical":{"identity":{"docker-reference":"r/p"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"cosign container image signature"},"optional":null}"#;
        let signature = CosignSignature::new(payload.to_vec(), "AAAA").expect("base64");
        assert_eq!(
            signature.signed_digests().expect("payload"),
            vec!["sha256:aa"]
        );
        let other = br#"{"critical":{"identity":{},"image":{"docker-manifest-digest":"sha256:aa"},"type":"atomic"}}"#;
        let error = CosignSignature::new(other.to_vec(), "AAAA")
            .expect("base64")
            .signed_digests()
            .expect_err("wrong type");
        assert!(error.to_string().contains("atomic"), "{error}");
        assert_eq!(
            CosignSignature::new(payload.to_vec(), "%%%"),
            Err(SignatureError::BadEncoding)
        );
    }
}
