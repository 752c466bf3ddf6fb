//! A cloneable handle to one pool: acquire goes straight to the pool's shared state, in the
//! caller's task; management goes to the pool actor as messages.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, WeakAddr};

use super::actor::PoolActor;
use super::credential::Version;
use super::dedicated::DedicatedConnection;
use super::guard::PooledConnection;
use super::messages::{Resize, Warm};
use super::shared::PoolShared;
use super::stats::PoolStats;
use crate::backends::Backend;
use crate::error::{BackendError, BackendErrorKind, Error, Phase};
use crate::key::PoolKey;
use crate::observe::LeakReport;

/// A handle to one pool. Resolve it once (from the [`Supervisor`](crate::Supervisor)) and
/// acquire from it as often as you like; it is cheap to clone and `Send`.
///
/// If the pool is later evicted, reaped or shut down, acquire answers
/// [`Error::PoolClosed`]: resolve a new handle from the supervisor.
///
/// A handle resolved with a connection config remembers the credential it was resolved
/// with. If the pool's credential is then replaced (a caller presented a new password and
/// it authenticated), the handle keeps working when its own credential had authenticated
/// (a rotation), and is refused with an authentication error when it never had: a wrong
/// password never gets a connection opened with the right one.
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
///
/// # actix::System::new().block_on(async {
/// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
/// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
/// let handle = pool.clone(); // cheap: share it with every task
/// tokio::spawn(async move { drop(handle.acquire().await) });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct PoolHandle<B: Backend> {
    pub(crate) shared: Arc<PoolShared<B>>,
    pub(crate) actor: WeakAddr<PoolActor<B>>,
    /// The credential it was resolved with; `None`: resolved by key or name.
    pub(crate) credential: Option<Arc<Version>>,
}

impl<B: Backend> Clone for PoolHandle<B> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            actor: self.actor.clone(),
            credential: self.credential.clone(),
        }
    }
}

impl<B: Backend> PoolHandle<B> {
    /// The pool's key.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// assert_eq!(pool.key(), poolwarden::PoolKey::of(&ConnectionConfig::sim("orders")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn key(&self) -> PoolKey {
        self.shared.key
    }

    /// Check out a connection within the pool's acquire timeout.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// let mut conn = pool.acquire().await?;
    /// conn.query("SELECT 1").await?;
    /// drop(conn); // back to the pool
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future at any await point frees its slot and closes a
    /// connection being opened or tested, so nothing leaks; the acquire only loses its place
    /// in the queue.
    pub async fn acquire(&self) -> Result<PooledConnection<B>, Error> {
        self.shared.home.learn();
        self.admitted()?;
        let conn = self.shared.acquire().await?;
        self.admitted()?;
        Ok(conn)
    }

    /// Check out a connection within `timeout` instead of the pool's own.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// use std::time::Duration;
    /// let conn = pool.acquire_timeout(Duration::from_millis(250)).await?;
    /// drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future at any await point frees its slot and closes a
    /// connection being opened or tested, so nothing leaks; the acquire only loses its place
    /// in the queue.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<PooledConnection<B>, Error> {
        self.shared.home.learn();
        self.admitted()?;
        let conn = self.shared.acquire_within(timeout).await?;
        self.admitted()?;
        Ok(conn)
    }

    /// Acquire from the supervisor's thread (its `Acquire` message): like
    /// [`acquire`](Self::acquire), without teaching the pool that runtime as the callers'
    /// (`home.rs`).
    pub(crate) async fn acquire_elsewhere(
        &self,
        timeout: Option<Duration>,
    ) -> Result<PooledConnection<B>, Error> {
        self.admitted()?;
        let conn = match timeout {
            Some(t) => self.shared.acquire_within(t).await,
            None => self.shared.acquire().await,
        }?;
        self.admitted()?;
        Ok(conn)
    }

    /// The credential this handle was resolved with may be served (see the type's docs);
    /// checked before and after an acquire, so a rotation while it waits is seen too. One
    /// atomic load once that credential has authenticated.
    #[inline]
    fn admitted(&self) -> Result<(), Error> {
        match &self.credential {
            Some(ticket) if !self.shared.credential.admits(ticket) => Err(Error::Backend {
                key: self.shared.key,
                phase: Phase::Connect,
                source: BackendError::new(
                    BackendErrorKind::Auth,
                    "the credential this handle was resolved with never authenticated and \
                     the pool now uses another: resolve the pool again with a working one",
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The pool's figures (read directly, no message).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// drop(pool.acquire().await?);
    /// let stats = pool.stats();
    /// assert_eq!((stats.served, stats.in_use), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// The connections checked out for longer than the pool's `leak_threshold` now,
    /// longest held first: how long, and where they were checked out (the caller's
    /// frames of the checkout's backtrace, with `leak_backtrace` on). Empty when leak
    /// detection is off. Read directly, no message ([`GetLeaks`](crate::messages::GetLeaks)
    /// asks the pool actor for the same).
    ///
    /// ```
    /// use std::time::Duration;
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, PoolConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let config = PoolConfig {
    ///     leak_threshold: Some(Duration::from_millis(10)),
    ///     leak_backtrace: true,
    ///     ..PoolConfig::default()
    /// };
    /// let pool = sup.pool_with(ConnectionConfig::sim("leaky"), config).await?;
    /// let held = pool.acquire().await?;
    /// tokio::time::sleep(Duration::from_millis(20)).await;
    /// let leaks = pool.leaks();
    /// assert_eq!(leaks.len(), 1);
    /// assert!(leaks[0].held >= Duration::from_millis(10));
    /// assert!(leaks[0].backtrace.is_some());
    /// drop(held);
    /// assert!(pool.leaks().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn leaks(&self) -> Vec<LeakReport> {
        self.shared.leaks()
    }

    /// Whether the pool stopped serving.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// use std::time::Duration;
    /// assert!(!pool.is_closed());
    /// sup.shutdown(Duration::from_secs(1)).await?;
    /// assert!(pool.is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The pool actor, while it runs.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// use poolwarden::messages::GetPoolStats;
    /// let actor = pool.actor().expect("running");
    /// let stats = actor.send(GetPoolStats).await?;
    /// assert_eq!(stats.key, pool.key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn actor(&self) -> Option<Addr<PoolActor<B>>> {
        self.actor.upgrade()
    }

    /// Ask the pool actor to open connections until `target` are idle. Answers how many
    /// it opened.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// pool.warm(3).await?;
    /// assert!(pool.stats().idle >= 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the pool actor still carries the request out (connections it opens go to the idle list).
    pub async fn warm(&self, target: usize) -> Result<usize, Error> {
        let actor = self.actor().ok_or(Error::PoolClosed { key: self.key() })?;
        Ok(actor.send(Warm { target }).await?)
    }

    /// Ask the pool actor to change the pool's sizes.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("orders")).await?;
    /// pool.resize(2, 0).await?;
    /// assert_eq!(pool.stats().max_size, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued when this is called, so dropping the future only
    /// loses the answer; the pool actor still carries the request out.
    pub async fn resize(&self, max_size: u32, min_idle: u32) -> Result<(), Error> {
        let actor = self.actor().ok_or(Error::PoolClosed { key: self.key() })?;
        actor.send(Resize { max_size, min_idle }).await?
    }
}

impl<B: Backend> PoolHandle<B> {
    /// Replace every connection: close the idle ones now and the checked-out ones as they
    /// come back (the pool moves to a new generation, as a restart does, without counting
    /// one); dedicated connections are told through
    /// [`DedicatedConnection::closed`]. New acquires get fresh connections. For after a
    /// failover, a DDL change or a credential rotation. Answers how many were closed now.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, PoolConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let config = PoolConfig { min_idle: 0, ..PoolConfig::default() };
    /// let pool = sup.pool_with(ConnectionConfig::sim("after-failover"), config).await?;
    /// let (a, b) = (pool.acquire().await?, pool.acquire().await?);
    /// let old_id = a.id();
    /// drop(a); // idle now
    /// assert_eq!(pool.soft_evict(), 1, "the idle one");
    /// drop(b); // closed as it comes back
    /// assert_eq!(pool.stats().live, 0);
    /// assert_ne!(pool.acquire().await?.id(), old_id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn soft_evict(&self) -> usize {
        self.shared.soft_evict()
    }

    /// Pause the pool: acquires wait (up to their deadline, then [`Error::Timeout`] in
    /// phase [`Wait`](Phase::Wait)) and no connection is opened for callers or refills,
    /// until [`resume`](Self::resume). Checked-out connections are unaffected and come
    /// back as usual. [`PoolStats::paused`] shows it. Answers whether this call paused
    /// it (false: it was paused already).
    ///
    /// ```
    /// use std::time::Duration;
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, Error, Phase, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("maintenance")).await?;
    /// assert!(pool.pause());
    /// assert!(pool.stats().paused);
    /// match pool.acquire_timeout(Duration::from_millis(20)).await {
    ///     Err(Error::Timeout { phase: Phase::Wait, .. }) => {}
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(pool.resume());
    /// drop(pool.acquire().await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn pause(&self) -> bool {
        self.shared.pause()
    }

    /// Resume a paused pool: the acquires that waited go on, in the order they came
    /// (ahead of acquires that arrive after). Answers whether this call resumed it
    /// (false: it was not paused).
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("maintenance")).await?;
    /// pool.pause();
    /// let waiting = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.acquire().await.map(drop) }
    /// });
    /// tokio::task::yield_now().await;
    /// assert_eq!(pool.stats().waiters, 1);
    /// assert!(pool.resume());
    /// waiting.await??;
    /// assert!(!pool.resume(), "not paused any more");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn resume(&self) -> bool {
        self.shared.resume()
    }

    /// Open a connection for this caller alone, outside the pool's slots (for `LISTEN`,
    /// a long `COPY`): the pool's config, credential and `after_connect` hook, within
    /// the pool's acquire timeout (waiting while the pool is paused). It does not count
    /// against `max_size`. See [`DedicatedConnection`] for how it is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future while it connects closes the connection being
    /// opened (it was never handed out), so nothing leaks.
    ///
    /// ```
    /// use poolwarden::backends::sim::SimBackend;
    /// use poolwarden::{ConnectionConfig, PoolConfig, SupervisorConfig, SupervisorHandle};
    ///
    /// # actix::System::new().block_on(async {
    /// let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let config = PoolConfig { min_idle: 0, ..PoolConfig::default() };
    /// let pool = sup.pool_with(ConnectionConfig::sim("copy"), config).await?;
    /// let mut conn = pool.dedicated().await?;
    /// conn.query("COPY big FROM STDIN").await?;
    /// assert_eq!((pool.stats().dedicated, pool.stats().live), (1, 0));
    /// drop(conn);
    /// assert_eq!(pool.stats().dedicated, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn dedicated(&self) -> Result<DedicatedConnection<B>, Error> {
        self.shared.home.learn();
        self.admitted()?;
        let conn = self
            .shared
            .open_dedicated(self.shared.config.acquire_timeout)
            .await?;
        self.admitted()?;
        Ok(conn)
    }
}

impl<B: Backend> fmt::Debug for PoolHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("key", &self.shared.key)
            .field("connection", &self.shared.connection)
            .finish()
    }
}
