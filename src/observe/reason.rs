//! Why a connection was closed: a closed set of reasons, counted per pool
//! ([`CloseCounts`] in [`PoolStats`](crate::PoolStats), the `reason` attribute of
//! `poolwarden.connections.closed`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Why a connection was closed. The set is closed: every close the pool makes is one of
/// these (a new reason is a new variant, documented here and in `docs/observability.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Idle longer than `idle_timeout` (above `min_idle`), closed by the reaper.
    IdleTimeout,
    /// Older than `max_lifetime`.
    MaxLifetime,
    /// Broken: the backend said so, it was discarded, it failed a probe or a hook, or
    /// the acquire it was being checked out for was abandoned.
    Broken,
    /// Its reset on return (an open transaction), test-on-return or `after_release`
    /// hook failed.
    FailedReset,
    /// Returned while the pool had more open connections than `max_size` (overflow), or
    /// with no room for it (a reclaimed leak, a verified credential's connection).
    Overflow,
    /// Opened by an earlier generation of the pool: an actor restart, a soft eviction
    /// or a replaced credential.
    StaleGeneration,
    /// Owed to a shrinking resize.
    Shrink,
    /// The pool closed (shutdown, eviction, reaping, removal).
    Shutdown,
    /// A dedicated connection its holder dropped.
    Dedicated,
    /// An idle connection closed to make room in the supervisor's connection budget for
    /// another pool's connect (`max_connections_per_host`, `max_total_connections`).
    Budget,
}

impl CloseReason {
    /// Every reason, in a fixed order.
    pub const ALL: [CloseReason; 10] = [
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::Broken,
        CloseReason::FailedReset,
        CloseReason::Overflow,
        CloseReason::StaleGeneration,
        CloseReason::Shrink,
        CloseReason::Shutdown,
        CloseReason::Dedicated,
        CloseReason::Budget,
    ];

    /// The `reason` attribute's value (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Broken => "broken",
            CloseReason::FailedReset => "failed_reset",
            CloseReason::Overflow => "overflow",
            CloseReason::StaleGeneration => "stale_generation",
            CloseReason::Shrink => "shrink",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Dedicated => "dedicated",
            CloseReason::Budget => "budget",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connections closed since the pool started, by [`CloseReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CloseCounts {
    /// [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`CloseReason::MaxLifetime`].
    pub max_lifetime: u64,
    /// [`CloseReason::Broken`].
    pub broken: u64,
    /// [`CloseReason::FailedReset`].
    pub failed_reset: u64,
    /// [`CloseReason::Overflow`].
    pub overflow: u64,
    /// [`CloseReason::StaleGeneration`].
    pub stale_generation: u64,
    /// [`CloseReason::Shrink`].
    pub shrink: u64,
    /// [`CloseReason::Shutdown`].
    pub shutdown: u64,
    /// [`CloseReason::Dedicated`].
    pub dedicated: u64,
    /// [`CloseReason::Budget`].
    pub budget: u64,
}

impl CloseCounts {
    /// The count of one reason.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::IdleTimeout => self.idle_timeout,
            CloseReason::MaxLifetime => self.max_lifetime,
            CloseReason::Broken => self.broken,
            CloseReason::FailedReset => self.failed_reset,
            CloseReason::Overflow => self.overflow,
            CloseReason::StaleGeneration => self.stale_generation,
            CloseReason::Shrink => self.shrink,
            CloseReason::Shutdown => self.shutdown,
            CloseReason::Dedicated => self.dedicated,
            CloseReason::Budget => self.budget,
        }
    }

    /// All reasons together.
    pub fn total(&self) -> u64 {
        CloseReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// The per-pool tally behind [`CloseCounts`]: one relaxed add per close.
#[derive(Default)]
pub(crate) struct Closes([AtomicU64; CloseReason::ALL.len()]);

impl Closes {
    pub(crate) fn add(&self, reason: CloseReason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> CloseCounts {
        let at = |r: CloseReason| self.0[r.index()].load(Ordering::Relaxed);
        CloseCounts {
            idle_timeout: at(CloseReason::IdleTimeout),
            max_lifetime: at(CloseReason::MaxLifetime),
            broken: at(CloseReason::Broken),
            failed_reset: at(CloseReason::FailedReset),
            overflow: at(CloseReason::Overflow),
            stale_generation: at(CloseReason::StaleGeneration),
            shrink: at(CloseReason::Shrink),
            shutdown: at(CloseReason::Shutdown),
            dedicated: at(CloseReason::Dedicated),
            budget: at(CloseReason::Budget),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_list() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let c = Closes::default();
        c.add(CloseReason::Shrink);
        c.add(CloseReason::Shrink);
        c.add(CloseReason::Broken);
        let counts = c.counts();
        assert_eq!((counts.shrink, counts.broken, counts.total()), (2, 1, 3));
    }
}
