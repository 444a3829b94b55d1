//! What a simulated machine's firmware and discovery system understand (pure): enough of
//! iPXE's script language to follow ferrometal's scripts, and the discovery ignition's
//! instructions for metalprobe.

use std::collections::HashMap;

/// One thing an iPXE script asks for, with variables substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `chain URL [args]`: fetch and run (or boot) `URL`.
    Chain {
        /// What to fetch.
        url: String,
        /// Command line of a chained kernel/UKI.
        args: String,
    },
    /// `kernel URL [args]`.
    Kernel {
        /// What to fetch.
        url: String,
        /// The kernel command line.
        args: String,
    },
    /// `initrd URL`.
    Initrd {
        /// What to fetch.
        url: String,
    },
    /// `boot`: start the loaded kernel.
    Boot,
    /// `exit`/`sanboot`: leave iPXE and boot from local disk.
    LocalBoot,
    /// `a && b … || sleep N || …`: the commands in order; when one fails, the script waits
    /// `pause` and goes on with its next line (instead of ending).
    Attempt {
        /// The commands (never an `Attempt`).
        steps: Vec<Step>,
        /// How long to wait after a failure (`sleep N`; zero for another alternative).
        pause: std::time::Duration,
    },
}

/// Why a script cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The text does not start with `#!ipxe`.
    #[error("not an iPXE script (no #!ipxe line): {0:?}")]
    NotIpxe(String),
    /// A variable is used that nothing set.
    #[error("line {line}: ${{{name}}} is not set")]
    Unset {
        /// 1-based line.
        line: usize,
        /// The variable.
        name: String,
    },
    /// A command lacks its argument.
    #[error("line {line}: {command} needs a URL")]
    MissingUrl {
        /// 1-based line.
        line: usize,
        /// The command.
        command: String,
    },
}

fn substitute(
    text: &str,
    vars: &HashMap<String, String>,
    line: usize,
) -> Result<String, ScriptError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| ScriptError::Unset {
            line,
            name: name.to_owned(),
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What `|| …` after a command says to do when it fails: `sleep N` waits N seconds, any
/// other alternative (`echo …`) goes on at once; `None` without `||`.
fn on_failure(alternatives: &[&str]) -> Option<std::time::Duration> {
    let first = alternatives.first()?;
    let seconds = first
        .trim()
        .strip_prefix("sleep")
        .and_then(|rest| rest.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(std::time::Duration::from_secs(seconds))
}

/// One command of a line (`set` updates `vars`); `None` for commands that fetch and boot
/// nothing (`echo`, `imgfree`, …).
fn command(
    raw: &str,
    vars: &mut HashMap<String, String>,
    line: usize,
) -> Result<Option<Step>, ScriptError> {
    let (command, rest) = raw.split_once(char::is_whitespace).unwrap_or((raw, ""));
    if command == "set" {
        let (name, value) = rest
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((rest, ""));
        let value = substitute(value.trim(), vars, line)?;
        vars.insert(name.to_owned(), value);
        return Ok(None);
    }
    let rest = substitute(rest, vars, line)?;
    let mut words = Vec::new();
    let mut skip_value = false;
    for word in rest.split_whitespace() {
        if skip_value {
            skip_value = false;
        } else if word == "--name" || word == "-n" {
            skip_value = true;
        } else if !word.starts_with('-') {
            words.push(word);
        }
    }
    let url = |command: &str| {
        words
            .first()
            .map(|url| (*url).to_owned())
            .ok_or_else(|| ScriptError::MissingUrl {
                line,
                command: command.to_owned(),
            })
    };
    let args = words.get(1..).unwrap_or_default().join(" ");
    Ok(match command {
        "chain" | "chainload" => Some(Step::Chain {
            url: url(command)?,
            args,
        }),
        "kernel" | "imgexec" => Some(Step::Kernel {
            url: url(command)?,
            args,
        }),
        "initrd" | "module" => Some(Step::Initrd { url: url(command)? }),
        "boot" => Some(Step::Boot),
        "exit" | "sanboot" => Some(Step::LocalBoot),
        _ => None,
    })
}

/// Interprets `script` with the firmware's variables (`uuid`, `mac`, …): `set` lines update
/// them, fetch/boot commands become [`Step`]s, options (`--name x`, `--replace`) are
/// dropped and other commands (`echo`, `imgfree`, comments) ignored. `a && b || sleep N …`
/// becomes a [`Step::Attempt`].
pub fn interpret(script: &str, vars: &HashMap<String, String>) -> Result<Vec<Step>, ScriptError> {
    let mut vars = vars.clone();
    let mut lines = script.lines();
    if lines.next().is_none_or(|l| l.trim() != "#!ipxe") {
        return Err(ScriptError::NotIpxe(script.chars().take(80).collect()));
    }
    let mut steps = Vec::new();
    for (number, raw) in lines.enumerate() {
        let line = number + 2;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut alternatives: Vec<&str> = raw.split("||").collect();
        let commands = alternatives.remove(0);
        let mut line_steps = Vec::new();
        for raw in commands.split("&&") {
            if let Some(step) = command(raw.trim(), &mut vars, line)? {
                line_steps.push(step);
            }
        }
        match on_failure(&alternatives) {
            Some(pause) => steps.push(Step::Attempt {
                steps: line_steps,
                pause,
            }),
            None => steps.extend(line_steps),
        }
    }
    Ok(steps)
}

pub use metalprobe::ignition::kernel_arg;

/// What the discovery ignition tells the machine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryInstructions {
    /// Where metalprobe reports (`--registry-url`).
    pub registry_url: String,
    /// The UUID to report as (`--server-uuid`), if given.
    pub server_uuid: Option<String>,
    /// The per-boot token (written to the token file).
    pub token: Option<String>,
    /// Where metalprobe is downloaded from, if the ignition downloads it.
    pub probe_url: Option<String>,
}

/// Why an ignition does not say how to run metalprobe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ignition does not say how to run metalprobe: {0}")]
pub struct IgnitionError(String);

fn file_source<'a>(ignition: &'a serde_json::Value, path: &str) -> Option<&'a str> {
    ignition["storage"]["files"]
        .as_array()?
        .iter()
        .find(|file| file["path"] == path)?["contents"]["source"]
        .as_str()
}

/// Whether an ignition is the discovery system's: one of its systemd units runs metalprobe.
pub fn runs_metalprobe(ignition: &serde_json::Value) -> bool {
    ignition["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|unit| unit["contents"].as_str())
        .flat_map(str::lines)
        .filter_map(|line| line.trim().strip_prefix("ExecStart="))
        .any(|exec| exec.contains("metalprobe"))
}

/// Reads the metalprobe unit's arguments and the token file from a discovery ignition.
pub fn discovery_instructions(
    ignition: &serde_json::Value,
) -> Result<DiscoveryInstructions, IgnitionError> {
    let units = ignition["systemd"]["units"]
        .as_array()
        .ok_or_else(|| IgnitionError(String::from("no systemd units")))?;
    let exec = units
        .iter()
        .filter_map(|unit| unit["contents"].as_str())
        .flat_map(str::lines)
        .filter_map(|line| line.trim().strip_prefix("ExecStart="))
        .find(|exec| exec.contains("metalprobe"))
        .ok_or_else(|| IgnitionError(String::from("no unit runs metalprobe")))?;
    // systemd unit files escape `%` as `%%`.
    let exec = exec.replace("%%", "%");
    let flag = |name: &str| {
        exec.split_whitespace()
            .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let registry_url =
        flag("--registry-url").ok_or_else(|| IgnitionError(String::from("no --registry-url")))?;
    let token = match flag("--token-file") {
        Some(path) => {
            let source = file_source(ignition, &path)
                .ok_or_else(|| IgnitionError(format!("the token file {path} is not written")))?;
            let data = source
                .strip_prefix("data:,")
                .ok_or_else(|| IgnitionError(format!("the token file {path} is not inline")))?;
            Some(data.trim().to_owned())
        }
        None => None,
    };
    let probe_path = exec.split_whitespace().next().unwrap_or_default();
    Ok(DiscoveryInstructions {
        registry_url,
        server_uuid: flag("--server-uuid"),
        token,
        probe_url: file_source(ignition, probe_path).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([(String::from("uuid"), String::from("abc"))])
    }

    #[test]
    fn the_chain_script_substitutes_the_uuid() {
        let steps = interpret(
            "#!ipxe\nchain --replace --autofree http://h:1/ipxe/${uuid}\n",
            &vars(),
        )
        .expect("script");
        assert_eq!(
            steps,
            [Step::Chain {
                url: String::from("http://h:1/ipxe/abc"),
                args: String::new(),
            }]
        );
    }

    #[test]
    fn a_line_with_a_fallback_is_an_attempt_that_waits_and_goes_on() {
        let steps = interpret(
            "#!ipxe\nchain http://h:1/ipxe/${uuid} || sleep 4 || echo again\n\
             imgfree && kernel http://h/k a=1 && initrd --name i http://h/i && boot || echo at once\n\
             chain http://h:1/y\n",
            &vars(),
        )
        .expect("script");
        assert_eq!(
            steps,
            [
                Step::Attempt {
                    steps: vec![Step::Chain {
                        url: String::from("http://h:1/ipxe/abc"),
                        args: String::new(),
                    }],
                    pause: std::time::Duration::from_secs(4),
                },
                Step::Attempt {
                    steps: vec![
                        Step::Kernel {
                            url: String::from("http://h/k"),
                            args: String::from("a=1"),
                        },
                        Step::Initrd {
                            url: String::from("http://h/i"),
                        },
                        Step::Boot,
                    ],
                    pause: std::time::Duration::ZERO,
                },
                Step::Chain {
                    url: String::from("http://h:1/y"),
                    args: String::new(),
                },
            ]
        );
    }

    #[test]
    fn a_per_machine_script_loads_kernel_and_initrd_with_set_variables() {
        let script = "#!ipxe\n# comment\nset kernel-url http://h/images/k\nset initrd-url http://h/images/i\n\
                      kernel ${kernel-url} initrd=initramfs ignition.config.url=http://h/ignition/abc?ticket=t console=ttyS0\n\
                      initrd --name initramfs ${initrd-url}\nboot\n";
        let steps = interpret(script, &vars()).expect("script");
        assert_eq!(steps.len(), 3);
        let Step::Kernel { url, args } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(url, "http://h/images/k");
        assert_eq!(
            kernel_arg(args, "ignition.config.url"),
            Some("http://h/ignition/abc?ticket=t")
        );
        assert_eq!(
            steps[1],
            Step::Initrd {
                url: String::from("http://h/images/i")
            }
        );
        assert_eq!(steps[2], Step::Boot);
    }

    #[test]
    fn broken_scripts_say_what_is_wrong() {
        assert!(matches!(
            interpret("<html>", &vars()),
            Err(ScriptError::NotIpxe(_))
        ));
        assert_eq!(
            interpret("#!ipxe\nchain ${nope}\n", &vars()),
            Err(ScriptError::Unset {
                line: 2,
                name: String::from("nope")
            })
        );
        assert!(matches!(
            interpret("#!ipxe\nkernel\n", &vars()),
            Err(ScriptError::MissingUrl { line: 2, .. })
        ));
    }

    #[test]
    fn the_discovery_ignition_names_registry_token_and_probe() {
        let ignition = json!({
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [
                {"path": "/etc/metalprobe/token", "contents": {"source": "data:,s3cret"}},
                {"path": "/usr/local/bin/metalprobe", "contents": {"source": "http://h/metalprobe"}}
            ]},
            "systemd": {"units": [{"name": "metalprobe.service", "contents":
                "[Service]\nExecStart=/usr/local/bin/metalprobe --registry-url=http://h/r?x=%%41 --server-uuid=abc --token-file=/etc/metalprobe/token\n"}]}
        });
        assert_eq!(
            discovery_instructions(&ignition).expect("instructions"),
            DiscoveryInstructions {
                registry_url: String::from("http://h/r?x=%41"),
                server_uuid: Some(String::from("abc")),
                token: Some(String::from("s3cret")),
                probe_url: Some(String::from("http://h/metalprobe")),
            }
        );
        let no_probe = json!({"systemd": {"units": [{"contents": "ExecStart=/bin/true"}]}});
        assert!(discovery_instructions(&no_probe).is_err());
        assert!(!runs_metalprobe(&no_probe));
        assert!(!runs_metalprobe(&json!({"ignition": {"version": "3.4.0"}})));
    }
}
