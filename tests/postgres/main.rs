//! The PostgreSQL backend with the real pool (supervisor + pool handle) against throwaway
//! servers from `tests/common`: never the machine's own PostgreSQL.
//!
//! Most tests share one server per binary and isolate themselves with a unique
//! `application_name`; tests that restart a server or need TLS start their own. Every pool
//! test ends by checking that the server's count of the pool's backends
//! (`pg_stat_activity` for its `application_name`) equals the pool's `stats().live`.
#![cfg(feature = "postgres")]

#[path = "../common/mod.rs"]
mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::load::{is_outage, unexpected_acquire_errors, Load, Pace, Tally};
use common::pg_server::PG_USER;
use common::{ms, secs};
use common::{PgOptions, PgServer, PgTls, TestCa};
use poolwarden::backends::postgres::{PgConnection, PostgresBackend, TransactionStatus};
use poolwarden::{
    Backend, BackendError, BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig,
    PoolHandle, PooledConnection, Secret, SupervisorConfig, SupervisorHandle,
};
use tokio::time::Instant;

type Pg = PostgresBackend;

/// A pool that opens nothing in the background and never expires connections, so the
/// figures depend on the test only.
fn pool_config(max_size: u32) -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size,
        acquire_timeout: secs(10),
        connect_timeout: secs(5),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        ..PoolConfig::default()
    }
}

async fn start_pool(
    connection: ConnectionConfig,
    config: PoolConfig,
) -> (SupervisorHandle<Pg>, PoolHandle<Pg>) {
    let sup = SupervisorHandle::start(
        PostgresBackend::new(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config");
    let pool = sup
        .pool_with(connection, config)
        .await
        .expect("pool created");
    (sup, pool)
}

/// The invariant every pool test ends with: the server has exactly as many backends for
/// the pool's application_name as the pool counts live connections.
async fn assert_server_count_matches(pg: &PgServer, app: &str, pool: &PoolHandle<Pg>) {
    let live = pool.stats().live as i64;
    let seen = pg.wait_backend_connections(app, live, secs(10)).await;
    assert_eq!(
        seen,
        live,
        "server backends of `{app}` vs the pool's live count ({:?})",
        pool.stats()
    );
}

/// The server-side state (`idle`, `idle in transaction`, …) of backend `pid`.
async fn backend_state(pg: &PgServer, pid: i32) -> String {
    pg.superuser_client()
        .await
        .query_one("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .expect("the backend exists")
        .get(0)
}

async fn create_table(pg: &PgServer, name: &str) {
    pg.superuser_client()
        .await
        .batch_execute(&format!("CREATE TABLE {name} (x int)"))
        .await
        .expect("create table");
}

async fn admin_count(pg: &PgServer, table: &str) -> i64 {
    pg.superuser_client()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0)
}

/// Wait until every request written has been answered (a query that failed returns on the
/// ErrorResponse; the server's ReadyForQuery, which carries the new transaction status, can
/// arrive a moment later). Bounded: a count that never settles fails the test.
async fn settled(conn: &PgConnection) {
    let done = common::eventually(secs(5), || async {
        (conn.requests_in_flight() == 0).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{} request(s) still in flight",
        conn.requests_in_flight()
    );
}

fn backend_error(err: &Error) -> &BackendError {
    match err {
        Error::Backend { source, .. } => source,
        Error::Timeout {
            last_error: Some(source),
            ..
        }
        | Error::CircuitOpen {
            last_error: Some(source),
            ..
        } => source,
        other => panic!("expected a backend error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Basics
// ---------------------------------------------------------------------------------------

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
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
    let t = Instant::now();
    let err = pool.acquire().await.expect_err("refused");
    let source = backend_error(&err);
    assert_eq!(source.kind(), BackendErrorKind::Config, "{source}");
    assert!(source.to_string().contains("statment_timeout"), "{source}");
    assert!(t.elapsed() < secs(2), "not retried: {:?}", t.elapsed());
    assert_server_count_matches(pg, &app, &pool).await;
}

// ---------------------------------------------------------------------------------------
// Reset on return
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Way {
    /// `batch_execute("BEGIN; INSERT …")`
    Batch,
    /// `simple_query("BEGIN")` then an insert
    SimpleQuery,
    /// `execute("BEGIN", &[])` (extended protocol) then an insert
    Execute,
    /// `transaction()` dropped without commit (tokio-postgres queues a ROLLBACK)
    DroppedTransaction,
    /// a transaction that failed: status `E`
    FailedTransaction,
}

async fn open_transaction_and_insert(conn: &mut PooledConnection<Pg>, way: Way, table: &str) {
    let insert = format!("INSERT INTO {table} VALUES (1)");
    match way {
        Way::Batch => conn
            .batch_execute(&format!("BEGIN; {insert}"))
            .await
            .expect("batch"),
        Way::SimpleQuery => {
            conn.simple_query("BEGIN").await.expect("BEGIN");
            conn.simple_query(&insert).await.expect("insert");
        }
        Way::Execute => {
            conn.execute("BEGIN", &[]).await.expect("BEGIN");
            conn.execute(&insert, &[]).await.expect("insert");
        }
        Way::DroppedTransaction => {
            let tx = conn.transaction().await.expect("transaction");
            tx.execute(&insert, &[]).await.expect("insert");
            // dropped here, not committed
        }
        Way::FailedTransaction => {
            conn.batch_execute(&format!("BEGIN; {insert}"))
                .await
                .expect("batch");
            conn.batch_execute("SELECT 1/0")
                .await
                .expect_err("division by zero");
            settled(conn).await;
            assert_eq!(conn.transaction_status(), TransactionStatus::Failed);
        }
    }
    if !matches!(way, Way::DroppedTransaction | Way::FailedTransaction) {
        assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
    }
}

#[actix::test]
async fn an_abandoned_transaction_is_rolled_back_before_reuse() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("abandon");
    // One connection: the next borrower necessarily gets the one just returned.
    let (_sup, pool) = start_pool(pg.config_for(&app), pool_config(1)).await;

    // Positive control for the log check below: a ROLLBACK outside a transaction is logged.
    let admin = pg.superuser_client().await;
    let admin_pid: i32 = admin
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    admin.batch_execute("ROLLBACK").await.unwrap();
    let warning = |pid: i32| format!("[{pid}] WARNING:  there is no transaction in progress");
    assert!(
        common::wait_for(secs(5), || pg
            .log()
            .contains(&warning(admin_pid))
            .then_some(()))
        .is_some(),
        "the server log shows stray ROLLBACKs"
    );

    for way in [
        Way::Batch,
        Way::SimpleQuery,
        Way::Execute,
        Way::DroppedTransaction,
        Way::FailedTransaction,
    ] {
        let table = format!(
            "abandon_{}_{}",
            format!("{way:?}").to_lowercase(),
            &common::random_hex()[..6]
        );
        create_table(pg, &table).await;

        let mut first = pool.acquire().await.expect("acquire");
        let pid = first.backend_pid();
        open_transaction_and_insert(&mut first, way, &table).await;
        drop(first); // returned without COMMIT

        let second = pool.acquire().await.expect("acquire after reset");
        assert_eq!(second.backend_pid(), pid, "{way:?}: same connection");
        assert_eq!(
            second.transaction_status(),
            TransactionStatus::Idle,
            "{way:?}"
        );
        assert_eq!(backend_state(pg, pid).await, "idle", "{way:?}: server side");
        let rows: i64 = second
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{way:?}: the uncommitted row is not visible");
        assert_eq!(admin_count(pg, &table).await, 0, "{way:?}: nor to others");
        // Not inside a transaction: an insert is visible to others at once.
        second
            .execute(&format!("INSERT INTO {table} VALUES (2)"), &[])
            .await
            .unwrap();
        assert_eq!(
            admin_count(pg, &table).await,
            1,
            "{way:?}: the next borrower autocommits"
        );
        drop(second);
        assert!(
            !pg.log().contains(&warning(pid)),
            "{way:?}: the reset sent a ROLLBACK outside a transaction"
        );
    }
    let s = pool.stats();
    assert_eq!(
        (s.created, s.closed),
        (1, 0),
        "resets kept the connection: {s:?}"
    );
    assert_server_count_matches(pg, &app, &pool).await;
}

/// The reset decision, step by step, on the backend directly (no pool).
#[actix::test]
async fn needs_reset_follows_the_server_transaction_status() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("status");
    let backend = PostgresBackend::new();
    let mut c = backend
        .connect(&pg.config_for(&app))
        .await
        .expect("connect");
    assert!(!backend.needs_reset(&c), "fresh");

    c.execute("SELECT 1", &[]).await.unwrap();
    c.query("SELECT generate_series(1, 1000)", &[])
        .await
        .unwrap();
    // execute/query return at CommandComplete; the ReadyForQuery follows.
    settled(&c).await;
    assert!(
        !backend.needs_reset(&c),
        "autocommit queries leave it clean"
    );

    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(c.transaction_status(), TransactionStatus::InTransaction);
    assert!(backend.needs_reset(&c));
    c.batch_execute("COMMIT").await.unwrap();
    assert!(!backend.needs_reset(&c), "committed");

    // COPY FROM STDIN (extended protocol, with the Sync the server ignores) stays in step.
    c.batch_execute("CREATE TEMP TABLE cp (x int)")
        .await
        .unwrap();
    {
        use futures::SinkExt;
        let sink = c
            .copy_in::<str, &'static [u8]>("COPY cp FROM STDIN")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(&b"1\n2\n"[..]).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), 2);
    }
    settled(&c).await;
    assert!(!backend.needs_reset(&c), "after copy_in");

    // A failed transaction.
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("SELECT 1/0").await.unwrap_err();
    settled(&c).await;
    assert_eq!(c.transaction_status(), TransactionStatus::Failed);
    assert!(backend.needs_reset(&c));
    backend.reset(&mut c).await.expect("reset");
    assert_eq!(c.transaction_status(), TransactionStatus::Idle);
    assert!(!backend.needs_reset(&c));

    // A query whose future was dropped while the server still runs it: in flight, so the
    // reset waits for it (a barrier) instead of handing the connection out busy.
    let abandoned = tokio::time::timeout(ms(20), c.batch_execute("SELECT pg_sleep(0.3)")).await;
    assert!(abandoned.is_err(), "the query was still running");
    assert_eq!(c.requests_in_flight(), 1);
    assert!(backend.needs_reset(&c));
    let t = Instant::now();
    backend.reset(&mut c).await.expect("reset");
    assert!(
        t.elapsed() >= ms(200),
        "the reset waited: {:?}",
        t.elapsed()
    );
    assert!(!backend.needs_reset(&c));

    backend.probe(&mut c).await.expect("probe");
    assert!(!backend.is_broken(&mut c));
    drop(c);
    assert_eq!(pg.wait_backend_connections(&app, 0, secs(10)).await, 0);
}

/// `reset=discard_all`: session state (settings, temporary tables, LISTEN, advisory locks,
/// cursors) does not survive a return, and custom-type lookups keep working afterwards
/// (tokio-postgres's cached type-lookup statements are not deallocated).
#[actix::test]
async fn discard_all_mode_clears_session_state() {
    let Some(pg) = PgServer::shared() else { return };
    let app = PgServer::unique_app("discard");
    let suffix = &common::random_hex()[..6];
    let (e1, e2) = (format!("mood_a_{suffix}"), format!("mood_b_{suffix}"));
    pg.superuser_client()
        .await
        .batch_execute(&format!(
            "CREATE TYPE {e1} AS ENUM ('ok'); CREATE TYPE {e2} AS ENUM ('ok');"
        ))
        .await
        .unwrap();
    let mut cfg = pg.config_for(&app);
    cfg.options.insert("reset".into(), "discard_all".into());
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;

    let first = pool.acquire().await.unwrap();
    let pid = first.backend_pid();
    first
        .batch_execute(
            "SET work_mem = '7MB'; CREATE TEMP TABLE scratch (x int); LISTEN pw_channel; \
             SELECT pg_advisory_lock(4242)",
        )
        .await
        .unwrap();
    // Left inside an open transaction too: rollback and discard in one go.
    first
        .batch_execute("BEGIN; DECLARE cur CURSOR WITH HOLD FOR SELECT 1; COMMIT; BEGIN")
        .await
        .unwrap();
    let held: i64 = first
        .query_one("SELECT count(*) FROM pg_cursors WHERE name = 'cur'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
    first
        .prepare(&format!("SELECT 'ok'::{e1}"))
        .await
        .expect("type lookup");
    drop(first);

    let second = pool.acquire().await.unwrap();
    assert_eq!(second.backend_pid(), pid);
    let work_mem: String = second.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "4MB", "settings were reset");
    let temp: i64 = second
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(temp, 0, "temporary tables were dropped");
    let listening: i64 = second
        .query_one("SELECT count(*) FROM pg_listening_channels()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 0, "UNLISTEN *");
    let locks: i64 = second
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "advisory locks released");
    let cursors: i64 = second
        .query_one("SELECT count(*) FROM pg_cursors WHERE name = 'cur'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cursors, 0, "cursors closed");
    assert_eq!(second.transaction_status(), TransactionStatus::Idle);
    second
        .prepare(&format!("SELECT 'ok'::{e2}"))
        .await
        .expect("a new type lookup after the session reset");
    drop(second);
    assert_eq!(pool.stats().closed, 0);
    assert_server_count_matches(pg, &app, &pool).await;
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

/// One TLS server for the TLS tests: certificate for 127.0.0.1 and localhost from a CA
/// generated here; `hostssl … cert` for the role `certuser`.
struct TlsFixture {
    pg: PgServer,
    ca_file: std::path::PathBuf,
    other_ca_file: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
}

fn tls_fixture() -> Option<&'static TlsFixture> {
    static FIXTURE: OnceLock<Option<TlsFixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let ca = TestCa::new("poolwarden test CA");
            let server = ca.server_cert(&["127.0.0.1", "localhost"]);
            let client = ca.client_cert("certuser");
            let other = TestCa::new("some other CA");
            let pg = PgServer::start_with(PgOptions {
                tls: Some(PgTls {
                    cert_pem: server.cert_pem,
                    key_pem: server.key_pem,
                    client_ca_pem: Some(ca.cert_pem()),
                }),
                hba: Some(
                    "local all all scram-sha-256\n\
                     hostssl all certuser 127.0.0.1/32 cert\n\
                     host all all 127.0.0.1/32 scram-sha-256\n"
                        .into(),
                ),
                ..PgOptions::default()
            })?;
            // Keep the files in the server's directory: the reaper deletes them with it.
            let write = |name: &str, text: &str| {
                let path = pg.dir().join(name);
                std::fs::write(&path, text).expect("write PEM");
                path
            };
            Some(TlsFixture {
                ca_file: write("ca.pem", &ca.cert_pem()),
                other_ca_file: write("other-ca.pem", &other.cert_pem()),
                client_cert: write("client.crt", &client.cert_pem),
                client_key: write("client.key", &client.key_pem),
                pg,
            })
        })
        .as_ref()
}

fn tls_url(f: &TlsFixture, host: &str, app: &str, query: &str) -> ConnectionConfig {
    ConnectionConfig::parse(&format!(
        "postgres://{PG_USER}:{}@{host}:{}/postgres?application_name={app}&{query}",
        f.pg.password(),
        f.pg.port()
    ))
    .expect("valid URL")
}

async fn uses_ssl(conn: &PooledConnection<Pg>) -> bool {
    conn.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .expect("pg_stat_ssl")
    .get(0)
}

#[actix::test]
async fn tls_verify_full_with_the_right_ca_works() {
    let Some(f) = tls_fixture() else { return };
    for host in ["127.0.0.1", "localhost"] {
        let app = PgServer::unique_app("verify");
        let cfg = tls_url(
            f,
            host,
            &app,
            &format!("sslmode=verify-full&sslrootcert={}", f.ca_file.display()),
        );
        let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
        let conn = pool.acquire().await.expect("verified TLS connection");
        assert!(uses_ssl(&conn).await, "{host}: pg_stat_ssl shows TLS");
        // The transaction tracking works above the decryption.
        let pid = conn.backend_pid();
        let real: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(pid, real);
        conn.batch_execute("BEGIN").await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
        drop(conn);
        let conn = pool.acquire().await.unwrap();
        assert_eq!(conn.backend_pid(), pid);
        assert_eq!(
            backend_state(&f.pg, pid).await,
            "idle",
            "{host}: rolled back"
        );
        drop(conn);
        assert_server_count_matches(&f.pg, &app, &pool).await;
    }
}

#[actix::test]
async fn tls_with_a_wrong_ca_is_rejected() {
    let Some(f) = tls_fixture() else { return };
    for mode in ["verify-full", "require"] {
        // With an explicit root certificate, require verifies the chain too (libpq).
        let app = PgServer::unique_app("wrongca");
        let cfg = tls_url(
            f,
            "127.0.0.1",
            &app,
            &format!("sslmode={mode}&sslrootcert={}", f.other_ca_file.display()),
        );
        let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
        let t = Instant::now();
        let err = pool.acquire().await.expect_err("untrusted certificate");
        assert!(
            t.elapsed() < secs(3),
            "{mode}: not retried until the timeout"
        );
        let source = backend_error(&err);
        assert_eq!(source.kind(), BackendErrorKind::Config, "{mode}: {source}");
        assert!(
            source.to_string().to_lowercase().contains("certificate"),
            "{mode}: {source}"
        );
        assert_eq!(pool.stats().connect_errors, 1, "{mode}: not retried");
        assert_server_count_matches(&f.pg, &app, &pool).await;
    }
}

#[actix::test]
async fn tls_require_and_prefer_encrypt_without_verifying() {
    let Some(f) = tls_fixture() else { return };
    for mode in ["require", "prefer"] {
        let app = PgServer::unique_app(mode);
        let cfg = tls_url(f, "127.0.0.1", &app, &format!("sslmode={mode}"));
        let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
        let conn = pool.acquire().await.expect("TLS without verification");
        assert!(uses_ssl(&conn).await, "{mode}");
        drop(conn);
        assert_server_count_matches(&f.pg, &app, &pool).await;
    }
    // disable: plaintext even though the server offers TLS.
    let app = PgServer::unique_app("disable");
    let cfg = tls_url(f, "127.0.0.1", &app, "sslmode=disable");
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
    let conn = pool.acquire().await.unwrap();
    assert!(!uses_ssl(&conn).await);
    drop(conn);
    assert_server_count_matches(&f.pg, &app, &pool).await;
}

#[actix::test]
async fn tls_against_a_server_without_tls() {
    let Some(pg) = PgServer::shared() else { return };
    // prefer falls back to plaintext …
    let app = PgServer::unique_app("fallback");
    let mut cfg = pg.config_for(&app);
    cfg.tls.mode = poolwarden::SslMode::Prefer;
    let (_sup, pool) = start_pool(cfg.clone(), pool_config(1)).await;
    let conn = pool.acquire().await.expect("plaintext fallback");
    assert!(!uses_ssl(&conn).await);
    drop(conn);
    assert_server_count_matches(pg, &app, &pool).await;
    // … require refuses, as a configuration error.
    cfg.tls.mode = poolwarden::SslMode::Require;
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("no TLS");
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert!(err.to_string().contains("does not support TLS"), "{err}");
}

#[actix::test]
async fn tls_client_certificate_authenticates() {
    let Some(f) = tls_fixture() else { return };
    f.pg.superuser_client()
        .await
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'certuser') \
             THEN CREATE ROLE certuser LOGIN; END IF; END $$",
        )
        .await
        .unwrap();
    let app = PgServer::unique_app("certauth");
    let url = |extra: &str| {
        ConnectionConfig::parse(&format!(
            "postgres://certuser@127.0.0.1:{}/postgres?application_name={app}\
             &sslmode=verify-full&sslrootcert={}{extra}",
            f.pg.port(),
            f.ca_file.display()
        ))
        .unwrap()
    };
    let cfg = url(&format!(
        "&sslcert={}&sslkey={}",
        f.client_cert.display(),
        f.client_key.display()
    ));
    let (_sup, pool) = start_pool(cfg, pool_config(1)).await;
    let conn = pool.acquire().await.expect("certificate authentication");
    let user: String = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "certuser");
    drop(conn);
    assert_server_count_matches(&f.pg, &app, &pool).await;

    // Without the certificate the server refuses the user: an authentication error.
    let err = PostgresBackend::new()
        .connect(&url(""))
        .await
        .expect_err("no client certificate");
    assert_eq!(err.kind(), BackendErrorKind::Auth, "{err}");
}

#[actix::test]
async fn tls_verify_full_checks_the_host_name() {
    // A server whose certificate names another host.
    let ca = TestCa::new("name check CA");
    let server = ca.server_cert(&["db.example.test"]);
    let Some(pg) = PgServer::start_with(PgOptions {
        tls: Some(PgTls {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem,
            client_ca_pem: None,
        }),
        ..PgOptions::default()
    }) else {
        return;
    };
    let ca_file = ca.ca_file();
    let mut cfg = pg.config_for(&PgServer::unique_app("name"));
    cfg.tls.ca_file = Some(ca_file);
    cfg.tls.mode = poolwarden::SslMode::VerifyFull;
    let err = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect_err("wrong name");
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // The chain is fine: prefer with the root certificate (verify-ca) accepts it.
    cfg.tls.mode = poolwarden::SslMode::Prefer;
    let conn = PostgresBackend::new()
        .connect(&cfg)
        .await
        .expect("verify-ca accepts the chain");
    let ssl: bool = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}

// ---------------------------------------------------------------------------------------
// Cost of the reset tracking (a measurement, not a check: run with --ignored --nocapture)
// ---------------------------------------------------------------------------------------

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
