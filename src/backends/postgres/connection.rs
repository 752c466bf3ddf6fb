//! The pooled connection: [`PgConnection`], its [`ResetMode`], and how its connection task
//! ends when it is dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::session::{Session, TransactionStatus};

/// What a returned connection goes through before it is reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetMode {
    /// Roll back an open transaction, if any (free when there is none). The default.
    #[default]
    Rollback,
    /// Also reset the whole session on every return, as `DISCARD ALL` does but keeping
    /// prepared statements ([`DISCARD_ALL_SQL`](super::DISCARD_ALL_SQL); option
    /// `reset=discard_all`).
    DiscardAll,
}

/// A pooled PostgreSQL connection: derefs to [`tokio_postgres::Client`].
pub struct PgConnection {
    pub(super) client: tokio_postgres::Client,
    pub(super) session: Arc<Session>,
    pub(super) reset: ResetMode,
    pub(super) host: String,
    /// Tells the connection task, on drop, how long it may still run (see [`Closer`]).
    pub(super) closer: Closer,
}

/// How long the connection task may outlive a dropped [`PgConnection`] when nothing is in
/// flight: enough to write `Terminate` and close the socket cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Bounds the life of the connection task after its [`PgConnection`] is dropped.
///
/// tokio-postgres ends its connection task (sending `Terminate`, closing the socket) once
/// the client is gone *and every request written has been answered*. A connection dropped
/// with a request in flight on a link that no longer delivers (a blackholed or half-open
/// socket: exactly the connections a pool closes after a probe or reset timed out) would
/// keep its task, its socket and the server's backend alive forever, invisible to the
/// pool. So on drop: with nothing in flight the task gets [`CLOSE_GRACE`] to close cleanly;
/// with requests in flight (their answers have no reader any more) or a desynchronised tap
/// it is stopped at once, which closes the socket.
pub(super) struct Closer {
    pub(super) tx: Option<tokio::sync::oneshot::Sender<Duration>>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        if let Some(tx) = self.closer.tx.take() {
            let abandoned =
                self.session.in_flight() != 0 || self.session.desync.load(Ordering::Relaxed);
            let _ = tx.send(if abandoned {
                Duration::ZERO
            } else {
                CLOSE_GRACE
            });
        }
    }
}

impl PgConnection {
    /// The client.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// The client, mutably (for [`transaction`](tokio_postgres::Client::transaction)).
    pub fn client_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }

    /// The server's transaction status as of the last completed request.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.session.status()
    }

    /// Requests written whose ReadyForQuery has not been read yet.
    pub fn requests_in_flight(&self) -> i64 {
        self.session.in_flight()
    }

    /// The server process id serving this connection (`pg_backend_pid()`), from the
    /// BackendKeyData message of the startup.
    pub fn backend_pid(&self) -> i32 {
        self.session.pid.load(Ordering::Relaxed)
    }

    /// The host (`host:port` or socket directory) this connection reached.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The reset mode from the connection's config.
    pub fn reset_mode(&self) -> ResetMode {
        self.reset
    }
}

impl Deref for PgConnection {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("host", &self.host)
            .field("backend_pid", &self.backend_pid())
            .field("transaction_status", &self.transaction_status())
            .field("closed", &self.client.is_closed())
            .finish()
    }
}
