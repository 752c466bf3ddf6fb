//! Pool sizing: warm-up to `min_idle`, the `max_size` cap under load, overflow
//! connections, explicit warming and run-time resizing.

mod support_pool;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::{Error, PoolConfig};
use support_pool::*;

fn latency(connect: u64, query: u64) -> SimBehavior {
    SimBehavior {
        connect_latency: ms(connect),
        query_latency: ms(query),
        ..SimBehavior::default()
    }
}

#[actix::test]
async fn warms_up_to_min_idle_at_start_and_stays_there() {
    let f = start(
        "warmup",
        PoolConfig {
            min_idle: 3,
            max_size: 5,
            ..quiet_config()
        },
        latency(20, 0),
    )
    .await;
    // Nothing is acquired: the actor opens min_idle connections on its own.
    assert!(
        eventually(ms(500), || f.pool.stats().idle == 3).await,
        "pool did not warm up: {:?}",
        f.pool.stats()
    );
    assert_eq!(f.server.open_connections(), 3);
    // Several maintenance ticks later it has not opened more than min_idle.
    settle_for(secs(5)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.created), (3, 3, 3), "{s:?}");
    assert_eq!(f.server.open_connections(), 3);
    assert_eq!(f.server.connects(), 3);
    assert_eq!(s.served, 0);
    f.assert_quiescent();
}

/// Connects slower than the maintenance tick: the ticks that come while the warm-up is
/// still connecting must not start another batch.
#[actix::test]
async fn slow_warm_up_does_not_overshoot_min_idle() {
    let f = start(
        "slowwarm",
        PoolConfig {
            min_idle: 3,
            max_size: 10,
            connect_timeout: secs(5),
            maintenance_interval: secs(1),
            ..quiet_config()
        },
        latency(2500, 0),
    )
    .await;
    settle_for(secs(10)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.created), (3, 3), "{s:?}");
    assert_eq!(f.server.connect_attempts(), 3);
    assert_eq!(f.server.open_connections(), 3);
    f.assert_quiescent();
}

/// While the server is down, background refills keep retrying, but never more than
/// `min_idle` connects at once: the ticks do not pile up batches on a dead server.
#[actix::test]
async fn refill_against_a_dead_server_does_not_pile_up_connects() {
    let f = start(
        "deadrefill",
        PoolConfig {
            min_idle: 2,
            max_size: 10,
            connect_timeout: secs(5),
            maintenance_interval: secs(1),
            ..quiet_config()
        },
        latency(0, 0),
    )
    .await;
    f.server.go_down();
    // Sample how many connect loops (attempts and backoff waits) run at once.
    let mut peak = 0;
    for _ in 0..20_000 {
        peak = peak.max(f.pool.stats().connecting);
        tokio::time::sleep(ms(1)).await;
    }
    assert!(peak >= 1, "no refill ran against the dead server");
    assert!(peak <= 2, "{peak} connect loops at once for min_idle 2");
    assert_eq!(f.pool.stats().live, 0);
    // Back up: the next ticks warm it to min_idle and no further.
    f.server.come_up();
    settle_for(secs(10)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live), (2, 2), "{s:?}");
    assert_eq!(f.server.open_connections(), 2);
    f.assert_quiescent();
}

#[actix::test]
async fn refill_tops_idle_back_up_to_min_idle() {
    let f = start(
        "refill",
        PoolConfig {
            min_idle: 2,
            max_size: 5,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    assert!(eventually(ms(100), || f.pool.stats().idle == 2).await);
    f.server.kill_all();
    // The next maintenance tick closes the dead ones and opens replacements.
    settle_for(ms(1100)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.created, s.closed), (2, 2, 4, 2), "{s:?}");
    assert_eq!(f.server.open_connections(), 2);
    f.assert_quiescent();
}

/// Many tasks hammer a pool whose refill runs often: the server never sees more than
/// `max_size` connections from it, and the load does reach the cap.
#[actix::test]
async fn max_size_is_never_exceeded_under_load() {
    const MAX: usize = 4;
    let f = start(
        "load",
        PoolConfig {
            min_idle: 2,
            max_size: MAX as u32,
            maintenance_interval: ms(3),
            idle_timeout: Some(ms(20)),
            acquire_timeout: secs(30),
            ..quiet_config()
        },
        latency(2, 1),
    )
    .await;
    let peak = Arc::new(AtomicUsize::new(0));
    let server = f.server.clone();
    let stop = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (peak, stop, server, pool) =
            (peak.clone(), stop.clone(), server.clone(), f.pool.clone());
        tokio::spawn(async move {
            while stop.load(Ordering::Relaxed) == 0 {
                peak.fetch_max(server.open_connections(), Ordering::Relaxed);
                peak.fetch_max(pool.stats().live, Ordering::Relaxed);
                tokio::time::sleep(ms(1)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for t in 0..24u64 {
        let (pool, server, peak) = (f.pool.clone(), server.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40u64 {
                let mut conn = pool.acquire().await.expect("acquire under load");
                peak.fetch_max(server.open_connections(), Ordering::Relaxed);
                conn.query("SELECT 1").await.unwrap();
                drop(conn);
                peak.fetch_max(server.open_connections(), Ordering::Relaxed);
                // Bursty load: pauses of varying length let the pool drain and refill.
                tokio::time::sleep(ms((t * 7 + i * 13) % 40)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(1, Ordering::Relaxed);
    monitor.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= MAX,
        "{peak} connections open at once, max_size is {MAX}"
    );
    assert_eq!(
        peak, MAX,
        "the load never reached max_size: the test proves nothing"
    );
    assert_eq!(f.pool.stats().served, 24 * 40);
    f.assert_quiescent();
}

/// Warming (explicit or by the maintenance tick) while connections are checked out
/// counts them: idle + checked out never goes past `max_size`.
#[actix::test]
async fn warming_counts_checked_out_connections() {
    let f = start(
        "warmcap",
        PoolConfig {
            min_idle: 2,
            max_size: 2,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    assert!(eventually(ms(100), || f.pool.stats().idle == 2).await);
    let held = f.pool.acquire().await.unwrap();
    assert_eq!(f.pool.stats().idle, 1);
    // One idle, one out, max_size 2: there is no room for another connection.
    let opened = f.pool.warm(2).await.unwrap();
    assert_eq!(opened, 0, "warm opened a connection past max_size");
    assert_eq!(f.server.open_connections(), 2);
    // The maintenance tick's refill must not either.
    settle_for(secs(3)).await;
    assert_eq!(f.server.open_connections(), 2, "{:?}", f.pool.stats());
    assert_eq!(f.pool.stats().live, 2);
    drop(held);
    settle().await;
    assert_eq!(f.pool.stats().idle, 2);
    f.assert_quiescent();
}

#[actix::test]
async fn overflow_connections_are_closed_on_release() {
    let f = start(
        "overflow",
        PoolConfig {
            max_size: 2,
            max_overflow: 2,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let mut held = f.hold(4).await;
    assert_eq!(f.server.open_connections(), 4);
    // Capacity is max_size + max_overflow: a fifth waits and times out.
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");

    // The first two returned are above max_size: closed, not kept idle.
    held.pop();
    assert_eq!(f.server.open_connections(), 3);
    assert_eq!(f.pool.stats().idle, 0);
    held.pop();
    assert_eq!(f.server.open_connections(), 2);
    assert_eq!(f.pool.stats().idle, 0);
    // The rest are within max_size: kept.
    held.clear();
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (2, 2, 2), "{s:?}");
    assert_eq!(f.server.open_connections(), 2);
    f.assert_quiescent();
}

/// Under load an overflowing pool opens up to `max_size + max_overflow`, never more, and
/// settles back to `max_size` once the load is gone.
#[actix::test]
async fn overflow_under_load_stays_within_capacity_and_shrinks_back() {
    let f = start(
        "overflowload",
        PoolConfig {
            max_size: 2,
            max_overflow: 2,
            acquire_timeout: secs(30),
            ..quiet_config()
        },
        latency(3, 2),
    )
    .await;
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let (pool, server, peak) = (f.pool.clone(), f.server.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                let mut conn = pool.acquire().await.expect("acquire under load");
                peak.fetch_max(server.open_connections(), Ordering::Relaxed);
                conn.query("SELECT 1").await.unwrap();
                drop(conn);
                tokio::time::sleep(ms((t * 5 + i * 11) % 17)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = peak.load(Ordering::Relaxed);
    assert_eq!(peak, 4, "peak {peak}: overflow unused or capacity exceeded");
    let s = f.pool.stats();
    assert!(
        s.live <= 2,
        "overflow connections kept after the load: {s:?}"
    );
    assert!(s.closed > 0, "{s:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn without_overflow_max_size_is_the_capacity() {
    let f = start(
        "nooverflow",
        PoolConfig {
            max_size: 2,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    assert_eq!(f.server.open_connections(), 2);
    drop((a, b));
    assert_eq!(f.pool.stats().idle, 2);
    f.assert_quiescent();
}

#[actix::test]
async fn warm_opens_up_to_target_capped_at_max_size() {
    let f = start(
        "warm",
        PoolConfig {
            max_size: 5,
            ..quiet_config()
        },
        latency(10, 0),
    )
    .await;
    settle().await;
    assert_eq!(f.server.open_connections(), 0, "min_idle 0 warms nothing");
    assert_eq!(f.pool.warm(3).await.unwrap(), 3);
    assert_eq!(f.pool.stats().idle, 3);
    assert_eq!(f.server.open_connections(), 3);
    assert_eq!(f.pool.warm(3).await.unwrap(), 0, "already 3 idle");
    assert_eq!(f.pool.warm(10).await.unwrap(), 2, "capped at max_size");
    assert_eq!(f.pool.stats().idle, 5);
    assert_eq!(f.server.open_connections(), 5);
    // min_idle is 0 and there is no idle timeout: they stay.
    settle_for(secs(3)).await;
    assert_eq!(f.server.open_connections(), 5);
    f.assert_quiescent();
}

#[actix::test]
async fn resize_grow_admits_more_and_serves_a_queued_waiter() {
    let f = start(
        "grow",
        PoolConfig {
            max_size: 2,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle().await;
    assert_eq!(f.pool.stats().waiters, 1);
    f.pool.resize(4, 0).await.unwrap();
    // The queued acquire gets one of the new slots without anything being returned.
    let w = tokio::time::timeout(ms(100), waiter)
        .await
        .expect("waiter served after growing")
        .unwrap()
        .unwrap();
    assert!(w.id() != a.id() && w.id() != b.id());
    let c = f.pool.acquire_timeout(ms(100)).await.expect("fourth slot");
    assert_eq!(f.pool.stats().max_size, 4);
    assert_eq!(f.server.open_connections(), 4);
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    drop((a, b, c, w));
    f.assert_quiescent();
}

#[actix::test]
async fn resize_shrink_closes_idle_surplus_now() {
    let f = start(
        "shrinkidle",
        PoolConfig {
            max_size: 4,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    assert_eq!(f.pool.warm(4).await.unwrap(), 4);
    assert_eq!(f.server.open_connections(), 4);
    f.pool.resize(2, 0).await.unwrap();
    assert_eq!(f.server.open_connections(), 2);
    assert_eq!(f.pool.stats().idle, 2);
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    assert_eq!(
        f.server.connects(),
        4,
        "the shrunk pool reuses what it kept"
    );
    drop((a, b));
    f.assert_quiescent();
}

#[actix::test]
async fn resize_shrink_closes_checked_out_surplus_as_it_returns() {
    let f = start(
        "shrinkout",
        PoolConfig {
            max_size: 4,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let mut held = f.hold(4).await;
    f.pool.resize(2, 0).await.unwrap();
    // Checked out connections are not taken away from their users.
    assert_eq!(f.server.open_connections(), 4);
    held.pop();
    assert_eq!(
        f.server.open_connections(),
        3,
        "first surplus closed on return"
    );
    held.pop();
    assert_eq!(
        f.server.open_connections(),
        2,
        "second surplus closed on return"
    );
    assert_eq!(f.pool.stats().idle, 0);
    held.clear();
    assert_eq!(f.pool.stats().idle, 2, "within the new max_size: kept");
    assert_eq!(f.server.open_connections(), 2);

    // And the pool now serves two at a time.
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    drop((a, b));
    assert_eq!(f.server.connects(), 4);
    f.assert_quiescent();
}

/// Two connections out, two idle, shrink to 2: the two idle ones are the surplus and go
/// now; the two in use are kept when they come back.
#[actix::test]
async fn resize_shrink_with_mixed_idle_and_checked_out() {
    let f = start(
        "shrinkmixed",
        PoolConfig {
            max_size: 4,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    assert_eq!(f.pool.warm(4).await.unwrap(), 4);
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    f.pool.resize(2, 0).await.unwrap();
    assert_eq!(
        f.server.open_connections(),
        2,
        "idle surplus not closed at resize: {:?}",
        f.pool.stats()
    );
    let (ida, idb) = (a.id(), b.id());
    drop((a, b));
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live), (2, 2), "{s:?}");
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let mut ids = [a.id(), b.id()];
    ids.sort();
    let mut want = [ida, idb];
    want.sort();
    assert_eq!(ids, want, "the connections in use at the resize were kept");
    drop((a, b));
    f.assert_quiescent();
}

#[actix::test]
async fn resize_grow_after_shrink_cancels_pending_shrinkage() {
    let f = start(
        "regrow",
        PoolConfig {
            max_size: 4,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let mut held = f.hold(4).await;
    f.pool.resize(2, 0).await.unwrap();
    f.pool.resize(4, 0).await.unwrap();
    held.clear();
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.max_size), (4, 4, 4), "{s:?}");
    let mut again = Vec::new();
    for _ in 0..4 {
        again.push(
            f.pool
                .acquire_timeout(ms(100))
                .await
                .expect("4 slots again"),
        );
    }
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    drop(again);
    assert_eq!(f.server.connects(), 4);
    f.assert_quiescent();
}

#[actix::test]
async fn resize_rejects_invalid_sizes() {
    let f = start("badresize", quiet_config(), SimBehavior::default()).await;
    let err = f.pool.resize(0, 0).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref e) if e.field == "resize.max_size"),
        "{err:?}"
    );
    let err = f.pool.resize(2, 3).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref e) if e.field == "resize.min_idle"),
        "{err:?}"
    );
    assert_eq!(f.pool.stats().max_size, 4);
}
