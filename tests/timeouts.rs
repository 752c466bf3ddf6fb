//! Timeouts and retries of acquire: waiting for a slot, connect attempts that stall,
//! connect retries with backoff within the acquire budget, and errors not retried.

mod support_pool;

use std::time::Duration;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::{BackendErrorKind, ConnectionConfig, Error, Phase, PoolConfig, Secret};
use support_pool::*;
use tokio::time::Instant;

fn close_to(actual: Duration, expected: Duration) -> bool {
    actual >= expected && actual <= expected + ms(5)
}

#[actix::test]
async fn acquire_times_out_waiting_while_every_connection_is_held() {
    let f = start(
        "wait",
        PoolConfig {
            max_size: 2,
            acquire_timeout: secs(3),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let t = Instant::now();
    let err = f.pool.acquire().await.unwrap_err();
    let waited = t.elapsed();
    match &err {
        Error::Timeout {
            phase: Phase::Wait,
            elapsed,
            last_error: None,
            key,
        } => {
            assert!(close_to(*elapsed, secs(3)), "elapsed {elapsed:?}");
            assert_eq!(*key, f.pool.key());
        }
        other => panic!("expected a wait timeout, got {other:?}"),
    }
    assert!(close_to(waited, secs(3)), "returned after {waited:?}");
    let s = f.pool.stats();
    assert_eq!((s.timeouts, s.waiters, s.in_use), (1, 0, 2), "{s:?}");
    assert_eq!(f.server.connect_attempts(), 2, "a waiter does not connect");

    // A shorter per-call budget wins over the pool's.
    let t = Instant::now();
    let err = f.pool.acquire_timeout(ms(250)).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    assert!(close_to(t.elapsed(), ms(250)), "{:?}", t.elapsed());
    drop((a, b));
    f.assert_quiescent();
}

#[actix::test]
async fn a_waiter_is_served_when_a_connection_comes_back_in_time() {
    let f = start(
        "waitok",
        PoolConfig {
            max_size: 1,
            acquire_timeout: secs(3),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    let a = f.pool.acquire().await.unwrap();
    let id = a.id();
    tokio::spawn(async move {
        tokio::time::sleep(secs(2)).await;
        drop(a);
    });
    let t = Instant::now();
    let b = f.pool.acquire().await.expect("served before the timeout");
    assert!(close_to(t.elapsed(), secs(2)), "{:?}", t.elapsed());
    assert_eq!(b.id(), id, "the returned connection is reused");
    drop(b);
    assert_eq!(f.pool.stats().timeouts, 0);
    f.assert_quiescent();
}

#[actix::test]
async fn stalled_connects_time_out_with_the_connect_phase_and_last_error() {
    let f = start(
        "stall",
        PoolConfig {
            acquire_timeout: secs(3),
            connect_timeout: secs(1),
            backoff_initial: ms(50),
            backoff_max: ms(100),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.stall_next_connects(100);
    let t = Instant::now();
    let err = f.pool.acquire().await.unwrap_err();
    assert!(close_to(t.elapsed(), secs(3)), "{:?}", t.elapsed());
    match &err {
        Error::Timeout {
            phase: Phase::Connect,
            last_error: Some(last),
            elapsed,
            ..
        } => {
            assert_eq!(last.kind(), BackendErrorKind::Timeout, "{last:?}");
            assert!(last.to_string().contains("timed out"), "{last}");
            assert!(close_to(*elapsed, secs(3)), "{elapsed:?}");
        }
        other => panic!("expected a connect timeout carrying the last error, got {other:?}"),
    }
    // Each attempt was cut at connect_timeout and retried: 1s + backoff, three tries at most.
    let attempts = f.server.connect_attempts();
    assert!((2..=3).contains(&attempts), "{attempts} attempts");
    assert_eq!(
        f.server.in_flight_connects(),
        0,
        "stalled attempts were dropped"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    // The last attempt was cut short by the acquire deadline, not by the connect
    // timeout: it says nothing against the server and is not counted as a connect error.
    let s = f.pool.stats();
    assert_eq!((s.timeouts, s.connect_errors), (1, attempts - 1), "{s:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn one_stalled_connect_is_retried_and_succeeds() {
    let f = start(
        "stallonce",
        PoolConfig {
            acquire_timeout: secs(3),
            connect_timeout: secs(1),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.stall_next_connects(1);
    let t = Instant::now();
    let conn = f.pool.acquire().await.expect("second attempt succeeds");
    let took = t.elapsed();
    assert!(took >= secs(1) && took < secs(2), "{took:?}");
    assert_eq!(f.server.connect_attempts(), 2);
    assert_eq!(f.server.open_connections(), 1);
    drop(conn);
    f.assert_quiescent();
}

#[actix::test]
async fn failed_connects_are_retried_with_backoff() {
    let f = start(
        "retry",
        PoolConfig {
            acquire_timeout: secs(5),
            backoff_initial: ms(50),
            backoff_max: secs(2),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.fail_next_connects(3);
    let t = Instant::now();
    let conn = f.pool.acquire().await.expect("the fourth attempt succeeds");
    let took = t.elapsed();
    assert_eq!(f.server.connect_attempts(), 4);
    assert_eq!(f.server.connects(), 1);
    // Full jitter under ceilings of 50, 100 and 200ms: at most 350ms of backoff.
    assert!(took <= ms(350), "retries took {took:?}");
    let s = f.pool.stats();
    assert_eq!((s.connect_errors, s.timeouts, s.served), (3, 0, 1), "{s:?}");
    drop(conn);
    f.assert_quiescent();
}

/// The backoff delays are drawn under growing ceilings: with a server down for a long
/// budget, the attempts thin out (many fewer than budget / initial delay).
#[actix::test]
async fn backoff_grows_while_the_server_is_down() {
    let f = start(
        "backoff",
        PoolConfig {
            acquire_timeout: secs(20),
            connect_timeout: secs(1),
            backoff_initial: ms(50),
            backoff_max: secs(2),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.go_down();
    let err = f.pool.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: Phase::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    // Without growth (50ms ceiling, mean 25ms) 20s would allow ~800 attempts; with
    // ceilings doubling to 2s (mean 1s) it is a few dozen.
    let attempts = f.server.connect_attempts();
    assert!((6..=60).contains(&attempts), "{attempts} attempts in 20s");
}

#[actix::test]
async fn retries_stop_at_the_acquire_timeout_when_the_server_is_down() {
    let f = start(
        "down",
        PoolConfig {
            acquire_timeout: secs(2),
            connect_timeout: secs(1),
            backoff_initial: ms(50),
            backoff_max: ms(500),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.go_down();
    let t = Instant::now();
    let err = f.pool.acquire().await.unwrap_err();
    let took = t.elapsed();
    assert!(close_to(took, secs(2)), "gave up after {took:?}");
    match &err {
        Error::Timeout {
            phase: Phase::Connect,
            last_error: Some(last),
            elapsed,
            ..
        } => {
            assert_eq!(last.kind(), BackendErrorKind::Connect, "{last:?}");
            assert!(last.to_string().contains("connection refused"), "{last}");
            assert!(close_to(*elapsed, secs(2)), "{elapsed:?}");
        }
        other => panic!("expected a connect timeout carrying the refusal, got {other:?}"),
    }
    let attempts = f.server.connect_attempts();
    assert!(attempts >= 3, "only {attempts} attempts in 2s");
    assert_eq!(f.pool.stats().connect_errors, attempts);
    f.assert_quiescent();

    // Back up: the next acquire succeeds at once.
    f.server.come_up();
    let conn = f.pool.acquire().await.expect("server is back");
    drop(conn);
    f.assert_quiescent();
}

#[actix::test]
async fn auth_errors_are_returned_at_once_and_not_retried() {
    let mut connection = ConnectionConfig::sim("auth");
    connection.user = Some("app".into());
    connection.password = Some(Secret::new("wrong-password"));
    let f = start_with(
        connection,
        PoolConfig {
            acquire_timeout: secs(10),
            ..quiet_config()
        },
        SimBehavior::default(),
    )
    .await;
    f.server.set_password(Some("right-password"));
    let t = Instant::now();
    let err = f.pool.acquire().await.unwrap_err();
    assert!(t.elapsed() < ms(5), "auth error took {:?}", t.elapsed());
    match &err {
        Error::Backend {
            phase: Phase::Connect,
            source,
            ..
        } => {
            assert_eq!(source.kind(), BackendErrorKind::Auth, "{source:?}");
            assert!(!source.is_retryable());
        }
        other => panic!("expected a backend auth error, got {other:?}"),
    }
    let rendered = format!("{err} {err:?}");
    assert!(!rendered.contains("wrong-password") && !rendered.contains("right-password"));
    assert_eq!(
        f.server.connect_attempts(),
        1,
        "auth errors are not retried"
    );
    let s = f.pool.stats();
    assert_eq!((s.timeouts, s.connect_errors), (0, 1), "{s:?}");
    f.assert_quiescent();
}
