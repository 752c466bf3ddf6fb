//! Controls on a running pool, on the simulated backend: soft eviction (idle connections
//! closed now, checked-out ones as they come back, new acquires get fresh ones), pausing
//! (acquires wait and time out in phase Wait, resume lets them through in order, nothing
//! is opened meanwhile) and dedicated connections (counted, outside the slots, closed by
//! shutdown).

mod support_pool;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use poolwarden::backends::sim::{SimBehavior, SimConnection};
use poolwarden::{ConnectionConfig, Hooks, PoolConfig};
use support_pool::*;
use tokio::time::Instant;

fn config() -> PoolConfig {
    PoolConfig {
        max_size: 2,
        ..quiet_config()
    }
}

#[actix::test]
async fn soft_evict_closes_idle_now_in_use_on_return_and_new_acquires_get_fresh_connections() {
    let f = start("evict", config(), SimBehavior::default()).await;
    let held = f.hold(2).await;
    let old: Vec<u64> = held.iter().map(|c| c.id()).collect();
    let mut held = held.into_iter();
    drop(held.next()); // one idle
    let out = held.next().unwrap();
    let generation = f.pool.stats().generation;

    assert_eq!(f.pool.soft_evict(), 1, "the idle one, now");
    assert_eq!(
        f.server.open_connections(),
        1,
        "the checked-out one stays open"
    );
    let s = f.pool.stats();
    assert_eq!(
        (s.idle, s.in_use, s.generation, s.restarts),
        (0, 1, generation + 1, 0)
    );

    // A new acquire gets a fresh connection, while the old one is still out.
    let fresh = f.pool.acquire().await.unwrap();
    assert!(!old.contains(&fresh.id()));
    drop(out);
    assert_eq!(f.server.open_connections(), 1, "closed as it came back");
    drop(fresh);
    let again = f.pool.acquire().await.unwrap();
    assert!(
        !old.contains(&again.id()),
        "the fresh one is reused, not an old one"
    );
    drop(again);
    assert_eq!(f.server.connects(), 3);
    f.assert_quiescent();
}

#[actix::test]
async fn paused_acquires_wait_and_time_out_in_phase_wait_and_nothing_is_opened() {
    let f = start("pause-timeout", config(), SimBehavior::default()).await;
    drop(f.pool.acquire().await.unwrap()); // one idle connection
    assert!(f.pool.pause());
    assert!(!f.pool.pause(), "already paused");
    assert!(f.pool.stats().paused);
    let start = Instant::now();
    let err = f.pool.acquire_timeout(ms(250)).await.unwrap_err();
    let took = start.elapsed();
    assert!(is_wait_timeout(&err), "{err:?}");
    assert!(took >= ms(250) && took < ms(260), "{took:?}");
    // Nothing was handed out or opened, even with an idle connection at hand.
    let s = f.pool.stats();
    assert_eq!(
        (s.served, s.timeouts, s.waiters, s.idle),
        (1, 1, 0, 1),
        "{s:?}"
    );
    assert_eq!(f.server.connects(), 1);
    // Dedicated connections wait too.
    assert!(is_wait_timeout(
        &tokio::time::timeout(secs(10), f.pool.dedicated())
            .await
            .expect("bounded by the acquire timeout")
            .unwrap_err()
    ));
    assert!(f.pool.resume());
    assert!(!f.pool.stats().paused);
    drop(f.pool.acquire().await.unwrap());
    f.assert_quiescent();
}

#[actix::test]
async fn resume_lets_the_waiting_acquires_through_in_the_order_they_came() {
    let f = start(
        "pause-order",
        PoolConfig {
            max_size: 1,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.pool.pause();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..5 {
        let (pool, order) = (f.pool.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            order.lock().push(i);
            // Hold it a little, so the next must wait for it: one slot, in turn.
            conn.query("SELECT 1").await.unwrap();
            tokio::time::sleep(ms(10)).await;
        }));
        // Each queued before the next arrives.
        settle().await;
    }
    assert_eq!(f.pool.stats().waiters, 5);
    // A cancelled waiter leaves the queue without disturbing the others.
    let cancelled = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(drop) })
    };
    settle().await;
    cancelled.abort();
    settle().await;
    assert_eq!(f.pool.stats().waiters, 5);
    assert_eq!(f.server.connects(), 0, "nothing opened while paused");
    let resumed = Instant::now();
    f.pool.resume();
    // One arriving after the resume goes behind them.
    let late = {
        let (pool, order) = (f.pool.clone(), order.clone());
        tokio::spawn(async move {
            drop(pool.acquire().await.unwrap());
            order.lock().push(99);
        })
    };
    for w in waiters {
        w.await.unwrap();
    }
    late.await.unwrap();
    assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4, 99]);
    let took = resumed.elapsed();
    assert!(took >= ms(50) && took < ms(60), "one at a time: {took:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn a_pause_catches_acquires_queued_for_a_slot_and_closing_the_pool_ends_the_wait() {
    let f = start(
        "pause-slot",
        PoolConfig {
            max_size: 1,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let held = f.pool.acquire().await.unwrap();
    let queued = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(drop) })
    };
    settle().await;
    f.pool.pause();
    drop(held); // its slot goes to the queued acquire, which must wait for the resume
    settle_for(ms(100)).await;
    assert!(!queued.is_finished());
    assert_eq!(f.pool.stats().in_use, 0);
    // Shutdown ends the wait at once.
    let report = f.sup.shutdown(secs(1)).await.unwrap();
    assert_eq!(report.still_checked_out, 0);
    assert!(queued.await.unwrap().is_err());
}

#[actix::test]
async fn dedicated_connections_are_counted_take_no_slot_and_run_after_connect() {
    let hooks = Hooks::<SimConnection>::new().after_connect(|conn| {
        Box::pin(async move {
            conn.query("SET application_name = 'listener'").await?;
            Ok(())
        })
    });
    let f = start("dedicated-plain", config(), SimBehavior::default()).await;
    let pool = f
        .sup
        .pool_with_hooks(ConnectionConfig::sim("dedicated"), Some(config()), hooks)
        .await
        .unwrap();
    let server = f
        .backend
        .server(&ConnectionConfig::sim("dedicated").primary_host());
    let mut listener = pool.dedicated().await.unwrap();
    assert_eq!(
        listener.query("LISTEN jobs").await.unwrap(),
        2,
        "after_connect ran first"
    );
    let s = pool.stats();
    assert_eq!(
        (s.dedicated, s.live, s.in_use, s.created),
        (1, 0, 0, 1),
        "{s:?}"
    );
    // max_size (2) acquires still succeed beside it.
    let a = pool.acquire_timeout(ms(100)).await.unwrap();
    let b = pool.acquire_timeout(ms(100)).await.unwrap();
    assert_eq!(server.open_connections(), 3);
    assert!(is_wait_timeout(
        &pool.acquire_timeout(ms(50)).await.unwrap_err()
    ));
    drop((a, b));
    let listener2 = pool.dedicated().await.unwrap();
    assert_eq!(pool.stats().dedicated, 2);
    drop(listener2);
    drop(listener);
    let s = pool.stats();
    assert_eq!(
        (s.dedicated, s.live, s.idle, s.closed),
        (0, 2, 2, 2),
        "{s:?}"
    );
    assert_eq!(server.open_connections(), 2);
}

#[actix::test]
async fn shutdown_closes_dedicated_connections_and_accounts_for_them() {
    let f = start("dedicated-shutdown", config(), SimBehavior::default()).await;
    // One holder watches `closed()` and lets go; one ignores it until later.
    let watching = f.pool.dedicated().await.unwrap();
    let closed = watching.closed();
    let holder = tokio::spawn(async move {
        closed.await;
        drop(watching);
        Instant::now()
    });
    let stubborn = f.pool.dedicated().await.unwrap();
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.server.open_connections(), 3);
    assert!(!stubborn.is_closing());

    let start = Instant::now();
    let report = f.sup.shutdown(ms(200)).await.unwrap();
    let let_go = holder.await.unwrap();
    assert!(let_go - start < ms(5), "told at once: {:?}", let_go - start);
    assert!(stubborn.is_closing());
    assert_eq!(report.connections_closed, 1, "the idle one");
    assert_eq!(
        report.still_checked_out, 1,
        "the stubborn one, at the deadline"
    );
    assert!(
        start.elapsed() >= ms(200),
        "waited for it: {:?}",
        start.elapsed()
    );
    assert_eq!(f.server.open_connections(), 1);
    drop(stubborn);
    assert_eq!(f.server.open_connections(), 0);
    let s = f.pool.stats();
    assert_eq!((s.dedicated, s.live), (0, 0), "{s:?}");
}

#[actix::test]
async fn a_shutdown_waits_for_a_dedicated_connection_let_go_before_its_deadline() {
    let f = start("dedicated-wait", config(), SimBehavior::default()).await;
    let conn = f.pool.dedicated().await.unwrap();
    let closed = conn.closed();
    let holder = tokio::spawn(async move {
        closed.await;
        // Finishes what it was doing first.
        tokio::time::sleep(ms(30)).await;
        drop(conn);
    });
    let start = Instant::now();
    let report = f.sup.shutdown(secs(5)).await.unwrap();
    let took: Duration = start.elapsed();
    holder.await.unwrap();
    assert_eq!(report.still_checked_out, 0);
    assert!(took >= ms(30) && took < ms(40), "{took:?}");
    assert_eq!(f.server.open_connections(), 0);
}

#[actix::test]
async fn soft_evict_tells_dedicated_connections_to_close() {
    let f = start("dedicated-evict", config(), SimBehavior::default()).await;
    let conn = f.pool.dedicated().await.unwrap();
    let closed = conn.closed();
    assert!(!conn.is_closing());
    let waiter = tokio::spawn(closed);
    settle().await;
    assert!(!waiter.is_finished());
    f.pool.soft_evict();
    waiter.await.unwrap();
    assert!(conn.is_closing());
    drop(conn);
    assert_eq!(f.server.open_connections(), 0);
    // A new one is not closing.
    assert!(!f.pool.dedicated().await.unwrap().is_closing());
}
