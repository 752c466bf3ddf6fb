//! Cancellation safety: an acquire future dropped at any point (aborted task, timeout,
//! plain drop) never leaks a slot or a connection, and a guard dropped without an explicit
//! release returns its connection.

mod support_pool;

use std::task::Poll;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::{Error, PoolConfig};
use support_pool::*;

const MAX: usize = 3;

fn config() -> PoolConfig {
    PoolConfig {
        max_size: MAX as u32,
        acquire_timeout: secs(10),
        ..quiet_config()
    }
}

impl Fixture {
    /// Nothing leaked: the books balance, and exactly `MAX` acquires can be held at once
    /// (no slot lost, none created).
    async fn assert_no_leak(&self) {
        self.assert_quiescent();
        let mut held = Vec::new();
        for i in 0..MAX {
            let conn = self
                .pool
                .acquire_timeout(secs(5))
                .await
                .unwrap_or_else(|e| panic!("slot {i} of {MAX} was leaked: {e}"));
            held.push(conn);
        }
        let err = self.pool.acquire_timeout(ms(50)).await.unwrap_err();
        assert!(is_wait_timeout(&err), "more than max_size slots: {err:?}");
        assert_eq!(self.server.open_connections(), MAX);
        drop(held);
        self.assert_quiescent();
    }
}

#[actix::test]
async fn aborting_a_task_waiting_for_a_slot() {
    let f = start("abortwait", config(), SimBehavior::default()).await;
    let held = f.hold(MAX).await;
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle().await;
    assert_eq!(f.pool.stats().waiters, 1);
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(f.pool.stats().waiters, 0);
    drop(held);
    f.assert_no_leak().await;
}

#[actix::test]
async fn timing_out_around_an_acquire_waiting_for_a_slot() {
    let f = start("timeoutwait", config(), SimBehavior::default()).await;
    let held = f.hold(MAX).await;
    for _ in 0..5 {
        let r = tokio::time::timeout(ms(100), f.pool.acquire()).await;
        assert!(r.is_err(), "should still be waiting");
    }
    assert_eq!(f.pool.stats().waiters, 0);
    drop(held);
    f.assert_no_leak().await;
}

/// A waiter is handed a slot by a release, then dropped before it runs again: the slot
/// must go back to the pool rather than die with the future.
#[actix::test]
async fn dropping_a_waiter_that_was_just_handed_a_slot() {
    let f = start("handoff", config(), SimBehavior::default()).await;
    let mut held = f.hold(MAX).await;
    let mut waiter = Box::pin(f.pool.acquire());
    assert!(matches!(futures::poll!(&mut waiter), Poll::Pending));
    assert_eq!(f.pool.stats().waiters, 1);
    held.pop(); // hands its slot to the queued waiter
    drop(waiter); // which never runs again
    assert_eq!(f.pool.stats().waiters, 0);
    drop(held);
    f.assert_no_leak().await;
}

#[actix::test]
async fn timing_out_while_connecting() {
    let f = start(
        "slowconnect",
        config(),
        SimBehavior {
            connect_latency: ms(500),
            ..SimBehavior::default()
        },
    )
    .await;
    let r = tokio::time::timeout(ms(100), f.pool.acquire()).await;
    assert!(r.is_err());
    let s = f.pool.stats();
    assert_eq!((s.connecting, s.live, s.in_use), (0, 0, 0), "{s:?}");
    assert_eq!(f.server.in_flight_connects(), 0);
    assert_eq!(f.server.open_connections(), 0);
    assert_eq!(
        f.server.connects(),
        0,
        "the abandoned connect never completed"
    );
    f.assert_no_leak().await;
}

#[actix::test]
async fn aborting_a_task_while_it_connects() {
    let f = start(
        "abortconnect",
        config(),
        SimBehavior {
            connect_latency: ms(500),
            ..SimBehavior::default()
        },
    )
    .await;
    let tasks: Vec<_> = (0..MAX)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move { pool.acquire().await })
        })
        .collect();
    settle_for(ms(100)).await;
    assert_eq!(f.pool.stats().connecting, MAX);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(f.server.in_flight_connects(), 0);
    f.assert_no_leak().await;
}

#[actix::test]
async fn dropping_an_acquire_stuck_in_a_stalled_connect() {
    let f = start("stalled", config(), SimBehavior::default()).await;
    f.server.stall_next_connects(1);
    let r = tokio::time::timeout(ms(300), f.pool.acquire()).await;
    assert!(r.is_err());
    assert_eq!(
        f.server.in_flight_connects(),
        0,
        "the stalled connect was not dropped"
    );
    assert_eq!(f.pool.stats().connecting, 0);
    f.assert_no_leak().await;
}

#[actix::test]
async fn dropping_an_acquire_during_connect_backoff() {
    let f = start(
        "backoff",
        PoolConfig {
            backoff_initial: ms(200),
            backoff_max: ms(200),
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.go_down();
    let r = tokio::time::timeout(ms(1000), f.pool.acquire()).await;
    assert!(r.is_err());
    assert!(f.server.connect_attempts() >= 2, "it was retrying");
    assert_eq!(f.pool.stats().connecting, 0);
    f.server.come_up();
    f.assert_no_leak().await;
}

#[actix::test]
async fn dropping_an_acquire_while_its_connection_is_probed() {
    let f = start(
        "probing",
        PoolConfig {
            test_on_checkout: true,
            checkout_bypass: ms(100),
            probe_timeout: secs(5),
            ..config()
        },
        SimBehavior {
            query_latency: ms(500),
            ..SimBehavior::default()
        },
    )
    .await;
    drop(f.pool.acquire().await.unwrap());
    settle_for(secs(1)).await;
    let r = tokio::time::timeout(ms(100), f.pool.acquire()).await;
    assert!(r.is_err(), "the probe takes 500ms");
    // The half-probed connection is in an unknown state: closed, not put back.
    let s = f.pool.stats();
    assert_eq!((s.live, s.idle, s.in_use, s.closed), (0, 0, 0, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 0);
    f.assert_no_leak().await;
}

#[actix::test]
async fn a_dropped_guard_returns_its_connection() {
    let f = start("guard", config(), SimBehavior::default()).await;
    let conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    assert_eq!(f.pool.stats().in_use, 1);
    drop(conn);
    let s = f.pool.stats();
    assert_eq!((s.in_use, s.idle, s.live), (0, 1, 1), "{s:?}");
    assert_eq!(f.pool.acquire().await.unwrap().id(), id);
    f.assert_no_leak().await;
}

#[actix::test]
async fn aborting_a_task_holding_a_guard_returns_the_connection() {
    let f = start("abortheld", config(), SimBehavior::default()).await;
    let holder = {
        let pool = f.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            conn.query("BEGIN").await.unwrap();
            std::future::pending::<()>().await;
        })
    };
    settle().await;
    assert_eq!(f.pool.stats().in_use, 1);
    holder.abort();
    assert!(holder.await.unwrap_err().is_cancelled());
    settle().await;
    // Returned, and rolled back on the way.
    let conn = f.pool.acquire().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(f.server.connects(), 1);
    drop(conn);
    f.assert_no_leak().await;
}

/// Many acquires cut at assorted points (waiting, connecting, probing, holding): the
/// books still balance afterwards.
#[actix::test]
async fn a_storm_of_cancelled_acquires_leaks_nothing() {
    let f = start(
        "storm",
        PoolConfig {
            test_on_checkout: true,
            checkout_bypass: ms(5),
            probe_timeout: secs(1),
            ..config()
        },
        SimBehavior {
            connect_latency: ms(7),
            query_latency: ms(3),
            ..SimBehavior::default()
        },
    )
    .await;
    let mut tasks = Vec::new();
    for t in 0..12u64 {
        let pool = f.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for i in 0..25u64 {
                let cut = ms((t * 3 + i * 7) % 41);
                let r = tokio::time::timeout(cut, async {
                    let mut conn = pool.acquire().await?;
                    if i % 3 == 0 {
                        conn.query("BEGIN").await.ok();
                    }
                    conn.query("SELECT 1").await.ok();
                    Ok::<_, Error>(())
                })
                .await;
                if matches!(r, Ok(Ok(()))) {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    // A mix of both, or the test proves little: cuts range over 0-40ms.
    assert!(done >= 25, "only {done} completed: the cuts were too short");
    assert!(
        done <= 12 * 25 - 25,
        "{done} completed: too few were cancelled"
    );
    // Let spawned resets finish.
    settle_for(secs(2)).await;
    f.assert_no_leak().await;
}

/// A connection returned dirty is cleaned on a task spawned where it was released. When
/// that runtime shuts down before the task runs (a short-lived current-thread runtime, a
/// caller that reaches the process-wide supervisor from a thread of its own), the task is
/// dropped unpolled: the connection is closed and its slot given back, not lost.
#[test]
fn a_cleaning_task_dropped_with_its_runtime_leaks_nothing() {
    use poolwarden::backends::sim::SimBackend;
    use poolwarden::{ConnectionConfig, EmbeddedSupervisor, SupervisorConfig};

    let sim = SimBackend::default();
    let sup = EmbeddedSupervisor::spawn(sim.clone(), SupervisorConfig::default()).unwrap();
    let cfg = ConnectionConfig::sim("cleaning");
    let pool_config = PoolConfig {
        max_size: 2,
        min_idle: 0,
        acquire_timeout: secs(5),
        ..quiet_config()
    };
    for _ in 0..5 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = sup
                .handle()
                .pool_with(cfg.clone(), pool_config.clone())
                .await
                .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            conn.query("BEGIN").await.unwrap();
            assert!(conn.in_transaction());
            drop(conn); // spawns the cleaning task on this runtime, which ends now
        });
        drop(rt);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sup
            .handle()
            .pool_with(cfg.clone(), pool_config)
            .await
            .unwrap();
        let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
        let stats = pool.stats();
        assert_eq!(stats.in_use, 2, "{stats:?}");
        assert_eq!(
            stats.live, 2,
            "no connection counted that is nowhere: {stats:?}"
        );
        drop(held);
        assert_eq!(
            sim.server(&cfg.primary_host()).open_connections(),
            pool.stats().live
        );
    });
}
