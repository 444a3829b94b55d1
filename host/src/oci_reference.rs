//! OCI image references (`registry/repository[:tag][@digest]`), parsed by hand.
//!
//! The grammar is distribution's (`github.com/distribution/reference`), with Docker Hub's
//! defaults as `oci-spec` applies them: a first path component that is not a host (no `.`
//! or `:`, not `localhost`) means `docker.io`, a single-component repository there gains
//! `library/`, and a reference without tag or digest is tagged `latest`. `oci-spec`'s own
//! parser compiles one large regular expression on first use, about 7 MB of heap for the
//! life of the process — a tenth of the operator's memory at a hundred servers — to parse a
//! handful of references (docs/design-notes.md). This one allocates only the parts.
//!
//! Stricter than `oci-spec` in three corners the grammar itself excludes: a registry host
//! must be a host name (its components letters, digits and inner hyphens), a repository must
//! be lowercase whether or not a registry is named, and tags are ASCII.

use oci_client::Reference;

/// Docker Hub, the registry of a reference that names none.
const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's legacy name, read as [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The repository prefix of Docker Hub's official images.
const OFFICIAL_IMAGES: &str = "library";
/// The tag of a reference that names neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// Longest repository name.
const REPOSITORY_MAX: usize = 255;
/// Longest tag.
const TAG_MAX: usize = 128;

/// Why a text is not an OCI reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing was given.
    #[error("the reference is empty")]
    Empty,
    /// The registry part is not a host name with an optional port.
    #[error("{0:?} is not a registry host (host or host:port)")]
    Registry(String),
    /// A repository path component has upper-case letters.
    #[error("repository {0:?} must be lowercase")]
    Uppercase(String),
    /// A repository path component is empty or not `[a-z0-9]` runs joined by `.`, `_`, `__`
    /// or hyphens.
    #[error(
        "repository {0:?} is not a path of lowercase components (letters and digits joined by '.', '_', '__' or '-')"
    )]
    Repository(String),
    /// The repository is longer than 255 characters.
    #[error("repository name is longer than {REPOSITORY_MAX} characters")]
    TooLong,
    /// The tag is not a word character followed by up to 127 word characters, `.` or `-`.
    #[error(
        "tag {0:?} is not 1 to {TAG_MAX} letters, digits, '_', '.' or '-' (not starting with '.' or '-')"
    )]
    Tag(String),
    /// The digest is not `algorithm:hex`.
    #[error("digest {0:?} is not algorithm:hex")]
    Digest(String),
    /// The digest's algorithm is not sha256, sha384 or sha512.
    #[error("digest algorithm {0:?} is not supported (sha256, sha384, sha512)")]
    Algorithm(String),
    /// The digest has the wrong number of hex digits for its algorithm.
    #[error("a {algorithm} digest has {expected} hex digits, not {found}")]
    DigestLength {
        /// The algorithm.
        algorithm: String,
        /// How many it needs.
        expected: usize,
        /// How many it has.
        found: usize,
    },
}

/// Parses `text` as an OCI reference.
pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
    if text.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let (name_and_tag, digest) = match text.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(checked_digest(digest)?)),
        None => (text, None),
    };
    // A `:` after the last `/` starts the tag; one before it is the registry's port.
    let path_start = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match name_and_tag[path_start..].find(':') {
        Some(colon) => {
            let colon = path_start + colon;
            let tag = &name_and_tag[colon + 1..];
            if !is_tag(tag) {
                return Err(ReferenceError::Tag(tag.to_owned()));
            }
            (&name_and_tag[..colon], Some(tag.to_owned()))
        }
        None => (name_and_tag, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            if !is_host(first) {
                return Err(ReferenceError::Registry(first.to_owned()));
            }
            let registry = if first == DOCKER_HUB_LEGACY {
                DOCKER_HUB
            } else {
                first
            };
            (registry, rest)
        }
        _ => (DOCKER_HUB, name),
    };
    check_repository(repository)?;
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("{OFFICIAL_IMAGES}/{repository}")
    } else {
        repository.to_owned()
    };
    if repository.len() > REPOSITORY_MAX {
        return Err(ReferenceError::TooLong);
    }
    let registry = registry.to_owned();
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag, digest)
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest),
        (tag, None) => Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or_else(|| DEFAULT_TAG.into()),
        ),
    })
}

/// `host[:port]`: dot-separated components of letters, digits and inner hyphens.
fn is_host(text: &str) -> bool {
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    host.split('.').all(component)
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// `component ['/' component]*`, each `[a-z0-9]+` runs joined by `.`, `_`, `__` or hyphens.
fn check_repository(repository: &str) -> Result<(), ReferenceError> {
    let lowercase = repository.to_ascii_lowercase();
    if !lowercase.split('/').all(is_path_component) {
        Err(ReferenceError::Repository(repository.to_owned()))
    } else if lowercase != repository {
        Err(ReferenceError::Uppercase(repository.to_owned()))
    } else {
        Ok(())
    }
}

fn is_path_component(component: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alphanumeric(first) || !alphanumeric(last) {
        return false;
    }
    // Between runs of letters and digits: one '.', one or two '_', or any hyphens.
    let mut separator: Vec<u8> = Vec::new();
    for &b in bytes {
        if alphanumeric(b) {
            let allowed = match separator.as_slice() {
                [] | [b'.'] | [b'_'] | [b'_', b'_'] => true,
                hyphens => hyphens.iter().all(|&h| h == b'-'),
            };
            if !allowed {
                return false;
            }
            separator.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(b);
        } else {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_MAX
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex` with a supported algorithm and its length of hex digits.
fn checked_digest(digest: &str) -> Result<String, ReferenceError> {
    let malformed = || ReferenceError::Digest(digest.to_owned());
    let (algorithm, hex) = digest.split_once(':').ok_or_else(malformed)?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['-', '_', '+', '.']).all(|part| {
            part.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => return Err(ReferenceError::Algorithm(other.to_owned())),
    };
    if hex.len() != expected {
        return Err(ReferenceError::DigestLength {
            algorithm: algorithm.to_owned(),
            expected,
            found: hex.len(),
        });
    }
    Ok(digest.to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;

    const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn parts(reference: &Reference) -> (String, String, Option<String>, Option<String>) {
        (
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            reference.tag().map(str::to_owned),
            reference.digest().map(str::to_owned),
        )
    }

    #[rstest]
    #[case("busybox", "docker.io", "library/busybox", Some("latest"), None)]
    #[case("test.com:tag", "docker.io", "library/test.com", Some("tag"), None)]
    #[case("test.com:5000", "docker.io", "library/test.com", Some("5000"), None)]
    #[case("test.com/repo:tag", "test.com", "repo", Some("tag"), None)]
    #[case("test:5000/repo", "test:5000", "repo", Some("latest"), None)]
    #[case(
        "127.0.0.1:5000/ferrometal/discovery:v1",
        "127.0.0.1:5000",
        "ferrometal/discovery",
        Some("v1"),
        None
    )]
    #[case("localhost/a/b", "localhost", "a/b", Some("latest"), None)]
    #[case(
        "index.docker.io/nginx",
        "docker.io",
        "library/nginx",
        Some("latest"),
        None
    )]
    #[case(
        "lowercase:Uppercase",
        "docker.io",
        "library/lowercase",
        Some("Uppercase"),
        None
    )]
    #[case(
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        Some("some-long-tag"),
        None
    )]
    #[case(
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
        Some("test.example.com"),
        None
    )]
    #[case(
        "foo/foo_bar.com:8080",
        "docker.io",
        "foo/foo_bar.com",
        Some("8080"),
        None
    )]
    #[case("a/b__c---d.e:_t", "docker.io", "a/b__c---d.e", Some("_t"), None)]
    fn references_parse_into_their_parts(
        #[case] text: &str,
        #[case] registry: &str,
        #[case] repository: &str,
        #[case] tag: Option<&str>,
        #[case] digest: Option<&str>,
    ) {
        let reference = parse(text).expect(text);
        assert_eq!(
            parts(&reference),
            (
                registry.to_owned(),
                repository.to_owned(),
                tag.map(str::to_owned),
                digest.map(str::to_owned)
            )
        );
    }

    #[test]
    fn a_digest_is_kept_with_or_without_a_tag() {
        let pinned = parse(&format!("test:5000/repo@{SHA256}")).expect("pinned");
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.digest(), Some(SHA256));
        let both = parse(&format!("test:5000/repo:tag@{SHA256}")).expect("tagged and pinned");
        assert_eq!((both.tag(), both.digest()), (Some("tag"), Some(SHA256)));
        assert_eq!(both.whole(), format!("test:5000/repo:tag@{SHA256}"));
    }

    #[rstest]
    #[case("", ReferenceError::Empty)]
    #[case(":justtag", ReferenceError::Repository(String::new()))]
    #[case("ghcr.io/UPPER/case:tag", ReferenceError::Uppercase("UPPER/case".into()))]
    #[case("Not A Reference!", ReferenceError::Repository("Not A Reference!".into()))]
    #[case("not a reference", ReferenceError::Repository("not a reference".into()))]
    #[case("repo:-tag", ReferenceError::Tag("-tag".into()))]
    #[case("foo_bar.com/x", ReferenceError::Registry("foo_bar.com".into()))]
    #[case("host:port/x", ReferenceError::Registry("host:port".into()))]
    #[case("a//b", ReferenceError::Repository("a//b".into()))]
    #[case("a/b-", ReferenceError::Repository("a/b-".into()))]
    #[case("a/b___c", ReferenceError::Repository("a/b___c".into()))]
    #[case("a/b._c", ReferenceError::Repository("a/b._c".into()))]
    #[case("repo@sha256:ffffffffffffffffffffffffffffffffff", ReferenceError::DigestLength { algorithm: "sha256".into(), expected: 64, found: 34 })]
    #[case("repo@md5:ffffffffffffffffffffffffffffffffffff", ReferenceError::Algorithm("md5".into()))]
    #[case("repo@sha256", ReferenceError::Digest("sha256".into()))]
    fn malformed_references_say_what_is_wrong(#[case] text: &str, #[case] error: ReferenceError) {
        assert_eq!(parse(text), Err(error));
    }

    #[test]
    fn over_long_repositories_and_tags_are_refused() {
        let repository = "a".repeat(REPOSITORY_MAX + 1);
        assert_eq!(
            parse(&format!("r.io/{repository}")),
            Err(ReferenceError::TooLong)
        );
        let tag = "t".repeat(TAG_MAX + 1);
        assert_eq!(
            parse(&format!("r.io/x:{tag}")),
            Err(ReferenceError::Tag(tag.clone()))
        );
        assert!(parse(&format!("r.io/x:{}", &tag[1..])).is_ok());
    }

    /// Texts near the grammar: components of the characters references are made of.
    fn near_references() -> impl Strategy<Value = String> {
        let component = prop_oneof![4 => "[a-z0-9._-]{1,6}", 1 => "[a-zA-Z0-9._-]{0,6}"];
        (
            proptest::option::of(("[a-zA-Z0-9.-]{1,8}", proptest::option::of("[0-9a-z]{0,4}"))),
            proptest::collection::vec(component, 1..4),
            proptest::option::of("[a-zA-Z0-9_.-]{0,8}"),
            proptest::option::of(prop_oneof![
                Just(SHA256.to_owned()),
                "(sha256|sha512|md5|s)[:][0-9a-fA-F]{30,66}",
            ]),
        )
            .prop_map(|(registry, path, tag, digest)| {
                let mut text = String::new();
                if let Some((host, port)) = registry {
                    text.push_str(&host);
                    if let Some(port) = port {
                        text.push(':');
                        text.push_str(&port);
                    }
                    text.push('/');
                }
                text.push_str(&path.join("/"));
                if let Some(tag) = tag {
                    text.push(':');
                    text.push_str(&tag);
                }
                if let Some(digest) = digest {
                    text.push('@');
                    text.push_str(&digest);
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Against `oci-spec`'s parser (its regular expression): every reference this parser
        /// accepts it accepts with the same parts, and what it accepts that this one refuses
        /// is one of the corners the module documentation names.
        #[test]
        fn agrees_with_oci_spec(text in near_references()) {
            let theirs = Reference::try_from(text.as_str());
            match (parse(&text), theirs) {
                (Ok(ours), Ok(theirs)) => prop_assert_eq!(parts(&ours), parts(&theirs)),
                (Ok(ours), Err(error)) => {
                    prop_assert!(false, "{text:?}: accepted as {ours:?}, oci-spec says {error}")
                }
                (Err(ours), Ok(theirs)) => prop_assert!(
                    matches!(ours, ReferenceError::Registry(_) | ReferenceError::Uppercase(_)),
                    "{text:?}: refused ({ours}), oci-spec reads {theirs:?}"
                ),
                (Err(_), Err(_)) => {}
            }
        }
    }
}
