//! Scenario 1: acquire + release on a connection that costs nothing.

use std::time::Duration;

use poolwarden::backends::sim::SimBackend;
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, SupervisorConfig};

use crate::chart;
use crate::peers::{self, Floor, NoopManager, Op};
use crate::report::{ratio, Section, Table, Target};
use crate::runner::count_loop;
use crate::Ctx;

/// (tasks, pool size).
const CASES: [(usize, u32); 4] = [(1, 8), (16, 8), (64, 16), (64, 64)];
const PEERS: [&str; 6] = [
    "floor",
    "poolwarden",
    "bb8",
    "deadpool",
    "mobc",
    "pw + recorder",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure<P: Op>(ctx: &Ctx, p: &P, tasks: usize) -> f64 {
    count_loop(p, tasks, ctx.dur(0.1, 0.01), ctx.dur(0.3, 0.04)).await
}

pub async fn run(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let rounds = if ctx.quick { 1 } else { 5 };
    let mut section = Section::new(
        1,
        "Acquire + release on a no-op connection",
        format!(
            "Every task loops acquire-then-drop on a warm pool; the figure is wall time per \
             operation with all tasks running (ns/op, lower is better), the median of {rounds} \
             rounds in which the pools take turns. poolwarden runs on the simulated backend \
             with zero latency and its default config (test on checkout with the 500 ms \
             bypass); bb8, deadpool and mobc on no-op managers with their defaults (bb8 and \
             mobc test on checkout, a no-op here). The floor is a tokio `Semaphore` plus a \
             `Mutex<VecDeque>`. Multi-thread tokio runtime, 2 workers."
        ),
    );
    let mut table = Table::new(
        "",
        &[
            "tasks / conns",
            "floor",
            "poolwarden",
            "bb8",
            "deadpool",
            "mobc",
            "pw / bb8",
            "pw / deadpool",
            "pw / floor",
        ],
    );
    let mut with_recorder = Table::new(
        "The same loop on poolwarden with a Prometheus recorder installed \
         (metrics-exporter-prometheus, scraped every second) and without one",
        &["tasks / conns", "recorder", "ns/op", "recorder / none"],
    );
    crate::recorder::install();
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let scraper = {
        let scraping = std::sync::Arc::clone(&scraping);
        std::thread::spawn(move || {
            while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                drop(crate::recorder::render());
            }
        })
    };
    let sup = EmbeddedSupervisor::spawn(SimBackend::default(), SupervisorConfig::default())
        .expect("supervisor");
    let mut bars = Vec::new();
    for (tasks, size) in CASES {
        let cfg = PoolConfig {
            min_idle: size,
            max_size: size,
            ..PoolConfig::default()
        };
        let pw = sup
            .handle()
            .pool_with(
                ConnectionConfig::sim(format!("noop-t{tasks}-p{size}")),
                cfg.clone(),
            )
            .await
            .expect("poolwarden pool");
        pw.warm(size as usize).await.expect("warm-up");
        // The same pool with its metrics going to the Prometheus recorder (registered
        // when its actor starts: switched on until it has).
        crate::recorder::set(true);
        let pwr = sup
            .handle()
            .pool_with(
                ConnectionConfig::sim(format!("noop-rec-t{tasks}-p{size}")),
                cfg.clone(),
            )
            .await
            .expect("poolwarden pool with a recorder");
        pwr.warm(size as usize).await.expect("warm-up");
        crate::recorder::set(false);
        let bb = peers::bb8_noop(size, Some(size), NoopManager::default()).await;
        let dp = peers::deadpool_noop(size, NoopManager::default());
        peers::fill(size, || dp.get()).await;
        let mb = peers::mobc_noop(size, NoopManager::default());
        peers::fill(size, || mb.get()).await;
        let fl = Floor::filled((0..size).map(|_| peers::Noop).collect());

        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
        for round in 0..rounds {
            samples[0].push(measure(ctx, &fl, tasks).await);
            // With and without a recorder back to back, taking turns at going first.
            if round % 2 == 0 {
                samples[1].push(measure(ctx, &pw, tasks).await);
                samples[5].push(measure(ctx, &pwr, tasks).await);
            } else {
                samples[5].push(measure(ctx, &pwr, tasks).await);
                samples[1].push(measure(ctx, &pw, tasks).await);
            }
            samples[2].push(measure(ctx, &bb, tasks).await);
            samples[3].push(measure(ctx, &dp, tasks).await);
            samples[4].push(measure(ctx, &mb, tasks).await);
        }
        let ns: Vec<f64> = samples.into_iter().map(median).collect();
        let stats = pw.stats();
        assert_eq!(
            stats.created,
            u64::from(size),
            "poolwarden opened connections while timed"
        );
        ctx.progress(&format!(
            "  {tasks:>2} tasks / {size:>2} conns: floor {:.0} ns, poolwarden {:.0}, bb8 {:.0}, deadpool {:.0}, mobc {:.0}",
            ns[0], ns[1], ns[2], ns[3], ns[4]
        ));
        let case = format!("{tasks} / {size}");
        table.row(vec![
            case.clone(),
            format!("{:.0}", ns[0]),
            format!("{:.0}", ns[1]),
            format!("{:.0}", ns[2]),
            format!("{:.0}", ns[3]),
            format!("{:.0}", ns[4]),
            ratio(ns[1] / ns[2]),
            ratio(ns[1] / ns[3]),
            ratio(ns[1] / ns[0]),
        ]);
        with_recorder.row(vec![
            case.clone(),
            "none".into(),
            format!("{:.0}", ns[1]),
            String::new(),
        ]);
        let rec = ns[5] / ns[1];
        with_recorder.row(vec![
            case.clone(),
            "Prometheus".into(),
            format!("{:.0}", ns[5]),
            ratio(rec),
        ]);
        targets.push(Target::at_most(
            1,
            &format!("acquire+release with a Prometheus recorder vs none, {tasks} tasks / {size} conns"),
            rec,
            1.1,
            format!("{} ({:.0} vs {:.0} ns)", ratio(rec), ns[5], ns[1]),
            format!("≤ {}", ratio(1.1)),
        ).because(
            "the acquire path records into the pool's percentile windows only; the recorder is \
             fed by the maintenance tick (histograms from the windows, gauges from the counts), \
             on the supervisor's thread, which shares the 2 cores with the measured tasks",
        ));
        for (i, name) in PEERS.iter().enumerate() {
            bars.push((format!("{case}  {name}"), i, ns[i]));
        }
        let limit = if tasks == 1 { 2.0 } else { 1.5 };
        let r = ns[1] / ns[2];
        targets.push(
            Target::at_most(
                1,
                &format!("acquire+release vs bb8, {tasks} tasks / {size} conns"),
                r,
                limit,
                format!("{} ({:.0} vs {:.0} ns)", ratio(r), ns[1], ns[2]),
                format!("≤ {}", ratio(limit)),
            )
            .because(crate::causes::noop(tasks, size)),
        );
    }
    section.tables.push(table);
    section.tables.push(with_recorder);
    scraping.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = scraper.join();
    section.notes.push(
        "Ratios are taken between pools measured in the same process, minutes apart at most; \
         absolute figures drift with the machine's load, the ratios much less."
            .into(),
    );
    let file = "s1-acquire.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "1. acquire + release, no-op connection (ns/op, lower is better)",
        "ns per operation",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "ns/op per pool and case".into()));
    let _ = sup.shutdown(Duration::from_secs(5)).await;
    section
}
