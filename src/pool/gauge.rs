//! A count of things under way (waiters, connects, background opens) that a guard takes
//! back on drop, so no exit path (error, timeout, a dropped future) leaves it high.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub(super) struct Gauge(AtomicUsize);

impl Gauge {
    #[inline]
    pub(super) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Count one in until the guard is dropped; answers the count before this one.
    #[inline]
    pub(super) fn enter(&self) -> (usize, Entered<'_>) {
        (self.0.fetch_add(1, Ordering::Relaxed), Entered(self))
    }

    /// Count `n` in, each to be taken back by its own [`Entered`] from [`adopt`].
    ///
    /// [`adopt`]: Gauge::adopt
    pub(super) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// A guard for one of the `n` counted in by [`add`](Gauge::add).
    pub(super) fn adopt(&self) -> Entered<'_> {
        Entered(self)
    }
}

/// Takes one back from its gauge when dropped.
pub(super) struct Entered<'a>(&'a Gauge);

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}
