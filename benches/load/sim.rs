//! Scenarios on the simulated backend: 5 (many keys), 8 (cold storm). Scenario 6 (routing,
//! also simulated) is `routing.rs`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::time::Instant;

use crate::chart;
use crate::hist::fmt_dur;
use crate::mem;
use crate::peers::{self, ConnectGauge, Floor, NoopManager, Op};
use crate::report::{ratio, thousands, Section, Table, Target};
use crate::runner::count_loop;
use crate::Ctx;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ----- 5. many keys ------------------------------------------------------------------------

/// Acquire + release cycling over a set of pools.
#[derive(Clone)]
struct Cycle {
    pools: Arc<Vec<PoolHandle<SimBackend>>>,
    next: Arc<AtomicUsize>,
}

impl Op for Cycle {
    async fn run(&self) -> Option<Duration> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pools.len();
        let t = Instant::now();
        let c = self.pools[i].acquire().await.expect("acquire");
        let w = t.elapsed();
        drop(c);
        Some(w)
    }
}

/// The reference for *spread*: acquire + release cycling through as many bb8 pools.
#[derive(Clone)]
struct Bb8Cycle {
    pools: Arc<Vec<peers::Bb8Noop>>,
    next: Arc<AtomicUsize>,
}

impl Op for Bb8Cycle {
    async fn run(&self) -> Option<Duration> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pools.len();
        let t = Instant::now();
        let c = self.pools[i].get().await.expect("bb8 get");
        let w = t.elapsed();
        drop(c);
        Some(w)
    }
}

/// bb8 spread over `n` warm pools (min_idle 1), ns per acquire + release.
async fn bb8_spread(ctx: &Ctx, n: usize) -> f64 {
    let mut pools = Vec::with_capacity(n);
    for _ in 0..n {
        pools.push(peers::bb8_noop(4, Some(1), NoopManager::default()).await);
    }
    let cycle = Bb8Cycle {
        pools: Arc::new(pools),
        next: Arc::new(AtomicUsize::new(0)),
    };
    let rounds = if ctx.quick { 1 } else { 5 };
    let mut s = Vec::new();
    for _ in 0..rounds {
        s.push(count_loop(&cycle, 1, ctx.dur(0.05, 0.01), ctx.dur(0.3, 0.04)).await);
    }
    median(s)
}

pub async fn many_keys(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let sizes: &[usize] = if ctx.quick {
        &[1, 100, 1_000]
    } else {
        &[1, 100, 1_000, 10_000]
    };
    let mut section = Section::new(
        5,
        "Many pool keys",
        "N pools (one key each: same simulated server, a different database) on one \
         supervisor with default pool configs (min_idle 1, maintenance every 1 s, background \
         probe every 5 s). Acquire + release from one task: *hot* always uses the same pool \
         while N exist, *spread* cycles through all N. Memory: heap bytes allocated and not \
         freed while the N pools were created and warmed (a counting global allocator in the \
         bench binary, on only for this), divided by N; RSS delta from `/proc/self/statm` \
         beside it. CPU: the supervisor thread's CPU time while all N pools sit idle. \
         *bb8 spread*: the same cycle through N warm bb8 pools on a no-op manager, the \
         reference for what touching N pools' state costs any pool.",
    );
    let mut table = Table::new(
        "",
        &[
            "pools",
            "hot ns/op",
            "spread ns/op",
            "bb8 spread ns/op",
            "heap / pool",
            "RSS / pool",
            "idle CPU of the supervisor thread",
            "create all",
        ],
    );
    let mut hot1 = 0.0;
    let mut spread1 = 0.0;
    let mut bb8_spread1 = 0.0;
    let mut last = (0usize, 0.0, 0.0, 0.0, 0.0);
    let mut bars = Vec::new();
    for &n in sizes {
        let sup = EmbeddedSupervisor::spawn(
            SimBackend::default(),
            SupervisorConfig {
                max_pools: 20_000,
                pool_idle_timeout: None,
                ..SupervisorConfig::default()
            },
        )
        .expect("supervisor");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rss0 = mem::rss_bytes();
        let heap0 = mem::start_counting();
        let t = Instant::now();
        let mut pools = Vec::with_capacity(n);
        for i in 0..n {
            let cfg = ConnectionConfig::parse(&format!("sim://keys/db{i}")).expect("config");
            pools.push(sup.handle().pool(cfg).await.expect("pool"));
        }
        let create = t.elapsed();
        // Let every pool warm its min_idle connection.
        let deadline = Instant::now() + Duration::from_secs(20);
        while pools.iter().any(|p| p.stats().idle < 1) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(ctx.dur(0.5, 0.1)).await;
        let heap = mem::stop_counting(heap0) as f64 / n as f64;
        let rss = (mem::rss_bytes().saturating_sub(rss0)) as f64 / n as f64;
        let cpu_window = ctx.dur(3.0, 0.5);
        let cpu0 = mem::thread_cpu("poolwarden");
        tokio::time::sleep(cpu_window).await;
        let cpu = (mem::thread_cpu("poolwarden") - cpu0) / cpu_window.as_secs_f64();

        let pools = Arc::new(pools);
        let hot = Cycle {
            pools: Arc::new(vec![pools[0].clone()]),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let spread = Cycle {
            pools: Arc::clone(&pools),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let rounds = if ctx.quick { 1 } else { 5 };
        let (mut h, mut s) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            h.push(count_loop(&hot, 1, ctx.dur(0.05, 0.01), ctx.dur(0.3, 0.04)).await);
            s.push(count_loop(&spread, 1, ctx.dur(0.05, 0.01), ctx.dur(0.3, 0.04)).await);
        }
        let (h, s) = (median(h), median(s));
        let b = bb8_spread(ctx, n).await;
        if n == 1 {
            hot1 = h;
            spread1 = s;
            bb8_spread1 = b;
        }
        ctx.progress(&format!(
            "  {n:>5} pools: hot {h:.0} ns, spread {s:.0} ns, heap {heap:.0} B/pool, rss {rss:.0} B/pool, supervisor CPU {:.1}%, created in {}",
            cpu * 100.0,
            fmt_dur(create)
        ));
        table.row(vec![
            thousands(n as f64),
            format!("{h:.0}"),
            format!("{s:.0}"),
            format!("{b:.0}"),
            if n >= 100 {
                format!("{:.1} KiB", heap / 1024.0)
            } else {
                "—".into()
            },
            if n >= 1_000 {
                format!("{:.1} KiB", rss / 1024.0)
            } else {
                "—".into()
            },
            format!("{:.1}% of a core", cpu * 100.0),
            fmt_dur(create),
        ]);
        bars.push((format!("{} pools  hot", thousands(n as f64)), 0, h));
        bars.push((format!("{} pools  spread", thousands(n as f64)), 1, s));
        last = (n, s, heap, h, b);
        drop(pools);
        drop(hot);
        drop(spread);
        let _ = sup.shutdown(Duration::from_secs(10)).await;
    }
    section.tables.push(table);
    let (n, s, heap, h, b) = last;
    targets.push(
        Target::at_most(
            5,
            &format!(
                "acquire cost at {} keys vs 1 key (spread)",
                thousands(n as f64)
            ),
            s / spread1,
            1.2,
            format!(
                "{} ({s:.0} vs {spread1:.0} ns; hot {}; bb8 spread {})",
                ratio(s / spread1),
                ratio(h / hot1),
                ratio(b / bb8_spread1)
            ),
            "≤ 1.20x".into(),
        )
        .because(crate::causes::many_keys_cost(
            s / spread1,
            h / hot1,
            b / bb8_spread1,
        )),
    );
    targets.push(
        Target::at_most(
            5,
            &format!("memory per idle pool actor ({} pools)", thousands(n as f64)),
            heap,
            8192.0,
            format!("{:.1} KiB", heap / 1024.0),
            "≤ 8 KiB".into(),
        )
        .because(crate::causes::many_keys_memory(heap)),
    );
    let file = "s5-keys.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "5. acquire + release with N pools alive (ns/op)",
        "ns per operation",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "ns/op by number of pools".into()));
    section
}

// ----- 8. cold storm -----------------------------------------------------------------------

const STORM_TASKS: usize = 500;
const STORM_SIZE: u32 = 16;
const STORM_DONE: u64 = 1_000;
const CONNECT_LATENCY: Duration = Duration::from_millis(5);
const QUERY_LATENCY: Duration = Duration::from_millis(1);

/// 500 tasks loop acquire, a 1 ms query, release, until 1,000 have completed. Answers the
/// time to the 1,000th completion.
async fn storm<F, Fut>(op: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let at = Arc::new(std::sync::Mutex::new(None));
    let tasks: Vec<_> = (0..STORM_TASKS)
        .map(|_| {
            let (op, done, reached, at) = (op.clone(), done.clone(), reached.clone(), at.clone());
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < STORM_DONE {
                    op().await;
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == STORM_DONE {
                        *at.lock().expect("lock") = Some(start.elapsed());
                        reached.notify_one();
                    }
                }
            })
        })
        .collect();
    reached.notified().await;
    for t in tasks {
        let _ = t.await;
    }
    let took = at.lock().expect("lock").expect("set when reached");
    took
}

pub async fn cold_storm(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let mut section = Section::new(
        8,
        "Cold storm",
        format!(
            "{STORM_TASKS} tasks start at once on an empty pool of {STORM_SIZE} (min_idle 0); \
             each loops acquire, a {} ms query, release. Connects take {} ms (poolwarden: the \
             simulated backend with these latencies; the others: managers that sleep as long). \
             Time to the first {STORM_DONE} completions (median of rounds) and the peak number \
             of connects in progress at once (largest of rounds).",
            QUERY_LATENCY.as_millis(),
            CONNECT_LATENCY.as_millis()
        ),
    );
    let rounds = if ctx.quick { 1 } else { 5 };
    let names = ["floor", "poolwarden", "bb8", "deadpool", "mobc"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut peaks = vec![0usize; names.len()];
    let mut connects = vec![0usize; names.len()];
    let behavior = SimBehavior {
        connect_latency: CONNECT_LATENCY,
        query_latency: QUERY_LATENCY,
        ..SimBehavior::default()
    };
    for round in 0..rounds {
        // floor
        let gauge = Arc::new(ConnectGauge::default());
        let fl = Floor::<peers::Noop>::empty(STORM_SIZE as usize);
        let g = gauge.clone();
        let t = storm(move || {
            let (fl, g) = (fl.clone(), g.clone());
            async move {
                let c = fl.get_or_connect(|| g.connect(CONNECT_LATENCY)).await;
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[0].push(t.as_secs_f64());
        peaks[0] = peaks[0].max(gauge.peak());
        connects[0] = connects[0].max(gauge.total.load(Ordering::Relaxed));

        // poolwarden
        let sim = SimBackend::default();
        sim.set_default_behavior(behavior.clone());
        let sup = EmbeddedSupervisor::spawn(sim.clone(), SupervisorConfig::default())
            .expect("supervisor");
        let conn = ConnectionConfig::sim(format!("storm-{round}"));
        let server = sim.server(&conn.primary_host());
        let pw = sup
            .handle()
            .pool_with(
                conn,
                PoolConfig {
                    min_idle: 0,
                    max_size: STORM_SIZE,
                    ..PoolConfig::default()
                },
            )
            .await
            .expect("pool");
        let p = pw.clone();
        let t = storm(move || {
            let p = p.clone();
            async move {
                let mut c = p.acquire().await.expect("acquire");
                c.query("SELECT 1").await.expect("query");
            }
        })
        .await;
        times[1].push(t.as_secs_f64());
        peaks[1] = peaks[1].max(server.peak_in_flight_connects());
        connects[1] = connects[1].max(server.connects() as usize);
        drop(pw);
        let _ = sup.shutdown(Duration::from_secs(5)).await;

        // bb8
        let m = NoopManager {
            latency: CONNECT_LATENCY,
            gauge: Arc::new(ConnectGauge::default()),
        };
        let gauge = m.gauge.clone();
        let bb = peers::bb8_noop(STORM_SIZE, None, m).await;
        let t = storm(move || {
            let bb = bb.clone();
            async move {
                let c = bb.get().await.expect("bb8 get");
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[2].push(t.as_secs_f64());
        peaks[2] = peaks[2].max(gauge.peak());
        connects[2] = connects[2].max(gauge.total.load(Ordering::Relaxed));

        // deadpool
        let m = NoopManager {
            latency: CONNECT_LATENCY,
            gauge: Arc::new(ConnectGauge::default()),
        };
        let gauge = m.gauge.clone();
        let dp = peers::deadpool_noop(STORM_SIZE, m);
        let t = storm(move || {
            let dp = dp.clone();
            async move {
                let c = dp.get().await.expect("deadpool get");
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[3].push(t.as_secs_f64());
        peaks[3] = peaks[3].max(gauge.peak());
        connects[3] = connects[3].max(gauge.total.load(Ordering::Relaxed));

        // mobc
        let m = NoopManager {
            latency: CONNECT_LATENCY,
            gauge: Arc::new(ConnectGauge::default()),
        };
        let gauge = m.gauge.clone();
        let mb = peers::mobc_noop(STORM_SIZE, m);
        let t = storm(move || {
            let mb = mb.clone();
            async move {
                let c = mb.get().await.expect("mobc get");
                tokio::time::sleep(QUERY_LATENCY).await;
                drop(c);
            }
        })
        .await;
        times[4].push(t.as_secs_f64());
        peaks[4] = peaks[4].max(gauge.peak());
        connects[4] = connects[4].max(gauge.total.load(Ordering::Relaxed));
    }
    let mut table = Table::new(
        "",
        &[
            "pool",
            "time to 1,000 completions",
            "peak connects at once",
            "connects in all",
        ],
    );
    let mut bars = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let t = median(times[i].clone());
        ctx.progress(&format!(
            "  {name}: {:.1} ms to {STORM_DONE}, peak {} connects",
            t * 1e3,
            peaks[i]
        ));
        table.row(vec![
            name.to_string(),
            format!("{:.1} ms", t * 1e3),
            peaks[i].to_string(),
            connects[i].to_string(),
        ]);
        bars.push((name.to_string(), i, t * 1e3));
    }
    section.tables.push(table);
    let max_connecting = PoolConfig::default().max_connecting;
    targets.push(
        Target::at_most(
            8,
            "peak concurrent connects in a cold storm",
            peaks[1] as f64,
            f64::from(max_connecting),
            format!("{} (largest of the rounds)", peaks[1]),
            format!("≤ max_connecting ({max_connecting}, the default)"),
        )
        .because(crate::causes::storm_connects(peaks[1], max_connecting)),
    );
    // The best peer: the faster of bb8 and deadpool by their median; ratios per round.
    let per_round = |i: usize| crate::ratios::PerRound::new(times[i].clone());
    let (pw_r, bb8_r, dp_r) = (per_round(1), per_round(2), per_round(3));
    let (peer_t, peer_r) = crate::ratios::best([(2, &bb8_r), (3, &dp_r)], false);
    targets.push(Target::median_vs(
        8,
        "time to 1,000 completions in a cold storm vs the best peer",
        &pw_r,
        (peer_r, names[peer_t]),
        crate::ratios::Bound::AtMost(1.05),
        |t| format!("{:.1} ms", t * 1e3),
        |r| crate::causes::storm_time(r, names[peer_t]),
    ));
    let file = "s8-storm.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "8. cold storm: time to 1,000 completions (ms, lower is better)",
        "ms",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "time to 1,000 completions".into()));
    section
}
