//! Per-pool hooks and controls, on the simulated backend: `after_connect` sets up every
//! new connection, `before_acquire` turns away a connection it does not like,
//! `after_release` closes one left dirty; then `soft_evict` (after a DDL change or a
//! failover), `pause` / `resume`, and a dedicated connection outside the pool (for
//! `LISTEN` or a long `COPY`).
//!
//! ```text
//! cargo run --example hooks
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimConnection};
use poolwarden::{
    AcquireVerdict, ConnectionConfig, Error, Hooks, PoolConfig, SupervisorConfig, SupervisorHandle,
};

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sup = SupervisorHandle::start(SimBackend::default(), SupervisorConfig::default())?;
    let connects = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connects);
    let hooks = Hooks::<SimConnection>::new()
        // Every new connection, before its first use (PostgreSQL: SET search_path, types…).
        .after_connect(move |conn| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                seen.fetch_add(1, Ordering::Relaxed);
                conn.query("SET search_path TO app").await?;
                Ok(())
            })
        })
        // Every checkout: hand it out, or close it and try another (pgxpool's PrepareConn).
        .before_acquire(|conn| {
            Box::pin(async move {
                Ok(if conn.in_transaction() {
                    AcquireVerdict::CloseAndRetry
                } else {
                    AcquireVerdict::HandOut
                })
            })
        })
        // Every return: `false` closes it instead of keeping it.
        .after_release(|conn| Box::pin(async move { !conn.is_killed() }))
        .timeout(Duration::from_secs(2));
    let pool = sup
        .pool_with_hooks(
            ConnectionConfig::parse("sim://primary/app")?,
            Some(PoolConfig {
                min_idle: 0,
                max_size: 4,
                ..PoolConfig::default()
            }),
            hooks,
        )
        .await?;

    for _ in 0..8 {
        let mut conn = pool.acquire().await?;
        conn.query("SELECT 1").await?;
    }
    println!(
        "8 acquires on {} connection(s); after_connect ran {} time(s)",
        pool.stats().created,
        connects.load(Ordering::Relaxed)
    );

    // After a DDL change: idle connections close now, busy ones when they come back.
    let busy = pool.acquire().await?;
    println!(
        "soft_evict closed {} idle connection(s) now",
        pool.soft_evict()
    );
    drop(busy);
    println!(
        "…and the busy one on its return: {} open",
        pool.stats().live
    );

    // While paused, acquires wait (up to their deadline) and nothing new is opened.
    pool.pause();
    match pool.acquire_timeout(Duration::from_millis(100)).await {
        Err(Error::Timeout { phase, .. }) => println!("paused: an acquire timed out ({phase})"),
        other => println!("paused: unexpected {other:?}"),
    }
    pool.resume();
    drop(pool.acquire().await?);
    println!("resumed: served again");

    // Outside the slots, counted, closed by the pool's shutdown.
    let dedicated = pool.dedicated().await?;
    println!(
        "dedicated connection open ({} dedicated, max_size still {})",
        pool.stats().dedicated,
        pool.stats().max_size
    );
    drop(dedicated);

    let report = sup.shutdown(Duration::from_secs(5)).await?;
    println!("shutdown: {report:?}");
    Ok(())
}
