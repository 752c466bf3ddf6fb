//! How many connects one pool may run at once, right now: a slow start, as TCP paces a
//! connection. A pool starts with the whole of `max_connecting` (nothing says its server
//! is in trouble, and callers are waiting for every connection it opens). A connect that
//! fails in a way that says the endpoint is down halves the window (never below one); each
//! connect that succeeds widens it by one, so a server coming back sees one connect, then
//! two, four, eight … up to `max_connecting`: it is not stormed by the pool's whole size
//! at once, and a healthy server is not made to wait for connects it can take.
//!
//! Pure: the pool's gate (`pool/connect_gate.rs`) applies the width to its permits.

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
    /// once, never fewer than one.
    pub(crate) fn failed(&mut self) {
        self.width = (self.width / 2).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_open_halves_on_failure_and_regrows_one_per_success() {
        let mut w = ConnectWindow::new(16);
        assert_eq!(w.width(), 16);
        w.succeeded();
        assert_eq!(w.width(), 16, "never past the ceiling");
        for expected in [8, 4, 2, 1, 1] {
            w.failed();
            assert_eq!(w.width(), expected);
        }
        // A server coming back: 1, 2, 4, 8, 16 at once over four rounds of connects,
        // each round's successes widening the window by as many.
        let mut rounds = vec![];
        while w.width() < 16 {
            let round = w.width();
            rounds.push(round);
            for _ in 0..round {
                w.succeeded();
            }
        }
        assert_eq!(rounds, [1, 2, 4, 8]);
        assert_eq!(w.width(), 16);
    }

    #[test]
    fn a_ceiling_of_zero_or_one_is_one() {
        for max in [0, 1] {
            let mut w = ConnectWindow::new(max);
            w.succeeded();
            assert_eq!(w.width(), 1);
            w.failed();
            assert_eq!(w.width(), 1);
        }
    }
}
