//! The Redis backend against real throwaway servers, through the real pool: acquire, use,
//! release; reset of a transaction left open; a command future dropped mid-flight; a
//! connection killed by the server; a server restart under load; wrong passwords and
//! unreachable or silent servers. Every test ends by checking that the server sees exactly
//! the connections the pool says are open.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::load::{Load, Pace, Tally};
use common::{eventually, RedisOptions, RedisServer};
use common::{ms, secs};
use poolwarden::backends::redis::{RedisBackend, RedisConnection};
use poolwarden::{
    Backend, BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig, PoolHandle, PoolKey,
    ReadOptions, ReplicaSetConfig, Role, SupervisorConfig, SupervisorHandle,
};
use redis::AsyncCommands;
use tokio::time::Instant;

/// No warm-up, no idle timeout, no lifetime; a fast maintenance tick.
fn pool_config() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        max_size: 4,
        acquire_timeout: secs(10),
        connect_timeout: secs(2),
        probe_timeout: secs(2),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        maintenance_interval: ms(20),
        ..PoolConfig::default()
    }
}

/// `server`'s config with a client name of its own, so tests sharing a server count only
/// their own connections.
fn named(server: &RedisServer, name: &str) -> ConnectionConfig {
    let mut cfg = server.config();
    cfg.application_name = Some(name.to_string());
    cfg
}

async fn start_pool(cfg: ConnectionConfig, pool: PoolConfig) -> PoolHandle<RedisBackend> {
    let sup = SupervisorHandle::start(RedisBackend::new(), SupervisorConfig::default()).unwrap();
    sup.pool_with(cfg, pool).await.unwrap()
}

async fn client_id(conn: &mut RedisConnection) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(conn)
        .await
        .unwrap()
}

/// The server sees exactly the pool's open connections named `name` (bounded wait: closing
/// a connection reaches the server asynchronously).
async fn assert_server_matches_pool(
    server: &RedisServer,
    name: &str,
    pool: &PoolHandle<RedisBackend>,
) {
    let settled = eventually(secs(5), || async {
        let (server_side, live) = (server.client_count_named(name), pool.stats().live);
        (server_side == live).then_some(live)
    })
    .await;
    assert!(
        settled.is_some(),
        "server has {} `{name}` clients, pool has {:?}",
        server.client_count_named(name),
        pool.stats()
    );
}

/// How often `command` ran on the server (`INFO commandstats`).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server
        .command(&["INFO", "commandstats"])
        .expect("INFO")
        .text();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map(|n| n.parse().unwrap())
        .unwrap_or(0)
}

#[actix::test]
async fn acquire_query_release_reuses_one_connection_without_round_trips() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let name = "basic";
    let pings_before = calls(&server, "ping"); // the harness pings while starting
    let pool = start_pool(named(&server, name), pool_config()).await;

    let mut conn = pool.acquire().await.unwrap();
    let first = client_id(&mut conn).await;
    let () = conn.set("greeting", "hello").await.unwrap();
    let got: String = conn.get("greeting").await.unwrap();
    assert_eq!(got, "hello");
    assert!(!conn.in_transaction() && !conn.is_broken());
    assert!(
        !RedisBackend::new().needs_reset(&conn),
        "clean: no reset step"
    );
    drop(conn);

    // Returned synchronously (no reset task): idle at once.
    let s = pool.stats();
    assert_eq!((s.idle, s.in_use, s.live, s.served), (1, 0, 1, 1), "{s:?}");
    let mut again = pool.acquire().await.unwrap();
    assert_eq!(client_id(&mut again).await, first, "the same connection");
    drop(again);

    // Clean returns cost no round trip: nothing but the test's own commands and the
    // connect handshake reached the server.
    assert_eq!(calls(&server, "discard"), 0);
    assert_eq!(calls(&server, "unwatch"), 0);
    assert_eq!(calls(&server, "select"), 0);
    assert_eq!(
        calls(&server, "ping"),
        pings_before,
        "within the checkout bypass: no probe; CLIENT SETNAME, not PING, ends the connect"
    );
    assert_eq!(pool.stats().created, 1);
    assert_server_matches_pool(&server, name, &pool).await;
}

#[actix::test]
async fn a_transaction_left_open_is_discarded_before_reuse() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let name = "multi";
    let pool = start_pool(named(&server, name), pool_config()).await;

    let mut conn = pool.acquire().await.unwrap();
    let id = client_id(&mut conn).await;
    let () = redis::cmd("MULTI").query_async(&mut *conn).await.unwrap();
    let queued: String = redis::cmd("SET")
        .arg("k")
        .arg("left-behind")
        .query_async(&mut *conn)
        .await
        .unwrap();
    assert_eq!(queued, "QUEUED");
    assert!(conn.in_transaction());
    assert!(RedisBackend::new().needs_reset(&conn));
    drop(conn); // abandoned mid-transaction

    // The reset runs in a task while the slot stays taken; wait until it is back.
    let back = eventually(secs(5), || async { (pool.stats().idle == 1).then_some(()) }).await;
    assert!(back.is_some(), "{:?}", pool.stats());
    assert_eq!(calls(&server, "discard"), 1, "one DISCARD, nothing else");

    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        client_id(&mut conn).await,
        id,
        "reset and reused, not closed"
    );
    assert!(!conn.in_transaction());
    // Not in MULTI: commands run at once instead of being queued, and EXEC has nothing.
    let value: Option<String> = conn.get("k").await.unwrap();
    assert_eq!(value, None, "the queued SET was discarded");
    let exec: redis::RedisResult<redis::Value> = redis::cmd("EXEC").query_async(&mut *conn).await;
    let err = exec.unwrap_err();
    assert!(err.to_string().contains("EXEC without MULTI"), "{err}");

    // A WATCH and a SELECT left behind are undone as well.
    let () = redis::cmd("WATCH")
        .arg("k")
        .query_async(&mut *conn)
        .await
        .unwrap();
    let () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut *conn)
        .await
        .unwrap();
    assert!(conn.is_watching());
    drop(conn);
    let back = eventually(secs(5), || async { (pool.stats().idle == 1).then_some(()) }).await;
    assert!(back.is_some(), "{:?}", pool.stats());
    assert_eq!(calls(&server, "unwatch"), 1);
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(client_id(&mut conn).await, id);
    let () = conn.set("db-check", 1).await.unwrap();
    drop(conn);
    let in_db0 = server.command(&["EXISTS", "db-check"]).unwrap();
    assert_eq!(in_db0.text(), "1", "SELECT 0 was restored before reuse");

    assert_eq!(pool.stats().closed, 0);
    assert_server_matches_pool(&server, name, &pool).await;
}

#[actix::test]
async fn a_command_dropped_mid_flight_is_never_reused() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let name = "dropped";
    let pool = start_pool(named(server, name), pool_config()).await;

    let mut conn = pool.acquire().await.unwrap();
    let id = client_id(&mut conn).await;
    // BLPOP blocks on the server for 5 s; our side gives up after 50 ms.
    let abandoned = tokio::time::timeout(
        ms(50),
        conn.blpop::<_, Option<(String, String)>>("never-pushed", 5.0),
    )
    .await;
    assert!(abandoned.is_err(), "BLPOP should still be blocked");
    assert!(conn.is_broken(), "a dropped command marks the connection");
    assert!(RedisBackend::new().is_broken(&mut conn));
    drop(conn);

    let s = pool.stats();
    assert_eq!(
        (s.live, s.idle, s.closed),
        (0, 0, 1),
        "closed on release: {s:?}"
    );

    let mut conn = pool.acquire().await.unwrap();
    let fresh = client_id(&mut conn).await;
    assert_ne!(fresh, id, "a new connection, not the blocked one");
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
    drop(conn);

    // The blocked client is gone from the server (not left waiting for its BLPOP).
    let gone = eventually(secs(5), || async {
        let ids = server.client_list();
        (!ids.iter().any(|l| l.starts_with(&format!("id={id} ")))).then_some(())
    })
    .await;
    assert!(gone.is_some(), "client {id} still connected");
    assert_server_matches_pool(server, name, &pool).await;
}

#[actix::test]
async fn a_killed_idle_connection_is_detected_without_a_probe() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let name = "killed-idle";
    // No test on checkout: only `is_broken` can keep the dead connection from being handed out.
    let config = PoolConfig {
        test_on_checkout: false,
        ..pool_config()
    };
    let pool = start_pool(named(server, name), config).await;

    let mut conn = pool.acquire().await.unwrap();
    let id = client_id(&mut conn).await;
    drop(conn);
    assert_eq!(pool.stats().idle, 1);

    let killed = server
        .command(&["CLIENT", "KILL", "ID", &id.to_string()])
        .unwrap();
    assert_eq!(killed.text(), "1");

    // The connection's driver task sees the socket close; maintenance then closes it.
    let detected = eventually(secs(5), || async {
        let s = pool.stats();
        (s.closed == 1 && s.live == 0).then_some(())
    })
    .await;
    assert!(detected.is_some(), "{:?}", pool.stats());

    let mut conn = pool.acquire().await.unwrap();
    assert_ne!(client_id(&mut conn).await, id);
    drop(conn);
    assert_server_matches_pool(server, name, &pool).await;
}

#[actix::test]
async fn a_connection_killed_while_checked_out_is_closed_on_release() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let name = "killed-busy";
    let pool = start_pool(named(server, name), pool_config()).await;

    let mut conn = pool.acquire().await.unwrap();
    let id = client_id(&mut conn).await;
    server
        .command(&["CLIENT", "KILL", "ID", &id.to_string()])
        .unwrap();
    let err = redis::cmd("PING")
        .query_async::<String>(&mut *conn)
        .await
        .unwrap_err();
    assert!(err.is_io_error() || err.is_connection_dropped(), "{err:?}");
    assert!(conn.is_broken());
    drop(conn);
    let s = pool.stats();
    assert_eq!((s.live, s.closed), (0, 1), "{s:?}");

    let mut conn = pool.acquire().await.unwrap();
    assert_ne!(client_id(&mut conn).await, id);
    drop(conn);
    assert_server_matches_pool(server, name, &pool).await;
}

#[actix::test]
async fn a_server_restart_under_load_is_survived_with_bounded_errors() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let server = Arc::new(server);
    let name = "restart";
    let max_size = 4;
    let pool = start_pool(
        named(&server, name),
        PoolConfig {
            max_size,
            backoff_initial: ms(10),
            backoff_max: ms(100),
            ..pool_config()
        },
    )
    .await;

    const WORKERS: usize = 8;
    let deadline = Instant::now() + secs(30);
    // While the server is down the endpoint's breaker opens and acquires fail at once;
    // workers come back when it says.
    let load = Load::start(
        &pool,
        WORKERS,
        Pace::retry_in(ms(5)),
        |w, mut conn| async move {
            conn.incr::<_, _, i64>(format!("counter:{w}"), 1)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
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
        load.across_restart(100, restart, 20, within).await
    };
    // Only the connections open at the restart can fail a command: each at most once,
    // since a failed command breaks its connection.
    let total_command_errors = Tally::of(&ops).op_errors;
    assert!(
        total_command_errors <= max_size as usize,
        "{total_command_errors} command errors"
    );
    let s = pool.stats();
    eprintln!("{total_command_errors} errors across the restart; {s:?}");
    assert!(
        s.created > created_before,
        "the connections of the old server were replaced: {s:?}"
    );
    assert_eq!((s.in_use, s.waiters), (0, 0), "{s:?}");
    assert!(s.live <= max_size as usize);
    assert_server_matches_pool(&server, name, &pool).await;
}

#[actix::test]
async fn a_wrong_password_is_a_clear_auth_error_not_a_timeout() {
    let Some(server) = RedisServer::start_with(RedisOptions {
        password: Some("right-horse".into()),
        ..RedisOptions::default()
    }) else {
        return;
    };
    let sup = SupervisorHandle::start(RedisBackend::new(), SupervisorConfig::default()).unwrap();

    for password in [Some("wrong-battery"), None] {
        let mut cfg = named(&server, "auth");
        cfg.password = password.map(poolwarden::Secret::new);
        // Another database for each case, so each is a pool of its own.
        cfg.database = Some(if password.is_some() { "1" } else { "0" }.into());
        let pool = sup.pool_with(cfg, pool_config()).await.unwrap();
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
                assert!(!source.is_retryable());
            }
            other => panic!("expected an auth error, got {other:?}"),
        }
        let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
        assert!(!shown.contains("wrong-battery"), "{shown}");
        assert_eq!(pool.stats().connect_errors, 1, "not retried");
        assert_eq!(pool.stats().live, 0);
    }

    // The right password works.
    let pool = sup
        .pool_with(named(&server, "auth-ok"), pool_config())
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let () = conn.set("k", 1).await.unwrap();
    drop(conn);
    // No half-open connection left by the failed handshakes: this server's only client
    // is the pool's.
    let settled = eventually(secs(5), || async {
        (server.client_count() == pool.stats().live).then_some(())
    })
    .await;
    assert!(settled.is_some(), "{:?}", server.client_list());
    assert_eq!(pool.stats().live, 1);
}

#[actix::test]
async fn an_unreachable_port_fails_each_attempt_fast_and_the_acquire_in_time() {
    let port = common::free_port(); // nothing listens here
    let cfg = ConnectionConfig::new("redis", "127.0.0.1", port);

    let t = Instant::now();
    let err = RedisBackend::new().connect(&cfg).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Connect, "{err}");
    assert!(err.is_retryable());
    assert!(t.elapsed() < secs(1), "refused at once");

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
    // Accepts TCP connections (the kernel does) but never answers a byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = ConnectionConfig::new("redis", "127.0.0.1", port);
    let pool = start_pool(
        cfg,
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

// ---------------------------------------------------------------------------------------
// Replication: roles from ROLE, read-your-writes by offset, failover
// ---------------------------------------------------------------------------------------

/// A primary and a replica (`--replicaof`) with the replica's link up.
fn replicated_pair() -> Option<(RedisServer, RedisServer)> {
    let primary = RedisServer::start()?;
    let replica = RedisServer::start_with(RedisOptions {
        args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port().to_string(),
        ],
        ..RedisOptions::default()
    })?;
    Some((primary, replica))
}

/// `ROLE` as the admin connection sees it, its top-level fields as text
/// (a replica: `slave host port state offset`).
fn role_of(server: &RedisServer) -> String {
    match server.command(&["ROLE"]).expect("ROLE") {
        common::redis_server::Resp::Array(Some(items)) => {
            items.iter().map(|r| r.text()).collect::<Vec<_>>().join(" ")
        }
        other => format!("{other:?}"),
    }
}

#[actix::test]
async fn a_redis_replica_set_routes_by_role_reads_its_writes_and_follows_a_promotion() {
    let Some((primary, replica)) = replicated_pair() else {
        return;
    };
    let linked = eventually(secs(10), || async {
        role_of(&replica).contains(" connected ").then_some(())
    })
    .await;
    assert!(
        linked.is_some(),
        "replica never linked: {}",
        role_of(&replica)
    );

    // The backend reads roles and offsets off ROLE.
    let backend = RedisBackend::new();
    let mut p = backend.connect(&primary.config()).await.unwrap();
    let mut r = backend.connect(&replica.config()).await.unwrap();
    let ps = backend.status(&mut p).await.unwrap().unwrap();
    let rs = backend.status(&mut r).await.unwrap().unwrap();
    assert_eq!((ps.role, rs.role), (Role::Primary, Role::Replica));
    assert!(
        ps.position.is_some() && rs.position.is_some(),
        "{ps:?} {rs:?}"
    );
    drop((p, r));

    let name = "repl-set";
    let mut config =
        ReplicaSetConfig::new(name, named(&primary, name), vec![named(&replica, name)]);
    config.topology_interval = ms(100);
    config.pool = Some(pool_config());
    let sup = SupervisorHandle::start(RedisBackend::new(), SupervisorConfig::default()).unwrap();
    let set = sup.replica_set(config).await.unwrap();
    let replica_key = PoolKey::of(&named(&replica, name));

    // Read-your-writes: the token is the primary's offset after the write; a read with it
    // lands only where that offset has been processed, and sees the value.
    for i in 0..20 {
        let mut w = set.write().await.unwrap();
        let () = w.set(format!("ryw:{i}"), i).await.unwrap();
        let token = set
            .release_write(w)
            .await
            .unwrap()
            .expect("Redis gives a token");
        let mut read = set
            .read_with(ReadOptions {
                after: Some(token),
                ..ReadOptions::default()
            })
            .await
            .unwrap();
        let seen: Option<i64> = read.get(format!("ryw:{i}")).await.unwrap();
        assert_eq!(seen, Some(i), "read-your-writes, key {i}");
    }
    // Plain reads go to the replica.
    let read = set.read().await.unwrap();
    assert_eq!(read.key(), replica_key);
    drop(read);

    // Failover: the primary dies, the replica is promoted; writes follow within 2 s.
    primary.stop();
    replica.command(&["REPLICAOF", "NO", "ONE"]).unwrap();
    let promoted_at = Instant::now();
    // Until a topology probe sees the change, a write may still reach the dead primary
    // and fail; the caller retries, as an application would.
    let mut failed_writes = 0;
    loop {
        assert!(promoted_at.elapsed() < secs(5), "writes never moved");
        let Ok(mut w) = set.write().await else {
            failed_writes += 1;
            continue;
        };
        match w.set::<_, _, ()>("after-failover", 1).await {
            Ok(()) => {
                assert_eq!(
                    w.key(),
                    replica_key,
                    "the write landed on the promoted replica"
                );
                break;
            }
            Err(_) => failed_writes += 1,
        }
    }
    eprintln!("{failed_writes} failed writes during the failover");
    let took = promoted_at.elapsed();
    assert!(took < secs(2), "writes moved in {took:?}");
    let roles: Vec<(PoolKey, Role)> = set.topology().iter().map(|m| (m.key, m.role)).collect();
    assert!(roles.contains(&(replica_key, Role::Primary)), "{roles:?}");

    // Nothing leaked on the surviving server: its clients are the member pool's.
    let matched = eventually(secs(5), || async {
        let live = set.member(replica_key).map(|s| s.live);
        (live == Some(replica.client_count_named(name))).then_some(())
    })
    .await;
    assert!(
        matched.is_some(),
        "server has {} clients, pool {:?}",
        replica.client_count_named(name),
        set.member(replica_key)
    );
    sup.shutdown(secs(5)).await.unwrap();
    let gone = eventually(secs(5), || async {
        (replica.client_count_named(name) == 0).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "{} clients left",
        replica.client_count_named(name)
    );
}
