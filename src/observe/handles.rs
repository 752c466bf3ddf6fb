//! One pool's `metrics` handles, registered at the pool actor's start with the
//! `db.client.connection.pool.name` label (one shared string for all its series). The
//! series the acquire path, the maintenance run and connects record into are kept as
//! handles, so recording them is a handle call, never a registry lookup; the series of
//! rarer events (closes by reason, connect failures by kind, breaker transitions,
//! restarts, leaks) are registered at the start too, so each exists at zero, and looked up
//! again when counted: 24 handles fewer per pool. Wait and use times reach the recorder
//! from the percentile windows at each maintenance run (`flush`), not from the acquire
//! path: an acquire pays for the window, never for the recorder.

use std::sync::Arc;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, SharedString};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::names as n;
use super::reason::CloseReason;
use super::window::{midpoint, Window, BUCKETS};
use crate::error::BackendErrorKind;
use crate::policy::breaker::BreakerState;

/// What a window's slices held at the last flush, per bucket.
struct Sent {
    wait: [[u32; BUCKETS]; 2],
    used: [[u32; BUCKETS]; 2],
}

pub(crate) struct Handles {
    /// The label of every series of the pool.
    pool: SharedString,
    pub(super) timeouts: Counter,
    pub(super) saturated: Counter,
    pub(super) connect_attempts: Counter,
    pub(super) create_time: Histogram,
    breaker_state: Gauge,
    idle: Gauge,
    used: Gauge,
    pending: Gauge,
    idle_max: Gauge,
    idle_min: Gauge,
    max: Gauge,
    wait_time: Histogram,
    use_time: Histogram,
    /// Allocated at the first flush with something to send.
    sent: Mutex<Option<Box<Sent>>>,
}

const BREAKER_STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];

impl Handles {
    pub(super) fn new(pool: &Arc<str>) -> Self {
        n::describe();
        let p = SharedString::from(Arc::clone(pool));
        // The rarely counted series: registered now, so that each exists at zero.
        for name in [n::RESTARTS, n::LEAKS_REPORTED, n::LEAKS_RECLAIMED] {
            let _ = counter!(name, n::POOL_NAME => p.clone());
        }
        for kind in n::ERROR_KINDS {
            let _ = counter!(n::CONNECT_FAILURES, n::POOL_NAME => p.clone(), n::ERROR_KIND => n::error_kind(kind));
        }
        for reason in CloseReason::ALL {
            let _ = counter!(n::CLOSED, n::POOL_NAME => p.clone(), n::REASON => reason.as_str());
        }
        for to in BREAKER_STATES {
            let _ = counter!(n::BREAKER_TRANSITIONS, n::POOL_NAME => p.clone(), n::TO => n::breaker_state(to));
        }
        Self {
            timeouts: counter!(n::TIMEOUTS, n::POOL_NAME => p.clone()),
            saturated: counter!(n::SATURATED, n::POOL_NAME => p.clone()),
            connect_attempts: counter!(n::CONNECT_ATTEMPTS, n::POOL_NAME => p.clone()),
            create_time: histogram!(n::CREATE_TIME, n::POOL_NAME => p.clone()),
            breaker_state: gauge!(n::BREAKER_STATE, n::POOL_NAME => p.clone()),
            idle: gauge!(n::CONNECTION_COUNT, n::POOL_NAME => p.clone(), n::STATE => "idle"),
            used: gauge!(n::CONNECTION_COUNT, n::POOL_NAME => p.clone(), n::STATE => "used"),
            pending: gauge!(n::PENDING_REQUESTS, n::POOL_NAME => p.clone()),
            idle_max: gauge!(n::IDLE_MAX, n::POOL_NAME => p.clone()),
            idle_min: gauge!(n::IDLE_MIN, n::POOL_NAME => p.clone()),
            max: gauge!(n::MAX, n::POOL_NAME => p.clone()),
            wait_time: histogram!(n::WAIT_TIME, n::POOL_NAME => p.clone()),
            use_time: histogram!(n::USE_TIME, n::POOL_NAME => p.clone()),
            sent: Mutex::new(None),
            pool: p,
        }
    }

    pub(super) fn closed(&self, reason: CloseReason) {
        counter!(n::CLOSED, n::POOL_NAME => self.pool.clone(), n::REASON => reason.as_str())
            .increment(1);
    }

    pub(super) fn connect_failed(&self, kind: BackendErrorKind) {
        counter!(n::CONNECT_FAILURES, n::POOL_NAME => self.pool.clone(), n::ERROR_KIND => n::error_kind(kind))
            .increment(1);
    }

    pub(super) fn restarted(&self) {
        counter!(n::RESTARTS, n::POOL_NAME => self.pool.clone()).increment(1);
    }

    pub(super) fn leaks(&self, reported: u64, reclaimed: u64) {
        counter!(n::LEAKS_REPORTED, n::POOL_NAME => self.pool.clone()).increment(reported);
        counter!(n::LEAKS_RECLAIMED, n::POOL_NAME => self.pool.clone()).increment(reclaimed);
    }

    /// The breaker is in `state`; `moved`: it just moved there.
    pub(super) fn breaker(&self, state: BreakerState, moved: Option<BreakerState>) {
        self.breaker_state.set(n::breaker_code(state));
        if let Some(to) = moved {
            counter!(n::BREAKER_TRANSITIONS, n::POOL_NAME => self.pool.clone(), n::TO => n::breaker_state(to))
                .increment(1);
        }
    }

    pub(super) fn levels(&self, l: super::levels::Levels) {
        self.idle.set(l.idle as f64);
        self.used.set(l.used as f64);
        self.pending.set(l.pending as f64);
        self.idle_max.set(l.max_size as f64);
        self.idle_min.set(l.min_idle as f64);
        self.max.set((l.max_size + l.max_overflow) as f64);
    }

    /// Send what the windows gathered since the last flush to the histograms (each
    /// duration as the middle of its bucket), rotating a window when due (its outgoing
    /// slice flushed first, so nothing recorded is lost to the recorder).
    /// `served`: the pool's count of checkouts, of which the wait window records only
    /// the nonzero waits.
    pub(super) fn flush(&self, wait: &Window, used: &Window, now: Instant, served: u64) {
        let mut guard = self.sent.lock();
        let sent = guard.get_or_insert_with(|| {
            Box::new(Sent {
                wait: [[0; BUCKETS]; 2],
                used: [[0; BUCKETS]; 2],
            })
        });
        flush_one(wait, &mut sent.wait, &self.wait_time, now, served);
        flush_one(used, &mut sent.used, &self.use_time, now, 0);
    }
}

/// `total`: as for [`Window::rotate`].
fn flush_one(w: &Window, sent: &mut [[u32; BUCKETS]; 2], to: &Histogram, now: Instant, total: u64) {
    for (i, slice_sent) in sent.iter_mut().enumerate() {
        send(w, i, slice_sent, to, total);
    }
    if w.due(now) {
        let next = 1 - w.current();
        // Stragglers since the loop above, then the slice is emptied and made current.
        send(w, next, &mut sent[next], to, total);
        w.rotate(now, total);
        sent[next] = [0; BUCKETS];
    }
}

fn send(w: &Window, slice: usize, sent: &mut [u32; BUCKETS], to: &Histogram, total: u64) {
    for (b, (now, was)) in w
        .counts(slice, total)
        .into_iter()
        .zip(sent.iter_mut())
        .enumerate()
    {
        // A slice's count, like a bucket's, is kept in 32 bits here: 30 s of zeros at 140
        // million a second.
        let now = now.min(u64::from(u32::MAX)) as u32;
        if now > *was {
            to.record_many(midpoint(b) as f64 / 1e9, (now - *was) as usize);
            *was = now;
        }
    }
}
