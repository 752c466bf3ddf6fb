//! Leak bookkeeping of one pool: off by default and then free. The tracker itself is a
//! pure state machine in `policy/leak.rs`; this records checkouts and returns, logs what
//! it finds and counts it.

use std::backtrace::Backtrace;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::key::PoolKey;
use crate::observe::leaks::trim;
use crate::observe::LeakReport;
use crate::policy::leak::{LeakEvent, LeakTracker, Return};

pub(crate) struct Leaks {
    key: PoolKey,
    /// Present only when leak detection is on (boxed: a pool without it keeps a pointer,
    /// not the tracker's room).
    tracker: Option<Box<Mutex<LeakTracker>>>,
    backtrace: bool,
    reported: AtomicU64,
    reclaimed: AtomicU64,
}

impl Leaks {
    pub(super) fn new(
        key: PoolKey,
        threshold: Option<Duration>,
        reclaim_after: Option<Duration>,
        backtrace: bool,
    ) -> Self {
        Self {
            key,
            tracker: threshold.map(|t| Box::new(Mutex::new(LeakTracker::new(t, reclaim_after)))),
            backtrace,
            reported: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
        }
    }

    /// Record a checkout; answers its id (0 when leak detection is off).
    #[inline]
    pub(super) fn checkout(&self) -> u64 {
        let Some(tracker) = &self.tracker else {
            return 0;
        };
        let backtrace = self.backtrace.then(Backtrace::force_capture);
        // Held from now: time spent queueing or connecting is not time spent holding
        // (timed from the acquire's start, a waiter could be reported, even reclaimed, at once).
        tracker.lock().checkout(Instant::now(), backtrace)
    }

    /// Record a return. False: the checkout was reclaimed as a leak (its slot is long
    /// free), so the connection comes back holding none.
    pub(super) fn checked_in(&self, id: u64, now: Instant) -> bool {
        let Some(tracker) = &self.tracker else {
            return true;
        };
        let answer = tracker.lock().checkin(id, now);
        match answer {
            Return::Normal => true,
            Return::Late { held } => {
                tracing::info!(pool = %self.key, checkout = id, ?held, "leaked connection returned");
                true
            }
            Return::Reclaimed => {
                tracing::info!(pool = %self.key, checkout = id, "reclaimed connection returned; kept only if there is room");
                false
            }
        }
    }

    /// Report connections held past the threshold (once each) and answer how many
    /// checkouts are reclaimed now (their slots are the caller's to free), with the
    /// number of events.
    pub(super) fn scan(&self) -> (usize, usize) {
        let Some(tracker) = &self.tracker else {
            return (0, 0);
        };
        let events = tracker.lock().scan(Instant::now());
        let n = events.len();
        let mut reclaim = 0;
        for event in events {
            match event {
                LeakEvent::Leaked {
                    id,
                    held,
                    backtrace,
                } => {
                    self.reported.fetch_add(1, Ordering::Relaxed);
                    match backtrace {
                        Some(bt) => {
                            tracing::warn!(pool = %self.key, checkout = id, ?held, backtrace = %bt, "connection leak suspected")
                        }
                        None => {
                            tracing::warn!(pool = %self.key, checkout = id, ?held, "connection leak suspected (enable leak_backtrace to see where it was checked out)")
                        }
                    }
                }
                LeakEvent::Reclaim { id, held } => {
                    self.reclaimed.fetch_add(1, Ordering::Relaxed);
                    reclaim += 1;
                    tracing::warn!(pool = %self.key, checkout = id, ?held, "reclaimed the slot of a leaked connection");
                }
            }
        }
        (n, reclaim)
    }

    /// The checkouts held past the threshold at `now`, longest first, with the caller's
    /// frames of their backtraces.
    pub(super) fn held(&self, now: Instant) -> Vec<LeakReport> {
        let Some(tracker) = &self.tracker else {
            return Vec::new();
        };
        // Rendered outside the lock: resolving symbols is slow.
        let held = tracker.lock().held_past_threshold(now);
        let mut reports: Vec<LeakReport> = held
            .into_iter()
            .map(|(checkout, held, backtrace)| LeakReport {
                checkout,
                held,
                backtrace: backtrace.map(|bt| trim(&bt.to_string())),
            })
            .collect();
        reports.sort_by(|a, b| b.held.cmp(&a.held).then(a.checkout.cmp(&b.checkout)));
        reports
    }

    pub(super) fn reported(&self) -> u64 {
        self.reported.load(Ordering::Relaxed)
    }

    pub(super) fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
    }
}
