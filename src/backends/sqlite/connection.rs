//! [`SqliteConnection`]: a rusqlite connection whose blocking work runs on tokio's blocking
//! threads, with a write path that queues on the database's write gate, and the state the
//! pool must know (a transaction left open, an operation abandoned mid-way).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, InterruptHandle, TransactionBehavior};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::errors::{sqlite_error, Stage};
use crate::error::{BackendError, BackendErrorKind};

/// Rows as [`query`](SqliteConnection::query) returns them: one `Vec` of column values per
/// row, in the order of the statement's columns.
///
/// ```
/// let rows: poolwarden::backends::sqlite::Rows = vec![vec![rusqlite::types::Value::Integer(1)]];
/// assert_eq!(rows[0].len(), 1);
/// ```
pub type Rows = Vec<Vec<Value>>;

/// A pooled SQLite connection (see the [module documentation](super)).
///
/// Every operation moves the underlying [`rusqlite::Connection`] to one of tokio's blocking
/// threads (`spawn_blocking`) and back, so no async thread ever waits on SQLite. Operations
/// take `&mut self`: one at a time per connection; run several connections (several
/// checkouts) for concurrency.
///
/// - [`with`](Self::with) runs a closure with the connection: anything rusqlite can do;
/// - [`execute`](Self::execute) and [`query`](Self::query) are shorthands for one statement;
/// - [`write`](Self::write) runs a closure in a `BEGIN IMMEDIATE` transaction, after
///   queueing (first come, first served) behind the other writers of the same database in
///   this process, so writers wait their turn instead of failing with `SQLITE_BUSY`.
///
/// ```
/// use poolwarden::backends::sqlite::SqliteBackend;
/// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
/// use rusqlite::types::Value;
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SqliteBackend::default(), SupervisorConfig::default())?;
/// let pool = sup.pool(ConnectionConfig::parse("sqlite::memory:")?).await?;
/// let mut conn = pool.acquire().await?;
/// conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)", vec![]).await?;
/// let n = conn
///     .write(|tx| tx.execute("INSERT INTO kv VALUES ('a', 1), ('b', 2)", []))
///     .await?;
/// assert_eq!(n, 2);
/// let rows = conn.query("SELECT v FROM kv WHERE k = ?1", vec![Value::from("b".to_string())]).await?;
/// assert_eq!(rows, vec![vec![Value::Integer(2)]]);
/// let sum: i64 = conn
///     .with(|c| c.query_row("SELECT sum(v) FROM kv", [], |r| r.get(0)))
///     .await?;
/// assert_eq!(sum, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct SqliteConnection {
    /// `None` while an operation runs on a blocking thread, and for good when that
    /// operation's future was dropped before it came back.
    conn: Option<rusqlite::Connection>,
    interrupt: Arc<InterruptHandle>,
    /// The write gate of this database (shared by every connection the backend opened to
    /// it).
    gate: Arc<AsyncMutex<()>>,
    /// The canonical path (or the in-memory database's name), for messages.
    path: Arc<Path>,
    /// `is_autocommit()` after the last operation: false when a transaction may be open.
    autocommit: bool,
}

/// Interrupts the running statement when the future waiting for it is dropped (the
/// operation was cancelled), so that a long statement does not keep the database busy.
struct InterruptOnDrop<'a> {
    handle: &'a InterruptHandle,
    armed: bool,
}

impl Drop for InterruptOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.handle.interrupt();
        }
    }
}

impl SqliteConnection {
    pub(super) fn new(
        conn: rusqlite::Connection,
        gate: Arc<AsyncMutex<()>>,
        path: PathBuf,
    ) -> Self {
        Self {
            interrupt: Arc::new(conn.get_interrupt_handle()),
            autocommit: conn.is_autocommit(),
            conn: Some(conn),
            gate,
            path: path.into(),
        }
    }

    /// Whether the connection must not be used again: an operation's future was dropped
    /// before the operation came back from its blocking thread (it may still be running, or
    /// have left anything behind), or a closure panicked. The pool closes such a
    /// connection instead of handing it out again; operations on it fail with
    /// [`Closed`](BackendErrorKind::Closed).
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// assert!(!conn.is_broken());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_broken(&self) -> bool {
        self.conn.is_none()
    }

    /// Whether a transaction may be open (SQLite is not in autocommit mode), as of the end
    /// of the last operation. The pool rolls it back when the connection is returned.
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// conn.execute("BEGIN", vec![]).await?;
    /// assert!(conn.in_transaction());
    /// # Ok(())
    /// # }
    /// ```
    pub fn in_transaction(&self) -> bool {
        !self.autocommit
    }

    /// The database: its canonical path, or for an in-memory database the name of the
    /// in-memory file its pool shares.
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// assert!(conn.path().to_string_lossy().contains("poolwarden"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` with the connection on a blocking thread and return what it returns.
    ///
    /// Reads run concurrently on separate connections (in WAL mode even while a write
    /// transaction is open). Writes made here do not queue on the write gate: a lock held by
    /// another connection is waited for up to `busy_timeout`, then fails with
    /// [`Timeout`](BackendErrorKind::Timeout). Use [`write`](Self::write) for writes that
    /// compete. A transaction `f` leaves open is rolled back when the connection returns to
    /// the pool.
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// let version: String = conn
    ///     .with(|c| c.query_row("SELECT sqlite_version()", [], |r| r.get(0)))
    ///     .await?;
    /// assert!(version.starts_with('3'));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes interrupts the running statement
    /// (`sqlite3_interrupt`), but `f` itself runs on until it returns, in the background:
    /// what it did is unknown, so the connection is [broken](Self::is_broken) from then on and
    /// the pool closes it instead of reusing it.
    pub async fn with<T, F>(&mut self, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run("query", None, move |c| f(c)).await
    }

    /// Run one statement with positional parameters (`?1`, `?2`… or `?`) and return how
    /// many rows it changed. See [`with`](Self::with) for locking.
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// conn.execute("CREATE TABLE t (n INTEGER)", vec![]).await?;
    /// assert_eq!(conn.execute("INSERT INTO t VALUES (?1)", vec![7.into()]).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`with`](Self::with): a dropped future leaves the connection broken.
    pub async fn execute(
        &mut self,
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Result<usize, BackendError> {
        let sql = sql.into();
        self.run("execute", None, move |c| {
            c.execute(&sql, params_from_iter(params))
        })
        .await
    }

    /// Run one query with positional parameters and return every row, each as its column
    /// values.
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// let rows = conn.query("SELECT ?1 + 1", vec![41.into()]).await?;
    /// assert_eq!(rows[0][0], rusqlite::types::Value::Integer(42));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`with`](Self::with): a dropped future leaves the connection broken.
    pub async fn query(
        &mut self,
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Result<Rows, BackendError> {
        let sql = sql.into();
        self.run("query", None, move |c| {
            let mut stmt = c.prepare(&sql)?;
            let columns = stmt.column_count();
            let rows = stmt.query_map(params_from_iter(params), |row| {
                (0..columns).map(|i| row.get::<_, Value>(i)).collect()
            })?;
            rows.collect()
        })
        .await
    }

    /// Run `f` in a write transaction: wait for this database's write gate (an async
    /// mutex, first come first served, shared by every connection the backend opened to the
    /// database), `BEGIN IMMEDIATE`, run `f`, then `COMMIT` if it returned `Ok`, `ROLLBACK`
    /// if it returned an error. Concurrent writers in this process wait for each other here
    /// instead of failing with `SQLITE_BUSY`; readers are not held up (in WAL mode they see
    /// the last commit). Only another process's writer can still make `BEGIN IMMEDIATE` wait
    /// up to `busy_timeout` and fail with [`Timeout`](BackendErrorKind::Timeout).
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// use poolwarden::{Backend, ConnectionConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SqliteBackend::default()
    ///     .connect(&ConnectionConfig::parse("sqlite::memory:")?)
    ///     .await?;
    /// conn.execute("CREATE TABLE t (n INTEGER)", vec![]).await?;
    /// let id = conn
    ///     .write(|tx| {
    ///         tx.execute("INSERT INTO t VALUES (1)", [])?;
    ///         Ok(tx.last_insert_rowid())
    ///     })
    ///     .await?;
    /// assert_eq!(id, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for the gate does nothing: the connection stays
    /// usable. Dropping it once the transaction started interrupts the running statement;
    /// `f` runs on in the background and its transaction commits or rolls back as `f`
    /// decides (an interrupted statement returns an error, so a closure that propagates
    /// errors with `?` rolls back). The gate is held until then, and the connection is
    /// [broken](Self::is_broken): the pool closes it.
    pub async fn write<T, F>(&mut self, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if self.conn.is_none() {
            return Err(self.cancelled());
        }
        let gate = Arc::clone(&self.gate).lock_owned().await;
        self.run("write transaction", Some(gate), move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Roll back an open transaction (nothing when none is open).
    pub(super) async fn rollback(&mut self) -> Result<(), BackendError> {
        if self.autocommit && self.conn.is_some() {
            return Ok(());
        }
        self.run("rollback", None, |c| {
            if !c.is_autocommit() {
                c.execute_batch("ROLLBACK")?;
            }
            Ok(())
        })
        .await
    }

    fn cancelled(&self) -> BackendError {
        BackendError::new(
            BackendErrorKind::Closed,
            format!(
                "sqlite {}: an earlier operation on this connection was cancelled before it completed",
                self.path.display()
            ),
        )
    }

    /// Move the connection to a blocking thread, run `f` there (holding `gate`, if any,
    /// until it returns), and move it back.
    async fn run<T, F>(
        &mut self,
        what: &'static str,
        gate: Option<OwnedMutexGuard<()>>,
        f: F,
    ) -> Result<T, BackendError>
    where
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(mut conn) = self.conn.take() else {
            return Err(self.cancelled());
        };
        let mut cancel = InterruptOnDrop {
            handle: &self.interrupt,
            armed: true,
        };
        let joined = tokio::task::spawn_blocking(move || {
            let _gate = gate;
            let result = f(&mut conn);
            let autocommit = conn.is_autocommit();
            (conn, result, autocommit)
        })
        .await;
        cancel.armed = false;
        drop(cancel);
        match joined {
            Ok((conn, result, autocommit)) => {
                self.conn = Some(conn);
                self.autocommit = autocommit;
                result.map_err(|e| sqlite_error(e, Stage::Use, &self.path, what))
            }
            // The closure panicked: the connection went with it. Let the panic go on.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(BackendError::new(
                BackendErrorKind::Closed,
                format!(
                    "sqlite {}: {what}: the runtime is shutting down",
                    self.path.display()
                ),
            )),
        }
    }
}

impl fmt::Debug for SqliteConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnection")
            .field("path", &self.path)
            .field("broken", &self.is_broken())
            .field("in_transaction", &self.in_transaction())
            .finish_non_exhaustive()
    }
}
