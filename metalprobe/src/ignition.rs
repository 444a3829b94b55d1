//! What ferrometal's discovery image does with the discovery ignition, without Ignition and
//! systemd: read `ignition.config.url` from the kernel command line, write the files the
//! ignition lists, and run the `ExecStart` of every enabled systemd unit. Pure planning
//! here (unit-tested); the `ferrometal-ignite` binary does the I/O.

use std::path::PathBuf;

/// Why an ignition cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnitionError {
    /// Not an Ignition 3.x document.
    #[error("not an Ignition 3.x config: {0}")]
    Version(String),
    /// A file entry cannot be written.
    #[error("file {path}: {problem}")]
    File {
        /// The file's path.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A unit's command cannot be run without a shell.
    #[error("unit {unit}: {problem}")]
    Unit {
        /// The unit's name.
        unit: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Where a file's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `data:` URL, decoded.
    Inline(Vec<u8>),
    /// An http(s) URL to download.
    Remote(String),
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Absolute path in the booted system.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// Its contents.
    pub source: Source,
    /// Expected SHA-512 (hex) of the contents, from `verification.hash`.
    pub sha512: Option<String>,
}

/// Everything the ignition asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Files to write.
    pub files: Vec<FileWrite>,
    /// Commands to run (argv), one per enabled unit with an `ExecStart`.
    pub commands: Vec<Vec<String>>,
}

/// The value of `name=` on a kernel command line.
pub fn kernel_arg<'a>(cmdline: &'a str, name: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
}

/// Decodes a `data:` URL (`data:[<media type>][;base64],<data>`).
pub fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| String::from("not a data: URL"))?;
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| String::from("a data: URL needs a comma"))?;
    let bytes = percent_decode(data)?;
    if header.ends_with(";base64") {
        base64_decode(&bytes)
    } else {
        Ok(bytes)
    }
}

fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("a truncated %-escape at {i}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn base64_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let value = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("{:?} is not base64", char::from(c))),
        }
        .into())
    };
    let symbols: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let mut word = 0u32;
        for (n, c) in chunk.iter().enumerate() {
            word |= value(*c)? << (18 - 6 * n);
        }
        let produced = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return Err(String::from("truncated base64")),
        };
        out.extend_from_slice(&word.to_be_bytes()[1..1 + produced]);
    }
    Ok(out)
}

/// The command of a unit's `ExecStart=` (systemd's `%%` read as `%`), split on whitespace;
/// quoting, specifiers and prefixes like `-` need a shell or systemd and are refused.
pub fn exec_start(contents: &str) -> Result<Option<Vec<String>>, String> {
    let Some(line) = contents
        .lines()
        .find_map(|line| line.trim().strip_prefix("ExecStart="))
    else {
        return Ok(None);
    };
    if line.contains(['"', '\'', '\\']) {
        return Err(format!("ExecStart needs quoting: {line}"));
    }
    let line = line.replace("%%", "\u{0}");
    if line.contains('%') {
        return Err(String::from("ExecStart uses systemd specifiers"));
    }
    let argv: Vec<String> = line
        .replace('\u{0}', "%")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    match argv.first() {
        Some(program) if program.starts_with('/') => Ok(Some(argv)),
        Some(program) => Err(format!("ExecStart {program} is not an absolute path")),
        None => Ok(None),
    }
}

/// What `ignition` asks for.
pub fn plan(ignition: &serde_json::Value) -> Result<Plan, IgnitionError> {
    let version = ignition["ignition"]["version"].as_str().unwrap_or_default();
    if !version.starts_with("3.") {
        return Err(IgnitionError::Version(format!(
            "ignition.version is {version:?}"
        )));
    }
    let mut plan = Plan::default();
    for file in ignition["storage"]["files"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let path = file["path"].as_str().unwrap_or_default().to_owned();
        let problem = |problem: &str| IgnitionError::File {
            path: path.clone(),
            problem: problem.to_owned(),
        };
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(problem("the path must be absolute, without `..`"));
        }
        let source = file["contents"]["source"].as_str().unwrap_or_default();
        let source = if source.starts_with("data:") {
            Source::Inline(decode_data_url(source).map_err(|p| problem(&p))?)
        } else if source.starts_with("http://") || source.starts_with("https://") {
            Source::Remote(source.to_owned())
        } else {
            return Err(problem("contents.source must be a data: or http(s) URL"));
        };
        let sha512 = match file["contents"]["verification"]["hash"].as_str() {
            None => None,
            Some(hash) => Some(
                hash.strip_prefix("sha512-")
                    .ok_or_else(|| problem("only sha512 verification is supported"))?
                    .to_ascii_lowercase(),
            ),
        };
        plan.files.push(FileWrite {
            path: PathBuf::from(&path),
            mode: file["mode"].as_u64().unwrap_or(0o644) as u32,
            source,
            sha512,
        });
    }
    for unit in ignition["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if unit["enabled"].as_bool() != Some(true) {
            continue;
        }
        let name = unit["name"].as_str().unwrap_or_default();
        let contents = unit["contents"].as_str().unwrap_or_default();
        if let Some(argv) = exec_start(contents).map_err(|problem| IgnitionError::Unit {
            unit: name.to_owned(),
            problem,
        })? {
            plan.commands.push(argv);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_ignition_url_comes_from_the_kernel_command_line() {
        let cmdline = "console=ttyS0 ignition.firstboot=1 ignition.config.url=http://10.0.2.2:8082/ignition/abc?ticket=t ignition.platform.id=metal\n";
        assert_eq!(
            kernel_arg(cmdline, "ignition.config.url"),
            Some("http://10.0.2.2:8082/ignition/abc?ticket=t")
        );
        assert_eq!(kernel_arg(cmdline, "ignition.config"), None);
    }

    #[test]
    fn data_urls_decode_percent_and_base64() {
        assert_eq!(
            decode_data_url("data:,tok%2Ben%0A").expect("percent"),
            b"tok+en\n"
        );
        assert_eq!(
            decode_data_url("data:text/plain;base64,aGVsbG8gd29ybGQ=").expect("base64"),
            b"hello world"
        );
        assert!(decode_data_url("data:,bad%zz").is_err());
        assert!(decode_data_url("http://x").is_err());
    }

    #[test]
    fn the_discovery_ignition_becomes_files_and_the_metalprobe_command() {
        let ignition = json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [
                {"path": "/usr/local/bin/metalprobe", "mode": 493, "contents": {"source": "http://10.0.2.2:8082/metalprobe", "verification": {"hash": "sha512-ABC"}}},
                {"path": "/etc/metalprobe/token", "mode": 384, "contents": {"source": "data:,s3cret"}}
            ]},
            "systemd": {"units": [
                {"name": "metalprobe.service", "enabled": true, "contents": "[Service]\nType=oneshot\nExecStart=/usr/local/bin/metalprobe --registry-url=http://h/r?x=%%41 --server-uuid=abc --token-file=/etc/metalprobe/token\n"},
                {"name": "other.service", "enabled": false, "contents": "ExecStart=/bin/false"}
            ]}
        });
        let plan = plan(&ignition).expect("plan");
        assert_eq!(plan.files.len(), 2);
        assert_eq!(plan.files[0].mode, 0o755);
        assert_eq!(
            plan.files[0].source,
            Source::Remote(String::from("http://10.0.2.2:8082/metalprobe"))
        );
        assert_eq!(plan.files[0].sha512.as_deref(), Some("abc"));
        assert_eq!(plan.files[1].source, Source::Inline(b"s3cret".to_vec()));
        assert_eq!(
            plan.commands,
            [[
                "/usr/local/bin/metalprobe",
                "--registry-url=http://h/r?x=%41",
                "--server-uuid=abc",
                "--token-file=/etc/metalprobe/token"
            ]]
        );
    }

    #[test]
    fn what_cannot_be_done_without_ignition_is_refused_by_name() {
        assert!(matches!(
            plan(&json!({"ignition": {"version": "2.2.0"}})),
            Err(IgnitionError::Version(_))
        ));
        let escape = json!({"ignition": {"version": "3.4.0"}, "storage": {"files": [
            {"path": "/etc/../root/x", "contents": {"source": "data:,x"}}]}});
        assert!(
            plan(&escape)
                .expect_err("refused")
                .to_string()
                .contains("/etc/../root/x")
        );
        let quoted = json!({"ignition": {"version": "3.4.0"}, "systemd": {"units": [
            {"name": "q.service", "enabled": true, "contents": "ExecStart=/bin/sh -c 'x'"}]}});
        assert!(
            plan(&quoted)
                .expect_err("refused")
                .to_string()
                .contains("q.service")
        );
        let relative = json!({"ignition": {"version": "3.4.0"}, "systemd": {"units": [
            {"name": "r.service", "enabled": true, "contents": "ExecStart=metalprobe"}]}});
        assert!(plan(&relative).is_err());
    }
}
