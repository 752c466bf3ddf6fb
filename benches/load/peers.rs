//! The pools under comparison, behind one trait, and the floor: a bare tokio semaphore
//! plus a mutex-protected `VecDeque`, which is what any pool's fast path costs at least.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// One operation of a scenario (acquire, use, release). Answers how long the acquire took,
/// so open-loop runs can report the acquire wait on its own.
pub trait Op: Clone + Send + Sync + 'static {
    fn run(&self) -> impl Future<Output = Option<Duration>> + Send;
}

// ----- the floor ---------------------------------------------------------------------------

/// A semaphore (FIFO, like poolwarden's) guarding a LIFO deque of connections. Connections
/// are opened up front with [`Floor::filled`], or on demand by [`Floor::get_or_connect`].
pub struct Floor<C> {
    slots: Semaphore,
    idle: Mutex<VecDeque<C>>,
}

impl<C: Send + 'static> Floor<C> {
    pub fn filled(conns: Vec<C>) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(conns.len()),
            idle: Mutex::new(conns.into()),
        })
    }

    pub fn empty(size: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(size),
            idle: Mutex::new(VecDeque::with_capacity(size)),
        })
    }

    pub async fn get(self: &Arc<Self>) -> FloorGuard<C> {
        self.slots.acquire().await.expect("floor open").forget();
        let conn = self.idle.lock().expect("floor lock").pop_back();
        FloorGuard {
            pool: Arc::clone(self),
            conn: Some(conn.expect("a connection per permit")),
        }
    }

    /// With a slot held, reuse an idle connection or open one with `connect`.
    pub async fn get_or_connect<F, Fut>(self: &Arc<Self>, connect: F) -> FloorGuard<C>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = C>,
    {
        self.slots.acquire().await.expect("floor open").forget();
        let idle = self.idle.lock().expect("floor lock").pop_back();
        let conn = match idle {
            Some(c) => c,
            None => connect().await,
        };
        FloorGuard {
            pool: Arc::clone(self),
            conn: Some(conn),
        }
    }
}

pub struct FloorGuard<C: Send + 'static> {
    pool: Arc<Floor<C>>,
    conn: Option<C>,
}

impl<C: Send + 'static> Deref for FloorGuard<C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn.as_ref().expect("present until drop")
    }
}

impl<C: Send + 'static> DerefMut for FloorGuard<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until drop")
    }
}

impl<C: Send + 'static> Drop for FloorGuard<C> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.idle.lock().expect("floor lock").push_back(c);
            self.pool.slots.add_permits(1);
        }
    }
}

// ----- a connection that costs nothing, or a fixed simulated latency ---------------------

/// A connection to nothing. With a latency it stands for the simulated backend's
/// connection in the cold-storm scenario (same connect and query latencies).
pub struct Noop;

/// Counts connects in progress and their peak, for the storm scenario.
#[derive(Default)]
pub struct ConnectGauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    pub total: AtomicUsize,
}

impl ConnectGauge {
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub async fn connect(&self, latency: Duration) -> Noop {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.now.fetch_sub(1, Ordering::Relaxed);
        Noop
    }
}

/// A no-op manager for bb8, deadpool and mobc; `latency` is the connect latency, `gauge`
/// counts connects.
#[derive(Clone, Default)]
pub struct NoopManager {
    pub latency: Duration,
    pub gauge: Arc<ConnectGauge>,
}

impl bb8::ManageConnection for NoopManager {
    type Connection = Noop;
    type Error = Infallible;

    async fn connect(&self) -> Result<Noop, Infallible> {
        Ok(self.gauge.connect(self.latency).await)
    }

    async fn is_valid(&self, _conn: &mut Noop) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Noop) -> bool {
        false
    }
}

impl deadpool::managed::Manager for NoopManager {
    type Type = Noop;
    type Error = Infallible;

    async fn create(&self) -> Result<Noop, Infallible> {
        Ok(self.gauge.connect(self.latency).await)
    }

    async fn recycle(
        &self,
        _obj: &mut Noop,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

#[mobc::async_trait]
impl mobc::Manager for NoopManager {
    type Connection = Noop;
    type Error = Infallible;

    async fn connect(&self) -> Result<Noop, Infallible> {
        Ok(self.gauge.connect(self.latency).await)
    }

    async fn check(&self, conn: Noop) -> Result<Noop, Infallible> {
        Ok(conn)
    }
}

/// The same no-op connection as a poolwarden backend: connecting, probing and checking
/// cost nothing, so poolwarden's no-op rows count the pool alone, as the peers' rows do.
pub struct NoopBackend;

impl poolwarden::Backend for NoopBackend {
    type Connection = Noop;

    async fn connect(
        &self,
        _config: &poolwarden::ConnectionConfig,
    ) -> Result<Noop, poolwarden::BackendError> {
        Ok(Noop)
    }

    async fn probe(&self, _conn: &mut Noop) -> Result<(), poolwarden::BackendError> {
        Ok(())
    }

    fn needs_reset(&self, _conn: &Noop) -> bool {
        false
    }
}

/// A poolwarden pool of `size` on `sup` (config `sim://name`, `min_idle` = `max_size` =
/// `size`, the default otherwise), warmed to its size.
pub async fn poolwarden_warm<B: poolwarden::Backend>(
    sup: &poolwarden::EmbeddedSupervisor<B>,
    name: &str,
    size: u32,
) -> poolwarden::PoolHandle<B> {
    poolwarden_warm_at(sup, poolwarden::ConnectionConfig::sim(name), size).await
}

/// [`poolwarden_warm`] on the server `connection` names.
pub async fn poolwarden_warm_at<B: poolwarden::Backend>(
    sup: &poolwarden::EmbeddedSupervisor<B>,
    connection: poolwarden::ConnectionConfig,
    size: u32,
) -> poolwarden::PoolHandle<B> {
    let pool = sup
        .handle()
        .pool_with(
            connection,
            poolwarden::PoolConfig {
                min_idle: size,
                max_size: size,
                ..poolwarden::PoolConfig::default()
            },
        )
        .await
        .expect("poolwarden pool");
    pool.warm(size as usize).await.expect("warm-up");
    pool
}

pub type Bb8Noop = bb8::Pool<NoopManager>;
pub type DeadpoolNoop = deadpool::managed::Pool<NoopManager>;
pub type MobcNoop = mobc::Pool<NoopManager>;

/// bb8 with its defaults otherwise: test_on_check_out = true (is_valid is a no-op here).
pub async fn bb8_noop(size: u32, min_idle: Option<u32>, manager: NoopManager) -> Bb8Noop {
    bb8_noop_with(size, min_idle, manager, true).await
}

/// bb8 without test on checkout.
pub async fn bb8_noop_untested(size: u32, min_idle: Option<u32>, manager: NoopManager) -> Bb8Noop {
    bb8_noop_with(size, min_idle, manager, false).await
}

async fn bb8_noop_with(
    size: u32,
    min_idle: Option<u32>,
    manager: NoopManager,
    test: bool,
) -> Bb8Noop {
    bb8::Pool::builder()
        .max_size(size)
        .min_idle(min_idle)
        .test_on_check_out(test)
        .build(manager)
        .await
        .expect("bb8 pool")
}

pub fn deadpool_noop(size: u32, manager: NoopManager) -> DeadpoolNoop {
    deadpool::managed::Pool::builder(manager)
        .max_size(size as usize)
        .build()
        .expect("deadpool pool")
}

pub fn mobc_noop(size: u32, manager: NoopManager) -> MobcNoop {
    // mobc checks a connection on checkout by default (`check` is a no-op here).
    mobc::Pool::builder()
        .max_open(u64::from(size))
        .max_idle(u64::from(size))
        .build(manager)
}

/// Open `size` connections of a lazily filled pool by checking them out at once.
pub async fn fill<T, F, Fut>(size: u32, get: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
{
    let held = futures::future::join_all((0..size).map(|_| get())).await;
    drop(held);
}

/// Acquire and release without using the connection.
macro_rules! acquire_release_op {
    ($ty:ty, |$p:ident| $get:expr) => {
        impl Op for $ty {
            async fn run(&self) -> Option<Duration> {
                let $p = self;
                let t = Instant::now();
                let guard = $get;
                let waited = t.elapsed();
                drop(guard);
                Some(waited)
            }
        }
    };
}

acquire_release_op!(Bb8Noop, |p| p.get().await.expect("bb8 get"));
acquire_release_op!(DeadpoolNoop, |p| p.get().await.expect("deadpool get"));
acquire_release_op!(MobcNoop, |p| p.get().await.expect("mobc get"));
acquire_release_op!(Arc<Floor<Noop>>, |p| p.get().await);
acquire_release_op!(
    poolwarden::PoolHandle<poolwarden::backends::sim::SimBackend>,
    |p| p.acquire().await.expect("poolwarden acquire")
);
acquire_release_op!(poolwarden::PoolHandle<NoopBackend>, |p| p
    .acquire()
    .await
    .expect("poolwarden acquire"));
