//! Restarts of pool actors: restart intensity (more than `max_restarts` within
//! `restart_window` marks the pool failed, acquires get `PoolFailed` until a `RevivePool`),
//! how quickly the supervisor restarts a crashed actor, and what happens to acquires
//! queued when it crashes.

use std::time::Duration;

use poolwarden::backends::sim::{SimBackend, SimServer};
use poolwarden::messages::GetPoolStats;
use poolwarden::{
    ConnectionConfig, Error, HealthStatus, Phase, PoolConfig, PoolHandle, PoolStats,
    SupervisorConfig, SupervisorHandle,
};
use tokio::time::{sleep, timeout, Instant};

type Sim = SimBackend;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// No warm-up, no background probes: connects happen only when a test acquires.
fn quiet_pool() -> PoolConfig {
    PoolConfig {
        min_idle: 0,
        probe_interval: None,
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: Duration::ZERO,
        ..PoolConfig::default()
    }
}

fn supervisor(max_restarts: u32, restart_window: Duration) -> SupervisorConfig {
    SupervisorConfig {
        max_restarts,
        restart_window,
        pool_idle_timeout: None,
        ..SupervisorConfig::default()
    }
}

async fn setup(
    name: &str,
    config: SupervisorConfig,
    pool: PoolConfig,
) -> (SupervisorHandle<Sim>, PoolHandle<Sim>, SimServer) {
    let sim = Sim::new(31);
    let sup = SupervisorHandle::start(sim.clone(), config).unwrap();
    let cfg = ConnectionConfig::sim(name);
    let server = sim.server(&cfg.primary_host());
    let handle = sup.pool_with(cfg, pool).await.unwrap();
    (sup, handle, server)
}

/// The pool's figures as its actor answers them: queued behind the `Crashed` report of a
/// panic that already happened, so answered by the restarted incarnation.
async fn after_restart(pool: &PoolHandle<Sim>) -> PoolStats {
    pool.actor()
        .expect("the supervisor keeps the actor")
        .send(GetPoolStats)
        .await
        .expect("the actor answers")
}

/// An acquire whose connect panics. Answers the figures once the actor has restarted.
async fn crash_in_connect(pool: &PoolHandle<Sim>, server: &SimServer) -> PoolStats {
    assert_eq!(pool.stats().idle, 0, "the acquire must connect");
    server.panic_on_next_connects(1);
    match pool.acquire().await {
        Err(Error::BackendPanic {
            phase: Phase::Connect,
            message,
            ..
        }) => assert!(message.contains("simulated panic in connect"), "{message}"),
        other => panic!("expected a panic in connect, got {other:?}"),
    }
    after_restart(pool).await
}

async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= end {
            return false;
        }
        sleep(ms(1)).await;
    }
    true
}

// ----- restart intensity -------------------------------------------------------------------

#[actix::test]
async fn more_than_max_restarts_within_the_window_fail_the_pool_until_it_is_revived() {
    tokio::time::pause();
    let (sup, pool, server) = setup("intensity", supervisor(2, secs(10)), quiet_pool()).await;
    let key = pool.key();

    for i in 1..=2 {
        let s = crash_in_connect(&pool, &server).await;
        assert_eq!(
            (s.restarts, s.failed, s.closed_pool),
            (i, false, false),
            "{s:?}"
        );
        sleep(secs(1)).await;
    }
    // max_restarts restarts are tolerated: it still serves.
    pool.acquire()
        .await
        .expect("2 restarts are within the limit")
        .discard();

    // The third within 10s is one too many.
    let s = crash_in_connect(&pool, &server).await;
    assert_eq!((s.restarts, s.failed), (3, true), "{s:?}");
    let attempts = server.connect_attempts();
    let t = Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert_eq!(t.elapsed(), Duration::ZERO, "refused at once");
    match &err {
        Error::PoolFailed { key: k, restarts } => assert_eq!((*k, *restarts), (key, 3)),
        other => panic!("expected PoolFailed, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains(&key.to_string())
            && shown.contains("failed after 3 restarts")
            && shown.contains("Revive"),
        "{shown}"
    );
    let err = sup.acquire(key).await.unwrap_err();
    assert!(matches!(err, Error::PoolFailed { .. }), "{err:?}");
    let r = sup.health().await.unwrap();
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(
        r.unhealthy[0].1.contains("failed after 3 restarts"),
        "{r:?}"
    );
    assert_eq!(
        server.connect_attempts(),
        attempts,
        "a failed pool connects to nothing"
    );
    // Failed stays failed: time alone does not bring it back.
    sleep(secs(60)).await;
    assert!(matches!(
        pool.acquire().await,
        Err(Error::PoolFailed { .. })
    ));

    // Revived by key, through the supervisor.
    assert!(sup.revive(key).await.unwrap(), "it was failed");
    assert!(!pool.stats().failed);
    let mut conn = pool.acquire().await.expect("serves again");
    conn.query("SELECT 1").await.unwrap();
    drop(conn);
    assert!(!sup.revive(key).await.unwrap(), "no longer failed");

    // The revived actor runs its lifecycle again: its maintenance tick refills min_idle.
    pool.resize(4, 2).await.unwrap();
    assert!(
        until(secs(3), || pool.stats().idle == 2).await,
        "{:?}",
        pool.stats()
    );

    // And its restart count starts afresh: one more panic is just a restart.
    let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    let s = crash_in_connect(&pool, &server).await;
    assert_eq!((s.restarts, s.failed), (4, false), "{s:?}");
    drop(held);
    drop(pool.acquire().await.expect("serves"));
    assert_eq!(server.open_connections(), pool.stats().live);
}

#[actix::test]
async fn restarts_spread_wider_than_the_window_never_fail_the_pool() {
    tokio::time::pause();
    let (_sup, pool, server) = setup("spread", supervisor(2, secs(10)), quiet_pool()).await;
    // One every 6s: never more than two within any 10s.
    for i in 1..=6 {
        let s = crash_in_connect(&pool, &server).await;
        assert_eq!((s.restarts, s.failed), (i, false), "{s:?}");
        sleep(secs(6)).await;
    }
    pool.acquire().await.expect("serves").discard();
    // A burst is another matter.
    sleep(secs(11)).await;
    for i in 7..=8 {
        assert!(
            !crash_in_connect(&pool, &server).await.failed,
            "restart {i}"
        );
    }
    assert!(crash_in_connect(&pool, &server).await.failed);
    assert!(matches!(
        pool.acquire().await,
        Err(Error::PoolFailed { restarts: 9, .. })
    ));
}

// ----- restart latency ---------------------------------------------------------------------

/// Real time: the whole way from a panic to the restarted pool serving again.
#[actix::test]
async fn the_supervisor_restarts_the_pool_actor_within_100ms_of_a_panic() {
    let (_sup, pool, server) = setup("fast", supervisor(5, secs(10)), quiet_pool()).await;
    let actor = pool.actor().unwrap();
    server.panic_on_next_connects(1);
    let t = std::time::Instant::now();
    assert!(matches!(
        pool.acquire().await,
        Err(Error::BackendPanic { .. })
    ));
    let s = after_restart(&pool).await;
    let restarted = t.elapsed();
    assert_eq!((s.restarts, s.generation), (1, 1), "{s:?}");
    let mut conn = pool.acquire().await.expect("the restarted pool serves");
    conn.query("SELECT 1").await.unwrap();
    let serving = t.elapsed();
    assert!(
        restarted < ms(100) && serving < ms(100),
        "restarted after {restarted:?}, serving after {serving:?}"
    );
    assert!(pool.actor() == Some(actor), "the same address, restarted");
}

/// Paused time: a panic in the actor's own background work (a probe nobody waits for) is
/// followed by a restart without any timer in between.
#[actix::test]
async fn a_panic_in_a_background_probe_restarts_the_actor_at_once() {
    tokio::time::pause();
    let (_sup, pool, server) = setup(
        "bgprobe",
        supervisor(5, secs(10)),
        PoolConfig {
            probe_interval: Some(secs(1)),
            ..quiet_pool()
        },
    )
    .await;
    drop(pool.acquire().await.unwrap()); // an idle connection for the probe
    server.panic_on_next_probes(1);
    assert!(
        until(secs(2), || pool.stats().panics == 1).await,
        "the probe panicked"
    );
    let panicked = Instant::now();
    assert!(
        until(ms(100), || pool.stats().restarts == 1).await,
        "not restarted within 100ms of the panic"
    );
    assert!(panicked.elapsed() <= ms(100));
    let s = pool.stats();
    assert_eq!((s.generation, s.live, s.in_use), (1, 0, 0), "{s:?}");

    // The new incarnation probes again (a fresh connection, then probes on it).
    let connects = server.connects();
    sleep(secs(3)).await;
    assert_eq!(server.connects(), connects + 1);
    let queries = server.queries();
    sleep(secs(2)).await;
    assert!(server.queries() > queries, "background probes resumed");
    assert_eq!(pool.stats().restarts, 1);
}

// ----- acquires queued at a crash ----------------------------------------------------------

#[actix::test]
async fn waiters_queued_at_a_crash_are_served_after_the_restart_or_fail_but_never_hang() {
    tokio::time::pause();
    let acquire_timeout = secs(30);
    let (_sup, pool, server) = setup(
        "queued",
        supervisor(5, secs(10)),
        PoolConfig {
            max_size: 2,
            acquire_timeout,
            ..quiet_pool()
        },
    )
    .await;
    let old = pool.acquire().await.unwrap();
    let mut dirty = pool.acquire().await.unwrap();
    dirty.query("BEGIN").await.unwrap();
    let waiters: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                conn.query("SELECT 1")
                    .await
                    .expect("a served waiter's connection works");
                sleep(ms(10)).await;
                Ok::<_, Error>(())
            })
        })
        .collect();
    assert!(until(secs(1), || pool.stats().waiters == 6).await);

    // The dirty connection's reset panics, and so does the next connect.
    server.panic_on_next_resets(1);
    server.panic_on_next_connects(1);
    drop(dirty);
    // The connection of the crashed incarnation comes back a little later; it is closed.
    sleep(ms(50)).await;
    drop(old);

    let t = Instant::now();
    let results = tokio::time::timeout(secs(2), futures::future::join_all(waiters))
        .await
        .expect("no waiter hangs");
    assert!(t.elapsed() < acquire_timeout / 10);
    let (mut served, mut panicked) = (0, 0);
    for r in results {
        match r.unwrap() {
            Ok(()) => served += 1,
            Err(Error::BackendPanic {
                phase: Phase::Connect,
                ..
            }) => panicked += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!((served, panicked), (5, 1));
    let s = after_restart(&pool).await;
    assert!(s.restarts >= 1 && !s.failed, "{s:?}");
    assert_eq!((s.in_use, s.waiters, s.timeouts), (0, 0, 0), "{s:?}");
    assert_eq!(server.open_connections(), s.live);
}

#[actix::test]
async fn waiters_queued_when_the_pool_fails_get_pool_failed_at_once() {
    tokio::time::pause();
    let acquire_timeout = secs(30);
    let (_sup, pool, server) = setup(
        "failqueued",
        // No restart tolerated: the first crash fails the pool.
        supervisor(0, secs(10)),
        PoolConfig {
            max_size: 2,
            acquire_timeout,
            ..quiet_pool()
        },
    )
    .await;
    let long_holder = pool.acquire().await.unwrap();
    let mut dirty = pool.acquire().await.unwrap();
    dirty.query("BEGIN").await.unwrap();
    // Each waiter reports how its acquire went, then holds what it got for a minute.
    let (tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let (pool, tx) = (pool.clone(), tx.clone());
            tokio::spawn(async move {
                let r = pool.acquire().await;
                let _ = tx.send(r.as_ref().map(drop).map_err(Clone::clone));
                sleep(secs(60)).await;
                drop(r);
            })
        })
        .collect();
    assert!(until(secs(1), || pool.stats().waiters == 5).await);

    // The reset panics: the pool fails. The crashed reset's slot may reach a waiter
    // before the actor restarts; the others must not wait out their acquire timeout.
    server.panic_on_next_resets(1);
    drop(dirty);
    let t = Instant::now();
    let (mut served, mut failed) = (0, 0);
    for _ in 0..5 {
        match timeout(ms(100), outcomes.recv()).await {
            Ok(Some(Ok(()))) => served += 1,
            Ok(Some(Err(Error::PoolFailed { restarts: 1, .. }))) => failed += 1,
            Ok(other) => panic!("unexpected: {other:?}"),
            Err(_) => panic!(
                "a queued waiter is still waiting {:?} after the pool failed \
                 ({served} served, {failed} told): {:?}",
                t.elapsed(),
                pool.stats()
            ),
        }
    }
    assert!(t.elapsed() < acquire_timeout / 100);
    assert!(served <= 1 && failed >= 4, "{served} served, {failed} told");
    let s = pool.stats();
    assert!(s.failed, "{s:?}");
    assert_eq!(s.waiters, 0, "{s:?}");

    for w in &waiters {
        w.abort();
    }
    for w in waiters {
        let _ = w.await;
    }
    drop(long_holder);
    let s = pool.stats();
    assert_eq!(
        (s.in_use, s.live),
        (0, 0),
        "a failed pool keeps nothing: {s:?}"
    );
    assert_eq!(server.open_connections(), 0);
}
