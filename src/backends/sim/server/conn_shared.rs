//! The part of a connection the server can see: its id and kill flag.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(in crate::backends::sim) struct ConnShared {
    id: u64,
    /// Killed, or dropped. Whoever sets it first takes the connection off `open`.
    dead: AtomicBool,
}

impl ConnShared {
    pub(super) fn new(id: u64) -> Self {
        Self {
            id,
            dead: AtomicBool::new(false),
        }
    }

    pub(super) fn mark_dead(&self, open: &AtomicUsize) -> bool {
        if self.dead.swap(true, Ordering::AcqRel) {
            false
        } else {
            open.fetch_sub(1, Ordering::Relaxed);
            true
        }
    }

    /// Unique within the world.
    pub(in crate::backends::sim) fn id(&self) -> u64 {
        self.id
    }

    pub(in crate::backends::sim) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }
}
