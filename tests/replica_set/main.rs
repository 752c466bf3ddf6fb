//! Replica sets on the simulated backend: read strategies (round-robin, least-loaded,
//! random, per-request override), ejection of dead, breaker-open and lagging replicas,
//! fallback to the primary, the retry-once rule, read-your-writes, failover with role-change
//! events, membership changes at run time, and shutdown.
//!
//! Every test runs on `#[actix::test]` with paused tokio time: a loop of reads whose
//! awaits are all ready never moves the clock, so no topology round runs in the middle of
//! a count unless the test sleeps for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use poolwarden::backends::sim::{SimBackend, SimBehavior, SimRole, SimServer};
use poolwarden::messages::{RoleChanged, Topology};
use poolwarden::{
    BackendErrorKind, BreakerConfig, BreakerState, CausalityToken, ConnectionConfig, Error,
    HealthStatus, MemberInfo, Phase, PoolConfig, PoolKey, ReadOptions, ReplicaSetConfig,
    ReplicaSetHandle, Role, Strategy, SupervisorConfig, SupervisorHandle,
};
use tokio::time::{sleep, Instant};

type Sim = SimBackend;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How often the set reads its members' status in these tests.
const INTERVAL: Duration = Duration::from_millis(200);
/// The budget of one topology probe (the member pools' `probe_timeout`).
const PROBE: Duration = Duration::from_millis(100);
/// The member pools' acquire timeout.
const ACQUIRE: Duration = Duration::from_secs(2);

/// Member pools that do nothing on their own: no warm-up, no background probes (the
/// topology probe is what these tests exercise), no checkout test, a breaker that opens
/// after 5 failures for 200 ms (at most 1 s).
fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        acquire_timeout: ACQUIRE,
        connect_timeout: ms(500),
        probe_timeout: PROBE,
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        test_on_checkout: false,
        probe_interval: None,
        max_connecting: 16,
        breaker: BreakerConfig {
            failure_threshold: 5,
            success_threshold: 2,
            open_for: ms(200),
            max_open_for: ms(1000),
        },
        ..PoolConfig::default()
    }
}

/// A started set: `servers[0]` is the primary, `servers[1..]` the replicas, in the order
/// of `keys`.
struct Fx {
    sim: Sim,
    sup: SupervisorHandle<Sim>,
    set: ReplicaSetHandle<Sim>,
    config: ReplicaSetConfig,
    servers: Vec<SimServer>,
    keys: Vec<PoolKey>,
}

/// Pause time, create a primary and `replicas` replicas replaying from it, start a
/// supervisor and the set `name` (`tweak` adjusts its config), and let the first topology
/// round run.
async fn start_set(name: &str, replicas: usize, tweak: impl FnOnce(&mut ReplicaSetConfig)) -> Fx {
    tokio::time::pause();
    let sim = Sim::new(7);
    let primary = ConnectionConfig::sim(format!("{name}-primary"));
    let replica_configs: Vec<_> = (1..=replicas)
        .map(|i| ConnectionConfig::sim(format!("{name}-r{i}")))
        .collect();
    let mut servers = vec![sim.server(&primary.primary_host())];
    for r in &replica_configs {
        let s = sim.server(&r.primary_host());
        s.replicate_from(&servers[0]);
        servers.push(s);
    }
    let mut keys = vec![PoolKey::of(&primary)];
    keys.extend(replica_configs.iter().map(PoolKey::of));
    let mut config = ReplicaSetConfig::new(name, primary, replica_configs);
    config.topology_interval = INTERVAL;
    config.pool = Some(pool_config());
    tweak(&mut config);
    let sup = SupervisorHandle::start(
        sim.clone(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let set = sup.replica_set(config.clone()).await.expect("set starts");
    settle().await;
    Fx {
        sim,
        sup,
        set,
        config,
        servers,
        keys,
    }
}

/// Let every ready task run (1 ms of paused time).
async fn settle() {
    sleep(ms(1)).await;
}

/// Poll `cond` every simulated millisecond for at most `limit`; the time it took.
async fn within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        sleep(ms(1)).await;
    }
}

impl Fx {
    fn primary(&self) -> &SimServer {
        &self.servers[0]
    }

    /// Position of `key` in `keys`.
    fn index(&self, key: PoolKey) -> usize {
        self.keys
            .iter()
            .position(|k| *k == key)
            .unwrap_or_else(|| panic!("{key} is not a member of the fixture"))
    }

    fn info(&self, i: usize) -> MemberInfo {
        self.set
            .topology()
            .into_iter()
            .find(|m| m.key == self.keys[i])
            .unwrap_or_else(|| panic!("member {i} is not in the topology"))
    }

    fn usable(&self, i: usize) -> bool {
        self.info(i).usable
    }

    fn queries(&self) -> Vec<u64> {
        self.servers.iter().map(SimServer::queries).collect()
    }

    /// `n` reads one after the other, each running `SELECT 1` and returning its
    /// connection; how many each member (in `keys` order) served.
    async fn reads(&self, n: usize, options: ReadOptions) -> Vec<usize> {
        let mut counts = vec![0; self.keys.len()];
        for _ in 0..n {
            let mut conn = self.set.read_with(options).await.expect("read");
            conn.query("SELECT 1").await.expect("query");
            counts[self.index(conn.key())] += 1;
        }
        counts
    }

    /// One write: an INSERT on the primary, answering the causality token.
    async fn write(&self) -> (PoolKey, CausalityToken) {
        let mut conn = self.set.write().await.expect("write acquire");
        conn.query("INSERT INTO t VALUES (1)")
            .await
            .expect("insert");
        let key = conn.key();
        let token = self
            .set
            .release_write(conn)
            .await
            .expect("release_write")
            .expect("the sim has write positions");
        (key, token)
    }
}

fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

fn default_read() -> ReadOptions {
    ReadOptions::default()
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn round_robin_spreads_exactly_and_never_touches_the_primary() {
    let fx = start_set("rr", 3, |_| {}).await;
    let before = fx.queries();
    let counts = fx.reads(300, default_read()).await;
    assert_eq!(counts, vec![0, 100, 100, 100]);
    // The servers agree: each replica ran exactly its 100 queries, the primary none.
    assert_eq!(delta(&fx.queries(), &before), vec![0, 100, 100, 100]);
    let reads: Vec<u64> = (0..4).map(|i| fx.info(i).reads).collect();
    assert_eq!(reads, vec![0, 100, 100, 100]);
}

#[actix::test]
async fn least_loaded_favours_the_idle_member_and_rotates_ties() {
    let fx = start_set("ll", 3, |c| c.strategy = Strategy::LeastLoaded).await;
    // All idle: ties rotate, so the first two reads land on r1 and r2. Hold them.
    let held_r1 = fx.set.read().await.unwrap();
    let held_r2 = fx.set.read().await.unwrap();
    assert_eq!((fx.index(held_r1.key()), fx.index(held_r2.key())), (1, 2));
    let third = fx.set.read().await.unwrap();
    assert_eq!(fx.index(third.key()), 3, "r3 was the only idle one");
    drop(third);
    // r1 and r2 carry one checkout each, r3 none: every read goes to r3.
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 0, 0, 20]);
    assert_eq!(fx.info(1).in_use, 1);
    assert_eq!(fx.info(2).in_use, 1);

    // r1 comes back: r1 and r3 tie at zero and alternate exactly.
    drop(held_r1);
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 10, 0, 10]);
    drop(held_r2);
    assert_eq!(fx.reads(30, default_read()).await, vec![0, 10, 10, 10]);
}

#[actix::test]
async fn random_spreads_within_tolerance() {
    let fx = start_set("random", 3, |c| c.strategy = Strategy::Random).await;
    let before = fx.queries();
    let counts = fx.reads(3000, default_read()).await;
    assert_eq!(counts[0], 0, "the primary serves no reads: {counts:?}");
    // Expected 1000 each, standard deviation about 26: 150 is almost 6 of them.
    for (i, n) in counts.iter().enumerate().skip(1) {
        assert!((850..=1150).contains(n), "replica {i}: {counts:?}");
    }
    // Not round-robin in disguise: some read repeated the member of the read before.
    let mut last = None;
    let mut repeats = 0;
    for _ in 0..60 {
        let conn = fx.set.read().await.unwrap();
        repeats += usize::from(last == Some(conn.key()));
        last = Some(conn.key());
    }
    assert!(repeats > 0, "60 random picks among 3 never repeated");
    let d = delta(&fx.queries(), &before);
    assert_eq!(d[1..].iter().sum::<u64>(), 3000);
}

#[actix::test]
async fn the_strategy_can_be_overridden_per_request() {
    let fx = start_set("override", 3, |_| {}).await;
    let held_r1 = fx.set.read().await.unwrap();
    let held_r2 = fx.set.read().await.unwrap();
    assert_eq!((fx.index(held_r1.key()), fx.index(held_r2.key())), (1, 2));
    let least = ReadOptions {
        strategy: Some(Strategy::LeastLoaded),
        ..ReadOptions::default()
    };
    // Overridden: least-loaded picks the only idle replica every time.
    assert_eq!(fx.reads(9, least).await, vec![0, 0, 0, 9]);
    // The set's own round-robin ignores load and keeps rotating.
    assert_eq!(fx.reads(9, default_read()).await, vec![0, 3, 3, 3]);
    // Random, per request, on a round-robin set.
    let random = ReadOptions {
        strategy: Some(Strategy::Random),
        ..ReadOptions::default()
    };
    let counts = fx.reads(1500, random).await;
    assert_eq!(counts[0], 0);
    for n in &counts[1..] {
        assert!((400..=600).contains(n), "{counts:?}");
    }
    drop((held_r1, held_r2));
}

// ---------------------------------------------------------------------------------------
// Ejection, fallback, retry
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum Failure {
    Acquire(String),
    Query(PoolKey, BackendErrorKind),
}

#[actix::test]
async fn a_dead_replica_under_load_is_ejected_then_readmitted() {
    let fx = start_set("load", 3, |_| {}).await;
    for s in &fx.servers {
        s.set_behavior(SimBehavior {
            query_latency: ms(2),
            ..SimBehavior::default()
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<(Instant, Failure)>>> = Arc::default();
    let served = Arc::new(Mutex::new(0u64));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (set, stop, failures, served, slowest) = (
                fx.set.clone(),
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&served),
                Arc::clone(&slowest),
            );
            actix::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let read = set.read().await;
                    {
                        let mut slowest = slowest.lock().unwrap();
                        *slowest = (*slowest).max(asked.elapsed());
                    }
                    match read {
                        Ok(mut conn) => match conn.query("SELECT 1").await {
                            Ok(_) => *served.lock().unwrap() += 1,
                            Err(e) => failures
                                .lock()
                                .unwrap()
                                .push((Instant::now(), Failure::Query(conn.key(), e.kind()))),
                        },
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push((Instant::now(), Failure::Acquire(e.to_string()))),
                    }
                    sleep(ms(1)).await;
                }
            })
        })
        .collect();

    sleep(ms(300)).await;
    assert!(fx.info(2).reads > 0, "r2 served reads before it died");
    assert!(failures.lock().unwrap().is_empty());

    let in_use_at_kill = fx.info(2).in_use;
    fx.servers[2].go_down();
    let to_eject = within(INTERVAL + PROBE, "r2 is ejected", || !fx.usable(2)).await;
    let ejected_at = Instant::now();
    let r2_reads = fx.info(2).reads;
    let served_at_eject = *served.lock().unwrap();

    sleep(ms(1000)).await;
    {
        let failures = failures.lock().unwrap();
        // Before the ejection, only reads whose query was running on r2 when it died
        // failed; no acquire failed (a refused connect is retried on another member).
        // After it, none at all.
        for (at, f) in failures.iter() {
            assert!(
                *at < ejected_at,
                "failed after ejection ({to_eject:?}): {f:?}"
            );
            match f {
                Failure::Query(key, kind) => {
                    assert_eq!(*key, fx.keys[2], "{f:?}");
                    assert_eq!(*kind, BackendErrorKind::Closed, "{f:?}");
                }
                Failure::Acquire(e) => panic!("an acquire failed: {e}"),
            }
        }
        assert!(failures.len() <= in_use_at_kill, "{failures:?}");
    }
    assert_eq!(fx.info(2).reads, r2_reads, "no read went to the ejected r2");
    assert!(*served.lock().unwrap() > served_at_eject + 1000);
    assert!(fx.usable(1) && fx.usable(3) && fx.usable(0));

    // Recovery: once the probes see it again (and its breaker closes), it serves again.
    let r2_queries = fx.servers[2].queries();
    fx.servers[2].come_up();
    within(ms(3000), "r2 is readmitted", || fx.usable(2)).await;
    sleep(ms(500)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(
        fx.info(2).reads > r2_reads + 50,
        "r2 reads again: {:?}",
        fx.info(2)
    );
    assert!(fx.servers[2].queries() > r2_queries + 50);
    assert!(
        failures
            .lock()
            .unwrap()
            .iter()
            .all(|(at, _)| *at < ejected_at),
        "no failure after the ejection, recovery included"
    );
    // Reads routed to r2 before its ejection did not sit out the acquire timeout there:
    // one refused connect, then another member.
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < ms(50), "slowest acquire: {slowest:?}");
}

#[actix::test]
async fn all_replicas_down_sends_reads_to_the_primary() {
    let fx = start_set("alldown", 3, |_| {}).await;
    for s in &fx.servers[1..] {
        s.go_down();
    }
    within(INTERVAL + PROBE, "every replica is ejected", || {
        (1..=3).all(|i| !fx.usable(i))
    })
    .await;
    assert!(fx.usable(0));
    let before = fx.queries();
    assert_eq!(fx.reads(30, default_read()).await, vec![30, 0, 0, 0]);
    assert_eq!(delta(&fx.queries(), &before), vec![30, 0, 0, 0]);

    // One replica back: reads leave the primary again.
    fx.servers[3].come_up();
    within(ms(3000), "r3 is readmitted", || fx.usable(3)).await;
    assert_eq!(fx.reads(10, default_read()).await, vec![0, 0, 0, 10]);
}

#[actix::test]
async fn without_fallback_reads_fail_when_no_replica_is_usable() {
    let fx = start_set("nofallback", 2, |c| c.fallback_to_primary = false).await;
    for s in &fx.servers[1..] {
        s.go_down();
    }
    within(INTERVAL + PROBE, "every replica is ejected", || {
        !fx.usable(1) && !fx.usable(2)
    })
    .await;
    match fx.set.read().await {
        Err(Error::NoMember { set }) => assert_eq!(set, "nofallback"),
        other => panic!("expected NoMember, got {other:?}"),
    }
    // Writes are not reads: the primary still takes them.
    assert_eq!(fx.write().await.0, fx.keys[0]);
}

#[actix::test]
async fn a_busy_replica_is_not_mistaken_for_a_dead_one() {
    let fx = start_set("busy", 3, |_| {}).await;
    // Every slot of every replica checked out (4 each): the topology probe cannot get
    // a connection within its budget, which says nothing about the servers.
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(fx.set.read().await.unwrap());
    }
    for i in 1..=3 {
        assert_eq!(fx.info(i).in_use, 4);
    }
    sleep(INTERVAL * 3).await;
    for i in 1..=3 {
        assert!(fx.usable(i), "busy is not dead: {:?}", fx.info(i));
    }
    // A read routed to a saturated member waits for a slot there (waiting is not a
    // failed connect, so it is not retried elsewhere).
    let waiting = {
        let set = fx.set.clone();
        actix::spawn(async move { set.read().await.map(|c| c.key()) })
    };
    // Rounds start every 200 ms and wait 100 ms for a slot; at +150 ms none is waiting.
    sleep(ms(150)).await;
    assert_eq!(fx.info(1).in_use, 4);
    assert_eq!(
        fx.set.member(fx.keys[1]).unwrap().waiters,
        1,
        "round-robin's turn: r1"
    );
    let released = held.remove(0);
    assert_eq!(fx.index(released.key()), 1);
    drop(released);
    let key = waiting.await.unwrap().expect("served once a slot frees");
    assert_eq!(fx.index(key), 1);
    drop(held);
}

#[actix::test]
async fn a_read_whose_connect_fails_is_retried_once_on_another_member() {
    let fx = start_set("retry", 3, |c| {
        c.topology_interval = Duration::from_secs(3600)
    })
    .await;
    // The first topology round left one idle connection per member: take them away so
    // reads must connect.
    for s in &fx.servers {
        s.kill_all();
    }
    let attempts =
        |fx: &Fx| -> Vec<u64> { fx.servers.iter().map(SimServer::connect_attempts).collect() };
    let before = attempts(&fx);
    fx.servers[1].fail_next_connects(1);
    let start = Instant::now();
    let mut conn = fx.set.read().await.expect("served by another member");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no backoff before the retry"
    );
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(fx.index(conn.key()), 2, "round-robin's next member took it");
    // r1 got exactly one attempt: no backoff retries while another member could serve.
    assert_eq!(delta(&attempts(&fx), &before), vec![0, 1, 1, 0]);
    drop(conn);
    assert_eq!(fx.info(1).reads, 0);
    assert_eq!(fx.info(2).reads, 1);
}

#[actix::test]
async fn the_retry_happens_once_and_within_the_same_deadline() {
    let fx = start_set("once", 3, |c| {
        c.topology_interval = Duration::from_secs(3600);
        // The retry runs to the deadline, not cut short by the breaker.
        if let Some(pool) = &mut c.pool {
            pool.breaker.failure_threshold = u32::MAX;
        }
    })
    .await;
    // r1 and r2 die, but no probe has noticed: routing still sees them usable.
    fx.servers[1].go_down();
    fx.servers[2].go_down();
    assert!(fx.usable(1) && fx.usable(2));
    let before: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    let start = Instant::now();
    let err = fx.set.read().await.expect_err("two dead members");
    // r1 failed fast, r2 (the retry) kept trying until the one deadline, r3 was never
    // tried: a read is retried once, not until something answers.
    match &err {
        Error::Timeout { key, phase, .. } => {
            assert_eq!(*key, fx.keys[2], "{err}");
            assert_eq!(*phase, Phase::Connect, "{err}");
        }
        other => panic!("expected the retry's timeout, got {other:?}"),
    }
    // One deadline for both tries (a fresh budget for the retry would take twice as
    // long); the timer wheel rounds deadlines up to the next millisecond.
    let took = start.elapsed();
    assert!(
        took >= ACQUIRE && took <= ACQUIRE + ms(1),
        "one acquire deadline for both tries: {took:?}"
    );
    let after: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    let d = delta(&after, &before);
    assert_eq!((d[0], d[1], d[3]), (0, 1, 0), "{d:?}");
    assert!(d[2] > 1, "the retry backs off and tries again: {d:?}");
}

#[actix::test]
async fn a_replica_whose_breaker_opens_is_skipped_without_failing_reads() {
    let fx = start_set("breaker", 3, |c| {
        c.topology_interval = Duration::from_secs(3600)
    })
    .await;
    for s in &fx.servers {
        s.kill_all();
    }
    // r1 refuses the next 5 connects (the breaker's threshold) but stays up, so only
    // the breaker, not a topology probe, can eject it.
    fx.servers[1].fail_next_connects(5);
    let counts = fx.reads(15, default_read()).await;
    assert_eq!(counts[1], 0, "{counts:?}");
    assert_eq!(
        counts.iter().sum::<usize>(),
        15,
        "no read failed: {counts:?}"
    );
    let r1 = fx.info(1);
    assert_eq!(r1.breaker, BreakerState::Open, "{r1:?}");
    assert!(!r1.usable);
    assert_eq!(
        fx.servers[1].connect_attempts(),
        6,
        "5 refused reads + the first probe"
    );
    // While it is open, r1 gets no attempt at all and the others share exactly.
    assert_eq!(fx.reads(30, default_read()).await, vec![0, 0, 15, 15]);
    assert_eq!(fx.servers[1].connect_attempts(), 6);
}

// ---------------------------------------------------------------------------------------
// Lag and read-your-writes
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn a_lagging_replica_is_skipped_until_it_catches_up() {
    let fx = start_set("lag", 3, |c| c.max_lag = Some(ms(5))).await;
    fx.servers[1].pause_replay();
    for _ in 0..10 {
        fx.write().await;
    }
    // Not seen yet: until the next round r1 still counts as caught up.
    assert_eq!(fx.info(1).lag, Some(Duration::ZERO));
    sleep(INTERVAL).await;
    let r1 = fx.info(1);
    assert_eq!(r1.lag, Some(ms(10)), "10 writes behind, 1 ms each: {r1:?}");
    assert!(r1.usable, "lag is not ill health: {r1:?}");
    assert_eq!(fx.info(2).lag, Some(Duration::ZERO));
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 0, 10, 10]);

    fx.servers[1].resume_replay();
    sleep(INTERVAL).await;
    assert_eq!(fx.info(1).lag, Some(Duration::ZERO));
    assert_eq!(fx.info(1).position, fx.info(0).position);
    assert_eq!(fx.reads(30, default_read()).await, vec![0, 10, 10, 10]);
}

#[actix::test]
async fn a_lag_within_max_lag_is_tolerated() {
    let fx = start_set("lagok", 2, |c| c.max_lag = Some(ms(5))).await;
    fx.servers[1].pause_replay();
    for _ in 0..5 {
        fx.write().await;
    }
    sleep(INTERVAL).await;
    assert_eq!(fx.info(1).lag, Some(ms(5)));
    assert_eq!(fx.reads(10, default_read()).await, vec![0, 5, 5]);
}

#[actix::test]
async fn read_your_writes_goes_only_to_members_past_the_token() {
    let fx = start_set("ryw", 3, |_| {}).await;
    assert_eq!(fx.primary().position(), 0);
    fx.servers[1].pause_replay();
    let (key, token) = fx.write().await;
    assert_eq!(key, fx.keys[0]);
    assert_eq!(
        token,
        CausalityToken(1),
        "the primary's position after one INSERT"
    );
    let after = ReadOptions {
        after: Some(token),
        ..ReadOptions::default()
    };
    // No replica is known to have replayed it yet: the primary serves it.
    assert_eq!(fx.reads(4, after).await, vec![4, 0, 0, 0]);
    // Tokenless reads are not held back.
    assert_eq!(fx.reads(3, default_read()).await, vec![0, 1, 1, 1]);

    sleep(INTERVAL).await;
    assert_eq!(fx.info(1).position, Some(0), "r1's replay is paused");
    assert_eq!(fx.info(2).position, Some(1));
    // r2 and r3 replayed past it; r1 did not and gets none.
    assert_eq!(fx.reads(10, after).await, vec![0, 0, 5, 5]);

    fx.servers[1].resume_replay();
    sleep(INTERVAL).await;
    assert_eq!(fx.reads(9, after).await, vec![0, 3, 3, 3]);
    // A token from the future: nobody has it, so the primary.
    let future = ReadOptions {
        after: Some(CausalityToken(99)),
        ..ReadOptions::default()
    };
    assert_eq!(fx.reads(2, future).await, vec![2, 0, 0, 0]);
}

#[actix::test]
async fn writes_go_to_the_primary_and_replicas_refuse_them() {
    let fx = start_set("writes", 2, |_| {}).await;
    for n in 1..=5 {
        let (key, token) = fx.write().await;
        assert_eq!(key, fx.keys[0]);
        assert_eq!(token, CausalityToken(n));
    }
    assert_eq!(fx.primary().position(), 5);
    let mut conn = fx.set.read().await.unwrap();
    let err = conn.query("INSERT INTO t VALUES (2)").await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Query);
    assert_eq!(fx.primary().position(), 5);
}

// ---------------------------------------------------------------------------------------
// Failover and topology
// ---------------------------------------------------------------------------------------

/// Collects role changes.
struct Collector(Arc<Mutex<Vec<RoleChanged>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<RoleChanged> for Collector {
    type Result = ();
    fn handle(&mut self, msg: RoleChanged, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

fn roles(topology: &[MemberInfo]) -> Vec<(PoolKey, Role, bool)> {
    topology.iter().map(|m| (m.key, m.role, m.usable)).collect()
}

#[actix::test]
async fn failover_moves_writes_to_the_promoted_replica_and_tells_subscribers() {
    let fx = start_set("failover", 3, |_| {}).await;
    let events: Arc<Mutex<Vec<RoleChanged>>> = Arc::default();
    let collector = Collector(Arc::clone(&events)).start();
    fx.sup
        .subscribe_topology(collector.recipient())
        .await
        .unwrap();
    let k = fx.keys.clone();
    assert_eq!(fx.write().await.0, k[0]);

    // The primary dies; a failover manager promotes r1 and repoints the others.
    let killed_at = Instant::now();
    fx.primary().go_down();
    fx.servers[1].promote();
    fx.servers[2].replicate_from(&fx.servers[1]);
    fx.servers[3].replicate_from(&fx.servers[1]);
    assert_eq!(fx.servers[1].role(), SimRole::Primary);

    let took = within(INTERVAL + PROBE, "the set sees r1 as its primary", || {
        let t = fx.set.topology();
        t.iter()
            .any(|m| m.key == k[1] && m.role == Role::Primary && m.usable)
            && t.iter().any(|m| m.key == k[0] && !m.usable)
    })
    .await;
    assert!(took <= INTERVAL, "one topology round: {took:?}");
    let (key, token) = fx.write().await;
    assert_eq!(key, k[1], "writes go to the new primary");
    assert_eq!(
        token,
        CausalityToken(2),
        "r1 took over at the replayed position 1"
    );
    assert!(killed_at.elapsed() <= INTERVAL + PROBE);

    // `topology()` and the `Topology` message agree on the roles.
    let expected = vec![
        (k[0], Role::Primary, false),
        (k[1], Role::Primary, true),
        (k[2], Role::Replica, true),
        (k[3], Role::Replica, true),
    ];
    assert_eq!(roles(&fx.set.topology()), expected);
    let by_message = fx
        .set
        .actor()
        .expect("running")
        .send(Topology)
        .await
        .unwrap();
    assert_eq!(roles(&by_message), expected);

    // Reads: r2 and r3 only (r1 is a primary now, the old primary is down).
    assert_eq!(fx.reads(10, default_read()).await, vec![0, 0, 5, 5]);

    settle().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(
            (e.set.as_str(), e.key, e.from, e.to),
            ("failover", k[1], Role::Replica, Role::Primary)
        );
        assert_eq!(e.host, "failover-r1:1");
        assert!(e.at >= killed_at && e.at <= killed_at + INTERVAL);
    }

    // The old primary comes back as a replica of r1: another event, and it reads again.
    fx.primary().replicate_from(&fx.servers[1]);
    fx.primary().come_up();
    within(ms(3000), "the old primary rejoins as a replica", || {
        fx.info(0).role == Role::Replica && fx.usable(0)
    })
    .await;
    settle().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        let e = &events[1];
        assert_eq!((e.key, e.from, e.to), (k[0], Role::Primary, Role::Replica));
    }
    assert_eq!(fx.write().await.0, k[1], "writes stay on the new primary");
    assert_eq!(fx.reads(30, default_read()).await, vec![10, 0, 10, 10]);
}

#[actix::test]
async fn a_write_issued_during_a_failover_lands_on_the_new_primary() {
    let fx = start_set("midway", 2, |_| {}).await;
    fx.primary().go_down();
    let t0 = Instant::now();
    let write = {
        let set = fx.set.clone();
        actix::spawn(async move {
            let mut conn = set.write().await.map_err(|e| e.to_string())?;
            conn.query("INSERT INTO t VALUES (1)")
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((conn.key(), Instant::now()))
        })
    };
    // The failover manager takes 300 ms to promote r1.
    sleep(ms(300)).await;
    assert!(!write.is_finished(), "no primary yet: the write waits");
    fx.servers[1].promote();
    fx.servers[2].replicate_from(&fx.servers[1]);
    let (key, at) = write
        .await
        .unwrap()
        .expect("the write went through, no error for the caller");
    assert_eq!(key, fx.keys[1], "on the promoted member");
    assert!(
        at - t0 <= ms(300) + INTERVAL,
        "as soon as a round saw it: {:?}",
        at - t0
    );
    assert_eq!(fx.servers[1].position(), 1);
    assert_eq!(fx.primary().position(), 0);
}

#[actix::test]
async fn a_write_with_no_primary_in_sight_times_out_at_its_deadline() {
    let fx = start_set("noprimary", 1, |_| {}).await;
    fx.primary().go_down();
    let start = Instant::now();
    let err = fx.set.write().await.expect_err("nobody takes writes");
    let took = start.elapsed();
    assert!(took >= ACQUIRE && took <= ACQUIRE + ms(1), "{took:?}");
    match &err {
        Error::Timeout {
            key,
            phase,
            last_error,
            ..
        } => {
            assert_eq!(*key, fx.keys[0]);
            assert_eq!(*phase, Phase::Connect);
            let last = last_error.as_ref().expect("the last connect error");
            assert_eq!(last.kind(), BackendErrorKind::Connect, "{err}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The replica was never asked to take the write.
    assert_eq!(fx.servers[1].position(), 0);
}

#[actix::test]
async fn a_set_is_registered_once_and_found_by_name() {
    let fx = start_set("named", 2, |_| {}).await;
    let again = fx.sup.replica_set(fx.config.clone()).await.unwrap();
    assert_eq!(again.name(), "named");
    assert!(again.actor() == fx.set.actor(), "the same set actor");
    let found = fx.sup.lookup_replica_set("named").await.unwrap();
    assert_eq!(roles(&found.topology()), roles(&fx.set.topology()));
    assert_eq!(
        roles(&fx.set.topology()),
        vec![
            (fx.keys[0], Role::Primary, true),
            (fx.keys[1], Role::Replica, true),
            (fx.keys[2], Role::Replica, true),
        ]
    );
    match fx.sup.lookup_replica_set("nope").await {
        Err(Error::UnknownPool { name }) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownPool, got {other:?}"),
    }
    // One pool per member, shared by both handles.
    let conn = again.read().await.unwrap();
    assert_eq!(fx.set.member(conn.key()).unwrap().in_use, 1);
}

#[actix::test]
async fn a_configured_role_is_corrected_by_what_the_server_says() {
    let fx = start_set("roles", 2, |_| {}).await;
    let t0 = Instant::now();
    let events: Arc<Mutex<Vec<RoleChanged>>> = Arc::default();
    fx.sup
        .subscribe_topology(Collector(Arc::clone(&events)).start().recipient())
        .await
        .unwrap();
    // A replica the configuration got wrong: listed as a replica, but the server says
    // primary (say, promoted before the application started).
    fx.servers[1].set_role(SimRole::Primary);
    // Meanwhile r2 hangs: its next connect never completes.
    fx.servers[2].kill_all();
    fx.servers[2].stall_next_connects(1);
    within(INTERVAL, "r1 is seen as a primary", || {
        fx.info(1).role == Role::Primary
    })
    .await;
    settle().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.key, e.from, e.to),
            (fx.keys[1], Role::Replica, Role::Primary)
        );
        // Published when r1 answered, not when the round's slowest member gave up.
        assert!(e.at <= t0 + INTERVAL, "{:?} after start", e.at - t0);
    }
    assert!(fx.usable(2), "r2's probe is still waiting");
    within(PROBE + ms(2), "hung r2 is ejected", || !fx.usable(2)).await;
    assert_eq!(
        fx.servers[2].in_flight_connects(),
        0,
        "the stalled connect was dropped"
    );
}

// ---------------------------------------------------------------------------------------
// Membership
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn members_can_be_added_and_removed_at_run_time() {
    let mut fx = start_set("members", 2, |_| {}).await;
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 10, 10]);

    let r3 = ConnectionConfig::sim("members-r3");
    let r3_server = fx.sim.server(&r3.primary_host());
    r3_server.replicate_from(fx.primary());
    let key = fx.set.add_member(r3.clone(), Role::Replica).await.unwrap();
    assert_eq!(key, PoolKey::of(&r3));
    fx.keys.push(key);
    fx.servers.push(r3_server.clone());
    settle().await;
    let info = fx.info(3);
    assert_eq!(
        (info.role, info.usable, info.lag),
        (Role::Replica, true, Some(Duration::ZERO))
    );
    assert_eq!(r3_server.connects(), 1, "probed as soon as it was added");
    assert_eq!(fx.reads(300, default_read()).await, vec![0, 100, 100, 100]);
    // Adding it again changes nothing.
    assert_eq!(fx.set.add_member(r3, Role::Replica).await.unwrap(), key);
    assert_eq!(fx.set.topology().len(), 4);

    // Remove r1 while a read holds one of its connections.
    let held = loop {
        let conn = fx.set.read().await.unwrap();
        if conn.key() == fx.keys[1] {
            break conn;
        }
    };
    assert!(fx.set.remove_member(fx.keys[1]).await.unwrap());
    assert!(fx.set.topology().iter().all(|m| m.key != fx.keys[1]));
    assert!(fx.set.member(fx.keys[1]).is_none());
    assert_eq!(
        fx.servers[1].open_connections(),
        1,
        "the held one is still out"
    );
    drop(held);
    settle().await;
    assert_eq!(
        fx.servers[1].open_connections(),
        0,
        "closed on return, not reused"
    );
    let before = fx.servers[1].connect_attempts();
    let counts = fx.reads(200, default_read()).await;
    assert_eq!(counts, vec![0, 0, 100, 100]);
    sleep(INTERVAL * 3).await;
    assert_eq!(
        fx.servers[1].connect_attempts(),
        before,
        "nothing probes a removed member"
    );
    assert!(
        !fx.set.remove_member(fx.keys[1]).await.unwrap(),
        "not a member any more"
    );
}

// ---------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn supervisor_stats_and_health_cover_member_pools() {
    let fx = start_set("observed", 2, |_| {}).await;
    let plain = fx
        .sup
        .pool(ConnectionConfig::sim("plain-observed"))
        .await
        .unwrap();
    drop(plain.acquire().await.unwrap());
    let held = fx.set.read().await.unwrap();

    let stats = fx.sup.stats().await.unwrap();
    let mut keys: Vec<PoolKey> = stats.per_pool.iter().map(|p| p.key).collect();
    let mut expected = fx.keys.clone();
    expected.push(plain.key());
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected, "3 members and the plain pool");
    assert_eq!(stats.pools, 4);
    assert_eq!(stats.in_use, 1, "the held read: {stats:?}");
    drop(held);

    let report = fx.sup.health().await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.healthy, 4);
    fx.servers[2].go_down();
    let report = fx.sup.health().await.unwrap();
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    let unhealthy: Vec<PoolKey> = report.unhealthy.iter().map(|(k, _)| *k).collect();
    assert_eq!(unhealthy, vec![fx.keys[2]], "the replica that went down");
}

#[actix::test]
async fn shutdown_closes_every_member_pool() {
    let fx = start_set("shutdown", 3, |c| {
        c.pool = Some(PoolConfig {
            min_idle: 2,
            ..pool_config()
        })
    })
    .await;
    sleep(ms(1100)).await; // every member warms to min_idle
    for s in &fx.servers {
        assert!(s.open_connections() >= 2, "warmed: {s:?}");
    }
    // A plain pool beside the set.
    let plain = fx.sup.pool(ConnectionConfig::sim("plain")).await.unwrap();
    drop(plain.acquire().await.unwrap());

    let held = fx.set.read().await.unwrap();
    let held_key = held.key();
    actix::spawn(async move {
        sleep(ms(100)).await;
        drop(held);
    });
    let report = fx.sup.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        report.pools_closed, 5,
        "4 members and the plain pool: {report:?}"
    );
    assert_eq!(report.still_checked_out, 0, "{report:?}");
    settle().await;
    for s in fx.servers.iter().chain([&fx.sim.server("plain:1")]) {
        assert_eq!(s.open_connections(), 0, "{s:?}");
        assert_eq!(s.in_flight_connects(), 0, "{s:?}");
    }
    assert!(fx.set.member(held_key).unwrap().closed_pool);
    assert!(matches!(fx.set.read().await, Err(Error::ShuttingDown)));
    assert!(matches!(fx.set.write().await, Err(Error::ShuttingDown)));
    assert!(matches!(
        fx.sup.replica_set(fx.config.clone()).await,
        Err(Error::ShuttingDown)
    ));
    assert!(fx.sup.lookup_replica_set("shutdown").await.is_err());
    within(ms(100), "the set actor stops", || fx.set.actor().is_none()).await;
    // Nothing probes the members any more.
    let attempts: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    sleep(INTERVAL * 5).await;
    let later: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    assert_eq!(attempts, later);
}

#[actix::test]
async fn every_member_connection_is_returned_after_mixed_traffic() {
    let fx = start_set("books", 3, |_| {}).await;
    let mut counts: HashMap<PoolKey, usize> = HashMap::new();
    for i in 0..50 {
        if i % 5 == 0 {
            fx.write().await;
        } else {
            let conn = fx.set.read().await.unwrap();
            *counts.entry(conn.key()).or_default() += 1;
        }
    }
    assert_eq!(counts.values().sum::<usize>(), 40);
    for (i, s) in fx.servers.iter().enumerate() {
        let info = fx.info(i);
        assert_eq!(info.in_use, 0, "{info:?}");
        assert_eq!(s.open_connections(), info.idle, "{info:?} vs {s:?}");
    }
}

#[actix::test]
async fn an_old_primary_back_before_it_is_demoted_gets_no_writes() {
    let fx = start_set("splitbrain", 2, |_| {}).await;
    let k = fx.keys.clone();
    fx.primary().go_down();
    fx.servers[1].promote();
    fx.servers[2].replicate_from(&fx.servers[1]);
    within(INTERVAL + PROBE, "the set sees r1 as its primary", || {
        fx.info(1).role == Role::Primary && fx.usable(1)
    })
    .await;
    // The old primary restarts as it was, still a primary, before anyone repoints it.
    fx.primary().come_up();
    within(INTERVAL * 3, "the old primary is reachable again", || {
        fx.usable(0)
    })
    .await;
    assert_eq!(fx.info(0).role, Role::Primary, "it still says so");
    for _ in 0..5 {
        assert_eq!(
            fx.write().await.0,
            k[1],
            "writes stay on the promoted member"
        );
    }
}
