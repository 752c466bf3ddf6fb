//! Scenario 4: Redis PING, closed loop, beside bb8-redis and deadpool-redis.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use poolwarden::backends::redis::RedisBackend;
use poolwarden::{EmbeddedSupervisor, PoolConfig, PoolHandle, SupervisorConfig};
use tokio::time::Instant;

use crate::chart;

use crate::peers::Op;
use crate::report::{Section, Target};
use crate::runner::{closed_loop, closed_table, Closed};
use crate::{Ctx, RedisTarget};

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

const PEERS: [&str; 4] = [
    "poolwarden (default)",
    "bb8-redis (test on checkout)",
    "bb8-redis (no test)",
    "deadpool-redis",
];

pub async fn run(ctx: &Ctx, redis_target: &RedisTarget, _targets: &mut Vec<Target>) -> Section {
    let rounds = if ctx.quick { 1 } else { 2 };
    let (warmup, window) = (ctx.dur(0.3, 0.05), ctx.dur(2.0, 0.15));
    let mut section = Section::new(
        4,
        "Redis PING, closed loop",
        format!(
            "Each worker loops acquire, `PING`, release, against {}. {rounds} round(s) per \
             pool in turns, {} ms warm-up then {} ms timed. Defaults otherwise: bb8-redis \
             sends a PING on checkout, deadpool-redis a PING on recycle.",
            redis_target.describe,
            warmup.as_millis(),
            window.as_millis()
        ),
    );
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
        let pw = sup
            .handle()
            .pool_with(
                redis_target.pw.clone(),
                PoolConfig {
                    max_size: size,
                    ..PoolConfig::default()
                },
            )
            .await
            .expect("poolwarden pool");
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
        let mut res: Vec<Closed> = (0..PEERS.len()).map(|_| Closed::empty(workers)).collect();
        for _ in 0..rounds {
            res[0].merge(closed_loop(&pw, workers, warmup, window).await);
            res[1].merge(closed_loop(&bb_on, workers, warmup, window).await);
            res[2].merge(closed_loop(&bb_off, workers, warmup, window).await);
            res[3].merge(closed_loop(&dp, workers, warmup, window).await);
        }
        let table = closed_table(ctx, workers, size, &PEERS, &res);
        for (i, (name, r)) in PEERS.iter().zip(&res).enumerate() {
            bars.push((format!("{workers}/{size}  {name}"), i, r.throughput()));
        }
        section.tables.push(table);
        dp.close();
        drop(pw);
        let _ = sup.shutdown(Duration::from_secs(5)).await;
    }
    let file = "s4-redis.svg";
    if let Err(e) = chart::hbars(
        &ctx.chart_dir.join(file),
        "4. Redis PING, closed loop (operations per second, higher is better)",
        "ops/s",
        &bars,
    ) {
        ctx.progress(&format!("  chart failed: {e}"));
    }
    section
        .charts
        .push((file.into(), "Redis PING throughput".into()));
    section
}
