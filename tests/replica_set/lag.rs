//! Lag and read-your-writes, and writes going to the primary only.

use std::time::Duration;

use crate::{default_read, ms, start_set, INTERVAL};
use poolwarden::{BackendErrorKind, CausalityToken, ReadOptions};
use tokio::time::sleep;

#[actix::test]
async fn a_lagging_replica_is_skipped_until_it_catches_up() {
    let fx = start_set("lag", 3, |c| c.max_lag = Some(ms(5))).await;
    fx.servers[1].pause_replay();
    for _ in 0..10 {
        fx.write().await;
    }
    // Not seen yet: until the next round r1 still counts as caught up.
    assert_eq!(fx.info(1).lag, Some(Duration::ZERO));
    sleep(INTERVAL).await;
    let r1 = fx.info(1);
    assert_eq!(r1.lag, Some(ms(10)), "10 writes behind, 1 ms each: {r1:?}");
    assert!(r1.usable, "lag is not ill health: {r1:?}");
    assert_eq!(fx.info(2).lag, Some(Duration::ZERO));
    assert_eq!(fx.reads(20, default_read()).await, vec![0, 0, 10, 10]);

    fx.servers[1].resume_replay();
    sleep(INTERVAL).await;
    assert_eq!(fx.info(1).lag, Some(Duration::ZERO));
    assert_eq!(fx.info(1).position, fx.info(0).position);
    assert_eq!(fx.reads(30, default_read()).await, vec![0, 10, 10, 10]);
}

#[actix::test]
async fn a_lag_within_max_lag_is_tolerated() {
    let fx = start_set("lagok", 2, |c| c.max_lag = Some(ms(5))).await;
    fx.servers[1].pause_replay();
    for _ in 0..5 {
        fx.write().await;
    }
    sleep(INTERVAL).await;
    assert_eq!(fx.info(1).lag, Some(ms(5)));
    assert_eq!(fx.reads(10, default_read()).await, vec![0, 5, 5]);
}

#[actix::test]
async fn read_your_writes_goes_only_to_members_past_the_token() {
    let fx = start_set("ryw", 3, |_| {}).await;
    assert_eq!(fx.primary().position(), 0);
    fx.servers[1].pause_replay();
    let (key, token) = fx.write().await;
    assert_eq!(key, fx.keys[0]);
    assert_eq!(
        token,
        CausalityToken(1),
        "the primary's position after one INSERT"
    );
    let after = ReadOptions {
        after: Some(token),
        ..ReadOptions::default()
    };
    // No replica is known to have replayed it yet: the primary serves it.
    assert_eq!(fx.reads(4, after).await, vec![4, 0, 0, 0]);
    // Tokenless reads are not held back.
    assert_eq!(fx.reads(3, default_read()).await, vec![0, 1, 1, 1]);

    sleep(INTERVAL).await;
    assert_eq!(fx.info(1).position, Some(0), "r1's replay is paused");
    assert_eq!(fx.info(2).position, Some(1));
    // r2 and r3 replayed past it; r1 did not and gets none.
    assert_eq!(fx.reads(10, after).await, vec![0, 0, 5, 5]);

    fx.servers[1].resume_replay();
    sleep(INTERVAL).await;
    assert_eq!(fx.reads(9, after).await, vec![0, 3, 3, 3]);
    // A token from the future: nobody has it, so the primary.
    let future = ReadOptions {
        after: Some(CausalityToken(99)),
        ..ReadOptions::default()
    };
    assert_eq!(fx.reads(2, future).await, vec![2, 0, 0, 0]);
}

#[actix::test]
async fn writes_go_to_the_primary_and_replicas_refuse_them() {
    let fx = start_set("writes", 2, |_| {}).await;
    for n in 1..=5 {
        let (key, token) = fx.write().await;
        assert_eq!(key, fx.keys[0]);
        assert_eq!(token, CausalityToken(n));
    }
    assert_eq!(fx.primary().position(), 5);
    let mut conn = fx.set.read().await.unwrap();
    let err = conn.query("INSERT INTO t VALUES (2)").await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Query);
    assert_eq!(fx.primary().position(), 5);
}
