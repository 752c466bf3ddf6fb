//! The timetable on its own, with counting stand-ins for pools and paused time.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A pool that asks to come back `every` after each run (never when `None`).
struct Stub {
    runs: AtomicU64,
    every: Mutex<Option<Duration>>,
}

impl Stub {
    fn new(every: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            runs: AtomicU64::new(0),
            every: Mutex::new(every),
        })
    }

    fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

impl Tend for Stub {
    fn tend(&self, now: Instant, _jobs: &mut Vec<Job>) -> Option<Instant> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.every.lock().map(|every| now + every)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn register(timetable: &Timetable, stub: &Arc<Stub>) -> Ticket {
    let weak: Weak<dyn Tend> = Arc::downgrade(stub) as Weak<dyn Tend>;
    timetable.add(weak)
}

#[tokio::test(start_paused = true)]
async fn a_pool_runs_when_due_and_not_otherwise() {
    let timetable = Arc::new(Timetable::default());
    tokio::spawn(Arc::clone(&timetable).run());
    let every = Stub::new(Some(ms(100)));
    let never = Stub::new(None);
    register(&timetable, &every);
    let ticket = register(&timetable, &never);
    tokio::time::sleep(ms(1_050)).await;
    // At registration, then every 100 ms.
    assert_eq!(every.runs(), 11);
    assert_eq!(never.runs(), 1, "due once, at registration");
    assert_eq!(timetable.counts(), (2, 1), "only one of them has an entry");

    // Rung, it runs once more, a moment later.
    timetable.ring(ticket);
    tokio::time::sleep(ms(5)).await;
    assert_eq!(never.runs(), 2);
    tokio::time::sleep(ms(1_000)).await;
    assert_eq!(never.runs(), 2);

    // Removed, its slot is free for the next pool; a ring of the old ticket is ignored.
    timetable.remove(ticket);
    assert_eq!(timetable.counts(), (1, 1));
    let next = Stub::new(None);
    let reused = register(&timetable, &next);
    assert_eq!(reused.id, ticket.id);
    assert_ne!(reused, ticket);
    tokio::time::sleep(ms(5)).await;
    timetable.ring(ticket);
    tokio::time::sleep(ms(5)).await;
    assert_eq!(next.runs(), 1, "rung by a stale ticket");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_pool_is_skipped() {
    let timetable = Arc::new(Timetable::default());
    tokio::spawn(Arc::clone(&timetable).run());
    let stub = Stub::new(Some(ms(10)));
    register(&timetable, &stub);
    tokio::time::sleep(ms(15)).await;
    assert_eq!(stub.runs(), 2);
    drop(stub);
    tokio::time::sleep(ms(100)).await;
    assert_eq!(timetable.counts(), (1, 0), "no entry left for it");
}

#[test]
fn the_grid_rounds_the_right_way() {
    let unit = grid(Duration::from_secs(1));
    assert_eq!(unit, Duration::from_micros(62_500));
    assert_eq!(grid(Duration::from_secs(5)), ms(250));
    assert_eq!(grid(ms(3)), ms(1));
    let now = Instant::now() + ms(3);
    let up = round_up(now, unit);
    assert!(up >= now && up - now < unit);
    assert_eq!(round_up(up, unit), up);
    let now = up;
    let down = round_down(now + ms(500), unit, now);
    assert!(down <= now + ms(500) && now + ms(500) - down < unit);
    // Never rounded down to `after` or before.
    assert_eq!(round_down(now + ms(1), unit, now), now + ms(1));
}
