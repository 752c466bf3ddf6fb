//! Idle connections: a deque, most recently returned at the back (LIFO reuse keeps the
//! hot connections hot; the front holds the longest idle, for reaping).

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::conn::Conn;
use super::gauge::{Entered, Gauge};

pub(crate) struct Idle<C> {
    deque: Mutex<VecDeque<Conn<C>>>,
    /// Acquires holding a slot and waiting for a connection to come back (a breaker
    /// trial, a full server): a push wakes one of them. Zero on the usual path, where a
    /// push costs one more load.
    waiting: Gauge,
    returned: Notify,
}

impl<C> Idle<C> {
    /// Grows as connections are returned: nothing is allocated for the configured
    /// maximum up front.
    pub(super) fn new() -> Self {
        Self {
            deque: Mutex::new(VecDeque::new()),
            waiting: Gauge::default(),
            returned: Notify::new(),
        }
    }

    #[inline]
    pub(super) fn push(&self, conn: Conn<C>) {
        self.deque.lock().push_back(conn);
        // After the push: a waiter counted before it looked at the deque either saw the
        // connection or is woken here.
        if self.waiting.get() > 0 {
            self.returned.notify_one();
        }
    }

    /// Acquires holding a slot and waiting for a connection to come back.
    #[inline]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.get()
    }

    /// Resolves when a connection is pushed; counted as waiting until the guard drops
    /// (enable the future, then look at the deque).
    pub(super) fn wait_for_return(&self) -> (Notified<'_>, Entered<'_>) {
        let (_, waiting) = self.waiting.enter();
        (self.returned.notified(), waiting)
    }

    /// Give back room beyond twice what `keep` connections (or the idle ones, if more)
    /// need. Room grows four at a time from the first push: a pool that keeps one idle
    /// connection would carry three empty places for good.
    pub(super) fn trim(&self, keep: usize) {
        let mut idle = self.deque.lock();
        let keep = keep.max(idle.len());
        if idle.capacity() > 2 * keep {
            idle.shrink_to(keep);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.deque.lock().is_empty()
    }

    /// The most recently returned.
    #[inline]
    pub(super) fn pop(&self) -> Option<Conn<C>> {
        self.deque.lock().pop_back()
    }

    pub(crate) fn len(&self) -> usize {
        self.deque.lock().len()
    }

    /// When the longest-idle connection was last used (the pool's clock).
    pub(super) fn oldest(&self) -> Option<u64> {
        self.deque.lock().front().map(|c| c.used)
    }

    /// Take the longest-idle connection out.
    pub(super) fn pop_oldest(&self) -> Option<Conn<C>> {
        self.deque.lock().pop_front()
    }

    /// Take every idle connection out.
    pub(super) fn drain(&self) -> Vec<Conn<C>> {
        self.deque.lock().drain(..).collect()
    }

    /// Take out, longest idle first, every connection `doomed` picks; it is told how many
    /// are idle at that moment.
    pub(super) fn take_where(
        &self,
        mut doomed: impl FnMut(&mut Conn<C>, usize) -> bool,
    ) -> Vec<Conn<C>> {
        let mut picked = Vec::new();
        let mut idle = self.deque.lock();
        let mut i = 0;
        while i < idle.len() {
            let len = idle.len();
            if doomed(&mut idle[i], len) {
                picked.extend(idle.remove(i));
            } else {
                i += 1;
            }
        }
        picked
    }
}
