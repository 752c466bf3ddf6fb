//! What the pool knows about one live connection.

use std::sync::Arc;

use tokio::time::Instant;

use super::credential::Version;
use crate::budget::BudgetPermit;

/// A live connection and its bookkeeping, boxed: it moves from the idle list to a guard
/// and back on every acquire and release, and a pointer moves in one register where the
/// whole record (a backend connection, three instants, …) took a `memcpy` at each step
/// (measured under callgrind: ~260 of ~1,400 instructions per acquire + release).
pub(crate) struct Conn<C>(Box<ConnState<C>>);

impl<C> Conn<C> {
    pub(crate) fn new(state: ConnState<C>) -> Self {
        Self(Box::new(state))
    }
}

impl<C> std::ops::Deref for Conn<C> {
    type Target = ConnState<C>;
    #[inline]
    fn deref(&self) -> &ConnState<C> {
        &self.0
    }
}

impl<C> std::ops::DerefMut for Conn<C> {
    #[inline]
    fn deref_mut(&mut self) -> &mut ConnState<C> {
        &mut self.0
    }
}

/// What [`Conn`] holds.
pub(crate) struct ConnState<C> {
    pub(crate) raw: C,
    pub(crate) created: Instant,
    pub(crate) expires: Option<Instant>,
    /// When it was last handed out, returned or probed: nanoseconds from the pool's epoch
    /// (`Hot::nanos`).
    pub(crate) used: u64,
    /// Neither handed out nor probed since it was opened.
    pub(crate) fresh: bool,
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

impl<C> ConnState<C> {
    /// Past its lifetime, opened by an earlier incarnation of the pool actor, or opened
    /// with a credential the pool has since replaced (rotation).
    #[inline]
    pub(crate) fn outlived(&self, generation: u64, now: Instant) -> bool {
        self.generation != generation
            || self.expires.is_some_and(|e| e <= now)
            || self.credential.retired()
    }
}
