//! Released WIT folders are frozen: `wit/FROZEN` lists each with a digest of its files, and
//! any edit, added or removed file in a listed folder fails this test. Plugins built against
//! a released ABI must keep loading, so changes go into a new folder (see wit/README.md).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The digest of a folder: sha256 over each file's path (relative, `/`-separated, sorted)
/// and the sha256 of its contents, so renames, additions, removals and edits all change it.
fn folder_digest(folder: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, base: &Path, files: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, base, files)?;
            } else {
                let relative = path
                    .strip_prefix(base)
                    .expect("inside the folder")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((relative, path));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(folder, folder, &mut files)?;
    files.sort();
    let mut listing = String::new();
    for (relative, path) in files {
        let contents = std::fs::read(&path)?;
        let _ = writeln!(listing, "{relative} {}", hex(&Sha256::digest(&contents)));
    }
    Ok(hex(&Sha256::digest(listing.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks every folder `wit/FROZEN` (under `wit`) lists; returns one line per problem.
fn frozen_problems(wit: &Path) -> Vec<String> {
    let list = match std::fs::read_to_string(wit.join("FROZEN")) {
        Ok(list) => list,
        Err(error) => return vec![format!("cannot read {}/FROZEN: {error}", wit.display())],
    };
    let mut problems = Vec::new();
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((folder, pinned)) = line
            .split_once(char::is_whitespace)
            .and_then(|(folder, digest)| Some((folder, digest.trim().strip_prefix("sha256:")?)))
        else {
            problems.push(format!(
                "malformed line {line:?}: want `<folder> sha256:<digest>`"
            ));
            continue;
        };
        match folder_digest(&wit.join(folder)) {
            Ok(actual) if actual == pinned => {}
            Ok(actual) => problems.push(format!(
                "{folder} is frozen but its files changed (sha256:{actual}, frozen as sha256:{pinned}); put changes in a new version folder"
            )),
            Err(error) => problems.push(format!("{folder} is frozen but cannot be read: {error}")),
        }
    }
    problems
}

#[test]
fn released_wit_folders_are_unchanged() {
    let wit = testenv::tools::workspace_root().join("wit");
    // The lines that would freeze each folder as it is now, for the release that freezes one.
    for entry in std::fs::read_dir(&wit).expect("wit/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let name = path.file_name().expect("name").to_string_lossy();
            println!("{name} sha256:{}", folder_digest(&path).expect("digest"));
        }
    }
    let problems = frozen_problems(&wit);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_guard_catches_edits_additions_and_removals_in_frozen_folders_only() {
    let wit = tempfile::tempdir().expect("tempdir");
    let frozen = wit.path().join("v1.0");
    let open = wit.path().join("v1.1");
    for folder in [&frozen, &open] {
        std::fs::create_dir_all(folder.join("deps")).expect("mkdir");
        std::fs::write(folder.join("types.wit"), "package x:y@1.0.0;\n").expect("write");
        std::fs::write(folder.join("deps").join("log.wit"), "interface log {}\n").expect("write");
    }
    let digest = folder_digest(&frozen).expect("digest");
    std::fs::write(
        wit.path().join("FROZEN"),
        format!("# released\n\nv1.0 sha256:{digest}\n"),
    )
    .expect("write FROZEN");
    assert_eq!(frozen_problems(wit.path()), Vec::<String>::new());

    // Unlisted folders may change freely.
    std::fs::write(open.join("types.wit"), "package x:y@1.1.0;\n").expect("edit");
    assert_eq!(frozen_problems(wit.path()), Vec::<String>::new());

    type Change = (&'static str, fn(&Path));
    let changes: [Change; 4] = [
        ("edit", |f| {
            std::fs::write(f.join("types.wit"), "package x:y@1.0.1;\n").expect("edit")
        }),
        ("nested edit", |f| {
            std::fs::write(
                f.join("deps").join("log.wit"),
                "interface log { x: func(); }\n",
            )
            .expect("edit")
        }),
        ("addition", |f| {
            std::fs::write(f.join("extra.wit"), "interface extra {}\n").expect("add")
        }),
        ("removal", |f| {
            std::fs::remove_file(f.join("deps").join("log.wit")).expect("remove")
        }),
    ];
    for (what, change) in changes {
        let copy = tempfile::tempdir().expect("tempdir");
        let copied = copy.path().join("v1.0");
        std::fs::create_dir_all(copied.join("deps")).expect("mkdir");
        std::fs::copy(frozen.join("types.wit"), copied.join("types.wit")).expect("copy");
        std::fs::copy(
            frozen.join("deps").join("log.wit"),
            copied.join("deps").join("log.wit"),
        )
        .expect("copy");
        std::fs::copy(wit.path().join("FROZEN"), copy.path().join("FROZEN")).expect("copy");
        assert_eq!(frozen_problems(copy.path()), Vec::<String>::new(), "{what}");
        change(&copied);
        let problems = frozen_problems(copy.path());
        assert_eq!(problems.len(), 1, "{what}: {problems:?}");
        assert!(
            problems[0].starts_with("v1.0 is frozen but its files changed"),
            "{what}: {problems:?}"
        );
    }

    // A listed folder that is gone, and a line that is not a folder and digest.
    std::fs::write(
        wit.path().join("FROZEN"),
        format!("v1.0 sha256:{digest}\nv0.9 sha256:{digest}\nv0.8\n"),
    )
    .expect("write FROZEN");
    let problems = frozen_problems(wit.path());
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("v0.9 is frozen but cannot be read"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("malformed line \"v0.8\""),
        "{problems:?}"
    );
}
