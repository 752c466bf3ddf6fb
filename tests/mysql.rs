//! The MySQL / MariaDB backend against real throwaway MariaDB servers, through the real pool:
//! acquire, query, release; rollback of an abandoned transaction; connections killed by the
//! server; a server restart under load; wrong passwords and unreachable or silent servers.
//! Each test connects as a user of its own and ends by checking that the server's process
//! list holds exactly the connections the pool says are open.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::load::{Load, Pace, Tally};
use common::{eventually, MariaServer};
use common::{ms, secs};
use mysql_async::prelude::Queryable;
use poolwarden::backends::mysql::{MysqlBackend, MysqlConnection};
use poolwarden::{
    Backend, BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig, PoolHandle, Secret,
    SupervisorConfig, SupervisorHandle,
};
use tokio::time::Instant;

/// No warm-up, no idle timeout, no lifetime; a fast maintenance tick.
fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        acquire_timeout: secs(10),
        connect_timeout: secs(3),
        probe_timeout: secs(2),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        maintenance_interval: ms(20),
        ..PoolConfig::default()
    }
}

/// A config for a new user of `server`, so each test counts only its own connections.
fn new_user(server: &MariaServer, prefix: &str) -> (ConnectionConfig, String) {
    let user = MariaServer::unique_user(prefix);
    let password = format!("pw-{user}");
    server.create_user(&user, &password);
    let mut cfg = server.config();
    cfg.user = Some(user.clone());
    cfg.password = Some(Secret::new(password));
    (cfg, user)
}

async fn start_pool(cfg: ConnectionConfig, pool: PoolConfig) -> PoolHandle<MysqlBackend> {
    let sup = SupervisorHandle::start(MysqlBackend::new(), SupervisorConfig::default()).unwrap();
    sup.pool_with(cfg, pool).await.unwrap()
}

async fn connection_id(conn: &mut MysqlConnection) -> u32 {
    let id: u32 = conn
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, conn.id());
    id
}

/// `ROLLBACK`s run on this connection so far.
async fn rollbacks(conn: &mut MysqlConnection) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Com_rollback'")
        .await
        .unwrap();
    row.unwrap().1
}

/// The server's process list holds exactly the pool's open connections (bounded wait:
/// closing reaches the server asynchronously).
async fn assert_server_matches_pool(
    server: &MariaServer,
    user: &str,
    pool: &PoolHandle<MysqlBackend>,
) {
    let settled = eventually(secs(10), || async {
        (server.processlist_count(user) == pool.stats().live).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "server has {} connections of {user}, pool has {:?}",
        server.processlist_count(user),
        pool.stats()
    );
}

async fn returned(pool: &PoolHandle<MysqlBackend>, idle: usize) {
    let back = eventually(secs(5), || async {
        let s = pool.stats();
        (s.idle == idle && s.in_use == 0).then_some(())
    })
    .await;
    assert!(back.is_some(), "{:?}", pool.stats());
}

#[actix::test]
async fn acquire_query_release_reuses_one_connection_and_resets_only_after_use() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (cfg, user) = new_user(server, "basic");
    let pool = start_pool(cfg, pool_config()).await;
    let backend = MysqlBackend::new();

    let mut conn = pool.acquire().await.unwrap();
    let id = connection_id(&mut conn).await;
    let two: Option<i64> = conn.query_first("SELECT 1 + 1").await.unwrap();
    assert_eq!(two, Some(2));
    assert_eq!(conn.in_transaction(), Some(false));
    assert!(conn.was_used() && backend.needs_reset(&conn));
    drop(conn); // one ROLLBACK, in the background

    returned(&pool, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(connection_id(&mut conn).await, id, "the same connection");
    assert_eq!(rollbacks(&mut conn).await, 1, "one ROLLBACK per use");
    drop(conn);
    returned(&pool, 1).await;

    // Acquired and released without being used: no reset, returned synchronously.
    let conn = pool.acquire().await.unwrap();
    assert_eq!(conn.id(), id);
    assert!(!conn.was_used() && !backend.needs_reset(&conn));
    drop(conn);
    let s = pool.stats();
    assert_eq!((s.idle, s.in_use, s.live), (1, 0, 1), "back at once: {s:?}");

    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        rollbacks(&mut conn).await,
        2,
        "the unused checkout cost nothing"
    );
    drop(conn);
    returned(&pool, 1).await;
    let s = pool.stats();
    assert_eq!((s.created, s.closed, s.served), (1, 0, 4), "{s:?}");
    assert_server_matches_pool(server, &user, &pool).await;
}

#[actix::test]
async fn an_abandoned_transaction_is_rolled_back_before_reuse() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (cfg, user) = new_user(server, "rollback");
    let table = format!("pw_test.t_{user}");
    let pool = start_pool(cfg, pool_config()).await;

    let mut conn = pool.acquire().await.unwrap();
    let id = connection_id(&mut conn).await;
    conn.query_drop(format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    conn.query_drop("BEGIN").await.unwrap();
    conn.query_drop(format!("INSERT INTO {table} VALUES (1)"))
        .await
        .unwrap();
    assert_eq!(conn.in_transaction(), Some(true));
    assert!(MysqlBackend::new().needs_reset(&conn));
    drop(conn); // abandoned with the transaction open

    returned(&pool, 1).await;
    let seen = server
        .sql(&format!("SELECT COUNT(*) FROM {table}"))
        .unwrap();
    assert_eq!(seen.trim(), "0", "the uncommitted row is not visible");

    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(connection_id(&mut conn).await, id, "rolled back and reused");
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_tx, Some(0), "the next borrower is not in a transaction");
    // Had the transaction stayed open, its own row would be visible to it.
    let own: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap();
    assert_eq!(own, Some(0), "the row was rolled back");
    assert_eq!(rollbacks(&mut conn).await, 1, "exactly one ROLLBACK");

    // A statement the server refused leaves the connection usable: rolled back, reused.
    assert!(conn.query_drop("SELEC 1").await.is_err());
    assert_eq!(conn.in_transaction(), None);
    drop(conn);
    returned(&pool, 1).await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(connection_id(&mut conn).await, id);
    assert_eq!(rollbacks(&mut conn).await, 2);

    // Autocommitted work is kept, of course.
    conn.query_drop(format!("INSERT INTO {table} VALUES (2)"))
        .await
        .unwrap();
    drop(conn);
    let seen = server
        .sql(&format!("SELECT COUNT(*) FROM {table}"))
        .unwrap();
    assert_eq!(seen.trim(), "1");
    assert_eq!(pool.stats().closed, 0);
    assert_server_matches_pool(server, &user, &pool).await;
}

#[actix::test]
async fn a_killed_idle_connection_is_replaced_not_handed_out() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (cfg, user) = new_user(server, "killidle");
    // Test every checkout, however recent: mysql_async cannot tell synchronously that the
    // server closed a connection, the ping on checkout does.
    let pool = start_pool(
        cfg,
        PoolConfig {
            checkout_bypass: Duration::ZERO,
            ..pool_config()
        },
    )
    .await;

    let mut conn = pool.acquire().await.unwrap();
    let id = connection_id(&mut conn).await;
    drop(conn);
    server.sql(&format!("KILL {id}")).unwrap();
    let gone = eventually(secs(5), || async {
        (server.processlist_count(&user) == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "KILL {id} did not take");

    let mut conn = pool.acquire().await.unwrap();
    let fresh = connection_id(&mut conn).await;
    assert_ne!(fresh, id, "the killed connection was not handed out");
    drop(conn);
    let s = pool.stats();
    assert_eq!((s.created, s.closed, s.live), (2, 1, 1), "{s:?}");
    assert_server_matches_pool(server, &user, &pool).await;
}

#[actix::test]
async fn a_connection_killed_while_checked_out_is_closed_on_return() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (cfg, user) = new_user(server, "killbusy");
    let pool = start_pool(cfg, pool_config()).await;

    let mut conn = pool.acquire().await.unwrap();
    let id = connection_id(&mut conn).await;
    server.sql(&format!("KILL {id}")).unwrap();
    assert!(conn.query_drop("SELECT 1").await.is_err());
    assert!(
        MysqlBackend::new().needs_reset(&conn),
        "used: ROLLBACK on return"
    );
    drop(conn);

    // The ROLLBACK on return fails: the connection is closed, never idle.
    let closed = eventually(secs(5), || async {
        let s = pool.stats();
        (s.closed == 1 && s.live == 0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "{:?}", pool.stats());
    assert_eq!(pool.stats().idle, 0);

    let mut conn = pool.acquire().await.unwrap();
    assert_ne!(connection_id(&mut conn).await, id);
    drop(conn);
    assert_server_matches_pool(server, &user, &pool).await;
}

#[actix::test]
async fn a_server_restart_under_load_is_survived_with_bounded_errors() {
    let Some(server) = MariaServer::start() else {
        return;
    };
    let server = Arc::new(server);
    let (cfg, user) = new_user(&server, "restart");
    let max_size = 4;
    let pool = start_pool(
        cfg,
        PoolConfig {
            max_size,
            acquire_timeout: secs(30),
            backoff_initial: ms(10),
            backoff_max: ms(200),
            ..pool_config()
        },
    )
    .await;

    const WORKERS: usize = 8;
    let deadline = Instant::now() + secs(60);
    // While the server is down the endpoint's breaker opens and acquires fail at once;
    // workers come back when it says.
    let load = Load::start(
        &pool,
        WORKERS,
        Pace::retry_in(ms(5)),
        |_, mut conn| async move {
            match conn.query_first::<i64, _>("SELECT 1").await {
                Ok(Some(1)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );

    // Restart once the load is running; the pool's count of opened connections just
    // before it tells whether the old server's connections were replaced.
    let (ops, created_before) = {
        let (server, pool) = (server.clone(), pool.clone());
        let restart = move || {
            let created = pool.stats().created;
            server.restart();
            created
        };
        let within = deadline.saturating_duration_since(Instant::now());
        load.across_restart(50, restart, 10, within).await
    };
    let t = Tally::of(&ops);
    let total_query_errors = t.op_errors;
    // A used connection is rolled back on return, which fails on a dead connection: it is
    // closed. So each connection alive during the shutdown fails at most one statement;
    // fresh connections opened while the server shut down may add as many.
    assert!(
        total_query_errors <= 2 * max_size as usize,
        "{total_query_errors} query errors, e.g. {:?}",
        t.first_op_error
    );
    let s = pool.stats();
    eprintln!("{total_query_errors} errors across the restart; {s:?}");
    assert!(
        s.created > created_before,
        "the connections of the old server were replaced: {s:?}"
    );
    assert_eq!((s.in_use, s.waiters), (0, 0), "{s:?}");
    returned(&pool, s.live).await;
    assert_server_matches_pool(&server, &user, &pool).await;
}

#[actix::test]
async fn a_wrong_password_is_a_clear_auth_error_not_a_timeout() {
    let Some(server) = MariaServer::shared() else {
        return;
    };
    let (mut cfg, user) = new_user(server, "auth");
    cfg.password = Some(Secret::new("wrong-battery-staple"));
    let pool = start_pool(cfg, pool_config()).await;

    let t = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert!(
        t.elapsed() < secs(2),
        "failed fast, not after the acquire timeout"
    );
    match &err {
        Error::Backend {
            phase: Phase::Connect,
            source,
            ..
        } => {
            assert_eq!(source.kind(), BackendErrorKind::Auth, "{source}");
            assert!(source.to_string().contains("Access denied"), "{source}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(!shown.contains("wrong-battery-staple"), "{shown}");
    let s = pool.stats();
    assert_eq!((s.connect_errors, s.live), (1, 0), "not retried: {s:?}");

    // An unknown database is a configuration error, not retried either.
    let (mut cfg, _) = new_user(server, "nodb");
    cfg.database = Some("no_such_database".into());
    let err = MysqlBackend::new().connect(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Config, "{err}");
    assert_server_matches_pool(server, &user, &pool).await;
}

#[actix::test]
async fn an_unreachable_port_fails_each_attempt_fast_and_the_acquire_in_time() {
    let port = common::free_port(); // nothing listens here
    let mut cfg = ConnectionConfig::new("mysql", "127.0.0.1", port);
    cfg.user = Some("app".into());
    cfg.password = Some(Secret::new("hunter2"));

    let t = Instant::now();
    let err = MysqlBackend::new().connect(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Connect, "{err}");
    assert!(t.elapsed() < secs(1), "refused at once");
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let pool = start_pool(
        cfg,
        PoolConfig {
            acquire_timeout: ms(600),
            connect_timeout: ms(200),
            // About the connect timeout, not the breaker: never trip it.
            breaker: common::unbreakable(),
            ..pool_config()
        },
    )
    .await;
    common::assert_connect_timeout(&pool, BackendErrorKind::Connect, ms(600), ms(1500)).await;
}

#[actix::test]
async fn a_silent_server_is_bounded_by_the_connect_timeout() {
    // Accepts TCP connections (the kernel does) but never sends the greeting.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pool = start_pool(
        ConnectionConfig::new("mysql", "127.0.0.1", port),
        PoolConfig {
            acquire_timeout: secs(1),
            connect_timeout: ms(300),
            ..pool_config()
        },
    )
    .await;
    common::assert_connect_timeout(&pool, BackendErrorKind::Timeout, secs(1), secs(2)).await;
    drop(listener);
}
