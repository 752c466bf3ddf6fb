//! Shared setup of the pool behaviour tests (sizing, timeouts, lifetime, checkout,
//! fairness, cancellation): one supervisor on the simulated backend, one pool, and the
//! simulated server that pool connects to. Tests run on `#[actix::test]` with paused
//! tokio time.
#![allow(dead_code)]

use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior, SimServer};
use poolwarden::{
    BreakerConfig, ConnectionConfig, Error, Phase, PoolConfig, PoolHandle, PooledConnection,
    SupervisorConfig, SupervisorHandle,
};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A pool config that does nothing on its own unless a test asks for it: no warm-up, no
/// idle timeout, no lifetime, no checkout test, a 1s maintenance tick.
pub fn quiet_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        max_overflow: 0,
        acquire_timeout: secs(5),
        connect_timeout: secs(1),
        probe_timeout: secs(1),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        test_on_checkout: false,
        test_on_return: false,
        reset_on_return: true,
        maintenance_interval: secs(1),
        // These tests are about the pool itself: no background probes, and a breaker
        // that never trips (tests/breaker.rs covers it).
        probe_interval: None,
        max_connecting: 64,
        breaker: BreakerConfig {
            failure_threshold: u32::MAX,
            ..BreakerConfig::default()
        },
        ..PoolConfig::default()
    }
}

pub struct Fixture {
    pub sup: SupervisorHandle<SimBackend>,
    pub pool: PoolHandle<SimBackend>,
    pub server: SimServer,
    pub backend: SimBackend,
    pub connection: ConnectionConfig,
}

/// Pause tokio time, start a supervisor and resolve the pool `name` with `config`.
/// `behavior` is set on the server before the pool exists, so warm-up sees it.
pub async fn start(name: &str, config: PoolConfig, behavior: SimBehavior) -> Fixture {
    start_with(ConnectionConfig::sim(name), config, behavior).await
}

pub async fn start_with(
    connection: ConnectionConfig,
    config: PoolConfig,
    behavior: SimBehavior,
) -> Fixture {
    tokio::time::pause();
    let backend = SimBackend::new(11);
    let server = backend.server(&connection.primary_host());
    server.set_behavior(behavior);
    let sup = SupervisorHandle::start(
        backend.clone(),
        SupervisorConfig {
            // Tests advance the clock by minutes: the supervisor must not reap the pool.
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let pool = sup
        .pool_with(connection.clone(), config)
        .await
        .expect("pool starts");
    Fixture {
        sup,
        pool,
        server,
        backend,
        connection,
    }
}

/// Let every task that can run, run (spawned releases, actor messages, refills), without
/// advancing time past `d`.
pub async fn settle_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Let every task that can run, run (about a millisecond of paused time).
pub async fn settle() {
    settle_for(ms(1)).await;
}

/// Poll `cond` each simulated millisecond for at most `limit`; true once it holds.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(ms(1)).await;
    }
}

/// `err` is a timeout waiting for a free slot (`Timeout { phase: Wait }`).
pub fn is_wait_timeout(err: &Error) -> bool {
    matches!(
        err,
        Error::Timeout {
            phase: Phase::Wait,
            ..
        }
    )
}

impl Fixture {
    /// Check out `n` connections and keep them (each acquire must succeed).
    pub async fn hold(&self, n: usize) -> Vec<PooledConnection<SimBackend>> {
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let conn = self.pool.acquire().await;
            held.push(conn.unwrap_or_else(|e| panic!("checkout {} of {n}: {e:?}", i + 1)));
        }
        held
    }

    /// The pool's books agree with the server: nothing checked out, nobody waiting or
    /// connecting, and the server has exactly the connections the pool counts as live.
    pub fn assert_quiescent(&self) {
        let s = self.pool.stats();
        assert_eq!(s.in_use, 0, "in_use: {s:?}");
        assert_eq!(s.waiters, 0, "waiters: {s:?}");
        assert_eq!(s.connecting, 0, "connecting: {s:?}");
        assert_eq!(
            self.server.open_connections(),
            s.live,
            "server-side connections vs pool live: {s:?}"
        );
        assert_eq!(s.live, s.idle, "every live connection is idle: {s:?}");
        assert_eq!(
            self.server.in_flight_connects(),
            0,
            "connect futures still running"
        );
    }
}
