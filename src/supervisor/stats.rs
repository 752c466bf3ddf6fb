//! Figures reported by pools and the supervisor.

use serde::Serialize;

use crate::breaker::BreakerState;
use crate::key::PoolKey;

/// One pool's figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// The pool.
    pub key: PoolKey,
    /// Backend kind.
    pub backend: String,
    /// Idle connections.
    pub idle: usize,
    /// Checked-out connections.
    pub in_use: usize,
    /// Open connections (idle + checked out + being reset).
    pub live: usize,
    /// Connect attempts in progress.
    pub connecting: usize,
    /// Acquires waiting for a slot.
    pub waiters: usize,
    /// Current `max_size`.
    pub max_size: u32,
    /// Current `min_idle`.
    pub min_idle: u32,
    /// `max_overflow`.
    pub max_overflow: u32,
    /// Connections opened since the pool started.
    pub created: u64,
    /// Connections closed since the pool started.
    pub closed: u64,
    /// Acquires served.
    pub served: u64,
    /// Acquires that timed out.
    pub timeouts: u64,
    /// Failed connect attempts.
    pub connect_errors: u64,
    /// Panics caught in backend code.
    pub panics: u64,
    /// Times the pool actor was restarted.
    pub restarts: u64,
    /// Actor incarnation; connections of older ones are closed on return.
    pub generation: u64,
    /// The pool no longer serves (evicted, reaped or shut down).
    pub closed_pool: bool,
    /// Restarted too often; refuses acquires until revived.
    pub failed: bool,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// Connections reported as leaked.
    pub leaks_reported: u64,
    /// Leaked connections whose slot was reclaimed.
    pub leaks_reclaimed: u64,
}

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
    /// Connections still checked out at the deadline (closed when they come back).
    pub still_checked_out: usize,
}
