//! Leak detection end to end: a connection held past `leak_threshold` is reported once by
//! the maintenance tick (a warning, with a backtrace of the checkout when asked for), its
//! late return is logged; past `leak_reclaim_after` its slot is freed and the late return
//! only closes it; with detection off nothing is tracked; an exhausted pool times out at
//! the acquire timeout while the detector names the holders.

mod support_pool;

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use poolwarden::backends::sim::SimBehavior;
use poolwarden::{Error, Phase, PoolConfig, PooledConnection};
use support_pool::*;
use tokio::time::Instant;

// ----- captured logs -----------------------------------------------------------------------

/// Everything logged on this thread (the test's actix System runs the pool actor here too)
/// while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }

    /// Log records (a record may span lines: a backtrace) containing `needle`.
    fn records_with(&self, needle: &str) -> Vec<String> {
        let text = self.text();
        let mut records: Vec<String> = Vec::new();
        for line in text.lines() {
            let starts_record = ["TRACE ", "DEBUG ", " INFO ", " WARN ", "ERROR "]
                .iter()
                .any(|level| line.starts_with(level));
            match records.last_mut() {
                Some(last) if !starts_record => {
                    last.push('\n');
                    last.push_str(line);
                }
                _ => records.push(line.to_string()),
            }
        }
        records.retain(|r| r.contains(needle));
        records
    }
}

// ----- setup -------------------------------------------------------------------------------

const SUSPECTED: &str = "connection leak suspected";

fn config() -> PoolConfig {
    PoolConfig {
        max_size: 2,
        acquire_timeout: secs(30),
        leak_threshold: Some(secs(5)),
        maintenance_interval: secs(1),
        ..quiet_config()
    }
}

// ----- reporting ---------------------------------------------------------------------------

#[actix::test]
async fn a_connection_held_past_the_threshold_is_reported_once_and_its_return_logged() {
    let (logs, _guard) = Logs::capture();
    let f = start("reported", config(), SimBehavior::default()).await;
    let key = f.pool.key().to_string();

    let held = f.pool.acquire().await.unwrap();
    // Quick checkouts alongside are never reported.
    for _ in 0..20 {
        let conn = f.pool.acquire().await.unwrap();
        settle_for(ms(200)).await;
        drop(conn);
    }
    assert_eq!(f.pool.stats().leaks_reported, 0, "held 4s so far");

    // The first tick after 5s reports it.
    settle_for(secs(1) + ms(500)).await;
    let s = f.pool.stats();
    assert_eq!((s.leaks_reported, s.leaks_reclaimed), (1, 0), "{s:?}");
    let warnings = logs.records_with(SUSPECTED);
    assert_eq!(warnings.len(), 1, "{}", logs.text());
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains(&key),
        "names the pool: {}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("enable leak_backtrace"),
        "no backtrace was asked for: {}",
        warnings[0]
    );

    // Once only, however long it stays out.
    settle_for(secs(60)).await;
    assert_eq!(f.pool.stats().leaks_reported, 1);
    assert_eq!(logs.records_with(SUSPECTED).len(), 1);

    // Returned late: logged, and an ordinary return (kept, its slot freed).
    assert!(logs.records_with("leaked connection returned").is_empty());
    let id = held.id();
    drop(held);
    let returned = logs.records_with("leaked connection returned");
    assert_eq!(returned.len(), 1, "{}", logs.text());
    assert!(returned[0].contains(&key), "{}", returned[0]);
    let s = f.pool.stats();
    // Idle: it and the connection of the quick checkouts.
    assert_eq!((s.in_use, s.idle, s.live), (0, 2, 2), "{s:?}");
    assert_eq!(f.pool.acquire().await.unwrap().id(), id, "kept for reuse");
    f.assert_quiescent();
}

/// Checked out here, so that the backtrace has a frame to find.
async fn checkout_that_leaks(
    f: &Fixture,
) -> PooledConnection<poolwarden::backends::sim::SimBackend> {
    f.pool.acquire().await.unwrap()
}

#[actix::test]
async fn with_leak_backtrace_the_warning_shows_where_it_was_checked_out() {
    let (logs, _guard) = Logs::capture();
    let f = start(
        "backtrace",
        PoolConfig {
            leak_backtrace: true,
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    let held = checkout_that_leaks(&f).await;
    settle_for(secs(7)).await;
    assert_eq!(f.pool.stats().leaks_reported, 1);
    let warnings = logs.records_with(SUSPECTED);
    assert_eq!(warnings.len(), 1, "{}", logs.text());
    let warning = &warnings[0];
    assert!(warning.contains("backtrace="), "{warning}");
    assert!(
        warning.contains("checkout_that_leaks"),
        "the backtrace shows the checkout site: {warning}"
    );
    assert!(!warning.contains("enable leak_backtrace"), "{warning}");
    drop(held);
    f.assert_quiescent();
}

#[actix::test]
async fn with_leak_detection_off_nothing_is_tracked() {
    let (logs, _guard) = Logs::capture();
    let f = start(
        "off",
        PoolConfig {
            leak_threshold: None,
            leak_backtrace: true, // no effect without a threshold
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    let held = f.pool.acquire().await.unwrap();
    settle_for(secs(3600)).await;
    let s = f.pool.stats();
    assert_eq!((s.leaks_reported, s.leaks_reclaimed), (0, 0), "{s:?}");
    drop(held);
    let text = logs.text();
    assert!(!text.to_lowercase().contains("leak"), "{text}");
    let s = f.pool.stats();
    assert_eq!((s.in_use, s.idle), (0, 1), "{s:?}");
    f.assert_quiescent();
}

/// The clock starts when the connection is handed out: time spent queueing for a slot is
/// not time spent holding it.
#[actix::test]
async fn time_spent_waiting_for_a_slot_is_not_counted_as_holding() {
    let f = start(
        "queued",
        PoolConfig {
            max_size: 1,
            leak_threshold: Some(secs(5)),
            leak_reclaim_after: Some(secs(6)),
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    let first = f.pool.acquire().await.unwrap();
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle_for(ms(5_500)).await;
    assert_eq!(f.pool.stats().leaks_reported, 1, "the first holder, at 5s");
    drop(first); // at 5.5s: the waiter, queued since 0s, gets it now
    let second = waiter.await.unwrap().unwrap();

    // Held 2.5s (8s after it was asked for): neither reported nor reclaimed.
    settle_for(ms(2_500)).await;
    let s = f.pool.stats();
    assert_eq!((s.leaks_reported, s.leaks_reclaimed), (1, 0), "{s:?}");
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(
        is_wait_timeout(&err),
        "the slot of a connection in use was given away: {err:?}"
    );
    assert_eq!(f.server.open_connections(), 1);
    drop(second);
    f.assert_quiescent();
}

// ----- reclaiming --------------------------------------------------------------------------

#[actix::test]
async fn a_leak_past_reclaim_after_frees_its_slot_and_its_late_return_is_harmless() {
    let (logs, _guard) = Logs::capture();
    let f = start(
        "reclaim",
        PoolConfig {
            max_size: 1,
            leak_threshold: Some(secs(1)),
            leak_reclaim_after: Some(secs(3)),
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    let leaked = f.pool.acquire().await.unwrap();
    let t = Instant::now();
    let waiter = {
        let pool = f.pool.clone();
        tokio::spawn(async move { pool.acquire().await })
    };
    settle_for(ms(2_500)).await;
    let s = f.pool.stats();
    assert_eq!((s.leaks_reported, s.leaks_reclaimed), (1, 0), "{s:?}");
    assert_eq!(s.waiters, 1);

    // The first tick at or after 3s frees the slot: the waiter is served.
    let mut conn = waiter
        .await
        .unwrap()
        .expect("served from the reclaimed slot");
    let waited = t.elapsed();
    assert!(waited >= secs(3) && waited <= secs(4), "{waited:?}");
    conn.query("SELECT 1").await.unwrap();
    let s = f.pool.stats();
    assert_eq!((s.leaks_reported, s.leaks_reclaimed), (1, 1), "{s:?}");
    // The leaked connection is still open, held by its (forgetful) owner, but the pool no
    // longer counts it: it holds no slot.
    assert_eq!((s.in_use, s.live), (1, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), 2);
    assert_eq!(
        logs.records_with("reclaimed the slot of a leaked connection")
            .len(),
        1,
        "{}",
        logs.text()
    );

    // The late return closes it and frees nothing: the slot is the new holder's.
    let leaked_id = leaked.id();
    drop(leaked);
    let s = f.pool.stats();
    assert_eq!((s.in_use, s.live, s.idle), (1, 1, 0), "{s:?}");
    assert_eq!(f.server.open_connections(), 1);
    assert_eq!(logs.records_with("reclaimed connection returned").len(), 1);
    let err = f.pool.acquire_timeout(ms(100)).await.unwrap_err();
    assert!(
        is_wait_timeout(&err),
        "a second slot appeared on a max_size 1 pool: {err:?}"
    );

    drop(conn);
    settle().await;
    // Exactly max_size acquirable afterwards, and the books agree with the server.
    let again = f.pool.acquire().await.unwrap();
    assert_ne!(again.id(), leaked_id);
    assert!(
        f.pool.acquire_timeout(ms(100)).await.is_err(),
        "one slot only"
    );
    drop(again);
    let s = f.pool.stats();
    assert_eq!((s.in_use, s.leaks_reclaimed), (0, 1), "{s:?}");
    assert_eq!(f.server.open_connections(), s.live);
    f.assert_quiescent();
}

/// Two connections; a checkout held 1s is a leak, 2s reclaimed.
async fn reclaiming(name: &str) -> Fixture {
    let config = PoolConfig {
        max_size: 2,
        leak_threshold: Some(secs(1)),
        leak_reclaim_after: Some(secs(2)),
        ..config()
    };
    start(name, config, SimBehavior::default()).await
}

/// After a reclaim the pool no longer counts the leaked connection, so a healthy one
/// returned to the full pool is kept, not closed as overflow.
#[actix::test]
async fn after_a_reclaim_returned_connections_are_kept_not_closed_as_overflow() {
    let f = reclaiming("reclaimkeep").await;
    let leaked = f.pool.acquire().await.unwrap();
    settle_for(secs(3)).await;
    assert_eq!(f.pool.stats().leaks_reclaimed, 1);
    // Both slots are usable again, and what comes back stays.
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let (a_id, b_id) = (a.id(), b.id());
    drop(a);
    drop(b);
    let s = f.pool.stats();
    assert_eq!(
        (s.idle, s.live, s.closed),
        (2, 2, 0),
        "kept, not overflow: {s:?}"
    );
    // The leaked one back late: no room (2 idle = max_size), so it is closed.
    drop(leaked);
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.closed), (2, 2, 1), "{s:?}");
    let id = f.pool.acquire().await.unwrap().id();
    assert!(id == a_id || id == b_id, "one of the kept ones");
    f.assert_quiescent();
}

/// With room, a reclaimed connection back late is kept.
#[actix::test]
async fn a_reclaimed_connection_back_late_is_kept_when_there_is_room() {
    let f = reclaiming("reclaimroom").await;
    let leaked = f.pool.acquire().await.unwrap();
    let id = leaked.id();
    settle_for(secs(3)).await;
    drop(leaked);
    let s = f.pool.stats();
    assert_eq!((s.idle, s.live, s.in_use), (1, 1, 0), "{s:?}");
    assert_eq!(f.pool.acquire().await.unwrap().id(), id);
    f.assert_quiescent();
}

// ----- exhaustion --------------------------------------------------------------------------

#[actix::test]
async fn an_exhausted_pool_times_out_at_the_acquire_timeout_and_the_leak_detector_fires() {
    let (logs, _guard) = Logs::capture();
    let timeout = secs(4);
    let f = start(
        "exhausted",
        PoolConfig {
            max_size: 2,
            acquire_timeout: timeout,
            leak_threshold: Some(secs(2)),
            maintenance_interval: ms(250),
            ..config()
        },
        SimBehavior::default(),
    )
    .await;
    let held = [
        f.pool.acquire().await.unwrap(),
        f.pool.acquire().await.unwrap(),
    ];
    let within = |d: std::time::Duration| d >= timeout.mul_f64(0.9) && d <= timeout.mul_f64(1.1);

    let t = Instant::now();
    let err = f.pool.acquire().await.unwrap_err();
    let took = t.elapsed();
    match &err {
        Error::Timeout {
            phase: Phase::Wait,
            elapsed,
            key,
            ..
        } => {
            assert!(within(*elapsed), "{elapsed:?}");
            assert_eq!(*key, f.pool.key());
        }
        other => panic!("expected a wait timeout, got {other:?}"),
    }
    assert!(within(took), "returned after {took:?}");
    let s = f.pool.stats();
    assert_eq!(s.leaks_reported, 2, "both holders: {s:?}");
    assert_eq!(logs.records_with(SUSPECTED).len(), 2, "{}", logs.text());

    // The same through the supervisor's Acquire message.
    let t = Instant::now();
    let err = f.sup.acquire(f.pool.key()).await.unwrap_err();
    assert!(is_wait_timeout(&err), "{err:?}");
    assert!(within(t.elapsed()), "{:?}", t.elapsed());
    let s = f.pool.stats();
    assert_eq!((s.timeouts, s.waiters, s.in_use), (2, 0, 2), "{s:?}");
    assert_eq!(s.leaks_reported, 2, "still once each");
    assert_eq!(f.server.connect_attempts(), 2, "a waiter does not connect");

    drop(held);
    assert_eq!(logs.records_with("leaked connection returned").len(), 2);
    f.assert_quiescent();
}
