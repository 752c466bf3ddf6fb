//! Faults under load: (a) a cancellation fuzz over every combination of ok / error / slow /
//! never-returning connect, probe and reset, with acquirers cut and aborted at random;
//! (b) 25 000 tasks on 3 connections; (c) admission control with `max_waiters`; (d) a
//! reconnect storm bounded by `max_connecting`.

mod support_pool;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use poolwarden::backends::sim::{SimBackend, SimBehavior, SimConnection};
use poolwarden::{
    Backend, BackendError, BackendErrorKind, BreakerConfig, BreakerState, ConnectionConfig, Error,
    PoolConfig, SupervisorConfig, SupervisorHandle,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support_pool::*;
use tokio::time::{sleep, timeout, Instant};

// ----- (a) cancellation fuzz -----------------------------------------------------------------

/// What one kind of backend operation does while a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Ok,
    /// Fails: an armed sim connect failure, or an injected probe / reset error.
    Error,
    /// Takes 5-150ms first (some past the connect and probe timeouts of 100ms).
    Slow,
    /// Never returns: the sim's stall hooks (a dropped stalled probe or reset kills its
    /// connection, a stalled connect counts as in flight until dropped).
    Never,
}

const FAULTS: [Fault; 4] = [Fault::Ok, Fault::Error, Fault::Slow, Fault::Never];

#[derive(Debug, Clone, Copy)]
struct Case {
    connect: Fault,
    probe: Fault,
    reset: Fault,
}

struct Injector {
    case: Case,
    armed: bool,
    rng: SmallRng,
}

/// The sim backend with a fault applied to half of the connects, probes and resets, per
/// the case. Also tracks the most connections ever open on the server at once.
#[derive(Clone)]
struct FaultyBackend {
    sim: SimBackend,
    injector: Arc<Mutex<Injector>>,
    peak_open: Arc<AtomicUsize>,
}

enum Op {
    Connect,
    Probe,
    Reset,
}

impl FaultyBackend {
    fn new(case: Case, seed: u64) -> Self {
        Self {
            sim: SimBackend::new(seed),
            injector: Arc::new(Mutex::new(Injector {
                case,
                armed: true,
                rng: SmallRng::seed_from_u64(seed),
            })),
            peak_open: Arc::default(),
        }
    }

    fn disarm(&self) {
        self.injector.lock().armed = false;
    }

    /// The fault for one operation (and how slow, if slow).
    fn draw(&self, op: Op) -> (Fault, Duration) {
        let mut inj = self.injector.lock();
        let fault = match op {
            Op::Connect => inj.case.connect,
            Op::Probe => inj.case.probe,
            Op::Reset => inj.case.reset,
        };
        if !inj.armed || fault == Fault::Ok || inj.rng.random_bool(0.5) {
            return (Fault::Ok, Duration::ZERO);
        }
        let slow = ms(inj.rng.random_range(5..=150));
        (fault, slow)
    }

    fn injected(what: &str) -> BackendError {
        BackendError::new(BackendErrorKind::Query, format!("injected {what} failure"))
    }
}

impl Backend for FaultyBackend {
    type Connection = SimConnection;

    async fn connect(&self, config: &ConnectionConfig) -> Result<SimConnection, BackendError> {
        let server = self.sim.server(&config.primary_host());
        // Hooks armed here are taken by the sim connect below in the same poll.
        match self.draw(Op::Connect) {
            (Fault::Ok, _) => {}
            (Fault::Error, _) => server.fail_next_connects(1),
            (Fault::Slow, d) => sleep(d).await,
            (Fault::Never, _) => server.stall_next_connects(1),
        }
        let conn = self.sim.connect(config).await?;
        self.peak_open
            .fetch_max(server.open_connections(), Ordering::Relaxed);
        Ok(conn)
    }

    async fn probe(&self, conn: &mut SimConnection) -> Result<(), BackendError> {
        match self.draw(Op::Probe) {
            (Fault::Ok, _) => {}
            (Fault::Error, _) => return Err(Self::injected("probe")),
            (Fault::Slow, d) => sleep(d).await,
            (Fault::Never, _) => conn.server().stall_next_probes(1),
        }
        self.sim.probe(conn).await
    }

    fn needs_reset(&self, conn: &SimConnection) -> bool {
        self.sim.needs_reset(conn)
    }

    async fn reset(&self, conn: &mut SimConnection) -> Result<(), BackendError> {
        match self.draw(Op::Reset) {
            (Fault::Ok, _) => {}
            (Fault::Error, _) => return Err(Self::injected("reset")),
            (Fault::Slow, d) => sleep(d).await,
            (Fault::Never, _) => conn.server().stall_next_resets(1),
        }
        self.sim.reset(conn).await
    }

    fn is_broken(&self, conn: &mut SimConnection) -> bool {
        self.sim.is_broken(conn)
    }
}

const MAX_SIZE: u32 = 3;
const OVERFLOW: u32 = 1;
const CAPACITY: usize = (MAX_SIZE + OVERFLOW) as usize;

/// Every moving part on, with short timeouts: probes on checkout, resets, refills to
/// `min_idle`, background probes, a breaker that trips and heals quickly, leak reporting.
fn fuzz_config() -> PoolConfig {
    PoolConfig {
        min_idle: 1,
        max_size: MAX_SIZE,
        max_overflow: OVERFLOW,
        acquire_timeout: ms(400),
        connect_timeout: ms(100),
        probe_timeout: ms(100),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        test_on_checkout: true,
        checkout_bypass: Duration::ZERO,
        reset_on_return: true,
        backoff_initial: ms(10),
        backoff_max: ms(40),
        maintenance_interval: ms(100),
        probe_interval: Some(ms(200)),
        max_connecting: 2,
        breaker: BreakerConfig {
            failure_threshold: 4,
            success_threshold: 1,
            open_for: ms(50),
            grow_after: std::time::Duration::ZERO,
            max_open_for: ms(200),
        },
        // Nobody holds a connection for more than 40ms: no report is a true one.
        leak_threshold: Some(ms(150)),
        ..PoolConfig::default()
    }
}

const ACQUIRERS: u64 = 10;
const ROUNDS: usize = 8;

/// Acquire, maybe open a transaction (so the return resets), hold, return or discard; each
/// acquire cut by a random timeout.
async fn acquirer(pool: poolwarden::PoolHandle<FaultyBackend>, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..ROUNDS {
        let cut = ms(rng.random_range(0..=500));
        let hold = ms(rng.random_range(0..=40));
        let begin = rng.random_bool(0.6);
        let discard = rng.random_bool(0.1);
        match timeout(cut, pool.acquire()).await {
            Ok(Ok(mut conn)) => {
                if begin {
                    let _ = conn.query("BEGIN").await;
                }
                sleep(hold).await;
                if discard {
                    conn.discard();
                }
            }
            _ => sleep(ms(rng.random_range(1..=20))).await,
        }
    }
}

async fn run_case(case: Case, seed: u64) {
    let backend = FaultyBackend::new(case, seed);
    let connection = ConnectionConfig::sim("fuzz");
    let server = backend.sim.server(&connection.primary_host());
    let sup = SupervisorHandle::start(
        backend.clone(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    let pool = sup.pool_with(connection, fuzz_config()).await.unwrap();

    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let tasks: Vec<_> = (0..ACQUIRERS)
        .map(|t| tokio::spawn(acquirer(pool.clone(), seed * 1_000 + t)))
        .collect();
    for _ in 0..4 {
        sleep(ms(rng.random_range(0..=300))).await;
        tasks[rng.random_range(0..tasks.len())].abort();
    }
    let joined = timeout(secs(60), futures::future::join_all(tasks))
        .await
        .unwrap_or_else(|_| panic!("{case:?}: an acquirer hung"));
    for r in joined {
        if let Err(e) = r {
            assert!(e.is_cancelled(), "{case:?}: an acquirer panicked: {e}");
        }
    }

    // Faults off: spawned resets finish or time out, background probes heal the breaker.
    backend.disarm();
    settle_for(secs(1)).await;
    let s = pool.stats();
    let peak = backend.peak_open.load(Ordering::Relaxed);
    assert!(
        peak <= CAPACITY,
        "{case:?}: {peak} connections open at once, max {CAPACITY}"
    );
    assert_eq!(
        (s.in_use, s.waiters, s.connecting),
        (0, 0, 0),
        "{case:?}: {s:?}"
    );
    assert_eq!(server.open_connections(), s.live, "{case:?}: {s:?}");
    assert_eq!(s.live, s.idle, "{case:?}: {s:?}");
    assert_eq!(server.in_flight_connects(), 0, "{case:?}");
    assert_eq!(s.breaker, BreakerState::Closed, "{case:?}: healed: {s:?}");
    assert_eq!(s.leaks_reported, 0, "{case:?}: false leak reports: {s:?}");

    // Still serves: exactly max_size + max_overflow at once, no slot lost or gained.
    let mut held = Vec::new();
    for i in 0..CAPACITY {
        match pool.acquire_timeout(secs(1)).await {
            Ok(c) => held.push(c),
            Err(e) => panic!("{case:?}: slot {i} of {CAPACITY}: {e}"),
        }
    }
    let err = pool.acquire_timeout(ms(50)).await.unwrap_err();
    assert!(
        is_wait_timeout(&err),
        "{case:?}: more than {CAPACITY} slots: {err:?}"
    );
    assert_eq!(server.open_connections(), CAPACITY, "{case:?}");
    drop(held);
    settle().await;
    let s = pool.stats();
    assert!(
        s.live <= MAX_SIZE as usize,
        "{case:?}: overflow kept: {s:?}"
    );
    assert_eq!(server.open_connections(), s.live, "{case:?}: {s:?}");
    assert!(backend.peak_open.load(Ordering::Relaxed) <= CAPACITY);

    sup.shutdown(secs(1)).await.unwrap();
}

#[actix::test]
async fn cancellation_fuzz_over_every_connect_probe_and_reset_fault() {
    tokio::time::pause();
    let mut seed = 1;
    for connect in FAULTS {
        for probe in FAULTS {
            for reset in FAULTS {
                run_case(
                    Case {
                        connect,
                        probe,
                        reset,
                    },
                    seed,
                )
                .await;
                seed += 1;
            }
        }
    }
    assert_eq!(seed, 65, "4 x 4 x 4 cases");
}

// ----- (b) many tasks, few connections -------------------------------------------------------

#[actix::test]
async fn twenty_five_thousand_tasks_on_three_connections_all_complete() {
    const TASKS: usize = 25_000;
    let f = start(
        "many",
        PoolConfig {
            max_size: 3,
            max_waiters: TASKS,
            acquire_timeout: secs(60),
            ..quiet_config()
        },
        SimBehavior {
            query_latency: ms(1),
            ..SimBehavior::default()
        },
    )
    .await;
    let t = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                conn.query("SELECT 1").await.expect("query");
                Ok::<_, Error>(())
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        task.await.unwrap().expect("every task is served");
        done += 1;
    }
    let took = t.elapsed();
    assert_eq!(done, TASKS);
    let s = f.pool.stats();
    assert_eq!((s.served, s.timeouts), (TASKS as u64, 0), "{s:?}");
    assert_eq!(f.server.connects(), 3, "never more than 3 connections");
    assert_eq!(f.server.queries(), TASKS as u64);
    // 8 334 one-millisecond queries per connection: all three were busy all along.
    // 8 334 one-millisecond queries per connection. A paused-clock sleep ends on the next
    // millisecond tick, so a 1ms query takes 1-2ms: with all three connections busy all
    // along, between 8.3s and 16.7s (one connection alone would take 25s at least).
    let serial = ms(TASKS.div_ceil(3) as u64);
    assert!(
        took >= serial && took <= serial * 2 + ms(10),
        "took {took:?}, {serial:?} to {:?} with 3 connections busy",
        serial * 2
    );
    f.assert_quiescent();
}

// ----- (c) admission control -----------------------------------------------------------------

#[actix::test]
async fn max_waiters_bounds_the_queue_and_the_rest_are_refused_at_once() {
    const MAX_WAITERS: usize = 5;
    let f = start(
        "admission",
        PoolConfig {
            max_size: 1,
            max_waiters: MAX_WAITERS,
            acquire_timeout: secs(10),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let key = f.pool.key();
    let holder = f.pool.acquire().await.unwrap();

    // The queue length, sampled every millisecond.
    let peak_queue = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (pool, peak) = (f.pool.clone(), Arc::clone(&peak_queue));
        tokio::spawn(async move {
            loop {
                peak.fetch_max(pool.stats().waiters, Ordering::Relaxed);
                sleep(ms(1)).await;
            }
        })
    };
    let arrive = |pool: poolwarden::PoolHandle<SimBackend>| {
        tokio::spawn(async move {
            let t = Instant::now();
            let r = pool.acquire().await;
            let answered = t.elapsed();
            if r.is_ok() {
                sleep(ms(20)).await; // hold it a little
            }
            (r.map(drop), answered)
        })
    };

    // 50 at once: 5 queue, 45 are refused without waiting.
    let first: Vec<_> = (0..50).map(|_| arrive(f.pool.clone())).collect();
    settle().await;
    assert_eq!(f.pool.stats().waiters, MAX_WAITERS);
    // The holder returns; more arrive while the queue drains (each served one holds
    // 20ms), one every 3ms: the queue keeps filling up to its bound, never past it.
    drop(holder);
    let mut second = Vec::new();
    for _ in 0..60 {
        second.push(arrive(f.pool.clone()));
        sleep(ms(3)).await;
    }
    let (mut served, mut refused) = (0, 0);
    for task in first.into_iter().chain(second) {
        let (r, answered) = task.await.unwrap();
        match r {
            Ok(()) => served += 1,
            Err(Error::PoolSaturated { key: k, waiters }) => {
                assert_eq!((k, waiters), (key, MAX_WAITERS));
                assert_eq!(answered, Duration::ZERO, "refused at once");
                refused += 1;
            }
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    sampler.abort();
    let peak = peak_queue.load(Ordering::Relaxed);
    assert_eq!(peak, MAX_WAITERS, "the queue never exceeds max_waiters");
    assert_eq!(served + refused, 110);
    assert!(
        served >= MAX_WAITERS + 5,
        "the queue kept being served: {served}"
    );
    assert!(refused >= 45, "{refused}");
    let s = f.pool.stats();
    assert_eq!((s.timeouts, s.waiters), (0, 0), "{s:?}");
    assert_eq!(s.served, served as u64 + 1);
    f.assert_quiescent();
}

#[actix::test]
async fn saturation_through_the_supervisor_is_refused_at_once_too() {
    let f = start(
        "admissionmsg",
        PoolConfig {
            max_size: 1,
            max_waiters: 1,
            acquire_timeout: secs(10),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let holder = f.pool.acquire().await.unwrap();
    let queued = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(drop) })
    };
    settle().await;
    let t = Instant::now();
    let err = f.sup.acquire(f.pool.key()).await.unwrap_err();
    assert!(
        matches!(err, Error::PoolSaturated { waiters: 1, .. }),
        "{err:?}"
    );
    assert_eq!(t.elapsed(), Duration::ZERO);
    drop(holder);
    queued.await.unwrap().expect("the queued one is served");
    f.assert_quiescent();
}

// ----- (d) reconnect storm -------------------------------------------------------------------

#[actix::test]
async fn a_reconnect_storm_never_exceeds_max_connecting_and_every_waiter_is_served() {
    const WAITERS: usize = 1_000;
    const MAX_CONNECTING: usize = 4;
    let f = start(
        "storm",
        PoolConfig {
            min_idle: 5,
            max_size: 50,
            max_waiters: 2 * WAITERS,
            acquire_timeout: secs(120),
            connect_timeout: secs(1),
            backoff_initial: ms(20),
            backoff_max: ms(500),
            maintenance_interval: ms(100),
            max_connecting: MAX_CONNECTING as u32,
            ..quiet_config()
        },
        SimBehavior {
            connect_latency: ms(20),
            query_latency: ms(5),
            ..SimBehavior::default()
        },
    )
    .await;
    assert!(eventually(secs(1), || f.pool.stats().idle == 5).await);

    f.server.go_down();
    let tasks: Vec<_> = (0..WAITERS)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                conn.query("SELECT 1").await.expect("query");
                Ok::<_, Error>(())
            })
        })
        .collect();
    // Five seconds of outage: everyone waits, the slot holders retry their connects.
    settle_for(secs(5)).await;
    let s = f.pool.stats();
    assert_eq!(s.served, 0, "{s:?}");
    assert!(s.waiters >= WAITERS - 50, "{s:?}");
    assert!(s.connect_errors > 100, "they kept retrying: {s:?}");
    assert!(f.server.in_flight_connects() <= MAX_CONNECTING);

    f.server.come_up();
    let results = timeout(secs(60), futures::future::join_all(tasks))
        .await
        .expect("every waiter is served after the server comes back");
    for r in results {
        r.unwrap().expect("served");
    }
    let peak = f.server.peak_in_flight_connects();
    assert!(
        peak <= MAX_CONNECTING,
        "{peak} connects at once, max_connecting {MAX_CONNECTING}"
    );
    assert_eq!(
        peak, MAX_CONNECTING,
        "the storm did press against the limit"
    );
    let s = f.pool.stats();
    assert_eq!((s.served, s.timeouts), (WAITERS as u64, 0), "{s:?}");
    assert!(s.live <= 50);
    f.assert_quiescent();
}
