//! Scenario 3: PostgreSQL `SELECT 1` at a fixed arrival rate (50% and 80% of poolwarden's
//! closed-loop peak), latencies from each operation's intended start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{Error, PoolConfig, PoolHandle};

use crate::hist::{self, fmt_dur};
use crate::peers::Op;
use crate::postgres::{each_pool, pools, pw_op, Peak, BEST_PEERS, PEERS, PW_ROWS};
use crate::ratios::{best, Bound, PerRound};
use crate::report::{thousands, Section, Table, Target};
use crate::runner::{closed_loop, open_loop, Open};
use crate::{causes, recorder, Ctx, PgTarget};

/// The pools this scenario runs (indices into [`PEERS`]): poolwarden without and with the
/// recorder, the peers in the modes, and the floor.
const OPEN_PEERS: [usize; 5] = [0, 1, 3, 4, 6];

/// A poolwarden pool that counts the acquires refused with `PoolSaturated`.
#[derive(Clone)]
struct Counted {
    pool: PoolHandle<PostgresBackend>,
    saturated: Arc<AtomicU64>,
}

impl Op for Counted {
    async fn run(&self) -> Option<Duration> {
        match pw_op(&self.pool).await {
            Ok(w) => Some(w),
            Err(e) => {
                if matches!(e, Error::PoolSaturated { .. }) {
                    self.saturated.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
        }
    }
}

/// One pool at one rate, all rounds.
#[derive(Default)]
struct Cell {
    rounds: Vec<Open>,
    saturated: u64,
}

impl Cell {
    fn wait_p99(&self) -> PerRound {
        PerRound::new(
            self.rounds
                .iter()
                .map(|r| hist::summary(&r.wait).p99.as_secs_f64())
                .collect(),
        )
    }

    fn sum(&self, f: impl Fn(&Open) -> u64) -> u64 {
        self.rounds.iter().map(f).sum()
    }
}

pub async fn run(ctx: &Ctx, pg: &PgTarget, peaks: &[Peak], targets: &mut Vec<Target>) -> Section {
    let peak = peaks.first().expect("closed-loop results");
    let (workers, size, peak_tp) = (peak.workers, peak.size, peak.throughput);
    let rounds = if ctx.quick { 1 } else { 3 };
    let shares = [(0.8, ctx.dur(4.0, 0.3)), (0.5, ctx.dur(3.0, 0.2))];
    let max_waiters = PoolConfig::default().max_waiters;
    let mut section = Section::new(
        3,
        "PostgreSQL SELECT 1 at a fixed arrival rate",
        format!(
            "Operations arrive at a fixed rate, each in its own task whatever the others are \
             doing, on pools of {size}; latencies are measured from each operation's intended \
             start, so they are free of coordinated omission. Rates: 80% ({} ops/s, {} s) \
             and 50% ({} ops/s, {} s) of poolwarden's closed-loop peak at {workers}/{size} \
             in scenario 2 (the median of its rounds). {rounds} round(s); in each the pools \
             take turns at each rate. Pools: poolwarden with its default `PoolConfig` but \
             for `max_size`, without and with a Prometheus recorder; bb8 without test on \
             checkout and deadpool Fast; the floor. The queue stays bounded: a poolwarden \
             acquire that finds `max_waiters` ({}, the default) already queued fails at once \
             with `PoolSaturated`; the others queue without bound. Acquire-wait ratios are \
             the median of the per-round ratios; the table's percentiles are of all rounds \
             together.{}",
            thousands(0.8 * peak_tp),
            shares[0].1.as_secs_f64(),
            thousands(0.5 * peak_tp),
            shares[1].1.as_secs_f64(),
            thousands(max_waiters as f64),
            if ctx.hog > 0 {
                format!(" Loaded machine: {} busy loops ran beside it.", ctx.hog)
            } else {
                " A run on a loaded machine: `--hog N` (see the introduction).".into()
            }
        ),
    );
    let _scraper = recorder::Scraper::start();
    let p = pools(pg, size).await;
    let drain = Duration::from_secs(if ctx.quick { 2 } else { 10 });
    let mut cells: Vec<Vec<Cell>> = shares
        .iter()
        .map(|_| PEERS.iter().map(|_| Cell::default()).collect())
        .collect();
    for _ in 0..rounds {
        for (s, &(share, duration)) in shares.iter().enumerate() {
            let rate = share * peak_tp;
            for &i in &OPEN_PEERS {
                // A short warm-up so every pool starts full.
                let warm = ctx.dur(0.3, 0.05);
                let _ = each_pool!(p, i, |op| closed_loop(op, workers, Duration::ZERO, warm)
                    .await);
                let saturated = Arc::new(AtomicU64::new(0));
                let r = match i {
                    0 | 1 => {
                        let pool = if i == 0 { &p.pw } else { &p.pw_rec };
                        let op = Counted {
                            pool: pool.clone(),
                            saturated: Arc::clone(&saturated),
                        };
                        open_loop(&op, rate, duration, drain).await
                    }
                    _ => each_pool!(p, i, |op| open_loop(op, rate, duration, drain).await),
                };
                ctx.progress(&format!(
                    "  {:.0}% {}: {} of {} completed ({} failed), acquire wait p99 {}",
                    share * 100.0,
                    PEERS[i],
                    thousands(r.completed as f64),
                    thousands(r.issued as f64),
                    thousands(r.errors as f64),
                    fmt_dur(hist::summary(&r.wait).p99),
                ));
                let cell = &mut cells[s][i];
                cell.rounds.push(r);
                cell.saturated += saturated.load(Ordering::Relaxed);
            }
        }
    }
    p.close().await;

    let mut table = Table::new(
        "",
        &[
            "rate",
            "pool",
            "completed / arrived",
            "acquire wait p50",
            "acquire wait p99",
            "p99 wait vs poolwarden (median of rounds)",
            "latency p99",
            "latency max",
        ],
    );
    let mut bars = Vec::new();
    for (s, &(share, _)) in shares.iter().enumerate() {
        let rate = share * peak_tp;
        let pw_p99 = cells[s][0].wait_p99();
        for &i in &OPEN_PEERS {
            let c = &cells[s][i];
            let (mut wait, mut latency) = (hist::new(), hist::new());
            for r in &c.rounds {
                wait.add(&r.wait).expect("same histogram bounds");
                latency.add(&r.latency).expect("same histogram bounds");
            }
            let (w, l) = (hist::summary(&wait), hist::summary(&latency));
            let (done, issued, errors) = (
                c.sum(|r| r.completed),
                c.sum(|r| r.issued),
                c.sum(|r| r.errors),
            );
            let mut completed =
                format!("{} / {}", thousands(done as f64), thousands(issued as f64));
            if errors > 0 {
                completed += &format!(" ({} failed", thousands(errors as f64));
                if i <= 1 {
                    completed += &format!(", {} PoolSaturated", thousands(c.saturated as f64));
                }
                completed += ")";
            }
            table.row(vec![
                format!("{} /s", thousands(rate)),
                PEERS[i].to_string(),
                completed,
                fmt_dur(w.p50),
                fmt_dur(w.p99),
                if i == 0 {
                    "1.00x".into()
                } else {
                    PerRound::ratio(&c.wait_p99(), &pw_p99).shown()
                },
                fmt_dur(l.p99),
                fmt_dur(l.max),
            ]);
            bars.push((
                format!("{:.0}%  {}", share * 100.0, PEERS[i]),
                i,
                w.p99.as_secs_f64() * 1e3,
            ));
        }
    }
    section.tables.push(table);
    open_targets(&shares.map(|s| s.0), &cells, max_waiters, targets);
    section.notes.push(
        "On this 2-core machine the load generator, the pools and the PostgreSQL server share \
         the cores, so an open loop sustains less than the closed-loop peak: where a pool \
         falls behind, its wait is the backlog growing; the 50% rows show the pools' own \
         acquire wait."
            .into(),
    );
    section.bar_chart(
        ctx,
        ("s3-open-loop.svg", "p99 acquire wait at a fixed rate"),
        "3. fixed arrival rate: p99 acquire wait (ms, lower is better)",
        "ms",
        &bars,
    );
    section
}

/// Per rate and poolwarden row: p99 acquire wait vs the best peer's; per row: no
/// `PoolSaturated` at or below 80% load.
fn open_targets(
    shares: &[f64],
    cells: &[Vec<Cell>],
    max_waiters: usize,
    targets: &mut Vec<Target>,
) {
    let ms = |d: f64| fmt_dur(Duration::from_secs_f64(d));
    for (s, share) in shares.iter().enumerate() {
        let p99: Vec<(usize, PerRound)> = OPEN_PEERS
            .iter()
            .map(|&i| (i, cells[s][i].wait_p99()))
            .collect();
        let of = |i: usize| {
            &p99.iter()
                .find(|(j, _)| *j == i)
                .expect("an open-loop pool")
                .1
        };
        let (best_i, best_p99) = best(BEST_PEERS.map(|i| (i, of(i))), false);
        for pw in PW_ROWS {
            targets.push(Target::median_vs(
                3,
                &format!(
                    "{}: p99 acquire wait vs the best peer's, {:.0}% load",
                    PEERS[pw],
                    share * 100.0
                ),
                of(pw),
                (best_p99, PEERS[best_i]),
                Bound::AtMost(1.0),
                ms,
                |r| causes::open_wait(r, PEERS[best_i]),
            ));
        }
    }
    for pw in PW_ROWS {
        let saturated: u64 = cells.iter().map(|c| c[pw].saturated).sum();
        let failed: u64 = cells.iter().map(|c| c[pw].sum(|r| r.errors)).sum();
        let mut t = Target::at_most(
            3,
            &format!("{}: PoolSaturated at ≤ 80% load", PEERS[pw]),
            saturated as f64,
            0.0,
            format!(
                "{saturated} (max_waiters {}; {failed} acquires failed in all)",
                thousands(max_waiters as f64)
            ),
            "0".into(),
        )
        .because(causes::saturated(max_waiters));
        if !t.pass {
            t.by = format!("{saturated} refused");
        }
        targets.push(t);
    }
}
