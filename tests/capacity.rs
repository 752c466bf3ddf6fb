//! Errors that say nothing against the endpoint, on the simulated backend: a server that
//! accepts fewer connections than the pool's `max_size` ("too many connections": the pool
//! serves with what it has, shrinks its effective size, grows back with backoff, never
//! `CircuitOpen`), and connects refused for what was asked (an unknown database, a wrong
//! password: answered at once, not retried, the breaker untouched).

mod support_pool;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use poolwarden::backends::sim::{SimBackend, SimBehavior};
use poolwarden::{
    BackendErrorKind, BreakerConfig, BreakerState, ConnectionConfig, Error, Phase, PoolConfig,
    PoolHandle, PooledConnection,
};
use support_pool::*;
use tokio::time::Instant;

fn config() -> PoolConfig {
    PoolConfig {
        max_size: 8,
        acquire_timeout: secs(2),
        // The breaker as shipped: capacity must not trip it.
        breaker: BreakerConfig::default(),
        ..quiet_config()
    }
}

fn one_ms_queries() -> SimBehavior {
    SimBehavior {
        query_latency: ms(1),
        ..SimBehavior::default()
    }
}

/// `tasks` loop acquire + one query for `run`; answers (done, errors by kind).
async fn load(
    pool: &PoolHandle<SimBackend>,
    tasks: usize,
    run: std::time::Duration,
) -> (u64, Vec<Error>) {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + run;
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (pool, done) = (pool.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while Instant::now() < until {
                    match pool.acquire().await {
                        Ok(mut conn) => match conn.query("SELECT 1").await {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("query failed: {e}"),
                        },
                        Err(e) => errors.push(e),
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.unwrap());
    }
    (done.load(Ordering::Relaxed), errors)
}

#[actix::test]
async fn a_server_that_accepts_fewer_than_max_size_is_served_with_what_it_accepted() {
    let f = start("cap2", config(), one_ms_queries()).await;
    // The reference: a pool sized to the limit, same load, same server behaviour.
    let sized = f
        .sup
        .pool_with(
            ConnectionConfig::sim("cap2-sized"),
            PoolConfig {
                max_size: 2,
                ..config()
            },
        )
        .await
        .unwrap();
    f.backend
        .server("cap2-sized:1")
        .set_behavior(one_ms_queries());
    let (reference, _) = load(&sized, 16, secs(5)).await;

    f.server.set_max_connections(Some(2));
    let (done, errors) = load(&f.pool, 16, secs(5)).await;
    assert!(
        errors.is_empty(),
        "no caller errors: {:?}",
        &errors[..errors.len().min(3)]
    );
    let s = f.pool.stats();
    assert_eq!(s.breaker, BreakerState::Closed, "{s:?}");
    assert_eq!((s.effective_size, s.live), (2, 2), "{s:?}");
    assert!(
        done * 10 >= reference * 8,
        "{done} queries: under 0.8x of a pool sized to the limit ({reference})"
    );
    // Growth is tried with backoff (250ms, doubling): a handful of refused connects in 5s,
    // not one per acquire.
    let refused = f.server.connect_attempts() - f.server.connects();
    assert!(refused <= 12, "{refused} refused connects");

    // The server takes more again: the pool grows back to its size.
    f.server.set_max_connections(None);
    let (_, errors) = load(&f.pool, 16, secs(40)).await;
    assert!(errors.is_empty());
    let s = f.pool.stats();
    assert_eq!(s.effective_size, 8, "{s:?}");
    assert!(s.live > 2, "{s:?}");
    f.assert_quiescent();
}

/// Two connections held, the server accepting no more than those two, and a caller
/// waiting for one (it holds a slot) after the refusal (100 ms on).
async fn full_server_with_a_waiter(
    name: &str,
    config: PoolConfig,
) -> (
    Fixture,
    Vec<PooledConnection<SimBackend>>,
    tokio::task::JoinHandle<Result<PooledConnection<SimBackend>, Error>>,
) {
    let f = start(name, config, one_ms_queries()).await;
    let held = f.hold(2).await;
    f.server.set_max_connections(Some(2));
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle_for(ms(100)).await;
    assert_eq!(f.pool.stats().in_use, 2);
    (f, held, waiter)
}

#[actix::test]
async fn a_full_server_makes_callers_wait_for_a_returned_connection_not_fail() {
    let (f, held, waiter) = full_server_with_a_waiter("capwait", config()).await;
    assert_eq!(f.pool.stats().effective_size, 2);
    let t = Instant::now();
    let id = held[0].id();
    drop(held);
    let conn = waiter
        .await
        .unwrap()
        .expect("served by a returned connection");
    assert_eq!(t.elapsed(), std::time::Duration::ZERO);
    assert!(conn.id() == id || f.pool.stats().live == 2);
}

/// The same with the pool past its `max_size` on overflow: the connection returned is
/// handed to the caller waiting for one (it holds a slot), not closed as surplus.
#[actix::test]
async fn a_full_server_hands_a_returned_overflow_connection_to_the_waiting_caller() {
    let config = PoolConfig {
        max_size: 1,
        max_overflow: 2,
        ..config()
    };
    let (f, mut held, waiter) = full_server_with_a_waiter("capoverflow", config).await;
    let s = f.pool.stats();
    assert_eq!((s.live, s.effective_size), (2, 1), "{s:?}");
    let t = Instant::now();
    let id = held[1].id();
    drop(held.pop());
    let conn = waiter
        .await
        .unwrap()
        .expect("served by a returned connection");
    assert_eq!(t.elapsed(), std::time::Duration::ZERO);
    assert_eq!(conn.id(), id, "the returned connection, not a new one");
    assert_eq!(f.pool.stats().closes.overflow, 0);
}

/// A connection closed while the server is full (discarded, broken) leaves room for one:
/// a caller waiting for room connects at once, not at the next try to grow.
#[actix::test]
async fn a_full_server_lets_a_waiting_caller_connect_as_soon_as_a_connection_closes() {
    let (f, mut held, waiter) = full_server_with_a_waiter("capclosed", config()).await;
    assert_eq!(f.pool.stats().effective_size, 2);
    let (t, connects) = (Instant::now(), f.server.connects());
    held.pop().unwrap().discard();
    let conn = waiter.await.unwrap().expect("served by a new connection");
    assert_eq!(t.elapsed(), std::time::Duration::ZERO);
    assert_eq!(f.server.connects(), connects + 1);
    assert_eq!(f.server.open_connections(), 2);
    drop((conn, held));
}

#[actix::test]
async fn a_full_server_and_nothing_coming_back_ends_at_the_deadline_naming_why() {
    let f = start("capfull", config(), one_ms_queries()).await;
    let _held = f.hold(2).await;
    f.server.set_max_connections(Some(2));
    let t = Instant::now();
    let err = f.pool.acquire().await.unwrap_err();
    assert!(t.elapsed() <= secs(2) + ms(1), "{:?}", t.elapsed());
    match &err {
        Error::Timeout {
            phase: Phase::Wait,
            last_error: Some(e),
            ..
        } => assert_eq!(e.kind(), BackendErrorKind::Capacity, "{e}"),
        other => panic!("expected a wait timeout naming the capacity refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("too many clients"), "{err}");
    assert_eq!(f.pool.stats().breaker, BreakerState::Closed);
}

#[actix::test]
async fn a_refused_request_is_answered_at_once_and_never_counts_against_the_endpoint() {
    let f = start("config", config(), SimBehavior::default()).await;
    for kind in [BackendErrorKind::Config, BackendErrorKind::Auth] {
        for _ in 0..2 * BreakerConfig::default().failure_threshold {
            let attempts = f.server.connect_attempts();
            f.server.fail_next_connects_as(kind, 1);
            let t = Instant::now();
            let err = f.pool.acquire().await.unwrap_err();
            assert_eq!(t.elapsed(), std::time::Duration::ZERO, "not retried");
            assert_eq!(f.server.connect_attempts(), attempts + 1);
            match err {
                Error::Backend {
                    phase: Phase::Connect,
                    source,
                    ..
                } => assert_eq!(source.kind(), kind),
                other => panic!("expected the {kind:?} error, got {other:?}"),
            }
        }
    }
    assert_eq!(f.pool.stats().breaker, BreakerState::Closed);
    drop(f.pool.acquire().await.expect("the endpoint is fine"));
    f.assert_quiescent();
}

/// Fails the test run (instead of hanging it) when `body` does not finish within `limit`
/// of real time: a caller that spins never lets paused tokio time advance, so no tokio
/// timer can catch it.
async fn within_real_time<T>(
    limit: std::time::Duration,
    body: impl std::future::Future<Output = T>,
) -> T {
    let (done, watch) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watch.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("no progress in {limit:?} of real time: a caller spins without waiting");
            std::process::exit(101);
        }
    });
    let out = body.await;
    let _ = done.send(());
    out
}

#[actix::test]
async fn callers_behind_a_try_to_grow_wait_for_it_to_end_without_spinning() {
    within_real_time(secs(60), async {
        let f = start(
            "capgrow",
            config(),
            SimBehavior {
                connect_latency: ms(50),
                ..one_ms_queries()
            },
        )
        .await;
        let held = f.hold(1).await;
        f.server.set_max_connections(Some(1));
        // Refused: the pool serves with the one it has; growth is tried after a backoff.
        let refused = {
            let pool = f.pool.clone();
            tokio::spawn(async move { pool.acquire().await })
        };
        settle_for(ms(100)).await;
        assert_eq!(f.pool.stats().effective_size, 1);
        f.server.set_max_connections(None);
        // Four more callers: past the backoff one tries to grow (a 50 ms connect) while
        // the others wait for that try to end, then the next one grows.
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let pool = f.pool.clone();
                tokio::spawn(async move { pool.acquire().await })
            })
            .collect();
        let mut served = vec![refused.await.unwrap().expect("served once it grows")];
        for c in callers {
            served.push(c.await.unwrap().expect("served once it grows"));
        }
        assert_eq!(
            f.server.peak_in_flight_connects(),
            1,
            "one try to grow at a time"
        );
        assert_eq!(f.pool.stats().live, 6);
        drop((held, served));
        settle().await;
        f.assert_quiescent();
    })
    .await;
}
