//! Supervision: a panic in backend code (connect, probe, reset) restarts the pool actor
//! with a new generation; connections of the crashed incarnation are closed exactly once;
//! nobody waiting on the pool is left hanging.

use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimServer};
use poolwarden::messages::GetPoolStats;
use poolwarden::{
    ConnectionConfig, Error, Phase, PoolConfig, PoolHandle, PoolStats, SupervisorConfig,
    SupervisorHandle,
};
use tokio::time::sleep;

type Sim = SimBackend;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn quiet_pool() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        ..PoolConfig::default()
    }
}

/// A supervisor, one pool with `pool` settings on the server `name`, and that server.
async fn setup(
    name: &str,
    pool: PoolConfig,
) -> (Sim, SupervisorHandle<Sim>, PoolHandle<Sim>, SimServer) {
    let sim = Sim::new(21);
    let sup = SupervisorHandle::start(
        sim.clone(),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    let cfg = ConnectionConfig::sim(name);
    let server = sim.server(&cfg.primary_host());
    let handle = sup.pool_with(cfg, pool).await.unwrap();
    (sim, sup, handle, server)
}

/// The pool's figures as its actor answers them: the message queues behind any `Crashed`
/// report already sent, so it is answered by the restarted incarnation.
async fn settle(pool: &PoolHandle<Sim>) -> PoolStats {
    let actor = pool
        .actor()
        .expect("the pool actor is kept while the pool is open");
    actor.send(GetPoolStats).await.expect("the actor answers")
}

/// Wait until `cond` holds, letting other tasks run (1 ms of paused time per round).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        sleep(ms(1)).await;
    }
    panic!("gave up waiting until {what}");
}

/// The pool agrees with the server about how many connections are open.
fn assert_consistent(pool: &PoolHandle<Sim>, server: &SimServer) {
    let s = pool.stats();
    assert_eq!(server.open_connections(), s.live, "server vs pool: {s:?}");
    assert_eq!(s.live, s.idle + s.in_use, "{s:?}");
    assert_eq!(s.created - s.closed, s.live as u64, "{s:?}");
}

#[actix::test]
async fn a_panic_in_connect_restarts_the_pool_actor() {
    tokio::time::pause();
    let (_sim, sup, pool, server) = setup("connect", quiet_pool()).await;
    let actor = pool.actor().unwrap();
    let before = pool.stats();
    assert_eq!(
        (before.restarts, before.generation, before.panics),
        (0, 0, 0)
    );

    server.panic_on_next_connects(1);
    match pool.acquire().await {
        Err(Error::BackendPanic {
            key,
            phase,
            message,
        }) => {
            assert_eq!((key, phase), (pool.key(), Phase::Connect));
            assert!(message.contains("simulated panic in connect"), "{message}");
        }
        other => panic!("expected a backend panic, got {other:?}"),
    }

    let s = settle(&pool).await;
    assert_eq!(s.restarts, 1);
    assert_eq!(s.generation, 1);
    assert_eq!(s.panics, 1);
    assert_eq!(
        (s.in_use, s.live, s.connecting),
        (0, 0, 0),
        "nothing leaked"
    );
    assert!(!s.closed_pool);

    // The same actor (same address), restarted, still the supervisor's pool.
    assert!(pool.actor() == Some(actor.clone()));
    let looked_up = sup.lookup(pool.key()).await.unwrap();
    assert!(looked_up.actor() == Some(actor));
    let sup_stats = sup.stats().await.unwrap();
    assert_eq!((sup_stats.pools, sup_stats.pools_destroyed), (1, 0));

    // And it serves again.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(conn.query("SELECT 1").await.unwrap(), 1);
    assert_eq!(server.open_connections(), 1);
    drop(conn);
    assert_consistent(&pool, &server);
    assert_eq!(pool.stats().restarts, 1, "one panic, one restart");
}

#[actix::test]
async fn a_panic_in_the_checkout_probe_restarts_the_pool_actor() {
    tokio::time::pause();
    let (_sim, _sup, pool, server) = setup(
        "probe",
        PoolConfig {
            test_on_checkout: true,
            checkout_bypass: Duration::ZERO,
            ..quiet_pool()
        },
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    conn.query("SELECT 1").await.unwrap();
    drop(conn);
    assert_eq!((pool.stats().idle, server.open_connections()), (1, 1));
    sleep(ms(10)).await; // idle for longer than the bypass: tested on checkout

    server.panic_on_next_probes(1);
    match pool.acquire().await {
        Err(Error::BackendPanic { phase, message, .. }) => {
            assert_eq!(phase, Phase::Probe);
            assert!(message.contains("simulated panic in probe"), "{message}");
        }
        other => panic!("expected a backend panic, got {other:?}"),
    }

    let s = settle(&pool).await;
    assert_eq!((s.restarts, s.generation, s.panics), (1, 1, 1));
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 0, 0, 1), "{s:?}");
    assert_eq!(
        server.open_connections(),
        0,
        "the probed connection is closed"
    );

    let connects = server.connects();
    let mut conn = pool.acquire().await.unwrap();
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(server.connects(), connects + 1, "a fresh connection");
    drop(conn);
    assert_consistent(&pool, &server);
}

#[actix::test]
async fn a_panic_in_reset_restarts_the_pool_actor() {
    tokio::time::pause();
    let (_sim, _sup, pool, server) = setup("reset", quiet_pool()).await;
    let mut conn = pool.acquire().await.unwrap();
    conn.query("BEGIN").await.unwrap();
    assert!(conn.in_transaction());

    server.panic_on_next_resets(1);
    drop(conn); // the reset runs in a task of its own and panics
    until("the reset panicked", || pool.stats().panics == 1).await;

    let s = settle(&pool).await;
    assert_eq!((s.restarts, s.generation, s.panics), (1, 1, 1));
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 0, 0, 1), "{s:?}");
    assert_eq!(
        server.open_connections(),
        0,
        "the dirty connection is closed"
    );

    let mut conn = pool.acquire().await.unwrap();
    assert!(!conn.in_transaction(), "never handed out dirty");
    conn.query("SELECT 1").await.unwrap();
    drop(conn);
    assert_consistent(&pool, &server);
    assert_eq!(pool.stats().idle, 1, "a clean connection is kept");
}

/// A panic in a synchronous connection check (`is_broken` on every return and checkout,
/// `needs_reset` on return) is caught like any backend panic: the connection counts as
/// broken and is closed (or, for `needs_reset`, reset), its slot comes back, the actor
/// restarts, and the pool serves on with its counts matching the server.
#[actix::test]
async fn a_panic_in_a_connection_check_closes_it_and_loses_no_slot() {
    tokio::time::pause();
    let config = PoolConfig {
        max_size: 1,
        acquire_timeout: ms(500),
        ..quiet_pool()
    };
    let (_sim, _sup, pool, server) = setup("check", config).await;

    // On return.
    let conn = pool.acquire().await.unwrap();
    server.panic_on_next_checks(1);
    drop(conn);
    until("the check on return panicked", || pool.stats().panics == 1).await;
    let s = settle(&pool).await;
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 0, 0, 1), "{s:?}");
    assert_eq!(server.open_connections(), 0, "closed");

    // On checkout, of an idle connection: closed, and a fresh one serves the caller
    // (`max_size` 1: the slot came back).
    drop(pool.acquire().await.expect("the slot came back"));
    server.panic_on_next_checks(1);
    let mut conn = pool.acquire().await.expect("served by a fresh connection");
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(pool.stats().panics, 2);

    // `needs_reset` on return: the connection is reset, not handed out dirty.
    conn.query("BEGIN").await.unwrap();
    server.panic_on_next_reset_checks(1);
    drop(conn);
    until("the reset check panicked", || pool.stats().panics == 3).await;
    settle(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    assert!(!conn.in_transaction(), "never handed out dirty");
    conn.query("SELECT 1").await.unwrap();
    drop(conn);
    assert_consistent(&pool, &server);
}

#[actix::test]
async fn connections_of_a_crashed_incarnation_are_closed_once_when_returned() {
    tokio::time::pause();
    let (_sim, _sup, pool, server) = setup(
        "stale",
        PoolConfig {
            max_size: 4,
            ..quiet_pool()
        },
    )
    .await;
    let mut held1 = pool.acquire().await.unwrap();
    let held2 = pool.acquire().await.unwrap();
    let idle = pool.acquire().await.unwrap();
    let mut dirty = pool.acquire().await.unwrap();
    let old_ids = [held1.id(), held2.id(), idle.id(), dirty.id()];
    drop(idle);
    assert_eq!(server.open_connections(), 4);
    assert_consistent(&pool, &server);

    // Crash: a reset panics.
    dirty.query("BEGIN").await.unwrap();
    server.panic_on_next_resets(1);
    drop(dirty);
    until("the reset panicked", || pool.stats().panics == 1).await;
    let s = settle(&pool).await;
    assert_eq!((s.restarts, s.generation), (1, 1));
    // The dirty one was closed by the failed reset, the idle one by the restart.
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 2, 2, 2), "{s:?}");
    assert_eq!(server.open_connections(), 2);
    assert_consistent(&pool, &server);

    // Checked out before the crash: still usable by their holders...
    held1.query("SELECT 1").await.unwrap();
    // ...closed, exactly once each, when they come back.
    drop(held1);
    let s = pool.stats();
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 1, 1, 3), "{s:?}");
    assert_eq!(server.open_connections(), 1);
    drop(held2);
    let s = pool.stats();
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 0, 0, 4), "{s:?}");
    assert_eq!(server.open_connections(), 0);
    assert_consistent(&pool, &server);

    // Nothing old is reused.
    let connects = server.connects();
    let conn = pool.acquire().await.unwrap();
    assert!(!old_ids.contains(&conn.id()));
    assert_eq!(server.connects(), connects + 1);
    drop(conn);
    assert_eq!(pool.stats().idle, 1);
    assert_consistent(&pool, &server);
    let s = pool.stats();
    assert_eq!(
        (s.restarts, s.panics, s.closed),
        (1, 1, 4),
        "no second crash"
    );
}

#[actix::test]
async fn waiters_queued_at_a_crash_are_served_or_fail_but_never_hang() {
    tokio::time::pause();
    let acquire_timeout = Duration::from_secs(30);
    let (_sim, _sup, pool, server) = setup(
        "waiters",
        PoolConfig {
            max_size: 1,
            acquire_timeout,
            ..quiet_pool()
        },
    )
    .await;
    let mut holder = pool.acquire().await.unwrap();
    holder.query("BEGIN").await.unwrap();

    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                conn.query("SELECT 1")
                    .await
                    .expect("a served waiter's connection works");
                Ok::<_, Error>(())
            })
        })
        .collect();
    until("five waiters queued", || pool.stats().waiters == 5).await;

    // The returned connection's reset panics, and so does the next connect.
    server.panic_on_next_resets(1);
    server.panic_on_next_connects(1);
    drop(holder);

    // Well within the acquire timeout, so a hang cannot pass for a timeout error.
    let results = tokio::time::timeout(acquire_timeout / 6, futures::future::join_all(waiters))
        .await
        .expect("every waiter finishes");
    let mut served = 0;
    let mut panicked = 0;
    for r in results {
        match r.expect("waiter task") {
            Ok(()) => served += 1,
            Err(Error::BackendPanic {
                phase: Phase::Connect,
                ..
            }) => panicked += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((served, panicked), (4, 1));

    let s = settle(&pool).await;
    assert_eq!(s.panics, 2);
    assert!((1..=2).contains(&s.restarts), "{s:?}");
    assert_eq!(s.generation, s.restarts);
    assert_eq!((s.waiters, s.in_use, s.timeouts), (0, 0, 0), "{s:?}");
    assert_consistent(&pool, &server);
    let conn = pool.acquire().await.unwrap();
    drop(conn);
    assert_consistent(&pool, &server);
}

#[actix::test]
async fn a_panic_in_the_background_warm_up_restarts_the_pool_actor() {
    tokio::time::pause();
    let sim = Sim::new(22);
    let cfg = ConnectionConfig::sim("warm");
    let server = sim.server(&cfg.primary_host());
    server.panic_on_next_connects(1);
    let sup = SupervisorHandle::start(sim.clone(), SupervisorConfig::default()).unwrap();
    let pool = sup
        .pool_with(
            cfg,
            PoolConfig {
                min_idle: 2,
                ..PoolConfig::default()
            },
        )
        .await
        .unwrap();
    until("the warm-up panicked", || pool.stats().panics == 1).await;
    let s = settle(&pool).await;
    assert_eq!((s.restarts, s.generation), (1, 1));
    // The restarted incarnation warms up again.
    until("min_idle is reached", || pool.stats().idle == 2).await;
    assert_consistent(&pool, &server);
    assert_eq!(server.open_connections(), 2);
}
