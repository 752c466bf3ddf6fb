//! How many connects one pool may run at once, right now: a slow start, as TCP paces a
//! connection. A pool starts with the whole of `max_connecting` (nothing says its server
//! is in trouble, and callers are waiting for every connection it opens). A connect that
//! fails in a way that says the endpoint is down halves the window, but never below
//! [`FLOOR`] (4, or `max_connecting` when that is lower: the pool's old fixed bound, so one
//! connect that hangs until its timeout never holds up every other); each connect that
//! succeeds widens it by one, so a server coming back sees four connects, then eight,
//! sixteen … up to `max_connecting`: it is not stormed by the pool's whole size at once,
//! and a healthy server is not made to wait for connects it can take.
//!
//! Pure: the pool's gate (`pool/connect_gate.rs`) applies the width to its permits.

/// The narrowest a window gets (unless `max_connecting` is lower).
pub(crate) const FLOOR: u32 = 4;

/// The width of a pool's connect window; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectWindow {
    width: u32,
    max: u32,
}

impl ConnectWindow {
    /// Fully open: `max` connects at once (at least one).
    pub(crate) fn new(max: u32) -> Self {
        let max = max.max(1);
        Self { width: max, max }
    }

    /// Connects allowed at once now.
    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    /// A connect succeeded: one more at once, up to the ceiling.
    pub(crate) fn succeeded(&mut self) {
        self.width = (self.width + 1).min(self.max);
    }

    /// A connect failed and the failure counted against the endpoint: half as many at
    /// once, never fewer than [`FLOOR`] (or the ceiling, when lower).
    pub(crate) fn failed(&mut self) {
        self.width = (self.width / 2).max(FLOOR.min(self.max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_open_halves_on_failure_down_to_the_floor_and_regrows_one_per_success() {
        let mut w = ConnectWindow::new(32);
        assert_eq!(w.width(), 32);
        w.succeeded();
        assert_eq!(w.width(), 32, "never past the ceiling");
        for expected in [16, 8, 4, 4] {
            w.failed();
            assert_eq!(w.width(), expected);
        }
        // A server coming back: 4, 8, 16, 32 at once over rounds of connects, each
        // round's successes widening the window by as many.
        let mut rounds = vec![];
        while w.width() < 32 {
            let round = w.width();
            rounds.push(round);
            for _ in 0..round {
                w.succeeded();
            }
        }
        assert_eq!(rounds, [4, 8, 16]);
        assert_eq!(w.width(), 32);
    }

    #[test]
    fn a_ceiling_under_the_floor_is_a_fixed_window() {
        for (max, width) in [(0, 1), (1, 1), (3, 3), (4, 4)] {
            let mut w = ConnectWindow::new(max);
            w.failed();
            assert_eq!(w.width(), width);
            w.succeeded();
            assert_eq!(w.width(), width);
        }
    }
}
