//! The supervisor: pools by key and by name, `max_pools` eviction, idle-pool reaping,
//! figures, health checks, shutdown, the `Acquire` message, the system service and config
//! validation.

use std::time::Duration;

use actix::SystemService;
use poolwarden::backends::sim::{SimBackend, SimBehavior, SimServer};
use poolwarden::messages::{Acquire, GetPool, Lookup};
use poolwarden::{
    BreakerConfig, ConnectionConfig, Error, HealthStatus, Phase, PoolConfig, PoolHandle, PoolKey,
    PoolStats, ShutdownReport, Supervisor, SupervisorConfig, SupervisorHandle,
};
use tokio::time::{sleep, Instant};

type Sim = SimBackend;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A pool config that opens nothing in the background, so figures depend on the test only.
fn quiet_pool() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        // Health and lifecycle, not the breaker (tests/breaker.rs): never trip it.
        breaker: BreakerConfig {
            failure_threshold: u32::MAX,
            ..BreakerConfig::default()
        },
        ..PoolConfig::default()
    }
}

/// A supervisor config with quiet pools and no background reaping.
fn quiet() -> SupervisorConfig {
    SupervisorConfig {
        default_pool: quiet_pool(),
        pool_idle_timeout: None,
        ..SupervisorConfig::default()
    }
}

fn start(sim: &Sim, config: SupervisorConfig) -> SupervisorHandle<Sim> {
    SupervisorHandle::start(sim.clone(), config).expect("valid config")
}

fn server(sim: &Sim, cfg: &ConnectionConfig) -> SimServer {
    sim.server(&cfg.primary_host())
}

/// Check out one connection and return it: the pool then has one idle connection and its
/// last use is now.
async fn touch(pool: &PoolHandle<Sim>) {
    let mut conn = pool.acquire().await.expect("acquire");
    conn.query("SELECT 1").await.expect("query");
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

fn sorted(mut keys: Vec<PoolKey>) -> Vec<PoolKey> {
    keys.sort();
    keys
}

#[actix::test]
async fn same_config_same_pool_and_the_password_is_not_part_of_the_key() {
    let sim = Sim::new(1);
    let sup = start(&sim, quiet());
    let one = ConnectionConfig::parse("sim://app:one@db/orders").unwrap();
    let two = ConnectionConfig::parse("sim://app:two@db/orders").unwrap();
    let users = ConnectionConfig::parse("sim://app:one@db/users").unwrap();

    let a = sup.pool(one.clone()).await.unwrap();
    let b = sup.pool(one.clone()).await.unwrap();
    let c = sup.pool(two.clone()).await.unwrap();
    let d = sup.pool(users.clone()).await.unwrap();

    assert_eq!(a.key(), PoolKey::of(&one));
    assert_eq!(a.key(), b.key());
    assert_eq!(a.key(), c.key(), "a different password is the same key");
    assert_ne!(a.key(), d.key());

    let actor = a.actor().expect("running");
    assert!(b.actor() == Some(actor.clone()), "same config, same actor");
    assert!(
        c.actor() == Some(actor.clone()),
        "other password, same actor"
    );
    assert!(d.actor() != Some(actor), "other database, other actor");

    // One pool state behind the handles.
    let conn = c.acquire().await.unwrap();
    assert_eq!(a.stats().in_use, 1);
    assert_eq!(d.stats().in_use, 0);
    drop(conn);

    let stats = sup.stats().await.unwrap();
    assert_eq!((stats.pools, stats.pools_created), (2, 2));
}

#[actix::test]
async fn a_named_pool_resolves_to_the_same_pool_by_name_key_and_config() {
    let sim = Sim::new(2);
    let sup = start(&sim, quiet());
    let cfg = ConnectionConfig::sim("orders-db");

    let registered = sup.register("orders", cfg.clone(), None).await.unwrap();
    let actor = registered.actor().expect("running");
    let by_name = sup.lookup("orders").await.unwrap();
    let by_key = sup.lookup(registered.key()).await.unwrap();
    let by_config = sup.lookup(cfg.clone()).await.unwrap();
    let by_pool = sup.pool(cfg.clone()).await.unwrap();
    for h in [&by_name, &by_key, &by_config, &by_pool] {
        assert_eq!(h.key(), PoolKey::of(&cfg));
        assert!(h.actor() == Some(actor.clone()));
    }
    let conn = by_name.acquire().await.unwrap();
    assert_eq!(by_key.stats().in_use, 1);
    drop(conn);
    assert_eq!(sup.stats().await.unwrap().pools_created, 1);

    match sup.lookup("nope").await {
        Err(Error::UnknownPool { name }) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownPool, got {other:?}"),
    }
    let stranger = PoolKey::of(&ConnectionConfig::sim("elsewhere"));
    match sup.lookup(stranger).await {
        Err(Error::UnknownKey { key }) => assert_eq!(key, stranger),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
}

#[actix::test]
async fn an_evicted_named_pool_is_recreated_on_lookup() {
    let sim = Sim::new(3);
    let sup = start(
        &sim,
        SupervisorConfig {
            max_pools: 1,
            ..quiet()
        },
    );
    let orders = ConnectionConfig::sim("orders-db");
    let other = ConnectionConfig::sim("other-db");
    let own = PoolConfig {
        max_size: 3,
        ..quiet_pool()
    };

    let old = sup
        .register("orders", orders.clone(), Some(own.clone()))
        .await
        .unwrap();
    touch(&old).await;
    assert_eq!(server(&sim, &orders).open_connections(), 1);

    // Another pool at the cap evicts it.
    let o = sup.pool(other.clone()).await.unwrap();
    assert!(old.is_closed());
    assert!(matches!(old.acquire().await, Err(Error::PoolClosed { key }) if key == old.key()));
    assert_eq!(server(&sim, &orders).open_connections(), 0);
    assert!(matches!(
        sup.lookup(old.key()).await,
        Err(Error::UnknownKey { .. })
    ));

    // The name brings it back, with its registered settings (evicting the other one).
    let new = sup.lookup("orders").await.unwrap();
    assert_eq!(new.key(), old.key());
    assert!(!new.is_closed());
    assert_eq!(new.stats().max_size, 3, "registered pool config reused");
    assert_eq!(new.stats().served, 0, "a new pool, not the old one");
    touch(&new).await;
    assert_eq!(server(&sim, &orders).open_connections(), 1);
    assert!(o.is_closed());
    assert!(old.is_closed(), "the old handle stays closed");

    let stats = sup.stats().await.unwrap();
    assert_eq!(stats.pools, 1);
    assert_eq!(stats.pools_created, 3);
    assert_eq!(stats.pools_evicted, 2);
    assert_eq!(stats.pools_destroyed, 2);
}

#[actix::test]
async fn at_max_pools_the_least_recently_used_idle_pool_is_evicted() {
    tokio::time::pause();
    let sim = Sim::new(4);
    let sup = start(
        &sim,
        SupervisorConfig {
            max_pools: 2,
            ..quiet()
        },
    );
    let (ca, cb, cc) = (
        ConnectionConfig::sim("a"),
        ConnectionConfig::sim("b"),
        ConnectionConfig::sim("c"),
    );
    let a = sup.pool(ca.clone()).await.unwrap();
    touch(&a).await;
    sleep(ms(10)).await;
    let b = sup.pool(cb.clone()).await.unwrap();
    touch(&b).await;
    sleep(ms(10)).await;
    touch(&a).await; // `a` is older but was used last: `b` is the least recently used.
    sleep(ms(10)).await;
    assert_eq!(server(&sim, &cb).open_connections(), 1);

    let c = sup.pool(cc.clone()).await.unwrap();
    assert!(b.is_closed(), "b was least recently used");
    assert!(!a.is_closed());
    assert!(matches!(b.acquire().await, Err(Error::PoolClosed { key }) if key == b.key()));
    assert_eq!(server(&sim, &cb).open_connections(), 0, "b drained");
    assert_eq!(server(&sim, &ca).open_connections(), 1, "a untouched");
    touch(&a).await;
    touch(&c).await;

    let stats = sup.stats().await.unwrap();
    assert_eq!(stats.pools, 2);
    assert_eq!(stats.pools_created, 3);
    assert_eq!(stats.pools_evicted, 1);
    assert_eq!(stats.pools_destroyed, 1);
    let keys: Vec<_> = stats.per_pool.iter().map(|p| p.key).collect();
    assert_eq!(keys, sorted(vec![a.key(), c.key()]));

    // The evicted pool's actor stops: nothing restarts it.
    until("b's actor is gone", || b.actor().is_none()).await;
}

#[actix::test]
async fn pools_with_connections_checked_out_are_never_evicted() {
    tokio::time::pause();
    let sim = Sim::new(5);
    let sup = start(
        &sim,
        SupervisorConfig {
            max_pools: 2,
            ..quiet()
        },
    );
    let [ca, cb, cc, cd] = ["a", "b", "c", "d"].map(ConnectionConfig::sim);
    let a = sup.pool(ca.clone()).await.unwrap();
    let held_a = a.acquire().await.unwrap(); // a: least recently used, but busy
    sleep(ms(10)).await;
    let b = sup.pool(cb.clone()).await.unwrap();
    touch(&b).await;
    sleep(ms(10)).await;

    let c = sup.pool(cc.clone()).await.unwrap();
    assert!(!a.is_closed(), "a is busy");
    assert!(b.is_closed(), "b was the only idle pool");
    let held_c = c.acquire().await.unwrap();

    // Every pool busy: no room.
    match sup.pool(cd.clone()).await {
        Err(Error::TooManyPools { max_pools }) => assert_eq!(max_pools, 2),
        other => panic!("expected TooManyPools, got {other:?}"),
    }
    assert!(matches!(
        sup.addr().send(Acquire::new(cd.clone())).await.unwrap(),
        Err(Error::TooManyPools { .. })
    ));
    let stats = sup.stats().await.unwrap();
    assert_eq!(
        (stats.pools, stats.pools_created, stats.pools_evicted),
        (2, 3, 1)
    );
    assert_eq!(server(&sim, &ca).open_connections(), 1);
    assert_eq!(server(&sim, &cc).open_connections(), 1);

    // Once a's connection is back, a (the least recently used) can go.
    drop(held_a);
    let d = sup.pool(cd.clone()).await.unwrap();
    assert!(a.is_closed());
    assert!(!c.is_closed());
    assert_eq!(server(&sim, &ca).open_connections(), 0);
    touch(&d).await;
    drop(held_c);
    assert_eq!(sup.stats().await.unwrap().pools_evicted, 2);
}

#[actix::test]
async fn idle_pools_are_reaped_by_the_background_tick() {
    tokio::time::pause();
    let sim = Sim::new(6);
    let sup = start(
        &sim,
        SupervisorConfig {
            pool_idle_timeout: Some(Duration::from_secs(60)),
            reap_interval: Duration::from_secs(10),
            ..quiet()
        },
    );
    let (ca, cb) = (ConnectionConfig::sim("a"), ConnectionConfig::sim("b"));
    let t0 = Instant::now();
    let a = sup.pool(ca.clone()).await.unwrap();
    touch(&a).await;

    sleep(Duration::from_secs(30)).await;
    let b = sup.pool(cb.clone()).await.unwrap();
    touch(&b).await;

    sleep_until_after(t0, 55).await;
    assert!(!a.is_closed(), "unused for 55s only");
    assert_eq!(server(&sim, &ca).open_connections(), 1);

    sleep_until_after(t0, 75).await;
    assert!(a.is_closed(), "unused for 60s: reaped");
    assert_eq!(server(&sim, &ca).open_connections(), 0);
    assert!(!b.is_closed(), "b was used at 30s");
    assert_eq!(sup.stats().await.unwrap().pools, 1);

    sleep_until_after(t0, 105).await;
    assert!(b.is_closed());
    assert_eq!(server(&sim, &cb).open_connections(), 0);
    let stats = sup.stats().await.unwrap();
    assert_eq!(stats.pools, 0);
    assert_eq!(stats.pools_destroyed, 2);
    assert_eq!(stats.pools_evicted, 0, "reaping is not eviction");

    // A reaped pool is simply created again on demand.
    let again = sup.pool(ca.clone()).await.unwrap();
    touch(&again).await;
    assert_eq!(sup.stats().await.unwrap().pools_created, 3);
}

async fn sleep_until_after(t0: Instant, secs: u64) {
    tokio::time::sleep_until(t0 + Duration::from_secs(secs)).await;
}

#[actix::test]
async fn a_busy_pool_is_not_reaped_however_long_it_is_unused() {
    tokio::time::pause();
    let sim = Sim::new(7);
    let sup = start(
        &sim,
        SupervisorConfig {
            pool_idle_timeout: Some(Duration::from_secs(60)),
            reap_interval: Duration::from_secs(10),
            ..quiet()
        },
    );
    let pool = sup.pool(ConnectionConfig::sim("a")).await.unwrap();
    let held = pool.acquire().await.unwrap();
    sleep(Duration::from_secs(300)).await;
    assert!(!pool.is_closed());
    drop(held);
    sleep(Duration::from_secs(15)).await;
    assert!(pool.is_closed(), "reaped at the first tick once idle");
}

#[actix::test]
async fn reap_idle_on_demand_returns_the_removed_keys() {
    tokio::time::pause();
    let sim = Sim::new(8);
    let sup = start(&sim, quiet());
    let [ca, cb, cc] = ["a", "b", "c"].map(ConnectionConfig::sim);
    let a = sup.pool(ca.clone()).await.unwrap();
    let b = sup.pool(cb.clone()).await.unwrap();
    let c = sup.pool(cc.clone()).await.unwrap();
    touch(&a).await;
    sleep(Duration::from_secs(20)).await;
    touch(&b).await;
    let held = c.acquire().await.unwrap();
    sleep(Duration::from_secs(10)).await;

    // a: unused for 30s; b: 10s; c: busy.
    let removed = sup.reap_idle(Duration::from_secs(25)).await.unwrap();
    assert_eq!(removed, vec![a.key()]);
    assert!(a.is_closed() && !b.is_closed() && !c.is_closed());
    assert_eq!(server(&sim, &ca).open_connections(), 0);
    assert_eq!(server(&sim, &cb).open_connections(), 1);

    let removed = sup.reap_idle(Duration::from_secs(25)).await.unwrap();
    assert!(
        removed.is_empty(),
        "nothing else is old enough: {removed:?}"
    );

    let removed = sup.reap_idle(Duration::ZERO).await.unwrap();
    assert_eq!(removed, vec![b.key()], "c is busy");
    assert!(!c.is_closed());
    assert_eq!(server(&sim, &cb).open_connections(), 0);

    let stats = sup.stats().await.unwrap();
    assert_eq!(
        (stats.pools, stats.pools_destroyed, stats.pools_evicted),
        (1, 2, 0)
    );
    drop(held);
}

#[actix::test]
async fn a_pool_reaped_while_warming_up_leaves_no_server_connection() {
    tokio::time::pause();
    let sim = Sim::new(9);
    let cfg = ConnectionConfig::sim("slow");
    let srv = server(&sim, &cfg);
    srv.set_behavior(SimBehavior {
        connect_latency: ms(50),
        ..SimBehavior::default()
    });
    let sup = start(&sim, quiet());
    let pool = sup
        .pool_with(
            cfg.clone(),
            PoolConfig {
                min_idle: 3,
                ..quiet_pool()
            },
        )
        .await
        .unwrap();
    until("the warm-up connects are in flight", || {
        srv.in_flight_connects() > 0
    })
    .await;
    assert_eq!(
        sup.reap_idle(Duration::ZERO).await.unwrap(),
        vec![pool.key()]
    );
    sleep(ms(500)).await;
    assert_eq!(srv.in_flight_connects(), 0);
    assert_eq!(srv.open_connections(), 0, "no connection outlives its pool");
    assert_eq!(pool.stats().live, 0);
}

#[actix::test]
async fn get_stats_adds_up_every_pool() {
    tokio::time::pause();
    let sim = Sim::new(10);
    let sup = start(&sim, quiet());
    let (ca, cb) = (ConnectionConfig::sim("a"), ConnectionConfig::sim("b"));
    let a = sup.pool(ca.clone()).await.unwrap();
    let b = sup
        .pool_with(
            cb.clone(),
            PoolConfig {
                max_size: 1,
                ..quiet_pool()
            },
        )
        .await
        .unwrap();

    let a1 = a.acquire().await.unwrap();
    let a2 = a.acquire().await.unwrap();
    drop(a2); // a: 1 idle, 1 in use, 2 served
    let b1 = b.acquire().await.unwrap(); // b: full
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire().await.map(|c| c.key()) })
    };
    until("one waiter queued on b", || b.stats().waiters == 1).await;

    let s = sup.stats().await.unwrap();
    assert_eq!(s.pools, 2);
    assert_eq!(s.pools_created, 2);
    assert_eq!(s.pools_evicted, 0);
    assert_eq!(s.pools_destroyed, 0);
    assert_eq!(s.connections_served, 3);
    assert_eq!(s.idle, 1);
    assert_eq!(s.in_use, 2);
    assert_eq!(s.total, 3);
    assert_eq!(s.waiters, 1);
    assert_eq!(
        s.total,
        server(&sim, &ca).open_connections() + server(&sim, &cb).open_connections()
    );
    assert_eq!(s.per_pool.len(), 2);
    assert!(
        s.per_pool.windows(2).all(|w| w[0].key < w[1].key),
        "sorted by key"
    );
    let pa = s.per_pool.iter().find(|p| p.key == a.key()).unwrap();
    let pb = s.per_pool.iter().find(|p| p.key == b.key()).unwrap();
    assert_eq!((pa.idle, pa.in_use, pa.live, pa.served), (1, 1, 2, 2));
    assert_eq!(
        (pb.idle, pb.in_use, pb.live, pb.served, pb.waiters),
        (0, 1, 1, 1, 1)
    );
    assert_eq!((pa.backend.as_str(), pb.max_size), ("sim", 1));
    // (Maintenance may have run between the two snapshots.)
    assert_eq!(
        *pa,
        PoolStats {
            maintenance_runs: pa.maintenance_runs,
            ..a.stats()
        }
    );

    drop(b1);
    assert_eq!(waiter.await.unwrap().unwrap(), b.key());
    drop(a1);
    let s = sup.stats().await.unwrap();
    assert_eq!(
        (s.connections_served, s.in_use, s.waiters, s.idle),
        (4, 0, 0, 3)
    );
}

#[actix::test]
async fn health_check_reports_healthy_degraded_and_unhealthy() {
    tokio::time::pause();
    let sim = Sim::new(11);
    let sup = start(&sim, quiet());
    let (ca, cb) = (ConnectionConfig::sim("a"), ConnectionConfig::sim("b"));
    let a = sup.pool(ca.clone()).await.unwrap();
    let b = sup.pool(cb.clone()).await.unwrap();
    touch(&a).await;
    touch(&b).await;

    let r = sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Healthy);
    assert_eq!(r.healthy, 2);
    assert!(r.unhealthy.is_empty(), "{r:?}");

    server(&sim, &cb).go_down();
    let r = sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
    assert_eq!(r.healthy, 1);
    assert_eq!(r.unhealthy.len(), 1, "{r:?}");
    assert_eq!(r.unhealthy[0].0, b.key());
    assert!(!r.unhealthy[0].1.is_empty(), "a reason is given");

    server(&sim, &ca).go_down();
    let r = sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert_eq!(r.healthy, 0);
    let keys: Vec<_> = r.unhealthy.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, sorted(vec![a.key(), b.key()]));
    assert!(r.unhealthy.iter().all(|(_, why)| !why.is_empty()));

    server(&sim, &cb).come_up();
    let r = sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
    assert_eq!(r.unhealthy.len(), 1);
    assert_eq!(r.unhealthy[0].0, a.key());
}

#[actix::test]
async fn shutdown_refuses_new_work_and_waits_for_connections_returned_in_time() {
    tokio::time::pause();
    let sim = Sim::new(12);
    let sup = start(&sim, quiet());
    let (ca, cb) = (ConnectionConfig::sim("a"), ConnectionConfig::sim("b"));
    let a = sup.register("a", ca.clone(), None).await.unwrap();
    let b = sup.pool(cb.clone()).await.unwrap();
    let spare = a.acquire().await.unwrap();
    let held = a.acquire().await.unwrap();
    drop(spare); // a: 1 idle, 1 checked out
    touch(&b).await; // b: 1 idle
    let closed_before = a.stats().closed;

    let started = Instant::now();
    let shutdown = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.shutdown(Duration::from_secs(10)).await })
    };
    until("the pools are closed", || a.is_closed() && b.is_closed()).await;

    // Idle connections are closed at once; the checked-out one is still open.
    assert_eq!(server(&sim, &cb).open_connections(), 0);
    assert_eq!(server(&sim, &ca).open_connections(), 1);

    // New work is refused, however it is asked for.
    assert!(matches!(a.acquire().await, Err(Error::ShuttingDown)));
    assert!(matches!(b.acquire().await, Err(Error::ShuttingDown)));
    assert!(matches!(
        sup.pool(ca.clone()).await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(
        sup.pool(ConnectionConfig::sim("new")).await,
        Err(Error::ShuttingDown)
    ));
    for r in [
        Acquire::new("a"),
        Acquire::new(a.key()),
        Acquire::new(ca.clone()),
    ] {
        let got = sup.addr().send(r).await.unwrap();
        assert!(matches!(got, Err(Error::ShuttingDown)), "{got:?}");
    }
    assert!(matches!(sup.lookup("a").await, Err(Error::ShuttingDown)));
    assert!(
        !shutdown.is_finished(),
        "waiting for the checked-out connection"
    );

    sleep(Duration::from_secs(1)).await;
    drop(held);
    let report = shutdown.await.unwrap().unwrap();
    let took = started.elapsed();
    assert_eq!(
        report,
        ShutdownReport {
            pools_closed: 2,
            connections_closed: 2,
            still_checked_out: 0,
        }
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "returned when the connection came back, not at the deadline: {took:?}"
    );
    assert_eq!(server(&sim, &ca).open_connections(), 0);
    let sa = a.stats();
    assert_eq!((sa.live, sa.in_use, sa.closed), (0, 0, closed_before + 2));

    let stats = sup.stats().await.unwrap();
    assert_eq!((stats.pools, stats.pools_destroyed, stats.total), (0, 2, 0));
    assert!(matches!(sup.pool(ca).await, Err(Error::ShuttingDown)));
}

#[actix::test]
async fn shutdown_stops_waiting_at_the_deadline_and_closes_late_connections_on_return() {
    tokio::time::pause();
    let sim = Sim::new(13);
    let sup = start(&sim, quiet());
    let cfg = ConnectionConfig::sim("a");
    let pool = sup.pool(cfg.clone()).await.unwrap();
    let mut held = pool.acquire().await.unwrap();
    let other = sup.pool(ConnectionConfig::sim("b")).await.unwrap();
    touch(&other).await;

    let started = Instant::now();
    let report = sup.shutdown(Duration::from_secs(2)).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
        "waited the deadline out: {waited:?}"
    );
    assert_eq!(
        report,
        ShutdownReport {
            pools_closed: 2,
            connections_closed: 1,
            still_checked_out: 1,
        }
    );
    assert_eq!(server(&sim, &cfg).open_connections(), 1, "still held");
    assert!(pool.stats().closed_pool);

    // The holder can finish its work; the connection is closed when it comes back.
    held.query("SELECT 1").await.unwrap();
    let closed = pool.stats().closed;
    drop(held);
    assert_eq!(server(&sim, &cfg).open_connections(), 0);
    let s = pool.stats();
    assert_eq!((s.live, s.in_use, s.idle, s.closed), (0, 0, 0, closed + 1));
    assert!(matches!(pool.acquire().await, Err(Error::ShuttingDown)));
}

#[actix::test]
async fn acquire_message_by_name_key_and_config() {
    tokio::time::pause();
    let sim = Sim::new(14);
    let sup = start(&sim, quiet());
    let (ca, cb) = (ConnectionConfig::sim("a"), ConnectionConfig::sim("b"));
    let a = sup
        .register(
            "orders",
            ca.clone(),
            Some(PoolConfig {
                max_size: 2,
                ..quiet_pool()
            }),
        )
        .await
        .unwrap();

    let mut by_name = sup
        .addr()
        .send(Acquire::new("orders"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.key(), a.key());
    by_name.query("SELECT 1").await.unwrap();
    let by_key = sup
        .addr()
        .send(Acquire::new(a.key()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_key.key(), a.key());
    assert_eq!(a.stats().in_use, 2);

    // By config: the pool is created.
    let by_config = sup
        .addr()
        .send(Acquire::new(cb.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_config.key(), PoolKey::of(&cb));
    let s = sup.stats().await.unwrap();
    assert_eq!((s.pools, s.in_use, s.connections_served), (2, 3, 3));
    assert_eq!(server(&sim, &cb).open_connections(), 1);

    // A full pool: the message's own timeout applies.
    let t = Instant::now();
    match sup
        .addr()
        .send(Acquire::new("orders").timeout(ms(100)))
        .await
        .unwrap()
    {
        Err(Error::Timeout { key, phase, .. }) => {
            assert_eq!((key, phase), (a.key(), Phase::Wait));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let waited = t.elapsed();
    assert!(waited >= ms(100) && waited < ms(110), "{waited:?}");

    // A waiting Acquire does not block the supervisor.
    let waiting = {
        let addr = sup.addr().clone();
        tokio::spawn(async move { addr.send(Acquire::new("orders")).await })
    };
    until("the acquire is queued", || a.stats().waiters == 1).await;
    assert_eq!(sup.stats().await.unwrap().waiters, 1);
    drop(by_key);
    let got = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(got.key(), a.key());

    match sup.addr().send(Acquire::new("nope")).await.unwrap() {
        Err(Error::UnknownPool { name }) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownPool, got {other:?}"),
    }
    let stranger = PoolKey::of(&ConnectionConfig::sim("stranger"));
    assert!(matches!(
        sup.addr().send(Acquire::new(stranger)).await.unwrap(),
        Err(Error::UnknownKey { key }) if key == stranger
    ));

    // The handle's helper sends the same message.
    drop(by_name);
    let helped = sup.acquire("orders").await.unwrap();
    assert_eq!(helped.key(), a.key());
    assert_eq!(a.stats().served, 4);
    drop((by_config, got, helped));
}

#[actix::test]
async fn the_system_service_form_works() {
    let addr = Supervisor::<Sim>::from_registry();
    let again = Supervisor::<Sim>::from_registry();
    assert!(addr == again, "one supervisor per System");

    let cfg = ConnectionConfig::sim("registry");
    let pool = addr.send(GetPool::new(cfg.clone())).await.unwrap().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(conn.query("SELECT 1").await.unwrap(), 1);
    drop(conn);

    let same = again.send(Lookup::new(pool.key())).await.unwrap().unwrap();
    assert!(same.actor() == pool.actor());
    let stats = SupervisorHandle::from(again).stats().await.unwrap();
    assert_eq!((stats.pools, stats.connections_served), (1, 1));
}

#[actix::test]
async fn invalid_config_is_an_error_naming_the_field() {
    let sim = Sim::new(15);

    // The supervisor's own config.
    let bad = SupervisorConfig {
        default_pool: PoolConfig {
            max_size: 0,
            ..PoolConfig::default()
        },
        ..SupervisorConfig::default()
    };
    let e = SupervisorHandle::start(sim.clone(), bad).expect_err("refused");
    assert_eq!(e.field, "supervisor.default_pool.max_size");
    let e = Supervisor::new(
        sim.clone(),
        SupervisorConfig {
            max_pools: 0,
            ..SupervisorConfig::default()
        },
    )
    .err()
    .expect("refused");
    assert_eq!(e.field, "supervisor.max_pools");

    let sup = start(&sim, quiet());
    let cfg = ConnectionConfig::sim("a");

    // A pool's config.
    let cases: Vec<(PoolConfig, &str)> = vec![
        (
            PoolConfig {
                max_size: 0,
                ..quiet_pool()
            },
            "pool.max_size",
        ),
        (
            PoolConfig {
                max_size: 2,
                min_idle: 3,
                ..quiet_pool()
            },
            "pool.min_idle",
        ),
        (
            PoolConfig {
                acquire_timeout: Duration::ZERO,
                ..quiet_pool()
            },
            "pool.acquire_timeout",
        ),
        (
            PoolConfig {
                connect_timeout: Duration::ZERO,
                ..quiet_pool()
            },
            "pool.connect_timeout",
        ),
    ];
    // Refused with no pool for the key, and with one running (not ignored because the
    // running pool keeps its own settings).
    for running in [false, true] {
        let _pool = if running {
            Some(sup.pool(cfg.clone()).await.expect("the key's pool"))
        } else {
            None
        };
        for (pool, field) in &cases {
            match sup.pool_with(cfg.clone(), pool.clone()).await {
                Err(Error::Config(e)) => assert_eq!(e.field, *field, "running: {running}"),
                other => {
                    panic!("{field} (running: {running}): expected a config error, got {other:?}")
                }
            }
            match sup.register("bad", cfg.clone(), Some(pool.clone())).await {
                Err(Error::Config(e)) => assert_eq!(e.field, *field, "running: {running}"),
                other => {
                    panic!("{field} (running: {running}): expected a config error, got {other:?}")
                }
            }
        }
        assert!(
            matches!(sup.lookup("bad").await, Err(Error::UnknownPool { .. })),
            "a refused registration registers nothing"
        );
    }

    // Connection configs.
    for url in [
        "sim://db:notaport/x",
        "sim://,db/x",
        "nonsense",
        "ftp://db/x",
    ] {
        let e = ConnectionConfig::parse(url).expect_err(url);
        assert_eq!(e.field, "connection.url", "{url}: {e}");
    }
    let no_hosts = ConnectionConfig {
        hosts: vec![],
        ..ConnectionConfig::sim("x")
    };
    match sup.pool(no_hosts.clone()).await {
        Err(Error::Config(e)) => assert_eq!(e.field, "connection.hosts"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let mut empty_host = ConnectionConfig::sim("x");
    empty_host.hosts[0].host.clear();
    match sup.addr().send(Acquire::new(empty_host)).await.unwrap() {
        Err(Error::Config(e)) => assert_eq!(e.field, "connection.hosts[0].host"),
        other => panic!("expected a config error, got {other:?}"),
    }

    // Run-time resizing.
    let pool = sup.pool(cfg.clone()).await.unwrap();
    match pool.resize(0, 0).await {
        Err(Error::Config(e)) => assert_eq!(e.field, "resize.max_size"),
        other => panic!("expected a config error, got {other:?}"),
    }
    match pool.resize(2, 3).await {
        Err(Error::Config(e)) => assert_eq!(e.field, "resize.min_idle"),
        other => panic!("expected a config error, got {other:?}"),
    }

    // None of it hurt the supervisor.
    let s = sup.stats().await.unwrap();
    assert_eq!((s.pools, s.pools_created), (1, 1));
    touch(&pool).await;
}

/// With no idle connection to probe, the health check's probe opens one within its own
/// budget, not the (longer) connect timeout.
#[actix::test]
async fn a_health_probe_stays_within_its_budget() {
    tokio::time::pause();
    let sim = Sim::new(16);
    let budget = Duration::from_secs(2);
    let sup = start(
        &sim,
        SupervisorConfig {
            health_timeout: budget,
            ..quiet()
        },
    );
    let cfg = ConnectionConfig::sim("down");
    let pool = sup.pool(cfg.clone()).await.unwrap(); // no idle connection to probe
    server(&sim, &cfg).go_down();

    let t = Instant::now();
    let r = sup.health().await.unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, HealthStatus::Unhealthy);
    assert_eq!(r.unhealthy[0].0, pool.key());
    assert!(
        took <= budget + ms(10),
        "the probe overran its budget: {took:?}"
    );
    assert!(
        r.unhealthy[0].1.contains("connection refused"),
        "the reason names the failure: {r:?}"
    );
}
