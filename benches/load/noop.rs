//! Scenario 1: acquire + release on a connection that costs nothing.

use std::time::Duration;

use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolConfig, SupervisorConfig};

use crate::peers::{self, Floor, NoopManager, Op};
use crate::ratios::{best, Bound, PerRound};
use crate::report::{ratio, thousands, Section, Table, Target};
use crate::runner::count_loop;
use crate::{callgrind, causes, recorder, Ctx};

/// (tasks, pool size).
const CASES: [(usize, u32); 4] = [(1, 8), (16, 8), (64, 16), (64, 64)];
const PEERS: [&str; 7] = [
    "floor",
    "poolwarden",
    "poolwarden (recorder)",
    "bb8 (test on checkout)",
    "bb8 (no test)",
    "deadpool",
    "mobc",
];
const FLOOR: usize = 0;
const PW: usize = 1;
const PW_REC: usize = 2;
/// The peers in the modes, of which the best is "the best peer".
const BEST_PEERS: [usize; 2] = [4, 5];

async fn measure<P: Op>(ctx: &Ctx, p: &P, tasks: usize) -> f64 {
    count_loop(p, tasks, ctx.dur(0.1, 0.01), ctx.dur(0.25, 0.04)).await
}

pub async fn run(ctx: &Ctx, targets: &mut Vec<Target>) -> Section {
    let rounds = if ctx.quick { 1 } else { 5 };
    let mut section = Section::new(
        1,
        "Acquire + release on a no-op connection",
        format!(
            "Every task loops acquire-then-drop on a warm pool; the figure is wall time per \
             operation with all tasks running (ns/op, lower is better), the median of {rounds} \
             round(s) in which the pools take turns; ratios are the median of the per-round \
             ratios, with their spread. poolwarden runs on the same no-op connection as the \
             peers (a `Backend` whose connect, probe and checks do nothing) with its default `PoolConfig` but for `max_size` (test on checkout with \
             the 500 ms bypass), warmed to the pool's size, once without a metrics recorder \
             and once as a second pool created with a Prometheus recorder (scraped every \
             second); bb8, deadpool and mobc on no-op managers with their defaults (bb8 and \
             mobc test on checkout, a no-op here), bb8 also without test on checkout. The \
             best peer is the better of bb8 without test and deadpool. The floor is a tokio \
             `Semaphore` plus a `Mutex<VecDeque>`. Multi-thread tokio runtime, 2 workers."
        ),
    );
    let mut table = Table::new(
        "ns per acquire + release (median of rounds)",
        &[
            "tasks / conns",
            PEERS[0],
            PEERS[1],
            PEERS[2],
            PEERS[3],
            PEERS[4],
            PEERS[5],
            PEERS[6],
            "poolwarden / best peer",
            "poolwarden / floor",
        ],
    );
    let _scraper = recorder::Scraper::start();
    let sup = EmbeddedSupervisor::spawn(peers::NoopBackend, SupervisorConfig::default())
        .expect("supervisor");
    // Decided by instruction counts when they can be taken (full runs only).
    let counted = if ctx.quick {
        Err("not in quick mode".to_string())
    } else {
        ctx.progress("  counting instructions (callgrind)");
        callgrind::count()
    };
    let mut bars = Vec::new();
    for (tasks, size) in CASES {
        let cfg = PoolConfig {
            max_size: size,
            ..PoolConfig::default()
        };
        let pool = |name: String| {
            let (sup, cfg) = (&sup, cfg.clone());
            async move {
                let p = sup
                    .handle()
                    .pool_with(ConnectionConfig::sim(name), cfg)
                    .await
                    .expect("poolwarden pool");
                // `warm` can come back one short when the pool's first background probe
                // held a slot meanwhile: warm again until every connection is open.
                for _ in 0..100 {
                    p.warm(size as usize).await.expect("warm-up");
                    if p.stats().created >= u64::from(size) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                p
            }
        };
        let pw = pool(format!("noop-t{tasks}-p{size}")).await;
        let pwr = recorder::with_recorder(pool(format!("noop-rec-t{tasks}-p{size}")), |p| {
            p.stats().name
        })
        .await;
        let bb = peers::bb8_noop(size, Some(size), NoopManager::default()).await;
        let bb_off = peers::bb8_noop_untested(size, Some(size), NoopManager::default()).await;
        let dp = peers::deadpool_noop(size, NoopManager::default());
        peers::fill(size, || dp.get()).await;
        let mb = peers::mobc_noop(size, NoopManager::default());
        peers::fill(size, || mb.get()).await;
        let fl = Floor::filled((0..size).map(|_| peers::Noop).collect());

        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
        for round in 0..rounds {
            samples[FLOOR].push(measure(ctx, &fl, tasks).await);
            // With and without a recorder back to back, taking turns at going first.
            if round % 2 == 0 {
                samples[PW].push(measure(ctx, &pw, tasks).await);
                samples[PW_REC].push(measure(ctx, &pwr, tasks).await);
            } else {
                samples[PW_REC].push(measure(ctx, &pwr, tasks).await);
                samples[PW].push(measure(ctx, &pw, tasks).await);
            }
            samples[3].push(measure(ctx, &bb, tasks).await);
            samples[4].push(measure(ctx, &bb_off, tasks).await);
            samples[5].push(measure(ctx, &dp, tasks).await);
            samples[6].push(measure(ctx, &mb, tasks).await);
        }
        let stats = pw.stats();
        assert_eq!(
            stats.created,
            u64::from(size),
            "poolwarden opened connections while timed"
        );
        let ns: Vec<PerRound> = samples.into_iter().map(PerRound::new).collect();
        let (best_i, _) = best(BEST_PEERS.map(|i| (i, &ns[i])), false);
        let vs_best = |i: usize| PerRound::ratio(&ns[i], &ns[best_i]);
        let vs_floor = |i: usize| PerRound::ratio(&ns[i], &ns[FLOOR]);
        let med: Vec<f64> = ns.iter().map(PerRound::median).collect();
        ctx.progress(&format!(
            "  {tasks:>2} tasks / {size:>2} conns: {}",
            PEERS
                .iter()
                .zip(&med)
                .map(|(n, v)| format!("{n} {v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let case = format!("{tasks} / {size}");
        let mut row = vec![case.clone()];
        row.extend(med.iter().map(|v| format!("{v:.0}")));
        row.push(vs_best(PW).shown());
        row.push(vs_floor(PW).shown());
        table.row(row);
        for (i, name) in PEERS.iter().enumerate() {
            bars.push((format!("{case}  {name}"), i, med[i]));
        }

        let case = format!(
            "{tasks} task{} / {size} conns",
            if tasks == 1 { "" } else { "s" }
        );
        let what =
            |row: usize, vs: &str| format!("{}: acquire+release vs {vs}, {case}", PEERS[row]);
        let ns_fmt = |x: f64| format!("{x:.0} ns");
        for pw_row in [PW, PW_REC] {
            for (vs, limit) in [(best_i, 1.0), (FLOOR, 1.5)] {
                // The floor's bound is for 16 and 64 tasks; one task against the best peer
                // is decided by instruction counts when they were taken (below).
                if tasks == 1 && (vs == FLOOR || counted.is_ok()) {
                    continue;
                }
                let who = if vs == FLOOR {
                    "the floor".to_string()
                } else {
                    format!("the best peer ({})", PEERS[vs])
                };
                let mut what = what(pw_row, &who);
                if tasks == 1 {
                    what += " (wall clock: callgrind not run)";
                }
                targets.push(Target::median_vs(
                    1,
                    &what,
                    &ns[pw_row],
                    (&ns[vs], PEERS[vs]),
                    Bound::AtMost(limit),
                    ns_fmt,
                    |r| causes::noop(r, limit, PEERS[vs]),
                ));
            }
        }
        targets.push(Target::median_vs(
            1,
            &format!("acquire+release with a Prometheus recorder vs none, {case}"),
            &ns[PW_REC],
            (&ns[PW], PEERS[PW]),
            Bound::AtMost(1.1),
            ns_fmt,
            causes::recorder_cost,
        ));
    }
    section.tables.push(table);
    instruction_targets(&mut section, targets, &counted);
    section.notes.push(
        "Ratios are taken between pools measured in the same round, seconds apart; absolute \
         figures drift with the machine's load, the ratios much less."
            .into(),
    );
    section.bar_chart(
        ctx,
        ("s1-acquire.svg", "ns/op per pool and case"),
        "1. acquire + release, no-op connection (ns/op, lower is better)",
        "ns per operation",
        &bars,
    );
    let _ = sup.shutdown(Duration::from_secs(5)).await;
    section
}

/// The 1-task case by instruction counts: a table and a target per poolwarden row when
/// they were taken, else a note on how to take them.
fn instruction_targets(
    section: &mut Section,
    targets: &mut Vec<Target>,
    counted: &Result<Vec<u64>, String>,
) {
    let decides = "Instruction counts (callgrind) decide the 1-task case: a ~100 ns operation's \
                   wall-clock ratio drifts by more than the target's margin. They cannot judge \
                   contention, so 16 and 64 tasks are marked on wall clock.";
    let counts = match counted {
        Ok(c) => {
            section.notes.push(decides.into());
            c
        }
        Err(why) => {
            section.notes.push(format!(
                "{decides} Not counted in this run ({why}): `{}` prints them.",
                callgrind::COMMAND
            ));
            return;
        }
    };
    let mut table = Table::new(
        "Instructions per acquire + release, 1 task / 8 conns (callgrind, benches/instructions.rs)",
        &["pool", "instructions", "vs the best peer"],
    );
    let of = |name: &str| {
        callgrind::POOLS
            .iter()
            .position(|p| *p == name)
            .map(|i| counts[i])
            .expect("a counted pool")
    };
    let (best_name, best) = [
        ("bb8 (no test)", of("bb8-notest")),
        ("deadpool", of("deadpool")),
    ]
    .into_iter()
    .min_by_key(|(_, n)| *n)
    .expect("two peers");
    for (pool, n) in callgrind::POOLS.iter().zip(counts) {
        table.row(vec![
            pool.to_string(),
            thousands(*n as f64),
            ratio(*n as f64 / best as f64),
        ]);
    }
    section.tables.push(table);
    for (row, name) in [(PW, "poolwarden"), (PW_REC, "poolwarden-recorder")] {
        let n = of(name);
        targets.push(
            Target::at_most(
                1,
                &format!(
                    "{}: instructions per acquire+release vs the best peer, 1 task / 8 conns",
                    PEERS[row]
                ),
                n as f64,
                best as f64,
                format!(
                    "{} ({} vs {} of {best_name})",
                    ratio(n as f64 / best as f64),
                    thousands(n as f64),
                    thousands(best as f64)
                ),
                format!("≤ {} (1.00x)", thousands(best as f64)),
            )
            .because(if row == PW_REC {
                causes::recorder_instructions(n, of("poolwarden"), best, best_name)
            } else {
                causes::instructions(n, best, best_name)
            }),
        );
    }
}
