//! A connection to a simulated server: [`SimConnection`], its queries and transactions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::server::{ConnShared, SimServer};
use crate::error::{BackendError, BackendErrorKind};

/// Kills the connection if an operation is dropped before it completes.
struct CancelGuard<'a> {
    server: &'a SimServer,
    conn: &'a ConnShared,
    armed: bool,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.server.kill(self.conn);
        }
    }
}

/// A connection to a [`SimServer`].
///
/// Dropping it closes it. An operation future dropped while it waits (latency or a stall)
/// kills the connection, like a real driver whose command was cancelled mid-flight.
pub struct SimConnection {
    shared: Arc<ConnShared>,
    server: SimServer,
    queries: u64,
    in_transaction: bool,
    query_latency: Option<Duration>,
    query_failure_rate: Option<f64>,
}

impl SimConnection {
    /// A connection the server has just [accepted](SimServer::accept), with the
    /// per-connection overrides of the query behaviour.
    pub(super) fn new(
        shared: Arc<ConnShared>,
        server: SimServer,
        query_latency: Option<Duration>,
        query_failure_rate: Option<f64>,
    ) -> Self {
        Self {
            shared,
            server,
            queries: 0,
            in_transaction: false,
            query_latency,
            query_failure_rate,
        }
    }

    /// Unique within the world.
    pub fn id(&self) -> u64 {
        self.shared.id()
    }

    /// The server this connection is open to.
    pub fn server(&self) -> &SimServer {
        &self.server
    }

    /// Run a statement. Returns how many statements this connection has run, this one
    /// included.
    ///
    /// Takes the query latency (no timer at all when it is zero). Fails with
    /// [`Closed`](BackendErrorKind::Closed) if the connection was killed or the server is
    /// down (the connection is then killed), with [`Query`](BackendErrorKind::Query) by
    /// the query failure rate. `BEGIN` / `START TRANSACTION` open a transaction, `COMMIT`,
    /// `ROLLBACK`, `END` and `ABORT` close it (case-insensitive).
    pub async fn query(&mut self, sql: &str) -> Result<u64, BackendError> {
        self.execute(sql).await
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Whether the connection was killed (by the server, an outage, or a cancelled
    /// operation).
    #[inline]
    pub fn is_killed(&self) -> bool {
        self.server.sync_outages();
        self.shared.is_dead()
    }

    fn ensure_alive(&self) -> Result<(), BackendError> {
        let server = &self.server;
        let in_outage = server.sync_outages();
        if self.shared.is_dead() {
            return Err(BackendError::new(
                BackendErrorKind::Closed,
                "connection closed by the server",
            ));
        }
        if in_outage || !server.switched_up() {
            server.kill(&self.shared);
            return Err(BackendError::new(
                BackendErrorKind::Closed,
                "connection closed: the server is down",
            ));
        }
        Ok(())
    }

    /// Never completes; dropping it kills the connection.
    pub(super) async fn stall(&self) {
        let _guard = CancelGuard {
            server: &self.server,
            conn: &self.shared,
            armed: true,
        };
        std::future::pending::<()>().await;
    }

    pub(super) async fn execute(&mut self, sql: &str) -> Result<u64, BackendError> {
        self.ensure_alive()?;
        let server = &self.server;
        let latency = self.query_latency.unwrap_or_else(|| server.query_latency());
        if !latency.is_zero() {
            let mut guard = CancelGuard {
                server,
                conn: &self.shared,
                armed: true,
            };
            tokio::time::sleep(latency).await;
            guard.armed = false;
            drop(guard);
            self.ensure_alive()?;
        }
        server.count_query();
        self.queries += 1;
        let rate = self
            .query_failure_rate
            .unwrap_or_else(|| server.query_failure_rate());
        if server.query_fails(rate) {
            return Err(BackendError::new(
                BackendErrorKind::Query,
                "simulated query failure",
            ));
        }
        if is_write(sql) {
            server.apply_write()?;
        }
        self.track_transaction(sql);
        Ok(self.queries)
    }

    fn track_transaction(&mut self, sql: &str) {
        let sql = sql.trim_start();
        if keyword(sql, "BEGIN").is_some()
            || keyword(sql, "START")
                .and_then(|rest| keyword(rest.trim_start(), "TRANSACTION"))
                .is_some()
        {
            self.in_transaction = true;
        } else if keyword(sql, "COMMIT").is_some()
            || keyword(sql, "END").is_some()
            || keyword(sql, "ABORT").is_some()
        {
            self.in_transaction = false;
        } else if let Some(rest) = keyword(sql, "ROLLBACK") {
            // `ROLLBACK TO [SAVEPOINT] x` keeps the transaction open.
            if keyword(rest.trim_start(), "TO").is_none() {
                self.in_transaction = false;
            }
        }
    }
}

/// Whether `sql` changes data (INSERT, UPDATE, DELETE).
fn is_write(sql: &str) -> bool {
    let sql = sql.trim_start();
    ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|kw| keyword(sql, kw).is_some())
}

/// If `sql` starts with the keyword `kw` (case-insensitive, as a whole word), the rest.
fn keyword<'a>(sql: &'a str, kw: &str) -> Option<&'a str> {
    let n = kw.len();
    let head = sql.as_bytes().get(..n)?;
    if !head.eq_ignore_ascii_case(kw.as_bytes()) {
        return None;
    }
    match sql.as_bytes().get(n) {
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => None,
        _ => Some(&sql[n..]),
    }
}

impl Drop for SimConnection {
    fn drop(&mut self) {
        if !self.shared.is_dead() {
            self.server.kill(&self.shared);
        }
    }
}

impl fmt::Debug for SimConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConnection")
            .field("id", &self.shared.id())
            .field("server", &self.server.name())
            .field("killed", &self.shared.is_dead())
            .field("in_transaction", &self.in_transaction)
            .field("queries", &self.queries)
            .finish()
    }
}
