//! Credentials: the pool key leaves the password out, so configs that differ only in
//! password reach the same pool; a different password is verified with one connect before
//! it is served, rotates the pool when it authenticates, and is refused (pool untouched)
//! when it does not. `sim` runs on the simulated backend in paused time; `postgres`,
//! `redis` and `mariadb` against throwaway servers from `tests/common` (skipped with a
//! printed reason when the server is not installed, failing under `CI=true`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../support_pool/mod.rs"]
mod support_pool;

#[cfg(feature = "mysql")]
mod mariadb;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod sim;

use poolwarden::{BackendErrorKind, Error, Phase};

/// `result` is an authentication error of a connect; answers its text (Display, Debug
/// and the source's), for checking that no password shows.
#[track_caller]
fn auth_refused<T>(result: Result<T, Error>) -> String {
    match result {
        Err(e) => {
            match &e {
                Error::Backend {
                    phase: Phase::Connect,
                    source,
                    ..
                } => assert_eq!(source.kind(), BackendErrorKind::Auth, "{e:?}"),
                other => panic!("expected an authentication error, got {other:?}"),
            }
            format!("{e} | {e:?} | {:?}", std::error::Error::source(&e))
        }
        Ok(_) => panic!("expected an authentication error, got a handle or connection"),
    }
}

/// `result` is a refused connect: authentication, or (a driver that will not even try
/// without a password) configuration. Answers its text.
#[track_caller]
fn refused<T>(result: Result<T, Error>) -> String {
    match result {
        Err(e) => {
            match &e {
                Error::Backend {
                    phase: Phase::Connect,
                    source,
                    ..
                } => assert!(
                    matches!(
                        source.kind(),
                        BackendErrorKind::Auth | BackendErrorKind::Config
                    ),
                    "{e:?}"
                ),
                other => panic!("expected a refused connect, got {other:?}"),
            }
            format!("{e} | {e:?} | {:?}", std::error::Error::source(&e))
        }
        Ok(_) => panic!("expected a refused connect, got a handle or connection"),
    }
}

/// Wait until `pool` holds `n` idle connections.
async fn warmed<B: poolwarden::Backend>(pool: &poolwarden::PoolHandle<B>, n: usize) {
    let ok = common::eventually(common::secs(10), || {
        std::future::ready((pool.stats().idle == n).then_some(()))
    })
    .await;
    assert!(ok.is_some(), "not warmed: {:?}", pool.stats());
}

/// `text` shows none of `secrets`.
#[track_caller]
fn assert_clean(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "a password shows: {text}");
    }
}

/// A pool config for the real-server tests: 4 connections, `min_idle` warm, a 10 s acquire
/// budget, `connect_timeout` per attempt, nothing expiring, a fast maintenance tick.
#[cfg(any(feature = "postgres", feature = "redis", feature = "mysql"))]
fn server_pool_config(
    min_idle: u32,
    connect_timeout: std::time::Duration,
) -> poolwarden::PoolConfig {
    poolwarden::PoolConfig {
        min_idle,
        max_size: 4,
        acquire_timeout: common::secs(10),
        connect_timeout,
        probe_timeout: common::secs(2),
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: std::time::Duration::ZERO,
        maintenance_interval: common::ms(50),
        ..poolwarden::PoolConfig::default()
    }
}

/// A supervisor over `backend` that never reaps an idle pool.
#[cfg(any(feature = "postgres", feature = "redis", feature = "mysql"))]
fn server_supervisor<B: poolwarden::Backend>(backend: B) -> poolwarden::SupervisorHandle<B> {
    poolwarden::SupervisorHandle::start(
        backend,
        poolwarden::SupervisorConfig {
            pool_idle_timeout: None,
            ..poolwarden::SupervisorConfig::default()
        },
    )
    .expect("valid supervisor config")
}

/// The load goes on after a rotation (400 more successes) and ends with no error of any
/// kind: no failed acquire, no `CircuitOpen`, no failed query.
#[cfg(any(feature = "postgres", feature = "redis", feature = "mysql"))]
async fn went_on_without_errors(load: common::load::Load) {
    load.mark();
    assert!(
        load.more_ok(400, common::secs(30)).await,
        "the load went on"
    );
    let t = common::load::Tally::of(&load.finish(common::secs(15)).await);
    assert_eq!(
        (t.acquire_errors, t.circuit_open, t.op_errors),
        (0, 0, 0),
        "{t:?}"
    );
}
