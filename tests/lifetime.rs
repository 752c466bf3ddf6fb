//! Connection lifetime: idle timeout beyond `min_idle`, maximum lifetime with jitter, and
//! expired connections never handed out.

mod support_pool;

use std::time::Duration;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::{PoolConfig, PoolStats};
use support_pool::*;

/// Check out `n` connections at once and return them all, leaving `n` idle.
async fn open_idle(f: &Fixture, n: usize) {
    let held = f.hold(n).await;
    drop(held);
    assert_eq!(f.pool.stats().idle, n);
}

#[actix::test]
async fn idle_timeout_closes_idle_connections_beyond_min_idle() {
    let f = start(
        "idle",
        PoolConfig {
            min_idle: 2,
            max_size: 8,
            idle_timeout: Some(secs(30)),
            maintenance_interval: secs(1),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    assert!(eventually(ms(100), || f.pool.stats().idle == 2).await);
    open_idle(&f, 8).await;
    assert_eq!(f.server.open_connections(), 8);

    settle_for(secs(29)).await;
    assert_eq!(
        f.server.open_connections(),
        8,
        "closed before the idle timeout"
    );
    settle_for(secs(2)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (2, 2, 6), "{s:?}");
    assert_eq!(f.server.open_connections(), 2);

    // min_idle connections stay, however long they idle.
    settle_for(secs(120)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.closed, s.created), (2, 6, 8), "{s:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn recently_used_connections_survive_the_idle_timeout() {
    let f = start(
        "idlebusy",
        PoolConfig {
            max_size: 4,
            idle_timeout: Some(secs(10)),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    open_idle(&f, 3).await;
    // Keep using one connection every 5s: the other two time out, it does not.
    let mut last_id = None;
    for _ in 0..6 {
        settle_for(secs(5)).await;
        let conn = f.pool.acquire().await.unwrap();
        if let Some(id) = last_id {
            assert_eq!(conn.id(), id, "the busy connection was replaced");
        }
        last_id = Some(conn.id());
    }
    let s = f.pool.stats();
    assert_eq!((s.idle, s.closed, s.created), (1, 2, 3), "{s:?}");
    // Then left alone past the timeout with min_idle 0: closed too.
    settle_for(secs(12)).await;
    assert_eq!(f.pool.stats().live, 0);
    f.assert_quiescent();
}

#[actix::test]
async fn no_idle_timeout_keeps_idle_connections() {
    let f = start(
        "noidle",
        PoolConfig {
            max_size: 4,
            idle_timeout: None,
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    open_idle(&f, 4).await;
    settle_for(secs(3600)).await;
    assert_eq!(f.server.open_connections(), 4);
    assert_eq!(f.pool.stats().closed, 0);
    f.assert_quiescent();
}

/// Samples the pool once per maintenance tick (half-way between ticks) for `seconds`.
async fn sample_every_tick(f: &Fixture, seconds: u64) -> Vec<PoolStats> {
    settle_for(ms(500)).await;
    let mut samples = vec![f.pool.stats()];
    for _ in 0..seconds {
        settle_for(secs(1)).await;
        samples.push(f.pool.stats());
        assert!(f.server.open_connections() <= 8);
    }
    samples
}

fn lifetime_config(jitter: Duration) -> PoolConfig {
    PoolConfig {
        min_idle: 8,
        max_size: 8,
        max_lifetime: Some(secs(60)),
        lifetime_jitter: jitter,
        maintenance_interval: secs(1),
        ..quiet_config()
    }
}

#[actix::test]
async fn max_lifetime_replaces_connections() {
    let f = start(
        "life",
        lifetime_config(Duration::ZERO),
        SimBehavior::default(),
    )
    .await;
    assert!(eventually(ms(100), || f.pool.stats().idle == 8).await);
    let samples = sample_every_tick(&f, 62).await;
    // Nothing closes before the lifetime.
    assert!(
        samples[..59].iter().all(|s| s.closed == 0),
        "{:?}",
        samples[58]
    );
    let last = samples.last().unwrap();
    assert_eq!(
        (last.closed, last.created, last.idle),
        (8, 16, 8),
        "{last:?}"
    );
    assert_eq!(f.server.open_connections(), 8, "replacements opened");
    assert_eq!(f.server.connects(), 16);
    // Without jitter they all expire together, on one tick.
    let closing_ticks = samples
        .windows(2)
        .filter(|w| w[1].closed > w[0].closed)
        .count();
    assert_eq!(
        closing_ticks, 1,
        "expiries without jitter spread over ticks"
    );
    f.assert_quiescent();
}

#[actix::test]
async fn lifetime_jitter_spreads_expiry() {
    let f = start("jitter", lifetime_config(secs(30)), SimBehavior::default()).await;
    assert!(eventually(ms(100), || f.pool.stats().idle == 8).await);
    let samples = sample_every_tick(&f, 62).await;
    // Jitter only shortens a lifetime, by up to 30s: nothing closes before 30s.
    assert!(
        samples[..29].iter().all(|s| s.closed == 0),
        "{:?}",
        samples[28]
    );
    // Every original connection is gone by 60s (replacements may have started expiring).
    let last = samples.last().unwrap();
    assert!(last.closed >= 8, "{last:?}");
    assert_eq!(last.created, last.closed + 8, "{last:?}");
    assert_eq!(last.idle, 8, "{last:?}");
    assert_eq!(f.server.open_connections(), 8);
    // And they went on different ticks: eight uniform draws over 30s.
    let closing_ticks = samples
        .windows(2)
        .filter(|w| w[1].closed > w[0].closed)
        .count();
    assert!(
        closing_ticks >= 3,
        "expiries bunched on {closing_ticks} ticks"
    );
    let most_in_one_tick = samples
        .windows(2)
        .map(|w| w[1].closed - w[0].closed)
        .max()
        .unwrap();
    assert!(most_in_one_tick < 8, "all expired on one tick");
    f.assert_quiescent();
}

#[actix::test]
async fn an_expired_connection_is_closed_when_it_comes_back() {
    let f = start(
        "expireout",
        PoolConfig {
            max_lifetime: Some(secs(10)),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let mut conn = f.pool.acquire().await.unwrap();
    settle_for(secs(11)).await;
    // Still usable by its holder: the pool does not take it away.
    conn.query("SELECT 1").await.unwrap();
    assert!(conn.age() >= secs(11));
    drop(conn);
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (0, 0, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 0);
    f.assert_quiescent();
}

#[actix::test]
async fn an_expired_idle_connection_is_not_handed_out_before_the_reaper_runs() {
    let f = start(
        "expireidle",
        PoolConfig {
            max_lifetime: Some(secs(10)),
            // No maintenance tick during the test: only checkout can notice the expiry.
            maintenance_interval: secs(3600),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let first = f.pool.acquire().await.unwrap().id();
    settle_for(secs(11)).await;
    assert_eq!(f.pool.stats().idle, 1, "not reaped yet");
    let conn = f.pool.acquire().await.unwrap();
    assert_ne!(conn.id(), first, "an expired connection was handed out");
    assert!(conn.age() < secs(1));
    drop(conn);
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed, s.created), (1, 1, 1, 2), "{s:?}");
    f.assert_quiescent();
}
