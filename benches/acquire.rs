//! Acquire + release throughput of a poolwarden pool on the simulated backend (zero
//! latency), beside bb8 and deadpool on no-op managers, at 1, 16 and 64 concurrent tasks.
//!
//! Every task runs a tight loop of acquire-then-drop; a sample is the wall time for all
//! tasks to finish `iters` operations between them, so criterion's "time per iteration" is
//! wall time per acquire+release with every task running. The runtime is a multi-thread
//! tokio runtime with 2 worker threads.
//!
//! ```text
//! cargo bench --bench acquire
//! ```
//!
//! Results and their reading: `docs/benchmarks.md`.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use poolwarden::backends::sim::SimBackend;
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::runtime::Runtime;

/// (concurrent tasks, pool size).
const CASES: [(u64, u32); 3] = [(1, 8), (16, 8), (64, 16)];

const WORKER_THREADS: usize = 2;

// ----- no-op managers for the reference pools ------------------------------------------

/// A connection that is nothing at all.
struct Noop;

struct Bb8Noop;

impl bb8::ManageConnection for Bb8Noop {
    type Connection = Noop;
    type Error = Infallible;

    async fn connect(&self) -> Result<Noop, Infallible> {
        Ok(Noop)
    }

    async fn is_valid(&self, _conn: &mut Noop) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Noop) -> bool {
        false
    }
}

struct DeadpoolNoop;

impl deadpool::managed::Manager for DeadpoolNoop {
    type Type = Noop;
    type Error = Infallible;

    async fn create(&self) -> Result<Noop, Infallible> {
        Ok(Noop)
    }

    async fn recycle(
        &self,
        _obj: &mut Noop,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

// ----- harness ---------------------------------------------------------------------------

/// One acquire followed at once by a release (dropping the guard).
trait AcquireRelease: Clone + Send + Sync + 'static {
    fn acquire_release(&self) -> impl Future<Output = ()> + Send;
}

impl AcquireRelease for PoolHandle<SimBackend> {
    async fn acquire_release(&self) {
        drop(self.acquire().await.expect("poolwarden acquire"));
    }
}

impl AcquireRelease for bb8::Pool<Bb8Noop> {
    async fn acquire_release(&self) {
        drop(self.get_owned().await.expect("bb8 get_owned"));
    }
}

impl AcquireRelease for deadpool::managed::Pool<DeadpoolNoop> {
    async fn acquire_release(&self) {
        drop(self.get().await.expect("deadpool get"));
    }
}

/// Run `iters` operations split over `tasks` spawned tasks, each with its own clone of
/// `pool`. Returns the wall time from the first spawn to the last join.
async fn run_tasks<P: AcquireRelease>(pool: &P, tasks: u64, iters: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            // Spread the remainder so the tasks do exactly `iters` operations in all.
            let n = iters / tasks + u64::from(i < iters % tasks);
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    pool.acquire_release().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("benchmark task panicked");
    }
    start.elapsed()
}

fn bench_pool<P: AcquireRelease>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    pool: &P,
    tasks: u64,
) {
    group.bench_function(name, |b| {
        b.to_async(rt)
            .iter_custom(|iters| run_tasks(pool, tasks, iters));
    });
}

// ----- pools -----------------------------------------------------------------------------

async fn poolwarden_pool(
    sup: &EmbeddedSupervisor<SimBackend>,
    tasks: u64,
    size: u32,
) -> PoolHandle<SimBackend> {
    let cfg = PoolConfig {
        min_idle: size,
        max_size: size,
        // The defaults, spelled out: a connection used within the bypass window (500 ms)
        // is handed out without a probe, which is always the case in a tight loop.
        test_on_checkout: true,
        ..PoolConfig::default()
    };
    // Pools are keyed by connection config, so each case gets its own server name.
    let conn = ConnectionConfig::sim(format!("bench-t{tasks}-p{size}"));
    let handle = sup
        .handle()
        .pool_with(conn, cfg)
        .await
        .expect("poolwarden pool");
    handle.warm(size as usize).await.expect("warm-up");
    assert_eq!(
        handle.stats().idle,
        size as usize,
        "poolwarden pool not warm"
    );
    handle
}

async fn bb8_pool(size: u32) -> bb8::Pool<Bb8Noop> {
    // Default config otherwise: test_on_check_out = true (is_valid is a no-op here),
    // connection_timeout = 30 s.
    bb8::Pool::builder()
        .max_size(size)
        .min_idle(size)
        .build(Bb8Noop)
        .await
        .expect("bb8 pool")
}

async fn deadpool_pool(size: u32) -> deadpool::managed::Pool<DeadpoolNoop> {
    let pool = deadpool::managed::Pool::builder(DeadpoolNoop)
        .max_size(size as usize)
        .build()
        .expect("deadpool pool");
    // deadpool opens lazily: check out `size` objects at once so all exist before timing.
    let objs = futures::future::join_all((0..size).map(|_| pool.get())).await;
    assert!(objs.iter().all(Result::is_ok));
    drop(objs);
    assert_eq!(pool.status().size, size as usize, "deadpool pool not warm");
    pool
}

// ----- the benchmark ---------------------------------------------------------------------

fn acquire_release(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sup = EmbeddedSupervisor::spawn(SimBackend::default(), SupervisorConfig::default())
        .expect("supervisor");

    for (tasks, size) in CASES {
        let pw = rt.block_on(poolwarden_pool(&sup, tasks, size));
        let bb = rt.block_on(bb8_pool(size));
        let dp = rt.block_on(deadpool_pool(size));

        let mut group = c.benchmark_group(format!("acquire_release/tasks={tasks}/pool={size}"));
        bench_pool(&mut group, &rt, "poolwarden", &pw, tasks);
        bench_pool(&mut group, &rt, "bb8", &bb, tasks);
        bench_pool(&mut group, &rt, "deadpool", &dp, tasks);
        group.finish();

        // A steady state was measured: no connection was opened after the warm-up.
        let stats = pw.stats();
        assert_eq!(
            stats.created,
            u64::from(size),
            "poolwarden opened connections while timed"
        );
        eprintln!(
            "poolwarden tasks={tasks} pool={size}: served={} created={} timeouts={}",
            stats.served, stats.created, stats.timeouts
        );
    }

    rt.block_on(sup.shutdown(Duration::from_secs(5)))
        .expect("supervisor shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = acquire_release
}
criterion_main!(benches);
