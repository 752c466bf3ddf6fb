//! Idle connections: a deque, most recently returned at the back (LIFO reuse keeps the
//! hot connections hot; the front holds the longest idle, for reaping).

use std::collections::VecDeque;

use parking_lot::Mutex;

use super::conn::Conn;

pub(crate) struct Idle<C> {
    deque: Mutex<VecDeque<Conn<C>>>,
}

impl<C> Idle<C> {
    /// Grows as connections are returned: nothing is allocated for the configured
    /// maximum up front.
    pub(super) fn new() -> Self {
        Self {
            deque: Mutex::new(VecDeque::new()),
        }
    }

    #[inline]
    pub(super) fn push(&self, conn: Conn<C>) {
        self.deque.lock().push_back(conn);
    }

    /// The most recently returned.
    #[inline]
    pub(super) fn pop(&self) -> Option<Conn<C>> {
        self.deque.lock().pop_back()
    }

    pub(crate) fn len(&self) -> usize {
        self.deque.lock().len()
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
