//! Failures: terminated backends, wrong passwords, unreachable ports, servers that never
//! answer, and a restart under load.

use std::sync::Arc;

use crate::common;
use crate::common::load::{is_outage, unexpected_acquire_errors, Load, Pace, Tally};
use crate::common::pg_server::PG_USER;
use crate::common::PgServer;
use crate::common::{ms, secs};
use crate::{assert_server_count_matches, backend_error, pool_config, start_pool};
use poolwarden::backends::postgres::PostgresBackend;
use poolwarden::{Backend, BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig, Secret};
use tokio::time::Instant;

#[actix::test]
async fn a_terminated_backend_is_detected_and_replaced_not_handed_out() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("kill");
    let (_sup, pool) = start_pool(pg.config_for(&app), pool_config(1)).await;
    let conn = pool.acquire().await.unwrap();
    let pid = conn.backend_pid();
    conn.batch_execute("SELECT 1").await.unwrap();
    drop(conn);

    assert_eq!(pg.terminate_backends(&app).await, 1);
    let gone = common::eventually(secs(10), || async {
        (!pg.backend_pids(&app).await.contains(&pid)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "backend {pid} did not exit");

    // Used moments ago, so no probe on checkout: is_broken alone must catch it.
    let conn = pool.acquire().await.expect("a replacement");
    assert_ne!(
        conn.backend_pid(),
        pid,
        "the dead connection was handed out"
    );
    let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(conn);
    let s = pool.stats();
    assert_eq!((s.created, s.closed, s.live), (2, 1, 1), "{s:?}");
    assert_server_count_matches(pg, &app, &pool).await;
}

#[actix::test]
async fn a_wrong_password_is_an_auth_error_not_a_timeout() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("badpw");
    let mut cfg = pg.config_for(&app);
    cfg.password = Some(Secret::new("definitely-wrong-pw"));
    let (_sup, pool) = start_pool(cfg, pool_config(2)).await;
    let t = Instant::now();
    let err = pool.acquire().await.expect_err("refused");
    assert!(t.elapsed() < secs(3), "failed fast: {:?}", t.elapsed());
    let Error::Backend {
        phase: Phase::Connect,
        source,
        ..
    } = &err
    else {
        panic!("expected a connect error, got {err:?}");
    };
    assert_eq!(source.kind(), BackendErrorKind::Auth, "{source}");
    assert!(!source.is_retryable());
    let text = source.to_string();
    assert!(text.contains("28P01") && text.contains(PG_USER), "{text}");
    let everything = format!("{err} {err:?} {source} {source:?}");
    assert!(!everything.contains("definitely-wrong-pw"), "{everything}");
    assert!(!everything.contains(pg.password()), "{everything}");
    assert_eq!(pool.stats().connect_errors, 1, "not retried");

    // A database that does not exist is a configuration error, also not retried.
    let mut cfg = pg.config_for(&app);
    cfg.database = Some("pw_no_such_db".into());
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert!(err.to_string().contains("3D000"), "{err}");
    assert_server_count_matches(pg, &app, &pool).await;
}

#[actix::test]
async fn an_unreachable_port_fails_with_a_connect_error() {
    // A port nobody listens on: refused at once.
    let port = common::free_port();
    let mut cfg = ConnectionConfig::new("postgres", "127.0.0.1", port);
    cfg.user = Some("nobody".into());
    cfg.application_name = Some(PgServer::unique_app("refused"));
    cfg.options.insert("connect_timeout".into(), "2".into());
    let t = Instant::now();
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), BackendErrorKind::Connect, "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(t.elapsed() < secs(2), "{:?}", t.elapsed());

    // Through the pool: retried with backoff within the acquire budget, then an error
    // carrying the last connect error (a connect timeout, or the circuit breaker opening
    // first). No hang.
    let config = PoolConfig {
        acquire_timeout: ms(800),
        connect_timeout: ms(500),
        ..pool_config(1)
    };
    let (_sup, pool) = start_pool(cfg, config).await;
    let t = Instant::now();
    let err = pool.acquire().await.expect_err("unreachable");
    let waited = t.elapsed();
    assert!(waited < secs(2), "returned within the budget: {waited:?}");
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: Phase::Connect,
                ..
            } | Error::CircuitOpen { .. }
        ),
        "{err:?}"
    );
    let last = backend_error(&err);
    assert_eq!(last.kind(), BackendErrorKind::Connect, "{last}");
    assert!(
        pool.stats().connect_errors >= 2,
        "retried: {:?}",
        pool.stats()
    );
    assert_eq!(pool.stats().live, 0);
}

#[actix::test]
async fn a_server_that_never_answers_hits_the_connect_timeout() {
    // Accepts TCP connections (the kernel does, into the backlog) but never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut cfg = ConnectionConfig::new("postgres", "127.0.0.1", port);
    cfg.user = Some("nobody".into());
    cfg.options.insert("connect_timeout".into(), "300ms".into());
    let t = Instant::now();
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("timed out");
    let waited = t.elapsed();
    assert_eq!(err.kind(), BackendErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("connect_timeout"), "{err}");
    assert!(waited >= ms(300) && waited < secs(2), "{waited:?}");
    drop(silent);
}

#[actix::test]
async fn server_restart_under_load_recovers_without_hanging() {
    let Some(pg) = PgServer::start() else { return };
    let pg = Arc::new(pg);
    let app = "restart";
    let max_size = 4;
    let config = PoolConfig {
        backoff_initial: ms(20),
        backoff_max: ms(200),
        ..pool_config(max_size)
    };
    let (_sup, pool) = start_pool(pg.config_for(app), config).await;

    // A client backs off instead of spinning on a failing pool.
    let load = Load::start(&pool, 8, Pace::backoff(ms(10)), |_, conn| async move {
        conn.query_one("SELECT 1", &[])
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert!(
        load.reached(200, secs(30)).await,
        "the load never got going"
    );
    let restart = {
        let pg = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg.restart())
    };
    restart.await.expect("restart");
    assert!(
        load.more_ok(200, secs(30)).await,
        "no recovery after the restart: {:?}",
        pool.stats()
    );
    // Recovered: from here on nothing fails.
    let errors_at_recovery = load.errors();
    assert!(
        load.more_ok(500, secs(30)).await,
        "stalled after recovering"
    );
    assert_eq!(
        load.errors(),
        errors_at_recovery,
        "errors after the recovery"
    );

    let ops = load.finish(secs(15)).await;
    let t = Tally::of(&ops);
    let s = pool.stats();
    let unexpected = unexpected_acquire_errors(&ops, |e| is_outage(e, &[Phase::Connect]));
    assert!(
        unexpected.is_empty(),
        "acquire errors other than the outage: {unexpected:?}"
    );
    // Only the connections open when the server died can fail a query, once each.
    assert!(
        t.op_errors <= max_size as usize,
        "{} query errors; {s:?}",
        t.op_errors
    );
    assert!(
        s.created > u64::from(max_size),
        "the connections were replaced: {s:?}"
    );
    assert_eq!(s.in_use, 0);
    println!(
        "restart under load: {} ok, {} acquire errors (outage), {} query errors; {s:?}",
        t.ok,
        t.all_acquire_errors(),
        t.op_errors
    );
    assert_server_count_matches(&pg, app, &pool).await;
}
