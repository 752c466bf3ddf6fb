//! The pool under real failures, against throwaway PostgreSQL servers from `tests/common`
//! (never the machine's own): restarts under load (`pg_ctl -m fast` and `-m immediate`),
//! faults injected by the TCP proxy of `tests/common/fault_proxy.rs` (latency, resets, a
//! blackhole, a byte-limited half-open link) and a reconnect storm of 1,000 waiters against
//! a server with a small `max_connections`; and what counts as evidence against the
//! endpoint (terminated backends, a connection limit, a frozen server).
//!
//! Every test ends by checking that the server's count of the pool's backends
//! (`pg_stat_activity` for its `application_name`) equals the pool's `stats().live`: a
//! connection the pool forgot but did not close shows up there. Measured figures are printed
//! (`cargo test --all-features --test pg_resilience -- --nocapture`).
//!
//! The backend is PostgreSQL wrapped in a [`Gauged`] backend that counts connect attempts
//! in progress, so the `max_connecting` limit is checked from outside the pool.
#![cfg(feature = "postgres")]

#[path = "../common/mod.rs"]
mod common;

mod broken_links;
mod evidence;
mod restarts;
mod slow_links;
mod storm;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use common::fault_proxy::FaultProxy;
use common::load::{self, Load, Pace};
use common::PgServer;
use common::{ms, secs};
use poolwarden::backends::postgres::{PgConnection, PostgresBackend};
use poolwarden::messages::BreakerTransition;
use poolwarden::{
    Backend, BackendError, BreakerConfig, BreakerState, ConnectionConfig, Error, Phase, PoolConfig,
    PoolHandle, SupervisorConfig, SupervisorHandle,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Room for scheduling on a 2-core machine shared with builds.
const SLACK: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------
// A backend that counts connects in progress
// ---------------------------------------------------------------------------------------

/// Connect attempts in progress now, the most seen at once, and how many were made.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    attempts: AtomicU64,
}

impl Gauge {
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

/// Decrements the gauge however the attempt ends (done, failed, or dropped by a timeout).
struct InProgress<'a>(&'a Gauge);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// [`PostgresBackend`], with every `connect` counted by a [`Gauge`].
#[derive(Clone, Default)]
struct Gauged {
    inner: PostgresBackend,
    gauge: Arc<Gauge>,
}

impl Backend for Gauged {
    type Connection = PgConnection;

    async fn connect(&self, config: &ConnectionConfig) -> Result<PgConnection, BackendError> {
        let g = &*self.gauge;
        let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
        g.peak.fetch_max(n, Ordering::SeqCst);
        g.attempts.fetch_add(1, Ordering::SeqCst);
        let _in_progress = InProgress(g);
        self.inner.connect(config).await
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

// ---------------------------------------------------------------------------------------
// Breaker events as a stream
// ---------------------------------------------------------------------------------------

/// Forwards every breaker transition into a channel the test awaits.
struct Forward(mpsc::UnboundedSender<BreakerTransition>);

impl Actor for Forward {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Events are offered with `try_send`: never lose one to a full mailbox.
        ctx.set_mailbox_capacity(100_000);
    }
}

impl Handler<BreakerTransition> for Forward {
    type Result = ();
    fn handle(&mut self, msg: BreakerTransition, _: &mut Self::Context) {
        let _ = self.0.send(msg);
    }
}

/// A supervisor, one pool, its breaker events and its connect gauge.
struct Fx {
    sup: SupervisorHandle<Gauged>,
    pool: PoolHandle<Gauged>,
    events: mpsc::UnboundedReceiver<BreakerTransition>,
    /// Every transition received so far, in order.
    seen: Vec<BreakerTransition>,
    gauge: Arc<Gauge>,
}

async fn start_pool(connection: ConnectionConfig, config: PoolConfig) -> Fx {
    let backend = Gauged::default();
    let gauge = Arc::clone(&backend.gauge);
    let sup = SupervisorHandle::start(
        backend,
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let (tx, events) = mpsc::unbounded_channel();
    sup.subscribe(Forward(tx).start().recipient())
        .await
        .expect("subscribed");
    let pool = sup
        .pool_with(connection, config)
        .await
        .expect("pool created");
    Fx {
        sup,
        pool,
        events,
        seen: Vec::new(),
        gauge,
    }
}

impl Fx {
    /// The next transition to `to` within `within` (earlier ones are consumed).
    async fn next_to(&mut self, to: BreakerState, within: Duration) -> Option<BreakerTransition> {
        let (events, seen) = (&mut self.events, &mut self.seen);
        timeout(within, async {
            while let Some(e) = events.recv().await {
                seen.push(e.clone());
                if e.to == to {
                    return Some(e);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Every transition received so far.
    fn all_events(&mut self) -> &[BreakerTransition] {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }
}

/// The invariant every test ends with: the server has exactly as many backends for the
/// pool's `application_name` as the pool counts live connections, and nothing is checked
/// out.
/// Polled, comparing with the pool's count at each look: background probes may close
/// connections meanwhile, and a closed backend takes a moment to leave `pg_stat_activity`.
async fn assert_server_count_matches(pg: &PgServer, app: &str, pool: &PoolHandle<Gauged>) {
    let admin = pg.superuser_client().await;
    let last = parking_lot::Mutex::new((0, 0));
    let agreed = common::eventually(secs(10), || async {
        let live = pool.stats().live as i64;
        let seen = common::pg_server::count_backends(&admin, app).await;
        *last.lock() = (seen, live);
        (seen == live && pool.stats().live as i64 == live).then_some(())
    })
    .await;
    let last = *last.lock();
    let s = pool.stats();
    assert!(
        agreed.is_some(),
        "server backends of `{app}` vs the pool's live count, last seen: {last:?} ({s:?})"
    );
    assert_eq!(s.in_use, 0, "{s:?}");
}

/// `cfg` with its host replaced by the proxy.
fn via(proxy: &FaultProxy, mut cfg: ConnectionConfig) -> ConnectionConfig {
    cfg.hosts[0].port = proxy.port();
    cfg
}

// ---------------------------------------------------------------------------------------
// A workload: tasks acquiring and running `SELECT 1` in a loop
// ---------------------------------------------------------------------------------------

/// After an error a worker waits this long, as a client backing off would.
const CLIENT_BACKOFF: Duration = Duration::from_millis(10);

/// `workers` tasks, each acquiring and running `SELECT 1` (within `query_budget`) until
/// stopped.
fn select_load(pool: &PoolHandle<Gauged>, workers: usize, query_budget: Duration) -> Load {
    let pace = Pace::backoff(CLIENT_BACKOFF);
    Load::start(pool, workers, pace, move |_, conn| async move {
        match timeout(query_budget, conn.query_one("SELECT 1", &[])).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within the caller's {query_budget:?}")),
        }
    })
}

/// An acquire error caused by the server being down, starting up or cut off.
fn is_outage(err: &Error) -> bool {
    load::is_outage(err, &[Phase::Connect, Phase::Probe])
}

/// The caller's budget for `SELECT 1`.
const QUERY_BUDGET: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Through the fault proxy
// ---------------------------------------------------------------------------------------

const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A proxied pool: probes every 200 ms with a 300 ms budget; nothing expires.
fn proxy_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        acquire_timeout: secs(3),
        connect_timeout: secs(1),
        probe_timeout: PROBE_TIMEOUT,
        probe_interval: Some(PROBE_INTERVAL),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        backoff_initial: ms(10),
        backoff_max: ms(100),
        breaker: BreakerConfig {
            failure_threshold: 5,
            success_threshold: 1,
            open_for: ms(100),
            grow_after: std::time::Duration::ZERO,
            max_open_for: ms(400),
        },
        ..PoolConfig::default()
    }
}

fn start_proxy(pg: &PgServer) -> FaultProxy {
    FaultProxy::start(([127, 0, 0, 1], pg.port()).into())
}
