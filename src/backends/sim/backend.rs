//! The [`Backend`] impl of [`SimBackend`]: connect, probe, reset and replication status
//! on the simulated servers.

use std::time::Duration;

use super::overrides::Overrides;
use super::server::Hook;
#[cfg(doc)]
use super::SimServer;
use super::{SimBackend, SimConnection, SimRole};
use crate::backends::Role;
use crate::backends::{Backend, MemberStatus};
use crate::connection::ConnectionConfig;
use crate::error::BackendError;
#[cfg(doc)]
use crate::error::BackendErrorKind;

impl Backend for SimBackend {
    type Connection = SimConnection;

    /// Connect to `server(&config.primary_host())`.
    ///
    /// In order: count the attempt (and the connect as in flight until the future ends or
    /// is dropped); panic or stall if armed; parse the option overrides
    /// ([`Config`](BackendErrorKind::Config) error naming a bad one); wait the connect
    /// latency; fail if the server is down, if a failure is armed, if the password does
    /// not match ([`Auth`](BackendErrorKind::Auth)), or by the failure rate.
    async fn connect(&self, config: &ConnectionConfig) -> Result<SimConnection, BackendError> {
        let server = self.server(&config.primary_host());
        let in_flight = server.begin_connect();
        if server.take_hook(Hook::PanicConnect) {
            drop(in_flight);
            panic!("simulated panic in connect");
        }
        if server.take_hook(Hook::StallConnect) {
            std::future::pending::<()>().await;
        }
        let overrides = if config.options.is_empty() {
            Overrides::default()
        } else {
            Overrides::parse(&config.options)?
        };
        let latency = overrides
            .connect_latency
            .unwrap_or_else(|| server.connect_latency());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let rate = overrides
            .connect_failure_rate
            .unwrap_or_else(|| server.connect_failure_rate());

        let shared = server.accept(config, rate)?;
        drop(in_flight);
        Ok(SimConnection::new(
            shared,
            server,
            overrides.query_latency,
            overrides.query_failure_rate,
        ))
    }

    /// Panic or stall if armed, then like `conn.query("SELECT 1")`.
    async fn probe(&self, conn: &mut SimConnection) -> Result<(), BackendError> {
        if conn.server().take_hook(Hook::PanicProbe) {
            panic!("simulated panic in probe");
        }
        if conn.server().take_hook(Hook::StallProbe) {
            conn.stall().await;
        }
        if conn.server().take_hook(Hook::FailProbe) {
            conn.server().count_query();
            return Err(BackendError::new(
                crate::error::BackendErrorKind::Query,
                "simulated probe failure",
            ));
        }
        conn.execute("SELECT 1").await.map(drop)
    }

    /// Whether a transaction is open.
    fn needs_reset(&self, conn: &SimConnection) -> bool {
        if conn.server().take_hook(Hook::PanicResetCheck) {
            armed_panic("simulated panic in reset check");
        }
        conn.in_transaction()
    }

    /// Panic or stall if armed, then like `conn.query("ROLLBACK")`.
    async fn reset(&self, conn: &mut SimConnection) -> Result<(), BackendError> {
        if conn.server().take_hook(Hook::PanicReset) {
            panic!("simulated panic in reset");
        }
        if conn.server().take_hook(Hook::StallReset) {
            conn.stall().await;
        }
        conn.execute("ROLLBACK").await.map(drop)
    }

    /// Whether the connection was killed.
    fn is_broken(&self, conn: &mut SimConnection) -> bool {
        if conn.server().take_hook(Hook::PanicCheck) {
            armed_panic("simulated panic in check");
        }
        conn.is_killed()
    }

    /// Role, lag and position, after a round trip like `SELECT 1`. The lag of a replica
    /// whose replay is paused grows with the writes it has not replayed (1 ms each, on
    /// top of [`SimServer::lag`]).
    async fn status(&self, conn: &mut SimConnection) -> Result<Option<MemberStatus>, BackendError> {
        conn.execute("SELECT 1").await?;
        let server = conn.server();
        let position = server.position();
        let behind = server
            .upstream()
            .map_or(0, |p| p.position().saturating_sub(position));
        Ok(Some(MemberStatus {
            role: match server.role() {
                SimRole::Primary => Role::Primary,
                SimRole::Replica => Role::Replica,
            },
            lag: Some(server.lag() + Duration::from_millis(behind)),
            position: Some(position),
        }))
    }

    /// The server's position after a round trip.
    async fn write_position(&self, conn: &mut SimConnection) -> Result<Option<u64>, BackendError> {
        conn.execute("SELECT 1").await?;
        Ok(Some(conn.server().position()))
    }
}

/// An armed panic, out of line: the checks it is armed in run on every checkout and
/// return, and must stay as cheap as they were.
#[cold]
#[inline(never)]
fn armed_panic(message: &str) -> ! {
    panic!("{message}")
}
