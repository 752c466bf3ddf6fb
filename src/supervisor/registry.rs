//! Which pools to evict or reap. Pure functions over (key, last use, busy) triples.

use std::time::Duration;

use tokio::time::Instant;

/// A pool as eviction sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<K> {
    /// The pool.
    pub key: K,
    /// When an acquire last started on it.
    pub last_used: Instant,
    /// Connections are checked out: never evicted.
    pub busy: bool,
}

/// The least recently used pool that is not busy, if any.
pub fn least_recently_used<K: Copy>(pools: impl IntoIterator<Item = Candidate<K>>) -> Option<K> {
    pools
        .into_iter()
        .filter(|c| !c.busy)
        .min_by_key(|c| c.last_used)
        .map(|c| c.key)
}

/// Every pool not busy and unused since `now - older_than`.
pub fn unused_for<K: Copy>(
    pools: impl IntoIterator<Item = Candidate<K>>,
    now: Instant,
    older_than: Duration,
) -> Vec<K> {
    pools
        .into_iter()
        .filter(|c| !c.busy && now.saturating_duration_since(c.last_used) >= older_than)
        .map(|c| c.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: u8, ago_ms: u64, busy: bool, now: Instant) -> Candidate<u8> {
        Candidate {
            key,
            last_used: now - Duration::from_millis(ago_ms),
            busy,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn evicts_oldest_idle_and_never_a_busy_one() {
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        let pools = [
            c(1, 500, false, now),
            c(2, 900, true, now),
            c(3, 700, false, now),
        ];
        assert_eq!(least_recently_used(pools), Some(3));
        assert_eq!(least_recently_used([c(2, 900, true, now)]), None);
        assert_eq!(least_recently_used::<u8>([]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn reaps_only_unused_and_idle() {
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        let pools = [
            c(1, 5000, false, now),
            c(2, 5000, true, now),
            c(3, 10, false, now),
        ];
        assert_eq!(unused_for(pools, now, Duration::from_secs(1)), vec![1]);
    }
}
