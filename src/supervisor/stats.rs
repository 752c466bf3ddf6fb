//! Figures reported by pools and the supervisor.

use serde::Serialize;

use crate::budget::BudgetStats;
use crate::key::PoolKey;
use crate::pool::stats::PoolStats;

/// The supervisor's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SupervisorStats {
    /// Pools alive now.
    pub pools: usize,
    /// Pools created since start.
    pub pools_created: u64,
    /// Pools evicted at `max_pools`.
    pub pools_evicted: u64,
    /// Pools stopped for idleness, eviction or shutdown.
    pub pools_destroyed: u64,
    /// Acquires served by every pool alive now.
    pub connections_served: u64,
    /// Idle connections across pools.
    pub idle: usize,
    /// Checked-out connections across pools.
    pub in_use: usize,
    /// Open connections across pools.
    pub total: usize,
    /// Waiting acquires across pools.
    pub waiters: usize,
    /// The connection budget (`max_connections_per_host`, `max_total_connections`): per
    /// endpoint its limit, connections used and who holds them; the total. Empty without
    /// a budget.
    pub budget: BudgetStats,
    /// Per-pool figures, sorted by key.
    pub per_pool: Vec<PoolStats>,
}

/// Overall verdict of a [`HealthCheck`](crate::messages::HealthCheck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthStatus {
    /// Every pool answered its probe.
    Healthy,
    /// Some pools failed.
    Degraded,
    /// Every pool failed (or there are none that work).
    Unhealthy,
}

/// Result of probing every pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// Overall verdict.
    pub status: HealthStatus,
    /// Pools whose probe succeeded.
    pub healthy: usize,
    /// Pools whose probe failed, with the reason (never containing a password).
    pub unhealthy: Vec<(PoolKey, String)>,
}

/// What a [`Shutdown`](crate::messages::Shutdown) closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Pools closed.
    pub pools_closed: usize,
    /// Idle connections closed.
    pub connections_closed: usize,
    /// Connections still checked out at the deadline (closed when they come back),
    /// dedicated connections still open included (closed when their holders drop them;
    /// they were told to by `DedicatedConnection::closed`).
    pub still_checked_out: usize,
}
