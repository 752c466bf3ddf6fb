//! Fairness: many tasks competing for few connections all get served, none starves.

mod support_pool;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::PoolConfig;
use support_pool::*;
use tokio::time::Instant;

const TASKS: usize = 64;
const CONNECTIONS: u32 = 8;

/// Runs `TASKS` tasks that acquire, query and release in a tight loop for `run`
/// simulated time; returns how many acquisitions each got.
async fn contend(f: &Fixture, run: std::time::Duration) -> Vec<u64> {
    let end = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let pool = f.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0u64;
            while Instant::now() < end {
                let mut conn = pool.acquire().await.expect("no acquire times out");
                conn.query("SELECT 1").await.unwrap();
                got += 1;
                // Straight back into the queue: a pool that let the returning task barge
                // ahead of the waiters would starve the others.
            }
            got
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts
}

#[actix::test]
async fn no_task_starves_when_64_share_8_connections() {
    let f = start(
        "fair",
        PoolConfig {
            min_idle: CONNECTIONS,
            max_size: CONNECTIONS,
            acquire_timeout: secs(30),
            test_on_checkout: true,
            checkout_bypass: ms(500),
            ..quiet_config()
        },
        SimBehavior {
            query_latency: ms(1),
            ..SimBehavior::default()
        },
    )
    .await;
    assert!(eventually(ms(100), || f.pool.stats().idle == CONNECTIONS as usize).await);

    let mut counts = contend(&f, secs(5)).await;
    counts.sort_unstable();
    let min = counts[0];
    let median = counts[TASKS / 2];
    let total: u64 = counts.iter().sum();
    // 8 connections busy for 5s, each query taking 1-2ms (the timer rounds a sleep up to
    // the next millisecond tick): at least 20 000 acquisitions if the pool is kept busy.
    assert!(
        total >= 18_000,
        "only {total} acquisitions: the pool was not kept busy"
    );
    assert!(
        min * 2 >= median,
        "unfair: the unluckiest task got {min}, the median {median} ({counts:?})"
    );
    let s = f.pool.stats();
    assert_eq!(s.served, total, "{s:?}");
    assert_eq!(s.timeouts, 0);
    assert!(f.server.open_connections() <= CONNECTIONS as usize);
    f.assert_quiescent();
}
