//! Typed errors. Every variant names the pool it concerns by [`PoolKey`], never by a
//! connection string, so no error message can carry a password.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::key::PoolKey;

/// Which phase of an acquire ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting in the queue for a free slot.
    Wait,
    /// Opening a new connection (including retries with backoff).
    Connect,
    /// Testing a connection on checkout.
    Probe,
    /// Resetting a connection on return.
    Reset,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Wait => "waiting for a free connection",
            Phase::Connect => "connecting",
            Phase::Probe => "testing the connection on checkout",
            Phase::Reset => "resetting the connection",
        })
    }
}

/// What kind of failure a backend reported. The kind alone decides what the pool does
/// with a failed connect, one table for every backend:
///
/// | kind | retried by the acquire | counts against the endpoint (breaker) | what the pool does |
/// |---|---|---|---|
/// | `Connect`, `Timeout`, `Closed`, `Other` | yes, with backoff | yes | the endpoint may be down |
/// | `Capacity` | no: waits for a returned connection | no | lowers its effective size to what the server accepted, grows back with backoff |
/// | `Auth`, `Config` | no | no | the caller gets the error at once |
/// | `Query` | yes | no | the server answered: nothing against the endpoint |
/// | SQLite: cannot open the file (directory missing, no permission, no file under `mode=rw`), corrupt file, not a database → `Config` | no | no | a wrong path or a bad file is not an outage: the caller gets the error at once |
/// | SQLite: `SQLITE_BUSY` / `SQLITE_LOCKED` once `busy_timeout` ran out → `Timeout` | yes, with backoff | yes | another connection holds the lock |
/// | SQLite: disk full, I/O error, out of memory → `Other` | yes, with backoff | yes | the disk is the endpoint: full is an outage that freeing space ends (`Capacity` would shrink the pool, which frees no disk) |
/// | SQLite: a failed statement → `Query` | yes | no | as for any server |
///
/// A connection that breaks while checked out, a failed query and a caller's
/// cancellation are not reported as kinds at all: the connection is closed and replaced,
/// and only a fresh connect says anything about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendErrorKind {
    /// The server could not be reached or refused the connection.
    Connect,
    /// The server rejected the credentials. Not retried.
    Auth,
    /// A single backend operation exceeded its own timeout.
    Timeout,
    /// The connection broke while in use.
    Closed,
    /// The configuration cannot work with this backend, or the server refused what was
    /// asked of it (an unknown database or role). Not retried.
    Config,
    /// The server is up but accepts no more connections (PostgreSQL 53300, MySQL 1040,
    /// Redis "max number of clients reached"): a capacity signal, not an outage.
    Capacity,
    /// A query or command failed.
    Query,
    /// Anything else.
    Other,
}

/// An error reported by a [`Backend`](crate::Backend).
///
/// Backends must build the message without the password; the pool never adds one.
#[derive(Clone)]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl BackendError {
    /// A new error of `kind` with a human readable message.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying error.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// Whether connecting again may succeed (false for authentication and configuration
    /// errors). A capacity error is retryable, but later: the pool waits for a returned
    /// connection rather than connecting again at once.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, BackendErrorKind::Auth | BackendErrorKind::Config)
    }

    /// Whether this failure of a fresh connect is evidence that the endpoint is down,
    /// so that it counts toward the pool's circuit breaker (see the table on
    /// [`BackendErrorKind`]).
    pub fn is_endpoint_down(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Connect
                | BackendErrorKind::Timeout
                | BackendErrorKind::Closed
                | BackendErrorKind::Other
        )
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

/// The backend's message: what happened underneath, in its words (the kind is
/// [`kind`](BackendError::kind)); an empty message prints the kind instead.
impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{:?} error", self.kind)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A configuration value that cannot work. Names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: `{field}` {reason}")]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `pool.max_size`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Everything that can go wrong when using poolwarden.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An acquire did not complete in time.
    #[error("pool {key}: timed out after {elapsed:?} while {phase}{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// The pool.
        key: PoolKey,
        /// The phase that was running when time ran out.
        phase: Phase,
        /// How long the acquire had been running.
        elapsed: Duration,
        /// The last backend error seen during this acquire, if any. A wait for room in the
        /// supervisor's connection budget that reached the deadline says so here (kind
        /// `Capacity`, naming the limit).
        #[source]
        last_error: Option<BackendError>,
    },
    /// A backend operation failed and was not retried.
    #[error("pool {key}: {phase} failed: {source}")]
    Backend {
        /// The pool.
        key: PoolKey,
        /// What was being done.
        phase: Phase,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
    /// Backend code panicked; the pool actor is being restarted.
    #[error("pool {key}: backend panicked while {phase}: {message}")]
    BackendPanic {
        /// The pool.
        key: PoolKey,
        /// What was being done.
        phase: Phase,
        /// The panic payload, if it was a string.
        message: String,
    },
    /// The endpoint's circuit breaker is open: acquire fails at once.
    #[error("pool {key}: circuit open, next try in {retry_in:?}{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    CircuitOpen {
        /// The pool.
        key: PoolKey,
        /// When the breaker lets a trial through.
        retry_in: Duration,
        /// The failure that last counted against the endpoint.
        #[source]
        last_error: Option<BackendError>,
    },
    /// The pool actor was restarted too often and the pool is failed until revived.
    #[error("pool {key}: failed after {restarts} restarts; send Revive to bring it back")]
    PoolFailed {
        /// The pool.
        key: PoolKey,
        /// Restarts so far.
        restarts: u64,
    },
    /// The wait queue is full (`max_waiters`).
    #[error("pool {key}: saturated, {waiters} acquires already waiting")]
    PoolSaturated {
        /// The pool.
        key: PoolKey,
        /// Waiters queued when this acquire was refused.
        waiters: usize,
    },
    /// The pool was closed (shutdown, eviction or idle reaping). Resolve it again from the supervisor.
    #[error("pool {key}: closed")]
    PoolClosed {
        /// The pool.
        key: PoolKey,
    },
    /// The supervisor is shutting down and accepts no more work.
    #[error("the supervisor is shutting down")]
    ShuttingDown,
    /// A process-wide supervisor for this backend type is already installed (or was
    /// started by a first `SupervisorHandle::global()`).
    #[error("a process-wide supervisor for {backend} is already installed")]
    AlreadyInstalled {
        /// The backend type.
        backend: &'static str,
    },
    /// `max_pools` is reached and every pool has connections checked out.
    #[error("cannot open another pool: {max_pools} pools exist and all of them are in use")]
    TooManyPools {
        /// The configured cap.
        max_pools: usize,
    },
    /// No pool is registered under this name.
    #[error("no pool is registered under the name `{name}`")]
    UnknownPool {
        /// The name asked for.
        name: String,
    },
    /// A replica set has no member that can serve this request.
    #[error("replica set `{set}` has no member that can serve this request")]
    NoMember {
        /// The set.
        set: String,
    },
    /// No pool with this key is running.
    #[error("no pool with key {key} is running")]
    UnknownKey {
        /// The key asked for.
        key: PoolKey,
    },
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An actor could not be reached.
    #[error("actor mailbox error: {0}")]
    Mailbox(#[from] actix::MailboxError),
    /// A pool's [hook](crate::Hooks) failed, timed out, panicked or refused the
    /// connection (a `before_acquire` verdict); the connection concerned was closed
    /// unless the verdict kept it.
    #[error("pool {key}: {hook} hook: {reason}")]
    Hook {
        /// The pool.
        key: PoolKey,
        /// Which hook.
        hook: crate::pool::hooks::HookPoint,
        /// What happened (the hook's error message, a timeout, a panic message or a verdict).
        reason: String,
    },
}

impl Error {
    /// The pool this error concerns, when it concerns one.
    pub fn key(&self) -> Option<&PoolKey> {
        match self {
            Error::Timeout { key, .. }
            | Error::Backend { key, .. }
            | Error::BackendPanic { key, .. }
            | Error::PoolSaturated { key, .. }
            | Error::CircuitOpen { key, .. }
            | Error::PoolFailed { key, .. }
            | Error::PoolClosed { key }
            | Error::Hook { key, .. }
            | Error::UnknownKey { key } => Some(key),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The backend error behind this one, if any (the last one, for a timeout or an open
    /// breaker): what the server or driver said, and its [`kind`](BackendError::kind).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{BackendErrorKind, ConnectionConfig, Secret, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sim = SimBackend::default();
    /// let mut config = ConnectionConfig::sim("orders");
    /// sim.server(&config.primary_host()).set_password(Some("right"));
    /// config.password = Some(Secret::new("wrong"));
    /// let sup = SupervisorHandle::start(sim, SupervisorConfig::default())?;
    /// let err = sup.pool(config).await?.acquire().await.unwrap_err();
    /// assert_eq!(err.backend_error().map(|e| e.kind()), Some(BackendErrorKind::Auth));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn backend_error(&self) -> Option<&BackendError> {
        match self {
            Error::Backend { source, .. } => Some(source),
            Error::Timeout { last_error, .. } | Error::CircuitOpen { last_error, .. } => {
                last_error.as_ref()
            }
            _ => None,
        }
    }
}
