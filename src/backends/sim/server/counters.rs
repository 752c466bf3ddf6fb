//! What the pools did to a server: the counters of [`SimServer`].

#[cfg(doc)]
use super::super::SimConnection;
#[cfg(doc)]
use super::SimBehavior;
use super::{SimServer, RELAXED};

impl SimServer {
    /// Connections alive on the server: one more per successful connect, one less when a
    /// [`SimConnection`] is dropped or killed (once, whichever comes first).
    pub fn open_connections(&self) -> usize {
        self.inner.sync_outages();
        self.inner.open.load(RELAXED)
    }

    /// Successful connects.
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(RELAXED)
    }

    /// Connect calls, successful or not (including panicking and stalled ones).
    pub fn connect_attempts(&self) -> u64 {
        self.inner.connect_attempts.load(RELAXED)
    }

    /// Connect futures currently running (a dropped future stops counting).
    pub fn in_flight_connects(&self) -> usize {
        self.inner.in_flight.load(RELAXED)
    }

    /// The most connect futures ever running at once.
    pub fn peak_in_flight_connects(&self) -> usize {
        self.inner.peak_in_flight.load(RELAXED)
    }

    /// Queries, probes and resets the server executed: those that reached it over a live
    /// connection, including those failing by [`query_failure_rate`](SimBehavior).
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(RELAXED)
    }
}
