//! The pause gate: while a pool is paused, acquires queue here (FIFO) instead of taking
//! a slot; resuming lets them through one after another, in the order they came.
//!
//! The gate is a semaphore holding at most one permit, passed from each acquire to the
//! next: an acquire takes it, and gives it back at once (which hands it to the next in
//! line) before it goes on, synchronously, to take its slot. While paused there is no
//! permit; `resume` adds one. Acquires arriving while others still queue join the queue,
//! so none overtakes them. Nothing is held across an await, so a dropped acquire leaves
//! the queue and passes on a permit it was given.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::{AcquireError, Semaphore};

use super::gauge::{Entered, Gauge};

pub(crate) struct Pause {
    paused: AtomicBool,
    gate: Semaphore,
    /// Acquires queued at the gate.
    queued: Gauge,
    /// Held by `pause` and `resume` (rare, maybe from two threads at once): the flag and
    /// the gate's permit change together, so a resume between a pause's flag and its
    /// retiring the permit cannot leave the pool running with the gate shut.
    toggling: Mutex<()>,
}

impl Pause {
    pub(super) fn new() -> Self {
        Self {
            paused: AtomicBool::new(false),
            gate: Semaphore::new(0),
            queued: Gauge::default(),
            toggling: Mutex::new(()),
        }
    }

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Paused, or acquires still queue from a pause just ended: a new acquire must
    /// queue behind them.
    #[inline]
    pub(super) fn gated(&self) -> bool {
        self.is_paused() || self.queued.get() > 0
    }

    /// Answers whether this call paused it.
    pub(super) fn pause(&self) -> bool {
        let _toggling = self.toggling.lock();
        let paused = !self.paused.swap(true, Ordering::AcqRel);
        if paused {
            self.gate.forget_permits(usize::MAX);
        }
        paused
    }

    /// Answers whether this call resumed it.
    pub(super) fn resume(&self) -> bool {
        let _toggling = self.toggling.lock();
        let resumed = self.paused.swap(false, Ordering::AcqRel);
        if resumed && self.gate.available_permits() == 0 {
            self.gate.add_permits(1);
        }
        resumed
    }

    /// Counted as queued until the guard drops.
    pub(super) fn queue(&self) -> Entered<'_> {
        self.queued.enter().1
    }

    /// Wait for the gate to open, behind those queued before. `Err`: the pool closed.
    pub(super) async fn pass(&self) -> Result<(), AcquireError> {
        loop {
            let permit = self.gate.acquire().await?;
            if self.is_paused() {
                // Paused again since the permit was added: it is not ours to pass on.
                permit.forget();
                continue;
            }
            // Handed to the next in line.
            drop(permit);
            return Ok(());
        }
    }

    /// Waiters get an error from now on.
    pub(super) fn close(&self) {
        self.gate.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Pause and resume called from two threads at once, many times: once both are done
    /// and the pool resumed, the gate is open (one permit), never left shut. (A stress
    /// check of the invariant: the window the lock closes, between a pause's flag and its
    /// retiring the permit, is a few instructions wide, and three runs without the lock
    /// did not hit it.)
    #[test]
    fn concurrent_pause_and_resume_never_leave_a_running_pool_gated() {
        for _ in 0..20 {
            let p = Arc::new(Pause::new());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let p = Arc::clone(&p);
                    std::thread::spawn(move || {
                        for _ in 0..2_000 {
                            p.pause();
                            p.resume();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            p.resume();
            assert!(!p.is_paused());
            assert_eq!(p.gate.available_permits(), 1);
        }
    }
}
