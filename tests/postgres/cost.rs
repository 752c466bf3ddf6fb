//! Cost of the reset tracking (a measurement, not a check: run with --ignored --nocapture).

use std::time::Duration;

use crate::common::pg_server::PG_USER;
use crate::common::PgServer;
use crate::{pool_config, start_pool};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::Backend;
use tokio::time::Instant;

/// Per-operation times, best of three rounds, of: `SELECT 1` on a bare tokio-postgres client;
/// the same on a connection opened by the backend (through the wire tap); acquire +
/// `SELECT 1` + release through the pool (tracking says clean: no reset task); and the same
/// with a `ROLLBACK` on every release (what an unconditional rollback-on-return costs).
#[actix::test]
#[ignore = "a measurement; run with --release --ignored --nocapture"]
async fn reset_tracking_cost() {
    let Some(pg) = PgServer::shared() else { return };
    const N: u32 = 2000;
    let app = PgServer::unique_app("cost");
    let (_sup, pool) = start_pool(pg.config_for(&app), pool_config(1)).await;
    let backend = PostgresBackend::new();
    let tapped = backend.connect(&pg.config_for(&app)).await.unwrap();
    let (bare, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(pg.port())
        .user(PG_USER)
        .password(pg.password())
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    let mut best = [Duration::MAX; 4];
    for round in 0..4 {
        let mut times = [Duration::ZERO; 4];
        let t = Instant::now();
        for _ in 0..N {
            bare.query_one("SELECT 1", &[]).await.unwrap();
        }
        times[0] = t.elapsed() / N;
        let t = Instant::now();
        for _ in 0..N {
            tapped.query_one("SELECT 1", &[]).await.unwrap();
        }
        times[1] = t.elapsed() / N;
        let t = Instant::now();
        for _ in 0..N {
            let c = pool.acquire().await.unwrap();
            c.query_one("SELECT 1", &[]).await.unwrap();
        }
        times[2] = t.elapsed() / N;
        let t = Instant::now();
        for _ in 0..N {
            let c = pool.acquire().await.unwrap();
            c.query_one("SELECT 1", &[]).await.unwrap();
            c.batch_execute("ROLLBACK").await.unwrap();
        }
        times[3] = t.elapsed() / N;
        if round > 0 {
            // Round 0 warms up.
            for (b, t) in best.iter_mut().zip(times) {
                *b = (*b).min(t);
            }
        }
    }
    println!(
        "per operation (best of 3 x {N}): bare client SELECT 1 {:?}; tapped connection \
         SELECT 1 {:?}; pool acquire+SELECT 1+release {:?}; same + ROLLBACK on every \
         release {:?}",
        best[0], best[1], best[2], best[3]
    );
    assert!(!backend.needs_reset(&tapped));
    assert_eq!(pool.stats().closed, 0);
}
