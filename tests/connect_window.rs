//! How many connects a pool runs at once: all that callers need (up to `max_connecting`)
//! on a healthy server, a slow start (from 4, then widening by one per success) after
//! connects failed against the endpoint, never held up by one connect that hangs, and no narrowing for failures that say nothing about it. Counted on the
//! simulated server (connects in flight), on paused tokio time.

mod support_pool;

use std::time::Duration;

use poolwarden::backends::sim::SimBehavior;
use poolwarden::{BackendErrorKind, PoolConfig};
use support_pool::*;
use tokio::time::Instant;

const CONNECT: Duration = Duration::from_millis(50);

/// 16 connections at most, the default `max_connecting`, connects taking 50 ms.
async fn fixture(name: &str) -> Fixture {
    let f = start(
        name,
        PoolConfig {
            max_size: 16,
            max_connecting: PoolConfig::default().max_connecting,
            backoff_initial: ms(10),
            backoff_max: ms(10),
            ..quiet_config()
        },
        SimBehavior {
            connect_latency: CONNECT,
            ..SimBehavior::default()
        },
    )
    .await;
    assert_eq!(f.pool.stats().connect_window, 16, "the default: 16");
    f
}

/// `n` callers acquire at once and keep their connections until all are served; answers
/// how long after the start each was served (earliest first), and the connections.
async fn serve_at_once(f: &Fixture, n: usize) -> (Vec<Duration>, Vec<impl Sized>) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move { pool.acquire().await.map(|c| (c, start.elapsed())) })
        })
        .collect();
    let (mut times, mut held) = (Vec::new(), Vec::new());
    for t in tasks {
        let (conn, at) = t.await.unwrap().expect("served");
        times.push(at);
        held.push(conn);
    }
    times.sort();
    (times, held)
}

#[actix::test]
async fn a_cold_start_on_a_healthy_server_opens_what_callers_need_at_once() {
    let f = fixture("cold").await;
    let (times, held) = serve_at_once(&f, 16).await;
    let took = times[15];
    assert_eq!(f.server.peak_in_flight_connects(), 16);
    assert_eq!(f.server.connect_attempts(), 16);
    // One round of connects, not four rounds of four.
    assert!(took < 2 * CONNECT, "16 callers served in {took:?}");
    assert_eq!(f.pool.stats().connect_window, 16);
    drop(held);
    settle().await;
    f.assert_quiescent();
}

#[actix::test]
async fn after_failed_connects_a_server_coming_back_sees_a_slow_start() {
    let f = fixture("slow").await;
    // Four connects fail against the endpoint (16 → 8 → 4 → 4 → 4: never under 4), one at
    // a time: a single caller retries until the fifth succeeds (4 → 5).
    f.server.fail_next_connects(4);
    drop(f.pool.acquire().await.expect("served on the fifth attempt"));
    let s = f.pool.stats();
    assert_eq!((s.connect_errors, s.idle), (4, 1), "{s:?}");
    assert_eq!(s.connect_window, 5, "{s:?}");
    assert_eq!(f.server.peak_in_flight_connects(), 1);

    // 16 callers: one takes the idle connection, 15 need connects. The window widens by
    // one per success: a round of 5 at once, then the other 10.
    let (times, held) = serve_at_once(&f, 16).await;
    let took = times[15];
    assert_eq!(f.server.peak_in_flight_connects(), 10);
    assert!(
        took >= 2 * CONNECT,
        "two rounds of connects, not one: served in {took:?}"
    );
    assert_eq!(f.pool.stats().connect_window, 16, "open again");
    drop(held);
    settle().await;
    f.assert_quiescent();
}

#[actix::test]
async fn a_connect_that_hangs_does_not_hold_up_the_others_after_failures() {
    let f = fixture("hang").await;
    // Narrowed to its floor of 4 (six failures would take a window without a floor to
    // 1), widened to 5 by a success; then one connect that never answers (until the 1 s
    // connect timeout) among 8 callers.
    f.server.fail_next_connects(6);
    drop(
        f.pool
            .acquire()
            .await
            .expect("served on the seventh attempt"),
    );
    let held = f.pool.acquire().await.expect("the idle one");
    assert_eq!(f.pool.stats().connect_window, 5);
    f.server.stall_next_connects(1);
    let (times, served) = serve_at_once(&f, 7).await;
    // Six of seven served by connects beside the stalled one: four at once, then (the
    // window widened by their successes) the other two, in two connect times (a window of
    // one beside the stall would take three rounds: 1, 2, 3); the seventh retries after
    // its attempt times out.
    assert!(
        times[5] <= 2 * CONNECT + ms(10),
        "six served by {:?}",
        times[5]
    );
    drop((held, served));
    settle().await;
    f.assert_quiescent();
}

#[actix::test]
async fn failures_that_say_nothing_about_the_endpoint_leave_the_window_open() {
    let f = fixture("refused").await;
    // A wrong database: the server is up and answering.
    f.server.fail_next_connects_as(BackendErrorKind::Config, 1);
    let err = f.pool.acquire().await.expect_err("refused");
    let s = f.pool.stats();
    assert_eq!((s.connect_errors, s.connect_window), (1, 16), "{err} {s:?}");
    let (_, held) = serve_at_once(&f, 16).await;
    assert_eq!(f.server.peak_in_flight_connects(), 16);
    drop(held);
    // Refused for capacity (then served by a try to grow, one at a time, see
    // tests/capacity.rs): the server is full, not down.
    f.server
        .fail_next_connects_as(BackendErrorKind::Capacity, 1);
    let _refused = f.pool.dedicated().await;
    assert!(f.pool.stats().connect_errors >= 2);
    let s = f.pool.stats();
    assert_eq!(s.connect_window, 16, "{s:?}");
    settle().await;
}

#[actix::test]
async fn connects_that_time_out_narrow_it_like_refused_ones() {
    let f = fixture("timeout").await;
    // Two connects that never answer end at the 1 s connect timeout: a timeout counts
    // against the endpoint (16 → 8 → 4); the third attempt opens (4 → 5).
    f.server.stall_next_connects(2);
    drop(f.pool.acquire().await.expect("served on the third attempt"));
    let s = f.pool.stats();
    assert_eq!((s.connect_errors, s.connect_window), (2, 5), "{s:?}");
    settle().await;
    f.assert_quiescent();
}
