//! Scenarios on a real PostgreSQL server: 2 (closed loop), 3 (fixed arrival rate) and
//! 7 (one caller on another thread than the pool's actor).

use std::sync::Arc;
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{EmbeddedSupervisor, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::time::Instant;
use tokio_postgres::NoTls;

use crate::chart;
use crate::hist::{self, fmt_dur};
use crate::peers::{Floor, Op};
use crate::report::{ratio, thousands, Section, Table, Target};
use crate::runner::{closed_loop, closed_table, open_loop, Closed};
use crate::{Ctx, PgTarget};

const SQL: &str = "SELECT 1";

type Bb8Pg = bb8::Pool<PostgresConnectionManager<NoTls>>;

async fn select1(c: &tokio_postgres::Client) {
    c.simple_query(SQL).await.expect("SELECT 1");
}

impl Op for PoolHandle<PostgresBackend> {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let c = self.acquire().await.ok()?;
        let w = t.elapsed();
        select1(c.client()).await;
        Some(w)
    }
}

impl Op for Bb8Pg {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let c = self.get().await.ok()?;
        let w = t.elapsed();
        select1(&c).await;
        Some(w)
    }
}

impl Op for deadpool_postgres::Pool {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let c = self.get().await.ok()?;
        let w = t.elapsed();
        select1(&c).await;
        Some(w)
    }
}

impl Op for Arc<Floor<tokio_postgres::Client>> {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let c = self.get().await;
        let w = t.elapsed();
        select1(&c).await;
        Some(w)
    }
}

/// Every pool of a case, built against the same server.
struct Pools {
    sup: EmbeddedSupervisor<PostgresBackend>,
    pw: PoolHandle<PostgresBackend>,
    bb8_on: Bb8Pg,
    bb8_off: Bb8Pg,
    dp_fast: deadpool_postgres::Pool,
    dp_verified: deadpool_postgres::Pool,
    floor: Arc<Floor<tokio_postgres::Client>>,
}

pub const PEERS: [&str; 6] = [
    "poolwarden (default)",
    "bb8 (test on checkout)",
    "bb8 (no test)",
    "deadpool (Fast)",
    "deadpool (Verified)",
    "floor",
];

async fn connect_client(pg: &PgTarget) -> tokio_postgres::Client {
    let (client, conn) = pg.tp.connect(NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn bb8_pool(pg: &PgTarget, size: u32, test: bool) -> Bb8Pg {
    bb8::Pool::builder()
        .max_size(size)
        .test_on_check_out(test)
        .build(PostgresConnectionManager::new(pg.tp.clone(), NoTls))
        .await
        .expect("bb8 pool")
}

fn deadpool_pool(pg: &PgTarget, size: u32, method: RecyclingMethod) -> deadpool_postgres::Pool {
    let mgr = deadpool_postgres::Manager::from_config(
        pg.tp.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: method,
        },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(size as usize)
        .build()
        .expect("deadpool pool")
}

async fn pools(pg: &PgTarget, size: u32, config: PoolConfig) -> Pools {
    let sup = EmbeddedSupervisor::spawn(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("supervisor");
    let pw = sup
        .handle()
        .pool_with(pg.pw_config("bench-poolwarden"), config)
        .await
        .expect("poolwarden pool");
    let mut clients = Vec::new();
    for _ in 0..size {
        clients.push(connect_client(pg).await);
    }
    Pools {
        sup,
        pw,
        bb8_on: bb8_pool(pg, size, true).await,
        bb8_off: bb8_pool(pg, size, false).await,
        dp_fast: deadpool_pool(pg, size, RecyclingMethod::Fast),
        dp_verified: deadpool_pool(pg, size, RecyclingMethod::Verified),
        floor: Floor::filled(clients),
    }
}

impl Pools {
    async fn close(self) {
        self.dp_fast.close();
        self.dp_verified.close();
        drop(self.pw);
        let _ = self.sup.shutdown(Duration::from_secs(5)).await;
    }
}

/// Closed-loop results per peer, for one case.
pub struct CaseResult {
    pub workers: usize,
    pub size: u32,
    pub peers: Vec<Closed>,
}

pub async fn closed(
    ctx: &Ctx,
    pg: &PgTarget,
    targets: &mut Vec<Target>,
) -> (Section, Vec<CaseResult>) {
    let rounds = if ctx.quick { 1 } else { 3 };
    let (warmup, window) = (ctx.dur(0.5, 0.1), ctx.dur(2.5, 0.15));
    let mut section = Section::new(
        2,
        "PostgreSQL SELECT 1, closed loop",
        format!(
            "Each worker loops acquire, `simple_query(\"SELECT 1\")`, release, against {}. \
             {rounds} round(s) per pool, taken in turns: {} ms warm-up (pools fill \
             lazily, poolwarden as configured by default with max_size set), then {} ms timed. \
             Latency is the whole operation. Fairness: operations done by the least served \
             worker and by the median one.",
            pg.describe,
            warmup.as_millis(),
            window.as_millis()
        ),
    );
    let mut all = Vec::new();
    for (workers, size) in [(16usize, 8u32), (64, 16)] {
        let p = pools(
            pg,
            size,
            PoolConfig {
                max_size: size,
                ..PoolConfig::default()
            },
        )
        .await;
        let mut res: Vec<Closed> = (0..PEERS.len()).map(|_| Closed::empty(workers)).collect();
        for _ in 0..rounds {
            res[0].merge(closed_loop(&p.pw, workers, warmup, window).await);
            res[1].merge(closed_loop(&p.bb8_on, workers, warmup, window).await);
            res[2].merge(closed_loop(&p.bb8_off, workers, warmup, window).await);
            res[3].merge(closed_loop(&p.dp_fast, workers, warmup, window).await);
            res[4].merge(closed_loop(&p.dp_verified, workers, warmup, window).await);
            res[5].merge(closed_loop(&p.floor, workers, warmup, window).await);
        }
        let pw_stats = p.pw.stats();
        p.close().await;

        let table = closed_table(ctx, workers, size, &PEERS, &res);
        let pw_tp = res[0].throughput();
        let curves: Vec<_> = PEERS
            .iter()
            .zip(&res)
            .map(|(name, r)| (name.to_string(), hist::percentile_curve(&r.hist)))
            .collect();
        section.tables.push(table);
        section.notes.push(format!(
            "poolwarden at {workers}/{size}: {} connections opened, {} served, {} timeouts.",
            pw_stats.created,
            thousands(pw_stats.served as f64),
            pw_stats.timeouts
        ));
        let file = format!("s2-postgres-{workers}x{size}.svg");
        if let Err(e) = chart::percentiles(
            &ctx.chart_dir.join(&file),
            &format!("2. PostgreSQL SELECT 1, {workers} workers / {size} connections: latency by percentile"),
            &curves,
        ) {
            ctx.progress(&format!("  chart failed: {e}"));
        }
        section
            .charts
            .push((file, format!("latency percentiles, {workers}/{size}")));

        // Targets. The floor is not a peer: it is what no pool can beat.
        let (best_i, best) = res[1..5]
            .iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r.throughput()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("peers");
        targets.push(
            Target::at_least(
                2,
                &format!("throughput vs the best peer, {workers}/{size}"),
                pw_tp / best,
                0.95,
                format!(
                    "{} ({} vs {} of {})",
                    ratio(pw_tp / best),
                    thousands(pw_tp),
                    thousands(best),
                    PEERS[best_i]
                ),
                "≥ 0.95x".into(),
            )
            .because(crate::causes::pg_throughput()),
        );
        let (min, med) = res[0].fairness();
        targets.push(
            Target::at_least(
                2,
                &format!("fewest worker ops vs median, {workers}/{size}"),
                min as f64 / med.max(1) as f64,
                0.5,
                format!("{:.2} ({} / {})", min as f64 / med.max(1) as f64, min, med),
                "≥ 0.50".into(),
            )
            .because(crate::causes::pg_fairness()),
        );
        let s = hist::summary(&res[0].hist);
        let r = s.max.as_secs_f64() / s.p99.as_secs_f64().max(1e-9);
        targets.push(
            Target::at_most(
                2,
                &format!("max vs p99, {workers}/{size}"),
                r,
                10.0,
                format!("{:.1}x ({} vs {})", r, fmt_dur(s.max), fmt_dur(s.p99)),
                "≤ 10x".into(),
            )
            .because(crate::causes::pg_tail(s.max)),
        );
        all.push(CaseResult {
            workers,
            size,
            peers: res,
        });
    }
    (section, all)
}

/// The pools scenario 3 runs (indices into [`PEERS`]): poolwarden, the fastest variant of
/// each peer on this workload, and the floor.
const OPEN_PEERS: [usize; 4] = [0, 2, 3, 5];

pub async fn open(ctx: &Ctx, pg: &PgTarget, closed: &[CaseResult]) -> Section {
    let case = closed.first().expect("closed-loop results");
    let (workers, size) = (case.workers, case.size);
    let peak = case.peers[0].throughput();
    let runs = [(0.8, ctx.dur(20.0, 0.3)), (0.5, ctx.dur(10.0, 0.2))];
    let mut section = Section::new(
        3,
        "PostgreSQL SELECT 1 at a fixed arrival rate",
        format!(
            "Operations arrive at a fixed rate, each in its own task whatever the others are \
             doing, on pools of {size}; latencies are measured from each operation's intended \
             start, so they are free of coordinated omission. Rates: 80% of poolwarden's \
             closed-loop peak at {workers}/{size} ({} ops/s, the issue's figure) for {} s \
             (20 s rather than 30 s, to keep the whole run near 8 minutes), and 50% ({} ops/s) \
             for {} s. Pools: poolwarden (default config), bb8 without test on checkout and \
             deadpool Fast (each peer's fastest mode in scenario 2), and the floor. A \
             poolwarden acquire that finds `max_waiters` (1,024) already queued fails at once \
             with `PoolSaturated`; the others queue without bound.",
            thousands(0.8 * peak),
            runs[0].1.as_secs_f64(),
            thousands(0.5 * peak),
            runs[1].1.as_secs_f64()
        ),
    );
    let p = pools(
        pg,
        size,
        PoolConfig {
            max_size: size,
            ..PoolConfig::default()
        },
    )
    .await;
    let mut table = Table::new(
        "",
        &[
            "rate",
            "pool",
            "completed / arrived",
            "acquire wait p50",
            "acquire wait p99",
            "latency p99",
            "latency max",
        ],
    );
    let mut bars = Vec::new();
    let drain = Duration::from_secs(if ctx.quick { 2 } else { 10 });
    for (share, duration) in runs {
        let rate = share * peak;
        for &i in &OPEN_PEERS {
            let name = PEERS[i];
            // A short warm-up so every pool starts full.
            let _ = closed_loop_any(&p, i, workers, ctx.dur(0.3, 0.05)).await;
            let r = match i {
                0 => open_loop(&p.pw, rate, duration, drain).await,
                2 => open_loop(&p.bb8_off, rate, duration, drain).await,
                3 => open_loop(&p.dp_fast, rate, duration, drain).await,
                _ => open_loop(&p.floor, rate, duration, drain).await,
            };
            let w = hist::summary(&r.wait);
            let l = hist::summary(&r.latency);
            ctx.progress(&format!(
                "  {:.0}% {name}: {} of {} completed ({} failed), acquire wait p99 {}, latency p99 {}",
                share * 100.0,
                thousands(r.completed as f64),
                thousands(r.issued as f64),
                thousands(r.errors as f64),
                fmt_dur(w.p99),
                fmt_dur(l.p99)
            ));
            table.row(vec![
                format!("{} /s", thousands(rate)),
                name.to_string(),
                if r.errors > 0 {
                    format!(
                        "{} / {} ({} failed{})",
                        thousands(r.completed as f64),
                        thousands(r.issued as f64),
                        thousands(r.errors as f64),
                        if i == 0 { ": PoolSaturated" } else { "" }
                    )
                } else {
                    format!(
                        "{} / {}",
                        thousands(r.completed as f64),
                        thousands(r.issued as f64)
                    )
                },
                fmt_dur(w.p50),
                fmt_dur(w.p99),
                fmt_dur(l.p99),
                fmt_dur(l.max),
            ]);
            bars.push((
                format!("{:.0}%  {name}", share * 100.0),
                i,
                w.p99.as_secs_f64() * 1e3,
            ));
        }
    }
    p.close().await;
    section.tables.push(table);
    section.notes.push(
        "On this 2-core machine the load generator, the pools and the PostgreSQL server share \
         the cores, so an open loop sustains less than the closed-loop peak: where a pool \
         falls behind, its wait is the backlog growing; the 50% rows show the pools' own \
         acquire wait."
            .into(),
    );
    let file = "s3-open-loop.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "3. fixed arrival rate: p99 acquire wait (ms, lower is better)",
        "ms",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "p99 acquire wait at a fixed rate".into()));
    section
}

async fn closed_loop_any(p: &Pools, i: usize, workers: usize, d: Duration) -> Closed {
    match i {
        0 => closed_loop(&p.pw, workers, Duration::ZERO, d).await,
        1 => closed_loop(&p.bb8_on, workers, Duration::ZERO, d).await,
        2 => closed_loop(&p.bb8_off, workers, Duration::ZERO, d).await,
        3 => closed_loop(&p.dp_fast, workers, Duration::ZERO, d).await,
        4 => closed_loop(&p.dp_verified, workers, Duration::ZERO, d).await,
        _ => closed_loop(&p.floor, workers, Duration::ZERO, d).await,
    }
}

/// Scenario 7, run on a current-thread runtime of its own (an actix-web worker's shape),
/// while the poolwarden supervisor runs on its own thread.
pub fn cross_thread(ctx: &Ctx, pg: &PgTarget, targets: &mut Vec<Target>) -> Section {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(cross_thread_inner(ctx, pg, targets))
}

const S7_PEERS: [&str; 6] = [
    "poolwarden (default: min_idle 1)",
    "poolwarden (min_idle 0)",
    "bb8 (test on checkout)",
    "bb8 (no test)",
    "deadpool (Fast)",
    "floor",
];

async fn cross_thread_inner(ctx: &Ctx, pg: &PgTarget, targets: &mut Vec<Target>) -> Section {
    let rounds = if ctx.quick { 1 } else { 5 };
    let window = ctx.dur(1.0, 0.1);
    let mut section = Section::new(
        7,
        "Low load across threads",
        format!(
            "One caller, one operation at a time (acquire, `SELECT 1`, release), on a \
             current-thread tokio runtime (an actix-web worker's shape); the poolwarden \
             supervisor and its pool actors run on their own thread (`EmbeddedSupervisor`). \
             Default pool configs. {rounds} rounds of {} ms per pool, in turns. poolwarden's \
             default `min_idle = 1` connection is opened by the pool actor before timing \
             starts; the `min_idle 0` row lets the caller open its connection itself.",
            window.as_millis()
        ),
    );
    let sup = EmbeddedSupervisor::spawn(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("supervisor");
    let pw = sup
        .handle()
        .pool_with(pg.pw_config("bench-s7-default"), PoolConfig::default())
        .await
        .expect("pool");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pw.stats().idle < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pw0 = sup
        .handle()
        .pool_with(
            pg.pw_config("bench-s7-min0"),
            PoolConfig {
                min_idle: 0,
                ..PoolConfig::default()
            },
        )
        .await
        .expect("pool");
    let bb_on = bb8::Pool::builder()
        .build(PostgresConnectionManager::new(pg.tp.clone(), NoTls))
        .await
        .expect("bb8");
    let bb_off = bb8::Pool::builder()
        .test_on_check_out(false)
        .build(PostgresConnectionManager::new(pg.tp.clone(), NoTls))
        .await
        .expect("bb8");
    let dp = deadpool_pool(pg, 10, RecyclingMethod::Fast);
    let floor = Floor::filled(vec![connect_client(pg).await]);
    let mut res: Vec<Closed> = (0..S7_PEERS.len()).map(|_| Closed::empty(1)).collect();
    let warm = ctx.dur(0.1, 0.02);
    for _ in 0..rounds {
        res[0].merge(closed_loop(&pw, 1, warm, window).await);
        res[1].merge(closed_loop(&pw0, 1, warm, window).await);
        res[2].merge(closed_loop(&bb_on, 1, warm, window).await);
        res[3].merge(closed_loop(&bb_off, 1, warm, window).await);
        res[4].merge(closed_loop(&dp, 1, warm, window).await);
        res[5].merge(closed_loop(&floor, 1, warm, window).await);
    }
    let mut table = Table::new(
        "",
        &[
            "pool",
            "p50",
            "p99",
            "p99.9",
            "ops/s",
            "p50 vs bb8 (no test)",
        ],
    );
    let p50 = |i: usize| hist::summary(&res[i].hist).p50.as_secs_f64();
    let mut bars = Vec::new();
    for (i, name) in S7_PEERS.iter().enumerate() {
        let s = hist::summary(&res[i].hist);
        ctx.progress(&format!(
            "  {name}: p50 {}, p99 {}",
            fmt_dur(s.p50),
            fmt_dur(s.p99)
        ));
        table.row(vec![
            name.to_string(),
            fmt_dur(s.p50),
            fmt_dur(s.p99),
            fmt_dur(s.p999),
            thousands(res[i].throughput()),
            ratio(p50(i) / p50(3)),
        ]);
        bars.push((name.to_string(), i, s.p50.as_secs_f64() * 1e6));
    }
    section.tables.push(table);
    let best_bb8 = p50(2).min(p50(3));
    targets.push(
        Target::at_most(
            7,
            "p50 of one caller across threads vs bb8",
            p50(0) / best_bb8,
            1.15,
            format!(
                "{} ({} vs {}; with min_idle 0: {})",
                ratio(p50(0) / best_bb8),
                fmt_dur(Duration::from_secs_f64(p50(0))),
                fmt_dur(Duration::from_secs_f64(best_bb8)),
                ratio(p50(1) / best_bb8)
            ),
            "≤ 1.15x".into(),
        )
        .because(crate::causes::cross_thread(p50(0) / p50(1))),
    );
    let file = "s7-cross-thread.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "7. one caller, PostgreSQL SELECT 1: p50 latency (µs, lower is better)",
        "µs",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "p50 latency of one caller".into()));
    dp.close();
    drop((pw, pw0));
    let _ = sup.shutdown(Duration::from_secs(5)).await;
    section
}
