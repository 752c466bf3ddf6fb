//! Slow start: a replica readmitted to routing (after it was unreachable, its breaker open
//! or its health bad) or added at run time takes a share of reads that grows over the set's
//! `slow_start_window`, as Envoy's `slow_start_window` does, so a server whose caches are
//! cold is not handed its full share (or, by a load-aware strategy, nearly every read) at
//! once. The share grows linearly from [`FLOOR`] to all of it; routing sees it as
//! [`View::warming`](super::router::View::warming) and draws a coin per read (`router.rs`).
//!
//! Each member keeps when its warm-up started, in one atomic: a warm member costs a pick
//! one load and a comparison. A member routing finds unusable is marked (`left_out`); the
//! next pick that finds it usable again starts its warm-up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::draws::WARM;

/// The share a warm-up starts from: a tenth (Envoy's `min_weight_percent` default).
pub(crate) const FLOOR: u16 = WARM / 10;

/// Warm, and usable when last seen.
const SETTLED: u64 = 0;
/// Unusable when last seen: its next usable sighting starts a warm-up.
const OUT: u64 = u64::MAX;

/// One member's warm-up: [`SETTLED`], [`OUT`], or the start of a warm-up as milliseconds
/// after `epoch`, plus one. With no window, it stays [`SETTLED`].
pub(crate) struct SlowStart {
    state: AtomicU64,
    epoch: Instant,
    window: Duration,
}

impl SlowStart {
    /// A member that starts warm (one configured when its set started), whose warm-ups
    /// last `window` (zero: none).
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            state: AtomicU64::new(SETTLED),
            epoch: Instant::now(),
            window,
        }
    }

    /// Start a warm-up now (a member added at run time).
    pub(crate) fn begin(&self) {
        if !self.window.is_zero() {
            self.state
                .store(self.stamp(Instant::now()), Ordering::Relaxed);
        }
    }

    /// The member is out of routing (a probe found it unreachable, or a pick found it
    /// unusable): its return is a readmission.
    #[inline]
    pub(crate) fn left_out(&self) {
        if !self.window.is_zero() && self.state.load(Ordering::Relaxed) != OUT {
            self.state.store(OUT, Ordering::Relaxed);
        }
    }

    /// The share of reads (`None`: all of them) of the member, which a pick found usable.
    /// Back from [`left_out`](Self::left_out), its warm-up starts here.
    #[inline]
    pub(crate) fn share(&self) -> Option<u16> {
        let state = self.state.load(Ordering::Relaxed);
        if state == SETTLED {
            return None;
        }
        self.share_slow(state)
    }

    #[cold]
    fn share_slow(&self, state: u64) -> Option<u16> {
        let now = Instant::now();
        if state == OUT {
            self.state.store(self.stamp(now), Ordering::Relaxed);
            return ramp(Duration::ZERO, self.window);
        }
        let started = self.epoch + Duration::from_millis(state - 1);
        let share = ramp(now.saturating_duration_since(started), self.window);
        if share.is_none() {
            // Warm: later reads take the fast path. (A readmission racing this keeps its
            // own stamp.)
            let _ =
                self.state
                    .compare_exchange(state, SETTLED, Ordering::Relaxed, Ordering::Relaxed);
        }
        share
    }

    fn stamp(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        (ms.min(u128::from(u64::MAX - 2)) as u64) + 1
    }
}

/// The share, in thousandths, of a member `elapsed` into a warm-up of `window`: from
/// [`FLOOR`] at the start, linearly, to all of it (`None`) at the end.
pub(crate) fn ramp(elapsed: Duration, window: Duration) -> Option<u16> {
    if elapsed >= window {
        return None;
    }
    let share = elapsed.as_nanos() * u128::from(WARM) / window.as_nanos();
    Some((share as u16).max(FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_share_grows_linearly_from_a_tenth_to_all() {
        let w = ms(10_000);
        assert_eq!(ramp(Duration::ZERO, w), Some(FLOOR));
        assert_eq!(ramp(ms(500), w), Some(FLOOR), "below the floor: the floor");
        assert_eq!(ramp(ms(2_500), w), Some(250));
        assert_eq!(ramp(ms(9_999), w), Some(999));
        assert_eq!(ramp(w, w), None);
        assert_eq!(
            ramp(ms(1), Duration::ZERO),
            None,
            "no window, no slow start"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_warms_up_after_it_comes_back_and_then_settles() {
        let s = SlowStart::new(ms(1_000));
        assert_eq!(s.share(), None, "configured members start warm");
        s.left_out();
        tokio::time::advance(ms(300)).await;
        assert_eq!(s.share(), Some(FLOOR), "back: the warm-up starts");
        tokio::time::advance(ms(500)).await;
        assert_eq!(s.share(), Some(500));
        tokio::time::advance(ms(500)).await;
        assert_eq!(s.share(), None);
        assert_eq!(s.state.load(Ordering::Relaxed), SETTLED);
        // Left out again, then seen usable: a new warm-up. Added at run time: one too.
        s.left_out();
        assert_eq!(s.share(), Some(FLOOR));
        let added = SlowStart::new(ms(1_000));
        added.begin();
        assert_eq!(added.share(), Some(FLOOR));
    }

    #[test]
    fn without_a_window_nothing_is_recorded() {
        let s = SlowStart::new(Duration::ZERO);
        s.left_out();
        assert_eq!(s.share(), None);
        s.begin();
        assert_eq!(s.share(), None);
        assert_eq!(s.state.load(Ordering::Relaxed), SETTLED);
    }
}
