//! Process-level faults of a throwaway [`PgServer`]: freezing the postmaster and every
//! process it forked (SIGSTOP) and thawing them (SIGCONT), as a hung host or a long GC
//! pause of a VM would.
//!
//! ```ignore
//! let frozen = pg.signal_all("STOP");  // postmaster first: it forks nothing meanwhile
//! // … connections stay open, nothing answers …
//! pg.signal_all("CONT");
//! ```

use std::process::Command;

use super::pg_server::PgServer;

impl PgServer {
    /// The postmaster's pid (first line of `data/postmaster.pid`), while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir().join("data").join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Pids of the postmaster's children (client backends and auxiliary processes), read
    /// from `/proc/<pid>/stat`.
    pub fn child_pids(&self) -> Vec<u32> {
        let Some(parent) = self.postmaster_pid() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        let rest = &s[s.rfind(')')? + 1..];
                        rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                    })
                    == Some(parent)
            })
            .collect()
    }

    /// Send `signal` (`"STOP"`, `"CONT"`, …) to the postmaster and every child: the
    /// postmaster first for `STOP` (so it forks nothing in between), last otherwise.
    /// Returns how many processes were signalled (0 when the server is not running).
    pub fn signal_all(&self, signal: &str) -> usize {
        let Some(postmaster) = self.postmaster_pid() else {
            return 0;
        };
        let send = |pids: &[u32]| {
            if pids.is_empty() {
                return;
            }
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .args(pids.iter().map(u32::to_string))
                .status();
        };
        if signal == "STOP" {
            send(&[postmaster]);
            let children = self.child_pids();
            send(&children);
            1 + children.len()
        } else {
            let children = self.child_pids();
            send(&children);
            send(&[postmaster]);
            1 + children.len()
        }
    }
}
