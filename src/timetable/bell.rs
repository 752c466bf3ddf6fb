//! A pool's bell: its place in the timetable, and whether what happens to it must ring.
//!
//! A pool due within one maintenance interval is not *parked*: its next run sees whatever
//! happened meanwhile, and ringing costs the acquire path one relaxed-cost load. A parked
//! pool (due later, or never) is made due by the first acquire, return, close, timeout or
//! breaker transition, which find the flag set and swap it off, so only the first of them
//! pays for the ring (a lock and a notify).
//!
//! The flag is set when a run starts, before the run reads the pool (a `SeqCst` store and
//! fence), so an event the run does not see rings it again (the timetable remembers a ring
//! that comes during a run). The events are read with a `SeqCst` load after the atomic
//! read-modify-writes that record them.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::{Ticket, Timetable};

#[derive(Default)]
pub(crate) struct Bell {
    parked: AtomicBool,
    place: OnceLock<(Arc<Timetable>, Ticket)>,
    /// Maintenance runs so far.
    runs: AtomicU64,
}

impl Bell {
    /// Hang the bell in `timetable` at `ticket` (once: a pool keeps its slot for life).
    pub(crate) fn hang(&self, timetable: Arc<Timetable>, ticket: Ticket) {
        let _ = self.place.set((timetable, ticket));
    }

    /// Something happened to the pool: a parked pool is made due now. One load otherwise.
    #[inline]
    pub(crate) fn touch(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.ring_parked();
        }
    }

    #[cold]
    fn ring_parked(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            self.ring();
        }
    }

    /// Make the pool due now, parked or not (a resize, a revival, a restart).
    pub(crate) fn ring(&self) {
        if let Some((timetable, ticket)) = self.place.get() {
            timetable.ring(*ticket);
        }
    }

    /// A run starts: what happens from now on rings, until [`park`](Self::park) says
    /// otherwise.
    pub(crate) fn run_starts(&self) {
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether what happens to the pool must ring (it is due later than its next tick).
    pub(crate) fn park(&self, parked: bool) {
        self.parked.store(parked, Ordering::SeqCst);
    }

    /// Maintenance runs so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}
