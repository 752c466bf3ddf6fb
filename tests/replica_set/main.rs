//! Replica sets on the simulated backend: read strategies (round-robin, least-loaded,
//! random, power of two choices, per-request override), ejection of dead, breaker-open and
//! lagging replicas, slow start of a readmitted or added replica, fallback to the primary,
//! the retry-once rule, read-your-writes, failover with role-change events, membership
//! changes at run time, and shutdown.
//!
//! Every test runs on `#[actix::test]` with paused tokio time: a loop of reads whose
//! awaits are all ready never moves the clock, so no topology round runs in the middle of
//! a count unless the test sleeps for it.
//!
//! The fixture's sets read round-robin with no slow start (a test asks for others), so a
//! test about ejection, failover or membership can count reads exactly.

mod ejection;
mod failover;
mod lag;
mod membership;
mod shutdown;
mod slow_start;
mod strategies;

use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimServer};
use poolwarden::{
    BreakerConfig, CausalityToken, ConnectionConfig, MemberInfo, PoolConfig, PoolKey, ReadOptions,
    ReplicaSetConfig, ReplicaSetHandle, Strategy, SupervisorConfig, SupervisorHandle,
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
            grow_after: std::time::Duration::ZERO,
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
/// supervisor and the set `name` (round-robin, no slow start; `tweak` adjusts its config),
/// and let the first topology round run.
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
    config.strategy = Strategy::RoundRobin;
    config.slow_start_window = Duration::ZERO;
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
