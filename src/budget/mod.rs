//! Connection budgets: how many connections the whole supervisor may hold open, per
//! endpoint (`max_connections_per_host`) and in total (`max_total_connections`), across
//! every pool key.
//!
//! - `ledger.rs`: the supervisor's [`Ledger`]: the limits, one per endpoint met and the
//!   total, and the [`PoolBudget`] each pool is given; the figures ([`BudgetStats`]).
//! - `limit.rs`: one limit: a FIFO semaphore, the pools holding its permits, the waiters
//!   and the least-recently-used eviction of idle connections made on their behalf.
//! - `permit.rs`: [`BudgetPermit`] (held by a connection for its whole life, returned on
//!   drop) and [`BudgetWait`] (a caller's place in the queues).
//!
//! Nothing here knows about pools: a pool lends itself to eviction through the small
//! [`IdleSource`] trait.

mod ledger;
mod limit;
mod permit;

pub(crate) use ledger::{endpoint_of, Ledger};
pub use ledger::{BudgetStats, EndpointBudget, TotalBudget};
pub(crate) use permit::{BudgetPermit, BudgetWait, PoolBudget};

use tokio::time::Instant;

/// What a pool lends the budget: its idle connections, to close the least recently used
/// one when another pool on the same endpoint (or, for the total, anywhere) waits for room.
pub(crate) trait IdleSource: Send + Sync + 'static {
    /// When its longest-idle connection was last used; `None` with nothing idle.
    fn oldest_idle(&self) -> Option<Instant>;
    /// Close its longest-idle connection; `false` if it had none (any more).
    fn close_oldest_idle(&self) -> bool;
}
