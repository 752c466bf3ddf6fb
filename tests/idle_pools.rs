//! Idle pools are nearly free: a pool with nothing to do (no connections, nothing due, no
//! waiters) is never woken, a pool whose only work is its background probe is woken only
//! for it, and what falls due (an idle timeout, a lifetime, a refill, a leak report) is
//! still done on time. Wake-ups are counted with `PoolStats::maintenance_runs`, under
//! paused tokio time.

mod support_pool;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::PoolConfig;
use support_pool::*;

/// [`start`] a pool with `config` and wait for its warm-up to `min_idle`.
async fn warmed(name: &str, config: PoolConfig) -> Fixture {
    let f = start(name, config, SimBehavior::default()).await;
    let min_idle = f.pool.stats().min_idle as usize;
    assert!(eventually(ms(100), || f.pool.stats().idle == min_idle).await);
    f
}

/// `quiet_config` with one warm connection and a background probe every `probe`.
fn probed(probe: std::time::Duration) -> PoolConfig {
    PoolConfig {
        min_idle: 1,
        probe_interval: Some(probe),
        ..quiet_config()
    }
}

/// The maintenance runs of the pool during `d` of paused time.
async fn runs_during(f: &Fixture, d: std::time::Duration) -> u64 {
    let before = f.pool.stats().maintenance_runs;
    settle_for(d).await;
    f.pool.stats().maintenance_runs - before
}

#[actix::test]
async fn a_pool_with_nothing_to_do_is_never_woken() {
    // No warm-up, no probes: once its first run finds nothing due, it is left alone.
    let f = start("nothing", quiet_config(), SimBehavior::default()).await;
    settle_for(ms(10)).await;
    assert!(
        f.pool.stats().maintenance_runs >= 1,
        "tended once, when registered"
    );
    assert_eq!(
        runs_during(&f, secs(3600)).await,
        0,
        "woken while it had nothing to do"
    );

    // Used once, it is woken and watches its idle connection on each tick (1 s)...
    drop(f.pool.acquire().await.unwrap());
    let watched = runs_during(&f, secs(10)).await;
    assert!((9..=12).contains(&watched), "{watched} runs in 10 ticks");
    // ...until the connection goes and its acquires have left the percentile windows
    // (two slices of 30 s), and then it is left alone again.
    f.pool.acquire().await.unwrap().discard();
    settle_for(secs(2)).await;
    assert_eq!(f.pool.stats().live, 0);
    let rotating = runs_during(&f, secs(60)).await;
    assert!(rotating <= 61, "{rotating} runs while the windows rotate");
    assert_eq!(runs_during(&f, secs(3600)).await, 0);
    f.assert_quiescent();
}

#[actix::test]
async fn an_idle_pool_with_probes_is_woken_only_to_probe() {
    // The defaults: one warm connection, maintenance every second, probes every 5 s
    // (each wait drawn in [2.5 s, 5 s]).
    let f = warmed("probed", probed(secs(5))).await;
    settle_for(secs(10)).await;
    let queries = f.server.queries();
    let runs = runs_during(&f, secs(300)).await;
    let probes = f.server.queries() - queries;
    // 300 s of probes every 2.5 to 5 s: 60 to 120 of them, and a run for each; not the
    // 300 runs of a tick every second.
    assert!((60..=121).contains(&probes), "{probes} probes");
    assert!(runs <= probes + 1, "{runs} runs for {probes} probes");
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.created), (1, 1, 1), "{s:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn an_idle_timeout_is_kept_on_a_pool_woken_only_by_probes() {
    let config = PoolConfig {
        idle_timeout: Some(secs(30)),
        ..probed(secs(5))
    };
    let f = warmed("idletime", config).await;
    drop(f.hold(3).await);
    assert_eq!(f.pool.stats().idle, 3);
    // The two beyond min_idle close on the first tick at or after 30 s of idleness (the
    // probes keep using the newest one, which is kept for min_idle anyway).
    settle_for(ms(29_900)).await;
    assert_eq!(f.pool.stats().idle, 3, "closed before the idle timeout");
    settle_for(ms(1_200)).await;
    let s = f.pool.stats();
    assert_eq!((s.idle, s.closes.idle_timeout), (1, 2), "{s:?}");
    f.assert_quiescent();
}

#[actix::test]
async fn a_lifetime_ends_on_time_and_the_connection_is_replaced() {
    let config = PoolConfig {
        max_lifetime: Some(secs(60)),
        ..probed(secs(5))
    };
    let f = warmed("lifetime", config).await;
    settle_for(ms(59_900)).await;
    assert_eq!(f.pool.stats().closed, 0, "closed before its lifetime");
    settle_for(ms(1_200)).await;
    let s = f.pool.stats();
    assert_eq!(
        (s.closes.max_lifetime, s.created, s.idle),
        (1, 2, 1),
        "{s:?}"
    );
    f.assert_quiescent();
}

#[actix::test]
async fn a_parked_pool_refills_at_once_after_a_close() {
    // Probes every minute: between them the pool is parked with one idle connection.
    let f = warmed("refill", probed(secs(60))).await;
    settle_for(secs(5)).await;
    assert_eq!(runs_during(&f, secs(20)).await, 0, "parked between probes");
    // The close rings the pool, which refills before its next tick would have come.
    f.pool.acquire().await.unwrap().discard();
    assert!(
        eventually(ms(10), || f.pool.stats().idle == 1).await,
        "not refilled within 10 ms"
    );
    assert_eq!(f.pool.stats().created, 2);
    f.assert_quiescent();
}

#[actix::test]
async fn a_leak_is_reported_on_time_with_no_probes() {
    let config = PoolConfig {
        leak_threshold: Some(secs(2)),
        ..quiet_config()
    };
    let f = warmed("leak", config).await;
    settle_for(secs(5)).await;
    let held = f.pool.acquire().await.unwrap();
    // Checked out: watched on each tick, so the leak is reported on the first tick after
    // 2 s.
    settle_for(ms(1_900)).await;
    assert_eq!(f.pool.stats().leaks_reported, 0);
    settle_for(ms(1_200)).await;
    assert_eq!(f.pool.stats().leaks_reported, 1);
    drop(held);
    settle_for(secs(2)).await;
    f.assert_quiescent();
}

#[actix::test]
async fn a_restarted_pool_actor_is_tended_again() {
    // The first probe of an incarnation comes 30 to 60 minutes after its start.
    let f = warmed("restart", probed(secs(3600))).await;
    // A panic while opening a connection restarts the actor; the new incarnation closes
    // the old connections and refills, without waiting for a probe or a tick.
    f.server.panic_on_next_connects(1);
    f.pool.acquire().await.unwrap().discard();
    assert!(
        eventually(ms(100), || f.pool.stats().restarts == 1).await,
        "restarted"
    );
    assert!(
        eventually(ms(100), || f.pool.stats().idle == 1).await,
        "refilled by the new incarnation"
    );
    let s = f.pool.stats();
    assert_eq!((s.generation, s.live), (1, 1), "{s:?}");
    // And it is tended afterwards as before: once its acquire has left the percentile
    // windows, parked until its probe.
    settle_for(secs(61)).await;
    assert_eq!(runs_during(&f, secs(20)).await, 0);
    f.assert_quiescent();
}
