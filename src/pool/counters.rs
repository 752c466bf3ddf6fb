//! Every counter of a pool that the acquire path does not write on each call (as bb8's
//! `AtomicStatistics`); `stats.rs` reads them into a snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::gauge::{Entered, Gauge};

#[derive(Default)]
pub(crate) struct Counters {
    /// Open connections: idle, checked out, being probed or reset.
    live: AtomicUsize,
    created: AtomicU64,
    closed: AtomicU64,
    timeouts: AtomicU64,
    connect_errors: AtomicU64,
    panics: AtomicU64,
    restarts: AtomicU64,
    /// Connect attempts in progress.
    connecting: Gauge,
    /// Background opens (warm, refill) not finished yet, so that a refill does not start
    /// another batch while the last one is still connecting.
    warming: Gauge,
    /// Hook runs that failed, timed out or panicked (`hook_run.rs`), and of those the
    /// timeouts and the panics.
    hook_failures: AtomicU64,
    hook_timeouts: AtomicU64,
    hook_panics: AtomicU64,
    /// Dedicated connections open (`dedicated.rs`): outside `live` and the slots.
    dedicated: AtomicUsize,
    /// Connects (acquires, dedicated, verifications) that waited for the connection
    /// budget, and idle connections closed to make room in it for another pool.
    budget_waits: AtomicU64,
    budget_evictions: AtomicU64,
}

impl Counters {
    pub(super) fn opened(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn closed(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A checked-out connection was reclaimed as a leak: its borrower still holds it,
    /// but the pool no longer counts it (it holds no slot, and must not make a returned
    /// healthy connection look like overflow).
    pub(super) fn detached(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// A reclaimed connection came back: counted again until it is kept or closed.
    pub(super) fn reattached(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub(super) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn connect_failed(&self) {
        self.connect_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn budget_waited(&self) {
        self.budget_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn budget_evicted(&self) {
        self.budget_evictions.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn budget_figures(&self) -> (u64, u64) {
        (
            self.budget_waits.load(Ordering::Relaxed),
            self.budget_evictions.load(Ordering::Relaxed),
        )
    }

    pub(super) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// A connect attempt under way until the guard drops.
    pub(super) fn connecting(&self) -> Entered<'_> {
        self.connecting.enter().1
    }

    pub(super) fn connects_under_way(&self) -> usize {
        self.connecting.get()
    }

    pub(super) fn warming(&self) -> &Gauge {
        &self.warming
    }

    pub(super) fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    pub(super) fn closed_total(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    pub(super) fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    pub(super) fn connect_errors(&self) -> u64 {
        self.connect_errors.load(Ordering::Relaxed)
    }

    pub(super) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// A hook run failed (an error, a timeout or a panic).
    pub(super) fn hook_failed(&self, timed_out: bool, panicked: bool) {
        self.hook_failures.fetch_add(1, Ordering::Relaxed);
        if timed_out {
            self.hook_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if panicked {
            self.hook_panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hook runs that failed, timed out, panicked: (failures, timeouts, panics).
    pub(super) fn hook_figures(&self) -> (u64, u64, u64) {
        (
            self.hook_failures.load(Ordering::Relaxed),
            self.hook_timeouts.load(Ordering::Relaxed),
            self.hook_panics.load(Ordering::Relaxed),
        )
    }

    /// A dedicated connection was handed out: no longer `live` (it takes no slot and does
    /// not count toward `max_size`), counted as dedicated instead.
    pub(super) fn dedicated_out(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.dedicated.fetch_add(1, Ordering::Relaxed);
    }

    /// A dedicated connection is being closed: counted live again until `closed`.
    pub(super) fn dedicated_in(&self) {
        self.dedicated.fetch_sub(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn dedicated(&self) -> usize {
        self.dedicated.load(Ordering::Relaxed)
    }
}
