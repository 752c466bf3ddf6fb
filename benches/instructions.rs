//! Instructions per acquire + release: a fixed number of no-op acquire-then-drop
//! iterations on one pool, one task, for counting under `valgrind --tool=callgrind`
//! (instruction counts repeat exactly for the same binary, whatever the machine is doing;
//! wall-clock ratios drift). `benches/instructions.sh` runs each pool at two iteration
//! counts and prints the difference per iteration, so set-up and tear-down cancel out.
//!
//! ```text
//! cargo bench --bench instructions --no-run          # build
//! benches/instructions.sh                            # count (valgrind), print the table
//! target/release/deps/instructions-* poolwarden 1000 # one run by hand: <pool> <iterations>
//! TASKS=16 benches/instructions.sh                   # 16 tasks on the 8 connections: acquires queue
//! ```
//!
//! Pools: `floor` (a tokio `Semaphore` + `Mutex<VecDeque>`), `poolwarden` (default config,
//! no metrics recorder, over the peers' no-op connection: `peers::NoopBackend`),
//! `poolwarden-sim` (the simulated backend with zero latency, whose broken-connection check
//! looks for injected faults), `poolwarden-recorder` (the same with a Prometheus recorder
//! installed, counted past the next maintenance run so that sending the uses to the
//! recorder's histograms is in the count), `bb8` (no-op manager, its defaults: test on
//! checkout), `bb8-notest`, `deadpool` (no-op manager). Each with 8 connections.
//! `poolwarden-set`: a read (acquire + release) on a replica set of a primary and two
//! replicas on the simulated backend, by the default strategy (power of two choices),
//! member pools of 8 warmed connections, topology probes only at start (so none runs
//! during the count); beside `poolwarden-sim` it is what routing costs.
//! `poolwarden-set-rr`: the same, reading round-robin.
//! `pg-floor`, `pg-poolwarden`: acquire, `simple_query("SELECT 1")`, release on a
//! throwaway PostgreSQL server (loopback TCP, no TLS; `tests/common`), the floor over
//! tokio-postgres clients, poolwarden over its PostgreSQL backend (default config): beside
//! each other they are what the backend's connection (its wire tap, its connection task)
//! and the pool cost per query. Not in the default list (each count starts a server):
//! `POOLS="pg-floor pg-poolwarden" benches/instructions.sh`.

#[path = "../tests/common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "load/peers.rs"]
mod peers;

use std::time::Duration;

use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::backends::sim::SimBackend;
use poolwarden::backends::Backend;
use poolwarden::{
    ConnectionConfig, EmbeddedSupervisor, PoolConfig, PoolHandle, ReplicaSetConfig,
    ReplicaSetHandle, Role, SslMode, Strategy, SupervisorConfig,
};

const SIZE: u32 = 8;

/// A warm pool of `SIZE` with the default config otherwise.
async fn poolwarden_pool<B: Backend>(sup: &EmbeddedSupervisor<B>) -> PoolHandle<B> {
    peers::poolwarden_warm(sup, "instructions", SIZE).await
}

/// A replica set of a primary and two replicas on `sim`, member pools of `SIZE` warmed
/// connections, probed once at start; round-robin if `round_robin`, else the default
/// strategy.
async fn poolwarden_set(
    sup: &EmbeddedSupervisor<SimBackend>,
    sim: &SimBackend,
    round_robin: bool,
) -> ReplicaSetHandle<SimBackend> {
    let primary = ConnectionConfig::sim("instructions-primary");
    let replicas: Vec<_> = (1..=2)
        .map(|i| ConnectionConfig::sim(format!("instructions-r{i}")))
        .collect();
    let p = sim.server(&primary.primary_host());
    for r in &replicas {
        sim.server(&r.primary_host()).replicate_from(&p);
    }
    let mut cfg = ReplicaSetConfig::new("instructions", primary, replicas);
    cfg.topology_interval = Duration::from_secs(3600);
    if round_robin {
        cfg.strategy = Strategy::RoundRobin;
    }
    cfg.pool = Some(PoolConfig {
        min_idle: SIZE,
        max_size: SIZE,
        ..PoolConfig::default()
    });
    let set = sup.handle().replica_set(cfg).await.expect("replica set");
    // Until the first probe has seen both replicas and they are warm.
    let warm =
        |m: &poolwarden::MemberInfo| m.role == Role::Replica && m.usable && m.idle >= SIZE as usize;
    while set.topology().iter().filter(|m| warm(m)).count() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    set
}

/// A throwaway PostgreSQL server that trusts loopback (no password exchange to count).
fn pg_server() -> Option<common::PgServer> {
    common::PgServer::start_with(common::PgOptions {
        hba: Some("local all all trust\nhost all all 127.0.0.1/32 trust\n".into()),
        ..common::PgOptions::default()
    })
}

/// `n` acquire-then-release iterations on `$pool`, shared by `$tasks` tasks; with more
/// than one task each holds its connection across a yield, so the others queue.
macro_rules! drive {
    ($pool:expr, $n:expr, $tasks:expr, |$p:ident| $get:expr) => {{
        let handles: Vec<_> = (0..$tasks)
            .map(|_| {
                let $p = $pool.clone();
                tokio::spawn(async move {
                    for _ in 0..$n / $tasks {
                        let guard = $get;
                        if $tasks > 1 {
                            tokio::task::yield_now().await;
                        }
                        drop(guard);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("bench task");
        }
    }};
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let (Some(pool), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        // `cargo bench` runs every bench target with no arguments: nothing to count then.
        eprintln!("usage: instructions <floor|poolwarden|poolwarden-sim|poolwarden-recorder|poolwarden-set|poolwarden-set-rr|bb8|bb8-notest|deadpool|pg-floor|pg-poolwarden> <iterations>");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // With more tasks than connections (`TASKS=16`), every acquire that finds the pool
    // empty queues: the slow path, counted the same way (callgrind runs the threads one at
    // a time, so this counts the work of waiting, not the cost of contention).
    let tasks: u64 = std::env::var("TASKS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .max(1);
    rt.block_on(async move {
        match pool.as_str() {
            "floor" => {
                let fl = peers::Floor::filled((0..SIZE).map(|_| peers::Noop).collect());
                drive!(fl, n, tasks, |p| p.get().await);
            }
            "poolwarden" | "poolwarden-recorder" => {
                if pool == "poolwarden-recorder" {
                    let recorder =
                        metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
                    metrics::set_global_recorder(recorder).expect("a recorder");
                }
                let sup =
                    EmbeddedSupervisor::spawn(peers::NoopBackend, SupervisorConfig::default())
                        .expect("supervisor");
                let pw = poolwarden_pool(&sup).await;
                drive!(pw, n, tasks, |p| p.acquire().await.expect("acquire"));
                if pool == "poolwarden-recorder" {
                    // Past the next maintenance run (every second by default), which sends
                    // the uses the windows gathered to the recorder's histograms: so every
                    // iteration's share of that work is counted, at both lengths alike,
                    // not only those a run happened to come after.
                    tokio::time::sleep(Duration::from_millis(1_500)).await;
                }
            }
            "poolwarden-sim" => {
                let sup =
                    EmbeddedSupervisor::spawn(SimBackend::default(), SupervisorConfig::default())
                        .expect("supervisor");
                let pw = poolwarden_pool(&sup).await;
                drive!(pw, n, tasks, |p| p.acquire().await.expect("acquire"));
            }
            "poolwarden-set" | "poolwarden-set-rr" => {
                let sim = SimBackend::default();
                let sup = EmbeddedSupervisor::spawn(sim.clone(), SupervisorConfig::default())
                    .expect("supervisor");
                let set = poolwarden_set(&sup, &sim, pool == "poolwarden-set-rr").await;
                drive!(set, n, tasks, |p| p.read().await.expect("read"));
            }
            "bb8" | "bb8-notest" => {
                let bb = bb8::Pool::builder()
                    .max_size(SIZE)
                    .min_idle(Some(SIZE))
                    .test_on_check_out(pool == "bb8")
                    .build(peers::NoopManager::default())
                    .await
                    .expect("bb8");
                drive!(bb, n, tasks, |p| p.get().await.expect("bb8 get"));
            }
            "deadpool" => {
                let dp = peers::deadpool_noop(SIZE, peers::NoopManager::default());
                peers::fill(SIZE, || dp.get()).await;
                drive!(dp, n, tasks, |p| p.get().await.expect("deadpool get"));
            }
            "pg-floor" | "pg-poolwarden" => {
                let Some(server) = pg_server() else { return };
                if pool == "pg-floor" {
                    let mut clients = Vec::new();
                    for _ in 0..SIZE {
                        let url: tokio_postgres::Config = server.url().parse().expect("url");
                        let (client, conn) =
                            url.connect(tokio_postgres::NoTls).await.expect("connect");
                        tokio::spawn(conn);
                        clients.push(client);
                    }
                    let fl = peers::Floor::filled(clients);
                    drive!(fl, n, tasks, |p| {
                        let c = p.get().await;
                        c.simple_query("SELECT 1").await.expect("SELECT 1");
                        c
                    });
                } else {
                    let sup = EmbeddedSupervisor::spawn(
                        PostgresBackend::new(),
                        SupervisorConfig::default(),
                    )
                    .expect("supervisor");
                    let mut config = server.config();
                    config.tls.mode = SslMode::Disable;
                    let pw = peers::poolwarden_warm_at(&sup, config, SIZE).await;
                    drive!(pw, n, tasks, |p| {
                        let c = p.acquire().await.expect("acquire");
                        c.simple_query("SELECT 1").await.expect("SELECT 1");
                        c
                    });
                }
            }
            other => eprintln!("unknown pool {other}"),
        }
    });
}
