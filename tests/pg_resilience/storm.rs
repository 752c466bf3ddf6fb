//! Reconnect storm: 1,000 waiters against a server with a small `max_connections`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::pg_replication::StopMode;
use crate::common::{ms, secs};
use crate::common::{PgOptions, PgServer};
use crate::{assert_server_count_matches, start_pool, SLACK};
use poolwarden::{BreakerConfig, PoolConfig};
use tokio::time::{timeout, Instant};

#[actix::test]
async fn a_reconnect_storm_of_1000_waiters_respects_max_connecting_and_max_connections() {
    const WAITERS: usize = 1000;
    const MAX_CONNECTIONS: u32 = 30;
    let Some(pg) = PgServer::start_with(PgOptions {
        max_connections: Some(MAX_CONNECTIONS),
        ..PgOptions::default()
    }) else {
        return;
    };
    let pg = Arc::new(pg);
    let app = PgServer::unique_app("storm");
    let config = PoolConfig {
        min_idle: 0,
        max_size: 20,
        max_connecting: 4,
        max_waiters: 1024,
        acquire_timeout: secs(20),
        connect_timeout: secs(2),
        probe_interval: None,
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        backoff_initial: ms(20),
        backoff_max: ms(200),
        // Out of the way: an open breaker fails waiters at once, so none would be left
        // queued when the server comes back. What is tested here is the connect limit.
        breaker: BreakerConfig {
            failure_threshold: u32::MAX,
            ..BreakerConfig::default()
        },
        ..PoolConfig::default()
    };
    let fx = start_pool(pg.config_for(&app), config.clone()).await;
    {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.stop_with(StopMode::Immediate))
            .await
            .expect("stop");
    }

    // Server-side backends of the pool, sampled through the storm.
    let peak_backends = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));

    let down = Instant::now();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let pool = fx.pool.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let r = match pool.acquire().await {
                    Ok(conn) => conn
                        .query_one("SELECT 1", &[])
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (r, t.elapsed())
            })
        })
        .collect();
    // Everyone queued, and the pool has been knocking for a while.
    let queued = common::eventually(secs(10), || async {
        let s = fx.pool.stats();
        (s.waiters + s.connecting + s.in_use >= WAITERS - config.max_size as usize
            && s.connect_errors >= 20)
            .then_some(())
    })
    .await;
    assert!(queued.is_some(), "queued: {:?}", fx.pool.stats());
    let queued_at = fx.pool.stats();

    // The server comes back: every waiter rushes.
    {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.start_again())
            .await
            .expect("start");
    }
    let up = Instant::now();
    let sampler = {
        let (pg, app) = (Arc::clone(&pg), app.clone());
        let (peak, sampling) = (Arc::clone(&peak_backends), Arc::clone(&sampling));
        tokio::spawn(async move {
            let admin = pg.superuser_client().await;
            while sampling.load(Ordering::Relaxed) {
                let n = common::pg_server::count_backends(&admin, &app).await;
                peak.fetch_max(n as usize, Ordering::Relaxed);
                tokio::time::sleep(ms(5)).await;
            }
        })
    };
    let mut served = 0;
    let mut errors = Vec::new();
    let mut longest = Duration::ZERO;
    for w in waiters {
        let (r, took) = timeout(config.acquire_timeout + secs(5), w)
            .await
            .expect("a waiter hung")
            .expect("a waiter panicked");
        longest = longest.max(took);
        match r {
            Ok(()) => served += 1,
            Err(e) => errors.push(e),
        }
    }
    let all_done = up.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let peak_backends = peak_backends.load(Ordering::Relaxed);
    let s = fx.pool.stats();
    println!(
        "storm: {WAITERS} waiters, down for {:?} ({} waiting, {} connect errors when it came \
         back); all done {all_done:?} after it was up; served {served}, errors {}; peak \
         connects {} (max_connecting {}), {} connect attempts; peak server backends \
         {peak_backends} (max_connections {MAX_CONNECTIONS}); {s:?}",
        up - down,
        queued_at.waiters,
        queued_at.connect_errors,
        errors.len(),
        fx.gauge.peak(),
        config.max_connecting,
        fx.gauge.attempts()
    );
    assert!(
        fx.gauge.peak() <= config.max_connecting as usize,
        "{} connects at once",
        fx.gauge.peak()
    );
    // The outage was far shorter than the acquire timeout: everyone is served. (An error
    // would have to be bounded by that timeout; none is expected.)
    assert!(
        errors.is_empty(),
        "{} waiters failed, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(served, WAITERS);
    assert!(longest <= config.acquire_timeout + SLACK, "{longest:?}");
    // No churn: the pool opened at most max_size connections and the server never held
    // more (a small max_connections leaves room for them and nothing else), so it never
    // ran out: no "too many clients" in its log.
    assert!(
        peak_backends <= config.max_size as usize,
        "{peak_backends} backends at once"
    );
    assert!(s.created <= u64::from(config.max_size), "{s:?}");
    let log = pg.log();
    assert!(
        !log.contains("too many clients") && !log.contains("53300"),
        "max_connections was hit:\n{}",
        log.lines()
            .filter(|l| l.contains("too many"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_server_count_matches(&pg, &app, &fx.pool).await;
}
