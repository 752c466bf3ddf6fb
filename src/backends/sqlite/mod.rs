//! SQLite through [`rusqlite`] (SQLite itself bundled: built from source with the crate,
//! no system library needed).
//!
//! ```
//! use poolwarden::backends::sqlite::SqliteBackend;
//! use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
//!
//! # actix::System::new().block_on(async {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}/app.db?busy_timeout=2s", dir.path().display());
//! // e.g. url = "sqlite:///var/lib/app/app.db?busy_timeout=2s"
//! let sup = SupervisorHandle::start(SqliteBackend::default(), SupervisorConfig::default())?;
//! let pool = sup.pool(ConnectionConfig::parse(&url)?).await?;
//! let mut conn = pool.acquire().await?; // derefs to SqliteConnection
//! conn.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, name TEXT)", vec![])
//!     .await?;
//! conn.write(|tx| tx.execute("INSERT INTO jobs (name) VALUES ('a')", [])).await?;
//! let journal: String = conn
//!     .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
//!     .await?;
//! assert_eq!(journal, "wal");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Configuration
//!
//! A SQLite config is a file, not a host: [`ConnectionConfig::path`] (with `hosts` empty),
//! from `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite:relative.db`,
//! `sqlite::memory:` or TOML (`backend = "sqlite"`, `path = "…"`). The options (`mode`,
//! `busy_timeout`, `journal_mode`, `foreign_keys`) and what the pool key covers are
//! documented on [`path`](ConnectionConfig::path).
//!
//! # Connecting
//!
//! A file database is opened at its canonical path (so every spelling of one file reaches
//! the same file even if the current directory changes later), without SQLite's URI
//! parsing. Then, on every new connection: `busy_timeout` (default 5 s: how long a
//! statement waits for a lock another connection holds before failing with
//! [`Timeout`](BackendErrorKind::Timeout)), a read of the database header (so a file that
//! is not a database fails the connect, not the first query), `journal_mode = WAL` for file
//! databases opened read-write (readers and one writer at once; configurable), and
//! `foreign_keys = ON` (configurable).
//!
//! # Threads
//!
//! rusqlite is blocking. Every operation of a [`SqliteConnection`] (and the connect, probe
//! and reset) moves the connection to one of tokio's blocking threads with
//! `spawn_blocking` and back: async threads never wait on SQLite, and no thread is kept per
//! connection. The blocking pool grows as needed (tokio's default cap is 512 threads).
//!
//! # One writer, many readers
//!
//! SQLite lets one connection write at a time. Left alone, concurrent writers of one
//! database spin in SQLite's busy handler and fail with `SQLITE_BUSY` once `busy_timeout`
//! runs out (and a deferred transaction that starts as a reader and then writes fails at
//! once, whatever the timeout). [`SqliteConnection::write`] avoids both: it queues on the
//! database's *write gate*, a tokio mutex (first come, first served) kept by the backend
//! per canonical path (or in-memory database) and shared by clones of the backend, then runs
//! the closure in `BEGIN IMMEDIATE … COMMIT`. Reads ([`with`](SqliteConnection::with),
//! [`query`](SqliteConnection::query)) do not take the gate and, in WAL mode, run while a
//! write transaction is open. Two separate backend values (or two processes) writing one
//! file do not share a gate: between them `busy_timeout` applies.
//!
//! # In-memory databases
//!
//! `sqlite::memory:` gives each pool (one pool key, one backend value) one in-memory
//! database shared by all its connections: each connection opens
//! `file:/poolwarden-<backend>-<pool key>?vfs=memdb` (SQLite's `memdb` VFS, process-wide by
//! name). It lives while at least one connection to it is open: when the pool closes its
//! last connection (idle timeout, `max_lifetime`, a pool with `min_idle = 0` that closes
//! everything), the data is gone. Keep `min_idle ≥ 1` and no idle timeout, or hold a
//! connection, to keep it. The `memdb` VFS is used rather than `mode=memory&cache=shared`
//! because shared-cache mode locks per table and answers a conflicting reader with
//! `SQLITE_LOCKED` at once, ignoring `busy_timeout`; `memdb` databases lock like files (a
//! rollback journal in memory; no WAL), so `busy_timeout` and the write gate work as for
//! files.
//!
//! # Reset and cancellation
//!
//! [`needs_reset`](Backend::needs_reset) is true only when a transaction may be open (SQLite
//! is not in autocommit mode after the last operation); [`reset`](Backend::reset) is then
//! `ROLLBACK`. [`probe`](Backend::probe) is `SELECT 1`. An operation whose future is dropped
//! before it comes back from its blocking thread interrupts its statement, but its closure
//! still runs to its end in the background, so its connection is
//! [broken](Backend::is_broken) for good and never handed out again.
//!
//! # Errors
//!
//! A file that cannot be opened (directory missing, no such file under `mode=rw`, no
//! permission), a corrupt file or one that is not a database →
//! [`Config`](BackendErrorKind::Config): not retried, not counted against the endpoint (a
//! wrong path is not an outage). `SQLITE_BUSY` / `SQLITE_LOCKED` once `busy_timeout` ran out
//! → [`Timeout`](BackendErrorKind::Timeout). Disk full and I/O errors →
//! [`Other`](BackendErrorKind::Other) (an outage of the disk: retried with backoff, counted
//! by the breaker). Failed statements → [`Query`](BackendErrorKind::Query). Messages name
//! the database path and carry SQLite's text; never a URL.

mod backend;
mod connection;
mod errors;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Mutex as AsyncMutex;

#[cfg(doc)]
use crate::backends::Backend;
#[cfg(doc)]
use crate::connection::ConnectionConfig;
#[cfg(doc)]
use crate::error::BackendErrorKind;

pub use connection::{Rows, SqliteConnection};

/// Tells backend values apart, for the names of their in-memory databases.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The SQLite [`Backend`]. Cheap to clone; clones share the write gates (and the in-memory
/// databases) of the databases they open.
///
/// ```
/// use poolwarden::backends::sqlite::SqliteBackend;
/// use poolwarden::{SupervisorConfig, SupervisorHandle};
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SqliteBackend::default(), SupervisorConfig::default())?;
/// # let _ = sup;
/// # Ok::<(), poolwarden::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteBackend {
    id: u64,
    /// Write gates by canonical path (or in-memory database name). Entries die with the
    /// last connection holding their gate and are swept as new ones are added.
    gates: Arc<Mutex<HashMap<PathBuf, Weak<AsyncMutex<()>>>>>,
}

impl Default for SqliteBackend {
    fn default() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            gates: Arc::default(),
        }
    }
}

impl SqliteBackend {
    /// A backend with no database open yet (the same as `default()`).
    ///
    /// ```
    /// use poolwarden::backends::sqlite::SqliteBackend;
    /// let _backend = SqliteBackend::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The write gate of the database at `target`, made on first use.
    fn gate(&self, target: &Path) -> Arc<AsyncMutex<()>> {
        let mut gates = self.gates.lock();
        if let Some(gate) = gates.get(target).and_then(Weak::upgrade) {
            return gate;
        }
        gates.retain(|_, g| g.strong_count() > 0);
        let gate = Arc::new(AsyncMutex::new(()));
        gates.insert(target.to_path_buf(), Arc::downgrade(&gate));
        gate
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("id", &self.id)
            .field("databases", &self.gates.lock().len())
            .finish()
    }
}
