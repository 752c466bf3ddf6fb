//! Get a pool by config, acquire, use, print stats — on the simulated backend.
//!
//! ```text
//! cargo run --example basic
//! ```
//!
//! Ctrl-C (or SIGTERM) at any moment shuts the supervisor down cleanly.

mod common;

use std::error::Error;
use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::{ConnectionConfig, PoolConfig, Profile, SupervisorConfig, SupervisorHandle};

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    common::init_tracing();

    // A simulated server: 5 ms to connect, 2 ms per query, deterministic under seed 42.
    let sim = SimBackend::new(42);
    sim.set_default_behavior(SimBehavior {
        connect_latency: Duration::from_millis(5),
        query_latency: Duration::from_millis(2),
        ..SimBehavior::default()
    });
    println!("running on the simulated backend");

    let sup = SupervisorHandle::start(sim.clone(), SupervisorConfig::default())?;
    let config = ConnectionConfig::parse("sim://app:s3cret@primary:5432/orders")?;
    println!("connecting to {config} (the password is never printed)");
    let pool = sup
        .pool_with(
            config,
            PoolConfig {
                min_idle: 2,
                max_size: 4,
                ..PoolConfig::profile(Profile::Development)
            },
        )
        .await?;
    println!("pool {} ready", pool.key());

    let work = async {
        // 32 concurrent "requests" share 4 connections.
        let requests = (0..32).map(|i| {
            let pool = pool.clone();
            async move {
                let mut conn = pool.acquire().await?;
                conn.query(&format!("SELECT * FROM orders WHERE id = {i}"))
                    .await?;
                Ok::<_, Box<dyn Error>>(())
            }
        });
        let results = futures::future::join_all(requests).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        println!("served 32 requests, {failed} failed");
    };
    tokio::select! {
        _ = work => {}
        _ = common::shutdown_signal() => println!("interrupted"),
    }

    let stats = sup.stats().await?;
    println!(
        "supervisor: {} pool(s), {} served, {} idle, {} in use, {} open",
        stats.pools, stats.connections_served, stats.idle, stats.in_use, stats.total
    );
    for p in &stats.per_pool {
        println!(
            "  pool {}: created {} connections (max_size {}), {} timeouts",
            p.key, p.created, p.max_size, p.timeouts
        );
    }
    let health = sup.health().await?;
    println!("health: {:?} ({} healthy)", health.status, health.healthy);

    let report = sup.shutdown(Duration::from_secs(5)).await?;
    println!(
        "shutdown: {} pool(s), {} connection(s) closed, {} still out; server now has {} open",
        report.pools_closed,
        report.connections_closed,
        report.still_checked_out,
        sim.server("primary:5432").open_connections()
    );
    Ok(())
}
