//! The pools on a real PostgreSQL server (shared by scenarios 2, 3 and 7) and scenario 2:
//! the closed loop.

use std::sync::Arc;
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{EmbeddedSupervisor, Error, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::time::Instant;
use tokio_postgres::NoTls;

use crate::hist::{self, fmt_dur};
use crate::peers::{Floor, Op};
use crate::ratios::{best, Bound, PerRound};
use crate::report::{thousands, Section, Target};
use crate::runner::{closed_loop, closed_table, merged, per_round, Closed};
use crate::{causes, recorder, Ctx, PgTarget};

const SQL: &str = "SELECT 1";

pub type Bb8Pg = bb8::Pool<PostgresConnectionManager<NoTls>>;

async fn select1(c: &tokio_postgres::Client) {
    c.simple_query(SQL).await.expect("SELECT 1");
}

/// One poolwarden operation: acquire, `SELECT 1`, release. Answers the acquire's wait, or
/// the acquire's error.
pub async fn pw_op(pool: &PoolHandle<PostgresBackend>) -> Result<Duration, Error> {
    let t = Instant::now();
    let c = pool.acquire().await?;
    let w = t.elapsed();
    select1(c.client()).await;
    Ok(w)
}

impl Op for PoolHandle<PostgresBackend> {
    async fn run(&self) -> Option<Duration> {
        pw_op(self).await.ok()
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

/// The pools of scenarios 2 and 3, indices into [`Pools`] (see [`each_pool`]).
pub const PEERS: [&str; 7] = [
    "poolwarden (default)",
    "poolwarden (recorder)",
    "bb8 (test on checkout)",
    "bb8 (no test)",
    "deadpool (Fast)",
    "deadpool (Verified)",
    "floor",
];
/// poolwarden without and with the Prometheus recorder: the rows every target is marked for.
pub const PW_ROWS: [usize; 2] = [0, 1];
/// The peers in the modes, of which the best is "the best peer".
pub const BEST_PEERS: [usize; 2] = [3, 4];
pub const FLOOR: usize = 6;

/// Every pool of a case, built against the same server; poolwarden with its default
/// `PoolConfig` but for `max_size`, which every pool shares.
pub struct Pools {
    sup: EmbeddedSupervisor<PostgresBackend>,
    pub pw: PoolHandle<PostgresBackend>,
    /// A second poolwarden pool (another `application_name`, so another key), created
    /// with the Prometheus recorder on.
    pub pw_rec: PoolHandle<PostgresBackend>,
    pub bb8_on: Bb8Pg,
    pub bb8_off: Bb8Pg,
    pub dp_fast: deadpool_postgres::Pool,
    pub dp_verified: deadpool_postgres::Pool,
    pub floor: Arc<Floor<tokio_postgres::Client>>,
}

/// Run `$body` with `$op` bound to pool `$i` of `$p` (a [`Pools`]), by [`PEERS`] index.
macro_rules! each_pool {
    ($p:expr, $i:expr, |$op:ident| $body:expr) => {
        each_pool!(@arms $p, $i, $op, $body, [
            0 pw, 1 pw_rec, 2 bb8_on, 3 bb8_off, 4 dp_fast, 5 dp_verified, 6 floor
        ])
    };
    (@arms $p:expr, $i:expr, $op:ident, $body:expr, [$($n:literal $field:ident),*]) => {
        match $i {
            $($n => {
                let $op = &$p.$field;
                $body
            })*
            other => unreachable!("no pool {other}"),
        }
    };
}
pub(crate) use each_pool;

pub async fn connect_client(pg: &PgTarget) -> tokio_postgres::Client {
    let (client, conn) = pg.tp.connect(NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// bb8 with `size` connections (bb8's default, 10, for `None`).
pub async fn bb8_pool(pg: &PgTarget, size: Option<u32>, test: bool) -> Bb8Pg {
    let mut b = bb8::Pool::builder().test_on_check_out(test);
    if let Some(size) = size {
        b = b.max_size(size);
    }
    b.build(PostgresConnectionManager::new(pg.tp.clone(), NoTls))
        .await
        .expect("bb8 pool")
}

pub fn deadpool_pool(pg: &PgTarget, size: u32, method: RecyclingMethod) -> deadpool_postgres::Pool {
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

/// A supervisor for the scenarios' poolwarden pools (no idle-pool eviction mid-run).
pub fn supervisor() -> EmbeddedSupervisor<PostgresBackend> {
    EmbeddedSupervisor::spawn(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("supervisor")
}

/// A poolwarden pool with `application_name = app`, created with the Prometheus recorder
/// on when `recorded`.
pub async fn pw_pool(
    sup: &EmbeddedSupervisor<PostgresBackend>,
    pg: &PgTarget,
    app: &str,
    config: PoolConfig,
    recorded: bool,
) -> PoolHandle<PostgresBackend> {
    let create = async {
        sup.handle()
            .pool_with(pg.pw_config(app), config)
            .await
            .expect("poolwarden pool")
    };
    if recorded {
        recorder::with_recorder(create, |p| p.stats().name).await
    } else {
        let pool = create.await;
        recorder::registered(&pool).await;
        pool
    }
}

pub async fn pools(pg: &PgTarget, size: u32) -> Pools {
    let sup = supervisor();
    let config = PoolConfig {
        max_size: size,
        ..PoolConfig::default()
    };
    let pw = pw_pool(&sup, pg, "bench-poolwarden", config.clone(), false).await;
    let pw_rec = pw_pool(&sup, pg, "bench-poolwarden-recorder", config, true).await;
    let mut clients = Vec::new();
    for _ in 0..size {
        clients.push(connect_client(pg).await);
    }
    Pools {
        sup,
        pw,
        pw_rec,
        bb8_on: bb8_pool(pg, Some(size), true).await,
        bb8_off: bb8_pool(pg, Some(size), false).await,
        dp_fast: deadpool_pool(pg, size, RecyclingMethod::Fast),
        dp_verified: deadpool_pool(pg, size, RecyclingMethod::Verified),
        floor: Floor::filled(clients),
    }
}

impl Pools {
    pub async fn close(self) {
        self.dp_fast.close();
        self.dp_verified.close();
        drop((self.pw, self.pw_rec));
        let _ = self.sup.shutdown(Duration::from_secs(5)).await;
    }
}

/// What scenario 3 takes from scenario 2: poolwarden's closed-loop peak of a case.
pub struct Peak {
    pub workers: usize,
    pub size: u32,
    /// poolwarden's (no recorder) median throughput of the rounds.
    pub throughput: f64,
}

pub async fn closed(ctx: &Ctx, pg: &PgTarget, targets: &mut Vec<Target>) -> (Section, Vec<Peak>) {
    let rounds = if ctx.quick { 1 } else { 3 };
    let (warmup, window) = (ctx.dur(0.3, 0.1), ctx.dur(2.2, 0.15));
    let mut section = Section::new(
        2,
        "PostgreSQL SELECT 1, closed loop",
        format!(
            "Each worker loops acquire, `simple_query(\"SELECT 1\")`, release, against {}. \
             {rounds} round(s); in each the pools take turns: {} ms warm-up (pools fill \
             lazily), then {} ms timed. poolwarden runs its default `PoolConfig` but for \
             `max_size` (the case's size, like every pool here), once without a metrics \
             recorder and once as a second pool created with a Prometheus recorder \
             (scraped every second). Latency is the whole operation; the table's figures \
             are of all rounds together, the ratio column and the targets are the median \
             of the per-round ratios with their spread. Fairness: operations done by the \
             least served worker and by the median one. CPU: the whole bench process, all \
             threads (the server is another process), per operation. The best peer is the \
             better of bb8 without test on checkout and deadpool Fast; the other modes are \
             shown for reference.",
            pg.describe,
            warmup.as_millis(),
            window.as_millis()
        ),
    );
    let _scraper = recorder::Scraper::start();
    let mut peaks = Vec::new();
    for (workers, size) in [(16usize, 8u32), (64, 16)] {
        let p = pools(pg, size).await;
        let mut runs: Vec<Vec<Closed>> = vec![Vec::new(); PEERS.len()];
        for _ in 0..rounds {
            for (i, r) in runs.iter_mut().enumerate() {
                r.push(each_pool!(p, i, |op| closed_loop(
                    op, workers, warmup, window
                )
                .await));
            }
        }
        let pw_stats = p.pw.stats();
        p.close().await;

        section
            .tables
            .push(closed_table(ctx, workers, size, &PEERS, &runs));
        section.notes.push(format!(
            "poolwarden at {workers}/{size}: {} connections opened, {} served, {} timeouts.",
            pw_stats.created,
            thousands(pw_stats.served as f64),
            pw_stats.timeouts
        ));
        chart_case(ctx, &mut section, workers, size, &runs);
        closed_targets(&format!("{workers}/{size}"), &runs, targets);
        peaks.push(Peak {
            workers,
            size,
            throughput: per_round(&runs[0], Closed::throughput).median(),
        });
    }
    (section, peaks)
}

fn chart_case(ctx: &Ctx, section: &mut Section, workers: usize, size: u32, runs: &[Vec<Closed>]) {
    let curves: Vec<_> = PEERS
        .iter()
        .zip(runs)
        .map(|(name, r)| (name.to_string(), hist::percentile_curve(&merged(r).hist)))
        .collect();
    section.percentile_chart(
        ctx,
        (
            &format!("s2-postgres-{workers}x{size}.svg"),
            &format!("latency percentiles, {workers}/{size}"),
        ),
        &format!(
            "2. PostgreSQL SELECT 1, {workers} workers / {size} connections: latency by percentile"
        ),
        &curves,
    );
}

/// Scenario 2's targets for one case, each marked for both poolwarden rows.
fn closed_targets(case: &str, runs: &[Vec<Closed>], targets: &mut Vec<Target>) {
    let tp: Vec<PerRound> = runs
        .iter()
        .map(|r| per_round(r, Closed::throughput))
        .collect();
    let p999: Vec<PerRound> = runs
        .iter()
        .map(|r| per_round(r, |c| hist::summary(&c.hist).p999.as_secs_f64()))
        .collect();
    let (best_tp, _) = best(BEST_PEERS.map(|i| (i, &tp[i])), true);
    let (best_p999, _) = best(BEST_PEERS.map(|i| (i, &p999[i])), false);
    let cpu = |i: usize| merged(&runs[i]).cpu_per_op();
    let ops = |x: f64| format!("{} ops/s", thousands(x));
    let dur = |x: f64| fmt_dur(Duration::from_secs_f64(x));
    for pw in PW_ROWS {
        let row = PEERS[pw];
        for (vs, limit) in [(best_tp, 1.0), (FLOOR, 0.97)] {
            let who = if vs == FLOOR {
                "the floor"
            } else {
                "the best peer"
            };
            targets.push(Target::median_vs(
                2,
                &format!("{row}: throughput vs {who}, {case}"),
                &tp[pw],
                (&tp[vs], PEERS[vs]),
                Bound::AtLeast(limit),
                ops,
                |r| causes::pg_throughput(r, limit, PEERS[vs], cpu(pw), cpu(vs)),
            ));
        }
        let fair = per_round(&runs[pw], Closed::fairness_ratio);
        targets.push(
            Target::median(
                2,
                &format!("{row}: fewest worker ops vs median, {case}"),
                &fair,
                Bound::AtLeast(0.5),
                "",
            )
            .because(causes::pg_fairness(&fair)),
        );
        targets.push(Target::median_vs(
            2,
            &format!("{row}: p99.9 vs the best peer's, {case}"),
            &p999[pw],
            (&p999[best_p999], PEERS[best_p999]),
            Bound::AtMost(1.0),
            dur,
            |r| causes::pg_tail(r, PEERS[best_p999]),
        ));
        let tail = per_round(&runs[pw], |c| {
            let s = hist::summary(&c.hist);
            s.max.as_secs_f64() / s.p99.as_secs_f64().max(1e-9)
        });
        let worst = runs[pw]
            .iter()
            .map(|c| hist::summary(&c.hist).max)
            .max()
            .unwrap_or_default();
        targets.push(
            Target::at_most(
                2,
                &format!("{row}: max vs p99, {case}"),
                tail.median(),
                10.0,
                tail.shown_as(|x| format!("{x:.1}x"), |x| format!("{x:.1}")),
                "≤ 10x".into(),
            )
            .because(causes::pg_stall(worst)),
        );
    }
}
