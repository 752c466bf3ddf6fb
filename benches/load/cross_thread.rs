//! Scenario 7: one caller, one operation at a time, on a current-thread runtime of its own
//! (an actix-web worker's shape), while the poolwarden supervisor runs on its own thread.

use std::time::Duration;

use deadpool_postgres::RecyclingMethod;
use poolwarden::PoolConfig;
use tokio::time::Instant;

use crate::hist::{self, fmt_dur};
use crate::peers::Floor;
use crate::postgres::{bb8_pool, connect_client, deadpool_pool, pw_pool, supervisor};
use crate::ratios::{Bound, PerRound};
use crate::report::{thousands, Section, Table, Target};
use crate::runner::{closed_loop, merged, per_round, Closed};
use crate::{causes, recorder, Ctx, PgTarget};

const PEERS: [&str; 7] = [
    "poolwarden (default: min_idle 1)",
    "poolwarden (recorder)",
    "poolwarden (min_idle 0)",
    "bb8 (test on checkout)",
    "bb8 (no test)",
    "deadpool (Fast)",
    "floor",
];
const PW_ROWS: [usize; 2] = [0, 1];
const MIN_IDLE_0: usize = 2;
/// The reference of the target: bb8 without test on checkout.
const BB8: usize = 4;

/// Run on a current-thread runtime of its own, on the calling thread.
pub fn run(ctx: &Ctx, pg: &PgTarget, targets: &mut Vec<Target>) -> Section {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(inner(ctx, pg, targets))
}

async fn inner(ctx: &Ctx, pg: &PgTarget, targets: &mut Vec<Target>) -> Section {
    let rounds = if ctx.quick { 1 } else { 5 };
    let window = ctx.dur(0.8, 0.1);
    let mut section = Section::new(
        7,
        "Low load across threads",
        format!(
            "One caller, one operation at a time (acquire, `SELECT 1`, release), on a \
             current-thread tokio runtime (an actix-web worker's shape); the poolwarden \
             supervisor and its pool actors run on their own thread (`EmbeddedSupervisor`). \
             Default pool configs; poolwarden also as a second pool created with a \
             Prometheus recorder. {rounds} round(s) of {} ms per pool, in turns; the ratio \
             is the median of the per-round p50 ratios, with their spread. poolwarden's \
             default `min_idle = 1` connection is opened by the pool actor before timing \
             starts; the `min_idle 0` row lets the caller open its connection itself.",
            window.as_millis()
        ),
    );
    let _scraper = recorder::Scraper::start();
    let sup = supervisor();
    let pw = pw_pool(&sup, pg, "bench-s7-default", PoolConfig::default(), false).await;
    let pw_rec = pw_pool(&sup, pg, "bench-s7-recorder", PoolConfig::default(), true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (pw.stats().idle < 1 || pw_rec.stats().idle < 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let min0 = PoolConfig {
        min_idle: 0,
        ..PoolConfig::default()
    };
    let pw0 = pw_pool(&sup, pg, "bench-s7-min0", min0, false).await;
    let bb_on = bb8_pool(pg, None, true).await;
    let bb_off = bb8_pool(pg, None, false).await;
    let dp = deadpool_pool(pg, 10, RecyclingMethod::Fast);
    let floor = Floor::filled(vec![connect_client(pg).await]);
    let mut runs: Vec<Vec<Closed>> = vec![Vec::new(); PEERS.len()];
    let warm = ctx.dur(0.1, 0.02);
    for _ in 0..rounds {
        for (i, r) in runs.iter_mut().enumerate() {
            r.push(match i {
                0 => closed_loop(&pw, 1, warm, window).await,
                1 => closed_loop(&pw_rec, 1, warm, window).await,
                2 => closed_loop(&pw0, 1, warm, window).await,
                3 => closed_loop(&bb_on, 1, warm, window).await,
                4 => closed_loop(&bb_off, 1, warm, window).await,
                5 => closed_loop(&dp, 1, warm, window).await,
                _ => closed_loop(&floor, 1, warm, window).await,
            });
        }
    }
    dp.close();
    drop((pw, pw_rec, pw0));
    let _ = sup.shutdown(Duration::from_secs(5)).await;

    let p50: Vec<PerRound> = runs
        .iter()
        .map(|r| per_round(r, |c| hist::summary(&c.hist).p50.as_secs_f64()))
        .collect();
    let mut table = Table::new(
        "",
        &[
            "pool",
            "p50",
            "p99",
            "p99.9",
            "ops/s",
            "p50 vs bb8 (no test), median of rounds",
        ],
    );
    let mut bars = Vec::new();
    for (i, name) in PEERS.iter().enumerate() {
        let all = merged(&runs[i]);
        let s = hist::summary(&all.hist);
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
            thousands(all.throughput()),
            if i == BB8 {
                "1.00x".into()
            } else {
                PerRound::ratio(&p50[i], &p50[BB8]).shown()
            },
        ]);
        bars.push((name.to_string(), i, s.p50.as_secs_f64() * 1e6));
    }
    section.tables.push(table);
    let us = |d: f64| fmt_dur(Duration::from_secs_f64(d));
    let min0 = PerRound::ratio(&p50[MIN_IDLE_0], &p50[BB8]);
    for pw in PW_ROWS {
        let r = PerRound::ratio(&p50[pw], &p50[BB8]);
        targets.push(
            Target::median(
                7,
                &format!(
                    "{}: p50 of one caller across threads vs bb8 (no test)",
                    PEERS[pw]
                ),
                &r,
                Bound::AtMost(1.0),
                &format!(
                    "medians {} vs {}; with min_idle 0: {}",
                    us(p50[pw].median()),
                    us(p50[BB8].median()),
                    min0.shown()
                ),
            )
            .because(causes::cross_thread(&r, &min0)),
        );
    }
    section.bar_chart(
        ctx,
        ("s7-cross-thread.svg", "p50 latency of one caller"),
        "7. one caller, PostgreSQL SELECT 1: p50 latency (µs, lower is better)",
        "µs",
        &bars,
    );
    section
}
