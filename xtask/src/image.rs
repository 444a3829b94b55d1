//! `cargo xtask image`: the operator image, built without a container engine or a base image.
//!
//! The image is one reproducible layer holding exactly what the operator runs with: the
//! release binaries at the paths the Helm chart passes, the bundled plugins, the shared
//! libraries the binaries load (found the way the dynamic loader finds them, with the
//! symlinks it follows), the CA bundle, a non-root user and `/tmp`. The same inputs give the
//! same bytes and digests: entries are sorted, every timestamp is 0, owners are numeric and
//! the gzip header carries no time or name.
//!
//! The result is an OCI image layout (`target/image/ferrometal-<version>/`) and the same
//! layout as one tar archive (`target/image/ferrometal-<version>.oci.tar`) whose index names
//! the image `ghcr.io/ferrometal/ferrometal:<chart appVersion>`, so `ctr -n k8s.io images
//! import` gives it the name the chart's Deployment asks for. `--push` sends it to a
//! registry. The Containerfile describes the same application files for those with a
//! container engine; a test below keeps the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use flate2::{Compression, GzBuilder};
use object::Endianness;
use object::elf::{DT_NEEDED, DT_RPATH, DT_RUNPATH, EM_AARCH64, EM_X86_64, FileHeader64};
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use testenv::tools;

use crate::plugins;
use crate::run::{checked, note, output, step};

/// The repository the chart's `image.repository` defaults to.
pub const REPOSITORY: &str = "ghcr.io/ferrometal/ferrometal";
/// The non-root user (and group) the image runs as: distroless's `nonroot`, which the
/// chart's `podSecurityContext` names too.
pub const NONROOT: u32 = 65532;
/// The operator's entrypoint and default arguments (the Containerfile's ENTRYPOINT and CMD).
pub const ENTRYPOINT: &[&str] = &["/usr/bin/ferrometal"];
/// See [`ENTRYPOINT`].
pub const CMD: &[&str] = &["run"];
/// `/metrics` and probes, the boot server and registry, DHCP (the Containerfile's EXPOSE).
pub const EXPOSED_PORTS: &[&str] = &["8080/tcp", "8082/tcp", "67/udp"];
/// Where the CA bundle lives in the image (and on Debian hosts, where it comes from).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The gzip level of the layer: the default; level 9 saves under 1 % of the layer for nearly
/// three times the compression time.
pub const GZIP_LEVEL: u32 = 6;

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation containerd names an imported image after.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI layout's own name annotation.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What `cargo xtask image` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageArgs {
    /// The OCI archive to write; the OCI layout directory goes beside it, named without
    /// `.oci.tar`. Default: target/image/ferrometal-<version>.oci.tar.
    #[arg(long, value_name = "PATH", env = "FERROMETAL_IMAGE_OUT")]
    pub out: Option<PathBuf>,
    /// Also push the image to this reference (`REGISTRY/REPOSITORY:TAG`). Loopback
    /// registries are spoken to over plain HTTP, others over HTTPS; credentials come from
    /// FERROMETAL_REGISTRY_USERNAME and FERROMETAL_REGISTRY_PASSWORD when set.
    #[arg(long, value_name = "REGISTRY/REPO:TAG", env = "FERROMETAL_IMAGE_PUSH")]
    pub push: Option<String>,
    /// Speak plain HTTP to the `--push` registry even when it is not on loopback (lab
    /// registries only).
    #[arg(long, env = "FERROMETAL_IMAGE_PLAIN_HTTP")]
    pub plain_http: bool,
}

/// `cargo xtask image`: builds the release binaries and the plugins, then the image.
pub fn run(args: &ImageArgs) -> anyhow::Result<()> {
    build_inputs()?;
    let root = tools::workspace_root();
    let out = args.out.clone().unwrap_or_else(|| default_archive(&root));
    let image = assemble(&Sources::release(&root), &out)?;
    report(&image);
    if let Some(reference) = &args.push {
        push(&image, reference, args.plain_http)?;
    }
    Ok(())
}

/// Builds what goes into the image: the release binaries and the plugin components.
pub fn build_inputs() -> anyhow::Result<()> {
    build_binaries()?;
    plugins::build()
}

/// Builds the release binaries, as the Containerfile's build stage does.
pub fn build_binaries() -> anyhow::Result<()> {
    let root = tools::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    step("image: building the release binaries (ferrometal, metalprobe)");
    checked(
        Command::new(&cargo)
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "ferrometal",
                "-p",
                "metalprobe",
                "--bins",
            ])
            .current_dir(&root),
    )
}

/// `target/image/ferrometal-<version>.oci.tar`.
pub fn default_archive(root: &Path) -> PathBuf {
    root.join("target")
        .join("image")
        .join(format!("ferrometal-{}.oci.tar", env!("CARGO_PKG_VERSION")))
}

// ---------------------------------------------------------------------------------------
// What goes in

/// Which part of the image a file belongs to, for the size breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// `ferrometal` and `metalprobe`.
    Binaries,
    /// The shared libraries and the dynamic loader.
    Libraries,
    /// The bundled plugin components.
    Plugins,
    /// `/etc/ssl/certs/ca-certificates.crt`.
    CaBundle,
    /// Users, groups, name service configuration and directories.
    System,
}

impl Part {
    /// How BENCHMARKS.md and the report name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Binaries => "binaries",
            Self::Libraries => "shared libraries and loader",
            Self::Plugins => "plugins",
            Self::CaBundle => "CA bundle",
            Self::System => "users, groups, nsswitch.conf, directories",
        }
    }
}

/// Where an application file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A workspace binary of the release build (`target/release/<name>`).
    Binary(&'static str),
    /// A component `cargo xtask plugins` builds (`target/components/<name>.wasm`).
    Plugin(&'static str),
}

/// A file of ours in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppFile {
    /// Where it comes from.
    pub origin: Origin,
    /// Where it goes: the paths the Helm chart passes (`/usr/lib/ferrometal/plugins` is
    /// `--plugin-dir`, `/usr/lib/ferrometal/metalprobe` is `discovery.metalprobeBinary`).
    pub path: &'static str,
}

/// The application files, as the Containerfile's final stage has them.
pub const APPLICATION_FILES: &[AppFile] = &[
    AppFile {
        origin: Origin::Binary("ferrometal"),
        path: "/usr/bin/ferrometal",
    },
    AppFile {
        origin: Origin::Binary("metalprobe"),
        path: "/usr/lib/ferrometal/metalprobe",
    },
    AppFile {
        origin: Origin::Plugin("redfish"),
        path: "/usr/lib/ferrometal/plugins/redfish.wasm",
    },
    AppFile {
        origin: Origin::Plugin("macdb"),
        path: "/usr/lib/ferrometal/plugins/macdb.wasm",
    },
    AppFile {
        origin: Origin::Plugin("ignition"),
        path: "/usr/lib/ferrometal/plugins/ignition.wasm",
    },
];

/// Where the builder reads its inputs.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Directory of the built workspace binaries (`target/release`).
    pub binaries: PathBuf,
    /// Directory of the built components (`target/components`).
    pub components: PathBuf,
    /// The host's CA bundle.
    pub ca_bundle: PathBuf,
}

impl Sources {
    /// The release build, the components of `cargo xtask plugins` and Debian's CA bundle.
    pub fn release(root: &Path) -> Self {
        Self {
            binaries: root.join("target").join("release"),
            components: testenv::components::components_dir(),
            ca_bundle: PathBuf::from(CA_BUNDLE),
        }
    }

    fn path_of(&self, origin: Origin) -> PathBuf {
        match origin {
            Origin::Binary(name) => self.binaries.join(name),
            Origin::Plugin(name) => self.components.join(format!("{name}.wasm")),
        }
    }
}

/// A file's bytes: read from the host, or written by the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file on the host, read when the layer is written.
    Host(PathBuf),
    /// Bytes made here (`/etc/passwd`, …).
    Bytes(Vec<u8>),
}

impl Content {
    fn read(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Host(path) => fs::read(path).with_context(|| format!("read {}", path.display())),
            Self::Bytes(bytes) => Ok(bytes.clone()),
        }
    }
}

/// What an entry of the layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Directory,
    /// A regular file.
    File(Content),
    /// A symbolic link to this target (absolute targets resolve inside the image).
    Symlink(String),
}

/// One entry of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path in the image.
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// Permission bits (with sticky/set-id bits).
    pub mode: u32,
    /// Numeric owner, user and group alike.
    pub owner: u32,
    /// Which part of the image it belongs to.
    pub part: Part,
}

/// Every entry of the image's one layer, by path (so in the order the layer lists them:
/// a directory before what it holds).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The entries by absolute path.
    pub entries: BTreeMap<String, Entry>,
}

impl Plan {
    /// Adds `entry` and any missing parent directories (root-owned, 0755). The same entry
    /// twice is one entry; two different things at one path are an error, as is a path
    /// below something that is not a directory.
    pub fn add(&mut self, entry: Entry) -> anyhow::Result<()> {
        let mut parents: Vec<&Path> = Path::new(&entry.path)
            .ancestors()
            .skip(1)
            .filter(|parent| *parent != Path::new("/"))
            .collect();
        parents.reverse();
        for parent in parents {
            let parent = parent.to_string_lossy().into_owned();
            match self.entries.get(&parent) {
                None => {
                    self.entries.insert(
                        parent.clone(),
                        Entry {
                            path: parent,
                            kind: Kind::Directory,
                            mode: 0o755,
                            owner: 0,
                            part: Part::System,
                        },
                    );
                }
                Some(existing) if existing.kind == Kind::Directory => {}
                Some(existing) => bail!(
                    "cannot put {} into the image: {} is not a directory there ({:?})",
                    entry.path,
                    parent,
                    existing.kind
                ),
            }
        }
        match self.entries.get(&entry.path) {
            None => {}
            Some(existing) if *existing == entry => return Ok(()),
            // An explicit directory (/tmp, a home) replaces one made as a parent.
            Some(existing) if existing.kind == Kind::Directory && entry.kind == Kind::Directory => {
            }
            Some(existing) => bail!(
                "two different entries for {} in the image: {:?} and {:?}",
                entry.path,
                existing.kind,
                entry.kind
            ),
        }
        self.entries.insert(entry.path.clone(), entry);
        Ok(())
    }

    /// Adds the host file `path` under the same path, with every symlink on the way to it
    /// (in any directory component or the file itself) as a symlink in the image and the
    /// file it finally reaches as a regular file. So the image keeps the names the dynamic
    /// loader looks up (`/lib64/ld-linux-x86-64.so.2`, `/lib/x86_64-linux-gnu/libc.so.6`)
    /// and holds each library's bytes once, where the host has them.
    pub fn add_host_path(&mut self, path: &Path, part: Part) -> anyhow::Result<PathBuf> {
        if !path.is_absolute() {
            bail!("{} is not an absolute path", path.display());
        }
        let mut pending: Vec<PathBuf> = components_of(path).into_iter().rev().collect();
        let mut current = PathBuf::from("/");
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            if component == Path::new("..") {
                current.pop();
                continue;
            }
            let next = current.join(&component);
            let metadata = fs::symlink_metadata(&next)
                .with_context(|| format!("look at {} (for {})", next.display(), path.display()))?;
            if metadata.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    bail!("too many symlinks resolving {}", path.display());
                }
                let target = fs::read_link(&next)
                    .with_context(|| format!("read the symlink {}", next.display()))?;
                self.add(Entry {
                    path: next.to_string_lossy().into_owned(),
                    kind: Kind::Symlink(target.to_string_lossy().into_owned()),
                    mode: 0o777,
                    owner: 0,
                    part,
                })?;
                if target.is_absolute() {
                    current = PathBuf::from("/");
                }
                pending.extend(components_of(&target).into_iter().rev());
            } else if pending.is_empty() {
                if !metadata.is_file() {
                    bail!("{} is not a regular file", next.display());
                }
                self.add(Entry {
                    path: next.to_string_lossy().into_owned(),
                    kind: Kind::File(Content::Host(next.clone())),
                    mode: permissions(&metadata),
                    owner: 0,
                    part,
                })?;
                return Ok(next);
            } else {
                current = next;
            }
        }
        bail!("{} leads to a directory, not a file", path.display())
    }

    /// The regular files of one part, by path.
    pub fn files(&self, part: Part) -> impl Iterator<Item = &Entry> {
        self.entries
            .values()
            .filter(move |entry| entry.part == part && matches!(entry.kind, Kind::File(_)))
    }
}

/// The normal and `..` components of `path` (root and `.` dropped).
fn components_of(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(PathBuf::from(name)),
            Component::ParentDir => Some(PathBuf::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn permissions(metadata: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    metadata.permissions().mode() & 0o7777
}

/// The application files of `sources` (not read yet).
pub fn add_application_files(plan: &mut Plan, sources: &Sources) -> anyhow::Result<()> {
    for file in APPLICATION_FILES {
        let (part, mode) = match file.origin {
            Origin::Binary(_) => (Part::Binaries, 0o755),
            Origin::Plugin(_) => (Part::Plugins, 0o644),
        };
        plan.add(Entry {
            path: file.path.to_owned(),
            kind: Kind::File(Content::Host(sources.path_of(file.origin))),
            mode,
            owner: 0,
            part,
        })?;
    }
    Ok(())
}

/// `/etc/passwd`, `/etc/group`, `/etc/nsswitch.conf`, `/tmp` and the non-root user's home:
/// what distroless's base gives the Containerfile's image and a process expects.
pub fn add_system_files(plan: &mut Plan) -> anyhow::Result<()> {
    let text = |path: &str, body: String| Entry {
        path: path.to_owned(),
        kind: Kind::File(Content::Bytes(body.into_bytes())),
        mode: 0o644,
        owner: 0,
        part: Part::System,
    };
    plan.add(text(
        "/etc/passwd",
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\n\
             nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
        ),
    ))?;
    plan.add(text(
        "/etc/group",
        format!("root:x:0:\nnonroot:x:{NONROOT}:\n"),
    ))?;
    // glibc's default without this file asks DNS before /etc/hosts.
    plan.add(text(
        "/etc/nsswitch.conf",
        String::from("passwd: files\ngroup: files\nhosts: files dns\n"),
    ))?;
    let directory = |path: &str, mode: u32, owner: u32| Entry {
        path: path.to_owned(),
        kind: Kind::Directory,
        mode,
        owner,
        part: Part::System,
    };
    plan.add(directory("/tmp", 0o1777, 0))?;
    plan.add(directory("/home/nonroot", 0o700, NONROOT))?;
    Ok(())
}

/// The whole image: application files, the libraries they need, the CA bundle and the
/// system files. Fails naming the command that builds a missing input.
pub fn plan(sources: &Sources) -> anyhow::Result<Plan> {
    for file in APPLICATION_FILES {
        let path = sources.path_of(file.origin);
        if !path.is_file() {
            let command = match file.origin {
                Origin::Binary(_) => "cargo build --release -p ferrometal -p metalprobe --bins",
                Origin::Plugin(_) => "cargo xtask plugins",
            };
            bail!("{} is missing: run `{command}`", path.display());
        }
    }
    if !sources.ca_bundle.is_file() {
        bail!(
            "{} is missing: install Debian's ca-certificates (`apt-get install ca-certificates`)",
            sources.ca_bundle.display()
        );
    }
    let mut plan = Plan::default();
    add_system_files(&mut plan)?;
    add_application_files(&mut plan, sources)?;
    let binaries = binaries_of(sources);
    add_libraries(&mut plan, &binaries)?;
    plan.add(Entry {
        path: CA_BUNDLE.to_owned(),
        kind: Kind::File(Content::Host(sources.ca_bundle.clone())),
        mode: 0o644,
        owner: 0,
        part: Part::CaBundle,
    })?;
    Ok(plan)
}

/// The host paths of the application's binaries.
pub fn binaries_of(sources: &Sources) -> Vec<PathBuf> {
    APPLICATION_FILES
        .iter()
        .filter(|file| matches!(file.origin, Origin::Binary(_)))
        .map(|file| sources.path_of(file.origin))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Shared libraries

/// What the dynamic loader reads from an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linkage {
    /// `e_machine`.
    pub machine: u16,
    /// `PT_INTERP`: the dynamic loader's path, for executables.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`: library names, in order.
    pub needed: Vec<String>,
    /// Whether it has `DT_RPATH` or `DT_RUNPATH` (its own search directories).
    pub run_paths: bool,
}

/// Reads `path`'s [`Linkage`] (64-bit ELF only).
pub fn linkage(path: &Path) -> anyhow::Result<Linkage> {
    let data = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    linkage_of(&data).with_context(|| format!("read the ELF headers of {}", path.display()))
}

fn linkage_of(data: &[u8]) -> anyhow::Result<Linkage> {
    let header = FileHeader64::<Endianness>::parse(data).context("not a 64-bit ELF file")?;
    let endian = header.endian()?;
    let mut interpreter = None;
    for segment in header.program_headers(endian, data)? {
        if let Some(path) = segment.interpreter(endian, data)? {
            interpreter = Some(String::from_utf8(path.to_vec()).context("PT_INTERP")?);
        }
    }
    let sections = header.sections(endian, data)?;
    let table = sections.dynamic_table(endian, data)?;
    let mut needed = Vec::new();
    let mut run_paths = false;
    for entry in table.iter() {
        match entry.tag {
            DT_NEEDED => needed
                .push(String::from_utf8(table.string(entry)?.to_vec()).context("DT_NEEDED name")?),
            DT_RPATH | DT_RUNPATH => run_paths = true,
            _ => {}
        }
    }
    Ok(Linkage {
        machine: header.e_machine(endian),
        interpreter,
        needed,
        run_paths,
    })
}

/// The OCI architecture of an ELF machine.
pub fn architecture(machine: u16) -> anyhow::Result<&'static str> {
    match machine {
        EM_X86_64 => Ok("amd64"),
        EM_AARCH64 => Ok("arm64"),
        other => bail!("ELF machine {other} is not one the image builder knows"),
    }
}

/// The directories the dynamic loader `interpreter` searches when there is no
/// `/etc/ld.so.cache` (there is none in the image), in its order, from its own `--help`
/// (glibc 2.33 and newer print them as "… (system search path)").
pub fn loader_search_dirs(interpreter: &Path) -> anyhow::Result<Vec<String>> {
    let help = output(Command::new(interpreter).arg("--help"))?;
    let dirs: Vec<String> = help
        .lines()
        .filter_map(|line| line.trim().strip_suffix("(system search path)"))
        .map(|dir| dir.trim().to_owned())
        .collect();
    if dirs.is_empty() {
        bail!(
            "`{} --help` lists no system search path (glibc 2.33 or newer is needed)",
            interpreter.display()
        );
    }
    Ok(dirs)
}

/// Adds the dynamic loader of `binaries` and every library they need, transitively, each
/// found where the loader would look in the image: the first of its system directories
/// holding a file of that name for the same machine. Nothing else: no library is in the
/// image that no binary loads.
pub fn add_libraries(plan: &mut Plan, binaries: &[PathBuf]) -> anyhow::Result<()> {
    let mut queue: Vec<(PathBuf, String)> = binaries
        .iter()
        .map(|binary| (binary.clone(), binary.display().to_string()))
        .collect();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut search: Option<(u16, Vec<String>)> = None;
    while let Some((file, shown)) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let linkage = linkage(&file)?;
        if linkage.run_paths {
            bail!(
                "{shown} has its own library search path (RPATH/RUNPATH), which the image builder does not follow"
            );
        }
        if let Some(interpreter) = &linkage.interpreter {
            let real = plan
                .add_host_path(Path::new(interpreter), Part::Libraries)
                .with_context(|| format!("the dynamic loader {interpreter} of {shown}"))?;
            if search.is_none() {
                search = Some((linkage.machine, loader_search_dirs(Path::new(interpreter))?));
            }
            queue.push((real, interpreter.clone()));
        }
        let Some((machine, dirs)) = &search else {
            if linkage.needed.is_empty() {
                continue;
            }
            bail!("{shown} needs libraries but no binary names a dynamic loader");
        };
        if linkage.machine != *machine {
            bail!(
                "{shown} is for ELF machine {}, not {machine}",
                linkage.machine
            );
        }
        for name in &linkage.needed {
            let found = dirs
                .iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|candidate| {
                    candidate.is_file()
                        && fs::read(candidate)
                            .ok()
                            .and_then(|data| linkage_of(&data).ok())
                            .is_some_and(|library| library.machine == *machine)
                })
                .with_context(|| {
                    format!("{shown} needs {name}, which is in none of the loader's directories {dirs:?}")
                })?;
            let real = plan.add_host_path(&found, Part::Libraries)?;
            queue.push((real, found.display().to_string()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writing the image

/// The finished image, in memory.
#[derive(Debug, Clone)]
pub struct Image {
    /// `ghcr.io/ferrometal/ferrometal:<appVersion>`.
    pub name: String,
    /// The layer, uncompressed.
    pub layer_tar: Vec<u8>,
    /// The layer, gzip-compressed.
    pub layer: Vec<u8>,
    /// The image configuration JSON.
    pub config: Vec<u8>,
    /// The image manifest JSON.
    pub manifest: Vec<u8>,
    /// The layout's `index.json`.
    pub index: Vec<u8>,
}

impl Image {
    /// `sha256:…` of the manifest: the image's digest.
    pub fn digest(&self) -> String {
        digest(&self.manifest)
    }

    /// What a pull transfers: the compressed layer, the configuration and the manifest.
    pub fn compressed_size(&self) -> u64 {
        (self.layer.len() + self.config.len() + self.manifest.len()) as u64
    }

    /// The blobs by digest (`sha256:…`).
    fn blobs(&self) -> [(String, &[u8]); 3] {
        [
            (digest(&self.layer), &self.layer),
            (digest(&self.config), &self.config),
            (digest(&self.manifest), &self.manifest),
        ]
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for byte in hash {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The image configuration: who runs what, with which ports, on which platform.
pub fn config(architecture: &str, version: &str, diff_id: &str) -> Value {
    let ports: serde_json::Map<String, Value> = EXPOSED_PORTS
        .iter()
        .map(|port| ((*port).to_owned(), json!({})))
        .collect();
    json!({
        "architecture": architecture,
        "os": "linux",
        "config": {
            "User": format!("{NONROOT}:{NONROOT}"),
            "Entrypoint": ENTRYPOINT,
            "Cmd": CMD,
            "ExposedPorts": ports,
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("SSL_CERT_FILE={CA_BUNDLE}"),
            ],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": "ferrometal",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.source": "https://github.com/ferrometal/ferrometal",
                "org.opencontainers.image.licenses": "Apache-2.0",
            },
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "cargo xtask image" }],
    })
}

/// Writes `plan` as one layer and wraps it in a configuration, a manifest and an index
/// naming it `name`.
pub fn build(plan: &Plan, architecture: &str, version: &str, name: &str) -> anyhow::Result<Image> {
    let layer_tar = layer(plan)?;
    let layer = gzip(&layer_tar)?;
    let config = serde_json::to_vec(&config(architecture, version, &digest(&layer_tar)))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": digest(&config), "size": config.len() },
        "layers": [{ "mediaType": MEDIA_LAYER, "digest": digest(&layer), "size": layer.len() }],
    }))?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": digest(&manifest),
            "size": manifest.len(),
            "platform": { "architecture": architecture, "os": "linux" },
            "annotations": { OCI_REF_NAME: name, CONTAINERD_NAME: name },
        }],
    }))?;
    Ok(Image {
        name: name.to_owned(),
        layer_tar,
        layer,
        config,
        manifest,
        index,
    })
}

/// A tar header with everything that could vary between builds fixed.
fn header(entry_type: tar::EntryType, mode: u32, owner: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_uid(owner.into());
    header.set_gid(owner.into());
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// The layer: every entry of `plan` in path order, with fixed times and numeric owners.
pub fn layer(plan: &Plan) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in plan.entries.values() {
        let name = entry.path.trim_start_matches('/');
        match &entry.kind {
            Kind::Directory => {
                let mut header = header(tar::EntryType::Directory, entry.mode, entry.owner, 0);
                builder.append_data(&mut header, format!("{name}/"), std::io::empty())?;
            }
            Kind::File(content) => {
                let data = content.read()?;
                let mut header = header(
                    tar::EntryType::Regular,
                    entry.mode,
                    entry.owner,
                    data.len() as u64,
                );
                builder.append_data(&mut header, name, data.as_slice())?;
            }
            Kind::Symlink(target) => {
                let mut header = header(tar::EntryType::Symlink, entry.mode, entry.owner, 0);
                builder.append_link(&mut header, name, target)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

/// gzip with a fixed header: no name, time 0, OS "unknown".
fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(GZIP_LEVEL));
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// The OCI layout's files: `oci-layout`, `index.json` and the blobs, by relative path.
fn layout_files(image: &Image) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        (
            String::from("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (String::from("index.json"), image.index.clone()),
    ];
    for (digest, bytes) in image.blobs() {
        let hex = digest.trim_start_matches("sha256:");
        files.push((format!("blobs/sha256/{hex}"), bytes.to_vec()));
    }
    files.sort();
    files
}

/// The OCI layout as one tar archive (what `ctr images import` and `skopeo copy
/// oci-archive:` read), as reproducible as the layer.
pub fn archive(image: &Image) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for directory in ["blobs/", "blobs/sha256/"] {
        let mut header = header(tar::EntryType::Directory, 0o755, 0, 0);
        builder.append_data(&mut header, directory, std::io::empty())?;
    }
    for (path, bytes) in layout_files(image) {
        let mut header = header(tar::EntryType::Regular, 0o644, 0, bytes.len() as u64);
        builder.append_data(&mut header, path, bytes.as_slice())?;
    }
    Ok(builder.into_inner()?)
}

/// The OCI layout directory beside `archive`: its name without `.oci.tar` (or `.tar`).
pub fn layout_dir(archive: &Path) -> PathBuf {
    let name = archive
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".oci.tar")
        .or_else(|| name.strip_suffix(".tar"))
        .map_or_else(|| format!("{name}.layout"), str::to_owned);
    archive.with_file_name(stem)
}

/// Size of one part of the image.
#[derive(Debug, Clone)]
pub struct PartSize {
    /// Which part.
    pub part: Part,
    /// Its regular files' paths.
    pub files: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Their bytes gzip-compressed on their own (at the layer's level).
    pub compressed_alone: u64,
}

/// A built image and where it was written.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image.
    pub image: Image,
    /// The OCI archive.
    pub archive: PathBuf,
    /// The OCI layout directory.
    pub layout: PathBuf,
    /// The size of each part.
    pub parts: Vec<PartSize>,
    /// Entries in the layer.
    pub entries: usize,
}

/// Plans, builds and writes the image from `sources` to `archive` and the layout beside it.
pub fn assemble(sources: &Sources, archive_path: &Path) -> anyhow::Result<Built> {
    let root = tools::workspace_root();
    let version = chart_app_version(&root)?;
    let name = format!("{REPOSITORY}:{version}");
    step(format_args!("image: assembling {name}"));
    let plan = plan(sources)?;
    let binary = sources.path_of(APPLICATION_FILES[0].origin);
    let architecture = architecture(linkage(&binary)?.machine)?;
    let image = build(&plan, architecture, &version, &name)?;

    let layout = layout_dir(archive_path);
    if layout.exists() {
        fs::remove_dir_all(&layout).with_context(|| format!("remove {}", layout.display()))?;
    }
    for (path, bytes) in layout_files(&image) {
        let path = layout.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
    }
    fs::write(archive_path, archive(&image)?)
        .with_context(|| format!("write {}", archive_path.display()))?;

    let mut parts = Vec::new();
    for part in [
        Part::Binaries,
        Part::Libraries,
        Part::Plugins,
        Part::CaBundle,
        Part::System,
    ] {
        let mut bytes = Vec::new();
        let mut files = Vec::new();
        for entry in plan.files(part) {
            if let Kind::File(content) = &entry.kind {
                bytes.extend(content.read()?);
                files.push(entry.path.clone());
            }
        }
        parts.push(PartSize {
            part,
            files,
            bytes: bytes.len() as u64,
            compressed_alone: gzip(&bytes)?.len() as u64,
        });
    }
    Ok(Built {
        image,
        archive: archive_path.to_owned(),
        layout,
        parts,
        entries: plan.entries.len(),
    })
}

/// The chart's `appVersion`: the tag the chart's Deployment asks for by default.
pub fn chart_app_version(root: &Path) -> anyhow::Result<String> {
    let path = root.join("charts").join("ferrometal").join("Chart.yaml");
    let chart = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    chart
        .lines()
        .find_map(|line| line.strip_prefix("appVersion:"))
        .map(|version| {
            version
                .trim()
                .trim_matches('"')
                .trim_matches('\'')
                .to_owned()
        })
        .filter(|version| !version.is_empty())
        .with_context(|| format!("{} has no appVersion", path.display()))
}

/// A size for people: MiB with one decimal, KiB or bytes below that.
pub fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        0..KIB => format!("{bytes} B"),
        KIB..1_048_576 => format!("{} KiB", (bytes + KIB / 2) / KIB),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

fn report(built: &Built) {
    let image = &built.image;
    step(format_args!(
        "image: {} ({} entries in one layer)",
        image.name, built.entries
    ));
    note(format_args!("digest      {}", image.digest()));
    note(format_args!(
        "compressed  {} (layer {}, config and manifest {} bytes)",
        size(image.compressed_size()),
        size(image.layer.len() as u64),
        image.config.len() + image.manifest.len()
    ));
    note(format_args!(
        "uncompressed {} (layer tar)",
        size(image.layer_tar.len() as u64)
    ));
    for part in &built.parts {
        note(format_args!(
            "  {:<42} {:>10}  ({} gzip-compressed alone)",
            part.part.label(),
            size(part.bytes),
            size(part.compressed_alone)
        ));
    }
    note(format_args!("OCI archive {}", built.archive.display()));
    note(format_args!("OCI layout  {}", built.layout.display()));
    note(format_args!(
        "import into containerd: ctr -n k8s.io images import {}",
        built.archive.display()
    ));
}

// ---------------------------------------------------------------------------------------
// Pushing

/// Pushes the built image's blobs and its manifest, as written (so the registry's digest is
/// the local one), to `reference`.
pub fn push(built: &Built, reference: &str, plain_http: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(push_async(&built.image, reference, plain_http))
}

async fn push_async(image: &Image, reference: &str, plain_http: bool) -> anyhow::Result<()> {
    use oci_client::client::{ClientConfig, ClientProtocol};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference, RegistryOperation};

    let parsed: Reference = reference
        .parse()
        .with_context(|| format!("{reference} is not an image reference"))?;
    let registry = parsed.resolve_registry().to_owned();
    let host = registry
        .rsplit_once(':')
        .map_or(registry.as_str(), |(host, _)| host);
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let protocol = if plain_http || loopback {
        ClientProtocol::HttpsExcept(vec![registry.clone()])
    } else {
        ClientProtocol::Https
    };
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    });
    let auth = match (
        std::env::var("FERROMETAL_REGISTRY_USERNAME"),
        std::env::var("FERROMETAL_REGISTRY_PASSWORD"),
    ) {
        (Ok(username), Ok(password)) => RegistryAuth::Basic(username, password),
        _ => RegistryAuth::Anonymous,
    };
    step(format_args!("image: pushing to {reference}"));
    client
        .auth(&parsed, &auth, RegistryOperation::Push)
        .await
        .with_context(|| format!("authenticate to {registry}"))?;
    for (digest, bytes) in image.blobs().into_iter().take(2) {
        client
            .push_blob(&parsed, bytes.to_vec(), &digest)
            .await
            .with_context(|| format!("push blob {digest} to {reference}"))?;
    }
    client
        .push_manifest_raw(
            &parsed,
            image.manifest.clone(),
            http::HeaderValue::from_static(MEDIA_MANIFEST),
        )
        .await
        .with_context(|| format!("push the manifest to {reference}"))?;
    let pushed = client
        .fetch_manifest_digest(&parsed, &auth)
        .await
        .with_context(|| format!("read back the manifest digest of {reference}"))?;
    if pushed != image.digest() {
        bail!(
            "{reference} has digest {pushed}, the built image {}",
            image.digest()
        );
    }
    note(format_args!("pushed {reference}@{pushed}"));
    Ok(())
}

#[cfg(test)]
mod containerfile;

#[cfg(test)]
mod tests {
    use super::containerfile::parse_containerfile;
    use super::*;

    impl Origin {
        /// The file's path relative to the repository root in a release build, as the
        /// Containerfile's build stage names it.
        pub fn build_path(self) -> String {
            match self {
                Self::Binary(name) => format!("target/release/{name}"),
                Self::Plugin(name) => format!("target/components/{name}.wasm"),
            }
        }
    }

    impl Plan {
        /// The entry `path` leads to inside the image, following symlinks like the kernel
        /// does (absolute targets from the image's root); `None` if nothing is there.
        fn resolve(&self, path: &str) -> Option<&Entry> {
            let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
            let mut current: Vec<String> = Vec::new();
            let mut hops = 0;
            while let Some(component) = pending.pop() {
                match component.as_str() {
                    "" | "." => continue,
                    ".." => {
                        current.pop();
                        continue;
                    }
                    _ => current.push(component),
                }
                let entry = self.entries.get(&format!("/{}", current.join("/")))?;
                if let Kind::Symlink(target) = &entry.kind {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_owned));
                }
            }
            self.entries.get(&format!("/{}", current.join("/")))
        }
    }

    fn root() -> PathBuf {
        tools::workspace_root()
    }

    /// The builder's application files as the Containerfile would name them.
    fn builder_files() -> BTreeSet<(String, String)> {
        APPLICATION_FILES
            .iter()
            .map(|file| (file.origin.build_path(), file.path.to_owned()))
            .collect()
    }

    #[test]
    fn the_containerfile_and_the_image_builder_describe_the_same_image() {
        let text = fs::read_to_string(root().join("Containerfile")).expect("read Containerfile");
        let containerfile = parse_containerfile(&text).expect("parse Containerfile");
        assert_eq!(containerfile.files, builder_files());

        let config = config("amd64", "0.0.0", "sha256:00");
        let config = &config["config"];
        assert_eq!(
            containerfile.user.as_deref(),
            config["User"].as_str(),
            "USER"
        );
        assert_eq!(json!(containerfile.entrypoint), config["Entrypoint"]);
        assert_eq!(json!(containerfile.cmd), config["Cmd"]);
        let exposed: BTreeSet<String> = config["ExposedPorts"]
            .as_object()
            .expect("ExposedPorts")
            .keys()
            .cloned()
            .collect();
        assert_eq!(containerfile.exposed, exposed);
    }

    #[test]
    fn the_image_puts_files_where_the_chart_looks_for_them() {
        let values = fs::read_to_string(root().join("charts/ferrometal/values.yaml"))
            .expect("read values.yaml");
        let helpers = fs::read_to_string(root().join("charts/ferrometal/templates/_helpers.tpl"))
            .expect("read _helpers.tpl");
        let path_of = |origin| {
            APPLICATION_FILES
                .iter()
                .find(|file| file.origin == origin)
                .expect("an application file")
                .path
        };
        let metalprobe = path_of(Origin::Binary("metalprobe"));
        assert!(
            values.contains(&format!("metalprobeBinary: {metalprobe}")),
            "values.yaml's discovery.metalprobeBinary is {metalprobe}"
        );
        for plugin in ["redfish", "macdb", "ignition"] {
            let path = path_of(Origin::Plugin(plugin));
            let dir = path.rsplit_once('/').expect("a directory").0;
            assert!(
                helpers.contains(&format!("\"image\" }}}}{dir}{{{{")),
                "the chart's plugin directory for plugins.source=image is {dir}"
            );
        }
        assert!(values.contains(&format!("repository: {REPOSITORY}")));
        assert_eq!(ENTRYPOINT[0], path_of(Origin::Binary("ferrometal")));
    }

    /// The release binaries when both are built, else the debug ones (`cargo test
    /// --workspace` builds those); the shared libraries they need are the same.
    fn built_binaries() -> Sources {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from);
        let sources = |profile: &str| Sources {
            binaries: target.join(profile),
            ..Sources::release(&root())
        };
        let release = sources("release");
        if binaries_of(&release).iter().all(|binary| binary.is_file()) {
            return release;
        }
        let debug = sources("debug");
        for binary in binaries_of(&debug) {
            assert!(
                binary.is_file(),
                "{} is not built (neither is the release build): run `cargo build -p \
                 ferrometal -p metalprobe --bins` (`cargo test --workspace` does)",
                binary.display()
            );
        }
        debug
    }

    #[test]
    fn every_library_the_binaries_need_is_in_the_image_where_the_loader_looks() {
        let sources = built_binaries();
        let binaries = binaries_of(&sources);
        let mut plan = Plan::default();
        add_application_files(&mut plan, &sources).expect("application files");
        add_libraries(&mut plan, &binaries).expect("libraries");

        let interpreter = linkage(&binaries[0])
            .expect("ELF")
            .interpreter
            .expect("the operator is dynamically linked");
        let dirs = loader_search_dirs(Path::new(&interpreter)).expect("loader directories");
        let find = |name: &str| -> Option<String> {
            dirs.iter().find_map(|dir| {
                let entry = plan.resolve(&format!("{dir}/{name}"))?;
                matches!(entry.kind, Kind::File(_)).then(|| entry.path.clone())
            })
        };
        // Every ELF file in the image: its loader and each DT_NEEDED name resolve, inside
        // the image, to a regular file; and every library file is needed by one of them.
        let mut needed_files = BTreeSet::new();
        for entry in plan.entries.values() {
            let Kind::File(Content::Host(source)) = &entry.kind else {
                continue;
            };
            if entry.part == Part::Plugins {
                continue;
            }
            let linkage = linkage(source).expect("ELF");
            if let Some(interpreter) = &linkage.interpreter {
                let loader = plan.resolve(interpreter).unwrap_or_else(|| {
                    panic!("{}'s loader {interpreter} is in the image", entry.path)
                });
                needed_files.insert(loader.path.clone());
            }
            for name in &linkage.needed {
                let found = find(name).unwrap_or_else(|| {
                    panic!("{} needs {name}, which the image lacks", entry.path)
                });
                needed_files.insert(found);
            }
        }
        let library_files: BTreeSet<String> = plan
            .files(Part::Libraries)
            .map(|entry| entry.path.clone())
            .collect();
        assert_eq!(library_files, needed_files, "exactly the libraries needed");
        assert!(
            library_files
                .iter()
                .any(|path| path.ends_with("/libc.so.6"))
        );

        // ldd, which runs the host's loader, agrees on the names.
        for binary in &binaries {
            let listing = output(Command::new("ldd").arg(binary)).expect("ldd");
            for line in listing.lines() {
                let line = line.trim();
                if line.starts_with("linux-vdso") {
                    continue;
                }
                let found = match line.split_once(" => ") {
                    Some((name, _)) => find(name.trim()).is_some(),
                    None => line
                        .split_whitespace()
                        .next()
                        .and_then(|path| plan.resolve(path))
                        .is_some_and(|entry| matches!(entry.kind, Kind::File(_))),
                };
                assert!(
                    found,
                    "{}: ldd lists `{line}`, not in the image",
                    binary.display()
                );
            }
        }
    }

    #[test]
    fn the_image_runs_as_the_non_root_user_its_passwd_names() {
        let config = config("amd64", "0.0.0", "sha256:00");
        let user = config["config"]["User"].as_str().expect("User");
        let (uid, gid) = user.split_once(':').expect("uid:gid");
        let uid: u32 = uid.parse().expect("numeric uid");
        assert_ne!(uid, 0, "the image's user is not root");
        assert_eq!(gid.parse::<u32>().expect("numeric gid"), uid);

        let mut plan = Plan::default();
        add_system_files(&mut plan).expect("system files");
        let text = |path: &str| match &plan.entries[path].kind {
            Kind::File(Content::Bytes(bytes)) => String::from_utf8(bytes.clone()).expect("UTF-8"),
            other => panic!("{path} is {other:?}"),
        };
        assert!(text("/etc/passwd").contains(&format!("nonroot:x:{uid}:{uid}:")));
        assert!(text("/etc/group").contains(&format!("nonroot:x:{uid}:")));
        assert_eq!(plan.entries["/home/nonroot"].owner, uid);
        assert_eq!(plan.entries["/tmp"].mode, 0o1777);
        // The chart asks for the same user.
        let values = fs::read_to_string(root().join("charts/ferrometal/values.yaml"))
            .expect("read values.yaml");
        assert!(values.contains(&format!("runAsUser: {uid}")));
        assert!(values.contains(&format!("runAsGroup: {uid}")));
    }

    fn sample_plan(dir: &Path) -> Plan {
        let host_file = dir.join("probe");
        fs::write(&host_file, b"#!/bin/sh\n").expect("write");
        let mut plan = Plan::default();
        add_system_files(&mut plan).expect("system files");
        plan.add(Entry {
            path: String::from("/usr/lib/ferrometal/metalprobe"),
            kind: Kind::File(Content::Host(host_file)),
            mode: 0o755,
            owner: 0,
            part: Part::Binaries,
        })
        .expect("add");
        plan.add(Entry {
            path: String::from("/lib"),
            kind: Kind::Symlink(String::from("usr/lib")),
            mode: 0o777,
            owner: 0,
            part: Part::Libraries,
        })
        .expect("add");
        plan
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_digest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = build(&sample_plan(dir.path()), "amd64", "1.2.3", "r/x:1.2.3").expect("build");
        let second = build(&sample_plan(dir.path()), "amd64", "1.2.3", "r/x:1.2.3").expect("build");
        assert_eq!(first.digest(), second.digest());
        assert_eq!(first.layer, second.layer);
        assert_eq!(
            archive(&first).expect("archive"),
            archive(&second).expect("archive")
        );
        // gzip header: no time, no name, OS unknown.
        assert_eq!(&first.layer[3..10], &[0, 0, 0, 0, 0, 0, 255]);

        let mut layer = tar::Archive::new(first.layer_tar.as_slice());
        let mut names = Vec::new();
        for entry in layer.entries().expect("entries") {
            let entry = entry.expect("entry");
            let header = entry.header();
            assert_eq!(header.mtime().expect("mtime"), 0);
            assert_eq!(header.username().expect("user"), Some(""));
            names.push(entry.path().expect("path").display().to_string());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries in path order");
        assert!(names.contains(&String::from("etc/passwd")));
        assert!(names.contains(&String::from("usr/lib/ferrometal/metalprobe")));

        let different =
            build(&sample_plan(dir.path()), "amd64", "1.2.4", "r/x:1.2.4").expect("build");
        assert_ne!(first.digest(), different.digest());
        assert_eq!(
            first.layer, different.layer,
            "the version is not in the layer"
        );
    }

    #[test]
    fn the_index_names_the_image_as_the_chart_expects() {
        let version = chart_app_version(&root()).expect("appVersion");
        let name = format!("{REPOSITORY}:{version}");
        let dir = tempfile::tempdir().expect("temp dir");
        let image = build(&sample_plan(dir.path()), "amd64", &version, &name).expect("build");
        let index: Value = serde_json::from_slice(&image.index).expect("index.json");
        let manifest = &index["manifests"][0];
        assert_eq!(manifest["annotations"][CONTAINERD_NAME], name.as_str());
        assert_eq!(manifest["annotations"][OCI_REF_NAME], name.as_str());
        assert_eq!(manifest["digest"], image.digest().as_str());
        let manifest: Value = serde_json::from_slice(&image.manifest).expect("manifest");
        assert_eq!(
            manifest["layers"][0]["digest"],
            digest(&image.layer).as_str()
        );
        let config: Value = serde_json::from_slice(&image.config).expect("config");
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            digest(&image.layer_tar).as_str()
        );
        // The archive holds the layout's files, and every blob under its digest.
        let mut archive_names = Vec::new();
        let bytes = archive(&image).expect("archive");
        for entry in tar::Archive::new(bytes.as_slice())
            .entries()
            .expect("entries")
        {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            if let Some(hex) = path
                .strip_prefix("blobs/sha256/")
                .filter(|hex| !hex.is_empty())
            {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
                assert_eq!(digest(&data), format!("sha256:{hex}"));
            }
            archive_names.push(path);
        }
        assert!(archive_names.contains(&String::from("index.json")));
        assert!(archive_names.contains(&String::from("oci-layout")));
    }

    #[test]
    fn sizes_are_shown_in_the_unit_that_fits() {
        assert_eq!(size(165), "165 B");
        assert_eq!(size(219_597), "214 KiB");
        assert_eq!(size(65_011_712), "62.0 MiB");
    }

    #[test]
    fn host_symlinks_on_the_way_to_a_library_become_symlinks_in_the_image() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().canonicalize().expect("canonical");
        fs::create_dir_all(base.join("usr/lib/arch")).expect("mkdir");
        fs::write(base.join("usr/lib/arch/libc.so.6"), b"libc").expect("write");
        std::os::unix::fs::symlink("usr/lib", base.join("lib")).expect("symlink");
        fs::create_dir_all(base.join("usr/lib64")).expect("mkdir");
        std::os::unix::fs::symlink(
            base.join("lib/arch/libc.so.6"),
            base.join("usr/lib64/ld.so"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink("usr/lib64", base.join("lib64")).expect("symlink");

        let mut plan = Plan::default();
        let real = plan
            .add_host_path(&base.join("lib64/ld.so"), Part::Libraries)
            .expect("add");
        let shown = |path: &Path| path.display().to_string();
        assert_eq!(real, base.join("usr/lib/arch/libc.so.6"));
        let kind = |path: PathBuf| plan.entries[&shown(&path)].kind.clone();
        assert_eq!(
            kind(base.join("lib64")),
            Kind::Symlink(String::from("usr/lib64"))
        );
        assert_eq!(
            kind(base.join("usr/lib64/ld.so")),
            Kind::Symlink(shown(&base.join("lib/arch/libc.so.6")))
        );
        assert_eq!(
            kind(base.join("lib")),
            Kind::Symlink(String::from("usr/lib"))
        );
        assert_eq!(
            kind(base.join("usr/lib/arch/libc.so.6")),
            Kind::File(Content::Host(real.clone()))
        );
        assert_eq!(
            plan.resolve(&shown(&base.join("lib64/ld.so")))
                .map(|entry| &entry.path),
            Some(&shown(&real))
        );
        // Something else at a path the image already has is refused.
        let clash = plan.add(Entry {
            path: shown(&base.join("lib")),
            kind: Kind::Directory,
            mode: 0o755,
            owner: 0,
            part: Part::System,
        });
        assert!(clash.is_err());
    }
}
