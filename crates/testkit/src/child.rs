//! Any program as a child process, its stdout and stderr in a log file a test reads
//! back: for the rigs of this kit and for tests that run the project's other binaries
//! (the orchestrator, the demo's services). Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{eventually, DEADLINE};

/// A running child process writing to `<dir>/<name>.log`.
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` (its program, arguments and environment set by the caller)
    /// with stdin closed and stdout and stderr going to `<dir>/<name>.log`. Into a
    /// file rather than a pipe: nobody has to drain it for the child to run.
    pub fn spawn(name: &str, command: &mut Command, dir: &Path) -> ChildProcess {
        let log = dir.join(format!("{name}.log"));
        let output = std::fs::File::create(&log)
            .unwrap_or_else(|error| panic!("create {}: {error}", log.display()));
        let errors = output.try_clone().expect("clone the log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "start {name} ({}): {error}",
                    command.as_std().get_program().to_string_lossy()
                )
            });
        ChildProcess {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Its name, as given to [`ChildProcess::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Everything it wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How it exited, if it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|error| panic!("poll {}: {error}", self.name))
    }

    /// Panics with its output if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exit_status() {
            panic!("{} exited ({status}):\n{}", self.name, self.output());
        }
    }

    /// The rest of the first line of its output that starts with `prefix` (trimmed),
    /// waiting for it until [`DEADLINE`]; panics with its output if it exits first.
    /// Only a finished line counts: a long one may be read while still being written.
    pub async fn line_after(&mut self, prefix: &str) -> String {
        let what = format!("{} to print `{prefix}…`", self.name);
        eventually(DEADLINE, &what, || {
            let output = self.output();
            let found = output
                .split_inclusive('\n')
                .filter_map(|line| line.strip_suffix('\n'))
                .find_map(|line| line.strip_prefix(prefix))
                .map(|rest| rest.trim().to_owned());
            if found.is_none() {
                self.assert_running();
            }
            std::future::ready(found.ok_or(output))
        })
        .await
    }

    /// Sends SIGTERM, waits until it has exited successfully (panics otherwise), and
    /// returns its output.
    pub async fn stop(&mut self) -> String {
        let pid = self
            .id()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let pid = Pid::from_raw(i32::try_from(pid).expect("a pid fits in i32"));
        kill(pid, Signal::SIGTERM).unwrap_or_else(|error| panic!("SIGTERM {}: {error}", self.name));
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {DEADLINE:?} of SIGTERM", self.name))
            .unwrap_or_else(|error| panic!("wait for {}: {error}", self.name));
        let output = self.output();
        assert!(status.success(), "{} exited {status}:\n{output}", self.name);
        output
    }

    /// Kills it (SIGKILL) and waits until it has exited.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts killing it without waiting (for `Drop` implementations).
    pub fn start_kill(&mut self) {
        let _ = self.child.start_kill();
    }
}
