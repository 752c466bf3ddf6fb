//! Scenario 6, routing: what a replica-set read costs beside a single pool's acquire, and
//! how the strategies spread reads when one replica is slow.

use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior, SimServer};
use poolwarden::{
    ConnectionConfig, EmbeddedSupervisor, PoolConfig, PoolKey, ReadOptions, ReplicaSetConfig,
    ReplicaSetHandle, Role, Strategy, SupervisorConfig,
};
use tokio::time::Instant;

use crate::chart;
use crate::hist::{fmt_dur, summary};
use crate::peers::{self, Op};
use crate::ratios::{Bound, PerRound};
use crate::report::{ratio, thousands, Section, Table, Target};
use crate::runner::{closed_loop, count_loop};
use crate::Ctx;

/// A read's cost at most this many times a single pool's acquire (issue 14, target 5).
const LIMIT: f64 = 1.15;
/// Connections per member pool.
const SIZE: u32 = 8;
/// The replicas' query latency in the slow-replica runs, and the slow one's.
const FAST: Duration = Duration::from_millis(1);
const SLOW: Duration = Duration::from_millis(10);
/// Callers in the slow-replica runs.
const CALLERS: usize = 16;

fn name(s: Strategy) -> &'static str {
    match s {
        Strategy::RoundRobin => "round-robin",
        Strategy::Random => "random",
        Strategy::LeastLoaded => "least-loaded",
        Strategy::PowerOfTwo => "power of two",
    }
}

/// A read by `strategy` (acquire + release), with a `SELECT 1` in between when `query`.
#[derive(Clone)]
struct Read {
    set: ReplicaSetHandle<SimBackend>,
    options: ReadOptions,
    query: bool,
}

impl Read {
    fn new(set: &ReplicaSetHandle<SimBackend>, strategy: Strategy, query: bool) -> Self {
        Self {
            set: set.clone(),
            options: ReadOptions {
                strategy: Some(strategy),
                ..ReadOptions::default()
            },
            query,
        }
    }
}

impl Op for Read {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let mut c = self
            .set
            .read_with(self.options)
            .await
            .expect("replica-set read");
        let w = t.elapsed();
        if self.query {
            c.query("SELECT 1").await.expect("query");
        }
        Some(w)
    }
}

/// A primary and `replicas` replicas on `sim`, member pools of [`SIZE`] warmed connections;
/// answers once every replica is usable and warm, with each replica's key and server.
async fn start_set(
    sup: &EmbeddedSupervisor<SimBackend>,
    sim: &SimBackend,
    name: &str,
    replicas: usize,
) -> (ReplicaSetHandle<SimBackend>, Vec<(PoolKey, SimServer)>) {
    let primary = ConnectionConfig::sim(format!("{name}-primary"));
    let replicas: Vec<_> = (1..=replicas)
        .map(|i| ConnectionConfig::sim(format!("{name}-r{i}")))
        .collect();
    let p = sim.server(&primary.primary_host());
    let servers: Vec<_> = replicas
        .iter()
        .map(|r| {
            let s = sim.server(&r.primary_host());
            s.replicate_from(&p);
            (PoolKey::of(r), s)
        })
        .collect();
    let n = replicas.len();
    let mut cfg = ReplicaSetConfig::new(name, primary, replicas);
    cfg.topology_interval = Duration::from_millis(100);
    cfg.pool = Some(PoolConfig {
        min_idle: SIZE,
        max_size: SIZE,
        ..PoolConfig::default()
    });
    let set = sup.handle().replica_set(cfg).await.expect("replica set");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let warm = set
            .topology()
            .iter()
            .filter(|m| m.role == Role::Replica && m.usable && m.idle >= SIZE as usize)
            .count();
        if warm == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (set, servers)
}

pub async fn run(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let mut section = Section::new(
        6,
        "Routing: a read on a replica set of 3 beside a single pool",
        format!(
            "A replica set (a primary and two replicas, pools of {SIZE} warmed connections) on \
             the simulated backend with zero latency, beside one pool of {SIZE}: acquire + \
             release, ns/op, median of rounds taken in turns (ratios: the median of the \
             rounds' ratios); reads by the default strategy \
             (power of two choices) and by round-robin. Then one slow replica: a primary and \
             three replicas answering queries in {} ms, one of them in {} ms; {CALLERS} callers \
             in a closed loop read (acquire, `SELECT 1`, release) by each strategy in turn.",
            FAST.as_millis(),
            SLOW.as_millis()
        ),
    );
    let sim = SimBackend::default();
    let sup = EmbeddedSupervisor::spawn(
        sim.clone(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("supervisor");
    cost(ctx, &sup, &sim, &mut section, targets).await;
    slow_replica(ctx, &sup, &sim, &mut section).await;
    let _ = sup.shutdown(Duration::from_secs(5)).await;
    section
}

/// A read's cost beside a single pool's acquire, at 1 and 16 tasks; the targets.
async fn cost(
    ctx: &Ctx,
    sup: &EmbeddedSupervisor<SimBackend>,
    sim: &SimBackend,
    section: &mut Section,
    targets: &mut Vec<Target>,
) {
    let (set, _) = start_set(sup, sim, "rs", 2).await;
    let single = peers::poolwarden_warm(sup, "rs-single", SIZE).await;
    let default = Read::new(&set, Strategy::default(), false);
    let round_robin = Read::new(&set, Strategy::RoundRobin, false);
    let mut table = Table::new(
        "",
        &[
            "tasks",
            "single pool ns/op",
            "read (power of two) ns/op",
            "read / single",
            "read (round-robin) ns/op",
            "round-robin / single",
        ],
    );
    let mut bars = Vec::new();
    let rounds = if ctx.quick { 1 } else { 5 };
    for tasks in [1usize, 16] {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let (warmup, window) = (ctx.dur(0.05, 0.01), ctx.dur(0.3, 0.05));
        for _ in 0..rounds {
            a.push(count_loop(&single, tasks, warmup, window).await);
            b.push(count_loop(&default, tasks, warmup, window).await);
            c.push(count_loop(&round_robin, tasks, warmup, window).await);
        }
        let (single_r, p2c_r, rr_r) = (PerRound::new(a), PerRound::new(b), PerRound::new(c));
        let (a, b, c) = (single_r.median(), p2c_r.median(), rr_r.median());
        ctx.progress(&format!(
            "  {tasks:>2} tasks: single {a:.0} ns, read {b:.0} ns (power of two), {c:.0} ns (round-robin)"
        ));
        table.row(vec![
            tasks.to_string(),
            format!("{a:.0}"),
            format!("{b:.0}"),
            ratio(PerRound::ratio(&p2c_r, &single_r).median()),
            format!("{c:.0}"),
            ratio(PerRound::ratio(&rr_r, &single_r).median()),
        ]);
        bars.push((format!("{tasks} tasks  single pool"), 0, a));
        bars.push((format!("{tasks} tasks  read, power of two"), 1, b));
        bars.push((format!("{tasks} tasks  read, round-robin"), 2, c));
        targets.push(Target::median_vs(
            6,
            &format!("replica-set read vs a single pool's acquire, {tasks} task(s)"),
            &p2c_r,
            (&single_r, "a single pool"),
            Bound::AtMost(LIMIT),
            |ns| format!("{ns:.0} ns"),
            |_| cause(tasks, a, b, c),
        ));
    }
    let reads: Vec<String> = set
        .topology()
        .iter()
        .map(|m| {
            format!(
                "{} {:?}: {} reads",
                m.host,
                m.role,
                thousands(m.reads as f64)
            )
        })
        .collect();
    section.tables.push(table);
    section
        .notes
        .push(format!("Reads per member: {}.", reads.join("; ")));
    let file = "s6-routing.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "6. read on a replica set of 3 vs a single pool (ns/op)",
        "ns per operation",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "replica-set read vs single pool".into()));
}

/// Why a read missed its target, from this run's figures: `single`, `p2c` and `rr` are ns
/// per operation of the single pool and of reads by power of two and by round-robin.
fn cause(tasks: usize, single: f64, p2c: f64, rr: f64) -> String {
    let extra = p2c - single;
    let draw = p2c - rr;
    let mut s = format!(
        "routing adds {extra:.0} ns per read at {tasks} task(s): the member snapshot (an \
         `arc-swap` load), for each member its role, reachability and its pool's breaker, \
         health flags, the pick, the served-read counters, and `read_with` around the \
         acquire (the usual case is served by the acquire's first, synchronous step, without \
         building an acquire future, and the connection moves out once more); power \
         of two costs {draw:+.0} ns beside round-robin (one draw and the two candidates' \
         checked-out and waiting counters). `benches/instructions.sh` counts the instructions \
         (`poolwarden-set`, `poolwarden-set-rr` against `poolwarden`)."
    );
    if tasks > 1 {
        s.push_str(
            " With tasks on both threads, the flags and counters a pick reads sit beside \
             counters the other thread's acquires write, so reading them misses the cache.",
        );
    }
    s
}

/// One slow replica: throughput, latency and the slow replica's share of reads by strategy.
async fn slow_replica(
    ctx: &Ctx,
    sup: &EmbeddedSupervisor<SimBackend>,
    sim: &SimBackend,
    section: &mut Section,
) {
    let (set, replicas) = start_set(sup, sim, "slow", 3).await;
    for (i, (_, server)) in replicas.iter().enumerate() {
        server.set_behavior(SimBehavior {
            query_latency: if i == 0 { SLOW } else { FAST },
            ..SimBehavior::default()
        });
    }
    let slow = replicas[0].0;
    // Reads served by all members and by the slow one, so far.
    let reads = || {
        let t = set.topology();
        let slow = t.iter().find(|m| m.key == slow).map_or(0, |m| m.reads);
        (t.iter().map(|m| m.reads).sum::<u64>(), slow)
    };
    let mut table = Table::new(
        format!(
            "One replica of three answering in {} ms, the others in {} ms; {CALLERS} callers.",
            SLOW.as_millis(),
            FAST.as_millis()
        ),
        &[
            "strategy",
            "reads/s",
            "p50",
            "p99",
            "share of reads on the slow replica",
        ],
    );
    for strategy in [
        Strategy::RoundRobin,
        Strategy::LeastLoaded,
        Strategy::PowerOfTwo,
    ] {
        let (all0, slow0) = reads();
        let run = closed_loop(
            &Read::new(&set, strategy, true),
            CALLERS,
            ctx.dur(0.3, 0.05),
            ctx.dur(2.0, 0.2),
        )
        .await;
        // Of every read of the run, warm-up included.
        let (all1, slow1) = reads();
        let share = (slow1 - slow0) as f64 / (all1 - all0).max(1) as f64;
        let s = summary(&run.hist);
        ctx.progress(&format!(
            "  slow replica, {}: {:.0} reads/s, p99 {}",
            name(strategy),
            run.throughput(),
            fmt_dur(s.p99)
        ));
        table.row(vec![
            name(strategy).into(),
            thousands(run.throughput()),
            fmt_dur(s.p50),
            fmt_dur(s.p99),
            format!("{:.1}%", 100.0 * share),
        ]);
    }
    section.tables.push(table);
}
