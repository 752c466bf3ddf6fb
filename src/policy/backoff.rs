//! Exponential backoff with full jitter (AWS architecture blog's "full jitter"): the n-th
//! delay is uniform in `[0, min(max, initial * 2^n)]`. Pure, no I/O.

use std::time::Duration;

use rand::Rng;

/// Backoff state for one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Start at `initial`, double each time, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay, drawn with `rng`.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn ceiling_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(70));
        let mut rng = SmallRng::seed_from_u64(1);
        let mut ceilings = vec![];
        for _ in 0..6 {
            ceilings.push(b.ceiling().as_millis());
            let d = b.next_delay(&mut rng);
            assert!(d <= Duration::from_millis(70));
        }
        assert_eq!(ceilings, vec![10, 20, 40, 70, 70, 70]);
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        let mut rng = SmallRng::seed_from_u64(7);
        let draws: Vec<Duration> = (0..1000)
            .map(|_| {
                Backoff::new(Duration::from_millis(100), Duration::from_millis(100))
                    .next_delay(&mut rng)
            })
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(10)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(90)));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        b.attempt = u32::MAX - 1;
        assert_eq!(b.ceiling(), Duration::from_secs(5));
        let _ = b.next_delay(&mut SmallRng::seed_from_u64(0));
    }
}
