//! Scenario 5, many keys: N pools on one supervisor, what they cost while idle (heap per
//! pool with and without a metrics recorder, CPU of the whole process) and what touching
//! a different pool at each acquire costs beside bb8 doing the same.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::backends::sim::SimBackend;
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::time::Instant;

use crate::chart;
use crate::hist::fmt_dur;
use crate::mem;
use crate::peers::{self, NoopManager, Op};
use crate::recorder;
use crate::report::{ratio, thousands, Section, Table, Target};
use crate::runner::count_loop;
use crate::sim::median;
use crate::Ctx;

/// The limits of issue 14, target 6.
const SPREAD_VS_BB8: f64 = 0.8;
const IDLE_CPU: f64 = 0.01;
const HEAP_PER_POOL: f64 = 4096.0;

/// Acquire + release cycling through a set of pools, poolwarden's or a peer's.
#[derive(Clone)]
struct Cycle<P> {
    pools: Arc<Vec<P>>,
    next: Arc<AtomicUsize>,
}

impl<P> Cycle<P> {
    fn new(pools: Arc<Vec<P>>) -> Self {
        Self {
            pools,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<P: Op> Op for Cycle<P> {
    async fn run(&self) -> Option<Duration> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pools.len();
        self.pools[i].run().await
    }
}

/// Median ns per operation of `op` from one task.
async fn ns_per_op<P: Op>(ctx: &Ctx, op: &P) -> f64 {
    let rounds = if ctx.quick { 1 } else { 5 };
    let mut s = Vec::new();
    for _ in 0..rounds {
        s.push(count_loop(op, 1, ctx.dur(0.05, 0.01), ctx.dur(0.3, 0.04)).await);
    }
    median(s)
}

/// bb8 spread over `n` warm pools (min_idle 1), ns per acquire + release.
async fn bb8_spread(ctx: &Ctx, n: usize) -> f64 {
    let mut pools = Vec::with_capacity(n);
    for _ in 0..n {
        pools.push(peers::bb8_noop(4, Some(1), NoopManager::default()).await);
    }
    ns_per_op(ctx, &Cycle::new(Arc::new(pools))).await
}

/// `n` pools on a supervisor of their own, created and warmed while the heap was counted.
struct Fleet {
    sup: EmbeddedSupervisor<SimBackend>,
    sim: SimBackend,
    /// The simulated server's name.
    server: String,
    pools: Vec<PoolHandle<SimBackend>>,
    /// Heap allocated and not freed while the pools were created and warmed, per pool.
    heap: f64,
    /// Resident set growth over the same, per pool.
    rss: f64,
    create: Duration,
}

impl Fleet {
    /// `n` pools on server `host` (4 characters, so every fleet's configs are the same
    /// size; a host of its own, so no pool finds its series already registered by an
    /// earlier fleet), each with `config` (the default when `None`), registering with the
    /// Prometheus recorder when `record`.
    async fn start(
        ctx: &Ctx,
        n: usize,
        host: &str,
        config: Option<PoolConfig>,
        record: bool,
    ) -> Self {
        let sim = SimBackend::default();
        let sup = EmbeddedSupervisor::spawn(
            sim.clone(),
            SupervisorConfig {
                max_pools: 20_000,
                pool_idle_timeout: None,
                ..SupervisorConfig::default()
            },
        )
        .expect("supervisor");
        tokio::time::sleep(Duration::from_millis(50)).await;
        recorder::set(record);
        let rss0 = mem::rss_bytes();
        let heap0 = mem::start_counting();
        let t = Instant::now();
        let mut pools = Vec::with_capacity(n);
        let mut server = String::new();
        for i in 0..n {
            let cfg = ConnectionConfig::parse(&format!("sim://{host}/db{i}")).expect("config");
            server = cfg.primary_host();
            let pool = match &config {
                Some(c) => sup.handle().pool_with(cfg, c.clone()).await,
                None => sup.handle().pool(cfg).await,
            };
            pools.push(pool.expect("pool"));
        }
        let create = t.elapsed();
        // Let every pool warm its min_idle connections.
        let deadline = Instant::now() + Duration::from_secs(20);
        while pools
            .iter()
            .any(|p| p.stats().idle < p.stats().min_idle as usize)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(ctx.dur(0.5, 0.1)).await;
        let heap = mem::stop_counting(heap0) as f64 / n as f64;
        recorder::set(false);
        let rss = (mem::rss_bytes().saturating_sub(rss0)) as f64 / n as f64;
        Self {
            sup,
            sim,
            server,
            pools,
            heap,
            rss,
            create,
        }
    }

    /// CPU of the whole process while the pools sit idle, with where it went.
    async fn idle_cpu(&self, ctx: &Ctx) -> IdleCpu {
        // Past the warm-up's last maintenance tick (a run while connects were under way
        // looks again one tick later): from here on the pools only idle. A long window,
        // as `/proc` counts CPU time in 10 ms ticks.
        tokio::time::sleep(ctx.dur(2.0, 0.2)).await;
        let window = ctx.dur(10.0, 0.5);
        let server = self.sim.server(&self.server);
        let (threads0, queries0) = (mem::threads_cpu(), server.queries());
        let cpu0 = mem::process_cpu();
        tokio::time::sleep(window).await;
        let cpu = (mem::process_cpu() - cpu0) / window.as_secs_f64();
        let (threads1, queries1) = (mem::threads_cpu(), server.queries());
        let threads = threads1
            .into_iter()
            .map(|(name, s)| {
                let before = threads0
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0.0, |t| t.1);
                (name, (s - before) / window.as_secs_f64())
            })
            .filter(|(_, share)| *share > 0.0)
            .collect();
        IdleCpu {
            cpu,
            threads,
            probes_per_s: (queries1 - queries0) as f64 / window.as_secs_f64(),
        }
    }

    async fn shutdown(self) {
        drop(self.pools);
        let _ = self.sup.shutdown(Duration::from_secs(10)).await;
    }
}

/// How many series a scrape of the recorder shows for the pool labelled `label` (a
/// summary's quantiles, sum and count are one series).
fn series_of(label: &str) -> usize {
    let text = recorder::render();
    let needle = format!("\"{label}\"");
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        if line.starts_with('#') || !line.contains(&needle) {
            continue;
        }
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.split_once('}').map_or(rest, |(l, _)| l);
        let labels: Vec<&str> = labels
            .split(',')
            .filter(|l| !l.starts_with("quantile="))
            .collect();
        let name = name.trim_end_matches("_sum").trim_end_matches("_count");
        seen.insert(format!("{name}{{{}}}", labels.join(",")));
    }
    seen.len()
}

/// The whole process's CPU share while the pools idle.
struct IdleCpu {
    cpu: f64,
    /// CPU share by thread name.
    threads: Vec<(String, f64)>,
    /// Queries the simulated server answered per second: the background probes.
    probes_per_s: f64,
}

impl IdleCpu {
    fn cause(&self, n: usize) -> String {
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|(name, share)| format!("{name} {:.2}%", share * 100.0))
            .collect();
        format!(
            "measured: {:.2}% of a core with {} idle pools, by thread {}; the simulated \
             server answered {:.0} probes/s ({:.3} per pool per second: background probes \
             every `probe_interval`, drawn in [interval/2, interval]).",
            self.cpu * 100.0,
            thousands(n as f64),
            threads.join(", "),
            self.probes_per_s,
            self.probes_per_s / n as f64,
        )
    }
}

pub async fn many_keys(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let sizes: &[usize] = if ctx.quick {
        &[1, 100, 1_000]
    } else {
        &[1, 100, 1_000, 10_000]
    };
    recorder::install();
    let mut section = Section::new(
        5,
        "Many pool keys",
        "N pools (one key each: same simulated server, a different database) on one \
         supervisor with default pool configs (min_idle 1, maintenance every 1 s, background \
         probe every 5 s). Acquire + release from one task: *hot* always uses the same pool \
         while N exist, *spread* cycles through all N. Memory: heap bytes allocated and not \
         freed while the N pools were created and warmed (a counting global allocator in the \
         bench binary, on only for this), divided by N, without a metrics recorder and with \
         a Prometheus recorder (a second set of N pools, registering their series); RSS \
         delta from `/proc/self/statm` beside it. CPU: the whole process (every thread, \
         user + system, `/proc/self/stat`) over 10 s while the N pools sit idle (from 2 s \
         after they warmed). *bb8 spread*: the \
         same cycle through N warm bb8 pools on a no-op manager, the reference for what \
         touching N pools' state costs any pool.",
    );
    let mut table = Table::new(
        "",
        &[
            "pools",
            "hot ns/op",
            "spread ns/op",
            "bb8 spread ns/op",
            "heap / pool",
            "heap / pool, recorder",
            "RSS / pool",
            "idle CPU, whole process",
            "create all",
        ],
    );
    let (mut hot1, mut spread1, mut bb8_1) = (0.0, 0.0, 0.0);
    let mut last = None;
    let mut bars = Vec::new();
    // Series a pool shows in a scrape (counted once, on the first pools with a recorder).
    let mut series = 0;
    for (k, &n) in sizes.iter().enumerate() {
        let fleet = Fleet::start(ctx, n, "keys", None, false).await;
        let idle = fleet.idle_cpu(ctx).await;
        let pools = Arc::new(fleet.pools.clone());
        let hot = Cycle::new(Arc::new(vec![pools[0].clone()]));
        let spread = Cycle::new(Arc::clone(&pools));
        let (h, s) = (ns_per_op(ctx, &hot).await, ns_per_op(ctx, &spread).await);
        drop((hot, spread, pools));
        let (heap, rss, create) = (fleet.heap, fleet.rss, fleet.create);
        fleet.shutdown().await;
        let b = bb8_spread(ctx, n).await;
        // The same number of pools again, their series registered with the recorder.
        let heap_rec = if n >= 100 {
            let host = format!("rec{}", (b'a' + k as u8) as char);
            let fleet = Fleet::start(ctx, n, &host, None, true).await;
            let heap = fleet.heap;
            if series == 0 {
                series = series_of(&fleet.pools[0].stats().name);
            }
            fleet.shutdown().await;
            heap
        } else {
            f64::NAN
        };
        if n == 1 {
            (hot1, spread1, bb8_1) = (h, s, b);
        }
        ctx.progress(&format!(
            "  {n:>5} pools: hot {h:.0} ns, spread {s:.0} ns, bb8 spread {b:.0} ns, heap {heap:.0} B/pool ({heap_rec:.0} with the recorder), rss {rss:.0} B/pool, whole process CPU {:.2}%, created in {}",
            idle.cpu * 100.0,
            fmt_dur(create)
        ));
        let kib = |v: f64, from: usize| {
            if n >= from && v.is_finite() {
                format!("{:.1} KiB", v / 1024.0)
            } else {
                "—".into()
            }
        };
        table.row(vec![
            thousands(n as f64),
            format!("{h:.0}"),
            format!("{s:.0}"),
            format!("{b:.0}"),
            kib(heap, 100),
            kib(heap_rec, 100),
            kib(rss, 1_000),
            format!("{:.2}% of a core", idle.cpu * 100.0),
            fmt_dur(create),
        ]);
        bars.push((format!("{} pools  hot", thousands(n as f64)), 0, h));
        bars.push((format!("{} pools  spread", thousands(n as f64)), 1, s));
        last = Some((n, h, s, b, heap, heap_rec, idle));
    }
    section.tables.push(table);
    let (n, h, s, b, heap, heap_rec, idle) = last.expect("at least one size");
    let keys = thousands(n as f64);
    targets.push(
        Target::at_most(
            5,
            &format!("spread over {keys} keys vs bb8 cycling as many pools"),
            s / b,
            SPREAD_VS_BB8,
            format!("{} ({s:.0} vs {b:.0} ns)", ratio(s / b)),
            format!("≤ {SPREAD_VS_BB8:.2}x"),
        )
        .because(format!(
            "measured: one pool, poolwarden's acquire + release costs {hot1:.0} ns hot \
             ({spread1:.0} cycling) against bb8's {bb8_1:.0} ns ({}); spreading over {keys} \
             pools adds {:.0} ns per operation to poolwarden ({}) and {:.0} ns to bb8 ({}). \
             {}",
            ratio(spread1 / bb8_1),
            s - spread1,
            ratio(s / spread1),
            b - bb8_1,
            ratio(b / bb8_1),
            crate::causes::many_keys_cost(s / spread1, h / hot1, b / bb8_1)
        )),
    );
    targets.push(
        Target::at_most(
            5,
            &format!("whole-process CPU with {keys} idle pools"),
            idle.cpu,
            IDLE_CPU,
            format!("{:.2}% of a core", idle.cpu * 100.0),
            format!("≤ {:.0}% of a core", IDLE_CPU * 100.0),
        )
        .because(idle.cause(n)),
    );
    let bare = if heap > HEAP_PER_POOL || heap_rec > HEAP_PER_POOL {
        // Where the heap goes: pools with nothing to warm and nothing to probe.
        let quiet = PoolConfig {
            min_idle: 0,
            probe_interval: None,
            ..PoolConfig::default()
        };
        let fleet = Fleet::start(ctx, n.min(1_000), "bare", Some(quiet), false).await;
        let bare = fleet.heap;
        fleet.shutdown().await;
        bare
    } else {
        f64::NAN
    };
    let memory_cause = |total: f64| {
        format!(
            "measured: {:.1} KiB per pool; a pool with min_idle 0 and no probes (nothing \
             opened) takes {:.1} KiB (shared state, actor, supervisor entry), so the warmed \
             connection and the probe take {:.1} KiB; with the Prometheus recorder, the \
             pool's {series} series in a scrape add {:.1} KiB ({:.0} B a series in the \
             exporter's registry: key, labels, storage).",
            total / 1024.0,
            bare / 1024.0,
            (heap - bare) / 1024.0,
            (heap_rec - heap) / 1024.0,
            (heap_rec - heap) / series.max(1) as f64,
        )
    };
    for (what, value) in [("no recorder", heap), ("a Prometheus recorder", heap_rec)] {
        targets.push(
            Target::at_most(
                5,
                &format!("memory per idle pool ({keys} pools, {what})"),
                value,
                HEAP_PER_POOL,
                format!("{:.1} KiB", value / 1024.0),
                "≤ 4 KiB".into(),
            )
            .because(memory_cause(value)),
        );
    }
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
