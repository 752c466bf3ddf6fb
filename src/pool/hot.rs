//! The few fields every acquire and release writes, kept together (one place for a later
//! cache-line layout): the pool's state, checked-out and served counts, waiters and when
//! the pool was last used.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::gauge::{Entered, Gauge};

/// Whether a pool serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PoolState {
    Open = 0,
    /// Evicted, reaped or removed.
    Closed = 1,
    /// The supervisor is shutting down.
    ShuttingDown = 2,
    /// Restarted too often: refuses acquires until revived.
    Failed = 3,
}

impl PoolState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Open,
            1 => Self::Closed,
            2 => Self::ShuttingDown,
            _ => Self::Failed,
        }
    }
}

pub(crate) struct Hot {
    state: AtomicU8,
    /// The state left `Open`: wakes acquires queued for a slot, which a failed pool would
    /// otherwise leave waiting out their whole acquire timeout.
    state_changed: Notify,
    in_use: AtomicUsize,
    served: AtomicU64,
    waiters: Gauge,
    epoch: Instant,
    last_used_ms: AtomicU64,
}

impl Hot {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            state: AtomicU8::new(PoolState::Open as u8),
            state_changed: Notify::new(),
            in_use: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            waiters: Gauge::default(),
            epoch: now,
            last_used_ms: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn state(&self) -> PoolState {
        PoolState::from_u8(self.state.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.state() == PoolState::Open
    }

    /// Move from `from` to `to`; answers whether this call did it. Leaving `Open` wakes
    /// the acquires queued for a slot.
    pub(super) fn transition(&self, from: PoolState, to: PoolState) -> bool {
        let moved = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if moved && from == PoolState::Open {
            self.state_changed.notify_waiters();
        }
        moved
    }

    /// Wake the acquires queued for a slot so they look at the state again.
    pub(super) fn wake_waiters(&self) {
        self.state_changed.notify_waiters();
    }

    /// Resolves at the next state change (enable it before reading the state).
    pub(super) fn changed(&self) -> Notified<'_> {
        self.state_changed.notified()
    }

    /// One more waiter until the guard drops; answers how many were queued before.
    #[inline]
    pub(super) fn queue(&self) -> (usize, Entered<'_>) {
        self.waiters.enter()
    }

    #[inline]
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.get()
    }

    /// A connection was handed out.
    #[inline]
    pub(super) fn checked_out(&self) {
        self.in_use.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// A checked-out connection came back (or its slot was reclaimed as a leak).
    #[inline]
    pub(super) fn checked_in(&self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    pub(super) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The pool's clock: nanoseconds from its epoch to `now`. The acquire and release
    /// paths read the time once each and do the rest of their time arithmetic on these
    /// integers (an `Instant` difference costs ~55 instructions; four of them were a
    /// sixth of an acquire + release under callgrind).
    #[inline]
    pub(super) fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The instant `nanos` from the pool's epoch (for comparing across pools).
    pub(super) fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// An acquire started at `now` ([`nanos`](Self::nanos)).
    #[inline]
    pub(super) fn touch(&self, now: u64) {
        let ms = now / 1_000_000;
        // Written at most once a millisecond: a store on every acquire would take the
        // cache line from the other cores each time; a load shares it.
        if self.last_used_ms.load(Ordering::Relaxed) != ms {
            self.last_used_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// When an acquire last started.
    pub(super) fn last_used(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed))
    }
}
