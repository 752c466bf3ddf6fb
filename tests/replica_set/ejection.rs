//! Ejection, fallback, retry: dead, busy and breaker-open replicas, reads falling back
//! to the primary (or failing without the fallback), and the retry-once rule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{default_read, delta, ms, start_set, within, Fx, ACQUIRE, INTERVAL, PROBE};
use poolwarden::backends::sim::{SimBehavior, SimServer};
use poolwarden::{BackendErrorKind, BreakerState, Error, Phase, PoolKey};
use tokio::time::{sleep, Instant};

#[derive(Debug)]
enum Failure {
    Acquire(String),
    Query(PoolKey, BackendErrorKind),
}

#[actix::test]
async fn a_dead_replica_under_load_is_ejected_then_readmitted() {
    let fx = start_set("load", 3, |_| {}).await;
    for s in &fx.servers {
        s.set_behavior(SimBehavior {
            query_latency: ms(2),
            ..SimBehavior::default()
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<(Instant, Failure)>>> = Arc::default();
    let served = Arc::new(Mutex::new(0u64));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (set, stop, failures, served, slowest) = (
                fx.set.clone(),
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&served),
                Arc::clone(&slowest),
            );
            actix::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let read = set.read().await;
                    {
                        let mut slowest = slowest.lock().unwrap();
                        *slowest = (*slowest).max(asked.elapsed());
                    }
                    match read {
                        Ok(mut conn) => match conn.query("SELECT 1").await {
                            Ok(_) => *served.lock().unwrap() += 1,
                            Err(e) => failures
                                .lock()
                                .unwrap()
                                .push((Instant::now(), Failure::Query(conn.key(), e.kind()))),
                        },
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push((Instant::now(), Failure::Acquire(e.to_string()))),
                    }
                    sleep(ms(1)).await;
                }
            })
        })
        .collect();

    sleep(ms(300)).await;
    assert!(fx.info(2).reads > 0, "r2 served reads before it died");
    assert!(failures.lock().unwrap().is_empty());

    let in_use_at_kill = fx.info(2).in_use;
    fx.servers[2].go_down();
    let to_eject = within(INTERVAL + PROBE, "r2 is ejected", || !fx.usable(2)).await;
    let ejected_at = Instant::now();
    let r2_reads = fx.info(2).reads;
    let served_at_eject = *served.lock().unwrap();

    sleep(ms(1000)).await;
    {
        let failures = failures.lock().unwrap();
        // Before the ejection, only reads whose query was running on r2 when it died
        // failed; no acquire failed (a refused connect is retried on another member).
        // After it, none at all.
        for (at, f) in failures.iter() {
            assert!(
                *at < ejected_at,
                "failed after ejection ({to_eject:?}): {f:?}"
            );
            match f {
                Failure::Query(key, kind) => {
                    assert_eq!(*key, fx.keys[2], "{f:?}");
                    assert_eq!(*kind, BackendErrorKind::Closed, "{f:?}");
                }
                Failure::Acquire(e) => panic!("an acquire failed: {e}"),
            }
        }
        assert!(failures.len() <= in_use_at_kill, "{failures:?}");
    }
    assert_eq!(fx.info(2).reads, r2_reads, "no read went to the ejected r2");
    assert!(*served.lock().unwrap() > served_at_eject + 1000);
    assert!(fx.usable(1) && fx.usable(3) && fx.usable(0));

    // Recovery: once the probes see it again (and its breaker closes), it serves again.
    let r2_queries = fx.servers[2].queries();
    fx.servers[2].come_up();
    within(ms(3000), "r2 is readmitted", || fx.usable(2)).await;
    sleep(ms(500)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(
        fx.info(2).reads > r2_reads + 50,
        "r2 reads again: {:?}",
        fx.info(2)
    );
    assert!(fx.servers[2].queries() > r2_queries + 50);
    assert!(
        failures
            .lock()
            .unwrap()
            .iter()
            .all(|(at, _)| *at < ejected_at),
        "no failure after the ejection, recovery included"
    );
    // Reads routed to r2 before its ejection did not sit out the acquire timeout there:
    // one refused connect, then another member.
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < ms(50), "slowest acquire: {slowest:?}");
}

#[actix::test]
async fn all_replicas_down_sends_reads_to_the_primary() {
    let fx = start_set("alldown", 3, |_| {}).await;
    for s in &fx.servers[1..] {
        s.go_down();
    }
    within(INTERVAL + PROBE, "every replica is ejected", || {
        (1..=3).all(|i| !fx.usable(i))
    })
    .await;
    assert!(fx.usable(0));
    let before = fx.queries();
    assert_eq!(fx.reads(30, default_read()).await, vec![30, 0, 0, 0]);
    assert_eq!(delta(&fx.queries(), &before), vec![30, 0, 0, 0]);

    // One replica back: reads leave the primary again.
    fx.servers[3].come_up();
    within(ms(3000), "r3 is readmitted", || fx.usable(3)).await;
    assert_eq!(fx.reads(10, default_read()).await, vec![0, 0, 0, 10]);
}

#[actix::test]
async fn without_fallback_reads_fail_when_no_replica_is_usable() {
    let fx = start_set("nofallback", 2, |c| c.fallback_to_primary = false).await;
    for s in &fx.servers[1..] {
        s.go_down();
    }
    within(INTERVAL + PROBE, "every replica is ejected", || {
        !fx.usable(1) && !fx.usable(2)
    })
    .await;
    match fx.set.read().await {
        Err(Error::NoMember { set }) => assert_eq!(set, "nofallback"),
        other => panic!("expected NoMember, got {other:?}"),
    }
    // Writes are not reads: the primary still takes them.
    assert_eq!(fx.write().await.0, fx.keys[0]);
}

#[actix::test]
async fn a_busy_replica_is_not_mistaken_for_a_dead_one() {
    let fx = start_set("busy", 3, |_| {}).await;
    // Every slot of every replica checked out (4 each): the topology probe cannot get
    // a connection within its budget, which says nothing about the servers.
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(fx.set.read().await.unwrap());
    }
    for i in 1..=3 {
        assert_eq!(fx.info(i).in_use, 4);
    }
    sleep(INTERVAL * 3).await;
    for i in 1..=3 {
        assert!(fx.usable(i), "busy is not dead: {:?}", fx.info(i));
    }
    // A read routed to a saturated member waits for a slot there (waiting is not a
    // failed connect, so it is not retried elsewhere).
    let waiting = {
        let set = fx.set.clone();
        actix::spawn(async move { set.read().await.map(|c| c.key()) })
    };
    // Rounds start every 200 ms and wait 100 ms for a slot; at +150 ms none is waiting.
    sleep(ms(150)).await;
    assert_eq!(fx.info(1).in_use, 4);
    assert_eq!(
        fx.set.member(fx.keys[1]).unwrap().waiters,
        1,
        "round-robin's turn: r1"
    );
    let released = held.remove(0);
    assert_eq!(fx.index(released.key()), 1);
    drop(released);
    let key = waiting.await.unwrap().expect("served once a slot frees");
    assert_eq!(fx.index(key), 1);
    drop(held);
}

#[actix::test]
async fn a_read_whose_connect_fails_is_retried_once_on_another_member() {
    let fx = start_set("retry", 3, |c| {
        c.topology_interval = Duration::from_secs(3600)
    })
    .await;
    // The first topology round left one idle connection per member: take them away so
    // reads must connect.
    for s in &fx.servers {
        s.kill_all();
    }
    let attempts =
        |fx: &Fx| -> Vec<u64> { fx.servers.iter().map(SimServer::connect_attempts).collect() };
    let before = attempts(&fx);
    fx.servers[1].fail_next_connects(1);
    let start = Instant::now();
    let mut conn = fx.set.read().await.expect("served by another member");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no backoff before the retry"
    );
    conn.query("SELECT 1").await.unwrap();
    assert_eq!(fx.index(conn.key()), 2, "round-robin's next member took it");
    // r1 got exactly one attempt: no backoff retries while another member could serve.
    assert_eq!(delta(&attempts(&fx), &before), vec![0, 1, 1, 0]);
    drop(conn);
    assert_eq!(fx.info(1).reads, 0);
    assert_eq!(fx.info(2).reads, 1);
}

#[actix::test]
async fn the_retry_happens_once_and_within_the_same_deadline() {
    let fx = start_set("once", 3, |c| {
        c.topology_interval = Duration::from_secs(3600);
        // The retry runs to the deadline, not cut short by the breaker.
        if let Some(pool) = &mut c.pool {
            pool.breaker.failure_threshold = u32::MAX;
        }
    })
    .await;
    // r1 and r2 die, but no probe has noticed: routing still sees them usable.
    fx.servers[1].go_down();
    fx.servers[2].go_down();
    assert!(fx.usable(1) && fx.usable(2));
    let before: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    let start = Instant::now();
    let err = fx.set.read().await.expect_err("two dead members");
    // r1 failed fast, r2 (the retry) kept trying until the one deadline, r3 was never
    // tried: a read is retried once, not until something answers.
    match &err {
        Error::Timeout { key, phase, .. } => {
            assert_eq!(*key, fx.keys[2], "{err}");
            assert_eq!(*phase, Phase::Connect, "{err}");
        }
        other => panic!("expected the retry's timeout, got {other:?}"),
    }
    // One deadline for both tries (a fresh budget for the retry would take twice as
    // long); the timer wheel rounds deadlines up to the next millisecond.
    let took = start.elapsed();
    assert!(
        took >= ACQUIRE && took <= ACQUIRE + ms(1),
        "one acquire deadline for both tries: {took:?}"
    );
    let after: Vec<u64> = fx.servers.iter().map(SimServer::connect_attempts).collect();
    let d = delta(&after, &before);
    assert_eq!((d[0], d[1], d[3]), (0, 1, 0), "{d:?}");
    assert!(d[2] > 1, "the retry backs off and tries again: {d:?}");
}

#[actix::test]
async fn a_replica_whose_breaker_opens_is_skipped_without_failing_reads() {
    let fx = start_set("breaker", 3, |c| {
        c.topology_interval = Duration::from_secs(3600)
    })
    .await;
    for s in &fx.servers {
        s.kill_all();
    }
    // r1 refuses the next 5 connects (the breaker's threshold) but stays up, so only
    // the breaker, not a topology probe, can eject it.
    fx.servers[1].fail_next_connects(5);
    let counts = fx.reads(15, default_read()).await;
    assert_eq!(counts[1], 0, "{counts:?}");
    assert_eq!(
        counts.iter().sum::<usize>(),
        15,
        "no read failed: {counts:?}"
    );
    let r1 = fx.info(1);
    assert_eq!(r1.breaker, BreakerState::Open, "{r1:?}");
    assert!(!r1.usable);
    assert_eq!(
        fx.servers[1].connect_attempts(),
        6,
        "5 refused reads + the first probe"
    );
    // While it is open, r1 gets no attempt at all and the others share exactly.
    assert_eq!(fx.reads(30, default_read()).await, vec![0, 0, 15, 15]);
    assert_eq!(fx.servers[1].connect_attempts(), 6);
}
