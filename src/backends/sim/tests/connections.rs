//! Connects, queries, latencies, in-flight counting, config option overrides,
//! transactions and connection ids.

use futures::FutureExt;
use tokio::time::{timeout, Instant};

use super::{latency, ms, setup, SimBackend, SimBehavior};
use crate::backends::Backend;
use crate::connection::ConnectionConfig;
use crate::error::BackendErrorKind;

#[tokio::test]
async fn connect_query_and_counters() {
    let (sim, cfg, server) = setup("db");
    assert_eq!(server.name(), "db:1");
    let mut conn = sim.connect(&cfg).await.unwrap();
    assert_eq!(conn.server().name(), "db:1");
    assert_eq!(conn.query("SELECT 1").await.unwrap(), 1);
    assert_eq!(conn.query("SELECT 2").await.unwrap(), 2);
    sim.probe(&mut conn).await.unwrap();
    sim.reset(&mut conn).await.unwrap();
    assert_eq!(conn.query("SELECT 3").await.unwrap(), 5);
    assert_eq!(server.connects(), 1);
    assert_eq!(server.connect_attempts(), 1);
    assert_eq!(server.open_connections(), 1);
    assert_eq!(server.queries(), 5);
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.peak_in_flight_connects(), 1);
    assert!(!sim.is_broken(&mut conn));

    let other = sim.connect(&cfg).await.unwrap();
    assert_ne!(other.id(), conn.id());
    assert_eq!(server.open_connections(), 2);
    drop(conn);
    assert_eq!(server.open_connections(), 1);
    drop(other);
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.connects(), 2);
}

#[test]
fn zero_latency_needs_no_timer_and_no_runtime() {
    // No tokio runtime here: any timer use would panic, any real wait would return None.
    let (sim, cfg, server) = setup("fast");
    let mut conn = sim.connect(&cfg).now_or_never().unwrap().unwrap();
    assert_eq!(conn.query("SELECT 1").now_or_never().unwrap().unwrap(), 1);
    sim.probe(&mut conn).now_or_never().unwrap().unwrap();
    sim.reset(&mut conn).now_or_never().unwrap().unwrap();
    assert_eq!(server.queries(), 3);
    drop(conn);
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn latencies_are_respected() {
    let (sim, cfg, server) = setup("slow");
    server.set_behavior(latency(30, 7));
    assert_eq!(server.behavior(), latency(30, 7));

    let t = Instant::now();
    let mut conn = sim.connect(&cfg).await.unwrap();
    assert_eq!(t.elapsed(), ms(30));

    let t = Instant::now();
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(t.elapsed(), ms(7));

    let t = Instant::now();
    sim.probe(&mut conn).await.unwrap();
    assert_eq!(t.elapsed(), ms(7));

    let t = Instant::now();
    sim.reset(&mut conn).await.unwrap();
    assert_eq!(t.elapsed(), ms(7));

    // A behaviour change applies to open connections too.
    server.set_behavior(latency(0, 2));
    let t = Instant::now();
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(t.elapsed(), ms(2));
}

#[tokio::test(start_paused = true)]
async fn in_flight_is_released_when_a_connect_future_is_dropped() {
    let (sim, cfg, server) = setup("inflight");
    server.set_behavior(latency(100, 0));

    let mut fut = Box::pin(sim.connect(&cfg));
    assert!(futures::poll!(fut.as_mut()).is_pending());
    assert_eq!(server.in_flight_connects(), 1);
    drop(fut);
    assert_eq!(server.in_flight_connects(), 0);

    assert!(timeout(ms(10), sim.connect(&cfg)).await.is_err());
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.connects(), 0);
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.connect_attempts(), 2);

    // Concurrent connects are all in flight at once.
    let t = Instant::now();
    let conns = futures::future::join_all((0..5).map(|_| sim.connect(&cfg))).await;
    assert_eq!(t.elapsed(), ms(100));
    assert!(conns.iter().all(Result::is_ok));
    assert_eq!(server.peak_in_flight_connects(), 5);
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.open_connections(), 5);
}

#[tokio::test(start_paused = true)]
async fn config_options_override_the_behavior() {
    let (sim, mut cfg, server) = setup("opts");
    server.set_behavior(latency(50, 50));
    cfg.options.insert("connect_latency".into(), "2ms".into());
    cfg.options.insert("query_latency".into(), "3ms".into());
    cfg.options.insert("unrelated".into(), "ignored".into());

    let t = Instant::now();
    let mut conn = sim.connect(&cfg).await.unwrap();
    assert_eq!(t.elapsed(), ms(2));
    let t = Instant::now();
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(t.elapsed(), ms(3));

    // A connection without overrides follows the server.
    let plain = ConnectionConfig::sim("opts");
    let t = Instant::now();
    let mut other = sim.connect(&plain).await.unwrap();
    other.query("SELECT 1").await.unwrap();
    assert_eq!(t.elapsed(), ms(100));

    let mut cfg = ConnectionConfig::sim("opts");
    cfg.options.insert("connect_latency".into(), "0s".into());
    cfg.options.insert("query_failure_rate".into(), "1".into());
    let mut failing = sim.connect(&cfg).await.unwrap();
    assert_eq!(
        failing.query("SELECT 1").await.unwrap_err().kind(),
        BackendErrorKind::Query
    );

    let mut cfg = ConnectionConfig::sim("opts");
    cfg.options
        .insert("connect_failure_rate".into(), "1.0".into());
    assert_eq!(
        sim.connect(&cfg).await.unwrap_err().kind(),
        BackendErrorKind::Connect
    );
}

#[tokio::test]
async fn unparsable_options_are_config_errors_naming_the_option() {
    let sim = SimBackend::new(0);
    for (key, value) in [
        ("connect_latency", "soon"),
        ("query_latency", "-1ms"),
        ("connect_failure_rate", "often"),
        ("query_failure_rate", "1.5"),
        ("query_failure_rate", "NaN"),
    ] {
        let mut cfg = ConnectionConfig::sim("bad");
        cfg.options.insert(key.into(), value.into());
        let err = sim.connect(&cfg).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Config, "{key}={value}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(key), "{err}");
    }
    let server = sim.server("bad:1");
    assert_eq!(server.connects(), 0);
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.connect_attempts(), 5);
}

#[tokio::test]
async fn transactions_are_tracked() {
    let (sim, cfg, server) = setup("tx");
    let mut conn = sim.connect(&cfg).await.unwrap();
    assert!(!conn.in_transaction());
    assert!(!sim.needs_reset(&conn));

    conn.query("  begin").await.unwrap();
    assert!(conn.in_transaction());
    assert!(sim.needs_reset(&conn));
    conn.query("INSERT INTO t VALUES (1)").await.unwrap();
    conn.query("rollback to savepoint a").await.unwrap();
    assert!(conn.in_transaction(), "ROLLBACK TO keeps the transaction");
    conn.query("Commit;").await.unwrap();
    assert!(!conn.in_transaction());

    conn.query("START   TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        .await
        .unwrap();
    assert!(conn.in_transaction());
    sim.reset(&mut conn).await.unwrap();
    assert!(!conn.in_transaction());
    assert!(!sim.needs_reset(&conn));

    for not_a_tx in ["BEGINNING", "SELECT 'BEGIN'", "start", "STARTTRANSACTION"] {
        conn.query(not_a_tx).await.unwrap();
        assert!(!conn.in_transaction(), "{not_a_tx}");
    }
    conn.query("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    conn.query("rollback").await.unwrap();
    assert!(!conn.in_transaction());

    // A failing statement changes nothing.
    conn.query("BEGIN").await.unwrap();
    server.set_behavior(SimBehavior {
        query_failure_rate: 1.0,
        ..SimBehavior::default()
    });
    assert!(conn.query("COMMIT").await.is_err());
    assert!(conn.in_transaction());
    assert!(sim.reset(&mut conn).await.is_err());
    assert!(conn.in_transaction());
}

#[tokio::test]
async fn connection_ids_are_unique_across_servers() {
    let sim = SimBackend::new(1);
    let a = sim.connect(&ConnectionConfig::sim("a")).await.unwrap();
    let b = sim.connect(&ConnectionConfig::sim("b")).await.unwrap();
    assert_ne!(a.id(), b.id());
    let debug = format!("{a:?}");
    assert!(
        debug.contains("SimConnection") && debug.contains("a:1"),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_use_keeps_counters_consistent() {
    let sim = SimBackend::new(9);
    let cfg = ConnectionConfig::sim("busy");
    let server = sim.server(&cfg.primary_host());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (sim, cfg) = (sim.clone(), cfg.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                for _ in 0..200 {
                    let mut conn = sim.connect(&cfg).await.unwrap();
                    match sim.probe(&mut conn).await {
                        Ok(()) => ok += 1,
                        // The killer task may get there first.
                        Err(e) => assert_eq!(e.kind(), BackendErrorKind::Closed),
                    }
                    tokio::task::yield_now().await;
                }
                ok
            })
        })
        .collect();
    let killer = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut killed = 0;
            for _ in 0..100 {
                killed += server.kill_all();
                tokio::task::yield_now().await;
            }
            killed
        })
    };
    let killed = killer.await.unwrap();
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    assert!(killed <= 1600);
    assert_eq!(server.queries(), ok);
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.in_flight_connects(), 0);
    assert_eq!(server.connects(), 1600);
    assert_eq!(server.connect_attempts(), 1600);
    assert!(server.peak_in_flight_connects() >= 1);
}
