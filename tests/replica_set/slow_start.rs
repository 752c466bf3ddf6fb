//! Slow start: a replica readmitted after an ejection, or added at run time, takes a share
//! of reads that grows over `slow_start_window`, never at the cost of a read going to the
//! primary; without a window it takes its full share at once.
//!
//! Reads run back to back in paused time (the clock does not move during a count), and
//! the clock is moved between counts with `sleep`.

use std::time::Duration;

use crate::{default_read, ms, settle, start_set, within, Fx, INTERVAL, PROBE};
use poolwarden::{ConnectionConfig, Role, Strategy};
use tokio::time::sleep;

const WINDOW: Duration = Duration::from_secs(10);

/// Take replica `i` down until a probe ejects it, bring it back until a probe readmits it.
async fn eject_and_readmit(fx: &Fx, i: usize) {
    fx.servers[i].go_down();
    within(INTERVAL + PROBE, "ejected", || !fx.usable(i)).await;
    fx.servers[i].come_up();
    within(ms(3000), "readmitted", || fx.usable(i)).await;
}

/// How many of `n` reads replica `i` served.
async fn served_by(fx: &Fx, i: usize, n: usize) -> usize {
    fx.reads(n, default_read()).await[i]
}

/// A replica of three is ejected and readmitted; its reads, counted at the start, half-way
/// and at the end of the window, grow from a tenth of its due to all of it.
async fn ramps_up_after_readmission(strategy: Strategy) {
    let fx = start_set(&format!("ramp-{strategy:?}"), 3, |c| {
        c.strategy = strategy;
        c.slow_start_window = WINDOW;
    })
    .await;
    eject_and_readmit(&fx, 2).await;
    // Its due is 1,000 of 3,000. Drawn (power of two, equal loads), it takes part in a
    // read with its share's chance p and wins a third of those: 1,000 p. Taken in turn, a
    // skipped turn also shortens the round (r1, r3, r1…), so it gets p / (2 + p) of the
    // reads.
    let expect = |p: f64| match strategy {
        Strategy::RoundRobin => 3_000.0 * p / (2.0 + p),
        _ => 1_000.0 * p,
    };
    let near = |n: usize, p: f64| (n as f64 - expect(p)).abs() <= expect(p) * 0.35;
    // The first read after its return starts the ramp, at a tenth.
    let start = served_by(&fx, 2, 3_000).await;
    assert!(near(start, 0.1), "{strategy:?} at the start: {start}");
    sleep(WINDOW / 2).await;
    let half = served_by(&fx, 2, 3_000).await;
    assert!(near(half, 0.5), "{strategy:?} half-way: {half}");
    assert!(half > start * 2, "{strategy:?}: {start} then {half}");
    sleep(WINDOW / 2).await;
    let counts = fx.reads(3_000, default_read()).await;
    match strategy {
        Strategy::RoundRobin => assert_eq!(counts, vec![0, 1_000, 1_000, 1_000]),
        _ => {
            assert_eq!(counts[0], 0);
            assert!(counts[2].abs_diff(1_000) < 150, "{counts:?}");
        }
    }
}

#[actix::test]
async fn a_readmitted_replica_ramps_up_over_the_window_round_robin() {
    ramps_up_after_readmission(Strategy::RoundRobin).await;
}

#[actix::test]
async fn a_readmitted_replica_ramps_up_over_the_window_power_of_two() {
    ramps_up_after_readmission(Strategy::PowerOfTwo).await;
}

#[actix::test]
async fn a_member_added_at_run_time_ramps_up_too() {
    let mut fx = start_set("ramp-added", 2, |c| c.slow_start_window = WINDOW).await;
    let r3 = ConnectionConfig::sim("ramp-added-r3");
    let server = fx.sim.server(&r3.primary_host());
    server.replicate_from(fx.primary());
    fx.keys
        .push(fx.set.add_member(r3, Role::Replica).await.unwrap());
    fx.servers.push(server);
    settle().await;
    assert!(fx.usable(3));
    // A tenth of its turns: about 3,000 / 21 = 143 of 3,000 (see above), not 1,000.
    let start = served_by(&fx, 3, 3_000).await;
    assert!((90..=200).contains(&start), "{start}");
    sleep(WINDOW).await;
    assert_eq!(
        fx.reads(3_000, default_read()).await,
        vec![0, 1_000, 1_000, 1_000]
    );
}

#[actix::test]
async fn warming_replicas_alone_still_take_every_read() {
    let fx = start_set("ramp-alone", 2, |c| {
        c.slow_start_window = WINDOW;
        c.fallback_to_primary = true;
    })
    .await;
    for s in &fx.servers[1..] {
        s.go_down();
    }
    within(INTERVAL + PROBE, "both ejected", || {
        !fx.usable(1) && !fx.usable(2)
    })
    .await;
    assert_eq!(fx.reads(10, default_read()).await, vec![10, 0, 0]);
    // r2 back, warming, the only replica: every read is its, none the primary's.
    fx.servers[2].come_up();
    within(ms(3000), "r2 readmitted", || fx.usable(2)).await;
    assert_eq!(fx.reads(100, default_read()).await, vec![0, 0, 100]);
}

#[actix::test]
async fn without_a_window_a_readmitted_replica_takes_its_full_share_at_once() {
    let fx = start_set("ramp-none", 3, |_| {}).await;
    assert_eq!(fx.config.slow_start_window, Duration::ZERO);
    eject_and_readmit(&fx, 2).await;
    assert_eq!(
        fx.reads(3_000, default_read()).await,
        vec![0, 1_000, 1_000, 1_000]
    );
}
