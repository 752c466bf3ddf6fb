//! The four pools of the fault scenario, set alike (sizes and timeouts), each behind a
//! wrapper that counts its connects where they start: poolwarden's `Backend::connect`,
//! bb8's `ManageConnection::connect`, deadpool's `Manager::create`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod};
use poolwarden::backends::postgres::{PgConnection, PostgresBackend};
use poolwarden::{
    Backend, BackendError, ConnectionConfig, EmbeddedSupervisor, Error, PoolConfig, PoolHandle,
    SupervisorConfig,
};
use tokio::time::timeout;
use tokio_postgres::NoTls;

pub const NAMES: [&str; 4] = [
    "poolwarden (default)",
    "bb8 (test on checkout)",
    "bb8 (no test)",
    "deadpool (Fast)",
];

pub const MAX_SIZE: u32 = 8;
pub const MIN_IDLE: u32 = 2;
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Connects in progress now, the most at once, how many were started and how many failed.
#[derive(Default)]
pub struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    attempts: AtomicU64,
    failed: AtomicU64,
}

impl Gauge {
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Count one connect around `f` (a connect dropped by its caller's timeout counts as
    /// ended, and as failed).
    async fn count<T, E>(
        &self,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let mut guard = InProgress { g: self, ok: false };
        let r = f.await;
        guard.ok = r.is_ok();
        r
    }
}

struct InProgress<'a> {
    g: &'a Gauge,
    ok: bool,
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.g.now.fetch_sub(1, Ordering::SeqCst);
        if !self.ok {
            self.g.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// ----- poolwarden ------------------------------------------------------------------------

/// [`PostgresBackend`] with its connects counted.
#[derive(Clone, Default)]
pub struct Counted {
    inner: PostgresBackend,
    pub gauge: Arc<Gauge>,
}

impl Backend for Counted {
    type Connection = PgConnection;

    async fn connect(&self, config: &ConnectionConfig) -> Result<PgConnection, BackendError> {
        self.gauge.count(self.inner.connect(config)).await
    }

    async fn probe(&self, conn: &mut PgConnection) -> Result<(), BackendError> {
        self.inner.probe(conn).await
    }

    fn needs_reset(&self, conn: &PgConnection) -> bool {
        self.inner.needs_reset(conn)
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), BackendError> {
        self.inner.reset(conn).await
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        self.inner.is_broken(conn)
    }
}

// ----- the peers ---------------------------------------------------------------------------

/// A peer's connect or test error: the driver's, or the bench's timeout around it.
#[derive(Debug)]
pub enum PeerError {
    Pg(#[allow(dead_code)] tokio_postgres::Error),
    TimedOut,
}

/// bb8's PostgreSQL manager with its connects counted and bounded by [`CONNECT_TIMEOUT`]
/// (tokio-postgres' own `connect_timeout` covers the TCP connect only), and its test on
/// checkout bounded by [`PROBE_TIMEOUT`].
pub struct Bb8Mgr {
    inner: PostgresConnectionManager<NoTls>,
    gauge: Arc<Gauge>,
}

impl bb8::ManageConnection for Bb8Mgr {
    type Connection = tokio_postgres::Client;
    type Error = PeerError;

    async fn connect(&self) -> Result<Self::Connection, PeerError> {
        self.gauge
            .count(async {
                match timeout(CONNECT_TIMEOUT, self.inner.connect()).await {
                    Ok(r) => r.map_err(PeerError::Pg),
                    Err(_) => Err(PeerError::TimedOut),
                }
            })
            .await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), PeerError> {
        match timeout(PROBE_TIMEOUT, self.inner.is_valid(conn)).await {
            Ok(r) => r.map_err(PeerError::Pg),
            Err(_) => Err(PeerError::TimedOut),
        }
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        self.inner.has_broken(conn)
    }
}

/// deadpool-postgres' manager with its creates counted (bounded by the pool's
/// `create_timeout`).
pub struct DpMgr {
    inner: deadpool_postgres::Manager,
    gauge: Arc<Gauge>,
}

impl deadpool::managed::Manager for DpMgr {
    type Type = ClientWrapper;
    type Error = PeerError;

    async fn create(&self) -> Result<ClientWrapper, PeerError> {
        self.gauge
            .count(async { self.inner.create().await.map_err(PeerError::Pg) })
            .await
    }

    async fn recycle(&self, obj: &mut ClientWrapper, m: &Metrics) -> RecycleResult<PeerError> {
        self.inner.recycle(obj, m).await.map_err(|e| match e {
            RecycleError::Message(s) => RecycleError::Message(s),
            RecycleError::Backend(e) => RecycleError::Backend(PeerError::Pg(e)),
        })
    }

    fn detach(&self, obj: &mut ClientWrapper) {
        self.inner.detach(obj)
    }
}

// ----- one pool under test -------------------------------------------------------------------

/// How an acquire failed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// poolwarden's `CircuitOpen`.
    CircuitOpen,
    /// The pool's own acquire timeout.
    Timeout,
    /// Anything else (a connect error handed to the caller…).
    Other,
}

/// One of the four pools, with its connect gauge.
#[derive(Clone)]
pub enum Pool {
    Pw(PoolHandle<Counted>),
    Bb8(bb8::Pool<Bb8Mgr>),
    Dp(deadpool::managed::Pool<DpMgr>),
}

/// What a pool is closed with.
pub enum Closer {
    Pw(EmbeddedSupervisor<Counted>),
    Dp(deadpool::managed::Pool<DpMgr>),
    Bb8,
}

impl Closer {
    pub async fn close(self) {
        match self {
            Closer::Pw(sup) => {
                let _ = sup.shutdown(Duration::from_secs(5)).await;
            }
            Closer::Dp(p) => p.close(),
            Closer::Bb8 => {}
        }
    }
}

/// Where the pools connect: as the bench's role (SCRAM), with `application_name` set per
/// run so the server's view of one pool's backends excludes everyone else's.
pub struct Endpoint {
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Endpoint {
    pub fn tp(&self, app: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname("postgres")
            .application_name(app)
            .connect_timeout(CONNECT_TIMEOUT);
        c
    }

    fn pw(&self, app: &str) -> ConnectionConfig {
        let mut c = ConnectionConfig::new("postgres", "127.0.0.1", self.port);
        c.database = Some("postgres".into());
        c.user = Some(self.user.clone());
        c.password = Some(poolwarden::Secret::new(self.password.clone()));
        c.application_name = Some(app.into());
        c.tls.mode = poolwarden::SslMode::Disable;
        c
    }
}

/// Build pool `which` (an index into [`NAMES`]).
pub async fn build(which: usize, ep: &Endpoint, app: &str) -> (Pool, Closer, Arc<Gauge>) {
    let gauge = Arc::new(Gauge::default());
    match which {
        0 => {
            let backend = Counted {
                inner: PostgresBackend::new(),
                gauge: Arc::clone(&gauge),
            };
            let sup = EmbeddedSupervisor::spawn(
                backend,
                SupervisorConfig {
                    pool_idle_timeout: None,
                    ..SupervisorConfig::default()
                },
            )
            .expect("supervisor");
            let config = PoolConfig {
                max_size: MAX_SIZE,
                min_idle: MIN_IDLE,
                acquire_timeout: ACQUIRE_TIMEOUT,
                connect_timeout: CONNECT_TIMEOUT,
                probe_timeout: PROBE_TIMEOUT,
                ..PoolConfig::default()
            };
            let pool = sup
                .handle()
                .pool_with(ep.pw(app), config)
                .await
                .expect("poolwarden pool");
            (Pool::Pw(pool), Closer::Pw(sup), gauge)
        }
        1 | 2 => {
            let mgr = Bb8Mgr {
                inner: PostgresConnectionManager::new(ep.tp(app), NoTls),
                gauge: Arc::clone(&gauge),
            };
            let pool = bb8::Pool::builder()
                .max_size(MAX_SIZE)
                .min_idle(Some(MIN_IDLE))
                .connection_timeout(ACQUIRE_TIMEOUT)
                .test_on_check_out(which == 1)
                .build(mgr)
                .await
                .expect("bb8 pool");
            (Pool::Bb8(pool), Closer::Bb8, gauge)
        }
        _ => {
            let mgr = DpMgr {
                inner: deadpool_postgres::Manager::from_config(
                    ep.tp(app),
                    NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                ),
                gauge: Arc::clone(&gauge),
            };
            let pool = deadpool::managed::Pool::builder(mgr)
                .max_size(MAX_SIZE as usize)
                .wait_timeout(Some(ACQUIRE_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(PROBE_TIMEOUT))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .expect("deadpool pool");
            (Pool::Dp(pool.clone()), Closer::Dp(pool), gauge)
        }
    }
}

/// How one operation ended.
pub enum Outcome {
    Ok,
    Acquire(AcquireError),
    /// The query failed (`true`: no answer within the caller's budget).
    Query(bool),
}

async fn query(c: &tokio_postgres::Client, budget: Duration) -> Outcome {
    match timeout(budget, c.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(_)) => Outcome::Query(false),
        Err(_) => Outcome::Query(true),
    }
}

impl Pool {
    /// Acquire, `SELECT 1` within `budget`, release. `in_query` counts callers between a
    /// successful acquire and the query's end.
    pub async fn once(&self, budget: Duration, in_query: &AtomicUsize) -> Outcome {
        match self {
            Pool::Pw(p) => match p.acquire().await {
                Ok(c) => in_flight(in_query, query(c.client(), budget)).await,
                Err(Error::CircuitOpen { .. }) => Outcome::Acquire(AcquireError::CircuitOpen),
                Err(Error::Timeout { .. }) => Outcome::Acquire(AcquireError::Timeout),
                Err(_) => Outcome::Acquire(AcquireError::Other),
            },
            Pool::Bb8(p) => match p.get().await {
                Ok(c) => in_flight(in_query, query(&c, budget)).await,
                Err(bb8::RunError::TimedOut) => Outcome::Acquire(AcquireError::Timeout),
                Err(_) => Outcome::Acquire(AcquireError::Other),
            },
            Pool::Dp(p) => match p.get().await {
                Ok(c) => in_flight(in_query, query(&c, budget)).await,
                Err(deadpool::managed::PoolError::Timeout(_)) => {
                    Outcome::Acquire(AcquireError::Timeout)
                }
                Err(_) => Outcome::Acquire(AcquireError::Other),
            },
        }
    }
}

async fn in_flight(n: &AtomicUsize, f: impl std::future::Future<Output = Outcome>) -> Outcome {
    n.fetch_add(1, Ordering::SeqCst);
    let r = f.await;
    n.fetch_sub(1, Ordering::SeqCst);
    r
}
