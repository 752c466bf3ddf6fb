//! Basics: acquire, query, release and reuse; hosts in order and Unix sockets; options that
//! reach the server and unknown ones that are configuration errors; a dropped connection's
//! server session ends.

use crate::common;
use crate::common::PgServer;
use crate::common::{ms, secs};
use crate::{assert_server_count_matches, pool_config, start_pool};
use poolwarden::backends::postgres::{PostgresBackend, TransactionStatus};
use poolwarden::{Backend, BackendErrorKind};
use tokio::time::Instant;

#[actix::test]
async fn acquire_query_release_and_reuse() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("basic");
    let (_sup, pool) = start_pool(pg.config_for(&app), pool_config(2)).await;

    let conn = pool.acquire().await.expect("acquire");
    let row = conn
        .query_one(
            "SELECT $1::int + 1, pg_backend_pid(), current_setting('application_name')",
            &[&41i32],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 42);
    let pid: i32 = row.get(1);
    assert_eq!(conn.backend_pid(), pid, "the tap read BackendKeyData");
    assert_eq!(row.get::<_, String>(2), app);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert_eq!(pg.backend_connections(&app).await, 1);
    drop(conn);

    let s = pool.stats();
    assert_eq!((s.live, s.idle, s.in_use, s.served), (1, 1, 0, 1), "{s:?}");
    let conn = pool.acquire().await.expect("acquire again");
    assert_eq!(conn.backend_pid(), pid, "the idle connection is reused");
    drop(conn);
    assert_eq!(pool.stats().created, 1);
    assert_server_count_matches(pg, &app, &pool).await;
}

#[actix::test]
async fn hosts_are_tried_in_order_and_unix_sockets_work() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("hosts");
    let backend = PostgresBackend::new();

    // The first host refuses; the second is the server.
    let mut cfg = pg.config_for(&app);
    let dead = common::free_port();
    cfg.hosts.insert(
        0,
        poolwarden::Host {
            host: "127.0.0.1".into(),
            port: dead,
        },
    );
    let conn = backend.connect(&cfg).await.expect("the second host");
    assert_eq!(conn.host(), format!("127.0.0.1:{}", pg.port()));
    conn.batch_execute("SELECT 1").await.unwrap();

    // A host starting with '/' is a Unix socket directory (never TLS).
    let mut cfg = pg.config_for(&app);
    cfg.hosts = vec![poolwarden::Host {
        host: pg.dir().display().to_string(),
        port: pg.port(),
    }];
    cfg.tls.mode = poolwarden::SslMode::Require;
    let unix = backend.connect(&cfg).await.expect("unix socket");
    let local: bool = unix
        .query_one("SELECT inet_client_addr() IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(local, "connected through the socket");
    assert!(unix.host().ends_with(&format!(".s.PGSQL.{}", pg.port())));

    // Every host failing: one error naming each.
    let mut cfg = pg.config_for(&app);
    cfg.hosts = vec![
        poolwarden::Host {
            host: "127.0.0.1".into(),
            port: dead,
        },
        poolwarden::Host {
            host: "127.0.0.1".into(),
            port: common::free_port(),
        },
    ];
    let err = backend.connect(&cfg).await.expect_err("no host");
    assert_eq!(err.kind(), BackendErrorKind::Connect, "{err}");
    assert!(err.to_string().contains(&dead.to_string()), "{err}");
    drop((conn, unix));
    assert_eq!(pg.wait_backend_connections(&app, 0, secs(10)).await, 0);
}

#[actix::test]
async fn options_reach_the_server() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("options");
    let mut cfg = pg.config_for(&app);
    cfg.options
        .insert("statement_timeout".into(), "150ms".into());
    cfg.options
        .insert("options".into(), "-c search_path=pw_nowhere,public".into());
    cfg.options.insert("connect_timeout".into(), "5".into());
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
    let conn = pool.acquire().await.expect("acquire");
    let timeout: String = conn
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "150ms");
    let path: String = conn
        .query_one("SHOW search_path", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(path.replace(' ', ""), "pw_nowhere,public");
    let err = conn
        .batch_execute("SELECT pg_sleep(2)")
        .await
        .expect_err("the statement timeout fires");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
    drop(conn);
    assert_server_count_matches(pg, &app, &pool).await;
}

#[actix::test]
async fn unknown_options_are_configuration_errors() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("badopt");
    let mut cfg = pg.config_for(&app);
    cfg.options.insert("statment_timeout".into(), "5s".into());
    // Refused when the config is checked (as `pool()` does), naming the key.
    let e = cfg.validate().expect_err("refused");
    assert_eq!(e.field, "connection.options.statment_timeout", "{e}");
    // The backend's own parser refuses it too (a config that skipped the check), at once.
    let t = Instant::now();
    let Err(source) = PostgresBackend::new().connect(&cfg).await else {
        panic!("connected with an unknown option");
    };
    assert_eq!(source.kind(), BackendErrorKind::Config, "{source}");
    assert!(source.to_string().contains("statment_timeout"), "{source}");
    assert!(t.elapsed() < secs(2), "not retried: {:?}", t.elapsed());
}

#[actix::test]
async fn a_dropped_connection_ends_its_server_session_idle_or_mid_query() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("dropped");
    let mut cfg = pg.config_for(&app);
    // The server notices a client gone mid-query only when it looks at the socket.
    cfg.options.insert(
        "options".into(),
        "-c client_connection_check_interval=50".into(),
    );
    let backend = PostgresBackend::new();
    let sessions = || async { pg.backend_pids(&app).await.len() };
    let ended = |what: &'static str| async move {
        let t = Instant::now();
        let gone =
            common::eventually(secs(10), || async { (sessions().await == 0).then_some(()) }).await;
        assert!(gone.is_some(), "{what}: its session outlived it");
        t.elapsed()
    };

    // Idle: tokio-postgres says goodbye (Terminate) and closes the socket.
    let conn = backend.connect(&cfg).await.expect("connect");
    conn.batch_execute("SELECT 1").await.unwrap();
    assert_eq!(sessions().await, 1);
    drop(conn);
    let idle = ended("an idle connection").await;

    // Mid-query: the query's future dropped with its request unanswered, then the
    // connection. Its socket is closed at once (tokio-postgres alone would wait for the
    // answer, a minute away), and the server ends the session.
    let conn = backend.connect(&cfg).await.expect("connect");
    let abandoned = tokio::time::timeout(ms(100), conn.batch_execute("SELECT pg_sleep(60)")).await;
    assert!(abandoned.is_err(), "pg_sleep(60) returned: {abandoned:?}");
    assert_eq!(sessions().await, 1);
    drop(conn);
    let mid_query = ended("a connection dropped mid-query").await;
    println!("sessions ended {idle:?} (idle) and {mid_query:?} (mid-query) after the drop");
}
