//! The runtime a supervisor's own connects run on.
//!
//! A backend may start a task per connection (tokio-postgres drives each connection with
//! one, spawned where the connect runs). Connections opened by an acquire are opened in the
//! caller's task, so their driver runs where the callers are. Connections the pool opens
//! by itself — warm-up and refill to `min_idle`, a probe with nothing idle — would
//! otherwise be opened on the supervisor's thread, and every query on them would cross
//! threads (measured: 1.28x the p50 of a `SELECT 1`, docs/benchmarks.md scenario 7). So
//! those connects run on the callers' runtime: the one an [`EmbeddedSupervisor`] was
//! spawned from, else the one of the first acquire.
//!
//! [`EmbeddedSupervisor`]: crate::EmbeddedSupervisor

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::runtime::Handle;

/// Shared by a supervisor and all its pools.
#[derive(Debug, Default)]
pub(crate) struct Home {
    handle: Mutex<Option<Handle>>,
    known: AtomicBool,
}

impl Home {
    pub(crate) fn new(handle: Option<Handle>) -> Self {
        Self {
            known: AtomicBool::new(handle.is_some()),
            handle: Mutex::new(handle),
        }
    }

    /// Called on every acquire: one atomic load once the home is known.
    #[inline]
    pub(crate) fn learn(&self) {
        if !self.known.load(Ordering::Relaxed) {
            self.learn_here();
        }
    }

    #[cold]
    fn learn_here(&self) {
        if let Ok(handle) = Handle::try_current() {
            *self.handle.lock() = Some(handle);
            self.known.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> Option<Handle> {
        self.handle.lock().clone()
    }

    /// The home runtime shut down: connects run where they are asked for until the next
    /// acquire teaches a new one.
    pub(crate) fn forget(&self) {
        *self.handle.lock() = None;
        self.known.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_runtime_only_inside_one_and_forgets_a_dead_one() {
        let home = Home::default();
        home.learn(); // no runtime here: nothing learnt
        assert!(home.get().is_none());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { home.learn() });
        assert!(home.get().is_some());
        home.forget();
        assert!(home.get().is_none());
        assert!(Home::new(Some(rt.handle().clone())).get().is_some());
    }
}
