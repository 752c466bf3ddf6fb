//! The supervisor embedded in a long-running tokio worker with no actix System of its own:
//! periodic jobs on two keys, stats every two seconds, clean shutdown on Ctrl-C / SIGTERM.
//!
//! ```text
//! cargo run --example worker              # until Ctrl-C
//! cargo run --example worker -- --seconds 5
//! ```

mod common;

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::{ConnectionConfig, EmbeddedSupervisor, PoolHandle, SupervisorConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    common::init_tracing();
    let seconds: Option<u64> = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?;

    let sim = SimBackend::new(7);
    sim.set_default_behavior(SimBehavior {
        connect_latency: Duration::from_millis(3),
        query_latency: Duration::from_millis(1),
        query_failure_rate: 0.01,
        ..SimBehavior::default()
    });
    println!("running on the simulated backend");

    // The supervisor runs on its own thread; acquire/release stay in our tasks.
    let sup = EmbeddedSupervisor::spawn(sim, SupervisorConfig::default())?;
    let orders = sup
        .handle()
        .register(
            "orders",
            ConnectionConfig::parse("sim://orders-db/orders")?,
            None,
        )
        .await?;
    let billing = sup
        .handle()
        .register(
            "billing",
            ConnectionConfig::parse("sim://billing-db/billing")?,
            None,
        )
        .await?;

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let jobs = [
        tokio::spawn(job(
            "orders",
            orders,
            Duration::from_millis(50),
            done.clone(),
            failed.clone(),
        )),
        tokio::spawn(job(
            "billing",
            billing,
            Duration::from_millis(120),
            done.clone(),
            failed.clone(),
        )),
    ];

    let report_every = tokio::time::interval(Duration::from_secs(2));
    let stop = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => common::shutdown_signal().await,
        }
    };
    tokio::pin!(stop, report_every);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = report_every.tick() => {
                let stats = sup.handle().stats().await?;
                println!(
                    "{} jobs done, {} failed; {} pools, {} open, {} in use",
                    done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed),
                    stats.pools, stats.total, stats.in_use
                );
            }
        }
    }
    println!("stopping jobs");
    jobs.iter().for_each(|j| j.abort());
    let report = sup.shutdown(Duration::from_secs(5)).await?;
    println!(
        "shutdown: {} pools closed, {} connections closed, {} still checked out",
        report.pools_closed, report.connections_closed, report.still_checked_out
    );
    Ok(())
}

async fn job(
    name: &'static str,
    pool: PoolHandle<SimBackend>,
    every: Duration,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let result = async {
            let mut conn = pool.acquire().await?;
            conn.query("UPDATE jobs SET state = 'done' WHERE id = 1")
                .await?;
            Ok::<_, Box<dyn Error>>(())
        }
        .await;
        match result {
            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(job = name, error = %e, "job failed");
                failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}
