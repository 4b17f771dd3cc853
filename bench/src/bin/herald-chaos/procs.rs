//! The processes a run starts (Redis, sentinels, Herald nodes), and its work dir.
//!
//! Every child runs in a process group of its own, so a Ctrl-C in the terminal
//! reaches only herald-chaos, which then stops everything itself; each is killed
//! when its handle is dropped (`kill_on_drop`), which covers errors, panics and an
//! interrupted run. Output goes to a log file per process in the work dir, appended
//! across restarts, so that a failure can show what the process said.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};

/// A child process.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    pid: Option<Pid>,
}

impl Proc {
    /// Starts `program` with `args` in `dir`, its output appended to `log`.
    pub fn spawn<I, S>(name: &str, program: &Path, args: I, dir: &Path, log: &Path) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = open_log(log)?;
        let errors = output.try_clone().context("cannot share a log file")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .process_group(0)
            .kill_on_drop(true);
        // The nodes take their settings from the command line only.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERALD_") {
                command.env_remove(key);
            }
        }
        let child =
            command.spawn().with_context(|| format!("cannot start {}", program.display()))?;
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
        Ok(Self { name: name.to_owned(), child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid.map_or(0, |pid| pid.as_raw_nonzero().get().unsigned_abs())
    }

    /// Sends `signal` (SIGTERM, SIGSTOP, SIGCONT; [`Proc::kill`] for SIGKILL).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self.pid.with_context(|| format!("{} has no pid", self.name))?;
        rustix::process::kill_process(pid, signal)
            .with_context(|| format!("cannot signal {} (pid {pid:?})", self.name))
    }

    /// SIGKILL, and waits until it is gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits up to `within` for the process to exit by itself.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait()).await.ok().and_then(Result::ok)
    }

    /// Whether the process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// The last `lines` lines of a log file, for a report.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(path) else { return String::new() };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The run's temporary directory: removed at the end unless asked to keep it.
#[derive(Debug)]
pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl WorkDir {
    pub fn create(keep: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("herald-chaos.")
            .tempdir()
            .context("cannot create a work directory")?;
        let path = dir.path().to_owned();
        let dir = if keep {
            let _ = dir.keep();
            None
        } else {
            Some(dir)
        };
        Ok(Self { dir, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(path)
    }

    /// Whether the directory is removed when the run ends.
    pub fn is_temporary(&self) -> bool {
        self.dir.is_some()
    }
}
