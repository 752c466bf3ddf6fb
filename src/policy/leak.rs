//! Leak detection as pure bookkeeping: checkouts in, returns out, a periodic scan reports
//! connections held past a threshold (once each) and picks those to reclaim. No I/O, no
//! actix; the pool owns one behind a mutex only when leak detection is enabled.

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

struct Entry {
    since: Instant,
    backtrace: Option<Arc<Backtrace>>,
    reported: bool,
}

/// Something the scan found.
#[derive(Debug, Clone)]
pub enum LeakEvent {
    /// Held past the threshold: reported once.
    Leaked {
        /// Checkout id.
        id: u64,
        /// How long it has been held.
        held: Duration,
        /// Where it was checked out, when capture is enabled.
        backtrace: Option<Arc<Backtrace>>,
    },
    /// Held past `reclaim_after`: its slot is to be freed now.
    Reclaim {
        /// Checkout id.
        id: u64,
        /// How long it has been held.
        held: Duration,
    },
}

/// What a return means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// An ordinary return.
    Normal,
    /// A connection reported as leaked came back.
    Late {
        /// How long it was held.
        held: Duration,
    },
    /// The slot was already reclaimed: close the connection, free nothing.
    Reclaimed,
}

/// Open checkouts and their ages.
pub struct LeakTracker {
    threshold: Duration,
    reclaim_after: Option<Duration>,
    entries: HashMap<u64, Entry>,
    next_id: u64,
}

impl LeakTracker {
    /// Report checkouts held past `threshold`; reclaim those held past `reclaim_after`.
    pub fn new(threshold: Duration, reclaim_after: Option<Duration>) -> Self {
        Self {
            threshold,
            reclaim_after,
            entries: HashMap::new(),
            next_id: 0,
        }
    }

    /// Record a checkout; answers its id.
    pub fn checkout(&mut self, now: Instant, backtrace: Option<Backtrace>) -> u64 {
        self.next_id += 1;
        self.entries.insert(
            self.next_id,
            Entry {
                since: now,
                backtrace: backtrace.map(Arc::new),
                reported: false,
            },
        );
        self.next_id
    }

    /// Record a return.
    pub fn checkin(&mut self, id: u64, now: Instant) -> Return {
        match self.entries.remove(&id) {
            None => Return::Reclaimed,
            Some(e) if e.reported => Return::Late {
                held: now.saturating_duration_since(e.since),
            },
            Some(_) => Return::Normal,
        }
    }

    /// Open checkouts held for `threshold` or longer at `now`: id, how long, backtrace.
    pub fn held_past_threshold(
        &self,
        now: Instant,
    ) -> Vec<(u64, Duration, Option<Arc<Backtrace>>)> {
        self.entries
            .iter()
            .filter_map(|(&id, e)| {
                let held = now.saturating_duration_since(e.since);
                (held >= self.threshold).then(|| (id, held, e.backtrace.clone()))
            })
            .collect()
    }

    /// Checkouts still open.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.entries.len()
    }

    /// Find new leaks (each reported once) and checkouts to reclaim (forgotten here, so
    /// their late return answers [`Return::Reclaimed`]).
    pub fn scan(&mut self, now: Instant) -> Vec<LeakEvent> {
        let mut events = Vec::new();
        let mut reclaim = Vec::new();
        for (&id, e) in self.entries.iter_mut() {
            let held = now.saturating_duration_since(e.since);
            if held >= self.threshold && !e.reported {
                e.reported = true;
                events.push(LeakEvent::Leaked {
                    id,
                    held,
                    backtrace: e.backtrace.clone(),
                });
            }
            if self.reclaim_after.is_some_and(|r| held >= r) {
                reclaim.push((id, held));
            }
        }
        for (id, held) in reclaim {
            self.entries.remove(&id);
            events.push(LeakEvent::Reclaim { id, held });
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reports_once_then_sees_the_late_return() {
        let mut t = LeakTracker::new(Duration::from_secs(5), None);
        let id = t.checkout(Instant::now(), None);
        let quick = t.checkout(Instant::now(), None);
        assert_eq!(t.checkin(quick, Instant::now()), Return::Normal);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(t.scan(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        let events = t.scan(Instant::now());
        assert!(
            matches!(events.as_slice(), [LeakEvent::Leaked { id: i, held, .. }] if *i == id && *held == Duration::from_secs(5))
        );
        assert!(t.scan(Instant::now()).is_empty(), "reported once");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            t.checkin(id, Instant::now()),
            Return::Late {
                held: Duration::from_secs(7)
            }
        );
        assert_eq!(t.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reclaims_and_makes_the_late_drop_harmless() {
        let mut t = LeakTracker::new(Duration::from_secs(1), Some(Duration::from_secs(3)));
        let id = t.checkout(Instant::now(), Some(Backtrace::force_capture()));
        tokio::time::advance(Duration::from_secs(3)).await;
        let events = t.scan(Instant::now());
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(
            &events[0],
            LeakEvent::Leaked {
                backtrace: Some(_),
                ..
            }
        ));
        assert!(matches!(events[1], LeakEvent::Reclaim { id: i, .. } if i == id));
        assert_eq!(t.checkin(id, Instant::now()), Return::Reclaimed);
        assert!(t.scan(Instant::now()).is_empty());
    }
}
