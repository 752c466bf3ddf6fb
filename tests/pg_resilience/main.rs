//! The pool under real failures, against throwaway PostgreSQL servers from `tests/common`
//! (never the machine's own): restarts under load (`pg_ctl -m fast` and `-m immediate`),
//! faults injected by the TCP proxy of `tests/common/fault_proxy.rs` (latency, resets, a
//! blackhole, a byte-limited half-open link) and a reconnect storm of 1,000 waiters against
//! a server with a small `max_connections`.
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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use common::fault_proxy::FaultProxy;
use common::load::{self, unexpected_acquire_errors, Load, Pace, Tally};
use common::pg_replication::StopMode;
use common::pg_server::PG_USER;
use common::{ms, secs};
use common::{PgOptions, PgServer};
use poolwarden::backends::postgres::{PgConnection, PostgresBackend};
use poolwarden::messages::BreakerTransition;
use poolwarden::{
    Backend, BackendError, BackendErrorKind, BreakerConfig, BreakerState, ConnectionConfig, Error,
    HealthStatus, Phase, PoolConfig, PoolHandle, SupervisorConfig, SupervisorHandle,
};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

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

// ---------------------------------------------------------------------------------------
// Restarts under load
// ---------------------------------------------------------------------------------------

const RESTART_WORKERS: usize = 8;
/// The claim under test: service is back this soon after the server accepts connections.
const RECOVERY_BOUND: Duration = Duration::from_secs(1);
/// The caller's budget for `SELECT 1`.
const QUERY_BUDGET: Duration = Duration::from_secs(2);

/// Small, with probes and a breaker whose open time is capped well under a second: after
/// the server comes back, the next half-open trial is at most `max_open_for` away, which
/// is what makes "back within 1 s" possible. (With the default cap of 30 s, an outage long
/// enough to double the open time a few times delays recovery by up to that cap.)
fn restart_config() -> PoolConfig {
    PoolConfig {
        min_idle: 2,
        max_size: 4,
        max_connecting: 2,
        acquire_timeout: secs(2),
        connect_timeout: secs(1),
        probe_timeout: ms(300),
        probe_interval: Some(ms(200)),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        backoff_initial: ms(20),
        backoff_max: ms(200),
        breaker: BreakerConfig {
            failure_threshold: 5,
            success_threshold: 2,
            open_for: ms(100),
            max_open_for: ms(250),
        },
        ..PoolConfig::default()
    }
}

/// The `application_name` of the plain client that watches for the server to accept.
const READY_APP: &str = "pw_resilience_ready";

/// Poll with a plain tokio-postgres client (no pool) every 5 ms until the server accepts a
/// connection; answers when that first connect completed.
async fn accepting_since(pg: &PgServer, within: Duration) -> Option<Instant> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(pg.port())
        .user(PG_USER)
        .password(pg.password())
        .dbname("postgres")
        .application_name(READY_APP)
        .connect_timeout(secs(1));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok((client, conn)) = cfg.connect(tokio_postgres::NoTls).await {
            let at = Instant::now();
            drop(client);
            let _ = conn.await;
            return Some(at);
        }
        tokio::time::sleep(ms(5)).await;
    }
    None
}

/// Password-less TCP logins for the restart servers. With SCRAM, each connect of this
/// debug build spends 100 ms or more of CPU in the client's PBKDF2, on the test's one
/// runtime thread, so recovery would measure the hashing (a few ms in a release build)
/// rather than the pool. (The storm keeps SCRAM: slow connects press its limit harder.)
const TRUST_TCP: &str = "local all all scram-sha-256\nhost all all 127.0.0.1/32 trust\n";

async fn restart_under_load(mode: StopMode) {
    let Some(pg) = PgServer::start_with(PgOptions {
        hba: Some(TRUST_TCP.into()),
        ..PgOptions::default()
    }) else {
        return;
    };
    let pg = Arc::new(pg);
    let app = PgServer::unique_app(&format!("restart-{mode:?}").to_lowercase());
    let config = restart_config();
    let mut fx = start_pool(pg.config_for(&app), config.clone()).await;
    let load = select_load(&fx.pool, RESTART_WORKERS, QUERY_BUDGET);
    assert!(
        load.more_ok(200, secs(20)).await,
        "the load never got going"
    );

    // Down.
    let stopping = Instant::now();
    {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.stop_with(mode))
            .await
            .expect("pg_ctl stop");
    }
    let stopped = Instant::now();
    // Stay down until the pool has noticed and a half-open trial failed too (the breaker
    // opened twice): recovery then has to come from the breaker's own retries.
    for n in 1..=2 {
        let open = fx.next_to(BreakerState::Open, secs(10)).await;
        assert!(
            open.is_some(),
            "{mode:?}: open #{n} while the server is down: {:?}",
            fx.pool.stats()
        );
    }

    // Up again; a plain client tells when the server accepts.
    let starting = {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.start_again())
    };
    let ready = accepting_since(&pg, secs(30))
        .await
        .expect("the server accepts connections again");
    starting.await.expect("pg_ctl start");
    let first_ok = common::eventually(secs(10), || async { load.first_ok_after(stopped) })
        .await
        .unwrap_or_else(|| panic!("{mode:?}: no recovery: {:?}", fx.pool.stats()));
    let recovery = first_ok.saturating_duration_since(ready);
    // Fully healed: the breaker closed again, and the load runs on.
    assert!(
        fx.next_to(BreakerState::Closed, secs(10)).await.is_some(),
        "{mode:?}: the breaker closes again"
    );
    assert!(load.more_ok(300, secs(20)).await, "{mode:?}: stalled");
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    let s = fx.pool.stats();
    for e in fx.all_events() {
        let at = if e.at >= ready {
            format!("+{:?}", e.at - ready)
        } else {
            format!("-{:?}", ready - e.at)
        };
        println!(
            "  {mode:?}: accepting {at}: {} -> {}: {}",
            e.from, e.to, e.reason
        );
    }
    println!(
        "{mode:?} restart under load: stop took {:?}, down (stop done → accepting) {:?}, \
         service back {recovery:?} after the server accepted; {} ok, {} acquire errors, {} query \
         errors; longest op {:?}; peak connects {}; {s:?}",
        stopped - stopping,
        ready - stopped,
        t.ok,
        t.all_acquire_errors(),
        t.op_errors,
        t.longest,
        fx.gauge.peak()
    );

    assert!(
        recovery < RECOVERY_BOUND,
        "{mode:?}: service back {recovery:?} after the server accepted connections"
    );
    // No hang: every call came back within its budgets.
    assert!(
        t.longest <= config.acquire_timeout + QUERY_BUDGET + SLACK,
        "{mode:?}: an op took {:?}",
        t.longest
    );
    let unexpected = unexpected_acquire_errors(&ops, is_outage);
    assert!(
        unexpected.is_empty(),
        "{mode:?}: acquire errors other than the outage: {unexpected:?}"
    );
    // Errors are bounded by the outage, in time and in kind. Their number is not the
    // measure: while the server is down an acquire fails at once (the breaker is open), so
    // the count is the downtime times the clients' retry rate. What is bounded:
    // - query errors: only a connection open when the server went down can fail a query
    //   (one handed out before its client noticed the close), once, as it is then broken
    //   and discarded, so at most `max_size`;
    // - nobody fails once service is back: no error in an op started after
    //   `ready + RECOVERY_BOUND`.
    assert!(
        t.op_errors <= config.max_size as usize,
        "{mode:?}: {} query errors",
        t.op_errors
    );
    let late: Vec<_> = ops
        .iter()
        .filter(|o| !o.is_ok() && o.started > ready + RECOVERY_BOUND)
        .collect();
    assert!(
        late.is_empty(),
        "{mode:?}: {} errors after service was back, e.g. {:?}",
        late.len(),
        late.first()
    );
    assert!(
        fx.gauge.peak() <= config.max_connecting as usize,
        "{mode:?}: {} connects at once",
        fx.gauge.peak()
    );
    assert!(s.created > u64::from(config.max_size), "replaced: {s:?}");
    assert_server_count_matches(&pg, &app, &fx.pool).await;
}

#[actix::test]
async fn restart_fast_under_load_recovers_within_a_second() {
    restart_under_load(StopMode::Fast).await;
}

#[actix::test]
async fn restart_immediate_under_load_recovers_within_a_second() {
    restart_under_load(StopMode::Immediate).await;
}

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
            max_open_for: ms(400),
        },
        ..PoolConfig::default()
    }
}

fn start_proxy(pg: &PgServer) -> FaultProxy {
    FaultProxy::start(([127, 0, 0, 1], pg.port()).into())
}

#[actix::test]
async fn added_latency_slows_queries_but_fails_nothing() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("latency");
    let config = PoolConfig {
        // Probe on every checkout: a slow link must not fail probes within their budget.
        checkout_bypass: Duration::ZERO,
        // A background probe that finds no idle connection opens one within this budget;
        // a connect is about five round trips (TCP, startup, SCRAM), 400 ms at this
        // latency. (Below that, see `background_probes_do_not_fail_a_slow_but_working_endpoint`.)
        probe_timeout: secs(1),
        ..proxy_config()
    };
    let mut fx = start_pool(via(&proxy, pg.config_for(&app)), config).await;
    // Warm: connections exist before the latency starts.
    let conns: Vec<_> = futures::future::join_all((0..2).map(|_| fx.pool.acquire())).await;
    drop(conns);

    let latency = ms(40);
    proxy.set_latency(latency);
    let load = select_load(&fx.pool, 2, QUERY_BUDGET);
    assert!(load.more_ok(20, secs(20)).await, "no progress with latency");
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    // Each op is a checkout probe and a query that prepares then executes: at least three
    // round trips, each crossing the proxy twice.
    let fastest = ops.iter().map(|o| o.ended - o.started).min().expect("ops");
    println!(
        "latency {latency:?} each way: {} ops, fastest {fastest:?}, slowest {:?}; {:?}",
        t.ok,
        t.longest,
        fx.pool.stats()
    );
    assert_eq!((t.all_acquire_errors(), t.op_errors), (0, 0), "{t:?}");
    assert!(fastest >= latency * 6, "latency applied: {fastest:?}");
    let s = fx.pool.stats();
    assert_eq!(
        (s.closed, s.connect_errors, s.timeouts),
        (0, 0, 0),
        "nothing judged dead: {s:?}"
    );
    assert_eq!(s.breaker, BreakerState::Closed);
    assert!(
        fx.all_events().is_empty(),
        "no breaker transition under mere latency"
    );

    proxy.set_latency(Duration::ZERO);
    let t = Instant::now();
    let conn = fx.pool.acquire().await.expect("acquire");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    drop(conn);
    assert!(t.elapsed() < latency * 2, "fast again: {:?}", t.elapsed());
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

/// A pool with no idle connection, on a link where a connect takes longer than
/// `probe_timeout` but well within `connect_timeout`: acquires work, so the endpoint is
/// up, and background probes must not open its breaker.
#[actix::test]
async fn background_probes_do_not_fail_a_slow_but_working_endpoint() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("slowlink");
    let latency = ms(50); // a connect: ~5 round trips, ~500 ms
    let config = PoolConfig {
        connect_timeout: secs(2),
        breaker: BreakerConfig {
            failure_threshold: 3,
            success_threshold: 1,
            open_for: ms(300),
            max_open_for: ms(300),
        },
        ..proxy_config() // probes every 200 ms with a 300 ms budget; min_idle 0
    };
    proxy.set_latency(latency);
    // What a connect takes through the slow link (a plain backend, no pool).
    let t = Instant::now();
    let plain = PostgresBackend::new()
        .connect(&via(&proxy, pg.config_for(&app)))
        .await
        .expect("connect through the slow link");
    let connect = t.elapsed();
    drop(plain);
    assert!(
        connect > PROBE_TIMEOUT && connect < config.connect_timeout,
        "the premise: {connect:?}"
    );
    // A fresh pool with min_idle 0 has no connection: each background probe opens one.
    let mut fx = start_pool(via(&proxy, pg.config_for(&app)), config.clone()).await;

    // Enough time for a dozen background probes.
    let opened = fx.next_to(BreakerState::Open, secs(3)).await;
    let s = fx.pool.stats();
    println!(
        "slow link ({latency:?} each way, a connect took {connect:?}): breaker {:?} after probes; {s:?}",
        opened.as_ref().map(|o| o.reason.clone())
    );
    assert!(
        opened.is_none(),
        "background probes opened the breaker of a working endpoint: {:?}; {s:?}",
        opened.map(|o| o.reason)
    );
    let conn = fx
        .pool
        .acquire()
        .await
        .expect("an acquire connects through the slow link");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    drop(conn);
    proxy.set_latency(Duration::ZERO);
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

/// No traffic, `min_idle` 1, a slow link: a background probe takes the idle connection out
/// of the pool for a round trip (30 ms here), and the maintenance refill must not count it
/// as missing and open another; nor may a probe that finds no idle connection while the
/// warm-up's connect is under way open a second one.
#[actix::test]
async fn a_probe_in_flight_does_not_make_the_refill_open_beyond_min_idle() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("refill");
    let config = PoolConfig {
        min_idle: 1,
        probe_interval: Some(ms(20)),
        maintenance_interval: ms(20),
        probe_timeout: secs(1),
        ..proxy_config()
    };
    let fx = start_pool(via(&proxy, pg.config_for(&app)), config).await;
    let warm = common::eventually(secs(10), || async {
        (fx.pool.stats().created >= 1).then_some(())
    })
    .await;
    assert!(warm.is_some(), "warmed up: {:?}", fx.pool.stats());
    proxy.set_latency(ms(15));
    // Two seconds of probes (about 70) and refills (100) with nothing else going on.
    let extra = common::eventually(secs(2), || async {
        let s = fx.pool.stats();
        (s.created > 1).then_some(s)
    })
    .await;
    assert!(
        extra.is_none(),
        "opened beyond min_idle with no traffic: {extra:?}"
    );
    proxy.set_latency(Duration::ZERO);
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

#[actix::test]
async fn reset_connections_are_replaced_with_at_most_one_error_each() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("reset");
    let config = proxy_config();
    let fx = start_pool(via(&proxy, pg.config_for(&app)), config.clone()).await;
    let load = select_load(&fx.pool, 4, QUERY_BUDGET);
    assert!(
        load.more_ok(100, secs(20)).await,
        "the load never got going"
    );
    let before = fx.pool.stats();
    let open = proxy.stats().open;
    assert_eq!(open, before.live, "the proxy carries every connection");

    proxy.reset_all();
    assert!(
        load.more_ok(300, secs(20)).await,
        "no progress after the resets: {:?}",
        fx.pool.stats()
    );
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    let s = fx.pool.stats();
    println!(
        "reset {open} connections under load: {} ok, {} query errors, {} acquire errors; {s:?}",
        t.ok,
        t.op_errors,
        t.all_acquire_errors()
    );
    assert_eq!(proxy.stats().resets, open as u64, "{:?}", proxy.stats());
    // A reset connection fails at most one query (the one in flight, or the next one if
    // it is handed out before its client noticed); then it is broken and closed.
    assert!(
        t.op_errors <= open,
        "{} query errors for {open} reset connections",
        t.op_errors
    );
    // New connects go through: nobody fails to acquire, and `open` breakages (fewer than
    // the failure threshold) do not open the breaker.
    assert_eq!(
        t.all_acquire_errors(),
        0,
        "{:?}",
        unexpected_acquire_errors(&ops, is_outage)
    );
    assert_eq!(s.breaker, BreakerState::Closed);
    assert!(
        s.created > before.created && s.closed >= open as u64,
        "the reset connections were replaced: {before:?} → {s:?}"
    );
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

#[actix::test]
async fn consecutive_resets_open_the_breaker_with_the_key_and_last_error() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("resets");
    const N: u32 = 3;
    let config = PoolConfig {
        probe_interval: None, // only acquires connect: the counts below are exact
        breaker: BreakerConfig {
            failure_threshold: N,
            success_threshold: 1,
            open_for: ms(300),
            max_open_for: ms(300),
        },
        ..proxy_config()
    };
    let mut fx = start_pool(via(&proxy, pg.config_for(&app)), config.clone()).await;

    proxy.set_reset(true);
    let t = Instant::now();
    let err = fx.pool.acquire().await.expect_err("every connect is reset");
    let took = t.elapsed();
    let Error::CircuitOpen {
        key,
        retry_in,
        last_error: Some(last),
    } = &err
    else {
        panic!("expected CircuitOpen with a last error, got {err:?}");
    };
    println!("{N} resets: {err} after {took:?}");
    assert_eq!(*key, fx.pool.key(), "the error names the pool");
    assert_eq!(last.kind(), BackendErrorKind::Connect, "{last}");
    assert!(
        last.to_string().to_lowercase().contains("reset")
            || last.to_string().to_lowercase().contains("closed"),
        "the last error says what happened: {last}"
    );
    assert!(*retry_in <= ms(300), "{retry_in:?}");
    assert!(took < config.acquire_timeout / 2, "failed fast: {took:?}");
    let s = fx.pool.stats();
    assert_eq!(s.connect_errors, u64::from(N), "{s:?}");
    assert_eq!(proxy.stats().resets, u64::from(N), "{:?}", proxy.stats());
    assert_eq!(s.breaker, BreakerState::Open);
    let opened = fx
        .next_to(BreakerState::Open, secs(1))
        .await
        .expect("a BreakerTransition to open");
    assert_eq!(
        (opened.key, opened.from),
        (fx.pool.key(), BreakerState::Closed)
    );

    // While open, acquires fail at once and the endpoint sees nothing.
    let t = Instant::now();
    let again = fx.pool.acquire().await.expect_err("open");
    assert!(matches!(again, Error::CircuitOpen { .. }), "{again:?}");
    assert!(t.elapsed() < ms(50), "at once: {:?}", t.elapsed());
    assert_eq!(
        proxy.stats().accepted,
        u64::from(N),
        "no connect while open"
    );

    // Healed link: the first trial after the open time closes it.
    proxy.set_reset(false);
    let conn = common::eventually(secs(5), || async { fx.pool.acquire().await.ok() })
        .await
        .expect("served again");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    drop(conn);
    assert_eq!(fx.pool.stats().breaker, BreakerState::Closed);
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

#[actix::test]
async fn a_blackholed_endpoint_is_detected_within_probe_interval_plus_timeout() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("blackhole");
    let config = PoolConfig {
        min_idle: 1,
        // One failed probe is enough to call the endpoint down: what is measured here is
        // how soon the background probe notices, not how many it takes.
        breaker: BreakerConfig {
            failure_threshold: 1,
            success_threshold: 1,
            open_for: ms(200),
            max_open_for: ms(400),
        },
        ..proxy_config()
    };
    let mut fx = start_pool(via(&proxy, pg.config_for(&app)), config).await;
    // Healthy to begin with: warmed to min_idle, no connect in flight, breaker closed, the
    // health check passing. (Polled: a background probe that runs before the warm-up
    // connect lands opens a connection of its own, within the probe budget; one still in
    // flight when the blackhole starts would trip the breaker instead of the probe of the
    // idle connection measured here; see
    // `background_probes_do_not_fail_a_slow_but_working_endpoint`.)
    let healthy = common::eventually(secs(10), || async {
        let s = fx.pool.stats();
        let ok = s.idle >= 1
            && s.connecting == 0
            && s.breaker == BreakerState::Closed
            && fx.sup.health().await.ok()?.status == HealthStatus::Healthy;
        ok.then_some(())
    })
    .await;
    assert!(healthy.is_some(), "healthy at first: {:?}", fx.pool.stats());
    let before = fx.all_events().len();

    let blackholed = Instant::now();
    proxy.set_blackhole(true);
    let opened = fx
        .next_to(BreakerState::Open, secs(5))
        .await
        .expect("the blackhole is noticed");
    assert!(
        opened.reason.contains("probe timed out"),
        "noticed by a probe: {}",
        opened.reason
    );
    assert!(
        opened.at >= blackholed,
        "opened before the blackhole: {:?}",
        &fx.seen[before..]
    );
    let detected = opened.at - blackholed;
    println!(
        "blackhole detected after {detected:?} (probe interval {PROBE_INTERVAL:?} + timeout \
         {PROBE_TIMEOUT:?}): {}",
        opened.reason
    );
    assert!(
        detected <= PROBE_INTERVAL + PROBE_TIMEOUT + SLACK,
        "detected after {detected:?}"
    );
    assert_eq!(opened.key, fx.pool.key());
    // The pool's health says so, and acquires fail at once with the reason.
    let health = fx.sup.health().await.unwrap();
    assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");
    assert_eq!(health.unhealthy[0].0, fx.pool.key());
    let t = Instant::now();
    match fx.pool.acquire().await {
        Err(Error::CircuitOpen {
            last_error: Some(e),
            ..
        }) => assert_eq!(e.kind(), BackendErrorKind::Timeout, "{e}"),
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert!(t.elapsed() < ms(50), "at once: {:?}", t.elapsed());

    // Back: the background probe heals the pool with no traffic.
    proxy.set_blackhole(false);
    let closed = fx.next_to(BreakerState::Closed, secs(5)).await;
    assert!(closed.is_some(), "healed: {:?}", fx.pool.stats());
    let conn = fx.pool.acquire().await.expect("served again");
    conn.query_one("SELECT 1", &[]).await.expect("query");
    drop(conn);
    assert_server_count_matches(pg, &app, &fx.pool).await;
    // Client side too: the proxy carries exactly the pool's connections.
    let open = common::eventually(secs(5), || async {
        let open = proxy.stats().open;
        (open == fx.pool.stats().live).then_some(open)
    })
    .await;
    assert!(
        open.is_some(),
        "proxy {:?} vs pool {:?}",
        proxy.stats(),
        fx.pool.stats()
    );
}

#[actix::test]
async fn a_byte_limited_half_open_link_is_reclaimed_by_timeouts() {
    let Some(pg) = PgServer::shared() else { return };
    let proxy = start_proxy(pg);
    let app = PgServer::unique_app("halfopen");

    // What a connection costs on the wire: the startup, and one `SELECT 1`.
    let backend = PostgresBackend::new();
    let before = proxy.stats().forwarded;
    let c = backend
        .connect(&via(&proxy, pg.config_for(&app)))
        .await
        .expect("connect through the proxy");
    let startup = proxy.stats().forwarded - before;
    let before = proxy.stats().forwarded;
    c.query_one("SELECT 1", &[]).await.unwrap();
    let query = proxy.stats().forwarded - before;
    drop(c);
    // Each new connection works for two or three queries, then its link stalls: the
    // sockets stay open, nothing more gets through, either way.
    proxy.set_byte_limit(Some(startup + query * 5 / 2));

    let config = PoolConfig {
        max_size: 3,
        ..proxy_config()
    };
    let fx = start_pool(via(&proxy, pg.config_for(&app)), config.clone()).await;
    let budget = ms(400);
    let load = select_load(&fx.pool, 3, budget);
    let stalled = common::eventually(secs(30), || async {
        (proxy.stats().stalled >= 6).then_some(())
    })
    .await;
    assert!(
        stalled.is_some(),
        "links stalled: {:?}; {:?}",
        proxy.stats(),
        fx.pool.stats()
    );
    let ops = load.finish(secs(10)).await;
    let t = Tally::of(&ops);
    println!(
        "half-open links (startup {startup} B, SELECT 1 {query} B): {} ok, {} query errors, {} \
         acquire errors, longest op {:?}; {:?}; {:?}",
        t.ok,
        t.op_errors,
        t.all_acquire_errors(),
        t.longest,
        proxy.stats(),
        fx.pool.stats()
    );
    // No hang: a stalled query ends at the caller's budget, a stalled checkout probe at
    // the probe timeout, a stalled connect at the connect timeout.
    assert!(
        t.longest <= config.acquire_timeout + budget + SLACK,
        "an op took {:?}",
        t.longest
    );
    assert!(t.op_errors > 0, "some queries hit a stalled link");

    // Reclaimed: nothing checked out, and every connection the pool let go of is closed
    // for real, at both ends.
    proxy.set_byte_limit(None);
    assert_server_count_matches(pg, &app, &fx.pool).await;
    let open = common::eventually(secs(5), || async {
        let open = proxy.stats().open;
        (open == fx.pool.stats().live).then_some(open)
    })
    .await;
    assert!(
        open.is_some(),
        "proxy {:?} vs pool {:?}",
        proxy.stats(),
        fx.pool.stats()
    );
    // And the pool serves at full size again.
    let conns = common::eventually(secs(5), || async {
        let all = futures::future::join_all((0..config.max_size).map(|_| fx.pool.acquire())).await;
        all.into_iter().collect::<Result<Vec<_>, _>>().ok()
    })
    .await
    .expect("max_size connections at once");
    for c in &conns {
        c.query_one("SELECT 1", &[]).await.expect("query");
    }
    drop(conns);
    assert_server_count_matches(pg, &app, &fx.pool).await;
}

// ---------------------------------------------------------------------------------------
// Reconnect storm
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn a_reconnect_storm_of_1000_waiters_respects_max_connecting_and_max_connections() {
    const WAITERS: usize = 1000;
    const MAX_CONNECTIONS: u32 = 30;
    let Some(pg) = PgServer::start_with(PgOptions {
        max_connections: Some(MAX_CONNECTIONS),
        ..PgOptions::default()
    }) else {
        return;
    };
    let pg = Arc::new(pg);
    let app = PgServer::unique_app("storm");
    let config = PoolConfig {
        min_idle: 0,
        max_size: 20,
        max_connecting: 4,
        max_waiters: 1024,
        acquire_timeout: secs(20),
        connect_timeout: secs(2),
        probe_interval: None,
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        backoff_initial: ms(20),
        backoff_max: ms(200),
        // Out of the way: an open breaker fails waiters at once, so none would be left
        // queued when the server comes back. What is tested here is the connect limit.
        breaker: BreakerConfig {
            failure_threshold: u32::MAX,
            ..BreakerConfig::default()
        },
        ..PoolConfig::default()
    };
    let fx = start_pool(pg.config_for(&app), config.clone()).await;
    {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.stop_with(StopMode::Immediate))
            .await
            .expect("stop");
    }

    // Server-side backends of the pool, sampled through the storm.
    let peak_backends = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));

    let down = Instant::now();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let pool = fx.pool.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let r = match pool.acquire().await {
                    Ok(conn) => conn
                        .query_one("SELECT 1", &[])
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (r, t.elapsed())
            })
        })
        .collect();
    // Everyone queued, and the pool has been knocking for a while.
    let queued = common::eventually(secs(10), || async {
        let s = fx.pool.stats();
        (s.waiters + s.connecting + s.in_use >= WAITERS - config.max_size as usize
            && s.connect_errors >= 20)
            .then_some(())
    })
    .await;
    assert!(queued.is_some(), "queued: {:?}", fx.pool.stats());
    let queued_at = fx.pool.stats();

    // The server comes back: every waiter rushes.
    {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.start_again())
            .await
            .expect("start");
    }
    let up = Instant::now();
    let sampler = {
        let (pg, app) = (Arc::clone(&pg), app.clone());
        let (peak, sampling) = (Arc::clone(&peak_backends), Arc::clone(&sampling));
        tokio::spawn(async move {
            let admin = pg.superuser_client().await;
            while sampling.load(Ordering::Relaxed) {
                let n = common::pg_server::count_backends(&admin, &app).await;
                peak.fetch_max(n as usize, Ordering::Relaxed);
                tokio::time::sleep(ms(5)).await;
            }
        })
    };
    let mut served = 0;
    let mut errors = Vec::new();
    let mut longest = Duration::ZERO;
    for w in waiters {
        let (r, took) = timeout(config.acquire_timeout + secs(5), w)
            .await
            .expect("a waiter hung")
            .expect("a waiter panicked");
        longest = longest.max(took);
        match r {
            Ok(()) => served += 1,
            Err(e) => errors.push(e),
        }
    }
    let all_done = up.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let peak_backends = peak_backends.load(Ordering::Relaxed);
    let s = fx.pool.stats();
    println!(
        "storm: {WAITERS} waiters, down for {:?} ({} waiting, {} connect errors when it came \
         back); all done {all_done:?} after it was up; served {served}, errors {}; peak \
         connects {} (max_connecting {}), {} connect attempts; peak server backends \
         {peak_backends} (max_connections {MAX_CONNECTIONS}); {s:?}",
        up - down,
        queued_at.waiters,
        queued_at.connect_errors,
        errors.len(),
        fx.gauge.peak(),
        config.max_connecting,
        fx.gauge.attempts()
    );
    assert!(
        fx.gauge.peak() <= config.max_connecting as usize,
        "{} connects at once",
        fx.gauge.peak()
    );
    // The outage was far shorter than the acquire timeout: everyone is served. (An error
    // would have to be bounded by that timeout; none is expected.)
    assert!(
        errors.is_empty(),
        "{} waiters failed, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(served, WAITERS);
    assert!(longest <= config.acquire_timeout + SLACK, "{longest:?}");
    // No churn: the pool opened at most max_size connections and the server never held
    // more (a small max_connections leaves room for them and nothing else), so it never
    // ran out: no "too many clients" in its log.
    assert!(
        peak_backends <= config.max_size as usize,
        "{peak_backends} backends at once"
    );
    assert!(s.created <= u64::from(config.max_size), "{s:?}");
    let log = pg.log();
    assert!(
        !log.contains("too many clients") && !log.contains("53300"),
        "max_connections was hit:\n{}",
        log.lines()
            .filter(|l| l.contains("too many"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_server_count_matches(&pg, &app, &fx.pool).await;
}
