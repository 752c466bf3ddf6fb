//! [`Hooks`]: per-pool code run at points of a connection's life (as pgxpool's
//! `AfterConnect` / `PrepareConn` / `AfterRelease` / `BeforeClose` and deadpool's hooks).
//! This file holds only the public types; running them (timeouts, panics, counting) is
//! `hook_run.rs`. It imports nothing of the crate, so `error.rs` can name [`HookPoint`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a hook returns: a boxed future borrowing the connection.
///
/// ```
/// use poolwarden::backends::sim::SimConnection;
/// use poolwarden::HookFuture;
///
/// fn keep_if_idle(conn: &mut SimConnection) -> HookFuture<'_, bool> {
///     Box::pin(async move { !conn.in_transaction() })
/// }
/// let hooks = poolwarden::Hooks::new().after_release(keep_if_idle);
/// assert!(!hooks.is_empty());
/// ```
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A hook's error: any error (`?` converts a driver's error or a string). Only its
/// `Display` is kept, in [`Error::Hook`](crate::Error::Hook)'s `reason`.
///
/// ```
/// use poolwarden::HookError;
///
/// let e: HookError = "schema \"app\" does not exist".into();
/// assert_eq!(e.to_string(), "schema \"app\" does not exist");
/// ```
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

type AfterConnect<C> =
    dyn for<'a> Fn(&'a mut C) -> HookFuture<'a, Result<(), HookError>> + Send + Sync;
type BeforeAcquire<C> =
    dyn for<'a> Fn(&'a mut C) -> HookFuture<'a, Result<AcquireVerdict, HookError>> + Send + Sync;
type AfterRelease<C> = dyn for<'a> Fn(&'a mut C) -> HookFuture<'a, bool> + Send + Sync;
type BeforeClose<C> = dyn for<'a> Fn(&'a mut C) -> HookFuture<'a, ()> + Send + Sync;

/// Which hook: named by [`Error::Hook`](crate::Error::Hook) and in logs.
///
/// ```
/// use poolwarden::HookPoint;
///
/// assert_eq!(HookPoint::AfterConnect.to_string(), "after_connect");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// [`Hooks::after_connect`].
    AfterConnect,
    /// [`Hooks::before_acquire`].
    BeforeAcquire,
    /// [`Hooks::after_release`].
    AfterRelease,
    /// [`Hooks::before_close`].
    BeforeClose,
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookPoint::AfterConnect => "after_connect",
            HookPoint::BeforeAcquire => "before_acquire",
            HookPoint::AfterRelease => "after_release",
            HookPoint::BeforeClose => "before_close",
        })
    }
}

/// What a [`before_acquire`](Hooks::before_acquire) hook decides about the connection an
/// acquire is about to get (pgxpool's `PrepareConn` outcomes).
///
/// ```
/// use poolwarden::AcquireVerdict;
///
/// let verdict = AcquireVerdict::CloseAndRetry;
/// assert_ne!(verdict, AcquireVerdict::HandOut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcquireVerdict {
    /// Hand the connection out.
    HandOut,
    /// Keep the connection (back to the idle ones) but fail this acquire with
    /// [`Error::Hook`](crate::Error::Hook).
    KeepAndFail,
    /// Close the connection and fail this acquire with [`Error::Hook`](crate::Error::Hook).
    CloseAndFail,
    /// Close the connection and give this acquire another one (an idle one or a new one),
    /// within the acquire's deadline.
    CloseAndRetry,
}

/// Code a pool runs at points of a connection's life, set per pool with
/// [`SupervisorHandle::pool_with_hooks`](crate::SupervisorHandle::pool_with_hooks).
///
/// Every hook is optional and async: it gets `&mut` the backend's connection (never the
/// config or its password) and returns a boxed future. Each run is bounded by
/// [`timeout`](Self::timeout) (default [`Hooks::DEFAULT_TIMEOUT`], 5 s) and, in an
/// acquire, by the acquire's deadline. A hook that fails, times out or panics fails that
/// connection (it is closed) and never the pool: the failure is counted in
/// [`PoolStats`](crate::PoolStats) (`hook_failures`, `hook_timeouts`, `hook_panics`),
/// logged without the connection config, and never moves the circuit breaker (a hook says
/// nothing about the endpoint). Unlike a panic in backend code, a panicking hook does not
/// restart the pool actor: the pool's own state is not in doubt.
///
/// | hook | runs | failure, timeout or panic |
/// |---|---|---|
/// | [`after_connect`](Self::after_connect) | on every new connection, before first use | the connection is closed; the connect counts as failed; an acquire gets [`Error::Hook`](crate::Error::Hook) |
/// | [`before_acquire`](Self::before_acquire) | on every checkout, after the pool's own probe | the connection is closed; the acquire gets [`Error::Hook`](crate::Error::Hook) |
/// | [`after_release`](Self::after_release) | when a connection comes back to be kept (`false`: close it) | the connection is closed |
/// | [`before_close`](Self::before_close) | before the pool closes a connection (best effort) | the connection is closed anyway |
///
/// With no hooks set the acquire and release paths cost one pointer check more.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use poolwarden::backends::sim::{SimBackend, SimConnection};
/// use poolwarden::{AcquireVerdict, ConnectionConfig, Hooks, SupervisorConfig, SupervisorHandle};
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
/// let released = Arc::new(AtomicUsize::new(0));
/// let counter = released.clone();
/// let hooks = Hooks::<SimConnection>::new()
///     .after_connect(|conn| {
///         Box::pin(async move {
///             conn.query("SET search_path TO app").await?;
///             Ok(())
///         })
///     })
///     .before_acquire(|conn| {
///         Box::pin(async move {
///             Ok(if conn.in_transaction() {
///                 AcquireVerdict::CloseAndRetry
///             } else {
///                 AcquireVerdict::HandOut
///             })
///         })
///     })
///     .after_release(move |_conn| {
///         let counter = counter.clone();
///         Box::pin(async move {
///             counter.fetch_add(1, Ordering::Relaxed);
///             true // keep it
///         })
///     })
///     .before_close(|conn| Box::pin(async move { let _ = conn.query("DISCARD ALL").await; }))
///     .timeout(Duration::from_secs(2));
/// let pool = sup
///     .pool_with_hooks(ConnectionConfig::sim("hooked"), None, hooks)
///     .await?;
/// let mut conn = pool.acquire().await?;
/// assert_eq!(conn.query("SELECT 1").await?, 2, "after_connect ran one statement first");
/// drop(conn);
/// # tokio::task::yield_now().await;
/// # assert_eq!(released.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Hooks<C> {
    pub(super) after_connect: Option<Arc<AfterConnect<C>>>,
    pub(super) before_acquire: Option<Arc<BeforeAcquire<C>>>,
    pub(super) after_release: Option<Arc<AfterRelease<C>>>,
    pub(super) before_close: Option<Arc<BeforeClose<C>>>,
    pub(super) timeout: Duration,
}

impl<C> Hooks<C> {
    /// How long one hook run may take unless [`timeout`](Self::timeout) says otherwise.
    ///
    /// ```
    /// use poolwarden::Hooks;
    /// use poolwarden::backends::sim::SimConnection;
    /// assert_eq!(Hooks::<SimConnection>::new().timeout_value(), Hooks::<SimConnection>::DEFAULT_TIMEOUT);
    /// ```
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// No hooks, the default timeout.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// let hooks = Hooks::<SimConnection>::new();
    /// assert!(hooks.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            after_connect: None,
            before_acquire: None,
            after_release: None,
            before_close: None,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Run `hook` on every new connection before it is used (e.g. `SET search_path`):
    /// the pool's connects for acquires, warm-up and refills, dedicated connections, and
    /// the connection that verifies a new credential. An error, a timeout or a panic closes
    /// the connection and counts the connect as failed (not against the endpoint: the
    /// breaker does not move); an acquire waiting for that connect gets
    /// [`Error::Hook`](crate::Error::Hook).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// let hooks = Hooks::<SimConnection>::new().after_connect(|conn| {
    ///     Box::pin(async move {
    ///         conn.query("SET statement_timeout = 5000").await?;
    ///         Ok(())
    ///     })
    /// });
    /// assert!(!hooks.is_empty());
    /// ```
    pub fn after_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut C) -> HookFuture<'a, Result<(), HookError>> + Send + Sync + 'static,
    {
        self.after_connect = Some(Arc::new(hook));
        self
    }

    /// Run `hook` on every checkout, the connection's own probe (when due) done; its
    /// [`AcquireVerdict`] decides. An error, a timeout or a panic closes the connection and
    /// fails the acquire with [`Error::Hook`](crate::Error::Hook). While this hook is set,
    /// no acquire takes the pool's fast path.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::{AcquireVerdict, Hooks};
    ///
    /// let hooks = Hooks::<SimConnection>::new().before_acquire(|conn| {
    ///     Box::pin(async move {
    ///         Ok(match conn.query("SELECT 1").await {
    ///             Ok(_) => AcquireVerdict::HandOut,
    ///             Err(_) => AcquireVerdict::CloseAndRetry,
    ///         })
    ///     })
    /// });
    /// assert!(!hooks.is_empty());
    /// ```
    pub fn before_acquire<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut C) -> HookFuture<'a, Result<AcquireVerdict, HookError>>
            + Send
            + Sync
            + 'static,
    {
        self.before_acquire = Some(Arc::new(hook));
        self
    }

    /// Run `hook` on a connection coming back to the pool to be kept (after the
    /// backend's reset): `false` closes it. A timeout or a panic closes it too. Releasing
    /// stays synchronous for the caller: the hook runs in a task while the connection's
    /// slot stays taken.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// // Close connections that have run many statements.
    /// let hooks = Hooks::<SimConnection>::new().after_release(|conn| {
    ///     Box::pin(async move { conn.query("SELECT 1").await.is_ok_and(|n| n < 10_000) })
    /// });
    /// assert!(!hooks.is_empty());
    /// ```
    pub fn after_release<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut C) -> HookFuture<'a, bool> + Send + Sync + 'static,
    {
        self.after_release = Some(Arc::new(hook));
        self
    }

    /// Run `hook` before the pool closes a connection (reaped, expired, evicted, refused
    /// by a hook, closed at shutdown…), in a task on the current runtime; the connection
    /// is closed when it ends, times out or panics. Best effort: with no runtime at hand
    /// (a pool dropped outside one) the connection is closed without it.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// let hooks = Hooks::<SimConnection>::new().before_close(|conn| {
    ///     Box::pin(async move {
    ///         let _ = conn.query("UNLISTEN *").await;
    ///     })
    /// });
    /// assert!(!hooks.is_empty());
    /// ```
    pub fn before_close<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut C) -> HookFuture<'a, ()> + Send + Sync + 'static,
    {
        self.before_close = Some(Arc::new(hook));
        self
    }

    /// Bound every hook run by `timeout` (default [`Hooks::DEFAULT_TIMEOUT`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// let hooks = Hooks::<SimConnection>::new().timeout(Duration::from_millis(500));
    /// assert_eq!(hooks.timeout_value(), Duration::from_millis(500));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one hook run may take.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// assert_eq!(Hooks::<SimConnection>::new().timeout_value(), Hooks::<SimConnection>::DEFAULT_TIMEOUT);
    /// ```
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// No hook is set.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimConnection;
    /// use poolwarden::Hooks;
    ///
    /// assert!(Hooks::<SimConnection>::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.after_connect.is_none()
            && self.before_acquire.is_none()
            && self.after_release.is_none()
            && self.before_close.is_none()
    }

    /// The same hooks: clones of one `Hooks` (each hook the same `Arc`) and the same
    /// timeout. What a running pool compares the hooks it is asked for with.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        }
        same(&self.after_connect, &other.after_connect)
            && same(&self.before_acquire, &other.before_acquire)
            && same(&self.after_release, &other.after_release)
            && same(&self.before_close, &other.before_close)
            && self.timeout == other.timeout
    }
}

impl<C> Default for Hooks<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// Clones share the hooks (and compare as the same hooks).
impl<C> Clone for Hooks<C> {
    fn clone(&self) -> Self {
        Self {
            after_connect: self.after_connect.clone(),
            before_acquire: self.before_acquire.clone(),
            after_release: self.after_release.clone(),
            before_close: self.before_close.clone(),
            timeout: self.timeout,
        }
    }
}

/// Which hooks are set, and the timeout.
impl<C> fmt::Debug for Hooks<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect.is_some())
            .field("before_acquire", &self.before_acquire.is_some())
            .field("after_release", &self.after_release.is_some())
            .field("before_close", &self.before_close.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}
