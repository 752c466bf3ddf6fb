//! What the throwaway servers have in common: starting from a cached template, finding a
//! free port, spawning a server process and waiting until it answers, killing it, and
//! running tools as another OS user.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{cached_template, discard_template, free_port, log_tail, wait_for};

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
