//! Connection budgets on the simulated backend: many pool keys to one endpoint never hold
//! more than `max_connections_per_host` connections (counted by the simulated server),
//! `max_total_connections` bounds every endpoint together, a busy pool takes room from the
//! least recently used idle connection of another key, waits for budget are FIFO and end
//! at the deadline in phase Wait, dedicated and overflow connections count, a cancelled
//! wait leaks nothing, refills never take room a caller waits for, and the supervisor's
//! stats say who holds what.

mod support_pool;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use poolwarden::backends::sim::{SimBackend, SimBehavior, SimServer};
use poolwarden::{
    BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig, PoolHandle, SupervisorConfig,
    SupervisorHandle,
};
use support_pool::*;
use tokio::time::Instant;

type Sup = SupervisorHandle<SimBackend>;

/// Paused time, a supervisor with the given budgets.
fn supervisor(per_host: Option<u32>, total: Option<u32>) -> (SimBackend, Sup) {
    tokio::time::pause();
    let sim = SimBackend::new(7);
    let sup = SupervisorHandle::start(
        sim.clone(),
        SupervisorConfig {
            pool_idle_timeout: None,
            max_connections_per_host: per_host,
            max_total_connections: total,
            ..SupervisorConfig::default()
        },
    )
    .expect("valid config");
    (sim, sup)
}

/// A key on server `host` (`host:1`), told apart from the others by its database.
fn key_config(host: &str, db: &str) -> ConnectionConfig {
    let mut c = ConnectionConfig::sim(host);
    c.database = Some(db.into());
    c
}

fn pool_config(max_size: u32) -> PoolConfig {
    PoolConfig {
        max_size,
        acquire_timeout: secs(10),
        ..quiet_config()
    }
}

async fn pool(sup: &Sup, host: &str, db: &str, config: PoolConfig) -> PoolHandle<SimBackend> {
    sup.pool_with(key_config(host, db), config)
        .await
        .expect("pool")
}

/// Samples `servers`' open connections (summed) every simulated 100µs until stopped;
/// answers the highest count seen.
fn watch(servers: Vec<SimServer>) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            let open: usize = servers.iter().map(SimServer::open_connections).sum();
            peak = peak.max(open);
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        peak
    });
    (stop, task)
}

/// `tasks` tasks per pool loop acquire + one query for `run`; answers (queries, errors).
async fn load(pools: &[PoolHandle<SimBackend>], tasks: usize, run: Duration) -> (u64, Vec<Error>) {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + run;
    let mut workers = Vec::new();
    for (i, pool) in pools.iter().enumerate() {
        for t in 0..tasks {
            let (pool, done) = (pool.clone(), Arc::clone(&done));
            workers.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                // Pools take turns being busy: each task pauses a while now and then.
                let pause = ms(((i * 7 + t * 3) % 11) as u64);
                while Instant::now() < until {
                    match pool.acquire().await {
                        Ok(mut conn) => {
                            conn.query("SELECT 1").await.expect("query");
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push(e),
                    }
                    tokio::time::sleep(pause).await;
                }
                errors
            }));
        }
    }
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.unwrap());
    }
    (done.load(Ordering::Relaxed), errors)
}

fn one_ms() -> SimBehavior {
    SimBehavior {
        connect_latency: ms(2),
        query_latency: ms(1),
        ..SimBehavior::default()
    }
}

#[actix::test]
async fn many_keys_to_one_endpoint_never_exceed_max_connections_per_host() {
    let (sim, sup) = supervisor(Some(4), None);
    let server = sim.server("shared:1");
    server.set_behavior(one_ms());
    let mut pools = Vec::new();
    for k in 0..6 {
        pools.push(pool(&sup, "shared", &format!("db{k}"), pool_config(4)).await);
    }
    let (stop, peak) = watch(vec![server.clone()]);
    let (done, errors) = load(&pools, 4, secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();

    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(3)]);
    assert!(done > 1000, "{done} queries");
    assert!(peak <= 4, "{peak} connections open at once");
    assert!(peak >= 3, "the budget was used: peak {peak}");
    let waits: u64 = pools.iter().map(|p| p.stats().budget_waits).sum();
    let evictions: u64 = pools.iter().map(|p| p.stats().budget_evictions).sum();
    assert!(
        waits > 0 && evictions > 0,
        "{waits} waits, {evictions} evictions"
    );

    // The books agree with the server.
    settle().await;
    let stats = sup.stats().await.unwrap();
    let endpoint = &stats.budget.endpoints[0];
    assert_eq!(stats.budget.endpoints.len(), 1, "{:?}", stats.budget);
    assert_eq!(endpoint.endpoint, "shared:1");
    assert_eq!(endpoint.limit, 4);
    assert_eq!(endpoint.used, server.open_connections());
    assert_eq!(endpoint.used, stats.total);
    let held: usize = endpoint.holders.iter().map(|(_, n)| n).sum();
    assert_eq!(held, endpoint.used);
    assert_eq!(stats.budget.total, None);
}

#[actix::test]
async fn max_total_connections_bounds_two_endpoints_together() {
    let (sim, sup) = supervisor(None, Some(5));
    let (a, b) = (sim.server("a:1"), sim.server("b:1"));
    a.set_behavior(one_ms());
    b.set_behavior(one_ms());
    let pools = vec![
        pool(&sup, "a", "x", pool_config(4)).await,
        pool(&sup, "a", "y", pool_config(4)).await,
        pool(&sup, "b", "x", pool_config(4)).await,
        pool(&sup, "b", "y", pool_config(4)).await,
    ];
    let (stop, peak) = watch(vec![a.clone(), b.clone()]);
    let (done, errors) = load(&pools, 4, secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();

    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(3)]);
    assert!(done > 1000, "{done} queries");
    assert!(peak <= 5, "{peak} connections open at once on a and b");
    settle().await;
    let stats = sup.stats().await.unwrap();
    let total = stats.budget.total.clone().expect("a total budget");
    assert_eq!(total.limit, 5);
    assert_eq!(total.used, a.open_connections() + b.open_connections());
    assert!(stats.budget.endpoints.is_empty(), "no per-host limit");
}

#[actix::test]
async fn a_busy_pool_takes_room_from_idle_pools_least_recently_used_first() {
    let (sim, sup) = supervisor(Some(3), None);
    let server = sim.server("lru:1");
    let idle: Vec<_> = {
        let mut v = Vec::new();
        for k in 0..3 {
            v.push(pool(&sup, "lru", &format!("idle{k}"), pool_config(2)).await);
        }
        v
    };
    // Each idle pool used once, idle0 longest ago.
    for p in &idle {
        drop(p.acquire().await.unwrap());
        tokio::time::sleep(ms(10)).await;
    }
    assert_eq!(server.open_connections(), 3);
    let busy = pool(&sup, "lru", "busy", pool_config(3)).await;

    let first = busy.acquire().await.unwrap();
    let idle_counts: Vec<_> = idle.iter().map(|p| p.stats().idle).collect();
    assert_eq!(idle_counts, [0, 1, 1], "the least recently used went first");
    assert_eq!(idle[0].stats().budget_evictions, 1);
    assert_eq!(server.open_connections(), 3);

    // idle2 is used again: idle1 is now the least recently used.
    drop(idle[2].acquire().await.unwrap());
    let second = busy.acquire().await.unwrap();
    let idle_counts: Vec<_> = idle.iter().map(|p| p.stats().idle).collect();
    assert_eq!(idle_counts, [0, 0, 1]);
    let third = busy.acquire().await.unwrap();
    let idle_counts: Vec<_> = idle.iter().map(|p| p.stats().idle).collect();
    assert_eq!(idle_counts, [0, 0, 0]);
    assert_eq!(busy.stats().budget_waits, 3);
    assert_eq!(server.open_connections(), 3);
    drop((first, second, third));
}

#[actix::test]
async fn a_wait_for_budget_ends_at_the_deadline_in_phase_wait_and_waits_are_fifo() {
    let (sim, sup) = supervisor(Some(1), None);
    let server = sim.server("fifo:1");
    let holder = pool(&sup, "fifo", "holder", pool_config(1)).await;
    let held = holder.acquire().await.unwrap();

    // Nothing idle to close: the acquire waits until its deadline.
    let other = pool(&sup, "fifo", "other", pool_config(1)).await;
    let start = Instant::now();
    let err = other.acquire_timeout(ms(200)).await.unwrap_err();
    let waited = start.elapsed();
    match &err {
        Error::Timeout {
            phase: Phase::Wait,
            last_error: Some(why),
            ..
        } => {
            assert_eq!(why.kind(), BackendErrorKind::Capacity);
            assert!(why.to_string().contains("connection budget"), "{why}");
            assert!(why.to_string().contains("fifo:1"), "{why}");
        }
        e => panic!("expected a Wait timeout naming the budget, got {e:?}"),
    }
    assert!(waited >= ms(200) && waited < ms(210), "{waited:?}");
    let s = other.stats();
    assert_eq!((s.budget_waits, s.timeouts, s.live), (1, 1, 0));

    // Three pools queue in order; each hands its connection back after being served.
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for name in ["first", "second", "third"] {
        let p = pool(&sup, "fifo", name, pool_config(1)).await;
        let order = Arc::clone(&order);
        waiters.push(tokio::spawn(async move {
            let conn = p.acquire().await.expect("served within the deadline");
            order.lock().push(name);
            tokio::time::sleep(ms(5)).await;
            drop(conn);
        }));
        settle().await;
    }
    assert!(order.lock().is_empty());
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock(), ["first", "second", "third"]);
    assert_eq!(server.open_connections(), 1);
}

#[actix::test]
async fn dedicated_and_overflow_connections_count() {
    let (sim, sup) = supervisor(Some(3), None);
    let server = sim.server("ded:1");
    let p = pool(
        &sup,
        "ded",
        "main",
        PoolConfig {
            max_size: 1,
            max_overflow: 1,
            ..pool_config(1)
        },
    )
    .await;
    let a = p.acquire().await.unwrap();
    let b = p.acquire().await.unwrap(); // overflow
    let listener = p.dedicated().await.unwrap();
    assert_eq!(server.open_connections(), 3);
    let stats = sup.stats().await.unwrap();
    assert_eq!(stats.budget.endpoints[0].used, 3);
    assert_eq!(stats.budget.endpoints[0].holders, vec![(p.key(), 3)]);

    let q = pool(&sup, "ded", "other", pool_config(1)).await;
    let err = q.acquire_timeout(ms(50)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    // A dedicated connection waits too, until its own deadline (the acquire timeout).
    let qd = {
        let q = q.clone();
        tokio::spawn(async move { q.dedicated().await })
    };
    settle().await;
    drop(listener);
    let qd = qd.await.unwrap().expect("room once the listener closed");
    assert_eq!(server.open_connections(), 3);
    assert_eq!(q.stats().budget_waits, 2);
    drop((a, b, qd));
    assert_eq!(
        sup.stats().await.unwrap().budget.endpoints[0].used,
        server.open_connections()
    );
}

#[actix::test]
async fn a_cancelled_wait_or_connect_leaks_no_budget() {
    let (sim, sup) = supervisor(Some(2), Some(2));
    let server = sim.server("cancel:1");
    let holder = pool(&sup, "cancel", "holder", pool_config(2)).await;
    let held = vec![
        holder.acquire().await.unwrap(),
        holder.acquire().await.unwrap(),
    ];

    // Cancelled while queued for budget.
    let waiter = pool(&sup, "cancel", "waiter", pool_config(2)).await;
    let queued = {
        let w = waiter.clone();
        tokio::spawn(async move { w.acquire().await })
    };
    settle().await;
    assert_eq!(waiter.stats().budget_waits, 1);
    queued.abort();
    let _ = queued.await;
    let budget = sup.stats().await.unwrap().budget;
    assert_eq!(budget.endpoints[0].used, 2);
    assert_eq!(budget.total.as_ref().unwrap().used, 2);

    // Cancelled mid-connect, holding the room it took.
    drop(held);
    server.stall_next_connects(1);
    let stalled = tokio::time::timeout(ms(50), waiter.acquire()).await;
    assert!(stalled.is_err(), "the connect stalls");
    settle().await;
    let budget = sup.stats().await.unwrap().budget;
    assert_eq!(budget.endpoints[0].used, server.open_connections());
    assert_eq!(
        budget.total.as_ref().unwrap().used,
        server.open_connections()
    );

    // And the room is there for the next caller.
    let a = waiter.acquire().await.unwrap();
    let b = waiter.acquire().await.unwrap();
    assert_eq!(server.open_connections(), 2);
    drop((a, b));
    let budget = sup.stats().await.unwrap().budget;
    assert_eq!(budget.endpoints[0].used, server.open_connections());
    assert_eq!(
        budget.endpoints[0].holders,
        vec![(waiter.key(), 2)],
        "the holder's idle ones were closed for room"
    );
}

#[actix::test]
async fn refills_skip_rather_than_take_room_from_callers() {
    let (sim, sup) = supervisor(Some(2), None);
    let server = sim.server("refill:1");
    let busy = pool(&sup, "refill", "busy", pool_config(2)).await;
    let held = vec![busy.acquire().await.unwrap(), busy.acquire().await.unwrap()];

    // A pool that wants 2 idle finds no room: it skips, without error or wait.
    let warm = pool(
        &sup,
        "refill",
        "warm",
        PoolConfig {
            min_idle: 2,
            ..pool_config(2)
        },
    )
    .await;
    settle_for(secs(3)).await;
    let s = warm.stats();
    assert_eq!(
        (s.live, s.connect_errors, s.budget_waits),
        (0, 0, 0),
        "{s:?}"
    );

    // A caller queues; the room freed goes to it, not to the refill ticking meanwhile.
    let caller = pool(&sup, "refill", "caller", pool_config(2)).await;
    let served = Arc::new(AtomicUsize::new(0));
    let task = {
        let (caller, served) = (caller.clone(), Arc::clone(&served));
        tokio::spawn(async move {
            let conn = caller.acquire().await.expect("served");
            served.fetch_add(1, Ordering::Relaxed);
            conn
        })
    };
    settle_for(ms(1500)).await;
    assert_eq!(served.load(Ordering::Relaxed), 0);
    let mut held = held.into_iter();
    drop(held.next()); // idle in `busy`: closed for the caller
    let conn = task.await.unwrap();
    assert_eq!(warm.stats().live, 0);
    assert_eq!(server.open_connections(), 2);

    // Once room is free and nobody waits, the refill takes it.
    drop((conn, held));
    caller.soft_evict();
    busy.soft_evict();
    assert!(
        eventually(secs(5), || warm.stats().idle == 2).await,
        "{:?}",
        warm.stats()
    );
    assert_eq!(server.open_connections(), 2);
}

/// A connection a pool opens for itself (warm-up, refill, probe) and files idle while a
/// caller waits for room tells that caller, as a returned one does: it is closed for the
/// caller at once, not found at the caller's deadline.
#[actix::test]
async fn a_connection_a_refill_files_idle_makes_room_for_a_caller_waiting() {
    const CONNECT: Duration = Duration::from_millis(50);
    let (sim, sup) = supervisor(Some(2), None);
    let server = sim.server("filed:1");
    server.set_behavior(SimBehavior {
        connect_latency: CONNECT,
        ..SimBehavior::default()
    });
    let busy = pool(&sup, "filed", "busy", pool_config(2)).await;
    let _held = busy.acquire().await.unwrap();
    // The other pool warms up: its connect takes the last room under the limit.
    let warm = pool(
        &sup,
        "filed",
        "warm",
        PoolConfig {
            min_idle: 1,
            ..pool_config(2)
        },
    )
    .await;
    settle().await;
    assert_eq!(server.in_flight_connects(), 1, "the warm-up connects");
    assert_eq!(warm.stats().live, 0);
    // A caller of the busy pool finds no room and nothing idle to close: it waits.
    let t = Instant::now();
    let caller = {
        let busy = busy.clone();
        tokio::spawn(async move { busy.acquire().await })
    };
    let conn = caller
        .await
        .unwrap()
        .expect("served once the warm-up's connection is filed");
    // The warm-up connects (at most one connect time), its connection is closed for the
    // caller, who connects.
    assert!(t.elapsed() <= CONNECT * 2 + ms(5), "{:?}", t.elapsed());
    assert_eq!(warm.stats().live, 0, "closed for the caller");
    assert_eq!(server.open_connections(), 2);
    drop(conn);
}

#[actix::test]
async fn stats_show_who_holds_the_budget() {
    let (sim, sup) = supervisor(Some(8), Some(10));
    let _ = sim.server("h1:1");
    let p1 = pool(&sup, "h1", "one", pool_config(4)).await;
    let p2 = pool(&sup, "h1", "two", pool_config(4)).await;
    let p3 = pool(&sup, "h2", "three", pool_config(4)).await;
    let c1 = p1.acquire().await.unwrap();
    let c2 = vec![p2.acquire().await.unwrap(), p2.acquire().await.unwrap()];
    let c3 = p3.acquire().await.unwrap();

    let budget = sup.stats().await.unwrap().budget;
    assert_eq!(budget.endpoints.len(), 2);
    let h1 = &budget.endpoints[0];
    assert_eq!((h1.endpoint.as_str(), h1.limit, h1.used), ("h1:1", 8, 3));
    let mut expected = vec![(p1.key(), 1), (p2.key(), 2)];
    expected.sort();
    assert_eq!(h1.holders, expected);
    let h2 = &budget.endpoints[1];
    assert_eq!((h2.endpoint.as_str(), h2.used), ("h2:1", 1));
    assert_eq!(h2.holders, vec![(p3.key(), 1)]);
    let total = budget.total.unwrap();
    assert_eq!((total.limit, total.used), (10, 4));

    // Idle connections still hold their room; closed ones give it back.
    drop((c1, c2, c3));
    assert_eq!(sup.stats().await.unwrap().budget.total.unwrap().used, 4);
    p2.soft_evict();
    let budget = sup.stats().await.unwrap().budget;
    assert_eq!(budget.total.unwrap().used, 2);
    assert_eq!(budget.endpoints[0].holders, vec![(p1.key(), 1)]);

    // Without a budget the stats say nothing of one.
    let plain = SupervisorHandle::start(
        SimBackend::new(1),
        SupervisorConfig {
            pool_idle_timeout: None,
            ..SupervisorConfig::default()
        },
    )
    .unwrap();
    let _p = pool(&plain, "h1", "one", pool_config(1)).await;
    assert_eq!(
        plain.stats().await.unwrap().budget,
        poolwarden::BudgetStats::default()
    );
}
