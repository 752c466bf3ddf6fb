//! The five faults, driven against the scenario's own throwaway server, and the
//! independent client that tells when the server accepts connections again.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{timeout, Instant};
use tokio_postgres::NoTls;

use super::load::Load;
use super::pools::Endpoint;
use crate::common::pg_replication::StopMode;
use crate::common::PgServer;

/// The `application_name` of the client that polls for the server to accept.
const READY_APP: &str = "faults-ready";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RestartFast,
    RestartImmediate,
    Terminate,
    ConnLimit,
    Freeze,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::RestartFast,
        Fault::RestartImmediate,
        Fault::Terminate,
        Fault::ConnLimit,
        Fault::Freeze,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Fault::RestartFast => "9.1 `pg_ctl restart -m fast`",
            Fault::RestartImmediate => "9.2 `pg_ctl restart -m immediate`",
            Fault::Terminate => "9.3 `pg_terminate_backend` of every backend of the pool",
            Fault::ConnLimit => "9.4 the server accepts 2 of the pool's 8 connections",
            Fault::Freeze => "9.5 SIGSTOP of the postmaster and every backend, then SIGCONT",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Fault::RestartFast => "restart -m fast",
            Fault::RestartImmediate => "restart -m immediate",
            Fault::Terminate => "terminate backends",
            Fault::ConnLimit => "2 connections allowed",
            Fault::Freeze => "SIGSTOP / SIGCONT",
        }
    }
}

/// The scenario's server and the role the pools log in as.
pub struct Env {
    pub pg: Arc<PgServer>,
    pub ep: Endpoint,
}

/// What a fault did, as marks of the run's timeline (µs since its start).
pub struct Struck {
    /// The fault's instant: just before the stop or the termination, just after the
    /// freeze.
    pub at: u32,
    /// Callers inside a query at that instant.
    pub in_flight: usize,
    /// From when no success can come from the server (after a restart's stop; the fault's
    /// instant otherwise): the first success at or after it is "service back".
    pub down: u32,
    /// When the server served again: the independent client's first connect after a
    /// restart, the instant of the fault when the server stayed up, the end of the hold.
    pub back: u32,
    /// The end of the hold, for faults that hold.
    pub lifted: Option<u32>,
    /// What happened, for the notes (down time, backends signalled…).
    pub note: String,
}

impl Env {
    async fn admin(&self) -> tokio_postgres::Client {
        self.pg.superuser_client().await
    }

    /// Backends of `app` now.
    pub async fn backends(&self, app: &str) -> i64 {
        crate::common::pg_server::count_backends(&self.admin().await, app).await
    }

    /// Wait (at most `within`) until `app` has no backend left.
    pub async fn wait_gone(&self, app: &str, within: Duration) {
        let admin = self.admin().await;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline
            && crate::common::pg_server::count_backends(&admin, app).await > 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Poll with a fresh connection every 5 ms until the server accepts one (at most
    /// `within`); answers when that connect completed.
    async fn accepting(&self, within: Duration) -> Option<Instant> {
        let cfg = self.ep.tp(READY_APP);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Ok((client, conn))) =
                timeout(Duration::from_secs(1), cfg.connect(NoTls)).await
            {
                let at = Instant::now();
                drop(client);
                let _ = timeout(Duration::from_secs(1), conn).await;
                return Some(at);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Inject `fault` into the run of `load` (whose pool connects as `app`); returns once
    /// the server serves again (a fault that holds lasts `hold`).
    pub async fn inject(&self, fault: Fault, load: &Load, app: &str, hold: Duration) -> Struck {
        match fault {
            Fault::RestartFast | Fault::RestartImmediate => {
                let mode = if fault == Fault::RestartFast {
                    StopMode::Fast
                } else {
                    StopMode::Immediate
                };
                let (at, in_flight) = load.strike();
                let t = Instant::now();
                let pg = Arc::clone(&self.pg);
                tokio::task::spawn_blocking(move || pg.stop_with(mode))
                    .await
                    .expect("pg_ctl stop");
                let stopped = Instant::now();
                let pg = Arc::clone(&self.pg);
                let starting = tokio::task::spawn_blocking(move || pg.start_again());
                let ready = self.accepting(Duration::from_secs(30)).await;
                starting.await.expect("pg_ctl start");
                let ready = ready.unwrap_or_else(Instant::now);
                Struck {
                    at,
                    in_flight,
                    down: load.mark_at(stopped),
                    back: load.mark_at(ready),
                    lifted: None,
                    note: format!(
                        "stop took {} ms, down (stopped → accepting) {} ms",
                        (stopped - t).as_millis(),
                        ready.saturating_duration_since(stopped).as_millis()
                    ),
                }
            }
            Fault::Terminate => {
                let admin = self.admin().await;
                let (at, in_flight) = load.strike();
                let n = admin
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1",
                        &[&app],
                    )
                    .await
                    .expect("pg_terminate_backend")
                    .len();
                Struck {
                    at,
                    in_flight,
                    down: at,
                    back: at,
                    lifted: None,
                    note: format!("{n} backends terminated"),
                }
            }
            Fault::ConnLimit => {
                let admin = self.admin().await;
                let role = &self.ep.user;
                admin
                    .batch_execute(&format!("ALTER ROLE {role} CONNECTION LIMIT 2"))
                    .await
                    .expect("ALTER ROLE");
                let (at, in_flight) = load.strike();
                let n = admin
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid NOT IN (SELECT pid FROM \
                         pg_stat_activity WHERE application_name = $1 ORDER BY pid LIMIT 2)",
                        &[&app],
                    )
                    .await
                    .expect("pg_terminate_backend")
                    .len();
                tokio::time::sleep(hold).await;
                admin
                    .batch_execute(&format!("ALTER ROLE {role} CONNECTION LIMIT -1"))
                    .await
                    .expect("ALTER ROLE");
                let lifted = load.mark();
                Struck {
                    at,
                    in_flight,
                    down: lifted,
                    back: lifted,
                    lifted: Some(lifted),
                    note: format!("{n} of the pool's backends terminated, 2 kept"),
                }
            }
            Fault::Freeze => {
                // The instant is taken once every process is stopped (sending the signals
                // takes a few ms, during which the server still serves).
                let frozen = Frozen(Arc::clone(&self.pg));
                let pg = Arc::clone(&self.pg);
                let n = tokio::task::spawn_blocking(move || pg.signal_all("STOP"))
                    .await
                    .expect("SIGSTOP");
                let (at, in_flight) = load.strike();
                tokio::time::sleep(hold).await;
                tokio::task::spawn_blocking(move || drop(frozen))
                    .await
                    .expect("SIGCONT");
                let lifted = load.mark();
                Struck {
                    at,
                    in_flight,
                    down: lifted,
                    back: lifted,
                    lifted: Some(lifted),
                    note: format!("{n} processes stopped"),
                }
            }
        }
    }
}

/// Thaws the server when dropped, however the scenario ends.
struct Frozen(Arc<PgServer>);

impl Drop for Frozen {
    fn drop(&mut self) {
        self.0.signal_all("CONT");
    }
}
