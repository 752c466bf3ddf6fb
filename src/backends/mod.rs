//! Backends: the one trait a database driver implements to be pooled ([`Backend`]), what
//! a replica-set member says about itself ([`MemberStatus`], [`Role`]), and the drivers
//! poolwarden pools, one module (or folder) each. The simulated backend is always built.

use std::future::Future;
use std::time::Duration;

use crate::connection::ConnectionConfig;
use crate::error::BackendError;
use serde::{Deserialize, Serialize};

/// What a member of a replica set says about itself, for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    /// Primary or replica (PostgreSQL `pg_is_in_recovery()`, Redis `ROLE`).
    pub role: Role,
    /// How far behind its primary a replica is, when known.
    pub lag: Option<Duration>,
    /// Replay position (a replica) or write position (a primary), e.g. a WAL LSN.
    pub position: Option<u64>,
}

/// A database driver: opens, checks and resets connections.
///
/// One value of the backend serves every pool of a [`Supervisor`](crate::Supervisor); the
/// per-pool [`ConnectionConfig`] is passed to [`connect`](Backend::connect). Panics in any
/// of these methods are caught by the pool and turn into a supervised restart of its actor.
///
/// ```
/// use poolwarden::{Backend, BackendError, ConnectionConfig};
///
/// #[derive(Clone, Default)]
/// struct Echo;
///
/// impl Backend for Echo {
///     type Connection = String;
///     async fn connect(&self, cfg: &ConnectionConfig) -> Result<String, BackendError> {
///         Ok(cfg.primary_host())
///     }
///     async fn probe(&self, _conn: &mut String) -> Result<(), BackendError> {
///         Ok(())
///     }
/// }
/// ```
pub trait Backend: Send + Sync + 'static {
    /// The connection handed out by the pool.
    type Connection: Send + 'static;

    /// Open a new connection.
    fn connect(
        &self,
        config: &ConnectionConfig,
    ) -> impl Future<Output = Result<Self::Connection, BackendError>> + Send;

    /// One cheap round trip proving the connection works.
    fn probe(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Whether [`reset`](Backend::reset) has anything to do for this connection. Returning
    /// false keeps release synchronous (no task is spawned). Default: true.
    fn needs_reset(&self, _conn: &Self::Connection) -> bool {
        true
    }

    /// Bring a returned connection back to a clean state (roll back an open transaction…).
    /// A connection whose reset fails is closed. Default: nothing to do.
    fn reset(
        &self,
        _conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }

    /// A cheap synchronous check that the connection is known to be unusable (its socket
    /// closed, a command was cancelled mid-flight…). Broken connections are never reused.
    /// Default: false.
    fn is_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// Role, lag and position of the server, for replica-set routing and failover.
    /// Default: unknown (`None`), which routes by configuration only.
    fn status(
        &self,
        _conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Option<MemberStatus>, BackendError>> + Send {
        async { Ok(None) }
    }

    /// The server's write position after a write on this connection (PostgreSQL:
    /// `pg_current_wal_lsn()`), the causality token of read-your-writes. Default: `None`.
    fn write_position(
        &self,
        _conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Option<u64>, BackendError>> + Send {
        async { Ok(None) }
    }
}

/// A member's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes writes.
    #[default]
    Primary,
    /// Read-only copy.
    Replica,
}

pub mod any;
pub mod sim;

#[cfg(any(feature = "bb8", feature = "mobc"))]
mod adapter;
#[cfg(feature = "bb8")]
pub mod bb8;
#[cfg(feature = "mobc")]
pub mod mobc;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(
    feature = "bb8",
    feature = "mobc",
    feature = "mysql",
    feature = "postgres",
    feature = "redis"
))]
mod support;
#[cfg(any(feature = "mysql", feature = "postgres", feature = "redis"))]
mod tls;
