//! Reading a Containerfile: which application files its final image holds and how it runs
//! them, to check them against the image builder's.

use std::collections::BTreeSet;

use anyhow::{Context, bail};

/// What a Containerfile's final image holds and runs, as far as the image builder cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerfileImage {
    /// Application files: `(source in the build context, path in the image)`.
    pub files: BTreeSet<(String, String)>,
    /// The final stage's USER.
    pub user: Option<String>,
    /// The final stage's ENTRYPOINT (JSON form).
    pub entrypoint: Vec<String>,
    /// The final stage's CMD (JSON form).
    pub cmd: Vec<String>,
    /// The final stage's EXPOSE, as `port/protocol`.
    pub exposed: BTreeSet<String>,
}

/// Instructions of a Containerfile: `(KEYWORD, arguments)`, continuation lines joined and
/// comment lines dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut result = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, arguments) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        result.push((keyword.to_uppercase(), arguments.trim().to_owned()));
        current.clear();
    }
    result
}

/// Reads what the Containerfile's final stage holds: files it copies from the build
/// context (`COPY`), from a build stage (`COPY --from=… FILE`), or from a build stage's
/// directory (`COPY --from=… /out/ /`) that `cp` commands in RUN instructions fill.
pub fn parse_containerfile(text: &str) -> anyhow::Result<ContainerfileImage> {
    let instructions = instructions(text);
    let last_from = instructions
        .iter()
        .rposition(|(keyword, _)| keyword == "FROM")
        .context("the Containerfile has no FROM")?;
    let (build, last) = instructions.split_at(last_from);
    let workdir = build
        .iter()
        .rev()
        .find(|(keyword, _)| keyword == "WORKDIR")
        .map_or("/", |(_, dir)| dir.as_str());
    // Build-stage paths relative to the build context (the build stage's WORKDIR).
    let in_context = |path: &str| -> String {
        let relative = path
            .strip_prefix(workdir)
            .map_or(path, |rest| rest.trim_start_matches('/'));
        relative.trim_start_matches("./").to_owned()
    };

    let mut image = ContainerfileImage::default();
    let mut copied_dirs: Vec<(String, String)> = Vec::new();
    for (keyword, arguments) in last {
        match keyword.as_str() {
            "COPY" => {
                let words: Vec<&str> = arguments.split_whitespace().collect();
                let from_stage = words.iter().any(|word| word.starts_with("--from="));
                let paths: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|word| !word.starts_with("--"))
                    .collect();
                let Some((destination, sources)) = paths.split_last() else {
                    bail!("COPY without paths: {arguments}");
                };
                for source in sources {
                    if source.ends_with('/') {
                        copied_dirs.push(((*source).to_owned(), (*destination).to_owned()));
                    } else {
                        let target = if destination.ends_with('/') {
                            format!("{destination}{}", file_name(source))
                        } else {
                            (*destination).to_owned()
                        };
                        let source = if from_stage {
                            in_context(source)
                        } else {
                            (*source).to_owned()
                        };
                        image.files.insert((source, target));
                    }
                }
            }
            "USER" => image.user = Some(arguments.clone()),
            "ENTRYPOINT" => {
                image.entrypoint = serde_json::from_str(arguments)
                    .with_context(|| format!("ENTRYPOINT is not a JSON array: {arguments}"))?;
            }
            "CMD" => {
                image.cmd = serde_json::from_str(arguments)
                    .with_context(|| format!("CMD is not a JSON array: {arguments}"))?;
            }
            "EXPOSE" => {
                for port in arguments.split_whitespace() {
                    image.exposed.insert(if port.contains('/') {
                        port.to_owned()
                    } else {
                        format!("{port}/tcp")
                    });
                }
            }
            _ => {}
        }
    }
    // `cp` commands of the build stage whose destination the final stage copies.
    for (keyword, arguments) in build {
        if keyword != "RUN" {
            continue;
        }
        for command in arguments.split("&&").flat_map(|part| part.split(';')) {
            let words: Vec<&str> = command
                .split_whitespace()
                .filter(|word| !word.starts_with('-'))
                .collect();
            let Some((&"cp", paths)) = words.split_first() else {
                continue;
            };
            let Some((destination, sources)) = paths.split_last() else {
                continue;
            };
            for source in sources {
                let target = if destination.ends_with('/') {
                    format!("{destination}{}", file_name(source))
                } else {
                    (*destination).to_owned()
                };
                for (directory, into) in &copied_dirs {
                    if let Some(rest) = target.strip_prefix(directory.as_str()) {
                        let into = into.trim_end_matches('/');
                        image
                            .files
                            .insert((in_context(source), format!("{into}/{rest}")));
                    }
                }
            }
        }
    }
    Ok(image)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containerfile_is_read_through_continuations_stages_and_copies() {
        let text = "FROM base AS build\nWORKDIR /src\n# a comment\n\
                    RUN make \\\n && mkdir -p /out/a \\\n # inside\n \
                    && cp target/x /out/a/y \\\n && cp -r target/p.wasm target/q.wasm /out/lib/\n\
                    RUN cp nowhere /elsewhere\n\
                    FROM scratch\nCOPY --from=build /out/ /\n\
                    COPY --from=build /src/target/z /usr/bin/\nCOPY README /doc/README\n\
                    USER 1:1\nEXPOSE 80 53/udp\nENTRYPOINT [\"/a\"]\nCMD [\"b\", \"c\"]\n";
        let image = parse_containerfile(text).expect("parses");
        let files: Vec<(&str, &str)> = image
            .files
            .iter()
            .map(|(source, target)| (source.as_str(), target.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                ("README", "/doc/README"),
                ("target/p.wasm", "/lib/p.wasm"),
                ("target/q.wasm", "/lib/q.wasm"),
                ("target/x", "/a/y"),
                ("target/z", "/usr/bin/z"),
            ]
        );
        assert_eq!(image.user.as_deref(), Some("1:1"));
        assert_eq!(image.entrypoint, ["/a"]);
        assert_eq!(image.cmd, ["b", "c"]);
        assert_eq!(
            image.exposed.iter().map(String::as_str).collect::<Vec<_>>(),
            ["53/udp", "80/tcp"]
        );
    }
}
