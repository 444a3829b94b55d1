//! Child processes that never outlive the harness, and run directories that record them.
//!
//! Two mechanisms make sure a killed test run leaves nothing behind:
//! - every child is forked from one long-lived spawner thread and asks the kernel for
//!   `SIGKILL` when its parent goes away (`PR_SET_PDEATHSIG` is tied to the forking *thread*,
//!   so forking from short-lived test threads would kill shared servers too early);
//! - every child is recorded in its run directory under [`runs_dir`]; the first harness use in
//!   a process reaps run directories whose owning process is gone, killing any recorded child
//!   that is still alive and whose command line names that directory.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock, mpsc};
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::{Error, Result, progress, tools};

/// Where run directories live.
pub(crate) fn runs_dir() -> PathBuf {
    tools::cache_dir().join("run")
}

/// A private directory for one component instance: configuration, data and logs.
///
/// Named `<owner pid>-<label>-<n>`. Removed on drop unless the thread is panicking, in which
/// case it is kept and its path printed so the logs can be read.
#[derive(Debug)]
pub(crate) struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    /// Creates a fresh run directory, reaping leftovers of dead runs first (once per process).
    pub(crate) fn create(label: &str) -> Result<Self> {
        static REAPED: Once = Once::new();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        REAPED.call_once(reap_dead_runs);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = runs_dir().join(format!("{}-{label}-{n}", std::process::id()));
        fs::create_dir_all(&path).map_err(Error::io(format!(
            "create run directory {}",
            path.display()
        )))?;
        Ok(Self { path, keep: false })
    }

    /// Keeps the directory when dropped, as after a failed test, so its logs can be read
    /// (the next run's reaper removes it).
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records a child so that a later run can reap it if this process dies first.
    fn record(&self, pid: u32, name: &str) -> Result<()> {
        let file = self.path.join("pids");
        let mut pids = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(Error::io(format!("open {}", file.display())))?;
        writeln!(pids, "{pid} {name}").map_err(Error::io(format!("write {}", file.display())))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if std::thread::panicking() || self.keep {
            progress(format_args!(
                "keeping {} for inspection (test failed)",
                self.path.display()
            ));
        } else if let Err(error) = fs::remove_dir_all(&self.path) {
            progress(format_args!(
                "cannot remove {}: {error}",
                self.path.display()
            ));
        }
    }
}

/// Removes run directories whose owner process no longer exists, killing any recorded child
/// that survived it. The harness does this by itself before it starts its first component in
/// a process; calling it again is harmless.
pub fn reap_dead_runs() {
    let Ok(entries) = fs::read_dir(runs_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(owner) = owner_pid(&dir) else {
            continue;
        };
        if owner == std::process::id() || process_exists(owner) {
            continue;
        }
        for (pid, name) in recorded_children(&dir) {
            if cmdline_mentions(pid, &dir) {
                if let Some(pid) = Pid::from_raw(pid as i32) {
                    // The process may exit between the check and the kill; either way it is gone.
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
                progress(format_args!(
                    "killed {name} (pid {pid}) left behind by an earlier run (pid {owner}) in {}",
                    dir.display()
                ));
            }
        }
        if crate::node::is_node_run_dir(&dir) {
            // Container shims outlive the harness, and mounts keep files busy.
            crate::node::clean_up_dead_run(&dir);
        }
        // Another process may be reaping the same directory at the same moment.
        if let Err(error) = fs::remove_dir_all(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            progress(format_args!(
                "cannot remove stale run directory {}: {error}",
                dir.display()
            ));
        }
    }
}

fn owner_pid(dir: &Path) -> Option<u32> {
    dir.file_name()?.to_str()?.split('-').next()?.parse().ok()
}

fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

fn recorded_children(dir: &Path) -> Vec<(u32, String)> {
    fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (pid, name) = line.split_once(' ')?;
            Some((pid.parse().ok()?, name.to_owned()))
        })
        .collect()
}

/// Whether the live process `pid` was started by us for `dir` (its arguments name the
/// directory), which guards against killing an unrelated process that reused the pid.
fn cmdline_mentions(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|window| window == needle)
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Forks `command` from the spawner thread, which lives as long as the process.
fn spawn_from_long_lived_thread(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testenv-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| requests)
            .unwrap_or_else(|error| panic!("cannot start the testenv spawner thread: {error}"))
    });
    let (reply, response) = mpsc::channel();
    spawner
        .send((command, reply))
        .map_err(|_| std::io::Error::other("testenv spawner thread is gone"))?;
    response
        .recv()
        .map_err(|_| std::io::Error::other("testenv spawner thread is gone"))?
}

/// A running child process whose output goes to a log file; killed on drop.
#[derive(Debug)]
pub(crate) struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command` with stdout and stderr appended to `<run dir>/<name>.log` (a process
    /// started again under the same name, e.g. after a crash, goes on in the same log).
    pub(crate) fn spawn(name: &str, mut command: Command, run_dir: &RunDir) -> Result<Self> {
        let log = run_dir.path().join(format!("{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(Error::io(format!("open {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("duplicate {}", log.display())))?;
        // Its temporary files go in its run directory, removed with it even when the process
        // is killed before it can clean up (an operator's layer cache, for one).
        if !command.get_envs().any(|(key, _)| key == "TMPDIR") {
            let tmp = run_dir.path().join("tmp");
            fs::create_dir_all(&tmp).map_err(Error::io(format!("create {}", tmp.display())))?;
            command.env("TMPDIR", tmp);
        }
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl, getppid) without allocating.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                // If the parent died before prctl took effect, the signal will never come.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
        let child =
            spawn_from_long_lived_thread(command).map_err(Error::io(format!("start {name}")))?;
        run_dir.record(child.id(), name)?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Fails with the end of the log if the process has exited.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::ProcessExited {
                name: self.name.clone(),
                status,
                log: self.log.clone(),
                tail: self.log_tail(40),
            }),
            Err(source) => Err(Error::Io {
                action: format!("check whether {} is running", self.name),
                source,
            }),
        }
    }

    /// The last `lines` lines of the log (at most 64 KiB are read).
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log, lines)
    }

    /// Sends `signal` to the process (not its children).
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| Error::Io {
                action: format!("signal {}", self.name),
                source: std::io::Error::other("pid out of range"),
            })?;
        rustix::process::kill_process(pid, signal).map_err(|errno| Error::Io {
            action: format!("send {signal:?} to {}", self.name),
            source: errno.into(),
        })
    }

    /// Kills the process with `SIGKILL`, as a crash would, and waits until it is gone (its
    /// ports are free again once this returns).
    pub(crate) fn kill(&mut self) -> Result<()> {
        // Err only means it had exited already; the wait below reaps it either way.
        let _ = self.child.kill();
        self.child.wait().map(drop).map_err(|source| Error::Io {
            action: format!("wait for {} to die", self.name),
            source,
        })
    }

    /// Waits for the process to exit, polling every 50 ms for at most `limit`; `None` if it
    /// still runs then.
    pub(crate) fn wait_for_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let started = std::time::Instant::now();
        loop {
            let status = self.child.try_wait().map_err(|source| Error::Io {
                action: format!("wait for {}", self.name),
                source,
            })?;
            if status.is_some() || started.elapsed() >= limit {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `url` every 100 ms until it answers with a success status. Fails at once with
    /// the log tail if the process exits, and with the last probe failure after `timeout`.
    pub(crate) async fn wait_until_answers(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let mut last_error = String::from("no answer yet");
        while started.elapsed() < timeout {
            self.ensure_running()?;
            match http.get(url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last_error = format!("{url} answered {}", response.status()),
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.not_ready(timeout, last_error))
    }

    /// A readiness-timeout error carrying the log tail.
    pub(crate) fn not_ready(&self, waited: Duration, last_error: String) -> Error {
        Error::NotReady {
            name: self.name.clone(),
            waited,
            last_error,
            log: self.log.clone(),
            tail: self.log_tail(40),
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // SIGKILL: test servers hold no state worth a graceful shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_the_directory_name() {
        assert_eq!(owner_pid(Path::new("/x/run/1234-etcd-0")), Some(1234));
        assert_eq!(owner_pid(Path::new("/x/run/not-a-run")), None);
    }

    #[test]
    fn log_tail_returns_the_last_lines() {
        let dir = RunDir::create("unit-log-tail").expect("run dir");
        let log = dir.path().join("x.log");
        fs::write(&log, "one\ntwo\nthree\n").expect("write");
        assert_eq!(tail_of_file(&log, 2), "two\nthree");
    }

    #[test]
    fn a_child_that_exits_is_reported_with_its_log() {
        let dir = RunDir::create("unit-exit").expect("run dir");
        let mut command = Command::new("sh");
        command.args(["-c", "echo boom; exit 3"]);
        let mut process = ManagedProcess::spawn("failing", command, &dir).expect("spawn");
        let error = loop {
            match process.ensure_running() {
                Ok(()) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => break error.to_string(),
            }
        };
        assert!(error.contains("failing exited unexpectedly"), "{error}");
        assert!(error.contains("boom"), "{error}");
    }
}

/// A program started by a test (e.g. the operator under test) with the harness's guarantees:
/// it dies with the test process, its output goes to a log file in its own run directory, and
/// the end of that log is printed if the test fails while it runs.
#[derive(Debug)]
pub struct Program {
    // Field order matters: the process is killed before the run directory is removed.
    process: ManagedProcess,
    run_dir: RunDir,
}

impl Program {
    /// Starts `command` as `name`.
    pub fn start(name: &str, command: Command) -> Result<Self> {
        let run_dir = RunDir::create(name)?;
        let process = ManagedProcess::spawn(name, command, &run_dir)?;
        Ok(Self { process, run_dir })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails with the end of the log if the program has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.process.ensure_running()
    }

    /// The last `lines` lines of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Its run directory (holds the log).
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// Its whole output so far (stdout and stderr, interleaved as written).
    pub fn log(&self) -> String {
        fs::read_to_string(self.process.log()).unwrap_or_default()
    }

    /// Sends SIGINT, as Ctrl-C in a terminal would.
    pub fn interrupt(&self) -> Result<()> {
        self.process.signal(Signal::INT)
    }

    /// Kills it with `SIGKILL` (a crash: no shutdown code runs) and waits until it is gone.
    /// Its log stays readable until the program is dropped.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Waits until it has exited and returns its exit status; `None` if it still runs after
    /// `limit` (the caller decides whether that is a failure).
    pub fn wait_for_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        self.process.wait_for_exit(limit)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if std::thread::panicking() {
            progress(format_args!(
                "test failed; last output of {}:\n{}",
                self.process.log().display(),
                self.log_tail(40)
            ));
        }
    }
}
