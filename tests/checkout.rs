//! What happens to a connection between two borrowers: test on checkout (with its bypass
//! window), test on return, reset on return, and discarding.

mod support_pool;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::PoolConfig;
use support_pool::*;
use tokio::time::Instant;

fn checked() -> PoolConfig {
    PoolConfig {
        test_on_checkout: true,
        checkout_bypass: ms(500),
        ..quiet_config()
    }
}

fn failing_queries() -> SimBehavior {
    SimBehavior {
        query_failure_rate: 1.0,
        ..SimBehavior::default()
    }
}

#[actix::test]
async fn a_recently_used_connection_is_not_probed_an_older_one_is() {
    let f = start("bypass", checked(), SimBehavior::default()).await;
    let id = f.pool.acquire().await.unwrap().id();
    assert_eq!(f.server.queries(), 0, "a fresh connection is not probed");

    settle_for(ms(400)).await;
    let conn = f.pool.acquire().await.unwrap();
    assert_eq!(conn.id(), id);
    assert_eq!(
        f.server.queries(),
        0,
        "used 400ms ago, within the 500ms bypass"
    );
    drop(conn);

    settle_for(ms(600)).await;
    let conn = f.pool.acquire().await.unwrap();
    assert_eq!(conn.id(), id, "a healthy connection passes its probe");
    assert_eq!(f.server.queries(), 1, "idle 600ms: probed once");
    drop(conn);

    // The bypass counts from the last return, not from the first use.
    settle_for(ms(100)).await;
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.server.queries(), 1);
    f.assert_quiescent();
}

#[actix::test]
async fn without_test_on_checkout_nothing_is_probed() {
    let f = start("noprobe", quiet_config(), SimBehavior::default()).await;
    drop(f.pool.acquire().await.unwrap());
    settle_for(secs(60)).await;
    drop(f.pool.acquire().await.unwrap());
    assert_eq!(f.server.queries(), 0);
    f.assert_quiescent();
}

#[actix::test]
async fn a_killed_idle_connection_is_replaced_not_handed_out() {
    let f = start("killed", checked(), SimBehavior::default()).await;
    let id = f.pool.acquire().await.unwrap().id();
    assert!(f.server.kill_connection(id));
    // Even inside the bypass window a connection known to be dead is not reused.
    let mut conn = f.pool.acquire().await.unwrap();
    assert_ne!(conn.id(), id);
    assert!(!conn.is_killed());
    conn.query("SELECT 1").await.expect("the replacement works");
    let new_id = conn.id();
    drop(conn);

    // Past the bypass window, the same.
    assert!(f.server.kill_connection(new_id));
    settle_for(secs(1)).await;
    let mut conn = f.pool.acquire().await.unwrap();
    assert!(conn.id() != id && conn.id() != new_id);
    conn.query("SELECT 1").await.expect("the replacement works");
    drop(conn);
    let s = f.pool.stats();
    assert_eq!((s.closed, s.created, s.live), (2, 3, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 1);
    f.assert_quiescent();
}

#[actix::test]
async fn a_connection_failing_its_probe_is_closed_and_replaced() {
    let f = start("probefail", checked(), SimBehavior::default()).await;
    let id = f.pool.acquire().await.unwrap().id();
    settle_for(secs(1)).await;
    // Only the probe can tell: the connection is not marked broken.
    f.server.set_behavior(failing_queries());
    let conn = f.pool.acquire().await.unwrap();
    assert_ne!(
        conn.id(),
        id,
        "a connection that failed its probe was handed out"
    );
    assert_eq!(
        f.server.queries(),
        1,
        "probed once, then a fresh one, unprobed"
    );
    drop(conn);
    let s = f.pool.stats();
    assert_eq!((s.closed, s.created, s.live), (1, 2, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 1);
    f.assert_quiescent();
}

#[actix::test]
async fn a_stalled_probe_is_cut_at_the_probe_timeout_and_the_connection_replaced() {
    let f = start(
        "probestall",
        PoolConfig {
            probe_timeout: secs(1),
            acquire_timeout: secs(5),
            ..checked()
        },
        SimBehavior::default(),
    )
    .await;
    let id = f.pool.acquire().await.unwrap().id();
    settle_for(secs(1)).await;
    f.server.stall_next_probes(1);
    let t = Instant::now();
    let conn = f.pool.acquire().await.unwrap();
    assert!(
        t.elapsed() >= secs(1) && t.elapsed() < secs(2),
        "{:?}",
        t.elapsed()
    );
    assert_ne!(conn.id(), id);
    drop(conn);
    assert_eq!(f.server.open_connections(), 1);
    assert_eq!(f.pool.stats().closed, 1);
    f.assert_quiescent();
}

#[actix::test]
async fn test_on_return_probes_returned_connections() {
    let f = start(
        "onreturn",
        PoolConfig {
            max_size: 1,
            test_on_return: true,
            ..quiet_config()
        },
        SimBehavior {
            query_latency: ms(100),
            ..SimBehavior::default()
        },
    )
    .await;
    let id = f.pool.acquire().await.unwrap().id();
    // The return probe holds the slot: the next borrower waits for it to finish.
    let t = Instant::now();
    let conn = f.pool.acquire().await.unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= ms(100) && waited <= ms(105),
        "the next borrower did not wait for the probe: {waited:?}"
    );
    assert_eq!(conn.id(), id);
    assert_eq!(f.server.queries(), 1);

    // A connection failing its return probe is closed.
    f.server.set_behavior(SimBehavior {
        query_failure_rate: 1.0,
        ..SimBehavior::default()
    });
    drop(conn);
    settle().await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (0, 0, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 0);
    f.assert_quiescent();
}

#[actix::test]
async fn without_test_on_return_returns_are_not_probed() {
    let f = start("noreturn", quiet_config(), SimBehavior::default()).await;
    drop(f.pool.acquire().await.unwrap());
    settle().await;
    assert_eq!(f.server.queries(), 0);
    assert_eq!(f.pool.stats().idle, 1);
    f.assert_quiescent();
}

fn one_connection(reset_on_return: bool) -> PoolConfig {
    PoolConfig {
        max_size: 1,
        reset_on_return,
        probe_timeout: secs(1),
        ..quiet_config()
    }
}

#[actix::test]
async fn an_open_transaction_is_rolled_back_before_reuse() {
    let f = start("reset", one_connection(true), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    conn.query("BEGIN").await.unwrap();
    assert!(conn.in_transaction());
    drop(conn);
    let conn = f.pool.acquire().await.unwrap();
    assert_eq!(conn.id(), id, "the connection is reused");
    assert!(
        !conn.in_transaction(),
        "the next borrower got a dirty connection"
    );
    assert_eq!(f.server.queries(), 2, "BEGIN and the ROLLBACK of the reset");
    drop(conn);
    // A clean connection needs no reset.
    settle().await;
    assert_eq!(f.server.queries(), 2);
    f.assert_quiescent();
}

#[actix::test]
async fn without_reset_on_return_the_transaction_leaks_to_the_next_borrower() {
    let f = start("noreset", one_connection(false), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    conn.query("BEGIN").await.unwrap();
    drop(conn);
    let conn = f.pool.acquire().await.unwrap();
    assert!(
        conn.in_transaction(),
        "reset_on_return = false must not reset"
    );
    drop(conn);
}

#[actix::test]
async fn a_connection_whose_reset_stalls_is_closed() {
    let f = start("resetstall", one_connection(true), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    conn.query("BEGIN").await.unwrap();
    f.server.stall_next_resets(1);
    drop(conn);
    // The slot stays taken until the reset gives up at the probe timeout.
    let t = Instant::now();
    let conn = f.pool.acquire().await.unwrap();
    let waited = t.elapsed();
    assert!(waited >= secs(1) && waited <= secs(1) + ms(5), "{waited:?}");
    assert_ne!(conn.id(), id, "a connection whose reset failed was reused");
    assert!(!conn.in_transaction());
    drop(conn);
    let s = f.pool.stats();
    assert_eq!((s.closed, s.created, s.live), (1, 2, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 1);
    f.assert_quiescent();
}

#[actix::test]
async fn a_connection_whose_reset_fails_is_closed() {
    let f = start("resetfail", one_connection(true), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    conn.query("BEGIN").await.unwrap();
    f.server.set_behavior(failing_queries());
    drop(conn);
    settle().await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (0, 0, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 0);
    f.server.set_behavior(SimBehavior::default());
    let conn = f.pool.acquire().await.unwrap();
    assert_ne!(conn.id(), id);
    drop(conn);
    f.assert_quiescent();
}

#[actix::test]
async fn a_connection_whose_reset_panics_is_closed_and_the_pool_recovers() {
    let f = start("resetpanic", one_connection(true), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    conn.query("BEGIN").await.unwrap();
    f.server.panic_on_next_resets(1);
    drop(conn);
    assert!(
        eventually(secs(1), || f.pool.stats().restarts == 1).await,
        "{:?}",
        f.pool.stats()
    );
    let s = f.pool.stats();
    assert_eq!((s.panics, s.live, s.idle), (1, 0, 0), "{s:?}");
    assert_eq!(f.server.open_connections(), 0);
    let conn = f
        .pool
        .acquire()
        .await
        .expect("the pool serves after the restart");
    assert_ne!(conn.id(), id);
    assert!(!conn.in_transaction());
    drop(conn);
    f.assert_quiescent();
}

#[actix::test]
async fn a_killed_connection_in_a_transaction_is_closed_without_a_reset() {
    let f = start("resetkilled", one_connection(true), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    conn.query("BEGIN").await.unwrap();
    assert!(f.server.kill_connection(conn.id()));
    drop(conn);
    settle().await;
    assert_eq!(
        f.server.queries(),
        1,
        "no reset was tried on a dead connection"
    );
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (0, 0, 1), "{s:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn discard_closes_the_connection_and_frees_its_slot() {
    let f = start("discard", one_connection(true), SimBehavior::default()).await;
    let mut conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    conn.query("BEGIN").await.unwrap();
    conn.discard();
    assert_eq!(f.server.open_connections(), 0);
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.in_use, s.closed), (0, 0, 0, 1), "{s:?}");
    // No reset for a discarded connection, and its slot is free at once.
    let conn = f
        .pool
        .acquire_timeout(ms(10))
        .await
        .expect("the slot was freed");
    assert_ne!(conn.id(), id);
    assert_eq!(f.server.queries(), 1);
    drop(conn);
    assert_eq!(f.server.connects(), 2);
    f.assert_quiescent();
}

#[actix::test]
async fn release_returns_the_connection_for_reuse() {
    let f = start("release", quiet_config(), SimBehavior::default()).await;
    let conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    conn.release();
    let s = f.pool.stats();
    assert_eq!((s.idle, s.in_use, s.live), (1, 0, 1), "{s:?}");
    assert_eq!(f.pool.acquire().await.unwrap().id(), id);
    f.assert_quiescent();
}

#[actix::test]
async fn the_release_message_returns_or_closes_a_connection_through_the_pool_actor() {
    use poolwarden::messages::Release;
    let f = start("release-msg", quiet_config(), SimBehavior::default()).await;
    let actor = f.pool.actor().expect("the pool actor runs");

    let conn = f.pool.acquire().await.unwrap();
    let id = conn.id();
    actor
        .send(Release {
            conn,
            broken: false,
        })
        .await
        .unwrap();
    let s = f.pool.stats();
    assert_eq!((s.idle, s.in_use, s.closed), (1, 0, 0), "kept: {s:?}");
    let conn = f.pool.acquire().await.unwrap();
    assert_eq!(conn.id(), id, "the released connection is reused");

    actor.send(Release { conn, broken: true }).await.unwrap();
    let s = f.pool.stats();
    assert_eq!(
        (s.idle, s.in_use, s.live, s.closed),
        (0, 0, 0, 1),
        "broken: closed, slot freed: {s:?}"
    );
    assert_eq!(f.server.open_connections(), 0);
    assert_ne!(f.pool.acquire().await.unwrap().id(), id);
    f.assert_quiescent();
}
