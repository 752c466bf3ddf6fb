//! Per-pool lifecycle hooks on the simulated backend: each runs when it should, each
//! `before_acquire` verdict does what it says (server-side counts prove the closes and
//! that nothing leaks), and a hook that fails, times out or panics fails its connection
//! only: counted, the breaker untouched (even one that trips at the first counted
//! failure), the pool actor not restarted, the pool serving on.

mod support_pool;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use poolwarden::backends::sim::{SimBackend, SimBehavior, SimConnection};
use poolwarden::{
    AcquireVerdict, BreakerConfig, BreakerState, ConnectionConfig, Error, HookPoint, Hooks, Phase,
    PoolConfig, PoolHandle,
};
use support_pool::*;
use tokio::time::Instant;

type H = Hooks<SimConnection>;

/// The quiet pool config with a breaker that opens at the first failure counted against
/// the endpoint: if a hook failure counted, the breaker would show it.
fn config() -> PoolConfig {
    PoolConfig {
        breaker: BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        },
        ..quiet_config()
    }
}

/// A fixture whose pool is created with `hooks` (the fixture's own pool is another key).
async fn hooked(name: &str, hooks: H, config: PoolConfig) -> (Fixture, PoolHandle<SimBackend>) {
    let f = start(
        &format!("{name}-plain"),
        quiet_config(),
        SimBehavior::default(),
    )
    .await;
    let connection = ConnectionConfig::sim(name);
    let pool = f
        .sup
        .pool_with_hooks(connection, Some(config), hooks)
        .await
        .expect("pool starts");
    (f, pool)
}

fn server_of(f: &Fixture, name: &str) -> poolwarden::backends::sim::SimServer {
    f.backend
        .server(&ConnectionConfig::sim(name).primary_host())
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn hook_point(e: &Error) -> Option<HookPoint> {
    match e {
        Error::Hook { hook, .. } => Some(*hook),
        _ => None,
    }
}

#[actix::test]
async fn after_connect_runs_once_on_every_new_connection_before_its_first_use() {
    let runs = counter();
    let r = runs.clone();
    let hooks = H::new().after_connect(move |conn| {
        let r = r.clone();
        Box::pin(async move {
            r.fetch_add(1, Ordering::Relaxed);
            conn.query("SET search_path TO app").await?;
            Ok(())
        })
    });
    let (f, pool) = hooked("ac-runs", hooks, config()).await;
    let mut a = pool.acquire().await.unwrap();
    let mut b = pool.acquire().await.unwrap();
    // The hook's statement came first on each connection.
    assert_eq!(a.query("SELECT 1").await.unwrap(), 2);
    assert_eq!(b.query("SELECT 1").await.unwrap(), 2);
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    drop((a, b));
    // Reuse runs nothing more; background opens (warm) run it too.
    drop(pool.acquire().await.unwrap());
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    assert_eq!(pool.warm(3).await.unwrap(), 1);
    assert_eq!(runs.load(Ordering::Relaxed), 3);
    assert_eq!(server_of(&f, "ac-runs").open_connections(), 3);
    assert_eq!(pool.stats().hook_failures, 0);
}

#[actix::test]
async fn a_failing_after_connect_closes_the_connection_fails_the_connect_and_leaves_the_breaker_closed(
) {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fl = fail.clone();
    let hooks = H::new().after_connect(move |_conn| {
        let fl = fl.clone();
        Box::pin(async move {
            if fl.load(Ordering::Relaxed) {
                Err("search_path: schema \"app\" does not exist".into())
            } else {
                Ok(())
            }
        })
    });
    let (f, pool) = hooked("ac-fail", hooks, config()).await;
    let server = server_of(&f, "ac-fail");
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(hook_point(&err), Some(HookPoint::AfterConnect), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let s = pool.stats();
    assert_eq!(server.open_connections(), 0, "closed at once");
    assert_eq!((s.live, s.in_use, s.connect_errors), (0, 0, 1), "{s:?}");
    assert_eq!((s.hook_failures, s.hook_timeouts, s.hook_panics), (1, 0, 0));
    assert_eq!(
        s.breaker,
        BreakerState::Closed,
        "not evidence about the endpoint"
    );
    // Fixed: the pool serves.
    fail.store(false, Ordering::Relaxed);
    drop(pool.acquire().await.unwrap());
    assert_eq!(pool.stats().breaker, BreakerState::Closed);
}

#[actix::test]
async fn an_after_connect_that_hangs_times_out_at_the_hook_timeout_and_is_counted() {
    let hooks = H::new()
        .after_connect(|_conn| Box::pin(std::future::pending()))
        .timeout(ms(300));
    let (f, pool) = hooked("ac-hang", hooks, config()).await;
    let start = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(hook_point(&err), Some(HookPoint::AfterConnect), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        took >= ms(300) && took < ms(310),
        "bounded by the hook timeout: {took:?}"
    );
    let s = pool.stats();
    assert_eq!((s.hook_failures, s.hook_timeouts, s.hook_panics), (1, 1, 0));
    assert_eq!(s.breaker, BreakerState::Closed);
    assert_eq!(server_of(&f, "ac-hang").open_connections(), 0);
}

#[actix::test]
async fn an_after_connect_cut_short_by_the_acquire_deadline_is_the_acquires_timeout() {
    let hooks = H::new().after_connect(|_conn| Box::pin(std::future::pending()));
    let (f, pool) = hooked("ac-deadline", hooks, config()).await;
    let start = Instant::now();
    let err = pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(start.elapsed() < ms(110), "{:?}", start.elapsed());
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
    let s = pool.stats();
    assert_eq!(
        s.hook_failures, 0,
        "the caller's deadline, not the hook's failure"
    );
    assert_eq!(s.breaker, BreakerState::Closed);
    assert_eq!(server_of(&f, "ac-deadline").open_connections(), 0);
}

#[actix::test]
async fn a_panicking_hook_fails_its_connection_not_the_pool() {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let a = armed.clone();
    let hooks = H::new().after_connect(move |_conn| {
        let a = a.clone();
        Box::pin(async move {
            if a.swap(false, Ordering::Relaxed) {
                panic!("hook bug");
            }
            Ok(())
        })
    });
    let (f, pool) = hooked("ac-panic", hooks, config()).await;
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(hook_point(&err), Some(HookPoint::AfterConnect), "{err:?}");
    assert!(err.to_string().contains("hook bug"), "{err}");
    settle().await;
    let s = pool.stats();
    assert_eq!((s.hook_failures, s.hook_panics), (1, 1));
    assert_eq!(
        (s.panics, s.restarts),
        (0, 0),
        "no backend panic, no restart"
    );
    assert_eq!(s.breaker, BreakerState::Closed);
    assert_eq!(server_of(&f, "ac-panic").open_connections(), 0);
    // The pool serves on.
    drop(pool.acquire().await.unwrap());
    assert_eq!(server_of(&f, "ac-panic").open_connections(), 1);
}

/// A pool whose `before_acquire` answers `verdict` while `armed` (then `HandOut`), and
/// counts its runs.
async fn with_verdict(
    name: &str,
    verdict: AcquireVerdict,
    armed: usize,
) -> (Fixture, PoolHandle<SimBackend>, Arc<AtomicUsize>) {
    let runs = counter();
    let r = runs.clone();
    let hooks = H::new().before_acquire(move |_conn| {
        let n = r.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            Ok(if n < armed {
                verdict
            } else {
                AcquireVerdict::HandOut
            })
        })
    });
    let (f, pool) = hooked(name, hooks, config()).await;
    (f, pool, runs)
}

#[actix::test]
async fn before_acquire_runs_on_every_checkout_and_hand_out_serves() {
    let (f, pool, runs) = with_verdict("ba-handout", AcquireVerdict::HandOut, 0).await;
    for _ in 0..5 {
        drop(pool.acquire().await.unwrap());
    }
    assert_eq!(runs.load(Ordering::Relaxed), 5, "the fast path too");
    assert_eq!(server_of(&f, "ba-handout").open_connections(), 1);
    assert_eq!(pool.stats().served, 5);
}

#[actix::test]
async fn keep_and_fail_fails_the_acquire_and_keeps_the_connection() {
    let (f, pool, runs) = with_verdict("ba-keep", AcquireVerdict::KeepAndFail, 1).await;
    let server = server_of(&f, "ba-keep");
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(hook_point(&err), Some(HookPoint::BeforeAcquire), "{err:?}");
    let s = pool.stats();
    assert_eq!((s.idle, s.in_use, s.live), (1, 0, 1), "{s:?}");
    assert_eq!(server.open_connections(), 1, "kept open");
    assert_eq!(s.hook_failures, 0, "a verdict, not a failure");
    // The next acquire gets that same connection.
    let conn = pool.acquire().await.unwrap();
    assert_eq!((server.connects(), runs.load(Ordering::Relaxed)), (1, 2));
    drop(conn);
}

#[actix::test]
async fn close_and_fail_closes_the_connection_and_fails_the_acquire() {
    let (f, pool, _) = with_verdict("ba-close", AcquireVerdict::CloseAndFail, 1).await;
    let server = server_of(&f, "ba-close");
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(hook_point(&err), Some(HookPoint::BeforeAcquire), "{err:?}");
    let s = pool.stats();
    assert_eq!((s.idle, s.in_use, s.live, s.closed), (0, 0, 0, 1), "{s:?}");
    assert_eq!(server.open_connections(), 0);
    drop(pool.acquire().await.unwrap());
    assert_eq!(server.connects(), 2);
}

#[actix::test]
async fn close_and_retry_closes_the_connection_and_hands_out_another() {
    let (f, pool, runs) = with_verdict("ba-retry", AcquireVerdict::CloseAndRetry, 2).await;
    let server = server_of(&f, "ba-retry");
    // Two idle connections to refuse first.
    assert_eq!(pool.warm(2).await.unwrap(), 2);
    let conn = pool.acquire().await.unwrap();
    assert_eq!(runs.load(Ordering::Relaxed), 3);
    assert_eq!(
        server.connects(),
        3,
        "both idle ones closed, a third opened"
    );
    assert_eq!(server.open_connections(), 1);
    let s = pool.stats();
    assert_eq!(
        (s.in_use, s.live, s.closed, s.served),
        (1, 1, 2, 1),
        "{s:?}"
    );
    drop(conn);
    f.assert_quiescent();
}

#[actix::test]
async fn close_and_retry_forever_ends_at_the_acquire_deadline_with_nothing_leaked() {
    let (f, pool, runs) =
        with_verdict("ba-forever", AcquireVerdict::CloseAndRetry, usize::MAX).await;
    let server = server_of(&f, "ba-forever");
    let start = Instant::now();
    let err = pool.acquire_timeout(ms(500)).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(hook_point(&err), Some(HookPoint::BeforeAcquire), "{err:?}");
    assert!(
        took >= ms(500) && took < ms(600),
        "bounded by the deadline: {took:?}"
    );
    let tried = runs.load(Ordering::Relaxed);
    assert!(tried > 4 && tried < 200, "paced, not spinning: {tried}");
    assert_eq!(server.open_connections(), 0);
    let s = pool.stats();
    assert_eq!(
        (s.live, s.in_use, s.created, s.closed),
        (0, 0, tried as u64, tried as u64)
    );
    assert_eq!(s.breaker, BreakerState::Closed);
}

#[actix::test]
async fn a_before_acquire_that_errs_times_out_or_panics_closes_the_connection_and_fails_the_acquire(
) {
    let mode = counter();
    let m = mode.clone();
    let hooks = H::new()
        .before_acquire(move |_conn| {
            let m = m.clone();
            Box::pin(async move {
                match m.load(Ordering::Relaxed) {
                    0 => Err("not ready".into()),
                    1 => std::future::pending().await,
                    2 => panic!("verdict bug"),
                    _ => Ok(AcquireVerdict::HandOut),
                }
            })
        })
        .timeout(ms(200));
    let (f, pool) = hooked("ba-fail", hooks, config()).await;
    let server = server_of(&f, "ba-fail");
    for (i, expect) in ["not ready", "timed out", "verdict bug"].iter().enumerate() {
        mode.store(i, Ordering::Relaxed);
        let err = pool.acquire().await.unwrap_err();
        assert_eq!(hook_point(&err), Some(HookPoint::BeforeAcquire), "{err:?}");
        assert!(err.to_string().contains(expect), "{err}");
        assert_eq!(server.open_connections(), 0, "closed ({expect})");
    }
    let s = pool.stats();
    assert_eq!((s.hook_failures, s.hook_timeouts, s.hook_panics), (3, 1, 1));
    assert_eq!((s.panics, s.restarts, s.live), (0, 0, 0));
    assert_eq!(s.breaker, BreakerState::Closed);
    mode.store(3, Ordering::Relaxed);
    drop(pool.acquire().await.unwrap());
    settle().await;
    f.assert_quiescent();
}

#[actix::test]
async fn after_release_false_closes_the_connection_true_keeps_it() {
    let keep = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let runs = counter();
    let (k, r) = (keep.clone(), runs.clone());
    let hooks = H::new().after_release(move |_conn| {
        r.fetch_add(1, Ordering::Relaxed);
        let keep = k.load(Ordering::Relaxed);
        Box::pin(async move { keep })
    });
    let (f, pool) = hooked("ar", hooks, config()).await;
    let server = server_of(&f, "ar");
    drop(pool.acquire().await.unwrap());
    settle().await;
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert_eq!((pool.stats().idle, server.open_connections()), (1, 1));
    keep.store(false, Ordering::Relaxed);
    drop(pool.acquire().await.unwrap());
    settle().await;
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    let s = pool.stats();
    assert_eq!((s.idle, s.live, s.in_use, s.closed), (0, 0, 0, 1), "{s:?}");
    assert_eq!(server.open_connections(), 0);
    assert_eq!(s.hook_failures, 0, "a decision, not a failure");
    // A discarded connection is closed without asking the hook.
    pool.acquire().await.unwrap().discard();
    settle().await;
    assert_eq!(runs.load(Ordering::Relaxed), 2);
}

#[actix::test]
async fn before_close_runs_before_every_close_bounded_by_the_timeout() {
    let runs = counter();
    let r = runs.clone();
    let hooks = H::new()
        .before_close(move |conn| {
            let r = r.clone();
            Box::pin(async move {
                r.fetch_add(1, Ordering::Relaxed);
                // The connection is still open while the hook runs.
                assert!(!conn.is_killed());
                std::future::pending::<()>().await;
            })
        })
        .timeout(ms(100));
    let (f, pool) = hooked("bc", hooks, config()).await;
    let server = server_of(&f, "bc");
    assert_eq!(pool.warm(2).await.unwrap(), 2);
    pool.acquire().await.unwrap().discard();
    settle().await;
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert_eq!(server.open_connections(), 2, "open while its hook runs");
    assert_eq!(pool.soft_evict(), 1);
    settle_for(ms(150)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    assert_eq!(
        server.open_connections(),
        0,
        "closed once the hook timed out"
    );
    let s = pool.stats();
    assert_eq!((s.live, s.closed, s.hook_timeouts), (0, 2, 2), "{s:?}");
}

/// A close whose `before_close` hook runs on a caller's runtime that ends before the hook
/// does is still counted: the connection closes with the task, and the pool's figures keep
/// matching the server's (no connection counted live for good).
#[actix::test]
async fn a_close_whose_hook_is_cut_off_by_its_runtime_ending_is_still_counted() {
    let hooks = H::new()
        .before_close(|_conn| Box::pin(std::future::pending::<()>()))
        .timeout(secs(60));
    let (f, pool) = hooked("bcrt", hooks, config()).await;
    let server = server_of(&f, "bcrt");
    assert_eq!(pool.warm(2).await.unwrap(), 2);
    let caller = pool.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move { caller.acquire().await.unwrap().discard() });
        // `rt` ends here, the hook's task on it unfinished.
    })
    .join()
    .expect("the caller's thread");
    assert_eq!(server.open_connections(), 1, "closed with its task");
    let s = pool.stats();
    assert_eq!((s.live, s.idle, s.closed), (1, 1, 1), "{s:?}");
}

#[actix::test]
async fn a_running_key_keeps_its_hooks() {
    let hooks = H::new().after_release(|_conn| Box::pin(async { true }));
    let (f, pool) = hooked("same", hooks.clone(), config()).await;
    let again = f
        .sup
        .pool_with_hooks(ConnectionConfig::sim("same"), None, hooks)
        .await
        .unwrap();
    assert_eq!(again.key(), pool.key());
    let other = H::new().after_release(|_conn| Box::pin(async { true }));
    match f
        .sup
        .pool_with_hooks(ConnectionConfig::sim("same"), None, other)
        .await
    {
        Err(Error::Config(e)) => assert_eq!(e.field, "hooks"),
        other => panic!("{other:?}"),
    }
    // A plain lookup gets the pool with its hooks.
    let plain = f.sup.pool(ConnectionConfig::sim("same")).await.unwrap();
    assert_eq!(plain.key(), pool.key());
}

/// A connection closed while the server is full leaves room for one once its
/// `before_close` hook has run: a caller waiting for room connects then, not at the
/// server's next try to grow (250 ms after the refusal) or at its deadline.
#[actix::test]
async fn a_close_after_its_hook_wakes_a_caller_waiting_for_room_on_a_full_server() {
    let hooks = H::new()
        .before_close(|_conn| Box::pin(tokio::time::sleep(ms(50))))
        .timeout(secs(10));
    let (f, pool) = hooked("bcroom", hooks, config()).await;
    let server = server_of(&f, "bcroom");
    let mut held = vec![pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    server.set_max_connections(Some(2));
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    // Refused once, the waiter waits for room.
    settle_for(ms(100)).await;
    assert_eq!(pool.stats().in_use, 2);
    assert!(!waiter.is_finished());
    let (t, connects) = (Instant::now(), server.connects());
    held.pop().unwrap().discard();
    let conn = waiter.await.unwrap().expect("served by a new connection");
    // The hook's 50 ms (and the timer's rounding up), not the 150 ms to the next try.
    let waited = t.elapsed();
    assert!(
        waited >= ms(50) && waited < ms(100),
        "connected {waited:?} after the discard, not as soon as the hook let the close end"
    );
    assert_eq!(server.connects(), connects + 1);
    assert_eq!(server.open_connections(), 2);
    drop((conn, held));
}
