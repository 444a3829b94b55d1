//! Running commands with visible progress.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// Prints a step heading.
pub fn step(message: impl std::fmt::Display) {
    eprintln!("==> {message}");
}

/// Prints a detail under the current step.
pub fn note(message: impl std::fmt::Display) {
    eprintln!("    {message}");
}

/// Runs `command` with inherited output; fails with the command line if it does not succeed.
pub fn checked(command: &mut Command) -> anyhow::Result<()> {
    let shown = describe(command);
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    report_if_slow(started, &shown);
    Ok(())
}

/// Runs `command` like [`checked`] but prints nothing after it on success, so the output ends
/// with the command's own (the test runner's summary lines, which CI shows last).
pub fn checked_last(command: &mut Command) -> anyhow::Result<()> {
    let shown = describe(command);
    let status = command
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs the command `make` builds, up to three times with a pause between attempts: for
/// steps that download (apt, pip, Go modules, crates), where one network hiccup should not
/// fail a whole run.
pub fn checked_with_retries(mut make: impl FnMut() -> Command) -> anyhow::Result<()> {
    const ATTEMPTS: u32 = 3;
    for attempt in 1..ATTEMPTS {
        match checked(&mut make()) {
            Ok(()) => return Ok(()),
            Err(error) => {
                note(format_args!(
                    "attempt {attempt} of {ATTEMPTS} failed ({error:#}); retrying in 10s"
                ));
                std::thread::sleep(std::time::Duration::from_secs(10));
            }
        }
    }
    checked(&mut make())
}

/// Runs `command`, capturing stdout; fails with its stderr if it does not succeed.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let shown = describe(command);
    let output = command
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed non-UTF-8"))
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// Where `program` is on PATH, if it is.
pub fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| Path::new(&dir).join(program))
            .find(|path| path.is_file())
    })
}

fn describe(command: &Command) -> String {
    let mut shown = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

fn report_if_slow(started: Instant, shown: &str) {
    let elapsed = started.elapsed();
    if elapsed.as_secs() >= 5 {
        let head: String = shown.chars().take(80).collect();
        note(format_args!("({head}… took {:.0}s)", elapsed.as_secs_f64()));
    }
}
