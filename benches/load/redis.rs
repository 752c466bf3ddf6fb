//! Scenario 4: Redis PING, closed loop, beside bb8-redis and deadpool-redis.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use poolwarden::backends::redis::RedisBackend;
use poolwarden::{EmbeddedSupervisor, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::time::Instant;

use crate::peers::Op;
use crate::ratios::{Bound, PerRound};
use crate::report::{thousands, Section, Target};
use crate::runner::{closed_loop, closed_table, merged, per_round, Closed};
use crate::{causes, recorder, Ctx, RedisTarget};

type Bb8Redis = bb8::Pool<RedisConnectionManager>;

impl Op for PoolHandle<RedisBackend> {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let mut c = self.acquire().await.ok()?;
        let w = t.elapsed();
        let _: String = redis::cmd("PING").query_async(&mut *c).await.expect("PING");
        Some(w)
    }
}

impl Op for Bb8Redis {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let mut c = self.get().await.ok()?;
        let w = t.elapsed();
        let _: String = redis::cmd("PING").query_async(&mut *c).await.expect("PING");
        Some(w)
    }
}

impl Op for deadpool_redis::Pool {
    async fn run(&self) -> Option<Duration> {
        let t = Instant::now();
        let mut c = self.get().await.ok()?;
        let w = t.elapsed();
        let _: String = redis::cmd("PING").query_async(&mut c).await.expect("PING");
        Some(w)
    }
}

const PEERS: [&str; 5] = [
    "poolwarden (default)",
    "poolwarden (recorder)",
    "bb8-redis (test on checkout)",
    "bb8-redis (no test)",
    "deadpool-redis",
];
const PW_ROWS: [usize; 2] = [0, 1];
/// The reference of the target: bb8-redis without test on checkout.
const BB8: usize = 3;

pub async fn run(ctx: &Ctx, redis_target: &RedisTarget, targets: &mut Vec<Target>) -> Section {
    let rounds = if ctx.quick { 1 } else { 3 };
    let (warmup, window) = (ctx.dur(0.2, 0.05), ctx.dur(1.2, 0.15));
    let mut section = Section::new(
        4,
        "Redis PING, closed loop",
        format!(
            "Each worker loops acquire, `PING`, release, against {}. {rounds} round(s); in \
             each the pools take turns, {} ms warm-up then {} ms timed. poolwarden runs its \
             default `PoolConfig` but for `max_size`, once without a metrics recorder and \
             once as a second pool created with a Prometheus recorder. Defaults otherwise: \
             bb8-redis sends a PING on checkout (and runs without, the target's reference), \
             deadpool-redis a PING on recycle. The ratio column and the targets are the \
             median of the per-round ratios with their spread.",
            redis_target.describe,
            warmup.as_millis(),
            window.as_millis()
        ),
    );
    let _scraper = recorder::Scraper::start();
    let mut bars = Vec::new();
    for (workers, size) in [(16usize, 8u32), (64, 16)] {
        let sup = EmbeddedSupervisor::spawn(
            RedisBackend::new(),
            SupervisorConfig {
                pool_idle_timeout: None,
                ..SupervisorConfig::default()
            },
        )
        .expect("supervisor");
        let config = PoolConfig {
            max_size: size,
            ..PoolConfig::default()
        };
        let pw = sup
            .handle()
            .pool_with(redis_target.pw.clone(), config.clone())
            .await
            .expect("poolwarden pool");
        recorder::registered(&pw).await;
        // Another key for the same server: another client name.
        let mut rec_conn = redis_target.pw.clone();
        rec_conn.application_name = Some("bench-poolwarden-recorder".into());
        let pw_rec = recorder::with_recorder(
            async {
                sup.handle()
                    .pool_with(rec_conn, config)
                    .await
                    .expect("poolwarden pool with a recorder")
            },
            |p| p.stats().name,
        )
        .await;
        let mgr =
            || RedisConnectionManager::new(redis_target.url.as_str()).expect("bb8-redis manager");
        let bb_on = bb8::Pool::builder()
            .max_size(size)
            .build(mgr())
            .await
            .expect("bb8");
        let bb_off = bb8::Pool::builder()
            .max_size(size)
            .test_on_check_out(false)
            .build(mgr())
            .await
            .expect("bb8");
        let dp = deadpool_redis::Pool::builder(
            deadpool_redis::Manager::new(redis_target.url.as_str())
                .expect("deadpool-redis manager"),
        )
        .max_size(size as usize)
        .build()
        .expect("deadpool-redis pool");
        let mut runs: Vec<Vec<Closed>> = vec![Vec::new(); PEERS.len()];
        for _ in 0..rounds {
            for (i, r) in runs.iter_mut().enumerate() {
                r.push(match i {
                    0 => closed_loop(&pw, workers, warmup, window).await,
                    1 => closed_loop(&pw_rec, workers, warmup, window).await,
                    2 => closed_loop(&bb_on, workers, warmup, window).await,
                    3 => closed_loop(&bb_off, workers, warmup, window).await,
                    _ => closed_loop(&dp, workers, warmup, window).await,
                });
            }
        }
        section
            .tables
            .push(closed_table(ctx, workers, size, &PEERS, &runs));
        let tp: Vec<PerRound> = runs
            .iter()
            .map(|r| per_round(r, Closed::throughput))
            .collect();
        for (i, name) in PEERS.iter().enumerate() {
            bars.push((format!("{workers}/{size}  {name}"), i, tp[i].median()));
        }
        for pw in PW_ROWS {
            targets.push(Target::median_vs(
                4,
                &format!(
                    "{}: throughput vs bb8-redis (no test), {workers}/{size}",
                    PEERS[pw]
                ),
                &tp[pw],
                (&tp[BB8], PEERS[BB8]),
                Bound::AtLeast(1.0),
                |x| format!("{} ops/s", thousands(x)),
                |r| {
                    causes::redis_throughput(
                        r,
                        merged(&runs[pw]).cpu_per_op(),
                        merged(&runs[BB8]).cpu_per_op(),
                    )
                },
            ));
        }
        dp.close();
        drop((pw, pw_rec));
        let _ = sup.shutdown(Duration::from_secs(5)).await;
    }
    section.bar_chart(
        ctx,
        ("s4-redis.svg", "Redis PING throughput"),
        "4. Redis PING, closed loop (operations per second, higher is better)",
        "ops/s",
        &bars,
    );
    section
}
