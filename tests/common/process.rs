//! What the throwaway servers have in common: starting from a cached template, finding a
//! free port, spawning a server process and waiting until it answers, stopping, killing
//! and restarting it, and running tools as another OS user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{cached_template, discard_template, free_port, log_tail, server_dir, wait_for, Reaper};

/// A reaper script (see [`Reaper`](super::Reaper)) for a server that writes its pid to
/// `$D/<pidfile>`: SIGKILL it, then delete the directory.
pub fn pidfile_reaper_script(pidfile: &str) -> String {
    format!(
        r#"
if [ -f "$D/{pidfile}" ]; then kill -KILL "$(cat "$D/{pidfile}")" 2>/dev/null; fi
rm -rf "$D"
"#
    )
}

/// `program`, run as `user` through `runuser -u user --` when given.
pub fn command_as(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Start a server from the template of `kind` (built once by `build`, see
/// [`cached_template`]). When `start` fails with an error that mentions the template, the
/// template is rebuilt and `start` tried once more.
pub fn start_from_template<T>(
    kind: &str,
    version: &str,
    owner: Option<&str>,
    build: impl Fn(&Path) -> Result<(), String>,
    mut start: impl FnMut(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let mut last_err = String::new();
    for attempt in 0..2 {
        let template = cached_template(kind, version, owner, &build)
            .map_err(|e| format!("cannot build the template: {e}"))?;
        match start(&template) {
            Ok(server) => return Ok(server),
            Err(e) if attempt == 0 && e.contains("template") => {
                discard_template(&template);
                last_err = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err)
}

/// Run `start` on a free port; a free port can be taken between probing and binding, so
/// on an "address in use" or bind error try again with another one (five tries in all).
pub fn on_free_port<T>(mut start: impl FnMut(u16) -> Result<T, String>) -> Result<T, String> {
    let mut last = String::new();
    for _ in 0..5 {
        match start(free_port()) {
            Ok(v) => return Ok(v),
            Err(e) if e.contains("Address already in use") || e.contains("bind") => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// SIGKILL `child`, reap it and remove its pid file.
pub fn kill(mut child: Child, pidfile: &Path) {
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(pidfile);
}

/// SIGTERM `child`, wait up to 30 s, then SIGKILL; reap it and remove its pid file.
pub fn terminate(mut child: Child, pidfile: &Path) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let exited = wait_for(Duration::from_secs(30), || {
        child.try_wait().ok().flatten().map(|_| ())
    });
    if exited.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(pidfile);
}

/// A server process being started: its name for messages, its pid file and log.
pub struct Spawn<'a> {
    pub name: &'a str,
    pub pidfile: &'a Path,
    pub log: &'a Path,
    /// Log lines to show when it fails.
    pub log_lines: usize,
    pub within: Duration,
}

impl Spawn<'_> {
    /// Spawn `cmd` (no stdio) and poll `ready` until it answers `Some(Ok)`; an early exit,
    /// `Some(Err)` or no answer within `within` kills the process and is an error with
    /// the tail of its log.
    pub fn run(
        &self,
        cmd: &mut Command,
        mut ready: impl FnMut() -> Option<Result<(), String>>,
    ) -> Result<Child, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.name))?;
        let answer = wait_for(self.within, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(format!("{} exited ({status})", self.name)));
            }
            ready()
        });
        match answer {
            Some(Ok(())) => Ok(child),
            other => {
                kill(child, self.pidfile);
                Err(format!(
                    "{}\n--- {} log ---\n{}",
                    other.and_then(|r| r.err()).unwrap_or_else(|| format!(
                        "{} not ready within {:?}",
                        self.name, self.within
                    )),
                    self.name,
                    log_tail(self.log, self.log_lines)
                ))
            }
        }
    }
}

/// What a [`Process`] is: its program's name for messages, the names of its pid file and
/// log in its directory, how many log lines to show when it fails to start and how long
/// it may take to answer.
pub struct ProcessSpec {
    pub name: &'static str,
    pub pidfile: &'static str,
    pub log: &'static str,
    pub log_lines: usize,
    pub within: Duration,
}

/// A server process that the harness spawns itself (MariaDB, Redis): its directory, port
/// and running child. The directory comes with a [`Reaper`] that SIGKILLs the server
/// through its pid file. Dropping the `Process` kills the server (throwaway data: no clean
/// shutdown), then the reaper deletes the directory.
pub struct Process {
    spec: ProcessSpec,
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    reaper: Option<Reaper>,
}

impl Process {
    /// A fresh directory `<tmp>/<prefix>…` and its reaper; no port and no server yet.
    pub fn new(prefix: &str, spec: ProcessSpec) -> Process {
        let dir = server_dir(prefix);
        let reaper = Reaper::spawn(&dir, &pidfile_reaper_script(spec.pidfile));
        Process {
            spec,
            dir,
            port: 0,
            child: Mutex::new(None),
            reaper: Some(reaper),
        }
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Use `port` from the next start on (see [`on_free_port`]).
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// The pid file the server writes.
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join(self.spec.pidfile)
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(self.spec.log)
    }

    /// Spawn `cmd` and wait until `ready` answers (see [`Spawn::run`]); the child is kept
    /// as the running server.
    pub fn spawn(
        &self,
        cmd: &mut Command,
        ready: impl FnMut() -> Option<Result<(), String>>,
    ) -> Result<(), String> {
        let spawn = Spawn {
            name: self.spec.name,
            pidfile: &self.pidfile(),
            log: &self.log_path(),
            log_lines: self.spec.log_lines,
            within: self.spec.within,
        };
        let child = spawn.run(cmd, ready)?;
        *self.child.lock().unwrap() = Some(child);
        Ok(())
    }

    /// Kill the server at once (SIGKILL). No-op when stopped.
    pub fn kill(&self) {
        if let Some(child) = self.child.lock().unwrap().take() {
            kill(child, &self.pidfile());
        }
    }

    /// Stop the server (SIGTERM, then SIGKILL after 30 s). No-op when stopped.
    pub fn terminate(&self) {
        if let Some(child) = self.child.lock().unwrap().take() {
            terminate(child, &self.pidfile());
        }
    }

    /// Start again with `spawn` (on the same port) unless running; panics naming `server`
    /// when it fails.
    pub fn start_again(&self, server: &str, spawn: impl FnOnce() -> Result<(), String>) {
        if self.child.lock().unwrap().is_some() {
            return;
        }
        if let Err(e) = spawn() {
            panic!("cannot restart {server} on port {}: {e}", self.port);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            kill(child, &self.pidfile());
        }
        drop(self.reaper.take());
    }
}
