//! What the pool knows about one live connection.

use std::sync::Arc;

use tokio::time::Instant;

use super::credential::Version;
use crate::budget::BudgetPermit;

/// A live connection and its bookkeeping.
pub(crate) struct Conn<C> {
    pub(crate) raw: C,
    pub(crate) created: Instant,
    pub(crate) expires: Option<Instant>,
    pub(crate) last_used: Instant,
    pub(crate) generation: u64,
    /// The credential it was opened with; once that is replaced, the connection is closed.
    pub(crate) credential: Arc<Version>,
    /// Leak-tracker id of the current checkout; 0 when leak detection is off.
    pub(crate) checkout: u64,
    /// Its share of the supervisor's connection budget, if one is set: returned when the
    /// connection is dropped, however it ends. Last, so it is dropped after `raw`.
    /// Held for its drop only.
    #[allow(dead_code)]
    pub(crate) budget: Option<BudgetPermit>,
}

impl<C> Conn<C> {
    /// Past its lifetime, opened by an earlier incarnation of the pool actor, or opened
    /// with a credential the pool has since replaced (rotation).
    #[inline]
    pub(crate) fn outlived(&self, generation: u64, now: Instant) -> bool {
        self.generation != generation
            || self.expires.is_some_and(|e| e <= now)
            || self.credential.retired()
    }
}
