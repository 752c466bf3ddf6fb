//! Connection budgets against a real server: six pool keys (six application names, one
//! server) under `max_connections_per_host = 4` never hold more than four backends at once,
//! counted by the server itself, and serve every caller.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::secs;
use crate::common::PgServer;
use crate::{pool_config, Pg};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{SupervisorConfig, SupervisorHandle};
use tokio::time::Instant;

#[actix::test]
async fn six_keys_to_one_server_never_hold_more_than_max_connections_per_host() {
    let Some(pg) = PgServer::shared() else { return };
    let base = PgServer::unique_app("budget");
    let sup: SupervisorHandle<Pg> = SupervisorHandle::start(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            max_connections_per_host: Some(4),
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let mut pools = Vec::new();
    for k in 0..6 {
        let pool = sup
            .pool_with(pg.config_for(&format!("{base}-k{k}")), pool_config(3))
            .await
            .expect("pool");
        pools.push(pool);
    }

    // The server's count of every key's backends together, in one snapshot, sampled
    // while the load runs.
    let admin = pg.superuser_client().await;
    let pattern = format!("{base}-%");
    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (stop, taken) = (Arc::clone(&stop), Arc::clone(&taken));
        tokio::spawn(async move {
            let mut peak = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let row = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                        &[&pattern],
                    )
                    .await
                    .expect("count backends");
                peak = peak.max(row.get::<_, i64>(0));
                taken.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (peak, taken.load(Ordering::Relaxed))
        })
    };

    // The load runs 4 s and until the sampler (sharing the test's thread with it) has
    // taken `SAMPLES` snapshots: on a loaded machine that takes longer, not fewer
    // samples. A machine that cannot take them in a minute fails the test below.
    const SAMPLES: u32 = 20;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (until, cap) = (start + secs(4), start + secs(60));
    let mut workers = Vec::new();
    for (k, pool) in pools.iter().enumerate() {
        for t in 0..3 {
            let (pool, done, taken) = (pool.clone(), Arc::clone(&done), Arc::clone(&taken));
            workers.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                let pause = Duration::from_millis(((k * 5 + t * 3) % 7) as u64);
                let more = || {
                    let now = Instant::now();
                    now < cap && (now < until || taken.load(Ordering::Relaxed) < SAMPLES)
                };
                while more() {
                    match pool.acquire().await {
                        Ok(conn) => match conn.simple_query("SELECT pg_sleep(0.002)").await {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => errors.push(e.to_string()),
                        },
                        Err(e) => errors.push(e.to_string()),
                    }
                    tokio::time::sleep(pause).await;
                }
                errors
            }));
        }
    }
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let (peak, samples) = sampler.await.unwrap();

    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    assert!(peak <= 4, "{peak} backends of the six keys at once");
    assert!(
        samples >= SAMPLES,
        "{samples} samples of the server's count in {:?}",
        start.elapsed()
    );
    let served = done.load(Ordering::Relaxed);
    // Six busy keys share four connections: they change hands (a connect each), so this
    // is about bounds and errors, not throughput.
    assert!(served >= 20, "{served} queries");
    let waits: u64 = pools.iter().map(|p| p.stats().budget_waits).sum();
    assert!(waits > 0, "six keys shared four connections: some waited");

    // At rest the budget's books match the server's.
    let used = sup.stats().await.unwrap().budget.endpoints[0].used as i64;
    let mut on_server = 0;
    for k in 0..6 {
        on_server += pg.backend_connections(&format!("{base}-k{k}")).await;
    }
    assert_eq!(on_server, used);
    sup.shutdown(secs(5)).await.unwrap();
}
