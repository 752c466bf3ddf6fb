//! The pooled connection: [`PgConnection`], its [`ResetMode`] and [`Pooler`] setting, its
//! query methods that work behind a transaction pooler, and how its connection task ends
//! when it is dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_postgres::Row;

use super::params::{typed, PgParam};
use super::session::{Session, TransactionStatus};
use super::transaction::PgTransaction;

/// What sits between the pool and PostgreSQL (option `pooler`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing: a direct connection (`pooler=none`, the default).
    #[default]
    None,
    /// A transaction-mode pooler such as PgBouncer `pool_mode = transaction`
    /// (`pooler=transaction`): the server session behind the connection changes between
    /// transactions. No `options` startup parameter is sent; `statement_timeout` is set with
    /// `SET LOCAL` at the start of every [`PgConnection::transaction`].
    Transaction,
    /// A session-mode pooler (`pooler=session`): one server session per connection, but
    /// the pooler refuses the `options` startup parameter, so `statement_timeout` is set
    /// with one `SET` right after connecting.
    Session,
}

impl fmt::Display for Pooler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooler::None => "none",
            Pooler::Transaction => "transaction",
            Pooler::Session => "session",
        })
    }
}

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

/// A pooled PostgreSQL connection.
///
/// Its own [`query`](Self::query), [`query_one`](Self::query_one),
/// [`query_opt`](Self::query_opt) and [`execute`](Self::execute) take parameters that say
/// their PostgreSQL type ([`PgParam`]) and run as one round trip on the *unnamed* statement
/// (tokio-postgres [`query_typed`](tokio_postgres::Client::query_typed)): no named
/// statement is prepared, so they work behind a transaction pooler, and they cost half the
/// round trips of tokio-postgres's prepare-then-execute. They shadow the
/// [`Client`](tokio_postgres::Client) methods of the same names; everything else derefs to
/// the client, also reachable as [`client()`](Self::client).
///
/// `client().query(&str, …)`, `client().execute(&str, …)` and `client().prepare(…)` prepare
/// *named* statements (the first in a round trip of its own). That is fine on a direct
/// connection and fails behind a transaction pooler (PgBouncer before 1.21): "prepared
/// statement … does not exist" when the next request reaches another server session.
/// Custom types (enums, composites, domains) in parameters or results make tokio-postgres
/// look them up with statements it prepares too.
///
/// ```no_run
/// # async fn f(conn: &mut poolwarden::backends::postgres::PgConnection) -> Result<(), tokio_postgres::Error> {
/// let doubled: i64 = conn.query_one("SELECT $1::int8 * 2", &[&21i64]).await?.get(0);
/// let name = String::from("ada");
/// conn.execute("INSERT INTO users (name, age) VALUES ($1, $2)", &[&name, &Some(36i32)]).await?;
///
/// let tx = conn.transaction().await?;
/// tx.execute("UPDATE users SET age = age + 1 WHERE name = $1", &[&"ada"]).await?;
/// tx.commit().await?;
/// # let _ = doubled; Ok(()) }
/// ```
pub struct PgConnection {
    pub(super) client: tokio_postgres::Client,
    pub(super) session: Arc<Session>,
    pub(super) reset: ResetMode,
    pub(super) pooler: Pooler,
    /// `statement_timeout` as configured, for `SET LOCAL` under a transaction pooler.
    pub(super) statement_timeout: Option<String>,
    pub(super) host: String,
}

/// Bounds the life of the connection task once the connection is dropped.
///
/// tokio-postgres ends its connection task (sending `Terminate`, closing the socket) once
/// the client is gone *and every request written has been answered*. A connection dropped
/// with a request in flight on a link that no longer delivers (a blackholed or half-open
/// socket: exactly the connections a pool closes after a probe or reset timed out) would
/// keep its task, its socket and the server's backend alive forever, invisible to the
/// pool. So on drop: with nothing in flight the task gets 2 s (`CLOSE_GRACE`) to close
/// cleanly; with requests in flight (their answers have no reader any more) or a
/// desynchronised tap it is stopped at once, which closes the socket. The wire tap carries
/// it out (`tap.rs`), woken by the session whatever it was waiting for.
impl Drop for PgConnection {
    fn drop(&mut self) {
        let abandoned =
            self.session.in_flight() != 0 || self.session.desync.load(Ordering::Relaxed);
        self.session.close(abandoned);
    }
}

impl PgConnection {
    /// Run `sql` with `params` and return its rows: one round trip on the unnamed
    /// statement ([`query_typed`](tokio_postgres::Client::query_typed)), never a named
    /// prepared statement. With no parameters it is still one extended-protocol round trip
    /// (one statement; use [`batch_execute`](tokio_postgres::Client::batch_execute) for
    /// several).
    pub async fn query(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.client.query_typed(sql, &typed(params)).await
    }

    /// [`query`](Self::query) expecting exactly one row (an error otherwise).
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<Row, tokio_postgres::Error> {
        self.client.query_typed_one(sql, &typed(params)).await
    }

    /// [`query`](Self::query) expecting at most one row (an error for more).
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        self.client.query_typed_opt(sql, &typed(params)).await
    }

    /// Run `sql` with `params` and return the number of rows it changed: one round trip on
    /// the unnamed statement ([`execute_typed`](tokio_postgres::Client::execute_typed)).
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&dyn PgParam],
    ) -> Result<u64, tokio_postgres::Error> {
        self.client.execute_typed(sql, &typed(params)).await
    }

    /// Start a transaction: `BEGIN` as a simple query (no prepared statement). Under
    /// `pooler=transaction` with a configured `statement_timeout`, a
    /// `SET LOCAL statement_timeout = '…'` follows (a second round trip): the timeout the
    /// startup packet cannot carry through the pooler, for this transaction only. See
    /// [`PgTransaction`] for how it ends: commit, rollback, or rolled back when dropped.
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, tokio_postgres::Error> {
        let set_local = match (&self.pooler, &self.statement_timeout) {
            (Pooler::Transaction, Some(t)) => Some(format!("SET LOCAL statement_timeout = '{t}'")),
            _ => None,
        };
        let tx = self.client.transaction().await?;
        if let Some(sql) = set_local {
            // Dropping `tx` on error queues its ROLLBACK.
            tx.batch_execute(&sql).await?;
        }
        Ok(PgTransaction { tx })
    }

    /// The client: for everything the methods above do not cover (`simple_query`,
    /// `batch_execute`, `copy_in`, `prepare`, …). Its `query`/`execute` with a `&str` and
    /// `prepare` prepare named statements: fine on a direct connection, not behind a
    /// transaction pooler.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// The client, mutably (for tokio-postgres's own
    /// [`transaction`](tokio_postgres::Client::transaction)).
    pub fn client_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }

    /// The `pooler` setting from the connection's config.
    pub fn pooler(&self) -> Pooler {
        self.pooler
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
