//! Dedicated connections: opened by a pool (its config, its credential, its
//! `after_connect` hook) for one holder, outside its slots (LISTEN/NOTIFY, a long COPY).
//! Counted in `PoolStats::dedicated`, not in `live` nor against `max_size`; closed on
//! drop. The pool cannot take a connection out of its holder's hands: when it closes
//! (shutdown, eviction) or moves to a new generation (soft eviction, restart) it tells the
//! holder through [`DedicatedConnection::closed`], and a supervisor shutdown waits for
//! dedicated connections as it does for checked-out ones (its report counts those still
//! open at its deadline in `still_checked_out`).

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::conn::Conn;
use super::shared::PoolShared;
use crate::backends::Backend;
use crate::error::Error;
use crate::key::PoolKey;
use crate::limits::deadline as far_at;

/// A connection opened by a pool for one holder, outside the pool's slots: for `LISTEN`
/// / `NOTIFY`, a long `COPY`, anything that keeps a connection for long. Get one with
/// [`PoolHandle::dedicated`](crate::PoolHandle::dedicated).
///
/// It derefs to the backend's connection and is closed when dropped (after the pool's
/// `before_close` hook, if any). It does not count against `max_size`: the pool still
/// hands out `max_size` connections while it is open. It counts in
/// [`PoolStats::dedicated`](crate::PoolStats::dedicated) and keeps its pool from being
/// evicted or reaped as unused. It does count against the supervisor's connection budget
/// (`max_connections_per_host`, `max_total_connections`), waiting for room like an acquire.
///
/// When the pool closes (supervisor shutdown, eviction) or replaces its connections
/// ([`PoolHandle::soft_evict`](crate::PoolHandle::soft_evict), a restart),
/// [`closed`](Self::closed) resolves: drop the connection then. A supervisor shutdown
/// waits for it (up to its deadline) as for checked-out connections.
///
/// ```
/// use poolwarden::backends::sim::SimBackend;
/// use poolwarden::{ConnectionConfig, PoolConfig, SupervisorConfig, SupervisorHandle};
/// use std::time::Duration;
///
/// # actix::System::new().block_on(async {
/// let sim = SimBackend::default();
/// let sup = SupervisorHandle::start(sim.clone(), SupervisorConfig::default())?;
/// let config = ConnectionConfig::sim("events");
/// let pool = sup
///     .pool_with(config.clone(), PoolConfig { max_size: 1, min_idle: 0, ..PoolConfig::default() })
///     .await?;
///
/// let mut listener = pool.dedicated().await?;
/// listener.query("LISTEN orders").await?;
/// let closed = listener.closed();
/// let task = tokio::spawn(async move {
///     closed.await; // the pool asks it to close
///     drop(listener);
/// });
///
/// // The pool's one slot is still free.
/// drop(pool.acquire().await?);
/// assert_eq!(pool.stats().dedicated, 1);
///
/// let report = sup.shutdown(Duration::from_secs(1)).await?;
/// task.await?;
/// assert_eq!(report.still_checked_out, 0);
/// assert_eq!(sim.server(&config.primary_host()).open_connections(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct DedicatedConnection<B: Backend> {
    pool: Arc<PoolShared<B>>,
    conn: Option<Conn<B::Connection>>,
}

impl<B: Backend> PoolShared<B> {
    /// Open a dedicated connection within `budget`: like an acquire's connect (waiting
    /// while the pool is paused, failing fast on an open breaker), retried with backoff.
    pub(crate) async fn open_dedicated(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<DedicatedConnection<B>, Error> {
        let start = Instant::now();
        let deadline = far_at(start, budget);
        self.check_open()?;
        if self.pause.gated() {
            self.wait_unpaused(start, deadline).await?;
        }
        if self.health.refusing(start).is_some() {
            return Err(self.health.circuit_open(start, None));
        }
        // Waits for room in the connection budget, if there is one, until `deadline`.
        let conn = self.open_retrying(deadline, true, None).await?;
        // Opened as one of the pool's (counted created and live), then moved out of its
        // accounts: a dedicated connection holds no slot.
        self.counters.dedicated_out();
        let dedicated = DedicatedConnection {
            pool: Arc::clone(self),
            conn: Some(conn),
        };
        // Closed while it connected: `closed()` tells the holder at once.
        Ok(dedicated)
    }
}

impl<B: Backend> DedicatedConnection<B> {
    /// The pool this connection was opened by.
    ///
    /// ```
    /// # use poolwarden::backends::sim::SimBackend;
    /// # use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    /// # actix::System::new().block_on(async {
    /// # let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("listen")).await?;
    /// let conn = pool.dedicated().await?;
    /// assert_eq!(conn.key(), pool.key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn key(&self) -> PoolKey {
        self.pool.key
    }

    /// How long ago this connection was opened.
    ///
    /// ```
    /// # use poolwarden::backends::sim::SimBackend;
    /// # use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    /// # actix::System::new().block_on(async {
    /// # let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let conn = sup.pool(ConnectionConfig::sim("listen")).await?.dedicated().await?;
    /// assert!(conn.age() < std::time::Duration::from_secs(60));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn age(&self) -> std::time::Duration {
        self.conn().created.elapsed()
    }

    /// The pool wants this connection closed: it stopped serving, or it replaces its
    /// connections (soft eviction, a restart, a credential it no longer uses). Drop it
    /// (and open another with [`PoolHandle::dedicated`](crate::PoolHandle::dedicated) if
    /// the pool still serves).
    ///
    /// ```
    /// # use poolwarden::backends::sim::SimBackend;
    /// # use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    /// # actix::System::new().block_on(async {
    /// # let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("listen")).await?;
    /// let conn = pool.dedicated().await?;
    /// assert!(!conn.is_closing());
    /// pool.soft_evict();
    /// assert!(conn.is_closing());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn is_closing(&self) -> bool {
        let conn = self.conn();
        self.pool.is_closed()
            || conn.generation != self.pool.incarnation.generation()
            || conn.credential.retired()
    }

    /// Resolves when the pool wants this connection closed (see
    /// [`is_closing`](Self::is_closing)); owns what it needs, so it can be awaited beside
    /// the connection's own work (`tokio::select!`) or moved to another task.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches; dropping it changes nothing, and a new one sees the
    /// same state.
    ///
    /// ```
    /// # use poolwarden::backends::sim::SimBackend;
    /// # use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
    /// # actix::System::new().block_on(async {
    /// # let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    /// let pool = sup.pool(ConnectionConfig::sim("listen")).await?;
    /// let conn = pool.dedicated().await?;
    /// let closed = conn.closed();
    /// let holder = tokio::spawn(async move {
    ///     closed.await;
    ///     drop(conn);
    /// });
    /// pool.soft_evict();
    /// holder.await?;
    /// assert_eq!(pool.stats().dedicated, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let pool = Arc::clone(&self.pool);
        let generation = self.conn().generation;
        let credential = Arc::clone(&self.conn().credential);
        async move {
            loop {
                let changed = pool.hot.changed();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if pool.is_closed()
                    || pool.incarnation.generation() != generation
                    || credential.retired()
                {
                    return;
                }
                changed.await;
            }
        }
    }

    fn conn(&self) -> &Conn<B::Connection> {
        self.conn.as_ref().expect("present until drop")
    }
}

impl<B: Backend> Deref for DedicatedConnection<B> {
    type Target = B::Connection;
    fn deref(&self) -> &B::Connection {
        &self.conn().raw
    }
}

impl<B: Backend> DerefMut for DedicatedConnection<B> {
    fn deref_mut(&mut self) -> &mut B::Connection {
        &mut self.conn.as_mut().expect("present until drop").raw
    }
}

impl<B: Backend> Drop for DedicatedConnection<B> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.counters.dedicated_in();
            self.pool
                .close_conn(conn, crate::observe::reason::CloseReason::Dedicated);
            if self.pool.is_closed() {
                // A shutdown may be waiting for it.
                self.pool.slots.wake_returned();
            }
        }
    }
}

impl<B: Backend> fmt::Debug for DedicatedConnection<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedicatedConnection")
            .field("pool", &self.pool.key)
            .field("age", &self.age())
            .finish_non_exhaustive()
    }
}
