//! Container images made on the spot, so the node never pulls from a registry: the pause
//! image every Pod sandbox runs and a busybox image for tests, written as docker-archive or
//! OCI-archive tarballs that `ctr images import` loads.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Error, Result, tools};

/// Name of the pause image containerd runs as every Pod's sandbox (`sandbox_image`).
pub const PAUSE_IMAGE: &str = "localhost/ferrometal/pause:v1";
/// Name of the busybox test image [`busybox_image`] writes. Pods using it need
/// `imagePullPolicy: Never` (or `IfNotPresent`): nothing can be pulled.
pub const BUSYBOX_IMAGE: &str = "localhost/ferrometal/busybox:test";

/// The busybox applets the test image links to in `/bin`, besides `busybox` itself. Not
/// `wget`: Debian's static busybox 1.35 crashes in it (use `nc` for HTTP requests).
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "cat", "echo", "env", "hostname", "httpd", "ls", "mkdir", "nc", "sleep", "true",
    "false", "ip", "ps", "kill",
];

/// How an image tarball is laid out; `ctr images import` reads both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` output: `manifest.json` with `RepoTags`, the configuration and one
    /// `layer.tar` per layer.
    Docker,
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) in one tar, the
    /// image named by the `io.containerd.image.name` and `org.opencontainers.image.ref.name`
    /// annotations, as `cargo xtask image` writes it.
    Oci,
}

/// An image tarball on disk.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    /// The tarball.
    pub path: PathBuf,
    /// The name it carries, e.g. [`BUSYBOX_IMAGE`].
    pub reference: String,
}

/// One entry of an image's single layer.
enum Entry<'a> {
    Directory(&'a str),
    File(&'a str, u32, Vec<u8>),
    Symlink(&'a str, &'a str),
}

/// Writes the busybox test image (Debian's `busybox-static`, downloaded into the tool cache
/// once) to `dir/busybox.<format>.tar`. Its `/bin` holds busybox and links for the common
/// applets (`sh`, `httpd`, `nc`, `sleep`, …), `/www/index.html` says
/// `ferrometal test image`; it has no default command.
pub fn busybox_image(dir: &Path, format: ArchiveFormat) -> Result<ImageArchive> {
    let busybox = crate::discovery_image::unpacked_package("busybox-static")?.join("bin/busybox");
    let binary =
        std::fs::read(&busybox).map_err(Error::io(format!("read {}", busybox.display())))?;
    let links: Vec<String> = BUSYBOX_APPLETS
        .iter()
        .map(|applet| format!("bin/{applet}"))
        .collect();
    let mut entries = vec![
        Entry::Directory("bin"),
        Entry::Directory("etc"),
        Entry::Directory("tmp"),
        Entry::Directory("www"),
        Entry::File("bin/busybox", 0o755, binary),
        Entry::File(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
        ),
        Entry::File(
            "etc/group",
            0o644,
            b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        ),
        Entry::File("www/index.html", 0o644, b"ferrometal test image\n".to_vec()),
    ];
    entries.extend(links.iter().map(|link| Entry::Symlink(link, "busybox")));
    let config = json!({
        "Env": ["PATH=/bin"],
        "WorkingDir": "/",
    });
    let name = match format {
        ArchiveFormat::Docker => "busybox.docker.tar",
        ArchiveFormat::Oci => "busybox.oci.tar",
    };
    write_archive(&dir.join(name), BUSYBOX_IMAGE, &entries, config, format)
}

/// Writes the pause image (the static program `cargo xtask setup` built) to
/// `dir/pause.tar` as a docker archive.
pub(crate) fn pause_image(dir: &Path) -> Result<ImageArchive> {
    let pause = tools::pause().require()?;
    let binary = std::fs::read(&pause).map_err(Error::io(format!("read {}", pause.display())))?;
    let config = json!({ "Entrypoint": ["/pause"], "WorkingDir": "/" });
    write_archive(
        &dir.join("pause.tar"),
        PAUSE_IMAGE,
        &[Entry::File("pause", 0o755, binary)],
        config,
        ArchiveFormat::Docker,
    )
}

/// `sha256:<hex>` of `bytes`.
fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for byte in hash {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The Go name of this machine's architecture, as image configurations spell it.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A tar header with fixed owner and time, so the same input gives the same digest.
fn header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn tar_error(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |error| Error::Serialise {
        what,
        message: error.to_string(),
    }
}

/// One uncompressed layer holding `entries`.
fn layer(entries: &[Entry<'_>]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        match entry {
            Entry::Directory(name) => {
                let mut header = header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, format!("{name}/"), std::io::empty())
                    .map_err(tar_error("an image layer"))?;
            }
            Entry::File(name, mode, data) => {
                let mut header = header(tar::EntryType::Regular, *mode, data.len() as u64);
                builder
                    .append_data(&mut header, name, data.as_slice())
                    .map_err(tar_error("an image layer"))?;
            }
            Entry::Symlink(name, target) => {
                let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                builder
                    .append_link(&mut header, name, target)
                    .map_err(tar_error("an image layer"))?;
            }
        }
    }
    builder.into_inner().map_err(tar_error("an image layer"))
}

fn to_json(value: &serde_json::Value, what: &'static str) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|error| Error::Serialise {
        what,
        message: error.to_string(),
    })
}

/// Writes a one-layer image named `reference` with container configuration `config` to
/// `path` in `format`.
fn write_archive(
    path: &Path,
    reference: &str,
    entries: &[Entry<'_>],
    config: serde_json::Value,
    format: ArchiveFormat,
) -> Result<ImageArchive> {
    let layer = layer(entries)?;
    let diff_id = digest(&layer);
    let config = to_json(
        &json!({
            "architecture": architecture(),
            "os": "linux",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": "ferrometal testenv" }],
        }),
        "an image configuration",
    )?;
    let config_digest = digest(&config);
    let hex = |digest: &str| digest.trim_start_matches("sha256:").to_owned();
    let files: Vec<(String, Vec<u8>)> = match format {
        ArchiveFormat::Docker => {
            let manifest = to_json(
                &json!([{
                    "Config": format!("{}.json", hex(&config_digest)),
                    "RepoTags": [reference],
                    "Layers": [format!("{}/layer.tar", hex(&diff_id))],
                }]),
                "a docker-archive manifest",
            )?;
            vec![
                (String::from("manifest.json"), manifest),
                (format!("{}.json", hex(&config_digest)), config),
                (format!("{}/layer.tar", hex(&diff_id)), layer),
            ]
        }
        ArchiveFormat::Oci => {
            let manifest = to_json(
                &json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": config.len(),
                    },
                    "layers": [{
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": diff_id,
                        "size": layer.len(),
                    }],
                }),
                "an OCI manifest",
            )?;
            let index = to_json(
                &json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest(&manifest),
                        "size": manifest.len(),
                        "platform": { "architecture": architecture(), "os": "linux" },
                        "annotations": {
                            "io.containerd.image.name": reference,
                            "org.opencontainers.image.ref.name": reference,
                        },
                    }],
                }),
                "an OCI index",
            )?;
            vec![
                (
                    String::from("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
                ),
                (String::from("index.json"), index),
                (
                    format!("blobs/sha256/{}", hex(&digest(&manifest))),
                    manifest,
                ),
                (format!("blobs/sha256/{}", hex(&config_digest)), config),
                (format!("blobs/sha256/{}", hex(&diff_id)), layer),
            ]
        }
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        builder
            .append_data(&mut header, name, data.as_slice())
            .map_err(tar_error("an image archive"))?;
    }
    let bytes = builder
        .into_inner()
        .map_err(tar_error("an image archive"))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("create {}", parent.display())))?;
    }
    std::fs::write(path, bytes).map_err(Error::io(format!("write {}", path.display())))?;
    Ok(ImageArchive {
        path: path.to_path_buf(),
        reference: reference.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(archive: &Path) -> Vec<String> {
        let file = std::fs::File::open(archive).expect("open archive");
        tar::Archive::new(file)
            .entries()
            .expect("entries")
            .map(|entry| {
                entry
                    .expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn a_docker_archive_names_its_image_in_the_manifest() {
        let dir = crate::process::RunDir::create("unit-docker-archive").expect("run dir");
        let archive = write_archive(
            &dir.path().join("x.tar"),
            "localhost/x:1",
            &[Entry::File("x", 0o755, b"x".to_vec())],
            json!({}),
            ArchiveFormat::Docker,
        )
        .expect("archive");
        let names = names_in(&archive.path);
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "manifest.json");
        assert!(names[2].ends_with("/layer.tar"), "{names:?}");
    }

    #[test]
    fn an_oci_archive_is_a_layout_with_an_index_and_three_blobs() {
        let dir = crate::process::RunDir::create("unit-oci-archive").expect("run dir");
        let archive = write_archive(
            &dir.path().join("x.tar"),
            "localhost/x:1",
            &[Entry::Directory("d"), Entry::Symlink("d/l", "x")],
            json!({}),
            ArchiveFormat::Oci,
        )
        .expect("archive");
        let names = names_in(&archive.path);
        assert_eq!(names[..2], ["oci-layout", "index.json"]);
        assert_eq!(
            names
                .iter()
                .filter(|name| name.starts_with("blobs/sha256/"))
                .count(),
            3
        );
    }

    #[test]
    fn the_same_layer_has_the_same_digest() {
        let entries = [Entry::File("a", 0o644, b"a".to_vec())];
        assert_eq!(
            digest(&layer(&entries).expect("layer")),
            digest(&layer(&entries).expect("layer"))
        );
    }
}
